"""The C reads of one item in a Bloom filter held as a bitset (``hearsay.sketch._bloombits``)
against the vector's own reads (:meth:`MaxVector.get`, the Python reference): whether some
sub-filter holds an item, its unset bits in one sub-filter, and the run of set markers that
says how many sub-filters are in use; on filters grown to several sub-filters and on random
bitsets read past their end (a bit there is unset)."""

from __future__ import annotations

import random
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.vector import MaxVector
from hearsay.sketch import _bloombits
from hearsay.sketch.bloom import BloomFilter

_U64 = st.integers(0, (1 << 64) - 1)
_MASK = (1 << 64) - 1


def _positions(a: int, b: int, base: int, bits: int, hashes: int) -> list[int]:
    return [base + ((a + i * b) & _MASK) % bits for i in range(hashes)]


def _holds(vec: MaxVector, a: int, b: int, links: list[tuple[int, int, int]]) -> bool:
    return any(all(vec.get(p) for p in _positions(a, b, *link)) for link in links)


def _grown_filter(seed: int, items: int) -> tuple[BloomFilter, MaxVector]:
    bf = BloomFilter.chain(0.01, 300, 2)
    rng = random.Random(seed)
    vec = MaxVector()
    members = [rng.randbytes(12) for _ in range(items)]
    for start in range(0, items, 500):
        vec.merge_pairs(*bf.chain_madd(vec, members[start : start + 500]).pairs)
    return bf, vec


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 50), items=st.integers(1_500, 5_000), a=_U64, b=_U64, count=st.data())
def test_reads_of_a_grown_chain_equal_the_vectors_reads(
    seed: int, items: int, a: int, b: int, count: st.DataObject
) -> None:
    bf, vec = _grown_filter(seed, items)
    bits = vec.bit_array()
    assert bits is not None, "a chain this full is held as bits"
    links = [(link.base, link.bits, link.hashes) for link in bf._links]
    geometry = b"".join(struct.pack("<3Q", *link) for link in links)
    n = count.draw(st.integers(0, len(links)))
    assert _bloombits.holds(bits, a, b, geometry, n) == _holds(vec, a, b, links[:n])
    for base, size, hashes in links[:4]:
        unset = sorted({p for p in _positions(a, b, base, size, hashes) if not vec.get(p)})
        assert _bloombits.unset(bits, a, b, base, size, hashes) == unset
    used = 0
    while used < len(links) - 1 and vec.get(1 + used):
        used += 1
    assert _bloombits.ones(bits, 1, len(links) - 1) == used
    assert bf.filters(vec) == 1 + used


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=64),
    a=_U64,
    b=_U64,
    links=st.lists(
        st.tuples(st.integers(0, 700), st.integers(1, 700), st.integers(0, 12)),
        min_size=1,
        max_size=4,
    ),
)
def test_reads_past_a_bitsets_end_see_unset_bits(
    raw: bytes, a: int, b: int, links: list[tuple[int, int, int]]
) -> None:
    bits = np.frombuffer(raw, dtype=np.uint8)

    def bit(p: int) -> int:
        return int(bits[p >> 3]) >> (p & 7) & 1 if p >> 3 < bits.size else 0

    geometry = b"".join(struct.pack("<3Q", *link) for link in links)
    expected = any(all(bit(p) for p in _positions(a, b, *link)) for link in links)
    assert _bloombits.holds(bits, a, b, geometry, len(links)) == expected
    for link in links:
        unset = sorted({p for p in _positions(a, b, *link) if not bit(p)})
        assert _bloombits.unset(bits, a, b, *link) == unset
    run = 0
    while run < 600 and bit(3 + run):
        run += 1
    assert _bloombits.ones(bits, 3, 600) == run
