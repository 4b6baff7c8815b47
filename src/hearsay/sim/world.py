"""The deterministic simulator's driver: whole nodes on one event heap, one seed.

Why this module exists: bugs hide in rare interleavings (a lost datagram here, a partition
there, a crash in between). Here N real :class:`~hearsay.engine.replica.Replica` objects
(the command table, the keyspace, the gossip core with real membership; each staging into a
simulated disk, :mod:`~hearsay.sim.store`) run on one virtual timeline, each reading its own
clock (:mod:`~hearsay.sim.clock`), talking through :mod:`~hearsay.sim.network`, suffering
:mod:`~hearsay.sim.faults` and serving :mod:`~hearsay.sim.workload`, all drawn from one seed,
so any run replays exactly (TigerBeetle's VOPR and FoundationDB's simulation are the models).
This module only routes: it pops events, hands them to nodes, and tells the
:mod:`~hearsay.sim.checkers` what happened.

A run has two phases:

- **safety** (``duration_s``): clients send commands of every family (and DEL, EXPIRE) to
  random nodes while faults happen; after every change the *monotone* checker verifies that
  no entry went backwards and the *epoch bound* that no clock ran beyond the skew bound; at
  every crash the *durability* and *monotone* checkers verify that the disk kept what the
  fsync policy promised (the node comes back with its disk only);
- **liveness** (up to ``heal_s``): faults stop (partitions heal, stalled and crashed-for-good
  nodes stay as they are, loss stays), and the run must converge: every surviving write held by
  every live node, identical keyspaces (entries and bucket hashes) on all live nodes, and the
  answers of real read commands equal to those of one reference keyspace fed every write
  (deletes and expiry included).

A write is acknowledged when its reply would leave: at once under ``everysec``, after the
simulated store synced the batch holding it under ``always``.

Large transfers (:class:`~hearsay.protocol.events.StreamRequest`) are delivered reliably
after a delay proportional to their size, unless a partition or crash cuts them (then the
sender hears ``stream_failed``).
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable
from typing import Any, Final

import xxhash

from hearsay.base.gc_policy import tuned_gc
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import FLOOR_KEY, Keyspace
from hearsay.lattice.retired import RESERVED_KEY_PREFIX
from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import Ticket
from hearsay.persist.identity import NodeIdentity
from hearsay.protocol.envelope import Keyring
from hearsay.protocol.events import StreamRequest
from hearsay.protocol.membership import Address, MemberFailed, Membership
from hearsay.protocol.node import NodeConfig
from hearsay.protocol.presets import preset_by_name
from hearsay.resp.commands import ClientContext
from hearsay.sim import report
from hearsay.sim.checkers import (
    DetectionTracker,
    EpochBound,
    MonotoneChecker,
    Write,
    WriteTracker,
    convergence_problems,
    durability_problems,
    expired_unaware,
    identical,
    reply_problem,
    unconverged_problems,
)
from hearsay.sim.clock import BASE_UNIX_MS, NodeClock
from hearsay.sim.config import ClockStepSpec, CrashSpec, SimConfig
from hearsay.sim.faults import Faults
from hearsay.sim.network import Network
from hearsay.sim.node import command_table, start_replica
from hearsay.sim.store import EVERYSEC_SYNC_INTERVAL_MS, SimStore
from hearsay.sim.window_check import WindowRule, matching
from hearsay.sim.workload import MAY_FAIL, Workload

_DELIVER, _STREAM, _TIMER, _ACTION = 0, 1, 2, 3
FSYNC_MS: Final = 2
"""``always``: a staged batch is synced (and its writes acknowledged) this long after."""
SWEEP_INTERVAL_MS: Final = 100
"""Expiry sweeps run this often on a node holding keys with a deadline."""


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
        id_rng = random.Random(f"ids:{config.seed}")
        self.node_ids = [f"{id_rng.getrandbits(64):016x}" for _ in range(n)]
        """Node ids of real size (16 hex characters, as a real node's), from their own
        random stream."""
        self.index_of_id = {node_id: i for i, node_id in enumerate(self.node_ids)}
        self.policy = FsyncPolicy.parse(config.fsync)
        self.stores = [SimStore(self.policy, config.planted.store_drops_every) for _ in range(n)]
        self.registry = command_table()
        self.nodes: list[Replica | None] = [None] * n
        self.sessions = [ClientContext(client_id=1) for _ in range(n)]
        """One client connection per node (the workload's commands run in it)."""
        self.all_nodes: list[Replica] = []
        self.unacked: list[list[tuple[Ticket, list[Write]]]] = [[] for _ in range(n)]
        """``always``: writes whose replies wait for their flush's ticket."""
        self.sync_at = [-1] * n
        self.sweep_at = [-1] * n
        self.started_ms = [0] * n
        self.timer_at = [-1] * n
        self.timer_token = [0] * n
        self.heap: list[tuple[int, int, int, Any, Any, Any]] = []
        self.seq = 0
        self.now = 0
        self.loss_window_ms = (
            FSYNC_MS if self.policy is FsyncPolicy.ALWAYS else EVERYSEC_SYNC_INTERVAL_MS
        )
        """What a crash may take: changes staged this recently are not synced yet."""
        self.window_rule = WindowRule(BASE_UNIX_MS, self._skew_bound_ms, self._behind_bound_ms)
        self.monotone = MonotoneChecker(self.loss_window_ms, self.window_rule)
        self.epochs = EpochBound(BASE_UNIX_MS, self._skew_bound_ms)
        self.durability: list[str] = []
        self.reply_problems: list[str] = []
        self.writes = WriteTracker()
        self.detections = DetectionTracker(
            self.preset.suspicion_max_ms(n) + 4 * self.preset.probe_interval_ms,
            int(config.warmup_s * 1000),
        )
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
            clocks = [NodeClock() for _ in range(self.config.nodes)]
        else:
            rng = random.Random(f"clock:{self.config.seed}")
            clocks = [
                NodeClock(
                    rng.randint(-skew.max_offset_ms, skew.max_offset_ms),
                    rng.randint(-skew.max_drift_ppm, skew.max_drift_ppm),
                )
                for _ in range(self.config.nodes)
            ]
        clocks[0].step(self.config.planted.clock_error_ms)
        return clocks

    def _skew_bound_ms(self, sim_ms: int) -> int:
        """How far ahead of true time a node's clock may be at ``sim_ms``: the documented
        bound the checkers hold the nodes to (see docs/design.md, the simulator)."""
        skew = self.config.skew
        bound = 0 if skew is None else skew.max_offset_ms + skew.max_drift_ppm * sim_ms // 10**6
        return bound + sum(max(0, s.step_ms) for s in self.config.clock_steps)

    def _behind_bound_ms(self, sim_ms: int) -> int:
        """How far behind true time a node's clock may be at ``sim_ms`` (the window rule's
        other side: a windowed slice is dead on every clock this long after its death)."""
        skew = self.config.skew
        bound = 0 if skew is None else skew.max_offset_ms + skew.max_drift_ppm * sim_ms // 10**6
        return bound + sum(max(0, -s.step_ms) for s in self.config.clock_steps)

    def _start_node(self, i: int) -> None:
        """Start (or restart) node ``i`` from what its disk holds."""
        cfg = self.config
        rng = random.Random(self.rng.getrandbits(64))
        membership = None
        now = self.clocks[i].now_ms(self.now)
        generation = self.faults.generation[i]
        if cfg.membership:
            membership = Membership(
                self.node_ids[i],
                generation,
                self.addresses[i],
                self.preset,
                rng,
                now_ms=now,
                budget_bytes=self.node_config.udp_payload_bytes_max - 80,
            )
        keyring = Keyring(self.keyring_key) if self.keyring_key is not None else None
        node = start_replica(
            self.addresses[i],
            identity=NodeIdentity(
                self.node_ids[i], generation, write_origin=f"{self.node_ids[i]}.{generation}"
            ),
            store=self.stores[i],
            commands=self.registry,
            rng=rng,
            config=self.node_config,
            keyring=keyring,
            membership=membership,
            now_ms=now,
        )
        self.sessions[i] = ClientContext(client_id=1, db=node)
        self.nodes[i] = node
        self.started_ms[i] = self.now
        self.all_nodes.append(node)
        for key, _ in node.keyspace.items():
            self._on_changed(i, key)

    def _join(self, i: int) -> None:
        node = self.nodes[i]
        assert node is not None
        if self.config.membership:
            seeds = [a for a in self.addresses[:3] if a != self.addresses[i]]
            node.join(seeds, self.clocks[i].now_ms(self.now))
        else:
            gossip = node.node
            assert gossip is not None
            for a in self.addresses:
                gossip.add_peer(a)
        self._after(i)

    # -- the event heap --------------------------------------------------------------------------

    def _push(self, at: int, kind: int, a: Any, b: Any = None, c: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, a, b, c))

    def _push_action(self, at: int, what: str, a: Any, b: Any) -> None:
        self._push(at, _ACTION, what, a, b)

    def _after(self, i: int) -> None:
        """Collect what node ``i`` wants to send, its events and its next timer, and flush
        what it changed to its store (the checkers observe each staged key)."""
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
            if isinstance(event, StreamRequest):
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
        self._flush(i, node)
        sweep_ms = self._sweep_due(i, node)
        if sweep_ms is not None and (self.sweep_at[i] < 0 or sweep_ms < self.sweep_at[i]):
            self.sweep_at[i] = sweep_ms
            self._push_action(self.sweep_at[i], "sweep", i, self.faults.generation[i])

    def _sweep_due(self, i: int, node: Replica) -> int | None:
        """When node ``i`` next sweeps: every interval while it holds keys with a deadline,
        else when its next windowed slice dies (by its clock; None: nothing to sweep)."""
        if node.keyspace.expiring_count:
            return self.now + SWEEP_INTERVAL_MS
        due_ms = node.windows.next_due_ms()
        if due_ms is None:
            return None
        return max(self.now + SWEEP_INTERVAL_MS, self.clocks[i].sim_at(due_ms, self.now))

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
        self._push(self.now + delay, _STREAM, j, i, (event.hello, event.data))

    # -- what the checkers hear --------------------------------------------------------------------

    def _on_changed(self, i: int, key: bytes) -> None:
        node = self.nodes[i]
        entry = None if node is None else node.keyspace.entry(key)
        if entry is None:
            return
        if self.config.check_monotone:
            self.monotone.observe(i, key, entry, self.now)
        self.epochs.observe(i, key, entry, self.now)
        self.writes.observe(i, key, entry, self.now)

    def _on_failed(self, observer: int, event: MemberFailed) -> None:
        target = self.index_of_id.get(event.node_id)
        if target is None:
            return
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
        """One client runs its commands on a random live node; each change is a write."""
        live = self.faults.live()
        if not live:
            return
        i = self.workload.pick_node(live)
        node = self.nodes[i]
        assert node is not None
        now = self.clocks[i].now_ms(self.now)
        written: list[Write] = []
        for args in self.workload.next_commands():
            key = FLOOR_KEY if args[0] == b"FLUSHALL" else args[1]
            before = node.keyspace.entry(key)
            before = None if before is None else before.copy()
            if args[0] == b"DEL" and self.config.planted.del_not_gossiped:
                node.keyspace.delete(key, now)  # the planted bug: around the write funnel
            else:
                reply = node.execute(self.sessions[i], args, now)
                problem = reply_problem(i, args, reply, MAY_FAIL, self.now)
                if problem is not None:
                    self.reply_problems.append(problem)
            delta = _grown(before, node.keyspace.entry(key))
            if delta is None:
                continue
            self._on_changed(i, key)
            write = self.writes.executed(key, delta, i, self.now)
            self._already_held(write)
            written.append(write)
        ticket = node.flush()  # as the runtime does after a batch of commands
        if ticket is not None and not ticket.done():
            self.unacked[i].append((ticket, written))
        else:
            for write in written:
                write.acked_ms = self.now
        self._after(i)

    def _already_held(self, write: Write) -> None:
        """Nodes that hold a write before it reaches them: a DEL they saw already outranks
        a write made in the old epoch, or another node's write set the same slots; they
        will never change on its account (``observe`` checks that they hold it)."""
        for j, node in enumerate(self.nodes):
            if node is not None and j != write.writer:
                entry = node.keyspace.entry(write.key)
                if entry is not None:
                    self.writes.observe(j, write.key, entry, self.now)

    def _flush(self, i: int, node: Replica) -> None:
        """Stage node ``i``'s changed keys (the checkers see each) and plan the next sync.
        Entries a FLUSHALL condemned are dropped first, a bounded step at a time (as the
        runtime's housekeeping does), so the store deletes them in this flush."""
        if node.sweep_pending:
            node.sweep_floor()
        node.flush()
        store = self.stores[i]
        for key in store.take_staged_keys():
            self._on_changed(i, key)
        if store.unsynced and self.sync_at[i] < 0:
            always = self.policy is FsyncPolicy.ALWAYS
            self.sync_at[i] = self.now + (FSYNC_MS if always else EVERYSEC_SYNC_INTERVAL_MS)
            self._push_action(self.sync_at[i], "sync", i, self.faults.generation[i])

    def _sync(self, i: int) -> None:
        """The store syncs: writes whose tickets completed are acknowledged."""
        self.sync_at[i] = -1
        self.stores[i].sync()
        waiting = []
        for ticket, written in self.unacked[i]:
            if ticket.done():
                for write in written:
                    write.acked_ms = self.now
            else:
                waiting.append((ticket, written))
        self.unacked[i] = waiting

    def _sweep(self, i: int) -> None:
        node = self.nodes[i]
        assert node is not None
        self.sweep_at[i] = -1
        node.expire_due(self.clocks[i].now_ms(self.now))
        self._after(i)

    def _crash(self, spec: CrashSpec) -> None:
        for i in self.faults.pick_live(spec.count, leave_one=True):
            self.faults.crash(i, spec.down_s, spec.wipe)
            self.nodes[i] = None
            self.timer_token[i] += 1
            self.timer_at[i] = -1
            self.sync_at[i] = self.sweep_at[i] = -1
            self.unacked[i].clear()  # their clients saw the connection drop: never acknowledged
            self.stores[i].crash()
            disk = self.stores[i].load()
            self.durability += durability_problems(
                i,
                disk,
                self.writes,
                loss_window_ms=0 if self.policy is FsyncPolicy.ALWAYS else self.loss_window_ms,
                crash_ms=self.now,
                started_ms=self.started_ms[i],
                window=self.window_rule,
            )
            self.writes.node_crashed(i, disk)
            if self.config.check_monotone:
                self.monotone.crashed(i, disk, self.now)
            self.detections.crashed(i, self.now)
            if spec.down_s is not None:
                self._push_action(self.now + int(spec.down_s * 1000), "restart", i, spec.wipe)

    def _restart(self, i: int, wipe: bool) -> None:
        self.faults.restart(i)
        if wipe:
            self.stores[i].wipe()
            self.writes.node_wiped(i)
        self._start_node(i)
        self.timer_at[i] = -1
        self._join(i)

    def _step_clocks(self, spec: ClockStepSpec) -> None:
        for i in self.faults.pick_live(spec.count, leave_one=False):
            self.clocks[i].step(spec.step_ms)
            self._after(i)

    def _life_action(self, what: str, i: int, generation: int) -> None:
        """A node's own housekeeping (sync, sweep), unless it crashed since."""
        if not self.faults.alive[i] or self.faults.generation[i] != generation:
            return
        if what == "sweep":
            self._sweep(i)
        else:
            self._sync(i)

    def _action(self, what: str, a: Any, b: Any) -> None:
        if what in ("sync", "sweep"):
            self._life_action(what, a, b)
        elif what == "write":
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
            elif kind == _STREAM:  # as the runtime: the hello is checked before the body
                hello, data = c
                self.trace.update(b"s%d:%d:%d:%d;" % (at, b, i, len(data)))
                source = self.addresses[b]
                if node.open_stream_hello(hello, source, now) == (source[1], len(data)):
                    for _ in node.receive_stream_steps(data, source, now):
                        pass
            else:
                if b != self.timer_token[i]:
                    continue
                self.timer_at[i] = -1
                node.handle_timer(now)
            self._after(i)

    def _converged(self) -> bool:
        live = self.faults.live()
        self.writes.end_windowed(self.window_rule, self.now)
        return self.writes.all_held(live) and identical(self._keyspaces(live))

    def _keyspaces(self, live: list[int]) -> list[Keyspace]:
        out = []
        for j in live:
            node = self.nodes[j]
            assert node is not None
            out.append(node.keyspace)
        return out

    def run(self, wall_limit_s: float = 3600.0) -> dict[str, Any]:
        """Run the safety phase, then heal and wait for convergence; the report."""
        with tuned_gc():  # the collector as a real node runs it (base/gc_policy.py)
            return self._run(wall_limit_s)

    def _run(self, wall_limit_s: float) -> dict[str, Any]:
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
            violations=self.monotone.violations
            + self.epochs.violations
            + self.durability
            + self.reply_problems,
            nodes=[node.node for node in self.all_nodes if node.node is not None],
            sim_ms=self.now,
            wall_s=time.perf_counter() - started,
            network={
                "stream_messages": self.stream_messages,
                "stream_bytes": self.stream_bytes,
                "datagrams_delivered": self.delivered,
            },
            trace_digest=self.trace.hexdigest(),
        )
        result["monotone_violations"] = len(self.monotone.violations)
        result["clock_violations"] = len(self.epochs.violations)
        result["durability_violations"] = len(self.durability)
        result["reply_errors"] = len(self.reply_problems)
        result["expired_unaware"] = 0  # (counted below, once the keyspaces are compared)
        result["writes_acknowledged"] = sum(w.acked_ms is not None for w in self.writes.writes)
        problems = [
            *self.monotone.violations[:5],
            *self.epochs.violations[:5],
            *self.durability[:5],
            *self.reply_problems[:5],
        ]
        if result["converged"]:
            keyspaces = list(zip(live, self._keyspaces(live), strict=True))
            first = self.nodes[live[0]]
            assert first is not None
            reference = Replica(
                NodeIdentity("reference", 1), self.writes.reference, commands=self.registry
            )
            answers = self._answers(first)
            ended = expired_unaware(first.keyspace, self.writes)
            result["expired_unaware"] = len(ended)
            instants = [self.now, *self.window_rule.instants_ms(self.writes.reference, self.now)]
            problems += convergence_problems(
                keyspaces,
                self.writes,
                answers,
                matching(answers, [self._answers(reference, at) for at in instants]),
                ended,
            )
            for j, keyspace in keyspaces:
                problems += self.window_rule.kept_dead(j, keyspace, self.now, SWEEP_INTERVAL_MS)
        elif result["writes_unconverged"]:
            problems += unconverged_problems(self.writes, live)
        result["problems"] = problems
        if problems:
            result["converged"] = False
        return result

    def _answers(self, replica: Replica, at_ms: int | None = None) -> dict[bytes, list[object]]:
        """The workload's read commands on ``replica`` at one true instant (now unless
        ``at_ms``), for every key ever written."""
        session = ClientContext(client_id=0, db=replica)
        now = BASE_UNIX_MS + (self.now if at_ms is None else at_ms)
        return {
            key: [replica.execute(session, args, now) for args in self.workload.reads(key)]
            for key, _ in self.writes.reference.items()
            if not key.startswith(RESERVED_KEY_PREFIX)  # (the flush floor: no reads)
        }

    def fractions_over_time(self) -> list[tuple[list[int], list[float]]]:
        """Per write: (ms since the write, fraction of nodes holding it) steps, for plotting."""
        return self.writes.fractions_over_time(len(self.faults.live()))


def _grown(before: Entry | None, after: Entry | None) -> Entry | None:
    """What a command changed: exactly what ``after`` holds beyond ``before`` (None: nothing)."""
    if after is None:
        return None
    if before is None:
        return after.copy()
    return before.merge(after).delta


def run(config: SimConfig, wall_limit_s: float = 3600.0) -> tuple[dict[str, Any], Simulation]:
    sim = Simulation(config)
    return sim.run(wall_limit_s), sim
