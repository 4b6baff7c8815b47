"""The Bloom filter view: RedisBloom's fixed-size (non-scaling) filter over a max-vector of bits.

Bit ``j`` of the filter is slot ``j`` of the key's vector, holding 0 or 1. Setting bits is the
lattice's max, so the union of two filters of equal shape is exact, and replicas that receive
the same additions in any order, any number of times, hold the same bits.

**Sizing** follows RedisBloom's ``bloom_init`` with the options its BF.RESERVE passes
(``BLOOM_OPT_NOROUND | BLOOM_OPT_FORCE64``) and a non-scaling chain, whose error rate is not
tightened:

- bits per entry ``bpe = -ln(error) / ln(2)**2`` (RedisBloom's 15-digit constants);
- bits ``= trunc(capacity * bpe)`` (at least 1), rounded *up* to a whole number of 64-bit
  words;
- hashes ``k = ceil(ln(2) * bpe)``.

**Hashing** is hearsay's own (no RedisBloom state is ever exchanged, only answers): one
xxh3-64 of the member gives ``a``; a splitmix64 finalisation of it, forced odd, gives ``b``;
the ``k`` bit positions are ``(a + i*b) mod 2**64 mod bits`` for ``i < k`` (Kirsch and
Mitzenmacher's double hashing, with RedisBloom's 64-bit wrap-then-modulo).

**Items inserted** (BF.INFO, BF.CARD) cannot be counted exactly in a lattice: a counter beside
the bits would double count an item added on two replicas. It is estimated from the number of
set bits ``X`` (Swamidass and Baldi): ``n ~ -bits/k * ln(1 - X/bits)``, exact in expectation
and within a few percent while the filter is below capacity. A full filter (``X = bits``) is
read as ``X = bits - 1``.

**Non-scaling** means a fixed size: adds are never refused here. RedisBloom refuses an add to a
full non-scaling filter ("non scaling filter is full"); :meth:`BloomFilter.is_full` answers
that question from the estimate, for the engine to decide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import INDEX_LIMIT, MaxVector
from hearsay.sketch.hashing import member_hash, member_hashes, mix64, mix64_int
from hearsay.sketch.schemas import BLOOM_HASH_VERSION, KIND_BLOOM, error_from_bits, expect_schema
from hearsay.sketch.schemas import bloom as bloom_schema
from hearsay.sketch.slots import Pairs, values_at

__all__ = [
    "BloomFilter",
    "BloomInfo",
    "bits_per_entry",
    "hashes_for",
    "reserve_size",
]

LN2: Final = 0.693147180559945
"""RedisBloom's ``LN2`` (15 digits: a 16th would change ``ceil`` for some error rates)."""
LN2_SQUARED: Final = 0.480453013918201
"""RedisBloom's ``ln(2)^2`` in ``calc_bpe``."""

_CHAIN_STRUCT_BYTES: Final = 32
"""``sizeof(SBChain)`` on 64-bit: what RedisBloom's BF.INFO Size adds once."""
_LINK_STRUCT_BYTES: Final = 64
"""``sizeof(SBLink)`` on 64-bit: what it adds per sub-filter."""


def bits_per_entry(error_rate: float) -> float:
    """RedisBloom's ``calc_bpe``: ``|ln(error) / ln(2)^2|``."""
    rate = _check_error(error_rate)
    return abs(-(math.log(rate) / LN2_SQUARED))


def hashes_for(error_rate: float) -> int:
    """RedisBloom's hash count: ``ceil(LN2 * bpe)``."""
    return math.ceil(LN2 * bits_per_entry(error_rate))


def reserve_size(error_rate: float, capacity: int) -> tuple[int, int]:
    """``(bits, hashes)`` of ``BF.RESERVE key error_rate capacity NONSCALING`` in RedisBloom.

    Raises SketchParameterError for an error rate outside (0, 1), a capacity below 1, or a
    filter of more than 2**32 bits (the lattice's index space; 512 MiB of bits).
    """
    rate = _check_error(error_rate)
    if isinstance(capacity, bool) or not isinstance(capacity, int | np.integer) or capacity < 1:
        raise SketchParameterError(f"capacity must be a positive integer, got {capacity!r}")
    bpe = bits_per_entry(rate)
    product = float(int(capacity)) * bpe
    if not product < INDEX_LIMIT:
        raise SketchParameterError(
            f"a filter for capacity {capacity} at error {rate} needs {product:.0f} bits, "
            f"more than {INDEX_LIMIT}"
        )
    bits = max(1, int(product))  # (uint64_t)(entries * bpe): truncation
    words = bits // 64 + (1 if bits % 64 else 0)
    bits = words * 64
    if bits > INDEX_LIMIT:
        raise SketchParameterError(f"a filter of {bits} bits exceeds {INDEX_LIMIT}")
    return bits, math.ceil(LN2 * bpe)


def _check_error(error_rate: float) -> float:
    if isinstance(error_rate, bool) or not isinstance(error_rate, int | float | np.floating):
        raise SketchParameterError(f"error rate must be a number, got {error_rate!r}")
    rate = float(error_rate)
    if not 0.0 < rate < 1.0:  # also refuses NaN
        raise SketchParameterError(f"error rate must be in (0, 1), got {rate}")
    return rate


@dataclass(frozen=True, slots=True)
class BloomInfo:
    """BF.INFO's fields. ``items`` is estimated from the set bits (see the module notes)."""

    capacity: int
    size_bytes: int
    filters: int
    items: int
    expansion: int | None


class BloomFilter:
    """A stateless view of a fixed-size Bloom filter of ``bits`` bits and ``hashes`` hashes."""

    __slots__ = ("_bits", "_capacity", "_error_rate", "_hashes", "_schema")

    def __init__(self, bits: int, hashes: int, capacity: int, error_rate: float) -> None:
        self._schema = bloom_schema(bits, hashes, capacity, error_rate)
        self._bits = int(bits)
        self._hashes = int(hashes)
        self._capacity = int(capacity)
        self._error_rate = float(error_rate)

    # -- construction and sizing --------------------------------------------------------------

    @classmethod
    def reserve(cls, error_rate: float, capacity: int) -> BloomFilter:
        """BF.RESERVE ... NONSCALING: sized by RedisBloom's formulas."""
        bits, hashes = reserve_size(error_rate, capacity)
        return cls(bits, hashes, capacity, error_rate)

    @classmethod
    def from_schema(cls, schema: Schema) -> BloomFilter:
        params = schema.params
        if schema.kind != KIND_BLOOM or len(params) != 5:
            raise SketchParameterError(f"not a Bloom filter schema: {schema}")
        if params[4] != BLOOM_HASH_VERSION:
            raise SketchParameterError(f"unknown Bloom hash version {params[4]}")
        view = cls(params[0], params[1], params[2], error_from_bits(params[3]))
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def bits(self) -> int:
        return self._bits

    @property
    def hashes(self) -> int:
        return self._hashes

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def error_rate(self) -> float:
        return self._error_rate

    def shape(self) -> tuple[int, int, int]:
        """What two filters must share to be merged: ``(bits, hashes, hash version)``."""
        return (self._bits, self._hashes, BLOOM_HASH_VERSION)

    def size_bytes(self) -> int:
        """BF.INFO's Size: RedisBloom's struct overhead for one filter plus its bit array."""
        return _CHAIN_STRUCT_BYTES + _LINK_STRUCT_BYTES + self._bits // 8

    def error_bound(self) -> float:
        """The false-positive rate it was reserved for (at capacity)."""
        return self._error_rate

    def false_positive_rate(self, items: int | None = None) -> float:
        """Theoretical false-positive rate after ``items`` distinct adds (default: capacity)."""
        n = self._capacity if items is None else items
        if n < 0:
            raise SketchParameterError("item count must be non-negative")
        return float((1.0 - math.exp(-self._hashes * n / self._bits)) ** self._hashes)

    # -- hashing ------------------------------------------------------------------------------

    def positions(self, members: Sequence[bytes]) -> npt.NDArray[np.uint32]:
        """The ``(len(members), hashes)`` bit positions of every member."""
        a = member_hashes(members)
        b = mix64(a) | np.uint64(1)
        steps = np.arange(self._hashes, dtype=np.uint64)
        with np.errstate(over="ignore"):
            raw = a[:, None] + steps[None, :] * b[:, None]
        return (raw % np.uint64(self._bits)).astype(np.uint32)

    def member_positions(self, member: bytes) -> list[int]:
        """:meth:`positions` of one member, in Python ints (no arrays for a single item)."""
        a = member_hash(member)
        b = mix64_int(a) | 1
        bits = self._bits
        mask = (1 << 64) - 1
        return [((a + i * b) & mask) % bits for i in range(self._hashes)]

    # -- writing ------------------------------------------------------------------------------

    def add(self, members: Sequence[bytes]) -> Pairs:
        """The pairs that set every member's bits (no need to read the filter first)."""
        pos = self.positions(members).reshape(-1)
        return pos, np.ones(pos.size, dtype=np.uint8)

    def madd(self, vec: MaxVector, members: Sequence[bytes]) -> tuple[Pairs, npt.NDArray[np.bool_]]:
        """BF.MADD: the pairs to merge, and per member whether it was new (BF.ADD's 1).

        Exactly RedisBloom's sequential answer: a member is new when one of its bits is unset
        in the filter *and* was not set by an earlier member of the same batch (so a repeated
        member is new only the first time).
        """
        n = len(members)
        if n == 1:  # BF.ADD: the member's distinct bits, one read of them
            distinct = np.array(sorted(set(self.member_positions(members[0]))), dtype=np.uint32)
            fresh = distinct[vec.values_at(distinct) == 0]
            return (fresh, np.ones(fresh.size, dtype=np.uint8)), np.array([fresh.size > 0])
        pos = self.positions(members)
        if n == 0:
            return (pos.reshape(-1), np.ones(0, dtype=np.uint8)), np.zeros(0, dtype=np.bool_)
        flat = pos.reshape(-1)
        unset = values_at(vec, flat) == 0
        # For each distinct position, the first member (in batch order) that touches it.
        unique_pos, first_flat, inverse = np.unique(flat, return_index=True, return_inverse=True)
        first_member = (first_flat // self._hashes)[inverse]
        owner = np.repeat(np.arange(n), self._hashes)
        sets_new_bit = unset & (first_member == owner)
        added = sets_new_bit.reshape(n, self._hashes).any(axis=1)
        fresh = unique_pos[unset[first_flat]]
        return (fresh, np.ones(fresh.size, dtype=np.uint8)), added

    def merge(self, target: MaxVector, source: MaxVector, source_filter: BloomFilter) -> MaxVector:
        """Union (BF.MERGE) of ``source`` into ``target`` in place; returns the delta.

        Raises SketchParameterError when the two filters do not have the same shape.
        """
        self.check_mergeable(source_filter)
        return target.merge(source)

    def check_mergeable(self, other: BloomFilter) -> None:
        if other.shape() != self.shape():
            raise SketchParameterError(
                f"Bloom filters of different shapes cannot be merged: "
                f"{self._bits} bits / {self._hashes} hashes vs "
                f"{other.bits} bits / {other.hashes} hashes"
            )

    # -- reading ------------------------------------------------------------------------------

    def mexists(self, vec: MaxVector, members: Sequence[bytes]) -> npt.NDArray[np.bool_]:
        """BF.MEXISTS: per member, whether all its bits are set (never a false negative)."""
        if len(members) == 1:  # BF.EXISTS: one read of the member's bits
            held = vec.values_at(np.array(self.member_positions(members[0]), dtype=np.uint32))
            return np.array([bool(held.all())])
        pos = self.positions(members)
        if pos.size == 0:
            return np.zeros(len(members), dtype=np.bool_)
        result: npt.NDArray[np.bool_] = (values_at(vec, pos) != 0).all(axis=1)
        return result

    def exists(self, vec: MaxVector, member: bytes) -> bool:
        """BF.EXISTS of one member."""
        return bool(self.mexists(vec, [member])[0])

    def set_bits(self, vec: MaxVector) -> int:
        """How many bits are set (slots outside the filter, impossible after decode, ignored)."""
        indices, _ = vec.pairs()
        if indices.size and int(indices[-1]) >= self._bits:
            return int(np.count_nonzero(indices < self._bits))
        return int(indices.size)

    def card(self, vec: MaxVector) -> int:
        """BF.CARD: the estimated number of distinct items added (see the module notes)."""
        x = min(self.set_bits(vec), self._bits - 1)
        if x == 0:
            return 0
        m = float(self._bits)
        estimate = -m / self._hashes * math.log1p(-x / m)
        return math.floor(estimate + 0.5)

    def info(self, vec: MaxVector) -> BloomInfo:
        """BF.INFO: capacity, size in bytes, one filter, estimated items, no expansion."""
        return BloomInfo(
            capacity=self._capacity,
            size_bytes=self.size_bytes(),
            filters=1,
            items=self.card(vec),
            expansion=None,
        )

    def is_full(self, vec: MaxVector) -> bool:
        """Whether the estimated item count has reached the capacity."""
        return self.card(vec) >= self._capacity

    def is_empty(self, vec: MaxVector) -> bool:
        return vec.is_empty()
