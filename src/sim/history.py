"""Historical figures for 2015-19 from the bundled ``history/aggregate_facts_2015-2019.csv``.

Used by the scorecard (:mod:`sim.validate`) and by the run plots, which draw the figures next to
the model's series where the two measure the same thing (ISIS's area, displacement).  Nothing
here feeds the model.

The file's ``date`` column holds ``YYYY-MM-DD``, ``YYYY-MM`` (read as the 15th of the month) or
``YYYY-Qn`` (the middle of the quarter).  :func:`facts` returns the rows as a DataFrame with the
parsed date, the value as a float and ``line``, the row's line number in the CSV (the header is
line 1), so that every pattern can name its source row.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .geography import DATA

FACTS = DATA / "history" / "aggregate_facts_2015-2019.csv"
EVENTS = DATA / "history" / "events_2017-2019.csv"


#: the metric the defeat date is read from: ISIS's area of *settled* ground (cells with at least
#: ``holdouts.settled_density`` people per km², 2017) as a share of the theatre's area
SETTLED_METRIC = "share_territory_area_settled"


def territorial_defeat_date(isis_share: pd.Series):
    """The first date (index label) at which ISIS holds no ground at all, or None.

    ``isis_share`` is ISIS's ``share_territory_area_settled`` (:data:`SETTLED_METRIC`) indexed by
    date: its settled ground, not open desert where it moved freely but held no towns or roads
    (the 2017 map's README; IHS counts effective control), so a few empty desert cells the
    insurgency walks back into do not postpone the defeat, and the date does not hang on how
    many desert cells a grid has.  Ground retaken after that date is insurgency, scored by
    ``cum_cells_resurfaced`` and the attacks, not as a caliphate.  No ground (not a small
    share) is the SDF's "100% territorial defeat" at Baghuz on 23 March 2019
    (``aggregate_facts``).  A threshold such as 0.5% of the theatre (~3,100 km²) would be met
    historically in December 2017, when 97% of ISIS's former ground was lost.
    """
    gone = isis_share[isis_share <= 0]
    return gone.index[0] if len(gone) else None


#: IHS Conflict Monitor, January 2015: the first estimate of ISIS's ground (km²).  The
#: "share of its former ground lost" figures are read against it: 36,200 km² on 26 June 2017
#: is "-60% since Jan 2015" in the same release.
IHS_FORMER_KM2 = 90_800.0
#: share of its former ground ISIS had lost by 26 June 2017 (IHS), i.e. at the model's start
LOST_AT_START = 0.60


def parse_fact_date(text: str) -> dt.date | None:
    """``YYYY-MM-DD``, ``YYYY-MM`` (the 15th) or ``YYYY-Qn`` (middle of the quarter); else None."""
    text = str(text).strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", text)
    if m:
        return dt.date(int(m[1]), int(m[2]), 15)
    m = re.fullmatch(r"(\d{4})-Q([1-4])", text)
    if m:
        return dt.date(int(m[1]), 3 * int(m[2]) - 1, 15)
    return None


@lru_cache(maxsize=4)
def _facts(path: str) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df["line"] = np.arange(2, len(df) + 2)
    df["when"] = [parse_fact_date(d) for d in df["date"]]
    df["value"] = pd.to_numeric(df["value"].str.replace(",", ""), errors="coerce")
    return df


def facts(path: str | Path = FACTS) -> pd.DataFrame:
    """All rows of the aggregate-facts CSV (a copy; see the module docstring for the columns)."""
    return _facts(str(path)).copy()


def fact_row(metric: str, date: str, scope: str | None = None, path: str | Path = FACTS) -> pd.Series:
    """The one row with this ``metric`` and ``date`` (and ``scope``, if given)."""
    df = _facts(str(path))
    sel = df[(df["metric"] == metric) & (df["date"] == date)]
    if scope is not None:
        sel = sel[sel["scope"] == scope]
    if len(sel) != 1:
        raise KeyError(f"{Path(path).name}: {len(sel)} rows for metric {metric!r} on {date}")
    return sel.iloc[0]


def theatre_area_km2(geo) -> float:
    """Land area of the theatre (km²): the denominator of ``share_territory_area``."""
    return float(np.asarray(geo.grid.cell_area_km2)[geo.theatre].sum())


def isis_area_points(path: str | Path = FACTS) -> pd.DataFrame:
    """ISIS-held area (km²) by date, Iraq and Syria together: the IHS estimates, and the
    officials' "share of its former ground lost" converted with :data:`IHS_FORMER_KM2`
    (``area = 90,800 × (1 − lost)``).  Columns ``date, km2, kind, line``."""
    df = _facts(str(path))
    scope = df["scope"] == "Iraq+Syria"
    ihs = df[scope & (df["metric"] == "ISIS-controlled territory")]
    lost = df[scope & (df["metric"] == "share of territory once held by ISIS now lost")]
    rows = [(r.when, float(r.value), "IHS estimate", int(r.line)) for r in ihs.itertuples()]
    rows += [(r.when, IHS_FORMER_KM2 * (1 - float(r.value) / 100.0), "share lost (officials)", int(r.line))
             for r in lost.itertuples()]
    out = pd.DataFrame(rows, columns=["date", "km2", "kind", "line"])
    out["date"] = pd.to_datetime(out["date"])
    return out.sort_values("date", ignore_index=True)


#: reported displacement by operation: (label, metric, date) of rows in the facts CSV
DISPLACEMENT_ROWS = (
    ("Raqqa (since Apr 2017)", "people displaced since 1 Apr 2017", "2017-07-31"),
    ("Afrin", "people displaced by Olive Branch", "2018-03"),
    ("Daraa/Quneitra", "people displaced since 19 Jun", "2018-07-06"),
    ("NW Syria 2019", "people uprooted", "2019-08-21"),
    ("Peace Spring", "people displaced", "2019-10-13"),
)


def displacement_points(path: str | Path = FACTS) -> pd.DataFrame:
    """Reported displacement by operation (people who fled one offensive, not theatre totals).
    Columns ``date, people, label, line``."""
    rows = []
    for label, metric, date in DISPLACEMENT_ROWS:
        try:
            r = fact_row(metric, date, path=path)
        except KeyError:
            continue
        rows.append((r["when"], float(r["value"]), label, int(r["line"])))
    out = pd.DataFrame(rows, columns=["date", "people", "label", "line"])
    out["date"] = pd.to_datetime(out["date"])
    return out


def in_range(points: pd.DataFrame, dates, slack_days: int = 7) -> pd.DataFrame:
    """The points dated within the run's dates (give or take ``slack_days``)."""
    d = pd.to_datetime(pd.Series(list(dates)))
    if points.empty or d.empty:
        return points.iloc[:0]
    lo, hi = d.min() - pd.Timedelta(days=slack_days), d.max() + pd.Timedelta(days=slack_days)
    return points[(points["date"] >= lo) & (points["date"] <= hi)]


# ------------------------------------------------------------------------------ plot overlays
def overlay_isis_area(ax, results, scale: float = 1.0) -> bool:
    """Draw the historical ISIS area (IHS estimates and officials' share lost), as a share of
    the theatre's area times ``scale`` (100: per cent), on ``ax`` where it falls within the
    run; True if anything was drawn."""
    try:
        pts = in_range(isis_area_points(), results.dates)
        area = theatre_area_km2(results.geo)
    except (OSError, KeyError, ValueError, AttributeError):
        return False
    if pts.empty or not area > 0:
        return False
    for kind, marker, lab in (("IHS estimate", "D", "ISIS area: IHS"),
                              ("share lost (officials)", "o", "ISIS area: officials")):
        p = pts[pts["kind"] == kind]
        if len(p):
            ax.scatter(p["date"], scale * p["km2"] / area, marker=marker, s=22, facecolor="white",
                       edgecolor="black", linewidth=1.0, zorder=6,
                       label=lab)
    return True


def overlay_displacement(ax, results, scale: float = 1e6) -> bool:
    """Mark the displacement reported for each operation (people who fled that offensive,
    not theatre totals) on ``ax``, in units of ``scale`` people; True if anything was drawn."""
    try:
        pts = in_range(displacement_points(), results.dates)
    except (OSError, KeyError, ValueError):
        return False
    if pts.empty:
        return False
    ax.scatter(pts["date"], pts["people"] / scale, marker="v", s=26, color="black", zorder=6,
               label="reported, one operation")
    for r in pts.itertuples():
        ax.annotate(r.label, (r.date, r.people / scale), textcoords="offset points", xytext=(3, 4),
                    fontsize=6, color="#333333")
    return True
