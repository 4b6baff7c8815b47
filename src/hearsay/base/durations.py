"""Power-of-two duration buckets: a histogram cheap enough for every command and every commit.

One record costs an ``int.bit_length`` and two increments (no search over bounds, no lock); the
metrics collector turns the counts into a Prometheus histogram at scrape time. The request path
(:mod:`hearsay.runtime.command_stats`) and the storage writer thread
(:mod:`hearsay.persist.group_commit`) share these buckets, so every latency histogram a node
exports has the same bounds.
"""

from __future__ import annotations

from typing import Final

BUCKETS: Final = 22
"""Bucket ``i < 21`` holds calls that took less than ``1024 * 2**i`` ns (1.02 µs up to 1.07 s);
bucket 21 holds the slower ones (+Inf)."""
BUCKET_BOUNDS_S: Final = tuple(1024 * 2**i / 1e9 for i in range(BUCKETS - 1))
"""The upper bound of each bucket but the last (+Inf), in seconds."""


def bucket_of(elapsed_ns: int) -> int:
    """The bucket of a duration: its power of two above 1024 ns, capped at +Inf's."""
    bucket = (elapsed_ns >> 10).bit_length()
    return bucket if bucket < BUCKETS else BUCKETS - 1


class Durations:
    """Counts per bucket and the total of one kind of duration (a histogram without locks)."""

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.sum_ns = 0

    def record(self, elapsed_ns: int) -> None:
        self.counts[bucket_of(elapsed_ns)] += 1
        self.sum_ns += elapsed_ns
