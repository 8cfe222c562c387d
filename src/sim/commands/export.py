"""``sim export RUN``: the control layer of a run as GeoTIFF or GeoPackage for GIS tools.

    sim export outputs/baseline_2017/<run>                       # GeoTIFF, first and last step
    sim export RUN --format gpkg --dates 2018-01-01 2019-06-01   # one GeoPackage, a table a date
    sim export RUN --format geotiff --dates 2018-07-01 --out gis/

Files go to ``RUN/gis/`` unless ``--out`` says otherwise.  See :mod:`sim.export`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from ..export import FORMATS

    p = argparse.ArgumentParser(prog="sim export",
                                description="Export a run's control layer for GIS tools.")
    p.add_argument("run", help="run folder (with control.nc) or a control.nc file")
    p.add_argument("--format", default="geotiff", choices=FORMATS,
                   help="geotiff: one file per date; gpkg: one GeoPackage (default geotiff)")
    p.add_argument("--dates", nargs="+", default=None, metavar="YYYY-MM-DD",
                   help="dates to export (nearest stored step; default: first and last step)")
    p.add_argument("--out", default=None, help="output folder (default RUN/gis)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(list(argv or []))
    from ..export import export_control

    try:
        paths = export_control(Path(args.run), args.format, args.dates, args.out)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"sim export: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0
