"""Durable storage: the SQLite store, group commit under each fsync policy, node identity."""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import StorageError
from hearsay.persist.fsync import DEFAULT_FSYNC_POLICY, FsyncPolicy, FsyncPolicyError
from hearsay.persist.group_commit import GroupCommit
from hearsay.persist.identity import NodeIdentity
from hearsay.persist.store import DB_FILE_NAME, SCHEMA_VERSION, UPSERT_MANY_FROM, SqliteStore

POLICIES = list(FsyncPolicy)


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)


class HeldWriter:
    """Makes the store's write_batch wait for ``release`` and records every batch it gets."""

    def __init__(self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[dict[bytes, bytes | None]] = []
        real = store.write_batch

        def write_batch(
            puts: Mapping[bytes, bytes | None],
            meta: Mapping[str, bytes | None] | None = None,
            *,
            deltas: Mapping[bytes, Sequence[bytes]] | None = None,
            durable: bool = False,
        ) -> None:
            self.batches.append(dict(puts))
            self.entered.set()
            if not self.release.wait(10.0):
                raise RuntimeError("test never released the writer")
            real(puts, meta, deltas=deltas, durable=durable)

        monkeypatch.setattr(store, "write_batch", write_batch)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "data")
    yield opened
    opened.close()


# ---------------------------------------------------------------------------- fsync policy


def test_fsync_policy_parses_flag_values() -> None:
    assert FsyncPolicy.parse("always") is FsyncPolicy.ALWAYS
    assert FsyncPolicy.parse(" EverySec ") is FsyncPolicy.EVERYSEC
    assert FsyncPolicy.parse("no") is FsyncPolicy.NO
    assert DEFAULT_FSYNC_POLICY is FsyncPolicy.EVERYSEC
    assert [str(p) for p in FsyncPolicy] == ["always", "everysec", "no"]
    assert [p.sqlite_synchronous for p in FsyncPolicy] == ["FULL", "NORMAL", "OFF"]


@pytest.mark.parametrize("text", ["", "sometimes", "yes", "every-sec"])
def test_fsync_policy_rejects_unknown_values(text: str) -> None:
    with pytest.raises(FsyncPolicyError, match="always, everysec, no"):
        FsyncPolicy.parse(text)
    with pytest.raises(ValueError):  # argparse turns ValueError into a usage error
        FsyncPolicy.parse(text)


# ---------------------------------------------------------------------------- store


def test_store_round_trip_and_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    big = os.urandom(1 << 20)
    with SqliteStore(data) as store:
        assert list(store.load()) == []
        store.write_batch({b"b": b"2", b"a": b"1", b"\x00\xff": b"", b"big": big})
        store.write_batch({b"a": b"one", b"b": None, b"missing": None})
        assert store.get(b"a") == b"one"
        assert store.get(b"b") is None
        assert store.count() == 3
    assert (data / DB_FILE_NAME).is_file()
    with SqliteStore(data) as store:
        assert list(store.load()) == [(b"\x00\xff", b""), (b"a", b"one"), (b"big", big)]
        store.check_integrity()


def test_a_big_batch_is_upserted_in_one_statement_exactly(store: SqliteStore) -> None:
    """Batches of UPSERT_MANY_FROM rows or more are written by one statement that cuts keys
    and blobs out of one concatenated blob: every row must read back byte for byte, with a
    checksum that holds (load skips a row whose checksum fails), across replacements and
    deletes, and the same as the same rows written a few at a time."""
    rng = random.Random(3)
    model: dict[bytes, bytes] = {}
    for round_no in range(4):
        batch: dict[bytes, bytes | None] = {}
        while len(batch) < UPSERT_MANY_FROM + rng.randrange(300):
            key = rng.choice([b"", b"\x00\xff", b"k%d" % rng.randrange(500), rng.randbytes(40)])
            size = rng.choice([0, 1, 60, 1400, 70_000])
            batch[key] = None if round_no and rng.random() < 0.1 else rng.randbytes(size)
        store.write_batch(batch)
        for key, blob in batch.items():
            if blob is None:
                model.pop(key, None)
            else:
                model[key] = blob
        assert dict(store.load()) == model
    for key, blob in sorted(model.items())[: UPSERT_MANY_FROM - 1]:  # (a few at a time)
        store.write_batch({key: blob})
    assert dict(store.load()) == model
    store.check_integrity()


def test_store_load_pages_through_every_key(store: SqliteStore) -> None:
    items = {f"k{i:03d}".encode(): str(i).encode() for i in range(10)}
    store.write_batch(items)
    for page_keys in (1, 3, 10, 11):
        assert dict(store.load(page_keys=page_keys)) == items
    assert [key for key, _ in store.load(page_keys=4)] == sorted(items)


def test_store_batch_is_one_transaction(store: SqliteStore) -> None:
    store.write_batch({b"kept": b"1"})
    bad: dict[bytes, bytes | None] = {b"x": b"1", b"y": "not bytes"}  # type: ignore[dict-item]
    with pytest.raises(StorageError, match="cannot write"):
        store.write_batch(bad)
    assert dict(store.load()) == {b"kept": b"1"}
    store.write_batch({b"z": b"after"}, durable=True)  # the store is still usable
    assert store.get(b"z") == b"after"
    assert store.synchronous == "NORMAL"  # durable= restores the level


def test_store_meta_values(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with SqliteStore(data) as store:
        assert store.meta_get("nothing") is None
        assert store.meta_items() == {"schema_version": str(SCHEMA_VERSION).encode()}
        store.meta_set("alpha", b"1")
        store.write_batch({b"k": b"v"}, {"beta": b"2", "alpha": None}, durable=True)
        with pytest.raises(StorageError, match="reserved"):
            store.meta_set("schema_version", b"99")
    with SqliteStore(data) as store:
        assert store.meta_get("alpha") is None
        assert store.meta_get("beta") == b"2"
        assert store.get(b"k") == b"v"


def test_store_is_locked_to_one_opener(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = SqliteStore(data)
    with pytest.raises(StorageError, match="in use"):
        SqliteStore(data)
    first.close()
    first.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        first.get(b"k")
    SqliteStore(data).close()  # the lock went with the first store


def test_store_refuses_a_file_as_data_directory(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("hello")
    with pytest.raises(StorageError, match="not a directory"):
        SqliteStore(a_file)
    with pytest.raises(StorageError, match="cannot create data directory"):
        SqliteStore(a_file / "below")


def open_store_outcome(data: Path) -> str:
    """Try ``SqliteStore(data)``; "opened", or the StorageError's message."""
    try:
        SqliteStore(data).close()
    except StorageError as error:
        return str(error)
    return "opened"


def open_store_as_nobody(data: Path) -> str:
    """:func:`open_store_outcome` in a forked child that dropped root for ``nobody``: root may
    write any directory, so a permission check needs a user the permissions apply to."""
    nobody = pwd.getpwnam("nobody")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write_fd, open_store_outcome(data).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        outcome = reader.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the unprivileged child failed: {outcome!r}"
    return outcome


def test_store_refuses_read_only_directory() -> None:
    """Runs as root too (CI does): then the store is opened by a child running as nobody, the
    directory's owner, to whom its mode applies."""
    as_root = os.geteuid() == 0
    open_store = open_store_as_nobody if as_root else open_store_outcome
    with tempfile.TemporaryDirectory() as parent:
        os.chmod(parent, 0o711)  # others may pass through, not list or write
        data = Path(parent) / "ro"
        data.mkdir()
        if as_root:
            nobody = pwd.getpwnam("nobody")
            os.chown(data, nobody.pw_uid, nobody.pw_gid)
        data.chmod(0o555)
        outcome = open_store(data)
        assert "not writable" in outcome, outcome
        data.chmod(0o755)  # the same directory made writable: the refusal was the permission
        assert open_store(data) == "opened"


def test_store_refuses_foreign_files(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.mkdir()
    (text / DB_FILE_NAME).write_text("this is not a database, it is a shopping list\n" * 50)
    with pytest.raises(StorageError, match="not a hearsay database"):
        SqliteStore(text)

    other = tmp_path / "other"
    other.mkdir()
    conn = sqlite3.connect(other / DB_FILE_NAME)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="not a hearsay database"):
        SqliteStore(other)

    directory = tmp_path / "dir"
    (directory / DB_FILE_NAME).mkdir(parents=True)
    with pytest.raises(StorageError, match="not a regular file"):
        SqliteStore(directory)


def test_store_refuses_newer_or_damaged_schema(tmp_path: Path) -> None:
    data = tmp_path / "data"
    SqliteStore(data).close()
    conn = sqlite3.connect(data / DB_FILE_NAME)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (b"999",))
    conn.commit()
    with pytest.raises(StorageError, match="schema version 999, newer"):
        SqliteStore(data)
    conn.execute("DELETE FROM meta WHERE name = 'schema_version'")
    conn.commit()
    with pytest.raises(StorageError, match="no schema version"):
        SqliteStore(data)
    conn.execute("DROP TABLE entries")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="missing tables"):
        SqliteStore(data)


def test_store_treats_empty_file_as_new_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / DB_FILE_NAME).touch()
    with SqliteStore(data) as store:
        store.write_batch({b"k": b"v"})
    with SqliteStore(data) as store:
        assert store.get(b"k") == b"v"


# ---------------------------------------------------------------------------- group commit


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_group_commit_round_trip(tmp_path: Path, policy: FsyncPolicy) -> None:
    data = tmp_path / "data"
    writer = GroupCommit.open(data, policy)
    assert writer.store.synchronous == policy.sqlite_synchronous
    tickets = [writer.stage(f"k{i}".encode(), f"v{i}".encode()) for i in range(500)]
    tickets.append(writer.stage(b"k7", None))
    for ticket in tickets:
        assert ticket.result(timeout=10) is None
    writer.flush()
    assert writer.store.count() == 499
    assert writer.store.get(b"k7") is None
    assert writer.store.get(b"k499") == b"v499"
    stats = writer.stats()
    assert stats.staged == 501
    assert 1 <= stats.commits <= 501
    assert stats.rows_committed + stats.coalesced == 501
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        writer.stage(b"late", b"x")
    with SqliteStore(data) as store:
        assert store.count() == 499


def test_stage_rejects_non_bytes_without_harming_the_store(tmp_path: Path) -> None:
    writer = GroupCommit.open(tmp_path / "data")
    for key, blob in [("str", b"v"), (b"k", "str"), (b"k", bytearray(b"v")), (b"k", 1)]:
        with pytest.raises(TypeError, match="takes bytes"):
            writer.stage(key, blob)  # type: ignore[arg-type]
    writer.stage(b"k", b"v")
    writer.flush()
    assert writer.error is None
    assert writer.store.get(b"k") == b"v"
    writer.close()


@pytest.mark.parametrize("policy", [FsyncPolicy.EVERYSEC, FsyncPolicy.NO], ids=str)
def test_background_policies_acknowledge_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: FsyncPolicy
) -> None:
    writer = GroupCommit.open(tmp_path / "data", policy)
    held = HeldWriter(writer.store, monkeypatch)
    ticket = writer.stage(b"k", b"v")
    assert ticket.done()  # acknowledged although the commit cannot even start
    assert held.entered.wait(5.0)
    assert writer.stage(b"k2", b"v").done()
    held.release.set()
    writer.close()


def test_always_acknowledges_after_commit_and_shares_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.ALWAYS)
    held = HeldWriter(writer.store, monkeypatch)
    first = writer.stage(b"first", b"1")
    assert held.entered.wait(5.0), "the writer never took the first write"
    later = [writer.stage(f"k{i}".encode(), b"x") for i in range(9)]
    assert not first.done()
    assert not any(t.done() for t in later)
    assert not first.cancel()  # a ticket in flight cannot be cancelled
    held.release.set()
    for ticket in [first, *later]:
        ticket.result(timeout=5.0)
    assert [len(batch) for batch in held.batches] == [1, 9]  # nine writers, one commit
    stats = writer.stats()
    assert (stats.commits, stats.rows_committed, stats.largest_batch) == (2, 10, 9)
    writer.close()


def test_last_write_per_key_wins_within_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.EVERYSEC)
    held = HeldWriter(writer.store, monkeypatch)
    writer.stage(b"a", b"a1")
    assert held.entered.wait(5.0)
    for blob in (b"b1", b"b2", None, b"b3"):
        writer.stage(b"b", blob)
    writer.stage(b"a", b"a2")
    writer.stage(b"c", b"c1")
    writer.stage(b"c", None)
    held.release.set()
    writer.flush()
    assert held.batches == [{b"a": b"a1"}, {b"b": b"b3", b"a": b"a2", b"c": None}]
    assert dict(writer.store.load()) == {b"a": b"a2", b"b": b"b3"}
    stats = writer.stats()
    assert (stats.staged, stats.coalesced, stats.rows_committed) == (8, 4, 4)
    writer.close()


def test_everysec_syncs_in_the_background(tmp_path: Path) -> None:
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.EVERYSEC, sync_interval_s=0.05)
    writer.stage(b"k", b"v")
    wait_until(lambda: writer.stats().syncs >= 1, "a checkpoint after the first commit")
    writer.close()

    never = GroupCommit.open(tmp_path / "never", FsyncPolicy.NO, sync_interval_s=0.05)
    for i in range(3):
        never.stage(b"k", str(i).encode())
        never.flush()
    never.close()
    assert never.stats().syncs == 0
    assert never.stats().commits == 3


def test_asyncio_can_await_tickets(tmp_path: Path) -> None:
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.ALWAYS)

    async def write_all() -> None:
        tickets = [writer.stage(f"k{i}".encode(), b"v") for i in range(200)]
        await asyncio.wait_for(
            asyncio.gather(*(asyncio.wrap_future(t) for t in tickets)), timeout=10
        )

    asyncio.run(write_all())
    assert writer.store.count() == 200  # acknowledged means committed
    writer.close()


def test_concurrent_writer_threads(tmp_path: Path) -> None:
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.ALWAYS)
    errors: list[BaseException] = []

    def worker(worker_id: int) -> None:
        try:
            for i in range(100):
                writer.stage(f"w{worker_id}:{i}".encode(), b"v").result(timeout=10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert writer.store.count() == 400
    assert writer.stats().commits <= 400
    writer.close()


def test_flush_times_out_when_the_writer_is_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.EVERYSEC)
    held = HeldWriter(writer.store, monkeypatch)
    writer.stage(b"k", b"v")
    with pytest.raises(StorageError, match="flush timed out"):
        writer.flush(timeout_s=0.2)
    held.release.set()
    writer.flush()
    writer.close()


# ---------------------------------------------------------------------------- errors


def test_unsynced_writes_count_down_to_zero_at_each_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = GroupCommit.open(
        tmp_path / "data", FsyncPolicy.EVERYSEC, sync_interval_s=0.05, retry_interval_s=0.05
    )
    disk = FlakyDisk(writer.store, monkeypatch, "sync")
    disk.broken.set()  # no sync can complete: the writes stay unsynced (and held)
    for number in range(10):
        writer.stage(f"k{number}".encode(), b"v")
    wait_until(lambda: writer.failure is not None, "the failed sync")
    assert writer.unsynced_writes == 10
    disk.broken.clear()
    wait_until(lambda: writer.unsynced_writes == 0, "the writes to be synced", timeout_s=10.0)
    writer.close()


class FlakyDisk:
    """Makes the store's commits (``write_batch``) or syncs (``checkpoint``) fail while
    ``broken`` is set, as a full or failing disk does, and records what reaches the store."""

    def __init__(self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch, what: str) -> None:
        self.broken = threading.Event()
        self.batches: list[tuple[dict[bytes, bytes | None], bool]] = []
        self.reopens = 0
        real_write, real_checkpoint, real_reopen = (
            store.write_batch,
            store.checkpoint,
            store.reopen,
        )

        def write_batch(
            puts: Mapping[bytes, bytes | None],
            meta: Mapping[str, bytes | None] | None = None,
            *,
            deltas: Mapping[bytes, Sequence[bytes]] | None = None,
            durable: bool = False,
        ) -> None:
            if what == "commit" and self.broken.is_set():
                raise StorageError("cannot write: database or disk is full") from (
                    sqlite3.OperationalError("database or disk is full")
                )
            self.batches.append((dict(puts), durable))
            real_write(puts, meta, deltas=deltas, durable=durable)

        def checkpoint(*, truncate: bool = False) -> None:
            if what == "sync" and self.broken.is_set():
                raise StorageError("cannot checkpoint: disk I/O error")
            real_checkpoint(truncate=truncate)

        def reopen() -> None:
            self.reopens += 1
            real_reopen()

        monkeypatch.setattr(store, "write_batch", write_batch)
        monkeypatch.setattr(store, "checkpoint", checkpoint)
        monkeypatch.setattr(store, "reopen", reopen)


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_a_failed_commit_makes_the_store_read_only_until_the_disk_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: FsyncPolicy
) -> None:
    writer = GroupCommit.open(tmp_path / "data", policy, retry_interval_s=0.05)
    disk = FlakyDisk(writer.store, monkeypatch, "commit")
    writer.stage(b"before", b"v0").result(timeout=5.0)
    writer.flush()
    disk.broken.set()
    ticket = writer.stage(b"k", b"v")
    if policy is FsyncPolicy.ALWAYS:
        with pytest.raises(StorageError, match="disk is full"):
            ticket.result(timeout=5.0)
    wait_until(lambda: writer.failure is not None, "the writer to record its failure")
    failure = writer.failure
    assert failure is not None and "database or disk is full" in failure.cause
    # Still accepted (held for the retry), but never acknowledged under always.
    late = writer.stage(b"k2", b"v2")
    if policy is FsyncPolicy.ALWAYS:
        with pytest.raises(StorageError, match="disk is full"):
            late.result(timeout=5.0)
    with pytest.raises(StorageError, match="disk is full"):
        writer.flush()
    assert writer.stats().failures == 1
    disk.broken.clear()
    wait_until(lambda: writer.failure is None, "the writer to recover", timeout_s=10.0)
    writer.flush()
    assert disk.reopens >= 1, "a recovery must not trust the connection that failed"
    assert writer.stats().recoveries == 1
    writer.close()
    with SqliteStore(tmp_path / "data") as store:
        assert dict(store.load()) == {b"before": b"v0", b"k": b"v", b"k2": b"v2"}


def test_a_failed_sync_rewrites_every_write_since_the_last_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsyncgate: after a failed fsync the commits before it are not trusted but rewritten."""
    writer = GroupCommit.open(
        tmp_path / "data", FsyncPolicy.EVERYSEC, sync_interval_s=0.05, retry_interval_s=0.05
    )
    disk = FlakyDisk(writer.store, monkeypatch, "sync")
    disk.broken.set()
    writer.stage(b"a", b"1")
    writer.stage(b"b", b"2")
    wait_until(lambda: writer.failure is not None, "the failed sync to be recorded")
    assert "disk I/O error" in (writer.failure.cause if writer.failure else "")
    disk.batches.clear()
    disk.broken.clear()
    wait_until(lambda: writer.failure is None, "the writer to recover", timeout_s=10.0)
    rewritten = [batch for batch, durable in disk.batches if durable]
    assert rewritten and {b"a": b"1", b"b": b"2"}.items() <= rewritten[0].items()
    writer.close()
    with SqliteStore(tmp_path / "data") as store:
        assert dict(store.load()) == {b"a": b"1", b"b": b"2"}


def test_close_while_the_disk_still_fails_says_what_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.EVERYSEC, retry_interval_s=60.0)
    disk = FlakyDisk(writer.store, monkeypatch, "commit")
    disk.broken.set()
    writer.stage(b"k1", b"v")
    wait_until(lambda: writer.failure is not None, "the writer to record its failure")
    writer.stage(b"k2", b"v")
    with pytest.raises(StorageError, match="2 keys could not be saved"):
        writer.close()
    assert writer.store.closed  # resources are released even so
    with pytest.raises(StorageError, match="could not be saved"):
        writer.stage(b"k3", b"v")


def test_replicated_changes_while_read_only_stay_dirty_and_reach_the_disk_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hearsay.engine.replica import Replica
    from hearsay.lattice.entry import Entry
    from hearsay.lattice.vector import MaxVector
    from hearsay.sketch import schemas

    database = Replica.open(tmp_path / "data", FsyncPolicy.ALWAYS)
    storage = database.storage
    assert storage is not None
    storage._retry_interval_s = 0.05  # the node's writer, retrying fast for the test
    disk = FlakyDisk(storage.store, monkeypatch, "commit")
    vector = MaxVector.from_items([(0, 7)])
    database.write_own(b"first", schemas.maxreg(), vector, 1_000)
    ticket = database.flush()
    assert ticket is not None
    ticket.result(timeout=5.0)
    disk.broken.set()
    database.write_own(b"local", schemas.maxreg(), vector, 1_000)
    ticket = database.flush()
    assert ticket is not None
    with pytest.raises(StorageError, match="disk is full"):
        ticket.result(timeout=5.0)  # never acknowledged
    assert database.storage_failure is not None
    # A peer's change: applied in memory, kept dirty, not staged while the store fails.
    delta = Entry(1, schemas.maxreg(), slices={"": MaxVector.from_items([(0, 9)])})
    assert database.merge_remote(b"replicated", delta).changed
    assert database.flush() is None  # no local write since the last flush: nothing to refuse
    # A local write that raced the failure (applied before the refusal check could see it):
    database.write_own(b"raced", schemas.maxreg(), vector, 1_000)
    raced = database.flush()
    assert raced is not None and raced.done()
    with pytest.raises(StorageError, match="disk is full"):
        raced.result()
    assert database.unsynced_writes >= 2
    disk.broken.clear()
    wait_until(lambda: database.storage_failure is None, "recovery", timeout_s=10.0)
    ticket = database.flush()
    assert ticket is not None
    ticket.result(timeout=5.0)
    database.close()
    with SqliteStore(tmp_path / "data") as store:
        assert set(dict(store.load())) == {b"first", b"local", b"replicated", b"raced"}


def _fill_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stall_timeout_s: float
) -> tuple[GroupCommit, HeldWriter]:
    writer = GroupCommit.open(
        tmp_path / "data",
        FsyncPolicy.EVERYSEC,
        max_pending_bytes=1000,
        max_lag_s=60.0,
        stall_timeout_s=stall_timeout_s,
    )
    held = HeldWriter(writer.store, monkeypatch)
    writer.stage(b"taken", b"x" * 300)
    assert held.entered.wait(5.0)
    for i in range(3):
        writer.stage(f"k{i}".encode(), b"x" * 300)
    assert writer.pending_bytes >= 1000
    assert writer.congested
    return writer, held


def test_backpressure_on_bytes_gives_up_if_the_writer_is_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, held = _fill_backlog(tmp_path, monkeypatch, stall_timeout_s=0.2)
    with pytest.raises(StorageError, match="behind and made no room"):
        writer.stage(b"one too many", b"x")
    assert writer.stats().stalls == 1
    held.release.set()
    writer.close()


def test_backpressure_on_bytes_resumes_when_the_writer_catches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, held = _fill_backlog(tmp_path, monkeypatch, stall_timeout_s=10.0)
    releaser = threading.Timer(0.1, held.release.set)
    releaser.start()
    writer.stage(b"after", b"x")
    assert held.release.is_set(), "stage returned before the writer made room"
    releaser.join(5)
    assert writer.stats().stalls == 1
    writer.close()
    with SqliteStore(tmp_path / "data") as store:
        assert set(dict(store.load())) == {b"taken", b"k0", b"k1", b"k2", b"after"}


def test_backpressure_on_lag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = GroupCommit.open(
        tmp_path / "data", FsyncPolicy.EVERYSEC, max_lag_s=0.05, stall_timeout_s=10.0
    )
    held = HeldWriter(writer.store, monkeypatch)
    writer.stage(b"taken", b"x")
    assert held.entered.wait(5.0)
    wait_until(lambda: writer.congested, "the uncommitted write to grow older than max_lag_s")
    assert writer.lag_s > 0.05
    releaser = threading.Timer(0.1, held.release.set)
    releaser.start()
    writer.stage(b"after", b"x")
    assert held.release.is_set(), "stage returned before the writer caught up"
    releaser.join(5)
    writer.flush()
    assert writer.lag_s == 0.0
    assert writer.stats().stalls == 1
    writer.close()


# ---------------------------------------------------------------------------- model check


OPS = st.lists(
    st.tuples(
        st.sampled_from([b"a", b"b", b"c", b"\x00", b"d" * 40]),
        st.one_of(st.none(), st.binary(max_size=64)),
        st.sampled_from(["stage", "stage", "stage", "flush", "reopen"]),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(ops=OPS, policy=st.sampled_from(POLICIES))
def test_group_commit_matches_a_dict(
    ops: list[tuple[bytes, bytes | None, str]], policy: FsyncPolicy
) -> None:
    model: dict[bytes, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        writer = GroupCommit.open(tmp, policy)
        try:
            for key, blob, action in ops:
                if action == "flush":
                    writer.flush()
                    assert dict(writer.store.load()) == model
                elif action == "reopen":
                    writer.close()
                    writer = GroupCommit.open(tmp, policy)
                    assert dict(writer.store.load()) == model
                else:
                    writer.stage(key, blob)
                    if blob is None:
                        model.pop(key, None)
                    else:
                        model[key] = blob
            writer.flush()
            assert dict(writer.store.load()) == model
        finally:
            writer.close()


# ---------------------------------------------------------------------------- identity


def test_identity_is_stable_and_generation_grows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = NodeIdentity.load_or_create(data)
    assert len(first.node_id) == 16
    assert int(first.node_id, 16) >= 0
    assert (first.generation, first.node_name) == (1, None)
    for expected in (2, 3, 4):
        again = NodeIdentity.load_or_create(data)
        assert again.node_id == first.node_id
        assert again.generation == expected
    other = NodeIdentity.load_or_create(tmp_path / "other")
    assert other.node_id != first.node_id


def test_identity_through_an_open_store_and_names(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with SqliteStore(data) as store:
        assert NodeIdentity.read(store) is None
        named = NodeIdentity.load_or_create(store, node_name="eu-west-1a")
        assert (named.generation, named.node_name) == (1, "eu-west-1a")
        assert NodeIdentity.read(store) == named  # reading does not start a generation
        with pytest.raises(StorageError, match="in use"):
            NodeIdentity.load_or_create(data)  # the open store holds the directory
    kept = NodeIdentity.load_or_create(data)
    assert (kept.node_id, kept.generation, kept.node_name) == (named.node_id, 2, "eu-west-1a")
    renamed = NodeIdentity.load_or_create(data, node_name="zürich")
    assert (renamed.generation, renamed.node_name) == (3, "zürich")
    with SqliteStore(data) as store:
        assert NodeIdentity.read(store) == renamed


@pytest.mark.parametrize("name", ["", " padded", "tab\there", "x" * 256])
def test_identity_rejects_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        NodeIdentity.load_or_create(tmp_path / "data", node_name=name)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("node_id", b"not-hex!", "bad node id"), ("generation", b"-3", "bad generation")],
)
def test_identity_refuses_damaged_values(
    tmp_path: Path, name: str, value: bytes, message: str
) -> None:
    data = tmp_path / "data"
    NodeIdentity.load_or_create(data)
    with SqliteStore(data) as store:
        store.meta_set(name, value)
        with pytest.raises(StorageError, match=message):
            NodeIdentity.load_or_create(store)


def test_purged_tombstones_leave_the_disk(tmp_path: Path) -> None:
    from hearsay.engine.replica import Replica
    from hearsay.lattice.entry import Schema
    from hearsay.lattice.vector import MaxVector

    raw = Schema("vector").intern()
    database = Replica.open(tmp_path)
    try:
        database.write_own(b"gone", raw, MaxVector.from_items([(0, 1)]), 1_000)
        database.write_own(b"kept", raw, MaxVector.from_items([(0, 1)]), 1_000)
        assert database.delete([b"gone"], 2_000) == 1
        database.flush()
        assert database.purge_tombstones(now_ms=2_000 + 999, grace_ms=1_000) == 0
        assert database.purge_tombstones(now_ms=2_000 + 1_001, grace_ms=1_000) == 1
        assert database.stats.tombstones_purged == 1
    finally:
        database.close()
    reopened = Replica.open(tmp_path)
    try:
        assert reopened.keyspace.entry(b"gone") is None
        assert reopened.keyspace.stored_count == 1
    finally:
        reopened.close()
