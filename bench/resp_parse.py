"""How fast does the RESP parser turn pipelined bytes into commands, on the server's path?

Times ``RequestParser.parse(chunk)``, the call the server makes once per received chunk (its
fast path reads canonical multibulk commands in C, ``hearsay.resp._reqparse``, keeping a
command a chunk ends inside to read again with the next), for a few request shapes, against
hiredis's bare ``Reader`` (a C RESP reader, redis-py's) decoding the same chunks in the same
run; rounds alternate between the two and the medians are compared (the machine is shared and
noisy).

Target (set by this benchmark, no issue gives one): parse() >= 0.5x the bare reader on every
multibulk shape: the server's whole parse, checks included, costs at most twice a C reader's.
Inline commands have no hiredis baseline (hiredis reads only multibulk) and are printed only.
Exit 1 on a miss.

    .venv/bin/python bench/resp_parse.py [--commands N] [--chunk BYTES] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hiredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.verdict import Verdicts, add_arguments, spread

from hearsay.resp.parser import RequestParser

TARGET_RATIO = 0.5


def multibulk(args: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def workloads(n: int) -> dict[str, bytes]:
    return {
        "PFADD key 3 elements": b"".join(
            multibulk([b"PFADD", b"visitors:%d" % (i % 100), b"u%d" % i, b"v%d" % i, b"w%d" % i])
            for i in range(n)
        ),
        "PING (multibulk)": multibulk([b"PING"]) * n,
        "GET key": b"".join(multibulk([b"GET", b"key:%d" % i]) for i in range(n)),
        "PING (inline)": b"PING\r\n" * n,
    }


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def run_hearsay(chunks: list[bytes]) -> int:
    """The server's loop: one parse() per received chunk, its commands counted."""
    parser = RequestParser()
    count = 0
    for chunk in chunks:
        count += len(parser.parse(chunk))
    if parser.error is not None:
        raise SystemExit(f"the parser refused the workload: {parser.error}")
    return count


def run_hiredis(chunks: list[bytes]) -> int:
    """hiredis's bare reader on the same bytes: the baseline."""
    reader = hiredis.Reader()
    count = 0
    for chunk in chunks:
        reader.feed(chunk)
        while True:  # bounded: every gets() consumes a complete reply or returns False
            item = reader.gets()
            if item is False:
                break
            count += 1
    return count


def rate(fn: Callable[[list[bytes]], int], chunks: list[bytes], commands: int) -> float:
    """Commands per second of one pass; every command must have come out."""
    start = time.perf_counter()
    count = fn(chunks)
    elapsed = time.perf_counter() - start
    if count != commands:
        raise SystemExit(f"{fn.__name__} returned {count} commands of {commands}")
    return count / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--commands", type=int, default=200_000)
    ap.add_argument("--chunk", type=int, default=65536, help="bytes per parse() (like a recv)")
    ap.add_argument("--rounds", type=int, default=5)
    add_arguments(ap)
    ns = ap.parse_args()
    verdicts = Verdicts.from_args(ns)
    print(
        f"{ns.commands} commands per workload, in {ns.chunk}-byte chunks, "
        f"{ns.rounds} alternating rounds"
    )
    ratios: dict[str, float] = {}
    for name, data in workloads(ns.commands).items():
        chunks = chunks_of(data, ns.chunk)
        inline = name.endswith("(inline)")
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(ns.rounds):
            ours.append(rate(run_hearsay, chunks, ns.commands))
            if not inline:
                theirs.append(rate(run_hiredis, chunks, ns.commands))
        print(f"{name}: parse() cmd/s {spread(ours)}")
        if theirs:
            print(f"{name}: hiredis.Reader cmd/s {spread(theirs)}")
            ratios[name] = statistics.median(ours) / statistics.median(theirs)
    print("targets:")
    for name, ratio in ratios.items():
        verdicts.check(f"{name}: parse() / hiredis.Reader", ratio, ">=", TARGET_RATIO, "x")
    return verdicts.finish("resp_parse.py")


if __name__ == "__main__":
    sys.exit(main())
