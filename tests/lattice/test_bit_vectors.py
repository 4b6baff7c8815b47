"""Vectors held as bits (values all 0 or 1: Bloom filters) against a plain dict model.

Every read, merge, delta, previous-values report and encoding of a vector held as bits must be
exactly what the one-byte-per-slot and packed forms give (the model is a dict; the encoding is
compared with the same content built as packed pairs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import DecodeError
from hearsay.lattice import _sparse
from hearsay.lattice.codec import decode_entry, encode_entry, entry_to_wire
from hearsay.lattice.digest import entry_hash
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import DENSE_SLOTS_MAX, MaxVector, normalize_pairs

RAW = Schema("vector").intern()

# Mostly ones over a few thousand slots (dense enough for bits), sometimes a value above 1
# (widening), sometimes an index far out (back to packed pairs), at unaligned offsets.
_INDEX = st.one_of(
    st.integers(0, 5000),
    st.integers(70_000, 75_000),
    st.sampled_from([DENSE_SLOTS_MAX - 1, DENSE_SLOTS_MAX, 2**32 - 1]),
)
_ONES = st.dictionaries(st.integers(0, 5000), st.just(1), min_size=0, max_size=2000)
_MIXED = st.dictionaries(
    _INDEX, st.one_of(st.just(1), st.just(1), st.integers(2, 300)), max_size=40
)


@st.composite
def bit_maps(draw: st.DrawFn) -> dict[int, int]:
    pairs = draw(_ONES)
    offset = draw(st.sampled_from([0, 3, 1024, 65_531]))
    pairs = {index + offset: value for index, value in pairs.items()}
    if draw(st.booleans()):
        pairs.update(draw(_MIXED))
    return pairs


def model(vector: MaxVector) -> dict[int, int]:
    return dict(vector.items())


def build(pairs: dict[int, int]) -> MaxVector:
    return MaxVector.from_items(pairs.items())


def packed(pairs: dict[int, int]) -> MaxVector:
    """The same content built one pair at a time from empty: packed pairs until dense."""
    vector = MaxVector()
    for index, value in sorted(pairs.items()):
        vector.merge_pairs([index], [value])
    return vector


def test_a_filled_bloom_sized_vector_takes_a_bit_per_slot() -> None:
    rng = np.random.default_rng(1)
    slots = 9_585_059
    indices = rng.integers(0, slots, 4_000_000, dtype=np.uint32)
    vector = MaxVector()
    vector.merge_pairs(indices, np.ones(indices.size, dtype=np.uint8))
    assert vector.is_dense
    assert vector.nbytes() <= slots // 8 + 1024
    assert len(vector) == np.unique(indices).size
    assert vector.values_at(indices[:100]).tolist() == [1] * 100


@given(bit_maps(), bit_maps())
def test_merging_vectors_with_bits_equals_the_dict_model(
    a: dict[int, int], b: dict[int, int]
) -> None:
    mine, theirs = build(a), build(b)
    delta, previous = mine.merge_vector_tracking(theirs)
    want = {i: max(v, a.get(i, 0)) for i, v in b.items()} | {
        i: v for i, v in a.items() if i not in b
    }
    assert model(mine) == want
    assert model(delta) == {i: v for i, v in b.items() if v > a.get(i, 0)}
    assert model(previous) == {i: a[i] for i, v in b.items() if v > a.get(i, 0) and i in a}
    assert len(mine) == len(want)


@given(bit_maps(), st.lists(st.tuples(_INDEX, st.sampled_from([0, 1, 1, 1, 2])), max_size=300))
def test_raw_pair_merges_into_bits_equal_the_general_path(
    start: dict[int, int], pairs: list[tuple[int, int]]
) -> None:
    """Unsorted, repeated pairs as arrays, as lists and sorted: one result."""
    indices = np.array([i for i, _ in pairs], dtype=np.uint32)
    values = np.array([v for _, v in pairs], dtype=np.uint8)
    general = build(start)
    want_delta, want_previous = general.merge_tracking(*normalize_pairs(indices, values))
    fast = build(start)
    assert fast.merge_pairs_tracking(indices, values) == (want_delta, want_previous)
    assert fast == general
    if len(pairs) <= 8:
        as_lists = build(start)
        got = as_lists.merge_pairs_tracking(indices.tolist(), values.tolist())
        assert (as_lists, *got) == (general, want_delta, want_previous)


@given(st.integers(0, 2**32), st.integers(0, 400_000), st.integers(0, 400_000))
@settings(max_examples=20, deadline=None)
def test_a_count_over_a_big_bitset_equals_the_dict_model(seed: int, low: int, span: int) -> None:
    """Ranges over more than 16 KiB of bits take numpy's popcount, shorter ones an int's;
    both counted in place, with the first and last bytes' bits outside the range taken off."""
    ordered = np.unique(np.random.default_rng(seed).integers(0, 400_000, 40_000))
    vector = MaxVector.from_items((int(i), 1) for i in ordered)
    assert vector.is_dense
    for lo, hi in ((low, low + span), (low, low + 7), (low, low + 200_000), (0, 2**32)):
        expected = int(np.searchsorted(ordered, hi) - np.searchsorted(ordered, lo))
        assert vector.count_in(lo, hi) == expected


@given(st.binary(max_size=300), st.integers(0, 2_600), st.integers(0, 2_600))
def test_the_c_bit_count_equals_counting_each_bit(data: bytes, low: int, high: int) -> None:
    """``_sparse.count_bits`` (a Bloom filter's fill check): bit ``i`` in byte ``i // 8`` at
    ``i % 8``, both ends' partial bytes and whole words, none past the buffer; a negative
    bound refused."""
    bits = np.frombuffer(data, dtype=np.uint8)
    expected = sum(1 for i in range(low, min(high, 8 * len(data))) if data[i // 8] >> (i % 8) & 1)
    assert _sparse.count_bits(bits, low, high) == _sparse.count_bits(data, low, high) == expected
    assert _sparse.count_bits(bits, low, 2**64 - 1) == _sparse.count_bits(bits, low, 8 * len(data))
    with pytest.raises(OverflowError):
        _sparse.count_bits(bits, -1, high)


@given(bit_maps(), st.lists(st.integers(-5, 80_000), max_size=80), st.integers(0, 80_000))
def test_reads_of_bits_equal_the_dict_model(
    pairs: dict[int, int], reads: list[int], low: int
) -> None:
    vector = build(pairs)
    wanted = np.array(reads, dtype=np.int64)
    assert vector.values_at(wanted).tolist() == [pairs.get(i, 0) for i in reads]
    assert [vector.get(i) for i in reads] == [pairs.get(i, 0) for i in reads]
    high = low + 3000
    assert model(vector.window(low, high)) == {i: v for i, v in pairs.items() if low <= i < high}
    for lo, hi in ((low, high), (low, low + 5), (low - 3, low), (0, 2**32), (high, low)):
        expected = sum(1 for i in pairs if lo <= i < hi)
        assert vector.count_in(lo, hi) == packed(pairs).count_in(lo, hi) == expected
    size = 6000
    assert vector.to_dense(size).tolist() == [pairs.get(i, 0) for i in range(size)]
    assert model(MaxVector.from_items(vector.items())) == pairs
    rejoined = MaxVector()
    for chunk in vector.split(97):
        rejoined.merge(chunk)
    assert rejoined == vector


@given(bit_maps())
def test_bits_encode_like_packed_pairs_and_hash_alike(pairs: dict[int, int]) -> None:
    """Canonical: the same content encodes to the same bytes (and hashes alike) whatever form
    it is held in; the bytes decode back to it."""
    held, reference = build(pairs), packed(pairs)
    a = Entry(3, RAW, (0, 0), {"": held})
    b = Entry(3, RAW, (0, 0), {"": reference})
    assert encode_entry(a) == encode_entry(b)
    assert entry_hash(b"k", a) == entry_hash(b"k", b)
    assert decode_entry(encode_entry(a)) == a
    if pairs and set(pairs.values()) == {1}:
        (wire_slice,) = entry_to_wire(a)[4]
        run_bytes = max(pairs) // 8 - min(pairs) // 8 + 1
        assert (wire_slice[1] == 0) == (run_bytes < 5 * len(pairs))


def _bit_entry(start: Any, bits: Any, schema: Schema = RAW) -> bytes:
    import msgpack

    wire_schema = [schema.kind, list(schema.params), schema.size, schema.additive]
    return msgpack.packb([1, 0, wire_schema, [0, 0], [["", 0, start, bits]]], use_bin_type=True)


@pytest.mark.parametrize(
    ("start", "bits"),
    [
        (0, b""),  # empty
        (0, b"\x00\x01"),  # leading zero byte
        (0, b"\x01\x00"),  # trailing zero byte
        (3, b"\x01"),  # not a multiple of 8
        (-8, b"\x01"),
        (2**32, b"\x01"),
        (0, "text"),
        (b"\x00", b"\x01"),
    ],
)
def test_malformed_bit_runs_are_refused(start: Any, bits: Any) -> None:
    with pytest.raises(DecodeError):
        decode_entry(_bit_entry(start, bits))


def test_a_bit_run_past_the_schema_is_refused() -> None:
    small = Schema("bloom", (), 12).intern()
    assert decode_entry(_bit_entry(8, b"\x08", small)).vector.items() == [(11, 1)]
    with pytest.raises(DecodeError):
        decode_entry(_bit_entry(8, b"\x10", small))


def test_the_key_cap_counts_a_bit_vector_widening_to_a_byte_per_slot() -> None:
    """One value above 1 turns 4,096 bytes of bits into 32 KiB: the cap must see that."""
    from hearsay.base.errors import TooLargeError
    from hearsay.lattice.keyspace import Keyspace
    from hearsay.lattice.limits import KeyLimits

    keyspace = Keyspace(4, limits=KeyLimits(key_bytes_max=16 * 1024))
    ones = np.arange(0, 32768, 2, dtype=np.uint32)
    keyspace.write_pairs(b"k", RAW, "", ones, np.ones(ones.size, dtype=np.uint8), now_ms=1)
    entry = keyspace.entry(b"k")
    assert entry is not None and entry.payload_bytes() == 4096
    with pytest.raises(TooLargeError):
        keyspace.write_pairs(
            b"k", RAW, "", np.array([1], np.uint32), np.array([2], np.uint8), now_ms=1
        )
    with pytest.raises(TooLargeError):
        keyspace.merge(b"k", Entry(0, RAW, (0, 0), {"": MaxVector.from_items([(1, 2)])}))
    assert keyspace.entry(b"k") == entry


def test_ones_past_the_dense_cap_are_held_as_bits_and_widen_to_pairs() -> None:
    """A Bloom chain past 2**24 bits (a 1M-capacity filter's second sub-filter) was held as
    packed pairs, 5 bytes per set bit: 28.7 MB for what 4.5 MB of bits hold. A value above 1
    in such a vector must not become a byte per slot (36 MB here), but packed pairs."""
    top = 3 * DENSE_SLOTS_MAX // 2
    ones = np.arange(0, top, 4, dtype=np.uint32)  # a quarter of the slots: bits are smaller
    vector = MaxVector.from_pairs(ones, np.ones(ones.size, dtype=np.uint8))
    assert vector.is_dense and vector.width == 1
    assert vector.nbytes() <= top // 8 + 1024
    grown = MaxVector()
    for start in range(0, ones.size, 500_000):  # built up by merges, as writes build it
        part = ones[start : start + 500_000]
        grown.merge_pairs(part, np.ones(part.size, dtype=np.uint8))
    assert grown.is_dense and grown.nbytes() == vector.nbytes()
    assert grown == vector
    grown.merge_pairs([5], [3])
    assert not grown.is_dense  # pairs, not a byte per slot
    assert len(grown) == ones.size + 1 and grown.get(5) == 3 and grown.get(top - 4) == 1
    vector.merge_pairs(np.array([5], dtype=np.uint32), np.array([3], dtype=np.uint8))
    assert vector == grown


@given(
    st.sampled_from([2_000, 40_000, 140_000]),  # slots: bitsets below and above 16 KiB
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 3, 8, 1000]),
)
def test_bit_run_spans_the_first_to_the_last_set_byte(span: int, seed: int, shift: int) -> None:
    """The run a bitset is encoded and staged from (first to last set byte, and the count),
    on both sides of the size from which those bytes are found by numpy instead of by
    stripping zero bytes."""
    rng = np.random.default_rng(seed)
    count = span // 4  # (dense enough to be held as bits)
    indices = sorted({int(i) + shift for i in rng.integers(0, span, count)})
    vector = MaxVector.from_items((index, 1) for index in indices)
    got = vector.bit_run()
    assert got is not None, "not held as bits: the test no longer covers bit_run"
    start, run, held = got
    assert start == 8 * (indices[0] // 8)
    assert len(run) == indices[-1] // 8 - indices[0] // 8 + 1
    assert held == len(indices)
    expected = np.zeros(len(run), dtype=np.uint8)
    for index in indices:
        expected[(index - start) >> 3] |= 1 << (index & 7)
    assert run.tobytes() == expected.tobytes()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 1 << 20).map(lambda n: 8 * n))
def test_bit_indices_in_c_are_the_set_bits_numbered_from_start(bits: bytes, start: int) -> None:
    """A filter held as bits whose bit run is not its smallest form goes to disk and the wire
    as pairs: the indices come from C, held to numpy's reading of the bits."""
    expected = np.flatnonzero(np.unpackbits(np.frombuffer(bits, np.uint8), bitorder="little"))
    got = _sparse.bit_indices(np.frombuffer(bits, np.uint8), start)
    assert got == (expected + start).astype("<u4").tobytes()


def test_bit_indices_refuse_indices_past_32_bits() -> None:
    assert _sparse.bit_indices(b"\x80", (1 << 32) - 8) == ((1 << 32) - 1).to_bytes(4, "little")
    with pytest.raises(ValueError, match="past 2\\*\\*32"):
        _sparse.bit_indices(b"\x00\x01", (1 << 32) - 8)
    with pytest.raises(ValueError, match="past 2\\*\\*32"):
        _sparse.bit_indices(b"\x01", (1 << 64) - 8)  # (no wrap-around of the bound)
    assert _sparse.bit_indices(b"", 1 << 32) == b""


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 64),
    picks=st.lists(st.integers(0, 10**6), max_size=200),
)
def test_set_bits_in_c_sets_what_numpy_sets(size: int, picks: list[int]) -> None:
    """``_sparse.set_bits`` (every bitset merge) sets exactly the bits numpy's bitwise_or.at
    set, repeats and any order included; an index past the bitset sets nothing and raises."""
    indices = np.array([p % (8 * size) for p in picks], dtype=np.uint32)
    ours = np.zeros(size, dtype=np.uint8)
    _sparse.set_bits(ours, indices)
    theirs = np.zeros(size, dtype=np.uint8)
    np.bitwise_or.at(theirs, indices >> 3, (1 << (indices & 7)).astype(np.uint8))
    assert ours.tobytes() == theirs.tobytes()
    past = np.append(indices, np.uint32(8 * size))
    untouched = np.zeros(size, dtype=np.uint8)
    with pytest.raises(IndexError):
        _sparse.set_bits(untouched, past)
    assert not untouched.any()
    with pytest.raises(ValueError, match="uint32"):
        _sparse.set_bits(untouched, indices.astype(np.int64))
