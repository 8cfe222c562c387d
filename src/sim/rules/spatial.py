"""Spatial helpers shared by the rules (vectorised; no per-cell Python loops)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def window_size(radius_km: float, cell_km: float) -> int:
    """Odd side (in cells) of the square window that reaches ``radius_km`` from a cell."""
    r = int(np.floor(radius_km / cell_km + 0.5))
    return 2 * max(r, 0) + 1


def box_mean(field: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size`` x ``size`` window of the last two axes (zero outside the grid).

    The box filter is its own adjoint, so ``box_mean`` also spreads losses back to the
    sources that projected force into a cell (see :func:`sim.rules.combat.apportion`).
    """
    if size <= 1:
        return field.astype(np.float32, copy=True)
    sizes = (1,) * (field.ndim - 2) + (size, size)
    return ndimage.uniform_filter(field, size=sizes, mode="constant").astype(np.float32, copy=False)


def dilate8(mask: np.ndarray) -> np.ndarray:
    """Cells that are in ``mask`` or touch it (8-neighbourhood), for 2-D or stacked 3-D masks."""
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    tmp = out.copy()
    out[..., :, 1:] |= tmp[..., :, :-1]
    out[..., :, :-1] |= tmp[..., :, 1:]
    return out


def frontier(own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Cells of ``other`` that touch ``own`` (8-neighbourhood)."""
    return other & dilate8(own)


def component_sums(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``values`` per connected-component label 1..n (index 0 = background)."""
    return np.bincount(labels.ravel(), weights=values.ravel(), minlength=n + 1)
