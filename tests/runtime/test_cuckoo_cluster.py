"""Cuckoo filters written through three real nodes: every node's adds reach every node, and
CF.DEL on one node removes an item another node added, everywhere, and it stays removed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import Cluster, poll_until

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path)
    yield nodes
    nodes.close()


def test_cf_del_on_one_node_removes_an_item_added_on_another(cluster: Cluster) -> None:
    nodes = cluster.start_joined("a", "b", "c")
    clients = [node.client() for node in nodes]
    try:
        clients[0].cf().create("seen", 10_000)
        poll_until(lambda: all(c.exists("seen") for c in clients), DEADLINE_S, what="created")
        items = [f"item-{i}" for i in range(900)]
        for n, client in enumerate(clients):  # a third through each node, pipelined
            pipe = client.pipeline(transaction=False)
            for item in items[n::3]:
                pipe.execute_command("CF.ADD", "seen", item)
            assert pipe.execute() == [1] * 300

        def everywhere(wanted: list[int], batch: list[str]) -> bool:
            return all(c.execute_command("CF.MEXISTS", "seen", *batch) == wanted for c in clients)

        poll_until(lambda: everywhere([1] * 900, items), DEADLINE_S, what="every add everywhere")
        # Node b deletes what node a added; node c deletes what node b added.
        removed = items[0::3][:50] + items[1::3][:50]
        for item in items[0::3][:50]:
            assert clients[1].cf().delete("seen", item) == 1
        for item in items[1::3][:50]:
            assert clients[2].cf().delete("seen", item) == 1
        poll_until(lambda: everywhere([0] * 100, removed), DEADLINE_S, what="deletes everywhere")
        # More writes on every node, seen everywhere: the deleted items stay deleted.
        later = [f"later-{i}" for i in range(300)]
        for n, client in enumerate(clients):
            assert client.cf().insert("seen", later[n::3]) == [1] * 100
        poll_until(lambda: everywhere([1] * 300, later), DEADLINE_S, what="later adds everywhere")
        for client in clients:
            assert client.execute_command("CF.MEXISTS", "seen", *removed) == [0] * 100
            info = client.cf().info("seen")
            assert info.insertedNum == 900 - 100 + 300
            assert info.deletedNum == 100
    finally:
        for client in clients:
            client.close()
