"""Control of cells: capture by local force ratio, vacancy and the race for ungoverned cells,
and Kalyvas' control levels.

Sources: S. N. Kalyvas (2006), *The Logic of Violence in Civil War*, ch. 7 (zones of full and
dominant control and contested zones); Cederman (1997) GeoSim (territory changes when local
power ratios exceed a threshold).  The force ratio to take a held cell (``capture_ratio``,
default 2) follows the attacker:defender rule of thumb at the tactical level; an ungoverned
cell goes to whoever holds it with the most force (the race to fill the vacuum).

Codes: ``owner >= 0`` faction index, ``UNGOVERNED = -1``, ``OUTSIDE = -2`` (never changes).
Levels: 0 none/outside, 1 full, 2 dominant, 3 contested.
"""

from __future__ import annotations

import numpy as np

from .spatial import argmax0, owner_layer

UNGOVERNED = -1  # controller code of a theatre cell nobody holds
OUTSIDE = -2  # controller code of a cell outside the theatre (other countries, sea, lakes)
LEVEL_NONE, LEVEL_FULL, LEVEL_DOMINANT, LEVEL_CONTESTED = 0, 1, 2, 3


def update_control(owner: np.ndarray, presence: np.ndarray, hostile: np.ndarray,
                   allowed: np.ndarray, capture_ratio: float | None, hold_min: np.ndarray,
                   jitter: np.ndarray | None = None, defence: np.ndarray | None = None,
                   may_vacate: np.ndarray | None = None, race: np.ndarray | None = None) -> np.ndarray:
    """New owner of every cell.

    ``presence[f, r, c]``: force each faction projects on the cell; ``hostile[f, g]``: bool,
    f and g fight; ``allowed[f, r, c]``: f may hold the cell (country, deconfliction);
    ``hold_min[f]`` or ``hold_min[f, cell]``: presence f needs to hold a cell (the model scales
    it with the cell's population: empty desert is held with a few fighters, a city is not);
    ``defence[cell]`` (>= 1): the defender's terrain advantage (urban areas), multiplying the
    ratio an attacker needs; ``may_vacate[cell]``: the holder has been below its hold level
    long enough for the cell to fall vacant (``vacancy_weeks``; default: at once).

    1. *Vacancy*: a held cell whose owner's presence falls below its ``hold_min`` becomes
       ungoverned.
    2. *Capture*: the strongest allowed challenger hostile to the owner takes a held cell
       when its presence is at least ``capture_ratio`` times the presence of the owner and
       the owner's non-hostile partners, and at least its own ``hold_min``.
    3. *Race*: an ungoverned cell goes to the allowed faction with the largest presence, if
       that is at least its ``hold_min``.

    ``race`` (bool per cell, optional): the ungoverned cells that may be claimed this week
    (:func:`race_gate`).  ``jitter`` (same shape as presence, tiny) breaks exact ties at
    random.  Works on any
    trailing shape (the model passes only the cells where control can change).
    """
    n_f, shape = presence.shape[0], owner.shape
    owner = owner.reshape(-1)
    p = presence.reshape(n_f, -1)
    if jitter is not None:
        p = p + jitter.reshape(n_f, -1)
    allowed = allowed.reshape(n_f, -1)
    theatre = owner != OUTSIDE
    hm = np.broadcast_to(hold_min.reshape(n_f, -1), p.shape)
    can_hold = allowed & (p >= hm)

    held = owner >= 0
    own_idx, cols = np.where(held, owner, 0), np.arange(owner.size)
    vacant = held & (p[own_idx, cols] < hm[own_idx, cols])
    if may_vacate is not None:
        vacant &= may_vacate.reshape(-1)
    new = np.where(vacant, UNGOVERNED, owner)

    # capture of held cells (None: the caller judges captures, e.g. rules.assault)
    if capture_ratio is not None:
        held = new >= 0
        own_idx = np.where(held, new, 0)
        hostile_to_owner = hostile[:, own_idx]  # [g, n]
        friendly_p = np.where(hostile_to_owner, 0.0, p).sum(axis=0)
        best, best_p = argmax0(np.where(hostile_to_owner & can_hold, p, -1.0))
        need = capture_ratio * friendly_p
        if defence is not None:
            need = need * defence.reshape(-1)
        captured = held & (best_p >= 0) & (best_p >= need)
        new = np.where(captured, best, new)

    # race for ungoverned cells
    free = (new == UNGOVERNED) & theatre
    if race is not None:
        free &= race.reshape(-1)
    winner, win_p = argmax0(np.where(can_hold, p, -1.0))
    new = np.where(free & (win_p >= 0), winner, new)
    return new.astype(np.int8).reshape(shape)


def race_gate(jitter: np.ndarray, share: float, scale: float = 1e-3) -> np.ndarray | None:
    """Which ungoverned cells the race may fill this week: each with probability ``share``
    (the 0.05-degree cell's side over this grid's, at most 1), from the tie-break ``jitter``
    (uniform on ``[0, scale)``; its first layer), so that an empty frontier the garrisons'
    one-cell reach fills advances ``share`` cells a week, about 5.6 km, on a coarse grid as on
    the 0.05-degree grid, not 11 km a week on 0.1-degree cells (issue 14.5).  None (no gate)
    where ``share >= 1``."""
    if share >= 1.0:
        return None
    return jitter[0] < scale * share


def control_levels(owner: np.ndarray, presence: np.ndarray, fighting: np.ndarray,
                   full_share: float, dominant_share: float,
                   extra: np.ndarray | None = None) -> np.ndarray:
    """Kalyvas levels: the owner's share of all presence in the cell (hidden insurgents
    included) >= ``full_share`` -> full, >= ``dominant_share`` -> dominant, else contested;
    any fighting in the cell this step makes it contested.  Ungoverned cells with anyone
    present are contested, empty ones have no level.  ``extra`` ``[R, C]`` (optional): presence
    held by no faction (hidden insurgents), counted in the total as a last layer would be."""
    held = owner >= 0
    total = presence.sum(axis=0)  # layer by layer, in order
    if extra is not None:
        total = total + extra
    own_p = owner_layer(presence, owner)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, own_p / total, 1.0)
    level = np.full(owner.shape, LEVEL_NONE, np.int8)
    level[held & (share >= full_share)] = LEVEL_FULL
    level[held & (share < full_share) & (share >= dominant_share)] = LEVEL_DOMINANT
    level[held & (share < dominant_share)] = LEVEL_CONTESTED
    level[(owner == UNGOVERNED) & (total > 0)] = LEVEL_CONTESTED
    level[held & fighting] = LEVEL_CONTESTED
    return level


def initial_control_voronoi(seeds_row: np.ndarray, seeds_col: np.ndarray, seeds_code: np.ndarray,
                            seeds_country: np.ndarray, country: np.ndarray, theatre: np.ndarray,
                            row_scale: float = 1.0, col_scale: float = 1.0) -> np.ndarray:
    """Owner of each theatre cell = controller of the nearest seed place in the same country
    (a Voronoi assignment per country, as the data's check map draws it)."""
    from scipy import ndimage

    owner = np.full(country.shape, OUTSIDE, np.int8)
    owner[theatre] = UNGOVERNED
    for c in np.unique(seeds_country):
        sel = seeds_country == c
        seed_map = np.ones(country.shape, bool)
        ok = (seeds_row[sel] >= 0) & (seeds_row[sel] < country.shape[0]) & \
             (seeds_col[sel] >= 0) & (seeds_col[sel] < country.shape[1])
        rr, cc, code = seeds_row[sel][ok], seeds_col[sel][ok], seeds_code[sel][ok]
        if rr.size == 0:
            continue
        seed_map[rr, cc] = False
        code_map = np.full(country.shape, UNGOVERNED, np.int16)
        code_map[rr, cc] = code
        _, (ir, ic) = ndimage.distance_transform_edt(seed_map, sampling=(row_scale, col_scale),
                                                     return_indices=True)
        m = theatre & (country == c)
        owner[m] = code_map[ir[m], ic[m]]
    return owner


def control_candidates(owner: np.ndarray, presence: np.ndarray, hold_min: np.ndarray,
                       hold_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat cells where control can change (the holder is below its hold level, someone else
    is present, or nobody holds it and someone is there), and which held cells are below
    their holder's hold level (counted toward ``vacancy_weeks``)."""
    held = owner >= 0
    oi = np.maximum(owner, 0)
    own_p = owner_layer(presence, owner)
    total = presence.sum(axis=0)
    weak = own_p < hold_min[oi] * hold_scale
    active = (owner != OUTSIDE) & ((held & (weak | (total - own_p > 0)))
                                   | (owner == UNGOVERNED) & (total > 0))
    idx = np.flatnonzero(active)
    below = np.zeros(owner.size, bool)
    below[idx] = held[idx] & weak[idx]
    return idx, below
