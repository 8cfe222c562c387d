"""The fighter ledger: the one place where fighters enter or leave the model.

Every change in a faction's strength other than moving fighters between its own garrisons,
units and hidden cells goes through :class:`FighterLedger`: losses (combat, retreat,
insurgent attacks, counter-insurgency, disbanded units), recruits, withdrawals from the
theatre and ISIS foreign fighters leaving the region.  Each entry updates the running totals
behind the conservation check and the step's flows behind the ``new_``/``cum_`` metrics, and
an ISIS loss also wears down its foreign-fighter contingent, so the balance

    initial + recruited - killed - exported - withdrawn == current fighters

holds by construction.  Units: fighters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

ENTRIES = ("recruited", "killed", "exported", "withdrawn", "surrendered")
FLOW_OF = {"killed": "new_fighter_losses", "recruited": "new_recruits",
           "withdrawn": "new_fighters_withdrawn", "surrendered": "new_fighters_surrendered"}


class FighterLedger:
    """Running totals per faction, the step's flows, and ISIS's foreign fighters.

    ``count(i)`` returns faction ``i``'s fighters now (garrisons + units + hidden); it is
    read after a loss has been applied to share the loss pro rata with the foreign fighters.
    """

    def __init__(self, factions: Sequence[str], isis: int, foreign: float,
                 count: Callable[[int], float]):
        self.factions = list(factions)
        self.isis = isis
        self.foreign = float(foreign)
        self.count = count
        self.totals = {f: dict.fromkeys(ENTRIES, 0.0) for f in self.factions}
        self.flow: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.cum: defaultdict[tuple[str, str], float] = defaultdict(float)

    def new_step(self) -> None:
        """Start the flows of a new step."""
        self.flow = defaultdict(float)

    def close_step(self, keys) -> None:
        """Add this step's flows of ``keys`` (``(metric, faction)``) to the ``cum_`` totals."""
        for k in keys:
            self.cum[k] += self.flow[k]

    def _book(self, i: int, entry: str, k: float) -> None:
        """Add ``k`` to faction ``i``'s running total ``entry`` and to its flow, if any."""
        f = self.factions[i]
        self.totals[f][entry] += k
        if entry in FLOW_OF:
            self.flow[(FLOW_OF[entry], f)] += k

    def killed(self, i: int, k: float) -> None:
        """Faction ``i`` lost ``k`` fighters (already taken from its forces).  ISIS losses take
        foreign fighters in proportion to their share of its strength before the loss."""
        self._book(i, "killed", k)
        if i == self.isis and i >= 0:
            tot = self.count(i) + k
            if tot > 0 and self.foreign > 0:
                self.foreign = max(0.0, self.foreign - k * self.foreign / tot)

    def recruited(self, i: int, k: float) -> None:
        """Faction ``i`` gained ``k`` recruits (already added to its forces)."""
        self._book(i, "recruited", k)

    def withdrawn(self, i: int, k: float) -> None:
        """Faction ``i``'s ``k`` fighters left the theatre (a withdrawal event)."""
        self._book(i, "withdrawn", k)

    def exported(self, k: float) -> None:
        """``k`` ISIS foreign fighters left the region (already taken from its forces)."""
        self._book(self.isis, "exported", k)
        self.foreign -= k
        self.flow[("new_foreign_fighters_exported", "ALL")] += k

    def evacuated(self, i: int, k: float) -> None:
        """``k`` of faction ``i``'s fighters left a besieged pocket for its main ground (a
        move within the faction: no change in its strength, only a flow)."""
        self.flow[("new_fighters_evacuated", self.factions[i])] += k

    def surrendered(self, i: int, k: float) -> None:
        """``k`` of faction ``i``'s fighters surrendered or reconciled under a siege deal
        (already taken from its forces; issue 13, :mod:`sim.rules.sieges`)."""
        self._book(i, "surrendered", k)

    def balance(self, i: int, initial: float) -> float:
        """initial + recruited - killed - exported - withdrawn - surrendered - current
        (0 if conserved)."""
        t = self.totals[self.factions[i]]
        return (initial + t["recruited"] - t["killed"] - t["exported"] - t["withdrawn"]
                - t["surrendered"] - self.count(i))
