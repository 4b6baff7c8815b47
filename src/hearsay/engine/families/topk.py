"""Top-K on the database: TOPK.RESERVE, ADD, INCRBY, QUERY, COUNT, LIST and INFO (RedisBloom's
rm_topk.c).

Each node writes only its own slice (its HeavyKeeper and its list, :mod:`hearsay.sketch.topk`);
the reads merge every node's slice, so every node that holds the same slices answers the same.
Departures from RedisBloom that the lattice forces:

- TOPK.ADD / INCRBY reply the item expelled from *this node's* list; the list the reads give
  is the merge of every node's (the top ``k`` of the items some node lists, counts summed over
  nodes), so an item heavy overall but in no node's list is missed.
- TOPK.COUNT is the count the merged list uses (per node: its listed count, else its
  HeavyKeeper estimate; summed), so it agrees with TOPK.LIST WITHCOUNT.
"""

from __future__ import annotations

from collections.abc import Sequence

from hearsay.engine.families.common import (
    KeyExistsError,
    KeyMissingError,
    required_view_and_slices,
    schema_of,
    write_pairs,
)
from hearsay.engine.replica import Replica
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.schemas import KIND_TOPK
from hearsay.sketch.topk import TopK, TopKInfo
from hearsay.sketch.views import view_as

__all__ = ["add", "check", "count", "info", "listed", "query", "reserve"]

MISSING = "TopK: key does not exist"


def _required(db: Replica, key: bytes, now_ms: int) -> tuple[TopK, dict[str, MaxVector]]:
    return required_view_and_slices(db, key, KIND_TOPK, TopK, now_ms, missing=MISSING)


def check(db: Replica, key: bytes, now_ms: int) -> TopK:
    """The key's view; KeyMissingError / WrongTypeError first, as RedisBloom checks the key
    before the items."""
    return _required(db, key, now_ms)[0]


def reserve(db: Replica, key: bytes, shape: tuple[int, int, int, float], now_ms: int) -> None:
    """TOPK.RESERVE: KeyExistsError when the key exists (of any type, as RedisBloom)."""
    if db.get(key, now_ms) is not None:
        raise KeyExistsError("TopK: key already exists")
    view = TopK(*shape)  # (k, width, depth, decay); SketchParameterError past the bounds
    db.write_own(key, view.schema, MaxVector(), now_ms)


def add(
    db: Replica, key: bytes, calls: Sequence[Sequence[tuple[bytes, int]]], now_ms: int
) -> list[list[bytes | None]]:
    """TOPK.ADD / INCRBY, one or more calls in turn: per call, per item, the item expelled
    from this node's list (None when none was). Reads only this node's own slice."""
    entry = db.get_typed(key, KIND_TOPK, now_ms)
    if entry is None:
        raise KeyMissingError(MISSING)
    view = view_as(schema_of(entry), TopK)
    pairs, replies = view.add({db.origin: entry.slice(db.origin)}, db.origin, calls)
    if pairs[0]:
        write_pairs(db, key, view.schema, pairs, now_ms)
    return replies


def query(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> list[bool]:
    """TOPK.QUERY: whether each item is in the merged list."""
    view, slices = _required(db, key, now_ms)
    return view.query(slices, items)


def count(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> list[int]:
    """TOPK.COUNT: each item's count summed over every node's slice."""
    view, slices = _required(db, key, now_ms)
    return view.count(slices, items)


def listed(db: Replica, key: bytes, now_ms: int) -> list[tuple[bytes, int]]:
    """TOPK.LIST: the merged list, largest count first."""
    view, slices = _required(db, key, now_ms)
    return view.top(slices)


def info(db: Replica, key: bytes, now_ms: int) -> TopKInfo:
    """TOPK.INFO: k, width, depth, decay."""
    return check(db, key, now_ms).info()
