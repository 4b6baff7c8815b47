"""Tests of the PN counter view (Redis's INCR family, overflow, concurrent origins), plus the two
lattice-native views (max register, raw vector) and the schema registry."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import Schema
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import VALUE_MAX, MaxVector
from hearsay.sketch import schemas, slots, views
from hearsay.sketch.counter import INT64_MAX, INT64_MIN, PNCounter
from hearsay.sketch.maxreg import MaxRegister, RawVector

COUNTER = PNCounter()


def _write(slices: dict[str, MaxVector], origin: str, amount: int) -> int:
    pairs, value = COUNTER.incrby(slices, origin, amount)
    slices.setdefault(origin, MaxVector()).merge_pairs(*pairs)
    return value


# -- Redis semantics ------------------------------------------------------------------------------


def test_incr_decr_family_like_redis() -> None:
    slices: dict[str, MaxVector] = {}
    assert COUNTER.get(slices) == 0
    for op, expected in (
        (lambda: COUNTER.incr(slices, "n"), 1),
        (lambda: COUNTER.incrby(slices, "n", 10), 11),
        (lambda: COUNTER.decr(slices, "n"), 10),
        (lambda: COUNTER.decrby(slices, "n", 15), -5),
        (lambda: COUNTER.incrby(slices, "n", -3), -8),
        (lambda: COUNTER.decrby(slices, "n", -8), 0),
    ):
        pairs, value = op()
        assert value == expected
        slices.setdefault("n", MaxVector()).merge_pairs(*pairs)
        assert COUNTER.get(slices) == expected
    p, n = COUNTER.totals(slices["n"])
    assert (p, n) == (1 + 10 + 8, 1 + 15 + 3)


def test_result_overflow_is_refused_and_nothing_changes() -> None:
    slices: dict[str, MaxVector] = {}
    assert _write(slices, "n", INT64_MAX) == INT64_MAX
    with pytest.raises(BoundsError, match="increment or decrement would overflow"):
        COUNTER.incr(slices, "n")
    assert COUNTER.get(slices) == INT64_MAX
    low: dict[str, MaxVector] = {}
    assert _write(low, "m", -INT64_MAX) == -INT64_MAX
    # -2**63 needs decrements of 2**63 in all: one origin's total stops at 2**63-1 ...
    with pytest.raises(BoundsError, match="exhausted"):
        COUNTER.decr(low, "m")
    # ... so the last unit comes through another origin, and then the value is at Redis's floor.
    assert _write(low, "o", -1) == INT64_MIN
    with pytest.raises(BoundsError, match="increment or decrement would overflow"):
        COUNTER.decr(low, "o")
    with pytest.raises(BoundsError, match="decrement would overflow"):
        COUNTER.decrby({}, "n", INT64_MIN)
    with pytest.raises(BoundsError):
        COUNTER.incrby({}, "n", INT64_MAX + 1)
    with pytest.raises(SketchParameterError):
        COUNTER.incrby({}, "n", True)


def test_zero_increment_writes_nothing() -> None:
    (idx, _), value = COUNTER.incrby({}, "n", 0)
    assert len(idx) == 0
    assert value == 0


def test_origin_slice_exhaustion_near_the_value_bound() -> None:
    slices: dict[str, MaxVector] = {}
    _write(slices, "n", INT64_MAX)
    _write(slices, "n", -INT64_MAX)  # value back to 0, but P is at the lattice's bound
    assert COUNTER.totals(slices["n"]) == (VALUE_MAX, VALUE_MAX)
    with pytest.raises(BoundsError, match="exhausted"):
        COUNTER.incr(slices, "n")
    # Another origin still writes.
    assert _write(slices, "other", 5) == 5


# -- concurrency ---------------------------------------------------------------------------------

ops = st.lists(st.tuples(st.sampled_from("abc"), st.integers(-(10**12), 10**12)), max_size=25)


@given(ops, st.randoms(use_true_random=False))
def test_concurrent_origins_converge_to_the_sum(
    writes: list[tuple[str, int]], rng: random.Random
) -> None:
    locals_: dict[str, dict[str, MaxVector]] = {o: {} for o in "abc"}
    deltas: list[tuple[str, MaxVector]] = []
    for origin, amount in writes:
        pairs, _ = COUNTER.incrby(locals_[origin], origin, amount)
        locals_[origin].setdefault(origin, MaxVector()).merge_pairs(*pairs)
        deltas.append((origin, MaxVector.from_pairs(*pairs)))
    delivered = deltas + rng.sample(deltas, len(deltas) // 2)  # re-delivery of some
    rng.shuffle(delivered)
    replica: dict[str, MaxVector] = {}
    for origin, vec in delivered:
        COUNTER.merge(replica, {origin: vec})
    assert COUNTER.get(replica) == sum(amount for _, amount in writes)


def test_counter_through_the_keyspace_and_codec() -> None:
    schema = schemas.counter()
    node_a, node_b = Keyspace(), Keyspace()
    for keyspace, origin, amount in ((node_a, "a", 5), (node_b, "b", -2), (node_a, "a", 1)):
        entry = keyspace.get(b"k", 0)
        slices = dict(entry.slices()) if entry is not None else {}
        pairs, _ = COUNTER.incrby(slices, origin, amount)
        keyspace.write(b"k", schema, {origin: MaxVector.from_pairs(*pairs)}, now_ms=1)
    a_entry, b_entry = node_a.entry(b"k"), node_b.entry(b"k")
    assert a_entry is not None
    assert b_entry is not None
    node_a.merge(b"k", decode_entry(encode_entry(b_entry)))
    node_b.merge(b"k", decode_entry(encode_entry(a_entry)))
    for keyspace in (node_a, node_b):
        merged = keyspace.get(b"k", 2)
        assert merged is not None
        assert COUNTER.get(dict(merged.slices())) == 4


# -- max register and raw vector ---------------------------------------------------------------


def test_max_register_keeps_the_largest() -> None:
    reg = MaxRegister()
    vec = MaxVector()
    for value in (5, 3, 9, 0, 9):
        vec.merge_pairs(*reg.set(value))
    assert reg.get(vec) == 9
    assert reg.is_empty(MaxVector())
    for bad in (-1, VALUE_MAX + 1):
        with pytest.raises(BoundsError):
            reg.set(bad)


def test_raw_vector_set_by_max_and_read_back() -> None:
    view = RawVector()
    vec = MaxVector()
    vec.merge_pairs(*view.set_max([7, 1, 7, 2**32 - 1], [3, 4, 9, 1]))
    vec.merge_pairs(*view.set_max([1], [2]))
    assert view.get(vec) == [(1, 4), (7, 9), (2**32 - 1, 1)]
    assert view.get_at(vec, [7, 8, 1]) == [9, 0, 4]
    with pytest.raises(BoundsError):
        view.set_max([2**32], [1])
    with pytest.raises(BoundsError):
        view.set_max([1], [-1])
    other = MaxVector.from_pairs(np.array([7, 100]), np.array([1, 2]))
    delta = view.merge(vec, other)
    assert delta.items() == [(100, 2)]


# -- the schema registry ---------------------------------------------------------------------------


def test_every_schema_maps_back_to_its_view_and_type() -> None:
    cases = [
        (schemas.hll(14), "string"),
        (schemas.hll(4), "string"),
        (schemas.bloom(1024, 7, 100, 0.01), "MBbloom--"),
        (schemas.cms(100, 5), "CMSk-TYPE"),
        (schemas.counter(), "string"),
        (schemas.maxreg(), "maxreg"),
        (schemas.vector(), "vector"),
    ]
    for schema, name in cases:
        assert views.view_for(schema).schema is schema
        assert views.type_name(schema) == name
    assert schemas.counter().additive
    assert schemas.cms(3, 4).size == 12
    assert not schemas.maxreg().additive


def test_unknown_or_inconsistent_schemas_are_refused() -> None:
    for schema in (
        Schema("nope"),
        Schema("hll", (14,), 1 << 10),
        Schema("hll", (40,), 1 << 10),
        Schema("cms", (10, 10), 50, True),
        Schema("counter", (), 2, False),
        Schema("bloom", (64, 3, 10, 0, 1), 64),
        Schema("bloom", (64, 3, 10, schemas.error_to_bits(0.1), 99), 64),
    ):
        with pytest.raises(SketchParameterError):
            views.view_for(schema)
    with pytest.raises(SketchParameterError):
        views.type_name(Schema("nope"))


def test_values_at_reads_sparse_dense_and_small() -> None:
    sparse = MaxVector.from_pairs(np.array([5, 1000, 70000]), np.array([1, 2, 3]))
    dense = MaxVector.from_dense(np.arange(1, 300))
    probe = np.array([5, 6, 1000, 70000, 10**6] * 20)
    assert slots.values_at(sparse, probe[:5]).tolist() == [1, 0, 2, 3, 0]
    assert slots.values_at(sparse, probe).tolist() == [1, 0, 2, 3, 0] * 20
    assert dense.is_dense
    assert slots.values_at(dense, probe).tolist() == [6, 7, 0, 0, 0] * 20
    summed = slots.summed_at({"a": sparse, "b": dense}, probe[:5])
    assert summed.tolist() == [7, 7, 2, 3, 0]
    huge = MaxVector.from_pairs([0], [VALUE_MAX])
    saturated = slots.summed_at({"a": huge, "b": huge, "c": huge}, np.array([0]))
    assert int(saturated[0]) == 2**64 - 1
    assert schemas.error_from_bits(schemas.error_to_bits(0.0123)) == 0.0123
