"""Toy-world tests of the mechanisms (FLEE-style): tiny hand-built maps, exact outcomes.

Each test builds a few numpy arrays by hand, calls one kernel from :mod:`sim.rules` and checks
the exact result: movement and path choice, road moves, target planning, retreat,
redeployment, pocket evacuation, reinforcement, recruitment, destination choice and the
fighter ledger.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sim.rules import civilians as civ
from sim.rules import movement, recruitment, redeploy
from sim.rules.control import UNGOVERNED
from sim.rules.ledger import FighterLedger

OFFENSIVE = 0.5


def _move(owner, target, budget=3.0, allowed=None, hostility=None, cost=None, start=(3.0, 0.0)):
    """One faction-0 unit moving from ``start`` toward ``target`` on ``owner``."""
    owner = np.asarray(owner, np.int8)
    allowed = np.ones((2, *owner.shape), bool) if allowed is None else allowed
    hostility = np.array([[0.0, 1.0], [1.0, 0.0]]) if hostility is None else hostility
    cost = np.ones(owner.shape) if cost is None else cost
    r, c = movement.tactical_moves(np.array([start[0]]), np.array([start[1]]),
                                   np.array([float(target[0])]), np.array([float(target[1])]),
                                   np.array([0], np.int16), np.array([budget]), cost, owner,
                                   allowed, hostility, OFFENSIVE)
    return float(r[0]), float(c[0])


# ------------------------------------------------------------------ movement and path choice
def test_unit_walks_its_budget_straight_toward_its_target():
    assert _move(np.zeros((7, 7)), (3, 6)) == (3.0, 3.0)


def test_unit_stops_at_its_target():
    assert _move(np.zeros((7, 7)), (3, 2)) == (3.0, 2.0)


def test_rough_ground_costs_budget():
    cost = np.ones((7, 7))
    cost[:, 2] = 2.0  # a river crossing: the third sample costs 1 + 2 = 3 > budget 2.5
    assert _move(np.zeros((7, 7)), (3, 6), budget=2.5, cost=cost) == (3.0, 1.0)


def test_unit_enters_the_first_enemy_cell_but_not_beyond():
    owner = np.zeros((7, 7))
    owner[:, 2:] = 1  # faction 1, at war with 0
    assert _move(owner, (3, 6)) == (3.0, 2.0)


def test_unit_never_enters_ground_of_a_faction_it_only_skirmishes_with():
    owner = np.zeros((7, 7))
    owner[:, 2:] = 1
    skirmish = np.array([[0.0, 0.2], [0.2, 0.0]])  # hostile, but below the offensive level
    r, c = _move(owner, (3, 6), hostility=skirmish)
    assert c < 1.5 and owner[int(round(r)), int(round(c))] == 0


def test_unit_detours_around_a_lake():
    allowed = np.ones((2, 7, 7), bool)
    allowed[:, 3:5, 1] = False  # a lake in front of the unit: the straight heading is blocked
    r, c = _move(np.zeros((7, 7)), (3, 6), allowed=allowed)
    # +30 degrees (toward row 6) runs into the lake too; -30 passes north of it, ending
    # nearer the target than the +-60 and +-90 detours
    assert (r, c) == pytest.approx((3.0 - 1.5, 3.0 * np.cos(np.deg2rad(30))))


def test_road_move_jumps_to_the_edge_of_own_ground_nearest_the_objective():
    own = np.zeros((3, 15), bool)
    own[:, :10] = True
    moved, r, c = movement.road_moves(own, np.array([1.0]), np.array([0.0]), np.array([[1.0, 12.0]]),
                                      speed=1.0, road_factor=10.0)
    assert moved[0] and (r[0], c[0]) == (1.0, 9.0)
    # out of road reach: no move
    moved, r, c = movement.road_moves(own, np.array([1.0]), np.array([0.0]), np.array([[1.0, 12.0]]),
                                      speed=1.0, road_factor=5.0)
    assert not moved[0] and (r[0], c[0]) == (1.0, 0.0)


# ------------------------------------------------------------------ target planning
def test_targets_are_enemy_or_ungoverned_cells_within_two_cells():
    owner = np.array([[0, 0, 0, 1, 1, UNGOVERNED, UNGOVERNED]], np.int8)
    hostility = np.array([[0.0, 1.0], [1.0, 0.0]])
    idx = movement.target_cells(0, owner, np.zeros(owner.shape, bool), np.ones(owner.shape, bool),
                                hostility, OFFENSIVE)
    assert list(idx) == [3, 4]
    # a unit standing on col 4 extends the reach to the ungoverned cells
    occ = np.zeros(owner.shape, bool)
    occ[0, 4] = True
    idx = movement.target_cells(0, owner, occ, np.ones(owner.shape, bool), hostility, OFFENSIVE)
    assert list(idx) == [3, 4, 5, 6]


def test_target_scores_prefer_feasible_and_vacant_ground():
    idx = np.array([0, 1, 2])
    owner_at = np.array([1, 1, UNGOVERNED])
    enemy = np.array([[0.0, 100.0, 0.0]])
    value = np.ones((1, 3), np.float32)
    score = movement.target_scores(idx, owner_at, mass=20.0, presence=np.zeros((1, 3)), enemy=enemy,
                                   value=value, need=np.full(3, 2.0), hostility_f=np.array([0.0, 1.0]))
    # cell 0: ratio 20/1/2 = 10 -> capped at 3; cell 1: ratio 20/101/2 < 1 -> put off (x 0.05);
    # cell 2: ungoverned, ratio 10 -> 3 x 1.5
    assert score == pytest.approx([3.0, 0.05 * 20 / 101 / 2, 4.5])


def test_objectives_spread_units_over_fronts():
    top = np.array([2, 8])  # flat cells of a 1 x 10 map
    score = np.array([10.0, 7.0])
    rows, cols = np.zeros(3), np.array([5.0, 5.0, 5.0])
    out = movement.assign_objectives(rows, cols, np.full((3, 2), -1.0), top, score, width=10,
                                     speed_cells=3.0)
    # unit 1 takes the best cell; its score drops to 6 < 7, so unit 2 goes to the other front;
    # then cell 8 (4.2) is below cell 2 (6) again
    assert out[:, 1].tolist() == [2.0, 8.0, 2.0]


def test_objective_commitment_keeps_the_previous_target():
    top = np.array([2, 8])
    out = movement.assign_objectives(np.zeros(1), np.array([5.0]), np.array([[0.0, 8.0]]), top,
                                     np.array([10.0, 7.0]), width=10, speed_cells=3.0)
    assert out[0].tolist() == [0.0, 8.0]  # 2 x 7 beats 10


# ------------------------------------------------------------------ retreat
def test_retreat_survivors_land_on_own_ground_and_the_rest_are_lost():
    g = np.zeros((1, 7), np.float32)
    g[0, 3] = 10.0  # a cell just lost
    own = np.array([[True, True, True, False, False, False, False]])
    out, hidden, trapped, killed = movement.retreat(g, own, loss_fraction=0.1)
    assert not hidden.any() and not trapped.any()  # nothing goes to ground
    assert out[0, 3] == 0.0 and out[~own].sum() == 0.0
    assert float(out.sum()) == pytest.approx(9.0) and killed == pytest.approx(1.0)


def test_retreat_with_no_own_ground_in_reach_is_a_pocket_wiped_out():
    g = np.zeros((1, 9), np.float32)
    g[0, 8] = 10.0  # four cells from own ground: out of reach
    own = np.array([[True, True, True, True, False, False, False, False, False]])
    out, hidden, trapped, killed = movement.retreat(g, own, 0.1, underground_share=0.2, trapped_hide=0.5)
    # 2 go to ground where they stand; of 8, 0.8 die retreating; the 7.2 trapped: half hide
    assert hidden[0, 8] == pytest.approx(2.0) and trapped[0, 8] == pytest.approx(3.6)
    assert killed == pytest.approx(0.8 + 3.6) and float(out.sum()) == 0.0


def test_no_retreat_when_nothing_was_lost():
    own = np.ones((2, 2), bool)
    assert movement.retreat(np.ones((2, 2), np.float32), own, 0.1) is None


# ------------------------------------------------------------------ redeployment
def test_garrisons_spread_but_every_piece_keeps_its_fighters():
    own = np.array([[True, True, True, False, True, True]])
    g = np.array([[9.0, 0.0, 0.0, 0.0, 0.0, 3.0]], np.float32)
    w = np.ones(own.shape, np.float32) * own
    target = redeploy.garrison_targets(g, own, w, window=3)
    labels, n, comp = redeploy.pieces(own, g)
    assert n == 2 and comp.tolist() == [0.0, 9.0, 3.0]
    redeploy.spread_garrisons(g, target, labels, comp)
    assert g[0, :3].sum() == pytest.approx(9.0) and g[0, 4:].sum() == pytest.approx(3.0)
    assert g[0, 3] == 0.0 and 0 < g[0, 1] < g[0, 0]  # half-way toward an even spread


def test_front_cells_count_double():
    own = np.array([[True, True, True, False]])
    enemy = np.array([[False, False, False, True]])
    w = redeploy.station_weights(np.ones(own.shape, np.float32), own, enemy)
    assert w.tolist() == [[1.0, 1.0, 2.0, 0.0]]


# ------------------------------------------------------------------ pocket evacuation
def _pocket_map():
    a, b = 0, 1
    owner = np.full((5, 8), b, np.int8)
    owner[:, :3] = a  # main ground of a
    owner[2, 6] = a  # a one-cell pocket inside b's ground
    return owner


def test_besieged_pocket_is_found_and_evacuated_to_main_ground():
    owner = _pocket_map()
    own = owner == 0
    g = np.where(own, 10.0, 0.0).astype(np.float32)
    labels, n, _ = redeploy.pieces(own, g)
    war = np.array([False, True])
    besieged = redeploy.besieged_pockets(own, labels, n, owner, war)
    assert besieged.tolist() == [False, False, True]
    before = float(g.sum())
    moved = redeploy.evacuate(g, labels, besieged, 0.25, np.where(own, 1.0, 0.0))
    assert moved == pytest.approx(2.5) and g[2, 6] == pytest.approx(7.5)
    assert float(g.sum()) == pytest.approx(before, rel=1e-6)
    assert g[labels == 1].sum() == pytest.approx(150.0 + 2.5)


def test_pocket_touching_open_ground_is_not_besieged():
    owner = _pocket_map()
    owner[2, 7] = UNGOVERNED  # a way out
    own = owner == 0
    labels, n, _ = redeploy.pieces(own, own.astype(np.float32))
    assert not redeploy.besieged_pockets(own, labels, n, owner, np.array([False, True])).any()


# ------------------------------------------------------------------ reinforcement
def test_weak_units_disband_into_garrisons_and_others_draw_replacements():
    new, weak, back, lost, draw = redeploy.reinforce(np.array([100.0, 10.0, 50.0]), 100.0, 1000.0)
    assert new.tolist() == [100.0, 0.0, 60.0] and weak.tolist() == [False, True, False]
    assert (back, lost, draw) == (10.0, 0.0, 10.0)


def test_no_replacements_without_garrisons_and_disbanded_fighters_are_lost():
    new, weak, back, lost, draw = redeploy.reinforce(np.array([100.0, 10.0, 50.0]), 100.0, 0.0)
    assert new.tolist() == [100.0, 0.0, 50.0] and (back, lost, draw) == (0.0, 10.0, 0.0)


def test_seeded_garrison_is_capped_at_three_times_the_need():
    assert redeploy.seed_amounts(np.array([100.0, 10.0]), np.array([5.0, 5.0]), 0.5).tolist() == [15.0, 5.0]


# ------------------------------------------------------------------ recruitment
def test_factions_recruit_where_they_rule_and_isis_from_aggrieved_sunnis():
    garrison = np.zeros((2, 1, 3), np.float32)
    hidden = np.zeros((1, 3), np.float32)
    own_c = np.array([1, 1, 1])  # all ruled by faction 1; ISIS is faction 0
    home = np.array([1000.0, 1000.0, 1000.0])
    identity = np.array([0, 1, 0])  # sunni_arab, other, sunni_arab
    cells = np.array([0, 1, 2])
    legit = np.array([[0.0, 0.0], [0.5, 0.5]])
    griev = np.array([0.2, 0.2, 0.2])
    reach = np.array([[True, True, False]])  # the third is beyond ISIS's network
    out = recruitment.recruit_all(garrison, hidden, own_c, home, identity, cells, legit, griev,
                                  np.array([0.0, 0.01]), 0, 0.1, reach, sunni=0)
    # faction 1: 0.01 x 1000 x 0.5 x (1 - 0.2) = 4 per community; ISIS: 0.1 x 1000 x 0.2 = 20
    assert [(i, round(k, 6)) for i, k in out] == [(1, 12.0), (0, 20.0)]
    assert garrison[1].tolist() == [[4.0, 4.0, 4.0]] and hidden.tolist() == [[20.0, 0.0, 0.0]]


def test_network_reach():
    hidden = np.zeros((1, 9), np.float32)
    hidden[0, 0] = 1.0
    reach = recruitment.network_reach(hidden, np.zeros((1, 9), bool), cell_km=10.0)  # +-3 cells
    assert reach.tolist() == [[True] * 4 + [False] * 5]


# ------------------------------------------------------------------ destination choice
def test_people_flee_to_the_best_reachable_destination():
    # two destinations: a near unsafe one and a farther safe one; a third out of reach
    safety = np.array([[0.2, 1.0, 1.0]])
    legit = np.array([[0.5, 0.5, 0.5]])
    cap = np.array([[1000.0, 1000.0, 1000.0]])
    dist = np.array([[10.0, 20.0, 200.0]])
    scores = civ.destination_scores(safety, legit, cap, dist, walk_km=50.0)
    assert scores[0, 2] == 0.0  # beyond 3 x walk_km
    cell, has = civ.choose_destinations(scores, np.array([100, 200, 300]), np.array([7]))
    assert cell.tolist() == [200] and has.tolist() == [True]


def test_no_reachable_destination_keeps_the_current_shelter():
    scores = civ.destination_scores(np.array([[1.0]]), np.array([[0.5]]), np.array([[10.0]]),
                                    np.array([[500.0]]), walk_km=50.0)
    cell, has = civ.choose_destinations(scores, np.array([100]), np.array([7]))
    assert cell.tolist() == [7] and has.tolist() == [False]


def test_a_full_refuge_stops_pulling_the_displaced():
    """FLEE location capacity: three regions of 1,000 people, host_ratio 1.  Region 0
    shelters 250 + 250 = 500 displaced (room 0.5), region 1 1,500 (full: 0), region 2 none (1);
    displaced with no shelter (-1) count nowhere.  With host_ratio 2, region 1 keeps 0.25."""
    idp_region = np.array([0, 0, 1, -1])
    idp = np.array([250.0, 250.0, 1500.0, 900.0])
    pop0 = np.array([1000.0, 1000.0, 1000.0])
    assert civ.shelter_room(idp_region, idp, pop0, 1.0).tolist() == [0.5, 0.0, 1.0]
    assert civ.shelter_room(idp_region, idp, pop0, 2.0).tolist() == [0.75, 0.25, 1.0]
    # a safe but full refuge loses the community to a half-full one
    safety = np.array([[1.0, 1.0]]) * civ.shelter_room(idp_region, idp, pop0, 1.0)[None, :2]
    scores = civ.destination_scores(safety, np.array([[0.5, 0.5]]), np.array([[1000.0, 1000.0]]),
                                    np.array([[10.0, 10.0]]), walk_km=50.0)
    cell, has = civ.choose_destinations(scores, np.array([100, 200]), np.array([7]))
    assert cell.tolist() == [100] and scores[0, 1] == 0.0


# ------------------------------------------------------------------ the fighter ledger
def test_ledger_balances_by_construction_and_isis_losses_take_foreign_fighters():
    forces = {0: 100.0, 1: 50.0}
    led = FighterLedger(["ISIS", "B"], isis=0, foreign=40.0, count=lambda i: forces[i])
    forces[0] -= 20.0
    led.killed(0, 20.0)  # 40 of 100 were foreign: 8 of the 20 lost
    assert led.foreign == pytest.approx(32.0)
    forces[0] -= 10.0
    led.exported(10.0)
    forces[1] += 5.0
    led.recruited(1, 5.0)
    forces[1] = 0.0
    led.withdrawn(1, 55.0)
    assert led.balance(0, 100.0) == pytest.approx(0.0) and led.balance(1, 50.0) == pytest.approx(0.0)
    assert led.foreign == pytest.approx(22.0)
    assert led.flow[("new_fighters_withdrawn", "B")] == 55.0
    assert led.flow[("new_foreign_fighters_exported", "ALL")] == 10.0
    led.close_step([("new_fighters_withdrawn", "B")])
    led.new_step()
    led.close_step([("new_fighters_withdrawn", "B")])
    assert led.cum[("new_fighters_withdrawn", "B")] == 55.0


def test_population_displace_conserves_people():
    regions = {"regmap": np.array([[0, 1]]), "region_names": np.array(["a", "b"]),
               "region_cell": np.array([0, 1]), "region_pop0": np.array([100.0, 100.0])}
    table = SimpleNamespace(region=np.array([0, 1]), identity=np.array([0, 0]),
                            home=np.array([100.0, 100.0]), idp=np.zeros(2), abroad=np.zeros(2),
                            dead=np.zeros(2), idp_loc=np.array([0, 1]), pop0=np.array([100.0, 100.0]),
                            idp_init=np.zeros(2), abroad_init=np.zeros(2), idp_threat=np.zeros(2))
    dest = {"region_border_km": np.array([500.0, 500.0]), "dest_region": np.array([1]),
            "dest_dist": np.array([[30.0], [0.0]]), "dest_capacity": np.array([100.0])}
    pop = civ.Population(regions, table, dest, np.array([[100.0, 100.0]]))
    dc = SimpleNamespace(flee_rate_violence=1.0, flee_rate_damage=0.0, flee_rate_persecution=0.0,
                         host_ratio=1e9,  # refuges never full
                         walk_km_week=50.0, abroad_share=0.0, return_rate=0.0, return_rate_abroad=0.0,
                         return_rate_threat=0.0, return_quiet_weeks=4, safe_damage=0.5)
    flows = pop.displace(np.array([0, 0]), np.array([[0.5]]), np.zeros(2), np.array([1.0, 0.0]),
                         np.array([1.0, 0.0]), np.zeros(2), np.zeros(2), np.array([0.5, 0.5]),
                         (np.zeros(2), np.zeros(2)), dc)
    # community a: 1 - exp(-1) of its people flee to b's town; b is quiet
    assert flows["new_displaced"] == pytest.approx(100 * (1 - np.exp(-1.0)))
    assert table.idp_loc.tolist() == [1, 1]
    assert (table.home + table.idp + table.abroad + table.dead).sum() == pytest.approx(200.0)
    # a's town in a besieged pocket (label 1): no one gets out, whatever the violence, even to a
    # town in the same pocket; from open ground, no one flees into a pocket
    home = table.home.copy()
    args = (np.array([0, 0]), np.array([[0.5]]), np.zeros(2), np.array([1.0, 0.0]), np.array([1.0, 0.0]),
            np.zeros(2), np.zeros(2), np.array([0.5, 0.5]), (np.zeros(2), np.zeros(2)), dc, 0.0)
    for pocket in ([1, 0], [1, 1]):
        flows = pop.displace(*args, np.array(pocket))
        assert flows["new_displaced"] == 0.0 and table.home.tolist() == pytest.approx(home.tolist())
    flows = pop.displace(*args, np.array([0, 1]))  # b's town (the only destination) besieged
    assert flows["new_displaced"] == 0.0


def test_no_one_gets_into_or_out_of_a_besieged_pocket():
    """Pocket labels per cell (0 = open ground): cells 1-2 form pocket 1, cell 4 pocket 2.
    Home cells 0 (open), 1 (pocket 1), 4 (pocket 2), the last two with all their people in the
    pocket, a fourth community settled at cell 1 with 40% of its people outside; destinations
    at cells 0, 2, 3, 4."""
    share, same = civ.pocket_reach(np.array([0, 1, 1, 0, 2]), np.array([0.0, 1.0, 1.0, 0.4]),
                                   np.array([0, 1, 4, 1]), np.array([0, 2, 3, 4]))
    assert share.tolist() == [0.0, 1.0, 1.0, 0.4]
    assert same.tolist() == [[True, False, True, False],   # open ground: open destinations only
                             [False, True, False, False],  # pocket 1: its own town only
                             [False, False, False, True],  # pocket 2: its own town only
                             [True, False, True, False]]   # those who may flee: open ground


def test_only_the_people_outside_a_pocket_flee():
    """One settlement region of two cells (60 and 40 people), a second region as the refuge:
    with the first cell in a besieged pocket, the people of the second cell flee as before, so
    the region's flight is 40% of what it is with no pocket, whichever cell holds its town (the
    trapped share counts people, not the settlement's cell: the same on any grid)."""
    def world(settle_cell):
        regions = {"regmap": np.array([[0, 0, 1]]), "region_names": np.array(["a", "b"]),
                   "region_cell": np.array([settle_cell, 2]), "region_pop0": np.array([100.0, 100.0])}
        table = SimpleNamespace(region=np.array([0, 1]), identity=np.array([0, 0]),
                                home=np.array([100.0, 100.0]), idp=np.zeros(2), abroad=np.zeros(2),
                                dead=np.zeros(2), idp_loc=np.array([settle_cell, 2]),
                                pop0=np.array([100.0, 100.0]), idp_init=np.zeros(2),
                                abroad_init=np.zeros(2), idp_threat=np.zeros(2))
        dest = {"region_border_km": np.array([500.0, 500.0]), "dest_region": np.array([1]),
                "dest_dist": np.array([[30.0], [0.0]]), "dest_capacity": np.array([100.0])}
        return civ.Population(regions, table, dest, np.array([[60.0, 40.0, 100.0]]))
    dc = SimpleNamespace(flee_rate_violence=1.0, flee_rate_damage=0.0, flee_rate_persecution=0.0,
                         host_ratio=1e9,  # refuges never full
                         walk_km_week=50.0, abroad_share=0.0, return_rate=0.0, return_rate_abroad=0.0,
                         return_rate_threat=0.0, return_quiet_weeks=4, safe_damage=0.5)
    args = (np.array([0, 0, 0]), np.array([[0.5]]), np.zeros(3), np.array([1.0, 1.0, 0.0]),
            np.array([1.0, 0.0]), np.zeros(2), np.zeros(2), np.array([0.5, 0.5]),
            (np.zeros(2), np.zeros(2)), dc, 0.0)
    free = world(0).displace(*args, np.array([0, 0, 0]))["new_displaced"]
    assert free == pytest.approx(100 * (1 - np.exp(-1.0)))
    for settle in (0, 1):
        got = world(settle).displace(*args, np.array([1, 0, 0]))["new_displaced"]
        assert got == pytest.approx(0.4 * free)


def test_the_war_inside_a_ring_drives_no_one_out():
    """The region of two cells (60 and 40 people) with the first in a besieged pocket: fighting
    and destroyed housing inside the ring do not make the people outside flee; the same fighting
    on their side does, as if there were no ring (the mean over the open cells' people)."""
    regions = {"regmap": np.array([[0, 0, 1]]), "region_names": np.array(["a", "b"]),
               "region_cell": np.array([0, 2]), "region_pop0": np.array([100.0, 100.0])}

    def world():
        table = SimpleNamespace(region=np.array([0, 1]), identity=np.array([0, 0]),
                                home=np.array([100.0, 100.0]), idp=np.zeros(2), abroad=np.zeros(2),
                                dead=np.zeros(2), idp_loc=np.array([0, 2]),
                                pop0=np.array([100.0, 100.0]), idp_init=np.zeros(2),
                                abroad_init=np.zeros(2), idp_threat=np.zeros(2))
        dest = {"region_border_km": np.array([500.0, 500.0]), "dest_region": np.array([1]),
                "dest_dist": np.array([[30.0], [0.0]]), "dest_capacity": np.array([100.0])}
        pop = civ.Population(regions, table, dest, np.array([[60.0, 40.0, 100.0]]))
        pop.dmg_cell_prev = np.zeros(3)
        return pop
    dc = SimpleNamespace(flee_rate_violence=1.0, flee_rate_damage=1.0, flee_rate_persecution=0.0,
                         host_ratio=1e9,  # refuges never full
                         walk_km_week=50.0, abroad_share=0.0, return_rate=0.0, return_rate_abroad=0.0,
                         return_rate_threat=0.0, return_quiet_weeks=4, safe_damage=0.5)

    def flight(vio_cell, damage, vio_c, ddmg_c):
        return world().displace(np.array([0, 0, 0]), np.array([[0.5]]), np.array(damage),
                                np.array(vio_cell), np.array(vio_c), np.zeros(2), np.array(ddmg_c),
                                np.array([0.5, 0.5]), (np.zeros(2), np.zeros(2)), dc, 0.0,
                                np.array([1, 0, 0]))["new_displaced"]
    # shelling and 10% of homes destroyed in the pocket only (region means 0.6 and 0.06)
    assert flight([1.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.6, 0.0], [0.06, 0.0]) == 0.0
    # the same on the open side: its 40 people flee at 1 - exp(-1) each
    assert flight([0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.4, 0.0], [0.0, 0.0]) == \
        pytest.approx(40 * (1 - np.exp(-1.0)))


def test_the_displaced_shelter_spread_over_their_refuges_region_like_its_people():
    """Region 0 = cells 0-2 (people 10, 30, 60), region 1 = cell 3 (no people), cell 4 outside.
    60 IDPs sheltering at cell 1 (region 0) live 6, 18, 36 over its cells; 5 at cell 3 stay
    there; a shell that kills 10% of those present in cell 2 kills 3.6 of them, whichever of
    the region's cells they were sent to: on a grid that splits a town into more cells the
    people a shell can reach are the same (issue 14.5)."""
    regmap = np.array([0, 0, 0, 1, -1])
    share = civ.shelter_shares(regmap, np.array([10.0, 30.0, 60.0, 0.0, 0.0]), np.array([1, 3]), 2)
    assert share.tolist() == pytest.approx([0.1, 0.3, 0.6, 1.0, 0.0])
    for loc in (0, 1, 2):
        idp = civ.spread_shelter(np.array([60.0, 5.0]), np.array([loc, 3]), regmap, share, 2)
        assert idp.tolist() == pytest.approx([6.0, 18.0, 36.0, 5.0, 0.0])
        assert (idp * np.array([0, 0, 0.1, 0, 0]))[:3].sum() == pytest.approx(3.6)


def test_urban_index_reads_people_per_area_not_per_cell():
    """The same town on a 0.05- and a 0.1-degree grid: the coarse cell holds four times the
    people (area_factor 4) and gets the same urban index; 1,000 and 100,000 people per
    0.05-degree cell's worth of area are the ends of the scale."""
    from sim.rules.assault import urban_index

    fine = np.array([500.0, 1000.0, 10000.0, 100000.0, 400000.0])
    assert urban_index(fine, 1.0) == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert urban_index(4.0 * fine, 4.0) == pytest.approx(urban_index(fine, 1.0))
    assert urban_index(4.0 * fine, 1.0)[2] > urban_index(fine, 1.0)[2] + 0.29  # per cell: +0.3


# ------------------------------------------------------------------ flight ahead of a feared advance
def _threat_world(scale: int = 1, took_km: float = 10.0, reach: float = 25.0):
    """A 1 x 8 strip of 10-km cells (``scale`` = 2: 16 cells of 5 km, the same ground), people
    spread evenly (1 per km); faction 2 held the first 20 km, faction 1 the rest, and this week
    faction 2 took the next ``took_km``.  Four settlement regions of 20 km each, one community
    (identity 0) in each.  Legitimacy for the group: 1 -> 0.8, 2 -> 0.2, 3 -> 0.9.  Returns
    the hazards with flee_rate_threat 0.75, threat_km ``reach`` and threat_advance_km 15."""
    n = 8 * scale
    prev = np.full((1, n), 1, np.int8)
    prev[0, : 2 * scale] = 2
    owner = prev.copy()
    owner[0, 2 * scale: 2 * scale + int(took_km * scale / 10)] = 2
    war = np.zeros((4, 4), bool)
    war[1, 2] = war[2, 1] = war[1, 3] = war[3, 1] = True
    legit = np.array([[0.5], [0.8], [0.2], [0.9]])
    regmap = np.repeat(np.arange(4), 2 * scale)
    weight = np.full(n, 10.0 / scale)
    return (prev, owner, war, legit, regmap, weight, np.bincount(regmap, weights=weight),
            np.arange(4), np.zeros(4, np.int64), reach, (10.0 / scale, 10.0 / scale), 0.75, 15.0)


def test_people_flee_ahead_of_a_feared_advance_as_far_as_it_came_closer():
    """The front moves from 20 to 30 km.  People between 20 and 30 km saw it come 0-10 km
    closer (mean 5 km), those between 30 and 45 km 10 km, those between 45 and 55 km less
    (the enemy was beyond the 25 km reach), those further nothing; a 15-km approach in a week
    is a full week's fear, 0.75 x the legitimacy gap 0.6 = 0.45."""
    args = _threat_world()
    h = civ.threat_hazard(*args)
    # regions 20-40 km: (5 + 10) / 2 km; 40-60 km: (10 + 0) / 2 km; 0-20 km held by faction 2
    assert h.tolist() == pytest.approx([0.0, 0.45 * 7.5 / 15, 0.45 * 5 / 15, 0.0])
    # a more legitimate liberator is not feared
    prev, owner, *rest = args
    libr = np.where(owner != prev, 3, owner).astype(np.int8)
    assert not civ.threat_hazard(prev, libr, *rest).any()
    # ground the advancing faction may not take (limited aims, a truce) is not threatened
    allowed = np.ones((4, 1, 8), bool)
    allowed[2, 0, 4:] = False
    h2 = civ.threat_hazard(*args, allowed)
    assert h2.tolist() == pytest.approx([0.0, 0.45 * 7.5 / 15, 0.0, 0.0])
    # no front moved: no hazard
    assert not civ.threat_hazard(prev, prev, *rest).any()
    # a front that sweeps 30 km in a week brings one week's fear at most
    assert civ.threat_hazard(*_threat_world(took_km=30.0)).max() == pytest.approx(0.45)


def test_fear_of_an_advance_is_the_same_on_a_finer_grid_and_in_smaller_steps():
    """The approach is in km from where people live: on a grid twice as fine the same advance
    brings the same fear to the regions within 10 km of the new front, and the same fear in
    all (people-weighted) overall; taken in two 5-km steps, the same total as in one."""
    coarse = civ.threat_hazard(*_threat_world(1))
    fine = civ.threat_hazard(*_threat_world(2))
    assert fine[1] == pytest.approx(coarse[1])
    assert fine.sum() == pytest.approx(coarse.sum())
    prev, owner, *rest = _threat_world(2)
    half = prev.copy()
    half[0, 4] = 2  # the first 5 km of the advance in week 1, the rest in week 2
    two = civ.threat_hazard(prev, half, *rest) + civ.threat_hazard(half, owner, *rest)
    assert two == pytest.approx(fine)


def test_those_who_fled_a_feared_advance_return_faster_and_people_are_conserved():
    """A community with 100 IDPs, 40 of whom fled ahead of an advance: with returns of 1% and
    10% a week they return 0.6 + 4; the cohort keeps 36 plus its share of this week's flight."""
    ret = civ.mixed_return(np.array([100.0]), np.array([40.0]), np.array([0.01]), np.array([0.1]))
    assert ret[0] * 100.0 == pytest.approx(0.6 + 4.0)
    # this week 20 new IDPs fled under a hazard of 0.3 of which 0.1 was the threat
    flee = np.array([1.0 - np.exp(-0.3)])
    cohort = civ.threat_cohort(np.array([40.0]), np.array([100.0]), np.array([0.0]), np.array([0.1]),
                               np.array([20.0]), np.array([0.1]), flee, np.array([115.4]))
    assert cohort[0] == pytest.approx(36.0 + 20.0 / 3.0)
    # bounded by the IDPs there are
    assert civ.threat_cohort(np.array([40.0]), np.array([100.0]), np.array([0.0]), np.array([0.1]),
                             np.array([20.0]), np.array([0.1]), flee, np.array([30.0]))[0] == 30.0
