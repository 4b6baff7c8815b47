"""A TOPK.ADD / INCRBY in Python: the statement ``_heavykeeper.add`` (C) runs, step for step,
as ``hearsay.sketch.topk`` ran it before it moved to C (HeavyKeeper's rows: :class:`Rows`, also
the statement of ``_heavykeeper.rows``; the list: :func:`reference_add`). The tests hold the C
to it: the same replies, the same slots written in the same order, the same decays left."""

from __future__ import annotations

import heapq
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from hearsay.lattice.vector import MaxVector
from hearsay.sketch.hashing import member_hash, mix64_int
from hearsay.sketch.schemas import TOPK_LIST_BASE, TOPK_POSITION_SLOTS
from hearsay.sketch.slots import Slices, values_of
from hearsay.sketch.topk import (
    COUNT_MAX,
    DECAYS_PER_CALL_MAX,
    DECAYS_PER_ROW_MAX,
    GENERATION_MAX,
    ITEM_BYTES_MAX,
    TopK,
)

_LOW32 = 0xFFFFFFFF
_TICKS = 0
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1
_TICKS_MAX = (1 << 63) - 1
_UNIT = 1.0 / (1 << 53)


class Rows:
    """One call's rows over a run's cache (slot -> value) and written pairs."""

    def __init__(self, cache: dict[int, int], decay: float, decays_left: int) -> None:
        self.cache = cache
        self.indices: list[int] = []
        self.values: list[int] = []
        self.decay = decay
        self.powers = [decay**c for c in range(256)]
        self.decays_left = decays_left

    def _put(self, index: int, value: int) -> None:
        if value > self.cache[index]:
            self.cache[index] = value
            self.indices.append(index)
            self.values.append(value)

    def _decay_at(self, count: int) -> float:
        return self.powers[count] if count < 256 else self.decay**count

    def add(self, slots: list[int], fp: int, increment: int, seed: int) -> int:
        """The item's increment through every row: the best count of the rows it holds."""
        best = 0
        for row, slot in enumerate(slots):
            count = self._bucket_add(slot, fp, increment, mix64_int(seed, row + 1))
            if count is not None:
                best = max(best, count)
        return min(best, COUNT_MAX)

    def _bucket_add(self, slot: int, fp: int, increment: int, seed: int) -> int | None:
        cache = self.cache
        fp_value, up_value, down_value = cache[slot], cache[slot + 1], cache[slot + 2]
        generation = fp_value >> 32
        up = up_value & _LOW32 if up_value >> 32 == generation else 0
        down = down_value & _LOW32 if down_value >> 32 == generation else 0
        count = max(up - down, 0)
        newest = max(generation, up_value >> 32, down_value >> 32)
        if generation and (fp_value & _LOW32) == fp:
            if up + increment <= COUNT_MAX:
                self._put(slot + 1, generation << 32 | (up + increment))
                return count + increment
            return self._take(slot, newest, fp, count + increment)
        if count == 0:
            return self._take(slot, newest, fp, increment)
        remaining = increment
        decays = 0
        draw = 0
        cap = min(DECAYS_PER_ROW_MAX, self.decays_left)
        while remaining > 0 and decays < cap:
            p = self._decay_at(count - decays)
            if p >= 1.0:
                trials = min(count - decays, remaining, cap - decays)
                decays += trials - 1
            else:
                draw += 1
                u = (mix64_int(seed, draw) >> 11) * _UNIT
                step = math.log1p(-p)
                failures = math.log1p(-u) / step if step else math.inf
                if failures >= remaining:
                    break
                trials = int(failures) + 1
            remaining -= trials
            decays += 1
            if decays == count:
                self.decays_left -= decays
                return self._take(slot, newest, fp, remaining + 1)
        self.decays_left -= decays
        if decays:
            self._put(slot + 2, generation << 32 | (down + decays))
        return None

    def _take(self, slot: int, newest: int, fp: int, count: int) -> int | None:
        if newest >= GENERATION_MAX:
            return None
        tag = (newest + 1) << 32
        count = min(count, COUNT_MAX)
        self.cache[slot] = tag | fp
        self.cache[slot + 1] = tag | count
        self.indices += (slot, slot + 1)
        self.values += (tag | fp, tag | count)
        return count


@dataclass(slots=True)
class _Position:
    """One list position of the writer's own slice, decoded."""

    generation: int
    count: int
    fingerprint: int
    length: int
    item: bytes | None  # decoded on demand (None: not yet read)
    newest: int  # the newest generation any of its slots carries (a rewrite goes past it)


@dataclass(slots=True)
class _Own:
    """A writer's own slice during one call or run: reads go through a cache of the slots
    this run has read or written, writes are collected as pairs."""

    vec: MaxVector | None
    cache: dict[int, int] = field(default_factory=dict)
    indices: list[int] = field(default_factory=list)
    values: list[int] = field(default_factory=list)

    def get(self, index: int) -> int:
        value = self.cache.get(index)
        if value is None:
            value = self.vec.get(index) if self.vec is not None else 0
            self.cache[index] = value
        return value

    def prefetch(self, indices: list[int]) -> list[int]:
        """Read ``indices`` into the cache in one look-up (in C over a sparse slice's packed
        pairs, vectorised over a dense one: a few reads one by one cost a bisect set-up
        each); their values."""
        vec = self.vec
        values = [0] * len(indices) if vec is None else values_of(vec, indices)
        self.cache.update(zip(indices, values, strict=True))
        return values

    def read(self, indices: list[int]) -> list[int]:
        """The values at ``indices``, those not read yet in one :meth:`prefetch`."""
        cache = self.cache
        missing = [index for index in indices if index not in cache]
        if missing:
            self.prefetch(missing)
        return [cache[index] for index in indices]

    def put(self, index: int, value: int) -> None:
        if value > self.get(index):
            self.cache[index] = value
            self.indices.append(index)
            self.values.append(value)


def _item_words(item: bytes, generation: int) -> list[int]:
    tag = generation << 32
    padded = item + b"\0" * (-len(item) % 4)
    return [tag | word for (word,) in struct.iter_unpack("<I", padded)]


def reference_add(
    view: TopK, slices: Slices, origin: str, calls: Sequence[Sequence[tuple[bytes, int]]]
) -> tuple[tuple[list[int], list[int]], list[list[bytes | None]]]:
    """:meth:`TopK.add` in Python: the statement ``_heavykeeper.add`` runs (see its notes)."""
    own = _Own(slices.get(origin))
    hashed = [[(item, increment, member_hash(item)) for item, increment in c] for c in calls]
    rows = [_buckets_of(view, h) for call in hashed for _, _, h in call]
    k = view.info().k
    base = TOPK_LIST_BASE
    header_list = [base + TOPK_POSITION_SLOTS * at + j for at in range(k) for j in range(3)]
    wanted = [*header_list, _TICKS]
    for first_slots in rows:
        for slot in first_slots:
            wanted += (slot, slot + 1, slot + 2)
    headers = own.prefetch(wanted)[: len(header_list)]
    writer = _Writer(view, own, _positions(headers))
    replies: list[list[bytes | None]] = []
    at = 0
    for call in hashed:
        writer.decays_left = DECAYS_PER_CALL_MAX
        out: list[bytes | None] = []
        for item, increment, h in call:
            out.append(writer.add_one(item, increment, h, rows[at]))
            at += 1
        replies.append(out)
    return (own.indices, own.values), replies


def _buckets_of(view: TopK, h: int) -> list[int]:
    """The first slot of the item's bucket in each row (double hashing of one xxh3)."""
    info = view.info()
    step = mix64_int(h) | 1
    start = h >> 32
    width = info.width
    return [8 + 3 * (row * width + (start + row * step) % width) for row in range(info.depth)]


def _position_slot(at: int) -> int:
    return TOPK_LIST_BASE + TOPK_POSITION_SLOTS * at


def _positions(raw: list[int]) -> list[_Position]:
    """The writer's ``k`` positions from their header slots' values (an incomplete one reads
    as empty, keeping its newest generation so a rewrite goes past it)."""
    out: list[_Position] = []
    for at in range(len(raw) // 3):
        length_v, count_v, fp_v = raw[3 * at : 3 * at + 3]
        generation = length_v >> 32
        if generation and count_v >> 32 == generation and fp_v >> 32 == generation:
            length, count = length_v & _LOW32, count_v & _LOW32
            out.append(_Position(generation, count, fp_v & _LOW32, length, None, generation))
        else:
            newest = max(length_v >> 32, count_v >> 32, fp_v >> 32)
            out.append(_Position(0, 0, 0, 0, None, newest))
    return out


class _Writer:
    """One call or run of TOPK.ADD / INCRBY on a writer's own slice: its HeavyKeeper rows
    and its list (RedisBloom's ``TopK_Add``, item by item)."""

    __slots__ = ("_by_fp", "_lowest", "_own", "_positions", "_view", "decays_left")

    def __init__(self, view: TopK, own: _Own, positions: list[_Position]) -> None:
        self._view = view
        self._own = own
        self._positions = positions
        self.decays_left = DECAYS_PER_CALL_MAX  # reset by the caller for each call
        self._by_fp: dict[int, list[int]] = {}
        for at, position in enumerate(positions):
            if position.generation:
                self._by_fp.setdefault(position.fingerprint, []).append(at)
        # RedisBloom's heap[0]: the position of least (count, occupied, index). A heap of
        # every state a position took; an entry no longer its position's state is skipped.
        self._lowest = [(p.count, p.generation > 0, at) for at, p in enumerate(positions)]
        heapq.heapify(self._lowest)

    def _minimum(self) -> int:
        lowest, positions = self._lowest, self._positions
        while True:
            count, occupied, at = lowest[0]
            position = positions[at]
            if position.count == count and (position.generation > 0) == occupied:
                return at
            heapq.heappop(lowest)

    def _changed(self, at: int) -> None:
        position = self._positions[at]
        heapq.heappush(self._lowest, (position.count, position.generation > 0, at))

    def add_one(self, item: bytes, increment: int, h: int, slots: list[int]) -> bytes | None:
        """One item's increment: the item expelled from the list, or None."""
        own, positions = self._own, self._positions
        fp = h & _LOW32
        ticks = own.cache[_TICKS]
        if ticks < _TICKS_MAX:  # (a plain count: stops at a vector value's largest)
            own.put(_TICKS, ticks + 1)
        seed = h ^ ((ticks * _GOLDEN) & _MASK64)
        rows = Rows(own.cache, self._view.decay, self.decays_left)
        best = rows.add(slots, fp, increment, seed)
        self.decays_left = rows.decays_left
        own.indices += rows.indices
        own.values += rows.values
        at = self._minimum()
        if best < positions[at].count:
            return None
        listed = self._listed(self._by_fp.get(fp, ()), item)
        if listed is not None:
            position = positions[listed]
            if best > position.count:  # counts rise in place
                own.put(_position_slot(listed) + 1, position.generation << 32 | best)
                position.count = best
                self._changed(listed)
            elif best < position.count and position.newest < GENERATION_MAX:
                # RedisBloom takes the new count even when lower: a new generation
                self._publish(listed, item, fp, best)
            return None
        victim = positions[at]
        if victim.newest >= GENERATION_MAX:
            return None
        expelled = None
        if victim.generation:
            expelled = self._item_of(at, victim)
            self._by_fp[victim.fingerprint].remove(at)
        self._publish(at, item, fp, best)
        self._by_fp.setdefault(fp, []).append(at)
        return expelled

    def _item_of(self, at: int, position: _Position) -> bytes:
        if position.item is None and position.length > ITEM_BYTES_MAX:
            position.item = b""  # never written by an honest writer: compares unequal
        if position.item is None:
            base = _position_slot(at) + 3
            words = self._own.read([base + i for i in range((position.length + 3) // 4)])
            if any(word >> 32 != position.generation for word in words):
                position.item = b""  # never completely written: compares unequal
            else:
                data = b"".join(struct.pack("<I", word & _LOW32) for word in words)
                position.item = data[: position.length]
        return position.item

    def _listed(self, candidates: Sequence[int], item: bytes) -> int | None:
        for at in candidates:
            position = self._positions[at]
            if position.length == len(item) and self._item_of(at, position) == item:
                return at
        return None

    def _publish(self, at: int, item: bytes, fp: int, count: int) -> None:
        """Position ``at`` rewritten to hold ``item`` under a new generation."""
        generation = self._positions[at].newest + 1
        tag = generation << 32
        base = _position_slot(at)
        own = self._own
        own.put(base, tag | len(item))
        own.put(base + 1, tag | count)
        own.put(base + 2, tag | fp)
        for i, word in enumerate(_item_words(item, generation)):
            own.put(base + 3 + i, word)
        self._positions[at] = _Position(generation, count, fp, len(item), item, generation)
        self._changed(at)
