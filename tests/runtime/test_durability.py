"""An acknowledged RESP write to ``hearsay serve --fsync always`` survives kill -9 under load.

Many client threads write over RESP (redis-py) to one real node: each thread INCRs its own
counter, BF.ADDs items of its own, and PFADDs one member to keys of its own, and records a write
only after its reply arrived. After a seeded, random number of acknowledged writes the node is
killed with SIGKILL (a moment chosen by a count, not by a clock), restarted *alone* (no
``--join``: nothing can come back from a peer) on the same data directory, and every
acknowledged write must be there: each counter at least its last acknowledged value, every
acknowledged Bloom item present (a Bloom filter has no false negatives), every acknowledged
one-member HLL key counting exactly 1. Writes in flight at the kill may or may not be there.

Set ``HEARSAY_DURABILITY_SEED`` to rerun one seed; a failing run prints its seed.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.nodes import NodeProcess, start_node

pytestmark = [pytest.mark.crash, pytest.mark.integration]

CLIENTS = 8
WRITES_PER_CLIENT_MAX = 20_000  # bounds each thread if the kill never comes
KILL_AFTER_ACKS = (300, 4_000)  # the kill comes after a random number of acks in this range
ACK_WAIT_S = 120.0  # a generous bound on reaching that many acks on a loaded machine
SEEDS = (
    [int(os.environ["HEARSAY_DURABILITY_SEED"])]
    if "HEARSAY_DURABILITY_SEED" in os.environ
    else [7, 1234]
)


@dataclass
class ClientLog:
    """What one client thread saw acknowledged (written only by that thread)."""

    index: int
    last_counter: int = 0
    bloom_items: list[str] = field(default_factory=list)
    hll_keys: list[str] = field(default_factory=list)
    acks: int = 0
    error: BaseException | None = None

    @property
    def counter_key(self) -> str:
        return f"durable:ctr:{self.index}"

    @property
    def bloom_key(self) -> str:
        return f"durable:bf:{self.index}"


class Writers:
    """CLIENTS threads writing until the node dies (or their bound is reached)."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.logs = [ClientLog(i) for i in range(CLIENTS)]
        self.killed = threading.Event()
        self.acked = threading.Semaphore(0)  # released once per acknowledged write
        self.threads = [
            threading.Thread(target=self._write, args=(log,), daemon=True) for log in self.logs
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a writer thread did not stop after the kill"

    def _write(self, log: ClientLog) -> None:
        # No retries: a command re-sent after the kill would blur what was acknowledged.
        client = self.node.client(socket_timeout=30, retry=Retry(NoBackoff(), 0))
        try:
            for i in range(WRITES_PER_CLIENT_MAX):
                op = i % 3
                if op == 0:
                    log.last_counter = int(client.incr(log.counter_key))
                elif op == 1:
                    item = f"item-{log.index}-{i}"
                    client.execute_command("BF.ADD", log.bloom_key, item)
                    log.bloom_items.append(item)
                else:
                    key = f"durable:hll:{log.index}:{i}"
                    client.pfadd(key, f"member-{i}")
                    log.hll_keys.append(key)
                log.acks += 1
                self.acked.release()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if not self.killed.is_set():
                log.error = error
        except BaseException as error:
            log.error = error
        finally:
            client.close()


def wait_for_acks(writers: Writers, count: int) -> None:
    """Block until ``count`` writes were acknowledged in all (bounded by ACK_WAIT_S each)."""
    for n in range(count):
        if not writers.acked.acquire(timeout=ACK_WAIT_S):
            errors = [log.error for log in writers.logs if log.error is not None]
            raise AssertionError(f"only {n} of {count} writes acknowledged; errors: {errors[:3]}")


@pytest.mark.parametrize("seed", SEEDS)
def test_every_acknowledged_write_survives_kill_9_and_a_lone_restart(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    kill_after = rng.randint(*KILL_AFTER_ACKS)
    print(f"seed={seed} kill_after_acks={kill_after} (rerun: HEARSAY_DURABILITY_SEED={seed})")
    data_dir = tmp_path / "node"
    node = start_node(data_dir, "--fsync", "always")
    writers = Writers(node)
    try:
        writers.start()
        wait_for_acks(writers, kill_after)
        writers.killed.set()
        node.kill()
        writers.join()
    finally:
        writers.killed.set()
        node.kill()
    errors = [log.error for log in writers.logs if log.error is not None]
    assert errors == [], f"seed={seed}: writers failed before the kill: {errors[:3]}"
    acked = sum(log.acks for log in writers.logs)
    assert acked >= kill_after

    restarted = start_node(data_dir, "--fsync", "always")  # alone: no --join
    try:
        client = restarted.client()
        lost: list[str] = []
        for log in writers.logs:
            value = client.get(log.counter_key)
            if log.last_counter and (value is None or int(value) < log.last_counter):
                lost.append(f"{log.counter_key}={value!r} < acked {log.last_counter}")
            if log.bloom_items:
                present = client.execute_command("BF.MEXISTS", log.bloom_key, *log.bloom_items)
                lost += [
                    f"{log.bloom_key} {item}"
                    for item, hit in zip(log.bloom_items, present, strict=True)
                    if hit != 1
                ]
            with client.pipeline(transaction=False) as pipe:
                for key in log.hll_keys:
                    pipe.pfcount(key)
                counts = pipe.execute()
            lost += [f"{key} pfcount={n}" for key, n in zip(log.hll_keys, counts, strict=True)
                     if n != 1]  # fmt: skip
        print(
            f"seed={seed}: acked={acked} counters={[log.last_counter for log in writers.logs]} "
            f"lost={len(lost)}"
        )
        assert lost == [], f"seed={seed}: {len(lost)} acknowledged writes lost: {lost[:10]}"
        # The node that came back is alone: nothing above came from a peer.
        rows = client.execute_command("HEARSAY.MEMBERS")
        assert [row[0].decode() for row in rows] == [restarted.name]
    finally:
        restarted.stop()
