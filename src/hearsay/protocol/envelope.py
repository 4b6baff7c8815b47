"""The envelope every hearsay datagram travels in: cluster, version, type, optional AES-GCM.

Why this module exists: a node must never act on a packet that was meant for another cluster,
spoken by an incompatible version, forged or damaged, and it must tell these apart from
vignette's raw msgpack messages, which share the port. So every hearsay datagram starts with a
fixed header that is checked before anything else is looked at.

Layout (all integers unsigned, big-endian)::

    magic      3 bytes   0xC1 'h' 's'   (0xC1 is the one byte msgpack never emits, so a raw
                                         vignette map can never look like an envelope)
    version    1 byte    PROTOCOL_VERSION
    flags      1 byte    bit 0: the body is encrypted
    cluster    1 byte length + up to CLUSTER_NAME_BYTES_MAX bytes of UTF-8
    body       plain:     type (1 byte) + payload
               encrypted: nonce (12 bytes) + AES-GCM(stamp + type + payload) + tag (16 bytes)
    stamp      24 bytes   sender instance (8 random bytes per process), sequence (8),
                          sent_unix_ms (8)

When encrypted, the associated data is the whole header (magic, version, flags, cluster), so
a packet re-labelled for another cluster, or with its flags flipped, fails authentication.
The cluster name stays readable so foreign packets are counted as foreign, not as forgeries
(memberlist's label works the same way).

Keys live in a :class:`Keyring`: the primary key encrypts, every installed key decrypts, so
keys rotate without downtime (install the new key everywhere, ``use`` it everywhere, then
``remove`` the old one). Nonces are 96 random bits from a source the driver injects (the core
never touches a global random generator); the runtime passes ``os.urandom``.

Replay protection (protocol version 2): an authenticated packet is only as good as it is
fresh. A recorded datagram replayed later (after the tombstone grace, it would bring a deleted
key back) is refused by :class:`ReplayGuard`: its ``sent_unix_ms`` must be within
``REPLAY_WINDOW_MS`` of the receiver's clock, and its sequence must be above every sequence
this receiver took from that sender instance. A sender numbers all its packets in one series,
whatever their destination, so a receiver sees only some of them: a sliding window of unseen
sequences (IPsec's) would take a packet that was sent to *another* node and replayed here, as
the chaos suite showed (recorded datagrams replayed to every node brought a deleted key back).
Strictly rising sequences refuse it; the price is that a datagram overtaken by a later one of
the same sender is dropped, which gossip repairs like a loss. A node also drops packets that
carry its own instance (its own datagrams sent back to it). Stream hellos (TCP, so several may
be in flight at once) keep the sliding window of ``REPLAY_SEQ_WINDOW`` sequences in a table of
their own; a hello sent to another node and replayed here within the window names a port and
length that the stream must match, and only raises state that its sender held less than
``REPLAY_WINDOW_MS`` ago. Senders are tracked in a bounded LRU table; a packet from an instance the
table does not hold must be newer than the last eviction, so an eviction opens no window for
replays. Just after a restart the receiver accepts, once, packets of the last
``REPLAY_WINDOW_MS`` from instances it has not heard yet: harmless, since every message only
raises lattice or membership state that the original delivery already raised. Peers of an
older version (1 had no stamp; 2 sent membership messages as maps) are refused with reason
``version``. Plaintext packets carry no stamp: without a keyring
anyone can forge them anyway (see docs/security.md).

Message types are appended, never renumbered (as memberlist does): an old node that sees an
unknown type drops the packet with reason ``unknown-type`` and keeps working.

Every failure raises :class:`EnvelopeError` (a :class:`~hearsay.base.errors.DecodeError`)
whose ``reason`` is one of :data:`DROP_REASONS`; the node catches it and counts the drop.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable
from enum import IntEnum
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hearsay.base.errors import DecodeError

MAGIC: Final = b"\xc1hs"
PROTOCOL_VERSION: Final = 3
"""3: membership messages are positional arrays (2: maps); 2: encrypted bodies carry a replay
stamp (1 had none)."""
CLUSTER_NAME_BYTES_MAX: Final = 64
FLAG_ENCRYPTED: Final = 0x01
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
KEY_SIZES: Final = (16, 24, 32)
"""AES-128, AES-192 or AES-256."""
KEYS_MAX: Final = 16
DATAGRAM_BYTES_MAX: Final = 65_507
"""The largest UDP payload; anything longer is not a datagram."""
STAMP: Final = struct.Struct("!8sQQ")
"""Sender instance, sequence, sent_unix_ms: inside the encryption, so unforgeable."""
REPLAY_WINDOW_MS: Final = 60_000
"""How far a packet's send time may be from the receiver's clock (delay plus clock skew)."""
REPLAY_SEQ_WINDOW: Final = 4096
"""Sequences per sender remembered below its highest: reordering beyond this is refused."""
REPLAY_SENDERS_MAX: Final = 4096
"""Sender instances tracked at once (a restart is a new instance)."""


class MessageType(IntEnum):
    """Wire message types. Append new ones at the end; never renumber or reuse a value."""

    PUSH = 1
    """Key deltas: a rumour (relayed) or a repair (merged only)."""
    EXCHANGE = 2
    """Our state of some keys (or nothing): reply with whatever you hold beyond it."""
    ACK = 3
    """Acknowledges write sequence numbers carried by a PUSH."""
    DIGEST = 4
    """(key, content hash) of recently changed keys: push-pull for the rumour's tail."""
    AE_GROUPS = 5
    """Anti-entropy step 1: hashes of groups of keyspace buckets."""
    AE_BUCKETS = 6
    """Anti-entropy step 2: bucket hashes of the groups that differ."""
    AE_KEYS = 7
    """Anti-entropy step 3: (key, content hash) of every key in the buckets that differ."""
    BACKOFF = 8
    """The receiver is overloaded: slow down gossip towards it."""
    MEMBERSHIP = 9
    """A membership (scuttlebutt) message: a positional msgpack array (membership.wire)."""
    STREAM_HELLO = 10
    """Opens a TCP stream: ``[sender port, body bytes]``, checked before the body is read."""


DROP_REASONS: Final = (
    "malformed",
    "foreign-cluster",
    "version",
    "unknown-type",
    "unauthenticated",
    "decrypt-failed",
    "oversize",
    "stale",
    "replayed",
)


class EnvelopeError(DecodeError):
    """A datagram is not a valid envelope for this node; ``reason`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in DROP_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) not in KEY_SIZES:
        raise ValueError(f"an AES key must be {KEY_SIZES} bytes long")
    return key


class Keyring:
    """AES-GCM keys: the primary encrypts; every installed key may decrypt."""

    __slots__ = ("_ciphers", "_keys")

    def __init__(self, primary: bytes, others: tuple[bytes, ...] = ()) -> None:
        self._keys: list[bytes] = [_check_key(primary)]
        self._ciphers: dict[bytes, AESGCM] = {primary: AESGCM(primary)}
        for key in others:
            self.install(key)

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    @property
    def keys(self) -> list[bytes]:
        """Installed keys, primary first."""
        return list(self._keys)

    def install(self, key: bytes) -> None:
        """Accept packets encrypted with ``key`` (it does not become the primary)."""
        _check_key(key)
        if key in self._ciphers:
            return
        if len(self._keys) >= KEYS_MAX:
            raise ValueError(f"a keyring holds at most {KEYS_MAX} keys")
        self._keys.append(key)
        self._ciphers[key] = AESGCM(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary (the one that encrypts)."""
        if key not in self._ciphers:
            raise ValueError("install a key before using it")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove(self, key: bytes) -> None:
        """Stop accepting ``key``; the primary cannot be removed (``use`` another first)."""
        if key == self._keys[0]:
            raise ValueError("cannot remove the primary key")
        if key in self._ciphers:
            self._keys.remove(key)
            del self._ciphers[key]

    def encrypt(self, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
        return self._ciphers[self._keys[0]].encrypt(nonce, plaintext, associated)

    def decrypt(self, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes:
        """Try the primary first, then the other keys; raises EnvelopeError if none fits."""
        for key in self._keys:
            try:
                return self._ciphers[key].decrypt(nonce, ciphertext, associated)
            except InvalidTag:
                continue
        raise EnvelopeError("decrypt-failed", "no installed key authenticates the packet")


class _Seen:
    __slots__ = ("bits", "highest")

    def __init__(self, highest: int) -> None:
        self.highest = highest
        self.bits = 1
        """Bit ``i`` set: sequence ``highest - i`` was seen."""


class ReplayGuard:
    """Refuses authenticated packets that are too old, too new, or seen before.

    ``floor_ms``: packets from sender instances not in the table must have been sent after
    it; it starts one window before the guard's creation (a peer's clock may lag ours) and
    moves to the eviction time when the table is full, so a forgotten sender's old packets
    cannot be replayed.
    """

    __slots__ = ("_senders", "floor_ms", "senders_max", "seq_window", "window_ms")

    def __init__(
        self,
        now_ms: int,
        *,
        window_ms: int = REPLAY_WINDOW_MS,
        seq_window: int = REPLAY_SEQ_WINDOW,
        senders_max: int = REPLAY_SENDERS_MAX,
    ) -> None:
        """``seq_window`` 1: strictly rising sequences (datagrams); more: a sliding window of
        that many sequences, for packets that may overtake each other (stream hellos)."""
        self.window_ms = window_ms
        self.seq_window = seq_window
        self.senders_max = senders_max
        self.floor_ms = now_ms - window_ms
        self._senders: OrderedDict[bytes, _Seen] = OrderedDict()

    def check(self, instance: bytes, seq: int, sent_ms: int, now_ms: int) -> None:
        """Accept (and remember) a packet, or raise EnvelopeError ``stale`` / ``replayed``."""
        if abs(now_ms - sent_ms) > self.window_ms:
            raise EnvelopeError("stale", f"sent at {sent_ms}, now {now_ms}")
        seen = self._senders.get(instance)
        if seen is None:
            if sent_ms <= self.floor_ms:
                raise EnvelopeError("stale", "unknown sender, older than the replay floor")
            if len(self._senders) >= self.senders_max:
                self._senders.popitem(last=False)
                self.floor_ms = max(self.floor_ms, now_ms)
            self._senders[instance] = _Seen(seq)
            return
        self._senders.move_to_end(instance)
        if seq > seen.highest:
            shift = seq - seen.highest
            if shift >= self.seq_window:  # (never shift by a peer-chosen 2**63 bits)
                seen.bits = 1
            else:
                seen.bits = ((seen.bits << shift) | 1) & ((1 << self.seq_window) - 1)
            seen.highest = seq
            return
        back = seen.highest - seq
        if back >= self.seq_window or seen.bits >> back & 1:
            raise EnvelopeError("replayed", f"sequence {seq}")
        seen.bits |= 1 << back


class EnvelopeCodec:
    """Seals and opens envelopes for one cluster (and, optionally, one keyring).

    ``encrypt`` (default: whenever a keyring is given) seals outgoing packets; ``require_auth``
    (default: the same) refuses plaintext packets. Turning them on one after the other lets a
    running cluster move to encryption without downtime, as memberlist's
    ``GossipVerifyIncoming`` / ``GossipVerifyOutgoing`` do.
    """

    __slots__ = (
        "_encrypt",
        "_guard",
        "_header_encrypted",
        "_header_plain",
        "_instance",
        "_nonce_source",
        "_require_auth",
        "_seq",
        "_stream_guard",
        "cluster",
        "keyring",
    )

    def __init__(
        self,
        cluster: str,
        keyring: Keyring | None = None,
        *,
        nonce_source: Callable[[int], bytes] | None = None,
        encrypt: bool | None = None,
        require_auth: bool | None = None,
    ) -> None:
        name = cluster.encode()
        if not 1 <= len(name) <= CLUSTER_NAME_BYTES_MAX:
            raise ValueError(f"cluster name must be 1..{CLUSTER_NAME_BYTES_MAX} bytes of UTF-8")
        self.cluster = cluster
        self.keyring = keyring
        self._encrypt = keyring is not None if encrypt is None else encrypt
        self._require_auth = keyring is not None if require_auth is None else require_auth
        if (self._encrypt or self._require_auth) and keyring is None:
            raise ValueError("encryption needs a keyring")
        if self._encrypt and nonce_source is None:
            raise ValueError("encryption needs a nonce source (os.urandom, or a seeded rng)")
        self._nonce_source = nonce_source
        self._instance = b""
        self._seq = 0
        self._guard: ReplayGuard | None = None  # datagrams: strictly rising sequences
        self._stream_guard: ReplayGuard | None = None  # stream hellos: a sliding window
        base = MAGIC + bytes((PROTOCOL_VERSION,))
        label = bytes((len(name),)) + name
        self._header_plain = base + b"\x00" + label
        self._header_encrypted = base + bytes((FLAG_ENCRYPTED,)) + label

    @property
    def encrypting(self) -> bool:
        return self._encrypt

    @property
    def requires_auth(self) -> bool:
        """Plaintext packets (vignette's raw messages included) are refused."""
        return self._require_auth

    def overhead_bytes(self) -> int:
        """Bytes the envelope adds around a payload."""
        if self._encrypt:
            return len(self._header_encrypted) + STAMP.size + 1 + NONCE_BYTES + TAG_BYTES
        return len(self._header_plain) + 1

    def seal(self, message_type: MessageType, payload: bytes, now_ms: int = 0) -> bytes:
        """The datagram carrying ``payload`` as ``message_type``, sent at ``now_ms`` (the
        stamp's time, which receivers check when the packet is encrypted)."""
        body = bytes((message_type,)) + payload
        if not self._encrypt:
            return self._header_plain + body
        assert self.keyring is not None and self._nonce_source is not None
        if not self._instance:
            self._instance = self._nonce_source(8)
        self._seq += 1
        nonce = self._nonce_source(NONCE_BYTES)
        header = self._header_encrypted
        stamp = STAMP.pack(self._instance, self._seq, max(0, now_ms))
        return header + nonce + self.keyring.encrypt(nonce, stamp + body, header)

    def open(
        self, data: bytes, bytes_max: int = DATAGRAM_BYTES_MAX, now_ms: int | None = None
    ) -> tuple[int, bytes]:
        """``(message type, payload)`` of a datagram; raises EnvelopeError otherwise.

        The type is returned as an int that is a valid :class:`MessageType`. ``bytes_max`` is
        raised by the caller for stream transfers, which are not bound by a datagram's size.
        With ``now_ms`` (a node always passes it) an encrypted packet must also pass the
        replay guard; without it the packet is only decoded (tools, tests).
        """
        size = len(data)
        if size > bytes_max:
            raise EnvelopeError("oversize", f"{size} bytes")
        if size < 7 or data[:3] != MAGIC:
            raise EnvelopeError("malformed", "no envelope magic")
        if data[3] != PROTOCOL_VERSION:
            raise EnvelopeError("version", f"protocol version {data[3]}")
        flags = data[4]
        if flags & ~FLAG_ENCRYPTED:
            raise EnvelopeError("malformed", f"unknown flags {flags:#x}")
        name_len = data[5]
        end = 6 + name_len
        if name_len == 0 or size < end + 1:
            raise EnvelopeError("malformed", "truncated cluster name")
        encrypted = bool(flags & FLAG_ENCRYPTED)
        expected = self._header_encrypted if encrypted else self._header_plain
        if data[:end] != expected:
            raise EnvelopeError("foreign-cluster", repr(bytes(data[6:end])))
        if encrypted:
            if self.keyring is None:
                raise EnvelopeError("unauthenticated", "encrypted packet and no keyring")
            if size < end + NONCE_BYTES + TAG_BYTES + 1:
                raise EnvelopeError("malformed", "truncated encrypted body")
            nonce = data[end : end + NONCE_BYTES]
            stamped = self.keyring.decrypt(nonce, data[end + NONCE_BYTES :], data[:end])
            if len(stamped) < STAMP.size + 1:
                raise EnvelopeError("malformed", "no replay stamp")
            body = stamped[STAMP.size :]
            if now_ms is not None:
                instance, seq, sent_ms = STAMP.unpack_from(stamped)
                if instance == self._instance:
                    raise EnvelopeError("replayed", "our own packet")
                if body[:1] == bytes((MessageType.STREAM_HELLO,)):
                    if self._stream_guard is None:
                        self._stream_guard = ReplayGuard(now_ms)
                    self._stream_guard.check(instance, seq, sent_ms, now_ms)
                else:
                    if self._guard is None:
                        self._guard = ReplayGuard(now_ms, seq_window=1)
                    self._guard.check(instance, seq, sent_ms, now_ms)
        else:
            if self._require_auth:
                raise EnvelopeError("unauthenticated", "plaintext packet, encryption required")
            body = data[end:]
        if not body:
            raise EnvelopeError("malformed", "no message type")
        kind = body[0]
        if not 1 <= kind <= len(MessageType):
            raise EnvelopeError("unknown-type", str(kind))
        return kind, body[1:]


def is_envelope(data: bytes) -> bool:
    """True when ``data`` starts like a hearsay envelope (not a raw vignette message)."""
    return data[:3] == MAGIC
