"""Typed configuration schema and validation.

The dataclasses here are the schema; the YAML files under ``configs/`` fill them in and
``sim.cli`` registers them in Hydra's ConfigStore (this module never imports Hydra).
:func:`validate` checks a resolved config before anything runs and raises
:class:`ConfigError` with one line naming the key and the allowed range.

Ranges live next to the fields as ``field(metadata={"range": (lo, hi)})`` so the rule and
the error message cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any

FACTIONS = (
    "ISIS",
    "SYRIAN_GOV",
    "SDF",
    "SYRIAN_REBELS",
    "ISLAMIST_REBELS",
    "TURKEY_SNA",
    "US_COALITION",
    "IRAQI_GOV",
    "PMF",
    "KRG",
)

IDENTITIES = ("sunni_arab", "shia_arab", "kurd", "turkmen", "christian_yazidi", "alawite_druze")

DOCTRINES = ("conventional", "insurgent", "hybrid")


class ConfigError(ValueError):
    """A bad configuration value; ``str(err)`` is one line naming the key."""


MISSING = "???"  # OmegaConf's mark of a value that must be given (in configs/)


def rng_(lo: float, hi: float, default: Any = MISSING, **kw) -> Any:
    """A dataclass field with an allowed closed range [lo, hi].  Without ``default`` the value
    must come from the YAML files (the mechanism parameters: configs/mechanisms/), so there is
    one source of each value."""
    return field(default=default, metadata={"range": (lo, hi), "required": default is MISSING}, **kw)


def _list(*items):
    return field(default_factory=lambda: list(items))


def _dict(**items):
    return field(default_factory=lambda: dict(items))


# --------------------------------------------------------------------------------------
# geography
# --------------------------------------------------------------------------------------
@dataclass
class GeographyConfig:
    name: str = "res_005"
    kind: str = "real"  # real | synthetic
    resolution_deg: float = rng_(0.005, 1.0, default=0.05)
    lon_min: float = rng_(-180, 180, default=34.5)
    lon_max: float = rng_(-180, 180, default=48.9)
    lat_min: float = rng_(-90, 90, default=28.9)
    lat_max: float = rng_(-90, 90, default=38.0)
    memory_budget_mb: float = rng_(1, 1_000_000, default=4000.0)
    population_kernel_km: float = rng_(0.5, 100, default=6.0)
    missing_place_population: float = rng_(0, 1e6, default=3000.0)
    rural_density_per_km2: dict[str, float] = _dict(
        river_valley=60.0, irrigated_plain=90.0, rainfed_plain=35.0, steppe=6.0, desert=0.4,
        hills=20.0, mountains=12.0, marsh=8.0, lake=0.0, sea=0.0,
    )
    population_target: dict[str, float] = _dict(SYR=18_300_000.0, IRQ=37_600_000.0)
    movement_cost: dict[str, float] = _dict(
        river_valley=1.0, irrigated_plain=1.2, rainfed_plain=1.0, steppe=1.1, desert=1.4,
        hills=2.0, mountains=4.0, marsh=5.0, lake=50.0, sea=100.0,
    )
    major_river_crossing_cost: float = rng_(0, 1000, default=6.0)
    river_crossing_cost: float = rng_(0, 1000, default=1.5)
    theatre_countries: list[str] = _list("SYR", "IRQ")
    # synthetic map only
    synthetic_rows: int = rng_(4, 2000, default=24)
    synthetic_cols: int = rng_(4, 2000, default=36)


# --------------------------------------------------------------------------------------
# factions
# --------------------------------------------------------------------------------------
@dataclass
class GarrisonAreaConfig:
    """Fighters a faction is known to have had around a place at the start (input data)."""

    place: str = ""  # a name (or alternative spelling) in the gazetteer (places.csv)
    radius_km: float = rng_(0.1, 500, default=10.0)
    fighters: float = rng_(0, 1_000_000, default=0.0)
    source: str = ""


@dataclass
class FactionConfig:
    name: str = "???"
    label: str = ""
    colour: str = "#888888"
    fighters: float = rng_(0, 2_000_000, default=10_000.0)
    doctrine: str = "conventional"
    firepower: float = rng_(0, 10, default=0.02)  # kills per fighter-week of direct fire
    unit_size: float = rng_(10, 100_000, default=2000.0)
    unit_share: float = rng_(0, 1, default=0.5)
    max_units: int = rng_(0, 500, default=12)
    speed_km_week: float = rng_(0, 1000, default=60.0)
    projection_km: float = rng_(0, 200, default=12.0)
    garrison_min: float = rng_(0, 1000, default=2.0)  # fighters per cell needed to hold it
    attack_ratio: float = rng_(0.1, 20, default=1.5)  # GeoSim power ratio to attack
    recruitment_rate: float = rng_(0, 0.1, default=0.0005)  # recruits per supporter-week
    resources: float = rng_(0, 10, default=1.0)
    morale: float = rng_(0, 5, default=1.0)
    foreign_fighter_share: float = rng_(0, 1, default=0.0)
    countries: list[str] = _list("SYR", "IRQ")
    legitimacy: dict[str, float] = _dict()
    value_weights: dict[str, float] = _dict(population=1.0, key_place=2.0, oil=1.0, border=0.5)
    garrison_areas: list[GarrisonAreaConfig] = _list()
    garrison_areas_max_share: float = rng_(0, 1, default=0.7)
    # issue 13: core ground (governorate names of the map's admin-1 layer) it falls back to and
    # never gives up without a fight; whether it withdraws from hopeless ground (ISIS: no)
    core_areas: list[str] = _list()
    withdraws: bool = True
    # neighbouring countries (ISO-3, outside the theatre) whose border stays open to it: its
    # patron's own territory; a piece of its ground next to one is supplied across it and is
    # never besieged (rules/sieges.py `exits`)
    supply_countries: list[str] = _list()
    takes_deals: bool = True  # its besieged pieces may surrender under a deal (rules/sieges.py)
    # home guard: this share of its start garrison on its core ground stays there (locally
    # raised defence forces): it neither spreads elsewhere nor replaces the units' losses
    home_guard: float = rng_(0, 1, default=0.0)


# --------------------------------------------------------------------------------------
# scenario and mechanisms
# --------------------------------------------------------------------------------------
@dataclass
class AirSupportConfig:
    provider: str = "US_COALITION"
    recipients: list[str] = _list()
    against: list[str] = _list()  # empty = against every faction the recipient fights
    strength: float = rng_(0, 20, default=1.0)  # firepower multiplier added (1 = doubles)
    start: str = ""  # ISO date; empty = from the start
    end: str = ""  # ISO date; empty = to the end


@dataclass
class DeconflictionConfig:
    factions: list[str] = _list()
    line: str = "Euphrates"
    country: str = "SYR"
    sides: list[str] = _list()  # one side ("north"/"south") per faction of `factions`
    line_cells: str = "both"  # who may hold the cells the line runs through: north, south, both,
    #                           majority (north if > north_share of the cell is north), or towns
    #                           (the bank of the cell's largest place; majority where none)
    north_share: float = rng_(0, 1, default=0.5)
    until: str = ""
    hold_line: bool = False  # each side holds its line: its units make no active front beyond it


@dataclass
class ZoneConfig:
    """A truce zone (de-escalation zone): ground ``factions`` may not take or hold while one of
    the ``closed`` periods runs (a deal its patron signed); open again between them."""

    factions: list[str] = _list()
    areas: list[str] = _list()  # governorates (admin-1 names) of the zone
    buffer_km: float = rng_(0, 200, default=0.0)  # the zone reaches this far beyond them (km)
    points: list[list[float]] = _list()  # [[lat, lon, radius_km], ...]: and the ground this near
    banks: list[list[str]] = _list()  # [[river, north|south, country], ...]: and the country's
    #                                   ground on that side of the river (geography.river_side)
    except_points: list[list[float]] = _list()  # [[lat, lon, radius_km], ...]: but not this ground
    closed: list[list[str]] = _list()  # [[start, end], ...] ISO dates; end "" = open-ended
    hold_line: bool = False  # while closed, the barred factions hold their line there (an
    #                          offensive not yet launched): their units make no active front


@dataclass
class EventConfig:
    """A change of hostility at a date or when a condition first holds."""

    name: str = ""
    date: str = ""
    when_isis_share_below: float = rng_(-1, 1, default=-1.0)  # <0 = unused
    set_hostility: list[list[Any]] = _list()  # [[A, B, value], ...]
    withdraw: list[str] = _list()  # factions whose ground forces leave the theatre
    reinforce: dict[str, float] = _dict()  # faction -> fighters a patron adds (on its main ground)
    # faction -> [[lat, lon], ...]: the reinforcement enters from outside the theatre as mobile
    # units at the theatre cells nearest these points (border crossings), split evenly
    entry: dict[str, Any] = _dict()
    # faction -> [[lat, lon, radius_km], ...]: a deal in which the faction hands over its ground
    # this near the points (it becomes ungoverned, closed to the faction from then on, and its
    # garrison falls back to the nearest ground it keeps); who fills it is the model's
    cede: dict[str, Any] = _dict()
    # faction -> [[lat, lon, radius_km], ...]: the offensive's main effort (a dated decision to
    # concentrate): from the event on, the faction's HQ weights objectives on this ground by
    # reach.main_effort_weight (sim.aftermath.main_effort); who takes it is an outcome
    offensive: dict[str, Any] = _dict()


@dataclass
class ScenarioConfig:
    name: str = "baseline_2017"
    question: str = ""
    start_date: str = "2017-07-01"
    weeks: int = rng_(1, 5000, default=131)
    step_days: int = rng_(1, 31, default=7)
    hostility: dict[str, Any] = _dict()  # name -> (name -> probability); Any for OmegaConf merges
    # mappings of name -> AirSupportConfig / DeconflictionConfig / EventConfig.  Typed as Any for
    # OmegaConf so that entries can be added from the command line
    # (``+scenario.events.x.date=2018-01-01``); :func:`from_dict` checks and converts them.
    air_support: dict[str, Any] = _dict()
    deconfliction: dict[str, Any] = _dict()
    zones: dict[str, Any] = _dict()  # name -> ZoneConfig (truce zones; scenario.dated_hostility)
    events: dict[str, Any] = _dict()
    foreign_fighter_exit_rate: float = rng_(0, 1, default=0.01)
    isis_cohesion: float = rng_(0, 10, default=1.0)
    strength_multiplier: dict[str, float] = _dict()
    former_allies_max_hostility: float = rng_(0, 1, default=0.1)
    # issue 13: latent rivalries (name -> (name -> [0, 1])) that resurface as the common enemy
    # shrinks (rules/alignment.py); dated_hostility=false switches off every set_hostility event
    latent_hostility: dict[str, Any] = _dict()
    dated_hostility: bool = True


@dataclass
class CombatConfig:
    contact_threshold: float = rng_(0, 1e6)
    guerrilla_area_factor: float = rng_(0, 10_000)
    loss_noise: float = rng_(0, 5)  # gamma noise CV on losses
    air_housing_damage: float = rng_(0, 1)
    ground_housing_damage: float = rng_(0, 1)
    civilian_harm: float = rng_(0, 1)
    max_loss_fraction: float = rng_(0, 1)
    retreat_loss_fraction: float = rng_(0, 1)
    static_front_intensity: float = rng_(0, 1)
    unit_centre_share: float = rng_(0, 1)
    urban_loss_shield: float = rng_(0, 20)
    urban_band_km: float = rng_(0, 10)  # 0: off
    prepared_defence: float = rng_(1, 5)  # posture factor of a holder dug in (1: off)
    prepared_weeks: int = rng_(0, 520)  # weeks a cell must be held to count as prepared
    max_density_km2: float = rng_(0.1, 1e5)


@dataclass
class ControlConfig:
    capture_ratio: float = rng_(1, 100)
    full_share: float = rng_(0, 1)
    dominant_share: float = rng_(0, 1)
    vacancy_weeks: int = rng_(0, 100)
    urban_defence: float = rng_(0, 20)
    empty_hold_share: float = rng_(0, 1)
    hold_population: float = rng_(1, 1e7)
    garrison_move_km: float = rng_(0, 1000)
    seed_garrison_share: float = rng_(0, 1)
    offensive_hostility: float = rng_(0, 1)
    road_factor: float = rng_(0, 100)


@dataclass
class AssaultConfig:
    sector_ratio: float = rng_(1, 8)
    urban_defence: float = rng_(0, 4)
    clearing_rate_km: float = rng_(0.01, 10)  # km of built-up ground cleared per week at the 3:1 threshold
    clearing_odds_cap: float = rng_(1, 20)  # the advance rate grows with the odds up to this
    built_density: float = rng_(1000, 50000)  # people per km2 of built-up ground
    defender_density: float = rng_(5, 1000)  # fighters per km2 of defended built-up ground


@dataclass
class SiegesConfig:
    siege_ratio: float = rng_(0.5, 10)
    delay_weeks: int = rng_(1, 52)
    evac_share: float = rng_(0, 1)
    civilian_share: float = rng_(0, 1)


@dataclass
class WithdrawalConfig:
    withdraw_ratio: float = rng_(1, 20)
    limited_ratio: float = rng_(0.25, 20)
    limited_reach_km: float = rng_(5, 100)


@dataclass
class ReachConfig:
    dist_scale_km: float = rng_(10, 2000)
    main_effort_weight: float = rng_(1, 1000)
    staging_weeks: float = rng_(0, 12)
    stuck_share_max: float = rng_(0, 1)


@dataclass
class AlignmentConfig:
    onset: float = rng_(0, 0.9)
    shape: float = rng_(0.25, 4)
    settle_share: float = rng_(0, 1)


@dataclass
class HoldoutsConfig:
    max_factor: float = rng_(1, 40)
    onset: float = rng_(0.01, 1)
    settled_density: float = rng_(0, 1000)  # people per km2: ground that counts as held (defeat date)
    min_pocket_fighters: float = rng_(0, 10000)  # garrison a piece needs to be fortified
    besieged_underground_share: float = rng_(0, 1, default=0.2)  # goes to ground from a besieged pocket's lost cells
    fallback_km: float = rng_(0, 500)  # fighters going to ground with a held pocket this near fall back into it


@dataclass
class InsurgencyConfig:
    go_underground_share: float = rng_(0, 1)
    attack_rate: float = rng_(0, 1)  # attacks per hidden fighter-week
    detection_rate: float = rng_(0, 1)
    attack_lethality: float = rng_(0, 100)
    recruitment_rate: float = rng_(0, 0.1)
    insurgent_hold_factor: float = rng_(1, 1000)


@dataclass
class DisplacementConfig:
    flee_rate_violence: float = rng_(0, 100)
    flee_rate_damage: float = rng_(0, 100)
    flee_rate_persecution: float = rng_(0, 100)
    flee_rate_threat: float = rng_(0, 100)
    threat_km: float = rng_(0, 500)
    threat_advance_km: float = rng_(1, 500)  # km of approach in a week that is a full week's fear
    abroad_share: float = rng_(0, 1)
    return_rate: float = rng_(0, 1)
    return_rate_abroad: float = rng_(0, 1)
    return_rate_threat: float = rng_(0, 1)
    return_quiet_weeks: int = rng_(0, 52)
    safe_damage: float = rng_(0, 1)
    walk_km_week: float = rng_(1, 1000)
    host_ratio: float = rng_(0.01, 100)  # displaced a region can host per resident at the start
    rebuild_rate: float = rng_(0, 1)
    violence_scale: float = rng_(0.001, 1e4)
    violence_threshold: float = rng_(0, 1)
    initial_stock: bool = True


@dataclass
class GrievanceConfig:
    hardship_weight_damage: float = rng_(0, 10)
    hardship_weight_displacement: float = rng_(0, 10)
    hardship_weight_violence: float = rng_(0, 10)
    base_hardship: float = rng_(0, 1)


@dataclass
class OutputConfig:
    plots: bool = True
    gif: bool = True
    map_dates: list[str] = _list("2017-07-01", "2017-11-01", "2018-06-01", "2019-06-01")
    netcdf: bool = True
    dpi: int = rng_(30, 600, default=110)
    # places (gazetteer names) whose controller is recorded; checked against the map's
    # gazetteer before a run (validate_geography)
    watch_places: list[str] = _list()


@dataclass
class Config:
    seed: int = rng_(0, 2**32 - 1, default=20170701)
    replicate: int = rng_(0, 1_000_000, default=0)
    geography: GeographyConfig = field(default_factory=GeographyConfig)
    factions: dict[str, FactionConfig] = _dict()
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    combat: CombatConfig = field(default_factory=CombatConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    insurgency: InsurgencyConfig = field(default_factory=InsurgencyConfig)
    assault: AssaultConfig = field(default_factory=AssaultConfig)
    sieges: SiegesConfig = field(default_factory=SiegesConfig)
    withdrawal: WithdrawalConfig = field(default_factory=WithdrawalConfig)
    reach: ReachConfig = field(default_factory=ReachConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    holdouts: HoldoutsConfig = field(default_factory=HoldoutsConfig)
    displacement: DisplacementConfig = field(default_factory=DisplacementConfig)
    grievance: GrievanceConfig = field(default_factory=GrievanceConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    identity_shares: dict[str, dict[str, float]] = _dict()
    output_dir: str = "."
    # refuse a run whose estimated wall time exceeds this many minutes (0 = no limit);
    # see sim.semantic.estimated_minutes
    time_budget_minutes: float = rng_(0, 1e7, default=0.0)


# --------------------------------------------------------------------------------------
# conversion and validation
# --------------------------------------------------------------------------------------
def _build(cls, data: Any, path: str):
    """Build dataclass ``cls`` from a plain mapping, rejecting unknown keys."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(path, unknown[0])}: unknown key (allowed: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        tp = _ENTRY_TYPES.get((cls.__name__, name), f.type)
        kwargs[name] = _convert(tp, data[name], _join(path, name))
    missing = [n for n, f in fields.items() if n not in kwargs and f.metadata.get("required")]
    if missing:
        raise ConfigError(f"{_join(path, missing[0])}: missing value (set it in configs/)")
    obj = cls(**kwargs)
    for (owner, name), tp in _ENTRY_TYPES.items():
        if owner == cls.__name__ and name not in kwargs:  # defaults: convert them too
            setattr(obj, name, _convert(tp, getattr(obj, name), _join(path, name)))
    return obj


_ENTRY_TYPES = {
    ("ScenarioConfig", "air_support"): "dict[str, AirSupportConfig]",
    ("ScenarioConfig", "deconfliction"): "dict[str, DeconflictionConfig]",
    ("ScenarioConfig", "zones"): "dict[str, ZoneConfig]",
    ("ScenarioConfig", "events"): "dict[str, EventConfig]",
    ("ScenarioConfig", "hostility"): "dict[str, dict[str, float]]",
    ("ScenarioConfig", "latent_hostility"): "dict[str, dict[str, float]]",
}


_NESTED = {
    "GeographyConfig": GeographyConfig,
    "ScenarioConfig": ScenarioConfig,
    "CombatConfig": CombatConfig,
    "ControlConfig": ControlConfig,
    "InsurgencyConfig": InsurgencyConfig,
    "AssaultConfig": AssaultConfig,
    "SiegesConfig": SiegesConfig,
    "WithdrawalConfig": WithdrawalConfig,
    "ReachConfig": ReachConfig,
    "AlignmentConfig": AlignmentConfig,
    "HoldoutsConfig": HoldoutsConfig,
    "DisplacementConfig": DisplacementConfig,
    "GrievanceConfig": GrievanceConfig,
    "OutputConfig": OutputConfig,
}


def _convert(tp: Any, value: Any, path: str):
    tp = str(tp)
    if tp in _NESTED:
        return _build(_NESTED[tp], value, path)
    if tp == "list[GarrisonAreaConfig]":
        return [_build(GarrisonAreaConfig, v, f"{path}[{i}]") for i, v in enumerate(_as_list(value, path))]
    if tp == "dict[str, FactionConfig]":
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of faction name -> faction config")
        return {k: _build(FactionConfig, v, _join(path, k)) for k, v in value.items()}
    for name, cls in (("AirSupportConfig", AirSupportConfig), ("DeconflictionConfig", DeconflictionConfig),
                      ("EventConfig", EventConfig), ("ZoneConfig", ZoneConfig)):
        if tp == f"dict[str, {name}]":
            if value is None:
                return {}
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected a mapping of name -> {name[:-6].lower()} settings")
            return {str(k): _build(cls, v, _join(path, str(k))) for k, v in value.items() if v is not None}
    if tp in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{path} = {value!r}: expected a number") from None
        if tp == "int":
            if isinstance(value, float) and (math.isnan(value) or value != int(value)):
                raise ConfigError(f"{path} = {value!r}: expected a whole number")
            return int(value)
        return float(value)
    if tp == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r}: expected true or false")
        return value
    if tp == "str":
        if value is None:
            return ""
        return str(value)
    if tp.startswith("dict[str, float]"):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of name -> number")
        return {str(k): _convert("float", v, _join(path, str(k))) for k, v in value.items()}
    if tp.startswith("dict[str, dict[str, float]]"):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of name -> (name -> number)")
        return {str(k): _convert("dict[str, float]", v, _join(path, str(k))) for k, v in value.items()}
    if tp == "list[str]":
        return [str(v) for v in _as_list(value, path)]
    if tp == "list[list[Any]]":
        return [list(_as_list(v, f"{path}[{i}]")) for i, v in enumerate(_as_list(value, path))]
    return value


def _as_list(value, path):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{path}: expected a list")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def from_dict(data: dict) -> Config:
    """Build and validate a :class:`Config` from a plain (e.g. OmegaConf-resolved) dict."""
    cfg = _build(Config, data, "")
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def _check_ranges(obj: Any, path: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = _join(path, f.name)
        if dataclasses.is_dataclass(value):
            _check_ranges(value, key)
            continue
        if isinstance(value, dict):
            for k, v in value.items():
                if dataclasses.is_dataclass(v):
                    _check_ranges(v, _join(key, k))
        if isinstance(value, list):
            for i, v in enumerate(value):
                if dataclasses.is_dataclass(v):
                    _check_ranges(v, f"{key}[{i}]")
        rng = f.metadata.get("range")
        if rng is None or isinstance(value, bool):
            continue
        lo, hi = rng
        if not isinstance(value, (int, float)) or math.isnan(value) or not (lo <= value <= hi):
            raise ConfigError(f"{key} = {value!r}: allowed range is [{lo:g}, {hi:g}]")


def _check_date(value: str, key: str, allow_empty: bool = True) -> None:
    if allow_empty and value == "":
        return
    try:
        _dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} = {value!r}: expected an ISO date YYYY-MM-DD") from None


def _check_faction(name: str, key: str, known) -> None:
    if name not in known:
        raise ConfigError(f"{key} = {name!r}: unknown faction (allowed: {', '.join(known)})")


def validate(cfg: Config) -> None:
    """Raise :class:`ConfigError` on the first bad value (one line, naming the key)."""
    _check_ranges(cfg, "")
    g = cfg.geography
    if g.kind not in ("real", "synthetic"):
        raise ConfigError(f"geography.kind = {g.kind!r}: allowed values are real, synthetic")
    if g.lon_max <= g.lon_min:
        raise ConfigError("geography.lon_max must be greater than geography.lon_min")
    if g.lat_max <= g.lat_min:
        raise ConfigError("geography.lat_max must be greater than geography.lat_min")
    for k, v in g.rural_density_per_km2.items():
        if not (v >= 0) or math.isinf(v):
            raise ConfigError(f"geography.rural_density_per_km2.{k} = {v!r}: allowed range is [0, inf)")
    for k, v in g.movement_cost.items():
        if not (v > 0) or math.isinf(v):
            raise ConfigError(f"geography.movement_cost.{k} = {v!r}: allowed range is (0, inf)")
    for k, v in g.population_target.items():
        if not (v >= 0) or math.isinf(v):
            raise ConfigError(f"geography.population_target.{k} = {v!r}: allowed range is [0, inf)")

    if not g.theatre_countries:
        raise ConfigError("geography.theatre_countries: at least one country (ISO3 code) is required")

    if not cfg.factions:
        raise ConfigError("factions: at least one faction is required (allowed: " + ", ".join(FACTIONS) + ")")
    known = list(cfg.factions)
    theatre = list(g.theatre_countries)
    for name, fc in cfg.factions.items():
        for c in fc.countries:
            if c not in theatre:
                raise ConfigError(f"factions.{name}.countries = {c!r}: not a theatre country "
                                  f"(allowed: {', '.join(theatre)})")
    for name, fc in cfg.factions.items():
        key = f"factions.{name}"
        if fc.name != name:
            raise ConfigError(f"{key}.name = {fc.name!r}: must equal its key {name!r}")
        if fc.doctrine not in DOCTRINES:
            raise ConfigError(f"{key}.doctrine = {fc.doctrine!r}: allowed values are {', '.join(DOCTRINES)}")
        for ident, v in fc.legitimacy.items():
            if ident not in IDENTITIES:
                raise ConfigError(f"{key}.legitimacy.{ident}: unknown identity group (allowed: {', '.join(IDENTITIES)})")
            if not (0 <= v <= 1):
                raise ConfigError(f"{key}.legitimacy.{ident} = {v!r}: allowed range is [0, 1]")
        for k, v in fc.value_weights.items():
            if k not in ("population", "key_place", "oil", "border"):
                raise ConfigError(f"{key}.value_weights.{k}: unknown value term (allowed: border, key_place, oil, population)")
            if not (v >= 0) or math.isinf(v):
                raise ConfigError(f"{key}.value_weights.{k} = {v!r}: allowed range is [0, inf)")

    s = cfg.scenario
    if not s.name.strip():
        raise ConfigError("scenario.name = '': a scenario needs a name (it names the output folder)")
    _check_date(s.start_date, "scenario.start_date", allow_empty=False)
    for a, row in s.hostility.items():
        _check_faction(a, f"scenario.hostility.{a}", known)
        for b, v in row.items():
            _check_faction(b, f"scenario.hostility.{a}.{b}", known)
            if not (0 <= v <= 1):
                raise ConfigError(f"scenario.hostility.{a}.{b} = {v!r}: allowed range is [0, 1]")
    for i, air in s.air_support.items():
        key = f"scenario.air_support.{i}"
        for r in air.recipients:
            _check_faction(r, f"{key}.recipients", known)
        for r in air.against:
            _check_faction(r, f"{key}.against", known)
        _check_date(air.start, f"{key}.start")
        _check_date(air.end, f"{key}.end")
    for i, d in s.deconfliction.items():
        key = f"scenario.deconfliction.{i}"
        if len(d.factions) != 2:
            raise ConfigError(f"{key}.factions: exactly two factions are required")
        for f in d.factions:
            _check_faction(f, f"{key}.factions", known)
        if len(d.sides) != 2 or any(x not in ("north", "south") for x in d.sides):
            raise ConfigError(f"{key}.sides = {d.sides!r}: give two of north, south")
        if d.line_cells not in ("north", "south", "both", "majority", "towns"):
            raise ConfigError(f"{key}.line_cells = {d.line_cells!r}: allowed values are north, south, both, "
                              "majority, towns")
        _check_date(d.until, f"{key}.until")
        if d.country not in theatre:
            raise ConfigError(f"{key}.country = {d.country!r}: not a theatre country (allowed: {', '.join(theatre)})")
    for i, z in s.zones.items():
        key = f"scenario.zones.{i}"
        for f in z.factions:
            _check_faction(f, f"{key}.factions", known)
        for j, per in enumerate(z.closed):
            if len(per) != 2:
                raise ConfigError(f"{key}.closed[{j}] = {per!r}: expected [start, end]")
            _check_date(str(per[0]), f"{key}.closed[{j}]")
            _check_date(str(per[1]), f"{key}.closed[{j}]")
        for j, pt in enumerate(z.points):
            if len(pt) != 3 or not (0 <= float(pt[2]) <= 500):
                raise ConfigError(f"{key}.points[{j}] = {pt!r}: expected [lat, lon, radius_km], radius in [0, 500]")
        for j, pt in enumerate(z.except_points):
            if len(pt) != 3 or not (0 <= float(pt[2]) <= 500):
                raise ConfigError(f"{key}.except_points[{j}] = {pt!r}: expected [lat, lon, radius_km], radius in [0, 500]")
        for j, b in enumerate(z.banks):
            if len(b) != 3 or b[1] not in ("north", "south") or b[2] not in theatre:
                raise ConfigError(f"{key}.banks[{j}] = {b!r}: expected [river, north|south, country], "
                                  f"country one of {', '.join(theatre)}")
    for i, ev in s.events.items():
        key = f"scenario.events.{i}"
        _check_date(ev.date, f"{key}.date")
        if ev.date == "" and ev.when_isis_share_below < 0 and (ev.set_hostility or ev.withdraw):
            raise ConfigError(f"{key}: give a date or when_isis_share_below")
        for j, item in enumerate(ev.set_hostility):
            if len(item) != 3:
                raise ConfigError(f"{key}.set_hostility[{j}]: expected [FACTION_A, FACTION_B, value]")
            _check_faction(str(item[0]), f"{key}.set_hostility[{j}]", known)
            _check_faction(str(item[1]), f"{key}.set_hostility[{j}]", known)
            try:
                v = float(item[2])
            except (TypeError, ValueError):
                raise ConfigError(f"{key}.set_hostility[{j}] value {item[2]!r}: expected a number in [0, 1]") from None
            if not (0 <= v <= 1):
                raise ConfigError(f"{key}.set_hostility[{j}] value {v!r}: allowed range is [0, 1]")
        for f in ev.withdraw:
            _check_faction(f, f"{key}.withdraw", known)
        for f, v in ev.reinforce.items():
            _check_faction(f, f"{key}.reinforce.{f}", known)
            if not (0 <= v <= 1e6):
                raise ConfigError(f"{key}.reinforce.{f} = {v!r}: allowed range is [0, 1000000]")
        for f, pts in ev.entry.items():
            _check_faction(f, f"{key}.entry.{f}", known)
            if f not in ev.reinforce:
                raise ConfigError(f"{key}.entry.{f}: an entry needs a reinforce.{f}")
            for j, pt in enumerate(pts):
                if len(pt) != 2 or not (-90 <= float(pt[0]) <= 90 and -180 <= float(pt[1]) <= 180):
                    raise ConfigError(f"{key}.entry.{f}[{j}] = {pt!r}: expected [lat, lon] in degrees")
        for field in ("cede", "offensive"):
            for f, pts in getattr(ev, field).items():
                _check_faction(f, f"{key}.{field}.{f}", known)
                for j, pt in enumerate(pts):
                    if len(pt) != 3 or not (-90 <= float(pt[0]) <= 90 and -180 <= float(pt[1]) <= 180
                                            and 0 < float(pt[2]) <= 1000):
                        raise ConfigError(f"{key}.{field}.{f}[{j}] = {pt!r}: expected [lat, lon, radius_km] "
                                          "(degrees; radius in (0, 1000] km)")
    for a, row in s.latent_hostility.items():
        _check_faction(a, f"scenario.latent_hostility.{a}", known)
        for b, v in row.items():
            _check_faction(b, f"scenario.latent_hostility.{a}.{b}", known)
            if not (0 <= v <= 1):
                raise ConfigError(f"scenario.latent_hostility.{a}.{b} = {v!r}: allowed range is [0, 1]")
    for k, v in s.strength_multiplier.items():
        _check_faction(k, f"scenario.strength_multiplier.{k}", known)
        if not (0 <= v <= 100):
            raise ConfigError(f"scenario.strength_multiplier.{k} = {v!r}: allowed range is [0, 100]")
    for d in cfg.output.map_dates:
        _check_date(d, "output.map_dates")
    for gov, shares in cfg.identity_shares.items():
        for ident, v in shares.items():
            if ident not in IDENTITIES:
                raise ConfigError(f"identity_shares.{gov}.{ident}: unknown identity group (allowed: {', '.join(IDENTITIES)})")
            if not (0 <= v <= 1):
                raise ConfigError(f"identity_shares.{gov}.{ident} = {v!r}: allowed range is [0, 1]")
    # an empty scenario (e.g. a scenario file with no content): nobody ever fights anybody
    if not any(v > 0 for row in s.hostility.values() for v in row.values()) and not any(
            float(item[2]) > 0 for ev in s.events.values() for item in ev.set_hostility):
        raise ConfigError("scenario.hostility: no two factions are ever hostile, so nothing would "
                          "happen (an empty scenario? the scenario file must set scenario.hostility)")
    # values that are each in range but do not make sense together (issue 15)
    from .semantic import check as _check_semantics

    _check_semantics(cfg)


def validate_geography(cfg: Config, geo: Any) -> None:
    """Checks that need the map (a :class:`sim.geography.Geography` built for ``cfg``): watched
    places and garrison-area places (real maps; the synthetic map ignores ``garrison_areas``) are
    in its gazetteer, deconfliction lines name one of its rivers, theatre countries exist.
    Raises :class:`ConfigError` (one line, naming the key).  ``sim run`` calls it before the
    run; :func:`sim.runner.build_model` calls it too."""
    for c in cfg.geography.theatre_countries:
        if c not in geo.country_names:
            raise ConfigError(f"geography.theatre_countries = {c!r}: not a country of this map "
                              f"(known: {', '.join(geo.country_names)})")
    for i, name in enumerate(cfg.output.watch_places):
        key = f"output.watch_places[{i}]"
        try:
            k = geo.places.find(name)
        except KeyError as e:  # sim.geography.PlaceNotFound: lists close matches
            raise ConfigError(f"{key} = {name!r}: {e}") from None
        r, c = int(geo.places.row[k]), int(geo.places.col[k])
        if not (0 <= r < geo.shape[0] and 0 <= c < geo.shape[1]) or not geo.theatre[r, c]:
            raise ConfigError(f"{key} = {name!r}: the place is outside the theatre of this map")
    if cfg.geography.kind == "real":
        for name, fc in cfg.factions.items():
            for i, area in enumerate(fc.garrison_areas):
                try:
                    geo.places.find(area.place)
                except KeyError as e:
                    raise ConfigError(f"factions.{name}.garrison_areas[{i}].place: {e}") from None
    for i, d in cfg.scenario.deconfliction.items():
        if d.line not in geo.named_rivers:
            raise ConfigError(f"scenario.deconfliction.{i}.line = {d.line!r}: unknown river "
                              f"(known: {', '.join(sorted(geo.named_rivers))})")
