"""Scenario events: dated or conditional changes of hostility, withdrawals, the end of
deconfliction lines, air support and the weekly draw of who fights whom.

Sources: the scenario files (``configs/scenario/*.yaml``) state each event's date and
historical basis (e.g. the Euphrates deconfliction line agreed by the US and Russia in June
2017; the US drawdown announced in December 2018).  Hostility ``h[f, g]`` in [0, 1] is the
weekly probability that f and g fight (Bernoulli per dyad, symmetric).
"""

from __future__ import annotations

import datetime as dt

import numpy as np


def date_of(s: str) -> dt.date:
    """A config date string (ISO ``YYYY-MM-DD``) as a :class:`datetime.date`."""
    return dt.date.fromisoformat(s)


def due_events(events: dict, fired: set, date: dt.date, isis_share: float) -> list[str]:
    """Names of events not yet fired that are due: their ``date`` has come, or ISIS holds
    less than ``when_isis_share_below`` of the theatre's area."""
    due = []
    for name, ev in events.items():
        if name in fired:
            continue
        if (ev.date and date >= date_of(ev.date)) or \
                (ev.when_isis_share_below >= 0 and isis_share < ev.when_isis_share_below):
            due.append(name)
    return due


def staging_events(events: dict, fired: set, date: dt.date, lead_weeks: float) -> list[str]:
    """Names of dated offensives (events with an ``offensive``) not yet fired whose ``date``
    falls within ``lead_weeks`` after ``date``: their forces are massing on the staging ground
    (an offensive is prepared over weeks before its launch)."""
    horizon = date + dt.timedelta(weeks=float(lead_weeks))
    return [name for name, ev in events.items()
            if name not in fired and ev.offensive and ev.date and date < date_of(ev.date) <= horizon]


def hostility_matrix(pairs, fidx: dict[str, int], n: int, base: np.ndarray | None = None) -> np.ndarray:
    """Symmetric hostility ``[F, F]`` from ``(a, b, value)`` triples, over ``base`` (zeros)."""
    h = np.zeros((n, n)) if base is None else base
    for a, b, v in pairs:
        i, j = fidx[str(a)], fidx[str(b)]
        h[i, j] = h[j, i] = float(v)
    return h


def air_multiplier(air_support: dict, fidx: dict[str, int], n: int, date: dt.date) -> np.ndarray:
    """Air support active on ``date``: multiplier ``[shooter, target]`` of ground fire,
    ``1 + strength`` for each recipient against the listed targets (all if none listed)."""
    air = np.ones((n, n))
    for a in air_support.values():
        if a.start and date < date_of(a.start):
            continue
        if a.end and date >= date_of(a.end):
            continue
        against = [fidx[x] for x in a.against] if a.against else list(range(n))
        for r in a.recipients:
            air[fidx[r], against] += a.strength
    return air


def draw_engagement(hostility: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Who fights whom this week: one uniform draw per dyad (upper triangle, mirrored);
    f and g are engaged when it falls below their hostility."""
    n = hostility.shape[0]
    u = np.triu(rng.random((n, n)), 1)
    u = u + u.T
    eng = (u < hostility) & (hostility > 0)
    np.fill_diagonal(eng, False)
    return eng


def allowed_ground(countries: list[list[str]], withdrawn: np.ndarray, deconfliction: dict,
                   fidx: dict[str, int], date: dt.date, geo, line_side) -> np.ndarray:
    """``[F, R, C]`` bool: where each faction may hold ground: its countries inside the
    theatre, minus the far side of any deconfliction line still in force, minus everything
    once it has withdrawn.  ``line_side(d)`` gives a line's side per cell (+1 north, -1
    south, 0 open)."""
    allowed = np.zeros((len(countries), *geo.shape), bool)
    for i, cs in enumerate(countries):
        for c in cs:
            allowed[i] |= geo.country_mask(c)
        allowed[i] &= geo.theatre
        if withdrawn[i]:
            allowed[i] = False
    for d in deconfliction.values():
        if d.until and date >= date_of(d.until):
            continue
        side = line_side(d)
        in_country = geo.country_mask(d.country)
        for f, s in zip(d.factions, d.sides):
            want = 1 if s == "north" else -1
            allowed[fidx[f]] &= ~(in_country & (side == -want))
    return allowed


def line_side(geo, d) -> np.ndarray:
    """Side of a deconfliction line ``d`` per cell (+1 north, -1 south, 0 open); the line's
    own cells go by ``d.line_cells`` (both sides, north, south, the majority side, or the bank
    of the cell's town)."""
    from ..geography import line_cell_majority, line_cell_towns, river_side

    # sides from the whole river, not only its stretch in the country: the country's ground
    # beyond the point where the river leaves it (Syria east of Abu Kamal/Baghuz) lies north of
    # the river's course in the next country and is not open to both parties
    side = river_side(geo, d.line, None)
    if d.line_cells != "both":
        on_line = geo.named_rivers[d.line] & geo.country_mask(d.country)
        if d.line_cells == "majority":
            side = np.where(on_line, line_cell_majority(geo, d.line, on_line, d.north_share), side)
        elif d.line_cells == "towns":
            side = np.where(on_line, line_cell_towns(geo, d.line, on_line, d.north_share), side)
        else:
            side = np.where(on_line, 1 if d.line_cells == "north" else -1, side)
    return side


def withdraw(garrison: np.ndarray, units, owner: np.ndarray, i: int) -> float:
    """Faction ``i``'s ground forces leave the theatre: its garrisons and units go to 0 (units
    marked dead) and its ground becomes ungoverned.  Edits the arrays in place; returns the
    fighters withdrawn."""
    from .control import UNGOVERNED

    mine = units.faction == i
    gone = float(garrison[i].sum()) + float(units.fighters[mine].sum())
    garrison[i] = 0
    units.fighters[mine] = 0
    units.alive[mine] = False
    owner[owner == i] = UNGOVERNED
    return gone


def cede_ground(owner: np.ndarray, garrison_i: np.ndarray, area: np.ndarray, i: int,
                sampling: tuple[float, float] = (1.0, 1.0)) -> tuple[float, float]:
    """A deal: faction ``i`` hands over its ground in ``area`` (``[R, C]`` bool) -- the cells
    become UNGOVERNED, for whoever can fill them (the race of
    :func:`sim.rules.control.update_control`), and its garrison there falls back to the nearest
    cell it keeps outside the area (Euclidean, ``sampling`` the row/column spacing in km).  With
    no ground left outside, the garrison leaves.  Edits ``owner`` and ``garrison_i`` in place;
    returns ``(fighters moved, fighters gone)``: conserved, ``moved + gone`` is the garrison
    that stood on the ceded cells."""
    from scipy import ndimage

    from .control import UNGOVERNED

    gone_cells = (owner == i) & area
    keep = (owner == i) & ~area
    src = gone_cells & (garrison_i > 0)
    amount = garrison_i[src].astype(np.float64)
    garrison_i[gone_cells] = 0
    owner[gone_cells] = UNGOVERNED
    if not amount.size:
        return 0.0, 0.0
    if not keep.any():
        return 0.0, float(amount.sum())
    _, (ir, ic) = ndimage.distance_transform_edt(~keep, sampling=sampling, return_indices=True)
    np.add.at(garrison_i, (ir[src], ic[src]), amount.astype(garrison_i.dtype))
    return float(amount.sum()), 0.0


class LineSides:
    """Cache of :func:`line_side` per deconfliction line (the geometry never changes during a
    run); call it with a line's config."""

    def __init__(self, geo):
        self.geo = geo
        self.cache: dict = {}

    def __call__(self, d) -> np.ndarray:
        """The side per cell of line ``d``, computed on first use."""
        key = (d.line, d.country, d.line_cells, d.north_share)
        if key not in self.cache:
            self.cache[key] = line_side(self.geo, d)
        return self.cache[key]


def entry_units(points_rc: np.ndarray, theatre: np.ndarray, fighters: float,
                unit_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reinforcement entering from outside the theatre (a patron's army crossing the
    border): ``fighters`` split evenly over the entry points (``[P, 2]`` row, col; a point
    off the theatre snaps to the nearest theatre cell), each share in equal units of at most
    ``unit_size``.  Returns the units' ``(rows, cols, fighters)``."""
    tr, tc = np.nonzero(theatre)
    pts = np.asarray(points_rc, float).reshape(-1, 2)
    if fighters <= 0 or pts.shape[0] == 0 or tr.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    d = (tr[None] - pts[:, :1]) ** 2 + (tc[None] - pts[:, 1:]) ** 2
    near = np.argmin(d, axis=1)
    share = fighters / pts.shape[0]
    n = max(1, int(np.ceil(share / unit_size - 1e-9)))
    return np.repeat(tr[near], n), np.repeat(tc[near], n), np.full(pts.shape[0] * n, share / n)


def zone_mask(in_areas: np.ndarray, theatre: np.ndarray, buffer_km: float,
              cell_km: tuple[float, float], points_rc=(), radii_km=()) -> np.ndarray:
    """``[R, C]`` bool: a truce zone, its governorates ``in_areas`` and the theatre ground
    within ``buffer_km`` of them, and the ground within ``radii_km`` of the cells
    ``points_rc`` ((row, col) each; Euclidean distances with cell sides ``cell_km`` =
    (north-south, east-west) km, so the reach does not depend on the grid)."""
    from scipy import ndimage

    zone = in_areas.copy()
    if buffer_km > 0 and in_areas.any():
        zone = ndimage.distance_transform_edt(~in_areas, sampling=cell_km) <= buffer_km
    R, C = in_areas.shape
    rr, cc = np.arange(R)[:, None], np.arange(C)[None, :]
    for (r, c), rad in zip(points_rc, radii_km):
        zone |= np.hypot((rr - r) * cell_km[0], (cc - c) * cell_km[1]) <= rad
    return zone & theatre


def zone_closed(periods, date: dt.date) -> bool:
    """Whether one of the ``[start, end]`` periods (ISO dates, end "" open-ended) runs on ``date``."""
    return any(date >= date_of(a) and (not b or date < date_of(b)) for a, b in periods)
