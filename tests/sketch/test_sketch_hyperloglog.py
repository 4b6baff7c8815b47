"""Tests of the HyperLogLog view's wiring: pairs merged into a max-vector count exactly as the
colleague's Redis-exact estimator counts the same registers; unions; Redis HYLL strings through
the view; precisions; serialisation through the lattice codec."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.errors import DecodeError, SketchParameterError
from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import NO_EXPIRY, Entry
from hearsay.lattice.vector import MaxVector
from hearsay.sketch import hll_math, hyll_format
from hearsay.sketch.hll_view import HyperLogLog
from hearsay.sketch.views import type_name, view_for


def _members(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [b"m:" + rng.randbytes(rng.randint(0, 20)) for _ in range(count)]


def _filled(view: HyperLogLog, members: list[bytes]) -> MaxVector:
    vec = MaxVector()
    vec.merge_pairs(*view.add(members))
    return vec


@given(
    st.lists(st.binary(max_size=30), max_size=300),
    st.integers(hll_math.PRECISION_MIN, hll_math.PRECISION_MAX),
)
def test_count_of_merged_pairs_equals_estimator_on_registers(members: list[bytes], p: int) -> None:
    view = HyperLogLog(p)
    vec = _filled(view, members)
    indices, ranks = hll_math.members_index_rank(members, p)
    registers = hll_math.registers_from_pairs(indices, ranks, p)
    assert np.array_equal(view.registers(vec), registers)
    assert view.count(vec) == hll_math.count(registers)
    assert view.is_empty(vec) == (not members)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_in_any_order_give_the_same_vector(seed: int) -> None:
    view = HyperLogLog()
    members = _members(seed, 5000)
    whole = _filled(view, members)
    rng = random.Random(seed)
    chunks = [members[i : i + 700] for i in range(0, len(members), 700)]
    rng.shuffle(chunks)
    vec = MaxVector()
    for chunk in chunks + chunks[:2]:  # re-delivery of two batches
        vec.merge_pairs(*view.add(chunk))
    assert vec == whole
    estimate = view.count(vec)
    distinct = len(set(members))
    assert abs(estimate - distinct) <= 4 * view.error_bound() * distinct


def test_union_count_and_pfmerge() -> None:
    view = HyperLogLog()
    a_members, b_members = _members(10, 3000), _members(11, 2000)
    a, b = _filled(view, a_members), _filled(view, b_members)
    union = _filled(view, a_members + b_members)
    assert view.count_union([a, b]) == view.count(union)
    assert view.count_union([a]) == view.count(a)
    merged = a.copy()
    assert not view.merge(merged, b).is_empty()
    assert merged == union
    assert view.merge(merged, b).is_empty()  # idempotent
    assert view.count_union([]) == 0


def test_redis_strings_round_trip_through_the_view() -> None:
    view = HyperLogLog()
    for members in (_members(20, 10), _members(21, 50_000)):  # sparse, then dense
        vec = _filled(view, members)
        data = view.to_redis(vec)
        encoding = hyll_format.ENCODING_SPARSE if len(members) == 10 else hyll_format.ENCODING_DENSE
        assert data[4] == encoding
        back = MaxVector()
        back.merge_pairs(*view.from_redis(data))
        assert back == vec
        assert view.count(back) == view.count(vec)
    with pytest.raises(DecodeError):
        view.from_redis(b"not an hll at all")


def test_redis_strings_need_precision_14() -> None:
    view = HyperLogLog(10)
    with pytest.raises(SketchParameterError):
        view.to_redis(MaxVector())
    with pytest.raises(SketchParameterError):
        view.from_redis(hyll_format.export_redis(np.zeros(hyll_format.REGISTERS, np.uint8)))


@pytest.mark.parametrize("p", range(hll_math.PRECISION_MIN, hll_math.PRECISION_MAX + 1))
def test_precisions_and_sizing(p: int) -> None:
    view = HyperLogLog(p)
    assert view.schema.size == 1 << p == view.registers_count
    assert view.schema.params == (p,)
    assert view_for(view.schema).schema is view.schema
    assert HyperLogLog.for_error(view.error_bound()).precision <= p
    assert type_name(view.schema) == "string"


@pytest.mark.parametrize("p", [3, 19, -1])
def test_bad_precisions_are_refused(p: int) -> None:
    with pytest.raises(SketchParameterError):
        HyperLogLog(p)


def test_out_of_range_register_from_a_peer_reads_as_saturated() -> None:
    view = HyperLogLog(4)
    vec = MaxVector.from_pairs([0, 3], [200, 5])
    registers = view.registers(vec)
    assert registers.dtype == np.uint8
    assert registers[0] == 63
    assert registers[3] == 5
    assert isinstance(view.count(vec), int)


def test_codec_round_trip_then_merge() -> None:
    view = HyperLogLog()
    a_members, b_members = _members(30, 400), _members(31, 400)
    remote = Entry(2, view.schema, NO_EXPIRY, {"": _filled(view, b_members)})
    decoded = decode_entry(encode_entry(remote))
    assert decoded == remote
    local = Entry(2, view.schema, NO_EXPIRY, {"": _filled(view, a_members)})
    local.merge(decoded)
    assert view.count(local.vector) == view.count(_filled(view, a_members + b_members))
