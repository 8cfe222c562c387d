"""``ConflictModel``: the Syria–Iraq theatre from 1 July 2017, one step = one week.

State is numpy arrays over the grid (``owner[r, c]``, ``garrison[f, r, c]``, ``hidden[r, c]``,
``damage[r, c]``) plus two tables behind the Mesa agents (units and civilian communities).
:meth:`ConflictModel.step` is a list of named phases; each phase calls pure rules from
:mod:`sim.rules`.  The model never imports plotting, the UI or Hydra.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import defaultdict

import mesa
import numpy as np
from scipy import ndimage

from .agents import Community, CommunityTable, FactionHQ, Unit, UnitTable
from .config import IDENTITIES, Config
from .geography import DATA, DATA_BBOX, Geography
from .grid import haversine_km
from .rules import civilians as civ
from .rules import combat, insurgency
from .rules.control import (
    OUTSIDE,
    UNGOVERNED,
    control_levels,
    initial_control_voronoi,
    update_control,
)
from .rules.spatial import box_mean, box_sum3, dilate8, stamp_windows, window_means, window_size

ISIS = "ISIS"
PHASES = ("events", "plan", "move", "project", "combat", "control", "redeploy", "insurgency",
          "civilians", "record")
STREAMS = ("init", "engage", "combat", "insurgency", "civilians", "jitter")
REFERENCE_RES = 0.05  # degrees: per-cell thresholds in the configs are for cells of this size
GARRISON_SPILL = 0.25  # share of a garrison's presence felt in each of the 8 neighbour cells x 8


def _date(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def garrison_presence(field: np.ndarray) -> np.ndarray:
    """Presence of garrisons: all of a cell's garrison in the cell, plus ``GARRISON_SPILL / 8``
    of it in each neighbour.  The kernel is symmetric, so applying it to loss rates hands
    each cell's losses back to the garrisons that were present there, exactly."""
    f = field.astype(np.float32, copy=False)
    return f + np.float32(GARRISON_SPILL / 8.0) * (box_sum3(f) - f)


def mix(weights: np.ndarray, fields: np.ndarray) -> np.ndarray:
    """``out[f] = sum_g weights[f, g] * fields[g]`` for ``[faction, row, col]`` stacks."""
    n = fields.shape[0]
    # einsum's own loops, not BLAS: a 10 x 10 by 10 x N product gains nothing from threads
    out = np.einsum("fg,gn->fn", weights.astype(np.float32), fields.reshape(n, -1))
    return out.reshape(weights.shape[0], *fields.shape[1:])


class ConflictModel(mesa.Model):
    """The power-vacuum model.  Build with a validated :class:`~sim.config.Config` and a
    :class:`~sim.geography.Geography`; call :meth:`step` once per week."""

    def __init__(self, cfg: Config, geo: Geography):
        seq = np.random.SeedSequence([int(cfg.seed), int(cfg.replicate)])
        children = seq.spawn(len(STREAMS) + 1)
        super().__init__(rng=np.random.default_rng(children[0]))
        # one independent stream per mechanism: paired scenarios (same seed) share the random
        # numbers of every mechanism they have in common (common random numbers)
        self.streams = {n: np.random.default_rng(s) for n, s in zip(STREAMS, children[1:])}
        self.cfg = cfg
        self.geo = geo
        self.faction_names = list(cfg.factions)
        self.identity_names = list(IDENTITIES)
        self.n_f = len(self.faction_names)
        self.fidx = {n: i for i, n in enumerate(self.faction_names)}
        self.isis = self.fidx.get(ISIS, -1)
        self.start = _date(cfg.scenario.start_date)
        self.step_days = cfg.scenario.step_days
        self.date = self.start
        self.phase_seconds: dict[str, float] = defaultdict(float)
        shape = geo.shape
        self.area = np.where(geo.theatre, geo.grid.cell_area_km2, 0.0)  # float64: shares sum to 1
        self.cell_km = geo.grid.cell_km

        self._init_parameters()
        self._init_control()
        self._init_civilians()
        self._init_forces()
        self.hidden = np.zeros(shape, np.float32)  # ISIS covert members per cell
        self.damage = np.zeros(shape, np.float32)
        self.violence = np.zeros(shape, np.float32)  # fighters lost + attack deaths this step
        self.fighting = np.zeros(shape, bool)
        self.level = np.zeros(shape, np.int8)
        self.presence = np.zeros((self.n_f, *shape), np.float32)
        self.initial_cells = np.bincount(self.owner[self.owner >= 0].ravel(), minlength=self.n_f)
        self.counters = defaultdict(float)  # cumulative totals
        self.fighter_ledger = {n: defaultdict(float) for n in self.faction_names}
        self.foreign = (cfg.factions[ISIS].fighters * cfg.factions[ISIS].foreign_fighter_share
                        * cfg.scenario.strength_multiplier.get(ISIS, 1.0)) if self.isis >= 0 else 0.0
        self.records: list[tuple[int, str, str, float]] = []
        self.steps_done = 0
        self._fired: set = set()
        self._flow = defaultdict(float)
        self.air = np.ones((self.n_f, self.n_f))
        self.engaged = self.hostility > 0
        self.prev_owner = self.owner.copy()
        self._combat_idx = np.zeros(0, np.int64)
        self.below_weeks = np.zeros(self.geo.grid.n_cells, np.int16)
        self._phase_project()
        self._record()

    # ------------------------------------------------------------------ initialisation
    def _init_parameters(self) -> None:
        cfg, n = self.cfg, self.n_f
        fcs = [cfg.factions[f] for f in self.faction_names]
        mult = np.array([cfg.scenario.strength_multiplier.get(f, 1.0) for f in self.faction_names])
        self.firepower = np.array([fc.firepower for fc in fcs]) * np.array(
            [fc.morale for fc in fcs])
        if self.isis >= 0:
            self.firepower[self.isis] *= cfg.scenario.isis_cohesion
        # per-cell thresholds are given for a 0.05 degree cell and scale with cell area, so the
        # model behaves alike on the 0.1, 0.05 and 0.025 degree grids
        self.area_factor = float((self.geo.grid.res / REFERENCE_RES) ** 2)
        self.hold_min = np.array([fc.garrison_min for fc in fcs], np.float32) * self.area_factor
        if self.isis >= 0:
            self.hold_min[self.isis] /= max(cfg.scenario.isis_cohesion, 1e-6)
        # holding a cell takes fighters in proportion to its people (empty desert: a patrol;
        # a town: a garrison), and towns favour their defender (urban terrain)
        pop = self.geo.population.ravel().astype(np.float64)
        cc = cfg.control
        e = cc.empty_hold_share
        self.hold_scale = (e + (1 - e) * np.clip(np.sqrt(pop / cc.hold_population), 0, 1)).astype(np.float32)
        urban = np.clip(np.log10(np.maximum(pop, 1.0) / 1000.0) / 2.0, 0.0, 1.0)
        self.defence = (1.0 + cc.urban_defence * urban).astype(np.float32)
        self.shield = (1.0 + cfg.combat.urban_loss_shield * urban).astype(np.float32)
        self.move_window = window_size(cc.garrison_move_km, self.cell_km)
        self.frontage = (cfg.combat.max_density_km2 * self.geo.grid.cell_area_km2).ravel().astype(np.float32)
        self.strength0 = np.array([fc.fighters for fc in fcs]) * mult
        self.unit_window = np.array([window_size(fc.projection_km, self.cell_km) for fc in fcs])
        self.unit_speed_cells = np.array([fc.speed_km_week for fc in fcs]) / self.cell_km
        self.hostility = np.zeros((n, n))
        for a, row in cfg.scenario.hostility.items():
            for b, v in row.items():
                i, j = self.fidx[a], self.fidx[b]
                self.hostility[i, j] = self.hostility[j, i] = v
        self.hostility0 = self.hostility.copy()
        self.withdrawn = np.zeros(n, bool)
        # former co-belligerents: both fought ISIS, and were not at war with each other at t0
        self.former_allies = np.zeros((n, n), bool)
        if self.isis >= 0:
            anti = self.hostility0[:, self.isis] > 0
            self.former_allies = anti[:, None] & anti[None, :] & (
                self.hostility0 < cfg.scenario.former_allies_max_hostility)
            self.former_allies[self.isis, :] = self.former_allies[:, self.isis] = False
            np.fill_diagonal(self.former_allies, False)
        self.legitimacy = np.full((n, len(IDENTITIES)), 0.1)
        for i, fc in enumerate(fcs):
            for ident, v in fc.legitimacy.items():
                self.legitimacy[i, IDENTITIES.index(ident)] = v
        # value of ground per faction [F, R, C]
        g = self.geo
        popv = np.log1p(g.population) / max(np.log1p(g.population.max()), 1e-9)
        terms = {"population": popv, "key_place": g.key_place, "oil": g.oil,
                 "border": g.border.astype(np.float32)}
        self.value = np.stack([0.05 + sum(fc.value_weights.get(k, 0.0) * v for k, v in terms.items())
                               for fc in fcs]).astype(np.float32)
        self._build_allowed()

    def _build_allowed(self) -> None:
        """Where each faction may hold ground: its countries, minus the far side of any active
        deconfliction line, minus everything once it has withdrawn."""
        g = self.geo
        allowed = np.zeros((self.n_f, *g.shape), bool)
        for i, f in enumerate(self.faction_names):
            for c in self.cfg.factions[f].countries:
                allowed[i] |= g.country_mask(c)
            allowed[i] &= g.theatre
            if self.withdrawn[i]:
                allowed[i] = False
        for name, d in self.cfg.scenario.deconfliction.items():
            if d.until and self.date >= _date(d.until):
                continue
            side = self._line_side(d)
            in_country = g.country_mask(d.country)
            for f, s in zip(d.factions, d.sides):
                want = 1 if s == "north" else -1
                allowed[self.fidx[f]] &= ~(in_country & (side == -want))
        self.allowed = allowed

    def _line_side(self, d) -> np.ndarray:
        """Side of a deconfliction line per cell (+1 north, -1 south, 0 open), cached: the
        geometry does not change during a run."""
        key = (d.line, d.country, d.line_cells, d.north_share)
        cache = self.__dict__.setdefault("_side_cache", {})
        if key not in cache:
            from .geography import line_cell_majority, river_side

            g = self.geo
            side = river_side(g, d.line, d.country)
            if d.line_cells != "both":
                on_line = g.named_rivers[d.line] & g.country_mask(d.country)
                if d.line_cells == "majority":
                    side = np.where(on_line, line_cell_majority(g, d.line, on_line, d.north_share), side)
                else:
                    side = np.where(on_line, 1 if d.line_cells == "north" else -1, side)
            cache[key] = side
        return cache[key]

    def _init_control(self) -> None:
        g = self.geo
        path = DATA / "history" / "initial_control_2017-07.csv"
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        iso = {"Syria": "SYR", "Iraq": "IRQ"}
        lat, lon, code, ctry = [], [], [], []
        for i, r in enumerate(rows, start=2):
            try:
                la, lo = float(r["lat"]), float(r["lon"])
            except (TypeError, ValueError):
                raise ValueError(f"{path.name} line {i}: bad lat/lon {r.get('lat')!r}, {r.get('lon')!r}") from None
            (x0, x1), (y0, y1) = DATA_BBOX
            if not (y0 <= la <= y1 and x0 <= lo <= x1):
                raise ValueError(f"{path.name} line {i}: lat/lon {la}, {lo} outside the data's "
                                 f"box ({y0}..{y1} N, {x0}..{x1} E)")
            if r["controller"] not in self.fidx:
                if r["controller"] in ("ISIS", "SYRIAN_GOV", "SDF", "SYRIAN_REBELS", "ISLAMIST_REBELS",
                                       "TURKEY_SNA", "US_COALITION", "IRAQI_GOV", "PMF", "KRG"):
                    continue  # faction left out of this configuration
                raise ValueError(f"{path.name} line {i}: unknown controller {r['controller']!r}")
            if r["country"] not in iso:
                raise ValueError(f"{path.name} line {i}: unknown country {r['country']!r}")
            lat.append(la)
            lon.append(lo)
            code.append(self.fidx[r["controller"]])
            ctry.append(iso[r["country"]])
        rr, cc = g.grid.rowcol(np.array(lat), np.array(lon))
        if g.sources.get("all") == "synthetic test map":
            # synthetic map: seeds are its own towns, assigned round-robin to factions
            rr, cc = g.places.row, g.places.col
            code = [i % self.n_f for i in range(len(rr))]
            ctry = ["SYR" if g.country[r, c] == 0 else "IRQ" for r, c in zip(rr, cc)]
        ctry_idx = np.array([g.country_names.index(c) if c in g.country_names else -99 for c in ctry])
        lat0 = np.deg2rad(0.5 * (g.grid.lat_min + g.grid.lat_max))
        self.owner = initial_control_voronoi(np.asarray(rr), np.asarray(cc), np.asarray(code),
                                             ctry_idx, g.country, g.theatre, 1.0, float(np.cos(lat0)))
        # a faction only holds ground where it may
        held = self.owner >= 0
        idx = np.where(held, self.owner, 0)
        ok = np.take_along_axis(self.allowed, idx[None], axis=0)[0]
        self.owner[held & ~ok] = UNGOVERNED

    def _init_civilians(self) -> None:
        """Communities = settlement area (Voronoi of places) x identity group."""
        g = self.geo
        pl = g.places
        ok = g.grid.contains(pl.row, pl.col)
        rr, cc = np.clip(pl.row, 0, g.shape[0] - 1), np.clip(pl.col, 0, g.shape[1] - 1)
        ok &= g.theatre[rr, cc]
        ok &= ~((pl.suburb_of != "") & np.isnan(pl.population))
        sel = np.flatnonzero(ok)
        # one settlement per cell: the most populous
        order = sel[np.argsort(-np.nan_to_num(pl.population[sel]))]
        cells = rr[order] * g.shape[1] + cc[order]
        _, first = np.unique(cells, return_index=True)
        sel = order[np.sort(first)]
        seeds = np.ones(g.shape, bool)
        seeds[rr[sel], cc[sel]] = False
        region_at = np.full(g.shape, -1, np.int64)
        region_at[rr[sel], cc[sel]] = np.arange(sel.size)
        _, (ir, ic) = ndimage.distance_transform_edt(seeds, return_indices=True)
        regmap = np.where(g.theatre, region_at[ir, ic], -1)
        self.regmap = regmap
        self.region_names = pl.name[sel]
        self.region_cell = (rr[sel] * g.shape[1] + cc[sel]).astype(np.int64)
        n_reg = sel.size
        flat = regmap.ravel()
        inside = flat >= 0
        pop0_reg = np.bincount(flat[inside], weights=g.population.ravel()[inside], minlength=n_reg)
        self.region_pop0 = pop0_reg
        shares_cfg = self.cfg.identity_shares
        default = shares_cfg.get("default", {"sunni_arab": 1.0})
        reg, ident, pop = [], [], []
        for k, p in enumerate(sel):
            shares = shares_cfg.get(str(pl.admin1[p]), default)
            tot = sum(shares.values()) or 1.0
            for name, s in shares.items():
                if s > 0 and pop0_reg[k] * s / tot >= 1.0:
                    reg.append(k)
                    ident.append(IDENTITIES.index(name))
                    pop.append(pop0_reg[k] * s / tot)
        self.communities = CommunityTable(reg, ident, pop, self.region_cell[np.array(reg, np.int64)])
        # people in regions too small for any community (< 1 person per group) are not modelled
        self.pop_static = g.population.astype(np.float64)
        self.initial_people = float(self.communities.pop0.sum())
        reg_ids = self.communities.region
        # distance from each region's settlement to the nearest foreign border (km)
        other = ~g.theatre & (g.country >= 0) & ~g.lake
        d_out = ndimage.distance_transform_edt(~other) * self.cell_km
        self.region_border_km = d_out.ravel()[self.region_cell]
        # destinations: key places and towns >= 50k (FLEE "locations"), plus the region seeds
        dest = np.flatnonzero(pl.key[sel] | (np.nan_to_num(pl.population[sel]) >= 50_000))
        if dest.size == 0:
            dest = np.arange(n_reg)
        self.dest_region = dest
        lat_r, lon_r = pl.lat[sel], pl.lon[sel]
        self.dest_dist = haversine_km(lat_r[reg_ids][:, None], lon_r[reg_ids][:, None],
                                      lat_r[dest][None, :], lon_r[dest][None, :])
        self.dest_capacity = pop0_reg[dest]
        for i in range(len(self.communities)):
            Community(self, i)

    def _init_forces(self) -> None:
        """Split each faction's fighters into garrisons (spread over its territory) and mobile
        units (placed on its frontier cells nearest the enemy)."""
        g, n = self.geo, self.n_f
        self.garrison = np.zeros((n, *g.shape), np.float32)
        rng = self.streams["init"]
        uf, ur, uc, us = [], [], [], []
        for i, f in enumerate(self.faction_names):
            fc = self.cfg.factions[f]
            own = self.owner == i
            if not own.any():
                # no ground at the start (e.g. the synthetic test map): not in the theatre
                self.strength0[i] = 0.0
                continue
            total = self.strength0[i]
            n_units = int(min(fc.max_units, np.floor(fc.unit_share * total / fc.unit_size)))
            in_units = n_units * fc.unit_size
            self.garrison[i] = self._initial_garrison(i, own, total - in_units)
            if n_units:
                others = (self.owner >= 0) & (self.owner != i)
                hostile = others & (self.hostility[i][np.where(self.owner >= 0, self.owner, 0)] > 0)
                # the HQ's opening deployment: own cells facing the most valuable enemy or
                # ungoverned ground within a unit's reach (value of the best cell in reach)
                target = hostile | (self.owner == UNGOVERNED)
                reach = ndimage.maximum_filter(np.where(target, self.value[i], 0.0),
                                               size=int(self.unit_window[i]))
                front = own & (reach > 0)
                cand = np.flatnonzero(front if front.any() else own)
                p = (reach.ravel()[cand] if front.any() else self.value[i].ravel()[cand]).astype(np.float64) ** 4
                pick = rng.choice(cand, size=n_units, replace=cand.size < n_units, p=p / p.sum())
                r, c = np.divmod(pick, g.shape[1])
                uf += [i] * n_units
                ur += list(r)
                uc += list(c)
                us += [fc.unit_size] * n_units
        # where each faction keeps its garrisons from now on: the base weights plus, with equal
        # total mass, the shape of its opening deployment (strongholds stay strongholds)
        base = self._garrison_weights()
        self.station_w = np.empty_like(self.garrison)
        for i in range(n):
            own = self.owner == i
            mass = float(base[own].sum())
            g0 = float(self.garrison[i].sum())
            self.station_w[i] = base + (self.garrison[i] * (mass / g0) if g0 > 0 else 0.0)
        self.units = UnitTable(uf, ur, uc, us)
        self.hqs = [FactionHQ(self, i, f) for i, f in enumerate(self.faction_names)]
        for k in range(len(self.units)):
            Unit(self, k)

    def _initial_garrison(self, i: int, own: np.ndarray, total: float) -> np.ndarray:
        """Garrisons at the start: the fighters known to be around given places
        (``garrison_areas``, capped at ``garrison_areas_max_share`` of the total and scaled down
        to fit) spread by weight inside each area; the rest by weight over all own ground."""
        g = self.geo
        fc = self.cfg.factions[self.faction_names[i]]
        base = self._garrison_weights()
        out = np.zeros(g.shape, np.float64)
        areas = []
        for a in (fc.garrison_areas if self.cfg.geography.kind == "real" else []):
            k = g.places.find(a.place)
            rr, cc = np.meshgrid(g.grid.lats, g.grid.lons, indexing="ij")
            near = own & (haversine_km(g.places.lat[k], g.places.lon[k], rr, cc) <= a.radius_km)
            if near.any() and a.fighters > 0:
                areas.append((near, a.fighters))
        want = sum(f for _, f in areas)
        scale = min(1.0, fc.garrison_areas_max_share * total / want) if want > 0 else 0.0
        placed = np.zeros(g.shape, bool)
        for near, fighters in areas:
            near = near & ~placed  # overlapping areas: the first listed wins
            if near.any():
                w = np.where(near, base, 0.0)
                out += w * (fighters * scale / w.sum())
                placed |= near
        rest = total - out.sum()
        w = np.where(own, base, 0.0)
        out += w * (rest / w.sum())
        return out.astype(np.float32)

    def _garrison_weights(self) -> np.ndarray:
        """Where a faction stations its holding forces: a base weight everywhere, more in
        populated cells (sqrt of people) and in key places."""
        if not hasattr(self, "_gw"):
            g = self.geo
            self._gw = (0.02 + np.sqrt(g.population / 5000.0) + 5.0 * g.key_place).astype(np.float32)
        return self._gw

    # ------------------------------------------------------------------ the step
    def step(self) -> None:
        """Advance one week.  Phases, in order:

        1. ``events``     dated/conditional changes: hostility, withdrawals, deconfliction end
        2. ``plan``       each :class:`FactionHQ` picks objectives for its units (GeoSim rule)
        3. ``move``       units move toward objectives over the movement-cost grid
        4. ``project``    presence fields from garrisons and units
        5. ``combat``     stochastic Lanchester attrition in contested cells; damage, civilian deaths
        6. ``control``    vacancy, capture by force ratio, race for ungoverned cells; Kalyvas levels
        7. ``redeploy``   garrisons of lost cells retreat or go underground; garrisons spread
        8. ``insurgency`` hidden ISIS cells attack, are hunted, resurface; foreign fighters leave
        9. ``civilians``  grievance, displacement, return, recruitment
        10. ``record``    metrics of the step
        """
        self._flow = defaultdict(float)
        self.date = self.start + dt.timedelta(days=self.step_days * (self.steps_done + 1))
        for name in PHASES:
            t0 = time.perf_counter()
            getattr(self, f"_phase_{name}")()
            self.phase_seconds[name] += time.perf_counter() - t0

    # 1 --------------------------------------------------------------------------------
    def _phase_events(self) -> None:
        s = self.cfg.scenario
        isis_share = self._share_area(self.isis) if self.isis >= 0 else 0.0
        changed = False
        for name, ev in s.events.items():
            if name in self._fired:
                continue
            due = (ev.date and self.date >= _date(ev.date)) or \
                  (ev.when_isis_share_below >= 0 and isis_share < ev.when_isis_share_below)
            if not due:
                continue
            self._fired.add(name)
            for a, b, v in ev.set_hostility:
                i, j = self.fidx[str(a)], self.fidx[str(b)]
                self.hostility[i, j] = self.hostility[j, i] = float(v)
            for f in ev.withdraw:
                self._withdraw(self.fidx[f])
            changed = True
        for d in s.deconfliction.values():
            if d.until and self.date >= _date(d.until) and ("deconf", d.line) not in self._fired:
                self._fired.add(("deconf", d.line))
                changed = True
        if changed:
            self._build_allowed()
        # air support active this step: multiplier [shooter, target]
        air = np.ones((self.n_f, self.n_f))
        for a in s.air_support.values():
            if a.start and self.date < _date(a.start):
                continue
            if a.end and self.date >= _date(a.end):
                continue
            against = [self.fidx[x] for x in a.against] if a.against else list(range(self.n_f))
            for r in a.recipients:
                air[self.fidx[r], against] += a.strength
        self.air = air
        # who fights whom this week: one Bernoulli draw per dyad (symmetric)
        u = self.streams["engage"].random((self.n_f, self.n_f))
        u = np.triu(u, 1)
        u = u + u.T
        eng = (u < self.hostility) & (self.hostility > 0)
        np.fill_diagonal(eng, False)
        self.engaged = eng

    def _withdraw(self, i: int) -> None:
        """A faction's ground forces leave the theatre; its ground becomes ungoverned."""
        f = self.faction_names[i]
        gone = float(self.garrison[i].sum()) + float(self.units.fighters[self.units.faction == i].sum())
        self.garrison[i] = 0
        self.units.fighters[self.units.faction == i] = 0
        self.units.alive[self.units.faction == i] = False
        self.fighter_ledger[f]["withdrawn"] += gone
        self.owner[self.owner == i] = UNGOVERNED
        self.withdrawn[i] = True

    # 2 --------------------------------------------------------------------------------
    def _phase_plan(self) -> None:
        p = self.presence
        enemy_all = mix(self.hostility > 0, p)
        for hq in self.hqs:
            hq.plan(p[hq.index], enemy_all[hq.index], self.value[hq.index])

    # 3 --------------------------------------------------------------------------------
    def _phase_move(self) -> None:
        """Move every live unit toward its target (vectorised over units, headings and path
        samples).  A unit spends its weekly budget (speed / cell size) on the movement cost of
        the cells it crosses; it may enter the first cell of an enemy it is at war with (it
        fights there next) but not go beyond it; it never enters ground its faction may not
        hold (country, deconfliction line) nor ground of a faction it only skirmishes with.
        Besides the straight heading it tries detours of +-30, 60 and 90 degrees and takes the
        one that ends nearest its target (obstacles such as lakes, a deconfliction line or a
        neutral enclave are walked around)."""
        t = self.units
        moved = self._strategic_moves()
        live = np.flatnonzero(t.alive & ~moved)
        if live.size == 0:
            return
        g = self.geo
        r0, c0 = t.row[live], t.col[live]
        tr, tc = t.target[live, 0], t.target[live, 1]
        dist = np.hypot(tr - r0, tc - c0)
        budget = self.unit_speed_cells[t.faction[live]]
        m = int(np.ceil(budget.max())) + 1
        angles = np.deg2rad(np.array([0.0, 30.0, -30.0, 60.0, -60.0, 90.0, -90.0]))
        base = np.arctan2(tr - r0, tc - c0)
        head = base[:, None] + angles[None, :]  # [u, h]
        steps = np.arange(1, m + 1)[None, None, :].astype(float)
        # straight heading: stop at the target; detours: walk up to the budget
        length = np.where(angles[None, :, None] == 0.0,
                          np.minimum(steps, dist[:, None, None]), steps)
        pr = r0[:, None, None] + np.sin(head)[:, :, None] * length
        pc = c0[:, None, None] + np.cos(head)[:, :, None] * length
        ri = np.clip(np.rint(pr).astype(np.int64), 0, g.shape[0] - 1)
        ci = np.clip(np.rint(pc).astype(np.int64), 0, g.shape[1] - 1)
        cost = np.cumsum(g.movement_cost[ri, ci], axis=2)
        fac = t.faction[live][:, None, None]
        own = self.owner[ri, ci]
        h = self.hostility[fac, np.where(own >= 0, own, 0)] * (own >= 0)
        war = h >= self.cfg.control.offensive_hostility
        ok = (cost <= budget[:, None, None]) & self.allowed[fac, ri, ci] & ~((h > 0) & ~war)
        beyond_enemy = np.cumsum(war, axis=2) - war > 0  # may enter the first enemy cell only
        ok &= ~beyond_enemy
        ok = np.cumprod(ok, axis=2).astype(bool)  # stop at the first blocked sample
        n_ok = ok.sum(axis=2)  # [u, h]
        j = np.maximum(n_ok - 1, 0)
        u_idx = np.arange(live.size)[:, None]
        h_idx = np.arange(angles.size)[None, :]
        # a heading may run off the map: positions stay on the grid (the sampled cells were
        # clipped the same way)
        end_r = np.clip(np.where(n_ok > 0, pr[u_idx, h_idx, j], r0[:, None]), 0, g.shape[0] - 1)
        end_c = np.clip(np.where(n_ok > 0, pc[u_idx, h_idx, j], c0[:, None]), 0, g.shape[1] - 1)
        left = np.hypot(tr[:, None] - end_r, tc[:, None] - end_c)
        left = left + 1e-6 * np.arange(angles.size)[None, :]  # ties: prefer the straighter
        best = np.argmin(left, axis=1)
        better = left[np.arange(live.size), best] < dist - 1e-9
        rows = np.arange(live.size)
        t.row[live[better]] = end_r[rows, best][better]
        t.col[live[better]] = end_c[rows, best][better]

    def _strategic_moves(self) -> np.ndarray:
        """Redeployment by road through held ground: a unit on its faction's ground whose
        objective is beyond a week's tactical move jumps to the cell of the same connected
        piece of ground that is nearest its objective, if that is within ``road_factor`` times
        its speed.  Returns which units moved this way (they do not move again this week)."""
        t = self.units
        moved = np.zeros(len(t), bool)
        k = self.cfg.control.road_factor
        if k <= 0:
            return moved
        R, C = self.geo.shape
        r, c = t.cells()
        struct = np.ones((3, 3), bool)
        for f in range(self.n_f):
            sel = t.of_faction(f)
            if sel.size == 0:
                continue
            speed = self.unit_speed_cells[f]
            far = np.hypot(t.target[sel, 0] - t.row[sel], t.target[sel, 1] - t.col[sel]) > speed
            own = self.owner == f
            on_own = own[np.clip(r[sel], 0, R - 1), np.clip(c[sel], 0, C - 1)]
            sel = sel[far & on_own]
            if sel.size == 0:
                continue
            labels, _ = ndimage.label(own, structure=struct)
            # the own cell nearest an objective off its ground is on the edge of that ground
            cells = np.flatnonzero(own & dilate8(~own))
            cr, cc = np.divmod(cells, C)
            lab = labels.ravel()[cells]
            road = k * speed
            for u in sel:
                mine = lab == labels[r[u], c[u]]
                du = np.hypot(cr - t.row[u], cc - t.col[u])
                ok = mine & (du <= road)
                if not ok.any():
                    continue
                dt_ = np.where(ok, np.hypot(cr - t.target[u, 0], cc - t.target[u, 1]), np.inf)
                j = int(np.argmin(dt_))
                now = np.hypot(t.target[u, 0] - t.row[u], t.target[u, 1] - t.col[u])
                if dt_[j] < now - speed:
                    t.row[u], t.col[u] = float(cr[j]), float(cc[j])
                    moved[u] = True
        return moved

    # 4 --------------------------------------------------------------------------------
    def _phase_project(self) -> None:
        shape = self.geo.shape
        self.p_garrison = garrison_presence(self.garrison)
        t = self.units
        live = np.flatnonzero(t.alive)
        r, c = t.cells()
        f = t.faction[live].astype(np.int64)
        pu = stamp_windows(shape, r[live], c[live], t.fighters[live], self.unit_window[f], f,
                           self.cfg.combat.unit_centre_share)
        self.p_units = np.zeros((self.n_f, *shape), np.float32)
        self.p_units[: pu.shape[0]] = pu[: self.n_f]
        self.presence = self.p_garrison + self.p_units

    # 5 --------------------------------------------------------------------------------
    def _phase_combat(self) -> None:
        cfg = self.cfg.combat
        p = self.presence
        thr = cfg.contact_threshold * self.area_factor
        eng = self.engaged
        enemy = mix(eng, p)
        contact = ((p > thr) & (enemy > thr)).any(axis=0)
        idx = np.flatnonzero(contact)
        self.fighting = np.zeros(self.geo.shape, bool)
        self.violence = np.zeros(self.geo.shape, np.float32)
        self.new_civ_deaths_cell = np.zeros(self.geo.shape, np.float32)
        self.losses = np.zeros((self.n_f, *self.geo.shape), np.float32)
        self.battles = np.zeros((self.n_f, self.n_f))
        self._combat_idx = idx
        if idx.size == 0:
            return
        # frontage: only so many fighters per km2 can fight in a cell (Lanchester's square law
        # would otherwise reward piling up without limit)
        force = np.minimum(p.reshape(self.n_f, -1)[:, idx], self.frontage[idx]).astype(np.float64)
        insurgent = self._in_insurgent_mode()
        exp_air = combat.expected_losses(force, eng, self.firepower, self.air, insurgent,
                                         cfg.guerrilla_area_factor)
        exp_ground = combat.expected_losses(force, eng, self.firepower, np.ones_like(self.air),
                                            insurgent, cfg.guerrilla_area_factor)
        # fronts are quiet unless a unit is there: full intensity only where an engaged side
        # has manoeuvre units present; the holder of a cell loses less in towns (defence)
        near_unit = self._unit_cells_dilated().reshape(self.n_f, -1)[:, idx]
        active = (near_unit & (force > thr) & (mix(eng, force) > thr)).any(axis=0)
        scale = np.where(active, 1.0, cfg.static_front_intensity)
        owner = self.owner.ravel()[idx]
        own_rows = (np.arange(self.n_f)[:, None] == owner[None, :])
        defence = np.where(own_rows, self.shield[idx][None, :], 1.0)
        exp_air = exp_air * scale / defence
        exp_ground = exp_ground * scale / defence
        loss = combat.draw_losses(exp_air, force, self.streams["combat"], cfg.loss_noise,
                                  cfg.max_loss_fraction)
        self.battles = combat.dyad_battles(loss, force, eng)
        tot_exp = exp_air.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            air_share = np.where(tot_exp > 0, 1.0 - exp_ground.sum(axis=0) / tot_exp, 0.0)
        cell_loss = loss.sum(axis=0)
        L = self.losses.reshape(self.n_f, -1)
        L[:, idx] = loss
        self.fighting.ravel()[idx] = cell_loss > 0.5
        self.violence.ravel()[idx] = cell_loss
        d = self.damage.ravel()
        d[idx] = combat.housing_damage(d[idx], cell_loss, air_share, cfg.ground_housing_damage,
                                       cfg.air_housing_damage)
        present = self._people_present().ravel()[idx]
        deaths = combat.civilian_deaths(present, cell_loss, air_share, cfg.civilian_harm)
        self.new_civ_deaths_cell.ravel()[idx] = deaths
        self._apply_losses()

    def _unit_cells_dilated(self) -> np.ndarray:
        """``[F, R, C]``: cells within one cell of a live unit of each faction (where it
        assaults; elsewhere its fire only supports the holding garrisons)."""
        t = self.units
        m = np.zeros((self.n_f, *self.geo.shape), bool)
        live = np.flatnonzero(t.alive)
        r, c = t.cells()
        m[t.faction[live], r[live], c[live]] = True
        return dilate8(m)

    def _apply_losses(self) -> None:
        """Take each faction's cell losses from the garrisons and units whose presence put it
        there: each source loses in proportion to what it projected into the cell (the
        projection kernels are symmetric, so applying them to loss rates conserves fighters
        exactly)."""
        idx = self._combat_idx
        n = self.n_f
        L = self.losses.reshape(n, -1)[:, idx]
        pg = self.p_garrison.reshape(n, -1)[:, idx]
        pu = self.p_units.reshape(n, -1)[:, idx]
        lg = combat.apportion(L, pg, pg + pu)
        lu = L - lg
        with np.errstate(divide="ignore", invalid="ignore"):
            rg = np.where(pg > 0, lg / pg, 0.0)
            ru = np.where(pu > 0, lu / pu, 0.0)
        rate_g = np.zeros((n, self.geo.grid.n_cells), np.float32)
        rate_g[:, idx] = rg
        rate_u = np.zeros((n, self.geo.grid.n_cells), np.float32)
        rate_u[:, idx] = ru
        shape = (n, *self.geo.shape)
        g_lost = np.zeros(n)
        hit = np.flatnonzero(rg.any(axis=1))  # only factions that lost garrison fighters
        if hit.size:
            # loss rates are zero outside the combat cells: work in their bounding box plus the
            # one-cell reach of a garrison's presence
            R, C = self.geo.shape
            rows, cols = np.divmod(idx, C)
            sl = (slice(max(rows.min() - 1, 0), min(rows.max() + 2, R)),
                  slice(max(cols.min() - 1, 0), min(cols.max() + 2, C)))
            for f in hit:
                g = self.garrison[f][sl]  # a view: edits write through
                # a garrison is felt in its neighbours' cells too, so with loss rates near 1
                # (combat.max_loss_fraction = 1) the kernel could take up to 1.25 times what
                # it holds: never more than all of it (a negative garrison = fighters from
                # nothing)
                loss = g * np.minimum(garrison_presence(rate_g.reshape(shape)[f][sl]), np.float32(1.0))
                g -= loss
                g_lost[f] = float(loss.sum(dtype=np.float64))
        t = self.units
        u_loss = np.zeros(len(t))
        live = np.flatnonzero(t.alive)
        if live.size:
            r, c = t.cells()
            f = t.faction[live].astype(np.int64)
            u_loss[live] = t.fighters[live] * window_means(rate_u.reshape(shape), r[live], c[live],
                                                           self.unit_window[f], f,
                                                           self.cfg.combat.unit_centre_share)
            t.fighters -= u_loss
        per_f = g_lost + np.bincount(
            t.faction, weights=u_loss, minlength=self.n_f)[: self.n_f]
        for i, f in enumerate(self.faction_names):
            self.fighter_ledger[f]["killed"] += float(per_f[i])
            self._flow[("new_fighter_losses", f)] += float(per_f[i])
        if self.isis >= 0:
            self._foreign_killed(float(per_f[self.isis]))

    def _in_insurgent_mode(self) -> np.ndarray:
        """Which factions fight as guerrillas: ``insurgent`` doctrine always, ``hybrid`` once it
        holds less than a quarter of its initial ground."""
        doctrine = [self.cfg.factions[f].doctrine for f in self.faction_names]
        out = np.array([d == "insurgent" for d in doctrine])
        cells = np.bincount(self.owner[self.owner >= 0].ravel(), minlength=self.n_f)
        hybrid = np.array([d == "hybrid" for d in doctrine]) & (self.initial_cells > 0)
        out |= hybrid & (cells < 0.25 * np.maximum(self.initial_cells, 1))
        return out

    # 6 --------------------------------------------------------------------------------
    def _hold_levels(self) -> np.ndarray:
        """Presence each faction needs per cell to hold ground ``[F]`` (times the cell's
        ``hold_scale``).  A faction fighting as an insurgency no longer tries to hold open
        ground: its need rises by ``insurgency.insurgent_hold_factor``, so thinly held cells
        fall vacant and their fighters go to ground."""
        hm = self.hold_min.copy()
        mode = self._in_insurgent_mode()
        hm[mode] *= self.cfg.insurgency.insurgent_hold_factor
        return hm

    def _phase_control(self) -> None:
        cc = self.cfg.control
        hold_min = self._hold_levels()
        self.prev_owner = self.owner.copy()
        n = self.n_f
        post = self.presence
        if self._combat_idx.size:
            post = post.copy()
            pf = post.reshape(n, -1)
            pf[:, self._combat_idx] = np.maximum(
                pf[:, self._combat_idx] - self.losses.reshape(n, -1)[:, self._combat_idx], 0.0)
        # only cells where control can change: the holder is below its hold level, someone
        # else is present, or nobody holds it
        owner = self.owner.ravel()
        held = owner >= 0
        pflat = post.reshape(n, -1)
        own_p = pflat[np.where(held, owner, 0), np.arange(owner.size)]
        total = pflat.sum(axis=0)
        active = (owner != OUTSIDE) & (
            (held & ((own_p < hold_min[np.where(held, owner, 0)] * self.hold_scale)
                     | (total - own_p > 0)))
            | (owner == UNGOVERNED) & (total > 0))
        idx = np.flatnonzero(active)
        # weeks each held cell has been below its holder's hold level (vacancy_weeks)
        below = np.zeros(owner.size, bool)
        below[idx] = held[idx] & (own_p[idx] < hold_min[np.where(held[idx], owner[idx], 0)]
                                  * self.hold_scale[idx])
        self.below_weeks = np.where(below, self.below_weeks + 1, 0).astype(np.int16)
        if idx.size:
            sub = np.minimum(pflat[:, idx], self.frontage[idx])
            jitter = self.streams["jitter"].random(sub.shape, dtype=np.float32) * 1e-3
            new = update_control(owner[idx], sub, self.engaged, self.allowed.reshape(n, -1)[:, idx],
                                 cc.capture_ratio, hold_min[:, None] * self.hold_scale[idx][None],
                                 jitter, self.defence[idx],
                                 may_vacate=self.below_weeks[idx] >= cc.vacancy_weeks)
            old = owner[idx].copy()
            self.owner.ravel()[idx] = new
            self._garrison_captured(idx, old, new)
        level_p = np.concatenate([post, self.hidden[None]], axis=0)
        self.level = control_levels(self.owner, level_p, self.fighting, cc.full_share, cc.dominant_share)

    def _garrison_captured(self, idx: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Units that take a cell leave a holding force there: ``seed_garrison_share`` of their
        presence in the cell (at most three times what holding it needs) becomes garrison,
        taken from the units through the same kernel that projected them (conserving)."""
        share = self.cfg.control.seed_garrison_share
        took = (new >= 0) & (new != old)
        if share <= 0 or not took.any():
            return
        n, cells = self.n_f, self.geo.grid.n_cells
        cap_idx, f = idx[took], new[took].astype(np.int64)
        pu = self.p_units.reshape(n, -1)[f, cap_idx]
        need = self.hold_min[f] * self.hold_scale[cap_idx]
        amount = np.minimum(share * pu, 3.0 * need)
        ok = amount > 0
        if not ok.any():
            return
        rate = np.zeros((n, cells), np.float32)
        rate[f[ok], cap_idx[ok]] = amount[ok] / pu[ok]
        t = self.units
        live = np.flatnonzero(t.alive)
        r, c = t.cells()
        uf = t.faction[live].astype(np.int64)
        take = t.fighters[live] * window_means(rate.reshape(n, *self.geo.shape), r[live], c[live],
                                               self.unit_window[uf], uf,
                                               self.cfg.combat.unit_centre_share)
        t.fighters[live] -= take
        given = np.bincount(uf, weights=take, minlength=n)
        placed = np.bincount(f[ok], weights=amount[ok], minlength=n)
        g = self.garrison.reshape(n, -1)
        np.add.at(g, (f[ok], cap_idx[ok]), amount[ok].astype(np.float32))
        # float rounding between the two sums goes to the faction's garrison as a whole
        for i in np.flatnonzero(np.abs(given - placed) > 0):
            tot = float(self.garrison[i].sum())
            if tot > 0:
                self.garrison[i] *= (tot + given[i] - placed[i]) / tot

    # 7 --------------------------------------------------------------------------------
    def _phase_redeploy(self) -> None:
        """Fighters on cells their faction no longer holds retreat into its ground within three
        cells (losing ``retreat_loss_fraction``) or, for ISIS, partly go to ground; those with no
        friendly ground in reach are lost (ISIS: half go to ground).  Then each faction's
        garrisons shift half-way toward a local target: within a window of
        ``garrison_move_km`` each cell gets its share of the nearby fighters in proportion to its
        station weight (``station_w``: the base weights plus the opening deployment; front
        cells count double), rescaled so every connected piece of ground keeps its fighters."""
        cfg = self.cfg
        R, C = self.geo.shape
        # work inside each faction's bounding box (before and after this step's changes)
        now = ndimage.find_objects(np.where(self.owner >= 0, self.owner + 1, 0), max_label=self.n_f)
        before = ndimage.find_objects(np.where(self.prev_owner >= 0, self.prev_owner + 1, 0),
                                      max_label=self.n_f)
        held = self.owner >= 0
        hostile_all = self.hostility > 0
        struct = np.ones((3, 3), bool)
        for i, f in enumerate(self.faction_names):
            boxes = [b for b in (now[i], before[i]) if b is not None]
            if not boxes:
                continue
            m = 4  # margin: retreat reach (3 cells) + 1 for neighbourhoods
            r0 = max(min(b[0].start for b in boxes) - m, 0)
            r1 = min(max(b[0].stop for b in boxes) + m, R)
            c0 = max(min(b[1].start for b in boxes) - m, 0)
            c1 = min(max(b[1].stop for b in boxes) + m, C)
            sl = (slice(r0, r1), slice(c0, c1))
            gi = self.garrison[i][sl]  # a view: edits write through
            own = self.owner[sl] == i
            lost = (gi > 0) & ~own
            if lost.any():
                gar = np.where(lost, gi, 0.0)
                gi[lost] = 0.0
                if i == self.isis:
                    hid, gar = insurgency.go_underground(gar, cfg.insurgency.go_underground_share)
                    self.hidden[sl] += hid.astype(np.float32)
                dead = gar * cfg.combat.retreat_loss_fraction
                gar = gar - dead
                # only fighters with friendly ground within reach (3 cells) can retreat; each
                # cell's survivors spread over the own cells around it
                reach = box_mean(own[None].astype(np.float32), 7)[0] > 0
                trapped = np.where(reach, 0.0, gar)
                gar = gar - trapped
                if gar.any():
                    # spreading is the adjoint of the local mean, normalised by the own share of
                    # each lost cell's window, so every cell's survivors land exactly
                    share = box_mean(own[None].astype(np.float32), 7)[0]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        density = np.where(share > 0, gar / share, 0.0)
                    gi += (box_mean(density[None].astype(np.float32), 7)[0] * own).astype(np.float32)
                dead = dead + trapped  # a pocket wiped out: no friendly ground to retreat to
                if i == self.isis:
                    self.hidden[sl] += (trapped * 0.5).astype(np.float32)
                    dead = dead - trapped * 0.5
                killed = float(dead.sum())
                self.fighter_ledger[f]["killed"] += killed
                self._flow[("new_fighter_losses", f)] += killed
                if i == self.isis:
                    self._foreign_killed(killed)
            if not own.any():
                continue
            # spread garrisons over each connected piece of territory (fighters stay in their
            # pocket); cells next to an enemy get extra weight
            osl = self.owner[sl]
            enemy = held[sl] & hostile_all[i][np.where(osl >= 0, osl, 0)]
            w = self.station_w[i][sl] * (1.0 + dilate8(enemy)) * own  # front cells: double weight
            # local moves only (a week's march, ``garrison_move_km``): each cell's target is its
            # weight times the local fighters-per-weight; then each connected piece is rescaled
            # to keep its own fighters (pockets are not resupplied from afar)
            local = box_mean(np.stack([gi * own, w]), self.move_window)
            with np.errstate(divide="ignore", invalid="ignore"):
                target = np.where(local[1] > 0, w * local[0] / local[1], 0.0)
            labels, n = ndimage.label(own, structure=struct)
            lab = labels.ravel()
            comp_g = np.bincount(lab, weights=gi.ravel(), minlength=n + 1)
            if n > 1 and cfg.control.evacuation_rate > 0:
                comp_g = self._evacuate_pockets(i, sl, own, labels, n, comp_g, target)
            comp_t = np.bincount(lab, weights=target.ravel(), minlength=n + 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(comp_t > 0, comp_g / comp_t, 0.0)
            scale[0] = 0.0
            # garrisons sit on own cells only (lost cells were emptied above)
            gi *= 0.5
            gi += 0.5 * (target * scale[labels]).astype(np.float32)
        self._reinforce_units()

    def _evacuate_pockets(self, i: int, sl, own, labels, n: int, comp_g: np.ndarray,
                          target: np.ndarray) -> np.ndarray:
        """Besieged pockets negotiate their way out (the Syrian "reconciliation" and evacuation
        deals of 2016-18: Aleppo, Homs, Eastern Ghouta, Daraa; ISIS out of Raqqa and Yarmouk).
        A pocket is a piece of the faction's ground other than its largest (by area), whose every
        neighbour is held by a faction at war with it (no ungoverned or friendly ground to
        reach).  Each week ``evacuation_rate`` of its garrison moves to the largest piece, in
        proportion to that piece's station weights.  Returns the pieces' new totals."""
        rate = self.cfg.control.evacuation_rate
        osl = self.owner[sl]
        held = osl >= 0
        war = self.hostility[i] >= self.cfg.control.offensive_hostility
        at_war = held & war[np.where(held, osl, 0)]
        open_ground = (osl == UNGOVERNED) | (held & ~war[np.where(held, osl, 0)] & ~own)
        lab = labels.ravel()
        near_open, near_war = dilate8(np.stack([open_ground, at_war])) & own
        touches_open = np.bincount(lab, weights=near_open.ravel(), minlength=n + 1) > 0
        touches_war = np.bincount(lab, weights=near_war.ravel(), minlength=n + 1) > 0
        main = int(np.argmax(np.bincount(lab, minlength=n + 1)[1:])) + 1  # the largest by area
        besieged = touches_war & ~touches_open
        besieged[0] = False
        besieged[main] = False
        if not besieged.any():
            return comp_g
        gi = self.garrison[i][sl]
        leave = np.where(besieged, rate, 0.0)[labels]
        out = gi * leave
        moved = float(out.sum())
        gi -= out.astype(np.float32)
        dest = np.where(labels == main, target, 0.0)
        if dest.sum() > 0:
            gi += (dest * (moved / dest.sum())).astype(np.float32)
        self._flow[("new_fighters_evacuated", self.faction_names[i])] += moved
        return np.bincount(lab, weights=gi.ravel(), minlength=n + 1)

    def _reinforce_units(self) -> None:
        """Units below strength draw replacements from their faction's garrisons (up to 10% of
        establishment a week, while garrisons stay at least twice the draw); units worn below
        15% of establishment disband into the garrisons."""
        t = self.units
        for i, f in enumerate(self.faction_names):
            sel = t.of_faction(i)
            if sel.size == 0:
                continue
            size = self.cfg.factions[f].unit_size
            gtot = float(self.garrison[i].sum())
            weak = sel[t.fighters[sel] < 0.15 * size]
            if weak.size:
                back = float(t.fighters[weak].sum())
                t.fighters[weak] = 0.0
                t.alive[weak] = False
                if gtot > 0:
                    self.garrison[i] *= (gtot + back) / gtot
                    gtot += back
                else:
                    self.fighter_ledger[f]["killed"] += back
                    self._flow[("new_fighter_losses", f)] += back
            sel = t.of_faction(i)
            deficit = np.clip(size - t.fighters[sel], 0, 0.1 * size)
            draw = float(deficit.sum())
            if draw > 0 and gtot > 3 * draw:
                t.fighters[sel] += deficit
                self.garrison[i] *= (gtot - draw) / gtot

    # 8 --------------------------------------------------------------------------------
    def _phase_insurgency(self) -> None:
        if self.isis < 0:
            return
        ic = self.cfg.insurgency
        rng = self.streams["insurgency"]
        others = (self.owner >= 0) & (self.owner != self.isis)
        n_att = insurgency.attacks(self.hidden, others, ic.attack_rate, rng)
        deaths = n_att * ic.attack_lethality
        self._flow[("new_insurgent_attacks", "ALL")] += float(n_att.sum())
        # half of attack deaths are civilians, half the holder's fighters
        self.new_civ_deaths_cell = self.new_civ_deaths_cell + 0.5 * deaths
        self.violence = self.violence + deaths.astype(np.float32)
        fl = (0.5 * deaths).astype(np.float32)
        if fl.any():
            for i, f in enumerate(self.faction_names):
                m = self.owner == i
                if i == self.isis or not m.any():
                    continue
                take = np.minimum(fl * m, self.garrison[i])
                k = float(take.sum())
                if k:
                    self.garrison[i] -= take
                    self.fighter_ledger[f]["killed"] += k
                    self._flow[("new_fighter_losses", f)] += k
        # counter-insurgency by hostile garrisons
        hostile_p = mix((self.hostility[self.isis] > 0)[None], self.presence)[0]
        caught = insurgency.detection_losses(self.hidden, hostile_p, ic.detection_rate)
        self.hidden -= caught.astype(np.float32)
        k = float(caught.sum())
        self.fighter_ledger[ISIS]["killed"] += k
        self._flow[("new_fighter_losses", ISIS)] += k
        self._foreign_killed(k)
        # resurfacing: hidden cells retake ground they dominate
        holder = np.take_along_axis(self.presence, np.where(self.owner >= 0, self.owner, 0)[None], 0)[0]
        holder = np.where(self.owner >= 0, holder, 0.0)
        need = (self.hold_min[self.isis] * self.hold_scale).reshape(self.geo.shape)
        up = insurgency.resurface(self.hidden, holder, self.cfg.control.capture_ratio, need) \
            & self.allowed[self.isis] & (self.owner != self.isis)
        if up.any():
            self.owner[up] = self.isis
            self.garrison[self.isis][up] += self.hidden[up]
            self.hidden[up] = 0.0
            self._flow[("new_cells_resurfaced", "ALL")] += float(up.sum())
        # foreign fighters leave the region
        isis_total = self._fighters(self.isis)
        lost_share = 0.0
        prev = (self.prev_owner == self.isis).sum()
        if prev:
            lost_share = max(0.0, 1.0 - (self.owner == self.isis).sum() / prev)
        rate = self.cfg.scenario.foreign_fighter_exit_rate
        out = insurgency.foreign_exit(self.foreign, rate, lost_share)
        if isis_total > 0 and out > 0:
            keep = 1.0 - out / isis_total
            self.garrison[self.isis] *= keep
            self.hidden *= keep
            sel = self.units.faction == self.isis
            self.units.fighters[sel] *= keep
            self.foreign -= out
            self.fighter_ledger[ISIS]["exported"] += out
            self._flow[("new_foreign_fighters_exported", "ALL")] += out

    def _foreign_killed(self, killed: float) -> None:
        tot = self._fighters(self.isis) + killed
        if tot > 0 and self.foreign > 0:
            self.foreign = max(0.0, self.foreign - killed * self.foreign / tot)

    # 9 --------------------------------------------------------------------------------
    def _phase_civilians(self) -> None:
        cm = self.communities
        dc, gc = self.cfg.displacement, self.cfg.grievance
        n_reg = len(self.region_names)
        flat = self.regmap.ravel()
        inside = flat >= 0
        fr = flat[inside]
        pop0 = self.pop_static.ravel()[inside]
        w = np.bincount(fr, weights=pop0, minlength=n_reg) + 1e-9
        home_cell, idp_cell = self._people_split()
        present = home_cell + idp_cell
        vio_cell = self._violence_index(self.violence.ravel(), present)
        vio_idx = vio_cell[inside]
        reg_vio = np.bincount(fr, weights=pop0 * vio_idx, minlength=n_reg) / w
        dmg = self.damage.ravel()[inside]
        reg_dmg = np.bincount(fr, weights=pop0 * dmg, minlength=n_reg) / w
        prev = getattr(self, "_reg_dmg_prev", np.zeros(n_reg))
        reg_ddmg = np.maximum(reg_dmg - prev, 0.0)
        self._reg_dmg_prev = reg_dmg
        owner_flat = self.owner.ravel()
        reg_owner = owner_flat[self.region_cell]
        ci, cr = cm.identity, cm.region
        own_c = reg_owner[cr]
        legit = np.where(own_c >= 0, self.legitimacy[np.maximum(own_c, 0), ci], 0.1)
        persecuted = (legit < 0.05).astype(float)
        violence_c = reg_vio[cr]
        flee = civ.flee_fraction(violence_c, reg_ddmg[cr], persecuted, dc.flee_rate_violence,
                                 dc.flee_rate_damage, dc.flee_rate_persecution)
        abroad_share = np.where(self.region_border_km[cr] <= dc.walk_km_week, dc.abroad_share, 0.0)
        safe = (violence_c < 0.02) & (legit >= 0.2) & (persecuted == 0)
        ret = civ.return_fraction(safe, reg_dmg[cr], dc.return_rate, dc.safe_damage)
        # deaths: split each cell's civilian deaths between home people and sheltering IDPs
        deaths_cell = self.new_civ_deaths_cell.ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            f_home = np.where(present > 0, np.minimum(deaths_cell / present, 1.0), 0.0)
        d_home_reg = np.bincount(fr, weights=(f_home * home_cell)[inside], minlength=n_reg)
        reg_home = np.bincount(cr, weights=cm.home, minlength=n_reg)
        with np.errstate(divide="ignore", invalid="ignore"):
            d_home = np.where(reg_home[cr] > 0, d_home_reg[cr] * cm.home / reg_home[cr], 0.0)
        d_idp = cm.idp * f_home[cm.idp_loc]
        # FLEE destinations: safety x legitimacy x capacity / distance
        dest_cells = self.region_cell[self.dest_region]
        dest_owner = owner_flat[dest_cells]
        d_vio = vio_cell[dest_cells]
        d_safe = (1.0 - d_vio) * (1.0 - self.damage.ravel()[dest_cells])
        d_leg = np.where(dest_owner[None, :] >= 0,
                         self.legitimacy[np.maximum(dest_owner, 0)][:, ci].T, 0.05)
        scores = civ.destination_scores(d_safe[None, :], d_leg, self.dest_capacity[None, :],
                                        self.dest_dist, dc.walk_km_week)
        best = np.argmax(scores, axis=1)
        has_dest = scores[np.arange(len(cm)), best] > 0
        new_loc = np.where(has_dest, dest_cells[best], cm.idp_loc)
        # no reachable safe place: they go abroad if a border is in reach, else stay put
        abroad_share = np.where(has_dest, abroad_share,
                                np.where(self.region_border_km[cr] <= 3 * dc.walk_km_week, 1.0, 0.0))
        flee = np.where(has_dest | (abroad_share > 0), flee, 0.0)
        (cm.home, cm.idp, cm.abroad, cm.dead), (left, to_ab, back, died) = civ.move_people(
            cm.home, cm.idp, cm.abroad, cm.dead, flee, abroad_share, ret, ret * 0.2, d_home, d_idp)
        # IDPs move on when their shelter is unsafe (FLEE), and new IDPs join them
        moving = (left > 0) | (vio_cell[cm.idp_loc] > 0.1)
        cm.idp_loc = np.where(moving, new_loc, cm.idp_loc)
        self._flow[("new_displaced", "ALL")] += float(left.sum())
        self._flow[("new_refugees_abroad", "ALL")] += float(to_ab.sum())
        self._flow[("new_returnees", "ALL")] += float(back.sum())
        self._flow[("new_civilian_deaths", "ALL")] += float(died.sum())
        # rebuilding where it is quiet
        quiet = self.violence < 0.5
        self.damage = np.where(quiet, self.damage * (1.0 - dc.rebuild_rate), self.damage)
        # grievance (Epstein) and recruitment
        displaced_share = 1.0 - cm.home / np.maximum(cm.pop0 - cm.dead, 1e-9)
        hard = civ.hardship(gc.base_hardship, reg_dmg[cr], displaced_share, violence_c,
                            gc.hardship_weight_damage, gc.hardship_weight_displacement,
                            gc.hardship_weight_violence)
        griev = civ.grievance(hard, legit)
        self.mean_grievance = float(np.average(griev, weights=np.maximum(cm.home, 1e-9)))
        for i, f in enumerate(self.faction_names):
            fc = self.cfg.factions[f]
            rate = fc.recruitment_rate * fc.resources  # money and arms to pay and equip recruits
            if rate <= 0 or self.withdrawn[i]:
                continue
            mine = own_c == i
            if not mine.any():
                continue
            support = self.legitimacy[i, ci[mine]] * (1.0 - griev[mine])
            rec = civ.recruits(cm.home[mine], support, rate)
            np.add.at(self.garrison[i].ravel(), self.region_cell[cr[mine]], rec.astype(np.float32))
            k = float(rec.sum())
            self.fighter_ledger[f]["recruited"] += k
            self._flow[("new_recruits", f)] += k
        if self.isis >= 0:
            # recruiting needs a network: only near hidden cells or ISIS ground (~25 km)
            seed = ((self.hidden >= 1.0) | (self.owner == self.isis)).astype(np.float32)
            reach = box_mean(seed, window_size(25.0, self.cell_km)).ravel()[self.region_cell] > 0
            sunni = (ci == IDENTITIES.index("sunni_arab")) & (own_c != self.isis) & (own_c >= 0) \
                & reach[cr]
            rec = civ.recruits(cm.home[sunni], griev[sunni], self.cfg.insurgency.recruitment_rate)
            np.add.at(self.hidden.ravel(), self.region_cell[cr[sunni]], rec.astype(np.float32))
            k = float(rec.sum())
            self.fighter_ledger[ISIS]["recruited"] += k
            self._flow[("new_recruits", ISIS)] += k

    def _violence_index(self, deaths: np.ndarray, people: np.ndarray) -> np.ndarray:
        """Violence felt by civilians in [0, 1) from a cell's weekly deaths (fighters and
        civilians) per 1,000 people there: ``max(0, 1 - exp(-d / scale) - threshold)``.
        Risk per head drives flight (a death in a village weighs more than in a city), and
        low-level front-line violence below the threshold does not drive people out."""
        dc = self.cfg.displacement
        per_k = deaths / np.maximum(people, 100.0) * 1000.0
        return np.maximum(1.0 - np.exp(-per_k / dc.violence_scale) - dc.violence_threshold, 0.0)

    def _people_split(self) -> tuple[np.ndarray, np.ndarray]:
        """(people at home, displaced people sheltering) per cell, flat arrays."""
        cm = self.communities
        n_reg = len(self.region_names)
        reg_home = np.bincount(cm.region, weights=cm.home, minlength=n_reg)
        frac = reg_home / np.maximum(self.region_pop0, 1e-9)
        flat = self.regmap.ravel()
        home = np.where(flat >= 0, self.pop_static.ravel() * frac[np.maximum(flat, 0)], 0.0)
        idp = np.bincount(cm.idp_loc, weights=cm.idp, minlength=flat.size)
        return home, idp

    def _people_present(self) -> np.ndarray:
        home, idp = self._people_split()
        return (home + idp).reshape(self.geo.shape)

    # 10 -------------------------------------------------------------------------------
    def _phase_record(self) -> None:
        self.steps_done += 1
        self._record()

    def _share_area(self, i: int) -> float:
        tot = self.area.sum()
        return float(self.area[self.owner == i].sum() / tot) if tot > 0 else 0.0

    def _fighters(self, i: int) -> float:
        t = self.units
        n = float(self.garrison[i].sum()) + float(t.fighters[(t.faction == i) & t.alive].sum())
        if i == self.isis:
            n += float(self.hidden.sum())
        return n

    def _record(self) -> None:
        s = self.steps_done
        rec = self.records.append
        area_tot = float(self.area.sum())
        present = self._people_present()
        pop_tot = float(present[self.geo.theatre].sum())
        owner = self.owner
        area_by = np.bincount(np.where(owner >= 0, owner, self.n_f).ravel(),
                              weights=self.area.ravel(), minlength=self.n_f + 1)
        pop_by = np.bincount(np.where(owner >= 0, owner, self.n_f).ravel(),
                             weights=present.ravel(), minlength=self.n_f + 1)
        cells_by = np.bincount(np.where(owner >= 0, owner, self.n_f).ravel(), minlength=self.n_f + 1)
        for i, f in enumerate(self.faction_names):
            rec((s, "share_territory_area", f, area_by[i] / area_tot if area_tot else 0.0))
            rec((s, "share_territory_pop", f, pop_by[i] / pop_tot if pop_tot else 0.0))
            rec((s, "n_cells", f, float(cells_by[i])))
            rec((s, "n_fighters", f, self._fighters(i)))
            rec((s, "new_fighter_losses", f, self._flow[("new_fighter_losses", f)]))
            rec((s, "new_recruits", f, self._flow[("new_recruits", f)]))
            rec((s, "new_fighters_evacuated", f, self._flow[("new_fighters_evacuated", f)]))
            rec((s, "cum_fighters_withdrawn", f, float(self.fighter_ledger[f]["withdrawn"])))
        theatre = owner != OUTSIDE
        ung = owner == UNGOVERNED
        rec((s, "share_territory_area", "UNGOVERNED", float(self.area[ung].sum() / area_tot)))
        rec((s, "share_territory_pop", "UNGOVERNED", float(present[ung].sum() / pop_tot) if pop_tot else 0.0))
        rec((s, "n_ungoverned_cells", "ALL", float(ung.sum())))
        rec((s, "share_contested", "ALL", float((self.level == 3)[theatre].mean())))
        rec((s, "n_fighters_hidden", ISIS, float(self.hidden.sum())))
        rec((s, "n_foreign_fighters", ISIS, float(self.foreign)))
        cm = self.communities
        rec((s, "n_displaced", "ALL", float(cm.idp.sum())))
        rec((s, "n_abroad", "ALL", float(cm.abroad.sum())))
        rec((s, "n_at_home", "ALL", float(cm.home.sum())))
        rec((s, "n_civilian_dead", "ALL", float(cm.dead.sum())))
        for m in ("new_displaced", "new_refugees_abroad", "new_returnees", "new_civilian_deaths",
                  "new_insurgent_attacks", "new_foreign_fighters_exported", "new_cells_resurfaced"):
            v = self._flow[(m, "ALL")]
            self.counters[m] += v
            rec((s, m, "ALL", v))
            rec((s, "cum_" + m[4:], "ALL", self.counters[m]))
        b = getattr(self, "battles", np.zeros((self.n_f, self.n_f)))
        upper = np.triu(b, 1)
        total = float(upper.sum())
        vs_isis = float(b[self.isis].sum()) if self.isis >= 0 else 0.0
        allies = float((upper * np.triu(self.former_allies, 1)).sum())
        for m, v in (("new_battles", total), ("new_battles_vs_isis", vs_isis),
                     ("new_battles_former_allies", allies)):
            self.counters[m] += v
            rec((s, m, "ALL", v))
            rec((s, "cum_" + m[4:], "ALL", self.counters[m]))
        for i in range(self.n_f):
            for j in range(i + 1, self.n_f):
                if self.hostility0[i, j] > 0 or self.hostility[i, j] > 0:
                    a, c = sorted((self.faction_names[i], self.faction_names[j]))
                    rec((s, "new_battles", f"{a}|{c}", float(b[i, j])))
        rec((s, "share_grievance", "ALL", float(getattr(self, "mean_grievance", 0.0))))

    # ------------------------------------------------------------------ invariants
    def people_total(self) -> float:
        cm = self.communities
        return float(cm.total().sum())

    def fighter_balance(self, f: str) -> float:
        """initial + recruited - killed - exported - withdrawn - current (0 if conserved)."""
        i = self.fidx[f]
        led = self.fighter_ledger[f]
        return (self.strength0[i] + led["recruited"] - led["killed"] - led["exported"]
                - led["withdrawn"] - self._fighters(i))

    def dates(self) -> list[np.datetime64]:
        return [np.datetime64(self.start + dt.timedelta(days=self.step_days * k), "D")
                for k in range(self.steps_done + 1)]
