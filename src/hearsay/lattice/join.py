"""Joining many deltas of one key into one, in one pass.

Why this module exists: a hot key collects a delta per client write between two flushes
(thousands under load) and between two gossip drains (one rumour carries them all), and a fold
joins hundreds of stored delta rows. Merging them one by one costs a tracked merge (and its
bookkeeping) per delta; the deltas of one epoch and schema are instead joined by concatenating
their pairs and building one vector (duplicates reduced by max), which is the same join: the
lattice's merge is associative and commutative. The storage flush, the fold and the gossip
drain all join through here.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.lattice import _sparse
from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import INDEX_LIMIT, MaxVector

__all__ = ["FEW_PAIRS", "join_deltas"]

FEW_PAIRS: Final = 64
"""Deltas of one epoch and schema with a dense slice among them, holding at most this many
pairs in all, are joined as Python ints (a dict of maxima) instead of arrays (deltas whose
slices are all sparse, most of them, are joined in C whatever their size)."""


def join_deltas(deltas: list[Entry]) -> Entry:
    """The join of ``deltas`` (in order), as a new entry; one delta is returned as it is.

    Never mutates its arguments (they may be shared with the gossip node).
    """
    if len(deltas) == 1:
        return deltas[0]
    first = deltas[0]
    schema = first.schema
    if all(d.epoch == first.epoch and (d.schema is schema or d.schema == schema) for d in deltas):
        return _join_run(deltas)  # (the common case, one burst: a new entry, no merge into one)
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
    first = run[0]
    expiry = max(delta.expiry for delta in run)
    by_origin: dict[str, list[bytes]] = {}
    for delta in run:
        as_bytes = delta.packed_slices()  # (None: a dense slice, joined below)
        if as_bytes is None:
            break
        for origin, held in as_bytes:
            kept = by_origin.get(origin)
            if kept is None:
                by_origin[origin] = [held]
            else:
                kept.append(held)
    else:  # every slice sparse (a write's delta, mostly): each origin's joined in C at once
        joined = {origin: MaxVector.join_packed(held) for origin, held in by_origin.items()}
        return Entry.holding(first.epoch, first.schema, expiry, joined)
    if sum(delta.pair_count() for delta in run) <= FEW_PAIRS:
        # A burst of small writes (INCRs, PFADDs of a member or two): the maxima in a dict,
        # no arrays and no byte unpacking (their fixed costs were most of this).
        few: dict[str, dict[int, int]] = {}
        for delta in run:
            as_bytes = delta.packed_slices()  # (read in C from the bytes: no vector around them)
            pair_lists = (
                [(origin, vector.items()) for origin, vector in delta.slices()]
                if as_bytes is None
                else [(origin, _sparse.window(held, 0, INDEX_LIMIT)) for origin, held in as_bytes]
            )
            for origin, items in pair_lists:
                top = few.setdefault(origin, {})
                for index, value in items:
                    if value > top.get(index, 0):
                        top[index] = value
        maxima = {origin: MaxVector.of_maxima(top) for origin, top in few.items()}
        return Entry.holding(first.epoch, first.schema, expiry, maxima)
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
    return Entry(first.epoch, first.schema, expiry, slices)
