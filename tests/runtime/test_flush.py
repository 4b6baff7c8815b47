"""FLUSHALL on real nodes: every node converges empty, a write after the flush survives, and
a node that was down during the flush comes back with its old data without resurrecting it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import Cluster, NodeProcess, poll_until

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0
KEYS = 200


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path)
    yield nodes
    nodes.close()


def _keys(node: NodeProcess) -> list[bytes]:
    client = node.client()
    try:
        return sorted(client.keys("*"))
    finally:
        client.close()


def _members_alive(node: NodeProcess) -> int:
    rows = node.client().execute_command("HEARSAY.MEMBERS")
    return sum(row[2] == b"alive" for row in rows)


def test_flushall_converges_empty_and_an_old_copy_cannot_resurrect(cluster: Cluster) -> None:
    first = cluster.start("a")
    second = cluster.start("b", "--join", first.gossip)
    late = cluster.start("c", "--join", first.gossip)
    nodes = [first, second, late]
    for node in nodes:
        poll_until(lambda node=node: _members_alive(node) == 3, DEADLINE_S, what="membership")
    for number in range(KEYS):
        writer = nodes[number % 3].client()
        if number % 2:
            writer.incrby(f"n{number}", number)
        else:
            writer.pfadd(f"h{number}", f"m{number}")
        writer.close()
    for node in nodes:
        poll_until(lambda node=node: len(_keys(node)) == KEYS, DEADLINE_S, what="replication")
    # c goes away holding every key, and misses the flush.
    late.stop(signal.SIGTERM)
    assert first.client().flushall() is True
    assert first.client().dbsize() == 0
    poll_until(lambda: _keys(second) == [], DEADLINE_S, what="the flush reaching b")
    # A write after the flush survives it.
    assert second.client().incrby("after", 1) == 1
    # c comes back with its old copy of every key (older epochs than the flush's tombstones).
    back = cluster.start("c", "--join", first.gossip)
    assert back.name == late.name
    for node in (first, second, back):
        poll_until(lambda node=node: _keys(node) == [b"after"], DEADLINE_S, what="convergence")
    assert back.client().get("after") == b"1"


def test_flushdb_options(cluster: Cluster) -> None:
    node = cluster.start("a")
    client = node.client()
    client.incr("x")
    assert client.flushdb(asynchronous=True) is True
    assert client.dbsize() == 0
    client.incr("x")
    assert client.execute_command("FLUSHALL", "SYNC") is True
    assert client.dbsize() == 0
    with pytest.raises(Exception, match="syntax error"):
        client.execute_command("FLUSHALL", "LATER")
