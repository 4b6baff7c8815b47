"""Vignette vectors on the database: VMAX and VGET (any uint32 index, values only grow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from hearsay.base.errors import WrongTypeError
from hearsay.engine.families.common import write_pairs
from hearsay.engine.replica import Replica
from hearsay.sketch.maxreg import RawVector
from hearsay.sketch.schemas import KIND_MAXREG, KIND_VECTOR
from hearsay.sketch.slots import FewPairs, Pairs

__all__ = ["vget", "vmax"]

_VECTOR: Final = RawVector()
_FEW_PAIRS: Final = 64
"""Up to this many pairs go to the lattice as Python ints, which it validates and merges
without numpy (one VMAX of a pair cost ~20 us in numpy conversions)."""


def vmax(
    db: Replica, key: bytes, indices: Sequence[int], values: Sequence[int], now_ms: int
) -> int:
    """VMAX: raise each index to at least its value; how many indices grew."""
    db.get_typed(key, KIND_VECTOR, now_ms)  # WrongTypeError before anything is validated
    if len(indices) <= _FEW_PAIRS:  # the lattice checks Python ints itself: no numpy
        pairs: Pairs | FewPairs = (list(indices), list(values))
    else:
        idx = np.array(indices, dtype=np.uint64)
        val = np.array(values, dtype=np.uint64)
        pairs = _VECTOR.set_max(idx, val)  # BoundsError for a value outside 0..2**63-1
    result = write_pairs(db, key, _VECTOR.schema, pairs, now_ms)
    if result.delta is None:
        return 0
    return sum(len(vector) for _, vector in result.delta.slices())


def vget(db: Replica, key: bytes, now_ms: int) -> list[tuple[int, int]]:
    """VGET: the non-zero ``(index, value)`` pairs by index (empty when absent).

    Max registers are vectors too (slot 0), so VGET reads them as well.
    """
    entry = db.get(key, now_ms)
    if entry is None or entry.schema is None:
        return []
    if entry.schema.kind not in (KIND_VECTOR, KIND_MAXREG):
        raise WrongTypeError(f"VGET of a {entry.schema.kind} key")
    return entry.vector.items()
