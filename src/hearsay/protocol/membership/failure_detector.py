"""Phi accrual failure detection on heartbeat arrivals, plus local-pause suppression.

Why this module exists: a fixed timeout is either slow or jumpy. The phi accrual detector
(Hayashibara et al., as used by akka and Cassandra) learns each peer's heartbeat rhythm and
reports a suspicion level ``phi = -log10(P(a heartbeat arrives later than now))``; the caller
convicts at a threshold (8 by default: about a one-in-10^8 chance of a false conviction if the
rhythm were exactly normal).

Details (our own code, after reading akka's PhiAccrualFailureDetector, chitchat's
failure_detector.rs and Cassandra's FailureDetector.java):

- Inter-arrival intervals (integer milliseconds) are kept in a bounded window; the sum and the
  sum of squares are updated incrementally on insert and eviction, never re-summed. Integer
  sums keep the running mean and variance exact however long the detector lives.
- The first heartbeat seeds the window with two samples ``estimate +- estimate / 4`` (akka's
  bootstrap), so phi is meaningful before any interval was measured.
- Intervals longer than ``max_interval_ms`` are not learned (chitchat, Cassandra): a peer that
  was away for a minute has no one-minute rhythm.
- phi uses the mean plus ``acceptable_pause_ms`` and ``max(std_dev, min_std_dev_ms)`` with the
  logistic approximation of the normal CDF (akka), computed in log space so it never overflows
  and keeps growing with silence instead of saturating.

Local pauses: if the driver's own loop stalls (a GC pause, a suspended VM, an overloaded host),
every peer looks silent when it resumes, although the silence is ours. :class:`PauseGuard`
implements the rule: when the gap between two consecutive ``tick(now_ms)`` calls exceeds
``pause_threshold_ms``, no peer may be convicted until ``grace_ms`` after the tick that noticed
the pause, giving fresh heartbeats time to arrive; and an inter-arrival interval that spans the
pause is not learned (the gap was ours, not the peer's). A peer that is still silent after the
grace is convicted as usual.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["HeartbeatWindow", "PauseGuard", "PhiAccrualDetector", "phi_value"]

_LN10 = math.log(10.0)


def phi_value(elapsed_ms: float, mean_ms: float, std_dev_ms: float) -> float:
    """phi for a silence of ``elapsed_ms`` under a normal model (logistic approximation).

    ``phi = -log10(1 - F(elapsed))`` with ``F`` approximated as ``1 / (1 + exp(-a))``,
    ``a = y * (1.5976 + 0.070566 * y^2)`` and ``y = (elapsed - mean) / std_dev``. Then
    ``phi = log10(1 + exp(a))``, evaluated as a stable softplus.
    """
    if std_dev_ms <= 0:
        raise ValueError("std_dev_ms must be > 0")
    y = (elapsed_ms - mean_ms) / std_dev_ms
    a = y * (1.5976 + 0.070566 * y * y)
    softplus = a + math.log1p(math.exp(-a)) if a > 0 else math.log1p(math.exp(a))
    return softplus / _LN10


class HeartbeatWindow:
    """A bounded window of integer intervals with O(1) running mean and variance."""

    __slots__ = ("_intervals", "_sum", "_sum_sq")

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError("window size must be >= 2")
        self._intervals: deque[int] = deque(maxlen=size)
        self._sum = 0
        self._sum_sq = 0

    @property
    def size(self) -> int:
        """The most samples the window keeps."""
        maxlen = self._intervals.maxlen
        assert maxlen is not None
        return maxlen

    def __len__(self) -> int:
        return len(self._intervals)

    def add(self, interval_ms: int) -> None:
        """Record one interval, evicting the oldest one when the window is full."""
        if interval_ms < 0:
            raise ValueError("interval_ms must be >= 0")
        if len(self._intervals) == self.size:
            old = self._intervals[0]
            self._sum -= old
            self._sum_sq -= old * old
        self._intervals.append(interval_ms)
        self._sum += interval_ms
        self._sum_sq += interval_ms * interval_ms

    @property
    def mean_ms(self) -> float:
        n = len(self._intervals)
        return self._sum / n if n else 0.0

    @property
    def variance_ms2(self) -> float:
        """Population variance of the window (exact: computed from integer sums)."""
        n = len(self._intervals)
        if n == 0:
            return 0.0
        return max(0, n * self._sum_sq - self._sum * self._sum) / (n * n)

    @property
    def std_dev_ms(self) -> float:
        return math.sqrt(self.variance_ms2)


class PhiAccrualDetector:
    """Suspicion level of one peer from the arrival times of its heartbeats."""

    __slots__ = (
        "_acceptable_pause_ms",
        "_first_estimate_ms",
        "_last_ms",
        "_max_interval_ms",
        "_min_std_dev_ms",
        "_window",
    )

    def __init__(
        self,
        *,
        window_size: int,
        min_std_dev_ms: int,
        acceptable_pause_ms: int,
        first_heartbeat_estimate_ms: int,
        max_interval_ms: int | None = None,
    ) -> None:
        if min_std_dev_ms <= 0 or first_heartbeat_estimate_ms <= 0 or acceptable_pause_ms < 0:
            raise ValueError("min std-dev and first estimate must be > 0, pause >= 0")
        self._window = HeartbeatWindow(window_size)
        self._min_std_dev_ms = min_std_dev_ms
        self._acceptable_pause_ms = acceptable_pause_ms
        self._first_estimate_ms = first_heartbeat_estimate_ms
        self._max_interval_ms = max_interval_ms
        self._last_ms: int | None = None

    @property
    def last_heartbeat_ms(self) -> int | None:
        """When the latest heartbeat arrived (None before the first)."""
        return self._last_ms

    @property
    def sample_count(self) -> int:
        return len(self._window)

    @property
    def mean_ms(self) -> float:
        return self._window.mean_ms

    @property
    def std_dev_ms(self) -> float:
        return self._window.std_dev_ms

    def heartbeat(self, now_ms: int, *, learn_interval: bool = True) -> None:
        """A heartbeat arrived at ``now_ms``.

        ``learn_interval=False`` restarts the silence clock without learning the interval
        (used when the interval spans our own pause).
        """
        last = self._last_ms
        if last is None:
            estimate = self._first_estimate_ms
            spread = estimate // 4
            self._window.add(estimate - spread)
            self._window.add(estimate + spread)
        elif learn_interval:
            interval = now_ms - last
            if interval >= 0 and (
                self._max_interval_ms is None or interval <= self._max_interval_ms
            ):
                self._window.add(interval)
        if last is None or now_ms > last:
            self._last_ms = now_ms

    def phi(self, now_ms: int) -> float:
        """Suspicion level at ``now_ms`` (0.0 before the first heartbeat)."""
        last = self._last_ms
        if last is None:
            return 0.0
        elapsed = max(0, now_ms - last)
        mean = self._window.mean_ms + self._acceptable_pause_ms
        std = max(self._window.std_dev_ms, float(self._min_std_dev_ms))
        return phi_value(elapsed, mean, std)

    def is_available(self, now_ms: int, threshold: float) -> bool:
        """True while ``phi(now_ms) < threshold``."""
        return self.phi(now_ms) < threshold


@dataclass(slots=True)
class PauseGuard:
    """Detects stalls of the local loop and suppresses convictions right after one."""

    pause_threshold_ms: int
    grace_ms: int
    last_tick_ms: int | None = None
    pause_started_ms: int | None = None
    """The last tick before the most recent pause."""
    suppress_until_ms: int | None = None
    pauses_detected: int = 0

    def tick(self, now_ms: int) -> bool:
        """Record a tick; True if the gap since the previous tick was a local pause."""
        last = self.last_tick_ms
        paused = last is not None and now_ms - last > self.pause_threshold_ms
        if paused:
            assert last is not None
            self.pause_started_ms = last
            self.suppress_until_ms = now_ms + self.grace_ms
            self.pauses_detected += 1
        if last is None or now_ms > last:
            self.last_tick_ms = now_ms
        return paused

    def suppressing(self, now_ms: int) -> bool:
        """True while convictions must wait for fresh heartbeats after a local pause."""
        return self.suppress_until_ms is not None and now_ms < self.suppress_until_ms

    def spans_pause(self, since_ms: int | None) -> bool:
        """True if an interval that started at ``since_ms`` and ends now contains the pause."""
        return (
            since_ms is not None
            and self.pause_started_ms is not None
            and since_ms <= self.pause_started_ms
        )
