"""Retired slices: the slices of departed origins folded into one per key (pure).

An additive key keeps one slice per origin, so without folding its memory grows with every
node that ever wrote to it. A *retired slice* ``~t`` holds the sum of the slices of exactly
the set ``S_t`` of origins that departed at or before ``t`` (see docs/design.md, "Retired
slices"). This module holds what the lattice needs to know about them:

- **names**: ``~t`` (``t`` a decimal number of unix ms, no leading zero) is a name no node id
  takes (node ids are hex, see :mod:`hearsay.persist.identity`);
- **departures**: when each departed node left. Each is a tombstone at a reserved key,
  :func:`departure_key`, whose epoch is the departure time: it max-merges, gossips, is
  repaired by anti-entropy and stored like any entry and reads as absent, as the flush floor
  does. The keyspace keeps them in a :class:`Departures` as it merges them;
- **the cover**: a key holding ``~t`` uses that slice and every raw slice whose origin is not
  in ``S_t``; :func:`unused_slices` names the others (older retired slices, raw slices of
  ``S_t``), which the keyspace drops, so what is stored (and hashed) is what reads use;
- **the fold**: :func:`summed_slice`, the element-wise sum of slices (count-min cells,
  counters' totals, cuckoo add and delete counts), saturating at the lattice's value bound.

Time is an argument: the caller decides which departures are old enough to fold.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Final

import numpy as np

from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import VALUE_MAX, MaxVector

RETIRED_MARK: Final = "~"
"""The first character of a retired slice's name (no node id starts with it)."""
RESERVED_KEY_PREFIX: Final = b"\x00hearsay\x00"
"""Keys hearsay keeps for itself (the flush floor, departures): clients cannot write them."""
DEPARTED_KEY_PREFIX: Final = RESERVED_KEY_PREFIX + b"departed\x00"
DEPARTED_KEYS_MAX: Final = 100_000
"""Departures remembered (a departure costs one small tombstone; past this a peer's new
departures are refused, so a stream of made-up node ids cannot grow the table)."""
_TIME_DIGITS_MAX: Final = 19


def retired_origin(time_ms: int) -> str:
    """The name of the retired slice holding the origins departed at or before ``time_ms``."""
    return f"{RETIRED_MARK}{time_ms}"


def retired_time(origin: str) -> int | None:
    """``t`` of a retired slice's name ``~t``; None for any other origin (or a malformed one)."""
    if not origin.startswith(RETIRED_MARK):
        return None
    digits = origin[1:]
    if not digits.isascii() or not digits.isdigit() or len(digits) > _TIME_DIGITS_MAX:
        return None
    if digits != "0" and digits.startswith("0"):
        return None
    return int(digits)


def departure_key(node_id: str) -> bytes:
    """The reserved key whose tombstone's epoch is when ``node_id`` departed."""
    return DEPARTED_KEY_PREFIX + node_id.encode()


def departed_node(key: bytes) -> str | None:
    """The node id a departure key names (None for any other key)."""
    if not key.startswith(DEPARTED_KEY_PREFIX):
        return None
    try:
        name = key[len(DEPARTED_KEY_PREFIX) :].decode("ascii")
    except UnicodeDecodeError:
        return None
    return name or None


def node_of(origin: str) -> str:
    """The node id an origin belongs to: ``<id>`` or ``<id>.<generation>`` (a fresh origin
    taken after damage, see :mod:`hearsay.persist.identity`)."""
    node, _, _ = origin.partition(".")
    return node


class Departures:
    """When each departed node left, as this keyspace learned it (one owner: the keyspace)."""

    __slots__ = ("_sorted", "_sorted_version", "_times", "version")

    def __init__(self) -> None:
        self._times: dict[str, int] = {}
        self.version = 0
        """One more at every change (a fold pass is for one version)."""
        self._sorted: list[int] = []
        """The departure times in order, as of :attr:`_sorted_version` (for :meth:`fold_time`,
        which housekeeping asks every 50 ms)."""
        self._sorted_version = 0

    def __len__(self) -> int:
        return len(self._times)

    def __bool__(self) -> bool:
        return bool(self._times)

    def learn(self, node_id: str, time_ms: int) -> bool:
        """Record that ``node_id`` departed at ``time_ms`` (the departure key's epoch: the
        later of two concurrent ones, as the max-merge keeps); False when refused (full)."""
        if node_id not in self._times and len(self._times) >= DEPARTED_KEYS_MAX:
            return False
        if self._times.get(node_id, -1) < time_ms:
            self._times[node_id] = time_ms
            self.version += 1
        return True

    def forget_all(self) -> None:
        """Drop every departure (the flush floor condemned their keys)."""
        self._times.clear()
        self.version += 1

    def time_of(self, node_id: str) -> int | None:
        return self._times.get(node_id)

    def items(self) -> list[tuple[str, int]]:
        return sorted(self._times.items())

    def covers(self, origin: str, time_ms: int) -> bool:
        """Whether ``origin`` is in ``S_t`` for ``t = time_ms`` (departed at or before it)."""
        if origin.startswith(RETIRED_MARK):
            return False
        departed = self._times.get(node_of(origin))
        return departed is not None and departed <= time_ms

    def touches(self, origins: Iterable[str]) -> bool:
        """Whether any of ``origins`` is a retired slice or a departed node's (the merge's
        cheap test before it looks closer)."""
        times = self._times
        return any(o.startswith(RETIRED_MARK) or node_of(o) in times for o in origins)

    def fold_time(self, before_ms: int) -> int | None:
        """The largest departure time at or before ``before_ms`` (the ``t`` to fold at)."""
        if self._sorted_version != self.version:
            self._sorted = sorted(self._times.values())
            self._sorted_version = self.version
        due = bisect.bisect_right(self._sorted, before_ms)
        return self._sorted[due - 1] if due else None


def newest_retired(entry: Entry) -> int | None:
    """The largest ``t`` of a retired slice ``entry`` holds (None: none)."""
    newest: int | None = None
    for origin, _ in entry.slices():
        t = retired_time(origin)
        if t is not None and (newest is None or t > newest):
            newest = t
    return newest


def unused_slices(entry: Entry, departures: Departures) -> list[str]:
    """The slices of ``entry`` a read does not use: retired slices older than the newest one
    and raw slices of origins that newest one covers (empty when it holds no retired slice)."""
    newest = newest_retired(entry)
    if newest is None:
        return []
    unused: list[str] = []
    for origin, _ in entry.slices():
        t = retired_time(origin)
        if (t is not None and t < newest) or departures.covers(origin, newest):
            unused.append(origin)
    return unused


def summed_slice(vectors: Iterable[MaxVector]) -> MaxVector:
    """The element-wise sum of ``vectors``, each value at most :data:`VALUE_MAX` (saturating:
    no honest count gets near it, and the fold must stay a valid slice)."""
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for vector in vectors:
        if vector.is_empty():
            continue
        index, value = vector.pairs()
        indices.append(index.astype(np.uint32, copy=False))
        values.append(value.astype(np.uint64))
    if not indices:
        return MaxVector()
    index = np.concatenate(indices)
    value = np.concatenate(values)
    order = np.argsort(index, kind="stable")
    index, value = index[order], value[order]
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    # Sums in two halves of 32 bits each, so no uint64 sum of up to 2**32 values can wrap.
    low = np.add.reduceat(value & np.uint64(0xFFFFFFFF), starts)
    high = np.add.reduceat(value >> np.uint64(32), starts)
    if int(high.max()) < 1 << 30:  # (every sum below 2**62: no Python ints needed)
        sums = (high << np.uint64(32)) + low
    else:
        sums = np.array(
            [min(VALUE_MAX, (int(h) << 32) + int(lo)) for h, lo in zip(high, low, strict=True)],
            dtype=np.uint64,
        )
    return MaxVector.from_pairs(index[starts], sums)
