"""redis-benchmark against redis-server and against a hearsay node, alternating (not a test).

PFADD with random members (``-r``), 50 clients, at ``-P 1`` and ``-P 16``. Both servers run on
loopback in this process's lifetime and are stopped by PID. Figures are medians over rounds,
printed with the hearsay/Redis ratio measured in the same run (the machine is shared and
noisy). Targets (issue 5): hearsay >= 0.5x Redis at -P 1 and >= 0.25x at -P 16.

    python bench/redis_benchmark.py [--requests 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.nodes import start_node
from tests.redis_reference import reference_redis

TARGETS = {1: 0.5, 16: 0.25}


def run_benchmark(port: int, pipeline: int, requests: int) -> float:
    """Requests per second of random-member PFADD, as redis-benchmark reports it."""
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "50",
         "-n", str(requests), "-P", str(pipeline), "-r", "100000000", "--csv",
         "PFADD", "bench:hll", "__rand_int__"],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout  # fmt: skip
    rows = list(csv.reader(io.StringIO(out)))
    return float(rows[-1][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        raise SystemExit("redis-benchmark is not installed (apt-get install redis-tools)")
    results: dict[tuple[str, int], list[float]] = {}
    with reference_redis() as redis_port, tempfile.TemporaryDirectory() as data:
        node = start_node(Path(data) / "node")
        try:
            for _ in range(args.rounds):
                for pipeline in TARGETS:
                    for name, port in (("redis", redis_port), ("hearsay", node.resp_port)):
                        rate = run_benchmark(port, pipeline, args.requests)
                        results.setdefault((name, pipeline), []).append(rate)
        finally:
            node.stop()
    for pipeline in TARGETS:
        ratios = [
            f"{ours / theirs:.2f}"
            for ours, theirs in zip(
                results[("hearsay", pipeline)], results[("redis", pipeline)], strict=True
            )
        ]
        print(f"-P {pipeline}: hearsay/redis per round: {' '.join(ratios)}")
    print(f"PFADD random members, -c 50, {args.requests} requests, median of {args.rounds}")
    print(f"{'pipeline':>9}{'redis req/s':>14}{'hearsay req/s':>16}{'ratio':>8}{'target':>8}")
    met = True
    for pipeline, target in TARGETS.items():
        redis_rate = statistics.median(results[("redis", pipeline)])
        ours = statistics.median(results[("hearsay", pipeline)])
        ratio = ours / redis_rate
        met &= ratio >= target
        print(f"{pipeline:>9}{redis_rate:>14,.0f}{ours:>16,.0f}{ratio:>8.2f}{target:>7.2f}x")
    print("targets met" if met else "targets NOT met")


if __name__ == "__main__":
    main()
