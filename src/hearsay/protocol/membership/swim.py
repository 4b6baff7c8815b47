"""SWIM's parts: the broadcast queue, Lifeguard's suspicion timeouts and local health.

Why this module exists: failure detection whose cost per node does not grow with the cluster.
Each node probes one member per probe period (round-robin over a shuffled order; indirect
probes through a few others when the direct one goes unanswered), suspects it when nobody got
an answer, and tells the others in *notices* piggybacked on its probes and sent in small
gossip rounds. A suspected member that hears of it refutes by raising its incarnation; one
still suspected when its suspicion times out is declared dead. The facade drives this; the
pieces that hold state of their own live here:

- :class:`BroadcastQueue`: the notices waiting to be sent, each sent at most
  ``retransmit_mult * ceil(log10(N + 1))`` times, the least-sent first, one per member (a newer
  notice about a member replaces the older one), bounded in count;
- :func:`suspicion_timeout_ms`: Lifeguard's timeout, from ``suspicion_max_mult`` times the
  minimum down to the minimum ``suspicion_mult * max(2, log10(N)) * probe_interval_ms`` as
  independent confirmations arrive;
- :class:`LocalHealth`: Lifeguard's awareness, a score raised by missed acks and by having to
  refute a suspicion about ourselves, lowered by answered probes; probe periods and timeouts
  stretch by ``score + 1``, so a slow node stops accusing healthy ones.

The ideas follow the SWIM paper (Das, Gupta, Motivala 2002) and Lifeguard (Dadgar et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from hearsay.protocol.membership.wire import Notice, notice_bytes
from hearsay.protocol.presets import suspicion_scale

__all__ = [
    "BROADCASTS_MAX",
    "BroadcastQueue",
    "LocalHealth",
    "Suspicion",
    "retransmit_limit",
    "suspicion_timeout_ms",
]

BROADCASTS_MAX: Final = 4096
"""Notices queued at most: beyond it the most-sent one is dropped (a storm of news cannot grow
the queue without bound)."""


def retransmit_limit(retransmit_mult: int, members: int) -> int:
    """How many times one notice is sent: ``retransmit_mult * ceil(log10(members + 1))``."""
    return retransmit_mult * max(1, math.ceil(math.log10(members + 1)))


def suspicion_timeout_ms(
    *,
    members: int,
    probe_interval_ms: int,
    suspicion_mult: float,
    suspicion_max_mult: float,
    confirmations: int,
    expected_confirmations: int,
) -> int:
    """Lifeguard's suspicion timeout after ``confirmations`` independent suspicions.

    It starts at ``suspicion_max_mult`` times the minimum and falls on a log scale to the
    minimum as confirmations reach ``expected_confirmations``: a member many others suspect
    independently is declared dead sooner, one only we suspect gets the longest time to refute.
    """
    min_ms = suspicion_mult * suspicion_scale(members) * probe_interval_ms
    max_ms = suspicion_max_mult * min_ms
    if expected_confirmations < 1:
        return int(min_ms)
    frac = math.log(confirmations + 1) / math.log(expected_confirmations + 1)
    return int(max(min_ms, max_ms - (max_ms - min_ms) * frac))


@dataclass(slots=True)
class Suspicion:
    """A member we hold suspect: when, at which incarnation, who else suspects it."""

    incarnation: int
    started_ms: int
    deadline_ms: int
    suspecters: set[str] = field(default_factory=set)
    """Who suspects it independently (we may be one): each beyond the first is a confirmation
    that shortens the timeout."""


@dataclass(slots=True)
class LocalHealth:
    """Lifeguard's local health multiplier: 0 is healthy, ``max_score`` the slowest."""

    max_score: int
    score: int = 0

    def worse(self) -> None:
        self.score = min(self.max_score, self.score + 1)

    def better(self) -> None:
        self.score = max(0, self.score - 1)

    def scale(self, duration_ms: int) -> int:
        return duration_ms * (self.score + 1)


class BroadcastQueue:
    """Notices to piggyback, one per member, each sent a limited number of times.

    Kept in buckets by how often each was sent, so taking the least-sent ones costs the number
    taken, not the queue's length.
    """

    def __init__(self) -> None:
        self._buckets: list[dict[str, Notice]] = []
        self._sent: dict[str, int] = {}
        """node id -> the bucket (times sent) its notice is in."""

    def __len__(self) -> int:
        return len(self._sent)

    def push(self, notice: Notice) -> None:
        """Queue ``notice``, replacing (and resetting the count of) any about the same node."""
        old = self._sent.pop(notice.node_id, None)
        if old is not None:
            del self._buckets[old][notice.node_id]
        if not self._buckets:
            self._buckets.append({})
        self._buckets[0][notice.node_id] = notice
        self._sent[notice.node_id] = 0
        if len(self._sent) > BROADCASTS_MAX:
            self._drop_most_sent()

    def _drop_most_sent(self) -> None:
        for bucket in reversed(self._buckets):
            if bucket:
                node_id = next(iter(bucket))
                del bucket[node_id]
                del self._sent[node_id]
                return

    def take(self, budget_bytes: int, limit: int) -> list[Notice]:
        """The least-sent notices that fit ``budget_bytes``; each counts as sent once more and
        is dropped once sent ``limit`` times."""
        out: list[Notice] = []
        moved: list[tuple[Notice, int]] = []
        left = budget_bytes
        for times, bucket in enumerate(self._buckets):
            if left <= 0:
                break
            if not bucket:  # (most are: one per send count up to the limit)
                continue
            for node_id, notice in list(bucket.items()):
                size = notice_bytes(notice)
                if size > left:
                    left = 0
                    break
                left -= size
                out.append(notice)
                del bucket[node_id]
                moved.append((notice, times + 1))
        for notice, times in moved:
            if times >= limit:
                del self._sent[notice.node_id]
                continue
            while len(self._buckets) <= times:
                self._buckets.append({})
            self._buckets[times][notice.node_id] = notice
            self._sent[notice.node_id] = times
        return out

    def pending(self, node_id: str) -> Notice | None:
        """The queued notice about ``node_id``, if any (tests, diagnostics)."""
        times = self._sent.get(node_id)
        return None if times is None else self._buckets[times][node_id]
