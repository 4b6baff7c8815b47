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

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import HearsayError, SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import INDEX_LIMIT, VALUE_MAX, MaxVector
from hearsay.sketch.hashing import member_hash, mix64_int
from hearsay.sketch.schemas import KIND_CUCKOO, expect_schema
from hearsay.sketch.schemas import cuckoo as cuckoo_schema
from hearsay.sketch.slots import Slices, merge_slices, summed_at

__all__ = [
    "FILTERS_MAX",
    "FINGERPRINTS",
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

FewPairs = tuple[list[int], list[int]]


class FilterFullError(HearsayError):
    """No bucket of the item has room and no sub-filter may be added (RedisBloom's
    "Filter is full")."""


class ChunkError(HearsayError):
    """A CF.LOADCHUNK chunk that is not one CF.SCANDUMP made (or is damaged)."""


def _next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


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
        "_growth",
        "_max_iterations",
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

    def _places(self, item: bytes, subs: int) -> tuple[int, list[tuple[int, int]]]:
        """The item's fingerprint and its distinct ``(sub, bucket)`` places in the first
        ``subs`` sub-filters (its first bucket before its partner in each)."""
        h = member_hash(item)
        fp = (h >> 32) % 255 + 1
        alt = mix64_int(fp, 1)
        places: list[tuple[int, int]] = []
        for sub in range(min(subs, len(self._buckets))):
            mask = self._buckets[sub] - 1
            first = h & mask
            places.append((sub, first))
            second = first ^ (alt & mask)
            if second != first:
                places.append((sub, second))
        return fp, places

    def _pair(self, sub: int, bucket: int, fp: int) -> int:
        return self._bases[sub] + bucket * FINGERPRINTS + fp

    # -- reading ------------------------------------------------------------------------------

    def filters(self, slices: Slices) -> int:
        """Sub-filters in use: one past the highest holding a slot in any slice (at least 1)."""
        top = -1
        for vec in slices.values():
            indices, _ = vec.pairs()
            if indices.size:
                top = max(top, int(indices[-1]) // 2)
        if top < 0:
            return 1
        return sum(1 for base in self._bases if base <= top)

    def _live(self, slices: Slices, pairs: Sequence[int]) -> list[int]:
        """Merged adds minus deletes at each fingerprint-pair index (may be negative)."""
        idx = np.array([[2 * p, 2 * p + 1] for p in pairs], dtype=np.int64).reshape(-1, 2)
        counts = summed_at(slices, idx).tolist()  # Python ints: no wrap-around
        return [int(adds) - int(dels) for adds, dels in counts]

    def _copies(self, slices: Slices, item: bytes, subs: int) -> list[tuple[int, int]]:
        """``(pair index, live copies)`` of the item's fingerprint at each of its places in
        the first ``subs`` sub-filters."""
        fp, places = self._places(item, subs)
        pairs = [self._pair(sub, bucket, fp) for sub, bucket in places]
        return list(zip(pairs, self._live(slices, pairs), strict=True))

    def exists(self, slices: Slices, items: Sequence[bytes]) -> list[bool]:
        """CF.EXISTS / CF.MEXISTS: present iff some place has a live copy."""
        subs = self.filters(slices)
        return [any(n > 0 for _, n in self._copies(slices, item, subs)) for item in items]

    def count(self, slices: Slices, item: bytes) -> int:
        """CF.COUNT: live copies of the item's fingerprint over its places (may overcount,
        as RedisBloom's, when other items share a fingerprint and bucket)."""
        return sum(max(0, n) for _, n in self._copies(slices, item, self.filters(slices)))

    def _bucket(self, slices: Slices, sub: int, bucket: int) -> dict[int, int]:
        """Merged adds minus deletes of every fingerprint one bucket holds (one window read
        per slice: a bucket's 512 slots are contiguous)."""
        low = 2 * self._pair(sub, bucket, 0)
        totals: dict[int, int] = {}
        for _, vec in sorted(slices.items()):
            indices, values = vec.window(low, low + 2 * FINGERPRINTS).pairs()
            for index, value in zip(indices.tolist(), values.tolist(), strict=True):
                fp = (index - low) >> 1
                totals[fp] = totals.get(fp, 0) + (-value if index & 1 else value)
        return totals

    def _all_counts(self, slices: Slices) -> tuple[npt.NDArray[np.int64], list[int], int]:
        """Every fingerprint pair with live copies (sorted) and their copies, and the deletes
        of every origin. Vectorised: CF.INFO and each CF.SCANDUMP chunk read the whole key
        (values are clipped at 2**62 so that a misbehaving peer's cannot wrap the sums)."""
        parts = [vec.pairs() for _, vec in sorted(slices.items())]
        if not parts:
            return np.zeros(0, np.int64), [], 0
        indices = np.concatenate([i for i, _ in parts]).astype(np.int64)
        values = np.minimum(
            np.concatenate([v for _, v in parts]).astype(np.uint64), np.uint64(1 << 62)
        ).astype(np.int64)
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

    def add(self, slices: Slices, origin: str, item: bytes) -> FewPairs:
        """CF.ADD by ``origin``: the pairs raising its add count at the first place with room
        (oldest sub-filter first, a new sub-filter when none has room). FilterFullError when
        no sub-filter may be added."""
        own = slices.get(origin) or MaxVector()
        fp, places = self._places(item, self.filters(slices) + 1)  # one new sub-filter at most
        for sub, bucket in places:
            counts = self._bucket(slices, sub, bucket)
            if sum(max(0, n) for n in counts.values()) >= self._bucket_size:
                continue
            pair = self._pair(sub, bucket, fp)
            raised = own.get(2 * pair) + 1 + max(0, -counts.get(fp, 0))
            if raised > VALUE_MAX:
                raise FilterFullError("Filter is full")
            return [2 * pair], [raised]
        raise FilterFullError("Filter is full")

    def delete(self, slices: Slices, origin: str, item: bytes) -> FewPairs | None:
        """CF.DEL by ``origin``: the pairs raising its delete count where the merged view has a
        live copy (newest sub-filter first), or None when the item is not there."""
        for pair, net in reversed(self._copies(slices, item, self.filters(slices))):
            if net > 0:
                own = slices.get(origin) or MaxVector()
                return [2 * pair + 1], [own.get(2 * pair + 1) + 1]
        return None

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
