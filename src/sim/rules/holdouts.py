"""ISIS holdouts: dug-in riverine pockets and fighters who go underground.

**Holdout fortification.**  Cells held by a faction whose settled ground has shrunk to a small
share of its start, and that lie in a river valley or town (``river_valley_mask``), get a
fortification factor

    k(x) = 1 + (max_factor - 1) * clip((onset - s) / onset, 0, 1)    on own cells in mask
    k(x) = 1                                                           elsewhere

with ``s = A(t) / A(0)`` the faction's settled ground remaining (share of its start; open desert
does not count).  ``k`` rises linearly from 1 at ``s = onset`` to ``max_factor`` when the
ground is gone.  It stands for fortification (tunnels, berms, IED belts), dug-in last-ditch
defenders and human shields among the families in the last pockets, and it buys *time*, not a
better ratio (the wiring, :mod:`sim.aftermath`): it divides the urban clearing rate
(:func:`sim.rules.assault.clearing_capture`), the holder's expected combat losses there and
their weekly cap (the combat ``shield``), and it draws the faction's garrisons and, once up, its
mobile reserves into the nearest fortified pocket (:func:`nearest_pocket_garrison`).

**Going underground.**  When a cell is captured, a share ``share`` of the faction's garrison
on it survives as hidden insurgents instead of dying; the rest are killed or captured.
``hidden + killed == lost garrison`` exactly.

Sources: ``aggregate_facts``: ISIS had lost ~97% of the ground it once held by 6 Dec 2017
(Pentagon) yet kept its last village (Baghuz) until 23 Mar 2019; the middle Euphrates
pockets (Hajin, Sep-Dec 2018; Baghuz, Feb-Mar 2019) held for months against a much larger SDF
force with coalition air support.  US Lead IG (2018-19): 14,000-17,000 IS members in Iraq and
Syria after the territorial defeat, most of them covert.
"""

from __future__ import annotations

import numpy as np


def holdout_defence(owner: np.ndarray, faction: int, river_valley_mask: np.ndarray,
                    share_remaining: float, max_factor: float, onset: float) -> np.ndarray:
    """``[R, C]`` float64 fortification factor (>= 1) from the law in the module docstring.

    ``owner[r, c]`` int; ``faction`` the holdout faction (ISIS); ``river_valley_mask[r, c]``
    bool: river-valley or urban cells; ``share_remaining`` its settled ground now / at the start (clipped to
    [0, 1]); ``max_factor`` >= 1; ``onset`` in (0, 1]."""
    if not 0.0 < onset <= 1.0 or max_factor < 1.0:
        raise ValueError("need 0 < onset <= 1 and max_factor >= 1")
    s = min(max(float(share_remaining), 0.0), 1.0)
    k = 1.0 + (max_factor - 1.0) * min(max((onset - s) / onset, 0.0), 1.0)
    return np.where((owner == faction) & river_valley_mask, k, 1.0)


def go_underground(fighters_lost_ground: np.ndarray, share: float | np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Split the garrison of captured cells into ``(hidden, killed)``: ``hidden = share x
    fighters`` survive as insurgents, ``killed = fighters - hidden`` (so the two add up
    exactly).  ``share`` in [0, 1], scalar or per cell."""
    g = np.asarray(fighters_lost_ground)
    sh = np.clip(np.asarray(share, dtype=np.result_type(g.dtype, np.float32)), 0.0, 1.0)
    hidden = (g * sh).astype(g.dtype, copy=False)
    return hidden, g - hidden


def nearest_pocket_garrison(labels: np.ndarray, fortifiable: np.ndarray, station_w: np.ndarray,
                            rows: np.ndarray, cols: np.ndarray, fighters: np.ndarray,
                            sampling: tuple[float, float] = (1.0, 1.0)) -> np.ndarray | None:
    """``[R, C]`` float64: where the fighters of the units at ``(rows, cols)`` dig in.  Each
    unit joins the *nearest* pocket: the piece (``labels`` 1..n, 0 = not the faction's ground)
    holding the fortifiable cell (``fortifiable``: river valley or town) nearest to it, in km
    (``sampling``: a cell's height and width in km); its fighters spread over that pocket's
    fortifiable cells in proportion to ``station_w`` (evenly where those weights are all 0).
    Fighters fall back on the ground they can reach, not on the pocket with the largest
    garrison wherever it is (a mobile reserve on the middle Euphrates went to the Hajin
    pocket, not 400 km to the Yarmouk Basin).  The returned grid adds up to
    ``fighters.sum()``; None if the faction holds no fortifiable cell."""
    from scipy import ndimage

    target = fortifiable & (labels > 0)
    if not target.any():
        return None
    _, (ir, ic) = ndimage.distance_transform_edt(~target, sampling=sampling, return_indices=True)
    join = labels[ir[rows, cols], ic[rows, cols]]
    n = int(labels.max())
    per = np.bincount(join, weights=np.asarray(fighters, np.float64), minlength=n + 1)
    w = np.where(target, np.maximum(station_w, 0.0), 0.0)
    tot = np.bincount(labels.ravel(), weights=w.ravel(), minlength=n + 1)
    even = tot <= 0  # pockets with no station weight: spread evenly over their cells
    w = np.where(target & even[labels], 1.0, w)
    tot = np.bincount(labels.ravel(), weights=w.ravel(), minlength=n + 1)
    share = np.where(tot > 0, per / np.where(tot > 0, tot, 1.0), 0.0)
    return w * share[labels]


def pocket_mask(labels: np.ndarray, n: int, fighters: np.ndarray, min_fighters: float) -> np.ndarray:
    """``[R, C]`` bool: the cells of the pieces (``labels`` 1..n, 0 = not the faction's ground;
    :func:`sim.rules.spatial.label8`) whose garrison ``fighters`` adds up to at least
    ``min_fighters``: a pocket with a garrison to dig in, not a scatter of cells a few fighters
    sit on.  A count of fighters, so the same pocket qualifies on every grid."""
    per = np.bincount(labels.ravel(), weights=np.asarray(fighters, np.float64).ravel(), minlength=n + 1)
    ok = per >= min_fighters
    ok[0] = False
    return ok[labels]


def open_pockets(labels: np.ndarray, n: int, settled: np.ndarray) -> np.ndarray:
    """``[R, C]`` bool: the cells of the pieces (``labels`` 1..n, 0 = not the faction's ground)
    with no ``settled`` cell (the caller's mask: settled, river-valley or urban ground): open
    desert or steppe cut off from every town and valley the faction still holds, ground it
    roams but does not hold."""
    has = np.bincount(labels.ravel(), weights=np.asarray(settled, np.float64).ravel(), minlength=n + 1)
    bare = has <= 0
    bare[0] = False
    return bare[labels]


def fall_back(going: np.ndarray, labels: np.ndarray, fortifiable: np.ndarray, station_w: np.ndarray,
              max_km: float, sampling: tuple[float, float] = (1.0, 1.0)):
    """ISIS fighters of lost cells who would go to ground (``going``, ``[R, C]``) fall back into
    the pocket of the fortifiable cell (river valley or town of the pieces ``labels`` 1..n, 0 =
    not the faction's ground) nearest to their cell when it lies within ``max_km`` (``sampling``:
    a cell's height and width in km), spread over that pocket's fortifiable cells as
    :func:`nearest_pocket_garrison` spreads them; the others go to ground as before.  Returns
    ``(joining [R, C] float64, staying [R, C])``; ``joining.sum() + staying.sum() ==
    going.sum()``.  ``(zeros, going)`` when no fortifiable cell is held or none is in reach."""
    from scipy import ndimage

    going = np.asarray(going)
    none = (np.zeros(going.shape), going)
    target = fortifiable & (labels > 0)
    if not target.any() or not (going > 0).any():
        return none
    dist = ndimage.distance_transform_edt(~target, sampling=sampling)
    near = (going > 0) & (dist <= max_km)
    if not near.any():
        return none
    r, c = np.nonzero(near)
    joining = nearest_pocket_garrison(labels, fortifiable, station_w, r, c,
                                      going[r, c].astype(np.float64), sampling)
    return joining, np.where(near, 0, going).astype(going.dtype)
