"""Per-node clocks on the one virtual timeline: offset, drift and steps.

Why this module exists: real nodes never share one exact clock, and expiry, DEL epochs and the
failure detector all read the local clock. The simulator keeps one virtual time (``sim_ms``,
which orders every event) and gives each node its own reading of it, so a skewed, drifting or
stepped-back clock is one more fault the checkers must survive.
"""

from __future__ import annotations

from typing import Final

BASE_UNIX_MS: Final = 1_700_000_000_000
"""Virtual time 0 (the nodes see unix milliseconds, as in production)."""
_PPM: Final = 1_000_000


class NodeClock:
    """One node's clock: ``BASE_UNIX_MS + sim_ms + offset_ms + sim_ms * drift_ppm / 1e6``.

    A step (``step(delta_ms)``) moves the offset, so a negative step makes the clock go back;
    between steps the clock never goes back (the drift is above -100%).
    """

    __slots__ = ("drift_ppm", "offset_ms")

    def __init__(self, offset_ms: int = 0, drift_ppm: int = 0) -> None:
        self.offset_ms = offset_ms
        self.drift_ppm = drift_ppm

    def now_ms(self, sim_ms: int) -> int:
        """What the node reads at virtual time ``sim_ms``."""
        return BASE_UNIX_MS + sim_ms + self.offset_ms + sim_ms * self.drift_ppm // _PPM

    def step(self, delta_ms: int) -> None:
        self.offset_ms += delta_ms

    def sim_at(self, node_ms: int, sim_now_ms: int) -> int:
        """The first virtual time, not before ``sim_now_ms``, at which this clock reads at
        least ``node_ms`` (when a timer the node set on its own clock is due)."""
        behind_ms = node_ms - self.now_ms(sim_now_ms)
        if behind_ms <= 0:
            return sim_now_ms
        if not self.drift_ppm:
            return sim_now_ms + behind_ms
        at = sim_now_ms + behind_ms * _PPM // (_PPM + self.drift_ppm)
        # the integer rounding leaves ``at`` within a millisecond or two of the answer
        for _ in range(8):
            if self.now_ms(at) >= node_ms:
                break
            at += 1
        for _ in range(8):
            if at <= sim_now_ms or self.now_ms(at - 1) < node_ms:
                break
            at -= 1
        return at
