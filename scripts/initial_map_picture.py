"""Draw the step-0 control map (1 July 2017) with zooms, for docs/img/.

    .venv/bin/python scripts/initial_map_picture.py [res_005] [docs/img/initial_control_005.png]

Uses the model's own initial state (ConflictModel.owner after initialisation) so the picture is
what a run starts from.  Open desert (ungoverned at step 0) is drawn pale grey."""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, to_rgba  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from sim import initial_map as im  # noqa: E402
from sim.cli import compose  # noqa: E402
from sim.plotting import FACTION_COLOURS  # noqa: E402
from sim.runner import build_model  # noqa: E402

res = sys.argv[1] if len(sys.argv) > 1 else "res_005"
out = sys.argv[2] if len(sys.argv) > 2 else f"docs/img/initial_control_{res.split('_')[1]}.png"
m = build_model(compose([f"geography={res}", "output.plots=false"]))
g = m.geo
names = m.faction_names
cols = ["#FFFFFF00", "#E6E6E6"] + [FACTION_COLOURS[f] for f in names]
cmap = ListedColormap([to_rgba(c) for c in cols])
img = np.where(m.owner == -2, 0, np.where(m.owner == -1, 1, m.owner + 2))
ext = [g.grid.lon_min, g.grid.lon_max, g.grid.lat_min, g.grid.lat_max]
area = im.area_km2(g.grid)
isis_km2 = float(area[m.owner == m.fidx["ISIS"]].sum())
desert_km2 = float(area[m.open_desert & (m.owner == -1)].sum())


def draw(ax, box=None, title=""):
    ax.imshow(img, cmap=cmap, vmin=0, vmax=len(cols) - 1, extent=ext, interpolation="nearest")
    ax.contour(g.grid.lons, g.grid.lats, (g.country == g.country_names.index("SYR")).astype(float),
               levels=[0.5], colors="k", linewidths=0.6)
    ax.contour(g.grid.lons, g.grid.lats, g.theatre.astype(float), levels=[0.5], colors="k",
               linewidths=0.9)
    for name, line in g.river_lines.items():
        if name in ("Euphrates", "Tigris", "Khabur"):
            for seg in line:
                ax.plot(seg[:, 0], seg[:, 1], color="#3b7dd8", lw=0.6)
    P = [p for p in im.read_places() if box is None or (box[0] <= p.lon <= box[1] and box[2] <= p.lat <= box[3])]
    if box is not None:
        for p in P:
            ax.plot(p.lon, p.lat, "x" if p.open_desert else ".", ms=2.5, color="k")
        ax.set_xlim(box[0], box[1])
        ax.set_ylim(box[2], box[3])
    ax.set_title(title, fontsize=9)
    ax.set_aspect(1 / np.cos(np.deg2rad(34)))


fig = plt.figure(figsize=(15, 12))
ax = fig.add_axes([0.05, 0.42, 0.62, 0.54])
draw(ax, None, f"Step 0 (1 July 2017), {res}: ISIS holds {isis_km2:,.0f} km2 "
               f"(IHS 26 Jun 2017: 36,200); open desert ungoverned {desert_km2:,.0f} km2")
handles = [Patch(color=FACTION_COLOURS[f], label=f) for f in names]
handles.append(Patch(color="#E6E6E6", label="ungoverned (open desert roamed by ISIS)"))
ax.legend(handles=handles, loc="lower left", fontsize=7)
zooms = [((36.05, 36.75, 33.3, 33.8), "Damascus: Eastern Ghouta, south Damascus, Yarmouk camp"),
         ((39.6, 41.4, 34.3, 35.6), "Deir ez-Zor enclave and airbase, Euphrates valley"),
         ((35.6, 37.4, 32.3, 33.5), "Daraa-Quneitra, Yarmouk Basin, Suwayda desert"),
         ((36.0, 38.5, 34.6, 36.8), "Homs-Hama, Idlib, Aleppo, Afrin"),
         ((41.8, 44.6, 34.8, 36.8), "Tal Afar, Mosul, Hawija"),
         ((40.2, 41.6, 36.3, 37.2), "Hasakah and Qamishli")]
pos = [[0.70, 0.70, 0.28, 0.27], [0.70, 0.40, 0.28, 0.27], [0.70, 0.05, 0.28, 0.32],
       [0.03, 0.03, 0.19, 0.34], [0.265, 0.03, 0.19, 0.34], [0.50, 0.05, 0.17, 0.30]]
for (box, t), p in zip(zooms, pos):
    draw(fig.add_axes(p), box, t)
fig.savefig(out, dpi=110)
print(out, f"ISIS {isis_km2:.0f} km2, open desert {desert_km2:.0f} km2")
