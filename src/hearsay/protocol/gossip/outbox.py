"""What the gossip node hands its driver, and the clock and pacing every part shares.

Why this module exists: every part of the gossip core sends (sealed datagrams, stream requests
for what does not fit, vignette's raw datagrams), reports events, merges peers' deltas and asks
the pacing bucket for tokens; one :class:`Outbox` owns the queues, the envelope codec, the
node's clock (``now``: the latest ``now_ms`` the driver passed) and the token bucket, so no part
keeps a copy of any of them.

- **Packing**: messages are ``prefix + array(items) + suffix`` cut to a datagram's budget; an
  item larger than a datagram is split into chunks that merge on their own
  (:func:`hearsay.lattice.codec.split_entry`), and a message still too big leaves as a
  :class:`StreamRequest`.
- **Pacing**: rumours and digests spend tokens of a :class:`TokenBucket`; a live peer's BACKOFF
  halves the rate; above ``overload_datagrams_per_s`` received datagrams we ask senders to back
  off (at most 64 a second).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Final

from hearsay.base.errors import SketchParameterError, TooLargeError
from hearsay.lattice.codec import split_entry
from hearsay.lattice.entry import Entry, FewPairsDelta, MergeResult
from hearsay.lattice.keyspace import Keyspace
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import EnvelopeCodec, MessageType
from hearsay.protocol.events import DatagramDropped, KeyChanged, NodeEvent, StreamRequest
from hearsay.protocol.gossip.config import NodeConfig, NodeStats
from hearsay.protocol.membership import Address
from hearsay.protocol.pacing import TokenBucket

ACK_IDS_PER_DATAGRAM: Final = 100
"""ACK ids one datagram carries at most (9 bytes each at most: well inside the smallest
payload a preset allows)."""

__all__ = ["Outbox", "merge_delta"]

_BACKOFFS_PER_S_MAX = 64


class Outbox:
    """The node's queues (datagrams, events), clock, envelope sealing and pacing."""

    def __init__(
        self,
        address: Address,
        *,
        config: NodeConfig,
        stats: NodeStats,
        codec: EnvelopeCodec,
        keyspace: Keyspace,
        now_ms: int,
    ) -> None:
        self.address = address
        self.config = config
        self.stats = stats
        self.codec = codec
        self.keyspace = keyspace
        self.now = now_ms
        self.datagrams: list[tuple[bytes, Address]] = []
        self.acks_due: dict[Address, list[int]] = {}
        """ACK ids owed to each peer, sent with the next :meth:`take_datagrams`: the PUSHes a
        driver reads before it sends (several, under load, in one event-loop pass) are
        acknowledged in one ACK per peer."""
        self.events: deque[NodeEvent] = deque()
        self.bucket = TokenBucket(config.pacing_rate_per_s, float(config.pacing_burst))
        self.payload_budget = config.udp_payload_bytes_max - codec.overhead_bytes()
        """Payload bytes a datagram may carry inside the envelope."""
        self._stream_seq = 0
        self._load_window_start_ms = now_ms
        self._load_window_count = 0
        self._backoff_sent: set[Address] = set()
        """Senders asked to back off in the current one-second window."""

    def advance(self, now_ms: int) -> None:
        """The driver's time moved on (never backwards: ``now`` is the latest seen)."""
        self.now = max(self.now, now_ms)

    def take_datagrams(self) -> list[tuple[bytes, Address]]:
        if self.acks_due:
            self._send_acks()
        out = self.datagrams
        self.datagrams = []
        return out

    def ack(self, peer: Address, ack_id: int) -> None:
        """Owe ``peer`` an ACK of ``ack_id`` (sent with the next datagrams taken)."""
        due = self.acks_due.get(peer)
        if due is None:
            self.acks_due[peer] = [ack_id]
        else:
            due.append(ack_id)

    def _send_acks(self) -> None:
        """One ACK per peer for every id owed to it (at most :data:`ACK_IDS_PER_DATAGRAM`
        ids a datagram: a peer's decoder takes up to 1,024)."""
        due, self.acks_due = self.acks_due, {}
        for peer, ids in due.items():
            for start in range(0, len(ids), ACK_IDS_PER_DATAGRAM):  # bounded by the ids owed
                self.send(
                    MessageType.ACK, msg.packb(ids[start : start + ACK_IDS_PER_DATAGRAM]), [peer]
                )

    # -- events ------------------------------------------------------------------------------

    def emit(self, event: NodeEvent) -> None:
        self.events.append(event)

    def drop(self, source: Address, reason: str) -> None:
        """Count a refused message by reason and report it."""
        dropped = self.stats.dropped
        dropped[reason] = dropped.get(reason, 0) + 1
        self.emit(DatagramDropped(source, reason))

    def merge(self, key: bytes, delta: Entry, source: Address) -> MergeResult:
        """Merge a delta into the keyspace and report what grew as a :class:`KeyChanged`."""
        try:
            result = merge_delta(self.keyspace, key, delta)
        except (TooLargeError, SketchParameterError):
            # Over this node's per-key cap or an out-of-bounds sketch shape: refuse this one
            # delta (counted), keep the rest of the message.
            self.drop(source, "too-large")
            return MergeResult(None)
        return self._merged(key, result, source)

    def merge_few(self, key: bytes, few: FewPairsDelta, source: Address) -> MergeResult | None:
        """:meth:`merge` of a delta read as its few pairs (see :meth:`Keyspace.merge_few`); None:
        the key holds another epoch, schema or expiry, so the delta must be merged whole."""
        try:
            result = self.keyspace.merge_few(key, few)
        except (TooLargeError, SketchParameterError):
            self.drop(source, "too-large")
            return MergeResult(None)
        return None if result is None else self._merged(key, result, source)

    def _merged(self, key: bytes, result: MergeResult, source: Address) -> MergeResult:
        if result.delta is not None:
            self.stats.keys_changed += 1
            if result.conflict:
                self.stats.conflicts += 1
            self.emit(KeyChanged(key, result.delta, source, result.conflict))
        return result

    # -- sending -----------------------------------------------------------------------------

    def _count_sent(self, kind: MessageType, copies: int, size: int) -> None:
        by = self.stats.sent_by_type
        by[kind.name] = by.get(kind.name, 0) + copies
        by_bytes = self.stats.sent_bytes_by_type
        by_bytes[kind.name] = by_bytes.get(kind.name, 0) + copies * size

    def send(self, kind: MessageType, payload: bytes, peers: Sequence[Address]) -> None:
        """Seal ``payload`` and queue it for ``peers`` (a stream request if it is too big)."""
        if not peers:
            return
        codec = self.codec
        limit = self.config.udp_payload_bytes_max
        sealed = codec.seal(kind, payload, self.now)
        self._count_sent(kind, len(peers), len(sealed))
        for i, peer in enumerate(peers):
            if i and codec.encrypting:
                sealed = codec.seal(kind, payload, self.now)
            if len(sealed) <= limit:
                self.datagrams.append((sealed, peer))
                self.stats.datagrams_out += 1
                self.stats.bytes_out += len(sealed)
            else:
                self._stream_seq += 1
                self.stats.streams_out += 1
                self.stats.stream_bytes_out += len(sealed)
                hello = codec.seal(
                    MessageType.STREAM_HELLO, msg.packb([self.address[1], len(sealed)]), self.now
                )
                self.emit(StreamRequest(self._stream_seq, peer, sealed, hello))

    def send_raw(self, data: bytes, peer: Address) -> None:
        """Queue a vignette datagram (raw msgpack, no envelope)."""
        self.datagrams.append((data, peer))
        self.stats.datagrams_out += 1
        self.stats.bytes_out += len(data)
        self.stats.vignette_out += 1

    def pack(self, prefix: bytes, items: list[bytes], suffix: bytes = b"") -> list[bytes]:
        """Payloads of ``prefix + array(items) + suffix``, each within a datagram's budget.

        An item too large for a datagram travels alone (and so goes over a stream).
        """
        room = self.payload_budget - len(prefix) - len(suffix) - 3
        return [
            msg.join_items(prefix, items[start:stop], suffix)
            for start, stop in self.fit(items, room)
        ]

    @staticmethod
    def fit(items: list[bytes], room: int) -> list[tuple[int, int]]:
        """``items`` cut into consecutive ``(start, stop)`` runs of at most ``room`` bytes each
        (an item larger than ``room`` is a run of its own)."""
        runs: list[tuple[int, int]] = []
        start = used = 0
        for i, item in enumerate(items):
            if i > start and used + len(item) > room:
                runs.append((start, i))
                start, used = i, 0
            used += len(item)
        if start < len(items):
            runs.append((start, len(items)))
        return runs

    def push_items(self, key: bytes, entry: Entry, full: bool) -> list[bytes]:
        """PUSH items carrying ``entry``, split so that each fits one datagram."""
        item = msg.push_item(key, entry, full)
        room = self.payload_budget - 16
        if len(item) <= room:
            return [item]
        chunk_budget = room - len(key) - 16
        return [msg.push_item(key, chunk, full) for chunk in split_entry(entry, chunk_budget)]

    def send_push(self, items: list[bytes], peers: Sequence[Address], *, relay: bool | int) -> None:
        """PUSH ``items`` to ``peers`` asking for no ack (acks: :mod:`.acks`)."""
        if not peers or not items:
            return
        for payload in self.pack(msg.push_prefix(relay, 0), items):
            self.send(MessageType.PUSH, payload, peers)

    # -- load --------------------------------------------------------------------------------

    def note_load(self, source: Address) -> None:
        """Count a received datagram; beyond the overload rate ask its sender to back off."""
        if self.now - self._load_window_start_ms >= 1000:
            self._load_window_start_ms = self.now
            self._load_window_count = 0
            self._backoff_sent.clear()
        self._load_window_count += 1
        if (
            self._load_window_count > self.config.overload_datagrams_per_s
            and source not in self._backoff_sent
            and len(self._backoff_sent) < _BACKOFFS_PER_S_MAX
        ):
            self._backoff_sent.add(source)
            self.send(MessageType.BACKOFF, msg.packb([self.config.backoff_pause_ms]), [source])

    def on_backoff(self, payload: bytes, source: Address, from_peer: bool) -> None:
        """A BACKOFF: halve the pacing rate, if it came from a peer we gossip with."""
        msg.decode_backoff(payload)
        if not from_peer:
            # Only a live member (and, with a keyring, an authenticated one) may slow us:
            # a stranger's BACKOFF every 0.2 s halved replication speed.
            self.drop(source, "not-a-peer")
            return
        self.stats.backoffs_received += 1
        self.bucket.backoff(self.now)


def merge_delta(keyspace: Keyspace, key: bytes, delta: Entry) -> MergeResult:
    """``keyspace.merge``, but a few pairs of one slice at the very epoch, schema and
    expiry the key holds (a replicated write: the common case) go in as raw pairs, the
    way a local write does (:meth:`Keyspace.merge_few`). Same state, same delta."""
    schema = delta.schema
    if schema is None or keyspace.retiring(delta):
        return keyspace.merge(key, delta)
    body = list(delta.slices())
    if len(body) != 1:
        return keyspace.merge(key, delta)
    origin, vector = body[0]
    pairs = vector.items() if len(vector) <= msg.FEW_PAIRS_MERGED else None
    if not pairs:
        return keyspace.merge(key, delta)
    result = keyspace.merge_few(
        key,
        (delta.epoch, schema, delta.expiry, origin, [i for i, _ in pairs], [v for _, v in pairs]),
        delta,
    )
    return keyspace.merge(key, delta) if result is None else result
