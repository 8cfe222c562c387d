"""Aftermath mechanisms of issue 13 (src/sim/rules/{assault,sieges,withdrawal,reach,alignment,
holdouts}.py) on tiny hand-built grids, with exact expected numbers (no Mesa, no I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.rules.alignment import common_enemy_lost, responsive_hostility
from sim.rules.assault import apply_capture, clearing_capture, clearing_depth, sector_capture, sector_odds
from sim.rules.control import OUTSIDE, UNGOVERNED
from sim.rules.holdouts import go_underground, holdout_defence, open_pockets, pocket_mask
from sim.rules.reach import (
    allocate_units,
    passable,
    crossable_labels,
    passable_parts,
    reachable_any,
    reachable_matrix,
    reachable_targets,
    share_units_stuck,
)
from sim.rules.sieges import (
    SiegeClock,
    besieged_pieces,
    cut_off_units,
    hold_truces,
    pressed,
    siege_week,
    surrender,
)
from sim.rules.withdrawal import fall_back_limited, hopeless, withdraw

D, A, P = 0, 1, 2  # defender, attacker, the defender's partner (not hostile to it)


# ------------------------------------------------------------------ assault
def _city_world():
    """5 x 5: the attacker holds columns 0-1, the defender columns 2-4; a city at (2, 2)
    (defence 1.5) held by 10 defenders."""
    owner = np.full((5, 5), D, np.int8)
    owner[:, :2] = A
    presence = np.zeros((3, 5, 5))
    presence[D, 2, 2] = 10.0
    hostile = np.zeros((3, 3), bool)
    hostile[D, A] = hostile[A, D] = True
    hostile[A, P] = hostile[P, A] = True
    allowed = np.ones((3, 5, 5), bool)
    defence = np.ones((5, 5))
    defence[2, 2] = 1.5
    hold_min = np.array([1.0, 1.0, 1.0])
    return owner, presence, hostile, allowed, defence, hold_min


def test_city_falls_to_a_concentrated_3_to_1_assault():
    owner, p, hostile, allowed, defence, hm = _city_world()
    p[A, 2, 2] = 15.0
    p[A, 2, 1] = 30.0  # sector of the city: 45 = 3 x 1.5 x 10
    ch, att, dfn = sector_odds(owner, p, hostile, allowed, hm)
    assert (ch[2, 2], att[2, 2], dfn[2, 2]) == (A, 45.0, 10.0)
    captured, capturer = sector_capture(owner, p, hostile, allowed, hm, defence, 3.0)
    assert captured.sum() == 1 and captured[2, 2] and capturer[2, 2] == A
    assert (capturer[~captured] == -1).all()
    new = apply_capture(owner, captured, capturer)
    assert new.dtype == np.int8 and new[2, 2] == A and (new[owner != new] == A).all()


def test_city_holds_against_1_5_to_1():
    owner, p, hostile, allowed, defence, hm = _city_world()
    p[A, 2, 2] = 7.5
    p[A, 2, 1] = 15.0  # sector 22.5 = 1.5 x 1.5 x 10
    captured, _ = sector_capture(owner, p, hostile, allowed, hm, defence, 3.0)
    assert not captured.any()
    # the same force takes an open (defence 1) cell at 1.5:1 only if the ratio allows it
    captured, _ = sector_capture(owner, p, hostile, allowed, hm, None, 2.25)
    assert captured[2, 2] and captured.sum() == 1


def test_thin_attacker_without_cell_presence_does_not_take_the_city():
    owner, p, hostile, allowed, defence, hm = _city_world()
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    p[A, 1:4, 1:4][ring] = 45.0 / 8  # 45 over the sector, nothing on the city cell
    ch, att, _ = sector_odds(owner, p, hostile, allowed, hm)
    assert ch[2, 2] == -1 and att[2, 2] == 0.0
    captured, _ = sector_capture(owner, p, hostile, allowed, hm, defence, 3.0)
    assert not captured.any()  # ring cells: at most 5 x 5.625 = 28.125 < 3 x 10 in any sector


def test_non_hostile_partner_counts_for_the_defender():
    owner, p, hostile, allowed, defence, hm = _city_world()
    p[A, 2, 2] = 15.0
    p[A, 2, 1] = 30.0
    p[P, 2, 3] = 10.0  # partner next to the city: defence sector 20, need 90
    _, _, dfn = sector_odds(owner, p, hostile, allowed, hm)
    assert dfn[2, 2] == 20.0
    captured, _ = sector_capture(owner, p, hostile, allowed, hm, defence, 3.0)
    assert not captured.any()
    # a faction at war with the owner does not defend it
    hostile[P, D] = hostile[D, P] = True
    captured, capturer = sector_capture(owner, p, hostile, allowed, hm, defence, 3.0)
    assert captured[2, 2] and capturer[2, 2] == A


def test_assault_needs_hold_min_on_cell_and_leaves_ungoverned_alone():
    owner, p, hostile, allowed, defence, hm = _city_world()
    p[A, 2, 2] = 0.5  # below hold_min 1
    p[A, 2, 1] = 100.0
    captured, _ = sector_capture(owner, p, hostile, allowed, hm, defence, 3.0)
    assert not captured.any()
    owner[2, 2] = UNGOVERNED
    owner[0, 4] = OUTSIDE
    p[A, 2, 2] = 50.0
    captured, _ = sector_capture(owner, p, hostile, allowed, hm, defence, 3.0)
    assert not captured[2, 2] and not captured[0, 4]
    allowed[A, 2, 3] = False  # not allowed: no capture there however strong
    p[A, 2, 3] = 500.0
    captured, _ = sector_capture(owner, p, hostile, allowed, hm, defence, 3.0)
    assert not captured[2, 3]


@pytest.mark.parametrize("density", [0.02, 0.6])  # few contested cells (gather) or many (box)
def test_sector_odds_match_a_brute_force_reference(density):
    from sim.rules.spatial import box_sum3

    rng = np.random.default_rng(7)
    n_f, R, C = 4, 30, 40
    owner = rng.integers(-2, n_f, (R, C)).astype(np.int8)
    p = (rng.random((n_f, R, C)) * 10 * (rng.random((n_f, R, C)) < density)).astype(np.float32)
    hostile = np.array([[0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]], bool)
    allowed = rng.random((n_f, R, C)) < 0.9
    hm = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
    ch, att, dfn = sector_odds(owner, p, hostile, allowed, hm)
    sec = box_sum3(p.astype(np.float64))
    for r in range(R):
        for c in range(C):
            o = owner[r, c]
            cand = [g for g in range(n_f) if o >= 0 and hostile[g, o] and allowed[g, r, c]
                    and p[g, r, c] >= hm[g] and p[g, r, c] > 0]
            if not cand:
                assert (ch[r, c], att[r, c], dfn[r, c]) == (-1, 0.0, 0.0)
                continue
            best = max(cand, key=lambda g: (sec[g, r, c], -g))
            assert ch[r, c] == best
            assert att[r, c] == pytest.approx(sec[best, r, c], rel=1e-6)
            want = sum(sec[g, r, c] for g in range(n_f) if not hostile[g, o])
            assert dfn[r, c] == pytest.approx(want, rel=1e-6, abs=1e-9)


# ------------------------------------------------------------------ sieges
REB, REG, ALLY = 0, 1, 2


def _siege_world():
    """7 x 7: rebels hold column 0 (main ground) and a 2 x 2 enclave at rows 2-3, columns 3-4;
    the regime, at war with them, holds the rest.  A third faction is at peace with both.
    Regime presence 5 on each of the 12 ring cells (60); rebel garrison 10 per enclave cell."""
    owner = np.full((7, 7), REG, np.int8)
    owner[:, 0] = REB
    owner[2:4, 3:5] = REB
    war = np.zeros((3, 3), bool)
    war[REB, REG] = war[REG, REB] = True
    garrison = np.zeros((3, 7, 7))
    garrison[REB, 2:4, 3:5] = 10.0
    garrison[REB, :, 0] = 2.0
    presence = garrison.copy()
    ring = np.zeros((7, 7), bool)
    ring[1:5, 2:6] = True
    ring[2:4, 3:5] = False
    presence[REG][ring] = 5.0
    return owner, war, garrison, presence


def test_enclave_ringed_by_enemy_is_besieged():
    owner, war, _, presence = _siege_world()
    s = besieged_pieces(owner, war, REB, presence)
    k = s.labels[2, 3]
    assert s.n == 2 and s.labels[0, 0] != k
    assert s.main[s.labels[0, 0]] and not s.besieged[s.labels[0, 0]]
    assert s.besieged[k] and s.besieger[k] == REG
    assert (s.ring_force[k], s.piece_force[k], s.area[k]) == (60.0, 40.0, 4)
    assert pressed(s, 1.5)[k] and not pressed(s, 1.6)[k]


def test_siege_pressure_is_combat_power_not_heads():
    """The same 60 ringing 40 (1.5:1 in heads): with the besieger's fire worth 2 (firepower
    x air support against the rebels) and the rebels' 0.5, the ring has 120 against 20 (6:1)."""
    owner, war, _, presence = _siege_world()
    s = besieged_pieces(owner, war, REB, presence, power=np.array([0.5, 2.0, 1.0]))
    k = s.labels[2, 3]
    assert (s.ring_force[k], s.piece_force[k]) == (120.0, 20.0)
    assert pressed(s, 6.0)[k] and not pressed(s, 6.1)[k]
    even = besieged_pieces(owner, war, REB, presence, power=np.ones(3))
    assert (even.ring_force[k], even.piece_force[k]) == (60.0, 40.0)


def test_a_truce_keeps_a_besieged_piece_from_being_pressed():
    """A piece the besieger may not take (a truce zone closed to it) is not pressed; once it may
    take every cell, it is."""
    owner, war, _, presence = _siege_world()
    allowed = np.ones((3, 7, 7), bool)
    allowed[REG, 3, 4] = False  # one cell of the enclave is closed to the regime
    s = besieged_pieces(owner, war, REB, presence)
    k = s.labels[2, 3]
    hold_truces(s, allowed)
    assert s.besieged[k] and s.ring_force[k] == 0.0 and not pressed(s, 0.5)[k]
    s = besieged_pieces(owner, war, REB, presence)
    hold_truces(s, np.ones((3, 7, 7), bool))
    assert s.ring_force[k] == 60.0 and pressed(s, 1.5)[k]


def test_enclave_surrenders_after_exactly_delay_weeks_of_superiority():
    owner, war, _, presence = _siege_world()
    clock = SiegeClock(3, owner.shape)
    delay = 3
    weak = presence.copy()
    weak[REG] *= 0.5  # ring 30 < 1.5 x 40: not pressed
    history = []
    for week, p in enumerate([presence, presence, weak, presence, presence, presence]):
        s = besieged_pieces(owner, war, REB, p)
        count = clock.update(s, 1.5)
        k = s.labels[2, 3]
        history.append((int(count[k]), bool(clock.due(s, count, delay)[k])))
    # superiority broken in week 3 resets the count; the deal comes 3 weeks later, not before
    assert history == [(1, False), (2, False), (0, False), (1, False), (2, False), (3, True)]
    assert (clock.weeks[REB][owner != REB] == 0).all() and clock.weeks[REB, 0, 0] == 0


def test_units_cut_off_at_the_edge_of_a_surrendering_enclave_share_its_fate():
    """Rebel units inside the enclave, or next to it on regime ground, join the deal (each onto
    an enclave cell next to it); a rebel unit next to its main ground, a partner's unit next to
    the enclave and a regime unit do not."""
    owner, war, _, presence = _siege_world()
    s = besieged_pieces(owner, war, REB, presence)
    cells = s.labels == s.labels[2, 3]
    main_ground = s.main[s.labels] & (owner == REB)
    partners = s.partners.copy()
    # units: rebel inside (3, 4); rebel on the ring (1, 5); rebel by the main ground (4, 1);
    # the partner on the ring (4, 2); the regime on the ring (1, 2); a dead rebel on the ring (4, 5)
    rows = np.array([3, 1, 4, 4, 1, 4])
    cols = np.array([4, 5, 1, 2, 2, 5])
    faction = np.array([REB, REB, REB, 2, REG, REB])
    alive = np.array([True, True, True, True, True, False])
    partners[2] = True
    sel, r, c = cut_off_units(rows, cols, faction, alive, cells, REB, partners, main_ground)
    assert sel.tolist() == [0, 1]
    assert (r[0], c[0]) == (3, 4) and cells[r[1], c[1]] and max(abs(r[1] - 1), abs(c[1] - 5)) == 1


def test_clock_survives_relabelling_when_the_piece_shrinks():
    owner, war, _, presence = _siege_world()
    clock = SiegeClock(3, owner.shape)
    clock.update(besieged_pieces(owner, war, REB, presence), 1.5)
    owner[2, 3] = REG  # the enclave loses a cell; the main piece is now label 1 either way
    s = besieged_pieces(owner, war, REB, presence)
    assert clock.update(s, 1.5)[s.labels[3, 4]] == 2


def test_enclave_touching_open_country_is_not_besieged():
    owner, war, _, presence = _siege_world()
    owner[1, 5] = UNGOVERNED  # diagonal neighbour of (2, 4)
    s = besieged_pieces(owner, war, REB, presence)
    assert not s.besieged.any()
    owner[1, 5] = REG
    exits = np.zeros_like(owner, bool)
    exits[4, 5] = True  # a crossing kept open by a patron
    assert not besieged_pieces(owner, war, REB, presence, exits=exits).besieged.any()


def test_enclave_linked_to_main_ground_through_an_ally_is_not_besieged():
    owner, war, _, presence = _siege_world()
    owner[3, 1:3] = ALLY  # corridor (3,1)-(3,2) between column 0 and the enclave
    s = besieged_pieces(owner, war, REB, presence)
    assert s.n == 1 and s.labels[2, 3] == s.labels[0, 0] and not s.besieged.any()
    # the same corridor held by a faction at war with the rebels does not help
    war[REB, ALLY] = war[ALLY, REB] = True
    s = besieged_pieces(owner, war, REB, presence)
    assert s.besieged[s.labels[2, 3]]
    # an ally's ground that leads nowhere (no link to main, no open country) is besieged too
    owner[3, 1:3] = REG
    owner[4, 3] = ALLY
    war[REB, ALLY] = war[ALLY, REB] = False
    s = besieged_pieces(owner, war, REB, presence)
    k = s.labels[2, 3]
    assert s.labels[4, 3] == k and s.besieged[k] and s.area[k] == 5


def test_largest_piece_is_besieged_when_the_core_is_elsewhere():
    owner, war, _, presence = _siege_world()
    core = np.zeros_like(owner, bool)
    core[2:4, 3:5] = True
    s = besieged_pieces(owner, war, REB, presence, core=core)
    assert s.main[s.labels[2, 3]] and s.besieged[s.labels[0, 0]]


def test_surrender_hands_over_cells_and_conserves_fighters_and_people():
    owner, war, garrison, presence = _siege_world()
    garrison[ALLY, 2, 3] = 4.0  # a partner's fighters share the fate of the piece
    people = np.zeros((7, 7))
    people[2:4, 3:5] = 100.0
    people[0, 0] = 7.0
    dest = np.zeros((7, 7))
    dest[0, 0] = dest[6, 0] = 1.0
    s = besieged_pieces(owner, war, REB, presence)
    k = s.labels[2, 3]
    deal = surrender(s, k, owner, garrison, people, dest, evac_share=0.75, civilian_share=0.25)
    assert deal.besieger == REG and deal.cells.sum() == 4
    assert (deal.owner[2:4, 3:5] == REG).all() and (deal.owner[~deal.cells] == owner[~deal.cells]).all()
    np.testing.assert_array_equal(deal.evacuated, [30.0, 0.0, 3.0])
    np.testing.assert_array_equal(deal.surrendered, [10.0, 0.0, 1.0])
    assert deal.garrison[:, 2:4, 3:5].sum() == 0.0
    assert (deal.garrison[REB, 0, 0], deal.garrison[REB, 6, 0]) == (17.0, 17.0)
    assert (deal.garrison[ALLY, 0, 0], deal.garrison[ALLY, 6, 0]) == (1.5, 1.5)
    # fighters: before = after + surrendered; people conserved, 100 relocated
    assert garrison.sum() == deal.garrison.sum() + deal.surrendered.sum()
    assert deal.relocated == 100.0 and deal.people.sum() == people.sum()
    assert (deal.people[0, 0], deal.people[6, 0], deal.people[2, 3]) == (57.0, 50.0, 75.0)
    assert garrison[REB, 2, 3] == 10.0 and owner[2, 3] == REB  # inputs untouched
    with pytest.raises(ValueError):
        surrender(s, s.labels[0, 0], owner, garrison, people, dest, 0.75, 0.25)


def test_siege_week_runs_the_clock_and_the_deal():
    owner, war, garrison, presence = _siege_world()
    people = np.zeros((7, 7))
    people[2:4, 3:5] = 100.0
    weight = np.ones((7, 7))
    clock = SiegeClock(3, owner.shape)
    args = {"siege_ratio": 1.5, "delay_weeks": 2, "evac_share": 0.5, "civilian_share": 0.25}
    o1, g1, _, deals = siege_week(owner, war, REB, presence, garrison, people, clock, weight, **args)
    assert deals == [] and o1 is owner and g1 is garrison
    o2, g2, p2, deals = siege_week(owner, war, REB, presence, garrison, people, clock, weight, **args)
    assert len(deals) == 1 and (o2[2:4, 3:5] == REG).all() and (o2[:, 0] == REB).all()
    assert deals[0].evacuated[REB] == 20.0 and deals[0].surrendered[REB] == 20.0
    np.testing.assert_allclose(g2[REB, :, 0], 2.0 + 20.0 / 7)  # spread over the main column
    assert g2.sum() == pytest.approx(garrison.sum() - 20.0) and p2.sum() == pytest.approx(400.0)
    assert deals[0].relocated == 100.0 and (clock.weeks[REB] == 0).all()


# ------------------------------------------------------------------ withdrawal
KRG, ISF = 0, 1


def _kirkuk_world():
    """5 x 7: the KRG holds columns 0-4 with 2 fighters a cell, its core is columns 0-1; the
    ISF (at war with it) holds columns 5-6 with 30 fighters on each cell of column 5.  Sector
    odds on column 4: 90:12 inside, 60:8 on the edge rows, i.e. 7.5:1; column 3 sees no enemy."""
    owner = np.full((5, 7), KRG, np.int8)
    owner[:, 5:] = ISF
    garrison = np.zeros((2, 5, 7))
    garrison[KRG, :, :5] = 2.0
    presence = garrison.copy()
    presence[ISF, :, 5] = 30.0
    war = np.array([[False, True], [True, False]])
    core = np.zeros((2, 5, 7), bool)
    core[KRG, :, :2] = True
    core[ISF, :, 5:] = True
    return owner, presence, garrison, war, core


def test_hopeless_non_core_ground_is_given_up_and_garrison_falls_back_to_core():
    owner, presence, garrison, war, core = _kirkuk_world()
    gone = hopeless(owner, presence, war, KRG, core[KRG], 5.0)
    assert gone[:, 4].all() and gone.sum() == 5
    new_owner, new_g, moved = withdraw(owner, presence, garrison, war, core, 5.0)
    assert (new_owner[:, 4] == UNGOVERNED).all() and (new_owner[:, :4] == KRG).all()
    assert (new_owner[:, 5:] == ISF).all()
    np.testing.assert_array_equal(moved, [10.0, 0.0])
    assert (new_g[KRG, :, 4] == 0).all()
    assert (new_g[KRG, :, 1] == 4.0).all() and (new_g[KRG, :, [0, 2, 3]] == 2.0).all()
    assert new_g.sum() == garrison.sum()  # exactly conserved
    assert garrison[KRG, 0, 4] == 2.0  # input untouched


def test_no_withdrawal_below_the_ratio_from_core_or_when_forbidden():
    owner, presence, garrison, war, core = _kirkuk_world()
    assert not withdraw(owner, presence, garrison, war, core, 8.0)[2].any()  # 7.5 < 8
    core[KRG, :, 4] = True  # the heartland is held whatever the odds
    new_owner, new_g, moved = withdraw(owner, presence, garrison, war, core, 5.0)
    assert (new_owner == owner).all() and (new_g == garrison).all() and moved.sum() == 0
    core[KRG, :, 4] = False
    new_owner, _, moved = withdraw(owner, presence, garrison, war, core, 5.0,
                                   may_withdraw=np.array([False, True]))
    assert (new_owner == owner).all() and moved.sum() == 0
    skirmish = np.zeros((2, 2), bool)  # not at war: nothing to flee from
    assert withdraw(owner, presence, garrison, skirmish, core, 5.0)[2].sum() == 0


def test_an_enemy_kept_out_of_the_ground_is_no_threat_to_it():
    """The Kirkuk world with the ISF barred from column 4 (a truce zone, Manbij under US
    protection): the KRG does not give column 4 up; barred from row 0 only, it gives up the
    other four cells of the column."""
    owner, presence, garrison, war, core = _kirkuk_world()
    may_take = np.ones((2, 5, 7), bool)
    may_take[ISF, :, 4] = False
    assert not hopeless(owner, presence, war, KRG, core[KRG], 5.0, may_take=may_take).any()
    new_owner, new_g, moved = withdraw(owner, presence, garrison, war, core, 5.0, may_take=may_take)
    assert (new_owner == owner).all() and moved.sum() == 0
    may_take[ISF, :, 4] = True
    may_take[ISF, 0, 4] = False
    new_owner, _, moved = withdraw(owner, presence, garrison, war, core, 5.0, may_take=may_take)
    assert new_owner[0, 4] == KRG and (new_owner[1:, 4] == UNGOVERNED).all() and moved[KRG] == 8.0


def test_an_encircled_enclave_has_no_line_of_retreat_and_does_not_withdraw():
    """The Kirkuk world plus a KRG enclave at (2, 6) inside ISF ground (hostile sector 60+ : 2).
    Column 4 still falls back to the core; the enclave is hopeless too but is cut off from the
    KRG's other ground, so it stays KRG with its garrison (it fights or surrenders under
    sieges); before, its garrison fell back across the ISF lines."""
    owner, presence, garrison, war, core = _kirkuk_world()
    owner[2, 6] = KRG
    garrison[KRG, 2, 6] = presence[KRG, 2, 6] = 2.0
    assert hopeless(owner, presence, war, KRG, core[KRG], 5.0)[2, 6]
    new_owner, new_g, moved = withdraw(owner, presence, garrison, war, core, 5.0)
    assert new_owner[2, 6] == KRG and new_g[KRG, 2, 6] == 2.0
    assert (new_owner[:, 4] == UNGOVERNED).all() and moved[KRG] == 10.0
    assert new_g.sum() == garrison.sum()


def test_without_core_ground_the_garrison_falls_back_to_the_nearest_kept_cell():
    owner, presence, garrison, war, core = _kirkuk_world()
    core[KRG] = False
    new_owner, new_g, moved = withdraw(owner, presence, garrison, war, core, 5.0)
    assert moved[KRG] == 10.0 and (new_g[KRG, :, 3] == 4.0).all() and new_g.sum() == garrison.sum()
    # a faction that would keep nothing stays and fights
    owner[:, :4] = ISF
    new_owner, new_g, moved = withdraw(owner, presence, garrison, war, core, 5.0)
    assert moved[KRG] == 0 and (new_owner[:, 4] == KRG).all()


def _limited_world(n_cols: int = 12, per_cell: float = 8.0):
    """A 5 x ``n_cols`` strip: the KRG holds every column but the last with 2 fighters a cell,
    its core is columns 0-1; the ISF holds the last column with ``per_cell`` fighters a cell."""
    owner = np.full((5, n_cols), KRG, np.int8)
    owner[:, -1] = ISF
    garrison = np.zeros((2, 5, n_cols))
    garrison[KRG][owner == KRG] = 2.0
    garrison[ISF, :, -1] = per_cell
    core = np.zeros((5, n_cols), bool)
    core[:, :2] = True
    return owner, garrison.copy(), garrison, core


def test_in_a_limited_war_the_defending_side_falls_back_ahead_of_the_claimant():
    """The claimed side gives up non-core cells where the claimant's mean presence over the
    window is at least ``ratio`` times its own: with a window of 3 cells only the column next
    to the ISF goes, with 5 cells two columns (the reach in km sets how far ahead it pulls
    back); the garrison falls back to the core and is conserved; a stronger own presence, a
    higher ratio or core ground keep it; a claimant barred from the ground is no threat."""
    owner, presence, garrison, core = _limited_world()
    o, g = owner.copy(), garrison.copy()
    moved = fall_back_limited(o, presence, g, KRG, np.array([ISF]), core, 1.0, 3.0)
    assert (o[:, 10] == UNGOVERNED).all() and (o[:, :10] == KRG).all() and moved == 10.0
    assert g.sum() == garrison.sum() and (g[KRG, :, 1] == 4.0).all()
    o, g = owner.copy(), garrison.copy()
    fall_back_limited(o, presence, g, KRG, np.array([ISF]), core, 1.0, 5.0)
    assert (o[:, 9:11] == UNGOVERNED).all() and (o[:, :9] == KRG).all()
    o = owner.copy()
    assert fall_back_limited(o, presence, garrison.copy(), KRG, np.array([ISF]), core, 3.0, 3.0) == 0
    assert (o == owner).all()
    core[:] = True
    assert fall_back_limited(owner.copy(), presence, garrison.copy(), KRG, np.array([ISF]), core,
                             1.0, 5.0) == 0
    core[:] = False
    core[:, :2] = True
    may_take = np.ones((2, *owner.shape), bool)
    may_take[ISF, :, 10] = False
    o = owner.copy()
    fall_back_limited(o, presence, garrison.copy(), KRG, np.array([ISF]), core, 1.0, 3.0,
                      may_take=may_take)
    assert o[2, 10] == KRG


def test_limited_fall_back_covers_the_same_km_on_a_finer_grid():
    """The same strip on a grid twice as fine (each cell split in four, the window side doubled
    in cells): the ground given up is the same (two coarse columns = four fine ones).  Near
    the threshold (8 a cell) the fractional ring of the fine window gives 3 fine columns."""
    owner, presence, garrison, core = _limited_world(per_cell=12.0)
    o = owner.copy()
    fall_back_limited(o, presence, garrison.copy(), KRG, np.array([ISF]), core, 1.0, 5.0)
    assert (o[:, 9:11] == UNGOVERNED).all() and (o[:, :9] == KRG).all()
    fine = lambda a: np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)  # noqa: E731
    of = fine(owner)
    pf, gf = fine(presence) / 4.0, fine(garrison) / 4.0  # the same fighters per km2
    fall_back_limited(of, pf, gf, KRG, np.array([ISF]), fine(core), 1.0, 10.0)
    assert ((of == UNGOVERNED) == fine(o == UNGOVERNED)).all()


# ------------------------------------------------------------------ reach
F, S, N, E = 0, 1, 2, 3  # a faction, one it skirmishes with, a neutral, an enemy at war


def _wall_world(wall_faction: int, gap: bool):
    """7 x 7: F holds columns 0-1; a wall of ``wall_faction`` in column 3 (rows 0-5, plus row 6
    unless ``gap``); everything else ungoverned.  Hostility F-S 0.3, F-N 0, F-E 0.8."""
    owner = np.full((7, 7), UNGOVERNED, np.int8)
    owner[:, :2] = F
    owner[:6, 3] = wall_faction
    if not gap:
        owner[6, 3] = wall_faction
    h = np.zeros((4, 4))
    h[F, S] = h[S, F] = 0.3
    h[F, E] = h[E, F] = 0.8
    allowed = np.ones((4, 7, 7), bool)
    return owner, h, allowed


UNIT, TARGET = np.array([[3.0, 0.0]]), np.array([[0.0, 6.0]])


def test_unit_routes_around_a_skirmish_hostile_wall_through_ungoverned_ground():
    owner, h, allowed = _wall_world(S, gap=True)
    m = passable(owner, h, allowed, F, 0.5)
    assert not m[:6, 3].any() and m[6, 3]
    assert reachable_targets(m, UNIT, TARGET).tolist() == [True]


def test_skirmish_hostile_ground_blocks_but_neutral_ground_is_transit():
    owner, h, allowed = _wall_world(S, gap=False)
    m = passable(owner, h, allowed, F, 0.5)
    assert reachable_targets(m, UNIT, TARGET).tolist() == [False]  # reported unreachable
    owner, h, allowed = _wall_world(N, gap=False)
    m = passable(owner, h, allowed, F, 0.5)
    assert m[:, 3].all() and reachable_targets(m, UNIT, TARGET).tolist() == [True]
    allowed[F, :, 3] = False  # a deconfliction line closes it whoever holds it
    assert reachable_targets(passable(owner, h, allowed, F, 0.5), UNIT, TARGET).tolist() == [False]


def test_enemy_front_is_entered_but_not_crossed():
    owner, h, allowed = _wall_world(E, gap=False)
    open_ground, front = passable_parts(owner, h, allowed, F, 0.5)
    assert front[:, 3].all() and front.sum() == 7 and not open_ground[:, 3].any()
    m = open_ground | front
    targets = np.array([[0.0, 6.0], [0.0, 3.0], [0.0, 4.0]])
    units = np.repeat(UNIT, 3, axis=0)
    assert reachable_targets(m, units, targets, front).tolist() == [False, True, False]
    # a unit fighting in the front cell touches the ground on both sides of it
    inside, back, beyond = np.array([[2.0, 3.0]]), np.array([[0.0, 0.0]]), np.array([[0.0, 6.0]])
    assert reachable_targets(m, inside, back, front).tolist() == [True]
    assert reachable_targets(m, inside, beyond, front).tolist() == [True]
    # a unit on impassable ground away from any passable cell reaches nothing
    owner[2:5, 2:5] = S
    m = passable(owner, h, allowed, F, 0.5)
    assert reachable_targets(m, np.array([[3.0, 3.0]]), back).tolist() == [False]


def test_freed_units_go_to_the_fronts_that_need_them():
    units = np.zeros((4, 2))  # four freed units of 60 at the front that has gone quiet
    strength = np.full(4, 60.0)
    fronts = np.array([[0.0, 0.0], [0.0, 30.0], [0.0, 60.0]])
    need = np.array([0.0, 100.0, 50.0])  # scores 100/2.5 = 40 and 50/4 = 12.5
    reach = np.ones((4, 3), bool)
    assert allocate_units(units, strength, fronts, need, reach).tolist() == [1, 1, 2, -1]
    reach[0, 1] = False  # unit 0 cannot reach front 1: it takes the next front
    assert allocate_units(units, strength, fronts, need, reach).tolist() == [2, 1, 1, -1]
    assert allocate_units(units, strength, fronts, np.zeros(3), reach).tolist() == [-1] * 4


def test_allocation_with_reachability_from_the_map():
    owner, h, allowed = _wall_world(S, gap=False)  # fronts beyond the S wall are out of reach
    owner[3, 2] = E  # an enemy cell on this side
    open_ground, front = passable_parts(owner, h, allowed, F, 0.5)
    units = np.array([[0.0, 0.0], [6.0, 1.0]])
    fronts = np.array([[0.0, 6.0], [3.0, 2.0]])
    reach = reachable_matrix(open_ground | front, units, fronts, front)
    assert reach.tolist() == [[False, True], [False, True]]
    choice = allocate_units(units, np.array([50.0, 50.0]), fronts, np.array([500.0, 80.0]), reach)
    assert choice.tolist() == [1, 1]


def test_reachable_any_is_the_matrix_any_and_finds_low_ranked_fronts():
    """The fronts some unit can reach (route_units keeps the best of these, however far down
    the ranking): the same answer as ``reachable_matrix(...).any(axis=0)``."""
    owner, h, allowed = _wall_world(S, gap=False)
    owner[3, 2] = E
    open_ground, front = passable_parts(owner, h, allowed, F, 0.5)
    labels = crossable_labels(open_ground | front, front)
    units = np.array([[0.0, 0.0], [6.0, 1.0]])
    # ranked best first: two valuable fronts beyond the wall, then the low one on this side
    fronts = np.array([[0.0, 6.0], [6.0, 6.0], [3.0, 2.0]])
    got = reachable_any(labels, units, fronts)
    assert got.tolist() == [False, False, True]
    assert got.tolist() == reachable_matrix(None, units, fronts, None, labels).any(axis=0).tolist()
    assert reachable_any(labels, np.zeros((0, 2)), fronts).tolist() == [False] * 3


def test_share_units_stuck():
    has = np.array([True, True, True, True, False])
    at = np.array([False, False, False, True, False])
    reach = np.array([True, False, True, True, True])
    moved = np.array([True, True, False, False, False])
    assert share_units_stuck(has, at, reach, moved) == pytest.approx(2 / 3)
    assert share_units_stuck(has & False, at, reach, moved) == 0.0


# ------------------------------------------------------------------ alignment
BGD, KR, IS = 0, 1, 2


def _alignment_inputs():
    h0 = np.array([[0.0, 0.0, 0.8], [0.0, 0.0, 0.8], [0.8, 0.8, 0.0]])
    latent = np.zeros((3, 3))
    latent[BGD, KR] = 0.9  # given one way only: made symmetric
    return h0, latent


def test_common_enemy_lost_share():
    h0, _ = _alignment_inputs()
    lost = common_enemy_lost(h0, np.array([100.0, 50.0, 10.0]), np.array([100.0, 50.0, 40.0]))
    assert lost[BGD, KR] == lost[KR, BGD] == 0.75
    assert lost[BGD, IS] == 0.0 and (np.diag(lost) == 0).all()  # no common enemy
    h0[BGD, IS] = h0[IS, BGD] = 0.3  # a skirmish is no common threat
    assert common_enemy_lost(h0, np.array([100.0, 50.0, 10.0]), np.array([100.0, 50.0, 40.0]))[BGD, KR] == 0.0


def test_hostility_rises_from_h0_to_latent_as_the_common_enemy_shrinks():
    h0, latent = _alignment_inputs()
    full = responsive_hostility(h0, latent, 0.0, onset=0.5, shape=1.0)
    np.testing.assert_array_equal(full, h0)  # enemy ground intact: h0
    half = responsive_hostility(h0, latent, 0.75, onset=0.5, shape=1.0)
    assert half[BGD, KR] == half[KR, BGD] == 0.9 * 0.5
    gone = responsive_hostility(h0, latent, 1.0, onset=0.5, shape=1.0)
    assert gone[BGD, KR] == 0.9 and gone[BGD, IS] == 0.8  # reaches latent; never below h0
    assert (np.diag(gone) == 0).all() and (gone == gone.T).all()
    early = responsive_hostility(h0, latent, 0.75, onset=0.5, shape=0.5)
    assert early[BGD, KR] == pytest.approx(0.9 * np.sqrt(0.5))


def test_hostility_is_monotone_and_bounded_below_by_h0():
    rng = np.random.default_rng(13)
    for _ in range(20):
        h0 = rng.random((4, 4)) * (rng.random((4, 4)) < 0.5)
        latent = rng.random((4, 4))
        onset, shape = rng.random() * 0.9, 0.2 + 3 * rng.random()
        prev = None
        for lost in np.linspace(0.0, 1.0, 21):
            h = responsive_hostility(h0, latent, lost, onset, shape)
            sym0 = np.maximum(h0, h0.T)
            np.fill_diagonal(sym0, 0.0)
            assert (h >= sym0).all() and (h == h.T).all() and (np.diag(h) == 0).all()
            assert (h <= 1).all()
            if prev is not None:
                assert (h >= prev).all()
            prev = h
    with pytest.raises(ValueError):
        responsive_hostility(h0, latent, 0.5, onset=1.0, shape=1.0)


# ------------------------------------------------------------------ holdouts

def test_holdout_defence_rises_as_the_last_ground_shrinks():
    owner = np.array([[IS, IS, KR], [IS, OUTSIDE, UNGOVERNED]], np.int8)
    valley = np.array([[True, False, True], [True, True, True]])
    k = holdout_defence(owner, IS, valley, share_remaining=0.05, max_factor=3.0, onset=0.1)
    np.testing.assert_array_equal(k, [[2.0, 1.0, 1.0], [2.0, 1.0, 1.0]])
    assert (holdout_defence(owner, IS, valley, 0.2, 3.0, 0.1) == 1.0).all()  # above onset
    assert holdout_defence(owner, IS, valley, 0.0, 3.0, 0.1)[0, 0] == 3.0
    assert holdout_defence(owner, IS, valley, 0.1, 3.0, 0.1)[0, 0] == 1.0


def test_go_underground_conserves_fighters():
    g = np.array([[8.0, 4.0], [0.0, 10.0]])
    hidden, killed = go_underground(g, 0.75)
    np.testing.assert_array_equal(hidden, [[6.0, 3.0], [0.0, 7.5]])
    np.testing.assert_array_equal(hidden + killed, g)
    hidden, killed = go_underground(g.astype(np.float32), np.array([[1.0, 0.0], [0.5, 1.5]]))
    assert hidden.dtype == np.float32
    np.testing.assert_array_equal(hidden, [[8.0, 0.0], [0.0, 10.0]])  # share clipped to [0, 1]
    np.testing.assert_array_equal(hidden + killed, g)


# ------------------------------------------------------------------ docs and wired config
AFTERMATH_GROUPS = ("assault", "sieges", "withdrawal", "reach", "alignment", "holdouts")


def test_wired_parameters_match_the_odd_section():
    """Every scalar of the aftermath groups in configs/mechanisms/default.yaml has a row with the
    same default in docs/ODD.md's "Aftermath mechanisms (issue 13)" section, the latent
    rivalries of the baseline scenario are the ones the ODD states, and every kernel it names
    exists."""
    import importlib
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    mech = yaml.safe_load((root / "configs" / "mechanisms" / "default.yaml").read_text())
    scen = yaml.safe_load((root / "configs" / "scenario" / "baseline_2017.yaml").read_text())
    odd = (root / "docs" / "ODD.md").read_text(encoding="utf-8")
    start = odd.index("### Aftermath mechanisms (issue 13)")
    sec = odd[start:odd.index("\n## ", start)]
    rows = {}
    for line in sec.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2:
            rows[cells[0].strip("`")] = cells[1]
    for group in AFTERMATH_GROUPS:
        for key, value in mech[group].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if key == "stuck_share_max":
                    continue  # a test bound, not a model parameter
                name = f"{group}.{key}"
                assert name in rows, f"docs/ODD.md aftermath section: no row for `{name}`"
                assert float(rows[name]) == float(value), f"`{name}`: docs {rows[name]} vs config {value}"
    latent = scen.get("scenario", scen)["latent_hostility"]
    for f, pairs in latent.items():
        for g, v in pairs.items():
            assert f"{f}–{g} {v}" in rows["alignment.latent"], (f, g, v)
    for mod in re.findall(r"`rules/(\w+)\.py`", sec):
        importlib.import_module(f"sim.rules.{mod}")
    for fn in ("sector_capture", "surrender", "passable", "reachable_targets", "allocate_units",
               "share_units_stuck", "withdraw", "holdout_defence", "go_underground"):
        assert f"`{fn}`" in sec


# ------------------------------------------------------------------ conservation on random worlds
@pytest.mark.parametrize("seed", range(5))
def test_withdrawal_and_surrender_conserve_fighters_and_people_on_random_worlds(seed):
    rng = np.random.default_rng(seed)
    n_f, R, C = 4, 24, 30
    owner = np.kron(rng.integers(-1, n_f, (4, 5)), np.ones((6, 6), np.int64)).astype(np.int8)
    presence = rng.random((n_f, R, C)) * 20 * (rng.random((n_f, R, C)) < 0.5)
    garrison = np.where(owner[None] == np.arange(n_f)[:, None, None], rng.random((n_f, R, C)) * 8, 0)
    war = rng.random((n_f, n_f)) < 0.6
    war = war | war.T
    np.fill_diagonal(war, False)
    core = rng.random((n_f, R, C)) < 0.3
    new_owner, new_g, moved = withdraw(owner, presence, garrison, war, core, 2.0)
    np.testing.assert_allclose(new_g.sum(axis=(1, 2)), garrison.sum(axis=(1, 2)), rtol=1e-12)
    assert ((new_owner == owner) | (new_owner == UNGOVERNED)).all()
    for f in range(n_f):  # the garrison of abandoned cells moved, onto ground f keeps
        gone = (owner == f) & (new_owner == UNGOVERNED)
        assert moved[f] == pytest.approx(garrison[f][gone].sum(), rel=1e-12)
        assert (new_g[f][gone] == 0).all()
        assert (new_g[f][(new_owner != f) & (garrison[f] == 0)] == 0).all()
    people = rng.random((R, C)) * 1000
    for f in range(n_f):
        s = besieged_pieces(owner, war, f, presence)
        for k in np.flatnonzero(s.besieged & (s.besieger >= 0)):
            dest = (s.labels == np.flatnonzero(s.main)[0]).astype(float) if s.main.any() else owner * 0.0
            deal = surrender(s, int(k), owner, garrison, people, dest, 0.3, 0.2)
            before = garrison.sum(axis=(1, 2))
            after = deal.garrison.sum(axis=(1, 2)) + deal.surrendered
            np.testing.assert_allclose(after, before, rtol=1e-12)
            assert deal.people.sum() == pytest.approx(people.sum(), rel=1e-12)
            assert (deal.owner[deal.cells] == s.besieger[k]).all()


@pytest.mark.parametrize("seed", range(3))
def test_assault_is_monotone_in_attacker_and_defender_force(seed):
    """More attackers never save a cell; more defenders never lose one."""
    rng = np.random.default_rng(100 + seed)
    n_f, R, C = 3, 12, 12
    owner = rng.integers(-1, n_f, (R, C)).astype(np.int8)
    p = rng.random((n_f, R, C)) * 10 * (rng.random((n_f, R, C)) < 0.5)
    p[1] *= 4.0  # a strong attacker, so that some cells fall at the base force
    hostile = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], bool)
    allowed = np.ones((n_f, R, C), bool)
    hm = np.ones(n_f)
    defence = 1.0 + rng.random((R, C))
    base, _ = sector_capture(owner, p, hostile, allowed, hm, defence, 1.5)
    more_att = p.copy()
    more_att[1] *= 1.5  # faction 1 is at war with both others
    held_by_02 = (owner == 0) | (owner == 2)  # their only enemy is faction 1
    cap, who = sector_capture(owner, more_att, hostile, allowed, hm, defence, 1.5)
    assert (cap | ~base)[held_by_02].all() and (who[base & held_by_02] == 1).all()
    assert cap[held_by_02].sum() > base[held_by_02].sum() > 0
    more_def = p.copy()
    more_def[[0, 2]] *= 1.5
    cap, _ = sector_capture(owner, more_def, hostile, allowed, hm, defence, 1.5)
    assert (~cap | base)[held_by_02].all()


def test_relocation_takes_the_people_living_on_the_piece():
    from types import SimpleNamespace

    from sim import aftermath
    from sim.agents import CommunityTable
    from sim.rules import civilians as civ

    # region 0 = cells 0 and 1 (100 people each, settlement cell 0), region 1 = cell 2
    regions = {"regmap": np.array([[0, 0, 1]]), "region_names": np.array(["a", "b"]),
               "region_cell": np.array([0, 2]), "region_pop0": np.array([200.0, 50.0])}
    dest = {"region_border_km": np.array([500.0, 500.0]), "dest_region": np.array([1]),
            "dest_dist": np.array([[30.0], [0.0]]), "dest_capacity": np.array([100.0])}
    table = CommunityTable([0, 1], [0, 0], [200.0, 50.0], [0, 2])
    pop = civ.Population(regions, table, dest, np.array([[100.0, 100.0, 50.0]]))
    m = SimpleNamespace(communities=table, population=pop)
    piece = np.array([[False, True, False]])  # a one-cell piece off the settlement's cell
    moved = aftermath._relocate_people(m, piece, np.array([[0.0, 0.0, 1.0]]), 0.15)
    assert moved == pytest.approx(200.0 * 0.5 * 0.15)  # half of region 0 lives on the piece
    assert table.home.tolist() == pytest.approx([185.0, 50.0])
    assert table.idp.tolist() == pytest.approx([15.0, 0.0]) and table.idp_loc[0] == 2
    assert (table.home + table.idp).sum() == pytest.approx(250.0)


# ------------------------------------------------------------------ urban clearing
def _weeks_to_fall(depth, odds, rate=0.25, cap=4.0, slow=1.0, max_weeks=200):
    cleared = np.zeros(1)
    for week in range(1, max_weeks + 1):
        falls, cleared = clearing_capture(np.ones(1, bool), np.array([odds]), cleared,
                                          np.array([depth]), rate, cap, slow)
        if falls[0]:
            return week
    return None


def test_clearing_depth_is_bounded_by_people_and_by_defenders():
    # 40,000 people = 4 km2 built up at 10,000/km2; 1,000 defenders = 10 km2 at 100/km2
    d = clearing_depth(np.array([40_000.0, 40_000.0, 500.0, 0.0]), np.array([1000.0, 100.0, 1000.0, 50.0]),
                       10_000.0, 100.0)
    np.testing.assert_allclose(d, [2.0, 1.0, np.sqrt(0.05), 0.0])


def test_a_defended_town_takes_weeks_to_clear_a_village_one_and_odds_speed_it():
    assert _weeks_to_fall(2.0, odds=1.0) == 8            # 2 km at 0.25 km/week
    assert _weeks_to_fall(2.0, odds=4.0) == 2            # four times the odds: four times faster
    assert _weeks_to_fall(2.0, odds=40.0) == 2           # ... up to the cap
    assert _weeks_to_fall(np.sqrt(0.05), odds=1.0) == 1  # a village falls in the week it is pressed
    assert _weeks_to_fall(2.0, odds=1.0, slow=2.0) == 16  # dug in: twice as slow


def test_clearing_time_does_not_depend_on_the_grid():
    """A town of 16 km2 defended, one coarse cell (4 km deep) or 4 x 4 fine cells of 1 km2
    cleared layer by layer from one side (4 layers of 1 km): the same 16 weeks."""
    coarse = _weeks_to_fall(clearing_depth(np.array([160_000.0]), np.array([1600.0]), 1e4, 100.0)[0], 1.0)
    fine_cell = clearing_depth(np.array([10_000.0]), np.array([100.0]), 1e4, 100.0)[0]
    fine = 4 * _weeks_to_fall(fine_cell, 1.0)
    assert coarse == fine == 16


def test_clearing_keeps_progress_while_not_pressed_and_resets_on_fall():
    falls, c = clearing_capture(np.array([True, False]), np.array([1.0, 1.0]), np.array([0.5, 0.5]),
                                np.array([1.0, 1.0]), 0.25, 4.0)
    np.testing.assert_allclose(c, [0.75, 0.5])
    assert not falls.any()
    falls, c = clearing_capture(np.array([True, False]), np.array([1.0, 1.0]), c, np.array([1.0, 1.0]), 0.25, 4.0)
    assert falls.tolist() == [True, False] and c.tolist() == [0.0, 0.5]


def test_settled_ground_is_a_density_not_a_cell_count():
    from sim.aftermath import settled_area
    from sim.initial import settled_mask

    pop = np.array([[0.0, 250.0], [2000.0, 10.0]])
    area = np.array([[25.0, 25.0], [25.0, 0.0]])  # last cell outside the theatre
    s = settled_mask(pop, area, 10.0)
    assert s.tolist() == [[False, True], [True, False]]
    owner = np.array([[0, 0], [1, 0]], np.int8)
    np.testing.assert_allclose(settled_area(owner, area, s, 2), [25.0, 25.0])


def test_the_holder_shield_caps_its_weekly_losses():
    """Dug-in defenders (shield 8) lose at most max_loss_fraction / 8 of their force a week
    against an overwhelming attacker; with shield 1 the cap is max_loss_fraction as before."""
    from types import SimpleNamespace

    from sim.rules.combat import cell_losses

    cfg = SimpleNamespace(guerrilla_area_factor=30.0, static_front_intensity=1.0, loss_noise=0.0,
                          max_loss_fraction=0.5)
    force = np.array([[100.0, 100.0], [20000.0, 20000.0]])  # defender 0 holds both cells
    eng = np.array([[False, True], [True, False]])
    args = (force, eng, np.array([0.03, 0.04]), np.ones((2, 2)), np.zeros(2, bool),
            np.ones((2, 2), bool), 3.0, np.array([0, 0]))
    loss, _ = cell_losses(*args, np.array([1.0, 8.0]), cfg, np.random.default_rng(0))
    np.testing.assert_allclose(loss[0], [50.0, 100.0 * 0.5 / 8])


def test_open_pockets_are_the_pieces_without_a_settled_cell():
    from sim.rules.spatial import label8

    own = np.array([[1, 1, 0, 0, 1], [1, 0, 0, 0, 1]], bool)
    settled = np.array([[0, 0, 1, 0, 0], [0, 0, 0, 0, 1]], bool)  # a town off the faction's ground
    labels, n = label8(own)
    np.testing.assert_array_equal(open_pockets(labels, n, settled), [[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    assert not open_pockets(labels, n, own).any()  # every piece with a settled cell is kept


def test_only_pockets_with_a_garrison_are_fortified():
    from sim.rules.spatial import label8

    own = np.array([[1, 1, 0, 0, 1], [0, 0, 0, 0, 1]], bool)
    gar = np.array([[30.0, 30.0, 0.0, 0.0, 500.0], [0.0, 0.0, 0.0, 0.0, 100.0]])
    labels, n = label8(own)
    np.testing.assert_array_equal(pocket_mask(labels, n, gar, 500.0), [[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]])
    assert not pocket_mask(labels, n, gar, 1000.0).any()
    assert not pocket_mask(labels, n, gar, 0.0)[own == 0].any()  # never off the faction's ground


def test_main_effort_weights_the_offensive_ground_only():
    """An offensive's main effort multiplies the GeoSim scores of the candidate cells on its
    ground by reach.main_effort_weight, and leaves the others alone; before any offensive the
    scores are unchanged."""
    from types import SimpleNamespace

    from sim import aftermath

    cfg = SimpleNamespace(reach=SimpleNamespace(main_effort_weight=10.0))
    effort = np.zeros((2, 3, 4), bool)
    m = SimpleNamespace(cfg=cfg, main_effort=effort, staging=np.zeros((2, 3, 4), bool))
    idx = np.array([0, 5, 11])
    score = np.array([1.0, 2.0, 3.0])
    assert aftermath.main_effort(m, 1, idx, score).tolist() == [1.0, 2.0, 3.0]
    effort[1, 1, 1] = True  # flat 5
    effort[0, 2, 3] = True  # another faction's offensive
    assert aftermath.main_effort(m, 1, idx, score).tolist() == [1.0, 20.0, 3.0]
    m.staging[1, 2, 3] = True  # flat 11: an offensive about to launch weighs the same
    assert aftermath.main_effort(m, 1, idx, score).tolist() == [1.0, 20.0, 30.0]


def test_staging_events_are_the_offensives_due_within_the_lead():
    """An offensive is staged from ``lead_weeks`` before its date until the week before it;
    events without an offensive, already fired or further off are not."""
    import datetime as dt
    from types import SimpleNamespace

    from sim.rules.events import staging_events

    ev = {"a": SimpleNamespace(date="2017-08-20", offensive={"X": [[0, 0, 1]]}),
          "b": SimpleNamespace(date="2017-08-20", offensive={}),
          "c": SimpleNamespace(date="2017-09-30", offensive={"X": [[0, 0, 1]]}),
          "d": SimpleNamespace(date="2017-08-25", offensive={"X": [[0, 0, 1]]})}
    assert staging_events(ev, {"d"}, dt.date(2017, 7, 30), 3) == ["a"]  # 21 days ahead: in
    assert staging_events(ev, set(), dt.date(2017, 7, 29), 3) == []  # 22 days ahead: not yet
    assert staging_events(ev, set(), dt.date(2017, 8, 19), 3) == ["a", "d"]
    assert staging_events(ev, set(), dt.date(2017, 8, 20), 3) == ["d"]  # launched: the main effort's
    assert staging_events(ev, set(), dt.date(2017, 8, 19), 0) == []  # lead 0: no staging


def test_staged_objectives_wait_at_the_nearest_ground_they_may_stand_on():
    """Objectives on barred ground (an offensive's zone before its launch) move to the
    nearest standable cell, in km (cells 2 km high, 1 km wide here); others stay."""
    from sim.rules.movement import stage_objectives

    barred = np.zeros((5, 5), bool)
    barred[1:4, 2:4] = True
    standable = np.zeros((5, 5), bool)
    standable[0, 2] = True   # 1 row up from (1, 2): 2 km
    standable[2, 0] = True   # 2 columns left of (2, 2): 2 km; of (3, 3): 3.6 km
    standable[4, 4] = True   # from (3, 3): 2.2 km
    targets = np.array([[1.2, 2.0], [3.0, 2.6], [2.0, 2.0], [0.0, 0.0]])
    out = stage_objectives(targets, barred, standable, sampling=(2.0, 1.0))
    np.testing.assert_array_equal(out, [[0.0, 2.0], [4.0, 4.0], [2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(targets[0], [1.2, 2.0])  # the input is not changed
    np.testing.assert_array_equal(stage_objectives(targets, barred & False, standable), targets)


def test_a_pocket_backed_onto_a_border_is_besieged_but_not_walled_in():
    """The enclave ringed by the regime alone is walled in (its people are trapped); with one
    ring cell outside the theatre (a closed border) it is still besieged, but its people may
    move toward the border (aftermath.walled_in)."""
    from sim.aftermath import walled_in

    owner, war, _, presence = _siege_world()
    s = besieged_pieces(owner, war, REB, presence)
    k = s.labels[2, 3]
    assert walled_in(s, owner)[2:4, 3:5].all() and walled_in(s, owner).sum() == 4
    owner[1, 2] = OUTSIDE
    s = besieged_pieces(owner, war, REB, presence)
    assert s.besieged[s.labels[2, 3]] and not walled_in(s, owner).any()
    assert k == s.labels[2, 3]


def test_reserves_dig_in_at_the_nearest_pocket():
    """Each unit's fighters join the pocket whose fortifiable cell is nearest to it, spread by
    station weight over that pocket's fortifiable cells only (not the largest pocket)."""
    from sim.rules.holdouts import nearest_pocket_garrison
    from sim.rules.spatial import label8

    own = np.zeros((3, 9), bool)
    own[0, 0:2] = True  # west pocket
    own[2, 6:9] = True  # east pocket
    fort = own.copy()
    fort[2, 8] = False  # open desert of the east pocket: nobody digs in there
    w = np.ones((3, 9))
    w[2, 6] = 3.0
    labels, _ = label8(own)
    dest = nearest_pocket_garrison(labels, fort, w, np.array([1, 2]), np.array([1, 5]), np.array([10.0, 40.0]))
    np.testing.assert_allclose(dest[0, 0:2], [5.0, 5.0])  # the unit at (1, 1): west
    np.testing.assert_allclose(dest[2, 6:9], [30.0, 10.0, 0.0])  # the unit at (2, 5): east, 3:1
    np.testing.assert_allclose(dest.sum(), 50.0)
    # no station weight on a pocket: evenly over its fortifiable cells
    even = nearest_pocket_garrison(labels, fort, np.zeros((3, 9)), np.array([2]), np.array([5]), np.array([8.0]))
    np.testing.assert_allclose(even[2, 6:8], [4.0, 4.0])
    assert nearest_pocket_garrison(labels, np.zeros_like(fort), w, np.array([0]), np.array([0]),
                                   np.array([1.0])) is None


def test_fighters_going_to_ground_fall_back_into_a_pocket_within_reach():
    """Fighters of lost cells who would go to ground join the nearest held pocket's
    fortifiable cells when it is within max_km (cells 10 km wide here), spread by station
    weight; beyond it they stay hidden; nothing is created or lost."""
    from sim.rules.holdouts import fall_back
    from sim.rules.spatial import label8

    own = np.zeros((1, 9), bool)
    own[0, 0:2] = True  # the pocket: two valley cells
    fort = own.copy()
    w = np.zeros((1, 9))
    w[0, 0], w[0, 1] = 1.0, 3.0
    going = np.zeros((1, 9), np.float32)
    going[0, 3] = 8.0  # 20 km from the pocket's nearest cell (0, 1)
    going[0, 7] = 5.0  # 60 km
    labels, _ = label8(own)
    joining, staying = fall_back(going, labels, fort, w, 50.0, sampling=(10.0, 10.0))
    np.testing.assert_allclose(joining[0, 0:2], [2.0, 6.0])  # 8 fighters, 1:3 by station weight
    assert joining[0, 2:].sum() == 0.0
    np.testing.assert_array_equal(staying[0], [0, 0, 0, 0, 0, 0, 0, 5.0, 0])
    assert staying.dtype == np.float32
    np.testing.assert_allclose(joining.sum() + staying.sum(), 13.0)
    # 15 km: both too far, all stay hidden; no pocket held: likewise
    assert fall_back(going, labels, fort, w, 15.0, (10.0, 10.0))[0].sum() == 0.0
    j, st = fall_back(going, np.zeros_like(labels), fort, w, 50.0, (10.0, 10.0))
    assert j.sum() == 0.0 and st is going


def test_the_contact_band_shield_counts_the_defenders_at_the_front():
    """In a defended town only a band of band_km of its defended depth D is under fire: the
    holder's shield is D / band_km (at least 1); off without a band; 1 in the open."""
    from sim.rules.combat import contact_band_shield

    people = np.array([300_000.0, 300_000.0, 0.0])
    defenders = np.array([900.0, 25.0, 900.0])  # D = 3 km; 0.5 km; no built-up ground
    np.testing.assert_allclose(contact_band_shield(people, defenders, 10_000.0, 100.0, 0.3),
                               [10.0, 0.5 / 0.3, 1.0])
    np.testing.assert_allclose(contact_band_shield(people, defenders, 10_000.0, 100.0, 0.0), 1.0)


def test_the_contact_band_loss_is_the_same_on_a_finer_grid():
    """A town of B km2 defended by G fighters: one coarse cell loses cap x G / (D / band) a week;
    cut into 4 cells (2 x 2), the 2 front cells lose the same in all (depth adds up as sqrt)."""
    from sim.rules.combat import contact_band_shield

    B, G, band, cap = 16.0, 1600.0, 0.4, 0.5
    coarse = cap * G / contact_band_shield(np.array([B * 1e4]), np.array([G]), 1e4, 100.0, band)
    fine = 2 * cap * (G / 4) / contact_band_shield(np.array([B / 4 * 1e4]), np.array([G / 4]), 1e4, 100.0, band)
    np.testing.assert_allclose(coarse, fine)


def test_a_barred_faction_holds_the_line_quietly():
    """Manoeuvre units make a fight active only off the ground of a closed hold_line zone that
    their faction does not hold: the SDF next to the Hajin pocket before its offensive fights
    there as a static front; an open zone, or one without hold_line, changes nothing."""
    from types import SimpleNamespace

    from sim import aftermath

    owner = np.array([[0, 0, 1]], np.int8)  # ISIS holds two cells, the SDF one
    zone = np.array([[True, False, True]])
    z = SimpleNamespace(hold_line=True, factions=["SDF"])
    m = SimpleNamespace(n_f=2, owner=owner, fidx={"ISIS": 0, "SDF": 1}, zones={"hajin": zone},
                        zones_closed=frozenset({"hajin"}),
                        cfg=SimpleNamespace(scenario=SimpleNamespace(zones={"hajin": z}, deconfliction={})))
    near = np.ones((2, 1, 3), bool)
    idx = np.array([0, 1, 2])
    np.testing.assert_array_equal(aftermath.manoeuvre(m, near, idx), [[True, True, True], [False, True, True]])
    m.zones_closed = frozenset()
    assert aftermath.manoeuvre(m, near, idx).all()
    m.zones_closed, z.hold_line = frozenset({"hajin"}), False
    assert aftermath.manoeuvre(m, near, idx).all()


def test_fortifications_stay_built_while_isis_holds_them():
    """A pocket fortified with its garrison (>= min_pocket_fighters) stays fortified when the
    assault grinds the garrison below that (no cliff mid-battle); a cell lost and retaken is
    not; a pocket never fortified with a small garrison is not."""
    from types import SimpleNamespace

    from sim import aftermath

    IS_, KR_ = 0, 1
    owner = np.array([[IS_, IS_, IS_, KR_]], np.int8)
    hc = SimpleNamespace(onset=0.1, max_factor=3.0, min_pocket_fighters=200.0)
    garrison = np.zeros((2, 1, 4), np.float32)
    garrison[IS_, 0, :3] = 100.0
    m = SimpleNamespace(isis=IS_, owner=owner, settled0=np.array([60.0, 1.0]), area=np.ones((1, 4)), settled_km2=np.ones((1, 4)),
                        settled_ground=np.ones((1, 4), bool), holdout_mask=np.ones((1, 4), bool),
                        garrison=garrison, fortified=np.zeros((1, 4), bool),
                        geo=SimpleNamespace(shape=(1, 4)), cfg=SimpleNamespace(holdouts=hc))
    k0 = aftermath.holdout_slow(m)  # share 3/60 = 0.05: k = 1 + 2 x 0.5 = 2
    np.testing.assert_allclose(k0, [[2.0, 2.0, 2.0, 1.0]])
    m.garrison[IS_] = np.where(m.garrison[IS_] > 0, 10.0, 0.0)  # ground down to 30 in all
    np.testing.assert_allclose(aftermath.holdout_slow(m), [[2.0, 2.0, 2.0, 1.0]])
    m.owner = np.array([[KR_, IS_, IS_, KR_]], np.int8)  # the first cell falls ...
    aftermath.holdout_slow(m)
    m.owner = np.array([[IS_, IS_, IS_, KR_]], np.int8)  # ... and is retaken: not fortified
    assert np.asarray(aftermath.holdout_slow(m))[0, 0] == 1.0
    m.fortified = np.zeros((1, 4), bool)  # never fortified, 30 fighters: nothing
    assert (np.asarray(aftermath.holdout_slow(m)) == 1.0).all()


def test_the_encircled_fall_back_into_their_pocket():
    """ISIS fighters of a lost cell next to its besieged ground go to ground only at
    holdouts.besieged_underground_share (they fall back into the pocket); elsewhere at
    insurgency.go_underground_share; other factions never."""
    from types import SimpleNamespace

    from sim import aftermath

    owner = np.array([[1, 0, 0, 1, 1, 1]], np.int8)  # cell 0 just lost next to the pocket (1-2)
    sealed = np.array([[False, True, True, False, False, False]])
    cfg = SimpleNamespace(insurgency=SimpleNamespace(go_underground_share=0.7),
                          holdouts=SimpleNamespace(besieged_underground_share=0.2))
    m = SimpleNamespace(isis=0, owner=owner, sealed=sealed, cfg=cfg)
    sl = (slice(None), slice(None))
    np.testing.assert_allclose(aftermath.underground_share(m, 0, sl), [[0.2, 0.2, 0.2, 0.2, 0.7, 0.7]])
    assert aftermath.underground_share(m, 1, sl) == 0.0
    m.sealed = np.zeros_like(sealed)  # the last cell of a pocket: nothing besieged left beside it
    np.testing.assert_allclose(aftermath.underground_share(m, 0, sl), 0.7)


def test_retreat_takes_a_share_to_ground_per_cell():
    from sim.rules.movement import retreat

    g = np.array([[10.0, 0.0, 0.0, 10.0]], np.float32)
    own = np.array([[False, True, True, False]])
    out, hidden, _, _ = retreat(g, own, 0.0, np.array([[0.2, 0.7, 0.7, 0.7]]), 0.0, 3)
    np.testing.assert_allclose(hidden, [[2.0, 0.0, 0.0, 7.0]])
    np.testing.assert_allclose(out.sum() + hidden.sum(), 20.0, rtol=1e-6)


def test_a_deconfliction_line_with_hold_line_quiets_the_far_bank():
    """The regime (south bank) makes no active front on the north bank while the line holds,
    except on ground it holds there; after the line's end date, or without hold_line, it does."""
    import datetime as dt
    from types import SimpleNamespace

    from sim import aftermath

    owner = np.array([[0, 0, 1]], np.int8)  # ISIS on both banks, the regime's cell north
    side = np.array([[1, -1, 1]])  # +1 north of the river, -1 south
    d = SimpleNamespace(hold_line=True, until="", factions=["SYRIAN_GOV"], sides=["south"], country="SYR")
    m = SimpleNamespace(n_f=2, owner=owner, fidx={"ISIS": 0, "SYRIAN_GOV": 1}, zones={}, zones_closed=frozenset(),
                        date=dt.date(2018, 1, 1), _line_sides=lambda _: side,
                        geo=SimpleNamespace(country_mask=lambda c: np.ones((1, 3), bool)),
                        cfg=SimpleNamespace(scenario=SimpleNamespace(zones={}, deconfliction={"e": d})))
    near, idx = np.ones((2, 1, 3), bool), np.array([0, 1, 2])
    np.testing.assert_array_equal(aftermath.manoeuvre(m, near, idx), [[True, True, True], [False, True, True]])
    d.until = "2017-12-01"
    assert aftermath.manoeuvre(m, near, idx).all()
    d.until, d.hold_line = "", False
    assert aftermath.manoeuvre(m, near, idx).all()


def test_hold_age_counts_weeks_since_the_holder_changed():
    """Weeks held: +1 where the holder is last week's, 0 where a cell changed hands."""
    from sim.rules.combat import hold_age

    age = np.array([[0, 3], [7, 2]], np.int16)
    before = np.array([[0, 1], [1, -1]], np.int8)
    owner = np.array([[0, 1], [2, 0]], np.int8)
    np.testing.assert_array_equal(hold_age(age, owner, before), [[1, 4], [0, 0]])


def test_a_prepared_defender_loses_a_third_less_to_the_same_attack():
    """Posture (Dupuy 1979): a holder that has held its cell for prepared_weeks loses 1/1.5 of
    what a fresh holder loses to the same attack; the attacker's losses are unchanged."""
    from types import SimpleNamespace

    from sim.rules.combat import cell_losses, posture

    np.testing.assert_allclose(posture(np.array([0, 3, 4, 9]), 4, 1.5), [1.0, 1.0, 1.5, 1.5])
    cfg = SimpleNamespace(guerrilla_area_factor=30.0, static_front_intensity=1.0, loss_noise=0.0,
                          max_loss_fraction=0.5)
    force = np.array([[1000.0, 1000.0], [3000.0, 3000.0]])  # holder 0 in both cells, fresh and dug in
    eng = np.array([[False, True], [True, False]])
    args = (force, eng, np.array([0.03, 0.04]), np.ones((2, 2)), np.zeros(2, bool),
            np.ones((2, 2), bool), 3.0, np.array([0, 0]))
    shield = posture(np.array([0, 4]), 4, 1.5)
    loss, _ = cell_losses(*args, shield, cfg, np.random.default_rng(0))
    # square law: the holder loses 0.04 x 3000 = 120 fresh, 80 dug in; the attacker 0.03 x 1000
    np.testing.assert_allclose(loss[0], [120.0, 80.0])
    np.testing.assert_allclose(loss[1], [30.0, 30.0])


def test_a_cell_that_changed_hands_after_the_posture_update_is_not_prepared():
    """A cell ceded, handed over in a deal or retaken by resurfacing ISIS after last week's
    posture_week still carries its former holder's hold age; its new holder is not dug in."""
    from types import SimpleNamespace

    from sim import aftermath

    cfg = SimpleNamespace(assault=SimpleNamespace(built_density=1000.0, defender_density=100.0),
                          combat=SimpleNamespace(urban_band_km=0.3, prepared_weeks=4,
                                                 prepared_defence=1.5))
    m = SimpleNamespace(cfg=cfg, owner=np.array([[0, 1]]), held_owner=np.array([[0, 0]]),
                        held_weeks=np.array([[9, 9]], np.int16), sealed=np.zeros((1, 2), bool),
                        shield=np.ones(2, np.float32),
                        geo=SimpleNamespace(population=np.zeros((1, 2))))
    got = aftermath.combat_shield(m, np.array([0, 1]), np.ones((2, 2)))
    np.testing.assert_allclose(got, [1.5, 1.0])  # cell 1: taken by faction 1 after the update
