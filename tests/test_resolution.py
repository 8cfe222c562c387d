"""Rates that depend on cell size are scaled to the 0.05 degree reference (issue 14.5)."""

from types import SimpleNamespace

import numpy as np
import pytest

from sim.rules import combat


def test_damage_and_civilian_harm_depend_on_losses_per_reference_area():
    cfg = SimpleNamespace(ground_housing_damage=0.006, air_housing_damage=0.03, civilian_harm=5e-6)
    loss = np.array([[20.0], [20.0]])  # 40 fighters lost in a 0.05 degree cell
    ref = combat.aftermath(loss, np.array([0.5]), np.zeros(1), np.array([10_000.0]), cfg)
    # the same fighting density on a 0.1 degree cell: 4x the area, losses and people
    big = combat.aftermath(4 * loss, np.array([0.5]), np.zeros(1), np.array([40_000.0]), cfg, 4.0)
    assert big[2] == pytest.approx(ref[2])  # the same share of housing destroyed
    assert big[3] == pytest.approx(4 * ref[3])  # the same deaths per person
    assert big[1] == pytest.approx(4 * ref[1])  # violence counts the fighters lost


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
