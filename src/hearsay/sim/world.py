"""The deterministic simulator: real gossip cores, a simulated network, one virtual clock.

Why this module exists: gossip bugs hide in rare interleavings (a lost datagram here, a
partition there, a restart in between). Here N real :class:`~hearsay.protocol.node.GossipNode`
objects (with real membership) talk through a network that loses, duplicates, delays and
reorders datagrams, partitions (symmetric or one-way), clogs links, crashes and restarts nodes
and stalls them, all driven by one event heap and one seed, so any run replays exactly
(TigerBeetle's VOPR and FoundationDB's simulation are the models).

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
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import xxhash

from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector
from hearsay.protocol.envelope import Keyring
from hearsay.protocol.events import KeyChanged, StreamRequest
from hearsay.protocol.membership import Address, MemberFailed, Membership
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.protocol.presets import preset_by_name
from hearsay.sketch import schemas
from hearsay.sketch.counter import PNCounter
from hearsay.sketch.hll_view import HyperLogLog

BASE_UNIX_MS: Final = 1_700_000_000_000
"""Virtual time 0 (the nodes see unix milliseconds, as in production)."""
_DELIVER, _STREAM, _TIMER, _ACTION = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class PartitionSpec:
    """Nodes split in two sides from ``start_s`` to ``end_s``; ``fraction`` on side A."""

    start_s: float
    end_s: float
    fraction: float = 0.5
    one_way: bool = False
    """Only A -> B is cut (B still reaches A)."""

    @classmethod
    def parse(cls, text: str) -> PartitionSpec:
        parts = text.split(":")
        if not 2 <= len(parts) <= 4:
            raise ValueError("partition: START_S:END_S[:FRACTION[:oneway]]")
        fraction = float(parts[2]) if len(parts) > 2 else 0.5
        one_way = len(parts) > 3 and parts[3] in ("oneway", "one-way", "1")
        spec = cls(float(parts[0]), float(parts[1]), fraction, one_way)
        if not 0 <= spec.start_s < spec.end_s or not 0 < fraction < 1:
            raise ValueError(f"invalid partition {text!r}")
        return spec

    def text(self) -> str:
        return f"{self.start_s:g}:{self.end_s:g}:{self.fraction:g}" + (
            ":oneway" if self.one_way else ""
        )


@dataclass(frozen=True, slots=True)
class CrashSpec:
    """``count`` random live nodes crash at ``at_s``; back after ``down_s`` (None: never)."""

    at_s: float
    count: int = 1
    down_s: float | None = None
    wipe: bool = False
    """The restarted node lost its disk (comes back empty)."""

    @classmethod
    def parse(cls, text: str) -> CrashSpec:
        parts = text.split(":")
        if not 1 <= len(parts) <= 4:
            raise ValueError("crash: AT_S[:COUNT[:DOWN_S[:wipe]]]")
        count = int(parts[1]) if len(parts) > 1 else 1
        down = float(parts[2]) if len(parts) > 2 and parts[2] not in ("", "never") else None
        wipe = len(parts) > 3 and parts[3] == "wipe"
        spec = cls(float(parts[0]), count, down, wipe)
        if spec.at_s < 0 or count < 1 or (down is not None and down <= 0):
            raise ValueError(f"invalid crash {text!r}")
        return spec

    def text(self) -> str:
        down = "never" if self.down_s is None else f"{self.down_s:g}"
        return f"{self.at_s:g}:{self.count}:{down}" + (":wipe" if self.wipe else "")


@dataclass(frozen=True, slots=True)
class SimConfig:
    nodes: int = 16
    seed: int = 1
    loss: float = 0.0
    duplicate: float = 0.0
    delay_min_ms: int = 1
    delay_max_ms: int = 10
    preset: str = "lan"
    duration_s: float = 20.0
    heal_s: float = 60.0
    writes: int = 100
    keys: int = 16
    partitions: tuple[PartitionSpec, ...] = ()
    crashes: tuple[CrashSpec, ...] = ()
    stall_fraction: float = 0.0
    """Fraction of nodes that stall now and then during the safety phase."""
    stall_max_ms: int = 1000
    clog_fraction: float = 0.0
    """Fraction of nodes whose links are clogged (extra delay) for a while."""
    clog_ms: int = 500
    membership: bool = True
    encrypt: bool = False
    check_monotone: bool = True
    stream_bytes_per_s: int = 50_000_000
    warmup_s: float = 0.0
    """Convictions of running nodes before this are counted apart (cluster formation)."""
    node_config: dict[str, Any] = field(default_factory=dict)

    def command(self) -> str:
        """The command line that reproduces this run."""
        args = [
            "hearsay",
            "sim",
            f"--nodes={self.nodes}",
            f"--seed={self.seed}",
            f"--loss={self.loss:g}",
            f"--duplicate={self.duplicate:g}",
            f"--delay-ms={self.delay_min_ms}:{self.delay_max_ms}",
            f"--preset={self.preset}",
            f"--duration-s={self.duration_s:g}",
            f"--heal-s={self.heal_s:g}",
            f"--writes={self.writes}",
            f"--keys={self.keys}",
        ]
        args += [f"--partition={p.text()}" for p in self.partitions]
        args += [f"--crash={c.text()}" for c in self.crashes]
        if self.stall_fraction:
            args.append(f"--stall={self.stall_fraction:g}:{self.stall_max_ms}")
        if self.clog_fraction:
            args.append(f"--clog={self.clog_fraction:g}:{self.clog_ms}")
        if not self.membership:
            args.append("--no-membership")
        if self.encrypt:
            args.append("--encrypt")
        if not self.check_monotone:
            args.append("--no-check-monotone")
        if self.warmup_s:
            args.append(f"--warmup-s={self.warmup_s:g}")
        args += [f"--node-config={k}={v}" for k, v in sorted(self.node_config.items())]
        return " ".join(shlex.quote(a) for a in args)


@dataclass(slots=True)
class _Write:
    key: bytes
    delta: Entry
    at_ms: int
    writer: int
    held_at: dict[int, int] = field(default_factory=dict)
    lost: bool = False


def _percentiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    arr = np.array(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


def _holds(entry: Entry | None, delta: Entry) -> bool:
    """``entry >= delta`` in the lattice order (cheap for the small deltas clients write)."""
    if entry is None:
        return False
    if entry.epoch != delta.epoch:
        return entry.epoch > delta.epoch
    if entry.schema != delta.schema:
        return entry.outranks(delta)
    for origin, vector in delta.slices():
        mine = entry.slice(origin)
        idx, val = vector.pairs()
        for i, v in zip(idx.tolist(), val.tolist(), strict=True):
            if mine.get(i) < v:
                return False
    return True


def _covers(newer: Entry, older: Entry) -> bool:
    """Monotone check: merging ``older`` into a copy of ``newer`` changes nothing."""
    return not newer.copy().merge(older).changed


class Simulation:
    """One seeded run. ``run()`` returns the metrics (``converged`` False on any failure)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.net_rng = random.Random(self.rng.getrandbits(64))
        self.work_rng = random.Random(self.rng.getrandbits(64))
        self.preset = preset_by_name(config.preset)
        self.node_config = NodeConfig.from_preset(self.preset, **config.node_config)
        n = config.nodes
        self.addresses: list[Address] = [
            (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 7000) for i in range(n)
        ]
        self.index_of = {a: i for i, a in enumerate(self.addresses)}
        self.keyspaces = [Keyspace() for _ in range(n)]
        self.nodes: list[GossipNode | None] = [None] * n
        self.generation = [1] * n
        self.incarnation = [0] * n
        self.alive = [True] * n
        self.restarting: dict[int, bool] = {}
        """Crashed nodes that will restart, and whether their disk was wiped."""
        self.all_nodes: list[GossipNode] = []
        self.stalled_until = [0] * n
        self.clogged_until = [0] * n
        self.timer_at = [-1] * n
        self.timer_token = [0] * n
        self.heap: list[tuple[int, int, int, Any, Any, Any]] = []
        self.seq = 0
        self.now = 0
        self.side_a: list[set[int]] = []
        self.partitions_active: list[tuple[set[int], bool]] = []
        self.faults_on = True
        self.writes: list[_Write] = []
        self.pending_by_key: dict[bytes, list[int]] = {}
        self.reference = Keyspace()
        self.shadow: dict[tuple[int, bytes], Entry] = {}
        self.violations: list[str] = []
        self.detections: list[tuple[int, int, dict[int, int]]] = []
        """(crashed node, crash time, observer -> time it saw the node failed)."""
        self.false_failures = 0
        """Running nodes convicted while no partition could explain it."""
        self.partition_failures = 0
        """Running nodes convicted during (or just after) a partition: correct behaviour."""
        self.partition_ended_ms: int | None = None
        self.warmup_failures = 0
        """Running nodes convicted while the cluster was still forming (before warmup_s)."""
        self.stream_messages = 0
        self.stream_bytes = 0
        self.delivered = 0
        self.trace = xxhash.xxh3_64()
        self.keyring_key = self.rng.randbytes(32) if config.encrypt else None
        self.keys = self._make_keys()
        for i in range(n):
            self._start_node(i)
        seeds = self.addresses[: min(3, n)]
        for i in range(n):
            node = self.nodes[i]
            assert node is not None
            if config.membership:
                node.join([s for s in seeds if s != self.addresses[i]], BASE_UNIX_MS)
            else:
                for a in self.addresses:
                    node.add_peer(a)
            self._after(i)

    # -- set-up --------------------------------------------------------------------------------

    def _make_keys(self) -> list[tuple[bytes, Schema]]:
        kinds = [schemas.hll(), schemas.vector(), schemas.counter()]
        return [
            (f"{kinds[k % 3].kind}:{k}".encode(), kinds[k % 3]) for k in range(self.config.keys)
        ]

    def _start_node(self, i: int) -> None:
        cfg = self.config
        rng = random.Random(self.rng.getrandbits(64))
        membership = None
        now = BASE_UNIX_MS + self.now
        if cfg.membership:
            membership = Membership(
                f"n{i}",
                self.generation[i],
                self.addresses[i],
                self.preset,
                rng,
                now_ms=now,
                budget_bytes=self.node_config.udp_payload_bytes_max - 80,
            )
        keyring = Keyring(self.keyring_key) if self.keyring_key is not None else None
        self.nodes[i] = GossipNode(
            self.addresses[i],
            rng=rng,
            keyspace=self.keyspaces[i],
            config=self.node_config,
            keyring=keyring,
            membership=membership,
            now_ms=now,
        )
        self.all_nodes.append(self.nodes[i])  # type: ignore[arg-type]

    # -- the event heap --------------------------------------------------------------------------

    def _push(self, at: int, kind: int, a: Any, b: Any = None, c: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, a, b, c))

    def _blocked(self, src: int, dst: int) -> bool:
        for side, one_way in self.partitions_active:
            in_a, to_a = src in side, dst in side
            if in_a != to_a and (not one_way or in_a):
                return True
        return False

    def _link_delay(self, src: int, dst: int) -> int:
        cfg = self.config
        delay = self.net_rng.randint(cfg.delay_min_ms, cfg.delay_max_ms)
        if self.clogged_until[src] > self.now or self.clogged_until[dst] > self.now:
            delay += cfg.clog_ms
        return delay

    def _after(self, i: int) -> None:
        """Collect what node ``i`` wants to send, its events and its next timer."""
        node = self.nodes[i]
        if node is None:
            return
        cfg = self.config
        rng = self.net_rng
        for data, dest in node.datagrams_to_send():
            j = self.index_of.get(dest)
            if j is None or (self.faults_on and self._blocked(i, j)):
                continue
            if rng.random() < cfg.loss:
                continue
            self._push(self.now + self._link_delay(i, j), _DELIVER, j, i, data)
            if self.faults_on and cfg.duplicate and rng.random() < cfg.duplicate:
                self._push(self.now + self._link_delay(i, j), _DELIVER, j, i, data)
        while (event := node.next_event()) is not None:
            if isinstance(event, KeyChanged):
                self._on_changed(i, event.key)
            elif isinstance(event, StreamRequest):
                self._on_stream(i, event)
            elif isinstance(event, MemberFailed):
                self._on_failed(i, event)
        timer = node.get_timer()
        if timer is not None:
            at = max(timer - BASE_UNIX_MS, self.now)
            if at != self.timer_at[i]:
                self.timer_token[i] += 1
                self.timer_at[i] = at
                self._push(at, _TIMER, i, self.timer_token[i])

    def _on_stream(self, i: int, event: StreamRequest) -> None:
        j = self.index_of.get(event.peer)
        self.stream_messages += 1
        self.stream_bytes += len(event.data)
        node = self.nodes[i]
        if j is None or not self.alive[j] or (self.faults_on and self._blocked(i, j)):
            if node is not None:
                node.stream_failed(event.stream_id)
            return
        delay = (
            self._link_delay(i, j) * 3 + len(event.data) * 1000 // self.config.stream_bytes_per_s
        )
        self._push(self.now + delay, _STREAM, j, i, event.data)

    # -- checkers ----------------------------------------------------------------------------------

    def _on_changed(self, i: int, key: bytes) -> None:
        entry = self.keyspaces[i].entry(key)
        if entry is None:
            return
        if self.config.check_monotone:
            previous = self.shadow.get((i, key))
            if previous is not None and not _covers(entry, previous):
                self.violations.append(
                    f"monotone: node {i} key {key!r} went from {previous} to {entry} "
                    f"at {self.now} ms"
                )
            self.shadow[(i, key)] = entry.copy()
        pending = self.pending_by_key.get(key)
        if not pending:
            return
        for w in pending:
            write = self.writes[w]
            if i not in write.held_at and _holds(entry, write.delta):
                write.held_at[i] = self.now

    def _on_failed(self, observer: int, event: MemberFailed) -> None:
        if not event.node_id.startswith("n"):
            return
        target = int(event.node_id[1:])
        running = self.alive[target] and event.generation == self.generation[target]
        if running:
            recent_partition = self.partitions_active or (
                self.partition_ended_ms is not None
                and self.now - self.partition_ended_ms < self.preset.dead_timeout_ms
            )
            if recent_partition:
                self.partition_failures += 1
            elif self.now < self.config.warmup_s * 1000:
                self.warmup_failures += 1
            else:
                self.false_failures += 1
            return
        for crashed, _at, seen in self.detections:
            if crashed == target and observer not in seen:
                seen[observer] = self.now

    # -- workload and faults -----------------------------------------------------------------------

    def _write(self) -> None:
        live = [i for i in range(self.config.nodes) if self.alive[i]]
        if not live:
            return
        rng = self.work_rng
        i = rng.choice(live)
        node = self.nodes[i]
        assert node is not None
        key, schema = self.keys[rng.randrange(len(self.keys))]
        keyspace = self.keyspaces[i]
        now = BASE_UNIX_MS + self.now
        entry = keyspace.entry(key)
        if schema.kind == "hll":
            members = [rng.randbytes(8) for _ in range(rng.randint(1, 4))]
            idx, val = HyperLogLog().add(members)
            slices = {"": MaxVector.from_pairs(idx, val)}
        elif schema.kind == "counter":
            origin = f"n{i}.{self.incarnation[i]}"
            current = {} if entry is None else dict(entry.slices())
            pairs, _ = PNCounter().incrby(current, origin, rng.randint(-5, 20) or 1)
            slices = {origin: MaxVector.from_pairs(*pairs)}
        else:
            count = rng.randint(1, 3)
            idx_list = [rng.randrange(1 << 20) for _ in range(count)]
            slices = {"": MaxVector.from_pairs(idx_list, [rng.randint(1, 1000)] * count)}
        result = keyspace.write(key, schema, slices, now)
        delta = result.delta
        if delta is None:
            return
        self._on_changed(i, key)
        self.reference.merge(key, delta)
        w = len(self.writes)
        self.writes.append(_Write(key, delta, self.now, i, {i: self.now}))
        self.pending_by_key.setdefault(key, []).append(w)
        node.local_delta(key, delta, now)
        self._after(i)

    def _crash(self, spec: CrashSpec) -> None:
        live = [i for i in range(self.config.nodes) if self.alive[i]]
        victims = self.rng.sample(live, min(spec.count, max(0, len(live) - 1)))
        for i in victims:
            self.alive[i] = False
            self.nodes[i] = None
            self.timer_token[i] += 1
            self.timer_at[i] = -1
            self.detections.append((i, self.now, {}))
            if spec.down_s is not None:
                self.restarting[i] = spec.wipe
                self._push(self.now + int(spec.down_s * 1000), _ACTION, "restart", i, spec.wipe)

    def _restart(self, i: int, wipe: bool) -> None:
        self.generation[i] += 1
        if wipe:
            self.incarnation[i] += 1
            self.keyspaces[i] = Keyspace()
            for w in self.writes:
                w.held_at.pop(i, None)
            for key in [k for (n, k) in self.shadow if n == i]:
                del self.shadow[(i, key)]
            for w in self.writes:
                if w.writer == i and not w.held_at:
                    w.lost = True
        self.alive[i] = True
        self.restarting.pop(i, None)
        self._start_node(i)
        node = self.nodes[i]
        assert node is not None
        seeds = [a for a in self.addresses[:3] if a != self.addresses[i]]
        if self.config.membership:
            node.join(seeds, BASE_UNIX_MS + self.now)
        else:
            for a in self.addresses:
                node.add_peer(a)
        self.timer_at[i] = -1
        self._after(i)

    def _mark_lost_on_crash(self) -> None:
        """Writes only a crashed-for-good (or wiped) node ever held are lost, legitimately."""
        for w in self.writes:
            if not w.lost and not any(
                self.alive[j] or self.restarting.get(j) is False for j in w.held_at
            ):
                w.lost = True

    def _schedule_faults(self) -> None:
        cfg = self.config
        duration_ms = int(cfg.duration_s * 1000)
        for spec in cfg.partitions:
            side = set(self.rng.sample(range(cfg.nodes), max(1, int(cfg.nodes * spec.fraction))))
            self._push(int(spec.start_s * 1000), _ACTION, "partition", side, spec.one_way)
            self._push(int(spec.end_s * 1000), _ACTION, "unpartition", side, spec.one_way)
        for crash in cfg.crashes:
            self._push(int(crash.at_s * 1000), _ACTION, "crash", crash)
        for _ in range(cfg.writes):
            at = self.work_rng.randint(min(500, duration_ms // 4), max(1, duration_ms - 1))
            self._push(at, _ACTION, "write")
        stallers = self.rng.sample(range(cfg.nodes), int(cfg.nodes * cfg.stall_fraction))
        for i in stallers:
            t = self.rng.randint(0, max(1, cfg.stall_max_ms * 5))
            while t < duration_ms:
                length = self.rng.randint(cfg.stall_max_ms // 4, cfg.stall_max_ms)
                self._push(t, _ACTION, "stall", i, length)
                t += length + self.rng.randint(cfg.stall_max_ms * 2, cfg.stall_max_ms * 10)
        for i in self.rng.sample(range(cfg.nodes), int(cfg.nodes * cfg.clog_fraction)):
            at = self.rng.randint(0, max(1, duration_ms - 1))
            self._push(at, _ACTION, "clog", i, self.rng.randint(1000, 5000))

    def _action(self, what: str, a: Any, b: Any) -> None:
        if what == "write":
            self._write()
        elif what == "crash":
            self._crash(a)
        elif what == "restart":
            if not self.alive[a]:
                self._restart(a, b)
        elif what == "partition":
            if self.faults_on:
                self.partitions_active.append((a, b))
        elif what == "unpartition":
            if (a, b) in self.partitions_active:
                self.partitions_active.remove((a, b))
                self.partition_ended_ms = self.now
        elif what == "stall":
            if self.faults_on:
                self.stalled_until[a] = max(self.stalled_until[a], self.now + b)
        elif what == "clog" and self.faults_on:
            self.clogged_until[a] = max(self.clogged_until[a], self.now + b)

    # -- running -----------------------------------------------------------------------------------

    def _step(self, until_ms: int, budget: Callable[[], bool]) -> None:
        heap = self.heap
        nodes = self.nodes
        while heap and heap[0][0] <= until_ms and budget():
            at, _, kind, a, b, c = heapq.heappop(heap)
            self.now = at
            if kind == _ACTION:
                self._action(a, b, c)
                continue
            i: int = a
            node = nodes[i]
            if node is None:
                continue
            if self.stalled_until[i] > at:
                if kind == _TIMER:
                    if b != self.timer_token[i]:
                        continue
                    self.timer_token[i] += 1
                    self.timer_at[i] = self.stalled_until[i]
                    self._push(self.stalled_until[i], _TIMER, i, self.timer_token[i])
                else:
                    self._push(self.stalled_until[i], kind, a, b, c)
                continue
            now = BASE_UNIX_MS + at
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

    def _live(self) -> list[int]:
        return [i for i in range(self.config.nodes) if self.alive[i]]

    def _all_held(self) -> bool:
        live = self._live()
        for w in self.writes:
            if w.lost:
                continue
            if len(w.held_at) < len(live) and any(j not in w.held_at for j in live):
                return False
        return True

    def _identical(self) -> bool:
        live = self._live()
        first = self.keyspaces[live[0]].bucket_hashes()
        return all(np.array_equal(first, self.keyspaces[j].bucket_hashes()) for j in live[1:])

    def run(self, wall_limit_s: float = 3600.0) -> dict[str, Any]:
        cfg = self.config
        started = time.perf_counter()

        def budget() -> bool:
            return time.perf_counter() - started < wall_limit_s

        self._schedule_faults()
        safety_end = int(cfg.duration_s * 1000)
        self._step(safety_end, budget)
        # liveness: faults stop; crashed nodes without a restart stay down; loss stays
        self.faults_on = False
        if self.partitions_active:
            self.partition_ended_ms = self.now
        self.partitions_active.clear()
        self.stalled_until = [0] * cfg.nodes
        self.clogged_until = [0] * cfg.nodes
        self._mark_lost_on_crash()
        deadline = safety_end + int(cfg.heal_s * 1000)
        converged_at: int | None = None
        check = safety_end
        while check <= deadline and budget():
            self._step(check, budget)
            self.now = check
            if self._all_held() and self._identical():
                converged_at = check
                break
            check += 250
        wall = time.perf_counter() - started
        result = self._report(converged_at, wall)
        self._verify(result)
        return result

    # -- results -----------------------------------------------------------------------------------

    def _report(self, converged_at: int | None, wall_s: float) -> dict[str, Any]:
        cfg = self.config
        live = self._live()
        conv: list[int] = []
        unconverged = 0
        for w in self.writes:
            if w.lost:
                continue
            if all(j in w.held_at for j in live):
                conv.append(max(w.held_at[j] for j in live) - w.at_ms)
            else:
                unconverged += 1
        detect: list[int] = []
        pair_times: list[int] = []
        detected_pairs = 0
        expected_pairs = 0
        for crashed, at, seen in self.detections:
            if self.alive[crashed] and self.generation[crashed] > 1:
                observers = [j for j in live if j != crashed and j in seen]
            else:
                observers = [j for j in live if j != crashed]
            expected_pairs += len(observers)
            times = [seen[j] - at for j in observers if j in seen]
            pair_times.extend(times)
            detected_pairs += len(times)
            if times and len(times) == len(observers):
                detect.append(max(times))
        updates = max(1, sum(1 for w in self.writes if not w.lost))
        data_msgs = data_bytes = member_msgs = member_bytes = 0
        for node in self.all_nodes:
            for kind, count in node.stats.sent_by_type.items():
                size = node.stats.sent_bytes_by_type.get(kind, 0)
                if kind == "MEMBERSHIP":
                    member_msgs += count
                    member_bytes += size
                else:
                    data_msgs += count
                    data_bytes += size
            data_msgs += node.stats.vignette_out
        sim_s = self.now / 1000.0
        return {
            "converged": converged_at is not None and unconverged == 0 and not self.violations,
            "convergence_ms": _percentiles(conv),
            "liveness_ms": None
            if converged_at is None
            else converged_at - int(cfg.duration_s * 1000),
            "writes": len(self.writes),
            "writes_lost": sum(1 for w in self.writes if w.lost),
            "writes_unconverged": unconverged,
            "messages_per_update_per_node": data_msgs / updates / cfg.nodes,
            "bytes_per_update_per_node": data_bytes / updates / cfg.nodes,
            "membership_messages_per_node_per_s": member_msgs / cfg.nodes / max(sim_s, 1e-9),
            "membership_bytes_per_node_per_s": member_bytes / cfg.nodes / max(sim_s, 1e-9),
            "stream_messages": self.stream_messages,
            "stream_bytes": self.stream_bytes,
            "detection_ms": _percentiles(detect),
            "detection_per_observer_ms": _percentiles(pair_times),
            "detected_fraction": None if not expected_pairs else detected_pairs / expected_pairs,
            "false_failures": self.false_failures,
            "partition_failures": self.partition_failures,
            "warmup_failures": self.warmup_failures,
            "monotone_violations": len(self.violations),
            "sim_seconds": sim_s,
            "wall_seconds": wall_s,
            "datagrams_delivered": self.delivered,
            "trace_digest": self.trace.hexdigest(),
            "nodes": cfg.nodes,
            "live_nodes": len(live),
            "seed": cfg.seed,
            "command": cfg.command(),
        }

    def _verify(self, result: dict[str, Any]) -> None:
        """Identical keyspaces and sketch answers equal to the reference (when converged)."""
        problems = list(self.violations[:5])
        live = self._live()
        if result["converged"]:
            first = self.keyspaces[live[0]]
            for j in live[1:]:
                other = self.keyspaces[j]
                if first.stored_count != other.stored_count:
                    problems.append(f"node {j} holds {other.stored_count} entries")
                    break
                for key, entry in first.items():
                    if other.entry(key) != entry:
                        problems.append(f"node {j} differs on key {key!r}")
                        break
            problems.extend(self._sketch_mismatches(first))
        result["problems"] = problems
        if problems:
            result["converged"] = False

    def _sketch_mismatches(self, keyspace: Keyspace) -> list[str]:
        """Sketch answers of the converged cluster against the single reference keyspace."""
        lost_keys = {w.key for w in self.writes if w.lost}
        problems: list[str] = []
        for key, expected in self.reference.items():
            if key in lost_keys:
                continue
            got = keyspace.entry(key)
            if got is None or expected.schema is None:
                problems.append(f"key {key!r} missing")
                continue
            kind = expected.schema.kind
            if kind == "hll":
                view = HyperLogLog()
                a, b = view.count(got.vector), view.count(expected.vector)
            elif kind == "counter":
                counter = PNCounter()
                a, b = counter.get(dict(got.slices())), counter.get(dict(expected.slices()))
            else:
                a, b = got.vector.items(), expected.vector.items()  # type: ignore[assignment]
            if a != b:
                problems.append(f"key {key!r}: cluster answers {a!r}, reference {b!r}")
        return problems

    def fractions_over_time(self) -> list[tuple[list[int], list[float]]]:
        """Per write: (ms since the write, fraction of nodes holding it) steps, for plotting."""
        n = len(self._live()) or 1
        out: list[tuple[list[int], list[float]]] = []
        for w in self.writes:
            if w.lost:
                continue
            times = sorted(t - w.at_ms for t in w.held_at.values())
            out.append((times, [(k + 1) / n for k in range(len(times))]))
        return out


def run(config: SimConfig, wall_limit_s: float = 3600.0) -> tuple[dict[str, Any], Simulation]:
    sim = Simulation(config)
    return sim.run(wall_limit_s), sim
