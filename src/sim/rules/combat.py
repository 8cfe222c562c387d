"""Combat: stochastic Lanchester attrition in contested cells.

Sources: F. W. Lanchester (1916), *Aircraft in Warfare* (square law for aimed fire);
Deitchman (1962), "A Lanchester model of guerrilla warfare", *Operations Research* 10:818
(mixed law: conventional forces fire on hidden insurgents as *area* fire, so their kill rate
grows with the insurgents' density, while insurgents fire aimed shots); Epstein (1985) on
discrete-time stochastic Lanchester models.  Air support from patrons multiplies the
recipient's firepower (e.g. coalition strikes in Raqqa and Mosul, Russian strikes for the
regime).

All functions work on *compressed* arrays ``[faction, k]`` over the ``k`` contested cells.
"""

from __future__ import annotations

import numpy as np


def expected_losses(force: np.ndarray, engaged: np.ndarray, firepower: np.ndarray,
                    air_mult: np.ndarray, insurgent: np.ndarray, area_scale: float) -> np.ndarray:
    """Expected losses ``[target, k]`` in one step.

    ``force[f, k]``: fighters of f in each contested cell; ``engaged[f, g]``: f fires on g
    this step (0/1); ``firepower[f]``: kills per fighter-week of aimed fire; ``air_mult[f, g]``:
    multiplier of f's fire on g from air support (>= 1); ``insurgent[g]``: g fights as a
    guerrilla (hidden, dispersed).

    Shooter f splits its fire over its engaged enemies in the cell in proportion to their
    size (square law, aimed fire).  Against a guerrilla target the fire is area fire: it is
    scaled by ``F_g / (F_g + area_scale)``, so a few dispersed insurgents are hard to hit
    (Deitchman's mixed law).
    """
    f = force.astype(np.float64)
    eng = engaged.astype(np.float64)
    targets = eng @ f  # [shooter, k]: enemy fighters each shooter faces
    with np.errstate(divide="ignore", invalid="ignore"):
        share_den = np.where(targets > 0, 1.0 / targets, 0.0)
    fire = firepower[:, None] * f * share_den  # per unit of target size
    # losses[g, k] = sum_f eng[f,g] * air[f,g] * fire[f,k] * F_g
    w = eng * air_mult
    losses = (w.T @ fire) * f
    hit = np.where(insurgent[:, None], f / (f + area_scale + 1e-12), 1.0)
    return losses * hit


def draw_losses(expected: np.ndarray, force: np.ndarray, rng: np.random.Generator,
                noise_cv: float, max_fraction: float) -> np.ndarray:
    """Stochastic losses: expected value times gamma noise (mean 1, CV ``noise_cv``),
    never more than ``max_fraction`` of the force in the cell."""
    if noise_cv > 0:
        shape = 1.0 / noise_cv**2
        noise = rng.gamma(shape, 1.0 / shape, size=expected.shape)
        out = expected * noise
    else:
        out = expected.copy()
    return np.minimum(out, max_fraction * force)


def dyad_battles(losses: np.ndarray, force: np.ndarray, engaged: np.ndarray,
                 min_loss: float = 0.5) -> np.ndarray:
    """Battles ``[f, g]`` (f < g filled, symmetric): cells where f and g are both present,
    engaged, and at least one of them lost ``min_loss`` fighters."""
    present = force > 0
    lost = losses >= min_loss
    both = present[:, None, :] & present[None, :, :] & (lost[:, None, :] | lost[None, :, :])
    mutual = (engaged | engaged.T).astype(bool)
    counts = both.sum(axis=2) * mutual
    np.fill_diagonal(counts, 0)
    return counts


def apportion(cell_losses: np.ndarray, part: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Split a faction's losses in a cell between the sources of its presence:
    ``cell_losses * part / total`` (0 where total is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, cell_losses * part / total, 0.0)


def housing_damage(damage: np.ndarray, total_losses: np.ndarray, air_share: np.ndarray,
                   ground_rate: float, air_rate: float, scale: float = 10.0) -> np.ndarray:
    """New damaged share of housing: ``1 - (1-d) * exp(-(g + a*air) * L / scale)``, where L is
    the fighters lost in the cell this step (a proxy for the volume of fire) and ``air`` the
    share of fire delivered with air support.  Monotone, stays in [0, 1]."""
    rate = (ground_rate + air_rate * air_share) * total_losses / scale
    return 1.0 - (1.0 - damage) * np.exp(-rate)


def civilian_deaths(pop_present: np.ndarray, total_losses: np.ndarray, air_share: np.ndarray,
                    harm: float) -> np.ndarray:
    """Expected civilian deaths in a cell: ``pop * (1 - exp(-harm * L * (1 + 2 air)))``."""
    return pop_present * (1.0 - np.exp(-harm * total_losses * (1.0 + 2.0 * air_share)))
