"""The deterministic simulator's driver: real gossip cores on one event heap, one seed.

Why this module exists: gossip bugs hide in rare interleavings (a lost datagram here, a
partition there, a restart in between). Here N real :class:`~hearsay.protocol.node.GossipNode`
objects (with real membership) run on one virtual timeline, each reading its own clock
(:mod:`~hearsay.sim.clock`), talking through :mod:`~hearsay.sim.network`, suffering
:mod:`~hearsay.sim.faults` and serving :mod:`~hearsay.sim.workload`, all drawn from one seed,
so any run replays exactly (TigerBeetle's VOPR and FoundationDB's simulation are the models).
This module only routes: it pops events, hands them to nodes, and tells the
:mod:`~hearsay.sim.checkers` what happened.

A run has two phases:

- **safety** (``duration_s``): clients write to random nodes while faults happen; after every
  change the *monotone* checker verifies that no entry went backwards in the lattice order;
- **liveness** (up to ``heal_s``): faults stop (partitions heal, stalled and crashed-for-good
  nodes stay as they are, loss stays), and the run must converge: every surviving write held by
  every live node, identical keyspaces (entries and bucket hashes) on all live nodes, and sketch
  answers (HLL counts, counters, raw vectors) equal to one reference keyspace fed every write.

Large transfers (:class:`~hearsay.protocol.events.StreamRequest`) are delivered reliably
after a delay proportional to their size, unless a partition or crash cuts them (then the
sender hears ``stream_failed``).
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable
from typing import Any

import xxhash

from hearsay.lattice.keyspace import Keyspace
from hearsay.protocol.envelope import Keyring
from hearsay.protocol.events import KeyChanged, StreamRequest
from hearsay.protocol.membership import Address, MemberFailed, Membership
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.protocol.presets import preset_by_name
from hearsay.sim import report
from hearsay.sim.checkers import (
    DetectionTracker,
    MonotoneChecker,
    WriteTracker,
    convergence_problems,
    identical,
)
from hearsay.sim.clock import NodeClock
from hearsay.sim.config import ClockStepSpec, CrashSpec, SimConfig
from hearsay.sim.faults import Faults
from hearsay.sim.network import Network
from hearsay.sim.workload import Workload

_DELIVER, _STREAM, _TIMER, _ACTION = 0, 1, 2, 3


class Simulation:
    """One seeded run. ``run()`` returns the metrics (``converged`` False on any failure)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.network = Network(config, random.Random(self.rng.getrandbits(64)))
        self.workload = Workload(config, random.Random(self.rng.getrandbits(64)))
        self.faults = Faults(config, self.rng)
        self.clocks = self._make_clocks()
        self.preset = preset_by_name(config.preset)
        self.node_config = NodeConfig.from_preset(self.preset, **config.node_config)
        n = config.nodes
        self.addresses: list[Address] = [
            (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 7000) for i in range(n)
        ]
        self.index_of = {a: i for i, a in enumerate(self.addresses)}
        self.keyspaces = [Keyspace() for _ in range(n)]
        self.nodes: list[GossipNode | None] = [None] * n
        self.all_nodes: list[GossipNode] = []
        self.timer_at = [-1] * n
        self.timer_token = [0] * n
        self.heap: list[tuple[int, int, int, Any, Any, Any]] = []
        self.seq = 0
        self.now = 0
        self.monotone = MonotoneChecker()
        self.writes = WriteTracker()
        self.detections = DetectionTracker(self.preset.dead_timeout_ms, int(config.warmup_s * 1000))
        self.stream_messages = 0
        self.stream_bytes = 0
        self.delivered = 0
        self.trace = xxhash.xxh3_64()
        self.keyring_key = self.rng.randbytes(32) if config.encrypt else None
        for i in range(n):
            self._start_node(i)
        for i in range(n):
            self._join(i)

    # -- set-up --------------------------------------------------------------------------------

    def _make_clocks(self) -> list[NodeClock]:
        """Per-node clocks from their own random stream (a run without skew draws nothing)."""
        skew = self.config.skew
        if skew is None:
            return [NodeClock() for _ in range(self.config.nodes)]
        rng = random.Random(f"clock:{self.config.seed}")
        return [
            NodeClock(
                rng.randint(-skew.max_offset_ms, skew.max_offset_ms),
                rng.randint(-skew.max_drift_ppm, skew.max_drift_ppm),
            )
            for _ in range(self.config.nodes)
        ]

    def _start_node(self, i: int) -> None:
        cfg = self.config
        rng = random.Random(self.rng.getrandbits(64))
        membership = None
        now = self.clocks[i].now_ms(self.now)
        if cfg.membership:
            membership = Membership(
                f"n{i}",
                self.faults.generation[i],
                self.addresses[i],
                self.preset,
                rng,
                now_ms=now,
                budget_bytes=self.node_config.udp_payload_bytes_max - 80,
            )
        keyring = Keyring(self.keyring_key) if self.keyring_key is not None else None
        node = GossipNode(
            self.addresses[i],
            rng=rng,
            keyspace=self.keyspaces[i],
            config=self.node_config,
            keyring=keyring,
            membership=membership,
            now_ms=now,
        )
        self.nodes[i] = node
        self.all_nodes.append(node)

    def _join(self, i: int) -> None:
        node = self.nodes[i]
        assert node is not None
        if self.config.membership:
            seeds = [a for a in self.addresses[:3] if a != self.addresses[i]]
            node.join(seeds, self.clocks[i].now_ms(self.now))
        else:
            for a in self.addresses:
                node.add_peer(a)
        self._after(i)

    # -- the event heap --------------------------------------------------------------------------

    def _push(self, at: int, kind: int, a: Any, b: Any = None, c: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, a, b, c))

    def _push_action(self, at: int, what: str, a: Any, b: Any) -> None:
        self._push(at, _ACTION, what, a, b)

    def _after(self, i: int) -> None:
        """Collect what node ``i`` wants to send, its events and its next timer."""
        node = self.nodes[i]
        if node is None:
            return
        net = self.network
        for data, dest in node.datagrams_to_send():
            j = self.index_of.get(dest)
            if j is None or net.blocked(i, j) or net.lost(i, j):
                continue
            self._push(self.now + net.delay_ms(i, j, self.now), _DELIVER, j, i, data)
            if net.duplicated():
                self._push(self.now + net.delay_ms(i, j, self.now), _DELIVER, j, i, data)
        while (event := node.next_event()) is not None:
            if isinstance(event, KeyChanged):
                self._on_changed(i, event.key)
            elif isinstance(event, StreamRequest):
                self._on_stream(i, event)
            elif isinstance(event, MemberFailed):
                self._on_failed(i, event)
        timer = node.get_timer()
        if timer is not None:
            at = self.clocks[i].sim_at(timer, self.now)
            if at != self.timer_at[i]:
                self.timer_token[i] += 1
                self.timer_at[i] = at
                self._push(at, _TIMER, i, self.timer_token[i])

    def _on_stream(self, i: int, event: StreamRequest) -> None:
        j = self.index_of.get(event.peer)
        self.stream_messages += 1
        self.stream_bytes += len(event.data)
        node = self.nodes[i]
        if j is None or not self.faults.alive[j] or self.network.blocked(i, j):
            if node is not None:
                node.stream_failed(event.stream_id)
            return
        delay = (
            self.network.delay_ms(i, j, self.now) * 3
            + len(event.data) * 1000 // self.config.stream_bytes_per_s
        )
        self._push(self.now + delay, _STREAM, j, i, event.data)

    # -- what the checkers hear --------------------------------------------------------------------

    def _on_changed(self, i: int, key: bytes) -> None:
        entry = self.keyspaces[i].entry(key)
        if entry is None:
            return
        if self.config.check_monotone:
            self.monotone.observe(i, key, entry, self.now)
        self.writes.observe(i, key, entry, self.now)

    def _on_failed(self, observer: int, event: MemberFailed) -> None:
        if not event.node_id.startswith("n"):
            return
        target = int(event.node_id[1:])
        faults = self.faults
        self.detections.convicted(
            observer,
            target,
            running=faults.alive[target] and event.generation == faults.generation[target],
            partitioned=bool(self.network.partitions_active),
            partition_ended_ms=self.network.partition_ended_ms,
            sim_ms=self.now,
        )

    # -- workload and faults -----------------------------------------------------------------------

    def _write(self) -> None:
        live = self.faults.live()
        if not live:
            return
        i = self.workload.pick_node(live)
        node = self.nodes[i]
        assert node is not None
        keyspace = self.keyspaces[i]
        origin = f"n{i}.{self.faults.incarnation[i]}"
        key, schema, slices = self.workload.next_write(keyspace.entry, origin)
        now = self.clocks[i].now_ms(self.now)
        delta = keyspace.write(key, schema, slices, now).delta
        if delta is None:
            return
        self._on_changed(i, key)
        self.writes.acknowledged(key, delta, i, self.now)
        node.local_delta(key, delta, now)
        self._after(i)

    def _crash(self, spec: CrashSpec) -> None:
        for i in self.faults.crash_victims(spec):
            self.faults.crash(i, spec.down_s, spec.wipe)
            self.nodes[i] = None
            self.timer_token[i] += 1
            self.timer_at[i] = -1
            self.detections.crashed(i, self.now)
            if spec.down_s is not None:
                self._push_action(self.now + int(spec.down_s * 1000), "restart", i, spec.wipe)

    def _restart(self, i: int, wipe: bool) -> None:
        self.faults.restart(i, wipe)
        if wipe:
            self.keyspaces[i] = Keyspace()
            self.writes.node_wiped(i)
            self.monotone.forget_node(i)
        self._start_node(i)
        self.timer_at[i] = -1
        self._join(i)

    def _step_clocks(self, spec: ClockStepSpec) -> None:
        for i in self.faults.crash_victims(spec):
            self.clocks[i].step(spec.step_ms)
            self._after(i)

    def _action(self, what: str, a: Any, b: Any) -> None:
        if what == "write":
            self._write()
        elif what == "crash":
            self._crash(a)
        elif what == "restart":
            if not self.faults.alive[a]:
                self._restart(a, b)
        elif what == "partition":
            self.network.partition(a, b)
        elif what == "unpartition":
            self.network.unpartition(a, b, self.now)
        elif what == "stall":
            if self.network.faults_on:
                self.faults.stall(a, self.now + b)
        elif what == "clog":
            self.network.clog(a, self.now + b)
        elif what == "clock-step" and self.network.faults_on:
            self._step_clocks(a)

    # -- running -----------------------------------------------------------------------------------

    def _step(self, until_ms: int, budget: Callable[[], bool]) -> None:
        heap = self.heap
        nodes = self.nodes
        stalled_until = self.faults.stalled_until_ms
        while heap and heap[0][0] <= until_ms and budget():
            at, _, kind, a, b, c = heapq.heappop(heap)
            self.now = at
            if kind == _ACTION:
                self._action(a, b, c)
                stalled_until = self.faults.stalled_until_ms
                continue
            i: int = a
            node = nodes[i]
            if node is None:
                continue
            if stalled_until[i] > at:
                if kind == _TIMER:
                    if b != self.timer_token[i]:
                        continue
                    self.timer_token[i] += 1
                    self.timer_at[i] = stalled_until[i]
                    self._push(stalled_until[i], _TIMER, i, self.timer_token[i])
                else:
                    self._push(stalled_until[i], kind, a, b, c)
                continue
            now = self.clocks[i].now_ms(at)
            if kind == _DELIVER:
                self.delivered += 1
                self.trace.update(b"%d:%d:%d:%d;" % (at, b, i, len(c)))
                node.receive_datagram(c, self.addresses[b], now)
            elif kind == _STREAM:
                self.trace.update(b"s%d:%d:%d:%d;" % (at, b, i, len(c)))
                node.receive_stream(c, self.addresses[b], now)
            else:
                if b != self.timer_token[i]:
                    continue
                self.timer_at[i] = -1
                node.handle_timer(now)
            self._after(i)

    def _converged(self) -> bool:
        live = self.faults.live()
        return self.writes.all_held(live) and identical([self.keyspaces[j] for j in live])

    def run(self, wall_limit_s: float = 3600.0) -> dict[str, Any]:
        cfg = self.config
        started = time.perf_counter()

        def budget() -> bool:
            return time.perf_counter() - started < wall_limit_s

        self.faults.schedule(self._push_action)
        self.workload.schedule(self._push_action)
        safety_end = int(cfg.duration_s * 1000)
        self._step(safety_end, budget)
        # liveness: faults stop; crashed nodes without a restart stay down; loss stays
        self.network.heal(self.now)
        self.faults.heal()
        self.writes.mark_lost(self.faults.surviving())
        deadline = safety_end + int(cfg.heal_s * 1000)
        converged_at: int | None = None
        check = safety_end
        while check <= deadline and budget():
            self._step(check, budget)
            self.now = check
            if self._converged():
                converged_at = check
                break
            check += 250
        live = self.faults.live()
        result = report.build(
            cfg,
            converged_at_ms=converged_at,
            live=live,
            restarted=self.faults.restarted(),
            writes=self.writes,
            detections=self.detections,
            violations=self.monotone.violations,
            nodes=self.all_nodes,
            sim_ms=self.now,
            wall_s=time.perf_counter() - started,
            network={
                "stream_messages": self.stream_messages,
                "stream_bytes": self.stream_bytes,
                "datagrams_delivered": self.delivered,
            },
            trace_digest=self.trace.hexdigest(),
        )
        problems = list(self.monotone.violations[:5])
        if result["converged"]:
            problems += convergence_problems([(j, self.keyspaces[j]) for j in live], self.writes)
        result["problems"] = problems
        if problems:
            result["converged"] = False
        return result

    def fractions_over_time(self) -> list[tuple[list[int], list[float]]]:
        """Per write: (ms since the write, fraction of nodes holding it) steps, for plotting."""
        return self.writes.fractions_over_time(len(self.faults.live()))


def run(config: SimConfig, wall_limit_s: float = 3600.0) -> tuple[dict[str, Any], Simulation]:
    sim = Simulation(config)
    return sim.run(wall_limit_s), sim
