"""kill -9 while many keys are written: mid-size keys as delta rows, small ones whole.

A real child process (tests/support/many_keys_child.py) drives a real Replica under
``--fsync always`` over twenty dense 2000x5 count-min sketches (10 KB each: staged as delta
rows, folded often) and twenty counters (staged whole), acknowledging each write only after
its flush ticket completed. It is SIGKILLed after a seeded number of acks, restarted on the
same data directory, and killed again. After each kill every acknowledged write must be
there: each counter holds exactly its acknowledged INCRs and each sketch's total count its
acknowledged increments (at most the one write in flight beyond them), and the database
passes SQLite's integrity check.

Set ``HEARSAY_CRASH_MANY_SEED`` to rerun one seed; a failing run prints its seed.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import pytest

from hearsay.engine.families import countmin
from hearsay.engine.replica import Replica
from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.store import SqliteStore
from hearsay.resp.cluster_commands import ClusterControl
from hearsay.resp.commands import ClientContext
from hearsay.resp.server_commands import build_registry
from tests.support.command_client import NoServer
from tests.support.many_keys_child import KEYS, PREFILL_ITEMS

pytestmark = [pytest.mark.crash]

CHILD = Path(__file__).parents[1] / "support" / "many_keys_child.py"
ROOT = Path(__file__).parents[2]
READ_DEADLINE_S = 120.0
CYCLES = 2
KILL_AFTER_ACKS = (60, 300)
SEEDS = (
    [int(os.environ["HEARSAY_CRASH_MANY_SEED"])] if "HEARSAY_CRASH_MANY_SEED" in os.environ else [5]
)


def run_child(data_dir: Path, start: int, kill_after: int) -> list[int]:
    """Start the child at write ``start``, SIGKILL it after ``kill_after`` acks; its acks."""
    stderr_path = data_dir.with_suffix(f".{start}.stderr")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), str(start)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    acks: list[int] = []
    ready = False
    buffer = b""
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + READ_DEADLINE_S
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not (ready and len(acks) >= kill_after):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{len(acks)} acks: {stderr_path.read_text()[-2000:]}"
                if not selector.select(timeout=min(remaining, 0.5)):
                    continue
                chunk = os.read(fd, 1 << 16)
                assert chunk, f"child exited: {stderr_path.read_text()[-2000:]}"
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    ready |= line == b"ready"
                    if line.startswith(b"a "):
                        acks.append(int(line[2:]))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        acks += [int(line[2:]) for line in (buffer + proc.stdout.read()).split(b"\n")
                 if line.startswith(b"a ")]  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    return acks


def check_acknowledged(data_dir: Path, acked: list[int], in_flight: list[int]) -> int:
    """Reopen: every counter and sketch holds its acknowledged writes, and at most those of
    ``in_flight`` (each kill's write after its last ack) beside them; returns how many delta
    rows the store held."""
    with SqliteStore(data_dir) as store:
        store.check_integrity()
        delta_rows = store.delta_count()
    registry = build_registry(NoServer(), cast(ClusterControl, object()))
    replica = Replica.open(data_dir, FsyncPolicy.ALWAYS, now_ms=1, commands=registry)
    session = ClientContext(client_id=1, db=replica)
    try:
        now_ms = int(time.time() * 1000)
        assert replica.stats.corrupt_entries_skipped == 0
        extra_counts = []
        extra_sketch = []
        allowed = [sum(1 for i in in_flight if i % KEYS == k) for k in range(KEYS)]
        for k in range(KEYS):
            want = sum(1 for i in acked if i % KEYS == k)
            got = replica.execute(session, [b"GET", b"ctr-%d" % k], now_ms)
            extra_counts.append(int(cast(bytes, got or b"0")) - want)
            total = countmin.info(replica, b"cms-%d" % k, now_ms).count
            extra_sketch.append(total - PREFILL_ITEMS - want)
        for extras in (extra_counts, extra_sketch):
            assert all(0 <= extra <= most for extra, most in zip(extras, allowed, strict=True)), (
                f"acknowledged writes lost (or unknown ones found): {extras}, {allowed}"
            )
    finally:
        replica.close(int(time.time() * 1000))
    return delta_rows


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_while_writing_many_keys_loses_no_acknowledged_write(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    acked: list[int] = []
    in_flight: list[int] = []
    delta_rows = 0
    for cycle in range(CYCLES):
        kill_after = rng.randint(*KILL_AFTER_ACKS)
        print(f"seed={seed} cycle={cycle} kill_after={kill_after} "
              f"(rerun: HEARSAY_CRASH_MANY_SEED={seed})")  # fmt: skip
        start = in_flight[-1] + 1 if in_flight else 0
        acked += run_child(data_dir, start, kill_after)
        in_flight.append(acked[-1] + 1)
        delta_rows += check_acknowledged(data_dir, acked, in_flight)
    print(f"seed={seed}: acked={len(acked)} delta rows at the reopens={delta_rows}")
    assert delta_rows > 0, "no delta row was left: the mid-size keys were not staged as deltas"
