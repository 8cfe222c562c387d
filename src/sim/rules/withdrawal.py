"""Withdrawal without battle: a defender gives up hopeless ground outside its core.

For each faction ``f`` that may withdraw, a cell ``x`` it holds is *abandoned* when it is not
core ground of ``f`` and the sector odds against it are hopeless:

    H_f(x) >= withdraw_ratio * O_f(x)    and    H_f(x) > 0

with ``H_f(x) = sum_{g at war with f, g may hold x} sum_{y in 3x3(x)} P_g(y)`` the hostile sector
presence (an enemy kept out of ``x`` by a truce zone, a deconfliction line or a border is no
threat to it: Manbij under US protection, 2018)
and ``O_f(x) = sum_{y in 3x3(x)} P_f(y)`` the faction's own sector presence (fighters).
Abandoned cells become UNGOVERNED (the attacker takes them in the ordinary race of
:func:`sim.rules.control.update_control`), and the garrison of ``f`` on them falls back,
whole and without loss, to the nearest cell (Euclidean, with the grid's row/column spacing)
of the ground ``f`` keeps *in the same 8-connected piece of its own ground* (its line of
retreat): the piece's core cells if it keeps any, else all the cells it keeps there.  A piece
given up whole -- an encircled enclave, e.g. the regime's half of Daraa ringed by rebels --
does not withdraw: its garrison cannot walk away through the enemy, so it fights where it
stands (or surrenders under :mod:`sim.rules.sieges`).
Fighters are conserved exactly: ``sum(new garrison) == sum(old garrison)`` per faction (up to
float rounding of the dtype).

Units: presence and garrisons in fighters; ``withdraw_ratio`` dimensionless (hostile : own).

Limited wars (:func:`fall_back_limited`).  The side ``f`` that only defends in a limited war
gives up its non-core ground to its claimants ``C`` where, over a window reaching
``reach_km`` (the same km^2 on every grid, :func:`sim.rules.spatial.window_side`),

    M_C(x) >= limited_ratio * M_f(x)    and    M_C(x) > 0

with ``M`` the mean presence over the window (claimants allowed on ``x`` only); the garrison
falls back as above.  The reach in km, not a 3x3 sector of cells, sets how far ahead of the
claimant's forces the line moves each week, so the pace is the same on every grid.  Source:
the Peshmerga did not fight for the disputed territories in October 2017 but pulled back ahead
of the ISF and PMF columns (Kirkuk 16 Oct, Sinjar, Khanaqin, Tuz Khurmatu, Makhmur 17-18 Oct;
fighting only at Altun Kupri and Zummar, at the edge of the three governorates).

Source: the Peshmerga's withdrawal from Kirkuk and the disputed territories on 16-17 October
2017 without a battle, back to roughly the 2003 line (the KRG's three governorates Duhok,
Erbil, Sulaymaniyah; ~20% of KRG-held territory changed hands, aggregate_facts); Kirkuk was
given up facing a much larger ISF/PMF force.  The same logic (give up exposed ground, hold the
heartland) in the SDF's handing of Manbij-area positions to the regime in late 2018/2019.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .control import UNGOVERNED
from .spatial import box_mean, box_sum3, dilate8, label8, owner_boxes, sum3_at


def hopeless(owner: np.ndarray, presence: np.ndarray, war: np.ndarray, f: int,
             core: np.ndarray, withdraw_ratio: float,
             sector: np.ndarray | None = None, may_take: np.ndarray | None = None) -> np.ndarray:
    """``[R, C]`` bool: non-core cells of ``f`` where the hostile sector presence is at least
    ``withdraw_ratio`` times ``f``'s own (and positive).  ``sector`` (optional): the
    precomputed ``box_sum3(presence)`` in float64, shared across factions; ``may_take``
    (optional ``[F, R, C]`` bool): where each enemy may hold ground (see :func:`withdraw`)."""
    war = np.asarray(war, bool)
    enemies = np.flatnonzero(war[f])
    own = owner == f
    if enemies.size == 0 or not own.any():
        return np.zeros(owner.shape, bool)
    if sector is None:
        sector = box_sum3(presence.astype(np.float64))
    hostile = sector[enemies]
    if may_take is not None:  # an enemy that may not hold the cell is no threat to it
        hostile = hostile * may_take[enemies]
    hostile_sec = hostile[0].copy()
    for k in range(1, enemies.size):
        hostile_sec += hostile[k]
    own_sec = sector[f]
    return own & ~core & (hostile_sec > 0) & (hostile_sec >= withdraw_ratio * own_sec)


def withdraw(owner: np.ndarray, presence: np.ndarray, garrison: np.ndarray, war: np.ndarray,
             core: np.ndarray, withdraw_ratio: float, may_withdraw: np.ndarray | None = None,
             sampling: tuple[float, float] = (1.0, 1.0), inplace: bool = False,
             may_take: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply withdrawal for every faction: ``(new_owner, new_garrison, moved[F])``.

    ``owner[r, c]`` int; ``presence[g, r, c]`` and ``garrison[g, r, c]`` fighters;
    ``war[f, g]`` bool at war; ``core[f, r, c]`` bool core ground per faction;
    ``may_withdraw[f]`` bool (default all: a faction config may forbid it, e.g. ISIS fights to
    the end); ``sampling`` the (row, column) spacing in km for the nearest-cell search;
    ``inplace``: edit ``owner`` and ``garrison`` themselves (and return them) instead of copies;
    ``may_take[g, r, c]`` (optional, bool): where enemy ``g`` may hold ground -- an enemy kept
    out of a cell (a truce zone, a deconfliction line, another country) is no threat to it, so
    its presence there does not count toward the hopeless odds of that cell.
    Abandoned cells become UNGOVERNED in ``new_owner``; ``moved[f]`` counts the fighters that
    fell back.  Factions are handled in index order on the same owner map (one loop over
    factions).  Every computation of faction ``f`` is cropped to the bounding box of its ground
    (plus one cell for the 3x3 sector sums): the abandoned cells and every fall-back cell lie
    inside it, so the ``distance_transform_edt`` on the box is exact.  A withdrawal only turns
    ground of ``f`` UNGOVERNED, so the boxes taken before the loop stay valid.
    """
    n_f = garrison.shape[0]
    new_owner = owner if inplace else owner.copy()
    new_g = garrison if inplace else garrison.copy()
    moved = np.zeros(n_f)
    if may_withdraw is None:
        may_withdraw = np.ones(n_f, bool)
    war = np.asarray(war, bool)
    boxes = owner_boxes(owner, n_f)
    here = presence > 0
    for f in np.flatnonzero(may_withdraw):
        if boxes[f] is None or not war[f].any():
            continue
        rs, cs = boxes[f]
        own_sub = new_owner[rs, cs]
        gone = _hopeless_in_box(own_sub, presence, here, war, f, core[f][rs, cs], withdraw_ratio,
                                (rs.start, cs.start), may_take)
        if not gone.any():
            continue
        own = own_sub == f
        lab, n = label8(own)
        moved[f] = _fall_back(own, gone, core[f][rs, cs], new_g[f][rs, cs], sampling, lab)
        own_sub[gone & own & _retreat_line(own, gone, lab, n)] = UNGOVERNED
    return new_owner, new_g, moved


def _retreat_line(own: np.ndarray, gone: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """``[R, C]`` bool: own cells whose 8-connected piece of own ground (``lab``, ``n``: its
    8-connected labels) keeps some cell that is not given up -- the garrison has a line of
    retreat.  A piece given up whole (an encircled enclave) has none: it cannot walk away
    through the enemy and fights where it stands (or surrenders under :mod:`sim.rules.sieges`)."""
    keeps = np.bincount(lab[own & ~gone], minlength=n + 1) > 0
    keeps[0] = False
    return keeps[lab]


def _fall_back(own: np.ndarray, gone: np.ndarray, core: np.ndarray, gr: np.ndarray,
               sampling: tuple[float, float], lab: np.ndarray) -> float:
    """Move the garrison ``gr`` (edited in place) of the cells given up (``gone`` with a line
    of retreat) to the nearest kept cell of the same piece of own ground (``lab``: the
    8-connected labels of ``own``): its core cells there if any, else all its kept cells.
    Each piece is handled on its bounding box (every source and destination lies in it; the
    feature transform of a box holding every feature is the same, shifted).  A piece with no
    fighters on its given-up cells moves none.  Returns the fighters moved."""
    moved = 0.0
    ks = np.unique(lab[gone & own])
    boxes = ndimage.find_objects(lab, max_label=int(ks[-1])) if ks.size else []
    for k in ks:
        box = boxes[k - 1]
        piece = lab[box] == k
        g_sub, gone_sub = gr[box], gone[box]
        keep = piece & ~gone_sub
        dest = keep & core[box]
        if not dest.any():
            dest = keep
        if not dest.any():
            continue  # no line of retreat: it fights where it stands
        src = piece & gone_sub & (g_sub > 0)
        amount = g_sub[src]
        moved += float(amount.astype(np.float64).sum())
        g_sub[piece & gone_sub] = 0
        if amount.size:
            _, (ir, ic) = ndimage.distance_transform_edt(~dest, sampling=sampling,
                                                         return_indices=True)
            np.add.at(g_sub, (ir[src], ic[src]), amount)
    return moved


def _hopeless_in_box(own_sub: np.ndarray, presence: np.ndarray, here: np.ndarray,
                     war: np.ndarray, f: int, core_sub: np.ndarray, withdraw_ratio: float,
                     origin: tuple[int, int], may_take: np.ndarray | None = None) -> np.ndarray:
    """:func:`hopeless` on the box of ``f``'s ground (``own_sub`` the owner map there, its top
    left cell at ``origin``), bitwise equal to the whole-grid test: the float64 sector sums
    are taken only over the box of the non-core cells of ``f`` with enemy presence (``here``:
    presence > 0) in their 3x3 sector (the others have no hostile presence, so are never
    hopeless), and only for ``f`` and its enemies."""
    enemies = np.flatnonzero(war[f])
    (r0, c0), (h, w) = origin, own_sub.shape
    near = dilate8(here[enemies, max(r0 - 1, 0):r0 + h + 1, max(c0 - 1, 0):c0 + w + 1].any(axis=0))
    near = near[r0 - max(r0 - 1, 0):, c0 - max(c0 - 1, 0):][:h, :w]
    cand = (own_sub == f) & ~core_sub & near
    rr, cc = np.nonzero(cand)
    gone = np.zeros(own_sub.shape, bool)
    if rr.size == 0:
        return gone
    R, C = presence.shape[1:]
    a, b = max(rr.min() + r0 - 1, 0), min(rr.max() + r0 + 2, R)
    c, d = max(cc.min() + c0 - 1, 0), min(cc.max() + c0 + 2, C)
    sub = presence[np.append(enemies, f), a:b, c:d].astype(np.float64)
    sec = sum3_at(sub, rr + r0 - a, cc + c0 - c)  # exact: the box has a one-cell margin
    if may_take is not None:  # an enemy that may not hold the cell is no threat to it
        sec[:-1] *= may_take[enemies[:, None], (rr + r0)[None], (cc + c0)[None]]
    hostile_sec = sec[0].copy()
    for k in range(1, enemies.size):
        hostile_sec += sec[k]
    gone[rr, cc] = (hostile_sec > 0) & (hostile_sec >= withdraw_ratio * sec[-1])
    return gone


def fall_back_limited(owner: np.ndarray, presence: np.ndarray, garrison: np.ndarray, f: int,
                      claimants: np.ndarray, core: np.ndarray, ratio: float, side: float,
                      sampling: tuple[float, float] = (1.0, 1.0),
                      may_take: np.ndarray | None = None) -> float:
    """Faction ``f`` gives up to its ``claimants`` (int array of faction indices) the non-core
    cells (``core`` ``[R, C]``) where their mean presence over a ``side``-cell window
    (:func:`sim.rules.spatial.box_mean`; fractional sides keep the km^2) is at least ``ratio``
    times its own and positive (module docstring, "Limited wars").  ``may_take[g, r, c]``:
    where each claimant may hold ground (one barred from a cell is no threat to it).  Edits
    ``owner`` (cells given up become UNGOVERNED) and ``garrison[f]`` (falls back to the nearest
    kept cell of the same piece, as :func:`withdraw`) in place; returns the fighters moved."""
    own = owner == f
    claimants = np.asarray(claimants, np.intp)
    if not own.any() or claimants.size == 0:
        return 0.0
    hostile = presence[claimants].astype(np.float32)
    if may_take is not None:
        hostile = hostile * may_take[claimants]
    m_c = box_mean(hostile.sum(axis=0), side)
    m_f = box_mean(presence[f].astype(np.float32), side)
    gone = own & ~core & (m_c > 0) & (m_c >= ratio * m_f)
    if may_take is not None:  # a cell no claimant may hold is not given up to them
        gone &= may_take[claimants].any(axis=0)
    if not gone.any():
        return 0.0
    lab, n = label8(own)
    moved = _fall_back(own, gone, core, garrison[f], sampling, lab)
    owner[gone & _retreat_line(own, gone, lab, n)] = UNGOVERNED
    return moved
