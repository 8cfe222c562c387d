"""Exact tests of the one lat/lon <-> row/col transform (:class:`sim.grid.GridSpec`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.grid import KM_PER_DEG, GridSpec, haversine_km

BOX = dict(lon_min=34.5, lon_max=48.9, lat_min=28.9, lat_max=38.0)


def grid(res: float) -> GridSpec:
    return GridSpec(res=res, **BOX)


@pytest.mark.parametrize("res, shape", [(0.1, (91, 144)), (0.05, (182, 288)), (0.025, (364, 576))])
def test_shape(res, shape):
    g = grid(res)
    assert g.shape == shape
    assert (g.n_rows, g.n_cols) == shape
    assert g.n_cells == shape[0] * shape[1]
    assert g.lats.shape == (shape[0],) and g.lons.shape == (shape[1],)
    assert g.cell_area_km2.shape == shape
    assert g.extent == pytest.approx((34.5, 48.9, 28.9, 38.0), abs=1e-9)


@pytest.mark.parametrize("res", [0.1, 0.05, 0.025])
def test_row0_is_north_col0_is_west(res):
    g = grid(res)
    assert np.all(np.diff(g.lats) < 0)  # north to south
    assert np.all(np.diff(g.lons) > 0)  # west to east
    r, c = g.rowcol(38.0 - 1e-6, 34.5 + 1e-6)  # north-west corner
    assert (int(r), int(c)) == (0, 0)
    r, c = g.rowcol(28.9 + 1e-6, 48.9 - 1e-6)  # south-east corner
    assert (int(r), int(c)) == (g.n_rows - 1, g.n_cols - 1)
    # moving north decreases the row; moving east increases the column
    r0, c0 = g.rowcol(33.0, 40.0)
    r1, c1 = g.rowcol(33.0 + 3 * res, 40.0 + 3 * res)
    assert int(r1) == int(r0) - 3 and int(c1) == int(c0) + 3


@pytest.mark.parametrize("res", [0.1, 0.05, 0.025])
def test_cell_00_centre(res):
    g = grid(res)
    lat, lon = g.latlon(0, 0)
    assert float(lat) == pytest.approx(38.0 - res / 2, abs=1e-12)
    assert float(lon) == pytest.approx(34.5 + res / 2, abs=1e-12)
    lat, lon = g.latlon(g.n_rows - 1, g.n_cols - 1)
    assert float(lat) == pytest.approx(28.9 + res / 2, abs=1e-9)
    assert float(lon) == pytest.approx(48.9 - res / 2, abs=1e-9)
    assert g.lats[0] == pytest.approx(38.0 - res / 2) and g.lons[0] == pytest.approx(34.5 + res / 2)


@pytest.mark.parametrize("res", [0.1, 0.05, 0.025])
def test_roundtrip_all_cells(res):
    g = grid(res)
    rr, cc = np.meshgrid(np.arange(g.n_rows), np.arange(g.n_cols), indexing="ij")
    lat, lon = g.latlon(rr, cc)
    r2, c2 = g.rowcol(lat, lon)
    assert r2.dtype.kind == "i" and c2.dtype.kind == "i"
    assert np.array_equal(r2, rr) and np.array_equal(c2, cc)


@pytest.mark.parametrize("res", [0.1, 0.05, 0.025])
def test_cell_edges_belong_to_the_cell_south_east(res):
    """A point on a cell edge (computed in floating point) lands in the cell whose north-west
    corner it is: edges never flicker between neighbours because of rounding."""
    g = grid(res)
    k = np.arange(g.n_rows)
    r, _ = g.rowcol(g.lat_max - k * res, 40.0)
    assert np.array_equal(r, k)
    k = np.arange(g.n_cols)
    _, c = g.rowcol(33.0, g.lon_min + k * res)
    assert np.array_equal(c, k)


def test_latlon_rowcol_latlon_roundtrip_points():
    g = grid(0.05)
    lat = np.array([36.335, 35.95283, 35.33588, 33.34058, 28.9001, 37.9999])
    lon = np.array([43.11889, 39.00788, 40.14084, 44.40088, 34.5001, 48.8999])
    r, c = g.rowcol(lat, lon)
    assert np.all(g.contains(r, c))
    clat, clon = g.latlon(r, c)
    assert np.all(np.abs(clat - lat) <= 0.025 + 1e-9)
    assert np.all(np.abs(clon - lon) <= 0.025 + 1e-9)
    r2, c2 = g.rowcol(clat, clon)
    assert np.array_equal(r, r2) and np.array_equal(c, c2)


def test_box_edges_convention():
    """Cells own their north and west edges: the north and west edges of the box are inside,
    the south and east edges are outside (half-open box)."""
    g = grid(0.1)
    assert tuple(int(x) for x in g.rowcol(38.0, 34.5)) == (0, 0)
    r, c = g.rowcol(28.9, 48.9)
    assert (int(r), int(c)) == (g.n_rows, g.n_cols)
    assert not bool(g.contains(r, c))


def test_contains_and_outside_points():
    g = grid(0.1)
    r, c = g.rowcol([38.5, 28.0, 33.0, 33.0], [40.0, 40.0, 34.0, 49.5])
    assert not np.any(g.contains(r, c))
    assert r[0] < 0 and r[1] >= g.n_rows and c[2] < 0 and c[3] >= g.n_cols
    assert bool(g.contains(0, 0)) and bool(g.contains(g.n_rows - 1, g.n_cols - 1))
    assert not bool(g.contains(g.n_rows, 0)) and not bool(g.contains(0, -1))


@pytest.mark.parametrize("res", [0.1, 0.05, 0.025])
def test_cell_area_decreases_northward(res):
    g = grid(res)
    a = g.cell_area_km2
    assert np.all(np.diff(a[:, 0]) > 0)  # row 0 (north) smallest, growing southward
    assert np.all(a == a[:, :1])  # constant along a row
    assert g.cell_km == pytest.approx(res * KM_PER_DEG)
    # exact value at the middle row: (res * km/deg)^2 * cos(lat)
    i = g.n_rows // 2
    expect = (res * KM_PER_DEG) ** 2 * np.cos(np.deg2rad(g.lats[i]))
    assert a[i, 0] == pytest.approx(expect, rel=1e-12)
    # the total is the area of the box on the sphere to within 0.1 %
    exact = (np.deg2rad(14.4) * 6371.0088 ** 2
             * (np.sin(np.deg2rad(38.0)) - np.sin(np.deg2rad(28.9))))
    assert a.sum() == pytest.approx(exact, rel=1e-3)


def test_km_helpers():
    g = grid(0.05)
    assert g.km_to_cells(g.cell_km * 7) == pytest.approx(7)
    assert KM_PER_DEG == pytest.approx(111.195, abs=0.01)
    assert float(haversine_km(33.0, 40.0, 34.0, 40.0)) == pytest.approx(KM_PER_DEG, rel=1e-9)
    # Baghdad - Mosul: about 350 km great-circle
    assert float(haversine_km(33.34058, 44.40088, 36.335, 43.11889)) == pytest.approx(352, abs=15)


def test_invalid_grids():
    with pytest.raises(ValueError):
        GridSpec(34.5, 48.9, 28.9, 38.0, 0.0)
    with pytest.raises(ValueError):
        GridSpec(34.5, 48.9, 28.9, 38.0, -0.1)
    with pytest.raises(ValueError):
        GridSpec(48.9, 34.5, 28.9, 38.0, 0.1)
    with pytest.raises(ValueError):
        GridSpec(34.5, 48.9, 38.0, 38.0, 0.1)


# --- property tests ---------------------------------------------------------------------
RES = st.sampled_from([0.1, 0.05, 0.025, 0.01])


@settings(max_examples=200, deadline=None)
@given(res=RES, u=st.floats(0, 1 - 1e-7), v=st.floats(0, 1 - 1e-7))
def test_property_point_roundtrip(res, u, v):
    g = grid(res)
    # a cell owns its north and west edges, so the box is lat in (lat_min, lat_max] and
    # lon in [lon_min, lon_max): sample down from the north edge and east from the west edge,
    # staying clear of the south/east edges by more than rowcol's 1e-9-cell snapping tolerance
    lat = g.lat_max - u * (g.lat_max - g.lat_min)
    lon = g.lon_min + v * (g.lon_max - g.lon_min)
    r, c = g.rowcol(lat, lon)
    assert bool(g.contains(r, c))
    clat, clon = g.latlon(r, c)
    # the point lies in its cell (the 1e-9 snapping tolerance of rowcol aside)
    tol = res / 2 + 1e-8 * res
    assert abs(float(clat) - lat) <= tol and abs(float(clon) - lon) <= tol
    r2, c2 = g.rowcol(clat, clon)
    assert (int(r2), int(c2)) == (int(r), int(c))


@settings(max_examples=200, deadline=None)
@given(res=RES, data=st.data())
def test_property_cell_roundtrip(res, data):
    g = grid(res)
    r = data.draw(st.integers(0, g.n_rows - 1))
    c = data.draw(st.integers(0, g.n_cols - 1))
    lat, lon = g.latlon(r, c)
    assert g.lat_min < float(lat) < g.lat_max and g.lon_min < float(lon) < g.lon_max
    r2, c2 = g.rowcol(lat, lon)
    assert (int(r2), int(c2)) == (r, c)
    # any point strictly inside the cell maps back to it
    fu = data.draw(st.floats(-0.49, 0.49))
    fv = data.draw(st.floats(-0.49, 0.49))
    r3, c3 = g.rowcol(float(lat) + fu * res, float(lon) + fv * res)
    assert (int(r3), int(c3)) == (r, c)
