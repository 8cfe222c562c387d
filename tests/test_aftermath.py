"""Aftermath mechanisms of issue 13 (src/sim/rules/{assault,sieges,withdrawal,reach,alignment,
holdouts}.py) on tiny hand-built grids, with exact expected numbers (no Mesa, no I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.rules.assault import apply_capture, sector_capture, sector_odds
from sim.rules.control import OUTSIDE, UNGOVERNED

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
