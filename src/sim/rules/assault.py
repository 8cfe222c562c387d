"""Assault: capture of held cells judged over a sector, so that towns can be taken.

A held cell ``x`` with owner ``o`` is taken by the strongest challenger ``c`` at war with
``o`` when, over the *sector* of ``x`` (the cell and its 8 neighbours),

    S_c(x) >= ratio * defence(x) * sum_{g not hostile to o} S_g(x)
    and P_c(x) >= hold_min_c(x)

with ``S_g(x) = sum_{y in 3x3(x)} P_g(y)`` the sector presence (fighters, after the caller's
frontage cap) and ``P_c(x)`` the challenger's presence on the cell itself (it must stand on the
cell, so a front does not jump over a cell it does not occupy).  The sum on the right covers
the owner and every faction not hostile to it (partners defend together).  ``defence(x) >= 1``
is the urban defence factor (``1 + urban_defence * urban index``, times any holdout factor of
:mod:`sim.rules.holdouts`); it counts *here only*, once, and not again as a loss shield or in
the capture threshold of :func:`sim.rules.control.update_control`.

Units: presence in fighters; ``ratio`` and ``defence`` dimensionless.

Source: J. J. Mearsheimer (1989), "Assessing the conventional balance: the 3:1 rule and its
critics", *International Security* 13(4): 54-89 -- an attacker needs about 3:1 superiority
*at the point of attack* (a sector, not the whole front) to win against a prepared defence;
higher in cities.  Concentration over a sector is what lets a concentrated offensive take a
city (Mosul 2016-17, Raqqa 2017, Eastern Ghouta 2018) and a thin one not.

Codes as in :mod:`sim.rules.control`: ``owner >= 0`` faction index, ``UNGOVERNED = -1``,
``OUTSIDE = -2``.
"""

from __future__ import annotations

import numpy as np

from .spatial import argmax0, box_sum3


def urban_index(pop: np.ndarray, area_factor: float) -> np.ndarray:
    """Urban index per cell, 0 (desert) .. 1 (city): ``clip(log10(n / 1000) / 2, 0, 1)`` with
    ``n`` the people per 0.05-degree cell's worth of area (``pop / area_factor``), so a town
    has the same index on every grid (1 from 100,000 people per ~30 km2).  From people per
    cell, a 0.1-degree cell (four times the area) scored 0.3 higher and the holdout mask of
    urban cells covered five times the ground."""
    n = np.maximum(np.asarray(pop, np.float64) / area_factor, 1.0)
    return np.clip(np.log10(n / 1000.0) / 2.0, 0.0, 1.0)


def sector_presence(presence: np.ndarray) -> np.ndarray:
    """``S[f, r, c]``: presence of each faction summed over the 3 x 3 sector around each cell
    (zero outside the grid), float64."""
    return box_sum3(presence.astype(np.float64))


def _contested(owner: np.ndarray, p: np.ndarray, hostile: np.ndarray, allowed: np.ndarray,
               hold_min: np.ndarray, cells: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, cand)``: the contested cells (flat, ascending) and ``cand[g, k]``, whether ``g``
    is a candidate challenger there (:func:`sector_odds`); computed on ``cells`` only if given."""
    n_f = p.shape[0]
    flat_owner = owner.ravel() if cells is None else owner.ravel()[cells]
    held = flat_owner >= 0
    own_idx = np.where(held, flat_owner, 0).astype(np.int64)
    hm = np.asarray(hold_min, p.dtype)
    hm = hm.reshape(n_f, 1) if hm.ndim == 1 else hm.reshape(n_f, -1)
    pk = p.reshape(n_f, -1) if cells is None else p.reshape(n_f, -1)[:, cells]
    ak = allowed.reshape(n_f, -1) if cells is None else allowed.reshape(n_f, -1)[:, cells]
    cand = ak & (pk >= hm) & (pk > 0) & hostile[:, own_idx] & held[None]  # [g, K]
    sel = np.flatnonzero(cand.any(axis=0))
    return (sel if cells is None else cells[sel]), cand[:, sel]


def _sector_sums(pf: np.ndarray, r: np.ndarray, c: np.ndarray, R: int, C: int) -> np.ndarray:
    """``[F, K]`` float64: the 3 x 3 sums of ``pf`` (``[F, R * C]``) around cells ``(r, c)``,
    neighbours added in raster order (zero off the grid)."""
    sec = np.zeros((pf.shape[0], r.size))
    for dr in (-1, 0, 1):
        rr = r + dr
        ok_r = (rr >= 0) & (rr < R)
        base = np.minimum(np.maximum(rr, 0), R - 1) * C
        for dc in (-1, 0, 1):
            cc = c + dc
            ok = ok_r & (cc >= 0) & (cc < C)
            v = pf.take(base + np.minimum(np.maximum(cc, 0), C - 1), axis=1)
            sec += v if ok.all() else np.where(ok, v, 0.0)
    return sec


def sector_odds(owner: np.ndarray, presence: np.ndarray, hostile: np.ndarray,
                allowed: np.ndarray, hold_min: np.ndarray,
                jitter: np.ndarray | None = None,
                cells: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sector contest of every contested cell: ``(challenger, attack, defend)``, ``[R, C]``.

    ``owner[r, c]`` int; ``presence[f, r, c]`` fighters; ``hostile[f, g]`` bool: f may attack
    g's ground (at war); ``allowed[f, r, c]`` bool: f may hold the cell; ``hold_min`` ``[F]``
    or ``[F, R, C]``: presence f needs on the cell itself to take it; ``jitter`` (shape of
    presence, tiny, from the caller's stream) breaks exact ties.  ``cells`` (optional, flat,
    ascending): the only cells that may be contested (e.g. the fronts); then ``hold_min`` is
    ``[F]`` or ``[F, len(cells)]``.

    A cell is contested when it is held and some faction hostile to its owner, allowed on it,
    stands on it with at least its ``hold_min``.  There ``challenger`` is the one of those with
    the largest sector presence, ``attack`` its sector presence, and ``defend`` the sector
    presence of the owner and of every faction not hostile to the owner.  Elsewhere
    ``challenger = -1`` and ``attack = defend = 0``.  Sector sums are gathered for the
    contested cells only when they are few (the fronts), else taken from one box sum of the
    whole stack (in the presence dtype).
    """
    n_f = presence.shape[0]
    R, C = owner.shape
    p = presence if jitter is None else presence + jitter
    hostile = np.asarray(hostile, bool)
    challenger = np.full((R, C), -1, np.int64)
    attack = np.zeros((R, C))
    defend = np.zeros((R, C))
    idx, cand_k = _contested(owner, p, hostile, allowed, hold_min, cells)
    if idx.size == 0:
        return challenger, attack, defend
    r, c = np.divmod(idx, C)
    if idx.size * 16 > R * C:  # many contested cells: one box sum over the whole stack
        sec = box_sum3(p).reshape(n_f, -1)[:, idx].astype(np.float64)
    else:  # few: gather the 9 neighbours of each
        sec = _sector_sums(p.reshape(n_f, -1), r, c, R, C)
    best, best_s = argmax0(np.where(cand_k, sec, -1.0))
    friendly = ~hostile[:, np.maximum(owner.ravel()[idx], 0).astype(np.int64)]  # [g, k]
    challenger.ravel()[idx] = best
    attack.ravel()[idx] = best_s
    defend.ravel()[idx] = np.where(friendly, sec, 0.0).sum(axis=0)
    return challenger, attack, defend


def sector_capture(owner: np.ndarray, presence: np.ndarray, hostile: np.ndarray,
                   allowed: np.ndarray, hold_min: np.ndarray, defence: np.ndarray | None,
                   ratio: float, jitter: np.ndarray | None = None,
                   cells: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Which held cells fall to assault this step: ``(captured[R, C] bool, capturer[R, C])``.

    A held cell falls to its :func:`sector_odds` challenger ``c`` when
    ``attack >= ratio * defence * defend`` (see the module docstring); ``capturer`` is ``c``
    there and -1 elsewhere.  ``defence`` ``[R, C]`` (>= 1; None = 1 everywhere) is the only
    place the urban defence enters.  Cells with ``owner < 0`` never fall (the race for
    ungoverned cells is :func:`sim.rules.control.update_control`'s step 3).  ``cells``: as in
    :func:`sector_odds`.
    """
    challenger, attack, defend = sector_odds(owner, presence, hostile, allowed, hold_min, jitter,
                                             cells)
    need = ratio * defend
    if defence is not None:
        need = need * defence
    captured = (owner >= 0) & (challenger >= 0) & (attack >= need)
    return captured, np.where(captured, challenger, -1)


def apply_capture(owner: np.ndarray, captured: np.ndarray, capturer: np.ndarray) -> np.ndarray:
    """``owner`` with the captured cells handed to their capturer (a new int8 array)."""
    return np.where(captured, capturer, owner).astype(owner.dtype)


# ------------------------------------------------------------------------------ urban clearing
def clearing_depth(people: np.ndarray, defenders: np.ndarray, built_density: float,
                   defender_density: float) -> np.ndarray:
    """``[R, C]`` km of defended built-up ground an attacker must clear before the cell falls:

        B(x) = min(people(x) / built_density, defenders(x) / defender_density)     (km2)
        D(x) = sqrt(B(x))                                                          (km)

    ``people`` (the cell's people, 2017) gives the built-up area; ``defenders`` (the holder's
    fighters on the cell) bounds the part of it that is actually defended (a few hundred
    fighters hold a city's last quarter, not the whole city).  ``D`` is a depth: a town cut into
    ``k`` cells of ``B/k`` on a finer grid has ``sqrt(k)`` layers of ``sqrt(B/k)`` each to clear
    from one side, ``sqrt(B)`` in all, as on a coarse grid where it is one cell (one answer at
    every resolution).  Units: people, fighters, people / km2, fighters / km2."""
    b = np.minimum(np.maximum(np.asarray(people, np.float64), 0.0) / built_density,
                   np.maximum(np.asarray(defenders, np.float64), 0.0) / defender_density)
    return np.sqrt(b)


def clearing_capture(pressed: np.ndarray, odds: np.ndarray, cleared: np.ndarray,
                     depth: np.ndarray, rate: float, odds_cap: float,
                     slow: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One week of urban clearing: ``(falls[R, C] bool, cleared'[R, C])``.

    Where the attacker presses (``pressed``: the sector rule of :func:`sector_capture` holds)
    it advances ``v = rate x min(odds, odds_cap) / slow`` km this week (``odds = attack /
    (sector_ratio x defence x defend) >= 1``: a larger local superiority clears faster, as
    opposed advance rates rise with the force ratio; ``slow >= 1`` a fortification factor,
    :mod:`sim.rules.holdouts`).  The cell falls once the cleared depth reaches
    ``depth`` (:func:`clearing_depth`).  Where nobody presses, the cleared depth is kept (the
    ground cleared stays cleared) until the cell changes hands (the caller resets it)."""
    v = rate * np.minimum(np.maximum(odds, 1.0), odds_cap) / np.maximum(slow, 1.0)
    new = np.where(pressed, cleared + v, cleared)
    falls = pressed & (new >= depth)
    return falls, np.where(falls, 0.0, new)
