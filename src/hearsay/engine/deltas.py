"""What grew in a key between two flushes.

A key big enough to take delta rows keeps each write's delta until the flush
(:class:`PendingDeltas`, which also says when the key is better staged whole). A hot big key
collects a delta per write between two flushes (thousands under load); they are joined in one
pass (:func:`hearsay.lattice.join.join_deltas`).
"""

from __future__ import annotations

from typing import Final

from hearsay.lattice.entry import Entry
from hearsay.lattice.join import join_deltas

DELTAS_JOINED_MAX: Final = 1024
"""Deltas kept per dirty key before they are joined into one (bounds memory between flushes)."""
DELTA_OVERHEAD_BYTES: Final = 64
"""What keeping one delta costs, in bytes of whole entry encoded for the same CPU (about a
microsecond: a dict update at the join, a list slot, the bookkeeping)."""


class PendingDeltas:
    """What grew in one key since the last flush, kept while staging it is cheaper than
    staging the whole entry.

    ``budget_bytes`` is a share of the entry's payload, and each delta counts its payload
    plus ``DELTA_OVERHEAD_BYTES`` (keeping and joining it costs about as much CPU as encoding
    that many bytes whole). Past the budget, :meth:`add` says to stage the key whole, unless
    the key is one to ``rejoin``: a big key's deltas are then joined (duplicates collapse)
    and kept while the join stays under the budget, so a hot big key is never rewritten
    whole at every flush; a mid-size hot key is, once a flush, which costs less than keeping
    each of its writes' deltas.
    """

    __slots__ = ("budget_bytes", "deltas", "held_bytes", "joined_bytes", "rejoin")

    def __init__(self, budget_bytes: int, *, rejoin: bool) -> None:
        self.budget_bytes = budget_bytes
        self.rejoin = rejoin
        self.deltas: list[Entry] = []
        self.held_bytes = 0  # the deltas' payload and overhead, summed (their join's bound)
        self.joined_bytes = 0  # what the last join left (the first delta's bytes after it)

    def add(self, delta: Entry) -> bool:
        """Keep ``delta``; False when the key is better staged whole.

        Past the budget, a key to rejoin is joined again only once what came since the last
        join weighs as much as that join (or twice the budget is held): each join re-reads
        the last one's pairs, so joining at every budget's overflow cost a hot big key
        (CMS.INCRBY into a 20000x7 sketch) ever more often as its join neared the budget."""
        self.deltas.append(delta)
        held = self.held_bytes = self.held_bytes + delta.payload_bytes() + DELTA_OVERHEAD_BYTES
        if len(self.deltas) < DELTAS_JOINED_MAX and (
            held <= self.budget_bytes
            or (
                self.rejoin
                and held <= 2 * self.budget_bytes
                and held - self.joined_bytes < self.joined_bytes
            )
        ):
            return True
        if not self.rejoin:
            return False
        joined = join_deltas(self.deltas)  # (amortised: after its own bytes again)
        self.deltas = [joined]
        self.held_bytes = self.joined_bytes = joined.payload_bytes() + DELTA_OVERHEAD_BYTES
        return self.held_bytes <= self.budget_bytes

    def joined(self) -> Entry:
        return join_deltas(self.deltas)
