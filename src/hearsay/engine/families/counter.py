"""Counters on the database: INCR, DECR, INCRBY, DECRBY (a PN counter per key)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from hearsay.base.errors import WrongTypeError
from hearsay.engine.families.common import write_pairs
from hearsay.engine.replica import Replica
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.counter import PNCounter
from hearsay.sketch.schemas import KIND_COUNTER, KIND_HLL

__all__ = ["HllNotIntegerError", "decrby", "incrby", "incrby_run"]


class HllNotIntegerError(WrongTypeError):
    """INCR and friends on an HLL: Redis says "value is not an integer or out of range"."""


_COUNTER: Final = PNCounter()


def _counter_slices(db: Replica, key: bytes, now_ms: int) -> Mapping[str, MaxVector]:
    try:
        entry = db.get_typed(key, KIND_COUNTER, now_ms)
    except WrongTypeError:
        other = db.get(key, now_ms)
        if other is not None and other.schema is not None and other.schema.kind == KIND_HLL:
            raise HllNotIntegerError("key holds a HyperLogLog") from None
        raise
    return {} if entry is None else entry.slice_table()  # (read only)


def incrby(db: Replica, key: bytes, amount: int, now_ms: int) -> int:
    """INCRBY (INCR, DECR: amount +-1): the new value; BoundsError on overflow."""
    slices = _counter_slices(db, key, now_ms)
    pairs, value = _COUNTER.incrby(slices, db.origin, amount)
    write_pairs(db, key, _COUNTER.schema, pairs, now_ms)
    return value


def decrby(db: Replica, key: bytes, amount: int, now_ms: int) -> int:
    """DECRBY: the new value; ``-2**63`` is refused as Redis refuses it."""
    slices = _counter_slices(db, key, now_ms)
    pairs, value = _COUNTER.decrby(slices, db.origin, amount)
    write_pairs(db, key, _COUNTER.schema, pairs, now_ms)
    return value


def incrby_run(db: Replica, key: bytes, amounts: Sequence[int], now_ms: int) -> list[int]:
    """INCRBY of each of ``amounts`` in turn (a pipeline to one key), as one write.

    The values after each call, for the calls before the first that :func:`incrby` would
    refuse (an overflow): the caller runs that one and the rest one by one.
    """
    slices = _counter_slices(db, key, now_ms)
    pairs, values = _COUNTER.incrby_run(slices, db.origin, amounts)
    if values:
        write_pairs(db, key, _COUNTER.schema, pairs, now_ms)
    return values
