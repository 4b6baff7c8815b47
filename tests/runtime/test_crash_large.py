"""kill -9 while a big key is written as deltas, and while its deltas are being folded.

A real child process (tests/support/big_key_child.py) drives a real Replica under
``--fsync always`` (the real command table, group committer, delta rows and folds) on a
1M-capacity Bloom filter and a 20000x7 count-min sketch, acknowledging a write only after its
flush ticket completed. It is SIGKILLed after a seeded number of acks (several kill and restart
cycles, so some kills land while the writer folds), or while it is held inside a fold (its
transaction open). After each kill the data directory is reopened and every acknowledged write
must be there: BF.EXISTS is 1 for every acknowledged item, and the sketch's total count is
exact (the acknowledged increments, plus at most the one in flight at each kill: a write
committed but killed before its ack was printed is kept, and stays kept across later
cycles). The database passes SQLite's integrity check, and a fold interrupted by the kill
runs again and changes nothing.

Set ``HEARSAY_CRASH_LARGE_SEED`` to rerun one seed; a failing run prints its seed.
The same guarantee over RESP, through ``hearsay serve``: tests/runtime/test_durability.py.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import cast

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hearsay.engine.data_dir import fold_entry_blobs
from hearsay.engine.families import countmin
from hearsay.engine.replica import Replica
from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.store import SqliteStore
from hearsay.resp.cluster_commands import ClusterControl
from hearsay.resp.commands import ClientContext
from hearsay.resp.server_commands import build_registry
from tests.support.big_key_child import PREFILL_ITEMS, item
from tests.support.command_client import NoServer
from tests.support.nodes import start_node

pytestmark = [pytest.mark.crash]

CHILD = Path(__file__).parents[1] / "support" / "big_key_child.py"
ROOT = Path(__file__).parents[2]
READ_DEADLINE_S = 120.0  # a poll deadline for the child's next lines
CYCLES = 2
KILL_AFTER_ACKS = (50, 400)
SEEDS = (
    [int(os.environ["HEARSAY_CRASH_LARGE_SEED"])]
    if "HEARSAY_CRASH_LARGE_SEED" in os.environ
    else [11]
)


class Child:
    """One child run: its acknowledged writes and the folds it started."""

    def __init__(self, data_dir: Path, mode: str, start: int) -> None:
        env = {**os.environ, "BIG_KEY_CHILD_START": str(start), "PYTHONPATH": str(ROOT)}
        self.stderr_path = data_dir.with_suffix(f".{start}.stderr")
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(CHILD), str(data_dir), mode],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        self.acks: list[int] = []
        self.folds = 0
        self.ready = False
        self.eof = False
        self._buffer = b""

    def read_until(self, done: str, count: int = 0) -> None:
        """Read lines until ``ready``, ``count`` acks or ``count`` folds (or EOF)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + READ_DEADLINE_S
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not self.eof and not self._reached(done, count):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out waiting for {done} {count}: {len(self.acks)} acks, "
                        f"{self.folds} folds; {self.stderr_path.read_text()[-2000:]}"
                    )
                if selector.select(timeout=min(remaining, 0.5)):
                    self._feed(os.read(fd, 1 << 16))

    def _reached(self, done: str, count: int) -> bool:
        if done == "ready":
            return self.ready
        return (len(self.acks) if done == "acks" else self.folds) >= count

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            self.eof = True
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line == b"ready":
                self.ready = True
            elif line.startswith(b"a "):
                self.acks.append(int(line[2:]))
            elif line.startswith(b"f "):
                self.folds = max(self.folds, int(line[2:]))

    def kill(self) -> None:
        assert self.proc.poll() is None, f"child exited: {self.stderr_path.read_text()[-2000:]}"
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL
        self.read_until("eof", 1 << 60)  # what it wrote before dying
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def check_everything_acknowledged(data_dir: Path, acked: list[int], kills: int = 1) -> None:
    """Reopen the data directory: every acknowledged write is there, the count is exact up to
    one unacknowledged increment per kill so far (committed, killed before its ack)."""
    with SqliteStore(data_dir) as store:
        store.check_integrity()
    registry = build_registry(NoServer(), cast(ClusterControl, object()))
    replica = Replica.open(data_dir, FsyncPolicy.ALWAYS, now_ms=1, commands=registry)
    session = ClientContext(client_id=1, db=replica)
    try:
        now_ms = int(time.time() * 1000)
        assert replica.stats.corrupt_entries_skipped == 0
        items = [item(i) for i in acked]
        present = replica.execute(session, [b"BF.MEXISTS", b"bf", *items], now_ms)
        assert isinstance(present, list)
        lost = [i for i, hit in zip(acked, present, strict=True) if hit != 1]
        assert lost == [], f"acknowledged BF.ADDs lost: {lost[:10]}"
        total = countmin.info(replica, b"cms", now_ms).count
        increments = total - PREFILL_ITEMS
        assert len(acked) <= increments <= len(acked) + kills, (
            f"count-min total {increments} after {len(acked)} acknowledged increments "
            f"and {kills} kills"
        )
    finally:
        replica.close(int(time.time() * 1000))


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_while_writing_big_keys_loses_no_acknowledged_write(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    acked: list[int] = []
    folds = 0
    for cycle in range(CYCLES):
        kill_after = rng.randint(*KILL_AFTER_ACKS)
        print(f"seed={seed} cycle={cycle} kill_after={kill_after} "
              f"(rerun: HEARSAY_CRASH_LARGE_SEED={seed})")  # fmt: skip
        child = Child(data_dir, "run", start=len(acked) and acked[-1] + 1)
        try:
            child.read_until("ready")
            child.read_until("acks", kill_after)
            child.kill()
        finally:
            child.close()
        acked += child.acks
        folds += child.folds
        check_everything_acknowledged(data_dir, acked, kills=cycle + 1)
    print(f"seed={seed}: acked={len(acked)} folds={folds}")
    assert folds > 0, "no fold ran: the test did not exercise the delta log's folds"


def test_kill_9_in_the_middle_of_a_fold_loses_nothing_and_the_fold_runs_again(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    child = Child(data_dir, "hold", start=0)
    try:
        child.read_until("ready")
        child.read_until("folds", 1)  # held inside its first fold, its transaction open
        child.kill()
    finally:
        child.close()
    assert child.acks, "nothing was acknowledged before the fold"
    with SqliteStore(data_dir) as store:
        pending = store.delta_count()
    assert pending > 0  # the fold never committed: its rows are all still there
    check_everything_acknowledged(data_dir, child.acks)
    # The interrupted fold runs again and the state is the same after it.
    with SqliteStore(data_dir) as store:
        for key in store.pending_deltas():
            assert store.fold(key, fold_entry_blobs) > 0
        assert store.delta_count() == 0
    check_everything_acknowledged(data_dir, child.acks)


# ---------------------------------------------------------------------------- over RESP

SERVER_CLIENTS = 4
SERVER_KILL_AFTER_ACKS = (300, 1_500)
SERVER_WRITES_PER_CLIENT_MAX = 20_000  # bounds each thread if the kill never comes
ACK_WAIT_S = 120.0


@pytest.mark.integration
@pytest.mark.parametrize("seed", SEEDS)
def test_hearsay_serve_killed_under_a_big_key_load_keeps_every_acknowledged_write(
    tmp_path: Path, seed: int
) -> None:
    """``hearsay serve --fsync always``: clients BF.ADD to a 1M-capacity filter and
    CMS.INCRBY a 20000x7 sketch; kill -9 after a seeded number of acks; a lone restart holds
    every acknowledged item, and the sketch's total counts every acknowledged increment
    (plus at most one in flight per client)."""
    rng = random.Random(seed)
    kill_after = rng.randint(*SERVER_KILL_AFTER_ACKS)
    print(f"seed={seed} kill_after={kill_after} (rerun: HEARSAY_CRASH_LARGE_SEED={seed})")
    data_dir = tmp_path / "node"
    node = start_node(data_dir, "--fsync", "always")
    setup = node.client()
    fill = [f"fill-{i}" for i in range(PREFILL_ITEMS)]
    setup.execute_command("BF.RESERVE", "bf", "0.01", "1000000")
    setup.execute_command("BF.MADD", "bf", *fill)
    setup.execute_command("CMS.INITBYDIM", "cms", "20000", "7")
    setup.execute_command("CMS.INCRBY", "cms", *[p for name in fill for p in (name, "1")])
    setup.close()
    acked = threading.Semaphore(0)
    killed = threading.Event()
    items: list[list[str]] = [[] for _ in range(SERVER_CLIENTS)]
    increments = [0] * SERVER_CLIENTS
    errors: list[BaseException] = []

    def write(index: int) -> None:
        client = node.client(socket_timeout=30, retry=Retry(NoBackoff(), 0))
        try:
            for i in range(SERVER_WRITES_PER_CLIENT_MAX):
                name = f"c{index}-{i}"
                client.execute_command("BF.ADD", "bf", name)
                items[index].append(name)
                acked.release()
                client.execute_command("CMS.INCRBY", "cms", name, "1")
                increments[index] += 1
                acked.release()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if not killed.is_set():
                errors.append(error)
        except BaseException as error:
            errors.append(error)
        finally:
            client.close()

    threads = [
        threading.Thread(target=write, args=(i,), daemon=True) for i in range(SERVER_CLIENTS)
    ]
    try:
        for thread in threads:
            thread.start()
        for n in range(kill_after):
            assert acked.acquire(timeout=ACK_WAIT_S), f"only {n} acks; errors: {errors[:3]}"
        killed.set()
        node.kill()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a writer thread did not stop after the kill"
    finally:
        killed.set()
        node.kill()
    assert errors == [], f"seed={seed}: writers failed before the kill: {errors[:3]}"

    restarted = start_node(data_dir, "--fsync", "always")  # alone: nothing comes from a peer
    try:
        client = restarted.client()
        acked_items = [name for names in items for name in names]
        present = client.execute_command("BF.MEXISTS", "bf", *acked_items)
        lost = [name for name, hit in zip(acked_items, present, strict=True) if hit != 1]
        info = client.execute_command("CMS.INFO", "cms")
        if not isinstance(info, dict):  # redis-py parses CMS.INFO into a dict in some versions
            info = dict(zip(info[::2], info[1::2], strict=True))
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
        total = int(fields["count"]) - PREFILL_ITEMS
        persistence = client.info("persistence")
        print(f"seed={seed}: acked items={len(acked_items)} increments={sum(increments)} "
              f"total={total} lost={len(lost)} {persistence}")  # fmt: skip
        assert lost == [], f"seed={seed}: {len(lost)} acknowledged BF.ADDs lost: {lost[:10]}"
        assert sum(increments) <= total <= sum(increments) + SERVER_CLIENTS
    finally:
        restarted.stop()
