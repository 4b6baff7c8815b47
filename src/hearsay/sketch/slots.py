"""A sketch's slots: the pairs a write produces, and reading and merging many slots at once.

Why a module: every view reads and writes its key's vectors the same few ways, and these are
the ones the lattice itself does not offer (reading without densifying, per-slot sums over an
additive sketch's origin slices, the per-origin merge).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.lattice.vector import MaxVector

__all__ = [
    "READ_CHUNK_ITEMS",
    "FewPairs",
    "Pairs",
    "Slices",
    "merge_slices",
    "summed_at",
    "values_at",
    "values_of",
]

READ_CHUNK_ITEMS: Final = 4096
"""Items a many-item read (BF.MEXISTS, TOPK.COUNT) takes at once through arrays of their slots:
memory bounded whatever the number of items (one BF.MEXISTS of a million items into a chain of
11 sub-filters built 1 GB of positions at once and held the node 24 s; in chunks ~4 MB)."""

Pairs = tuple[npt.NDArray[np.uint32], npt.NDArray[np.unsignedinteger]]
"""A delta: sorted or unsorted ``(indices, values)``; duplicates are reduced by max on merge."""
FewPairs = tuple[list[int], list[int]]
"""A small delta as Python ints (one client write): vectors merge it without numpy."""
Slices = Mapping[str, MaxVector]
"""An additive entry's vectors by origin (``dict(entry.slices())``)."""


def values_at(vec: MaxVector, indices: npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
    """The values at ``indices`` (any shape, absent = 0), without densifying a sparse vector.

    One vectorised look-up even for a few slots: reading them one by one cost a binary search
    set-up per slot (1.4 ms for a Bloom filter's 7 bits among 300,000 packed pairs).
    """
    return vec.values_at(np.asarray(indices))


def values_of(vec: MaxVector, indices: list[int]) -> list[int]:
    """The values at a few ``indices`` as Python ints (absent = 0): :meth:`MaxVector.values_of`
    (a BF.ADD's bits, a Top-K writer's slots, a count-min item's cells)."""
    return vec.values_of(indices)


def summed_at(slices: Slices, indices: npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
    """Per slot, the sum over every origin's slice, saturating at ``2**64 - 1``.

    Honest writers keep every sum within int64 (the additive sketches check their totals
    before writing); saturation only keeps a misbehaving peer's values from wrapping around.
    """
    return summed_and_own_at(slices, indices, None)[0]


def summed_and_own_at(
    slices: Slices, indices: npt.NDArray[np.integer], origin: str | None
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """:func:`summed_at`, and ``origin``'s own values at the same slots (zeros without its
    slice), each slice read once: a writer's pipelined run needs both."""
    idx = np.asarray(indices)
    total = np.zeros(idx.shape, dtype=np.uint64)
    own = total
    for name, vec in sorted(slices.items()):
        part = values_at(vec, idx)
        if name == origin:
            own = part
        with np.errstate(over="ignore"):
            grown = total + part
        wrapped = grown < total
        if wrapped.any():
            grown[wrapped] = np.iinfo(np.uint64).max
        total = grown
    return total, own


def merge_slices(target: dict[str, MaxVector], source: Slices) -> dict[str, MaxVector]:
    """The lattice merge of an additive sketch: per origin, element-wise max; returns the delta."""
    delta: dict[str, MaxVector] = {}
    for origin, vec in sorted(source.items()):
        mine = target.get(origin)
        if mine is None:
            mine = target[origin] = MaxVector()
        grew = mine.merge(vec)
        if not grew.is_empty():
            delta[origin] = grew
    return delta
