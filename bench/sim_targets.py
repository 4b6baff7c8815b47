"""Issue 4's targets, measured in the deterministic simulator (a benchmark, not a test).

Run: ``.venv/bin/python bench/sim_targets.py [--only NAME ...] [--nodes N] [--quick]``.
Prints one line per target with the figure, the target and their ratio, plus the seed's
reproduce command. Figures are simulated time (deterministic for a seed) except wall time.

The data-plane runs (convergence, loss, messages, speed) use static peer lists
(``--no-membership``: every node knows every other, as once membership has converged), because
the membership layer's own cost grows with N per tick and would dominate the wall time; the
membership runs (detection, false failures) use real membership at a smaller N, printed.
Comparison: grapevine (the seed) with 20 real processes takes 2.8 s (median) to spread one
update and 31 s to detect a killed peer (REFERENCE.md).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from hearsay.sim.world import CrashSpec, SimConfig, run

GRAPEVINE_SPREAD_MS = 2_800
GRAPEVINE_DETECT_MS = 31_000


def _run(config: SimConfig) -> dict[str, Any]:
    started = time.perf_counter()
    result, _ = run(config, wall_limit_s=1800)
    result["bench_wall_s"] = time.perf_counter() - started
    return result


def _line(name: str, figure: float | None, target: float, unit: str, better: str, cmd: str) -> None:  # noqa: PLR0917
    if figure is None:
        print(f"{name:<34} {'n/a':>10}   target {better} {target:g} {unit}   MISSING  ({cmd})")
        return
    ok = figure <= target if better == "<=" else figure >= target
    ratio = figure / target if target else float("inf")
    verdict = "ok" if ok else "MISSED"
    print(
        f"{name:<34} {figure:>10.2f} {unit:<4} target {better} {target:g}  "
        f"ratio {ratio:5.2f}  {verdict}\n    {cmd}"
    )


AE_SETTINGS: tuple[tuple[str, dict[str, int]], ...] = (
    ("preset lan (anti-entropy every 2 s)", {}),
    ("anti-entropy every 10 s (the earlier lan value)", {"anti_entropy_interval_ms": 10_000}),
)
"""The lan preset as it is, and with the earlier 10 s anti-entropy period for comparison."""


def _data_plane(
    nodes: int, seed: int, loss: float, quick: bool, node_config: dict[str, int]
) -> SimConfig:
    """A data-plane run: static peer lists (membership converged), writes across the cluster."""
    return SimConfig(
        nodes=nodes,
        seed=seed,
        loss=loss,
        duration_s=10 if quick else 20,
        heal_s=30,
        writes=30 if quick else 60,
        membership=False,
        check_monotone=False,
        node_config=dict(node_config),
    )


def convergence(nodes: int, quick: bool) -> None:
    for label, node_config in AE_SETTINGS:
        cfg = _data_plane(nodes, 1, 0.05, quick, node_config)
        r = _run(cfg)
        conv = r["convergence_ms"]
        print(f"-- {label}: converged={r['converged']}")
        _line("p99 convergence, 5% loss (ms)", conv["p99"], 2000, "ms", "<=", cfg.command())
        print(
            f"    p50 {conv['p50']} ms, max {conv['max']} ms; grapevine median spread "
            f"{GRAPEVINE_SPREAD_MS} ms (p50/grapevine {conv['p50'] / GRAPEVINE_SPREAD_MS:.2f})"
        )
        fanout = 3
        _line(
            "messages per update per node",
            r["messages_per_update_per_node"],
            2 * fanout,
            "msg",
            "<=",
            cfg.command(),
        )
        print(
            f"    bytes per update per node {r['bytes_per_update_per_node']:.0f} "
            f"({r['writes']} writes in {cfg.duration_s:g} s across the cluster)"
        )


def loss30(nodes: int, quick: bool) -> None:
    for label, node_config in AE_SETTINGS:
        cfg = _data_plane(nodes, 2, 0.30, quick, node_config)
        r = _run(cfg)
        conv = r["convergence_ms"]
        print(
            f"-- {label}: converged={r['converged']} unconverged writes={r['writes_unconverged']}"
        )
        _line("max convergence, 30% loss (ms)", conv["max"], 10_000, "ms", "<=", cfg.command())


def detection(nodes: int, quick: bool) -> None:
    cfg = SimConfig(
        nodes=nodes,
        seed=3,
        loss=0.05,
        duration_s=20 if quick else 30,
        heal_s=10,
        writes=10,
        crashes=(CrashSpec(10, 3),),
        check_monotone=False,
    )
    r = _run(cfg)
    det = r["detection_ms"]
    _line(f"detection p50 at lan, {nodes} nodes", det["p50"], 5000, "ms", "<=", cfg.command())
    per = r.get("detection_per_observer_ms", {})
    print(
        f"    every observer: p99 {det['p99']} max {det['max']} ms; per observer p50 "
        f"{per.get('p50')} p99 {per.get('p99')} ms; detected fraction {r['detected_fraction']}; "
        f"grapevine {GRAPEVINE_DETECT_MS} ms"
    )


def false_failures(nodes: int, quick: bool) -> None:
    cfg = SimConfig(
        nodes=nodes,
        seed=4,
        loss=0.05,
        duration_s=60 if quick else 600,
        heal_s=5,
        writes=20,
        stall_fraction=0.10,
        stall_max_ms=1000,
        check_monotone=False,
        warmup_s=10,
    )
    r = _run(cfg)
    print(
        f"false failures over {cfg.duration_s:g} simulated s, {nodes} nodes, 5% loss, "
        f"10% stalled up to 1 s: {r['false_failures']} after the first {cfg.warmup_s:g} s, "
        f"{r['warmup_failures']} while the cluster formed (target 0)\n    {cfg.command()}"
    )


def speed(nodes: int, quick: bool) -> None:
    cfg = SimConfig(
        nodes=nodes,
        seed=5,
        loss=0.05,
        duration_s=30 if quick else 60,
        heal_s=0.25,
        writes=60,
        membership=False,
        check_monotone=False,
    )
    r = _run(cfg)
    scaled = r["wall_seconds"] * 60 / r["sim_seconds"]
    _line(f"wall s for {nodes} nodes x 60 sim s", scaled, 120, "s", "<=", cfg.command())
    print(
        f"    ({r['sim_seconds']:.1f} sim s took {r['wall_seconds']:.1f} wall s; "
        f"{r['datagrams_delivered']} datagrams delivered)"
    )


TARGETS: dict[str, Callable[[int, bool], None]] = {
    "convergence": convergence,
    "loss30": loss30,
    "detection": detection,
    "false-failures": false_failures,
    "speed": speed,
}
MEMBERSHIP_NODES = {"detection": 100, "false-failures": 50}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", action="append", choices=sorted(TARGETS))
    p.add_argument("--nodes", type=int, default=1000, help="data-plane runs")
    p.add_argument("--membership-nodes", type=int, default=0, help="override membership runs")
    p.add_argument("--quick", action="store_true", help="shorter runs")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    for name in args.only or list(TARGETS):
        n = args.membership_nodes or MEMBERSHIP_NODES.get(name, args.nodes)
        if name not in MEMBERSHIP_NODES:
            n = args.nodes
        print(f"== {name} ({n} nodes)", flush=True)
        TARGETS[name](n, args.quick)
    if args.json:
        print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
