"""Redeployment of holding forces: garrisons spreading over their ground, besieged pockets
evacuated by deal, garrisons seeded in captured cells, and units reinforced or disbanded.

Sources: the Syrian "reconciliation" and evacuation deals of 2016-18 (Aleppo, Homs, Eastern
Ghouta, Daraa; ISIS out of Raqqa and Yarmouk) for pocket evacuation; the garrison rules are
the model's own abstraction of a faction keeping its ground held in proportion to what is
worth holding (population, key places) while its manoeuvre units fight.

Units: fighters; windows in cells.  Functions are pure except where a docstring says they
edit an array in place (garrison views, for speed on the big grids).
"""

from __future__ import annotations

import numpy as np

from .control import UNGOVERNED
from .spatial import box_mean, dilate8, label8, window_means, zero_scratch

DRAW_LIMIT = 0.1  # replacements a unit may draw per week, share of its establishment
DISBAND_SHARE = 0.15  # a unit below this share of its establishment disbands
DRAW_COVER = 3.0  # garrisons must hold more than this many times the draw to give it


def garrison_targets(garrison: np.ndarray, own: np.ndarray, weights: np.ndarray,
                     window: int) -> np.ndarray:
    """Where garrisons want to be after a week's local moves (``window`` cells, a week's
    march): each own cell gets its weight times the local fighters per weight,
    ``w * mean(g) / mean(w)`` over the window."""
    local = box_mean(np.stack([garrison * own, weights]), window)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(local[1] > 0, weights * local[0] / local[1], 0.0)


def station_weights(station_w: np.ndarray, own: np.ndarray, enemy_held: np.ndarray) -> np.ndarray:
    """Station weights of own cells; cells next to ground held by an enemy count double."""
    return station_w * (1.0 + dilate8(enemy_held)) * own


def besieged_pockets(own: np.ndarray, labels: np.ndarray, n: int, owner: np.ndarray,
                     war: np.ndarray) -> np.ndarray:
    """``[n + 1]`` bool: pieces of own ground (labels 1..n) other than the largest by area
    whose every neighbour is held by a faction at war with the owner (``war[g]``): no
    ungoverned or friendly ground to reach."""
    held = owner >= 0
    w = war[np.where(held, owner, 0)]
    at_war = held & w
    open_ground = (owner == UNGOVERNED) | (held & ~w & ~own)
    lab = labels.ravel()
    near_open, near_war = dilate8(np.stack([open_ground, at_war])) & own
    touches_open = np.bincount(lab, weights=near_open.ravel(), minlength=n + 1) > 0
    touches_war = np.bincount(lab, weights=near_war.ravel(), minlength=n + 1) > 0
    main = int(np.argmax(np.bincount(lab, minlength=n + 1)[1:])) + 1
    besieged = touches_war & ~touches_open
    besieged[0] = False
    besieged[main] = False
    return besieged


def evacuate(garrison: np.ndarray, labels: np.ndarray, besieged: np.ndarray, rate: float,
             target: np.ndarray) -> float:
    """Move ``rate`` of each besieged pocket's garrison to the largest piece of ground, in
    proportion to ``target`` there.  Edits ``garrison`` (float32) in place; returns the
    fighters moved."""
    lab = labels.ravel()
    main = int(np.argmax(np.bincount(lab, minlength=besieged.size)[1:])) + 1
    out = garrison * np.where(besieged, rate, 0.0)[labels]
    moved = float(out.sum())
    garrison -= out.astype(np.float32)
    dest = np.where(labels == main, target, 0.0)
    if dest.sum() > 0:
        garrison += (dest * (moved / dest.sum())).astype(np.float32)
    return moved


def spread_garrisons(garrison: np.ndarray, target: np.ndarray, labels: np.ndarray,
                     comp_g: np.ndarray) -> None:
    """Shift garrisons half-way toward ``target``, rescaled so that every connected piece of
    ground (``labels``) keeps its fighters ``comp_g`` (pockets are not resupplied from afar).
    Edits ``garrison`` (float32, zero off own ground) in place."""
    comp_t = np.bincount(labels.ravel(), weights=target.ravel(), minlength=comp_g.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(comp_t > 0, comp_g / comp_t, 0.0)
    scale[0] = 0.0
    garrison *= 0.5
    garrison += 0.5 * (target * scale[labels]).astype(np.float32)


def pieces(own: np.ndarray, garrison: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Connected pieces of own ground (8-neighbourhood): ``(labels, n, fighters per label)``."""
    labels, n = label8(own)
    return labels, n, np.bincount(labels.ravel(), weights=garrison.ravel(), minlength=n + 1)


def reinforce(fighters: np.ndarray, size: float, garrison_total: float):
    """Reinforcement of one faction's live units (``fighters``) from its garrisons.

    Units below ``DISBAND_SHARE`` of the establishment ``size`` disband into the garrisons
    (or, with no garrisons left, are lost); the others draw up to ``DRAW_LIMIT * size`` each
    toward full strength, if the garrisons hold more than ``DRAW_COVER`` times the total draw.
    Returns ``(new_fighters, disbanded mask, fighters returned to garrisons, fighters lost,
    fighters drawn from garrisons)``."""
    fighters = fighters.copy()
    weak = fighters < DISBAND_SHARE * size
    back = float(fighters[weak].sum()) if weak.any() else 0.0
    fighters[weak] = 0.0
    returned, lost = (back, 0.0) if garrison_total > 0 else (0.0, back)
    gtot = garrison_total + returned
    deficit = np.clip(size - fighters[~weak], 0, DRAW_LIMIT * size)
    draw = float(deficit.sum())
    if not (draw > 0 and gtot > DRAW_COVER * draw):
        draw = 0.0
    else:
        fighters[~weak] += deficit
    return fighters, weak, returned, lost, draw


def seed_amounts(p_units: np.ndarray, need: np.ndarray, share: float) -> np.ndarray:
    """Garrison left by the units that took a cell: ``share`` of their presence there, at
    most three times what holding the cell needs."""
    return np.minimum(share * p_units, 3.0 * need)


def seed_garrisons(garrison: np.ndarray, units, p_units: np.ndarray, idx: np.ndarray,
                   old: np.ndarray, new: np.ndarray, hold_min: np.ndarray, hold_scale: np.ndarray,
                   share: float, unit_window: np.ndarray, centre: float) -> None:
    """Units that took a cell of ``idx`` (flat; owner ``old`` -> ``new``) leave a holding
    force there (:func:`seed_amounts`; holding a cell needs ``hold_min[f] * hold_scale``),
    taken from the units
    through the same kernel that projected them, so nothing is created or lost; float rounding
    between the two sums goes to the faction's garrison as a whole.  Edits ``garrison`` and
    ``units.fighters`` in place."""
    took = (new >= 0) & (new != old)
    if share <= 0 or not took.any():
        return
    n = garrison.shape[0]
    cap_idx, f = idx[took], new[took].astype(np.int64)
    need = hold_min[f] * hold_scale[cap_idx]
    pu = p_units.reshape(n, -1)[f, cap_idx]
    amount = seed_amounts(pu, need, share)
    ok = amount > 0
    if not ok.any():
        return
    live = np.flatnonzero(units.alive)
    r, c = units.cells()
    uf = units.faction[live].astype(np.int64)
    # the rate is zero off the captured cells: a kept work array, zeroed there again on exit
    with zero_scratch("seed_rate", (n, garrison[0].size), np.float32, (f[ok], cap_idx[ok])) as rate:
        rate[f[ok], cap_idx[ok]] = amount[ok] / pu[ok]
        take = units.fighters[live] * window_means(rate.reshape(garrison.shape), r[live], c[live],
                                                   unit_window[uf], uf, centre, (f[ok], cap_idx[ok]))
    units.fighters[live] -= take
    given = np.bincount(uf, weights=take, minlength=n)
    placed = np.bincount(f[ok], weights=amount[ok], minlength=n)
    np.add.at(garrison.reshape(n, -1), (f[ok], cap_idx[ok]), amount[ok].astype(np.float32))
    for i in np.flatnonzero(np.abs(given - placed) > 0):
        tot = float(garrison[i].sum())
        if tot > 0:
            garrison[i] *= (tot + given[i] - placed[i]) / tot


def redeploy_garrisons(garrison: np.ndarray, owner: np.ndarray, i: int, station_w: np.ndarray,
                       hostility_i: np.ndarray, war: np.ndarray, window: int, rate: float,
                       home: np.ndarray | None = None) -> float:
    """One week of redeployment of faction ``i``'s garrisons (float32, edited in place) on
    the window ``owner``: besieged pockets evacuate ``rate`` of their garrison to the largest
    piece (:func:`besieged_pockets`, :func:`evacuate`; ``war[g]``: i is at war with g), then
    garrisons shift half-way toward their local targets (:func:`garrison_targets`, station
    weights with front cells doubled), each piece keeping its fighters
    (:func:`spread_garrisons`).  A home guard (``home``: fighters per cell who never leave it)
    stays out of all this: only the fighters above it move.  Returns the fighters evacuated
    (None if no pocket)."""
    pinned = None if home is None else np.minimum(garrison, home)
    if pinned is not None:
        garrison -= pinned
    own = owner == i
    # by owner code (OUTSIDE -2, UNGOVERNED -1, factions): a table lookup per cell
    enemy = np.concatenate([[False, False], hostility_i > 0])[owner.astype(np.intp) + 2]
    target = garrison_targets(garrison, own, station_weights(station_w, own, enemy), window)
    labels, n, comp_g = pieces(own, garrison)
    moved = None
    if n > 1 and rate > 0:
        besieged = besieged_pockets(own, labels, n, owner, war)
        if besieged.any():
            moved = evacuate(garrison, labels, besieged, rate, target)
            comp_g = np.bincount(labels.ravel(), weights=garrison.ravel(), minlength=n + 1)
    spread_garrisons(garrison, target, labels, comp_g)
    if pinned is not None:
        garrison += pinned
    return moved


def reinforce_faction(garrison: np.ndarray, fighters: np.ndarray, size: float,
                      home: np.ndarray | None = None):
    """:func:`reinforce` for one faction, with its garrisons ``[R, C]`` (edited in place)
    scaled by what disbanded units return and replacements draw; a home guard (``home``:
    fighters per cell) gives no replacements.  Returns ``(new unit fighters, disbanded mask,
    fighters lost)``."""
    pinned = 0.0 if home is None else np.minimum(garrison, home)
    gtot = float((garrison - pinned).sum())
    new, weak, back, lost, draw = reinforce(fighters, size, gtot)
    f = 1.0
    if back:
        f *= (gtot + back) / gtot
    if draw:
        f *= (gtot + back - draw) / (gtot + back)
    if f != 1.0:
        garrison[...] = pinned + (garrison - pinned) * np.float32(f)
    return new, weak, lost
