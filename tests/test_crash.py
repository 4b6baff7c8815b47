"""kill -9 in the middle of writes: what each fsync policy promises survives, survives.

A real child process (tests/crash_child.py) writes numbered keys as fast as it can and prints a
line per acknowledged write; we SIGKILL it after a chosen number of acks, wait for it by PID,
reopen the store and compare. The child's and our ``time.monotonic()`` are the same clock
(CLOCK_MONOTONIC is system-wide on Linux), so ack ages are measured against the kill time.

- ``always``: every acknowledged write is present (zero lost).
- ``everysec`` / ``no``: a SIGKILL loses only writes still staged in memory, so every write
  acknowledged more than ``EVERYSEC_LOSS_BOUND_S`` before the kill is present.
- Any policy: what survives is a prefix of the writes (commits are ordered and atomic) and
  every surviving value is intact.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hearsay.persist.store import SqliteStore
from tests.crash_child import blob_for, key_for

CHILD = Path(__file__).with_name("crash_child.py")
EVERYSEC_LOSS_BOUND_S = 1.2
READ_DEADLINE_S = 20.0


@dataclass
class ChildRun:
    acks: dict[int, float] = field(default_factory=dict)  # write number -> ack time
    first_ack_s: float | None = None
    buffer: bytes = b""
    ready: bool = False
    eof: bool = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            self.eof = True
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line == b"ready":
                self.ready = True
            elif line and line != b"done":
                number, at = line.split()
                self.acks[int(number)] = float(at)
                if self.first_ack_s is None:
                    self.first_ack_s = float(at)


def read_until(proc: subprocess.Popen[bytes], run: ChildRun, done: object, what: str) -> None:
    """Read the child's stdout until ``done(run)`` or EOF, failing after READ_DEADLINE_S."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + READ_DEADLINE_S
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not run.eof and not done(run):  # type: ignore[operator]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; {len(run.acks)} acks")
            if selector.select(timeout=min(remaining, 0.5)):
                run.feed(os.read(fd, 1 << 16))


def crash_once(
    data_dir: Path, policy: str, window: int, kill_after_acks: int, min_run_s: float
) -> tuple[ChildRun, float, dict[bytes, bytes]]:
    stderr_path = data_dir.with_suffix(".stderr")
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), policy, str(window)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    run = ChildRun()
    try:
        read_until(proc, run, lambda r: r.ready, "the child to open its store")

        def enough(r: ChildRun) -> bool:
            if len(r.acks) < kill_after_acks or r.first_ack_s is None:
                return False
            return time.monotonic() - r.first_ack_s >= min_run_s

        read_until(proc, run, enough, f"{kill_after_acks} acks")
        assert proc.poll() is None, f"child exited early: {stderr_path.read_text()[-2000:]}"
        kill_s = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        read_until(proc, run, lambda r: False, "the rest of the child's output")  # to EOF
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    with SqliteStore(data_dir) as store:
        store.check_integrity()
        present = dict(store.load())
    return run, kill_s, present


def check_common(run: ChildRun, present: dict[bytes, bytes]) -> int:
    """Survivors are a prefix of the writes with intact values; returns the prefix length."""
    survivors = len(present)
    for i in range(survivors):
        assert present.get(key_for(i)) == blob_for(i), f"write {i} missing or damaged"
    assert run.acks, "the child acknowledged nothing"
    return survivors


@pytest.mark.crash
@pytest.mark.parametrize(
    ("window", "kill_after_acks"), [(1, 300), (8, 2_000), (32, 12_000)], ids=str
)
def test_always_loses_no_acknowledged_write(
    tmp_path: Path, window: int, kill_after_acks: int
) -> None:
    run, _, present = crash_once(tmp_path / "data", "always", window, kill_after_acks, 0.0)
    survivors = check_common(run, present)
    lost = sorted(i for i in run.acks if key_for(i) not in present)
    print(
        f"always window={window}: acked={len(run.acks)} present={survivors} "
        f"lost_acked={len(lost)} unacked_present={survivors - len(run.acks)}"
    )
    assert lost == [], f"acknowledged writes lost under always: {lost[:10]}"


@pytest.mark.crash
@pytest.mark.parametrize(
    ("policy", "kill_after_acks", "min_run_s"),
    [("everysec", 1_000, 1.5), ("everysec", 50_000, 2.0), ("everysec", 5_000, 2.5), ("no", 1, 1.5)],
    ids=str,
)
def test_background_policies_lose_at_most_the_last_second(
    tmp_path: Path, policy: str, kill_after_acks: int, min_run_s: float
) -> None:
    run, kill_s, present = crash_once(tmp_path / "data", policy, 1, kill_after_acks, min_run_s)
    survivors = check_common(run, present)
    lost = {i: kill_s - at for i, at in run.acks.items() if key_for(i) not in present}
    too_old = sorted(i for i, age_s in lost.items() if age_s > EVERYSEC_LOSS_BOUND_S)
    oldest_lost_s = max(lost.values(), default=0.0)
    print(
        f"{policy}: acked={len(run.acks)} present={survivors} lost_acked={len(lost)} "
        f"oldest_lost_age={oldest_lost_s * 1000:.0f}ms"
    )
    assert run.first_ack_s is not None and kill_s - run.first_ack_s > EVERYSEC_LOSS_BOUND_S, (
        "the child did not run long enough for the bound to mean anything"
    )
    assert too_old == [], (
        f"{len(too_old)} writes acknowledged more than {EVERYSEC_LOSS_BOUND_S} s before the "
        f"kill were lost (oldest {oldest_lost_s:.3f} s)"
    )
