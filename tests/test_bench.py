"""Smoke tests of benchmarks/bench.py on the tiny synthetic map (seconds, not minutes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_bench(*args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(BENCH), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text(encoding="utf-8"))


def test_bench_tiny_and_epstein(tmp_path):
    proc, doc = run_bench("--geographies", "tiny", "--steps", "3", "--epstein",
                          "--epstein-size", "12", "--epstein-steps", "2", tmp_path=tmp_path)
    (r,) = doc["resolutions"]
    assert r["geography"] == "tiny" and r["steps"] == 3
    for key in ("wall_s", "step_s", "cpu_s", "steps_per_s", "cell_steps_per_s",
                "agent_steps_per_s", "peak_rss_mb", "n_cells", "n_agents"):
        assert r[key] > 0, key
    assert r["n_cells"] == r["shape"][0] * r["shape"][1]
    assert r["cell_steps_per_s"] == pytest.approx(r["n_cells"] * 3 / r["wall_s"])
    assert r["agent_steps_per_s"] == pytest.approx(r["n_agents"] * 3 / r["wall_s"])
    from sim.model import PHASES

    assert set(r["phase_seconds"]) == set(PHASES)
    assert all(v >= 0 for v in r["phase_seconds"].values())
    assert sum(r["phase_share"].values()) == pytest.approx(1.0)
    ep = doc["epstein"]
    assert ep["size"] == 12 and ep["steps"] == 2 and ep["n_cells"] == 144
    for key in ("wall_s", "cell_steps_per_s", "agent_steps_per_s", "n_agents"):
        assert ep[key] > 0, key
    names = {t["name"]: t for t in doc["targets"]}
    assert set(names) == {"wall_005", "cell_steps_005", "peak_rss", "scaling_0025", "vs_epstein",
                          "sweep_speedup"}
    assert names["wall_005"]["status"] == "SKIP"  # 0.05 deg not run
    assert names["vs_epstein"]["status"] in ("PASS", "FAIL") and names["vs_epstein"]["value"] > 0
    assert names["peak_rss"]["value"] == pytest.approx(r["peak_rss_mb"])
    # the printed report carries the same fields
    for text in ("cell-steps/s", "agent-steps/s", "peakRSS_MB", "share of step time per phase",
                 "Mesa Epstein", "ours/Epstein", "targets:", "[SKIP]"):
        assert text in proc.stdout, text


def test_bench_sweep_tiny(tmp_path):
    proc, doc = run_bench("--resolutions", "--sweep", "--sweep-geography", "tiny",
                          "--sweep-runs", "2", "--sweep-steps", "2", "--sweep-jobs", "2",
                          tmp_path=tmp_path)
    sw = doc["sweep"]
    assert sw["runs"] == 2 and sw["jobs"] == 2
    assert sw["serial_s"] > 0 and sw["parallel_s"] > 0 and sw["speedup"] > 0
    assert sw["identical_results"] is True  # same seeds -> same outcomes in workers
    assert "speed-up" in proc.stdout
    assert doc["resolutions"] == []


def test_targets_and_strict(monkeypatch):
    bench = load_bench()

    def res(geo, wall, rss, steps=104):
        n = {"res_005": 182 * 288, "res_0025": 364 * 576}[geo]
        return {"geography": geo, "label": bench.label_for(geo), "steps": steps, "wall_s": wall,
                "peak_rss_mb": rss, "cell_steps_per_s": n * steps / wall}

    results = [res("res_005", 4.0, 300), res("res_0025", 20.0, 700)]
    epstein = {"cell_steps_per_s": 10_000.0}
    sweep = {"speedup": 1.2, "jobs": 2}
    t = {x["name"]: x for x in bench.check_targets(results, epstein, sweep)}
    assert t["wall_005"]["status"] == "PASS"
    assert t["cell_steps_005"]["status"] == "PASS"
    assert t["peak_rss"]["status"] == "FAIL" and t["peak_rss"]["value"] == 700
    assert t["scaling_0025"]["status"] == "FAIL"
    assert t["scaling_0025"]["value"] == pytest.approx(5.0)
    assert t["vs_epstein"]["status"] == "PASS"
    assert t["sweep_speedup"]["status"] == "FAIL"
    # a shorter horizon is extrapolated to 104 steps
    short = [res("res_005", 1.0, 100, steps=26)]
    t = {x["name"]: x for x in bench.check_targets(short, None, None)}
    assert t["wall_005"]["value"] == pytest.approx(4.0) and t["wall_005"]["status"] == "PASS"
    assert t["vs_epstein"]["status"] == "SKIP" and t["sweep_speedup"]["status"] == "SKIP"
    assert bench.geography_for("0.05") == "res_005" and bench.geography_for("0.025") == "res_0025"
    # --strict turns a FAIL into exit code 1 (default: 0)
    slow = dict(res("res_005", 10.0, 100), shape=[182, 288], n_cells=182 * 288, n_agents=10,
                step_s=9.0, cpu_s=10.0, steps_per_s=10.4, agent_steps_per_s=104.0,
                phase_share={"combat": 1.0})
    monkeypatch.setattr(bench, "run_resolution", lambda geo, steps, cpu: slow)
    assert bench.main(["--resolutions", "0.05", "--cpu", "-1"]) == 0
    assert bench.main(["--resolutions", "0.05", "--cpu", "-1", "--strict"]) == 1
