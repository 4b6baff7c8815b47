"""Joining many small deltas of one key into one, in one pass (flushes and folds).

A hot big key collects a delta per write between two flushes (thousands under load), and a
fold joins hundreds of stored delta rows. Merging them one by one costs a tracked merge (and
its bookkeeping) per delta; the deltas of one epoch and schema are instead joined by
concatenating their pairs and building one vector (duplicates reduced by max), which is the
same join: the lattice's merge is associative and commutative.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector


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
    indices: dict[str, list[npt.NDArray[np.integer]]] = {}
    values: dict[str, list[npt.NDArray[np.unsignedinteger]]] = {}
    for delta in run:
        for origin, vector in delta.slices():
            index_array, value_array = vector.pairs()
            indices.setdefault(origin, []).append(index_array)
            values.setdefault(origin, []).append(value_array.astype(np.uint64, copy=False))
    slices = {
        origin: MaxVector.from_pairs(np.concatenate(parts), np.concatenate(values[origin]))
        for origin, parts in indices.items()
    }
    first = run[0]
    return Entry(first.epoch, first.schema, max(delta.expiry for delta in run), slices)
