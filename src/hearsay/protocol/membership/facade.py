"""The :class:`Membership` facade: scuttlebutt reconciliation and SWIM failure detection.

Why this module exists: the driver (the gossip node, the tests' harnesses) needs one object to
call with time and messages; this is it. It reconciles the :mod:`table <.table>` with peers
(SYN / ACK / ACK2, see the package docstring), probes one member per period and spreads
liveness notices (:mod:`swim <.swim>`), feeds what it learns to :mod:`liveness <.liveness>`,
and queues :mod:`events <.events>`; checking and encoding the messages is :mod:`wire <.wire>`'s
job. No call does work over every member: probes, notices and digests are picked in O(1) each.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias, TypeVar

from hearsay.protocol.membership.events import (
    MemberAlive,
    MemberFailed,
    MemberInfo,
    MemberJoined,
    MemberLeaving,
    MemberLeft,
    MemberReaped,
    MembershipEvent,
    MemberSuspect,
    TagExpired,
    TagUpdated,
)
from hearsay.protocol.membership.failure_detector import PauseGuard
from hearsay.protocol.membership.live_set import LiveSet
from hearsay.protocol.membership.liveness import (
    MemberState,
    News,
    NodeStatus,
    PeerLiveness,
)
from hearsay.protocol.membership.push_pull import CHUNKS_MAX, PushPullPlan
from hearsay.protocol.membership.recent import RecentChanges
from hearsay.protocol.membership.swim import (
    BroadcastQueue,
    LocalHealth,
    Suspicion,
    retransmit_limit,
    suspicion_timeout_ms,
)
from hearsay.protocol.membership.table import (
    MEMBERS_MAX,
    TAGS_PER_MEMBER_MAX,
    Change,
    MemberRecord,
    MemberTable,
    NodeState,
    TagEntry,
)
from hearsay.protocol.membership.wire import (
    BUDGET_BYTES_MIN,
    INT_MAX,
    KEY_ADDRESS,
    KEY_HEARTBEAT,
    KEY_HTTP_PORT,
    KEY_STATUS,
    LIST_GROWTH_BYTES,
    RESERVED_KEY_PREFIX,
    TAG_ENTRY_BYTES_MAX,
    TAG_KEY_CHARS_MAX,
    Ack,
    Ack2,
    Address,
    Delta,
    DigestItem,
    MembershipDecodeError,
    MembershipMessage,
    MessageKind,
    Notice,
    Notices,
    Ping,
    PingAck,
    PingReq,
    PushPull,
    Syn,
    TagValue,
    Verdict,
    WireEntry,
    check_address,
    check_node_id,
    check_tag_value,
    decode,
    digest_item_bytes,
    entry_bytes,
    str_bytes,
    uint_bytes,
)
from hearsay.protocol.presets import DEFAULT_PRESET, GossipPreset

_T = TypeVar("_T")

GENERATION_AHEAD_MAX_MS: Final = 3_600_000
"""A generation claim more than an hour ahead of our clock is refused (see the docstring)."""
DIGEST_SAMPLE_MAX: Final = 256
"""Digest entries and unmentioned members considered per message when there are more members:
a random sample, so a message costs the same at 100 and at 10,000 members."""
SYNC_SUSPECTS_MAX: Final = 16
"""Members we hold suspect whose digest items every SYN carries first (the rest of the digest
is sampled as usual): enough for a few crashes at once, small beside a SYN's budget."""
EXTRA_DELTA_BYTES_MIN: Final = 40
"""The smallest full delta of a member (its id, address, status and heartbeat): an ACK
considers at most ``budget / this`` unmentioned members."""
RELAYS_MAX: Final = 1024
"""Indirect probes relayed for others at once (older ones are forgotten)."""
TOLD_MAX: Final = 4096
"""Members we remember telling that we suspect them (so we tell each once per period)."""
PIGGYBACK_BYTES: Final = 512
"""Room for notices on a probe message."""
SUSPECT_PROBERS: Final = 6
"""How many members, in expectation, give their next probe to a member they have just heard
is suspected. The round-robin probes reach any one member about twice a second whatever N,
so the independent suspicions that shorten Lifeguard's timeout to its minimum
(``indirect_checks`` of them) could take seconds to come, and detection varied by as much:
a few members probing the suspect out of turn confirm (or fail to confirm) it within about
one probe period. Twice ``indirect_checks``, so three confirmations rarely fall short (about
6% of suspicions get fewer from these probes alone). Costs no traffic: the probe only takes
the place of the next one in the round."""
PROBE_NEXT_MAX: Final = 16
"""Suspects waiting for an out-of-turn probe at once (more are not probed out of turn)."""

Reply: TypeAlias = Ack | Ack2 | PingAck
Outgoing: TypeAlias = tuple[Address, Ping | PingAck | PingReq | Notices | Syn | PushPull]


@dataclass(slots=True)
class _Probe:
    """The probe in flight: its target, sequence number and deadlines."""

    node_id: str
    seq: int
    direct_deadline_ms: int
    end_ms: int
    indirect_sent: bool = False


class RandomSource(Protocol):
    """What membership needs from its random generator: pass a seeded ``random.Random``.

    A structural type rather than ``random.Random`` itself, so the gossip core never imports
    the ``random`` module (not even for type checking: the layer contract forbids it).
    """

    def random(self) -> float: ...

    def shuffle(self, x: MutableSequence[Any]) -> None: ...


def _choice(rng: RandomSource, items: Sequence[_T]) -> _T:
    return items[min(len(items) - 1, int(rng.random() * len(items)))]


def _sample(rng: RandomSource, items: Sequence[_T], k: int) -> list[_T]:
    pool = list(items)
    rng.shuffle(pool)
    return pool[:k]


def _expect(raw: object, kind: MessageKind) -> MembershipMessage:
    message = decode(raw)
    if message.kind is not kind:
        raise MembershipDecodeError(f"membership message: expected a {kind.name} message")
    return message


class Membership:
    """The membership of one node, driven by ``now_ms`` and an injected rng.

    Driving it: call :meth:`tick` often (every ``heartbeat_interval_ms / 2`` or faster); every
    ``membership_sync_interval_ms`` send :meth:`make_syn` to each address of
    :meth:`sync_targets`; pass every incoming membership message to :meth:`handle` (or
    ``on_syn`` / ``on_ack`` / ``on_ack2``) and send back what it returns to the sender; drain
    :meth:`next_event`. ``now_ms`` is the driver's clock in unix milliseconds (tag expiries are
    absolute unix times); it is treated as non-decreasing (an earlier value counts as the latest
    one seen). Messages given and returned are :mod:`wire <.wire>` values: pack one with
    msgpack and it is the positional array on the wire; pass :meth:`handle` what msgpack
    unpacked. A data plane picks peers from :attr:`live` (the live, confirmed addresses): it
    sends a SYN to each address of ``live.probes``, repairs with ``live.reconnected``, reports
    every authentic sender to :meth:`heard_from` and calls :meth:`confirm_overdue` after ticks.
    """

    def __init__(
        self,
        self_id: str,
        generation: int,
        address: Address,
        preset: GossipPreset = DEFAULT_PRESET,
        rng: RandomSource | None = None,
        *,
        now_ms: int | None = None,
        budget_bytes: int | None = None,
    ) -> None:
        if rng is None:
            raise ValueError("an explicit random.Random is required (sans-IO, deterministic)")
        check_node_id(self_id)
        if type(generation) is not int or not 0 <= generation <= INT_MAX:
            raise ValueError("generation must be an int in [0, 2^63)")
        address = check_address(address)
        self._id = self_id
        self._preset = preset
        self._rng = rng
        self._budget = preset.udp_payload_bytes_max if budget_bytes is None else budget_bytes
        if self._budget < BUDGET_BYTES_MIN:
            raise ValueError(f"budget_bytes must be >= {BUDGET_BYTES_MIN}")
        self._now_ms = 0 if now_ms is None else now_ms
        self._self = NodeState(self_id, generation)
        self._table = MemberTable(self._self, self._now_ms, preset.tag_tombstone_ms)
        self._seeds: list[Address] = []
        self.refused_members = 0
        """Unknown nodes ignored because ``MEMBERS_MAX`` nodes are tracked already, or
        faster than ``NEW_MEMBERS_PER_S``."""
        self.refused_tags = 0
        """A node's new state keys ignored because it holds ``TAGS_PER_MEMBER_MAX`` already."""
        self.refused_generations = 0
        """Claims refused because their generation is implausibly far ahead of our clock."""
        self.refutations = 0
        """Times a claim about ourselves made us move to a higher generation."""
        self._events: deque[MembershipEvent] = deque()
        self.live = LiveSet(address)
        """The live, confirmed member addresses data gossip picks from (kept in step with every
        event as it is queued), and the members waiting to be confirmed."""
        self._source: Address | None = None
        self._speaker: str | None = None
        """The sender of the message being handled when it came from its own address."""
        """The sender of the message being handled, if the driver named it (its news about
        itself confirms it: it answers on the address it claims)."""
        self._guard = PauseGuard(preset.local_pause_ms, preset.local_pause_grace_ms)
        if now_ms is not None:
            self._guard.tick(now_ms)
        self._broadcasts = BroadcastQueue()
        self._health = LocalHealth(preset.local_health_max)
        self._outgoing: deque[Outgoing] = deque()
        self._seq = 0
        self._probe: _Probe | None = None
        self._order: list[str] = []
        """The probe order: a shuffled round of the members, rebuilt when used up."""
        self._order_pos = 0
        self._probe_next: list[str] = []
        """Members heard suspected that we probe before the round goes on (see
        :data:`SUSPECT_PROBERS`)."""
        self._next_probe_ms = self._now_ms + int(rng.random() * preset.probe_interval_ms)
        self._next_gossip_ms = self._now_ms
        self._suspicions: list[tuple[int, str]] = []
        """(deadline, node) heap of suspicions; stale entries are skipped when popped."""
        self._reaping: list[tuple[int, str]] = []
        """(due, node) heap of members to forget: failed, left, or never announced."""
        self._relays: dict[int, tuple[Address, int]] = {}
        """Our probe seq -> (requester, its seq): indirect probes we make for others."""
        self._told: dict[str, int] = {}
        self._news_ms = self._now_ms
        """When some member's state last changed here (syncs are frequent while news comes)."""
        self._recent = RecentChanges(2 * preset.membership_sync_quiet_interval_ms)
        """Members whose state moved here lately: an ACK's offers beyond what was asked."""
        self._push_pull = PushPullPlan()
        self._covered: list[str] = []
        """The members of the push-pull chunk being handled that we held already."""
        self._full_deltas: dict[str, tuple[Delta, int]] = {}
        """Node -> its last full-state delta and size (see :meth:`_full_delta`)."""
        self._vouched = False
        """The message being handled answers a push-pull we asked for: the members it brings
        are used at once (not pinged first) and not rate-limited."""
        self.push_pulls_sent = 0
        """Push-pulls we asked for (joins and periodic exchanges)."""
        self.suspicions_refuted = 0
        """Suspicions about ourselves we refuted by raising our incarnation."""
        self.probes_sent = 0
        self.probes_failed = 0
        """Probes no ack (direct or indirect) answered within the period."""
        self._table.set_own(KEY_ADDRESS, address, None)
        self._table.set_own(KEY_STATUS, NodeStatus.ALIVE.value, None)
        self._table.set_own(KEY_HEARTBEAT, 0, None)

    # ----- identity and configuration -------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._id

    @property
    def generation(self) -> int:
        return self._self.generation

    @property
    def address(self) -> Address:
        addr = self._self.address
        assert addr is not None
        return addr

    @property
    def preset(self) -> GossipPreset:
        return self._preset

    @property
    def max_version(self) -> int:
        """The version of this node's latest own change."""
        return self._self.max_version

    @property
    def local_pauses_detected(self) -> int:
        return self._guard.pauses_detected

    @property
    def local_health(self) -> int:
        """Lifeguard's local health score (0: healthy)."""
        return self._health.score

    @property
    def incarnation(self) -> int:
        """Our SWIM incarnation: the heartbeat counter, raised to refute a suspicion."""
        return self._self.heartbeat

    def add_seed(self, address: Address) -> None:
        """An address to contact before (or besides) known members; duplicates are ignored."""
        address = check_address(address)
        self.live.add_seed(address)
        if address not in self._seeds:
            self._seeds.append(address)
            self._seeds.sort()
        if address != self.address:
            self._push_pull.join(self._now_ms)

    # ----- own state ------------------------------------------------------------------------

    def _advance(self, now_ms: int) -> int:
        """Note the time of a call: the latest time seen, and a local-pause check.

        Every entry point that is given ``now_ms`` feeds the pause guard, so a stall is noticed
        by whichever call comes first after it (often a datagram, before the next tick), and an
        interval spanning the stall is never learned as a peer's rhythm.
        """
        self._now_ms = max(self._now_ms, now_ms)
        self._guard.tick(self._now_ms)
        return self._now_ms

    def _plausible(self, generation: int) -> bool:
        """Whether a claimed generation is not implausibly far ahead (else count it)."""
        if generation <= self._now_ms + GENERATION_AHEAD_MAX_MS:
            return True
        self.refused_generations += 1
        return False

    def _refute(self, claimed_generation: int) -> None:
        """Someone holds a newer generation of us than we run (a forgery, or our own past
        under a clock that stepped back): move past it so our real state wins everywhere."""
        if claimed_generation > self._self.generation and self._plausible(claimed_generation):
            self._self.generation = min(claimed_generation + 1, INT_MAX)
            self.refutations += 1

    def set_tag(
        self, key: str, value: TagValue, expiry_unix_ms: int | None = None, *, now_ms: int
    ) -> int:
        """Publish ``key = value`` (optionally until ``expiry_unix_ms``); returns its version.

        An expiry at or before ``now_ms`` publishes an already-expired tag, which removes the key
        everywhere (a delete).
        """
        now = self._advance(now_ms)
        if (
            type(key) is not str
            or not 0 < len(key) <= TAG_KEY_CHARS_MAX
            or key.startswith(RESERVED_KEY_PREFIX)
        ):
            raise ValueError("tag key must be a non-empty str, not starting with NUL")
        try:
            value = check_tag_value(value)
        except MembershipDecodeError as exc:
            raise ValueError(str(exc)) from None
        if expiry_unix_ms is not None and (
            type(expiry_unix_ms) is not int or not 0 <= expiry_unix_ms <= INT_MAX
        ):
            raise ValueError("expiry_unix_ms must be None or an int in [0, 2^63)")
        if entry_bytes(key, value, INT_MAX, expiry_unix_ms) > TAG_ENTRY_BYTES_MAX:
            raise ValueError(f"tag entry larger than {TAG_ENTRY_BYTES_MAX} bytes packed")
        if key not in self._self.entries and len(self._self.entries) >= TAGS_PER_MEMBER_MAX:
            raise ValueError(f"a node holds at most {TAGS_PER_MEMBER_MAX} state keys")
        entry = self._table.set_own(key, value, expiry_unix_ms)
        if expiry_unix_ms is not None and expiry_unix_ms <= now:
            entry.hidden = True
        return entry.version

    def publish_http_port(self, port: int) -> None:
        """Announce this node's HTTP port (its dashboard, reached at its gossip host), under a
        reserved key: other nodes' dashboards link to it; clients' state keys never show it."""
        self._table.set_own(KEY_HTTP_PORT, port, None)

    def http_port(self, node_id: str) -> int | None:
        """The HTTP port a node announced (None: not announced, or not known yet)."""
        state = self._table.announced_state(node_id)
        entry = None if state is None else state.entries.get(KEY_HTTP_PORT)
        port = None if entry is None else entry.value
        return port if type(port) is int and 0 < port < 65536 else None

    def get_tag(self, key: str) -> TagValue:
        """This node's own tag (None if absent or expired)."""
        return self.peer_value(self._id, key)

    def peer_value(self, node_id: str, key: str) -> TagValue:
        """A tag of any known node (self included); None if absent or expired."""
        state = self._table.announced_state(node_id)
        if state is None or key.startswith(RESERVED_KEY_PREFIX):
            return None
        entry = state.entries.get(key)
        if entry is None or not entry.visible_at(self._now_ms):
            return None
        value: TagValue = entry.value
        return value

    def peer_keys(self, node_id: str) -> list[str]:
        """The visible tag keys of a node, sorted."""
        state = self._table.announced_state(node_id)
        if state is None:
            return []
        return sorted(
            k
            for k, e in state.entries.items()
            if not k.startswith(RESERVED_KEY_PREFIX) and e.visible_at(self._now_ms)
        )

    def peer_tags(self, node_id: str) -> dict[str, TagValue]:
        """The visible tags of a node."""
        return {k: self.peer_value(node_id, k) for k in self.peer_keys(node_id)}

    def leave(self, now_ms: int) -> None:
        """Announce a graceful leave. Keep syncing a few rounds so the news spreads, then stop."""
        self._advance(now_ms)
        if self._self.status is not NodeStatus.LEFT:
            self._table.set_own(KEY_STATUS, NodeStatus.LEFT.value, None)

    def force_leave(self, node_id: str, now_ms: int) -> None:
        """Serf's force-leave of a failed peer: left here at once (so it is not contacted and
        is reaped ``dead_node_reap_ms`` later), and its state takes status ``left`` one version
        on, which every node syncing with us takes as the node's own news. Only for a failed
        peer (ValueError otherwise): a live one would write that version itself."""
        now = self._advance(now_ms)
        peer = self._table.peers.get(node_id)
        if peer is None or not peer.announced or peer.liveness.state is not MemberState.FAILED:
            raise ValueError(f"{node_id!r} is not a failed member")
        state = peer.state
        state.max_version += 1
        state.entries[KEY_STATUS] = TagEntry(NodeStatus.LEFT.value, state.max_version, None)
        self._hear_status(peer, now)

    # ----- time ----------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Probes, suspicion timeouts, a gossip round of notices, tag expiry and reaping, as of
        ``now_ms``: whatever is due (see :attr:`next_deadline_ms`)."""
        now = self._advance(now_ms)
        self._probe_step(now)
        self._expire_suspicions(now)
        self._gossip_step(now)
        self._push_pull_step(now)
        self._reap_due(now)
        self._events.extend(self._table.expire(now))
        self._table.forget_reaped(now)

    @property
    def next_deadline_ms(self) -> int:
        """When :meth:`tick` next has something to do (probes, suspicions, notices)."""
        p = self._probe
        if p is None:
            due = self._next_probe_ms
        else:  # the next probe starts once this one is over
            due = p.end_ms if p.indirect_sent else p.direct_deadline_ms
        if self._suspicions:
            due = min(due, self._suspicions[0][0])
        if self._broadcasts:
            due = min(due, self._next_gossip_ms)
        return min(due, self._push_pull.deadline_ms)

    def confirmation_ping(self, address: Address) -> Ping | None:
        """A ping for the member waiting to be confirmed at ``address`` (its answer, like any
        authentic datagram from it, confirms it): small, unlike a SYN with a digest."""
        node_id = self.live.unconfirmed_id(address)
        if node_id is None:
            return None
        return Ping(MessageKind.PING, self._id, self._next_seq(), node_id, ())

    def take_outgoing(self) -> list[Outgoing]:
        """Messages to send (destination, message): probes, relayed acks, notices."""
        out = list(self._outgoing)
        self._outgoing.clear()
        return out

    # ----- SWIM: probing ----------------------------------------------------------------------

    def _members_count(self) -> int:
        return len(self._table.peers) + 1

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % INT_MAX
        return self._seq

    def _piggyback(self, budget: int = PIGGYBACK_BYTES) -> tuple[Notice, ...]:
        if not self._broadcasts:
            return ()
        limit = retransmit_limit(self._preset.retransmit_mult, self._members_count())
        return tuple(self._broadcasts.take(budget, limit))

    def _next_target(self) -> MemberRecord | None:
        """The next member of the probe order that is still worth probing (alive, suspect or
        leaving, announced); a new shuffled order when this one is used up. A member heard
        suspected and picked for an out-of-turn probe comes first."""
        peers = self._table.peers
        while self._probe_next:
            peer = peers.get(self._probe_next.pop(0))
            if peer is not None and peer.announced and peer.liveness.state.is_live:
                return peer
        rebuilt = False
        while True:
            if self._order_pos >= len(self._order):
                if rebuilt:
                    return None
                self._order = list(self._table.ids)
                self._rng.shuffle(self._order)
                self._order_pos = 0
                rebuilt = True
                continue
            node_id = self._order[self._order_pos]
            self._order_pos += 1
            peer = peers.get(node_id)
            if peer is not None and peer.announced and peer.liveness.state.is_live:
                return peer

    def _probe_step(self, now: int) -> None:
        probe = self._probe
        p = self._preset
        if probe is not None:
            peer = self._table.peers.get(probe.node_id)
            if not probe.indirect_sent and now >= probe.direct_deadline_ms:
                probe.indirect_sent = True
                if peer is not None and peer.state.address is not None:
                    self._ask_indirect(probe, peer.state.address)
            if now >= probe.end_ms:
                self._probe = None
                self.probes_failed += 1
                self._health.worse()
                if peer is not None and peer.liveness.state.is_live:
                    self._suspect(peer, peer.liveness.incarnation, self._id, now)
        if self._probe is None and now >= self._next_probe_ms:
            interval = self._health.scale(p.probe_interval_ms)
            self._next_probe_ms = max(self._next_probe_ms + interval, now + 1)
            if self._self.status is NodeStatus.LEFT:
                return
            target = self._next_target()
            if target is None or target.state.address is None:
                return
            seq = self._next_seq()
            self._probe = _Probe(
                target.state.node_id,
                seq,
                now + self._health.scale(p.probe_timeout_ms),
                now + interval,
            )
            self.probes_sent += 1
            ping = Ping(MessageKind.PING, self._id, seq, target.state.node_id, self._piggyback())
            self._outgoing.append((target.state.address, ping))

    def _ask_indirect(self, probe: _Probe, address: Address) -> None:
        """Ask ``indirect_checks`` random live members to probe the target for us."""
        for helper in self._random_live(self._preset.indirect_checks, address):
            req = PingReq(
                MessageKind.PING_REQ, self._id, probe.seq, probe.node_id, address, self._piggyback()
            )
            self._outgoing.append((helper, req))

    # ----- SWIM: suspicion -------------------------------------------------------------------

    def _timeout_ms(self, confirmations: int) -> int:
        p = self._preset
        return self._health.scale(
            suspicion_timeout_ms(
                members=self._members_count(),
                probe_interval_ms=p.probe_interval_ms,
                suspicion_mult=p.suspicion_mult,
                suspicion_max_mult=p.suspicion_max_mult,
                confirmations=confirmations,
                expected_confirmations=min(p.indirect_checks, self._members_count() - 2),
            )
        )

    def _suspect(self, peer: MemberRecord, incarnation: int, origin: str, now: int) -> None:
        """``origin`` suspects ``peer`` at ``incarnation``: start or confirm our suspicion, and
        pass the news on when it is news."""
        liveness = peer.liveness
        if incarnation < liveness.incarnation or not liveness.state.is_live:
            return
        liveness.incarnation = incarnation
        state = peer.state
        s = liveness.suspicion
        if liveness.state is MemberState.SUSPECT and s is not None:
            if s.incarnation == incarnation:
                if origin in s.suspecters:
                    return
                s.suspecters.add(origin)  # an independent confirmation: the timeout shrinks
            else:  # suspected again at a higher incarnation: a new suspicion
                s = Suspicion(incarnation, now, now, {origin})
                liveness.suspicion = s
        else:
            if self._guard.suppressing(now) and origin == self._id:
                return  # our own probes timed out over our own pause: accuse nobody
            if not self._hear(peer, News.SUSPECTED, now):
                return
            s = Suspicion(incarnation, now, now, {origin})
            liveness.suspicion = s
            if origin != self._id:
                self._maybe_probe_next(state.node_id)
        s.deadline_ms = s.started_ms + self._timeout_ms(len(s.suspecters) - 1)
        heapq.heappush(self._suspicions, (s.deadline_ms, state.node_id))
        self._broadcasts.push(
            Notice(state.node_id, state.generation, incarnation, Verdict.SUSPECT, origin)
        )

    def _maybe_probe_next(self, node_id: str) -> None:
        """Give our next probe to ``node_id``, just heard suspected, with the chance that makes
        :data:`SUSPECT_PROBERS` members do so in expectation."""
        others = self._members_count() - 1
        if len(self._probe_next) < PROBE_NEXT_MAX and self._rng.random() * others < SUSPECT_PROBERS:
            self._probe_next.append(node_id)

    def _expire_suspicions(self, now: int) -> None:
        heap = self._suspicions
        while heap and heap[0][0] <= now:
            deadline, node_id = heapq.heappop(heap)
            peer = self._table.peers.get(node_id)
            if peer is None:
                continue
            s = peer.liveness.suspicion
            if peer.liveness.state is not MemberState.SUSPECT or s is None:
                continue
            if s.deadline_ms != deadline:
                continue  # a stale entry: the deadline moved
            if self._guard.suppressing(now):
                s.deadline_ms = self._guard.suppress_until_ms or now + 1
                heapq.heappush(heap, (s.deadline_ms, node_id))
                continue
            self._convict(peer, s.incarnation, now)

    def _convict(self, peer: MemberRecord, incarnation: int, now: int) -> None:
        if self._hear(peer, News.CONVICTED, now):
            state = peer.state
            self._broadcasts.push(
                Notice(state.node_id, state.generation, incarnation, Verdict.DEAD, self._id)
            )

    def _refute_suspicion(self, incarnation: int) -> None:
        """Someone suspects us (or declared us dead) at ``incarnation``: outbid it."""
        if self._self.status is NodeStatus.LEFT or incarnation < self._self.heartbeat:
            return
        self._table.set_own(KEY_HEARTBEAT, min(incarnation + 1, INT_MAX), None)
        self.suspicions_refuted += 1
        self._health.worse()
        self._announce_alive()

    def _announce_alive(self) -> None:
        own = self._self
        self._broadcasts.push(
            Notice(self._id, own.generation, own.heartbeat, Verdict.ALIVE, self._id)
        )

    def _on_notice(self, n: Notice, now: int) -> None:
        if n.node_id == self._id:
            if n.generation > self._self.generation:
                self._refute(n.generation)
                self._announce_alive()
            elif n.generation == self._self.generation and n.verdict is not Verdict.ALIVE:
                self._refute_suspicion(n.incarnation)
            return
        peer = self._table.peers.get(n.node_id)
        if peer is None or not peer.announced or n.generation != peer.state.generation:
            return
        liveness = peer.liveness
        if n.verdict is Verdict.ALIVE:
            if n.incarnation <= liveness.incarnation:
                return
            liveness.incarnation = n.incarnation
            if self._hear(peer, News.HEARTBEAT, now):
                self._hear_status(peer, now)
            self._broadcasts.push(n)
        elif n.verdict is Verdict.SUSPECT:
            self._suspect(peer, n.incarnation, n.origin, now)
        elif n.incarnation >= liveness.incarnation and liveness.state.is_live:
            liveness.incarnation = n.incarnation
            self._convict(peer, n.incarnation, now)

    def _gossip_step(self, now: int) -> None:
        if now < self._next_gossip_ms:
            return
        self._next_gossip_ms = now + self._preset.gossip_interval_ms
        if not self._broadcasts:
            return
        targets = self._random_live(self._preset.notice_fanout)
        budget = self._budget - 16 - str_bytes(self._id)
        for target in targets:
            notices = self._piggyback(budget)
            if notices:
                self._outgoing.append((target, Notices(MessageKind.NOTICES, self._id, notices)))

    def _tell_about_itself(self, sender: str, source: Address | None) -> None:
        """A member we hold suspect or failed spoke to us: tell it, once per period, so it
        refutes (and its refutation revives it everywhere)."""
        peer = self._table.peers.get(sender)
        if peer is None or not peer.announced:
            return
        liveness = peer.liveness
        if liveness.state not in (MemberState.SUSPECT, MemberState.FAILED):
            return
        address = source if source is not None else peer.state.address
        last = self._told.get(sender)
        if address is None or (
            last is not None and self._now_ms - last < self._preset.probe_interval_ms
        ):
            return
        if len(self._told) >= TOLD_MAX:
            self._told.clear()
        self._told[sender] = self._now_ms
        verdict = Verdict.SUSPECT if liveness.state is MemberState.SUSPECT else Verdict.DEAD
        notice = Notice(sender, peer.state.generation, liveness.incarnation, verdict, self._id)
        self._outgoing.append((address, Notices(MessageKind.NOTICES, self._id, (notice,))))

    # ----- reaping ----------------------------------------------------------------------------

    def _reap_due(self, now: int) -> None:
        heap = self._reaping
        reap_ms = self._preset.dead_node_reap_ms
        while heap and heap[0][0] <= now:
            _due, node_id = heapq.heappop(heap)
            peer = self._table.peers.get(node_id)
            if peer is None:
                continue
            if not peer.announced:
                if now - peer.created_ms >= reap_ms:
                    self._table.drop_peer(node_id)  # never learned its address: drop quietly
                continue
            liveness = peer.liveness
            if liveness.state in (MemberState.FAILED, MemberState.LEFT) and (
                now - liveness.since_ms >= reap_ms
            ):
                self._table.reap(node_id, now + self._preset.reaped_memory_ms)
                self._told.pop(node_id, None)
                self._emit(MemberReaped(node_id, peer.state.generation))

    # ----- push-pull -------------------------------------------------------------------------

    def _push_pull_step(self, now: int) -> None:
        """A join's push-pull with a seed (again with another until answered), or the
        periodic one with a random live member, when due (:mod:`.push_pull`)."""
        plan = self._push_pull
        if now < plan.deadline_ms or self._self.status is NodeStatus.LEFT:
            return
        interval = self._preset.push_pull_interval_for(self._members_count())
        seeds = [s for s in self._seeds if s != self.address]
        with_seed = plan.with_seed and bool(seeds)
        if with_seed:
            target: Address | None = _choice(self._rng, seeds)
        else:
            picked = self._random_live(1)
            target = picked[0] if picked else None
        if target is None:
            plan.asking(self.address, now, interval)  # nobody to ask: try again later
            return
        plan.asking(target, now, interval)
        self.push_pulls_sent += 1
        # A seed knows more than a node that is joining: ask with our own state only.
        self._send_table(target, reply_wanted=True, whole=not with_seed)

    def _send_table(self, address: Address, *, reply_wanted: bool, whole: bool = True) -> None:
        """Our whole table (self and every live member, full states; only self unless
        ``whole``) to ``address``, in chunks that each fit a datagram, in random order (at
        most ``CHUNKS_MAX`` chunks)."""
        peers = self._table.peers
        order = list(self._table.ids) if whole else []
        self._rng.shuffle(order)
        states = [self._self]
        for node_id in order:
            peer = peers[node_id]
            if peer.announced and peer.liveness.state.is_live:
                states.append(peer.state)
        room = self._budget - 4 - str_bytes(self._id) - LIST_GROWTH_BYTES
        chunk: list[Delta] = []
        used = 0
        chunks = 0
        for state in states:
            delta, size = self._full_delta(state)
            if size > room:
                continue  # too many tags for one datagram: the ordinary syncs carry it
            if used + size > room:
                self._outgoing.append(
                    (address, PushPull(MessageKind.PUSH_PULL, self._id, reply_wanted, tuple(chunk)))
                )
                chunks += 1
                if chunks >= CHUNKS_MAX:
                    return
                chunk, used = [], 0
            chunk.append(delta)
            used += size
        if chunk:
            self._outgoing.append(
                (address, PushPull(MessageKind.PUSH_PULL, self._id, reply_wanted, tuple(chunk)))
            )

    def _full_delta(self, state: NodeState) -> tuple[Delta, int]:
        """A node's whole state as one delta from version 0, and its packed size (kept
        until the state moves: a table is sent every interval, most of it unchanged)."""
        cached = self._full_deltas.get(state.node_id)
        if (
            cached is not None
            and cached[0].generation == state.generation
            and cached[0].to_version == state.max_version
        ):
            return cached
        items = state.entries_after(0)
        size = (
            2
            + str_bytes(state.node_id)
            + uint_bytes(state.generation)
            + 1
            + uint_bytes(state.max_version)
            + LIST_GROWTH_BYTES
        )
        wire = []
        for key, e in items:
            wire.append(WireEntry(key, e.value, e.version, e.expiry_unix_ms))
            size += e.wire_bytes(key)
        delta = Delta(state.node_id, state.generation, 0, state.max_version, tuple(wire))
        if len(self._full_deltas) >= MEMBERS_MAX:
            self._full_deltas.clear()
        self._full_deltas[state.node_id] = (delta, size)
        return delta, size

    def _drop_covered(self, raw: object) -> object:
        """A push-pull chunk, ACK or ACK2 without the deltas we hold already (same
        generation, our watermark at or past theirs): most of a table on a node whose view is
        full, and an ACK's states of members our SYN did not mention that reached us
        meanwhile (all of them while the ACK offered random members). They would
        change nothing (:meth:`_apply` returns at once), and skipping them skips checking
        their entries (the rest is checked in full by :func:`decode`). A push-pull's covered
        members are kept in :attr:`_covered` (its answer vouches for them)."""
        if not isinstance(raw, list) or not raw:
            return raw
        kind = raw[0]
        if kind in (MessageKind.PUSH_PULL, MessageKind.ACK):
            at = 3
        elif kind == MessageKind.ACK2:
            at = 2
        else:
            return raw
        if len(raw) != at + 1 or not isinstance(raw[at], list):
            return raw
        kept = []
        covered = self._covered
        covered.clear()
        note = kind == MessageKind.PUSH_PULL
        state_for = self._table.state_for
        for d in raw[at]:
            if isinstance(d, list) and len(d) == 5 and type(d[0]) is str:
                state = state_for(d[0])
                if (
                    state is not None
                    and d[1] == state.generation
                    and type(d[3]) is int
                    and d[3] <= state.max_version
                ):
                    if note:
                        covered.append(d[0])
                    continue
            kept.append(d)
        if len(kept) == len(raw[at]):
            return raw
        return [*raw[:at], kept]

    def _on_push_pull(self, message: PushPull, now_ms: int) -> None:
        now = self._advance(now_ms)
        self._direct_contact(message.sender)
        plan = self._push_pull
        answer = not message.reply_wanted and plan.is_answer(self._source, now)
        self._vouched = answer
        try:
            for d in message.deltas:
                self._apply(d, now)
        finally:
            self._vouched = False
        if answer:
            interval = self._preset.push_pull_interval_for(self._members_count())
            plan.answered(now, self._rng.random(), interval)
            peers = self._table.peers
            for node_id in self._covered:  # held already, maybe waiting to be confirmed
                peer = peers.get(node_id)
                if peer is not None and peer.announced and peer.liveness.state.is_live:
                    address = peer.state.address
                    if address is not None:
                        self.live.heard_from(address)
        self._covered.clear()
        if message.reply_wanted and plan.should_reply(message.sender, now):
            address = self._source
            if address is None:
                state = self._table.announced_state(message.sender)
                address = None if state is None else state.address
            if address is not None and address != self.address:
                self._send_table(address, reply_wanted=False)

    # ----- peers and targets ---------------------------------------------------------------

    def _info(self, peer: MemberRecord) -> MemberInfo:
        addr = peer.state.address
        assert addr is not None
        return MemberInfo(
            node_id=peer.state.node_id,
            address=addr,
            state=peer.liveness.state,
            status=peer.state.status,
            phi=peer.liveness.level(self._now_ms),
            generation=peer.state.generation,
            heartbeat=peer.state.heartbeat,
            is_self=False,
        )

    def members(self) -> list[MemberInfo]:
        """Every known member, self included, sorted by id."""
        own_status = self._self.status
        rows = [
            MemberInfo(
                node_id=self._id,
                address=self.address,
                state=MemberState(own_status.value),  # what we say is what we are
                status=own_status,
                phi=0.0,
                generation=self._self.generation,
                heartbeat=self._self.heartbeat,
                is_self=True,
            )
        ]
        rows.extend(self._info(p) for p in self._table.peers.values() if p.announced)
        rows.sort(key=lambda r: r.node_id)
        return rows

    def member(self, node_id: str) -> MemberInfo | None:
        """One member (self included) or None if unknown."""
        for row in self.members():
            if row.node_id == node_id:
                return row
        return None

    def _announced(self) -> list[MemberRecord]:
        """Peers whose address we know, sorted by id."""
        peers = self._table.peers
        return [p for n in sorted(peers) if (p := peers[n]).announced]

    def live_peers(self) -> list[MemberInfo]:
        """Peers (self excluded) that are alive, suspect or leaving, sorted by id."""
        return [self._info(p) for p in self._announced() if p.liveness.state.is_live]

    def live_addresses(self) -> list[Address]:
        """The addresses of :meth:`live_peers`, in the same order (confirmed or not; data
        gossip picks from :attr:`live` instead, which is kept in step without sorting)."""
        return [
            addr
            for p in self._announced()
            if p.liveness.state.is_live and (addr := p.state.address) is not None
        ]

    @property
    def quiet(self) -> bool:
        """No news of any member's state for twice the quiet sync interval."""
        return self._now_ms - self._news_ms >= 2 * self._preset.membership_sync_quiet_interval_ms

    @property
    def sync_interval_ms(self) -> int:
        """How long until the next sync round: short while news arrives, long once quiet."""
        p = self._preset
        return p.membership_sync_quiet_interval_ms if self.quiet else p.membership_sync_interval_ms

    def sync_targets(self) -> list[Address]:
        """Addresses to send a SYN to this round.

        ``membership_sync_fanout`` random live peers; plus one random failed peer with
        probability ``failed / (live + 1)`` (so healed partitions reconnect) and one random seed
        with probability ``1 / (live + 1)`` (always when no peer is live), as Cassandra does.
        Picked in O(fanout), whatever the number of members.
        """
        targets = self._random_live(1 if self.quiet else self._preset.membership_sync_fanout)
        live = len(self.live.confirmed)
        failed = self.live.failed_count()
        if failed and self._rng.random() < failed / (live + 1):
            address = self.live.random_failed(self._rng.random())
            if address is not None:
                targets.append(address)
        seeds = [s for s in self._seeds if s != self.address]
        if seeds and (not targets or self._rng.random() < 1 / (live + 1)):
            targets.append(_choice(self._rng, seeds))
        out: list[Address] = []
        for t in targets:
            if t not in out and t != self.address:
                out.append(t)
        return out

    # ----- events --------------------------------------------------------------------------

    def next_event(self) -> MembershipEvent | None:
        """The oldest undrained event, or None."""
        return self._events.popleft() if self._events else None

    def events(self) -> list[MembershipEvent]:
        """Drain every pending event, oldest first."""
        out = list(self._events)
        self._events.clear()
        return out

    # ----- building messages ---------------------------------------------------------------

    def _budget_of(self, budget_bytes: int | None) -> int:
        budget = self._budget if budget_bytes is None else budget_bytes
        if budget < BUDGET_BYTES_MIN:
            raise ValueError(f"budget_bytes must be >= {BUDGET_BYTES_MIN}")
        return budget

    def _fit_digest(
        self, entries: list[DigestItem], budget: int, keep: int
    ) -> tuple[list[DigestItem], bool, int]:
        """As many digest entries as fit ``budget`` (the first ``keep`` while they fit, then a
        random subset of the rest if not all); bytes used."""
        sizes = [digest_item_bytes(*e) for e in entries]
        if sum(sizes) <= budget:
            return entries, True, sum(sizes)
        order = list(range(len(entries)))
        fixed = order[:keep]
        rest = order[len(fixed) :]
        self._rng.shuffle(rest)
        chosen: list[int] = []
        used = 0
        for i in fixed + rest:
            if used + sizes[i] <= budget:
                chosen.append(i)
                used += sizes[i]
        chosen.sort()
        return [entries[i] for i in chosen], False, used

    def make_syn(self, budget_bytes: int | None = None) -> Syn:
        """A SYN carrying this node's digest (a random subset with self first if too large)."""
        budget = self._budget_of(budget_bytes)
        room = budget - 3 - str_bytes(self._id) - LIST_GROWTH_BYTES
        table = self._table
        own = self._self
        first = DigestItem(self._id, own.generation, own.max_version)
        # About as many members as fit (sized like our own item), not more: sampling 256
        # to keep 50 was most of a sync's cost.
        fit = min(DIGEST_SAMPLE_MAX, room // digest_item_bytes(*first) + 4)
        suspects = self._suspects_to_sync()
        urgent = set(suspects)
        if len(table.ids) < fit:
            peers = table.digest()[1:]  # every peer, by id
        else:
            peers = self._items_of(self._sample_ids(fit))
        entries = [first, *self._items_of(suspects)]
        entries += [e for e in peers if e.node_id not in urgent]
        digest, complete, _used = self._fit_digest(entries, room, keep=1 + len(suspects))
        complete = complete and len(entries) == len(table.ids) + 1
        return Syn(MessageKind.SYN, self._id, complete, tuple(digest))

    def _suspects_to_sync(self) -> list[str]:
        """Members we hold suspect, soonest deadline first, at most ``SYNC_SUSPECTS_MAX``.

        Their digest items go into every SYN we send, so a refutation we missed (its alive
        notice is spread a bounded number of times, and with loss a node can miss every copy)
        still reaches us before the suspicion times out: any peer that has the member's newer
        heartbeat answers with it. Without this, a live node could be convicted by one
        observer that happened to miss the notice (seen at 300 simulated nodes, 5% loss).
        """
        out: list[str] = []
        peers = self._table.peers
        for _deadline, node_id in self._suspicions:  # heap order: roughly soonest first
            peer = peers.get(node_id)
            if (
                peer is not None
                and peer.liveness.state is MemberState.SUSPECT
                and node_id not in out
            ):
                out.append(node_id)
                if len(out) >= SYNC_SUSPECTS_MAX:
                    break
        return out

    def _items_of(self, node_ids: list[str]) -> list[DigestItem]:
        peers = self._table.peers
        return [
            DigestItem(i, peers[i].state.generation, peers[i].state.max_version) for i in node_ids
        ]

    def _random_live(self, k: int, exclude: Address | None = None) -> list[Address]:
        """Up to ``k`` distinct addresses of random live (alive, suspect, leaving) announced
        members other than ``exclude``: O(k) tries, whatever the number of members."""
        ids = self._table.ids
        peers = self._table.peers
        out: list[Address] = []
        if not ids:
            return out
        for _ in range(4 * k):
            if len(out) >= k:
                break
            peer = peers[_choice(self._rng, ids)]
            address = peer.state.address
            if (
                address is None
                or not peer.announced
                or not peer.liveness.state.is_live
                or address == exclude
                or address in out
            ):
                continue
            out.append(address)
        return out

    def _sample_ids(self, k: int) -> list[str]:
        """Up to ``k`` distinct random peer ids, in O(k)."""
        ids = self._table.ids
        if len(ids) <= k:
            return list(ids)
        picked: dict[str, None] = {}
        random, last = self._rng.random, len(ids) - 1
        for _ in range(2 * k):  # (_choice inline: a SYN and its answer each draw ~50)
            if len(picked) >= k:
                break
            picked[ids[min(last, int(random() * len(ids)))]] = None
        return list(picked)

    def _pack_deltas(
        self, offers: list[tuple[NodeState, int]], budget: int
    ) -> tuple[list[Delta], int]:
        """Deltas for ``offers`` (state, from_version) in order, without gaps, within budget."""
        out: list[Delta] = []
        left = budget
        for state, from_v in offers:
            if left < BUDGET_BYTES_MIN // 8:
                break  # full: the rest would not fit
            if from_v >= state.max_version:
                continue
            if from_v == 0:  # a whole state: the one kept for push-pulls, when it fits
                whole, size = self._full_delta(state)
                if size <= left:
                    out.append(whole)
                    left -= size
                    continue
            items = state.entries_after(from_v)
            head = (
                2
                + str_bytes(state.node_id)
                + uint_bytes(state.generation)
                + uint_bytes(from_v)
                + uint_bytes(state.max_version)
            )
            used = head + LIST_GROWTH_BYTES
            if used > left:
                continue
            wire: list[WireEntry] = []
            for key, e in items:
                item = WireEntry(key, e.value, e.version, e.expiry_unix_ms)
                size = e.wire_bytes(key)
                if used + size > left:
                    break
                wire.append(item)
                used += size
            truncated = len(wire) < len(items)
            if truncated and not wire:
                continue
            to_v = wire[-1].version if truncated else state.max_version
            out.append(Delta(state.node_id, state.generation, from_v, to_v, tuple(wire)))
            left -= used
        return out, budget - left

    def _scuttle_order(self, offers: list[tuple[NodeState, int]]) -> list[tuple[NodeState, int]]:
        """Most outstanding versions first; ties in random order (deterministic given rng)."""
        offers = sorted(offers, key=lambda o: o[0].node_id)
        keyed = [(-(s.max_version - f), self._rng.random(), s, f) for s, f in offers]
        keyed.sort(key=lambda k: (k[0], k[1]))
        return [(s, f) for _d, _r, s, f in keyed]

    def _offer_for(self, node_id: str, generation: int, max_version: int) -> int | None:
        """The from_version we can serve a peer that has (generation, max_version), or None."""
        state = self._table.state_for(node_id)
        if state is None:
            return None
        if generation < state.generation:
            return 0
        if generation == state.generation and max_version < state.max_version:
            return max_version
        return None

    # ----- handling messages ---------------------------------------------------------------

    def handle(
        self,
        msg: object,
        now_ms: int,
        budget_bytes: int | None = None,
        *,
        source: Address | None = None,
    ) -> Reply | None:
        """Dispatch any membership message; returns the reply to send back, if any (other
        messages it causes, such as a relayed probe, wait in :meth:`take_outgoing`).

        ``source`` is the address the message came from, when it came straight from its sender
        (a datagram): a member it announces at that address is confirmed at once.
        """
        message = decode(self._drop_covered(msg))
        self._source = source
        self._speaker = message.sender if source is not None else None
        try:
            if isinstance(message, Syn):
                return self._on_syn(message, now_ms, budget_bytes)
            if isinstance(message, Ack):
                return self._on_ack(message, now_ms, budget_bytes)
            if isinstance(message, Ack2):
                self._on_ack2(message, now_ms)
                return None
            if isinstance(message, PushPull):
                self._on_push_pull(message, now_ms)
                return None
            return self._on_probe(message, now_ms)
        finally:
            self._source = None
            self._speaker = None

    def _on_probe(self, message: Ping | PingAck | PingReq | Notices, now_ms: int) -> PingAck | None:
        now = self._advance(now_ms)
        sender = message.sender
        self._direct_contact(sender)
        for notice in message.notices:
            self._on_notice(notice, now)
        if isinstance(message, Ping):
            if message.target != self._id:
                return None  # someone else answers at this address now
            return PingAck(MessageKind.PING_ACK, self._id, message.seq, self._piggyback())
        if isinstance(message, PingAck):
            probe = self._probe
            if probe is not None and probe.seq == message.seq:
                self._probe = None
                self._health.better()
                return None
            relay = self._relays.pop(message.seq, None)
            if relay is not None:
                requester, seq = relay
                ack = PingAck(MessageKind.PING_ACK, self._id, seq, self._piggyback())
                self._outgoing.append((requester, ack))
            return None
        if isinstance(message, PingReq):
            asker: Address | None = self._source
            if asker is None and sender in self._table.peers:
                asker = self._table.peers[sender].state.address
            if asker is None or message.target == self._id:
                return None
            seq = self._next_seq()
            if len(self._relays) >= RELAYS_MAX:
                del self._relays[next(iter(self._relays))]
            self._relays[seq] = (asker, message.seq)
            ping = Ping(MessageKind.PING, self._id, seq, message.target, self._piggyback())
            self._outgoing.append((message.address, ping))
        return None

    def on_syn(self, msg: object, now_ms: int, budget_bytes: int | None = None) -> Ack:
        """Answer a SYN with an ACK: deltas where we are ahead, requests where we are behind."""
        syn = _expect(msg, MessageKind.SYN)
        assert isinstance(syn, Syn)
        return self._on_syn(syn, now_ms, budget_bytes)

    def on_ack(self, msg: object, now_ms: int, budget_bytes: int | None = None) -> Ack2 | None:
        """Apply an ACK's deltas; answer its requests with an ACK2 (None if nothing to send)."""
        ack = _expect(msg, MessageKind.ACK)
        assert isinstance(ack, Ack)
        return self._on_ack(ack, now_ms, budget_bytes)

    def on_ack2(self, msg: object, now_ms: int) -> None:
        """Apply an ACK2's deltas."""
        ack2 = _expect(msg, MessageKind.ACK2)
        assert isinstance(ack2, Ack2)
        self._on_ack2(ack2, now_ms)

    def _direct_contact(self, sender: str) -> None:
        """A message sent by a node proves it is alive: stop treating it as reaped, and tell it
        if we hold it suspect or failed (it refutes)."""
        if sender != self._id:
            self._table.unreap(sender)
            self._tell_about_itself(sender, self._source)

    def _on_syn(self, syn: Syn, now_ms: int, budget_bytes: int | None) -> Ack:
        budget = self._budget_of(budget_bytes)
        self._advance(now_ms)
        self._direct_contact(syn.sender)
        requests: list[DigestItem] = []
        offers: list[tuple[NodeState, int]] = []
        mentioned: set[str] = set()
        news = False
        peers = self._table.peers
        for d in syn.digest:
            mentioned.add(d.node_id)
            peer = peers.get(d.node_id)
            if (
                peer is not None
                and d.generation == peer.state.generation
                and d.max_version == peer.state.max_version
            ):
                continue  # the same state on both sides (most of a digest): nothing to do
            if d.node_id == self._id:
                self._refute(d.generation)
                if d.generation == self._self.generation and d.max_version > self._self.max_version:
                    # Someone holds newer versions of our own generation (a restart that reused
                    # the generation): move our counter past them so our next change wins.
                    self._self.max_version = d.max_version
                from_v = self._offer_for(self._id, d.generation, d.max_version)
                if from_v is not None:
                    offers.append((self._self, from_v))
                continue
            if self._table.is_reaped(d.node_id, d.generation):
                continue
            if not self._plausible(d.generation):
                continue
            if peer is None:
                requests.append(DigestItem(d.node_id, 0, 0))
                news = True
                continue
            s = peer.state
            if d.generation > s.generation or (
                d.generation == s.generation and d.max_version > s.max_version
            ):
                requests.append(DigestItem(d.node_id, s.generation, s.max_version))
                news = news or d.generation > s.generation
            else:  # we are ahead: a newer generation whole, else the versions it lacks
                offers.append((s, 0 if d.generation < s.generation else d.max_version))
        if news:  # the sender knows members we do not: sync often again
            self._news_ms = self._now_ms
        unmentioned = [self._self] if self._id not in mentioned else []
        # Candidates for the room left: a few (a delta is 40 bytes at least), not every member
        # (sorting them all was O(N) per SYN). A complete digest names every member the
        # sender holds, so it lacks the rest: a random few of them. A sampled one says
        # nothing of what it lacks: the members that changed here lately (see recent.py).
        extra_max = min(DIGEST_SAMPLE_MAX, budget // EXTRA_DELTA_BYTES_MIN)
        if not syn.complete:
            candidates = self._recent.sample(extra_max, self._now_ms, self._rng.random)
        elif len(peers) <= extra_max:
            candidates = sorted(peers)
        else:
            candidates = self._sample_ids(extra_max)
        unmentioned += [
            peer.state
            for n in candidates
            if n not in mentioned and (peer := peers.get(n)) is not None
        ]
        extra = [(s, 0) for s in unmentioned]
        if syn.complete:
            offers += extra
            extra = []
        base = 4 + str_bytes(self._id)
        room = budget - base - 2 * LIST_GROWTH_BYTES
        req_fit, _c, req_used = self._fit_digest(requests, room // 2, keep=0)
        room -= req_used
        deltas, used = self._pack_deltas(self._scuttle_order(offers), room)
        room -= used
        if extra:
            order = sorted(extra, key=lambda o: o[0].node_id)
            self._rng.shuffle(order)
            more, _u = self._pack_deltas(order, room)
            deltas += more
        return Ack(MessageKind.ACK, self._id, tuple(req_fit), tuple(deltas))

    def _on_ack(self, ack: Ack, now_ms: int, budget_bytes: int | None) -> Ack2 | None:
        budget = self._budget_of(budget_bytes)
        now = self._advance(now_ms)
        self._direct_contact(ack.sender)
        for d in ack.deltas:
            self._apply(d, now)
        offers: list[tuple[NodeState, int]] = []
        for r in ack.requests:
            from_v = self._offer_for(r.node_id, r.generation, r.max_version)
            if from_v is not None:
                state = self._table.state_for(r.node_id)
                assert state is not None
                offers.append((state, from_v))
        if not offers:
            return None
        base = 3 + str_bytes(self._id)
        out, _used = self._pack_deltas(
            self._scuttle_order(offers), budget - base - LIST_GROWTH_BYTES
        )
        if not out:
            return None
        return Ack2(MessageKind.ACK2, self._id, tuple(out))

    def _on_ack2(self, ack2: Ack2, now_ms: int) -> None:
        now = self._advance(now_ms)
        self._direct_contact(ack2.sender)
        for d in ack2.deltas:
            self._apply(d, now)

    # ----- applying deltas -----------------------------------------------------------------

    def _apply(self, d: Delta, now: int) -> None:
        if d.node_id == self._id:
            self._refute(d.generation)
            if d.generation == self._self.generation and d.to_version > self._self.max_version:
                self._self.max_version = d.to_version
            return
        if self._table.is_reaped(d.node_id, d.generation):
            return
        peers = self._table.peers
        peer = peers.get(d.node_id)
        if peer is None or d.generation > peer.state.generation:
            if d.from_version != 0 or not self._plausible(d.generation):
                return
            # A node speaking for itself from its address (a joiner asking its seed, a SYN's
            # sender) is taken in whatever the admission rate, as are the members of a
            # push-pull answer we asked for.
            rate_limited = not (self._vouched or d.node_id == self._speaker)
            if peer is None and not self._table.admit_new_member(now, rate_limited=rate_limited):
                self.refused_members += 1
                return
            restarted = peer is not None and peer.announced
            peer = MemberRecord(
                state=NodeState(d.node_id, d.generation),
                liveness=PeerLiveness(MemberState.ALIVE, now),
                created_ms=now,
                restarted=restarted,
            )
            self._table.add_peer(peer)
            self._table.unreap(d.node_id)
            heapq.heappush(self._reaping, (now + self._preset.dead_node_reap_ms, d.node_id))
        state = peer.state
        if d.generation < state.generation or d.from_version > state.max_version:
            return  # stale past, or a gap we cannot fill
        if d.to_version <= state.max_version:
            return
        changed, refused = self._table.merge(state, d, now)
        self.refused_tags += refused
        self._after_change(peer, changed, now)

    def _after_change(self, peer: MemberRecord, changed: list[Change], now: int) -> None:
        if not peer.announced or any(key != KEY_HEARTBEAT for key, _e, _o in changed):
            # News makes syncs frequent again; a heartbeat alone is a refutation, which its
            # alive notice spreads (at 1,000 nodes one came every few seconds, and every node
            # then synced eight times a second for good).
            self._news_ms = now
        state = peer.state
        node_id, gen = state.node_id, state.generation
        self._recent.note(node_id, now)
        if not peer.announced:
            address = state.address
            if address is None:
                return
            peer.announced = True
            peer.liveness.since_ms = now
            peer.liveness.incarnation = state.heartbeat
            self._emit(MemberJoined(node_id, gen, address, peer.restarted))
            if self._order_pos < len(self._order):  # probed within this round, at random
                left = len(self._order) - self._order_pos
                self._order.insert(self._order_pos + int(self._rng.random() * left), node_id)
            self._hear_status(peer, now)
            for key, entry in sorted(state.entries.items(), key=lambda kv: kv[1].version):
                if not key.startswith(RESERVED_KEY_PREFIX) and entry.visible_at(self._now_ms):
                    self._events.append(
                        TagUpdated(node_id, key, entry.value, entry.version, entry.expiry_unix_ms)
                    )
            return
        for key, entry, old in changed:
            if key == KEY_HEARTBEAT:
                if entry.value > peer.liveness.incarnation:
                    self._on_heartbeat(peer, entry.value, now)
            elif key == KEY_STATUS:
                self._hear_status(peer, now)
            elif key.startswith(RESERVED_KEY_PREFIX):
                continue
            elif entry.visible_at(self._now_ms):
                self._events.append(
                    TagUpdated(node_id, key, entry.value, entry.version, entry.expiry_unix_ms)
                )
            elif old is not None and old.visible_at(self._now_ms):
                self._events.append(TagExpired(node_id, key, entry.version))

    # ----- liveness --------------------------------------------------------------------------

    def _on_heartbeat(self, peer: MemberRecord, incarnation: int, now: int) -> None:
        """A higher incarnation of ``peer`` reached us through its state: it refuted."""
        peer.liveness.incarnation = incarnation
        if self._hear(peer, News.HEARTBEAT, now):
            self._hear_status(peer, now)  # back from suspect or failed: apply its status again

    def _hear_status(self, peer: MemberRecord, now: int) -> None:
        news = peer.state.status.news
        if news is not None:
            self._hear(peer, news, now)

    def _hear(self, peer: MemberRecord, news: News, now: int) -> bool:
        """Apply liveness news to a peer; queue the event of the state it moved to, if any."""
        phi = peer.liveness.level(now)
        if not peer.liveness.hear(news, now):
            return False
        node_id, gen = peer.state.node_id, peer.state.generation
        new = peer.liveness.state
        event: MembershipEvent
        if new is MemberState.ALIVE:
            event = MemberAlive(node_id, gen)
        elif new is MemberState.SUSPECT:
            event = MemberSuspect(node_id, gen, phi)
        elif new is MemberState.FAILED:
            event = MemberFailed(node_id, gen, phi)
            heapq.heappush(self._reaping, (now + self._preset.dead_node_reap_ms, node_id))
        elif new is MemberState.LEAVING:
            event = MemberLeaving(node_id, gen)
        else:
            event = MemberLeft(node_id, gen)
            heapq.heappush(self._reaping, (now + self._preset.dead_node_reap_ms, node_id))
        self._emit(event)
        return True

    def _emit(self, event: MembershipEvent) -> None:
        """Queue ``event`` for the driver, keeping the live-peer set in step with it."""
        self.live.on_event(event, self._source, self._now_ms, vouched=self._vouched)
        self._events.append(event)

    def heard_from(self, source: Address) -> None:
        """``source`` sent us an authentic message (of any kind): a member waiting to be
        confirmed at that address is confirmed."""
        self.live.heard_from(source)

    def confirm_overdue(self, now_ms: int, confirm_ms: int) -> None:
        """Use members still alive ``confirm_ms`` after we learned of them, unconfirmed (behind
        NAT their datagrams may come from another address than they announce)."""
        if self.live.has_unconfirmed():
            self.live.confirm_overdue(now_ms, confirm_ms, self._is_live)

    def _is_live(self, node_id: str) -> bool:
        peer = self._table.peers.get(node_id)
        return peer is not None and peer.announced and peer.liveness.state.is_live
