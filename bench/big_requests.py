"""The biggest request of every many-item command: how long it holds a node, how much memory.

"No single request may hold the event loop for long or grow memory without bound": a command
of ``n`` items costs the node O(``n``) in time and memory, never more, whatever the key holds.
A real ``hearsay serve`` node (default preset, storage on) gets, one after another, requests of
``--items`` arguments (the parser takes 1,048,576 at most): BF.MADD into a default filter
(growing a dozen sub-filters), BF.MEXISTS of that filter, BF.INSERT into a 1M-capacity one,
CMS.INCRBY and CMS.QUERY, TOPK.QUERY and TOPK.COUNT, TDIGEST.QUANTILE / CDF / RANK / BYRANK,
CF.MEXISTS (refused past its bound), PFADD, MGET, EXISTS and DEL. For each:

- ``stall``: the longest round trip of a PING another client sends every 2 ms while the
  request runs (the event loop's longest hold, parsing and reply included);
- ``peak``: the growth of the node's peak resident memory (``VmHWM``, reset through
  ``/proc/PID/clear_refs`` before each request) over its resident memory before.

Targets (set by this benchmark, per argument of the request, so they hold at any size):
stall <= ``STALL_PER_ARG_US`` and peak <= ``PEAK_PER_ARG_BYTES`` (the arguments themselves,
as Python bytes in a list, take ~60 bytes each, their wire form ~25 more). Before the C
passes of Bloom filters, a BF.MEXISTS of a million items into a chain of 11 sub-filters
held the node 24 s (24 us an argument) and grew its peak memory 3.9 GB (3.9 KB an argument).
The node is stopped by PID.

    python bench/big_requests.py [--items 1000000] [--only BF.MADD ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from bench.verdict import Verdicts, add_arguments
from tests.support.nodes import NodeProcess, start_node

STALL_PER_ARG_US = 3.0
PEAK_PER_ARG_BYTES = 400
ARGS_MAX = 1024 * 1024
PING_EVERY_S = 0.002
REQUEST_TIMEOUT_S = 600.0
SETTLE_S = 0.3
"""Pause before each request: the node's storage flush of the previous one's writes (off the
event loop, but holding memory for a moment) is not counted against the next."""


@dataclass(frozen=True)
class Case:
    """One request: ``build(n)`` gives its arguments for ``n`` items; ``setup`` runs first."""

    name: str
    build: Callable[[int], list[bytes]]
    setup: tuple[tuple[bytes, ...], ...] = ()


def _items(n: int, prefix: bytes = b"item:") -> list[bytes]:
    return [prefix + b"%d" % i for i in range(n)]


CASES = [
    Case("BF.MADD", lambda n: [b"BF.MADD", b"bf", *_items(n)]),
    Case("BF.MEXISTS", lambda n: [b"BF.MEXISTS", b"bf", *_items(n, b"other:")]),
    Case(
        "BF.INSERT",
        lambda n: [b"BF.INSERT", b"bf1m", b"ITEMS", *_items(n)],
        setup=((b"BF.RESERVE", b"bf1m", b"0.01", b"1000000"),),
    ),
    Case(
        "CMS.INCRBY",
        lambda n: [b"CMS.INCRBY", b"cms", *[x for item in _items(n // 2) for x in (item, b"3")]],
        setup=((b"CMS.INITBYDIM", b"cms", b"2000", b"5"),),
    ),
    Case("CMS.QUERY", lambda n: [b"CMS.QUERY", b"cms", *_items(n)]),
    Case(
        "TOPK.QUERY",
        lambda n: [b"TOPK.QUERY", b"topk", *_items(n)],
        setup=((b"TOPK.RESERVE", b"topk", b"50"), (b"TOPK.ADD", b"topk", b"a", b"b", b"c")),
    ),
    Case("TOPK.COUNT", lambda n: [b"TOPK.COUNT", b"topk", *_items(n)]),
    Case(
        "TDIGEST.QUANTILE",
        lambda n: [b"TDIGEST.QUANTILE", b"td", *[b"%.6f" % (i / n) for i in range(n)]],
        setup=(
            (b"TDIGEST.CREATE", b"td"),
            (b"TDIGEST.ADD", b"td", *[b"%d" % i for i in range(1000)]),
        ),
    ),
    Case("TDIGEST.CDF", lambda n: [b"TDIGEST.CDF", b"td", *[b"%d" % i for i in range(n)]]),
    Case("TDIGEST.RANK", lambda n: [b"TDIGEST.RANK", b"td", *[b"%d" % i for i in range(n)]]),
    Case("TDIGEST.BYRANK", lambda n: [b"TDIGEST.BYRANK", b"td", *[b"%d" % i for i in range(n)]]),
    Case(
        "CF.MEXISTS (refused)",
        lambda n: [b"CF.MEXISTS", b"cf", *_items(n)],
        setup=((b"CF.RESERVE", b"cf", b"100000"),),
    ),
    Case("PFADD", lambda n: [b"PFADD", b"hll", *_items(n)]),
    Case("MGET", lambda n: [b"MGET", *_items(n, b"key:")]),
    Case("EXISTS", lambda n: [b"EXISTS", *_items(n, b"key:")]),
    Case("DEL", lambda n: [b"DEL", *_items(n, b"key:")]),
]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def measure(node: NodeProcess, case: Case, items: int) -> tuple[float, float, str]:
    """``(stall s, peak growth bytes, the reply's start)`` of the case's request."""
    pid = node.process.pid
    client = node.client(socket_timeout=REQUEST_TIMEOUT_S)
    probe = node.client(socket_timeout=REQUEST_TIMEOUT_S)
    for command in case.setup:
        client.execute_command(*command)
    request = case.build(items)
    time.sleep(SETTLE_S)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := the current resident size
    before_kib = _status_kib(pid, "VmRSS")
    worst = [0.0]
    running = threading.Event()
    running.set()

    def ping() -> None:
        while running.is_set():  # bounded: stopped once the request is answered
            start = time.perf_counter()
            probe.ping()
            worst[0] = max(worst[0], time.perf_counter() - start)
            time.sleep(PING_EVERY_S)

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        reply: object = client.execute_command(*request)
    except redis.ResponseError as error:
        reply = error
    finally:
        running.clear()
        pinger.join(timeout=REQUEST_TIMEOUT_S)
    peak_kib = _status_kib(pid, "VmHWM")
    client.close()
    probe.close()
    return worst[0], 1024.0 * max(0, peak_kib - before_kib), repr(reply)[:48]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--items", type=int, default=ARGS_MAX - 4, help="arguments a request")
    parser.add_argument("--only", action="append", default=[], help="a case's name (repeatable)")
    add_arguments(parser)
    args = parser.parse_args()
    verdicts = Verdicts.from_args(args)
    cases = [case for case in CASES if not args.only or case.name in args.only]
    if not cases:
        raise SystemExit(f"no case named {args.only}; cases: {[case.name for case in CASES]}")
    figures: list[tuple[Case, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="hearsay-bigreq-") as tmp:
        node = start_node(Path(tmp) / "node", preset="lan")
        try:
            for case in cases:
                stall_s, peak_bytes, reply = measure(node, case, args.items)
                figures.append((case, stall_s, peak_bytes))
                print(
                    f"{case.name:<22} {args.items:>9,} args: stall {stall_s * 1000:8.1f} ms, "
                    f"peak +{peak_bytes / 2**20:7.1f} MiB  -> {reply}",
                    flush=True,
                )
        finally:
            node.stop()
    print("targets (per argument of the request):")
    for case, stall_s, peak_bytes in figures:
        verdicts.check(
            f"{case.name}: stall per argument", stall_s * 1e6 / args.items, "<=",
            STALL_PER_ARG_US, " us",
        )  # fmt: skip
        verdicts.check(
            f"{case.name}: peak memory per argument", peak_bytes / args.items, "<=",
            PEAK_PER_ARG_BYTES, " B",
        )  # fmt: skip
    return verdicts.finish("big_requests.py")


if __name__ == "__main__":
    sys.exit(main())
