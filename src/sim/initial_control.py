"""The initial control map (1 July 2017): who holds each cell at step 0.

:func:`build_initial_control` is the one entry point the model calls; swap it to change how
the opening map is drawn.  Today it reads the dated control points of
``data/history/initial_control_2017-07.csv`` and assigns every theatre cell to the controller
of the nearest point in the same country (:func:`sim.rules.control.initial_control_voronoi`).
On the synthetic test map the seeds are its own towns, assigned round-robin to factions.
"""

from __future__ import annotations

import csv

import numpy as np

from .config import FACTIONS
from .geography import DATA, DATA_BBOX, Geography
from .rules.control import UNGOVERNED, initial_control_voronoi

CONTROL_POINTS = "initial_control_2017-07.csv"  # in DATA/history
ISO = {"Syria": "SYR", "Iraq": "IRQ"}


def read_control_points(fidx: dict[str, int], path=None):
    """``(lat, lon, faction index, country code)`` of the control points of factions in
    ``fidx`` (from ``DATA/history/initial_control_2017-07.csv`` unless ``path`` is given); a
    bad row stops with its line number."""
    path = path or DATA / "history" / CONTROL_POINTS
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lat, lon, code, ctry = [], [], [], []
    (x0, x1), (y0, y1) = DATA_BBOX
    for i, r in enumerate(rows, start=2):
        try:
            la, lo = float(r["lat"]), float(r["lon"])
        except (TypeError, ValueError):
            raise ValueError(f"{path.name} line {i}: bad lat/lon {r.get('lat')!r}, {r.get('lon')!r}") from None
        if not (y0 <= la <= y1 and x0 <= lo <= x1):
            raise ValueError(f"{path.name} line {i}: lat/lon {la}, {lo} outside the data's "
                             f"box ({y0}..{y1} N, {x0}..{x1} E)")
        if r["controller"] not in fidx:
            if r["controller"] in FACTIONS:
                continue  # faction left out of this configuration
            raise ValueError(f"{path.name} line {i}: unknown controller {r['controller']!r}")
        if r["country"] not in ISO:
            raise ValueError(f"{path.name} line {i}: unknown country {r['country']!r}")
        lat.append(la)
        lon.append(lo)
        code.append(fidx[r["controller"]])
        ctry.append(ISO[r["country"]])
    return lat, lon, code, ctry


def build_initial_control(geo: Geography, faction_names: list[str], allowed: np.ndarray) -> np.ndarray:
    """Owner code of every cell at step 0 (``int8``: faction index, ``UNGOVERNED`` or
    ``OUTSIDE``); a faction only holds ground where it is ``allowed[f]``."""
    g = geo
    fidx = {n: i for i, n in enumerate(faction_names)}
    lat, lon, code, ctry = read_control_points(fidx)
    rr, cc = g.grid.rowcol(np.array(lat), np.array(lon))
    if g.sources.get("all") == "synthetic test map":
        rr, cc = g.places.row, g.places.col
        code = [i % len(faction_names) for i in range(len(rr))]
        ctry = ["SYR" if g.country[r, c] == 0 else "IRQ" for r, c in zip(rr, cc)]
    ctry_idx = np.array([g.country_names.index(c) if c in g.country_names else -99 for c in ctry])
    lat0 = np.deg2rad(0.5 * (g.grid.lat_min + g.grid.lat_max))
    owner = initial_control_voronoi(np.asarray(rr), np.asarray(cc), np.asarray(code), ctry_idx,
                                    g.country, g.theatre, 1.0, float(np.cos(lat0)))
    held = owner >= 0
    ok = np.take_along_axis(allowed, np.where(held, owner, 0)[None], axis=0)[0]
    owner[held & ~ok] = UNGOVERNED
    return owner
