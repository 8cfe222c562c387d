"""Mesa agents: faction headquarters, armed units and civilian communities.

The agents are the model's deciders and the things a user inspects (``model.agents_by_type``,
the app's portrayal).  Their state lives in the model's arrays (``model.units``,
``model.communities``) so hot updates are vectorised; an agent is a light handle that reads
and writes its row.  Decisions that are naturally per-agent and cheap (an HQ choosing
objectives for its dozen units) run as agent methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from . import aftermath
from .rules import movement
from .rules.presence import mix_at
from .rules.spatial import owner_boxes

if TYPE_CHECKING:  # pragma: no cover
    from .model import ConflictModel


class FactionHQ(mesa.Agent):
    """A faction's headquarters: allocates its mobile units across fronts.

    Cederman's GeoSim decision rule: a front is attacked where the value of the ground
    (population, key places, oil, borders) is high and the local power ratio of the unit plus
    the faction's presence to the enemy's presence exceeds the faction's ``attack_ratio``;
    ungoverned ground is a target as soon as someone could take it (the race to fill a vacuum).
    """

    def __init__(self, model: ConflictModel, index: int, name: str):
        super().__init__(model)
        self.index = index
        self.name = name
        self.objectives: list[tuple[int, int]] = []

    @property
    def config(self):
        return self.model.cfg.factions[self.name]

    def plan(self, hostile: np.ndarray) -> None:
        """Assign an objective cell to each of this faction's live units
        (:mod:`sim.rules.movement`: candidate cells, GeoSim scores, assignment).
        ``hostile[f, g]``: g is an enemy of f (its presence opposes f's; summed only on the
        candidate cells, :func:`~sim.rules.presence.mix_at`); called through
        ``model.agents_by_type[FactionHQ].do("plan", hostility > 0)``."""
        m = self.model
        f = self.index
        units = m.units.of_faction(f)
        if units.size == 0:
            return
        # offensives only against factions it is at war with; low-level hostility means
        # skirmishes where fronts touch, not campaigns
        r, c = m.units.cells()
        box = movement.target_box(owner_boxes(m.owner, m.n_f)[f], r[units], c[units], m.owner.shape,
                                  m.target_reach)
        idx = movement.target_cells(f, m.owner, m.units.occupied(f, m.owner.shape), m.allowed[f],
                                    m.hostility, m.cfg.control.offensive_hostility, box, m.target_reach)
        idx = aftermath.staging_cells(m, f, idx)  # an offensive about to launch: its objective
        if idx.size == 0:
            # nothing to take: hold the most threatened own cells
            own = np.flatnonzero(m.owner == f)
            idx = own[mix_at(hostile[f], m.presence, own) > 0]
            if idx.size == 0:
                return
        mass = m.units.fighters[units].sum() * m.cfg.combat.unit_centre_share
        at = np.arange(idx.size)  # the scores on the candidate cells' values only
        score = movement.target_scores(at, m.owner.ravel()[idx], mass, m.presence[f].ravel()[idx],
                                       mix_at(hostile[f], m.presence, idx), m.value[f].ravel()[idx],
                                       self.config.attack_ratio * m.defence[idx], m.hostility[f])
        score = aftermath.main_effort(m, f, idx, score)  # a dated offensive's main effort
        ranked = np.argsort(score)[::-1]
        order = ranked[: max(4 * units.size, 8)]
        targets = movement.assign_objectives(m.units.row[units], m.units.col[units],
                                             m.units.target[units], idx[order], score[order],
                                             m.owner.shape[1], m.unit_speed_cells[f])
        targets = aftermath.stage_targets(m, f, targets)  # wait at the jump-off line until the launch
        # unreachable objectives are dropped; those units go to the reachable fronts with the
        # most need, theatre-wide (issue 13, :func:`sim.aftermath.route_units`)
        targets = aftermath.route_units(m, f, units, targets, idx[ranked], score[ranked])
        m.units.target[units] = targets
        self.objectives = [(int(r), int(c)) for r, c in targets]


class Unit(mesa.Agent):
    """An armed unit (brigade/battalion task force): a row of :class:`UnitTable`."""

    def __init__(self, model: ConflictModel, row: int):
        super().__init__(model)
        self.row_index = row

    @property
    def faction(self) -> str:
        return self.model.faction_names[int(self.model.units.faction[self.row_index])]

    @property
    def fighters(self) -> float:
        return float(self.model.units.fighters[self.row_index])

    @property
    def cell(self) -> tuple[int, int]:
        t = self.model.units
        return int(round(t.row[self.row_index])), int(round(t.col[self.row_index]))


class Community(mesa.Agent):
    """A civilian community: the people of one settlement's area who share an identity group.
    A row of :class:`CommunityTable` (home, displaced, abroad, dead)."""

    def __init__(self, model: ConflictModel, row: int):
        super().__init__(model)
        self.row_index = row

    @property
    def identity(self) -> str:
        return self.model.identity_names[int(self.model.communities.identity[self.row_index])]

    @property
    def settlement(self) -> str:
        t = self.model.communities
        return str(self.model.region_names[int(t.region[self.row_index])])

    @property
    def stocks(self) -> dict[str, float]:
        t = self.model.communities
        i = self.row_index
        return {"home": float(t.home[i]), "idp": float(t.idp[i]), "abroad": float(t.abroad[i]),
                "dead": float(t.dead[i])}


class UnitTable:
    """Column arrays of all units (positions in fractional cells)."""

    def __init__(self, faction, row, col, fighters):
        self.faction = np.asarray(faction, np.int16)
        self.row = np.asarray(row, np.float64)
        self.col = np.asarray(col, np.float64)
        self.fighters = np.asarray(fighters, np.float64)
        self.target = np.column_stack([self.row, self.col]).astype(np.float64) if len(self.row) \
            else np.zeros((0, 2))
        self.alive = self.fighters > 0

    def __len__(self) -> int:
        return len(self.faction)

    def add(self, faction, row, col, fighters) -> np.ndarray:
        """Append new units (standing at their cells, objective there); returns their rows."""
        n0 = len(self)
        self.faction = np.concatenate([self.faction, np.asarray(faction, np.int16)])
        self.row = np.concatenate([self.row, np.asarray(row, np.float64)])
        self.col = np.concatenate([self.col, np.asarray(col, np.float64)])
        f = np.asarray(fighters, np.float64)
        self.fighters = np.concatenate([self.fighters, f])
        self.target = np.concatenate([self.target, np.column_stack([row, col]).astype(np.float64)])
        self.alive = np.concatenate([self.alive, f > 0])
        return np.arange(n0, len(self))

    def of_faction(self, f: int) -> np.ndarray:
        return np.flatnonzero(self.alive & (self.faction == f))

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        return np.rint(self.row).astype(np.int64), np.rint(self.col).astype(np.int64)

    def occupied(self, f: int, shape) -> np.ndarray:
        m = np.zeros(shape, bool)
        sel = self.of_faction(f)
        r, c = self.cells()
        m[r[sel], c[sel]] = True
        return m


class CommunityTable:
    """Column arrays of all civilian communities.  ``home + idp + abroad + dead == pop0``."""

    def __init__(self, region, identity, pop0, idp_loc):
        self.region = np.asarray(region, np.int64)
        self.identity = np.asarray(identity, np.int64)
        self.pop0 = np.asarray(pop0, np.float64)
        self.home = self.pop0.copy()
        self.idp = np.zeros_like(self.pop0)
        self.abroad = np.zeros_like(self.pop0)
        self.dead = np.zeros_like(self.pop0)
        # what remains of the displacement stock of the start (sim.initial.initial_displacement)
        self.idp_init = np.zeros_like(self.pop0)
        self.abroad_init = np.zeros_like(self.pop0)
        # IDPs who fled ahead of a feared advance (civilians.threat_hazard): they return faster
        self.idp_threat = np.zeros_like(self.pop0)
        self.idp_loc = np.asarray(idp_loc, np.int64)  # flat cell index where the IDPs shelter

    def __len__(self) -> int:
        return len(self.region)

    def total(self) -> np.ndarray:
        return self.home + self.idp + self.abroad + self.dead
