"""The deterministic simulator: convergence under faults on fixed seeds, replayability."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from hearsay.lattice.keyspace import FLOOR_KEY
from hearsay.sim.cli import main
from hearsay.sim.config import CrashSpec, PartitionSpec, SimConfig
from hearsay.sim.world import run

pytestmark = pytest.mark.sim


def _check(config: SimConfig) -> dict[str, object]:
    # Bounded by simulated time (duration + heal); no wall-clock budget may cut it short.
    result, _ = run(config, wall_limit_s=math.inf)
    assert result["converged"], f"{result.get('problems')}\nreproduce with: {config.command()}"
    assert result["monotone_violations"] == 0, config.command()
    assert result["writes_unconverged"] == 0, config.command()
    return result


def test_converges_under_loss_duplication_and_reordering() -> None:
    result = _check(
        SimConfig(
            nodes=24,
            seed=3,
            loss=0.2,
            duplicate=0.1,
            delay_min_ms=1,
            delay_max_ms=80,
            duration_s=8,
            writes=60,
        )
    )
    assert result["false_failures"] == 0


def test_converges_after_symmetric_and_one_way_partitions() -> None:
    _check(
        SimConfig(
            nodes=20,
            seed=5,
            loss=0.05,
            duration_s=12,
            writes=60,
            partitions=(PartitionSpec(1, 6, 0.4), PartitionSpec(7, 11, 0.3, one_way=True)),
        )
    )


def test_crashes_restarts_and_wiped_disks() -> None:
    result = _check(
        SimConfig(
            nodes=20,
            seed=7,
            loss=0.05,
            duration_s=12,
            writes=60,
            crashes=(CrashSpec(2, 2, 4), CrashSpec(5, 1, 3, wipe=True), CrashSpec(8, 1)),
        )
    )
    assert result["detected_fraction"] is not None and result["detected_fraction"] > 0
    assert result["live_nodes"] == 19


def test_stalls_clogs_and_encryption() -> None:
    result = _check(
        SimConfig(
            nodes=16,
            seed=9,
            loss=0.05,
            duration_s=10,
            writes=40,
            stall_fraction=0.2,
            stall_max_ms=1000,
            clog_fraction=0.2,
            encrypt=True,
        )
    )
    assert result["false_failures"] == 0


def test_static_peers_without_membership() -> None:
    _check(SimConfig(nodes=16, seed=2, loss=0.3, duration_s=6, writes=40, membership=False))


def test_same_seed_same_trace() -> None:
    config = SimConfig(
        nodes=12,
        seed=11,
        loss=0.1,
        duplicate=0.05,
        duration_s=5,
        writes=20,
        crashes=(CrashSpec(2, 1, 1),),
        partitions=(PartitionSpec(1, 3),),
    )
    first, _ = run(config)
    second, _ = run(config)
    other, _ = run(dataclasses.replace(config, seed=12))
    for volatile in ("wall_seconds",):
        first.pop(volatile)
        second.pop(volatile)
    assert first == second
    assert first["trace_digest"] != other["trace_digest"]


def test_cli_json_and_reproduce_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--nodes", "8", "--seed", "4", "--duration-s", "3", "--writes", "10", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    for field in (
        "converged",
        "convergence_ms",
        "messages_per_update_per_node",
        "bytes_per_update_per_node",
        "detection_ms",
        "false_failures",
        "sim_seconds",
        "wall_seconds",
    ):
        assert field in out
    assert set(out["convergence_ms"]) == {"p50", "p99", "max"}
    # a run that cannot converge (everything lost, no time to heal) prints how to reproduce it
    code = main(
        [
            "--nodes",
            "6",
            "--seed",
            "4",
            "--loss",
            "1",
            "--duration-s",
            "2",
            "--heal-s",
            "0.5",
            "--writes",
            "5",
            "--json",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "reproduce with: hearsay sim --nodes=6 --seed=4 --loss=1" in err


def test_plot(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "spread.png"
    assert (
        main(
            [
                "--nodes",
                "8",
                "--seed",
                "1",
                "--duration-s",
                "3",
                "--writes",
                "5",
                "--plot",
                str(path),
            ]
        )
        == 0
    )
    assert path.stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_sweep_of_seeds(seed: int) -> None:
    """Not in the default suite (pyproject deselects ``slow``): run with ``pytest -m slow``."""
    _check(
        SimConfig(
            nodes=30,
            seed=seed,
            loss=0.15,
            duplicate=0.05,
            delay_max_ms=50,
            duration_s=15,
            writes=80,
            partitions=(PartitionSpec(2, 7, 0.3, one_way=seed % 2 == 0),),
            crashes=(CrashSpec(4, 2, 5, wipe=seed % 3 == 0), CrashSpec(9, 1)),
            stall_fraction=0.1,
            clog_fraction=0.1,
        )
    )


def test_a_small_cluster_converges_in_one_hop_without_loss() -> None:
    """20 nodes that know each other: the origin reaches every peer at once, so each write is
    everywhere within one one-way delay (the real 20-process benchmark's target is 100 ms)."""
    config = SimConfig(
        nodes=20, seed=4, delay_min_ms=1, delay_max_ms=5, duration_s=5, writes=60,
        membership=False,
    )  # fmt: skip
    result = _check(config)
    assert result["convergence_ms"]["max"] <= 5, config.command()  # type: ignore[index]


def test_swim_detects_crashes_without_false_failures_under_stalls() -> None:
    """Real membership, real-size ids, bootstrap through three seeds: two crashes are seen
    failed by every live observer within the issue's bounds, while 10% of the nodes stall up to
    500 ms at random and nobody running is convicted; membership traffic stays small."""
    config = SimConfig(
        nodes=30,
        seed=14,
        loss=0.05,
        duration_s=16,
        heal_s=10,
        writes=30,
        crashes=(CrashSpec(8, 2),),
        stall_fraction=0.1,
        stall_max_ms=500,
        warmup_s=6,
        check_monotone=False,
    )
    result = _check(config)
    command = config.command()
    assert result["false_failures"] == 0, command
    assert result["detected_fraction"] == 1.0, command
    detection = result["detection_ms"]
    assert isinstance(detection, dict) and detection["p50"] <= 5_000, (detection, command)
    per_observer = result["detection_per_observer_ms"]
    assert isinstance(per_observer, dict) and per_observer["p99"] <= 8_000, command
    assert isinstance(result["membership_bytes_per_node_per_s"], float)
    assert result["membership_bytes_per_node_per_s"] <= 40_000, command


def test_flushall_under_partitions_crashes_and_loss_converges() -> None:
    """Clients run FLUSHALL now and then (the default workload): the floor meets concurrent
    writes on both sides of a partition, a wiped disk and a crash, and every live node ends
    with the same floor, the same keys and the reference's answers."""
    config = SimConfig(
        nodes=12,
        seed=3,
        loss=0.1,
        duplicate=0.05,
        delay_max_ms=30,
        duration_s=10,
        writes=200,
        partitions=(PartitionSpec(2, 5, 0.3),),
        crashes=(CrashSpec(3, 2, 3, wipe=True), CrashSpec(6, 1, 2)),
    )
    result, sim = run(config, wall_limit_s=math.inf)
    assert result["converged"], f"{result['problems']}\n{config.command()}"
    flushes = [w for w in sim.writes.writes if w.key == FLOOR_KEY]
    assert len(flushes) >= 2, config.command()  # (seed 3 runs four)
    floors = {node.keyspace.floor_ms for node in sim.nodes if node is not None}
    assert floors == {max(w.delta.epoch for w in flushes)}, config.command()
    assert "flushall" not in config.command()  # the default
