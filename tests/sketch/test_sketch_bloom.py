"""Tests of the Bloom filter view: RedisBloom sizing, no false negatives, measured false-positive
rate, exact union, BF.MADD's sequential answers, BF.INFO, and the codec round trip."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import NO_EXPIRY, Entry
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.bloom import BloomFilter, hashes_for, reserve_size
from hearsay.sketch.views import type_name, view_for


def _members(seed: int, count: int, prefix: bytes) -> list[bytes]:
    rng = random.Random(seed)
    return [prefix + rng.randbytes(12) for _ in range(count)]


def _filled(bf: BloomFilter, members: list[bytes]) -> MaxVector:
    vec = MaxVector()
    vec.merge_pairs(*bf.add(members))
    return vec


# -- sizing -------------------------------------------------------------------------------------


def _redisbloom_reference(error: float, capacity: int) -> tuple[int, int]:
    """bloom_init with NOROUND, written out from the C source independently of the module."""
    bpe = -(math.log(error) / 0.480453013918201)
    if bpe < 0:
        bpe = -bpe
    bits = int(capacity * bpe) or 1
    nbytes = ((bits // 64) + 1) * 8 if bits % 64 else bits // 8
    return nbytes * 8, math.ceil(0.693147180559945 * bpe)


@pytest.mark.parametrize(
    ("error", "capacity"),
    [
        (0.01, 100),
        (0.01, 1000),
        (0.001, 1_000_000),
        (0.0001, 12345),
        (0.05, 1),
        (0.5, 7),
        (0.999, 3),
        (1e-9, 1000),
        (0.1, 10_000_000),
        (0.0025, 777),
    ],
)
def test_sizing_equals_redisbloom_formulas(error: float, capacity: int) -> None:
    assert reserve_size(error, capacity) == _redisbloom_reference(error, capacity)
    bf = BloomFilter.reserve(error, capacity)
    assert (bf.bits, bf.hashes) == _redisbloom_reference(error, capacity)
    assert bf.bits % 64 == 0
    assert bf.schema.size == bf.bits


def test_hash_counts_documented_by_redisbloom() -> None:
    # BF.RESERVE's page: 1% -> 7 hashes, 0.1% -> 10, 0.01% -> 14.
    assert [hashes_for(e) for e in (0.01, 0.001, 0.0001)] == [7, 10, 14]


def test_info_size_matches_redisbloom_documented_example() -> None:
    # redis.io BF.INFO example: BF.ADD creates capacity 100 at 1% (a scaling filter, whose first
    # link is tightened to 0.5%), and BF.INFO reports Size 240.
    bf = BloomFilter.reserve(0.01 * 0.5, 100)
    info = bf.info(MaxVector())
    assert (info.capacity, info.size_bytes, info.filters, info.items) == (100, 240, 1, 0)
    assert info.expansion is None


@pytest.mark.parametrize(
    ("error", "capacity"),
    [(0.0, 10), (1.0, 10), (-0.1, 10), (float("nan"), 10), (0.01, 0), (0.01, -5), (1e-300, 10**9)],
)
def test_invalid_reserve_arguments_raise(error: float, capacity: int) -> None:
    with pytest.raises(SketchParameterError):
        BloomFilter.reserve(error, capacity)


# -- membership ---------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=40), max_size=200), st.integers(1, 5000))
def test_never_a_false_negative(members: list[bytes], capacity: int) -> None:
    bf = BloomFilter.reserve(0.01, capacity)
    vec = _filled(bf, members)
    assert bool(bf.mexists(vec, members).all()) or not members
    for member in members[:5]:
        assert bf.exists(vec, member)


@pytest.mark.parametrize(
    ("error", "capacity", "queries"), [(0.01, 10_000, 100_000), (0.001, 10_000, 200_000)]
)
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_false_positive_rate_at_capacity(
    error: float, capacity: int, queries: int, seed: int
) -> None:
    bf = BloomFilter.reserve(error, capacity)
    added = _members(seed, capacity, b"in:")
    vec = _filled(bf, added)
    assert bool(bf.mexists(vec, added).all())
    probes = _members(seed + 1000, queries, b"out:")
    rate = float(bf.mexists(vec, probes).mean())
    assert rate <= 1.25 * error, f"seed {seed}: measured {rate} vs target {error}"
    # The theory for the actual bits and hashes agrees with the target within the same margin.
    assert bf.false_positive_rate() <= 1.25 * error


# -- BF.ADD / BF.MADD answers --------------------------------------------------------------------


@given(st.lists(st.binary(max_size=6), max_size=60), st.lists(st.binary(max_size=6), max_size=30))
def test_madd_answers_as_sequential_adds(before: list[bytes], batch: list[bytes]) -> None:
    bf = BloomFilter(bits=64, hashes=3, capacity=20, error_rate=0.1)  # small: many collisions
    vec = _filled(bf, before)
    (idx, val), added = bf.madd(vec, batch)
    # The sequential reference: one member at a time, a member is new when a bit was unset.
    seq = vec.copy()
    expected = []
    for member in batch:
        bits = bf.positions([member])[0]
        expected.append(any(seq.get(int(b)) == 0 for b in bits))
        seq.merge_pairs(bits, np.ones(bits.size, np.uint8))
    assert added.tolist() == expected
    vec.merge_pairs(idx, val)
    assert vec == seq


def test_add_then_add_again_reports_exists() -> None:
    bf = BloomFilter.reserve(0.01, 1000)
    vec = MaxVector()
    pairs, added = bf.madd(vec, [b"alpha", b"alpha"])
    assert added.tolist() == [True, False]
    vec.merge_pairs(*pairs)
    pairs, added = bf.madd(vec, [b"alpha"])
    assert added.tolist() == [False]
    assert pairs[0].size == 0


# -- union ----------------------------------------------------------------------------------------


def test_union_is_exact_and_order_free() -> None:
    bf = BloomFilter.reserve(0.01, 2000)
    a_items = _members(11, 800, b"a")
    b_items = _members(12, 800, b"b")
    a, b = _filled(bf, a_items), _filled(bf, b_items)
    whole = _filled(bf, a_items + b_items)
    ab = a.copy()
    bf.merge(ab, b, bf)
    ba = b.copy()
    bf.merge(ba, a, bf)
    assert ab == whole
    assert ba == whole
    assert bf.merge(ab, b, bf).is_empty()  # idempotent: nothing grows the second time


def test_union_of_different_shapes_raises() -> None:
    small = BloomFilter.reserve(0.01, 100)
    large = BloomFilter.reserve(0.01, 1000)
    other_k = BloomFilter(small.bits, small.hashes + 1, 100, 0.01)
    for other in (large, other_k):
        with pytest.raises(SketchParameterError):
            small.merge(MaxVector(), MaxVector(), other)
    same_shape = BloomFilter(small.bits, small.hashes, 5, 0.2)  # same bits and hashes
    small.check_mergeable(same_shape)


# -- BF.INFO / BF.CARD -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_items_estimate_from_set_bits(seed: int) -> None:
    bf = BloomFilter.reserve(0.01, 20_000)
    vec = MaxVector()
    for fill in (100, 5000, 20_000):
        vec = _filled(bf, _members(seed, fill, b"i"))
        estimate = bf.info(vec).items
        assert abs(estimate - fill) <= 0.03 * fill + 2, f"seed {seed}: {estimate} vs {fill}"
    assert bf.card(vec) == bf.info(vec).items


def test_saturated_filter_estimate_is_finite() -> None:
    bf = BloomFilter(bits=64, hashes=2, capacity=10, error_rate=0.1)
    vec = MaxVector.from_pairs(np.arange(64), np.ones(64, np.uint8))
    assert 10 <= bf.card(vec) < 10_000


# -- schema and serialisation ---------------------------------------------------------------------


def test_schema_maps_back_to_an_equal_view() -> None:
    bf = BloomFilter.reserve(0.0123, 4567)
    back = view_for(bf.schema)
    assert isinstance(back, BloomFilter)
    assert (back.bits, back.hashes, back.capacity, back.error_rate) == (
        bf.bits,
        bf.hashes,
        4567,
        0.0123,
    )
    assert type_name(bf.schema) == "MBbloom--"


def test_codec_round_trip_then_merge() -> None:
    bf = BloomFilter.reserve(0.01, 500)
    first, second = _members(31, 200, b"x"), _members(32, 200, b"y")
    local = _filled(bf, first)
    remote = Entry(3, bf.schema, NO_EXPIRY, {"": _filled(bf, second)})
    decoded = decode_entry(encode_entry(remote))
    assert decoded == remote
    assert decoded.schema is bf.schema  # interned
    mine = Entry(3, bf.schema, NO_EXPIRY, {"": local})
    mine.merge(decoded)
    assert bool(bf.mexists(mine.vector, first + second).all())
    assert mine.vector == _filled(bf, first + second)
