"""Scenario discovery: which parameter ranges of a sweep lead to an outcome of interest?

Runs PRIM (the Patient Rule Induction Method, Friedman & Fisher 1999, as used for scenario
discovery by Bryant & Lempert 2010) from EMA Workbench (``ema_workbench.analysis.prim``) over
the *experiment table* of a sweep: one row per ok run, the swept parameters (the run's
``override.KEY`` values that vary between runs) as columns, and a yes/no case of interest from
a user's threshold on one scalar outcome (``vacuum_share_SDF < 0.1``).

PRIM peels the parameter space into a box that holds many cases of interest (coverage: the
share of all cases of interest inside the box) and few other runs (density: the share of the
runs in the box that are cases of interest).  The peeling trajectory trades one for the other;
:func:`discover` picks, for each box, the point of the trajectory with the highest coverage
whose density is at least ``min_density`` (or the densest point if none is), then looks for
the next box among the runs left outside (the covering approach).  Each box is reported with
its coverage, density, mass (share of runs in the box), the restricted ranges and the
quasi-p-value of each restriction (a one-sided binomial test of whether the restriction adds
density; Bryant & Lempert 2010).

Every run is one point: replicates of one configuration are separate points, so the model's
noise is part of what PRIM sees (a box with density 0.7 may be a configuration where 70% of
the replicates are cases of interest).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("sim")

MIN_RUNS = 10  # fewer runs: refused (PRIM peels 5% at a time; a box would hold a run or two)
WARN_RUNS = 50
MIN_CASES = 3  # fewer cases of interest: nothing to describe


class DiscoveryError(ValueError):
    """The experiment table or the question cannot give a box (one-line reason)."""


@dataclass
class Box:
    number: int
    coverage: float
    density: float
    mass: float
    n: int
    k: int
    limits: pd.DataFrame  # parameter, min, max, full_min, full_max, qp_value (restricted only)
    trajectory: pd.DataFrame  # coverage, density, mass, res_dim, n, k per peeling step
    chosen: int


@dataclass
class Discovery:
    outcome: str
    rule: str
    X: pd.DataFrame
    y: np.ndarray
    boxes: list[Box] = field(default_factory=list)
    left_out: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def base_density(self) -> float:
        return float(self.y.mean()) if len(self.y) else float("nan")


# --------------------------------------------------------------------------------------
# the experiment table
# --------------------------------------------------------------------------------------
def _as_numbers(s: pd.Series) -> pd.Series | None:
    v = pd.to_numeric(s, errors="coerce")
    if v.notna().sum() == s.notna().sum() and s.notna().all():
        return v.astype(float)
    return None


def parameter_table(runs: pd.DataFrame, params: list[str] | None = None) -> pd.DataFrame:
    """The swept parameters of the ok runs (index = run_id): every ``override.KEY`` column
    that can change the results and takes more than one value; numbers as floats, anything
    else (scenario names) as categories.  ``params``: keys to keep (a key may be given by
    its last dotted parts)."""
    from .collect import is_config_key

    ok = runs[runs["status"] == "ok"]
    cols = {c[len("override."):]: c for c in ok.columns if c.startswith("override.")}
    if "scenario" not in cols and "scenario" in ok.columns:
        cols["scenario"] = "scenario"
    keys = [k for k in cols if is_config_key(k)]
    if params:
        chosen = []
        for p in params:
            hit = [k for k in keys if k == p or k.endswith("." + p)]
            if len(hit) != 1:
                raise DiscoveryError(f"--params {p}: matches {len(hit)} swept keys "
                                     f"({', '.join(hit) or 'none'}); swept: {', '.join(keys)}")
            chosen += hit
        keys = chosen
    X = pd.DataFrame(index=ok["run_id"].astype(str).to_numpy())
    for k in keys:
        s = ok[cols[k]].reset_index(drop=True)
        s.index = X.index
        if s.nunique(dropna=True) < 2:
            continue
        num = _as_numbers(s)
        X[k] = num if num is not None else s.astype(str).astype("category")
    if X.shape[1] == 0:
        raise DiscoveryError("no swept parameter: the runs do not differ in any override "
                             "(seed and replicate aside)")
    return X


def case_of_interest(runs: pd.DataFrame, outcome: str, below: float | None = None,
                     above: float | None = None) -> tuple[pd.Series, str]:
    """``(values, rule)`` of the outcome over the ok runs (index = run_id; dates as days from
    the start); the rule in words."""
    from .ensemble import outcome_values, outcome_columns

    ok = runs[runs["status"] == "ok"]
    if outcome not in ok.columns:
        near = [c for c in outcome_columns(ok) if outcome.lower() in c.lower()][:8]
        raise DiscoveryError(f"--outcome {outcome}: not a scalar outcome of these runs"
                             + (f"; did you mean {', '.join(near)}?" if near else ""))
    v = outcome_values(ok, outcome)
    v.index = ok["run_id"].astype(str).to_numpy()
    unit = " (days from start)" if outcome.endswith("_date") else ""
    rule = f"{outcome}{unit} < {below:g}" if below is not None else f"{outcome}{unit} > {above:g}"
    return v, rule


# --------------------------------------------------------------------------------------
# PRIM
# --------------------------------------------------------------------------------------
def _limits(box, i: int, X: pd.DataFrame) -> pd.DataFrame:
    lim = box.box_lims[i]
    init = box.prim.box_init
    qp = box.p_values[i]
    rows = []
    for p in X.columns:
        lo, hi = lim[p].iloc[0], lim[p].iloc[1]
        if isinstance(lo, set) or isinstance(init[p].iloc[0], set):
            full = sorted(map(str, init[p].iloc[0]))
            kept = sorted(map(str, lo))
            if kept == full:
                continue
            rows.append({"parameter": p, "min": np.nan, "max": np.nan,
                         "values": ", ".join(kept), "full_min": np.nan, "full_max": np.nan,
                         "full_values": ", ".join(full), "qp_value": _qp(qp.get(p))})
            continue
        f_lo, f_hi = float(init[p].iloc[0]), float(init[p].iloc[1])
        if float(lo) <= f_lo and float(hi) >= f_hi:
            continue
        rows.append({"parameter": p, "min": float(lo), "max": float(hi), "values": "",
                     "full_min": f_lo, "full_max": f_hi, "full_values": "",
                     "qp_value": _qp(qp.get(p))})
    return pd.DataFrame(rows, columns=["parameter", "min", "max", "values", "full_min",
                                       "full_max", "full_values", "qp_value"])


def _qp(v) -> float:
    """The quasi-p-value of a restriction (EMA gives [lower, upper]; -1 = no restriction)."""
    if v is None:
        return np.nan
    vals = [x for x in np.atleast_1d(v).astype(float) if x >= 0]
    return float(max(vals)) if vals else np.nan


def discover(X: pd.DataFrame, y: np.ndarray, min_density: float = 0.8, max_boxes: int = 3,
             peel_alpha: float = 0.05, paste_alpha: float = 0.05,
             mass_min: float = 0.05) -> list[Box]:
    """PRIM boxes of ``y`` (bool) over the parameters ``X`` (see the module docstring)."""
    import warnings

    with warnings.catch_warnings():  # "ipyparallel not installed": not needed here
        warnings.simplefilter("ignore")
        from ema_workbench.analysis import prim

    y = np.asarray(y, bool)
    # neutral column names: EMA Workbench drops a column called "scenario" (its own name for
    # the experiment id), and ours may well be one
    names = list(X.columns)
    Xr = X.reset_index(drop=True)
    Xr.columns = [f"p{j}" for j in range(len(names))]
    logging.getLogger("EMA").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alg = prim.Prim(Xr, y, peel_alpha=peel_alpha, paste_alpha=paste_alpha, mass_min=mass_min)
        boxes: list[Box] = []
        while len(boxes) < max_boxes:
            box = alg.find_box()
            if box is None:
                break
            tr = box.peeling_trajectory.reset_index(drop=True)
            good = tr.index[tr["density"] >= min_density - 1e-12]
            i = int(tr.loc[good, "coverage"].idxmax()) if len(good) else int(tr["density"].idxmax())
            box.select(i)
            row = tr.loc[i]
            lim = _limits(box, i, Xr)
            lim["parameter"] = [names[int(c[1:])] for c in lim["parameter"]]
            if boxes and (row["density"] < min_density or lim.empty or row["k"] == 0):
                break  # later boxes are only kept when they meet the density asked for
            boxes.append(Box(number=len(boxes) + 1, coverage=float(row["coverage"]),
                             density=float(row["density"]), mass=float(row["mass"]),
                             n=int(row["n"]), k=int(row["k"]), limits=lim,
                             trajectory=tr[["coverage", "density", "mass", "res_dim", "n", "k"]],
                             chosen=i))
            if not len(good) or lim.empty:
                break
    # coverage of later boxes is reported by EMA relative to the cases left; make it absolute
    total = max(int(y.sum()), 1)
    for b in boxes:
        b.coverage = b.k / total
    return boxes


def run(runs: pd.DataFrame, outcome: str, below: float | None = None,
        above: float | None = None, params: list[str] | None = None, **kw: Any) -> Discovery:
    """The experiment table of ``runs`` (``runs.parquet``), the case of interest and the PRIM
    boxes; raises :class:`DiscoveryError` with a one-line reason when it cannot work."""
    if (below is None) == (above is None):
        raise DiscoveryError("give exactly one of --below and --above")
    X = parameter_table(runs, params)
    v, rule = case_of_interest(runs, outcome, below, above)
    v = v.reindex(X.index)
    defined = np.isfinite(v.to_numpy())
    X, v = X[defined], v[defined]
    warn = []
    if (~defined).sum():
        warn.append(f"{int((~defined).sum())} ok run(s) have no value of {outcome}: left out")
    if len(X) < MIN_RUNS:
        raise DiscoveryError(f"{len(X)} runs with a value of {outcome}: PRIM needs at least "
                             f"{MIN_RUNS} (it peels {kw.get('peel_alpha', 0.05):.0%} at a time)")
    y = (v.to_numpy() < below) if below is not None else (v.to_numpy() > above)
    if y.sum() < MIN_CASES:
        raise DiscoveryError(f"{int(y.sum())} of {len(y)} runs have {rule}: too few cases of "
                             f"interest (at least {MIN_CASES}); change the threshold")
    if y.all():
        raise DiscoveryError(f"every run has {rule}: nothing to tell apart; change the threshold")
    if len(X) < WARN_RUNS:
        warn.append(f"only {len(X)} runs: boxes from fewer than {WARN_RUNS} points are rough; "
                    "check their quasi-p-values and rerun with a larger sweep")
    boxes = discover(X, y, **kw)
    return Discovery(outcome=outcome, rule=rule, X=X, y=y, boxes=boxes,
                     left_out=int((~defined).sum()), warnings=warn)


# --------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------
def boxes_table(d: Discovery) -> pd.DataFrame:
    """One row per box and restricted parameter (a box restricting nothing has one row)."""
    rows = []
    for b in d.boxes:
        head = {"box": b.number, "rule": d.rule, "coverage": b.coverage, "density": b.density,
                "mass": b.mass, "n_runs_in_box": b.n, "n_cases_in_box": b.k,
                "base_density": d.base_density}
        if b.limits.empty:
            rows.append({**head, "parameter": "(none)"})
        for r in b.limits.to_dict("records"):
            rows.append({**head, **r})
    return pd.DataFrame(rows)


def describe(d: Discovery) -> str:
    """The boxes in words (printed by ``sim discover``)."""
    lines = [(f"Case of interest: {d.rule}: {int(d.y.sum())} of {len(d.y)} runs "
              f"(base density {d.base_density:.2f}); parameters: {', '.join(d.X.columns)}")]
    if not d.boxes:
        lines.append("PRIM found no box.")
    for b in d.boxes:
        lines.append(f"Box {b.number}: coverage {b.coverage:.2f} (holds {b.k} of "
                     f"{int(d.y.sum())} cases), density {b.density:.2f} ({b.k} of {b.n} runs "
                     f"in it), mass {b.mass:.2f}")
        if b.limits.empty:
            lines.append("  restricts no parameter (the whole space)")
        for r in b.limits.to_dict("records"):
            rng = (f"{{{r['values']}}} of {{{r['full_values']}}}" if r["values"] else
                   f"{r['min']:.4g} .. {r['max']:.4g}  (swept {r['full_min']:.4g} .. {r['full_max']:.4g})")
            qp = f"  quasi-p {r['qp_value']:.2g}" if np.isfinite(r["qp_value"]) else ""
            lines.append(f"  {r['parameter']}: {rng}{qp}")
    return "\n".join(lines)


README = """How to read this scenario discovery (sim discover)
=================================================
Question: under which values of the swept parameters do runs have {rule}?
{n_cases} of {n_runs} runs are cases of interest (base density {base:.2f}).  Parameters:
{params}.  Method: PRIM (EMA Workbench {ema_version}), peel_alpha {peel_alpha}, minimum
density {min_density}; each run is one point (replicates included).

boxes.csv  one row per box and restricted parameter:
  coverage   share of ALL cases of interest that fall inside the box (1 = the box explains
             every case);
  density    share of the runs inside the box that are cases of interest (1 = every run in
             the box is one); compare it with the base density;
  mass       share of all runs inside the box;
  min, max   the restricted range of a numeric parameter (full_min, full_max: the range
             swept); values / full_values for a categorical one (e.g. the scenario);
  qp_value   quasi-p-value of the restriction (one-sided binomial test, Bryant & Lempert
             2010): above about 0.05 the restriction may be noise.
  Box 2, 3, ... are found among the runs left outside the earlier boxes; their coverage is
  relative to all cases of interest.
trajectory.csv  the peeling trajectory of each box (coverage against density at each step;
             `chosen` marks the step reported).
discover.png  left: the peeling trajectory of box 1 (coverage vs density, the chosen step
             circled); middle: the restricted ranges of each box, scaled to the swept range;
             right: the runs over the two most restricted parameters (filled: case of
             interest) with box 1 drawn.
A box describes the model's runs under its assumptions, not the world; with few runs, or with
a parameter swept at two values only, a box can only say "low" or "high".
{warnings}
"""


def write(d: Discovery, out: Path, dpi: int = 110, **settings: Any) -> dict[str, Path]:
    """``boxes.csv``, ``trajectory.csv``, ``discover.png`` and ``README.txt`` into ``out``."""
    from importlib.metadata import version

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"boxes": out / "boxes.csv", "trajectory": out / "trajectory.csv",
             "plot": out / "discover.png", "readme": out / "README.txt"}
    boxes_table(d).to_csv(paths["boxes"], index=False)
    tr = [b.trajectory.assign(box=b.number, step=np.arange(len(b.trajectory)),
                              chosen=np.arange(len(b.trajectory)) == b.chosen) for b in d.boxes]
    (pd.concat(tr, ignore_index=True) if tr else pd.DataFrame()).to_csv(paths["trajectory"],
                                                                         index=False)
    plot(d, paths["plot"], dpi=dpi)
    paths["readme"].write_text(README.format(
        rule=d.rule, n_cases=int(d.y.sum()), n_runs=len(d.y), base=d.base_density,
        params=", ".join(d.X.columns), ema_version=version("ema_workbench"),
        peel_alpha=settings.get("peel_alpha", 0.05), min_density=settings.get("min_density", 0.8),
        warnings=("WARNINGS:\n" + "\n".join(f"- {w}" for w in d.warnings)) if d.warnings else ""),
        encoding="utf-8")
    return paths


def plot(d: Discovery, path, dpi: int = 110):
    """Peeling trajectory, box limits and the runs over the two most restricted parameters."""
    from matplotlib.patches import Rectangle

    from .figures import new_figure, save_figure

    fig = new_figure(14, 4.4)
    ax1, ax2, ax3 = (fig.add_subplot(1, 3, k) for k in (1, 2, 3))
    if d.boxes:
        b = d.boxes[0]
        tr = b.trajectory
        sc = ax1.scatter(tr["coverage"], tr["density"], c=tr["res_dim"], cmap="viridis", s=18)
        ax1.scatter([tr["coverage"].iloc[b.chosen]], [tr["density"].iloc[b.chosen]], s=120,
                    facecolors="none", edgecolors="#CC3311", linewidths=1.6, label="reported box")
        from matplotlib.ticker import MaxNLocator

        cb = fig.colorbar(sc, ax=ax1, label="restricted parameters")
        cb.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax1.legend(fontsize=7, loc="lower left")
    ax1.axhline(d.base_density, color="#777777", linestyle=":", linewidth=1)
    ax1.set_xlabel("coverage (share of all cases of interest in the box)", fontsize=8)
    ax1.set_ylabel("density (share of the box's runs that are cases)", fontsize=8)
    ax1.set_xlim(0, 1.02)
    ax1.set_ylim(0, 1.02)
    ax1.set_title("Peeling trajectory of box 1 (dotted: base density)", fontsize=9)

    params = list(d.X.columns)
    ypos, labels = [], []
    colours = ("#332288", "#CC6677", "#117733", "#DDCC77", "#88CCEE")
    for j, p in enumerate(params):
        ypos.append(j)
        labels.append(p if len(p) <= 38 else "…" + p[-37:])
        ax2.plot([0, 1], [j, j], color="#DDDDDD", linewidth=6, solid_capstyle="butt")
    for bi, b in enumerate(d.boxes):
        off = (bi - (len(d.boxes) - 1) / 2) * 0.18
        for r in b.limits.to_dict("records"):
            j = params.index(r["parameter"])
            if r["values"]:
                lo, hi = 0.0, 1.0
                txt = "{" + r["values"] + "}"
            else:
                span = (r["full_max"] - r["full_min"]) or 1.0
                lo, hi = (r["min"] - r["full_min"]) / span, (r["max"] - r["full_min"]) / span
                txt = f"{r['min']:.3g} .. {r['max']:.3g}"
            ax2.plot([lo, hi], [j + off, j + off], color=colours[bi % len(colours)], linewidth=4,
                     solid_capstyle="butt", label=f"box {b.number}")
            ax2.text(hi + 0.01, j + off, txt, fontsize=6, va="center")
    handles = {}
    for line in ax2.get_lines():
        lab = line.get_label()
        if lab.startswith("box") and lab not in handles:
            handles[lab] = line
    if handles:
        ax2.legend(handles.values(), handles.keys(), fontsize=7, loc="lower right")
    ax2.set_ylim(-0.7, len(params) - 0.3)
    ax2.set_yticks(ypos)
    ax2.set_yticklabels(labels, fontsize=7)
    ax2.set_xlim(-0.02, 1.3)
    ax2.set_xticks([0, 0.5, 1])
    ax2.set_xticklabels(["swept min", "mid", "swept max"], fontsize=7)
    ax2.set_title("Restricted ranges (grey: range swept)", fontsize=9)

    num = [p for p in params if pd.api.types.is_numeric_dtype(d.X[p])]
    order = []
    if d.boxes:
        order = [r["parameter"] for r in d.boxes[0].limits.sort_values("qp_value").to_dict("records")
                 if r["parameter"] in num]
    order += [p for p in num if p not in order]
    if len(order) >= 1:
        px = order[0]
        py = order[1] if len(order) > 1 else None
        yv = d.X[py] if py else pd.Series(np.random.default_rng(0).uniform(0, 1, len(d.X)),
                                            index=d.X.index)
        # jitter: visible when a parameter was swept at a few values (runs on top of each other)
        sd = [0.015 if d.X[c].nunique() <= 10 else 0.003 for c in (px, py or px)]
        jitter = np.random.default_rng(1).normal(0, 1, (2, len(d.X))) * np.array(sd)[:, None]
        spanx = float(np.ptp(d.X[px])) or 1.0
        spany = float(np.ptp(yv)) or 1.0
        xs, ys = d.X[px] + jitter[0] * spanx, yv + jitter[1] * spany
        ax3.scatter(xs[~d.y], ys[~d.y], s=14, facecolors="none", edgecolors="#888888",
                    label="other runs")
        ax3.scatter(xs[d.y], ys[d.y], s=14, color="#CC3311", label="case of interest")
        if d.boxes:
            lim = d.boxes[0].limits.set_index("parameter")
            x0, x1 = (lim.loc[px, ["min", "max"]] if px in lim.index else (d.X[px].min(), d.X[px].max()))
            if py:
                y0, y1 = (lim.loc[py, ["min", "max"]] if py in lim.index else (yv.min(), yv.max()))
            else:
                y0, y1 = 0.0, 1.0
            ax3.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#CC3311",
                                    linestyle="--", linewidth=1.2, label="box 1"))
        ax3.set_xlabel(px, fontsize=8)
        ax3.set_ylabel(py or "(jitter)", fontsize=8)
        ax3.legend(fontsize=7, loc="best")
    ax3.set_title("Runs over the most restricted parameters", fontsize=9)
    for ax in (ax1, ax2, ax3):
        ax.tick_params(labelsize=7)
    fig.suptitle(f"Scenario discovery (PRIM): {d.rule}: {int(d.y.sum())} of {len(d.y)} runs",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi)
