"""kill -9 in the middle of writes: what each fsync policy promises survives, survives.

A real child process (tests/support/crash_child.py) drives the group committer, writing
numbered keys as fast as it can, and prints a line per acknowledged write and, after each group
of acks, how many writes the committer had committed. We SIGKILL it once it reached chosen
counts (no clock: counts only), wait for it by PID, reopen the store and compare.

- ``always``: every acknowledged write is present (zero lost).
- ``everysec`` / ``no``: a SIGKILL loses only writes still staged in memory, so every write the
  child saw committed before the kill is present.
- Any policy: what survives is a prefix of the writes (commits are ordered and atomic) and
  every surviving value is intact.

(The acknowledged-write guarantee through the real server, over RESP: tests/runtime/
test_durability.py.)
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hearsay.persist.store import SqliteStore
from tests.support.crash_child import blob_for, key_for

CHILD = Path(__file__).parents[1] / "support" / "crash_child.py"
READ_DEADLINE_S = 120.0  # a poll deadline: how long to wait for the child's next counts


@dataclass
class ChildRun:
    acks: set[int] = field(default_factory=set)  # acknowledged write numbers
    committed: int = 0  # the highest committed count the child reported
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
            elif line.startswith(b"a "):
                self.acks.add(int(line[2:]))
            elif line.startswith(b"c "):
                self.committed = max(self.committed, int(line[2:]))


def read_until(
    proc: subprocess.Popen[bytes], run: ChildRun, done: Callable[[ChildRun], bool], what: str
) -> None:
    """Read the child's stdout until ``done(run)`` or EOF, failing after READ_DEADLINE_S."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + READ_DEADLINE_S
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not run.eof and not done(run):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; {len(run.acks)} acks")
            if selector.select(timeout=min(remaining, 0.5)):
                run.feed(os.read(fd, 1 << 16))


def crash_once(
    data_dir: Path, policy: str, window: int, kill_after_acks: int, kill_after_committed: int
) -> tuple[ChildRun, int, dict[bytes, bytes]]:
    """Run the child until both counts are reached, SIGKILL it; returns (run, committed count
    reported before the kill, what the store holds)."""
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
            return len(r.acks) >= kill_after_acks and r.committed >= kill_after_committed

        what = f"{kill_after_acks} acks and {kill_after_committed} committed"
        read_until(proc, run, enough, what)
        assert proc.poll() is None, f"child exited early: {stderr_path.read_text()[-2000:]}"
        committed_before_kill = run.committed
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
    return run, committed_before_kill, present


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
    run, _, present = crash_once(tmp_path / "data", "always", window, kill_after_acks, 0)
    survivors = check_common(run, present)
    lost = sorted(i for i in run.acks if key_for(i) not in present)
    print(
        f"always window={window}: acked={len(run.acks)} present={survivors} "
        f"lost_acked={len(lost)} unacked_present={survivors - len(run.acks)}"
    )
    assert lost == [], f"acknowledged writes lost under always: {lost[:10]}"


@pytest.mark.crash
@pytest.mark.parametrize(
    ("policy", "kill_after_acks", "kill_after_committed"),
    [("everysec", 1_000, 500), ("everysec", 50_000, 20_000), ("everysec", 5_000, 1), ("no", 1, 1)],
    ids=str,
)
def test_background_policies_lose_only_what_was_not_committed(
    tmp_path: Path, policy: str, kill_after_acks: int, kill_after_committed: int
) -> None:
    run, committed, present = crash_once(
        tmp_path / "data", policy, 1, kill_after_acks, kill_after_committed
    )
    survivors = check_common(run, present)
    lost = sorted(i for i in run.acks if key_for(i) not in present)
    print(
        f"{policy}: acked={len(run.acks)} committed_before_kill={committed} "
        f"present={survivors} lost_acked={len(lost)}"
    )
    assert committed >= kill_after_committed > 0
    assert survivors >= committed, (
        f"{committed - survivors} writes the committer had committed before the kill were lost"
    )
