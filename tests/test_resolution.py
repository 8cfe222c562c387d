"""Rates that depend on cell size are scaled to the 0.05 degree reference (issue 14.5)."""

from types import SimpleNamespace

import numpy as np
import pytest

from sim.rules import combat


def test_damage_and_civilian_harm_depend_on_losses_per_reference_area():
    cfg = SimpleNamespace(ground_housing_damage=0.006, air_housing_damage=0.03, civilian_harm=5e-6)
    loss = np.array([[20.0], [20.0]])  # 40 fighters lost in a 0.05 degree cell
    air, idx = np.array([0.5]), np.array([0])
    ref = combat.aftermath(loss, air, np.zeros(1), cfg)
    # the same fighting density on a 0.1 degree cell: 4x the area, losses and people
    big = combat.aftermath(4 * loss, air, np.zeros(1), cfg, 4.0)
    assert big[2] == pytest.approx(ref[2])  # the same share of housing destroyed
    assert big[1] == pytest.approx(4 * ref[1])  # violence counts the fighters lost

    def deaths(lost, people, area_factor):  # as aftermath.civilian_harm (an even 0.1 deg cell)
        _, density, a = combat.civilian_exposure(lost, air, idx, area_factor)
        return combat.civilian_deaths(np.array([people]), density, a, cfg.civilian_harm)
    assert deaths(big[1], 40_000.0, 4.0) == pytest.approx(4 * deaths(ref[1], 10_000.0, 1.0))
    assert deaths(ref[1], 10_000.0, 1.0)[0] > 0  # the same deaths per person


def test_civilians_meet_the_fighting_of_their_reference_cell():
    loss, air = np.array([8.0, 2.0]), np.array([0.5, 0.0])
    # the 0.05 degree grid: the combat cells themselves, losses per cell
    cells, dens, a = combat.civilian_exposure(loss, air, np.array([3, 5]), 1.0)
    assert cells.tolist() == [3, 5] and dens.tolist() == [8.0, 2.0] and a.tolist() == [0.5, 0.0]
    # 0.025 degrees: a 2 x 4 grid of two reference blocks; fighting in cells 0 and 1 (block 0)
    block = combat.battle_blocks((2, 4), 0.025, 0.05)
    cells, dens, a = combat.civilian_exposure(loss, air, np.array([0, 1]), 0.25, block)
    assert cells.tolist() == [0, 1, 4, 5]  # the whole block, not the block without fighting
    assert dens == pytest.approx([10.0] * 4)  # 10 lost over 4 x 0.25 reference cells
    assert a == pytest.approx([0.4] * 4)  # (8 x 0.5 + 2 x 0) / 10
    # 0.1 degrees: the density times the cell's crowding
    cells, dens, _ = combat.civilian_exposure(loss, air, np.array([0, 1]), 4.0, None, np.array([1.5, 1.0]))
    assert dens.tolist() == [3.0, 0.5]


def test_crowding_of_a_coarse_cell():
    from sim.initial import crowding

    # two 0.1 degree cells of 2 x 2 reference cells: a town in one corner, and an even cell
    people = np.array([[100.0, 0.0, 25.0, 25.0], [0.0, 0.0, 25.0, 25.0]])
    weights = np.array([[3.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]])  # forces stand by the town
    # 4 x 100 x 3 / (100 x 6) = 2: the fighting meets the people at twice the cell's density
    assert crowding(people, weights, 2).tolist() == [[2.0, 1.0]]
    assert crowding(np.zeros((2, 2)), np.ones((2, 2)), 2).tolist() == [[1.0]]  # empty: 1


def test_battles_are_counted_per_block_not_per_cell():
    # two factions engaged in four cells; cells 0-2 in block 7, cell 3 in block 9
    force = np.array([[10.0, 10.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    losses = np.array([[0.2, 0.2, 0.2, 0.0], [0.0, 0.0, 0.0, 1.0]])
    eng = np.array([[False, True], [True, False]])
    per_cell = combat.dyad_battles(losses, force, eng)
    assert per_cell[0, 1] == 1  # only cell 3 loses 0.5 fighters
    block = np.array([7, 7, 7, 9])
    per_block = combat.dyad_battles(losses, force, eng, block=block)
    # block 7: 0.6 lost over its three cells -> one battle; block 9: one battle
    assert per_block[0, 1] == per_block[1, 0] == 2 and per_block[0, 0] == 0
    # the same fighting on a grid with one cell per block gives the same count
    coarse = combat.dyad_battles(np.array([[0.6, 0.0], [0.0, 1.0]]), np.array([[30.0, 10.0], [15.0, 5.0]]), eng)
    assert coarse[0, 1] == 2


def test_battle_blocks_are_a_tenth_of_a_degree():
    assert combat.battle_blocks((2, 3), 0.1).tolist() == [0, 1, 2, 3, 4, 5]
    b = combat.battle_blocks((4, 4), 0.05).reshape(4, 4)
    assert b.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert len(np.unique(combat.battle_blocks((8, 8), 0.025))) == 4


def test_hidden_cells_resurface_per_reference_block():
    from sim.rules import insurgency

    owner = np.zeros((2, 4), np.int8)  # held by faction 0; ISIS is faction 1
    presence = np.zeros((2, 2, 4), np.float32)
    presence[0] = 1.0  # the holder's presence per fine cell
    need = np.full((2, 4), 2.0)  # a fine cell's share of the hold level
    allowed = np.ones((2, 4), bool)
    block = combat.battle_blocks((2, 4), 0.025, 0.05)  # two 2 x 2 blocks
    hidden = np.zeros((2, 4), np.float32)
    hidden[0, 0] = 6.0  # enough for its own fine cell, not for the block (need 8)
    hidden[:, 2:] = 2.5  # 10 spread over the second block: each cell alone would pass too
    per_cell = insurgency.resurfacing(hidden.copy(), presence, owner, 1, need, 2.0, allowed)
    assert per_cell[0, 0] and per_cell[:, 2:].all()
    h = hidden.copy()
    up = insurgency.resurfacing(h, presence, owner, 1, need, 2.0, allowed, block)
    assert not up[:, :2].any() and up[:, 2:].all()
    assert h[:, 2:].sum() == pytest.approx(10.0) and h[0, 0] == 6.0  # conserved, shared by need


def test_town_fields_carried_from_the_reference_grid():
    from sim.initial import carry_fields

    hold = np.array([[0.1, 1.0], [0.1, 0.1]])  # a town in one 0.05 degree cell of four
    urban = np.array([[0.0, 1.0], [0.0, 0.0]])
    fine_hold, fine_urban = carry_fields((hold, urban), (4, 4))  # the 0.025 degree grid
    assert fine_urban[:2, 2:].tolist() == [[1.0, 1.0], [1.0, 1.0]] and fine_urban[2:, :].sum() == 0
    assert fine_hold[0, 0] == 0.1 and fine_hold[1, 3] == 1.0


def test_race_for_empty_cells_advances_in_km_not_cells():
    from sim.rules.control import UNGOVERNED, race_gate, update_control

    rng = np.random.default_rng(0)
    jitter = rng.random((2, 10_000), dtype=np.float32) * 1e-3
    assert race_gate(jitter, 1.0) is None  # the 0.05 degree grid and finer: no gate
    gate = race_gate(jitter, 0.5)  # 0.1 degree cells: half a cell a week on average
    assert abs(gate.mean() - 0.5) < 0.02
    owner = np.full(4, UNGOVERNED, np.int8)
    presence = np.array([[5.0] * 4, [0.0] * 4])
    new = update_control(owner, presence, np.zeros((2, 2), bool), np.ones((2, 4), bool), None,
                         np.ones((2, 1)), race=np.array([True, False, True, False]))
    assert new.tolist() == [0, UNGOVERNED, 0, UNGOVERNED]


# ------------------------------------------------------------------ one answer at every grid
GRIDS = ("res_010", "res_005", "res_0025")
#: eight seeds: the medians of two moved by 10-25% with the pair chosen (civilian deaths at 0.1
#: degrees, seeds 11-12: -27%; seeds 11-18: -15%), more than the tolerance being tested
SEEDS = tuple(range(11, 19))
WEEKS = 78  # to 29 Dec 2018
DATES = ("2017-10-01", "2018-01-01", "2018-07-01", "2018-12-29")
#: factions whose territory share agrees within 20% at every grid (ODD 2.1 lists the others)
SHARE_FACTIONS = ("IRAQI_GOV", "KRG", "SDF", "SYRIAN_GOV", "PMF")
TOLERANCE = 0.2  # issue 14.5: within 20% of the 0.05 degree median
#: Medians measured (0.1 / 0.05 / 0.025 degrees, seeds 11-18, 78 weeks) in the eighth session
#: (settled ground and the HQ's planning reach read in km, area fire on guerrillas per 0.05-degree
#: area): civilian deaths 9.7k / 11.4k / 11.6k (-15% / +2%), battles between former allies
#: 545 / 531 / 474 (+3% / -11%), peak new displacement 4.20 / 3.95 / 3.80 M (+6% / -4%), the five
#: factions' shares within 13% (ODD 2.1).


def _outcomes(res) -> dict[str, float]:
    s = res.summary
    out = {"battles between former allies": s["cum_battles_former_allies"],
           "peak new displacement": s["peak_displaced_new"],
           "civilian deaths": s["cum_civilian_deaths"]}
    for f in SHARE_FACTIONS:
        share = res.metric("share_territory_area", f)
        for d in DATES:
            out[f"share {f} {d}"] = float(share[share.index <= d].iloc[-1])
    return out


def _run(grid: str, seed: int) -> tuple[str, dict[str, float]]:
    """One run of the ensemble (in a worker process)."""
    from sim.compose import compose
    from sim.runner import run_scenario

    res = run_scenario(compose([f"geography={grid}", f"seed={seed}", f"scenario.weeks={WEEKS}"]))
    return grid, _outcomes(res)


@pytest.mark.slow
def test_key_outcomes_agree_at_every_resolution():
    """Issue 14.5: the ensemble medians at 0.1 and 0.025 degrees within 20% of the 0.05 degree
    median: peak new displacement, civilian deaths, battles between former allies and five
    factions' territory shares at four dates (ODD 2.1 reports those it does not check: ISIS's
    share and its defeat date, which at 0.025 degrees ISIS keeps into 2019; all battles at 0.1
    degrees).  The 24 runs go over the machine's cores."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(g, s) for g in GRIDS for s in SEEDS]
    with ProcessPoolExecutor(max(1, min(os.cpu_count() or 1, 4)), mp_context=mp.get_context("spawn")) as ex:
        done = list(ex.map(_run, *zip(*jobs)))
    med = {}
    for g in GRIDS:
        runs = [o for gg, o in done if gg == g]
        med[g] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    ref = med["res_005"]
    bad = [f"{k} at {g}: {med[g][k]:.4g} vs {v:.4g} at 0.05"
           for g in ("res_010", "res_0025") for k, v in ref.items()
           if abs(med[g][k] - v) > TOLERANCE * abs(v)]
    assert not bad, "; ".join(bad)


def test_settled_ground_is_read_on_the_reference_grid():
    from types import SimpleNamespace

    from sim.initial import settled_fraction, settled_share_coarse

    # 0.025 degrees: one 0.05-degree block of 2 x 2 cells of 7.5 km2 with a village of 300 in
    # one cell (40 per km2 there, 10 per km2 over the block) and a town block beside it
    pop = np.array([[300.0, 0.0, 1000.0, 1000.0], [0.0, 0.0, 1000.0, 1000.0]])
    geo = SimpleNamespace(theatre=np.ones((2, 4), bool), population=pop, shape=(2, 4),
                          grid=SimpleNamespace(res=0.025, cell_area_km2=np.full((2, 4), 7.5)))
    frac = settled_fraction(geo, None, 30.0)
    assert frac.tolist() == [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]  # not the village's cell
    # the 0.05-degree grid: each cell's own density
    geo.grid.res = 0.05
    assert settled_fraction(geo, None, 30.0).tolist() == [[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]
    # 0.1 degrees: the share of the cell's area whose 0.05-degree cells are settled
    fine = np.array([[True, False, True, True], [False, False, True, True]])
    area = np.array([[30.0, 30.0, 30.0, 30.0], [30.0, 30.0, 30.0, 0.0]])  # one cell off the theatre
    np.testing.assert_allclose(settled_share_coarse(fine, area, 2), [[0.25, 1.0]])


def test_planning_reach_is_in_km():
    from sim.rules import movement

    cell = 0.05 * 111.19
    assert [movement.target_reach(cell * k) for k in (2.0, 1.0, 0.5)] == [1, 2, 4]
    owner = np.full((1, 9), -1, np.int8)  # ungoverned but for faction 0's cell at the west end
    owner[0, 0] = 0
    hostility = np.zeros((1, 1))
    occupied, allowed = np.zeros((1, 9), bool), np.ones((1, 9), bool)
    idx = movement.target_cells(0, owner, occupied, allowed, hostility, 0.5, None, 4)
    assert idx.tolist() == [1, 2, 3, 4]  # 4 cells of 0.025 degrees: ~11 km, as 2 at 0.05


def test_area_fire_on_guerrillas_per_reference_area():
    from types import SimpleNamespace

    cfg = SimpleNamespace(guerrilla_area_factor=30.0, static_front_intensity=1.0, loss_noise=0.0,
                          max_loss_fraction=1.0)
    rng = np.random.default_rng(0)

    def lost(scale, area):
        force = np.array([[200.0], [20.0]]) * scale  # an army against a few insurgents
        eng = np.array([[False, True], [True, False]])
        loss, _ = combat.cell_losses(force, eng, np.array([0.05, 0.05]), np.ones((2, 2)),
                                     np.array([False, True]), np.ones((2, 1), bool), 0.0,
                                     np.array([1]), np.ones(1), cfg, rng, area)
        return loss[:, 0]

    # the same density of fighters on a cell 4 times as large: 4 times the losses on each side
    np.testing.assert_allclose(lost(4.0, 4.0), 4 * lost(1.0, 1.0))
    assert lost(4.0, 1.0)[1] > 4 * lost(1.0, 1.0)[1]  # unscaled: area fire hits 4x the density
