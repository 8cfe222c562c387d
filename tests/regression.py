"""The regression run: baseline scenario on the 0.1 degree grid for 26 weeks, seed 7."""

from pathlib import Path

BASELINE = Path(__file__).parent / "baselines" / "baseline_res010_26w.json"
OVERRIDES = ["geography=res_010", "scenario.weeks=26", "seed=7", "output.plots=false"]


def regression_numbers() -> dict:
    from sim.cli import compose
    from sim.runner import run_scenario

    res = run_scenario(compose(OVERRIDES))
    out = {}
    for k, v in sorted(res.summary.items()):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    ts = res.timeseries
    last = ts[ts.step == ts.step.max()]
    for _, row in last[last.metric.isin(["n_fighters", "n_cells"])].iterrows():
        out[f"{row.metric}.{row.faction}"] = float(row.value)
    out["control_checksum"] = float(int(res.control.astype("int64").sum()))
    return out
