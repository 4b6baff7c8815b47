"""Membership: scuttlebutt reconciliation and SWIM liveness, in virtual time.

A tiny in-test harness wires N Membership objects through an in-memory datagram queue (msgpack
on the wire, seeded loss and delay), advancing virtual time in fixed steps. Every run uses a
fixed seed and prints it on failure.
"""

from __future__ import annotations

import heapq
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest

from hearsay.base.errors import DecodeError
from hearsay.protocol import membership as membership_module
from hearsay.protocol.membership import (
    Address,
    MemberAlive,
    MemberFailed,
    MemberInfo,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    Membership,
    MembershipDecodeError,
    MembershipEvent,
    MemberState,
    MemberSuspect,
    MessageKind,
    TagExpired,
    TagUpdated,
)
from hearsay.protocol.membership.facade import SUSPECT_PROBERS
from hearsay.protocol.membership.wire import Notice, Notices, Verdict
from hearsay.protocol.presets import LAN, LOCAL, PRESETS, WAN, GossipPreset, suspicion_scale

T0_MS = 1_700_000_000_000  # virtual unix time at the start of every run


@dataclass
class SimNode:
    node_id: str
    address: Address
    membership: Membership
    next_sync_ms: int
    up: bool = True
    stalled_until_ms: int = 0
    events: list[tuple[int, MembershipEvent]] = field(default_factory=list)


class Cluster:
    """N nodes, a lossy in-memory network, virtual time in ``step_ms`` steps."""

    def __init__(
        self,
        n: int,
        preset: GossipPreset,
        seed: int,
        *,
        loss: float = 0.0,
        step_ms: int = 50,
        max_delay_ms: int = 20,
        drop_while_stalled: bool = False,
    ) -> None:
        self.drop_while_stalled = drop_while_stalled
        self.preset = preset
        self.seed = seed
        self.loss = loss
        self.step_ms = step_ms
        self.max_delay_ms = max_delay_ms
        self.net_rng = random.Random(seed)
        self.now_ms = T0_MS
        self.queue: list[tuple[int, int, Address, Address, bytes]] = []
        self.seq = 0
        self.nodes: dict[str, SimNode] = {}
        self.by_addr: dict[Address, str] = {}
        self.trace: list[tuple[int, str, MembershipEvent]] = []
        self.max_datagram_bytes = 0
        for i in range(n):
            self.start(f"n{i:02d}", generation=1)

    def start(self, node_id: str, generation: int) -> SimNode:
        index = int(node_id[1:])
        address = ("127.0.0.1", 7000 + index)
        m = Membership(
            node_id,
            generation,
            address,
            self.preset,
            random.Random(self.seed * 1000 + index * 7 + generation),
            now_ms=self.now_ms,
        )
        m.add_seed(("127.0.0.1", 7000))
        m.add_seed(("127.0.0.1", 7001))
        jitter = self.net_rng.randrange(self.preset.membership_sync_interval_ms)
        node = SimNode(node_id, address, m, self.now_ms + jitter)
        self.nodes[node_id] = node
        self.by_addr[address] = node_id
        return node

    def crash(self, node_id: str) -> None:
        self.nodes[node_id].up = False

    def restart(self, node_id: str) -> SimNode:
        old = self.nodes[node_id].membership.generation
        return self.start(node_id, generation=old + 1)

    def send(self, src: Address, dst: Address, msg: object, at_ms: int) -> None:
        data = msgpack.packb(msg)
        assert len(data) <= self.preset.udp_payload_bytes_max, (self.seed, len(data))
        self.max_datagram_bytes = max(self.max_datagram_bytes, len(data))
        if self.net_rng.random() < self.loss:
            return
        self.seq += 1
        deliver = at_ms + self.net_rng.randint(1, self.max_delay_ms)
        heapq.heappush(self.queue, (deliver, self.seq, src, dst, data))

    def _deliver_until(self, now_ms: int) -> None:
        for _ in range(1_000_000):
            if not self.queue or self.queue[0][0] > now_ms:
                return
            at, _seq, src, dst, data = heapq.heappop(self.queue)
            node_id = self.by_addr.get(dst)
            if node_id is None:
                continue
            node = self.nodes[node_id]
            if not node.up:
                continue
            if node.stalled_until_ms > at:
                if self.drop_while_stalled:
                    continue  # the socket buffer overflowed while the node was stalled
                self.seq += 1
                heapq.heappush(self.queue, (node.stalled_until_ms, self.seq, src, dst, data))
                continue
            msg = msgpack.unpackb(data)
            reply = node.membership.handle(msg, at, source=src)
            if reply is not None:
                self.send(dst, src, reply, at)
            self._send_outgoing(node, at)
        raise AssertionError("delivery loop did not settle")

    def step(self) -> None:
        self.now_ms += self.step_ms
        now = self.now_ms
        self._deliver_until(now)
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            if not node.up or node.stalled_until_ms > now:
                continue
            m = node.membership
            m.tick(now)
            if now >= node.next_sync_ms:
                node.next_sync_ms = max(
                    node.next_sync_ms + self.preset.membership_sync_interval_ms, now
                )
                for target in m.sync_targets():
                    self.send(node.address, target, m.make_syn(), now)
            self._send_outgoing(node, now)
            for event in m.events():
                node.events.append((now, event))
                self.trace.append((now, node_id, event))

    def _send_outgoing(self, node: SimNode, at_ms: int) -> None:
        """SWIM's probes, relayed acks and notices."""
        for target, message in node.membership.take_outgoing():
            self.send(node.address, target, message, at_ms)

    def run_for(self, duration_ms: int) -> None:
        for _ in range(duration_ms // self.step_ms):
            self.step()

    def run_until(self, predicate: Any, limit_ms: int) -> bool:
        for _ in range(limit_ms // self.step_ms):
            if predicate():
                return True
            self.step()
        return bool(predicate())

    def live(self) -> list[SimNode]:
        return [self.nodes[n] for n in sorted(self.nodes) if self.nodes[n].up]

    def view(self, node_id: str) -> dict[str, tuple[MemberState, int]]:
        rows: list[MemberInfo] = self.nodes[node_id].membership.members()
        return {r.node_id: (r.state, r.generation) for r in rows}

    def converged(self) -> bool:
        """Every live node sees every live node alive, at its current generation."""
        live = self.live()
        expected = {n.node_id: (MemberState.ALIVE, n.membership.generation) for n in live}
        for node in live:
            view = self.view(node.node_id)
            if {k: view.get(k) for k in expected} != expected:
                return False
        return True


def failed_times(cluster: Cluster, victim: str, since_ms: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in cluster.live():
        for at, ev in node.events:
            if at >= since_ms and isinstance(ev, MemberFailed) and ev.node_id == victim:
                out.setdefault(node.node_id, at - since_ms)
    return out


# --------------------------------------------------------------------------------------------
# Convergence


@pytest.mark.parametrize("seed", [1, 2])
def test_cluster_converges_on_members_and_tags(seed: int) -> None:
    c = Cluster(8, LOCAL, seed, loss=0.05)
    for i, node in enumerate(c.live()):
        node.membership.set_tag("role", f"r{i}", now_ms=c.now_ms)
        node.membership.set_tag("blob", bytes([i]) * 10, now_ms=c.now_ms)

    def tags_converged() -> bool:
        want = {
            n.node_id: {"role": f"r{i}", "blob": bytes([i]) * 10} for i, n in enumerate(c.live())
        }
        return all({k: n.membership.peer_tags(k) for k in want} == want for n in c.live())

    ok = c.run_until(lambda: c.converged() and tags_converged(), 30_000)
    assert ok, f"seed={seed}"
    # the member list is the same everywhere
    lists = {tuple(sorted(c.view(n.node_id))) for n in c.live()}
    assert len(lists) == 1, f"seed={seed}"
    # every node saw 7 joins
    for node in c.live():
        joined = {ev.node_id for _t, ev in node.events if isinstance(ev, MemberJoined)}
        assert joined == {n.node_id for n in c.live()} - {node.node_id}, f"seed={seed}"


def test_tag_update_propagates_and_emits_event() -> None:
    c = Cluster(5, LOCAL, 11)
    assert c.run_until(c.converged, 20_000)
    src = c.nodes["n03"].membership
    version = src.set_tag("load", 42, now_ms=c.now_ms)
    assert src.get_tag("load") == 42
    ok = c.run_until(
        lambda: all(n.membership.peer_value("n03", "load") == 42 for n in c.live()), 10_000
    )
    assert ok
    for node in c.live():
        if node.node_id == "n03":
            continue
        updates = [ev for _t, ev in node.events if isinstance(ev, TagUpdated) and ev.key == "load"]
        assert updates == [TagUpdated("n03", "load", 42, version, None)]
        assert node.membership.peer_keys("n03") == ["load"]


# --------------------------------------------------------------------------------------------
# Failure detection and reaping, at each preset


@pytest.mark.parametrize(
    ("preset", "p50_bound_ms", "max_bound_ms"),
    [(LOCAL, 2_500, 5_000), (LAN, 5_000, 8_000), (WAN, 12_000, 20_000)],
)
def test_crashed_node_is_failed_by_all_then_reaped(
    preset: GossipPreset, p50_bound_ms: int, max_bound_ms: int
) -> None:
    seed = 5
    c = Cluster(6, preset, seed, loss=0.05)
    assert c.run_until(c.converged, 60_000), f"seed={seed}"
    c.run_for(30_000)  # let the detectors learn the rhythm
    victim = "n04"
    c.crash(victim)
    t0 = c.now_ms
    observers = {n.node_id for n in c.live()}
    c.run_until(lambda: set(failed_times(c, victim, t0)) == observers, max_bound_ms + 5_000)
    times = failed_times(c, victim, t0)
    assert set(times) == observers, f"seed={seed} {preset.name}: {times}"
    p50 = statistics.median(times.values())
    assert p50 <= p50_bound_ms, f"seed={seed} {preset.name}: p50={p50} {times}"
    assert max(times.values()) <= max_bound_ms, f"seed={seed} {preset.name}: {times}"
    # reaped everywhere after dead_node_reap_ms, and not resurrected by stale gossip afterwards
    c.run_for(preset.dead_node_reap_ms + 2 * max_bound_ms)
    for node in c.live():
        reaped = [ev for _t, ev in node.events if isinstance(ev, MemberReaped)]
        assert reaped == [MemberReaped(victim, 1)], f"seed={seed} {node.node_id}"
        assert victim not in c.view(node.node_id)
    # no one else was ever declared failed
    for _t, who, ev in c.trace:
        if isinstance(ev, MemberFailed):
            assert ev.node_id == victim, f"seed={seed}: false failure {who} {ev}"


def test_a_suspect_is_confirmed_within_a_probe_period_so_its_timeout_is_the_shortest() -> None:
    """Members that hear a suspicion give their next probe to the suspect (a few of them, at
    random), so the independent suspicions that shorten Lifeguard's timeout arrive within about
    a probe period, not whenever the round-robin probes (about two a second per member) come
    by: each of eight crashes is convicted within half a period of the minimum timeout after
    the first suspicion (exactly at it in every seed tried; without the out-of-turn probes 4
    of this seed's 8 took 0.45-1.25 s longer), and nobody else is."""
    seed = 11
    nodes = 40
    c = Cluster(nodes, LAN, seed, loss=0.02)
    assert c.run_until(c.converged, 60_000), f"seed={seed}"
    c.run_for(10_000)
    shortest_ms = LAN.suspicion_mult * suspicion_scale(nodes) * LAN.probe_interval_ms
    spans = {}
    for k in range(8):
        victim = f"n{10 + k:02d}"
        t0 = c.now_ms
        c.crash(victim)
        observers = {n.node_id for n in c.live()}

        def all_see(victim: str = victim, t0: int = t0, observers: set[str] = observers) -> bool:
            return set(failed_times(c, victim, t0)) == observers

        assert c.run_until(all_see, 30_000), f"seed={seed} {victim}"
        suspected = [t for t, _w, ev in c.trace if t >= t0 and isinstance(ev, MemberSuspect)]
        failed = [t for t, _w, ev in c.trace if t >= t0 and isinstance(ev, MemberFailed)]
        spans[victim] = min(failed) - min(suspected)
        c.run_for(2_000)
    assert all(span <= shortest_ms + LAN.probe_interval_ms // 2 for span in spans.values()), (
        f"seed={seed}: first suspicion -> first conviction {spans}, shortest {shortest_ms} ms"
    )
    for _t, who, ev in c.trace:
        if isinstance(ev, MemberFailed):
            assert ev.node_id in spans, f"seed={seed}: false failure {who} {ev}"


def test_only_a_few_members_probe_a_suspect_out_of_turn() -> None:
    """The out-of-turn probes are a handful per suspicion (``SUSPECT_PROBERS`` in expectation),
    not every member that hears it: five nodes each hearing 39 suspicions, one about every
    other member of the 40, pick about 6 each for their next probes (30 in expectation)."""
    c = Cluster(40, LAN, 12)
    assert c.run_until(c.converged, 60_000)
    picked = 0
    for i in range(5):
        x = c.nodes[f"n{i:02d}"].membership
        for k in range(40):
            if k != i:
                notice = Notice(f"n{k:02d}", 1, 5, Verdict.SUSPECT, "elsewhere")
                message = Notices(MessageKind.NOTICES, "n39", (notice,))
                x.handle(msgpack.unpackb(msgpack.packb(message)), c.now_ms)
        picked += len(x._probe_next)
    assert 5 * SUSPECT_PROBERS // 2 <= picked <= 5 * SUSPECT_PROBERS * 3 // 2, picked


def test_restarted_node_replaces_its_past_at_once() -> None:
    seed = 9
    c = Cluster(5, LOCAL, seed, loss=0.02)
    assert c.run_until(c.converged, 20_000)
    c.nodes["n02"].membership.set_tag("old", "stale", now_ms=c.now_ms)
    c.run_for(5_000)
    c.crash("n02")
    c.run_for(300)
    node = c.restart("n02")
    node.membership.set_tag("new", "fresh", now_ms=c.now_ms)
    assert c.run_until(c.converged, 10_000), f"seed={seed}"
    for other in c.live():
        if other.node_id == "n02":
            continue
        assert c.view(other.node_id)["n02"] == (MemberState.ALIVE, 2)
        assert other.membership.peer_keys("n02") == ["new"]
        assert other.membership.peer_value("n02", "old") is None
        joins = [ev for _t, ev in other.events if isinstance(ev, MemberJoined)]
        assert MemberJoined("n02", 2, ("127.0.0.1", 7002), True) in joins
        assert not any(
            isinstance(ev, MemberFailed) and ev.node_id == "n02" and ev.generation == 2
            for _t, ev in other.events
        )


def test_restart_after_failure_is_alive_again() -> None:
    seed = 13
    c = Cluster(4, LOCAL, seed)
    assert c.run_until(c.converged, 20_000)
    c.crash("n01")
    t0 = c.now_ms
    assert c.run_until(lambda: len(failed_times(c, "n01", t0)) == 3, 10_000)
    c.restart("n01")
    assert c.run_until(c.converged, 10_000), f"seed={seed}"
    for node in c.live():
        assert c.view(node.node_id)["n01"] == (MemberState.ALIVE, 2)


def test_graceful_leave_is_seen_as_left_then_reaped() -> None:
    seed = 17
    c = Cluster(5, LOCAL, seed, loss=0.05)
    assert c.run_until(c.converged, 20_000)
    leaver = c.nodes["n03"]
    leaver.membership.leave(c.now_ms)
    c.run_for(2_000)  # keep gossiping a little so the news spreads
    c.crash("n03")
    others = [n for n in c.live()]
    assert all(c.view(n.node_id)["n03"][0] is MemberState.LEFT for n in others), seed
    for n in others:
        assert MemberLeft("n03", 1) in [ev for _t, ev in n.events]
        assert "n03" not in {p.node_id for p in n.membership.live_peers()}
    c.run_for(LOCAL.dead_node_reap_ms + 5_000)
    for n in others:
        assert "n03" not in c.view(n.node_id)
        assert not any(isinstance(ev, MemberFailed) for _t, ev in n.events)


# --------------------------------------------------------------------------------------------
# Tag expiry


def test_tag_expiry_converges_and_overrides_older_values() -> None:
    seed = 21
    c = Cluster(5, LOCAL, seed, loss=0.05)
    assert c.run_until(c.converged, 20_000)
    owner = c.nodes["n01"].membership
    owner.set_tag("lease", "a", now_ms=c.now_ms)
    owner.set_tag("keep", "k", now_ms=c.now_ms)
    c.run_for(3_000)
    expiry = c.now_ms + 4_000
    owner.set_tag("lease", "b", expiry, now_ms=c.now_ms)
    c.run_for(2_000)
    assert all(n.membership.peer_value("n01", "lease") == "b" for n in c.live()), seed
    c.run_for(3_000)
    assert c.now_ms > expiry
    for n in c.live():
        assert n.membership.peer_value("n01", "lease") is None
        assert n.membership.peer_keys("n01") == ["keep"]
        if n.node_id != "n01":
            expired = [ev for _t, ev in n.events if isinstance(ev, TagExpired)]
            assert [(e.node_id, e.key) for e in expired] == [("n01", "lease")]
    # a delete: publishing an already-expired value removes the key everywhere
    owner.set_tag("keep", None, c.now_ms, now_ms=c.now_ms)
    c.run_for(3_000)
    for n in c.live():
        assert n.membership.peer_keys("n01") == []


def test_late_joiner_never_sees_expired_tag() -> None:
    c = Cluster(3, LOCAL, 23)
    assert c.run_until(c.converged, 20_000)
    c.nodes["n00"].membership.set_tag("t", 1, c.now_ms + 1_000, now_ms=c.now_ms)
    c.run_for(3_000)
    late = c.start("n03", generation=1)
    assert c.run_until(c.converged, 10_000)
    assert late.membership.peer_value("n00", "t") is None
    assert not any(isinstance(ev, TagUpdated) for _t, ev in late.events)


# --------------------------------------------------------------------------------------------
# No false failures under loss and stalls


@pytest.mark.parametrize("seed", [31])
def test_no_false_failures_with_loss_and_stalls(seed: int) -> None:
    preset = LAN
    c = Cluster(6, preset, seed, loss=0.05)
    assert c.run_until(c.converged, 30_000), f"seed={seed}"
    stall_rng = random.Random(seed + 1)
    stalls = 0
    for _ in range(10 * 60_000 // 2_000):
        # one random node stalls for up to 1 s, then everyone runs for the rest of 2 s
        victim = c.live()[stall_rng.randrange(len(c.live()))]
        victim.stalled_until_ms = c.now_ms + stall_rng.randint(200, 1_000)
        stalls += 1
        c.run_for(2_000)
    assert stalls == 300
    bad = [(t, who, ev) for t, who, ev in c.trace if isinstance(ev, MemberFailed)]
    assert bad == [], f"seed={seed}: false failures {bad[:5]}"
    assert c.converged()


@pytest.mark.parametrize("guarded", [True, False])
def test_local_pause_suppresses_convictions_until_fresh_heartbeats(guarded: bool) -> None:
    """A node whose own loop stalls 6 s must not convict its healthy peers when it resumes.

    With phi accrual the unguarded run was a control that convicted everyone; with SWIM a stall
    leaves no silence to misjudge (at most the probe in flight times out, and a suspicion gives
    the peer its whole timeout to refute), so both runs must end with no conviction: the guard
    (no accusation of our own for ``local_pause_grace_ms``) is a second line, not the only one.
    """
    seed = 41
    preset = LAN if guarded else LAN.with_changes(local_pause_ms=3_600_000)
    c = Cluster(5, preset, seed, loss=0.05, drop_while_stalled=True)
    assert c.run_until(c.converged, 30_000), f"seed={seed}"
    c.run_for(20_000)
    sleeper = c.nodes["n02"]
    sleeper.stalled_until_ms = c.now_ms + 6_000
    c.run_for(6_000 + 3 * preset.local_pause_grace_ms)
    own = [ev for _t, ev in sleeper.events if isinstance(ev, MemberFailed)]
    assert own == [], f"seed={seed}: {own}"
    assert sleeper.membership.local_pauses_detected == (1 if guarded else 0)
    assert c.converged()  # the others may have convicted the sleeper: it refuted, it is back


# --------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_same_event_trace() -> None:
    def run() -> list[tuple[int, str, MembershipEvent]]:
        c = Cluster(5, LOCAL, 77, loss=0.1)
        c.run_for(5_000)
        c.nodes["n01"].membership.set_tag("x", "y", now_ms=c.now_ms)
        c.crash("n02")
        c.run_for(5_000)
        c.restart("n02")
        c.run_for(5_000)
        return c.trace

    first, second = run(), run()
    assert len(first) > 20
    assert first == second


# --------------------------------------------------------------------------------------------
# Truncation and sampling


def _member(i: int, rng_seed: int = 0) -> Membership:
    return Membership(
        f"node-{i:04d}", 1, ("10.0.0.1", 9000 + i), LAN, random.Random(rng_seed), now_ms=T0_MS
    )


def _exchange(a: Membership, b: Membership, now: int, budget: int) -> None:
    syn = msgpack.unpackb(msgpack.packb(a.make_syn(budget)))
    ack = b.on_syn(syn, now, budget)
    assert len(msgpack.packb(ack)) <= budget
    ack2 = a.on_ack(msgpack.unpackb(msgpack.packb(ack)), now, budget)
    if ack2 is not None:
        assert len(msgpack.packb(ack2)) <= budget
        b.on_ack2(msgpack.unpackb(msgpack.packb(ack2)), now)


def test_truncated_deltas_never_leave_gaps() -> None:
    budget = 1_100
    a, b = _member(1), _member(2)
    for k in range(60):
        a.set_tag(f"key-{k:03d}", "v" * 40, now_ms=T0_MS)
    ack_seen: list[list[Any]] = []
    for round_ in range(40):
        syn = b.make_syn(budget)
        ack = a.on_syn(syn, T0_MS + round_, budget)
        assert len(msgpack.packb(ack)) <= budget
        for delta in ack.deltas:
            if delta.node_id == a.node_id:
                ack_seen.append(delta)
        ack2 = b.on_ack(msgpack.unpackb(msgpack.packb(ack)), T0_MS + round_, budget)
        if ack2 is not None:
            a.on_ack2(ack2, T0_MS + round_)
        if b.peer_keys(a.node_id) == [f"key-{k:03d}" for k in range(60)]:
            break
    assert b.peer_keys(a.node_id) == [f"key-{k:03d}" for k in range(60)]
    assert len(ack_seen) >= 2, "the state should not fit one datagram"
    expected_from = 0
    for node_id, _gen, from_v, to_v, entries in ack_seen:
        assert node_id == a.node_id
        assert from_v == expected_from  # each delta starts where the previous one stopped
        versions = [e[2] for e in entries]
        assert versions == sorted(versions)
        # no gap: every version of a's state in (from, to] is present
        assert versions == [v for v in range(from_v + 1, to_v + 1)]
        expected_from = to_v


def test_delta_with_gap_is_not_applied() -> None:
    a, b = _member(1), _member(2)
    _exchange(b, a, T0_MS, 1400)
    assert a.node_id in {m.node_id for m in b.members()}
    before = b.peer_keys(a.node_id)
    a.set_tag("k1", 1, now_ms=T0_MS)
    a.set_tag("k2", 2, now_ms=T0_MS)
    # forge an ACK2 that skips version k1's version: from_version beyond b's watermark
    gen = a.generation
    v2 = a.max_version
    forged = [MessageKind.ACK2, a.node_id, [[a.node_id, gen, v2 - 1, v2, [["k2", 2, v2, None]]]]]
    b.on_ack2(forged, T0_MS)
    assert b.peer_keys(a.node_id) == before  # ignored: it would leave a hole


def _hub(rng_seed: int) -> Membership:
    """A member that knows 119 others (more than one digest holds)."""
    hub = _member(0, rng_seed=rng_seed)
    for i in range(1, 120):
        _exchange(_member(i), hub, T0_MS, 1400)
    return hub


def _sync_until_known(peer: Membership, hub: Membership, members: int, rounds: int) -> None:
    """Syncs both ways between ``peer`` and ``hub`` until ``peer`` knows ``members``
    (self included), at most ``rounds`` times."""
    for r in range(rounds):
        _exchange(peer, hub, T0_MS + r, 1024)
        _exchange(hub, peer, T0_MS + r, 1024)
        if len(peer.members()) == members:
            break


def test_large_digest_is_sampled() -> None:
    budget = 1_024
    hub = _hub(rng_seed=1)
    assert len(hub.members()) == 120
    full = msgpack.packb(hub.make_syn(65_000))
    assert len(full) > budget
    samples = [hub.make_syn(budget) for _ in range(5)]
    for syn in samples:
        assert syn.complete is False
        assert len(msgpack.packb(syn)) <= budget
        assert syn.digest[0].node_id == hub.node_id  # self always first
        assert 10 < len(syn.digest) < 120
    assert len({tuple(e.node_id for e in s.digest) for s in samples}) > 1  # random subsets


def test_sampled_digest_still_spreads_unknown_nodes() -> None:
    hub = _hub(rng_seed=3)
    newcomer = _member(500, rng_seed=4)
    _sync_until_known(newcomer, hub, 121, rounds=200)
    assert len(newcomer.members()) == 121


def test_a_suspect_is_in_every_sampled_digest_so_a_missed_refutation_still_arrives() -> None:
    """A node that missed every copy of a refutation's alive notice learns it by anti-entropy
    before its suspicion times out: the suspect's digest item rides in every SYN it sends
    (found at 300 simulated nodes with 5% loss: one observer convicted a live node)."""
    budget = 1_024
    hub = _member(0, rng_seed=5)
    others = [_member(i, rng_seed=100 + i) for i in range(1, 120)]
    for m in others:
        _exchange(m, hub, T0_MS, 1400)
    suspect, relay = others[6], others[0]
    accusation = Notice(suspect.node_id, 1, 0, Verdict.SUSPECT, relay.node_id)
    wire = msgpack.unpackb(
        msgpack.packb(Notices(MessageKind.NOTICES, relay.node_id, (accusation,)))
    )
    hub.handle(wire, T0_MS + 1)
    assert hub.member(suspect.node_id).state is MemberState.SUSPECT  # type: ignore[union-attr]
    for _ in range(5):
        syn = hub.make_syn(budget)
        assert syn.complete is False  # a sample of 120 members...
        assert syn.digest[0].node_id == hub.node_id
        assert suspect.node_id in {e.node_id for e in syn.digest}  # ...that holds the suspect
    # the suspect refutes; only the relay hears it (the hub missed every alive notice)
    suspect.handle(wire, T0_MS + 2)
    assert suspect.incarnation == 1
    _exchange(suspect, relay, T0_MS + 3, 1400)
    # one sync round from the hub to the relay brings the newer heartbeat, and the suspicion ends
    _exchange(hub, relay, T0_MS + 4, budget)
    assert hub.member(suspect.node_id).state is MemberState.ALIVE  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# Malformed input


def _valid_messages() -> list[list[Any]]:
    """A SYN, an ACK and an ACK2 as they arrive from the wire (lists)."""
    a, b = _member(1), _member(2)
    a.set_tag("k", "v", now_ms=T0_MS)
    syn = a.make_syn()
    ack = b.on_syn(syn, T0_MS)
    ack2 = a.on_ack(ack, T0_MS)
    assert ack2 is not None
    return [msgpack.unpackb(msgpack.packb(m)) for m in (syn, ack, ack2)]


def _mutations(msg: Any, rng: random.Random) -> Any:
    junk = [None, True, -1, 2**64, 1.5, "", "x" * 300, b"\x00", [], {}, [1, 2], {"t": 1}]
    if isinstance(msg, dict) and msg:
        key = rng.choice(sorted(msg))
        out = dict(msg)
        if rng.random() < 0.5:
            out[key] = rng.choice(junk)
        else:
            out[key] = _mutations(msg[key], rng)
        return out
    if isinstance(msg, list) and msg:
        out_list = list(msg)
        i = rng.randrange(len(out_list))
        if rng.random() < 0.5:
            out_list[i] = rng.choice(junk)
        elif rng.random() < 0.5:
            del out_list[i]
        else:
            out_list[i] = _mutations(msg[i], rng)
        return out_list
    return rng.choice(junk)


CACHED = _valid_messages()


def test_malformed_messages_raise_one_typed_error() -> None:
    rng = random.Random(99)
    raised = 0
    for round_ in range(3000):
        msg = _mutations(rng.choice(_valid_messages() if round_ % 100 == 0 else CACHED), rng)
        target = _member(3)
        try:
            target.handle(msg, T0_MS)
        except MembershipDecodeError:
            raised += 1
        except Exception as exc:  # pragma: no cover - the assertion reports it
            raise AssertionError(
                f"round {round_}: {type(exc).__name__}: {exc} for {msg!r}"
            ) from exc
    assert raised > 1000
    assert issubclass(MembershipDecodeError, DecodeError)


@pytest.mark.parametrize(
    "msg",
    [
        None,
        [],
        [1],
        [9, "a"],
        [True, "a", True, []],  # a bool is not a message kind
        ["syn", "a", True, []],
        {"t": "syn", "from": "a", "complete": True, "digest": []},  # protocol version 2's map
        [1, "a", True, [], []],  # one item too many
        [1, "a", 1, []],
        [1, "a", True, [["b", 1, 1], ["b", 1, 2]]],
        [1, "a", True, [["b", True, 1]]],
        [3, "a", [["b", 1, 0, 2, [["k", 1, 3, None]]]]],
        [3, "a", [["b", 1, 0, 2, [["\x00addr", ["h", 70000], 1, None]]]]],
        [3, "a", [["b", 1, 0, 2, [["\x00status", "gone", 1, None]]]]],
        [3, "a", [["b", 1, 0, 2, [["k", "v" * 600, 1, None]]]]],
        [3, "a", [["b", 1, 0, 2, [["k", {}, 1, None]]]]],
        [3, "a", [["b", 1, 3, 2, []]]],
        [2, "a", [], [0] * 5000],
    ],
)
def test_specific_malformed_messages(msg: Any) -> None:
    with pytest.raises(MembershipDecodeError):
        _member(1).handle(msg, T0_MS)


# --------------------------------------------------------------------------------------------
# API details


def test_api_validation_and_presets() -> None:
    m = _member(1)
    with pytest.raises(ValueError):
        m.set_tag("\x00hb", 1, now_ms=T0_MS)
    with pytest.raises(ValueError):
        m.set_tag("big", "x" * 1000, now_ms=T0_MS)
    with pytest.raises(ValueError):
        Membership("x", 1, ("h", 1), LAN, None)
    assert set(PRESETS) == {"lan", "wan", "local"}
    assert LAN.udp_payload_bytes_max == 1400 and LAN.data_fanout == 3
    assert LAN.probe_interval_ms == 500 and LAN.indirect_checks == 3
    assert LOCAL.probe_interval_ms < LAN.probe_interval_ms < WAN.probe_interval_ms
    with pytest.raises(ValueError):
        LAN.with_changes(probe_timeout_ms=LAN.probe_interval_ms)
    with pytest.raises(ValueError):
        LAN.with_changes(suspicion_max_mult=0.5)
    # the suspicion timeout grows with log10(N) (3 s minimum at 1,000 nodes, 4 s at 10,000)
    assert LAN.suspicion_max_ms(10_000) > LAN.suspicion_max_ms(1_000) > LAN.suspicion_max_ms(10)
    me = m.members()
    assert [(r.node_id, r.state, r.is_self) for r in me] == [(m.node_id, MemberState.ALIVE, True)]


def test_seed_is_contacted_before_ids_are_known() -> None:
    m = _member(1, rng_seed=5)
    assert m.sync_targets() == []
    m.add_seed(("10.0.0.9", 9009))
    m.add_seed(m.address)  # own address: never a target
    assert m.sync_targets() == [("10.0.0.9", 9009)]


def test_reaped_node_is_not_resurrected_by_stale_gossip() -> None:
    preset = LOCAL
    a = Membership("a", 1, ("h", 1), preset, random.Random(1), now_ms=T0_MS)
    b = Membership("b", 1, ("h", 2), preset, random.Random(2), now_ms=T0_MS)
    stale = Membership("c", 1, ("h", 3), preset, random.Random(3), now_ms=T0_MS)
    _exchange(stale, a, T0_MS, 1400)
    _exchange(stale, b, T0_MS, 1400)
    now = T0_MS
    for _ in range((preset.dead_node_reap_ms + 20_000) // 100):
        now += 100
        a.tick(now)
    events = a.events()
    assert MemberFailed in {type(e) for e in events}
    assert MemberReaped("c", 1) in events
    # b still holds c's old state and gossips it to a: a must not bring it back
    _exchange(b, a, now, 1400)
    _exchange(a, b, now, 1400)
    assert "c" not in {r.node_id for r in a.members()}
    # but a message from c itself proves it is alive
    stale.tick(now)
    _exchange(stale, a, now, 1400)
    assert "c" in {r.node_id for r in a.members()}
    after = a.events()
    assert MemberJoined("c", 1, ("h", 3), False) in after
    assert not any(isinstance(e, MemberAlive) for e in after)  # a fresh join, not a revival


def test_a_peer_cannot_grow_membership_without_bound() -> None:
    b = _member(2)
    fake = [
        [f"fake-{i}", 1, 0, 1, [["\x00addr", ["127.0.0.1", 9000 + i % 1000], 1, None]]]
        for i in range(membership_module.MEMBERS_MAX + 50)
    ]
    # New members are admitted at NEW_MEMBERS_PER_S after a burst: feed one burst's worth per
    # refill period so that only the table's size limit refuses any.
    burst = membership_module.NEW_MEMBERS_BURST
    refill_ms = burst * 1000 // membership_module.NEW_MEMBERS_PER_S
    for number, start in enumerate(range(0, len(fake), burst)):
        chunk = fake[start : start + burst]
        b.on_ack2([MessageKind.ACK2, "fake-0", chunk], T0_MS + number * refill_ms)
    assert len(b.members()) == membership_module.MEMBERS_MAX + 1  # self included
    assert b.refused_members == 50


def test_a_node_keeps_at_most_so_many_state_keys() -> None:
    a, b = _member(1), _member(2)
    cap = membership_module.TAGS_PER_MEMBER_MAX
    own = len(a.peer_keys(a.node_id))
    for k in range(cap - own - 3):  # leave room for the three system keys
        a.set_tag(f"key-{k}", k, now_ms=T0_MS)
    with pytest.raises(ValueError, match="state keys"):
        for k in range(cap):
            a.set_tag(f"more-{k}", k, now_ms=T0_MS)
    a.set_tag("key-0", "updated", now_ms=T0_MS)  # an existing key can still change
    gen, top = a.generation, a.max_version
    forged = [[a.node_id, gen, top, top + 1, [["one-too-many", 1, top + 1, None]]]]
    for _ in range(100):
        _exchange(b, a, T0_MS, 1400)
        if b.peer_value(a.node_id, "key-0") == "updated":
            break
    assert b.peer_value(a.node_id, "key-0") == "updated"
    b.on_ack2([MessageKind.ACK2, a.node_id, forged], T0_MS)
    assert "one-too-many" not in b.peer_keys(a.node_id) and b.refused_tags == 1


def test_an_ack_to_a_sampled_digest_offers_what_changed_lately_not_random_members() -> None:
    """A sampled digest says nothing of what its sender lacks. Once views are full, random
    members in the ACK's spare room were ones the sender held (it dropped them); the members
    that changed lately are what it may lack, and they reach it in the next ACK."""
    hub = _hub(rng_seed=5)
    peer = _member(1, rng_seed=6)
    _sync_until_known(peer, hub, 120, rounds=300)
    assert len(peer.members()) == 120
    quiet_ms = T0_MS + 60_000  # every change older than the window
    for r in range(5):
        syn = peer.make_syn(1024)
        assert syn.complete is False
        ack = hub.on_syn(msgpack.unpackb(msgpack.packb(syn)), quiet_ms + r, 1024)
        assert {d.node_id for d in ack.deltas} <= {hub.node_id}
    newcomer = _member(700, rng_seed=7)
    _exchange(newcomer, hub, quiet_ms + 10, 1400)  # the hub learns a new member
    syn = peer.make_syn(1024)
    ack = hub.on_syn(msgpack.unpackb(msgpack.packb(syn)), quiet_ms + 20, 1024)
    assert newcomer.node_id in {d.node_id for d in ack.deltas}
    peer.on_ack(msgpack.unpackb(msgpack.packb(ack)), quiet_ms + 20, 1024)
    assert newcomer.node_id in {m.node_id for m in peer.members()}
