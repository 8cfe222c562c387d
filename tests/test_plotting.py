"""Plots of the landscape and of a (fake) run: every function writes a sane PNG/GIF."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

from sim.config import FACTIONS, GeographyConfig
from sim.geography import build_geography
from sim.plotting import (
    FACTION_COLOURS,
    OUTSIDE_COLOUR,
    UNGOVERNED_COLOUR,
    control_rgba,
    make_control_gif,
    nearest_step,
    plot_conflict_dyads,
    plot_control_maps,
    plot_displacement,
    plot_map,
    plot_territory_share,
    save_run_plots,
)
from sim.results import OUTSIDE, UNGOVERNED, Results

T = 4  # steps after the initial state


@pytest.fixture(scope="module")
def geo():
    return build_geography(GeographyConfig(kind="synthetic", name="tiny", resolution_deg=0.1,
                                           lon_min=40, lat_max=36))


def _timeseries(dates) -> pd.DataFrame:
    rows = []

    def add(metric, faction, values):
        for step, (d, v) in enumerate(zip(dates, values)):
            rows.append((pd.Timestamp(d), step, metric, faction, float(v)))

    n = len(dates)
    isis = np.linspace(0.4, 0.05, n)
    add("share_territory_area", "ISIS", isis)
    add("share_territory_area", "SYRIAN_GOV", 0.3 + (0.4 - isis) / 2)
    add("share_territory_area", "SDF", 0.2 + (0.4 - isis) / 2)
    add("share_territory_area", "IRAQI_GOV", np.full(n, 0.1))
    add("share_territory_area", "UNGOVERNED", np.full(n, 0.02))
    add("new_battles", "ALL", np.full(n, 20))  # totals are not dyads: must be ignored
    for dyad, base in (("ISIS|SDF", 5), ("ISIS|SYRIAN_GOV", 4), ("IRAQI_GOV|ISIS", 3),
                       ("SDF|TURKEY_SNA", 1), ("SDF|SYRIAN_GOV", 0), ("KRG|PMF", 0),
                       ("PMF|SDF", 0), ("ISIS|PMF", 1)):
        add("new_battles", dyad, base + np.arange(n) % 3)
    add("new_battles_former_allies", "ALL", [0, 0, 1, 3, 2][:n])
    add("new_battles_vs_isis", "ALL", [12, 10, 8, 4, 1][:n])
    add("n_displaced", "ALL", np.linspace(6e6, 5e6, n))
    add("n_abroad", "ALL", np.linspace(5.5e6, 5.6e6, n))
    add("cum_returnees", "ALL", np.linspace(0, 4e5, n))
    add("new_displaced", "ALL", [0, 3e4, 5e4, 1e4, 2e4][:n])
    return pd.DataFrame(rows, columns=["date", "step", "metric", "faction", "value"])


def _results(geo, timeseries: pd.DataFrame | None = None) -> Results:
    nr, nc = geo.shape
    dates = [np.datetime64("2017-07-01") + np.timedelta64(7 * t, "D") for t in range(T + 1)]
    f = {n: i for i, n in enumerate(FACTIONS)}
    control = np.empty((T + 1, nr, nc), np.int8)
    level = np.ones((T + 1, nr, nc), np.int8)
    for t in range(T + 1):
        c = np.full((nr, nc), f["SYRIAN_GOV"], np.int8)
        c[:, nc // 2:] = f["IRAQI_GOV"]
        front = nc // 4 + 2 * t  # ISIS shrinks east by two columns a step
        c[nr // 4: 3 * nr // 4, front: 3 * nc // 4] = f["ISIS"]
        c[: nr // 4, nc // 4:] = f["SDF"]
        c[-3:, :4] = UNGOVERNED
        c[-1, -1] = OUTSIDE
        control[t] = c
        level[t, nr // 4: 3 * nr // 4, front: front + 2] = 3
    if timeseries is None:
        timeseries = _timeseries(dates)
    return Results(
        factions=list(FACTIONS), colours=dict(FACTION_COLOURS), dates=dates, timeseries=timeseries,
        control=control, control_level=level,
        damage=np.zeros((T + 1, nr, nc), np.float32), summary={}, config={}, geo=geo,
    )


@pytest.fixture(scope="module")
def results(geo):
    return _results(geo)


def _png(path, size=None):
    assert path.exists() and path.stat().st_size > 2000, path
    with Image.open(path) as im:
        assert im.format == "PNG"
        if size is not None:
            assert im.size == size
        arr = np.asarray(im.convert("L"))
        assert arr.std() > 5  # not a blank image
        return im.size


# ----------------------------------------------------------------------------------------
def test_palette_complete_distinct_and_isis_dark():
    assert set(FACTION_COLOURS) == set(FACTIONS)
    rgb = [to_rgb(FACTION_COLOURS[f]) for f in FACTIONS]
    assert len({tuple(np.round(c, 3)) for c in rgb}) == len(FACTIONS)
    lum = np.dot(to_rgb(FACTION_COLOURS["ISIS"]), [0.2126, 0.7152, 0.0722])
    assert lum < 0.2
    assert np.mean(to_rgb(UNGOVERNED_COLOUR)) > 0.75  # light grey
    from matplotlib.colors import to_rgba
    assert to_rgba(OUTSIDE_COLOUR)[3] == 0.0


def test_control_rgba_codes():
    cols = [FACTION_COLOURS[f] for f in FACTIONS]
    ctrl = np.array([[0, 1, -1, -2]], np.int8)
    img = control_rgba(ctrl, cols, alpha=0.5)
    assert img.shape == (1, 4, 4)
    assert np.allclose(img[0, 0, :3], to_rgb(cols[0])) and img[0, 0, 3] == pytest.approx(0.5)
    assert np.allclose(img[0, 1, :3], to_rgb(cols[1]))
    assert np.allclose(img[0, 2, :3], to_rgb(UNGOVERNED_COLOUR)) and img[0, 2, 3] > 0
    assert img[0, 3, 3] == 0.0  # outside: transparent


def test_plot_map_synthetic_with_overlay(geo, results, tmp_path):
    fig = Figure(figsize=(6, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    f = {n: i for i, n in enumerate(FACTIONS)}
    units = [(6, 12, f["ISIS"], 3000), (3, 20, f["SDF"], 8000), (15, 28, f["IRAQI_GOV"], 20000)]
    out = plot_map(ax, geo, control=results.control[1], factions=FACTIONS,
                   level=results.control_level[1], units=units, title="synthetic")
    assert out is ax
    ext = geo.grid.extent
    assert ax.get_xlim() == pytest.approx((ext[0], ext[1]))
    assert ax.get_ylim() == pytest.approx((ext[2], ext[3]))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"ISIS", "SYRIAN_GOV", "SDF", "IRAQI_GOV", "ungoverned", "contested"} <= set(labels)
    assert "KRG" not in labels  # only factions present
    texts = {t.get_text() for t in ax.texts}
    assert "Rivercity" in texts  # key place labelled
    p = tmp_path / "map.png"
    fig.savefig(p, dpi=80)
    _png(p, size=(480, 360))


def test_plot_map_without_overlay_and_bad_shape(geo):
    fig = Figure(figsize=(5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    plot_map(ax, geo, show_places=False, legend=True)
    assert ax.get_legend() is None  # nothing to explain
    assert not ax.texts
    with pytest.raises(ValueError, match="shape"):
        plot_map(fig.add_subplot(2, 1, 2), geo, control=np.zeros((3, 3), np.int8))


def test_nearest_step(results):
    assert nearest_step(results, "2017-07-01") == 0
    assert nearest_step(results, "2017-07-09") == 1  # 8 days after step 0, 1 day after step 1
    assert nearest_step(results, "2030-01-01") == T
    assert nearest_step(results, "1990-01-01") == 0


def test_result_plots_write_pngs(results, tmp_path):
    dates = ["2017-07-01", "2017-07-15", "2017-07-29"]
    fig = plot_control_maps(results, dates, tmp_path / "c.png", dpi=60)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    import matplotlib.pyplot as plt
    assert not plt.get_fignums()  # nothing left open in pyplot
    w, h = _png(tmp_path / "c.png")
    assert w > h  # three panels side by side
    plot_territory_share(results, tmp_path / "share.png", dpi=60)
    _png(tmp_path / "share.png", size=(450, 252))
    plot_conflict_dyads(results, tmp_path / "dyads.png", dpi=60)
    _png(tmp_path / "dyads.png", size=(450, 360))
    plot_displacement(results, tmp_path / "disp.png", dpi=60)
    _png(tmp_path / "disp.png", size=(450, 336))


def test_missing_metrics_do_not_crash(geo, tmp_path):
    empty = pd.DataFrame(columns=["date", "step", "metric", "faction", "value"])
    res = _results(geo, timeseries=empty)
    for fn, name in ((plot_territory_share, "a.png"), (plot_conflict_dyads, "b.png"),
                     (plot_displacement, "c.png")):
        fig = fn(res, tmp_path / name, dpi=50)
        assert isinstance(fig, Figure)
        assert (tmp_path / name).stat().st_size > 1000
    # only some displacement metrics and only the former-allies series
    ts = _timeseries(res.dates)
    part = ts[ts["metric"].isin(["n_displaced", "new_battles_former_allies"])]
    res2 = _results(geo, timeseries=part)
    plot_displacement(res2, tmp_path / "d.png", dpi=50)
    plot_conflict_dyads(res2, tmp_path / "e.png", dpi=50)
    assert (tmp_path / "d.png").exists() and (tmp_path / "e.png").exists()


@pytest.mark.parametrize("every, frames", [(1, T + 1), (3, 3)])  # steps 0, 3 and the last
def test_control_gif_frames(results, tmp_path, every, frames):
    p = tmp_path / f"control_{every}.gif"
    make_control_gif(results, p, every=every)
    assert p.stat().st_size > 1000
    with Image.open(p) as im:
        assert im.format == "GIF"
        assert im.n_frames == frames
        assert im.size[0] <= 600  # small figure


def test_save_run_plots(results, tmp_path):
    dates = ["2017-07-01", "2017-07-08", "2017-07-15", "2017-08-01"]  # 2 x 2 panels
    paths = save_run_plots(results, tmp_path / "plots", dates, gif=True, dpi=40)
    names = [p.name for p in paths]
    assert names == ["control_maps.png", "territory_share.png", "conflict_dyads.png",
                     "displacement.png", "control.gif"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
    w, h = Image.open(paths[0]).size
    assert 0.6 < h / w < 1.4  # 2 x 2 grid


def test_save_run_plots_without_gif(results, tmp_path, monkeypatch):
    import sim.plotting as plotting

    calls = []

    def fake(name):
        def f(*args, **kw):
            calls.append(name)
            path = next(a for a in args if hasattr(a, "suffix"))
            path.write_bytes(b"x")
        return f

    for name in ("plot_control_maps", "plot_territory_share", "plot_conflict_dyads",
                 "plot_displacement", "make_control_gif"):
        monkeypatch.setattr(plotting, name, fake(name))
    paths = plotting.save_run_plots(results, tmp_path / "nogif", ["2017-07-01"], gif=False)
    assert [p.name for p in paths] == ["control_maps.png", "territory_share.png",
                                       "conflict_dyads.png", "displacement.png"]
    assert "make_control_gif" not in calls and len(calls) == 4


def test_import_does_not_pull_hydra_or_model():
    code = ("import sys, sim.plotting, matplotlib; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('hydra', 'omegaconf', 'mesa')"
            " or m in ('sim.model', 'sim.runner', 'sim.cli')]; "
            "assert not bad, bad; print(matplotlib.get_backend())")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "agg"
