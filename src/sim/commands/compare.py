"""``sim compare A B [C ...]``: paired comparison of scenarios (B - A, C - A, ...).

Each argument is a scenario name (``configs/scenario/NAME.yaml``) or a directory of runs (a
sweep, or the output of an earlier ``sim compare``; ``DIR:SCENARIO`` picks one scenario of a
directory holding several; ``./NAME`` for a folder named like a scenario).  The scenario names are run together as one sweep with the same
seed and replicate indices for every scenario, so paired runs share their random streams
(common random numbers) and differences are mostly the scenario's effect:

    sim compare baseline_2017 us_withdrawal --seeds 10 --geography res_010
    sim compare baseline_2017 us_withdrawal turkey_intervention --seeds 20 --weeks 52
    sim compare multirun/2026-01-01_12-00-00_cli_1a2b3c4d        # A = baseline_2017 if present
    sim compare baseline_2017 us_withdrawal --seeds 5 -- combat.loss_noise=0.5   # extra overrides

Writes into ``--out`` (default ``outputs/compare/<A>_vs_<B>/<time>_<token>``):

* ``runs/``                          the paired ensemble (if any scenario name was given)
* ``differences.csv``                outcome differences B - A with bootstrap 95% CIs (printed)
* ``diff_metrics_<B>_vs_<A>.png``    bands of B - A over time for key metrics
* ``diff_territory_<B>_vs_<A>.png``  bands of B - A of each faction's territory share
* ``diff_maps_<B>_vs_<A>.png``       difference of control probability, per faction
* ``bands.png``                      median and 10-90% bands of every arm
"""

from __future__ import annotations

import argparse
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sim compare", description="Paired comparison of scenarios: B - A over replicates "
        "with the same seeds (common random numbers).",
        epilog="Anything after -- is passed to `sim run -m` as Hydra overrides.")
    p.add_argument("arms", nargs="+", help="scenario names or run directories; the first is A")
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
                   help="label of A when one directory holds several scenarios")
    p.add_argument("--map-dates", default="", help="comma-separated dates of the difference maps "
                   "(default: the middle and last step)")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--no-maps", action="store_true", help="skip the difference maps")
    p.add_argument("--no-background", action="store_true", help="maps without terrain/borders")
    p.add_argument("--dpi", type=int, default=110)
    return p


def _is_scenario(name: str) -> bool:
    from ..compose import config_dir

    return (config_dir() / "scenario" / f"{name}.yaml").exists()


def _split_dir_arg(arg: str) -> tuple[Path, str | None] | None:
    """(directory, scenario or None) if ``arg`` names runs on disk, None for a scenario name.
    A bare scenario name is always the scenario (write ``./NAME`` for a folder of that name)."""
    if "/" not in arg and _is_scenario(arg):
        return None
    p = Path(arg)
    if p.is_dir():
        return p, None
    if ":" in arg:
        d, s = arg.rsplit(":", 1)
        if Path(d).is_dir():
            return Path(d), s
    return None


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


def _arms_from_dir(d: Path, scen: str | None, reference: str | None, alone: bool) -> list[Arm]:
    from ..collect import read, report

    col = read(d)
    report(col)
    runs, ts = col.runs, col.timeseries
    scens = sorted(str(s) for s in runs.loc[runs["status"] == "ok", "scenario"].dropna().unique())
    if scen is not None:
        scens = [scen]
    elif len(scens) > 1 and not alone:
        raise SystemExit(f"sim compare: {d} holds several scenarios ({', '.join(scens)}); "
                         f"pick one with {d}:SCENARIO")
    if reference and reference in scens:
        scens = [reference] + [s for s in scens if s != reference]
    elif "baseline_2017" in scens:
        scens = ["baseline_2017"] + [s for s in scens if s != "baseline_2017"]
    arms = []
    for s in scens:
        r = runs[runs["scenario"].astype(str) == s]
        t = ts[ts["scenario"].astype(str) == s] if len(ts) else ts
        arms.append(Arm(s, col.root, r, t))
    return arms


def _print_table(df: pd.DataFrame) -> None:
    show = df[["B", "outcome", "n_pairs", "mean_A", "mean_B", "mean_diff", "ci95_low", "ci95_high",
               "ci_excludes_0"]].copy()
    show["ci_excludes_0"] = show["ci_excludes_0"].map({True: "*", False: ""})
    show = show.rename(columns={"ci_excludes_0": "sig", "B": "B (vs A)"})
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.float_format", lambda v: f"{v:.4g}"):
        print(show.to_string(index=False))


def main(argv: list[str]) -> int:
    from .. import ensemble as E

    argv, extra = split_extra(argv)
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()

    names = [a for a in args.arms if _split_dir_arg(a) is None]
    unknown = [n for n in names if not _is_scenario(n)]
    if unknown:
        print(f"sim compare: {', '.join(unknown)}: neither a directory nor a scenario "
              f"(configs/scenario/*.yaml)", file=sys.stderr)
        return 2
    labels = [a if a in names else Path(a.split(":")[0]).name for a in args.arms]
    if args.out is None:
        from ..compose import new_uid

        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        args.out = Path("outputs") / "compare" / "_vs_".join(labels)[:120] / f"{stamp}_{new_uid()}"
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    runs_dir = out / "runs"
    if names:
        rc = run_ensemble(names, runs_dir, args, extra)
        if rc not in (0, 3):
            print(f"sim compare: the ensemble failed to start (exit code {rc})", file=sys.stderr)
            return rc
    arms: list[Arm] = []
    ens = None
    for a in args.arms:
        da = _split_dir_arg(a)
        if da is None:
            if ens is None:
                ens = {x.label: x for x in _arms_from_dir(runs_dir, None, None, alone=True)}
            if a not in ens:
                print(f"sim compare: no ok run of {a} in {runs_dir}", file=sys.stderr)
                return 1
            arms.append(ens[a])
        else:
            arms += _arms_from_dir(da[0], da[1], args.reference, alone=len(args.arms) == 1)
    if len(arms) < 2:
        print("sim compare: need at least two scenarios to compare", file=sys.stderr)
        return 2

    base = arms[0]
    tables = []
    dates = [d.strip() for d in args.map_dates.split(",") if d.strip()] or None
    cp_a = None
    for arm in arms[1:]:
        label = f"{arm.label} - {base.label}"
        tag = f"{arm.label}_vs_{base.label}"
        pairs, unpaired = E.pair_runs(base.runs, arm.runs, base.label, arm.label)
        if unpaired:
            print(f"WARNING: {len(unpaired)} run(s) without a partner are left out of "
                  f"{label}:\n  " + "\n  ".join(unpaired), file=sys.stderr)
        if pairs.empty:
            print(f"WARNING: no paired runs for {label}: nothing to compare", file=sys.stderr)
            continue
        for col in ("weeks", "geography", "start_date"):
            va = set(base.runs.set_index("run_id").loc[pairs["run_a"], col].astype(str))
            vb = set(arm.runs.set_index("run_id").loc[pairs["run_b"], col].astype(str))
            if va != vb:
                print(f"WARNING: {label}: the paired runs differ in {col} ({sorted(va)} vs "
                      f"{sorted(vb)}): the difference is not only the scenario's", file=sys.stderr)
        tab = E.outcome_differences(base.runs, arm.runs, pairs, base.label, arm.label,
                                    n_boot=args.boot)
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
            t["scenario"] = arm.label
            t["run_id"] = arm.label + "/" + t["run_id"].astype(str)
            ts_all.append(t)
    if ts_all:
        E.plot_metric_bands(pd.concat(ts_all, ignore_index=True), out / "bands.png", dpi=args.dpi)
    if not tables:
        print("sim compare: no paired runs at all", file=sys.stderr)
        return 1
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / "differences.csv", index=False)
    print(f"\nPaired differences B - A (A = {base.label}); mean over pairs, bootstrap 95% CI; "
          "* = CI excludes 0")
    _print_table(table)
    print(f"\nwrote {out} ({time.perf_counter() - t0:.1f} s)")
    return 0
