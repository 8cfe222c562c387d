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
