"""Maps and charts of the landscape and of a run's :class:`~sim.results.Results`.

Only matplotlib (plus numpy/pandas): this module never imports Hydra or the model, so it
can be used on saved results.  Figures for files are built with :class:`matplotlib.figure.Figure`
and an Agg canvas (no pyplot state, no GUI); :func:`plot_map` draws on any Axes.

Colours follow a colour-blind-safe palette built from Okabe & Ito (2008) and Paul Tol's
"bright"/"muted" schemes; ISIS is near-black.  Ungoverned cells are light grey with a
hatch, cells outside the theatre are transparent, contested cells are hatched.
"""

from __future__ import annotations

import os
import sys

import matplotlib

_HEADLESS = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                      or os.environ.get("WAYLAND_DISPLAY"))
if _HEADLESS and "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")  # headless: never try a GUI backend

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.animation import PillowWriter
from matplotlib.collections import LineCollection
from matplotlib.colors import LightSource, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .config import FACTIONS
from .figures import new_figure as _new_figure
from .results import OUTSIDE, UNGOVERNED

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .geography import Geography
    from .results import Results

# --------------------------------------------------------------------------------------
# palette
# --------------------------------------------------------------------------------------
FACTION_COLOURS: dict[str, str] = {  # the same colours as configs/faction/*.yaml (fallback)
    # From Okabe & Ito (2008) and Paul Tol's schemes, chosen by search so that, composited at
    # the maps' 65% opacity over the desert beige, every pair differs by a CIE76 distance of
    # at least 13 under normal vision, deuteranopia and protanopia (Machado et al. 2009), and
    # every colour stands out from the terrain (tests/test_plotting.py checks this).
    "ISIS": "#1A1A1A",  # near-black
    "SYRIAN_GOV": "#D55E00",  # Okabe-Ito vermillion
    "SDF": "#E69F00",  # Okabe-Ito orange
    "SYRIAN_REBELS": "#117733",  # Tol green
    "ISLAMIST_REBELS": "#AA4499",  # Tol purple
    "TURKEY_SNA": "#EE6677",  # Tol red (rose)
    "US_COALITION": "#88CCEE",  # Tol cyan (small areas: al-Tanf)
    "IRAQI_GOV": "#332288",  # Tol indigo
    "PMF": "#CC79A7",  # Okabe-Ito reddish purple
    "KRG": "#CCBB44",  # Tol yellow
}
UNGOVERNED_COLOUR = "#D9D9D9"  # light grey (drawn with UNGOVERNED_HATCH on maps)
UNGOVERNED_HATCH = ".."
OUTSIDE_COLOUR = "#00000000"  # fully transparent
CONTESTED_HATCH = "xxx"  # cross-hatch in black, outlined: visible over every faction colour
CONTESTED_COLOUR = "#000000"
#: factions plus the two special controller codes, for legends of other tools
CONTROL_COLOURS: dict[str, str] = {**FACTION_COLOURS, "UNGOVERNED": UNGOVERNED_COLOUR,
                                   "OUTSIDE": OUTSIDE_COLOUR}

# distinct, colour-blind-safe colours for the dyad lines (Tol "bright"), then Tol "muted"
_DYAD_COLOURS = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#AA3377", "#66CCEE")
# Tol "muted" + "bright" for series without a faction colour (dyads, unknown factions)
_SERIES_COLOURS = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677",
                   "#882255", "#AA4499", "#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE")

# muted terrain colours, one per sim.geography.TERRAIN_CLASSES entry
_TERRAIN_RGB = {
    "sea": "#C9DDEB", "lake": "#9CC3DE", "marsh": "#C2D9C6", "river_valley": "#D5E3BE",
    "irrigated_plain": "#DCE6C3", "rainfed_plain": "#E6E8CC", "steppe": "#EEE8D2",
    "desert": "#F3ECDD", "hills": "#DDD1BA", "mountains": "#CFC2AA",
}
_RIVER_COLOUR = "#3A7DBF"
_LAKE_COLOUR = "#7FB2DA"
_BORDER_COLOUR = "#555555"


def faction_colours(factions: Sequence[str], colours: Mapping[str, str] | None = None) -> list[str]:
    """Colour of each faction: ``colours`` first, then :data:`FACTION_COLOURS`, then a cycle."""
    out = []
    for i, f in enumerate(factions):
        out.append((colours or {}).get(f) or FACTION_COLOURS.get(f)
                   or ("#8C8C8C" if f == "UNGOVERNED" else None)
                   or _SERIES_COLOURS[i % len(_SERIES_COLOURS)])
    return out


def control_rgba(control: np.ndarray, colours: Sequence[str], alpha: float = 0.65,
                 level: np.ndarray | None = None) -> np.ndarray:
    """RGBA image (float32, rows x cols x 4) of a control array.

    Faction ``i`` gets ``colours[i]`` at ``alpha``; -1 (ungoverned) light grey; -2 and any
    other negative code transparent.  With ``level``, contested cells (level 3) get a
    stipple (every other cell darkened) so it survives ``set_data`` animation.
    """
    control = np.asarray(control)
    lut = np.zeros((len(colours) + 2, 4), np.float32)  # index 0: outside, 1: ungoverned
    lut[1] = to_rgba(UNGOVERNED_COLOUR, alpha * 0.9)
    for i, c in enumerate(colours):
        lut[i + 2] = to_rgba(c, alpha)
    idx = np.where(control >= 0, control.astype(np.int64) + 2,
                   np.where(control == UNGOVERNED, 1, 0))
    idx = np.clip(idx, 0, len(lut) - 1)
    img = lut[idx]
    if level is not None:
        rr, cc = np.indices(control.shape)
        stip = (np.asarray(level) == 3) & (control >= 0) & ((rr + cc) % 2 == 0)
        img[stip, :3] *= 0.55
    return img


# --------------------------------------------------------------------------------------
# map layers
# --------------------------------------------------------------------------------------
def _terrain_rgb(geo: Geography) -> np.ndarray:
    from .geography import TERRAIN_CLASSES

    lut = np.array([to_rgba(_TERRAIN_RGB.get(n, "#EEEEEE"))[:3] for n in TERRAIN_CLASSES], float)
    rgb = lut[np.clip(geo.terrain, 0, len(lut) - 1)]
    elev = np.asarray(geo.elevation, float)
    if np.ptp(elev) > 1.0:
        ls = LightSource(azdeg=315, altdeg=45)
        # vertical exaggeration in cell units: metres -> cells of ~km size
        dx = geo.grid.cell_km * 1000.0
        shade = ls.hillshade(elev, vert_exag=8.0, dx=dx, dy=dx)
        rgb = rgb * (0.72 + 0.38 * shade[..., None])
    sea = (geo.terrain == TERRAIN_CLASSES.index("sea")) | (geo.country < 0)
    rgb[sea] = to_rgba(_TERRAIN_RGB["sea"])[:3]
    rgb[geo.lake] = to_rgba(_LAKE_COLOUR)[:3]
    # mute everything outside the theatre so Syria and Iraq stand out
    out = ~geo.theatre & ~sea & ~geo.lake
    rgb[out] = rgb[out] * 0.55 + 0.45 * np.array([0.93, 0.93, 0.93])
    return np.clip(rgb, 0, 1)


def _edge_segments(labels: np.ndarray, grid) -> np.ndarray:
    """Segments (n, 2, 2) in lon/lat along the cell edges where ``labels`` changes
    between neighbours (vectorised)."""
    res, x0, y0 = grid.res, grid.lon_min, grid.lat_max
    segs = []
    # vertical edges between (r, c) and (r, c+1)
    r, c = np.nonzero(labels[:, :-1] != labels[:, 1:])
    x = x0 + (c + 1) * res
    segs.append(np.stack([np.stack([x, y0 - r * res], 1), np.stack([x, y0 - (r + 1) * res], 1)], 1))
    # horizontal edges between (r, c) and (r+1, c)
    r, c = np.nonzero(labels[:-1, :] != labels[1:, :])
    y = y0 - (r + 1) * res
    segs.append(np.stack([np.stack([x0 + c * res, y], 1), np.stack([x0 + (c + 1) * res, y], 1)], 1))
    return np.concatenate(segs, 0) if segs else np.zeros((0, 2, 2))


def _edge_sides(segs: np.ndarray, grid) -> tuple[tuple, tuple]:
    """(rows, cols) of the cells on either side of each cell-edge segment."""
    mid = segs.mean(axis=1)
    eps = grid.res * 0.25
    vert = np.isclose(segs[:, 0, 0], segs[:, 1, 0])
    off = np.where(vert[:, None], [eps, 0.0], [0.0, eps])
    out = []
    for sign in (-1.0, 1.0):
        r, c = grid.rowcol(mid[:, 1] + sign * off[:, 1], mid[:, 0] + sign * off[:, 0])
        out.append((np.clip(r, 0, grid.n_rows - 1), np.clip(c, 0, grid.n_cols - 1)))
    return out[0], out[1]


def _merge_segments(segs: np.ndarray) -> list[np.ndarray]:
    """Join axis-parallel unit segments that share end points into polylines (fewer joints,
    so borders draw as clean lines rather than dashes)."""
    if len(segs) == 0:
        return []
    key = lambda p: (round(p[0], 6), round(p[1], 6))  # noqa: E731
    adj: dict[tuple, list[int]] = {}
    for i, (a, b) in enumerate(segs):
        adj.setdefault(key(a), []).append(i)
        adj.setdefault(key(b), []).append(i)
    used = np.zeros(len(segs), bool)
    lines = []
    for i in range(len(segs)):
        if used[i]:
            continue
        used[i] = True
        a, b = segs[i]
        line = [tuple(a), tuple(b)]
        for end in (1, 0):  # grow forward from b, then backward from a
            while True:
                p = line[-1] if end == 1 else line[0]
                inc = adj[key(p)]
                if len(inc) != 2:
                    break  # line end or junction of three or more borders: stop here
                nxt = [j for j in inc if not used[j]]
                if not nxt:
                    break  # closed ring
                j = nxt[0]
                used[j] = True
                q = segs[j][1] if key(segs[j][0]) == key(p) else segs[j][0]
                if end == 1:
                    line.append(tuple(q))
                else:
                    line.insert(0, tuple(q))
        lines.append(np.asarray(line))
    return lines


def _river_segments(mask: np.ndarray, grid) -> np.ndarray:
    """Segments joining centres of 8-connected river cells, in lon/lat.

    Rivers rasterised at cell centres make bands two cells wide in places; joining every
    neighbour pair would draw ladders and little squares.  Instead the segments are the
    minimum spanning forest of the 8-neighbour graph (orthogonal steps cheaper than
    diagonal ones), which keeps the network connected and draws each band as one line.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    m = np.asarray(mask, bool)
    n = int(m.sum())
    if n < 2:
        return np.zeros((0, 2, 2))
    ids = np.full(m.shape, -1, np.int64)
    ids[m] = np.arange(n)
    a, b, w = [], [], []
    for dr, dc, wt in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.45), (1, -1, 1.45)):
        src = ids[: m.shape[0] - dr, max(0, -dc): m.shape[1] - max(0, dc)]
        dst = ids[dr:, max(0, dc): m.shape[1] + min(0, dc)]
        ok = (src >= 0) & (dst >= 0)
        a.append(src[ok])
        b.append(dst[ok])
        w.append(np.full(int(ok.sum()), wt))
    a, b, w = np.concatenate(a), np.concatenate(b), np.concatenate(w)
    if len(a) == 0:
        return np.zeros((0, 2, 2))
    tree = minimum_spanning_tree(coo_matrix((w, (a, b)), shape=(n, n)).tocsr()).tocoo()
    # prune one-edge spurs sticking out of a junction (artefacts of two-cell-wide bands)
    deg = np.bincount(np.concatenate([tree.row, tree.col]), minlength=n)
    spur = (((deg[tree.row] == 1) & (deg[tree.col] >= 3))
            | ((deg[tree.col] == 1) & (deg[tree.row] >= 3)))
    tree_row, tree_col = tree.row[~spur], tree.col[~spur]
    rr, cc = np.nonzero(m)  # row-major, matches ids
    la0, lo0 = grid.latlon(rr[tree_row], cc[tree_row])
    la1, lo1 = grid.latlon(rr[tree_col], cc[tree_col])
    return np.stack([np.stack([lo0, la0], 1), np.stack([lo1, la1], 1)], 1)


def _place_candidates(geo: Geography, min_population: float) -> list[int]:
    """Indices of places to mark, in labelling priority: places inside the theatre that are
    key places or have at least ``min_population`` people (suburbs excluded); key places
    first, then by population."""
    p = geo.places
    if len(p) == 0:
        return []
    pop = np.nan_to_num(np.asarray(p.population, float))
    key = np.asarray(p.key, bool)
    ok = geo.grid.contains(p.row, p.col)
    inside = np.zeros(len(p), bool)
    inside[ok] = geo.theatre[p.row[ok], p.col[ok]]
    is_sub = np.array([bool(x) for x in p.suburb_of], bool)
    cand = np.flatnonzero(inside & ~is_sub & (key | (pop >= min_population)))
    # big places that are suburbs of a key city (within ~35 km) would only repeat its label
    kc = cand[key[cand]]
    if len(kc):
        lat, lon = np.asarray(p.lat, float), np.asarray(p.lon, float)
        d = np.hypot(lat[cand, None] - lat[None, kc], lon[cand, None] - lon[None, kc]).min(axis=1)
        cand = cand[key[cand] | (d > 0.35)]
    return sorted(cand.tolist(), key=lambda i: (not key[i], -pop[i]))


def _draw_places(ax: Axes, geo: Geography, max_labels: int, label_size: float,
                 min_population: float) -> None:
    """Dots for candidate places and greedy, non-overlapping labels (tries right, left,
    below and above each dot; skips a label that fits nowhere).  Needs the axes limits set."""
    idx = _place_candidates(geo, min_population)
    if not idx:
        return
    p = geo.places
    fig = ax.figure
    ax.apply_aspect()
    pos = ax.get_position()
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    dx_pt = (x1 - x0) / max(1e-9, pos.width * fig.get_figwidth() * 72)  # degrees per point
    dy_pt = (y1 - y0) / max(1e-9, pos.height * fig.get_figheight() * 72)
    lat = np.asarray(p.lat, float)[idx]
    lon = np.asarray(p.lon, float)[idx]
    dot = 2.0  # half-size of a dot in points
    dots = [(lo - dot * dx_pt, la - dot * dy_pt, lo + dot * dx_pt, la + dot * dy_pt)
            for la, lo in zip(lat, lon)]
    boxes: list[tuple] = []  # obstacles: labels placed so far and dots of higher-priority places
    w_ch, h = 0.58 * label_size, 1.05 * label_size  # rough glyph width / line height (pt)
    placed = []
    for k, i in enumerate(idx):
        if len(placed) >= max_labels:
            break
        boxes.append(dots[k])
        name = str(p.name[i])
        w = w_ch * len(name)
        # offset x, y (pt), alignment, and the label box relative to the dot (pt)
        options = ((3, 1, "left", "bottom", 3, 1, 3 + w, 1 + h),
                   (-3, 1, "right", "bottom", -3 - w, 1, -3, 1 + h),
                   (3, -1, "left", "top", 3, -1 - h, 3 + w, -1),
                   (-3, -1, "right", "top", -3 - w, -1 - h, -3, -1),
                   (0, 4, "center", "bottom", -w / 2, 4, w / 2, 4 + h),
                   (0, -4, "center", "top", -w / 2, -4 - h, w / 2, -4))
        for ox, oy, ha, va, bx0, by0, bx1, by1 in options:
            box = (lon[k] + bx0 * dx_pt, lat[k] + by0 * dy_pt,
                   lon[k] + bx1 * dx_pt, lat[k] + by1 * dy_pt)
            if box[0] < x0 or box[2] > x1 or box[1] < y0 or box[3] > y1:
                continue
            if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                   for b in boxes):
                continue
            boxes.append(box)
            placed.append((k, name, lon[k], lat[k], ox, oy, ha, va))
            break
    labelled = np.zeros(len(idx), bool)
    labelled[[k for k, *_ in placed]] = True
    ax.scatter(lon, lat, s=np.where(labelled, 9.0, 2.5), c="#222222", edgecolors="white",
               linewidths=np.where(labelled, 0.4, 0.0), zorder=8)
    halo = [patheffects.withStroke(linewidth=1.8, foreground="white", alpha=0.85)]
    for _, name, lo, la, ox, oy, ha, va in placed:
        ax.annotate(name, (lo, la), xytext=(ox, oy), textcoords="offset points", ha=ha, va=va,
                    fontsize=label_size, color="#111111", zorder=7, path_effects=halo)


def draw_background(ax: Axes, geo: Geography, show_places: bool = True, rivers: bool = True,
                    borders: bool = True, max_labels: int = 64, label_size: float = 7.0,
                    label_min_population: float = 150_000) -> None:
    """Terrain, borders, rivers, lakes and places (everything but control)."""
    ext = geo.grid.extent
    ax.imshow(_terrain_rgb(geo), origin="upper", extent=ext, interpolation="nearest", zorder=0,
              aspect=geo_aspect(geo))
    lw = 0.6  # base line width (pt); same look at every resolution
    if rivers:
        # not over lakes (reservoirs on the Euphrates/Tigris would vanish under the line)
        lake = np.asarray(geo.lake, bool)
        major = np.asarray(geo.major_river, bool) & ~lake
        minor = np.asarray(geo.river, bool) & ~np.asarray(geo.major_river, bool) & ~lake
        for mask, w in ((minor, 0.5 * lw), (major, 1.6 * lw)):
            segs = _river_segments(mask, geo.grid)
            if len(segs):
                ax.add_collection(LineCollection(segs, colors=_RIVER_COLOUR, linewidths=w,
                                                 capstyle="round", zorder=2))
    if borders:
        country = np.asarray(geo.country)
        sea = country < 0
        land_lab = np.where(sea, -1, country)
        segs = _edge_segments(land_lab, geo.grid)
        # coast (land vs sea) thin; borders between countries thicker and darker
        keep_country, keep_coast = [], []
        if len(segs):
            a, b = _edge_sides(segs, geo.grid)
            coast = sea[a] | sea[b]
            keep_coast, keep_country = segs[coast], segs[~coast]
        for part, colour, width, style in ((keep_coast, "#7A9CB8", 0.5 * lw, "-"),
                                           (keep_country, _BORDER_COLOUR, 1.1 * lw, "-")):
            lines = _merge_segments(np.asarray(part)) if len(part) else []
            if lines:
                ax.add_collection(LineCollection(lines, colors=colour, linewidths=width,
                                                 linestyles=style, capstyle="round",
                                                 joinstyle="round", zorder=3))
    if show_places:
        _set_geo_axes(ax, geo, labels=False)  # limits and aspect first: labels are placed in points
        _draw_places(ax, geo, max_labels, label_size, label_min_population)


_BACKDROPS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def map_backdrop(geo: Geography, width_px: int, height_px: int, max_labels: int = 64,
                 label_size: float = 7.0, show_places: bool = True,
                 dpi: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """The landscape of ``geo`` pre-rendered for an axes of ``width_px`` x ``height_px``
    pixels: ``(below, above)`` RGBA images, the terrain/rivers/borders to draw under the
    control overlay and the place dots and names (transparent elsewhere) to draw over it.
    Cached per geography and size: drawing them takes most of a map's rendering time."""
    key = (geo.name, geo.shape, int(width_px), int(height_px), max_labels, label_size,
           show_places, dpi)
    if key in _BACKDROPS:
        return _BACKDROPS[key]
    ext = geo.grid.extent
    layers = []
    for part in ("below", "above"):
        fig = _new_figure(width_px / dpi, height_px / dpi)
        fig.set_dpi(dpi)
        fig.patch.set_alpha(0.0)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.patch.set_alpha(0.0)
        if part == "below":
            draw_background(ax, geo, show_places=False)
        _set_geo_axes(ax, geo, labels=False)
        ax.set_aspect("auto")
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        if part == "above" and show_places:
            _draw_places(ax, geo, max_labels, label_size, 150_000)
        ax.axis("off")
        fig.canvas.draw()
        layers.append(np.asarray(fig.canvas.buffer_rgba()).copy())
    if len(_BACKDROPS) > 8:
        _BACKDROPS.clear()
    _BACKDROPS[key] = (layers[0], layers[1])
    return _BACKDROPS[key]


_COMPOSITE_CACHE: dict[tuple, tuple] = {}


def _composite_parts(backdrop: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]) -> tuple:
    """Pixel -> cell indices, hatch and dot patterns and the backdrop as floats (cached)."""
    below, above = backdrop
    key = (id(below), id(above), shape)
    hit = _COMPOSITE_CACHE.get(key)
    if hit is not None and hit[0] is below:
        return hit[1]
    h, w = below.shape[:2]
    nr, nc = shape
    rows = np.minimum((np.arange(h) + 0.5) * nr // h, nr - 1).astype(np.intp)
    cols = np.minimum((np.arange(w) + 0.5) * nc // w, nc - 1).astype(np.intp)
    py, px = np.indices((h, w))
    hatch = ((px + py) % 6 == 0) | ((px - py) % 6 == 0)
    dots = (py % 4 == 0) & (px % 4 == 0)
    base = below[..., :3].astype(np.float32) / 255.0
    top = above.astype(np.float32) / 255.0
    # the labels layer over everything: out = x * (1 - ta) + top_rgb * ta
    keep = 1.0 - top[..., 3:4]
    add = top[..., :3] * top[..., 3:4]
    parts = (rows, cols, hatch, dots, base, keep, add)
    if len(_COMPOSITE_CACHE) > 8:
        _COMPOSITE_CACHE.clear()
    _COMPOSITE_CACHE[key] = (below, parts)
    return parts


def composite_map(backdrop: tuple[np.ndarray, np.ndarray], control: np.ndarray,
                  colours: Sequence[str], alpha: float = 0.65,
                  level: np.ndarray | None = None) -> np.ndarray:
    """One RGB image (float32, the backdrop's pixel size) of the landscape, the control
    overlay (ungoverned cells dotted, contested cells cross-hatched in black) and the place
    names, composited in numpy: one image to draw per frame instead of three images and a
    hatched contour set."""
    control = np.asarray(control)
    rows, cols, hatch, dots, base, keep, add = _composite_parts(backdrop, control.shape)
    cell = control_rgba(control, colours, alpha)
    cell[control == UNGOVERNED, 3] *= 0.8
    over = cell[rows[:, None], cols[None, :]]  # (h, w, 4)
    ctrl = control[rows[:, None], cols[None, :]]
    over[dots & (ctrl == UNGOVERNED)] = (0.45, 0.45, 0.45, 0.9)
    if level is not None:
        lv = np.asarray(level)[rows[:, None], cols[None, :]]
        over[hatch & (lv == 3) & (ctrl >= 0)] = (0.0, 0.0, 0.0, 0.85)
    a = over[..., 3:4]
    out = base * (1.0 - a) + over[..., :3] * a
    out *= keep
    out += add
    return np.clip(out, 0.0, 1.0, out=out)


def geo_aspect(geo: Geography) -> float:
    """Axes aspect (y units per x unit) that makes a degree of longitude look as long as it
    is at the map's mid-latitude."""
    ext = geo.grid.extent
    return float(1.0 / max(0.2, np.cos(np.deg2rad(0.5 * (ext[2] + ext[3])))))


def _set_geo_axes(ax: Axes, geo: Geography, labels: bool = True) -> None:
    ext = geo.grid.extent
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set_aspect(geo_aspect(geo))
    if labels:
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
    ax.tick_params(labelsize=7)


def _hatch_mask(ax: Axes, geo: Geography, mask: np.ndarray, hatch: str, colour: str, zorder: float,
                linewidth: float = 0.5, outline: bool = False):
    """Hatch the cells of ``mask`` (contourf on the cell grid, no fill); ``outline`` also
    draws the edge of the hatched area."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return
    g = geo.grid
    # pad so hatch regions close at the map edge; contourf at cell corners
    z = np.pad(mask.astype(float), 1)
    x = np.concatenate([[g.lons[0] - g.res], g.lons, [g.lons[-1] + g.res]])
    y = np.concatenate([[g.lats[0] + g.res], g.lats, [g.lats[-1] - g.res]])
    with matplotlib.rc_context({"hatch.color": colour, "hatch.linewidth": linewidth}):
        cs = ax.contourf(x, y, z, levels=[0.5, 1.5], colors="none", hatches=[hatch], zorder=zorder)
    if outline:
        segs = _edge_segments(mask.astype(np.int8), g)
        if len(segs):
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=0.9, zorder=zorder))
    try:  # matplotlib >= 3.8: one artist
        cs.set_edgecolor(colour)
        cs.set_linewidth(0)
    except Exception:  # pragma: no cover
        pass


def plot_map(ax: Axes, geo: Geography, control: np.ndarray | None = None,
             factions: Sequence[str] | None = None, colours: Mapping[str, str] | None = None,
             level: np.ndarray | None = None, units: Any = None, show_places: bool = True,
             legend: bool = True, title: str | None = None, alpha: float = 0.65,
             max_labels: int = 64, label_size: float = 7.0,
             backdrop: tuple[np.ndarray, np.ndarray] | None = None) -> Axes:
    """Draw the landscape of ``geo`` on ``ax`` with an optional control overlay.

    ``control``: int array of ``geo.shape`` with indices into ``factions`` (-1 ungoverned,
    -2 outside the theatre, not drawn).  ``level``: control level (3 = contested, hatched).
    ``units``: rows of ``(row, col, faction_index, fighters)`` drawn as markers sized by
    fighters.  ``max_labels``/``label_size``: place labels (key places first; labels that would
    overlap are skipped).  ``backdrop``: the ``(below, above)`` images of :func:`map_backdrop`
    for this axes' size, drawn instead of the landscape (fast, for animation and the app).
    Returns ``ax``.
    """
    factions = list(factions) if factions is not None else list(FACTIONS)
    cols = faction_colours(factions, colours)
    if control is not None:
        control = np.asarray(control)
        if control.shape != geo.shape:
            raise ValueError(f"control has shape {control.shape}, the map is {geo.shape}")
    handles = []
    fast = backdrop is not None and control is not None
    if backdrop is None:
        draw_background(ax, geo, show_places=show_places, max_labels=max_labels,
                        label_size=label_size)
    elif not fast:
        for img, z in zip(backdrop, (0, 7)):
            ax.imshow(img, origin="upper", extent=geo.grid.extent, aspect=geo_aspect(geo),
                      interpolation="nearest", zorder=z)
    if fast:
        ax.imshow(composite_map(backdrop, control, cols, alpha, level), origin="upper",
                  extent=geo.grid.extent, aspect=geo_aspect(geo), interpolation="nearest",
                  zorder=0)
    if control is not None:
        if not fast:
            ax.imshow(control_rgba(control, cols, alpha), origin="upper",
                      extent=geo.grid.extent, aspect=geo_aspect(geo), interpolation="nearest",
                      zorder=1)
            _hatch_mask(ax, geo, control == UNGOVERNED, UNGOVERNED_HATCH, "#9A9A9A", zorder=1.5)
        # thin lines where the controller changes (front lines), inside the theatre only
        inside = np.where(control >= UNGOVERNED, control.astype(np.int16), OUTSIDE)
        segs = _edge_segments(inside, geo.grid)
        if len(segs):
            a, b = _edge_sides(segs, geo.grid)
            both = (inside[a] != OUTSIDE) & (inside[b] != OUTSIDE)
            if both.any():
                ax.add_collection(LineCollection(segs[both], colors="#333333", linewidths=0.4,
                                                 alpha=0.7, capstyle="projecting", zorder=1.6))
        present = sorted(int(v) for v in np.unique(control) if 0 <= v < len(factions))
        handles = [Patch(facecolor=to_rgba(cols[i], alpha), edgecolor="#444444", linewidth=0.4,
                         label=factions[i]) for i in present]
        if (control == UNGOVERNED).any():
            handles.append(Patch(facecolor=to_rgba(UNGOVERNED_COLOUR, alpha), edgecolor="#9A9A9A",
                                 hatch=UNGOVERNED_HATCH, linewidth=0.4, label="ungoverned"))
    if level is not None:
        level = np.asarray(level)
        contested = level == 3
        if control is not None:
            contested &= np.asarray(control) >= 0
        if contested.any():
            if not fast:  # (the composite image has the hatch already)
                _hatch_mask(ax, geo, contested, CONTESTED_HATCH, CONTESTED_COLOUR, zorder=4,
                            linewidth=0.75, outline=True)
            handles.append(Patch(facecolor="none", edgecolor=CONTESTED_COLOUR,
                                 hatch=CONTESTED_HATCH, linewidth=0.4, label="contested"))
    if units is not None and len(units):
        u = np.asarray(units, float).reshape(-1, 4)
        lat, lon = geo.grid.latlon(u[:, 0], u[:, 1])
        fi = u[:, 2].astype(int)
        colour = [cols[i] if 0 <= i < len(cols) else "#777777" for i in fi]
        size = 8 + 60 * np.sqrt(np.clip(u[:, 3], 0, None) / max(1.0, np.nanmax(u[:, 3])))
        ax.scatter(lon, lat, s=size, c=colour, marker="o", edgecolors="black", linewidths=0.6,
                   zorder=8)
    _set_geo_axes(ax, geo)
    if title:
        ax.set_title(title, fontsize=9)
    if legend and handles:
        ax.legend(handles=handles, loc="lower left", fontsize=6.5, frameon=True, framealpha=0.85,
                  handlelength=1.4, borderpad=0.4, labelspacing=0.3)
    return ax


# --------------------------------------------------------------------------------------
# captions, events, units: what makes a figure readable on its own
# --------------------------------------------------------------------------------------
def run_overrides(outdir) -> list[str]:
    """The overrides a run was started with, from its ``status.json`` (empty if none)."""
    import json

    try:
        info = json.loads((Path(outdir) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(o) for o in info.get("overrides") or []]


def run_caption(results: Results, overrides: Sequence[str] | None = None) -> tuple[str, str]:
    """``(label, footer)`` of a run: the label (scenario, seed, replicate) goes into titles,
    the footer (geography, grid, overrides) under the figure, so a baseline and a
    counterfactual never look alike."""
    summ = getattr(results, "summary", None) or {}
    cfg = getattr(results, "config", None) or {}
    scen = summ.get("scenario") or (cfg.get("scenario") or {}).get("name") or "scenario ?"
    seed = summ.get("seed", cfg.get("seed"))
    rep = summ.get("replicate", cfg.get("replicate"))
    label = " · ".join([str(scen)] + [f"{k} {v}" for k, v in (("seed", seed), ("replicate", rep))
                                      if v is not None])
    geo = getattr(results, "geo", None)
    parts = []
    if geo is not None:
        parts.append(f"geography {geo.name} ({geo.grid.res:g}° cells)")
    shown = [o for o in (overrides or []) if not o.startswith(("hydra.", "output."))]
    parts.append("overrides: " + (", ".join(shown) if shown else "none"))
    return label, " · ".join(parts)


def ensemble_caption(scenario: str, n_runs: int, overrides: Sequence[str] | None = None) -> str:
    """Footer of an ensemble figure: scenario, number of replicates, the shared overrides."""
    shown = [o for o in (overrides or []) if not o.startswith(("hydra.", "output."))]
    return (f"{scenario} · {n_runs} replicates · overrides: "
            + (", ".join(shown) if shown else "none"))


def add_footer(fig: Figure, text: str, y: float = 0.005) -> None:
    """Small grey caption at the bottom left of ``fig``."""
    if text:
        fig.text(0.01, y, text, ha="left", va="bottom", fontsize=6.5, color="#555555", wrap=True)


def policy_events(config: Mapping[str, Any] | None) -> list[tuple[np.datetime64, str]]:
    """Dated policy events of a scenario (``scenario.events`` with a date, the end of air
    support, deconfliction lines that expire) as ``[(date, short label), ...]``, by date."""
    s = (config or {}).get("scenario") or {}
    out: list[tuple[np.datetime64, str]] = []

    def add(date, label):
        if date:
            try:
                out.append((np.datetime64(str(date)[:10], "D"), label))
            except ValueError:
                pass

    for key, ev in (s.get("events") or {}).items():
        ev = ev or {}
        add(ev.get("date"), str(key).replace("_", " "))
    for key, a in (s.get("air_support") or {}).items():
        add((a or {}).get("end"), f"{str(key).replace('_', ' ')} air support ends")
    for key, d in (s.get("deconfliction") or {}).items():
        add((d or {}).get("until"), f"{str(key).replace('_', ' ')} line ends")
    return sorted(out)


def label_rows(starts: Sequence[float], widths: Sequence[float]) -> list[int]:
    """Row of each label (in order of ``starts``): the first row whose last label ends before
    this one starts, so labels of close events stack instead of hiding each other."""
    ends: list[float] = []
    rows = []
    for x, w in zip(starts, widths):
        row = next((i for i, e in enumerate(ends) if e < x), len(ends))
        if row == len(ends):
            ends.append(x)
        ends[row] = x + w
        rows.append(row)
    return rows


def mark_events(ax: Axes, events: Sequence[tuple[Any, str]], labels: bool = True) -> None:
    """Vertical dotted lines at policy events, labelled at the top of ``ax`` (stacked in rows
    where labels would overlap, :func:`label_rows`)."""
    if not events:
        return
    lo, hi = ax.get_xlim()
    import matplotlib.dates as mdates

    size = 5.8  # points
    shown = [(mdates.date2num(pd.Timestamp(d)), label) for d, label in events]
    shown = [(x, label) for x, label in shown if lo <= x <= hi]
    # label extents in points: x from the axes' width, text width ~0.6 em per character
    width_pts = ax.get_window_extent().width * 72.0 / ax.figure.dpi
    at = [(x - lo) * width_pts / max(hi - lo, 1e-9) for x, _ in shown]
    widths = [4 + 0.6 * size * len(label) for _, label in shown]
    left = [a + w > width_pts for a, w in zip(at, widths)]  # would run off the right edge
    rows = label_rows([a - w if f else a for a, w, f in zip(at, widths, left)], widths)
    for (x, label), row, flip in zip(shown, rows, left):
        ax.axvline(x, color="#444444", lw=0.8, ls=(0, (2, 2)), zorder=1)
        if labels:
            ax.annotate(label, (x, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(-2 if flip else 2, -2 - 8 * row), textcoords="offset points",
                        ha="right" if flip else "left",
                        va="top", fontsize=5.8, color="#333333",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                              "alpha": 0.75}, zorder=6)


#: metric -> (words, unit, scale): axis labels and titles in words, never raw metric names
METRIC_WORDS: dict[str, tuple[str, str, float]] = {
    "share_territory_area": ("Share of the theatre's area", "% of area", 100.0),
    "n_displaced": ("Internally displaced people", "million people", 1e-6),
    "n_abroad": ("Refugees abroad", "million people", 1e-6),
    "cum_returnees": ("Returnees (cumulative)", "million people", 1e-6),
    "cum_displaced": ("People displaced (cumulative)", "million people", 1e-6),
    "new_displaced": ("Newly displaced people", "thousand people / week", 1e-3),
    "new_battles": ("Battles", "battles / week", 1.0),
    "new_battles_former_allies": ("Battles between former allies", "battles / week", 1.0),
    "new_battles_vs_isis": ("Battles against ISIS", "battles / week", 1.0),
    "cum_battles": ("Battles (cumulative)", "battles", 1.0),
    "cum_battles_former_allies": ("Battles between former allies (cumulative)", "battles", 1.0),
    "cum_civilian_deaths": ("Civilian deaths (cumulative)", "thousand people", 1e-3),
    "new_civilian_deaths": ("Civilian deaths", "people / week", 1.0),
    "cum_insurgent_attacks": ("Insurgent attacks (cumulative)", "attacks", 1.0),
    "new_insurgent_attacks": ("Insurgent attacks", "attacks / week", 1.0),
    "n_fighters": ("Fighters", "thousand fighters", 1e-3),
    "cum_foreign_fighters_exported": ("Foreign fighters who left (cumulative)", "fighters", 1.0),
}


def metric_words(metric: str, faction: str = "ALL") -> tuple[str, str, float]:
    """``(title, unit, scale)`` of a metric: a title in words (with the faction unless
    ``ALL``), the unit of the axis after multiplying the values by ``scale``."""
    words, unit, scale = METRIC_WORDS.get(metric, (None, None, 1.0))
    if words is None:
        kind = {"n": "", "new": " per week", "cum": " (cumulative)", "share": " (share)"}
        pre, _, rest = metric.partition("_")
        words = rest.replace("_", " ").capitalize() + kind.get(pre, "") if pre in kind \
            else metric.replace("_", " ").capitalize()
        unit = {"share": "share (0-1)", "new": "per week"}.get(pre, "count")
    if faction and faction != "ALL":
        words = f"{words}: {faction_label(faction)}"
    return words, unit, scale


def faction_label(code: str) -> str:
    """A faction code as words for titles and legends (``"SYRIAN_GOV"`` -> ``"Syrian gov"``)."""
    special = {"ISIS": "ISIS", "SDF": "SDF", "KRG": "KRG", "PMF": "PMF", "UNGOVERNED": "ungoverned",
               "TURKEY_SNA": "Turkey & SNA", "US_COALITION": "US coalition",
               "IRAQI_GOV": "Iraqi gov", "SYRIAN_GOV": "Syrian gov",
               "SYRIAN_REBELS": "Syrian rebels", "ISLAMIST_REBELS": "Islamist rebels"}
    if code in special:
        return special[code]
    if "|" in code:
        a, _, b = code.partition("|")
        return f"{faction_label(a)} – {faction_label(b)}"
    return code.replace("_", " ")


def thousands_axis(ax: Axes, axis: str = "y") -> None:
    """Plain tick labels with thousands separators (never an offset like ``1e6``)."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 100 or v == int(v)
                        else f"{v:,.2g}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


# --------------------------------------------------------------------------------------
# result plots
# --------------------------------------------------------------------------------------
def _save(fig: Figure, path, dpi: int) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    # the Figure was never registered with pyplot, so it is already "closed": nothing keeps
    # it alive once the caller drops the returned reference
    return fig


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9,
            color="#666666", wrap=True)
    # hide ticks without replacing the locators (the axes may share x with a date axis)
    ax.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False)


def _dates64(results: Results) -> np.ndarray:
    return np.asarray([np.datetime64(d, "D") for d in results.dates])


def nearest_step(results: Results, date) -> int:
    """Index of the stored step nearest to ``date`` (ISO string or datetime-like)."""
    d = _dates64(results)
    target = np.datetime64(pd.Timestamp(date).date(), "D")
    return int(np.argmin(np.abs((d - target).astype(np.int64))))


def _factions_colours(results: Results) -> list[str]:
    return faction_colours(results.factions, getattr(results, "colours", None))


def _series(results: Results, metric: str) -> pd.DataFrame | None:
    """Wide frame (date index, faction columns) of one metric, or None if missing/empty."""
    ts = results.timeseries
    if ts is None or len(ts) == 0 or "metric" not in ts:
        return None
    sel = ts[ts["metric"] == metric]
    if sel.empty:
        return None
    sel = sel.assign(date=pd.to_datetime(sel["date"]))
    wide = sel.pivot_table(index="date", columns="faction", values="value", aggfunc="sum")
    return wide.sort_index()


def _total(wide: pd.DataFrame) -> pd.Series:
    return wide["ALL"] if "ALL" in wide.columns else wide.sum(axis=1)


def _date_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3, linewidth=0.5)


def plot_control_maps(results: Results, dates: Sequence[str], path, dpi: int = 110,
                      overrides: Sequence[str] | None = None) -> Figure:
    """Small multiples of control at the steps nearest to ``dates``; saves a PNG.  The title
    names the scenario, seed and replicate; the footer the grid and the overrides."""
    label, footer = run_caption(results, overrides)
    dates = list(dates) or [str(results.dates[0])]
    n = len(dates)
    ncol = n if n <= 3 else (2 if n == 4 else 3)
    nrow = int(np.ceil(n / ncol))
    geo = results.geo
    steps = [nearest_step(results, d) for d in dates]
    levels = results.control_level
    cols = _factions_colours(results)
    colours = getattr(results, "colours", None)

    # legend entries: factions present in any panel, then ungoverned / contested
    present: set[int] = set()
    any_ungov = any_cont = False
    for t in steps:
        ctrl = results.control[t]
        present |= {int(v) for v in np.unique(ctrl) if 0 <= v < len(results.factions)}
        any_ungov |= bool((ctrl == UNGOVERNED).any())
        any_cont |= bool(levels is not None and ((levels[t] == 3) & (ctrl >= 0)).any())
    handles = [Patch(facecolor=to_rgba(cols[i], 0.65), edgecolor="#444444", linewidth=0.4,
                     label=faction_label(results.factions[i])) for i in sorted(present)]
    if any_ungov:
        handles.append(Patch(facecolor=to_rgba(UNGOVERNED_COLOUR, 0.65), edgecolor="#9A9A9A",
                             hatch=UNGOVERNED_HATCH, label="ungoverned"))
    if any_cont:
        handles.append(Patch(facecolor="none", edgecolor=CONTESTED_COLOUR, hatch=CONTESTED_HATCH,
                             label="contested"))

    # fixed layout in inches (axes boxes have exactly the map's aspect, so nothing shrinks
    # or overlaps): left tick labels, panels, title above and tick labels below each, legend
    ext = geo.grid.extent
    aspect = (ext[3] - ext[2]) / (ext[1] - ext[0]) * geo_aspect(geo)  # map height / width
    pw, ph = 4.2, 4.2 * aspect
    left, gap, title, below, top = 0.45, 0.12, 0.3, 0.3, 0.4
    fw = left + ncol * pw + (ncol - 1) * gap + 0.15
    leg_cols = max(1, min(len(handles), 6, int(fw / 1.45)))
    legend_h = 0.25 + 0.17 * int(np.ceil(len(handles) / leg_cols)) if handles else 0.0
    legend_h += 0.2  # footer
    fh = top + nrow * (title + ph + below) + legend_h
    fig = _new_figure(fw, fh)
    d64 = _dates64(results)
    for k, t in enumerate(steps):
        i, j = divmod(k, ncol)
        x0 = left + j * (pw + gap)
        y0 = fh - top - (i + 1) * (title + ph + below) + below
        ax = fig.add_axes((x0 / fw, y0 / fh, pw / fw, ph / fh))
        plot_map(ax, geo, results.control[t], results.factions, colours,
                 level=levels[t] if levels is not None else None, legend=False, show_places=True,
                 title=f"{d64[t]} (step {t})", max_labels=14, label_size=6.0)
        ax.set_xlabel("")
        ax.set_ylabel("")
        # small multiples: coordinates on the outer panels only
        ax.tick_params(labelbottom=k + ncol >= n, labelleft=j == 0)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=leg_cols, fontsize=7, frameon=False,
                   bbox_to_anchor=(0.5, 0.2 / fh))
    fig.suptitle(f"Control — {label}", fontsize=10, y=1 - 0.08 / fh, va="top")
    add_footer(fig, footer, y=0.04 / fh)
    return _save(fig, path, dpi)


def _line_style(f: str, c: str) -> dict[str, Any]:
    """Line keywords of a faction series (ungoverned dashed grey, ISIS thick, pale colours with
    a dark outline so they show on white)."""
    if f == "UNGOVERNED":
        return {"color": "#8C8C8C", "lw": 1.4, "ls": "--", "zorder": 2}
    light = np.dot(to_rgba(c)[:3], (0.2126, 0.7152, 0.0722)) > 0.6
    return {"color": c, "lw": 2.2 if f == "ISIS" else 1.6, "zorder": 5 if f == "ISIS" else 3,
            "path_effects": [patheffects.withStroke(linewidth=2.8, foreground="#555555")]
            if light else None}


def _split_limits(values: pd.DataFrame) -> tuple[float, float, float] | None:
    """``(small_max, big_lo, big_hi)`` for a split y axis when one or two series dwarf the
    rest (e.g. the Iraqi government's ~54% over nine series below 15%); else None."""
    peaks = values.max().sort_values(ascending=False)
    if len(peaks) < 3:
        return None
    for k in (1, 2):  # the top k series are "big"
        big, rest = peaks.iloc[:k], peaks.iloc[k:]
        small_max = float(rest.max())
        big_lo = float(values[big.index].min().min())
        if big_lo > 1.8 * small_max and small_max > 0:
            return small_max * 1.08, max(small_max * 1.15, big_lo - 0.06 * (big.max() - big_lo)
                                         - 0.01), float(big.max()) * 1.03 + 0.005
    return None


def plot_territory_share(results: Results, path, dpi: int = 110,
                         overrides: Sequence[str] | None = None) -> Figure:
    """Share of the theatre's area held by each faction over time, in % of the area; saves a
    PNG.  When one or two factions hold far more than the rest, the y axis is split (the big
    ones on top, the others below on their own scale) so that no line is squeezed flat."""
    label, footer = run_caption(results, overrides)
    events = policy_events(getattr(results, "config", None))
    wide = _series(results, "share_territory_area")
    order: list[str] = []
    if wide is not None:
        order = [f for f in results.factions if f in wide.columns]
        order += [f for f in wide.columns if f not in order and f != "ALL"]
    split = _split_limits(wide[order]) if order else None
    fig = _new_figure(8.0, 5.2 if split else 4.4)
    if split:
        gs = fig.add_gridspec(2, 1, height_ratios=(1, 2.2), hspace=0.06, left=0.09, right=0.77,
                              top=0.90, bottom=0.13)
        ax_top = fig.add_subplot(gs[0])
        ax = fig.add_subplot(gs[1], sharex=ax_top)
        axes = [ax_top, ax]
    else:
        ax = fig.add_subplot(1, 1, 1)
        fig.subplots_adjust(left=0.09, right=0.77, top=0.88, bottom=0.16)
        ax_top = None
        axes = [ax]
    if wide is None:
        _note(ax, "no 'share_territory_area' in this run's time series")
    else:
        cols = dict(zip(results.factions, _factions_colours(results)))
        for i, f in enumerate(order):
            c = cols.get(f, _SERIES_COLOURS[i % len(_SERIES_COLOURS)])
            kw = _line_style(f, c)
            for a in axes:
                a.plot(wide.index, 100 * wide[f], label=faction_label(f) if a is ax else None, **kw)
        for a in axes:
            _date_axis(a)
            mark_events(a, events, labels=a is axes[0])
        if split:
            small_max, big_lo, big_hi = split
            ax.set_ylim(0, 100 * small_max)
            ax_top.set_ylim(100 * big_lo, 100 * big_hi)
            ax_top.spines["bottom"].set_visible(False)
            ax.spines["top"].set_visible(False)
            ax_top.tick_params(labelbottom=False, bottom=False)
            d = 0.012  # the "//" marks of a broken axis
            for a, y in ((ax_top, 0.0), (ax, 1.0)):
                kw = {"transform": a.transAxes, "color": "#333333", "clip_on": False, "lw": 0.9}
                a.plot((-d, d), (y - 2.2 * d, y + 2.2 * d), **kw)
                a.plot((1 - d, 1 + d), (y - 2.2 * d, y + 2.2 * d), **kw)
            fig.text(0.025, 0.52, "% of the theatre's area", rotation=90, ha="center",
                     va="center", fontsize=9)
            fig.text(0.775, 0.135, "axis split: the top panel\nhas its own scale",
                     fontsize=6.5, color="#555555", ha="left", va="bottom")
        else:
            ax.set_ylabel("% of the theatre's area")
            top = float(np.nanmax(wide[order].to_numpy())) if order else 1.0
            ax.set_ylim(0, 100 * max(0.05, top * 1.08))
        from .history import overlay_isis_area

        overlay_isis_area(ax, results, scale=100.0)  # history where it exists (IHS, officials)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0 if not split else 1.45),
                  frameon=False, title="faction", title_fontsize=7)
    fig.suptitle(f"Territorial control — {label}", fontsize=10)
    add_footer(fig, footer)
    return _save(fig, path, dpi)


def _two_panels(results: Results, overrides, height: float, right: float):
    """The run's caption and policy events, and an 8-inch-wide figure of two stacked panels
    sharing the time axis: ``(label, footer, events, fig, ax_top, ax_bottom)``."""
    label, footer = run_caption(results, overrides)
    events = policy_events(getattr(results, "config", None))
    fig = _new_figure(8.0, height)
    gs = fig.add_gridspec(2, 1, hspace=0.35, left=0.09, right=right, top=0.9, bottom=0.11)
    ax1 = fig.add_subplot(gs[0])
    return label, footer, events, fig, ax1, fig.add_subplot(gs[1], sharex=ax1)


def plot_conflict_dyads(results: Results, path, top: int = 5, dpi: int = 110,
                        window: int = 4, overrides: Sequence[str] | None = None) -> Figure:
    """Battles per week of the ``top`` busiest dyads, as a ``window``-week rolling mean, with
    the other dyads summed into "other"; below, battles between former allies and against
    ISIS (same smoothing).  Saves a PNG."""
    label, footer, events, fig, ax1, ax2 = _two_panels(results, overrides, 6.4, right=0.74)
    smooth = (lambda x: x.rolling(window, min_periods=1).mean()) if window > 1 else (lambda x: x)
    unit = f"battles / week ({window}-week mean)" if window > 1 else "battles / week"
    wide = _series(results, "new_battles")
    if wide is not None:
        wide = wide[[c for c in wide.columns if "|" in str(c)]]
    if wide is None or wide.shape[1] == 0:
        _note(ax1, "no 'new_battles' dyad series in this run")
    else:
        totals = wide.sum().sort_values(ascending=False)
        keep = [d for d in totals.index[:top] if totals[d] > 0] or list(totals.index[:1])
        for i, d in enumerate(keep):
            ax1.plot(wide.index, smooth(wide[d]), lw=1.8,
                     color=_DYAD_COLOURS[i % len(_DYAD_COLOURS)],
                     label=f"{faction_label(str(d))} ({totals[d]:,.0f})")
        rest = [c for c in wide.columns if c not in keep]
        if rest:
            ax1.plot(wide.index, smooth(wide[rest].sum(axis=1)), lw=1.3, color="#999999",
                     ls="--", label=f"other {len(rest)} dyads ({totals[rest].sum():,.0f})")
        ax1.set_ylabel(unit, fontsize=8)
        ax1.set_ylim(bottom=0)
        ax1.set_title(f"Battles by pair of factions (top {len(keep)}; total in brackets)",
                      fontsize=9)
        _date_axis(ax1)
        mark_events(ax1, events)
        ax1.legend(fontsize=6.8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    drawn = False
    for metric, lab, colour, lw in (
            ("new_battles_vs_isis", "against ISIS", FACTION_COLOURS["ISIS"], 1.6),
            ("new_battles_former_allies", "between former allies", "#CC3311", 2.4)):
        w = _series(results, metric)
        if w is None:
            continue
        ax2.plot(w.index, smooth(_total(w)), color=colour, lw=lw, label=lab)
        drawn = True
    if drawn:
        ax2.set_ylabel(unit, fontsize=8)
        ax2.set_ylim(bottom=0)
        ax2.set_title("Former allies against each other vs. the fight against ISIS", fontsize=9)
        _date_axis(ax2)
        mark_events(ax2, events, labels=False)
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        _note(ax2, "no 'new_battles_former_allies' / 'new_battles_vs_isis' in this run")
    fig.suptitle(f"Conflict — {label}", fontsize=10)
    add_footer(fig, footer)
    return _save(fig, path, dpi)


def plot_displacement(results: Results, path, dpi: int = 110,
                      overrides: Sequence[str] | None = None) -> Figure:
    """Displaced, abroad and returnees (stocks, top) and new displacement (flow, bottom).

    The stocks include the people already displaced on 1 July 2017 (``n_displaced``,
    ``n_abroad``); dashed lines show what remains of that initial stock
    (``n_displaced_initial``, ``n_abroad_initial``), so the gap is the displacement since."""
    label, footer, events, fig, ax1, ax2 = _two_panels(results, overrides, 6.0, right=0.97)
    drawn = False
    for metric, lab, colour, ls in (
            ("n_displaced", "internally displaced (all)", "#0072B2", "-"),
            ("n_displaced_initial", "of whom displaced before Jul 2017", "#0072B2", "--"),
            ("n_abroad", "refugees abroad (all)", "#E69F00", "-"),
            ("n_abroad_initial", "of whom abroad before Jul 2017", "#E69F00", "--"),
            ("cum_returnees", "returns since Jul 2017 (cumulative)", "#009E73", "-")):
        w = _series(results, metric)
        if w is None:
            continue
        ax1.plot(w.index, _total(w) / 1e6, color=colour, lw=1.8 if ls == "-" else 1.2, ls=ls,
                 label=lab)
        drawn = True
    if drawn:
        from .history import overlay_displacement

        overlay_displacement(ax1, results)  # reported displacement of single operations
        ax1.set_ylabel("million people", fontsize=8)
        ax1.set_ylim(bottom=0)
        ax1.set_title("Displacement: stocks including those displaced before July 2017", fontsize=9)
        _date_axis(ax1)
        mark_events(ax1, events)
        ax1.legend(fontsize=7, frameon=True, framealpha=0.85, loc="lower left")
    else:
        _note(ax1, "no displacement stocks (n_displaced, n_abroad, cum_returnees) in this run")
    w = _series(results, "new_displaced")
    if w is None:
        _note(ax2, "no 'new_displaced' in this run")
    else:
        s = _total(w) / 1e3
        gaps = np.diff(s.index.values).astype("timedelta64[s]").astype(float) / 86400
        step_days = float(np.median(gaps)) if len(gaps) else 7.0
        width = 0.8 * step_days
        ax2.bar(s.index, s.values, width=width, color="#CC79A7", label="newly displaced")
        ax2.set_ylabel("thousand people / week", fontsize=8)
        ax2.set_title("New displacement since July 2017 (people leaving home each week)", fontsize=9)
        _date_axis(ax2)
        mark_events(ax2, events, labels=False)
    for a in (ax1, ax2):
        thousands_axis(a)
    fig.suptitle(f"Displacement — {label}", fontsize=10)
    add_footer(fig, footer)
    return _save(fig, path, dpi)


def make_control_gif(results: Results, path, every: int = 1, fps: int = 5, dpi: int = 80) -> Figure:
    """Animated GIF of control over time (one frame per ``every`` steps, always including the
    last).  The background is drawn once; frames only update the overlay image's data."""
    geo = results.geo
    steps = list(range(0, results.control.shape[0], max(1, int(every))))
    if steps[-1] != results.control.shape[0] - 1:
        steps.append(results.control.shape[0] - 1)
    ext = geo.grid.extent
    aspect = (ext[3] - ext[2]) / (ext[1] - ext[0]) * geo_aspect(geo)  # height / width of the map
    fig = _new_figure(6.0, 6.0 * aspect + 0.3)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.90))
    draw_background(ax, geo, show_places=True, max_labels=14, label_size=6)
    _set_geo_axes(ax, geo, labels=False)
    ax.set_xticks([])
    ax.set_yticks([])
    cols = _factions_colours(results)
    lvl = results.control_level

    def frame(t):
        return control_rgba(results.control[t], cols, 0.65, lvl[t] if lvl is not None else None)

    im = ax.imshow(frame(steps[0]), origin="upper", extent=ext, interpolation="nearest", zorder=1,
                   aspect=geo_aspect(geo))
    present = sorted({int(v) for v in np.unique(results.control[steps]) if 0 <= v < len(cols)})
    handles = [Patch(facecolor=to_rgba(cols[i], 0.65), label=results.factions[i]) for i in present]
    if handles:
        ax.legend(handles=handles, loc="lower left", fontsize=5.5, framealpha=0.85,
                  handlelength=1.0, labelspacing=0.2, borderpad=0.3)
    title = fig.text(0.5, 0.955, "", ha="center", va="center", fontsize=8)
    label, _ = run_caption(results)
    d64 = _dates64(results)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi=dpi):
        for t in steps:
            im.set_data(frame(t))
            title.set_text(f"Control {d64[t]} (week {t}) — {label}")
            writer.grab_frame()
    return fig


def save_run_plots(results: Results, outdir, map_dates: Sequence[str], gif: bool = True,
                   dpi: int = 110, overrides: Sequence[str] | None = None) -> list[Path]:
    """Write the standard plots of a run into ``outdir``; returns the paths written.
    ``overrides`` (default: those in ``outdir/status.json``) go into the figures' footers."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if overrides is None:
        overrides = run_overrides(outdir)
    out = [outdir / n for n in ("control_maps.png", "territory_share.png", "conflict_dyads.png",
                                "displacement.png")]
    plot_control_maps(results, map_dates, out[0], dpi=dpi, overrides=overrides)
    plot_territory_share(results, out[1], dpi=dpi, overrides=overrides)
    plot_conflict_dyads(results, out[2], dpi=dpi, overrides=overrides)
    plot_displacement(results, out[3], dpi=dpi, overrides=overrides)
    if gif:
        p = outdir / "control.gif"
        make_control_gif(results, p)
        out.append(p)
    return out


# --------------------------------------------------------------------------------------
# ensembles: probability of control
# --------------------------------------------------------------------------------------
PROBABILITY_CMAP = "YlGnBu"  # sequential, colour-blind safe, light = unlikely


def plot_probability_grid(prob: np.ndarray, factions: Sequence[str], dates: Sequence[str],
                          outside: np.ndarray, extent: Sequence[float], path, n_runs: int,
                          colours: Mapping[str, str] | None = None,
                          background: np.ndarray | None = None, min_prob: float = 0.05,
                          title: str | None = None, footer: str = "", dpi: int = 110) -> Figure:
    """Probability-of-control maps as a grid: one row per faction (those that reach
    ``min_prob`` somewhere), one column per date, on one shared colour bar; the last row is the
    most likely controller in the faction colours (paler = less certain).

    ``prob``: float [dates, factions, rows, cols] (share of runs in which the faction holds
    the cell); ``outside``: bool [rows, cols]; ``extent``: (lon0, lon1, lat0, lat1);
    ``background``: an RGBA image of the terrain, drawn under every panel.  Saves a PNG."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    prob = np.asarray(prob, np.float32)
    factions = list(factions)
    nd = len(dates)
    pick = [j for j in range(len(factions)) if float(prob[:, j].max()) >= min_prob] or [0]
    cols = faction_colours(factions, colours)
    lon0, lon1, lat0, lat1 = (float(v) for v in extent)
    aspect = float(1.0 / max(0.2, np.cos(np.deg2rad(0.5 * (lat0 + lat1)))))
    pw = 2.35 if nd > 2 else 3.0
    ph = pw * (lat1 - lat0) * aspect / (lon1 - lon0)
    left, right_w, top, gap = 0.3, 1.05, 0.55, 0.08
    nrow = len(pick) + 1
    legend_h = 0.55
    fw = left + nd * (pw + gap) + right_w
    fh = top + nrow * (ph + gap) + legend_h + 0.25
    fig = _new_figure(fw, fh)
    cmap = colormaps[PROBABILITY_CMAP]
    norm = Normalize(0.0, 1.0)
    out_mask = np.asarray(outside, bool)

    def panel(r: int, c: int) -> Axes:
        x0 = left + c * (pw + gap)
        y0 = fh - top - (r + 1) * (ph + gap)
        ax = fig.add_axes((x0 / fw, y0 / fh, pw / fw, ph / fh))
        if background is not None:
            ax.imshow(background, extent=(lon0, lon1, lat0, lat1), aspect=aspect,
                      interpolation="bilinear", zorder=0)
        ax.set_xlim(lon0, lon1)
        ax.set_ylim(lat0, lat1)
        ax.set_aspect(aspect)
        ax.set_xticks([])
        ax.set_yticks([])
        for sp in ax.spines.values():
            sp.set_linewidth(0.4)
        return ax

    for r, j in enumerate(pick):
        for c in range(nd):
            ax = panel(r, c)
            p = prob[c, j]
            img = cmap(norm(p)).astype(np.float32)
            img[..., 3] = np.where(out_mask | (p < 0.02), 0.0, 0.9)
            ax.imshow(img, extent=(lon0, lon1, lat0, lat1), aspect=aspect,
                      interpolation="nearest", zorder=2)
            if r == 0:
                ax.set_title(str(dates[c]), fontsize=8)
            if c == 0:
                ax.set_ylabel(faction_label(factions[j]), fontsize=8, color="#111111")
    # most likely controller
    any_p = prob.sum(axis=1)  # [dates, rows, cols]: probability some faction holds the cell
    present: set[int] = set()
    for c in range(nd):
        ax = panel(len(pick), c)
        best = prob[c].argmax(axis=0)
        pbest = prob[c].max(axis=0)
        ungov = (1.0 - any_p[c]) > pbest
        lut = np.array([to_rgba(x) for x in cols], np.float32)
        img = lut[best]
        img[ungov] = to_rgba(UNGOVERNED_COLOUR)
        img[..., 3] = np.where(out_mask, 0.0, 0.2 + 0.75 * np.where(ungov, 1 - any_p[c], pbest))
        present |= {int(v) for v in np.unique(best[~out_mask & ~ungov])}
        ax.imshow(img, extent=(lon0, lon1, lat0, lat1), aspect=aspect, interpolation="nearest",
                  zorder=2)
        if c == 0:
            ax.set_ylabel("most likely\ncontroller", fontsize=8)
    # colour bar (probability rows) and legend (most likely row)
    cax = fig.add_axes(((left + nd * (pw + gap) + 0.15) / fw,
                        (fh - top - len(pick) * (ph + gap) + 0.1) / fh,
                        0.14 / fw, (len(pick) * (ph + gap) - 0.3) / fh))
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
    cb.set_label(f"probability of control\n(share of {n_runs} runs)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    handles = [Patch(facecolor=cols[i], edgecolor="#444444", linewidth=0.4,
                     label=faction_label(factions[i])) for i in sorted(present)]
    handles.append(Patch(facecolor=UNGOVERNED_COLOUR, edgecolor="#999999", linewidth=0.4,
                         label="ungoverned"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=6.8,
               frameon=False, bbox_to_anchor=(0.5 * (fw - right_w) / fw, 0.28 / fh),
               title="most likely controller (paler = less certain)", title_fontsize=7)
    fig.suptitle(title or f"Probability of control over {n_runs} runs", fontsize=10,
                 y=1 - 0.1 / fh, va="top")
    add_footer(fig, footer, y=0.04 / fh)
    return _save(fig, path, dpi)
