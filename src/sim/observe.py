"""Observation: the metrics the model records at the end of every step (the ``record``
phase) as tidy ``(step, metric, faction, value)`` rows.

Naming: ``n_`` a stock, ``new_`` a flow of the step, ``cum_`` the running total of a ``new_``
flow (derived from the flows in :class:`sim.rules.ledger.FighterLedger`), ``share_`` a
ratio.  docs/ODD.md section 4.11 describes every metric.
"""

from __future__ import annotations

import numpy as np

from .rules.control import OUTSIDE, UNGOVERNED

FACTION_FLOWS = ("new_fighter_losses", "new_recruits", "new_fighters_evacuated",
                 "new_fighters_surrendered")
ALL_FLOWS = ("new_displaced", "new_refugees_abroad", "new_returnees", "new_returnees_initial",
             "new_civilian_deaths", "new_insurgent_attacks", "new_foreign_fighters_exported",
             "new_cells_resurfaced", "new_people_relocated", "new_siege_deals",
             "new_cells_abandoned")
BATTLE_FLOWS = ("new_battles", "new_battles_vs_isis", "new_battles_former_allies")


def record(m) -> None:
    """Append this step's metrics of model ``m`` to ``m.records``."""
    s = m.steps
    rec = m.records.append
    territory(m, s, rec)
    forces_and_people(m, s, rec)
    flows(m, s, rec)
    battles(m, s, rec)
    rec((s, "share_grievance", "ALL", float(m.mean_grievance)))
    rec((s, "share_units_stuck", "ALL", float(getattr(m, "share_units_stuck", 0.0))))


def territory(m, s: int, rec) -> None:
    """Territory and people by controller, fighters and the faction flows of the ledger."""
    area_tot = float(m.area.sum())
    present = m.people_present()
    pop_tot = float(present[m.geo.theatre].sum())
    code = np.where(m.owner >= 0, m.owner, m.n_f).ravel()
    area_by = np.bincount(code, weights=m.area.ravel(), minlength=m.n_f + 1)
    pop_by = np.bincount(code, weights=present.ravel(), minlength=m.n_f + 1)
    cells_by = np.bincount(code, minlength=m.n_f + 1)
    led = m.ledger
    for i, f in enumerate(m.faction_names):
        rec((s, "share_territory_area", f, area_by[i] / area_tot if area_tot else 0.0))
        rec((s, "share_territory_pop", f, pop_by[i] / pop_tot if pop_tot else 0.0))
        rec((s, "n_cells", f, float(cells_by[i])))
        rec((s, "n_fighters", f, m.fighters(i)))
        for name in FACTION_FLOWS:
            rec((s, name, f, led.flow[(name, f)]))
        key = ("new_fighters_withdrawn", f)
        led.close_step([key])
        rec((s, "new_fighters_withdrawn", f, led.flow[key]))
        rec((s, "cum_fighters_withdrawn", f, led.cum[key]))
    if m.isis >= 0:  # settled ground (holdouts.settled_density): what the defeat date counts
        settled = float(m.settled_km2[(m.owner == m.isis) & m.settled_ground].sum())
        rec((s, "share_territory_area_settled", "ISIS", settled / area_tot if area_tot else 0.0))
    ung = m.owner == UNGOVERNED
    rec((s, "share_territory_area", "UNGOVERNED", float(m.area[ung].sum() / area_tot)))
    rec((s, "share_territory_pop", "UNGOVERNED", float(present[ung].sum() / pop_tot) if pop_tot else 0.0))
    rec((s, "n_ungoverned_cells", "ALL", float(ung.sum())))
    rec((s, "share_contested", "ALL", float((m.level == 3)[m.owner != OUTSIDE].mean())))


def forces_and_people(m, s: int, rec) -> None:
    """Hidden and foreign ISIS fighters; the civilian stocks."""
    rec((s, "n_fighters_hidden", "ISIS", float(m.hidden.sum())))
    rec((s, "n_foreign_fighters", "ISIS", float(m.ledger.foreign)))
    cm = m.communities
    rec((s, "n_displaced", "ALL", float(cm.idp.sum())))
    rec((s, "n_displaced_initial", "ALL", float(cm.idp_init.sum())))
    rec((s, "n_abroad", "ALL", float(cm.abroad.sum())))
    rec((s, "n_abroad_initial", "ALL", float(cm.abroad_init.sum())))
    rec((s, "n_at_home", "ALL", float(cm.home.sum())))
    rec((s, "n_civilian_dead", "ALL", float(cm.dead.sum())))
    displaced_by_governorate(m, s, rec)


def displaced_by_governorate(m, s: int, rec) -> None:
    """``new_displaced_gov``: people who left home this week per governorate of their home
    (``faction`` = the governorate's name in ``admin1.geojson``), for every governorate with
    communities; ``new_displaced_again_gov``: displaced people driven on from a shelter under
    fire, per governorate of that shelter (secondary displacement, which the UN's counts of
    people displaced by an operation include)."""
    pop, geo = m.population, m.geo
    if not hasattr(m, "_community_gov"):
        gov = geo.admin1.ravel()[pop.region_cell[m.communities.region]].astype(np.int64)
        m._community_gov = (gov, np.unique(gov[gov >= 0]))
    gov, present = m._community_gov
    ok = gov >= 0
    by = np.bincount(gov[ok], weights=pop.left[ok], minlength=len(geo.admin1_names))
    at = geo.admin1.ravel()[pop.moved_on_loc].astype(np.int64)  # where the shelter was
    again = np.bincount(at[at >= 0], weights=pop.moved_on[at >= 0], minlength=len(geo.admin1_names))
    for g in present:
        rec((s, "new_displaced_gov", str(geo.admin1_names[g]), float(by[g])))
        rec((s, "new_displaced_again_gov", str(geo.admin1_names[g]), float(again[g])))
    displaced_by_holder(m, s, rec, gov, at)


def displaced_by_holder(m, s: int, rec, gov: np.ndarray, at: np.ndarray) -> None:
    """``new_displaced_gov_holder`` and ``new_displaced_again_gov_holder``: the same flows as
    :func:`displaced_by_governorate` split by who held the home (the shelter) before this
    week's changes (``m.prev_owner``), ``faction`` = ``"<governorate>|<holder>"``, for every
    pair holding a community's home or shelter this week (zeros included): an operation's
    displaced are counted on the ground its target held (Olive Branch: the UN's 150,000 from
    Afrin district, the Kurdish-held pocket, not all of Aleppo governorate)."""
    pop, geo, names = m.population, m.geo, m.faction_names
    n_g, n_f = len(geo.admin1_names), m.n_f
    prev = m.prev_owner.ravel()
    h_home = prev[pop.region_cell[m.communities.region]].astype(np.int64)
    h_at = prev[pop.moved_on_loc].astype(np.int64)
    ok, ok_at = (gov >= 0) & (h_home >= 0), (at >= 0) & (h_at >= 0)
    by = np.bincount(gov[ok] * n_f + h_home[ok], weights=pop.left[ok], minlength=n_g * n_f)
    again = np.bincount(at[ok_at] * n_f + h_at[ok_at], weights=pop.moved_on[ok_at],
                        minlength=n_g * n_f)
    for k in np.union1d(gov[ok] * n_f + h_home[ok], at[ok_at] * n_f + h_at[ok_at]):
        key = f"{geo.admin1_names[k // n_f]}|{names[k % n_f]}"
        rec((s, "new_displaced_gov_holder", key, float(by[k])))
        rec((s, "new_displaced_again_gov_holder", key, float(again[k])))


def flows(m, s: int, rec, names=ALL_FLOWS) -> None:
    """Theatre-wide flows of the step and their running totals."""
    led = m.ledger
    for name in names:
        key = (name, "ALL")
        led.close_step([key])
        rec((s, name, "ALL", led.flow[key]))
        rec((s, "cum_" + name[4:], "ALL", led.cum[key]))


def battles(m, s: int, rec) -> None:
    """Battles of the step: all, against ISIS, between former allies, and per hostile dyad."""
    b = m.battles
    upper = np.triu(b, 1)
    isis = m.isis
    led = m.ledger
    led.flow[("new_battles", "ALL")] = float(upper.sum())
    led.flow[("new_battles_vs_isis", "ALL")] = float(b[isis].sum()) if isis >= 0 else 0.0
    led.flow[("new_battles_former_allies", "ALL")] = float((upper * np.triu(m.former_allies, 1)).sum())
    flows(m, s, rec, BATTLE_FLOWS)
    for i in range(m.n_f):
        for j in range(i + 1, m.n_f):
            if m.hostility0[i, j] > 0 or m.hostility[i, j] > 0:
                a, c = sorted((m.faction_names[i], m.faction_names[j]))
                rec((s, "new_battles", f"{a}|{c}", float(b[i, j])))
