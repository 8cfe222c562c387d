"""Unit logistics: where units may go, whether their targets can be reached, and the global
allocation of freed units to the fronts that need them.

**Passable ground** of faction ``f`` (:func:`passable`): cells ``f`` may enter
(``allowed[f]``, inside the theatre) that are its own, UNGOVERNED, or held by a faction ``g``
with ``hostility[f, g] == 0`` (transit through the ground of a faction it is not fighting,
e.g. Iraqi army columns staging through Peshmerga lines for the Mosul offensive in October
2016, Turkish convoys to the Idlib observation posts from October 2017); plus the *front*: cells of factions at war with it (``hostility >= war_threshold``)
that touch that ground (a unit may enter the first enemy cell and fight there).  Ground of a
faction ``f`` only skirmishes with (``0 < hostility < war_threshold``) is closed: it cannot
be crossed, and no offensive is planned against it.

**Reachability** (:func:`reachable_targets`): a unit's target is reachable when it lies in
the unit's 8-connected component of crossable ground (passable minus the front cells, which
may be entered but never link two pieces), or touches it (a front cell).  Targets found
unreachable are dropped by the caller and the unit goes back into the pool of freed units.

**Global allocation** (:func:`allocate_units`), after GeoSim (Cederman 1997, *Emergent Actors
in World Politics*, ch. 4: states allocate their resources over all their fronts at once): the
freed units of a faction are assigned, one at a time, to the reachable front with the highest
score

    score(u, k) = need_k / (1 + d(u, k) / dist_scale)

where ``need_k`` is the front's remaining need (fighters; reduced by each unit's strength as
it is assigned) and ``d`` the straight distance in cells.  The unit with the best score over
all pairs goes first.  Units left when every need is met stay in reserve (-1).

**Diagnostic** (:func:`share_units_stuck`): the share of units with a target they have not
reached that either cannot reach it or did not move this step (issue 13 asks that it stay
under 5%).

Units: positions in cells (row, column, floats allowed); strengths and needs in fighters;
``dist_scale`` in cells.
"""

from __future__ import annotations

import numpy as np

from .spatial import dilate8, label8, owner_lookup

_DR = np.repeat(np.arange(-1, 2), 3)  # row, column offsets of the 3 x 3 neighbourhood
_DC = np.tile(np.arange(-1, 2), 3)


def passable_parts(owner: np.ndarray, hostility: np.ndarray, allowed: np.ndarray, f: int,
                   war_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(open_ground, front)``, each ``[R, C]`` bool: the ground faction ``f``'s units may
    cross (own, UNGOVERNED, held by factions with hostility 0 to it, where ``f`` is allowed)
    and the enemy cells at war with ``f`` that touch it (enterable, not crossable)."""
    # per owner code (OUTSIDE -2, UNGOVERNED -1, factions 0..F-1): a table lookup per cell
    h = np.asarray(hostility[f], float)
    open_tab = np.concatenate([[False, True], h <= 0])
    open_tab[2 + f] = True
    front_tab = np.concatenate([[False, False], h >= war_threshold])
    code = owner.astype(np.intp) + 2
    open_ground = allowed[f] & open_tab[code]
    front = allowed[f] & front_tab[code] & dilate8(open_ground)
    return open_ground, front


def crossable(owner: np.ndarray, hostility: np.ndarray, allowed: np.ndarray, f: int,
              war_threshold: float) -> np.ndarray:
    """``[R, C]`` bool: open ground minus front cells (:func:`passable_parts`), the ground
    labelled by :func:`crossable_labels`.  The front (and its dilation) is computed only when
    some owner code can be both open and front (a threshold <= 0): otherwise the two are
    disjoint and the crossable ground is the open ground itself."""
    h = np.asarray(hostility[f], float)
    both = (h <= 0) & (h >= war_threshold)
    both[f] |= h[f] >= war_threshold
    if both.any():
        open_ground, front = passable_parts(owner, hostility, allowed, f, war_threshold)
        return open_ground & ~front
    open_tab = np.concatenate([[False, True], h <= 0])
    open_tab[2 + f] = True
    return allowed[f] & owner_lookup(open_tab, owner)


def passable(owner: np.ndarray, hostility: np.ndarray, allowed: np.ndarray, f: int,
             war_threshold: float) -> np.ndarray:
    """``[R, C]`` bool: cells faction ``f``'s units may cross or enter (module docstring):
    the union of :func:`passable_parts`.

    ``owner[r, c]`` int (UNGOVERNED -1, OUTSIDE -2); ``hostility[f, g]`` in [0, 1];
    ``allowed[f, r, c]`` bool (country, deconfliction line); ``war_threshold`` the hostility
    at which factions are at war (``control.offensive_hostility``).
    """
    open_ground, front = passable_parts(owner, hostility, allowed, f, war_threshold)
    return open_ground | front


def _cells(rc: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rc = np.rint(np.asarray(rc, float).reshape(-1, 2)).astype(np.int64)
    rc = np.minimum(np.maximum(rc, 0), np.array(shape[:2]) - 1)  # both columns at once
    return rc[:, 0], rc[:, 1]


def crossable_labels(passable_mask: np.ndarray, front: np.ndarray | None = None) -> np.ndarray:
    """``[R, C]`` int: 8-connected component labels of the crossable ground (``passable_mask``
    minus ``front``), 0 elsewhere; shared by :func:`reachable_targets` and
    :func:`reachable_matrix` (label once per faction and step)."""
    crossable = passable_mask if front is None else passable_mask & ~front
    return label8(crossable)[0]


def reachable_targets(passable_mask: np.ndarray, unit_rc: np.ndarray, target_rc: np.ndarray,
                      front: np.ndarray | None = None,
                      labels: np.ndarray | None = None) -> np.ndarray:
    """``[U]`` bool: each unit's target is in, or touches, the unit's 8-connected component of
    passable ground.  ``unit_rc``, ``target_rc`` ``[U, 2]`` (row, column), rounded to cells.

    ``front`` (from :func:`passable_parts`): enemy cells that may be entered but not crossed;
    they are left out of the components (a front cell never links two pieces of open ground)
    and count as reachable by touching.  A unit standing on a front or impassable cell (it is
    fighting in it) belongs to every component next to it.  ``labels``: the precomputed
    :func:`crossable_labels` (optional).
    """
    if labels is None:
        labels = crossable_labels(passable_mask, front)
    lab_u = _unit_labels(labels, unit_rc)  # [U, 9]
    lab_t = _around(labels, *_cells(target_rc, labels.shape))  # [U, 9]
    match = (lab_u[:, :, None] == lab_t[:, None, :]) & (lab_u[:, :, None] > 0)
    return match.any(axis=(1, 2))


def _unit_labels(labels: np.ndarray, unit_rc: np.ndarray) -> np.ndarray:
    """``[U, 9]``: the component of each unit's cell, or those around it if it has none."""
    ur, uc = _cells(unit_rc, labels.shape)
    out = np.repeat(labels[ur, uc][:, None], 9, axis=1)
    off = out[:, 0] == 0
    if off.any():
        out[off] = _around(labels, ur[off], uc[off])
    return out


def _around(labels: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``[N, 9]``: labels of the 3 x 3 neighbourhood of each cell (0 off the grid)."""
    R, C = labels.shape
    nr = r[:, None] + _DR
    nc = c[:, None] + _DC
    inside = (nr >= 0) & (nr < R) & (nc >= 0) & (nc < C)
    return np.where(inside, labels.ravel()[np.where(inside, nr * C + nc, 0)], 0)


def reachable_matrix(passable_mask: np.ndarray, unit_rc: np.ndarray, front_rc: np.ndarray,
                     front: np.ndarray | None = None,
                     labels: np.ndarray | None = None) -> np.ndarray:
    """``[U, K]`` bool: :func:`reachable_targets` for every unit and every front cell (the
    labels around units and fronts gathered once each, then compared pairwise)."""
    u = np.asarray(unit_rc, float).reshape(-1, 2)
    k = np.asarray(front_rc, float).reshape(-1, 2)
    if u.size == 0 or k.size == 0:
        return np.zeros((len(u), len(k)), bool)
    if labels is None:
        labels = crossable_labels(passable_mask, front)
    lab_u = _unit_labels(labels, u)  # [U, 9]
    lab_k = _around(labels, *_cells(k, labels.shape))  # [K, 9]
    match = (lab_u[:, None, :, None] == lab_k[None, :, None, :]) & (lab_u[:, None, :, None] > 0)
    return match.any(axis=(2, 3))


def reachable_any(labels: np.ndarray, unit_rc: np.ndarray, front_rc: np.ndarray) -> np.ndarray:
    """``[K]`` bool: front cells some unit can reach (:func:`reachable_matrix` ``.any(axis=0)``,
    by one set lookup of the units' labels instead of a ``[U, K]`` matrix)."""
    u = np.asarray(unit_rc, float).reshape(-1, 2)
    k = np.asarray(front_rc, float).reshape(-1, 2)
    if u.size == 0 or k.size == 0:
        return np.zeros(len(k), bool)
    lab_u = _unit_labels(labels, u)
    lab_k = _around(labels, *_cells(k, labels.shape))
    return np.isin(lab_k, lab_u[lab_u > 0]).any(axis=1)


def allocate_units(unit_rc: np.ndarray, unit_strength: np.ndarray, front_rc: np.ndarray,
                   front_need: np.ndarray, reachable: np.ndarray,
                   dist_scale: float = 20.0) -> np.ndarray:
    """GeoSim-style global allocation: the front (index into ``front_rc``) chosen for each
    unit, -1 for units kept in reserve (no reachable front with need left).

    ``unit_rc`` ``[U, 2]``, ``unit_strength`` ``[U]`` fighters; ``front_rc`` ``[K, 2]``,
    ``front_need`` ``[K]`` fighters still wanted there; ``reachable`` ``[U, K]`` bool.
    Greedy over units (at most U rounds, each vectorised over all unit-front pairs): the pair
    with the highest ``need / (1 + d / dist_scale)`` is assigned and the front's need falls by
    the unit's strength.  Deterministic (ties go to the lower unit, then front index).
    """
    u = np.asarray(unit_rc, float).reshape(-1, 2)
    k = np.asarray(front_rc, float).reshape(-1, 2)
    choice = np.full(len(u), -1, np.int64)
    if len(u) == 0 or len(k) == 0:
        return choice
    d = np.hypot(u[:, None, 0] - k[None, :, 0], u[:, None, 1] - k[None, :, 1])
    damp = 1.0 / (1.0 + d / dist_scale)
    need = np.asarray(front_need, float).copy()
    free = np.ones(len(u), bool)
    reach = np.asarray(reachable, bool)
    strength = np.asarray(unit_strength, float)
    for _ in range(len(u)):
        score = np.where(reach & free[:, None] & (need[None, :] > 0), need[None, :] * damp, -np.inf)
        j = int(np.argmax(score))
        i, kk = divmod(j, len(k))
        if not np.isfinite(score[i, kk]):
            break
        choice[i] = kk
        free[i] = False
        need[kk] -= strength[i]
    return choice


def share_units_stuck(has_target: np.ndarray, at_target: np.ndarray, reachable: np.ndarray,
                      moved: np.ndarray) -> float:
    """Share of units with a target not yet reached that cannot reach it or did not move:
    ``#(T & ~A & (~R | ~M)) / #(T & ~A)`` (0 when no unit is under way).  All ``[U]`` bool."""
    under_way = np.asarray(has_target, bool) & ~np.asarray(at_target, bool)
    n = int(under_way.sum())
    if n == 0:
        return 0.0
    stuck = under_way & (~np.asarray(reachable, bool) | ~np.asarray(moved, bool))
    return float(stuck.sum()) / n
