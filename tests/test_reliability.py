"""Reliability (issue 8): bad input, determinism, faults.

* Bad input: a table of bad configs and overrides, each run through the real CLI
  (``python -m sim.cli run <override>`` in a subprocess).  Each must exit with code 2 before
  the run, print ONE line on stderr that names the key (no traceback), and leave nothing in the
  run directory but ``error.log`` (holding that line).  Two kinds of failure:

  - Hydra composition errors (unknown key without ``+``, wrong type, missing config group
    option, bad override syntax): the run directory is never created.
  - Schema/validation errors (:func:`sim.config.validate`, the memory budget, gazetteer names
    and rivers of :func:`sim.config.validate_geography`): ``sim.cli._fail`` removes the
    ``.hydra/`` folder and the empty job log Hydra wrote before the job, and writes
    ``error.log``.

  The initial-control CSV has no config key (the path is fixed in ``ConflictModel``), so its
  bad rows are tested on the loader directly with a patched data folder.
* Determinism: byte-identical ``timeseries.parquet`` and ``control.nc`` from two processes and
  from the joblib and basic launchers (single-value sweeps).
* Faults: a sweep in which runs fail (bad config, injected exception, killed worker) completes
  the others; a run killed while writing leaves no truncated file under a final name; a
  2,000-step run keeps its memory flat apart from the history it stores.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "sim.cli", "run"]
FAST = ["geography=tiny", "output.plots=false"]  # if a bad case were accepted, it runs fast


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "SIM_FAULT_INJECT")}
    env["MPLBACKEND"] = "Agg"
    env.update(extra)
    return env


def sim_run(args: list[str], cwd: Path, timeout: float = 300,
            **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout, check=False)


def files_under(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


# ======================================================================================
# bad input
# ======================================================================================
@dataclass(frozen=True)
class Bad:
    id: str
    overrides: tuple[str, ...]
    key: str  # must appear in the one-line error


def bad(id_: str, key: str, *overrides: str, base: tuple[str, ...] = tuple(FAST)) -> Bad:
    return Bad(id_, (*base, *overrides), key)


EXTRA_CONFIGS = "extra_configs"  # a config search path with scenario/empty.yaml (empty file)

BAD_CASES = [
    # --- factions named in hostility / alliances that do not exist
    bad("hostility-unknown-faction-append", "scenario.hostility.ISIS.FOO",
        "+scenario.hostility.ISIS.FOO=1"),
    bad("hostility-unknown-faction", "scenario.hostility.ISIS.FOO",
        "scenario.hostility.ISIS.FOO=1"),
    bad("hostility-unknown-row", "scenario.hostility.FOO", "+scenario.hostility.FOO={ISIS: 1.0}"),
    bad("hostility-names-removed-faction", "scenario.hostility", "~factions.SDF"),
    bad("air-support-recipient-missing", "scenario.air_support.us_coalition.recipients",
        "scenario.air_support.us_coalition.recipients=[SDF,FOO]"),
    bad("air-support-against-missing", "scenario.air_support.turkey.against",
        "scenario.air_support.turkey.against=[PKK]"),
    bad("deconfliction-faction-missing", "scenario.deconfliction.euphrates.factions",
        "scenario.deconfliction.euphrates.factions=[SYRIAN_GOV,FOO]"),
    bad("event-hostility-missing-faction", "scenario.events.kurdish_baghdad_conflict.set_hostility",
        "scenario=kurdish_baghdad_conflict",
        "scenario.events.kurdish_baghdad_conflict.set_hostility=[[KRG,FOO,0.8]]"),
    bad("event-withdraw-missing-faction", "scenario.events.us_withdrawal.withdraw",
        "scenario=us_withdrawal", "scenario.events.us_withdrawal.withdraw=[RUSSIA]"),
    bad("zone-bank-bad-side", "scenario.zones.us_protection.banks",
        "scenario.zones.us_protection.banks=[[Euphrates,east,SYR]]"),
    bad("zone-except-point-radius", "scenario.zones.sochi_line.except_points",
        "scenario.zones.sochi_line.except_points=[[36.6,39.0,900]]"),
    bad("strength-multiplier-missing-faction", "scenario.strength_multiplier.FOO",
        "+scenario.strength_multiplier.FOO=2"),
    # --- strengths
    bad("fighters-negative", "factions.SDF.fighters", "factions.SDF.fighters=-5"),
    bad("fighters-nan", "factions.SDF.fighters", "factions.SDF.fighters=nan"),
    bad("fighters-not-a-number", "factions.SDF.fighters", "factions.SDF.fighters=abc"),
    # --- probabilities and shares outside [0, 1]
    bad("hostility-above-1", "scenario.hostility.ISIS.SDF", "scenario.hostility.ISIS.SDF=1.5"),
    bad("hostility-negative", "scenario.hostility.SYRIAN_GOV.SDF",
        "scenario.hostility.SYRIAN_GOV.SDF=-0.1"),
    bad("hostility-nan", "scenario.hostility.ISIS.SDF", "scenario.hostility.ISIS.SDF=nan"),
    bad("unit-share-2", "factions.ISIS.unit_share", "factions.ISIS.unit_share=2"),
    bad("legitimacy-above-1", "factions.SDF.legitimacy.kurd", "factions.SDF.legitimacy.kurd=1.5"),
    # --- places, rivers, countries of the map
    bad("watch-place-not-in-gazetteer", "output.watch_places", "output.watch_places=[Rivrcity]"),
    bad("garrison-place-not-in-gazetteer", "factions.ISIS.garrison_areas[0].place",
        "geography=res_010", "factions.ISIS.garrison_areas.0.place=Mosal"),
    bad("deconfliction-unknown-river", "scenario.deconfliction.euphrates.line",
        "scenario.deconfliction.euphrates.line=Nile"),
    bad("faction-country-outside-theatre", "factions.SDF.countries",
        "factions.SDF.countries=[LBN]"),
    bad("theatre-country-not-on-map", "geography.theatre_countries",
        "geography.theatre_countries=[SYR,IRQ,XYZ]"),
    # --- empty scenario / no factions / missing scenario
    bad("empty-scenario-file", "scenario.hostility",
        f"hydra.searchpath=[file://{{tmp}}/{EXTRA_CONFIGS}]", "scenario=empty"),
    bad("scenario-missing", "scenario", "scenario=does_not_exist"),
    bad("no-factions", "factions", "~factions"),
    bad("scenario-name-empty", "scenario.name", "scenario.name="),
    bad("scenario-name-missing", "scenario.name", "scenario.name=???"),
    # --- horizon and time step
    bad("horizon-0", "scenario.weeks", "scenario.weeks=0"),
    bad("horizon-fractional", "scenario.weeks", "scenario.weeks=1.5"),
    bad("step-days-0", "scenario.step_days", "scenario.step_days=0"),
    # --- resolution / memory budget
    bad("resolution-too-fine", "geography.resolution_deg", "output.plots=false",
        "geography.resolution_deg=0.005", base=()),
    bad("memory-budget-tiny", "geography.memory_budget_mb", "geography=res_010",
        "geography.memory_budget_mb=1"),
    # --- unknown keys
    bad("unknown-key-scenario-append", "scenario.foo", "+scenario.foo=1"),
    bad("unknown-key-faction-append", "factions.SDF.bogus", "+factions.SDF.bogus=2"),
    bad("unknown-key-scenario", "scenario.foo", "scenario.foo=1"),
    bad("unknown-identity-group", "factions.SDF.legitimacy.martian",
        "+factions.SDF.legitimacy.martian=0.5"),
    # --- dates
    bad("start-date-invalid-day", "scenario.start_date", "scenario.start_date=2017-02-30"),
    bad("air-support-end-date", "scenario.air_support.russia.end",
        "scenario.air_support.russia.end=soon"),
    bad("map-date", "output.map_dates", "output.map_dates=[2017-13-01]"),
    bad("event-without-date", "scenario.events.us_withdrawal", "scenario=us_withdrawal",
        "scenario.events.us_withdrawal.date="),
    # --- enumerations, types, syntax, other ranges
    bad("unknown-doctrine", "factions.SDF.doctrine", "factions.SDF.doctrine=guerrilla"),
    bad("unknown-geography-kind", "geography.kind", "geography.kind=hexagonal"),
    bad("geography-missing-option", "geography", "geography=res_999", base=("output.plots=false",)),
    bad("bbox-inverted", "geography.lon_max", "geography.lon_max=30"),
    bad("deconfliction-sides", "scenario.deconfliction.euphrates.sides",
        "scenario.deconfliction.euphrates.sides=[east,west]"),
    bad("faction-name-mismatch", "factions.SDF.name", "factions.SDF.name=YPG"),
    bad("bool-not-bool", "output.plots", "output.plots=maybe"),
    bad("override-syntax", "seed", "seed=[1,2"),
    bad("capture-ratio-below-1", "control.capture_ratio", "control.capture_ratio=0.5"),
    # --- issue 15: values in range that do not make sense together (the rest of this class is
    #     in IN_PROCESS_CASES below; these few show the CLI path)
    bad("synthetic-grid-off-the-globe", "geography.synthetic_rows",
        "geography.synthetic_rows=2000", "geography.synthetic_cols=2000", "scenario.weeks=1"),
    bad("self-hostility", "scenario.hostility.ISIS.ISIS", "+scenario.hostility.ISIS.ISIS=1"),
    bad("start-date-beyond-calendar", "scenario.start_date", "scenario.start_date=9999-12-20"),
    bad("identity-shares-all-zero", "identity_shares.Raqqa", "identity_shares.Raqqa.kurd=0",
        "identity_shares.Raqqa.sunni_arab=0", "identity_shares.Raqqa.christian_yazidi=0"),
    bad("interpolation-loop", "scenario.name", "scenario.name=${scenario.name}"),
    bad("interpolation-loop-two-keys", "seed", "seed=${replicate}", "replicate=${seed}"),
]
assert len(BAD_CASES) >= 30 and len({c.id for c in BAD_CASES}) == len(BAD_CASES)


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """All bad cases, run concurrently (each is a separate ``sim run`` process)."""
    root = tmp_path_factory.mktemp("bad_input")
    extra = root / EXTRA_CONFIGS / "scenario"
    extra.mkdir(parents=True)
    (extra / "empty.yaml").write_text("", encoding="utf-8")

    def one(case: Bad):
        cwd = root / case.id  # the case's own working dir: stray outputs/ would show there
        cwd.mkdir()
        run_dir = cwd / "run"
        args = [o.replace("{tmp}", str(root)) for o in case.overrides]
        return case.id, (run_dir, sim_run([*args, f"hydra.run.dir={run_dir}"], cwd=cwd))

    with cf.ThreadPoolExecutor(max_workers=max(2, min(8, 2 * (os.cpu_count() or 2)))) as ex:
        return dict(ex.map(one, BAD_CASES))


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda c: c.id)
def test_bad_input_fails_cleanly(case: Bad, bad_results):
    run_dir, proc = bad_results[case.id]
    err = proc.stderr.strip()
    assert proc.returncode == 2, f"exit code {proc.returncode}; stderr:\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err[:2000]}"
    assert lines[0].startswith("config error: "), lines[0]
    assert case.key in lines[0], f"{case.key!r} not named in: {lines[0]}"
    # nothing written before the run but error.log (composition errors: not even the folder)
    files = files_under(run_dir)
    assert files in ([], ["error.log"]), files
    if files:
        assert (run_dir / "error.log").read_text(encoding="utf-8").strip() == lines[0]
    # no stray outputs in the working directory either (outputs/, multirun/)
    assert not (run_dir.parent / "outputs").exists() and not (run_dir.parent / "multirun").exists()


# --------------------------------------------------------------------------------------
# bad input in-process (issue 15, item 2): the CLI is not the point, so the table is checked
# with the same calls ``sim run`` makes before a run (compose, validate, build the map's grid,
# check names against the map); each must raise one line naming the key.
# --------------------------------------------------------------------------------------
def inproc(id_: str, key: str, *overrides: str) -> Bad:
    return Bad(id_, ("geography=tiny", "output.plots=false", "scenario.weeks=4", *overrides), key)


LONG_NAME = "x" * 300

IN_PROCESS_CASES = [
    # self-hostility, contradictions and duplicates
    inproc("self-hostility", "scenario.hostility.ISIS.ISIS", "+scenario.hostility.ISIS.ISIS=1"),
    inproc("self-hostility-zero", "scenario.hostility.SDF.SDF", "+scenario.hostility.SDF.SDF=0"),
    inproc("event-self-hostility", "scenario.events.kurdish_baghdad_conflict.set_hostility[0]",
           "scenario=kurdish_baghdad_conflict",
           "scenario.events.kurdish_baghdad_conflict.set_hostility=[[SDF,SDF,0.9]]"),
    inproc("event-pair-set-twice", "scenario.events.kurdish_baghdad_conflict.set_hostility[1]",
           "scenario=kurdish_baghdad_conflict",
           "scenario.events.kurdish_baghdad_conflict.set_hostility=[[KRG,PMF,0.9],[PMF,KRG,0.1]]"),
    inproc("deconfliction-faction-twice", "scenario.deconfliction.euphrates.factions",
           "scenario.deconfliction.euphrates.factions=[SDF,SDF]"),
    inproc("air-support-recipient-twice", "scenario.air_support.us_coalition.recipients",
           "scenario.air_support.us_coalition.recipients=[SDF,SDF]"),
    inproc("air-support-against-twice", "scenario.air_support.turkey.against",
           "scenario.air_support.turkey.against=[SDF,SDF]"),
    inproc("air-support-against-own-recipient", "scenario.air_support.us_coalition.against",
           "scenario.air_support.us_coalition.against=[ISIS,SDF]"),
    inproc("withdraw-twice", "scenario.events.us_withdrawal.withdraw", "scenario=us_withdrawal",
           "scenario.events.us_withdrawal.withdraw=[US_COALITION,US_COALITION]"),
    inproc("faction-country-twice", "factions.SDF.countries", "factions.SDF.countries=[SYR,SYR]"),
    inproc("theatre-country-twice", "geography.theatre_countries",
           "geography.theatre_countries=[SYR,IRQ,SYR]"),
    # unknown factions, wherever a faction is named
    inproc("unknown-faction-event-second", "scenario.events.kurdish_baghdad_conflict.set_hostility",
           "scenario=kurdish_baghdad_conflict",
           "scenario.events.kurdish_baghdad_conflict.set_hostility=[[KRG,HEZBOLLAH,0.5]]"),
    inproc("unknown-faction-air-against", "scenario.air_support.russia.against",
           "scenario.air_support.russia.against=[WAGNER]"),
    inproc("unknown-faction-deconfliction", "scenario.deconfliction.euphrates.factions",
           "scenario.deconfliction.euphrates.factions=[SDF,RUSSIA]"),
    inproc("unknown-faction-multiplier", "scenario.strength_multiplier.WAGNER",
           "+scenario.strength_multiplier.WAGNER=2"),
    # inverted date ranges, thresholds, calendar
    inproc("air-support-ends-before-start", "scenario.air_support.russia.end",
           "scenario.air_support.russia.start=2018-01-01", "scenario.air_support.russia.end=2017-09-01"),
    inproc("air-support-empty-window", "scenario.air_support.russia.end",
           "scenario.air_support.russia.start=2018-01-01", "scenario.air_support.russia.end=2018-01-01"),
    inproc("full-share-below-dominant", "control.full_share", "control.full_share=0.5"),
    inproc("start-date-9999", "scenario.start_date", "scenario.start_date=9999-12-20"),
    inproc("run-ends-beyond-2262", "scenario.start_date", "scenario.start_date=2260-01-01",
           "scenario.weeks=500"),
    inproc("start-date-before-1678", "scenario.start_date", "scenario.start_date=1500-01-01"),
    # people
    inproc("population-target-zero", "geography.population_target.SYR",
           "geography.population_target.SYR=0"),
    inproc("identity-shares-zero", "identity_shares.Raqqa", "identity_shares.Raqqa.kurd=0",
           "identity_shares.Raqqa.sunni_arab=0", "identity_shares.Raqqa.christian_yazidi=0"),
    inproc("identity-west-zero", "identity_shares.West", "+identity_shares.West={sunni_arab: 0}"),
    # factions
    inproc("faction-without-country", "factions.SDF.countries", "factions.SDF.countries=[]"),
    inproc("all-factions-zero-fighters", "factions.*.fighters",
           *(f"factions.{f}.fighters=0" for f in ("ISIS", "SYRIAN_GOV", "SDF", "SYRIAN_REBELS",
                                                  "ISLAMIST_REBELS", "TURKEY_SNA", "US_COALITION",
                                                  "IRAQI_GOV", "PMF", "KRG"))),
    inproc("colour-invalid", "factions.SDF.colour", "factions.SDF.colour=notacolour"),
    inproc("colour-bad-hex", "factions.ISIS.colour", "factions.ISIS.colour='#12345'"),
    # names that cannot be folder names
    inproc("scenario-name-traversal", "scenario.name", "scenario.name=../../x"),
    inproc("scenario-name-slash", "scenario.name", "scenario.name=a/b"),
    inproc("scenario-name-dotdot", "scenario.name", "scenario.name=.."),
    inproc("scenario-name-300-chars", "scenario.name", f"scenario.name={LONG_NAME}"),
    inproc("scenario-name-blank-edges", "scenario.name", "scenario.name=' x'"),
    # grids and budgets
    inproc("synthetic-rows-off-the-globe", "geography.synthetic_rows",
           "geography.synthetic_rows=2000", "geography.synthetic_cols=2000", "scenario.weeks=1"),
    inproc("synthetic-cols-off-the-globe", "geography.synthetic_cols",
           "geography.synthetic_cols=2000", "geography.lon_min=40", "geography.resolution_deg=1"),
    inproc("synthetic-grid-over-memory-budget", "geography.memory_budget_mb",
           "geography.synthetic_rows=1000", "geography.synthetic_cols=1000",
           "geography.resolution_deg=0.01", "geography.memory_budget_mb=100"),
    inproc("run-over-time-budget", "time_budget_minutes", "time_budget_minutes=1",
           "geography=res_0025", "scenario.weeks=5000"),
]
assert len({c.id for c in IN_PROCESS_CASES}) == len(IN_PROCESS_CASES)


@pytest.fixture(scope="module")
def fast_compose():
    """Hydra's compose is slow (~1 s); compose once per choice of config groups and apply the
    other overrides with Hydra's own override parser (values as ``sim run`` would get them)."""
    import copy

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from sim.cli import compose

    parser = OverridesParser.create()
    bases: dict[tuple[str, ...], dict] = {}

    def run(overrides) -> dict:
        groups = tuple(o for o in overrides if o.split("=", 1)[0] in ("geography", "scenario"))
        if groups not in bases:
            bases[groups] = compose(list(groups))
        cfg = OmegaConf.create(copy.deepcopy(bases[groups]))
        for ov in parser.parse_overrides([o for o in overrides if o not in groups]):
            OmegaConf.update(cfg, ov.key_or_group, ov.value(), merge=False, force_add=True)
        return OmegaConf.to_container(cfg, resolve=True)

    return run


def _pre_run_checks(conf_dict: dict) -> None:
    """What ``sim run`` does before the run: validate, check the map's budget, names, rivers."""
    from sim.config import validate_geography
    from sim.geography import build_geography
    from sim.runner import as_config

    conf = as_config(conf_dict)
    geo = build_geography(conf.geography, n_factions=len(conf.factions), n_steps=conf.scenario.weeks)
    validate_geography(conf, geo)


@pytest.mark.parametrize("case", IN_PROCESS_CASES, ids=lambda c: c.id)
def test_bad_input_in_process(case: Bad, fast_compose):
    from sim.config import ConfigError
    from sim.geography import MemoryBudgetError

    with pytest.raises((ConfigError, MemoryBudgetError)) as exc:
        _pre_run_checks(fast_compose(case.overrides))
    msg = str(exc.value)
    assert "\n" not in msg, msg
    assert case.key in msg, f"{case.key!r} not named in: {msg}"


def test_count_bad_inputs():
    """The closing note of issue 15 quotes this count."""
    n = len(BAD_CASES) + len(IN_PROCESS_CASES) + len(RUN_RECORD_CASES)
    print(f"bad inputs: {len(BAD_CASES)} through the CLI, {len(IN_PROCESS_CASES)} in-process, "
          f"{len(RUN_RECORD_CASES)} run-record cases; {n} in all")
    assert n >= 100


def test_hydra_full_error_keeps_hydra_report(tmp_path):
    """``HYDRA_FULL_ERROR=1`` (the user asks for the details) still gives Hydra's traceback."""
    proc = sim_run([*FAST, "factions.SDF.fighters=abc", f"hydra.run.dir={tmp_path / 'run'}"],
                   cwd=tmp_path, HYDRA_FULL_ERROR="1")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "factions.SDF.fighters" in proc.stderr


def test_initial_control_bad_row(tmp_path, monkeypatch):
    """A bad row of the initial-control CSV names the file and line.  The path has no config key
    (``sim.initial_map`` reads ``data/history/initial_control_2017-07*.csv``), so the loader is
    tested with a patched data folder."""
    import shutil

    import sim.initial_map
    from sim.cli import compose
    from sim.runner import build_model

    src = sim.initial_map.HISTORY / "initial_control_2017-07.csv"
    cfg = compose(list(FAST))
    for k, (bad_row, want) in enumerate([
        ("Nowhere,not-a-lat,40.0,Syria,ISIS,,\n", "bad lat/lon"),
        ("Somewhere,35.0,40.0,Syria,HEZBOLLAH,,\n", "unknown controller 'HEZBOLLAH'"),
        ("Elsewhere,35.0,40.0,Lebanon,ISIS,,\n", "unknown country 'Lebanon'"),
    ]):
        data = tmp_path / str(k) / "data"
        shutil.copytree(src.parent, data / "history")
        text = src.read_text(encoding="utf-8")
        text = text if text.endswith("\n") else text + "\n"
        n_lines = text.count("\n")
        (data / "history" / src.name).write_text(text + bad_row, encoding="utf-8")
        monkeypatch.setattr(sim.initial_map, "HISTORY", data / "history")
        with pytest.raises(ValueError) as exc:
            build_model(cfg)
        msg = str(exc.value)
        assert "\n" not in msg
        assert f"{src.name} line {n_lines + 1}" in msg and want in msg, msg


@pytest.mark.parametrize("row", ["Nowhere,nan,40.0,Syria,ISIS,,\n",
                                 "Pole,95.0,40.0,Syria,ISIS,,\n",
                                 "Pacific,35.0,140.0,Iraq,KRG,,\n"], ids=["nan", "lat95", "lon140"])
def test_initial_control_impossible_coordinates(tmp_path, monkeypatch, row):
    import shutil

    import sim.initial_map
    from sim.cli import compose
    from sim.runner import build_model

    src = sim.initial_map.HISTORY / "initial_control_2017-07.csv"
    text = src.read_text(encoding="utf-8")
    shutil.copytree(src.parent, tmp_path / "data" / "history")
    (tmp_path / "data" / "history" / src.name).write_text(
        (text if text.endswith("\n") else text + "\n") + row, encoding="utf-8")
    monkeypatch.setattr(sim.initial_map, "HISTORY", tmp_path / "data" / "history")
    with pytest.raises(ValueError, match=src.name):
        build_model(compose(list(FAST)))


def test_config_error_in_library_use_is_one_line():
    """The same validation for library users: ``run_scenario(dict)`` raises ConfigError."""
    from sim.cli import compose
    from sim.config import ConfigError
    from sim.runner import run_scenario

    cfg = compose([*FAST, "scenario.weeks=0"])
    with pytest.raises(ConfigError, match=r"^scenario\.weeks = 0: allowed range"):
        run_scenario(cfg)


# ======================================================================================
# run records (issue 15, item 3): an existing run is never overwritten or modified; a stopped,
# failed or invalid run says so in status.json; write errors are one line naming the path
# ======================================================================================
RUN_RECORD_CASES = [  # each a bad input or event, tested below
    "reused run dir, valid config", "reused run dir, rejected config", "reused run dir, failed run",
    "run dir under a file", "file size limit (ulimit -f) while writing control.nc",
    "SIGINT during the run", "SIGTERM during the run", "SIGTERM while writing control.nc",
    "run breaking an invariant", "scenario.name=../../x with the default run dir",
    "interpolation loop in the default run dir",
]


def _digest(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _one_line_no_traceback(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def test_existing_run_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    first = sim_run([*FAST, "scenario.weeks=2", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    before = _digest(run)
    assert ".hydra/config.yaml" in before and _status(run) == "ok"
    for args in (["scenario.weeks=2"], ["scenario.weeks=0"], ["seed=3"]):
        proc = sim_run([*FAST, *args, f"hydra.run.dir={run}"], cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-3000:]
        line = _one_line_no_traceback(proc)
        assert "already holds a run" in line and str(run) in line, line
        assert _digest(run) == before  # nothing modified: .hydra/, status.json, the log
    # a failed run is a run too
    failed = tmp_path / "failed"
    proc = sim_run([*FAST, "scenario.weeks=2", f"hydra.run.dir={failed}"], cwd=tmp_path,
                   SIM_FAULT_INJECT="*")
    assert proc.returncode != 0 and _status(failed) == "failed"
    before = _digest(failed)
    proc = sim_run([*FAST, "scenario.weeks=2", f"hydra.run.dir={failed}"], cwd=tmp_path)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert _digest(failed) == before


def test_unwritable_run_dir_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder", encoding="utf-8")
    run = blocker / "run"
    proc = sim_run([*FAST, "scenario.weeks=2", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = _one_line_no_traceback(proc)
    assert line.startswith("cannot write") and str(run) in line, line


def test_scenario_name_cannot_escape_outputs(tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    proc = sim_run([*FAST, "scenario.name=../../x"], cwd=cwd)
    assert proc.returncode == 2
    line = _one_line_no_traceback(proc)
    assert "scenario.name" in line
    assert list(cwd.iterdir()) == [] and not (tmp_path / "x").exists()


def test_interpolation_loop_in_default_run_dir_names_the_key(tmp_path):
    proc = sim_run([*FAST, "scenario.name=${scenario.name}"], cwd=tmp_path)
    assert proc.returncode == 2
    line = _one_line_no_traceback(proc)
    assert line.startswith("config error: scenario.name"), line
    assert not (tmp_path / "outputs").exists()


def _wait_running(run: Path, p: subprocess.Popen, timeout: float = 240) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and p.poll() is None:
        st = (run / "status.json")
        if st.exists():
            try:
                info = json.loads(st.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                info = {}
            if info.get("status") == "running":
                return int(info["pid"])
        time.sleep(0.05)
    raise AssertionError("the run never started")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_marks_run_interrupted(tmp_path, sig):
    run = tmp_path / "run"
    with (tmp_path / "err.txt").open("w") as errf:
        p = subprocess.Popen([*CLI, *FAST, "scenario.weeks=5000", f"hydra.run.dir={run}"],
                             cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=errf)
        try:
            pid = _wait_running(run, p)
            time.sleep(0.5)
            os.kill(pid, sig)
            p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
    err = (tmp_path / "err.txt").read_text(encoding="utf-8")
    assert p.returncode == 128 + sig, err[-3000:]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-3000:]
    assert err.startswith(f"interrupted by {signal.Signals(sig).name}")
    info = json.loads((run / "status.json").read_text(encoding="utf-8"))
    assert info["status"] == "interrupted" and signal.Signals(sig).name in info["error"]
    assert not list(run.glob(".*.tmp")) and not (run / "summary.json").exists()


INVARIANT_SCRIPT = r"""
import sys
import sim.invariants as inv
inv.check_run = lambda model, res: [inv.Violation("territory_shares",
                                                  "share_territory_area of ISIS at step 1 = -0.36")]
from sim.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_invariant_failure_fails_the_run_and_keeps_data(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", INVARIANT_SCRIPT, "run", *FAST, "scenario.weeks=2",
                           f"hydra.run.dir={run}"], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    line = _one_line_no_traceback(proc)
    assert "territory_shares" in line and "INVALID" in line, line
    info = json.loads((run / "status.json").read_text(encoding="utf-8"))
    assert info["status"] == "failed" and info["failed_invariant"] == "territory_shares"
    assert "territory_shares" in (run / "INVALID").read_text(encoding="utf-8")
    from sim.outputs import read_summary

    summ = read_summary(run / "summary.json")  # the data are kept for inspection
    assert summ["invariant_violations"] == {"territory_shares":
                                            "share_territory_area of ISIS at step 1 = -0.36"}
    assert (run / "timeseries.parquet").exists() and (run / "control.nc").exists()


def _limit_file_size(nbytes: int):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


@pytest.mark.slow
def test_file_size_limit_is_one_line(tmp_path):
    """``ulimit -f``: control.nc (~330 kB for 300 weeks) no longer fits; HDF5's own error stack
    (dozens of lines) goes to error.log, the terminal gets one line naming the file."""
    run = tmp_path / "run"
    proc = subprocess.run([*CLI, *FAST, "scenario.weeks=300", f"hydra.run.dir={run}"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600,
                          check=False, preexec_fn=_limit_file_size(200_000))
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = _one_line_no_traceback(proc)
    assert line.startswith(f"cannot write {run / 'control.nc'}"), line
    assert _status(run) == "failed"
    assert not list(run.glob(".*.tmp")) and not (run / "summary.json").exists()


@pytest.mark.slow
def test_sigterm_mid_write_leaves_no_temporary_file(tmp_path):
    """SIGTERM the moment the temporary file of ``control.nc`` appears: the run ends as
    ``interrupted`` (exit 143, one line) and removes the temporary file."""
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        p = subprocess.Popen([*CLI, "geography=res_010", "scenario.weeks=40", "output.plots=false",
                              f"hydra.run.dir={run}"], cwd=tmp_path, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        caught = False
        try:
            while p.poll() is None and not caught:
                if run.exists() and any(n.startswith(".control.nc.") and n.endswith(".tmp")
                                        for n in os.listdir(run)):
                    p.send_signal(signal.SIGTERM)
                    caught = True
                    break
                time.sleep(0.001)
            _, err = p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
        if caught and p.returncode == 128 + signal.SIGTERM:
            break
    else:
        pytest.fail("never caught a run while it was writing control.nc")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-3000:]
    assert _status(run) == "interrupted"
    assert not list(run.glob(".*.tmp")), sorted(os.listdir(run))
    assert not (run / "control.nc").exists() and not (run / "summary.json").exists()


# ======================================================================================
# determinism
# ======================================================================================
DET = ["geography=res_010", "scenario.weeks=8", "output.plots=false"]


@pytest.mark.slow
def test_outputs_byte_identical_across_processes_and_launchers(tmp_path):
    from sim.outputs import read_summary

    runs = {
        "single_a": ([*DET, f"hydra.run.dir={tmp_path / 'single_a'}"], tmp_path / "single_a"),
        "single_b": ([*DET, f"hydra.run.dir={tmp_path / 'single_b'}"], tmp_path / "single_b"),
        # n_jobs=2: the single job runs in a loky worker process (n_jobs=1 would run in-process)
        "joblib": (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *DET, "seed=20170701",
                    f"hydra.sweep.dir={tmp_path / 'joblib'}"], tmp_path / "joblib"),
        "basic": (["-m", "hydra/launcher=basic", *DET, "seed=20170701",
                   f"hydra.sweep.dir={tmp_path / 'basic'}"], tmp_path / "basic"),
    }

    def one(item):
        name, (args, _) = item
        return name, sim_run(args, cwd=tmp_path)

    with cf.ThreadPoolExecutor(max_workers=len(runs)) as ex:
        procs = dict(ex.map(one, runs.items()))
    dirs = {}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
        found = sorted(runs[name][1].rglob("summary.json"))
        assert len(found) == 1, (name, found)
        dirs[name] = found[0].parent
    for fname in ("timeseries.parquet", "control.nc"):
        blobs = {name: (d / fname).read_bytes() for name, d in dirs.items()}
        ref = blobs["single_a"]
        assert len(ref) > 0
        for name, blob in blobs.items():
            assert blob == ref, f"{fname} of {name} differs from single_a"
    # the summaries agree too, apart from the timings
    summ = {name: read_summary(d / "summary.json") for name, d in dirs.items()}
    for s in summ.values():
        for k in ("wall_seconds", "phase_seconds"):
            s.pop(k, None)
    assert all(s == summ["single_a"] for s in summ.values())


# ======================================================================================
# faults
# ======================================================================================
def _sweep_runs(sweep_dir: Path, key: str) -> dict[str, Path]:
    """The run dirs of a sweep by the value of the swept override ``key``."""
    import yaml

    out = {}
    for d in sweep_dir.iterdir():
        f = d / ".hydra" / "overrides.yaml"
        if d.is_dir() and f.exists():
            for o in yaml.safe_load(f.read_text(encoding="utf-8")):
                if o.startswith(f"{key}="):
                    out[o.split("=", 1)[1]] = d
    return out


def _status(d: Path) -> str | None:
    try:
        return json.loads((d / "status.json").read_text(encoding="utf-8")).get("status")
    except (OSError, json.JSONDecodeError):
        return None


@pytest.mark.slow
def test_sweep_survives_failing_runs(tmp_path):
    """One run with a bad config value, one raising (SIM_FAULT_INJECT): the others complete,
    the sweep exits non-zero (3) and lists the failures."""
    sweep = tmp_path / "sweep"
    proc = sim_run(["-m", "geography=tiny", "output.plots=false", "scenario.weeks=4",
                    "hydra.launcher.n_jobs=2",
                    "scenario.hostility.ISIS.SDF=0.5,1.5,0.7,0.9", f"hydra.sweep.dir={sweep}"],
                   cwd=tmp_path, SIM_FAULT_INJECT="scenario.hostility.ISIS.SDF=0.7")
    assert proc.returncode == 3, proc.stderr[-3000:]
    runs = _sweep_runs(sweep, "scenario.hostility.ISIS.SDF")
    assert sorted(runs) == ["0.5", "0.7", "0.9", "1.5"]
    for ok in ("0.5", "0.9"):
        assert (runs[ok] / "summary.json").exists(), files_under(runs[ok])
        assert _status(runs[ok]) == "ok"
    for failed in ("0.7", "1.5"):
        assert not (runs[failed] / "summary.json").exists()
        assert _status(runs[failed]) == "failed"
        assert (runs[failed] / "error.log").exists()
    assert "scenario.hostility.ISIS.SDF" in (runs["1.5"] / "error.log").read_text(encoding="utf-8")
    assert "FAILED" in proc.stderr


def _kill_when_running(proc: subprocess.Popen, run_glob: str, sweep: Path, timeout: float = 180):
    """SIGKILL the worker process of the run matching ``run_glob`` as soon as it runs."""
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        for st in sweep.glob(f"{run_glob}/status.json"):
            try:
                info = json.loads(st.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if info.get("status") == "running" and info.get("pid") not in (None, proc.pid):
                os.kill(int(info["pid"]), signal.SIGKILL)
                return int(info["pid"])
        time.sleep(0.01)
    return None


@pytest.mark.slow
def test_sweep_survives_killed_run(tmp_path):
    sweep = tmp_path / "sweep"
    with (tmp_path / "stderr.txt").open("w") as errf:  # a file: an unread pipe could block
        p = subprocess.Popen([*CLI, "-m", "geography=tiny", "output.plots=false",
                              "scenario.weeks=400", "hydra.launcher.n_jobs=2", "replicate=0,1,2,3",
                              f"hydra.sweep.dir={sweep}"],
                             cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=errf)
        try:
            killed = _kill_when_running(p, "1_*", sweep)
            p.wait(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
    err = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert killed is not None, "the run to kill never started"
    runs = _sweep_runs(sweep, "replicate")
    assert not (runs["1"] / "summary.json").exists()
    for ok in ("0", "2", "3"):
        assert ok in runs and (runs[ok] / "summary.json").exists(), (ok, err[-3000:])
    assert p.returncode == 3, err[-3000:]


@pytest.mark.slow
def test_kill_mid_write_leaves_no_partial_file(tmp_path):
    """SIGKILL ``sim run`` the moment the temporary file of ``control.nc`` (the second output)
    appears: every file under a final name is complete (readable, all steps) and the control
    file being written never appears under its final name."""
    from sim.outputs import (
        CONTROL_FILE,
        SUMMARY_FILE,
        TIMESERIES_FILE,
        read_control,
        read_summary,
        read_timeseries,
    )

    weeks = 40
    finals = (TIMESERIES_FILE, CONTROL_FILE, SUMMARY_FILE)
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        p = subprocess.Popen([*CLI, "geography=res_010", f"scenario.weeks={weeks}",
                              "output.plots=false", f"hydra.run.dir={run_dir}"],
                             cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        caught = None
        try:
            while p.poll() is None and caught is None:
                if run_dir.exists():
                    tmps = [n for n in os.listdir(run_dir)
                            if n.startswith(f".{CONTROL_FILE}.") and n.endswith(".tmp")]
                    if tmps:
                        p.send_signal(signal.SIGKILL)
                        caught = tmps[0]
                        break
                time.sleep(0.001)
            p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
        if caught is not None:
            break
    else:
        pytest.fail("never caught a run while it was writing an output")

    assert p.returncode == -signal.SIGKILL
    present = [f for f in finals if (run_dir / f).exists()]
    victim = CONTROL_FILE
    print(f"killed while writing {victim} (attempt {attempt + 1}); complete files: {present}; "
          f"left behind: {sorted(n for n in os.listdir(run_dir) if n.endswith('.tmp'))}")
    assert victim not in present, f"{victim} exists although the kill came while writing it"
    n_dates = weeks + 1
    assert TIMESERIES_FILE in present  # written (atomically) before control.nc
    ts = read_timeseries(run_dir / TIMESERIES_FILE)
    assert ts["step"].nunique() == n_dates
    if CONTROL_FILE in present:
        ds = read_control(run_dir / CONTROL_FILE)
        assert ds.sizes["time"] == n_dates
        ds.close()
    if SUMMARY_FILE in present:
        assert "config" in read_summary(run_dir / SUMMARY_FILE)


def test_atomic_path_exists_and_cleans_up(tmp_path):
    """``sim.outputs.atomic_path``: the final name appears only on success."""
    from sim.outputs import atomic_path

    target = tmp_path / "x.bin"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]


MEMORY_SCRIPT = r"""
import gc, json, sys
import numpy as np
import sim.runner as runner
from sim.cli import compose

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0

WARM, N = 100, 2000
box = {}
build = runner.build_model
def keep(cfg):
    box["model"] = m = build(cfg)
    return m
runner.build_model = keep
rss, recs = {}, {}
def progress(k, n):
    if k in (WARM, n // 2, n):
        gc.collect()
        rss[k] = rss_mb()
        recs[k] = len(box["model"].records)
res = runner.run_scenario(compose(["geography=tiny", f"scenario.weeks={N}"]), progress=progress)
m = box["model"]
# what a run keeps by design between WARM and N: the control/level/damage history
# (int8, int8, float32 per cell and step) and the metric records (tuple + float + list slot)
cells = int(np.prod(m.geo.shape))
per_record = sys.getsizeof(m.records[-1]) + sys.getsizeof(m.records[-1][3]) + 8
stored_mb = ((N - WARM) * cells * 6 + (recs[N] - recs[WARM]) * per_record) / 2**20
print(json.dumps({"rss_mb": rss, "stored_mb": stored_mb, "records": recs[N],
                  "people_error": m.people_total() - m.initial_people}))
"""


@pytest.mark.slow
def test_long_run_memory_is_flat(tmp_path, record_property):
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    rss = {int(k): v for k, v in info["rss_mb"].items()}
    warm, mid, end = (rss[k] for k in sorted(rss))
    growth = end - warm
    unexplained = growth - info["stored_mb"]
    report = (f"RSS after 100 steps {warm:.1f} MB, after 1000 {mid:.1f} MB, "
              f"after 2000 {end:.1f} MB; "
              f"growth {growth:.1f} MB of which {info['stored_mb']:.1f} MB is stored history "
              f"({info['records']} records) -> unexplained {unexplained:.1f} MB")
    print(report)
    record_property("rss", report)
    assert unexplained < 16.0, report
    # and the second half grows no faster than the first (no accelerating leak)
    assert (end - mid) <= 1.5 * (mid - warm) + 4.0, report
