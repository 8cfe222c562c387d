"""Wiring of the aftermath mechanisms (issue 13) into the model's phases.

The kernels are pure array functions in :mod:`sim.rules` (``assault``, ``sieges``,
``withdrawal``, ``reach``, ``alignment``, ``holdouts``); this module gathers the model's
arrays, calls them and writes back, so that :mod:`sim.model` keeps only the schedule.

* ``events``  :func:`hostility_week` -- dated *policy* hostility (sourced offensives) raised by
  the responsive law of :mod:`sim.rules.alignment`; :func:`reinforce` -- patrons add forces.
* ``plan``    :func:`route_units` -- unreachable objectives are dropped and the freed units
  re-allocated over the whole theatre (:mod:`sim.rules.reach`).
* ``move``    :func:`record_stuck` -- the diagnostic ``share_units_stuck``.
* ``control`` :func:`withdraw_week` (before the control update) and :func:`assault_week` (the
  capture of held cells over a 3x3 sector, with the holdout defence folded in).
* ``redeploy`` :func:`sieges_week` -- besieged pieces surrender after a delay; the deal is
  logged in ``model.deals``.

docs/ODD.md, "Aftermath mechanisms (issue 13)", gives the equations and sources.
"""

from __future__ import annotations

import numpy as np

from .geography import TERRAIN_CLASSES, river_side
from .rules import alignment, assault, civilians, combat, holdouts, insurgency, reach, sieges, withdrawal
from .rules.control import OUTSIDE, UNGOVERNED
from .rules.events import (cede_ground, date_of, entry_units, hostility_matrix, staging_events, zone_closed,
                           zone_mask)
from .rules.movement import stage_objectives
from .rules.spatial import dilate8, label8, owner_layer, window_side


def _norm(name: str) -> str:
    return " ".join(str(name).lower().replace("-", " ").split())


def core_masks(cfg, geo, names: list[str]) -> np.ndarray:
    """``[F, R, C]`` bool: each faction's core ground (its ``core_areas`` governorates).  An
    unknown name is an error on the real map; a synthetic map (two made-up governorates) has
    no cores."""
    gov = {_norm(n): i for i, n in enumerate(geo.admin1_names)}
    core = np.zeros((len(names), *geo.shape), bool)
    for i, f in enumerate(names):
        ids = []
        for a in cfg.factions[f].core_areas:
            if _norm(a) not in gov:
                if cfg.geography.kind != "real":
                    continue
                raise ValueError(f"factions.{f}.core_areas: {a!r} is not a governorate of the map "
                                 f"({', '.join(geo.admin1_names)})")
            ids.append(gov[_norm(a)])
        if ids:
            core[i] = np.isin(geo.admin1, ids) & geo.theatre
    return core


def supply_exits(cfg, geo, names: list[str]) -> np.ndarray:
    """``[F, R, C]`` bool: the cells outside the theatre in each faction's ``supply_countries``
    (its patron's own territory), which count as open country for its pieces
    (:func:`sim.rules.sieges.besieged_pieces`).  An unknown country is an error on the real map."""
    exits = np.zeros((len(names), *geo.shape), bool)
    for i, f in enumerate(names):
        for c in cfg.factions[f].supply_countries:
            if c not in geo.country_names:
                if cfg.geography.kind != "real":
                    continue
                raise ValueError(f"factions.{f}.supply_countries: {c!r} is not a country of the map "
                                 f"({', '.join(geo.country_names)})")
            exits[i] |= geo.country_mask(c) & ~geo.theatre
    return exits


def setup(m) -> None:
    """State of the aftermath mechanisms on model ``m`` (called once, after the forces)."""
    from .initial import reference_cell_km, settled_fraction  # sim.initial imports sim.agents, which imports this

    cfg, geo = m.cfg, m.geo
    m.core = core_masks(cfg, geo, m.faction_names)
    m.has_core = m.core.any(axis=(1, 2))  # static: computed once
    m.exits = supply_exits(cfg, geo, m.faction_names)
    m.has_exits = m.exits.any(axis=(1, 2))
    m.may_withdraw = np.array([cfg.factions[f].withdraws for f in m.faction_names], bool)
    m.takes_deals = np.array([cfg.factions[f].takes_deals for f in m.faction_names], bool)
    # home guards: this share of the start garrison on the core stays there (fighters per cell)
    m.home_floor = {i: (m.garrison[i] * m.core[i] * cfg.factions[f].home_guard).astype(m.garrison.dtype)
                    for i, f in enumerate(m.faction_names) if cfg.factions[f].home_guard > 0 and m.core[i].any()}
    m.latent = np.zeros((m.n_f, m.n_f))
    claims = np.zeros((m.n_f, m.n_f), bool)  # claims[f, g]: f's row lists g (f claims g's ground)
    for a, row in cfg.scenario.latent_hostility.items():
        for b, v in row.items():
            m.latent[m.fidx[a], m.fidx[b]] = max(m.latent[m.fidx[a], m.fidx[b]], float(v))
            claims[m.fidx[a], m.fidx[b]] = float(v) > 0
    m.latent = np.maximum(m.latent, m.latent.T)
    m.policy_hostility = m.hostility.copy()  # initial + sourced dated policy decisions
    m.siege_clock = sieges.SiegeClock(m.n_f, geo.shape)
    m.deals: list[dict] = []
    m.main_effort = np.zeros((m.n_f, *geo.shape), bool)  # ground of the dated offensives' main effort
    m.staging = np.zeros((m.n_f, *geo.shape), bool)  # main effort of offensives about to launch
    m.offensive_ground: dict = {}  # event name -> {faction index: its main-effort ground}
    m.sealed = np.zeros(geo.shape, bool)  # besieged ground this week (sieges_week)
    urban = m.urban  # per reference area: the same town, the same index on any grid
    m.assault_defence = 1.0 + cfg.assault.urban_defence * urban
    m.holdout_mask = (geo.terrain == TERRAIN_CLASSES.index("river_valley")) | (urban > 0.5)
    # urban clearing (assault.clearing_*): km cleared per cell, and the owner it was cleared from
    m.cleared, m.clear_depth = np.zeros(geo.shape), np.zeros(geo.shape)
    m.shield0 = m.shield.copy()  # the combat loss shield without the holdout fortification
    m.station_w0 = m.station_w[m.isis].copy() if m.isis >= 0 else None  # ISIS's, unfortified
    m.cleared_owner = m.owner.copy()
    m.fortified = np.zeros(geo.shape, bool)  # ISIS's fortified holdout cells (they stay built)
    # weeks each cell has been held by its holder (combat.hold_age); the opening lines of
    # 1 July 2017 had stood for months: they start prepared
    m.held_weeks = np.full(geo.shape, cfg.combat.prepared_weeks, np.int16)
    m.held_owner = m.owner.copy()
    # settled ground: people per km2 (2017) at least holdouts.settled_density; open desert is not
    # held ground (the holdout share and the defeat date count settled ground only)
    # (issue 14.5: the density of the 0.05-degree cells; on a coarser grid a share of the cell)
    m.settled_frac = settled_fraction(geo, getattr(cfg, "geography", None), cfg.holdouts.settled_density)
    m.settled_ground = m.settled_frac > 0
    m.settled_km2 = m.area * m.settled_frac  # km2 of settled ground per cell
    m.settled0 = settled_area(m.owner, m.settled_km2, m.settled_ground, m.n_f)
    m.unit_reachable = np.ones(len(m.units), bool)
    m.share_units_stuck = 0.0
    setup_limited(m, claims)
    m.settled = np.zeros((m.n_f, m.n_f), bool)
    # the limited war's fall-back window: withdrawal.limited_reach_km, the same km^2 on any grid
    m.limited_window = window_side(cfg.withdrawal.limited_reach_km, geo.grid.cell_km,
                                   reference_cell_km(geo))
    m.noncore0 = noncore_cells(m.owner, m.core)
    setup_zones(m)


def settled_area(owner: np.ndarray, area: np.ndarray, settled: np.ndarray, n_f: int) -> np.ndarray:
    """``[F]`` km2 of settled ground each faction holds."""
    sel = settled & (owner >= 0)
    return np.bincount(owner[sel].ravel(), weights=area[sel].ravel(), minlength=n_f)[:n_f]


def cell_sides_km(m) -> tuple[float, float]:
    """A cell's (north-south, east-west) sides in km, the east-west side at the map's middle latitude."""
    g = m.geo.grid
    return m.cell_km, m.cell_km * float(np.cos(np.radians(g.lat_max - m.geo.shape[0] * g.res / 2)))


def noncore_cells(owner: np.ndarray, core: np.ndarray) -> np.ndarray:
    """``[F]`` int: cells each faction holds outside its core (``core[f, r, c]``), counted
    on the held cells only."""
    n = core.shape[0]
    held = np.flatnonzero(owner.ravel() >= 0)
    f = owner.ravel()[held].astype(np.intp)
    return np.bincount(f[~core.reshape(n, -1)[f, held]], minlength=n)


def setup_limited(m, claims: np.ndarray) -> None:
    """Limited aims: former allies turned rivals fight over the spoils, not each other's core
    (``m.limited``, ``m.defend_only``, ``m.core_closed``); ``claims[f, g]``: ``f``'s row of
    ``scenario.latent_hostility`` lists ``g``."""
    cfg = m.cfg
    m.core_closed = np.zeros((m.n_f, *m.geo.shape), bool)
    m.limited = (m.latent > 0) & (m.hostility0 < cfg.scenario.former_allies_max_hostility)
    np.fill_diagonal(m.limited, False)
    # in a limited war the claimed side only defends: it does not take the claimant's ground
    # (the Peshmerga fell back in Oct 2017; they did not march on Mosul)
    m.defend_only = m.limited & claims.T & ~claims
    # ...except ground their common enemy held at the start: the war on it goes on there (the
    # ISF fought ISIS in the Makhmur district of Erbil governorate, 2016-17)
    war0 = m.hostility0 >= cfg.control.offensive_hostility
    for f, g in zip(*np.nonzero(m.limited)):
        common = np.isin(m.owner, np.flatnonzero(war0[f] & war0[g]))
        m.core_closed[f] |= m.core[g] & ~common


def setup_zones(m) -> None:
    """The truce zones' ground (``scenario.zones``, :func:`sim.rules.events.zone_mask`),
    computed once; none is closed before the first week."""
    cfg, geo = m.cfg, m.geo
    gov = {_norm(n): i for i, n in enumerate(geo.admin1_names)}
    m.zones = {}
    for k, z in cfg.scenario.zones.items():
        bad = [a for a in z.areas if _norm(a) not in gov]
        if bad and cfg.geography.kind == "real":
            raise ValueError(f"scenario.zones.{k}.areas: {bad[0]!r} is not a governorate of the map")
        in_areas = np.isin(geo.admin1, [gov[_norm(a)] for a in z.areas if _norm(a) in gov])
        for river, side, country in z.banks:  # a country's ground on one bank of a river
            in_areas = in_areas | (bank_of(geo, river, side) & geo.country_mask(country))
        m.zones[k] = _points_mask(m, z.points, in_areas, z.buffer_km)
        if z.except_points:
            m.zones[k] &= ~_points_mask(m, z.except_points)
    m.zones_closed: frozenset = frozenset()
    m.ceded = np.zeros((m.n_f, *geo.shape), bool)  # ground handed over under a deal (cede)


def bank_of(geo, river: str, side: str) -> np.ndarray:
    """``[R, C]`` bool: the cells on the ``north`` or ``south`` side of a named river
    (:func:`sim.geography.river_side`: north = the side met before the river walking south)
    and the river's own cells: a zone that keeps a faction off a bank keeps it off the river
    too (what it holds on the river stays its).  Otherwise a river cell, on neither bank,
    changes hands week after week across a frozen line (Jarabulus, 0.05 deg).  An unknown
    river is an error."""
    side_ = river_side(geo, river, None)
    return (side_ == (1 if side == "north" else -1)) | geo.named_rivers[river]


def _points_mask(m, points, in_areas: np.ndarray | None = None, buffer_km: float = 0.0) -> np.ndarray:
    """``[R, C]`` bool: theatre ground within ``radius_km`` of ``[[lat, lon, radius_km], ...]``,
    plus the cells ``in_areas`` and ground within ``buffer_km`` of them
    (:func:`sim.rules.events.zone_mask`; distances in km, the same ground on any grid)."""
    geo = m.geo
    pts = np.asarray(points, float).reshape(-1, 3)
    areas = np.zeros(geo.shape, bool) if in_areas is None else in_areas
    return zone_mask(areas, geo.theatre, buffer_km, cell_sides_km(m),
                     np.column_stack(geo.grid.rowcol(pts[:, 0], pts[:, 1])), pts[:, 2])


def cede(m, due: list[str]) -> None:
    """Deals that hand over ground (``events.<name>.cede``, :func:`sim.rules.events.cede_ground`):
    the faction's cells near the points fall vacant and stay closed to it; its garrison there
    falls back (or, with nowhere to go, leaves: booked as withdrawn).  A dated deal: off with
    ``scenario.dated_hostility=false``, like the truce zones."""
    if not m.cfg.scenario.dated_hostility:
        return
    for name in due:
        for f, points in m.cfg.scenario.events[name].cede.items():
            i = m.fidx[f]
            area = _points_mask(m, points)
            m.ceded[i] |= area
            _, left = cede_ground(m.owner, m.garrison[i], area, i, cell_sides_km(m))
            if left:
                m.ledger.withdrawn(i, left)


def home(m, i: int, sl=...) -> np.ndarray | None:
    """Faction ``i``'s home guard (fighters per cell who stay on its core; window ``sl``), or None."""
    return m.home_floor[i][sl] if i in m.home_floor else None


def war_matrix(m) -> np.ndarray:
    """``[F, F]`` bool: pairs at war (hostility at least ``control.offensive_hostility``)."""
    return m.hostility >= m.cfg.control.offensive_hostility


def limit_allowed(m) -> None:
    """Ground a faction may hold: not the core of a former ally turned rival (limited aims),
    nor the ground of a truce zone closed to it that it does not hold (:func:`zones_changed`)."""
    m.allowed &= ~m.core_closed & ~m.ceded
    for k in m.zones_closed:  # a truce freezes the line: what the faction holds stays allowed
        for f in m.cfg.scenario.zones[k].factions:
            m.allowed[m.fidx[f]] &= ~m.zones[k] | (m.owner == m.fidx[f])


def zones_changed(m) -> bool:
    """Update which truce zones are closed this week (``scenario.zones``: periods of a deal
    such as the Sochi memorandum; off with ``scenario.dated_hostility=false``, like every dated
    policy input); True when that changed, so the allowed ground must be rebuilt."""
    s = m.cfg.scenario
    now = frozenset(k for k, z in s.zones.items() if s.dated_hostility and zone_closed(z.closed, m.date))
    changed, m.zones_closed = now != m.zones_closed, now
    return changed


# ---------------------------------------------------------------- events
def hostility_week(m, due: list[str]) -> None:
    """Apply the due events' ``set_hostility`` to the policy hostility (unless
    ``scenario.dated_hostility`` is false), then the responsive law:
    ``h = max(policy, latent x p(lost))`` (:mod:`sim.rules.alignment`)."""
    s = m.cfg.scenario
    if s.dated_hostility:
        for name in due:
            hostility_matrix(s.events[name].set_hostility, m.fidx, m.n_f, m.policy_hostility)
    cells = np.bincount((m.owner + 2).ravel(), minlength=m.n_f + 2)[2:]  # codes -2, -1 dropped
    lost = alignment.common_enemy_lost(m.hostility0, cells, m.initial_cells,
                                       m.cfg.control.offensive_hostility)
    ac = m.cfg.alignment
    h = alignment.responsive_hostility(m.policy_hostility, m.latent, lost, ac.onset, ac.shape)
    # settlement of a limited war: once one side of a limited-aims pair with a core has lost
    # `alignment.settle_share` of its non-core ground of the start, the spoils are taken and
    # the pair returns to its initial hostility (the Baghdad-KRG ceasefire of 27 Oct 2017
    # followed the Peshmerga's fall-back toward the 2003 line)
    noncore = noncore_cells(m.owner, m.core)
    back = m.has_core & (noncore <= (1.0 - ac.settle_share) * m.noncore0)
    at_war = h >= m.cfg.control.offensive_hostility
    m.settled |= m.limited & at_war & (back[:, None] | back[None, :])
    m.settled |= m.settled.T
    m.hostility = np.where(m.settled, m.hostility0, h)


def reinforce(m, due: list[str]) -> None:
    """Patrons add forces (``events.<name>.reinforce``): fighters join the faction's garrisons
    on its own ground in proportion to the station weights, or, with an ``entry``, cross the
    border as new mobile units at the entry points (booked as recruits from outside).  An
    offensive launched (``events.<name>.offensive``) names the ground of its main effort
    (:func:`main_effort`)."""
    for name in due:
        ev = m.cfg.scenario.events[name]
        if ev.offensive and m.cfg.scenario.dated_hostility:
            _start_offensive(m, ev.offensive)
        for f, k in ev.reinforce.items():
            i = m.fidx[f]
            if ev.entry.get(f):
                _enter(m, i, k, ev.entry[f])
                continue
            w = np.where(m.owner == i, np.maximum(m.station_w[i], 0.0), 0.0).astype(np.float64)
            if k <= 0 or w.sum() <= 0:
                continue
            m.garrison[i] += (w * (k / w.sum())).astype(m.garrison.dtype)
            m.ledger.recruited(i, float(k))


def _start_offensive(m, offensive: dict) -> None:
    """Add each faction's main-effort ground (``[[lat, lon, radius_km], ...]``: the theatre
    within ``radius_km`` of each point, distances in km so the ground is the same on any grid)."""
    for f, pts in offensive.items():
        m.main_effort[m.fidx[f]] |= _points_mask(m, pts)


def _offensive_ground(m, name: str) -> dict:
    """Each faction's main-effort ground of event ``name`` (computed once)."""
    if name not in m.offensive_ground:
        off = m.cfg.scenario.events[name].offensive
        m.offensive_ground[name] = {m.fidx[f]: _points_mask(m, pts) for f, pts in off.items()}
    return m.offensive_ground[name]


def stage_offensives(m, due: list[str]) -> None:
    """The staging ground of the week (``m.staging``): the main effort of each dated offensive
    due within ``reach.staging_weeks`` but not yet launched (:func:`sim.rules.events.
    staging_events`), for the factions that launch it.  Their HQs weigh it as a main effort
    (:func:`main_effort`) and send their units to the nearest ground they may stand on
    (:func:`stage_targets`): an offensive's forces are massed over weeks before its launch."""
    m.staging[:] = False
    if not m.cfg.scenario.dated_hostility:
        return
    fired = set(m._fired) | set(due)
    for name in staging_events(m.cfg.scenario.events, fired, m.date, m.cfg.reach.staging_weeks):
        for i, ground in _offensive_ground(m, name).items():
            m.staging[i] |= ground


def staging_cells(m, f: int, idx: np.ndarray) -> np.ndarray:
    """Candidate cells ``idx`` (flat) of faction ``f`` plus the cells of its staging ground held
    by a faction it is hostile to, or ungoverned: the objective its HQ plans for, wherever its
    units now are.  ``idx`` unchanged without a staging ground."""
    st = m.staging[f]
    if not st.any():
        return idx
    own = m.owner
    hostile = (own >= 0) & (m.hostility[f][np.maximum(own, 0)] > 0)
    return np.union1d(idx, np.flatnonzero(st & ((own == UNGOVERNED) | hostile)))


def stage_targets(m, f: int, targets: np.ndarray) -> np.ndarray:
    """Faction ``f``'s objectives ``[U, 2]`` on its staging ground that it may not attack yet
    (not allowed, e.g. an operation zone closed until the launch, or held by a faction it is
    not at war with) move to the nearest ground it may stand on: its own, or a partner's (no
    hostility), outside the barred ground (:func:`sim.rules.movement.stage_objectives`)."""
    st = m.staging[f]
    if not st.any():
        return targets
    own, allowed = m.owner, m.allowed[f]
    h = np.where(own >= 0, m.hostility[f][np.maximum(own, 0)], 1.0)
    at_war = (own == UNGOVERNED) | ((own >= 0) & (h >= m.cfg.control.offensive_hostility))
    barred = st & ~(allowed & at_war)
    standable = allowed & ~barred & ((own == f) | ((own >= 0) & (h <= 0)))
    return stage_objectives(targets, barred, standable, cell_sides_km(m))


def main_effort(m, f: int, idx: np.ndarray, score: np.ndarray) -> np.ndarray:
    """GeoSim scores of faction ``f``'s candidate cells ``idx`` (flat) with its main effort:
    cells on the ground of an offensive it launched weigh ``reach.main_effort_weight`` times
    more, so its HQ concentrates its mobile units there rather than on the nearest fronts
    (a dated decision, as the regime massed on Eastern Ghouta from 18 Feb 2018 and on Daraa from
    19 Jun 2018; whether the ground falls is left to the assault and siege rules)."""
    on = (m.main_effort[f] | m.staging[f]).ravel()[idx]
    if not on.any():
        return score
    return np.where(on, score * m.cfg.reach.main_effort_weight, score)


def _enter(m, i: int, k: float, points) -> None:
    """Faction ``i``'s reinforcement of ``k`` fighters enters as mobile units at the theatre
    cells nearest the entry ``points`` ([lat, lon]; :func:`sim.rules.events.entry_units`)."""
    from .agents import Unit

    pts = np.asarray(points, float).reshape(-1, 2)
    rc = np.column_stack(m.geo.grid.rowcol(pts[:, 0], pts[:, 1]))
    r, c, fighters = entry_units(rc, m.geo.theatre, float(k), m.cfg.factions[m.faction_names[i]].unit_size)
    if not fighters.size:
        return
    rows = m.units.add(np.full(fighters.size, i), r, c, fighters)
    m.unit_reachable = np.concatenate([m.unit_reachable, np.ones(rows.size, bool)])
    m.unit_agents.extend(Unit(m, int(j)) for j in rows)
    m.ledger.recruited(i, float(fighters.sum()))


# ---------------------------------------------------------------- plan / move
def route_units(m, f: int, units: np.ndarray, targets: np.ndarray, cand: np.ndarray,
                score: np.ndarray) -> np.ndarray:
    """Drop objectives units of faction ``f`` cannot reach through passable ground and
    re-allocate those units with :func:`sim.rules.reach.allocate_units` over the best
    candidate cells they can reach: of ``cand`` (flat indices, all of them, best first), the
    first ``max(4 U, 8)`` some of those units can reach, however far down the list (a front
    of low value next to them beats a valuable one they cannot get to).  Units with no
    reachable front stay in reserve where they are.  Returns the new targets ``[U, 2]``."""
    war = m.cfg.control.offensive_hostility
    labels = reach.crossable_labels(reach.crossable(m.owner, m.hostility, m.allowed, f, war))
    urc = np.column_stack([m.units.row[units], m.units.col[units]])
    ok = reach.reachable_targets(None, urc, targets, None, labels)  # labels given
    if not ok.all() and cand.size:
        bad = np.flatnonzero(~ok)
        C = m.owner.shape[1]
        krc = np.column_stack(np.divmod(cand, C)).astype(float)
        keep = np.flatnonzero(reach.reachable_any(labels, urc[bad], krc))[: max(4 * units.size, 8)]
        cand, score, krc = cand[keep], score[keep], krc[keep]
        rmat = reach.reachable_matrix(None, urc[bad], krc, None, labels)
        enemy = m.presence.reshape(m.n_f, -1)[:, cand]
        hostile = m.hostility[f] >= war
        need = (hostile[:, None] * enemy).sum(axis=0) * m.cfg.assault.sector_ratio
        need = np.maximum(need, m.cfg.factions[m.faction_names[f]].unit_size * 0.5) * (score > 0)
        choice = reach.allocate_units(urc[bad], m.units.fighters[units[bad]], krc, need, rmat,
                                      m.cfg.reach.dist_scale_km / m.cell_km)
        got = choice >= 0
        targets[bad[got]] = krc[choice[got]]
        targets[bad[~got]] = urc[bad[~got]]  # reserve: stay put
        ok[bad[got]] = True
    elif not ok.all():
        targets[~ok] = urc[~ok]
        ok[:] = True
    m.unit_reachable[units] = ok
    return targets


def _contact(m) -> np.ndarray:
    """``[U]`` bool: the unit stands on or next to ground of a faction it is at war with (it is
    fighting at the front, not stuck)."""
    t = m.units
    r, c = t.cells()
    R, C = m.owner.shape
    r, c = np.clip(r, 0, R - 1), np.clip(c, 0, C - 1)
    # owner codes (OUTSIDE -2, UNGOVERNED -1, factions) of each unit's 3x3 neighbourhood
    nr, nc = r[:, None] + np.repeat([-1, 0, 1], 3), c[:, None] + np.tile([-1, 0, 1], 3)
    inside = (nr >= 0) & (nr < R) & (nc >= 0) & (nc < C)
    code = np.where(inside, m.owner[np.clip(nr, 0, R - 1), np.clip(nc, 0, C - 1)] + 2, 0)
    war = np.concatenate([np.zeros((m.n_f, 2), bool), war_matrix(m)], axis=1)  # [F, 2 + F]
    f = np.clip(t.faction.astype(np.int64), 0, m.n_f - 1)
    return t.alive & war[f[:, None], code].any(axis=1)


def path_moves(m, r0: np.ndarray, c0: np.ndarray) -> None:
    """Units under way to a reachable objective that the week's heading moves left in place
    (a concave obstacle: a lake, a neutral's ground, a deconfliction line) walk along a shortest
    8-connected path over their passable ground instead (:func:`sim.rules.reach.passable_parts`),
    up to their tactical speed in cells.  Breadth-first wavefront from the objective, in the box
    around unit and objective (whole grid if needed)."""
    t = m.units
    d = np.hypot(t.target[:, 0] - t.row, t.target[:, 1] - t.col)
    still = (t.row == r0) & (t.col == c0)
    sel = np.flatnonzero(t.alive & still & (d > 1.0) & m.unit_reachable[: len(t)] & ~_contact(m))
    war = m.cfg.control.offensive_hostility
    masks: dict[int, np.ndarray] = {}
    R, C = m.owner.shape
    for k in sel:
        f = int(t.faction[k])
        if f not in masks:
            og, fr = reach.passable_parts(m.owner, m.hostility, m.allowed, f, war)
            masks[f] = og | fr
        ur, uc = int(round(t.row[k])), int(round(t.col[k]))
        gr, gc = int(round(t.target[k, 0])), int(round(t.target[k, 1]))
        step = _path_step(masks[f], (ur, uc), (gr, gc), max(1, int(m.unit_speed_cells[f])))
        if step is not None:
            t.row[k], t.col[k] = float(step[0]), float(step[1])


def _path_step(mask: np.ndarray, start, goal, n_cells: int, margin: int = 12):
    """The cell ``n_cells`` along a shortest path from ``start`` to ``goal`` over ``mask``
    (the goal may be off the mask: a front cell), or None."""
    R, C = mask.shape
    for box in ((max(min(start[0], goal[0]) - margin, 0), min(max(start[0], goal[0]) + margin + 1, R),
                 max(min(start[1], goal[1]) - margin, 0), min(max(start[1], goal[1]) + margin + 1, C)),
                (0, R, 0, C)):
        r0, r1, c0, c1 = box
        sub = mask[r0:r1, c0:c1].copy()
        s = (start[0] - r0, start[1] - c0)
        g = (goal[0] - r0, goal[1] - c0)
        sub[s] = sub[g] = True
        dist = np.full(sub.shape, -1, np.int32)
        front = np.zeros(sub.shape, bool)
        front[g] = True
        dist[g] = 0
        k = 0
        while front.any() and dist[s] < 0:
            k += 1
            front = dilate8(front) & sub & (dist < 0)
            dist[front] = k
        if dist[s] < 0:
            continue
        pos = s
        for _ in range(min(n_cells, int(dist[s]))):
            rr, cc = pos
            best = None
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    a, b = rr + dr, cc + dc
                    if 0 <= a < sub.shape[0] and 0 <= b < sub.shape[1] and 0 <= dist[a, b] < dist[pos]:
                        if best is None or dist[a, b] < dist[best]:
                            best = (a, b)
            if best is None:
                break
            pos = best
        return (pos[0] + r0, pos[1] + c0) if pos != s else None
    return None


def record_stuck(m, r0: np.ndarray, c0: np.ndarray) -> None:
    """``share_units_stuck``: live units with an objective more than a cell away that cannot
    reach it, or that did not move and are not in contact with an enemy at war with them (a unit
    holding the front is fighting, not stuck) (:func:`sim.rules.reach.share_units_stuck`)."""
    t = m.units
    live = t.alive
    d = np.hypot(t.target[:, 0] - t.row, t.target[:, 1] - t.col)
    moved = (t.row != r0) | (t.col != c0) | _contact(m)
    m.share_units_stuck = reach.share_units_stuck(live & (d > 1e-9), live & (d <= 1.0),
                                                  m.unit_reachable[: len(t)], moved)


# ---------------------------------------------------------------- control
def withdraw_week(m, presence: np.ndarray) -> None:
    """Factions that may withdraw give up hopeless non-core ground without a battle
    (:func:`sim.rules.withdrawal.withdraw`); the cells fall vacant, the garrisons fall back.
    A side that only defends in a limited war is no threat to the claimant's ground, nor is an
    enemy kept out of a cell (``allowed``: a truce zone, a deconfliction line, a border).  That
    side first gives its non-core ground up to its claimants where their presence within
    ``withdrawal.limited_reach_km`` is ``withdrawal.limited_ratio`` times its own
    (:func:`sim.rules.withdrawal.fall_back_limited`: the Peshmerga in the disputed territories,
    Oct 2017)."""
    war = war_matrix(m) & ~m.defend_only.T
    may = m.may_withdraw & ~m.withdrawn & war.any(axis=1)
    if not may.any():
        return
    wc = m.cfg.withdrawal
    vacant = int(np.count_nonzero(m.owner == -1))
    # limited war: the side that only defends falls back ahead of its claimants' forces
    for f in np.flatnonzero(may & (m.defend_only & war).any(axis=1)):
        withdrawal.fall_back_limited(m.owner, presence, m.garrison, int(f),
                                     np.flatnonzero(m.defend_only[f] & war[f]), m.core[f],
                                     wc.limited_ratio, m.limited_window, cell_sides_km(m),
                                     may_take=m.allowed)
    # the kernel crops every faction's work to the box of its ground and edits in place
    withdrawal.withdraw(m.owner, presence, m.garrison, war, m.core,
                        wc.withdraw_ratio, may, inplace=True, may_take=m.allowed)
    n = int(np.count_nonzero(m.owner == -1)) - vacant
    if n:
        m.flow[("new_cells_abandoned", "ALL")] += float(n)


def combat_shield(m, idx: np.ndarray, force: np.ndarray) -> np.ndarray:
    """``[k]`` the holder's shield in the combat cells ``idx``: the town and holdout shield
    (``m.shield``) times its posture (prepared positions, :func:`sim.rules.combat.posture`)
    times, on besieged ground (``m.sealed``, last week's), its cover in a
    defended town (:func:`sim.rules.combat.contact_band_shield`: only the defenders of the
    contact band are under fire), from the holder's fighters there (``force`` ``[F, k]``,
    after the frontage cap).  Only the encircled fight house to house: defenders with a way
    out fall back or break (Raqqa, cut off from 29 Jun 2017, held to 17 Oct; Mosul's west
    side held five months once cut off; Hawija, Al-Qaim and Abu Kamal, with the desert open,
    fell within weeks in Oct-Nov 2017)."""
    own = m.owner.ravel()[idx]
    held = (own >= 0) & m.sealed.ravel()[idx]
    defenders = np.where(held, force[np.maximum(own, 0), np.arange(idx.size)], 0.0)
    ac = m.cfg.assault
    band = combat.contact_band_shield(m.geo.population.ravel()[idx], defenders, ac.built_density,
                                      ac.defender_density, m.cfg.combat.urban_band_km)
    # a cell that changed hands after last week's posture_week (a deal, a cession, ISIS
    # resurfacing) is a fresh holding, not its former holder's prepared position
    age = np.where(own != m.held_owner.ravel()[idx], 0, m.held_weeks.ravel()[idx])
    cc = m.cfg.combat
    return m.shield[idx] * band * combat.posture(age, cc.prepared_weeks, cc.prepared_defence)


def posture_week(m) -> None:
    """After the week's changes of control: how long each cell has been held
    (:func:`sim.rules.combat.hold_age`), for next week's posture factor."""
    m.held_weeks = combat.hold_age(m.held_weeks, m.owner, m.held_owner)
    m.held_owner = m.owner.copy()


def civilian_harm(m, idx: np.ndarray, cell_loss: np.ndarray, air_share: np.ndarray) -> None:
    """Civilian deaths of the week's fighting in the combat cells ``idx`` into
    ``m.new_civ_deaths_cell``: the people of the exposed cells meet the fighters lost per
    0.05-degree cell's worth of area around them (:func:`sim.rules.combat.civilian_exposure`:
    per 0.05-degree block on a finer grid, ``m.ref_block``; scaled by ``m.harm_crowding`` on a
    coarser one) and die at :func:`sim.rules.combat.civilian_deaths`."""
    cells, density, air = combat.civilian_exposure(cell_loss, air_share, idx, m.area_factor,
                                                   m.ref_block, m.harm_crowding)
    m.new_civ_deaths_cell.ravel()[cells] = combat.civilian_deaths(
        m.people_present().ravel()[cells], density, air, m.cfg.combat.civilian_harm)


def manoeuvre(m, near_unit: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``[F, k]`` bool: where each faction's manoeuvre units make the fight in the ``k`` combat
    cells ``idx`` an active one (``near_unit`` ``[F, R, C]``: its units are within a cell).  Not
    on the ground of a closed zone with ``hold_line`` that it does not hold (a dated policy: an
    offensive not yet launched, such as the SDF's on the Hajin pocket before 10 Sep 2018), nor
    beyond a deconfliction line in force with ``hold_line`` (the regime across the Euphrates): there
    it holds the line, and the front is as quiet as one with no unit at all
    (``combat.static_front_intensity``)."""
    n = m.n_f
    out = near_unit.reshape(n, -1)[:, idx]
    own = m.owner.ravel()[idx]
    for k in m.zones_closed:
        z = m.cfg.scenario.zones[k]
        if z.hold_line:
            barred = m.zones[k].ravel()[idx]
            for f in z.factions:
                out[m.fidx[f]] &= ~barred | (own == m.fidx[f])
    for d in m.cfg.scenario.deconfliction.values():  # a line in force with hold_line: the far bank
        if d.hold_line and not (d.until and m.date >= date_of(d.until)):
            side = m._line_sides(d).ravel()[idx]
            far_country = m.geo.country_mask(d.country).ravel()[idx]
            for f, s in zip(d.factions, d.sides):
                barred = far_country & (side == (-1 if s == "north" else 1))
                out[m.fidx[f]] &= ~barred | (own == m.fidx[f])
    return out


def assault_week(m, post: np.ndarray, hold_min: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capture of held cells by sector odds (:func:`sim.rules.assault.sector_odds`), a
    defended town only once its built-up ground is cleared (:func:`sim.rules.assault.
    clearing_capture`), the ISIS holdout fortification slowing the clearing.  Returns
    ``(idx, old, new)`` of the captured cells (flat), the owner map updated in place."""
    n, shape, ac = m.n_f, m.geo.shape, m.cfg.assault
    p = np.minimum(post.reshape(n, -1), m.frontage[None]).reshape(n, *shape)
    hostile = m.engaged & war_matrix(m) & ~m.defend_only
    changed = m.owner != m.cleared_owner  # cells that changed hands since: a new start
    m.cleared[changed] = m.clear_depth[changed] = 0.0
    # only held cells where some other faction stands can fall (the fronts): the kernel
    # works on those cells only; exact ties are broken by faction order
    tot = p.sum(axis=0)
    held = m.owner >= 0
    own_p = owner_layer(p, m.owner)
    front = np.flatnonzero(held & (tot - own_p > 0))
    hm = hold_min[:, None] * m.hold_scale[front][None]
    challenger, attack, defend = assault.sector_odds(m.owner, p, hostile, m.allowed, hm, cells=front)
    slow = holdout_slow(m)
    need = ac.sector_ratio * m.assault_defence * defend
    pressed = held & (challenger >= 0) & (attack >= need)
    idx = np.flatnonzero(pressed)
    if idx.size:
        odds = attack.ravel()[idx] / np.maximum(need.ravel()[idx], 1e-9)
        # the ground defended when the assault began must be cleared, even as its defenders fall
        depth = np.maximum(m.clear_depth.ravel()[idx], assault.clearing_depth(
            m.geo.population.ravel()[idx], own_p.ravel()[idx], ac.built_density, ac.defender_density))
        m.clear_depth.ravel()[idx] = depth
        falls, m.cleared.ravel()[idx] = assault.clearing_capture(
            np.ones(idx.size, bool), odds, m.cleared.ravel()[idx], depth, ac.clearing_rate_km,
            ac.clearing_odds_cap, np.broadcast_to(slow, shape).ravel()[idx])
        idx = idx[falls]
    old = m.owner.ravel()[idx].copy()
    new = challenger.ravel()[idx].astype(m.owner.dtype)
    m.owner.ravel()[idx] = new
    m.cleared_owner = m.owner.copy()
    # one reading of ISIS's settled share for the three holdout rules: none of them changes it
    # (leave_open_ground vacates only pieces without a settled cell)
    share = settled_share(m)
    dig_in(m, share)  # first: the reserves join the main pocket, which then has a garrison to dig in
    leave_open_ground(m, share)
    fortify(m, holdout_slow(m, share))
    return idx, old, new


def fortify(m, k: np.ndarray | float) -> None:
    """The holdout fortification ``k`` (:func:`holdout_slow`) for next week: the holder's combat
    losses there are divided by ``k`` (the combat ``shield``: tunnels, berms) and ISIS's
    garrisons are drawn to the fortified ground (station weights times ``k``: the fighters
    fall back on the pocket they prepared rather than spreading over what is left)."""
    if not np.ndim(k):
        m.shield = m.shield0
        if m.station_w0 is not None:
            m.station_w[m.isis] = m.station_w0
        return
    m.shield = m.shield0 * np.ravel(k).astype(m.shield0.dtype)
    m.station_w[m.isis] = m.station_w0 * k.astype(m.station_w0.dtype)


def dig_in(m, share: float | None = None) -> None:
    """ISIS's last stand: once its settled ground is below ``holdouts.onset``, its mobile
    reserves disband into the garrisons of the river-valley and urban cells of the pocket
    nearest to each unit (:func:`sim.rules.holdouts.nearest_pocket_garrison`), in proportion to
    the station weights there: the last fighters dig in where they stand rather than feed
    counter-attacks from the garrisons.  Fighters are moved, not lost.  ``share``:
    :func:`settled_share`, read by the caller (None: read here)."""
    t = m.units
    sel = np.flatnonzero((t.faction == m.isis) & t.alive)
    share = settled_share(m) if share is None else share
    if sel.size == 0 or share is None or share >= m.cfg.holdouts.onset:
        return
    labels, n = label8(m.owner == m.isis)
    if n == 0:
        return
    r, c = t.cells()
    dest = holdouts.nearest_pocket_garrison(labels, m.holdout_mask, m.station_w0, r[sel], c[sel],
                                            t.fighters[sel], cell_sides_km(m))
    if dest is None:
        return
    m.garrison[m.isis] += dest.astype(m.garrison.dtype)
    t.fighters[sel] = 0.0
    t.alive[sel] = False
    m._remove_units(sel)


def leave_open_ground(m, share: float | None = None) -> None:
    """ISIS's last stand leaves the open desert: once its settled ground is below
    ``holdouts.onset``, its pieces of ground with no settled, river-valley or urban cell
    (:func:`sim.rules.holdouts.open_pockets`: desert cut off from every town and valley it
    still holds) fall vacant and their garrisons join the nearest pocket with a river-valley
    or urban cell (:func:`sim.rules.holdouts.nearest_pocket_garrison`; moved, not lost).  ISIS
    roamed the desert, it no longer held it: Baghdad declared full control of the Iraq-Syria
    border on 9 Dec 2017 (events_2017-2019.csv), after a desert sweep of two weeks.
    ``share``: :func:`settled_share`, read by the caller (None: read here)."""
    share = settled_share(m) if share is None else share
    if share is None or share >= m.cfg.holdouts.onset:
        return
    labels, n = label8(m.owner == m.isis)
    if n == 0:
        return
    bare = holdouts.open_pockets(labels, n, m.settled_ground | m.holdout_mask)
    if not bare.any():
        return
    g = m.garrison[m.isis]
    r, c = np.nonzero(bare & (g > 0))
    keep = np.where(bare, 0, labels)  # the pockets that stay, to receive the garrisons
    dest = holdouts.nearest_pocket_garrison(keep, m.holdout_mask, m.station_w0, r, c,
                                            g[r, c].astype(np.float64), cell_sides_km(m))
    if dest is None:
        return
    g[r, c] = 0
    g += dest.astype(g.dtype)
    m.owner[bare] = -1
    m.flow[("new_cells_abandoned", "ALL")] += float(np.count_nonzero(bare))


def settled_share(m) -> float | None:
    """ISIS's settled ground now as a share of its settled ground at the start (None without
    ISIS or settled ground at the start)."""
    if m.isis < 0 or m.settled0[m.isis] <= 0:
        return None
    # settled_area of ISIS alone: its cells' areas added in the same order (one bin)
    area = m.settled_km2[m.settled_ground & (m.owner == m.isis)]
    held = np.bincount(np.zeros(area.size, np.intp), weights=area, minlength=1)[0]
    return float(held / m.settled0[m.isis])


def underground_share(m, i: int, sl) -> np.ndarray | float:
    """Share of the garrison of faction ``i``'s lost cells (window ``sl``) that goes to ground
    (:func:`sim.rules.movement.retreat`): ``insurgency.go_underground_share`` for ISIS, 0 for
    the others; but on cells next to ISIS's besieged ground (``m.sealed``, this week's) only
    ``holdouts.besieged_underground_share``: fighters of an encircled pocket cannot slip away
    and fall back into what is left of it, so the last village is the most crowded (Baghuz,
    Feb-Mar 2019).  The last cell of a pocket has no besieged ground left beside it: its
    garrison goes to ground as anywhere."""
    if i != m.isis:
        return 0.0
    share = m.cfg.insurgency.go_underground_share
    pocket = dilate8(m.sealed[sl] & (m.owner[sl] == i))
    return np.where(pocket, min(m.cfg.holdouts.besieged_underground_share, share), share)


def holdout_slow(m, share: float | None = None) -> np.ndarray | float:
    """The ISIS holdout fortification (:func:`sim.rules.holdouts.holdout_defence`) on its
    river-valley and urban cells of pockets with at least ``holdouts.min_pocket_fighters`` in
    garrison (:func:`sim.rules.holdouts.pocket_mask`), or fortified before and still held
    (``m.fortified``), by the share of its settled ground of the start it still holds; 1
    elsewhere (and without ISIS).  ``share``: :func:`settled_share`, read by the caller (None:
    read here)."""
    share, hc = (settled_share(m) if share is None else share), m.cfg.holdouts
    if share is None or share >= hc.onset:
        return 1.0
    # only pockets with a garrison to dig in (holdouts.min_pocket_fighters) are fortified
    labels, n, box = label8(m.owner == m.isis, crop=True)  # its box: no cell of a pocket outside
    mask = np.zeros(m.geo.shape, bool)
    mask[box] = m.holdout_mask[box] & holdouts.pocket_mask(labels, n, m.garrison[m.isis][box],
                                                           hc.min_pocket_fighters)
    # fortifications once built stay while ISIS holds them: a pocket ground below the garrison
    # threshold by the assault keeps its tunnels and berms (no cliff in the middle of a battle)
    mask |= m.fortified & (m.owner == m.isis)
    m.fortified = mask
    return holdouts.holdout_defence(m.owner, m.isis, mask, share, hc.max_factor, hc.onset)


# ---------------------------------------------------------------- redeploy
def sieges_week(m) -> None:
    """Besieged pieces of factions that take deals (``takes_deals``) under sustained
    superiority surrender (:mod:`sim.rules.sieges`): units
    inside disband into the garrison first, evacuees go to the main ground, the rest surrender
    (ledger), a share of the people is relocated with them, and the deal is logged.  The
    besieged ground of every faction at war is kept in ``m.sealed`` (its people are trapped)."""
    war = war_matrix(m)
    sc = m.cfg.sieges
    m.sealed = np.zeros(m.geo.shape, bool)  # besieged ground walled in by enemies (civilians trapped)
    for f in range(m.n_f):
        if m.withdrawn[f] or not war[f].any() or not (m.owner == f).any():
            continue
        if not _may_have_pocket(m, f):  # nothing can be besieged: the clock resets
            m.siege_clock.weeks[f] = 0
            continue
        # combat power: firepower x morale, times the air support of the enemies' fire on f
        power = m.firepower * np.where(war[:, f], m.air[:, f], 1.0)
        s = sieges.besieged_pieces(m.owner, war, f, m.presence, m.core[f] if m.has_core[f] else None,
                                   exits=m.exits[f] if m.has_exits[f] else None, power=power)
        if s.besieged.any():
            m.sealed |= walled_in(s, m.owner)
        if not m.takes_deals[f]:
            continue
        sieges.hold_truces(s, m.allowed)
        count = m.siege_clock.update(s, sc.siege_ratio)
        due = np.flatnonzero(m.siege_clock.due(s, count, sc.delay_weeks))
        if due.size == 0:
            continue
        main_ground = s.main[s.labels] & (m.owner == f)
        dest = np.where(main_ground, np.maximum(m.station_w[f], 0.0), 0.0)
        for k in due:
            refuge = _partners_refuge(m, f, war, main_ground, int(s.besieger[k]))
            to = dest if refuge is None else _refuge_weights(m, refuge)
            _disband_units_in(m, s.labels == k, f, s.partners, main_ground)
            people = m.people_present()
            deal = sieges.surrender(s, int(k), m.owner, m.garrison, people, to, sc.evac_share,
                                    sc.civilian_share)
            m.owner[...] = deal.owner
            m.garrison[...] = deal.garrison
            if refuge is not None:
                _join_hosts(m, f, refuge)
            m.siege_clock.clear(f, deal.cells)
            for g in np.flatnonzero(deal.evacuated + deal.surrendered):
                m.ledger.evacuated(g, float(deal.evacuated[g]))
                m.ledger.surrendered(g, float(deal.surrendered[g]))
            # the green buses carried the fighters who chose to leave and their families: the
            # UN's "people relocated" (aggregate_facts) counts both
            relocated = _relocate_people(m, deal.cells, to, sc.civilian_share) + float(deal.evacuated.sum())
            m.flow[("new_people_relocated", "ALL")] += relocated
            m.flow[("new_siege_deals", "ALL")] += 1.0
            r, c = np.nonzero(deal.cells)
            m.deals.append({"date": str(m.date), "faction": m.faction_names[f],
                            "besieger": m.faction_names[deal.besieger], "cells": int(deal.cells.sum()),
                            "centre_cell": [int(round(r.mean())), int(round(c.mean()))],
                            "fighters_evacuated": float(deal.evacuated.sum()),
                            "fighters_surrendered": float(deal.surrendered.sum()),
                            "people_relocated": float(relocated)})


def _partners_refuge(m, f: int, war: np.ndarray, main_ground: np.ndarray,
                     besieger: int) -> np.ndarray | None:
    """``[R, C]`` bool: where a faction that holds none of its core (``core_areas``) sends the
    fighters and people of a pocket surrendered to ``besieger``: its core ground held by its
    allies, the factions not at war with it that are at war with the besieger (None if it
    holds part of its core, has none, or no ally holds any).  The
    green buses took the rebels of Eastern Ghouta, northern Homs, Qalamoun and Daraa to Idlib
    and the Turkish-held north (Apr-Jul 2018), where they joined the factions there; without
    this the Syrian rebels' "main ground" was their largest piece, the Badia enclave east of
    Suwayda, which 4,000 evacuees turned into a fortress that held to the end of 2019."""
    if not m.has_core[f] or (main_ground & m.core[f]).any():
        return None
    partners = np.flatnonzero(~war[f] & war[besieger])
    partners = partners[partners != f]
    refuge = m.core[f] & np.isin(m.owner, partners)
    return refuge if refuge.any() else None


def _refuge_weights(m, refuge: np.ndarray) -> np.ndarray:
    """Where on the refuge the evacuees go: the holders' station weights there (evenly if
    those are all 0)."""
    w = np.where(refuge, np.maximum(owner_layer(m.station_w, m.owner), 0.0), 0.0)
    return w if w.sum() > 0 else refuge.astype(np.float64)


def _join_hosts(m, f: int, refuge: np.ndarray) -> None:
    """The evacuees a deal put on ``refuge`` (partners' ground, where ``f`` holds nothing)
    join the garrison of the cell's holder: booked as withdrawn from ``f`` and recruited by
    the host, so both balances hold (:mod:`sim.rules.ledger`)."""
    moved = np.where(refuge, m.garrison[f], 0.0)
    total = float(moved.sum())
    if total <= 0:
        return
    m.garrison[f] -= moved.astype(m.garrison.dtype)
    m.ledger.withdrawn(f, total)
    for h in np.unique(m.owner[refuge]):
        part = np.where(m.owner == h, moved, 0.0)
        m.garrison[h] += part.astype(m.garrison.dtype)
        m.ledger.recruited(int(h), float(part.sum()))


def walled_in(s, owner: np.ndarray) -> np.ndarray:
    """``[R, C]`` bool: the besieged pieces of ``s`` (:class:`sim.rules.sieges.Sieges`) whose
    ring holds no cell outside the theatre: ringed by enemies alone, their people are trapped.
    A pocket backed onto a closed border is not walled in for its people, who move toward it
    (Daraa, Jun-Jul 2018: ~320,000 fled toward the Jordanian border and the Golan line, UN)."""
    out = np.zeros(owner.shape, bool)
    for k in np.flatnonzero(s.besieged):
        piece = s.labels == k
        if not (owner[dilate8(piece) & ~piece] == OUTSIDE).any():
            out |= piece
    return out


def _may_have_pocket(m, f: int) -> bool:
    """False when no piece of faction ``f``'s bloc can be besieged (a cheap test on the box of
    its ground before the full labelling): every 8-connected piece of its own ground touches
    UNGOVERNED ground or its supply border (its bloc piece is open) or lies in its main ground (it holds part of
    the faction's core; when no core cell is held, it is the largest piece), as
    :func:`sim.rules.sieges.besieged_pieces` defines them."""
    own = m.owner == f
    lab, n, (rs, cs) = label8(own, crop=True)  # remembered: the redeploy labels it again
    r0, r1, c0, c1 = rs.start, rs.stop, cs.start, cs.stop
    R, C = own.shape
    a, b, c, d = max(r0 - 1, 0), min(r1 + 1, R), max(c0 - 1, 0), min(c1 + 1, C)
    open_ground = m.owner[a:b, c:d] == UNGOVERNED
    if m.has_exits[f]:
        open_ground |= m.exits[f][a:b, c:d]
    near_open = dilate8(open_ground)[r0 - a:, c0 - c:][: r1 - r0, : c1 - c0]
    safe = np.bincount(lab[near_open], minlength=n + 1) > 0
    own_core = own[rs, cs] & m.core[f][rs, cs]
    if own_core.any():  # main ground: the pieces with core cells
        safe |= np.bincount(lab[own_core], minlength=n + 1) > 0
    else:  # main ground: the largest piece (first by label on ties, as besieged_pieces)
        safe[int(np.argmax(np.bincount(lab.ravel(), minlength=n + 1)[1:])) + 1] = True
    return not safe[1:].all()


def _disband_units_in(m, cells: np.ndarray, f: int, partners: np.ndarray,
                      main_ground: np.ndarray) -> None:
    """Units of the defenders in a surrendering piece, and units of the besieged faction cut
    off at its edge (:func:`sim.rules.sieges.cut_off_units`), join its garrison."""
    t = m.units
    r, c = t.cells()
    R, C = cells.shape
    r, c = np.clip(r, 0, R - 1), np.clip(c, 0, C - 1)
    sel, tr, tc = sieges.cut_off_units(r, c, t.faction.astype(np.int64), t.alive, cells, f,
                                       partners, main_ground)
    for k, a, b in zip(sel, tr, tc):
        m.garrison[t.faction[k], a, b] += t.fighters[k]
        t.fighters[k] = 0.0
        t.alive[k] = False
    m._remove_units(sel)


def _relocate_people(m, cells: np.ndarray, dest: np.ndarray, share: float) -> float:
    """Move ``share`` of the at-home people living on a surrendered piece's cells to the
    destination (as displaced people sheltering at the destination's best cell).  A
    community's people on the piece are its region's share of static population on the
    piece's cells (a settlement region may straddle the piece's edge, and a small piece may
    hold no region's settlement cell)."""
    if share <= 0 or dest.sum() <= 0:
        return 0.0
    cm, pop = m.communities, m.population
    on_piece = np.bincount(pop.fr, weights=pop.pop0_in * cells.ravel()[pop.inside],
                           minlength=pop.n_reg) / pop.weight
    frac = np.minimum(on_piece[cm.region], 1.0)
    sel = np.flatnonzero((frac > 0) & (cm.home > 0))
    if sel.size == 0:
        return 0.0
    moved = cm.home[sel] * share * frac[sel]
    cm.home[sel] -= moved
    cm.idp[sel] += moved
    cm.idp_loc[sel] = int(np.argmax(dest.ravel()))
    return float(moved.sum())


def flight_conditions(m) -> tuple[np.ndarray, np.ndarray]:
    """``(threat, pocket)``: per community, the week's hazard of flight ahead of a feared
    advance (:func:`sim.rules.civilians.threat_hazard`: how far, in km, an enemy at war with
    the people's controller came toward them this week, within ``displacement.threat_km``,
    where the advancing faction may hold ground; averaged over the people of the community's
    region); per cell (flat), the label of the besieged pocket it lies in (``m.sealed``, found
    by :func:`sieges_week` this week; 0 = open ground): no one gets in or out of a pocket but
    under a deal (:func:`sim.rules.civilians.pocket_reach`)."""
    dc, pop = m.cfg.displacement, m.population
    war = war_matrix(m)
    cm = m.communities
    threat = civilians.threat_hazard(m.prev_owner, m.owner, war, m.legitimacy, pop.regmap.ravel(),
                                     pop.pop_static.ravel(), pop.weight, cm.region, cm.identity,
                                     dc.threat_km, cell_sides_km(m), dc.flee_rate_threat,
                                     dc.threat_advance_km, m.allowed)
    return threat, label8(m.sealed)[0].ravel()


def go_to_ground(m, sl, hid: np.ndarray, hid_trapped: np.ndarray) -> None:
    """ISIS fighters of lost cells who go to ground (redeploy phase, box ``sl``): the
    foreigners among them, in proportion to the foreign share of ISIS's fighters, cannot hide
    among local communities and leave the region instead
    (:func:`sim.rules.insurgency.foreign_share_leaving`); the survivors of a cut-off pocket
    (``hid_trapped``) all go to ground.  But those with a pocket of river valley or town ISIS
    still holds within ``holdouts.fallback_km`` fall back into it instead
    (:func:`sim.rules.holdouts.fall_back`; moved, not lost)."""
    total = m.fighters(m.isis) + float(hid.sum()) + float(hid_trapped.sum())
    hid = _fall_back(m, sl, hid)
    stay, out = insurgency.foreign_share_leaving(hid, m.ledger.foreign, total)
    m.hidden[sl] += stay.astype(np.float32)
    m.hidden[sl] += hid_trapped.astype(np.float32)
    if out > 0:
        m.ledger.exported(out)


def _fall_back(m, sl, hid: np.ndarray) -> np.ndarray:
    """The part of ``hid`` (fighters going to ground in box ``sl``) that stays hidden; the rest
    joins the garrison of the nearest held pocket within ``holdouts.fallback_km``."""
    km = m.cfg.holdouts.fallback_km
    if km <= 0 or not (hid > 0).any():
        return hid
    going = np.zeros(m.geo.shape, hid.dtype)
    going[sl] = hid
    labels, _ = label8(m.owner == m.isis)
    joining, staying = holdouts.fall_back(going, labels, m.holdout_mask, m.station_w0, km, cell_sides_km(m))
    m.garrison[m.isis] += joining.astype(m.garrison.dtype)
    return staying[sl]


def foreign_exit(m) -> None:
    """ISIS after the caliphate (insurgency phase): foreign fighters leave the region, faster
    as the caliphate's ground is lost."""
    isis = m.isis
    isis_total = m.fighters(isis)
    out = insurgency.foreign_exit(m.ledger.foreign, m.cfg.scenario.foreign_fighter_exit_rate,
                                  insurgency.territory_loss(m.prev_owner, m.owner, isis))
    if isis_total > 0 and out > 0:
        keep = 1.0 - out / isis_total
        m.garrison[isis] *= keep
        m.hidden *= keep
        m.units.fighters[m.units.faction == isis] *= keep
        m.ledger.exported(out)


def theatre_cells(m) -> np.ndarray:
    """Cells inside the theatre (helper for tests)."""
    return m.owner != OUTSIDE
