"""Hindcast scorecard: does the baseline reproduce 2017-19?  (Pattern-oriented validation,
Grimm et al. 2005, *Science* 310:987.)  docs/ODD.md section 1.2 defines every item.

Three kinds of evidence, each scored per run from 0 to 1 and averaged over the ensemble:

* **Checkpoints**: dated changes of control from a CSV (``date, place, lat, lon,
  from_controller, to_controller``), by default ``checkpoints_public.csv`` plus the control
  changes (``from_controller != to_controller``) of ``events_2017-2019.csv``.  For each run:

  - the *date error*: weeks between the checkpoint's date and the first step at which the
    checkpoint's cell is held by ``to_controller`` (infinite if it never is);
  - ``timing_score`` = :func:`timing_kernel` of that error: 1 within ``TIMING_FULL_WEEKS`` (4)
    weeks, falling linearly to 0 at ``TIMING_ZERO_WEEKS`` (26) weeks.  A capture months early
    scores as badly as one months late;
  - ``hold_score``: the cell is still held by ``to_controller`` ``window_weeks`` after the date;
  - ``score`` = timing × hold.

* **Date and order patterns**: the ISIS defeat date (scored by the same kernel against
  23 March 2019, with insurgent attacks going on afterwards), Mosul free of ISIS before Raqqa,
  the order of the big falls (share of pairs of ISIS-held checkpoints taken in the historical
  order), and the 2017 displacement peak.

* **Aggregate facts** from ``aggregate_facts_2015-2019.csv``: ISIS-held area, the share of its
  former ground lost, displacement per operation, people relocated under surrender deals and
  foreign fighters who went home.  Each names its source row; the model's value is given as the
  ensemble median with its 10-90% range; a count is scored by :func:`ratio_kernel` (1 within
  ±25%, 0 at a factor of 2), a percentage by :func:`points_kernel` (1 within 1 point, 0 at 10).

A row that cannot be evaluated (past the horizon, outside the theatre, a lake cell, an unknown
controller code, bad or missing coordinates, a metric the model does not record) is listed with
``status = "not evaluable"`` and its reason, left out of every mean, and counted in the summary
rows.  Nothing here feeds back into the model: the scores only read its outputs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import history
from .geography import DATA
from .results import Results

PUBLIC_CHECKPOINTS = DATA / "history" / "checkpoints_public.csv"
EVENTS = history.EVENTS

#: timing kernel: full marks up to this date error (weeks) ...
TIMING_FULL_WEEKS = 4.0
#: ... falling linearly to 0 at this error (weeks)
TIMING_ZERO_WEEKS = 26.0
#: count kernel: full marks within this factor of the observed value, 0 at RATIO_ZERO
RATIO_FULL = 1.25
RATIO_ZERO = 2.0
#: percentage kernel: full marks within this many points, 0 at POINTS_ZERO
POINTS_FULL = 1.0
POINTS_ZERO = 10.0
#: checkpoint files larger than this are refused (a checkpoint row is ~100-300 bytes)
MAX_CHECKPOINT_BYTES = 5_000_000
#: ... and so are files with more rows than this
MAX_CHECKPOINT_ROWS = 10_000

FACTION_CODES = ("ISIS", "SYRIAN_GOV", "SDF", "SYRIAN_REBELS", "ISLAMIST_REBELS", "TURKEY_SNA",
                 "US_COALITION", "IRAQI_GOV", "PMF", "KRG")
COLUMNS = ("date", "place", "lat", "lon", "from_controller", "to_controller")
NOT_EVALUABLE = "not evaluable"
PATTERNS = ("isis_defeat", "mosul_before_raqqa", "order_of_falls", "displacement_peak")
#: the ISIS defeat date (SDF at Baghuz)
ISIS_DEFEAT = dt.date(2019, 3, 23)


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be read at all (one-line message)."""


@dataclass
class Checkpoint:
    date: dt.date | None
    place: str
    lat: float
    lon: float
    from_controller: str
    to_controller: str
    source: str = ""  # "<file>:<line>"
    problem: str = ""  # why the row cannot be evaluated whatever the run ("" if it can)


# ------------------------------------------------------------------------------ kernels
def timing_kernel(error_weeks: float, full: float = TIMING_FULL_WEEKS, zero: float = TIMING_ZERO_WEEKS) -> float:
    """1 for |error| <= ``full`` weeks, 0 from ``zero`` weeks on, linear in between."""
    e = abs(float(error_weeks))
    if not math.isfinite(e):
        return 0.0
    if zero <= full:
        return float(e <= full)
    return float(np.clip((zero - e) / (zero - full), 0.0, 1.0))


def ratio_kernel(model: float, observed: float) -> float:
    """1 when model/observed is within ×/÷ ``RATIO_FULL``, 0 beyond ×/÷ ``RATIO_ZERO``, linear
    in |log ratio| in between."""
    if not (model > 0 and observed > 0):
        return 1.0 if model == observed == 0 else 0.0
    e = abs(math.log(model / observed))
    a, b = math.log(RATIO_FULL), math.log(RATIO_ZERO)
    return float(np.clip((b - e) / (b - a), 0.0, 1.0))


def points_kernel(model_pct: float, observed_pct: float) -> float:
    """1 within ``POINTS_FULL`` percentage points, 0 beyond ``POINTS_ZERO``, linear between."""
    e = abs(model_pct - observed_pct)
    return float(np.clip((POINTS_ZERO - e) / (POINTS_ZERO - POINTS_FULL), 0.0, 1.0))


# ------------------------------------------------------------------------------ reading
def parse_date(text: str) -> dt.date:
    """ISO ``YYYY-MM-DD`` (a time part is ignored), ``YYYY/MM/DD``, or the spreadsheet forms
    ``DD/MM/YYYY``, ``DD.MM.YYYY`` and ``DD-MM-YYYY``; ``MM/DD/YYYY`` only when the first number
    cannot be a month's day-of-month reading (second number > 12)."""
    t = str(text).strip().strip('"')
    t = re.split(r"[T ]", t, maxsplit=1)[0] if re.match(r"\d{4}-\d\d-\d\d[T ]", t) else t
    m = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", t)
    if m:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    m = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})", t)
    if m:
        a, b, y = int(m[1]), int(m[2]), int(m[3])
        if b > 12 >= a:  # US order: month first
            a, b = b, a
        return dt.date(y, b, a)
    raise ValueError(f"bad date {t!r} (use YYYY-MM-DD or DD/MM/YYYY)")


def _number(text: str) -> float:
    t = str(text).strip().strip('"').replace("\u2212", "-")
    if "," in t and "." not in t:
        t = t.replace(",", ".")  # decimal comma
    return float(t)


def _check_path(path: Path, max_bytes: int) -> None:
    if not path.exists():
        raise CheckpointFileError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointFileError(f"{path}: is a directory, not a CSV file")
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointFileError(
            f"{path}: {size / 1e6:.1f} MB is larger than the {max_bytes / 1e6:.0f} MB limit for a "
            f"checkpoint file (MAX_CHECKPOINT_BYTES); split it or keep the rows you need")


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    if b"\x00" in raw[:8192]:
        raise CheckpointFileError(f"{path}: is not a text CSV file (binary data)")
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise CheckpointFileError(f"{path}: is not a text CSV file (neither UTF-8 nor Windows-1252)")


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=counts.get) if max(counts.values()) else ","


def read_checkpoints(path: str | Path = PUBLIC_CHECKPOINTS, control_changes_only: bool = False,
                     max_bytes: int | None = None, max_rows: int | None = None) -> list[Checkpoint]:
    """Read a checkpoint CSV.

    Reads UTF-8 (with or without a byte-order mark) or Windows-1252, separated by ``,``, ``;`` or
    tabs, with LF or CRLF line ends, ISO or DD/MM/YYYY dates and decimal commas.  A file that
    cannot be read at all (missing, a directory, binary, too large, without the columns) raises
    :class:`CheckpointFileError` with a one-line message.  A row that cannot be evaluated (bad
    date, no or bad coordinates, no ``to_controller``) is kept with its ``problem`` set, so the
    scorecard lists it as not evaluable.  ``control_changes_only`` keeps only rows whose
    ``from_controller`` differs from ``to_controller`` (for ``events_2017-2019.csv``).
    """
    path = Path(path)
    max_bytes = MAX_CHECKPOINT_BYTES if max_bytes is None else max_bytes
    max_rows = MAX_CHECKPOINT_ROWS if max_rows is None else max_rows
    _check_path(path, max_bytes)
    text = _decode(path)
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first))
    try:
        header = next(reader)
    except StopIteration:
        raise CheckpointFileError(f"{path}: is empty") from None
    header = [h.strip().strip('"').lower() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CheckpointFileError(f"{path.name}: missing columns {', '.join(missing)} "
                                  f"(found: {', '.join(h for h in header if h) or 'none'})")
    idx = {c: header.index(c) for c in COLUMNS}
    out: list[Checkpoint] = []
    rows = 0
    for line, row in enumerate(reader, start=2):
        if not any(x.strip() for x in row):
            continue
        rows += 1
        if rows > max_rows:
            raise CheckpointFileError(f"{path}: more than {max_rows:,} rows (MAX_CHECKPOINT_ROWS); "
                                      "split the file or keep the rows you need")
        get = lambda c: row[idx[c]].strip() if idx[c] < len(row) else ""  # noqa: E731
        src, to = get("from_controller"), get("to_controller")
        if control_changes_only and src == to:
            continue
        problem, date, lat, lon = "", None, math.nan, math.nan
        try:
            date = parse_date(get("date"))
        except ValueError as e:
            problem = str(e)
        la, lo = get("lat"), get("lon")
        if not problem:
            if not la or not lo:
                problem = "no coordinates"
            else:
                try:
                    lat, lon = _number(la), _number(lo)
                    if not (math.isfinite(lat) and math.isfinite(lon)):
                        problem = f"bad coordinates ({la}, {lo})"
                    elif abs(lat) > 90 or abs(lon) > 180:
                        problem = f"bad coordinates ({la}, {lo}): out of range"
                except ValueError:
                    problem = f"bad coordinates ({la}, {lo})"
        if not problem and not to:
            problem = "no to_controller"
        out.append(Checkpoint(date, get("place"), lat, lon, src, to, f"{path.name}:{line}", problem))
    return out


def default_checkpoints() -> list[Checkpoint]:
    """``checkpoints_public.csv`` and the control changes of ``events_2017-2019.csv``."""
    return read_checkpoints(PUBLIC_CHECKPOINTS) + read_checkpoints(EVENTS, control_changes_only=True)


# ------------------------------------------------------------------------------ one run
def _dates(res: Results) -> np.ndarray:
    return np.array(res.dates, dtype="datetime64[D]")


def _d64(d) -> np.datetime64:
    return np.datetime64(pd.Timestamp(d).date(), "D")


def _weeks(a, b) -> float:
    return float((_d64(a) - _d64(b)).astype(np.int64)) / 7.0


def nearest_theatre_cell(geo, r: int, c: int, max_cells: int = 2) -> tuple[int, int] | None:
    """The checkpoint's cell, or the nearest theatre cell within ``max_cells`` when the point
    falls in a cell the grid counts as lake, river reservoir or abroad (a riverside town on a
    coarse grid); None if there is none."""
    if geo.theatre[r, c]:
        return r, c
    R, C = geo.shape
    best, dbest = None, np.inf
    for dr in range(-max_cells, max_cells + 1):
        for dc in range(-max_cells, max_cells + 1):
            rr, cc = r + dr, c + dc
            if 0 <= rr < R and 0 <= cc < C and geo.theatre[rr, cc] and dr * dr + dc * dc < dbest:
                best, dbest = (rr, cc), dr * dr + dc * dc
    return best


def locate(res: Results, cp: Checkpoint, window_weeks: float = TIMING_FULL_WEEKS) -> tuple[tuple[int, int] | None, str]:
    """The cell a checkpoint is scored on, or None and the reason it cannot be evaluated."""
    if cp.problem:
        return None, cp.problem
    d = _dates(res)
    if _d64(cp.date) > d[-1]:
        return None, f"past the horizon (run ends {d[-1]})"
    if _d64(cp.date) < d[0] - np.timedelta64(int(7 * window_weeks), "D"):
        return None, f"before the run's start ({d[0]})"
    if cp.to_controller not in FACTION_CODES:
        return None, f"unknown controller code {cp.to_controller!r}"
    if cp.to_controller not in res.factions:
        return None, f"faction {cp.to_controller} is not in this run"
    g = res.geo
    r, c = (int(x) for x in g.grid.rowcol(cp.lat, cp.lon))
    if not (0 <= r < g.shape[0] and 0 <= c < g.shape[1]):
        return None, "outside the map"
    cell = nearest_theatre_cell(g, r, c)
    if cell is None:
        return None, "lake cell" if bool(g.lake[r, c]) else "outside the theatre"
    return cell, ""


def checkpoint_measures(res: Results, cp: Checkpoint, cell: tuple[int, int],
                        window_weeks: float = TIMING_FULL_WEEKS) -> dict:
    """For one run: first capture date, date error (weeks), timing, hold and score."""
    r, c = cell
    code = res.factions.index(cp.to_controller)
    seq = res.control[:, r, c]
    dates = _dates(res)
    hits = np.flatnonzero(seq == code)
    first = dates[hits[0]] if hits.size else None
    err = abs(_weeks(first, cp.date)) if first is not None else math.inf
    timing = timing_kernel(err, full=window_weeks)
    t_hold = np.flatnonzero(dates <= _d64(cp.date) + np.timedelta64(int(round(7 * window_weeks)), "D"))
    held = bool(t_hold.size and seq[t_hold[-1]] == code)
    return {"first": first, "error_weeks": err, "timing": timing, "hold": float(held),
            "score": timing * float(held)}


def checkpoint_match(res: Results, cp: Checkpoint, window_weeks: int = 4) -> tuple[bool, bool, str | None]:
    """(still held ``window_weeks`` after the date, first capture within ``window_weeks`` of the
    date, first capture date); (False, False, None) when the row cannot be evaluated."""
    cell, _ = locate(res, cp, window_weeks)
    if cell is None:
        return False, False, None
    m = checkpoint_measures(res, cp, cell, window_weeks)
    return bool(m["hold"]), m["error_weeks"] <= window_weeks, (str(m["first"]) if m["first"] is not None else None)


def _metric(res: Results, name: str, faction: str = "ALL") -> pd.Series:
    ts = res.timeseries
    sel = ts[(ts.metric == name) & (ts.faction == faction)]
    return pd.Series(sel["value"].to_numpy(), index=pd.to_datetime(sel["date"]))


def _has_metric(res: Results, name: str) -> bool:
    return bool((res.timeseries["metric"] == name).any())


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


def isis_defeat_date(res: Results):
    """First date at which ISIS holds no settled ground (None if never; runs without the
    settled-ground metric: no ground at all): :func:`history.territorial_defeat_date`."""
    name = history.SETTLED_METRIC if _has_metric(res, history.SETTLED_METRIC) else "share_territory_area"
    return history.territorial_defeat_date(_metric(res, name, "ISIS"))


def _order_score(first: list, hist: list) -> float:
    """Share of pairs (with distinct historical dates) taken in the historical order; a pair
    taken in the same step, or never taken, counts one half."""
    num = den = 0.0
    for i in range(len(hist)):
        for j in range(i + 1, len(hist)):
            if hist[i] == hist[j]:
                continue
            den += 1
            a, b = (first[i], first[j]) if hist[i] < hist[j] else (first[j], first[i])
            if a == b:
                num += 0.5
            elif a < b:
                num += 1
    return num / den if den else math.nan


def date_patterns(res: Results, checkpoints: list[Checkpoint] | None = None) -> dict[str, dict]:
    """The date and order patterns for one run: ``{name: {value, score, error_weeks, reason}}``."""
    out: dict[str, dict] = {}
    dates = _dates(res)
    end = dates[-1]
    # P1 ISIS defeat date, insurgency going on afterwards
    d = isis_defeat_date(res)
    if "ISIS" not in res.factions:
        out["isis_defeat"] = {"reason": "no ISIS in this run"}
    elif d is None and _d64(ISIS_DEFEAT) > end:
        out["isis_defeat"] = {"reason": f"past the horizon (run ends {end})"}
    else:
        err = abs(_weeks(d, ISIS_DEFEAT)) if d is not None else math.inf
        attacks = _metric(res, "new_insurgent_attacks")
        ok = True
        if d is not None:
            after = attacks[(attacks.index > d) & (attacks.index <= d + pd.Timedelta(weeks=8))]
            ok = bool(after.sum() > 0) or d + pd.Timedelta(weeks=1) > pd.Timestamp(end)
        out["isis_defeat"] = {"value": _d64(d) if d is not None else None, "error_weeks": err,
                              "score": timing_kernel(err) * float(ok),
                              "note": "" if ok else "no insurgent attacks in the 8 weeks after"}
    # P2 Mosul free of ISIS before Raqqa
    m, r = _isis_free_date(res, "Mosul"), _isis_free_date(res, "Raqqa")
    out["mosul_before_raqqa"] = {"score": float(m is not None and (r is None or m < r)),
                                 "value": None}
    # P3 order of the big falls: the checkpoints taken from ISIS
    falls = [cp for cp in (checkpoints or []) if cp.from_controller == "ISIS"]
    firsts, hist = [], []
    for cp in falls:
        cell, _ = locate(res, cp)
        if cell is None:
            continue
        f = checkpoint_measures(res, cp, cell)["first"]
        firsts.append(f if f is not None else np.datetime64("2262-01-01"))
        hist.append(_d64(cp.date))
    s = _order_score(firsts, hist)
    out["order_of_falls"] = ({"reason": "fewer than two evaluable checkpoints taken from ISIS"}
                             if math.isnan(s) else {"score": s, "value": s})
    # P4 displacement peaks in 2017, then people return
    new = _metric(res, "new_displaced").rolling(4, min_periods=1).mean()
    stock = _metric(res, "n_displaced")
    ret = _metric(res, "new_returnees")
    if len(new) and new.max() > 0:
        peak = new.idxmax()
        back = ret[ret.index > peak].sum()
        ok = bool(peak.year == 2017 and back >= 0.25 * stock.max())
    else:
        ok = False
    out["displacement_peak"] = {"score": float(ok), "value": None}
    return out


def pattern_scores(res: Results, checkpoints: list[Checkpoint] | None = None) -> dict[str, bool]:
    """Pass/fail view of the date and order patterns (score of at least 0.5 = pass)."""
    pats = date_patterns(res, checkpoints if checkpoints is not None else _safe_default())
    return {k: bool(v.get("score", 0.0) >= 0.5) for k, v in pats.items()}


def _safe_default() -> list[Checkpoint]:
    try:
        return read_checkpoints(PUBLIC_CHECKPOINTS)
    except ValueError:
        return []


# ------------------------------------------------------------------------------ aggregate facts
@dataclass
class FactPattern:
    """A pattern read from ``aggregate_facts_2015-2019.csv``.

    ``measure`` says how the model's value is taken:
    ``isis_km2`` ISIS's area (share × theatre area) at ``end``; ``isis_lost_pct`` the share of
    ISIS's former ground lost by ``end``, ``100 × (1 − 0.40 × A(end) / A(start))`` (0.40: the
    ground IHS still counted on 26 June 2017, against January 2015); ``window_sum`` the sum of
    the ``new_`` metric over the steps in (``start``, ``end``]; ``cum_diff`` the increase of the
    ``cum_`` metric from ``start`` to ``end``.
    """

    name: str
    group: str
    measure: str
    end: dt.date
    observed: float
    unit: str
    lines: tuple[int, ...]
    metric: str = ""
    faction: tuple[str, ...] = ("ALL",)
    start: dt.date | None = None
    note: str = ""
    reason: str = ""  # not evaluable whatever the run


#: governorates (names as in ``admin1.geojson``) of each operation, for ``new_displaced_gov``
OPERATIONS = (
    # name, window start, metric, date of the row (end), governorates, rows (line-of-end, line-of-start)
    ("displacement_raqqa", "Raqqa (Jul 2017, OCHA series since 1 Apr minus its 26 Jun value)",
     "people displaced since 1 Apr 2017", "2017-07-31", "2017-06-26", ("Raqqa",)),
    # row 40: "UN-registered in Tel Rifaat area", people displaced from Afrin district (the
    # Kurdish-held pocket Olive Branch took), not from all of Aleppo governorate: counted on the
    # ground the SDF held in Aleppo governorate the week they fled (new_displaced_gov_holder,
    # by the holder of the home or shelter settlement's cell).  That also counts any flight from
    # the SDF's Manbij and Kobani (Aleppo governorate) in the window; Olive Branch did not touch
    # them (US protection, the manbij_kobani zone), so little flight is expected there
    ("displacement_afrin", "Afrin (Olive Branch, from 20 Jan 2018)",
     "people displaced by Olive Branch", "2018-03", "2018-01-20", ("Aleppo|SDF",)),
    ("displacement_daraa_quneitra", "Daraa/Quneitra (from 19 Jun 2018)",
     "people displaced since 19 Jun", "2018-07-06", "2018-06-19", ("Daraa", "Quneitra")),
    ("displacement_nw_syria_2019", "north-west Syria (from 30 Apr 2019)",
     "people uprooted", "2019-08-21", "2019-04-30", ("Idlib", "Hama")),
    ("displacement_peace_spring", "Peace Spring (from 9 Oct 2019)",
     "people displaced", "2019-10-13", "2019-10-09", ("Raqqa", "Al-Hasakah")),
)
RELOCATIONS = (
    ("relocated_eastern_ghouta", "Eastern Ghouta, fighters and families in 8 days",
     "people evacuated in 8 days (fighters + families)", "2018-03-31", "2018-03-23"),
    ("relocated_douma", "Douma, fighters and families in April 2018",
     "fighters and families evacuated in April", "2018-04-11", "2018-03-31"),
    ("relocated_syria_2018", "Syria, surrender deals since March 2018 (UN)",
     "people forcibly relocated", "2018-05-16", "2018-03-01"),
)
#: metric names the scorecard expects but the model may not record yet
DISPLACED_BY_GOV = "new_displaced_gov"  # new displacement per governorate (faction column = governorate)
DISPLACED_AGAIN_BY_GOV = "new_displaced_again_gov"  # displaced people driven on from a shelter under fire
#: the same two flows per "<governorate>|<holder of the home (shelter) before the week's changes>"
DISPLACED_BY_HOLDER = "new_displaced_gov_holder"
DISPLACED_AGAIN_BY_HOLDER = "new_displaced_again_gov_holder"
#: each displacement metric with its secondary-displacement partner
DISPLACED_AGAIN = {DISPLACED_BY_GOV: DISPLACED_AGAIN_BY_GOV,
                   DISPLACED_BY_HOLDER: DISPLACED_AGAIN_BY_HOLDER}
RELOCATED = "cum_people_relocated"  # fighters and families moved under surrender/evacuation deals


def fact_patterns(path: str | Path = history.FACTS) -> list[FactPattern]:
    """The aggregate-fact patterns of ODD section 1.2, each tied to its rows of the CSV."""
    df = history.facts(path)
    out: list[FactPattern] = []
    both = df["scope"] == "Iraq+Syria"
    for r in df[both & (df["metric"] == "ISIS-controlled territory")].itertuples():
        out.append(FactPattern(f"isis_area_{r.date}", "ISIS area", "isis_km2", r.when, float(r.value),
                               "km²", (int(r.line),), "share_territory_area", ("ISIS",),
                               note="IHS Conflict Monitor"))
    for r in df[df["metric"].str.startswith("share of territory once held by ISIS")].itertuples():
        reason = "" if r.scope == "Iraq+Syria" else \
            f"scope {r.scope}: the facts give no anchor for ISIS's former ground in {r.scope} alone"
        out.append(FactPattern(f"isis_lost_{r.date}", "ISIS area", "isis_lost_pct", r.when, float(r.value),
                               "% lost", (int(r.line),), "share_territory_area", ("ISIS",),
                               note=f"{r.scope}", reason=reason))
    for name, label, metric, date, start, govs in OPERATIONS:
        row = history.fact_row(metric, date, path=path)
        obs, lines = float(row["value"]), (int(row["line"]),)
        if name == "displacement_raqqa":  # the OCHA series counts from 1 April: take its rise since 26 June
            base = history.fact_row(metric, start, path=path)
            obs, lines = obs - float(base["value"]), (int(row["line"]), int(base["line"]))
        metric_name = DISPLACED_BY_HOLDER if "|" in govs[0] else DISPLACED_BY_GOV
        out.append(FactPattern(name, "displacement", "window_sum", row["when"], obs, "people", lines,
                               metric_name, govs, history.parse_fact_date(start), note=label))
    for name, label, metric, date, start in RELOCATIONS:
        row = history.fact_row(metric, date, path=path)
        out.append(FactPattern(name, "relocation", "cum_diff", row["when"], float(row["value"]), "people",
                               (int(row["line"]),), RELOCATED, ("ALL",), history.parse_fact_date(start),
                               note=label))
    base = history.fact_row("ISIS foreign fighters/affiliates returned home", "2017-10", path=path)
    for metric, date in (("ISIS affiliates returned to countries of departure", "2018-07"),
                         ("foreign ISIS affiliates (upper estimate)", "2019-07")):
        row = history.fact_row(metric, date, path=path)
        obs = float(row["value"])
        m = re.search(r"([\d,]+) returnees", str(row["note"]))
        if "upper estimate" in metric and m:  # the row's value counts affiliates; its note the returnees
            obs = float(m[1].replace(",", ""))
        obs -= float(base["value"])
        out.append(FactPattern(f"foreign_fighters_returned_{date}", "foreign fighters", "cum_diff",
                               row["when"], obs, "people", (int(base["line"]), int(row["line"])),
                               "cum_foreign_fighters_exported", ("ALL",), base["when"],
                               note=f"returnees {date} (ICSR) minus Oct 2017 (Soufan Center)"))
    return out


def _value_at(s: pd.Series, when) -> float:
    s = s[s.index <= pd.Timestamp(when)]
    return float(s.iloc[-1]) if len(s) else 0.0


def fact_value(res: Results, p: FactPattern, window_weeks: float = TIMING_FULL_WEEKS) -> tuple[float, str]:
    """The model's value of one fact pattern in one run, or (nan, reason)."""
    if p.reason:
        return math.nan, p.reason
    dates = pd.to_datetime(pd.Series(_dates(res)))
    first, last = dates.iloc[0], dates.iloc[-1]
    slack = pd.Timedelta(weeks=window_weeks)
    end = pd.Timestamp(p.end)
    reasons = []
    if end > last + pd.Timedelta(days=3):
        reasons.append(f"past the horizon (run ends {last.date()})")
    if end < first - slack or (p.start is not None and p.measure == "window_sum" and end < first):
        reasons.append(f"before the run's start ({first.date()})")
    if not _has_metric(res, p.metric):
        reasons.append(f"the model records no metric {p.metric}")
    elif p.metric == DISPLACED_BY_GOV:
        have = set(res.timeseries.loc[res.timeseries.metric == p.metric, "faction"])
        lost = [g for g in p.faction if g not in have]
        if lost:
            reasons.append(f"no {p.metric} for {', '.join(lost)}")
    if reasons:
        return math.nan, "; ".join(reasons)
    if p.measure in ("isis_km2", "isis_lost_pct"):
        share = _metric(res, "share_territory_area", "ISIS")
        k = int(np.argmin(np.abs((share.index - end).values.astype(np.int64))))
        a = float(share.iloc[k])
        if p.measure == "isis_km2":
            return a * history.theatre_area_km2(res.geo), ""
        a0 = float(share.iloc[0])
        if a0 <= 0:
            return math.nan, "ISIS holds no ground at the start"
        return 100.0 * (1.0 - (1.0 - history.LOST_AT_START) * a / a0), ""
    start = pd.Timestamp(p.start) if p.start is not None else first
    if p.measure == "window_sum":
        hi = max(end, start + pd.Timedelta(days=7))
        tot = 0.0
        # an operation's displaced (UN, OCHA) include people displaced before who had to move
        # again: the model's secondary displacement counts too where it is recorded
        again = DISPLACED_AGAIN.get(p.metric, "")
        metrics = [p.metric] + ([again] if again and _has_metric(res, again) else [])
        for name in metrics:
            for f in p.faction:
                s = _metric(res, name, f)
                tot += float(s[(s.index > start) & (s.index <= hi)].sum())
        return tot, ""
    if p.measure == "cum_diff":
        s = _metric(res, p.metric, p.faction[0])
        return _value_at(s, end) - (_value_at(s, start) if start > first else 0.0), ""
    raise ValueError(f"unknown measure {p.measure!r}")


def fact_score(p: FactPattern, value: float) -> float:
    if p.measure == "isis_lost_pct":
        return points_kernel(value, p.observed)
    return ratio_kernel(value, p.observed)


# ------------------------------------------------------------------------------ scorecard
SCORECARD_COLUMNS = ("kind", "group", "name", "date", "expected", "observed", "unit", "model",
                     "model_p10", "model_p90", "model_date", "error_weeks", "timing_score",
                     "hold_score", "score", "status", "reason", "source")


def _row(**kw) -> dict:
    base = {c: "" for c in SCORECARD_COLUMNS}
    for c in ("observed", "model", "model_p10", "model_p90", "error_weeks", "timing_score",
              "hold_score", "score"):
        base[c] = np.nan
    base.update(kw)
    return base


def _median_date(ds: list) -> str:
    """Median of the runs' dates, counting a run where it never happens as the latest."""
    if not ds:
        return "never"
    never = np.datetime64("2262-01-01")
    m = sorted(never if d is None else np.datetime64(d, "D") for d in ds)[len(ds) // 2]
    return "never" if m == never else str(m)


def scorecard(runs: list[Results], checkpoints: list[Checkpoint] | None = None, window_weeks: float = 4,
              facts_path: str | Path | None = history.FACTS) -> pd.DataFrame:
    """One row per checkpoint and pattern, then summary rows (``kind == "overall"``).

    Columns (:data:`SCORECARD_COLUMNS`): ``score`` is the ensemble mean of the per-run score;
    for checkpoints also ``timing_score``, ``hold_score``, ``model_date`` (median first
    capture) and ``error_weeks`` (median date error; ``inf`` when most runs never take the
    cell); for facts ``observed``, ``model`` (ensemble median) and ``model_p10``/``model_p90``.
    ``status`` is ``ok`` or ``not evaluable`` (``reason`` says why); not-evaluable rows are left
    out of every mean.  The overall rows give the mean scores, the median date error and, in
    ``reason``, how many rows were evaluated and how many were not.
    """
    if checkpoints is None:
        checkpoints = default_checkpoints()
    rows = []
    errors_cp: list[float] = []  # every run's date error of every evaluable checkpoint
    errors_all: list[float] = []  # ... and of the ISIS defeat date
    ref = runs[0]
    for cp in checkpoints:
        cell, reason = locate(ref, cp, window_weeks)
        base = dict(kind="checkpoint", group="control", name=cp.place, date=str(cp.date or ""),
                    expected=cp.to_controller, source=cp.source)
        if cell is None:
            rows.append(_row(**base, status=NOT_EVALUABLE, reason=reason))
            continue
        ms = [checkpoint_measures(res, cp, cell, window_weeks) for res in runs]
        errs = [m["error_weeks"] for m in ms]
        errors_cp += errs
        rows.append(_row(**base, model_date=_median_date([m["first"] for m in ms]),
                         error_weeks=float(np.median(errs)),
                         timing_score=float(np.mean([m["timing"] for m in ms])),
                         hold_score=float(np.mean([m["hold"] for m in ms])),
                         score=float(np.mean([m["score"] for m in ms])), status="ok"))
    public = _safe_default()  # the big falls are the public checkpoints, whatever file is scored
    pats = [date_patterns(res, public) for res in runs]
    for name in PATTERNS:
        ps = [p[name] for p in pats]
        expected = {"isis_defeat": str(ISIS_DEFEAT), "mosul_before_raqqa": "Mosul first",
                    "order_of_falls": "historical order", "displacement_peak": "2017, then returns"}[name]
        src = {"isis_defeat": f"{PUBLIC_CHECKPOINTS.name} (Baghuz)", "mosul_before_raqqa": PUBLIC_CHECKPOINTS.name,
               "order_of_falls": PUBLIC_CHECKPOINTS.name, "displacement_peak": "ODD 1.2"}[name]
        base = dict(kind="pattern", group="dates", name=name, expected=expected, source=src,
                    date=str(ISIS_DEFEAT) if name == "isis_defeat" else "")
        if any("reason" in p for p in ps):
            rows.append(_row(**base, status=NOT_EVALUABLE, reason=next(p["reason"] for p in ps if "reason" in p)))
            continue
        extra = {}
        if name == "isis_defeat":
            errs = [p["error_weeks"] for p in ps]
            errors_all += errs
            notes = sorted({p["note"] for p in ps if p.get("note")})
            extra = dict(model_date=_median_date([p["value"] for p in ps]), error_weeks=float(np.median(errs)),
                         timing_score=float(np.mean([timing_kernel(e) for e in errs])), reason="; ".join(notes))
        if name == "order_of_falls":
            v = [p["value"] for p in ps]
            extra = dict(model=float(np.median(v)), model_p10=float(np.percentile(v, 10)),
                         model_p90=float(np.percentile(v, 90)), observed=1.0, unit="share of pairs")
        rows.append(_row(**base, **extra, score=float(np.mean([p["score"] for p in ps])), status="ok"))
    if facts_path is not None:
        for fp in fact_patterns(facts_path):
            vals, reason = [], ""
            for res in runs:
                v, reason = fact_value(res, fp, window_weeks)
                if reason:
                    break
                vals.append(v)
            lines = ", ".join(str(x) for x in fp.lines)
            base = dict(kind="pattern", group=fp.group, name=fp.name, date=str(fp.end),
                        expected=fp.note, observed=fp.observed, unit=fp.unit,
                        source=f"{Path(facts_path).name}:{lines}")
            if reason:
                rows.append(_row(**base, status=NOT_EVALUABLE, reason=reason))
                continue
            rows.append(_row(**base, model=float(np.median(vals)), model_p10=float(np.percentile(vals, 10)),
                             model_p90=float(np.percentile(vals, 90)),
                             score=float(np.mean([fact_score(fp, v) for v in vals])), status="ok"))
    df = pd.DataFrame(rows, columns=list(SCORECARD_COLUMNS))
    ok = df["status"] == "ok"

    def summary(name, sel, **kw):
        n_ok, n_ne = int((sel & ok).sum()), int((sel & ~ok).sum())
        return _row(kind="overall", name=name, score=float(df.loc[sel & ok, "score"].mean()) if n_ok else np.nan,
                    status="ok" if n_ok else NOT_EVALUABLE,
                    reason=f"{n_ok} evaluated, {n_ne} not evaluable", **kw)

    cps = df["kind"] == "checkpoint"
    pat = df["kind"] == "pattern"
    errors_all = errors_cp + errors_all
    med = float(np.median(errors_all)) if errors_all else np.nan
    over = [
        summary("checkpoints", cps,
                timing_score=float(df.loc[cps & ok, "timing_score"].mean()) if (cps & ok).any() else np.nan,
                hold_score=float(df.loc[cps & ok, "hold_score"].mean()) if (cps & ok).any() else np.nan,
                error_weeks=float(np.median(errors_cp)) if errors_cp else np.nan),
        summary("patterns", pat),
        summary("all", cps | pat, error_weeks=med),
    ]
    return pd.concat([df, pd.DataFrame(over, columns=list(SCORECARD_COLUMNS))], ignore_index=True)


def overall_score(df: pd.DataFrame) -> float:
    return float(df[(df.kind == "overall") & (df.name == "all")]["score"].iloc[0])


def median_date_error(df: pd.DataFrame) -> float:
    """Median date error in weeks over every run of every dated checkpoint and the ISIS defeat."""
    return float(df[(df.kind == "overall") & (df.name == "all")]["error_weeks"].iloc[0])


def _fmt(x, fmt="{:,.0f}") -> str:
    if isinstance(x, float) and math.isnan(x):
        return ""
    if isinstance(x, float) and math.isinf(x):
        return "never"
    return fmt.format(x)


def format_scorecard(df: pd.DataFrame) -> str:
    """A compact text table of the scorecard (what ``sim validate`` prints)."""
    lines = []
    head = f"{'kind':<10} {'name':<38} {'date':<10} {'expected':<16} {'model [10-90%] vs observed':<36} {'err_w':>6} " \
           f"{'timing':>6} {'hold':>5} {'score':>5}  status"
    lines.append(head)
    for r in df.itertuples():
        if r.kind == "checkpoint" or r.name == "isis_defeat":
            model = r.model_date
        elif isinstance(r.model, float) and not math.isnan(r.model):
            f = "{:,.2f}" if abs(r.model) < 10 else "{:,.1f}" if r.unit == "% lost" else "{:,.0f}"
            model = f"{_fmt(r.model, f)} [{_fmt(r.model_p10, f)}-{_fmt(r.model_p90, f)}]"
            if isinstance(r.observed, float) and not math.isnan(r.observed):
                model = f"{model} vs {_fmt(r.observed, f)}"
        else:
            model = ""
        status = r.status if r.status != NOT_EVALUABLE else f"not evaluable: {r.reason}"
        if r.kind == "overall":
            status = r.reason
        expected = str(r.expected)[:16]
        lines.append(f"{r.kind:<10} {str(r.name)[:38]:<38} {str(r.date)[:10]:<10} {expected:<16} {model[:36]:<36} "
                     f"{_fmt(r.error_weeks, '{:.1f}'):>6} {_fmt(r.timing_score, '{:.2f}'):>6} "
                     f"{_fmt(r.hold_score, '{:.2f}'):>5} {_fmt(r.score, '{:.2f}'):>5}  {status}")
    return "\n".join(lines)


def plot_scorecard(df: pd.DataFrame, path: str | Path) -> None:
    """Left: the score of every row (bars), with timing and holding for checkpoints (dots) and
    the rows that could not be evaluated; right: the aggregate facts, model (median and 10-90%
    range) against the data, as the ratio model / observed on a log axis."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    d = df[df.kind != "overall"].reset_index(drop=True)
    facts = d[(d.kind == "pattern") & d["observed"].notna() & (d.status == "ok") & (d["observed"] > 0)
              & d["unit"].isin(["km²", "people", "% lost"])]
    h = 0.3 * len(d) + 1.8
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, h), gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(d))[::-1]
    ok = (d.status == "ok").to_numpy()
    colours = ["#0072b2" if k == "checkpoint" else "#e69f00" for k in d["kind"]]
    ax.barh(y[ok], d["score"][ok], color=[c for c, o in zip(colours, ok) if o], label="score")
    ax.scatter(d["timing_score"], y, color="black", zorder=3, s=14, label="timing (date error kernel)")
    ax.scatter(d["hold_score"], y, color="white", edgecolor="black", zorder=3, s=14, marker="s",
               label="still held 4 weeks after")
    for yy, sc in zip(y[ok], d["score"][ok]):
        ax.text(min(float(sc), 0.93) + 0.01, yy, f"{sc:.2f}", va="center", fontsize=6.5)
    for yy, reason in zip(y[~ok], d["reason"][~ok]):
        ax.text(0.01, yy, f"not evaluable: {reason}"[:70], va="center", fontsize=6.5, color="#777777")
    labels = []
    for r in d.itertuples():
        lab = f"{str(r.name)[:30]} ({r.expected})" if r.kind == "checkpoint" else str(r.name)
        if r.kind == "checkpoint" or r.name == "isis_defeat":
            if r.status == "ok":
                e = _fmt(r.error_weeks, "{:.0f}")
                lab += f" ({e} w)" if e != "never" else " (never)"
        labels.append(lab)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ensemble mean score")
    tot = overall_score(df)
    med = median_date_error(df)
    summ = df[(df.kind == "overall") & (df.name == "all")]["reason"].iloc[0]
    ax.set_title(f"Hindcast scorecard: overall {tot:.2f}, median date error {_fmt(med, '{:.1f}')} weeks "
                 f"({summ})", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    if len(facts):
        yf = np.arange(len(facts))[::-1]
        ratio = facts["model"].to_numpy() / facts["observed"].to_numpy()
        lo = facts["model_p10"].to_numpy() / facts["observed"].to_numpy()
        hi = facts["model_p90"].to_numpy() / facts["observed"].to_numpy()
        floor = 1e-3
        ratio, lo, hi = (np.maximum(a, floor) for a in (ratio, lo, hi))
        ax2.axvspan(1 / RATIO_FULL, RATIO_FULL, color="#009e73", alpha=0.15, label="full marks (counts)")
        ax2.axvline(1, color="#009e73", lw=1)
        ax2.errorbar(ratio, yf, xerr=[ratio - lo, hi - ratio], fmt="o", color="#e69f00", ecolor="#555555",
                     capsize=2, ms=4, label="model median, 10-90%")
        ax2.set_xscale("log")
        left, right = min(float(lo.min()), 0.4) / 1.2, max(float(hi.max()), 2.5) * 1.2
        # a tick per decade over a wide range (the labels of 0.25 / 0.5 / 1 ran together)
        steps = (0.01, 0.03, 0.1, 0.25, 0.5, 1, 2, 4, 10, 30, 100) if right / left < 300 else \
            (0.001, 0.01, 0.1, 1, 10, 100)
        ticks = [t for t in steps if left <= t <= right]
        ax2.set_xlim(left, right)
        ax2.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax2.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax2.set_yticks(yf, [f"{n} ({_fmt(o)} {u})" for n, o, u in
                            zip(facts["name"], facts["observed"], facts["unit"])], fontsize=7)
        ax2.set_xlabel("model / observed")
        ax2.legend(fontsize=7, loc="lower right")
        ax2.set_title("Aggregate facts against the data", fontsize=9)
    else:
        ax2.text(0.5, 0.5, "no aggregate fact could be evaluated", ha="center", va="center",
                 transform=ax2.transAxes, fontsize=8, color="#777777")
        ax2.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
