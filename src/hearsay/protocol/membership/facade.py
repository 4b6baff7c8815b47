"""The :class:`Membership` facade: scuttlebutt reconciliation driving the table and liveness.

Why this module exists: the driver (the gossip node, the tests' harnesses) needs one object to
call with time and messages; this is it. It reconciles the :mod:`table <.table>` with peers
(SYN / ACK / ACK2, see the package docstring), feeds heartbeats and status changes to
:mod:`liveness <.liveness>`, and queues :mod:`events <.events>`; checking and encoding the
messages is :mod:`wire <.wire>`'s job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import MutableSequence, Sequence
from typing import Any, Final, Protocol, TypeVar

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
    new_detector,
    verdict,
)
from hearsay.protocol.membership.table import (
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
    Syn,
    TagValue,
    WireEntry,
    check_address,
    check_node_id,
    check_tag_value,
    decode,
    packed_len,
)
from hearsay.protocol.presets import DEFAULT_PRESET, GossipPreset

_T = TypeVar("_T")

GENERATION_AHEAD_MAX_MS: Final = 3_600_000
"""A generation claim more than an hour ahead of our clock is refused (see the docstring)."""


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
        """The sender of the message being handled, if the driver named it (its news about
        itself confirms it: it answers on the address it claims)."""
        self._guard = PauseGuard(preset.local_pause_ms, preset.local_pause_grace_ms)
        if now_ms is not None:
            self._guard.tick(now_ms)
        self._next_heartbeat_ms = self._now_ms
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

    def add_seed(self, address: Address) -> None:
        """An address to contact before (or besides) known members; duplicates are ignored."""
        address = check_address(address)
        self.live.add_seed(address)
        if address not in self._seeds:
            self._seeds.append(address)
            self._seeds.sort()

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
        if packed_len(WireEntry(key, value, INT_MAX, expiry_unix_ms)) > TAG_ENTRY_BYTES_MAX:
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
        """Heartbeat, failure detection, tag expiry and reaping, as of ``now_ms``."""
        now = self._advance(now_ms)
        p = self._preset
        if now >= self._next_heartbeat_ms and self._self.status is not NodeStatus.LEFT:
            self._table.set_own(KEY_HEARTBEAT, self._self.heartbeat + 1, None)
            self._next_heartbeat_ms = max(
                self._next_heartbeat_ms + p.heartbeat_interval_ms, now + 1
            )
        suppress = self._guard.suppressing(now)
        peers = self._table.peers
        for node_id in sorted(peers):
            peer = peers[node_id]
            if not peer.announced:
                if now - peer.created_ms >= p.dead_node_reap_ms:
                    del peers[node_id]  # never learned its address: drop quietly
                continue
            liveness = peer.liveness
            if liveness.state.is_live and not suppress:
                news, phi = verdict(liveness, p, now)
                if news is not None:
                    self._hear(peer, news, now, phi)
            if liveness.state in (MemberState.FAILED, MemberState.LEFT) and (
                now - liveness.since_ms >= p.dead_node_reap_ms
            ):
                self._table.reap(node_id, now + p.reaped_memory_ms)
                self._emit(MemberReaped(node_id, peer.state.generation))
        self._events.extend(self._table.expire(now))
        self._table.forget_reaped(now)

    # ----- peers and targets ---------------------------------------------------------------

    def _info(self, peer: MemberRecord) -> MemberInfo:
        addr = peer.state.address
        assert addr is not None
        return MemberInfo(
            node_id=peer.state.node_id,
            address=addr,
            state=peer.liveness.state,
            status=peer.state.status,
            phi=peer.liveness.detector.phi(self._now_ms),
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

    def sync_targets(self) -> list[Address]:
        """Addresses to send a SYN to this round.

        ``membership_sync_fanout`` random live peers; plus one random failed peer with
        probability ``failed / (live + 1)`` (so healed partitions reconnect) and one random seed
        with probability ``1 / (live + 1)`` (always when no peer is live), as Cassandra does.
        """
        live = self.live_addresses()
        failed = [
            addr
            for p in self._announced()
            if p.liveness.state is MemberState.FAILED and (addr := p.state.address) is not None
        ]
        targets = _sample(self._rng, live, self._preset.membership_sync_fanout)
        if failed and self._rng.random() < len(failed) / (len(live) + 1):
            targets.append(_choice(self._rng, failed))
        seeds = [s for s in self._seeds if s != self.address]
        if seeds and (not live or self._rng.random() < 1 / (len(live) + 1)):
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
        self, entries: list[DigestItem], budget: int, keep_first: bool
    ) -> tuple[list[DigestItem], bool, int]:
        """As many digest entries as fit ``budget`` (a random subset if not all); bytes used."""
        sizes = [packed_len(e) for e in entries]
        if sum(sizes) <= budget:
            return entries, True, sum(sizes)
        order = list(range(len(entries)))
        fixed = [0] if keep_first and entries else []
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
        base = packed_len(Syn(MessageKind.SYN, self._id, False, ()))
        digest, complete, _used = self._fit_digest(
            self._table.digest(), budget - base - LIST_GROWTH_BYTES, keep_first=True
        )
        return Syn(MessageKind.SYN, self._id, complete, tuple(digest))

    def _pack_deltas(
        self, offers: list[tuple[NodeState, int]], budget: int
    ) -> tuple[list[Delta], int]:
        """Deltas for ``offers`` (state, from_version) in order, without gaps, within budget."""
        out: list[Delta] = []
        left = budget
        for state, from_v in offers:
            if from_v >= state.max_version:
                continue
            items = state.entries_after(from_v)
            head = packed_len(Delta(state.node_id, state.generation, from_v, state.max_version, ()))
            used = head + LIST_GROWTH_BYTES
            if used > left:
                continue
            wire: list[WireEntry] = []
            for key, e in items:
                item = WireEntry(key, e.value, e.version, e.expiry_unix_ms)
                size = packed_len(item)
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
    ) -> Ack | Ack2 | None:
        """Dispatch any membership message; returns the reply to send back, if any.

        ``source`` is the address the message came from, when it came straight from its sender
        (a datagram): a member it announces at that address is confirmed at once.
        """
        message = decode(msg)
        self._source = source
        try:
            if isinstance(message, Syn):
                return self._on_syn(message, now_ms, budget_bytes)
            if isinstance(message, Ack):
                return self._on_ack(message, now_ms, budget_bytes)
            self._on_ack2(message, now_ms)
            return None
        finally:
            self._source = None

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
        """A message sent by a node proves it is alive: stop treating it as reaped."""
        if sender != self._id:
            self._table.unreap(sender)

    def _on_syn(self, syn: Syn, now_ms: int, budget_bytes: int | None) -> Ack:
        budget = self._budget_of(budget_bytes)
        self._advance(now_ms)
        self._direct_contact(syn.sender)
        requests: list[DigestItem] = []
        offers: list[tuple[NodeState, int]] = []
        mentioned: set[str] = set()
        peers = self._table.peers
        for d in syn.digest:
            mentioned.add(d.node_id)
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
            peer = peers.get(d.node_id)
            if peer is None:
                requests.append(DigestItem(d.node_id, 0, 0))
                continue
            s = peer.state
            if d.generation > s.generation or (
                d.generation == s.generation and d.max_version > s.max_version
            ):
                requests.append(DigestItem(d.node_id, s.generation, s.max_version))
            else:
                from_v = self._offer_for(d.node_id, d.generation, d.max_version)
                if from_v is not None:
                    offers.append((s, from_v))
        unmentioned = [self._self] if self._id not in mentioned else []
        unmentioned += [peers[n].state for n in sorted(peers) if n not in mentioned]
        extra = [(s, 0) for s in unmentioned]
        if syn.complete:
            offers += extra
            extra = []
        base = packed_len(Ack(MessageKind.ACK, self._id, (), ()))
        room = budget - base - 2 * LIST_GROWTH_BYTES
        req_fit, _c, req_used = self._fit_digest(requests, room // 2, keep_first=False)
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
        base = packed_len(Ack2(MessageKind.ACK2, self._id, ()))
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
            if peer is None and not self._table.admit_new_member(now):
                self.refused_members += 1
                return
            restarted = peer is not None and peer.announced
            peer = MemberRecord(
                state=NodeState(d.node_id, d.generation),
                liveness=PeerLiveness(new_detector(self._preset), MemberState.ALIVE, now),
                created_ms=now,
                restarted=restarted,
            )
            peers[d.node_id] = peer
            self._table.unreap(d.node_id)
        state = peer.state
        if d.generation < state.generation or d.from_version > state.max_version:
            return  # stale past, or a gap we cannot fill
        if d.to_version <= state.max_version:
            return
        changed, refused = self._table.merge(state, d, now)
        self.refused_tags += refused
        self._after_change(peer, changed, now)

    def _after_change(self, peer: MemberRecord, changed: list[Change], now: int) -> None:
        state = peer.state
        node_id, gen = state.node_id, state.generation
        if not peer.announced:
            address = state.address
            if address is None:
                return
            peer.announced = True
            peer.liveness.detector.heartbeat(now)
            peer.liveness.since_ms = now
            self._emit(MemberJoined(node_id, gen, address, peer.restarted))
            self._hear_status(peer, now)
            for key, entry in sorted(state.entries.items(), key=lambda kv: kv[1].version):
                if not key.startswith(RESERVED_KEY_PREFIX) and entry.visible_at(self._now_ms):
                    self._events.append(
                        TagUpdated(node_id, key, entry.value, entry.version, entry.expiry_unix_ms)
                    )
            return
        for key, entry, old in changed:
            if key == KEY_HEARTBEAT:
                if old is None or entry.value > old.value:
                    self._on_heartbeat(peer, now)
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

    def _on_heartbeat(self, peer: MemberRecord, now: int) -> None:
        det = peer.liveness.detector
        det.heartbeat(now, learn_interval=not self._guard.spans_pause(det.last_heartbeat_ms))
        if self._hear(peer, News.HEARTBEAT, now):
            self._hear_status(peer, now)  # back from suspect or failed: apply its status again

    def _hear_status(self, peer: MemberRecord, now: int) -> None:
        news = peer.state.status.news
        if news is not None:
            self._hear(peer, news, now)

    def _hear(self, peer: MemberRecord, news: News, now: int, phi: float = 0.0) -> bool:
        """Apply liveness news to a peer; queue the event of the state it moved to, if any."""
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
        elif new is MemberState.LEAVING:
            event = MemberLeaving(node_id, gen)
        else:
            event = MemberLeft(node_id, gen)
        self._emit(event)
        return True

    def _emit(self, event: MembershipEvent) -> None:
        """Queue ``event`` for the driver, keeping the live-peer set in step with it."""
        self.live.on_event(event, self._source, self._now_ms)
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
