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
    _png(tmp_path / "share.png", size=(480, 264))
    plot_conflict_dyads(results, tmp_path / "dyads.png", dpi=60)
    _png(tmp_path / "dyads.png", size=(480, 384))
    plot_displacement(results, tmp_path / "disp.png", dpi=60)
    _png(tmp_path / "disp.png", size=(480, 360))


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


# ---------------------------------------------------------------------------------------- paper
def _with_run(results, **over):
    import copy

    r = copy.copy(results)
    r.summary = {"scenario": "us_withdrawal", "seed": 7, "replicate": 3}
    r.config = {"scenario": {"name": "us_withdrawal", "events": {
        "us_withdrawal": {"name": "US ground forces withdraw", "date": "2017-07-15"}},
        "air_support": {"us_coalition": {"end": "2017-07-22"}}}}
    for k, v in over.items():
        setattr(r, k, v)
    return r


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_titles_and_footers_name_scenario_seed_and_overrides(results, tmp_path):
    from sim.plotting import run_caption

    r = _with_run(results)
    label, footer = run_caption(r, ["scenario=us_withdrawal", "air.x=0", "hydra.job.chdir=x"])
    assert label == "us_withdrawal · seed 7 · replicate 3"
    assert "overrides: scenario=us_withdrawal, air.x=0" in footer and "hydra" not in footer
    (tmp_path / "status.json").write_text('{"overrides": ["replicate=3", "seed=7"]}')
    for fn, name in ((plot_territory_share, "t.png"), (plot_conflict_dyads, "d.png"),
                     (plot_displacement, "p.png")):
        fig = fn(r, tmp_path / name, dpi=40, overrides=["seed=7"])
        assert "us_withdrawal · seed 7 · replicate 3" in fig._suptitle.get_text()
        assert "overrides: seed=7" in _texts(fig)
    fig = plot_control_maps(r, ["2017-07-01"], tmp_path / "m.png", dpi=40)
    assert "us_withdrawal" in fig._suptitle.get_text()
    # save_run_plots takes the overrides from the run's status.json
    save_run_plots(r, tmp_path, ["2017-07-01"], gif=False, dpi=30)


def test_policy_events_marked(results, tmp_path):
    from sim.plotting import policy_events

    r = _with_run(results)
    ev = policy_events(r.config)
    assert [str(d) for d, _ in ev] == ["2017-07-15", "2017-07-22"]
    assert ev[1][1] == "us coalition air support ends"
    fig = plot_territory_share(r, tmp_path / "t.png", dpi=40)
    assert "us withdrawal" in _texts(fig)
    vlines = [ln for ax in fig.axes for ln in ax.lines if len(set(ln.get_xdata())) == 1
              and ln.get_linestyle() not in ("-", "None")]
    assert len(vlines) >= 2


def test_event_labels_stack_where_they_would_overlap():
    from sim.plotting import label_rows

    # labels 50 wide at 0, 20, 40 (overlapping) then 120 (clear of the first): rows 0, 1, 2, 0
    assert label_rows([0, 20, 40, 120], [50, 50, 50, 50]) == [0, 1, 2, 0]
    # a row frees up as soon as its last label has ended
    assert label_rows([0, 60, 70], [50, 50, 50]) == [0, 0, 1]
    assert label_rows([], []) == []


def test_dyads_smoothed_top_and_other(results, tmp_path):
    fig = plot_conflict_dyads(results, tmp_path / "d.png", top=3, window=4, dpi=40)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 4 and labels[-1].startswith("other 5 dyads")
    assert "4-week mean" in ax.get_ylabel()
    # the first top dyad is ISIS|SDF (5 + step % 3): its 4-week rolling mean
    raw = 5 + np.arange(T + 1) % 3
    expect = pd.Series(raw, dtype=float).rolling(4, min_periods=1).mean().to_numpy()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expect)
    assert labels[0].startswith("ISIS – SDF")


def test_territory_split_axis_when_one_faction_dominates(geo, tmp_path):
    dates = [np.datetime64("2017-07-01") + np.timedelta64(7 * t, "D") for t in range(T + 1)]
    rows = []
    for f, v in (("IRAQI_GOV", 0.54), ("ISIS", 0.12), ("SDF", 0.08), ("KRG", 0.1),
                 ("SYRIAN_GOV", 0.11), ("UNGOVERNED", 0.05)):
        rows += [(pd.Timestamp(d), t, "share_territory_area", f, v) for t, d in enumerate(dates)]
    res = _results(geo, pd.DataFrame(rows, columns=["date", "step", "metric", "faction", "value"]))
    fig = plot_territory_share(res, tmp_path / "split.png", dpi=40)
    top, bottom = fig.axes[:2]
    assert top.get_ylim()[0] > 12 and top.get_ylim()[1] >= 54  # the big one on its own scale
    assert bottom.get_ylim() == pytest.approx((0, 12 * 1.08))  # the rest not squeezed
    _png(tmp_path / "split.png")


def test_palette_distinct_on_terrain_and_for_colour_blind():
    """Every pair of faction colours differs under normal vision and simulated deuteranopia
    and protanopia (Machado et al. 2009, severity 1) by a CIE76 distance of at least 12 after
    compositing at the map's 65% over the desert beige."""
    from matplotlib.colors import to_rgb

    from sim.plotting import _TERRAIN_RGB

    machado = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                        [-0.011820, 0.042940, 0.968881]])

    def lab(rgb):
        rgb = np.asarray(rgb, float)
        lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        xyz = lin @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                              [0.0193, 0.1192, 0.9505]]).T / [0.9505, 1.0, 1.089]
        f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
        return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])

    ground = np.array(to_rgb(_TERRAIN_RGB["desert"]))
    protan = np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                       [-0.003882, -0.048116, 1.051998]])
    for sim_cvd in (None, machado, protan):
        cols = {}
        for f, c in FACTION_COLOURS.items():
            rgb = 0.65 * np.array(to_rgb(c)) + 0.35 * ground
            if sim_cvd is not None:
                lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
                lin = np.clip(sim_cvd @ lin, 0, 1)
                rgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
            cols[f] = lab(rgb)
        names = sorted(cols)
        worst = min((np.linalg.norm(cols[a] - cols[b]), a, b)
                    for i, a in enumerate(names) for b in names[i + 1:])
        assert worst[0] >= 12, worst
        # and every colour stands out from the desert itself
        assert min(np.linalg.norm(cols[f] - lab(ground)) for f in names) >= 10


def test_faction_configs_use_the_palette():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1] / "configs" / "faction"
    for p in root.glob("*.yaml"):
        d = yaml.safe_load(p.read_text())
        assert d["colour"].upper() == FACTION_COLOURS[d["name"]].upper(), p.name


def test_probability_grid_has_colour_bar_and_most_likely_row(tmp_path):
    from sim.plotting import plot_probability_grid

    rng = np.random.default_rng(0)
    prob = rng.random((2, 3, 12, 16)).astype(np.float32)
    prob /= prob.sum(axis=1, keepdims=True) * 1.1
    prob[:, 2] = 0.0  # never holds anything: no row
    outside = np.zeros((12, 16), bool)
    outside[:, 0] = True
    fig = plot_probability_grid(prob, ["ISIS", "SDF", "KRG"], ["2018-01-01", "2019-01-01"],
                                outside, (40, 41.6, 34.8, 36), tmp_path / "p.png", n_runs=8,
                                title="Probability of control — baseline", footer="baseline · 8")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "ISIS" in labels and "SDF" in labels and "KRG" not in labels
    assert any("most likely" in lab for lab in labels)
    cbar = [ax for ax in fig.axes if "probability of control" in ax.get_ylabel()]
    assert len(cbar) == 1 and "8 runs" in cbar[0].get_ylabel()
    assert len(fig.axes) == 2 * 3 + 1  # (2 factions + most likely) x 2 dates + colour bar
    _png(tmp_path / "p.png")


def test_metric_words_units():
    from sim.plotting import metric_words

    assert metric_words("n_displaced") == ("Internally displaced people", "million people", 1e-6)
    words, unit, _ = metric_words("share_territory_area", "SDF")
    assert words.endswith(": SDF") and unit == "% of area"
    words, unit, _ = metric_words("new_widgets")
    assert "_" not in words and unit == "per week"
