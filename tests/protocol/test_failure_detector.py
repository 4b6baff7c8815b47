"""Phi accrual failure detector and local-pause guard, in virtual time with fixed seeds."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from hearsay.protocol.membership.failure_detector import (
    HeartbeatWindow,
    PauseGuard,
    PhiAccrualDetector,
    phi_value,
)
from hearsay.protocol.presets import LAN, LOCAL, WAN, GossipPreset


def detector(
    *,
    window_size: int = 1000,
    min_std_dev_ms: int = 100,
    acceptable_pause_ms: int = 0,
    first_heartbeat_estimate_ms: int = 1000,
    max_interval_ms: int | None = None,
) -> PhiAccrualDetector:
    return PhiAccrualDetector(
        window_size=window_size,
        min_std_dev_ms=min_std_dev_ms,
        acceptable_pause_ms=acceptable_pause_ms,
        first_heartbeat_estimate_ms=first_heartbeat_estimate_ms,
        max_interval_ms=max_interval_ms,
    )


def feed_regular(d: PhiAccrualDetector, start_ms: int, interval_ms: int, count: int) -> int:
    now = start_ms
    for _ in range(count):
        d.heartbeat(now)
        now += interval_ms
    return now - interval_ms


def test_phi_value_shape() -> None:
    # at the mean the logistic CDF is 1/2: phi = log10(2)
    assert phi_value(1000, 1000, 100) == pytest.approx(math.log10(2))
    values = [phi_value(t, 1000, 100) for t in range(0, 5000, 50)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert values[0] < 1e-6
    # far in the tail phi keeps growing instead of overflowing or saturating
    huge = phi_value(10**9, 1000, 100)
    assert math.isfinite(huge) and huge > phi_value(10**6, 1000, 100) > 1000
    with pytest.raises(ValueError):
        phi_value(1, 1, 0)


def test_phi_grows_with_silence() -> None:
    d = detector()
    last = feed_regular(d, 0, 1000, 50)
    phis = [d.phi(last + dt) for dt in range(0, 10_000, 100)]
    assert all(b >= a for a, b in itertools.pairwise(phis))
    assert phis[0] < 0.01
    assert d.is_available(last + 1000, 8.0)
    assert not d.is_available(last + 3000, 8.0)
    assert d.phi(last + 9_900) > 100


def test_phi_stays_low_with_regular_heartbeats() -> None:
    d = detector(acceptable_pause_ms=500)
    now = 0
    worst = 0.0
    for _ in range(2000):
        d.heartbeat(now)
        now += 500
        worst = max(worst, d.phi(now))  # just before the next heartbeat
    assert worst < 1.0
    assert d.mean_ms == pytest.approx(500, abs=1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jitter_is_tolerated_and_silence_still_detected(seed: int) -> None:
    rng = random.Random(seed)
    d = detector(min_std_dev_ms=50, acceptable_pause_ms=300)
    now = 0
    worst = 0.0
    for _ in range(3000):
        d.heartbeat(now)
        gap = max(1, int(rng.gauss(500, 100)))
        worst = max(worst, d.phi(now + gap))  # phi right before the next arrival
        now += gap
    assert worst < 8.0, f"seed={seed}: worst phi {worst}"
    assert d.std_dev_ms == pytest.approx(100, rel=0.2), f"seed={seed}"
    # a real silence is still convicted within a few intervals
    last = now
    d.heartbeat(last)
    convicted_at = next(t for t in range(last, last + 10_000, 10) if d.phi(t) >= 8.0)
    assert convicted_at - last < 2_000, f"seed={seed}"


def test_window_is_bounded_and_running_stats_are_exact() -> None:
    rng = random.Random(7)
    w = HeartbeatWindow(100)
    values = [rng.randint(0, 5000) for _ in range(5000)]
    for v in values:
        w.add(v)
    assert len(w) == 100 == w.size
    tail = values[-100:]
    assert w.mean_ms == pytest.approx(statistics.fmean(tail))
    assert w.variance_ms2 == pytest.approx(statistics.pvariance(tail))
    with pytest.raises(ValueError):
        w.add(-1)
    with pytest.raises(ValueError):
        HeartbeatWindow(1)


def test_detector_window_forgets_old_rhythm() -> None:
    d = detector(window_size=50)
    last = feed_regular(d, 0, 100, 200)
    assert d.sample_count == 50
    feed_regular(d, last + 1000, 1000, 60)
    assert d.mean_ms == pytest.approx(1000)


def test_first_heartbeat_estimate_bootstraps() -> None:
    d = detector(first_heartbeat_estimate_ms=1000, min_std_dev_ms=100)
    assert d.phi(12345) == 0.0  # nothing known yet
    d.heartbeat(0)
    assert d.sample_count == 2
    assert d.mean_ms == 1000
    assert d.std_dev_ms == 250  # estimate / 4
    assert d.phi(1000) == pytest.approx(math.log10(2))
    assert d.phi(500) < 0.5
    assert d.phi(3000) > 8.0


def test_min_std_dev_keeps_phi_finite_and_smooth() -> None:
    d = detector(min_std_dev_ms=200, first_heartbeat_estimate_ms=1000)
    last = feed_regular(d, 0, 1000, 1000)  # std of the window ~0 after the bootstrap samples
    assert d.std_dev_ms < 50
    assert d.phi(last + 1100) < 1.0  # 100 ms late is not alarming with a 200 ms floor
    assert math.isfinite(d.phi(last + 100_000))


def test_long_intervals_are_not_learned() -> None:
    d = detector(max_interval_ms=5_000)
    last = feed_regular(d, 0, 1000, 100)
    mean = d.mean_ms
    d.heartbeat(last + 60_000)  # back after a minute away
    assert d.mean_ms == mean
    assert d.last_heartbeat_ms == last + 60_000
    assert d.phi(last + 60_000 + 1000) < 1.0


def test_interval_spanning_a_pause_can_be_skipped() -> None:
    d = detector()
    last = feed_regular(d, 0, 1000, 10)
    count = d.sample_count
    d.heartbeat(last + 4000, learn_interval=False)
    assert d.sample_count == count
    assert d.last_heartbeat_ms == last + 4000


def test_clock_going_backwards_is_harmless() -> None:
    d = detector()
    d.heartbeat(10_000)
    d.heartbeat(9_000)
    assert d.last_heartbeat_ms == 10_000
    assert d.phi(5_000) == d.phi(10_000)


def test_pause_guard_suppresses_only_after_a_stall() -> None:
    g = PauseGuard(pause_threshold_ms=2000, grace_ms=1500)
    now = 0
    for _ in range(100):
        assert not g.tick(now)
        assert not g.suppressing(now)
        now += 100
    before = now - 100
    now += 5000  # the loop stalled for five seconds
    assert g.tick(now)
    assert g.pauses_detected == 1
    assert g.suppressing(now)
    assert g.suppressing(now + 1499)
    assert not g.suppressing(now + 1500)
    # an interval that started before the stall spans it; one that started after does not
    assert g.spans_pause(before)
    assert g.spans_pause(before - 700)
    assert not g.spans_pause(now)
    assert not g.spans_pause(None)


@pytest.mark.parametrize("preset", [LOCAL, LAN, WAN])
def test_preset_detection_time_budget(preset: GossipPreset) -> None:
    """With heartbeats at the preset's interval, a silence is convicted in bounded time and a
    silence as long as the acceptable pause is not."""
    d = PhiAccrualDetector(
        window_size=preset.phi_window_size,
        min_std_dev_ms=preset.phi_min_std_dev_ms,
        acceptable_pause_ms=preset.phi_acceptable_pause_ms,
        first_heartbeat_estimate_ms=preset.phi_first_heartbeat_estimate_ms,
        max_interval_ms=preset.phi_max_interval_ms,
    )
    rng = random.Random(3)
    now = 0
    for _ in range(500):
        d.heartbeat(now)
        now += preset.heartbeat_interval_ms + rng.randint(-50, 50)
    last = d.last_heartbeat_ms
    assert last is not None
    quiet = last + preset.heartbeat_interval_ms + preset.phi_acceptable_pause_ms
    assert d.phi(quiet) < preset.phi_suspect
    conviction = next(t for t in range(last, last + preset.dead_timeout_ms, 10) if d.phi(t) >= 8.0)
    assert conviction - last < preset.suspect_timeout_ms
