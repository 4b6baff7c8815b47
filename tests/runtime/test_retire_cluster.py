"""Retired slices on real nodes (issue 16 item 2): three nodes stay while short-lived nodes
join, write to a count-min sketch, a counter, a Top-K, a t-digest and a cuckoo filter, leave
and are forgotten (HEARSAY.FORGET);
after ``--retire-grace-s 1`` every staying node folds their slices into one retired slice,
so a key holds the three live slices and one retired slice however many nodes came and
went, and every read still counts every write. A forgotten node that comes back with its old
id has its late writes refused (INFO ``retired_origin_dropped``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from hearsay.engine.dump import decode_payload
from hearsay.lattice.retired import retired_time
from tests.support.nodes import Cluster, NodeProcess, poll_until

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0
GRACE = ("--retire-grace-s", "1")
CHURN_ROUNDS = 3


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path)
    yield nodes
    nodes.close()


def _origins(client: redis.Redis, key: str) -> list[str]:
    """The slice names a node holds for ``key`` (read from its DUMP payload)."""
    payload = client.dump(key)
    assert isinstance(payload, bytes)
    return [origin for origin, _ in decode_payload(payload).slices()]


def _run_id(client: redis.Redis) -> str:
    return str(client.info("server")["run_id"])


KEYS = ("hits", "n", "top", "dig", "cf")


def _state(client: redis.Redis) -> tuple[int, ...]:
    """Every key's count of the writes: the count-min's and the counter's sum, the Top-K's
    listed count of its one item, the t-digest's weight, the cuckoo filter's copies."""
    (hits,) = client.execute_command("CMS.QUERY", "hits", "item")
    top = client.execute_command("TOPK.LIST", "top", "WITHCOUNT")
    info = client.tdigest().info("dig")
    return (
        int(hits),
        int(client.get("n") or 0),
        int(top[1]) if top else 0,
        int(info.merged_weight + info.unmerged_weight),
        int(client.cf().info("cf").insertedNum),
    )


def _write(client: redis.Redis, amount: int) -> None:
    client.execute_command("CMS.INCRBY", "hits", "item", amount)
    client.incrby("n", amount)
    client.execute_command("TOPK.INCRBY", "top", "hot", amount)
    client.tdigest().add("dig", [float(amount)] * amount)
    client.cf().insert("cf", ["seen"] * amount)


def _plus(state: tuple[int, ...], amount: int) -> tuple[int, ...]:
    return tuple(value + amount for value in state)


def test_departed_nodes_fold_into_one_retired_slice(cluster: Cluster) -> None:
    first = cluster.start("a", *GRACE)
    stay = [first, *(cluster.start(name, "--join", first.gossip, *GRACE) for name in "bc")]
    clients = [node.client() for node in stay]
    live_ids = {_run_id(client) for client in clients}
    try:
        clients[0].execute_command("CMS.INITBYDIM", "hits", "100", "4")
        clients[0].topk().reserve("top", 3, 64, 4, 0.9)
        clients[0].tdigest().create("dig", 100)
        clients[0].cf().reserve("cf", 1000)
        poll_until(
            lambda: all(c.exists(*KEYS[2:]) == 3 for c in clients), DEADLINE_S, what="created"
        )
        expected: tuple[int, ...] = (0,) * len(KEYS)
        for number, client in enumerate(clients):
            _write(client, number + 1)
            expected = _plus(expected, number + 1)
        gone: NodeProcess | None = None
        for round_no in range(CHURN_ROUNDS):
            guest = cluster.start(f"guest{round_no}", "--join", first.gossip, *GRACE)
            guest_client = guest.client()
            poll_until(lambda g=guest_client: g.exists("hits"), DEADLINE_S, what="hits on guest")
            poll_until(
                lambda g=guest_client: g.exists(*KEYS[2:]) == 3, DEADLINE_S, what="the sketches"
            )
            _write(guest_client, 10)
            expected = _plus(expected, 10)
            guest_id = _run_id(guest_client)
            poll_until(
                lambda e=expected: all(_state(c) == e for c in clients),
                DEADLINE_S,
                what="the guest's writes on every staying node",
            )
            guest_client.close()
            assert guest.stop() == 0
            gone = guest
            assert clients[round_no % 3].execute_command("HEARSAY.FORGET", guest_id) == 1
            assert clients[(round_no + 1) % 3].execute_command("HEARSAY.FORGET", guest_id) == 0

            def folded(wanted: tuple[int, ...] = expected) -> bool:
                for client in clients:
                    for key in KEYS:
                        origins = _origins(client, key)
                        retired = [o for o in origins if retired_time(o) is not None]
                        if len(retired) != 1 or set(origins) - set(retired) != live_ids:
                            return False
                    if _state(client) != wanted:
                        return False
                return True

            poll_until(folded, DEADLINE_S, what=f"round {round_no}: one retired slice per key")
        stats = [client.info("stats") for client in clients]
        assert [info["departed_nodes"] for info in stats] == [CHURN_ROUNDS] * len(stats)
        # Every round's retired slice was folded by some node; a node whose peer folded first
        # only merges the result (its own grace had not passed yet) and counts no fold.
        assert sum(info["retired_folds"] for info in stats) >= CHURN_ROUNDS
        # The last guest comes back with its old id: its late writes are refused everywhere.
        assert gone is not None
        back = cluster.start("back", "--data-dir", str(gone.data_dir), "--join", first.gossip)
        back_client = back.client()
        poll_until(
            lambda: back_client.info("stats")["departed_nodes"] == CHURN_ROUNDS,
            DEADLINE_S,
            what="the returning node learning the departures",
        )
        back_client.execute_command("CMS.INCRBY", "hits", "item", 1000)
        poll_until(
            lambda: sum(c.info("stats")["retired_origin_dropped"] for c in clients) >= 1,
            DEADLINE_S,
            what="the staying nodes refusing the forgotten node's late write",
        )
        assert all(_state(client) == expected for client in clients)
    finally:
        for client in clients:
            client.close()
