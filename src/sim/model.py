"""``ConflictModel``: the Syria–Iraq theatre from 1 July 2017, one step = one week.

The model holds the schedule (the named phases of :meth:`ConflictModel.step`), the shared
landscape (numpy arrays over the grid: ``owner[r, c]``, ``garrison[f, r, c]``,
``hidden[r, c]``, ``damage[r, c]`` ...) and the wiring.  Each phase gathers arrays, calls the
mechanism's kernels in :mod:`sim.rules` and writes back; every fighter that enters or leaves
goes through :class:`~sim.rules.ledger.FighterLedger`.  The model never imports plotting,
the UI or Hydra.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict

import mesa
import numpy as np

from . import aftermath, initial, observe
from .agents import Community, FactionHQ, Unit, UnitTable
from .config import IDENTITIES, Config
from .geography import Geography
from .initial_control import build_initial_control
from .rules import civilians as civ
from .rules import combat, events, insurgency, movement, recruitment, redeploy
from .rules.control import UNGOVERNED, control_candidates, control_levels, race_gate, update_control
from .rules.ledger import FighterLedger
from .rules.presence import garrison_presence, garrison_presence_boxed, unit_cells_dilated, unit_presence
from .rules.spatial import faction_boxes, window_means

ISIS = "ISIS"
PHASES = ("events", "plan", "move", "project", "combat", "control", "redeploy", "insurgency",
          "civilians", "record")
STREAMS = ("init", "engage", "combat", "insurgency", "civilians", "jitter")


class ConflictModel(mesa.Model):
    """The power-vacuum model: build with a validated :class:`~sim.config.Config` and a
    :class:`~sim.geography.Geography`; :meth:`step` is one week (Mesa counts ``steps``)."""

    def __init__(self, cfg: Config, geo: Geography):
        seq = np.random.SeedSequence([int(cfg.seed), int(cfg.replicate)])
        children = seq.spawn(len(STREAMS) + 1)
        super().__init__(rng=np.random.default_rng(children[0]))
        # one independent stream per mechanism: paired scenarios (same seed) share the random
        # numbers of every mechanism they have in common (common random numbers)
        self.streams = {n: np.random.default_rng(s) for n, s in zip(STREAMS, children[1:])}
        self.cfg, self.geo = cfg, geo
        self.faction_names, self.n_f = list(cfg.factions), len(cfg.factions)
        self.fidx = {n: i for i, n in enumerate(self.faction_names)}
        self.isis = self.fidx.get(ISIS, -1)
        self.start = self.date = events.date_of(cfg.scenario.start_date)
        self.step_days = cfg.scenario.step_days
        self.phase_seconds: dict[str, float] = defaultdict(float)
        self.area = np.where(geo.theatre, geo.grid.cell_area_km2, 0.0)  # float64: shares sum to 1
        self.cell_km = geo.grid.cell_km
        for name, value in initial.faction_parameters(cfg, geo, self.faction_names, self.isis).items():
            setattr(self, name, value)
        self.withdrawn = np.zeros(self.n_f, bool)
        self._line_sides = events.LineSides(geo)  # the lines' geometry, computed once
        self.build_allowed()
        self.owner, self.open_desert = build_initial_control(geo, self.faction_names, self.allowed)
        self._init_civilians()
        self._init_forces()
        shape = geo.shape
        # ISIS covert members, housing destroyed, violence (fighters lost + attack deaths this
        # step) and civilian deaths per cell
        self.hidden, self.damage, self.violence, self.new_civ_deaths_cell = (
            np.zeros(shape, np.float32) for _ in range(4))
        self.fighting, self.level = np.zeros(shape, bool), np.zeros(shape, np.int8)
        self.losses = np.zeros((self.n_f, *shape), np.float32)
        self.battles, self.mean_grievance = np.zeros((self.n_f, self.n_f)), 0.0
        self.initial_cells = np.bincount(self.owner[self.owner >= 0].ravel(), minlength=self.n_f)
        self.ledger = FighterLedger(self.faction_names, self.isis, initial.foreign_fighters(cfg, ISIS),
                                    self.fighters)
        self.flow = self.ledger.flow
        self.records: list[tuple[int, str, str, float]] = []
        self._fired: set = set()
        self.air, self.engaged = np.ones((self.n_f, self.n_f)), self.hostility > 0  # set each week
        self.prev_owner = self.owner.copy()  # control before this week's changes
        self._combat_idx, self.below_weeks = np.zeros(0, np.int64), np.zeros(geo.grid.n_cells, np.int16)
        aftermath.setup(self)
        self.build_allowed()
        self._phase_project()
        observe.record(self)

    # ------------------------------------------------------------------ initialisation
    def build_allowed(self) -> None:
        """Where each faction may hold ground now (:func:`sim.rules.events.allowed_ground`)."""
        countries = [self.cfg.factions[f].countries for f in self.faction_names]
        self.allowed = events.allowed_ground(countries, self.withdrawn, self.cfg.scenario.deconfliction,
                                             self.fidx, self.date, self.geo, self._line_sides)
        if hasattr(self, "core_closed"):
            aftermath.limit_allowed(self)

    def _init_civilians(self) -> None:
        """Communities = settlement area (Voronoi of places) x identity group, a Community each."""
        regions = initial.settlement_regions(self.geo)
        table = initial.communities(self.geo, regions, self.cfg.identity_shares)
        self.initial_stock = initial.initial_stock(  # July 2017; ISIS's towns host last
            self.cfg, self.geo, regions, table, (self.owner == self.isis) & (self.isis >= 0))
        dest = initial.destinations(self.geo, regions, table.region)
        # people in regions too small for any community (< 1 person per group) are not modelled
        self.population = civ.Population(regions, table, dest, self.geo.population.astype(np.float64))
        self.communities = table
        self.initial_people = float(table.pop0.sum())
        for i in range(len(table)):
            Community(self, i)

    def _init_forces(self) -> None:
        """Garrisons, mobile units (:func:`sim.initial.deploy_forces`) and their Mesa agents:
        one :class:`~sim.agents.FactionHQ` per faction and one :class:`~sim.agents.Unit`
        handle per unit."""
        self.garrison, self.station_w, self.main_ground, *table = initial.deploy_forces(
            self.cfg, self.geo, self.faction_names, self.owner, self.strength0, self.hostility,
            self.value, self.unit_window, self.streams["init"], self.allowed)
        self.units = UnitTable(*table)
        for i, f in enumerate(self.faction_names):
            FactionHQ(self, i, f)
        self.unit_agents = [Unit(self, k) for k in range(len(self.units))]

    # ------------------------------------------------------------------ the step
    def step(self) -> None:
        """Advance one week.  Phases, in order:

        1. ``events``     policy events (offensives and their staging, reinforcements,
                          withdrawals), responsive hostility, deconfliction end
        2. ``plan``       each :class:`FactionHQ` picks reachable objectives (GeoSim rule)
        3. ``move``       units move toward objectives over the movement-cost grid
        4. ``project``    presence fields from garrisons and units
        5. ``combat``     stochastic Lanchester attrition in contested cells; damage, civilian deaths
        6. ``control``    withdrawal, vacancy, race, sector assault; Kalyvas levels
        7. ``redeploy``   sieges and deals; lost cells' garrisons retreat or go underground
        8. ``insurgency`` hidden ISIS cells attack, are hunted, resurface; foreign fighters leave
        9. ``civilians``  grievance, displacement, return, recruitment
        10. ``record``    metrics of the step
        """
        self.ledger.new_step()
        self.flow = self.ledger.flow
        self.date = self.start + dt.timedelta(days=self.step_days * self.steps)
        for name in PHASES:
            t0 = time.perf_counter()
            getattr(self, f"_phase_{name}")()
            self.phase_seconds[name] += time.perf_counter() - t0

    @property
    def steps_done(self) -> int:
        """Steps run so far (Mesa's ``steps``; kept for the app and older scripts)."""
        return self.steps

    # 1 --------------------------------------------------------------------------------
    def _phase_events(self) -> None:
        """Fire due events (hostility changes, withdrawals), end expired deconfliction lines,
        set this week's air support and draw who fights whom (``engage`` stream)."""
        s = self.cfg.scenario
        isis_share = self.share_area(self.isis) if self.isis >= 0 else 0.0
        due = events.due_events(s.events, self._fired, self.date, isis_share)
        aftermath.hostility_week(self, due)  # dated policy (if switched on) + responsive law
        aftermath.cede(self, due)  # deals that hand over ground
        aftermath.reinforce(self, due)
        aftermath.stage_offensives(self, due)  # offensives about to launch: their forces mass
        for name in due:
            self._fired.add(name)
            for f in s.events[name].withdraw:
                self._withdraw(self.fidx[f])
        ended = [d.line for d in s.deconfliction.values() if d.until and self.date >= events.date_of(d.until)
                 and ("deconf", d.line) not in self._fired]
        self._fired.update(("deconf", line) for line in ended)
        if aftermath.zones_changed(self) or due or ended:
            self.build_allowed()
        self.air = events.air_multiplier(s.air_support, self.fidx, self.n_f, self.date)
        self.engaged = events.draw_engagement(self.hostility, self.streams["engage"])

    def _withdraw(self, i: int) -> None:
        """A faction's ground forces leave the theatre (:func:`sim.rules.events.withdraw`)."""
        self._remove_units(np.flatnonzero((self.units.faction == i) & self.units.alive))
        self.ledger.withdrawn(i, events.withdraw(self.garrison, self.units, self.owner, i))
        self.withdrawn[i] = True

    def _remove_units(self, rows: np.ndarray) -> None:
        """Deregister the Mesa agents of dead units (their table rows stay, marked dead)."""
        for k in rows:
            if self.unit_agents[k] is not None:
                self.unit_agents[k].remove()
                self.unit_agents[k] = None

    # 2 --------------------------------------------------------------------------------
    def _phase_plan(self) -> None:
        """Every :class:`~sim.agents.FactionHQ` plans its units' objectives (Mesa AgentSet)."""
        self.agents_by_type[FactionHQ].do("plan", self.hostility > 0)

    # 3 --------------------------------------------------------------------------------
    def _phase_move(self) -> None:
        """Units whose objective is far go by road through own ground
        (:func:`~sim.rules.movement.road_moves`); the others take the best of seven headings
        (:func:`~sim.rules.movement.tactical_moves`)."""
        t = self.units
        r0, c0 = t.row.copy(), t.col.copy()
        moved = movement.strategic_moves(t.row, t.col, t.target, t.faction, t.alive, self.owner,
                                         self.unit_speed_cells, self.cfg.control.road_factor)
        live = np.flatnonzero(t.alive & ~moved)
        if live.size:
            t.row[live], t.col[live] = movement.tactical_moves(
                t.row[live], t.col[live], t.target[live, 0], t.target[live, 1], t.faction[live],
                self.unit_speed_cells[t.faction[live]], self.geo.movement_cost, self.owner,
                self.allowed, self.hostility, self.cfg.control.offensive_hostility)
        aftermath.path_moves(self, r0, c0)  # around concave obstacles
        aftermath.record_stuck(self, r0, c0)

    # 4 --------------------------------------------------------------------------------
    def _phase_project(self) -> None:
        """Presence fields ``[F, R, C]`` of garrisons and units (:mod:`sim.rules.presence`)."""
        self.p_garrison = garrison_presence_boxed(self.garrison)
        t = self.units
        live = np.flatnonzero(t.alive)
        r, c = t.cells()
        f = t.faction[live].astype(np.int64)
        self.p_units = unit_presence(self.geo.shape, self.n_f, r[live], c[live], t.fighters[live],
                                     self.unit_window[f], f, self.cfg.combat.unit_centre_share)
        self.presence = self.p_garrison + self.p_units

    # 5 --------------------------------------------------------------------------------
    def _phase_combat(self) -> None:
        """Stochastic Lanchester attrition in contact cells (:mod:`sim.rules.combat`): losses
        (``combat`` stream), battles, housing damage and civilian deaths; the losses are taken
        from the garrisons and units that were there."""
        cfg, n = self.cfg.combat, self.n_f
        p, eng = self.presence, self.engaged
        thr = cfg.contact_threshold * self.area_factor
        idx = combat.contact_cells(p, eng, thr)
        shape = self.geo.shape
        self.fighting, self.violence = np.zeros(shape, bool), np.zeros(shape, np.float32)
        self.new_civ_deaths_cell = np.zeros(shape, np.float32)
        self.losses = np.zeros((n, *shape), np.float32)
        self.battles = np.zeros((n, n))
        self._combat_idx = idx
        if idx.size == 0:
            return
        # frontage: only so many fighters per km2 can fight in a cell
        force = np.minimum(p.reshape(n, -1)[:, idx], self.frontage[idx]).astype(np.float64)
        t = self.units
        live = np.flatnonzero(t.alive)
        r, c = t.cells()
        near_unit = aftermath.manoeuvre(self, unit_cells_dilated(shape, n, r[live], c[live], t.faction[live]), idx)
        loss, air_share = combat.cell_losses(
            force, eng, self.firepower, self.air, self.insurgent_mode(), near_unit, thr,
            self.owner.ravel()[idx], aftermath.combat_shield(self, idx, force), cfg, self.streams["combat"],
            self.area_factor)
        self.battles = combat.dyad_battles(loss, force, eng, block=self.battle_block[idx])
        self.losses.reshape(n, -1)[:, idx] = loss
        fighting, lost, damage = combat.aftermath(loss, air_share, self.damage.ravel()[idx], cfg,
                                                  self.area_factor)
        self.fighting.ravel()[idx], self.violence.ravel()[idx], self.damage.ravel()[idx] = fighting, lost, damage
        aftermath.civilian_harm(self, idx, lost, air_share)  # per 0.05-degree cell on every grid
        # losses come off the garrisons and units that were there, in proportion to presence
        per_f = combat.apply_losses(self.garrison, self.units, self.losses, self.p_garrison, self.p_units,
                                    idx, self.unit_window, cfg.unit_centre_share, garrison_presence)
        for i in range(n):
            self.ledger.killed(i, float(per_f[i]))

    def insurgent_mode(self) -> np.ndarray:
        """Which factions fight as guerrillas now (:func:`sim.rules.insurgency.insurgent_mode`)."""
        cells = np.bincount((self.owner + 2).ravel(), minlength=self.n_f + 2)[2:]  # held only
        return insurgency.insurgent_mode([self.cfg.factions[f].doctrine for f in self.faction_names],
                                         cells, self.initial_cells)

    # 6 --------------------------------------------------------------------------------
    def _phase_control(self) -> None:
        """Vacancy, capture and the race for ungoverned cells on the cells where control can
        change (:func:`~sim.rules.control.update_control`, ``jitter`` stream); units that take
        a cell seed its garrison; then the Kalyvas control levels."""
        cc, n = self.cfg.control, self.n_f
        hold_min = self.hold_min.copy()  # an insurgency no longer tries to hold open ground
        hold_min[self.insurgent_mode()] *= self.cfg.insurgency.insurgent_hold_factor
        self.prev_owner = self.owner.copy()
        post = combat.after_losses(self.presence, self.losses, self._combat_idx)
        aftermath.withdraw_week(self, post)  # hopeless non-core ground is given up first
        owner, pflat = self.owner.ravel(), post.reshape(n, -1)
        idx, below = control_candidates(owner, pflat, hold_min, self.hold_scale)
        self.below_weeks = np.where(below, self.below_weeks + 1, 0).astype(np.int16)
        if idx.size:
            sub = np.minimum(pflat[:, idx], self.frontage[idx])
            jitter = self.streams["jitter"].random(sub.shape, dtype=np.float32) * 1e-3
            new = update_control(owner[idx], sub, self.engaged, self.allowed.reshape(n, -1)[:, idx],
                                 None, hold_min[:, None] * self.hold_scale[idx][None], jitter,
                                 may_vacate=self.below_weeks[idx] >= cc.vacancy_weeks, race=race_gate(jitter, self.race_share))
            old = owner[idx].copy()
            self.owner.ravel()[idx] = new
            self._seed_cells(idx, old, new)
        self._seed_cells(*aftermath.assault_week(self, post, hold_min))  # capture: sector odds
        self.level = control_levels(self.owner, post, self.fighting, cc.full_share, cc.dominant_share,
                                    self.hidden)
        aftermath.posture_week(self)

    def _seed_cells(self, idx, old, new) -> None:
        """Units that take cells seed their garrisons (:func:`~sim.rules.redeploy.seed_garrisons`)."""
        if idx.size:
            redeploy.seed_garrisons(self.garrison, self.units, self.p_units, idx, old, new, self.hold_min,
                                    self.hold_scale, self.cfg.control.seed_garrison_share,
                                    self.unit_window, self.cfg.combat.unit_centre_share)

    # 7 --------------------------------------------------------------------------------
    def _phase_redeploy(self) -> None:
        """Per faction, inside its bounding box: fighters on lost cells retreat
        (:func:`~sim.rules.movement.retreat`), besieged pockets evacuate and garrisons spread
        over their ground (:mod:`sim.rules.redeploy`); then units are reinforced."""
        aftermath.sieges_week(self)  # besieged pieces surrender: deals, evacuation, relocation
        boxes = faction_boxes(self.owner, self.prev_owner, self.n_f, margin=4)
        for i in range(self.n_f):
            if boxes[i] is not None:
                self._retreat(i, boxes[i])
                self._spread(i, boxes[i])
        self._reinforce_units()

    def _retreat(self, i: int, sl) -> None:
        """Fighters of faction ``i`` on cells it no longer holds retreat, go to ground (ISIS)
        or are lost."""
        ic = self.cfg.insurgency
        is_isis = i == self.isis
        out = movement.retreat(self.garrison[i][sl], self.owner[sl] == i,
                               self.cfg.combat.retreat_loss_fraction,
                               aftermath.underground_share(self, i, sl), 0.5 if is_isis else 0.0,
                               self.retreat_window)
        if out is None:
            return
        self.garrison[i][sl], hid, hid_trapped, killed = out
        if is_isis:  # locals go to ground; the foreigners among them leave the region
            aftermath.go_to_ground(self, sl, hid, hid_trapped)
        self.ledger.killed(i, killed)

    def _spread(self, i: int, sl) -> None:
        """Garrisons of faction ``i`` spread over its ground (:func:`~sim.rules.redeploy.
        redeploy_garrisons`; pockets are left to the sieges, :func:`sim.aftermath.sieges_week`)."""
        if (self.owner[sl] == i).any():
            h = self.hostility[i]
            redeploy.redeploy_garrisons(self.garrison[i][sl], self.owner[sl], i, self.station_w[i][sl], h,
                                        h >= self.cfg.control.offensive_hostility, self.move_window, 0.0,
                                        aftermath.home(self, i, sl))

    def _reinforce_units(self) -> None:
        """Units draw replacements from their garrisons or disband into them
        (:func:`~sim.rules.redeploy.reinforce_faction`); disbanded units' agents go."""
        t = self.units
        for i, f in enumerate(self.faction_names):
            sel = t.of_faction(i)
            if sel.size:
                t.fighters[sel], weak, lost = redeploy.reinforce_faction(
                    self.garrison[i], t.fighters[sel], self.cfg.factions[f].unit_size, aftermath.home(self, i))
                t.alive[sel[weak]] = False
                self._remove_units(sel[weak])
                self.ledger.killed(i, lost)  # 0 when no disbanded unit was lost

    # 8 --------------------------------------------------------------------------------
    def _phase_insurgency(self) -> None:
        """Hidden ISIS cells attack (``insurgency`` stream), are hunted by hostile garrisons,
        resurface where they dominate; foreign fighters leave (:mod:`sim.rules.insurgency`)."""
        if self.isis < 0:
            return
        ic, isis = self.cfg.insurgency, self.isis
        others = (self.owner >= 0) & (self.owner != isis)
        n_att = insurgency.attacks(self.hidden, others, ic.attack_rate, self.streams["insurgency"])
        deaths = n_att * ic.attack_lethality
        self.flow[("new_insurgent_attacks", "ALL")] += float(n_att.sum())
        # half of attack deaths are civilians, half the holder's fighters
        self.new_civ_deaths_cell = self.new_civ_deaths_cell + 0.5 * deaths
        self.violence = self.violence + deaths.astype(np.float32)
        for i, k in insurgency.attack_losses((0.5 * deaths).astype(np.float32), self.owner, self.garrison, isis):
            self.ledger.killed(i, k)
        caught = insurgency.hunted(self.hidden, self.hostility[isis] > 0, self.presence,
                                   ic.detection_rate / self.area_factor)  # per 0.05-deg area
        self.hidden -= caught.astype(np.float32)
        self.ledger.killed(isis, float(caught.sum()))
        up = insurgency.resurfacing(self.hidden, self.presence, self.owner, isis,
                                    (self.hold_min[isis] * self.hold_scale).reshape(self.geo.shape),
                                    self.cfg.control.capture_ratio, self.allowed[isis], self.ref_block)
        if up.any():  # hidden cells that outnumber the holder retake the ground
            self.owner[up] = isis
            self.garrison[isis][up] += self.hidden[up]
            self.hidden[up] = 0.0
            self.flow[("new_cells_resurfaced", "ALL")] += float(up.sum())
        aftermath.foreign_exit(self)

    # 9 --------------------------------------------------------------------------------
    def _phase_civilians(self) -> None:
        """Flight, return and deaths of civilians toward FLEE destinations, rebuilding,
        grievance (Epstein) (:mod:`sim.rules.civilians`); factions recruit from the communities
        they rule, ISIS covertly from aggrieved Sunni Arabs (:mod:`sim.rules.recruitment`)."""
        pop, cm, dc = self.population, self.communities, self.cfg.displacement
        vio_cell, reg_vio, reg_dmg, reg_ddmg, deaths = pop.conditions(
            self.violence.ravel(), self.damage.ravel(), self.new_civ_deaths_cell.ravel(), dc)
        own_c = self.owner.ravel()[pop.region_cell][cm.region]
        legit = np.where(own_c >= 0, self.legitimacy[np.maximum(own_c, 0), cm.identity], 0.1)
        flows = pop.displace(self.owner.ravel(), self.legitimacy, self.damage.ravel(), vio_cell,
                             reg_vio[cm.region], reg_dmg[cm.region], reg_ddmg[cm.region], legit, deaths, dc,
                             *aftermath.flight_conditions(self))  # fear of an advance; no way out of a siege
        for name, v in flows.items():
            self.flow[(name, "ALL")] += v
        quiet = self.violence < 0.5  # rebuilding where it is quiet
        self.damage = np.where(quiet, self.damage * (1.0 - dc.rebuild_rate), self.damage)
        griev, self.mean_grievance = pop.grievance(reg_dmg, reg_vio, legit, self.cfg.grievance)
        # recruits: money and arms pay and equip them; a withdrawn faction recruits no more
        rates = np.array([self.cfg.factions[f].recruitment_rate * self.cfg.factions[f].resources
                          for f in self.faction_names]) * ~self.withdrawn
        reach = recruitment.network_reach(self.hidden, self.owner == self.isis, self.cell_km) \
            if self.isis >= 0 else None
        for i, k in recruitment.recruit_all(self.garrison, self.hidden, own_c, cm.home, cm.identity,
                                            pop.region_cell[cm.region], self.legitimacy, griev, rates,
                                            self.isis, self.cfg.insurgency.recruitment_rate, reach,
                                            IDENTITIES.index("sunni_arab")):
            self.ledger.recruited(i, k)

    # 10 -------------------------------------------------------------------------------
    def _phase_record(self) -> None:
        """Metrics of the step (:mod:`sim.observe`)."""
        observe.record(self)

    # ------------------------------------------------------------------ queries
    def people_present(self) -> np.ndarray:
        """People at home plus displaced people sheltering, per cell ``[R, C]``."""
        home, idp = self.population.people_split()
        return (home + idp).reshape(self.geo.shape)

    def share_area(self, i: int) -> float:
        """Share of the theatre's area held by faction ``i``."""
        tot = self.area.sum()
        return float(self.area[self.owner == i].sum() / tot) if tot > 0 else 0.0

    def fighters(self, i: int) -> float:
        """Faction ``i``'s fighters: garrisons, live units and (ISIS) hidden members."""
        t = self.units
        n = float(self.garrison[i].sum()) + float(t.fighters[(t.faction == i) & t.alive].sum())
        if i == self.isis:
            n += float(self.hidden.sum())
        return n

    def people_total(self) -> float:
        """All people of the communities (home, displaced, abroad, dead): conserved."""
        return float(self.communities.total().sum())

    def fighter_balance(self, f: str) -> float:
        """initial + recruited - killed - exported - withdrawn - current (0 if conserved)."""
        i = self.fidx[f]
        return self.ledger.balance(i, self.strength0[i])

    def dates(self) -> list[np.datetime64]:
        """The date of every recorded step, 0..steps."""
        return [np.datetime64(self.start + dt.timedelta(days=self.step_days * k), "D")
                for k in range(self.steps + 1)]

