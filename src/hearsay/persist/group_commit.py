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

Failure is sticky: if a commit or an fsync fails, the error is recorded, every ticket in flight
fails with it, the thread stops, and every later ``stage``/``flush``/``close`` raises
:class:`~hearsay.base.errors.StorageError`. Retrying a failed fsync is not safe (the kernel may
have dropped the dirty pages it could not write), so the node must restart and let its peers
refill what was lost.

Back-pressure: the backlog is bounded in bytes and in time. ``stage`` blocks its caller when
the writes staged and not yet taken by the writer reach ``max_pending_bytes`` (64 MiB by
default; key + blob + a fixed overhead per entry), or when the oldest uncommitted write is more
than ``max_lag_s`` old (0.25 s by default), until the writer catches up; it raises
``StorageError`` if the writer makes no room within ``stall_timeout_s``. The byte bound caps
memory (about twice the bound: the queue plus the batch being committed); the time bound is what
keeps "a killed process loses at most about the last second" true even when writers produce
faster than SQLite commits. Blocking the event loop is deliberate: it stops the node from
accepting writes faster than its disk can take them (Redis makes the same trade when its AOF
fsync falls behind). ``congested`` lets a caller shed load first.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from hearsay.base.errors import StorageError
from hearsay.persist.fsync import DEFAULT_FSYNC_POLICY, FsyncPolicy
from hearsay.persist.store import SqliteStore

#: A write's acknowledgement: completes (or fails) when the write is as durable as the policy
#: promises. Await it from asyncio with ``asyncio.wrap_future(ticket)``.
Ticket = Future[None]

#: Per-entry bookkeeping cost counted against ``max_pending_bytes`` (dict slot, objects).
ENTRY_OVERHEAD_BYTES: Final = 100
DEFAULT_MAX_PENDING_BYTES: Final = 64 * 1024 * 1024
DEFAULT_STALL_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_LAG_S: Final = 0.25
DEFAULT_SYNC_INTERVAL_S: Final = 1.0
_IDLE_WAIT_S: Final = 1.0


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
    ) -> None:
        if max_pending_bytes < 1:
            raise ValueError("max_pending_bytes must be positive")
        if min(max_lag_s, stall_timeout_s, sync_interval_s) <= 0:
            raise ValueError("max_lag_s, stall_timeout_s and sync_interval_s must be positive")
        self._store = store
        self._policy = policy
        self._max_pending_bytes = max_pending_bytes
        self._max_lag_s = max_lag_s
        self._stall_timeout_s = stall_timeout_s
        self._sync_interval_s = sync_interval_s
        store.set_synchronous(policy.sqlite_synchronous)

        # Stagers' side (written under _stage_lock only).
        self._stage_lock = threading.Lock()
        self._queue: deque[tuple[int, bytes, bytes | None, int]] = deque()  # seq, key, blob, size
        self._waiters: deque[tuple[int, Ticket]] = deque()  # ``always`` only, in seq order
        self._staged_seq = 0
        self._staged_bytes = 0
        self._stalls = 0
        self._closing = False

        # Writer's side (written by the writer thread; published under _cond).
        self._cond = threading.Condition(threading.Lock())
        self._taken_bytes = 0
        self._committed_seq = 0
        # Every write staged before this moment is committed.
        self._committed_through_s = time.monotonic()
        self._writer_idle = False
        self._closed = False
        self._error: StorageError | None = None
        self._coalesced = 0
        self._commits = 0
        self._rows_committed = 0
        self._largest_batch = 0
        self._syncs = 0

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
        if self._staged_bytes - self._taken_bytes >= self._max_pending_bytes:
            return True
        return (
            now_s - self._committed_through_s > self._max_lag_s
            and self._staged_seq > self._committed_seq
        )

    @property
    def error(self) -> StorageError | None:
        """The recorded background failure, if any."""
        return self._error

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
            )

    # ------------------------------------------------------------------ writers' side

    def stage(self, key: bytes, blob: bytes | None) -> Ticket:
        """Stage ``key -> blob`` (``None`` removes the key) for the next commit.

        Returns the write's ticket; see the module docstring for when it completes. Raises
        :class:`StorageError` if the writer has failed or the store is closed, ``TypeError``
        unless key and blob are ``bytes``, and blocks when the backlog is full (back-pressure).
        """
        # Checked here, not by SQLite at commit time, where it would fail the whole store.
        if type(key) is not bytes or (blob is not None and type(blob) is not bytes):
            kinds = f"{type(key).__name__} -> {type(blob).__name__}"
            raise TypeError(f"stage() takes bytes, got {kinds}")
        size = len(key) + (0 if blob is None else len(blob)) + ENTRY_OVERHEAD_BYTES
        ticket = _DONE
        with self._stage_lock:
            self._raise_if_unusable()
            if self._behind(time.monotonic()):
                self._wait_for_room()
            seq = self._staged_seq + 1
            if self._policy is FsyncPolicy.ALWAYS:
                ticket = Future()
                ticket.set_running_or_notify_cancel()  # cannot be cancelled: it is in flight
                # The waiter goes in before the write, so the writer, having taken write
                # ``seq``, always finds its waiter.
                self._waiters.append((seq, ticket))
            self._queue.append((seq, key, blob, size))
            self._staged_seq = seq
            self._staged_bytes += size
        if self._writer_idle:
            with self._cond:
                self._cond.notify_all()
        return ticket

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every write staged before this call is committed.

        Committed means it survives a crash of this process; under ``always`` it is also
        fsynced, under ``everysec`` it will be within a second. Raises :class:`StorageError`
        on a background failure or if ``timeout_s`` passes first.
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

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit everything staged, make it durable (not under ``no``), stop, close the db.

        Idempotent. Raises :class:`StorageError` if the writer had failed (after releasing
        the store) or does not stop within ``timeout_s``.
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
        self._store.close()
        self._raise_if_failed()

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
        error = self._error
        if error is not None:
            raise StorageError(str(error)) from error

    def _raise_if_unusable(self) -> None:
        self._raise_if_failed()
        if self._closing:
            raise StorageError(f"store {self._store.path} is closed")

    def _wait_for_room(self) -> None:
        """Block (holding ``_stage_lock``, so other stagers queue behind) until there is room."""
        self._stalls += 1
        deadline = time.monotonic() + self._stall_timeout_s
        with self._cond:
            while self._behind(time.monotonic()):
                self._raise_if_failed()
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
        except BaseException as exc:
            self._fail(exc)
        finally:
            with self._cond:
                if self._error is None and not self._closing:  # pragma: no cover - defensive
                    self._error = StorageError("the persistence writer thread stopped unexpectedly")
                self._cond.notify_all()

    def _wait_for_work(self, unsynced: bool, next_sync_s: float) -> None:
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
                    timeout_s = _IDLE_WAIT_S
                    if unsynced:
                        timeout_s = next_sync_s - time.monotonic()
                        if timeout_s <= 0:
                            return
                    self._cond.wait(timeout_s)
            finally:
                self._writer_idle = False

    def _take_batch(self) -> tuple[dict[bytes, bytes | None], int, int, float]:
        """Everything queued now, coalesced: (batch, last seq, writes taken, taken at)."""
        taken_at_s = time.monotonic()
        queue = self._queue
        batch: dict[bytes, bytes | None] = {}
        last_seq = -1
        taken_bytes = 0
        count = len(queue)
        for _ in range(count):
            seq, key, blob, size = queue.popleft()
            batch[key] = blob
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
            self._wait_for_work(unsynced, next_sync_s)
            closing = self._closing  # read before taking: nothing is staged after it is set
            batch, last_seq, taken, taken_at_s = self._take_batch()
            if batch:
                self._store.write_batch(batch)
                unsynced = everysec
            if unsynced and (closing or time.monotonic() >= next_sync_s):
                self._store.checkpoint()
                unsynced = False
                next_sync_s = time.monotonic() + self._sync_interval_s
                with self._cond:
                    self._syncs += 1
            if taken:
                with self._cond:
                    self._committed_seq = last_seq
                    self._committed_through_s = taken_at_s
                    self._commits += 1
                    self._rows_committed += len(batch)
                    self._coalesced += taken - len(batch)
                    self._largest_batch = max(self._largest_batch, len(batch))
                    self._cond.notify_all()
                self._complete_waiters(last_seq)
            if closing and not taken:
                return  # everything staged before close() is committed (and synced)

    def _complete_waiters(self, committed_seq: int) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= committed_seq:
            waiters.popleft()[1].set_result(None)

    def _fail(self, exc: BaseException) -> None:
        error = StorageError(
            f"background commit to {self._store.path} failed; writes not yet committed are "
            f"lost and the store refuses new writes: {exc}"
        )
        error.__cause__ = exc
        with self._cond:  # first, so stagers waiting for room (holding _stage_lock) give up
            if self._error is None:
                self._error = error
            error = self._error
            self._cond.notify_all()
        with self._stage_lock:  # from here no stage() succeeds, so this sweep is final
            self._queue.clear()
            self._taken_bytes = self._staged_bytes
            waiters = list(self._waiters)
            self._waiters.clear()
        for _, ticket in waiters:
            if not ticket.done():
                ticket.set_exception(error)
