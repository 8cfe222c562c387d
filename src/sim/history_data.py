"""Loaders for small history tables that the model uses as inputs (no Mesa, no Hydra).

:func:`load_displacement_stock` reads ``sim/data/history/displacement_stock_2017-07.csv``: the
internally displaced (``idp_stock``) and refugees abroad (``refugee_stock``) around 1 July 2017,
nationally (``governorate = ALL``) and, where a source gives them, by governorate of displacement.
Governorate names are those of ``sim/data/geo/admin1.geojson`` (``Nineveh``, ``Duhok``, ...).

The table holds several dated national figures and dated governorate snapshots; the loader takes
the ones nearest to a reference date (1 July 2017 by default).  A governorate snapshot is partial
(the stored sources name only the largest host governorates), so it comes with the national total
of the same date; the shares of that snapshot, applied to the national figure, give the
per-governorate stock at the reference date, and the rest stays unallocated.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

HISTORY = Path(str(resources.files("sim") / "data")) / "history"
DISPLACEMENT_STOCK = HISTORY / "displacement_stock_2017-07.csv"
REFERENCE_DATE = dt.date(2017, 7, 1)
METRICS = ("idp_stock", "refugee_stock")
COUNTRIES = ("Syria", "Iraq")
ALL = "ALL"
COLUMNS = ("country", "governorate", "metric", "value", "date", "source", "from_memory", "note")


@dataclass(frozen=True)
class StockFigure:
    country: str
    governorate: str  # ALL for a national figure
    metric: str  # idp_stock / refugee_stock
    value: int
    date: dt.date
    source: str
    from_memory: bool
    note: str



def checked_rows(path: str | Path, columns):
    """Yield ``(where, row)`` for each row of a UTF-8 CSV that has all ``columns``
    (``where`` = ``file:line`` for error messages); a missing column raises ``ValueError``."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(columns) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path.name}: missing columns {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            yield f"{path.name}:{line}", row

def read_displacement_rows(path: str | Path = DISPLACEMENT_STOCK) -> list[StockFigure]:
    """Read and check the rows; a bad row raises ``ValueError`` naming file and line."""
    out: list[StockFigure] = []
    seen: set[tuple] = set()
    for where, row in checked_rows(path, COLUMNS):
        country, gov, metric = (row[c].strip() for c in ("country", "governorate", "metric"))
        if country not in COUNTRIES:
            raise ValueError(f"{where}: country must be one of {COUNTRIES}, not {country!r}")
        if metric not in METRICS:
            raise ValueError(f"{where}: metric must be one of {METRICS}, not {metric!r}")
        if not gov:
            raise ValueError(f"{where}: empty governorate (use {ALL} for a national figure)")
        if metric == "refugee_stock" and gov != ALL:
            raise ValueError(f"{where}: refugee_stock is national only ({ALL})")
        try:
            value = int(row["value"])
            date = dt.date.fromisoformat(row["date"].strip())
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if value < 0:
            raise ValueError(f"{where}: negative value")
        mem = row["from_memory"].strip().lower()
        if mem not in ("yes", "no"):
            raise ValueError(f"{where}: from_memory must be yes or no, not {mem!r}")
        if not row["source"].strip():
            raise ValueError(f"{where}: empty source")
        k = (country, gov, metric, date)
        if k in seen:
            raise ValueError(f"{where}: duplicate {k}")
        seen.add(k)
        out.append(StockFigure(country, gov, metric, value, date, row["source"].strip(),
                               mem == "yes", row["note"].strip()))
    return out


@dataclass(frozen=True)
class CountryDisplacement:
    country: str
    idp_stock: int  # national IDP figure nearest to the reference date
    idp_date: dt.date
    refugee_stock: int | None  # refugees abroad, nearest to the reference date (None: no row)
    refugee_date: dt.date | None
    governorate_date: dt.date | None = None  # date of the governorate snapshot used (None: none)
    governorate_snapshot_total: int | None = None  # national IDP total on that date
    idp_by_governorate_raw: dict[str, int] = field(default_factory=dict)  # as the source gives it

    @property
    def governorate_shares(self) -> dict[str, float]:
        """Each listed governorate's share of the national IDPs in its snapshot."""
        if not self.governorate_snapshot_total:
            return {}
        return {g: v / self.governorate_snapshot_total
                for g, v in self.idp_by_governorate_raw.items()}

    @property
    def idp_by_governorate(self) -> dict[str, float]:
        """IDP stock per listed governorate at the reference date: snapshot share x national."""
        return {g: s * self.idp_stock for g, s in self.governorate_shares.items()}

    @property
    def idp_unallocated(self) -> float:
        """National IDPs not attributed to a listed governorate."""
        return self.idp_stock - sum(self.idp_by_governorate.values())


def _nearest(rows: list[StockFigure], when: dt.date) -> StockFigure:
    # nearest date; a tie goes to the earlier figure
    return min(rows, key=lambda r: (abs((r.date - when).days), r.date))


def load_displacement_stock(path: str | Path = DISPLACEMENT_STOCK,
                            reference_date: dt.date = REFERENCE_DATE
                            ) -> dict[str, CountryDisplacement]:
    """Per-country IDP and refugee stocks near ``reference_date``, with the governorate split.

    Returns ``{country: CountryDisplacement}`` for the countries that have a national IDP row.
    Raises ``ValueError`` if a governorate snapshot has no national row of the same date, or if
    its governorates add up to more than that national row.
    """
    rows = read_displacement_rows(path)
    out: dict[str, CountryDisplacement] = {}
    for country in COUNTRIES:
        idp_nat = [r for r in rows if r.country == country and r.metric == "idp_stock"
                   and r.governorate == ALL]
        if not idp_nat:
            continue
        nat = _nearest(idp_nat, reference_date)
        ref = [r for r in rows if r.country == country and r.metric == "refugee_stock"]
        refr = _nearest(ref, reference_date) if ref else None
        gov_rows = [r for r in rows if r.country == country and r.metric == "idp_stock"
                    and r.governorate != ALL]
        snap_date = snap_total = None
        raw: dict[str, int] = {}
        for d in sorted({r.date for r in gov_rows}):  # check every snapshot, not only the one used
            same = [r for r in idp_nat if r.date == d]
            if not same:
                raise ValueError(f"{country}: governorate rows of {d} have no {ALL} row that day")
            parts = sum(r.value for r in gov_rows if r.date == d)
            if parts > same[0].value:
                raise ValueError(f"{country} {d}: governorates add up to {parts} > national "
                                 f"{same[0].value}")
        if gov_rows:
            snap_date = _nearest(gov_rows, reference_date).date
            snap_total = next(r.value for r in idp_nat if r.date == snap_date)
            raw = {r.governorate: r.value for r in gov_rows if r.date == snap_date}
        out[country] = CountryDisplacement(
            country=country, idp_stock=nat.value, idp_date=nat.date,
            refugee_stock=refr.value if refr else None, refugee_date=refr.date if refr else None,
            governorate_date=snap_date, governorate_snapshot_total=snap_total,
            idp_by_governorate_raw=raw)
    return out
