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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import LightSource, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .config import FACTIONS
from .results import OUTSIDE, UNGOVERNED

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .geography import Geography
    from .results import Results

# --------------------------------------------------------------------------------------
# palette
# --------------------------------------------------------------------------------------
FACTION_COLOURS: dict[str, str] = {  # the same colours as configs/faction/*.yaml (fallback)
    "ISIS": "#1A1A1A",  # near-black
    "SYRIAN_GOV": "#B2182B",  # dark red
    "SDF": "#E69F00",  # Okabe-Ito orange
    "SYRIAN_REBELS": "#009E73",  # Okabe-Ito bluish green
    "ISLAMIST_REBELS": "#56B4E9",  # Okabe-Ito sky blue
    "TURKEY_SNA": "#CC79A7",  # Okabe-Ito reddish purple
    "US_COALITION": "#0072B2",  # Okabe-Ito blue
    "IRAQI_GOV": "#117733",  # Tol muted green
    "PMF": "#882255",  # Tol muted wine
    "KRG": "#DDCC77",  # Tol muted sand
}
UNGOVERNED_COLOUR = "#D9D9D9"  # light grey (drawn with UNGOVERNED_HATCH on maps)
UNGOVERNED_HATCH = ".."
OUTSIDE_COLOUR = "#00000000"  # fully transparent
CONTESTED_HATCH = "////"
#: factions plus the two special controller codes, for legends of other tools
CONTROL_COLOURS: dict[str, str] = {**FACTION_COLOURS, "UNGOVERNED": UNGOVERNED_COLOUR,
                                   "OUTSIDE": OUTSIDE_COLOUR}

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


def _hatch_mask(ax: Axes, geo: Geography, mask: np.ndarray, hatch: str, colour: str, zorder: float):
    """Hatch the cells of ``mask`` (contourf on the cell grid, no fill)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return
    g = geo.grid
    # pad so hatch regions close at the map edge; contourf at cell corners
    z = np.pad(mask.astype(float), 1)
    x = np.concatenate([[g.lons[0] - g.res], g.lons, [g.lons[-1] + g.res]])
    y = np.concatenate([[g.lats[0] + g.res], g.lats, [g.lats[-1] - g.res]])
    with matplotlib.rc_context({"hatch.color": colour, "hatch.linewidth": 0.5}):
        cs = ax.contourf(x, y, z, levels=[0.5, 1.5], colors="none", hatches=[hatch], zorder=zorder)
    try:  # matplotlib >= 3.8: one artist
        cs.set_edgecolor(colour)
        cs.set_linewidth(0)
    except Exception:  # pragma: no cover
        pass


def plot_map(ax: Axes, geo: Geography, control: np.ndarray | None = None,
             factions: Sequence[str] | None = None, colours: Mapping[str, str] | None = None,
             level: np.ndarray | None = None, units: Any = None, show_places: bool = True,
             legend: bool = True, title: str | None = None, alpha: float = 0.65,
             max_labels: int = 64, label_size: float = 7.0) -> Axes:
    """Draw the landscape of ``geo`` on ``ax`` with an optional control overlay.

    ``control``: int array of ``geo.shape`` with indices into ``factions`` (-1 ungoverned,
    -2 outside the theatre, not drawn).  ``level``: control level (3 = contested, hatched).
    ``units``: rows of ``(row, col, faction_index, fighters)`` drawn as markers sized by
    fighters.  ``max_labels``/``label_size``: place labels (key places first; labels that would
    overlap are skipped).  Returns ``ax``.
    """
    factions = list(factions) if factions is not None else list(FACTIONS)
    cols = faction_colours(factions, colours)
    if control is not None:
        control = np.asarray(control)
        if control.shape != geo.shape:
            raise ValueError(f"control has shape {control.shape}, the map is {geo.shape}")
    draw_background(ax, geo, show_places=show_places, max_labels=max_labels, label_size=label_size)
    handles = []
    if control is not None:
        ax.imshow(control_rgba(control, cols, alpha), origin="upper", extent=geo.grid.extent,
                  aspect=geo_aspect(geo), interpolation="nearest", zorder=1)
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
            _hatch_mask(ax, geo, contested, CONTESTED_HATCH, "#222222", zorder=4)
            handles.append(Patch(facecolor="none", edgecolor="#222222", hatch=CONTESTED_HATCH,
                                 linewidth=0.4, label="contested"))
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
# result plots
# --------------------------------------------------------------------------------------
def _new_figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


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


def plot_control_maps(results: Results, dates: Sequence[str], path, dpi: int = 110) -> Figure:
    """Small multiples of control at the steps nearest to ``dates``; saves a PNG."""
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
                     label=results.factions[i]) for i in sorted(present)]
    if any_ungov:
        handles.append(Patch(facecolor=to_rgba(UNGOVERNED_COLOUR, 0.65), edgecolor="#9A9A9A",
                             hatch=UNGOVERNED_HATCH, label="ungoverned"))
    if any_cont:
        handles.append(Patch(facecolor="none", edgecolor="#222222", hatch=CONTESTED_HATCH,
                             label="contested"))

    # fixed layout in inches (axes boxes have exactly the map's aspect, so nothing shrinks
    # or overlaps): left tick labels, panels, title above and tick labels below each, legend
    ext = geo.grid.extent
    aspect = (ext[3] - ext[2]) / (ext[1] - ext[0]) * geo_aspect(geo)  # map height / width
    pw, ph = 4.2, 4.2 * aspect
    left, gap, title, below, top = 0.45, 0.12, 0.3, 0.3, 0.05
    fw = left + ncol * pw + (ncol - 1) * gap + 0.15
    leg_cols = max(1, min(len(handles), 6, int(fw / 1.45)))
    legend_h = 0.25 + 0.17 * int(np.ceil(len(handles) / leg_cols)) if handles else 0.0
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
                   bbox_to_anchor=(0.5, 0.0))
    return _save(fig, path, dpi)


def plot_territory_share(results: Results, path, dpi: int = 110) -> Figure:
    """Share of the theatre's area held by each faction over time; saves a PNG."""
    fig = _new_figure(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    wide = _series(results, "share_territory_area")
    if wide is None:
        _note(ax, "no 'share_territory_area' in this run's time series")
    else:
        cols = dict(zip(results.factions, _factions_colours(results)))
        order = [f for f in results.factions if f in wide.columns]
        order += [f for f in wide.columns if f not in order and f != "ALL"]
        for i, f in enumerate(order):
            c = cols.get(f, _SERIES_COLOURS[i % len(_SERIES_COLOURS)])
            if f == "UNGOVERNED":
                ax.plot(wide.index, wide[f], color="#8C8C8C", lw=1.4, ls="--", label="ungoverned")
                continue
            light = np.dot(to_rgba(c)[:3], (0.2126, 0.7152, 0.0722)) > 0.7  # e.g. yellow on white
            ax.plot(wide.index, wide[f], color=c, lw=2.2 if f == "ISIS" else 1.5, label=f,
                    zorder=5 if f == "ISIS" else 2,
                    path_effects=[patheffects.withStroke(linewidth=2.6, foreground="#555555")]
                    if light else None)
        ax.set_ylabel("share of theatre area")
        ax.set_ylim(0, max(0.05, float(np.nanmax(wide[order].to_numpy())) * 1.08) if order else 1)
        from .history import overlay_isis_area

        overlay_isis_area(ax, results)  # history where it exists (IHS, officials)
        _date_axis(ax)
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Territorial control", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_conflict_dyads(results: Results, path, top: int = 6, dpi: int = 110) -> Figure:
    """New battles per step for the top dyads (lines) and, below, battles between former
    allies and against ISIS; saves a PNG."""
    fig = _new_figure(7.5, 6.0)
    ax1 = fig.add_subplot(2, 1, 1)
    ax2 = fig.add_subplot(2, 1, 2, sharex=ax1)
    wide = _series(results, "new_battles")
    if wide is not None:
        wide = wide[[c for c in wide.columns if "|" in str(c)]]
    if wide is None or wide.shape[1] == 0:
        _note(ax1, "no 'new_battles' dyad series in this run")
    else:
        totals = wide.sum().sort_values(ascending=False)
        keep = list(totals.index[:top])
        for i, d in enumerate(keep):
            a, _, b = str(d).partition("|")
            ax1.plot(wide.index, wide[d], lw=1.5, color=_SERIES_COLOURS[i % len(_SERIES_COLOURS)],
                     label=f"{a} – {b}")
        rest = [c for c in wide.columns if c not in keep]
        if rest:
            ax1.plot(wide.index, wide[rest].sum(axis=1), lw=1.0, color="#999999", ls="--",
                     label=f"other ({len(rest)} dyads)")
        ax1.set_ylabel("new battles / step")
        ax1.set_title(f"Battles by dyad (top {len(keep)})", fontsize=10)
        _date_axis(ax1)
        ax1.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    drawn = False
    for metric, label, colour, lw in (
            ("new_battles_vs_isis", "against ISIS", FACTION_COLOURS["ISIS"], 1.6),
            ("new_battles_former_allies", "between former allies", "#CC3311", 2.4)):
        w = _series(results, metric)
        if w is None:
            continue
        ax2.plot(w.index, _total(w), color=colour, lw=lw, label=label)
        drawn = True
    if drawn:
        ax2.set_ylabel("new battles / step")
        ax2.set_title("Former allies vs. the fight against ISIS", fontsize=10)
        _date_axis(ax2)
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        _note(ax2, "no 'new_battles_former_allies' / 'new_battles_vs_isis' in this run")
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_displacement(results: Results, path, dpi: int = 110) -> Figure:
    """Displaced, abroad and returnees (stocks, top) and new displacement (flow, bottom).

    The stocks include the people already displaced on 1 July 2017 (``n_displaced``,
    ``n_abroad``); dashed lines show what remains of that initial stock
    (``n_displaced_initial``, ``n_abroad_initial``), so the gap is the displacement since."""
    fig = _new_figure(7.5, 5.6)
    ax1 = fig.add_subplot(2, 1, 1)
    ax2 = fig.add_subplot(2, 1, 2, sharex=ax1)
    drawn = False
    for metric, label, colour, ls in (
            ("n_displaced", "internally displaced (all)", "#0072B2", "-"),
            ("n_displaced_initial", "of whom displaced before Jul 2017", "#0072B2", "--"),
            ("n_abroad", "refugees abroad (all)", "#E69F00", "-"),
            ("n_abroad_initial", "of whom abroad before Jul 2017", "#E69F00", "--"),
            ("cum_returnees", "returns since Jul 2017 (cumulative)", "#009E73", "-")):
        w = _series(results, metric)
        if w is None:
            continue
        ax1.plot(w.index, _total(w) / 1e6, color=colour, lw=1.8 if ls == "-" else 1.2, ls=ls,
                 label=label)
        drawn = True
    if drawn:
        from .history import overlay_displacement

        overlay_displacement(ax1, results)  # reported displacement of single operations
        ax1.set_ylabel("million people")
        ax1.set_title("Displacement: stocks including those displaced before July 2017", fontsize=10)
        _date_axis(ax1)
        ax1.legend(fontsize=7, frameon=False)
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
        ax2.set_ylabel("thousand people / step")
        ax2.set_title("New displacement since July 2017 (people leaving home each week)", fontsize=10)
        _date_axis(ax2)
    fig.tight_layout()
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
    title = fig.text(0.5, 0.955, "", ha="center", va="center", fontsize=9)
    d64 = _dates64(results)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi=dpi):
        for t in steps:
            im.set_data(frame(t))
            title.set_text(f"Control {d64[t]}  (step {t})")
            writer.grab_frame()
    return fig


def save_run_plots(results: Results, outdir, map_dates: Sequence[str], gif: bool = True,
                   dpi: int = 110) -> list[Path]:
    """Write the standard plots of a run into ``outdir``; returns the paths written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    out = [outdir / n for n in ("control_maps.png", "territory_share.png", "conflict_dyads.png",
                                "displacement.png")]
    plot_control_maps(results, map_dates, out[0], dpi=dpi)
    plot_territory_share(results, out[1], dpi=dpi)
    plot_conflict_dyads(results, out[2], dpi=dpi)
    plot_displacement(results, out[3], dpi=dpi)
    if gif:
        p = outdir / "control.gif"
        make_control_gif(results, p)
        out.append(p)
    return out
