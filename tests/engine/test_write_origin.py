"""A node whose own data may be behind its peers' copy of it writes to a fresh origin.

Counters (and count-min sketches) are per-origin sums merged by max: an INCRBY computes the new
total of this node's own slice from the copy this node holds. If that copy is older than what
the peers hold of the same slice (the last writes lost in a crash, a quarantined or lost
database, an old copy put back), the new total can be at or below the peers', and the max-merge
swallows an acknowledged increment. So only a clean stop keeps the write origin; after any
other stop, or when data was found damaged or missing, the node writes to a fresh slice.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from hearsay.engine.families import counter
from hearsay.engine.replica import Replica
from hearsay.persist.store import DB_FILE_NAME
from tests.support.nodes import Cluster, poll_until

NOW_MS = 1_700_000_000_000


def _damage_row(path: Path, key: bytes) -> None:
    """One byte more in the stored entry of ``key``: its checksum no longer matches."""
    with sqlite3.connect(path) as conn:
        (blob,) = conn.execute("SELECT blob FROM entries WHERE key = ?", (key,)).fetchone()
        conn.execute("UPDATE entries SET blob = ? WHERE key = ?", (bytes(blob) + b"\0", key))


def _open(data: Path) -> Replica:
    return Replica.open(data, now_ms=NOW_MS)


def test_a_clean_stop_keeps_the_write_origin(tmp_path: Path) -> None:
    first = _open(tmp_path / "d")
    node_id = first.identity.node_id
    assert first.origin == node_id  # a new node writes under its id
    first.close(NOW_MS)
    second = _open(tmp_path / "d")
    try:
        assert second.identity.generation == 2
        assert second.origin == node_id
    finally:
        second.close(NOW_MS)


def test_a_stop_that_was_not_clean_takes_a_fresh_origin(tmp_path: Path) -> None:
    first = _open(tmp_path / "d")
    node_id = first.identity.node_id
    storage = first.storage
    assert storage is not None
    storage.close()  # what a crash leaves: the store closed without the clean-stop marker
    first.storage = None
    second = _open(tmp_path / "d")
    try:
        assert second.origin == f"{node_id}.2"
    finally:
        second.close(NOW_MS)
    third = _open(tmp_path / "d")  # and a clean stop keeps that one
    try:
        assert third.origin == f"{node_id}.2"
    finally:
        third.close(NOW_MS)


def test_a_start_that_quarantines_an_entry_takes_a_fresh_origin(tmp_path: Path) -> None:
    first = _open(tmp_path / "d")
    node_id = first.identity.node_id
    counter.incrby(first, b"hits", 10, NOW_MS)
    first.close(NOW_MS)
    _damage_row(tmp_path / "d" / DB_FILE_NAME, b"hits")
    second = _open(tmp_path / "d")
    try:
        assert second.stats.corrupt_entries_skipped == 1
        assert second.origin == f"{node_id}.2"
    finally:
        second.close(NOW_MS)


def test_an_old_copy_of_the_database_is_reported_and_takes_a_fresh_origin(
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    first = _open(data)
    node_id = first.identity.node_id
    first.close(NOW_MS)
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy2(data / DB_FILE_NAME, old / DB_FILE_NAME)  # a cold copy, clean-stop marker in
    for _ in range(2):  # the node runs on (its sidecar says generation 3)
        _open(data).close(NOW_MS)
    shutil.copy2(old / DB_FILE_NAME, data / DB_FILE_NAME)
    back = _open(data)
    try:
        assert back.data_loss is not None and "older than this node's last run" in back.data_loss
        assert back.identity.node_id == node_id
        assert back.identity.generation > 3  # never a generation it already used
        assert back.origin == f"{node_id}.{back.identity.generation}"
    finally:
        back.close(NOW_MS)


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_an_increment_after_a_loss_is_never_swallowed_by_the_peers_copy(
    tmp_path: Path, damage: str
) -> None:
    """The peer holds 10 in this node's slice; this node lost it and counts +3 alone, then
    rejoins: the sum must be 13 everywhere (under one origin, max(3, 10) gave 10)."""
    cluster = Cluster(tmp_path)
    try:
        first = cluster.start("a")
        second = cluster.start("b", "--join", first.gossip)
        a, b = first.client(), second.client()
        assert a.incrby("hits", 10) == 10
        poll_until(lambda: b.get("hits") == b"10", 15, what="b to hold a's increments")
        assert first.stop() == 0  # a clean stop: only the damage below loses anything
        path = first.data_dir / DB_FILE_NAME
        if damage == "corrupt":
            _damage_row(path, b"hits")
        else:
            for leftover in (path.with_name(f"{DB_FILE_NAME}-wal"),):
                leftover.unlink(missing_ok=True)
            with path.open("r+b") as handle:
                handle.truncate(0)
        # alone (--no-rejoin: not even the peer its data directory remembers): nothing
        # refills it before the next write
        first = cluster.start("a", "--no-rejoin")
        a = first.client()
        assert a.incrby("hits", 3) == 3  # acknowledged
        assert a.execute_command("HEARSAY.JOIN", second.gossip) == b"OK"
        for client in (a, b):
            poll_until(lambda c=client: c.get("hits") == b"13", 20, what="13 on both nodes")
    finally:
        cluster.close()
