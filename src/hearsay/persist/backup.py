"""``hearsay backup``: a consistent copy of a data directory, taken while the node runs.

Copying ``hearsay.db`` with ``cp`` while a node writes can tear it (a page copied before a
commit, the next after; the WAL copied at another moment). SQLite's online backup API reads
one snapshot inside a read transaction (in WAL mode a reader never blocks the writer), so
the copy is the database as of one instant. The copy is then opened as a store, checked
(SQLite's integrity check, every row's checksum) and closed.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from hearsay.base.errors import StorageError
from hearsay.persist.store import DB_FILE_NAME, SqliteStore


@dataclass(frozen=True, slots=True)
class BackupResult:
    entries: int  # rows whose checksum holds
    damaged: int  # rows (entries and delta rows) that fail it (copied as they are;
    # quarantined when a node loads them)


def backup(data_dir: str | os.PathLike[str], destination: str | os.PathLike[str]) -> BackupResult:
    """Copy ``data_dir``'s database into the new directory ``destination`` and verify it."""
    source_path = Path(data_dir) / DB_FILE_NAME
    if not source_path.is_file():
        raise StorageError(f"{source_path} does not exist: not a hearsay data directory")
    target_dir = Path(destination)
    target_path = target_dir / DB_FILE_NAME
    if target_path.exists():
        raise StorageError(f"{target_path} already exists: back up into a new directory")
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {target_dir}: {exc.strerror}") from exc
    try:
        source = sqlite3.connect(f"{source_path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {source_path}: {exc}") from exc
    try:
        target = sqlite3.connect(target_path)
        try:
            source.backup(target)  # one step: one snapshot
        finally:
            target.close()
    except sqlite3.Error as exc:
        target_path.unlink(missing_ok=True)
        raise StorageError(f"cannot back up {source_path}: {exc}") from exc
    finally:
        source.close()
    damaged: list[bytes] = []
    with SqliteStore(target_dir) as store:
        store.check_integrity()
        entries = sum(
            1 for _ in store.load(on_corrupt=lambda key, _blob, _sum, _why: damaged.append(key))
        )
        # Delta rows (a big key's changes not yet folded) are checked the same way.
        for _ in store.load_deltas(on_corrupt=lambda row, _sum, _why: damaged.append(row.key)):
            pass
    return BackupResult(entries, len(damaged))
