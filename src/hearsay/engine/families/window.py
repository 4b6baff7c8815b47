"""Windowed HLLs, Bloom filters, count-min sketches and Top-Ks on the database
(``sketch/window.py``).

What each command does on a windowed key: a write raises the slice of the current time (for
count-min and Top-K, this node's own part of it) with exactly the plain family's pairs; a read
combines the slices live at ``now_ms`` (HLL: register-wise max; Bloom: an item is present when
one live slice holds all its bits; count-min: the sum; Top-K: every live ``<n>/<origin>``
slice is one origin's HeavyKeeper and list, merged as the plain Top-K merges its origins').
Creation is the only way a key becomes windowed (``WINDOW`` of HEARSAY.PFRESERVE, BF.RESERVE,
CMS.INITBYDIM / INITBYPROB, TOPK.RESERVE); PFADD, BF.ADD and the rest create plain keys as
before.

Replies, where a plain key's has no obvious windowed meaning: a write answers what it did to
the current slice, as the plain command answers what it did to the key (PFADD: 1 when a
register of the current slice rose; BF.ADD: 1 when the item set a bit there, so re-adding an
item an older slice holds renews it and answers 1 once per slice); CMS.INCRBY's estimates
and CMS.INFO's count are over the window; TOPK.ADD answers the item expelled from this node's
list of the current slice, as the plain one answers of this node's list). BF.MERGE
and CMS.MERGE of windowed keys are refused (their slices would have to move between keys of
other windows); PFMERGE into a windowed key adds the sources' registers to its current slice,
except that a windowed source of the same window and precision gives each of its live slices
to the slice of the same number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import HearsayError, WrongTypeError
from hearsay.engine.families.bloom import BloomAdds, chain_add
from hearsay.engine.families.common import KeyExistsError, schema_of
from hearsay.engine.families.hll import (
    NotAnHllError,
    PrecisionMismatchError,
    _hll_pairs,  # PFADD's pairs: a few members as Python ints, as the plain PFADD's
    hll_of,
)
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sketch import hll_math
from hearsay.sketch.bloom import BloomFilter, BloomInfo
from hearsay.sketch.countmin import CmsInfo, CountMinSketch
from hearsay.sketch.hll_view import HyperLogLog
from hearsay.sketch.schemas import KIND_BLOOM, KIND_CMS, KIND_COUNTER, KIND_HLL, KIND_TOPK
from hearsay.sketch.slots import FewPairs, Pairs
from hearsay.sketch.topk import TopK, TopKInfo
from hearsay.sketch.views import view_as
from hearsay.sketch.window import (
    KIND_WBLOOM,
    KIND_WCMS,
    KIND_WHLL,
    KIND_WTOPK,
    WindowedView,
)

__all__ = [
    "WindowedMergeError",
    "bf_add",
    "bf_card",
    "bf_exists",
    "bf_info",
    "cms_incrby",
    "cms_info",
    "cms_query",
    "create",
    "hll_bytes",
    "is_windowed",
    "pfadd",
    "pfcount",
    "pfmerge",
    "topk_add",
    "topk_depth",
    "topk_info",
    "topk_live",
    "windowed_kind",
]

_ONE: Final = frozenset({1})
_WINDOWED_KIND: Final = {
    KIND_HLL: KIND_WHLL,
    KIND_BLOOM: KIND_WBLOOM,
    KIND_CMS: KIND_WCMS,
    KIND_TOPK: KIND_WTOPK,
}


class WindowedMergeError(HearsayError):
    """BF.MERGE / CMS.MERGE with a windowed key (not supported)."""


def is_windowed(db: Replica, keys: Sequence[bytes], plain_kind: str, now_ms: int) -> bool:
    """Whether one of ``keys`` is a live windowed key of ``plain_kind``'s family."""
    windowed_kind = _WINDOWED_KIND[plain_kind]
    for key in keys:
        entry = db.get(key, now_ms)
        if entry is not None and entry.schema is not None and entry.schema.kind == windowed_kind:
            return True
    return False


def windowed_kind(plain_kind: str) -> str:
    """The kind of windowed keys of ``plain_kind``'s family."""
    return _WINDOWED_KIND[plain_kind]


def _windowed(
    db: Replica, key: bytes, windowed_kind: str, now_ms: int
) -> tuple[WindowedView, Entry] | None:
    """The view and entry of ``key`` when it is a windowed key of ``windowed_kind``;
    WrongTypeError when it holds something else."""
    entry = db.get_typed(key, windowed_kind, now_ms)
    if entry is None:
        return None
    return view_as(schema_of(entry), WindowedView), entry


def create(db: Replica, key: bytes, schema: Schema, now_ms: int) -> bool:
    """Create windowed ``key`` of ``schema``: False when it exists with exactly that schema,
    KeyExistsError when it holds anything else."""
    entry = db.get(key, now_ms)
    if entry is not None:
        if entry.schema == schema:
            return False
        raise KeyExistsError("key exists")
    db.write(key, schema, {}, now_ms)
    return True


def _write(
    db: Replica,
    key: bytes,
    view: WindowedView,
    number: int,
    pairs: tuple[npt.ArrayLike, npt.ArrayLike],
    *,
    now_ms: int,
) -> bool:
    """One write into slice ``number`` (this node's part of it for count-min); whether
    anything grew. The sweep is told when the slice dies."""
    name = f"{number}/{db.origin}" if view.additive_inside else str(number)
    result = db.write_pairs_to(key, view.schema, name, pairs, now_ms)
    db.windows.schedule(key, view.window.dies_at_ms(number))
    return result.delta is not None


# -- HyperLogLog ---------------------------------------------------------------------------------


def _hll(view: WindowedView) -> HyperLogLog:
    return hll_of(view.plain_schema)


def pfadd(db: Replica, key: bytes, members: Sequence[bytes], now_ms: int) -> int:
    """PFADD into the current slice: 1 when one of its registers rose. A few members whose
    registers the slice holds as high already are answered from a read."""
    view, entry = _whll(db, key, now_ms)
    number = view.window.slice_at(now_ms)
    pairs = _hll_pairs(_hll(view), members)
    indices, ranks = pairs
    if isinstance(indices, list) and isinstance(ranks, list):
        get = entry.slice(str(number)).get
        if len(indices) == 1:  # one member, the commonest PFADD: no generator
            if get(indices[0]) >= ranks[0]:
                return 0
        elif all(get(index) >= rank for index, rank in zip(indices, ranks, strict=True)):
            return 0
    return int(_write(db, key, view, number, pairs, now_ms=now_ms))


def pfadd_run(db: Replica, key: bytes, calls: Sequence[Sequence[bytes]], now_ms: int) -> list[int]:
    """PFADD ``key`` once per member list: one hash batch and one write, each reply what the
    call would get in turn (the plain run's rule, on the current slice). Calls of one member
    each (the common pipeline) are followed in turn over Python ints, a register named twice
    included; others go call by call."""
    if not _ONE.issuperset(map(len, calls)):
        return [pfadd(db, key, call, now_ms) for call in calls]
    view, entry = _whll(db, key, now_ms)
    indices, ranks = _hll(view).add([call[0] for call in calls])
    number = view.window.slice_at(now_ms)
    held = entry.slice(str(number)).values_at(indices).tolist()
    best: dict[int, int] = {}  # registers raised so far in the run: their rank
    replies: list[int] = []
    for index, rank, was in zip(indices.tolist(), ranks.tolist(), held, strict=True):
        if rank > best.get(index, was):
            best[index] = rank
            replies.append(1)
        else:
            replies.append(0)
    if best:
        _write(db, key, view, number, (list(best), list(best.values())), now_ms=now_ms)
    return replies


def _whll(db: Replica, key: bytes, now_ms: int) -> tuple[WindowedView, Entry]:
    found = _windowed(db, key, KIND_WHLL, now_ms)
    if found is None:  # pragma: no cover - only called for an existing windowed key
        raise WrongTypeError("not a windowed HyperLogLog")
    return found


def _registers(view: WindowedView, entry: Entry, now_ms: int) -> npt.NDArray[np.uint8]:
    """The register-wise max of the live slices (the window's HLL), dense."""
    hll = _hll(view)
    union = np.zeros(hll.registers_count, dtype=np.uint8)
    for vector in view.live(entry.slices(), now_ms).values():
        np.maximum(union, hll.registers(vector), out=union)
    return union


def _any_hll(db: Replica, key: bytes, now_ms: int) -> tuple[int, npt.NDArray[np.uint8]] | None:
    """A plain or windowed HLL's precision and registers (None when absent)."""
    entry = db.get(key, now_ms)
    schema = None if entry is None else entry.schema
    if entry is None or schema is None:
        return None
    if schema.kind == KIND_HLL:
        hll = hll_of(schema)
        return hll.precision, hll.registers(entry.vector)
    if schema.kind == KIND_WHLL:
        view = view_as(schema, WindowedView)
        return _hll(view).precision, _registers(view, entry, now_ms)
    if schema.kind == KIND_COUNTER:
        raise NotAnHllError("key holds a counter, not a HyperLogLog")
    raise WrongTypeError(f"key holds {schema.kind}, not a HyperLogLog")


def pfcount(db: Replica, keys: Sequence[bytes], now_ms: int) -> int:
    """PFCOUNT over plain and windowed HLLs: the union of each plain key and each windowed
    key's live slices, at the lowest precision."""
    found = [hll for key in keys if (hll := _any_hll(db, key, now_ms)) is not None]
    if not found:
        return 0
    p = min(precision for precision, _ in found)
    union = np.zeros(1 << p, dtype=np.uint8)
    for _, registers in found:
        np.maximum(union, hll_math.fold(registers, p), out=union)
    return hll_math.count(union)


def hll_bytes(db: Replica, key: bytes, now_ms: int) -> bytes:
    """GET of a windowed HLL: Redis's HLL bytes of the window's union (precision 14 only)."""
    view, entry = _whll(db, key, now_ms)
    hll = _hll(view)
    if hll.precision != hll_math.REDIS_PRECISION:
        raise PrecisionMismatchError(hll.precision, hll_math.REDIS_PRECISION)
    return hll.to_redis(MaxVector.from_dense(_registers(view, entry, now_ms)))


def pfmerge(db: Replica, dest: bytes, sources: Sequence[bytes], now_ms: int) -> None:
    """PFMERGE where ``dest`` or a source is windowed (see the module notes).

    Into a plain (or new) ``dest``: the union of what each source counts now, at ``dest``'s
    precision (the sources' lowest when ``dest`` is new). Into a windowed one: slice by slice
    from windowed sources of its very schema, the others' registers into the current slice.
    """
    target = _windowed_or_none(db, dest, now_ms)
    by_slice: dict[str, MaxVector] = {}
    others: list[tuple[int, npt.NDArray[np.uint8]]] = []
    for key in sources:
        entry = db.get(key, now_ms)
        if target is not None and entry is not None and entry.schema == target.schema:
            for name, vector in target.live(entry.slices(), now_ms).items():
                by_slice.setdefault(name, MaxVector()).merge(vector)
        elif (found := _any_hll(db, key, now_ms)) is not None:
            others.append(found)
    if target is not None:
        p = _hll(target).precision
    else:
        existing = _any_hll(db, dest, now_ms)
        lowest = min((precision for precision, _ in others), default=hll_math.REDIS_PRECISION)
        p = lowest if existing is None else existing[0]
    union = np.zeros(1 << p, dtype=np.uint8)
    for precision, registers in others:
        if precision < p:
            raise PrecisionMismatchError(p, precision)
        np.maximum(union, hll_math.fold(registers, p), out=union)
    if target is None:
        db.write_own(dest, HyperLogLog(p).schema, MaxVector.from_dense(union), now_ms)
        return
    if union.any():
        name = target.slice_name(now_ms, "")
        by_slice.setdefault(name, MaxVector()).merge(MaxVector.from_dense(union))
    if by_slice:
        db.write(dest, target.schema, by_slice, now_ms)
        db.windows.watch(dest, target.schema, by_slice)


def _windowed_or_none(db: Replica, key: bytes, now_ms: int) -> WindowedView | None:
    entry = db.get(key, now_ms)
    if entry is None or entry.schema is None or entry.schema.kind != KIND_WHLL:
        return None
    return view_as(entry.schema, WindowedView)


# -- Bloom filters -------------------------------------------------------------------------------


def _bloom(db: Replica, key: bytes, now_ms: int) -> tuple[WindowedView, BloomFilter, Entry]:
    found = _windowed(db, key, KIND_WBLOOM, now_ms)
    if found is None:  # pragma: no cover - only called for an existing windowed key
        raise WrongTypeError("not a windowed Bloom filter")
    view, entry = found
    return view, view_as(view.plain_schema, BloomFilter), entry


def bf_add(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> BloomAdds:
    """BF.ADD / MADD / INSERT into the current slice: per item, whether it was new there
    (RedisBloom's "newly added", of the current slice: re-adding an item an older slice holds
    renews it and answers 1 once per slice); None where a NONSCALING slice is full.

    Each slice is a filter as BF.RESERVE makes it: a chain that grows sub-filters as it
    fills (or refuses past its capacity when NONSCALING), so a slice given more items than
    the capacity keeps its error rate. Keys made before (one fixed-size filter per slice)
    take every item: one item is read bit by bit over Python ints, as the plain filter's."""
    view, bloom, entry = _bloom(db, key, now_ms)
    number = view.window.slice_at(now_ms)
    current = entry.slice(str(number))
    if bloom.expansion is None:
        if len(items) == 1:  # (madd's own rule for a plain filter)
            get = current.get
            fresh = sorted({p for p in bloom.member_positions(items[0]) if not get(p)})
            if fresh:
                _write(db, key, view, number, (fresh, [1] * len(fresh)), now_ms=now_ms)
            return BloomAdds([bool(fresh)])
        pairs, flags = bloom.madd(current, items)
        if len(pairs[0]):
            _write(db, key, view, number, pairs, now_ms=now_ms)
        return BloomAdds([bool(flag) for flag in flags.tolist()])

    def write(pairs: Pairs | FewPairs) -> None:
        if len(pairs[0]):
            _write(db, key, view, number, pairs, now_ms=now_ms)

    def reread() -> MaxVector:
        return _bloom(db, key, now_ms)[2].slice(str(number))

    return chain_add(bloom, current, items, write, reread)


def bf_exists(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> list[bool]:
    """BF.EXISTS / MEXISTS: whether one live slice holds all of an item's bits (each item
    hashed once)."""
    view, bloom, entry = _bloom(db, key, now_ms)
    found = np.zeros(len(items), dtype=bool)
    if bloom.expansion is not None:  # each slice a chain: its every sub-filter
        for vector in view.live(entry.slices(), now_ms).values():
            found |= bloom.mexists(vector, items)
        return [bool(flag) for flag in found.tolist()]
    if len(items) == 1:
        positions = np.array([bloom.member_positions(items[0])], dtype=np.uint32)
    else:
        positions = bloom.positions(items)
    for vector in view.live(entry.slices(), now_ms).values():
        found |= (vector.values_at(positions) != 0).all(axis=1)
    return [bool(flag) for flag in found.tolist()]


def _union(view: WindowedView, entry: Entry, now_ms: int) -> MaxVector:
    union = MaxVector()
    for vector in view.live(entry.slices(), now_ms).values():
        union.merge(vector)
    return union


def bf_info(db: Replica, key: bytes, now_ms: int) -> tuple[BloomInfo, WindowedView]:
    """BF.INFO over the window's union of live slices, and the window."""
    view, bloom, entry = _bloom(db, key, now_ms)
    return bloom.info(_union(view, entry, now_ms)), view


def bf_card(db: Replica, key: bytes, now_ms: int) -> int:
    """BF.CARD: estimated items in the window (from the live slices' union)."""
    view, bloom, entry = _bloom(db, key, now_ms)
    return bloom.card(_union(view, entry, now_ms))


# -- count-min -----------------------------------------------------------------------------------


def _cms(db: Replica, key: bytes, now_ms: int) -> tuple[WindowedView, CountMinSketch, Entry]:
    found = _windowed(db, key, KIND_WCMS, now_ms)
    if found is None:  # pragma: no cover - only called for an existing windowed key
        raise WrongTypeError("not a windowed count-min sketch")
    view, entry = found
    return view, view_as(view.plain_schema, CountMinSketch), entry


def cms_incrby(
    db: Replica, key: bytes, items: Sequence[bytes], increments: Sequence[int], now_ms: int
) -> list[int]:
    """CMS.INCRBY into this node's part of the current slice: estimates over the window."""
    view, cms, entry = _cms(db, key, now_ms)
    number = view.window.slice_at(now_ms)
    own = f"{number}/{db.origin}"
    # (the slices as held, in no order and empty ones among them: a count-min's reads sum
    # them, so no sort and generator over its ten live slices at every write)
    live = view.live(entry.slice_table().items(), now_ms)
    if len(items) == 1:  # one item: Python ints, no arrays (the plain key's fast path)
        few, estimate = cms.incrby_item(live, own, items[0], increments[0])
        _write(db, key, view, number, few, now_ms=now_ms)
        return [estimate]
    pairs, estimates = cms.incrby(live, own, items, increments)
    _write(db, key, view, number, pairs, now_ms=now_ms)
    return estimates


def cms_query(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> list[int]:
    """CMS.QUERY over the live slices."""
    view, cms, entry = _cms(db, key, now_ms)
    return cms.query(view.live(entry.slice_table().items(), now_ms), items)  # (sums: any order)


def cms_info(db: Replica, key: bytes, now_ms: int) -> tuple[CmsInfo, WindowedView]:
    """CMS.INFO: width, depth and the count over the window; and the window."""
    view, cms, entry = _cms(db, key, now_ms)
    return cms.info(view.live(entry.slices(), now_ms)), view


# -- Top-K ---------------------------------------------------------------------------------------


def _topk(db: Replica, key: bytes, now_ms: int) -> tuple[WindowedView, TopK, Entry]:
    found = _windowed(db, key, KIND_WTOPK, now_ms)
    if found is None:  # pragma: no cover - only called for an existing windowed key
        raise WrongTypeError("not a windowed Top-K")
    view, entry = found
    return view, view_as(view.plain_schema, TopK), entry


def topk_add(
    db: Replica, key: bytes, calls: Sequence[Sequence[tuple[bytes, int]]], now_ms: int
) -> list[list[bytes | None]]:
    """TOPK.ADD / INCRBY into this node's part of the current slice, one or more calls in
    turn: per call, per item, the item expelled from that part's list (None when none was)."""
    view, topk, entry = _topk(db, key, now_ms)
    number = view.window.slice_at(now_ms)
    own = f"{number}/{db.origin}"
    pairs, replies = topk.add({own: entry.slice(own)}, own, calls)
    if pairs[0]:
        _write(db, key, view, number, pairs, now_ms=now_ms)
    return replies


def topk_depth(db: Replica, key: bytes, now_ms: int) -> int:
    """A windowed Top-K's depth (the per-call item bound), without reading its slices."""
    return _topk(db, key, now_ms)[1].depth


def topk_live(db: Replica, key: bytes, now_ms: int) -> tuple[TopK, dict[str, MaxVector]]:
    """A windowed Top-K's plain view and its live slices: the reads (TOPK.LIST, QUERY, COUNT)
    take each as one origin's HeavyKeeper and list."""
    view, topk, entry = _topk(db, key, now_ms)
    return topk, view.live(entry.slices(), now_ms)


def topk_info(db: Replica, key: bytes, now_ms: int) -> tuple[TopKInfo, WindowedView]:
    """TOPK.INFO: k, width, depth, decay; and the window."""
    view, topk, _ = _topk(db, key, now_ms)
    return topk.info(), view
