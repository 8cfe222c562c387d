"""``sim compare A B [C ...]``: paired comparison of configurations (B - A, C - A, ...).

Each argument is a scenario name (``configs/scenario/NAME.yaml``) or a directory of runs (a
sweep, or the output of an earlier ``sim compare``).  A directory holding several
configurations (scenarios, or values of a swept parameter) is compared as a whole, the
reference first, or one configuration is picked with ``DIR:SELECTION``: a scenario name or
``key=value`` items (a key may be shortened to its last parts, e.g. ``strength=0``), separated
by blanks.  ``./NAME`` reads a folder named like a scenario.  Runs of different parameter
values are never pooled into one arm.  Scenario names are run together as one sweep with the
same seed and replicate indices for every scenario, so paired runs share their random streams
(common random numbers) and differences are mostly the scenario's effect:

    sim compare baseline_2017 us_withdrawal --seeds 10 --geography res_010
    sim compare baseline_2017 us_withdrawal turkey_intervention --seeds 20 --weeks 52
    sim compare multirun/2026-01-01_12-00-00_cli_1a2b3c4d        # A = baseline_2017 if present
    sim compare multirun/sweep --reference strength=1.5          # a parameter sweep
    sim compare baseline_2017 us_withdrawal --seeds 5 -- combat.loss_noise=0.5   # extra overrides

Writes into ``--out`` (default ``outputs/compare/<A>_vs_<B>/<time>_<token>``):

* ``runs/``                          the paired ensemble (if any scenario name was given)
* ``differences.csv``                per outcome: mean paired difference B - A, bootstrap 95%
                                     CI, effect size d_z, sign-flip p-value and the p adjusted
                                     for the number of outcomes (Holm or BH) (printed)
* ``README.txt``                     how to read ``differences.csv``
* ``diff_metrics_<B>_vs_<A>.png``    bands of B - A over time for key metrics
* ``diff_territory_<B>_vs_<A>.png``  bands of B - A of each faction's territory share
* ``diff_maps_<B>_vs_<A>.png``       difference of control probability, per faction
* ``bands.png``                      median and 10-90% bands of every arm

Runs that cannot be read (truncated files) are listed with the reason and left out; bad
options are rejected before any run starts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import split_extra

METRICS_TERRITORY = "share_territory_area"


@dataclass
class Arm:
    label: str
    root: Path
    runs: pd.DataFrame
    ts: pd.DataFrame
    group: str = ""


MIN_BOOT = 100


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sim compare", description="Paired comparison of scenarios: B - A over replicates "
        "with the same seeds (common random numbers).",
        epilog="Anything after -- is passed to `sim run -m` as Hydra overrides.")
    p.add_argument("arms", nargs="+", help="scenario names or run directories (DIR or "
                   "DIR:SELECTION); the first is A")
    p.add_argument("--seeds", type=int, default=10, help="replicates per scenario (default 10)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: the config's)")
    p.add_argument("--geography", default="res_010", help="geography config (default res_010)")
    p.add_argument("--weeks", type=int, default=None, help="horizon in weeks (default: scenario's)")
    p.add_argument("--launcher", default="local",
                   help="hydra launcher of the ensemble: local (default, all cores), basic, "
                        "joblib, submitit_local, slurm, ray_local")
    p.add_argument("--jobs", type=int, default=None, help="parallel runs (local and joblib launchers)")
    p.add_argument("--out", type=Path, default=None, help="output directory")
    p.add_argument("--reference", default=None,
                   help="which configuration is A when one directory holds several (a scenario "
                        "name or key=value items, as in DIR:SELECTION)")
    p.add_argument("--map-dates", default="", help="comma-separated dates of the difference maps "
                   "(default: the middle and last step)")
    p.add_argument("--boot", type=int, default=2000,
                   help=f"bootstrap resamples (default 2000, at least {MIN_BOOT})")
    p.add_argument("--correction", choices=("holm", "bh"), default="holm",
                   help="adjustment of the p-values for the number of outcomes: holm "
                        "(Holm-Bonferroni, default) or bh (Benjamini-Hochberg)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="level of the adjusted p-values marked significant (default 0.05)")
    p.add_argument("--no-maps", action="store_true", help="skip the difference maps")
    p.add_argument("--no-background", action="store_true", help="maps without terrain/borders")
    p.add_argument("--dpi", type=int, default=110)
    return p


def _check_args(args) -> str | None:
    """Why the options cannot work (checked before anything runs), or None."""
    if args.seeds < 1:
        return f"--seeds {args.seeds}: need at least 1 replicate per scenario"
    if args.boot < MIN_BOOT:
        return f"--boot {args.boot}: need at least {MIN_BOOT} bootstrap resamples"
    if args.weeks is not None and args.weeks < 1:
        return f"--weeks {args.weeks}: need at least 1 week"
    if args.jobs is not None and args.jobs < 1:
        return f"--jobs {args.jobs}: need at least 1"
    if not 0 < args.alpha < 1:
        return f"--alpha {args.alpha}: expected a level between 0 and 1"
    if not 10 <= args.dpi <= 1200:
        return f"--dpi {args.dpi}: expected 10..1200"
    for d in (x.strip() for x in args.map_dates.split(",")):
        if d:
            try:
                pd.Timestamp(d)
            except ValueError:
                return f"--map-dates: {d!r} is not a date (YYYY-MM-DD)"
    return None


def _is_scenario(name: str) -> bool:
    from ..compose import config_dir

    return (config_dir() / "scenario" / f"{name}.yaml").exists()


def _split_dir_arg(arg: str) -> tuple[Path, str | None] | None:
    """(directory, selection or None) if ``arg`` names runs on disk, None for a scenario name.
    A bare scenario name is always the scenario (write ``./NAME`` for a folder of that name)."""
    if "/" not in arg and _is_scenario(arg):
        return None
    p = Path(arg)
    if p.is_dir():
        return p, None
    if ":" in arg:
        d, s = arg.split(":", 1)
        if Path(d).is_dir():
            return Path(d), s
    return None


def matches(group: str, selection: str) -> bool:
    """Whether configuration ``group`` has every item of ``selection`` (blank-separated
    scenario names or ``key=value`` items; a key may be given by its last dotted parts)."""
    items = str(group).split()
    for tok in selection.split():
        if "=" not in tok:
            tok = f"scenario={tok}"
        if not any(it == tok or it.endswith("." + tok) for it in items):
            return False
    return True


def run_ensemble(names: list[str], out: Path, args, extra: list[str]) -> int:
    """Run the paired ensemble of scenario ``names`` as one sweep into ``out``."""
    from ..jobs import merge_overrides

    ov = [f"scenario={','.join(names)}", f"replicate=range({args.seeds})",
          f"geography={args.geography}", "output.plots=false", "output.gif=false",
          f"hydra.sweep.dir={out}"]
    if args.launcher and args.launcher != "local":
        ov.append(f"hydra/launcher={args.launcher}")
    if args.jobs:
        ov.append(f"hydra.launcher.n_jobs={args.jobs}")
    if args.seed is not None:
        ov.append(f"seed={args.seed}")
    if args.weeks is not None:
        ov.append(f"scenario.weeks={args.weeks}")
    cmd = [sys.executable, "-m", "sim.cli", "run", "-m", *merge_overrides(ov, extra)]
    print("running: sim " + " ".join(cmd[3:]), flush=True)
    return subprocess.call(cmd)


class CompareError(Exception):
    """A one-line reason why the comparison cannot be made."""


def _arms_from_dir(d: Path, sel: str | None, reference: str | None, alone: bool) -> list[Arm]:
    from ..collect import group_labels, read, report

    col = read(d)
    report(col)
    runs, ts = col.runs, col.timeseries
    groups = col.groups
    labels = group_labels(groups)
    if sel is not None:
        groups = [g for g in groups if matches(g, sel)]
        if not groups:
            raise CompareError(f"{d}: no ok run matches {sel!r}; configurations: "
                               + "; ".join(labels.values()))
    if len(groups) > 1 and not alone:
        raise CompareError(f"{d} holds {len(groups)} configurations ("
                           + "; ".join(labels[g] for g in groups)
                           + f"); pick one with {d}:SELECTION (e.g. a scenario or key=value)")
    if reference:
        ref = [g for g in groups if matches(g, reference)]
        if len(ref) != 1:
            raise CompareError(f"--reference {reference!r} matches {len(ref)} of the "
                               f"configurations in {d} (" + "; ".join(labels[g] for g in groups)
                               + "); it must match exactly one")
        groups = ref + [g for g in groups if g != ref[0]]
    else:
        base = [g for g in groups if matches(g, "baseline_2017")]
        if len(base) == 1:
            groups = base + [g for g in groups if g != base[0]]
    arms = []
    for g in groups:
        r = runs[runs["group"].astype(str) == g]
        t = ts[ts["group"].astype(str) == g] if len(ts) else ts
        arms.append(Arm(labels[g], col.root, r, t, g))
    return arms


def _print_table(df: pd.DataFrame) -> None:
    cols = ["outcome", "n_pairs", "mean_A", "mean_B", "mean_diff", "ci95_low", "ci95_high",
            "effect_size_dz", "p_adjusted", "significant"]
    for b, sub in df.groupby("B", sort=False):
        show = sub[cols].copy()
        show["significant"] = show["significant"].map({True: "*", False: ""})
        show = show.rename(columns={"significant": "sig", "effect_size_dz": "d_z",
                                    "p_adjusted": "p_adj"})
        print(f"\nB = {b}   vs   A = {sub['A'].iloc[0]}")
        with pd.option_context("display.width", 220, "display.max_rows", 500,
                               "display.float_format", lambda v: f"{v:.4g}"):
            print(show.to_string(index=False))


def _tag(text: str) -> str:
    from ..ensemble import safe_tag

    return safe_tag(text, 60)


def main(argv: list[str]) -> int:
    from .. import ensemble as E
    from ..collect import NoRuns

    argv, extra = split_extra(argv)
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    problem = _check_args(args)
    if problem:
        print(f"sim compare: {problem}", file=sys.stderr)
        return 2

    names = [a for a in args.arms if _split_dir_arg(a) is None]
    unknown = [n for n in names if not _is_scenario(n)]
    if unknown:
        print(f"sim compare: {', '.join(unknown)}: neither a directory nor a scenario "
              f"(configs/scenario/*.yaml)", file=sys.stderr)
        return 2
    if len(args.arms) == 1 and names:
        print("sim compare: one scenario alone: give at least two, or a directory of runs",
              file=sys.stderr)
        return 2
    labels = [a if a in names else Path(a.split(":")[0]).name for a in args.arms]
    if args.out is None:
        from ..compose import new_uid

        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        args.out = Path("outputs") / "compare" / "_vs_".join(labels)[:120] / f"{stamp}_{new_uid()}"
    out = args.out

    try:
        arms = _gather(args, names, out, extra)
    except (CompareError, NoRuns, FileNotFoundError) as e:
        print(f"sim compare: {e}", file=sys.stderr)
        return 2 if not isinstance(e, _EnsembleFailed) else e.code
    if len(arms) < 2:
        print("sim compare: need at least two configurations to compare", file=sys.stderr)
        return 2
    seen: dict[str, int] = {}
    for arm in arms:  # unique labels (the same scenario read from two folders)
        if arm.label in seen:
            arm.label = f"{arm.label}@{arm.root.name}"
        seen[arm.label] = 1

    base = arms[0]
    tables = []
    dates = [d.strip() for d in args.map_dates.split(",") if d.strip()] or None
    cp_a = None
    for arm in arms[1:]:
        label = f"{arm.label} - {base.label}"
        tag = f"{_tag(arm.label)}_vs_{_tag(base.label)}"
        pairs, unpaired = E.pair_runs(base.runs, arm.runs, base.label, arm.label)
        if unpaired:
            print(f"WARNING: {len(unpaired)} run(s) without a partner are left out of "
                  f"{label}:\n  " + "\n  ".join(unpaired), file=sys.stderr)
        if pairs.empty:
            print(f"WARNING: no paired runs for {label}: nothing to compare", file=sys.stderr)
            continue
        if len(pairs) < E.MIN_PAIRS:
            print(f"WARNING: {label}: only {len(pairs)} pair(s) (fewer than {E.MIN_PAIRS}): the "
                  f"bootstrap CIs are too narrow and no p-value can be below "
                  f"{2 / 2 ** len(pairs):.3g}; run more --seeds", file=sys.stderr)
        for col in ("weeks", "geography", "start_date"):
            va = set(base.runs.set_index("run_id").loc[pairs["run_a"], col].astype(str))
            vb = set(arm.runs.set_index("run_id").loc[pairs["run_b"], col].astype(str))
            if va != vb:
                print(f"WARNING: {label}: the paired runs differ in {col} ({sorted(va)} vs "
                      f"{sorted(vb)}): the difference is not only the scenario's", file=sys.stderr)
        tab = E.outcome_differences(base.runs, arm.runs, pairs, base.label, arm.label,
                                    n_boot=args.boot, correction=args.correction,
                                    alpha=args.alpha)
        tab.insert(3, "group_A", base.group)
        tab.insert(4, "group_B", arm.group)
        tables.append(tab)
        if len(base.ts) and len(arm.ts):
            E.plot_diff_bands(base.ts, arm.ts, pairs, out / f"diff_metrics_{tag}.png", label,
                              E.DIFF_METRICS, dpi=args.dpi)
            facs = [f for f in base.ts.loc[base.ts["metric"] == METRICS_TERRITORY, "faction"]
                    .astype(str).unique() if f != "ALL"]
            E.plot_diff_bands(base.ts, arm.ts, pairs, out / f"diff_territory_{tag}.png", label,
                              [(METRICS_TERRITORY, f) for f in facs], ncol=3,
                              dpi=args.dpi, title=f"Territory share, paired difference {label} "
                              f"(median, 10-90% band, {len(pairs)} pairs)")
        if not args.no_maps:
            if dates is None:
                steps = sorted(pd.to_datetime(base.ts["date"]).unique()) if len(base.ts) else []
                dates = [str(pd.Timestamp(steps[len(steps) // 2]).date()),
                         str(pd.Timestamp(steps[-1]).date())] if steps else None
            if cp_a is None:
                cp_a = E.control_probability([base.root / r for r in pairs["run_a"]], dates)
            cp_b = E.control_probability([arm.root / r for r in pairs["run_b"]], dates)
            for d, why in cp_a.get("skipped", []) + cp_b.get("skipped", []):
                print(f"WARNING: {d}: {why}: left out of the difference maps", file=sys.stderr)
            if cp_a.get("prob") is not None and cp_b.get("prob") is not None:
                E.plot_control_probability_diff(cp_a, cp_b, out / f"diff_maps_{tag}.png",
                                                f"{label} ({len(pairs)} pairs)",
                                                background=not args.no_background, dpi=args.dpi)
            else:
                print(f"WARNING: no control.nc for {label}: no difference maps", file=sys.stderr)
    # bands of every arm together
    ts_all = []
    for arm in arms:
        if len(arm.ts):
            t = arm.ts.copy()
            t["group"] = arm.label
            t["run_id"] = arm.label + "/" + t["run_id"].astype(str)
            ts_all.append(t)
    if ts_all:
        E.plot_metric_bands(pd.concat(ts_all, ignore_index=True), out / "bands.png", dpi=args.dpi,
                            labels={a.label: a.label for a in arms})
    if not tables:
        print("sim compare: no paired runs at all", file=sys.stderr)
        return 1
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / "differences.csv", index=False)
    def family(g: pd.DataFrame) -> int:
        return int((g["p_value"].notna() & ((g["mean_diff"] != 0) | (g["sd_diff"] > 0))).sum())

    n_tests = ", ".join(f"{family(g)} outcomes for {b}" for b, g in table.groupby("B", sort=False))
    (out / "README.txt").write_text(E.DIFFERENCES_README.format(
        n_boot=args.boot, correction_name=E.CORRECTION_NAMES[args.correction], alpha=args.alpha,
        n_tests=n_tests, min_pairs=E.MIN_PAIRS), encoding="utf-8")
    print(f"\nPaired differences B - A (A = {base.label}); mean over pairs, bootstrap 95% CI "
          f"(unadjusted), d_z = mean/sd of the differences, p_adj = sign-flip p adjusted by "
          f"{E.CORRECTION_NAMES[args.correction]} over the outcomes of each comparison; "
          f"* = p_adj < {args.alpha}.  See README.txt.")
    _print_table(table)
    print(f"\nwrote {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


class _EnsembleFailed(CompareError):
    def __init__(self, msg: str, code: int):
        super().__init__(msg)
        self.code = code


def _gather(args, names: list[str], out: Path, extra: list[str]) -> list[Arm]:
    """Read the folders given (first: a bad selection fails before any run starts), run the
    ensemble of the scenario names (if any), and return the arms in the order given."""
    from_dirs: dict[int, list[Arm]] = {}
    for k, a in enumerate(args.arms):
        da = _split_dir_arg(a)
        if da is not None:
            from_dirs[k] = _arms_from_dir(da[0], da[1], args.reference,
                                          alone=len(args.arms) == 1)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"
    ens: list[Arm] = []
    if names:
        rc = run_ensemble(names, runs_dir, args, extra)
        if rc not in (0, 3):
            raise _EnsembleFailed(f"the ensemble failed to start (exit code {rc})", rc)
        ens = _arms_from_dir(runs_dir, None, None, alone=True)
    arms: list[Arm] = []
    for k, a in enumerate(args.arms):
        if k in from_dirs:
            arms += from_dirs[k]
            continue
        mine = [x for x in ens if matches(x.group, a)]
        if not mine:
            raise CompareError(f"no ok run of {a} in {runs_dir}")
        if len(mine) > 1:
            raise CompareError(f"{a} has {len(mine)} configurations in {runs_dir} (a sweep "
                               "in the extra overrides?); compare that folder with "
                               "DIR:SELECTION instead")
        mine[0].label = a
        arms.append(mine[0])
    return arms
