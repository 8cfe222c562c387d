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

from .presence import mix
from .spatial import window_means, zero_scratch


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
                noise_cv: float, max_fraction: float | np.ndarray) -> np.ndarray:
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
                 min_loss: float = 0.5, block: np.ndarray | None = None) -> np.ndarray:
    """Battles ``[f, g]`` (symmetric, diagonal 0): places where f and g are both present,
    engaged, and at least one of them lost ``min_loss`` fighters.  A place is a cell, or with
    ``block`` (the block id of each of the ``k`` combat cells, :func:`battle_blocks`) a block:
    presence and losses are summed over the block's combat cells first, so a front that
    crosses four small cells of a block is one battle, as on the coarse grid (issue 14.5)."""
    if block is not None and force.shape[1]:
        order = np.argsort(block, kind="stable")
        b = block[order]
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        force = np.add.reduceat(force[:, order], starts, axis=1)
        losses = np.add.reduceat(losses[:, order], starts, axis=1)
    present = force > 0
    lost = losses >= min_loss
    both = present[:, None, :] & present[None, :, :] & (lost[:, None, :] | lost[None, :, :])
    mutual = (engaged | engaged.T).astype(bool)
    counts = both.sum(axis=2) * mutual
    np.fill_diagonal(counts, 0)
    return counts


def battle_blocks(shape: tuple[int, int], res: float, block_deg: float = 0.1) -> np.ndarray:
    """Flat ``[R*C]`` id of each cell's battle block: squares of ``round(block_deg / res)``
    cells a side (at least 1), i.e. 0.1 degree (~11 km) whatever the grid."""
    k = max(int(round(block_deg / res)), 1)
    r, c = np.indices(shape)
    n_cols = -(-shape[1] // k)
    return ((r // k) * n_cols + c // k).ravel()


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


def loss_rates(losses: np.ndarray, p_garrison: np.ndarray, p_units: np.ndarray):
    """Losses per unit of presence ``(garrison rate, unit rate)`` ``[faction, k]``: a
    faction's losses in a cell are split between its garrisons and its units in proportion to
    the presence each put there."""
    lg = apportion(losses, p_garrison, p_garrison + p_units)
    lu = losses - lg
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.where(p_garrison > 0, lg / p_garrison, 0.0),
                np.where(p_units > 0, lu / p_units, 0.0))


def take_garrison_losses(garrison: np.ndarray, rate: np.ndarray, idx: np.ndarray,
                         presence_kernel) -> np.ndarray:
    """Take losses from garrisons ``[F, R, C]`` (float32, edited in place) at the loss
    ``rate [F, R, C]`` per unit of presence, through the symmetric ``presence_kernel`` (each
    garrison loses in proportion to the presence it projected into the combat cells).  Works
    in the bounding box of the combat cells ``idx`` (flat) plus one cell; returns the
    fighters lost per faction."""
    n = garrison.shape[0]
    lost = np.zeros(n)
    hit = np.flatnonzero(rate.reshape(n, -1)[:, idx].any(axis=1))
    if hit.size == 0:
        return lost
    R, C = garrison.shape[1:]
    rows, cols = np.divmod(idx, C)
    sl = (slice(max(rows.min() - 1, 0), min(rows.max() + 2, R)),
          slice(max(cols.min() - 1, 0), min(cols.max() + 2, C)))
    for f in hit:
        g = garrison[f][sl]  # a view: edits write through
        # a garrison is felt in its neighbours' cells too, so with loss rates near 1
        # (combat.max_loss_fraction = 1) the kernel could take up to 1.25 times what it holds:
        # never more than all of it (a negative garrison = fighters from nothing)
        loss = g * np.minimum(presence_kernel(rate[f][sl]), np.float32(1.0))
        g -= loss
        lost[f] = float(loss.sum(dtype=np.float64))
    return lost


def contact_cells(presence: np.ndarray, engaged: np.ndarray, threshold: float) -> np.ndarray:
    """Flat cells where some faction has more than ``threshold`` fighters and so do the
    factions it is engaged with (``mix(engaged, presence)``), in order.  The enemy sums are
    taken only on the cells where some faction passes the threshold: the same sums, bit for
    bit, as on the whole grid."""
    n = presence.shape[0]
    flat = presence.reshape(n, -1)
    cand = np.flatnonzero((flat > threshold).any(axis=0))
    sub = flat[:, cand]
    return cand[((sub > threshold) & (mix(engaged, sub) > threshold)).any(axis=0)]


def contact_band_shield(people: np.ndarray, defenders: np.ndarray, built_density: float,
                        defender_density: float, band_km: float) -> np.ndarray:
    """The holder's cover in a defended town: ``max(D / band_km, 1)``, with ``D`` the depth of
    its defended built-up ground (:func:`sim.rules.assault.clearing_depth`, km) and
    ``band_km`` the depth of the contact band, the block or two of streets in which the two
    sides actually meet.  Only the defenders in that band are under fire in a week, a share
    ``band_km / D`` of the garrison: the holder's expected losses and their weekly cap are
    divided by this factor (the combat ``shield``).  Attrition is thus counted in people at the
    contact line, not as a share of every fighter in the cell, and a defended city costs its
    besieger months (Raqqa, Jun-Oct 2017).  The depth of a town is the same on every grid
    (:func:`~sim.rules.assault.clearing_depth`): a town cut into ``k`` cells has ``sqrt(k)``
    front cells whose bands add up to the coarse cell's.  ``band_km <= 0``: 1 everywhere."""
    from .assault import clearing_depth

    if band_km <= 0:
        return np.ones(np.shape(people))
    return np.maximum(clearing_depth(people, defenders, built_density, defender_density) / band_km, 1.0)


def hold_age(age: np.ndarray, owner: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Weeks each cell has been held by its holder: ``age + 1`` where the holder is the one of
    a week before (``before``), 0 where it changed."""
    return np.where(owner == before, age + 1, 0).astype(np.int16)


def posture(age: np.ndarray, weeks: int, prepared: float) -> np.ndarray:
    """Posture factor of each cell's holder (Dupuy 1979: prepared defence 1.5 against an
    attack at 1.0): ``prepared`` where the holder has held the cell ``weeks`` or longer, else
    1.  It divides the holder's combat losses, as the town shield does."""
    return np.where(age >= weeks, np.float32(prepared), np.float32(1.0))


def cell_losses(force: np.ndarray, engaged: np.ndarray, firepower: np.ndarray, air: np.ndarray,
                insurgent: np.ndarray, near_unit: np.ndarray, threshold: float, owner: np.ndarray,
                shield: np.ndarray, cfg, rng: np.random.Generator, area: float = 1.0):
    """Drawn losses ``[faction, k]`` in the ``k`` contact cells and the share of fire
    delivered with air support per cell.

    Expected losses (:func:`expected_losses`) are at full intensity only where an engaged
    side has manoeuvre units (``near_unit``) with more than ``threshold`` fighters on both
    sides; elsewhere fronts are quiet (``static_front_intensity``).  The holder of a cell
    (``owner``) loses less in towns and dug-in pockets (``shield``: its expected losses and
    their weekly cap ``max_loss_fraction`` are divided by it).  ``cfg`` is the ``combat`` config;
    ``area`` the cell's area in 0.05-degree cells: the scale of area fire against guerrillas
    (``guerrilla_area_factor``, fighters per 0.05-degree cell) grows with it, so the same
    density of insurgents is as hard to hit on every grid (issue 14.5)."""
    n = force.shape[0]
    a_g = cfg.guerrilla_area_factor * area
    exp_air = expected_losses(force, engaged, firepower, air, insurgent, a_g)
    exp_ground = expected_losses(force, engaged, firepower, np.ones_like(air), insurgent, a_g)
    active = (near_unit & (force > threshold) & (mix(engaged, force) > threshold)).any(axis=0)
    scale = np.where(active, 1.0, cfg.static_front_intensity)
    defence = np.where(np.arange(n)[:, None] == owner[None, :], shield[None, :], 1.0)
    exp_air = exp_air * scale / defence
    exp_ground = exp_ground * scale / defence
    # the shield also caps the holder's weekly losses: dug-in defenders lose at most
    # max_loss_fraction / shield of their force (1 everywhere but fortified ground: bitwise as before)
    loss = draw_losses(exp_air, force, rng, cfg.loss_noise, cfg.max_loss_fraction / defence)
    tot_exp = exp_air.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        air_share = np.where(tot_exp > 0, 1.0 - exp_ground.sum(axis=0) / tot_exp, 0.0)
    return loss, air_share


def apply_losses(garrison: np.ndarray, units, losses: np.ndarray, p_garrison: np.ndarray,
                 p_units: np.ndarray, idx: np.ndarray, unit_window: np.ndarray, centre: float,
                 presence_kernel) -> np.ndarray:
    """Take each faction's losses in the combat cells ``idx`` from the garrisons and units
    whose presence put it there, in proportion to what each projected: the projection kernels
    are symmetric (``presence_kernel`` for garrisons, the unit windows for units), so applying
    them to loss rates conserves fighters exactly.  Edits ``garrison`` ``[F, R, C]`` and
    ``units.fighters`` in place; returns the fighters lost per faction."""
    n = garrison.shape[0]
    cells = garrison[0].size
    sub = lambda a: a.reshape(n, -1)[:, idx]  # noqa: E731
    rg, ru = loss_rates(sub(losses), sub(p_garrison), sub(p_units))
    # the rates are zero off the combat cells: kept work arrays, zeroed there again on exit
    with zero_scratch("rate_g", (n, cells), np.float32, (slice(None), idx)) as rate_g, \
            zero_scratch("rate_u", (n, cells), np.float32, (slice(None), idx)) as rate_u:
        rate_g[:, idx] = rg
        rate_u[:, idx] = ru
        return _take_losses(garrison, units, rate_g, rate_u, ru, idx, unit_window, centre,
                            presence_kernel)


def _take_losses(garrison, units, rate_g, rate_u, ru, idx, unit_window, centre,
                 presence_kernel) -> np.ndarray:
    """The body of :func:`apply_losses` once the loss rates are on the grid (``[F, R * C]``)."""
    n = garrison.shape[0]
    shape = garrison.shape
    g_lost = take_garrison_losses(garrison, rate_g.reshape(shape), idx, presence_kernel)
    u_loss = np.zeros(len(units))
    live = np.flatnonzero(units.alive)
    if live.size:
        r, c = units.cells()
        f = units.faction[live].astype(np.int64)
        sup_f, sup_k = np.nonzero(ru)  # where units take losses: (faction, combat cell)
        u_loss[live] = units.fighters[live] * window_means(rate_u.reshape(shape), r[live], c[live],
                                                           unit_window[f], f, centre,
                                                           (sup_f, idx[sup_k]))
        units.fighters -= u_loss
    return g_lost + np.bincount(units.faction, weights=u_loss, minlength=n)[:n]


def after_losses(presence: np.ndarray, losses: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Presence ``[F, R, C]`` left after this step's losses in the combat cells ``idx``
    (a copy; the input itself if there was no combat)."""
    if idx.size == 0:
        return presence
    n = presence.shape[0]
    post = presence.copy()
    pf = post.reshape(n, -1)
    pf[:, idx] = np.maximum(pf[:, idx] - losses.reshape(n, -1)[:, idx], 0.0)
    return post


def aftermath(loss: np.ndarray, air_share: np.ndarray, damage: np.ndarray, cfg,
              area_factor: float = 1.0):
    """What a week's fighting leaves in the ``k`` combat cells: ``(fighting, fighters lost,
    new housing damage)`` from the losses ``[F, k]``, the air share of fire and the damage
    before (:func:`housing_damage`).  ``cfg``: the ``combat`` config.  Damage is driven by the
    losses per 0.05-degree cell's worth of area (``loss / area_factor``): the same fighting
    spread over a cell four times as large destroys a quarter of its housing, whatever the
    grid.  Civilian deaths: :func:`civilian_exposure` and :func:`civilian_deaths`."""
    cell_loss = loss.sum(axis=0)
    new_damage = housing_damage(damage, cell_loss / area_factor, air_share,
                                cfg.ground_housing_damage, cfg.air_housing_damage)
    return cell_loss > 0.5, cell_loss, new_damage


def civilian_exposure(cell_loss: np.ndarray, air_share: np.ndarray, idx: np.ndarray,
                      area_factor: float, block: np.ndarray | None = None,
                      crowding: np.ndarray | None = None):
    """Where a week's fighting harms civilians and how hard: ``(cells, density, air)``, the flat
    cells whose people are exposed, the fighters lost per 0.05-degree cell's worth of area
    they meet, and the air share of that fire (issue 14.5: civilians meet the fighting of the
    0.05-degree cell, ~5.5 km, they live in, on every grid).

    ``cell_loss``/``air_share``: per combat cell ``idx``.  On the 0.05-degree grid the combat
    cells themselves, ``cell_loss / area_factor``.  On a finer grid (``block``: each cell's
    0.05-degree block, :func:`battle_blocks`) every cell of a block with fighting meets the
    block's losses per its area (``sum L / (area_factor x cells)``) and their loss-weighted air
    share, so people beside the front cell but in the same reference cell are exposed as
    they are on the 0.05-degree grid.  On a coarser grid ``crowding`` (per cell) scales the
    density: fighting falls where a cell's forces stand, and its people live denser there
    than the cell's average (crowding > 1) or, where the forces stand away from them, less
    dense (< 1; 0.62 at least at 0.1 deg) (:func:`sim.initial.harm_crowding`)."""
    if block is None or idx.size == 0:
        density = cell_loss / area_factor
        if crowding is not None:
            density = density * crowding[idx]
        return idx, density, air_share
    ids, inv = np.unique(block[idx], return_inverse=True)
    lost = np.bincount(inv, weights=cell_loss, minlength=ids.size)
    air = np.bincount(inv, weights=cell_loss * air_share, minlength=ids.size)
    cells = np.flatnonzero(np.isin(block, ids))
    k = np.searchsorted(ids, block[cells])
    size = np.bincount(k, minlength=ids.size)  # cells per block (fewer at the grid's edge)
    with np.errstate(divide="ignore", invalid="ignore"):
        air = np.where(lost > 0, air / lost, 0.0)
    return cells, (lost / (area_factor * size))[k], air[k]
