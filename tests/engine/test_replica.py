"""The engine's Replica: one owner for the keyspace, the gossip node, the dirty set and WAIT.

Driven as the runtime drives it, sans-IO, with real gossip between two replicas in memory
(:mod:`tests.support.gossip_pair`), the real command table and, where durability matters, a
real data directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from hearsay.engine.interfaces import AckWait
from hearsay.engine.replica import Replica
from hearsay.lattice.vector import MaxVector
from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.identity import NodeIdentity
from hearsay.protocol.events import KeyChanged
from hearsay.resp.cluster_commands import ClusterControl
from hearsay.resp.commands import ClientContext, CommandRegistry
from hearsay.resp.server_commands import build_registry
from hearsay.sketch import schemas
from tests.support.command_client import NoServer
from tests.support.gossip_pair import ReplicaPair


def _registry() -> CommandRegistry:
    """The real command table with WAIT (the cluster commands WAIT uses no control)."""
    return build_registry(NoServer(), cast(ClusterControl, object()))


def test_a_peers_write_is_marked_dirty_by_the_replica_and_reaches_the_disk(
    tmp_path: Path,
) -> None:
    pair = ReplicaPair(Replica.open(tmp_path / "a"), "bbbbbbbbbbbbbbbb")
    pair.b.write(b"v", schemas.vector(), {"": MaxVector.from_pairs([3], [7])}, pair.now_ms)
    events: list[object] = []
    for _ in range(100):  # bounded: the rumour arrives in one delivery
        if not pair.deliver(events):
            break
    assert not any(isinstance(event, KeyChanged) for event in events)
    assert pair.a.keyspace.entry(b"v") == pair.b.keyspace.entry(b"v")
    assert pair.a.stats.replicated_changes == 1
    assert pair.a.unsynced_writes >= 1  # dirty, not yet staged
    ticket = pair.a.flush()
    assert ticket is not None
    ticket.result(timeout=30)
    pair.a.close()
    reopened = Replica.open(tmp_path / "a")
    try:
        assert reopened.keyspace.entry(b"v") == pair.b.keyspace.entry(b"v")
    finally:
        reopened.close()


def test_execute_keeps_the_sessions_latest_write_and_wait_waits_for_it() -> None:
    registry = _registry()
    pair = ReplicaPair("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", commands=registry)
    session = ClientContext(client_id=1, db=pair.a)
    reader = ClientContext(client_id=2, db=pair.a)
    now = pair.now_ms
    assert pair.a.execute(reader, [b"WAIT", b"1", b"0"], now) == 0  # no write: nothing to wait
    assert pair.a.execute(session, [b"PFADD", b"h", b"x"], now) == 1
    seq = session.last_write_seq
    assert seq > 0
    assert reader.last_write_seq == 0
    waiting = pair.a.execute(session, [b"WAIT", b"1", b"250"], now)
    assert waiting == AckWait(seq, 1, now + 250)
    pair.settle()
    assert pair.a.acks(seq) == 1
    assert pair.a.execute(session, [b"WAIT", b"1", b"0"], pair.now_ms) == 1  # held already
    assert pair.a.execute(session, [b"WAIT", b"0", b"0"], pair.now_ms) == 1
    assert pair.b.keyspace.entry(b"h") == pair.a.keyspace.entry(b"h")


def test_a_write_inside_exec_or_a_run_is_the_sessions_latest_write() -> None:
    pair = ReplicaPair("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", commands=_registry())
    session = ClientContext(client_id=1, db=pair.a)
    now = pair.now_ms
    for args in ([b"MULTI"], [b"PFADD", b"h", b"x"]):
        pair.a.execute(session, args, now)
    assert session.last_write_seq == 0  # queued, not run
    assert pair.a.execute(session, [b"EXEC"], now) == [1]
    after_exec = session.last_write_seq
    assert after_exec > 0
    run = [[b"PFADD", b"h", b"y"], [b"PFADD", b"h", b"z"]]
    assert pair.a.execute_run(session, run, now) == [1, 1]
    assert session.last_write_seq > after_exec


def test_a_replica_without_gossip_answers_wait_with_zero_at_once() -> None:
    replica = Replica(NodeIdentity("0123456789abcdef", 1), commands=_registry())
    session = ClientContext(client_id=1, db=replica)
    assert replica.execute(session, [b"VMAX", b"v", b"1", b"2"], 0) is not None
    assert replica.execute(session, [b"WAIT", b"1", b"0"], 0) == 0
    assert replica.next_event() is None
    assert replica.datagrams_to_send() == []


def test_under_fsync_always_a_write_is_durable_once_the_flush_ticket_completes(
    tmp_path: Path,
) -> None:
    replica = Replica.open(tmp_path / "data", FsyncPolicy.ALWAYS, commands=_registry())
    assert replica.acknowledges_durable
    session = ClientContext(client_id=1, db=replica)
    assert replica.execute(session, [b"PFADD", b"h", b"x"], 0) == 1
    assert replica.unsynced_writes == 1  # dirty, not staged yet
    ticket = replica.flush()  # what the driver holds the reply for
    assert ticket is not None
    ticket.result(timeout=30)
    assert replica.flush() is None  # nothing left dirty
    assert replica.unsynced_writes == 0  # and what was staged is synced
    replica.close()
