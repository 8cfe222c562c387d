"""The model end to end: tiny synthetic map (fast), the real grid (slow), the regression
baseline and the CLI."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from sim.cli import compose
from sim.model import PHASES, ConflictModel
from sim.runner import build_model, run_scenario

TINY = ["geography=tiny", "output.plots=false"]
PREFIXES = ("n_", "new_", "cum_", "share_")


@pytest.fixture(scope="module")
def tiny_results():
    return run_scenario(compose([*TINY, "scenario.weeks=20"]))


def test_step_is_a_documented_list_of_phases():
    doc = ConflictModel.step.__doc__
    found = re.findall(r"``(\w+)``", doc)
    assert tuple(found) == PHASES
    for p in PHASES:
        assert hasattr(ConflictModel, f"_phase_{p}")


def test_outputs_have_dates_and_house_metric_names(tiny_results):
    r = tiny_results
    assert len(r.dates) == 21 and str(r.dates[0]) == "2017-07-01"
    assert all((r.dates[k + 1] - r.dates[k]).astype(int) == 7 for k in range(20))
    assert r.control.shape == (21, 24, 36) and r.control.dtype == np.int8
    assert set(r.timeseries.columns) >= {"date", "step", "metric", "faction", "value"}
    for m in r.timeseries.metric.unique():
        assert m.startswith(PREFIXES), m
    assert r.timeseries["date"].nunique() == 21


def test_invariants_every_step_on_tiny_map():
    m = build_model(compose([*TINY, "scenario.weeks=25", "seed=3"]))
    F = m.n_f
    for _ in range(25):
        m.step()
        assert m.people_total() == pytest.approx(m.initial_people, rel=1e-9)
        for f in m.faction_names:
            assert abs(m.fighter_balance(f)) <= 1e-4 * max(m.strength0.max(), 1.0) + 1e-3
        codes = np.unique(m.owner)
        assert set(codes.tolist()) <= set(range(-1, F))  # tiny map: all cells in the theatre
        assert (m.garrison >= -1e-4).all() and (m.hidden >= -1e-4).all()
        assert (m.units.fighters >= -1e-6).all()


def test_same_seed_same_results_other_seed_differs():
    a = run_scenario(compose([*TINY, "scenario.weeks=15", "seed=11"]))
    b = run_scenario(compose([*TINY, "scenario.weeks=15", "seed=11"]))
    c = run_scenario(compose([*TINY, "scenario.weeks=15", "seed=12"]))
    assert a.timeseries.equals(b.timeseries)
    np.testing.assert_array_equal(a.control, b.control)
    assert not a.timeseries.equals(c.timeseries)


def test_territory_shares_sum_to_one(tiny_results):
    ts = tiny_results.timeseries
    s = ts[ts.metric == "share_territory_area"].groupby("step")["value"].sum()
    np.testing.assert_allclose(s.to_numpy(), 1.0, atol=1e-9)


def test_withdrawal_event_empties_a_factions_ground():
    r = run_scenario(compose([*TINY, "scenario.weeks=6", "+scenario.events.leave.date=2017-07-20",
                              "+scenario.events.leave.withdraw=[SYRIAN_GOV]"]))
    gov = r.factions.index("SYRIAN_GOV")
    assert (r.control[0] == gov).any()
    assert not (r.control[-1] == gov).any()
    fighters = r.metric("n_fighters", "SYRIAN_GOV")
    assert fighters.iloc[-1] == 0.0


@pytest.mark.slow
def test_real_grid_baseline_deconfliction_and_patterns():
    r = run_scenario(compose(["geography=res_010", "scenario.weeks=30", "output.plots=false"]))
    from sim.geography import river_side

    g = r.geo
    side = river_side(g, "Euphrates", "SYR")
    sdf, gov = r.factions.index("SDF"), r.factions.index("SYRIAN_GOV")
    syr = g.country_mask("SYR")
    for k in (10, 20, 30):
        # the line limits what each side takes after step 0, not what it held on 1 July 2017
        # (the SDF's Manbij and Tabqa lie west and south of the river)
        assert not ((r.control[k] == sdf) & syr & (side == -1) & (r.control[0] != sdf)).any()
        assert not ((r.control[k] == gov) & syr & (side == 1) & (r.control[0] != gov)).any()
    isis = r.metric("share_territory_area", "ISIS")
    # effective control only (IHS: 36,200 km2, ~6% of the theatre); open desert is ungoverned
    assert isis.iloc[0] > 0.045 and isis.iloc[-1] < isis.iloc[0] / 2
    assert r.summary["people_conserved_error"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.slow
def test_regression_baseline():
    """Compares against tests/baselines/*.json; regenerate deliberately with
    ``scripts/update_baseline.py`` when a change is meant to move the numbers."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from regression import BASELINE, regression_numbers

    want = json.loads(BASELINE.read_text())
    got = regression_numbers()
    assert set(got) == set(want)
    bad = {k: (want[k], got[k]) for k in want if not np.isclose(got[k], want[k], rtol=1e-6, atol=1e-6)}
    assert not bad, f"results moved (run scripts/update_baseline.py if intended): {bad}"


def test_cli_run_writes_outputs_and_plots(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "run", "geography=tiny",
                           "scenario.weeks=6", f"hydra.run.dir={out}",
                           "output.map_dates=[2017-07-01,2017-08-01]"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("timeseries.parquet", "control.nc", "summary.json", "control_maps.png",
                 "territory_share.png", "conflict_dyads.png", "displacement.png", "control.gif"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 20170701 and summary["config"]["scenario"]["weeks"] == 6


def test_units_stay_on_the_map_over_a_long_run():
    """Detour headings near the edge must not carry units off the grid (seen at replicate 2)."""
    m = build_model(compose([*TINY, "scenario.weeks=120", "replicate=2"]))
    R, C = m.geo.shape
    for _ in range(120):
        m.step()
        t = m.units
        assert (t.row >= 0).all() and (t.row <= R - 1).all()
        assert (t.col >= 0).all() and (t.col <= C - 1).all()


@pytest.mark.slow
def test_default_baseline_at_005_full_horizon():
    """The default run (baseline_2017, 0.05 degrees, 131 weeks to the end of 2019)."""
    r = run_scenario(compose(["output.plots=false"]))
    assert r.control.shape == (132, 182, 288)
    assert str(r.dates[-1]) == "2020-01-04"
    isis = r.metric("share_territory_area", "ISIS")
    assert isis.iloc[0] > 0.045 and isis.iloc[-1] < 0.01  # effective control at the start (IHS:
    # 36,200 km2, ~6% of the theatre); the caliphate is gone by the end of 2019
    attacks = r.metric("new_insurgent_attacks", "ALL")
    assert attacks.iloc[-26:].sum() > 0  # ... but its insurgency goes on
    assert r.summary["people_conserved_error"] == pytest.approx(0.0, abs=1e-3)
    assert r.summary["fighters_conserved_error"] < 1.0


def test_withdrawal_is_booked_and_removes_the_units_agents():
    """A withdrawal event goes through the ledger (the balance still closes and
    cum_fighters_withdrawn is recorded) and the withdrawn units' Mesa agents leave the model;
    the HQs are Mesa agents."""
    from sim.agents import FactionHQ, Unit

    m = build_model(compose([*TINY, "scenario.weeks=2"]))
    i = max(range(m.n_f), key=lambda k: int((m.units.faction == k).sum()))
    f = m.faction_names[i]
    m = build_model(compose([*TINY, "scenario.weeks=2", "+scenario.events.leave.date=2017-07-08",
                             f"+scenario.events.leave.withdraw=[{f}]"]))
    assert len(m.agents_by_type[FactionHQ]) == m.n_f
    n_units = int(((m.units.faction == i) & m.units.alive).sum())
    before = len(m.agents_by_type[Unit])
    gone = m.fighters(i)
    m.step()
    assert n_units > 0 and len(m.agents_by_type[Unit]) == before - n_units
    assert m.fighters(i) == 0.0 and abs(m.fighter_balance(f)) < 1e-6 * max(gone, 1.0)
    rec = {(s, k, g): v for s, k, g, v in m.records}
    assert rec[(1, "new_fighters_withdrawn", f)] == rec[(1, "cum_fighters_withdrawn", f)]
    assert rec[(1, "cum_fighters_withdrawn", f)] == pytest.approx(gone, rel=0.01)
    assert m.steps == 1 and m.steps_done == 1
