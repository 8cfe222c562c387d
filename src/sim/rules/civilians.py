"""Civilians: grievance, recruitment, displacement and return (vectorised over communities).

Sources:
* Epstein (2002), "Modeling civil violence: an agent-based computational approach", PNAS 99
  suppl. 3: grievance ``G = H (1 - L)`` from hardship ``H`` and the legitimacy ``L`` of the
  authority.
* Suleimenova, Bell & Groen (2017), "A generalized simulation development approach for
  predicting refugee destinations" (FLEE), Sci. Rep. 7:13377: people move away from conflict
  towards the most attractive reachable location, weighting safety and distance, and move on
  when their location becomes unsafe.
* Return when home is safe and housing stands: IOM DTM Iraq return-intention surveys 2017-18
  (security and destroyed housing are the main barriers to return).

Community state vectors (length C) are ``home``, ``idp``, ``abroad`` and ``dead``; their sum
is each community's initial population, always.
"""

from __future__ import annotations

import numpy as np


def grievance(hardship: np.ndarray, legitimacy: np.ndarray) -> np.ndarray:
    """Epstein's grievance ``G = H * (1 - L)``, both in [0, 1]."""
    return np.clip(hardship, 0, 1) * (1.0 - np.clip(legitimacy, 0, 1))


def hardship(base: float, damage: np.ndarray, displaced_share: np.ndarray, violence: np.ndarray,
             w_damage: float, w_displacement: float, w_violence: float) -> np.ndarray:
    """Hardship in [0, 1] from housing damage, the community's displaced share and recent
    violence (a rate in [0, 1])."""
    h = base + w_damage * damage + w_displacement * displaced_share + w_violence * violence
    return np.clip(h, 0.0, 1.0)


def flee_fraction(violence: np.ndarray, damage_increase: np.ndarray, persecution: np.ndarray,
                  a_violence: float, a_damage: float, a_persecution: float) -> np.ndarray:
    """Share of the people at home who flee this step:
    ``1 - exp(-(a_v v + 10 a_d dD + a_p p))``.  ``violence`` is the violence index (0..1),
    ``damage_increase`` the share of housing destroyed this step (x10, so ``a_d`` is the hazard
    per 10% of homes destroyed in a week), ``persecution`` 1 where the controller targets the
    group."""
    return 1.0 - np.exp(-(a_violence * violence + a_damage * damage_increase * 10.0
                          + a_persecution * persecution))


def return_fraction(safe: np.ndarray, damage: np.ndarray, rate: float, safe_damage: float) -> np.ndarray:
    """Share of the displaced who return this step: ``rate`` where home is safe, scaled down
    linearly by destroyed housing (none return where damage >= ``safe_damage``)."""
    housing = np.clip(1.0 - damage / max(safe_damage, 1e-9), 0.0, 1.0)
    return np.where(safe, rate * housing, 0.0)


def move_people(home: np.ndarray, idp: np.ndarray, abroad: np.ndarray, dead: np.ndarray,
                flee: np.ndarray, abroad_share: np.ndarray, ret_idp: np.ndarray,
                ret_abroad: np.ndarray, deaths_home: np.ndarray, deaths_idp: np.ndarray):
    """One step of flows between the four stocks; returns the new stocks and the flows
    (new_displaced, new_abroad, returnees, deaths).  Exactly conserving: every outflow is
    bounded by its stock, and what leaves one stock enters another."""
    d_home = np.minimum(deaths_home, home)
    home = home - d_home
    d_idp = np.minimum(deaths_idp, idp)
    idp = idp - d_idp
    leaving = home * flee
    to_abroad = leaving * abroad_share
    to_idp = leaving - to_abroad
    back_idp = idp * ret_idp
    back_abroad = abroad * ret_abroad
    home = home - leaving + back_idp + back_abroad
    idp = idp + to_idp - back_idp
    abroad = abroad + to_abroad - back_abroad
    dead = dead + d_home + d_idp
    return (home, idp, abroad, dead), (leaving, to_abroad, back_idp + back_abroad, d_home + d_idp)


def destination_scores(safety: np.ndarray, legitimacy: np.ndarray, capacity: np.ndarray,
                       dist_km: np.ndarray, walk_km: float) -> np.ndarray:
    """FLEE-style attractiveness ``[community, destination]`` of each destination:
    safety x legitimacy of its controller for the group x log-capacity, discounted by
    distance; unreachable (beyond ``3 * walk_km``) destinations score 0."""
    reach = dist_km <= 3.0 * walk_km
    score = safety * (0.2 + legitimacy) * np.log1p(capacity) / (1.0 + dist_km / walk_km)
    return np.where(reach, score, 0.0)


def recruits(pop: np.ndarray, support: np.ndarray, rate: float) -> np.ndarray:
    """Recruits per cell: ``rate * pop * support`` (support in [0, 1])."""
    return rate * pop * support
