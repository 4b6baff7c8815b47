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

    __slots__ = ("budget_bytes", "deltas", "held_bytes", "rejoin")

    def __init__(self, budget_bytes: int, *, rejoin: bool) -> None:
        self.budget_bytes = budget_bytes
        self.rejoin = rejoin
        self.deltas: list[Entry] = []
        self.held_bytes = 0  # the deltas' payload and overhead, summed (their join's bound)

    def add(self, delta: Entry) -> bool:
        """Keep ``delta``; False when the key is better staged whole."""
        self.deltas.append(delta)
        self.held_bytes += delta.payload_bytes() + DELTA_OVERHEAD_BYTES
        if self.held_bytes <= self.budget_bytes and len(self.deltas) < DELTAS_JOINED_MAX:
            return True
        if not self.rejoin:
            return False
        joined = join_deltas(self.deltas)  # (amortised: after a budget's worth of bytes)
        self.deltas = [joined]
        self.held_bytes = joined.payload_bytes() + DELTA_OVERHEAD_BYTES
        return self.held_bytes <= self.budget_bytes

    def joined(self) -> Entry:
        return join_deltas(self.deltas)
