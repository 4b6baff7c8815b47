"""The cuckoo filter view: RedisBloom's CF.* over per-origin counts of adds and deletes.

A cuckoo filter stores an item's 8-bit fingerprint in one of its two buckets; CF.DEL removes
a copy. Deletes make it non-monotone, so it cannot be one shared max-vector. Here it is a
*counting* structure keyed by ``(sub-filter, bucket, fingerprint)``: each origin keeps, in its
own slice, the running number of adds (slot ``2 p``) and of deletes (slot ``2 p + 1``) of
fingerprint-pair ``p = base(sub) + bucket * 256 + fingerprint``. Both counts only grow, so the
per-origin max-merge is a lattice: any delivery order, duplicates or grouping give the same
slices. The live copies of a fingerprint in a bucket are ``max(0, sum(adds) - sum(dels))``
over origins; an item is present iff one of its buckets, in some sub-filter, has a live copy.

Consequences, and the departures from RedisBloom they bring:

- Slots are keyed by ``(bucket, fingerprint)``, never by a position in the bucket, so two nodes
  adding different fingerprints to the same bucket concurrently both keep theirs.
- CF.DEL on any node raises its own delete count where the merged view has a live copy: it
  removes an item whichever node added it, everywhere, and it stays removed. Two nodes deleting
  the same single copy concurrently over-delete (net -1, read as 0); an add then raises its own
  count by the deficit too, so the item it adds is present (never swallowed).
- **No kicking between buckets** (MAXITERATIONS is accepted and reported, not used): a bucket
  holds at most ``bucket_size`` live copies in the merged view when a write is placed (writers
  racing on different nodes may overfill it; reads do not care). An add goes to the first
  sub-filter, oldest first, where one of the item's two buckets has room; when none has, a new
  sub-filter of ``buckets * expansion**i`` buckets appears (``expansion`` rounded up to a power
  of two, as RedisBloom does). With ``EXPANSION 0``, or past :data:`FILTERS_MAX` sub-filters
  or the 2**32 slot space, the add is refused as "Filter is full" (:class:`FilterFullError`).
  Without kicking the filter reports full at a lower fill than RedisBloom's (about half of
  ``capacity`` rather than ~95%); with expansion it grows instead.
- The number of sub-filters is not stored: it is one past the highest sub-filter holding a
  slot in any slice, so two nodes creating sub-filter ``i`` concurrently share it.

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
    "PRESENT",
    "ChunkError",
    "CuckooFilter",
    "CuckooInfo",
    "FilterFullError",
]

FINGERPRINTS: Final = 256
"""Fingerprint values per bucket (8-bit fingerprints; 0 is never used)."""
FILTERS_MAX: Final = 32
"""Sub-filters at most (RedisBloom's filters "can grow up to 32 times")."""
_CHUNK_MAGIC: Final = b"HSCF1"
_CHUNK_HEADER: Final = struct.Struct(">QHHHI")  # capacity, bucket size, max iter, expansion, n
_CHUNK_ENTRY: Final = struct.Struct(">IQ")  # fingerprint-pair index, live copies
CHUNK_ENTRIES_MAX: Final = 4096
"""Live ``(bucket, fingerprint)`` entries per CF.SCANDUMP chunk (at most 48 KiB a chunk)."""

ADDED: Final = 1
PRESENT: Final = 0
FULL: Final = -1
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

    # -- reading ------------------------------------------------------------------------------

    def filters(self, slices: Slices) -> int:
        """Sub-filters in use: one past the highest holding a slot in any slice (at least 1)."""
        top = -1
        for vec in slices.values():  # (a loop, not max() of a generator: at every CF.ADD)
            held = vec.memo(_top_index, _top_index)
            if held > top:  # noqa: PLR1730 - a call fewer than max() per slice
                top = held
        return bisect.bisect_right(self._bases, top // 2) if top >= 0 else 1

    def _live(self, slices: Slices, pairs: Sequence[int]) -> list[int]:
        """Merged adds minus deletes at each fingerprint-pair index (may be negative)."""
        adds, dels = _summed_counts(slices, np.array(pairs, dtype=np.int64))
        return [a - d for a, d in zip(adds.tolist(), dels.tolist(), strict=True)]

    def _item_pairs(self, items: Sequence[bytes], subs: int) -> npt.NDArray[np.int64]:
        """Every item's fingerprint-pair index at each of its places in the first ``subs``
        sub-filters (one row an item, first bucket before partner in each sub-filter; a
        partner equal to its first bucket appears twice, which no read minds)."""
        hashes, fps, alts = (np.array(v, dtype=np.uint64) for v in self._hashes(items))
        fingerprints = fps.astype(np.int64)
        columns: list[npt.NDArray[np.int64]] = []
        for sub in range(min(subs, len(self._buckets))):
            mask = np.uint64(self._buckets[sub] - 1)
            first = hashes & mask
            start = np.int64(self._bases[sub])
            for bucket in (first, first ^ (alts & mask)):
                columns.append(start + bucket.astype(np.int64) * FINGERPRINTS + fingerprints)
        return np.stack(columns, axis=1)

    def _item_nets(self, slices: Slices, item: bytes) -> list[int]:
        """One item's merged adds minus deletes at each of its distinct places in the
        sub-filters in use, in Python ints (a few look-ups per slice, no arrays)."""
        (h,), (fp,), (alt,) = self._hashes([item])
        vecs = list(slices.values())
        nets: list[int] = []
        for _, bucket in self._places(h, alt, self.filters(slices)):
            slot = 2 * (bucket * FINGERPRINTS + fp)
            adds = sum(min(vec.get(slot), COUNT_CLIP) for vec in vecs)
            nets.append(adds - sum(min(vec.get(slot + 1), COUNT_CLIP) for vec in vecs))
        return nets

    def exists(self, slices: Slices, items: Sequence[bytes]) -> list[bool]:
        """CF.EXISTS / CF.MEXISTS: present iff some place has a live copy (one item by
        look-ups, more in one vectorised read of every item's places)."""
        if len(items) <= _SCALAR_ITEMS_MAX:
            return [any(net > 0 for net in self._item_nets(slices, item)) for item in items]
        subs = self.filters(slices)
        rows = max(1, _PLACES_PER_READ // (2 * subs))  # bounded arrays, however many items
        present: list[bool] = []
        for at in range(0, len(items), rows):
            pairs = self._item_pairs(items[at : at + rows], subs)
            adds, dels = _summed_counts(slices, pairs)
            found = np.asarray(np.greater(adds, dels).any(axis=1))
            present += [bool(v) for v in found.tolist()]
        return present

    def count(self, slices: Slices, item: bytes) -> int:
        """CF.COUNT: live copies of the item's fingerprint over its places (may overcount,
        as RedisBloom's, when other items share a fingerprint and bucket)."""
        return sum(max(0, net) for net in self._item_nets(slices, item))

    def _all_counts(self, slices: Slices) -> tuple[npt.NDArray[np.int64], list[int], int]:
        """Every fingerprint pair with live copies (sorted) and their copies, and the deletes
        of every origin. Vectorised: CF.INFO and each CF.SCANDUMP chunk read the whole key."""
        parts = [vec.pairs() for _, vec in sorted(slices.items())]
        if not parts:
            return np.zeros(0, np.int64), [], 0
        indices = np.concatenate([i for i, _ in parts]).astype(np.int64)
        values = _clipped(np.concatenate([v for _, v in parts]))
        signed = np.where(indices & 1, -values, values)
        pairs, where = np.unique(indices >> 1, return_inverse=True)
        net = np.zeros(pairs.size, dtype=np.int64)
        np.add.at(net, where, signed)
        live = net > 0
        deleted = sum(int(v) for v in values[(indices & 1) == 1].tolist())
        return pairs[live], [int(v) for v in net[live].tolist()], deleted

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

        An item goes to the first of its places (oldest sub-filter first, a new sub-filter
        when none has room) whose bucket holds fewer than ``bucket_size`` live copies, and
        raises its add count there by one plus any deficit an over-delete left.
        ``by_windows`` forces one way of reading the buckets, ``c_walk=False`` the walk over
        places in Python rather than C (tests hold them all to one answer).
        """
        if len(items) == 1 and c_walk and by_windows is not False:
            one = self._add_one(slices, origin, items[0], only_new)
            if one is not None:
                return one
        batch = _Batch(self, slices, origin, items, by_windows, c_walk=c_walk)
        replies = [batch.add(i, only_new) for i in range(len(items))]
        return replies, batch.written()

    def _add_one(
        self, slices: Slices, origin: str, item: bytes, only_new: bool
    ) -> tuple[list[int], Written] | None:
        """CF.ADD (or ADDNX) of one item over packed slices (the usual case: a client's single
        command) as :class:`_Batch` places it, without the batch: the C walk finds its place,
        then two look-ups a slice read the counts of its fingerprint there (the batch read the
        whole bucket, in Python); ADDNX first looks its fingerprint up at each of its places.
        None: a slice is dense or holds an overlay (the batch reads it)."""
        sources = _packed_slices(slices, origin)
        if sources is None:
            return None
        (h,), (fp,), (alt,) = self._hashes([item])
        filters = self.filters(slices)
        if only_new:
            for _sub, bucket in self._places(h, alt, filters):
                if _counts(sources, 2 * (bucket * FINGERPRINTS + fp))[0] > 0:
                    return [PRESENT], ([], [])
        readable = min(filters, len(self._buckets))
        room = _packed.first_room(
            [packed for _, packed in sources],
            None,
            h,
            alt,
            self._packed_geometry,
            readable,
            filters + 1,
            self._bucket_size,
        )
        if room is None:
            return [FULL], ([], [])
        _sub, bucket, _held = room
        slot = 2 * (bucket * FINGERPRINTS + fp)
        net, own, _ = _counts(sources, slot)
        raised = own + 1 + max(0, -net)
        if raised > VALUE_MAX:  # pragma: no cover - counts are clipped far below
            return [FULL], ([], [])
        return [ADDED], ([slot], [raised])

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
        """CF.DEL of one item over packed slices as :class:`_Batch` removes it, without the
        batch: its fingerprint looked up at each of its places, newest sub-filter first, and
        this node's delete count raised at the first with a live copy. None: a slice is dense
        or holds an overlay."""
        sources = _packed_slices(slices, origin)
        if sources is None:
            return None
        (h,), (fp,), (alt,) = self._hashes([item])
        places = list(self._places(h, alt, self.filters(slices)))
        for _sub, bucket in reversed(places):
            slot = 2 * (bucket * FINGERPRINTS + fp)
            net, _own, own_deletes = _counts(sources, slot)
            if net > 0:
                return [True], ([slot + 1], [own_deletes + 1])
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
        """CF.LOADCHUNK's pairs: ``origin``'s add counts raised so that each entry has at least
        its live copies (loading a chunk twice changes nothing)."""
        if not entries:
            return [], []
        own = slices.get(origin) or MaxVector()
        pairs = [p for p, _ in entries]
        indices: list[int] = []
        values: list[int] = []
        for (pair, copies), net in zip(entries, self._live(slices, pairs), strict=True):
            if copies > net:
                indices.append(2 * pair)
                values.append(min(VALUE_MAX, own.get(2 * pair) + copies - net))
        return indices, values


def _packed_slices(slices: Slices, origin: str) -> list[tuple[bool, bytes]] | None:
    """Each slice as ``(whether it is ``origin``'s, its packed pairs)``; None when one is dense
    or holds an overlay (a batch reads those)."""
    sources: list[tuple[bool, bytes]] = []
    for name, vec in slices.items():
        packed = None if vec.holds_pending else vec.packed_pairs()
        if packed is None:
            return None
        sources.append((name == origin, packed))
    return sources


def _counts(sources: Sequence[tuple[bool, bytes]], slot: int) -> tuple[int, int, int]:
    """A fingerprint's merged live count at its add ``slot`` (adds minus deletes over every
    slice, each clipped at :data:`COUNT_CLIP`), and the writer's own add and delete counts
    there (clipped alike), read by two look-ups a slice of :func:`_packed_slices`."""
    net = own_adds = own_deletes = 0
    for mine, packed in sources:
        adds, deletes = _sparse.values(packed, [slot, slot + 1])
        adds, deletes = min(adds, COUNT_CLIP), min(deletes, COUNT_CLIP)
        net += adds - deletes
        if mine:
            own_adds, own_deletes = adds, deletes
    return net, own_adds, own_deletes


class _Batch:
    """The merged counts a batch of writes to one filter reads, and the pairs it writes.

    Holds, for the buckets the batch may touch, each fingerprint pair's merged adds minus
    deletes, each bucket's live copies and the writing origin's own counts, and updates them
    as each item is placed or removed: item ``i`` sees exactly the state the writes of items
    ``0..i-1`` left, as if each were written alone, and the batch writes once. Buckets are
    read lazily by window look-ups for a few items, or all at once, vectorised, for many
    (:data:`_PAIRS_PER_WINDOW`); sub-filters past the ones in use hold nothing to read.
    """

    __slots__ = (
        "_alts",
        "_c_walk",
        "_filters",
        "_fps",
        "_hashes",
        "_loaded",
        "_net",
        "_occupied",
        "_origin",
        "_own",
        "_read_from",
        "_readable",
        "_slices",
        "_view",
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
        self._loaded: set[int] | None = set()  # None: every bucket the batch may touch
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
        if loaded is None or sub >= self._readable or bucket in loaded:
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
        self._loaded = None
        places = len(self._hashes) * 2 * self._readable
        lows = None
        if places < sum(len(vec) for vec in self._slices.values()):
            lows = self._wanted_buckets() * (2 * FINGERPRINTS)
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

    # -- the operations -----------------------------------------------------------------------

    def _present(self, i: int) -> bool:
        fp = self._fps[i]
        for sub, bucket in self._view._places(self._hashes[i], self._alts[i], self._filters):
            self._ensure(bucket, sub)
            if self._net.get(bucket * FINGERPRINTS + fp, 0) > 0:
                return True
        return False

    def add(self, i: int, only_new: bool) -> int:
        """Item ``i`` added: ADDED, PRESENT or FULL."""
        if only_new and self._present(i):
            return PRESENT
        # One new sub-filter at most; places are made lazily (most items take their first).
        room = self._room(i)
        if room is None:
            return FULL
        sub, bucket, held = room
        self._ensure(bucket, sub)
        pair = bucket * FINGERPRINTS + self._fps[i]
        net = self._net.get(pair, 0)
        raised = self._own.get(2 * pair, 0) + 1 + max(0, -net)
        if raised > VALUE_MAX:  # pragma: no cover - counts are clipped far below
            return FULL
        self._own[2 * pair] = self._written[2 * pair] = raised
        self._net[pair] = max(net, 0) + 1
        self._occupied[bucket] = held + 1
        if sub >= self._filters:
            self._filters = sub + 1
        return ADDED

    def _room(self, i: int) -> tuple[int, int, int] | None:
        """Item ``i``'s first place, oldest sub-filter first, whose bucket holds fewer than
        ``bucket_size`` live copies: ``(sub-filter, bucket, live copies)``. Read lazily in C
        over packed slices (a filter grown to many sub-filters has dozens of full places
        before one with room), else bucket by bucket in Python (a dense slice, or a batch
        that read its buckets at once)."""
        size = self._view._bucket_size
        occupied = self._occupied
        subs = self._filters + 1
        if self._loaded is not None and self._c_walk:
            packed = self._packed_sources()
            if packed is not None:
                # (one item: nothing written yet, every bucket read once, nothing to remember)
                return _packed.first_room(
                    packed,
                    occupied if len(self._hashes) > 1 else None,
                    self._hashes[i],
                    self._alts[i],
                    self._view._packed_geometry,
                    self._readable,
                    subs,
                    size,
                )
        for sub, bucket in self._view._places(self._hashes[i], self._alts[i], subs):
            self._ensure(bucket, sub)
            held = occupied.get(bucket, 0)
            if held < size:
                return sub, bucket, held
        return None

    def delete(self, i: int) -> bool:
        """One copy of item ``i`` removed where the merged view has one (newest sub-filter
        first): whether there was one."""
        fp = self._fps[i]
        places = list(self._view._places(self._hashes[i], self._alts[i], self._filters))
        for sub, bucket in reversed(places):
            self._ensure(bucket, sub)
            pair = bucket * FINGERPRINTS + fp
            net = self._net.get(pair, 0)
            if net > 0:
                slot = 2 * pair + 1
                self._own[slot] = self._written[slot] = self._own.get(slot, 0) + 1
                self._net[pair] = net - 1
                self._occupied[bucket] -= 1
                return True
        return False

    def written(self) -> Written:
        """The pairs the batch raised, sorted."""
        slots = sorted(self._written)
        values = [self._written[slot] for slot in slots]
        if len(slots) <= _FEW_WRITTEN:
            return slots, values
        return np.array(slots, dtype=np.uint32), np.array(values, dtype=np.uint64)
