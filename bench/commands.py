"""Every command family under redis-benchmark: hearsay against redis-server in the same run.

Issue 13's table. Each row is one command, run by ``redis-benchmark -c 50`` at ``-P 1`` and
``-P 16``, to one key and to many keys (``__rand_int__`` in the key, ``-r``), against:

- ``redis``: a redis-server started here (stopped by PID), running the row's reference command:
  the same command where Redis has it; Redis's own ``PFADD`` where it has none (Bloom,
  count-min, VMAX: RedisBloom is not available here, and issue 13 measured its rates within
  0.3-1x of PFADD's), marked "stand-in" in the output;
- ``lone``: one real ``hearsay serve`` process, default preset (lan), membership on, no peers;
- ``cluster``: node 0 of a 3-node cluster of real processes on loopback (lan, membership on),
  every write sent to that one node.

Contenders alternate within each round (their order rotates round by round) and every figure
is the median of the rounds, printed with its range: the machine is shared and noisy. After the
load, every key a row wrote must be the same on all three cluster nodes (polled with a deadline).

Targets (issue 13): every row on the lone node >= 0.5x Redis at -P 1 and >= 0.25x at -P 16
(rows against the PFADD stand-in: >= 0.5x and >= 0.1x); every write row on the cluster >= 0.5x
the lone node, both pipelines; all cluster nodes agree after the load; BF.ADD on a 1M-capacity
filter >= 0.8x on a 1k one; CMS.INCRBY on 20000x7 >= 0.8x on 100x3 (``--full`` rows). Also
in ``--full``: issue 16's TOPK.ADD, TDIGEST.ADD and CF.ADD (>= 0.5x Redis's PFADD at -P 1) and
issue 17's windowed keys (writes >= 0.8x the plain key's). Each such pair is judged in every
shape both rows run in: lone node and cluster, one key and many, both pipelines. SET of HLL
bytes is not measured: redis-benchmark takes arguments from its command line, which cannot
carry the NUL bytes an HLL holds.

    python bench/commands.py [--requests 20000] [--rounds 3] [--full] [--only PFADD ...]
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from bench.verdict import Verdicts, add_arguments, spread
from tests.support.nodes import Cluster, NodeProcess
from tests.support.redis_reference import RedisUnavailableError, reference_redis

PIPELINES = (1, 16)
CLIENTS = 50
LONE_TARGET = {1: 0.5, 16: 0.25}
STANDIN_TARGET = {1: 0.5, 16: 0.1}
CLUSTER_TARGET = 0.5
PAIR_TARGET = 0.8
REFERENCE_PIPELINED_FACTOR = 10
"""Redis's runs at -P 16 take this many times ``--requests``: 20,000 of them took it 14-50 ms
(1.2-1.5M requests a second), so its figure swung from 370k to 1.1M between rounds and the
ratios with it (INCR over many keys read 0.09x in one run, 0.17x in the next); at 200,000 it
holds 1.3-1.5M. hearsay's runs keep ``--requests`` (0.15-0.6 s each at -P 16), so the keys
they write stay the size the rows were designed for."""
CLUSTER_NODES = 3
FORM_DEADLINE_S = 60.0
AGREE_DEADLINE_S = 30.0
BENCHMARK_TIMEOUT_S = 1800
RAND = "__rand_int__"
PFADD_STANDIN = ("PFADD", "{key}", RAND)
DISTINCT = RAND + RAND
"""An item few calls repeat (two random numbers: a million of them under -r 1000), for rows
whose writes must keep writing: BF.ADD of 1,000 items answers from a read once each is in,
so a 1M-capacity filter never grew past 7,000 bits and the 1M/1k pair compared reads."""


@dataclass(frozen=True)
class Row:
    """One command of the table; ``{key}`` stands for the row's key (one, or ``__rand_int__``
    spread); ``setup`` runs on every server for each key before the load."""

    name: str
    command: tuple[str, ...]
    reference: tuple[str, ...] | None = None  # None: the same command on Redis
    setup: tuple[tuple[str, ...], ...] = ()
    write: bool = True
    full_only: bool = False
    one_key_only: bool = False  # large keys: a thousand of them would not fit in memory
    standin: bool = False  # Redis has no such command: its PFADD stands in (issue 13)
    deletes: bool = False  # its keys end absent everywhere: that is agreement (DEL)


PREFILL_HLL = tuple(("PFADD", "{key}", *(f"m{i}-{j}" for j in range(100))) for i in range(40))
PREFILL_MERGED = PREFILL_HLL + tuple(
    ("PFADD", "{key}:src", *(f"s{i}-{j}" for j in range(100))) for i in range(40)
)
"""PFMERGE's keys: a dense HLL merged with another dense one (not with an absent source, which
leaves hearsay nothing to do)."""
ROWS = (
    Row("PFADD", ("PFADD", "{key}", RAND)),
    Row("PFCOUNT", ("PFCOUNT", "{key}"), setup=PREFILL_HLL, write=False),
    Row("INCR", ("INCR", "{key}")),
    Row("GET", ("GET", "{key}"), setup=(("INCRBY", "{key}", "41"),), write=False),
    Row(
        "BF.ADD",
        ("BF.ADD", "{key}", DISTINCT),
        PFADD_STANDIN,
        standin=True,
        setup=(("BF.RESERVE", "{key}", "0.01", "1000"),),
    ),
    Row(
        "BF.EXISTS",
        ("BF.EXISTS", "{key}", RAND),
        PFADD_STANDIN,
        standin=True,
        setup=(("BF.RESERVE", "{key}", "0.01", "1000"), ("BF.ADD", "{key}", "000000000001")),
        write=False,
    ),
    Row(
        "CMS.INCRBY",
        ("CMS.INCRBY", "{key}", RAND, "1"),
        PFADD_STANDIN,
        standin=True,
        setup=(("CMS.INITBYDIM", "{key}", "2000", "5"),),
    ),
    Row(
        "CMS.QUERY",
        ("CMS.QUERY", "{key}", RAND),
        PFADD_STANDIN,
        standin=True,
        setup=(("CMS.INITBYDIM", "{key}", "2000", "5"),),
        write=False,
    ),
    Row("PFCOUNT3", ("PFCOUNT", "{key}", "{key}:b", "{key}:c"), full_only=True, write=False),
    Row("PFMERGE", ("PFMERGE", "{key}", "{key}:src"), setup=PREFILL_MERGED, full_only=True),
    Row("INCRBY", ("INCRBY", "{key}", "7"), full_only=True),
    Row("DECRBY", ("DECRBY", "{key}", "7"), full_only=True),
    Row(
        "BF.MADD",
        ("BF.MADD", "{key}", RAND, RAND, RAND),
        ("PFADD", "{key}", RAND, RAND, RAND),
        standin=True,
        setup=(("BF.RESERVE", "{key}", "0.01", "1000"),),
        full_only=True,
    ),
    Row(
        "BF.ADD 1k",
        ("BF.ADD", "{key}", DISTINCT),
        PFADD_STANDIN,
        standin=True,
        setup=(("BF.RESERVE", "{key}", "0.01", "1000"),),
        full_only=True,
        one_key_only=True,
    ),
    Row(
        "BF.ADD 1M",
        ("BF.ADD", "{key}", DISTINCT),
        PFADD_STANDIN,
        standin=True,
        setup=(("BF.RESERVE", "{key}", "0.01", "1000000"),),
        full_only=True,
        one_key_only=True,
    ),
    Row(
        "CMS.INCRBY 100x3",
        ("CMS.INCRBY", "{key}", RAND, "1"),
        PFADD_STANDIN,
        standin=True,
        setup=(("CMS.INITBYDIM", "{key}", "100", "3"),),
        full_only=True,
        one_key_only=True,
    ),
    Row(
        "CMS.INCRBY 20000x7",
        ("CMS.INCRBY", "{key}", RAND, "1"),
        PFADD_STANDIN,
        standin=True,
        setup=(("CMS.INITBYDIM", "{key}", "20000", "7"),),
        full_only=True,
        one_key_only=True,
    ),
    # Fixed indexes: __rand_int__ is zero-padded, which an integer argument refuses (as Redis's).
    Row("VMAX", ("VMAX", "{key}", "7", "3"), PFADD_STANDIN, full_only=True, standin=True),
    Row(
        "VGET",
        ("VGET", "{key}"),
        ("GET", "{key}"),
        setup=(("VMAX", "{key}", "1", "5", "70", "9"),),
        write=False,
        full_only=True,
    ),
    Row(
        "BF.EXISTS 1M",
        ("BF.EXISTS", "{key}", RAND),
        PFADD_STANDIN,
        setup=(("BF.RESERVE", "{key}", "0.01", "1000000"), ("BF.ADD", "{key}", "000000000001")),
        write=False,
        full_only=True,
        one_key_only=True,
        standin=True,
    ),
    Row(
        "CMS.QUERY 20000x7",
        ("CMS.QUERY", "{key}", RAND),
        PFADD_STANDIN,
        setup=(("CMS.INITBYDIM", "{key}", "20000", "7"),),
        write=False,
        full_only=True,
        one_key_only=True,
        standin=True,
    ),
    # Issue 16's families and issue 17's windowed keys: refused (so missed) until they exist.
    Row(
        "TOPK.ADD",
        ("TOPK.ADD", "{key}", RAND),
        PFADD_STANDIN,
        setup=(("TOPK.RESERVE", "{key}", "10"),),
        full_only=True,
        standin=True,
    ),
    Row(
        "TDIGEST.ADD",
        ("TDIGEST.ADD", "{key}", RAND),
        PFADD_STANDIN,
        setup=(("TDIGEST.CREATE", "{key}", "COMPRESSION", "100"),),
        full_only=True,
        standin=True,
    ),
    Row(
        "CF.ADD",
        # Distinct items (two random numbers: a million of them under -r 1000) into a filter
        # with room for every add of the run. CF.ADD adds a copy each time, and an item's two
        # buckets hold 4 copies per sub-filter: 1,000 items added again and again, or 31,500
        # into 1,000 slots, filled all 32 sub-filters in a round or two, and from then on the
        # row measured "Filter is full" (as RedisBloom's would answer).
        ("CF.ADD", "{key}", DISTINCT),
        PFADD_STANDIN,
        setup=(("CF.RESERVE", "{key}", "1000000"),),
        full_only=True,
        standin=True,
    ),
    Row(
        "CF.EXISTS",
        ("CF.EXISTS", "{key}", RAND),
        PFADD_STANDIN,
        setup=(("CF.RESERVE", "{key}", "1000"), ("CF.ADD", "{key}", "000000000001")),
        write=False,
        full_only=True,
        standin=True,
    ),
    # Windowed PFADD against plain PFADD of distinct members: with RAND's 1,000 members a plain
    # key answers every PFADD from a read once it holds them, while a windowed key's current
    # slice starts empty every W/SLICES = 6 s and writes again (reads against writes: 0.55x).
    Row("PFADD distinct", ("PFADD", "{key}", DISTINCT), full_only=True),
    Row(
        "PFADD windowed",
        ("PFADD", "{key}", DISTINCT),
        setup=(("HEARSAY.PFRESERVE", "{key}", "14", "WINDOW", "60"),),
        full_only=True,
    ),
    Row(
        "BF.ADD windowed",
        ("BF.ADD", "{key}", DISTINCT),
        PFADD_STANDIN,
        setup=(("BF.RESERVE", "{key}", "0.01", "1000", "WINDOW", "60"),),
        full_only=True,
        standin=True,
    ),
    Row(
        "CMS.INCRBY windowed",
        ("CMS.INCRBY", "{key}", RAND, "1"),
        PFADD_STANDIN,
        setup=(("CMS.INITBYDIM", "{key}", "2000", "5", "WINDOW", "60"),),
        full_only=True,
        standin=True,
    ),
    Row(
        "TOPK.ADD windowed",
        ("TOPK.ADD", "{key}", RAND),
        PFADD_STANDIN,
        setup=(("TOPK.RESERVE", "{key}", "10", "WINDOW", "60"),),
        full_only=True,
        standin=True,
    ),
    Row("DEL", ("DEL", "{key}"), setup=(("INCR", "{key}"),), full_only=True, deletes=True),
    Row("EXPIRE", ("EXPIRE", "{key}", "100000"), setup=(("INCR", "{key}"),), full_only=True),
)
RATIO_PAIRS = (
    ("BF.ADD 1M", "BF.ADD 1k"),
    ("CMS.INCRBY 20000x7", "CMS.INCRBY 100x3"),
    ("PFADD windowed", "PFADD distinct"),
    ("BF.ADD windowed", "BF.ADD"),
    ("CMS.INCRBY windowed", "CMS.INCRBY"),
    ("TOPK.ADD windowed", "TOPK.ADD"),
)
"""(this, that): this row's rate must be >= PAIR_TARGET x that one's in every shape both rows
run in (lone node and cluster, one key and many, each pipeline): issue 13, a write's cost does
not grow with the key; issue 17, a windowed key is as fast to write as a plain one."""


CREATES_SKETCH = (
    "BF.RESERVE", "CMS.INITBYDIM", "VMAX", "TOPK.RESERVE", "TDIGEST.CREATE", "CF.RESERVE",
    "HEARSAY.PFRESERVE",
)  # fmt: skip


def redis_setup_command(command: tuple[str, ...]) -> tuple[str, ...] | None:
    """What Redis runs for a setup step: the same where it has the command; a PFADD standing
    in for creating a sketch it has no type for (so its reads find a key); else nothing."""
    if command[0] in CREATES_SKETCH:
        return ("PFADD", command[1], "seed")
    if command[0] in ("BF.ADD", "CF.ADD"):
        return None
    return command


@dataclass(frozen=True)
class Case:
    """One row in one key shape at one pipeline depth."""

    row: Row
    many_keys: bool
    pipeline: int

    @property
    def label(self) -> str:
        keys = "many keys" if self.many_keys else "one key"
        return f"{self.row.name} ({keys}, -P {self.pipeline})"

    def key(self) -> str:
        name = self.row.name.replace(" ", "-").lower()
        return f"bench:{name}:{RAND}" if self.many_keys else f"bench:{name}"

    def args(self, reference: bool) -> list[str]:
        command = self.row.reference if reference and self.row.reference else self.row.command
        return [part.replace("{key}", self.key()) for part in command]


def cases(rows: list[Row]) -> list[Case]:
    return [
        Case(row, many, pipeline)
        for row in rows
        for many in (False, True)
        if not (many and row.one_key_only)
        for pipeline in PIPELINES
    ]


def keys_of(case: Case, keyspace: int) -> list[str]:
    """Every concrete key a case touches (``__rand_int__`` expanded the way redis-benchmark
    does: 12 digits, zero-padded, below ``-r``)."""
    if not case.many_keys:
        return [case.key()]
    return [case.key().replace(RAND, f"{i:012d}") for i in range(keyspace)]


def prepare(client: redis.Redis, case: Case, keyspace: int, reference: bool) -> str | None:
    """Create the case's keys; returns the server's error, if the command itself fails."""
    try:
        pipe = client.pipeline(transaction=False)
        for key in keys_of(case, keyspace):
            for step in case.row.setup:
                command = redis_setup_command(step) if reference else step
                if command is not None:
                    pipe.execute_command(*(part.replace("{key}", key) for part in command))
        pipe.execute()
        sample = [part.replace(RAND, "000000000001") for part in case.args(reference)]
        client.execute_command(*sample)
    except redis.ResponseError as error:
        return str(error)
    return None


class ServerRefusedError(RuntimeError):
    """redis-benchmark stopped at an error reply (it exits on the first, so no rate)."""


def rate(port: int, case: Case, requests: int, keyspace: int, reference: bool) -> float:
    """Requests per second, as redis-benchmark reports it."""
    done = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(CLIENTS),
         "-n", str(requests), "-P", str(case.pipeline), "-r", str(keyspace), "--csv",
         *case.args(reference)],
        check=False, capture_output=True, text=True, timeout=BENCHMARK_TIMEOUT_S,
    )  # fmt: skip
    rows = [row for row in csv.reader(io.StringIO(done.stdout)) if row and row[0] != "test"]
    if done.returncode != 0 or not rows or "Error from server" in done.stdout + done.stderr:
        lines = (done.stdout + done.stderr).strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()]  # (not the CSV header)
        said = errors or lines or [f"exit {done.returncode}"]
        raise ServerRefusedError(said[0])
    return float(rows[-1][1])  # inf when the run took under 1 ms: judged as not measured


def wait_formed(nodes: list[NodeProcess]) -> None:
    """Until every node lists every node alive (membership on), or fail."""
    deadline = time.monotonic() + FORM_DEADLINE_S
    while True:
        views = []
        for node in nodes:
            with node.client() as client:
                rows = client.execute_command("HEARSAY.MEMBERS")
            views.append(sum(row[2] == b"alive" for row in rows))
        if all(alive == len(nodes) for alive in views):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the cluster did not form within {FORM_DEADLINE_S:g} s: {views}")
        time.sleep(0.2)


def start_nodes(cluster: Cluster) -> tuple[NodeProcess, list[NodeProcess]]:
    """A lone node and a formed 3-node cluster, every one on the default preset (lan)."""
    lone = cluster.start("lone", "--preset", "lan")
    first = cluster.start("c0", "--preset", "lan")
    members = [first] + [
        cluster.start(f"c{i}", "--preset", "lan", "--join", first.gossip)
        for i in range(1, CLUSTER_NODES)
    ]
    wait_formed(members)
    return lone, members


STATE_READS: dict[bytes, tuple[tuple[str, ...], ...]] = {
    b"none": (),
    b"string": (("GET",),),  # counters, and HLLs in Redis's format
    b"vector": (("VGET",),),
    b"MBbloom--": (("BF.CARD",), ("BF.INFO",)),
    b"CMSk-TYPE": (("CMS.INFO",),),
    b"TDIS-TYPE": (("TDIGEST.INFO",),),
    b"MBbloomCF": (("CF.INFO",),),
    b"TopK-TYPE": (("TOPK.LIST",),),
}
"""What shows a key's replicated state, by TYPE (hearsay has no DUMP): exact for strings and
vectors, the cardinality and counts for Bloom filters and count-min sketches."""


def key_states(node: NodeProcess, keys: list[str]) -> list[object]:
    """Each key's TYPE and what its reads return on one node; None where no read is known."""
    with node.client() as client:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        types = pipe.execute(raise_on_error=False)
        known = [STATE_READS.get(t) if isinstance(t, bytes) else None for t in types]
        pipe = client.pipeline(transaction=False)
        for key, reads in zip(keys, known, strict=True):
            for read in reads or ():
                pipe.execute_command(*read, key)
        replies = iter(pipe.execute(raise_on_error=False))
    states: list[object] = []
    for kind, reads in zip(types, known, strict=True):
        answers = [next(replies) for _ in reads or ()]
        unreadable = reads is None or any(isinstance(a, Exception) for a in answers)
        states.append(None if unreadable else repr((kind, answers)))
    return states


def disagreeing_keys(
    nodes: list[NodeProcess], keys: list[str], *, absent_agrees: bool = False
) -> tuple[int, float]:
    """Keys whose replicated state still differs between the cluster's nodes at the deadline.

    A key whose state a node would not show (no known read, or an error reply) counts as
    differing: agreement that was never read is not agreement. So does every key when no node
    holds any of them (the writes were refused: nothing was replicated, nothing agrees), unless
    ``absent_agrees`` (a DEL's keys end absent everywhere). Also returns the seconds the
    polling took (0 when the nodes agreed at the first read).
    """
    start = time.monotonic()
    deadline = start + AGREE_DEADLINE_S
    absent = repr((b"none", []))
    while True:
        per_node = [key_states(node, keys) for node in nodes]
        columns = list(zip(*per_node, strict=True))
        differ = sum(None in column or len(set(column)) > 1 for column in columns)
        if not absent_agrees and all(state == absent for column in columns for state in column):
            differ = len(keys)
        if not differ or time.monotonic() > deadline:
            return differ, time.monotonic() - start
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per redis-benchmark run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keyspace", type=int, default=1000, help="-r: keys in many-key runs")
    parser.add_argument("--full", action="store_true", help="every row, not only the core ones")
    parser.add_argument("--only", action="append", help="rows by name (e.g. PFADD)")
    add_arguments(parser)
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        raise SystemExit("redis-benchmark is not installed (Debian: redis-tools)")
    verdicts = Verdicts.from_args(args)
    rows = [
        r for r in ROWS if (args.full or not r.full_only) and (not args.only or r.name in args.only)
    ]
    if not rows:
        raise SystemExit(f"no row matches {args.only}")
    all_cases = cases(rows)
    rates: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], str] = {}
    try:
        with reference_redis() as redis_port, tempfile.TemporaryDirectory() as root:
            cluster = Cluster(Path(root))
            try:
                lone, members = start_nodes(cluster)
                contenders = {
                    "redis": redis_port,
                    "lone": lone.resp_port,
                    "cluster": members[0].resp_port,
                }
                load(args, all_cases, contenders, rates, errors, members=members)
                agreement = {
                    f"{case.row.name} ({'many keys' if case.many_keys else 'one key'})": (
                        disagreeing_keys(
                            members, keys_of(case, args.keyspace), absent_agrees=case.row.deletes
                        )
                    )
                    for case in all_cases
                    if case.row.write and case.pipeline == PIPELINES[0]
                }
            finally:
                cluster.close()
    except RedisUnavailableError as error:
        raise SystemExit(f"commands.py needs redis-server beside hearsay: {error}") from None
    report(args, all_cases, rates, errors, agreement, verdicts)
    return verdicts.finish("commands.py")


def load(
    args: argparse.Namespace,
    all_cases: list[Case],
    contenders: dict[str, int],
    rates: dict[tuple[str, str], list[float]],
    errors: dict[tuple[str, str], str],
    *,
    members: list[NodeProcess],
) -> None:
    """Prepare every case on every server, then the alternating rounds of redis-benchmark.

    The rounds start once the cluster's nodes agree on every prepared key: the setup (a
    thousand prefilled HLLs and more) is replicated in the background, and a row measured
    meanwhile measured that replication too (PFADD to one key on the cluster read 3-6k/s as
    the first row, 43-55k/s on a quiet cluster).
    """
    shapes = {(case.row, case.many_keys): case for case in all_cases}  # keys are per shape
    for name, port in contenders.items():
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=60) as client:
            for shape, case in shapes.items():
                error = prepare(client, case, args.keyspace, name == "redis")
                for other in all_cases:
                    if error and (other.row, other.many_keys) == shape:
                        errors[(name, other.label)] = error
    prepared = sorted({key for case in shapes.values() for key in keys_of(case, args.keyspace)})
    differ, waited_s = disagreeing_keys(members, prepared, absent_agrees=True)
    print(
        f"cluster agreed on the {len(prepared):,} prepared keys after {waited_s:.1f} s"
        if not differ
        else f"cluster: {differ:,} of {len(prepared):,} prepared keys still differ after"
        f" {waited_s:.1f} s; measuring anyway",
        flush=True,
    )
    for round_no in range(args.rounds):
        order = list(contenders)
        order = order[round_no % len(order) :] + order[: round_no % len(order)]
        for case in all_cases:
            for name in order:
                if (name, case.label) in errors:
                    continue
                try:
                    reference = name == "redis"
                    requests = args.requests * (
                        REFERENCE_PIPELINED_FACTOR if reference and case.pipeline > 1 else 1
                    )
                    figure = rate(contenders[name], case, requests, args.keyspace, reference)
                except ServerRefusedError as error:
                    errors[(name, case.label)] = f"under load: {error}"
                    continue
                rates.setdefault((name, case.label), []).append(figure)
        print(f"round {round_no + 1} of {args.rounds} done", flush=True)


def report(  # noqa: PLR0917
    args: argparse.Namespace,
    all_cases: list[Case],
    rates: dict[tuple[str, str], list[float]],
    errors: dict[tuple[str, str], str],
    agreement: dict[str, tuple[int, float]],
    verdicts: Verdicts,
) -> None:
    def median(name: str, case: Case) -> float | None:
        values = rates.get((name, case.label))
        figure = statistics.median(values) if values else None
        return figure if figure is not None and math.isfinite(figure) else None

    print(
        f"redis-benchmark -c {CLIENTS} -n {args.requests} (Redis at -P 16:"
        f" {args.requests * REFERENCE_PIPELINED_FACTOR}) -r {args.keyspace}, median of "
        f"{args.rounds} alternating rounds; lone = 1 node, cluster = node 0 of {CLUSTER_NODES}"
        f" (lan preset, membership on); 'stand-in' = Redis has no such command, its PFADD"
        f" stands in (no RedisBloom here)"
    )
    print(f"{'case':<40}{'redis/s':>11}{'lone/s':>11}{'cluster/s':>11}{'lone/redis':>11}")
    for case in all_cases:
        figures = [median(name, case) for name in ("redis", "lone", "cluster")]
        shown = "".join(f"{f:>11,.0f}" if f is not None else f"{'error':>11}" for f in figures)
        redis_figure, lone_figure = figures[0], figures[1]
        shown_ratio = (
            f"{lone_figure / redis_figure:>11.2f}"
            if redis_figure is not None and lone_figure is not None
            else ""
        )
        standin = "  stand-in" if case.row.standin else ""
        print(f"{case.label:<40}{shown}{shown_ratio}{standin}")
        for name in ("redis", "lone", "cluster"):
            if (name, case.label) in rates:
                print(f"    {name:<8} {spread(rates[(name, case.label)])}")
    for (name, label), error in sorted(errors.items()):
        print(f"  {name} refused {label}: {error}")
    print("targets:")
    for case in all_cases:
        redis_rate, lone_rate, cluster_rate = (
            median(name, case) for name in ("redis", "lone", "cluster")
        )
        bound = (STANDIN_TARGET if case.row.standin else LONE_TARGET)[case.pipeline]
        ratio = lone_rate / redis_rate if lone_rate and redis_rate else None
        reference = "Redis " + (case.row.reference or case.row.command)[0]
        verdicts.check(f"{case.label}: lone node / {reference}", ratio, ">=", bound, "x")
        if case.row.write:
            ratio = cluster_rate / lone_rate if cluster_rate and lone_rate else None
            verdicts.check(f"{case.label}: cluster / lone node", ratio, ">=", CLUSTER_TARGET, "x")
    for label, (differ, seconds) in agreement.items():
        verdicts.check(
            f"{label}: keys differing between cluster nodes after the load",
            differ,
            "<=",
            0,
            note=f"polled for {seconds:.1f} s of at most {AGREE_DEADLINE_S:g} s",
        )
    names = {case.label: case for case in all_cases}
    for this, that in RATIO_PAIRS:
        for keys in ("one key", "many keys"):
            for pipeline in PIPELINES:
                ours = names.get(f"{this} ({keys}, -P {pipeline})")
                theirs = names.get(f"{that} ({keys}, -P {pipeline})")
                if ours is None or theirs is None:
                    continue
                for name in ("lone", "cluster"):
                    this_rate, that_rate = median(name, ours), median(name, theirs)
                    ratio = this_rate / that_rate if this_rate and that_rate else None
                    verdicts.check(
                        f"{this} / {that}, {name}, {keys}, -P {pipeline}",
                        ratio,
                        ">=",
                        PAIR_TARGET,
                        "x",
                    )


if __name__ == "__main__":
    sys.exit(main())
