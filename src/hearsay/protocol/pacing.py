"""Flow control for outgoing gossip: a token bucket with AIMD rate control.

Why this module exists: a burst of client writes must not turn into a flood of datagrams
(the scuttlebutt paper's flow-control section; grapevine's missing "congestion throttling").
Rumour datagrams spend one token each; tokens refill at ``rate_per_s`` up to ``burst``. When
the bucket is empty the node keeps the deltas in a per-key queue, where later deltas of the
same key merge into earlier ones, so a hot key costs one datagram per flush however often it
is written. A peer that reports overload (``BACKOFF``) halves the rate (multiplicative
decrease); every second without a report adds ``increase_per_s`` back, up to the configured
rate (additive increase).

A message that needs more tokens than the burst holds (a big vector split into many
datagrams) could never be paid for at once; it is sent when the bucket is full and the rest of
its cost becomes debt (negative tokens) that later messages wait out, so the average rate still
holds and the message is not re-encoded round after round for ever.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate_max_per_s: float
    burst: float
    rate_min_per_s: float = 10.0
    increase_per_s: float = 50.0
    tokens: float = -1.0
    rate_per_s: float = -1.0
    last_ms: int | None = None
    last_backoff_ms: int | None = None

    def __post_init__(self) -> None:
        if self.rate_max_per_s <= 0 or self.burst < 1:
            raise ValueError("pacing needs a positive rate and a burst of at least 1")
        if self.tokens < 0:
            self.tokens = self.burst
        if self.rate_per_s < 0:
            self.rate_per_s = self.rate_max_per_s

    def _refill(self, now_ms: int) -> None:
        last = self.last_ms
        if last is not None and now_ms > last:
            elapsed_s = (now_ms - last) / 1000.0
            self.tokens = min(self.burst, self.tokens + elapsed_s * self.rate_per_s)
            if self.rate_per_s < self.rate_max_per_s and (
                self.last_backoff_ms is None or now_ms - self.last_backoff_ms >= 1000
            ):
                self.rate_per_s = min(
                    self.rate_max_per_s, self.rate_per_s + elapsed_s * self.increase_per_s
                )
        if last is None or now_ms > last:
            self.last_ms = now_ms

    def take(self, now_ms: int, count: int = 1, *, debt: bool = True) -> bool:
        """Spend ``count`` tokens if available (more than the burst: once the bucket is full,
        going into debt for the rest, unless ``debt`` is False)."""
        self._refill(now_ms)
        if self.tokens >= (min(count, self.burst) if debt else count):
            self.tokens -= count
            return True
        return False

    def backoff(self, now_ms: int) -> None:
        """A peer is overloaded: halve the rate (not below ``rate_min_per_s``)."""
        self._refill(now_ms)
        self.rate_per_s = max(self.rate_min_per_s, self.rate_per_s / 2)
        self.last_backoff_ms = now_ms
