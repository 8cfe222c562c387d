"""The control map of 1 July 2017 (issue 12): enclaves and pockets as connected pieces, ISIS's
effective area, no stray fragments, places on the right side of borders and rivers, pocket
garrisons and the opening deployment, and the horizon to the end of 2019."""

import datetime as dt

import numpy as np
import pytest
from scipy import ndimage

from sim import initial_map as im
from sim.cli import compose
from sim.geography import build_geography
from sim.runner import as_config, build_model

IHS_KM2 = 36_200  # ISIS effective control, 26 June 2017 (aggregate_facts_2015-2019.csv)
OPPOSITION = ("SYRIAN_REBELS", "ISLAMIST_REBELS")

_CACHE: dict = {}


def built(res: str):
    if res not in _CACHE:
        cfg = as_config(compose([f"geography={res}"]))
        g = build_geography(cfg.geography)
        fidx = {n: i for i, n in enumerate(cfg.factions)}
        m = im.build_initial_map(g.grid, g.country, g.country_names, g.theatre, fidx)
        _CACHE[res] = (g, fidx, m)
    return _CACHE[res]


def cell(g, lat, lon):
    r, c = g.grid.rowcol(np.array([lat]), np.array([lon]))
    return int(r[0]), int(c[0])


def piece_at(res, factions, lat, lon):
    """The 4-connected piece of the factions' joint ground at (lat, lon) (or, when that cell is
    not theirs, at the nearest of their cells among the 8 around it); None if there is none."""
    g, fidx, m = built(res)
    own = np.isin(m.owner, [fidx[f] for f in factions])
    labels, _ = ndimage.label(own, structure=im.FOUR)
    r, c = cell(g, lat, lon)
    lab = labels[r, c]
    if lab == 0:
        win = labels[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
        lab = int(win.max())
    return None if lab == 0 else labels == lab


def km2(res, mask):
    return float(im.area_km2(built(res)[0].grid)[mask].sum())


# name: (factions, anchor lat, lon, km2 range at 0.05 deg, anchors that must lie elsewhere)
DAMASCUS = (33.51, 36.29)
GHOUTA = (33.572, 36.405)
SOUTH_DAM = (33.463, 36.345)
YARMOUK_CAMP = (33.4576, 36.3042)
QALAMOUN_E = (33.74, 36.70)
DARAA = (32.62, 36.10)
DESERT_REBELS = (32.76, 37.00)
BEIT_JINN = (33.335, 35.965)
HOMS_N = (34.92, 36.73)
HAMA_N = (35.3743, 36.6033)
IDLIB = (35.93, 36.63)
VALLEY = (35.02, 40.45)
DEZ_CITY = (35.335, 40.14)
DEZ_AIR = (35.285, 40.175)
SDF_MAIN = (36.80, 40.50)
AFRIN = (36.51, 36.87)
PIECES = {
    "Eastern Ghouta with Harasta": (OPPOSITION, *GHOUTA, (120, 400),
                                    [SOUTH_DAM, DARAA, QALAMOUN_E, BEIT_JINN, DAMASCUS]),
    "Harasta in Ghouta": (OPPOSITION, 33.5587, 36.3651, (120, 400), [SOUTH_DAM]),
    "Eastern Qalamoun": (("SYRIAN_REBELS",), *QALAMOUN_E, (700, 1500), [GHOUTA, DARAA]),
    "northern Homs pocket": (("SYRIAN_REBELS",), *HOMS_N, (700, 1400), [HAMA_N, IDLIB]),
    "south Damascus": (OPPOSITION, *SOUTH_DAM, (10, 60), [GHOUTA, DAMASCUS]),
    "Beit Jinn": (("SYRIAN_REBELS",), *BEIT_JINN, (80, 300), [DARAA, GHOUTA]),
    "southern zone Daraa-Quneitra": (("SYRIAN_REBELS",), *DARAA, (2200, 4200),
                                     [DESERT_REBELS, BEIT_JINN, GHOUTA]),
    "desert rebels by the Jordanian border": (("SYRIAN_REBELS",), *DESERT_REBELS, (5000, 10000), [DARAA]),
    "Idlib with W Aleppo and N Hama": (OPPOSITION, *IDLIB, (8000, 11500), [HOMS_N]),
    "N Hama rebels join Idlib": (OPPOSITION, *HAMA_N, (8000, 11500), [HOMS_N]),
    "W Aleppo (Anadan) joins Idlib": (OPPOSITION, 36.295, 37.045, (8000, 11500), [AFRIN]),
    "Arsal-Fleita barrens (HTS)": (("ISLAMIST_REBELS",), 34.02, 36.46, (150, 450), [QALAMOUN_E]),
    "Yarmouk camp / al-Hajar al-Aswad": (("ISIS",), *YARMOUK_CAMP, (10, 60), [(32.75, 35.92), VALLEY]),
    "Yarmouk Basin": (("ISIS",), 32.75, 35.92, (150, 400), [YARMOUK_CAMP, VALLEY]),
    "east Hama pocket": (("ISIS",), 35.0431, 37.4644, (1200, 2600), [VALLEY]),
    "Hawija": (("ISIS",), 35.33, 43.77, (2500, 5000), [VALLEY, (36.377, 42.45)]),
    "Tal Afar": (("ISIS",), 36.377, 42.45, (1000, 2500), [VALLEY, (36.342, 43.131)]),
    "western Qalamoun barrens": (("ISIS",), 34.17, 36.62, (150, 450), [YARMOUK_CAMP, VALLEY]),
    "Raqqa city (encircled 29 Jun 2017)": (("ISIS",), 35.95, 39.01, (300, 700), [VALLEY]),
    "Euphrates valley with western Anbar": (("ISIS",), *VALLEY, (11000, 20000), [(35.95, 39.01)]),
    "Anah-Rawa-al-Qaim in the valley piece": (("ISIS",), 34.47, 41.92, (11000, 20000), []),
    "Mosul Old City": (("ISIS",), 36.342, 43.131, (20, 250), [(36.377, 42.45)]),
    "Deir ez-Zor city": (("SYRIAN_GOV",), *DEZ_CITY, (100, 300), [DEZ_AIR, DAMASCUS]),
    "Deir ez-Zor airbase": (("SYRIAN_GOV",), *DEZ_AIR, (50, 200), [DEZ_CITY, DAMASCUS]),
    "Fu'ah and Kafriya": (("SYRIAN_GOV",), 35.975, 36.70, (150, 400), [DAMASCUS]),
    "Qamishli security square and airport": (("SYRIAN_GOV",), 37.021, 41.191, (100, 450), [DAMASCUS]),
    "Hasakah security square": (("SYRIAN_GOV",), 36.494, 40.752, (10, 40), [DAMASCUS]),
    "regime main ground with Aleppo city": (("SYRIAN_GOV",), *DAMASCUS, (55000, 75000), [DEZ_CITY]),
    "Aleppo city in the regime main ground": (("SYRIAN_GOV",), 36.1994, 37.163, (55000, 75000), []),
    "Afrin with Tal Rifaat": (("SDF",), *AFRIN, (1600, 2800), [SDF_MAIN, (36.228, 37.152)]),
    "Tal Rifaat in Afrin's piece": (("SDF",), 36.47, 37.10, (1600, 2800), []),
    "Manbij in the main SDF ground": (("SDF",), 36.5281, 37.9549, (30000, 42000), [AFRIN]),
    "Tabqa in the main SDF ground": (("SDF",), 35.8370, 38.5480, (30000, 42000), [AFRIN]),
    "Sheikh Maqsoud": (("SDF",), 36.228, 37.152, (10, 60), [AFRIN, SDF_MAIN]),
    "Euphrates Shield zone": (("TURKEY_SNA",), 36.37, 37.52, (1800, 2900), []),
    "Jarabulus in the Euphrates Shield zone": (("TURKEY_SNA",), 36.817, 38.011, (1800, 2900), []),
    "al-Tanf zone": (("US_COALITION",), 33.506, 38.618, (6000, 10000), []),
    "KRG core with Kirkuk and Sinjar": (("KRG",), 36.19, 44.01, (50000, 75000), []),
    "Kirkuk with the KRG": (("KRG",), 35.4681, 44.3922, (50000, 75000), []),
    "PMF west and south of Tal Afar": (("PMF",), 36.12, 42.08, (10000, 20000), [(36.19, 44.01)]),
    "Iraqi state ground": (("IRAQI_GOV",), 33.34, 44.40, (250000, 330000), []),
    "east Mosul with the state": (("IRAQI_GOV",), 36.365, 43.175, (250000, 330000), []),
}


def check_piece(geography: str, name: str, spec) -> None:
    """The piece of ``factions`` at the anchor exists, its area is in range, and it is not
    joined to the pieces at the ``apart`` points."""
    factions, lat, lon, (lo, hi), apart = spec
    p = piece_at(geography, factions, lat, lon)
    assert p is not None, f"{name}: no ground of {factions} at its anchor"
    a = km2(geography, p)
    assert lo <= a <= hi, f"{name}: {a:,.0f} km2 not in {lo:,}-{hi:,}"
    g = built(geography)[0]
    for la, lo_ in apart:
        assert not p[cell(g, la, lo_)], f"{name} is joined to the piece at {la}, {lo_}"


@pytest.mark.parametrize("name", list(PIECES))
def test_piece_at_005(name):
    check_piece("res_005", name, PIECES[name])


# at 0.1 deg cells are ~100 km2: pockets of a few cells at 0.05 merge, so only those whose
# size allows (name: (factions, anchor, km2 range, apart))
PIECES_010 = {
    "Eastern Ghouta": (OPPOSITION, *GHOUTA, (100, 700), [DARAA, QALAMOUN_E, DAMASCUS]),
    "Eastern Qalamoun": (("SYRIAN_REBELS",), *QALAMOUN_E, (500, 1500), [GHOUTA, DARAA]),
    "northern Homs pocket": (("SYRIAN_REBELS",), *HOMS_N, (600, 1500), [IDLIB]),
    "southern zone": (("SYRIAN_REBELS",), *DARAA, (2000, 4500), [DESERT_REBELS]),
    "Idlib": (OPPOSITION, *IDLIB, (7500, 12000), [HOMS_N]),
    "Yarmouk Basin": (("ISIS",), 32.75, 35.92, (100, 600), [YARMOUK_CAMP, VALLEY]),
    "Hawija": (("ISIS",), 35.33, 43.77, (2500, 5500), [VALLEY]),
    "Tal Afar": (("ISIS",), 36.377, 42.45, (1000, 3500), [VALLEY]),
    "east Hama pocket": (("ISIS",), 35.0431, 37.4644, (1000, 2800), [VALLEY]),
    "Euphrates valley": (("ISIS",), *VALLEY, (11000, 21000), []),
    "Deir ez-Zor enclave": (("SYRIAN_GOV",), *DEZ_CITY, (100, 500), [DAMASCUS]),
    "Fu'ah and Kafriya": (("SYRIAN_GOV",), 35.975, 36.70, (100, 400), [DAMASCUS]),
    "Afrin with Tal Rifaat": (("SDF",), *AFRIN, (1500, 3000), [SDF_MAIN]),
    "Euphrates Shield zone": (("TURKEY_SNA",), 36.37, 37.52, (1200, 2900), []),
    "al-Tanf zone": (("US_COALITION",), 33.506, 38.618, (6000, 10000), []),
}


@pytest.mark.parametrize("name", list(PIECES_010))
def test_piece_at_010(name):
    check_piece("res_010", name, PIECES_010[name])


@pytest.mark.parametrize("res", ["res_005", "res_010"])
def test_isis_effective_area_within_a_quarter_of_ihs(res):
    g, fidx, m = built(res)
    area = im.area_km2(g.grid)
    isis = float(area[m.owner == fidx["ISIS"]].sum())
    assert 0.75 * IHS_KM2 <= isis <= 1.25 * IHS_KM2, isis
    # the open desert ISIS roamed is ungoverned, not held
    desert = m.open_desert
    assert area[desert].sum() > 30_000
    assert (m.owner[desert] == im.UNGOVERNED).all()


# pieces smaller than MIN_CELLS at 0.05 deg that are real enclaves (or known grid artefacts,
# each explained in initial_pockets_2017-07.csv); any other small piece fails
MIN_CELLS = 20
SMALL_ENCLAVES = {
    "Yarmouk camp and al-Hajar al-Aswad", "Yarmouk Basin (Jaysh Khalid ibn al-Walid)", "Mosul Old City",
    "Raqqa city", "Western Qalamoun barrens (ISIS)", "Western Qalamoun barrens east stub (ISIS)",
    "Qamishli security square and airport", "Fu'ah and Kafriya", "Deir ez-Zor city enclave",
    "Deir ez-Zor airbase", "Daraa al-Mahatta", "Hadar", "Hasakah security square",
    "Dibsi Afnan (south shore of Lake Assad)", "Sheikh Maqsoud", "Eastern Ghouta",
    "Northern Hama rebels (Kafr Zita-Lataminah)", "Beit Jinn", "Old Quneitra",
    "South Damascus (Yalda-Babbila-Beit Sahm)", "Arsal-Fleita barrens (HTS)",
    "Harasta (Ahrar al-Sham sector of Eastern Ghouta)", "Sagra forward base",
}


def test_no_small_fragments_but_the_listed_enclaves():
    g, fidx, m = built("res_005")
    pockets = im.read_pockets()
    names = {p.name for p in pockets}
    assert SMALL_ENCLAVES <= names
    for f, i in fidx.items():
        for p in im.pieces(m.owner, i, g.grid, pockets, f):
            if p.cells < MIN_CELLS:
                assert p.name, f"unnamed {f} fragment of {p.cells} cells"
                assert set(p.name.split(" + ")) <= SMALL_ENCLAVES, (f, p.name, p.cells)


def test_each_faction_has_a_main_ground_and_few_pieces():
    g, fidx, m = built("res_005")
    pockets = im.read_pockets()
    for f, i in fidx.items():
        ps = im.pieces(m.owner, i, g.grid, pockets, f)
        assert ps, f
        main = im.main_piece(ps)
        assert main.kind == "main", (f, main.name)
        assert len(ps) <= 16, (f, len(ps))
    assert len(im.pieces(m.owner, fidx["TURKEY_SNA"], g.grid, pockets, "TURKEY_SNA")) == 1


# (lat, lon, controller): places either side of a border or a river
SIDES = [
    (34.4517, 40.9186, "ISIS"),          # Abu Kamal (Syria)
    (34.3689, 41.0944, "ISIS"),          # al-Qaim (Iraq)
    (35.3359, 40.1408, "SYRIAN_GOV"),    # Deir ez-Zor city, west bank
    (35.0134, 40.4525, "ISIS"),          # al-Mayadin, valley
    (34.9211, 40.5611, "ISIS"),          # Hajin, east bank
    (35.837, 38.548, "SDF"),             # Tabqa, SDF since May 2017
    (36.5281, 37.9549, "SDF"),           # Manbij, west of the Euphrates
    (36.8175, 38.0106, "TURKEY_SNA"),    # Jarabulus, west bank at the border
    (36.365, 43.175, "IRAQI_GOV"),       # east Mosul (left bank)
    (36.342, 43.131, "ISIS"),            # Mosul Old City (right bank)
    (36.3209, 41.8754, "KRG"),           # Sinjar
    (36.0426, 41.7163, "PMF"),           # al-Ba'aj
    (35.4681, 44.3922, "KRG"),           # Kirkuk
    (36.19, 44.01, "KRG"),               # Erbil
    (33.5138, 36.2765, "SYRIAN_GOV"),    # Damascus
    (36.1994, 37.163, "SYRIAN_GOV"),     # Aleppo citadel
    (33.506, 38.618, "US_COALITION"),    # al-Tanf
]


@pytest.mark.parametrize("lat,lon,ctrl", SIDES)
def test_places_resolve_to_the_right_side(lat, lon, ctrl):
    g, fidx, m = built("res_005")
    r, c = cell(g, lat, lon)
    assert m.owner[r, c] == fidx[ctrl], (lat, lon, ctrl, m.owner[r, c])


def test_most_places_hold_their_own_cell_and_factions_stay_in_their_countries():
    g, fidx, m = built("res_005")
    ok = n = 0
    for p in m.places:
        r, c = cell(g, p.lat, p.lon)
        if p.open_desert or not g.theatre[r, c] or g.country_names[g.country[r, c]] != p.country:
            continue  # open desert, or a border crossing whose cell lies across the border
        n += 1
        ok += m.owner[r, c] == fidx[p.controller]
    assert ok / n >= 0.97, (ok, n)
    syr = g.country_mask("SYR")
    for f in ("SYRIAN_GOV", "SDF", "SYRIAN_REBELS", "ISLAMIST_REBELS", "TURKEY_SNA", "US_COALITION"):
        assert not ((m.owner == fidx[f]) & ~syr).any(), f
    for f in ("IRAQI_GOV", "PMF", "KRG"):
        assert not ((m.owner == fidx[f]) & syr).any(), f


def test_a_pocket_smaller_than_a_cell_is_kept_whatever_the_row_order():
    g, fidx, m = built("res_005")
    rows = im.read_places()
    shuffled = list(reversed(rows))
    m2 = im.build_initial_map(g.grid, g.country, g.country_names, g.theatre, fidx, shuffled)
    for res_map in (m, m2):
        own = res_map.owner == fidx["ISIS"]
        r, c = cell(g, *YARMOUK_CAMP)
        assert own[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].any()


def test_builds_at_0025():
    g, fidx, m = built("res_0025")
    area = im.area_km2(g.grid)
    isis = float(area[m.owner == fidx["ISIS"]].sum())
    assert 0.75 * IHS_KM2 <= isis <= 1.25 * IHS_KM2
    assert piece_at("res_0025", ("SYRIAN_GOV",), *DEZ_CITY) is not None


# ---------------------------------------------------------------- the model at step 0
@pytest.fixture(scope="module")
def model005():
    return build_model(compose(["geography=res_005", "output.plots=false"]))


def _garrison_in(m, faction, lat, lon):
    i = m.fidx[faction]
    p = piece_at("res_005", (faction,), lat, lon)
    return float(m.garrison[i][p].sum()), p


@pytest.mark.parametrize("faction,lat,lon,want", [
    ("ISIS", 32.75, 35.92, 1000),            # Jaysh Khalid ibn al-Walid, Yarmouk Basin
    ("ISIS", 35.33, 43.77, 1000),            # Hawija
    ("ISIS", 36.377, 42.45, 1500),           # Tal Afar
    ("SYRIAN_GOV", *DEZ_CITY, 3500),         # Deir ez-Zor city
    ("SYRIAN_GOV", *DEZ_AIR, 1500),          # Deir ez-Zor airbase
    ("SYRIAN_REBELS", *GHOUTA, 15000),       # Eastern Ghouta
])
def test_pocket_garrisons_follow_the_sources(model005, faction, lat, lon, want):
    got, _ = _garrison_in(model005, faction, lat, lon)
    assert got == pytest.approx(want, rel=0.02)


def test_units_start_on_their_main_ground_and_garrisons_add_up(model005):
    m = model005
    t = m.units
    r = np.clip(np.rint(t.row).astype(int), 0, m.geo.shape[0] - 1)
    c = np.clip(np.rint(t.col).astype(int), 0, m.geo.shape[1] - 1)
    assert m.main_ground[t.faction, r, c].all()
    for i, f in enumerate(m.faction_names):
        if m.strength0[i] > 0:
            in_units = float(t.fighters[t.faction == i].sum())
            assert float(m.garrison[i].sum()) + in_units == pytest.approx(m.strength0[i], rel=1e-4)
            assert (m.garrison[i] >= 0).all()
            assert not (m.garrison[i][m.owner != i] > 0).any(), f


def test_model_step0_isis_area_and_open_desert(model005):
    m = model005
    isis = float(m.area[m.owner == m.fidx["ISIS"]].sum())
    assert 0.75 * IHS_KM2 <= isis <= 1.25 * IHS_KM2
    assert (m.owner[m.open_desert] == -1).all()


def test_model_step0_is_the_map(model005):
    """The deconfliction line does not redraw the map of 1 July 2017: Tabqa and Manbij stay
    SDF, the Hasakah square stays with the regime."""
    m = model005
    g, fidx, mp = built("res_005")
    assert (m.owner == mp.owner).all()
    for lat, lon, ctrl in [(35.837, 38.548, "SDF"), (36.5281, 37.9549, "SDF"),
                           (36.494, 40.752, "SYRIAN_GOV")]:
        assert m.owner[cell(g, lat, lon)] == m.fidx[ctrl]


def test_horizon_reaches_the_end_of_2019_and_104_weeks_stays_available():
    cfg = as_config(compose([]))
    end = dt.date.fromisoformat(cfg.scenario.start_date) + dt.timedelta(weeks=cfg.scenario.weeks)
    assert cfg.scenario.weeks == 131 and end == dt.date(2020, 1, 4)  # all of 2019 inside
    assert as_config(compose(["scenario.weeks=104"])).scenario.weeks == 104
