"""What one run returns: :class:`Results`.

``run_scenario(cfg) -> Results`` (in :mod:`sim.runner`) is the single entry point used by the
CLI, the sweeps, the app and the tests.  Results hold everything the output writers and the
plots need; they never hold Hydra or matplotlib objects.

Metric names follow the house convention: ``n_`` stock, ``new_`` flow per step, ``cum_``
cumulative, ``share_`` ratio.  ``timeseries`` is tidy: one row per (date, metric, faction),
where ``faction`` is a faction code, a dyad ``"A|B"`` (sorted names) or ``"ALL"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .geography import Geography
from .rules.control import OUTSIDE, UNGOVERNED  # controller codes (re-exported for the writers)

__all__ = ["OUTSIDE", "TIMESERIES_COLUMNS", "UNGOVERNED", "Results"]

TIMESERIES_COLUMNS = ("date", "step", "metric", "faction", "value")


@dataclass
class Results:
    """Outputs of one run.

    ``control[t]`` is the controller of every cell after step ``t`` (``t = 0`` is the initial
    state), an int8 index into ``factions`` or :data:`UNGOVERNED` / :data:`OUTSIDE`.
    ``contested[t]`` is the Kalyvas control level (0 none, 1 full, 2 dominant, 3 contested) and
    ``damage[t]`` the destroyed share of housing (0..1).
    """

    factions: list[str]
    colours: dict[str, str]
    dates: list[np.datetime64]  # len T + 1
    timeseries: pd.DataFrame  # columns TIMESERIES_COLUMNS
    control: np.ndarray  # int8 [T+1, rows, cols]
    control_level: np.ndarray  # int8 [T+1, rows, cols]
    damage: np.ndarray  # float32 [T+1, rows, cols]
    summary: dict[str, Any]
    config: dict[str, Any]
    geo: Geography
    phase_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    n_agents: int = 0

    def metric(self, name: str, faction: str | None = None) -> pd.Series:
        """One metric as a series indexed by date (optionally one faction)."""
        ts = self.timeseries
        sel = ts[ts["metric"] == name]
        if faction is not None:
            sel = sel[sel["faction"] == faction]
            return sel.set_index("date")["value"]
        return sel.pivot_table(index="date", columns="faction", values="value")
