"""How fast does the sans-IO RESP parser turn pipelined bytes into commands?

Not a test: prints commands/s for a few request shapes, and the ratio against a baseline
measured in the same run (redis-py's own RESP reader decoding the same multibulk stream, i.e.
hiredis when installed), so the numbers mean something on a noisy shared machine.

    .venv/bin/python bench/resp_parse.py [--commands N] [--chunk BYTES] [--repeat R]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from hearsay.resp.parser import RequestParser


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
    parser = RequestParser()
    count = 0
    for chunk in chunks:
        parser.feed(chunk)
        for _ in parser:
            count += 1
    return count


def run_redis_py(chunks: list[bytes]) -> int | None:
    """redis-py's reply reader (hiredis if present) on the same bytes: a familiar yardstick."""
    try:
        import hiredis
    except ImportError:
        return None
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


def best_rate(fn: Callable[[list[bytes]], int | None], chunks: list[bytes], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn(chunks)
        elapsed = time.perf_counter() - start
        if count is None:
            return 0.0
        best = max(best, count / elapsed)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--commands", type=int, default=200_000)
    ap.add_argument("--chunk", type=int, default=65536, help="bytes per feed (like a recv)")
    ap.add_argument("--repeat", type=int, default=5)
    ns = ap.parse_args()
    print(
        f"{ns.commands} commands per workload, fed in {ns.chunk}-byte chunks, best of {ns.repeat}"
    )
    print(f"{'workload':24} {'hearsay cmd/s':>14} {'hiredis cmd/s':>14} {'ratio':>7}")
    for name, data in workloads(ns.commands).items():
        chunks = chunks_of(data, ns.chunk)
        ours = best_rate(run_hearsay, chunks, ns.repeat)
        theirs = best_rate(run_redis_py, chunks, ns.repeat) if not name.endswith("(inline)") else 0
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"{name:24} {ours:14,.0f} {theirs:14,.0f} {ratio:>7}")


if __name__ == "__main__":
    main()
