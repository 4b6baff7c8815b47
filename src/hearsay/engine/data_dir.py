"""Opening a data directory: its entries loaded (damaged ones quarantined), and a database
that lost its data said so at start.

Why apart from :class:`~hearsay.engine.replica.Replica`: this runs once, at start, against
the SQLite store directly (before the group committer's writer thread owns it); the replica
holds the state that lives on afterwards.
"""

from __future__ import annotations

import logging
from typing import Final

from hearsay.base.errors import HearsayError, StorageError
from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import Entry
from hearsay.lattice.join import join_deltas
from hearsay.lattice.keyspace import Keyspace
from hearsay.persist.identity import NodeIdentity
from hearsay.persist.sidecar import Sidecar
from hearsay.persist.store import DeltaRow, SqliteStore
from hearsay.sketch.views import view_for

log = logging.getLogger(__name__)

_DAMAGED_LOGGED_MAX: Final = 20


def _decoded(blob: bytes) -> Entry:
    """A stored entry or delta, refused (HearsayError) unless this node understands it."""
    entry = decode_entry(blob)
    if entry.schema is not None:
        view_for(entry.schema)  # a kind and parameters this node understands
    return entry


def fold_entry_blobs(base: bytes | None, deltas: list[bytes]) -> bytes:
    """The store's fold (:meth:`SqliteStore.fold`): a whole entry and its delta rows joined
    into one whole entry (raises HearsayError on a damaged row, which stays for the load)."""
    entry = Entry() if base is None else _decoded(base)
    entry.merge(join_deltas([_decoded(blob) for blob in deltas]))
    return encode_entry(entry)


def load_entries(
    store: SqliteStore, keyspace: Keyspace, now_ms: int
) -> tuple[int, int, list[bytes]]:
    """Merge every stored entry, then every delta row in order, into ``keyspace``:
    ``(loaded keys, damaged rows, keys below the flush floor)`` (a damaged row means the node
    lost some of its own writes: it must take a fresh write origin; the keys below the floor
    were flushed while their rows were still stored: the caller deletes them).

    Rows that fail their checksum or do not decode to a valid entry are moved to the store's
    quarantine table (``now_ms`` stamps them there), never loaded; so are the delta rows of a
    key whose whole entry was damaged (alone they would be a partial, older state of it).
    """
    damaged: list[tuple[bytes, bytes, int | None, str]] = []

    def corrupt(key: bytes, blob: bytes, checksum: int | None, reason: str) -> None:
        damaged.append((key, blob, checksum, reason))

    loaded = 0
    below_floor: list[bytes] = []
    for key, blob in store.load(on_corrupt=corrupt):
        try:
            entry = _decoded(blob)
        except HearsayError as error:  # DecodeError, SketchParameterError, BoundsError
            damaged.append((key, blob, None, f"invalid entry: {error}"))
            continue
        if entry.epoch < keyspace.floor_ms:
            below_floor.append(key)  # (one loaded before the floor is condemned: swept)
            continue
        keyspace.merge(key, entry)
        loaded += 1
    created, damaged_deltas = _load_deltas(
        store, keyspace, {key for key, _, _, _ in damaged}, now_ms, below_floor
    )
    loaded += created
    if not damaged:
        return loaded, damaged_deltas, below_floor
    # Never loaded, so never gossiped: the peers' copies refill these keys.
    for key, _, _, reason in damaged[:_DAMAGED_LOGGED_MAX]:
        log.error("quarantined a damaged stored entry for key %r: %s", key, reason)
    if len(damaged) > _DAMAGED_LOGGED_MAX:
        log.error("... and %d more damaged entries", len(damaged) - _DAMAGED_LOGGED_MAX)
    try:
        store.quarantine(damaged, now_ms)
    except StorageError as error:
        # Still skipped at every load until a refilled copy overwrites the row.
        log.error("could not move damaged entries to the quarantine table: %s", error)
    return loaded, len(damaged) + damaged_deltas, below_floor


def check_for_lost_data(store: SqliteStore, sidecar: Sidecar | None) -> str | None:
    """Whether the database is new although the sidecar says this node had one: then say
    so loudly, put the node's identity back (its peers refill it under the same id) and
    return the problem for /health and INFO."""
    if sidecar is None:
        return None
    stored = NodeIdentity.read(store)
    # No commas: INFO clients split values on them.
    if stored is None:
        problem = (
            f"the database {store.path} was empty or missing at start but this node "
            f"{sidecar.node_id} (generation {sidecar.generation}) held {sidecar.entries} "
            f"entries at unix ms {sidecar.written_at_ms}: it starts empty under its old id "
            "and its peers refill what they hold; entries only this node held are lost"
        )
    elif stored.node_id == sidecar.node_id and stored.generation < sidecar.generation:
        problem = (
            f"the database {store.path} is older than this node's last run (generation "
            f"{stored.generation} where node {sidecar.node_id} last ran generation "
            f"{sidecar.generation}; restored from an old copy?): its peers refill what it "
            "missed; writes only this node held since that copy are lost"
        )
    else:
        return None
    try:
        NodeIdentity.restore(store, sidecar.node_id, sidecar.generation, sidecar.node_name)
    except StorageError as error:
        log.error("%s; its identity cannot be restored: %s", problem, error)
        return problem
    log.error("%s", problem)
    return problem


def _load_deltas(
    store: SqliteStore,
    keyspace: Keyspace,
    damaged_keys: set[bytes],
    now_ms: int,
    below_floor: list[bytes],
) -> tuple[int, int]:
    """Merge the delta rows (in ``seq`` order) after the entries; quarantine the damaged ones
    and every later row of their key (the key then holds an older state, as a key whose
    whole entry was quarantined holds none: the node takes a fresh write origin and its peers
    refill it). Returns (keys only delta rows held, rows quarantined); a key with a delta
    below the flush floor is added to ``below_floor``."""
    bad: list[tuple[DeltaRow, int | None, str]] = []

    def corrupt(row: DeltaRow, checksum: int | None, reason: str) -> None:
        bad.append((row, checksum, reason))
        damaged_keys.add(row.key)

    created = 0
    for row in store.load_deltas(on_corrupt=corrupt):
        if row.key in damaged_keys:
            bad.append((row, None, "delta of a damaged entry"))
            continue
        try:
            delta = _decoded(row.blob)
        except HearsayError as error:
            bad.append((row, None, f"invalid delta: {error}"))
            damaged_keys.add(row.key)
            continue
        if delta.epoch < keyspace.floor_ms:
            below_floor.append(row.key)
            continue
        created += keyspace.entry(row.key) is None
        keyspace.merge(row.key, delta)
    if bad:
        for row, _, reason in bad[:_DAMAGED_LOGGED_MAX]:
            log.error("quarantined a damaged stored delta for key %r: %s", row.key, reason)
        try:
            store.quarantine_deltas(bad, now_ms)
        except StorageError as error:
            log.error("could not move damaged deltas to the quarantine table: %s", error)
    return created, len(bad)
