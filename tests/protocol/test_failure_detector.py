"""The local-pause guard, in virtual time (SWIM's own parts: tests/protocol/test_swim.py)."""

from __future__ import annotations

from hearsay.protocol.membership.failure_detector import PauseGuard


def test_pause_guard_suppresses_only_after_a_stall() -> None:
    g = PauseGuard(pause_threshold_ms=2000, grace_ms=1500)
    now = 0
    for _ in range(100):
        assert not g.tick(now)
        assert not g.suppressing(now)
        now += 100
    now += 5000  # the loop stalled for five seconds
    assert g.tick(now)
    assert g.pauses_detected == 1
    assert g.suppressing(now)
    assert g.suppressing(now + 1499)
    assert not g.suppressing(now + 1500)
