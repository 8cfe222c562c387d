"""Render the landscape grid (no control) to a PNG.

Usage: python scripts/render_grid.py [RESOLUTION_DEG] [OUTPUT.png] [--demo-control]

``--demo-control`` adds a made-up control overlay (for checking colours and the legend).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sim.config import FACTIONS, GeographyConfig
from sim.geography import build_geography
from sim.plotting import plot_map


def demo_control(geo):
    """A made-up control map: factions in rough 2017 areas, some ungoverned and contested."""
    lat = geo.grid.lats[:, None] + 0 * geo.grid.lons[None, :]
    lon = geo.grid.lons[None, :] + 0 * geo.grid.lats[:, None]
    syr = geo.country_mask("SYR")
    irq = geo.country_mask("IRQ")
    f = {n: i for i, n in enumerate(FACTIONS)}
    c = np.full(geo.shape, -2, np.int8)
    c[syr] = f["SYRIAN_GOV"]
    c[irq] = f["IRAQI_GOV"]
    c[syr & (lon > 38.0) & (lon < 40.8) & (lat < 35.6)] = f["ISIS"]
    c[irq & (lon < 42.5) & (lat > 33.0) & (lat < 35.0)] = f["ISIS"]
    c[syr & (lon > 38.5) & (lat > 35.9)] = f["SDF"]
    c[syr & (lon < 36.8) & (lat > 35.4)] = f["ISLAMIST_REBELS"]
    c[syr & (lon > 36.9) & (lon < 38.0) & (lat > 36.2)] = f["TURKEY_SNA"]
    c[syr & (lon < 36.6) & (lat < 33.0)] = f["SYRIAN_REBELS"]
    c[irq & (lat > 35.8) & (lon > 43.3)] = f["KRG"]
    c[irq & (lat > 34.0) & (lat < 35.0) & (lon > 43.5) & (lon < 44.5)] = f["PMF"]
    c[syr & (lon > 38.3) & (lon < 39.0) & (lat < 33.8)] = f["US_COALITION"]
    c[syr & (lon > 36.8) & (lon < 38.0) & (lat < 34.6) & (lat > 33.8)] = -1
    c[~geo.theatre] = -2
    level = np.ones(geo.shape, np.int8)
    level[irq & (lon > 42.6) & (lon < 43.6) & (lat > 35.9) & (lat < 36.6)] = 3
    units = [(*geo.place_cell(place), f[faction], fighters) for place, faction, fighters in (
        ("Raqqa", "SDF", 8000), ("Mosul", "IRAQI_GOV", 30000),
        ("Deir ez-Zor", "SYRIAN_GOV", 12000), ("Hajin", "ISIS", 3000))]
    return c, level, units


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("resolution", nargs="?", type=float, default=0.05)
    ap.add_argument("output", nargs="?", default="docs/img/grid_005.png")
    ap.add_argument("--demo-control", action="store_true")
    ap.add_argument("--dpi", type=int, default=130)
    a = ap.parse_args(argv)
    geo = build_geography(GeographyConfig(resolution_deg=a.resolution,
                                          name=f"res_{a.resolution:g}"))
    fig = Figure(figsize=(11, 7.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    title = (f"Syria–Iraq landscape grid at {a.resolution:g}° "
             f"({geo.shape[0]} × {geo.shape[1]} cells)")
    if a.demo_control:
        c, level, units = demo_control(geo)
        plot_map(ax, geo, control=c, factions=FACTIONS, level=level, units=units,
                 title=title + " — made-up control overlay")
    else:
        plot_map(ax, geo, title=title)
    fig.tight_layout()
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=a.dpi)
    print(out)
    return out


if __name__ == "__main__":
    main()
