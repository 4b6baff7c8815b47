"""The cuckoo filter view: RedisBloom's CF.* over per-origin counts of adds and deletes.

A cuckoo filter stores an item's 8-bit fingerprint in one of its two buckets; CF.DEL removes
a copy. Deletes make it non-monotone, so it cannot be one shared max-vector. Here it is a
*counting* structure keyed by ``(sub-filter, bucket, fingerprint)``: each origin keeps, in its
own slice, the running number of adds (slot ``2 p``) and of deletes (slot ``2 p + 1``) of
fingerprint-pair ``p = base(sub) + bucket * 256 + fingerprint``. Both counts only grow, so the
per-origin max-merge is a lattice: any delivery order, duplicates or grouping give the same
slices. A fingerprint's *net* in a bucket is ``sum(adds) - sum(dels)`` over origins (may be
negative); an item's copies in a sub-filter are the nets of its fingerprint in its two buckets
summed (a copy relocated from one to the other is still one copy), and it is present iff it
has a copy in some sub-filter. A bucket's occupancy, what decides whether it has room, is the
sum of its positive nets.

Consequences, and the departures from RedisBloom they bring:

- Slots are keyed by ``(bucket, fingerprint)``, never by a position in the bucket, so two nodes
  adding different fingerprints to the same bucket concurrently both keep theirs.
- CF.DEL on any node raises its own delete count in a bucket where the merged view has a
  copy: it removes an item whichever node added it, everywhere, and it stays removed. Two nodes
  deleting the same single copy concurrently over-delete (copies -1, read as 0); an add then
  raises its own count by the deficit too, so the item it adds is present (never swallowed).
- **Relocation** as RedisBloom's: an add goes to the first sub-filter, oldest first, where one
  of the item's two buckets has room (fewer than ``bucket_size`` in the merged view when the
  write is placed; writers racing on different nodes may overfill a bucket, which reads do not
  mind). When none has, the item evicts a copy from its first bucket in the last sub-filter,
  which moves to its own partner bucket, evicting another if that is full, up to
  ``max_iterations`` moves (:meth:`_Batch._relocate`); a move is a delete in one bucket and an
  add in the other, both counts of the writer, so it keeps every copy whatever other nodes do
  meanwhile (a move racing a CF.DEL of the same copy, or another node's move of it, leaves
  the item's copies right: they are summed over both buckets). Only when that fails too does
  a new sub-filter of ``buckets * expansion**i`` buckets appear (``expansion`` rounded up to a
  power of two, as RedisBloom does); with ``EXPANSION 0``, or past :data:`FILTERS_MAX`
  sub-filters or the 2**32 slot space, the add is refused as "Filter is full"
  (:class:`FilterFullError`). One call moves at most :data:`RELOCATION_MOVES_MAX` copies in
  all (a full filter with a large MAXITERATIONS would otherwise hold the node for seconds):
  past that, its items skip relocation.
- The number of sub-filters is not stored: it is one past the highest sub-filter holding a
  slot in any slice, so two nodes creating sub-filter ``i`` concurrently share it.
- CF.INFO's deletes are CF.DEL's only, as RedisBloom's: each origin also counts the moves its
  relocations made in :data:`MOVES_SLOT` (the delete count of fingerprint 0 in the first
  bucket, a pair no item has: its net is never positive, so it holds no copy and no room),
  and a move's delete is subtracted from the deletes CF.INFO reports. (Filters written
  before this count report their earlier moves as deletes.)

**Hashing** is hearsay's own (cells are never exchanged with RedisBloom): xxh3-64 ``h`` of the
item; fingerprint ``(h >> 32) % 255 + 1``; bucket ``h mod buckets`` and its partner
``bucket XOR (mix(fingerprint) mod buckets)`` (bucket counts are powers of two).
False-positive rate: about ``2 * bucket_size * load / 255`` per sub-filter (0.5% at 30% load
with bucket size 2).
"""

from __future__ import annotations

import bisect
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, cast

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import HearsayError, SketchParameterError
from hearsay.lattice import _sparse
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import INDEX_LIMIT, VALUE_MAX, MaxVector
from hearsay.sketch import _packed
from hearsay.sketch.hashing import member_hash, member_hashes, mix64, mix64_int
from hearsay.sketch.schemas import KIND_CUCKOO, expect_schema
from hearsay.sketch.schemas import cuckoo as cuckoo_schema
from hearsay.sketch.slots import FewPairs, Pairs, Slices, merge_slices

__all__ = [
    "ADDED",
    "COUNT_CLIP",
    "FILTERS_MAX",
    "FINGERPRINTS",
    "FULL",
    "MOVES_SLOT",
    "PRESENT",
    "RELOCATION_MOVES_MAX",
    "ChunkError",
    "CuckooFilter",
    "CuckooInfo",
    "FilterFullError",
]

FINGERPRINTS: Final = 256
"""Fingerprint values per bucket (8-bit fingerprints; 0 is never used)."""
FILTERS_MAX: Final = 32
"""Sub-filters at most (RedisBloom's filters "can grow up to 32 times")."""
RELOCATION_MOVES_MAX: Final = 20_000
"""Copies one call may move in all while relocating (about 0.1 s of CPU): MAXITERATIONS is
per item, up to 65535, and a CF.INSERT of 10,000 items into a full filter would otherwise
try them all."""
_PARTNER_OFFSETS: Final = [mix64_int(fp, 1) for fp in range(256)]
"""Each fingerprint's partner offset (before masking by the sub-filter's buckets)."""
_CHUNK_MAGIC: Final = b"HSCF1"
_CHUNK_HEADER: Final = struct.Struct(">QHHHI")  # capacity, bucket size, max iter, expansion, n
_CHUNK_ENTRY: Final = struct.Struct(">IQ")  # fingerprint-pair index, live copies
CHUNK_ENTRIES_MAX: Final = 4096
"""Live ``(bucket, fingerprint)`` entries per CF.SCANDUMP chunk (at most 48 KiB a chunk)."""

ADDED: Final = 1
PRESENT: Final = 0
FULL: Final = -1
MOVES_SLOT: Final = 1
"""Where an origin counts its relocation moves: the delete slot of pair 0 (sub-filter 0,
bucket 0, fingerprint 0, which no item has), so every read of copies and room ignores it
(a pair's net counts only when positive) and CF.INFO can tell CF.DEL's deletes from moves."""
COUNT_CLIP: Final = 1 << 40
"""A count above this reads as this (no honest node gets near a trillion copies), so sums
over any number of origins stay far inside int64 and no peer's values can wrap them."""
_PAIRS_PER_WINDOW: Final = 500
_WINDOWS_PER_PASS: Final = 128
"""How a batch reads its buckets: a window look-up per bucket and slice (two searches in a
sparse slice's arrays: about a microsecond) or one vectorised pass over each slice for every
bucket its items may touch (about as much as 128 look-ups, plus one for every 500 pairs
held). Look-ups when the items' places are no more than that pass costs: a few items, even on
a filter of many sub-filters (one item visits its places lazily, most take an early one)."""

_Source = tuple[bool, MaxVector, bytes | None]
"""A slice as a batch reads it: the writer's own?, the vector, a sparse one's packed pairs."""
Written = Pairs | FewPairs
"""A batch's pairs: Python ints for a few, arrays for many."""
_SCALAR_ITEMS_MAX: Final = 2
"""CF.EXISTS of up to this many items reads with look-ups in Python ints; more, vectorised."""
_PLACES_PER_READ: Final = 1 << 16
"""A vectorised CF.MEXISTS reads the places of this many items' places at a time."""
_FEW_WRITTEN: Final = 8
"""Up to this many written pairs go to the lattice as Python ints, more as arrays."""


class FilterFullError(HearsayError):
    """No bucket of the item has room and no sub-filter may be added (RedisBloom's
    "Filter is full")."""


class ChunkError(HearsayError):
    """A CF.LOADCHUNK chunk that is not one CF.SCANDUMP made (or is damaged)."""


def _next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def _clipped(values: npt.NDArray[np.unsignedinteger]) -> npt.NDArray[np.int64]:
    clipped: npt.NDArray[np.int64] = np.minimum(values, np.uint64(COUNT_CLIP)).astype(np.int64)
    return clipped


def _top_index(vec: MaxVector) -> int:
    """The highest index holding a value (-1 for none); remembered for a dense vector."""
    return vec.top_index()


def _summed_counts(
    slices: Slices, pairs: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The merged add and delete counts at fingerprint-pair indices (any shape): each
    origin's counts clipped at :data:`COUNT_CLIP`, summed."""
    slots = np.stack([2 * pairs, 2 * pairs + 1], axis=-1)
    total = np.zeros(slots.shape, dtype=np.int64)
    for vec in slices.values():
        total += _clipped(vec.values_at(slots))
    return total[..., 0], total[..., 1]


@dataclass(frozen=True, slots=True)
class CuckooInfo:
    """CF.INFO's fields."""

    size: int
    buckets: int
    filters: int
    inserted: int
    deleted: int
    bucket_size: int
    expansion: int
    max_iterations: int


class CuckooFilter:
    """A stateless cuckoo filter view (its state is the slices of counts)."""

    __slots__ = (
        "_bases",
        "_bucket_size",
        "_buckets",
        "_capacity",
        "_expansion",
        "_geometry",
        "_growth",
        "_max_iterations",
        "_packed_geometry",
        "_schema",
    )

    def __init__(
        self, capacity: int, bucket_size: int = 2, max_iterations: int = 20, expansion: int = 1
    ) -> None:
        self._schema = cuckoo_schema(capacity, bucket_size, max_iterations, expansion)
        self._capacity = int(capacity)
        self._bucket_size = int(bucket_size)
        self._max_iterations = int(max_iterations)
        self._expansion = int(expansion)
        self._growth = _next_pow2(expansion) if expansion else 0
        first = _next_pow2(max(1, capacity // bucket_size))
        if first * FINGERPRINTS * 2 > INDEX_LIMIT:
            raise SketchParameterError(f"CF capacity {capacity} needs more than 2**32 slots")
        # Sub-filter i's buckets and first fingerprint-pair index, while they fit 2**32 slots.
        self._buckets: list[int] = []
        self._bases: list[int] = []
        base = 0
        for sub in range(FILTERS_MAX if self._growth else 1):
            buckets = first * self._growth**sub if sub else first
            if (base + buckets * FINGERPRINTS) * 2 > INDEX_LIMIT:
                break
            self._buckets.append(buckets)
            self._bases.append(base)
            base += buckets * FINGERPRINTS
        # Per sub-filter: the mask of a bucket number and its first bucket's global number.
        self._geometry = [
            (n - 1, b // FINGERPRINTS) for n, b in zip(self._buckets, self._bases, strict=True)
        ]
        self._packed_geometry = b"".join(struct.pack("=QQ", *g) for g in self._geometry)

    @classmethod
    def from_schema(cls, schema: Schema) -> CuckooFilter:
        if schema.kind != KIND_CUCKOO or len(schema.params) != 4:
            raise SketchParameterError(f"not a cuckoo filter schema: {schema}")
        view = cls(*schema.params)
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    # -- hashing ------------------------------------------------------------------------------

    def _hashes(self, items: Sequence[bytes]) -> tuple[list[int], list[int], list[int]]:
        """Each item's hash, fingerprint and partner offset (one vectorised pass; a single
        item in Python ints, which costs less than the arrays)."""
        if len(items) == 1:
            h = member_hash(items[0])
            fp = (h >> 32) % 255 + 1
            return [h], [fp], [mix64_int(fp, 1)]
        hashes = member_hashes(items)
        fps = (hashes >> np.uint64(32)) % np.uint64(255) + np.uint64(1)
        return hashes.tolist(), fps.tolist(), mix64(fps, 1).tolist()

    def _places(self, h: int, alt: int, subs: int) -> Iterator[tuple[int, int]]:
        """An item's distinct ``(sub-filter, global bucket number)`` places in the first
        ``subs`` sub-filters: its first bucket, then its partner unless that is the same."""
        for sub, (mask, start) in enumerate(self._geometry[:subs]):
            first = h & mask
            yield sub, start + first
            second = first ^ (alt & mask)
            if second != first:
                yield sub, start + second

    def _classes(self, h: int, alt: int, subs: int) -> Iterator[tuple[int, int, int]]:
        """An item's ``(sub-filter, first bucket, partner bucket)`` (global numbers; equal
        when its partner is its first bucket) in each of the first ``subs`` sub-filters."""
        for sub, (mask, start) in enumerate(self._geometry[:subs]):
            first = h & mask
            yield sub, start + first, start + (first ^ (alt & mask))

    def _partner(self, sub: int, bucket: int, fp: int) -> int:
        """The other bucket of fingerprint ``fp`` in global bucket ``bucket`` of ``sub``."""
        mask, start = self._geometry[sub]
        return start + ((bucket - start) ^ (_PARTNER_OFFSETS[fp] & mask))

    # -- reading ------------------------------------------------------------------------------

    def filters(self, slices: Slices) -> int:
        """Sub-filters in use: one past the highest holding a slot in any slice (at least 1)."""
        top = -1
        for vec in slices.values():  # (a loop, not max() of a generator: at every CF.ADD)
            held = vec.memo(_top_index, _top_index)
            if held > top:  # noqa: PLR1730 - a call fewer than max() per slice
                top = held
        return bisect.bisect_right(self._bases, top // 2) if top >= 0 else 1

    def _class_copies(self, slices: Slices, pairs: npt.NDArray[np.int64]) -> list[int]:
        """The copies of each fingerprint-pair's item class: its nets over both buckets of
        its sub-filter summed (may be negative)."""
        partners, same = self._partner_pairs(pairs)
        adds, dels = _summed_counts(slices, np.stack([pairs, partners], axis=-1))
        nets = adds - dels
        copies = nets[..., 0] + np.where(same, 0, nets[..., 1])
        return [int(v) for v in copies.tolist()]

    def _partner_pairs(
        self, pairs: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Each fingerprint-pair index's pair in the partner bucket, and whether that is the
        same pair (vectorised :meth:`_partner`)."""
        bases = np.array(self._bases, dtype=np.int64)
        subs = np.searchsorted(bases, pairs, side="right") - 1
        local = pairs - bases[subs]
        buckets, fps = local // FINGERPRINTS, local % FINGERPRINTS
        masks = np.array(self._buckets, dtype=np.int64)[subs] - 1
        offsets = np.array(_PARTNER_OFFSETS, dtype=np.uint64)[fps] & masks.astype(np.uint64)
        partners = buckets ^ offsets.astype(np.int64)
        return bases[subs] + partners * FINGERPRINTS + fps, partners == buckets

    def _item_pairs(
        self, items: Sequence[bytes], subs: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Every item's fingerprint-pair index at each of its places in the first ``subs``
        sub-filters (one row an item, first bucket before partner in each sub-filter), and
        where the partner is the first bucket (one row an item, a column a sub-filter)."""
        hashes, fps, alts = (np.array(v, dtype=np.uint64) for v in self._hashes(items))
        fingerprints = fps.astype(np.int64)
        columns: list[npt.NDArray[np.int64]] = []
        same: list[npt.NDArray[np.bool_]] = []
        for sub in range(min(subs, len(self._buckets))):
            mask = np.uint64(self._buckets[sub] - 1)
            first = hashes & mask
            second = first ^ (alts & mask)
            same.append(first == second)
            start = np.int64(self._bases[sub])
            for bucket in (first, second):
                columns.append(start + bucket.astype(np.int64) * FINGERPRINTS + fingerprints)
        return np.stack(columns, axis=1), np.stack(same, axis=1)

    def _item_copies(self, slices: Slices, item: bytes) -> list[int]:
        """One item's copies (its nets over both its buckets) in each sub-filter in use, in
        Python ints (a few look-ups per slice, no arrays)."""
        (h,), (fp,), (alt,) = self._hashes([item])
        vecs = list(slices.values())
        copies: list[int] = []
        for _, first, second in self._classes(h, alt, self.filters(slices)):
            total = 0
            for bucket in (first,) if second == first else (first, second):
                slot = 2 * (bucket * FINGERPRINTS + fp)
                total += sum(min(vec.get(slot), COUNT_CLIP) for vec in vecs)
                total -= sum(min(vec.get(slot + 1), COUNT_CLIP) for vec in vecs)
            copies.append(total)
        return copies

    def exists(self, slices: Slices, items: Sequence[bytes]) -> list[bool]:
        """CF.EXISTS / CF.MEXISTS: present iff some sub-filter holds a copy (one item by
        look-ups, more in one vectorised read of every item's places)."""
        if len(items) <= _SCALAR_ITEMS_MAX:
            return [any(n > 0 for n in self._item_copies(slices, item)) for item in items]
        subs = self.filters(slices)
        rows = max(1, _PLACES_PER_READ // (2 * subs))  # bounded arrays, however many items
        present: list[bool] = []
        for at in range(0, len(items), rows):
            pairs, same = self._item_pairs(items[at : at + rows], subs)
            adds, dels = _summed_counts(slices, pairs)
            nets = (adds - dels).reshape((*same.shape, 2))
            copies = nets[..., 0] + np.where(same, 0, nets[..., 1])
            present += [bool(v) for v in np.asarray((copies > 0).any(axis=1)).tolist()]
        return present

    def count(self, slices: Slices, item: bytes) -> int:
        """CF.COUNT: the item's fingerprint's copies over its buckets (may overcount, as
        RedisBloom's, when other items share a fingerprint and bucket)."""
        return sum(max(0, n) for n in self._item_copies(slices, item))

    def _all_counts(self, slices: Slices) -> tuple[npt.NDArray[np.int64], list[int], int]:
        """Every item class with copies, as one fingerprint pair of it (the bucket with the
        larger net; sorted) and its copies, and the deletes of every origin. Vectorised:
        CF.INFO and each CF.SCANDUMP chunk read the whole key."""
        parts = [vec.pairs() for _, vec in sorted(slices.items())]
        if not parts:
            return np.zeros(0, np.int64), [], 0
        indices = np.concatenate([i for i, _ in parts]).astype(np.int64)
        values = _clipped(np.concatenate([v for _, v in parts]))
        signed = np.where(indices & 1, -values, values)
        pairs, where = np.unique(indices >> 1, return_inverse=True)
        net = np.zeros(pairs.size, dtype=np.int64)
        np.add.at(net, where, signed)
        # Deletes of CF.DEL only: every move's delete, and its count at MOVES_SLOT, come off.
        deletes = values[(indices & 1) == 1]
        moves = int(values[indices == MOVES_SLOT].sum())
        deleted = max(0, int(deletes.sum()) - 2 * moves)
        partners, _ = self._partner_pairs(pairs)
        classes, member_of = np.unique(np.minimum(pairs, partners), return_inverse=True)
        copies = np.zeros(classes.size, dtype=np.int64)
        np.add.at(copies, member_of, net)
        # Each class's pair with the larger net (ties: the lower pair) stands for it.
        order = np.lexsort((pairs, -net, member_of))
        leaders = order[np.flatnonzero(np.diff(member_of[order], prepend=-1))]
        live = copies > 0
        chosen = pairs[leaders][live]
        counts = copies[live]
        by_pair = np.argsort(chosen)
        return chosen[by_pair], [int(v) for v in counts[by_pair].tolist()], deleted

    def info(self, slices: Slices) -> CuckooInfo:
        """CF.INFO. ``inserted`` is the live copies (RedisBloom's count drops on CF.DEL),
        ``size`` the bytes of the sub-filters' buckets at one byte a fingerprint."""
        filters = self.filters(slices)
        _, copies, deleted = self._all_counts(slices)
        return CuckooInfo(
            size=sum(self._buckets[:filters]) * self._bucket_size,
            buckets=self._buckets[0],
            filters=filters,
            inserted=sum(copies),
            deleted=deleted,
            bucket_size=self._bucket_size,
            expansion=self._expansion,
            max_iterations=self._max_iterations,
        )

    # -- writing ------------------------------------------------------------------------------

    def add_items(
        self,
        slices: Slices,
        origin: str,
        items: Sequence[bytes],
        *,
        only_new: bool,
        by_windows: bool | None = None,
        c_walk: bool = True,
    ) -> tuple[list[int], Written]:
        """CF.ADD / ADDNX / INSERT / INSERTNX by ``origin`` of ``items`` in turn, each seeing
        the ones before: per item ADDED, PRESENT (``only_new`` and it already is) or FULL,
        and the pairs raising ``origin``'s counts (one write for the whole batch).

        An item goes to the first of its places (oldest sub-filter first) whose bucket holds
        fewer than ``bucket_size`` copies, else by relocation in the last sub-filter, else to
        a new sub-filter, and raises its add count there by one plus any deficit an
        over-delete left.
        ``by_windows`` forces one way of reading the buckets, ``c_walk=False`` the walk over
        places in Python rather than C (tests hold them all to one answer).
        """
        if len(items) == 1 and c_walk and by_windows is not False:
            one = self._add_one(slices, origin, items[0], only_new)
            if one is not None:
                return one
        elif c_walk and by_windows is None:
            run = self._add_run(slices, origin, items, only_new)
            if run is not None:
                return run
        batch = _Batch(self, slices, origin, items, by_windows, c_walk=c_walk)
        replies = [batch.add(i, only_new) for i in range(len(items))]
        return replies, batch.written()

    def _add_one(
        self, slices: Slices, origin: str, item: bytes, only_new: bool
    ) -> tuple[list[int], Written] | None:
        """CF.ADD (or ADDNX) of one item over sparse slices (the usual case: a client's single
        command) as :class:`_Batch` places it, without the batch, in one C call
        (``_packed.add_one``): the sub-filters in use, ADDNX's look-up of its fingerprint at
        each of its places, the walk to its first place with room and the counts of its class
        there (each a Python step of a few microseconds before). A slice's overlay (a big
        filter's writes since its bytes were packed) is read with its bytes: with it held, a
        single add used to take the batch's Python read. None: a slice is dense, or no place
        has room (the batch reads, relocates, or opens a sub-filter)."""
        sources = _c_sources(slices, origin)
        if sources is None:
            return None
        packed, overlays, own = sources
        (h,), (fp,), (alt,) = self._hashes([item])
        placed = _packed.add_one(
            packed,
            overlays,
            own,
            h,
            fp,
            alt,
            self._packed_geometry,
            self._bucket_size,
            only_new,
            None,
        )
        if placed is None:
            return None
        present, slot, raised = placed
        if present:
            return [PRESENT], ([], [])
        if raised > VALUE_MAX:  # pragma: no cover - counts are clipped far below
            return [FULL], ([], [])
        return [ADDED], ([slot], [raised])

    def _add_run(
        self, slices: Slices, origin: str, items: Sequence[bytes], only_new: bool
    ) -> tuple[list[int], Written] | None:
        """Several items (a pipelined run, CF.INSERT) each placed as :meth:`_add_one` places
        one, in C, over the slices with the counts the run raised so far on top of the
        writer's own (a layer of the run's over its bytes and overlay: what the next item
        reads, as the batch's working copy holds it). None: a slice is dense, or an item finds
        no place with room (the batch then places the whole run: it reads, relocates, or
        opens a sub-filter)."""
        sources = _c_sources(slices, origin)
        if sources is None:
            return None
        packed, overlays, own = sources
        raised = _RunCounts()
        hashes, fps, alts = self._hashes(items)
        replies: list[int] = []
        for h, fp, alt in zip(hashes, fps, alts, strict=True):
            placed = _packed.add_one(
                packed,
                overlays,
                own,
                h,
                fp,
                alt,
                self._packed_geometry,
                self._bucket_size,
                only_new,
                raised,
            )
            if placed is None or placed[2] > VALUE_MAX:
                return None
            present, slot, count = placed
            if present:
                replies.append(PRESENT)
                continue
            replies.append(ADDED)
            raised.raise_to(slot, count)
        return replies, (raised.order, [raised[i] for i in raised.order])

    def delete_items(
        self,
        slices: Slices,
        origin: str,
        items: Sequence[bytes],
        *,
        by_windows: bool | None = None,
    ) -> tuple[list[bool], Written]:
        """CF.DEL by ``origin`` of ``items`` in turn: per item whether a copy was removed
        (``origin``'s delete count raised where the merged view has a live copy, newest
        sub-filter first), and the pairs of the whole batch."""
        if len(items) == 1 and by_windows is None:
            one = self._delete_one(slices, origin, items[0])
            if one is not None:
                return one
        batch = _Batch(self, slices, origin, items, by_windows, c_walk=False)
        replies = [batch.delete(i) for i in range(len(items))]
        return replies, batch.written()

    def _delete_one(
        self, slices: Slices, origin: str, item: bytes
    ) -> tuple[list[bool], Written] | None:
        """CF.DEL of one item over sparse slices as :class:`_Batch` removes it, without the
        batch: its fingerprint looked up in both its buckets of each sub-filter, newest first
        (a slice's overlay read with its bytes), and this node's delete count raised, in the
        first sub-filter holding a copy, in a bucket with a positive net (the partner first).
        None: a slice is dense."""
        sources = _packed_slices(slices, origin)
        if sources is None:
            return None
        (h,), (fp,), (alt,) = self._hashes([item])
        for _sub, first, second in reversed(list(self._classes(h, alt, self.filters(slices)))):
            first_slot = 2 * (first * FINGERPRINTS + fp)
            first_net, _own, first_deletes = _counts(sources, first_slot)
            if second == first:
                if first_net > 0:
                    return [True], ([first_slot + 1], [first_deletes + 1])
                continue
            second_slot = 2 * (second * FINGERPRINTS + fp)
            second_net, _own, second_deletes = _counts(sources, second_slot)
            if first_net + second_net <= 0:
                continue
            if second_net > 0:
                return [True], ([second_slot + 1], [second_deletes + 1])
            return [True], ([first_slot + 1], [first_deletes + 1])
        return [False], ([], [])

    def add(self, slices: Slices, origin: str, item: bytes) -> Written:
        """CF.ADD of one item: its pairs; FilterFullError when no place has room and no
        sub-filter may be added."""
        (reply,), pairs = self.add_items(slices, origin, [item], only_new=False)
        if reply == FULL:
            raise FilterFullError("Filter is full")
        return pairs

    def delete(self, slices: Slices, origin: str, item: bytes) -> Written | None:
        """CF.DEL of one item: its pairs, or None when the item is not there."""
        (removed,), pairs = self.delete_items(slices, origin, [item])
        return pairs if removed else None

    def merge(self, target: dict[str, MaxVector], source: Slices) -> dict[str, MaxVector]:
        """The lattice merge of two replicas' states (per origin max); returns the delta."""
        return merge_slices(target, source)

    # -- CF.SCANDUMP / CF.LOADCHUNK -----------------------------------------------------------

    def dump_chunk(self, slices: Slices, start: int) -> tuple[bytes, int]:
        """A self-contained chunk of the live entries from the ``start``-th on, and how many it
        holds: the parameters, then ``(pair index, live copies)`` entries, then a CRC-32."""
        pairs, copies, _ = self._all_counts(slices)
        end = start + CHUNK_ENTRIES_MAX
        entries = list(zip(pairs[start:end].tolist(), copies[start:end], strict=True))
        params = self._schema.params
        body = _CHUNK_MAGIC + _CHUNK_HEADER.pack(*params, len(entries))
        body += b"".join(_CHUNK_ENTRY.pack(p, n) for p, n in entries)
        return body + struct.pack(">I", zlib.crc32(body)), len(entries)

    @staticmethod
    def parse_chunk(data: bytes) -> tuple[CuckooFilter, list[tuple[int, int]]]:
        """The filter a chunk describes and its entries; ChunkError when it is not one."""
        head = len(_CHUNK_MAGIC) + _CHUNK_HEADER.size
        if len(data) < head + 4 or not data.startswith(_CHUNK_MAGIC):
            raise ChunkError("not a CF.SCANDUMP chunk")
        (crc,) = struct.unpack(">I", data[-4:])
        if zlib.crc32(data[:-4]) != crc:
            raise ChunkError("chunk checksum mismatch")
        *params, n = _CHUNK_HEADER.unpack_from(data, len(_CHUNK_MAGIC))
        if len(data) != head + n * _CHUNK_ENTRY.size + 4:
            raise ChunkError("chunk length mismatch")
        try:
            view = CuckooFilter(*params)
        except SketchParameterError as exc:
            raise ChunkError(f"bad filter parameters: {exc}") from exc
        pair_limit = view._bases[-1] + view._buckets[-1] * FINGERPRINTS
        entries = [_CHUNK_ENTRY.unpack_from(data, head + i * _CHUNK_ENTRY.size) for i in range(n)]
        for pair, copies in entries:
            if pair >= pair_limit or pair % FINGERPRINTS == 0 or not 0 < copies <= VALUE_MAX // 2:
                raise ChunkError("chunk entry out of range")
        return view, entries

    def load(self, slices: Slices, origin: str, entries: Sequence[tuple[int, int]]) -> FewPairs:
        """CF.LOADCHUNK's pairs: ``origin``'s add counts raised so that each entry's item
        class has at least its copies (loading a chunk twice changes nothing)."""
        if not entries:
            return [], []
        own = slices.get(origin) or MaxVector()
        pairs = np.array([p for p, _ in entries], dtype=np.int64)
        raised: dict[int, int] = {}
        for (pair, copies), held in zip(entries, self._class_copies(slices, pairs), strict=True):
            if copies > held:
                slot = 2 * pair
                raised[slot] = min(VALUE_MAX, own.get(slot) + copies - held)
        indices = sorted(raised)
        return indices, [raised[i] for i in indices]


class _RunCounts(dict[int, int]):
    """The counts a run raised so far in the writer's slice, as :meth:`CuckooFilter._add_run`
    hands them to ``_packed.add_one`` (on top of the slice's bytes and overlay: what the next
    item reads), with ``order``, their indices sorted (an overlay's form: the C looks values
    up here and searches a bucket's range in ``order``)."""

    __slots__ = ("order",)

    def __init__(self) -> None:
        super().__init__()
        self.order: list[int] = []

    def raise_to(self, index: int, value: int) -> None:
        """The count at ``index`` is now ``value`` (above what it was)."""
        if index not in self:
            bisect.insort(self.order, index)
        self[index] = value


def _packed_slices(
    slices: Slices, origin: str
) -> list[tuple[bool, bytes, dict[int, int] | None]] | None:
    """Each slice as ``(whether it is ``origin``'s, its packed pairs, the overlay of pairs
    written since or None)`` (:meth:`MaxVector.sparse_view`); None when one is dense (a batch
    reads those)."""
    sources: list[tuple[bool, bytes, dict[int, int] | None]] = []
    for name, vec in slices.items():
        view = vec.sparse_view()
        if view is None:
            return None
        sources.append((name == origin, view[0], view[1]))
    return sources


def _c_sources(
    slices: Slices, origin: str
) -> tuple[list[bytes], list[dict[int, int] | None], int] | None:
    """The slices as ``_packed.add_one`` reads them: their packed pairs, their overlays and
    the index of ``origin``'s (an empty slice added for it when it has none yet, to take its
    counts); None when one is dense."""
    sources = _packed_slices(slices, origin)
    if sources is None:
        return None
    packed = [held for _, held, _ in sources]
    overlays = [overlay for _, _, overlay in sources]
    own = next((at for at, (mine, _, _) in enumerate(sources) if mine), -1)
    if own < 0:
        own = len(packed)
        packed.append(MaxVector.NO_PAIRS)
        overlays.append(None)
    return packed, overlays, own


def _kth_copy(nets: Sequence[tuple[int, int]], k: int) -> int:
    """The fingerprint of copy ``k`` (modulo the copies) of a bucket whose ``(fingerprint,
    net)`` pairs, in fingerprint order, hold at least one copy: a relocation's victim."""
    total = sum(net for _, net in nets if net > 0)
    k %= total
    for fp, net in nets:
        if net > 0:
            if k < net:
                return fp
            k -= net
    raise AssertionError("unreachable: k < total")  # pragma: no cover


def _counts(
    sources: Sequence[tuple[bool, bytes, dict[int, int] | None]], slot: int
) -> tuple[int, int, int]:
    """A fingerprint's merged live count at its add ``slot`` (adds minus deletes over every
    slice, each clipped at :data:`COUNT_CLIP`), and the writer's own add and delete counts
    there (clipped alike), read by two look-ups a slice of :func:`_packed_slices` (its
    overlay's values, above its bytes', first)."""
    net = own_adds = own_deletes = 0
    for mine, packed, overlay in sources:
        adds, deletes = _sparse.values(packed, [slot, slot + 1])
        if overlay:
            adds, deletes = overlay.get(slot, adds), overlay.get(slot + 1, deletes)
        adds, deletes = min(adds, COUNT_CLIP), min(deletes, COUNT_CLIP)
        net += adds - deletes
        if mine:
            own_adds, own_deletes = adds, deletes
    return net, own_adds, own_deletes


class _Batch:
    """The merged counts a batch of writes to one filter reads, and the pairs it writes.

    Holds, for the buckets the batch has read, each fingerprint pair's merged adds minus
    deletes, each bucket's occupancy and the writing origin's own counts, and updates them as
    each item is placed, relocated or removed: item ``i`` sees exactly the state the writes of
    items ``0..i-1`` left, as if each were written alone, and the batch writes once. Buckets
    are read lazily by window look-ups for a few items, or at once, vectorised, for many
    (:data:`_PAIRS_PER_WINDOW`; a relocation still reads the buckets it reaches lazily);
    sub-filters past the ones in use hold nothing to read.
    """

    __slots__ = (
        "_alts",
        "_by_arrays",
        "_c_walk",
        "_filters",
        "_fps",
        "_hashes",
        "_held_pairs",
        "_loaded",
        "_moved",
        "_moves_left",
        "_net",
        "_occupied",
        "_origin",
        "_own",
        "_read_from",
        "_readable",
        "_slices",
        "_view",
        "_whole",
        "_written",
    )

    def __init__(
        self,
        view: CuckooFilter,
        slices: Slices,
        origin: str,
        items: Sequence[bytes],
        by_windows: bool | None,
        *,
        c_walk: bool,
    ) -> None:
        self._view = view
        self._c_walk = c_walk
        self._slices = slices
        self._origin = origin
        self._hashes, self._fps, self._alts = view._hashes(items) if items else ([], [], [])
        self._filters = view.filters(slices)  # grows as the batch opens sub-filters
        self._readable = min(self._filters, len(view._buckets))  # sub-filters that hold slots
        self._net: dict[int, int] = {}
        self._occupied: dict[int, int] = {}
        self._own: dict[int, int] = {}
        self._written: dict[int, int] = {}
        self._held_pairs: dict[int, set[int]] = {}  # per bucket read, its pairs held
        self._loaded: set[int] = set()
        self._whole = False  # every pair of the key read: no bucket left to load
        self._by_arrays = False
        self._moves_left = RELOCATION_MOVES_MAX
        self._moved = 0
        self._read_from: list[_Source] | None = None
        if by_windows is None:
            places = len(items) * 2 * self._readable
            by_windows = places <= _WINDOWS_PER_PASS or (  # (a few items: no count needed)
                places <= _WINDOWS_PER_PASS + sum(map(len, slices.values())) // _PAIRS_PER_WINDOW
            )
        if not by_windows:
            self._load_arrays()

    # -- reading the buckets ------------------------------------------------------------------

    def _sources(self) -> list[_Source]:
        """Each slice as the batch reads it (once): whether it is the writer's, and a sparse
        one's packed pairs (a window is then a search in C, well under a microsecond; a
        :meth:`MaxVector.window` builds a vector, ten times that)."""
        sources = self._read_from
        if sources is None:
            sources = self._read_from = [
                (origin == self._origin, vec, None if vec.holds_pending else vec.packed_pairs())
                for origin, vec in self._slices.items()
            ]
        return sources

    def _packed_sources(self) -> list[bytes] | None:
        """Every slice's packed pairs, for the C walk over places; None if one is dense."""
        packed = [held for _, _, held in self._sources()]
        return None if None in packed else cast("list[bytes]", packed)

    def _ensure(self, bucket: int, sub: int) -> None:
        loaded = self._loaded
        if self._whole or sub >= self._readable or bucket in loaded:
            return
        loaded.add(bucket)
        low = 2 * bucket * FINGERPRINTS
        high = low + 2 * FINGERPRINTS
        net = self._net
        pairs: set[int] = set()
        for own, vec, _ in self._sources():
            for index, value in vec.window_items(low, high):
                count = min(value, COUNT_CLIP)
                pair = index >> 1
                pairs.add(pair)
                net[pair] = net.get(pair, 0) + (-count if index & 1 else count)
                if own:
                    self._own[index] = count
        self._occupied[bucket] = sum(max(0, net[pair]) for pair in pairs)
        self._held_pairs[bucket] = pairs

    def _wanted_buckets(self) -> npt.NDArray[np.int64]:
        """The global numbers of every item's buckets in the sub-filters in use, sorted."""
        hashes = np.array(self._hashes, dtype=np.uint64)
        alts = np.array(self._alts, dtype=np.uint64)
        wanted: list[npt.NDArray[np.int64]] = []
        for mask, start in self._view._geometry[: self._readable]:
            first = hashes & np.uint64(mask)
            for bucket in (first, first ^ (alts & np.uint64(mask))):
                wanted.append(bucket.astype(np.int64) + start)
        return np.unique(np.concatenate(wanted))

    def _load_arrays(self) -> None:
        """Every bucket of every item's places in the sub-filters in use, in one vectorised
        pass over each slice (the whole key when the items have as many places as it holds
        pairs: no list of buckets to sort)."""
        self._by_arrays = True
        places = len(self._hashes) * 2 * self._readable
        lows = None
        if places < sum(len(vec) for vec in self._slices.values()):
            wanted = self._wanted_buckets()
            self._loaded.update(wanted.tolist())
            lows = wanted * (2 * FINGERPRINTS)
        else:
            self._whole = True
        parts_idx: list[npt.NDArray[np.int64]] = []
        parts_val: list[npt.NDArray[np.int64]] = []
        for origin, vec in self._slices.items():
            indices, values = vec.pairs()
            chosen = indices.astype(np.int64)
            if lows is not None:
                starts = np.searchsorted(chosen, lows)
                counts = np.searchsorted(chosen, lows + 2 * FINGERPRINTS) - starts
                offsets = np.cumsum(counts) - counts
                total = int(counts.sum())
                at = np.arange(total) - np.repeat(offsets, counts) + np.repeat(starts, counts)
                chosen, values = chosen[at], values[at]
            if not chosen.size:
                continue
            counts_at = _clipped(values)
            parts_idx.append(chosen)
            parts_val.append(counts_at)
            if origin == self._origin:
                self._own = dict(zip(chosen.tolist(), counts_at.tolist(), strict=True))
        if not parts_idx:
            return
        indices = np.concatenate(parts_idx)
        values = np.concatenate(parts_val)
        pairs, where = np.unique(indices >> 1, return_inverse=True)
        net = np.zeros(pairs.size, dtype=np.int64)
        np.add.at(net, where, np.where(indices & 1, -values, values))
        self._net = dict(zip(pairs.tolist(), net.tolist(), strict=True))
        held_buckets, at_bucket = np.unique(pairs // FINGERPRINTS, return_inverse=True)
        occupied = np.zeros(held_buckets.size, dtype=np.int64)
        np.add.at(occupied, at_bucket, np.maximum(net, 0))
        self._occupied = dict(zip(held_buckets.tolist(), occupied.tolist(), strict=True))

    def _pairs_in(self, bucket: int) -> set[int]:
        """The fingerprint pairs ``bucket`` holds (read, and kept up to date by the batch's
        writes: a relocation's victims are picked among them)."""
        held = self._held_pairs.get(bucket)
        if held is None:  # (read with the others in one pass, or a new sub-filter's)
            first = bucket * FINGERPRINTS
            net = self._net
            held = self._held_pairs[bucket] = {
                first + fp for fp in range(1, FINGERPRINTS) if first + fp in net
            }
        return held

    def _copies(self, sub: int, first: int, second: int, fp: int) -> int:
        """The item class's copies in ``sub``: the nets of ``fp`` in both buckets summed."""
        copies = self._net_at(first, sub, fp)
        return copies if second == first else copies + self._net_at(second, sub, fp)

    def _net_at(self, bucket: int, sub: int, fp: int) -> int:
        """``fp``'s net in ``bucket``: as the batch holds it when the bucket was read, else
        two look-ups a slice (nothing of the batch is there; reading the whole bucket for
        one count doubled a pipelined run's window reads)."""
        pair = bucket * FINGERPRINTS + fp
        if self._whole or sub >= self._readable or bucket in self._loaded:
            return self._net.get(pair, 0)
        net = 0
        slots = [2 * pair, 2 * pair + 1]
        for _, vec, packed in self._sources():
            adds, deletes = (
                vec.values_of(slots) if packed is None else _sparse.values(packed, slots)
            )
            net += min(adds, COUNT_CLIP) - min(deletes, COUNT_CLIP)
        return net

    def _raise(self, bucket: int, fp: int, by: int, *, delete: bool) -> None:
        """Raise the writer's add (or delete) count of ``fp`` in ``bucket`` (read already) by
        ``by``, and the batch's view of the bucket with it."""
        pair = bucket * FINGERPRINTS + fp
        slot = 2 * pair + 1 if delete else 2 * pair
        self._own[slot] = self._written[slot] = self._own.get(slot, 0) + by
        old = self._net.get(pair, 0)
        new = old - by if delete else old + by
        self._net[pair] = new
        self._occupied[bucket] = self._occupied.get(bucket, 0) + max(0, new) - max(0, old)
        held = self._held_pairs.get(bucket)
        if held is not None:
            held.add(pair)

    # -- the operations -----------------------------------------------------------------------

    def _present(self, i: int) -> bool:
        fp = self._fps[i]
        for sub, first, second in self._view._classes(
            self._hashes[i], self._alts[i], self._filters
        ):
            if self._copies(sub, first, second, fp) > 0:
                return True
        return False

    def add(self, i: int, only_new: bool) -> int:
        """Item ``i`` added: ADDED, PRESENT or FULL."""
        if only_new and self._present(i):
            return PRESENT
        room = self._room(i)
        if room is None:
            if self._relocate(i):
                return ADDED
            room = self._new_sub_filter(i)
            if room is None:
                return FULL
        sub, bucket = room
        fp = self._fps[i]
        self._ensure(bucket, sub)  # (its counts: the writer's own, the occupancy)
        partner = self._view._partner(sub, bucket, fp)
        deficit = max(0, -self._copies(sub, bucket, partner, fp))
        if self._own.get(2 * (bucket * FINGERPRINTS + fp), 0) + 1 + deficit > VALUE_MAX:
            return FULL  # pragma: no cover - counts are clipped far below
        self._raise(bucket, fp, 1 + deficit, delete=False)
        return ADDED

    def _room(self, i: int) -> tuple[int, int] | None:
        """Item ``i``'s first place in the sub-filters in use, oldest first, whose bucket holds
        fewer than ``bucket_size`` copies: ``(sub-filter, bucket)``. Read lazily in C over
        packed slices (a filter grown to many sub-filters has dozens of full places before
        one with room), else bucket by bucket in Python (a dense slice, or a batch that read
        its buckets at once)."""
        size = self._view._bucket_size
        occupied = self._occupied
        subs = self._filters
        if not self._by_arrays and self._c_walk:
            packed = self._packed_sources()
            if packed is not None:
                # (one item: nothing written yet, every bucket read once, nothing to remember)
                room = _packed.first_room(
                    packed,
                    occupied if len(self._hashes) > 1 else None,
                    self._hashes[i],
                    self._alts[i],
                    self._view._packed_geometry,
                    self._readable,
                    subs,
                    size,
                )
                return None if room is None else (room[0], room[1])
        for sub, bucket in self._view._places(self._hashes[i], self._alts[i], subs):
            self._ensure(bucket, sub)
            if occupied.get(bucket, 0) < size:
                return sub, bucket
        return None

    def _new_sub_filter(self, i: int) -> tuple[int, int] | None:
        """Item ``i``'s first bucket in a new sub-filter, when one may be added."""
        sub = self._filters
        if sub >= len(self._view._buckets):
            return None
        self._filters = sub + 1
        mask, start = self._view._geometry[sub]
        return sub, start + (self._hashes[i] & mask)

    def _relocate(self, i: int) -> bool:
        """RedisBloom's eviction, in the last sub-filter in use: item ``i``'s fingerprint
        takes the place of a victim in its first bucket, the victim moves to its partner
        bucket, evicting another there if that is full too, and so on, up to
        ``max_iterations`` moves. The victim of move ``j`` is copy ``mix64(h, 2 + j)`` modulo
        the bucket's copies, in fingerprint order (``h`` the item's hash): a random walk, as
        the cuckoo filter paper's, but reproducible. (RedisBloom turns round the positions of
        a bucket; a bucket here has copies, not positions, and turning round them in
        fingerprint order cycled: a filter of bucket size 2 reported full at 65% of its
        slots whatever MAXITERATIONS.) Tried on a copy of the view it changes and applied only when
        a bucket with room ends the chain (RedisBloom rolls a failed chain back). Every move
        counts against the call's :data:`RELOCATION_MOVES_MAX`."""
        view = self._view
        size = view._bucket_size
        sub = self._filters - 1
        mask, start = view._geometry[sub]
        fp = self._fps[i]
        bucket = start + (self._hashes[i] & mask)
        deficit = max(0, -self._copies(sub, bucket, view._partner(sub, bucket, fp), fp))
        nets: dict[int, int] = {}  # the chain's changes: pair -> net, bucket -> occupancy,
        occupied: dict[int, int] = {}  # slot -> own increment
        raised: dict[int, int] = {}

        def move(at: int, fingerprint: int, by: int, *, delete: bool) -> None:
            pair = at * FINGERPRINTS + fingerprint
            old = nets.get(pair, self._net.get(pair, 0))
            new = old - by if delete else old + by
            nets[pair] = new
            held = occupied.get(at, self._occupied.get(at, 0))
            occupied[at] = held + max(0, new) - max(0, old)
            slot = 2 * pair + 1 if delete else 2 * pair
            raised[slot] = raised.get(slot, 0) + by

        current = fp
        for step in range(view._max_iterations):
            if self._moves_left <= 0:
                return False
            self._moves_left -= 1
            self._ensure(bucket, sub)
            first = bucket * FINGERPRINTS
            held = self._pairs_in(bucket).union(
                pair for pair in nets if first <= pair < first + FINGERPRINTS
            )
            victim = _kth_copy(
                [(p - first, nets.get(p, self._net.get(p, 0))) for p in sorted(held)],
                mix64_int(self._hashes[i], 2 + step),
            )
            move(bucket, current, 1 + deficit, delete=False)
            deficit = 0
            move(bucket, victim, 1, delete=True)
            bucket = view._partner(sub, bucket, victim)
            current = victim
            self._ensure(bucket, sub)
            if occupied.get(bucket, self._occupied.get(bucket, 0)) < size:
                move(bucket, current, 1, delete=False)
                for slot, by in raised.items():
                    at, fingerprint = divmod(slot >> 1, FINGERPRINTS)
                    self._raise(at, fingerprint, by, delete=bool(slot & 1))
                self._moved += step + 1
                return True
        return False

    def delete(self, i: int) -> bool:
        """One copy of item ``i`` removed where the merged view has one (newest sub-filter
        first; the partner bucket first): whether there was one."""
        fp = self._fps[i]
        classes = list(self._view._classes(self._hashes[i], self._alts[i], self._filters))
        for sub, first, second in reversed(classes):
            if self._copies(sub, first, second, fp) <= 0:
                continue
            for bucket in (second, first):
                self._ensure(bucket, sub)
                if self._net.get(bucket * FINGERPRINTS + fp, 0) > 0:
                    self._raise(bucket, fp, 1, delete=True)
                    return True
        return False

    def written(self) -> Written:
        """The pairs the batch raised, sorted (its relocations' moves counted at
        :data:`MOVES_SLOT` on top of the writer's count there)."""
        written = self._written
        if self._moved:
            own = self._slices.get(self._origin)
            held = 0 if own is None else min(own.values_of([MOVES_SLOT])[0], COUNT_CLIP)
            written = {**written, MOVES_SLOT: held + self._moved}
        slots = sorted(written)
        values = [written[slot] for slot in slots]
        if len(slots) <= _FEW_WRITTEN:
            return slots, values
        return np.array(slots, dtype=np.uint32), np.array(values, dtype=np.uint64)
