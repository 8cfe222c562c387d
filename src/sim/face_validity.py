"""Face validity at the end of 2019: who should hold the key places, and which seats changed hands.

Pure Python (plus the standard library); no Mesa, no Hydra, so the functions can score any run
summary, including one read back from disk.

* :func:`load_key_places_2019` reads ``sim/data/history/key_places_2019-12.csv``: for each key
  place, its controller on 31 Dec 2019 (``controller_2019_12``) and the other controllers that
  honest sources also support (``also_acceptable``, ``|``-separated; e.g. Manbij and Kobani, which
  the SDF administered while Syrian army and Russian units deployed there after Oct 2019).
* :func:`score_final_controllers` compares a run's final controllers with that table.
* :func:`seat_changes` lists the changes of hands of capitals and governorate seats in a run.

The table is a face-validity check, not a calibration target: a run is not tuned to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .history_data import checked_rows

FACTIONS = ("ISIS", "SYRIAN_GOV", "SDF", "SYRIAN_REBELS", "ISLAMIST_REBELS", "TURKEY_SNA",
            "US_COALITION", "IRAQI_GOV", "PMF", "KRG")
SEAT_KINDS = ("capital", "governorate_seat", "town")
SEATS = ("capital", "governorate_seat")  # the kinds whose changes of hands seat_changes reports
KEY_PLACES_2019 = Path(str(resources.files("sim") / "data")) / "history" / "key_places_2019-12.csv"
COLUMNS = ("name", "lat", "lon", "country", "governorate", "seat", "controller_2019_12",
           "also_acceptable", "source", "from_memory", "note")


@dataclass(frozen=True)
class KeyPlace:
    name: str
    lat: float
    lon: float
    country: str
    governorate: str
    seat: str  # capital / governorate_seat / town
    controller: str  # controller on 31 Dec 2019
    also_acceptable: tuple[str, ...]  # other controllers honest sources support
    source: str
    from_memory: bool
    note: str

    @property
    def acceptable(self) -> tuple[str, ...]:
        """The expected controller followed by the other acceptable ones."""
        return (self.controller, *self.also_acceptable)

    @property
    def is_seat(self) -> bool:
        return self.seat in SEATS


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def load_key_places_2019(path: str | Path = KEY_PLACES_2019) -> list[KeyPlace]:
    """Read the end-2019 key-place table; a bad row raises ``ValueError`` naming file and line."""
    out: list[KeyPlace] = []
    seen: set[str] = set()
    for where, row in checked_rows(path, COLUMNS):
        name = row["name"].strip()
        if not name:
            raise ValueError(f"{where}: empty name")
        if _key(name) in seen:
            raise ValueError(f"{where}: duplicate place {name!r}")
        seen.add(_key(name))
        ctrl = row["controller_2019_12"].strip()
        also = tuple(c.strip() for c in row["also_acceptable"].split("|") if c.strip())
        for code in (ctrl, *also):
            if code not in FACTIONS:
                raise ValueError(f"{where}: unknown faction code {code!r}")
        if ctrl in also:
            raise ValueError(f"{where}: {ctrl} is both expected and also_acceptable")
        seat = row["seat"].strip()
        if seat not in SEAT_KINDS:
            raise ValueError(f"{where}: seat must be one of {SEAT_KINDS}, not {seat!r}")
        mem = row["from_memory"].strip().lower()
        if mem not in ("yes", "no"):
            raise ValueError(f"{where}: from_memory must be yes or no, not {mem!r}")
        try:
            lat, lon = float(row["lat"]), float(row["lon"])
        except ValueError as exc:
            raise ValueError(f"{where}: bad coordinates ({exc})") from None
        out.append(KeyPlace(name=name, lat=lat, lon=lon, country=row["country"].strip(),
                            governorate=row["governorate"].strip(), seat=seat,
                            controller=ctrl, also_acceptable=also,
                            source=row["source"].strip(), from_memory=mem == "yes",
                            note=row["note"].strip()))
    return out


@dataclass(frozen=True)
class ScoreRow:
    name: str
    expected: str
    acceptable: tuple[str, ...]  # expected first, then the also-acceptable codes
    got: str | None  # None: the run reported no controller for this place
    ok: bool  # got is one of the acceptable controllers
    exact: bool  # got is the expected controller


@dataclass(frozen=True)
class FaceValidityScore:
    rows: tuple[ScoreRow, ...]

    @property
    def scored(self) -> tuple[ScoreRow, ...]:
        """The rows for which the run reported a controller."""
        return tuple(r for r in self.rows if r.got is not None)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rows if r.got is None)

    @property
    def n_ok(self) -> int:
        return sum(r.ok for r in self.rows)

    @property
    def share_ok(self) -> float:
        """Share of the scored places held by an acceptable controller (nan if none scored)."""
        n = len(self.scored)
        return self.n_ok / n if n else float("nan")

    @property
    def share_exact(self) -> float:
        """Share of the scored places held by exactly the expected controller."""
        n = len(self.scored)
        return sum(r.exact for r in self.rows) / n if n else float("nan")

    def table(self) -> list[tuple[str, str, str, str | None, bool]]:
        """``(name, expected, acceptable, got, ok)`` per place; acceptable is ``|``-joined."""
        return [(r.name, r.expected, "|".join(r.acceptable), r.got, r.ok) for r in self.rows]

    def summary(self) -> dict[str, Any]:
        return {"n_places": len(self.rows), "n_scored": len(self.scored), "n_ok": self.n_ok,
                "share_ok": self.share_ok, "share_exact": self.share_exact,
                "missing": list(self.missing),
                "wrong": [r.name for r in self.scored if not r.ok]}


def score_final_controllers(final: Mapping[str, str | None],
                            places: Sequence[KeyPlace] | None = None) -> FaceValidityScore:
    """Score a run's final controllers (place name -> faction code) against the end-2019 table.

    Names match case-insensitively, ignoring extra spaces.  A place the run does not report (or
    reports as ``None``) is listed in ``missing`` and left out of the shares, so a run on a map
    that lacks a place is not penalised for it; names in ``final`` that are not in the table are
    ignored.  ``share_ok`` counts a place as right when its controller is the expected one or one
    of the ``also_acceptable`` ones.
    """
    places = load_key_places_2019() if places is None else places
    got_by_key = {_key(k): v for k, v in final.items()}
    rows = []
    for p in places:
        got = got_by_key.get(_key(p.name))
        ok = got is not None and got in p.acceptable
        rows.append(ScoreRow(name=p.name, expected=p.controller, acceptable=p.acceptable,
                             got=got, ok=ok, exact=got == p.controller))
    return FaceValidityScore(rows=tuple(rows))


@dataclass(frozen=True)
class SeatChange:
    date: Any
    place: str
    from_controller: str
    to_controller: str


def seat_names(places: Iterable[KeyPlace] | None = None) -> list[str]:
    """Names of the capitals and governorate seats in the key-place table."""
    places = load_key_places_2019() if places is None else places
    return [p.name for p in places if p.is_seat]


def seat_changes(controller_series: Mapping[str, Sequence[tuple[Any, str | None]]],
                 seats: Iterable[str] | None = None) -> list[SeatChange]:
    """Changes of hands of capitals and governorate seats, for the run summary.

    ``controller_series`` maps a place name to its ``(date, controller)`` observations in
    chronological order (dates of any one comparable type: ``datetime.date``, ISO strings, step
    numbers).  ``seats`` names the places to report (matched case-insensitively); by default the
    capitals and governorate seats of the key-place table.  A change is reported at the date of
    the first observation with a new controller; the first observation of a place sets its
    starting controller and is not a change.  ``None`` (no controller / not observed) is skipped:
    a seat that goes X -> None -> Y reports one change X -> Y at Y's date, and X -> None -> X
    reports none.  Returns the changes sorted by date, then place name (the order of
    ``controller_series`` breaks ties).  Raises ``ValueError`` if a series goes back in time.
    """
    wanted = {_key(s) for s in (seat_names() if seats is None else seats)}
    changes: list[SeatChange] = []
    for place, series in controller_series.items():
        if _key(place) not in wanted:
            continue
        last = None
        prev_date = None
        for i, (date, ctrl) in enumerate(series):
            if i and date < prev_date:
                raise ValueError(f"{place}: dates not in chronological order at item {i}")
            prev_date = date
            if ctrl is None:
                continue
            if last is not None and ctrl != last:
                changes.append(SeatChange(date=date, place=place, from_controller=last,
                                          to_controller=ctrl))
            last = ctrl
    changes.sort(key=lambda c: (c.date, c.place))
    return changes
