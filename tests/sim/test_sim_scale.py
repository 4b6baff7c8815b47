"""Issue 14's scenario at 300 nodes (``make ci-long``; ``bench/sim_targets.py --only scale``
runs it at 1,000): the real membership bootstraps through three seeds by push-pull, detects
crashes within the targets, convicts no running node (also with 10% of the nodes stalling up
to 500 ms), keeps membership traffic per node bounded, and every write reaches every node."""

from __future__ import annotations

import pytest

from hearsay.sim.config import CrashSpec, SimConfig
from hearsay.sim.world import run

pytestmark = [pytest.mark.sim, pytest.mark.slow]

NODES = 300


@pytest.mark.timeout(1800)
def test_300_nodes_bootstrap_detect_and_converge() -> None:
    config = SimConfig(
        nodes=NODES,
        seed=6,
        loss=0.05,
        duration_s=30,
        heal_s=30,
        writes=40,
        crashes=(CrashSpec(12, 5),),
        check_monotone=False,
        warmup_s=10,
    )
    result, _ = run(config)
    assert result["converged"], (result["problems"], config.command())
    assert result["false_failures"] == 0, config.command()
    assert result["convergence_ms"]["p99"] <= 2000, config.command()
    assert result["detection_ms"]["p50"] <= 5000, config.command()
    assert result["detection_per_observer_ms"]["p99"] <= 8000, config.command()
    assert result["detected_fraction"] == 1.0, config.command()
    assert result["membership_bytes_per_node_per_s"] <= 40_000, config.command()


@pytest.mark.timeout(1800)
def test_300_nodes_with_stalls_convict_nobody() -> None:
    config = SimConfig(
        nodes=NODES,
        seed=7,
        loss=0.05,
        duration_s=30,
        heal_s=5,
        writes=20,
        stall_fraction=0.10,
        stall_max_ms=500,
        check_monotone=False,
        warmup_s=10,
    )
    result, _ = run(config)
    assert result["converged"], (result["problems"], config.command())
    assert result["false_failures"] == 0, config.command()
