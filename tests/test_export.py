"""``sim export``: the control layer as GeoTIFF / GeoPackage, read back with GDAL (rasterio)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config import GeographyConfig
from sim.geography import build_geography
from sim.outputs import write_control

rasterio = pytest.importorskip("rasterio")

from test_outputs import FACTIONS, make_results  # pytest puts tests/ on sys.path


@pytest.fixture(scope="module")
def geo():
    return build_geography(GeographyConfig(kind="synthetic", name="tiny", resolution_deg=0.1,
                                           lon_min=40, lat_max=36))


@pytest.fixture()
def run_dir(tmp_path, geo):
    res = make_results(geo)
    write_control(res, tmp_path / "control.nc")
    return tmp_path, res


def _check_georef(src, geo):
    assert src.crs.to_epsg() == 4326
    res = geo.grid.res
    t = src.transform
    assert (t.a, t.b, t.d, t.e) == pytest.approx((res, 0.0, 0.0, -res))
    assert (t.c, t.f) == pytest.approx((geo.grid.lon_min, geo.grid.lat_max))
    assert (src.height, src.width) == geo.shape
    # the centre of cell (r, c) is the grid's (lat, lon) of that cell
    lon, lat = src.xy(3, 5)
    glat, glon = geo.grid.latlon(3, 5)
    assert (lat, lon) == pytest.approx((float(glat), float(glon)))


def test_geotiff_read_back(run_dir, geo):
    from sim.export import export_control

    path, res = run_dir
    files = export_control(path, "geotiff", ["2017-10-08", "2017-10-29"])
    assert [f.name for f in files] == ["control_2017-10-08.tif", "control_2017-10-29.tif"]
    for f, t in zip(files, (1, 4)):
        with rasterio.open(f) as src:
            _check_georef(src, geo)
            assert src.count == 2 and src.dtypes == ("int16", "int16")
            assert src.nodata == -2
            np.testing.assert_array_equal(src.read(1), res.control[t])
            lvl = np.where(res.control[t] == -2, -2, res.control_level[t])
            np.testing.assert_array_equal(src.read(2), lvl)
            tags = src.tags()
            assert tags["DATE"] == f.stem.split("_")[1] and tags["STEP"] == str(t)
            assert [tags[f"FACTION_{i}"] for i in range(len(FACTIONS))] == FACTIONS
            assert src.descriptions[0].startswith("controller")


def test_gpkg_read_back(run_dir, geo):
    from sim.export import export_control

    path, res = run_dir
    out = path / "gis_out"
    (f,) = export_control(path, "gpkg", ["2017-10-01", "2017-10-22"], out)
    assert f == out / "control.gpkg"
    for table, t in (("control_2017_10_01", 0), ("control_2017_10_22", 3)):
        with rasterio.open(f"GPKG:{f}:{table}") as src:
            _check_georef(src, geo)
            np.testing.assert_array_equal(src.read(1), res.control[t])  # -2: outside
            assert src.tags()["FACTION_0"] == "ISIS"


def test_default_dates_and_errors(run_dir, capsys):
    from sim.commands.export import main
    from sim.export import export_control

    path, _ = run_dir
    files = export_control(path, "geotiff")
    assert [f.name for f in files] == ["control_2017-10-01.tif", "control_2017-10-29.tif"]
    assert all(f.parent == path / "gis" for f in files)
    with pytest.raises(ValueError, match="outside the run"):
        export_control(path, "geotiff", ["2030-01-01"])
    assert main([str(path), "--dates", "not-a-date"]) == 2
    assert "not a date" in capsys.readouterr().err
    assert main([str(path / "nowhere")]) == 2
    assert main([str(path), "--format", "gpkg"]) == 0
    assert capsys.readouterr().out.strip().endswith("control.gpkg")
