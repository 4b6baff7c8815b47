"""Run every benchmark in bench/, judge each, and exit non-zero if any target was missed.

``make bench`` (or ``make bench-short``) runs the short mode, a few minutes in all: every
benchmark on small sizes and few rounds, its targets judged as in the full mode (a short run's
figures are noisier, not easier). ``make bench-full`` runs the full sizes. Every benchmark runs
even when an earlier one missed; the summary lists each one's status and the exit status is 1
if any missed a target, 2 if any failed to run at all.

``--mode tiny`` (sizes that only check the harness) and ``--target-scale`` (passed to every
benchmark, see bench/verdict.py) are for tests/project/test_bench_harness.py.

    .venv/bin/python bench/run_all.py [--mode short|full|tiny] [--only commands.py ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TIMEOUT_S = {"tiny": 600, "short": 1800, "full": 6 * 3600}
EXIT_MISSED = 1
EXIT_BROKEN = 2

MODES: dict[str, dict[str, list[str]]] = {
    "tiny": {
        "commands.py": ["--requests", "2000", "--rounds", "1", "--keyspace", "20"],
        "memory.py": [
            "--small", "200", "--dense", "3", "--rounds", "1", "--bloom-capacity", "20000",
            "--only", "small-node", "--only", "dense", "--only", "bloom-node",
        ],
        "cluster20.py": ["--nodes", "3", "--trials", "3", "--kills", "1"],
        "sim_targets.py": ["--nodes", "10", "--quick"],
        "sketch_ingest.py": ["--batches", "10", "--batch-size", "100", "--rounds", "2"],
        "resp_parse.py": ["--commands", "2000", "--rounds", "2"],
        "dispatch.py": ["--commands", "2000", "--rounds", "2", "--keys", "10"],
        "persist.py": ["--seconds", "0.1", "--rounds", "1", "--tasks", "8"],
        "big_keys.py": ["--writes", "200", "--rounds", "1", "--prefill", "0.05", "--skip-fill"],
        "window_memory.py": ["--keys", "2", "--items", "100", "--rounds", "1"],
        "big_requests.py": ["--items", "2000", "--only", "BF.MEXISTS", "--only", "MGET"],
    },
    "short": {
        "commands.py": ["--requests", "2000", "--rounds", "2", "--keyspace", "100"],
        "memory.py": [
            "--small", "5000", "--dense", "20", "--rounds", "2", "--bloom-capacity", "100000",
        ],
        "cluster20.py": ["--nodes", "5", "--trials", "10", "--kills", "1"],
        "sim_targets.py": ["--nodes", "50", "--quick"],
        "sketch_ingest.py": ["--batches", "50", "--rounds", "3"],
        "resp_parse.py": ["--commands", "50000", "--rounds", "3"],
        "dispatch.py": ["--commands", "20000", "--rounds", "3"],
        "persist.py": ["--seconds", "0.5", "--rounds", "2"],
        "big_keys.py": ["--writes", "1000", "--rounds", "2", "--prefill", "0.2"],
        "window_memory.py": ["--keys", "5", "--items", "300", "--rounds", "2"],
        "big_requests.py": ["--items", "200000"],
    },
    "full": {
        "commands.py": ["--full"],
        "memory.py": [],
        "cluster20.py": [],
        "sim_targets.py": [],
        "sketch_ingest.py": [],
        "resp_parse.py": [],
        "dispatch.py": [],
        "persist.py": [],
        "big_keys.py": [],
        "window_memory.py": [],
        "big_requests.py": [],
    },
}  # fmt: skip


def run_one(script: str, args: list[str], timeout_s: float, misses: list[str] | None = None) -> str:
    """Run one benchmark, passing its output through; "met", "missed" or "broken". The
    targets it lists as missed are appended to ``misses``.

    A miss is exit 1 together with the benchmark's own summary line (bench/verdict.py), so
    that a traceback (also exit 1) is not taken for a judged miss.
    """
    print(f"===== {script} {' '.join(args)}", flush=True)
    started = time.monotonic()
    summary = ""
    process = subprocess.Popen(
        [sys.executable, "-u", str(BENCH_DIR / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    timer = threading.Timer(timeout_s, process.kill)  # bounded: a hung benchmark is killed
    timer.start()
    try:
        for line in process.stdout:  # ends when the process exits (or is killed)
            print(line, end="", flush=True)
            if line.startswith(f"{script}: "):
                summary = line
            elif summary and line.startswith("  - ") and misses is not None:
                misses.append(f"{script}: {line[4:].rstrip()}")
        status = process.wait()
    finally:
        timer.cancel()
    print(f"===== {script}: exit {status} after {time.monotonic() - started:.0f} s", flush=True)
    if status == 0 and "targets met" in summary:
        return "met"
    if status == EXIT_MISSED and "MISSED" in summary:
        return "missed"
    return "broken"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--mode", choices=sorted(MODES), default="short")
    parser.add_argument("--only", action="append", choices=sorted(MODES["full"]))
    parser.add_argument("--target-scale", help="passed to every benchmark (harness checks)")
    args = parser.parse_args()
    extra = ["--target-scale", args.target_scale] if args.target_scale is not None else []
    misses: list[str] = []
    outcomes = {
        script: run_one(script, [*script_args, *extra], TIMEOUT_S[args.mode], misses)
        for script, script_args in MODES[args.mode].items()
        if not args.only or script in args.only
    }
    print(f"===== summary ({args.mode} mode)")
    shown = {"met": "all targets met", "missed": "MISSED targets", "broken": "FAILED to run"}
    for script, outcome in outcomes.items():
        print(f"  {script:<18} {shown[outcome]}")
    if misses:
        print(f"{len(misses)} targets missed:")
        for miss in misses:
            print(f"  - {miss}")
    if "broken" in outcomes.values():
        return EXIT_BROKEN
    return EXIT_MISSED if "missed" in outcomes.values() else 0


if __name__ == "__main__":
    sys.exit(main())
