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
``random.Random``; peers are picked from a list whose order depends only on the call sequence
(membership's live-peer set, or without membership a static list the node owns), so a seed
reproduces a run exactly.

The node is a router: the work is done by the parts in :mod:`hearsay.protocol.gossip`, each
owning its state and its deadline (rumours, the tail, anti-entropy, acks, the vignette dialect,
the membership link; the outbox and the peer picks are shared by all). The node opens envelopes,
hands each message type to its part (one table), and :meth:`get_timer` is the earliest of the
parts' deadlines. The node stores nothing on disk and knows nothing of sketches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final

from hearsay.base.errors import DecodeError, HearsayError
from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import Keyspace
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import (
    DATAGRAM_BYTES_MAX,
    EnvelopeCodec,
    EnvelopeError,
    Keyring,
    MessageType,
    is_envelope,
)
from hearsay.protocol.events import NodeEvent
from hearsay.protocol.gossip.acks import Acks
from hearsay.protocol.gossip.anti_entropy import AntiEntropy
from hearsay.protocol.gossip.config import NodeConfig, NodeStats
from hearsay.protocol.gossip.membership_link import MembershipLink
from hearsay.protocol.gossip.outbox import Outbox
from hearsay.protocol.gossip.peers import Peers
from hearsay.protocol.gossip.rumours import STREAM_STEP_ITEMS, Rumours
from hearsay.protocol.gossip.shared import NEVER
from hearsay.protocol.gossip.tail import Tail
from hearsay.protocol.gossip.vignette_dialect import VignetteDialect
from hearsay.protocol.membership import Address, AddressSet, Membership

if TYPE_CHECKING:
    import random

__all__ = ["STREAM_HELLO_BYTES_MAX", "STREAM_STEP_ITEMS", "GossipNode", "NodeConfig", "NodeStats"]

STREAM_HELLO_BYTES_MAX: Final = 512
"""A sealed STREAM_HELLO is under 100 bytes; the driver reads at most this much of it."""

_TYPE_NAMES: Final = {int(t): t.name for t in MessageType}

Handler = Callable[[bytes, Address], None]


class GossipNode:
    """One node's gossip core: routes messages and timers to its parts (module docstring)."""

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
        self._drain_ms = 0
        """The earliest the next drain of client writes may push (see ``drain_interval_ms``)."""
        self.keyspace = keyspace if keyspace is not None else Keyspace()
        self.membership = membership
        self.stats = NodeStats()
        if nonce_source is None and keyring is not None:
            nonce_source = rng.randbytes
        codec = EnvelopeCodec(cluster, keyring, nonce_source=nonce_source)
        self._codec = codec
        self._vignette_enabled = vignette_enabled
        outbox = self._outbox = Outbox(
            self.address,
            config=self.config,
            stats=self.stats,
            codec=codec,
            keyspace=self.keyspace,
            now_ms=now_ms,
        )
        self._static_peers: AddressSet | None = None
        """Without membership: the peers the driver set (``peers``, :meth:`add_peer`)."""
        static = list(peers)
        if membership is None:
            self._static_peers = AddressSet(self.address)
            for peer in static:
                self._static_peers.add(peer)
        elif static:
            raise ValueError("static peers and membership exclude each other")
        live = membership.live.confirmed if membership is not None else self._static_peers
        assert live is not None
        self._peers = Peers(live, rng)
        self._tail = Tail(outbox, self._peers)
        self._acks = Acks(outbox, self._peers, rng)
        first_ae_ms = now_ms + rng.randrange(1, self.config.anti_entropy_interval_ms + 1)
        self._anti_entropy = AntiEntropy(outbox, self._peers, self._tail.changed, first_ae_ms)
        self._link = MembershipLink(membership, outbox, self._anti_entropy.repair)
        self._rumours = Rumours(
            outbox,
            self._peers,
            mark_recent=self._tail.mark_recent,
            got=self._tail.got,
            arm_round=self._tail.arm_round,
            push_asking=self._acks.push_asking_many,
            cover=self._acks.cover,
            remember=self._acks.remember,
            share=self._acks.share,
            forward_to_vignette=self._forward_to_vignette,
            vignette_listening=self._vignette_listening,
        )
        self._vignette = VignetteDialect(
            outbox,
            rng,
            mark_recent=self._tail.mark_recent,
            rumour=self._rumours.rumour,
            pull=self._rumours.pull,
        )
        self._handlers: dict[int, Handler] = {
            MessageType.PUSH: self._rumours.on_push_message,
            MessageType.EXCHANGE: self._rumours.on_exchange_message,
            MessageType.ACK: self._acks.on_ack,
            MessageType.DIGEST: self._tail.on_digest,
            MessageType.AE_GROUPS: self._anti_entropy.on_groups,
            MessageType.AE_BUCKETS: self._anti_entropy.on_buckets,
            MessageType.AE_KEYS: self._anti_entropy.on_keys,
            MessageType.BACKOFF: self._on_backoff,
            MessageType.MEMBERSHIP: self._link.on_message,
        }
        """Message type -> its part's handler (STREAM_HELLO only opens a stream)."""

    # == peers ==================================================================================

    @property
    def peers(self) -> list[Address]:
        """The peers gossip is sent to (live members, or the static list)."""
        return list(self._peers)

    def add_peer(self, peer: Address) -> None:
        """Add a peer to the static list (ignored for self and duplicates)."""
        self._static().add(peer)

    def remove_peer(self, peer: Address) -> None:
        self._static().remove(peer)

    def _static(self) -> AddressSet:
        if self._static_peers is None:
            raise ValueError("with membership, peers are membership's live members")
        return self._static_peers

    # == the driver's interface ==================================================================

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Everything queued for sending, oldest first (the queue is emptied).

        Client writes (:meth:`local_delta`) are pushed here, when the driver drains: writes to
        one key that arrived since the last drain (a busy key under many clients) leave as one
        rumour instead of one each; at most one drain per ``drain_interval_ms`` (the writes
        of a shorter interval wait for :meth:`get_timer`'s deadline).
        """
        if self._rumours.local and self._outbox.now >= self._drain_ms:
            self._drain()
        return self._outbox.take_datagrams()

    def _drain(self) -> None:
        """Push the client writes queued since the last drain; the next waits its interval."""
        self._rumours.flush_local()
        self._drain_ms = self._outbox.now + self.config.drain_interval_ms

    def has_output(self) -> bool:
        """Whether a drain (:meth:`datagrams_to_send`, :meth:`next_event`) would find anything.

        A lone node's client writes queue nothing, so its driver need not pump after them.
        """
        outbox = self._outbox
        return bool(self._rumours.local or outbox.datagrams or outbox.acks_due or outbox.events)

    def next_event(self) -> NodeEvent | None:
        events = self._outbox.events
        return events.popleft() if events else None

    def take_events(self) -> list[NodeEvent]:
        """Every event queued so far, oldest first (:meth:`next_event` until None, in one
        call: a receiver queues one per key it merges)."""
        events = self._outbox.events
        if not events:
            return []
        taken = list(events)
        events.clear()
        return taken

    def get_timer(self) -> int | None:
        """When :meth:`handle_timer` should next be called (None: nothing scheduled)."""
        when = min(
            self._link.deadline_ms,
            self._tail.round_ms,
            self._anti_entropy.round_ms,
            self._vignette.presence_ms,
            self._acks.deadline_ms,
            self._drain_ms if self._rumours.local else NEVER,
        )
        return None if when >= NEVER else when

    def handle_timer(self, now_ms: int) -> None:
        """Do whatever is due at ``now_ms``."""
        self._outbox.advance(now_ms)
        now = self._outbox.now
        self._link.handle_timer(now)
        if now >= self._tail.round_ms:
            # Paced rumours leave on the gossip round, before the tail's digest.
            self._rumours.flush_pending()
            self._tail.round(rumours_waiting=bool(self._rumours.pending))
        self._anti_entropy.handle_timer(now)
        self._vignette.handle_timer(now)
        self._acks.handle_timer(now)

    def receive_datagram(self, data: bytes, source: Address, now_ms: int) -> None:
        """Handle one datagram from ``source``. Bad input is dropped and counted, never raised."""
        outbox = self._outbox
        outbox.advance(now_ms)
        self.stats.datagrams_in += 1
        self.stats.bytes_in += len(data)
        outbox.note_load(source)
        if len(data) > DATAGRAM_BYTES_MAX:
            outbox.drop(source, "oversize")
            return
        opened = self._open(data, source, DATAGRAM_BYTES_MAX)
        if opened is not None:
            self._link.current_source = source
            try:
                self._dispatch(*opened, source)
            finally:
                self._link.current_source = None

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
        self._outbox.advance(now_ms)
        self.stats.streams_in += 1
        self.stats.bytes_in += len(data)
        if len(data) > self.config.stream_bytes_max:
            self._outbox.drop(source, "oversize")
            return
        opened = self._open(data, source, self.config.stream_bytes_max)
        if opened is None:
            return
        kind, payload = opened
        if kind in (MessageType.PUSH, MessageType.EXCHANGE):
            yield from self._rumours.receive_stream(kind, payload, source)
        else:
            self._dispatch(kind, payload, source)

    def open_stream_hello(
        self, data: bytes, source: Address, now_ms: int
    ) -> tuple[int, int] | None:
        """``(sender port, body bytes)`` of a stream's opening message, or None (dropped and
        counted) if it is not an authentic, fresh ``STREAM_HELLO`` announcing a body of at most
        ``stream_bytes_max``. The driver calls this before it reads the body."""
        outbox = self._outbox
        outbox.advance(now_ms)
        try:
            kind, payload = self._codec.open(data, STREAM_HELLO_BYTES_MAX, outbox.now)
            if kind != MessageType.STREAM_HELLO:
                raise DecodeError("not a stream hello")
            port, length = msg.decode_stream_hello(payload)
        except EnvelopeError as error:
            outbox.drop(source, error.reason)
            return None
        except DecodeError:
            outbox.drop(source, "malformed")
            return None
        if length > self.config.stream_bytes_max:
            outbox.drop(source, "oversize")
            return None
        return port, length

    def rumours_waiting(self) -> int:
        """Keys whose rumour waits for pacing tokens (0 once everything went out)."""
        return len(self._rumours.pending)

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
        self._outbox.advance(now_ms)
        self._anti_entropy.stopped = False
        if self._static_peers is not None:
            for seed in seeds:
                self._static_peers.add(seed)
        else:
            self._link.join(seeds)
        if vignette_seeds and self._vignette_enabled:
            self._vignette.join(list(vignette_seeds))

    def leave(self, now_ms: int) -> None:
        """Announce a graceful leave (membership) and stop starting anti-entropy rounds."""
        self._outbox.advance(now_ms)
        self._anti_entropy.stopped = True
        self._link.leave()

    def local_delta(self, key: bytes, delta: Entry, now_ms: int) -> int:
        """A client wrote ``delta`` to ``key`` (already merged into the keyspace): spread it.

        Returns the write's sequence number for :meth:`acks` / :meth:`request_acks`.
        """
        self._outbox.advance(now_ms)
        if not self._peers.addresses:
            # A lone node: no rumour (nobody would receive it) and no recent-key entry (no
            # digest has anyone to go to). A peer that appears later gets the key by
            # anti-entropy, which also pushes the lately changed keys at once; the write's
            # record stays, so a WAIT can still ask peers that join while it waits.
            self._tail.note_changed(key)
            return self._acks.track(key)
        # Another write to the same key before the driver drained us: one push carries both
        # (the drain gives them their ack records: see ``Acks.share``).
        seq = self._acks.track(key)
        self._rumours.queue_local(key, delta, seq)
        self._tail.mark_recent(key)
        return seq

    def acks(self, seq: int) -> int:
        """How many peers acknowledged holding local write ``seq`` (0 if unknown or forgotten)."""
        return self._acks.acks(seq)

    def request_acks(self, seq: int, count: int, now_ms: int) -> int:
        """Make sure ``count`` peers hold write ``seq``: ask more peers, retry until they ack.

        Sends the write's own items when its record kept them, else the key's current state
        (which contains the write: the lattice only grows), to peers that have not
        acknowledged yet. Returns the acks held now.

        Writes still waiting for their drain are pushed first: a write asked about before its
        drain (WAIT, or the replication-lag probe, right after it) had no items kept yet, and
        the key's whole state went instead (1.2 MB for a BF.ADD to a 1M-capacity filter, at
        every probe under load).
        """
        self._outbox.advance(now_ms)
        if self._rumours.local:
            self._drain()
        return self._acks.request_acks(seq, count)

    # == receiving ================================================================================

    def _open(self, data: bytes, source: Address, bytes_max: int) -> tuple[int, bytes] | None:
        """``(type, payload)`` of an envelope; vignette and bad input are handled here."""
        outbox = self._outbox
        if source == self.address:
            outbox.drop(source, "from-self")
            return None
        if not is_envelope(data):
            first = data[0] if data else -1
            looks_vignette = 0x80 <= first <= 0x8F or first in (0xDE, 0xDF)
            if looks_vignette and self._codec.requires_auth:
                outbox.drop(source, "unauthenticated")  # vignette speaks only plaintext
            elif looks_vignette and self._vignette_enabled:
                self._vignette.on_datagram(data, source)
            else:
                outbox.drop(source, "malformed")
            return None
        try:
            kind, payload = self._codec.open(data, bytes_max, outbox.now)
        except EnvelopeError as error:
            outbox.drop(source, error.reason)
            return None
        by = self.stats.received_by_type
        name = _TYPE_NAMES[kind]
        by[name] = by.get(name, 0) + 1
        self._link.heard_from(source)
        return kind, payload

    def _dispatch(self, kind: int, payload: bytes, source: Address) -> None:
        """Hand a message to its part; a bad payload is dropped and counted, never raised."""
        handler = self._handlers.get(kind)
        if handler is None:
            self._outbox.drop(source, "unexpected")
            return
        try:
            handler(payload, source)
        except DecodeError:
            self._outbox.drop(source, "malformed")
        except (HearsayError, ValueError, OverflowError):
            self._outbox.drop(source, "invalid")

    def _on_backoff(self, payload: bytes, source: Address) -> None:
        self._outbox.on_backoff(payload, source, from_peer=source in self._peers)

    def _forward_to_vignette(self, key: bytes, grown: Entry, full: bool, source: Address) -> None:
        self._vignette.forward_from_peer(key, grown, full, source)

    def _vignette_listening(self) -> bool:
        """Whether what a peer's PUSH grew goes on to vignette neighbours (we know some)."""
        return bool(self._vignette.peers)
