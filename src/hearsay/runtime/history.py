"""What the dashboard charts and /metrics read that must be gathered over time, not per scrape.

- :class:`History`: a bounded ring of samples (every :data:`SAMPLE_INTERVAL_S`, the last
  :data:`HISTORY_SAMPLES`: ten minutes), served as JSON at ``/history``; rates are differences
  of the node's own counters between two samples.
- :class:`KeyCensus`: keys and bytes per type, counted a bounded number of keys per step (a
  scrape never walks a million keys while the event loop waits); the totals are those of the
  last complete pass.
- :class:`LagProbe`: replication lag, measured (see its docstring).

Time is an argument everywhere (``now_s``, monotonic seconds; ``now_ms`` for the gossip core):
the runtime's sampler task (:mod:`hearsay.runtime.metrics`) reads the clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from hearsay.engine.replica import Replica

SAMPLE_INTERVAL_S: Final = 2.0
HISTORY_SAMPLES: Final = 300
"""Ten minutes at one sample every two seconds."""
CENSUS_KEYS_PER_STEP: Final = 5_000
"""At most about this many keys examined per census step (whole buckets)."""
PROBE_GIVE_UP_S: Final = 60.0
"""A probe not acknowledged by every alive peer in this long is abandoned (its age was the
lag reported meanwhile); the next write starts a new one."""


@dataclass(slots=True)
class Sample:
    """One point of the dashboard's charts."""

    unix_ms: int
    writes_per_s: float
    reads_per_s: float
    keys: int
    replication_lag_s: float
    members_alive: int
    datagrams_in_per_s: float
    datagrams_out_per_s: float


class History:
    """The last :data:`HISTORY_SAMPLES` samples, oldest first."""

    def __init__(self, capacity: int = HISTORY_SAMPLES) -> None:
        self._samples: deque[Sample] = deque(maxlen=capacity)
        self._last_counts: dict[str, int] | None = None
        self._last_s = 0.0

    def rates(self, counts: dict[str, int], now_s: float) -> dict[str, float]:
        """Per-second rates of ``counts`` (cumulative counters) since the previous call
        (zeros the first time)."""
        last, elapsed_s = self._last_counts, now_s - self._last_s
        self._last_counts, self._last_s = dict(counts), now_s
        if last is None or elapsed_s <= 0:
            return dict.fromkeys(counts, 0.0)
        return {name: max(0, n - last.get(name, 0)) / elapsed_s for name, n in counts.items()}

    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)

    def as_json(self) -> dict[str, Any]:
        fields = Sample.__slots__
        return {
            "interval_s": SAMPLE_INTERVAL_S,
            "fields": list(fields),
            "samples": [[getattr(sample, name) for name in fields] for sample in self._samples],
        }

    def __len__(self) -> int:
        return len(self._samples)


class KeyCensus:
    """Live keys and their in-memory bytes (MEMORY USAGE's estimate) per sketch kind (``hll``,
    ``bloom``...: finer than TYPE, which says ``string`` for a HyperLogLog as Redis does)."""

    def __init__(self, replica: Replica) -> None:
        self._replica = replica
        self._bucket = 0
        self._counting: dict[str, list[int]] = {}
        self.totals: dict[str, tuple[int, int]] = {}
        """Type -> (keys, bytes), from the last complete pass."""
        self.passes = 0

    def step(self, keys_max: int = CENSUS_KEYS_PER_STEP) -> None:
        """Count the next buckets, at least one and about ``keys_max`` keys."""
        keyspace = self._replica.keyspace
        buckets = keyspace.bucket_count
        seen = 0
        while seen < keys_max:  # bounded: at most one full pass of the buckets
            for key, entry in keyspace.bucket_items(self._bucket):
                seen += 1
                if entry.schema is None:  # a tombstone
                    continue
                counts = self._counting.setdefault(entry.schema.kind, [0, 0])
                counts[0] += 1
                counts[1] += len(key) + entry.memory_bytes()
            self._bucket += 1
            if self._bucket >= buckets:
                self.totals = {name: (c[0], c[1]) for name, c in self._counting.items()}
                self._counting = {}
                self._bucket = 0
                self.passes += 1
                return


class LagProbe:
    """Replication lag: how long a local write takes to be held by every alive peer.

    At most one probe is in flight: the latest local write seen when the previous probe ended.
    It asks every alive peer to acknowledge holding that write, as ``WAIT <alive peers> 0``
    would (one extra ask per probe; peers its rumour reached acknowledge it anyway), and the
    lag is the time from when the probe saw the write until they all did (a peer that fails
    meanwhile no longer counts). Resolution: the step interval (a write already held
    everywhere when seen counts 0). While a probe is unanswered the lag reported is its age,
    so a stalled or partitioned peer shows as a growing lag, not as the last good figure.
    Without writes or peers there is nothing to measure: the last figure stays (0 at first).
    """

    def __init__(self, replica: Replica) -> None:
        self._replica = replica
        self._seq = 0
        self._last_seen_seq = 0
        self._peers = 0
        self._started_s = 0.0
        self.last_s = 0.0
        """The last measured lag (seconds)."""
        self.measured = 0

    def lag_s(self, now_s: float) -> float:
        """The current figure: the unanswered probe's age when it exceeds the last lag."""
        if self._seq and now_s - self._started_s > self.last_s:
            return now_s - self._started_s
        return self.last_s

    def step(self, alive_peers: int, now_s: float, now_ms: int) -> bool:
        """Check the probe in flight, or start one; True when it asked peers (gossip to pump)."""
        replica, node = self._replica, self._replica.node
        if node is None:
            return False
        if self._seq:
            age_s = now_s - self._started_s
            if replica.acks(self._seq) >= min(self._peers, alive_peers) or age_s > PROBE_GIVE_UP_S:
                self._done(age_s)
            return False
        seq = replica.last_write_seq
        if seq == self._last_seen_seq or alive_peers <= 0:
            return False  # no new write, or nobody to replicate to
        self._last_seen_seq = seq
        if replica.acks(seq) >= alive_peers:
            self._done(0.0)  # held everywhere within one step
            return False
        self._seq, self._peers, self._started_s = seq, alive_peers, now_s
        node.request_acks(seq, alive_peers, now_ms)
        return True

    def _done(self, lag_s: float) -> None:
        self.last_s = lag_s
        self.measured += 1
        self._seq = 0
