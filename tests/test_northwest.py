"""Toy-world tests of the north-west mechanisms: home guards (rules/redeploy.py), patron
forces entering across a border (rules/events.entry_units) and truce zones
(rules/events.zone_mask, zone_closed; wired in sim.aftermath)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from sim.rules.events import entry_units, zone_closed, zone_mask
from sim.rules.redeploy import redeploy_garrisons, reinforce_faction


def _strip(n=12):
    """A 1 x n strip of one faction's ground, enemy ground at the east end."""
    owner = np.zeros((1, n), np.int64)
    owner[0, -1] = 1
    return owner


def test_home_guard_stays_while_the_rest_spreads_to_the_front():
    owner = _strip()
    g = np.zeros((1, 12), np.float32)
    g[0, 0] = 1000.0  # the whole garrison at home, far from the front
    home = np.zeros_like(g)
    home[0, 0] = 600.0  # 600 of them are the home guard
    free, guarded = g.copy(), g.copy()
    host = np.array([0.0, 1.0])
    for _ in range(20):
        redeploy_garrisons(free, owner, 0, np.ones((1, 12)), host, host > 0.5, 25, 0.0)
        redeploy_garrisons(guarded, owner, 0, np.ones((1, 12)), host, host > 0.5, 25, 0.0, home)
    assert guarded[0, 0] >= 600.0 - 1e-3  # the home guard never left
    assert free[0, 0] < 600.0  # without it the garrison evens out toward the front
    assert abs(float(guarded.sum()) - 1000.0) < 1e-2  # nobody created or lost
    assert guarded[0, 1:11].sum() > 0  # the rest did spread


def test_home_guard_gives_no_replacements():
    g = np.full((2, 2), 100.0, np.float32)
    home = np.array([[100.0, 100.0], [0.0, 0.0]], np.float32)  # top row: home guard
    units = np.array([1000.0])  # a unit at half strength (size 2000)
    new, weak, lost = reinforce_faction(g, units, 2000.0, home)
    drawn = float(new[0] - units[0])
    assert not weak.any() and lost == 0
    # 200 fighters outside the home guard: not 3x the draw -> no draw; the guard untouched
    assert drawn == 0.0 and np.allclose(g[0], 100.0)
    g2 = np.full((2, 2), 1000.0, np.float32)
    new, _, _ = reinforce_faction(g2, units, 2000.0, np.array([[1000.0, 1000.0], [0, 0]], np.float32))
    assert new[0] == 1200.0  # draws DRAW_LIMIT x size from the free garrisons
    assert np.allclose(g2[0], 1000.0) and np.isclose(g2[1].sum(), 1800.0)


def test_entry_units_split_over_points_and_snap_into_the_theatre():
    theatre = np.zeros((10, 10), bool)
    theatre[3:, :] = True  # rows 0-2: across the border (outside the theatre)
    r, c, f = entry_units(np.array([[0, 2], [1, 8]]), theatre, 9000.0, 2000.0)
    assert np.isclose(f.sum(), 9000.0) and (f <= 2000.0 + 1e-9).all()
    assert theatre[r, c].all() and set(r) == {3}  # the nearest theatre cells, on the border
    assert set(c) == {2, 8} and (c == 2).sum() == (c == 8).sum()
    r, c, f = entry_units(np.zeros((0, 2)), theatre, 5000.0, 2000.0)
    assert f.size == 0


def test_zone_mask_reach_is_in_km_not_cells():
    coarse, fine = np.zeros((10, 10), bool), np.zeros((20, 20), bool)
    coarse[:, :3] = True  # the same governorate (west 30% of the box) on two grids
    fine[:, :6] = True
    zc = zone_mask(coarse, np.ones_like(coarse), 20.0, (10.0, 10.0))
    zf = zone_mask(fine, np.ones_like(fine), 20.0, (5.0, 5.0))
    assert zc[0].sum() == 5 and zf[0].sum() == 10  # 20 km beyond it = 2 coarse or 4 fine cells
    zp = zone_mask(np.zeros((10, 10), bool), np.ones((10, 10), bool), 0.0, (10.0, 10.0),
                   [(5, 5)], [10.0])
    assert zp.sum() == 5 and zp[5, 5]  # a point with a 10 km radius: its cell and 4 neighbours


def test_zone_closed_periods():
    per = [["2018-02-18", "2019-04-30"], ["2019-08-31", ""]]
    assert not zone_closed(per, dt.date(2018, 1, 1))
    assert zone_closed(per, dt.date(2018, 9, 17))
    assert not zone_closed(per, dt.date(2019, 6, 1))  # the offensive's window
    assert zone_closed(per, dt.date(2020, 1, 1))  # open-ended


def test_zones_and_entry_on_the_real_grid():
    """At 0.1 degrees: the Idlib zone holds Idlib, not Hama; closed, it cuts the regime's
    allowed ground except what it holds; Peace Spring's 18,000 enter near Tal Abyad and Ras
    al-Ayn as Turkey & SNA units, booked as recruits."""
    from sim import aftermath
    from sim.cli import compose
    from sim.runner import build_model

    m = build_model(compose(["geography=res_010", "output.plots=false", "scenario.weeks=1"]))
    z = m.zones["idlib"]
    assert z[m.geo.place_cell("Idlib")] and not z[m.geo.place_cell("Hama")]
    assert m.zones["manbij_kobani"][m.geo.place_cell("Manbij")]
    gov = m.fidx["SYRIAN_GOV"]
    m.date = dt.date(2018, 10, 1)  # between Sochi and the 2019 offensive
    assert aftermath.zones_changed(m) and "idlib" in m.zones_closed
    m.build_allowed()
    assert not (m.allowed[gov] & z & (m.owner != gov)).any()
    assert (m.allowed[gov] & z & (m.owner == gov)).sum() == (z & (m.owner == gov)).sum()
    n0, tsna = len(m.units), m.fidx["TURKEY_SNA"]
    aftermath.reinforce(m, ["peace_spring"])
    new = np.arange(n0, len(m.units))
    assert np.isclose(m.units.fighters[new].sum(), 18000.0) and (m.units.faction[new] == tsna).all()
    assert len(m.unit_agents) == len(m.units) == m.unit_reachable.size
    ta = np.array(m.geo.place_cell("Tell Abyad"))
    d = np.hypot(m.units.row[new] - ta[0], m.units.col[new] - ta[1])
    assert (d <= 2).sum() == new.size // 2  # half at Tal Abyad, half at Ras al-Ayn


def test_baghdads_offensives_open_their_pocket_and_draw_the_units():
    """At 0.1 degrees: the Hawija pocket is closed to Baghdad until its launch (21 Sep 2017);
    the launch (hawija_offensive) makes it the main effort, and the Iraqi HQ then aims more
    units there than with reach.main_effort_weight=1; the Tal Afar zone stays closed to the
    Peshmerga all run."""
    from sim import aftermath
    from sim.agents import FactionHQ
    from sim.cli import compose
    from sim.runner import build_model

    def targets_in_hawija(weight: float, day: dt.date, launched: bool) -> int:
        m = build_model(compose(["geography=res_010", "output.plots=false", "scenario.weeks=1",
                                 f"reach.main_effort_weight={weight}"]))
        iq = m.fidx["IRAQI_GOV"]
        m.date = day
        aftermath.zones_changed(m)
        m.build_allowed()
        if launched:
            aftermath.reinforce(m, ["hawija_offensive"])
            assert m.main_effort[iq][m.geo.place_cell("Hawija")]
        hq = next(a for a in m.agents_by_type[FactionHQ] if a.index == iq)
        hq.plan(m.hostility > 0)
        units = m.units.of_faction(iq)
        r, c = np.round(m.units.target[units]).astype(int).T
        return int(m.zones["hawija_op"][r, c].sum())

    assert targets_in_hawija(10.0, dt.date(2017, 9, 1), False) == 0  # closed: no unit aims there
    flat = targets_in_hawija(1.0, dt.date(2017, 9, 25), True)
    focused = targets_in_hawija(10.0, dt.date(2017, 9, 25), True)
    assert focused > flat, (flat, focused)
    m = build_model(compose(["geography=res_010", "output.plots=false", "scenario.weeks=1"]))
    m.date = dt.date(2017, 12, 30)
    aftermath.zones_changed(m)
    assert "tal_afar_peshmerga" in m.zones_closed and "hawija_op" not in m.zones_closed


def test_ceded_ground_falls_vacant_and_the_garrison_falls_back():
    """A deal (events.cede_ground): faction 0 hands over the two east cells of its strip; they
    become ungoverned, its 30 fighters there move to the nearest cell it keeps, nobody lost."""
    from sim.rules.control import UNGOVERNED
    from sim.rules.events import cede_ground

    owner = np.zeros((1, 5), np.int64)
    g = np.array([[1.0, 1.0, 1.0, 10.0, 20.0]], np.float32)
    area = np.array([[False, False, False, True, True]])
    moved, gone = cede_ground(owner, g, area, 0)
    assert owner.tolist() == [[0, 0, 0, UNGOVERNED, UNGOVERNED]]
    assert (moved, gone) == (30.0, 0.0)
    assert g.tolist() == [[1.0, 1.0, 31.0, 0.0, 0.0]]  # to the nearest kept cell
    # ceding all of it: the garrison leaves
    owner2, g2 = np.zeros((1, 2), np.int64), np.array([[5.0, 7.0]], np.float32)
    assert cede_ground(owner2, g2, np.ones((1, 2), bool), 0) == (0.0, 12.0)
    assert (owner2 == UNGOVERNED).all() and g2.sum() == 0


def test_the_sdf_damascus_deal_hands_manbij_over_and_closes_it_to_the_sdf():
    """At 0.1 degrees, firing the deal on the first-week model: the SDF's cells near Manbij fall
    vacant and are closed to it; the regime may take them; fighters are conserved."""
    from sim import aftermath
    from sim.cli import compose
    from sim.rules.control import UNGOVERNED
    from sim.runner import build_model

    m = build_model(compose(["geography=res_010", "output.plots=false", "scenario.weeks=1"]))
    sdf, gov = m.fidx["SDF"], m.fidx["SYRIAN_GOV"]
    cell = m.geo.place_cell("Manbij")
    assert m.owner[cell] == sdf
    before = float(m.garrison[sdf].sum())
    aftermath.cede(m, ["sdf_damascus_deal"])
    m.build_allowed()
    assert m.owner[cell] == UNGOVERNED and not m.allowed[sdf][cell] and m.allowed[gov][cell]
    assert m.ceded[sdf].sum() > 0 and not (m.owner[m.ceded[sdf]] == sdf).any()
    assert np.isclose(float(m.garrison[sdf].sum()), before)  # fell back east of the Euphrates


def test_dated_offensives_name_their_main_effort_on_the_real_grid():
    """At 0.1 degrees: the offensive on Eastern Ghouta (18 Feb 2018) puts the regime's main
    effort within 15 km of Douma (about pi 15^2 km^2, the same ground on any grid; not Damascus'
    west nor Daraa), the southern offensive (19 Jun 2018) on Daraa; with dated_hostility=false
    no main effort is set; the south-west truce zone holds Daraa and Quneitra."""
    from sim import aftermath
    from sim.cli import compose
    from sim.runner import build_model

    m = build_model(compose(["geography=res_010", "output.plots=false", "scenario.weeks=1"]))
    gov = m.fidx["SYRIAN_GOV"]
    assert not m.main_effort.any()
    aftermath.reinforce(m, ["deescalation_ends"])
    me = m.main_effort[gov]
    assert me[m.geo.place_cell("Duma")]  # Douma
    assert not me[m.geo.place_cell("Daraa")]
    ns, ew = aftermath.cell_sides_km(m)
    area = me.sum() * ns * ew
    assert 0.6 * np.pi * 15**2 < area < 1.6 * np.pi * 15**2
    aftermath.reinforce(m, ["southern_offensive"])
    assert m.main_effort[gov][m.geo.place_cell("Daraa")] and not m.main_effort[gov][m.geo.place_cell("Homs")]
    assert not m.main_effort[np.arange(m.n_f) != gov].any()
    z = m.zones["southwest"]
    assert z[m.geo.place_cell("Daraa")] and not z[m.geo.place_cell("Damascus")]
    off = build_model(compose(["geography=res_010", "output.plots=false", "scenario.weeks=1",
                               "scenario.dated_hostility=false"]))
    aftermath.reinforce(off, ["deescalation_ends", "southern_offensive"])
    assert not off.main_effort.any()


def test_us_protection_covers_the_east_bank_and_turkey_is_supplied_across_its_border():
    """At 0.1 degrees: the US protection zone holds Kobani district across the Euphrates from
    Jarabulus (a river bank, ``banks``, and the river's own cells), not Jarabulus or Manbij on
    the west bank; Turkey &
    SNA ground next to Turkey (its ``supply_countries``) is open country for its sieges, so a
    second Turkish piece on the border (Tal Abyad after Peace Spring) is not besieged while
    the same piece away from the border would be."""
    from sim import aftermath
    from sim.cli import compose
    from sim.rules.sieges import besieged_pieces
    from sim.runner import build_model

    m = build_model(compose(["geography=res_010", "output.plots=false", "scenario.weeks=1"]))
    z = m.zones["us_protection"]
    g = m.geo.grid
    east_bank = g.rowcol(np.array([36.80]), np.array([38.12]))
    assert z[int(east_bank[0][0]), int(east_bank[1][0])]
    assert not z[m.geo.place_cell("Jarabulus")] and not z[m.geo.place_cell("Manbij")]
    assert z[m.geo.place_cell("Raqqa")]
    # the river itself is closed too: its cells lie on neither bank, and across the frozen line
    # at Jarabulus they changed hands week after week (Turkey lost ~16,000 fighters there)
    euphrates = m.geo.named_rivers["Euphrates"] & m.geo.country_mask("SYR") & m.geo.theatre
    assert euphrates.any() and z[euphrates].all()
    t, sdf = m.fidx["TURKEY_SNA"], m.fidx["SDF"]
    exits = m.exits[t]
    assert exits.any() and not (exits & m.geo.theatre).any()
    ta = m.geo.place_cell("Tell Abyad")
    owner = m.owner.copy()
    owner[ta[0] - 1: ta[0] + 2, ta[1] - 1: ta[1] + 2] = np.where(
        m.geo.theatre[ta[0] - 1: ta[0] + 2, ta[1] - 1: ta[1] + 2], t, owner[ta[0] - 1: ta[0] + 2, ta[1] - 1: ta[1] + 2])
    war = np.zeros((m.n_f, m.n_f), bool)
    war[t, sdf] = war[sdf, t] = True
    piece = besieged_pieces(owner, war, t, m.presence, m.core[t])
    assert piece.besieged[piece.labels[ta]]  # without the border: cut off, besieged
    supplied = besieged_pieces(owner, war, t, m.presence, m.core[t], exits=exits)
    assert not supplied.besieged[supplied.labels[ta]]
    assert aftermath.supply_exits(m.cfg, m.geo, m.faction_names)[m.fidx["ISIS"]].sum() == 0
    # after Sochi the lines east of the Euphrates freeze, except the Peace Spring strip
    sochi = m.zones["sochi_line"]
    assert sochi[m.geo.place_cell("Raqqa")] and not sochi[ta]
    assert not sochi[m.geo.place_cell("Jarabulus")]


def test_the_peace_spring_pause_cedes_the_strip_to_whoever_gets_there():
    """At 0.1 degrees: the US-Turkey pause (17 Oct 2019) empties the SDF's ground in the strip
    between Tal Abyad and Ras al-Ayn (garrison conserved: it falls back), closed to the SDF
    from then on; Hasakah and Kobani stay the SDF's."""
    from sim import aftermath
    from sim.cli import compose
    from sim.runner import build_model

    m = build_model(compose(["geography=res_010", "output.plots=false", "scenario.weeks=1"]))
    sdf = m.fidx["SDF"]
    ta = m.geo.place_cell("Tell Abyad")
    assert m.owner[ta] == sdf
    before = float(m.garrison[sdf].sum())
    aftermath.cede(m, ["peace_spring_pause"])
    assert m.owner[ta] != sdf and m.ceded[sdf][ta]
    assert m.owner[m.geo.place_cell("Al-Hasakah")] == sdf and m.owner[m.geo.place_cell("Kobani")] == sdf
    assert float(m.garrison[sdf].sum()) == pytest.approx(before, rel=1e-5)
