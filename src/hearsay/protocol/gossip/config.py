"""The gossip node's settings and counters (shared by the router and every part).

Why this module exists: every part of the gossip core reads its settings from one
:class:`NodeConfig` and counts into one :class:`NodeStats`; their field names are what INFO and
``/metrics`` show, so they are a contract and live apart from the code that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hearsay.protocol import vignette
from hearsay.protocol.presets import DEFAULT_PRESET, GossipPreset

__all__ = ["NodeConfig", "NodeStats"]


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
    covered_relay_fanout: int = 0
    """Forwarding fanout of a write its origin pushed to every peer it knows: none by default.
    The origin's cover retries repair loss, and digests and anti-entropy a membership view
    lagging behind. A forward (1 here) cost each write a second hop per peer, and a sibling
    that already held newer state replied to the forward with it: under a stream of writes,
    a 3-node cluster merged and sent each write several times over."""
    cover_retry_ms: int = 50
    """When the origin pushed a write to every peer, it pushes it again to those that have not
    acknowledged it after this long (a lost datagram costs one retry, not digest rounds)."""
    cover_retries: int = 2
    drain_interval_ms: int = 0
    """Client writes are pushed (drained) at most once this often: the writes of the interval
    leave together, one datagram per peer and one ACK back, instead of one drain per
    event-loop pass. 0: every drain pushes (hand-driven tests); the presets set 2 ms."""
    gossip_interval_ms: int = 200
    anti_entropy_interval_ms: int = 2_000
    udp_payload_bytes_max: int = 1400
    recent_rounds: int = 5
    """Gossip rounds a changed key is offered in DIGESTs (the rumour's tail)."""
    digest_delay_rounds: int = 0
    """Rounds a changed key waits before its first DIGEST (measured: waiting costs tail
    latency and saves little, because late-informed nodes' digests matter most)."""
    digest_fanout: int = 2
    """Peers each round's DIGEST of the recent keys goes to. A node the rumour missed (about
    ``e**-fanout`` of them) hears of the key from the digests of the nodes it reached; with
    one digest a round from each, a node went a round without one ~37% of the time, and at
    1,000 nodes some missed all five rounds and waited for anti-entropy (write convergence
    p99 2.11 s, p50 0.94 s in ``bench/sim_targets.py --only scale``); with two, ~13.5% a round
    (p99 1.03 s, p50 0.48 s, same seed) for one more small datagram a round while a key is
    recent."""
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
            drain_interval_ms=2,
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
    ae_keys_repaired: int = 0  # keys a round found different and sent or asked for
    paced: int = 0
    backoffs_received: int = 0
    vignette_in: int = 0
    vignette_out: int = 0
