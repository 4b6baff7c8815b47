"""Unit tests of the lattice: vectors, entries, the keyspace's local write rules, the codec."""

from __future__ import annotations

import contextlib

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError, DecodeError, WrongTypeError
from hearsay.lattice.codec import decode_entry, encode_entry, entry_to_wire
from hearsay.lattice.digest import pairs_hash
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import VALUE_MAX, MaxVector
from tests.support.lattice_strategies import COUNTER, HLL, RAW, entries

# -- vectors --------------------------------------------------------------------------------------


def test_vignette_example_merge() -> None:
    """The seed's own example: {0:5, 1:10, 5:3} max {0:3, 1:11} = {0:5, 1:11, 5:3}."""
    stored = MaxVector.from_items([(0, 5), (1, 10), (5, 3)])
    delta = stored.merge(MaxVector.from_items([(0, 3), (1, 11)]))
    assert stored.items() == [(0, 5), (1, 11), (5, 3)]
    assert delta.items() == [(1, 11)]


def test_bounds_are_checked() -> None:
    with pytest.raises(BoundsError):
        MaxVector.from_items([(2**32, 1)])
    with pytest.raises(BoundsError):
        MaxVector.from_items([(-1, 1)])
    with pytest.raises(BoundsError):
        MaxVector.from_items([(0, VALUE_MAX + 1)])
    with pytest.raises(BoundsError):
        MaxVector.from_items([(0, -5)])
    assert MaxVector.from_items([(2**32 - 1, VALUE_MAX)]).items() == [(2**32 - 1, VALUE_MAX)]


def test_zero_values_are_absent() -> None:
    vector = MaxVector.from_items([(3, 0), (4, 1)])
    assert vector.items() == [(4, 1)]
    assert vector.get(3) == 0 and vector.get(99) == 0


def test_switches_to_dense_when_that_is_smaller_and_widens_values() -> None:
    vector = MaxVector.from_pairs(np.arange(10), np.full(10, 3))
    assert not vector.is_dense  # 10 pairs: a numpy header costs more than packing them
    vector = MaxVector.from_pairs(np.arange(0, 16384, 2), np.full(8192, 3))
    assert vector.is_dense and vector.width == 1
    assert vector.nbytes() <= 16384
    vector.merge(MaxVector.from_items([(1, 70000)]))
    assert vector.width == 4 and vector.get(1) == 70000 and vector.get(2) == 3
    # A far index does not blow the dense array up: the vector goes back to sparse pairs.
    vector.merge(MaxVector.from_items([(2**31, 1)]))
    assert not vector.is_dense and vector.get(2**31) == 1 and len(vector) == 8194


def test_small_vectors_are_compact() -> None:
    vector = MaxVector.from_pairs(np.array([5, 900, 4000, 12000]), np.array([1, 2, 3, 4]))
    assert vector.nbytes() == 1 + 4 * 4 + 4  # width byte, uint32 indices, uint8 values


# -- entries and the keyspace ---------------------------------------------------------------------


def test_wrong_type_write_is_refused_not_overwritten() -> None:
    keyspace = Keyspace(4)
    keyspace.write(b"k", HLL, {"": MaxVector.from_items([(1, 2)])}, now_ms=10)
    with pytest.raises(WrongTypeError):
        keyspace.write(b"k", RAW, {"": MaxVector.from_items([(1, 9)])}, now_ms=11)
    entry = keyspace.get(b"k", now_ms=12)
    assert entry is not None and entry.schema == HLL and entry.vector.items() == [(1, 2)]


def test_concurrent_creation_with_different_schemas_converges_and_is_reported() -> None:
    a, b = (
        Entry(0, HLL, slices={"": MaxVector.from_items([(1, 2)])}),
        Entry(0, RAW, slices={"": MaxVector.from_items([(7, 7)])}),
    )
    left, right = a.copy(), b.copy()
    result_left, result_right = left.merge(b), right.merge(a)
    assert left == right
    assert result_left.conflict or result_right.conflict


def test_counter_slices_sum_concurrent_increments() -> None:
    """Two origins raising their own slice never lose each other's increments."""
    one, two = Keyspace(4), Keyspace(4)
    d1 = one.write(b"c", COUNTER, {"node-a": MaxVector.from_items([(0, 5)])}, now_ms=1).delta
    d2 = two.write(b"c", COUNTER, {"node-b": MaxVector.from_items([(0, 7)])}, now_ms=1).delta
    assert d1 is not None and d2 is not None
    one.merge(b"c", d2)
    two.merge(b"c", d1)
    two.merge(b"c", d1)  # re-delivery is harmless
    for keyspace in (one, two):
        entry = keyspace.get(b"c", now_ms=2)
        assert entry is not None
        assert sum(vector.get(0) for _, vector in entry.slices()) == 12


def test_delete_moves_to_a_higher_epoch_and_old_writes_stay_dead() -> None:
    keyspace = Keyspace(4)
    created = keyspace.write(b"k", RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=100).delta
    assert created is not None
    deleted = keyspace.delete(b"k", now_ms=5000)
    assert deleted.delta is not None and deleted.delta.epoch == 5000
    assert keyspace.get(b"k", now_ms=5001) is None and len(keyspace) == 0
    assert not keyspace.merge(b"k", created).changed
    assert keyspace.get(b"k", now_ms=5002) is None
    # A new write after the delete lives in the new epoch.
    again = keyspace.write(b"k", HLL, {"": MaxVector.from_items([(3, 3)])}, now_ms=6000)
    assert again.delta is not None and again.delta.epoch == 5000
    assert not keyspace.delete(b"missing", now_ms=1).changed


def test_expiry_converges_to_the_same_tombstone_everywhere() -> None:
    replicas = [Keyspace(4), Keyspace(4)]
    write = replicas[0].write(b"k", RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=1000)
    expire = replicas[0].set_expiry(b"k", deadline_ms=2000, now_ms=1500)
    assert write.delta is not None and expire.delta is not None
    replicas[1].merge(b"k", write.delta)
    replicas[1].merge(b"k", expire.delta)
    assert replicas[1].get(b"k", now_ms=1999) is not None
    assert replicas[1].get(b"k", now_ms=2000) is None  # reads honour the deadline at once
    swept = [replica.expire_due(now_ms=2500) for replica in replicas]
    assert [len(s) for s in swept] == [1, 1]
    assert replicas[0].entry(b"k") == replicas[1].entry(b"k")
    tombstone = replicas[0].entry(b"k")
    assert tombstone is not None and tombstone.is_tombstone() and tombstone.epoch == 2000
    assert replicas[0].bucket_hashes().tolist() == replicas[1].bucket_hashes().tolist()


def test_a_write_after_del_survives_the_old_deadline_on_a_replica_that_missed_the_del() -> None:
    """A node whose clock lags deletes a key before its deadline and writes it again; a node
    that has not heard of the DEL yet expires the old entry at the deadline. The write after
    the DEL must win on both (it lost everywhere when the DEL's epoch was below the deadline)."""
    lagging, ahead = Keyspace(4), Keyspace(4)
    write = lagging.write(b"k", RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=1000)
    expire = lagging.set_expiry(b"k", deadline_ms=9000, now_ms=1000)
    assert write.delta is not None and expire.delta is not None
    ahead.merge(b"k", write.delta)
    ahead.merge(b"k", expire.delta)
    deleted = lagging.delete(b"k", now_ms=6500)  # 2.5 s before the deadline by its clock
    again = lagging.write(b"k", RAW, {"": MaxVector.from_items([(1, 7)])}, now_ms=6600)
    assert deleted.delta is not None and again.delta is not None
    assert [len(ahead.expire_due(now_ms=9000))] == [1]  # the DEL has not reached it
    tombstone = ahead.entry(b"k")
    assert tombstone is not None
    lagging.merge(b"k", tombstone)
    ahead.merge(b"k", deleted.delta)
    ahead.merge(b"k", again.delta)
    for replica in (lagging, ahead):
        entry = replica.get(b"k", now_ms=9100)
        assert entry is not None and entry.vector.get(1) == 7
    assert lagging.entry(b"k") == ahead.entry(b"k")


def test_latest_expire_or_persist_wins_on_every_replica() -> None:
    keyspace = Keyspace(4)
    keyspace.write(b"k", RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=1000)
    first = keyspace.set_expiry(b"k", deadline_ms=9000, now_ms=1000).delta
    persist = keyspace.set_expiry(b"k", deadline_ms=0, now_ms=1000).delta
    assert first is not None and persist is not None
    other = Keyspace(4)
    other.merge(b"k", persist)
    other.merge(b"k", first)  # arrives late: must not bring the deadline back
    entry = other.entry(b"k")
    assert entry is not None and entry.deadline_ms == 0
    assert keyspace.set_expiry(b"k", deadline_ms=500, now_ms=1000).delta is not None
    assert keyspace.get(b"k", now_ms=1001) is None  # a past deadline deletes, as in Redis


# -- codec ----------------------------------------------------------------------------------------


def test_encoding_is_canonical_across_representations() -> None:
    sparse_built = MaxVector()
    for i in range(0, 16384, 2):
        sparse_built.merge(MaxVector.from_items([(i, 3)]))
    bulk_built = MaxVector.from_pairs(np.arange(0, 16384, 2), np.full(8192, 3, dtype=np.uint64))
    a = Entry(0, HLL, slices={"": sparse_built})
    b = Entry(0, HLL, slices={"": bulk_built})
    assert encode_entry(a) == encode_entry(b)


def test_dense_hll_encodes_near_its_raw_size() -> None:
    registers = MaxVector.from_pairs(np.arange(16384), np.full(16384, 5))
    assert len(encode_entry(Entry(0, HLL, slices={"": registers}))) < 16384 + 64


@pytest.mark.parametrize(
    "wire",
    [
        None,
        [],
        [2, 0, None, [0, 0], []],  # unknown format version
        [1, -1, None, [0, 0], []],  # negative epoch
        [1, 0, None, [0, 0], [["", 1, b"\0\0\0\0", b"\1"]]],  # data without a schema
        [1, 0, ["hll", [14], 16384, False], [0, 0], [["", 1, b"\xff\xff\0\0", b"\1"]]],  # index
        [1, 0, ["hll", [14], 16384, False], [0, 0], [["", 1, b"\0\0\0\0", b"\1\1"]]],  # counts
        [1, 0, ["hll", [14], 16384, False], [0, 0], [["", 3, b"\0\0\0\0", b"\1\1\1"]]],  # width
        [1, 0, ["hll", [14], 16384, False], [0, 0], [["", 1, 16380, b"\1" * 10]]],  # run past end
        [1, 0, ["hll", [14], 16384, False], [0, 0], [["x", 1, 0, b"\1"]]],  # origin on shared
        [1, 0, ["counter", [], 2, True], [0, 0], [["", 1, 0, b"\1"]]],  # shared on additive
        [1, 0, ["vector", [], 2**32, False], [0, 0], [["", 8, 0, b"\xff" * 8]]],  # value > int64
        [1, 0, ["vector", [], 0, False], [0, 0], []],  # zero size
        [1, 0, ["", [], 5, False], [0, 0], []],  # empty kind
        [1, 0, None, [0], []],  # expiry shape
        [1, 0, None, [0, 0], "x"],
    ],
)
def test_malformed_entries_raise_decode_error(wire: object) -> None:
    with pytest.raises(DecodeError):
        decode_entry(msgpack.packb(wire, use_bin_type=True))


@pytest.mark.parametrize(
    "schema",
    [
        ["hll", [14.0], 16384, False],  # equal to a schema decoded before, as a float
        ["hll", [True], 16384, False],  # ... as a bool
        ["hll", [14], 16384.0, False],
        ["hll", [14], 16384, 0],
        ["hll", [[14]], 16384, False],  # unhashable
    ],
)
def test_a_schema_seen_before_is_refused_in_another_type(schema: object) -> None:
    """Decoded schemas are remembered by their fields: one equal to a remembered one but
    not of its exact types (1.0 and True equal 1 and hash alike) is still refused."""
    good = [1, 0, ["hll", [14], 16384, False], [0, 0], []]
    decode_entry(msgpack.packb(good, use_bin_type=True))
    decode_entry(msgpack.packb([1, 0, ["hll", [1], 16384, False], [0, 0], []], use_bin_type=True))
    with pytest.raises(DecodeError):
        decode_entry(msgpack.packb([1, 0, schema, [0, 0], []], use_bin_type=True))


def test_huge_declared_lengths_are_refused_before_allocating() -> None:
    # A bin header claiming 4 GiB inside a 10-byte message.
    with pytest.raises(DecodeError):
        decode_entry(b"\x95\x01\x00\xc0\x92\x00\x00\x91\xc6\xff\xff\xff\xff")
    with pytest.raises(DecodeError):
        decode_entry(b"\xdd\xff\xff\xff\xff")  # array of 4 billion elements
    with pytest.raises(DecodeError):
        decode_entry(b"\x00" * 100, bytes_max=50)


@given(st.binary(max_size=200))
def test_garbage_only_ever_raises_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_entry(data)


@given(entries(), st.data())
def test_mutated_encodings_decode_or_raise_decode_error(entry: Entry, data: st.DataObject) -> None:
    encoded = bytearray(encode_entry(entry))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_entry(bytes(encoded))
    except DecodeError:
        return
    assert decode_entry(encode_entry(decoded)) == decoded


def test_wire_form_is_plain_msgpack_values() -> None:
    wire = entry_to_wire(Entry(3, Schema("vector").intern(), (1, 2)))
    assert msgpack.unpackb(msgpack.packb(wire), use_list=True) == wire


def test_few_pairs_as_python_lists_are_checked_too() -> None:
    for indices, values in (([2**32], [1]), ([-1], [1]), ([0], [VALUE_MAX + 1]), ([0], [-3])):
        with pytest.raises(BoundsError):
            MaxVector().merge_pairs(indices, values)
    vector = MaxVector.from_pairs(np.arange(0, 16384, 2), np.full(8192, 3, dtype=np.uint8))
    assert vector.is_dense
    delta = vector.merge_pairs([1, 1, 2, 70000], [5, 9, 2, 300])  # beyond the array, wider
    assert delta.items() == [(1, 9), (70000, 300)]
    assert vector.get(1) == 9 and vector.get(70000) == 300 and vector.get(2) == 3


@pytest.mark.parametrize("value_max", [200, 60_000, 2**32 - 1, VALUE_MAX])
def test_pairs_hash_vectorised_equals_pair_by_pair(value_max: int) -> None:
    """The numpy path (many pairs, several vectors at once) hashes exactly like the
    pure-Python path does pair by pair, whatever the value width."""
    rng = np.random.default_rng(value_max % 1000)
    vectors = [
        MaxVector.from_pairs(
            rng.choice(70_000, size=size, replace=False).astype(np.uint32),
            rng.integers(1, value_max, size=size, dtype=np.uint64, endpoint=True),
        )
        for size in (40, 1, 300)
    ]
    seed = 0x0123456789ABCDEF
    for origin in ("", "node-a"):
        one_by_one = 0
        for vector in vectors:
            for index, value in vector.items():
                one_by_one ^= pairs_hash(seed, origin, MaxVector.from_items([(index, value)]))
        assert pairs_hash(seed, origin, *vectors) == one_by_one
        assert pairs_hash(seed, origin, vectors[2]) == pairs_hash(seed, origin, vectors[2].copy())


def test_old_tombstones_are_purged_and_never_come_back() -> None:
    keyspace, never_had_it = Keyspace(4), Keyspace(4)
    for ks in (keyspace, never_had_it):
        ks.write(b"other", RAW, {"": MaxVector.from_items([(1, 1)])}, now_ms=100)
    keyspace.write(b"k", RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=100)
    deleted = keyspace.delete(b"k", now_ms=5000).delta
    assert deleted is not None
    assert keyspace.purge_tombstones(before_epoch=5000) == []  # not older than the grace yet
    assert keyspace.purge_tombstones(before_epoch=5001) == [b"k"]
    assert keyspace.entry(b"k") is None and keyspace.stored_count == 1
    assert keyspace.bucket_hashes().tolist() == never_had_it.bucket_hashes().tolist()
    # A lagging peer's copy of the purged tombstone is refused...
    assert not keyspace.merge(b"k", deleted).changed and keyspace.entry(b"k") is None
    # ...also after the key was written again (epoch 0): it must not delete the new data.
    keyspace.write(b"k", RAW, {"": MaxVector.from_items([(2, 2)])}, now_ms=9000)
    assert not keyspace.merge(b"k", deleted).changed
    assert keyspace.get(b"k", now_ms=9001) is not None
    # A newer delete still works and is purged in its turn.
    assert keyspace.delete(b"k", now_ms=10_000).changed
    assert keyspace.purge_tombstones(before_epoch=10_001) == [b"k"]


def test_expired_keys_tombstones_are_purged_too() -> None:
    keyspace = Keyspace(4)
    keyspace.write(b"k", RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=1000)
    keyspace.set_expiry(b"k", deadline_ms=2000, now_ms=1000)
    keyspace.write(b"kept", RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=1000)
    assert len(keyspace.expire_due(now_ms=2500)) == 1
    assert keyspace.purge_tombstones(before_epoch=1_000_000, limit=10) == [b"k"]
    assert keyspace.stored_count == 1 and len(keyspace) == 1


def test_purge_is_bounded_per_call_and_skips_keys_written_again() -> None:
    keyspace = Keyspace(4)
    for i in range(5):
        keyspace.write(b"k%d" % i, RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=1)
        keyspace.delete(b"k%d" % i, now_ms=100 + i)
    keyspace.write(b"k0", RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms=200)  # alive again
    assert keyspace.purge_tombstones(before_epoch=1000, limit=2) == [b"k1", b"k2"]
    assert keyspace.purge_tombstones(before_epoch=1000) == [b"k3", b"k4"]
    assert keyspace.stored_count == 1 and keyspace.get(b"k0", now_ms=300) is not None


def test_expiring_keys_are_counted() -> None:
    keyspace = Keyspace(4)
    vector = {"": MaxVector.from_items([(0, 1)])}
    for key in (b"a", b"b", b"c"):
        keyspace.write(key, RAW, vector, now_ms=1000)
    keyspace.set_expiry(b"a", deadline_ms=5000, now_ms=1000)
    keyspace.set_expiry(b"b", deadline_ms=6000, now_ms=1000)
    assert keyspace.expiring_count == 2
    keyspace.set_expiry(b"b", deadline_ms=0, now_ms=1001)  # PERSIST
    assert keyspace.expiring_count == 1
    replica = Keyspace(4)
    for key, entry in keyspace.items():
        replica.merge(key, entry)
    assert replica.expiring_count == 1
    keyspace.expire_due(now_ms=5000)
    assert keyspace.expiring_count == 0 and len(keyspace) == 2
    keyspace.set_expiry(b"c", deadline_ms=9000, now_ms=5001)
    keyspace.delete(b"c", now_ms=5002)
    assert keyspace.expiring_count == 0


def test_schema_intern_table_holds_only_schemas_in_use() -> None:
    """A peer sending ever new schema parameters must not grow the intern table for ever:
    it holds schemas weakly, so one no key uses any more is gone."""
    import gc

    from hearsay.lattice import entry as entry_module

    before = len(entry_module._INTERNED)
    held = [Schema("probe", (i,), 8).intern() for i in range(1_000)]
    assert len(entry_module._INTERNED) == before + 1_000
    assert Schema("probe", (7,), 8).intern() is held[7]  # still shared while in use
    del held
    gc.collect()
    assert len(entry_module._INTERNED) == before
