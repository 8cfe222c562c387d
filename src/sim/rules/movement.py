"""Movement of armed forces: target planning, path choice, road moves and retreat.

Sources: Cederman (1997), *Emergent Actors in World Politics* (GeoSim: states attack where
the local power ratio exceeds a threshold and the ground is worth having); the unit-level
movement follows the usual wargame abstraction of a weekly movement budget spent on the
movement cost of the cells crossed (Dupuy 1987, *Understanding War*, on advance rates).

Units: positions in fractional cells (row 0 = north), speeds in cells per week, costs in
multiples of a cell of open ground.  All functions are pure: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

from ..grid import KM_PER_DEG
from .control import UNGOVERNED
from .spatial import box_mean, dilate8, label8, mask_box, owner_lookup, window_size

HEADINGS_DEG = (0.0, 30.0, -30.0, 60.0, -60.0, 90.0, -90.0)
RETREAT_KM = 17.0  # fighters retreat up to ~17 km into own ground (three 0.05-degree cells)
RETREAT_WINDOW = window_size(RETREAT_KM, 0.05 * KM_PER_DEG)  # the retreat window in 0.05-degree cells (7)
TARGET_REACH_KM = 2 * 0.05 * KM_PER_DEG  # an HQ plans on ground within ~11 km of its own (two 0.05-degree cells)


# ------------------------------------------------------------------ target planning
def target_cells(f: int, owner: np.ndarray, occupied: np.ndarray, allowed: np.ndarray,
                 hostility: np.ndarray, offensive_hostility: float, box=None,
                 reach_cells: int = 2) -> np.ndarray:
    """Flat indices of the cells faction ``f`` may attack: within ``reach_cells`` cells of its
    ground or units (:data:`TARGET_REACH_KM` on every grid, :func:`target_reach`), where it
    may hold ground, held by a faction it is at war with (``hostility >=
    offensive_hostility``) or ungoverned.  ``box`` (optional): the box of its ground and units
    plus ``reach_cells``, if the caller knows it (:func:`target_box`)."""
    if box is None:
        # only the box of its ground and units plus the reach can hold a target
        box = mask_box((owner == f) | occupied, margin=reach_cells)
        if box is None:
            return np.zeros(0, np.intp)
    r0, c0, C = box[0].start, box[1].start, owner.shape[1]
    own = owner[box] == f
    reach = own | occupied[box]
    for _ in range(reach_cells):
        reach = dilate8(reach)
    # by owner code (OUTSIDE -2, UNGOVERNED -1, factions): a table lookup per cell
    tab = np.concatenate([[False, True], np.asarray(hostility[f]) >= offensive_hostility])
    ok = reach & allowed[box] & ~own & owner_lookup(tab, owner, box)
    r, c = np.nonzero(ok)
    return (r + r0) * C + (c + c0)


def target_reach(cell_km: float) -> int:
    """Cells of :data:`TARGET_REACH_KM` on a grid of ``cell_km`` cells, at least one: 1 at 0.1
    degrees, 2 at 0.05, 4 at 0.025 (issue 14.5: a reach of two cells was 5.6 km at 0.025
    degrees, too short for the ISF at Tal Afar's jump-off line to see the town)."""
    return max(int(round(TARGET_REACH_KM / cell_km)), 1)


def target_box(own_box, rows: np.ndarray, cols: np.ndarray, shape, margin: int = 2):
    """``mask_box(own | occupied, margin)`` of :func:`target_cells` from the box of the
    faction's ground (``own_box``, slices or None) and its units' cells ``(rows, cols)``
    (negative ones counted from the end, as indexing does), without scanning the grid."""
    R, C = shape
    rows, cols = np.where(rows < 0, rows + R, rows), np.where(cols < 0, cols + C, cols)
    lo_r, hi_r = ([own_box[0].start], [own_box[0].stop]) if own_box is not None else ([], [])
    lo_c, hi_c = ([own_box[1].start], [own_box[1].stop]) if own_box is not None else ([], [])
    if rows.size:
        lo_r, hi_r = lo_r + [int(rows.min())], hi_r + [int(rows.max()) + 1]
        lo_c, hi_c = lo_c + [int(cols.min())], hi_c + [int(cols.max()) + 1]
    if not lo_r:
        return None
    return (slice(max(min(lo_r) - margin, 0), min(max(hi_r) + margin, R)),
            slice(max(min(lo_c) - margin, 0), min(max(hi_c) + margin, C)))


def target_scores(idx: np.ndarray, owner_at: np.ndarray, mass: float, presence: np.ndarray,
                  enemy: np.ndarray, value: np.ndarray, need: np.ndarray,
                  hostility_f: np.ndarray) -> np.ndarray:
    """GeoSim score of candidate cells ``idx`` (flat): ``value * min(ratio, 3) * w`` with the
    power ratio ``(mass + own presence) / (enemy presence + 1) / need``, where ``need`` is the
    faction's ``attack_ratio`` times the defender's terrain advantage and ``w`` the hostility
    to the holder (1.5 for ungoverned ground).  Unfeasible targets (ratio < 1) are put off
    (x 0.05); ungoverned ground always tempts."""
    ratio = (mass + presence.ravel()[idx]) / (enemy.ravel()[idx] + 1.0) / need
    vacuum = owner_at == UNGOVERNED
    hostility = np.where(vacuum, 1.0, hostility_f[np.maximum(owner_at, 0)])
    score = value.ravel()[idx] * np.minimum(ratio, 3.0) * np.where(vacuum, 1.5, hostility)
    return np.where((ratio >= 1.0) | vacuum, score, score * 0.05)


def assign_objectives(rows: np.ndarray, cols: np.ndarray, prev: np.ndarray, top: np.ndarray,
                      score: np.ndarray, width: int, speed_cells: float) -> np.ndarray:
    """Objective cell ``[unit, (row, col)]`` of each unit, in order: the best of the ``top``
    cells (flat) by ``score / (1 + distance / speed)``, doubled for the unit's previous
    objective ``prev`` (commitment); each pick scales that cell's score by 0.6, spreading
    units over fronts while big objectives still draw several."""
    tr, tc = np.divmod(top, width)
    s_left = score.copy()
    out = np.zeros((len(rows), 2))
    # distance discounts and commitments of every unit at once (the same values per element)
    den = 1.0 + np.hypot(tr[None] - np.asarray(rows)[:, None], tc[None] - np.asarray(cols)[:, None]) \
        / max(speed_cells, 1.0)
    pr = np.round(prev[:, :1]).astype(np.int64)  # round half to even, as round()
    pc = np.round(prev[:, 1:2]).astype(np.int64)
    # x 2 for the previous objective, x 1 elsewhere: exact, like np.where(keep, 2 * s, s)
    twice = np.where((tr[None] == pr) & (tc[None] == pc), 2.0, 1.0)
    for k in range(len(rows)):
        j = int(np.argmax(s_left / den[k] * twice[k]))
        out[k] = (tr[j], tc[j])
        s_left[j] *= 0.6
    return out


def stage_objectives(targets: np.ndarray, barred: np.ndarray, standable: np.ndarray,
                     sampling=(1.0, 1.0)) -> np.ndarray:
    """Objectives ``[U, 2]`` (fractional cells) on ``barred`` ground (``[R, C]`` bool: the
    main effort of an offensive not yet launched, which the faction may not attack yet) are
    moved to the nearest ``standable`` cell (ground it may stand on), distances in km with
    ``sampling`` = (km per row, km per column): the units mass at the jump-off line and wait
    for the launch.  Other objectives are kept; returned as a new array."""
    out = np.array(targets, np.float64, copy=True)
    if not barred.any() or not standable.any() or out.size == 0:
        return out
    r = np.clip(np.rint(out[:, 0]).astype(np.int64), 0, barred.shape[0] - 1)
    c = np.clip(np.rint(out[:, 1]).astype(np.int64), 0, barred.shape[1] - 1)
    hit = barred[r, c]
    if not hit.any():
        return out
    from scipy import ndimage

    near = ndimage.distance_transform_edt(~standable, sampling=sampling, return_distances=False,
                                          return_indices=True)
    out[hit, 0] = near[0, r[hit], c[hit]]
    out[hit, 1] = near[1, r[hit], c[hit]]
    return out


# ------------------------------------------------------------------ path choice
def heading_paths(r0, c0, tr, tc, budget, shape):
    """Sampled paths along the straight heading and detours of +-30, 60 and 90 degrees:
    fractional positions ``(pr, pc)`` and clipped cells ``(ri, ci)``, each ``[unit, heading,
    sample]`` at one-cell spacing.  The straight heading stops at the target."""
    dist = np.hypot(tr - r0, tc - c0)
    m = int(np.ceil(budget.max())) + 1
    angles = np.deg2rad(np.array(HEADINGS_DEG))
    head = np.arctan2(tr - r0, tc - c0)[:, None] + angles[None, :]
    steps = np.arange(1, m + 1)[None, None, :].astype(float)
    length = np.where(angles[None, :, None] == 0.0, np.minimum(steps, dist[:, None, None]), steps)
    pr = r0[:, None, None] + np.sin(head)[:, :, None] * length
    pc = c0[:, None, None] + np.cos(head)[:, :, None] * length
    ri = np.clip(np.rint(pr).astype(np.int64), 0, shape[0] - 1)
    ci = np.clip(np.rint(pc).astype(np.int64), 0, shape[1] - 1)
    return pr, pc, ri, ci


def passable(ri, ci, faction, budget, movement_cost, owner, allowed, hostility,
             offensive_hostility):
    """``[unit, heading, sample]``: the unit can reach the sample this week.  It spends its
    budget on the cumulative movement cost; it may enter the first cell of an enemy it is at
    war with but not go beyond it; it never enters ground its faction may not hold nor ground
    of a faction it only skirmishes with; a path stops at its first blocked sample."""
    cost = np.cumsum(movement_cost[ri, ci], axis=2)
    fac = faction[:, None, None]
    own = owner[ri, ci]
    h = hostility[fac, np.where(own >= 0, own, 0)] * (own >= 0)
    war = h >= offensive_hostility
    ok = (cost <= budget[:, None, None]) & allowed[fac, ri, ci] & ~((h > 0) & ~war)
    ok &= ~(np.cumsum(war, axis=2) - war > 0)
    return np.cumprod(ok, axis=2).astype(bool)


def tactical_moves(r0, c0, tr, tc, faction, budget, movement_cost, owner, allowed, hostility,
                   offensive_hostility):
    """New positions ``(row, col)`` of units moving toward targets ``(tr, tc)``: of the
    straight heading and the detours, the reachable end point nearest the target (ties: the
    straighter); a unit that cannot get closer stays.  Obstacles (lakes, a deconfliction
    line, a neutral enclave) are walked around."""
    shape = owner.shape
    pr, pc, ri, ci = heading_paths(r0, c0, tr, tc, budget, shape)
    ok = passable(ri, ci, faction, budget, movement_cost, owner, allowed, hostility,
                  offensive_hostility)
    n_ok = ok.sum(axis=2)
    j = np.maximum(n_ok - 1, 0)
    n_h = len(HEADINGS_DEG)
    u_idx, h_idx = np.arange(len(r0))[:, None], np.arange(n_h)[None, :]
    # a heading may run off the map: positions stay on the grid
    end_r = np.clip(np.where(n_ok > 0, pr[u_idx, h_idx, j], r0[:, None]), 0, shape[0] - 1)
    end_c = np.clip(np.where(n_ok > 0, pc[u_idx, h_idx, j], c0[:, None]), 0, shape[1] - 1)
    left = np.hypot(tr[:, None] - end_r, tc[:, None] - end_c) + 1e-6 * np.arange(n_h)[None, :]
    best = np.argmin(left, axis=1)
    rows = np.arange(len(r0))
    better = left[rows, best] < np.hypot(tr - r0, tc - c0) - 1e-9
    return (np.where(better, end_r[rows, best], r0), np.where(better, end_c[rows, best], c0))


# ------------------------------------------------------------------ road moves
def road_moves(own: np.ndarray, rows: np.ndarray, cols: np.ndarray, targets: np.ndarray,
               speed: float, road_factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strategic redeployment by road through held ground (``own``) for units at fractional
    ``(rows, cols)`` standing on it: a unit whose objective is beyond a week's tactical move
    jumps to the edge cell of its own connected piece of ground nearest its objective, if
    that is within ``road_factor * speed`` cells and gains more than a tactical move.
    Returns ``(moved, new_rows, new_cols)``."""
    R, C = own.shape
    moved = np.zeros(len(rows), bool)
    new_r, new_c = rows.copy(), cols.copy()
    labels, _, (rs, cs) = label8(own, with_box=True)
    # own cells on the edge of own ground, found in its box plus one cell (row-major order)
    r0, c0 = max(rs.start - 1, 0), max(cs.start - 1, 0)
    sub = own[r0:rs.stop + 1, c0:cs.stop + 1]
    cr, cc = np.nonzero(sub & dilate8(~sub))
    cr, cc = cr + r0, cc + c0
    lab = labels[cr, cc]
    ri, ci = np.rint(rows).astype(np.int64), np.rint(cols).astype(np.int64)
    for u in range(len(rows)):
        du = np.hypot(cr - rows[u], cc - cols[u])
        ok = (lab == labels[ri[u], ci[u]]) & (du <= road_factor * speed)
        if not ok.any():
            continue
        d_t = np.where(ok, np.hypot(cr - targets[u, 0], cc - targets[u, 1]), np.inf)
        j = int(np.argmin(d_t))
        if d_t[j] < np.hypot(targets[u, 0] - rows[u], targets[u, 1] - cols[u]) - speed:
            new_r[u], new_c[u] = float(cr[j]), float(cc[j])
            moved[u] = True
    return moved, new_r, new_c


def strategic_moves(rows: np.ndarray, cols: np.ndarray, targets: np.ndarray, faction: np.ndarray,
                    alive: np.ndarray, owner: np.ndarray, speed_cells: np.ndarray,
                    road_factor: float) -> np.ndarray:
    """Road moves of all live units (:func:`road_moves`) that stand on their faction's
    ground with an objective beyond a week's tactical move (``speed_cells[f]``).  Edits
    ``rows`` and ``cols`` in place; returns which units moved (they do not move again this
    week)."""
    moved = np.zeros(len(rows), bool)
    if road_factor <= 0:
        return moved
    R, C = owner.shape
    r, c = np.clip(np.rint(rows).astype(np.int64), 0, R - 1), np.clip(np.rint(cols).astype(np.int64), 0, C - 1)
    for f in range(len(speed_cells)):
        sel = np.flatnonzero(alive & (faction == f))
        if sel.size == 0:
            continue
        speed = speed_cells[f]
        far = np.hypot(targets[sel, 0] - rows[sel], targets[sel, 1] - cols[sel]) > speed
        own = owner == f
        sel = sel[far & own[r[sel], c[sel]]]
        if sel.size:
            moved[sel], rows[sel], cols[sel] = road_moves(own, rows[sel], cols[sel], targets[sel],
                                                          speed, road_factor)
    return moved


# ------------------------------------------------------------------ retreat
def retreat(garrison: np.ndarray, own: np.ndarray, loss_fraction: float,
            underground_share: float = 0.0, trapped_hide: float = 0.0,
            window: float = RETREAT_WINDOW):
    """Fighters on cells their faction no longer holds (``garrison > 0 & ~own``).

    A share ``underground_share`` (scalar or per cell) goes to ground where it stands (ISIS); of the rest,
    ``loss_fraction`` is lost on the way, and survivors with own ground within ``RETREAT_KM``
    spread over the own cells of their ``window`` (7 x 7 cells of 0.05 degrees; the same km on
    every grid, :func:`sim.rules.spatial.window_side`) (the adjoint of the local mean, so every
    fighter lands); those with no own ground in reach are a pocket wiped out, of whom
    ``trapped_hide`` go to ground.  Returns ``(new_garrison, hidden, hidden_trapped,
    killed)``: ``new_garrison`` is 0 on lost cells, ``hidden`` and ``hidden_trapped`` the
    fighters gone to ground per cell (zeros when none) and ``killed`` the total lost; ``None`` if no
    cell was lost."""
    lost = (garrison > 0) & ~own
    if not lost.any():
        return None
    out = garrison.copy()
    gar = np.where(lost, garrison, 0.0)
    out[lost] = 0.0
    hidden = hidden_trapped = np.zeros_like(gar)
    if np.any(np.asarray(underground_share) > 0):
        hidden = (gar * underground_share).astype(gar.dtype, copy=False)
        gar = gar - hidden
    dead = gar * loss_fraction
    gar = gar - dead
    share = box_mean(own[None].astype(np.float32), window)[0]
    trapped = np.where(share > 0, 0.0, gar)
    gar = gar - trapped
    if gar.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            density = np.where(share > 0, gar / share, 0.0)
        out += (box_mean(density[None].astype(np.float32), window)[0] * own).astype(np.float32)
    dead = dead + trapped
    if trapped_hide > 0:
        hidden_trapped = trapped * trapped_hide
        dead = dead - hidden_trapped
    return out, hidden, hidden_trapped, float(dead.sum())
