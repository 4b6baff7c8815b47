"""A big key's write costs its delta on disk: delta rows, folds, and loads that add up to the
same keyspace as whole-entry writes would.

The store (delta rows beside whole rows, a put dropping them, an atomic fold), the group
committer (staging deltas, folding them in the background) and the replica (which keys go as
deltas, and that a reopened node holds exactly what it held, deletes and purges included) are
each checked against a model. Kills during a load and during a fold: tests/runtime/
test_crash_large.py.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import StorageError
from hearsay.engine.replica import DELTA_ENTRY_BYTES_MIN, DELTA_REJOIN_BYTES_MIN, Replica
from hearsay.lattice.entry import Entry
from hearsay.lattice.join import join_deltas
from hearsay.lattice.vector import VALUE_MAX, MaxVector
from hearsay.persist.backup import BackupResult, backup
from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import FOLD_IDLE_S, GroupCommit
from hearsay.persist.store import SCHEMA_VERSION, UPSERT_MANY_FROM, SqliteStore
from hearsay.resp.cluster_commands import ClusterControl
from hearsay.resp.commands import ClientContext, CommandRegistry
from hearsay.resp.server_commands import build_registry
from tests.engine.test_persist import FlakyDisk
from tests.support.command_client import NoServer
from tests.support.lattice_strategies import COUNTER, HLL, RAW, entries

POLICIES = [FsyncPolicy.ALWAYS, FsyncPolicy.EVERYSEC, FsyncPolicy.NO]


def union_fold(base: bytes | None, deltas: list[bytes]) -> bytes:
    """A join for tests: a blob is a set of comma-separated tokens, joined by union."""
    tokens: set[bytes] = set() if not base else set(base.split(b","))
    for blob in deltas:
        tokens.update(blob.split(b","))
    tokens.discard(b"")
    return b",".join(sorted(tokens))


def loaded_union(store: SqliteStore) -> dict[bytes, bytes]:
    """What a load makes of the store under :func:`union_fold`."""
    state: dict[bytes, bytes | None] = dict(store.load())
    for row in store.load_deltas():
        state[row.key] = union_fold(state.get(row.key), [row.blob])
    return {key: blob for key, blob in state.items() if blob is not None}


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# ---------------------------------------------------------------------------- the store


def test_a_put_drops_the_keys_delta_rows_and_a_fold_keeps_the_state(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "data") as store:
        store.write_batch({b"k": b"a"}, deltas={b"k": [b"b", b"c"], b"only": [b"x"]})
        assert [(row.key, row.blob) for row in store.load_deltas()] == [
            (b"k", b"b"),
            (b"k", b"c"),
            (b"only", b"x"),
        ]
        assert store.pending_deltas() == {b"k": (2, 2), b"only": (1, 1)}
        assert store.fold(b"k", union_fold) == 2
        assert store.get(b"k") == b"a,b,c"
        assert store.fold(b"k", union_fold) == 0  # nothing left to fold
        assert store.fold(b"only", union_fold) == 1  # no whole row yet: the deltas make it
        assert store.get(b"only") == b"x"
        store.write_batch({}, deltas={b"k": [b"d"]})
        store.write_batch({b"k": None})  # a delete (or a purge): its old deltas go with it
        assert store.delta_count() == 0
        assert loaded_union(store) == {b"only": b"x"}
        store.check_integrity()


def test_a_put_drops_delta_rows_whatever_batch_or_opening_wrote_them(tmp_path: Path) -> None:
    """A put deletes its key's delta rows only where the store knows there may be some: rows
    appended in the same batch as a put stay and go with the next put, rows found on disk
    at opening go with the first, a fold leaves none behind to find."""
    data = tmp_path / "data"
    with SqliteStore(data) as store:
        store.write_batch({}, deltas={b"k": [b"a"], b"j": [b"x"]})
        store.write_batch({b"k": b"b"}, deltas={b"k": [b"c"]})  # the put first, then the row
        assert [(row.key, row.blob) for row in store.load_deltas()] == [(b"j", b"x"), (b"k", b"c")]
        store.write_batch({b"k": b"d"})
        assert [row.key for row in store.load_deltas()] == [b"j"]
        assert store.fold(b"j", union_fold) == 1
        store.write_batch({}, deltas={b"j": [b"y"]})
        store.write_batch({b"j": b"z", b"k": b"e"})
        assert store.delta_count() == 0
        store.write_batch({}, deltas={b"k": [b"f"]})
    with SqliteStore(data) as store:  # rows left on disk, found at opening
        store.write_batch({b"k": b"g"})
        assert store.delta_count() == 0
        assert loaded_union(store) == {b"j": b"z", b"k": b"g"}


def test_big_batches_of_delta_rows_and_deletes_match_row_by_row_writes(tmp_path: Path) -> None:
    """Batches with UPSERT_MANY_FROM delta rows, puts or deletes or more are written by one
    statement each: every delta row reads back byte for byte, with a checksum that holds
    (load_deltas skips one that fails), each key's rows in the order they were staged, and a
    put or a delete drops its key's rows, exactly as the same batches written a few rows at a
    time (executemany) leave them."""
    rng = random.Random(5)
    keys = [b"", b"\x00\xff", *(b"k%d" % i for i in range(60)), rng.randbytes(40)]
    batches: list[tuple[dict[bytes, bytes | None], dict[bytes, list[bytes]]]] = []
    for round_no in range(5):
        deltas: dict[bytes, list[bytes]] = {}
        for _ in range(UPSERT_MANY_FROM + rng.randrange(200)):
            blob = rng.choice([b"", b"x", rng.randbytes(rng.choice([1, 60, 1400]))])
            deltas.setdefault(rng.choice(keys), []).append(blob)
        puts: dict[bytes, bytes | None] = {}
        if round_no:  # rounds of many puts, then of many deletes (their keys' rows go)
            for key in rng.sample(keys, UPSERT_MANY_FROM + 8):
                puts[key] = None if round_no % 2 == 0 else rng.randbytes(30)
            for key in puts:
                deltas.pop(key, None)  # (a put replaces its key: rows staged after it only)
        batches.append((puts, deltas))
    with SqliteStore(tmp_path / "many") as many, SqliteStore(tmp_path / "few") as few:
        for puts, deltas in batches:
            many.write_batch(puts, deltas=deltas)
            for key, blob in puts.items():  # the same rows a key at a time
                few.write_batch({key: blob})
            for key, blobs in deltas.items():
                few.write_batch({}, deltas={key: blobs})
            rows_many = [(row.key, row.blob) for row in many.load_deltas()]
            by_key: dict[bytes, list[bytes]] = {}
            for key, blob in rows_many:
                by_key.setdefault(key, []).append(blob)
            rows_few: dict[bytes, list[bytes]] = {}
            for row in few.load_deltas():
                rows_few.setdefault(row.key, []).append(row.blob)
            assert by_key == rows_few
            assert dict(many.load()) == dict(few.load())
        assert many.delta_count() == sum(map(len, by_key.values())) > UPSERT_MANY_FROM
        many.check_integrity()


def test_a_refused_fold_changes_nothing(tmp_path: Path) -> None:
    def refuse(base: bytes | None, deltas: list[bytes]) -> bytes:
        raise ValueError("damaged")

    with SqliteStore(tmp_path / "data") as store:
        store.write_batch({b"k": b"a"}, deltas={b"k": [b"b"]})
        assert store.fold(b"k", refuse) == 0
        assert store.get(b"k") == b"a"
        assert store.delta_count() == 1


def test_a_schema_2_database_gains_the_delta_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with SqliteStore(data) as store:
        store.write_batch({b"k": b"v"})
    conn = sqlite3.connect(data / "hearsay.db")
    conn.execute("DROP TABLE deltas")
    conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (b"2",))
    conn.commit()
    conn.close()
    with SqliteStore(data) as store:
        assert store.meta_get("schema_version") == str(SCHEMA_VERSION).encode() == b"3"
        store.write_batch({}, deltas={b"k": [b"w"]})
        assert loaded_union(store) == {b"k": b"v,w"}


def test_a_damaged_delta_row_is_quarantined_with_its_key(tmp_path: Path) -> None:
    from hearsay.engine.data_dir import load_entries
    from hearsay.lattice.keyspace import Keyspace

    data = tmp_path / "data"
    replica = Replica.open(data, commands=_registry())
    session = ClientContext(client_id=1, db=replica)
    _big_bloom(replica, session)
    for item in range(5):
        replica.execute(session, [b"BF.ADD", b"bf", b"item-%d" % item], 1)
        replica.flush()
    replica.close()
    conn = sqlite3.connect(data / "hearsay.db")
    (count,) = conn.execute("SELECT count(*) FROM deltas").fetchone()
    assert count >= 1
    conn.execute("UPDATE deltas SET blob = x'00' WHERE seq = (SELECT max(seq) FROM deltas)")
    conn.commit()
    conn.close()
    with SqliteStore(data) as store:
        keyspace = Keyspace()
        _, damaged, _ = load_entries(store, keyspace, 5)
        assert damaged == 1  # the last row: the earlier ones hold and are loaded
        assert store.delta_count() == count - 1
        assert [row[0] for row in store.quarantined()] == [b"bf"]
    replica = Replica.open(data, commands=_registry())
    session = ClientContext(client_id=1, db=replica)
    try:
        assert replica.stats.corrupt_entries_skipped == 0  # quarantined by the load above
        assert replica.execute(session, [b"BF.EXISTS", b"bf", b"fill-999"], 10) == 1
    finally:
        replica.close()


def test_a_backup_checks_delta_rows_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    replica = Replica.open(data, commands=_registry())
    session = ClientContext(client_id=1, db=replica)
    _big_bloom(replica, session)
    replica.execute(session, [b"BF.ADD", b"bf", b"late"], 1)
    replica.close()
    with SqliteStore(data) as store:
        assert store.delta_count() == 1
    assert backup(data, tmp_path / "clean") == BackupResult(entries=1, damaged=0)
    conn = sqlite3.connect(data / "hearsay.db")
    conn.execute("UPDATE deltas SET checksum = checksum + 1")
    conn.commit()
    conn.close()
    assert backup(data, tmp_path / "copy") == BackupResult(entries=1, damaged=1)


# ---------------------------------------------------------------------------- joining deltas


@settings(max_examples=40, deadline=None)
@given(base=entries(), deltas=st.lists(entries(), max_size=8))
def test_joining_deltas_at_once_is_merging_them_one_by_one(
    base: Entry, deltas: list[Entry]
) -> None:
    """The flush's and the fold's one-pass join gives exactly the general path's entry, and
    leaves its arguments as they were."""
    one_by_one = base.copy()
    for delta in deltas:
        one_by_one.merge(delta)
    before = [delta.copy() for delta in deltas]
    at_once = base.copy()
    if deltas:
        at_once.merge(join_deltas(deltas))
    assert at_once == one_by_one
    assert deltas == before


@st.composite
def _small_runs(draw: st.DrawFn) -> list[Entry]:
    """Deltas of one epoch and schema with a few pairs in all: a drain's writes to one key,
    joined in the few-pairs path (a shared slice held as bytes or as a vector, or additive
    slices by origin; overlays of later writes; an empty delta now and then)."""
    schema = draw(st.sampled_from([RAW, HLL, COUNTER]))
    epoch = draw(st.integers(0, 2))
    run: list[Entry] = []
    for _ in range(draw(st.integers(2, 6))):
        expiry = draw(st.sampled_from([(0, 0), (5, 100), (7, 0)]))
        origins = draw(
            st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=2, unique=True)
        )
        slices: dict[str, MaxVector] = {}
        for origin in origins if schema.additive else [""]:
            pairs = draw(st.dictionaries(st.integers(0, 50), st.integers(1, 300), max_size=5))
            vector = MaxVector.from_items(pairs.items())
            later = draw(st.dictionaries(st.integers(0, 50), st.integers(1, 300), max_size=2))
            if later:
                vector.merge(MaxVector.from_items(later.items()))
            slices[origin] = vector
        run.append(Entry(epoch, schema, expiry, slices))
    return run


@settings(max_examples=200, deadline=None)
@given(base=entries(), deltas=_small_runs())
def test_joining_a_few_small_deltas_is_merging_them_one_by_one(
    base: Entry, deltas: list[Entry]
) -> None:
    """The few-pairs join (read from the deltas' bytes, its result held without a copy) gives
    the general path's entry, shares no vector with its arguments and leaves them as they were."""
    one_by_one = base.copy()
    for delta in deltas:
        one_by_one.merge(delta)
    before = [delta.copy() for delta in deltas]
    joined = join_deltas(deltas)
    merged = Entry(deltas[0].epoch, deltas[0].schema)
    for delta in deltas:
        merged.merge(delta)
    assert joined == merged
    at_once = base.copy()
    at_once.merge(joined)
    assert at_once == one_by_one
    for _, vector in joined.slices():
        vector.merge(MaxVector.from_items([(49, VALUE_MAX)]))  # (may not reach any argument)
    assert deltas == before


# ---------------------------------------------------------------------------- the committer

DELTA_OPS = st.lists(
    st.tuples(
        st.sampled_from([b"a", b"b", b"c"]),
        st.sampled_from([b"t1", b"t2", b"t3", b"t4,t5", b"t6", None]),
        st.sampled_from(["delta", "delta", "delta", "put", "flush", "reopen"]),
    ),
    max_size=40,
)


@settings(max_examples=30, deadline=None)
@given(ops=DELTA_OPS, policy=st.sampled_from(POLICIES), batched=st.booleans())
def test_group_commit_with_deltas_and_folds_matches_a_model(
    ops: list[tuple[bytes, bytes | None, str]], policy: FsyncPolicy, batched: bool
) -> None:
    """Puts, deltas, reopens and folds (rows this small are due at once) in any order, one
    call each or ``batched`` (``stage_batch`` of every write since the last flush, as the
    replica's flush stages them): a load is the model's state."""
    model: dict[bytes, bytes] = {}
    batch: list[tuple[bytes, bytes | None, bool]] = []

    def stage_the_batch() -> None:
        if batch:
            ticket = writer.stage_batch(batch)
            batch.clear()
            ticket.result(timeout=30)

    with tempfile.TemporaryDirectory() as tmp:
        writer = GroupCommit.open(tmp, policy, fold=union_fold)
        try:
            for key, blob, action in ops:
                if action == "flush":
                    stage_the_batch()
                    writer.flush()
                    assert loaded_union(writer.store) == model
                elif action == "reopen":
                    stage_the_batch()
                    writer.close()
                    writer = GroupCommit.open(tmp, policy, fold=union_fold)
                    assert loaded_union(writer.store) == model
                elif action == "put" or blob is None:
                    if batched:
                        batch.append((key, blob, False))
                    else:
                        writer.stage(key, blob)
                    if blob is None:
                        model.pop(key, None)
                    else:
                        model[key] = blob
                else:
                    if batched:
                        batch.append((key, blob, True))
                    else:
                        writer.stage_delta(key, blob)
                    model[key] = union_fold(model.get(key), [blob])
            stage_the_batch()
            writer.flush()
            assert loaded_union(writer.store) == model
        finally:
            writer.close()


def test_stage_batch_refuses_what_stage_refuses(tmp_path: Path) -> None:
    """Not bytes, or a delta of nothing: refused before anything of the batch is staged."""
    with GroupCommit.open(tmp_path / "data") as writer:
        for bad in [
            (cast(bytes, "k"), b"v", False),
            (b"k", None, True),
            (b"k", cast(bytes, 1), False),
        ]:
            with pytest.raises(TypeError):
                writer.stage_batch([(b"fine", b"v", False), bad])
        assert writer.stats().staged == 0


def test_deltas_are_folded_once_they_reach_half_the_whole_row(tmp_path: Path) -> None:
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.ALWAYS, fold=union_fold)
    try:
        writer.stage(b"k", b",".join(b"base%03d" % i for i in range(100))).result(timeout=10)
        rows = 0
        while writer.stats().folds == 0:  # bounded: due after about 400 bytes of deltas
            writer.stage_delta(b"k", b"d%05d" % rows).result(timeout=10)
            rows += 1
            assert rows < 200, "no fold after twice the bytes that make one due"
        assert rows >= 50  # not folded at every delta either
        stats = writer.stats()
        assert stats.delta_rows == rows
        assert stats.pending_delta_rows == 0
        assert writer.store.delta_count() == 0
        assert len(writer.store.get(b"k") or b"") > 800
    finally:
        writer.close()


def test_an_idle_writer_folds_what_is_worth_folding(tmp_path: Path) -> None:
    """Rows under half the whole row are not due while writes come; once the writer is idle,
    those over a sixteenth of it are folded, and a key with less is left alone."""
    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.EVERYSEC, fold=union_fold)
    try:
        writer.stage(b"k", b"x" * 16_000)
        writer.stage(b"tiny", b"x" * 16_000)
        writer.stage_delta(b"k", b"y" * 1_200)  # 1/13 of the row: due when idle
        writer.stage_delta(b"tiny", b"z")  # 1/16000: not even then
        writer.flush()
        wait_until(lambda: writer.stats().folds == 1, "the idle fold", timeout_s=10 * FOLD_IDLE_S)
        assert [row.key for row in writer.store.load_deltas()] == [b"tiny"]
        assert loaded_union(writer.store)[b"k"] == union_fold(b"x" * 16_000, [b"y" * 1_200])
    finally:
        writer.close()


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_delta_rows_held_while_the_disk_fails_are_written_on_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: FsyncPolicy
) -> None:
    """The failing-storage path with deltas: a failed commit holds them (and the puts before
    them, in order), an ``always`` ticket fails, and the recovery rewrites them all."""
    writer = GroupCommit.open(tmp_path / "data", policy, retry_interval_s=0.05, fold=union_fold)
    disk = FlakyDisk(writer.store, monkeypatch, "commit")
    try:
        writer.stage(b"k", b"a").result(timeout=5.0)
        writer.flush()
        disk.broken.set()
        ticket = writer.stage_delta(b"k", b"b")
        if policy is FsyncPolicy.ALWAYS:
            with pytest.raises(StorageError, match="disk is full"):
                ticket.result(timeout=5.0)
        wait_until(lambda: writer.failure is not None, "the writer to record its failure")
        writer.stage(b"gone", b"x")
        writer.stage(b"gone", None)
        writer.stage_delta(b"k", b"c")
        disk.broken.clear()
        wait_until(lambda: writer.failure is None, "the writer to recover")
        writer.flush()
        assert loaded_union(writer.store) == {b"k": b"a,b,c"}
    finally:
        writer.close()


def test_stage_delta_takes_bytes_only(tmp_path: Path) -> None:
    with GroupCommit.open(tmp_path / "data") as writer:
        with pytest.raises(TypeError):
            writer.stage_delta(b"k", cast(bytes, "text"))
        with pytest.raises(TypeError):
            writer.stage_delta(cast(bytes, "k"), b"v")


# ---------------------------------------------------------------------------- the replica


def _registry() -> CommandRegistry:
    return build_registry(NoServer(), cast(ClusterControl, object()))


def _big_bloom(replica: Replica, session: ClientContext) -> None:
    assert replica.execute(session, [b"BF.RESERVE", b"bf", b"0.01", b"100000"], 0) == "OK"
    replica.execute(session, [b"BF.MADD", b"bf", *FILL], 0)
    entry = replica.keyspace.entry(b"bf")
    assert entry is not None and entry.payload_bytes() >= DELTA_ENTRY_BYTES_MIN
    replica.flush()


def test_a_big_key_is_flushed_as_deltas_a_small_one_whole(tmp_path: Path) -> None:
    replica = Replica.open(tmp_path / "data", FsyncPolicy.ALWAYS, commands=_registry())
    session = ClientContext(client_id=1, db=replica)
    try:
        _big_bloom(replica, session)
        before = replica.stats.deltas_flushed
        for i in range(20):
            replica.execute(session, [b"BF.ADD", b"bf", b"item-%d" % i], 1)
            replica.execute(session, [b"INCR", b"small"], 1)
            ticket = replica.flush()
            assert ticket is not None
            ticket.result(timeout=30)
        assert replica.stats.deltas_flushed - before == 20  # the filter, never the counter
        storage = replica.storage
        assert isinstance(storage, GroupCommit)
        assert storage.stats().delta_rows >= 20 - storage.stats().folds
    finally:
        replica.close()


def test_a_mid_size_key_takes_deltas_until_its_writes_add_up_to_half_of_it(
    tmp_path: Path,
) -> None:
    """A dense 2000x5 count-min (10 KB) among other keys: one CMS.INCRBY a flush is a delta
    row, never the whole sketch; so many writes in one flush that their deltas add up to
    half of it (a hot key) stage it whole, once; a counter is always whole."""
    replica = Replica.open(tmp_path / "data", FsyncPolicy.ALWAYS, commands=_registry())
    session = ClientContext(client_id=1, db=replica)
    try:
        replica.execute(session, [b"CMS.INITBYDIM", b"cms", b"2000", b"5"], 0)
        fill = [part for item in FILL for part in (item, b"1")]
        replica.execute(session, [b"CMS.INCRBY", b"cms", *fill], 0)
        entry = replica.keyspace.entry(b"cms")
        assert entry is not None
        assert DELTA_ENTRY_BYTES_MIN <= entry.payload_bytes() < DELTA_REJOIN_BYTES_MIN
        replica.flush()
        before = replica.stats.deltas_flushed
        for i in range(10):
            replica.execute(session, [b"CMS.INCRBY", b"cms", b"new-%d" % i, b"1"], 1)
            replica.execute(session, [b"INCR", b"small"], 1)
            ticket = replica.flush()
            assert ticket is not None
            ticket.result(timeout=30)
        assert replica.stats.deltas_flushed - before == 10  # the sketch, never the counter
        before = replica.stats.deltas_flushed
        for i in range(2000):  # ~5 cells raised each: past half of the sketch in one flush
            replica.execute(session, [b"CMS.INCRBY", b"cms", b"hot-%d" % i, b"1"], 1)
        ticket = replica.flush()
        assert ticket is not None
        ticket.result(timeout=30)
        assert replica.stats.deltas_flushed == before  # staged whole
        held = dict(replica.keyspace.items())
    finally:
        replica.close()
    reopened = Replica.open(tmp_path / "data", commands=_registry())
    try:
        assert dict(reopened.keyspace.items()) == held
    finally:
        reopened.close()


COMMANDS = st.lists(
    st.one_of(
        st.tuples(st.just("BF.ADD"), st.integers(0, 30)),
        st.tuples(st.just("CMS.INCRBY"), st.integers(0, 30)),
        st.tuples(st.just("PFADD"), st.integers(0, 3000)),
        st.tuples(
            st.sampled_from(["DEL", "EXPIRE", "PERSIST", "FLUSH", "REOPEN", "PURGE"]),
            st.integers(0, 2),
        ),
    ),
    max_size=30,
)
KEYS = [b"bf", b"cms", b"hll"]
FILL = [b"fill-%d" % i for i in range(2500)]  # a filter and a sketch over 64 KiB: deltas


def _setup_keys(replica: Replica, session: ClientContext, now_ms: int) -> None:
    """(Re)create the three keys big enough to go as deltas (absent ones only)."""
    if replica.get(b"bf", now_ms) is None:
        replica.execute(session, [b"BF.RESERVE", b"bf", b"0.01", b"100000"], now_ms)
        replica.execute(session, [b"BF.MADD", b"bf", *FILL], now_ms)
    if replica.get(b"cms", now_ms) is None:
        replica.execute(session, [b"CMS.INITBYDIM", b"cms", b"20000", b"7"], now_ms)
        fill = [part for item in FILL for part in (item, b"1")]
        replica.execute(session, [b"CMS.INCRBY", b"cms", *fill], now_ms)


@settings(max_examples=15, deadline=None)
@given(commands=COMMANDS, policy=st.sampled_from(POLICIES))
def test_a_reopened_replica_holds_exactly_what_it_held(
    commands: list[tuple[str, int]], policy: FsyncPolicy
) -> None:
    """Deltas, folds, deletes, expiry and purges: the keyspace a restart loads equals the one
    the node held at its clean stop (the whole-entry path's guarantee, kept by deltas)."""
    registry = _registry()
    now_ms = 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        replica = Replica.open(tmp, policy, now_ms=now_ms, commands=registry)
        session = ClientContext(client_id=1, db=replica)
        try:
            for name, arg in commands:
                now_ms += 10
                _setup_keys(replica, session, now_ms)
                if name == "BF.ADD":
                    replica.execute(session, [b"BF.ADD", b"bf", b"i%d" % arg], now_ms)
                elif name == "CMS.INCRBY":
                    replica.execute(session, [b"CMS.INCRBY", b"cms", b"i%d" % arg, b"3"], now_ms)
                elif name == "PFADD":
                    replica.execute(session, [b"PFADD", b"hll", b"m%d" % arg], now_ms)
                elif name in ("DEL", "PERSIST"):
                    replica.execute(session, [name.encode(), KEYS[arg]], now_ms)
                elif name == "EXPIRE":
                    replica.execute(session, [b"PEXPIRE", KEYS[arg], b"15"], now_ms)
                    now_ms += 20
                    replica.expire_due(now_ms)
                elif name == "PURGE":
                    replica.purge_tombstones(now_ms, 0)
                elif name == "FLUSH":
                    ticket = replica.flush()
                    if ticket is not None:
                        ticket.result(timeout=30)
                else:
                    held = dict(replica.keyspace.items())
                    replica.close(now_ms)
                    replica = Replica.open(tmp, policy, now_ms=now_ms, commands=registry)
                    session = ClientContext(client_id=1, db=replica)
                    assert dict(replica.keyspace.items()) == held
            held = dict(replica.keyspace.items())
            replica.close(now_ms)
            replica = Replica.open(tmp, policy, now_ms=now_ms, commands=registry)
            assert dict(replica.keyspace.items()) == held
        finally:
            replica.close(now_ms)


def test_a_delete_is_not_undone_by_older_delta_rows(tmp_path: Path) -> None:
    """DEL, then a purge of the tombstone: the filter's delta rows must not bring it back."""
    data = tmp_path / "data"
    replica = Replica.open(data, FsyncPolicy.ALWAYS, now_ms=10, commands=_registry())
    session = ClientContext(client_id=1, db=replica)
    _big_bloom(replica, session)
    for i in range(10):
        replica.execute(session, [b"BF.ADD", b"bf", b"item-%d" % i], 20)
        replica.flush()
    assert replica.execute(session, [b"DEL", b"bf"], 30) == 1
    replica.flush()
    replica.close(40)
    replica = Replica.open(data, FsyncPolicy.ALWAYS, now_ms=50, commands=_registry())
    session = ClientContext(client_id=1, db=replica)
    assert replica.execute(session, [b"EXISTS", b"bf"], 50) == 0
    assert replica.purge_tombstones(10_000, 0) == 1
    replica.flush()
    replica.close(10_000)
    with SqliteStore(data) as store:
        assert store.get(b"bf") is None and store.delta_count() == 0
    replica = Replica.open(data, FsyncPolicy.ALWAYS, now_ms=10_000, commands=_registry())
    try:
        assert replica.keyspace.entry(b"bf") is None
    finally:
        replica.close(10_000)


def test_folding_in_the_writer_does_not_block_staging(tmp_path: Path) -> None:
    """While the writer folds a big key, stage() still returns (it only appends)."""
    release = threading.Event()
    entered = threading.Event()

    def slow_fold(base: bytes | None, deltas: list[bytes]) -> bytes:
        entered.set()
        release.wait(10)
        return union_fold(base, deltas)

    writer = GroupCommit.open(tmp_path / "data", FsyncPolicy.EVERYSEC, fold=slow_fold)
    try:
        writer.stage_delta(b"k", b"a")  # no whole row: due at once
        assert entered.wait(10)
        for i in range(100):
            writer.stage(b"other-%d" % i, b"v")
        release.set()
        writer.flush()
        assert loaded_union(writer.store)[b"k"] == b"a"
    finally:
        release.set()
        writer.close()


def test_a_hot_big_keys_deltas_are_joined_again_only_once_they_weigh_the_last_join() -> None:
    """A big key's writes raising the same cells again and again (a hot count-min): its
    deltas are joined, the join kept under the budget, and joined again only once what came
    since weighs as much as the last join (each join re-reads it) or twice the budget is
    held: few joins, never more than twice the budget held, and the join at the flush is
    every delta's."""
    from hearsay.engine.deltas import PendingDeltas
    from hearsay.lattice.entry import Schema
    from hearsay.lattice.vector import MaxVector

    schema = Schema("vector", (), 1 << 20, True).intern()
    budget = 64 * 1024
    pending = PendingDeltas(budget, rejoin=True)
    written: list[Entry] = []
    joins = 0
    for i in range(20_000):
        cells = [(i * 7 + row * 4099) % 9000 * 113 for row in range(7)]  # 9,000, sparse
        pairs = {cell: i + 1 for cell in cells}
        delta = Entry(0, schema, (0, 0), {"n1": MaxVector.from_items(pairs.items())})
        written.append(delta)
        before = len(pending.deltas)
        assert pending.add(delta), f"write {i}: staged whole, though its join stays small"
        joins += len(pending.deltas) < before + 1
        assert pending.held_bytes <= 2 * budget + 1024
    assert joins <= 60, (
        f"{joins} joins for 20,000 writes (40 measured; 171 joining at every overflow)"
    )
    assert pending.joined() == join_deltas(written)
