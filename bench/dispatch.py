"""PFADD through the in-process command path: registry dispatch plus reply encoding, no sockets.

This is the part of a request that hearsay's own code owns (the asyncio transport and the
parser come on top), so it bounds what ``redis-benchmark -t pfadd`` can reach at ``-P 1``.
As a baseline measured in the same run, PING through the same path shows the fixed cost of
dispatch and encoding. Members are random, as redis-benchmark's ``__rand_int__`` makes them.

    .venv/bin/python bench/dispatch.py
    .venv/bin/python bench/dispatch.py --commands 200000 --members 1
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from hearsay.engine.database import Database
from hearsay.persist.identity import NodeIdentity
from hearsay.resp.commands import ClientContext
from hearsay.resp.replies import encode
from hearsay.resp.server_commands import build_registry


class _NoServer:
    def info_sections(self) -> dict[str, dict[str, object]]:
        return {}

    def config_values(self) -> dict[str, str]:
        return {}


def _rate(run: Callable[[], None], commands: int, rounds: int) -> float:
    """Median commands/s over ``rounds`` runs of ``commands`` commands."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        rates.append(commands / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=1, help="members per PFADD")
    parser.add_argument("--keys", type=int, default=1, help="distinct keys written")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    registry = build_registry(_NoServer())
    database = Database(NodeIdentity("0123456789abcdef", 1))
    ctx = ClientContext(client_id=1, db=database, now_ms=1_700_000_000_000)
    requests = [
        [b"PFADD", b"key:%d" % rng.randrange(args.keys)]
        + [b"element:%012d" % rng.randrange(10**12) for _ in range(args.members)]
        for _ in range(args.commands)
    ]
    pings = [[b"PING"] for _ in range(args.commands)]
    dispatch = registry.dispatch

    def run_pfadd() -> None:
        for request in requests:
            encode(dispatch(ctx, request), 2)

    def run_ping() -> None:
        for request in pings:
            encode(dispatch(ctx, request), 2)

    run_pfadd()  # warm up: the key exists and its vector is dense from here on
    pfadd = _rate(run_pfadd, args.commands, args.rounds)
    ping = _rate(run_ping, args.commands, args.rounds)
    print(f"PING  (baseline): {ping:12,.0f} commands/s  {1e6 / ping:7.2f} us each")
    print(
        f"PFADD {args.members} member(s): {pfadd:12,.0f} commands/s  {1e6 / pfadd:7.2f} us each"
        f"  ({pfadd / ping:.2f}x PING)"
    )
    print(f"PFCOUNT after: {dispatch(ctx, [b'PFCOUNT', b'key:0'])}")


if __name__ == "__main__":
    main()
