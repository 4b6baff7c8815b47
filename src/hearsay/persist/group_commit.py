"""Group commit: many small writes from the event loop become few SQLite transactions.

The event-loop thread must never wait for a disk, and a commit per write would cap a node at a
few hundred writes per second under ``--fsync always``. So writers only *stage* a write here
(an append to a queue) and a single background thread takes everything staged so far as one
batch (the last write per key wins), commits it in one transaction, and then tells the writers.
Under load the batches grow by themselves: whatever is staged while one commit runs goes into
the next one, so many writers share one COMMIT (and one fsync).

Policies (see :class:`~hearsay.persist.fsync.FsyncPolicy`):

- ``always``: :meth:`GroupCommit.stage` returns a ticket (a ``concurrent.futures.Future``; use
  ``asyncio.wrap_future``) that completes after the COMMIT of the batch holding the write, at
  ``synchronous=FULL``, i.e. after the WAL is fsynced. Every write of a batch shares that one
  COMMIT and fsync.
- ``everysec``: the ticket is already done. The writer commits as soon as it is free
  (``synchronous=NORMAL``, so a commit is a ``write()`` to the WAL, no fsync) and runs a WAL
  checkpoint, which fsyncs the WAL and then the database, at least once per ``sync_interval_s``
  (1 s) while there are unsynced commits. A killed process loses only what was still staged in
  memory (normally milliseconds of writes); a power cut loses at most about the last second.
- ``no``: like ``everysec`` without the checkpoints (``synchronous=OFF``); the kernel decides
  when pages reach the disk.

Deltas: :meth:`GroupCommit.stage_delta` appends what grew in a key instead of its whole entry
(same tickets, same policies); a later :meth:`GroupCommit.stage` of the key replaces it and its
delta rows. So a hot big key costs its deltas, not its size, at each commit. The writer folds
a key's delta rows into its whole row (:meth:`SqliteStore.fold`, with the engine's ``fold``
function; due keys for up to ``FOLD_STEP_S`` between batches) once they reach
``FOLD_BYTES_RATIO`` of the whole row's size or ``FOLD_ROWS_MAX`` rows, and, when it has
been idle for ``FOLD_IDLE_S``, those whose rows reach ``FOLD_IDLE_BYTES_RATIO`` of it: loading
stays bounded and the log does not grow without end.

Failure makes the store read-only, not dead: if a commit or an fsync fails (a full disk, an
I/O error, a file system remounted read-only...), every ``always`` ticket in flight fails with
the cause, :attr:`GroupCommit.failure` says why (the node refuses client writes while it is
set), the error is logged once, and the writer retries every ``retry_interval_s``. Nothing
staged is dropped: the writes of the failed batch, every write committed since the last
successful sync point and everything staged meanwhile are held in memory. Retrying a failed
fsync is not safe (the kernel may have dropped the dirty pages it could not write: the
"fsyncgate" problem), so a retry does not trust what was written before: it reopens the SQLite
connection and rewrites every held write in one transaction at ``synchronous=FULL``, then
checkpoints; only when all of that succeeds is the failure cleared (logged once more). A
``close`` while the store is still failing makes one last attempt and otherwise raises
:class:`~hearsay.base.errors.StorageError` naming how many keys could not be saved.

Back-pressure: the backlog is bounded in bytes and in time. ``stage`` blocks its caller when
the writes staged and not yet taken by the writer reach ``max_pending_bytes`` (64 MiB by
default; key + blob + a fixed overhead per entry), or when the oldest uncommitted write is more
than ``max_lag_s`` old (0.25 s by default), until the writer catches up; it raises
``StorageError`` if the writer makes no room within ``stall_timeout_s``. The byte bound caps
memory (about twice the bound: the queue plus the batch being committed; under ``everysec``
the writes committed since the last sync, at most about ``sync_interval_s`` of them, are also
held for a possible rewrite); the time bound is what keeps "a killed process loses at most
about the last second" true even when writers produce faster than SQLite commits. Blocking
the event loop is deliberate: it stops the node from accepting writes faster than its disk
can take them (Redis makes the same trade when its AOF fsync falls behind). ``congested``
lets a caller shed load first.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

from hearsay.base.durations import Durations
from hearsay.base.errors import StorageError
from hearsay.persist.fsync import DEFAULT_FSYNC_POLICY, FsyncPolicy
from hearsay.persist.store import FoldFunction, SqliteStore

log = logging.getLogger(__name__)

#: A write's acknowledgement: completes (or fails) when the write is as durable as the policy
#: promises. Await it from asyncio with ``asyncio.wrap_future(ticket)``.
Ticket = Future[None]

#: Per-entry bookkeeping cost counted against ``max_pending_bytes`` (dict slot, objects).
ENTRY_OVERHEAD_BYTES: Final = 100
DEFAULT_MAX_PENDING_BYTES: Final = 64 * 1024 * 1024
DEFAULT_STALL_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_LAG_S: Final = 0.25
DEFAULT_SYNC_INTERVAL_S: Final = 1.0
DEFAULT_RETRY_INTERVAL_S: Final = 1.0
#: Keys named in the log when a close cannot save everything (the count is always given).
LOST_KEYS_LOGGED_MAX: Final = 20
_IDLE_WAIT_S: Final = 1.0
FOLD_BYTES_RATIO: Final = 0.5
"""A key's delta rows are folded once their bytes reach this fraction of its whole row: the
bytes written per change stay within a constant factor of the change (amortised)."""
FOLD_ROWS_MAX: Final = 4096
"""... or once they are this many rows: bounds what a load has to merge per key."""
FOLD_STEP_S: Final = 0.005
"""A step between batches folds due keys for at most about this long (one key at least)."""
RECOVERY_CHUNK_ROWS: Final = 256
"""Rows a transaction when a recovery rewrites the held writes (see :meth:`_recover`): ~1 MB
of WAL for keys of a kilobyte."""
FOLD_IDLE_S: Final = 1.0
"""After this long with nothing to commit, the writer folds keys whose delta rows reach
``FOLD_IDLE_BYTES_RATIO`` of their whole row (for up to ``FOLD_STEP_S`` a step)."""
FOLD_IDLE_BYTES_RATIO: Final = 1 / 16
"""... so even a fold on idle writes at most 16 times the bytes of the deltas it folds (a key
written once a second is not rewritten whole every second)."""


def _done_ticket() -> Ticket:
    ticket: Ticket = Future()
    ticket.set_running_or_notify_cancel()
    ticket.set_result(None)
    return ticket


# Non-``always`` policies acknowledge at once; one shared completed future costs nothing.
_DONE: Final = _done_ticket()


@dataclass(frozen=True, slots=True)
class CommitStats:
    """Counters since the writer started (a snapshot)."""

    staged: int  # stage() calls
    coalesced: int  # staged writes overwritten by a later write to the same key before commit
    commits: int  # transactions committed
    rows_committed: int  # rows written by those transactions (after coalescing)
    largest_batch: int  # rows in the largest transaction
    syncs: int  # explicit fsync points (WAL checkpoints) run by the everysec policy
    stalls: int  # stage() calls that had to wait for room (back-pressure)
    failures: int  # times the store became read-only (a commit or sync failed)
    recoveries: int  # times it became writable again (held writes rewritten and synced)
    delta_rows: int = 0  # delta rows committed (stage_delta)
    folds: int = 0  # keys whose delta rows were folded into their whole row
    pending_delta_rows: int = 0  # delta rows on disk waiting to be folded
    commit_duration_counts: tuple[int, ...] = ()  # per bucket of hearsay.base.durations
    commit_duration_sum_ns: int = 0  # their total (a batch's turn: commit, sync, fold)


@dataclass(slots=True)
class _Batch:
    """Writes taken at once, coalesced: the last whole write per key, and the deltas staged
    after it (a whole write drops the key's earlier deltas: it holds them)."""

    puts: dict[bytes, bytes | None] = field(default_factory=dict)
    deltas: dict[bytes, list[bytes]] = field(default_factory=dict)

    def put(self, key: bytes, blob: bytes | None) -> None:
        self.puts[key] = blob
        self.deltas.pop(key, None)

    def add_delta(self, key: bytes, blob: bytes) -> None:
        rows = self.deltas.get(key)
        if rows is None:
            self.deltas[key] = [blob]
        else:
            rows.append(blob)

    def update(self, other: _Batch) -> None:
        """Add ``other``'s writes, staged after these."""
        for key, blob in other.puts.items():
            self.put(key, blob)
        for key, blobs in other.deltas.items():
            for blob in blobs:
                self.add_delta(key, blob)

    def keys(self) -> set[bytes]:
        return set(self.puts) | set(self.deltas)

    def rows(self) -> int:
        return len(self.puts) + sum(len(blobs) for blobs in self.deltas.values())

    def __bool__(self) -> bool:
        return bool(self.puts or self.deltas)

    def __len__(self) -> int:
        """Keys written (what a failure reports as held)."""
        return len(self.keys())


@dataclass(frozen=True, slots=True)
class StorageFailure:
    """Why the store cannot write right now, and since when (``time.monotonic()``)."""

    cause: str  # short, for replies: "SQLITE_FULL: database or disk is full"
    since_s: float
    held_keys: int  # writes held in memory until the disk takes them again


def describe_cause(exc: BaseException) -> str:
    """A one-line cause of a storage failure, naming SQLite's error code when there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # bounded: each link once
        seen.add(id(current))
        if isinstance(current, sqlite3.Error):
            name = getattr(current, "sqlite_errorname", "")
            text = str(current)
            return f"{name}: {text}" if name else text
        current = current.__cause__
    return " ".join(str(exc).split()) or type(exc).__name__


class GroupCommit:
    """The background writer of one :class:`SqliteStore`; owns the store from now on.

    Threading: ``stage`` may be called from any thread (normally the event loop). It never
    takes a lock the writer thread needs: a write is an append to a ``deque`` (atomic in
    CPython) under ``_stage_lock``, which only stagers and ``close`` take. (With one lock shared
    by both sides, a busy stager re-took the lock before the woken writer could run and
    starved it of commits.) The writer takes ``_cond`` once per batch to publish progress.
    """

    def __init__(
        self,
        store: SqliteStore,
        policy: FsyncPolicy = DEFAULT_FSYNC_POLICY,
        *,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        max_lag_s: float = DEFAULT_MAX_LAG_S,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        fold: FoldFunction | None = None,
    ) -> None:
        if max_pending_bytes < 1:
            raise ValueError("max_pending_bytes must be positive")
        if min(max_lag_s, stall_timeout_s, sync_interval_s, retry_interval_s) <= 0:
            raise ValueError("max_lag_s, stall_timeout_s and the intervals must be positive")
        self._store = store
        self._policy = policy
        self._max_pending_bytes = max_pending_bytes
        self._max_lag_s = max_lag_s
        self._stall_timeout_s = stall_timeout_s
        self._sync_interval_s = sync_interval_s
        self._retry_interval_s = retry_interval_s
        store.set_synchronous(policy.sqlite_synchronous)

        # Stagers' side (written under _stage_lock only).
        self._stage_lock = threading.Lock()
        # seq, key, blob, size, is a delta
        self._queue: deque[tuple[int, bytes, bytes | None, int, bool]] = deque()
        self._waiters: deque[tuple[int, Ticket]] = deque()  # ``always`` only, in seq order
        self._staged_seq = 0
        self._staged_bytes = 0
        self._stalls = 0
        self._closing = False

        # Writer's side (written by the writer thread; published under _cond).
        self._cond = threading.Condition(threading.Lock())
        self._taken_bytes = 0
        self._committed_seq = 0
        self._synced_seq = 0  # every write up to here is as durable as the policy makes it
        # Every write staged before this moment is committed.
        self._committed_through_s = time.monotonic()
        self._writer_idle = False
        self._closed = False
        self._failure: StorageFailure | None = None
        self._lost: StorageError | None = None  # set when close() gave up on held writes
        # Writes committed since the last sync point, or not committed because the store
        # failed: what a recovery rewrites (writer thread only).
        self._held = _Batch()
        self._held_seq = 0  # the newest staged write in _held
        self._failures = 0
        self._recoveries = 0
        self._coalesced = 0
        self._commits = 0
        self._rows_committed = 0
        self._commit_durations = Durations()  # per batch: commit (+ sync, fold); under _cond
        self._largest_batch = 0
        self._syncs = 0
        # The delta log (writer thread only): key -> [rows, bytes, bytes at which a fold is
        # due] on disk not yet folded.
        self._fold = fold
        self._unfolded: dict[bytes, list[int]] = {
            key: [rows, size, self._fold_bytes(store, key)]
            for key, (rows, size) in store.pending_deltas().items()
        }
        self._delta_rows = 0
        self._folds = 0

        self._thread = threading.Thread(
            target=self._run, name=f"hearsay-persist-{os.getpid()}", daemon=True
        )
        self._thread.start()

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        policy: FsyncPolicy = DEFAULT_FSYNC_POLICY,
        *,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        max_lag_s: float = DEFAULT_MAX_LAG_S,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        fold: FoldFunction | None = None,
    ) -> GroupCommit:
        """Open the store in ``data_dir`` and start its writer."""
        store = SqliteStore(data_dir, synchronous=policy.sqlite_synchronous)
        try:
            return cls(
                store,
                policy,
                max_pending_bytes=max_pending_bytes,
                max_lag_s=max_lag_s,
                stall_timeout_s=stall_timeout_s,
                sync_interval_s=sync_interval_s,
                retry_interval_s=retry_interval_s,
                fold=fold,
            )
        except BaseException:
            store.close()
            raise

    # ------------------------------------------------------------------ properties

    @property
    def store(self) -> SqliteStore:
        return self._store

    @property
    def policy(self) -> FsyncPolicy:
        return self._policy

    @property
    def pending_bytes(self) -> int:
        """Bytes staged and not yet taken by the writer (approximate while both run)."""
        return max(0, self._staged_bytes - self._taken_bytes)

    @property
    def unsynced_writes(self) -> int:
        """Writes staged and not yet as durable as the policy makes them (under ``everysec``:
        not yet fsynced by a checkpoint): what a power cut could take now."""
        return max(0, self._staged_seq - self._synced_seq)

    @property
    def lag_s(self) -> float:
        """Age of the oldest write not yet committed (0.0 when everything is committed)."""
        if self._staged_seq <= self._committed_seq:
            return 0.0
        return max(0.0, time.monotonic() - self._committed_through_s)

    @property
    def congested(self) -> bool:
        """True when the next ``stage`` would block for room."""
        return self._behind(time.monotonic())

    def _behind(self, now_s: float) -> bool:
        if self._failure is not None:
            return False  # nothing drains while failed; callers stop staging instead
        if self._staged_bytes - self._taken_bytes >= self._max_pending_bytes:
            return True
        return (
            now_s - self._committed_through_s > self._max_lag_s
            and self._staged_seq > self._committed_seq
        )

    @property
    def failure(self) -> StorageFailure | None:
        """Why the store cannot write right now (None while it can)."""
        return self._failure

    @property
    def error(self) -> StorageError | None:
        """The current failure as an error (None while the store can write)."""
        failure = self._failure
        if failure is None:
            return None
        return StorageError(f"cannot write {self._store.path}: {failure.cause}")

    def stats(self) -> CommitStats:
        with self._cond:
            return CommitStats(
                staged=self._staged_seq,
                coalesced=self._coalesced,
                commits=self._commits,
                rows_committed=self._rows_committed,
                largest_batch=self._largest_batch,
                syncs=self._syncs,
                stalls=self._stalls,
                failures=self._failures,
                recoveries=self._recoveries,
                delta_rows=self._delta_rows,
                folds=self._folds,
                pending_delta_rows=sum(counts[0] for counts in list(self._unfolded.values())),
                commit_duration_counts=tuple(self._commit_durations.counts),
                commit_duration_sum_ns=self._commit_durations.sum_ns,
            )

    # ------------------------------------------------------------------ writers' side

    def stage_delta(self, key: bytes, blob: bytes) -> Ticket:
        """Stage what grew in ``key`` since its last staged write (an encoded delta): appended
        as a delta row, folded into the whole row later. Otherwise exactly like :meth:`stage`.
        """
        return self.stage_batch([(key, blob, True)])

    def stage(self, key: bytes, blob: bytes | None) -> Ticket:
        """Stage ``key -> blob`` (``None`` removes the key) for the next commit.

        Returns the write's ticket; see the module docstring for when it completes. While the
        store is failing the write is still held for the retry, but an ``always`` ticket fails
        at once (it cannot be acknowledged). Raises :class:`StorageError` if the store is
        closed, ``TypeError`` unless key and blob are ``bytes``, and blocks when the backlog is
        full (back-pressure).
        """
        return self.stage_batch([(key, blob, False)])

    def stage_batch(self, writes: Sequence[tuple[bytes, bytes | None, bool]]) -> Ticket:
        """Stage ``writes`` in order, each ``(key, blob, is_delta)``: what as many
        :meth:`stage` (``is_delta`` false) and :meth:`stage_delta` calls would, under one lock,
        one look at the backlog and one ticket, the last write's (tickets complete in staging
        order). A flush stages every dirty key at once: per key, only an append. The backlog
        bound is checked before the batch, so one batch may pass it by its own size."""
        # Checked here, not by SQLite at commit time, where it would fail the whole store.
        for key, blob, delta in writes:
            if type(key) is not bytes or not (type(blob) is bytes or (blob is None and not delta)):
                kinds = f"{type(key).__name__} -> {type(blob).__name__}"
                raise TypeError(f"staging takes bytes, got {kinds}")
        if not writes:
            return _DONE
        ticket = _DONE
        with self._stage_lock:
            self._raise_if_unusable()
            if self._behind(time.monotonic()):
                self._wait_for_room()
            seq = self._staged_seq
            if self._policy is FsyncPolicy.ALWAYS:
                ticket = Future()
                ticket.set_running_or_notify_cancel()  # cannot be cancelled: it is in flight
                # The waiter goes in before the writes, so the writer, having taken the last
                # of them, always finds its waiter.
                self._waiters.append((seq + len(writes), ticket))
            queue = self._queue
            staged_bytes = 0
            for key, blob, delta in writes:
                seq += 1
                size = len(key) + (0 if blob is None else len(blob)) + ENTRY_OVERHEAD_BYTES
                queue.append((seq, key, blob, size, delta))
                staged_bytes += size
            self._staged_seq = seq
            self._staged_bytes += staged_bytes
            failure = self._failure
            if failure is not None and ticket is not _DONE:
                self._fail_waiters(self._failure_error(failure))
        if self._writer_idle:
            with self._cond:
                self._cond.notify_all()
        return ticket

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every write staged before this call is committed.

        Committed means it survives a crash of this process; under ``always`` it is also
        fsynced, under ``everysec`` it will be within a second. Raises :class:`StorageError`
        while the store is failing or if ``timeout_s`` passes first.
        """
        deadline = time.monotonic() + timeout_s
        target = self._staged_seq
        with self._cond:
            while self._committed_seq < target:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise StorageError("the persistence writer thread is not running")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StorageError(
                        f"flush timed out after {timeout_s} s "
                        f"({target - self._committed_seq} writes not committed)"
                    )
                self._cond.wait(min(remaining, _IDLE_WAIT_S))
            self._raise_if_failed()

    def close(
        self, timeout_s: float = 30.0, *, final_meta: Mapping[str, bytes | None] | None = None
    ) -> None:
        """Commit everything staged, make it durable (not under ``no``), stop, close the db.

        Idempotent. While the store is failing the writer makes one last attempt; if that
        fails too, this raises :class:`StorageError` saying how many keys were not saved
        (after releasing the store). Also raises if the writer does not stop in ``timeout_s``.
        ``final_meta`` is committed durably after every staged write, and only if all of them
        were saved: a marker such as "this node stopped cleanly" must never outlive a loss.
        """
        with self._stage_lock:
            self._closing = True  # no stage() can add a write after this
        with self._cond:
            if self._closed:
                return
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise StorageError(f"the persistence writer did not stop within {timeout_s} s")
        with self._cond:
            self._closed = True
        try:
            if self._lost is None and final_meta:
                self._store.write_batch({}, final_meta, durable=True)
        finally:
            self._store.close()
        if self._lost is not None:
            raise self._lost

    def __enter__(self) -> GroupCommit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _raise_if_failed(self) -> None:
        error = self._lost
        if error is None and self._failure is not None:
            error = self._failure_error(self._failure)
        if error is not None:
            raise error

    @staticmethod
    def _failure_error(failure: StorageFailure) -> StorageError:
        """The error of a failed ticket or flush: the cause alone (replies quote it)."""
        return StorageError(failure.cause)

    def _raise_if_unusable(self) -> None:
        if self._lost is not None:
            raise self._lost
        if self._closing:
            raise StorageError(f"store {self._store.path} is closed")

    def _wait_for_room(self) -> None:
        """Block (holding ``_stage_lock``, so other stagers queue behind) until there is room."""
        self._stalls += 1
        deadline = time.monotonic() + self._stall_timeout_s
        with self._cond:
            while self._behind(time.monotonic()):  # False as soon as the store fails
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StorageError(
                        "the persistence writer is "
                        f"{self._staged_bytes - self._taken_bytes} bytes and "
                        f"{self.lag_s:.1f} s behind and made no room within "
                        f"{self._stall_timeout_s} s"
                    )
                self._cond.wait(min(remaining, _IDLE_WAIT_S))

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        try:
            self._write_loop()
        except BaseException as exc:  # a bug, not a disk: the disk's failures are handled
            log.exception("the persistence writer stopped")
            self._give_up(f"the persistence writer stopped: {exc}")
        finally:
            with self._cond:
                if self._lost is None and not self._closing:  # pragma: no cover - defensive
                    self._lost = StorageError("the persistence writer thread stopped unexpectedly")
                self._cond.notify_all()

    def _wait_for_work(self, unsynced: bool, next_sync_s: float) -> bool:
        """Wait for staged writes, closing, a due sync, or (with delta rows to fold) being
        idle for ``FOLD_IDLE_S``: then True (fold a key now)."""
        fold_at_s = time.monotonic() + FOLD_IDLE_S if self._can_fold() else None
        with self._cond:
            self._writer_idle = True
            try:
                # Re-checked after raising the flag: a stager that appended before it saw the
                # flag down is found here; one that appends after it sees the flag and
                # notifies (it needs _cond, which wait() releases).
                if not self._queue:
                    # Everything staged so far was committed by the previous batches.
                    self._committed_through_s = time.monotonic()
                    self._cond.notify_all()
                while not self._queue and not self._closing:
                    now_s = time.monotonic()
                    timeout_s = _IDLE_WAIT_S
                    if unsynced:
                        timeout_s = next_sync_s - now_s
                        if timeout_s <= 0:
                            return False
                    if fold_at_s is not None:
                        if fold_at_s <= now_s:
                            return True
                        timeout_s = min(timeout_s, fold_at_s - now_s)
                    self._cond.wait(timeout_s)
                return False
            finally:
                self._writer_idle = False

    def _take_batch(self) -> tuple[_Batch, int, int, float]:
        """Everything queued now, coalesced: (batch, last seq, writes taken, taken at)."""
        taken_at_s = time.monotonic()
        queue = self._queue
        batch = _Batch()
        last_seq = -1
        taken_bytes = 0
        count = len(queue)
        for _ in range(count):
            seq, key, blob, size, delta = queue.popleft()
            if delta:
                assert blob is not None
                batch.add_delta(key, blob)
            else:
                batch.put(key, blob)
            last_seq = seq
            taken_bytes += size
        if count:
            with self._cond:
                self._taken_bytes += taken_bytes
                self._cond.notify_all()  # room for stalled stagers
        return batch, last_seq, count, taken_at_s

    def _write_loop(self) -> None:
        everysec = self._policy is FsyncPolicy.EVERYSEC
        next_sync_s = time.monotonic() + self._sync_interval_s
        unsynced = False  # committed since the last checkpoint (everysec only)
        while True:
            if self._failure is not None:
                closing = self._wait_to_retry()
                if self._recover():
                    unsynced = False
                    next_sync_s = time.monotonic() + self._sync_interval_s
                elif closing:
                    self._give_up(self._failure.cause if self._failure else "unknown")
                    return
                continue
            idle = self._wait_for_work(unsynced, next_sync_s)
            closing = self._closing  # read before taking: nothing is staged after it is set
            batch, last_seq, taken, taken_at_s = self._take_batch()
            started_ns = time.perf_counter_ns()
            try:
                if batch:
                    self._store.write_batch(batch.puts, deltas=batch.deltas)
                    self._note_unfolded(batch)
                    if everysec:  # committed, not yet synced: a failed sync rewrites it
                        self._hold(batch, last_seq)
                    unsynced = everysec
                if not closing and (batch.deltas or idle):
                    unsynced |= self._fold_some(None if idle else batch.deltas) and everysec
                if unsynced and (closing or time.monotonic() >= next_sync_s):
                    self._store.checkpoint()
                    self._held = _Batch()
                    unsynced = False
                    next_sync_s = time.monotonic() + self._sync_interval_s
                    with self._cond:
                        self._syncs += 1
                        self._synced_seq = last_seq if taken else self._committed_seq
            except Exception as exc:  # the disk's or SQLite's: become read-only, hold, retry
                if batch:
                    self._hold(batch, last_seq)
                self._enter_failure(exc)
                continue
            if taken:
                with self._cond:
                    self._committed_seq = last_seq
                    if not everysec:  # committed is as durable as always and no make it
                        self._synced_seq = last_seq
                    self._committed_through_s = taken_at_s
                    rows = batch.rows()
                    self._commits += 1
                    self._rows_committed += rows
                    self._delta_rows += rows - len(batch.puts)
                    self._coalesced += taken - rows
                    self._largest_batch = max(self._largest_batch, rows)
                    self._commit_durations.record(time.perf_counter_ns() - started_ns)
                    self._cond.notify_all()
                self._complete_waiters(last_seq)
            # Not held while waiting: a big entry's bytes stayed resident until the next write.
            del batch
            if closing and not taken:
                return  # everything staged before close() is committed (and synced)

    def _complete_waiters(self, committed_seq: int) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= committed_seq:
            waiters.popleft()[1].set_result(None)

    def _hold(self, batch: _Batch, last_seq: int) -> None:
        self._held.update(batch)  # newer writes replace older ones of the same key
        self._held_seq = max(self._held_seq, last_seq)

    # ------------------------------------------------------------------ the delta log

    def _can_fold(self) -> bool:
        return self._fold is not None and bool(self._unfolded) and self._failure is None

    def _note_unfolded(self, batch: _Batch) -> None:
        """Track the delta rows a committed batch left on disk (a put removed its key's)."""
        unfolded = self._unfolded
        for key in batch.puts:
            unfolded.pop(key, None)
        for key, blobs in batch.deltas.items():
            counts = unfolded.get(key)
            if counts is None:
                counts = unfolded[key] = [0, 0, self._fold_bytes(self._store, key)]
            counts[0] += len(blobs)
            counts[1] += sum(len(blob) for blob in blobs)

    def _fold_some(self, among: Mapping[bytes, object] | None) -> bool:
        """Fold due keys (see :meth:`_fold_one`) for up to ``FOLD_STEP_S``, at least one; True
        if any was folded. Many mid-size keys taking deltas fall due faster than one fold a
        batch could keep up with."""
        until_s = time.monotonic() + FOLD_STEP_S
        folded = False
        while self._fold_one(among):
            folded = True
            if time.monotonic() >= until_s:
                break
        return folded

    def _fold_one(self, among: Mapping[bytes, object] | None) -> bool:
        """Fold one key's delta rows if one of ``among`` is due (None: any key, the writer
        being idle); True if it folded.

        One key per step, between batches, so the stagers' commits wait for at most one fold.
        """
        fold = self._fold
        unfolded = self._unfolded
        if fold is None or not unfolded:
            return False
        due: bytes | None = None
        if among is None:
            for key, (rows, size, due_bytes) in unfolded.items():
                if rows >= FOLD_ROWS_MAX or size >= due_bytes * FOLD_IDLE_BYTES_RATIO:
                    due = key
                    break
        else:
            for key in among:
                counts = unfolded.get(key)
                if counts is not None and (counts[0] >= FOLD_ROWS_MAX or counts[1] >= counts[2]):
                    due = key
                    break
        if due is None:
            return False
        folded = self._store.fold(due, fold)
        self._unfolded.pop(due, None)  # a refused fold is left for the load's quarantine
        if folded:
            with self._cond:
                self._folds += 1
        return folded > 0

    @staticmethod
    def _fold_bytes(store: SqliteStore, key: bytes) -> int:
        """Delta bytes at which ``key`` is due for a fold: its whole row's share."""
        return int(FOLD_BYTES_RATIO * store.stored_size(key))

    def _enter_failure(self, exc: BaseException) -> None:
        """Become read-only: record why, fail every ``always`` ticket in flight, log once."""
        cause = describe_cause(exc)
        with self._cond:  # first, so stagers waiting for room stop waiting
            first = self._failure is None
            since_s = time.monotonic() if self._failure is None else self._failure.since_s
            failure = StorageFailure(cause, since_s, len(self._held))
            self._failure = failure
            self._failures += first
            self._cond.notify_all()
        if first:
            log.error(
                "cannot write %s (%s): the node refuses writes until it can; %d writes are "
                "held in memory and retried every %.1f s",
                self._store.path,
                cause,
                len(self._held),
                self._retry_interval_s,
            )
        with self._stage_lock:
            self._fail_waiters(self._failure_error(failure))

    def _fail_waiters(self, error: StorageError) -> None:
        """Fail every ``always`` ticket in flight (the caller holds ``_stage_lock``)."""
        waiters = list(self._waiters)
        self._waiters.clear()
        for _, ticket in waiters:
            if not ticket.done():
                ticket.set_exception(error)

    def _wait_to_retry(self) -> bool:
        """Sleep one retry interval, or less if closing; returns whether closing."""
        deadline = time.monotonic() + self._retry_interval_s
        with self._cond:
            while not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._closing

    def _recover(self) -> bool:
        """Rewrite every held write through a fresh connection and sync; True on success.

        Nothing written before the failure is trusted (a failed fsync may have dropped pages
        the kernel still showed as written): the held writes are written again, durably, in
        chunks with the WAL cut back after each (:meth:`SqliteStore.write_in_chunks`): a disk
        that filled up has room for the rows once freed, not always for them and one
        transaction's WAL as well (a page per random key). A crash part way keeps the chunks
        written so far (the others were as lost before it began).
        """
        batch, last_seq, _, taken_at_s = self._take_batch()
        if batch:
            self._hold(batch, last_seq)
        try:
            self._store.reopen()
            held = self._held
            self._store.write_in_chunks(held.puts, held.deltas, rows_max=RECOVERY_CHUNK_ROWS)
            self._note_unfolded(held)
        except Exception as exc:
            cause = describe_cause(exc)
            with self._cond:
                since_s = self._failure.since_s if self._failure else time.monotonic()
                self._failure = StorageFailure(cause, since_s, len(self._held))
            log.debug("storage still failing: %s", cause)
            return False
        rows = self._held.rows()
        self._held = _Batch()
        with self._cond:
            failure, self._failure = self._failure, None
            self._recoveries += 1
            self._committed_seq = max(self._committed_seq, self._held_seq)
            self._synced_seq = self._committed_seq
            self._committed_through_s = taken_at_s
            self._commits += 1
            self._rows_committed += rows
            self._syncs += 1
            self._cond.notify_all()
        lasted_s = time.monotonic() - failure.since_s if failure else 0.0
        log.warning(
            "storage writable again after %.1f s: rewrote and synced %d held writes to %s; "
            "the node accepts writes again",
            lasted_s,
            rows,
            self._store.path,
        )
        return True

    def _give_up(self, cause: str) -> None:
        """Closing while the store still fails: say loudly what could not be saved."""
        with self._stage_lock:
            for seq, key, blob, _, delta in self._queue:
                if delta:
                    assert blob is not None
                    self._held.add_delta(key, blob)
                else:
                    self._held.put(key, blob)
                self._held_seq = max(self._held_seq, seq)
            self._queue.clear()
            self._taken_bytes = self._staged_bytes
        keys = sorted(self._held.keys())
        error = StorageError(
            f"{len(keys)} keys could not be saved to {self._store.path} ({cause}): this node "
            "lost them (its peers may still hold them)"
        )
        with self._cond:
            self._lost = error
            self._cond.notify_all()
        if keys:
            shown = ", ".join(repr(key) for key in keys[:LOST_KEYS_LOGGED_MAX])
            more = len(keys) - LOST_KEYS_LOGGED_MAX
            log.error("%s: %s%s", error, shown, f" and {more} more" if more > 0 else "")
        with self._stage_lock:
            self._fail_waiters(error)
