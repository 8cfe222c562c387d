"""The landscape built from the bundled data (real map at 0.05°) and the synthetic test map."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from sim.config import GeographyConfig
from sim.geography import (
    TERRAIN_CLASSES,
    Geography,
    MemoryBudgetError,
    PlaceNotFound,
    build_geography,
    estimate_memory_mb,
    grid_for,
    line_cell_towns,
    river_side,
)

ISO3 = {"SY": "SYR", "IQ": "IRQ"}


@pytest.fixture(scope="module")
def geo() -> Geography:
    return build_geography(GeographyConfig(resolution_deg=0.05))


@pytest.fixture(scope="module")
def tiny() -> Geography:
    return build_geography(GeographyConfig(kind="synthetic", name="tiny", resolution_deg=0.1,
                                           lon_min=40, lat_max=36))


def country_at(geo: Geography, rc) -> str:
    i = int(geo.country[rc])
    return geo.country_names[i] if i >= 0 else "-"


# --- layers ------------------------------------------------------------------------------
def test_layer_shapes_and_dtypes(geo):
    assert geo.shape == (182, 288)
    expect = {
        "country": np.int8, "admin1": np.int16, "terrain": np.uint8, "elevation": np.float32,
        "river": np.bool_, "major_river": np.bool_, "lake": np.bool_, "river_dist_km": np.float32,
        "movement_cost": np.float32, "population": np.float32, "theatre": np.bool_,
        "border": np.bool_, "oil": np.float32, "key_place": np.float32,
    }
    for name, dtype in expect.items():
        arr = getattr(geo, name)
        assert arr.shape == geo.shape, name
        assert arr.dtype == dtype, (name, arr.dtype)
    for name, mask in geo.named_rivers.items():
        assert mask.shape == geo.shape and mask.dtype == np.bool_ and mask.any(), name
    assert {"Euphrates", "Tigris"} <= set(geo.named_rivers)
    assert geo.terrain.max() < len(TERRAIN_CLASSES)
    assert len(geo.admin1_names) > 0 and geo.admin1.max() < len(geo.admin1_names)
    assert np.all(np.isfinite(geo.movement_cost)) and geo.movement_cost.min() >= 1.0
    assert np.all(np.isfinite(geo.elevation)) and np.all(geo.population >= 0)
    assert 0 <= geo.oil.min() and geo.oil.max() <= 1 and geo.oil.max() > 0.5


def test_build_is_cached(geo):
    assert build_geography(GeographyConfig(resolution_deg=0.05)) is geo


def test_disk_cache_round_trip_and_fallbacks(tmp_path, monkeypatch):
    """A built geography is stored on disk and loaded equal in a fresh process (here: the
    in-process cache cleared); a corrupt file is rebuilt and replaced; SIM_NO_CACHE=1 writes
    nothing; the file name changes with the config."""
    from sim import geography as G

    monkeypatch.setenv(G.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(G.NO_CACHE_ENV, raising=False)
    cfg = GeographyConfig(resolution_deg=0.2)
    G._build_cached.cache_clear()
    built = build_geography(cfg)
    files = list(tmp_path.glob("geography-*.pkl"))
    assert len(files) == 1
    G._build_cached.cache_clear()
    loaded = build_geography(cfg)
    assert loaded is not built
    for name in ("country", "admin1", "terrain", "population", "theatre", "movement_cost"):
        assert np.array_equal(getattr(loaded, name), getattr(built, name)), name
    assert loaded.admin1_names == built.admin1_names and set(loaded.named_rivers) == set(built.named_rivers)
    files[0].write_bytes(b"not a pickle")
    G._build_cached.cache_clear()
    again = build_geography(cfg)
    assert np.array_equal(again.population, built.population)
    assert files[0].read_bytes()[:1] != b"n"  # replaced by a good copy
    assert G.disk_cache_path(G._cfg_key(GeographyConfig(resolution_deg=0.25))) != files[0]
    monkeypatch.setenv(G.NO_CACHE_ENV, "1")
    assert G.disk_cache_path(G._cfg_key(cfg)) is None
    G._build_cached.cache_clear()


def test_theatre_is_syria_and_iraq_land_only(geo):
    syr, irq = geo.country_mask("SYR"), geo.country_mask("IRQ")
    assert syr.any() and irq.any()
    assert not np.any(geo.theatre & ~(syr | irq))
    assert not np.any(geo.theatre & geo.lake)
    assert not np.any(geo.theatre & (geo.terrain == TERRAIN_CLASSES.index("sea")))
    # nearly all of both countries is theatre (lakes are the exception)
    assert (geo.theatre & syr).sum() / syr.sum() > 0.97
    assert (geo.theatre & irq).sum() / irq.sum() > 0.97
    # SYR about 185,000 km2, IRQ about 438,000 km2
    area = geo.grid.cell_area_km2
    assert area[syr].sum() == pytest.approx(185_000, rel=0.08)
    assert area[irq].sum() == pytest.approx(438_000, rel=0.08)
    # nobody lives outside the theatre; border cells are theatre cells
    assert geo.population[~geo.theatre].sum() == 0
    assert not np.any(geo.border & ~geo.theatre)
    assert geo.border.any()


def test_population_totals(geo):
    pop = geo.population_by_country()
    assert pop["SYR"] == pytest.approx(18e6, rel=0.15)
    assert pop["IRQ"] == pytest.approx(38e6, rel=0.15)
    # cities are dense: Baghdad's cell holds far more than a desert cell
    r, c = geo.place_cell("Baghdad")
    assert geo.population[r, c] > 100 * np.median(geo.population[geo.theatre])


# --- places ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, alt, iso3", [
    ("Mosul", "Al-Mawsil", "IRQ"),
    ("Raqqa", "Ar-Raqqah", "SYR"),
    ("Deir ez-Zor", "Dayr az-Zawr", "SYR"),
    ("Baghdad", "Bagdad", "IRQ"),
    ("Damascus", "Dimashq", "SYR"),
])
def test_places_resolve_by_name_and_alternative(geo, name, alt, iso3):
    rc = geo.place_cell(name)
    assert geo.place_cell(alt) == rc
    assert geo.place_cell(name.upper()) == rc  # case-insensitive
    assert geo.place_cell(name.replace("-", " ")) == rc  # hyphens are spaces
    assert country_at(geo, rc) == iso3
    assert geo.theatre[rc]
    i = geo.places.find(name)
    assert (int(geo.places.row[i]), int(geo.places.col[i])) == rc
    assert tuple(int(x) for x in geo.grid.rowcol(geo.places.lat[i], geo.places.lon[i])) == rc
    assert geo.key_place[rc] == 1.0


def test_key_place_wins_over_namesake(geo):
    # 'Damascus' is also an alternative name of suburbs; the key city must win
    i = geo.places.find("Damascus")
    assert geo.places.name[i] == "Damascus" and bool(geo.places.key[i])
    assert geo.places.lat[i] == pytest.approx(33.51, abs=0.01)


def test_places_fall_in_their_country(geo):
    p = geo.places
    ok = np.array([c in ISO3 for c in p.country])
    cells = geo.country[p.row[ok], p.col[ok]]
    names = np.array(geo.country_names + ("-",))[cells]
    expect = np.array([ISO3[c] for c in p.country[ok]])
    assert ok.sum() > 400
    assert np.mean(names == expect) > 0.95  # a few border towns fall in the neighbour's cell


def test_unknown_place_lists_close_matches(geo):
    with pytest.raises(PlaceNotFound) as ei:
        geo.place_cell("Mosull")
    assert isinstance(ei.value, KeyError)
    msg = str(ei.value)
    assert "Mosull" in msg and "did you mean" in msg and "Mosul" in msg
    with pytest.raises(PlaceNotFound, match="Deir ez-Zor"):
        geo.place_cell("Dier ezzor")
    with pytest.raises(PlaceNotFound) as ei:
        geo.place_cell("Xyzzyq")
    assert "did you mean" not in str(ei.value)


# --- memory budget -------------------------------------------------------------------------
def test_memory_budget_error_is_raised_before_allocating():
    cfg = GeographyConfig(resolution_deg=0.005, memory_budget_mb=500)
    need = estimate_memory_mb(grid_for(cfg))
    assert need > 500
    t0 = time.perf_counter()
    with pytest.raises(MemoryBudgetError) as ei:
        build_geography(cfg)
    assert time.perf_counter() - t0 < 0.5
    msg = str(ei.value)
    assert "0.005" in msg and "memory_budget_mb" in msg and "1820 x 2880" in msg
    assert isinstance(ei.value, ValueError)


# --- rivers ------------------------------------------------------------------------------
def test_euphrates_crosses_from_syria_into_iraq(geo):
    eu = geo.named_rivers["Euphrates"]
    syr, irq = geo.country_mask("SYR"), geo.country_mask("IRQ")
    assert (eu & syr).sum() > 20 and (eu & irq).sum() > 20
    # one connected (8-neighbour) line holds cells of both countries ...
    lab, n = ndimage.label(eu, structure=np.ones((3, 3), bool))
    both = set(np.unique(lab[eu & syr])) & set(np.unique(lab[eu & irq]))
    assert both
    # ... and it crosses the SYR-IRQ border: a Euphrates cell in Syria touches one in Iraq
    near_irq_river = ndimage.binary_dilation(eu & irq, structure=np.ones((3, 3), bool))
    assert np.any(eu & syr & near_irq_river)
    # near Abu Kamal / Al-Qaim
    r, c = np.nonzero(eu & syr & near_irq_river)
    lat, lon = geo.grid.latlon(r, c)
    assert np.all(np.abs(lat - 34.45) < 0.4) and np.all(np.abs(lon - 40.95) < 0.4)
    # and the Tigris runs through Iraq past Mosul and Baghdad
    ti = geo.named_rivers["Tigris"]
    for city in ("Mosul", "Baghdad"):
        r, c = geo.place_cell(city)
        assert ti[max(0, r - 3): r + 4, max(0, c - 3): c + 4].any(), city


def test_river_side_opposite_across_euphrates(geo):
    side = river_side(geo, "Euphrates", "SYR")
    assert side.dtype == np.int8 and side.shape == geo.shape
    r, c = geo.place_cell("Raqqa")
    eu = geo.named_rivers["Euphrates"] & geo.country_mask("SYR")
    river_rows = np.flatnonzero(eu[:, c])
    assert river_rows.size and river_rows.min() > r  # Raqqa lies north of the river
    north = side[r - 4, c]
    south = side[river_rows.max() + 4, c]
    assert north == 1 and south == -1
    assert side[river_rows[0], c] == 0
    assert np.all(side[eu] == 0)
    with pytest.raises(KeyError, match="Euphrates"):
        river_side(geo, "Jordan")


def test_movement_cost_higher_on_major_rivers(geo):
    major = geo.major_river & ~geo.lake & geo.theatre
    assert major.sum() > 100
    ring = ndimage.binary_dilation(major, iterations=3) & ~ndimage.binary_dilation(major) \
        & ~geo.river & ~geo.lake & geo.theatre
    assert np.median(geo.movement_cost[major]) > 2 * np.median(geo.movement_cost[ring])
    assert geo.movement_cost[major].min() > np.median(geo.movement_cost[ring])
    # every cell of a major river costs more than the same terrain without a river
    cfg = GeographyConfig()
    base = np.array([cfg.movement_cost[n] for n in TERRAIN_CLASSES], np.float32)[geo.terrain]
    assert np.all(geo.movement_cost[major] >= base[major] + cfg.major_river_crossing_cost - 1e-4)
    assert np.all(geo.river_dist_km[geo.river] == 0)
    assert geo.river_dist_km[~geo.river].min() > 0


def test_lakes(geo):
    assert geo.lake.sum() > 100
    # Lake Assad west of Raqqa, Lake Tharthar north-west of Baghdad
    for lat, lon in ((35.9, 38.35), (33.95, 43.3)):
        r, c = geo.grid.rowcol(lat, lon)
        assert geo.lake[r - 2: r + 3, c - 2: c + 3].any(), (lat, lon)


# --- synthetic map -------------------------------------------------------------------------
def test_synthetic_map(tiny):
    cfg = GeographyConfig(kind="synthetic")
    nr, nc = cfg.synthetic_rows, cfg.synthetic_cols
    assert tiny.shape == (nr, nc)
    assert tiny.grid.extent == pytest.approx((40.0, 40.0 + nc * 0.1, 36.0 - nr * 0.1, 36.0))
    assert tiny.country_names == ("SYR", "IRQ")
    assert np.all(tiny.country[:, : nc // 2] == 0) and np.all(tiny.country[:, nc // 2:] == 1)
    assert tiny.theatre.all() and not tiny.lake.any()
    assert np.array_equal(np.flatnonzero(tiny.river.any(axis=1)), [nr // 2])
    assert np.array_equal(tiny.major_river, tiny.river)
    # river crossing costs more than the banks
    assert np.all(tiny.movement_cost[nr // 2] > tiny.movement_cost[nr // 2 + 2])
    # places and alternative names
    rc = (nr // 2 + 1, nc // 2 - 2)
    assert tiny.place_cell("Rivercity") == tiny.place_cell("River City") == rc
    assert country_at(tiny, tiny.place_cell("Easttown")) == "IRQ"
    with pytest.raises(PlaceNotFound, match="Westtown"):
        tiny.place_cell("Westown")
    # population scaled to the country targets
    pop = tiny.population_by_country()
    assert pop["SYR"] == pytest.approx(18.3e6, rel=1e-4)
    assert pop["IRQ"] == pytest.approx(37.6e6, rel=1e-4)
    # river side: north of the middle row +1, south -1, on it 0
    side = river_side(tiny, "Euphrates")
    assert np.all(side[: nr // 2] == 1) and np.all(side[nr // 2] == 0)
    assert np.all(side[nr // 2 + 1:] == -1)
    assert np.all(tiny.oil == 0)


def test_river_cells_go_to_the_bank_of_their_town():
    """A diagonal river through a 4 x 4 grid of 0.1-degree cells: each diagonal cell is half
    north, half south.  A cell with a town goes to the town's bank (the larger town, key places
    first); a cell without one by the area majority; cells off the mask stay 0."""
    from types import SimpleNamespace

    from sim.grid import GridSpec

    grid = GridSpec(lon_min=40.0, lon_max=40.4, lat_min=35.6, lat_max=36.0, res=0.1)
    # the river runs from the north-west corner to the south-east corner
    line = np.array([[40.0, 36.0], [40.4, 35.6]])
    mask = np.eye(4, dtype=bool)
    # towns in (0, 0): a village south-west of the line and a larger town north-east of it;
    # in (1, 1): a key place south-west, a bigger non-key place north-east; (2, 2) none
    lat = np.array([35.92, 35.98, 35.82, 35.88])
    lon = np.array([40.02, 40.08, 40.12, 40.18])
    rows, cols = grid.rowcol(lat, lon)
    places = SimpleNamespace(lat=lat, lon=lon, row=rows, col=cols,
                             population=np.array([1000.0, 5000.0, 2000.0, 90000.0]),
                             key=np.array([False, False, True, False]))
    g = SimpleNamespace(grid=grid, river_lines={"R": [line]}, places=places)
    assert (rows.tolist(), cols.tolist()) == ([0, 0, 1, 1], [0, 0, 1, 1])
    out = line_cell_towns(g, "R", mask, north_share=0.4)
    assert out[0, 0] == 1 and out[1, 1] == -1  # the larger town; the key place
    assert out[2, 2] == 1 and out[3, 3] == 1   # half north > 0.4: majority rule
    assert line_cell_towns(g, "R", mask, north_share=0.6)[2, 2] == -1
    assert (out[~mask] == 0).all()


def test_empty_mapping_in_config_survives_the_build_cache():
    """Regression: the cache key used to thaw an empty dict back as a list, so
    ``population_target={}`` (no scaling) crashed with AttributeError."""
    g = build_geography(GeographyConfig(kind="synthetic", name="tiny", population_target={}))
    pop = g.population_by_country()
    assert 0 < pop["SYR"] < 5e6 and 0 < pop["IRQ"] < 5e6  # raw kernel + rural, not scaled
