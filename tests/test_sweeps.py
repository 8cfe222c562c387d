"""Scenarios, sweeps, ensembles and comparisons (issue 4).

The slow tests drive the real command line (``python -m sim.cli``) in a temporary directory:
a 2-scenario x 10-replicate sweep with the joblib launcher on res_010, with one injected
failure; ``sim collect`` and ``sim compare`` on it; a rerun that only redoes the failed runs;
two sweeps started together; the submitit_local launcher; a Morris sensitivity smoke test.
They never depend on the model's outcome values (still being calibrated).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import compose, config_dir

SCENARIOS = sorted(p.stem for p in (config_dir() / "scenario").glob("*.yaml"))
SWEEP_WEEKS = 12
SWEEP_SEEDS = 10
FAIL_REPLICATE = 7


def sim(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("SIM_FAULT_INJECT", "SIM_RERUN")}
    e.update({"MPLBACKEND": "Agg", **(env or {})})
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], cwd=cwd, env=e, text=True,
                          capture_output=True, timeout=timeout, check=False)


def _ok(p: subprocess.CompletedProcess, codes=(0,)) -> subprocess.CompletedProcess:
    assert p.returncode in codes, f"exit {p.returncode}\nSTDOUT:\n{p.stdout[-4000:]}\nSTDERR:\n{p.stderr[-4000:]}"
    return p


# --------------------------------------------------------------------------------------
# scenario files
# --------------------------------------------------------------------------------------
def test_all_issue_scenarios_exist():
    for name in ("baseline_2017", "us_withdrawal", "kurdish_baghdad_conflict", "turkey_intervention",
                 "no_deconfliction", "porous_borders", "fast_collapse"):
        assert name in SCENARIOS


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_composes_and_validates(name):
    from sim.runner import as_config

    d = compose([f"scenario={name}", "geography=res_010"])
    assert d["scenario"]["name"] == name
    text = (config_dir() / "scenario" / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.startswith("# @package _global_")
    assert "Question:" in text and "Run:" in text
    conf = as_config(d)
    assert conf.scenario.name == name


def test_scenarios_change_what_they_say():
    base = compose(["scenario=baseline_2017"])["scenario"]
    s = compose(["scenario=us_withdrawal"])["scenario"]
    ev = s["events"]["us_withdrawal"]
    assert ev["withdraw"] == ["US_COALITION"] and ev["date"] == "2018-06-01"
    assert set(base["events"]) < set(s["events"])  # the baseline's events still happen
    assert s["air_support"]["us_coalition"]["end"] == "2018-06-01"
    assert s["hostility"] == base["hostility"]  # inherits the rest of the baseline

    s = compose(["scenario=kurdish_baghdad_conflict"])["scenario"]
    ev = s["events"]["kurdish_baghdad_conflict"]
    assert ev["when_isis_share_below"] == pytest.approx(0.01)
    pairs = {frozenset(x[:2]): x[2] for x in ev["set_hostility"]}
    assert pairs[frozenset(("KRG", "IRAQI_GOV"))] == pytest.approx(0.8)
    assert pairs[frozenset(("KRG", "PMF"))] == pytest.approx(0.8)

    s = compose(["scenario=turkey_intervention"])["scenario"]
    assert s["air_support"]["turkey"]["strength"] > base["air_support"]["turkey"]["strength"]
    for ev in s["events"].values():  # no event lowers TURKEY_SNA-SDF again
        for a, b, v in ev.get("set_hostility", []):  # deals and offensives change none
            if {a, b} == {"TURKEY_SNA", "SDF"}:
                assert v == pytest.approx(1.0)

    s = compose(["scenario=no_deconfliction"])["scenario"]
    assert all(d["until"] == s["start_date"] for d in s["deconfliction"].values())

    s = compose(["scenario=porous_borders"])["scenario"]
    assert s["foreign_fighter_exit_rate"] > base["foreign_fighter_exit_rate"]

    s = compose(["scenario=fast_collapse"])["scenario"]
    assert s["isis_cohesion"] == pytest.approx(0.6)


def test_turkey_hostility_reaches_the_model():
    """The model's hostility matrix (symmetric, later entries win) has TURKEY_SNA-SDF = 1."""
    from sim.runner import build_model

    m = build_model(compose(["scenario=turkey_intervention", "geography=res_010"]))
    i, j = m.fidx["TURKEY_SNA"], m.fidx["SDF"]
    assert m.hostility[i, j] == pytest.approx(1.0) and m.hostility[j, i] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------
# fast units: jobs, collect, statistics
# --------------------------------------------------------------------------------------
def test_fault_injection_matching(monkeypatch):
    from sim.jobs import fault_requested

    monkeypatch.delenv("SIM_FAULT_INJECT", raising=False)
    assert fault_requested(["replicate=3"]) is None
    monkeypatch.setenv("SIM_FAULT_INJECT", "replicate=3; seed=9")
    assert fault_requested(["scenario=x", "replicate=3"]) == "replicate=3"
    assert fault_requested(["replicate=4"]) is None
    assert fault_requested(["replicate=4"], {"seed": 9}) == "seed=9"
    monkeypatch.setenv("SIM_FAULT_INJECT", "*")
    assert fault_requested([]) == "*"


def test_expand_sweep_counts_jobs():
    from sim.compose import expand_sweep

    jobs = expand_sweep(["scenario=a,b", "replicate=range(3)", "geography=res_010"])
    assert len(jobs) == 6
    assert all("geography=res_010" in j for j in jobs)


def _fake_run(d: Path, overrides, status=None, summary=True, error=None, scenario="s", rep=0):
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if summary:
        (d / "summary.json").write_text(json.dumps({
            "scenario": scenario, "seed": 1, "replicate": rep, "cum_displaced": 10.0 + rep,
            "key_place_controller_final": {"Raqqa": "SDF"}, "isis_defeat_date": None,
            "config": {"scenario": {"name": scenario, "weeks": 3, "start_date": "2017-07-01"},
                       "geography": {"name": "tiny"}}}))
    if status:
        (d / "status.json").write_text(json.dumps({"status": status, "overrides": overrides,
                                                   **({"error": error} if error else {})}))
    if error and not status:
        (d / "error.log").write_text("Traceback ...\n" + error + "\n")


def test_collect_classifies_and_never_drops(tmp_path, capsys):
    from sim.collect import collect, report, write

    root = tmp_path / "sweep"
    (root).mkdir()
    (root / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - replicate=range(5)\n")
    _fake_run(root / "0_replicate=0", ["replicate=0"], status="ok", rep=0)
    _fake_run(root / "1_replicate=1", ["replicate=1"], status="failed", summary=False,
              error="RuntimeError: boom", rep=1)
    _fake_run(root / "2_replicate=2", ["replicate=2"], status="running", summary=False, rep=2)
    _fake_run(root / "3_replicate=3", ["replicate=3"], summary=False, error="ValueError: bad", rep=3)
    # replicate=4 never started: missing
    col = collect(root)
    st = dict(zip(col.runs["overrides"], col.runs["status"]))
    assert st == {"replicate=0": "ok", "replicate=1": "failed", "replicate=2": "incomplete",
                  "replicate=3": "failed", "replicate=4": "missing"}
    assert len(col.problems) == 4
    text = report(col)
    assert "WARNING: 4 run(s) are NOT ok" in text
    assert "boom" in text and "bad" in text
    paths = write(col)
    runs = pd.read_parquet(paths["runs"])
    assert len(runs) == 5
    ok = runs[runs["status"] == "ok"].iloc[0]
    assert json.loads(ok["key_place_controller_final"]) == {"Raqqa": "SDF"}
    assert ok["override.replicate"] == "0"


def _fake_outputs(d: Path, rep: int, level: float, netcdf: bool = True) -> None:
    """A small ``timeseries.parquet`` (and ``control.nc``) as a run writes them."""
    import xarray as xr

    dates = pd.date_range("2017-07-01", periods=3, freq="7D")
    ts = pd.DataFrame({"date": np.repeat(dates, 2), "step": np.repeat(np.arange(3), 2).astype("int32"),
                       "metric": ["share_territory_area", "n_displaced"] * 3,
                       "faction": ["ISIS", "ALL"] * 3,
                       "value": [level, 100.0 * rep, level, 110.0 * rep, level, 120.0 * rep]})
    ts.to_parquet(d / "timeseries.parquet", index=False)
    if netcdf:
        ctrl = np.zeros((3, 4, 5), np.int8)
        ctrl[:, :, :2] = -1
        xr.Dataset({"controller": (("time", "lat", "lon"), ctrl)},
                   coords={"time": dates, "lat": [36.0, 35.9, 35.8, 35.7],
                           "lon": [38.0, 38.1, 38.2, 38.3, 38.4], "faction": ["ISIS"]}
                   ).to_netcdf(d / "control.nc", engine="netcdf4")


def _grouped_sweep(root: Path, strengths=("0", "1.5"), reps=3) -> None:
    key = "scenario.air_support.us_coalition.strength"
    for i, (v, r) in enumerate([(v, r) for v in strengths for r in range(reps)]):
        d = root / f"{i}_{key}={v},replicate={r}"
        ov = [f"{key}={v}", f"replicate={r}", "geography=tiny", "output.plots=false"]
        _fake_run(d, ov, status="ok", rep=r)
        summ = json.loads((d / "summary.json").read_text())
        summ["vacuum_share_SDF"] = 0.05 if v == "0" else 0.3
        (d / "summary.json").write_text(json.dumps(summ))
        _fake_outputs(d, r, float(v))


def test_collect_groups_runs_by_configuration(tmp_path):
    """Issue 16.1: a sweep over a parameter is collected into separate groups; every table
    carries the overrides as columns; statistics are per configuration."""
    from sim.collect import collect, group_labels, write
    from sim.ensemble import bands, ensemble_plots, outcomes_by_group

    root = tmp_path / "sweep"
    _grouped_sweep(root)
    col = collect(root)
    key = "override.scenario.air_support.us_coalition.strength"
    assert len(col.groups) == 2
    assert all("strength=" in g and "replicate" not in g and "output." not in g for g in col.groups)
    assert set(group_labels(col.groups).values()) == {"scenario.air_support.us_coalition.strength=0",
                                                      "scenario.air_support.us_coalition.strength=1.5"}
    ts = col.timeseries
    assert {"run_id", "group", "scenario", "seed", "replicate", key, "override.geography"} <= set(ts.columns)
    assert ts.groupby(key, observed=True)["run_id"].nunique().to_dict() == {"0": 3, "1.5": 3}
    b = bands(ts, "share_territory_area", "ISIS")
    assert sorted(b["group"].astype(str).unique()) == col.groups  # one band per configuration
    assert sorted(b.groupby("group", observed=True)["q50"].first()) == [0.0, 1.5]  # not pooled
    st = outcomes_by_group(col.runs).query("outcome == 'vacuum_share_SDF'")
    assert sorted(st["mean"]) == pytest.approx([0.05, 0.3]) and (st["n"] == 3).all()
    paths = write(col)
    runs = pd.read_parquet(paths["runs"])
    assert {"group", key} <= set(runs.columns) and runs["group"].nunique() == 2
    figs = ensemble_plots(col, root / "ensemble", background=False, dpi=40)
    assert len([k for k in figs if k.startswith("control_probability:")]) == 2
    readme = (root / "ensemble" / "README.txt").read_text()
    assert "never pooled" in readme and "strength=1.5: 3 runs" in readme
    # pooling only on request, and then it says so
    ensemble_plots(col, root / "pooled", background=False, dpi=40, pool=True)
    assert "POOLED over different values of" in (root / "pooled" / "README.txt").read_text()


def test_collect_skips_unreadable_runs_and_says_why(tmp_path, capsys):
    """Issue 15.4: a truncated timeseries.parquet, control.nc or summary.json is listed with
    the reason, left out, and the collection (and its plots) finish."""
    from sim.commands.collect import main

    root = tmp_path / "sweep"
    _grouped_sweep(root, strengths=("0",), reps=4)
    runs = sorted(d for d in root.iterdir() if d.is_dir())
    for d, name in zip(runs, ("timeseries.parquet", "control.nc", "summary.json")):
        f = d / name
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    assert main([str(root), "--no-background", "--dpi", "40"]) == 0
    err = capsys.readouterr().err
    assert err.count("UNREADABLE") == 3
    assert "timeseries.parquet:" in err and "control.nc:" in err and "summary.json" in err
    out = pd.read_parquet(root / "runs.parquet")
    assert (out["status"] == "unreadable").sum() == 3 and (out["status"] == "ok").sum() == 1
    assert pd.read_parquet(root / "timeseries.parquet")["run_id"].nunique() == 1
    assert (root / "ensemble" / "territory_bands.png").exists()


def test_collect_empty_folder_and_bad_flags_fail_with_one_line(tmp_path, capsys):
    from sim.commands.collect import main

    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no runs found" in err
    assert main([str(tmp_path / "nope")]) == 2
    assert main([str(tmp_path / "empty"), "--map-dates", "2018-13-45"]) == 2
    assert "--map-dates" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "runs.parquet").exists()


@pytest.mark.parametrize("flags, what", [(["--boot", "0"], "--boot 0"), (["--seeds", "0"], "--seeds 0"),
                                         (["--weeks", "0"], "--weeks 0"), (["--alpha", "2"], "--alpha"),
                                         (["--map-dates", "soon"], "--map-dates")])
def test_compare_rejects_bad_flags_before_running(tmp_path, monkeypatch, capsys, flags, what):
    from sim.commands import compare

    ran = []
    monkeypatch.setattr(compare, "run_ensemble", lambda *a, **k: ran.append(1) or 0)
    out = tmp_path / "cmp"
    assert compare.main(["baseline_2017", "us_withdrawal", "--out", str(out), *flags]) == 2
    assert what in capsys.readouterr().err
    assert not ran and not out.exists()


def test_compare_groups_of_a_parameter_sweep(tmp_path, capsys):
    """A folder with two values of one parameter: each value is one arm, paired on
    (seed, replicate); --reference picks A by a shortened key."""
    from sim.commands import compare

    root = tmp_path / "sweep"
    _grouped_sweep(root, reps=4)
    out = tmp_path / "cmp"
    assert compare.main([str(root), "--reference", "strength=1.5", "--out", str(out), "--no-maps",
                         "--boot", "200", "--dpi", "40"]) == 0
    cap = capsys.readouterr()
    tab = pd.read_csv(out / "differences.csv")
    assert set(tab["A"]) == {"scenario.air_support.us_coalition.strength=1.5"}
    assert set(tab["B"]) == {"scenario.air_support.us_coalition.strength=0"}
    row = tab.set_index("outcome").loc["vacuum_share_SDF"]
    assert row["mean_diff"] == pytest.approx(-0.25) and row["n_pairs"] == 4
    assert row["p_value"] == pytest.approx(2 / 16) and not row["significant"]
    assert "only 4 pair(s)" in cap.err
    assert "Holm" in (out / "README.txt").read_text()
    # one arm out of the folder by selection; a selection matching nothing is one line
    assert compare.main([f"{root}:strength=0", f"{root}:strength=1.5", "--out", str(tmp_path / "c2"),
                         "--no-maps", "--boot", "100", "--dpi", "40"]) == 0
    assert compare.main([f"{root}:strength=7", str(root), "--out", str(tmp_path / "c3")]) == 2
    assert "no ok run matches" in capsys.readouterr().err


def test_compare_empty_folder_is_an_error(tmp_path, capsys):
    from sim.commands import compare

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 2
    assert "no runs found" in capsys.readouterr().err


def test_bootstrap_and_pairing():
    from sim.ensemble import bootstrap_ci, outcome_differences, pair_runs

    lo, hi = bootstrap_ci(np.array([1.0, 2.0, 3.0, 4.0]), rng=np.random.default_rng(1))
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    assert np.isnan(bootstrap_ci(np.array([5.0]))[0])  # no interval from one pair
    mk = lambda s, reps, off: pd.DataFrame({
        "run_id": [f"{s}/{r}" for r in reps], "status": "ok", "scenario": s, "seed": 1,
        "replicate": reps, "x": [r + off for r in reps], "start_date": "2017-07-01"})
    a, b = mk("A", [0, 1, 2, 3], 0.0), mk("B", [0, 1, 2, 5], 10.0)
    pairs, unpaired = pair_runs(a, b, "A", "B")
    assert list(pairs["replicate"]) == [0, 1, 2]
    assert len(unpaired) == 2
    tab = outcome_differences(a, b, pairs, "A", "B", n_boot=200)
    row = tab[tab["outcome"] == "x"].iloc[0]
    assert row["n_pairs"] == 3 and row["mean_diff"] == pytest.approx(10.0)
    assert row["ci95_low"] == pytest.approx(10.0) and row["ci_excludes_0"]


def test_sensitivity_analysis_on_a_known_function():
    from sim import sensitivity as S

    for method, n in (("latin", 64), ("morris", 12), ("sobol", 64)):
        design = S.normalise_design({
            "method": method, "samples": n, "parameters": {"a": [0, 1], "b": [0, 1], "c": [0, 1]},
            "outcomes": ["y"]})
        X = S.sample(design)
        Y = pd.DataFrame({"y": 10 * X[:, 0] + 5 * X[:, 1] + 0 * X[:, 2]})
        idx, warn = S.analyse(design, X, Y)
        main = idx[idx["index"] == S.MAIN_INDEX[method]].set_index("parameter")["value"]
        assert main["a"] > main["b"] > abs(main["c"]), (method, main)
        assert not warn


# --------------------------------------------------------------------------------------
# the real command line
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """2 scenarios x 10 replicates, joblib on all cores, one replicate made to fail."""
    cwd = tmp_path_factory.mktemp("sweep")
    sdir = cwd / "multirun" / "study"
    args = ["run", "-m", "scenario=baseline_2017,us_withdrawal", f"replicate=range({SWEEP_SEEDS})",
            "geography=res_010", f"scenario.weeks={SWEEP_WEEKS}", "output.plots=false",
            "output.gif=false", "hydra/launcher=joblib", f"hydra.sweep.dir={sdir}"]
    t0 = time.perf_counter()
    p = sim(*args, cwd=cwd, env={"SIM_FAULT_INJECT": f"replicate={FAIL_REPLICATE}"})
    wall = time.perf_counter() - t0
    print(f"\n[timing] 2 x {SWEEP_SEEDS} sweep, {SWEEP_WEEKS} weeks, res_010, joblib: {wall:.1f} s")
    return {"cwd": cwd, "dir": sdir, "proc": p, "args": args, "wall": wall}


@pytest.mark.slow
def test_sweep_survives_a_failing_run(sweep):
    p = _ok(sweep["proc"], codes=(3,))  # 3 = some runs failed, the others completed
    runs = sorted(d for d in sweep["dir"].iterdir() if (d / ".hydra").is_dir())
    assert len(runs) == 2 * SWEEP_SEEDS
    failed = [d for d in runs if f"replicate={FAIL_REPLICATE}," in d.name + ","]
    assert len(failed) == 2
    for d in runs:
        st = json.loads((d / "status.json").read_text())
        if d in failed:
            assert st["status"] == "failed" and "SIM_FAULT_INJECT" in st["error"]
            assert "InjectedFault" in (d / "error.log").read_text()
            assert not (d / "summary.json").exists()
        else:
            assert st["status"] == "ok" and (d / "summary.json").exists()
    assert "2 run(s) FAILED" in p.stderr
    assert "[sweep] 20/20 runs done" in p.stdout + p.stderr  # progress with ETA
    assert "ETA" in p.stdout + p.stderr


@pytest.mark.slow
def test_collect_lists_failed_runs(sweep):
    p = _ok(sim("collect", str(sweep["dir"]), "--no-background", cwd=sweep["cwd"]))
    assert "failed 2" in p.stdout + p.stderr and "NOT ok" in p.stderr
    runs = pd.read_parquet(sweep["dir"] / "runs.parquet")
    assert len(runs) == 2 * SWEEP_SEEDS
    assert (runs["status"] == "failed").sum() == 2
    assert set(runs.loc[runs["status"] == "failed", "replicate"]) == {FAIL_REPLICATE}
    assert set(runs["scenario"]) == {"baseline_2017", "us_withdrawal"}
    ts = pd.read_parquet(sweep["dir"] / "timeseries.parquet")
    assert {"run_id", "scenario", "seed", "replicate", "date", "metric", "faction", "value"} <= set(ts.columns)
    assert ts["run_id"].nunique() == 2 * SWEEP_SEEDS - 2
    assert ts["step"].max() == SWEEP_WEEKS
    for f in ("territory_bands.png", "metric_bands.png", "key_places.png",
              "control_probability_baseline_2017.png"):
        assert (sweep["dir"] / "ensemble" / f).stat().st_size > 1000


@pytest.mark.slow
def test_compare_collected_dir(sweep):
    out = sweep["cwd"] / "cmp"
    p = _ok(sim("compare", str(sweep["dir"]), "--out", str(out), "--no-background",
                "--boot", "500", cwd=sweep["cwd"]))
    tab = pd.read_csv(out / "differences.csv")
    assert set(tab["B"]) == {"us_withdrawal"} and set(tab["A"]) == {"baseline_2017"}
    assert (tab["n_pairs"] <= SWEEP_SEEDS - 1).all() and (tab["n_pairs"] > 0).any()
    assert {"mean_diff", "ci95_low", "ci95_high"} <= set(tab.columns)
    ok = tab.dropna(subset=["ci95_low"])
    assert (ok["ci95_low"] <= ok["mean_diff"] + 1e-9).all() and (ok["mean_diff"] <= ok["ci95_high"] + 1e-9).all()
    for f in ("diff_metrics_us_withdrawal_vs_baseline_2017.png",
              "diff_territory_us_withdrawal_vs_baseline_2017.png",
              "diff_maps_us_withdrawal_vs_baseline_2017.png", "bands.png"):
        assert (out / f).stat().st_size > 1000
    assert "Paired differences" in p.stdout


@pytest.mark.slow
def test_rerun_skips_finished_runs(sweep):
    """Depends on the failing sweep above: the rerun (no fault) only redoes the 2 failed runs."""
    before = {d.name: (d / "summary.json").stat().st_mtime_ns
              for d in sweep["dir"].iterdir() if (d / "summary.json").exists()}
    t0 = time.perf_counter()
    p = _ok(sim(*sweep["args"], cwd=sweep["cwd"]))
    print(f"\n[timing] rerun of the sweep (18 skipped, 2 run): {time.perf_counter() - t0:.1f} s")
    prog = [json.loads(x) for x in (sweep["dir"] / ".sim_progress.jsonl").read_text().splitlines()]
    assert sorted(x["status"] for x in prog).count("skipped") == 2 * SWEEP_SEEDS - 2
    assert sorted(x["status"] for x in prog).count("ok") == 2
    for name, mtime in before.items():  # untouched
        assert (sweep["dir"] / name / "summary.json").stat().st_mtime_ns == mtime
    assert "skipped 18" in p.stdout + p.stderr
    runs = sorted(d for d in sweep["dir"].iterdir() if (d / ".hydra").is_dir())
    assert all(json.loads((d / "status.json").read_text())["status"] == "ok" for d in runs)


@pytest.mark.slow
def test_killed_worker_fails_only_its_run(tmp_path):
    """SIGKILL (e.g. the out-of-memory killer) of the worker doing one run: with the default
    `local` launcher that run is recorded as failed and the others complete (exit code 3)."""
    import signal

    sdir = tmp_path / "kill"
    e = {k: v for k, v in os.environ.items() if k not in ("SIM_FAULT_INJECT", "SIM_RERUN")}
    with (tmp_path / "err.txt").open("w") as errf:
        p = subprocess.Popen([sys.executable, "-m", "sim.cli", "run", "-m", "replicate=0,1,2",
                              "geography=res_010", "scenario.weeks=30", "output.plots=false",
                              "output.gif=false", "output.netcdf=false", "hydra.launcher.n_jobs=2",
                              f"hydra.sweep.dir={sdir}"], cwd=tmp_path, env={**e, "MPLBACKEND": "Agg"},
                             stdout=subprocess.DEVNULL, stderr=errf)
        killed, t0 = None, time.monotonic()
        try:
            while killed is None and p.poll() is None and time.monotonic() - t0 < 180:
                for st in sdir.glob("1_*/status.json"):
                    try:
                        info = json.loads(st.read_text())
                    except (OSError, json.JSONDecodeError):
                        continue
                    if info.get("status") == "running" and info.get("pid") != p.pid:
                        os.kill(int(info["pid"]), signal.SIGKILL)
                        killed = info["pid"]
                time.sleep(0.02)
            p.wait(timeout=240)
        finally:
            if p.poll() is None:
                p.kill()
    err = (tmp_path / "err.txt").read_text()
    assert killed is not None, err[-2000:]
    assert p.returncode == 3, err[-3000:]
    for d in sorted(sdir.glob("[0-9]_*")):
        st = json.loads((d / "status.json").read_text())
        if d.name.startswith("1_"):
            assert st["status"] == "failed" and "SIGKILL" in st["error"]
            assert not (d / "summary.json").exists()
        else:
            assert st["status"] == "ok" and (d / "summary.json").exists()


@pytest.mark.slow
def test_compare_runs_paired_ensemble(tmp_path):
    """``sim compare A B --seeds N``: runs the paired ensemble (same seeds) and compares it."""
    out = tmp_path / "cmp"
    p = _ok(sim("compare", "baseline_2017", "porous_borders", "--seeds", "2", "--weeks", "2",
                "--geography", "res_010", "--out", str(out), "--no-background", "--boot", "200",
                cwd=tmp_path))
    runs = pd.read_parquet(out / "runs" / "runs.parquet")
    assert (runs["status"] == "ok").sum() == 4
    seeds = runs.groupby("scenario")[["seed", "replicate"]].apply(lambda g: sorted(map(tuple, g.values)))
    assert seeds["baseline_2017"] == seeds["porous_borders"]  # common random numbers
    tab = pd.read_csv(out / "differences.csv")
    assert (tab["n_pairs"] == 2).any()
    assert "porous_borders" in p.stdout


@pytest.mark.slow
def test_two_sweeps_in_the_same_second_do_not_collide(tmp_path):
    args = ["run", "-m", "replicate=0", "geography=res_010", "scenario.weeks=1", "output.plots=false",
            "output.gif=false", "output.netcdf=false", "hydra/launcher=basic"]
    e = {**os.environ, "MPLBACKEND": "Agg", "SIM_SWEEP_TAG": "same"}
    e.pop("SIM_FAULT_INJECT", None)
    procs = [subprocess.Popen([sys.executable, "-m", "sim.cli", *args], cwd=tmp_path, env=e,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for pr in procs:
        _, err = pr.communicate(timeout=240)
        assert pr.returncode == 0, err[-3000:]
    dirs = sorted((tmp_path / "multirun").iterdir())
    assert len(dirs) == 2, dirs
    for d in dirs:
        assert "_same_" in d.name
        assert len([r for r in d.iterdir() if (r / "summary.json").exists()]) == 1


def test_sweep_dir_token_differs_between_processes(tmp_path):
    """Two launches with a fixed sweep.dir pattern apart from the token get different dirs."""
    code = ("from sim.cli import register_resolvers; from omegaconf import OmegaConf;"
            "register_resolvers(); c = OmegaConf.create({'d': 'x_${sim.uid:}', 'e': '${d}'});"
            "assert c.d == c.e == c.d; print(c.d)")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(3)}
    assert len(outs) == 3


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sdir = tmp_path / "sm"
    _ok(sim("run", "-m", "hydra/launcher=submitit_local", "replicate=0,1", "geography=res_010",
            "scenario.weeks=2", "output.plots=false", "output.gif=false",
            f"hydra.sweep.dir={sdir}", cwd=tmp_path))
    runs = [d for d in sdir.iterdir() if (d / "summary.json").exists()]
    assert len(runs) == 2


@pytest.mark.slow
def test_ray_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sdir = tmp_path / "ray"
    _ok(sim("run", "-m", "hydra/launcher=ray_local", "replicate=0,1", "geography=res_010",
            "scenario.weeks=2", "output.plots=false", "output.gif=false",
            f"hydra.sweep.dir={sdir}", cwd=tmp_path, timeout=400))
    assert len([d for d in sdir.iterdir() if (d / "summary.json").exists()]) == 2


def test_shipped_sensitivity_designs_load():
    from sim import sensitivity as S

    for f in sorted((config_dir() / "experiment").glob("sensitivity_*.yaml")):
        d = S.load_design(f)
        assert d["method"] in S.METHODS and len(d["parameters"]) >= 2 and d["outcomes"]
        from sim.runner import as_config

        for end in (0, 1):  # every parameter is a valid config key, both ends of its range allowed
            vals = [f"{k}={round(v['bounds'][end]) if v['int'] else v['bounds'][end]}"
                    for k, v in d["parameters"].items()]
            as_config(compose(list(d["overrides"]) + vals))


def test_sensitivity_rounds_the_schemas_integer_keys():
    from sim import sensitivity as S

    assert S.schema_is_int("sieges.delay_weeks") and S.schema_is_int("scenario.weeks")
    assert not S.schema_is_int("sieges.evac_share") and not S.schema_is_int("no.such_key")
    d = S.normalise_design({"method": "morris", "samples": 2, "outcomes": ["x"],
                            "parameters": {"sieges.delay_weeks": [2, 10], "sieges.evac_share": [0.2, 0.7]}})
    X = S.sample(d)
    assert d["parameters"]["sieges.delay_weeks"]["int"] and not d["parameters"]["sieges.evac_share"]["int"]
    np.testing.assert_array_equal(X[:, 0], np.round(X[:, 0]))
    assert (X[:, 1] != np.round(X[:, 1])).any()


@pytest.mark.slow
def test_sensitivity_smoke(tmp_path):
    design = tmp_path / "design.yaml"
    design.write_text("""
method: morris
samples: 2
seed: 3
overrides: [geography=res_010, scenario.weeks=2, output.plots=false, output.gif=false, output.netcdf=false]
parameters:
  scenario.isis_cohesion: [0.6, 1.4]
  control.capture_ratio: [1.5, 3.0]
outcomes: [final_share_territory_area_ISIS, cum_displaced, not_an_outcome]
""")
    out = tmp_path / "sens"
    p = sim("sensitivity", str(design), "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    idx = pd.read_csv(out / "indices.csv")
    assert {"outcome", "parameter", "index", "value"} <= set(idx.columns)
    assert set(idx.loc[idx["index"] == "mu_star", "parameter"]) == {"scenario.isis_cohesion",
                                                                     "control.capture_ratio"}
    assert (out / "sensitivity.png").stat().st_size > 1000
    assert len(pd.read_csv(out / "samples.csv")) == 2 * (2 + 1)
    assert "not_an_outcome" in p.stdout  # an unknown outcome is reported, not silently dropped


@pytest.mark.slow
def test_parameter_sweep_collected_into_groups(tmp_path):
    """Issue 16.1, end to end on the tiny map: `strength=0,1.5` x 2 replicates is collected
    into two configurations (not one pooled ensemble of 4), labelled by the parameter, and
    `sim compare DIR` pairs them."""
    sdir = tmp_path / "air"
    key = "scenario.air_support.us_coalition.strength"
    _ok(sim("run", "-m", f"{key}=0,1.5", "replicate=0,1", "geography=tiny", "scenario.weeks=2",
            "output.plots=false", "output.gif=false", "hydra/launcher=basic",
            f"hydra.sweep.dir={sdir}", cwd=tmp_path))
    p = _ok(sim("collect", str(sdir), "--no-background", "--dpi", "50", cwd=tmp_path))
    assert "2 configuration(s)" in p.stdout and f"{key}=1.5: 2 ok run(s)" in p.stdout
    runs = pd.read_parquet(sdir / "runs.parquet")
    ts = pd.read_parquet(sdir / "timeseries.parquet")
    assert runs["group"].nunique() == 2 and ts["group"].nunique() == 2
    assert sorted(ts[f"override.{key}"].unique()) == ["0", "1.5"]
    assert ts.groupby(f"override.{key}")["run_id"].nunique().tolist() == [2, 2]
    stats = pd.read_csv(sdir / "ensemble" / "outcomes_by_group.csv")
    assert set(stats["label"]) == {f"{key}=0", f"{key}=1.5"} and (stats["n"] <= 2).all()
    assert len(list((sdir / "ensemble").glob("control_probability_*.png"))) == 2
    out = tmp_path / "cmp"
    p = _ok(sim("compare", str(sdir), "--reference", "strength=0", "--out", str(out), "--no-maps",
                "--boot", "100", "--dpi", "50", cwd=tmp_path))
    tab = pd.read_csv(out / "differences.csv")
    assert set(tab["A"]) == {f"{key}=0"} and set(tab["B"]) == {f"{key}=1.5"}
    assert (tab["n_pairs"] <= 2).all() and tab["few_pairs"].all() and not tab["significant"].any()
    assert "only 2 pair(s)" in p.stderr


def test_report_warns_when_resolutions_are_mixed():
    from sim.collect import Collected, mixed_resolutions, report

    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "status": ["ok", "ok", "ok"],
                         "geography": ["res_005", "res_010", "res_005"],
                         "group": ["geography=res_005", "geography=res_010", "geography=res_005"]})
    assert "res_005: 2, res_010: 1" in mixed_resolutions(runs)
    col = Collected(root=Path("."), runs=runs, timeseries=pd.DataFrame(), problems=runs.iloc[:0])
    assert "resolutions are mixed" in report(col)
    assert mixed_resolutions(runs.assign(geography="res_010")) == ""
