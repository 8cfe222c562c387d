"""The model's state at step 0 (other than the control map, :mod:`sim.initial_control`):
faction parameters on the grid, settlement regions and civilian communities, and the opening
deployment of garrisons and units.

Each builder takes the validated config and the geography and returns plain arrays, which
:class:`sim.model.ConflictModel` keeps as its shared landscape.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import initial_map
from .agents import CommunityTable
from .config import IDENTITIES, Config
from .geography import Geography
from .grid import haversine_km
from .rules.assault import urban_index
from .rules.combat import battle_blocks
from .rules.control import UNGOVERNED
from .rules.events import hostility_matrix
from .rules.movement import RETREAT_KM, target_reach
from .rules.spatial import window_cover, window_side

REFERENCE_RES = 0.05  # degrees: per-cell thresholds in the configs are for cells of this size
BASE_LEGITIMACY = 0.1  # legitimacy of a faction for an identity group its config does not name


# ------------------------------------------------------------------ factions on the grid
def faction_parameters(cfg: Config, geo: Geography, names: list[str], isis: int) -> dict:
    """Per-faction and per-cell parameters: ``firepower``, ``hold_min`` (scaled to the cell
    area), ``area_factor``, ``strength0``, ``unit_window``, ``unit_speed_cells``,
    ``hostility``/``hostility0``, ``former_allies``, ``legitimacy`` and ``value``, plus the
    cell fields ``hold_scale``, ``defence``, ``shield``, ``frontage``, ``move_window`` and
    ``battle_block`` (battles are counted per 0.1-degree block, :func:`sim.rules.combat.battle_blocks`)."""
    fcs = [cfg.factions[f] for f in names]
    mult = np.array([cfg.scenario.strength_multiplier.get(f, 1.0) for f in names])
    cell_km = geo.grid.cell_km
    out = {"firepower": np.array([fc.firepower for fc in fcs]) * np.array([fc.morale for fc in fcs])}
    if isis >= 0:
        out["firepower"][isis] *= cfg.scenario.isis_cohesion
    # per-cell thresholds are given for a 0.05 degree cell and scale with cell area, so the
    # model behaves alike on the 0.1, 0.05 and 0.025 degree grids
    out["area_factor"] = area_factor = area_factor_of(geo)
    hold_min = np.array([fc.garrison_min for fc in fcs], np.float32) * area_factor
    if isis >= 0:
        hold_min[isis] /= max(cfg.scenario.isis_cohesion, 1e-6)
    out["hold_min"] = hold_min
    out.update(cell_parameters(cfg, geo))
    out["battle_block"] = battle_blocks(geo.shape, geo.grid.res)  # battles counted per 0.1 degree
    # resurfacing judged per 0.05-degree block on finer grids (None: per cell, as on 0.05 and 0.1)
    fine = geo.grid.res < REFERENCE_RES * (1 - 1e-6)
    out["ref_block"] = battle_blocks(geo.shape, geo.grid.res, REFERENCE_RES) if fine else None
    out["harm_crowding"] = harm_crowding(geo, getattr(cfg, "geography", None))
    out["frontage"] = (cfg.combat.max_density_km2 * geo.grid.cell_area_km2).ravel().astype(np.float32)
    out["strength0"] = np.array([fc.fighters for fc in fcs]) * mult
    # a unit's sector: the same km^2 on every grid (fractional windows, rules.spatial.window_side)
    ref_km = reference_cell_km(geo)
    out["unit_window"] = np.array([window_side(fc.projection_km, cell_km, ref_km) for fc in fcs])
    out["race_share"] = min(ref_km / cell_km, 1.0)  # the race for empty cells: 5.6 km a week at most
    out["target_reach"] = target_reach(cell_km)  # an HQ's planning reach: ~11 km on every grid
    out["unit_speed_cells"] = np.array([fc.speed_km_week for fc in fcs]) / cell_km
    fidx = {n: i for i, n in enumerate(names)}
    pairs = ((a, b, v) for a, row in cfg.scenario.hostility.items() for b, v in row.items())
    out["hostility"] = hostility_matrix(pairs, fidx, len(names))
    out["hostility0"] = out["hostility"].copy()
    out["former_allies"] = former_allies(out["hostility0"], isis,
                                         cfg.scenario.former_allies_max_hostility)
    legit = np.full((len(names), len(IDENTITIES)), BASE_LEGITIMACY)
    for i, fc in enumerate(fcs):
        for ident, v in fc.legitimacy.items():
            legit[i, IDENTITIES.index(ident)] = v
    out["legitimacy"] = legit
    out["value"] = ground_value(geo, [fc.value_weights for fc in fcs])
    return out


def area_factor_of(geo: Geography) -> float:
    """A cell's area in 0.05-degree cells, ``(res / REFERENCE_RES) ** 2``: per-cell thresholds
    of the configs are scaled by it."""
    return float((geo.grid.res / REFERENCE_RES) ** 2)


def reference_cell_km(geo: Geography) -> float:
    """North-south side in km of a 0.05-degree cell (the reference grid's ``cell_km``)."""
    return geo.grid.cell_km * (REFERENCE_RES / geo.grid.res)


def ref_people(geo: Geography) -> np.ndarray:
    """People per 0.05-degree cell's worth of area (``population / area_factor``): a density,
    so thresholds on it (urban index, holding level, station weights) mean the same on every
    grid (issue 14.5); on a 0.1-degree cell the people of four reference cells count as one
    reference cell's density, not as a town four times as large."""
    return geo.population.astype(np.float64) / area_factor_of(geo)


def cell_parameters(cfg: Config, geo: Geography) -> dict:
    """Cell fields from population density (:func:`ref_people`): ``hold_scale`` (holding a
    cell takes fighters in proportion to its people: empty desert a patrol, a town a
    garrison), ``defence`` and ``shield`` (towns favour their defender), the garrison
    ``move_window`` and ``retreat_window`` (window sides in cells, fractional off the 0.05
    degree grid: :func:`sim.rules.spatial.window_side`) and ``urban`` (``[R, C]`` urban index,
    :func:`sim.rules.assault.urban_index`)."""
    cc = cfg.control
    e = cc.empty_hold_share
    hold = lambda pop: e + (1 - e) * np.clip(np.sqrt(pop / cc.hold_population), 0, 1)  # noqa: E731
    pop = ref_people(geo)
    hold_scale, urban = hold(pop), urban_index(pop, 1.0)  # pop is already people per reference area
    ref = reference_geography(geo, getattr(cfg, "geography", None))
    if ref is not None:  # on a finer grid, towns as the 0.05 degree grid resolves them (issue 14.5)
        rp = ref_people(ref)
        hold_scale, urban = carry_fields((hold(rp), urban_index(rp, 1.0)), geo.shape)
    hold_scale, urban = hold_scale.ravel(), urban.ravel()
    return {
        "hold_scale": hold_scale.astype(np.float32),
        "defence": (1.0 + cc.urban_defence * urban).astype(np.float32),
        "shield": (1.0 + cfg.combat.urban_loss_shield * urban).astype(np.float32),
        "move_window": window_side(cc.garrison_move_km, geo.grid.cell_km, reference_cell_km(geo)),
        "retreat_window": window_side(RETREAT_KM, geo.grid.cell_km, reference_cell_km(geo)),
        "urban": urban.reshape(geo.shape),
    }


def reference_geography(geo: Geography, geo_cfg) -> Geography | None:
    """The 0.05-degree geography of the same real map as a finer grid ``geo`` (its config
    ``geo_cfg`` at the reference resolution), or None: on the 0.05-degree grid or a coarser
    one, on the synthetic map, without a config, or where the grids do not nest (k x k cells
    per reference cell)."""
    import dataclasses

    from .geography import build_geography

    if geo_cfg is None or geo_cfg.kind != "real" or geo.grid.res > REFERENCE_RES * (1 - 1e-9):
        return None
    k, (R, C) = REFERENCE_RES / geo.grid.res, geo.shape
    if abs(k - round(k)) > 1e-6 or R % round(k) or C % round(k):
        return None
    ref = build_geography(dataclasses.replace(geo_cfg, name="res_005", resolution_deg=REFERENCE_RES))
    return ref if ref.shape == (R // round(k), C // round(k)) else None


def harm_crowding(geo: Geography, geo_cfg) -> np.ndarray | None:
    """``[R*C]`` on a grid coarser than 0.05 degrees (None on the others): how much denser than
    the cell's average are the people that its fighting meets, from the 0.05-degree grid of
    the same map, ``k x k`` reference cells ``j`` per cell with people ``P_j`` and garrison
    weights ``w_j`` (:func:`garrison_weights`, where forces stand and so where they fight):
    ``kappa = k^2 sum_j P_j w_j / (sum_j P_j x sum_j w_j)``, 1 for an even cell, up to ``k^2``
    for a town in one corner of open country, below 1 where the forces stand away from the
    people (0.62 at least on the 0.1-degree map).  Civilian harm is driven by the losses per
    reference area times ``kappa`` (:func:`sim.rules.combat.civilian_exposure`; issue 14.5)."""
    ref = coarse_reference_geography(geo, geo_cfg)
    if ref is None:
        return None
    return crowding(ref[0].population, garrison_weights(ref[0]), ref[1]).ravel()


def coarse_reference_geography(geo: Geography, geo_cfg) -> tuple[Geography, int] | None:
    """``(ref, k)``: the 0.05-degree map of the same real geography under a grid ``geo`` ``k``
    (integer) times coarser that nests it; None on the 0.05-degree grid and finer ones (for
    those, :func:`reference_geography`), synthetic maps or a grid that does not nest."""
    import dataclasses

    from .geography import build_geography

    if geo_cfg is None or geo_cfg.kind != "real" or geo.grid.res < REFERENCE_RES * (1 + 1e-9):
        return None
    k, (R, C) = geo.grid.res / REFERENCE_RES, geo.shape
    if abs(k - round(k)) > 1e-6:
        return None
    k = round(k)
    ref = build_geography(dataclasses.replace(geo_cfg, name="res_005", resolution_deg=REFERENCE_RES))
    return (ref, k) if ref.shape == (R * k, C * k) else None


def settled_mask(population: np.ndarray, area: np.ndarray, density: float) -> np.ndarray:
    """``[R, C]`` bool: theatre cells with at least ``density`` people per km2 (2017): ground
    someone can hold in the sense of the area estimates (IHS's effective control), not open
    desert where ISIS only moved freely (README of the 2017 map).  Resolution-free: a density."""
    return (area > 0) & (np.asarray(population, np.float64) >= density * area)


def settled_fraction(geo: Geography, geo_cfg, density: float) -> np.ndarray:
    """``[R, C]`` share of each theatre cell's area that is settled ground: at least ``density``
    people per km2 (2017) on the 0.05-degree grid (issue 14.5).  A density read on cells of
    another size is another rule: a village of 300 people is settled on a 7.7 km2 cell of
    0.025 degrees and not on its 31 km2 cell of 0.05 degrees, so ISIS held on to ten times as
    much settled ground at 0.025 degrees and was never defeated.  On a finer grid each
    0.05-degree block's density is read (all or none of its cells); on a coarser one the
    share of the cell's area whose 0.05-degree cells are settled (from the 0.05-degree map of
    the same geography); on the 0.05-degree grid and the synthetic maps, the cell's own."""
    area = np.where(geo.theatre, geo.grid.cell_area_km2, 0.0)
    res = geo.grid.res
    if res < REFERENCE_RES * (1 - 1e-6):
        block = battle_blocks(geo.shape, res, REFERENCE_RES)
        pop_b = np.bincount(block, weights=np.asarray(geo.population, np.float64).ravel())
        area_b = np.bincount(block, weights=area.ravel())
        settled_b = settled_mask(pop_b, area_b, density)
        return (settled_b[block].reshape(geo.shape) & (area > 0)).astype(np.float64)
    found = coarse_reference_geography(geo, geo_cfg)
    if found is None:
        return settled_mask(geo.population, area, density).astype(np.float64)
    ref, k = found
    ref_area = np.where(ref.theatre, ref.grid.cell_area_km2, 0.0)
    return np.where(area > 0, settled_share_coarse(settled_mask(ref.population, ref_area, density),
                                                   ref_area, k), 0.0)


def settled_share_coarse(fine_settled: np.ndarray, fine_area: np.ndarray, k: int) -> np.ndarray:
    """``[R, C]`` share of the area of each cell of a grid ``k`` times coarser that its ``k x k``
    fine cells ``[k R, k C]`` mark as settled (0 where they have no area)."""
    R, C = fine_area.shape[0] // k, fine_area.shape[1] // k
    a = np.asarray(fine_area, np.float64).reshape(R, k, C, k)
    num = (a * fine_settled.reshape(R, k, C, k)).sum(axis=(1, 3))
    den = a.sum(axis=(1, 3))
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def crowding(people: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """``[R, C]`` crowding of the cells of a grid ``k`` times coarser than the ``[k R, k C]``
    fields ``people`` and ``weights``: ``k^2 sum_j P_j w_j / (sum_j P_j x sum_j w_j)`` over the
    ``k x k`` fine cells ``j`` of each coarse cell; 1 where it has no people or no weight."""
    R, C = people.shape[0] // k, people.shape[1] // k
    p = np.asarray(people, np.float64).reshape(R, k, C, k)
    w = np.asarray(weights, np.float64).reshape(R, k, C, k)
    den = p.sum(axis=(1, 3)) * w.sum(axis=(1, 3))
    return np.where(den > 0, k * k * (p * w).sum(axis=(1, 3)) / np.where(den > 0, den, 1.0), 1.0)


def carry_fields(fields: tuple[np.ndarray, ...], shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Fields of the 0.05-degree grid carried to a finer grid of ``shape`` nested in it: each
    cell takes its reference cell's value.  For the hold scale and the urban index (issue
    14.5): a quarter of a town is as urban as the town and holds a quarter of its garrison
    (the hold level is also scaled by ``area_factor``), rather than its densest quarter being
    a city and its outskirts countryside."""
    R, C = shape
    k = R // fields[0].shape[0]
    rows, cols = np.arange(R) // k, np.arange(C) // k
    return tuple(f[rows][:, cols] for f in fields)


def former_allies(hostility0: np.ndarray, isis: int, max_hostility: float) -> np.ndarray:
    """Former co-belligerents ``[F, F]``: both fought ISIS and were not at war with each
    other (hostility below ``max_hostility``) at the start."""
    n = hostility0.shape[0]
    out = np.zeros((n, n), bool)
    if isis >= 0:
        anti = hostility0[:, isis] > 0
        out = anti[:, None] & anti[None, :] & (hostility0 < max_hostility)
        out[isis, :] = out[:, isis] = False
        np.fill_diagonal(out, False)
    return out


def ground_value(geo: Geography, weights: list[dict]) -> np.ndarray:
    """Value of ground ``[F, R, C]``: ``0.05 + sum_k w_k x_k`` over normalised log population,
    key places, oil and border cells, with each faction's ``value_weights``."""
    popv = np.log1p(geo.population) / max(np.log1p(geo.population.max()), 1e-9)
    terms = {"population": popv, "key_place": geo.key_place, "oil": geo.oil,
             "border": geo.border.astype(np.float32)}
    return np.stack([0.05 + sum(w.get(k, 0.0) * v for k, v in terms.items())
                     for w in weights]).astype(np.float32)


def foreign_fighters(cfg: Config, isis: str) -> float:
    """ISIS's foreign fighters at the start: its fighters (times its strength multiplier)
    times its ``foreign_fighter_share``; 0 without ISIS."""
    fc = cfg.factions.get(isis)
    if fc is None:
        return 0.0
    return fc.fighters * fc.foreign_fighter_share * cfg.scenario.strength_multiplier.get(isis, 1.0)


# ------------------------------------------------------------------ civilians
def settlement_regions(geo: Geography) -> dict:
    """Regions = Voronoi areas of the settlements (one per cell, the most populous):
    ``regmap`` (region per cell, -1 outside), ``sel`` (place index per region),
    ``region_cell`` (flat cell of each settlement) and ``region_pop0``."""
    g = geo
    pl = g.places
    ok = g.grid.contains(pl.row, pl.col)
    rr, cc = np.clip(pl.row, 0, g.shape[0] - 1), np.clip(pl.col, 0, g.shape[1] - 1)
    ok &= g.theatre[rr, cc]
    ok &= ~((pl.suburb_of != "") & np.isnan(pl.population))
    sel = np.flatnonzero(ok)
    order = sel[np.argsort(-np.nan_to_num(pl.population[sel]))]
    _, first = np.unique(rr[order] * g.shape[1] + cc[order], return_index=True)
    sel = order[np.sort(first)]
    seeds = np.ones(g.shape, bool)
    seeds[rr[sel], cc[sel]] = False
    region_at = np.full(g.shape, -1, np.int64)
    region_at[rr[sel], cc[sel]] = np.arange(sel.size)
    _, (ir, ic) = ndimage.distance_transform_edt(seeds, return_indices=True)
    regmap = np.where(g.theatre, region_at[ir, ic], -1)
    flat = regmap.ravel()
    inside = flat >= 0
    pop0 = np.bincount(flat[inside], weights=g.population.ravel()[inside], minlength=sel.size)
    return {"regmap": regmap, "sel": sel, "region_names": pl.name[sel], "region_pop0": pop0,
            "region_cell": (rr[sel] * g.shape[1] + cc[sel]).astype(np.int64)}


def communities(geo: Geography, regions: dict, identity_shares: dict) -> CommunityTable:
    """Communities = settlement region x identity group, with the identity shares of the
    region's governorate (``population/identity_2017``); groups of < 1 person are dropped."""
    pl, sel, pop0 = geo.places, regions["sel"], regions["region_pop0"]
    default = identity_shares.get("default", {"sunni_arab": 1.0})
    reg, ident, pop = [], [], []
    for k, p in enumerate(sel):
        shares = identity_shares.get(str(pl.admin1[p]), default)
        tot = sum(shares.values()) or 1.0
        for name, s in shares.items():
            if s > 0 and pop0[k] * s / tot >= 1.0:
                reg.append(k)
                ident.append(IDENTITIES.index(name))
                pop.append(pop0[k] * s / tot)
    return CommunityTable(reg, ident, pop, regions["region_cell"][np.array(reg, np.int64)])


#: countries of ``sim/data/history/displacement_stock_2017-07.csv`` and their ISO 3 codes
STOCK_COUNTRIES = {"Syria": "SYR", "Iraq": "IRQ"}


def community_places(geo: Geography, regions: dict, table: CommunityTable) -> tuple[np.ndarray, np.ndarray]:
    """Each community's country (index into ``geo.country_names``) and governorate (index into
    ``geo.admin1_names``, -1 none), read at its settlement's cell."""
    cell = regions["region_cell"][table.region]
    return geo.country.ravel()[cell].astype(np.int64), geo.admin1.ravel()[cell].astype(np.int64)


def initial_displacement(geo: Geography, regions: dict, table: CommunityTable,
                         stock: dict | None = None,
                         besieged: np.ndarray | None = None) -> dict[str, float]:
    """Put the displacement stock of 1 July 2017 into the communities (in place) and return the
    totals placed (``idp_<country>``, ``abroad_<country>``).

    ``stock`` is :func:`sim.history_data.load_displacement_stock` (read if ``None``).  Rule:

    * **IDPs** are counted where they shelter, as displaced members of the communities of their
      host governorate: a governorate the source lists (Iraq: Nineveh, Duhok, Erbil) gets its
      figure, the rest of the national figure is spread over the communities of the country's
      other governorates: every community gives the same share of its people
      (``idp = pop0 * stock / people``, at most ``MAX_IDP_SHARE``).  They shelter at
      their community's settlement, so the people present in a region do not change; they
      leave the stock by the same rules as anyone displaced (return when the area is safe,
      death, moving on).  They shelter only in communities outside ``besieged`` (per
      community, bool; the model passes the communities whose settlement ISIS holds at the
      start): in July 2017 the caliphate's towns were under assault or siege (Raqqa since
      6 June, Tal Afar, Hawija, the Euphrates valley) and the counted IDPs (IOM DTM, OCHA)
      sheltered in camps and host communities across the lines, not in them.  Placed inside a
      besieged town they would all be driven on in the first week, a transient of the start
      (224,000 "displaced again" in Raqqa governorate in week 1 at 0.05 deg before this rule).
      What the other communities cannot hold (``MAX_IDP_SHARE``) shelters in the besieged.
    * **Refugees abroad** are people of the country living outside it: each community's
      ``pop0`` grows by its share of the national refugee figure, in proportion to its people,
      and the same number starts ``abroad``.  The people in the country (the map's population)
      do not change.

    ``home + idp + abroad + dead == pop0`` holds after the call.  The remaining initial stock is
    tracked in ``idp_init`` and ``abroad_init``."""
    if stock is None:
        from .history_data import load_displacement_stock
        stock = load_displacement_stock()
    country, gov = community_places(geo, regions, table)
    placed: dict[str, float] = {}
    idp = np.zeros_like(table.pop0)
    abroad = np.zeros_like(table.pop0)
    host = np.ones(len(table.pop0), bool) if besieged is None else ~np.asarray(besieged, bool)
    for name, cd in stock.items():
        iso = STOCK_COUNTRIES.get(name)
        if iso not in geo.country_names:
            continue
        inc = country == geo.country_names.index(iso)
        if not inc.any():
            continue
        targets = dict(cd.idp_by_governorate)
        listed = np.isin(gov, [geo.admin1_names.index(g) for g in targets if g in geo.admin1_names])
        for g, v in targets.items():
            if g in geo.admin1_names:
                idp += _place(table.pop0, inc & (gov == geo.admin1_names.index(g)), host, v)
        rest = float(cd.idp_stock) - float(sum(v for g, v in targets.items() if g in geo.admin1_names))
        idp += _place(table.pop0, inc & ~listed, host, rest)
        placed[f"idp_{iso}"] = float(idp[inc].sum())
        if cd.refugee_stock:
            share = table.pop0[inc] / table.pop0[inc].sum()
            abroad[inc] = cd.refugee_stock * share
            placed[f"abroad_{iso}"] = float(abroad[inc].sum())
    table.pop0 = table.pop0 + abroad
    table.home = table.pop0 - idp - abroad
    table.idp, table.abroad = idp, abroad
    table.idp_init, table.abroad_init = idp.copy(), abroad.copy()
    return placed


def initial_stock(cfg: Config, geo: Geography, regions: dict, table: CommunityTable,
                  besieged_cells: np.ndarray | None = None) -> dict[str, float]:
    """:func:`initial_displacement` on the real map when ``displacement.initial_stock`` is on;
    otherwise (and on synthetic maps) nobody is displaced at the start.  ``besieged_cells``
    (``[R, C]`` bool, the cells ISIS holds at the start): the communities whose settlement lies
    there host IDPs only where the others of their governorate cannot (``MAX_IDP_SHARE``).
    Returns the totals."""
    if cfg.displacement.initial_stock and cfg.geography.kind == "real":
        besieged = None if besieged_cells is None else \
            np.asarray(besieged_cells, bool).ravel()[regions["region_cell"][table.region]]
        return initial_displacement(geo, regions, table, besieged=besieged)
    return {}


def _place(pop: np.ndarray, sel: np.ndarray, host: np.ndarray, total: float) -> np.ndarray:
    """IDPs per community: ``total`` spread over the communities of ``sel`` that may host
    (``host``) in proportion to their people, at most ``MAX_IDP_SHARE`` of each; what they
    cannot hold over the others of ``sel`` (same rule)."""
    out = np.zeros_like(pop)
    first = sel & host
    out[first] = _spread(pop[first], total)
    out[sel & ~host] = _spread(pop[sel & ~host], total - float(out[first].sum()))
    return out


MAX_IDP_SHARE = 0.6  # at most this share of a governorate's people counted as its IDPs


def _spread(pop: np.ndarray, total: float) -> np.ndarray:
    """``total`` shared over ``pop`` in proportion, at most ``MAX_IDP_SHARE`` of each."""
    tot = float(pop.sum())
    if tot <= 0:
        return np.zeros_like(pop)
    return pop * min(total / tot, MAX_IDP_SHARE)


def destinations(geo: Geography, regions: dict, community_region: np.ndarray) -> dict:
    """FLEE locations: key places and towns >= 50k (all regions if none), with the distance
    (km) from every community to each (``dest_dist``), their capacity (people) and each
    region's distance to the nearest foreign border (``region_border_km``)."""
    g, pl, sel = geo, geo.places, regions["sel"]
    other = ~g.theatre & (g.country >= 0) & ~g.lake
    d_out = ndimage.distance_transform_edt(~other) * g.grid.cell_km
    dest = np.flatnonzero(pl.key[sel] | (np.nan_to_num(pl.population[sel]) >= 50_000))
    if dest.size == 0:
        dest = np.arange(sel.size)
    lat_r, lon_r = pl.lat[sel], pl.lon[sel]
    return {"region_border_km": d_out.ravel()[regions["region_cell"]], "dest_region": dest,
            "dest_dist": haversine_km(lat_r[community_region][:, None],
                                      lon_r[community_region][:, None],
                                      lat_r[dest][None, :], lon_r[dest][None, :]),
            "dest_capacity": regions["region_pop0"][dest]}


# ------------------------------------------------------------------ forces
def garrison_weights(geo: Geography) -> np.ndarray:
    """Where a faction stations its holding forces: a base weight everywhere, more in
    populated cells (sqrt of people) and in key places.  Base and people weigh per reference
    area (density, :func:`ref_people`), a key place per place, so a region gets the same
    share on every grid."""
    af = area_factor_of(geo)
    return (af * (0.02 + np.sqrt(ref_people(geo) / 5000.0)) + 5.0 * geo.key_place).astype(np.float32)


def initial_garrison(geo: Geography, fc, own: np.ndarray, total: float, base: np.ndarray,
                     real: bool) -> np.ndarray:
    """Garrisons at the start: the fighters known to be around given places
    (``garrison_areas``, capped at ``garrison_areas_max_share`` of the total and scaled down
    to fit) spread by weight inside each area; the rest by weight over all own ground."""
    g = geo
    out = np.zeros(g.shape, np.float64)
    areas = []
    for a in (fc.garrison_areas if real else []):
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
    w = np.where(own, base, 0.0)
    out += w * ((total - out.sum()) / w.sum())
    return out.astype(np.float32)


def unit_positions(owner: np.ndarray, i: int, hostility_i: np.ndarray, value_i: np.ndarray,
                   window: int, n_units: int, rng: np.random.Generator,
                   start: np.ndarray | None = None) -> np.ndarray:
    """Flat cells of faction ``i``'s units at the start: the HQ's opening deployment on own
    cells facing valuable enemy or ungoverned ground within a unit's reach (probability
    proportional to the value of the best cell in reach, to the 4th power).  ``start``
    restricts the cells a unit may start on (default: all of the faction's ground)."""
    own = (owner == i) if start is None else start
    others = (owner >= 0) & (owner != i)
    hostile = others & (hostility_i[np.where(owner >= 0, owner, 0)] > 0)
    target = hostile | (owner == UNGOVERNED)
    reach = ndimage.maximum_filter(np.where(target, value_i, 0.0), size=int(window_cover(window)[0]))
    front = own & (reach > 0)
    cand = np.flatnonzero(front if front.any() else own)
    p = (reach.ravel()[cand] if front.any() else value_i.ravel()[cand]).astype(np.float64) ** 4
    return rng.choice(cand, size=n_units, replace=cand.size < n_units, p=p / p.sum())


def station_weights(garrison: np.ndarray, owner: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Where each faction keeps its garrisons from now on: the base weights plus, with equal
    total mass, the shape of its opening deployment (strongholds stay strongholds)."""
    out = np.empty_like(garrison)
    for i in range(garrison.shape[0]):
        mass = float(base[owner == i].sum())
        g0 = float(garrison[i].sum())
        out[i] = base + (garrison[i] * (mass / g0) if g0 > 0 else 0.0)
    return out


def deploy_forces(cfg: Config, geo: Geography, names: list[str], owner: np.ndarray,
                  strength0: np.ndarray, hostility: np.ndarray, value: np.ndarray,
                  unit_window: np.ndarray, rng: np.random.Generator, allowed: np.ndarray):
    """The opening deployment: each faction's fighters split into garrisons and up to
    ``max_units`` mobile units of ``unit_size`` (``unit_share`` of its strength).  Pockets
    (every piece of a faction's ground but its main ground, :mod:`sim.initial_map`) get their
    sourced fighters (else a share by weight); the rest of the garrison spreads over the main
    ground (:func:`initial_garrison`), where the units start too (:func:`unit_positions`,
    ``init`` stream; never in a pocket they cannot leave).  A faction with no ground at the
    start is not in the theatre (``strength0`` set to 0 in place).  Returns ``(garrison
    [F, R, C], station weights, main ground [F, R, C], unit factions, unit rows, unit cols,
    unit sizes)``."""
    garrison = np.zeros((len(names), *geo.shape), np.float32)
    main_ground = np.zeros((len(names), *geo.shape), bool)
    base = garrison_weights(geo)
    real = cfg.geography.kind == "real"
    pockets = initial_map.read_pockets() if real else []
    uf, cells, us = [], [], []
    for i, f in enumerate(names):
        fc = cfg.factions[f]
        own = owner == i
        if not own.any():
            strength0[i] = 0.0
            continue
        total = strength0[i]
        n_units = int(min(fc.max_units, np.floor(fc.unit_share * total / fc.unit_size)))
        rest = total - n_units * fc.unit_size
        ps = initial_map.pieces(owner, i, geo.grid, pockets, f)
        in_pockets, main = initial_map.pocket_garrisons(ps, base, rest, fc.garrison_areas_max_share)
        main_ground[i] = main
        garrison[i] = in_pockets + initial_garrison(geo, fc, main, rest - float(in_pockets.sum()),
                                                    base, real)
        if n_units:
            start = main & allowed[i] if (main & allowed[i]).any() else main
            cells += list(unit_positions(owner, i, hostility[i], value[i], unit_window[i],
                                         n_units, rng, start))
            uf += [i] * n_units
            us += [fc.unit_size] * n_units
    r, c = np.divmod(np.asarray(cells, np.int64), geo.shape[1])
    return garrison, station_weights(garrison, owner, base), main_ground, uf, list(r), list(c), us
