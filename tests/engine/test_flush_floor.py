"""FLUSHALL on a replica with real storage: the floor is above every key held, replicated as
one small write, kept across a restart, and the stored rows of flushed keys go, whether the
sweep finished before the stop or not."""

from __future__ import annotations

from pathlib import Path

from hearsay.engine.families.counter import incrby
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry
from hearsay.persist.store import SqliteStore
from hearsay.sketch.schemas import KIND_COUNTER
from tests.support.gossip_pair import ReplicaPair

NOW_MS = 1_700_000_000_000


def _fill(replica: Replica, count: int, now_ms: int = NOW_MS) -> None:
    for number in range(count):
        incrby(replica, b"k%d" % number, number + 1, now_ms)


def _stored_rows(path: Path) -> int:
    store = SqliteStore(path)
    try:
        return store.count()
    finally:
        store.close()


def test_flush_all_goes_above_every_epoch_held_and_survives_a_restart(tmp_path: Path) -> None:
    replica = Replica.open(tmp_path / "a", now_ms=NOW_MS)
    _fill(replica, 300)
    # A key deleted and written again by a node whose clock runs a minute ahead.
    replica.delete([b"k1"], NOW_MS + 60_000)
    _fill(replica, 2)
    replica.flush()
    result = replica.flush_all(NOW_MS)
    assert result.delta == Entry(NOW_MS + 60_001)
    assert replica.dbsize(NOW_MS) == 0 and len(replica.keyspace) == 0
    assert replica.get(b"k1", NOW_MS) is None
    replica.flush()
    replica.close(NOW_MS)  # stopped before any sweep ran: the rows are still stored
    assert _stored_rows(tmp_path / "a") == 301

    again = Replica.open(tmp_path / "a", now_ms=NOW_MS + 1)
    assert again.keyspace.floor_ms == NOW_MS + 60_001
    assert len(again.keyspace) == 0 and again.keys(b"*", NOW_MS + 1) == []
    for _ in range(100):  # bounded; (rows loaded before the floor's row are condemned)
        if not again.sweep_pending:
            break
        again.sweep_floor(64)
    # A key created now starts at the floor and is kept.
    _fill(again, 1, NOW_MS + 2)
    entry = again.get(b"k0", NOW_MS + 2)
    assert entry is not None and entry.epoch == NOW_MS + 60_001
    again.flush()
    again.close(NOW_MS + 3)
    assert _stored_rows(tmp_path / "a") == 2  # the floor and the new k0: the rest deleted

    third = Replica.open(tmp_path / "a", now_ms=NOW_MS + 4)
    assert third.keys(b"*", NOW_MS + 4) == [b"k0"]
    third.close(NOW_MS + 4)


def test_the_sweep_drops_in_bounded_steps_and_deletes_the_rows(tmp_path: Path) -> None:
    replica = Replica.open(tmp_path / "a", now_ms=NOW_MS)
    _fill(replica, 1000)
    replica.flush()
    replica.flush_all(NOW_MS + 1)
    steps = []
    for _ in range(100):
        if not replica.sweep_pending:
            break
        steps.append(replica.sweep_floor(128))
        replica.flush()
    assert max(steps) <= 128 and sum(steps) == 1000
    assert replica.stats.flushed_keys == 1000
    replica.close(NOW_MS + 2)
    assert _stored_rows(tmp_path / "a") == 1


def test_the_floor_reaches_a_peer_and_hides_keys_only_it_held(tmp_path: Path) -> None:
    pair = ReplicaPair(Replica.open(tmp_path / "a", now_ms=NOW_MS), "bbbbbbbbbbbbbbbb")
    here, peer = pair.a, pair.b
    _fill(peer, 20, pair.now_ms)  # keys only the peer holds (not gossiped yet)
    here.flush_all(pair.now_ms)
    pair.settle()
    now_ms = pair.now_ms
    assert peer.keyspace.floor_ms == here.keyspace.floor_ms > 0
    assert peer.dbsize(now_ms) == 0 and here.dbsize(now_ms) == 0
    assert peer.get_typed(b"k3", KIND_COUNTER, now_ms) is None
    _fill(peer, 1, now_ms)  # a write after it learned the floor is kept, and replicated
    pair.settle()
    assert peer.keys(b"*", pair.now_ms) == [b"k0"] == here.keys(b"*", pair.now_ms)
    here.close(pair.now_ms)
