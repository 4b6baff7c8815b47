"""FLUSHALL on real nodes: every node converges empty, a write after the flush survives, and
a node that was down during the flush comes back with its old data without resurrecting it."""

from __future__ import annotations

import signal
import threading
import time
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


def test_flushall_reaches_keys_the_flushing_node_never_saw(cluster: Cluster) -> None:
    first = cluster.start("a")
    second = cluster.start("b", "--join", first.gossip)
    alone = cluster.start("c")  # not joined yet: its keys reach nobody before the flush
    for node in (first, second):
        poll_until(lambda node=node: _members_alive(node) == 2, DEADLINE_S, what="membership")
    writer = alone.client()
    for number in range(50):
        writer.pfadd(f"only-c{number}", "x")
    writer.incrby("only-c-counter", 3)
    writer.close()
    first.client().incrby("on-a", 1)
    poll_until(lambda: _keys(second) == [b"on-a"], DEADLINE_S, what="replication")
    assert first.client().flushall() is True
    poll_until(lambda: _keys(second) == [], DEADLINE_S, what="the flush reaching b")
    # c joins now: the floor reaches it (and its old keys reach a and b, refused there).
    assert alone.client().execute_command("HEARSAY.JOIN", first.gossip) == b"OK"
    for node in (first, second, alone):
        poll_until(lambda node=node: _keys(node) == [], DEADLINE_S, what="c's keys flushed")
    floors = {node.client().info("stats")["flush_floor_ms"] for node in (first, second, alone)}
    assert len(floors) == 1 and floors.pop() > 0
    # A write on c after it learned the floor is kept everywhere.
    assert alone.client().incrby("after", 2) == 2
    for node in (first, second, alone):
        poll_until(lambda node=node: _keys(node) == [b"after"], DEADLINE_S, what="convergence")
    # And the floor is stored: a restarted node keeps it and its flushed keys stay gone.
    alone.stop(signal.SIGTERM)
    back = cluster.start("c")
    assert back.client().info("stats")["flush_floor_ms"] > 0
    assert _keys(back) == [b"after"]


def test_the_reserved_floor_key_is_invisible_and_not_writable(cluster: Cluster) -> None:
    node = cluster.start("a")
    client = node.client()
    client.incr("x")
    client.flushall()
    reserved = b"\x00hearsay\x00flush-floor"
    assert client.exists(reserved) == 0
    assert client.type(reserved) == b"none"
    assert client.delete(reserved) == 0
    with pytest.raises(Exception, match="reserved"):
        client.incr(reserved)
    assert client.scan(0, count=1000) == (0, [])
    assert client.dbsize() == 0
    assert "db0" not in client.info("keyspace")


def _fill(node: NodeProcess, count: int) -> None:
    client = node.client(socket_timeout=60)
    for start in range(0, count, 5000):
        pipe = client.pipeline(transaction=False)
        for number in range(start, min(count, start + 5000)):
            pipe.incr(f"key:{number}")
        pipe.execute()
    client.close()


def _flush_while_pinging(node: NodeProcess, count: int) -> tuple[int, float]:
    """FLUSHALL ``count`` keys while a second client PINGs in a loop; returns how many PINGs
    were answered and the slowest one's round trip (s), for the report."""
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def ping() -> None:
        client = node.client()
        try:
            for _ in range(1_000_000):  # bounded; stopped by ``stop`` long before
                if stop.is_set():
                    return
                started = time.perf_counter()
                assert client.ping() is True
                latencies.append(time.perf_counter() - started)
        except BaseException as error:  # reported by the test below
            errors.append(error)
        finally:
            client.close()

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    client = node.client()
    try:
        poll_until(lambda: len(latencies) > 10, DEADLINE_S, what="pings")
        before = len(latencies)
        assert client.flushall() is True
        assert client.dbsize() == 0  # at once, before the sweep has finished
        poll_until(
            lambda: client.info("stats")["flushed_keys"] >= count,
            120.0,
            what="the sweep",
        )
        answered = len(latencies) - before
    finally:
        stop.set()
        pinger.join(30)
        client.close()
    assert not errors, errors
    return answered, max(latencies[before:], default=0.0)


@pytest.mark.parametrize(
    "count", [10_000, pytest.param(200_000, marks=pytest.mark.slow)], ids=["10k", "200k"]
)
def test_a_big_flush_is_swept_in_steps_while_the_node_answers(cluster: Cluster, count: int) -> None:
    node = cluster.start("a")
    _fill(node, count)
    client = node.client()
    assert client.dbsize() == count
    answered, slowest_s = _flush_while_pinging(node, count)
    slowest_ms = slowest_s * 1000
    print(f"FLUSHALL of {count} keys: {answered} PINGs meanwhile, slowest {slowest_ms:.1f} ms")
    assert answered > 0
    assert client.dbsize() == 0
    assert client.incr("after") == 1
    # The rows are deleted too: a restart loads only the new key.
    node.stop(signal.SIGTERM)
    back = cluster.start("a")
    assert _keys(back) == [b"after"]
