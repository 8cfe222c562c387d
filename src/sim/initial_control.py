"""The initial control map (1 July 2017): who holds each cell at step 0.

:func:`build_initial_control` is the one entry point the model calls.  On the real map it is
:func:`sim.initial_map.build_initial_map` (the bundled place lists, enclaves and open desert;
see that module for the rules).  On the synthetic test map the seeds are its own towns,
assigned round-robin to factions, and every cell goes to the nearest town in the same country
(:func:`sim.rules.control.initial_control_voronoi`).
"""

from __future__ import annotations

import numpy as np

from . import initial_map
from .geography import DATA_BBOX, Geography
from .rules.control import UNGOVERNED, initial_control_voronoi


def build_initial_control(geo: Geography, faction_names: list[str],
                          allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, open_desert)`` at step 0: the owner code of every cell (``int8``: faction
    index, ``UNGOVERNED`` or ``OUTSIDE``) and the open-desert mask (ground where ISIS moved
    freely but held nothing; ungoverned at the start).

    The real map is data: a deconfliction line limits where a faction may go and take ground
    from step 1 on, not what it held on 1 July 2017 (the SDF's Manbij and Tabqa, the regime's
    Hasakah square).  On the synthetic map a faction only holds ground where it is
    ``allowed[f]``."""
    g = geo
    fidx = {n: i for i, n in enumerate(faction_names)}
    places = initial_map.read_places(box=DATA_BBOX)  # checked on every map, tiny included
    if g.sources.get("all") != "synthetic test map":
        m = initial_map.build_initial_map(g.grid, g.country, g.country_names, g.theatre, fidx, places)
        return m.owner, m.open_desert
    rr, cc = g.places.row, g.places.col
    code = np.arange(len(rr)) % len(faction_names)
    ctry = np.where(g.country[rr, cc] == 0, 0, 1)
    lat0 = np.deg2rad(0.5 * (g.grid.lat_min + g.grid.lat_max))
    owner = initial_control_voronoi(np.asarray(rr), np.asarray(cc), code, ctry, g.country,
                                    g.theatre, 1.0, float(np.cos(lat0)))
    held = owner >= 0
    ok = np.take_along_axis(allowed, np.where(held, owner, 0)[None], axis=0)[0]
    owner[held & ~ok] = UNGOVERNED
    return owner, np.zeros(g.shape, bool)
