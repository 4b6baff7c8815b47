"""Events the gossip node hands to its driver (drained with ``GossipNode.next_event()``).

Why this module exists: the sans-IO core never calls back into the driver; it queues plain,
immutable values instead (as h11 and aioquic do), so the asyncio runtime, the simulator and the
tests observe the node the same way. Membership events (joined, alive, suspect, failed, left,
reaped, tag updated / expired) come from :mod:`hearsay.protocol.membership` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from hearsay.lattice.entry import Entry
from hearsay.protocol.membership import Address, MembershipEvent


@dataclass(slots=True)
class KeyChanged:
    """A peer's message grew ``key``; ``delta`` holds exactly what grew (read-only by
    convention: not frozen, as ``MergeResult`` is not, because one is made for every key a
    receiver merges and a frozen constructor costs ~0.3 us more).

    ``conflict``: two different schemas met at one epoch and the higher one won (the engine
    should report it). ``source`` is the peer the change came from.
    """

    key: bytes
    delta: Entry
    source: Address
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class DatagramDropped:
    """A datagram (or stream message) was refused; ``reason`` names the check that failed."""

    source: Address
    reason: str


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """Please deliver ``data`` to ``peer`` over a reliable stream (TCP).

    The node asks for this when one message is larger than a datagram may be (anti-entropy
    digests of large buckets, big entries in an exchange). ``data`` is a complete envelope,
    sealed like a datagram. The driver opens a connection to ``peer`` (the runtime: TCP to the
    same host and port; the simulator: a reliable, delayed message) and the receiving driver
    passes the bytes to ``GossipNode.receive_stream``. Delivery is best effort: on failure the
    driver may call ``GossipNode.stream_failed(stream_id)``; anti-entropy retries anyway.
    """

    stream_id: int
    peer: Address
    data: bytes
    hello: bytes = b""
    """A small sealed ``STREAM_HELLO`` (our port and ``len(data)``) the driver sends first: the
    receiver authenticates it (keyring, replay guard) before it buffers ``data``."""


@dataclass(frozen=True, slots=True)
class WriteAcked:
    """Another peer acknowledged holding local write ``seq``; ``acks`` peers now hold it."""

    seq: int
    peer: Address
    acks: int


NodeEvent: TypeAlias = KeyChanged | DatagramDropped | StreamRequest | WriteAcked | MembershipEvent
