"""Interactive browser app: a Mesa ``SolaraViz`` page for :class:`~sim.model.ConflictModel`.

Run it with ``sim app`` (Solara server on http://127.0.0.1:8765) or ``solara run sim.app``.

The page shows the control map (terrain, borders, rivers, cities; the controller of each cell,
contested cells hatched ``////``, ungoverned cells grey ``..``; mobile units as circles sized by
fighters) and three live charts from ``model.records``: territory share by faction,
displacement (internally displaced and abroad) and battles between former allies.  The sidebar
has Mesa's Reset / Play / Step controls, a scenario picker (``configs/scenario/*.yaml``) and
sliders for the key levers; a new model is built with them on **Reset**:

* coalition air support strength -> ``scenario.air_support.us_coalition.strength``
* KRG–Baghdad hostility          -> ``scenario.hostility.IRAQI_GOV.KRG`` (initial; events may change it)
* foreign-fighter exit rate      -> ``scenario.foreign_fighter_exit_rate``
* deconfliction on/off           -> off removes every line in ``scenario.deconfliction``

A slider left where it started keeps the picked scenario's own value; a moved one overrides it.
The values in force are printed under the map.

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
from .plotting import UNGOVERNED_COLOUR, faction_colours, plot_map
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


def model_params() -> dict[str, Any]:
    """SolaraViz ``model_params``: the scenario picker, the lever sliders and fixed values.
    Mesa applies them when the user presses Reset."""
    lv = slider_start()
    return {
        "scenario_name": {"type": "Select", "value": default_scenario(), "values": scenario_names(),
                          "label": "Scenario (applied on Reset)"},
        "air_support": {"type": "SliderFloat", "value": lv["air_support"], "min": 0.0, "max": 4.0,
                        "step": 0.1, "label": "Coalition air support"},
        "krg_hostility": {"type": "SliderFloat", "value": lv["krg_hostility"], "min": 0.0,
                          "max": 1.0, "step": 0.05, "label": "KRG–Baghdad hostility"},
        "ff_exit_rate": {"type": "SliderFloat", "value": lv["ff_exit_rate"], "min": 0.0,
                         "max": 0.1, "step": 0.005, "label": "Foreign-fighter exit / week"},
        "deconfliction": {"type": "Checkbox", "value": True,
                          "label": "Deconfliction lines (off: none)"},
        "replicate": {"type": "SliderInt", "value": 0, "min": 0, "max": 9, "step": 1,
                      "label": "Replicate"},
        "geography": default_geography(),
    }


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
    u = model.units
    alive = u.alive & (u.fighters > 0)
    units = np.column_stack([u.row[alive], u.col[alive], u.faction[alive], u.fighters[alive]])
    colours = {f: model.cfg.factions[f].colour for f in model.faction_names}
    weeks = model.cfg.scenario.weeks
    title = (f"{model.date:%d %b %Y} — week {model.steps_done}/{weeks} — "
             f"{model.cfg.scenario.name}")
    plot_map(ax, model.geo, control=model.owner, level=model.level, units=units,
             factions=model.faction_names, colours=colours, title=title, max_labels=40,
             label_size=6.5)
    lv = getattr(model, "app_levers", None)
    note = "circles: mobile units (area ∝ fighters)"
    if lv:
        note += (f"   ·   air support {lv['air']:.1f}   ·   KRG–Baghdad {lv['krg']:.2f}   ·   "
                 f"deconfliction {'on' if lv['deconf'] else 'off'}   ·   FF exit {lv['ff']:.3f}/wk")
    ax.set_xlabel(note, fontsize=7, color="#444444")
    ax.set_ylabel("")
    return fig


def territory_figure(model: ConflictModel) -> Figure:
    fig = _figure(5.6, 3.4, left=0.1, right=0.76, bottom=0.1, top=0.91)
    ax = fig.add_subplot()
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


def displacement_figure(model: ConflictModel) -> Figure:
    fig = _figure(5.6, 3.0, left=0.1, right=0.97, bottom=0.12, top=0.9)
    ax = fig.add_subplot()
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


def fighting_figure(model: ConflictModel) -> Figure:
    fig = _figure(12.0, 2.5, left=0.05, right=0.95, bottom=0.14, top=0.88)
    ax = fig.add_subplot()
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


COMPONENTS = [(ControlMap, 0), (TerritoryPlot, 0), (DisplacementPlot, 0), (FightingPlot, 0)]

# Grid cells (12 columns, rows of 30 px + 10 px margin) for COMPONENTS: the map left, territory
# and displacement stacked on its right, the fighting chart full width below.  Mesa 3.5 gives
# every component the same half-width cell; its ComponentsView looks this function up in
# mesa.visualization.solara_viz, so the app (and only the app's process) replaces it.
_LAYOUT = [
    {"i": 0, "x": 0, "y": 0, "w": 7, "h": 15, "moved": False},
    {"i": 1, "x": 7, "y": 0, "w": 5, "h": 8, "moved": False},
    {"i": 2, "x": 7, "y": 8, "w": 5, "h": 7, "moved": False},
    {"i": 3, "x": 0, "y": 15, "w": 12, "h": 7, "moved": False},
]


def _install_layout() -> None:
    import mesa.visualization.solara_viz as sv

    default = getattr(sv, "make_initial_grid_layout", None)
    if default is None or getattr(default, "_sim_app", False):
        return

    def layout(n: int):
        return [dict(c) for c in _LAYOUT] if n == len(_LAYOUT) else default(n)

    layout._sim_app = True
    sv.make_initial_grid_layout = layout


_install_layout()


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
    SolaraViz(model, components=COMPONENTS, model_params=params, name=TITLE, play_interval=50)
