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

from .geography import TERRAIN_CLASSES
from .rules import alignment, assault, holdouts, insurgency, reach, sieges, withdrawal
from .rules.control import OUTSIDE
from .rules.events import hostility_matrix


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


def setup(m) -> None:
    """State of the aftermath mechanisms on model ``m`` (called once, after the forces)."""
    cfg, geo = m.cfg, m.geo
    m.core = core_masks(cfg, geo, m.faction_names)
    m.may_withdraw = np.array([cfg.factions[f].withdraws for f in m.faction_names], bool)
    m.latent = np.zeros((m.n_f, m.n_f))
    for a, row in cfg.scenario.latent_hostility.items():
        hostility_matrix([[a, b, v] for b, v in row.items()], m.fidx, m.n_f, m.latent)
    m.latent = np.maximum(m.latent, m.latent.T)
    m.policy_hostility = m.hostility.copy()  # initial + sourced dated policy decisions
    m.siege_clock = sieges.SiegeClock(m.n_f, geo.shape)
    m.deals: list[dict] = []
    urban = np.clip(np.log10(np.maximum(geo.population, 1.0) / 1000.0) / 2.0, 0.0, 1.0)
    m.assault_defence = 1.0 + cfg.assault.urban_defence * urban
    m.holdout_mask = (geo.terrain == TERRAIN_CLASSES.index("river_valley")) | (urban > 0.5)
    m.unit_reachable = np.ones(len(m.units), bool)
    m.share_units_stuck = 0.0
    # limited aims: former allies turned rivals fight over the spoils, not each other's core
    m.core_closed = np.zeros((m.n_f, *geo.shape), bool)
    for f in range(m.n_f):
        for g in range(m.n_f):
            if f != g and m.latent[f, g] > 0 and m.hostility0[f, g] < cfg.scenario.former_allies_max_hostility:
                m.core_closed[f] |= m.core[g]


def war_matrix(m) -> np.ndarray:
    """``[F, F]`` bool: pairs at war (hostility at least ``control.offensive_hostility``)."""
    return m.hostility >= m.cfg.control.offensive_hostility


def limit_allowed(m) -> None:
    """Ground a faction may hold: not the core of a former ally turned rival (limited aims)."""
    m.allowed &= ~m.core_closed


# ---------------------------------------------------------------- events
def hostility_week(m, due: list[str]) -> None:
    """Apply the due events' ``set_hostility`` to the policy hostility (unless
    ``scenario.dated_hostility`` is false), then the responsive law:
    ``h = max(policy, latent x p(lost))`` (:mod:`sim.rules.alignment`)."""
    s = m.cfg.scenario
    if s.dated_hostility:
        for name in due:
            hostility_matrix(s.events[name].set_hostility, m.fidx, m.n_f, m.policy_hostility)
    cells = np.bincount(m.owner[m.owner >= 0].ravel(), minlength=m.n_f)
    lost = alignment.common_enemy_lost(m.hostility0, cells, m.initial_cells,
                                       m.cfg.control.offensive_hostility)
    ac = m.cfg.alignment
    m.hostility = alignment.responsive_hostility(m.policy_hostility, m.latent, lost, ac.onset, ac.shape)


def reinforce(m, due: list[str]) -> None:
    """Patrons add forces (``events.<name>.reinforce``): fighters join the faction's garrisons
    on its own ground in proportion to the station weights (booked as recruits from outside)."""
    for name in due:
        for f, k in m.cfg.scenario.events[name].reinforce.items():
            i = m.fidx[f]
            w = np.where(m.owner == i, np.maximum(m.station_w[i], 0.0), 0.0).astype(np.float64)
            if k <= 0 or w.sum() <= 0:
                continue
            m.garrison[i] += (w * (k / w.sum())).astype(m.garrison.dtype)
            m.ledger.recruited(i, float(k))


# ---------------------------------------------------------------- plan / move
def route_units(m, f: int, units: np.ndarray, targets: np.ndarray, cand: np.ndarray,
                score: np.ndarray) -> np.ndarray:
    """Drop objectives units of faction ``f`` cannot reach through passable ground and
    re-allocate those units over the reachable candidate cells ``cand`` (flat indices, best
    first) with :func:`sim.rules.reach.allocate_units`.  Units with no reachable front stay
    in reserve where they are.  Returns the new targets ``[U, 2]``."""
    war = m.cfg.control.offensive_hostility
    open_g, front = reach.passable_parts(m.owner, m.hostility, m.allowed, f, war)
    mask = open_g | front
    urc = np.column_stack([m.units.row[units], m.units.col[units]])
    ok = reach.reachable_targets(mask, urc, targets, front)
    if not ok.all() and cand.size:
        bad = np.flatnonzero(~ok)
        C = m.owner.shape[1]
        krc = np.column_stack(np.divmod(cand, C)).astype(float)
        rmat = reach.reachable_matrix(mask, urc[bad], krc, front)
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


def record_stuck(m, r0: np.ndarray, c0: np.ndarray) -> None:
    """``share_units_stuck``: live units with an objective not yet reached that cannot reach
    it or did not move this week (:func:`sim.rules.reach.share_units_stuck`)."""
    t = m.units
    live = t.alive
    d = np.hypot(t.target[:, 0] - t.row, t.target[:, 1] - t.col)
    moved = (t.row != r0) | (t.col != c0)
    m.share_units_stuck = reach.share_units_stuck(live & (d > 1e-9), live & (d <= 1.0),
                                                  m.unit_reachable[: len(t)], moved)


# ---------------------------------------------------------------- control
def withdraw_week(m, presence: np.ndarray) -> None:
    """Factions that may withdraw give up hopeless non-core ground without a battle
    (:func:`sim.rules.withdrawal.withdraw`); the cells fall vacant, the garrisons fall back."""
    war = war_matrix(m)
    may = m.may_withdraw & ~m.withdrawn
    if not may.any():
        return
    before = m.owner
    new_owner, new_g, moved = withdrawal.withdraw(m.owner, presence, m.garrison, war, m.core,
                                                  m.cfg.withdrawal.withdraw_ratio, may)
    n = int((new_owner != before).sum())
    if n:
        m.owner[...] = new_owner
        m.garrison[...] = new_g
        m.flow[("new_cells_abandoned", "ALL")] += float(n)


def assault_week(m, post: np.ndarray, hold_min: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capture of held cells by sector odds (:func:`sim.rules.assault.sector_capture`), the
    ISIS holdout defence folded into the urban defence.  Returns ``(idx, old, new)`` of the
    captured cells (flat), the owner map updated in place."""
    n, shape = m.n_f, m.geo.shape
    p = np.minimum(post.reshape(n, -1), m.frontage[None]).reshape(n, *shape)
    hostile = m.engaged & war_matrix(m)
    defence = m.assault_defence
    if m.isis >= 0:
        share = float((m.owner == m.isis).sum()) / max(float(m.initial_cells[m.isis]), 1.0)
        hc = m.cfg.holdouts
        defence = defence * holdouts.holdout_defence(m.owner, m.isis, m.holdout_mask, share,
                                                     hc.max_factor, hc.onset)
    hm = (hold_min[:, None] * m.hold_scale[None]).reshape(n, *shape)
    jitter = m.streams["jitter"].random(p.shape, dtype=np.float32) * 1e-3
    captured, capturer = assault.sector_capture(m.owner, p, hostile, m.allowed, hm, defence,
                                                m.cfg.assault.sector_ratio, jitter)
    idx = np.flatnonzero(captured)
    old = m.owner.ravel()[idx].copy()
    new = capturer.ravel()[idx].astype(m.owner.dtype)
    m.owner.ravel()[idx] = new
    return idx, old, new


# ---------------------------------------------------------------- redeploy
def sieges_week(m) -> None:
    """Besieged pieces under sustained superiority surrender (:mod:`sim.rules.sieges`): units
    inside disband into the garrison first, evacuees go to the main ground, the rest surrender
    (ledger), a share of the people is relocated with them, and the deal is logged."""
    war = war_matrix(m)
    sc = m.cfg.sieges
    for f in range(m.n_f):
        if not m.may_withdraw[f] or m.withdrawn[f] or not war[f].any() or not (m.owner == f).any():
            continue
        s = sieges.besieged_pieces(m.owner, war, f, m.presence, m.core[f] if m.core[f].any() else None)
        count = m.siege_clock.update(s, sc.siege_ratio)
        due = np.flatnonzero(m.siege_clock.due(s, count, sc.delay_weeks))
        if due.size == 0:
            continue
        dest = np.where(s.main[s.labels] & (m.owner == f), np.maximum(m.station_w[f], 0.0), 0.0)
        for k in due:
            _disband_units_in(m, s.labels == k, s.partners)
            people = m.people_present()
            deal = sieges.surrender(s, int(k), m.owner, m.garrison, people, dest, sc.evac_share,
                                    sc.civilian_share)
            m.owner[...] = deal.owner
            m.garrison[...] = deal.garrison
            m.siege_clock.clear(f, deal.cells)
            for g in np.flatnonzero(deal.evacuated + deal.surrendered):
                m.ledger.evacuated(g, float(deal.evacuated[g]))
                m.ledger.surrendered(g, float(deal.surrendered[g]))
            relocated = _relocate_people(m, deal.cells, dest, sc.civilian_share)
            m.flow[("new_people_relocated", "ALL")] += relocated
            m.flow[("new_siege_deals", "ALL")] += 1.0
            r, c = np.nonzero(deal.cells)
            m.deals.append({"date": str(m.date), "faction": m.faction_names[f],
                            "besieger": m.faction_names[deal.besieger], "cells": int(deal.cells.sum()),
                            "centre_cell": [int(round(r.mean())), int(round(c.mean()))],
                            "fighters_evacuated": float(deal.evacuated.sum()),
                            "fighters_surrendered": float(deal.surrendered.sum()),
                            "people_relocated": float(relocated)})


def _disband_units_in(m, cells: np.ndarray, partners: np.ndarray) -> None:
    """Units of the defenders standing in a surrendering piece join its garrison."""
    t = m.units
    r, c = t.cells()
    R, C = cells.shape
    r, c = np.clip(r, 0, R - 1), np.clip(c, 0, C - 1)
    sel = np.flatnonzero(t.alive & partners[t.faction] & cells[r, c])
    for k in sel:
        m.garrison[t.faction[k], r[k], c[k]] += t.fighters[k]
        t.fighters[k] = 0.0
        t.alive[k] = False
    m._remove_units(sel)


def _relocate_people(m, cells: np.ndarray, dest: np.ndarray, share: float) -> float:
    """Move ``share`` of the at-home people of the communities of a surrendered piece to the
    destination (as displaced people sheltering at the destination's best cell)."""
    if share <= 0 or dest.sum() <= 0:
        return 0.0
    cm, pop = m.communities, m.population
    home_cell = pop.region_cell[cm.region]
    sel = np.flatnonzero(cells.ravel()[home_cell] & (cm.home > 0))
    if sel.size == 0:
        return 0.0
    moved = cm.home[sel] * share
    cm.home[sel] -= moved
    cm.idp[sel] += moved
    cm.idp_loc[sel] = int(np.argmax(dest.ravel()))
    return float(moved.sum())


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
