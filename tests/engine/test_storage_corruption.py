"""Damaged stored entries are quarantined, never loaded or gossiped; peers refill them.

A real data directory is written by :class:`Replica`, then bits are flipped in its SQLite
rows (through SQLite, so the file stays a valid database and only our data is wrong: the case
SQLite's own page checks cannot see). Whatever is flipped, the damaged row must never load as
a valid-but-different entry: it is quarantined and every other key loads unchanged.
"""

from __future__ import annotations

import logging
import random
import shutil
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hearsay.engine.replica import Replica
from hearsay.lattice.codec import encode_entry
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.persist.identity import NodeIdentity
from hearsay.persist.sidecar import SIDECAR_FILE_NAME
from hearsay.persist.store import DB_FILE_NAME, SCHEMA_VERSION, SqliteStore, entry_checksum
from hearsay.sketch import schemas
from tests.support.nodes import Cluster, poll_until

NOW_MS = 1_700_000_000_000
FLIPS = 300


def _populate(data_dir: Path) -> dict[bytes, bytes]:
    """A data directory with keys of every kind; returns each key's encoded entry."""
    database = Replica.open(data_dir)
    try:
        database.write_own(b"counter", schemas.counter(), MaxVector.from_items([(0, 431)]), NOW_MS)
        database.write_own(b"reg", schemas.maxreg(), MaxVector.from_items([(0, 99)]), NOW_MS)
        hll = MaxVector.from_items([(i * 7 % 16384, 1 + i % 20) for i in range(300)])
        database.write_own(b"visitors", schemas.hll(14), hll, NOW_MS)
        vector = MaxVector.from_items([(i * 1000, i + 1) for i in range(50)])
        database.write_own(b"vec", schemas.vector(), vector, NOW_MS)
        database.write_own(b"freq", schemas.cms(64, 4), MaxVector.from_items([(5, 3)]), NOW_MS)
        database.write_own(b"gone", schemas.maxreg(), MaxVector.from_items([(0, 1)]), NOW_MS)
        database.delete([b"gone"], NOW_MS + 1)  # a tombstone is an entry too
        database.flush()
        return {key: encode_entry(entry) for key, entry in database.keyspace.items()}
    finally:
        database.close()


def _loaded(database: Replica) -> dict[bytes, bytes]:
    return {key: encode_entry(entry) for key, entry in database.keyspace.items()}


def _rows(data_dir: Path) -> list[tuple[bytes, bytes, int]]:
    with sqlite3.connect(data_dir / DB_FILE_NAME) as conn:
        return [
            (bytes(k), bytes(b), int(c))
            for k, b, c in conn.execute("SELECT key, blob, checksum FROM entries ORDER BY key")
        ]


def _flip(data_dir: Path, rng: random.Random) -> bytes:
    """Flip one random bit (or byte) of one row's key, blob or checksum; returns the row's
    old key."""
    rows = _rows(data_dir)
    key, blob, checksum = rng.choice(rows)
    where = rng.choice(("blob", "blob", "blob", "key", "checksum"))
    with sqlite3.connect(data_dir / DB_FILE_NAME) as conn:
        if where == "checksum":
            conn.execute(
                "UPDATE entries SET checksum = ? WHERE key = ?",
                (checksum ^ (1 << rng.randrange(63)), key),
            )
        else:
            value = bytearray(blob if where == "blob" else key)
            if rng.random() < 0.5:  # one bit
                position = rng.randrange(len(value) * 8)
                value[position // 8] ^= 1 << (position % 8)
            else:  # one byte, to any other value
                position = rng.randrange(len(value))
                value[position] ^= rng.randrange(1, 256)
            column = "blob" if where == "blob" else "key"
            conn.execute(f"UPDATE entries SET {column} = ? WHERE key = ?", (bytes(value), key))
    return key


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[bytes, bytes]]:
    data_dir = tmp_path_factory.mktemp("pristine") / "data"
    return data_dir, _populate(data_dir)


def test_every_stored_row_carries_a_checksum_of_its_key_and_blob(
    pristine: tuple[Path, dict[bytes, bytes]],
) -> None:
    data_dir, entries = pristine
    rows = _rows(data_dir)
    assert {key for key, _, _ in rows} == set(entries)
    assert all(checksum == entry_checksum(key, blob) for key, blob, checksum in rows)


def test_no_bit_flip_loads_as_a_valid_but_different_entry(
    pristine: tuple[Path, dict[bytes, bytes]], tmp_path: Path
) -> None:
    data_dir, entries = pristine
    rng = random.Random(11)
    for trial in range(FLIPS):
        copy = tmp_path / f"flip{trial}"
        shutil.copytree(data_dir, copy)
        damaged = _flip(copy, rng)
        database = Replica.open(copy, now_ms=NOW_MS)
        try:
            loaded = _loaded(database)
            assert database.stats.corrupt_entries_skipped == 1, trial
        finally:
            database.close()
        expected = {key: blob for key, blob in entries.items() if key != damaged}
        assert loaded == expected, f"trial {trial}: a damaged row loaded"
        with SqliteStore(copy) as store:
            quarantined = store.quarantined()
            assert len(quarantined) == 1 and quarantined[0][3] == NOW_MS
            assert damaged not in {key for key, _ in store.load()}
        shutil.rmtree(copy)


def test_an_entry_that_passes_its_checksum_but_is_invalid_is_quarantined(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    entries = _populate(data)
    bogus = Entry(
        1, Schema("nosuchkind", (), 4).intern(), slices={"": MaxVector.from_items([(0, 1)])}
    )
    wrong_params = Entry(1, Schema("hll", (14,), 99).intern(), slices={"": MaxVector()})
    with SqliteStore(data) as store:
        store.write_batch(
            {
                b"bogus": encode_entry(bogus),
                b"wrong": encode_entry(wrong_params),
                b"junk": b"\x93not an entry",
            }
        )
    database = Replica.open(data, now_ms=NOW_MS)
    try:
        assert _loaded(database) == entries
        assert database.stats.corrupt_entries_skipped == 3
    finally:
        database.close()
    with SqliteStore(data) as store:
        reasons = {key: reason for key, _, reason, _ in store.quarantined()}
    assert set(reasons) == {b"bogus", b"wrong", b"junk"}
    assert all(reason.startswith("invalid entry") for reason in reasons.values())


def test_a_version_1_database_is_migrated_with_checksums(tmp_path: Path) -> None:
    data = tmp_path / "data"
    entry = Entry(1, schemas.maxreg(), slices={"": MaxVector.from_items([(0, 5)])})
    data.mkdir()
    with sqlite3.connect(data / DB_FILE_NAME) as conn:  # what schema 1 created
        conn.execute("PRAGMA application_id = 1213415769")
        conn.execute(
            "CREATE TABLE entries (key BLOB PRIMARY KEY NOT NULL CHECK (typeof(key) = 'blob'),"
            " blob BLOB NOT NULL CHECK (typeof(blob) = 'blob'))"
        )
        conn.execute(
            "CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL CHECK (typeof(name) = 'text'),"
            " value BLOB NOT NULL CHECK (typeof(value) = 'blob'))"
        )
        conn.execute("INSERT INTO meta VALUES ('schema_version', x'31')")
        conn.execute("INSERT INTO entries VALUES (?, ?)", (b"reg", encode_entry(entry)))
    database = Replica.open(data)
    try:
        assert _loaded(database) == {b"reg": encode_entry(entry)}
        assert database.stats.corrupt_entries_skipped == 0
    finally:
        database.close()
    with SqliteStore(data) as store:
        assert store.meta_get("schema_version") == str(SCHEMA_VERSION).encode()
    assert [(k, c) for k, _, c in _rows(data)] == [
        (b"reg", entry_checksum(b"reg", encode_entry(entry)))
    ]


@pytest.mark.integration
def test_a_corrupt_entry_never_replaces_the_peer_copy_and_is_refilled(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        first = cluster.start("a")
        second = cluster.start("b", "--join", first.gossip)
        a, b = first.client(), second.client()
        a.incrby("hits", 400)
        b.incrby("hits", 31)
        for client in (a, b):
            poll_until(lambda c=client: c.get("hits") == b"431", 15, what="hits to converge")
        assert second.stop() == 0
        # Flip one bit of b's row of "hits" so that, without a checksum, it still decodes, to
        # a higher count: a clear bit of the last value byte of the last slice.
        rows = {key: blob for key, blob, _ in _rows(second.data_dir)}
        blob = bytearray(rows[b"hits"])
        blob[-1] |= next(bit for bit in (0x40, 0x20, 0x10, 0x80) if not blob[-1] & bit)
        with sqlite3.connect(second.data_dir / DB_FILE_NAME) as conn:
            conn.execute("UPDATE entries SET blob = ? WHERE key = ?", (bytes(blob), b"hits"))
        second = cluster.start("b", "--join", first.gossip)
        b = second.client()

        def refilled() -> bool:
            assert a.get("hits") == b"431", "the healthy copy was replaced"
            return bool(b.get("hits") == b"431")

        poll_until(refilled, 20, what="b to be refilled from a")
        assert b.info("persistence")["quarantined_entries"] == 1
    finally:
        cluster.close()


# ---------------------------------------------------------------- an empty or missing database


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_lost_database_is_reported_and_the_node_keeps_its_id(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    _populate(data)
    with SqliteStore(data) as store:
        before = NodeIdentity.read(store)
    assert before is not None
    for leftover in (data / f"{DB_FILE_NAME}-wal", data / f"{DB_FILE_NAME}-shm"):
        leftover.unlink(missing_ok=True)
    if damage == "truncate":
        with (data / DB_FILE_NAME).open("r+b") as handle:
            handle.truncate(0)
    else:
        (data / DB_FILE_NAME).unlink()
    with caplog.at_level(logging.ERROR, logger="hearsay.engine.data_dir"):
        database = Replica.open(data, now_ms=NOW_MS)
    try:
        assert database.data_loss is not None and "held 6 entries" in database.data_loss
        assert database.identity.node_id == before.node_id
        assert database.identity.generation > before.generation
        assert len(database.keyspace) == 0
    finally:
        database.close(NOW_MS)
    assert any("was empty or missing" in record.message for record in caplog.records)
    # Reported once: the next start finds the restored identity and nothing amiss.
    reopened = Replica.open(data, now_ms=NOW_MS)
    try:
        assert reopened.data_loss is None
        assert reopened.identity.node_id == before.node_id
    finally:
        reopened.close(NOW_MS)


def test_a_new_data_directory_is_not_reported(tmp_path: Path) -> None:
    database = Replica.open(tmp_path / "data", now_ms=NOW_MS)
    try:
        assert database.data_loss is None
    finally:
        database.close(NOW_MS)
    assert (tmp_path / "data" / SIDECAR_FILE_NAME).exists()


@pytest.mark.integration
def test_a_node_whose_database_was_truncated_says_so_and_is_refilled_under_its_id(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path)
    try:
        first = cluster.start("a")
        second = cluster.start("b", "--join", first.gossip)
        a, b = first.client(), second.client()
        a.incrby("hits", 400)
        b.incrby("hits", 31)
        poll_until(lambda: b.get("hits") == b"431" == a.get("hits"), 15, what="convergence")
        name = second.name
        assert second.stop() == 0
        with (second.data_dir / DB_FILE_NAME).open("r+b") as handle:
            handle.truncate(0)
        second = cluster.start("b", "--join", first.gossip)
        assert second.name == name, "the node must keep its id"
        with urllib.request.urlopen(f"http://{second.http}/health", timeout=10) as reply:
            assert reply.read().decode().startswith("degraded: the database")
        b = second.client()
        assert "empty or missing" in b.info("persistence")["storage_data_loss_at_start"]
        poll_until(lambda: b.get("hits") == b"431", 20, what="b to be refilled from a")
        output = b"\n".join(second.output).decode(errors="replace")
        assert "ERROR" in output and "was empty or missing" in output, output
    finally:
        cluster.close()


# ---------------------------------------------------------------- backups


@pytest.mark.integration
def test_backup_of_a_running_node_restores_every_acknowledged_write(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start("n", "--fsync", "always")
        client = node.client()
        for number in range(100):
            assert client.incrby(f"k{number}", number + 1) == number + 1
        copy = tmp_path / "copy"
        command = [sys.executable, "-m", "hearsay.cli", "backup", "--data-dir"]
        command += [str(node.data_dir), str(copy)]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("backed up 100 entries")
        client.incrby("after", 1)  # the node keeps serving; the copy is of one instant
        again = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and "already exists" in again.stderr
        assert node.stop() == 0
        restored = cluster.start("copy")  # data dir tmp_path / "copy"
        reader = restored.client()
        assert [reader.get(f"k{n}") for n in range(100)] == [
            str(n + 1).encode() for n in range(100)
        ]
        assert reader.get("after") is None
    finally:
        cluster.close()
