"""Presence: the force each faction projects on each cell, from its garrisons and units.

A garrison is felt in its own cell and, with ``GARRISON_SPILL / 8`` of its strength, in each
of the 8 neighbours; a unit puts ``unit_centre_share`` of its fighters on its own cell (its
assault point) and spreads the rest evenly over its ``projection_km`` window (its sector).
Both kernels are symmetric, so losses taken per unit of presence can be handed back to the
sources exactly (see :mod:`sim.rules.combat`).  Units: fighters per cell.
"""

from __future__ import annotations

import numpy as np

from .spatial import box_sum3, mask_boxes, stamp_windows

GARRISON_SPILL = 0.25  # share of a garrison's presence felt in each of the 8 neighbour cells x 8


def garrison_presence(field: np.ndarray) -> np.ndarray:
    """Presence of garrisons: all of a cell's garrison in the cell, plus ``GARRISON_SPILL / 8``
    of it in each neighbour.  The kernel is symmetric, so applying it to loss rates hands
    each cell's losses back to the garrisons that were present there, exactly."""
    f = field.astype(np.float32, copy=False)
    return f + np.float32(GARRISON_SPILL / 8.0) * (box_sum3(f) - f)


def garrison_presence_boxed(field: np.ndarray) -> np.ndarray:
    """:func:`garrison_presence` of a ``[F, R, C]`` stack, each layer computed on the bounding
    box of its nonzero cells plus one cell (zero elsewhere): the same sums, on a fraction of
    the grid."""
    out = np.zeros(field.shape, np.float32)
    for k, box in enumerate(mask_boxes(field != 0, margin=1)):
        if box is not None:
            out[k][box] = garrison_presence(field[k][box])
    return out


def unit_presence(shape, n_f: int, rows, cols, fighters, windows, faction,
                  centre: float) -> np.ndarray:
    """``[F, R, C]`` presence of units at cells ``(rows, cols)`` with ``fighters``, each over
    its faction's ``windows`` (odd side in cells), ``centre`` of it on its own cell."""
    pu = stamp_windows(shape, rows, cols, fighters, windows, faction, centre)
    if pu.shape[0] == n_f:  # the last faction has units: the stamp is the answer (a new array)
        return pu
    out = np.zeros((n_f, *shape), np.float32)
    out[: pu.shape[0]] = pu[:n_f]
    return out


def unit_cells_dilated(shape, n_f: int, rows, cols, faction) -> np.ndarray:
    """``[F, R, C]``: cells within one cell of a unit of each faction (where it assaults;
    elsewhere its fire only supports the holding garrisons)."""
    R, C = shape
    m = np.zeros((n_f, R, C), bool)
    rows, cols = np.asarray(rows), np.asarray(cols)
    # each unit's 3 x 3 block, clipped to the grid: dilate8 of the units' cells without a
    # pass over the whole [F, R, C] stack (negative indices count from the end, as indexing)
    rr = np.where(rows < 0, rows + R, rows)[:, None] + _DR
    cc = np.where(cols < 0, cols + C, cols)[:, None] + _DC
    ok = (rr >= 0) & (rr < R) & (cc >= 0) & (cc < C)
    m[np.broadcast_to(np.asarray(faction)[:, None], ok.shape)[ok], rr[ok], cc[ok]] = True
    return m


_DR = np.repeat(np.arange(-1, 2), 3)  # row, column offsets of the 3 x 3 neighbourhood
_DC = np.tile(np.arange(-1, 2), 3)


def mix(weights: np.ndarray, fields: np.ndarray) -> np.ndarray:
    """``out[f] = sum_g weights[f, g] * fields[g]`` for ``[faction, row, col]`` stacks (e.g.
    the presence of each faction's enemies from a hostility mask)."""
    n = fields.shape[0]
    flat = fields.reshape(n, -1)
    if weights.dtype == bool:  # a mask: add the selected fields in order, skip the others
        # (the same sums, bit for bit, as einsum's 0 + 1 * x_0 + 1 * x_1 ... for finite x)
        out = np.zeros((weights.shape[0], flat.shape[1]), np.result_type(np.float32, flat))
        for f in range(weights.shape[0]):
            for g in np.flatnonzero(weights[f]):
                out[f] += flat[g]
    else:  # einsum's own loops, not BLAS: a 10 x 10 by 10 x N product gains nothing from threads
        out = np.einsum("fg,gn->fn", weights.astype(np.float32), flat)
    return out.reshape(weights.shape[0], *fields.shape[1:])


def mix_at(select: np.ndarray, fields: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``mix(select[None], fields)[0].ravel()[idx]`` on the flat cells ``idx`` only: the
    selected fields (``select[g]`` bool) added in order, the same sums bit for bit."""
    flat = fields.reshape(fields.shape[0], -1)
    out = np.zeros(idx.size, np.result_type(np.float32, flat))
    for g in np.flatnonzero(select):
        out += flat[g, idx]
    return out

