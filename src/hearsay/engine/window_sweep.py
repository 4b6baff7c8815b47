"""The sweep of windowed keys: each replica drops dead time slices on its own, as expiry does.

Why: a windowed key (``sketch/window.py``) gains a slice every ``W / SLICES`` ms; reads
already ignore the dead ones, but memory must stay within ``SLICES + 1`` slices and the
content hashes of replicas must meet again once every clock has passed a slice's death. Every
replica computes the same death time from the slice's name, so no message is exchanged about
it. What this module owns: when each windowed key is next due (its oldest slice's death), in
a lazy min-heap with one current item per key (stale items are skipped when popped), as the
keyspace's expiry heap.

Told of every windowed delta merged into the keyspace (a peer's, the disk's, a first write:
the keyspace's ``watch_sliced`` hook) and of every local windowed write (:meth:`watch`), so a
late copy of a dead slice from a peer is dropped at the next sweep after it arrives (reads
never count it meanwhile). A sweep handles at most ``limit`` keys, so it never holds the
event loop for long.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Final

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.keyspace import Keyspace
from hearsay.sketch.views import view_as
from hearsay.sketch.window import WINDOWED_KINDS, WindowedView

__all__ = ["SWEEP_KEYS_MAX", "SliceSweeper"]

SWEEP_KEYS_MAX: Final = 1_000
"""Keys one sweep looks at, at most (a sweep drops a key's dead slices in O(its pairs))."""


class SliceSweeper:
    """When each windowed key of one keyspace next loses a slice, and the sweep that drops it."""

    def __init__(self, keyspace: Keyspace) -> None:
        self._keyspace = keyspace
        self._due: list[tuple[int, bytes]] = []
        self._due_at: dict[bytes, int] = {}
        """key -> the time of its current heap item (a key appears once here)."""
        self.slices_dropped = 0
        """Dead slices dropped so far (INFO's ``window_slices_dropped``)."""
        self.kinds_seen: set[str] = set()
        """Windowed kinds this keyspace ever held: a command whose plain handler costs more
        than a look-up checks here before looking its key up (none: no look-up)."""
        keyspace.sliced_kinds = WINDOWED_KINDS
        keyspace.watch_sliced = self._watch_merged
        for key, entry in keyspace.items():  # a keyspace loaded before the replica existed
            if entry.schema is not None and entry.schema.kind in WINDOWED_KINDS:
                self._watch_merged(key, entry.schema, [name for name, _ in entry.slices()])

    @property
    def pending(self) -> int:
        """Windowed keys waiting for a slice to die (a driver sweeps while this is non-zero)."""
        return len(self._due_at)

    def next_due_ms(self) -> int | None:
        """When the next slice dies (None: no windowed key holds a slice)."""
        return self._due[0][0] if self._due else None

    def watch(self, key: bytes, schema: Schema, names: Iterable[str]) -> None:
        """A local write raised slices ``names`` of windowed ``key``: sweep it when the
        first of them dies, unless it is due sooner already."""
        at = view_as(schema, WindowedView).first_death_ms(names)
        if at >= 0:
            self.schedule(key, at)

    def _watch_merged(self, key: bytes, schema: Schema, names: list[str]) -> None:
        """A delta merged into windowed ``key`` raised slices ``names``: :meth:`watch`."""
        self.kinds_seen.add(schema.kind)
        try:
            self.watch(key, schema, names)
        except SketchParameterError:
            return  # parameters no view accepts: the keyspace's admission decides about it

    def schedule(self, key: bytes, at_ms: int) -> None:
        """Sweep ``key`` at ``at_ms`` (a slice's death) unless it is due sooner already."""
        current = self._due_at.get(key)
        if current is None or at_ms < current:
            self._due_at[key] = at_ms
            heapq.heappush(self._due, (at_ms, key))

    def sweep(self, now_ms: int, limit: int = SWEEP_KEYS_MAX) -> list[bytes]:
        """Drop the dead slices of up to ``limit`` keys that are due; the keys changed."""
        changed: list[bytes] = []
        heap, due_at = self._due, self._due_at
        looked = 0
        while heap and heap[0][0] <= now_ms and looked < limit:
            at, key = heapq.heappop(heap)
            if due_at.get(key) != at:
                continue  # stale: rescheduled sooner since (and handled then)
            del due_at[key]
            looked += 1
            entry = self._keyspace.entry(key)
            schema = None if entry is None else entry.schema
            if entry is None or schema is None or schema.kind not in WINDOWED_KINDS:
                continue  # deleted, expired or replaced since
            try:
                view = view_as(schema, WindowedView)
            except SketchParameterError:
                continue  # loaded unchecked (a tool's keyspace): no slice of it is ever read
            dead, next_ms = view.dead([name for name, _ in entry.slices()], now_ms)
            if dead:
                self._keyspace.drop_slices(key, dead)
                self.slices_dropped += len(dead)
                changed.append(key)
            if next_ms:
                self.schedule(key, next_ms)
        return changed
