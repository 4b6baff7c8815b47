"""The keyspace: every key's entry, the local write rules, and per-bucket content hashes.

Keys are ``bytes`` (Redis keys are binary-safe). Keys live in a fixed number of buckets chosen
by a hash of the key; each bucket keeps the XOR of its keys' content hashes, updated in
O(delta) on every change (see :mod:`hearsay.lattice.digest`). Anti-entropy compares bucket
hashes, then only the keys of differing buckets.

Two kinds of change come in:

- **replication** (:meth:`Keyspace.merge`): a delta from a peer, joined by the lattice rule
  whatever it holds (conflicting schemas resolve deterministically and are reported);
- **local writes** (:meth:`Keyspace.write`, :meth:`delete`, :meth:`set_expiry`): a client's
  command, checked first (a different type is a :class:`WrongTypeError`, never an overwrite)
  and turned into a delta at the key's current epoch.

Time is an argument (``now_ms``, unix milliseconds): the keyspace never reads a clock.
Deleted and expired keys stay as tombstones (a higher epoch, no data) so that late deltas of
the old epoch cannot bring them back. Tombstones are dropped once older than a grace period
(:meth:`Keyspace.purge_tombstones`; a tombstone's epoch is its deletion time in ms), and from
then on tombstones older than that are refused, so a lagging replica's copy cannot come back
either. As in Cassandra (``gc_grace_seconds``), a replica cut off for longer than the grace
period may still hold the deleted data and bring it back.

FLUSHALL is a **floor** ``F`` (ms): the epoch of a tombstone at the reserved key
:data:`FLOOR_KEY`, so it is max-merged, gossiped, repaired by anti-entropy and stored like any
entry, and reads as absent everywhere. Raising the floor moves every entry aside at once (the
*condemned* tables, O(buckets)); the keyspace then holds only entries of epoch ``F`` or more:
deltas below ``F`` are refused, a key created from now on starts at epoch ``F`` (on every
node that learned ``F``, so concurrent creators still agree), and :meth:`Keyspace.sweep_floor`
drops the condemned entries in bounded steps. A condemned entry of epoch ``F`` or more (a key
deleted and written again later than ``F`` on a node that had not learned it yet) survives: it
moves back when the sweep, or a look-up of its key, meets it.

Departures (a node forgotten for good) are tombstones at reserved keys too, kept in
:attr:`Keyspace.departures`; an additive key holding a retired slice ``~t`` (the sum of the
slices of the nodes departed by ``t``) refuses and drops those nodes' slices, so it stores
and hashes what reads use (see :mod:`hearsay.lattice.retired`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import BoundsError, TooLargeError, WrongTypeError
from hearsay.lattice.digest import entry_hash, header_hash, key_seed, packed_change, pairs_hash
from hearsay.lattice.entry import NO_EXPIRY, Entry, FewPairsDelta, MergeResult, Schema
from hearsay.lattice.limits import KeyLimits
from hearsay.lattice.retired import (
    RESERVED_KEY_PREFIX,
    Departures,
    departed_node,
    newest_retired,
    retired_time,
    unused_slices,
)
from hearsay.lattice.vector import MaxVector, width_for

BUCKETS_DEFAULT: Final = 1024
KEY_BYTES_MAX: Final = 64 * 1024
"""Keys longer than this are refused (Redis allows 512 MB; gossip datagrams do not)."""
FLOOR_KEY: Final = RESERVED_KEY_PREFIX + b"flush-floor"
"""The reserved key whose tombstone's epoch is the flush floor (never live: clients cannot
write it, so KEYS, SCAN, DBSIZE and every read see nothing there)."""
_DENSE_SLACK_BYTES: Final = 8 * 1024
"""What a dense array may hold beyond its packed pairs: rounding up to 1,024 slots."""
_GROWTH_PER_BYTE: Final = 96
_GROWTH_PER_PAIR: Final = 96
_GROWTH_FIXED: Final = 8 * (_DENSE_SLACK_BYTES + 4 * 1024)
"""What :func:`_growth_bound` can return at most, for any vector of ``n`` bytes and ``p``
incoming pairs: ``96 n + 96 p + 96 KiB`` (values widened from 1 to 8 bytes multiply a dense
array by 8, and growing it first adds at most 12 bytes per slot or pair plus the slack):
a write whose key stays under the cap by that much is admitted without looking closer."""


KEY_HASHES_MAX: Final = 1 << 16
"""Keys whose content hash :class:`Keyspace` keeps (digests name recently written keys)."""
SCHEDULE_SLACK: Final = 1024
"""Stale items a deadline or tombstone heap may hold beyond its valid ones before it is rebuilt
(with twice its valid count: see ``Keyspace._track_deadline``)."""


class Keyspace:
    """All entries of one node, with incremental per-bucket content hashes."""

    def __init__(self, buckets: int = BUCKETS_DEFAULT, limits: KeyLimits | None = None) -> None:
        if buckets < 1 or buckets & (buckets - 1):
            raise BoundsError("the bucket count must be a power of two")
        self.limits = limits
        """The per-key caps; None (the bare default: simulator, tools, loading) checks none."""
        self.refused_too_large = 0
        """Writes and deltas refused by :attr:`limits` (INFO and /metrics count them)."""
        self._mask = buckets - 1
        self._buckets: list[dict[bytes, Entry]] = [{} for _ in range(buckets)]
        self._bucket_hashes: list[int] = [0] * buckets
        """Python ints, not a numpy array: every write XORs one in, and a numpy scalar's
        read-modify-write costs several times a list item's."""
        self._key_hashes: dict[bytes, int] = {}
        """Content hashes of keys :meth:`key_hash` was asked for, kept exact by the same XORs
        as the bucket hashes (a big key written all the time would otherwise be hashed whole
        at every digest that names it: a 1M-capacity Bloom filter's 9.6M bits). At most
        :data:`KEY_HASHES_MAX`; emptied when full (each key then costs one hash again)."""
        self._live = 0
        self._stored = 0
        self._expiring = 0
        self._deadlines: list[tuple[int, bytes]] = []
        """A lazy min-heap of (deadline_ms, key); stale items are skipped when popped."""
        self._tombstones: list[tuple[int, bytes]] = []
        """A lazy min-heap of (epoch, key) of tombstones, for :meth:`purge_tombstones`."""
        self._rebuild_at = [SCHEDULE_SLACK, SCHEDULE_SLACK]
        """Sizes the deadline and tombstone heaps are rebuilt past at the earliest (twice what
        the last rebuild kept: geometric, whatever the counts of expiring keys and tombstones
        say)."""
        self._purged_before = 0
        """Tombstones with an epoch below this were purged: such tombstones are refused."""
        self._floor_ms = 0
        """The flush floor: every entry held has an epoch at least this; deltas below it are
        refused (it generalises :attr:`_purged_before` from tombstones to every entry)."""
        self._condemned: list[list[dict[bytes, Entry]]] = []
        """The buckets moved aside by each raise of the floor, oldest first, until swept."""
        self._sweep_bucket = 0
        """The next bucket of ``_condemned[0]`` that :meth:`sweep_floor` empties."""
        self._epoch_max = 0
        """The highest epoch any entry took here (a flush's floor goes above it)."""
        self.sliced_kinds: frozenset[str] = frozenset()
        self.watch_sliced: Callable[[bytes, Schema, list[str]], None] | None = None
        """Told of every delta merged under a schema kind in :attr:`sliced_kinds` (windowed
        keys, whose time slices die: the engine's sweep schedules them), by its key, schema
        and slice names (all the sweep needs: a replicated write is told without an entry
        built around its pairs)."""
        self.departures = Departures()
        """When departed nodes left (their reserved keys' tombstones, as merged here): what
        the retired slices ``~t`` of additive keys cover (see :mod:`.retired`)."""
        self.retired_origin_dropped = 0
        """Slices of origins a key's retired slice covers, refused from deltas (INFO)."""
        self.departed_slices_merged: set[bytes] = set()
        """Keys a departed node's slice reached without a retired slice covering it (the
        engine's fold pass takes them, so a key that arrives after a pass is folded too)."""

    # -- reading --------------------------------------------------------------------------------

    @property
    def bucket_count(self) -> int:
        return self._mask + 1

    def bucket_of(self, key: bytes) -> int:
        return key_seed(key) & self._mask

    def entry(self, key: bytes) -> Entry | None:
        """The stored entry, tombstones and expired ones included (what replication sees)."""
        bucket_no = key_seed(key) & self._mask
        entry = self._buckets[bucket_no].get(key)
        if entry is None and self._condemned:
            entry = self._rescue(key, bucket_no)
        return entry

    def get(self, key: bytes, now_ms: int) -> Entry | None:
        """The live entry of ``key`` at ``now_ms``: None when absent, deleted or expired."""
        bucket_no = key_seed(key) & self._mask
        entry = self._buckets[bucket_no].get(key)
        if entry is None and self._condemned:
            entry = self._rescue(key, bucket_no)
        if entry is None or entry.schema is None:
            return None
        deadline = entry.expiry[1]
        if deadline and deadline <= now_ms:
            return None
        return entry

    def __len__(self) -> int:
        """Live keys (not tombstones; keys past their deadline count until swept)."""
        return self._live

    @property
    def expiring_count(self) -> int:
        """Live keys with a deadline (INFO keyspace's ``expires``)."""
        return self._expiring

    @property
    def stored_count(self) -> int:
        """Stored entries, tombstones included."""
        return self._stored

    def items(self) -> Iterator[tuple[bytes, Entry]]:
        """Every stored ``(key, entry)``, tombstones included, bucket by bucket."""
        buckets = self._buckets
        for bucket_no in range(self._mask + 1):
            if buckets[bucket_no] or self._condemned:  # (an empty one yields nothing)
                yield from self.bucket_items(bucket_no)

    def bucket_items(self, bucket: int) -> list[tuple[bytes, Entry]]:
        if self._condemned:
            self._rescue_bucket(bucket)
        return list(self._buckets[bucket].items())

    def bucket_hash(self, bucket: int) -> int:
        return self._bucket_hashes[bucket]

    def bucket_hashes(self) -> npt.NDArray[np.uint64]:
        """A copy of every bucket's hash (XOR of its keys' content hashes)."""
        return np.array(self._bucket_hashes, dtype=np.uint64)

    def key_hash(self, key: bytes) -> int:
        """The content hash of one key (0 when absent): what digests and anti-entropy compare.
        Hashed whole once, then kept up to date by every change (see :attr:`_key_hashes`)."""
        entry = self.entry(key)  # (first: it may move a condemned entry back)
        if entry is None:
            return 0
        cached = self._key_hashes.get(key)
        if cached is not None:
            return cached
        content = entry_hash(key, entry)
        hashes = self._key_hashes
        if len(hashes) >= KEY_HASHES_MAX:
            hashes.clear()
        hashes[key] = content
        return content

    # -- replication ----------------------------------------------------------------------------

    def merge(self, key: bytes, delta: Entry) -> MergeResult:
        """Join a peer's delta into ``key``; returns what changed, ready to forward."""
        if self.retiring(delta):
            return self._merge_retiring(key, delta)
        return self._merge(key, delta)

    def retiring(self, delta: Entry) -> bool:
        """Whether ``delta`` holds a retired slice or a departed node's (an additive key
        after a departure is known): it must go through :meth:`merge`'s retired rules, never
        a fast path that writes its pairs directly."""
        schema = delta.schema
        return (
            schema is not None
            and schema.additive
            and bool(self.departures.version)  # (0 until a departure is known: no look-ups)
            and self.departures.touches(origin for origin, _ in delta.slices())
        )

    def _merge_retiring(self, key: bytes, delta: Entry) -> MergeResult:
        """:meth:`merge` of a delta holding a retired slice or a departed node's: slices the
        key's newest retired slice covers are refused (counted), and the slices the key no
        longer reads after the merge are dropped, so it holds (and hashes) what reads use."""
        existing = self.entry(key)
        newest = None if existing is None or delta.outranks(existing) else newest_retired(existing)
        if newest is not None:
            kept: dict[str, MaxVector] = {}
            for origin, vector in delta.slices():
                retired = retired_time(origin)
                if retired is not None and retired < newest:
                    continue  # an older fold, which the newer one holds
                if self.departures.covers(origin, newest):
                    self.retired_origin_dropped += 1
                    continue
                kept[origin] = vector
            delta = Entry(delta.epoch, delta.schema, delta.expiry, kept)
        result = self._merge(key, delta)
        result = self.drop_unused(key, result)
        if result.changed and newest_retired(delta) is None:
            self.departed_slices_merged.add(key)  # (a departed node's slice: fold it later)
        return result

    def drop_unused(self, key: bytes, result: MergeResult | None = None) -> MergeResult:
        """Drop the slices of ``key`` its newest retired slice makes unused (see
        :func:`.retired.unused_slices`); ``result`` (a merge's) is returned marked
        ``replaced`` when anything went, so the key is stored whole."""
        result = MergeResult(None) if result is None else result
        entry = self.entry(key)
        unused = [] if entry is None else unused_slices(entry, self.departures)
        if not unused:
            return result
        self.drop_slices(key, unused)
        return MergeResult(result.delta, result.previous, replaced=True, conflict=result.conflict)

    def _merge(self, key: bytes, delta: Entry) -> MergeResult:
        if len(key) > KEY_BYTES_MAX:
            raise BoundsError(f"key longer than {KEY_BYTES_MAX} bytes")
        epoch = delta.epoch
        if epoch < self._floor_ms or (
            delta.schema is None
            and epoch < self._purged_before
            and not key.startswith(RESERVED_KEY_PREFIX)
        ):
            return MergeResult(None)  # below the flush floor, or a tombstone purged here
        schema = delta.schema
        if schema is not None and schema.kind in self.sliced_kinds and self.watch_sliced:
            self.watch_sliced(key, schema, [name for name, _ in delta.slices()])
        seed = key_seed(key)
        bucket_no = seed & self._mask
        bucket = self._buckets[bucket_no]
        existing = bucket.get(key)
        if existing is None and self._condemned:
            existing = self._rescue(key, bucket_no)
        outranks = existing is None or delta.outranks(existing)
        if outranks and key.startswith(RESERVED_KEY_PREFIX):
            if key == FLOOR_KEY:
                return self._raise_floor(delta)
            node = departed_node(key)  # a departure: only a tombstone, and learned first
            if node is None or delta.schema is not None or not self.departures.learn(node, epoch):
                return MergeResult(None)
        if delta.schema is not None and self.limits is not None:
            self._admit(self.limits, existing, delta)
        if epoch > self._epoch_max and outranks:
            self._epoch_max = epoch
        if existing is None:
            self._insert(key, delta.copy(), seed)
            return MergeResult(delta)
        was_expiring = _expiring(existing)
        if outranks:
            before = entry_hash(key, existing, seed)
            was_live = existing.schema is not None
            result = existing.merge(delta)
            self._change(key, bucket_no, before ^ entry_hash(key, existing, seed))
            self._live += (existing.schema is not None) - was_live
        else:
            result = existing.merge(delta)
            if result.delta is not None and result.previous is not None:
                self._change(key, bucket_no, _growth_hash(seed, result.previous, result.delta))
        if result.changed:
            self._expiring += _expiring(existing) - was_expiring
            self._track_deadline(key, existing)
        return result

    def _insert(self, key: bytes, entry: Entry, seed: int) -> None:
        """Hold ``entry`` (adopted, not copied) for ``key``, which holds nothing here."""
        bucket_no = seed & self._mask
        self._xor(bucket_no, entry_hash(key, entry, seed))
        self._buckets[bucket_no][key] = entry
        self._stored += 1
        self._live += entry.schema is not None
        self._expiring += _expiring(entry)
        self._track_deadline(key, entry)

    # -- the flush floor ------------------------------------------------------------------------

    @property
    def floor_ms(self) -> int:
        """The flush floor: entries of a lower epoch are gone (0: never flushed)."""
        return self._floor_ms

    @property
    def epoch_max(self) -> int:
        """The highest epoch any entry took here (FLUSHALL's floor goes above it)."""
        return self._epoch_max

    @property
    def sweep_pending(self) -> int:
        """Condemned tables left for :meth:`sweep_floor` (0: nothing to sweep)."""
        return len(self._condemned)

    def _raise_floor(self, delta: Entry) -> MergeResult:
        """A higher floor arrived (FLOOR_KEY's tombstone): condemn every entry held, at once.

        A delta carrying a schema for the reserved key is refused (only a buggy or hostile
        peer sends one: clients cannot write it).
        """
        if delta.schema is not None or delta.epoch <= self._floor_ms:
            return MergeResult(None)  # (0 is no floor: there is nothing to raise)
        floor = Entry(delta.epoch)
        self._condemned.append(self._buckets)
        buckets = self._mask + 1
        self._buckets = [{} for _ in range(buckets)]
        self._bucket_hashes = [0] * buckets
        self._key_hashes = {}
        self._live = self._stored = self._expiring = 0
        self._deadlines = []
        self._tombstones = []
        self._rebuild_at = [SCHEDULE_SLACK, SCHEDULE_SLACK]
        self._floor_ms = floor.epoch
        self.departures.forget_all()  # (their keys are condemned: survivors are learned again)
        self._epoch_max = max(self._epoch_max, floor.epoch)
        self._insert(FLOOR_KEY, floor, key_seed(FLOOR_KEY))
        return MergeResult(floor.copy(), replaced=True)

    def _survives(self, key: bytes, entry: Entry) -> bool:
        """Whether a condemned entry is at or above the floor (and not a purged tombstone)."""
        if entry.epoch < self._floor_ms:
            return False
        return (
            entry.schema is not None
            or entry.epoch >= self._purged_before
            or key.startswith(RESERVED_KEY_PREFIX)
        )

    def _rescue(self, key: bytes, bucket_no: int) -> Entry | None:
        """A look-up missed while entries are condemned: move ``key``'s surviving condemned
        entries back (joined); returns what the key holds now."""
        for generation in self._condemned:
            bucket = generation[bucket_no]
            entry = bucket.get(key)
            if entry is not None and self._survives(key, entry):
                del bucket[key]
                self._rejoin(key, entry)
        return self._buckets[bucket_no].get(key)

    def _rescue_bucket(self, bucket_no: int) -> None:
        """Move every surviving condemned entry of one bucket back (before it is listed)."""
        for generation in self._condemned:
            bucket = generation[bucket_no]
            for key, entry in list(bucket.items()):
                if self._survives(key, entry):
                    del bucket[key]
                    self._rejoin(key, entry)

    def _rejoin(self, key: bytes, entry: Entry) -> None:
        """Join a surviving condemned entry back in (it was admitted once: no caps again)."""
        seed = key_seed(key)
        existing = self._buckets[seed & self._mask].get(key)
        if existing is None:
            self._insert(key, entry, seed)
            return
        limits, self.limits = self.limits, None
        try:
            self.merge(key, entry)
        finally:
            self.limits = limits

    def sweep_floor(self, limit: int = 4096) -> list[bytes]:
        """Drop up to ``limit`` condemned entries (survivors move back instead); returns the
        dropped keys, whose stored copies must go too. Bounded work per call, so a runtime
        calls it once per event-loop turn until :attr:`sweep_pending` is 0."""
        dropped: list[bytes] = []
        budget = limit
        condemned = self._condemned
        while condemned and budget > 0:
            generation = condemned[0]
            bucket_no = self._sweep_bucket
            while bucket_no < len(generation) and budget > 0:
                bucket = generation[bucket_no]
                while bucket and budget > 0:
                    key, entry = bucket.popitem()
                    budget -= 1
                    if self._survives(key, entry):
                        self._rejoin(key, entry)
                    else:
                        dropped.append(key)
                if not bucket:
                    bucket_no += 1
            if bucket_no < len(generation):
                self._sweep_bucket = bucket_no
            else:
                condemned.pop(0)
                self._sweep_bucket = 0
        return dropped

    # -- admission ------------------------------------------------------------------------------

    def _admit(self, limits: KeyLimits, existing: Entry | None, delta: Entry) -> None:
        """Refuse (TooLargeError, or the schema check's error) a delta that would take ``key``
        past :attr:`limits`, before anything changes.

        Cheap first: the current payload, plus what each incoming pair can add, plus what
        widening the values of a touched vector can add, bounds the result; only when that
        bound passes the cap are the touched slices merged into copies to measure the exact
        result (keys within a few times of the cap).
        """
        if existing is not None and existing.outranks(delta):
            return  # the delta will be ignored whole
        if existing is None or delta.outranks(existing):  # a new key, or a new epoch or schema
            schema = delta.schema
            if limits.admit_schema is not None and schema is not None:
                limits.admit_schema(schema, limits.key_bytes_max)
            size = delta.payload_bytes()  # a new key adopts copies of the delta's vectors
            if existing is not None:  # a replaced one rebuilds them (dense ones rounded up)
                size += _DENSE_SLACK_BYTES * sum(1 for _ in delta.slices())
                if size > limits.key_bytes_max:
                    size = sum(_rebuilt(vector).nbytes() for _, vector in delta.slices())
            if size > limits.key_bytes_max:
                self._refuse(limits, size)
            return
        bound = existing.payload_bytes()
        for origin, vector in delta.slices():
            mine = existing.slice(origin)
            top = _top_index(vector) if mine.is_dense else 0  # (only a dense one needs it)
            # (a dense vector's slots bound its pairs: counting a six-bit one unpacks it)
            pairs = vector.dense_slots if vector.is_dense else len(vector)
            bound += _growth_bound(mine, pairs, vector.width, top)
        if bound <= limits.key_bytes_max:
            return
        size = existing.payload_bytes()
        for origin, vector in delta.slices():
            mine = existing.slice(origin)
            grown = mine.copy()
            grown.merge(vector)
            size += grown.nbytes() - mine.nbytes()
        if size > limits.key_bytes_max:
            self._refuse(limits, size)

    def _admit_pairs(
        self,
        limits: KeyLimits,
        entry: Entry,
        origin: str,
        indices: npt.ArrayLike,
        values: npt.ArrayLike,
    ) -> None:
        """:meth:`_admit` for the bulk path's raw pairs into one slice of ``entry`` (a few
        pairs as lists come here only when the key is not far below the cap: see
        :meth:`_grow_held`)."""
        if isinstance(indices, list) and isinstance(values, list):  # one client write: no numpy
            if not values:
                return
            count, value_top, index_top = len(values), int(max(values)), int(max(indices))
        else:
            value_array, index_array = np.asarray(values), np.asarray(indices)
            count = int(value_array.size)
            if not count:
                return
            value_top, index_top = int(value_array.max()), int(index_array.max())
        mine = entry.slice(origin)
        growth = _growth_bound(mine, count, width_for(value_top), index_top)
        bound = entry.payload_bytes() + growth
        if bound <= limits.key_bytes_max:
            return
        grown = mine.copy()
        grown.merge_pairs(indices, values)
        size = entry.payload_bytes() + grown.nbytes() - mine.nbytes()
        if size > limits.key_bytes_max:
            self._refuse(limits, size)

    def _refuse(self, limits: KeyLimits, size_bytes: int) -> None:
        self.refused_too_large += 1
        raise TooLargeError(
            f"the key would hold {size_bytes} bytes, more than max-key-bytes "
            f"({limits.key_bytes_max}); nothing was written"
        )

    def purge_tombstones(self, before_epoch: int, limit: int = 1000) -> list[bytes]:
        """Drop up to ``limit`` tombstones whose epoch is below ``before_epoch`` (for a grace
        period ``g``: ``now_ms - g``); returns their keys. From now on tombstones below
        ``before_epoch`` are refused by :meth:`merge`, so a peer that has not purged yet cannot
        bring them back, nor can they override a key written again since."""
        self._purged_before = max(self._purged_before, before_epoch)
        purged: list[bytes] = []
        heap = self._tombstones
        while heap and heap[0][0] < before_epoch and len(purged) < limit:
            epoch, key = heapq.heappop(heap)
            if key.startswith(RESERVED_KEY_PREFIX):
                continue  # the floor and departures are never purged: a later node learns them
            seed = key_seed(key)
            bucket_no = seed & self._mask
            bucket = self._buckets[bucket_no]
            entry = bucket.get(key)
            if entry is None or entry.schema is not None or entry.epoch != epoch:
                continue  # stale: written again (or purged) since
            self._xor(bucket_no, entry_hash(key, entry, seed))
            del bucket[key]
            self._key_hashes.pop(key, None)
            self._stored -= 1  # (a tombstone is neither live nor expiring)
            purged.append(key)
        return purged

    def drop_slices(self, key: bytes, origins: list[str]) -> None:
        """Remove the named slices of ``key`` (a windowed key's dead time slices; each replica
        drops them on its own), keeping the bucket hash exact."""
        seed = key_seed(key)
        bucket_no = seed & self._mask
        entry = self._buckets[bucket_no].get(key)
        if entry is None or not origins:
            return
        change = 0  # (the header stays: the hash changes by the dropped pairs' alone)
        for origin, vector in entry.drop_slices(origins):
            change ^= pairs_hash(seed, origin, vector)
        if change:
            self._change(key, bucket_no, change)

    def _xor(self, bucket: int, change: int) -> None:
        self._bucket_hashes[bucket] ^= change

    def _change(self, key: bytes, bucket: int, change: int) -> None:
        """``key``, held in ``bucket``, changed its content hash by ``change``."""
        self._bucket_hashes[bucket] ^= change
        cached = self._key_hashes.get(key)
        if cached is not None:
            self._key_hashes[key] = cached ^ change

    def _track_deadline(self, key: bytes, entry: Entry) -> None:
        """Remember when ``key`` (just changed to ``entry``) expires, or that it is a tombstone.

        Both heaps are lazy: an item goes stale when its key changes again, and is skipped
        when popped. A key re-expired again and again (EXPIRE key 100000 in a loop: each call
        a later deadline) would pile up stale items until their far deadlines pass, so a heap
        grown past twice what it can validly hold (plus :data:`SCHEDULE_SLACK`), and past twice
        what its last rebuild kept, is rebuilt from its valid items: amortised O(1) a change,
        memory bounded by the keys."""
        if entry.schema is None:
            heap = self._tombstones
            heapq.heappush(heap, (entry.epoch, key))
            valid_max = self._stored - self._live
            if len(heap) > 2 * valid_max + SCHEDULE_SLACK and len(heap) > self._rebuild_at[1]:
                self._tombstones = heap = self._valid_items(heap, tombstones=True)
                self._rebuild_at[1] = 2 * len(heap) + SCHEDULE_SLACK
        elif entry.expiry[1]:
            heap = self._deadlines
            heapq.heappush(heap, (entry.expiry[1], key))
            if len(heap) > 2 * self._expiring + SCHEDULE_SLACK and len(heap) > self._rebuild_at[0]:
                self._deadlines = heap = self._valid_items(heap, tombstones=False)
                self._rebuild_at[0] = 2 * len(heap) + SCHEDULE_SLACK

    def _valid_items(
        self, heap: list[tuple[int, bytes]], *, tombstones: bool
    ) -> list[tuple[int, bytes]]:
        """The items of a deadline heap (``tombstones=False``) or of the tombstone heap that
        :meth:`expire_due` / :meth:`purge_tombstones` would act on, once each, as a heap."""
        valid: set[tuple[int, bytes]] = set()
        buckets, mask = self._buckets, self._mask
        for item in heap:  # bounded by the heap, rebuilt once it doubled past its valid items
            when, key = item
            # (not entry(): a condemned entry rescued later is tracked again as it comes back,
            # and a rescue now would push onto the heap being read)
            held = buckets[key_seed(key) & mask].get(key)
            if held is None:
                continue
            if tombstones:
                if held.schema is None and held.epoch == when:
                    valid.add(item)
            elif held.schema is not None and held.expiry[1] == when:
                valid.add(item)
        rebuilt = list(valid)
        heapq.heapify(rebuilt)
        return rebuilt

    @property
    def scheduled(self) -> tuple[int, int]:
        """Items in the deadline heap and in the tombstone heap, stale ones included."""
        return len(self._deadlines), len(self._tombstones)

    # -- local writes ---------------------------------------------------------------------------

    def write(
        self, key: bytes, schema: Schema, slices: dict[str, MaxVector], now_ms: int
    ) -> MergeResult:
        """A client's write of ``slices`` under ``schema`` to ``key``.

        Creates the key when absent (or deleted, or expired: then in a new epoch). Raises
        :class:`WrongTypeError` when the key holds another schema.
        """
        if key.startswith(RESERVED_KEY_PREFIX):
            raise BoundsError("this key name is reserved by hearsay (flush floor, departures)")
        current = self._live_or_expire(key, now_ms)
        if current is not None and current.schema is not None and current.schema != schema:
            raise WrongTypeError(f"key holds {current.schema.kind}, not {schema.kind}")
        # A new key starts at the floor: every node that learned it creates keys there alike.
        epoch = self._floor_ms if current is None else current.epoch
        expiry = NO_EXPIRY if current is None else current.expiry
        return self.merge(key, Entry(epoch, schema.intern(), expiry, slices))

    def write_pairs(
        self,
        key: bytes,
        schema: Schema,
        origin: str,
        indices: npt.ArrayLike,
        values: npt.ArrayLike,
        *,
        now_ms: int,
    ) -> MergeResult:
        """:meth:`write` of raw ``(indices, values)`` pairs into one slice: the bulk path.

        When the key already holds ``schema``, the pairs go straight into its slice (no
        intermediate vector, no sort for a dense slice) and the bucket hash changes by the
        grown pairs only; otherwise this is :meth:`write`.
        """
        seed = key_seed(key)
        current = self._buckets[seed & self._mask].get(key)
        if current is not None and current.expiry[1] and current.expiry[1] <= now_ms:
            current = self._live_or_expire(key, now_ms)
        if current is None or (current.schema is not schema and current.schema != schema):
            return self.write(key, schema, {origin: MaxVector.from_pairs(indices, values)}, now_ms)
        return self._grow_held(key, seed, current, (origin, indices, values))

    def merge_few(
        self, key: bytes, few: FewPairsDelta, delta: Entry | None = None
    ) -> MergeResult | None:
        """:meth:`merge` of a delta of one slice's few pairs (``(epoch, schema, expiry,
        origin, indices, values)``: a replicated write, read as its pairs) when the key holds
        the very epoch, schema and expiry it carries: the pairs go in as a local write's do
        (no entry rebuilt around the grown vector, no whole-entry checks; ~40% of a merge).
        None: the key holds something else (or nothing), or the pairs need :meth:`merge`'s
        rules (a departed node's slice): merge the entry. Same state and same delta as
        :meth:`merge` of it, and the sweep of a windowed key told alike.

        One hash of the key and one look-up serve the checks and the growth: a receiver
        does this for every replicated write."""
        epoch, schema, expiry, origin, indices, values = few
        if schema.additive and self.departures.version and (delta is None or self.retiring(delta)):
            return None
        seed = key_seed(key)
        held = self._buckets[seed & self._mask].get(key)
        if (
            held is None
            or held.epoch != epoch
            or held.expiry != expiry
            or held.schema is None
            or (held.schema is not schema and held.schema != schema)
        ):
            return None
        watch = self.watch_sliced
        if watch is not None and schema.kind in self.sliced_kinds:
            # (a windowed key's time slice: its sweep is told, as merge does; a slice with no
            # pairs is none of the delta's slices there)
            watch(key, schema, [origin] if values else [])
        # (no expiry check: a peer's delta never expires the key here, as merge does not)
        return self._grow_held(key, seed, held, (origin, indices, values))

    def _grow_held(
        self, key: bytes, seed: int, held: Entry, pairs: tuple[str, npt.ArrayLike, npt.ArrayLike]
    ) -> MergeResult:
        """Raw ``(origin, indices, values)`` pairs grown in place into ``origin``'s slice of
        ``held`` (the live entry of ``key``, whose hash seed is ``seed``, under the pairs' own
        schema), the bucket hash changed by the grown pairs only."""
        origin, indices, values = pairs
        limits = self.limits
        if isinstance(indices, list) and isinstance(values, list):  # one write's few pairs
            if limits is not None:
                payload = held.payload_bytes()
                if _GROWTH_PER_BYTE * payload + _GROWTH_PER_PAIR * len(values) + _GROWTH_FIXED > (
                    limits.key_bytes_max - payload
                ):  # (far below the cap whatever the pairs, the common case, needs no more)
                    self._admit_pairs(limits, held, origin, indices, values)
            few = held.grow_few(origin, indices, values)
            if few is not None:
                delta, grown, before = few
                if delta is not None:
                    self._change(key, seed & self._mask, packed_change(seed, origin, grown, before))
                return MergeResult(delta)
        elif limits is not None:
            self._admit_pairs(limits, held, origin, indices, values)
        result = held.grow_slice(origin, indices, values)
        if result.delta is not None and result.previous is not None:
            change = pairs_hash(
                seed, origin, result.previous.slice(origin), result.delta.slice(origin)
            )
            self._change(key, seed & self._mask, change)
        return result

    def _live_or_expire(self, key: bytes, now_ms: int) -> Entry | None:
        """The stored entry, first turning it into a tombstone if its deadline has passed."""
        entry = self.entry(key)
        if entry is not None and entry.expiry[1] and entry.expiry[1] <= now_ms:
            self._expire(key, entry)
            entry = self.entry(key)
        return entry

    def delete(self, key: bytes, now_ms: int) -> MergeResult:
        """DEL: move ``key`` to a new, empty epoch. Unchanged when the key is not live.

        The new epoch is ``max(epoch + 1, now_ms, deadline)``: a DEL later in wall-clock time
        outranks writes a lagging replica made in an older epoch, and the epoch still always
        grows. The key's deadline is in it because a replica that has not heard of the DEL yet
        may expire the old entry into a tombstone at ``max(epoch + 1, deadline)``: a write made
        after the DEL, in the DEL's epoch, must not be outranked by that tombstone (at an equal
        epoch data beats a tombstone), whatever the clock of the node that deleted.
        """
        entry = self._live_or_expire(key, now_ms)
        if entry is None or entry.schema is None:
            return MergeResult(None)
        return self.merge(key, Entry(max(entry.epoch + 1, now_ms, entry.expiry[1])))

    def set_expiry(self, key: bytes, deadline_ms: int, now_ms: int) -> MergeResult:
        """EXPIRE/PERSIST (deadline 0): unchanged when the key is not live.

        A deadline at or before ``now_ms`` deletes the key at once, as Redis does. The change is
        stamped ``max(now_ms, previous stamp + 1)`` so the latest call wins on every replica.
        """
        if deadline_ms < 0:
            raise BoundsError("deadline must be non-negative")
        entry = self._live_or_expire(key, now_ms)
        if entry is None or entry.schema is None:
            return MergeResult(None)
        if deadline_ms and deadline_ms <= now_ms:
            return self.delete(key, now_ms)
        if deadline_ms == entry.expiry[1]:
            return MergeResult(None)
        # What merge() of Entry(epoch, schema, (stamp, deadline_ms)) does to the live entry
        # (its expiry rises: the stamp is above the held one; no slice, no cap, no sweep to
        # tell), without merge's general checks and slice walks (~40% of an EXPIRE).
        old_expiry = entry.expiry
        new_expiry = (max(now_ms, old_expiry[0] + 1), deadline_ms)
        seed = key_seed(key)
        before = header_hash(seed, entry)
        was_expiring = _expiring(entry)
        entry.expiry = new_expiry
        self._change(key, seed & self._mask, before ^ header_hash(seed, entry))
        self._expiring += _expiring(entry) - was_expiring
        self._track_deadline(key, entry)
        return MergeResult(
            Entry(entry.epoch, entry.schema, new_expiry),
            previous=Entry(entry.epoch, entry.schema, old_expiry),
        )

    # -- expiry ---------------------------------------------------------------------------------

    def expire_due(self, now_ms: int, limit: int = 1000) -> list[tuple[bytes, MergeResult]]:
        """Turn up to ``limit`` keys whose deadline passed into tombstones.

        The tombstone's epoch is ``max(epoch + 1, deadline)``: every replica computes the same
        one, so expiry converges even when no message about it is exchanged.
        """
        expired: list[tuple[bytes, MergeResult]] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now_ms and len(expired) < limit:
            deadline, key = heapq.heappop(heap)
            entry = self.entry(key)
            if entry is None or entry.schema is None or entry.expiry[1] != deadline:
                continue  # stale: deleted, re-expired or persisted since
            expired.append((key, self._expire(key, entry)))
        return expired

    def _expire(self, key: bytes, entry: Entry) -> MergeResult:
        return self.merge(key, Entry(max(entry.epoch + 1, entry.expiry[1])))


def _growth_hash(seed: int, previous: Entry, grown: Entry) -> int:
    """How an entry's content hash changes when it grows from ``previous`` to ``grown`` (a
    merge's report): the header hashes cancel out when the header did not change (most
    merges only raise pairs), leaving the grown pairs' old and new hashes."""
    if (
        previous.epoch != grown.epoch
        or previous.schema is not grown.schema
        or previous.expiry != grown.expiry
    ):
        return entry_hash(b"", previous, seed) ^ entry_hash(b"", grown, seed)
    change = 0
    for origin, vector in grown.slices():
        change ^= pairs_hash(seed, origin, previous.slice(origin), vector)
    for origin, vector in previous.slices():
        if grown.slice(origin).is_empty():  # (never: previous holds the grown pairs' origins)
            change ^= pairs_hash(seed, origin, vector)
    return change


def _growth_bound(vector: MaxVector, pairs: int, width: int, top_index: int) -> int:
    """At most how many bytes merging ``pairs`` pairs (values ``width`` bytes wide, indices up
    to ``top_index``) can add to ``vector``, in O(1).

    A dense vector that needs no new slots only widens its values; one that grows its array
    does so only while the array stays no larger than the packed pairs would be (plus the
    rounding to 1,024 slots), before widening. A sparse vector re-packs every pair at the
    wider width (and turns dense only when that is smaller).
    """
    size = vector.nbytes()
    wide = max(width, vector.width)
    if vector.is_dense:
        slots = vector.dense_slots  # (a vector held as bits widens to a byte per slot)
        if top_index < slots:
            return slots * wide - size
        grown = (slots + pairs) * (4 + vector.width) + _DENSE_SLACK_BYTES
        return grown * (wide // vector.width) - size
    return 1 + (len(vector) + pairs) * (4 + wide) + _DENSE_SLACK_BYTES - size


def _rebuilt(vector: MaxVector) -> MaxVector:
    """The vector as :meth:`Entry.merge` rebuilds it into an emptied entry."""
    fresh = MaxVector()
    fresh.merge(vector)
    return fresh


def _top_index(vector: MaxVector) -> int:
    """The highest index ``vector`` may hold (its array's last slot when dense), in O(1)."""
    if vector.is_dense:
        return vector.dense_slots - 1
    indices, _ = vector.pairs()
    return int(indices[-1]) if indices.size else -1


def _expiring(entry: Entry) -> bool:
    return entry.schema is not None and entry.expiry[1] != 0
