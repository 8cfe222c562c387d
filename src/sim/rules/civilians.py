"""Civilians: grievance, recruitment, displacement and return (vectorised over communities).

Sources:
* Epstein (2002), "Modeling civil violence: an agent-based computational approach", PNAS 99
  suppl. 3: grievance ``G = H (1 - L)`` from hardship ``H`` and the legitimacy ``L`` of the
  authority.
* Suleimenova, Bell & Groen (2017), "A generalized simulation development approach for
  predicting refugee destinations" (FLEE), Sci. Rep. 7:13377: people move away from conflict
  towards the most attractive reachable location, weighting safety and distance, and move on
  when their location becomes unsafe.
* Return when home is safe and housing stands: IOM DTM Iraq return-intention surveys 2017-18
  (security and destroyed housing are the main barriers to return).  Return is a weekly hazard
  (IOM DTM Iraq Round 107, Dec 2018: 944,958 returns in 2018 from a stock of 2.6 M falling to
  1.8 M, about 0.8% a week) open only where home has been quiet for some weeks
  (:func:`quiet_weeks`), so a region does not send people home and out again week after week.

Community state vectors (length C) are ``home``, ``idp``, ``abroad`` and ``dead``; their sum
is each community's initial population ``pop0``, always.  ``pop0`` includes the people displaced
at the start (July 2017: IDPs in ``idp``, refugees in ``abroad``; :func:`sim.initial.initial_displacement`),
and ``idp_init``/``abroad_init`` track what remains of that initial stock.
"""

from __future__ import annotations

import numpy as np

from .spatial import mask_box


def grievance(hardship: np.ndarray, legitimacy: np.ndarray) -> np.ndarray:
    """Epstein's grievance ``G = H * (1 - L)``, both in [0, 1]."""
    return np.clip(hardship, 0, 1) * (1.0 - np.clip(legitimacy, 0, 1))


def hardship(base: float, damage: np.ndarray, displaced_share: np.ndarray, violence: np.ndarray,
             w_damage: float, w_displacement: float, w_violence: float) -> np.ndarray:
    """Hardship in [0, 1] from housing damage, the community's displaced share and recent
    violence (a rate in [0, 1])."""
    h = base + w_damage * damage + w_displacement * displaced_share + w_violence * violence
    return np.clip(h, 0.0, 1.0)


def flee_fraction(violence: np.ndarray, damage_increase: np.ndarray, persecution: np.ndarray,
                  a_violence: float, a_damage: float, a_persecution: float,
                  threat: np.ndarray | float = 0.0) -> np.ndarray:
    """Share of the people at home who flee this step:
    ``1 - exp(-(a_v v + 10 a_d dD + a_p p + threat))``.  ``violence`` is the violence index (0..1),
    ``damage_increase`` the share of housing destroyed this step (x10, so ``a_d`` is the hazard
    per 10% of homes destroyed in a week), ``persecution`` 1 where the controller targets the
    group, ``threat`` the hazard of flight ahead of a feared advance (:func:`threat_hazard`)."""
    return 1.0 - np.exp(-(a_violence * violence + a_damage * damage_increase * 10.0
                          + a_persecution * persecution + threat))


def threat_hazard(prev_owner: np.ndarray, owner: np.ndarray, war: np.ndarray,
                  legitimacy: np.ndarray, regmap: np.ndarray, weight: np.ndarray,
                  region_weight: np.ndarray, region: np.ndarray, identity: np.ndarray,
                  reach_km: float, cell_km: tuple[float, float], rate: float, advance_km: float,
                  allowed: np.ndarray | None = None) -> np.ndarray:
    """Weekly flight hazard ahead of a feared advance, per community (anticipatory flight).

    People fear an enemy ``g`` as far as it came closer to them this week: for every cell
    (people live on average half a cell from its edge, so the distance from its people to
    ``g``'s ground is the distance between cell centres less half a cell side, 0 on ``g``'s
    own ground; Euclidean on sides ``cell_km`` = (north-south, east-west) km), the approach

        a = min(1, (min(R, d_last_week) - min(R, d_now))+ / advance_km)

    with ``R = reach_km``: an enemy beyond ``R`` is not feared, and an advance of
    ``advance_km`` in a week (or more) is a full week's fear.  The approach is in km, so an
    advance made in one jump of a coarse cell or in several steps of fine cells brings the
    same fear (issue 14.5).  Only ``g`` that took ground this week (``prev_owner`` ->
    ``owner``, both held) advances; a cell's people fear it while their controller of last
    week ``o`` is at war with it (``war[g, o]``), as much as ``g`` is less legitimate for their
    group ``i`` than ``o`` (no fear of a more legitimate liberator; Kurds ahead of the
    Turkish-backed advance, Sunni Arabs of Daraa ahead of the regime's):

        hazard[c] = rate x max_g mean_cells(region of c, people) a x max(0, L[o, i] - L[g, i])

    the mean over the region's cells weighted by ``weight`` (people per cell, flat; ``regmap``
    the flat region of every cell, -1 none; ``region_weight`` its sum per region).  With
    ``allowed[g, r, c]`` given, ground ``g`` may not take (limited aims: Baghdad did not march
    on Erbil; a truce zone; a deconfliction line) is not threatened.  ``region`` and
    ``identity`` per community; returns ``[C]`` hazards (0 where no front moved)."""
    changed = (prev_owner != owner) & (prev_owner >= 0) & (owner >= 0)
    out = np.zeros(len(region))
    if rate <= 0 or not changed.any():
        return out
    regmap2, weight2 = regmap.reshape(owner.shape), weight.reshape(owner.shape)
    war = np.asarray(war, bool)
    n_reg, n_id = len(region_weight), legitimacy.shape[1]
    for g in np.unique(owner[changed]):
        inner, a = approach(prev_owner, owner, int(g), changed & (owner == g), reach_km, cell_km,
                            advance_km)
        o = prev_owner[inner]
        ok = (a > 0) & (o >= 0) & war[g, np.maximum(o, 0)] & (regmap2[inner] >= 0)
        if allowed is not None:
            ok &= allowed[g][inner]
        if not ok.any():
            continue
        oo, reg, w = o[ok], regmap2[inner][ok], (weight2[inner] * a)[ok]
        gap = np.maximum(legitimacy[oo] - legitimacy[g][None, :], 0.0)  # [cells, groups]
        fear = np.stack([np.bincount(reg, weights=w * gap[:, i], minlength=n_reg)
                         for i in range(n_id)], axis=1) / region_weight[:, None]
        out = np.maximum(out, fear[region, identity])
    return rate * out


def approach(prev_owner: np.ndarray, owner: np.ndarray, g: int, taken: np.ndarray, reach_km: float,
             cell_km: tuple[float, float], advance_km: float):
    """``(box, a)``: the approach of faction ``g``, which took the cells ``taken`` this week, to
    the people of every cell of ``box`` (the cells within ``reach_km`` of the taken ground),
    ``a = min(1, (min(R, D0) - min(R, D1))+ / advance_km)`` with ``D0``, ``D1`` the distances
    last week and now from the cell's people to ``g``'s ground (see :func:`threat_hazard`)."""
    from scipy import ndimage

    half = 0.5 * float(np.sqrt(cell_km[0] * cell_km[1]))
    margin = int(np.ceil(reach_km / min(cell_km))) + 1
    inner, outer = mask_box(taken, margin), mask_box(taken, 2 * margin)
    # the inner box inside the outer one, which holds all of g's ground within reach of it
    sub = (slice(inner[0].start - outer[0].start, inner[0].stop - outer[0].start),
           slice(inner[1].start - outer[1].start, inner[1].stop - outer[1].start))
    near = []
    for own in (prev_owner, owner):
        other = own[outer] != g
        if other.all():  # g held nothing within reach
            near.append(np.full(taken[inner].shape, float(reach_km)))
            continue
        d = ndimage.distance_transform_edt(other, sampling=cell_km)[sub]
        near.append(np.minimum(np.where(d > 0, np.maximum(d - half, 0.0), 0.0), reach_km))
    return inner, np.minimum(np.maximum(near[0] - near[1], 0.0) / advance_km, 1.0)


def mixed_return(idp: np.ndarray, idp_threat: np.ndarray, ret: np.ndarray, ret_threat: np.ndarray) -> np.ndarray:
    """The return fraction of a community's IDPs when those who fled ahead of a feared advance
    (``idp_threat`` of ``idp``) return at ``ret_threat`` and the others at ``ret``:
    ``(ret (idp - idp_threat) + ret_threat idp_threat) / idp``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(idp > 0, np.clip(idp_threat / idp, 0.0, 1.0), 0.0)
    return ret * (1.0 - share) + ret_threat * share


def threat_cohort(idp_threat: np.ndarray, idp_before: np.ndarray, deaths_idp: np.ndarray,
                  ret_threat: np.ndarray, new_idp: np.ndarray, threat: np.ndarray | float,
                  flee: np.ndarray, idp_after: np.ndarray) -> np.ndarray:
    """What remains of the IDPs who fled ahead of a feared advance after a week: it dies at the
    community's IDP death rate, returns at ``ret_threat``, and gains the share of this week's new
    IDPs (``new_idp``) that the threat's hazard bears in the total flight hazard (competing risks:
    ``threat / -ln(1 - flee)``).  Bounded by the community's IDPs."""
    with np.errstate(divide="ignore", invalid="ignore"):
        survive = np.where(idp_before > 0, 1.0 - np.minimum(deaths_idp, idp_before) / idp_before, 1.0)
        total = -np.log1p(-np.minimum(flee, 1.0 - 1e-12))
        share = np.where(total > 0, np.clip(np.asarray(threat) / total, 0.0, 1.0), 0.0)
    return np.minimum(idp_threat * survive * (1.0 - ret_threat) + new_idp * share, idp_after)


def pocket_reach(pocket: np.ndarray, trapped_share: np.ndarray, home_cell: np.ndarray,
                 dest_cells: np.ndarray):
    """Who is cut off by a siege: ``(trapped share [C], reachable [C, D])`` from the flat
    pocket labels ``pocket`` (0 = open ground) and each community's share of people living in
    a pocket (``trapped_share``, the people-weighted share of its region's cells inside one:
    the same people on any grid, issue 14.5).  Those outside a pocket may flee to destinations
    on open ground only (no one walks into a siege); a community whose people are all in a
    pocket (none may flee) reaches only the destinations of its settlement's pocket."""
    home_p = pocket[home_cell]
    share = np.clip(trapped_share, 0.0, 1.0)
    share = np.where(share >= 1.0 - 1e-6, 1.0, share)  # the regions' weights carry a 1e-9
    walled = (share >= 1.0) & (home_p > 0)
    same = np.where(walled[:, None], home_p[:, None] == pocket[dest_cells][None, :],
                    (pocket[dest_cells] == 0)[None, :])
    return share, same


def quiet_weeks(weeks: np.ndarray, violence: np.ndarray, damage_increase: np.ndarray) -> np.ndarray:
    """Consecutive quiet weeks per region: ``weeks + 1`` where this week brought no violence
    above the flight threshold (violence index 0) and no new housing damage, else 0."""
    quiet = (violence <= 0.0) & (damage_increase <= 0.0)
    return np.where(quiet, weeks + 1, 0)


def return_fraction(safe: np.ndarray, damage: np.ndarray, rate: float, safe_damage: float) -> np.ndarray:
    """Share of the displaced who return this step: ``rate`` where home is safe, scaled down
    linearly by destroyed housing (none return where damage >= ``safe_damage``)."""
    housing = np.clip(1.0 - damage / max(safe_damage, 1e-9), 0.0, 1.0)
    return np.where(safe, rate * housing, 0.0)


def move_people(home: np.ndarray, idp: np.ndarray, abroad: np.ndarray, dead: np.ndarray,
                flee: np.ndarray, abroad_share: np.ndarray, ret_idp: np.ndarray,
                ret_abroad: np.ndarray, deaths_home: np.ndarray, deaths_idp: np.ndarray):
    """One step of flows between the four stocks; returns the new stocks and the flows
    (new_displaced, new_abroad, returnees, deaths).  Exactly conserving: every outflow is
    bounded by its stock, and what leaves one stock enters another."""
    d_home = np.minimum(deaths_home, home)
    home = home - d_home
    d_idp = np.minimum(deaths_idp, idp)
    idp = idp - d_idp
    leaving = home * flee
    to_abroad = leaving * abroad_share
    to_idp = leaving - to_abroad
    back_idp = idp * ret_idp
    back_abroad = abroad * ret_abroad
    home = home - leaving + back_idp + back_abroad
    idp = idp + to_idp - back_idp
    abroad = abroad + to_abroad - back_abroad
    dead = dead + d_home + d_idp
    return (home, idp, abroad, dead), (leaving, to_abroad, back_idp + back_abroad, d_home + d_idp)


def destination_static(capacity: np.ndarray, dist_km: np.ndarray, walk_km: float):
    """The parts of :func:`destination_scores` that do not change from week to week:
    ``(reachable, log-capacity, distance discount, the discount with +inf where
    unreachable)``."""
    reach, discount = dist_km <= 3.0 * walk_km, 1.0 + dist_km / walk_km
    return reach, np.log1p(capacity), discount, np.where(reach, discount, np.inf)


def destination_scores(safety: np.ndarray, legitimacy: np.ndarray, capacity: np.ndarray,
                       dist_km: np.ndarray, walk_km: float, static=None) -> np.ndarray:
    """FLEE-style attractiveness ``[community, destination]`` of each destination:
    safety x legitimacy of its controller for the group x log-capacity, discounted by
    distance; unreachable (beyond ``3 * walk_km``) destinations score 0.  ``static``: the
    :func:`destination_static` of the same capacity, distances and walk (optional)."""
    reach, log_cap, discount = (static if static is not None else
                                destination_static(capacity, dist_km, walk_km))[:3]
    score = safety * (0.2 + legitimacy) * log_cap / discount
    return np.where(reach, score, 0.0)


def destination_scores_grouped(safety: np.ndarray, legitimacy_g: np.ndarray, group: np.ndarray,
                               static) -> np.ndarray:
    """:func:`destination_scores` when a community's legitimacy row depends only on its
    group (``legitimacy_g[group[c]]``, ``[G, D]``): the group's numerators computed once,
    then gathered for each community and divided by its distance discount, +inf where
    unreachable (a finite numerator >= 0 over +inf is exactly the 0 set there); the same
    values, element by element.  ``static``: :func:`destination_static`."""
    reach, log_cap, discount, discount_inf = static
    base = safety * (0.2 + legitimacy_g) * log_cap
    if np.isfinite(base).all() and (base >= 0).all():
        return base[group] / discount_inf
    return np.where(reach, base[group] / discount, 0.0)


def recruits(pop: np.ndarray, support: np.ndarray, rate: float) -> np.ndarray:
    """Recruits per cell: ``rate * pop * support`` (support in [0, 1])."""
    return rate * pop * support


def violence_index(deaths: np.ndarray, people: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """Violence felt by civilians in [0, 1) from a cell's weekly deaths (fighters and
    civilians) per 1,000 people there: ``max(0, 1 - exp(-d / scale) - threshold)``.
    Risk per head drives flight (a death in a village weighs more than in a city), and
    low-level front-line violence below the threshold does not drive people out."""
    per_k = deaths / np.maximum(people, 100.0) * 1000.0
    return np.maximum(1.0 - np.exp(-per_k / scale) - threshold, 0.0)


def choose_destinations(scores: np.ndarray, dest_cells: np.ndarray, current: np.ndarray):
    """Each community's destination (FLEE): the best-scoring reachable destination's cell,
    or its current shelter ``current`` if none scores above 0.  Returns ``(cell, has_dest)``."""
    best = np.argmax(scores, axis=1)
    has_dest = scores[np.arange(len(scores)), best] > 0
    return np.where(has_dest, dest_cells[best], current), has_dest


def shelter_room(idp_region: np.ndarray, idp: np.ndarray, region_pop0: np.ndarray,
                 host_ratio: float) -> np.ndarray:
    """Per region, the share of its room for displaced people still free (FLEE's location
    capacity; :func:`destination_scores` multiplies a destination's safety by it):

        room_r = clip(1 - IDPs sheltering in r / (host_ratio x pop0_r), 0, 1)

    ``idp_region`` the region each community's displaced shelter in (-1 none), ``idp`` their
    number, ``region_pop0`` the regions' people at the start.  A town's pull was its size
    (``log(1 + pop0)``) whatever it already held: Afrin (60,000 people at 0.05 deg) sheltered
    ~360,000 displaced by March 2018, all driven on at once by Olive Branch."""
    ok = idp_region >= 0
    held = np.bincount(idp_region[ok], weights=idp[ok], minlength=len(region_pop0))
    return np.clip(1.0 - held / np.maximum(host_ratio * region_pop0, 1e-9), 0.0, 1.0)


def death_split(deaths_cell: np.ndarray, home_cell: np.ndarray, idp_cell: np.ndarray):
    """Share of the people present in each cell killed this step, ``min(deaths / present,
    1)`` (0 where nobody is present): it applies alike to home people and sheltering IDPs."""
    present = home_cell + idp_cell
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(present > 0, np.minimum(deaths_cell / present, 1.0), 0.0)


def shelter_shares(regmap: np.ndarray, people: np.ndarray, region_cell: np.ndarray,
                   n_reg: int) -> np.ndarray:
    """Flat ``[cells]`` share of its settlement region's people in each cell (``regmap`` flat,
    -1 outside; ``people`` per cell): how the displaced sheltering in a region spread over it
    (:func:`spread_shelter`).  A region with no people keeps them at its settlement cell."""
    inside = regmap >= 0
    reg = regmap[inside]
    tot = np.bincount(reg, weights=people[inside], minlength=n_reg)
    share = np.zeros(regmap.size)
    share[inside] = np.where(tot[reg] > 0, people[inside] / np.maximum(tot[reg], 1e-300), 0.0)
    empty = tot <= 0
    share[region_cell[empty]] = 1.0
    return share


def spread_shelter(idp: np.ndarray, idp_loc: np.ndarray, regmap: np.ndarray, share: np.ndarray,
                   n_reg: int) -> np.ndarray:
    """Displaced people per cell (flat): those sheltering at a cell (``idp_loc``) live spread
    over its settlement region like its people (``share``, :func:`shelter_shares`), in host
    families, rented rooms and camps by its towns, not all in one cell: so the people a shell
    can hit, and the violence per head, do not depend on the size of a cell (issue 14.5).
    IDPs at a cell outside every region stay there."""
    reg = regmap[idp_loc]
    ok = reg >= 0
    by_reg = np.bincount(reg[ok], weights=idp[ok], minlength=n_reg)
    out = np.where(regmap >= 0, share * by_reg[np.maximum(regmap, 0)], 0.0)
    if not ok.all():
        out += np.bincount(idp_loc[~ok], weights=idp[~ok], minlength=regmap.size)
    return out


class Population:
    """The civilian state: settlement regions, the communities (home, displaced, abroad,
    dead), their FLEE destinations and last week's housing damage per region.

    ``regions`` and ``dest`` are the dicts built by :func:`sim.initial.settlement_regions`
    and :func:`sim.initial.destinations`; ``table`` a :class:`sim.agents.CommunityTable`;
    ``pop_static`` the people per cell at the start."""

    def __init__(self, regions: dict, table, dest: dict, pop_static: np.ndarray):
        self.regmap = regions["regmap"]
        self.region_names = regions["region_names"]
        self.region_cell = regions["region_cell"]
        self.region_pop0 = regions["region_pop0"]
        self.table = table
        self.pop_static = pop_static
        self.region_border_km = dest["region_border_km"]
        self.dest_region = dest["dest_region"]
        self.dest_dist = dest["dest_dist"]
        self.dest_capacity = dest["dest_capacity"]
        self.n_reg = len(self.region_names)
        self.reg_dmg_prev = np.zeros(self.n_reg)
        self.dmg_cell_prev, self.dmg_cell = None, None  # housing damage per cell: last week, now
        flat = self.regmap.ravel()
        self.inside = np.flatnonzero(flat >= 0)  # cells in a region, flat (a gather by take)
        self.fr = flat[self.inside]
        self.pop0_in = pop_static.ravel()[self.inside]
        self.weight = np.bincount(self.fr, weights=self.pop0_in, minlength=self.n_reg) + 1e-9
        self.cell_share = shelter_shares(flat, pop_static.ravel(), self.region_cell, self.n_reg)
        self.share_in = self.cell_share[self.inside]
        self.left = np.zeros_like(table.pop0)  # people who left home this week, per community
        self.quiet = np.zeros(self.n_reg, np.int64)  # consecutive quiet weeks per region
        self.moved_on = np.zeros_like(table.pop0)  # IDPs driven on from a shelter under fire
        self.moved_on_loc = table.idp_loc.copy()  # ... and the cell they were driven from
        self._split_key, self._split = None, None  # people_split's last answer
        self._dest_static = (None, None)  # (walk_km, destination_static)

    def people_split(self) -> tuple[np.ndarray, np.ndarray]:
        """(people at home, displaced people sheltering) per cell, flat read-only arrays;
        remembered until the communities' home, idp or idp_loc change (compared bytewise:
        the combat and civilian phases and the record ask for the same state)."""
        cm = self.table
        key = (cm.home.tobytes(), cm.idp.tobytes(), cm.idp_loc.tobytes())
        if self._split_key == key:
            return self._split
        reg_home = np.bincount(cm.region, weights=cm.home, minlength=self.n_reg)
        frac = reg_home / np.maximum(self.region_pop0, 1e-9)
        flat = self.regmap.ravel()
        home = np.where(flat >= 0, self.pop_static.ravel() * frac[np.maximum(flat, 0)], 0.0)
        idp = spread_shelter(cm.idp, cm.idp_loc, flat, self.cell_share, self.n_reg)
        home.flags.writeable = idp.flags.writeable = False
        self._split_key, self._split = key, (home, idp)
        return home, idp

    def region_mean(self, values: np.ndarray) -> np.ndarray:
        """Population-weighted (at the start) mean of a flat cell field per region."""
        return np.bincount(self.fr, weights=self.pop0_in * values.take(self.inside),
                           minlength=self.n_reg) / self.weight

    def deaths(self, f_home: np.ndarray, home_cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Deaths ``(at home, displaced)`` per community from the killed share per cell: home
        deaths of a region are split over its communities by their people at home."""
        cm = self.table
        d_home_reg = np.bincount(self.fr, weights=(f_home * home_cell).take(self.inside),
                                minlength=self.n_reg)
        reg_home = np.bincount(cm.region, weights=cm.home, minlength=self.n_reg)
        cr = cm.region
        with np.errstate(divide="ignore", invalid="ignore"):
            d_home = np.where(reg_home[cr] > 0, d_home_reg[cr] * cm.home / reg_home[cr], 0.0)
        return d_home, cm.idp * self.shelter_mean(f_home)[self.regmap.ravel()[cm.idp_loc]]

    def shelter_mean(self, values: np.ndarray) -> np.ndarray:
        """Per region, the mean of a flat cell field over the region's displaced people, who
        shelter spread over its cells like its people (:func:`spread_shelter`)."""
        return np.bincount(self.fr, weights=self.share_in * values.take(self.inside),
                           minlength=self.n_reg)

    def displace(self, owner: np.ndarray, legitimacy: np.ndarray, damage: np.ndarray,
                 vio_cell: np.ndarray, violence_c: np.ndarray, dmg_c: np.ndarray,
                 ddmg_c: np.ndarray, legit: np.ndarray, deaths, dc,
                 threat: np.ndarray | float = 0.0, pocket: np.ndarray | None = None) -> dict[str, float]:
        """One week of flight, return and deaths (FLEE): who flees (:func:`flee_fraction`;
        abroad if a border is within a week's walk), who returns (:func:`return_fraction`),
        and where the displaced shelter (:func:`destination_scores`); with no reachable safe
        place people go abroad if a border is in reach, else stay put; IDPs move on when their
        shelter is unsafe.  ``owner``, ``damage`` and ``vio_cell`` are flat cell fields,
        ``*_c`` and ``legit`` per community, ``deaths`` the ``(home, idp)`` deaths and ``dc``
        the ``displacement`` config, ``threat`` the hazard of flight ahead of a feared
        advance (:func:`threat_hazard`), ``pocket`` (flat int per cell, 0 = open ground) the
        besieged pocket a cell lies in: the ring lets no one in or out, so no one flees from a
        pocket (they die where they are, or leave under a deal; a community's flight is scaled
        by the share of its people outside pockets) and no one from outside shelters in one
        (:func:`pocket_reach`).  The displaced live spread over their refuge's region
        (:func:`spread_shelter`): its safety, and whether they are under fire (most of its
        people in cells above 0.1), are read over it.  Updates the table; returns the flows."""
        cm = self.table
        border_km = self.region_border_km[cm.region]
        persecuted = (legit < 0.05).astype(float)
        dest_cells = self.region_cell[self.dest_region]
        trapped, same, violence_c, ddmg_c = self.ring(pocket, vio_cell, damage, violence_c, ddmg_c)
        flee = flee_fraction(violence_c, ddmg_c, persecuted, dc.flee_rate_violence,
                             dc.flee_rate_damage, dc.flee_rate_persecution, threat)
        abroad_share = np.where(border_km <= dc.walk_km_week, dc.abroad_share, 0.0)
        safe = (self.quiet[cm.region] >= dc.return_quiet_weeks) & (legit >= 0.2) & (persecuted == 0)
        ret = return_fraction(safe, dmg_c, dc.return_rate, dc.safe_damage)
        ret_ab = return_fraction(safe, dmg_c, dc.return_rate_abroad, dc.safe_damage)
        ret_t = return_fraction(safe, dmg_c, dc.return_rate_threat, dc.safe_damage)
        dest_owner = owner[dest_cells]
        reg_vio, reg_dmg = self.shelter_mean(vio_cell), self.shelter_mean(damage)
        d_safe = ((1.0 - reg_vio) * (1.0 - reg_dmg) * self.room(dc.host_ratio))[self.dest_region]
        # legitimacy of each destination's controller per identity group [G, D]
        d_leg = np.where(dest_owner[None, :] >= 0, legitimacy[np.maximum(dest_owner, 0)].T, 0.05)
        if self._dest_static[0] != dc.walk_km_week:  # computed once per walk
            self._dest_static = (dc.walk_km_week, destination_static(
                self.dest_capacity[None, :], self.dest_dist, dc.walk_km_week))
        scores = destination_scores_grouped(d_safe[None, :], d_leg, cm.identity, self._dest_static[1])
        scores = np.where(same, scores, 0.0)
        new_loc, has_dest = choose_destinations(scores, dest_cells, cm.idp_loc)
        abroad_share = np.where(has_dest, abroad_share, np.where(border_km <= 3 * dc.walk_km_week, 1.0, 0.0))
        flee = np.where(has_dest | (abroad_share > 0), flee * (1.0 - trapped), 0.0)
        idp_before = cm.idp
        ret_mix = mixed_return(cm.idp, cm.idp_threat, ret, ret_t)
        (cm.home, cm.idp, cm.abroad, cm.dead), (left, to_ab, back, died) = move_people(
            cm.home, cm.idp, cm.abroad, cm.dead, flee, abroad_share, ret_mix, ret_ab, *deaths)
        back_init = self.track_initial(idp_before, deaths[1], ret, ret_ab)
        cm.idp_threat = threat_cohort(cm.idp_threat, idp_before, deaths[1], ret_t, left - to_ab,
                                      threat, flee, cm.idp)
        self.left = left
        under_fire = self.shelter_mean((vio_cell > 0.1) * 1.0)[self.regmap.flat[cm.idp_loc]] > 0.5
        # IDPs driven from a shelter under fire are displaced again (not counted as leaving home)
        self.moved_on = np.where(under_fire & (new_loc != cm.idp_loc), cm.idp - (left - to_ab), 0.0)
        self.moved_on_loc = cm.idp_loc.copy()
        moving = (left > 0) | under_fire
        cm.idp_loc = np.where(moving, new_loc, cm.idp_loc)
        return {"new_displaced": float(left.sum()), "new_refugees_abroad": float(to_ab.sum()),
                "new_returnees": float(back.sum()), "new_civilian_deaths": float(died.sum()),
                "new_returnees_initial": back_init}

    def ring(self, pocket: np.ndarray | None, vio_cell: np.ndarray, damage: np.ndarray,
             violence_c: np.ndarray, ddmg_c: np.ndarray):
        """What siege rings mean for each community's flight: ``(trapped, same, violence,
        damage increase)``, :meth:`siege_reach` over the destinations, and the conditions its
        people flee, the open cells' where some of them are in a pocket
        (:meth:`open_conditions`)."""
        trapped, same = self.siege_reach(pocket, self.region_cell[self.dest_region])
        if pocket is not None and (trapped > 0).any():  # those outside a ring flee their side's war
            violence_c, ddmg_c = self.open_conditions(pocket, vio_cell, damage, violence_c, ddmg_c,
                                                      trapped)
        return trapped, same, violence_c, ddmg_c

    def room(self, host_ratio: float) -> np.ndarray:
        """:func:`shelter_room` of every region from the displaced sheltering there now."""
        return shelter_room(self.regmap.ravel()[self.table.idp_loc], self.table.idp,
                            self.region_pop0, host_ratio)

    def open_conditions(self, pocket: np.ndarray, vio_cell: np.ndarray, damage: np.ndarray,
                        violence_c: np.ndarray, ddmg_c: np.ndarray, trapped: np.ndarray):
        """``(violence, damage increase)`` per community as felt by its people outside a siege
        ring: the people-weighted means over the region's open cells (``pocket`` 0) for the
        communities with people in a pocket (``trapped`` > 0), the given values elsewhere.  The
        fighting inside a ring drives no one out (no one gets out of it): the people on the
        other side flee the war on their side.  Raqqa, July 2017: 43% of the settlement
        region's people (0.05 deg) in the ring around the old city, whose shelling and damage
        had sent the people of the suburbs the SDF already held fleeing at 33% a week."""
        w = self.pop0_in * (pocket.take(self.inside) == 0)
        tot = np.bincount(self.fr, weights=w, minlength=self.n_reg)

        def mean(x):
            return np.bincount(self.fr, weights=w * x.take(self.inside), minlength=self.n_reg) \
                / np.maximum(tot, 1e-300)
        prev = self.dmg_cell_prev if self.dmg_cell_prev is not None else np.zeros_like(damage)
        dd = np.maximum(mean(damage) - mean(prev), 0.0)
        use = (trapped > 0) & (tot[self.table.region] > 0)
        reg = self.table.region
        return np.where(use, mean(vio_cell)[reg], violence_c), np.where(use, dd[reg], ddmg_c)

    def siege_reach(self, pocket: np.ndarray | None, dest_cells: np.ndarray):
        """:func:`pocket_reach` of the communities, their trapped share the share of their
        region's people in a pocket (no pockets: no one trapped, every destination open)."""
        pocket = np.zeros(self.regmap.size, np.int64) if pocket is None else pocket
        region = self.table.region
        return pocket_reach(pocket, self.region_mean((pocket > 0).astype(float))[region],
                            self.region_cell[region], dest_cells)

    def track_initial(self, idp_before: np.ndarray, deaths_idp: np.ndarray, ret_idp: np.ndarray,
                      ret_abroad: np.ndarray) -> float:
        """What remains of the displacement stock of the start (``idp_init``, ``abroad_init``):
        it dies and returns at the same rates as everyone displaced in its community (the
        flows of :func:`move_people`), so the initial and the new displaced mix evenly.
        Returns the step's returnees from the initial stock."""
        cm = self.table
        with np.errstate(divide="ignore", invalid="ignore"):
            survive = np.where(idp_before > 0, 1.0 - np.minimum(deaths_idp, idp_before) / idp_before, 1.0)
        idp_alive = cm.idp_init * survive
        back = idp_alive * ret_idp + cm.abroad_init * ret_abroad
        cm.idp_init = np.minimum(idp_alive * (1.0 - ret_idp), cm.idp)
        cm.abroad_init = np.minimum(cm.abroad_init * (1.0 - ret_abroad), cm.abroad)
        return float(back.sum())

    def conditions(self, violence: np.ndarray, damage: np.ndarray, deaths_cell: np.ndarray, dc):
        """What civilians face this week, from flat cell fields of fighting deaths, housing
        damage and civilian deaths: ``(violence index per cell, per region: mean violence,
        mean damage, damage increase since last week; (home, idp) deaths per community)``."""
        home_cell, idp_cell = self.people_split()
        # the index is 0 where nobody died (1 - exp(0) - threshold <= 0): computed where someone did
        hot = np.flatnonzero(violence)
        vio_cell = np.zeros(violence.shape)
        vio_cell[hot] = violence_index(violence[hot], home_cell[hot] + idp_cell[hot], dc.violence_scale,
                                       dc.violence_threshold)
        reg_vio, reg_dmg = self.region_mean(vio_cell), self.region_mean(damage)
        reg_ddmg = np.maximum(reg_dmg - self.reg_dmg_prev, 0.0)
        self.reg_dmg_prev = reg_dmg
        self.dmg_cell_prev, self.dmg_cell = self.dmg_cell, damage.copy()  # for open_conditions
        self.quiet = quiet_weeks(self.quiet, reg_vio, reg_ddmg)
        deaths = self.deaths(death_split(deaths_cell, home_cell, idp_cell), home_cell)
        return vio_cell, reg_vio, reg_dmg, reg_ddmg, deaths

    def grievance(self, reg_dmg: np.ndarray, reg_vio: np.ndarray, legit: np.ndarray, gc):
        """Epstein grievance per community from its hardship (its region's damage and
        violence, its displaced share) and the legitimacy of its ruler; and the mean
        grievance weighted by people at home.  ``gc``: the ``grievance`` config."""
        cm = self.table
        displaced_share = 1.0 - cm.home / np.maximum(cm.pop0 - cm.dead, 1e-9)
        hard = hardship(gc.base_hardship, reg_dmg[cm.region], displaced_share, reg_vio[cm.region],
                        gc.hardship_weight_damage, gc.hardship_weight_displacement,
                        gc.hardship_weight_violence)
        griev = grievance(hard, legit)
        return griev, float(np.average(griev, weights=np.maximum(cm.home, 1e-9)))
