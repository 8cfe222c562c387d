"""Recruitment: factions recruit from the communities they rule, ISIS from aggrieved Sunni
Arabs within reach of its network.

Sources: Epstein (2002), PNAS 99 suppl. 3 (grievance ``G = H (1 - L)`` drives rebellion);
Collier & Hoeffler (2004), "Greed and grievance in civil war", *Oxford Econ. Papers* 56:563
(recruitment needs money to pay fighters: the faction's ``resources``); Hashim (2018) on IS
recruitment through local networks after 2017.

Units: recruits (people) per week; rates per person-week.
"""

from __future__ import annotations

import numpy as np

from .civilians import recruits
from .spatial import box_mean, window_size

NETWORK_KM = 25.0  # ISIS recruits within this distance of its hidden cells or its ground


def faction_recruits(home: np.ndarray, legitimacy: np.ndarray, grievance: np.ndarray,
                     rate: float) -> np.ndarray:
    """Recruits of a faction from each community it rules: ``rate * home * L * (1 - G)``,
    where ``rate`` is the faction's ``recruitment_rate`` times its ``resources``."""
    return recruits(home, legitimacy * (1.0 - grievance), rate)


def network_reach(hidden: np.ndarray, isis_ground: np.ndarray, cell_km: float) -> np.ndarray:
    """Cells within ``NETWORK_KM`` of a hidden cell (>= 1 member) or ISIS ground."""
    seed = ((hidden >= 1.0) | isis_ground).astype(np.float32)
    return box_mean(seed, window_size(NETWORK_KM, cell_km)) > 0


def insurgent_recruits(home: np.ndarray, grievance: np.ndarray, rate: float) -> np.ndarray:
    """Covert ISIS recruits from eligible communities: ``rate * home * G``."""
    return recruits(home, grievance, rate)


def add_at_cells(field: np.ndarray, cells: np.ndarray, amounts: np.ndarray) -> float:
    """Add ``amounts`` (float32) at flat ``cells`` of ``field`` in place; returns their total."""
    np.add.at(field.ravel(), cells, amounts.astype(np.float32))
    return float(amounts.sum())


def recruit_all(garrison: np.ndarray, hidden: np.ndarray, own_c: np.ndarray, home: np.ndarray,
                identity: np.ndarray, cells: np.ndarray, legitimacy: np.ndarray,
                grievance: np.ndarray, rates: np.ndarray, isis: int, isis_rate: float,
                isis_reach: np.ndarray | None, sunni: int) -> list[tuple[int, float]]:
    """One week of recruitment over communities (``own_c`` ruler, ``home`` people,
    ``identity``, settlement ``cells``): each faction with ``rates[i] > 0`` recruits from the
    communities it rules into its garrisons there (:func:`faction_recruits`); ISIS recruits
    covertly into ``hidden`` from aggrieved Sunni Arab communities ruled by others within its
    network (``isis_reach`` per flat cell; :func:`insurgent_recruits`).  Edits ``garrison``
    and ``hidden`` in place; returns the ``(faction, recruits)`` entries in order."""
    out = []
    for i in range(garrison.shape[0]):
        mine = own_c == i
        if rates[i] <= 0 or not mine.any():
            continue
        rec = faction_recruits(home[mine], legitimacy[i, identity[mine]], grievance[mine], rates[i])
        out.append((i, add_at_cells(garrison[i], cells[mine], rec)))
    if isis >= 0:
        elig = (identity == sunni) & (own_c != isis) & (own_c >= 0) & isis_reach.ravel()[cells]
        rec = insurgent_recruits(home[elig], grievance[elig], isis_rate)
        out.append((isis, add_at_cells(hidden, cells[elig], rec)))
    return out
