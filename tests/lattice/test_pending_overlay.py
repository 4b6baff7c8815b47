"""A large sparse vector takes few-pair writes into an overlay: every read sees them.

A client write to a big sparse key (a 1M-capacity Bloom filter filling up, a cuckoo filter)
puts its few pairs in an overlay instead of copying the key's packed bytes, and the overlay is
folded in once it has grown. Every way of reading a vector must give what a vector built from
the same pairs gives, before and after the fold, and each write must report exactly the pairs
that grew and what they held before (the content digest and gossip depend on both).
"""

from __future__ import annotations

import bisect
import random

import numpy as np
import pytest

from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import SHARED_ORIGIN, Entry
from hearsay.lattice.vector import _COPY_BYTES_FIXED, INDEX_DTYPE, VALUE_DTYPES, MaxVector
from tests.support.lattice_strategies import RAW

_BIG_PAIRS = 24_000  # 1 + 24,000 x 5 bytes: past the size from which writes go to the overlay
_SPAN = 1 << 22  # indices spread far enough that the vector stays sparse


def _reference_vector(reference: dict[int, int]) -> MaxVector:
    order = sorted(reference)
    top = max(reference.values())
    dtype = VALUE_DTYPES[1 if top < 256 else 2 if top < 65536 else 8]
    return MaxVector.from_pairs(
        np.array(order, dtype=INDEX_DTYPE), np.array([reference[i] for i in order], dtype=dtype)
    )


class _Reference(dict[int, int]):
    """The model's pairs, with their indices kept sorted as they come: writes and reads pick
    held indices from them (sorting 24,000 indices at every write was nine tenths of this
    file's time)."""

    def __init__(self, pairs: dict[int, int]) -> None:
        super().__init__(pairs)
        self.held = sorted(pairs)

    def __setitem__(self, index: int, value: int) -> None:
        if index not in self:
            bisect.insort(self.held, index)
        super().__setitem__(index, value)

    def update(self, other: dict[int, int]) -> None:  # type: ignore[override]
        for index, value in other.items():
            self[index] = value


def _big(rng: random.Random, pairs: int = _BIG_PAIRS) -> tuple[MaxVector, _Reference]:
    reference = _Reference({rng.randrange(_SPAN): rng.randint(1, 3) for _ in range(pairs)})
    return _reference_vector(reference), reference


def _write(rng: random.Random, reference: _Reference) -> tuple[list[int], list[int]]:
    """A client write's few pairs: new indices, held ones (higher or not), now and then wide."""
    count = rng.randint(1, 12)
    held = reference.held
    indices = [
        rng.choice(held) if held and rng.random() < 0.4 else rng.randrange(_SPAN)
        for _ in range(count)
    ]
    top = rng.choice([3, 3, 3, 200, 70_000])
    return indices, [rng.randint(1, top) for _ in indices]


def _check_grew(
    delta: MaxVector,
    previous: MaxVector,
    reference: dict[int, int],
    indices: list[int],
    values: list[int],
) -> None:
    """A write reported exactly the pairs that rose and what they held; ``reference`` takes
    them."""
    expected_delta: dict[int, int] = {}
    expected_previous: dict[int, int] = {}
    for index, value in zip(indices, values, strict=True):
        held = max(reference.get(index, 0), expected_delta.get(index, 0))
        if value > held:
            expected_delta[index] = value
            if reference.get(index, 0):
                expected_previous[index] = reference[index]
    assert dict(delta.items()) == expected_delta
    assert dict(previous.items()) == expected_previous
    reference.update(expected_delta)


def _check_reads(vector: MaxVector, reference: _Reference, rng: random.Random) -> None:
    assert len(vector) == len(reference)
    assert not vector.is_empty()
    assert vector.top_index() == max(reference)
    assert reference.held == sorted(reference)
    probe = [rng.choice(reference.held) for _ in range(5)] + [rng.randrange(_SPAN)]
    for index in probe:
        assert vector.get(index) == reference.get(index, 0)
    few = vector.values_at(np.array(probe, dtype=np.int64)).tolist()
    assert few == [reference.get(i, 0) for i in probe]
    low = rng.randrange(_SPAN)
    high = low + rng.choice([8, 512, 1 << 16])
    in_window = {i: v for i, v in reference.items() if low <= i < high}
    assert dict(vector.window(low, high).items()) == in_window
    assert vector.width >= _reference_vector(reference).width


@pytest.mark.parametrize("seed", range(6))
def test_writes_to_a_big_sparse_vector_read_back_everywhere(seed: int) -> None:
    rng = random.Random(seed)
    vector, reference = _big(rng)
    assert len(vector.packed_pairs() or b"") > _COPY_BYTES_FIXED  # (the overlay's threshold)
    overlay_seen = False
    for step in range(1500):
        indices, values = _write(rng, reference)
        as_array = rng.random() < 0.3 and len(indices) <= 8 and max(values) < 256
        if as_array:
            delta, previous = vector.merge_pairs_tracking(
                np.array(indices, dtype=INDEX_DTYPE), np.array(values, dtype=np.uint8)
            )
        else:
            delta, previous = vector.merge_pairs_tracking(indices, values)
        overlay_seen |= vector.holds_pending
        _check_grew(delta, previous, reference, indices, values)
        if step % 97 == 0:
            _check_reads(vector, reference, rng)
    assert overlay_seen, "no write went to the overlay: the test no longer covers it"
    _check_reads(vector, reference, rng)
    twin = vector.copy()
    assert twin == _reference_vector(reference) == vector
    assert dict(vector.items()) == reference
    assert not vector.holds_pending  # (items folded it)


def test_the_overlay_is_bounded_and_folds_on_its_own() -> None:
    rng = random.Random(7)
    vector, reference = _big(rng)
    largest = 0
    for _ in range(20_000):
        index = rng.randrange(_SPAN)
        vector.merge_pairs_tracking([index], [5])
        reference[index] = max(reference.get(index, 0), 5)
        view = vector.sparse_view()
        if view is not None and view[1] is not None:
            largest = max(largest, len(view[1]))
    assert 0 < largest <= 4097  # (vector.py: folded past count // 32, within 256..4096)
    assert vector == _reference_vector(reference)


def test_a_copy_does_not_follow_later_writes() -> None:
    rng = random.Random(3)
    vector, reference = _big(rng)
    vector.merge_pairs_tracking([5], [9])  # (one pair a write: 15 KB of bytes is too many)
    vector.merge_pairs_tracking([6], [9])
    assert vector.holds_pending
    twin = vector.copy()
    vector.merge_pairs_tracking([7], [9])
    assert twin.get(7) == reference.get(7, 0)
    assert twin.get(5) == 9
    assert vector.get(7) == 9


def test_an_entry_holding_an_overlay_encodes_and_hashes_what_it_holds() -> None:
    """A shared slice with writes in its overlay stays a vector in the entry (not stale bytes)
    and is written to disk and the wire whole."""
    rng = random.Random(11)
    big, reference = _big(rng)
    entry = Entry(5, RAW, (0, 0), {SHARED_ORIGIN: big})
    for _ in range(50):
        index = rng.randrange(_SPAN)
        result = entry.grow_slice(SHARED_ORIGIN, [index], [4])
        if reference.get(index, 0) < 4:
            assert result.delta is not None
            reference[index] = 4
    assert entry.vector.holds_pending
    assert entry.vector.get(index) == reference[index]
    decoded = decode_entry(encode_entry(entry))
    assert decoded == entry
    assert dict(decoded.vector.items()) == reference
    assert entry.payload_bytes() >= len(decoded.vector.packed_pairs() or b"")


def test_a_fold_that_turns_the_vector_dense_is_read_as_dense() -> None:
    """Ones in a narrow range (a Bloom filter filling up): a fold of the overlay turns the
    vector into bits, and a read that folds (count_in, pairs, packed_pairs, items, to_dense,
    a bulk values_at) must then read the bits, not the old packed form."""
    rng = random.Random(5)
    span = 120_000
    reference = {index: 1 for index in rng.sample(range(span), 2000)}
    readers = [
        lambda v: v.count_in(0, span),
        lambda v: len(v.pairs()[0]),
        lambda v: v.packed_pairs(),
        lambda v: len(v.items()),
        lambda v: int(v.to_dense(span).sum()),
        lambda v: int(v.values_at(np.arange(0, span, 7)).sum()),
    ]
    for reader in readers:
        vector = _reference_vector(reference)
        held = dict(reference)
        turned_dense = False
        for _ in range(40):
            for _ in range(100):  # (fewer than a fold's 256: the reader's fold turns it dense)
                index = rng.randrange(span)
                vector.merge_pairs_tracking([index], [1])
                held[index] = 1
            reader(vector)
            turned_dense |= vector.is_dense
            assert vector.count_in(0, span) == len(held)
            assert dict(vector.items()) == held
        assert turned_dense, "the vector never turned dense: the test no longer covers it"


def test_a_pipelined_run_goes_to_the_overlay_without_copying_the_bytes() -> None:
    """A run of writes (a -P 16 pipeline of BF.ADDs: ~130 pairs, lists or arrays) into a
    sparse vector of more than 8 KB a pair (2 MB here) lands in the overlay; the packed bytes
    are the same object afterwards (each run copied the whole vector before), reads of many
    slots do not fold it, and every run reports exactly what grew."""
    rng = random.Random(23)
    vector, reference = _big(rng, pairs=420_000)
    assert len(vector.packed_pairs() or b"") > 8192 * 200
    packed_before, _ = vector.sparse_view() or (b"", None)
    indices = rng.sample(range(_SPAN), 200)
    delta, previous = vector.merge_pairs_tracking(indices, [2] * len(indices))
    view = vector.sparse_view()
    assert view is not None and view[0] is packed_before and view[1] is not None
    expected = {i: 2 for i in indices if reference.get(i, 0) < 2}
    assert dict(delta.items()) == expected
    assert dict(previous.items()) == {i: reference[i] for i in expected if i in reference}
    reference.update(expected)
    probe = [*indices[:150], *rng.sample(sorted(reference), 100), -1, 1 << 32]
    read = vector.values_at(np.array(probe, dtype=np.int64)).tolist()
    assert read == [reference.get(i, 0) for i in probe]
    assert vector.holds_pending  # (the reads did not fold it)
    for _ in range(60):
        size = rng.randint(65, 200)
        held = reference.held
        run = [rng.choice(held) if rng.random() < 0.3 else rng.randrange(_SPAN)
               for _ in range(size)]  # fmt: skip
        values = [rng.randint(1, 5) for _ in run]
        if rng.random() < 0.5:
            got = vector.merge_pairs_tracking(
                np.array(run, dtype=INDEX_DTYPE), np.array(values, dtype=np.uint8)
            )
        else:
            got = vector.merge_pairs_tracking(run, values)
        wanted: dict[int, int] = {}
        for index, value in zip(run, values, strict=True):
            wanted[index] = max(wanted.get(index, 0), value)
        grew = {i: v for i, v in wanted.items() if v > reference.get(i, 0)}
        assert dict(got[0].items()) == grew
        assert dict(got[1].items()) == {i: reference[i] for i in grew if i in reference}
        reference.update(grew)
    _check_reads(vector, reference, rng)
    assert vector == _reference_vector(reference)


@pytest.mark.parametrize("seed", range(4))
def test_pipelined_runs_into_a_big_sparse_vector_report_exactly_what_grew(seed: int) -> None:
    """A run's many pairs (arrays, unsorted, repeated, some wide) go into the bytes 64 at a
    time in C while they are few bytes a pair (else the overlay), with single writes' overlay
    folded first: the same deltas, previous values and reads as the reference."""
    rng = random.Random(seed)
    vector, reference = _big(rng)
    for step in range(300):
        if step % 3 == 0:  # a single write first: it may leave an overlay for the run to fold
            indices, values = _write(rng, reference)
        else:
            count = rng.choice([9, 64, 65, 130, 300])
            held = reference.held
            indices = [
                rng.choice(held) if rng.random() < 0.5 else rng.randrange(_SPAN)
                for _ in range(count)
            ]
            values = [rng.randint(1, rng.choice([3, 3, 250, 70_000])) for _ in indices]
        as_arrays = step % 3 != 0
        dtype = np.uint32 if max(values) >= 256 else np.uint8
        delta, previous = (
            vector.merge_pairs_tracking(
                np.array(indices, dtype=INDEX_DTYPE), np.array(values, dtype=dtype)
            )
            if as_arrays
            else vector.merge_pairs_tracking(indices, values)
        )
        _check_grew(delta, previous, reference, indices, values)
        for pairs in (delta, previous):
            assert bool(np.all(np.diff(pairs.pairs()[0].astype(np.int64)) > 0))
        if step % 29 == 0:
            _check_reads(vector, reference, rng)
    assert vector == _reference_vector(reference)


def test_reads_past_the_index_space_are_absent_whatever_the_dtype() -> None:
    """Unsigned look-ups are read in C without a range check per index: one past 2**32 - 1
    (or at 2**64 - 1) is absent, as a negative signed one is."""
    rng = random.Random(5)
    vector, reference = _big(rng)
    held = sorted(reference)[:3]
    unsigned = np.array([*held, 1 << 32, (1 << 64) - 1, (1 << 32) + held[0]], dtype=np.uint64)
    assert vector.values_at(unsigned).tolist() == [reference[i] for i in held] + [0, 0, 0]
    signed = np.array([*held, -1, -(1 << 40)], dtype=np.int64)
    assert vector.values_at(signed).tolist() == [reference[i] for i in held] + [0, 0]


@pytest.mark.parametrize("seed", range(3))
def test_a_client_writes_few_pairs_into_a_large_sparse_vector_in_c(seed: int) -> None:
    """The keyspace's short path (:meth:`MaxVector.grow_few_packed`) copies a write's bytes in
    C up to 96 KB or 8 KB a pair of it, puts up to 8 pairs into a bigger one's overlay and
    leaves more to the general merge: what it reports and holds is what the general merge of
    the same pairs reports and holds."""
    rng = random.Random(seed)
    vector, reference = _big(rng)  # (120-150 KB: 30 pairs and more are copied, 12 are not)
    twin = vector.copy()
    taken = {"many": 0, "few": 0}
    overlaid = 0  # (writes of the few phase of at most 8 pairs: the overlay's, on this path)
    for phase, (low, high, writes) in {"many": (30, 60, 300), "few": (2, 12, 100)}.items():
        for _ in range(writes):
            count = rng.randint(low, high)
            held = reference.held
            indices = [rng.choice(held) if rng.random() < 0.4 else rng.randrange(_SPAN)
                       for _ in range(count)]  # fmt: skip
            values = [rng.randint(1, rng.choice([3, 3, 200])) for _ in indices]
            overlaid += phase == "few" and count <= 8
            raised = vector.grow_few_packed(indices, values)
            delta, previous = twin.merge_pairs_tracking(indices, values)
            if raised is None:  # (more pairs than the overlay's short path takes)
                vector.merge_pairs_tracking(indices, values)
            else:
                taken[phase] += 1
                grown, before = raised
                assert (MaxVector.of_packed(grown) if grown else MaxVector()) == delta
                assert (MaxVector.of_packed(before) if before else MaxVector()) == previous
            _check_grew(delta, previous, reference, indices, values)
    assert taken == {"many": 300, "few": overlaid}, taken
    assert 20 < overlaid < 100
    assert vector.holds_pending
    raised = vector.grow_few_packed([7], [reference.get(7, 0) + 5])  # (one pair: the overlay)
    assert vector.holds_pending
    assert raised is not None and raised[0] is not None
    assert (
        MaxVector.of_packed(raised[0])
        == twin.merge_pairs_tracking([7], [reference.get(7, 0) + 5])[0]
    )
    reference[7] = reference.get(7, 0) + 5
    assert vector == twin == _reference_vector(reference)
    mid, mid_reference = _big(rng, pairs=10_000)  # (50 KB: under 96 KB, one pair is copied)
    assert _COPY_BYTES_FIXED // 2 < len(mid.packed_pairs() or b"") < _COPY_BYTES_FIXED
    index = rng.randrange(_SPAN)
    raised = mid.grow_few_packed([index], [mid_reference.get(index, 0) + 1])
    assert raised is not None and not mid.holds_pending
    assert mid.get(index) == mid_reference.get(index, 0) + 1
