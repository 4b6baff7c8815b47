"""PFADD through the in-process command path, storage behind it: dispatch, replies, flushes.

This is the part of a request that hearsay's own code owns (the asyncio transport and the
parser come on top), so it bounds what a node can reach under ``redis-benchmark -P 16``. The
database is a real one (``Replica.open``: SQLite in WAL mode, the group-commit writer thread,
fsync everysec) and, as the server's housekeeping does, every 200 ms the dirty keys are staged
for the writer. Members are random, as redis-benchmark's ``__rand_int__`` makes them, to one
key or spread over ``--keys``.

Baselines in the same run, alternating round by round: PING through the same path (the fixed
cost of dispatch and encoding, printed), and a redis-server started here under
``redis-benchmark -c 50 -P 16 -r`` running the same PFADDs. Target: in-process PFADD >= 0.25x
Redis's PFADD at -P 16 (issue 13's -P 16 target, which the whole server cannot meet if this
part alone misses it). Exit 1 on a miss.

    .venv/bin/python bench/dispatch.py [--commands 100000] [--members 1] [--keys 1]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.verdict import Verdicts, add_arguments, spread
from tests.support.command_client import NoServer
from tests.support.redis_reference import RedisUnavailableError, reference_redis

from hearsay.engine.replica import Replica
from hearsay.persist.fsync import FsyncPolicy
from hearsay.resp.commands import ClientContext
from hearsay.resp.replies import Reply, encode
from hearsay.resp.server_commands import build_registry
from hearsay.runtime.server import FLUSH_INTERVAL_S

CLOCK_EVERY = 256  # commands between two looks at the clock
TARGET_RATIO = 0.25
FLUSH_TIMEOUT_S = 60.0


def _timed(run: Callable[[], None], commands: int) -> float:
    start = time.perf_counter()
    run()
    return commands / (time.perf_counter() - start)


def redis_pfadd_rate(port: int, args: argparse.Namespace) -> float:
    """redis-benchmark's requests/s for the same PFADDs, 16 pipelined, on redis-server."""
    members = ["__rand_int__"] * args.members
    key = "key:__rand_int__" if args.keys > 1 else "key:0"
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "50",
         "-n", str(args.commands), "-P", "16", "-r", str(max(args.keys, 10**8)), "--csv",
         "PFADD", key, *members],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout  # fmt: skip
    return float(list(csv.reader(io.StringIO(out)))[-1][1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=1, help="members per PFADD")
    parser.add_argument("--keys", type=int, default=1, help="distinct keys written")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    add_arguments(parser)
    args = parser.parse_args()
    verdicts = Verdicts.from_args(args)
    if shutil.which("redis-benchmark") is None:
        raise SystemExit("redis-benchmark is not installed (Debian: redis-tools)")

    rng = random.Random(args.seed)
    registry = build_registry(NoServer())

    def fresh_requests() -> list[list[bytes]]:
        """New random members every round: a repeated member raises no register."""
        return [
            [b"PFADD", b"key:%d" % rng.randrange(args.keys)]
            + [b"element:%012d" % rng.randrange(10**12) for _ in range(args.members)]
            for _ in range(args.commands)
        ]

    pings = [[b"PING"] for _ in range(args.commands)]
    # PFADD and PING never answer WAIT's WaitForAcks: typed as plain replies once, not cast
    # per call inside the timed loop.
    dispatch = cast(Callable[[ClientContext, list[bytes]], Reply], registry.dispatch)
    rates: dict[str, list[float]] = {"pfadd": [], "ping": [], "redis": []}
    try:
        with reference_redis() as redis_port, tempfile.TemporaryDirectory() as root:
            database = Replica.open(Path(root) / "data", FsyncPolicy.EVERYSEC, None)
            try:
                ctx = ClientContext(client_id=1, db=database, now_ms=1_700_000_000_000)

                def run(batch: list[list[bytes]]) -> Callable[[], None]:
                    def go() -> None:
                        next_flush = time.perf_counter() + FLUSH_INTERVAL_S
                        for i, request in enumerate(batch):
                            encode(dispatch(ctx, request), 2)
                            if i % CLOCK_EVERY == 0 and time.perf_counter() >= next_flush:
                                database.flush()
                                next_flush = time.perf_counter() + FLUSH_INTERVAL_S
                        ticket = database.flush()
                        if ticket is not None:
                            ticket.result(timeout=FLUSH_TIMEOUT_S)

                    return go

                run(fresh_requests())()  # warm up: the keys exist, their vectors dense
                for _ in range(args.rounds):
                    rates["pfadd"].append(_timed(run(fresh_requests()), args.commands))
                    rates["ping"].append(_timed(run(pings), args.commands))
                    rates["redis"].append(redis_pfadd_rate(redis_port, args))
                stored = database.stats.entries_flushed
                count = dispatch(ctx, [b"PFCOUNT", b"key:0"])
            finally:
                database.close()
    except RedisUnavailableError as error:
        raise SystemExit(f"dispatch.py needs redis-server beside hearsay: {error}") from None

    print(
        f"{args.commands:,} commands per round, {args.members} member(s) per PFADD, "
        f"{args.keys} key(s), {args.rounds} alternating rounds; {stored:,} entries flushed "
        f"to storage; PFCOUNT key:0 after: {count}"
    )
    print(f"PING in-process (fixed cost) commands/s: {spread(rates['ping'])}")
    print(f"PFADD in-process with storage commands/s: {spread(rates['pfadd'])}")
    print(f"Redis PFADD, redis-benchmark -c 50 -P 16 requests/s: {spread(rates['redis'])}")
    print("targets:")
    ratio = statistics.median(rates["pfadd"]) / statistics.median(rates["redis"])
    verdicts.check("in-process PFADD / Redis PFADD at -P 16", ratio, ">=", TARGET_RATIO, "x")
    return verdicts.finish("dispatch.py")


if __name__ == "__main__":
    sys.exit(main())
