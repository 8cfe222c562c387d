"""Hostility that responds: former partners turn on each other as their common enemy shrinks.

For each pair of factions ``(f, g)`` with a latent rivalry ``latent[f, g]`` in [0, 1]
(config), the hostility at step ``t`` is

    lost(t)   = 1 - A_e(t) / A_e(0)                      (share of the common enemy's ground lost)
    p(t)      = clip((lost(t) - onset) / (1 - onset), 0, 1) ** shape
    h[f,g](t) = max(h0[f,g], latent[f,g] * p(t))

``A_e`` is the ground (cells) of the pair's common enemies, summed over every faction both
were at war with at the start (``h0 >= offensive_hostility`` with each); a pair with no common enemy keeps
``lost = 0``.  ``onset`` in [0, 1): the share of the common enemy's ground that must be lost
before the rivalry resurfaces; ``shape`` > 0: < 1 makes the rise early and steep, > 1 late.
The law is symmetric in ``(f, g)``, has a zero diagonal, never goes below ``h0`` and is
monotone non-decreasing in ``lost``; at ``lost = 1`` it reaches ``max(h0, latent)``.

Sources: S. M. Walt (1987), *The Origins of Alliances* (balance of threat: alignments follow
the greatest threat, and dissolve when it recedes); F. Christia (2012), *Alliance Formation in
Civil Wars* (alliances in multiparty civil wars shift with relative power; minimal winning
coalitions break up as victory nears).  2017-19: Baghdad and the KRG after ISIS's Iraqi ground
was largely gone (Kirkuk, Oct 2017); the regime's offensive on HTS-held Idlib edges (Abu
al-Duhur, Dec 2017-Jan 2018) after Deir ez-Zor; Turkey against the SDF at Afrin (Jan 2018)
and east of the Euphrates (Oct 2019) as ISIS's last ground fell.
"""

from __future__ import annotations

import numpy as np


def common_enemy_lost(h0: np.ndarray, area_now: np.ndarray, area0: np.ndarray,
                      war_threshold: float = 0.5) -> np.ndarray:
    """``[F, F]``: share of their common enemies' ground each pair has seen lost,
    ``1 - sum_e A_e(t) / sum_e A_e(0)`` over the common enemies ``e``: factions both were at
    war with at the start (``h0 >= war_threshold``, i.e. ``control.offensive_hostility``;
    skirmish-level rivals are not a common threat).  0 for pairs without a common enemy, and
    on the diagonal."""
    hostile = np.asarray(h0) >= war_threshold
    common = hostile[:, None, :] & hostile[None, :, :]  # [f, g, e]
    a_now = (common * np.asarray(area_now, float)[None, None, :]).sum(axis=2)
    a0 = (common * np.asarray(area0, float)[None, None, :]).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        lost = np.where(a0 > 0, 1.0 - a_now / a0, 0.0)
    lost = np.clip(lost, 0.0, 1.0)
    np.fill_diagonal(lost, 0.0)
    return lost


def responsive_hostility(h0: np.ndarray, latent: np.ndarray, lost: np.ndarray | float,
                         onset: float, shape: float) -> np.ndarray:
    """``[F, F]`` hostility from the law in the module docstring.

    ``h0`` initial hostility, ``latent`` latent rivalry (both ``[F, F]`` in [0, 1], made
    symmetric by taking the larger of ``x[f, g]`` and ``x[g, f]``); ``lost`` ``[F, F]`` or a
    scalar: share of the common enemy's ground lost (e.g. :func:`common_enemy_lost`);
    ``onset`` in [0, 1); ``shape`` > 0.  Returns a new symmetric array with a zero diagonal.
    """
    if not 0.0 <= onset < 1.0 or shape <= 0:
        raise ValueError("need 0 <= onset < 1 and shape > 0")
    h0 = np.asarray(h0, float)
    lat = np.asarray(latent, float)
    h0 = np.maximum(h0, h0.T)
    lat = np.maximum(lat, lat.T)
    lost = np.broadcast_to(np.asarray(lost, float), h0.shape)
    lost = np.maximum(lost, lost.T)
    p = np.clip((lost - onset) / (1.0 - onset), 0.0, 1.0) ** shape
    h = np.maximum(h0, lat * p)
    np.fill_diagonal(h, 0.0)
    return np.clip(h, 0.0, 1.0)
