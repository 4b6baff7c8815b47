"""GET of the two families Redis calls strings: a counter's value, an HLL's Redis bytes.

Why a module: GET and STRLEN read either family, so they belong to neither.
"""

from __future__ import annotations

from typing import Final

from hearsay.base.errors import WrongTypeError
from hearsay.engine.families.hll import PrecisionMismatchError, hll_of
from hearsay.engine.replica import Replica
from hearsay.sketch.counter import PNCounter
from hearsay.sketch.hll_math import REDIS_PRECISION
from hearsay.sketch.schemas import KIND_COUNTER, KIND_HLL

__all__ = ["get_value", "get_values"]

_COUNTER: Final = PNCounter()


def get_value(db: Replica, key: bytes, now_ms: int) -> bytes | None:
    """GET: a counter's value as decimal text, an HLL's Redis bytes, None when absent.

    WrongTypeError for other kinds; PrecisionMismatchError for an HLL whose precision is not
    Redis's 14 (Redis's format cannot hold it).
    """
    entry = db.get(key, now_ms)
    if entry is None or entry.schema is None:
        return None
    kind = entry.schema.kind
    if kind == KIND_COUNTER:
        return str(_COUNTER.get(entry.slice_dict())).encode()
    if kind == KIND_HLL:
        view = hll_of(entry.schema)
        if view.precision != REDIS_PRECISION:
            raise PrecisionMismatchError(view.precision, REDIS_PRECISION)
        return view.to_redis(entry.vector)
    raise WrongTypeError(f"GET of a {kind} key")


def get_values(db: Replica, keys: list[bytes], now_ms: int) -> list[bytes | None]:
    """MGET: :func:`get_value` of each key, None where GET would refuse the key's type or
    precision (Redis's MGET answers nil for a key that holds no string, never WRONGTYPE)."""
    values: list[bytes | None] = []
    for key in keys:
        try:
            values.append(get_value(db, key, now_ms))
        except (WrongTypeError, PrecisionMismatchError):
            values.append(None)
    return values
