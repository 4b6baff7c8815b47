"""Bloom filters on the database: BF.RESERVE, BF.ADD / MADD / INSERT, BF.EXISTS / MEXISTS,
BF.INFO, BF.CARD and hearsay's BF.MERGE.

New filters are RedisBloom's scalable chains (:mod:`hearsay.sketch.bloom`): BF.RESERVE and the
auto-create of BF.ADD / BF.MADD / BF.INSERT make one with expansion 2 unless told otherwise,
as RedisBloom does. Keys made before chains existed stay plain fixed-size filters that are
never refused. Whether a filter is full is decided from its merged bits, so every node that
holds the same bits decides the same; the number of items is estimated from them (two
replicas cannot count adds exactly).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
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
from hearsay.sketch.bloom import CHAIN_MADD_BITS_ITEMS_MAX, BloomFilter, BloomInfo
from hearsay.sketch.schemas import KIND_BLOOM
from hearsay.sketch.slots import FewPairs, Pairs
from hearsay.sketch.views import view_as

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_ERROR_RATE",
    "DEFAULT_EXPANSION",
    "BloomAdds",
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
DEFAULT_EXPANSION: Final = 2
"""RedisBloom's ``BF_DEFAULT_EXPANSION``."""


def _bloom_entry(db: Replica, key: bytes, now_ms: int) -> tuple[BloomFilter, MaxVector] | None:
    entry = db.get_typed(key, KIND_BLOOM, now_ms)
    if entry is None:
        return None
    return view_as(schema_of(entry), BloomFilter), entry.vector


@dataclass(frozen=True, slots=True)
class BloomCreate:
    """How BF.RESERVE, and BF.ADD / BF.MADD / BF.INSERT on a missing key, create a filter
    (None: they must not). ``expansion`` 0 is NONSCALING."""

    error_rate: float = DEFAULT_ERROR_RATE
    capacity: int = DEFAULT_CAPACITY
    expansion: int = DEFAULT_EXPANSION

    def view(self) -> BloomFilter:
        """The new filter's view (SketchParameterError when it cannot be built)."""
        return _created(self)


@functools.lru_cache(maxsize=64)  # BF.ADD to new keys: the same few shapes again and again
def _created(create: BloomCreate) -> BloomFilter:
    return BloomFilter.chain(create.error_rate, create.capacity, create.expansion)


@dataclass(slots=True)
class BloomAdds:
    """Per item, whether it was new; None where it was refused because the filter is full
    and cannot grow (``scaling``: a scaling filter at its last sub-filter, else NONSCALING).
    Read-only by convention (one per BF.ADD: a frozen constructor costs more)."""

    added: list[bool | None]
    scaling: bool = False


def reserve(db: Replica, key: bytes, create: BloomCreate, now_ms: int) -> None:
    """BF.RESERVE: KeyExistsError when the key exists."""
    if _bloom_entry(db, key, now_ms) is not None:
        raise KeyExistsError("item exists")
    view = create.view()  # SketchParameterError when too large
    db.write_own(key, view.schema, MaxVector(), now_ms)


def add(
    db: Replica,
    key: bytes,
    items: Sequence[bytes],
    now_ms: int,
    create: BloomCreate | None = BloomCreate(),
) -> BloomAdds:
    """BF.ADD / BF.MADD / BF.INSERT: per item, whether it was new (None: refused as full).

    A missing key is created as ``create`` says, or KeyMissingError when ``create`` is None.
    """
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        if create is None:
            raise KeyMissingError("not found")
        view, vector = create.view(), MaxVector()
    else:
        view, vector = found
    if view.expansion is None:  # a plain filter: never full
        pairs, flags = view.madd(vector, items)
        write_pairs(db, key, view.schema, pairs, now_ms)
        return BloomAdds([bool(flag) for flag in flags.tolist()])

    def write(pairs: Pairs | FewPairs) -> None:
        write_pairs(db, key, view.schema, pairs, now_ms)

    def reread() -> MaxVector:
        found = _bloom_entry(db, key, now_ms)
        assert found is not None, "the key was just written"
        return found[1]

    return chain_add(view, vector, items, write, reread)


def chain_add(
    view: BloomFilter,
    vector: MaxVector,
    items: Sequence[bytes],
    write: Callable[[Pairs | FewPairs], None],
    reread: Callable[[], MaxVector],
) -> BloomAdds:
    """:meth:`BloomFilter.chain_madd` of ``items`` into ``vector`` in passes, ``write``
    storing each pass's pairs and ``reread`` giving the vector the next pass reads (a key's,
    or a windowed key's slice): only when there is a next pass (reading the key again after
    the last was ~8% of a BF.ADD). Bounded: a pass answers up to 16,384 items (1,000 read in
    Python) or starts a sub-filter (64 at most)."""
    added: list[bool | None] = []
    window = CHAIN_MADD_BITS_ITEMS_MAX + 1  # (a pass answers fewer: one more says "more")
    while True:  # (each pass answers an item at least)
        # Only a pass's worth of items is copied: slicing off what was answered copied the
        # rest at every pass (~8% of a BF.MADD of 200,000 items, 30 passes).
        adds = view.chain_madd(vector, items[len(added) : len(added) + window])
        added += adds.added
        if not adds.more:
            write(adds.pairs)  # (also when empty: a missing key is made)
            return BloomAdds(added, scaling=bool(view.expansion))
        if len(adds.pairs[0]):  # (an item held already writes nothing)
            write(adds.pairs)
            vector = reread()


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
