"""The simulator's checkers catch a planted bug of each kind, and pass the same run without it.

Each bug is planted through :class:`~hearsay.sim.config.PlantedBugs` (a test hook the
checkers are never told about): a store that loses acknowledged ``always`` writes, a node
whose clock runs beyond the documented skew bound, replicas that never gossip a DEL.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

import hearsay.sim.world
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry, MergeResult
from hearsay.lattice.keyspace import FLOOR_KEY, Keyspace
from hearsay.lattice.vector import MaxVector
from hearsay.sim.checkers import WriteTracker, expired_unaware
from hearsay.sim.config import (
    BurstLossSpec,
    ClockStepSpec,
    CrashSpec,
    PartitionSpec,
    PlantedBugs,
    SimConfig,
    SkewSpec,
)
from hearsay.sim.world import run
from hearsay.sketch.schemas import counter as counter_schema

pytestmark = pytest.mark.sim


def _both(config: SimConfig, planted: PlantedBugs) -> tuple[dict[str, Any], dict[str, Any]]:
    clean, _ = run(config, wall_limit_s=math.inf)
    buggy, _ = run(dataclasses.replace(config, planted=planted), wall_limit_s=math.inf)
    assert clean["converged"], f"{clean['problems']}\n{config.command()}"
    assert not buggy["converged"], config.command()
    return clean, buggy


def _rumours_only() -> SimConfig:
    """Static peers and anti-entropy off: a change reaches the others only by its rumour."""
    return SimConfig(
        nodes=10,
        seed=3,
        duration_s=8,
        heal_s=20,
        writes=100,
        membership=False,
        node_config={"anti_entropy_interval_ms": 10**9},
    )


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_a_store_losing_synced_writes_is_caught(fsync: str) -> None:
    """Acknowledged writes lost (durability) and older state lost beyond the policy's window
    (monotone across the crash)."""
    config = SimConfig(
        nodes=10,
        seed=3,
        duration_s=8,
        heal_s=20,
        writes=100,
        fsync=fsync,
        crashes=(CrashSpec(3, 3, 1), CrashSpec(6, 3, 1)),
    )
    clean, buggy = _both(config, PlantedBugs(store_drops_every=3))
    assert clean["durability_violations"] == clean["monotone_violations"] == 0
    assert buggy["durability_violations"] > 0
    assert buggy["monotone_violations"] > 0
    assert any(p.startswith("durability:") for p in buggy["problems"])


def test_everysec_may_lose_the_last_second_and_peers_refill_it() -> None:
    """A crash right after writes under ``everysec``: the node comes back with what its disk
    held, no acknowledged write older than the sync interval is missing, and the cluster
    converges on the true join."""
    config = SimConfig(
        nodes=10,
        seed=5,
        duration_s=8,
        heal_s=20,
        writes=150,
        crashes=(CrashSpec(2.5, 4, 1), CrashSpec(5.5, 4, 0.5)),
    )
    result, sim = run(config, wall_limit_s=math.inf)
    assert result["converged"], f"{result['problems']}\n{config.command()}"
    assert result["durability_violations"] == 0
    assert sim.writes.lost_in_crashes > 0  # the crashes did take unsynced writes away


def test_a_clock_beyond_the_skew_bound_is_caught() -> None:
    config = SimConfig(nodes=10, seed=3, duration_s=8, heal_s=20, writes=100, skew=SkewSpec(200))
    clean, buggy = _both(config, PlantedBugs(clock_error_ms=20_000))
    assert clean["clock_violations"] == 0
    assert buggy["clock_violations"] > 0
    assert any(p.startswith("clock: node 0 ") for p in buggy["problems"])


def test_a_delete_never_gossiped_is_caught() -> None:
    """Anti-entropy is off, so only the rumour of the DEL could carry it. No FLUSHALL: one
    supersedes every write before it, the DELs the nodes never heard of included."""
    config = dataclasses.replace(_rumours_only(), flushall=False)
    clean, buggy = _both(config, PlantedBugs(del_not_gossiped=True))
    assert clean["writes_unconverged"] == 0
    assert buggy["writes_unconverged"] > 0


def test_a_flushall_never_gossiped_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer raises its own floor but tells no one (anti-entropy off): the other nodes
    keep the flushed keys, and the checkers see the FLUSHALL held by one node only."""
    config = _rumours_only()  # (seed 3 runs a FLUSHALL)
    clean, _ = run(config, wall_limit_s=math.inf)
    assert clean["converged"], f"{clean['problems']}\n{config.command()}"

    def flush_all_quietly(replica: Replica, now_ms: int) -> MergeResult:
        floor_ms = max(now_ms, replica.keyspace.epoch_max + 1)
        return replica.keyspace.merge(FLOOR_KEY, Entry(floor_ms))  # around the write funnel

    monkeypatch.setattr(Replica, "flush_all", flush_all_quietly)
    buggy, _ = run(config, wall_limit_s=math.inf)
    assert not buggy["converged"], config.command()
    assert buggy["writes_unconverged"] > 0


def _every_fault(seed: int, **changes: Any) -> SimConfig:
    """The sweep's run of ``seed``: every fault at once."""
    config = SimConfig(
        nodes=14,
        seed=seed,
        loss=0.1,
        duplicate=0.05,
        delay_max_ms=40,
        duration_s=10,
        writes=80,
        partitions=(PartitionSpec(2, 5, 0.3, one_way=seed % 2 == 0),),
        crashes=(CrashSpec(3, 2, 2, wipe=seed % 3 == 0), CrashSpec(6, 2, 1), CrashSpec(8, 1)),
        stall_fraction=0.1,
        clog_fraction=0.1,
        skew=SkewSpec(300, 1000),
        clock_steps=(ClockStepSpec(4, 2, -2000),),
        burst_loss=BurstLossSpec(0.02, 0.3) if seed % 2 else None,
    )
    return dataclasses.replace(config, **changes)


@pytest.mark.slow
@pytest.mark.parametrize("fsync", ["always", "everysec"])
@pytest.mark.parametrize("seed", range(200, 215))
def test_sweep_every_fault_and_every_checker(seed: int, fsync: str) -> None:
    """Not in the default suite (``pytest -m slow``): crashes with and without disks, skewed
    and stepped clocks, bursty loss, partitions, stalls and clogs together; no checker may
    complain and the cluster must reach the true join."""
    config = _every_fault(seed, fsync=fsync)
    result, _ = run(config, wall_limit_s=math.inf)
    assert result["converged"], f"{result['problems']}\n{config.command()}"


@pytest.mark.parametrize(
    ("seed", "flushall", "key"), [(313, False, b"counter:13"), (213, True, b"counter:13")]
)
def test_a_ttl_ended_before_news_of_a_write_keeping_it_is_recognised(
    monkeypatch: pytest.MonkeyPatch, seed: int, flushall: bool, key: bytes
) -> None:
    """A node ends a key by its TTL before a write that would have kept it reaches it; the
    tombstone at the old deadline wins (remove wins), the reference (the join of the writes,
    where a TTL's end is no write) keeps the key. Seed 313: a node whose clock is behind runs
    EXPIRE after the deadline passed on the others' clocks, moving it. Seed 213 (none without
    the FLUSHALL since drains are 2 ms apart; 210 was it before): a node that
    has not heard of a FLUSHALL runs EXPIRE on the old key, which is written again after the
    FLUSHALL and dies by the old TTL (docs/design.md, "What the floor does not undo").
    Recognised exactly (the node that made the tombstone lacked the write), the other keys
    compared; without the exemption the run fails on that key."""
    config = _every_fault(seed, flushall=flushall)  # (everysec)
    result, _ = run(config, wall_limit_s=math.inf)
    assert result["converged"], f"{result['problems']}\n{config.command()}"
    assert result["expired_unaware"] == 1
    monkeypatch.setattr(hearsay.sim.world, "expired_unaware", lambda *_: set())
    result, _ = run(config, wall_limit_s=math.inf)
    assert any(p.startswith(f"key {key!r}") for p in result["problems"]), result["problems"]


@pytest.mark.parametrize("moved_reached_ms", [60, 950, None])
def test_expired_unaware_exempts_only_a_node_that_lacked_the_moving_write(
    moved_reached_ms: int | None,
) -> None:
    """Node 1 shows the key's tombstone at the old deadline (1000) at 900 ms: exempt only if
    the EXPIRE moving the deadline (to 5000) had not reached it by then."""
    schema = counter_schema()
    vector = MaxVector.from_pairs([0], [3])
    tracker = WriteTracker()
    tracker.executed(b"k", Entry(0, schema, (100, 1000), {"a": vector}), writer=0, sim_ms=0)
    moved = tracker.executed(b"k", Entry(0, schema, (200, 5000), {"a": vector}), 0, sim_ms=50)
    if moved_reached_ms is not None:
        moved.held_at[1] = moved_reached_ms
    tombstone = Entry(1000)
    tracker.observe(1, b"k", tombstone, sim_ms=900)
    keyspace = Keyspace()
    keyspace.merge(b"k", tombstone)
    expected = set() if moved_reached_ms == 60 else {b"k"}
    assert expired_unaware(keyspace, tracker) == expected
    assert tracker.reference.entry(b"k") is not None  # (the reference keeps the key)
