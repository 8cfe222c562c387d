"""``sim discover DIR``: scenario discovery with PRIM over a sweep (see :mod:`sim.discover`).

    sim discover multirun/sweep --outcome vacuum_share_SDF --below 0.1
    sim discover outputs/sensitivity/sensitivity_lhs/RUN --outcome cum_displaced --above 2e6
    sim discover DIR --outcome isis_defeat_date --above 300 --params isis_cohesion,capture_ratio

DIR is any folder of runs (a ``sim run -m`` sweep, a ``sim sensitivity`` output, a compare
``runs/`` folder); it is collected first if needed (:mod:`sim.collect`).  The parameters are the
overrides that vary between the runs (seed and replicate aside).  Writes ``boxes.csv``,
``trajectory.csv``, ``discover.png`` and ``README.txt`` into ``--out`` (default
``DIR/discover/<outcome>_<below|above>_<threshold>``) and prints the boxes.  Bad options, an
unknown outcome and a threshold that no run (or every run) meets fail before PRIM runs, with
one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sim discover",
                                description="Scenario discovery (PRIM) over a sweep's parameters.")
    p.add_argument("dir", type=Path, help="a folder of runs (sweep, sensitivity output, ...)")
    p.add_argument("--outcome", required=True, help="a scalar outcome of summary.json "
                   "(e.g. vacuum_share_SDF; dates count as days from the start)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--below", type=float, default=None, help="case of interest: outcome < this")
    g.add_argument("--above", type=float, default=None, help="case of interest: outcome > this")
    p.add_argument("--params", default="",
                   help="comma-separated parameters to use (default: every swept override)")
    p.add_argument("--min-density", type=float, default=0.8,
                   help="report the box with the highest coverage whose density is at least "
                        "this (default 0.8)")
    p.add_argument("--max-boxes", type=int, default=3, help="at most this many boxes (default 3)")
    p.add_argument("--peel-alpha", type=float, default=0.05,
                   help="share of runs peeled per step (default 0.05)")
    p.add_argument("--mass-min", type=float, default=0.05,
                   help="smallest share of runs a box may hold (default 0.05)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--dpi", type=int, default=110)
    return p


def _check(args) -> str | None:
    if not args.dir.is_dir():
        return f"{args.dir}: no such directory"
    if not 0 < args.min_density <= 1:
        return f"--min-density {args.min_density}: expected a share in (0, 1]"
    if args.max_boxes < 1:
        return f"--max-boxes {args.max_boxes}: need at least 1"
    if not 0 < args.peel_alpha < 0.5:
        return f"--peel-alpha {args.peel_alpha}: expected a share in (0, 0.5)"
    if not 0 < args.mass_min < 1:
        return f"--mass-min {args.mass_min}: expected a share in (0, 1)"
    if not 10 <= args.dpi <= 1200:
        return f"--dpi {args.dpi}: expected 10..1200"
    return None


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    problem = _check(args)
    if problem:
        print(f"sim discover: {problem}", file=sys.stderr)
        return 2
    import warnings

    try:
        with warnings.catch_warnings():  # "ipyparallel not installed": not needed here
            warnings.simplefilter("ignore")
            import ema_workbench  # noqa: F401
    except ImportError:
        print('sim discover: EMA Workbench is not installed: pip install -e ".[discover]"',
              file=sys.stderr)
        return 2
    from .. import discover as D
    from ..collect import NoRuns, read, report

    try:
        col = read(args.dir)
    except (FileNotFoundError, NoRuns) as e:
        print(f"sim discover: {e}", file=sys.stderr)
        return 2
    report(col)
    params = [x.strip() for x in args.params.split(",") if x.strip()] or None
    settings = {"min_density": args.min_density, "max_boxes": args.max_boxes,
                "peel_alpha": args.peel_alpha, "mass_min": args.mass_min}
    try:
        d = D.run(col.runs, args.outcome, below=args.below, above=args.above, params=params,
                  **settings)
    except D.DiscoveryError as e:
        print(f"sim discover: {e}", file=sys.stderr)
        return 2
    for w in d.warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    side, thr = ("below", args.below) if args.below is not None else ("above", args.above)
    out = args.out or Path(args.dir) / "discover" / f"{args.outcome}_{side}_{thr:g}"
    paths = D.write(d, out, dpi=args.dpi, **settings)
    print(D.describe(d))
    print(f"\nwrote {out}: " + ", ".join(p.name for p in paths.values()))
    return 0
