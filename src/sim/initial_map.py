"""The control map of 1 July 2017, built from data (pure functions, no model state).

Inputs (``src/sim/data/history/``, provenance in ``PROVENANCE.md``):

- ``initial_control_2017-07.csv`` (200 places), ``initial_control_2017-07_extra.csv`` (338
  places that close the enclaves and the rings of their besiegers) and
  ``initial_control_2017-07_added.csv`` (9 places added for issue 12): who held each place
  around 1 July 2017;
- ``initial_pockets_2017-07.csv``: the named pieces of ground of July 2017 (enclaves, pockets,
  main grounds) with an anchor point and, where a source gives one, the fighters inside.

Rules (docs/ODD.md, section 5.2):

1. *Nearest place per country.*  Each theatre cell takes the controller of the nearest place of
   its own country (distances with longitude scaled by cos of the map's mid-latitude).
2. *Small enclaves are kept.*  Where places fall in one cell, the cell takes the place nearest
   to its centre (ties: the later row).  A place that loses its cell to another controller, and
   whose side holds none of the 8 cells around, moves to the free neighbour cell (one with no
   place) nearest to it.  So a pocket smaller than a cell (Yarmouk camp beside the south
   Damascus rebels) is shifted by at most one cell instead of vanishing, and no pocket
   depends on which file or row came first.  A district of a city (``[district of: X]`` in its
   note: Sheikh Maqsoud in Aleppo) never wins a cell it shares with another place, whatever
   the distances: the cell's people are the city's; shifted one cell over, it holds that cell
   only (it does not seed the nearest-place fill).  A place whose note says ``[extent: one cell]``
   (a security square inside a town another side holds) takes its own cell only.
3. *Open desert is not held ground.*  Cells nearest an ISIS row marked as open desert (the
   extra file's ``[zone: open desert]`` rows and the older file's ``desert ...`` rows coded ISIS)
   are ungoverned at step 0 and flagged in :attr:`InitialMap.open_desert` (ISIS roamed them
   but held no towns or roads; IHS: 36,200 km2 of effective control on 26 June 2017).
   Desert rows of other controllers (Iraqi state, al-Tanf, the rebels by the Jordanian border)
   stay held: those garrisons sat on the roads and posts of that desert.
4. *No orphan ground.*  A piece of a faction's ground (4-connected) with none of its places in
   it lies beyond a lake, a border or open desert from them: it goes to the holder of most of
   the cells around it.

:func:`pieces` labels each faction's ground into 4-connected pieces and names them from the
pocket table; :func:`pocket_garrisons` splits a faction's garrison over its pieces.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .config import FACTIONS
from .rules.control import OUTSIDE, UNGOVERNED

HISTORY = Path(__file__).parent / "data" / "history"
CONTROL_FILES = ("initial_control_2017-07.csv", "initial_control_2017-07_extra.csv",
                 "initial_control_2017-07_added.csv")
POCKETS_FILE = "initial_pockets_2017-07.csv"
CONTROLLERS = FACTIONS  # the faction codes the place lists may use
COUNTRIES = {"Syria": "SYR", "Iraq": "IRQ"}
FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)  # 4-connectivity


@dataclass
class Place:
    name: str
    lat: float
    lon: float
    country: str  # ISO-3
    controller: str
    open_desert: bool
    zone: str
    file: str
    line: int
    one_cell: bool = False  # ``[extent: one cell]``: holds its own cell only (rule 2)
    district: bool = False  # ``[district of: X]``: loses a shared cell to the other place (rule 2)


@dataclass
class Pocket:
    name: str
    controller: str
    country: str  # ISO-3
    lat: float
    lon: float
    kind: str  # "main" (a faction's main ground) or "enclave"
    fighters: float  # NaN: no sourced figure
    source: str


@dataclass
class InitialMap:
    owner: np.ndarray  # int8: faction index, UNGOVERNED, OUTSIDE
    open_desert: np.ndarray  # bool: ungoverned at step 0 because ISIS roamed it (contested)
    places: list[Place] = field(default_factory=list)
    shared_cells: int = 0  # places that lost their cell to a place of another controller (rule 2)
    moved: list[str] = field(default_factory=list)  # places moved to a free neighbour cell (rule 2)


def _zone(note: str) -> str:
    m = re.search(r"\[zone:\s*([^\]]+)\]", note or "")
    return m.group(1).strip() if m else ""


def read_places(paths=None, box=None) -> list[Place]:
    """Rows of the control files, checked: lat/lon numbers inside ``box``
    (``((lon0, lon1), (lat0, lat1))``), a known controller and country."""
    out = []
    for p in paths or [HISTORY / f for f in CONTROL_FILES]:
        p = Path(p)
        with open(p, encoding="utf-8", newline="") as fh:
            for i, r in enumerate(csv.DictReader(fh), start=2):
                try:
                    la, lo = float(r["lat"]), float(r["lon"])
                except (TypeError, ValueError):
                    raise ValueError(f"{p.name} line {i}: bad lat/lon {r.get('lat')!r}, {r.get('lon')!r}") from None
                if box is not None:
                    (x0, x1), (y0, y1) = box
                    if not (y0 <= la <= y1 and x0 <= lo <= x1):
                        raise ValueError(f"{p.name} line {i}: lat/lon {la}, {lo} outside the data's "
                                         f"box ({y0}..{y1} N, {x0}..{x1} E)")
                if r["controller"] not in CONTROLLERS:
                    raise ValueError(f"{p.name} line {i}: unknown controller {r['controller']!r}")
                if r["country"] not in COUNTRIES:
                    raise ValueError(f"{p.name} line {i}: unknown country {r['country']!r}")
                zone = _zone(r.get("note", ""))
                name = r["place"]
                desert = r["controller"] == "ISIS" and (
                    zone == "open desert" or name.lower().startswith("desert"))
                out.append(Place(name, la, lo, COUNTRIES[r["country"]], r["controller"], desert,
                                 zone, p.name, i, "[extent: one cell]" in r.get("note", ""),
                                 "[district of:" in r.get("note", "")))
    return out


def read_pockets(path=None) -> list[Pocket]:
    p = Path(path or HISTORY / POCKETS_FILE)
    out = []
    with open(p, encoding="utf-8", newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh), start=2):
            if r["controller"] not in CONTROLLERS or r["country"] not in COUNTRIES:
                raise ValueError(f"{p.name} line {i}: unknown controller or country")
            if r["kind"] not in ("main", "enclave"):
                raise ValueError(f"{p.name} line {i}: kind must be main or enclave")
            f = r.get("fighters", "").strip()
            out.append(Pocket(r["pocket"], r["controller"], COUNTRIES[r["country"]], float(r["lat"]),
                              float(r["lon"]), r["kind"], float(f) if f else float("nan"),
                              r.get("source", "")))
    return out


def build_initial_map(grid, country: np.ndarray, country_names, theatre: np.ndarray,
                      fidx: dict[str, int], places: list[Place] | None = None) -> InitialMap:
    """Owner of every cell on 1 July 2017 (rules 1-3 of the module docstring).  Places of a
    controller missing from ``fidx`` (a faction left out of the configuration) are skipped."""
    places = read_places() if places is None else places
    shape = country.shape
    owner = np.full(shape, OUTSIDE, np.int8)
    owner[theatre] = UNGOVERNED
    desert_map = np.zeros(shape, bool)
    use = [p for p in places if p.controller in fidx and p.country in country_names]
    if not use:
        return InitialMap(owner, desert_map, [])
    lat = np.array([p.lat for p in use])
    lon = np.array([p.lon for p in use])
    rr, cc = grid.rowcol(lat, lon)
    rr, cc = np.asarray(rr, np.int64), np.asarray(cc, np.int64)
    inside = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
    code = np.array([fidx[p.controller] for p in use])
    desert = np.array([p.open_desert for p in use])
    ctry = np.array([country_names.index(p.country) for p in use])
    col_scale = float(np.cos(np.deg2rad(0.5 * (grid.lat_min + grid.lat_max))))
    # rule 2: one place per cell (the nearest to the cell's centre); a place that loses its
    # cell and has no place of its side in the 8 cells around moves to the free neighbour cell
    # (no place in it) nearest to it, so a pocket smaller than a cell is kept
    clat, clon = grid.latlon(rr, cc)
    d_own = np.hypot(lat - clat, (lon - clon) * col_scale)
    winner: dict[tuple[int, int, int], int] = {}
    one_cell = np.array([p.one_cell for p in use])
    district = np.array([p.district for p in use])
    for k in np.lexsort((-np.arange(len(use)), d_own, district)):  # districts last, then nearest first; ties: later row
        if inside[k] and not one_cell[k]:
            winner.setdefault((int(ctry[k]), int(rr[k]), int(cc[k])), int(k))
    taken = {(r, c) for _, r, c in winner}
    shared = 0
    moved = []
    own_cell: list[tuple[tuple[int, int, int], int]] = []  # (cell, place) stamped after the fill
    for k in range(len(use)):
        key = (int(ctry[k]), int(rr[k]), int(cc[k]))
        if not inside[k] or one_cell[k] or code[winner[key]] == code[k]:
            continue
        shared += 1
        r0, c0 = key[1], key[2]
        around = [(key[0], r0 + dr, c0 + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
        if any(a in winner and code[winner[a]] == code[k] for a in around):
            continue
        free = [a for a in around if 0 <= a[1] < shape[0] and 0 <= a[2] < shape[1]
                and (a[1], a[2]) not in taken and theatre[a[1], a[2]] and country[a[1], a[2]] == a[0]]
        if not free:
            continue
        flat, flon = grid.latlon(np.array([a[1] for a in free]), np.array([a[2] for a in free]))
        j = int(np.argmin(np.hypot(flat - lat[k], (flon - lon[k]) * col_scale)))
        if district[k]:  # a city district shifted off its city's cell holds that cell only
            own_cell.append((free[j], int(k)))
        else:
            winner[free[j]] = int(k)
        taken.add((free[j][1], free[j][2]))
        moved.append(use[k].name)
    # rule 1: nearest place of the same country
    for ci in np.unique(ctry):
        seeds = [(key, k) for key, k in winner.items() if key[0] == ci]
        if not seeds:
            continue
        seed_map = np.ones(shape, bool)
        code_map = np.full(shape, UNGOVERNED, np.int16)
        des_map = np.zeros(shape, bool)
        for (_, r, c), k in seeds:
            seed_map[r, c] = False
            code_map[r, c] = code[k]
            des_map[r, c] = desert[k]
        _, (ir, ic) = ndimage.distance_transform_edt(seed_map, sampling=(1.0, col_scale),
                                                     return_indices=True)
        m = theatre & (country == ci)
        owner[m] = code_map[ir[m], ic[m]]
        desert_map[m] = des_map[ir[m], ic[m]]
    # rule 3: open desert is ungoverned (roamed, not held)
    owner[desert_map] = UNGOVERNED
    # places of one cell (a security square inside a town held by another side)
    for k in np.flatnonzero(one_cell & inside):
        if theatre[rr[k], cc[k]]:
            owner[rr[k], cc[k]] = code[k]
            desert_map[rr[k], cc[k]] = False
            winner[(int(ctry[k]), int(rr[k]), int(cc[k]))] = int(k)
    for key, k in own_cell:
        owner[key[1], key[2]] = code[k]
        winner[key] = k
    # rule 4: a piece of ground with no place of its controller in it is an artefact of the
    # nearest-place fill (it lies beyond a lake, a border or open desert from its places): it
    # goes to whoever holds most of the cells around it (open desert stays open desert)
    seeded = np.zeros((int(code.max()) + 1, *shape), bool)
    for (_, r, c), k in winner.items():
        seeded[code[k], r, c] = not desert[k]
    for f in np.unique(owner[owner >= 0]):
        labels, n = ndimage.label(owner == f, structure=FOUR)
        # a place just outside the theatre (across a border) seeds the cells next to it
        near = seeded[f] | ndimage.binary_dilation(seeded[f] & ~theatre, np.ones((3, 3), bool))
        has = np.bincount(labels[near], minlength=n + 1) > 0
        for lab in np.flatnonzero(~has[1:]) + 1:
            piece = labels == lab
            ring = ndimage.binary_dilation(piece, FOUR) & ~piece & theatre
            if not ring.any():  # an island (in a lake): its diagonal neighbours decide
                ring = ndimage.binary_dilation(piece, np.ones((3, 3), bool)) & ~piece & theatre
            if not ring.any():  # cut off all round (a lake island): nobody holds it
                owner[piece] = UNGOVERNED
                continue
            vals, cnt = np.unique(owner[ring], return_counts=True)
            new = vals[np.argmax(cnt)]
            if new == f:  # only its own ground diagonally around (an island): nobody's
                new = UNGOVERNED
            owner[piece] = new
            desert_map[piece] = bool(new == UNGOVERNED and desert_map[ring].any())
    return InitialMap(owner, desert_map, use, shared, moved)


def area_km2(grid) -> np.ndarray:
    a = grid.cell_area_km2
    return np.broadcast_to(a, grid.shape) if np.ndim(a) else np.full(grid.shape, a)


@dataclass
class Piece:
    faction: int
    label: int  # 1-based label in the faction's labelling
    cells: int
    area_km2: float
    name: str  # from the pocket table, or "" (an unnamed fragment)
    kind: str  # "main", "enclave" or ""
    fighters: float  # sourced fighters (NaN: none)
    mask: np.ndarray = field(repr=False, default=None)


def pieces(owner: np.ndarray, faction: int, grid, pockets: list[Pocket] | None = None,
           faction_name: str = "") -> list[Piece]:
    """The faction's ground as 4-connected pieces, largest first, each named by the pocket
    table rows of this faction whose anchor cell lies in it (a piece may hold several named
    pockets: their names are joined with " + " and their fighters summed)."""
    own = owner == faction
    labels, n = ndimage.label(own, structure=FOUR)
    area = area_km2(grid)
    sums = ndimage.sum_labels(area, labels, index=np.arange(1, n + 1)) if n else []
    cnt = np.bincount(labels.ravel(), minlength=n + 1)
    names: dict[int, list[Pocket]] = {}
    for pk in pockets or []:
        if pk.controller != faction_name:
            continue
        r, c = grid.rowcol(np.array([pk.lat]), np.array([pk.lon]))
        r, c = int(np.asarray(r)[0]), int(np.asarray(c)[0])
        if 0 <= r < owner.shape[0] and 0 <= c < owner.shape[1]:
            lab = labels[r, c]
            if lab == 0:  # anchor just off the piece (coarse grid): nearest own cell within 1
                win = labels[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
                lab = int(win.max())
            if lab:
                names.setdefault(int(lab), []).append(pk)
    out = []
    for lab in range(1, n + 1):
        pks = names.get(lab, [])
        fighters = [p.fighters for p in pks if np.isfinite(p.fighters)]
        out.append(Piece(faction, lab, int(cnt[lab]), float(sums[lab - 1]),
                         " + ".join(p.name for p in pks),
                         "main" if any(p.kind == "main" for p in pks) else ("enclave" if pks else ""),
                         float(sum(fighters)) if fighters else float("nan"), labels == lab))
    out.sort(key=lambda p: -p.area_km2)
    return out


def main_piece(ps: list[Piece]) -> Piece | None:
    """A faction's main ground: the piece named ``main`` in the pocket table, else the largest."""
    if not ps:
        return None
    named = [p for p in ps if p.kind == "main"]
    return max(named, key=lambda p: p.area_km2) if named else ps[0]


def pocket_garrisons(ps: list[Piece], weights: np.ndarray, total: float,
                     max_share: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Split a faction's garrison ``total`` over its pieces.

    Every piece other than the main ground is a pocket its fighters cannot leave.  A pocket
    with a sourced figure gets that many fighters (all sourced pockets together at most
    ``max_share`` of ``total``, scaled down to fit).  The rest of the garrison is shared by
    weight (people and key places) between the main ground and the pockets without a figure;
    this function places the pockets' shares and returns the main ground's mask (the caller
    places the main ground's share there).  Returns (fighters per cell in the pockets, main
    ground mask)."""
    out = np.zeros(weights.shape, np.float64)
    main = main_piece(ps)
    if main is None:
        return out, np.zeros(weights.shape, bool)
    sourced = [p for p in ps if p is not main and np.isfinite(p.fighters)]
    want = sum(p.fighters for p in sourced)
    scale = min(1.0, max_share * total / want) if want > 0 else 0.0
    rest = total - want * scale
    w_rest = sum(float(weights[p.mask].sum()) for p in ps if p is main or not np.isfinite(p.fighters))
    for p in ps:
        if p is main:
            continue
        w = np.where(p.mask, weights, 0.0)
        ws = float(w.sum())
        if ws <= 0:
            continue
        f = p.fighters * scale if np.isfinite(p.fighters) else rest * ws / max(w_rest, 1e-12)
        out += w * (f / ws)
    return out, main.mask
