"""Spatial helpers shared by the rules (vectorised; no per-cell Python loops)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from scipy import ndimage


def window_size(radius_km: float, cell_km: float) -> int:
    """Odd side (in cells) of the square window that reaches ``radius_km`` from a cell."""
    r = int(np.floor(radius_km / cell_km + 0.5))
    return 2 * max(r, 0) + 1


def window_side(radius_km: float, cell_km: float, ref_cell_km: float) -> float:
    """Side (in cells, possibly fractional) of the square sector that reaches ``radius_km``.

    The sector is defined on the reference grid (cells of ``ref_cell_km``, where the model is
    calibrated) as the odd window of :func:`window_size`; on a grid of ``cell_km`` cells it
    keeps that side in km, ``n_ref * ref_cell_km / cell_km`` cells (at least one cell), so a
    unit's sector covers the same km^2 on every grid (e.g. projection 12 km: 5 cells of 0.05
    degrees, 2.5 of 0.1 degrees, 10 of 0.025 degrees).  :func:`window_cover` turns it into a
    kernel."""
    return max(window_size(radius_km, ref_cell_km) * (ref_cell_km / cell_km), 1.0)


def window_cover(side) -> tuple[np.ndarray, np.ndarray]:
    """``(n, w)`` for window sides ``side`` (scalar or array, >= 1 cell): ``n`` the smallest odd
    number of cells >= ``side`` and ``w`` the weight of the window's outer ring, so the kernel
    (weight 1 inside, ``w`` on the ring) has area ``side**2`` cells:
    ``(n - 2)**2 + w * (n**2 - (n - 2)**2) = side**2``.  An odd integer side gives ``(side, 1)``:
    a plain box."""
    side = np.asarray(side, np.float64)
    n = np.ceil(side - 1e-9).astype(np.int64)
    n = np.maximum(n + (n % 2 == 0), 1)
    inner = (n - 2.0) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(n > 1, (side * side - inner) / (n * n - inner), 1.0)
    return n, np.where(n == side, 1.0, w)


_COVERS: dict = {}  # side -> (n, w) of window_cover: the few window sides of a run


def _cover(side: float) -> tuple[int, float]:
    """:func:`window_cover` of one side as ``(int, float)``, remembered per side."""
    out = _COVERS.get(side)
    if out is None:
        n, w = window_cover(side)
        out = _COVERS[side] = (int(n), float(w))
    return out


def box_mean(field: np.ndarray, size: float) -> np.ndarray:
    """Mean over a ``size`` x ``size`` window of the last two axes (zero outside the grid).
    A fractional ``size`` (:func:`window_side`) weighs the outer ring of the covering odd
    window by :func:`window_cover`'s ``w``: the sum over the kernel divided by ``size**2``.

    The box filter is its own adjoint, so ``box_mean`` also spreads losses back to the
    sources that projected force into a cell (see :func:`sim.rules.combat.apportion`).
    """
    n, w = _cover(float(size))
    if w != 1.0:  # outer ring at weight w: w * (n x n sum) + (1 - w) * ((n - 2) x (n - 2) sum)
        outer = box_mean(field, n) * np.float32(w * n * n / size ** 2)
        inner = box_mean(field, n - 2) * np.float32((1.0 - w) * (n - 2) ** 2 / size ** 2)
        return (outer + inner).astype(np.float32, copy=False)
    size = n
    if size <= 1:
        return field.astype(np.float32, copy=True)
    if size == 3:
        return (box_sum3(field.astype(np.float32, copy=False)) / np.float32(9.0))
    sizes = (1,) * (field.ndim - 2) + (size, size)
    return ndimage.uniform_filter(field, size=sizes, mode="constant").astype(np.float32, copy=False)


def dilate8(mask: np.ndarray) -> np.ndarray:
    """Cells that are in ``mask`` or touch it (8-neighbourhood), for 2-D or stacked 3-D masks."""
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    # the column pass as two shifts of the flat (C-ordered) array, each from a copy with the
    # column that would wrap onto the next row cleared: contiguous ORs, several times faster
    # than ORs of [..., :, 1:] slices, the same cells
    if out.size == 0:
        return out
    right, left = out.copy(), out.copy()
    right[..., :, -1] = False
    left[..., :, 0] = False
    flat = out.reshape(-1)
    flat[1:] |= right.reshape(-1)[:-1]
    flat[:-1] |= left.reshape(-1)[1:]
    return out


_STRUCT8 = np.ones((3, 3), bool)


def mask_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """The bounding box (slices) of the True cells of a 2-D ``mask`` grown by ``margin`` cells
    and clipped to the grid, or None if the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    R, C = mask.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, R)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, C)))


def mask_boxes(masks: np.ndarray, margin: int = 0) -> list:
    """:func:`mask_box` of every layer of a ``[K, R, C]`` stack of masks (two reductions
    over the stack instead of two per layer)."""
    R, C = masks.shape[1:]
    rows_any, cols_any = masks.any(axis=2), masks.any(axis=1)
    out = []
    for k in range(masks.shape[0]):
        rows = np.flatnonzero(rows_any[k])
        if rows.size == 0:
            out.append(None)
            continue
        cols = np.flatnonzero(cols_any[k])
        out.append((slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, R)),
                    slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, C))))
    return out


_BOXES_MEMO: dict = {}  # (owner map key, n) -> its factions' boxes: the last few owner maps
_BOXES_LAST: list = [None, None]  # (a copy of the last owner map found afresh, its boxes)
_BOXES_RECENT: list = [None]  # (key, boxes) of the map asked for last: hashing a map's bytes
# (~20 us at 0.05 degrees) is skipped when the same map is asked for again


def owner_boxes(owner: np.ndarray, n: int) -> list:
    """The bounding box (slices) of the cells of each faction ``0..n-1`` of an owner map, or
    None (``ndimage.find_objects`` of the owner codes + 1), remembered for the last few
    owner maps (compared bytewise): the control phase's map before its changes is the
    redeploy phase's previous map.  A new map that differs from the last one in a few cells
    updates that map's boxes (:func:`_boxes_update`)."""
    key = (owner.shape, owner.dtype.str, owner.tobytes(), n)
    recent = _BOXES_RECENT[0]
    if recent is not None and recent[0] == key:  # the map asked for last (memcmp, no hash)
        return list(recent[1])
    boxes = _BOXES_MEMO.pop(key, None)
    if boxes is None:
        last, last_boxes = _BOXES_LAST
        if last is not None and last.shape == owner.shape and last.dtype == owner.dtype \
                and len(last_boxes) == n:
            boxes = _boxes_update(owner, last, last_boxes)
        if boxes is None:
            boxes = tuple(ndimage.find_objects(np.maximum(owner + 1, 0), max_label=n))  # codes >= 0: 0
        _BOXES_LAST[:] = [owner.copy(), boxes]
        if len(_BOXES_MEMO) >= 4:
            del _BOXES_MEMO[next(iter(_BOXES_MEMO))]
    _BOXES_MEMO[key] = boxes
    _BOXES_RECENT[0] = (key, boxes)
    return list(boxes)


def _boxes_update(owner: np.ndarray, last: np.ndarray, boxes: tuple) -> tuple | None:
    """The boxes of :func:`owner_boxes` for ``owner`` from those of ``last``, an owner map
    that differs from it in a few cells (None if many): a faction's box grows to the cells
    it gained and, where it lost a cell, is found again within that box (all its cells lie
    in it).  The same boxes as ``find_objects``."""
    changed = np.flatnonzero(owner.ravel() != last.ravel())
    if changed.size > owner.size // 50:
        return None
    out = list(boxes)
    C = owner.shape[1]
    rows, cols = np.divmod(changed, C)
    new, old = owner.ravel()[changed], last.ravel()[changed]
    for f in np.unique(new[new >= 0]).tolist():
        r, c = rows[new == f], cols[new == f]
        lo_r, hi_r, lo_c, hi_c = int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1
        if out[f] is not None:
            (a, b), (d, e) = ((s.start, s.stop) for s in out[f])
            lo_r, hi_r, lo_c, hi_c = min(lo_r, a), max(hi_r, b), min(lo_c, d), max(hi_c, e)
        out[f] = (slice(lo_r, hi_r, None), slice(lo_c, hi_c, None))
    for f in np.unique(old[old >= 0]).tolist():
        rs, cs = out[f]
        box = mask_box(owner[rs, cs] == f)
        out[f] = None if box is None else (
            slice(rs.start + int(box[0].start), rs.start + int(box[0].stop), None),
            slice(cs.start + int(box[1].start), cs.start + int(box[1].stop), None))
    return tuple(out)


_CODE_BITS: list = [None, None]  # (owner map key, its cells' code bits): the last owner map
_CODE_BIT = np.zeros(256, np.uint16)  # code + 2 -> its bit (codes 0..13; none past them)
_CODE_BIT[:16] = np.left_shift(1, np.arange(16))


def _code_bits(owner: np.ndarray) -> np.ndarray:
    """``1 << (owner + 2)`` as uint16 (0 for codes past 13), by a table for int8 maps."""
    if owner.dtype == np.int8:
        return _CODE_BIT.take(owner + 2)
    return np.left_shift(1, owner.astype(np.int64) + 2).astype(np.uint16)


def owner_lookup(table: np.ndarray, owner: np.ndarray, box=None) -> np.ndarray:
    """``table[owner + 2]``: a bool per owner code (OUTSIDE -2, UNGOVERNED -1, factions
    0..F-1) looked up for every cell (of ``box``, slices, if given), as one AND per cell:
    each cell's code is held as a bit, remembered until the owner map changes (compared
    bytewise; the phases ask about the same map for faction after faction)."""
    table = np.asarray(table, bool)
    if table.size > 16:
        sub = owner if box is None else owner[box]
        return table[sub.astype(np.intp) + 2]
    key = (owner.shape, owner.dtype.str, owner.tobytes())
    if _CODE_BITS[0] != key:
        _CODE_BITS[:] = [key, _code_bits(owner)]
    bits = _CODE_BITS[1] if box is None else _CODE_BITS[1][box]
    return (bits & np.uint16(sum(1 << int(k) for k in np.flatnonzero(table)))) != 0


_FLAT_INDEX: dict = {}  # cells -> arange(cells), the flat index of every cell of a grid


def owner_layer(stack: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """``stack[owner[r, c], r, c]``: each cell's value in the layer of its holder (layer 0
    where nobody holds it, ``owner < 0``), for a ``[F, *owner.shape]`` stack; the same values
    as ``take_along_axis``, gathered by one ``take`` of flat indices."""
    size = owner.size
    base = _FLAT_INDEX.get(size)
    if base is None:
        base = _FLAT_INDEX[size] = np.arange(size, dtype=np.intp)
    idx = np.maximum(owner, 0).ravel().astype(np.intp)
    idx *= size
    idx += base
    return stack.reshape(-1).take(idx).reshape(owner.shape)


_LABEL_MEMO: dict = {}  # (crop shape, packed crop) -> (labels of the crop, n); a few recent
_LABEL_MEMO_SIZE = 48  # masks recur within and across steps (same ground, same bloc)
_BOX_MEMO: dict = {}  # (mask shape, packed mask) -> (its box, its crop's key): a mask seen
# again needs neither the bounding-box reductions nor the crop's packing


def _remember(memo: dict, key, value) -> None:
    """Put ``key`` last in ``memo`` (least recently used first), dropping the oldest when full."""
    if len(memo) >= _LABEL_MEMO_SIZE:
        del memo[next(iter(memo))]
    memo[key] = value


def label8(mask: np.ndarray, with_box: bool = False, crop: bool = False):
    """``ndimage.label(mask, 8-neighbourhood)`` computed on the bounding box of ``mask`` only
    (often a small part of the grid), and remembered for the last few masks (the same ground
    is labelled by several phases and factions, and again next week if unchanged).  Same
    labels: components are numbered in raster order of their first cell, which cropping
    keeps.  ``(labels [R, C] int32, n)``, plus the box (slices) with ``with_box``; with
    ``crop``, ``(labels of the box only, n, box)``.  The labels are read-only and shared by
    every caller that labels the same mask."""
    full_key = (mask.shape, np.packbits(mask).tobytes())
    known = _BOX_MEMO.pop(full_key, None)
    if known is None:
        box = mask_box(mask)
        key = None if box is None else (mask[box].shape, np.packbits(mask[box]).tobytes())
        known = [box, key, None]  # the box, its crop's key, the whole grid's labels once made
    _remember(_BOX_MEMO, full_key, known)
    box, key, labels = known
    if box is None:
        box = (slice(0, 0), slice(0, 0))
        if crop:
            return np.zeros((0, 0), np.int32), 0, box
        if labels is None:
            labels = known[2] = _read_only(np.zeros(mask.shape, np.int32))
        return (labels, 0, box) if with_box else (labels, 0)
    hit = _LABEL_MEMO.pop(key, None)
    if hit is None:
        hit = ndimage.label(mask[box], structure=_STRUCT8)
        _read_only(hit[0])
    _remember(_LABEL_MEMO, key, hit)
    if crop:
        return hit[0], hit[1], box
    if labels is None:
        labels = np.zeros(mask.shape, np.int32)
        labels[box] = hit[0]
        known[2] = _read_only(labels)
    return (labels, hit[1], box) if with_box else (labels, hit[1])


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def frontier(own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Cells of ``other`` that touch ``own`` (8-neighbourhood)."""
    return other & dilate8(own)


def component_sums(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``values`` per connected-component label 1..n (index 0 = background)."""
    return np.bincount(labels.ravel(), weights=values.ravel(), minlength=n + 1)


def argmax0(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, value) of the maximum over axis 0; first index wins ties, like ``argmax``.
    A running comparison over the short leading axis, much faster than ``a.argmax(0)`` for
    ``[faction, ...]`` stacks (which strides across memory)."""
    best = a[0].copy()
    idx = np.zeros(best.shape, np.int64)
    for k in range(1, a.shape[0]):
        better = a[k] > best
        idx[better] = k
        np.maximum(best, a[k], out=best)
    return idx, best


def box_sum3(field: np.ndarray) -> np.ndarray:
    """Sum over the 3 x 3 neighbourhood of each cell (zero outside), last two axes."""
    out = field.copy()
    out[..., 1:, :] += field[..., :-1, :]
    out[..., :-1, :] += field[..., 1:, :]
    if out.size == 0:
        return out.copy()
    # the column pass as two shifts of the flat (C-ordered) arrays, from copies with the
    # column that would wrap onto the next row zeroed (as :func:`dilate8`): the same
    # additions in the same order (left, then right neighbour), contiguous
    o2, left = out.copy(), out.copy()
    left[..., :, 0] = 0
    out[..., :, -1] = 0
    flat = o2.reshape(-1)
    flat[1:] += out.reshape(-1)[:-1]
    flat[:-1] += left.reshape(-1)[1:]
    return o2


def sum3_at(field: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``box_sum3(field)[..., rows, cols]`` at a few cells only: the same additions in the
    same order (each column of the 3 x 3 block top-down from the centre, then centre, left,
    right), a cell off the grid adding 0 (the sums equal, a zero's sign aside)."""
    pad = np.zeros((*field.shape[:-2], field.shape[-2] + 2, field.shape[-1] + 2), field.dtype)
    pad[..., 1:-1, 1:-1] = field
    r, c = rows + 1, cols + 1

    def column(k):
        return pad[..., r, c + k] + pad[..., r - 1, c + k] + pad[..., r + 1, c + k]

    return column(0) + column(-1) + column(1)


def stamp_windows(shape, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
                  sizes: np.ndarray, layer: np.ndarray, centre: float = 0.0) -> np.ndarray:
    """Project point sources into a ``[layers, *shape]`` float32 array: a share ``centre`` of
    each value on its own cell, the rest spread evenly over the ``size`` x ``size`` window
    around it (a unit concentrates at its assault point and covers its sector).  Loops over
    the points, never over cells (units are few, cells many)."""
    n_layers = int(layer.max()) + 1 if layer.size else 0
    out = np.zeros((max(n_layers, 1), *shape), np.float32)
    R, C = shape
    ns, ws = window_cover(sizes)
    for r, c, v, s, n, w, k in zip(rows, cols, values, sizes, ns.tolist(), ws.tolist(), layer):
        h, a = n // 2, (1 - centre) * v / (s * s)
        if w == 1.0:
            out[k, max(r - h, 0):min(r + h + 1, R), max(c - h, 0):min(c + h + 1, C)] += a
        else:  # a fractional side: the outer ring at weight w
            out[k, max(r - h, 0):min(r + h + 1, R), max(c - h, 0):min(c + h + 1, C)] += a * w
            out[k, max(r - h + 1, 0):min(r + h, R), max(c - h + 1, 0):min(c + h, C)] += a * (1 - w)
        if 0 <= r < R and 0 <= c < C:
            out[k, r, c] += centre * v
    return out


def window_means(field: np.ndarray, rows: np.ndarray, cols: np.ndarray, sizes: np.ndarray,
                 layer: np.ndarray, centre: float = 0.0, support=None) -> np.ndarray:
    """The adjoint of :func:`stamp_windows`: each point's kernel-weighted sum of
    ``field[layer]``, used to hand cell losses back to the units that projected force.
    ``support`` (optional ``(layers, flat cells)``): the only places ``field`` may be nonzero;
    points whose window misses them all get 0 without summing (the same result)."""
    R, C = field.shape[-2:]
    out = np.zeros(len(rows))
    todo = range(len(rows)) if support is None else \
        np.flatnonzero(_windows_touch(rows, cols, sizes, layer, support, C))
    ns, ws = window_cover(sizes)
    for i in todo:
        r, c, s, k, n, w = rows[i], cols[i], sizes[i], layer[i], ns[i], ws[i]
        h = n // 2
        win = field[k, max(r - h, 0):min(r + h + 1, R), max(c - h, 0):min(c + h + 1, C)].sum()
        if w != 1.0:  # a fractional side: the outer ring at weight w
            win = w * win + (1 - w) * field[k, max(r - h + 1, 0):min(r + h, R),
                                            max(c - h + 1, 0):min(c + h, C)].sum()
        out[i] = (1 - centre) * win / (s * s) + (centre * field[k, r, c] if 0 <= r < R and 0 <= c < C else 0.0)
    return out


def _windows_touch(rows, cols, sizes, layer, support, C: int) -> np.ndarray:
    """``[P]`` bool: the ``sizes`` window of each point on ``layer`` holds a support cell."""
    s_layer, s_flat = (np.asarray(a) for a in support)
    if len(rows) * s_flat.size > 4_000_000:  # too many pairs to test: sum every window
        return np.ones(len(rows), bool)
    sr, sc = np.divmod(s_flat, C)
    h = (window_cover(sizes)[0] // 2)[:, None]
    near = (np.abs(np.asarray(rows)[:, None] - sr[None]) <= h) & \
        (np.abs(np.asarray(cols)[:, None] - sc[None]) <= h)
    return (near & (np.asarray(layer)[:, None] == s_layer[None])).any(axis=1)


def faction_boxes(owner: np.ndarray, prev_owner: np.ndarray, n_f: int, margin: int) -> list:
    """Per faction, the bounding box (slices) of its ground before and after this step's
    changes plus ``margin`` cells (retreat reach + neighbourhoods), or None if it held none."""
    R, C = owner.shape
    now, before = owner_boxes(owner, n_f), owner_boxes(prev_owner, n_f)
    out = []
    for i in range(n_f):
        boxes = [b for b in (now[i], before[i]) if b is not None]
        if not boxes:
            out.append(None)
            continue
        out.append(tuple(slice(max(min(b[k].start for b in boxes) - margin, 0),
                               min(max(b[k].stop for b in boxes) + margin, size))
                         for k, size in ((0, R), (1, C))))
    return out


_SCRATCH: dict = {}  # (name, shape, dtype) -> a zeroed work array kept between calls


@contextmanager
def zero_scratch(name: str, shape: tuple, dtype, touched):
    """A zeroed work array of ``shape`` for a kernel that writes a few cells of it (e.g. loss
    rates on the combat cells of an ``[F, R * C]`` stack), kept between calls: no new
    megabytes to clear and map every week.  On exit the cells ``touched`` (an index
    expression: everything the caller wrote) are zeroed again, so the next caller gets zeros.
    Not re-entrant per ``name``."""
    key = (name, tuple(shape), np.dtype(dtype).str)
    buf = _SCRATCH.get(key)
    if buf is None:
        if len(_SCRATCH) >= 16:  # another grid: forget the old ones
            _SCRATCH.clear()
        buf = _SCRATCH[key] = np.zeros(shape, dtype)
    try:
        yield buf
    finally:
        buf[touched] = 0
