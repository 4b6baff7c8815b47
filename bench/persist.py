"""How fast the durable store commits under each fsync policy (prints figures; not a test).

Baselines measured in the same run on the same disk:
- ``raw sqlite, one txn``: every row in one executemany transaction (the ceiling for rows/s);
- ``raw sqlite, txn per write FULL``: one fsynced COMMIT per write (what ``always`` would cost
  without group commit).

Workloads per policy (``GroupCommit``):
- ``sequential``: one writer waiting for each ticket before the next write;
- ``pipelined``: one thread staging as fast as it can (under ``always``: 256 writes in flight),
  then ``flush()``;
- ``asyncio x N``: N coroutines, each awaiting its own ticket before its next write (how the
  server uses it; under ``always`` they share commits).

Usage: ``python bench/persist.py [--seconds 1.0] [--blob-bytes 100] [--tasks 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import GroupCommit


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def key(self) -> bytes:
        self.n += 1
        return b"key-%012d" % self.n


def raw_one_txn(path: Path, blob: bytes, seconds: float) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE entries (key BLOB PRIMARY KEY, blob BLOB NOT NULL)")
    rows = 0
    start = time.perf_counter()
    chunk = 50_000
    while time.perf_counter() - start < seconds and rows < 50_000_000:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO entries VALUES (?, ?)",
            ((b"key-%012d" % i, blob) for i in range(rows, rows + chunk)),
        )
        conn.execute("COMMIT")
        rows += chunk
    elapsed = time.perf_counter() - start
    conn.close()
    commits = rows // chunk
    return rows / elapsed, commits / elapsed


def raw_txn_per_write(path: Path, blob: bytes, seconds: float) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE entries (key BLOB PRIMARY KEY, blob BLOB NOT NULL)")
    rows = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds and rows < 10_000_000:
        conn.execute("INSERT INTO entries VALUES (?, ?)", (b"key-%012d" % rows, blob))
        rows += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return rows / elapsed, rows / elapsed


def run_writer(
    data_dir: Path, policy: FsyncPolicy, body: Callable[[GroupCommit], int]
) -> tuple[float, float, float]:
    writer = GroupCommit.open(data_dir, policy)
    try:
        before = writer.stats()
        start = time.perf_counter()
        writes = body(writer)
        writer.flush(timeout_s=120)
        elapsed = time.perf_counter() - start
        after = writer.stats()
    finally:
        writer.close()
    commits = after.commits - before.commits
    rows_per_commit = (after.rows_committed - before.rows_committed) / max(1, commits)
    return writes / elapsed, commits / elapsed, rows_per_commit


def sequential(blob: bytes, seconds: float) -> Callable[[GroupCommit], int]:
    def body(writer: GroupCommit) -> int:
        keys = Counter()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds and keys.n < 10_000_000:
            writer.stage(keys.key(), blob).result(timeout=30)
        return keys.n

    return body


def pipelined(blob: bytes, seconds: float, in_flight: int = 256) -> Callable[[GroupCommit], int]:
    def body(writer: GroupCommit) -> int:
        keys = Counter()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds and keys.n < 50_000_000:
            tickets = [writer.stage(keys.key(), blob) for _ in range(in_flight)]
            if writer.policy is FsyncPolicy.ALWAYS:
                tickets[-1].result(timeout=30)  # all complete together or in order
        return keys.n

    return body


def concurrent_tasks(blob: bytes, seconds: float, tasks: int) -> Callable[[GroupCommit], int]:
    def body(writer: GroupCommit) -> int:
        keys = Counter()

        async def one_task(deadline: float) -> None:
            while time.perf_counter() < deadline and keys.n < 10_000_000:
                ticket = writer.stage(keys.key(), blob)
                if not ticket.done():
                    await asyncio.wrap_future(ticket)
                else:
                    await asyncio.sleep(0)  # let the other tasks run, as a server would

        async def main() -> None:
            deadline = time.perf_counter() + seconds
            await asyncio.gather(*(one_task(deadline) for _ in range(tasks)))

        asyncio.run(main())
        return keys.n

    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--blob-bytes", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=64)
    args = parser.parse_args()
    blob = os.urandom(args.blob_bytes)

    with tempfile.TemporaryDirectory(prefix="hearsay-bench-") as tmp:
        root = Path(tmp)
        base_rows, _ = raw_one_txn(root / "raw1.db", blob, args.seconds)
        base_commits, _ = raw_txn_per_write(root / "raw2.db", blob, args.seconds)
        print(f"blob {args.blob_bytes} B, {args.seconds} s per case, temp dir on the same disk")
        print(f"{'case':44} {'writes/s':>10} {'commits/s':>10} {'rows/commit':>11} {'ratio':>8}")
        print(f"{'raw sqlite, one txn (rows/s baseline)':44} {base_rows:10.0f} {'':>10} {'':>11}")
        print(
            f"{'raw sqlite, txn per write FULL (commits/s)':44} {base_commits:10.0f} "
            f"{base_commits:10.0f} {1:11.1f}"
        )
        for policy in FsyncPolicy:
            cases = [
                ("sequential", sequential(blob, args.seconds)),
                ("pipelined", pipelined(blob, args.seconds)),
                (f"asyncio x {args.tasks}", concurrent_tasks(blob, args.seconds, args.tasks)),
            ]
            for name, body in cases:
                data = root / f"{policy.value}-{name.split()[0]}"
                writes_s, commits_s, rows_per_commit = run_writer(data, policy, body)
                # Ratio: against one-fsync-per-write for ``always``, against the raw row
                # ceiling for the background policies.
                base = base_commits if policy is FsyncPolicy.ALWAYS else base_rows
                label = f"{policy.value}: {name}"
                print(
                    f"{label:44} {writes_s:10.0f} {commits_s:10.0f} {rows_per_commit:11.1f} "
                    f"{writes_s / base:7.2f}x"
                )


if __name__ == "__main__":
    main()
