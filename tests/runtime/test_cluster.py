"""Real node processes on loopback gossiping with each other, on the quick ``local`` preset and
on ``lan``, the preset a node runs by default (slower timers: detection waits scale with it)."""

from __future__ import annotations

import base64
import os
import random
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import redis

from tests.support.nodes import Cluster, NodeProcess, poll_until, split_address

pytestmark = pytest.mark.integration


#: How long a poll may wait, per preset: lan's failure detector suspects for 10 s and declares
#: a node dead after 20 s (local: 4 s and 8 s). Deadlines, not expectations.
DEADLINE_S = {"local": 20.0, "lan": 60.0}


@pytest.fixture(params=["local", "lan"])
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, preset=request.param)
    yield nodes
    nodes.close()


def members(node: NodeProcess) -> dict[str, tuple[str, int]]:
    """name -> (state, generation) as HEARSAY.MEMBERS reports them."""
    rows = node.client().execute_command("HEARSAY.MEMBERS")
    return {row[0].decode(): (row[2].decode(), int(row[4])) for row in rows}


def three(cluster: Cluster) -> list[NodeProcess]:
    first = cluster.start("a")
    rest = [cluster.start(name, "--join", first.gossip) for name in ("b", "c")]
    nodes = [first, *rest]
    names = {node.name for node in nodes}
    for node in nodes:
        poll_until(
            lambda node=node: set(members(node)) == names,
            DEADLINE_S[cluster.preset],
            what="membership",
        )
    return nodes


def test_a_write_on_any_node_is_readable_on_all(cluster: Cluster) -> None:
    nodes = three(cluster)
    clients = [node.client() for node in nodes]
    clients[0].pfadd("visitors", *[f"user{i}" for i in range(5000)])
    clients[1].incrby("hits", 5)
    clients[2].incrby("hits", 7)
    clients[0].decr("hits")
    clients[1].bf().add("seen", "url-1")
    clients[2].cms().initbydim("freq", 100, 5)
    poll_until(
        lambda: all(c.exists("freq") for c in clients),
        DEADLINE_S[cluster.preset],
        what="cms created",
    )
    clients[0].cms().incrby("freq", ["x"], [3])
    clients[1].cms().incrby("freq", ["x"], [4])
    clients[2].execute_command("VMAX", "vec", 3, 9, 7, 1)
    expected_count = clients[0].pfcount("visitors")
    for client in clients:
        poll_until(
            lambda c=client: c.pfcount("visitors") == expected_count,
            DEADLINE_S[cluster.preset],
            what="pfcount",
        )
        poll_until(
            lambda c=client: c.get("hits") == b"11", DEADLINE_S[cluster.preset], what="counter"
        )
        poll_until(
            lambda c=client: c.bf().exists("seen", "url-1") == 1,
            DEADLINE_S[cluster.preset],
            what="bloom",
        )
        poll_until(
            lambda c=client: c.cms().query("freq", "x") == [7],
            DEADLINE_S[cluster.preset],
            what="cms sums",
        )
        poll_until(
            lambda c=client: c.execute_command("VGET", "vec") == [3, 9, 7, 1],
            DEADLINE_S[cluster.preset],
            what="vmax",
        )
    assert clients[0].execute_command("WAIT", 2, 5000) >= 2


def test_delete_and_expiry_converge(cluster: Cluster) -> None:
    nodes = three(cluster)
    clients = [node.client() for node in nodes]
    clients[0].pfadd("gone", "a", "b")
    clients[0].pfadd("short", "a")
    for client in clients:
        poll_until(
            lambda c=client: c.exists("gone", "short") == 2,
            DEADLINE_S[cluster.preset],
            what="keys spread",
        )
    clients[1].delete("gone")
    clients[2].pexpire("short", 300)
    for client in clients:
        poll_until(
            lambda c=client: c.exists("gone") == 0,
            DEADLINE_S[cluster.preset],
            what="delete converges",
        )
        poll_until(
            lambda c=client: c.exists("short") == 0,
            DEADLINE_S[cluster.preset],
            what="expiry converges",
        )
    # A key re-created after the delete lives on, everywhere.
    clients[0].pfadd("gone", "c")
    for client in clients:
        poll_until(
            lambda c=client: c.pfcount("gone") == 1,
            DEADLINE_S[cluster.preset],
            what="re-created key",
        )


def test_sigkill_is_detected_and_a_restart_is_alive_with_its_data(cluster: Cluster) -> None:
    """The victim runs ``--fsync always``: every write it acknowledged survives SIGKILL on its
    own disk. It is killed right after the write's reply (not after the write replicated), and
    its data is read from a restart *alone* (no ``--join``, and ``--no-rejoin`` so that it does
    not rejoin the peers its data directory remembers), so nothing can come from a peer;
    only then does it rejoin and is seen alive again with a higher generation."""
    first = cluster.start("a")
    nodes = [first, cluster.start("b", "--join", first.gossip)]
    nodes.append(cluster.start("c", "--join", first.gossip, "--fsync", "always"))
    names = {node.name for node in nodes}
    for node in nodes:
        poll_until(
            lambda node=node: set(members(node)) == names,
            DEADLINE_S[cluster.preset],
            what="membership",
        )
    victim = nodes[2]
    generation = members(nodes[0])[victim.name][1]
    assert victim.client().pfadd("mine", *[f"m{i}" for i in range(100)]) == 1
    count = victim.client().pfcount("mine")
    victim.kill()
    for node in nodes[:2]:
        poll_until(
            lambda node=node: members(node)[victim.name][0] == "failed",
            DEADLINE_S[cluster.preset],
            what="detection",
        )
    alone = cluster.start("c", "--fsync", "always", "--no-rejoin")
    assert alone.name == victim.name
    assert [row[0].decode() for row in alone.client().execute_command("HEARSAY.MEMBERS")] == [
        victim.name
    ]
    assert alone.client().pfcount("mine") == count  # its own disk kept the acknowledged write
    alone.kill()
    restarted = cluster.start("c", "--join", nodes[0].gossip, "--fsync", "always")
    assert restarted.name == victim.name
    for node in nodes[:2]:
        poll_until(
            lambda node=node: (
                members(node)[victim.name][0] == "alive"
                and members(node)[victim.name][1] > generation
            ),
            DEADLINE_S[cluster.preset],
            what="restart seen alive with a higher generation",
        )


def test_graceful_leave_is_seen_as_left(cluster: Cluster) -> None:
    nodes = three(cluster)
    assert nodes[1].stop(signal.SIGTERM) == 0
    for node in (nodes[0], nodes[2]):
        poll_until(
            lambda node=node: members(node)[nodes[1].name][0] == "left",
            DEADLINE_S[cluster.preset],
            what="left",
        )


def test_a_late_joiner_receives_every_existing_key(cluster: Cluster) -> None:
    first = cluster.start("a")
    client = first.client()
    for i in range(300):
        client.pfadd(f"hll:{i}", f"member-{i}")
    client.incrby("total", 42)
    late = cluster.start("late", "--join", first.gossip)
    late_client = late.client()
    poll_until(
        lambda: late_client.dbsize() == 301,
        DEADLINE_S[cluster.preset],
        what="anti-entropy fills the joiner",
    )
    assert late_client.get("total") == b"42"
    assert late_client.pfcount("hll:7") == 1


def test_garbage_leaves_every_node_serving_with_its_data(cluster: Cluster) -> None:
    nodes = three(cluster)
    nodes[0].client().pfadd("keep", "x", "y")
    for node in nodes:
        poll_until(
            lambda n=node: n.client().pfcount("keep") == 2,
            DEADLINE_S[cluster.preset],
            what="replicated",
        )
    rng = random.Random(20).randbytes  # seeded: the same garbage every run
    garbage = [rng(size) for size in (0, 1, 3, 7, 64, 1400, 9000) for _ in range(20)]
    garbage += [
        b"\xc1hs\x01\x00\x07hearsay\x01" + rng(50),
        msgpack.packb({"key": 5, "vector": "x"}),
        msgpack.packb({"key": "k", "vector": {"a": -1}}),
    ]
    # Every garbage datagram must be read and counted as dropped: asserting "still serving" at
    # once could pass before a single one was looked at. They go in small groups, each counted
    # before the next, so the kernel's receive buffer never overflows (a datagram it dropped
    # would never be counted).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for node in nodes:
            address = split_address(node.gossip)
            expected = node.client().info("gossip")["dropped"]
            for start in range(0, len(garbage), 5):
                group = garbage[start : start + 5]
                for datagram in group:
                    sender.sendto(datagram, address)
                expected += len(group)
                poll_until(
                    lambda n=node, e=expected: n.client().info("gossip")["dropped"] >= e,
                    DEADLINE_S[cluster.preset],
                    what=f"garbage datagrams {start}..{start + len(group)} counted as dropped",
                )
    for node in nodes:
        host, port = split_address(node.resp)
        with socket.create_connection((host, port), timeout=5) as raw:
            raw.sendall(b"*2\r\n$3\r\nGET\r\n$-7\r\n")
            assert raw.recv(1024).startswith(b"-ERR Protocol error")
    for node in nodes:
        client = node.client()
        assert client.ping() is True
        assert client.pfcount("keep") == 2


def test_requirepass_refuses_commands_before_auth(cluster: Cluster, tmp_path: Path) -> None:
    keyring = tmp_path / "keys"  # a password needs a keyring (else gossip would bypass it)
    keyring.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    node = cluster.start("a", "--requirepass", "s3cret", "--keyring", str(keyring))
    with pytest.raises(redis.AuthenticationError):
        node.client().ping()
    assert node.client(password="s3cret").ping() is True


def test_keyring_and_cluster_name_keep_strangers_out(cluster: Cluster, tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.keys", tmp_path / "theirs.keys"
    ours.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    theirs.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    first = cluster.start("a", "--keyring", str(ours))
    friend = cluster.start("b", "--keyring", str(ours), "--join", first.gossip)
    stranger = cluster.start("x", "--keyring", str(theirs), "--join", first.gossip)
    foreign = cluster.start("y", "--cluster", "other", "--join", first.gossip)
    poll_until(
        lambda: friend.name in members(first), DEADLINE_S[cluster.preset], what="friend joins"
    )
    stranger.client().pfadd("injected", "evil")
    foreign.client().pfadd("injected", "evil")
    # Plaintext vignette datagrams are refused while a keyring is set.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        raw = msgpack.packb({"key": "vig", "vector": {0: 5}, "full": True})
        sender.sendto(raw, split_address(first.gossip))
    friend.client().pfadd("shared", "ok")
    poll_until(
        lambda: first.client().pfcount("shared") == 1,
        DEADLINE_S[cluster.preset],
        what="friend's write",
    )
    assert stranger.name not in members(first)
    assert foreign.name not in members(first)
    assert first.client().exists("injected", "vig") == 0
    dropped = first.client().info("gossip")["dropped"]
    assert dropped > 0


def test_join_by_host_name(tmp_path: Path) -> None:
    """``--join localhost:PORT``: a host name, as an operator writes one, not an address."""
    cluster = Cluster(tmp_path)
    try:
        first = cluster.start("a")
        port = split_address(first.gossip)[1]
        second = cluster.start("b", "--join", f"localhost:{port}")
        names = {first.name, second.name}
        for node in (first, second):
            poll_until(lambda node=node: set(members(node)) == names, 20, what="joined by name")
        second.client().pfadd("by-name", "x")
        poll_until(lambda: first.client().pfcount("by-name") == 1, 20, what="replicated")
    finally:
        cluster.close()
