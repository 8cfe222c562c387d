"""Global sensitivity analysis of outcomes to parameters (SALib).

A *design* (YAML, e.g. ``configs/experiment/sensitivity_lhs.yaml``) names the parameters (any
numeric config keys, as Hydra override paths) with their ranges, the outcomes (scalar keys of
``summary.json``), a method and a sample size::

    method: latin            # latin | morris | sobol
    samples: 16              # latin: points; morris: trajectories; sobol: base sample N
    replicates: 1            # runs per sample (seeds (seed, replicate)); outcomes are averaged
    seed: 1                  # seed of the sampling design
    overrides: [geography=res_010, scenario.weeks=26, output.plots=false, output.netcdf=false]
    parameters:
      scenario.isis_cohesion: [0.5, 1.5]
      combat.loss_noise: {bounds: [0.1, 0.6]}
      control.vacancy_weeks: {bounds: [0, 4], int: true}
    outcomes: [final_share_territory_area_ISIS, cum_displaced]

Methods and what they report:

* ``latin``  Latin-hypercube sample (``SALib.sample.latin``); Spearman rank correlation of
  each outcome with each parameter (the tornado plot) with a 95% CI (Fisher z, standard error
  1.06/sqrt(n-3)), and RBD-FAST first-order indices S1 (``SALib.analyze.rbd_fast``) only from
  :data:`MIN_SAMPLES` ``["rbd_fast"]`` samples on: below that they are refused (not computed).
* ``morris`` Morris elementary effects (``samples`` trajectories of D+1 runs): mu* (mean
  absolute effect, the bar length) with its bootstrap CI, sigma (interactions/non-linearity).
* ``sobol``  Saltelli/Sobol' sample of N(D+2) runs: first-order S1 and total ST indices with
  bootstrap CIs.

Every index comes with ``low``/``high`` (95% CI; ``conf`` is SALib's half-width).
:func:`design_warnings` says, before anything runs, when a design is too small for its method
(fewer than :data:`MIN_SAMPLES`); :func:`analyse` also warns when first-order indices leave
[0, 1] or sum past 1, which only a too-small sample produces.  ``README.txt`` in the output
folder says how to read the files.

Each sample runs as one job (:func:`sim.jobs.run_job`, so failures are recorded and a rerun
into the same ``--out`` skips finished runs) on ``n_jobs`` worker processes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("sim")

METHODS = ("latin", "morris", "sobol")
# Smallest designs that give usable indices (project rules, stated in the outputs):
#   spearman  n >= 10 points: the 95% CI of rho is then about +-0.6 wide; below it, noise only
#   rbd_fast  n >= 64 points: below, the bias-corrected S1 of RBD-FAST swings negative and sums
#             past 1 (tests/test_sensitivity.py measures it); not computed
#   morris    r >= 10 trajectories (Campolongo et al. 2007 use 10-20) for a stable mu* ranking
#   sobol     N >= 256 base samples: below, the bootstrap CIs of S1/ST are wider than the indices
MIN_SAMPLES = {"spearman": 10, "rbd_fast": 64, "morris": 10, "sobol": 256}


# --------------------------------------------------------------------------------------
# the design
# --------------------------------------------------------------------------------------
def load_design(path: Path) -> dict[str, Any]:
    import yaml

    d = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return normalise_design(d, str(path))


def schema_is_int(key: str) -> bool:
    """Whether the dotted config key (e.g. ``sieges.delay_weeks``) is an ``int`` in the schema
    of :mod:`sim.config`, so that sampled values are rounded without an ``int: true`` flag."""
    import dataclasses
    import typing

    from .config import Config

    cls: Any = Config
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return False
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return False
        cls = hints[part]
    return cls is int


def normalise_design(d: dict[str, Any], where: str = "design") -> dict[str, Any]:
    params = {}
    for k, v in (d.get("parameters") or {}).items():
        spec = {"bounds": v} if isinstance(v, (list, tuple)) else dict(v)
        lo, hi = (float(x) for x in spec["bounds"])
        if not hi > lo:
            raise ValueError(f"{where}: parameters.{k}: bounds must be [low, high] with high > low")
        params[str(k)] = {"bounds": [lo, hi], "int": bool(spec.get("int", schema_is_int(str(k))))}
    if len(params) < 2:
        raise ValueError(f"{where}: give at least two parameters")
    method = str(d.get("method", "latin"))
    if method not in METHODS:
        raise ValueError(f"{where}: method = {method!r}: allowed {', '.join(METHODS)}")
    outcomes = [str(o) for o in d.get("outcomes") or []]
    if not outcomes:
        raise ValueError(f"{where}: give at least one outcome (a scalar key of summary.json)")
    return {"method": method, "samples": int(d.get("samples", 16)),
            "replicates": int(d.get("replicates", 1)), "seed": int(d.get("seed", 1)),
            "num_levels": int(d.get("num_levels", 4)),
            "overrides": [str(o) for o in d.get("overrides") or []],
            "parameters": params, "outcomes": outcomes,
            "question": str(d.get("question", ""))}


def design_warnings(design: dict[str, Any]) -> list[str]:
    """Why the design is too small for its method (empty if it is not), stated before running."""
    n, m = design["samples"], design["method"]
    out = []
    if m == "latin":
        if n < MIN_SAMPLES["spearman"]:
            out.append(f"latin with {n} samples: Spearman correlations from fewer than "
                       f"{MIN_SAMPLES['spearman']} points are noise (their 95% CIs span most of "
                       "[-1, 1]); use --samples 64 or more for a study")
        if n < MIN_SAMPLES["rbd_fast"]:
            out.append(f"latin with {n} samples: RBD-FAST indices need at least "
                       f"{MIN_SAMPLES['rbd_fast']} samples and are not computed; Spearman only")
    elif m == "morris" and n < MIN_SAMPLES["morris"]:
        out.append(f"morris with {n} trajectories: mu* rankings are unstable below "
                   f"{MIN_SAMPLES['morris']} trajectories; read the CIs")
    elif m == "sobol" and n < MIN_SAMPLES["sobol"]:
        out.append(f"sobol with N = {n}: S1 and ST are unreliable below N = "
                   f"{MIN_SAMPLES['sobol']} (their CIs are wider than the indices)")
    return out


def problem(design: dict[str, Any]) -> dict[str, Any]:
    names = list(design["parameters"])
    return {"num_vars": len(names), "names": names,
            "bounds": [design["parameters"][n]["bounds"] for n in names]}


def sample(design: dict[str, Any]) -> np.ndarray:
    """The parameter sample (rows = samples) of the design's method."""
    prob = problem(design)
    n, seed = design["samples"], design["seed"]
    if design["method"] == "latin":
        from SALib.sample import latin

        X = latin.sample(prob, n, seed=seed)
    elif design["method"] == "morris":
        from SALib.sample import morris

        X = morris.sample(prob, n, num_levels=design["num_levels"], seed=seed)
    else:
        from SALib.sample import sobol

        X = sobol.sample(prob, n, calc_second_order=False, seed=seed)
    for j, name in enumerate(prob["names"]):
        if design["parameters"][name]["int"]:
            X[:, j] = np.round(X[:, j])
    return X


def _fmt(v: float, is_int: bool) -> str:
    return str(round(v)) if is_int else repr(float(v))


def jobs(design: dict[str, Any], X: np.ndarray, runs_dir: Path) -> pd.DataFrame:
    """One row per run: sample, replicate, run_id, overrides, parameter values."""
    names = list(design["parameters"])
    rows = []
    for i, x in enumerate(X):
        for r in range(design["replicates"]):
            ov = list(design["overrides"]) + [
                f"{n}={_fmt(v, design['parameters'][n]['int'])}" for n, v in zip(names, x)]
            ov.append(f"replicate={r}")
            rows.append({"sample": i, "replicate": r, "run_id": f"sample_{i:04d}_rep{r}",
                         "overrides": ov, **dict(zip(names, x))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------
def _job(overrides: list[str], outdir: str) -> dict[str, Any]:
    """One run in a worker process (composes the config there)."""
    from .compose import compose
    from .jobs import mark_failed, run_job
    from .runner import as_config

    out = Path(outdir)
    try:
        conf = as_config(compose(list(overrides)))
    except Exception as e:  # noqa: BLE001 - recorded, the other samples go on
        return mark_failed(out, f"config error: {type(e).__name__}: {e}", list(overrides))
    return run_job(conf, out, list(overrides), sweep=True)


def run_jobs(table: pd.DataFrame, runs_dir: Path, n_jobs: int = -1) -> list[dict[str, Any]]:
    """Run every job of ``table`` (in parallel), logging progress and ETA."""
    from joblib import Parallel, delayed

    runs_dir.mkdir(parents=True, exist_ok=True)
    total = len(table)
    t0 = time.time()
    results = []
    tasks = (delayed(_job)(list(r.overrides), str(runs_dir / r.run_id))
             for r in table.itertuples(index=False))
    par = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    for k, res in enumerate(par(tasks), start=1):
        results.append(res)
        counts[res.get("status", "failed")] = counts.get(res.get("status", "failed"), 0) + 1
        el = time.time() - t0
        ran = max(k - counts["skipped"], 1)
        eta = el / ran * (total - k)
        print(f"[sensitivity] {k}/{total} runs done (ok {counts['ok']}, failed {counts['failed']}, "
              f"skipped {counts['skipped']}) | elapsed {el:.0f} s | ETA {eta:.0f} s", flush=True)
    return results


# --------------------------------------------------------------------------------------
# analysis
# --------------------------------------------------------------------------------------
def outcome_matrix(design: dict[str, Any], table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Samples x outcomes (mean over the sample's ok replicates; NaN if none is ok)."""
    ok = runs[runs["status"] == "ok"].set_index("run_id")
    rows = []
    for i, grp in table.groupby("sample"):
        vals = {}
        for o in design["outcomes"]:
            got = [pd.to_numeric(ok.at[r, o], errors="coerce") if r in ok.index and o in ok.columns
                   else np.nan for r in grp["run_id"]]
            got = np.asarray(got, float)
            vals[o] = float(np.nanmean(got)) if np.isfinite(got).any() else np.nan
        rows.append({"sample": i, **vals})
    return pd.DataFrame(rows).set_index("sample").sort_index()


def spearman_ci(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Spearman's rho and its CI by Fisher's z with standard error 1.06/sqrt(n-3)
    (Fieller, Hartley & Pearson 1957); NaN bounds for n < 4."""
    from scipy import stats

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan, np.nan
    rho = float(stats.spearmanr(x, y).statistic)
    n = len(x)
    if n < 4:
        return rho, np.nan, np.nan
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    half = stats.norm.ppf(0.5 + level / 2) * 1.06 / np.sqrt(n - 3)
    return rho, float(np.tanh(z - half)), float(np.tanh(z + half))


def _first_order_check(o: str, name: str, vals: np.ndarray) -> str | None:
    vals = np.asarray(vals, float)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return None
    if vals.min() < -0.05 or vals.max() > 1.05 or vals.sum() > 1.1:
        return (f"{o}: {name} indices outside [0, 1] or summing past 1 (min {vals.min():.2f}, "
                f"sum {vals.sum():.2f}): the sample is too small for them; do not read them")
    return None


def analyse(design: dict[str, Any], X: np.ndarray, Y: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Long table ``outcome, parameter, index, value, conf, low, high`` (``conf``: half-width of
    the 95% CI as SALib reports it; ``low``/``high``: the 95% CI) and a list of warnings."""
    prob = problem(design)
    names = prob["names"]
    rows, warn = [], []
    for o in design["outcomes"]:
        y = Y[o].to_numpy(float) if o in Y else np.full(len(X), np.nan)
        ok = np.isfinite(y)
        if not ok.any():
            warn.append(f"{o}: no value in any run (unknown outcome or every run failed)")
            continue
        if design["method"] != "latin" and not ok.all():
            warn.append(f"{o}: {int((~ok).sum())} sample(s) without a value; {design['method']} "
                        "needs every sample (rerun the failed ones): not analysed")
            continue
        Xo, yo = X[ok], y[ok]
        if np.ptp(yo) == 0:
            warn.append(f"{o}: the same value in every run: all indices 0")
            for n in names:
                rows.append((o, n, "constant", 0.0, 0.0, 0.0, 0.0))
            continue
        if design["method"] == "latin":
            for j, n in enumerate(names):
                rho, lo, hi = spearman_ci(Xo[:, j], yo)
                rows.append((o, n, "spearman_rho", rho, np.nan, lo, hi))
            if len(yo) < MIN_SAMPLES["rbd_fast"]:
                continue  # refused: design_warnings says so once
            M = int(min(10, max(1, (len(yo) - 1) // 4)))
            try:
                from SALib.analyze import rbd_fast

                with np.errstate(all="ignore"):
                    si = rbd_fast.analyze(prob, Xo, yo, M=M, seed=design["seed"])
                for j, n in enumerate(names):
                    v, c = float(si["S1"][j]), float(si["S1_conf"][j])
                    rows.append((o, n, "S1_rbd_fast", v, c, v - c, v + c))
                if (w := _first_order_check(o, "RBD-FAST S1", si["S1"])):
                    warn.append(w)
            except Exception as e:  # noqa: BLE001 - small samples
                warn.append(f"{o}: RBD-FAST failed ({e}); Spearman only")
        elif design["method"] == "morris":
            from SALib.analyze import morris

            si = morris.analyze(prob, Xo, yo, num_levels=design["num_levels"], seed=design["seed"])
            for j, n in enumerate(names):
                v, c = float(si["mu_star"][j]), float(si["mu_star_conf"][j])
                rows.append((o, n, "mu_star", v, c, v - c, v + c))
                rows.append((o, n, "sigma", float(si["sigma"][j]), np.nan, np.nan, np.nan))
                rows.append((o, n, "mu", float(si["mu"][j]), np.nan, np.nan, np.nan))
        else:
            from SALib.analyze import sobol

            with np.errstate(all="ignore"):
                si = sobol.analyze(prob, yo, calc_second_order=False, seed=design["seed"])
            for j, n in enumerate(names):
                for key in ("ST", "S1"):
                    v, c = float(si[key][j]), float(si[f"{key}_conf"][j])
                    rows.append((o, n, key, v, c, v - c, v + c))
            if (w := _first_order_check(o, "Sobol' S1", si["S1"])):
                warn.append(w)
    return pd.DataFrame(rows, columns=["outcome", "parameter", "index", "value", "conf", "low",
                                       "high"]), warn


README = """How to read this sensitivity study (sim sensitivity)
===================================================
Design: method {method}, {samples} samples x {replicates} replicate(s) = {n_runs} runs over
{n_par} parameters: {params}.
Outcomes: {outcomes}.

samples.csv    one row per run: sample index, replicate, parameter values, overrides.
outcomes.csv   one row per sample: each outcome averaged over its ok replicates.
indices.csv    outcome, parameter, index, value, conf, low, high.  low/high: 95% confidence
               interval of the index; conf: its half-width as SALib reports it.
  spearman_rho   (latin) rank correlation of the outcome with the parameter, -1..1; CI by
                 Fisher's z.  A CI that contains 0 means no detectable monotone effect.
  S1_rbd_fast    (latin, only from {min_rbd} samples on) share of the outcome's variance
                 explained by the parameter alone, 0..1; the S1 of all parameters sum to <= 1.
  mu_star, sigma (morris) mean absolute elementary effect (ranks importance, in the outcome's
                 units per full parameter range) and its spread (interactions, non-linearity).
  S1, ST         (sobol) first-order and total-order variance shares, 0..1; ST - S1 is the
                 share due to interactions.
sensitivity.png  the main index per outcome, largest on top, with its CI as error bars.
scatter.png      (latin) each outcome against each parameter: look at it before the indices.
runs/            the runs, collected (runs.parquet, timeseries.parquet).

Minimum sizes used here: Spearman {min_sp} points, RBD-FAST {min_rbd} points, Morris {min_mo}
trajectories, Sobol' N = {min_so}.  Indices outside [0, 1] or first-order indices summing past
1 only come from too small a sample.
{warnings}
"""


MAIN_INDEX = {"latin": "spearman_rho", "morris": "mu_star", "sobol": "ST"}
INDEX_LABEL = {"spearman_rho": "Spearman rank correlation with the outcome",
               "mu_star": "Morris mu* (mean |elementary effect|)",
               "ST": "Sobol' total-order index ST"}


def plot_tornado(design: dict[str, Any], idx: pd.DataFrame, path, dpi: int = 110):
    """One panel per outcome: horizontal bars of the method's main index, largest on top."""
    from .figures import new_figure, save_figure

    main = MAIN_INDEX[design["method"]]
    outs = [o for o in design["outcomes"] if (idx["outcome"] == o).any()]
    n = max(len(outs), 1)
    ncol = min(2, n)
    nrow = int(np.ceil(n / ncol))
    npar = len(design["parameters"])
    fig = new_figure(5.2 * ncol, (0.35 * npar + 1.1) * nrow + 0.5)
    for k, o in enumerate(outs):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        sub = idx[(idx["outcome"] == o) & (idx["index"].isin([main, "constant"]))]
        sub = sub.assign(mag=sub["value"].abs()).sort_values("mag")
        colours = ["#CC6677" if v > 0 else "#4477AA" for v in sub["value"]]
        xerr = None
        if sub["low"].notna().any():
            xerr = np.vstack([(sub["value"] - sub["low"]).clip(lower=0).fillna(0).to_numpy(),
                              (sub["high"] - sub["value"]).clip(lower=0).fillna(0).to_numpy()])
        ax.barh(sub["parameter"], sub["value"], color=colours, xerr=xerr, ecolor="#333333",
                capsize=2)
        if design["method"] == "sobol":
            s1 = idx[(idx["outcome"] == o) & (idx["index"] == "S1")].set_index("parameter")
            ax.scatter(s1.reindex(sub["parameter"])["value"], sub["parameter"], marker="|",
                       color="black", s=80, zorder=5, label="S1")
            ax.legend(fontsize=6)
        ax.axvline(0, color="#444444", linewidth=0.6)
        const = (sub["index"] == "constant").all()
        ax.set_title(o + (" (the same in every run)" if const else ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel(INDEX_LABEL[main], fontsize=7)
    small = " - design below the minimum size, see README.txt" if design_warnings(design) else ""
    fig.suptitle(f"Sensitivity ({design['method']}, {design['samples']} samples; bars: 95% CI)"
                 f"{small}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def plot_scatter(design: dict[str, Any], table: pd.DataFrame, Y: pd.DataFrame, path, dpi: int = 100):
    """Outcome vs parameter scatter, one panel per (outcome, parameter)."""
    from .figures import new_figure, save_figure

    names = list(design["parameters"])
    outs = design["outcomes"]
    X = table.drop_duplicates("sample").set_index("sample")[names].sort_index()
    fig = new_figure(2.2 * len(names) + 0.5, 1.9 * len(outs) + 0.5)
    for r, o in enumerate(outs):
        for c, n in enumerate(names):
            ax = fig.add_subplot(len(outs), len(names), r * len(names) + c + 1)
            if o in Y:
                ax.scatter(X[n], Y[o].reindex(X.index), s=8, color="#332288", alpha=0.7)
            ax.tick_params(labelsize=6)
            if r == len(outs) - 1:
                ax.set_xlabel(n, fontsize=6)
            if c == 0:
                ax.set_ylabel(o, fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def run_study(design: dict[str, Any], out: Path, n_jobs: int = -1, dpi: int = 110) -> dict[str, Any]:
    """Sample, run, collect, analyse and plot; returns paths, indices and warnings."""
    from .collect import collect, report, write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "design.json").write_text(json.dumps(design, indent=2) + "\n", encoding="utf-8")
    small = design_warnings(design)
    for w in small:
        print(f"WARNING: {w}", flush=True)
    X = sample(design)
    table = jobs(design, X, out / "runs")
    table.assign(overrides=table["overrides"].map(" ".join)).to_csv(out / "samples.csv", index=False)
    print(f"[sensitivity] {design['method']}: {len(X)} samples x {design['replicates']} "
          f"replicate(s) = {len(table)} runs -> {out / 'runs'}", flush=True)
    t0 = time.time()
    run_jobs(table, out / "runs", n_jobs=n_jobs)
    wall = time.time() - t0
    col = collect(out / "runs")
    write(col)
    report(col)
    Y = outcome_matrix(design, table, col.runs)
    Y.to_csv(out / "outcomes.csv")
    idx, warn = analyse(design, X, Y)
    idx.to_csv(out / "indices.csv", index=False)
    for w in warn:
        print(f"WARNING: {w}", flush=True)
    warn = small + warn
    (out / "README.txt").write_text(README.format(
        method=design["method"], samples=design["samples"], replicates=design["replicates"],
        n_runs=len(table), n_par=len(design["parameters"]),
        params=", ".join(f"{k} [{v['bounds'][0]:g}, {v['bounds'][1]:g}]"
                         for k, v in design["parameters"].items()),
        outcomes=", ".join(design["outcomes"]), min_sp=MIN_SAMPLES["spearman"],
        min_rbd=MIN_SAMPLES["rbd_fast"], min_mo=MIN_SAMPLES["morris"], min_so=MIN_SAMPLES["sobol"],
        warnings=("WARNINGS of this study:\n" + "\n".join(f"- {w}" for w in warn)) if warn
        else "No warnings: the design meets the minimum sizes."), encoding="utf-8")
    paths = {"indices": out / "indices.csv", "outcomes": out / "outcomes.csv",
             "readme": out / "README.txt"}
    if len(idx):
        paths["tornado"] = plot_tornado(design, idx, out / "sensitivity.png", dpi=dpi)
    if design["method"] == "latin":
        paths["scatter"] = plot_scatter(design, table, Y, out / "scatter.png")
    return {"paths": paths, "indices": idx, "warnings": warn, "wall_seconds": wall,
            "n_runs": len(table), "problems": col.problems}
