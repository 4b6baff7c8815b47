"""The flush floor (FLUSHALL): it hides every older entry at once, refuses older deltas, new
keys start at it, the sweep drops the rest in bounded steps, and merges in any order with
floors interleaved converge to the true join above the highest floor."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError
from hearsay.lattice.digest import entry_hash
from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import FLOOR_KEY, Keyspace
from hearsay.lattice.vector import MaxVector
from tests.support.lattice_strategies import COUNTER, HLL, RAW, entries

NOW_MS = 1_000_000


def _vector(index: int = 1, value: int = 5) -> MaxVector:
    return MaxVector.from_items([(index, value)])


def _filled(count: int, buckets: int = 16) -> Keyspace:
    keyspace = Keyspace(buckets)
    for number in range(count):
        keyspace.write(b"k%d" % number, RAW, {"": _vector(number % 7, number + 1)}, NOW_MS)
    return keyspace


def _raise(keyspace: Keyspace, floor_ms: int) -> None:
    assert keyspace.merge(FLOOR_KEY, Entry(floor_ms)).changed


def _sweep_all(keyspace: Keyspace, limit: int = 1000) -> list[bytes]:
    dropped: list[bytes] = []
    for _ in range(100_000):  # bounded: every call drops or moves up to ``limit``
        if not keyspace.sweep_pending:
            return dropped
        dropped += keyspace.sweep_floor(limit)
    raise AssertionError("the sweep did not finish")


def test_the_floor_hides_every_older_entry_at_once() -> None:
    keyspace = _filled(50)
    keyspace.expire_due(NOW_MS)
    keyspace.set_expiry(b"k1", NOW_MS + 10, NOW_MS)
    keyspace.delete(b"k2", NOW_MS)
    _raise(keyspace, NOW_MS + 1)
    assert len(keyspace) == 0
    assert keyspace.expiring_count == 0
    assert keyspace.get(b"k3", NOW_MS) is None
    assert keyspace.entry(b"k3") is None
    assert keyspace.entry(b"k2") is None  # the tombstone too
    assert dict(keyspace.items()) == {FLOOR_KEY: Entry(NOW_MS + 1)}
    assert keyspace.expire_due(NOW_MS + 100) == []  # k1's deadline went with it
    # The reserved key itself reads as absent.
    assert keyspace.get(FLOOR_KEY, NOW_MS) is None
    assert keyspace.floor_ms == NOW_MS + 1
    assert keyspace.sweep_pending == 1


def test_deltas_below_the_floor_are_refused_and_at_it_accepted() -> None:
    keyspace = Keyspace(4)
    _raise(keyspace, 100)
    assert not keyspace.merge(b"old", Entry(99, RAW, (0, 0), {"": _vector()})).changed
    assert not keyspace.merge(b"gone", Entry(99)).changed
    assert keyspace.entry(b"old") is None
    assert keyspace.merge(b"new", Entry(100, RAW, (0, 0), {"": _vector()})).changed
    assert len(keyspace) == 1
    # A lower floor changes nothing; the same floor again neither.
    assert not keyspace.merge(FLOOR_KEY, Entry(50)).changed
    assert not keyspace.merge(FLOOR_KEY, Entry(100)).changed
    assert keyspace.floor_ms == 100


def test_a_key_created_after_the_floor_starts_at_it_on_every_node() -> None:
    first, second = Keyspace(4), Keyspace(4)
    for keyspace in (first, second):
        keyspace.write(b"k", RAW, {"": _vector(1, 1)}, NOW_MS)
        _raise(keyspace, NOW_MS + 5)
    # Both create "k" concurrently after learning the floor: the same epoch, so they join.
    first.write(b"k", COUNTER, {"a": _vector(0, 2)}, NOW_MS + 9)
    second.write(b"k", COUNTER, {"b": _vector(0, 3)}, NOW_MS + 7)
    for keyspace in (first, second):
        entry = keyspace.get(b"k", NOW_MS + 10)
        assert entry is not None and entry.epoch == NOW_MS + 5
    a, b = first.entry(b"k"), second.entry(b"k")
    assert a is not None and b is not None
    first.merge(b"k", b.copy())
    second.merge(b"k", a.copy())
    assert first.entry(b"k") == second.entry(b"k")
    assert sorted(origin for origin, _ in first.get(b"k", NOW_MS + 10).slices()) == ["a", "b"]  # type: ignore[union-attr]


def test_the_sweep_drops_in_bounded_steps_and_survivors_come_back() -> None:
    keyspace = _filled(2000)
    # A key deleted and written again later than the floor (as on a node that had not learned
    # it yet) survives it.
    keyspace.delete(b"k5", NOW_MS + 500)
    keyspace.write(b"k5", HLL, {"": _vector(3, 2)}, NOW_MS + 501)
    _raise(keyspace, NOW_MS + 100)
    steps = 0
    dropped: list[bytes] = []
    while keyspace.sweep_pending:
        step = keyspace.sweep_floor(300)
        assert len(step) <= 300
        dropped += step
        steps += 1
        assert steps < 100
    assert steps >= 2000 // 300
    assert len(dropped) == 1999 and b"k5" not in dropped
    survivor = keyspace.get(b"k5", NOW_MS + 600)
    assert survivor is not None and survivor.schema is HLL
    assert len(keyspace) == 1
    assert keyspace.stored_count == 2  # k5 and the floor
    expected = [0] * keyspace.bucket_count
    for key, entry in keyspace.items():
        expected[keyspace.bucket_of(key)] ^= entry_hash(key, entry)
    assert keyspace.bucket_hashes().tolist() == expected


def test_a_survivor_is_found_before_the_sweep_reaches_it() -> None:
    keyspace = _filled(100)
    keyspace.delete(b"k7", NOW_MS + 500)
    keyspace.write(b"k7", RAW, {"": _vector(3, 9)}, NOW_MS + 501)
    _raise(keyspace, NOW_MS + 100)
    assert len(keyspace) == 0  # (not counted until found)
    entry = keyspace.get(b"k7", NOW_MS + 600)
    assert entry is not None and entry.slice("").get(3) == 9
    assert len(keyspace) == 1
    assert [key for key, e in keyspace.items() if e.schema is not None] == [b"k7"]
    # A second, higher floor while the first sweep is pending condemns it as well.
    keyspace.write(b"fresh", RAW, {"": _vector()}, NOW_MS + 700)
    _raise(keyspace, NOW_MS + 1000)
    assert keyspace.sweep_pending == 2
    assert keyspace.get(b"k7", NOW_MS + 1001) is None
    assert keyspace.get(b"fresh", NOW_MS + 1001) is None
    dropped = _sweep_all(keyspace, 7)
    assert set(dropped) >= {b"k7", b"fresh", FLOOR_KEY}
    assert dict(keyspace.items()) == {FLOOR_KEY: Entry(NOW_MS + 1000)}


def test_clients_cannot_write_the_reserved_key_nor_peers_give_it_a_schema() -> None:
    keyspace = Keyspace(4)
    with pytest.raises(BoundsError, match="reserved"):
        keyspace.write(FLOOR_KEY, RAW, {"": _vector()}, NOW_MS)
    with pytest.raises(BoundsError, match="reserved"):
        keyspace.write_pairs(FLOOR_KEY, RAW, "", [1], [1], now_ms=NOW_MS)
    _raise(keyspace, 10)
    assert not keyspace.merge(FLOOR_KEY, Entry(10, RAW, (0, 0), {"": _vector()})).changed
    assert not keyspace.merge(FLOOR_KEY, Entry(11, RAW, (0, 0), {"": _vector()})).changed
    assert not keyspace.delete(FLOOR_KEY, NOW_MS).changed  # DEL of it: a no-op
    assert not keyspace.set_expiry(FLOOR_KEY, NOW_MS + 5, NOW_MS).changed
    assert keyspace.floor_ms == 10


def test_the_floor_outlives_the_tombstone_grace() -> None:
    keyspace = Keyspace(4)
    _raise(keyspace, 10)
    assert keyspace.purge_tombstones(NOW_MS) == []
    assert keyspace.entry(FLOOR_KEY) == Entry(10)
    # A node that joins long after the flush still learns it (older than its purge point).
    late = Keyspace(4)
    late.purge_tombstones(NOW_MS)
    late.merge(b"k", Entry(5, RAW, (0, 0), {"": _vector()}))
    assert late.merge(FLOOR_KEY, Entry(10)).changed
    assert late.get(b"k", NOW_MS) is None


# -- convergence ----------------------------------------------------------------------------------

keys = st.sampled_from([b"a", b"b", b"c", b"\x00\xff"])
floors = st.integers(1, 4).map(lambda epoch: (FLOOR_KEY, Entry(epoch)))
deltas = st.lists(st.one_of(st.tuples(keys, entries()), floors), max_size=14)


def _visible(keyspace: Keyspace) -> dict[bytes, Entry]:
    _sweep_all(keyspace, 2)
    return dict(keyspace.items())


@pytest.mark.property
@settings(max_examples=200)
@given(deltas, st.randoms(use_true_random=False))
def test_merges_with_floors_in_any_order_converge_to_the_join_above_the_floor(
    changes: list[tuple[bytes, Entry]], rnd: random.Random
) -> None:
    first, second = Keyspace(4), Keyspace(4)
    for key, delta in changes:
        first.merge(key, delta.copy())
    shuffled = changes * 2  # duplicated delivery too
    rnd.shuffle(shuffled)
    for key, delta in shuffled:
        second.merge(key, delta.copy())
        if rnd.random() < 0.3:
            second.sweep_floor(rnd.randint(1, 3))
        if rnd.random() < 0.2:  # look-ups while condemned entries wait
            second.get(rnd.choice([b"a", b"b", b"c"]), 0)
    # Reads agree before either swept everything.
    for key in (b"a", b"b", b"c", b"\x00\xff"):
        assert first.get(key, 0) == second.get(key, 0)
    # The true join, then everything below the highest floor removed.
    floor = max((delta.epoch for key, delta in changes if key == FLOOR_KEY), default=0)
    joined: dict[bytes, Entry] = {}
    for key, delta in changes:
        if key == FLOOR_KEY:
            continue
        if key in joined:
            joined[key].merge(delta)
        else:
            joined[key] = delta.copy()
    expected = {key: entry for key, entry in joined.items() if entry.epoch >= floor}
    if floor:
        expected[FLOOR_KEY] = Entry(floor)
    assert _visible(first) == expected
    assert _visible(second) == expected
    assert first.bucket_hashes().tolist() == second.bucket_hashes().tolist()
    assert len(first) == len(second) == sum(e.schema is not None for e in expected.values())
