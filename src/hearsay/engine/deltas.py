"""What grew in a key between two flushes, and joining many small deltas of one key into one
in one pass (flushes and folds).

A key big enough to take delta rows keeps each write's delta until the flush
(:class:`PendingDeltas`, which also says when the key is better staged whole). A hot big key
collects a delta per write between two flushes (thousands under load), and a fold joins
hundreds of stored delta rows. Merging them one by one costs a tracked merge (and its
bookkeeping) per delta; the deltas of one epoch and schema are instead joined by
concatenating their pairs and building one vector (duplicates reduced by max), which is the
same join: the lattice's merge is associative and commutative.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector

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


def join_deltas(deltas: list[Entry]) -> Entry:
    """The join of ``deltas`` (in order), as a new entry; one delta is returned as it is.

    Never mutates its arguments (they may be shared with the gossip node).
    """
    if len(deltas) == 1:
        return deltas[0]
    joined = Entry()
    run: list[Entry] = []
    for delta in deltas:
        if run and (delta.epoch != run[0].epoch or delta.schema != run[0].schema):
            joined.merge(_join_run(run))
            run = []
        run.append(delta)
    if run:
        joined.merge(_join_run(run))
    return joined


def _join_run(run: list[Entry]) -> Entry:
    """The join of deltas of one epoch and schema: every slice's pairs at once."""
    if len(run) == 1:
        return run[0]
    packed: dict[str, list[bytes]] = {}  # sparse deltas (one per client write, mostly)
    indices: dict[str, list[npt.NDArray[np.integer]]] = {}  # dense ones (a PFMERGE's)
    values: dict[str, list[npt.NDArray[np.unsignedinteger]]] = {}
    for delta in run:
        for origin, vector in delta.slices():
            pairs = vector.packed_pairs()
            if pairs is not None:
                packed.setdefault(origin, []).append(pairs)
                continue
            index_array, value_array = vector.pairs()
            indices.setdefault(origin, []).append(index_array)
            values.setdefault(origin, []).append(value_array.astype(np.uint64, copy=False))
    slices = {origin: MaxVector.join_packed(parts) for origin, parts in packed.items()}
    for origin, parts in indices.items():
        if origin in slices:
            index_array, value_array = slices[origin].pairs()
            parts.append(index_array)
            values[origin].append(value_array.astype(np.uint64, copy=False))
        slices[origin] = MaxVector.from_pairs(np.concatenate(parts), np.concatenate(values[origin]))
    first = run[0]
    return Entry(first.epoch, first.schema, max(delta.expiry for delta in run), slices)
