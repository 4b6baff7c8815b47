"""``hearsay sim``: run one seeded simulation and print its metrics (``--json``) or a summary.

Why this module exists: a failing seed must be one command away from being reproduced, and
the benchmark figures must come from the same code the tests run. Exit status: 0 when the run
converged and every checker passed, 1 otherwise (the reproduce command is printed to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from hearsay.sim.config import (
    BurstLossSpec,
    ClockStepSpec,
    CrashSpec,
    PartitionSpec,
    PlantedBugs,
    SimConfig,
    SkewSpec,
)
from hearsay.sim.world import Simulation


def _node_config(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--node-config wants NAME=VALUE, got {item!r}")
        out[name] = float(value) if "." in value else int(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hearsay sim", description=__doc__)
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loss", type=float, default=0.0, help="datagram loss probability")
    p.add_argument("--duplicate", type=float, default=0.0, help="duplication probability")
    p.add_argument("--delay-ms", default="1:10", help="MIN:MAX one-way delay (jitter reorders)")
    p.add_argument("--preset", choices=("lan", "wan", "local"), default="lan")
    p.add_argument("--duration-s", type=float, default=20.0, help="safety phase (with faults)")
    p.add_argument("--heal-s", type=float, default=60.0, help="liveness phase limit")
    p.add_argument("--writes", type=int, default=100)
    p.add_argument("--keys", type=int, default=16)
    p.add_argument(
        "--windowed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clients also write windowed keys (default; --no-windowed: not)",
    )
    p.add_argument(
        "--flushall",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a client now and then runs FLUSHALL (default; --no-flushall: never)",
    )
    p.add_argument(
        "--lifecycle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clients now and then DEL or EXPIRE the newer families' keys and grow a Bloom "
        "filter's sub-filters (default; --no-lifecycle: not)",
    )
    p.add_argument(
        "--partition", action="append", default=[], help="START_S:END_S[:FRACTION[:oneway]]"
    )
    p.add_argument("--crash", action="append", default=[], help="AT_S[:COUNT[:DOWN_S[:wipe]]]")
    p.add_argument("--stall", default="", help="FRACTION:MAX_MS of nodes that stall")
    p.add_argument("--clog", default="", help="FRACTION:EXTRA_MS of nodes with clogged links")
    p.add_argument(
        "--burst-loss",
        default="",
        help="ENTER:LEAVE[:BAD_LOSS] two-state (Gilbert-Elliott) bursty loss per link",
    )
    p.add_argument("--skew", default="", help="MAX_OFFSET_MS[:MAX_DRIFT_PPM] per-node clocks")
    p.add_argument(
        "--clock-step",
        action="append",
        default=[],
        help="AT_S[:COUNT[:STEP_MS]] clocks jump (negative: back)",
    )
    p.add_argument(
        "--fsync",
        choices=("always", "everysec"),
        default="everysec",
        help="the nodes' fsync policy: what a crash may lose",
    )
    p.add_argument(
        "--plant",
        action="append",
        default=[],
        help="a planted bug the checkers must catch: store-drops-every=N, clock-error-ms=MS, "
        "del-not-gossiped",
    )
    p.add_argument("--no-membership", action="store_true", help="static peer lists")
    p.add_argument("--encrypt", action="store_true", help="AES-GCM on every datagram")
    p.add_argument("--no-check-monotone", action="store_true")
    p.add_argument(
        "--warmup-s", type=float, default=0.0, help="count convictions before this apart"
    )
    p.add_argument("--node-config", action="append", default=[], help="NodeConfig NAME=VALUE")
    p.add_argument("--wall-limit-s", type=float, default=3600.0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", default="", help="PNG file: fraction of nodes holding each write")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    low, _, high = args.delay_ms.partition(":")
    stall_fraction, _, stall_ms = (args.stall or "0").partition(":")
    clog_fraction, _, clog_ms = (args.clog or "0").partition(":")
    return SimConfig(
        nodes=args.nodes,
        seed=args.seed,
        loss=args.loss,
        duplicate=args.duplicate,
        delay_min_ms=int(low),
        delay_max_ms=int(high or low),
        preset=args.preset,
        duration_s=args.duration_s,
        heal_s=args.heal_s,
        writes=args.writes,
        keys=args.keys,
        partitions=tuple(PartitionSpec.parse(t) for t in args.partition),
        crashes=tuple(CrashSpec.parse(t) for t in args.crash),
        stall_fraction=float(stall_fraction),
        stall_max_ms=int(stall_ms or 1000),
        clog_fraction=float(clog_fraction),
        clog_ms=int(clog_ms or 500),
        burst_loss=BurstLossSpec.parse(args.burst_loss) if args.burst_loss else None,
        skew=SkewSpec.parse(args.skew) if args.skew else None,
        clock_steps=tuple(ClockStepSpec.parse(t) for t in args.clock_step),
        fsync=args.fsync,
        planted=PlantedBugs.parse(args.plant),
        membership=not args.no_membership,
        encrypt=args.encrypt,
        check_monotone=not args.no_check_monotone,
        node_config=_node_config(args.node_config),
        warmup_s=args.warmup_s,
        windowed=args.windowed,
        flushall=args.flushall,
        lifecycle=args.lifecycle,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        sim = Simulation(config)  # checks the node and membership settings
    except (ValueError, TypeError) as error:
        print(f"hearsay sim: {error}", file=sys.stderr)
        return 2
    result = sim.run(args.wall_limit_s)
    if args.plot:
        from hearsay.sim.plot import plot_spread

        plot_spread(sim.fractions_over_time(), args.plot, config.command())
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        conv = result["convergence_ms"]
        det = result["detection_ms"]
        print(
            f"converged={result['converged']} writes={result['writes']} "
            f"convergence p50/p99/max={conv['p50']}/{conv['p99']}/{conv['max']} ms "
            f"msgs/update/node={result['messages_per_update_per_node']:.2f} "
            f"detection p50/p99/max={det['p50']}/{det['p99']}/{det['max']} ms "
            f"false_failures={result['false_failures']} "
            f"sim={result['sim_seconds']:.1f}s wall={result['wall_seconds']:.1f}s"
        )
    if not result["converged"]:
        for problem in result.get("problems", []):
            print(f"problem: {problem}", file=sys.stderr)
        print(f"reproduce with: {config.command()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
