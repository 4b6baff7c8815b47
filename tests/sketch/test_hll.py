"""Unit and property tests of the Redis-compatible HLL math and the HYLL byte format.

The differential tests against a real redis-server are in test_hll_redis.py; the known
vectors here were read from Redis 7.0.15 (PFADD on an empty key, then PFDEBUG GETREG / GET)
and from an independent MurmurHash64A implementation's published test.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError, DecodeError, SketchParameterError
from hearsay.sketch import hll_math, hyll_format
from hearsay.sketch.murmur import REDIS_HLL_SEED, murmurhash64a
from tests.support.hll_reference import redis_pat_len

# ---------------------------------------------------------------------------------------------
# MurmurHash64A


def test_murmur_known_vectors_from_independent_implementation() -> None:
    # MurmurHash64A("hash me") as published in cetech's murmur_hash_64 test.
    assert murmurhash64a(b"hash me", 22) == 15828218858260124487
    assert murmurhash64a(b"hash me", 330) == 11490980199443804233


# (member, register index, register value) observed in Redis 7.0.15 after one PFADD.
REDIS_SINGLE_MEMBER = [
    (b"", 5938, 2),
    (b"hello", 9216, 1),
    ("héllo wörld ✓".encode(), 11563, 5),
    (b"\x00\xff\x00\x01\x02\x03\x04\x05\x06", 1150, 2),
    (b"a" * 100, 2233, 2),
    (b"12345678", 10579, 3),
]


@pytest.mark.parametrize(("member", "index", "rank"), REDIS_SINGLE_MEMBER)
def test_index_rank_matches_redis_single_member(member: bytes, index: int, rank: int) -> None:
    idx, rk = hll_math.members_index_rank([member])
    assert (int(idx[0]), int(rk[0])) == (index, rank)
    scalar = np.array([murmurhash64a(member)], dtype=np.uint64)
    idx2, rk2 = hll_math.index_rank(scalar, 14)
    assert (int(idx2[0]), int(rk2[0])) == (index, rank)


def test_redis_seed_is_the_default() -> None:
    assert REDIS_HLL_SEED == 0xADC83B19
    assert murmurhash64a(b"x") == murmurhash64a(b"x", 0xADC83B19)
    assert murmurhash64a(b"x") != murmurhash64a(b"x", 0)


def test_seed_must_fit_32_bits() -> None:
    with pytest.raises(ValueError):
        murmurhash64a(b"x", 1 << 32)
    with pytest.raises(ValueError):
        murmurhash64a(b"x", -1)


# ---------------------------------------------------------------------------------------------
# index / rank


@pytest.mark.parametrize("p", range(4, 19))
def test_index_rank_matches_bitwise_loop(p: int) -> None:
    rng = random.Random(p)
    values = [rng.getrandbits(64) for _ in range(300)]
    # Hashes with long zero runs, including all-zero above the index and the extreme bits.
    values += [0, 1, (1 << 64) - 1, 1 << 63, (1 << p) - 1, 1 << p, 1 << (63 - 1)]
    values += [(rng.getrandbits(p)) | (1 << b) for b in range(p, 64)]
    hashes = np.array(values, dtype=np.uint64)
    idx, rk = hll_math.index_rank(hashes, p)
    assert idx.dtype == np.uint32
    assert rk.dtype == np.uint8
    expected = [redis_pat_len(v, p) for v in values]
    assert list(zip(idx.tolist(), rk.tolist(), strict=True)) == expected
    assert hashes.tolist() == values  # the caller's hashes are left alone
    assert int(rk.max()) <= 64 - p + 1
    assert int(rk.min()) >= 1
    # The all-zero hash gives the longest possible run.
    assert int(rk[values.index(0)]) == hll_math.max_rank(p)


@pytest.mark.parametrize("p", [3, 19, 0, -1, 64])
def test_precision_out_of_range(p: int) -> None:
    with pytest.raises(SketchParameterError):
        hll_math.index_rank(np.zeros(1, dtype=np.uint64), p)
    with pytest.raises(SketchParameterError):
        hll_math.error_bound(p)


def test_index_rank_rejects_non_uint64() -> None:
    with pytest.raises(SketchParameterError):
        hll_math.index_rank(np.zeros(3, dtype=np.int64), 14)


def test_registers_from_pairs_takes_max() -> None:
    idx = np.array([3, 3, 5, 3, 0], dtype=np.uint32)
    rk = np.array([2, 7, 1, 4, 9], dtype=np.uint8)
    regs = hll_math.registers_from_pairs(idx, rk, 4)
    assert regs.dtype == np.uint8
    assert regs.shape == (16,)
    assert regs[3] == 7
    assert regs[5] == 1
    assert regs[0] == 9
    assert int(regs.sum()) == 17
    with pytest.raises(BoundsError):
        hll_math.registers_from_pairs(np.array([16], dtype=np.uint32), np.array([1], np.uint8), 4)


# ---------------------------------------------------------------------------------------------
# estimator


def test_count_empty_is_zero() -> None:
    for p in range(4, 19):
        assert hll_math.count(np.zeros(1 << p, dtype=np.uint8)) == 0


def test_count_rejects_bad_shapes() -> None:
    with pytest.raises(SketchParameterError):
        hll_math.count(np.zeros(1000, dtype=np.uint8))
    with pytest.raises(SketchParameterError):
        hll_math.count(np.zeros(8, dtype=np.uint8))  # p = 3
    with pytest.raises(SketchParameterError):
        hll_math.count(np.zeros((128, 128), dtype=np.uint8))
    with pytest.raises(BoundsError):
        hll_math.count(np.full(16, 64, dtype=np.uint8))


def test_count_of_few_members_is_exact() -> None:
    # At p = 14 Redis counts small sets exactly (linear-counting regime).
    for n in (1, 2, 3, 10, 50):
        members = [f"member-{i}".encode() for i in range(n)]
        idx, rk = hll_math.members_index_rank(members)
        assert hll_math.count(hll_math.registers_from_pairs(idx, rk)) == n


@pytest.mark.parametrize("p", [10, 12, 14, 16, 18])
def test_count_within_error_bound(p: int) -> None:
    rng = np.random.default_rng(p)
    n = 200_000
    # Random 64-bit values are as good as hashes for the estimator.
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    idx, rk = hll_math.index_rank(hashes, p)
    est = hll_math.count(hll_math.registers_from_pairs(idx, rk, p))
    # 5 standard errors: fails by chance with probability < 1e-6 per case.
    assert abs(est - n) / n < 5 * hll_math.error_bound(p), (p, est)


@pytest.mark.parametrize("p", [4, 6, 8])
def test_small_precisions_err_as_the_standard_error_says(p: int) -> None:
    """At small precisions one estimate says little (at p=4, five standard errors are 130%:
    an estimate of 0 would pass), so look at the error over many independent sketches: its
    root mean square must be about the standard error 1.04/sqrt(m) and its mean near 0.
    Measured here (400 sketches of 50 m values): RMS 0.96-1.23 SE, mean 0.04-0.32 SE; an
    estimator off by a factor of 2 has an RMS of 1.9 SE at p=4 and far more above."""
    rng = np.random.default_rng(100 + p)
    n = 50 << p
    trials = 400
    errors = np.empty(trials)
    for t in range(trials):
        hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
        est = hll_math.count(hll_math.registers_from_pairs(*hll_math.index_rank(hashes, p), p))
        errors[t] = (est - n) / n
    se = hll_math.error_bound(p)
    rms = float(np.sqrt(np.mean(errors**2)))
    mean = float(np.mean(errors))
    assert 0.7 * se < rms < 1.5 * se, (p, rms / se)
    assert abs(mean) < 0.5 * se, (p, mean / se)


def test_union_is_elementwise_max() -> None:
    a = [f"a{i}".encode() for i in range(5000)]
    b = [f"b{i}".encode() for i in range(3000)] + a[:1000]
    ra = hll_math.registers_from_pairs(*hll_math.members_index_rank(a))
    rb = hll_math.registers_from_pairs(*hll_math.members_index_rank(b))
    both = hll_math.registers_from_pairs(*hll_math.members_index_rank(a + b))
    assert np.array_equal(np.maximum(ra, rb), both)
    assert hll_math.count(np.maximum(ra, rb)) == hll_math.count(both)


def test_error_bound_and_sizing() -> None:
    assert hll_math.error_bound(14) == pytest.approx(1.04 / 128)
    for p in range(4, 19):
        assert hll_math.precision_for_error(hll_math.error_bound(p)) == p
        if p > 4:
            # A slightly looser requirement is met by a smaller precision.
            assert hll_math.precision_for_error(hll_math.error_bound(p - 1) * 1.0001) == p - 1
    assert hll_math.precision_for_error(0.00813) == 14  # 1.04 / 128 = 0.008125
    assert hll_math.precision_for_error(0.0081) == 15
    assert hll_math.precision_for_error(0.5) == 4
    assert hll_math.precision_for_error(1.0) == 4
    for bad in (0.0, -0.1, math.nan, math.inf, hll_math.error_bound(18) * 0.99):
        with pytest.raises(SketchParameterError):
            hll_math.precision_for_error(bad)


# ---------------------------------------------------------------------------------------------
# HYLL format


# GET of a Redis 7.0.15 key after PFADD k a b c (sparse, cached cardinality stale).
REDIS_ABC_SPARSE = bytes.fromhex("48594c4c01000000000000000000008060f38050b1844bfb80425a")


def test_import_redis_known_sparse_string() -> None:
    regs = hyll_format.import_redis(REDIS_ABC_SPARSE)
    expected = hll_math.registers_from_pairs(*hll_math.members_index_rank([b"a", b"b", b"c"]))
    assert np.array_equal(regs, expected)
    assert hll_math.count(regs) == 3
    # Our canonical sparse encoding of the same registers is what Redis wrote here.
    assert hyll_format.export_redis(regs) == REDIS_ABC_SPARSE


def _random_registers(rng: np.random.Generator, nonzero: int, vmax: int) -> np.ndarray:
    regs = np.zeros(hyll_format.REGISTERS, dtype=np.uint8)
    pos = rng.integers(0, hyll_format.REGISTERS, size=nonzero)
    regs[pos] = rng.integers(1, vmax + 1, size=nonzero)
    return regs


def test_export_empty_is_sparse_xzero() -> None:
    data = hyll_format.export_redis(np.zeros(hyll_format.REGISTERS, dtype=np.uint8))
    assert data[:4] == b"HYLL"
    assert data[4] == hyll_format.ENCODING_SPARSE
    assert data[15] & 0x80  # cached cardinality marked stale
    assert data[16:] == bytes([0x7F, 0xFF])  # XZERO:16384
    assert hll_math.count(hyll_format.import_redis(data)) == 0


def test_round_trip_sparse_and_dense() -> None:
    rng = np.random.default_rng(3)
    seen = set()
    for trial in range(300):
        nonzero = int(rng.integers(0, 16384))
        vmax = int(rng.choice([1, 4, 32, 33, 51, 63]))
        regs = _random_registers(rng, nonzero, vmax)
        data = hyll_format.export_redis(regs)
        sparse = data[4] == hyll_format.ENCODING_SPARSE
        seen.add(sparse)
        assert np.array_equal(hyll_format.import_redis(data), regs), trial
        if sparse:
            assert int(regs.max()) <= 32
            assert len(data) <= hyll_format.SPARSE_MAX_BYTES
        else:
            assert len(data) == hyll_format.DENSE_SIZE
    assert seen == {True, False}


def test_export_picks_dense_exactly_when_sparse_does_not_fit() -> None:
    regs = np.zeros(hyll_format.REGISTERS, dtype=np.uint8)
    regs[0] = 33  # one value too big for VAL
    assert hyll_format.export_redis(regs)[4] == hyll_format.ENCODING_DENSE
    # k registers alternating 1, 2 need one VAL byte each, and the zero run after them one
    # XZERO (2 bytes): 16 + k + 2 bytes in all, one byte over the limit for this k.
    regs = np.zeros(hyll_format.REGISTERS, dtype=np.uint8)
    k = hyll_format.SPARSE_MAX_BYTES - hyll_format.HEADER_SIZE - 1
    regs[:k] = np.where(np.arange(k) % 2 == 0, 1, 2)
    data = hyll_format.export_redis(regs)
    assert data[4] == hyll_format.ENCODING_DENSE
    regs[k - 1] = 0
    data = hyll_format.export_redis(regs)
    assert data[4] == hyll_format.ENCODING_SPARSE
    assert len(data) == hyll_format.SPARSE_MAX_BYTES
    assert np.array_equal(hyll_format.import_redis(data), regs)


def test_dense_packing_is_lsb_first() -> None:
    regs = np.zeros(hyll_format.REGISTERS, dtype=np.uint8)
    regs[0] = 0b000001
    regs[1] = 0b111111
    regs[2] = 0b100000
    regs[5] = 40
    data = hyll_format.export_redis(regs)
    assert data[4] == hyll_format.ENCODING_DENSE
    body = data[hyll_format.HEADER_SIZE :]
    # |11000001|11111111|10000011|  register 0 in the low bits of byte 0, etc.
    assert body[0] == 0b11000001
    assert body[1] == 0b00001111
    assert body[2] == 0b00000010
    assert np.array_equal(hyll_format.import_redis(data), regs)


def test_export_rejects_bad_registers() -> None:
    with pytest.raises(SketchParameterError):
        hyll_format.export_redis(np.zeros(1 << 12, dtype=np.uint8))
    with pytest.raises(BoundsError):
        hyll_format.export_redis(np.full(hyll_format.REGISTERS, 64, dtype=np.uint8))


def _sparse(body: bytes) -> bytes:
    return b"HYLL\x01\x00\x00\x00" + bytes(7) + b"\x80" + body


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "shorter"),
        (b"HYLL", "shorter"),
        (b"HYLX" + bytes(12) + b"\x7f\xff", "magic"),
        (b"HYLL\x02" + bytes(11) + b"\x7f\xff", "encoding"),
        (b"HYLL\x00" + bytes(11 + 12287), "dense"),
        (b"HYLL\x00" + bytes(11 + 12289), "dense"),
        (_sparse(b""), "cover 0"),
        (_sparse(b"\x7f"), "second byte"),
        (_sparse(b"\x7f\xff\x00"), "more than"),
        (_sparse(b"\x7f\xfe\x80\x80"), "VAL"),
        (_sparse(b"\x7f\xfc\x83"), "VAL"),
        (_sparse(b"\x00" * 100), "cover 100"),
        (_sparse(b"\x40\x00" * 20000), "more than any valid"),
    ],
)
def test_import_rejects_malformed(data: bytes, needle: str) -> None:
    with pytest.raises(DecodeError, match=needle):
        hyll_format.import_redis(data)


def test_import_accepts_non_canonical_sparse() -> None:
    # XZERO runs of 1 and ZERO runs split arbitrarily are still valid if they cover 16384.
    body = b"\x40\x00" + b"\x3f" * 255 + b"\x84" + b"\x00" * 62
    covered = 1 + 64 * 255 + 1 + 62
    assert covered == hyll_format.REGISTERS
    regs = hyll_format.import_redis(_sparse(body))
    assert int(regs.sum()) == 2
    assert regs[1 + 64 * 255] == 2


@pytest.mark.property
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
@example(b"HYLL")
@example(_sparse(b"\x7f"))
def test_import_garbage_raises_decode_error_only(data: bytes) -> None:
    for candidate in (data, b"HYLL" + data, _sparse(data), b"HYLL\x00" + data):
        try:
            regs = hyll_format.import_redis(candidate)
        except DecodeError:
            continue
        assert regs.dtype == np.uint8
        assert regs.shape == (hyll_format.REGISTERS,)


@pytest.mark.property
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, hyll_format.REGISTERS - 1), st.integers(1, 63)),
        max_size=300,
    ),
    st.data(),
)
def test_mutated_exports_decode_or_raise(pairs: list[tuple[int, int]], data: st.DataObject) -> None:
    regs = np.zeros(hyll_format.REGISTERS, dtype=np.uint8)
    for i, v in pairs:
        regs[i] = max(regs[i], v)
    encoded = hyll_format.export_redis(regs)
    assert np.array_equal(hyll_format.import_redis(encoded), regs)
    cut = data.draw(st.integers(0, len(encoded)))
    flip_at = data.draw(st.integers(0, len(encoded) - 1))
    flip = data.draw(st.integers(1, 255))
    mutated = bytearray(encoded)
    mutated[flip_at] ^= flip
    for candidate in (encoded[:cut], bytes(mutated), encoded + b"\x00", encoded + b"\x80"):
        try:
            out = hyll_format.import_redis(candidate)
        except DecodeError:
            continue
        assert out.shape == (hyll_format.REGISTERS,)


@pytest.mark.parametrize(("high", "low"), [(16, 14), (14, 10), (18, 4), (5, 4), (14, 14)])
def test_folding_equals_building_at_the_lower_precision(high: int, low: int) -> None:
    rng = random.Random(high * 100 + low)
    members = [rng.randbytes(rng.randrange(0, 30)) for _ in range(5_000)]
    registers = hll_math.registers_from_pairs(*hll_math.members_index_rank(members, high), high)
    expected = hll_math.registers_from_pairs(*hll_math.members_index_rank(members, low), low)
    assert np.array_equal(hll_math.fold(registers, low), expected)


def test_folding_up_or_from_a_bad_size_is_refused() -> None:
    with pytest.raises(SketchParameterError):
        hll_math.fold(np.zeros(1 << 10, dtype=np.uint8), 12)
    with pytest.raises(BoundsError):
        hll_math.fold(np.zeros(1000, dtype=np.uint8), 4)
