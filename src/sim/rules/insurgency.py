"""ISIS after the caliphate: hidden cells, attacks, attrition and foreign-fighter exit.

Sources: Kilcullen (2009) and Hashim (2018) on IS's return to insurgency; US Lead IG reports
2018-19 (14,000-17,000 IS members in Iraq and Syria after the territorial defeat, most of them
covert); Soufan Center (2017), *Beyond the Caliphate*: of ~40,000 foreign fighters at least
5,600 had returned home by late 2017 (the exported threat).

Hidden insurgents ``hidden[r, c]`` do not hold territory; they attack in cells others control,
are worn down by the controller's presence (detection), and resurface to retake a cell when
they outnumber its holder by the capture ratio.
"""

from __future__ import annotations

import numpy as np

from .presence import mix_at


def go_underground(lost_garrison: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Split fighters of cells just lost into (hidden insurgents, retreating fighters)."""
    hidden = lost_garrison * share
    return hidden, lost_garrison - hidden


def attacks(hidden: np.ndarray, controlled_by_other: np.ndarray, rate: float,
            rng: np.random.Generator) -> np.ndarray:
    """Insurgent attacks per cell this step ~ Poisson(rate * hidden) where others rule."""
    lam = np.where(controlled_by_other, rate * hidden, 0.0)
    out = np.zeros(hidden.shape, np.int64)
    idx = np.flatnonzero(lam > 0)
    if idx.size:
        out.ravel()[idx] = rng.poisson(lam.ravel()[idx])
    return out


def detection_losses(hidden: np.ndarray, counter_presence: np.ndarray, rate: float) -> np.ndarray:
    """Insurgents killed or captured by counter-insurgency: ``hidden * (1 - exp(-rate * P))``
    where ``P`` is the presence of forces hostile to them (garrisons searching)."""
    return hidden * (1.0 - np.exp(-rate * counter_presence))


def hunted(hidden: np.ndarray, hostile: np.ndarray, presence: np.ndarray, rate: float) -> np.ndarray:
    """:func:`detection_losses` ``[R, C]`` with the presence of the factions ``hostile[g]``
    (bool) summed on the cells holding hidden members only (:func:`~sim.rules.presence.mix_at`,
    the same float32 sums in order); 0 elsewhere, as there."""
    idx = np.flatnonzero(hidden.ravel() != 0)
    p = mix_at(hostile, presence, idx)
    out = np.zeros(hidden.shape, np.result_type(hidden, p))
    out.ravel()[idx] = detection_losses(hidden.ravel()[idx], p, rate)
    return out


def resurface(hidden: np.ndarray, holder_presence: np.ndarray, ratio: float, hold_min: float) -> np.ndarray:
    """Cells where hidden insurgents come out and retake the ground: they number at least
    ``hold_min`` and ``ratio`` times the presence of the holder."""
    return (hidden >= hold_min) & (hidden >= ratio * holder_presence)


def foreign_exit(foreign: float, rate: float, territory_loss: float) -> float:
    """Foreign fighters leaving the region this step: ``foreign * min(1, rate * (1 + 4 loss))``,
    where ``loss`` is the share of its territory the group lost this step (defeat accelerates
    departures)."""
    return foreign * min(1.0, rate * (1.0 + 4.0 * max(territory_loss, 0.0)))


def foreign_share_leaving(going_to_ground: np.ndarray, foreign: float, total: float):
    """Fighters of lost cells going to ground: the foreign share ``foreign / total`` of them
    leave the region instead (they cannot blend into the local population).  Returns
    ``(staying per cell, leaving in all)``; ``staying + leaving`` is what went to ground."""
    share = min(max(foreign / total, 0.0), 1.0) if total > 0 else 0.0
    return going_to_ground * (1.0 - share), float(going_to_ground.sum()) * share


def insurgent_mode(doctrines: list[str], cells: np.ndarray, initial_cells: np.ndarray) -> np.ndarray:
    """Which factions fight as guerrillas: ``insurgent`` doctrine always, ``hybrid`` once it
    holds less than a quarter of its initial ground (``cells`` now, ``initial_cells`` at 0)."""
    out = np.array([d == "insurgent" for d in doctrines])
    hybrid = np.array([d == "hybrid" for d in doctrines]) & (initial_cells > 0)
    return out | (hybrid & (cells < 0.25 * np.maximum(initial_cells, 1)))


def attack_losses(fighter_deaths: np.ndarray, owner: np.ndarray, garrison: np.ndarray,
                  skip: int) -> list[tuple[int, float]]:
    """Holders' fighters killed by insurgent attacks: each faction (but ``skip``, the
    insurgents) loses up to its garrison in the cells it holds.  Edits ``garrison`` in place;
    returns the ``(faction, losses)`` of the factions that lost fighters."""
    out = []
    if not fighter_deaths.any():
        return out
    # the cells attacked: elsewhere the take is min(0, garrison) = 0 (garrisons are not
    # negative; a layer with a negative cell takes the whole-grid path)
    idx = np.flatnonzero(fighter_deaths)
    held = owner.ravel()[idx]
    for i in range(garrison.shape[0]):
        m = held == i
        if i == skip or not m.any():
            continue
        g = garrison[i].ravel()
        if (garrison[i] < 0).any():
            take = np.minimum(fighter_deaths * (owner == i), garrison[i])
            k = float(take.sum())
            if k:
                garrison[i] -= take
                out.append((i, k))
            continue
        sub = np.minimum(fighter_deaths.ravel()[idx] * m, g[idx])
        take = np.zeros(garrison[i].shape, garrison.dtype)
        take.ravel()[idx] = sub
        k = float(take.sum())  # over the whole grid: the sum's rounding depends on its order
        if k:
            g[idx] -= sub
            out.append((i, k))
    return out


def resurfacing(hidden: np.ndarray, presence: np.ndarray, owner: np.ndarray, isis: int,
                need: np.ndarray, ratio: float, allowed: np.ndarray,
                block: np.ndarray | None = None) -> np.ndarray:
    """Cells ISIS's hidden members retake (:func:`resurface`): held by another faction
    whose presence ``presence[owner]`` they outnumber by ``ratio``, with at least ``need``
    of them, where ISIS may hold ground.  With ``block`` (flat block id per cell, blocks of
    several cells) the test is made per block (:func:`resurfacing_blocks`)."""
    if block is not None:
        return resurfacing_blocks(hidden, presence, owner, isis, need, ratio, allowed, block)
    cand = np.flatnonzero(((hidden >= need) & allowed & (owner != isis)).ravel())
    out = np.zeros(owner.shape, bool)
    if cand.size:  # the holder's presence gathered on those cells only (0 where none holds)
        o = owner.ravel()[cand]
        held = o >= 0
        at = presence.reshape(presence.shape[0], -1)[np.where(held, o, 0).astype(np.intp), cand]
        h = hidden.ravel()[cand]
        out.ravel()[cand] = resurface(h, np.where(held, at, 0.0), ratio, np.broadcast_to(need, owner.shape).ravel()[cand])
    return out


def resurfacing_blocks(hidden: np.ndarray, presence: np.ndarray, owner: np.ndarray, isis: int,
                       need: np.ndarray, ratio: float, allowed: np.ndarray,
                       block: np.ndarray) -> np.ndarray:
    """:func:`resurfacing` judged per block of cells (a 0.05-degree cell's area on a finer
    grid, :func:`sim.rules.combat.battle_blocks`): the ground a block's hidden members may
    retake is the block's cells held by another faction where ISIS may hold ground, and they
    retake all of it when, summed over those cells, they number at least its ``need`` and
    ``ratio`` times the holders' presence there.  So a group of covert fighters retakes a
    village of the same km^2 on every grid, not a cell a quarter the size with a quarter of
    the fighters (issue 14.5).  The hidden members of a retaken block are shared over its
    cells in proportion to their ``need`` (``hidden`` is edited in place; the caller turns
    the hidden members of the cells returned into their garrison)."""
    flat_h, flat_o = hidden.reshape(-1), owner.ravel()
    take = (allowed & (owner != isis) & (owner >= 0)).ravel()
    has = np.flatnonzero(take & (flat_h > 0))
    out = np.zeros(owner.shape, bool)
    if has.size == 0:
        return out
    cells = np.flatnonzero(take & np.isin(block, np.unique(block[has])))
    b = block[cells]
    ub, inv = np.unique(b, return_inverse=True)
    p = presence.reshape(presence.shape[0], -1)[flat_o[cells].astype(np.intp), cells]
    nd = np.broadcast_to(need, owner.shape).ravel()[cells].astype(np.float64)
    h_b = np.bincount(inv, weights=flat_h[cells], minlength=ub.size)
    nd_b = np.bincount(inv, weights=nd, minlength=ub.size)
    ok = (h_b >= nd_b) & (h_b >= ratio * np.bincount(inv, weights=p, minlength=ub.size))
    up = cells[ok[inv]]
    if up.size:
        k = inv[ok[inv]]
        flat_h[up] = (h_b[k] * nd[ok[inv]] / np.maximum(nd_b[k], 1e-12)).astype(hidden.dtype)
        out.ravel()[up] = True
    return out


def territory_loss(prev_owner: np.ndarray, owner: np.ndarray, f: int) -> float:
    """Share of its ground faction ``f`` lost this step (0 if it held none)."""
    prev = (prev_owner == f).sum()
    return max(0.0, 1.0 - (owner == f).sum() / prev) if prev else 0.0
