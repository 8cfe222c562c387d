"""Interactive browser app: a Mesa ``SolaraViz`` page for :class:`~sim.model.ConflictModel`.

Run it with ``sim app`` (Solara server on http://127.0.0.1:8765) or ``solara run sim.app``.

The page shows the control map (terrain, borders, rivers, cities; the controller of each cell,
contested cells hatched ``////``, ungoverned cells grey ``..``; mobile units as circles sized by
fighters) and three live charts from ``model.records``: territory share by faction,
displacement (internally displaced and abroad) and battles between former allies.  The sidebar
has Mesa's Reset / Play / Step controls, a scenario picker (``configs/scenario/*.yaml``) and
sliders for the key levers, each showing its value with its unit and a tooltip.  A change takes
effect **at once**: the run restarts from week 0 with the new value (the sidebar says so):

* coalition air support strength -> ``scenario.air_support.us_coalition.strength``
* KRG–Baghdad hostility          -> ``scenario.hostility.IRAQI_GOV.KRG`` (initial; events may change it)
* foreign-fighter exit rate      -> ``scenario.foreign_fighter_exit_rate``
* deconfliction on/off           -> off removes every line in ``scenario.deconfliction``

A slider left where it started keeps the picked scenario's own value; a moved one overrides it.
The values in force are printed under the map.

A second tab, **Ensemble**, runs a few replicates of the current settings to the horizon (in a
background thread) and shows the median territory share with its 10–90% band and the most
likely controller at the end.

The map's background (terrain, rivers, borders, place names) is rendered once per geography
and reused, so a step redraws only the control overlay, the units and the charts.

SolaraViz re-creates the model as ``type(model)(**params)``, so :class:`AppModel` is a thin
:class:`ConflictModel` subclass whose keyword arguments are the page's parameters.  The
geography defaults to ``res_010`` (fast); ``SIM_APP_GEOGRAPHY`` / ``SIM_APP_SCENARIO`` (set by
``sim app --geography/--scenario``) change the defaults.
"""

from __future__ import annotations

import copy
import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np
import solara
from matplotlib.figure import Figure
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

from .compose import compose, config_dir
from .geography import build_geography
from .model import ConflictModel
from .plotting import (
    UNGOVERNED_COLOUR,
    faction_colours,
    faction_label,
    geo_aspect,
    map_backdrop,
    plot_map,
)
from .runner import as_config

DEFAULT_GEOGRAPHY = "res_010"
TITLE = "Syria–Iraq 2017: who fills the vacuum?"
_COMPOSE_LOCK = threading.Lock()  # Hydra's GlobalHydra is process-global; sessions are threads

# ------------------------------------------------------------------------------- config


def scenario_names() -> list[str]:
    """Names of the scenarios in ``configs/scenario/*.yaml``, sorted."""
    return sorted(p.stem for p in (config_dir() / "scenario").glob("*.yaml"))


def default_scenario() -> str:
    names = scenario_names()
    want = os.environ.get("SIM_APP_SCENARIO") or "baseline_2017"
    return want if want in names else (names[0] if names else want)


def default_geography() -> str:
    return os.environ.get("SIM_APP_GEOGRAPHY") or DEFAULT_GEOGRAPHY


@lru_cache(maxsize=16)
def _composed(scenario_name: str, geography: str) -> dict:
    with _COMPOSE_LOCK:
        return compose([f"scenario={scenario_name}", f"geography={geography}"])


def _active_lines(scenario: dict) -> list[str]:
    """Deconfliction lines in force at the start (``until`` empty or after the start date)."""
    start = str(scenario.get("start_date", ""))
    return [n for n, d in (scenario.get("deconfliction") or {}).items()
            if not d.get("until") or str(d.get("until")) > start]


def scenario_levers(scenario_name: str, geography: str | None = None) -> dict[str, Any]:
    """The lever values a scenario file sets."""
    s = _composed(scenario_name, geography or default_geography())["scenario"]
    air = (s.get("air_support") or {}).get("us_coalition", {})
    host = s.get("hostility") or {}
    krg = host.get("IRAQI_GOV", {}).get("KRG", host.get("KRG", {}).get("IRAQI_GOV", 0.0))
    return {"air_support": float(air.get("strength", 0.0)), "krg_hostility": float(krg),
            "deconfliction": bool(_active_lines(s)),
            "ff_exit_rate": float(s.get("foreign_fighter_exit_rate", 0.0))}


def slider_start() -> dict[str, Any]:
    """Where the lever sliders start: the levers of the scenario the page opens with."""
    return scenario_levers(default_scenario())


def app_config(scenario_name: str, geography: str | None = None, *, air_support: float | None = None,
               krg_hostility: float | None = None, deconfliction: bool = True,
               ff_exit_rate: float | None = None, replicate: int = 0) -> dict:
    """The resolved config dict for one app run: ``compose`` (scenario, geography) plus the
    levers.  ``None`` keeps the scenario's value; ``deconfliction=False`` removes all lines."""
    d = copy.deepcopy(_composed(scenario_name, geography or default_geography()))
    s = d["scenario"]
    if air_support is not None and "us_coalition" in (s.get("air_support") or {}):
        s["air_support"]["us_coalition"]["strength"] = float(air_support)
    if krg_hostility is not None:
        s.setdefault("hostility", {}).setdefault("IRAQI_GOV", {})["KRG"] = float(krg_hostility)
        s["hostility"].get("KRG", {}).pop("IRAQI_GOV", None)  # one entry per pair
    if not deconfliction:
        s["deconfliction"] = {}
    if ff_exit_rate is not None:
        s["foreign_fighter_exit_rate"] = float(ff_exit_rate)
    d["replicate"] = int(replicate)
    return d


# ------------------------------------------------------------------------------- model


def _moved(value: float | None, start: float) -> float | None:
    """A slider's value if the user moved it from where it started, else None."""
    return None if value is None or abs(float(value) - float(start)) < 1e-9 else float(value)


class AppModel(ConflictModel):
    """:class:`ConflictModel` built from the app's parameters (SolaraViz calls
    ``AppModel(**params)`` on Reset).

    A lever slider left where it started keeps the chosen scenario's own value (so picking
    ``porous_borders`` gives its foreign-fighter exit rate); a moved slider overrides it.
    ``deconfliction=False`` removes the scenario's deconfliction lines.  The lever values in
    force are in ``app_levers`` (shown under the map).
    """

    def __init__(self, scenario_name: str | None = None, air_support: float | None = None,
                 krg_hostility: float | None = None, deconfliction: bool = True,
                 ff_exit_rate: float | None = None, replicate: int = 0,
                 geography: str | None = None):
        start = slider_start()
        cfg = as_config(app_config(
            scenario_name or default_scenario(), geography or default_geography(),
            air_support=_moved(air_support, start["air_support"]),
            krg_hostility=_moved(krg_hostility, start["krg_hostility"]),
            ff_exit_rate=_moved(ff_exit_rate, start["ff_exit_rate"]),
            deconfliction=deconfliction, replicate=replicate))
        geo = build_geography(cfg.geography, n_factions=len(cfg.factions), n_steps=cfg.scenario.weeks)
        super().__init__(cfg, geo)
        s = cfg.scenario
        self.app_levers = {
            "air": s.air_support["us_coalition"].strength if "us_coalition" in s.air_support else 0.0,
            "krg": float(self.hostility0[self.fidx["IRAQI_GOV"], self.fidx["KRG"]])
            if {"IRAQI_GOV", "KRG"} <= set(self.fidx) else 0.0,
            "deconf": bool(_active_lines({"start_date": s.start_date, "deconfliction": {
                k: {"until": v.until} for k, v in s.deconfliction.items()}})),
            "ff": s.foreign_fighter_exit_rate,
        }
        self.running = self.steps_done < s.weeks

    def step(self) -> None:
        if self.steps_done >= self.cfg.scenario.weeks:  # the horizon: Play stops here
            self.running = False
            return
        super().step()
        self.running = self.steps_done < self.cfg.scenario.weeks


LEVER_HELP = {
    "scenario_name": "Scenario file in configs/scenario/: its question and its dated events.",
    "air_support": "Strength of US-led coalition air support for its partners (SDF, Iraqi "
                   "forces); 1 = the 2017 level, 0 = none.  scenario.air_support.us_coalition.strength",
    "krg_hostility": "Initial hostility between Baghdad and the KRG, 0 (allies) to 1 (at war); "
                     "the scenario's dated events may change it later.  "
                     "scenario.hostility.IRAQI_GOV.KRG",
    "ff_exit_rate": "Share of ISIS's foreign fighters who leave the theatre each week.  "
                    "scenario.foreign_fighter_exit_rate",
    "deconfliction": "Keep the scenario's deconfliction lines (e.g. the Euphrates line between "
                     "the SDF and the Syrian government); off removes them all.",
    "replicate": "Independent random stream of the same scenario (0-9).",
}


def model_params() -> dict[str, Any]:
    """SolaraViz ``model_params``: the scenario picker, the lever sliders and fixed values.
    Besides Mesa's keys each input has ``unit``, ``fmt`` (how the value is shown) and ``help``
    (the tooltip); :func:`LeverInputs` draws them and applies a change at once."""
    lv = slider_start()
    return {
        "scenario_name": {"type": "Select", "value": default_scenario(), "values": scenario_names(),
                          "label": "Scenario", "help": LEVER_HELP["scenario_name"]},
        "air_support": {"type": "SliderFloat", "value": lv["air_support"], "min": 0.0, "max": 4.0,
                        "step": 0.1, "label": "Coalition air support", "unit": "× 2017 level",
                        "fmt": "{:.1f}", "help": LEVER_HELP["air_support"]},
        "krg_hostility": {"type": "SliderFloat", "value": lv["krg_hostility"], "min": 0.0,
                          "max": 1.0, "step": 0.05, "label": "KRG–Baghdad hostility",
                          "unit": "(0 allied – 1 at war)", "fmt": "{:.2f}",
                          "help": LEVER_HELP["krg_hostility"]},
        "ff_exit_rate": {"type": "SliderFloat", "value": lv["ff_exit_rate"], "min": 0.0,
                         "max": 0.1, "step": 0.005, "label": "Foreign-fighter exit",
                         "unit": "% of them / week", "fmt": "{:.1%}",
                         "help": LEVER_HELP["ff_exit_rate"]},
        "deconfliction": {"type": "Checkbox", "value": True, "label": "Deconfliction lines",
                          "help": LEVER_HELP["deconfliction"]},
        "replicate": {"type": "SliderInt", "value": 0, "min": 0, "max": 9, "step": 1,
                      "label": "Replicate", "unit": "", "fmt": "{:d}",
                      "help": LEVER_HELP["replicate"]},
        "geography": default_geography(),
    }


def lever_text(options: dict[str, Any], value: Any) -> str:
    """The label of an input with its value and unit, e.g. ``Coalition air support: 1.0 × 2017
    level`` (the percent format already carries its unit)."""
    label = options.get("label", "")
    if options.get("type") in ("Select", "Checkbox"):
        return label
    fmt = options.get("fmt", "{}")
    try:
        shown = fmt.format(value)
    except (ValueError, TypeError):
        shown = str(value)
    unit = options.get("unit", "")
    if "%" in fmt:
        unit = unit.replace("% of them", "of them")
    return f"{label}: {shown} {unit}".rstrip()


APPLY_NOTE = "A change restarts the run at week 0 with the new value, at once."


@solara.component
def LeverInputs(model, user_params: dict, *, model_parameters=None):
    """Replaces Mesa's ``ModelCreator`` on this page: the inputs show their value and unit,
    have a tooltip, and a change rebuilds the model at once (no Reset needed).  Mesa's Reset
    builds from the same parameters."""
    import mesa.visualization.solara_viz as sv

    model_parameters = solara.use_reactive(model_parameters if model_parameters is not None
                                           else {})
    adjust, fixed = sv.split_model_params(user_params)
    solara.use_effect(lambda: model_parameters.set(
        {**fixed, **{k: v.get("value") for k, v in adjust.items()}}), [])
    current = {**fixed, **{k: v.get("value") for k, v in adjust.items()},
               **(model_parameters.value or {})}

    def apply(name, value):
        params = {**current, name: value}
        model_parameters.value = params
        kwargs = {k: v for k, v in params.items() if k in _init_names()}
        model.value = type(model.value)(**kwargs)

    solara.Text(APPLY_NOTE, style={"font-size": "0.8em", "color": "#555"})
    for name, opt in adjust.items():
        value = current.get(name, opt.get("value"))
        with (solara.Tooltip(opt.get("help", "")),
              solara.Column(gap="0px", classes=[f"sim-lever-{name}"])):
                t = opt.get("type")
                text = lever_text(opt, value)
                if t in ("SliderFloat", "SliderInt"):  # the value line above a full-width slider
                    solara.Text(text, style={"font-size": "0.9em"})
                    slider = solara.SliderFloat if t == "SliderFloat" else solara.SliderInt
                    slider("", value=value, min=opt["min"], max=opt["max"], step=opt["step"],
                           thumb_label=False, on_value=lambda v, n=name: apply(n, v))
                elif t == "Select":
                    solara.Select(text, value=value, values=opt["values"],
                                  on_value=lambda v, n=name: apply(n, v))
                elif t == "Checkbox":
                    solara.Checkbox(label=text, value=value,
                                    on_value=lambda v, n=name: apply(n, v))


@lru_cache(maxsize=1)
def _init_names() -> frozenset:
    import inspect

    return frozenset(inspect.signature(AppModel.__init__).parameters) - {"self"}


def _install_inputs() -> None:
    """Mesa's SolaraViz looks ``ModelCreator`` up in its module when it renders: the app's
    process uses :func:`LeverInputs` instead (as it does for the grid layout)."""
    import mesa.visualization.solara_viz as sv

    if getattr(sv.ModelCreator, "_sim_app", False):
        return
    LeverInputs._sim_app = True
    sv.ModelCreator = LeverInputs


# ------------------------------------------------------------------------------- views


def _series(model: ConflictModel, metric: str) -> dict[str, np.ndarray]:
    """``{faction: values by step}`` of one recorded metric (steps 0..steps_done)."""
    n = model.steps_done + 1
    out: dict[str, np.ndarray] = {}
    for step, m, f, v in model.records:
        if m == metric:
            out.setdefault(f, np.full(n, np.nan))[step] = v
    return out


def _time_axis(ax, model: ConflictModel) -> np.ndarray:
    """Dates of the recorded steps; the x axis spans the whole horizon, today marked."""
    import matplotlib.dates as mdates

    dates = np.asarray(model.dates(), dtype="datetime64[D]")
    end = dates[0] + np.timedelta64(model.step_days * model.cfg.scenario.weeks, "D")
    ax.set_xlim(dates[0], max(end, dates[-1]))
    ax.axvline(dates[-1], color="#888888", lw=0.8, ls=":")
    loc = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    return dates


def _figure(w: float, h: float, left: float = 0.09, right: float = 0.98, bottom: float = 0.13,
            top: float = 0.89) -> Figure:
    # fixed margins: a constrained layout would lay the text out twice on every step
    fig = Figure(figsize=(w, h), dpi=100)
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top)
    return fig


def _show(fig: Figure, model: ConflictModel) -> None:
    solara.FigureMatplotlib(fig, format="png", dpi=100,
                            dependencies=[id(model), model.steps_done])


def map_figure(model: ConflictModel) -> Figure:
    """The control map of the model's current state (also used by the tests)."""
    fig = _figure(7.4, 6.0, left=0.07, right=0.99, bottom=0.085, top=0.95)
    ax = fig.add_subplot()
    # the landscape is pre-rendered once for this axes size (plotting.map_backdrop)
    ext = model.geo.grid.extent
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set_aspect(geo_aspect(model.geo))
    ax.apply_aspect()
    box = ax.get_window_extent()
    backdrop = map_backdrop(model.geo, round(box.width), round(box.height), max_labels=40,
                            label_size=6.5)
    u = model.units
    alive = u.alive & (u.fighters > 0)
    units = np.column_stack([u.row[alive], u.col[alive], u.faction[alive], u.fighters[alive]])
    colours = {f: model.cfg.factions[f].colour for f in model.faction_names}
    weeks = model.cfg.scenario.weeks
    title = (f"{model.date:%d %b %Y} — week {model.steps_done}/{weeks} — "
             f"{model.cfg.scenario.name}")
    plot_map(ax, model.geo, control=model.owner, level=model.level, units=units,
             factions=model.faction_names, colours=colours, title=title, max_labels=40,
             label_size=6.5, backdrop=backdrop)
    lv = getattr(model, "app_levers", None)
    note = "circles: mobile units (area ∝ fighters)"
    if lv:
        note += (f"   ·   air support {lv['air']:.1f}   ·   KRG–Baghdad {lv['krg']:.2f}   ·   "
                 f"deconfliction {'on' if lv['deconf'] else 'off'}   ·   FF exit {lv['ff']:.3f}/wk")
    ax.set_xlabel(note, fontsize=7, color="#444444")
    ax.set_ylabel("")
    return fig


def territory_figure(model: ConflictModel, ax=None) -> Figure:
    if ax is None:
        fig = _figure(5.6, 3.4, left=0.1, right=0.76, bottom=0.1, top=0.91)
        ax = fig.add_subplot()
    fig = ax.figure
    dates = _time_axis(ax, model)
    s = _series(model, "share_territory_area")
    cols = dict(zip(model.faction_names, faction_colours(
        model.faction_names, {f: model.cfg.factions[f].colour for f in model.faction_names})))
    for f in model.faction_names + ["UNGOVERNED"]:
        if f not in s:
            continue
        kw = {"color": cols.get(f, UNGOVERNED_COLOUR), "lw": 2.2 if f == "ISIS" else 1.4}
        if f == "UNGOVERNED":
            kw.update(color="#8C8C8C", ls="--")
        ax.plot(dates, 100 * s[f], label=f.replace("_", " ").lower()
                if f == "UNGOVERNED" else f, marker="o" if len(dates) == 1 else None, ms=3, **kw)
    ax.set_ylabel("% of theatre area", fontsize=8)
    ax.set_ylim(0, None)
    ax.set_title("Territory share by faction", fontsize=9)
    ax.legend(fontsize=6.5, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              handlelength=1.5, labelspacing=0.25)
    return fig


def displacement_figure(model: ConflictModel, ax=None) -> Figure:
    if ax is None:
        fig = _figure(5.6, 3.0, left=0.1, right=0.97, bottom=0.12, top=0.9)
        ax = fig.add_subplot()
    fig = ax.figure
    dates = _time_axis(ax, model)
    for metric, label, colour in (("n_displaced", "internally displaced", "#0072B2"),
                                  ("n_abroad", "abroad (refugees)", "#E69F00")):
        v = _series(model, metric).get("ALL")
        if v is not None:
            ax.plot(dates, v / 1e6, color=colour, lw=1.8, label=label,
                    marker="o" if len(dates) == 1 else None, ms=3)
    ax.set_ylabel("million people", fontsize=8)
    ax.set_ylim(0, None)
    ax.set_title("Displacement", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return fig


def fighting_figure(model: ConflictModel, ax=None) -> Figure:
    if ax is None:
        fig = _figure(12.0, 2.5, left=0.05, right=0.95, bottom=0.14, top=0.88)
        ax = fig.add_subplot()
    fig = ax.figure
    dates = _time_axis(ax, model)
    allies = _series(model, "new_battles_former_allies").get("ALL")
    vs_isis = _series(model, "new_battles_vs_isis").get("ALL")
    one = len(dates) == 1
    handles = []
    if vs_isis is not None:  # context, on its own scale (right): usually far more battles
        ax2 = ax.twinx()
        handles += ax2.plot(dates, vs_isis, color="#777777", lw=1.0, alpha=0.8,
                            marker="o" if one else None, ms=3, label="against ISIS (right axis)")
        ax2.set_ylim(0, max(1.0, float(np.nanmax(vs_isis)) * 1.1))
        ax2.set_ylabel("vs ISIS / week", fontsize=8, color="#666666")
        ax2.tick_params(labelsize=7, colors="#666666")
    total = 0.0
    if allies is not None:
        handles += ax.plot(dates, allies, color="#CC3311", lw=2.2, label="between former allies",
                           marker="o" if one else None, ms=3, zorder=5)
        total = float(np.nansum(allies))
        ax.set_ylim(0, max(1.0, float(np.nanmax(allies)) * 1.15))
    ax.set_title(f"Fighting between former allies (so far: {total:,.0f} battles)", fontsize=9)
    ax.set_ylabel("new battles / week", fontsize=8, color="#CC3311")
    if handles:
        ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper left")
    return fig


def charts_figure(model: ConflictModel) -> Figure:
    """Territory, displacement and fighting in one figure: one image per step instead of
    three (the charts cost as much to render as the map)."""
    fig = Figure(figsize=(5.6, 7.6), dpi=100)
    gs = fig.add_gridspec(3, 1, height_ratios=(1.25, 1, 1), hspace=0.42, left=0.11, right=0.76,
                          top=0.96, bottom=0.05)
    territory_figure(model, fig.add_subplot(gs[0]))
    displacement_figure(model, fig.add_subplot(gs[1]))
    fighting_figure(model, fig.add_subplot(gs[2]))
    return fig


@solara.component
def ControlMap(model):
    update_counter.get()
    _show(map_figure(model), model)


@solara.component
def TerritoryPlot(model):
    update_counter.get()
    _show(territory_figure(model), model)


@solara.component
def DisplacementPlot(model):
    update_counter.get()
    _show(displacement_figure(model), model)


@solara.component
def FightingPlot(model):
    update_counter.get()
    _show(fighting_figure(model), model)


# ------------------------------------------------------------------------------- ensemble

ENSEMBLE_SIZES = (3, 5, 8)


def model_settings(model: ConflictModel) -> dict[str, Any]:
    """The app parameters a model was built with (scenario, levers as in force, geography)."""
    lv = getattr(model, "app_levers", None) or {}
    return {"scenario_name": model.cfg.scenario.name, "air_support": lv.get("air"),
            "krg_hostility": lv.get("krg"), "ff_exit_rate": lv.get("ff"),
            "deconfliction": lv.get("deconf", True), "geography": model.cfg.geography.name}


def run_ensemble(settings: dict[str, Any], n: int, progress=None) -> dict[str, Any]:
    """Run replicates ``0..n-1`` of ``settings`` to the horizon; return the median and 10–90%
    band of each faction's territory share and the final most likely controller."""
    from .runner import run_scenario

    shares, finals, dates, factions, geo, colours = [], [], None, None, None, None
    for r in range(n):
        cfg = app_config(settings["scenario_name"], settings.get("geography"),
                         air_support=settings.get("air_support"),
                         krg_hostility=settings.get("krg_hostility"),
                         ff_exit_rate=settings.get("ff_exit_rate"),
                         deconfliction=bool(settings.get("deconfliction", True)), replicate=r)
        res = run_scenario(cfg)
        ts = res.timeseries
        w = ts[ts.metric == "share_territory_area"].pivot_table(
            index="step", columns="faction", values="value")
        shares.append(w)
        finals.append(res.control[-1])
        dates = np.asarray(res.dates, dtype="datetime64[D]")
        factions, geo, colours = res.factions, res.geo, res.colours
        if progress is not None:
            progress(r + 1, n)
    cols = sorted(set().union(*(w.columns for w in shares)))
    cube = np.stack([w.reindex(columns=cols).to_numpy() for w in shares])  # runs, steps, f
    q = np.nanquantile(cube, [0.1, 0.5, 0.9], axis=0)
    fin = np.stack(finals)
    counts = np.stack([(fin == i).sum(axis=0) for i in range(len(factions))])
    prob = counts / n
    best = np.where(fin[0] == -2, -2, np.where((fin == -1).sum(axis=0) > counts.max(axis=0), -1,
                                               counts.argmax(axis=0)))
    return {"n": n, "dates": dates, "columns": cols, "q10": q[0], "q50": q[1], "q90": q[2],
            "best": best.astype(np.int8), "pbest": prob.max(axis=0), "factions": factions,
            "geo": geo, "colours": colours, "settings": dict(settings)}


def ensemble_figure(ens: dict[str, Any]) -> Figure:
    """Median territory share with 10–90% bands, and the most likely final controller."""
    fig = Figure(figsize=(12.0, 4.6), dpi=100)
    ax = fig.add_axes((0.06, 0.12, 0.38, 0.74))
    cols = dict(zip(ens["factions"], faction_colours(ens["factions"], ens["colours"])))
    for k, f in enumerate(ens["columns"]):
        if np.nanmax(ens["q90"][:, k]) < 0.005:
            continue
        c = cols.get(f, "#8C8C8C")
        ax.fill_between(ens["dates"], 100 * ens["q10"][:, k], 100 * ens["q90"][:, k], color=c,
                        alpha=0.25, lw=0)
        ax.plot(ens["dates"], 100 * ens["q50"][:, k], color=c, lw=1.6,
                ls="--" if f == "UNGOVERNED" else "-", label=faction_label(f))
    ax.set_yscale("symlog", linthresh=2.0)
    ax.set_ylabel("% of theatre area (log above 2%)", fontsize=8)
    ax.set_ylim(0, 100)
    from matplotlib.ticker import FixedLocator, FuncFormatter

    ax.yaxis.set_major_locator(FixedLocator([0, 1, 2, 5, 10, 20, 50, 100]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3, lw=0.5)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    s = ens["settings"]
    ax.set_title(f"Territory share: median and 10–90% band of {ens['n']} replicates",
                 fontsize=9)
    ax2 = fig.add_axes((0.56, 0.1, 0.42, 0.8))
    geo = ens["geo"]
    plot_map(ax2, geo, control=ens["best"], factions=ens["factions"], colours=ens["colours"],
             title=f"Most likely controller at {ens['dates'][-1]} (paler: < 60% of runs agree)",
             max_labels=25, label_size=6.0, show_places=True)
    weak = (ens["pbest"] < 0.6) & (ens["best"] >= 0)
    if weak.any():
        img = np.zeros((*weak.shape, 4), np.float32)
        img[weak] = (1.0, 1.0, 1.0, 0.45)
        ax2.imshow(img, origin="upper", extent=geo.grid.extent, aspect=geo_aspect(geo),
                   interpolation="nearest", zorder=1.2)
    fig.text(0.01, 0.01, f"{s['scenario_name']} · air support {s.get('air_support')} · "
             f"KRG–Baghdad {s.get('krg_hostility')} · FF exit {s.get('ff_exit_rate')} · "
             f"deconfliction {'on' if s.get('deconfliction', True) else 'off'} · "
             f"{s.get('geography')}", fontsize=7, color="#555555")
    return fig


@solara.component
def EnsembleView(model):
    """Run a few replicates of the settings in force and show their median and bands."""
    n, set_n = solara.use_state(3)
    request, set_request = solara.use_state(None)  # (run number, settings, n) of the last click
    status, set_status = solara.use_state("")
    settings = model_settings(model)

    def work():
        if request is None:
            return None
        _, want, k = request
        set_status(f"running {k} replicates of {want['scenario_name']} …")
        ens = run_ensemble(want, k, progress=lambda i, m: set_status(
            f"ran {i} of {m} replicates …"))
        set_status(f"{k} replicates done")
        return ens

    # solara runs this in a thread with the page's context, once per click
    job = solara.use_thread(work, dependencies=[request])
    result = job.value if job.state == solara.ResultState.FINISHED else None
    fig = solara.use_memo(lambda: ensemble_figure(result) if result is not None else None,
                          [id(result)])
    busy = job.state == solara.ResultState.RUNNING
    if job.state == solara.ResultState.ERROR:
        status = f"ensemble failed: {job.error}"

    with solara.Column():
        solara.Markdown("**Ensemble**: runs replicates 0..n−1 of the scenario and levers in "
                        "force to the horizon (about 10–30 s each at 0.1°), then shows the "
                        "median territory share with its 10–90% band and the most likely "
                        "controller at the end.")
        with solara.Row():
            solara.ToggleButtonsSingle(value=n, values=list(ENSEMBLE_SIZES), on_value=set_n)
            solara.Button(f"Run {n} replicates", disabled=busy, color="primary",
                          on_click=lambda: set_request(((request or (0,))[0] + 1, settings, n)))
        solara.Text(status)
        if fig is not None:
            solara.FigureMatplotlib(fig, format="png", dpi=100, dependencies=[id(result)])


@solara.component
def Charts(model):
    update_counter.get()
    _show(charts_figure(model), model)


COMPONENTS = [(ControlMap, 0), (Charts, 0), (EnsembleView, 1)]

# Grid cells (12 columns, rows of 30 px + 10 px margin) for COMPONENTS: the map left, the charts
# (territory, displacement, fighting: one image) on its right.  Mesa 3.5 gives
# every component the same half-width cell; its ComponentsView looks this function up in
# mesa.visualization.solara_viz, so the app (and only the app's process) replaces it.
_LAYOUT = [
    {"i": 0, "x": 0, "y": 0, "w": 7, "h": 16, "moved": False},
    {"i": 1, "x": 7, "y": 0, "w": 5, "h": 20, "moved": False},
]


def _install_layout() -> None:
    import mesa.visualization.solara_viz as sv

    default = getattr(sv, "make_initial_grid_layout", None)
    if default is None or getattr(default, "_sim_app", False):
        return

    def layout(n: int):
        if n == 1:  # the ensemble tab: one full-width cell
            return [{"i": 0, "x": 0, "y": 0, "w": 12, "h": 18, "moved": False}]
        return [dict(c) for c in _LAYOUT] if n == len(_LAYOUT) else default(n)

    layout._sim_app = True
    sv.make_initial_grid_layout = layout


_install_layout()
_install_inputs()


def make_model() -> AppModel:
    params = model_params()
    kw = {k: (v["value"] if isinstance(v, dict) else v) for k, v in params.items()}
    return AppModel(**kw)


@solara.component
def Page():
    """One page per browser session, each with its own model."""
    model = solara.use_memo(make_model, [])
    params = solara.use_memo(model_params, [])
    if len({page for _, page in COMPONENTS}) == 1:
        # Mesa's tab bar ("Page 0") is noise when there is one page
        solara.Style(".v-window + .v-tabs, .v-tabs { display: none !important; }")
    # Mesa names the sidebar card "Model Parameters"; the levers apply at once (APPLY_NOTE)
    SolaraViz(model, components=COMPONENTS, model_params=params, name=TITLE, play_interval=50)
