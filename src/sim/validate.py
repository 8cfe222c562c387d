"""Hindcast scorecard: does the baseline reproduce 2017-19?  (Pattern-oriented validation,
Grimm et al. 2005, *Science* 310:987.)

Two kinds of evidence, each scored as the share of ensemble runs that match it:

* **Checkpoints** from a CSV (``date, place, lat, lon, from_controller, to_controller``), the
  format of ``sim/data/history/checkpoints_public.csv``.  A run *matches* when the cell of the
  checkpoint is held by ``to_controller`` at some step within ``window_weeks`` (default 4) of
  the date.  We also report the stricter *timing* score: the first step at which the cell is
  held by ``to_controller`` falls inside the window.
* **Patterns** of the whole theatre, defined without reference to any checkpoint:
  ``isis_defeat``: ISIS holds < 0.5% of the theatre by 2019-04-01, and insurgent attacks go on
  in the 8 weeks after; ``mosul_before_raqqa``: the ground within 10 km of Mosul is free of ISIS
  before the ground within 10 km of Raqqa is; ``displacement_peak``: the weekly new
  displacement (4-week mean) peaks in 2017 and returns after the peak reach a quarter of the
  displaced stock at the peak.

Nothing here feeds back into the model: the scores only read its outputs.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .geography import DATA
from .results import Results

PUBLIC_CHECKPOINTS = DATA / "history" / "checkpoints_public.csv"
PATTERNS = ("isis_defeat", "mosul_before_raqqa", "displacement_peak")


@dataclass
class Checkpoint:
    date: dt.date
    place: str
    lat: float
    lon: float
    from_controller: str
    to_controller: str


def read_checkpoints(path: str | Path = PUBLIC_CHECKPOINTS) -> list[Checkpoint]:
    """Read a checkpoint CSV; a bad row raises ``ValueError`` naming the file and line."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"date", "place", "lat", "lon", "from_controller", "to_controller"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path.name}: missing columns {', '.join(sorted(missing))}")
        for i, row in enumerate(reader, start=2):
            try:
                out.append(Checkpoint(dt.date.fromisoformat(row["date"].strip()), row["place"],
                                      float(row["lat"]), float(row["lon"]),
                                      row["from_controller"].strip(), row["to_controller"].strip()))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path.name} line {i}: {e}") from None
    return out


def _dates(res: Results) -> np.ndarray:
    return np.array(res.dates, dtype="datetime64[D]")


def nearest_theatre_cell(geo, r: int, c: int, max_cells: int = 2) -> tuple[int, int]:
    """The checkpoint's cell, or the nearest theatre cell within ``max_cells`` when the point
    falls in a cell the grid counts as lake, river reservoir or abroad (a riverside town on a
    coarse grid)."""
    if geo.theatre[r, c]:
        return r, c
    R, C = geo.shape
    best, dbest = (r, c), np.inf
    for dr in range(-max_cells, max_cells + 1):
        for dc in range(-max_cells, max_cells + 1):
            rr, cc = r + dr, c + dc
            if 0 <= rr < R and 0 <= cc < C and geo.theatre[rr, cc] and dr * dr + dc * dc < dbest:
                best, dbest = (rr, cc), dr * dr + dc * dc
    return best


def checkpoint_match(res: Results, cp: Checkpoint, window_weeks: int = 4) -> tuple[bool, bool, str | None]:
    """(held within the window, first capture within the window, first capture date)."""
    g = res.geo
    r, c = g.grid.rowcol(cp.lat, cp.lon)
    r, c = int(r), int(c)
    if not (0 <= r < g.shape[0] and 0 <= c < g.shape[1]) or cp.to_controller not in res.factions:
        return False, False, None
    r, c = nearest_theatre_cell(g, r, c)
    code = res.factions.index(cp.to_controller)
    seq = res.control[:, r, c]
    dates = _dates(res)
    lo = np.datetime64(cp.date - dt.timedelta(weeks=window_weeks))
    hi = np.datetime64(cp.date + dt.timedelta(weeks=window_weeks))
    inwin = (dates >= lo) & (dates <= hi)
    held = bool(np.any((seq == code) & inwin))
    hits = np.flatnonzero(seq == code)
    first = str(dates[hits[0]]) if hits.size else None
    timing = bool(hits.size and lo <= dates[hits[0]] <= hi and hits[0] > 0) or \
        bool(hits.size and hits[0] == 0 and dates[0] >= lo)
    return held, timing, first


def _metric(res: Results, name: str, faction: str = "ALL") -> pd.Series:
    ts = res.timeseries
    sel = ts[(ts.metric == name) & (ts.faction == faction)]
    return pd.Series(sel["value"].to_numpy(), index=pd.to_datetime(sel["date"]))


def _isis_free_date(res: Results, place: str, radius_km: float = 10.0):
    """First date from which ISIS holds no cell within ``radius_km`` of a gazetteer place."""
    g = res.geo
    if "ISIS" not in res.factions:
        return None
    try:
        i = g.places.find(place)
    except KeyError:
        return None
    lat, lon = g.places.lat[i], g.places.lon[i]
    rr, cc = np.meshgrid(np.arange(g.shape[0]), np.arange(g.shape[1]), indexing="ij")
    clat, clon = g.grid.latlon(rr, cc)
    from .grid import haversine_km

    near = haversine_km(lat, lon, clat, clon) <= radius_km
    isis = res.factions.index("ISIS")
    held = (res.control[:, near] == isis).any(axis=1)
    if not held.any():
        return _dates(res)[0]
    last = np.flatnonzero(held)[-1]
    if last + 1 >= len(held):
        return None
    return _dates(res)[last + 1]


def pattern_scores(res: Results) -> dict[str, bool]:
    out: dict[str, bool] = {}
    share = _metric(res, "share_territory_area", "ISIS")
    attacks = _metric(res, "new_insurgent_attacks")
    when = pd.Timestamp("2019-04-01")
    if len(share) and share.index[-1] >= when:
        at = share[share.index >= when].iloc[0]
        after = attacks[(attacks.index > when) & (attacks.index <= when + pd.Timedelta(weeks=8))]
        out["isis_defeat"] = bool(at < 0.005 and after.sum() > 0)
    else:
        out["isis_defeat"] = False
    m, r = _isis_free_date(res, "Mosul"), _isis_free_date(res, "Raqqa")
    out["mosul_before_raqqa"] = bool(m is not None and (r is None or m < r))
    new = _metric(res, "new_displaced").rolling(4, min_periods=1).mean()
    stock = _metric(res, "n_displaced")
    ret = _metric(res, "new_returnees")
    if len(new) and new.max() > 0:
        peak = new.idxmax()
        back = ret[ret.index > peak].sum()
        out["displacement_peak"] = bool(peak.year == 2017 and back >= 0.25 * stock.max())
    else:
        out["displacement_peak"] = False
    return out


def scorecard(runs: list[Results], checkpoints: list[Checkpoint], window_weeks: int = 4) -> pd.DataFrame:
    """One row per checkpoint and pattern: share of runs matching (``score``) and, for
    checkpoints, the timing score and the median first-capture date."""
    rows = []
    for cp in checkpoints:
        held, timing, firsts = [], [], []
        for res in runs:
            h, t, f = checkpoint_match(res, cp, window_weeks)
            held.append(h)
            timing.append(t)
            if f:
                firsts.append(np.datetime64(f))
        med = str(np.sort(np.array(firsts))[len(firsts) // 2]) if firsts else ""
        rows.append({"kind": "checkpoint", "name": cp.place, "date": str(cp.date),
                     "expected": cp.to_controller, "score": float(np.mean(held)),
                     "timing_score": float(np.mean(timing)), "median_first_held": med})
    pats = [pattern_scores(r) for r in runs]
    for p in PATTERNS:
        rows.append({"kind": "pattern", "name": p, "date": "", "expected": "true",
                     "score": float(np.mean([x[p] for x in pats])), "timing_score": np.nan,
                     "median_first_held": ""})
    df = pd.DataFrame(rows)
    cps = df[df.kind == "checkpoint"]
    overall = {"kind": "overall", "name": "checkpoints", "date": "", "expected": "",
               "score": float(cps["score"].mean()) if len(cps) else np.nan,
               "timing_score": float(cps["timing_score"].mean()) if len(cps) else np.nan,
               "median_first_held": ""}
    overall_p = {"kind": "overall", "name": "patterns", "date": "", "expected": "",
                 "score": float(df[df.kind == "pattern"]["score"].mean()), "timing_score": np.nan,
                 "median_first_held": ""}
    overall_all = {"kind": "overall", "name": "all", "date": "", "expected": "",
                   "score": float(df[df.kind.isin(["checkpoint", "pattern"])]["score"].mean()),
                   "timing_score": np.nan, "median_first_held": ""}
    return pd.concat([df, pd.DataFrame([overall, overall_p, overall_all])], ignore_index=True)


def plot_scorecard(df: pd.DataFrame, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d = df[df.kind != "overall"]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(d) + 1.5))
    y = np.arange(len(d))[::-1]
    ax.barh(y, d["score"], color=["#0072b2" if k == "checkpoint" else "#e69f00" for k in d["kind"]],
            label="held within window / pattern matched")
    ax.scatter(d["timing_score"], y, color="black", zorder=3, s=15, label="timing (first capture in window)")
    ax.set_yticks(y, [f"{n[:34]} ({e})" if k == "checkpoint" else n for n, e, k in
                      zip(d["name"], d["expected"], d["kind"])])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of runs")
    tot = df[(df.kind == "overall") & (df.name == "all")]["score"].iloc[0]
    ax.set_title(f"Hindcast scorecard (overall {tot:.2f})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
