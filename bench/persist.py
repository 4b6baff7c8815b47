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

Targets (set by this benchmark; no issue gives figures): under ``always``, N writers sharing
commits >= 2x one fsynced COMMIT per write (what group commit is for); under ``everysec`` and
``no``, one pipelining writer >= 0.1x the raw one-transaction row rate (the writer thread's
cost per row bounded). Rounds alternate baselines and cases; medians are judged; exit 1 on a
miss.

Usage: ``python bench/persist.py [--seconds 1.0] [--blob-bytes 100] [--tasks 64] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.verdict import Verdicts, add_arguments, spread

from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import GroupCommit

RAW_ROWS = "raw sqlite, one txn (rows/s)"
RAW_COMMITS = "raw sqlite, txn per write FULL"
ALWAYS_GROUP_TARGET = 2.0
BACKGROUND_TARGET = 0.1


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--blob-bytes", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    add_arguments(parser)
    args = parser.parse_args()
    verdicts = Verdicts.from_args(args)
    blob = os.urandom(args.blob_bytes)
    rates: dict[str, list[float]] = {}
    extra: dict[str, list[tuple[float, float]]] = {}

    with tempfile.TemporaryDirectory(prefix="hearsay-bench-") as tmp:
        root = Path(tmp)
        for round_no in range(args.rounds):
            base = root / f"round{round_no}"
            base.mkdir()
            rows_s, _ = raw_one_txn(base / "raw1.db", blob, args.seconds)
            rates.setdefault(RAW_ROWS, []).append(rows_s)
            commits_s, _ = raw_txn_per_write(base / "raw2.db", blob, args.seconds)
            rates.setdefault(RAW_COMMITS, []).append(commits_s)
            for policy in FsyncPolicy:
                cases = [
                    ("sequential", sequential(blob, args.seconds)),
                    ("pipelined", pipelined(blob, args.seconds)),
                    (f"asyncio x {args.tasks}", concurrent_tasks(blob, args.seconds, args.tasks)),
                ]
                for name, body in cases:
                    data = base / f"{policy.value}-{name.split()[0]}"
                    writes_s, commits_s, rows_per_commit = run_writer(data, policy, body)
                    label = f"{policy.value}: {name}"
                    rates.setdefault(label, []).append(writes_s)
                    extra.setdefault(label, []).append((commits_s, rows_per_commit))

    print(
        f"blob {args.blob_bytes} B, {args.seconds} s per case, {args.rounds} rounds (baselines "
        "and cases alternate within each), temp dir on the same disk; writes/s:"
    )
    for label, values in rates.items():
        shown = ""
        if label in extra:
            commits = statistics.median(c for c, _ in extra[label])
            per_commit = statistics.median(r for _, r in extra[label])
            shown = f"; commits/s {commits:,.0f}, rows/commit {per_commit:,.1f}"
        print(f"  {label:<44} {spread(values)}{shown}")
    print("targets:")
    median = {label: statistics.median(values) for label, values in rates.items()}
    always = f"always: asyncio x {args.tasks}"
    verdicts.check(
        f"{always} / {RAW_COMMITS}",
        median[always] / median[RAW_COMMITS],
        ">=",
        ALWAYS_GROUP_TARGET,
        "x",
    )
    for policy_name in ("everysec", "no"):
        label = f"{policy_name}: pipelined"
        verdicts.check(
            f"{label} / {RAW_ROWS}",
            median[label] / median[RAW_ROWS],
            ">=",
            BACKGROUND_TARGET,
            "x",
        )
    return verdicts.finish("persist.py")


if __name__ == "__main__":
    sys.exit(main())
