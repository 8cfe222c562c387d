"""The end-2019 key-place table and its scoring functions; the July 2017 displacement stock."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math

import pytest

from sim.face_validity import (
    FACTIONS,
    KEY_PLACES_2019,
    KeyPlace,
    SeatChange,
    load_key_places_2019,
    score_final_controllers,
    seat_changes,
    seat_names,
)
from sim.history_data import (
    DISPLACEMENT_STOCK,
    HISTORY,
    load_displacement_stock,
    read_displacement_rows,
)

GEO = HISTORY.parent / "geo"
LON_BOX, LAT_BOX = (34.5, 48.9), (28.9, 38.0)


def _admin1_names() -> dict[str, set[str]]:
    with open(GEO / "admin1.geojson", encoding="utf-8") as fh:
        feats = json.load(fh)["features"]
    iso = {"SYR": "Syria", "IRQ": "Iraq"}
    out: dict[str, set[str]] = {"Syria": set(), "Iraq": set()}
    for f in feats:
        out[iso[f["properties"]["iso_a3"]]].add(f["properties"]["name"])
    return out


def _place(name, ctrl, also=(), seat="town"):
    return KeyPlace(name=name, lat=35.0, lon=38.0, country="Syria", governorate="Raqqa",
                    seat=seat, controller=ctrl, also_acceptable=tuple(also), source="test",
                    from_memory=False, note="")


# ------------------------------------------------------------------ the key-place table
@pytest.fixture(scope="module")
def places() -> list[KeyPlace]:
    return load_key_places_2019()


def test_key_places_table_is_valid(places):
    assert 30 <= len(places) <= 80
    assert len({p.name for p in places}) == len(places)
    admin1 = _admin1_names()
    for p in places:
        assert p.controller in FACTIONS and set(p.also_acceptable) <= set(FACTIONS), p.name
        assert LON_BOX[0] <= p.lon <= LON_BOX[1] and LAT_BOX[0] <= p.lat <= LAT_BOX[1], p.name
        assert p.source, p.name
        assert p.country in admin1 and p.governorate in admin1[p.country], p.name
    # every governorate seat is one place per governorate, and both capitals are there
    caps = {p.name for p in places if p.seat == "capital"}
    assert caps == {"Damascus", "Baghdad"}
    seats = [p.governorate for p in places if p.is_seat]
    assert len(seats) == len(set(seats))


def test_key_places_coordinates_follow_places_csv(places):
    with open(GEO / "places.csv", encoding="utf-8", newline="") as fh:
        geo = {r["name"]: (float(r["lat"]), float(r["lon"])) for r in csv.DictReader(fh)}
    for p in places:
        if p.name in geo:
            assert (p.lat, p.lon) == pytest.approx(geo[p.name], abs=1e-4), p.name


@pytest.mark.parametrize("name, ctrl", [
    ("Tal Abyad", "TURKEY_SNA"), ("Ras al-Ayn", "TURKEY_SNA"), ("Afrin", "TURKEY_SNA"),
    ("Khan Shaykhun", "SYRIAN_GOV"), ("Maarat al-Numan", "ISLAMIST_REBELS"),
    ("Kirkuk", "IRAQI_GOV"), ("Sinjar", "IRAQI_GOV"), ("Douma", "SYRIAN_GOV"),
    ("Daraa", "SYRIAN_GOV"), ("Idlib", "ISLAMIST_REBELS"), ("Raqqa", "SDF"),
    ("Baghuz", "SDF"), ("Erbil", "KRG"), ("al-Tanf", "US_COALITION"),
])
def test_key_places_known_controllers(places, name, ctrl):
    assert {p.name: p.controller for p in places}[name] == ctrl


def test_key_places_contested_cases_allow_alternatives(places):
    by = {p.name: p for p in places}
    assert "SYRIAN_GOV" in by["Manbij"].acceptable and "SDF" in by["Manbij"].acceptable
    assert "SYRIAN_GOV" in by["Kobani"].acceptable
    assert "PMF" in by["Sinjar"].acceptable
    assert by["Tal Abyad"].acceptable == ("TURKEY_SNA",)


def test_load_key_places_rejects_bad_rows(tmp_path):
    src = KEY_PLACES_2019.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([src[0], src[1].replace("SYRIAN_GOV", "ASSAD", 1)]) + "\n",
                   encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.csv:2: unknown faction code 'ASSAD'"):
        load_key_places_2019(bad)


# ------------------------------------------------------------------ scoring
def test_score_final_controllers_hand_made():
    table = [_place("Raqqa", "SDF"), _place("Manbij", "SDF", ["SYRIAN_GOV"]),
             _place("Afrin", "TURKEY_SNA"), _place("Idlib", "ISLAMIST_REBELS")]
    final = {"raqqa": "SDF", " Manbij ": "SYRIAN_GOV", "Afrin": "SDF", "Mosul": "IRAQI_GOV"}
    score = score_final_controllers(final, table)
    assert score.table() == [
        ("Raqqa", "SDF", "SDF", "SDF", True),
        ("Manbij", "SDF", "SDF|SYRIAN_GOV", "SYRIAN_GOV", True),
        ("Afrin", "TURKEY_SNA", "TURKEY_SNA", "SDF", False),
        ("Idlib", "ISLAMIST_REBELS", "ISLAMIST_REBELS", None, False),
    ]
    assert score.missing == ("Idlib",)
    assert score.share_ok == pytest.approx(2 / 3)
    assert score.share_exact == pytest.approx(1 / 3)
    s = score.summary()
    assert (s["n_places"], s["n_scored"], s["n_ok"]) == (4, 3, 2)
    assert s["wrong"] == ["Afrin"] and s["missing"] == ["Idlib"]


def test_score_final_controllers_perfect_and_empty(places):
    perfect = score_final_controllers({p.name: p.controller for p in places}, places)
    assert perfect.share_ok == 1.0 and perfect.share_exact == 1.0 and not perfect.missing
    empty = score_final_controllers({}, places)
    assert math.isnan(empty.share_ok) and len(empty.missing) == len(places)


# ------------------------------------------------------------------ seat changes
def test_seat_changes_hand_made():
    d = dt.date
    series = {
        "Raqqa": [(d(2017, 7, 1), "ISIS"), (d(2017, 9, 1), "ISIS"), (d(2017, 10, 20), "SDF")],
        "Mosul": [(d(2017, 7, 1), "ISIS"), (d(2017, 7, 10), "IRAQI_GOV")],
        "Kirkuk": [(d(2017, 7, 1), "KRG"), (d(2017, 10, 16), None), (d(2017, 10, 23), "IRAQI_GOV"),
                   (d(2017, 11, 1), None), (d(2017, 11, 8), "IRAQI_GOV")],
        "Hajin": [(d(2017, 7, 1), "ISIS"), (d(2018, 12, 14), "SDF")],  # a town, not a seat
        "Deir ez-Zor": [(d(2017, 7, 1), None), (d(2017, 11, 3), "SYRIAN_GOV")],
    }
    got = seat_changes(series, seats=["Raqqa", "mosul", "Kirkuk", "Deir ez-Zor"])
    assert got == [
        SeatChange(d(2017, 7, 10), "Mosul", "ISIS", "IRAQI_GOV"),
        SeatChange(d(2017, 10, 20), "Raqqa", "ISIS", "SDF"),
        SeatChange(d(2017, 10, 23), "Kirkuk", "KRG", "IRAQI_GOV"),
    ]


def test_seat_changes_default_seats_from_table(places):
    seats = seat_names(places)
    assert "Raqqa" in seats and "Baghdad" in seats and "Hajin" not in seats
    series = {"Raqqa": [(0, "ISIS"), (1, "SDF"), (2, "SYRIAN_GOV"), (3, "SYRIAN_GOV")],
              "Hajin": [(0, "ISIS"), (5, "SDF")]}
    assert seat_changes(series) == [SeatChange(1, "Raqqa", "ISIS", "SDF"),
                                    SeatChange(2, "Raqqa", "SDF", "SYRIAN_GOV")]


def test_seat_changes_rejects_unordered_series():
    with pytest.raises(ValueError, match="Raqqa"):
        seat_changes({"Raqqa": [("2017-10-20", "SDF"), ("2017-07-01", "ISIS")]}, seats=["Raqqa"])


# ------------------------------------------------------------------ displacement stock
@pytest.fixture(scope="module")
def stock():
    return load_displacement_stock()


def test_displacement_rows_are_sourced():
    rows = read_displacement_rows()
    assert all(r.source for r in rows)
    assert all(r.value > 0 for r in rows)


def test_displacement_national_figures(stock):
    iq, sy = stock["Iraq"], stock["Syria"]
    assert (iq.idp_stock, iq.idp_date) == (3_351_132, dt.date(2017, 6, 30))  # IOM DTM round 74
    assert sy.idp_stock == 6_300_000  # UN / OCHA 2017 HNO
    assert sy.refugee_stock == 5_008_473  # UNHCR, 30 Mar 2017
    assert iq.refugee_stock == 316_000
    assert 3.2e6 <= iq.idp_stock <= 3.4e6 and 5.0e6 <= sy.refugee_stock <= 5.2e6


def test_displacement_governorates_match_geography(stock):
    admin1 = _admin1_names()
    for country, cd in stock.items():
        assert set(cd.idp_by_governorate_raw) <= admin1[country], country
    for r in read_displacement_rows():
        assert r.governorate == "ALL" or r.governorate in admin1[r.country], r


def test_displacement_governorate_split_adds_up(stock):
    iq = stock["Iraq"]
    assert iq.governorate_date == dt.date(2017, 11, 30)  # nearest snapshot to 1 Jul 2017
    assert iq.idp_by_governorate_raw == {"Nineveh": 941_166, "Duhok": 360_342, "Erbil": 276_744}
    assert iq.governorate_snapshot_total == 2_883_738
    assert iq.governorate_shares["Nineveh"] == pytest.approx(941_166 / 2_883_738)
    assert iq.idp_by_governorate["Nineveh"] == pytest.approx(3_351_132 * 941_166 / 2_883_738)
    assert sum(iq.idp_by_governorate.values()) + iq.idp_unallocated == pytest.approx(3_351_132)
    assert 0 < iq.idp_unallocated < iq.idp_stock
    sy = stock["Syria"]
    assert sy.idp_by_governorate == {} and sy.idp_unallocated == sy.idp_stock


def test_displacement_reference_date_picks_nearest(stock):
    early = load_displacement_stock(reference_date=dt.date(2016, 12, 1))
    assert early["Iraq"].idp_stock == 3_064_146
    assert early["Iraq"].governorate_date == dt.date(2016, 12, 8)
    assert early["Iraq"].idp_by_governorate_raw["Baghdad"] == 412_836
    late = load_displacement_stock(reference_date=dt.date(2017, 9, 1))
    assert late["Iraq"].idp_stock == 3_259_872


def test_displacement_loader_rejects_inconsistent_files(tmp_path):
    head = DISPLACEMENT_STOCK.read_text(encoding="utf-8").splitlines()[0]
    f = tmp_path / "d.csv"
    f.write_text(head + "\nIraq,ALL,idp_stock,100,2017-06-30,s,no,\n"
                 "Iraq,Anbar,idp_stock,50,2017-05-31,s,no,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no ALL row"):
        load_displacement_stock(f)
    f.write_text(head + "\nIraq,ALL,idp_stock,100,2017-06-30,s,no,\n"
                 "Iraq,Anbar,idp_stock,150,2017-06-30,s,no,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="add up to 150"):
        load_displacement_stock(f)
    f.write_text(head + "\nIraq,ALL,idp_count,100,2017-06-30,s,no,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="d.csv:2: metric"):
        load_displacement_stock(f)
