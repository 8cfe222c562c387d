"""``sim collect DIR``: gather a sweep's runs into ``runs.parquet`` + ``timeseries.parquet``
and draw the ensemble figures, one ensemble per configuration.

    sim collect multirun/2026-01-01_12-00-00_cli_1a2b3c4d
    sim collect DIR --map-dates 2017-11-01,2018-06-01,2019-06-01 --no-background
    sim collect DIR --no-plots --strict         # exit code 1 if any run is not ok
    sim collect DIR --pool                      # one ensemble per scenario, pooling parameters

Writes into DIR (or ``--out``): ``runs.parquet`` (one row per run: overrides as columns, its
configuration ``group``, status ok/failed/incomplete/unreadable/missing, scalar outcomes),
``timeseries.parquet`` (every ok run's time series, long, with run_id, group, scenario, seed,
replicate and the override columns) and ``ensemble/`` (bands, control probability maps, key
places, ``outcomes_by_group.csv`` and a ``README.txt`` on how to read them; see
:mod:`sim.ensemble`).  Statistics are computed per configuration: runs of different parameter
values are pooled only with ``--pool``.  Runs that are not ok (failed, killed, truncated files)
are listed on stderr with the reason and left out; they are never dropped silently.  A folder
without any run is an error (exit code 2).
"""

from __future__ import annotations

import argparse
import sys
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
    p.add_argument("--pool", action="store_true",
                   help="pool the configurations of each scenario into one ensemble (the "
                        "figures say so); by default every configuration is its own ensemble")
    p.add_argument("--dpi", type=int, default=110)
    p.add_argument("--strict", action="store_true", help="exit code 1 if any run is not ok")
    return p


def _dates(text: str) -> list[str]:
    import pandas as pd

    out = []
    for d in (x.strip() for x in text.split(",")):
        if d:
            try:
                out.append(str(pd.Timestamp(d).date()))
            except ValueError:
                raise ValueError(f"--map-dates: {d!r} is not a date (YYYY-MM-DD)") from None
    return out


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if not 10 <= args.dpi <= 1200:
            raise ValueError(f"--dpi {args.dpi}: expected 10..1200")
        dates = _dates(args.map_dates) or None
        if not args.dir.is_dir():
            raise ValueError(f"{args.dir}: no such directory")
    except ValueError as e:
        print(f"sim collect: {e}", file=sys.stderr)
        return 2
    from ..collect import NoRuns, collect, report, write

    t0 = time.perf_counter()
    try:
        col = collect(args.dir)
    except (FileNotFoundError, NoRuns) as e:
        print(f"sim collect: {e}", file=sys.stderr)
        return 2
    out = args.out or args.dir
    paths = write(col, out)
    report(col)
    print(f"wrote {paths['runs']} ({len(col.runs)} rows) and {paths['timeseries']} "
          f"({len(col.timeseries)} rows) in {time.perf_counter() - t0:.1f} s")
    if not args.no_plots and len(col.ok):
        from ..ensemble import ensemble_plots

        figs = ensemble_plots(col, Path(out) / "ensemble", map_dates=dates,
                              background=not args.no_background, dpi=args.dpi, pool=args.pool)
        for p in figs.values():
            print(f"  {p}")
    if not len(col.ok):
        print("sim collect: no run is ok: no ensemble statistics", file=sys.stderr)
        return 1
    if args.strict and len(col.problems):
        return 1
    return 0
