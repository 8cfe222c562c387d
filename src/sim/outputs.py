"""Output writers of one run: ``timeseries.parquet``, ``control.nc`` and ``summary.json``.

Every file is written atomically (:func:`atomic_path`): the writer fills a temporary file in
the destination directory, which is then renamed over the final name with :func:`os.replace`.
A run killed mid-write therefore leaves either the previous file or none, never a truncated one.

The files are deterministic: identical :class:`~sim.results.Results` give byte-identical
``timeseries.parquet`` and ``control.nc`` (no timestamps, fixed sort order, fixed compression
settings; the ``history`` attribute of ``control.nc`` names the writer, the scenario, seed and
overrides but no wall-clock time).  ``summary.json`` holds ``wall_seconds`` and
``phase_seconds`` and so differs between runs by design.

Layout of ``control.nc`` (CF-1.8), see :func:`control_dataset`::

    controller (time, lat, lon) int8     faction index, -1 ungoverned, -2 outside the theatre
    contested  (time, lat, lon) int8     control level: 0 none, 1 full, 2 dominant, 3 contested
    damage     (time, lat, lon) float32  destroyed share of housing, 0..1 (NaN outside the theatre)
    crs        ()               int32    grid mapping: WGS 84 (EPSG:4326), ``crs_wkt``/``spatial_ref``
    time       (time)           int32    days since the start date (calendar ``standard``)
    lat is north -> south (row 0 = north, as in the model arrays); lon is west -> east.

Every data variable names ``grid_mapping: crs``, so GDAL, QGIS and rioxarray read the CRS.
The int8 variables declare ``_FillValue`` -128 (never written: every cell has a value);
:func:`read_control` keeps them as int8 (``mask_and_scale`` off for them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from .results import OUTSIDE, TIMESERIES_COLUMNS, UNGOVERNED, Results

TIMESERIES_FILE = "timeseries.parquet"
CONTROL_FILE = "control.nc"
SUMMARY_FILE = "summary.json"

CONTROL_LEVELS = ("none", "full", "dominant", "contested")
INT8_FILL = np.int8(-128)  # _FillValue of controller/contested (no cell is ever missing)

#: WGS 84 geographic 2D (EPSG:4326) as OGC WKT 2 (what GDAL writes for EPSG:4326)
WGS84_WKT = (
    'GEOGCRS["WGS 84",ENSEMBLE["World Geodetic System 1984 ensemble",'
    'MEMBER["World Geodetic System 1984 (Transit)"],MEMBER["World Geodetic System 1984 (G730)"],'
    'MEMBER["World Geodetic System 1984 (G873)"],MEMBER["World Geodetic System 1984 (G1150)"],'
    'MEMBER["World Geodetic System 1984 (G1674)"],MEMBER["World Geodetic System 1984 (G1762)"],'
    'MEMBER["World Geodetic System 1984 (G2139)"],'
    'ELLIPSOID["WGS 84",6378137,298.257223563,LENGTHUNIT["metre",1]],'
    'ENSEMBLEACCURACY[2.0]],PRIMEM["Greenwich",0,ANGLEUNIT["degree",0.0174532925199433]],'
    'CS[ellipsoidal,2],AXIS["geodetic latitude (Lat)",north,ORDER[1],'
    'ANGLEUNIT["degree",0.0174532925199433]],AXIS["geodetic longitude (Lon)",east,ORDER[2],'
    'ANGLEUNIT["degree",0.0174532925199433]],USAGE[SCOPE["Horizontal component of 3D system."],'
    'AREA["World."],BBOX[-90,-180,90,180]],ID["EPSG",4326]]')

TIMESERIES_SCHEMA = pa.schema([
    pa.field("date", pa.timestamp("ns"), nullable=False),
    pa.field("step", pa.int32(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("faction", pa.string(), nullable=False),
    pa.field("value", pa.float64()),
])
PARQUET_COMPRESSION = "zstd"
NETCDF_COMPLEVEL = 4

_PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: _PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    The temporary file lives in the same directory (so :func:`os.replace` is an atomic
    rename on the same file system) and already exists, empty, when yielded; writers may
    overwrite or truncate it.  If the body raises, the temporary file is removed and
    ``path`` is left untouched (an older file of that name survives).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the usual permissions
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:  # flush to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(path: _PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``; return ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


# --------------------------------------------------------------------------------------
# time series (Parquet)
# --------------------------------------------------------------------------------------
def _as_ns(values) -> np.ndarray:
    """Dates as tz-naive ``datetime64[ns]``."""
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").to_numpy(dtype="datetime64[ns]")


def tidy_timeseries(ts: pd.DataFrame) -> pd.DataFrame:
    """The time series with canonical dtypes, sorted by (metric, faction, date, step)."""
    missing = [c for c in TIMESERIES_COLUMNS if c not in ts.columns]
    if missing:
        raise ValueError(f"timeseries is missing columns {missing}; "
                         f"expected {list(TIMESERIES_COLUMNS)}")
    df = pd.DataFrame({
        "date": _as_ns(ts["date"].to_numpy()),
        "step": ts["step"].to_numpy().astype(np.int32),
        "metric": [str(m) for m in ts["metric"]],
        "faction": [str(f) for f in ts["faction"]],
        "value": ts["value"].to_numpy().astype(np.float64),
    })
    df = df.sort_values(["metric", "faction", "date", "step"], kind="mergesort")
    return df.reset_index(drop=True)


def _timeseries_table(ts: pd.DataFrame) -> pa.Table:
    df = tidy_timeseries(ts)
    arrays = [
        pa.array(df["date"].to_numpy(), type=pa.timestamp("ns")),
        pa.array(df["step"].to_numpy(), type=pa.int32()),
        pa.array(df["metric"].tolist(), type=pa.string()),
        pa.array(df["faction"].tolist(), type=pa.string()),
        pa.array(df["value"].to_numpy(), type=pa.float64()),
    ]
    # no pandas metadata: the bytes then depend on the data and the pyarrow version only
    return pa.Table.from_arrays(arrays, schema=TIMESERIES_SCHEMA)


def write_timeseries(results: Results, path: _PathLike) -> Path:
    """Write ``results.timeseries`` as tidy Parquet (deterministic bytes)."""
    table = _timeseries_table(results.timeseries)

    def _write(tmp: Path) -> None:
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION, version="2.6",
                       use_dictionary=True, write_statistics=True)

    return atomic_write(path, _write)


def read_timeseries(path: _PathLike) -> pd.DataFrame:
    """Read a ``timeseries.parquet`` back with the canonical dtypes."""
    table = pq.read_table(path)
    df = table.to_pandas()
    df["date"] = df["date"].astype("datetime64[ns]")
    df["step"] = df["step"].astype(np.int32)
    df["value"] = df["value"].astype(np.float64)
    return df[list(TIMESERIES_COLUMNS)]


# --------------------------------------------------------------------------------------
# control maps (NetCDF)
# --------------------------------------------------------------------------------------
def _flag_word(name: str) -> str:
    """CF ``flag_meanings`` are blank-separated words: no blanks inside a meaning."""
    return "_".join(str(name).split())


def _check_cube(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"results.{name} has shape {arr.shape}, expected {shape} "
                         "(len(dates), rows, cols)")
    return arr


def _as_int8(name: str, arr: np.ndarray, lo: int, hi: int) -> np.ndarray:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"results.{name} has values outside [{lo}, {hi}]")
    return arr.astype(np.int8, copy=False)


def control_dataset(results: Results) -> xr.Dataset:
    """The control, control-level and damage histories as a CF-1.8 :class:`xarray.Dataset`.

    Dims ``(time, lat, lon)``; ``lat`` north -> south as stored (row 0 = north).  The
    ``faction`` coordinate (dim ``faction``) names the controller codes ``0..F-1``.
    """
    geo = results.geo
    factions = [str(f) for f in results.factions]
    times = _as_ns(list(results.dates))
    shape = (len(times), *geo.grid.shape)
    control = _as_int8("control", _check_cube("control", results.control, shape),
                       OUTSIDE, len(factions) - 1)
    level = _as_int8("control_level", _check_cube("control_level", results.control_level, shape),
                     0, len(CONTROL_LEVELS) - 1)
    damage = _check_cube("damage", results.damage, shape).astype(np.float32, copy=False)

    dims = ("time", "lat", "lon")
    codes = np.array([OUTSIDE, UNGOVERNED, *range(len(factions))], dtype=np.int8)
    controller = xr.Variable(dims, control, attrs={
        "long_name": "controlling faction",
        "flag_values": codes,
        "flag_meanings": " ".join(["outside", "ungoverned", *map(_flag_word, factions)]),
        "factions": ",".join(factions),
        "ungoverned": np.int8(UNGOVERNED),
        "outside": np.int8(OUTSIDE),
        "comment": ("index into the faction coordinate; -1 = theatre cell nobody holds, "
                    "-2 = cell outside the theatre (other countries, sea, lakes)"),
        "grid_mapping": "crs",
    })
    contested = xr.Variable(dims, level, attrs={
        "long_name": "control level (Kalyvas)",
        "flag_values": np.arange(len(CONTROL_LEVELS), dtype=np.int8),
        "flag_meanings": " ".join(CONTROL_LEVELS),
        "comment": ("0 none: no faction present; 1 full: one faction holds the cell alone; "
                    "2 dominant: the controller clearly outweighs its rivals; "
                    "3 contested: rival factions are comparably strong"),
        "grid_mapping": "crs",
    })
    outside = control == OUTSIDE
    if outside.any():  # no housing outside the theatre: nodata there
        damage = np.where(outside, np.float32(np.nan), damage).astype(np.float32)
    damage_v = xr.Variable(dims, damage, attrs={
        "long_name": "destroyed share of housing",
        "units": "1",
        "valid_min": np.float32(0.0),
        "valid_max": np.float32(1.0),
        "grid_mapping": "crs",
        "comment": "NaN (_FillValue) outside the theatre",
    })
    crs = xr.Variable((), np.int32(0), attrs=crs_attrs())
    colours = [str(results.colours.get(f, "")) for f in factions]
    coords = {
        "time": ("time", times, {"standard_name": "time", "long_name": "date after step",
                                 "axis": "T", "comment": "time[0] is the initial state"}),
        "lat": ("lat", np.asarray(geo.grid.lats, dtype=np.float64),
                {"standard_name": "latitude", "long_name": "cell-centre latitude",
                 "units": "degrees_north", "axis": "Y", "comment": "north to south"}),
        "lon": ("lon", np.asarray(geo.grid.lons, dtype=np.float64),
                {"standard_name": "longitude", "long_name": "cell-centre longitude",
                 "units": "degrees_east", "axis": "X"}),
        "faction": ("faction", np.array(factions, dtype=object),
                    {"long_name": "faction name (controller code = position)"}),
        "faction_code": ("faction", np.arange(len(factions), dtype=np.int8),
                         {"long_name": "controller code of the faction"}),
        "faction_colour": ("faction", np.array(colours, dtype=object),
                           {"long_name": "plot colour of the faction"}),
    }
    attrs = {
        "title": "Territorial control of the Syria-Iraq conflict simulation",
        "Conventions": "CF-1.8",
        "source": "sim: agent-based Syria-Iraq conflict simulation (Mesa)",
        "geography": str(geo.name),
        "resolution_deg": float(geo.grid.res),
        "factions": ",".join(factions),
        "comment": "lat runs north to south (row 0 = north); time[0] is the initial state",
        "history": _history(results),
    }
    return xr.Dataset({"controller": controller, "contested": contested, "damage": damage_v,
                       "crs": crs}, coords=coords, attrs=attrs)


def crs_attrs() -> dict[str, Any]:
    """CF grid-mapping attributes of WGS 84 latitude/longitude (EPSG:4326)."""
    return {
        "grid_mapping_name": "latitude_longitude",
        "longitude_of_prime_meridian": 0.0,
        "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563,
        "crs_wkt": WGS84_WKT,
        "spatial_ref": WGS84_WKT,  # the name GDAL looks for
        "epsg_code": "EPSG:4326",
        "long_name": "WGS 84",
    }


def _history(results: Results) -> str:
    """CF ``history``: which program wrote the file from which run (no wall-clock time, so the
    bytes stay deterministic)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("syria-iraq-vacuum-sim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        v = "unknown"
    cfg = results.config or {}
    summ = results.summary or {}
    scen = summ.get("scenario") or (cfg.get("scenario") or {}).get("name", "?")
    seed = summ.get("seed", cfg.get("seed", "?"))
    rep = summ.get("replicate", cfg.get("replicate", "?"))
    return (f"sim {v} (sim.outputs.write_control): scenario {scen}, seed {seed}, replicate {rep}, "
            f"geography {results.geo.name}, {len(results.dates) - 1} steps")


def _netcdf_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    chunks = (1, ds.sizes["lat"], ds.sizes["lon"])
    enc: dict[str, dict[str, Any]] = {
        name: {"zlib": True, "complevel": NETCDF_COMPLEVEL, "shuffle": True,
               "chunksizes": chunks, "_FillValue": fill}
        for name, fill in (("controller", INT8_FILL), ("contested", INT8_FILL),
                           ("damage", np.float32(np.nan)))
    }
    for name in ("lat", "lon", "faction_code", "crs"):
        enc[name] = {"_FillValue": None}
    units = _time_units(ds["time"].values)
    enc["time"] = {"_FillValue": None, "dtype": "int32" if units.startswith("days") else "float64",
                   "calendar": "standard", "units": units}
    return enc


def _time_units(times: np.ndarray) -> str:
    """Whole days since the first date when possible, else seconds (fixed, no guessing)."""
    if len(times) == 0:
        return "days since 1970-01-01"
    t0 = pd.Timestamp(times[0])
    step = "days" if all((pd.Timestamp(t) - t0) % pd.Timedelta(days=1) == pd.Timedelta(0)
                         for t in times) else "seconds"
    return f"{step} since {t0.isoformat(sep=' ')}"


def write_control(results: Results, path: _PathLike) -> Path:
    """Write :func:`control_dataset` as NetCDF4 (zlib, one chunk per time step)."""
    ds = control_dataset(results)
    enc = _netcdf_encoding(ds)

    def _write(tmp: Path) -> None:
        ds.to_netcdf(tmp, mode="w", format="NETCDF4", engine="netcdf4", encoding=enc)

    return atomic_write(path, _write)


def read_control(path: _PathLike) -> xr.Dataset:
    """Read ``control.nc`` fully into memory (the file is closed on return).  ``controller``
    and ``contested`` stay int8 (their ``_FillValue`` is never used, so nothing is masked)."""
    with xr.open_dataset(path, engine="netcdf4", mask_and_scale=False) as raw:
        ints = {n: raw[n].values for n in ("controller", "contested") if n in raw}
    with xr.open_dataset(path, engine="netcdf4") as ds:
        ds = ds.load()
    for n, v in ints.items():
        attrs, enc = dict(ds[n].attrs), dict(ds[n].encoding)
        ds[n] = (ds[n].dims, v, attrs)
        ds[n].encoding.update(enc)
    return ds


# --------------------------------------------------------------------------------------
# summary (JSON)
# --------------------------------------------------------------------------------------
def _jsonable(obj: Any) -> Any:
    """Plain-JSON version of ``obj``: numpy/pandas scalars and arrays, dates, paths, sets;
    NaN and +-inf become ``None`` (JSON has no non-finite numbers)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Mapping):
        return {_json_key(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "mM":  # tolist() would give ints or datetime objects
            return [_jsonable(v) for v in obj]
        return _jsonable(obj.tolist())
    if isinstance(obj, (pd.Series, pd.Index)):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, pd.DataFrame):
        return [_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_jsonable(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if obj is pd.NaT:
        return None
    if isinstance(obj, np.datetime64):
        if np.isnat(obj):
            return None
        if np.datetime_data(obj.dtype)[0] in ("Y", "M", "W", "D"):  # a calendar date
            return str(obj.astype("datetime64[D]"))
        return pd.Timestamp(obj).isoformat()
    if isinstance(obj, np.timedelta64):
        return None if np.isnat(obj) else pd.Timedelta(obj).total_seconds()
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):  # includes pd.Timestamp
        return obj.isoformat()
    if isinstance(obj, _dt.timedelta):  # includes pd.Timedelta
        return obj.total_seconds()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    return str(obj)


def _json_key(k: Any) -> str:
    if isinstance(k, str):
        return k
    v = _jsonable(k)
    return v if isinstance(v, str) else json.dumps(v)


def summary_json(summary: Mapping[str, Any]) -> str:
    """The JSON text of a summary: sorted keys, indent 2, trailing newline."""
    return json.dumps(_jsonable(summary), sort_keys=True, indent=2, ensure_ascii=False,
                      allow_nan=False) + "\n"


def write_summary(summary: Mapping[str, Any], path: _PathLike) -> Path:
    """Write a summary dict as JSON (see :func:`summary_json`)."""
    text = summary_json(summary)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_summary(path: _PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------
# everything of one run
# --------------------------------------------------------------------------------------
def run_summary(results: Results) -> dict[str, Any]:
    """``results.summary`` plus the resolved config and the timings."""
    out = dict(results.summary)
    out["config"] = results.config
    out["wall_seconds"] = float(results.wall_seconds)
    out["phase_seconds"] = dict(results.phase_seconds)
    return out


def write_run_outputs(results: Results, outdir: _PathLike, netcdf: bool = True) -> dict[str, Path]:
    """Write ``timeseries.parquet``, ``control.nc`` (if ``netcdf``) and ``summary.json``.

    ``summary.json`` is written last, so its presence marks a complete set of outputs.
    Returns ``{"timeseries": path, "control": path, "summary": path}``.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["timeseries"] = write_timeseries(results, outdir / TIMESERIES_FILE)
    if netcdf:
        paths["control"] = write_control(results, outdir / CONTROL_FILE)
    paths["summary"] = write_summary(run_summary(results), outdir / SUMMARY_FILE)
    return paths
