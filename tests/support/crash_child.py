"""Child process of tests/runtime/test_crash.py: write numbered keys until killed, printing acks.

Usage: ``python crash_child.py DATA_DIR POLICY WINDOW``. Prints ``ready``, then one line per
acknowledged write, ``a <i>``, and after every group of acks a line ``c <n>``: the writer's
committed row count at that moment. Keys are distinct and commits are ordered and atomic, so
``c <n>`` says writes ``0 .. n-1`` were committed (they survive a crash of this process under
every policy). Under ``always`` a write is acknowledged only after its ticket completes,
``WINDOW`` writes in flight at a time; under the other policies right after ``stage`` returns.
Key ``i`` is ``key-<i>`` and its blob is :func:`blob_for` ``(i)``, so the parent can check every
surviving value. Bounded: it stops by itself after ``MAX_WRITES`` writes or ``MAX_SECONDS`` (a
safety net far beyond any kill the parent waits for, never a requirement on speed).
"""

from __future__ import annotations

import os
import sys
import time

from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import GroupCommit

MAX_SECONDS = 240.0
MAX_WRITES = 2_000_000
LINES_PER_WRITE = 64  # acks are written to stdout in small groups (one syscall per group)


def key_for(i: int) -> bytes:
    return b"key-%09d" % i


def blob_for(i: int) -> bytes:
    return (b"value-%d;" % i) * 4


def main() -> None:
    data_dir, policy_name, window_text = sys.argv[1:4]
    policy = FsyncPolicy.parse(policy_name)
    window = max(1, int(window_text))
    writer = GroupCommit.open(data_dir, policy)
    out = sys.stdout.fileno()
    os.write(out, b"ready\n")
    deadline = time.monotonic() + MAX_SECONDS
    lines: list[bytes] = []
    i = 0
    while i < MAX_WRITES and time.monotonic() < deadline:
        if policy is FsyncPolicy.ALWAYS:
            tickets = [(n, writer.stage(key_for(n), blob_for(n))) for n in range(i, i + window)]
            for n, ticket in tickets:
                ticket.result(timeout=30)
                lines.append(b"a %d\n" % n)
            i += window
        else:
            writer.stage(key_for(i), blob_for(i))
            lines.append(b"a %d\n" % i)
            i += 1
        if len(lines) >= LINES_PER_WRITE:
            lines.append(b"c %d\n" % writer.stats().rows_committed)
            os.write(out, b"".join(lines))
            lines.clear()
    os.write(out, b"".join(lines) + b"done\n")
    writer.close()


if __name__ == "__main__":
    main()
