"""The sweep of windowed keys (``engine/window_sweep.py``): dead slices leave every replica on
its own clock, late copies of them are dropped at the next sweep, keys loaded before the
replica existed are swept too, and a schema no view accepts never breaks a merge or a sweep."""

from __future__ import annotations

from hearsay.engine.replica import Replica
from hearsay.lattice.digest import entry_hash
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector
from hearsay.persist.identity import NodeIdentity
from hearsay.sketch.schemas import hll
from hearsay.sketch.window import Window, windowed

NOW_MS = 1_700_000_000_000
SCHEMA = windowed(hll(10), 2_000, 4)  # slices of 500 ms
WINDOW = Window(2_000, 4)


def _slice(number: int) -> dict[str, MaxVector]:
    return {str(number): MaxVector.from_pairs([number % 1024], [3])}


def _replica(keyspace: Keyspace | None = None) -> Replica:
    return Replica(NodeIdentity("0123456789abcdef", 1), keyspace)


def test_a_late_copy_of_a_dead_slice_is_dropped_at_the_next_sweep() -> None:
    db = _replica()
    first = WINDOW.slice_at(NOW_MS)
    db.merge_remote(b"k", Entry(0, SCHEMA, slices=_slice(first)))
    dies = WINDOW.dies_at_ms(first)
    assert db.windows.next_due_ms() == dies
    db.expire_due(dies - 1)
    assert [name for name, _ in db.keyspace.entry(b"k").slices()] == [str(first)]  # type: ignore[union-attr]
    db.expire_due(dies)
    entry = db.keyspace.entry(b"k")
    assert entry is not None and entry.is_empty() and entry.schema == SCHEMA
    assert db.keyspace.bucket_hash(db.keyspace.bucket_of(b"k")) == entry_hash(b"k", entry)
    db.merge_remote(b"k", Entry(0, SCHEMA, slices=_slice(first)))  # a peer that lags
    assert db.windows.next_due_ms() == dies  # due at once
    assert db.expire_due(dies + 1) == 0
    assert db.keyspace.entry(b"k").is_empty()  # type: ignore[union-attr]
    assert db.windows.slices_dropped == 2
    assert db.windows.pending == 0


def test_keys_loaded_before_the_replica_are_swept() -> None:
    keyspace = Keyspace()
    first = WINDOW.slice_at(NOW_MS)
    keyspace.merge(b"k", Entry(0, SCHEMA, slices={**_slice(first), **_slice(first + 9)}))
    db = _replica(keyspace)
    assert db.windows.next_due_ms() == WINDOW.dies_at_ms(first)
    db.expire_due(WINDOW.dies_at_ms(first))
    assert [name for name, _ in keyspace.entry(b"k").slices()] == [str(first + 9)]  # type: ignore[union-attr]
    assert db.windows.next_due_ms() == WINDOW.dies_at_ms(first + 9)


def test_a_schema_no_view_accepts_breaks_neither_merge_nor_sweep() -> None:
    db = _replica()
    db.limit_keys(None)  # as while loading: nothing checks the schema
    bad = Schema("whll", (99, 1, 0), 16, additive=True)
    db.merge_remote(b"bad", Entry(0, bad, slices={"1": MaxVector.from_pairs([1], [1])}))
    assert db.expire_due(NOW_MS) == 0
    assert db.keyspace.entry(b"bad") is not None
