"""Windowed keys on three real nodes with a 6 s window (issue 17's targets), one test for the
four families: an item added on one node is found (Bloom) and listed (Top-K) on every node for
the window and gone on every node by window + 2 s; a windowed HLL then counts only the members
added since, on every node; a windowed count-min sketch has forgotten the old increments."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.nodes import Cluster, NodeProcess, poll_until

pytestmark = pytest.mark.integration

W_S = 6
DEADLINE_S = 30.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path)
    yield nodes
    nodes.close()


def _three(cluster: Cluster) -> list[NodeProcess]:
    first = cluster.start("a")
    return [first, *(cluster.start(name, "--join", first.gossip) for name in ("b", "c"))]


def _state(client: redis.Redis) -> tuple[int, int, int, int]:
    """(BF.EXISTS of the item, PFCOUNT, CMS.QUERY of the item, whether TOPK.LIST lists the
    heavy item) on one node."""
    found = client.execute_command("BF.EXISTS", "seen", "item")
    count = client.execute_command("PFCOUNT", "visitors")
    (hits,) = client.execute_command("CMS.QUERY", "hits", "item")
    listed = b"heavy" in client.execute_command("TOPK.LIST", "top")
    return int(found), int(count), int(hits), int(listed)


def test_windowed_keys_count_the_window_on_every_node(cluster: Cluster) -> None:
    nodes = _three(cluster)
    clients = [node.client() for node in nodes]
    try:
        a, b, c = clients
        a.execute_command("BF.RESERVE", "seen", "0.01", "1000", "WINDOW", W_S)
        a.execute_command("HEARSAY.PFRESERVE", "visitors", "WINDOW", W_S)
        a.execute_command("CMS.INITBYDIM", "hits", "1000", "5", "WINDOW", W_S)
        a.execute_command("TOPK.RESERVE", "top", "3", "WINDOW", W_S)
        poll_until(
            lambda: all(
                client.exists("seen", "visitors", "hits", "top") == 4 for client in clients
            ),
            DEADLINE_S,
            what="the windowed keys on every node",
        )
        old = [f"old-{i}" for i in range(1000)]
        written_s = time.time()  # before the writes: each counts from its arrival on
        a.execute_command("BF.ADD", "seen", "item")
        a.execute_command("PFADD", "visitors", *old)
        b.execute_command("CMS.INCRBY", "hits", "item", "5")
        c.execute_command("TOPK.INCRBY", "top", "heavy", "100", "light", "1")
        acked_s = time.time()

        def everywhere(wanted: tuple[int, ...]) -> bool:
            states = [_state(client) for client in clients]
            exact = (0, 2, 3)
            return all(s[i] == wanted[i] for s in states for i in exact) and all(
                abs(s[1] - wanted[1]) <= 0.05 * wanted[1] for s in states
            )

        poll_until(lambda: everywhere((1, 1000, 5, 1)), DEADLINE_S, what="the writes everywhere")
        # Found on every node for the window: each answer that came back before t + W counts.
        checked = 0
        while time.time() < written_s + W_S - 0.3:  # bounded by the window
            for client in clients:
                state = _state(client)
                if time.time() < written_s + W_S:
                    assert state[0] == 1 and state[2] == 5 and state[3] == 1, state
                    assert abs(state[1] - 1000) <= 50, state
                    checked += 1
            time.sleep(0.2)
        assert checked >= 3
        # Gone on every node by t + W + 2 s.
        gone_by_s = acked_s + W_S + 2
        poll_until(
            lambda: everywhere((0, 0, 0, 0)),
            max(0.1, gone_by_s - time.time()),
            what="every node forgetting by window + 2 s",
        )
        assert time.time() <= gone_by_s + 0.5  # (the poll's last answer came in time)
        # New members and increments: counted alone, on every node.
        new = [f"new-{i}" for i in range(500)]
        c.execute_command("PFADD", "visitors", *new)
        c.execute_command("CMS.INCRBY", "hits", "item", "3")
        poll_until(lambda: everywhere((0, 500, 3, 0)), DEADLINE_S, what="only the new ones")
        for client in clients:
            assert client.type("visitors") == b"string"
            assert client.type("top") == b"TopK-TYPE"
        # Every node dropped the dead slices itself (nothing tells it to).
        poll_until(
            lambda: all(n.info("stats")["window_slices_dropped"] >= 4 for n in clients),
            DEADLINE_S,
            what="every node's sweep dropping the dead slices",
        )
    finally:
        for client in clients:
            client.close()
