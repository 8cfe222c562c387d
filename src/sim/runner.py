"""``run_scenario(cfg) -> Results``: the one way to run the model.

Used by the CLI (``sim run``), the sweeps, the app and the tests.  It validates the config,
builds the geography (cached per process), steps the model and gathers the results.  It
writes nothing; :func:`sim.outputs.write_run_outputs` and the plots do that.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from .config import Config, from_dict, validate, validate_geography
from .geography import build_geography
from .history import SETTLED_METRIC, territorial_defeat_date
from .results import Results
from .rules.control import OUTSIDE, UNGOVERNED


def as_config(cfg: Config | dict) -> Config:
    """A validated :class:`Config` from a Config or a plain dict (e.g. a resolved Hydra cfg)."""
    if isinstance(cfg, Config):
        validate(cfg)
        return cfg
    return from_dict(dict(cfg))


def build_model(cfg: Config | dict):
    """Validate ``cfg``, build (or reuse) its geography, check its place names against the
    gazetteer and return a ready :class:`~sim.model.ConflictModel` at step 0."""
    from .model import ConflictModel

    cfg = as_config(cfg)
    geo = build_geography(cfg.geography, n_factions=len(cfg.factions), n_steps=cfg.scenario.weeks)
    validate_geography(cfg, geo)
    return ConflictModel(cfg, geo)


def run_scenario(cfg: Config | dict, progress: Callable[[int, int], None] | None = None,
                 check: bool = True) -> Results:
    """Run one scenario to its horizon and return its :class:`~sim.results.Results`.

    The run-end invariants of :mod:`sim.invariants` are checked on every run; their failures
    are listed in ``summary["invariant_violations"]`` and, with ``check`` (the default), raised
    as :class:`~sim.invariants.InvariantError`, which carries the results."""
    t0 = time.perf_counter()
    cfg = as_config(cfg)
    model = build_model(cfg)
    n = cfg.scenario.weeks
    shape = model.geo.shape
    control = np.empty((n + 1, *shape), np.int8)
    level = np.empty((n + 1, *shape), np.int8)
    damage = np.empty((n + 1, *shape), np.float32)
    control[0], level[0], damage[0] = model.owner, model.level, model.damage
    for k in range(1, n + 1):
        model.step()
        control[k], level[k], damage[k] = model.owner, model.level, model.damage
        if progress is not None:
            progress(k, n)
    res = collect_results(model, cfg, control, level, damage, time.perf_counter() - t0)
    from .invariants import InvariantError, check_run, summary_note

    bad = check_run(model, res)
    res.summary["invariant_violations"] = summary_note(bad)
    if bad and check:
        raise InvariantError(bad, res)
    return res


def timeseries_frame(model) -> pd.DataFrame:
    steps, metrics, factions, values = zip(*model.records)
    dates = np.array(model.dates(), dtype="datetime64[ns]")
    steps = np.asarray(steps, np.int32)
    return pd.DataFrame({"date": dates[steps], "step": steps, "metric": list(metrics),
                         "faction": list(factions), "value": np.asarray(values, np.float64)})


def collect_results(model, cfg: Config, control, level, damage, wall: float) -> Results:
    ts = timeseries_frame(model)
    names = model.faction_names
    summary = summarise(model, ts, control)
    summary["seed"] = int(cfg.seed)
    summary["replicate"] = int(cfg.replicate)
    summary["scenario"] = cfg.scenario.name
    return Results(
        factions=names,
        colours={f: cfg.factions[f].colour for f in names},
        dates=model.dates(),
        timeseries=ts,
        control=control,
        control_level=level,
        damage=damage,
        summary=summary,
        config=dataclasses.asdict(cfg),
        geo=model.geo,
        phase_seconds=dict(model.phase_seconds),
        wall_seconds=wall,
        n_agents=len(model.agents),
    )


def _final_values(ts: pd.DataFrame) -> dict[tuple[str, str], float]:
    """``(metric, faction) -> value`` at the last recorded step (summed if repeated)."""
    last = ts[ts["step"] == ts["step"].max()]
    vals: dict[tuple[str, str], list] = {}
    for key, v in zip(zip(last["metric"], last["faction"]), last["value"].to_numpy(np.float64)):
        vals.setdefault(key, []).append(v)
    return {k: float(np.sum(v)) for k, v in vals.items()}


def summarise(model, ts: pd.DataFrame, control: np.ndarray) -> dict[str, Any]:
    """Scalar outcomes of a run (what ensembles and comparisons tabulate)."""
    out: dict[str, Any] = {}
    final = _final_values(ts)
    get = lambda m, f="ALL": final.get((m, f), 0.0)  # noqa: E731
    for f in model.faction_names + ["UNGOVERNED"]:
        out[f"final_share_territory_area_{f}"] = get("share_territory_area", f)
    for m in ("cum_displaced", "cum_returnees", "cum_civilian_deaths", "cum_insurgent_attacks",
              "cum_foreign_fighters_exported", "cum_battles", "cum_battles_former_allies",
              "cum_battles_vs_isis", "cum_refugees_abroad", "n_displaced", "n_abroad",
              "cum_returnees_initial", "n_displaced_initial", "n_abroad_initial"):
        out[m] = get(m)
    disp = ts[(ts.metric == "n_displaced") & (ts.faction == "ALL")]
    if len(disp):
        k = int(disp["value"].to_numpy().argmax())
        out["peak_displaced"] = float(disp["value"].iloc[k])
        out["peak_displaced_date"] = str(pd.Timestamp(disp["date"].iloc[k]).date())
        init = ts[(ts.metric == "n_displaced_initial") & (ts.faction == "ALL")]
        if len(init) == len(disp):  # the displaced who fled after the start (stock minus 2017 stock)
            new = disp["value"].to_numpy() - init["value"].to_numpy()
            k = int(new.argmax())
            out["peak_displaced_new"] = float(new[k])
            out["peak_displaced_new_date"] = str(pd.Timestamp(disp["date"].iloc[k]).date())
    isis = ts[(ts.metric == SETTLED_METRIC) & (ts.faction == "ISIS")]
    if not len(isis):  # runs of older versions: every held cell counts
        isis = ts[(ts.metric == "share_territory_area") & (ts.faction == "ISIS")]
    gone = territorial_defeat_date(isis.set_index("date")["value"])
    out["isis_defeat_date"] = str(pd.Timestamp(gone).date()) if gone is not None else None
    # who filled the vacuum: controllers at the end of the ground ISIS held at the start
    if model.isis >= 0:
        was = control[0] == model.isis
        n = int(was.sum())
        fin = control[-1][was]
        for i, f in enumerate(model.faction_names):
            out[f"vacuum_share_{f}"] = float((fin == i).sum() / n) if n else 0.0
        out["vacuum_share_UNGOVERNED"] = float((fin == UNGOVERNED).sum() / n) if n else 0.0
    # controller of the key places at the end
    g = model.geo
    key = np.flatnonzero(g.places.key)
    ctrl = {}
    for k in key:
        r, c = int(g.places.row[k]), int(g.places.col[k])
        if 0 <= r < g.shape[0] and 0 <= c < g.shape[1] and control[-1][r, c] != OUTSIDE:
            v = int(control[-1][r, c])
            ctrl[str(g.places.name[k])] = model.faction_names[v] if v >= 0 else "UNGOVERNED"
    out["key_place_controller_final"] = ctrl
    # capitals and governorate seats changing hands (face_validity.seat_changes), siege deals
    from .face_validity import seat_changes, seat_names
    dates = [str(d) for d in model.dates()]
    series = {}
    for name in seat_names():
        k = g.places.get(name)
        if k is None:  # the map lacks the place
            continue
        r, c = int(g.places.row[k]), int(g.places.col[k])
        if 0 <= r < g.shape[0] and 0 <= c < g.shape[1]:
            seq = control[:, r, c]
            series[name] = [(dates[t], model.faction_names[v] if v >= 0 else None)
                            for t, v in enumerate(seq.tolist())]
    out["seat_changes"] = [dict(date=x.date, place=x.place, from_controller=x.from_controller,
                                to_controller=x.to_controller) for x in seat_changes(series)]
    out["siege_deals"] = list(getattr(model, "deals", []))
    out["cum_people_relocated"] = get("cum_people_relocated")
    stuck = ts[(ts.metric == "share_units_stuck") & (ts.faction == "ALL")]["value"]
    out["mean_share_units_stuck"] = float(stuck.mean()) if len(stuck) else 0.0
    # watched places: controller at the end and the date it last changed hands
    watch = {}
    for name in model.cfg.output.watch_places:
        k = g.places.find(name)
        seq = control[:, int(g.places.row[k]), int(g.places.col[k])]
        changes = np.flatnonzero(seq[1:] != seq[:-1])
        v = int(seq[-1])
        watch[str(g.places.name[k])] = {
            "controller": model.faction_names[v] if v >= 0 else "UNGOVERNED",
            "since": str(model.dates()[changes[-1] + 1]) if changes.size else str(model.dates()[0]),
        }
    out["watch_places"] = watch
    out["people_conserved_error"] = float(model.people_total() - model.initial_people)
    # np.max, not max(): a NaN balance must show as NaN (null), not be skipped
    out["fighters_conserved_error"] = float(np.max(np.abs([model.fighter_balance(f)
                                                           for f in model.faction_names])))
    return out
