"""The lattice laws, checked by hypothesis: merging is a join, deltas are exact."""

from __future__ import annotations

import random
from contextlib import suppress
from typing import Any
from unittest.mock import patch

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError, HearsayError
from hearsay.lattice import vector as vector_module
from hearsay.lattice.codec import decode_entry, encode_entry, entry_to_wire, split_entry
from hearsay.lattice.digest import entry_hash
from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector, normalize_pairs
from tests.support.lattice_strategies import RAW, entries, vectors

pytestmark = pytest.mark.property


def merged(*parts: MaxVector) -> MaxVector:
    out = MaxVector()
    for part in parts:
        out.merge(part)
    return out


def joined(*parts: Entry) -> Entry:
    out = parts[0].copy()
    for part in parts[1:]:
        out.merge(part)
    return out


def as_dict(vector: MaxVector) -> dict[int, int]:
    return dict(vector.items())


# -- vectors --------------------------------------------------------------------------------------


@given(vectors(), vectors())
def test_vector_merge_is_commutative(a: MaxVector, b: MaxVector) -> None:
    assert merged(a, b) == merged(b, a)


@given(vectors(), vectors(), vectors())
def test_vector_merge_is_associative(a: MaxVector, b: MaxVector, c: MaxVector) -> None:
    assert merged(merged(a, b), c) == merged(a, merged(b, c))


@given(vectors(), vectors())
def test_vector_merge_is_idempotent(a: MaxVector, b: MaxVector) -> None:
    once = merged(a, b)
    again = once.copy()
    assert again.merge(b).is_empty()
    assert again == once


@given(vectors(), vectors())
def test_vector_merge_is_elementwise_max_and_delta_is_exact(a: MaxVector, b: MaxVector) -> None:
    before, incoming = as_dict(a), as_dict(b)
    state = a.copy()
    delta = state.merge(b)
    expected = {i: max(before.get(i, 0), incoming.get(i, 0)) for i in {*before, *incoming}}
    assert as_dict(state) == expected
    assert as_dict(delta) == {i: v for i, v in incoming.items() if v > before.get(i, 0)}
    # Monotone: nothing ever shrinks.
    assert all(state.get(i) >= v for i, v in before.items())
    # is_empty (O(1): no dense vector is empty) agrees with the pairs, for every vector here.
    for vector in (a, b, state, delta):
        assert vector.is_empty() == (not as_dict(vector))


@given(vectors(), vectors())
def test_merging_the_delta_reaches_the_same_state_as_merging_everything(
    a: MaxVector, b: MaxVector
) -> None:
    full = a.copy()
    delta = full.merge(b)
    via_delta = a.copy()
    via_delta.merge(delta)
    assert via_delta == full


@given(vectors(), st.integers(1, 50), st.randoms(use_true_random=False))
def test_split_chunks_merge_back_in_any_order(v: MaxVector, size: int, rnd: random.Random) -> None:
    chunks = v.split(size)
    assert all(len(chunk) <= size for chunk in chunks)
    rnd.shuffle(chunks)
    assert merged(*chunks) == v


# -- entries --------------------------------------------------------------------------------------


@given(entries(), entries())
def test_entry_merge_is_commutative(a: Entry, b: Entry) -> None:
    assert joined(a, b) == joined(b, a)


@given(entries(), entries(), entries())
def test_entry_merge_is_associative(a: Entry, b: Entry, c: Entry) -> None:
    assert joined(joined(a, b), c) == joined(a, joined(b, c))


@given(entries(), entries())
def test_entry_merge_is_idempotent_and_reports_no_change_twice(a: Entry, b: Entry) -> None:
    state = joined(a, b)
    assert not state.merge(b).changed
    assert not state.merge(a).changed
    assert state == joined(a, b)


@given(entries(), entries())
def test_entry_delta_reaches_the_same_state(a: Entry, b: Entry) -> None:
    full = a.copy()
    result = full.merge(b)
    via_delta = a.copy()
    if result.delta is not None:
        via_delta.merge(result.delta)
    assert via_delta == full


@given(entries(), entries())
def test_encode_decode_round_trip_then_merge(a: Entry, b: Entry) -> None:
    assert decode_entry(encode_entry(a)) == a
    assert joined(decode_entry(encode_entry(a)), decode_entry(encode_entry(b))) == joined(a, b)


@given(entries(), st.integers(200, 1400), st.randoms(use_true_random=False))
def test_split_entries_fit_the_budget_and_merge_back(
    entry: Entry, budget: int, rnd: random.Random
) -> None:
    chunks = split_entry(entry, budget)
    assert all(len(encode_entry(chunk)) <= budget for chunk in chunks)
    rnd.shuffle(chunks)
    state = Entry()
    for chunk in chunks:
        state.merge(decode_entry(encode_entry(chunk)))
    assert state == entry


@given(entries(), entries(), st.integers(1, 10**13))
def test_a_delete_is_never_undone_by_an_older_delta(a: Entry, late: Entry, now_ms: int) -> None:
    """Whatever an older epoch sends later, the deleted data does not come back."""
    keyspace = Keyspace(4)
    keyspace.merge(b"k", a)
    keyspace.delete(b"k", now_ms)
    tombstone = keyspace.entry(b"k")
    assert tombstone is not None
    late.epoch = min(late.epoch, a.epoch)
    keyspace.merge(b"k", late)
    after = keyspace.entry(b"k")
    assert after is not None
    assert after.epoch == tombstone.epoch
    if late.epoch < tombstone.epoch:
        assert after.is_tombstone()


# -- keyspaces ------------------------------------------------------------------------------------

keys = st.sampled_from([b"a", b"b", b"c", b"n:127.0.0.1:6000", b"\x00\xff"])


@given(st.lists(st.tuples(keys, entries()), max_size=12), st.randoms(use_true_random=False))
def test_keyspaces_converge_in_any_order_with_equal_hashes(
    deltas: list[tuple[bytes, Entry]], rnd: random.Random
) -> None:
    first, second = Keyspace(8), Keyspace(8)
    for key, delta in deltas:
        first.merge(key, delta)
    shuffled = deltas * 2  # duplicated delivery too
    rnd.shuffle(shuffled)
    for key, delta in shuffled:
        second.merge(key, delta)
    assert dict(first.items()) == dict(second.items())
    assert first.bucket_hashes().tolist() == second.bucket_hashes().tolist()
    assert len(first) == len(second)


@given(st.lists(st.tuples(keys, entries()), max_size=12))
def test_incremental_bucket_hashes_equal_a_recomputation(deltas: list[tuple[bytes, Entry]]) -> None:
    keyspace = Keyspace(4)
    for key, delta in deltas:
        keyspace.merge(key, delta)
    expected = [0] * keyspace.bucket_count
    for key, entry in keyspace.items():
        expected[keyspace.bucket_of(key)] ^= entry_hash(key, entry)
    assert keyspace.bucket_hashes().tolist() == expected


operations = st.one_of(
    st.tuples(st.just("merge"), keys, entries()),
    st.tuples(
        st.just("write_pairs"),
        keys,
        st.lists(st.tuples(st.integers(0, 20000), st.integers(1, 255)), max_size=6),
    ),
    st.tuples(st.just("delete"), keys, st.integers(1, 10**13)),
    st.tuples(st.just("expire"), keys, st.integers(1, 10**13)),
    st.tuples(st.just("purge"), keys, st.integers(1, 10**14)),
    st.tuples(st.just("hash"), keys, st.none()),
)


@given(st.lists(operations, max_size=16))
def test_kept_key_hashes_equal_a_recomputation(steps: list[tuple[str, bytes, Any]]) -> None:
    """The content hashes the keyspace keeps for digests (updated by every change, never
    recomputed) equal a fresh hash of each key after any mix of merges, bulk writes,
    deletes, expiries and purges; a key asked for after each step, so every path meets a
    kept hash."""
    from tests.support.lattice_strategies import HLL

    keyspace = Keyspace(4)
    for op, key, arg in steps:
        if op == "merge":
            keyspace.merge(key, arg)
        elif op == "write_pairs":
            indices = [index for index, _ in arg]
            values = [value for _, value in arg]
            with suppress(HearsayError):  # (another schema held: refused, nothing changed)
                keyspace.write_pairs(key, HLL, "", indices, values, now_ms=1)
        elif op == "delete":
            keyspace.delete(key, arg)
        elif op == "expire":
            keyspace.set_expiry(key, arg, 1)
            keyspace.expire_due(arg)
        elif op == "purge":
            keyspace.purge_tombstones(arg)
        keyspace.key_hash(key)
        for held, entry in keyspace.items():
            assert keyspace.key_hash(held) == entry_hash(held, entry)
        if keyspace.entry(key) is None:
            assert keyspace.key_hash(key) == 0


@settings(max_examples=50)
@given(st.lists(st.tuples(keys, entries()), min_size=1, max_size=8))
def test_merge_never_loses_data_of_the_winning_epoch(deltas: list[tuple[bytes, Entry]]) -> None:
    keyspace = Keyspace(2)
    for key, delta in deltas:
        keyspace.merge(key, delta)
    for key in {key for key, _ in deltas}:
        state = keyspace.entry(key)
        assert state is not None
        same_rank = [d for k, d in deltas if k == key and not state.outranks(d)]
        assert joined(*same_rank) == state


@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 16383), st.integers(1, 60)), max_size=400),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_bulk_pair_writes_equal_the_general_write_path(
    batches: list[list[tuple[int, int]]], start_dense: bool
) -> None:
    """write_pairs (unsorted, duplicated pairs; no sort into a dense slice) == write."""
    import numpy as np

    from tests.support.lattice_strategies import HLL

    bulk, general = Keyspace(4), Keyspace(4)
    if start_dense:
        seed = MaxVector.from_pairs(np.arange(0, 16384, 2), np.ones(8192, dtype=np.uint8))
        for keyspace in (bulk, general):
            keyspace.write(b"k", HLL, {"": seed}, now_ms=1)
    for batch in batches:
        indices = np.array([i for i, _ in batch], dtype=np.uint32)
        values = np.array([v for _, v in batch], dtype=np.uint8)
        got = bulk.write_pairs(b"k", HLL, "", indices, values, now_ms=1)
        want = general.write(b"k", HLL, {"": MaxVector.from_pairs(indices, values)}, now_ms=1)
        assert (got.delta is None) == (want.delta is None)
        if got.delta is not None and want.delta is not None:
            assert got.delta.vector == want.delta.vector
    assert bulk.entry(b"k") == general.entry(b"k")
    assert bulk.bucket_hashes().tolist() == general.bucket_hashes().tolist()


@settings(max_examples=80)
@given(
    st.sampled_from([4, 8, 14]),
    st.booleans(),
    st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 1 << 14), st.one_of(st.integers(1, 100), st.integers(1, 1 << 40))
            ),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=80,
    ),
)
def test_few_pair_list_writes_equal_the_general_write_path(
    precision: int, additive: bool, batches: list[list[tuple[int, int]]]
) -> None:
    """write_pairs of a few pairs as lists (a client write: merged in C into the slice's
    packed bytes or dense array, what rose kept as bytes and hashed from them) == write,
    batch by batch, while the key grows from sparse to dense (six-bit slots, or bytes once a
    value passes 63, or wider): the same state, deltas and kept hashes. Both a shared slice
    (an HLL) and per-origin slices of an additive schema (a counter's, a count-min's)."""
    from hearsay.lattice.entry import Schema

    if additive:
        schema = Schema("vector", (), 1 << precision, True).intern()
        origins = ("n1", "n2")
    else:
        schema = Schema("hll", (precision,), 1 << precision).intern()
        origins = ("",)
    bulk, general = Keyspace(4), Keyspace(4)
    for number, batch in enumerate(batches):
        origin = origins[number % len(origins)]
        indices = [i % schema.size for i, _ in batch]
        values = [v for _, v in batch]
        got = bulk.write_pairs(b"k", schema, origin, indices, values, now_ms=1)
        pairs = MaxVector.from_pairs(
            np.array(indices, dtype=np.uint32), np.array(values, dtype=np.uint64)
        )
        want = general.write(b"k", schema, {origin: pairs}, now_ms=1)
        assert got.delta == want.delta
        assert bulk.entry(b"k") == general.entry(b"k")
        assert (
            bulk.key_hash(b"k") == general.key_hash(b"k") == entry_hash(b"k", general.entry(b"k"))
        )


@given(vectors(), st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 255)), max_size=8))
def test_few_pair_merges_equal_the_general_path(
    start: MaxVector, pairs: list[tuple[int, int]]
) -> None:
    """The pure-Python paths for a handful of pairs (sparse and dense) agree with numpy's."""
    import numpy as np

    indices = np.array([i for i, _ in pairs], dtype=np.uint32)
    values = np.array([v for _, v in pairs], dtype=np.uint8)
    fast, general = start.copy(), start.copy()
    fast_delta, fast_before = fast.merge_pairs_tracking(indices, values)
    want_delta, want_before = general.merge_tracking(*normalize_pairs(indices, values))
    assert fast == general
    assert fast_delta == want_delta
    assert fast_before == want_before
    as_lists = start.copy()
    list_delta, list_before = as_lists.merge_pairs_tracking(indices.tolist(), values.tolist())
    assert (as_lists, list_delta, list_before) == (general, want_delta, want_before)


# -- dense fast paths (a whole big entry decoded, encoded and merged without index arrays) --------

_WIDTH_DTYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@st.composite
def dense_runs(draw: st.DrawFn) -> tuple[npt.NDArray[np.unsignedinteger], int]:
    """A run of values as the codec decodes it: any width, mostly non-zero or mostly zero."""
    width = draw(st.sampled_from([1, 2, 4, 8]))
    size = draw(st.integers(1, 5000))
    fill = draw(st.sampled_from([0.0, 0.01, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    top = draw(st.sampled_from([1, 60, 255, 2**16 - 1, 2**31, 2**63 - 1]))
    top = min(top, int(np.iinfo(_WIDTH_DTYPES[width]).max))
    values = np.where(rng.random(size) < fill, rng.integers(1, top, size, endpoint=True), 0)
    offset = draw(st.sampled_from([0, 1, 1023, 70_000, 2**24 - 1, 2**32 - size]))
    return values.astype(_WIDTH_DTYPES[width]), offset


@given(dense_runs())
def test_from_dense_builds_what_from_pairs_builds(run: tuple[npt.NDArray[Any], int]) -> None:
    values, offset = run
    nonzero = np.flatnonzero(values)
    expected = MaxVector.from_pairs(nonzero.astype(np.uint64) + offset, values[nonzero])
    got = MaxVector.from_dense(values, offset)
    assert as_dict(got) == as_dict(expected)
    assert (got.is_dense, got.width) == (expected.is_dense, expected.width)
    assert MaxVector.from_dense(values.copy(), offset, owned=True) == expected


def _reference_slice_to_wire(origin: str, vector: MaxVector) -> list[Any]:
    """The codec's choice made from the pairs (what it did before its dense fast path)."""
    indices, values = vector.pairs()
    width = vector.width
    first, last = int(indices[0]), int(indices[-1])
    if width == 1 and set(values.tolist()) == {1} and last // 8 - first // 8 < 5 * indices.size - 1:
        bits = np.zeros(last // 8 - first // 8 + 1, dtype=np.uint8)
        for index in indices.tolist():  # (values all 1, and a bit run the smallest form)
            bits[index // 8 - first // 8] |= 1 << (index % 8)
        return [origin, 0, first - first % 8, bits.tobytes()]
    span = int(indices[-1]) - int(indices[0]) + 1
    if span * width < indices.size * (4 + width):
        run = np.zeros(span, dtype=_WIDTH_DTYPES[width])
        run[indices - int(indices[0])] = values
        return [origin, width, int(indices[0]), run.tobytes()]
    return [origin, width, indices.astype("<u4").tobytes(), values.tobytes()]


@given(vectors())
def test_encoding_a_dense_vector_is_canonical(vector: MaxVector) -> None:
    """Equal entries encode to equal bytes whichever form the vector has in memory."""
    entry = Entry(0, RAW, (0, 0), {"": vector})
    if vector.is_empty():
        return
    wire = entry_to_wire(entry)
    assert wire[4] == [_reference_slice_to_wire("", vector)]
    assert decode_entry(encode_entry(entry)) == entry


@given(dense_runs(), dense_runs())
def test_dense_into_dense_merge_equals_the_pairwise_merge(
    a: tuple[npt.NDArray[Any], int], b: tuple[npt.NDArray[Any], int]
) -> None:
    mine = MaxVector.from_dense(a[0])
    theirs = MaxVector.from_dense(b[0])
    reference = MaxVector.from_items(mine.items())
    expected_delta, expected_previous = reference.merge_tracking(*theirs.pairs())
    delta, previous = mine.merge_vector_tracking(theirs)
    assert as_dict(mine) == as_dict(reference)
    assert as_dict(delta) == as_dict(expected_delta)
    assert as_dict(previous) == as_dict(expected_previous)


_READ_INDEX = st.one_of(
    st.integers(0, 40),
    st.integers(0, 2**32 - 1),
    st.integers(-(2**40), 2**40),
)


@given(
    vectors(),
    st.lists(_READ_INDEX, max_size=80),
    st.sampled_from(["int64", "uint64", "uint32", "list"]),
    _READ_INDEX,
    _READ_INDEX,
)
def test_reads_of_a_vector_equal_reads_of_its_pairs(
    v: MaxVector, wanted: list[int], dtype: str, low: int, high: int
) -> None:
    """values_at / get / window (few look-ups against the pairs search the packed bytes in C,
    many take numpy's search) give exactly what a dict of the vector's pairs gives, for any
    index at all."""
    held = dict(v.items())
    if dtype == "uint32":
        wanted = [i for i in wanted if 0 <= i < 2**32]
    elif dtype == "uint64":
        wanted = [i for i in wanted if i >= 0]
    query: Any = wanted if dtype == "list" else np.array(wanted, dtype=dtype)
    if dtype == "list":
        query = np.array(wanted, dtype=np.int64)
    for in_c in (False, True):  # both read paths: binary searches in C, numpy's search
        with (
            patch.object(vector_module, "_C_LOOKUPS", 2**40 if in_c else 0),
            patch.object(vector_module, "_PAIRS_PER_C_LOOKUP", 0 if in_c else 2**40),
            patch.object(vector_module, "_PENDING_READ_SHARE", 0 if in_c else 2**40),
        ):
            assert v.values_at(query).tolist() == [held.get(i, 0) for i in wanted]
    for index in wanted[:5]:
        assert v.get(index) == held.get(index, 0)
    assert v.window(low, high).items() == [
        (i, x) for i, x in sorted(held.items()) if low <= i < high
    ]


@given(
    vectors(),
    st.lists(
        st.tuples(
            st.integers(0, 5000),
            st.one_of(st.integers(1, 300), st.integers(1, 2**64 - 1), st.just(2**63)),
        ),
        max_size=8,
    ),
)
def test_few_uint64_pairs_merge_as_the_general_path(
    start: MaxVector, pairs: list[tuple[int, int]]
) -> None:
    """uint64 values (a count-min's running totals) take the packed-bytes path too: same
    vector, delta and previous values as numpy's, and the same refusal above 2**63-1."""
    indices = np.array([i for i, _ in pairs], dtype=np.uint32)
    values = np.array([v for _, v in pairs], dtype=np.uint64)
    fast, general = start.copy(), start.copy()
    try:
        want = general.merge_tracking(*normalize_pairs(indices, values))
    except BoundsError:
        with pytest.raises(BoundsError):
            fast.merge_pairs_tracking(indices, values)
        return
    assert fast.merge_pairs_tracking(indices, values) == want
    assert fast == general
