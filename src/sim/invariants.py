"""Run-end invariants (issue 15, item 1): a wrong number must never pass as a success.

:func:`sim.runner.run_scenario` calls :func:`check_run` on every finished run.  If any check
fails it raises :class:`InvariantError` (carrying the results, so the data can be kept for
inspection); ``sim run`` then writes the outputs with an ``INVALID`` file beside them, records
``status: failed`` and ``failed_invariant`` in ``status.json`` and exits with code 3.

The checks and their tolerances (stated here, and in docs/ODD.md section 4.11):

``finite``
    no NaN or infinity in the time series, the damage maps or the numbers of the summary.
``territory_shares``
    every recorded ``share_territory_area`` / ``share_territory_pop`` is in [0, 1] and, for each
    step, the factions' shares plus ``UNGOVERNED`` sum to 1 (within :data:`SHARE_ATOL`; the
    people shares may all be 0 once nobody is left).
``people_conserved``
    at home + displaced + abroad + dead equals the initial population of the communities
    (within :data:`PEOPLE_RTOL` of it), in the model and in the recorded ``n_*`` metrics.
``people_modelled``
    the communities hold the people of the map's theatre at the start, apart from settlements
    too small for a community (within :data:`MODELLED_RTOL`).
``fighters_conserved``
    for every faction, initial + recruited - killed - exported - withdrawn - current is 0
    within :data:`FIGHTER_RTOL` of the gross strength (initial + recruited) plus one fighter,
    in the model's ledger and from the recorded metrics (``n_fighters``, ``new_recruits``,
    ``new_fighter_losses``, ``new_foreign_fighters_exported``, ``cum_fighters_withdrawn``;
    evacuations move fighters inside a faction and do not change its total).
``fighters_nonnegative``
    no garrison, unit or hidden cell holds fewer than -:data:`NEG_ATOL` fighters (a negative
    stock is fighters made from nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

SHARE_ATOL = 1e-6
PEOPLE_RTOL = 1e-6
MODELLED_RTOL = 1e-3
FIGHTER_RTOL = 1e-3
NEG_ATOL = 1e-3

INVARIANTS = ("finite", "territory_shares", "people_conserved", "people_modelled",
              "fighters_conserved", "fighters_nonnegative")

INVALID_FILE = "INVALID"


@dataclass(frozen=True)
class Violation:
    name: str  # one of INVARIANTS
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


class InvariantError(RuntimeError):
    """A finished run broke an invariant; ``results`` holds its (invalid) outputs."""

    def __init__(self, violations: list[Violation], results: Any = None):
        self.violations = list(violations)
        self.results = results
        self.name = self.violations[0].name if self.violations else "unknown"
        more = f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        super().__init__(f"invariant {self.violations[0]}{more}" if self.violations
                         else "invariant violated")


# --------------------------------------------------------------------------------------
def check_run(model, results) -> list[Violation]:
    """All invariant violations of a finished run (empty if it is sound)."""
    out: list[Violation] = []
    ts = results.timeseries
    out += _finite(ts, results)
    out += _shares(ts)
    out += _people(model, ts)
    out += _fighters(model, ts)
    # one violation per invariant: the first found names the problem
    seen, first = set(), []
    for v in out:
        if v.name not in seen:
            seen.add(v.name)
            first.append(v)
    return first


def _finite(ts, results) -> list[Violation]:
    out = []
    vals = ts["value"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        row = ts.iloc[k]
        out.append(Violation("finite", f"{int(bad.sum())} non-finite values in the time series, "
                                       f"first {row['metric']} {row['faction']} at step "
                                       f"{int(row['step'])} = {vals[k]}"))
    dmg = np.asarray(results.damage)
    if dmg.size and not np.isfinite(dmg).all():
        out.append(Violation("finite", "non-finite values in the damage maps"))
    for key, v in _numbers(results.summary):
        if not math.isfinite(v):
            out.append(Violation("finite", f"summary {key} = {v}"))
            break
    return out


def _numbers(obj, prefix: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{prefix}{k}" if not prefix else f"{prefix}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{prefix}[{i}]")
    elif isinstance(obj, (float, np.floating)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def _shares(ts) -> list[Violation]:
    out = []
    for metric in ("share_territory_area", "share_territory_pop"):
        sel = ts[ts["metric"] == metric]
        if sel.empty:
            continue
        v = sel["value"].to_numpy(dtype=np.float64)
        bad = (v < -SHARE_ATOL) | (v > 1 + SHARE_ATOL)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            row = sel.iloc[k]
            out.append(Violation("territory_shares", f"{metric} of {row['faction']} at step "
                                                     f"{int(row['step'])} = {v[k]:.6g}, outside [0, 1]"))
            continue
        tot = sel.groupby("step")["value"].sum()
        ok = (tot - 1.0).abs() <= SHARE_ATOL
        if metric == "share_territory_pop":
            ok |= tot.abs() <= SHARE_ATOL  # nobody left: every share 0
        if not ok.all():
            step = int(tot.index[~ok.to_numpy()][0])
            out.append(Violation("territory_shares", f"{metric} at step {step} sums to "
                                                     f"{float(tot[step]):.9g}, not 1"))
    return out


def _series(ts) -> dict:
    """``(metric, faction) -> values ordered by step``, from one grouping of the time series
    (filtering the long frame once per series was the slow part of the run-end check)."""
    if ts.empty:
        return {}
    step, vals = ts["step"].to_numpy(), ts["value"].to_numpy(dtype=np.float64)
    return {key: vals[pos[np.argsort(step[pos], kind="stable")]]
            for key, pos in ts.groupby(["metric", "faction"], sort=False).indices.items()}


def _last(series: dict, metric: str, faction: str) -> np.ndarray:
    return series.get((metric, faction), np.zeros(0))


def _people(model, ts) -> list[Violation]:
    out = []
    p0 = float(model.initial_people)
    now = float(model.people_total())
    tol = PEOPLE_RTOL * max(p0, 1.0)
    if not abs(now - p0) <= tol:
        out.append(Violation("people_conserved", f"{now:,.1f} people at the end, {p0:,.1f} at the "
                                                 f"start (error {now - p0:+,.1f}, tolerance {tol:,.1f})"))
    series = _series(ts)
    parts = [_last(series, m, "ALL") for m in ("n_at_home", "n_displaced", "n_abroad", "n_civilian_dead")]
    if all(p.size for p in parts) and len({p.size for p in parts}) == 1:
        tot = sum(parts)
        err = np.abs(tot - p0)
        if not (err <= tol).all():
            k = int(np.argmax(~(err <= tol)))
            out.append(Violation("people_conserved", f"recorded n_at_home + n_displaced + n_abroad "
                                                     f"+ n_civilian_dead at step {k} = {tot[k]:,.1f}, "
                                                     f"not the initial {p0:,.1f}"))
    mapped = _theatre_people(model)
    if mapped is not None and mapped > 0 and not (p0 >= (1 - MODELLED_RTOL) * mapped):
        out.append(Violation("people_modelled", f"the communities hold {p0:,.0f} people, the map's "
                                                f"theatre {mapped:,.0f} ({mapped - p0:,.0f} left out)"))
    return out


def _theatre_people(model) -> float | None:
    popn = getattr(model, "population", None)
    pop = getattr(popn, "pop_static", None)
    regmap = getattr(popn, "regmap", None)
    if pop is None or regmap is None:
        return None
    return float(np.asarray(pop, np.float64)[np.asarray(regmap) >= 0].sum())


def _fighters(model, ts) -> list[Violation]:
    out = []
    series = _series(ts)
    for i, f in enumerate(model.faction_names):
        led = model.ledger.totals[f]
        gross = float(model.strength0[i]) + float(led["recruited"])
        tol = FIGHTER_RTOL * abs(gross) + 1.0
        bal = float(model.fighter_balance(f))
        if not abs(bal) <= tol:
            out.append(Violation("fighters_conserved", f"{f}: initial + recruited - killed - exported "
                                                       f"- withdrawn - surrendered - current = {bal:,.1f} "
                                                       f"(tolerance {tol:,.1f})"))
            continue
        # the same balance from the recorded metrics (every flow is in the files)
        n = _last(series, "n_fighters", f)
        if n.size == 0:
            continue
        rec = np.cumsum(_last(series, "new_recruits", f))
        lost = np.cumsum(_last(series, "new_fighter_losses", f))
        wd = _last(series, "cum_fighters_withdrawn", f)
        sur = np.cumsum(_last(series, "new_fighters_surrendered", f))
        exp = _last(series, "cum_foreign_fighters_exported", "ALL") if i == model.isis else np.zeros(n.size)
        if not (rec.size == lost.size == n.size and wd.size in (0, n.size) and exp.size == n.size):
            continue
        if wd.size == 0:
            wd = np.zeros(n.size)
        if sur.size != n.size:  # no siege deals in this model version
            sur = np.zeros(n.size)
        # step 0 records the initial state (its flows are zero)
        bal_ts = (n[0] + (rec - rec[0]) - (lost - lost[0]) - (exp - exp[0]) - (wd - wd[0])
                  - (sur - sur[0]) - n)
        tol_ts = FIGHTER_RTOL * (abs(n[0]) + np.abs(rec)) + 1.0
        bad = ~(np.abs(bal_ts) <= tol_ts)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            out.append(Violation("fighters_conserved", f"{f}: recorded n_fighters at step {k} is "
                                                       f"{n[k]:,.1f}, the recorded flows give "
                                                       f"{n[k] + bal_ts[k]:,.1f}"))
    stocks = [("garrison", np.asarray(model.garrison)), ("unit", np.asarray(model.units.fighters)),
              ("hidden", np.asarray(model.hidden))]
    for what, arr in stocks:
        if arr.size and np.nanmin(arr) < -NEG_ATOL:
            out.append(Violation("fighters_nonnegative", f"a {what} holds {float(np.nanmin(arr)):,.3f} "
                                                         "fighters (a negative stock)"))
            break
    return out


def summary_note(violations: list[Violation]) -> dict[str, str]:
    """What ``summary.json["invariant_violations"]`` holds: invariant name -> detail."""
    return {v.name: v.detail for v in violations}
