"""The landscape: numpy layers of the Syria–Iraq region on a :class:`~sim.grid.GridSpec`.

Built from the bundled data in ``sim/data/geo`` (see ``sim/data/PROVENANCE.md``):

* ``terrain.npz`` (0.05°, rows south->north in the file; flipped here so row 0 = north):
  elevation and terrain class, resampled to the chosen resolution by nearest neighbour;
* ``countries.geojson`` / ``admin1.geojson`` / ``lakes.geojson``: rasterised at cell centres;
* ``rivers.geojson``: rasterised by dense sampling along each line (a cell is a river cell if a
  permanent river passes through it);
* ``places.csv``: the gazetteer and the population kernel.

Every layer is an array of shape ``grid.shape``; nothing here loops over cells in Python
(loops run over polygons, rivers and places only).
"""

from __future__ import annotations

import csv
import difflib
import json
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath
from scipy import ndimage

from .config import GeographyConfig
from .grid import GridSpec

DATA = Path(str(resources.files("sim") / "data"))
GEO = DATA / "geo"

TERRAIN_CLASSES = (
    "sea", "lake", "marsh", "river_valley", "irrigated_plain", "rainfed_plain",
    "steppe", "desert", "hills", "mountains",
)
MAJOR_RIVERS = ("Euphrates", "Tigris", "Shatt al-Arab")
DATA_BBOX = ((34.5, 48.9), (28.9, 38.0))  # (lon range, lat range) of the bundled data
# bytes per cell the model keeps: geography layers (~40 B) + per faction float32 fields
# (force, presence, scratch: ~5 x 4 B) x 10 factions + history of control/damage for outputs
BYTES_PER_CELL_STATIC = 64
BYTES_PER_CELL_PER_FACTION = 24


class PlaceNotFound(KeyError):
    """An unknown place name; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class MemoryBudgetError(ValueError):
    """The requested grid would exceed the configured memory budget."""


@dataclass
class Places:
    """The gazetteer: one row per place (arrays of equal length)."""

    name: np.ndarray
    alt: list[list[str]]
    lat: np.ndarray
    lon: np.ndarray
    row: np.ndarray
    col: np.ndarray
    population: np.ndarray  # NaN where unknown
    country: np.ndarray  # ISO-2 as in places.csv
    admin1: np.ndarray
    key: np.ndarray  # bool
    suburb_of: np.ndarray
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.name)

    def build_index(self) -> None:
        idx: dict[str, int] = {}
        # key places win over same-named villages; larger places win over smaller ones
        order = np.lexsort((-np.nan_to_num(self.population), ~self.key))
        for i in order[::-1]:
            for n in [self.name[i], *self.alt[i]]:
                idx[normalise_name(n)] = int(i)
        self._index = idx

    def get(self, name: str) -> int | None:
        """Index of a place by name or alternative spelling, None if unknown (no suggestions:
        cheap)."""
        return self._index.get(normalise_name(name))

    def find(self, name: str) -> int:
        """Index of a place by name or alternative spelling (case/accent-insensitive)."""
        k = normalise_name(name)
        if k in self._index:
            return self._index[k]
        close = difflib.get_close_matches(k, list(self._index), n=5, cutoff=0.6)
        names = sorted({str(self.name[self._index[c]]) for c in close})
        hint = f"; did you mean: {', '.join(names)}?" if names else ""
        raise PlaceNotFound(f"unknown place {name!r}{hint}")


def normalise_name(name: str) -> str:
    s = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    s = s.lower().replace("'", "").replace("`", "").replace("-", " ")
    return " ".join(s.split())


@dataclass
class Geography:
    """All static layers of the landscape (arrays of shape ``grid.shape``, row 0 = north)."""

    name: str
    grid: GridSpec
    country: np.ndarray  # int8 index into country_names, -1 = none (sea)
    country_names: tuple[str, ...]
    admin1: np.ndarray  # int16 index into admin1_names, -1 = none
    admin1_names: tuple[str, ...]
    terrain: np.ndarray  # uint8 index into TERRAIN_CLASSES
    elevation: np.ndarray  # float32 metres
    river: np.ndarray  # bool: a permanent river crosses the cell
    major_river: np.ndarray  # bool: Euphrates / Tigris / Shatt al-Arab
    named_rivers: dict[str, np.ndarray]  # name -> bool mask (traced named rivers)
    lake: np.ndarray  # bool
    river_dist_km: np.ndarray  # float32
    movement_cost: np.ndarray  # float32, relative cost of crossing a cell (>= 1, inf-free)
    population: np.ndarray  # float32 people (2017)
    theatre: np.ndarray  # bool: land cells of the theatre countries where factions act
    border: np.ndarray  # bool: theatre cell adjacent to another country
    oil: np.ndarray  # float32 0..1 oil/gas value
    key_place: np.ndarray  # float32 0..1 (1 at key places' cells)
    places: Places
    sources: dict[str, str] = field(default_factory=dict)
    river_lines: dict[str, list[np.ndarray]] = field(default_factory=dict)  # name -> [(n, 2) lon/lat]

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    def country_mask(self, iso3: str) -> np.ndarray:
        if iso3 not in self.country_names:
            return np.zeros(self.shape, bool)
        return self.country == self.country_names.index(iso3)

    def place_cell(self, name: str) -> tuple[int, int]:
        """(row, col) of a named place; raises :class:`PlaceNotFound` with close matches."""
        i = self.places.find(name)
        return int(self.places.row[i]), int(self.places.col[i])

    def population_by_country(self) -> dict[str, float]:
        return {c: float(self.population[self.country == i].sum())
                for i, c in enumerate(self.country_names)}


# --------------------------------------------------------------------------------------
# memory budget
# --------------------------------------------------------------------------------------
def estimate_memory_mb(grid: GridSpec, n_factions: int = 10, n_steps: int = 104) -> float:
    cells = grid.n_cells
    per_cell = BYTES_PER_CELL_STATIC + BYTES_PER_CELL_PER_FACTION * n_factions + 6 * n_steps
    return cells * per_cell / 1e6


def check_memory(grid: GridSpec, budget_mb: float, n_factions: int = 10, n_steps: int = 104) -> None:
    need = estimate_memory_mb(grid, n_factions, n_steps)
    if need > budget_mb:
        raise MemoryBudgetError(
            f"geography.resolution_deg = {grid.res:g} needs about {need:,.0f} MB "
            f"({grid.n_rows} x {grid.n_cols} cells), over geography.memory_budget_mb = {budget_mb:,.0f}; "
            "choose a coarser resolution or raise the budget"
        )


# --------------------------------------------------------------------------------------
# rasterisers (loops over shapes, never over cells)
# --------------------------------------------------------------------------------------
def _cell_centres(grid: GridSpec) -> np.ndarray:
    lat, lon = np.meshgrid(grid.lats, grid.lons, indexing="ij")
    return np.column_stack([lon.ravel(), lat.ravel()])


def _polygon_rings(geom: dict):
    if geom["type"] == "Polygon":
        yield geom["coordinates"]
    elif geom["type"] == "MultiPolygon":
        yield from geom["coordinates"]


def rasterize_polygons(grid: GridSpec, features: list[dict], pts: np.ndarray | None = None) -> np.ndarray:
    """Index of the feature containing each cell centre (-1 = none); later features win."""
    if pts is None:
        pts = _cell_centres(grid)
    out = np.full(grid.n_cells, -1, dtype=np.int16)
    for i, feat in enumerate(features):
        inside = np.zeros(grid.n_cells, bool)
        for rings in _polygon_rings(feat["geometry"]):
            outer = np.asarray(rings[0], float)
            lo, hi = outer.min(0), outer.max(0)
            cand = np.flatnonzero((pts[:, 0] >= lo[0]) & (pts[:, 0] <= hi[0])
                                  & (pts[:, 1] >= lo[1]) & (pts[:, 1] <= hi[1]))
            if cand.size == 0:
                continue
            hit = MplPath(outer).contains_points(pts[cand])
            for hole in rings[1:]:
                hit &= ~MplPath(np.asarray(hole, float)).contains_points(pts[cand])
            inside[cand[hit]] = True
        out[inside] = i
    return out.reshape(grid.shape)


def _line_parts(geom: dict):
    if geom["type"] == "LineString":
        yield np.asarray(geom["coordinates"], float)
    elif geom["type"] == "MultiLineString":
        for part in geom["coordinates"]:
            yield np.asarray(part, float)


def rasterize_lines(grid: GridSpec, geoms: list[dict]) -> np.ndarray:
    """Bool mask of cells that any of the lines passes through (dense sampling, vectorised)."""
    mask = np.zeros(grid.shape, bool)
    step = grid.res / 4.0
    for geom in geoms:
        for xy in _line_parts(geom):
            if len(xy) < 2:
                continue
            seg = np.diff(xy, axis=0)
            n = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / step).astype(int))
            t = np.concatenate([np.arange(k) / k for k in n])
            start = np.repeat(xy[:-1], n, axis=0)
            pts = start + np.repeat(seg, n, axis=0) * t[:, None]
            pts = np.vstack([pts, xy[-1:]])
            r, c = grid.rowcol(pts[:, 1], pts[:, 0])
            ok = grid.contains(r, c)
            mask[r[ok], c[ok]] = True
    return mask


def _load_geojson(name: str) -> list[dict]:
    with open(GEO / name, encoding="utf-8") as fh:
        return json.load(fh)["features"]


# --------------------------------------------------------------------------------------
# places
# --------------------------------------------------------------------------------------
def load_places(grid: GridSpec) -> Places:
    with open(GEO / "places.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lat = np.array([float(r["lat"]) for r in rows])
    lon = np.array([float(r["lon"]) for r in rows])
    pop = np.array([float(r["population"]) if r["population"] else np.nan for r in rows])
    row, col = grid.rowcol(lat, lon)
    places = Places(
        name=np.array([r["name"] for r in rows]),
        alt=[[a for a in r["name_alt"].split("|") if a] for r in rows],
        lat=lat, lon=lon, row=row, col=col, population=pop,
        country=np.array([r["country"] for r in rows]),
        admin1=np.array([r["admin1"] for r in rows]),
        key=np.array([r["key_place"] == "1" for r in rows]),
        suburb_of=np.array([r["suburb_of"] for r in rows]),
    )
    places.build_index()
    return places


# Oil and gas fields and refineries that factions fought over (approximate points, +-10 km;
# hand-entered from public maps of the 2017 theatre; value 0..1 by importance).
OIL_SITES = (
    ("al-Omar oil field", 34.99, 40.60, 1.0),
    ("Conoco gas plant", 35.30, 40.30, 0.7),
    ("Tanak oil field", 34.93, 40.80, 0.5),
    ("Rmeilan fields", 36.90, 41.95, 0.8),
    ("Shaer gas field", 34.78, 37.68, 0.6),
    ("Jazal field", 34.85, 37.95, 0.3),
    ("Kirkuk fields", 35.50, 44.35, 1.0),
    ("Bai Hassan field", 35.63, 44.05, 0.7),
    ("Baiji refinery", 34.93, 43.49, 0.8),
    ("Qayyarah field", 35.82, 43.20, 0.5),
    ("Ajil field", 34.72, 43.82, 0.4),
    ("Rumaila field", 30.55, 47.30, 1.0),
    ("West Qurna field", 31.05, 47.35, 0.8),
    ("Majnoon field", 31.10, 47.60, 0.6),
)


def _stamp_sites(grid: GridSpec, sites, sigma_cells: float) -> np.ndarray:
    out = np.zeros(grid.shape, np.float32)
    lat = np.array([s[1] for s in sites])
    lon = np.array([s[2] for s in sites])
    w = np.array([s[3] for s in sites], np.float32)
    r, c = grid.rowcol(lat, lon)
    ok = grid.contains(r, c)
    np.add.at(out, (r[ok], c[ok]), w[ok])
    if sigma_cells > 0:
        peak = out.max()
        out = ndimage.gaussian_filter(out, sigma_cells, mode="constant")
        if out.max() > 0:
            out *= peak / out.max()
    return np.clip(out, 0, 1)


# --------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------
def grid_for(cfg: GeographyConfig) -> GridSpec:
    return GridSpec(cfg.lon_min, cfg.lon_max, cfg.lat_min, cfg.lat_max, cfg.resolution_deg)


def build_geography(cfg: GeographyConfig, n_factions: int = 10, n_steps: int = 104) -> Geography:
    """Build (or fetch from the in-process cache) the landscape for ``cfg``.

    Raises :class:`MemoryBudgetError` before allocating when the grid is too fine.
    """
    grid = grid_for(cfg)
    if cfg.kind == "synthetic":  # its extent comes from synthetic_rows x synthetic_cols
        grid = GridSpec(cfg.lon_min, cfg.lon_min + cfg.synthetic_cols * cfg.resolution_deg,
                        cfg.lat_max - cfg.synthetic_rows * cfg.resolution_deg, cfg.lat_max,
                        cfg.resolution_deg)
    check_memory(grid, cfg.memory_budget_mb, n_factions, n_steps)
    key = _cfg_key(cfg)
    return _build_cached(key)


def _cfg_key(cfg: GeographyConfig) -> tuple:
    import dataclasses
    d = dataclasses.asdict(cfg)
    return tuple(sorted((k, _freeze(v)) for k, v in d.items()))


def _freeze(v):
    if isinstance(v, dict):  # tagged, so that an empty dict thaws back to a dict
        return ("__dict__", tuple(sorted((k, _freeze(x)) for k, x in v.items())))
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


@lru_cache(maxsize=4)
def _build_cached(key: tuple) -> Geography:
    d = {k: _thaw(v) for k, v in key}
    cfg = GeographyConfig(**d)
    if cfg.kind == "synthetic":
        return build_synthetic(cfg)
    path = disk_cache_path(key)
    geo = _load_cached(path)
    if geo is None:
        geo = build_real(cfg)
        _store_cached(path, geo)
    return geo


# --------------------------------------------------------------------------------------
# on-disk cache of built real geographies
# --------------------------------------------------------------------------------------
CACHE_ENV = "SIM_CACHE_DIR"  # where built geographies are kept (default ~/.cache/syria-iraq-sim)
NO_CACHE_ENV = "SIM_NO_CACHE"  # set to 1 to build every time and write nothing


def disk_cache_path(key: tuple) -> Path | None:
    """File of the built geography for config ``key`` (None when caching is off).  The name
    hashes the config, the bundled map data, the source of the modules that build it and the
    Python/numpy/scipy/matplotlib versions, so any change to them builds afresh (a stale map cannot be read)."""
    import hashlib
    import os
    import sys

    import matplotlib
    import scipy

    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "syria-iraq-sim")
    h = hashlib.blake2b(repr(key).encode(), digest_size=16)
    # the libraries that rasterise and measure the map (matplotlib's Path, scipy.ndimage)
    versions = (sys.version_info[:2], np.__version__, scipy.__version__, matplotlib.__version__)
    h.update(repr(versions).encode())
    for f in sorted(GEO.rglob("*")) + [Path(__file__), Path(__file__).with_name("grid.py")]:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return root / f"geography-{h.hexdigest()}.pkl"


def _load_cached(path: Path | None) -> Geography | None:
    """The geography stored at ``path``, or None (no file, or unreadable: it is rebuilt)."""
    import pickle

    if path is None or not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            geo = pickle.load(fh)
    except Exception:  # a truncated or foreign file: build afresh
        return None
    return geo if isinstance(geo, Geography) else None


def _store_cached(path: Path | None, geo: Geography) -> None:
    """Write ``geo`` to ``path`` atomically; a read-only or full disk only skips the cache."""
    import os
    import pickle
    import tempfile

    if path is None:
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(geo, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _thaw(v):
    if isinstance(v, tuple) and len(v) == 2 and v[0] == "__dict__":
        return {k: _thaw(x) for k, x in v[1]}
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v


def _resample_from_terrain(grid: GridSpec, arr: np.ndarray, src: GridSpec) -> np.ndarray:
    """Nearest-neighbour resample of a (north-up) source layer onto ``grid``."""
    r, c = src.rowcol(grid.lats[:, None], grid.lons[None, :])
    r = np.clip(r, 0, src.n_rows - 1)
    c = np.clip(c, 0, src.n_cols - 1)
    return arr[r, c]


def build_real(cfg: GeographyConfig) -> Geography:
    grid = grid_for(cfg)
    tz = np.load(GEO / "terrain.npz", allow_pickle=False)
    src_lat, src_lon = tz["lat"].astype(float), tz["lon"].astype(float)
    step = float(np.round(src_lat[1] - src_lat[0], 6))
    src = GridSpec(float(src_lon[0] - step / 2), float(src_lon[-1] + step / 2),
                   float(src_lat[0] - step / 2), float(src_lat[-1] + step / 2), step)
    north_up = {k: tz[k][::-1] for k in ("elevation_m", "terrain_class")}
    src_names = [str(x) for x in tz["terrain_class_names"]]
    remap = np.array([TERRAIN_CLASSES.index(n) for n in src_names], np.uint8)
    terrain = remap[_resample_from_terrain(grid, north_up["terrain_class"], src)]
    elevation = _resample_from_terrain(grid, north_up["elevation_m"], src).astype(np.float32)

    pts = _cell_centres(grid)
    countries = _load_geojson("countries.geojson")
    country_names = tuple(f["properties"]["iso_a3"] for f in countries)
    country = rasterize_polygons(grid, countries, pts).astype(np.int8)
    admin = _load_geojson("admin1.geojson")
    admin1_names = tuple(f["properties"]["name"] for f in admin)
    admin1 = rasterize_polygons(grid, admin, pts)
    lakes_f = _load_geojson("lakes.geojson")
    lake = (rasterize_polygons(grid, lakes_f, pts) >= 0) | (terrain == TERRAIN_CLASSES.index("lake"))

    rivers_f = _load_geojson("rivers.geojson")
    perm = [f for f in rivers_f if f["properties"].get("permanent") or f["properties"]["name"] == "Balikh"]
    river = rasterize_lines(grid, [f["geometry"] for f in perm])
    named: dict[str, list] = {}
    for f in rivers_f:
        p = f["properties"]
        if p.get("named") and p.get("traced", False) or p["name"] == "Balikh":
            named.setdefault(p["name"], []).append(f["geometry"])
    named_rivers = {n: rasterize_lines(grid, g) for n, g in named.items()}
    river_lines = {n: [xy for geom in gs for xy in _line_parts(geom)] for n, gs in named.items()}
    major = np.zeros(grid.shape, bool)
    for n in MAJOR_RIVERS:
        if n in named_rivers:
            major |= named_rivers[n]

    # cells in SYR/IRQ with no governorate take the nearest governorate (as terrain.npz does)
    theatre_idx = [country_names.index(c) for c in cfg.theatre_countries if c in country_names]
    in_theatre_country = np.isin(country, theatre_idx)
    missing = in_theatre_country & (admin1 < 0)
    if missing.any() and (admin1 >= 0).any():
        _, (ir, ic) = ndimage.distance_transform_edt(admin1 < 0, return_indices=True)
        admin1 = np.where(missing, admin1[ir, ic], admin1)
    sea = terrain == TERRAIN_CLASSES.index("sea")
    land = (country >= 0) & ~sea
    theatre = in_theatre_country & land & ~lake
    places = load_places(grid)
    geo = _finish(cfg, grid, country, country_names, admin1.astype(np.int16), admin1_names, terrain,
                  elevation, river, major, named_rivers, lake, theatre, land, places,
                  sources={"terrain": "terrain.npz (pvlib/Mapzen elevation, GSHHG, Koppen-Geiger)",
                           "borders": "Natural Earth 4.1 admin-0, NE admin-1",
                           "rivers": "GSHHG 2.3.7 WDBII (LGPL-3+)",
                           "places": "GeoNames (CC BY 4.0)"})
    geo.river_lines = river_lines
    return geo


def _finish(cfg, grid, country, country_names, admin1, admin1_names, terrain, elevation, river,
            major, named_rivers, lake, theatre, land, places, sources) -> Geography:
    cell_km = grid.cell_km
    river_dist = ndimage.distance_transform_edt(~river).astype(np.float32) * cell_km if river.any() \
        else np.full(grid.shape, 1e3, np.float32)

    cost_table = np.array([cfg.movement_cost.get(n, 1.0) for n in TERRAIN_CLASSES], np.float32)
    movement = cost_table[terrain]
    movement = movement + cfg.river_crossing_cost * (river & ~major) + cfg.major_river_crossing_cost * major
    movement = np.where(lake, cost_table[TERRAIN_CLASSES.index("lake")], movement).astype(np.float32)

    # border: theatre cells next to a land cell of another country
    other = land & ~theatre & ~lake
    near_other = ndimage.binary_dilation(other, structure=np.ones((3, 3), bool))
    border = theatre & near_other
    # the Syria-Iraq border counts too
    if "SYR" in country_names and "IRQ" in country_names:
        syr = country == country_names.index("SYR")
        irq = country == country_names.index("IRQ")
        st = np.ones((3, 3), bool)
        border |= (syr & ndimage.binary_dilation(irq, st)) | (irq & ndimage.binary_dilation(syr, st))

    population = distribute_population(cfg, grid, places, terrain, country, country_names, theatre)

    key = np.zeros(grid.shape, np.float32)
    ok = grid.contains(places.row, places.col) & places.key
    key[places.row[ok], places.col[ok]] = 1.0
    oil = _stamp_sites(grid, OIL_SITES, sigma_cells=max(0.5, 5.0 / cell_km)) if cfg.kind == "real" \
        else np.zeros(grid.shape, np.float32)

    return Geography(
        name=cfg.name, grid=grid, country=country, country_names=country_names, admin1=admin1,
        admin1_names=admin1_names, terrain=terrain, elevation=elevation, river=river,
        major_river=major, named_rivers=named_rivers, lake=lake, river_dist_km=river_dist,
        movement_cost=movement, population=population, theatre=theatre, border=border, oil=oil,
        key_place=key, places=places, sources=sources,
    )


def distribute_population(cfg: GeographyConfig, grid: GridSpec, places: Places, terrain: np.ndarray,
                          country: np.ndarray, country_names, theatre: np.ndarray) -> np.ndarray:
    """2017 population per cell.

    Urban part: each place's population (GeoNames; blanks -> ``missing_place_population``;
    suburbs whose figure repeats the city are blank in the data) spread with a Gaussian kernel
    of sigma ``population_kernel_km``.  Rural part: a density per terrain class times cell area.
    Both are then scaled per theatre country to ``population_target`` (2017 in-country totals:
    Syria 18.3 M, UN OCHA HNO 2018; Iraq 37.6 M, World Bank 2017), which also absorbs the
    pre-war dates of many GeoNames figures.  Cells outside the theatre get no people.
    """
    pop = np.where(np.isnan(places.population), cfg.missing_place_population, places.population)
    pop = np.where((places.suburb_of != "") & np.isnan(places.population), 0.0, pop)
    urban = np.zeros(grid.shape, np.float64)
    ok = grid.contains(places.row, places.col)
    np.add.at(urban, (places.row[ok], places.col[ok]), pop[ok])
    sigma = cfg.population_kernel_km / grid.cell_km
    urban = ndimage.gaussian_filter(urban, sigma, mode="constant", truncate=3.0)
    dens = np.array([cfg.rural_density_per_km2.get(n, 0.0) for n in TERRAIN_CLASSES])
    rural = dens[terrain] * grid.cell_area_km2
    total = np.where(theatre, urban + rural, 0.0)
    for iso, target in cfg.population_target.items():
        if iso not in country_names:
            continue
        m = theatre & (country == country_names.index(iso))
        s = total[m].sum()
        if s > 0:
            total[m] *= target / s
    return total.astype(np.float32)


def build_synthetic(cfg: GeographyConfig) -> Geography:
    """A tiny hand-made map for fast tests: two countries split by a north-south border,
    a river along the middle row, a hill block, four places."""
    nr, nc = cfg.synthetic_rows, cfg.synthetic_cols
    res = cfg.resolution_deg
    grid = GridSpec(cfg.lon_min, cfg.lon_min + nc * res, cfg.lat_max - nr * res, cfg.lat_max, res)
    country_names = ("SYR", "IRQ")
    country = np.zeros(grid.shape, np.int8)
    country[:, nc // 2:] = 1
    admin1_names = ("West", "East")
    admin1 = country.astype(np.int16)
    terrain = np.full(grid.shape, TERRAIN_CLASSES.index("steppe"), np.uint8)
    terrain[: nr // 4, : nc // 4] = TERRAIN_CLASSES.index("hills")
    river = np.zeros(grid.shape, bool)
    river[nr // 2, :] = True
    terrain[river] = TERRAIN_CLASSES.index("river_valley")
    elevation = np.where(terrain == TERRAIN_CLASSES.index("hills"), 800.0, 300.0).astype(np.float32)
    lake = np.zeros(grid.shape, bool)
    theatre = np.ones(grid.shape, bool)
    land = theatre.copy()
    pts = [("Westtown", nr // 4, nc // 4, 50_000, "SY", "West", True),
           ("Rivercity", nr // 2 + 1, nc // 2 - 2, 200_000, "SY", "West", True),
           ("Easttown", nr // 3, 3 * nc // 4, 80_000, "IQ", "East", True),
           ("Southville", 3 * nr // 4, 2 * nc // 3, 20_000, "IQ", "East", False)]
    rows = np.array([p[1] for p in pts])
    cols = np.array([p[2] for p in pts])
    lat, lon = grid.latlon(rows, cols)
    places = Places(
        name=np.array([p[0] for p in pts]), alt=[[], ["River City"], [], []], lat=lat, lon=lon,
        row=rows, col=cols, population=np.array([float(p[3]) for p in pts]),
        country=np.array([p[4] for p in pts]), admin1=np.array([p[5] for p in pts]),
        key=np.array([p[6] for p in pts]), suburb_of=np.array([""] * len(pts)),
    )
    places.build_index()
    named = {"Euphrates": river.copy()}
    geo = _finish(cfg, grid, country, country_names, admin1, admin1_names, terrain, elevation,
                  river, river.copy(), named, lake, theatre, land, places,
                  sources={"all": "synthetic test map"})
    rlat = float(grid.latlon(nr // 2, 0)[0])
    geo.river_lines = {"Euphrates": [np.array([[grid.lon_min, rlat], [grid.lon_min + nc * res, rlat]])]}
    return geo


def _crossings_north(lon: np.ndarray, lat: np.ndarray, lines: list[np.ndarray]) -> np.ndarray:
    """How many times the polylines cross the ray going north from each point (ray casting).
    Points are sorted by longitude so each segment only visits the points below its span."""
    order = np.argsort(lon, kind="stable")
    ls, la = lon[order], lat[order]
    count = np.zeros(lon.shape, np.int64)
    for xy in lines:
        x0, y0, x1, y1 = xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]
        lo = np.searchsorted(ls, np.minimum(x0, x1), side="left")
        hi = np.searchsorted(ls, np.maximum(x0, x1), side="left")
        n = hi - lo
        if n.sum() == 0:
            continue
        seg = np.repeat(np.arange(x0.size), n)
        pts = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        y = y0[seg] + (ls[pts] - x0[seg]) / (x1 - x0)[seg] * (y1 - y0)[seg]
        np.add.at(count, order[pts], (y > la[pts]).astype(np.int64))
    return count


def line_cell_majority(geo: Geography, river_name: str, mask: np.ndarray,
                       north_share: float = 0.5) -> np.ndarray:
    """For the cells of ``mask`` (cells a river runs through): +1 where more than
    ``north_share`` of the cell's area (8 x 8 samples) lies north of the river's polyline,
    else -1."""
    r, c = np.nonzero(mask)
    out = np.zeros(mask.shape, np.int8)
    lines = geo.river_lines.get(river_name)
    if not lines or r.size == 0:
        return out
    off = (np.arange(8) + 0.5) / 8 - 0.5
    dr, dc = np.meshgrid(off, off, indexing="ij")
    lat, lon = geo.grid.latlon(r[:, None] + dr.ravel()[None, :], c[:, None] + dc.ravel()[None, :])
    north = _crossings_north(lon.ravel(), lat.ravel(), lines).reshape(lat.shape) % 2 == 0
    out[r, c] = np.where(north.mean(axis=1) > north_share, 1, -1)
    return out


def line_cell_towns(geo: Geography, river_name: str, mask: np.ndarray,
                    north_share: float = 0.5) -> np.ndarray:
    """For the cells of ``mask`` (cells a river runs through): the bank of the cell's town --
    +1 where its largest gazetteer place (key places first, then by population) lies north of
    the river's polyline, -1 where south; cells without a place by
    :func:`line_cell_majority`.  A valley town went with the party of its bank (Mayadin and
    Abu Kamal on the south bank with the regime; Hajin, Susah and Baghuz on the north bank with
    the SDF), whatever share of the cell's farmland lies across the water."""
    out = line_cell_majority(geo, river_name, mask, north_share)
    lines = geo.river_lines.get(river_name)
    p = geo.places
    R, C = mask.shape
    inside = (p.row >= 0) & (p.row < R) & (p.col >= 0) & (p.col < C)
    i = np.flatnonzero(inside)
    i = i[mask[p.row[i], p.col[i]]]
    if not lines or i.size == 0:
        return out
    cell = p.row[i].astype(np.int64) * C + p.col[i]
    # per cell the largest place: sort by cell, key place, population; keep the last of each cell
    order = np.lexsort((np.nan_to_num(p.population[i].astype(float)), p.key[i], cell))
    last = np.r_[cell[order][1:] != cell[order][:-1], True]
    j = i[order][last]
    north = _crossings_north(p.lon[j].astype(float), p.lat[j].astype(float), lines) % 2 == 0
    out[p.row[j], p.col[j]] = np.where(north, 1, -1)
    return out


def river_side(geo: Geography, river_name: str, country: str | None = None) -> np.ndarray:
    """Side of a river line for each cell: +1 north of it, -1 south of it, 0 where the column
    never meets the river, and 0 on the river cells themselves (the valley is open to both
    banks).  Counted by river entries met walking south from row 0 (vectorised over columns)."""
    if river_name not in geo.named_rivers:
        raise KeyError(f"unknown river {river_name!r} (known: {', '.join(sorted(geo.named_rivers))})")
    line = geo.named_rivers[river_name].copy()
    if country is not None:
        line &= geo.country_mask(country)
    entering = line & ~np.vstack([np.zeros((1, line.shape[1]), bool), line[:-1]])
    crossings = np.cumsum(entering, axis=0)
    has = line.any(axis=0)[None, :]
    side = np.where(crossings == 0, 1, -1).astype(np.int8)
    side[line] = 0  # the river valley itself is open to both banks (no-man's-land)
    side[:, ~has[0]] = 0
    return side
