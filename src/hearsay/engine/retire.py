"""Folding departed nodes' slices into retired slices, a bounded number of keys at a time.

An additive key keeps one slice per origin; once a node has departed (HEARSAY.FORGET recorded
its departure time ``t``, a replicated tombstone the keyspace learns, see
:mod:`hearsay.lattice.retired`) and ``t`` is older than the retire grace (``--retire-grace-s``,
a day by default: its last deltas have long reached every node), each node replaces, in each
key, the slices of every origin departed at or before ``t`` by one retired slice ``~t``
holding their sum. Every node folds the same final inputs into the same ``~t``, so the
max-merge of two nodes' folds is harmless, and folds at different ``t`` converge to the
largest (the sets are nested). The keyspace's merge then refuses those origins' late slices.

Families whose reads sum their slices fold by summing: count-min (cell sums), counters
(totals of increments and decrements), cuckoo filters (add and delete counts per fingerprint
place). T-digests fold into a grid of cells (:meth:`TDigest.retired`): per cell the summed
weight of the departed centroids and values, at the finest level that fits, which is as
associative as a sum. Top-K folds into one list (:meth:`TopK.retired`): every item a departed
origin listed with its listed counts summed, uncut (a union of heavy-hitter lists cut to a
size is not associative: a fold of a fold would differ from a fold of the raw slices, so
nodes folding at different ``t`` would write different ``~t``); the departed HeavyKeepers
are dropped.

:class:`Retirer` (owned by the replica) walks the keyspace bucket by bucket, in key order
within a bucket, at most ``limit`` keys looked at and 32 folds a call (it resumes after the last
key done); a pass starts when the fold time or the departures change, and a complete pass is
not repeated until they do: after it, only the keys a departed node's slice reached since
(the keyspace notes them) are folded.
"""

from __future__ import annotations

from typing import Final

from hearsay.base.errors import TooLargeError
from hearsay.lattice.entry import Entry, MergeResult, Schema
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.retired import newest_retired, retired_origin, summed_slice
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.schemas import KIND_CMS, KIND_COUNTER, KIND_CUCKOO, KIND_TDIGEST, KIND_TOPK
from hearsay.sketch.tdigest import TDigest
from hearsay.sketch.topk import TopK
from hearsay.sketch.views import view_as

SUMMED_KINDS: Final = frozenset({KIND_CMS, KIND_COUNTER, KIND_CUCKOO})
"""Kinds whose reads sum their origins' slices: a retired slice is the sum, reads unchanged."""
FOLDED_KINDS: Final = SUMMED_KINDS | {KIND_TDIGEST, KIND_TOPK}
"""Kinds whose departed slices are folded (a t-digest's into cells: :meth:`TDigest.retired`;
a Top-K's into one list: :meth:`TopK.retired`)."""
RETIRE_KEYS_PER_STEP: Final = 2000
"""Keys looked at per :meth:`Retirer.step` (one housekeeping turn's share; most cost a few
dictionary look-ups)."""
RETIRE_FOLDS_PER_STEP: Final = 32
"""Keys folded per :meth:`Retirer.step`: a fold of a count-min key of 400 cells and five
origins costs about 0.4 to 0.8 ms of CPU on the shared test machine (load 15, in process), so
a step holds the event loop some 10 to 25 ms."""


class Retirer:
    """Folds departed origins' slices in one keyspace (its passes' cursor and counts)."""

    def __init__(self, keyspace: Keyspace) -> None:
        self._keyspace = keyspace
        self._bucket = 0
        """The next bucket of the pass under way."""
        self._after: bytes | None = None
        """In that bucket, the last key done (keys are taken in order; None: none yet)."""
        self._pass_for: tuple[int, int] | None = None
        """``(fold time, departures' version)`` the pass under way is for."""
        self._done_for: tuple[int, int] | None = None
        """The same for the last complete pass (none is started again for it)."""
        self.folds = 0
        """Keys given a (newer) retired slice by this node."""
        self.refused_too_large = 0
        """Folds skipped because the key, briefly holding both, would pass max-key-bytes."""

    def step(
        self, now_ms: int, grace_ms: int, limit: int = RETIRE_KEYS_PER_STEP
    ) -> list[tuple[bytes, MergeResult]]:
        """Fold the next keys of the pass (at most ``limit`` looked at, 32 folded); returns
        what changed, for the replica's write funnel (gossip, storage)."""
        departures = self._keyspace.departures
        fold_ms = departures.fold_time(now_ms - grace_ms) if departures else None
        if fold_ms is None:
            return []
        wanted = (fold_ms, departures.version)
        if wanted == self._done_for:
            return self._fold_arrivals(fold_ms, now_ms, limit)
        if wanted != self._pass_for:
            self._pass_for, self._bucket, self._after = wanted, 0, None
        changed: list[tuple[bytes, MergeResult]] = []
        examined = 0
        keyspace = self._keyspace
        while self._bucket < keyspace.bucket_count:
            items = sorted(keyspace.bucket_items(self._bucket), key=_key_of)
            after = self._after
            for key, entry in items:
                if after is not None and key <= after:
                    continue
                result = self._fold(key, entry, fold_ms, now_ms)
                if result.changed or result.replaced:
                    changed.append((key, result))
                examined += 1
                if examined >= limit or len(changed) >= RETIRE_FOLDS_PER_STEP:
                    self._after = key
                    return changed
            self._bucket, self._after = self._bucket + 1, None
        if self._bucket >= keyspace.bucket_count:
            self._done_for = wanted
            keyspace.departed_slices_merged.clear()  # (the pass saw them all)
        return changed

    def _fold_arrivals(
        self, fold_ms: int, now_ms: int, limit: int
    ) -> list[tuple[bytes, MergeResult]]:
        """After a complete pass: fold the keys a departed node's slice reached since."""
        arrived = self._keyspace.departed_slices_merged
        changed: list[tuple[bytes, MergeResult]] = []
        for _ in range(min(RETIRE_FOLDS_PER_STEP, len(arrived))):
            key = arrived.pop()
            entry = self._keyspace.entry(key)
            if entry is not None:
                result = self._fold(key, entry, fold_ms, now_ms)
                if result.changed or result.replaced:
                    changed.append((key, result))
        return changed

    def _fold(self, key: bytes, entry: Entry, fold_ms: int, now_ms: int) -> MergeResult:
        """Give ``key`` the retired slice ``~fold_ms`` when it holds a slice of an origin it
        covers (or drop such slices when it holds a newer fold)."""
        schema = entry.schema
        if schema is None or schema.kind not in FOLDED_KINDS:
            return MergeResult(None)
        if entry.deadline_ms and entry.deadline_ms <= now_ms:
            return MergeResult(None)  # (the expiry sweep's)
        keyspace = self._keyspace
        newest = newest_retired(entry)
        # (raws of a departure learned after a fold)
        dropped = MergeResult(None) if newest is None else keyspace.drop_unused(key)
        if newest is not None and newest >= fold_ms:
            return dropped
        covers = keyspace.departures.covers
        members = [vector for origin, vector in entry.slices() if covers(origin, fold_ms)]
        if not members:
            return dropped
        older = None if newest is None else entry.slice(retired_origin(newest))
        try:
            folded = _folded(schema, members, older)
            retired = Entry(entry.epoch, schema, entry.expiry, {retired_origin(fold_ms): folded})
            result = keyspace.merge(key, retired)
        except TooLargeError:  # (the key past max-key-bytes, or a fold past its own bound)
            self.refused_too_large += 1
            return MergeResult(None)
        self.folds += 1
        return result


def _folded(schema: Schema, departed: list[MaxVector], older: MaxVector | None) -> MaxVector:
    """The retired slice of ``departed`` slices over an ``older`` retired one."""
    if schema.kind == KIND_TDIGEST:
        return view_as(schema, TDigest).retired(departed, older)
    if schema.kind == KIND_TOPK:
        return view_as(schema, TopK).retired(departed, older)
    return summed_slice(departed if older is None else [*departed, older])


def _key_of(item: tuple[bytes, Entry]) -> bytes:
    return item[0]
