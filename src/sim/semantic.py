"""Semantic validation: configs whose every value is in range but that do not make sense
together (issue 15, item 2).

:func:`sim.config.validate` checks types, ranges and names one value at a time and then calls
:func:`check`, which looks at values together: a faction hostile to itself, a faction named
twice in a line or a list (or a pair twice in one event), an air-support window that ends
before it starts, thresholds in the wrong order, a run that ends beyond the dates the outputs
can store, a country without people, a colour matplotlib cannot draw, a scenario name that
cannot be a folder name, a synthetic map that runs off the globe, a run longer than the stated
time budget, a faction with no country, every faction at zero fighters, a governorate whose
identity shares are all zero.

Each check raises :class:`~sim.config.ConfigError` with one line: the key and why.
This module imports neither Hydra nor numpy (``matplotlib.colors`` only when colours are
checked, which is after every cheaper check).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from .config import ConfigError

#: the dates the outputs can store (``datetime64[ns]`` in timeseries.parquet and control.nc)
FIRST_DATE = _dt.date(1678, 1, 1)
LAST_DATE = _dt.date(2262, 4, 11)

#: longest scenario name (it names a folder; with the date and token the folder stays < 255 bytes)
MAX_NAME_LEN = 120

#: model throughput used for the time estimate, in cell-steps per second (benchmarks/README.md
#: sets a target of at least 1 million at 0.05 degrees; the estimate assumes three times that,
#: erring on the fast side, so a run is refused only when it is clearly over budget)
CELL_STEPS_PER_SECOND = 3.0e6


def check(cfg: Any) -> None:
    """Raise :class:`ConfigError` on the first inconsistency of ``cfg`` (a range-checked
    :class:`~sim.config.Config`)."""
    _check_factions(cfg)
    _check_hostility(cfg)
    _check_air_support(cfg)
    _check_deconfliction(cfg)
    _check_events(cfg)
    _check_thresholds(cfg)
    _check_calendar(cfg)
    _check_population(cfg)
    _check_names(cfg)
    _check_grid(cfg)
    _check_time_budget(cfg)
    _check_colours(cfg)


# --------------------------------------------------------------------------------------
def _duplicates(items) -> list:
    seen, dup = set(), []
    for x in items:
        if x in seen and x not in dup:
            dup.append(x)
        seen.add(x)
    return dup


def _no_duplicates(items, key: str, what: str) -> None:
    dup = _duplicates(list(items))
    if dup:
        raise ConfigError(f"{key} = {list(items)!r}: {what} {dup[0]!r} is listed twice")


def _check_factions(cfg) -> None:
    _no_duplicates(cfg.geography.theatre_countries, "geography.theatre_countries", "country")
    strength = 0.0
    for name, fc in cfg.factions.items():
        key = f"factions.{name}"
        if not fc.countries:
            raise ConfigError(f"{key}.countries = []: a faction needs at least one country to "
                              "hold ground in")
        _no_duplicates(fc.countries, f"{key}.countries", "country")
        strength += fc.fighters * cfg.scenario.strength_multiplier.get(name, 1.0)
    if cfg.factions and strength <= 0:
        raise ConfigError("factions.*.fighters: every faction has 0 fighters (after "
                          "scenario.strength_multiplier), so nothing would happen")


def _check_hostility(cfg) -> None:
    host = cfg.scenario.hostility
    for a, row in host.items():
        for b, v in row.items():
            key = f"scenario.hostility.{a}.{b}"
            if a == b:
                raise ConfigError(f"{key} = {v!r}: a faction cannot be hostile to itself")
            # A.B and B.A both given is allowed: hostility is symmetric and the later entry
            # wins (scenario files use it to override the baseline, see turkey_intervention)


def _check_air_support(cfg) -> None:
    for i, air in cfg.scenario.air_support.items():
        key = f"scenario.air_support.{i}"
        _no_duplicates(air.recipients, f"{key}.recipients", "faction")
        _no_duplicates(air.against, f"{key}.against", "faction")
        both = [r for r in air.recipients if r in air.against]
        if both:
            raise ConfigError(f"{key}.against: {both[0]!r} is also a recipient (air support "
                              "against the faction it supports)")
        if air.start and air.end and _dt.date.fromisoformat(air.end) <= _dt.date.fromisoformat(air.start):
            raise ConfigError(f"{key}.end = {air.end!r}: ends before it starts "
                              f"({key}.start = {air.start!r})")


def _check_deconfliction(cfg) -> None:
    for i, d in cfg.scenario.deconfliction.items():
        _no_duplicates(d.factions, f"scenario.deconfliction.{i}.factions", "faction")


def _check_events(cfg) -> None:
    for i, ev in cfg.scenario.events.items():
        key = f"scenario.events.{i}"
        _no_duplicates(ev.withdraw, f"{key}.withdraw", "faction")
        pairs: dict[frozenset, float] = {}
        for j, item in enumerate(ev.set_hostility):
            a, b, v = str(item[0]), str(item[1]), float(item[2])
            if a == b:
                raise ConfigError(f"{key}.set_hostility[{j}] = {list(item)!r}: a faction cannot be "
                                  "hostile to itself")
            pair = frozenset((a, b))
            if pair in pairs and pairs[pair] != v:
                raise ConfigError(f"{key}.set_hostility[{j}] = {list(item)!r}: the pair {a}, {b} "
                                  "is set twice with different values")
            pairs[pair] = v


def _check_thresholds(cfg) -> None:
    c = cfg.control
    if c.full_share < c.dominant_share:
        raise ConfigError(f"control.full_share = {c.full_share!r} is below control.dominant_share "
                          f"= {c.dominant_share!r} (full control needs at least the dominant share)")


def _check_calendar(cfg) -> None:
    s = cfg.scenario
    start = _dt.date.fromisoformat(s.start_date)
    if start < FIRST_DATE:
        raise ConfigError(f"scenario.start_date = {s.start_date!r}: before {FIRST_DATE}, the first "
                          "date the outputs can store")
    days = s.weeks * s.step_days
    end_ord = start.toordinal() + days
    if end_ord > LAST_DATE.toordinal():
        end = _dt.date.fromordinal(end_ord).isoformat() if end_ord <= _dt.date.max.toordinal() \
            else "after 9999-12-31"
        raise ConfigError(f"scenario.start_date = {s.start_date!r}: the run ({s.weeks} steps of "
                          f"{s.step_days} days) would end {end}, beyond {LAST_DATE}, the last date "
                          "the outputs can store")


def _check_population(cfg) -> None:
    g = cfg.geography
    for c in g.theatre_countries:
        v = g.population_target.get(c)
        if v is not None and v <= 0:
            raise ConfigError(f"geography.population_target.{c} = {v!r}: a theatre country needs "
                              "people (> 0)")
    for gov, shares in cfg.identity_shares.items():
        if shares and sum(shares.values()) <= 0:
            raise ConfigError(f"identity_shares.{gov}: every share is 0, so its people would "
                              "vanish from the model; give at least one share > 0")


_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f:*?\"<>|]")


def _check_names(cfg) -> None:
    name = cfg.scenario.name
    key = "scenario.name"
    if len(name) > MAX_NAME_LEN:
        raise ConfigError(f"{key}: {len(name)} characters, more than {MAX_NAME_LEN} (it names the "
                          "output folder)")
    if name.strip() in (".", "..") or _BAD_NAME.search(name):
        raise ConfigError(f"{key} = {name!r}: not a folder name (no /, \\, .., control or "
                          ":*?\"<>| characters; it names the output folder)")
    if name != name.strip():
        raise ConfigError(f"{key} = {name!r}: leading or trailing blanks (it names the output folder)")


def _check_grid(cfg) -> None:
    g = cfg.geography
    if g.kind != "synthetic":
        return
    south = g.lat_max - g.synthetic_rows * g.resolution_deg
    east = g.lon_min + g.synthetic_cols * g.resolution_deg
    if south < -90:
        most = int((g.lat_max + 90) / g.resolution_deg)
        raise ConfigError(f"geography.synthetic_rows = {g.synthetic_rows}: the synthetic map would "
                          f"reach latitude {south:g} (rows x resolution_deg south of lat_max "
                          f"{g.lat_max:g}); at most {most} rows fit")
    if east > 180:
        most = int((180 - g.lon_min) / g.resolution_deg)
        raise ConfigError(f"geography.synthetic_cols = {g.synthetic_cols}: the synthetic map would "
                          f"reach longitude {east:g}; at most {most} columns fit")


def grid_cells(cfg) -> int:
    """Cells of the grid ``cfg.geography`` describes (synthetic: rows x cols)."""
    g = cfg.geography
    if g.kind == "synthetic":
        return int(g.synthetic_rows) * int(g.synthetic_cols)
    rows = round((g.lat_max - g.lat_min) / g.resolution_deg)
    cols = round((g.lon_max - g.lon_min) / g.resolution_deg)
    return max(int(rows), 1) * max(int(cols), 1)


def estimated_minutes(cfg) -> float:
    """A rough lower estimate of the run's wall time (the model steps only, no plots)."""
    return grid_cells(cfg) * cfg.scenario.weeks / CELL_STEPS_PER_SECOND / 60.0


def _check_time_budget(cfg) -> None:
    budget = getattr(cfg, "time_budget_minutes", 0.0) or 0.0
    if budget <= 0:
        return
    est = estimated_minutes(cfg)
    if est > budget:
        raise ConfigError(f"time_budget_minutes = {budget:g}: the run needs at least about "
                          f"{est:,.0f} minutes ({grid_cells(cfg):,} cells x {cfg.scenario.weeks} "
                          "steps); use a coarser geography, fewer scenario.weeks or a larger budget")


def _check_colours(cfg) -> None:
    from matplotlib.colors import is_color_like

    for name, fc in cfg.factions.items():
        if not is_color_like(fc.colour):
            raise ConfigError(f"factions.{name}.colour = {fc.colour!r}: not a colour matplotlib "
                              "knows (use a name like 'red' or a hex code like '#1a2b3c')")
