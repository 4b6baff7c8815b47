"""Sketch ingest throughput: hearsay's in-process sketch code against Redis, same run.

For each sketch, the same batches of random members go through hearsay's batch path and
through a real redis-server (variadic commands, pipelined, via redis-py + hiredis), and the
members/s of both are printed with their ratio. The figures are noisy (shared machine), so
each side runs several rounds and the median is reported. ``hll`` uses members of one length
(like redis-benchmark's keys); ``hll-mixed`` the same comparison with mixed lengths (which the
numpy hash, before the C one, vectorised less well).

    .venv/bin/python bench/sketch_ingest.py                # starts its own redis-server
    .venv/bin/python bench/sketch_ingest.py --redis-port 6379
    .venv/bin/python bench/sketch_ingest.py --only hll --batches 500

Adding a sketch (Bloom, count-min) means writing one ``bench_<name>(ctx) -> Comparison``
function and registering it in ``BENCHES``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.redis_reference import RedisUnavailableError, reference_redis

from hearsay.engine.database import Database
from hearsay.lattice.vector import MaxVector
from hearsay.persist.identity import NodeIdentity
from hearsay.sketch import hll
from hearsay.sketch.bloom import BloomFilter
from hearsay.sketch.countmin import CountMinSketch
from hearsay.sketch.hyperloglog import HyperLogLog

START_DEADLINE_S = 15.0
STOP_DEADLINE_S = 10.0


@dataclass(frozen=True)
class Measurement:
    label: str
    items_per_s: float


@dataclass(frozen=True)
class Comparison:
    sketch: str
    ours: Measurement
    baseline: Measurement

    @property
    def ratio(self) -> float:
        return self.ours.items_per_s / self.baseline.items_per_s


@dataclass(frozen=True)
class Context:
    redis: Any
    batches: list[list[bytes]]
    rounds: int
    pipeline_depth: int
    seed: int

    @property
    def members(self) -> int:
        return sum(len(b) for b in self.batches)


def make_batches(seed: int, batches: int, batch_size: int) -> list[list[bytes]]:
    """Random members like redis-benchmark's ``__rand_int__`` keys, as bytes."""
    rng = random.Random(seed)
    return [
        [f"member:{rng.getrandbits(48):015d}".encode() for _ in range(batch_size)]
        for _ in range(batches)
    ]


def make_mixed_batches(seed: int, batches: int, batch_size: int) -> list[list[bytes]]:
    """Random members of mixed lengths (8 to 27 bytes: ``member:`` and 1 to 20 digits), so
    hashing cannot rely on every member of a batch having one length."""
    rng = random.Random(seed)
    return [
        [f"member:{rng.getrandbits(rng.randint(1, 64))}".encode() for _ in range(batch_size)]
        for _ in range(batches)
    ]


def _interleaved_medians(
    items: int, rounds: int, runs: dict[str, Callable[[], None]]
) -> list[Measurement]:
    """Alternate the contenders round by round (so load from elsewhere hits both alike) and
    return each one's median rate."""
    rates: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(rounds):
        for label, run in runs.items():
            t0 = time.perf_counter()
            run()
            rates[label].append(items / (time.perf_counter() - t0))
    return [Measurement(label, statistics.median(r)) for label, r in rates.items()]


# ---------------------------------------------------------------------------------------------
# HyperLogLog


_DATABASE = Database(NodeIdentity("0123456789abcdef", 1))


def _hearsay_hll(batches: list[list[bytes]]) -> None:
    """PFADD as the engine runs it: the view's pairs written through the database's funnel
    (keyspace merge with delta and content-hash upkeep; no disk, no network). Like the Redis
    side, each round starts by deleting the key."""
    view = HyperLogLog(hll.REDIS_PRECISION)
    schema = view.schema
    _DATABASE.delete([b"bench:hll"], 0)
    for batch in batches:
        _DATABASE.write_pairs_own(b"bench:hll", schema, *view.add(batch), 0)


def _redis_pfadd(client: Any, batches: list[list[bytes]], depth: int) -> None:
    client.delete("bench:hll")
    pipe = client.pipeline(transaction=False)
    for i, batch in enumerate(batches, 1):
        pipe.pfadd("bench:hll", *batch)
        if i % depth == 0:
            pipe.execute()
    pipe.execute()


def _compare_hll(ctx: Context, name: str, batches: list[list[bytes]]) -> Comparison:
    ours, theirs = _interleaved_medians(
        ctx.members,
        ctx.rounds,
        {
            "hearsay PFADD (view + Database.write_pairs_own)": lambda: _hearsay_hll(batches),
            f"Redis PFADD x{len(batches[0])} members, pipeline {ctx.pipeline_depth}": (
                lambda: _redis_pfadd(ctx.redis, batches, ctx.pipeline_depth)
            ),
        },
    )
    return Comparison(name, ours, theirs)


def bench_hll(ctx: Context) -> Comparison:
    return _compare_hll(ctx, "hll", ctx.batches)


def bench_hll_mixed(ctx: Context) -> Comparison:
    """The same comparison with members of mixed lengths (the general hashing path)."""
    return _compare_hll(
        ctx, "hll-mixed", make_mixed_batches(ctx.seed, len(ctx.batches), len(ctx.batches[0]))
    )


# ---------------------------------------------------------------------------------------------
# Bloom filter and count-min. Debian's redis-server has no RedisBloom module, so the baseline
# is Redis's own variadic sketch ingest (PFADD) of the same batches, measured in the same run.


def _hearsay_bloom(batches: list[list[bytes]]) -> None:
    """BF.MADD as the engine will run it: read which members are new, merge the delta."""
    bf = BloomFilter.reserve(0.01, sum(len(b) for b in batches))
    vector = MaxVector()
    for batch in batches:
        pairs, _added = bf.madd(vector, batch)
        vector.merge_pairs(*pairs)


def _hearsay_cms(batches: list[list[bytes]]) -> None:
    """CMS.INCRBY by one origin, each member by 1: estimates returned, own slice raised."""
    cms = CountMinSketch.by_prob(0.001, 0.01)
    slices: dict[str, MaxVector] = {"bench": MaxVector()}
    for batch in batches:
        pairs, _estimates = cms.incrby(slices, "bench", batch, [1] * len(batch))
        slices["bench"].merge_pairs(*pairs)


def bench_bloom(ctx: Context) -> Comparison:
    ours, theirs = _interleaved_medians(
        ctx.members,
        ctx.rounds,
        {
            "hearsay Bloom madd + merge (1%, cap = all)": lambda: _hearsay_bloom(ctx.batches),
            f"Redis PFADD x{len(ctx.batches[0])} (no RedisBloom)": (
                lambda: _redis_pfadd(ctx.redis, ctx.batches, ctx.pipeline_depth)
            ),
        },
    )
    return Comparison("bloom", ours, theirs)


def bench_cms(ctx: Context) -> Comparison:
    ours, theirs = _interleaved_medians(
        ctx.members,
        ctx.rounds,
        {
            "hearsay CMS incrby + merge (2000 x 7)": lambda: _hearsay_cms(ctx.batches),
            f"Redis PFADD x{len(ctx.batches[0])} (no RedisBloom)": (
                lambda: _redis_pfadd(ctx.redis, ctx.batches, ctx.pipeline_depth)
            ),
        },
    )
    return Comparison("cms", ours, theirs)


BENCHES: dict[str, Callable[[Context], Comparison]] = {
    "hll": bench_hll,
    "hll-mixed": bench_hll_mixed,
    "bloom": bench_bloom,
    "cms": bench_cms,
}


# ---------------------------------------------------------------------------------------------
# redis-server


@contextmanager
def redis_server() -> Iterator[int]:
    """A private redis-server on a free loopback port, stopped by its PID afterwards."""
    try:
        with reference_redis() as port:
            yield port
    except RedisUnavailableError as error:
        raise SystemExit(f"{error} (or pass --redis-port)") from None


def _run(args: argparse.Namespace, port: int) -> list[Comparison]:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=120)
    try:
        ctx = Context(
            redis=client,
            batches=make_batches(args.seed, args.batches, args.batch_size),
            rounds=args.rounds,
            pipeline_depth=args.pipeline,
            seed=args.seed,
        )
        names = args.only or list(BENCHES)
        return [BENCHES[name](ctx) for name in names]
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHES))
    parser.add_argument("--batches", type=int, default=300, help="batches per round")
    parser.add_argument("--batch-size", type=int, default=1000, help="members per batch")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median is shown")
    parser.add_argument("--pipeline", type=int, default=16, help="Redis commands per flush")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis-port", type=int, help="use a running server on 127.0.0.1")
    args = parser.parse_args(argv)

    if args.redis_port is not None:
        results = _run(args, args.redis_port)
    else:
        with redis_server() as port:
            results = _run(args, port)

    members = args.batches * args.batch_size
    print(
        f"{members:,} members per round in batches of {args.batch_size:,}, median of "
        f"{args.rounds} rounds"
    )
    for c in results:
        print(f"[{c.sketch}] {c.ours.label:<48} {c.ours.items_per_s / 1e6:8.2f} M members/s")
        print(
            f"[{c.sketch}] {c.baseline.label:<48} {c.baseline.items_per_s / 1e6:8.2f} M members/s"
        )
        print(f"[{c.sketch}] ratio hearsay / Redis: {c.ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
