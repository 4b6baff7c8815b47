"""The runtime's clocks: the only place hearsay reads time (the core takes it as arguments)."""

from __future__ import annotations

import time


def unix_ms() -> int:
    """Wall-clock unix milliseconds: expiry deadlines and presence stamps are absolute."""
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    """Monotonic milliseconds: intervals and timers, immune to wall-clock steps."""
    return time.monotonic_ns() // 1_000_000
