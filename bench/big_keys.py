"""A write to a big key: its rate, the bytes the node writes for it, and the memory it takes.

Issue 13 item 2: a write's cost proportional to what changed, never to the key's size. For
each contender (a Python interpreter with hearsay installed: this checkout's and, to compare,
another's; rounds alternate them) a real ``hearsay serve`` node is started and:

- ``write``: one client pipelines BF.ADD of fresh items to a 1k- and a 1M-capacity filter,
  and CMS.INCRBY to a 100x3 and a 20000x7 sketch (each first given some data: 500, 100,000,
  1,000 and 100,000 items), for ``--writes`` calls each; printed: calls
  per second, and bytes the node wrote per call (``wchar`` of ``/proc/PID/io``: every write()
  it made, SQLite's WAL and database and the replies, 4 bytes each, included);
- ``fill``: a fresh node reserves a 1M-capacity filter (error 0.01: 9.59 Mbit) and fills it
  with 1M items (BF.MADD of 1,000 items a call); printed: resident memory growth at the end
  and at its peak (``VmHWM``), against the node's resident memory before.

Target (set by this benchmark for issue 13 item 2; bench/commands.py judges the rates): a call
to the big filter and to the big sketch makes the node write at most ``PAGE_BYTES`` (one
SQLite page) per call, median of the rounds, this checkout's node only. Every node is stopped
by PID.

    python bench/big_keys.py [--python OTHER_PYTHON] [--rounds 3] [--writes 3000]
                             [--prefill 1.0] [--fsync everysec] [--skip-fill]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.verdict import Verdicts, add_arguments

READY = re.compile(rb"^hearsay ready .*resp=(?P<resp>\S+)")
START_TIMEOUT_S = 60.0
PIPELINE = 16
PAGE_BYTES = 4096
BIG_ROWS = ("BF.ADD 1M", "CMS.INCRBY 20000x7")
FILL_ITEMS = 1_000_000
FILL_BATCH = 1_000
KEYS = {  # row: (the command creating the key, the command measured, items added first)
    "BF.ADD 1k": (("BF.RESERVE", "k", "0.01", "1000"), "BF.ADD", 500),
    "BF.ADD 1M": (("BF.RESERVE", "k", "0.01", "1000000"), "BF.ADD", 100_000),
    "CMS.INCRBY 100x3": (("CMS.INITBYDIM", "k", "100", "3"), "CMS.INCRBY", 1_000),
    "CMS.INCRBY 20000x7": (("CMS.INITBYDIM", "k", "20000", "7"), "CMS.INCRBY", 100_000),
}


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    port: int

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=120)

    def status_kib(self, field: str) -> int:
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
        return int(match[1]) if match else 0

    def wchar(self) -> int:
        text = Path(f"/proc/{self.process.pid}/io").read_text()
        match = re.search(r"^wchar:\s+(\d+)", text, re.MULTILINE)
        return int(match[1]) if match else 0

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)


def start(python: str, data_dir: Path, fsync: str) -> Node:
    """Start a node whose output goes to a file beside its data directory (read for the
    ready line, polled with a deadline)."""
    args = [
        python, "-m", "hearsay.cli", "serve", "--host", "127.0.0.1", "--port", "0",
        "--gossip-port", "0", "--http-port", "0", "--data-dir", str(data_dir),
        "--preset", "local", "--fsync", fsync,
    ]  # fmt: skip
    log_path = data_dir.with_suffix(".log")
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        for line in log_path.read_bytes().split(b"\n"):
            match = READY.match(line.strip())
            if match:
                return Node(process, int(match["resp"].rsplit(b":", 1)[1]))
        time.sleep(0.05)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    raise SystemExit(f"{python}: the node did not start: {log_path.read_bytes()[-2000:]!r}")


def write_row(node: Node, row: str, writes: int, prefill_scale: float) -> tuple[float, float]:
    """(calls per second, bytes written per call) of one row on a fresh key."""
    create, command, prefill_items = KEYS[row]
    prefill = int(prefill_items * prefill_scale)
    client = node.client()
    key = f"{row}:{time.monotonic_ns()}"
    client.execute_command(create[0], key, *create[2:])
    extra = ("1",) if command == "CMS.INCRBY" else ()
    for start_at in range(0, prefill, FILL_BATCH):  # a hot key that already holds data
        names = [f"pre-{i}" for i in range(start_at, start_at + FILL_BATCH)]
        if command == "CMS.INCRBY":
            client.execute_command("CMS.INCRBY", key, *[p for name in names for p in (name, "1")])
        else:
            client.execute_command("BF.MADD", key, *names)
    time.sleep(0.3)  # the prefill's flushes and commits settle (figures only)
    before = node.wchar()
    started = time.perf_counter()
    done = 0
    while done < writes:  # bounded by the count
        with client.pipeline(transaction=False) as pipe:
            for i in range(done, min(writes, done + PIPELINE)):
                pipe.execute_command(command, key, f"item-{i}", *extra)
            pipe.execute()
        done = min(writes, done + PIPELINE)
    elapsed = time.perf_counter() - started
    time.sleep(0.3)  # the flush timer (50 ms) and the writer's commits settle (figures only)
    client.close()
    return writes / elapsed, (node.wchar() - before) / writes


def fill(python: str, root: Path, fsync: str) -> tuple[float, float, float]:
    """(MiB resident before, growth at the end, growth at the peak) filling a 1M filter."""
    node = start(python, root / "fill", fsync)
    try:
        client = node.client()
        client.execute_command("BF.RESERVE", "bf", "0.01", str(FILL_ITEMS))
        rss_before = node.status_kib("VmRSS")
        peak_before = node.status_kib("VmHWM")
        for start_at in range(0, FILL_ITEMS, FILL_BATCH):
            items = [f"fill-{i}" for i in range(start_at, start_at + FILL_BATCH)]
            client.execute_command("BF.MADD", "bf", *items)
        time.sleep(0.5)
        client.close()
        end = node.status_kib("VmRSS")
        peak = node.status_kib("VmHWM")
    finally:
        node.stop()
    return (
        rss_before / 1024,
        (end - rss_before) / 1024,
        (max(peak, peak_before) - rss_before) / 1024,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", default=[], help="another contender")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--fsync", default="everysec")
    parser.add_argument("--skip-fill", action="store_true")
    parser.add_argument("--prefill", type=float, default=1.0, help="scale the keys' first items")
    add_arguments(parser)
    args = parser.parse_args()
    verdicts = Verdicts.from_args(args)
    contenders = [sys.executable, *args.python]
    rates: dict[tuple[str, str], list[float]] = {}
    written: dict[tuple[str, str], list[float]] = {}
    fills: dict[str, list[tuple[float, float, float]]] = {}
    for round_number in range(args.rounds):
        order = (
            contenders[round_number % len(contenders) :]
            + contenders[: round_number % len(contenders)]
        )
        for python in order:
            with tempfile.TemporaryDirectory(prefix="hearsay-bigkeys-") as tmp:
                node = start(python, Path(tmp) / "write", args.fsync)
                try:
                    for row in KEYS:
                        rate, per_call = write_row(node, row, args.writes, args.prefill)
                        rates.setdefault((python, row), []).append(rate)
                        written.setdefault((python, row), []).append(per_call)
                finally:
                    node.stop()
                if not args.skip_fill:
                    fills.setdefault(python, []).append(fill(python, Path(tmp), args.fsync))
            print(f"round {round_number + 1}: {python} done", flush=True)
    print(f"\n--fsync {args.fsync}, {args.writes} calls per row, pipeline {PIPELINE}, "
          f"medians of {args.rounds} rounds [min..max]")  # fmt: skip
    for python in contenders:
        print(f"\n{python}")
        for row in KEYS:
            r, w = rates[(python, row)], written[(python, row)]
            print(
                f"  {row:20s} {statistics.median(r):9.0f} calls/s [{min(r):.0f}..{max(r):.0f}]"
                f"  {statistics.median(w):10.0f} B written/call [{min(w):.0f}..{max(w):.0f}]"
            )
        big, small = rates[(python, "BF.ADD 1M")], rates[(python, "BF.ADD 1k")]
        print(f"  BF.ADD 1M / 1k: {statistics.median(big) / statistics.median(small):.2f}x")
        big, small = rates[(python, "CMS.INCRBY 20000x7")], rates[(python, "CMS.INCRBY 100x3")]
        ratio = statistics.median(big) / statistics.median(small)
        print(f"  CMS.INCRBY 20000x7 / 100x3: {ratio:.2f}x")
        if python in fills:
            runs = fills[python]
            print(
                "  fill 1M-capacity filter: resident before "
                f"{statistics.median(r[0] for r in runs):.1f} MiB, growth at the end "
                f"{statistics.median(r[1] for r in runs):.1f} MiB "
                f"[{min(r[1] for r in runs):.1f}..{max(r[1] for r in runs):.1f}], at the peak "
                f"{statistics.median(r[2] for r in runs):.1f} MiB "
                f"[{min(r[2] for r in runs):.1f}..{max(r[2] for r in runs):.1f}]"
            )

    print("targets:")
    for row in BIG_ROWS:
        verdicts.check(
            f"{row}: bytes the node wrote per call",
            statistics.median(written[(sys.executable, row)]),
            "<=",
            PAGE_BYTES,
            " B",
        )
    return verdicts.finish("big_keys.py")


if __name__ == "__main__":
    sys.exit(main())
