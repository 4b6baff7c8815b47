"""The embedded store: opaque entry blobs by key in one SQLite database (WAL mode).

Persistence must not know what an entry is (the lattice layer encodes and decodes them), so
this module stores ``key: bytes -> blob: bytes`` plus a few named ``meta`` values (schema
version, node identity). Every row carries a checksum of its key and blob (xxh3-64, computed
by :meth:`SqliteStore.write_batch`, i.e. in the writer thread, and verified by
:meth:`SqliteStore.load`), so a flipped bit in a stored entry is found at start instead of
being loaded as a valid-looking entry and gossiped over the peers' healthy copies. Rows that
fail it are moved to the ``quarantine`` table (:meth:`SqliteStore.quarantine`) for the
operator; the key is then simply missing here and peers refill it.

Deltas: a hot big key (a 1M-capacity Bloom filter, a wide count-min sketch) is not rewritten
whole at every flush. The engine may append a *delta* row instead (``deltas``: what grew since
the key's last row, in the same opaque encoding; the engine's merge is a join, so applying
rows in any order gives the same entry, and they are still loaded in ``seq`` order to stay
deterministic). A whole row written for a key deletes the key's delta rows in the same
transaction (so a delete or a purge can never be undone by an older delta row), and
:meth:`SqliteStore.fold` rewrites a key's entry with its delta rows folded in, atomically,
using a function the engine hands in (this module still never decodes an entry).

Schema versions: 1 had no checksums; 2 adds ``entries.checksum`` and the ``quarantine``
table; 3 adds the ``deltas`` table. Older databases are migrated when opened, each step in one
transaction (1 -> 2: the column is added and every row's checksum computed from what is
stored; those rows can only be trusted as far as they decode).

The checks at open exist so that every way a data directory can be wrong — missing
permissions, a foreign or damaged file, a newer schema, a second process on the same
directory — becomes one clear :class:`~hearsay.base.errors.StorageError` at open time instead
of a confusing failure later.

Every method may be called from any thread: a lock serialises use of the one connection
(the group-commit writer thread writes while the event-loop thread may read).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import xxhash

from hearsay.base.errors import StorageError

log = logging.getLogger(__name__)

try:  # POSIX: one process per data directory, enforced by an advisory lock.
    import fcntl
except ImportError:  # pragma: no cover - no flock on this platform; SQLite still locks.
    fcntl = None  # type: ignore[assignment]

DB_FILE_NAME = "hearsay.db"
LOCK_FILE_NAME = "hearsay.lock"
#: SQLite's header field for "which application owns this file": b"HSAY".
APPLICATION_ID = 0x48534159
#: Bumped whenever the tables change; a newer database is refused, never guessed at.
SCHEMA_VERSION = 3
SCHEMA_VERSION_META = "schema_version"

_SQLITE_MAGIC = b"SQLite format 3\x00"
_SYNCHRONOUS_LEVELS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
PAGE_CACHE_KIB = 256
"""SQLite's page cache per connection (its default is 2 MiB). The keyspace lives in memory and
the store is write-behind: it is read once, at start, and otherwise only written, so a large
page cache would only keep a second copy of hot entries' pages. 256 KiB holds the B-tree's
interior pages that every upsert walks; ``bench/persist.py`` measures the write rate with it."""
_SCHEMA = """
CREATE TABLE entries (
    key  BLOB PRIMARY KEY NOT NULL CHECK (typeof(key) = 'blob'),
    blob BLOB NOT NULL CHECK (typeof(blob) = 'blob'),
    checksum INTEGER NOT NULL
);
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL CHECK (typeof(name) = 'text'),
    value BLOB NOT NULL CHECK (typeof(value) = 'blob')
);
"""
_DELTAS_SCHEMA = """
CREATE TABLE IF NOT EXISTS deltas (
    seq INTEGER PRIMARY KEY,
    key BLOB NOT NULL CHECK (typeof(key) = 'blob'),
    blob BLOB NOT NULL CHECK (typeof(blob) = 'blob'),
    checksum INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deltas_by_key ON deltas (key, seq);
"""
_QUARANTINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    blob BLOB NOT NULL,
    checksum INTEGER,
    reason TEXT NOT NULL,
    found_at_ms INTEGER NOT NULL
);
"""
_UPSERT = (
    "INSERT INTO entries (key, blob, checksum) VALUES (?, ?, ?)"
    " ON CONFLICT(key) DO UPDATE SET blob = excluded.blob, checksum = excluded.checksum"
)
_UPSERT_MANY = (
    "INSERT INTO entries (key, blob, checksum)"
    " SELECT substr(:data, row.value ->> 0, row.value ->> 1),"
    " substr(:data, row.value ->> 2, row.value ->> 3), row.value ->> 4"
    " FROM json_each(:rows) AS row WHERE true"
    " ON CONFLICT(key) DO UPDATE SET blob = excluded.blob, checksum = excluded.checksum"
)
""":data:`_UPSERT` of many rows in one statement: their keys and blobs concatenated in one
blob, cut by offsets given as JSON (``[key at, key length, blob at, blob length, checksum]``,
1-based as SQLite's substr). One step for the whole batch where ``executemany`` takes the GIL
back at every row: the writer thread then handed the GIL to and from the event loop's thread
~20,000 times a second under writes to many keys, and that thread waited at each handoff."""
UPSERT_MANY_FROM: Final = 32
"""Rows of one kind in one batch (upserts, delta rows, deletes) from which they are written by
one statement (:data:`_UPSERT_MANY`, :data:`_DELTA_INSERT_MANY`, :data:`_DELETE_MANY`,
:data:`_DELTAS_DELETE_MANY`); fewer go through ``executemany``."""
_DELETE = "DELETE FROM entries WHERE key = ?"
_DELTA_INSERT = "INSERT INTO deltas (key, blob, checksum) VALUES (?, ?, ?)"
_DELTAS_DELETE = "DELETE FROM deltas WHERE key = ?"
_DELTA_INSERT_MANY = (
    "INSERT INTO deltas (key, blob, checksum)"
    " SELECT substr(:data, row.value ->> 0, row.value ->> 1),"
    " substr(:data, row.value ->> 2, row.value ->> 3), row.value ->> 4"
    " FROM json_each(:rows) AS row ORDER BY row.key"
)
""":data:`_DELTA_INSERT` of many rows in one statement, as :data:`_UPSERT_MANY` (same
parameters), in the rows' order (``row.key`` is the array index), so each key's rows take
``seq`` in the order they were staged. Under writes to many keys of big entries (delta rows)
``executemany`` handed the GIL to and from the event loop at each of ~1,000 rows a flush
(TDIGEST.ADD over 1,000 keys at -P 1: the writer thread's CPU 4.2-11 us a write over four
60,000-write runs, 1.5-7.7 us in one statement; 28-39k -> 30-40k writes a second)."""
_KEYS_OF_ROWS = (
    "SELECT substr(:data, row.value ->> 0, row.value ->> 1) FROM json_each(:rows) AS row"
)
_DELETE_MANY = f"DELETE FROM entries WHERE key IN ({_KEYS_OF_ROWS})"
_DELTAS_DELETE_MANY = f"DELETE FROM deltas WHERE key IN ({_KEYS_OF_ROWS})"
""":data:`_DELETE` / :data:`_DELTAS_DELETE` of many keys in one statement (the keys given as
:func:`_rows_in_one` gives them, with empty blobs)."""
_META_UPSERT = (
    "INSERT INTO meta (name, value) VALUES (?, ?)"
    " ON CONFLICT(name) DO UPDATE SET value = excluded.value"
)
_META_DELETE = "DELETE FROM meta WHERE name = ?"
_CHECKSUM_SEED: Final = 0x48534159
_INT64_WRAP: Final = 1 << 64
_INT64_MAX: Final = (1 << 63) - 1


def entry_checksum(key: bytes, blob: bytes) -> int:
    """The stored checksum of one row: xxh3-64 of the key's length, key and blob, as int64.

    The length goes in first so that moving bytes between key and blob changes the sum.
    """
    digest = xxhash.xxh3_64(len(key).to_bytes(4, "little"), seed=_CHECKSUM_SEED)
    digest.update(key)
    digest.update(blob)
    value = digest.intdigest()
    return value - _INT64_WRAP if value > _INT64_MAX else value  # SQLite's INTEGER is int64


CorruptRowHandler = Callable[[bytes, bytes, "int | None", str], None]
"""Receives ``(key, blob, stored checksum, reason)`` of a row that failed its checksum."""

DeltaCorruptHandler = Callable[["DeltaRow", "int | None", str], None]
"""Receives a delta row that failed its checksum, its stored checksum and why."""

FoldFunction = Callable[["bytes | None", list[bytes]], bytes]
"""The engine's fold: a key's whole blob (None: no whole row yet) and its delta blobs in
``seq`` order -> the whole blob holding all of them. May raise to refuse (a damaged row)."""


@dataclass(frozen=True, slots=True)
class DeltaRow:
    """One stored delta row (``seq`` orders a key's rows and names the row)."""

    seq: int
    key: bytes
    blob: bytes


def _rows_in_one(rows: list[tuple[bytes, bytes, int]]) -> dict[str, bytes | str]:
    """The parameters of :data:`_UPSERT_MANY` for ``(key, blob, checksum)`` rows."""
    parts: list[bytes] = []
    offsets: list[tuple[int, int, int, int, int]] = []
    at = 1
    for key, blob, checksum in rows:  # bounded by the batch
        parts += (key, blob)
        offsets.append((at, len(key), at + len(key), len(blob), checksum))
        at += len(key) + len(blob)
    return {"data": b"".join(parts), "rows": json.dumps(offsets)}


def _keys_in_one(keys: list[tuple[bytes]]) -> dict[str, bytes | str]:
    """The parameters of :data:`_DELETE_MANY` / :data:`_DELTAS_DELETE_MANY` for ``(key,)``
    rows."""
    return _rows_in_one([(key, b"", 0) for (key,) in keys])


@contextlib.contextmanager
def _immediate_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``, rolled back if anything raises inside (the one
    shape of every write this store makes: migration, schema, batches, quarantine)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SqliteStore:
    """``key -> blob`` and ``name -> value`` tables in ``<data_dir>/hearsay.db``.

    Opening creates the directory and the database if needed and holds an exclusive advisory
    lock on ``<data_dir>/hearsay.lock`` until :meth:`close`, so two nodes (or two stores in
    one process) can never share a data directory.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, synchronous: str = "NORMAL") -> None:
        self._data_dir = Path(data_dir)
        self._path = self._data_dir / DB_FILE_NAME
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._synchronous = "FULL"
        self._delta_keys: set[bytes] | None = None
        """Every key that may have delta rows (a superset; None until the first look): a put
        deletes its key's delta rows only where there may be some. A flush's put of a
        thousand keys spent a tenth of the writer thread's time looking for rows of keys
        that never took any."""
        self._prepare_directory()
        self._lock_fd = self._acquire_dir_lock()
        try:
            self._check_file_header()
            self._conn = self._connect()
            self.set_synchronous(synchronous)
            self._open_schema()
            self._delta_keys = self._keys_with_deltas()
        except BaseException:
            self._release()
            raise

    # ------------------------------------------------------------------ opening

    def _prepare_directory(self) -> None:
        where = self._data_dir
        try:
            where.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StorageError(f"data directory {where} exists and is not a directory") from None
        except OSError as exc:
            raise StorageError(f"cannot create data directory {where}: {exc.strerror}") from exc
        if not where.is_dir():
            raise StorageError(f"data directory {where} exists and is not a directory")
        if not os.access(where, os.W_OK | os.X_OK):
            raise StorageError(f"data directory {where} is not writable by this user")

    def _acquire_dir_lock(self) -> int | None:
        lock_path = self._data_dir / LOCK_FILE_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create lock file {lock_path}: {exc.strerror}") from exc
        if fcntl is None:  # pragma: no cover
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StorageError(
                f"data directory {self._data_dir} is in use by another hearsay store "
                "(another process, or a store not yet closed in this one)"
            ) from None
        return fd

    def _check_file_header(self) -> None:
        path = self._path
        if not path.exists():
            return
        if not path.is_file():
            raise StorageError(f"{path} is not a regular file")
        try:
            with path.open("rb") as handle:
                head = handle.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        if head and head != _SQLITE_MAGIC:
            raise StorageError(f"{path} is not a hearsay database (not an SQLite file)")

    def _connect(self) -> sqlite3.Connection:
        try:
            # No statement cache: a cached statement keeps the values last bound to it until
            # its next use, so each kind of write would hold on to the last big entry or delta
            # it wrote (2.2 MB resident after filling one 1M-capacity Bloom filter). Preparing
            # the few statements of a batch again costs microseconds on the writer thread.
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, cached_statements=0
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self._path}: {exc}") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"{self._path}: SQLite refused WAL mode (got {mode!r})")
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"{self._path} is not a usable hearsay database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_schema(self) -> None:
        conn = self._connection()
        try:
            app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
            tables = {
                str(row[0])
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if app_id == 0 and not tables:
                self._create_schema(conn)
                return
            if app_id != APPLICATION_ID:
                raise StorageError(
                    f"{self._path} is not a hearsay database "
                    f"(SQLite application_id {app_id:#x}, tables {sorted(tables)})"
                )
            if not {"entries", "meta"} <= tables:
                raise StorageError(
                    f"{self._path} is damaged: missing tables (has {sorted(tables)})"
                )
            row = conn.execute(
                "SELECT value FROM meta WHERE name = ?", (SCHEMA_VERSION_META,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{self._path} is not a usable hearsay database: {exc}") from exc
        if row is None:
            raise StorageError(f"{self._path} is damaged: no schema version")
        try:
            version = int(bytes(row[0]).decode("ascii"))
        except (TypeError, ValueError, UnicodeDecodeError):
            raise StorageError(f"{self._path} is damaged: bad schema version {row[0]!r}") from None
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self._path} has schema version {version}, newer than this hearsay supports "
                f"({SCHEMA_VERSION}); upgrade hearsay to open it"
            )
        if version < 1:
            raise StorageError(f"{self._path} is damaged: bad schema version {version}")
        if version == 1:
            self._migrate_from_1(conn)
        if version <= 2:
            self._migrate_to_3(conn)

    def _migrate_from_1(self, conn: sqlite3.Connection) -> None:
        """Version 1 -> 2: add the checksum column (computed from the stored rows) and the
        quarantine table, in one transaction (a crash leaves version 1, migrated again)."""
        try:
            with _immediate_transaction(conn):
                conn.execute("ALTER TABLE entries ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0")
                conn.execute(_QUARANTINE_SCHEMA)
                after: bytes | None = None
                while True:  # bounded: every page moves past the last key seen
                    rows = conn.execute(
                        "SELECT key, blob FROM entries WHERE ? IS NULL OR key > ?"
                        " ORDER BY key LIMIT 1024",
                        (after, after),
                    ).fetchall()
                    conn.executemany(
                        "UPDATE entries SET checksum = ? WHERE key = ?",
                        [(entry_checksum(bytes(k), bytes(b)), k) for k, b in rows],
                    )
                    if len(rows) < 1024:
                        break
                    after = bytes(rows[-1][0])
                conn.execute(_META_UPSERT, (SCHEMA_VERSION_META, b"2"))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot migrate {self._path} to schema 2: {exc}") from exc

    def _migrate_to_3(self, conn: sqlite3.Connection) -> None:
        """Version 2 -> 3: add the (empty) delta log, in one transaction."""
        try:
            with _immediate_transaction(conn):
                for statement in _DELTAS_SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(_META_UPSERT, (SCHEMA_VERSION_META, str(SCHEMA_VERSION).encode()))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot migrate {self._path} to schema 3: {exc}") from exc

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        with _immediate_transaction(conn):
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for statement in (_SCHEMA + _QUARANTINE_SCHEMA + _DELTAS_SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(_META_UPSERT, (SCHEMA_VERSION_META, str(SCHEMA_VERSION).encode()))

    # ------------------------------------------------------------------ properties

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._conn is None

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise StorageError(f"store {self._path} is closed")
        return conn

    # ------------------------------------------------------------------ reads

    def load(
        self, *, page_keys: int = 1024, on_corrupt: CorruptRowHandler | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, blob)`` whose checksum holds, in key order, a page at a time.

        A row whose checksum does not match is not yielded: it goes to ``on_corrupt`` (to be
        quarantined by the caller once the iteration is over), or is skipped with a warning.
        The lock is held per page, not across the whole iteration, so writes may interleave;
        use it at start-up (before writers run) for a consistent snapshot.
        """
        if page_keys < 1:
            raise ValueError("page_keys must be at least 1")
        after: bytes | None = None
        while True:
            with self._lock:
                conn = self._connection()
                try:
                    if after is None:
                        rows = conn.execute(
                            "SELECT key, blob, checksum FROM entries ORDER BY key LIMIT ?",
                            (page_keys,),
                        ).fetchall()
                    else:
                        rows = conn.execute(
                            "SELECT key, blob, checksum FROM entries WHERE key > ?"
                            " ORDER BY key LIMIT ?",
                            (after, page_keys),
                        ).fetchall()
                except sqlite3.Error as exc:
                    raise StorageError(f"cannot read {self._path}: {exc}") from exc
            for raw_key, raw_blob, stored in rows:
                if not isinstance(raw_key, bytes) or not isinstance(raw_blob, bytes):
                    key = raw_key if isinstance(raw_key, bytes) else str(raw_key).encode()
                    blob = raw_blob if isinstance(raw_blob, bytes) else str(raw_blob).encode()
                    self._corrupt(on_corrupt, key, blob, None, "a column is not a blob")
                elif type(stored) is not int or stored != entry_checksum(raw_key, raw_blob):
                    checksum = stored if type(stored) is int else None
                    self._corrupt(on_corrupt, raw_key, raw_blob, checksum, "checksum mismatch")
                else:
                    yield raw_key, raw_blob
            if len(rows) < page_keys:
                return
            last = rows[-1][0]
            after = last if isinstance(last, bytes) else str(last).encode()

    def load_deltas(
        self, *, page_rows: int = 1024, on_corrupt: DeltaCorruptHandler | None = None
    ) -> Iterator[DeltaRow]:
        """Every delta row whose checksum holds, in ``seq`` order, a page at a time (load them
        after :meth:`load`'s entries). A damaged row goes to ``on_corrupt`` (for
        :meth:`quarantine_deltas`) or is skipped with a warning."""
        if page_rows < 1:
            raise ValueError("page_rows must be at least 1")
        after = -1
        while True:
            with self._lock:
                conn = self._connection()
                try:
                    rows = conn.execute(
                        "SELECT seq, key, blob, checksum FROM deltas WHERE seq > ?"
                        " ORDER BY seq LIMIT ?",
                        (after, page_rows),
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise StorageError(f"cannot read {self._path}: {exc}") from exc
            for seq, raw_key, raw_blob, stored in rows:
                key = raw_key if isinstance(raw_key, bytes) else str(raw_key).encode()
                blob = raw_blob if isinstance(raw_blob, bytes) else str(raw_blob).encode()
                if type(stored) is not int or stored != entry_checksum(key, blob):
                    checksum = stored if type(stored) is int else None
                    if on_corrupt is None:
                        log.warning("skipping a corrupt stored delta for key %r", key)
                    else:
                        on_corrupt(DeltaRow(int(seq), key, blob), checksum, "checksum mismatch")
                else:
                    yield DeltaRow(int(seq), key, blob)
            if len(rows) < page_rows:
                return
            after = int(rows[-1][0])

    def pending_deltas(self) -> dict[bytes, tuple[int, int]]:
        """``key -> (delta rows, their bytes)`` of every key with delta rows (the writer's
        starting point for deciding when to fold)."""
        rows = self._fetch_all("SELECT key, count(*), sum(length(blob)) FROM deltas GROUP BY key")
        return {bytes(key): (int(count), int(size or 0)) for key, count, size in rows}

    def _keys_with_deltas(self) -> set[bytes]:
        return {bytes(key) for (key,) in self._fetch_all("SELECT DISTINCT key FROM deltas")}

    def delta_count(self) -> int:
        """How many delta rows wait to be folded."""
        row = self._fetch_one("SELECT count(*) FROM deltas", ())
        return 0 if row is None else int(row[0])

    def quarantine_deltas(self, rows: list[tuple[DeltaRow, int | None, str]], now_ms: int) -> None:
        """Move damaged delta rows (or the delta rows of a key whose entry was damaged) to
        ``quarantine``, in one durable commit."""
        with self._lock:
            conn = self._connection()
            try:
                with _immediate_transaction(conn):
                    conn.executemany(
                        "INSERT INTO quarantine (key, blob, checksum, reason, found_at_ms)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [(row.key, row.blob, total, why, now_ms) for row, total, why in rows],
                    )
                    conn.executemany(
                        "DELETE FROM deltas WHERE seq = ?", [(row.seq,) for row, _, _ in rows]
                    )
            except sqlite3.Error as exc:
                raise StorageError(f"cannot quarantine rows in {self._path}: {exc}") from exc

    def _corrupt(
        self,
        on_corrupt: CorruptRowHandler | None,
        key: bytes,
        blob: bytes,
        checksum: int | None,
        reason: str,
    ) -> None:
        if on_corrupt is None:
            log.warning("skipping a corrupt stored entry for key %r: %s", key, reason)
        else:
            on_corrupt(key, blob, checksum, reason)

    def quarantine(self, rows: list[tuple[bytes, bytes, int | None, str]], now_ms: int) -> None:
        """Move damaged rows out of ``entries`` into ``quarantine``, in one durable commit.

        They are kept (never loaded, never gossiped) for the operator to inspect; the keys are
        missing from the node until its peers refill them by anti-entropy.
        """
        with self._lock:
            conn = self._connection()
            try:
                with _immediate_transaction(conn):
                    conn.executemany(
                        "INSERT INTO quarantine (key, blob, checksum, reason, found_at_ms)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [(key, blob, total, why, now_ms) for key, blob, total, why in rows],
                    )
                    conn.executemany(_DELETE, [(key,) for key, _, _, _ in rows])
            except sqlite3.Error as exc:
                raise StorageError(f"cannot quarantine rows in {self._path}: {exc}") from exc

    def quarantined(self) -> list[tuple[bytes, bytes, str, int]]:
        """Every quarantined row: ``(key, blob, reason, found_at_ms)``, oldest first."""
        with self._lock:
            conn = self._connection()
            try:
                rows = conn.execute(
                    "SELECT key, blob, reason, found_at_ms FROM quarantine ORDER BY id"
                ).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read {self._path}: {exc}") from exc
        return [(bytes(k), bytes(b), str(r), int(t)) for k, b, r, t in rows]

    def get(self, key: bytes) -> bytes | None:
        """The committed blob of ``key``, or ``None``."""
        row = self._fetch_one("SELECT blob FROM entries WHERE key = ?", (key,))
        return None if row is None else bytes(row[0])

    def stored_size(self, key: bytes) -> int:
        """The bytes of ``key``'s whole row (0 when it has none)."""
        row = self._fetch_one("SELECT length(blob) FROM entries WHERE key = ?", (key,))
        return 0 if row is None else int(row[0])

    def count(self) -> int:
        """How many keys are committed."""
        row = self._fetch_one("SELECT count(*) FROM entries", ())
        return 0 if row is None else int(row[0])

    def meta_get(self, name: str) -> bytes | None:
        row = self._fetch_one("SELECT value FROM meta WHERE name = ?", (name,))
        return None if row is None else bytes(row[0])

    def meta_items(self) -> dict[str, bytes]:
        rows = self._fetch_all("SELECT name, value FROM meta ORDER BY name")
        return {str(name): bytes(value) for name, value in rows}

    def _fetch_all(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            try:
                rows: list[tuple[Any, ...]] = conn.execute(sql).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read {self._path}: {exc}") from exc
        return rows

    def _fetch_one(self, sql: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            conn = self._connection()
            try:
                row: tuple[Any, ...] | None = conn.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read {self._path}: {exc}") from exc
        return row

    # ------------------------------------------------------------------ writes

    def write_batch(
        self,
        puts: Mapping[bytes, bytes | None],
        meta: Mapping[str, bytes | None] | None = None,
        *,
        deltas: Mapping[bytes, Sequence[bytes]] | None = None,
        durable: bool = False,
    ) -> None:
        """Apply ``puts`` (``None`` removes the key), then append ``deltas``, and ``meta``, in
        one transaction.

        A put replaces the key's whole state: its delta rows go with it, so ``deltas`` hold
        only what was staged after the batch's last put of their key. With ``durable=True``
        this one commit runs at ``synchronous=FULL`` (fsynced before returning) whatever the
        store's level.
        """
        try:
            upserts = [
                (key, blob, entry_checksum(key, blob))
                for key, blob in puts.items()
                if blob is not None
            ]
            appends = [
                (key, blob, entry_checksum(key, blob))
                for key, blobs in (deltas or {}).items()
                for blob in blobs
            ]
        except TypeError as exc:  # not bytes: refused whole, as SQLite's CHECK would
            raise StorageError(f"cannot write {self._path}: {exc}") from exc
        deletes = [(key,) for key, blob in puts.items() if blob is None]
        meta_upserts: list[tuple[str, bytes]] = []
        meta_deletes: list[tuple[str]] = []
        for name, value in (meta or {}).items():
            if name == SCHEMA_VERSION_META:
                raise StorageError(f"meta name {name!r} is reserved")
            if value is None:
                meta_deletes.append((name,))
            else:
                meta_upserts.append((name, value))
        with self._lock:
            conn = self._connection()
            level = self._synchronous
            delta_keys = self._delta_keys
            replaced = [(key,) for key in puts if delta_keys is None or key in delta_keys]
            if delta_keys is not None:  # (added before the commit: a superset whatever comes)
                delta_keys.update(key for key, _, _ in appends)
            try:
                if durable and level not in ("FULL", "EXTRA"):
                    conn.execute("PRAGMA synchronous = FULL")
                try:
                    with _immediate_transaction(conn):
                        if len(upserts) >= UPSERT_MANY_FROM:
                            conn.execute(_UPSERT_MANY, _rows_in_one(upserts))
                        elif upserts:
                            conn.executemany(_UPSERT, upserts)
                        if len(deletes) >= UPSERT_MANY_FROM:
                            conn.execute(_DELETE_MANY, _keys_in_one(deletes))
                        elif deletes:
                            conn.executemany(_DELETE, deletes)
                        if replaced:
                            if len(replaced) >= UPSERT_MANY_FROM:
                                conn.execute(_DELTAS_DELETE_MANY, _keys_in_one(replaced))
                            else:
                                conn.executemany(_DELTAS_DELETE, replaced)
                        if len(appends) >= UPSERT_MANY_FROM:
                            conn.execute(_DELTA_INSERT_MANY, _rows_in_one(appends))
                        elif appends:
                            conn.executemany(_DELTA_INSERT, appends)
                        if meta_upserts:
                            conn.executemany(_META_UPSERT, meta_upserts)
                        if meta_deletes:
                            conn.executemany(_META_DELETE, meta_deletes)
                    if delta_keys and replaced:  # committed: those keys' rows are gone
                        appended = deltas or {}
                        delta_keys.difference_update(
                            key for (key,) in replaced if not appended.get(key)
                        )
                finally:
                    if durable and level not in ("FULL", "EXTRA"):
                        conn.execute(f"PRAGMA synchronous = {level}")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write {self._path}: {exc}") from exc

    def fold(self, key: bytes, fold: FoldFunction) -> int:
        """Rewrite ``key``'s whole row with its delta rows folded in, and delete those rows,
        in one transaction (a crash leaves either the rows or the folded entry, both the same
        state). Returns how many rows were folded: 0 when there were none, or when a row fails
        its checksum or ``fold`` refuses (they stay for the load to quarantine)."""
        with self._lock:
            conn = self._connection()
            try:
                with _immediate_transaction(conn):
                    row = conn.execute(
                        "SELECT blob, checksum FROM entries WHERE key = ?", (key,)
                    ).fetchone()
                    rows = conn.execute(
                        "SELECT seq, blob, checksum FROM deltas WHERE key = ? ORDER BY seq",
                        (key,),
                    ).fetchall()
                    base: bytes | None = None
                    if row is not None:
                        base = bytes(row[0])
                        if row[1] != entry_checksum(key, base):
                            return 0
                    blobs = [bytes(blob) for _, blob, _ in rows]
                    sums = [total for _, _, total in rows]
                    if not rows or any(
                        total != entry_checksum(key, blob)
                        for blob, total in zip(blobs, sums, strict=True)
                    ):
                        return 0
                    try:
                        folded = fold(base, blobs)
                    except Exception as exc:  # a damaged row: the next load quarantines it
                        log.warning("cannot fold the deltas of key %r: %s", key, exc)
                        return 0
                    conn.execute(_UPSERT, (key, folded, entry_checksum(key, folded)))
                    conn.execute(
                        "DELETE FROM deltas WHERE key = ? AND seq <= ?", (key, int(rows[-1][0]))
                    )
                if self._delta_keys is not None:  # (committed; no row came since: we hold the lock)
                    self._delta_keys.discard(key)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot fold in {self._path}: {exc}") from exc
        return len(rows)

    def meta_set(self, name: str, value: bytes | None, *, durable: bool = False) -> None:
        """Set (or with ``None`` remove) one named value."""
        self.write_batch({}, {name: value}, durable=durable)

    # ------------------------------------------------------------------ durability

    @property
    def synchronous(self) -> str:
        """The ``PRAGMA synchronous`` level commits run at (``OFF``/``NORMAL``/``FULL``)."""
        return self._synchronous

    def set_synchronous(self, level: str) -> None:
        wanted = level.upper()
        if wanted not in _SYNCHRONOUS_LEVELS:
            raise ValueError(f"unknown synchronous level {level!r}")
        with self._lock:
            conn = self._connection()
            try:
                conn.execute(f"PRAGMA synchronous = {wanted}")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot configure {self._path}: {exc}") from exc
            self._synchronous = wanted

    def checkpoint(self, *, truncate: bool = False) -> None:
        """Make every commit so far durable: a passive WAL checkpoint (``truncate``: one that
        also cuts the WAL file to nothing, giving its space back to the file system).

        In WAL mode SQLite fsyncs the WAL before it copies frames into the database file and
        fsyncs the database after (unless ``synchronous=OFF``), so with ``synchronous=NORMAL``
        this is the explicit "fsync now" the ``everysec`` policy runs once per second. It also
        keeps the WAL from growing without bound.
        """
        mode = "TRUNCATE" if truncate else "PASSIVE"
        with self._lock:
            conn = self._connection()
            try:
                conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot checkpoint {self._path}: {exc}") from exc

    def write_in_chunks(
        self,
        puts: Mapping[bytes, bytes | None],
        deltas: Mapping[bytes, Sequence[bytes]],
        *,
        rows_max: int,
    ) -> None:
        """:meth:`write_batch` of ``puts`` then ``deltas`` (durably), ``rows_max`` rows a
        transaction, the WAL cut back after each: what the writes need beyond their own rows
        is one chunk's WAL, not the whole batch's.

        For a disk too full for a batch beside its WAL: a transaction of random keys dirties
        a page per row, and the WAL holds every such page whole until the commit (thousands
        of 1 KB keys took 9 MB of WAL to add 3 MB of rows). Not atomic as a whole: a crash
        part way keeps the chunks committed so far."""
        self.checkpoint(truncate=True)  # (the space a failed attempt's frames hold)
        items = list(puts.items())
        for start in range(0, len(items), rows_max):
            self.write_batch(dict(items[start : start + rows_max]), durable=True)
            self.checkpoint(truncate=True)
        chunk: dict[bytes, Sequence[bytes]] = {}
        rows = 0
        for key, blobs in deltas.items():
            chunk[key] = blobs
            rows += len(blobs)
            if rows >= rows_max:
                self.write_batch({}, deltas=chunk, durable=True)
                self.checkpoint(truncate=True)
                chunk, rows = {}, 0
        if chunk:
            self.write_batch({}, deltas=chunk, durable=True)
            self.checkpoint(truncate=True)

    def reopen(self) -> None:
        """Close the connection and open a new one (after a failed commit or fsync).

        A connection that saw an I/O error may hold state (its page cache, its idea of the
        WAL) that no longer matches the disk; a fresh one reads the files again. The directory
        lock stays held throughout.
        """
        with self._lock:
            if self._lock_fd is None:
                raise StorageError(f"store {self._path} is closed")
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):  # replaced because it failed
                    conn.close()
            fresh = self._connect()
            try:
                fresh.execute(f"PRAGMA synchronous = {self._synchronous}")
            except sqlite3.Error as exc:
                fresh.close()
                raise StorageError(f"cannot configure {self._path}: {exc}") from exc
            self._conn = fresh

    def check_integrity(self) -> None:
        """Raise :class:`StorageError` unless SQLite's integrity check passes."""
        with self._lock:
            conn = self._connection()
            try:
                rows = conn.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot check {self._path}: {exc}") from exc
        problems = [str(row[0]) for row in rows]
        if problems != ["ok"]:
            raise StorageError(f"{self._path} failed its integrity check: {problems[:5]}")

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the database and release the directory lock (idempotent)."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise StorageError(f"cannot close {self._path}: {exc}") from exc
        finally:
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else self._synchronous
        return f"SqliteStore({str(self._data_dir)!r}, {state})"
