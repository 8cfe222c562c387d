"""Statistics and figures of ensembles (many runs) and of paired scenario comparisons.

Inputs are the tables of :mod:`sim.collect` (``runs.parquet``, ``timeseries.parquet``) and the
runs' ``control.nc``.  Figures are matplotlib :class:`~matplotlib.figure.Figure` objects on an
Agg canvas (no pyplot state), saved as PNG.

Every ensemble statistic is computed per *configuration* (the ``group`` column of
:mod:`sim.collect`: the scenario and every result-changing override), never over runs of
different parameter values, unless the caller groups by ``scenario`` on purpose (``sim collect
--pool``).  Ensemble figures (``sim collect DIR`` writes them into ``DIR/ensemble/``):

* ``territory_bands.png``   median and 10-90% band of ``share_territory_area`` per faction,
  one panel per configuration;
* ``metric_bands.png``      the same for ``new_battles_former_allies`` and ``n_displaced``
  (faction ``ALL``), one line per configuration;
* ``control_probability[_<label>].png``  probability of control at chosen dates (share of runs
  in which the faction holds the cell), one file per configuration: a grid, a row per faction
  and a column per date, one colour bar, and a row with the most likely controller
  (:func:`sim.plotting.plot_probability_grid`);
* ``key_places.png``        distribution of the final controller of each key place;
* ``outcomes_by_group.csv`` n, mean, sd and quantiles of every scalar outcome per configuration.

Comparison (``sim compare``): paired differences B - A over replicates that share seed and
replicate index (common random numbers), their bands over time, difference maps of control
probability, and a table of outcome differences with bootstrap 95% confidence intervals,
sign-flip permutation p-values adjusted for multiple outcomes (Holm or Benjamini-Hochberg) and
a standardised effect size.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .figures import new_figure, save_figure
from .plotting import faction_colours, faction_label, metric_words, thousands_axis

log = logging.getLogger("sim")




def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3, linewidth=0.5)

QUANTILES = (0.1, 0.5, 0.9)
BAND_METRICS = (("new_battles_former_allies", "ALL"), ("n_displaced", "ALL"))
DIFF_METRICS = (("n_displaced", "ALL"), ("new_battles_former_allies", "ALL"),
                ("cum_civilian_deaths", "ALL"), ("cum_insurgent_attacks", "ALL"),
                ("n_fighters_hidden", "ISIS"), ("cum_foreign_fighters_exported", "ALL"))
_NOT_OUTCOMES = {"seed", "replicate", "weeks", "wall_seconds", "people_conserved_error",
                 "fighters_conserved_error"}
_SCEN_COLOURS = ("#332288", "#CC6677", "#117733", "#DDCC77", "#88CCEE", "#AA4499", "#44AA99",
                 "#999933", "#882255", "#6699CC")


# --------------------------------------------------------------------------------------
# bands over runs
# --------------------------------------------------------------------------------------
def _wide(ts: pd.DataFrame, metric: str, faction: str, index=("run_id",)) -> pd.DataFrame:
    """Runs x dates of one metric (rows indexed by ``index`` columns)."""
    sel = ts[(ts["metric"] == metric) & (ts["faction"] == faction)]
    if sel.empty:
        return pd.DataFrame()
    sel = sel.assign(date=pd.to_datetime(sel["date"]))
    idx = list(index)
    return sel.pivot_table(index=idx, columns="date", values="value", aggfunc="sum",
                           observed=True).sort_index(axis=1)


def bands(ts: pd.DataFrame, metric: str, faction: str = "ALL", by: str = "group",
          q: Sequence[float] = QUANTILES) -> pd.DataFrame:
    """Quantiles over runs per date: columns ``by, date, n, q10, q50, q90``."""
    out = []
    sel = ts[(ts["metric"] == metric) & (ts["faction"] == faction)]
    if by not in sel.columns:  # a table without configurations: one ensemble
        sel = sel.assign(**{by: "all runs"})
    for key, grp in sel.groupby(by, observed=True):
        w = _wide(grp, metric, faction)
        if w.empty:
            continue
        qs = w.quantile(list(q), axis=0)
        df = pd.DataFrame({by: key, "date": w.columns, "n": w.notna().sum(axis=0).to_numpy()})
        for qq in q:
            df[f"q{round(qq * 100)}"] = qs.loc[qq].to_numpy()
        out.append(df)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _band(ax, dates, lo, mid, hi, colour, label):
    ax.fill_between(dates, lo, hi, color=colour, alpha=0.22, linewidth=0)
    ax.plot(dates, mid, color=colour, linewidth=1.4, label=label)


def _factions_of(ts: pd.DataFrame, metric: str) -> list[str]:
    f = ts.loc[ts["metric"] == metric, "faction"].astype(str).unique().tolist()
    return [x for x in f if x != "ALL"]


def _group_col(ts: pd.DataFrame, by: str) -> pd.Series:
    return ts[by].astype(str) if by in ts.columns else pd.Series("all runs", index=ts.index)


def _labels(keys: Sequence[str], labels: dict[str, str] | None) -> dict[str, str]:
    if labels is not None:
        return {k: labels.get(k, k) for k in keys}
    from .collect import group_labels

    return group_labels(list(keys))


def plot_territory_bands(ts: pd.DataFrame, path, colours: dict[str, str] | None = None,
                         dpi: int = 110, min_share: float = 0.005, by: str = "group",
                         labels: dict[str, str] | None = None, note: str = ""):
    """``share_territory_area``: median and 10-90% band per faction, one panel per
    configuration (``by``: ``group``, or ``scenario`` to pool on purpose)."""
    gcol = _group_col(ts, by)
    keys = sorted(gcol.unique())
    lab = _labels(keys, labels)
    n = max(len(keys), 1)
    ncol = 1 if n == 1 else 2
    nrow = int(np.ceil(n / ncol))
    fig = new_figure(6.2 * ncol, 3.4 * nrow + 0.6)
    facs = _factions_of(ts, "share_territory_area")
    cols = dict(zip(facs, faction_colours(facs, colours)))
    for k, g in enumerate(keys):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        sub = ts[gcol == g]
        nrun = sub["run_id"].nunique()
        for f in facs:
            b = bands(sub, "share_territory_area", f, by=by)
            if b.empty or np.nanmax(b["q90"]) < min_share:
                continue
            _band(ax, b["date"], 100 * b["q10"], 100 * b["q50"], 100 * b["q90"], cols[f],
                  faction_label(f))
        ax.set_title(f"{lab[g]}  (n = {nrun} runs)", fontsize=9)
        ax.set_ylabel("% of the theatre's area (log above 2%)", fontsize=8)
        ax.set_yscale("symlog", linthresh=2.0)
        ax.set_ylim(0, 100)
        from matplotlib.ticker import FixedLocator, FuncFormatter

        ax.yaxis.set_major_locator(FixedLocator([0, 1, 2, 5, 10, 20, 50, 100]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        _date_axis(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Territory held: median and 10-90% band over replicates" +
                 (f"\n{note}" if note else ""), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def plot_metric_bands(ts: pd.DataFrame, path, metrics=BAND_METRICS, dpi: int = 110,
                      by: str = "group", labels: dict[str, str] | None = None, note: str = ""):
    """Median and 10-90% band of each ``(metric, faction)``, one line per configuration."""
    gcol = _group_col(ts, by)
    keys = sorted(gcol.unique())
    lab = _labels(keys, labels)
    nrun = ts.assign(_g=gcol).groupby("_g", observed=True)["run_id"].nunique()
    fig = new_figure(6.2, 2.9 * len(metrics) + 0.5)
    for k, (m, f) in enumerate(metrics):
        ax = fig.add_subplot(len(metrics), 1, k + 1)
        b = bands(ts.assign(**{by: gcol}), m, f, by=by)
        if b.empty:
            ax.text(0.5, 0.5, f"no {m} in the runs", transform=ax.transAxes, ha="center")
            continue
        words, unit, scale = metric_words(m, f)
        for i, g in enumerate(keys):
            bs = b[b[by].astype(str) == g]
            if len(bs):
                _band(ax, bs["date"], scale * bs["q10"], scale * bs["q50"], scale * bs["q90"],
                      _SCEN_COLOURS[i % len(_SCEN_COLOURS)], f"{lab[g]} (n = {int(nrun.get(g, 0))})")
        ax.set_title(words, fontsize=9)
        ax.set_ylabel(unit, fontsize=8)
        thousands_axis(ax)
        _date_axis(ax)
        ax.legend(fontsize=7, loc="upper left", framealpha=0.8)
    fig.suptitle("Median and 10-90% band over replicates" + (f"\n{note}" if note else ""),
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


# --------------------------------------------------------------------------------------
# control probability
# --------------------------------------------------------------------------------------
def control_probability(run_dirs: Sequence[Path], dates: Sequence[str] | None = None) -> dict[str, Any]:
    """Share of runs in which each faction controls each cell, at the stored steps nearest to
    ``dates`` (default: first, middle and last step of the first run).

    Returns ``{"prob": float32 [D, F, R, C], "dates": [...], "factions": [...], "lat", "lon",
    "outside": bool [R, C], "n": runs, "skipped": [(dir, reason), ...]}``.  Runs without a
    readable ``control.nc`` (or with another grid than the first) are skipped and listed.
    """
    from .outputs import read_control

    acc = None
    n = 0
    out: dict[str, Any] = {}
    skipped: list[tuple[str, str]] = []
    for d in run_dirs:
        f = Path(d) / "control.nc"
        if not f.exists():
            log.warning("no control.nc in %s: left out of the control maps", d)
            skipped.append((str(d), "no control.nc"))
            continue
        try:
            ds = read_control(f)
        except Exception as e:  # noqa: BLE001 - a truncated file: skip the run, say why
            why = f"control.nc unreadable ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})"
            log.warning("%s: %s: left out of the control maps", d, why)
            skipped.append((str(d), why))
            continue
        if acc is not None and (ds.sizes["lat"], ds.sizes["lon"]) != acc.shape[-2:]:
            skipped.append((str(d), "control.nc on another grid"))
            continue
        times = pd.to_datetime(ds["time"].values)
        if acc is None:
            if not dates:
                idx = sorted({0, len(times) // 2, len(times) - 1})
                dates = [str(times[i].date()) for i in idx]
            factions = [str(x) for x in ds["faction"].values]
            acc = np.zeros((len(dates), len(factions), ds.sizes["lat"], ds.sizes["lon"]), np.float32)
            out.update(factions=factions, lat=ds["lat"].values, lon=ds["lon"].values,
                       colours=[str(x) for x in ds["faction_colour"].values]
                       if "faction_colour" in ds else None,
                       outside=(ds["controller"].values[0] == -2), geography=ds.attrs.get("geography"))
        ctrl = ds["controller"].values
        for k, dt in enumerate(dates):
            i = int(np.argmin(np.abs((times - pd.Timestamp(dt)).total_seconds())))
            c = ctrl[i]
            for j in range(acc.shape[1]):
                acc[k, j] += c == j
        n += 1
    if acc is None:
        return {"prob": None, "dates": list(dates or []), "n": 0, "skipped": skipped}
    out.update(prob=acc / max(n, 1), dates=list(dates), n=n, skipped=skipped)
    return out


@functools.lru_cache(maxsize=4)
def _geography(name: str):
    from .compose import compose
    from .config import GeographyConfig
    from .geography import build_geography

    return build_geography(GeographyConfig(**compose([f"geography={name}"])["geography"]))


@functools.lru_cache(maxsize=4)
def _background_image(geography: str, shape: tuple[int, int], width_px: int = 700):
    """Terrain, rivers and borders of the named geography, rendered once to an RGBA array
    (drawing them on every small map would take seconds each); None if unavailable."""
    try:
        from .plotting import draw_background

        geo = _geography(geography)
        if tuple(geo.shape) != tuple(shape):
            return None
        ext = geo.grid.extent
        aspect = 1.0 / max(0.2, np.cos(np.deg2rad(0.5 * (ext[2] + ext[3]))))
        h_px = int(width_px * (ext[3] - ext[2]) * aspect / (ext[1] - ext[0]))
        fig = new_figure(width_px / 100, h_px / 100)
        ax = fig.add_axes((0, 0, 1, 1))
        draw_background(ax, geo, show_places=False)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        ax.set_aspect("auto")
        ax.axis("off")
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba()).copy()
    except Exception as e:  # noqa: BLE001 - maps still work without the background
        log.debug("no map background for %s: %s", geography, e)
        return None


def _background(ax, geography: str | None, shape, extent, aspect) -> bool:
    if not geography:
        return False
    img = _background_image(str(geography), tuple(int(x) for x in shape))
    if img is None:
        return False
    ax.imshow(img, extent=extent, aspect=aspect, interpolation="bilinear", zorder=0)
    return True


def _extent(lat, lon):
    dlat = abs(lat[1] - lat[0]) if len(lat) > 1 else 0.1
    dlon = abs(lon[1] - lon[0]) if len(lon) > 1 else 0.1
    return (lon[0] - dlon / 2, lon[-1] + dlon / 2, lat[-1] - dlat / 2, lat[0] + dlat / 2)


def _map_grid(n_rows: int, n_cols: int, lat, lon):
    aspect = 1.0 / max(0.2, np.cos(np.deg2rad(float(np.mean(lat)))))
    w = (lon.max() - lon.min()) / ((lat.max() - lat.min()) * aspect)
    pw = 2.6
    return new_figure(pw * n_cols + 0.6, pw / w * n_rows + 0.8), aspect


def plot_control_probability(cp: dict[str, Any], path, factions: Sequence[str] | None = None,
                             min_prob: float = 0.05, background: bool = True, dpi: int = 110,
                             label: str | None = None):
    """Probability of control as a grid (a row per faction, a column per date, one colour
    bar) plus the most likely controller: :func:`sim.plotting.plot_probability_grid`."""
    from .plotting import plot_probability_grid

    if cp.get("prob") is None:
        raise ValueError("no control.nc in the runs: no control maps")
    prob, allf = cp["prob"], cp["factions"]
    if factions is not None:
        prob = np.where(np.isin(allf, list(factions))[None, :, None, None], prob, 0.0)
    lat, lon = np.asarray(cp["lat"]), np.asarray(cp["lon"])
    ext = _extent(lat, lon)
    bg = None
    if background and cp.get("geography"):
        bg = _background_image(str(cp["geography"]), tuple(int(x) for x in prob.shape[-2:]))
    colours = dict(zip(allf, cp["colours"])) if cp.get("colours") else None
    title = f"Probability of control — {label}" if label else None
    plot_probability_grid(prob, allf, cp["dates"], cp["outside"], ext, path, cp["n"],
                          colours=colours, background=bg, min_prob=min_prob, title=title,
                          footer=f"{label or ''} · {cp['n']} replicates".strip(" ·"), dpi=dpi)
    return Path(path)


def _panel(ax, ext, title: str | None, ylabel: str | None) -> None:
    """Frame one small-multiple map: extent, no ticks, faction title on the top row and date
    label in the first column."""
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)


def plot_control_probability_diff(cpa: dict[str, Any], cpb: dict[str, Any], path, label: str,
                                  min_diff: float = 0.02, background: bool = True, dpi: int = 110):
    """P_B(control) - P_A(control) per faction and date, diverging colours (red: B more)."""
    if cpa.get("prob") is None or cpb.get("prob") is None:
        raise ValueError("control.nc missing in one of the ensembles: no difference maps")
    diff = cpb["prob"] - cpa["prob"]
    allf = cpa["factions"]
    pick = [i for i in range(len(allf)) if float(np.abs(diff[:, i]).max()) >= min_diff] or [0]
    lat, lon = np.asarray(cpa["lat"]), np.asarray(cpa["lon"])
    ext = _extent(lat, lon)
    fig, aspect = _map_grid(len(cpa["dates"]), len(pick), lat, lon)
    im = None
    for r, dt in enumerate(cpa["dates"]):
        for c, j in enumerate(pick):
            ax = fig.add_subplot(len(cpa["dates"]), len(pick), r * len(pick) + c + 1)
            if background:
                _background(ax, cpa.get("geography"), diff.shape[-2:], ext, aspect)
            d = np.where(cpa["outside"], np.nan, diff[r, j])
            d = np.ma.masked_where(~np.isfinite(d) | (np.abs(np.nan_to_num(d)) < 1e-9), d)
            im = ax.imshow(d, extent=ext, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest",
                           aspect=aspect, zorder=5, alpha=0.9)
            _panel(ax, ext, allf[j] if r == 0 else None, str(dt) if c == 0 else None)
    fig.suptitle(f"Difference in probability of control: {label}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    if im is not None:
        cax = fig.add_axes((0.945, 0.15, 0.015, 0.7))
        fig.colorbar(im, cax=cax).ax.tick_params(labelsize=7)
    return save_figure(fig, path, dpi)


# --------------------------------------------------------------------------------------
# key places
# --------------------------------------------------------------------------------------
def key_place_distribution(runs: pd.DataFrame, by: str = "group") -> pd.DataFrame:
    """Share of ok runs in which each controller holds each key place at the end:
    columns ``<by>, place, controller, share, n`` (``by``: ``group`` or ``scenario``)."""
    ok = runs[runs["status"] == "ok"]
    keys = ok[by].astype(str) if by in ok.columns else pd.Series("all runs", index=ok.index)
    rows = []
    for key, raw in zip(keys, ok.get("key_place_controller_final", pd.Series(index=ok.index))):
        if raw is None or (isinstance(raw, float) and np.isnan(raw)):
            continue
        d = json.loads(raw) if isinstance(raw, str) else dict(raw)
        for place, ctrl in d.items():
            rows.append((key, place, ctrl))
    if not rows:
        return pd.DataFrame(columns=[by, "place", "controller", "share", "n"])
    df = pd.DataFrame(rows, columns=[by, "place", "controller"])
    n = df.groupby([by, "place"]).size().rename("n")
    cnt = df.groupby([by, "place", "controller"]).size().rename("count").reset_index()
    cnt = cnt.join(n, on=[by, "place"])
    cnt["share"] = cnt["count"] / cnt["n"]
    return cnt[[by, "place", "controller", "share", "n"]]


def plot_key_places(dist: pd.DataFrame, path, colours: dict[str, str] | None = None, dpi: int = 110,
                    by: str | None = None, labels: dict[str, str] | None = None, note: str = ""):
    """Stacked horizontal bars: who holds each key place at the end, share of runs, one panel
    per configuration."""
    from matplotlib.patches import Patch

    from .plotting import UNGOVERNED_COLOUR

    by = by or ("group" if "group" in dist.columns else "scenario")
    keys = sorted(dist[by].astype(str).unique()) or ["(none)"]
    lab = _labels(keys, labels)
    places = sorted(dist["place"].unique())
    ctrls = sorted(dist["controller"].unique(), key=lambda c: (c == "UNGOVERNED", c))
    cmap = dict(zip(ctrls, faction_colours(ctrls, colours)))
    if "UNGOVERNED" in cmap:
        cmap["UNGOVERNED"] = UNGOVERNED_COLOUR
    fig = new_figure(3.6 * len(keys) + 1.6, 0.16 * max(len(places), 5) + 1.6)
    for k, g in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), k + 1)
        sub = dist[dist[by].astype(str) == g]
        piv = sub.pivot_table(index="place", columns="controller", values="share",
                              aggfunc="sum").reindex(index=places[::-1], columns=ctrls).fillna(0.0)
        left = np.zeros(len(piv))
        for ctl in ctrls:
            v = piv[ctl].to_numpy()
            ax.barh(np.arange(len(piv)), v, left=left, color=cmap[ctl], edgecolor="white",
                    linewidth=0.3, height=0.85)
            left += v
        ax.set_yticks(np.arange(len(piv)))
        ax.set_yticklabels(piv.index if k == 0 else [""] * len(piv), fontsize=6)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of runs", fontsize=7)
        nrun = int(sub["n"].max()) if len(sub) else 0
        ax.set_title(f"{lab[g]} (n = {nrun})", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    fig.legend(handles=[Patch(color=cmap[c], label=c) for c in ctrls], loc="lower center",
               ncol=min(6, len(ctrls)), fontsize=6.5, frameon=False)
    fig.suptitle("Controller of each key place at the end" + (f"\n{note}" if note else ""),
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return save_figure(fig, path, dpi)


def outcomes_by_group(runs: pd.DataFrame, by: str = "group") -> pd.DataFrame:
    """One row per configuration and scalar outcome: ``n`` (runs with a value), ``n_undefined``,
    ``mean``, ``sd``, ``q10``, ``median``, ``q90`` over the ok runs (dates as days from the
    start)."""
    ok = runs[runs["status"] == "ok"]
    keys = ok[by].astype(str) if by in ok.columns else pd.Series("all runs", index=ok.index)
    rows = []
    for c in outcome_columns(ok):
        v = outcome_values(ok, c)
        for g, vals in v.groupby(keys):
            x = vals.to_numpy(float)
            fin = x[np.isfinite(x)]
            rows.append({by: g, "outcome": c + (" (days from start)" if c.endswith("_date") else ""),
                         "n": len(fin), "n_undefined": int(len(x) - len(fin)),
                         "mean": float(fin.mean()) if len(fin) else np.nan,
                         "sd": float(fin.std(ddof=1)) if len(fin) > 1 else np.nan,
                         "q10": float(np.quantile(fin, 0.1)) if len(fin) else np.nan,
                         "median": float(np.median(fin)) if len(fin) else np.nan,
                         "q90": float(np.quantile(fin, 0.9)) if len(fin) else np.nan})
    return pd.DataFrame(rows)


def safe_tag(text: str, maxlen: int = 80) -> str:
    import re

    tag = re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_")
    return tag[:maxlen] or "all"


ENSEMBLE_README = """How to read the ensemble files
==============================
Every statistic here is computed per configuration ({by}):
the runs of one configuration differ only in their random streams (seed, replicate), so their
spread is the model's stochastic variation.  {pooling}
Configurations:
{groups}

outcomes_by_group.csv  per configuration and scalar outcome: n runs with a value (n_undefined
                       without, e.g. ISIS never defeated), mean, sd, 10%, 50%, 90% quantiles
                       over runs.  Dates are days from the start date.  These describe the
                       spread of the runs, not the uncertainty of the mean (sd / sqrt(n)).
territory_bands.png    share of the theatre's area per faction: median and 10-90% band over
                       the runs of each configuration (not a confidence interval).
metric_bands.png       the same for battles between former allies and displaced people.
control_probability*.png  per configuration, share of runs in which each faction controls
                       each cell at the chosen dates.
key_places.png/.csv    share of runs in which each faction holds each key place at the end.
With fewer than about 10 runs per configuration, the 10% and 90% quantiles are close to the
minimum and maximum: read them as the range of a few runs.
"""


def ensemble_plots(col, outdir: Path, map_dates: Sequence[str] | None = None,
                   background: bool = True, dpi: int = 110, pool: bool = False) -> dict[str, Path]:
    """All ensemble figures and tables of a :class:`sim.collect.Collected` into ``outdir``,
    one ensemble per configuration (``group``); ``pool=True`` pools every configuration of a
    scenario into one ensemble (labelled as pooled)."""
    from .collect import constant_items, group_labels

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    by = "scenario" if pool else "group"
    ok = col.ok
    keys = sorted(ok[by].dropna().astype(str).unique())
    if pool:
        labels = {k: k for k in keys}
        pooled = sorted({x.split("=", 1)[0] for g in col.groups for x in str(g).split()} - {"scenario"})
        note = ("POOLED over different values of " + ", ".join(pooled)) if pooled else ""
    else:
        labels = group_labels(keys)
        shared = constant_items(keys)
        note = ("all runs: " + " ".join(shared)) if shared and len(keys) > 1 else ""
    ts = col.timeseries
    if len(ts):
        paths["territory"] = outdir / "territory_bands.png"
        plot_territory_bands(ts, paths["territory"], dpi=dpi, by=by, labels=labels, note=note)
        paths["metrics"] = outdir / "metric_bands.png"
        plot_metric_bands(ts, paths["metrics"], dpi=dpi, by=by, labels=labels, note=note)
    skipped: list[tuple[str, str]] = []
    tags = {g: safe_tag(labels.get(g, g)) for g in keys}
    for k, (g, grp) in enumerate(ok.groupby(ok[by].astype(str))):
        dirs = [col.root / r for r in grp["run_id"]]
        cp = control_probability(dirs, map_dates)
        skipped += cp.get("skipped", [])
        if cp.get("prob") is not None:
            tag = tags[g] if list(tags.values()).count(tags[g]) == 1 else f"{k + 1}_{tags[g]}"
            name = ("control_probability.png" if len(keys) == 1 else
                    f"control_probability_{tag}.png")
            paths[f"control_probability:{g}"] = outdir / name
            plot_control_probability(cp, outdir / name, background=background, dpi=dpi,
                                     label=labels.get(g, g))
    dist = key_place_distribution(col.runs, by=by)
    if len(dist):
        dist.to_csv(outdir / "key_places.csv", index=False)
        paths["key_places"] = outdir / "key_places.png"
        plot_key_places(dist, paths["key_places"], dpi=dpi, by=by, labels=labels, note=note)
    stats = outcomes_by_group(col.runs, by=by)
    if len(stats):
        stats.insert(1, "label", stats[by].map(labels))
        paths["outcomes"] = outdir / "outcomes_by_group.csv"
        stats.to_csv(paths["outcomes"], index=False)
    n_ok = ok.groupby(ok[by].astype(str)).size()
    (outdir / "README.txt").write_text(ENSEMBLE_README.format(
        by="pooled by scenario" if pool else "the `group` column: scenario and overrides",
        pooling=(f"WARNING: {note}; their spread mixes parameter values with noise."
                 if pool and note else "Runs of different parameter values are never pooled."),
        groups="\n".join(f"  {labels.get(g, g)}: {int(n_ok.get(g, 0))} runs  [{g}]" for g in keys)),
        encoding="utf-8")
    paths["readme"] = outdir / "README.txt"
    for d, why in skipped:
        print(f"WARNING: {d}: {why}: left out of the control maps", flush=True)
    return paths


# --------------------------------------------------------------------------------------
# paired comparison
# --------------------------------------------------------------------------------------
PAIR_KEY = ("seed", "replicate")


def pair_runs(runs_a: pd.DataFrame, runs_b: pd.DataFrame, a: str = "A",
              b: str = "B") -> tuple[pd.DataFrame, list[str]]:
    """Ok runs of two ensembles matched on (seed, replicate): columns ``seed, replicate,
    run_a, run_b``; plus a message for every ok run without a partner."""
    unpaired = []
    sides = []
    for name, runs in ((a, runs_a), (b, runs_b)):
        ok = runs[runs["status"] == "ok"]
        dup = ok[ok.duplicated(list(PAIR_KEY), keep="last")]
        unpaired += [f"{name} seed={r.seed} replicate={r.replicate} ({r.run_id}) repeats an "
                     "earlier run's seed and replicate: only the last is paired"
                     for r in dup.itertuples(index=False)]
        sides.append(ok.drop_duplicates(list(PAIR_KEY), keep="last"))
    ra, rb = sides
    m = ra[[*PAIR_KEY, "run_id"]].merge(rb[[*PAIR_KEY, "run_id"]], on=list(PAIR_KEY),
                                         suffixes=("_a", "_b"), how="outer", indicator="side")
    unpaired += [f"{a if r.side == 'left_only' else b} seed={r.seed} replicate={r.replicate} "
                 f"({r.run_id_a if r.side == 'left_only' else r.run_id_b}) has no partner"
                 for r in m[m["side"] != "both"].itertuples(index=False)]
    pairs = m[m["side"] == "both"].drop(columns="side").rename(
        columns={"run_id_a": "run_a", "run_id_b": "run_b"})
    return pairs.sort_values(list(PAIR_KEY)).reset_index(drop=True), unpaired


def paired_diff_series(ts_a: pd.DataFrame, ts_b: pd.DataFrame, pairs: pd.DataFrame,
                       metric: str, faction: str) -> pd.DataFrame:
    """Pairs x dates of B - A for one metric (rows in the order of ``pairs``)."""
    wa, wb = _wide(ts_a, metric, faction), _wide(ts_b, metric, faction)
    if wa.empty or wb.empty:
        return pd.DataFrame()
    cols = wa.columns.intersection(wb.columns)
    wa.index, wb.index = wa.index.astype(str), wb.index.astype(str)
    a = wa.reindex(index=pairs["run_a"].astype(str), columns=cols)
    b = wb.reindex(index=pairs["run_b"].astype(str), columns=cols)
    return pd.DataFrame(b.to_numpy() - a.to_numpy(), columns=cols)


def plot_diff_bands(ts_a: pd.DataFrame, ts_b: pd.DataFrame, pairs: pd.DataFrame, path,
                    label: str, metrics: Sequence[tuple[str, str]],
                    colours: dict[str, str] | None = None, ncol: int = 2, dpi: int = 110,
                    title: str | None = None):
    """Median and 10-90% band over pairs of B - A, one panel per ``(metric, faction)``."""
    n = max(len(metrics), 1)
    ncol = min(ncol, n)
    nrow = int(np.ceil(n / ncol))
    fig = new_figure(4.4 * ncol, 2.5 * nrow + 0.5)
    for k, (m, f) in enumerate(metrics):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        d = paired_diff_series(ts_a, ts_b, pairs, m, f)
        if d.empty:
            ax.text(0.5, 0.5, f"no {m}", transform=ax.transAxes, ha="center", fontsize=8)
            continue
        q = d.quantile(list(QUANTILES), axis=0)
        colour = faction_colours([f], colours)[0] if f != "ALL" else "#332288"
        words, unit, scale = metric_words(m, f)
        _band(ax, d.columns, scale * q.loc[QUANTILES[0]], scale * q.loc[QUANTILES[1]],
              scale * q.loc[QUANTILES[2]], colour, f)
        ax.axhline(0, color="#444444", linewidth=0.6)
        ax.set_title(words, fontsize=8)
        ax.set_ylabel(f"difference, {unit.replace('% of area', 'percentage points')}",
                      fontsize=7)
        thousands_axis(ax)
        _date_axis(ax)
    fig.suptitle(title or f"Paired difference {label}: median and 10-90% band over "
                 f"{len(pairs)} replicate pairs", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def outcome_columns(runs: pd.DataFrame) -> list[str]:
    """Numeric scalar outcome columns of ``runs.parquet`` (dates as days since the start)."""
    cols = []
    for c in runs.columns:
        if c in _NOT_OUTCOMES or c.startswith("override.") or c in (
                "run_id", "status", "error", "overrides", "scenario", "geography", "start_date"):
            continue
        if c.endswith("_date") or pd.api.types.is_numeric_dtype(runs[c]):
            cols.append(c)
    return cols


def outcome_values(runs: pd.DataFrame, col: str) -> pd.Series:
    if col.endswith("_date"):
        start = pd.to_datetime(runs.get("start_date"), errors="coerce")
        return (pd.to_datetime(runs[col], errors="coerce") - start).dt.days.astype(float)
    return pd.to_numeric(runs[col], errors="coerce").astype(float)


MIN_PAIRS = 10  # below this, bootstrap CIs undercover and few p-values can reach 0.05
CORRECTIONS = ("holm", "bh")


def bootstrap_ci(d: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                 rng: np.random.Generator | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``d`` (paired differences)."""
    if n_boot < 1:
        raise ValueError(f"n_boot = {n_boot}: need at least 1 bootstrap resample")
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    if len(d) < 2:  # no interval from one pair
        return (np.nan, np.nan)
    if np.all(d == d[0]):
        return (float(d[0]), float(d[0]))
    rng = rng or np.random.default_rng(0)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    means = d[idx].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def sign_flip_p(d: np.ndarray, n_perm: int = 20000, rng: np.random.Generator | None = None,
                exact_max: int = 16) -> float:
    """Two-sided p-value of H0 "the paired differences are symmetric around 0" by flipping
    their signs (a permutation test of the mean paired difference).  Exact (all 2^n sign
    patterns) for n <= ``exact_max`` pairs, else ``n_perm`` random patterns with the +1
    correction.  With n pairs the smallest possible p is 2 / 2^n (0.125 for 4 pairs)."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return np.nan
    obs = abs(d.mean())
    if obs == 0:
        return 1.0
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= exact_max:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
        means = np.abs(signs @ d) / n
        return float(np.mean(means >= obs - tol))
    rng = rng or np.random.default_rng(0)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, n))
    means = np.abs(signs @ d) / n
    return float((1 + np.sum(means >= obs - tol)) / (n_perm + 1))


def adjust_p(p: Sequence[float], method: str = "holm") -> np.ndarray:
    """p-values adjusted for multiple tests: ``holm`` (Holm-Bonferroni, controls the
    family-wise error rate) or ``bh`` (Benjamini-Hochberg, controls the false-discovery
    rate).  NaN entries are left out of the family and stay NaN."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r}: one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    ps = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ps)
    else:
        adj = np.minimum.accumulate((m / np.arange(1, m + 1) * ps)[::-1])[::-1]
    out[order] = np.minimum(adj, 1.0)
    return out


def outcome_differences(runs_a: pd.DataFrame, runs_b: pd.DataFrame, pairs: pd.DataFrame,
                        a: str = "A", b: str = "B", n_boot: int = 2000,
                        seed: int = 0, correction: str = "holm",
                        alpha: float = 0.05) -> pd.DataFrame:
    """One row per outcome: means of A and B, mean paired difference B - A, its percentile
    bootstrap 95% CI over the pairs, the standardised effect size ``d_z`` (mean difference /
    sd of the differences), the sign-flip permutation p-value and that p adjusted over the
    outcomes of this comparison (``correction``: ``holm`` or ``bh``); ``significant`` is
    ``p_adjusted < alpha``.  ``n_pairs``: pairs with a value in both runs; ``n_undefined_*``:
    runs where the outcome is undefined (e.g. ISIS never defeated); ``few_pairs``: fewer than
    :data:`MIN_PAIRS` pairs."""
    if n_boot < 1:
        raise ValueError(f"n_boot = {n_boot}: need at least 1 bootstrap resample")
    ra = runs_a.set_index(runs_a["run_id"].astype(str)).loc[pairs["run_a"].astype(str)]
    rb = runs_b.set_index(runs_b["run_id"].astype(str)).loc[pairs["run_b"].astype(str)]
    rng = np.random.default_rng(seed)
    rows = []
    cols = [c for c in outcome_columns(runs_a) if c in set(outcome_columns(runs_b))]
    for c in cols:
        va = outcome_values(ra, c).to_numpy()
        vb = outcome_values(rb, c).to_numpy()
        both = np.isfinite(va) & np.isfinite(vb)
        d = vb[both] - va[both]
        lo, hi = bootstrap_ci(d, n_boot=n_boot, rng=rng)
        sd = float(d.std(ddof=1)) if len(d) > 1 else np.nan
        mean = float(d.mean()) if len(d) else np.nan
        if len(d) > 1 and sd > 0:
            dz = mean / sd
        elif len(d) > 1 and sd == 0:
            dz = 0.0 if mean == 0 else float(np.sign(mean)) * np.inf
        else:
            dz = np.nan
        rows.append({"outcome": c + (" (days from start)" if c.endswith("_date") else ""),
                     "A": a, "B": b, "n_pairs": int(both.sum()),
                     "mean_A": float(np.nanmean(va)) if np.isfinite(va).any() else np.nan,
                     "mean_B": float(np.nanmean(vb)) if np.isfinite(vb).any() else np.nan,
                     "mean_diff": mean, "sd_diff": sd,
                     "ci95_low": lo, "ci95_high": hi,
                     "ci_excludes_0": bool(len(d) > 1 and (lo > 0 or hi < 0)),
                     "effect_size_dz": dz,
                     "p_value": sign_flip_p(d, rng=rng) if len(d) > 1 else np.nan,
                     "n_undefined_A": int((~np.isfinite(va)).sum()),
                     "n_undefined_B": int((~np.isfinite(vb)).sum()),
                     "few_pairs": bool(both.sum() < MIN_PAIRS)})
    df = pd.DataFrame(rows)
    if len(df):
        # an outcome equal in every pair (sd 0, mean 0) cannot reach any level: it is left out
        # of the family (Tarone 1990) and keeps p = 1
        p = df["p_value"].to_numpy(float)
        null = (df["mean_diff"] == 0).to_numpy() & (df["sd_diff"].fillna(0) == 0).to_numpy()
        adj = adjust_p(np.where(null, np.nan, p), correction)
        adj = np.where(null & np.isfinite(p), 1.0, adj)
        df.insert(df.columns.get_loc("p_value") + 1, "p_adjusted", adj)
        df.insert(df.columns.get_loc("p_adjusted") + 1, "correction", correction)
        df.insert(df.columns.get_loc("correction") + 1, "significant",
                  (df["p_adjusted"] < alpha).to_numpy())
    return df


DIFFERENCES_README = """How to read differences.csv (sim compare)
=========================================
One row per comparison (B vs the reference A) and scalar outcome of summary.json.  Runs are
paired on (seed, replicate): paired runs share their random streams (common random numbers),
so a paired difference B - A is mostly the effect of the change, not noise.

n_pairs          pairs with a value in both runs (n_undefined_A/B: runs where the outcome is
                 undefined, e.g. a date that never came; they are left out of the pairs).
mean_A, mean_B   means over the paired runs; mean_diff = mean of B - A; sd_diff its sd.
ci95_low/high    percentile bootstrap 95% CI of mean_diff over the pairs ({n_boot} resamples).
                 Per outcome, NOT adjusted for the number of outcomes.  ci_excludes_0 says
                 whether that unadjusted interval excludes 0.
effect_size_dz   mean_diff / sd_diff (Cohen's d_z for paired data): about 0.2 small, 0.5
                 medium, 0.8 large; inf when every pair differs by the same amount.
p_value          two-sided sign-flip permutation test of mean_diff = 0 (exact up to 16
                 pairs).  With n pairs no p can be below 2 / 2^n (0.125 for 4 pairs).
p_adjusted       p adjusted over the outcomes of the same comparison by {correction_name};
                 significant = p_adjusted < {alpha}.  The family: every outcome of that
                 comparison with a p-value that is not equal in every pair ({n_tests});
                 an outcome equal in every pair cannot reach any level and keeps p = 1
                 (Tarone 1990).
few_pairs        fewer than {min_pairs} pairs: the bootstrap CI is too narrow (it undercovers
                 with few pairs) and few outcomes can reach significance; run more --seeds.
Outcomes are correlated (e.g. territory shares sum to 1), so Holm is conservative; the
differences describe the model under its assumptions, not the world.
"""

CORRECTION_NAMES = {"holm": "Holm-Bonferroni (family-wise error rate)",
                    "bh": "Benjamini-Hochberg (false-discovery rate)"}
