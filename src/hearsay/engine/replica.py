"""One node's replica: its keyspace, the gossip node that replicates it, its durable copy.

A :class:`Replica` is the single owner of a node's state: the keyspace, the gossip node
merging peers' deltas into it, the set of keys changed since the last flush, the storage
handle and the sequence number of the latest local write (for WAIT). It is sans-IO: no
sockets, clocks or threads; ``now_ms`` is an argument of everything that needs the time.
The asyncio runtime (:mod:`hearsay.runtime`) and the simulator drive it the same way:

* clients: :meth:`Replica.execute` (and :meth:`Replica.execute_run` for a pipelined run)
  runs a command through the command table it was given and returns the reply, or an
  :class:`~hearsay.engine.interfaces.AckWait` when the reply waits for peers (WAIT);
* peers: :meth:`receive_datagram`, :meth:`open_stream_hello` / :meth:`receive_stream_steps`,
  :meth:`handle_timer` in; :meth:`datagrams_to_send`, :meth:`next_event` (only what needs
  I/O: stream requests, ack wake-ups, member events), :meth:`get_timer` out;
* storage: :meth:`flush` stages every dirty key once (a hot key written a thousand times
  between two flushes is encoded and written once): a small key's whole entry, a big key's
  deltas since the last flush joined into one (its cost is what changed, not the key's
  size; the store folds them into the whole entry in the background); under
  ``--fsync always`` a reply to a write waits for its ticket.

There is one write funnel: every local write (client commands, rmbd) merges into the
keyspace, marks the key dirty and hands the delta to the gossip node, so it is on its way to
peers before the reply is sent; every replicated change arrives as the node's ``KeyChanged``
and marks its key dirty here. Tombstones are stored too, so that after a restart a late delta
from a deleted epoch still cannot resurrect data.

Why one class rather than a database wrapped by a replica: the keyspace, the dirty set and
the write sequence change together on every write, and a wrapper needed a hook to push each
write's delta up to the gossip node and a sequence number carried back down to WAIT.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy.typing as npt

from hearsay.base.errors import StorageError, WrongTypeError
from hearsay.base.glob import compile_glob
from hearsay.engine.data_dir import check_for_lost_data, fold_entry_blobs, load_entries
from hearsay.engine.deltas import PendingDeltas
from hearsay.engine.interfaces import (
    AckWait,
    CommandTable,
    Session,
    Storage,
    StorageFailure,
    WaitForAcks,
)
from hearsay.engine.retire import Retirer
from hearsay.engine.window_sweep import SliceSweeper
from hearsay.lattice.codec import encode_entry
from hearsay.lattice.entry import Entry, MergeResult, Schema
from hearsay.lattice.keyspace import FLOOR_KEY, Keyspace
from hearsay.lattice.limits import KEY_BYTES_MAX_LIMIT, KeyLimits
from hearsay.lattice.retired import departure_key, newest_retired
from hearsay.lattice.vector import MaxVector
from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import GroupCommit, Ticket
from hearsay.persist.identity import NodeIdentity
from hearsay.persist.sidecar import Sidecar, read_sidecar, write_sidecar
from hearsay.persist.store import SqliteStore
from hearsay.protocol.envelope import Keyring
from hearsay.protocol.events import KeyChanged, NodeEvent
from hearsay.protocol.membership import Address, Membership
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.sketch.views import admit_schema, type_name

if TYPE_CHECKING:
    from random import Random

log = logging.getLogger(__name__)

DELTA_ENTRY_BYTES_MIN: Final = 4 * 1024
"""A key whose payload is at least this big is flushed as its deltas (what grew since the
last flush) while they stay a small share of it (:class:`PendingDeltas`), a smaller one
whole: below it a delta row and its later fold cost about what the whole row costs. So a
2000x5 count-min or a dense HLL among a thousand keys, each written about once a flush, is
no longer rewritten whole at every flush (measured in process, 300 dense 2000x5 sketches:
the flush's share of a CMS.INCRBY went from ~17 to ~11 us, the writer thread's by more)."""
DELTA_REJOIN_BYTES_MIN: Final = 64 * 1024
"""From this size on a hot key's deltas are joined and kept rather than the key staged whole
(a 1M-capacity Bloom filter is never rewritten at every flush); below it, a key whose writes
since the last flush add up to its budget is staged whole, once: encoding a 16 KiB dense HLL
costs about what keeping a hundred single-register deltas does."""
DELTA_SHARE_DIVISOR: Final = 2
"""Deltas are kept while their join is under this fraction of the entry's payload (the same
share at which the store folds delta rows into the whole row)."""
FLOOR_SWEEP_KEYS: Final = 1024
"""Entries below the flush floor dropped per :meth:`Replica.sweep_floor` call (one event-loop
turn): ~1.5 ms for the sweep and ~5 ms to stage the deletes of 1,024 counters (medians in
process, 200,000 keys, shared machine). SQLite's deletes (~70 us a row, random keys each on
its own B-tree page) run on the writer thread and bound the rate: ~14 s for 200,000 keys."""
SCAN_COUNT_DEFAULT: Final = 10
SCAN_WORK_MAX: Final = 10_000
"""SCAN examines at most about this many keys per call, whatever its COUNT (whole buckets:
a bucket is never split), so one call holds the event loop for milliseconds, not for the
whole keyspace; a client asking for more simply gets a cursor to continue from."""


@dataclass(slots=True)
class ReplicaStats:
    """Counters for INFO and /metrics."""

    local_writes: int = 0
    replicated_changes: int = 0
    schema_conflicts: int = 0
    expired_keys: int = 0
    tombstones_purged: int = 0
    flushed_keys: int = 0  # entries dropped by the flush floor's sweep (FLUSHALL)
    corrupt_entries_skipped: int = 0  # found at load and quarantined (never loaded)
    loaded_entries: int = 0
    flushes: int = 0
    entries_flushed: int = 0  # keys staged, whole or as deltas (bench/dispatch.py reports it)
    deltas_flushed: int = 0  # of those, keys staged as their deltas


class Replica:
    """One node's keyspace, made durable and replicated by its gossip node."""

    def __init__(
        self,
        identity: NodeIdentity,
        keyspace: Keyspace | None = None,
        storage: Storage | None = None,
        key_bytes_max: int | None = KEY_BYTES_MAX_LIMIT,
        commands: CommandTable[Any] | None = None,
    ) -> None:
        self.identity = identity
        self.keyspace = keyspace if keyspace is not None else Keyspace()
        self.windows = SliceSweeper(self.keyspace)
        """When windowed keys lose their next time slice (the expiry sweep drops them)."""
        self.retirer = Retirer(self.keyspace)
        """Folds departed nodes' slices into retired slices (see :mod:`.retire`)."""
        self._forgotten_warned = False  # this node learned its own departure (logged once)
        self.limit_keys(key_bytes_max)
        self.storage = storage
        self.commands = commands
        """The command table :meth:`execute` runs (None: a replica driven by its methods)."""
        self.stats = ReplicaStats()
        self.node: GossipNode | None = None
        """The gossip node replicating the keyspace, once :meth:`attach_gossip` made it."""
        self.membership: Membership | None = None
        """The node's membership (handed in with the gossip node; the runtime's cluster
        commands read and tag it)."""
        self._write_seq = 0  # the gossip sequence number of the latest local write (WAIT)
        self._events: deque[NodeEvent] = deque()  # the node's events that need the driver
        # Keys changed since the last flush -> None (stage the whole entry) or the deltas that
        # grew it since (a big key: stage their join).
        self._dirty: dict[bytes, PendingDeltas | None] = {}
        self._local_since_flush = False  # a client write since the last flush (``always``)
        self.data_dir: str | None = None  # where the sidecar lives (None: no durable storage)
        self.data_loss: str | None = None
        """Set at open when the database was empty or missing but the sidecar says this node
        held data: shown in /health and INFO until the next start."""

    def limit_keys(self, key_bytes_max: int | None) -> None:
        """Cap every key at ``key_bytes_max`` bytes and refuse out-of-bounds sketch shapes, on
        local writes and replicated deltas alike (None: no caps, e.g. while loading)."""
        self.keyspace.limits = (
            None if key_bytes_max is None else KeyLimits(key_bytes_max, admit_schema)
        )

    @property
    def identity(self) -> NodeIdentity:
        return self._identity

    @identity.setter
    def identity(self, identity: NodeIdentity) -> None:
        self._identity = identity
        self.origin = identity.origin
        """This node's slice name in additive sketches: its node id, or a fresh name after a
        stop that was not clean (see :mod:`hearsay.persist.identity`). An attribute, set
        with the identity: every write into its own slice asks for it, several times."""

    # -- opening and closing ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        fsync: FsyncPolicy = FsyncPolicy.EVERYSEC,
        node_name: str | None = None,
        now_ms: int = 0,
        key_bytes_max: int = KEY_BYTES_MAX_LIMIT,
        *,
        commands: CommandTable[Any] | None = None,
    ) -> Replica:
        """Open (or create) the data directory, start a new generation, load every entry.

        Stored entries that fail their checksum or do not decode to a valid entry are moved
        to the store's quarantine table, not loaded (``now_ms`` stamps them there). What is
        on disk was accepted before and loads whatever the caps are now (a lowered
        ``key_bytes_max`` only refuses growing such a key further).
        """
        store = SqliteStore(data_dir, synchronous=fsync.sqlite_synchronous)
        try:
            data_loss = check_for_lost_data(store, read_sidecar(data_dir))
            identity = NodeIdentity.load_or_create(store, node_name=node_name)
            replica = cls(identity, key_bytes_max=None, commands=commands)
            replica.data_dir = os.fspath(data_dir)
            replica.data_loss = data_loss
            loaded, damaged, below_floor = load_entries(store, replica.keyspace, now_ms)
            replica.stats.loaded_entries += loaded
            replica.stats.corrupt_entries_skipped += damaged
            replica.limit_keys(key_bytes_max)
            if damaged:
                replica.identity = identity.with_fresh_origin(store)
            # The writer thread owns the store from here.
            replica.storage = GroupCommit(store, fsync, fold=fold_entry_blobs)
            for key in below_floor:  # flushed before the last stop: their rows go now
                replica._mark_dirty(key)
        except BaseException:
            store.close()
            raise
        replica.write_sidecar(now_ms)
        return replica

    def write_sidecar(self, now_ms: int) -> bool:
        """Record in the sidecar who this node is and how many entries it holds (at start,
        periodically, at a clean shutdown); False when the disk refused."""
        if self.data_dir is None:
            return False
        identity = self.identity
        sidecar = Sidecar(
            node_id=identity.node_id,
            generation=identity.generation,
            entries=self.keyspace.stored_count,
            written_at_ms=now_ms,
            node_name=identity.node_name,
        )
        return write_sidecar(self.data_dir, sidecar)

    def close(self, now_ms: int = 0) -> None:
        """Flush everything and close the store (the node's data stays on disk).

        Raises :class:`StorageError` naming how many keys could not be saved when the store
        is still failing (after one last attempt).
        """
        storage = self.storage
        if storage is None:
            return
        self.storage = None
        try:
            self._stage_dirty(storage)
        finally:
            storage.close(final_meta=NodeIdentity.clean_stop_meta())
        self.write_sidecar(now_ms)

    # -- durability ------------------------------------------------------------------------------

    @property
    def storage_failure(self) -> StorageFailure | None:
        """Why the data directory cannot be written right now (None while it can).

        While this is set, client writes are refused before they are applied (the RESP
        layer's MISCONF check); replicated changes are still applied and kept dirty.
        """
        return None if self.storage is None else self.storage.failure

    @property
    def unsynced_writes(self) -> int:
        """Changed keys not yet staged plus staged writes not yet synced (INFO)."""
        storage = self.storage
        return 0 if storage is None else len(self._dirty) + storage.unsynced_writes

    @property
    def dirty_keys(self) -> int:
        """Keys changed since the last :meth:`flush` (not staged yet)."""
        return len(self._dirty)

    def _mark_dirty(self, key: bytes) -> None:
        """Note that ``key`` changed (expired, purged, replaced) and its whole entry must reach
        the disk."""
        if self.storage is not None:
            self._dirty[key] = None

    def _mark_grown(self, key: bytes, result: MergeResult) -> None:
        """Note that ``key`` grew by ``result.delta``: a big key keeps the delta for
        :meth:`flush` while the deltas are a small share of it, anything else (a small key, a
        replaced one, deltas adding up to most of the key) is staged whole."""
        dirty = self._dirty
        pending = dirty.get(key, ())
        if pending is None or self.storage is None:
            return  # already staged whole at the next flush (or no storage)
        delta = result.delta
        if delta is None or result.replaced or result.conflict:
            dirty[key] = None
        elif pending:
            if not pending.add(delta):
                dirty[key] = None
        else:
            dirty[key] = self._pending_deltas(key, delta)

    def _pending_deltas(self, key: bytes, delta: Entry) -> PendingDeltas | None:
        """A key's first delta since the last flush: kept if the key is big enough for its
        deltas to pay and the delta is a small share of it (None: stage it whole)."""
        if not isinstance(self.storage, GroupCommit):
            return None  # (the simulator's store takes whole entries)
        entry = self.keyspace.entry(key)
        if entry is None:
            return None
        entry_bytes = entry.payload_bytes()
        if entry_bytes < DELTA_ENTRY_BYTES_MIN:
            return None
        pending = PendingDeltas(
            entry_bytes // DELTA_SHARE_DIVISOR, rejoin=entry_bytes >= DELTA_REJOIN_BYTES_MIN
        )
        return pending if pending.add(delta) else None

    def flush(self) -> Ticket | None:
        """Stage every dirty key's entry; the ticket completes when the policy's durability holds.

        With ``--fsync always`` a reply to a write must wait for the returned ticket. While
        the store is failing nothing is staged (the keys stay dirty, in memory, until it
        recovers); a client write made since the last flush then gets a failed ticket.
        """
        storage = self.storage
        local, self._local_since_flush = self._local_since_flush, False
        if storage is None or not self._dirty:
            return None
        failure = storage.failure
        if failure is not None:
            if not local:
                return None
            failed: Ticket = Future()
            failed.set_exception(StorageError(failure.cause))
            return failed
        return self._stage_dirty(storage)

    def _stage_dirty(self, storage: Storage) -> Ticket | None:
        dirty, self._dirty = self._dirty, {}
        if not isinstance(storage, GroupCommit):  # (the simulator's store: whole entries)
            ticket: Future[None] | None = None
            for key in dirty:
                entry = self.keyspace.entry(key)
                ticket = storage.stage(key, None if entry is None else encode_entry(entry))
            self._count_flush(len(dirty), 0)
            return ticket
        writes: list[tuple[bytes, bytes | None, bool]] = []
        as_deltas = 0
        for key, pending in dirty.items():
            entry = self.keyspace.entry(key)
            if entry is None:
                writes.append((key, None, False))
                continue
            if pending:
                joined = pending.joined()
                # A delta nearly as big as the entry costs a fold for nothing: write it whole.
                if DELTA_SHARE_DIVISOR * joined.payload_bytes() < entry.payload_bytes():
                    writes.append((key, encode_entry(joined), True))
                    as_deltas += 1
                    continue
            writes.append((key, encode_entry(entry), False))
        try:
            ticket = storage.stage_batch(writes)
        except BaseException:  # nothing was staged: the keys are still dirty
            dirty.update(dict.fromkeys(self._dirty))  # (changed again meanwhile: whole)
            self._dirty = dirty
            raise
        self._count_flush(len(dirty), as_deltas)
        return ticket

    def _count_flush(self, keys: int, as_deltas: int) -> None:
        self.stats.flushes += 1
        self.stats.entries_flushed += keys
        self.stats.deltas_flushed += as_deltas

    @property
    def acknowledges_durable(self) -> bool:
        """``--fsync always``: a write's reply must wait until :meth:`flush`'s ticket is done.

        Under the other policies replies never wait, so the runtime flushes on a timer: a hot
        key written many times between two flushes is encoded and written once.
        """
        return self.storage is not None and self.storage.policy is FsyncPolicy.ALWAYS

    # -- the write funnel ------------------------------------------------------------------------

    def write(
        self, key: bytes, schema: Schema, slices: dict[str, MaxVector], now_ms: int
    ) -> MergeResult:
        """A client's write: merge, mark dirty, push the delta to gossip."""
        return self._after_local(key, self.keyspace.write(key, schema, slices, now_ms), now_ms)

    def write_own(self, key: bytes, schema: Schema, vector: MaxVector, now_ms: int) -> MergeResult:
        """Write into this node's own slice (additive schemas) or the shared one (others)."""
        origin = self.origin if schema.additive else ""
        return self.write(key, schema, {origin: vector}, now_ms)

    def write_pairs_own(
        self,
        key: bytes,
        schema: Schema,
        indices: npt.ArrayLike,
        values: npt.ArrayLike,
        now_ms: int,
    ) -> MergeResult:
        """Raw ``(indices, values)`` pairs into this node's slice: the sketches' bulk path."""
        origin = self.origin if schema.additive else ""
        result = self.keyspace.write_pairs(key, schema, origin, indices, values, now_ms=now_ms)
        return self._after_local(key, result, now_ms)

    def write_pairs_to(
        self,
        key: bytes,
        schema: Schema,
        origin: str,
        pairs: tuple[npt.ArrayLike, npt.ArrayLike],
        now_ms: int,
    ) -> MergeResult:
        """Raw pairs into the slice named ``origin`` (a windowed key's time slice)."""
        indices, values = pairs
        result = self.keyspace.write_pairs(key, schema, origin, indices, values, now_ms=now_ms)
        return self._after_local(key, result, now_ms)

    def holds_pairs_own(
        self, key: bytes, schema: Schema, indices: list[int], values: list[int], now_ms: int
    ) -> bool:
        """Whether :meth:`write_pairs_own` of these pairs would change nothing.

        True when the live ``key`` holds ``schema`` and this node's slice already has every
        pair at least as high. A read, so a write that mostly repeats (PFADD of members already
        counted) skips building a delta only to find it empty.
        """
        entry = self.keyspace.get(key, now_ms)
        if entry is None or (entry.schema is not schema and entry.schema != schema):
            return False
        vector = entry.slice(self.origin if schema.additive else "")
        get = vector.get
        if len(indices) == 1:  # one member, the commonest PFADD: no generator
            return bool(get(indices[0]) >= values[0])
        return all(get(index) >= value for index, value in zip(indices, values, strict=True))

    def _after_local(self, key: bytes, result: MergeResult, now_ms: int) -> MergeResult:
        """The one funnel after every local change: count it, mark it dirty, gossip it."""
        delta = result.delta
        if delta is not None:
            self.stats.local_writes += 1
            self._local_since_flush = True
            self._mark_grown(key, result)
            if self.node is not None:
                self._write_seq = self.node.local_delta(key, delta, now_ms)
        return result

    def _replicated_change(self, key: bytes, result: MergeResult) -> None:
        """A peer's delta changed ``key`` in our keyspace: persist the key."""
        self.stats.replicated_changes += 1
        self.stats.schema_conflicts += result.conflict
        if self.keyspace.departures and result.delta and newest_retired(result.delta) is not None:
            self._mark_dirty(key)  # a retired slice may have dropped others: store it whole
            return
        self._mark_grown(key, result)

    def merge_remote(self, key: bytes, delta: Entry) -> MergeResult:
        """Merge a peer's delta without a gossip node (tests and tools that carry deltas)."""
        result = self.keyspace.merge(key, delta)
        if result.changed:
            self._replicated_change(key, result)
        return result

    # -- clients ---------------------------------------------------------------------------------

    def execute(self, session: Session, args: list[bytes], now_ms: int) -> object:
        """Run one client command at ``now_ms``: its reply, or an :class:`AckWait` when the
        reply waits for peers (WAIT). It never raises (the command table turns errors into
        error replies).

        Under ``--fsync always`` a reply to a write must also wait for :meth:`flush`'s ticket:
        the driver flushes once after a batch of commands, so one ticket covers them all.
        """
        commands = self.commands
        assert commands is not None, "execute needs the command table given at construction"
        session.now_ms = now_ms
        before = self._write_seq
        reply = commands.dispatch(session, args)
        if self._write_seq != before:
            session.last_write_seq = self._write_seq
        if type(reply) is WaitForAcks:
            return self._wait_for_acks(session.last_write_seq, reply, now_ms)
        return reply

    def execute_run(self, session: Session, run: list[list[bytes]], now_ms: int) -> list[object]:
        """Run a run of calls of one command on one key at once, or a batch of one command
        over changing keys (the command table's ``run_at`` and ``calls_at`` find them): their
        replies, exactly as :meth:`execute` one by one."""
        commands = self.commands
        assert commands is not None, "execute needs the command table given at construction"
        session.now_ms = now_ms
        before = self._write_seq
        replies = list(commands.dispatch_run(session, run))
        if self._write_seq != before:
            session.last_write_seq = self._write_seq
        return replies

    def _wait_for_acks(self, seq: int, wait: WaitForAcks, now_ms: int) -> int | AckWait:
        """WAIT: the ack count now when it suffices (or nothing can be waited for), else what
        the driver waits for."""
        node = self.node
        if node is None or seq <= 0:
            return 0
        if wait.peers == 0:
            return node.acks(seq)
        held = node.request_acks(seq, wait.peers, now_ms)
        if held >= wait.peers:
            return held
        deadline_ms = None if wait.timeout_ms == 0 else now_ms + wait.timeout_ms
        return AckWait(seq, wait.peers, deadline_ms)

    @property
    def last_write_seq(self) -> int:
        """The gossip sequence number of the latest local write (0: none yet)."""
        return self._write_seq

    def acks(self, seq: int) -> int:
        """How many peers hold local write ``seq`` (an :class:`AckWait`'s final reply)."""
        return 0 if self.node is None or seq <= 0 else self.node.acks(seq)

    # -- gossip ----------------------------------------------------------------------------------

    def attach_gossip(
        self,
        address: Address,
        *,
        config: NodeConfig,
        cluster: str,
        keyring: Keyring | None,
        membership: Membership | None,
        rng: Random,
        nonce_source: Callable[[int], bytes],
        now_ms: int,
    ) -> GossipNode:
        """Make the gossip node that replicates this keyspace (once, before any traffic).

        Without ``membership`` the node gossips with a static peer list (``node.add_peer``):
        the simulator's ``--no-membership`` diagnostic; a real node always has membership.
        """
        assert self.node is None, "a replica has one gossip node"
        self.membership = membership
        self.node = GossipNode(
            address,
            rng=rng,
            keyspace=self.keyspace,
            config=config,
            cluster=cluster,
            keyring=keyring,
            nonce_source=nonce_source,
            membership=membership,
            now_ms=now_ms,
        )
        return self.node

    def _gossip(self) -> GossipNode:
        node = self.node
        assert node is not None, "attach_gossip first"
        return node

    def receive_datagram(self, data: bytes, source: Address, now_ms: int) -> None:
        self._gossip().receive_datagram(data, source, now_ms)
        self._take_events()

    def open_stream_hello(
        self, hello: bytes, source: Address, now_ms: int
    ) -> tuple[int, int] | None:
        """Authenticate a stream's hello: its ``(port, length)``, or None (dropped)."""
        opened = self._gossip().open_stream_hello(hello, source, now_ms)
        self._take_events()
        return opened

    def receive_stream_steps(self, data: bytes, source: Address, now_ms: int) -> Iterator[None]:
        """A stream's body, in steps the driver may interleave with other work."""
        for _ in self._gossip().receive_stream_steps(data, source, now_ms):
            self._take_events()
            yield
        self._take_events()

    def stream_failed(self, stream_id: int) -> None:
        self._gossip().stream_failed(stream_id)

    def handle_timer(self, now_ms: int) -> None:
        self._gossip().handle_timer(now_ms)
        self._take_events()

    def get_timer(self) -> int | None:
        """When :meth:`handle_timer` is due next (None: no gossip node)."""
        return None if self.node is None else self.node.get_timer()

    def join(self, seeds: list[Address], now_ms: int) -> None:
        self._gossip().join(seeds, now_ms)
        self._take_events()

    def leave(self, now_ms: int) -> None:
        self._gossip().leave(now_ms)
        self._take_events()

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        return [] if self.node is None else self.node.datagrams_to_send()

    def has_output(self) -> bool:
        """Whether the driver has anything to drain (datagrams or events)."""
        return bool(self._events) or (self.node is not None and self.node.has_output())

    def next_event(self) -> NodeEvent | None:
        """The next event that needs the driver (stream requests, ack wake-ups, drops and
        member events); key changes never leave the replica."""
        self._take_events()
        return self._events.popleft() if self._events else None

    def _take_events(self) -> None:
        """Drain the node's events: a changed key is marked dirty here, the rest wait for
        the driver."""
        node = self.node
        if node is None:
            return
        dirty = self._dirty
        stats = self.stats
        for event in node.take_events():  # (bounded by the node's queue)
            if type(event) is KeyChanged:
                if dirty.get(event.key, ()) is None and not self.keyspace.departures:
                    # Staged whole already (a small key changed again since the last flush):
                    # only counted (_replicated_change's outcome, without its result built).
                    stats.replicated_changes += 1
                    stats.schema_conflicts += event.conflict
                    continue
                # What grew, as the keyspace reported it (a conflict is staged whole).
                self._replicated_change(
                    event.key, MergeResult(event.delta, conflict=event.conflict)
                )
            else:
                self._events.append(event)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, key: bytes, now_ms: int) -> Entry | None:
        """The live entry of ``key`` (None when absent, deleted or expired)."""
        return self.keyspace.get(key, now_ms)

    def get_typed(self, key: bytes, kind: str, now_ms: int) -> Entry | None:
        """The live entry of ``key`` if it holds ``kind``; WrongTypeError if it holds another."""
        entry = self.keyspace.get(key, now_ms)
        if entry is not None and entry.schema is not None and entry.schema.kind != kind:
            raise WrongTypeError(f"key holds {entry.schema.kind}, not {kind}")
        return entry

    # -- key commands ----------------------------------------------------------------------------

    def delete(self, keys: list[bytes], now_ms: int) -> int:
        """DEL/UNLINK: how many of ``keys`` existed."""
        removed = 0
        for key in keys:
            result = self._after_local(key, self.keyspace.delete(key, now_ms), now_ms)
            removed += result.changed
        return removed

    def exists(self, keys: list[bytes], now_ms: int) -> int:
        """EXISTS: counts repeated keys again, as Redis does."""
        return sum(self.keyspace.get(key, now_ms) is not None for key in keys)

    def memory_usage(self, key: bytes, now_ms: int) -> int | None:
        """MEMORY USAGE: bytes the key's name and entry occupy in memory; None when absent."""
        entry = self.keyspace.get(key, now_ms)
        if entry is None or entry.schema is None:
            return None
        return sys.getsizeof(key) + entry.memory_bytes()

    def type_of(self, key: bytes, now_ms: int) -> str:
        entry = self.keyspace.get(key, now_ms)
        if entry is None or entry.schema is None:
            return "none"
        return type_name(entry.schema)

    def expire_at(self, key: bytes, deadline_ms: int, now_ms: int) -> bool:
        """PEXPIREAT (deadline > 0) or PERSIST (deadline 0): whether the key was changed.

        For PERSIST, Redis answers 0 when the key has no expiry; so do we.
        """
        entry = self.keyspace.get(key, now_ms)
        if entry is None:
            return False
        if deadline_ms == 0 and entry.deadline_ms == 0:
            return False
        result = self._after_local(key, self.keyspace.set_expiry(key, deadline_ms, now_ms), now_ms)
        return result.changed or entry.deadline_ms == deadline_ms

    def ttl_ms(self, key: bytes, now_ms: int) -> int:
        """PTTL: -2 when absent, -1 when persistent, else the milliseconds left."""
        entry = self.keyspace.get(key, now_ms)
        if entry is None:
            return -2
        if entry.deadline_ms == 0:
            return -1
        return max(0, entry.deadline_ms - now_ms)

    def expire_due(self, now_ms: int) -> int:
        """Sweep keys whose deadline passed into tombstones, and windowed keys' dead time
        slices out of their keys; returns how many keys expired."""
        for key in self.windows.sweep(now_ms):
            self._mark_dirty(key)
        expired = self.keyspace.expire_due(now_ms)
        for key, _ in expired:
            self._mark_dirty(key)
        self.stats.expired_keys += len(expired)
        return len(expired)

    def purge_tombstones(self, now_ms: int, grace_ms: int) -> int:
        """Drop tombstones (deleted and expired keys) older than ``grace_ms``, from memory and
        disk; returns how many. See :meth:`Keyspace.purge_tombstones` for the grace rule."""
        purged = self.keyspace.purge_tombstones(now_ms - grace_ms)
        for key in purged:
            self._mark_dirty(key)
        self.stats.tombstones_purged += len(purged)
        return len(purged)

    def flush_all(self, now_ms: int) -> MergeResult:
        """FLUSHALL/FLUSHDB: raise the flush floor above every entry held here, in one step.

        The floor (see :mod:`hearsay.lattice.keyspace`) is at least ``now_ms`` and above the
        highest epoch this node has seen, so every key it holds is gone at once; it leaves
        as one small write (gossiped, stored), and every node that learns it drops the keys
        below it too. The memory and the stored rows are reclaimed by :meth:`sweep_floor`.
        """
        floor_ms = max(now_ms, self.keyspace.epoch_max + 1)
        result = self.keyspace.merge(FLOOR_KEY, Entry(floor_ms))
        return self._after_local(FLOOR_KEY, result, now_ms)

    def forget(self, node_id: str, departed_ms: int, now_ms: int) -> bool:
        """HEARSAY.FORGET: record (replicated) that ``node_id`` departed for good at
        ``departed_ms``; False when its departure was known already (its time is kept)."""
        if self.keyspace.departures.time_of(node_id) is not None:
            return False
        result = self.keyspace.merge(departure_key(node_id), Entry(departed_ms))
        return self._after_local(departure_key(node_id), result, now_ms).changed

    def retire_step(self, now_ms: int, grace_ms: int) -> int:
        """Fold departed nodes' slices (those departed more than ``grace_ms`` ago) into
        retired slices in a bounded number of keys; returns how many keys changed."""
        departures = self.keyspace.departures
        if not self._forgotten_warned and departures.time_of(self.identity.node_id) is not None:
            self._forgotten_warned = True
            log.error(
                "this node (id %s) was forgotten (HEARSAY.FORGET): every node refuses its "
                "writes to count-min, counter, cuckoo and t-digest keys once the retire grace has "
                "passed; start it with an empty --data-dir (a new id)",
                self.identity.node_id,
            )
        changed = self.retirer.step(now_ms, grace_ms)
        for key, result in changed:
            self._after_local(key, result, now_ms)
            self._mark_dirty(key)  # slices went: store the key whole
        return len(changed)

    @property
    def sweep_pending(self) -> bool:
        """Whether :meth:`sweep_floor` has entries below the flush floor left to drop."""
        return self.keyspace.sweep_pending > 0

    @property
    def storage_lag_s(self) -> float:
        """Age of the oldest staged write the store's writer has not committed (0.0: none;
        always 0.0 for a store other than the group committer). Background work such as
        :meth:`sweep_floor` waits while it grows, so ``stage`` never blocks the event loop for
        room (the group committer blocks stagers past 0.25 s)."""
        storage = self.storage
        return storage.lag_s if isinstance(storage, GroupCommit) else 0.0

    def sweep_floor(self, limit: int = FLOOR_SWEEP_KEYS) -> int:
        """Drop up to ``limit`` entries below the flush floor from memory and (through the
        next :meth:`flush`) from disk; returns how many. Bounded, for one event-loop turn."""
        dropped = self.keyspace.sweep_floor(limit)
        for key in dropped:
            self._mark_dirty(key)
        self.stats.flushed_keys += len(dropped)
        return len(dropped)

    def _live_keys(self, now_ms: int) -> Iterator[bytes]:
        for key, entry in self.keyspace.items():
            if entry.schema is not None and not (entry.deadline_ms and entry.deadline_ms <= now_ms):
                yield key

    def dbsize(self, now_ms: int) -> int:
        return sum(1 for _ in self._live_keys(now_ms))

    def keys(self, pattern: bytes, now_ms: int) -> list[bytes]:
        """KEYS: Redis's glob rules (``*``, ``?``, ``[...]``, ``\\``; see :mod:`hearsay.base.glob`).

        O(keys) like Redis's (each key in O(len(pattern) * len(key)), never exponential);
        SCAN is the way to walk a big keyspace without holding the node.
        """
        if pattern == b"*":  # Redis's allkeys: the lone star also matches the empty key
            return list(self._live_keys(now_ms))
        glob = compile_glob(pattern)
        return [key for key in self._live_keys(now_ms) if glob.match(key)]

    def scan(
        self,
        cursor: int,
        now_ms: int,
        match: bytes | None = None,
        count: int = SCAN_COUNT_DEFAULT,
        type_filter: str | None = None,
    ) -> tuple[int, list[bytes]]:
        """SCAN over buckets: the cursor is the next bucket number (0 when done).

        Like Redis's SCAN, a key present for the whole scan is returned at least once, and a
        bucket is never split between two calls. ``count`` is how many keys to *examine*
        (Redis counts keys before MATCH and TYPE filter them), capped at
        :data:`SCAN_WORK_MAX`: a pattern that matches nothing costs one call ``count`` keys'
        work, not a walk of the whole keyspace.
        """
        buckets = self.keyspace.bucket_count
        glob = None if match is None or match == b"*" else compile_glob(match)
        work_max = min(count, SCAN_WORK_MAX)
        found: list[bytes] = []
        examined = 0
        bucket = cursor
        while bucket < buckets and examined < work_max:
            items = self.keyspace.bucket_items(bucket)
            examined += len(items)
            for key, entry in items:
                if entry.schema is None or (entry.deadline_ms and entry.deadline_ms <= now_ms):
                    continue
                if glob is not None and not glob.match(key):
                    continue
                if type_filter is not None and type_name(entry.schema) != type_filter:
                    continue
                found.append(key)
            bucket += 1
        return (0 if bucket >= buckets else bucket), found
