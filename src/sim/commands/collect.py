"""``sim collect DIR``: gather a sweep's runs into ``runs.parquet`` + ``timeseries.parquet``
and draw the ensemble figures.

    sim collect multirun/2026-01-01_12-00-00_cli_1a2b3c4d
    sim collect DIR --map-dates 2017-11-01,2018-06-01,2019-06-01 --no-background
    sim collect DIR --no-plots --strict         # exit code 1 if any run is not ok

Writes into DIR (or ``--out``): ``runs.parquet`` (one row per run: overrides, status
ok/failed/incomplete/missing, scalar outcomes), ``timeseries.parquet`` (every ok run's time
series, long, with run_id/scenario/seed/replicate) and ``ensemble/*.png`` (bands, control
probability maps, key places; see :mod:`sim.ensemble`).  Runs that are not ok are listed on
stderr; they are never dropped silently.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sim collect", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path, help="a sweep directory (multirun/...) or any folder of runs")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: DIR)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("--map-dates", default="",
                   help="comma-separated dates of the control-probability maps "
                        "(default: first, middle and last step)")
    p.add_argument("--no-background", action="store_true",
                   help="maps without terrain/borders (faster)")
    p.add_argument("--dpi", type=int, default=110)
    p.add_argument("--strict", action="store_true", help="exit code 1 if any run is not ok")
    return p


def main(argv: list[str]) -> int:
    from ..collect import collect, report, write

    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        col = collect(args.dir)
    except FileNotFoundError as e:
        print(f"sim collect: {e}")
        return 2
    out = args.out or args.dir
    paths = write(col, out)
    report(col)
    print(f"wrote {paths['runs']} ({len(col.runs)} rows) and {paths['timeseries']} "
          f"({len(col.timeseries)} rows) in {time.perf_counter() - t0:.1f} s")
    if not args.no_plots and len(col.ok):
        from ..ensemble import ensemble_plots

        dates = [d.strip() for d in args.map_dates.split(",") if d.strip()] or None
        figs = ensemble_plots(col, Path(out) / "ensemble", map_dates=dates,
                              background=not args.no_background, dpi=args.dpi)
        for p in figs.values():
            print(f"  {p}")
    if args.strict and len(col.problems):
        return 1
    return 0
