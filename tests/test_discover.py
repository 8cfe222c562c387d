"""Scenario discovery (issue 16 item 3): PRIM (EMA Workbench) over a sweep's parameters against
a threshold on one outcome; boxes with coverage, density and restricted ranges, and a plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ema_workbench")

A = "override.scenario.isis_cohesion"
B = "override.control.capture_ratio"


def _runs(n=200, seed=0) -> pd.DataFrame:
    """A synthetic experiment table: the case of interest (low SDF share) lives in the box
    isis_cohesion < 0.8 and capture_ratio > 2.4 (plus 5% noise)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.6, 1.4, n)
    b = rng.uniform(1.5, 3.0, n)
    inside = (a < 0.8) & (b > 2.4)
    y = np.where(inside, 0.05, 0.3) + rng.normal(0, 0.01, n)
    flip = rng.random(n) < 0.05
    y[flip] = 0.3
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "status": "ok",
                         "scenario": "baseline_2017", "seed": 1, "replicate": np.arange(n) % 3,
                         A: [f"{x:.4f}" for x in a], B: [f"{x:.4f}" for x in b],
                         "override.replicate": [str(i % 3) for i in range(n)],
                         "override.geography": "tiny", "vacuum_share_SDF": y,
                         "start_date": "2017-07-01"})


def test_prim_finds_the_planted_box(tmp_path):
    from sim import discover as D

    d = D.run(_runs(), "vacuum_share_SDF", below=0.1, min_density=0.8)
    assert sorted(d.X.columns) == ["control.capture_ratio", "scenario.isis_cohesion"]  # swept only
    assert d.boxes, D.describe(d)
    b = d.boxes[0]
    lim = b.limits.set_index("parameter")
    assert set(lim.index) == {"scenario.isis_cohesion", "control.capture_ratio"}
    assert lim.loc["scenario.isis_cohesion", "max"] == pytest.approx(0.8, abs=0.08)
    assert lim.loc["control.capture_ratio", "min"] == pytest.approx(2.4, abs=0.15)
    assert b.density >= 0.8 and b.coverage >= 0.6
    assert b.density > d.base_density
    assert (lim["qp_value"] < 0.05).all()
    paths = D.write(d, tmp_path / "disc", dpi=50)
    tab = pd.read_csv(paths["boxes"])
    assert {"box", "coverage", "density", "mass", "parameter", "min", "max", "full_min",
            "full_max", "qp_value"} <= set(tab.columns)
    assert paths["plot"].stat().st_size > 5000
    tr = pd.read_csv(paths["trajectory"])
    assert tr["chosen"].sum() == len(d.boxes)
    assert "coverage" in paths["readme"].read_text() and "Case of interest" in D.describe(d)


def test_discovery_refuses_what_it_cannot_answer():
    from sim import discover as D

    runs = _runs()
    with pytest.raises(D.DiscoveryError, match="not a scalar outcome"):
        D.run(runs, "vacuum_share_SFD", below=0.1)
    with pytest.raises(D.DiscoveryError, match="too few cases"):
        D.run(runs, "vacuum_share_SDF", below=-1)
    with pytest.raises(D.DiscoveryError, match="every run"):
        D.run(runs, "vacuum_share_SDF", below=10)
    with pytest.raises(D.DiscoveryError, match="at least 10"):
        D.run(runs.head(8), "vacuum_share_SDF", below=0.1)
    with pytest.raises(D.DiscoveryError, match="no swept parameter"):
        D.run(runs.assign(**{A: "1.0", B: "2.0"}), "vacuum_share_SDF", below=0.1)
    with pytest.raises(D.DiscoveryError, match="exactly one"):
        D.run(runs, "vacuum_share_SDF")
    d = D.run(runs, "vacuum_share_SDF", below=0.1, params=["isis_cohesion"])
    assert list(d.X.columns) == ["scenario.isis_cohesion"]


def test_sim_discover_on_a_folder_of_runs(tmp_path, capsys):
    """The command on a (fake) sweep folder: collects it, prints the boxes, writes the files;
    bad options fail with one line before PRIM runs."""
    from sim.commands.discover import main

    root = tmp_path / "sweep"
    for r in _runs(60, seed=3).to_dict("records"):
        d = root / r["run_id"]
        (d / ".hydra").mkdir(parents=True)
        ov = [f"scenario.isis_cohesion={r[A]}", f"control.capture_ratio={r[B]}",
              f"replicate={r['replicate']}"]
        (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
        (d / "summary.json").write_text(json.dumps({
            "scenario": "baseline_2017", "seed": 1, "replicate": int(r["replicate"]),
            "vacuum_share_SDF": r["vacuum_share_SDF"],
            "config": {"scenario": {"name": "baseline_2017", "weeks": 3, "start_date": "2017-07-01"},
                       "geography": {"name": "tiny"}}}))
    assert main([str(root), "--outcome", "vacuum_share_SDF", "--below", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "Box 1: coverage" in out and "scenario.isis_cohesion" in out
    res = root / "discover" / "vacuum_share_SDF_below_0.1"
    for f in ("boxes.csv", "trajectory.csv", "discover.png", "README.txt"):
        assert (res / f).exists()
    for bad in (["--below", "0.1", "--above", "0.2"], ["--below", "0.1", "--min-density", "0"],
                ["--below", "0.1", "--max-boxes", "0"]):
        with pytest.raises(SystemExit) if "--above" in bad else _nothing():
            code = main([str(root), "--outcome", "vacuum_share_SDF", *bad])
            assert code == 2
    assert main([str(root), "--outcome", "nope", "--below", "1"]) == 2
    assert "not a scalar outcome" in capsys.readouterr().err
    assert main([str(Path(tmp_path) / "missing"), "--outcome", "x", "--below", "1"]) == 2


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_prim_restricts_a_categorical_parameter():
    """A swept scenario is a categorical parameter (EMA Workbench would drop a column named
    "scenario": the names are neutral inside)."""
    from sim import discover as D

    r = _runs(120)
    r["override.scenario"] = np.where(np.arange(120) % 2, "us_withdrawal", "baseline_2017")
    r.loc[r["override.scenario"] == "us_withdrawal", "vacuum_share_SDF"] = 0.01
    d = D.run(r, "vacuum_share_SDF", below=0.1)
    lim = d.boxes[0].limits.set_index("parameter")
    assert "scenario" in lim.index and lim.loc["scenario", "values"] == "us_withdrawal"
    assert d.boxes[0].density == pytest.approx(1.0)
