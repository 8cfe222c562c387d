"""The displacement stock of 1 July 2017: placed in the communities at step 0 with people
conserved, tracked apart from new displacement, and leaving by the same rules (issue 14.4)."""

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pytest

from sim import initial
from sim.agents import CommunityTable
from sim.cli import compose
from sim.history_data import CountryDisplacement, load_displacement_stock
from sim.rules import civilians as civ
from sim.runner import build_model, run_scenario

D = dt.date(2017, 7, 1)


def toy_world():
    """Six communities in two countries: Iraq (Nineveh x2, Duhok, Baghdad), Syria (Aleppo x2)."""
    names = ("Nineveh", "Duhok", "Baghdad", "Aleppo")
    geo = SimpleNamespace(country_names=("SYR", "IRQ"), admin1_names=names,
                          country=np.array([[1, 1, 1, 1, 0, 0]], np.int8),
                          admin1=np.array([[0, 0, 1, 2, 3, 3]], np.int16))
    regions = {"region_cell": np.arange(6)}
    pop = [1000.0, 3000.0, 2000.0, 4000.0, 6000.0, 4000.0]
    table = CommunityTable(np.arange(6), np.zeros(6), pop, np.arange(6))
    stock = {
        "Iraq": CountryDisplacement("Iraq", 1200, D, 100, D, D, 2000, {"Nineveh": 500, "Duhok": 500}),
        "Syria": CountryDisplacement("Syria", 3000, D, 1000, D),
    }
    return geo, regions, table, stock


def test_initial_stock_is_placed_by_governorate_and_conserves_people():
    geo, regions, table, stock = toy_world()
    pop_in_country = table.pop0.copy()
    placed = initial.initial_displacement(geo, regions, table, stock)
    # Iraq: Nineveh and Duhok get 500/2000 of 1,200 each (300); Baghdad the remaining 600
    assert table.idp[:4] == pytest.approx([75.0, 225.0, 300.0, 600.0])
    # Syria: national only, in proportion to people; refugees in proportion to people
    assert table.idp[4:] == pytest.approx([1800.0, 1200.0])
    assert table.abroad == pytest.approx([10, 30, 20, 40, 600, 400])
    assert placed == pytest.approx({"idp_IRQ": 1200, "abroad_IRQ": 100, "idp_SYR": 3000, "abroad_SYR": 1000})
    # people conserved; refugees are added to pop0, the people in the country do not change
    assert table.total() == pytest.approx(table.pop0)
    assert table.home + table.idp == pytest.approx(pop_in_country)
    assert table.idp_init == pytest.approx(table.idp) and table.abroad_init == pytest.approx(table.abroad)


def test_initial_idp_share_is_capped():
    geo, regions, table, stock = toy_world()
    stock["Syria"] = CountryDisplacement("Syria", 50_000, D, None, None)
    initial.initial_displacement(geo, regions, table, stock)
    assert table.idp[4:] == pytest.approx(initial.MAX_IDP_SHARE * np.array([6000.0, 4000.0]))
    assert (table.home >= 0).all() and table.total() == pytest.approx(table.pop0)


def test_initial_idps_do_not_shelter_in_besieged_towns():
    """Syria's 3,000 IDPs over its two communities (6,000 and 4,000 people), the second's town
    held by ISIS at the start: all 3,000 shelter with the first; a stock beyond what the first
    may hold (``MAX_IDP_SHARE``) puts the rest in the second."""
    geo, regions, table, stock = toy_world()
    besieged = np.array([False] * 5 + [True])
    initial.initial_displacement(geo, regions, table, stock, besieged=besieged)
    assert table.idp[4:] == pytest.approx([3000.0, 0.0])
    assert table.idp[:4] == pytest.approx([75.0, 225.0, 300.0, 600.0])  # Iraq: as before
    geo, regions, table, stock = toy_world()
    stock["Syria"] = CountryDisplacement("Syria", 5000, D, None, None)
    initial.initial_displacement(geo, regions, table, stock, besieged=besieged)
    assert table.idp[4:] == pytest.approx([initial.MAX_IDP_SHARE * 6000.0, 5000 - 3600.0])
    assert table.total() == pytest.approx(table.pop0)


def _population(table):
    regions = {"regmap": np.array([[0, 1]]), "region_names": np.array(["a", "b"]),
               "region_cell": np.array([0, 1]), "region_pop0": np.array([100.0, 100.0])}
    dest = {"region_border_km": np.array([500.0, 500.0]), "dest_region": np.array([1]),
            "dest_dist": np.array([[30.0], [0.0]]), "dest_capacity": np.array([100.0])}
    return civ.Population(regions, table, dest, np.array([[100.0, 100.0]]))


def test_returns_and_deaths_apply_to_the_initial_stock():
    # two communities of 100, each with 40 displaced since before July 2017 and 10 abroad
    table = CommunityTable([0, 1], [0, 0], [100.0, 100.0], [0, 1])
    table.home[:] = 50.0
    table.idp[:] = table.idp_init[:] = 40.0
    table.abroad[:] = table.abroad_init[:] = 10.0
    pop = _population(table)
    dc = SimpleNamespace(flee_rate_violence=0.0, flee_rate_damage=0.0, flee_rate_persecution=0.0,
                         return_rate_threat=0.0,
                         host_ratio=1e9,  # refuges never full
                         walk_km_week=50.0, abroad_share=0.0, return_rate=0.1, return_rate_abroad=0.02,
                         return_quiet_weeks=4, safe_damage=0.5)
    pop.quiet[:] = 4  # home has been quiet for four weeks: returns are open
    legit = np.array([0.5, 0.5])
    deaths = (np.zeros(2), np.array([0.0, 4.0]))  # 10% of b's displaced are killed
    flows = pop.displace(np.array([0, 0]), np.array([[0.5]]), np.zeros(2), np.zeros(2), np.zeros(2),
                         np.zeros(2), np.zeros(2), legit, deaths, dc)
    # a: 10% of 40 return, 2% of 10 come back from abroad; b: 36 left after deaths, 10% return
    assert table.idp_init == pytest.approx([36.0, 32.4])
    assert table.abroad_init == pytest.approx([9.8, 9.8])
    assert flows["new_returnees_initial"] == pytest.approx(4.0 + 3.6 + 0.4)
    assert flows["new_returnees"] == pytest.approx(flows["new_returnees_initial"])  # nobody else displaced
    assert flows["new_displaced"] == 0.0
    assert table.total() == pytest.approx(table.pop0)


def test_tiny_map_has_no_initial_stock_and_the_same_structure():
    r = run_scenario(compose(["geography=tiny", "output.plots=false", "scenario.weeks=6"]))
    for name in ("n_displaced_initial", "n_abroad_initial"):
        assert (r.metric(name, "ALL") == 0.0).all()
    assert r.metric("n_displaced", "ALL").iloc[0] == 0.0
    assert r.metric("new_returnees_initial", "ALL").sum() == 0.0
    gov = r.timeseries[r.timeseries.metric == "new_displaced_gov"]
    assert set(gov.faction) <= {"West", "East"} and len(gov)
    # per governorate it adds up to the theatre's new displacement
    by_step = gov.groupby("step")["value"].sum()
    assert by_step.to_numpy() == pytest.approx(r.metric("new_displaced", "ALL").to_numpy())
    assert r.summary["people_conserved_error"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.slow
def test_real_map_starts_from_the_sourced_stock():
    m = build_model(compose(["geography=res_010", "output.plots=false"]))
    st = load_displacement_stock()
    cm = m.communities
    want_idp = sum(c.idp_stock for c in st.values())
    want_abroad = sum(c.refugee_stock or 0 for c in st.values())
    assert cm.idp.sum() == pytest.approx(want_idp, rel=1e-6)
    assert cm.abroad.sum() == pytest.approx(want_abroad, rel=1e-6)
    assert m.initial_stock["idp_IRQ"] == pytest.approx(st["Iraq"].idp_stock, rel=1e-6)
    # the Iraqi governorates of the snapshot get their share of the national figure
    country, gov = initial.community_places(m.geo, {"region_cell": m.population.region_cell}, cm)
    for g, v in st["Iraq"].idp_by_governorate.items():
        sel = gov == m.geo.admin1_names.index(g)
        assert cm.idp[sel].sum() == pytest.approx(v, rel=1e-6), g
    # the people in the country are the map's: refugees come on top
    assert cm.home.sum() + cm.idp.sum() == pytest.approx(m.initial_people - want_abroad, rel=1e-9)
    for _ in range(8):
        m.step()
        assert m.people_total() == pytest.approx(m.initial_people, rel=1e-9)
        assert (cm.idp_init <= cm.idp + 1e-6).all() and (cm.abroad_init <= cm.abroad + 1e-6).all()
    assert cm.idp_init.sum() < want_idp  # the 2017 stock returns where home has been quiet 4 weeks


def test_returns_wait_for_quiet_weeks_and_do_not_churn():
    # one community of 100: 50 at home, 50 displaced; home is safe (legitimate ruler, no damage)
    table = CommunityTable([0, 1], [0, 0], [100.0, 100.0], [0, 1])
    table.home[:] = 50.0
    table.idp[:] = 50.0
    pop = _population(table)
    dc = SimpleNamespace(flee_rate_violence=0.5, flee_rate_damage=0.0, flee_rate_persecution=0.0,
                         return_rate_threat=0.0,
                         host_ratio=1e9,  # refuges never full
                         walk_km_week=50.0, abroad_share=0.0, return_rate=0.1, return_rate_abroad=0.0,
                         return_quiet_weeks=3, safe_damage=0.5)
    legit, no_deaths = np.array([0.5, 0.5]), (np.zeros(2), np.zeros(2))

    def week(violence):
        pop.quiet = civ.quiet_weeks(pop.quiet, np.array([violence, 0.0]), np.zeros(2))
        return pop.displace(np.array([0, 0]), np.array([[0.5]]), np.zeros(2), np.zeros(2),
                            np.array([violence, 0.0]), np.zeros(2), np.zeros(2), legit, no_deaths, dc)

    returned = [week(0.0)["new_returnees"] for _ in range(4)]
    # both homes quiet from the start: returns open in week 3, 10% of 2 x 50, then of 2 x 45
    assert returned == pytest.approx([0.0, 0.0, 10.0, 9.0])
    assert table.home == pytest.approx([59.5, 59.5])
    # a week of fighting at a: a fifth of the hazard's people flee, nobody returns to a
    f = week(0.4)
    assert f["new_displaced"] == pytest.approx(59.5 * (1 - np.exp(-0.2)))
    assert f["new_returnees"] == pytest.approx(0.1 * 40.5)  # b only
    # ... and for three quiet weeks nobody goes home to a: no churn
    back_a = []
    for _ in range(3):
        idp_a = table.idp[0]
        week(0.0)
        back_a.append(idp_a - table.idp[0])
    assert back_a == pytest.approx([0.0, 0.0, 0.1 * idp_a])


def test_idps_driven_from_a_shelter_under_fire_are_displaced_again_not_new():
    table = CommunityTable([0, 1], [0, 0], [100.0, 100.0], [0, 1])
    table.home[:] = 60.0
    table.idp[:] = 40.0  # both communities' IDPs shelter at home (cells 0 and 1)
    pop = _population(table)
    dc = SimpleNamespace(flee_rate_violence=0.0, flee_rate_damage=0.0, flee_rate_persecution=0.0,
                         return_rate_threat=0.0,
                         host_ratio=1e9,  # refuges never full
                         walk_km_week=50.0, abroad_share=0.0, return_rate=0.1, return_rate_abroad=0.0,
                         return_quiet_weeks=4, safe_damage=0.5)
    vio_cell = np.array([0.5, 0.0])  # shelling at cell 0; the destination (cell 1) is quiet
    flows = pop.displace(np.array([0, 0]), np.array([[0.5]]), np.zeros(2), vio_cell, np.zeros(2),
                         np.zeros(2), np.zeros(2), np.array([0.5, 0.5]), (np.zeros(2), np.zeros(2)), dc)
    assert flows["new_displaced"] == 0.0  # nobody left home
    assert pop.moved_on.tolist() == [40.0, 0.0] and pop.moved_on_loc.tolist() == [0, 1]
    assert table.idp_loc.tolist() == [1, 1]
