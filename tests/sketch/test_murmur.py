"""The C extension (``hearsay.sketch._murmur``) against the Python reference, bit for bit.

``murmurhash64a`` (plain Python) is the reference for the hash and Redis's ``hllPatLen`` loop,
written out below, for the register index and rank. The redis-server differential tests
(test_hll_redis.py) then tie both to Redis itself.
"""

from __future__ import annotations

import array
import random
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hearsay.base.errors import SketchParameterError
from hearsay.sketch import hll_math
from hearsay.sketch.murmur import REDIS_HLL_SEED, hash64a, index_rank, murmurhash64a
from tests.support.hll_reference import redis_pat_len

SEEDS = [REDIS_HLL_SEED, 0, 0xFFFFFFFF]
seeds = st.sampled_from(SEEDS) | st.integers(min_value=0, max_value=0xFFFFFFFF)
members_of_any_length = st.binary(max_size=100) | st.binary(min_size=1000, max_size=5000)


def _batch(members: Any, p: int, seed: int) -> list[tuple[int, int]]:
    """The C batch's (index, rank) pairs, via numpy arrays as hll_math.members_index_rank passes."""
    indices = np.empty(len(members), dtype=np.uint32)
    ranks = np.empty(len(members), dtype=np.uint8)
    index_rank(members, p, seed, indices, ranks)
    return _pairs(indices, ranks)


def _pairs(indices: Any, ranks: Any) -> list[tuple[int, int]]:
    return list(zip(indices.tolist(), ranks.tolist(), strict=True))


def _expected(members: list[bytes], p: int, seed: int) -> list[tuple[int, int]]:
    return [redis_pat_len(murmurhash64a(m, seed), p) for m in members]


def test_known_vectors_from_independent_implementation() -> None:
    # MurmurHash64A("hash me") as published in cetech's murmur_hash_64 test.
    assert hash64a(b"hash me", 22) == 15828218858260124487
    assert hash64a(b"hash me", 330) == 11490980199443804233


@pytest.mark.parametrize("seed", SEEDS)
def test_every_short_length_and_some_long_ones(seed: int) -> None:
    # Every block count and tail size up to 100 bytes, then members of several KB.
    rng = random.Random(seed)
    members = [rng.randbytes(n) for n in range(101)]
    members += [rng.randbytes(n) for n in (4096, 4099, 8 * 1000 + 3, 65_536, 100_001)]
    assert [hash64a(m, seed) for m in members] == [murmurhash64a(m, seed) for m in members]
    for p in range(hll_math.PRECISION_MIN, hll_math.PRECISION_MAX + 1):
        assert _batch(members, p, seed) == _expected(members, p, seed)


@pytest.mark.property
@settings(max_examples=300, deadline=None)
@given(members_of_any_length, seeds)
@example(b"", 0)
@example(b"\xff" * 15, 0xFFFFFFFF)
def test_scalar_matches_reference(data: bytes, seed: int) -> None:
    assert hash64a(data, seed) == murmurhash64a(data, seed)


@pytest.mark.property
@settings(max_examples=300, deadline=None)
@given(
    st.lists(members_of_any_length, max_size=40),
    st.integers(min_value=hll_math.PRECISION_MIN, max_value=hll_math.PRECISION_MAX),
    seeds,
)
def test_batch_of_mixed_lengths_matches_reference(members: list[bytes], p: int, seed: int) -> None:
    assert _batch(members, p, seed) == _expected(members, p, seed)
    indices, ranks = hll_math.members_index_rank(members, p, seed)
    assert (indices.dtype, ranks.dtype) == (np.uint32, np.uint8)
    assert _batch(tuple(members), p, seed) == _pairs(indices, ranks)


@pytest.mark.parametrize("p", range(hll_math.PRECISION_MIN, hll_math.PRECISION_MAX + 1))
def test_batch_agrees_with_the_numpy_statement_of_hllpatlen(p: int) -> None:
    rng = random.Random(p)
    members = [rng.randbytes(rng.randint(0, 40)) for _ in range(2000)]
    hashes = np.array([murmurhash64a(m) for m in members], dtype=np.uint64)
    expected = hll_math.index_rank(hashes, p)
    got = hll_math.members_index_rank(members, p)
    assert got[0].tolist() == expected[0].tolist()
    assert got[1].tolist() == expected[1].tolist()


def test_bytes_like_members_hash_as_their_bytes() -> None:
    data = bytes(range(37))
    views: list[Any] = [
        bytearray(data),
        memoryview(data),
        memoryview(b"xx" + data)[2:],
        np.frombuffer(data, dtype=np.uint8),
        array.array("B", data),
    ]
    expected = murmurhash64a(data)
    assert [hash64a(v, REDIS_HLL_SEED) for v in views] == [expected] * len(views)
    assert _batch([data, *views], 14, REDIS_HLL_SEED) == _expected([data], 14, REDIS_HLL_SEED) * 6


def test_any_sequence_of_members() -> None:
    members = [b"a", b"bb", b"ccc"]
    expected = _expected(members, 14, 0)
    assert _batch(tuple(members), 14, 0) == expected
    assert _batch(range(0), 14, 0) == []  # an empty non-list sequence
    indices = np.empty(3, dtype=np.uint32)
    ranks = np.empty(3, dtype=np.uint8)
    index_rank(iter(members), 14, 0, indices, ranks)  # any iterable, copied into a list
    assert _pairs(indices, ranks) == expected


def test_empty_batch() -> None:
    indices, ranks = hll_math.members_index_rank([])
    assert (indices.shape, indices.dtype, ranks.shape, ranks.dtype) == (
        (0,),
        np.uint32,
        (0,),
        np.uint8,
    )


def test_non_bytes_members_are_refused() -> None:
    for bad in ("text", 7, None, [b"x"]):
        with pytest.raises(TypeError, match=r"members\[1\] must be bytes-like"):
            _batch([b"ok", bad], 14, 0)
        with pytest.raises(TypeError):
            hash64a(bad, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence"):
        index_rank(5, 14, 0, np.empty(0, np.uint32), np.empty(0, np.uint8))  # type: ignore[arg-type]
    with pytest.raises(BufferError):  # not contiguous
        hash64a(memoryview(b"abcdef")[::2], 0)


@pytest.mark.parametrize("seed", [-1, 1 << 32, 1 << 64, -(1 << 70)])
def test_seed_out_of_range(seed: int) -> None:
    with pytest.raises(ValueError, match="seed must fit in 32 bits"):
        hash64a(b"x", seed)
    with pytest.raises(ValueError, match="seed must fit in 32 bits"):
        _batch([b"x"], 14, seed)
    with pytest.raises(ValueError, match="seed must fit in 32 bits"):
        hll_math.members_index_rank([b"x"], 14, seed)


def test_seed_and_precision_must_be_integers() -> None:
    with pytest.raises(TypeError):
        hash64a(b"x", 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _batch([b"x"], 14.0, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _batch([b"x"], 14, "0")  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [3, 19, 0, -1, 64, 1 << 70])
def test_precision_out_of_range(p: int) -> None:
    with pytest.raises(ValueError, match=r"p must be in 4\.\.18"):
        _batch([b"x"], p, 0)
    with pytest.raises(SketchParameterError):
        hll_math.members_index_rank([b"x"], p)


def test_wrong_argument_count() -> None:
    with pytest.raises(TypeError, match="takes 2 positional arguments"):
        hash64a(b"x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="takes 5 positional arguments"):
        index_rank([b"x"], 14, 0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("indices", "ranks"),
    [
        (np.empty(2, np.uint32), np.empty(3, np.uint8)),  # wrong lengths
        (np.empty(4, np.uint32), np.empty(3, np.uint8)),
        (np.empty(3, np.uint64), np.empty(3, np.uint8)),  # wrong item types
        (np.empty(3, np.int32), np.empty(3, np.uint8)),
        (np.empty(3, np.uint32), np.empty(3, np.int8)),
        (np.empty(3, np.uint32), np.empty(3, np.uint16)),
        (bytearray(12), bytearray(3)),  # right bytes, wrong format
    ],
)
def test_output_buffers_of_the_wrong_shape(indices: Any, ranks: Any) -> None:
    with pytest.raises(ValueError, match="must be a writable buffer of 3 items"):
        index_rank([b"a", b"b", b"c"], 14, 0, indices, ranks)


def test_read_only_or_non_contiguous_outputs() -> None:
    members = [b"a", b"b"]
    read_only = np.empty(2, np.uint32)
    read_only.flags.writeable = False
    for indices, ranks in [
        (read_only, np.empty(2, np.uint8)),
        (np.empty(2, np.uint32), bytes(2)),
        (np.empty(4, np.uint32)[::2], np.empty(2, np.uint8)),
    ]:
        with pytest.raises((TypeError, BufferError, ValueError)):
            index_rank(members, 14, 0, indices, ranks)


def test_every_buffer_is_released_on_every_path() -> None:
    # An exported bytearray or array.array cannot be resized: a buffer the C code forgot to
    # release shows up as a BufferError here. Refcounts show a leaked reference.
    def raised(members: list[Any], indices: Any, ranks: Any) -> type[Exception] | None:
        # (Not pytest.raises: its traceback would keep references to the arguments.)
        try:
            index_rank(members, 14, 0, indices, ranks)
        except Exception as e:
            return type(e)
        return None

    def check(members: list[Any], indices: Any, ranks: Any, error: type[Exception] | None) -> None:
        before = [sys.getrefcount(x) for x in (*members, indices, ranks)]
        assert raised(members, indices, ranks) is error
        assert [sys.getrefcount(x) for x in (*members, indices, ranks)] == before
        for obj in (*members, indices, ranks):
            if isinstance(obj, bytearray | array.array):
                obj.append(0)  # would raise BufferError while still exported
                obj.pop()

    member = bytearray(b"member")
    check([member, member], array.array("I", [0, 0]), bytearray(2), None)  # success
    check([member, "bad"], array.array("I", [0, 0]), bytearray(2), TypeError)  # a bad member
    check([member, member], array.array("I", [0, 0]), bytearray(3), ValueError)  # bad ranks
    check([member, member], bytearray(8), bytearray(2), ValueError)  # bad indices
    data = bytearray(b"scalar")
    hash64a(data, 0)
    data.append(0)
    with pytest.raises(ValueError):
        hash64a(data, -1)
    data.append(0)
