"""Node faults: when nodes crash, restart (with or without their disk), stall, get clogged
links, see partitions, or have their clocks stepped; and which nodes are up.

Why this module exists: the fault schedule is drawn from the seed before the run starts, and
the life state of each node (up, coming back, its generation, stalled until when) has one
owner, so the driver asks here rather than keeping its own copies.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hearsay.sim.config import SimConfig

Push = Callable[[int, str, Any, Any], None]
"""Schedules an action: ``push(at_ms, what, a, b)``."""


class Faults:
    """The fault schedule and every node's life state."""

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        n = config.nodes
        self.alive = [True] * n
        self.generation = [1] * n
        """Bumped at each restart: membership tells a node's incarnations apart by it, and a
        node that lost its memory writes its additive slices under a fresh origin named by
        it (as a real node does after a stop that was not clean)."""
        self.restarting: dict[int, bool] = {}
        """Crashed nodes that will restart, and whether their disk was wiped."""
        self.stalled_until_ms = [0] * n

    def schedule(self, push: Push) -> None:
        """Draw every fault of the safety phase from the seed and schedule it."""
        cfg = self.config
        rng = self.rng
        duration_ms = int(cfg.duration_s * 1000)
        for spec in cfg.partitions:
            side = set(rng.sample(range(cfg.nodes), max(1, int(cfg.nodes * spec.fraction))))
            push(int(spec.start_s * 1000), "partition", side, spec.one_way)
            push(int(spec.end_s * 1000), "unpartition", side, spec.one_way)
        for crash in cfg.crashes:
            push(int(crash.at_s * 1000), "crash", crash, None)
        for step in cfg.clock_steps:
            push(int(step.at_s * 1000), "clock-step", step, None)
        for i in rng.sample(range(cfg.nodes), int(cfg.nodes * cfg.stall_fraction)):
            t = rng.randint(0, max(1, cfg.stall_max_ms * 5))
            while t < duration_ms:
                length = rng.randint(cfg.stall_max_ms // 4, cfg.stall_max_ms)
                push(t, "stall", i, length)
                t += length + rng.randint(cfg.stall_max_ms * 2, cfg.stall_max_ms * 10)
        for i in rng.sample(range(cfg.nodes), int(cfg.nodes * cfg.clog_fraction)):
            at = rng.randint(0, max(1, duration_ms - 1))
            push(at, "clog", i, rng.randint(1000, 5000))

    def live(self) -> list[int]:
        return [i for i in range(self.config.nodes) if self.alive[i]]

    def pick_live(self, count: int, *, leave_one: bool) -> list[int]:
        """``count`` random live nodes (crashes ``leave_one`` up)."""
        live = self.live()
        count = min(count, len(live) - 1 if leave_one else len(live))
        return self.rng.sample(live, max(0, count))

    def crash(self, node: int, down_s: float | None, wipe: bool) -> None:
        self.alive[node] = False
        if down_s is not None:
            self.restarting[node] = wipe

    def restart(self, node: int) -> None:
        self.generation[node] += 1
        self.alive[node] = True
        self.restarting.pop(node, None)

    def stall(self, node: int, until_ms: int) -> None:
        self.stalled_until_ms[node] = max(self.stalled_until_ms[node], until_ms)

    def surviving(self) -> set[int]:
        """Nodes whose memory or disk still counts: up, or coming back with their disk."""
        n = self.config.nodes
        return {j for j in range(n) if self.alive[j] or self.restarting.get(j) is False}

    def restarted(self) -> set[int]:
        return {j for j in range(self.config.nodes) if self.alive[j] and self.generation[j] > 1}

    def heal(self) -> None:
        """The liveness phase: stalls end (crashed nodes stay as they are)."""
        self.stalled_until_ms = [0] * self.config.nodes
