"""GIS export of a run's control layer: ``sim export RUN --format geotiff|gpkg --dates ...``.

Reads ``RUN/control.nc`` and writes the controller (and the control level) at the stored
steps nearest to the chosen dates, georeferenced in WGS 84 (EPSG:4326), for QGIS or ArcGIS:

* ``geotiff``: one ``control_<date>.tif`` per date, two Int16 bands: 1 ``controller``
  (faction code as in ``control.nc``), 2 ``control_level`` (0 none .. 3 contested); nodata
  -2 (outside the theatre).  The faction codes and names are in the file's metadata
  (``FACTION_<code>=<name>``) and the band descriptions.
* ``gpkg``: one ``control.gpkg`` with one raster table per date (``control_<yyyy_mm_dd>``),
  the controller as an Int16 gridded coverage with the same codes (-2 outside the theatre;
  GDAL 3.12's GeoPackage driver does not keep a nodata value of an Int16 coverage, so none
  is declared there: set -2 as "no data" in the GIS).

Built on rasterio (GDAL); cells are the model's cells, so the transform is
``(res, 0, lon_min, 0, -res, lat_max)`` with row 0 at the north.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = ("geotiff", "gpkg")
NODATA = -2  # OUTSIDE: cells outside the theatre


def _grid(ds) -> tuple[float, float, float]:
    """``(res, lon_min, lat_max)`` of the cell edges from the cell-centre coordinates."""
    lat = np.asarray(ds["lat"].values, float)
    lon = np.asarray(ds["lon"].values, float)
    res_x = float(np.median(np.diff(lon))) if len(lon) > 1 else float(ds.attrs["resolution_deg"])
    res_y = float(-np.median(np.diff(lat))) if len(lat) > 1 else res_x
    if not np.isclose(res_x, res_y, rtol=1e-6) or res_y <= 0:
        raise ValueError(f"control.nc: cells are not square north-up cells (dlon {res_x}, "
                         f"dlat {-res_y})")
    return res_x, float(lon[0] - res_x / 2), float(lat[0] + res_x / 2)


def pick_steps(times: Sequence, dates: Sequence[str] | None) -> list[int]:
    """Indices of the stored steps nearest to ``dates`` (default: first and last step);
    a date outside the run's span is an error."""
    t = pd.DatetimeIndex(pd.to_datetime(np.asarray(times)))
    if not dates:
        return sorted({0, len(t) - 1})
    out = []
    for d in dates:
        try:
            ts = pd.Timestamp(d)
        except (ValueError, TypeError):
            raise ValueError(f"--dates: {d!r} is not a date (YYYY-MM-DD)") from None
        step = (t[1] - t[0]) if len(t) > 1 else pd.Timedelta(days=7)
        if ts < t[0] - step or ts > t[-1] + step:
            raise ValueError(f"--dates: {d} is outside the run ({t[0].date()} .. {t[-1].date()})")
        out.append(int(np.argmin(np.abs((t - ts).total_seconds()))))
    return out


def export_control(run_dir: Path | str, fmt: str, dates: Sequence[str] | None = None,
                   out_dir: Path | str | None = None) -> list[Path]:
    """Write the control layer of ``run_dir/control.nc`` at ``dates`` as ``fmt`` into
    ``out_dir`` (default ``run_dir/gis``); returns the files written."""
    import rasterio
    from rasterio.transform import from_origin

    from .outputs import CONTROL_FILE, WGS84_WKT, read_control

    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    src = run_dir / CONTROL_FILE if run_dir.is_dir() else run_dir
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file (run with output.netcdf=true)")
    ds = read_control(src)
    res, lon_min, lat_max = _grid(ds)
    transform = from_origin(lon_min, lat_max, res, res)
    times = pd.to_datetime(ds["time"].values)
    steps = pick_steps(times, dates)
    factions = [str(f) for f in ds["faction"].values]
    tags = {f"FACTION_{i}": f for i, f in enumerate(factions)}
    tags.update(UNGOVERNED="-1", OUTSIDE="-2", SOURCE=str(src.name),
                SCENARIO=str(ds.attrs.get("history", "")))
    crs = rasterio.crs.CRS.from_wkt(WGS84_WKT)
    out_dir = Path(out_dir) if out_dir else (run_dir if run_dir.is_dir() else run_dir.parent) / "gis"
    out_dir.mkdir(parents=True, exist_ok=True)
    ctrl = ds["controller"].values
    lvl = ds["contested"].values
    h, w = ctrl.shape[1:]
    written: list[Path] = []
    if fmt == "geotiff":
        for k in steps:
            day = str(times[k].date())
            path = out_dir / f"control_{day}.tif"
            profile = {"driver": "GTiff", "height": h, "width": w, "count": 2, "dtype": "int16",
                       "crs": crs, "transform": transform, "nodata": NODATA,
                       "compress": "deflate", "tiled": False}
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(ctrl[k].astype(np.int16), 1)
                dst.write(np.where(ctrl[k] == NODATA, NODATA, lvl[k]).astype(np.int16), 2)
                dst.set_band_description(1, f"controller {day} (faction code; -1 ungoverned)")
                dst.set_band_description(2, f"control level {day} (0 none, 1 full, "
                                            "2 dominant, 3 contested)")
                dst.update_tags(DATE=day, STEP=str(k), **tags)
            written.append(path)
    else:
        path = out_dir / "control.gpkg"
        if path.exists():
            path.unlink()
        for n, k in enumerate(steps):
            day = str(times[k].date())
            table = f"control_{day.replace('-', '_')}"
            profile = {"driver": "GPKG", "height": h, "width": w, "count": 1, "dtype": "int16",
                       "crs": crs, "transform": transform, "RASTER_TABLE": table,
                       "RASTER_DESCRIPTION": f"controller on {day} (faction code; -1 "
                                             "ungoverned, -2 outside the theatre)"}
            if n:
                profile["APPEND_SUBDATASET"] = "YES"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(ctrl[k].astype(np.int16), 1)
                dst.update_tags(DATE=day, STEP=str(k), **tags)
        written.append(path)
    return written
