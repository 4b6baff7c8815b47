"""Local-pause suppression: a node that stalled accuses nobody until it has caught up.

Why this module exists: if the driver's own loop stalls (a GC pause, a suspended VM, an
overloaded host), the probe in flight times out and suspicions run out while it is not
looking, although the silence is ours. :class:`PauseGuard` implements the rule: when the gap
between two consecutive calls exceeds ``pause_threshold_ms``, the node starts no suspicion of
its own and convicts nobody until ``grace_ms`` after the call that noticed the pause, giving
acks and refutations queued meanwhile time to arrive. Lifeguard's local health
(:class:`~hearsay.protocol.membership.swim.LocalHealth`) covers the slow, not stalled, node.
(The phi accrual detector that lived here was replaced by SWIM's probes: it needed every
node's heartbeat at every node, a cost that grew with the cluster.)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PauseGuard"]


@dataclass(slots=True)
class PauseGuard:
    """Detects stalls of the local loop and suppresses our own accusations right after one."""

    pause_threshold_ms: int
    grace_ms: int
    last_tick_ms: int | None = None
    suppress_until_ms: int | None = None
    pauses_detected: int = 0

    def tick(self, now_ms: int) -> bool:
        """Record a tick; True if the gap since the previous tick was a local pause."""
        last = self.last_tick_ms
        paused = last is not None and now_ms - last > self.pause_threshold_ms
        if paused:
            self.suppress_until_ms = now_ms + self.grace_ms
            self.pauses_detected += 1
        if last is None or now_ms > last:
            self.last_tick_ms = now_ms
        return paused

    def suppressing(self, now_ms: int) -> bool:
        """True while our accusations must wait for fresh news after a local pause."""
        return self.suppress_until_ms is not None and now_ms < self.suppress_until_ms
