"""Pure rules on tiny hand-built grids, with exact expected numbers (no Mesa, no I/O)."""

import numpy as np
import pytest

from sim.grid import KM_PER_DEG
from sim.rules import civilians as civ
from sim.rules import combat, insurgency
from sim.rules.control import (
    LEVEL_CONTESTED,
    LEVEL_DOMINANT,
    LEVEL_FULL,
    LEVEL_NONE,
    OUTSIDE,
    UNGOVERNED,
    control_levels,
    initial_control_voronoi,
    update_control,
)
from sim.rules.spatial import (
    argmax0,
    box_mean,
    box_sum3,
    dilate8,
    stamp_windows,
    window_cover,
    window_means,
    window_side,
    window_size,
)


# ------------------------------------------------------------------ spatial
def test_window_size_rounds_to_odd_cells():
    assert window_size(0, 5.0) == 1
    assert window_size(12, 5.56) == 5  # 12 km reach ~ 2 cells each side
    assert window_size(2.7, 5.0) == 3


def test_box_sum3_exact():
    a = np.zeros((3, 3), np.float32)
    a[1, 1] = 9
    np.testing.assert_array_equal(box_sum3(a), np.full((3, 3), 9, np.float32))
    b = np.zeros((2, 4), np.float32)
    b[0, 0] = 1
    np.testing.assert_array_equal(box_sum3(b), [[1, 1, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_allclose(box_mean(a, 3), np.ones((3, 3)))


def test_dilate8_and_argmax0():
    m = np.zeros((3, 3), bool)
    m[0, 0] = True
    assert dilate8(m).sum() == 4
    a = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 1.0]])
    idx, best = argmax0(a)
    np.testing.assert_array_equal(idx, [1, 0, 0])  # ties: first index, like argmax
    np.testing.assert_array_equal(best, [3.0, 5.0, 2.0])


def _shifted(a, op):
    """The 3 x 3 neighbourhood pass of dilate8 / box_sum3 by 2-D slices (rows, then columns)."""
    out = a.copy()
    op(out[..., 1:, :], a[..., :-1, :], out=out[..., 1:, :])
    op(out[..., :-1, :], a[..., 1:, :], out=out[..., :-1, :])
    tmp = out.copy()
    op(out[..., :, 1:], tmp[..., :, :-1], out=out[..., :, 1:])
    op(out[..., :, :-1], tmp[..., :, 1:], out=out[..., :, :-1])
    return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (7, 9), (3, 4, 6), (2, 17, 13), (0, 3), (3, 0)])
def test_dilate8_and_box_sum3_flat_shifts_match_slices(shape):
    """The column pass as flat shifts (the wrapped column cleared) = the 2-D slice pass,
    bit for bit, on every edge, on stacks and on non-contiguous views."""
    rng = np.random.default_rng(len(shape) * 100 + sum(shape))
    for p in (0.05, 0.5):
        m = rng.random(shape) < p
        for view in (m, np.asfortranarray(m), m[..., ::-1]):
            np.testing.assert_array_equal(dilate8(view), _shifted(view, np.logical_or))
    f = (rng.random(shape) * 10).astype(np.float32)
    ref = _shifted(f, np.add)
    assert box_sum3(f).tobytes() == ref.tobytes()


def test_unit_cells_dilated_is_dilate8_of_the_unit_cells():
    """Stamping each unit's clipped 3 x 3 block = dilate8 of the stack of unit cells (units on
    edges and corners, several per cell, negative indices counted from the end)."""
    from sim.rules.presence import unit_cells_dilated

    rng = np.random.default_rng(3)
    for (R, C), n in (((5, 7), 12), ((1, 1), 2), ((30, 40), 60), ((4, 4), 0)):
        rows, cols = rng.integers(-R, R, n), rng.integers(-C, C, n)
        f = rng.integers(0, 4, n).astype(np.int16)
        ref = np.zeros((4, R, C), bool)
        ref[f, rows, cols] = True
        np.testing.assert_array_equal(unit_cells_dilated((R, C), 4, rows, cols, f), dilate8(ref))


def test_stamp_windows_and_adjoint_conserve():
    shape = (5, 5)
    rows, cols = np.array([2, 0]), np.array([2, 4])
    vals, sizes, layer = np.array([90.0, 18.0]), np.array([3, 3]), np.array([0, 1])
    out = stamp_windows(shape, rows, cols, vals, sizes, layer, centre=0.5)
    # unit 0: 45 on its cell + 45/9 = 5 on each of 9 cells -> centre 50, ring 5
    assert out[0, 2, 2] == pytest.approx(50.0)
    assert out[0, 1, 1] == pytest.approx(5.0)
    assert out[0].sum() == pytest.approx(90.0)
    # unit 1 sits in a corner: the part of its window off the grid is lost
    assert out[1].sum() == pytest.approx(9.0 + 9.0 * 4 / 9)
    # adjoint: a uniform rate of 0.1 everywhere hands back 10% of each unit's projected mass
    rate = np.full((2, *shape), 0.1, np.float32)
    back = window_means(rate, rows, cols, sizes, layer, centre=0.5)
    assert back[0] == pytest.approx(0.1)
    assert back[1] == pytest.approx(0.1 * (0.5 + 0.5 * 4 / 9))


def test_window_side_keeps_the_sector_in_km_on_every_grid():
    # projection 12 km: 5 cells of 0.05 degrees (27.8 km), so 2.5 of 0.1 and 10 of 0.025
    ref = 0.05 * KM_PER_DEG  # a 0.05-degree cell, km
    assert window_side(12, ref, ref) == 5.0
    assert window_side(12, 2 * ref, ref) == 2.5
    assert window_side(12, ref / 2, ref) == 10.0
    assert window_side(0, 2 * ref, ref) == 1.0  # never below one cell
    n, w = window_cover(np.array([5.0, 2.5, 10.0, 1.0]))
    assert n.tolist() == [5, 3, 11, 1]
    # the kernel's area is side**2 cells: (n - 2)**2 + w * (n**2 - (n - 2)**2)
    assert w[0] == 1.0 and w[3] == 1.0
    assert w[1] == pytest.approx((6.25 - 1) / 8)  # 0.65625
    assert w[2] == pytest.approx((100 - 81) / 40)  # 0.475


def test_fractional_window_covers_the_same_km2_and_stays_adjoint():
    # one unit of 100 fighters, no centre share: side 2.5 cells -> 3 x 3 window, ring 0.65625
    out = stamp_windows((5, 5), np.array([2]), np.array([2]), np.array([100.0]), np.array([2.5]),
                        np.array([0]))
    assert out[0, 2, 2] == pytest.approx(100 / 6.25)  # the centre at full weight: 16
    assert out[0, 1, 1] == pytest.approx(100 * 0.65625 / 6.25)  # the ring: 10.5
    assert out[0, 0, 0] == 0.0
    assert out.sum() == pytest.approx(100.0)
    # the same sector on a grid twice as fine: 5 cells, a plain box of 4 per cell (same km2)
    fine = stamp_windows((9, 9), np.array([4]), np.array([4]), np.array([100.0]), np.array([5.0]),
                         np.array([0]))
    assert fine[0, 4, 4] == pytest.approx(4.0) and fine.sum() == pytest.approx(100.0)
    rate = np.full((1, 5, 5), 0.2, np.float32)  # the adjoint hands back 20% of the unit
    back = window_means(rate, np.array([2]), np.array([2]), np.array([2.5]), np.array([0]))
    assert back[0] == pytest.approx(0.2)
    # box_mean with a fractional side: a uniform field keeps its value inside the grid
    field = np.ones((7, 7), np.float32)
    assert box_mean(field, 2.5)[3, 3] == pytest.approx(1.0)
    assert box_mean(field, 5.0)[3, 3] == pytest.approx(1.0)


# ------------------------------------------------------------------ combat
def test_square_law_two_sides_exact():
    force = np.array([[100.0], [50.0]])
    eng = np.array([[0, 1], [1, 0]], bool)
    fp = np.array([0.1, 0.2])
    air = np.ones((2, 2))
    loss = combat.expected_losses(force, eng, fp, air, np.array([False, False]), 30.0)
    # A fires 0.1 * 100 = 10 at B; B fires 0.2 * 50 = 10 at A (aimed fire, square law)
    np.testing.assert_allclose(loss[:, 0], [10.0, 10.0])


def test_fire_split_over_enemies_and_air_support():
    force = np.array([[100.0], [30.0], [10.0]])  # A vs B and C (B and C allied)
    eng = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], bool)
    fp = np.array([0.1, 0.1, 0.1])
    air = np.ones((3, 3))
    air[0, 1] = 3.0  # A's patron bombs B only
    loss = combat.expected_losses(force, eng, fp, air, np.zeros(3, bool), 30.0)
    # A's 10 kills split 30:10 over B and C; air triples A's fire on B
    np.testing.assert_allclose(loss[:, 0], [4.0, 22.5, 2.5])


def test_guerrilla_area_fire():
    force = np.array([[100.0], [30.0]])
    eng = np.array([[0, 1], [1, 0]], bool)
    loss = combat.expected_losses(force, eng, np.array([0.1, 0.1]), np.ones((2, 2)),
                                  np.array([False, True]), 30.0)
    # insurgents are hit by area fire: 10 * 30 / (30 + 30) = 5; they fire aimed: 3
    np.testing.assert_allclose(loss[:, 0], [3.0, 5.0])


def test_draw_losses_caps_and_is_reproducible():
    exp = np.array([[100.0, 1.0]])
    force = np.array([[50.0, 10.0]])
    a = combat.draw_losses(exp, force, np.random.default_rng(1), 0.3, 0.5)
    b = combat.draw_losses(exp, force, np.random.default_rng(1), 0.3, 0.5)
    np.testing.assert_array_equal(a, b)
    assert a[0, 0] == 25.0  # capped at half the force
    assert combat.draw_losses(exp, force, np.random.default_rng(1), 0.0, 1.0)[0, 1] == 1.0


def test_dyad_battles_and_apportion():
    force = np.array([[10.0, 10.0], [5.0, 0.0], [0.0, 3.0]])
    losses = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    eng = np.zeros((3, 3), bool)
    eng[0, 1] = eng[1, 0] = True
    b = combat.dyad_battles(losses, force, eng)
    assert b[0, 1] == 1 and b[1, 0] == 1 and b[0, 2] == 0
    np.testing.assert_allclose(combat.apportion(np.array([6.0, 0.0]), np.array([1.0, 0.0]),
                                                np.array([3.0, 0.0])), [2.0, 0.0])


def test_housing_damage_and_civilian_deaths():
    d = combat.housing_damage(np.array([0.0, 0.5]), np.array([10.0, 0.0]), np.array([0.0, 0.0]),
                              ground_rate=np.log(2.0), air_rate=0.0, scale=10.0)
    np.testing.assert_allclose(d, [0.5, 0.5])
    deaths = combat.civilian_deaths(np.array([1000.0]), np.array([10.0]), np.array([0.5]), 0.01)
    np.testing.assert_allclose(deaths, 1000.0 * (1 - np.exp(-0.01 * 10 * 2.0)))


# ------------------------------------------------------------------ control
def _grid():
    owner = np.array([[0, 0, -1], [1, 1, -2]], np.int8)
    hostile = np.array([[False, True], [True, False]])
    allowed = np.ones((2, 2, 3), bool)
    return owner, hostile, allowed


def test_capture_needs_the_ratio():
    owner, hostile, allowed = _grid()
    p = np.zeros((2, 2, 3))
    p[0, 0, 0] = 10.0
    p[1, 0, 0] = 19.9  # just short of 2:1
    p[0, 0, 1] = 10.0
    p[1, 0, 1] = 20.0  # exactly 2:1 takes it
    p[1, 1, :2] = 5.0
    new = update_control(owner, p, hostile, allowed, 2.0, np.array([1.0, 1.0]))
    assert new[0, 0] == 0 and new[0, 1] == 1


def test_vacancy_and_race_for_ungoverned():
    owner, hostile, allowed = _grid()
    p = np.zeros((2, 2, 3))
    p[0, 0, 0] = 0.5  # below its hold level: the cell falls vacant
    p[1, 0, 2] = 3.0  # faction 1 races into the ungoverned cell
    p[0, 0, 2] = 2.0
    p[1, 1, :2] = 5.0
    new = update_control(owner, p, hostile, allowed, 2.0, np.array([1.0, 1.0]))
    assert new[0, 0] == UNGOVERNED
    assert new[0, 2] == 1
    assert new[1, 2] == OUTSIDE  # outside cells never change


def test_disallowed_and_defence():
    owner, hostile, allowed = _grid()
    p = np.zeros((2, 2, 3))
    p[0, 0, 1] = 10.0
    p[1, 0, 1] = 30.0
    p[1, 1, :2] = 5.0
    allowed[1, 0, 1] = False  # a deconfliction line keeps faction 1 out
    assert update_control(owner, p, hostile, allowed, 2.0, np.ones(2))[0, 1] == 0
    allowed[1, 0, 1] = True
    defence = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.0])  # a town: 2 x 2 = 4:1 needed
    assert update_control(owner, p, hostile, allowed, 2.0, np.ones(2), defence=defence)[0, 1] == 0
    assert update_control(owner, p, hostile, allowed, 2.0, np.ones(2))[0, 1] == 1


def test_allies_are_not_captured():
    owner = np.array([[0]], np.int8)
    p = np.array([[[1.0]], [[50.0]]])
    hostile = np.zeros((2, 2), bool)
    assert update_control(owner, p, hostile, np.ones((2, 1, 1), bool), 2.0, np.ones(2))[0, 0] == 0


def test_kalyvas_levels():
    owner = np.array([[0, 0, 0, -1, -1]], np.int8)
    p = np.zeros((2, 1, 5))
    p[0, 0, :3] = [95.0, 70.0, 50.0]
    p[1, 0, :3] = [5.0, 30.0, 50.0]
    p[1, 0, 3] = 1.0
    lv = control_levels(owner, p, np.zeros((1, 5), bool), 0.9, 0.6)
    np.testing.assert_array_equal(lv[0], [LEVEL_FULL, LEVEL_DOMINANT, LEVEL_CONTESTED,
                                          LEVEL_CONTESTED, LEVEL_NONE])
    fight = np.zeros((1, 5), bool)
    fight[0, 0] = True
    assert control_levels(owner, p, fight, 0.9, 0.6)[0, 0] == LEVEL_CONTESTED


def test_initial_control_voronoi_per_country():
    country = np.array([[0, 0, 1, 1]])
    theatre = np.ones((1, 4), bool)
    # one seed per country; the country-0 seed is nearer to cell (0, 2) but may not cross
    owner = initial_control_voronoi(np.array([0, 0]), np.array([1, 3]), np.array([5, 7]),
                                    np.array([0, 1]), country, theatre)
    np.testing.assert_array_equal(owner[0], [5, 5, 7, 7])


# ------------------------------------------------------------------ insurgency
def test_insurgency_rules():
    hid, back = insurgency.go_underground(np.array([10.0]), 0.6)
    np.testing.assert_allclose([hid[0], back[0]], [6.0, 4.0])
    caught = insurgency.detection_losses(np.array([100.0]), np.array([10.0]), 0.01)
    np.testing.assert_allclose(caught, 100 * (1 - np.exp(-0.1)))
    up = insurgency.resurface(np.array([5.0, 5.0, 0.5]), np.array([2.0, 3.0, 0.0]), 2.0, 1.0)
    np.testing.assert_array_equal(up, [True, False, False])
    assert insurgency.foreign_exit(1000.0, 0.01, 0.0) == pytest.approx(10.0)
    assert insurgency.foreign_exit(1000.0, 0.01, 0.5) == pytest.approx(30.0)
    # 100 fighters go to ground in two cells; ISIS has 1,000 fighters of whom 300 foreign
    stay, out = insurgency.foreign_share_leaving(np.array([60.0, 40.0]), 300.0, 1000.0)
    assert stay.tolist() == pytest.approx([42.0, 28.0]) and out == pytest.approx(30.0)
    assert insurgency.foreign_share_leaving(np.array([5.0]), 0.0, 0.0)[1] == 0.0
    att = insurgency.attacks(np.array([0.0, 100.0, 100.0]), np.array([True, True, False]), 0.1,
                             np.random.default_rng(0))
    assert att[0] == 0 and att[2] == 0 and att[1] >= 0


# ------------------------------------------------------------------ civilians
def test_grievance_and_hardship():
    assert civ.grievance(np.array([0.8]), np.array([0.25]))[0] == pytest.approx(0.6)
    h = civ.hardship(0.2, np.array([0.5]), np.array([0.2]), np.array([0.0]), 1.0, 1.0, 1.0)
    assert h[0] == pytest.approx(0.9)
    assert civ.hardship(0.9, np.array([1.0]), np.array([1.0]), np.array([1.0]), 1, 1, 1)[0] == 1.0


def test_flee_and_return_fractions():
    f = civ.flee_fraction(np.array([0.5]), np.array([0.0]), np.array([0.0]), 2.0, 0.3, 0.02)
    assert f[0] == pytest.approx(1 - np.exp(-1.0))
    r = civ.return_fraction(np.array([True, True, False]), np.array([0.0, 0.3, 0.0]), 0.05, 0.6)
    np.testing.assert_allclose(r, [0.05, 0.025, 0.0])
    # quiet weeks: +1 where no violence and no new damage, else back to 0
    q = civ.quiet_weeks(np.array([0, 3, 5, 2]), np.array([0.0, 0.0, 0.01, 0.0]),
                        np.array([0.0, 0.0, 0.0, 0.002]))
    assert q.tolist() == [1, 4, 0, 0]


def test_move_people_conserves_exactly():
    home, idp, abroad, dead = (np.array([1000.0, 10.0]), np.array([0.0, 90.0]),
                               np.array([0.0, 0.0]), np.array([0.0, 0.0]))
    (h, i, a, d), (left, to_ab, back, died) = civ.move_people(
        home, idp, abroad, dead, flee=np.array([0.5, 0.0]), abroad_share=np.array([0.2, 0.0]),
        ret_idp=np.array([0.0, 0.1]), ret_abroad=np.array([0.0, 0.0]),
        deaths_home=np.array([100.0, 50.0]), deaths_idp=np.array([0.0, 0.0]))
    np.testing.assert_allclose(h + i + a + d, [1000.0, 100.0])
    np.testing.assert_allclose(d, [100.0, 10.0])  # deaths never exceed the stock
    np.testing.assert_allclose(left, [450.0, 0.0])
    np.testing.assert_allclose(to_ab, [90.0, 0.0])
    np.testing.assert_allclose(back, [0.0, 9.0])


def test_destination_scores():
    s = civ.destination_scores(np.array([[1.0, 1.0, 0.0]]), np.array([[0.8, 0.8, 0.8]]),
                               np.array([[1000.0, 1000.0, 1000.0]]),
                               np.array([[0.0, 150.0, 10.0]]), 150.0)
    assert s[0, 0] == pytest.approx(2 * s[0, 1])  # distance halves it at one week's walk
    assert s[0, 2] == 0.0  # unsafe
    far = civ.destination_scores(np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1)),
                                 np.array([[500.0]]), 150.0)
    assert far[0, 0] == 0.0
    np.testing.assert_allclose(civ.recruits(np.array([1000.0]), np.array([0.5]), 0.01), [5.0])


def test_mask_box_grows_by_its_margin_and_clips_to_the_grid():
    from sim.rules.spatial import mask_box

    m = np.zeros((6, 8), bool)
    assert mask_box(m) is None
    m[1, 2] = m[3, 6] = True
    assert mask_box(m) == (slice(1, 4), slice(2, 7))
    assert mask_box(m, margin=2) == (slice(0, 6), slice(0, 8))
