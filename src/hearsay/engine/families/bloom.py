"""Bloom filters on the database: BF.RESERVE, BF.ADD / MADD / INSERT, BF.EXISTS / MEXISTS,
BF.INFO, BF.CARD and hearsay's BF.MERGE.

Departure from RedisBloom that the lattice forces: filters never scale (no EXPANSION) and are
never refused as "full": the number of items is estimated from the set bits (two replicas
cannot count adds exactly), so a refusal would be a guess that differs between nodes. Past
capacity the false-positive rate grows instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from hearsay.engine.families.common import (
    KeyExistsError,
    KeyMissingError,
    ShapeMismatchError,
    schema_of,
    write_pairs,
)
from hearsay.engine.replica import Replica
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.bloom import BloomFilter, BloomInfo
from hearsay.sketch.schemas import KIND_BLOOM
from hearsay.sketch.views import view_as

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_ERROR_RATE",
    "BloomCreate",
    "add",
    "card",
    "exists",
    "info",
    "merge",
    "reserve",
]

DEFAULT_ERROR_RATE: Final = 0.01
"""RedisBloom's default error rate for a filter created by BF.ADD / BF.INSERT."""
DEFAULT_CAPACITY: Final = 100
"""RedisBloom's default capacity for a filter created by BF.ADD / BF.INSERT."""


def _bloom_entry(db: Replica, key: bytes, now_ms: int) -> tuple[BloomFilter, MaxVector] | None:
    entry = db.get_typed(key, KIND_BLOOM, now_ms)
    if entry is None:
        return None
    return view_as(schema_of(entry), BloomFilter), entry.vector


def reserve(db: Replica, key: bytes, error_rate: float, capacity: int, now_ms: int) -> None:
    """BF.RESERVE (always non-scaling): KeyExistsError when the key exists."""
    if _bloom_entry(db, key, now_ms) is not None:
        raise KeyExistsError("item exists")
    view = BloomFilter.reserve(error_rate, capacity)  # SketchParameterError when too large
    db.write_own(key, view.schema, MaxVector(), now_ms)


@dataclass(frozen=True, slots=True)
class BloomCreate:
    """How BF.ADD / BF.MADD / BF.INSERT create a missing filter (None: they must not)."""

    error_rate: float = DEFAULT_ERROR_RATE
    capacity: int = DEFAULT_CAPACITY


def add(
    db: Replica,
    key: bytes,
    items: Sequence[bytes],
    now_ms: int,
    create: BloomCreate | None = BloomCreate(),
) -> list[bool]:
    """BF.ADD / BF.MADD / BF.INSERT: per item, whether it was new.

    A missing key is created as ``create`` says, or KeyMissingError when ``create`` is None.
    """
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        if create is None:
            raise KeyMissingError("not found")
        view, vector = BloomFilter.reserve(create.error_rate, create.capacity), MaxVector()
    else:
        view, vector = found
    pairs, added = view.madd(vector, items)
    write_pairs(db, key, view.schema, pairs, now_ms)
    return [bool(flag) for flag in added.tolist()]


def exists(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> list[bool]:
    """BF.EXISTS / BF.MEXISTS: per item, whether it may have been added (False when absent)."""
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        return [False] * len(items)
    view, vector = found
    return [bool(flag) for flag in view.mexists(vector, items).tolist()]


def info(db: Replica, key: bytes, now_ms: int) -> BloomInfo:
    """BF.INFO: KeyMissingError when absent."""
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        raise KeyMissingError("not found")
    view, vector = found
    return view.info(vector)


def card(db: Replica, key: bytes, now_ms: int) -> int:
    """BF.CARD: the estimated number of items (0 when absent)."""
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        return 0
    view, vector = found
    return view.card(vector)


def merge(db: Replica, dest: bytes, sources: Sequence[bytes], now_ms: int) -> None:
    """BF.MERGE (hearsay's): union of equal-shaped filters into ``dest``.

    Missing sources are skipped; a missing ``dest`` takes the first existing source's shape;
    KeyMissingError when neither exists; ShapeMismatchError when shapes differ.
    """
    target = _bloom_entry(db, dest, now_ms)
    view = None if target is None else target[0]
    union = MaxVector()
    for source in sources:
        found = _bloom_entry(db, source, now_ms)
        if found is None:
            continue
        other, vector = found
        if view is None:
            view = other
        elif other.shape() != view.shape():
            raise ShapeMismatchError(
                f"Bloom filters of different shapes cannot be merged: {view.bits} bits / "
                f"{view.hashes} hashes vs {other.bits} bits / {other.hashes} hashes"
            )
        union.merge(vector)
    if view is None:
        raise KeyMissingError("not found")
    db.write_own(dest, view.schema, union, now_ms)
