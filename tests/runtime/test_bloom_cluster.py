"""A scalable Bloom filter written through three real nodes at once, far past its capacity:
the nodes start sub-filters concurrently and share them, every node answers EXISTS for every
item (no false negative) and the same for items never added, and BF.INFO is the same
everywhere after convergence. (The false-positive rate after concurrent growth depends on
how much of each other's writes the nodes saw while writing: not asserted here; the
single-writer bound is tests/sketch/test_bloom_scalable.py's.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.nodes import Cluster, poll_until

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
CAPACITY = 200
ITEMS = 3_000  # 15x the first sub-filter's capacity


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path)
    yield nodes
    nodes.close()


def test_concurrent_writers_past_capacity_agree(cluster: Cluster) -> None:
    nodes = cluster.start_joined("a", "b", "c")
    clients = [node.client() for node in nodes]
    try:
        assert clients[0].bf().create("seen", 0.01, CAPACITY, expansion=2) is True
        poll_until(lambda: all(c.exists("seen") for c in clients), DEADLINE_S, what="created")
        items = [f"item-{i}" for i in range(ITEMS)]
        failures: list[BaseException] = []

        def write(n: int) -> None:  # a third through each node, at the same time
            try:
                pipe = clients[n].pipeline(transaction=False)
                for item in items[n::3]:
                    pipe.execute_command("BF.ADD", "seen", item)
                replies = pipe.execute()
                assert all(reply in (0, 1) for reply in replies), replies
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(DEADLINE_S)
        assert not any(thread.is_alive() for thread in writers)
        assert not failures, failures

        def everywhere_found() -> bool:
            return all(
                c.execute_command("BF.MEXISTS", "seen", *items) == [1] * ITEMS for c in clients
            )

        poll_until(everywhere_found, DEADLINE_S, what="every item on every node")

        def info_of(client: redis.Redis) -> tuple[int, int, int, int, int | None]:
            got = client.bf().info("seen")
            return (got.capacity, got.size, got.filterNum, got.insertedNum, got.expansionRate)

        def agreed() -> list[tuple[int, int, int, int, int | None]] | None:
            seen = [info_of(c) for c in clients]
            return seen if seen.count(seen[0]) == len(seen) else None

        infos = poll_until(agreed, DEADLINE_S, what="the same BF.INFO everywhere")
        capacity, _, filters, inserted, expansion = infos[0]
        # How many sub-filters depends on how much of each other's writes the nodes saw while
        # writing (docs/design.md: concurrent writers can overfill the last sub-filter).
        assert filters >= 2
        assert capacity >= CAPACITY * 3
        assert expansion == 2
        assert abs(inserted - ITEMS) <= 0.15 * ITEMS
        never = [f"never-{i}" for i in range(2_000)]
        answers = [c.execute_command("BF.MEXISTS", "seen", *never) for c in clients]
        assert answers[0] == answers[1] == answers[2]
    finally:
        for client in clients:
            client.close()
