"""Output writers: Parquet time series, NetCDF control maps, JSON summary, atomic writes."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from sim.config import GeographyConfig
from sim.geography import build_geography
from sim.outputs import (
    atomic_path,
    atomic_write,
    control_dataset,
    read_control,
    read_summary,
    read_timeseries,
    write_control,
    write_run_outputs,
    write_summary,
    write_timeseries,
)
from sim.results import OUTSIDE, UNGOVERNED, Results

FACTIONS = ["ISIS", "SYRIAN_GOV", "SDF"]
N_STEPS = 4  # T; arrays hold T + 1 states


@pytest.fixture(scope="module")
def geo():
    return build_geography(GeographyConfig(kind="synthetic", name="tiny", resolution_deg=0.1,
                                           lon_min=40, lat_max=36))


def make_results(geo, seed: int = 0) -> Results:
    rng = np.random.default_rng(seed)
    shape = (N_STEPS + 1, *geo.shape)
    dates = list(np.datetime64("2017-10-01") + np.arange(N_STEPS + 1) * np.timedelta64(7, "D"))
    control = rng.integers(OUTSIDE, len(FACTIONS), size=shape).astype(np.int8)
    control[:, :, 0] = OUTSIDE  # a strip outside the theatre
    control[:, 0, 1] = UNGOVERNED
    level = rng.integers(0, 4, size=shape).astype(np.int8)
    damage = rng.random(shape, dtype=np.float32)
    damage[0] = 0.0
    rows = []
    for t, d in enumerate(dates):
        for f in FACTIONS:
            rows.append((d, t, "n_cells", f, float(np.sum(control[t] == FACTIONS.index(f)))))
            rows.append((d, t, "cum_deaths", f, float(rng.integers(0, 1000))))
        rows.append((d, t, "new_clashes", "ISIS|SDF", float(rng.integers(0, 9))))
        rows.append((d, t, "share_ungoverned", "ALL", np.nan if t == 0 else rng.random()))
    ts = pd.DataFrame(rows, columns=["date", "step", "metric", "faction", "value"])
    ts = ts.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # unsorted on purpose
    return Results(
        factions=list(FACTIONS),
        colours={"ISIS": "#000000", "SYRIAN_GOV": "#d62728", "SDF": "#ffdd00"},
        dates=dates,
        timeseries=ts,
        control=control,
        control_level=level,
        damage=damage,
        summary={"final_share_isis": np.float64(0.125), "n_clashes": np.int64(17),
                 "end_date": dates[-1], "nan_metric": float("nan")},
        config={"seed": seed, "steps": N_STEPS, "factions": {"ISIS": {"strength": 1.5}}},
        geo=geo,
        phase_seconds={"move": 0.25, "fight": np.float64(0.5)},
        wall_seconds=1.75,
        n_agents=123,
    )


@pytest.fixture(scope="module")
def results(geo):
    return make_results(geo)


# --------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------
def test_atomic_write_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write(target, lambda p: p.write_text("hello"))
    assert target.read_text() == "hello"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_write_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"

    def writer(p):
        with open(p, "wb") as fh:
            fh.write(b"x" * 1000)  # half written ...
            raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError, match="killed midway"):
        atomic_write(target, writer)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temp files left behind


def test_atomic_path_failure_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_text("new, partial")
            raise ValueError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_timeseries_write_failure_leaves_no_file(tmp_path, results, monkeypatch):
    import pyarrow.parquet as pq

    def broken(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_timeseries(results, tmp_path / "timeseries.parquet")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# time series
# --------------------------------------------------------------------------------------
def test_timeseries_roundtrip(tmp_path, results):
    path = write_timeseries(results, tmp_path / "timeseries.parquet")
    df = read_timeseries(path)
    assert list(df.columns) == ["date", "step", "metric", "faction", "value"]
    assert df["date"].dtype == np.dtype("datetime64[ns]")
    assert df["step"].dtype == np.int32
    assert df["value"].dtype == np.float64
    assert pd.api.types.is_string_dtype(df["metric"])
    assert pd.api.types.is_string_dtype(df["faction"])
    assert len(df) == len(results.timeseries)
    # sorted by (metric, faction, date)
    keys = list(zip(df["metric"], df["faction"], df["date"]))
    assert keys == sorted(keys)
    # same content as the input
    exp = results.timeseries.sort_values(["metric", "faction", "date"]).reset_index(drop=True)
    pd.testing.assert_series_equal(df["metric"].astype(object), exp["metric"].astype(object))
    pd.testing.assert_series_equal(df["faction"].astype(object), exp["faction"].astype(object))
    np.testing.assert_array_equal(df["date"].to_numpy(), exp["date"].to_numpy("datetime64[ns]"))
    np.testing.assert_array_equal(df["step"].to_numpy(), exp["step"].to_numpy())
    np.testing.assert_array_equal(df["value"].to_numpy(), exp["value"].to_numpy())  # NaN == NaN
    assert df["value"].isna().sum() == 1


def test_timeseries_bytes_deterministic(tmp_path, geo, results):
    a = write_timeseries(results, tmp_path / "a.parquet")
    # an identical DataFrame built separately, in a different row order, a bit later
    time.sleep(1.1)
    other = make_results(geo)
    other.timeseries = other.timeseries.iloc[::-1].reset_index(drop=True)
    b = write_timeseries(other, tmp_path / "b.parquet")
    assert a.read_bytes() == b.read_bytes()


# --------------------------------------------------------------------------------------
# control maps
# --------------------------------------------------------------------------------------
def test_control_dataset_layout(results, geo):
    ds = control_dataset(results)
    for name in ("controller", "contested", "damage"):
        assert ds[name].dims == ("time", "lat", "lon")
    assert ds["controller"].dtype == np.int8
    assert ds["contested"].dtype == np.int8
    assert ds["damage"].dtype == np.float32
    assert ds.sizes == {"time": N_STEPS + 1, "lat": geo.shape[0], "lon": geo.shape[1],
                        "faction": len(FACTIONS)}
    assert np.all(np.diff(ds["lat"].values) < 0)
    np.testing.assert_array_equal(ds["lat"].values, geo.grid.lats)
    np.testing.assert_array_equal(ds["lon"].values, geo.grid.lons)
    assert list(ds["faction"].values) == FACTIONS
    a = ds["controller"].attrs
    assert list(a["flag_values"]) == [-2, -1, 0, 1, 2]
    assert a["flag_meanings"] == "outside ungoverned ISIS SYRIAN_GOV SDF"
    assert a["factions"] == "ISIS,SYRIAN_GOV,SDF"
    assert a["ungoverned"] == -1 and a["outside"] == -2
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert "seed 0" in ds.attrs["history"] and "geography tiny" in ds.attrs["history"]
    for name in ("controller", "contested", "damage"):
        assert ds[name].attrs["grid_mapping"] == "crs"
    assert ds["crs"].attrs["grid_mapping_name"] == "latitude_longitude"
    assert 'ID["EPSG",4326]' in ds["crs"].attrs["crs_wkt"] == ds["crs"].attrs["spatial_ref"]


def test_control_dataset_rejects_bad_shapes(results):
    import copy

    bad = copy.copy(results)
    bad.control = results.control[:-1]
    with pytest.raises(ValueError, match="control"):
        control_dataset(bad)
    bad = copy.copy(results)
    bad.control = np.full_like(results.control, len(FACTIONS))
    with pytest.raises(ValueError, match="outside"):
        control_dataset(bad)


def test_control_roundtrip(tmp_path, results, geo):
    path = write_control(results, tmp_path / "control.nc")
    ds = read_control(path)
    for name in ("controller", "contested", "damage"):
        assert ds[name].dims == ("time", "lat", "lon")
        assert ds[name].encoding.get("zlib") is True
    assert ds["controller"].dtype == np.int8
    assert ds["contested"].dtype == np.int8
    assert ds["damage"].dtype == np.float32
    np.testing.assert_array_equal(ds["controller"].values, results.control)
    np.testing.assert_array_equal(ds["contested"].values, results.control_level)
    np.testing.assert_array_equal(ds["damage"].values,
                                  np.where(results.control == OUTSIDE, np.nan, results.damage))
    np.testing.assert_array_equal(ds["time"].values,
                                  np.array(results.dates, dtype="datetime64[ns]"))
    np.testing.assert_array_equal(ds["lat"].values, geo.grid.lats)
    np.testing.assert_array_equal(ds["lon"].values, geo.grid.lons)
    assert ds["lat"].values[0] > ds["lat"].values[-1]  # north -> south
    assert [str(f) for f in ds["faction"].values] == FACTIONS
    assert [str(c) for c in ds["faction_colour"].values] == ["#000000", "#d62728", "#ffdd00"]
    a = ds["controller"].attrs
    assert a["flag_values"].dtype == np.int8
    assert list(a["flag_values"]) == [-2, -1, 0, 1, 2]
    assert a["flag_meanings"] == "outside ungoverned ISIS SYRIAN_GOV SDF"
    assert a["factions"] == "ISIS,SYRIAN_GOV,SDF"
    assert a["ungoverned"] == -1 and a["outside"] == -2
    assert ds["contested"].attrs["flag_meanings"] == "none full dominant contested"
    assert ds["damage"].attrs["units"] == "1"
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert ds.attrs["history"].startswith("sim ")
    assert ds["controller"].encoding["_FillValue"] == -128
    assert np.isnan(ds["damage"].encoding["_FillValue"])


def test_control_netcdf_is_cf_and_georeferenced(tmp_path, results, geo):
    """control.nc as CF readers and GDAL see it: time as int32 days since the start with a
    calendar (decoded to datetimes by xarray), a WGS 84 grid mapping that GDAL reads as
    EPSG:4326 with the model's cell transform, fill values declared."""
    import netCDF4
    import xarray as xr

    path = write_control(results, tmp_path / "control.nc")
    with netCDF4.Dataset(path) as nc:
        t = nc.variables["time"]
        assert t.dtype == np.int32
        assert t.units == "days since 2017-10-01" and t.calendar == "standard"
        assert list(t[:]) == [0, 7, 14, 21, 28]
        assert nc.variables["controller"].grid_mapping == "crs"
        assert nc.variables["controller"]._FillValue == -128
        assert np.isnan(nc.variables["damage"]._FillValue)
        crs = nc.variables["crs"]
        assert crs.grid_mapping_name == "latitude_longitude"
        assert crs.semi_major_axis == 6378137.0 and crs.inverse_flattening == 298.257223563
        assert "WGS 84" in crs.spatial_ref
        assert "history" in nc.ncattrs()
    with xr.open_dataset(path) as ds:  # plain xarray: CF decoding
        assert np.issubdtype(ds["time"].dtype, np.datetime64)
        assert str(ds["time"].values[0])[:10] == "2017-10-01"
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(f'NETCDF:"{path}":controller') as src:
        assert src.crs is not None and src.crs.to_epsg() == 4326
        res = geo.grid.res
        assert src.transform.a == pytest.approx(res) and src.transform.e == pytest.approx(-res)
        assert src.transform.c == pytest.approx(geo.grid.lon_min)
        assert src.transform.f == pytest.approx(geo.grid.lat_max)
        np.testing.assert_array_equal(src.read(1), results.control[0])


def test_control_bytes_deterministic(tmp_path, geo, results):
    a = write_control(results, tmp_path / "a.nc")
    time.sleep(1.1)  # HDF5 object timestamps would differ across this
    b = write_control(make_results(geo), tmp_path / "b.nc")
    assert a.read_bytes() == b.read_bytes()


# --------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------
def test_summary_json(tmp_path):
    summary = {
        "z_last": 1,
        "nan_value": float("nan"),
        "np_nan": np.float32("nan"),
        "inf": np.inf,
        "np_int": np.int64(7),
        "np_float": np.float32(0.5),
        "np_bool": np.bool_(True),
        "array": np.array([[1, 2], [3, 4]], dtype=np.int16),
        "float_array": np.array([0.5, np.nan]),
        "date": np.datetime64("2017-10-01"),
        "datetime": np.datetime64("2017-10-01T12:30", "s"),
        "timestamp": pd.Timestamp("2018-01-02 03:04:05"),
        "nested": {"b": np.int8(-2), "a": [np.float64(1.5), None]},
        3: "int key",
    }
    path = write_summary(summary, tmp_path / "summary.json")
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["nan_value"] is None and data["np_nan"] is None and data["inf"] is None
    assert data["np_int"] == 7 and isinstance(data["np_int"], int)
    assert data["np_float"] == 0.5
    assert data["np_bool"] is True
    assert data["array"] == [[1, 2], [3, 4]]
    assert data["float_array"] == [0.5, None]
    assert data["date"] == "2017-10-01"
    assert data["datetime"] == "2017-10-01T12:30:00"
    assert data["timestamp"] == "2018-01-02T03:04:05"
    assert data["nested"] == {"a": [1.5, None], "b": -2}
    assert data["3"] == "int key"
    assert list(data) == sorted(data)  # sorted keys
    assert text.startswith('{\n  "')  # indent 2
    assert text.endswith("}\n")
    assert list(tmp_path.iterdir()) == [path]


# --------------------------------------------------------------------------------------
# all outputs of a run
# --------------------------------------------------------------------------------------
def test_write_run_outputs(tmp_path, results):
    paths = write_run_outputs(results, tmp_path / "run")
    assert set(paths) == {"timeseries", "control", "summary"}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "control.nc", "summary.json", "timeseries.parquet"]
    assert paths["timeseries"].name == "timeseries.parquet"
    ds = read_control(paths["control"])
    np.testing.assert_array_equal(ds["controller"].values, results.control)
    assert len(read_timeseries(paths["timeseries"])) == len(results.timeseries)
    s = read_summary(paths["summary"])
    assert s["final_share_isis"] == 0.125
    assert s["n_clashes"] == 17
    assert s["nan_metric"] is None
    assert s["end_date"] == "2017-10-29"
    assert s["config"] == {"seed": 0, "steps": N_STEPS, "factions": {"ISIS": {"strength": 1.5}}}
    assert s["wall_seconds"] == 1.75
    assert s["phase_seconds"] == {"fight": 0.5, "move": 0.25}


def test_write_run_outputs_without_netcdf(tmp_path, results):
    paths = write_run_outputs(results, tmp_path, netcdf=False)
    assert set(paths) == {"timeseries", "summary"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "timeseries.parquet"]
