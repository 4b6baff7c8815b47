"""The Bloom filter view: RedisBloom's filters (scalable or not) over a max-vector of bits.

Every bit is a slot of the key's vector holding 0 or 1. Setting bits is the lattice's max, so
the union of two filters of equal shape is exact, and replicas that receive the same additions
in any order, any number of times, hold the same bits.

**Two schemas.** A *plain* filter (params ``(bits, hashes, capacity, error_bits, hash_v)``,
what every hearsay filter was before scaling existed) is one fixed-size filter at slots
``0..bits-1`` that is never refused: past capacity its false-positive rate grows. A *chain*
(params ``(bits0, hashes0, capacity, error_bits, hash_v, expansion)``) is RedisBloom's
scalable filter; ``expansion`` 0 means NONSCALING. Existing plain keys keep exactly their
meaning; BF.RESERVE, BF.INSERT and BF.ADD create chains.

**A chain's layout** is a function of its parameters only, so nodes agree without talking:

- slots ``1..FILTERS_MAX-1`` are markers: slot ``j`` is 1 once sub-filter ``j`` was started
  (for a NONSCALING chain slot 1 means "full");
- sub-filter ``i`` (capacity ``capacity * expansion**i``, error ``error * 0.5**(i+1)`` as
  RedisBloom's tightening, ``error`` itself when NONSCALING) holds slots
  ``base_i..base_i+bits_i-1``, ``base_0 = FILTERS_MAX``, each right after the previous one.
  Only sub-filters that fit below 2**32 slots (at most :data:`FILTERS_MAX`) exist.

The number of sub-filters is not stored as a count: it is one past the last of the markers set
from 1 on, and a marker is written in the same delta as the first bits of its sub-filter, so
two nodes that start sub-filter ``i+1`` concurrently share it. EXISTS checks every sub-filter
and one more (membership is the OR): another node's writes into a sub-filter may arrive before
the delta that started it. An add goes to the last one unless that one is full, in which case
it starts the next.

**Full** is decided from the merged bits, not from a count: sub-filter ``i`` is full when its
set bits reach ``bits_i * (1 - exp(-hashes_i * capacity_i / bits_i))``, the expected fill
after ``capacity_i`` items (as RedisBloom starts its next filter at the add after the last one
holds its capacity). Counting set bits costs a read of the whole sub-filter (a popcount, or a
search in packed pairs), so it is done only on new items whose hash picks them (about
:data:`FILL_CHECKS` per sub-filter's capacity, the same items on every node). The count is
exact, so a sub-filter holds its capacity within the hashing's own noise (a few hundred items
of a million) plus the items added before the next count (``capacity / FILL_CHECKS`` on
average: its error goes as its fill to the power ``hashes``, so this costs ~2% of it).

**Sizing** of each (sub-)filter follows RedisBloom's ``bloom_init`` with the options its
BF.RESERVE passes (``BLOOM_OPT_NOROUND | BLOOM_OPT_FORCE64``):

- bits per entry ``bpe = -ln(error) / ln(2)**2`` (RedisBloom's 15-digit constants);
- bits ``= trunc(capacity * bpe)`` (at least 1), rounded *up* to a whole number of 64-bit
  words;
- hashes ``k = ceil(ln(2) * bpe)``.

**Hashing** is hearsay's own (no RedisBloom state is ever exchanged, only answers): one
xxh3-64 of the member gives ``a``; a splitmix64 finalisation of it, forced odd, gives ``b``;
the ``k`` bit positions in a (sub-)filter of ``bits`` bits are ``(a + i*b) mod 2**64 mod bits``
for ``i < k`` (Kirsch and Mitzenmacher's double hashing, with RedisBloom's 64-bit
wrap-then-modulo), offset by the sub-filter's base.

**Items inserted** (BF.INFO, BF.CARD) cannot be counted exactly in a lattice: a counter beside
the bits would double count an item added on two replicas. It is estimated from the number of
set bits ``X`` of each (sub-)filter (Swamidass and Baldi): ``n ~ -bits/k * ln(1 - X/bits)``,
summed over sub-filters; exact in expectation, within a few percent while a filter is below
capacity, and the same on every node holding the same bits. A full filter (``X = bits``) is
read as ``X = bits - 1``.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import INDEX_LIMIT, MaxVector
from hearsay.sketch import _bloombits
from hearsay.sketch.hashing import member_hash, member_hashes, mix64, mix64_int
from hearsay.sketch.schemas import BLOOM_HASH_VERSION, KIND_BLOOM, error_from_bits, expect_schema
from hearsay.sketch.schemas import bloom as bloom_schema
from hearsay.sketch.slots import READ_CHUNK_ITEMS, FewPairs, Pairs, values_at, values_of

__all__ = [
    "FILL_CHECKS",
    "FILTERS_MAX",
    "NONSCALING",
    "BloomFilter",
    "BloomInfo",
    "ChainAdds",
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

FILTERS_MAX: Final = 64
"""Sub-filters of a chain at most, and the marker slots before its first sub-filter. With
expansion 2 the 64th would hold 2**63 times the first one's capacity; with expansion 1 an
EXISTS of a chain this long already reads a few thousand bits."""
NONSCALING: Final = 0
"""A chain's ``expansion`` parameter for NONSCALING (RedisBloom's expansions are >= 1)."""
TIGHTENING: Final = 0.5
"""RedisBloom's ``ERROR_TIGHTENING_RATIO``: sub-filter ``i`` of a scaling chain is built for
``error * 0.5**(i+1)``, so the whole chain stays below ``error``."""
FILL_CHECKS: Final = 256
"""New items of a sub-filter's capacity whose add counts its fill: one in ``capacity /
FILL_CHECKS`` (every one when the capacity is below that), chosen by the item's hash.

Why this many: a false-positive rate goes as the fill to the power ``hashes`` (7 to 15 bits
at the usual errors), so overfilling a sub-filter's bits by x% raises its error by about
``hashes * x``%; with one check in ``capacity / 32`` items, 12 of 40 random chains ended above
1.1x their asked error (up to 1.76x). The bound is the fill at capacity (a sub-filter is not
started early: a filter of capacity n holds n items, as RedisBloom's), so the items added
before the next count overshoot it by ``capacity / FILL_CHECKS`` on average: 0.4%."""


CHAIN_MADD_ITEMS_MAX: Final = 1000
"""Items one :meth:`BloomFilter.chain_madd` call answers (the caller calls again for the rest):
it reads every item's positions as Python ints, about 750 bytes an item, and a 10,000-item
BF.MADD's 7.4 MB of them at once left a real node's heap that much bigger (fragmented) for
good."""
CHAIN_MADD_BITS_ITEMS_MAX: Final = 16_384
"""Items one call answers when the chain is read in C (``_bloombits.add_pass``, a bitset or
packed pairs): 8 bytes of hash an item and a set of the positions it sets, no Python object
per item. (A pass also ends at the first fill check that would count the
items before it: every ``capacity / FILL_CHECKS`` new items.)"""
PAIRS_AS_LISTS_MAX: Final = 4096
"""A pass's pairs up to this many go to the write as Python lists, the form a write's few-pairs
path takes: into a big sparse filter they go to its overlay (up to 4,096 pairs a write) with
no copy of its packed pairs. As arrays, every pipelined run of BF.ADDs to a sparse 1M-capacity
filter copied its ~1 MB of pairs: 61k -> 23k BF.ADDs a second on a lone node at -P 1."""


@dataclass(slots=True)
class ChainAdds:
    """What :meth:`BloomFilter.chain_madd` gives: the pairs to merge and, per item answered,
    whether it was new (None: refused, the filter is full and cannot grow: RedisBloom's "non
    scaling filter is full"); ``more``: the next item needs another call after the pairs are
    merged. Read-only by convention (one per BF.ADD: a frozen constructor costs ~0.3 us more)."""

    pairs: Pairs | FewPairs
    added: list[bool | None]
    more: bool


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


@dataclass(frozen=True, slots=True)
class _Link:
    """One sub-filter of a chain (a plain filter is one link at base 0)."""

    base: int
    bits: int
    hashes: int
    capacity: int
    error_rate: float
    fill_bound: float  # set bits expected at capacity
    check_period: int  # a new item counts the fill when its hash is 0 modulo this

    @classmethod
    def sized(cls, base: int, bits: int, hashes: int, capacity: int, error: float) -> _Link:
        period = max(1, capacity // FILL_CHECKS)
        bound = bits * -math.expm1(-hashes * capacity / bits)
        return cls(base, bits, hashes, capacity, error, bound, period)

    def set_bits(self, vec: MaxVector, pending: int) -> int:
        """Set bits of this link, counted exactly (a popcount of its range of a dense vector,
        two searches in a sparse one's pairs); ``pending`` bits a batch set that the vector does
        not hold yet count as set (so a batch decides exactly as its items would one after
        another). A sample of 16,384 bits, as before, had ~0.4% of the bits as its standard
        error: a 1M-capacity filter started its second sub-filter anywhere from ~980,000 items."""
        return vec.count_in(self.base, self.base + self.bits) + pending

    def estimate_items(self, set_bits: int) -> int:
        x = min(set_bits, self.bits - 1)
        if x <= 0:
            return 0
        m = float(self.bits)
        return math.floor(-m / self.hashes * math.log1p(-x / m) + 0.5)


def _chain_links(capacity: int, error_rate: float, expansion: int) -> tuple[_Link, ...]:
    """The sub-filters a chain may have: RedisBloom's sizes, while they fit the slot space."""
    links: list[_Link] = []
    base = FILTERS_MAX
    cap = capacity
    error = error_rate if expansion == NONSCALING else error_rate * TIGHTENING
    count = 1 if expansion == NONSCALING else FILTERS_MAX
    while len(links) < count:
        try:
            bits, hashes = reserve_size(error, cap)
        except SketchParameterError:
            if links:
                break
            raise
        if base + bits > INDEX_LIMIT:
            if links:
                break
            raise SketchParameterError(f"a filter of {bits} bits exceeds {INDEX_LIMIT}")
        links.append(_Link.sized(base, bits, hashes, cap, error))
        base += bits
        cap *= expansion
        error *= TIGHTENING
    return tuple(links)


@dataclass(frozen=True, slots=True)
class _Stack:
    """The first ``len(links)`` sub-filters' hashes side by side: one array computation gives
    a member's bit positions in all of them (column ``offsets[j]`` on are sub-filter ``j``'s)."""

    steps: npt.NDArray[np.uint64]
    bits: npt.NDArray[np.uint64]
    bases: npt.NDArray[np.int64]
    offsets: list[int]  # where each sub-filter's columns start, and the total at the end
    columns: list[tuple[int, int, int]]  # (step, bits, base) of each column, in Python ints
    spans: list[tuple[int, int]]  # each sub-filter's columns

    @classmethod
    def of(cls, links: tuple[_Link, ...]) -> _Stack:
        offsets = [0]
        for link in links:
            offsets.append(offsets[-1] + link.hashes)
        return cls(
            np.concatenate([np.arange(link.hashes, dtype=np.uint64) for link in links]),
            np.concatenate([np.full(link.hashes, link.bits, np.uint64) for link in links]),
            np.concatenate([np.full(link.hashes, link.base, np.int64) for link in links]),
            offsets,
            [(i, link.bits, link.base) for link in links for i in range(link.hashes)],
            list(itertools.pairwise(offsets)),
        )

    def member_read(self, vec: MaxVector, a: int, b: int) -> tuple[list[int], list[int]]:
        """One member's positions (hashed ``a``, ``b``) and the bits there: Python ints and
        one read of the vector, no arrays to build for a single item."""
        mask = (1 << 64) - 1
        positions = [base + ((a + i * b) & mask) % bits for i, bits, base in self.columns]
        held = values_of(vec, positions)
        return positions, held

    def holds(self, held: list[int]) -> bool:
        """Whether some sub-filter has every bit of a member set (``held`` its bits)."""
        return any(all(held[lo:hi]) for lo, hi in self.spans)

    def positions(
        self, a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]
    ) -> npt.NDArray[np.int64]:
        """``(len(a), total)`` absolute bit positions of members hashed ``a``, ``b``."""
        with np.errstate(over="ignore"):
            raw = a[:, None] + self.steps[None, :] * b[:, None]
        return (raw % self.bits[None, :]).astype(np.int64) + self.bases[None, :]


_MARKERS_READ: Final = 4
"""Markers one BF.ADD / BF.EXISTS reads with the item's bits (a longer chain reads on)."""

_BITWISE_PAIRS_MIN: Final = 4096
"""A sparse key of at least this many pairs is read bit by bit too (measured: a search in a
big key's pairs costs about what one batched look-up costs in a small one)."""


def _read_bitwise(vec: MaxVector) -> bool:
    """Whether one item's bits are best read one by one (:meth:`BloomFilter._chain_add_one`)."""
    return vec.is_dense or len(vec) >= _BITWISE_PAIRS_MIN


_NO_PAIRS: Final[Pairs] = (np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint8))


BitSource = npt.NDArray[np.uint8] | bytes
"""A filter's bits as :mod:`._bloombits`' many-item reads take them: a bitset, or packed pairs."""


def _c_source(vec: MaxVector) -> tuple[BitSource, bool] | None:
    """``(bits, sparse)`` of ``vec`` for :mod:`._bloombits`' many-item reads: its bitset, or
    a sparse vector's packed pairs (``sparse``; not while writes sit in an overlay beside
    them: folding it to read would cost a copy of the pairs a call); None: read in Python."""
    bits = vec.bit_array()
    if bits is not None:
        return bits, False
    view = vec.sparse_view()
    if view is not None and view[1] is None:
        return view[0], True
    return None


def _geometry(links: tuple[_Link, ...]) -> bytes:
    """The sub-filters as :mod:`._bloombits` reads them: base, bits, hashes as little-endian
    uint64, oldest first."""
    return b"".join(struct.pack("<3Q", link.base, link.bits, link.hashes) for link in links)


class BloomFilter:
    """A stateless view of a Bloom filter: a plain fixed-size one (``expansion`` None) or a
    chain of sub-filters (module notes)."""

    __slots__ = ("_bits", "_capacity", "_error_rate", "_expansion", "_geometry", "_hashes",
                 "_links", "_schema", "_stacks")  # fmt: skip

    def __init__(
        self,
        bits: int,
        hashes: int,
        capacity: int,
        error_rate: float,
        expansion: int | None = None,
    ) -> None:
        plain = bloom_schema(bits, hashes, capacity, error_rate)  # checks every bound
        self._bits = int(bits)
        self._hashes = int(hashes)
        self._capacity = int(capacity)
        self._error_rate = float(error_rate)
        self._expansion = expansion
        self._links: tuple[_Link, ...]
        self._stacks: dict[int, _Stack] = {}  # per count of sub-filters read: bounded by 64
        if expansion is None:
            self._schema = plain
            self._links = (_Link.sized(0, self._bits, self._hashes, self._capacity,
                                       self._error_rate),)  # fmt: skip
            self._geometry = _geometry(self._links)
            return
        if isinstance(expansion, bool) or not 0 <= int(expansion) < 1 << 31:
            raise SketchParameterError(f"expansion must be in 0..2**31-1, got {expansion!r}")
        self._links = _chain_links(self._capacity, self._error_rate, int(expansion))
        self._geometry = _geometry(self._links)
        first = self._links[0]
        if (first.bits, first.hashes) != (self._bits, self._hashes):
            raise SketchParameterError("a chain's first sub-filter does not have its sizes")
        last = self._links[-1]
        params = (*plain.params, int(expansion))
        self._schema = Schema(KIND_BLOOM, params, last.base + last.bits).intern()

    # -- construction and sizing --------------------------------------------------------------

    @classmethod
    def reserve(cls, error_rate: float, capacity: int) -> BloomFilter:
        """A plain filter (what hearsay's BF.RESERVE made before chains): RedisBloom's sizes."""
        bits, hashes = reserve_size(error_rate, capacity)
        return cls(bits, hashes, capacity, error_rate)

    @classmethod
    def chain(cls, error_rate: float, capacity: int, expansion: int) -> BloomFilter:
        """BF.RESERVE key error capacity [EXPANSION n | NONSCALING] (``expansion`` 0)."""
        first = error_rate if expansion == NONSCALING else _check_error(error_rate) * TIGHTENING
        bits, hashes = reserve_size(first, capacity)
        return cls(bits, hashes, capacity, error_rate, expansion)

    @classmethod
    def from_schema(cls, schema: Schema) -> BloomFilter:
        params = schema.params
        if schema.kind != KIND_BLOOM or len(params) not in (5, 6):
            raise SketchParameterError(f"not a Bloom filter schema: {schema}")
        if params[4] != BLOOM_HASH_VERSION:
            raise SketchParameterError(f"unknown Bloom hash version {params[4]}")
        expansion = params[5] if len(params) == 6 else None
        view = cls(params[0], params[1], params[2], error_from_bits(params[3]), expansion)
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def bits(self) -> int:
        """Bits of the (first) filter."""
        return self._bits

    @property
    def hashes(self) -> int:
        """Hashes of the (first) filter."""
        return self._hashes

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def error_rate(self) -> float:
        return self._error_rate

    @property
    def expansion(self) -> int | None:
        """None for a plain filter, 0 for a NONSCALING chain, else the chain's expansion."""
        return self._expansion

    @property
    def reserved_cells(self) -> int:
        """Slots the filter holds when created (a chain grows past them only as it fills)."""
        first = self._links[0]
        return first.base + first.bits

    def shape(self) -> tuple[int, ...]:
        """What two filters must share to be merged: ``(bits, hashes, hash version)`` for a
        plain filter, every parameter for a chain."""
        if self._expansion is None:
            return (self._bits, self._hashes, BLOOM_HASH_VERSION)
        return self._schema.params

    def size_bytes(self, filters: int = 1) -> int:
        """BF.INFO's Size: RedisBloom's struct overheads plus the bit arrays in use."""
        arrays = sum(link.bits for link in self._links[:filters]) // 8
        return _CHAIN_STRUCT_BYTES + _LINK_STRUCT_BYTES * filters + arrays

    def error_bound(self) -> float:
        """The false-positive rate it was reserved for (at capacity)."""
        return self._error_rate

    def false_positive_rate(self, items: int | None = None) -> float:
        """Theoretical false-positive rate of the first filter after ``items`` distinct adds
        (default: capacity)."""
        n = self._capacity if items is None else items
        if n < 0:
            raise SketchParameterError("item count must be non-negative")
        return float((1.0 - math.exp(-self._hashes * n / self._bits)) ** self._hashes)

    # -- hashing ------------------------------------------------------------------------------

    def positions(self, members: Sequence[bytes]) -> npt.NDArray[np.uint32]:
        """The ``(len(members), hashes)`` bit positions of every member in the first filter."""
        a = member_hashes(members)
        b = mix64(a) | np.uint64(1)
        steps = np.arange(self._hashes, dtype=np.uint64)
        with np.errstate(over="ignore"):
            raw = a[:, None] + steps[None, :] * b[:, None]
        base = np.uint32(self._links[0].base)
        return (raw % np.uint64(self._bits)).astype(np.uint32) + base

    def member_positions(self, member: bytes) -> list[int]:
        """:meth:`positions` of one member, in Python ints (no arrays for a single item)."""
        a = member_hash(member)
        b = mix64_int(a) | 1
        bits = self._bits
        base = self._links[0].base
        mask = (1 << 64) - 1
        return [base + ((a + i * b) & mask) % bits for i in range(self._hashes)]

    # -- writing ------------------------------------------------------------------------------

    def add(self, members: Sequence[bytes]) -> Pairs:
        """The pairs that set every member's bits in the first filter (no read first)."""
        pos = self.positions(members).reshape(-1)
        return pos, np.ones(pos.size, dtype=np.uint8)

    def madd(
        self, vec: MaxVector, members: Sequence[bytes]
    ) -> tuple[Pairs | FewPairs, npt.NDArray[np.bool_]]:
        """BF.MADD: the pairs to merge, and per member whether it was new (BF.ADD's 1).

        Exactly RedisBloom's sequential answer: a member is new when one of its bits is unset
        in the filter *and* was not set by an earlier member of the same batch (so a repeated
        member is new only the first time). A chain's answer may be shorter than ``members``:
        it stops where the filter was found full (:meth:`chain_madd`).
        """
        if self._expansion is not None:
            adds = self.chain_madd(vec, members)
            return adds.pairs, np.array([bool(flag) for flag in adds.added], dtype=np.bool_)
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

    def _stack(self, subs: int) -> _Stack:
        stack = self._stacks.get(subs)
        if stack is None:
            stack = self._stacks[subs] = _Stack.of(self._links[:subs])
        return stack

    def _read_reach(self, subs: int) -> int:
        """Sub-filters a read checks: those in use and the next one, which a delta writing
        into it may have brought before the delta that started it (its marker)."""
        return min(subs + 1, len(self._links))

    def chain_madd(self, vec: MaxVector, members: Sequence[bytes]) -> ChainAdds:
        """A chain's BF.MADD, item by item as RedisBloom's ``SBChain_Add``.

        An item held by any sub-filter is not new (False); a new one (True) goes to the last
        sub-filter, or starts the next one when the last is full (its fill counted on the
        items the module notes say); None: refused, the filter is full and cannot grow (it
        stays so: every later new item is refused too, and nothing is written for them).
        The answer stops early (``more``) after :data:`CHAIN_MADD_ITEMS_MAX` items, after an
        item that starts a sub-filter, and before an item whose fill check would count bits
        of the items before it: merge the pairs and call again with the items not answered.

        Each item is read as a BF.ADD reads it (:meth:`_chain_add_one`), the bits the items
        before it set counting as set: ~4-5 us an item at any batch size, where reading every
        item's positions in one array pass cost 6-15 us an item (16 items into a 1,000-capacity
        filter: 11 us an item, the cost of a pipelined run of 16 BF.ADDs; 1,000 items 6-7 us)."""
        if len(members) == 1:  # (BF.ADD)
            one = self._chain_add_one(vec, members[0])
            assert one is not None, "an item with no bits before it always answers"
            return one
        source = _c_source(vec)
        if source is not None:
            items_max = CHAIN_MADD_BITS_ITEMS_MAX
            adds = self._chain_add_c(vec, source, members[:items_max])
        else:
            items_max = CHAIN_MADD_ITEMS_MAX
            adds = self._chain_add_few(vec, members[:items_max])
        if len(members) > items_max and not adds.more:
            return ChainAdds(adds.pairs, adds.added, more=True)
        return adds

    def _chain_add_c(
        self, vec: MaxVector, source: tuple[BitSource, bool], members: Sequence[bytes]
    ) -> ChainAdds:
        """:meth:`_chain_add_few` in C over ``source`` (:func:`_c_source` of ``vec``):
        ``_bloombits.add_pass``, the same answers, pass ends and pairs, which the tests hold it
        to. In Python an item cost ~8 us (a BF.MADD of 200,000 items into a 1M-capacity filter
        held the node 1.7 s); in C the bit reads (cache misses, most of them) are most of it."""
        subs = self.filters(vec)
        link = self._links[subs - 1]
        nonscaling = self._expansion == NONSCALING
        written, added = _bloombits.add_pass(
            *source,
            member_hashes(members),
            self._geometry,
            subs,
            self._read_reach(subs),
            nonscaling and vec.get(1) != 0,
            link.check_period,
            link.fill_bound,
            nonscaling,
        )
        indices = np.frombuffer(written, dtype="<u4").astype(np.uint32)
        pairs: Pairs | FewPairs
        if not indices.size:
            pairs = _NO_PAIRS
        elif indices.size <= PAIRS_AS_LISTS_MAX:  # (a write's few-pairs path: see the constant)
            pairs = (indices.tolist(), [1] * indices.size)
        else:
            pairs = (indices, np.ones(indices.size, dtype=np.uint8))
        return ChainAdds(pairs, added, more=len(added) < len(members))

    def _member_read(
        self, vec: MaxVector, member: bytes
    ) -> tuple[int, int, bool, _Stack, list[int], list[int]]:
        """One member in a chain: ``(hash, sub-filters in use, marked full, stack, positions,
        bits)``: its positions and bits in every sub-filter a read checks (those in use and
        the next); "marked full" only for a NONSCALING chain.

        One read of the vector for a chain of one or two sub-filters: the markers (or the
        NONSCALING "full" slot) come with the member's bits in the first two sub-filters;
        a longer chain reads again, once (no per-bit look-ups: each costs a search in a
        small key's packed pairs)."""
        a = member_hash(member)
        b = mix64_int(a) | 1
        links = self._links
        shown = _MARKERS_READ if self._expansion != NONSCALING else 1
        shown = min(shown, max(len(links) - 1, 1))
        first = self._stack(min(2, len(links)))
        mask = (1 << 64) - 1
        positions = [base + ((a + i * b) & mask) % bits for i, bits, base in first.columns]
        read = values_of(vec, [*range(1, shown + 1), *positions])
        markers, held = read[:shown], read[shown:]
        if self._expansion == NONSCALING or len(links) == 1:
            return a, 1, self._expansion == NONSCALING and markers[0] != 0, first, positions, held
        subs = 1
        while subs <= shown and markers[subs - 1]:
            subs += 1
        if subs > shown:  # a long chain: the other markers one by one (64 at most)
            while subs < len(links) and vec.get(subs):
                subs += 1
        if subs > 1:
            first = self._stack(self._read_reach(subs))
            positions, held = first.member_read(vec, a, b)
        return a, subs, False, first, positions, held

    def _chain_add_few(self, vec: MaxVector, members: Sequence[bytes]) -> ChainAdds:
        """:meth:`chain_madd` of several items in one pass, each as :meth:`_chain_add_one` with
        the bits the items before it set counting as set (all in the last sub-filter in use).
        The pass ends (``more``) after an item that starts a sub-filter or marks the chain
        full, and before an item whose fill check would, after others: the caller merges the
        pairs and calls again for the rest, as it did after every item (three items took
        three writes and three reads of the key: a BF.MADD of three cost three BF.ADDs)."""
        pending: set[int] = set()
        added: list[bool | None] = []
        for member in members:
            one = self._chain_add_one(vec, member, pending)
            if one is None:  # (its fill check, after others: the next pass, on their bits)
                break
            added += one.added
            written = one.pairs[0]
            pending.update(written)
            if len(written) and written[0] < FILTERS_MAX:  # (a marker: its sub-filters changed)
                break
        indices = sorted(pending)
        pairs = (indices, [1] * len(indices)) if indices else _NO_PAIRS
        return ChainAdds(pairs, added, more=len(added) < len(members))

    def _chain_add_one(
        self, vec: MaxVector, member: bytes, pending: set[int] | None = None
    ) -> ChainAdds | None:
        """:meth:`chain_madd` of one item (BF.ADD): a dense or big key is read bit by bit (a
        sub-filter without the item answers at its first bit or two, as in RedisBloom), a
        small sparse one in one look-up (:meth:`_member_read`).

        ``pending``: bits of the last sub-filter in use that items before this one in the
        same call set (not in ``vec`` yet): they count as set. None (with some pending) when
        this item's fill check would decide on them: it goes to the next call."""
        links = self._links
        read: tuple[_Stack, list[int], list[int]] | None = None
        if _read_bitwise(vec):
            a = member_hash(member)
            b = mix64_int(a) | 1
            subs = self.filters(vec)
            if self._holds_bitwise(vec, a, b, self._read_reach(subs)):
                return ChainAdds(_NO_PAIRS, [False], more=False)
            full = self._expansion == NONSCALING and vec.get(1) != 0
        else:
            a, subs, full, stack, positions, held = self._member_read(vec, member)
            if stack.holds(held):
                return ChainAdds(_NO_PAIRS, [False], more=False)
            read = stack, positions, held
            b = 0  # (not needed: the item's positions are read, and _unset_in takes them)
        cur = subs - 1
        link = links[cur]
        unset: list[int] | None = None
        if pending:  # (held once the earlier items' bits count: not new)
            unset = [p for p in self._unset_in(vec, a, b, cur, read) if p not in pending]
            if not unset:
                return ChainAdds(_NO_PAIRS, [False], more=False)
        markers: list[int] = []
        if (
            not full
            and (a >> 32) % link.check_period == 0
            and link.set_bits(vec, len(pending or ())) >= link.fill_bound
        ):
            if pending:
                return None
            if self._expansion == NONSCALING:
                markers.append(1)
                full = True
            elif subs == len(links):
                full = True
            else:  # start sub-filter ``subs`` (read with the others)
                markers.append(subs)
                cur += 1
        if full:
            return ChainAdds((markers, [1] * len(markers)), [None], more=False)
        if unset is None:
            unset = self._unset_in(vec, a, b, cur, read)
        # Python ints: a vector's few-pairs path sets them without numpy (see MaxVector)
        written = markers + unset
        return ChainAdds((written, [1] * len(written)), [True], more=False)

    def _unset_in(
        self,
        vec: MaxVector,
        a: int,
        b: int,
        cur: int,
        read: tuple[_Stack, list[int], list[int]] | None,
    ) -> list[int]:
        """The sorted distinct positions of the item hashed ``a``, ``b`` in sub-filter ``cur``
        that ``vec`` does not hold: from ``read`` (the item's positions and bits read with
        :meth:`_member_read`) when given, else read from the vector."""
        if read is not None:
            stack, positions, held = read
            lo, hi = stack.spans[cur]
            return sorted(
                {p for p, bit in zip(positions[lo:hi], held[lo:hi], strict=True) if not bit}
            )
        link = self._links[cur]
        bit_array = vec.bit_array()
        if bit_array is not None:
            unset: list[int] = _bloombits.unset(bit_array, a, b, link.base, link.bits, link.hashes)
            return unset
        mask = (1 << 64) - 1
        fresh = {link.base + ((a + i * b) & mask) % link.bits for i in range(link.hashes)}
        return sorted(position for position in fresh if not vec.get(position))

    def _holds_bitwise(self, vec: MaxVector, a: int, b: int, subs: int) -> bool:
        """Whether one of the first ``subs`` sub-filters holds the item hashed ``a``, ``b``,
        read bit by bit (newest first, each stopping at its first unset bit)."""
        bit_array = vec.bit_array()
        if bit_array is not None:
            return _bloombits.holds(bit_array, a, b, self._geometry, subs)
        mask = (1 << 64) - 1
        get = vec.get
        for link in reversed(self._links[:subs]):
            base, bits = link.base, link.bits
            if all(get(base + ((a + i * b) & mask) % bits) for i in range(link.hashes)):
                return True
        return False

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

    def filters(self, vec: MaxVector) -> int:
        """Sub-filters in use: one past the last of the markers set from 1 on (always 1 for a
        plain filter and a NONSCALING chain, whose marker 1 means full)."""
        if not self._expansion or len(self._links) == 1:
            return 1
        # Markers are set in order, so the first unset one ends them; one missing in between
        # (a later delta arrived first) is covered by reads checking one sub-filter more.
        last = len(self._links)
        bit_array = vec.bit_array()
        if bit_array is not None:
            return 1 + _bloombits.ones(bit_array, 1, last - 1)
        subs, get = 1, vec.get
        while subs < last and get(subs):  # bounded: 64 markers at most
            subs += 1
        return subs

    def mexists(self, vec: MaxVector, members: Sequence[bytes]) -> npt.NDArray[np.bool_]:
        """BF.MEXISTS: per member, whether all its bits are set in some sub-filter (never a
        false negative)."""
        if self._expansion is not None and len(self._links) > 1:
            if len(members) == 1 and _read_bitwise(vec):  # BF.EXISTS (see _chain_add_one)
                a = member_hash(members[0])
                reach = self._read_reach(self.filters(vec))
                return np.array([self._holds_bitwise(vec, a, mix64_int(a) | 1, reach)])
            if len(members) == 1:
                _, _, _, stack, _, bits_held = self._member_read(vec, members[0])
                return np.array([stack.holds(bits_held)])
            return self._chain_mexists(vec, members, self._read_reach(self.filters(vec)))
        if len(members) == 1:  # BF.EXISTS: one read of the member's bits
            held = vec.values_at(np.array(self.member_positions(members[0]), dtype=np.uint32))
            return np.array([bool(held.all())])
        out = np.zeros(len(members), dtype=np.bool_)
        for start in range(0, len(members), READ_CHUNK_ITEMS):  # (bounded arrays)
            pos = self.positions(members[start : start + READ_CHUNK_ITEMS])
            if pos.size:
                out[start : start + pos.shape[0]] = (values_at(vec, pos) != 0).all(axis=1)
        return out

    def _chain_mexists(
        self, vec: MaxVector, members: Sequence[bytes], subs: int
    ) -> npt.NDArray[np.bool_]:
        """Whether each member is held by one of the first ``subs`` sub-filters: read in C
        (:func:`_c_source`), else through arrays :data:`READ_CHUNK_ITEMS` members at a time
        (memory bounded whatever the number of members)."""
        source = _c_source(vec)
        if source is not None:
            flags = _bloombits.holds_many(*source, member_hashes(members), self._geometry, subs)
            return np.frombuffer(flags, dtype=np.uint8).astype(np.bool_)
        stack = self._stack(subs)
        out = np.zeros(len(members), dtype=np.bool_)
        for start in range(0, len(members), READ_CHUNK_ITEMS):
            a = member_hashes(members[start : start + READ_CHUNK_ITEMS])
            held = values_at(vec, stack.positions(a, mix64(a) | np.uint64(1))) != 0
            per_link = np.logical_and.reduceat(held, stack.offsets[:-1], axis=1)
            out[start : start + a.size] = per_link.any(axis=1)
        return out

    def exists(self, vec: MaxVector, member: bytes) -> bool:
        """BF.EXISTS of one member."""
        return bool(self.mexists(vec, [member])[0])

    def set_bits(self, vec: MaxVector) -> int:
        """How many bits are set (markers and slots outside the filter ignored)."""
        return sum(self._set_bits_per_link(vec))

    def _set_bits_per_link(self, vec: MaxVector) -> list[int]:
        def count(of: MaxVector) -> list[int]:
            return [of.count_in(link.base, link.base + link.bits) for link in self._links]

        return vec.memo(self, count)

    def card(self, vec: MaxVector) -> int:
        """BF.CARD: the estimated number of distinct items added (see the module notes)."""
        counts = self._set_bits_per_link(vec)
        return sum(link.estimate_items(x) for link, x in zip(self._links, counts, strict=True))

    def info(self, vec: MaxVector) -> BloomInfo:
        """BF.INFO: capacity and size of the sub-filters in use, estimated items."""
        filters = self.filters(vec)
        return BloomInfo(
            capacity=sum(link.capacity for link in self._links[:filters]),
            size_bytes=self.size_bytes(filters),
            filters=filters,
            items=self.card(vec),
            expansion=self._expansion or None,
        )

    def is_empty(self, vec: MaxVector) -> bool:
        return vec.is_empty()
