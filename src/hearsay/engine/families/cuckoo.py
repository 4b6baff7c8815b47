"""Cuckoo filters on the database: CF.RESERVE, ADD/ADDNX/INSERT/INSERTNX, EXISTS/MEXISTS,
DEL, COUNT, INFO, SCANDUMP and LOADCHUNK (RedisBloom's rm_cuckoo.c).

Departures from RedisBloom that the lattice forces (see :mod:`hearsay.sketch.cuckoo`): a
relocation's victims are picked by the item's hash (a bucket holds counts, not positions),
and one call moves at most ``RELOCATION_MOVES_MAX`` copies; CF.DEL removes a copy added on
any node; CF.LOADCHUNK raises the filter to the chunk's copies (loading into an existing
filter of the same parameters keeps what it holds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from hearsay.engine.families.common import (
    KeyExistsError,
    KeyMissingError,
    ShapeMismatchError,
    required_view_and_slices,
    schema_of,
    view_and_slices,
    write_pairs,
)
from hearsay.engine.replica import Replica
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.cuckoo import ADDED, FULL, PRESENT, CuckooFilter, CuckooInfo
from hearsay.sketch.schemas import KIND_CUCKOO
from hearsay.sketch.views import view_as

__all__ = [
    "ADDED",
    "CAPACITY_DEFAULT",
    "FULL",
    "PRESENT",
    "add",
    "count",
    "delete",
    "exists",
    "info",
    "load_chunk",
    "reserve",
    "scan_dump",
]

CAPACITY_DEFAULT: Final = 1024
"""The capacity of a filter CF.ADD / CF.INSERT create (RedisBloom's default)."""

_Found = tuple[CuckooFilter, dict[str, MaxVector]]


def _entry(db: Replica, key: bytes, now_ms: int) -> _Found | None:
    return view_and_slices(db, key, KIND_CUCKOO, CuckooFilter, now_ms)


def _required(db: Replica, key: bytes, now_ms: int) -> _Found:
    return required_view_and_slices(db, key, KIND_CUCKOO, CuckooFilter, now_ms, missing="not found")


def reserve(db: Replica, key: bytes, params: tuple[int, int, int, int], now_ms: int) -> None:
    """CF.RESERVE of ``(capacity, bucket size, max iterations, expansion)``: KeyExistsError
    when the key exists (SketchParameterError for sizes the filter cannot have)."""
    view = CuckooFilter(*params)
    if db.get(key, now_ms) is not None:
        raise KeyExistsError("item exists")
    db.write_own(key, view.schema, MaxVector(), now_ms)


def add(
    db: Replica,
    key: bytes,
    items: Sequence[bytes],
    now_ms: int,
    *,
    only_new: bool,
    capacity: int | None,
) -> list[int]:
    """CF.ADD / ADDNX / INSERT / INSERTNX (and pipelined runs of them): per item, ADDED,
    PRESENT (``only_new`` and it already is) or FULL. A missing key is created with
    ``capacity`` (KeyMissingError when it is None: NOCREATE). Items are added in turn, each
    seeing the ones before, and written at once (:meth:`CuckooFilter.add_items`)."""
    entry = db.get_typed(key, KIND_CUCKOO, now_ms)
    if entry is None:
        if capacity is None:
            raise KeyMissingError("not found")
        reserve(db, key, (capacity, 2, 20, 1), now_ms)
        entry = db.get_typed(key, KIND_CUCKOO, now_ms)
        assert entry is not None, "just reserved"
    view = view_as(schema_of(entry), CuckooFilter)
    # (the entry's own table, in no order: a batch only sums over the slices)
    replies, pairs = view.add_items(entry.slice_table(), db.origin, items, only_new=only_new)
    if len(pairs[0]):
        write_pairs(db, key, view.schema, pairs, now_ms)
    return replies


def exists(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> list[bool]:
    """CF.EXISTS / CF.MEXISTS: a missing key holds nothing (as RedisBloom answers)."""
    found = _entry(db, key, now_ms)
    if found is None:
        return [False] * len(items)
    view, slices = found
    return view.exists(slices, items)


def count(db: Replica, key: bytes, item: bytes, now_ms: int) -> int:
    """CF.COUNT: 0 for a missing key."""
    found = _entry(db, key, now_ms)
    if found is None:
        return 0
    view, slices = found
    return view.count(slices, item)


def delete(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> list[bool]:
    """CF.DEL (and pipelined runs of it): per item whether one copy was removed, on every
    node (KeyMissingError for a missing key)."""
    view, slices = _required(db, key, now_ms)
    replies, pairs = view.delete_items(slices, db.origin, items)
    if len(pairs[0]):
        write_pairs(db, key, view.schema, pairs, now_ms)
    return replies


def info(db: Replica, key: bytes, now_ms: int) -> CuckooInfo:
    """CF.INFO (KeyMissingError for a missing key)."""
    view, slices = _required(db, key, now_ms)
    return view.info(slices)


def scan_dump(db: Replica, key: bytes, cursor: int, now_ms: int) -> tuple[int, bytes | None]:
    """CF.SCANDUMP: ``(next cursor, chunk)``; cursor 0 starts, ``(0, None)`` ends. Cursor
    ``c > 0`` names the live entries from the ``(c - 1)``-th on, so every chunk but the last
    ends where the next starts; each chunk carries the filter's parameters."""
    view, slices = _required(db, key, now_ms)
    start = max(0, cursor - 1)
    if cursor > 0:
        chunk, n = view.dump_chunk(slices, start)
        if n == 0:
            return 0, None
        return start + n + 1, chunk
    chunk, n = view.dump_chunk(slices, 0)
    return n + 1, chunk


def load_chunk(db: Replica, key: bytes, chunk: bytes, now_ms: int) -> None:
    """CF.LOADCHUNK: ChunkError for a chunk CF.SCANDUMP did not make, ShapeMismatchError when
    the key holds a filter of other parameters; a missing key is created."""
    view, entries = CuckooFilter.parse_chunk(chunk)
    found = _entry(db, key, now_ms)
    if found is None:
        db.write_own(key, view.schema, MaxVector(), now_ms)
        found = _required(db, key, now_ms)
    held, slices = found
    if held.schema != view.schema:
        raise ShapeMismatchError("the chunk's filter has other parameters than the key's")
    pairs = held.load(slices, db.origin, entries)
    if pairs[0]:
        write_pairs(db, key, view.schema, pairs, now_ms)
