"""The Top-K view: RedisBloom's TOPK.* (HeavyKeeper plus a top-k list) over per-origin slices.

HeavyKeeper's counters decay and its list expels items, so no slot of it only grows: like the
t-digest it cannot be one shared max-vector. Each node keeps **its own HeavyKeeper and its own
top-k list in its own slice** (the schema is additive), and every slot value but the first
carries a *generation* in its high bits::

    slot value = generation << 32 | payload (32 bits)

Generations belong to a **bucket** or a **list position**, not to the whole slice, so a write
costs what it changes. Within one generation a slot only ever rises (a bucket's increments and
decays are two counters that only grow; a listed count that rises is rewritten in place); what
would lower a slot (a bucket taken over by another item, a listed count that fell, an item
expelled from the list) rewrites that one bucket or position under ``generation + 1``. The
element-wise max keeps each slot's newest generation, and a reader uses a bucket or position
only when all its slots carry the same generation, so a slice delivered in any pieces, in any
order, any number of times, reads the same once complete (an incomplete bucket or position
reads as empty until the rest arrives).

Layout of one slice (``M = 2**32 - 1``; ``b = row * width + column``; ``p`` a list position):

=====================================  =========================================================
slots                                  what
=====================================  =========================================================
0                                      items added by this origin (a plain count: the seed of
                                       its decay coin flips, so a run replays exactly)
``8 + 3 b``, ``+ 1``, ``+ 2``          bucket ``b``: fingerprint, increments, decays
                                       (its count is increments - decays)
``2**31 + 2**14 p`` ``+ 0, 1, 2``      list position ``p``: item length, count, fingerprint
``2**31 + 2**14 p + 3`` ...            the item's bytes, four to a slot (little-endian)
=====================================  =========================================================

**HeavyKeeper** follows RedisBloom's ``topk.c``: per row, an empty bucket or one holding the
item's fingerprint takes the increment; another item's bucket decays by one with probability
``decay ** count`` per unit of increment and is taken over when it reaches zero. The coin flips
come from a hash of the item, the row and slot 0 (deterministic: the same calls give the same
slice on every run); the trials until the next decay are drawn at once (geometric), so an
INCRBY of 100,000 costs the decays that happen, at most :data:`DECAYS_PER_ROW_MAX` per row.

**The list** is RedisBloom's heap, kept as ``k`` positions: an item whose count reaches the
list's minimum enters at the minimum's position (its item is the one TOPK.ADD replies as
expelled); a listed item's count becomes its new HeavyKeeper count.

**Reading** merges the origins (in id order): every item listed by some origin is a
candidate; its count is the sum over origins of that origin's listed count, or its HeavyKeeper
estimate where it is not listed; the merged list is the ``k`` largest (ties by item bytes), so
every node holding the same slices answers the same. An item heavy overall but in no origin's
list is missed.

**Departed origins** (HEARSAY.FORGET, :mod:`hearsay.engine.retire`) fold into a retired slice
``~t`` holding only a list: every item some departed origin listed, with the sum of their
listed counts, at positions in item order (slot 0 holds how many; no HeavyKeeper, so an item
it does not list counts 0 there). A sum per item is associative, so folding a fold with more
origins gives what folding them all at once does, and every node folding the same slices
writes the same slice. What a fold drops: the departed origins' HeavyKeeper estimates of
items they did not list (reads move by those), and their HeavyKeepers' memory (``3 * width *
depth`` slots each). A retired list grows by the items departed origins listed that no other
departed origin listed: at most ``k`` a departed origin, usually far fewer (heavy hitters are
heavy everywhere); past :data:`RETIRED_POSITIONS_MAX` items the fold is refused and the raw
slices stay.

**Bounds.** Counts are 32-bit as in RedisBloom (saturating here, not wrapping); a bucket or
position can be rewritten :data:`GENERATION_MAX` times (past that, a bucket is no longer taken
over and a position no longer admits a new item); items are at most :data:`ITEM_BYTES_MAX`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import SketchParameterError, TooLargeError
from hearsay.lattice.entry import Schema
from hearsay.lattice.retired import retired_time
from hearsay.lattice.vector import INDEX_LIMIT, MaxVector
from hearsay.sketch import _heavykeeper
from hearsay.sketch.hashing import member_hash, member_hashes, mix64
from hearsay.sketch.schemas import KIND_TOPK, TOPK_LIST_BASE, TOPK_POSITION_SLOTS, expect_schema
from hearsay.sketch.schemas import topk as topk_schema
from hearsay.sketch.slots import READ_CHUNK_ITEMS, Slices

__all__ = [
    "DECAYS_PER_ROW_MAX",
    "GENERATION_MAX",
    "INCREMENT_MAX",
    "ITEM_BYTES_MAX",
    "TopK",
    "TopKInfo",
]

GENERATION_MAX: Final = (1 << 31) - 1
COUNT_MAX: Final = (1 << 32) - 1
"""A count's largest value (32 bits, saturating). This and the two bounds below are also
constants of _heavykeeper.c, which runs the rows; the tests hold both to one answer."""
INCREMENT_MAX: Final = 100_000
"""TOPK.INCRBY's largest increment (RedisBloom's)."""
DECAYS_PER_ROW_MAX: Final = 1_024
"""Decays one item's increment may cause in one row. Only a decay very close to 1 reaches it
(at 0.9, a count of 200 decays with probability 7e-10); it bounds what one request costs."""
DECAYS_PER_CALL_MAX: Final = 65_536
"""Decays one TOPK.ADD / INCRBY call may cause in all (past them, its increments' decay
trials fail): with :data:`DECAYS_PER_ROW_MAX`, what bounds a call whatever its decay."""
ITEM_BYTES_MAX: Final = 4 * (TOPK_POSITION_SLOTS - 3)
RETIRED_POSITIONS_MAX: Final = (INDEX_LIMIT - TOPK_LIST_BASE) // TOPK_POSITION_SLOTS
"""List positions a retired slice may hold (the slot space above the list base: 131,072)."""
_LOW32: Final = 0xFFFFFFFF
_BUCKETS: Final = 8
_DOUBLE: Final = struct.Struct("<d")


@dataclass(frozen=True, slots=True)
class TopKInfo:
    """TOPK.INFO's fields."""

    k: int
    width: int
    depth: int
    decay: float


class TopK:
    """A stateless Top-K view of one ``(k, width, depth, decay)`` (slots as in the notes)."""

    __slots__ = (
        "_decay",
        "_depth",
        "_header_slots",
        "_k",
        "_powers",
        "_schema",
        "_width",
    )

    def __init__(self, k: int, width: int, depth: int, decay: float) -> None:
        self._schema = topk_schema(k, width, depth, decay)
        self._k, self._width, self._depth = int(k), int(width), int(depth)
        self._decay = float(decay)
        self._powers = struct.pack("=256d", *(self._decay**c for c in range(256)))
        self._header_slots = _header_slots(self._k)

    @classmethod
    def from_schema(cls, schema: Schema) -> TopK:
        if schema.kind != KIND_TOPK or len(schema.params) != 4:
            raise SketchParameterError(f"not a Top-K schema: {schema}")
        k, width, depth, decay_bits = schema.params
        (decay,) = _DOUBLE.unpack(int(decay_bits).to_bytes(8, "little"))
        view = cls(k, width, depth, decay)
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def depth(self) -> int:
        return self._depth

    def info(self) -> TopKInfo:
        return TopKInfo(self._k, self._width, self._depth, self._decay)

    # -- hashing ------------------------------------------------------------------------------

    def _bucket_slots(self, hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """The first slot of each item's bucket in each row, ``(len(hashes), depth)``: double
        hashing of one xxh3 (row ``r``: ``(h >> 32) + r * (mix64(h) | 1)`` modulo the width),
        reduced modulo the width term by term so that no uint64 wraps (the width is below 2**31
        and the depth at most 64). ``tests/support/topk_reference.py`` states it in Python ints,
        as the C's ``add`` places items."""
        width = np.uint64(self._width)
        rows = np.arange(self._depth, dtype=np.uint64)[None, :]
        step = (mix64(hashes) | np.uint64(1)) % width
        start = (hashes >> np.uint64(32)) % width
        inner = (start[:, None] + rows * step[:, None]) % width
        slots = np.uint64(_BUCKETS) + np.uint64(3) * (rows * width + inner)
        return slots.astype(np.int64)

    # -- writing ------------------------------------------------------------------------------

    def add(
        self, slices: Slices, origin: str, calls: Sequence[Sequence[tuple[bytes, int]]]
    ) -> tuple[tuple[list[int], list[int]], list[list[bytes | None]]]:
        """TOPK.ADD / INCRBY by ``origin``, one call after another (items with increments).

        Returns the pairs for its own slice and, per call, per item, the item expelled from
        this origin's list (None when none was). Reads and writes only ``origin``'s slice; a
        run of calls gives exactly the pairs and replies of the calls in turn. The work is
        ``_heavykeeper.add`` (C); ``tests/support/topk_reference.py`` is its statement in Python.
        """
        vec = slices.get(origin)
        view = None if vec is None else vec.sparse_view()
        read: bytes | Callable[[list[int]], list[int]] = (
            _zeros if vec is None else view[0] if view and view[1] is None else vec.values_of
        )  # (the packed pairs are searched in C; an overlay's vector is read through Python)
        items = [item for call in calls for item, _ in call]
        increments = [increment for call in calls for _, increment in call]
        # (one call, TOPK.ADD / INCRBY outside a pipelined run: its end without accumulate)
        ends = [len(items)] if len(calls) == 1 else list(accumulate(map(len, calls)))
        pairs, expelled = _heavykeeper.add(
            read,
            items,
            list(map(member_hash, items)),
            increments,
            self._k,
            self._width,
            self._depth,
            self._powers,
            self._decay,
            ends,
        )
        if len(calls) == 1:
            return pairs, [expelled]
        return pairs, [expelled[start:end] for start, end in zip([0, *ends], ends, strict=False)]

    @property
    def decay(self) -> float:
        return self._decay

    # -- reading ------------------------------------------------------------------------------

    def _listed(self, origin: str, vec: MaxVector) -> dict[bytes, int]:
        """An origin's list (its ``k`` positions), or a retired slice's (as many as its slot 0
        says)."""
        if retired_time(origin) is None:
            return self._origin_list(vec, self._header_slots)
        return self._retired_list(vec)

    def _retired_list(self, vec: MaxVector) -> dict[bytes, int]:
        """A retired slice's list: as many positions as its slot 0 says."""
        return self._origin_list(vec, _header_slots(min(vec.get(0), RETIRED_POSITIONS_MAX)))

    def _origin_list(self, vec: MaxVector, header_slots: npt.NDArray[np.int64]) -> dict[bytes, int]:
        """A slice's complete list positions with a count (``header_slots``: the three header
        slots of each position read): item -> count (two vectorised reads: the headers, then
        every listed item's words)."""
        if not header_slots.size:
            return {}
        raw = vec.values_at(header_slots).reshape(-1, 3)
        shift, low = np.uint64(32), np.uint64(_LOW32)
        generation = raw[:, 0] >> shift
        lengths = (raw[:, 0] & low).astype(np.int64)
        counts = raw[:, 1] & low
        complete = (
            (generation > 0)
            & (raw[:, 1] >> shift == generation)
            & (raw[:, 2] >> shift == generation)
            & (counts > 0)
            & (lengths <= ITEM_BYTES_MAX)
        )
        at = np.flatnonzero(complete)
        if not at.size:
            return {}
        words = (lengths[at] + 3) // 4
        starts = TOPK_LIST_BASE + TOPK_POSITION_SLOTS * at + 3
        ends = np.cumsum(words)
        offsets = np.arange(int(ends[-1]), dtype=np.int64) - np.repeat(ends - words, words)
        values = vec.values_at(np.repeat(starts, words) + offsets)
        current = values >> shift == np.repeat(generation[at], words)
        data = (values & low).astype("<u4").tobytes()
        out: dict[bytes, int] = {}
        for i, (first, end) in enumerate(zip((ends - words).tolist(), ends.tolist(), strict=True)):
            if not current[first:end].all():
                continue
            item = data[4 * first : 4 * first + int(lengths[at[i]])]
            count = int(counts[at[i]])
            out[item] = max(out.get(item, 0), count)
        return out

    def _estimates(self, vec: MaxVector, items: Sequence[bytes]) -> list[int]:
        """One origin's HeavyKeeper estimate of each item (the most of its rows' counts), read
        :data:`READ_CHUNK_ITEMS` items at a time: arrays of ``depth`` words an item, not a
        Python list of slots per item (a TOPK.COUNT of 200,000 items took ~5 us and 600 bytes
        an item)."""
        out: list[int] = []
        shift, low = np.uint64(32), np.uint64(_LOW32)
        for begin in range(0, len(items), READ_CHUNK_ITEMS):
            hashes = member_hashes(items[begin : begin + READ_CHUNK_ITEMS])
            slots = self._bucket_slots(hashes)
            fp_v = vec.values_at(slots)
            up_v = vec.values_at(slots + 1)
            down_v = vec.values_at(slots + 2)
            generation = fp_v >> shift
            up = np.where(up_v >> shift == generation, up_v & low, 0).astype(np.int64)
            down = np.where(down_v >> shift == generation, down_v & low, 0).astype(np.int64)
            mine = (generation > 0) & ((fp_v & low) == (hashes & low)[:, None])
            counts = np.where(mine, np.maximum(up - down, 0), 0)
            out += counts.max(axis=1).tolist()
        return out

    def _per_origin(self, slices: Slices, items: Sequence[bytes]) -> list[int]:
        totals = [0] * len(items)
        for origin, vec in sorted(slices.items()):
            listed = self._listed(origin, vec)
            if retired_time(origin) is not None:  # (a list alone: what it does not list is 0)
                for i, item in enumerate(items):
                    totals[i] += listed.get(item, 0)
                continue
            unlisted = [i for i, item in enumerate(items) if item not in listed]
            estimates = self._estimates(vec, [items[i] for i in unlisted])
            for i, item in enumerate(items):
                if item in listed:
                    totals[i] += listed[item]
            for i, estimate in zip(unlisted, estimates, strict=True):
                totals[i] += estimate
        return totals

    def count(self, slices: Slices, items: Sequence[bytes]) -> list[int]:
        """TOPK.COUNT: each item's count summed over origins (listed count, else estimate)."""
        return self._per_origin(slices, items)

    def top(self, slices: Slices) -> list[tuple[bytes, int]]:
        """The merged list: the ``k`` items of largest summed count (ties by item bytes)."""
        candidates: set[bytes] = set()
        for origin, vec in sorted(slices.items()):
            candidates.update(self._listed(origin, vec))
        items = sorted(candidates)
        counts = self._per_origin(slices, items)
        ranked = sorted(
            ((item, c) for item, c in zip(items, counts, strict=True) if c > 0),
            key=lambda pair: (-pair[1], pair[0]),
        )
        return ranked[: self._k]

    def query(self, slices: Slices, items: Sequence[bytes]) -> list[bool]:
        """TOPK.QUERY: whether each item is in the merged list."""
        listed = {item for item, _ in self.top(slices)}
        return [item in listed for item in items]

    def retired(self, departed: Sequence[MaxVector], older: MaxVector | None) -> MaxVector:
        """The retired slice of ``departed`` origins' slices and an ``older`` retired one: every
        item they list, with its listed counts summed (saturating at :data:`COUNT_MAX`), at
        positions in item order under generation 1, and their number in slot 0. A function of
        the items' summed counts only, so it is associative (see the module notes).
        TooLargeError past :data:`RETIRED_POSITIONS_MAX` items."""
        counts: dict[bytes, int] = {}
        lists = [self._origin_list(vec, self._header_slots) for vec in departed]
        if older is not None:
            lists.append(self._retired_list(older))
        for listed in lists:
            for item, count in listed.items():
                counts[item] = counts.get(item, 0) + count
        if not counts:
            return MaxVector()
        if len(counts) > RETIRED_POSITIONS_MAX:
            raise TooLargeError(f"a retired Top-K list of {len(counts)} items")
        indices = [0]
        values = [len(counts)]
        generation = 1 << 32
        for position, item in enumerate(sorted(counts)):
            base = TOPK_LIST_BASE + TOPK_POSITION_SLOTS * position
            padded = item + b"\0" * (-len(item) % 4)
            words = struct.unpack(f"<{len(padded) // 4}I", padded)
            indices += range(base, base + 3 + len(words))
            values += [
                generation | len(item),
                generation | min(counts[item], COUNT_MAX),
                generation | (member_hash(item) & _LOW32),
                *(generation | word for word in words),
            ]
        return MaxVector.from_pairs(
            np.array(indices, dtype=np.uint32), np.array(values, dtype=np.uint64)
        )


def _header_slots(positions: int) -> npt.NDArray[np.int64]:
    """The three header slots of each of the first ``positions`` list positions."""
    base = TOPK_LIST_BASE + TOPK_POSITION_SLOTS * np.arange(positions, dtype=np.int64)
    slots: npt.NDArray[np.int64] = (base[:, None] + np.arange(3)).reshape(-1)
    return slots


def _zeros(indices: list[int]) -> list[int]:
    """The values of a slice not written yet."""
    return [0] * len(indices)
