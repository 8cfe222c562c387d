"""The documentation stays in step with the code and the configs.

docs/ODD.md lists the phases, random streams, metrics, summary outcomes and every parameter
value; README.md promises a two-command quickstart.  These tests fail with a message naming the
row to update when a rule, a metric or a value in configs/ changes without the docs.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ODD = ROOT / "docs" / "ODD.md"
README = ROOT / "README.md"
TUTORIAL = ROOT / "docs" / "tutorial.md"

MECHANISM_SECTIONS = ("combat", "control", "insurgency", "displacement", "grievance", "assault",
                      "sieges", "withdrawal", "reach", "alignment", "holdouts")
SCENARIO_SCALARS = ("start_date", "weeks", "step_days", "foreign_fighter_exit_rate", "isis_cohesion",
                    "strength_multiplier", "former_allies_max_hostility")
GEOGRAPHY_KEYS = ("population_kernel_km", "missing_place_population", "memory_budget_mb",
                  "rural_density_per_km2", "population_target", "movement_cost",
                  "major_river_crossing_cost", "river_crossing_cost", "theatre_countries")
FACTION_SCALARS = ("fighters", "doctrine", "firepower", "morale", "unit_size", "unit_share",
                   "max_units", "speed_km_week", "projection_km", "garrison_min", "attack_ratio",
                   "recruitment_rate", "foreign_fighter_share", "garrison_areas_max_share",
                   "resources", "countries")


# ------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def odd() -> str:
    return ODD.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def cfg() -> dict:
    from sim.cli import compose

    return compose([])


def section(text: str, heading: str) -> str:
    """The text under a Markdown heading (up to the next heading of the same or higher level)."""
    m = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert m, f"docs/ODD.md has no heading {heading!r}"
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def table_rows(text: str) -> list[list[str]]:
    """Cells of every Markdown table row in ``text`` (separator rows skipped)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        rows.append(cells)
    return rows


def unquote(cell: str) -> str:
    return cell.strip().strip("`")


def same(doc: str, value) -> bool:
    """A table cell equals a config value (numbers compared as floats, lists as 'a, b')."""
    doc = doc.strip()
    if isinstance(value, bool):
        return doc.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            d = float(doc.replace(",", ""))
        except ValueError:
            return False
        return math.isclose(d, float(value), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(value, list):
        return [x.strip() for x in doc.split(",")] == [str(v) for v in value]
    if isinstance(value, dict):
        if not value or doc == "{}":
            return not value and doc == "{}"
        return parse_mapping(doc) == {k: float(v) for k, v in value.items()}
    return doc == str(value)


def parse_mapping(doc: str) -> dict[str, float]:
    """'a 1, b 2.5' or 'SYR 18,300,000; IRQ 37,600,000' -> {name: number}."""
    out = {}
    for part in re.split(r";|,(?=\s*[A-Za-z])", doc):
        part = part.strip()
        if not part:
            continue
        name, _, num = part.partition(" ")
        out[name] = float(num.replace(",", ""))
    return out


# ------------------------------------------------------------------------------ structure
def test_phases_listed_in_order(odd):
    from sim.model import PHASES

    rows = table_rows(section(odd, "3 Process overview and scheduling"))
    listed = [unquote(r[1]) for r in rows if r[0].isdigit()]
    assert listed == list(PHASES), "docs/ODD.md section 3: phase table differs from sim.model.PHASES"
    for k, name in enumerate(PHASES, start=1):
        assert re.search(rf"^### 7\.{k} `{name}`\s*$", odd, re.MULTILINE), \
            f"docs/ODD.md section 7: expected heading '### 7.{k} `{name}`'"


def test_random_streams_listed(odd):
    from sim.model import STREAMS

    rows = table_rows(section(odd, "4.9 Stochasticity"))
    listed = [unquote(r[0]) for r in rows if r[0].startswith("`")]
    assert listed == list(STREAMS), "docs/ODD.md 4.9: stream table differs from sim.model.STREAMS"


def test_code_constants(odd):
    from sim.rules import presence

    rows = {unquote(r[0]): r[1] for r in table_rows(section(odd, "8.6 Constants in the code"))}
    assert same(rows["GARRISON_SPILL"], presence.GARRISON_SPILL), "docs/ODD.md 8.6: GARRISON_SPILL"


@pytest.fixture(scope="module")
def tiny_run():
    from sim.cli import compose
    from sim.runner import run_scenario

    return run_scenario(compose(["geography=res_010", "scenario.weeks=2", "output.plots=false"]))


def test_every_metric_documented(odd, tiny_run):
    observation = section(odd, "4.11 Observation")
    metrics = sorted(set(tiny_run.timeseries["metric"]))
    missing = [m for m in metrics if f"`{m}`" not in observation]
    assert not missing, f"docs/ODD.md 4.11 does not describe the metrics {missing}"


def test_every_summary_outcome_documented(odd, tiny_run):
    observation = section(odd, "4.11 Observation")
    factions = [*tiny_run.factions, "UNGOVERNED"]
    missing = []
    for key in tiny_run.summary:
        name = key
        for f in factions:
            if key.endswith("_" + f):
                name = key[: -len(f) - 1] + "_<F>"
                break
        if f"`{name}`" not in observation and f"`{key}`" not in observation:
            missing.append(key)
    assert not missing, f"docs/ODD.md 4.11 does not describe the summary outcomes {missing}"


# ------------------------------------------------------------------------------ values
def test_mechanism_parameters(odd, cfg):
    rows = {unquote(r[0]): r for r in table_rows(section(odd, "8.1 Mechanisms (`configs/mechanisms/default.yaml`)"))}
    for sec in MECHANISM_SECTIONS:
        for key, value in cfg[sec].items():
            name = f"{sec}.{key}"
            assert name in rows, f"docs/ODD.md 8.1: no row for `{name}` (value {value!r})"
            assert same(rows[name][1], value), \
                f"docs/ODD.md 8.1: `{name}` is {rows[name][1]!r} in the docs but {value!r} in configs/"
            assert len(rows[name]) == 5 and all(rows[name]), f"docs/ODD.md 8.1: `{name}` needs 5 columns"


def test_faction_parameters(odd, cfg):
    rows = table_rows(section(odd, "8.2 Factions (`configs/faction/*.yaml`)"))
    header = next(r for r in rows if r[0] == "parameter" and len(r) > 5)
    factions = header[1:]
    assert factions == list(cfg["factions"]), "docs/ODD.md 8.2: faction columns differ from configs/config.yaml"
    values = {unquote(r[0]): r[1:] for r in rows if len(r) == len(header) and r is not header}
    expected = {k: [cfg["factions"][f][k] for f in factions] for k in FACTION_SCALARS}
    for group in ("legitimacy", "value_weights"):
        keys = sorted({k for f in factions for k in cfg["factions"][f][group]})
        for k in keys:
            default = 0.1 if group == "legitimacy" else 0.0
            expected[f"{group}.{k}"] = [cfg["factions"][f][group].get(k, default) for f in factions]
    for name, want in expected.items():
        assert name in values, f"docs/ODD.md 8.2: no row for `{name}`"
        for f, doc, v in zip(factions, values[name], want):
            assert same(doc, v), f"docs/ODD.md 8.2: `{name}` of {f} is {doc!r} in the docs but {v!r} in configs/"
    meanings = {unquote(r[0]) for r in rows if len(r) == 4}
    for k in FACTION_SCALARS:
        assert k in meanings, f"docs/ODD.md 8.2: no meaning row for `{k}`"
    # garrison areas: | place | radius | fighters | source |
    areas = [(r[0], float(r[1]), float(r[2])) for r in rows
             if len(r) == 4 and re.fullmatch(r"[0-9.]+", r[1]) and re.fullmatch(r"[0-9.]+", r[2])]
    want_areas = [(a["place"], float(a["radius_km"]), float(a["fighters"]))
                  for f in factions for a in cfg["factions"][f]["garrison_areas"]]
    assert areas == want_areas, "docs/ODD.md 8.2: the garrison-areas table differs from configs/faction/"
    assert all(not cfg["factions"][f]["garrison_areas"] for f in factions if f != "ISIS"), \
        "docs/ODD.md 8.2 says only ISIS has garrison areas"


def test_scenario_parameters(odd, cfg):
    sec = section(odd, "8.3 Scenario `baseline_2017` (`configs/scenario/baseline_2017.yaml`)")
    rows = table_rows(sec)
    scalars = {unquote(r[0]): r[1] for r in rows}
    s = cfg["scenario"]
    for key in SCENARIO_SCALARS:
        name = f"scenario.{key}"
        assert name in scalars, f"docs/ODD.md 8.3: no row for `{name}`"
        assert same(scalars[name], s[key]), \
            f"docs/ODD.md 8.3: `{name}` is {scalars[name]!r} in the docs but {s[key]!r} in configs/"

    # hostility: rows of (pairs, value) in pairs of columns
    documented: dict[frozenset, float] = {}
    for r in rows:
        for pair_cell, value_cell in zip(r[0::2], r[1::2]):
            m = re.fullmatch(r"([A-Z_]+) – ([A-Z_, ]+)", pair_cell)
            if m and re.fullmatch(r"[0-9.]+", value_cell):
                for b in m.group(2).split(","):
                    documented[frozenset((m.group(1), b.strip()))] = float(value_cell)
    actual = {frozenset((a, b)): float(v) for a, row in s["hostility"].items() for b, v in row.items()}
    assert documented == actual, "docs/ODD.md 8.3: hostility table differs from scenario.hostility"

    air = {unquote(r[0]): r for r in rows if r[0].startswith("`") and len(r) == 7}
    assert set(air) == set(s["air_support"]), "docs/ODD.md 8.3: air-support entries differ"
    for name, a in s["air_support"].items():
        a = {"provider": "US_COALITION", "recipients": [], "against": [], "strength": 1.0,
             "start": "", "end": "", **a}
        r = air[name]
        assert r[1] == a["provider"], f"docs/ODD.md 8.3: provider of `{name}`"
        assert same(r[2], a["recipients"]), f"docs/ODD.md 8.3: recipients of `{name}`"
        if a["against"]:
            assert same(r[3], a["against"]), f"docs/ODD.md 8.3: against of `{name}`"
        assert same(r[4], a["strength"]), f"docs/ODD.md 8.3: strength of `{name}`"
        active = "whole run" if not (a["start"] or a["end"]) else None
        if active:
            assert r[5] == active, f"docs/ODD.md 8.3: active period of `{name}`"
    d = s["deconfliction"]
    assert list(d) == ["euphrates"] and not d["euphrates"].get("until"), \
        "docs/ODD.md 8.3 describes one open-ended Euphrates deconfliction line"
    e = d["euphrates"]
    assert e["sides"] == ["south", "north"], "docs/ODD.md 8.3: sides of the Euphrates line"
    assert f"`line_cells: {e['line_cells']}`" in sec, "docs/ODD.md 8.3: line_cells of the Euphrates line"
    if e["line_cells"] == "majority":
        assert f"`north_share: {e['north_share']:g}`" in sec, "docs/ODD.md 8.3: north_share"

    # events: | `name` | date | A – B → v, ... | source |
    events = {unquote(r[0]): r for r in rows if r[0].startswith("`") and len(r) == 4}
    assert set(events) == set(s["events"]), "docs/ODD.md 8.3: the events table differs from scenario.events"
    for name, ev in s["events"].items():
        r = events[name]
        assert r[1] == ev["date"], f"docs/ODD.md 8.3: date of event `{name}`"
        changes = {}
        for m in re.finditer(r"([A-Z_]+) – ([A-Z_]+) → ([0-9.]+)", r[2]):
            changes[frozenset(m.group(1, 2))] = float(m.group(3))
        want = {frozenset(map(str, x[:2])): float(x[2]) for x in ev.get("set_hostility", [])}
        for f, pts in (ev.get("cede") or {}).items():  # a deal handing over ground
            assert f in r[2] and all(f"{p[2]:g} km" in r[2] for p in pts), \
                f"docs/ODD.md 8.3: ceded ground of event `{name}`"
        assert changes == want, f"docs/ODD.md 8.3: hostility changes of event `{name}`"
        assert not ev.get("withdraw") and ev.get("when_isis_share_below", -1.0) < 0, \
            f"docs/ODD.md 8.3 describes event `{name}` as a dated change of hostility only"


def test_geography_parameters(odd, cfg):
    from sim.cli import compose

    rows = {unquote(r[0]): r[1] for r in table_rows(section(odd, "8.4 Geography (`configs/geography/res_*.yaml`)"))}
    g = cfg["geography"]
    for key in GEOGRAPHY_KEYS:
        name = f"geography.{key}"
        assert name in rows, f"docs/ODD.md 8.4: no row for `{name}`"
        assert same(rows[name], g[key]), f"docs/ODD.md 8.4: `{name}` is {rows[name]!r} but {g[key]!r} in configs/"
    # the three real grids differ only in name and resolution
    base = {k: v for k, v in g.items() if k not in ("name", "resolution_deg")}
    for name in ("res_010", "res_0025"):
        other = compose([f"geography={name}"])["geography"]
        assert {k: v for k, v in other.items() if k not in ("name", "resolution_deg")} == base, \
            f"docs/ODD.md 8.4 says res_* differ only in name and resolution; {name} differs"


def test_grid_table(odd):
    from sim.cli import compose
    from sim.config import GeographyConfig
    from sim.geography import grid_for

    rows = table_rows(section(odd, "2.1 Spatial scale and the grid"))
    grids = {unquote(r[0].split()[0]): r for r in rows if r[0].startswith("`")}
    for name in ("res_010", "res_005", "res_0025", "tiny"):
        g = compose([f"geography={name}"])["geography"]
        shape = (g["synthetic_rows"], g["synthetic_cols"]) if g["kind"] == "synthetic" else \
            grid_for(GeographyConfig(**g)).shape
        assert name in grids, f"docs/ODD.md 2.1: no row for `{name}`"
        assert grids[name][3] == f"{shape[0]} × {shape[1]}", f"docs/ODD.md 2.1: grid of {name} is {shape}"


# ------------------------------------------------------------------------------ README, tutorial
def test_readme_quickstart_is_two_commands():
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Quickstart\s*\n+```(?:bash|sh)?\n(.*?)```", text, re.MULTILINE | re.DOTALL)
    assert m, "README.md: the Quickstart section must start with one code block"
    lines = [ln.strip() for ln in m.group(1).splitlines() if ln.strip()]
    assert lines == ["bash scripts/quickstart.sh", "bash scripts/test.sh"]
    for script in ("quickstart.sh", "test.sh"):
        assert (ROOT / "scripts" / script).exists()


def test_output_files_named_in_docs():
    from sim import outputs, plotting

    src = inspect.getsource(plotting.save_run_plots)
    plots = re.findall(r'"([a-z_]+\.(?:png|gif))"', src)
    files = [outputs.TIMESERIES_FILE, outputs.CONTROL_FILE, outputs.SUMMARY_FILE, *plots]
    for doc in (README, TUTORIAL):
        text = doc.read_text(encoding="utf-8")
        missing = [f for f in files if f not in text]
        assert not missing, f"{doc.name} does not mention the output files {missing}"
