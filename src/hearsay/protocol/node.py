"""The gossip node: a sans-IO core that replicates a keyspace by rumours and anti-entropy.

Why this module exists: this is where the seeds' behaviour (vignette's push-on-change and pull
of unknown keys, scuttlebutt's reconciliation and flow control) is done right, once, for every
driver. Like aioquic's ``QuicConnection`` and h11's ``Connection`` the node performs no I/O:

- the driver passes what arrived: :meth:`GossipNode.receive_datagram` (and
  :meth:`receive_stream` for messages that came over a stream), and the time:
  :meth:`handle_timer` once ``now_ms`` reaches :meth:`get_timer`;
- the database passes local writes: :meth:`local_delta` (and :meth:`join`, :meth:`leave`);
- the driver drains what to do: :meth:`datagrams_to_send` and :meth:`next_event`
  (:mod:`hearsay.protocol.events`, including :class:`StreamRequest` for large messages).

Time is ``now_ms`` (the runtime passes unix milliseconds), randomness an injected
``random.Random``; peers are kept in a list whose order depends only on the call sequence, so a
seed reproduces a run exactly.

How keys replicate (see docs/design.md and :mod:`hearsay.protocol.messages` for the wire):

1. **Rumours.** A local write is pushed, when the driver drains the node, to ``origin_fanout``
   peers chosen uniformly at random (never self; ``fanout`` when pacing is short of tokens).
   A receiver merges each item; what *grew* is forwarded to ``fanout`` peers (never self or
   the sender), so a rumour dies out by itself once everyone has it. If the
   receiver holds more at indices the sender mentioned, it replies with them; if the key was
   unknown and the message did not carry the sender's full state, it pulls the key (an
   EXCHANGE with its own state) from ``pull_fanout`` peers: the sender and random others.
   Items larger than a datagram are split (:func:`hearsay.lattice.codec.split_entry`); each
   chunk merges on its own.
2. **The rumour's tail.** Pure push misses about ``e**-fanout`` of the nodes. So every key that
   changed here stays *recent* for ``recent_rounds`` gossip rounds; each round the node sends
   one DIGEST ``(key, content hash)`` of its recent keys to ``digest_fanout`` random peers,
   which answer with an EXCHANGE for the keys whose hash differs (their own state, or
   nothing) and get back exactly what they lack. A node that learned from a digest that it
   lacks a key pulls it again from random peers for ``pull_retries`` rounds until a reply
   brings it. Cost: one datagram per node per round while something is recent, shared by
   every key changed in that window; nothing when idle.
3. **Anti-entropy**, every ``anti_entropy_interval_ms`` with one random peer, repairs whatever
   the rumours missed, whatever the loss pattern: group hashes of the keyspace's buckets
   (AE_GROUPS, ~0.5 KB) -> the bucket hashes of differing groups (AE_BUCKETS; an empty one
   means "in sync") -> the per-key hashes of differing buckets (AE_KEYS) -> EXCHANGE / PUSH of
   the differing keys only. Its cost follows the difference, not the keyspace. A responder
   that sees a difference also pushes its lately changed keys of those groups at once (the
   peer most likely lacks exactly these: two hops instead of four). While replicas differ, or
   a round got no answer, the next round starts after ``anti_entropy_retry_ms``; a peer seen
   failed that comes back is repaired at once. Any message that does not fit a datagram is
   handed to the driver as a :class:`StreamRequest` (TCP in the runtime).
4. **Acks for WAIT.** Rumours of a local write ask the first ``fanout`` receivers to ACK;
   :meth:`request_acks` asks more peers (sending them the key's current state) until enough
   hold it; :meth:`acks` says how many do.
5. **Flow control.** Rumours and digests spend tokens of a :class:`TokenBucket`; when it is
   empty, deltas wait per key (merging into each other) and leave as tokens come back; a peer's
   BACKOFF halves the rate (AIMD).
6. **Membership**: an optional :class:`~hearsay.protocol.membership.Membership` supplies the live
   peers and failure detection; its messages travel in the same envelope and its events come
   out of :meth:`next_event`. Without one, peers are managed with :meth:`add_peer` /
   :meth:`remove_peer`.
7. **vignette** peers speak raw msgpack (:mod:`hearsay.protocol.vignette`); they are answered
   in kind and kept as neighbours while their presence is fresh.

The node stores nothing on disk and knows nothing of sketches.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from hearsay.base.errors import DecodeError, HearsayError, SketchParameterError, TooLargeError
from hearsay.lattice.codec import split_entry
from hearsay.lattice.digest import entry_hash
from hearsay.lattice.entry import NO_EXPIRY, SHARED_ORIGIN, Entry, MergeResult
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol import vignette
from hearsay.protocol.diff import exceeding
from hearsay.protocol.envelope import (
    DATAGRAM_BYTES_MAX,
    EnvelopeCodec,
    EnvelopeError,
    Keyring,
    MessageType,
    is_envelope,
)
from hearsay.protocol.events import (
    DatagramDropped,
    KeyChanged,
    NodeEvent,
    StreamRequest,
    WriteAcked,
)
from hearsay.protocol.membership import (
    Address,
    MemberAlive,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    Membership,
    MembershipEvent,
    MemberState,
)
from hearsay.protocol.pacing import TokenBucket
from hearsay.protocol.presets import DEFAULT_PRESET, GossipPreset

if TYPE_CHECKING:
    import random

__all__ = ["STREAM_HELLO_BYTES_MAX", "GossipNode", "NodeConfig", "NodeStats"]

_AE_ROUNDS_KEPT: Final = 32
_HASH_CACHE_MAX: Final = 1 << 16
_NEVER: Final = 1 << 62
_USABLE_STATES: Final = frozenset({MemberState.ALIVE, MemberState.SUSPECT, MemberState.LEAVING})
STREAM_HELLO_BYTES_MAX: Final = 512
"""A sealed STREAM_HELLO is under 100 bytes; the driver reads at most this much of it."""
STREAM_STEP_ITEMS: Final = 1_024
"""Keys of one stream merged between two returns to the driver's event loop."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Data-gossip settings of one node (membership timing lives in the preset)."""

    fanout: int = 3
    origin_fanout: int = 32
    """Peers a *client's* write is pushed to first (relays use ``fanout``). Pure push with
    ``fanout`` misses about ``e**-fanout`` of the nodes, whose repair then waits for digest
    rounds. With at most ``origin_fanout`` peers the origin pushes to all of them in one hop
    and the receivers forward it to ``covered_relay_fanout`` peers only; in a larger cluster
    the rumour starts ``origin_fanout`` wide. This costs the origin up to ``origin_fanout``
    datagrams per write, and only when pacing has the tokens for it: otherwise the write
    leaves at ``fanout``."""
    covered_relay_fanout: int = 1
    """Forwarding fanout of a write its origin pushed to every peer it knows: only what loss
    or a membership view lagging behind made the origin miss is left to cover."""
    cover_retry_ms: int = 50
    """When the origin pushed a write to every peer, it pushes it again to those that have not
    acknowledged it after this long (a lost datagram costs one retry, not digest rounds)."""
    cover_retries: int = 2
    gossip_interval_ms: int = 200
    anti_entropy_interval_ms: int = 2_000
    udp_payload_bytes_max: int = 1400
    recent_rounds: int = 5
    """Gossip rounds a changed key is offered in DIGESTs (the rumour's tail)."""
    digest_delay_rounds: int = 0
    """Rounds a changed key waits before its first DIGEST (measured: waiting costs tail
    latency and saves little, because late-informed nodes' digests matter most)."""
    digest_fanout: int = 1
    pull_fanout: int = 2
    pull_retries: int = 2
    """Rounds a key a DIGEST showed missing is pulled again (from a random peer) until a
    reply brings it: under heavy loss, the tail is closed by the node that lacks the data."""
    ae_groups: int = 64
    stream_bytes_max: int = 64 * 1024 * 1024
    pacing_rate_per_s: float = 5_000.0
    """Rumour and digest datagrams per second, sustained."""
    pacing_burst: int = 1_000
    overload_datagrams_per_s: int = 50_000
    """Above this many received datagrams in one second the node asks senders to back off."""
    backoff_pause_ms: int = 1_000
    write_track_max: int = 4_096
    ack_retry_ms: int = 1_000
    vignette_ttl: int = vignette.TTL_DEFAULT
    presence_interval_ms: int = 5_000
    presence_timeout_ms: int = 30_000
    presence_sample: int = 3
    search_results_max: int = 1_024
    vignette_searches_per_s: float = 10.0
    vignette_search_burst: int = 20
    """vignette ``%`` searches and ``*`` aggregates scan every key; beyond this rate (from
    anyone, unauthenticated) they are dropped as ``rate-limited``."""
    vignette_peers_max: int = 1_024
    """vignette peers remembered; each datagram from a new address made one, without bound."""
    membership_tick_ms: int = 250
    anti_entropy_retry_ms: int = 1_000
    """After a round that found differences, the next round starts this soon (not a period)."""
    changed_keys_ms: int = 30_000
    """How long a changed key is remembered for eager repair in anti-entropy."""
    changed_keys_max: int = 4_096
    ae_eager_bytes: int = 1_200
    """Bytes of lately changed entries pushed at once to a peer whose digest differs."""
    reconnect_repairs_max: int = 4
    """Anti-entropy rounds started at once when peers come back alive (per batch of events)."""
    member_confirm_ms: int = 10_000
    """A member learned from others is gossiped to once it answers us directly (a probe is sent
    at once), or after this long still alive (its datagrams may come from another address,
    behind NAT). Invented members at addresses nobody answers on fail before this."""

    def __post_init__(self) -> None:
        if (
            self.fanout < 1
            or self.origin_fanout < self.fanout
            or not 0 <= self.covered_relay_fanout <= self.fanout
            or self.gossip_interval_ms < 1
            or self.anti_entropy_interval_ms < 1
            or self.cover_retry_ms < 1
            or self.cover_retries < 0
        ):
            raise ValueError(
                "fanout and intervals must be positive, origin_fanout >= fanout >= "
                "covered_relay_fanout >= 0"
            )
        if self.udp_payload_bytes_max < 256:
            raise ValueError("udp_payload_bytes_max must be at least 256")
        if self.ae_groups < 1 or self.ae_groups & (self.ae_groups - 1):
            raise ValueError("ae_groups must be a power of two")

    @classmethod
    def from_preset(cls, preset: GossipPreset = DEFAULT_PRESET, **changes: Any) -> NodeConfig:
        base = cls(
            fanout=preset.data_fanout,
            gossip_interval_ms=preset.gossip_interval_ms,
            anti_entropy_interval_ms=preset.anti_entropy_interval_ms,
            udp_payload_bytes_max=preset.udp_payload_bytes_max,
            membership_tick_ms=max(1, preset.heartbeat_interval_ms // 2),
            cover_retry_ms=max(1, preset.gossip_interval_ms // 4),
        )
        return replace(base, **changes)


@dataclass(slots=True)
class NodeStats:
    """Counters for metrics (everything the node did, by kind)."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    streams_out: int = 0
    stream_bytes_out: int = 0
    streams_failed: int = 0
    streams_in: int = 0
    sent_by_type: dict[str, int] = field(default_factory=dict)
    sent_bytes_by_type: dict[str, int] = field(default_factory=dict)
    received_by_type: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    keys_changed: int = 0
    conflicts: int = 0
    pulls: int = 0
    ae_rounds: int = 0
    ae_in_sync: int = 0
    paced: int = 0
    backoffs_received: int = 0
    vignette_in: int = 0
    vignette_out: int = 0


_ACKED: Final = 0
"""A ``_Write.peers`` count: the peer acknowledged the write (a waiting peer counts >= 1)."""


@dataclass(slots=True)
class _Write:
    """Which peers hold one local write, for WAIT and the origin's cover retries.

    A node keeps ``write_track_max`` of these and most are never asked about (a lone node; no
    client using WAIT), so the peer table is one dict made by the first push that asks for an
    ack (measured: 64 bytes a record, where an eager empty set and dict made 344, 1.1 MB more
    per node once the table is full). A peer's count is the pushes it was sent that it has not
    acknowledged yet, or ``_ACKED``: an acked peer is never sent the write again (the first
    push leaves before any ack can return; retries skip acked peers), so it stays acked.
    """

    key: bytes
    wanted: int = 0
    acks: int = 0
    peers: dict[Address, int] | None = None

    def waiting(self) -> list[Address]:
        """The peers sent the write that have not acknowledged it, in the order sent."""
        if self.peers is None:
            return []
        return [peer for peer, left in self.peers.items() if left != _ACKED]

    def has_acked(self, peer: Address) -> bool:
        return self.peers is not None and self.peers.get(peer) == _ACKED

    def sent(self, peer: Address) -> None:
        """One more push carrying the write went to ``peer``, asking for an ack."""
        if self.peers is None:
            self.peers = {}
        left = self.peers.get(peer)
        if left != _ACKED:
            self.peers[peer] = (left or 0) + 1

    def resend(self, peer: Address) -> None:
        """``peer`` is about to be sent the write again: count only the new pushes."""
        if self.peers is not None and self.peers.get(peer, _ACKED) > _ACKED:
            del self.peers[peer]  # still waiting: its earlier pushes stop counting

    def ack(self, peer: Address) -> bool:
        """``peer`` acknowledged one push; True if it now holds the write for the first time.

        It holds it once every push it was last sent is acknowledged. An ack for an older
        push (sent before a :meth:`resend`) counts at once: the state it carried held the write.
        """
        if self.peers is None:
            self.peers = {}
        left = self.peers.get(peer)
        if left == _ACKED:
            return False
        if left is not None and left > 1:
            self.peers[peer] = left - 1
            return False
        self.peers[peer] = _ACKED
        self.acks += 1
        return True


@dataclass(slots=True)
class _Local:
    """Client writes to one key waiting for the next drain (see ``datagrams_to_send``)."""

    deltas: list[Entry]
    seq: int
    write: _Write


@dataclass(slots=True)
class _Pending:
    entry: Entry
    full: bool
    exclude: Address | None


_TYPE_NAMES: Final = {int(t): t.name for t in MessageType}


class GossipNode:
    """One node's gossip core. See the module docstring for the protocol."""

    def __init__(
        self,
        address: Address,
        *,
        rng: random.Random,
        keyspace: Keyspace | None = None,
        config: NodeConfig | None = None,
        cluster: str = "hearsay",
        keyring: Keyring | None = None,
        nonce_source: Callable[[int], bytes] | None = None,
        membership: Membership | None = None,
        peers: Iterable[Address] = (),
        vignette_enabled: bool = True,
        now_ms: int = 0,
    ) -> None:
        if rng is None:
            raise ValueError("an explicit random.Random is required")
        self.address: Address = (address[0], int(address[1]))
        self.config = config if config is not None else NodeConfig()
        self.keyspace = keyspace if keyspace is not None else Keyspace()
        self.membership = membership
        self.stats = NodeStats()
        self._rng = rng
        if nonce_source is None and keyring is not None:
            nonce_source = rng.randbytes
        self._codec = EnvelopeCodec(cluster, keyring, nonce_source=nonce_source)
        self._vignette_enabled = vignette_enabled
        self._now = now_ms
        self._out: list[tuple[bytes, Address]] = []
        self._events: deque[NodeEvent] = deque()
        self._peers: list[Address] = []
        self._peer_pos: dict[Address, int] = {}
        self._member_addr: dict[str, Address] = {}
        self._failed_members: dict[str, bool] = {}
        """Members seen failed or left: their return triggers an immediate repair."""
        self._confirmed: set[Address] = set()
        """Member addresses heard from directly (or joined explicitly): gossip goes to them."""
        self._unconfirmed: dict[Address, tuple[str, int]] = {}
        """Members learned from others, not heard directly yet: address -> (node, promote at)."""
        self._current_source: Address | None = None
        for peer in peers:
            self.add_peer(peer)
        self._recent: dict[bytes, int] = {}
        self._hash_cache: dict[bytes, tuple[int, int]] = {}
        self._wanted: dict[bytes, int] = {}
        """Keys a DIGEST showed we lack, with pull retries left (cleared by any reply)."""
        self._changed: OrderedDict[bytes, int] = OrderedDict()
        """Keys that changed here lately (oldest first), offered eagerly to a peer whose
        anti-entropy digest differs: it most likely lacks exactly these."""
        self._pending: dict[bytes, _Pending] = {}
        self._local: dict[bytes, _Local] = {}
        cfg = self.config
        self._bucket = TokenBucket(cfg.pacing_rate_per_s, float(cfg.pacing_burst))
        self._writes: OrderedDict[int, _Write] = OrderedDict()
        self._covering: OrderedDict[int, int] = OrderedDict()
        """Writes pushed to every peer: sequence number -> retries left for non-ackers."""
        self._ack_ids: OrderedDict[int, tuple[int, Address]] = OrderedDict()
        self._write_seq = 0
        self._ack_seq = 0
        self._stream_seq = 0
        self._ae_round = 0
        self._ae_peers: OrderedDict[int, Address] = OrderedDict()
        self._ae_started_ms = now_ms
        self._vignette_peers: dict[Address, int] = {}
        self._search_bucket = TokenBucket(
            cfg.vignette_searches_per_s, float(cfg.vignette_search_burst)
        )
        self._presence = False
        self._window_start_ms = now_ms
        self._window_count = 0
        self._backoff_sent: set[Address] = set()
        self._left = False
        # timers (absolute ms; _NEVER when idle)
        self._next_round_ms = _NEVER
        self._next_ae_ms = now_ms + self._rng.randrange(1, cfg.anti_entropy_interval_ms + 1)
        self._next_tick_ms = now_ms if membership is not None else _NEVER
        self._next_sync_ms = now_ms if membership is not None else _NEVER
        self._next_presence_ms = _NEVER
        self._next_ack_ms = _NEVER
        self._next_cover_ms = _NEVER
        self._payload_budget = cfg.udp_payload_bytes_max - self._codec.overhead_bytes()

    # == peers ==================================================================================

    @property
    def peers(self) -> list[Address]:
        """The peers gossip is sent to (live members, or the static list)."""
        return list(self._peers)

    def add_peer(self, peer: Address) -> None:
        """Add a peer to the static list (ignored for self and duplicates)."""
        peer = (peer[0], int(peer[1]))
        if peer == self.address or peer in self._peer_pos:
            return
        self._peer_pos[peer] = len(self._peers)
        self._peers.append(peer)

    def remove_peer(self, peer: Address) -> None:
        pos = self._peer_pos.pop(peer, None)
        if pos is None:
            return
        last = self._peers.pop()
        if pos < len(self._peers):
            self._peers[pos] = last
            self._peer_pos[last] = pos

    def _pick(self, count: int, exclude: Address | None = None) -> list[Address]:
        """Up to ``count`` distinct peers chosen uniformly at random, never ``exclude``."""
        peers = self._peers
        extra = 1 if exclude is not None and exclude in self._peer_pos else 0
        take = min(len(peers), count + extra)
        if take <= 0:
            return []
        chosen = self._rng.sample(peers, take)
        if extra:
            chosen = [p for p in chosen if p != exclude]
        return chosen[:count]

    # == the driver's interface ==================================================================

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Everything queued for sending, oldest first (the queue is emptied).

        Client writes (:meth:`local_delta`) are pushed here, when the driver drains: writes to
        one key that arrived since the last drain (a busy key under many clients) leave as one
        rumour instead of one each.
        """
        if self._local:
            self._flush_local()
        out = self._out
        self._out = []
        return out

    def has_output(self) -> bool:
        """Whether a drain (:meth:`datagrams_to_send`, :meth:`next_event`) would find anything.

        A lone node's client writes queue nothing, so its driver need not pump after them.
        """
        return bool(self._local or self._out or self._events)

    def next_event(self) -> NodeEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> int | None:
        """When :meth:`handle_timer` should next be called (None: nothing scheduled)."""
        when = min(
            self._next_round_ms,
            self._next_ae_ms,
            self._next_tick_ms,
            self._next_sync_ms,
            self._next_presence_ms,
            self._next_ack_ms,
            self._next_cover_ms,
        )
        return None if when >= _NEVER else when

    def handle_timer(self, now_ms: int) -> None:
        """Do whatever is due at ``now_ms``."""
        self._advance(now_ms)
        now = self._now
        if self.membership is not None and now >= self._next_tick_ms:
            self.membership.tick(now)
            self._next_tick_ms = now + self.config.membership_tick_ms
            self._drain_membership()
            if self._unconfirmed:
                self._promote_unconfirmed()
        if self.membership is not None and now >= self._next_sync_ms:
            self._membership_sync()
            self._next_sync_ms = now + self.membership.preset.membership_sync_interval_ms
        if now >= self._next_round_ms:
            self._gossip_round()
        if now >= self._next_ae_ms:
            # Provisionally soon: a lost message or a difference means "try again shortly";
            # the responder's "in sync" answer pushes the next round a full period away.
            self._ae_started_ms = now
            self._next_ae_ms = now + self.config.anti_entropy_interval_ms
            if not self._left and self._start_anti_entropy():
                self._next_ae_ms = now + self.config.anti_entropy_retry_ms
        if now >= self._next_presence_ms:
            self._presence_round()
        if now >= self._next_ack_ms:
            self._retry_acks()
        if now >= self._next_cover_ms:
            self._retry_cover()

    def receive_datagram(self, data: bytes, source: Address, now_ms: int) -> None:
        """Handle one datagram from ``source``. Bad input is dropped and counted, never raised."""
        self._advance(now_ms)
        self.stats.datagrams_in += 1
        self.stats.bytes_in += len(data)
        self._note_load(source)
        if len(data) > DATAGRAM_BYTES_MAX:
            self._drop(source, "oversize")
            return
        self._receive(data, source, DATAGRAM_BYTES_MAX)

    def receive_stream(self, data: bytes, source: Address, now_ms: int) -> None:
        """Handle one message that arrived over a stream (see :class:`StreamRequest`)."""
        for _ in self.receive_stream_steps(data, source, now_ms):
            pass

    def receive_stream_steps(self, data: bytes, source: Address, now_ms: int) -> Iterator[None]:
        """:meth:`receive_stream` in steps of at most ``STREAM_STEP_ITEMS`` keys.

        A stream may carry tens of thousands of keys; merging them in one go held the
        driver's event loop for seconds. The driver drains the node and lets other work run
        at every ``yield``. Merging part of a message first is safe: every item is a delta
        that merges on its own (a malformed item later stops the rest, as a whole malformed
        message did).
        """
        self._advance(now_ms)
        self.stats.streams_in += 1
        self.stats.bytes_in += len(data)
        if len(data) > self.config.stream_bytes_max:
            self._drop(source, "oversize")
            return
        opened = self._open(data, source, self.config.stream_bytes_max)
        if opened is None:
            return
        kind, payload = opened
        if kind not in (MessageType.PUSH, MessageType.EXCHANGE):
            self._dispatch_counted(kind, payload, source)
            return
        try:
            if kind == MessageType.PUSH:
                relay, ack_id, raw = msg.push_parts(payload)
            else:
                relay, ack_id, raw = False, 0, msg.exchange_parts(payload)
            for start in range(0, len(raw), STREAM_STEP_ITEMS):
                if start:
                    yield
                batch = raw[start : start + STREAM_STEP_ITEMS]
                if kind == MessageType.PUSH:
                    self._on_push([msg.decode_push_item(i) for i in batch], source, relay)
                else:
                    self._on_exchange([msg.decode_exchange_item(i) for i in batch], source)
        except DecodeError:
            self._drop(source, "malformed")
            return
        except (HearsayError, ValueError, OverflowError):
            self._drop(source, "invalid")
            return
        if ack_id:
            self._send(MessageType.ACK, msg.packb([ack_id]), [source])

    def open_stream_hello(
        self, data: bytes, source: Address, now_ms: int
    ) -> tuple[int, int] | None:
        """``(sender port, body bytes)`` of a stream's opening message, or None (dropped and
        counted) if it is not an authentic, fresh ``STREAM_HELLO`` announcing a body of at most
        ``stream_bytes_max``. The driver calls this before it reads the body."""
        self._advance(now_ms)
        try:
            kind, payload = self._codec.open(data, STREAM_HELLO_BYTES_MAX, self._now)
            if kind != MessageType.STREAM_HELLO:
                raise DecodeError("not a stream hello")
            port, length = msg.decode_stream_hello(payload)
        except EnvelopeError as error:
            self._drop(source, error.reason)
            return None
        except DecodeError:
            self._drop(source, "malformed")
            return None
        if length > self.config.stream_bytes_max:
            self._drop(source, "oversize")
            return None
        return port, length

    def rumours_waiting(self) -> int:
        """Keys whose rumour waits for pacing tokens (0 once everything went out)."""
        return len(self._pending)

    def stream_failed(self, stream_id: int) -> None:
        """The driver could not deliver a stream; anti-entropy will try again later."""
        self.stats.streams_failed += 1

    # == the database's interface ================================================================

    def join(
        self,
        seeds: Sequence[Address],
        now_ms: int,
        *,
        vignette_seeds: Sequence[Address] = (),
    ) -> None:
        """Contact ``seeds`` (hearsay nodes) and ``vignette_seeds`` (raw vignette peers).

        With membership, seeds are handed to it and a sync starts at once. vignette seeds get
        our presence (full) and an ``n:%`` search, to learn the neighbours they know.
        """
        self._advance(now_ms)
        self._left = False
        for seed in seeds:
            if self.membership is not None:
                self.membership.add_seed(seed)
                self._confirmed.add((seed[0], int(seed[1])))
            else:
                self.add_peer(seed)
        if self.membership is not None:
            self._next_sync_ms = self._now
        if vignette_seeds and self._vignette_enabled:
            self._presence = True
            own = self._own_presence()
            for seed in vignette_seeds:
                if seed == self.address:
                    continue
                self._note_vignette_peer(seed, self._now)
                self._send_raw(own, seed)
                self._send_raw(vignette.encode_read(vignette.PRESENCE_SEARCH), seed)
            self._next_presence_ms = self._now + self.config.presence_interval_ms

    def leave(self, now_ms: int) -> None:
        """Announce a graceful leave (membership) and stop starting anti-entropy rounds."""
        self._advance(now_ms)
        self._left = True
        if self.membership is not None:
            self.membership.leave(self._now)
            self._membership_sync()

    def local_delta(self, key: bytes, delta: Entry, now_ms: int) -> int:
        """A client wrote ``delta`` to ``key`` (already merged into the keyspace): spread it.

        Returns the write's sequence number for :meth:`acks` / :meth:`request_acks`.
        """
        self._advance(now_ms)
        self._write_seq += 1
        seq = self._write_seq
        if not self._peers:
            # A lone node: no rumour (nobody would receive it) and no recent-key entry (no
            # digest has anyone to go to). A peer that appears later gets the key by
            # anti-entropy, which also pushes the lately changed keys at once; the write's
            # record stays, so a WAIT can still ask peers that join while it waits.
            self._note_changed(key)
            self._writes[seq] = _Write(key)
            if len(self._writes) > self.config.write_track_max:
                self._writes.popitem(last=False)
            return seq
        queued = self._local.get(key)
        if queued is None:
            queued = self._local[key] = _Local([delta], seq, _Write(key))
        else:
            # Another write to the same key before the driver drained us: one push carries
            # both, and both writes share one ack record (acking the later state acks both).
            queued.deltas.append(delta)
            queued.seq = seq
        self._writes[seq] = queued.write
        while len(self._writes) > self.config.write_track_max:
            self._writes.popitem(last=False)
        self._mark_recent(key)
        return seq

    def _flush_local(self) -> None:
        """Push the client writes queued since the last drain: one rumour per key."""
        local, self._local = self._local, {}
        for key, queued in local.items():
            delta = _combined(queued.deltas)
            held = self.keyspace.entry(key)
            full = held is not None and _is_whole(delta, held)
            self._rumour(key, delta, full, None, ack_write=queued.seq)

    def acks(self, seq: int) -> int:
        """How many peers acknowledged holding local write ``seq`` (0 if unknown or forgotten)."""
        write = self._writes.get(seq)
        return 0 if write is None else write.acks

    def request_acks(self, seq: int, count: int, now_ms: int) -> int:
        """Make sure ``count`` peers hold write ``seq``: ask more peers, retry until they ack.

        Sends the key's current state (which contains the write: the lattice only grows) to
        peers that have not acknowledged yet. Returns the acks held now.
        """
        self._advance(now_ms)
        write = self._writes.get(seq)
        if write is None:
            return 0
        write.wanted = max(write.wanted, count)
        self._ask_acks(seq, write)
        return write.acks

    # == internals: time, sending, events ========================================================

    def _advance(self, now_ms: int) -> None:
        self._now = max(self._now, now_ms)

    def _emit(self, event: NodeEvent) -> None:
        self._events.append(event)

    def _drop(self, source: Address, reason: str) -> None:
        dropped = self.stats.dropped
        dropped[reason] = dropped.get(reason, 0) + 1
        self._emit(DatagramDropped(source, reason))

    def _count_sent(self, kind: MessageType, copies: int, size: int) -> None:
        by = self.stats.sent_by_type
        by[kind.name] = by.get(kind.name, 0) + copies
        by_bytes = self.stats.sent_bytes_by_type
        by_bytes[kind.name] = by_bytes.get(kind.name, 0) + copies * size

    def _send(self, kind: MessageType, payload: bytes, peers: Sequence[Address]) -> None:
        """Seal ``payload`` and queue it for ``peers`` (a stream request if it is too big)."""
        if not peers:
            return
        codec = self._codec
        limit = self.config.udp_payload_bytes_max
        sealed = codec.seal(kind, payload, self._now)
        self._count_sent(kind, len(peers), len(sealed))
        for i, peer in enumerate(peers):
            if i and codec.encrypting:
                sealed = codec.seal(kind, payload, self._now)
            if len(sealed) <= limit:
                self._out.append((sealed, peer))
                self.stats.datagrams_out += 1
                self.stats.bytes_out += len(sealed)
            else:
                self._stream_seq += 1
                self.stats.streams_out += 1
                self.stats.stream_bytes_out += len(sealed)
                hello = codec.seal(
                    MessageType.STREAM_HELLO, msg.packb([self.address[1], len(sealed)]), self._now
                )
                self._emit(StreamRequest(self._stream_seq, peer, sealed, hello))

    def _send_raw(self, data: bytes, peer: Address) -> None:
        self._out.append((data, peer))
        self.stats.datagrams_out += 1
        self.stats.bytes_out += len(data)
        self.stats.vignette_out += 1

    def _pack(self, prefix: bytes, items: list[bytes], suffix: bytes = b"") -> list[bytes]:
        """Payloads of ``prefix + array(items) + suffix``, each within a datagram's budget.

        An item too large for a datagram travels alone (and so goes over a stream).
        """
        room = self._payload_budget - len(prefix) - len(suffix) - 3
        payloads: list[bytes] = []
        batch: list[bytes] = []
        used = 0
        for item in items:
            if batch and used + len(item) > room:
                payloads.append(msg.join_items(prefix, batch, suffix))
                batch, used = [], 0
            batch.append(item)
            used += len(item)
        if batch:
            payloads.append(msg.join_items(prefix, batch, suffix))
        return payloads

    def _push_items(self, key: bytes, entry: Entry, full: bool) -> list[bytes]:
        """PUSH items carrying ``entry``, split so that each fits one datagram."""
        item = msg.push_item(key, entry, full)
        room = self._payload_budget - 16
        if len(item) <= room:
            return [item]
        chunk_budget = room - len(key) - 16
        return [msg.push_item(key, chunk, full) for chunk in split_entry(entry, chunk_budget)]

    def _send_push(
        self,
        items: list[bytes],
        peers: Sequence[Address],
        *,
        relay: bool | int,
        ack_write: int = 0,
    ) -> None:
        if not peers or not items:
            return
        if not ack_write:
            for payload in self._pack(msg.push_prefix(relay, 0), items):
                self._send(MessageType.PUSH, payload, peers)
            return
        write = self._writes.get(ack_write)
        for peer in peers:
            for batch in self._pack(b"", items):
                self._ack_seq += 1
                ack_id = self._ack_seq
                self._ack_ids[ack_id] = (ack_write, peer)
                if write is not None:
                    write.sent(peer)
                payload = msg.push_prefix(relay, ack_id) + batch
                self._send(MessageType.PUSH, payload, [peer])
        while len(self._ack_ids) > 4 * self.config.write_track_max:
            self._ack_ids.popitem(last=False)

    # == rumours ==================================================================================

    def _key_hash(self, key: bytes, entry: Entry) -> int:
        """The content hash of ``key``, cached while its bucket's hash stays the same.

        A bucket's hash is the XOR of its keys' hashes, so while it is unchanged none of its
        keys changed (but with probability 2**-64, the bet anti-entropy already makes). This
        holds however the keyspace changed (our merges, the engine's writes and expiries).
        """
        bucket_hash = self.keyspace.bucket_hash(self.keyspace.bucket_of(key))
        cached = self._hash_cache.get(key)
        if cached is not None and cached[0] == bucket_hash:
            return cached[1]
        content = entry_hash(key, entry)
        if len(self._hash_cache) >= _HASH_CACHE_MAX:
            self._hash_cache.clear()
        self._hash_cache[key] = (bucket_hash, content)
        return content

    def _arm_round(self) -> None:
        if self._next_round_ms >= _NEVER:
            self._next_round_ms = self._now + self.config.gossip_interval_ms

    def _note_changed(self, key: bytes) -> None:
        """Remember ``key`` as lately changed here (bounded; for anti-entropy's eager push)."""
        changed = self._changed
        changed.pop(key, None)
        changed[key] = self._now
        if len(changed) > self.config.changed_keys_max:
            changed.popitem(last=False)

    def _mark_recent(self, key: bytes) -> None:
        """Lately changed, and offered in digests for the next rounds while there are peers
        to offer it to (without any, the table would only grow: nothing drains it)."""
        self._note_changed(key)
        if self.config.recent_rounds <= 0 or not self._peers:
            return
        self._recent[key] = self.config.recent_rounds + self.config.digest_delay_rounds
        self._arm_round()

    def _retry_pulls(self) -> None:
        """Keys a digest showed we lack and no reply brought yet: ask another random peer."""
        items: list[bytes] = []
        for key in list(self._wanted):
            left = self._wanted.pop(key) - 1
            if left > 0:
                self._wanted[key] = left
            items.append(msg.exchange_item(key, self.keyspace.entry(key)))
        peers = self._pick(1)
        if items and peers:
            self.stats.pulls += 1
            for payload in self._pack(b"", items):
                self._send(MessageType.EXCHANGE, payload, peers)

    def _rumour(
        self,
        key: bytes,
        delta: Entry,
        full: bool,
        exclude: Address | None,
        *,
        ack_write: int = 0,
        fanout: int = 0,
    ) -> None:
        """Push ``delta`` to random peers now (``origin_fanout`` of them for a client's write
        when pacing allows, else ``fanout``), or queue it if pacing says wait."""
        cfg = self.config
        fanout = fanout or cfg.fanout
        items = self._push_items(key, delta, full)
        if key not in self._pending:
            # A client's write (it asks for acks) starts wide; relays use `fanout`.
            for width in (cfg.origin_fanout, fanout) if ack_write else (fanout,):
                peers = self._pick(width, exclude)
                if not peers:
                    return
                if self._bucket.take(self._now, len(items) * len(peers)):
                    covered = exclude is None and len(peers) == len(self._peers)
                    relay: bool | int = cfg.covered_relay_fanout if covered else True
                    self._send_push(items, peers, relay=relay, ack_write=ack_write)
                    if covered and ack_write and cfg.cover_retries:
                        self._cover(ack_write, cfg.cover_retries)
                    return
        elif not self._peers:
            return
        self.stats.paced += 1
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(delta.copy(), full, exclude)
        else:
            pending.entry.merge(delta)
            pending.full = pending.full and full
        if self._next_round_ms >= _NEVER:
            self._next_round_ms = self._now + self.config.gossip_interval_ms

    def _flush_pending(self) -> None:
        cfg = self.config
        for key in list(self._pending):
            pending = self._pending[key]
            items = self._push_items(key, pending.entry, pending.full)
            peers = self._pick(cfg.fanout, pending.exclude)
            if peers and not self._bucket.take(self._now, len(items) * len(peers)):
                return
            del self._pending[key]
            self._send_push(items, peers, relay=True)

    def _gossip_round(self) -> None:
        """Flush paced rumours and offer the recent keys' digest to a random peer."""
        cfg = self.config
        self._flush_pending()
        if not self._peers:
            # Every peer is gone: nobody to offer the recent keys to. A peer that comes back
            # is repaired by anti-entropy at once, so they are dropped, not kept unbounded.
            self._recent.clear()
        elif self._recent:
            limit = cfg.recent_rounds
            recent = self._recent
            ready: list[bytes] = []
            for key, left in list(recent.items()):
                if left > limit:
                    recent[key] = left - 1  # the push phase is still running: wait
                else:
                    ready.append(key)
            items: list[bytes] = []
            used = 0
            room = self._payload_budget - 8
            offered: list[bytes] = []
            for key in ready:
                entry = self.keyspace.entry(key)
                if entry is None:
                    offered.append(key)
                    continue
                item = msg.hash_item(key, self._key_hash(key, entry))
                if used + len(item) > room:
                    break
                items.append(item)
                used += len(item)
                offered.append(key)
            peers = self._pick(cfg.digest_fanout)
            if items and peers and self._bucket.take(self._now, len(peers)):
                self._send(MessageType.DIGEST, msg.join_items(b"", items), peers)
            if peers:
                for key in offered:
                    left = recent.pop(key) - 1
                    if left > 0:
                        recent[key] = left
        if self._wanted:
            self._retry_pulls()
        busy = bool(self._recent or self._pending or self._wanted)
        self._next_round_ms = self._now + cfg.gossip_interval_ms if busy else _NEVER

    # == receiving ================================================================================

    def _receive(self, data: bytes, source: Address, bytes_max: int) -> None:
        opened = self._open(data, source, bytes_max)
        if opened is not None:
            self._current_source = source
            try:
                self._dispatch_counted(*opened, source)
            finally:
                self._current_source = None

    def _open(self, data: bytes, source: Address, bytes_max: int) -> tuple[int, bytes] | None:
        """``(type, payload)`` of an envelope; vignette and bad input are handled here."""
        if source == self.address:
            self._drop(source, "from-self")
            return None
        if not is_envelope(data):
            first = data[0] if data else -1
            looks_vignette = 0x80 <= first <= 0x8F or first in (0xDE, 0xDF)
            if looks_vignette and self._codec.requires_auth:
                self._drop(source, "unauthenticated")  # vignette speaks only plaintext
            elif looks_vignette and self._vignette_enabled:
                self._on_vignette(data, source)
            else:
                self._drop(source, "malformed")
            return None
        try:
            kind, payload = self._codec.open(data, bytes_max, self._now)
        except EnvelopeError as error:
            self._drop(source, error.reason)
            return None
        by = self.stats.received_by_type
        name = _TYPE_NAMES[kind]
        by[name] = by.get(name, 0) + 1
        if source in self._unconfirmed:
            self._confirm(source)  # it answers on the address it claims
        return kind, payload

    def _dispatch_counted(self, kind: int, payload: bytes, source: Address) -> None:
        """Dispatch; a bad payload is dropped and counted, never raised."""
        try:
            self._dispatch(kind, payload, source)
        except DecodeError:
            self._drop(source, "malformed")
        except (HearsayError, ValueError, OverflowError):
            self._drop(source, "invalid")

    def _dispatch(self, kind: int, payload: bytes, source: Address) -> None:
        if kind == MessageType.PUSH:
            relay, ack_id, items = msg.decode_push(payload)
            self._on_push(items, source, relay)
            if ack_id:
                self._send(MessageType.ACK, msg.packb([ack_id]), [source])
        elif kind == MessageType.EXCHANGE:
            self._on_exchange(msg.decode_exchange(payload), source)
        elif kind == MessageType.ACK:
            self._on_ack(msg.decode_ack(payload), source)
        elif kind == MessageType.DIGEST:
            self._on_digest(msg.decode_digest(payload), source)
        elif kind == MessageType.AE_GROUPS:
            self._on_ae_groups(payload, source)
        elif kind == MessageType.AE_BUCKETS:
            self._on_ae_buckets(payload, source)
        elif kind == MessageType.AE_KEYS:
            self._on_ae_keys(payload, source)
        elif kind == MessageType.BACKOFF:
            msg.decode_backoff(payload)
            if source not in self._peer_pos:
                # Only a live member (and, with a keyring, an authenticated one) may slow us:
                # a stranger's BACKOFF every 0.2 s halved replication speed.
                self._drop(source, "not-a-peer")
                return
            self.stats.backoffs_received += 1
            self._bucket.backoff(self._now)
        elif kind == MessageType.MEMBERSHIP:
            self._on_membership(payload, source)
        else:  # STREAM_HELLO only opens a stream (open_stream_hello), never travels alone
            self._drop(source, "unexpected")

    def _merge(self, key: bytes, delta: Entry, source: Address) -> MergeResult:
        try:
            result = self.keyspace.merge(key, delta)
        except (TooLargeError, SketchParameterError):
            # Over this node's per-key cap or an out-of-bounds sketch shape: refuse this one
            # delta (counted), keep the rest of the message.
            self._drop(source, "too-large")
            return MergeResult(None)
        if result.delta is not None:
            self.stats.keys_changed += 1
            if result.conflict:
                self.stats.conflicts += 1
            self._emit(KeyChanged(key, result.delta, source, result.conflict))
        return result

    def _on_push(
        self, items: list[tuple[bytes, Entry, bool]], source: Address, relay: bool | int
    ) -> None:
        """Merge a PUSH; forward what grew (unless it is a reply), answer with what we hold
        beyond it, pull keys we lack."""
        fanout = self.config.fanout if relay is True else min(int(relay), self.config.fanout)
        replies: list[bytes] = []
        for key, delta, full in items:
            before = self.keyspace.entry(key)
            known = before is not None and not (before.is_tombstone() and before.epoch == 0)
            result = self._merge(key, delta, source)
            grown = result.delta
            if grown is not None:
                self._mark_recent(key)
            if relay is False:
                self._wanted.pop(key, None)
                continue
            held = self.keyspace.entry(key)
            if grown is not None:
                whole = (not known and full) or (held is not None and _is_whole(grown, held))
                if fanout:
                    self._rumour(key, grown, whole, source, fanout=fanout)
                if self._vignette_peers and held is not None:
                    self._forward_to_vignette(key, grown, whole, vignette.TTL_DEFAULT, source)
            if known:
                more = exceeding(held, delta, mentioned_only=True)
                if more is not None:
                    replies.extend(self._push_items(key, more, False))
            elif not full:
                self._pull(key, source)
        if replies:
            self._send_push(replies, [source], relay=False)

    def _pull(self, key: bytes, source: Address | None) -> None:
        """Ask the sender and random others for the full state of ``key``."""
        self.stats.pulls += 1
        targets = [] if source is None else [source]
        for peer in self._pick(self.config.pull_fanout, source):
            if len(targets) >= self.config.pull_fanout:
                break
            targets.append(peer)
        if targets:
            item = msg.exchange_item(key, self.keyspace.entry(key))
            self._send(MessageType.EXCHANGE, msg.join_items(b"", [item]), targets)

    def _on_exchange(self, items: list[tuple[bytes, Entry | None]], source: Address) -> None:
        replies: list[bytes] = []
        for key, theirs in items:
            if theirs is not None and self._merge(key, theirs, source).changed:
                self._mark_recent(key)
            more = exceeding(self.keyspace.entry(key), theirs)
            if more is not None:
                replies.extend(self._push_items(key, more, theirs is None))
        if replies:
            self._send_push(replies, [source], relay=False)

    def _on_digest(self, items: list[tuple[bytes, int]], source: Address) -> None:
        wanted: list[bytes] = []
        retries = self.config.pull_retries
        for key, content_hash in items:
            mine = self.keyspace.entry(key)
            if mine is None:
                wanted.append(msg.exchange_item(key, None))
            elif self._key_hash(key, mine) != content_hash:
                wanted.append(msg.exchange_item(key, mine))
            else:
                continue
            if retries > 0:
                self._wanted[key] = retries
        if self._wanted:
            self._arm_round()
        for payload in self._pack(b"", wanted):
            self._send(MessageType.EXCHANGE, payload, [source])

    def _on_ack(self, ack_ids: list[int], source: Address) -> None:
        for ack_id in ack_ids:
            found = self._ack_ids.get(ack_id)
            if found is None or found[1] != source:
                continue
            del self._ack_ids[ack_id]
            seq, peer = found
            write = self._writes.get(seq)
            if write is not None and write.ack(peer):
                self._emit(WriteAcked(seq, peer, write.acks))

    def _ask_acks(self, seq: int, write: _Write) -> None:
        need = write.wanted - write.acks
        if need <= 0:
            return
        entry = self.keyspace.entry(write.key)
        if entry is None:
            return
        targets = [p for p in write.waiting() if p in self._peer_pos][:need]
        if len(targets) < need:
            skip = set(targets)
            candidates = [p for p in self._peers if p not in skip and not write.has_acked(p)]
            fresh = need - len(targets)
            targets.extend(self._rng.sample(candidates, min(fresh, len(candidates))))
        for peer in targets:
            write.resend(peer)
        items = self._push_items(write.key, entry, True)
        self._send_push(items, targets, relay=False, ack_write=seq)
        self._next_ack_ms = min(self._next_ack_ms, self._now + self.config.ack_retry_ms)

    def _cover(self, seq: int, retries: int) -> None:
        self._covering.pop(seq, None)
        self._covering[seq] = retries
        while len(self._covering) > self.config.write_track_max:
            self._covering.popitem(last=False)
        self._next_cover_ms = min(self._next_cover_ms, self._now + self.config.cover_retry_ms)

    def _retry_cover(self) -> None:
        """Push the writes their origin sent to every peer again, to peers that have not
        acknowledged them yet (their current state: it contains the write)."""
        self._next_cover_ms = _NEVER
        covering, self._covering = self._covering, OrderedDict()
        for seq, retries in covering.items():
            write = self._writes.get(seq)
            entry = None if write is None else self.keyspace.entry(write.key)
            if write is None or entry is None:
                continue
            targets = [p for p in write.waiting() if p in self._peer_pos]
            if not targets:
                continue
            items = self._push_items(write.key, entry, True)
            if not self._bucket.take(self._now, len(items) * len(targets)):
                continue  # overloaded: digests and anti-entropy will cover them
            for peer in targets:
                write.resend(peer)
            self._send_push(items, targets, relay=0, ack_write=seq)
            if retries > 1:
                self._cover(seq, retries - 1)

    def _retry_acks(self) -> None:
        self._next_ack_ms = _NEVER
        asked: set[int] = set()
        for seq, write in list(reversed(self._writes.items())):
            # Coalesced writes share one record: ask once, under the latest sequence number.
            if write.wanted > write.acks and id(write) not in asked:
                asked.add(id(write))
                self._ask_acks(seq, write)

    # == anti-entropy =============================================================================

    def _group_hashes(self) -> tuple[np.ndarray[Any, np.dtype[np.uint64]], int]:
        hashes = self.keyspace.bucket_hashes()
        groups = min(self.config.ae_groups, hashes.size)
        grouped = np.bitwise_xor.reduce(hashes.reshape(groups, hashes.size // groups), axis=1)
        return grouped.astype("<u8"), groups

    def _ae_soon(self) -> None:
        """Differences exist: repair again soon (with a random peer), not a period later."""
        if not self._left:
            soon = self._now + self.config.anti_entropy_retry_ms
            self._next_ae_ms = min(self._next_ae_ms, soon)

    def _start_anti_entropy(self, peer: Address | None = None) -> bool:
        peers = self._pick(1) if peer is None else [peer]
        if not peers:
            return False
        self._ae_round += 1
        self.stats.ae_rounds += 1
        self._ae_peers[self._ae_round] = peers[0]
        while len(self._ae_peers) > _AE_ROUNDS_KEPT:
            self._ae_peers.popitem(last=False)
        grouped, _ = self._group_hashes()
        payload = msg.packb([self._ae_round, self.keyspace.bucket_count, grouped.tobytes()])
        self._send(MessageType.AE_GROUPS, payload, peers)
        return True

    def _on_ae_groups(self, payload: bytes, source: Address) -> None:
        grouped, groups = self._group_hashes()
        round_id, buckets, theirs = msg.decode_ae_groups(payload, groups)
        if buckets != self.keyspace.bucket_count or len(theirs) != 8 * groups:
            self._drop(source, "ae-shape")
            return
        differ = np.flatnonzero(np.frombuffer(theirs, "<u8") != grouped)
        if differ.size == 0:
            self.stats.ae_in_sync += 1
            self._send(MessageType.AE_BUCKETS, msg.packb([round_id, []]), [source])
            return
        self._ae_soon()
        self._eager_repair(differ.tolist(), groups, source)
        hashes = self.keyspace.bucket_hashes().astype("<u8")
        per = hashes.size // groups
        blocks = [
            msg.packb([int(g), hashes[int(g) * per : (int(g) + 1) * per].tobytes()]) for g in differ
        ]
        prefix = b"\x92" + msg.packb(round_id)
        for payload_out in self._pack(prefix, blocks):
            self._send(MessageType.AE_BUCKETS, payload_out, [source])

    def _eager_repair(self, differ: list[int], groups: int, source: Address) -> None:
        """Push our lately changed keys of the differing groups at once (one datagram).

        A peer behind us usually lacks the last few writes; sending them now repairs it in two
        hops instead of four (GROUPS -> BUCKETS -> KEYS -> PUSH), which is what closes the
        tail under heavy loss. The full exchange still follows for anything else.
        """
        cfg = self.config
        if not self._changed or cfg.ae_eager_bytes <= 0:
            return
        per = self.keyspace.bucket_count // groups
        wanted = set(differ)
        horizon = self._now - cfg.changed_keys_ms
        items: list[bytes] = []
        used = 0
        for key in reversed(self._changed):
            if self._changed[key] < horizon:
                break
            if self.keyspace.bucket_of(key) // per not in wanted:
                continue
            entry = self.keyspace.entry(key)
            if entry is None:
                continue
            item = msg.push_item(key, entry, True)
            if used + len(item) > cfg.ae_eager_bytes:
                break
            items.append(item)
            used += len(item)
        self._send_push(items, [source], relay=False)

    def _on_ae_buckets(self, payload: bytes, source: Address) -> None:
        _, groups = self._group_hashes()
        per = self.keyspace.bucket_count // groups
        round_id, items = msg.decode_ae_buckets(payload, groups, per)
        if self._ae_peers.get(round_id) != source:
            self._drop(source, "ae-unexpected")
            return
        if not items:  # in sync: the next round can wait a full period
            if round_id == self._ae_round:
                period_end = self._ae_started_ms + self.config.anti_entropy_interval_ms
                self._next_ae_ms = max(self._next_ae_ms, period_end)
            return
        self._ae_soon()
        hashes = self.keyspace.bucket_hashes().astype("<u8")
        differing: list[int] = []
        for group, theirs in items:
            mine = hashes[group * per : (group + 1) * per]
            for offset in np.flatnonzero(np.frombuffer(theirs, "<u8") != mine).tolist():
                differing.append(group * per + offset)
        blocks = [
            msg.packb(
                [
                    bucket,
                    [
                        [key, self._key_hash(key, entry)]
                        for key, entry in self.keyspace.bucket_items(bucket)
                    ],
                ]
            )
            for bucket in differing
        ]
        prefix = b"\x92" + msg.packb(round_id)
        for payload_out in self._pack(prefix, blocks):
            self._send(MessageType.AE_KEYS, payload_out, [source])

    def _on_ae_keys(self, payload: bytes, source: Address) -> None:
        _, blocks = msg.decode_ae_keys(payload, self.keyspace.bucket_count)
        pushes: list[bytes] = []
        exchanges: list[bytes] = []
        for bucket, items in blocks:
            theirs = dict(items)
            for key, entry in self.keyspace.bucket_items(bucket):
                their_hash = theirs.pop(key, None)
                if their_hash is None:
                    pushes.extend(self._push_items(key, entry, True))
                elif their_hash != self._key_hash(key, entry):
                    exchanges.append(msg.exchange_item(key, entry))
            for key in theirs:
                if self.keyspace.bucket_of(key) == bucket:
                    exchanges.append(msg.exchange_item(key, None))
        self._send_push(pushes, [source], relay=False)
        for payload_out in self._pack(b"", exchanges):
            self._send(MessageType.EXCHANGE, payload_out, [source])

    # == membership ===============================================================================

    def _membership_budget(self) -> int:
        return self._payload_budget - 8

    def _membership_sync(self) -> None:
        membership = self.membership
        assert membership is not None
        targets = membership.sync_targets()
        if targets:
            syn = membership.make_syn(self._membership_budget())
            self._send(MessageType.MEMBERSHIP, msg.packb(syn), targets)
        self._drain_membership()

    def _on_membership(self, payload: bytes, source: Address) -> None:
        if self.membership is None:
            self._drop(source, "no-membership")
            return
        reply = self.membership.handle(msg.unpack(payload), self._now, self._membership_budget())
        if reply is not None:
            self._send(MessageType.MEMBERSHIP, msg.packb(reply), [source])
        self._drain_membership()

    def _drain_membership(self) -> None:
        """Pass membership events on, keeping the live-peer list in step with them.

        The list is updated per event (O(1) each) rather than rebuilt from
        ``Membership.live_peers()``, which sorts every member.
        """
        membership = self.membership
        assert membership is not None
        reconnected: list[Address] = []
        while True:
            event: MembershipEvent | None = membership.next_event()
            if event is None:
                break
            if isinstance(event, MemberJoined):
                old = self._member_addr.get(event.node_id)
                if old is not None and old != event.address:
                    self.remove_peer(old)
                    self._unconfirmed.pop(old, None)
                self._member_addr[event.node_id] = event.address
                self._add_member_peer(event.node_id, event.address)
                if event.restarted or self._failed_members.pop(event.node_id, False):
                    reconnected.append(event.address)
            elif isinstance(event, MemberAlive):
                address = self._member_addr.get(event.node_id)
                if address is not None:
                    self._add_member_peer(event.node_id, address)
                    if self._failed_members.pop(event.node_id, False):
                        reconnected.append(address)
            elif isinstance(event, MemberFailed | MemberLeft):
                self._failed_members[event.node_id] = True
                address = self._member_addr.get(event.node_id)
                if address is not None:
                    self.remove_peer(address)
                    self._unconfirmed.pop(address, None)
            elif isinstance(event, MemberReaped):
                self._failed_members.pop(event.node_id, None)
                address = self._member_addr.pop(event.node_id, None)
                if address is not None:
                    self.remove_peer(address)
                    self._unconfirmed.pop(address, None)
                    self._confirmed.discard(address)
            self._emit(event)
        if not self._left:
            for address in reconnected[: self.config.reconnect_repairs_max]:
                # A peer came back (healed partition, restart, new node): repair with it now
                # rather than waiting for the next anti-entropy period.
                self._start_anti_entropy(address)

    def _add_member_peer(self, node_id: str, address: Address) -> None:
        """Gossip to a live member once it is confirmed; otherwise probe it directly.

        Why: without a keyring anyone can announce thousands of invented members, and every
        rumour sent to one of them is lost (5,000 of them slowed replication from 0 to ~3 s).
        A real member answers the probe within a round trip."""
        if address in self._confirmed or address == self._current_source:
            self._confirm(address)
            return
        if address in self._unconfirmed or self.membership is None:
            return
        self._unconfirmed[address] = (node_id, self._now + self.config.member_confirm_ms)
        syn = self.membership.make_syn(self._membership_budget())
        self._send(MessageType.MEMBERSHIP, msg.packb(syn), [address])

    def _confirm(self, address: Address) -> None:
        self._unconfirmed.pop(address, None)
        self._confirmed.add(address)
        self.add_peer(address)

    def _promote_unconfirmed(self) -> None:
        """Members still alive ``member_confirm_ms`` after we learned of them are used anyway
        (behind NAT their datagrams may come from another address than they announce)."""
        membership = self.membership
        if membership is None:
            return
        for address, (node_id, promote_ms) in list(self._unconfirmed.items()):
            if self._now < promote_ms:
                continue
            member = membership.member(node_id)
            if member is not None and member.state in _USABLE_STATES:
                self._confirm(address)
            else:
                del self._unconfirmed[address]

    # == load =====================================================================================

    def _note_load(self, source: Address) -> None:
        if self._now - self._window_start_ms >= 1000:
            self._window_start_ms = self._now
            self._window_count = 0
            self._backoff_sent.clear()
        self._window_count += 1
        if (
            self._window_count > self.config.overload_datagrams_per_s
            and source not in self._backoff_sent
            and len(self._backoff_sent) < 64
        ):
            self._backoff_sent.add(source)
            self._send(MessageType.BACKOFF, msg.packb([self.config.backoff_pause_ms]), [source])

    # == vignette =================================================================================

    def _own_presence(self) -> bytes:
        """Our presence datagram; the presence key is merged here first and, like every merge
        into the keyspace, reported as a :class:`KeyChanged` (so the engine persists it)."""
        host, port = self.address
        key = vignette.presence_key(host, port)
        vector = vignette.presence_vector(self._now)
        raw_key = key.encode()
        self._merge(raw_key, _raw_entry(self.keyspace.entry(raw_key), vector), self.address)
        return vignette.encode(key, vector, full=True, ttl=self.config.vignette_ttl)

    def _note_vignette_peer(self, peer: Address, seen_ms: int) -> None:
        """Remember a vignette peer as seen at ``seen_ms`` (a bounded table)."""
        peers = self._vignette_peers
        if peer not in peers and len(peers) >= self.config.vignette_peers_max:
            dropped = self.stats.dropped
            dropped["vignette-peers-full"] = dropped.get("vignette-peers-full", 0) + 1
            return
        peers[peer] = max(peers.get(peer, 0), seen_ms)

    def _fresh_vignette_peers(self) -> list[Address]:
        timeout = self.config.presence_timeout_ms
        for peer in [p for p, t in self._vignette_peers.items() if self._now - t > timeout]:
            del self._vignette_peers[peer]
            self.stats.dropped["vignette-silent"] = self.stats.dropped.get("vignette-silent", 0) + 1
        return list(self._vignette_peers)

    def _presence_round(self) -> None:
        self._next_presence_ms = self._now + self.config.presence_interval_ms
        neighbours = self._fresh_vignette_peers()
        if not self._presence or not neighbours:
            return
        own = self._own_presence()
        for peer in self._rng.sample(neighbours, min(self.config.presence_sample, len(neighbours))):
            self._send_raw(own, peer)

    def _send_vignette(
        self, key: str, vector: MaxVector, peer: Address, *, full: bool, ttl: int
    ) -> None:
        budget = self.config.udp_payload_bytes_max
        for datagram in vignette.encode_chunks(
            key, vector, full=full, ttl=ttl, budget_bytes=budget
        ):
            self._send_raw(datagram, peer)

    def _forward_to_vignette(
        self, key: bytes, grown: Entry, full: bool, ttl: int, source: Address | None
    ) -> None:
        if ttl <= 0 or grown.schema is not vignette.VECTOR_SCHEMA:
            return
        try:
            text = key.decode()
        except UnicodeDecodeError:
            return
        neighbours = [p for p in self._fresh_vignette_peers() if p != source]
        chosen = self._rng.sample(neighbours, min(self.config.fanout, len(neighbours)))
        for peer in chosen:
            self._send_vignette(text, grown.vector, peer, full=full, ttl=ttl)

    def _on_vignette(self, data: bytes, source: Address) -> None:
        self.stats.vignette_in += 1
        try:
            message = vignette.decode(data)
        except DecodeError:
            self._drop(source, "malformed-vignette")
            return
        self._note_vignette_peer(source, self._now)
        ttl = max(1, message.hops_left)
        if (message.is_aggregate or message.is_search) and not self._search_bucket.take(self._now):
            self._drop(source, "rate-limited")
            return
        if message.is_aggregate:
            self._vignette_aggregate(message, source, ttl)
        elif message.is_search:
            self._vignette_search(message, source, ttl)
        elif message.is_read:
            entry = self.keyspace.get(message.key.encode(), self._now)
            if entry is not None and not entry.additive and not entry.vector.is_empty():
                self._send_vignette(message.key, entry.vector, source, full=True, ttl=ttl)
        else:
            self._vignette_store(message, source)

    def _vignette_store(self, message: vignette.VignetteMessage, source: Address) -> None:
        key = message.key.encode()
        vector = message.vector
        presence = vignette.parse_presence_key(message.key)
        if presence is not None:
            stamp = vignette.presence_unix_ms(vector.get(0))
            vector = MaxVector.from_pairs([0], [stamp])
            if presence != self.address:
                self._note_vignette_peer(presence, min(stamp, self._now))
        before = self.keyspace.entry(key)
        if before is not None and before.schema not in (None, vignette.VECTOR_SCHEMA):
            self._drop(source, "wrong-type")
            return
        known = before is not None and before.schema is not None
        delta = _raw_entry(before, vector)
        result = self._merge(key, delta, source)
        full = bool(message.full)
        grown = result.delta
        held = self.keyspace.entry(key)
        if grown is not None and held is not None:
            whole = (not known and full) or _is_whole(grown, held)
            self._forward_to_vignette(key, grown, whole, message.hops_left - 1, source)
            if presence is None:
                self._mark_recent(key)
                self._rumour(key, grown, whole, None)
        if known and held is not None:
            more = exceeding(held, delta, mentioned_only=True)
            if more is not None and not more.is_empty():
                self._send_vignette(
                    message.key, more.vector, source, full=False, ttl=max(1, message.hops_left)
                )
        elif not known and not full:
            self._send_raw(vignette.encode_read(message.key, self.config.vignette_ttl), source)
            if presence is None:
                self._pull(key, None)  # and from hearsay peers (counts the pull)
            else:
                self.stats.pulls += 1

    def _matching(self, pattern_key: str) -> list[tuple[str, Entry]]:
        pattern = vignette.compile_pattern(pattern_key)
        found: list[tuple[str, Entry]] = []
        for key, entry in self.keyspace.items():
            if entry.schema is None or entry.additive:
                continue
            try:
                text = key.decode()
            except UnicodeDecodeError:
                continue
            if vignette.matches(pattern, text) and self.keyspace.get(key, self._now) is not None:
                found.append((text, entry))
                if len(found) >= self.config.search_results_max:
                    break
        return found

    def _vignette_search(
        self, message: vignette.VignetteMessage, source: Address, ttl: int
    ) -> None:
        for text, entry in self._matching(message.key):
            if message.is_read:
                self._send_vignette(text, entry.vector, source, full=True, ttl=ttl)
                continue
            query = _raw_entry(entry, message.vector)
            more = exceeding(entry, query, mentioned_only=True)
            if more is not None and not more.is_empty():
                self._send_vignette(text, more.vector, source, full=False, ttl=ttl)

    def _vignette_aggregate(
        self, message: vignette.VignetteMessage, source: Address, ttl: int
    ) -> None:
        total = MaxVector()
        for _, entry in self._matching(message.key):
            total.merge(entry.vector)
        if not message.is_read:
            mentioned = message.vector
            m_idx, m_val = mentioned.pairs()
            vals = np.array([total.get(int(i)) for i in m_idx.tolist()], dtype=np.uint64)
            keep = vals > m_val
            total = MaxVector.from_pairs(m_idx[keep], vals[keep])
        if not total.is_empty():
            self._send_vignette(message.key, total, source, full=message.is_read, ttl=ttl)


def _combined(deltas: list[Entry]) -> Entry:
    """The join of several deltas of one key; same epoch and schema (the common case: a burst
    of writes) cost one vector build per origin instead of one merge per delta."""
    first = deltas[0]
    if len(deltas) == 1:
        return first
    if any(d.epoch != first.epoch or d.schema != first.schema for d in deltas):
        out = first.copy()
        for delta in deltas[1:]:
            out.merge(delta)
        return out
    pairs: dict[str, tuple[list[Any], list[Any]]] = {}
    for delta in deltas:
        for origin, vector in delta.slices():
            indices, values = vector.pairs()
            both = pairs.setdefault(origin, ([], []))
            both[0].append(indices)
            both[1].append(values.astype(np.uint64))
    slices = {
        origin: MaxVector.from_pairs(np.concatenate(idx), np.concatenate(val))
        for origin, (idx, val) in pairs.items()
    }
    return Entry(first.epoch, first.schema, max(d.expiry for d in deltas), slices)


def _raw_entry(held: Entry | None, vector: MaxVector) -> Entry:
    """A vignette delta: the raw vector under the ``vector`` schema, at the key's epoch."""
    epoch = 0 if held is None else held.epoch
    return Entry(epoch, vignette.VECTOR_SCHEMA, NO_EXPIRY, {SHARED_ORIGIN: vector})


def _is_whole(delta: Entry, held: Entry) -> bool:
    """True when ``delta`` carries everything ``held`` holds (a full state)."""
    return (
        delta.epoch == held.epoch
        and delta.schema == held.schema
        and delta.expiry == held.expiry
        and delta.pair_count() == held.pair_count()
    )
