"""The simulated network: which datagrams arrive, when, and how often.

Why this module exists: delivery is the fault surface gossip must survive, so everything that
decides a datagram's fate (uniform loss, bursty Gilbert-Elliott loss, duplication, delay and
its jitter, which reorders, clogged links, symmetric and one-way partitions) lives here, on
its own random stream, and nothing else decides it.
"""

from __future__ import annotations

import random

from hearsay.sim.config import SimConfig


class Network:
    """Link state and the fate of each datagram. ``faults_on`` False (the liveness phase)
    heals partitions and clogs and stops duplication; loss stays."""

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.faults_on = True
        self.partitions_active: list[tuple[set[int], bool]] = []
        """(side A, one way) of each partition in force."""
        self.partition_ended_ms: int | None = None
        self.clogged_until_ms = [0] * config.nodes
        self.bad_links: set[tuple[int, int]] = set()
        """Directed links in the Gilbert-Elliott bad state."""

    def blocked(self, src: int, dst: int) -> bool:
        """A partition in force cuts ``src -> dst``."""
        if not self.faults_on:
            return False
        for side, one_way in self.partitions_active:
            in_a, to_a = src in side, dst in side
            if in_a != to_a and (not one_way or in_a):
                return True
        return False

    def delay_ms(self, src: int, dst: int, now_ms: int) -> int:
        cfg = self.config
        delay = self.rng.randint(cfg.delay_min_ms, cfg.delay_max_ms)
        if self.clogged_until_ms[src] > now_ms or self.clogged_until_ms[dst] > now_ms:
            delay += cfg.clog_ms
        return delay

    def lost(self, src: int, dst: int) -> bool:
        """Whether the next datagram on ``src -> dst`` is lost (moves the link's burst state)."""
        burst = self.config.burst_loss
        if burst is None:
            return self.rng.random() < self.config.loss
        link = (src, dst)
        if link in self.bad_links:
            if self.rng.random() < burst.leave:
                self.bad_links.discard(link)
        elif self.rng.random() < burst.enter:
            self.bad_links.add(link)
        loss = burst.bad_loss if link in self.bad_links else self.config.loss
        return self.rng.random() < loss

    def duplicated(self) -> bool:
        dup = self.config.duplicate
        return self.faults_on and bool(dup) and self.rng.random() < dup

    def partition(self, side: set[int], one_way: bool) -> None:
        if self.faults_on:
            self.partitions_active.append((side, one_way))

    def unpartition(self, side: set[int], one_way: bool, now_ms: int) -> None:
        if (side, one_way) in self.partitions_active:
            self.partitions_active.remove((side, one_way))
            self.partition_ended_ms = now_ms

    def clog(self, node: int, until_ms: int) -> None:
        if self.faults_on:
            self.clogged_until_ms[node] = max(self.clogged_until_ms[node], until_ms)

    def heal(self, now_ms: int) -> None:
        """The liveness phase begins: partitions and clogs end, duplication stops."""
        self.faults_on = False
        if self.partitions_active:
            self.partition_ended_ms = now_ms
        self.partitions_active.clear()
        self.clogged_until_ms = [0] * self.config.nodes
