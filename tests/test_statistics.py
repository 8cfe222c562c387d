"""Honest statistics (issue 16 item 2): paired differences with p-values adjusted for the
number of outcomes, effect sizes and a warning below a minimum of pairs; sensitivity indices
with confidence intervals and a refusal of methods the design is too small for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


# --------------------------------------------------------------------------------------
# paired comparison
# --------------------------------------------------------------------------------------
def test_sign_flip_p_exact_and_floor():
    from sim.ensemble import sign_flip_p

    # 4 pairs all positive: 2 of the 16 sign patterns are as extreme -> 0.125, never below
    assert sign_flip_p(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(2 / 16)
    assert sign_flip_p(np.zeros(5)) == 1.0
    # symmetric differences: nothing to see
    assert sign_flip_p(np.array([1.0, -1.0, 2.0, -2.0])) == pytest.approx(1.0)
    # 12 pairs clearly shifted: tiny p; exact enumeration agrees with the Monte Carlo path
    d = np.array([1.2, 0.8, 1.1, 0.9, 1.4, 1.0, 0.7, 1.3, 1.05, 0.95, 1.15, 0.85])
    assert sign_flip_p(d) == pytest.approx(2 / 2 ** 12)
    mc = sign_flip_p(np.r_[d, d], exact_max=4, n_perm=4000, rng=np.random.default_rng(0))
    assert mc < 0.002


def test_adjust_p_holm_and_bh():
    from sim.ensemble import adjust_p

    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    holm = adjust_p(p, "holm")
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 (monotone): 0.02, 0.03, 0.06, 0.06
    assert holm[[3, 0, 2, 1]] == pytest.approx([0.02, 0.03, 0.06, 0.06])
    assert np.isnan(holm[4])
    bh = adjust_p(p, "bh")
    # 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 -> step-up minimum: 0.02, 0.02, 0.04, 0.04
    assert bh[[3, 0, 2, 1]] == pytest.approx([0.02, 0.02, 0.04, 0.04])
    with pytest.raises(ValueError):
        adjust_p(p, "bonferroni-ish")


def _arms(n, shift, noise=1.0, n_outcomes=3, seed=0):
    rng = np.random.default_rng(seed)
    reps = list(range(n))
    base = {f"x{k}": rng.normal(0, noise, n) for k in range(n_outcomes)}
    mk = lambda s, off: pd.DataFrame({
        "run_id": [f"{s}/{r}" for r in reps], "status": "ok", "scenario": s, "seed": 1,
        "replicate": reps, "start_date": "2017-07-01",
        **{k: v + off * (k == "x0") + rng.normal(0, 0.1, n) for k, v in base.items()}})
    return mk("A", 0.0), mk("B", shift)


def test_outcome_differences_reports_effect_size_and_adjusted_p():
    from sim.ensemble import MIN_PAIRS, outcome_differences, pair_runs

    a, b = _arms(20, shift=1.0)
    pairs, _ = pair_runs(a, b)
    tab = outcome_differences(a, b, pairs, "A", "B", n_boot=300).set_index("outcome")
    for c in ("mean_diff", "sd_diff", "ci95_low", "ci95_high", "effect_size_dz", "p_value",
              "p_adjusted", "correction", "significant", "few_pairs"):
        assert c in tab.columns
    assert tab.loc["x0", "significant"] and tab.loc["x0", "effect_size_dz"] > 3
    assert tab.loc["x0", "p_adjusted"] >= tab.loc["x0", "p_value"]
    assert not tab.loc["x1", "significant"] and not tab.loc["x2", "significant"]
    assert (tab["correction"] == "holm").all() and not tab["few_pairs"].any()
    assert MIN_PAIRS == 10


def test_four_pairs_cannot_be_significant_and_are_flagged():
    """The issue's case: 4 pairs over many outcomes used to get stars; now the smallest
    attainable p (0.125) is stated and nothing is marked significant."""
    from sim.ensemble import outcome_differences, pair_runs

    a, b = _arms(4, shift=10.0, n_outcomes=37)
    pairs, _ = pair_runs(a, b)
    tab = outcome_differences(a, b, pairs, n_boot=200)
    assert len(tab) == 37
    assert tab["few_pairs"].all()
    assert not tab["significant"].any()
    assert tab["p_value"].min() == pytest.approx(0.125)


def test_bootstrap_rejects_zero_resamples():
    from sim.ensemble import bootstrap_ci, outcome_differences, pair_runs

    with pytest.raises(ValueError):
        bootstrap_ci(np.array([1.0, 2.0]), n_boot=0)
    a, b = _arms(3, 1.0)
    with pytest.raises(ValueError):
        outcome_differences(a, b, pair_runs(a, b)[0], n_boot=0)


def test_pairing_reports_duplicate_replicates():
    from sim.ensemble import pair_runs

    a, b = _arms(3, 1.0)
    b = pd.concat([b, b.iloc[[0]].assign(run_id="B/dup")], ignore_index=True)
    pairs, msgs = pair_runs(a, b, "A", "B")
    assert len(pairs) == 3
    assert any("repeats an earlier run" in m for m in msgs)


# --------------------------------------------------------------------------------------
# sensitivity
# --------------------------------------------------------------------------------------
def _design(method, n):
    from sim import sensitivity as S

    return S.normalise_design({"method": method, "samples": n, "seed": 2,
                               "parameters": {"a": [0, 1], "b": [0, 1], "c": [0, 1]},
                               "outcomes": ["y"]})


def _known(X):
    return pd.DataFrame({"y": 10 * X[:, 0] + 5 * X[:, 1] + 0 * X[:, 2]})


def test_small_latin_design_refuses_rbd_fast_and_says_so():
    """`--samples 10` used to give RBD-FAST indices down to -0.58 summing past 2 with conf 0.
    Now: a warning before the run, no RBD-FAST rows, Spearman with a 95% CI."""
    from sim import sensitivity as S

    d = _design("latin", 10)
    warn = S.design_warnings(d)
    assert any("RBD-FAST" in w and str(S.MIN_SAMPLES["rbd_fast"]) in w for w in warn)
    X = S.sample(d)
    idx, _ = S.analyse(d, X, _known(X))
    assert not (idx["index"] == "S1_rbd_fast").any()
    rho = idx[idx["index"] == "spearman_rho"].set_index("parameter")
    assert (rho["low"] <= rho["value"]).all() and (rho["value"] <= rho["high"]).all()
    assert rho.loc["a", "value"] > 0.5


def test_rbd_fast_below_the_minimum_is_what_the_rule_guards_against():
    """Measured: below MIN_SAMPLES['rbd_fast'] RBD-FAST leaves [0, 1] or sums past 1 for some
    seed on a function whose true S1 are 0.8, 0.2, 0; at the minimum it stays sane."""
    from SALib.analyze import rbd_fast

    from sim import sensitivity as S

    bad = 0
    for seed in range(8):
        d = {**_design("latin", 10), "seed": seed}
        X = S.sample(d)
        y = _known(X)["y"].to_numpy()
        with np.errstate(all="ignore"):
            si = rbd_fast.analyze(S.problem(d), X, y, M=2, seed=seed)
        bad += S._first_order_check("y", "S1", si["S1"]) is not None
    assert bad > 0
    d = _design("latin", S.MIN_SAMPLES["rbd_fast"])
    X = S.sample(d)
    idx, warn = S.analyse(d, X, _known(X))
    s1 = idx[idx["index"] == "S1_rbd_fast"].set_index("parameter")
    assert len(s1) == 3 and not [w for w in warn if "outside" in w]
    assert (s1["low"] <= s1["value"]).all() and (s1["value"] <= s1["high"]).all()
    assert s1.loc["a", "value"] > s1.loc["b", "value"] > s1.loc["c", "value"]


def test_every_method_reports_confidence_intervals():
    from sim import sensitivity as S

    for method, n, main in (("morris", 10, "mu_star"), ("sobol", 256, "ST")):
        d = _design(method, n)
        assert not S.design_warnings(d)
        X = S.sample(d)
        idx, _ = S.analyse(d, X, _known(X))
        m = idx[idx["index"] == main]
        assert m["low"].notna().all() and (m["high"] >= m["low"]).all()
    assert S.design_warnings(_design("morris", 4)) and S.design_warnings(_design("sobol", 64))
