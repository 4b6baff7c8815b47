"""Gossip timing and size settings, bundled as named presets.

Why this module exists: every timer and size the gossip core uses lives in one frozen value, so
the node, the simulator and the tests agree on them, and a deployment picks one name instead of
twenty numbers. The three presets follow hashicorp/memberlist's ``DefaultLANConfig`` /
``DefaultWANConfig`` / ``DefaultLocalConfig`` in spirit (``lan`` is the default, ``wan`` is slower
and more tolerant, ``local`` is fast for loopback and tests); the failure detector is memberlist's
design too (SWIM probes, Lifeguard's suspicion and local health), with shorter periods so a
crash is detected within a few seconds at 10,000 nodes.

How the failure-detector numbers translate to detection time (SWIM with Lifeguard, see
:mod:`hearsay.protocol.membership.swim`): each node probes one member every
``probe_interval_ms`` (waiting ``probe_timeout_ms`` for the direct ack before asking
``indirect_checks`` others to try); a crashed member is probed by somebody within about one
period, suspected at the end of that period, and declared dead when the suspicion times out:
``suspicion_mult * max(2, log10(N)) * probe_interval_ms`` once ``indirect_checks`` others
suspect it independently, up to ``suspicion_max_mult`` times that when only one does. The dead
notice reaches every node within a few gossip rounds. For ``lan`` at 1,000 nodes: a 0.5 s
period, a 3 s minimum suspicion (4 s at 10,000; 2 s below 100 nodes), detection in about
4 s; a stalled or slow node has the whole suspicion timeout (up to 12 s) to refute. The
timeouts grow with log10(N), the work and traffic per node do not grow with N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final

SUSPICION_SCALE_MIN: Final = 2.0
"""The log10(N) factor of the suspicion timeout is at least this (as if N were 100): in a small
cluster a few probers confirm each other within a period, and a node stalled for a second must
still have time to refute."""


def suspicion_scale(members: int) -> float:
    """The factor the suspicion timeout grows by with the cluster: ``log10(members)``, at
    least :data:`SUSPICION_SCALE_MIN`."""
    return max(SUSPICION_SCALE_MIN, math.log10(max(members, 1)))


PUSH_PULL_SCALE_THRESHOLD: Final = 32
"""Clusters up to this size push-pull at the base interval (memberlist's
``pushPullScaleThreshold``)."""


@dataclass(frozen=True, slots=True)
class GossipPreset:
    """Timing and size settings for gossip, membership and failure detection.

    All durations are milliseconds of the driver's clock; sizes are bytes.
    """

    name: str
    # --- data gossip (used by the data-dissemination layer, not by membership) ---
    gossip_interval_ms: int
    """How often pending data changes are pushed to ``data_fanout`` random peers."""
    data_fanout: int
    """Peers each data change is pushed to."""
    anti_entropy_interval_ms: int
    """How often a node repairs its data with one random peer."""
    # --- membership ---
    heartbeat_interval_ms: int
    """Membership's housekeeping tick (tag expiry, reaping) runs every half of this. The
    heartbeat counter is a member's SWIM incarnation: raised only to refute a suspicion."""
    membership_sync_interval_ms: int
    """How often a node starts a SYN / ACK / ACK2 exchange."""
    membership_sync_fanout: int
    """Live peers each sync round contacts (plus, sometimes, a seed or a failed peer)."""
    membership_sync_quiet_interval_ms: int
    """The sync interval once the view is quiet (no news of any member's state for twice this
    long): one live peer then, as memberlist's periodic push-pull. While news arrives (a cluster
    forming, members joining, tags changing) syncs run every ``membership_sync_interval_ms``."""
    # --- failure detection (SWIM + Lifeguard) ---
    probe_interval_ms: int
    """How often a node probes one member (round-robin over a shuffled order)."""
    probe_timeout_ms: int
    """How long the direct ack is awaited before ``indirect_checks`` others are asked."""
    indirect_checks: int
    """Members asked to probe a target that did not answer us (PING_REQ); also the number of
    independent suspicions that shorten a suspicion to its minimum."""
    suspicion_mult: float
    """Minimum suspicion timeout: ``suspicion_mult * max(2, log10(N)) * probe_interval_ms``."""
    suspicion_max_mult: float
    """Longest suspicion timeout (only one suspecter), as a multiple of the minimum."""
    retransmit_mult: int
    """A liveness notice is sent ``retransmit_mult * ceil(log10(N + 1))`` times."""
    notice_fanout: int
    """Members each gossip round of queued notices goes to (every ``gossip_interval_ms``)."""
    local_health_max: int
    """Lifeguard's local health score at most; probe periods stretch by ``score + 1``."""
    local_pause_ms: int
    """A gap between two local ticks longer than this is a local pause (our own stall)."""
    local_pause_grace_ms: int
    """After a local pause, no peer is convicted for this long, so fresh heartbeats can arrive."""
    # --- forgetting ---
    dead_node_reap_ms: int
    """A failed or left peer is forgotten (reaped) this long after it was seen failed or left."""
    reaped_memory_ms: int
    """How long a reaped (node, generation) is remembered so stale gossip cannot resurrect it."""
    tag_tombstone_ms: int
    """How long an expired tag is kept (hidden) so its expiry overrides older values everywhere."""
    # --- sizes ---
    udp_payload_bytes_max: int = 1400
    """Largest datagram payload the node sends (envelope included)."""
    # --- push-pull ---
    push_pull_interval_ms: int = 30_000
    """A node exchanges its whole member table with one random member this often, scaled up
    with the cluster (:meth:`push_pull_interval_for`; memberlist's ``PushPullInterval``), and
    with a seed when it joins: views fill by tables, not one member at a time."""

    def __post_init__(self) -> None:
        positive = (
            self.gossip_interval_ms,
            self.data_fanout,
            self.anti_entropy_interval_ms,
            self.heartbeat_interval_ms,
            self.membership_sync_interval_ms,
            self.membership_sync_fanout,
            self.membership_sync_quiet_interval_ms,
            self.probe_interval_ms,
            self.probe_timeout_ms,
            self.indirect_checks,
            self.suspicion_mult,
            self.suspicion_max_mult,
            self.retransmit_mult,
            self.notice_fanout,
            self.local_pause_ms,
            self.dead_node_reap_ms,
            self.reaped_memory_ms,
            self.tag_tombstone_ms,
            self.udp_payload_bytes_max,
            self.push_pull_interval_ms,
        )
        if any(v <= 0 for v in positive):
            raise ValueError(f"preset {self.name!r}: intervals, sizes and counts must be > 0")
        if self.local_pause_grace_ms < 0 or self.local_health_max < 0:
            raise ValueError(f"preset {self.name!r}: pauses and scores must be >= 0")
        if self.probe_timeout_ms >= self.probe_interval_ms:
            raise ValueError(f"preset {self.name!r}: probe_timeout_ms >= probe_interval_ms")
        if self.suspicion_max_mult < 1:
            raise ValueError(f"preset {self.name!r}: suspicion_max_mult < 1")
        if self.reaped_memory_ms < self.dead_node_reap_ms:
            raise ValueError(f"preset {self.name!r}: reaped_memory_ms < dead_node_reap_ms")
        if self.udp_payload_bytes_max < 256:
            raise ValueError(f"preset {self.name!r}: udp_payload_bytes_max < 256")

    def suspicion_max_ms(self, members: int) -> int:
        """The longest a member stays suspect among ``members`` before it is declared dead
        (one suspecter, healthy observer)."""
        scale = suspicion_scale(members)
        return int(self.suspicion_max_mult * self.suspicion_mult * scale * self.probe_interval_ms)

    def push_pull_interval_for(self, members: int) -> int:
        """The push-pull interval at ``members`` nodes: memberlist's ``pushPullScale``
        (1x up to 32 nodes, then one more interval per doubling), so the table traffic per
        node (a table of N members every interval) grows like N / log N, not N."""
        if members <= PUSH_PULL_SCALE_THRESHOLD:
            return self.push_pull_interval_ms
        extra = math.ceil(math.log2(members) - math.log2(PUSH_PULL_SCALE_THRESHOLD))
        return self.push_pull_interval_ms * (extra + 1)

    def with_changes(self, **changes: object) -> GossipPreset:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]


LAN: Final = GossipPreset(
    name="lan",
    gossip_interval_ms=200,  # memberlist LAN GossipInterval
    data_fanout=3,  # memberlist LAN GossipNodes
    anti_entropy_interval_ms=2_000,
    heartbeat_interval_ms=250,
    membership_sync_interval_ms=250,
    membership_sync_fanout=2,
    membership_sync_quiet_interval_ms=2_000,
    probe_interval_ms=500,
    probe_timeout_ms=250,
    indirect_checks=3,  # memberlist's IndirectChecks
    suspicion_mult=2,
    suspicion_max_mult=4,
    retransmit_mult=4,  # memberlist LAN RetransmitMult
    notice_fanout=3,  # memberlist LAN GossipNodes
    local_health_max=8,  # memberlist's AwarenessMaxMultiplier
    local_pause_ms=2_000,
    local_pause_grace_ms=2_000,
    dead_node_reap_ms=5 * 60_000,
    reaped_memory_ms=15 * 60_000,
    tag_tombstone_ms=60 * 60_000,
)

WAN: Final = GossipPreset(
    name="wan",
    gossip_interval_ms=500,  # memberlist WAN GossipInterval
    data_fanout=4,  # memberlist WAN GossipNodes
    anti_entropy_interval_ms=30_000,
    heartbeat_interval_ms=1000,
    membership_sync_interval_ms=1000,
    membership_sync_fanout=3,
    membership_sync_quiet_interval_ms=5_000,
    probe_interval_ms=1_000,
    probe_timeout_ms=600,
    indirect_checks=3,
    suspicion_mult=2.5,
    suspicion_max_mult=4,
    retransmit_mult=4,
    notice_fanout=4,
    local_health_max=8,
    local_pause_ms=5_000,
    local_pause_grace_ms=5_000,
    dead_node_reap_ms=15 * 60_000,
    reaped_memory_ms=45 * 60_000,
    tag_tombstone_ms=2 * 60 * 60_000,
    push_pull_interval_ms=60_000,  # memberlist WAN PushPullInterval
)

LOCAL: Final = GossipPreset(
    name="local",
    gossip_interval_ms=100,  # memberlist Local GossipInterval
    data_fanout=3,
    anti_entropy_interval_ms=2_000,
    heartbeat_interval_ms=200,
    membership_sync_interval_ms=200,
    membership_sync_fanout=2,
    membership_sync_quiet_interval_ms=1_000,
    probe_interval_ms=300,
    probe_timeout_ms=150,
    indirect_checks=3,
    suspicion_mult=1.5,
    suspicion_max_mult=4,
    retransmit_mult=3,
    notice_fanout=3,
    local_health_max=8,
    local_pause_ms=1_000,
    local_pause_grace_ms=1_000,
    dead_node_reap_ms=30_000,
    reaped_memory_ms=90_000,
    tag_tombstone_ms=5 * 60_000,
    push_pull_interval_ms=15_000,  # memberlist Local PushPullInterval
)

PRESETS: Final[dict[str, GossipPreset]] = {"lan": LAN, "wan": WAN, "local": LOCAL}
DEFAULT_PRESET: Final = LAN


def preset_by_name(name: str) -> GossipPreset:
    """The preset called ``name`` (``lan``, ``wan`` or ``local``); ``KeyError`` otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown gossip preset {name!r}; known: {sorted(PRESETS)}") from None
