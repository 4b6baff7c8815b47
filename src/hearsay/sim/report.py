"""The figures of one run, as the JSON object ``hearsay sim --json`` prints.

Why this module exists: the field names are a contract (the CLI, the tests and
``bench/sim_targets.py`` read them), so they are written in one place, from what the
checkers and the nodes' own stats say.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hearsay.protocol.node import GossipNode
from hearsay.sim.checkers import DetectionTracker, WriteTracker
from hearsay.sim.config import SimConfig


def percentiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    arr = np.array(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


def traffic(nodes: list[GossipNode]) -> tuple[int, int, int, int]:
    """(data messages, data bytes, membership messages, membership bytes) every node sent."""
    data_msgs = data_bytes = member_msgs = member_bytes = 0
    for node in nodes:
        for kind, count in node.stats.sent_by_type.items():
            size = node.stats.sent_bytes_by_type.get(kind, 0)
            if kind == "MEMBERSHIP":
                member_msgs += count
                member_bytes += size
            else:
                data_msgs += count
                data_bytes += size
        data_msgs += node.stats.vignette_out
    return data_msgs, data_bytes, member_msgs, member_bytes


def build(
    config: SimConfig,
    *,
    converged_at_ms: int | None,
    live: list[int],
    restarted: set[int],
    writes: WriteTracker,
    detections: DetectionTracker,
    violations: list[str],
    nodes: list[GossipNode],
    sim_ms: int,
    wall_s: float,
    network: dict[str, int],
    trace_digest: str,
) -> dict[str, Any]:
    conv, unconverged = writes.convergence_ms(live)
    detect, pair_times, detected_pairs, expected_pairs = detections.figures(live, restarted)
    updates = max(1, sum(1 for w in writes.writes if not w.lost))
    data_msgs, data_bytes, member_msgs, member_bytes = traffic(nodes)
    sim_s = sim_ms / 1000.0
    n = config.nodes
    return {
        "converged": converged_at_ms is not None and unconverged == 0 and not violations,
        "convergence_ms": percentiles(conv),
        "liveness_ms": None
        if converged_at_ms is None
        else converged_at_ms - int(config.duration_s * 1000),
        "writes": len(writes.writes),
        "writes_lost": sum(1 for w in writes.writes if w.lost),
        "writes_unconverged": unconverged,
        "messages_per_update_per_node": data_msgs / updates / n,
        "bytes_per_update_per_node": data_bytes / updates / n,
        "membership_messages_per_node_per_s": member_msgs / n / max(sim_s, 1e-9),
        "membership_bytes_per_node_per_s": member_bytes / n / max(sim_s, 1e-9),
        **network,
        "detection_ms": percentiles(detect),
        "detection_per_observer_ms": percentiles(pair_times),
        "detected_fraction": None if not expected_pairs else detected_pairs / expected_pairs,
        "false_failures": detections.false_failures,
        "partition_failures": detections.partition_failures,
        "warmup_failures": detections.warmup_failures,
        "monotone_violations": len(violations),
        "sim_seconds": sim_s,
        "wall_seconds": wall_s,
        "trace_digest": trace_digest,
        "nodes": n,
        "live_nodes": len(live),
        "seed": config.seed,
        "command": config.command(),
    }
