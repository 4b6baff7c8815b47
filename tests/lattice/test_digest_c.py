"""The C pair hash (``lattice/_digest.c``) against its plain-Python definition.

Anti-entropy compares content hashes across nodes and versions, so the C code must give
exactly :func:`pair_hash_reference`'s hash for every pair, whatever the arrays' dtypes,
strides and alignment, and :func:`pairs_hash` of any vectors must be the XOR of it over their
pairs (independent of representation: sparse, dense, value width).
"""

from __future__ import annotations

import numpy as np
import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from hearsay.lattice._digest import xor_bits, xor_packed, xor_pairs
from hearsay.lattice.digest import ORIGIN_HASHES_MAX, origin_base, pair_hash_reference, pairs_hash
from hearsay.lattice.vector import VALUE_MAX, MaxVector
from tests.support.lattice_strategies import vectors

bases = st.integers(0, 2**64 - 1)
pair_lists = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, VALUE_MAX)), max_size=40)


def _reference(base: int, pairs: list[tuple[int, int]]) -> int:
    acc = 0
    for index, value in pairs:
        acc ^= pair_hash_reference(base, index, value)
    return acc


@given(bases, pair_lists, st.sampled_from([1, 2, 4, 8]))
def test_xor_packed_is_the_reference_for_every_width(
    base: int, pairs: list[tuple[int, int]], width: int
) -> None:
    """Packed pairs as a sparse MaxVector holds them: a width byte, the indices, the values."""
    by_index = {index: min(value, (1 << (8 * width)) - 1) for index, value in pairs}
    order = sorted(by_index)
    packed = (
        bytes((width,))
        + b"".join(index.to_bytes(4, "little") for index in order)
        + b"".join(by_index[index].to_bytes(width, "little") for index in order)
    )
    assert xor_packed(base, packed) == _reference(base, list(by_index.items()))


@given(bases, pair_lists, st.sampled_from([np.uint8, np.uint16, np.uint32, np.uint64]))
def test_xor_pairs_is_the_reference_for_every_dtype_and_layout(
    base: int, pairs: list[tuple[int, int]], value_dtype: type[np.unsignedinteger]
) -> None:
    top = np.iinfo(value_dtype).max
    pairs = [(index, min(value, int(top))) for index, value in pairs]
    indices = np.array([i for i, _ in pairs], dtype=np.uint32)
    values = np.array([v for _, v in pairs], dtype=value_dtype)
    expected = _reference(base, pairs)
    assert xor_pairs(base, indices, values) == expected
    # Strided and unaligned views (packed pairs sit one byte off alignment) read the same.
    doubled = np.repeat(indices, 2)[::2]
    assert xor_pairs(base, doubled, values) == expected
    raw = np.zeros(1 + indices.nbytes, dtype=np.uint8)
    unaligned = raw[1:].view(np.uint32)
    unaligned[:] = indices
    assert xor_pairs(base, unaligned, values) == expected


@given(st.lists(vectors(), min_size=1, max_size=3), bases, st.sampled_from(["", "node-a"]))
def test_pairs_hash_is_the_reference_over_every_pair(
    found: list[MaxVector], seed: int, origin: str
) -> None:
    base = seed ^ (xxhash.xxh3_64_intdigest(origin.encode()) if origin else 0)
    expected = _reference(base, [pair for vector in found for pair in vector.items()])
    assert pairs_hash(seed, origin, *found) == expected
    assert pairs_hash(seed, origin, *(vector.copy() for vector in found)) == expected


def test_bad_input_is_refused_not_misread() -> None:
    with pytest.raises(ValueError, match="unsigned"):
        xor_pairs(0, np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.uint8))
    with pytest.raises(ValueError, match="values"):
        xor_pairs(0, np.zeros(2, dtype=np.uint32), np.zeros(3, dtype=np.uint8))
    for bad in (b"", b"\x03" + bytes(7), b"\x01" + bytes(4), b"\x02" + bytes(7)):
        with pytest.raises(ValueError, match="packed"):
            xor_packed(0, bad)
    with pytest.raises(TypeError):
        xor_packed(0, "not bytes")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        xor_packed(2**64, b"\x01")
    with pytest.raises(OverflowError):
        xor_pairs(-1, np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint8))


def test_the_origin_table_stays_bounded() -> None:
    for n in range(ORIGIN_HASHES_MAX + 10):
        origin_base(7, f"origin-{n}")
    assert origin_base(7, "x") == 7 ^ xxhash.xxh3_64_intdigest(b"x")
    from hearsay.lattice import digest

    assert len(digest._origin_hashes) <= ORIGIN_HASHES_MAX


@given(bases, st.binary(max_size=200), st.integers(0, 1 << 20).map(lambda n: 8 * n))
def test_xor_bits_is_the_reference_over_the_set_bits(base: int, bits: bytes, start: int) -> None:
    """A Bloom filter held as bits is hashed from them: each set bit a pair of value 1."""
    found = np.flatnonzero(np.unpackbits(np.frombuffer(bits, np.uint8), bitorder="little"))
    expected = _reference(base, [(start + int(index), 1) for index in found])
    assert xor_bits(base, np.frombuffer(bits, np.uint8), start) == expected
    assert xor_bits(base, bits, start) == expected


@given(bases, st.sets(st.integers(0, 4000), min_size=1, max_size=300))
def test_pairs_hash_of_a_bits_vector_is_its_pairs_hash(base: int, ones: set[int]) -> None:
    """Whatever form holds the ones (bits when they are dense enough), the same hash."""
    vector = MaxVector.from_pairs(sorted(ones), [1] * len(ones))
    sparse = MaxVector.of_maxima(dict.fromkeys(ones, 1))
    assert pairs_hash(base, "o", vector) == pairs_hash(base, "o", sparse)
