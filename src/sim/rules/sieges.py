"""Sieges and surrender deals ("green buses").

**Besieged piece.**  For a faction ``f``, its *bloc ground* is the ground held by ``f`` or by
any faction not at war with ``f``.  A piece is an 8-connected component of bloc ground that
contains ground of ``f``.  The piece is *besieged* when

* it is not ``f``'s main ground: it contains no cell of ``f``'s core (if a core is given and
  ``f`` still holds part of it) or, otherwise, not ``f``'s largest own piece by area; and
* it does not touch open country: no cell of the piece has an UNGOVERNED neighbour (8-
  neighbourhood), nor a neighbour in an optional ``exits`` mask (a border crossing a patron
  keeps open).

So its whole outer border is ground of factions at war with ``f``, OUTSIDE, or lake.  The
*besieger* is the faction at war with ``f`` with the most presence on the piece's ring (the
cells next to the piece).

**Sustained superiority and the clock.**  Each week a besieged piece is *pressed* when

    R_b / G >= siege_ratio

with ``R_b`` the besieger's presence on the ring (fighters) and ``G`` the presence of ``f``
and its non-hostile partners on the piece.  :class:`SiegeClock` counts, per cell, the
consecutive weeks its piece has been pressed; a piece inherits the largest count of its cells
(so the count survives relabelling as the piece shrinks) and is reset to 0 in any week it is
not pressed or not besieged.

**Surrender.**  When the count reaches ``delay_weeks`` the piece surrenders
(:func:`surrender`): all its cells go to the besieger; a share ``evac_share`` of each defending
faction's garrison in the piece is evacuated to a destination (the faction's main ground, e.g.
Idlib) and the rest surrenders or demobilises (removed from the fighters; the caller books it);
a share ``civilian_share`` of the piece's people is relocated with them.  Units share the
piece's fate (:func:`cut_off_units`): the defenders' units on it and ``f``'s own units on its
ring (cut off at its edge, not next to ``f``'s main ground) join its garrison first.  Fighters and people
are conserved exactly (up to float rounding): ``evacuated + surrendered`` equals the garrison
that was in the piece, and the people removed equal the people added at the destination.

Sources: the 2016-18 evacuation ("reconciliation") deals in Syria -- Daraya (Aug 2016), Aleppo
(Dec 2016), al-Waer/Homs (2017), Eastern Ghouta (Mar-Apr 2018: ~41,000 fighters and families
in 8 days, SANA; 13,500 from Douma, SOHR), northern Homs (May 2018), Daraa (Jul 2018); UN: about
200,000 people relocated under surrender deals between March and mid-May 2018
(data/history/aggregate_facts_2015-2019.csv).  The typical delay between encirclement and deal
was weeks to months (Eastern Ghouta: offensive 18 Feb, first deal 22 Mar 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .control import UNGOVERNED
from .spatial import dilate8, label8, owner_lookup



@dataclass
class Sieges:
    """The pieces of one faction's bloc ground and which of them are besieged.

    Arrays indexed by piece label ``0..n`` (0 = background, always False / -1 / 0)."""

    faction: int
    labels: np.ndarray       # [R, C] int: piece label of every bloc cell (0 elsewhere)
    n: int                   # number of pieces
    main: np.ndarray         # [n+1] bool: piece is (part of) the faction's main ground
    besieged: np.ndarray     # [n+1] bool
    besieger: np.ndarray     # [n+1] int: faction at war with most presence on the ring (-1)
    ring_force: np.ndarray   # [n+1] float: the besieger's presence on the ring
    piece_force: np.ndarray  # [n+1] float: presence of the faction and partners (besieged pieces)
    partners: np.ndarray     # [F] bool: the faction and every faction not at war with it

    @property
    def area(self) -> np.ndarray:
        """``[n+1]`` int: cells of each piece (counted when asked: the model never does)."""
        return np.bincount(self.labels.ravel(), minlength=self.n + 1)


def besieged_pieces(owner: np.ndarray, war: np.ndarray, f: int, presence: np.ndarray,
                    core: np.ndarray | None = None, exits: np.ndarray | None = None,
                    power: np.ndarray | None = None) -> Sieges:
    """Find the besieged pieces of faction ``f`` (see the module docstring).

    ``owner[r, c]`` int (``UNGOVERNED``, ``OUTSIDE`` < 0); ``war[f, g]`` bool: f and g are at
    war (hostility >= offensive_hostility); ``presence[g, r, c]`` fighters; ``core[r, c]``
    bool: f's configured core ground (optional); ``exits[r, c]`` bool: cells that count as
    open country (optional); ``power[g]`` (optional, default 1): the combat power of one of
    g's fighters in this siege (the caller passes firepower x morale, times the air support
    of g's fire on f for g at war with f), so ``ring_force`` and ``piece_force`` are combat
    power, not heads.  Loops over pieces, not cells.
    """
    war = np.asarray(war, bool)
    friend_f = ~war[f]
    friend_f[f] = True
    # per owner code (OUTSIDE -2, UNGOVERNED -1, factions): a table lookup per cell
    bloc = owner_lookup(np.concatenate([[False, False], friend_f]), owner)
    own = owner == f
    labels, n, box = label8(bloc, with_box=True)
    lab_b, own_b = labels[box], own[box]  # every bloc (so own) cell lies in the box
    has_own = np.bincount(lab_b[own_b], minlength=n + 1) > 0
    has_own[0] = False
    # main ground: pieces with own core cells, else the piece with f's largest own component
    main = np.zeros(n + 1, bool)
    if core is not None and (own_b & core[box]).any():
        main[lab_b[own_b & core[box]]] = True
    elif has_own.sum() == 1:
        main = has_own.copy()
    elif own.any():
        own_lab, n_own = label8(own)
        big = int(np.argmax(np.bincount(own_lab.ravel(), minlength=n_own + 1)[1:])) + 1
        main[labels[own_lab == big][0]] = True
    main[0] = False
    besieged = has_own & ~main
    if besieged.any():
        # on the box plus one cell (the 8-neighbours of its cells)
        R, C = owner.shape
        (rs, cs), (r0, c0) = box, (max(box[0].start - 1, 0), max(box[1].start - 1, 0))
        ext = (slice(r0, min(rs.stop + 1, R)), slice(c0, min(cs.stop + 1, C)))
        open_ground = owner[ext] == UNGOVERNED
        if exits is not None:
            open_ground = open_ground | exits[ext]
        near_open = dilate8(open_ground)[rs.start - r0:, cs.start - c0:][: lab_b.shape[0], : lab_b.shape[1]]
        touches_open = np.bincount(lab_b[near_open & bloc[box]], minlength=n + 1) > 0
        besieged &= ~touches_open
    besieged[0] = False
    besieger, ring_force, piece_force = _siege_forces(labels, n, besieged, presence, friend_f,
                                                      np.flatnonzero(war[f]), power, box)
    return Sieges(f, labels, n, main, besieged, besieger, ring_force, piece_force, friend_f)


def _siege_forces(labels: np.ndarray, n: int, besieged: np.ndarray, presence: np.ndarray,
                  partners: np.ndarray, enemies: np.ndarray, power: np.ndarray | None = None,
                  box=(slice(None), slice(None))):
    """``(besieger, ring_force, piece_force)`` per piece: the partners' presence on each besieged
    piece, and the enemy with the most presence on its ring (the 8 neighbours around it), each
    faction's presence times ``power[g]`` if given.  Works in each besieged piece's bounding
    box (few pieces), found within ``box`` (slices holding every labelled cell)."""
    w = np.ones(presence.shape[0]) if power is None else np.asarray(power, np.float64)
    besieger = np.full(n + 1, -1, np.int64)
    ring_force = np.zeros(n + 1)
    piece_force = np.zeros(n + 1)
    if not besieged.any():
        return besieger, ring_force, piece_force
    boxes = ndimage.find_objects(labels[box])
    r0, c0 = box[0].start or 0, box[1].start or 0
    R, C = labels.shape
    for k in np.flatnonzero(besieged):
        b = boxes[k - 1]
        sl = (slice(max(r0 + b[0].start - 1, 0), min(r0 + b[0].stop + 1, R)),
              slice(max(c0 + b[1].start - 1, 0), min(c0 + b[1].stop + 1, C)))
        sub = presence[:, sl[0], sl[1]]
        piece = labels[sl] == k
        piece_force[k] = float(sub[partners][:, piece].sum(axis=1, dtype=np.float64) @ w[partners])
        if enemies.size:
            ring = dilate8(piece) & ~piece
            force = sub[enemies][:, ring].sum(axis=1, dtype=np.float64) * w[enemies]
            j = int(np.argmax(force))
            besieger[k] = enemies[j]
            ring_force[k] = force[j]
    return besieger, ring_force, piece_force


def hold_truces(s: Sieges, allowed: np.ndarray) -> None:
    """A piece whose besieger may not hold all its cells (``allowed[g, r, c]``: a truce zone
    closed to it, a deconfliction line) is not pressed this week: a deal hands over the whole
    piece, and the truce holds (its ``ring_force`` is set to 0 in place)."""
    for k in np.flatnonzero(s.besieged & (s.besieger >= 0)):
        if not allowed[s.besieger[k]][s.labels == k].all():
            s.ring_force[k] = 0.0


def pressed(s: Sieges, siege_ratio: float) -> np.ndarray:
    """``[n+1]`` bool: besieged pieces under sustained local superiority this week,
    ``ring_force >= siege_ratio * piece_force`` (and some besieger present)."""
    ok = s.besieged & (s.besieger >= 0) & (s.ring_force > 0)
    return ok & (s.ring_force >= siege_ratio * s.piece_force)


class SiegeClock:
    """Consecutive weeks each besieged piece has been pressed, per faction and cell.

    ``weeks[f, r, c]`` is the count of the piece the cell belonged to last week.  A piece's
    count this week is ``1 + max(weeks of its cells)`` if it is pressed, else 0; cells outside
    pressed pieces are reset to 0.  Deterministic; no randomness.
    """

    def __init__(self, n_factions: int, shape: tuple[int, int]):
        self.weeks = np.zeros((n_factions, *shape), np.int16)

    def update(self, s: Sieges, siege_ratio: float) -> np.ndarray:
        """Advance faction ``s.faction``'s clock one week; returns the count per piece ``[n+1]``."""
        press = pressed(s, siege_ratio)
        if not press.any():  # no piece pressed: every count is 0 (skip the gather)
            self.weeks[s.faction] = 0
            return np.zeros(s.n + 1, np.int64)
        prev = np.zeros(s.n + 1, np.int64)
        np.maximum.at(prev, s.labels.ravel(), self.weeks[s.faction].ravel().astype(np.int64))
        count = np.where(press, prev + 1, 0)
        count[0] = 0
        self.weeks[s.faction] = count[s.labels].astype(np.int16)
        return count

    def due(self, s: Sieges, count: np.ndarray, delay_weeks: int) -> np.ndarray:
        """Pieces whose count has reached ``delay_weeks`` (they surrender this week)."""
        return (count >= delay_weeks) & s.besieged

    def clear(self, f: int, cells: np.ndarray) -> None:
        """Reset the clock on cells that changed hands (after a surrender)."""
        self.weeks[f][cells] = 0


@dataclass
class Deal:
    """A surrender deal: what changes hands and who goes where (new arrays; inputs untouched)."""

    faction: int
    besieger: int
    cells: np.ndarray       # [R, C] bool: cells of the piece (all change hands)
    owner: np.ndarray       # [R, C] new owner: the besieger on the piece's cells
    garrison: np.ndarray    # [F, R, C] new garrisons: piece emptied, evacuees at the destination
    people: np.ndarray      # [R, C] new people: relocated ones moved to the destination
    evacuated: np.ndarray   # [F] fighters evacuated per defending faction
    surrendered: np.ndarray  # [F] fighters who surrendered or demobilised (removed)
    relocated: float        # people relocated with the fighters


def surrender(s: Sieges, piece: int, owner: np.ndarray, garrison: np.ndarray,
              people: np.ndarray, destination: np.ndarray, evac_share: float,
              civilian_share: float) -> Deal:
    """The surrender of piece ``piece`` of ``s`` to its besieger.

    ``garrison[g, r, c]`` fighters; ``people[r, c]`` civilians present; ``destination[r, c]``
    >= 0: weights of the cells evacuees go to (the caller passes the faction's main ground,
    e.g. its station weights there; it must have a positive sum if anyone is evacuated).
    ``s.faction`` and every faction not at war with it are the defenders: ``evac_share`` of its garrison
    on the piece goes to the destination (staying in its own layer), the rest surrenders.
    ``civilian_share`` of the piece's people is relocated to the destination in proportion to
    the same weights.  Units inside the piece are the caller's: it should first disband them
    into the garrison so they share the fate of the piece.
    """
    if not s.besieged[piece] or s.besieger[piece] < 0:
        raise ValueError(f"piece {piece} is not besieged")
    cells = s.labels == piece
    to = int(s.besieger[piece])
    new_owner = np.where(cells, to, owner).astype(owner.dtype)
    n_f = garrison.shape[0]
    g_in = np.where(cells[None], garrison, 0.0).astype(np.float64).sum(axis=(1, 2))
    defenders = s.partners & (g_in > 0)
    w = np.where(cells, 0.0, np.maximum(destination, 0.0)).astype(np.float64)
    wsum = w.sum()
    new_g = garrison.copy()
    evacuated = np.zeros(n_f)
    surrendered = np.zeros(n_f)
    for g in np.flatnonzero(defenders):
        out = float(g_in[g])
        ev = out * evac_share if wsum > 0 else 0.0
        new_g[g][cells] = 0
        if ev > 0:
            new_g[g] += (w * (ev / wsum)).astype(garrison.dtype)
        evacuated[g] = ev
        surrendered[g] = out - ev
    pop_in = float(np.where(cells, people, 0.0).sum())
    moved = pop_in * civilian_share if wsum > 0 else 0.0
    new_p = people.astype(np.float64, copy=True)
    if moved > 0:
        new_p[cells] *= 1.0 - civilian_share
        new_p += w * (moved / wsum)
    return Deal(s.faction, to, cells, new_owner, new_g, new_p.astype(people.dtype, copy=False),
                evacuated, surrendered, moved)


def cut_off_units(rows: np.ndarray, cols: np.ndarray, faction: np.ndarray, alive: np.ndarray,
                  cells: np.ndarray, f: int, partners: np.ndarray, main_ground: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The units that share the fate of a surrendering piece: ``(sel, row, col)`` -- the unit
    indices and the piece cell each one's fighters join before the deal.

    * units of the defenders (``partners[g]``) standing on the piece (``cells[r, c]``) join
      the garrison of their own cell;
    * units of the besieged faction ``f`` itself standing next to the piece (its 8-ring: they
      are fighting at its edge, cut off like it) and not next to ``f``'s ``main_ground`` (bool
      ``[R, C]``: its own cells on its main ground) join the piece cell next to them.  The Daraa
      deal of July 2018 covered the rebel formations of the whole south, not only those
      inside the last perimeter.

    ``rows``/``cols`` int cells of the units (clipped to the grid by the caller),
    ``faction`` their faction, ``alive`` bool."""
    R, C = cells.shape
    inside = alive & partners[faction] & cells[rows, cols]
    near = dilate8(cells) & ~cells & ~dilate8(main_ground)
    ring = alive & (faction == f) & near[rows, cols]
    tr, tc = rows.copy(), cols.copy()
    k = np.flatnonzero(ring)
    if k.size:
        found = np.zeros(k.size, bool)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = np.clip(rows[k] + dr, 0, R - 1), np.clip(cols[k] + dc, 0, C - 1)
                hit = ~found & cells[rr, cc]
                tr[k[hit]], tc[k[hit]] = rr[hit], cc[hit]
                found |= hit
    sel = np.flatnonzero(inside | ring)
    return sel, tr[sel], tc[sel]


def siege_week(owner: np.ndarray, war: np.ndarray, f: int, presence: np.ndarray,
               garrison: np.ndarray, people: np.ndarray, clock: SiegeClock,
               station_weight: np.ndarray, siege_ratio: float, delay_weeks: int,
               evac_share: float, civilian_share: float, core: np.ndarray | None = None,
               exits: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Deal]]:
    """One week of sieges for faction ``f``: find its besieged pieces, advance the clock, and
    let every piece that is due surrender (one after the other; pieces are disjoint).

    Evacuees go to ``f``'s own cells on its main ground in proportion to ``station_weight``
    ``[R, C]`` (>= 0; e.g. the model's station weights); with no such cells nobody is
    evacuated and all the piece's fighters surrender.  Returns ``(owner, garrison, people,
    deals)`` (new arrays when a deal happened, the inputs otherwise); the caller logs each
    :class:`Deal` as an event and adds ``deal.relocated`` to ``new_people_relocated``.
    """
    s = besieged_pieces(owner, war, f, presence, core, exits)
    count = clock.update(s, siege_ratio)
    due = np.flatnonzero(clock.due(s, count, delay_weeks))
    deals: list[Deal] = []
    if due.size == 0:
        return owner, garrison, people, deals
    dest = np.where(s.main[s.labels] & (owner == f), np.maximum(station_weight, 0.0), 0.0)
    for k in due:
        deal = surrender(s, int(k), owner, garrison, people, dest, evac_share, civilian_share)
        owner, garrison, people = deal.owner, deal.garrison, deal.people
        clock.clear(f, deal.cells)
        deals.append(deal)
    return owner, garrison, people, deals
