"""Acks for WAIT: which peers hold each client write, and the retries that make them hold it.

Why this module exists: WAIT needs to know how many peers hold a write; the origin's cover
retries (a write pushed to every peer is pushed again to those that did not ack within
``cover_retry_ms``) need the same per-peer record. Both tables (the last ``write_track_max``
writes, the ack ids their pushes carry) and both deadlines (ack retries, cover retries) are
owned here.

- Rumours of a local write ask their receivers to ACK (:meth:`Acks.push_asking`);
- :meth:`Acks.request_acks` asks more peers, sending the write's own delta when its record
  kept it (a small write), else the key's current state (it contains the write: the lattice
  only grows), until ``count`` hold it; unanswered asks are repeated every ``ack_retry_ms``;
- acking a later state counts (coalesced writes to one key share one record).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hearsay.lattice.keyspace import Keyspace
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import MessageType
from hearsay.protocol.events import WriteAcked
from hearsay.protocol.gossip.outbox import Outbox
from hearsay.protocol.gossip.peers import Peers
from hearsay.protocol.gossip.shared import NEVER, BoundedTable
from hearsay.protocol.membership import Address

if TYPE_CHECKING:
    import random

__all__ = ["Acks"]

_ACKED: Final = 0
"""A ``_Write.peers`` count: the peer acknowledged the write (a waiting peer counts >= 1)."""
_PATIENCE_WAITS: Final = 4
"""A cover retry put off for a peer working through a backlog (see ``Acks._draining``) is put
off for at most this many retry waits after the write left: a bound on trusting the backlog."""
RETRY_ITEMS_BYTES_MAX: Final = 512
"""The PUSH items a record keeps for its retries, per write they carry, at any time: the
4,096 writes tracked hold at most 2 MB of them. Items past that share (a drain's or a
pipelined run's writes to one key, joined) are kept while :data:`RETRY_ITEMS_BUDGET_BYTES`
allows; else the write is retried with the key's current state."""
RETRY_ITEMS_BUDGET_BYTES: Final = 4 * 1024 * 1024
"""The PUSH items kept past their writes' shares, in all, while their writes are tracked.
Without it, fifty clients' BF.ADDs to one 1M-capacity filter (a run of them, one write of
~350 bits) were retried, and probed for replication lag, with the whole filter: 1.2 MB over
a stream each time, a third of the writer's time and half of each receiver's."""


@dataclass(slots=True)
class _Write:
    """Which peers hold one local write, for WAIT and the origin's cover retries; or the
    writes of one drain to several keys, pushed together to the same peers (see
    :meth:`Acks.share`): a peer holds them all once it acked every push carrying them.

    A node keeps ``write_track_max`` of these and most are never asked about (a lone node; no
    client using WAIT), so the peer table is one dict made by the first push that asks for an
    ack (measured: 64 bytes a record, where an eager empty set and dict made 344, 1.1 MB more
    per node once the table is full). A peer's count is the pushes it was sent that it has not
    acknowledged yet, or ``_ACKED``: an acked peer is never sent the write again (the first
    push leaves before any ack can return; retries skip acked peers), so it stays acked.
    """

    keys: tuple[bytes, ...]
    wanted: int = 0
    acks: int = 0
    peers: dict[Address, int] | None = None
    items: dict[bytes, list[bytes]] | None = None
    """Per key, the PUSH items of the write's own delta (its coalesced writes' too), when at
    most :data:`RETRY_ITEMS_BYTES_MAX`: what a retry sends. For a key without them a retry
    sends the key's current state, which holds the write too but costs the key's size (a
    1.2 MB Bloom filter for a BF.ADD of seven bits, at every retry and every replication-lag
    probe)."""

    def keep(self, key: bytes, items: list[bytes]) -> None:
        """Keep ``key``'s ``items`` for retries (:meth:`Acks._keep` decides)."""
        if self.items is None:
            self.items = {}
        self.items[key] = items

    def kept_items(self, key: bytes) -> list[bytes] | None:
        """``key``'s items kept for retries (None: not kept)."""
        return None if self.items is None else self.items.get(key)

    def waiting(self) -> list[Address]:
        """The peers sent the write that have not acknowledged it, in the order sent."""
        if self.peers is None:
            return []
        return [peer for peer, left in self.peers.items() if left != _ACKED]

    def has_acked(self, peer: Address) -> bool:
        return self.peers is not None and self.peers.get(peer) == _ACKED

    def sent(self, peer: Address) -> None:
        """One more push carrying the write went to ``peer``, asking for an ack."""
        if self.peers is None:
            self.peers = {}
        left = self.peers.get(peer)
        if left != _ACKED:
            self.peers[peer] = (left or 0) + 1

    def resend(self, peer: Address) -> None:
        """``peer`` is about to be sent the write again: count only the new pushes."""
        if self.peers is not None and self.peers.get(peer, _ACKED) > _ACKED:
            del self.peers[peer]  # still waiting: its earlier pushes stop counting

    def ack(self, peer: Address) -> bool:
        """``peer`` acknowledged one push; True if it now holds the write for the first time.

        It holds it once every push it was last sent is acknowledged. An ack for an older
        push (sent before a :meth:`resend`) counts at once: the state it carried held the write.
        """
        if self.peers is None:
            self.peers = {}
        left = self.peers.get(peer)
        if left == _ACKED:
            return False
        if left is not None and left > 1:
            self.peers[peer] = left - 1
            return False
        self.peers[peer] = _ACKED
        self.acks += 1
        return True


class Acks:
    """The records of the last client writes, the ack ids in flight, and their retries."""

    def __init__(self, outbox: Outbox, peers: Peers, rng: random.Random) -> None:
        self._outbox = outbox
        self._peers = peers
        self._rng = rng
        self._keyspace: Keyspace = outbox.keyspace
        cfg = outbox.config
        self._writes: dict[int, _Write | bytes] = {}
        """The last ``write_track_max`` local writes by sequence number (consecutive, so the
        oldest is dropped by its number): a record, shared by coalesced writes, or only the
        key until something asks about the write (:meth:`_record`; most writes never are
        asked about, and the record and an ordered table cost ~1 us a write)."""
        self._writes_max = cfg.write_track_max
        self._covering: BoundedTable[int, tuple[int, int, int, int]] = BoundedTable(
            cfg.write_track_max
        )
        """Writes pushed to every peer: sequence number -> (retries left for non-ackers, when
        the next is due, the last ack id issued before its push, when it was pushed)."""
        self._cover_due: list[tuple[int, int]] = []
        """``(when due, sequence number)`` of every cover retry put in ``_covering``, a heap:
        a round takes only the due ones. Scanning the table for them cost a loaded origin
        ~270 us a round over a few thousand writes not due yet (~5 us a write). An entry the
        table replaced or dropped since is skipped when it comes up."""
        self._ack_ids: BoundedTable[int, tuple[tuple[int, ...], Address, int]] = BoundedTable(
            4 * cfg.write_track_max
        )
        """Ack id a push carried -> (the sequence numbers of the writes it carried, the peer
        it went to, when it left)."""
        self._heard: BoundedTable[Address, tuple[int, int]] = BoundedTable(cfg.write_track_max)
        """Peer -> (when its last ACK arrived, the largest ack id it acknowledged): whether a
        push it has not acknowledged was lost or waits in its backlog (``_draining``)."""
        self._ack_rtt_ms: float | None = None
        self._ack_rtt_var_ms = 0.0
        """Smoothed round trip of a push and its ACK, and its mean deviation (as TCP keeps
        them, RFC 6298): a cover retry waits at least that long (see :meth:`cover`)."""
        self._kept_past_share: deque[tuple[int, int]] = deque()
        """``(the last write whose record may hold them, bytes)`` of the items kept past their
        writes' shares, oldest first: released once that write is no longer tracked."""
        self._kept_past_share_bytes = 0
        self._write_seq = 0
        self._ack_seq = 0
        self._ack_retry_ms = NEVER
        self._cover_retry_ms = NEVER

    @property
    def deadline_ms(self) -> int:
        return min(self._ack_retry_ms, self._cover_retry_ms)

    def track(self, key: bytes) -> int:
        """A new client write to ``key``: its sequence number. Only the key is kept until
        something asks about the write or its drain pushes it (:meth:`share`)."""
        self._write_seq += 1
        seq = self._write_seq
        writes = self._writes
        writes[seq] = key
        dropped = seq - self._writes_max
        writes.pop(dropped, None)
        kept = self._kept_past_share
        while kept and kept[0][0] <= dropped:  # (their records are no longer tracked)
            self._kept_past_share_bytes -= kept.popleft()[1]
        return seq

    def _keep(
        self, record: _Write, key: bytes, items: list[bytes], writes: int, last_seq: int
    ) -> None:
        """Keep ``key``'s ``items`` (the joined delta of ``writes`` of its writes) in
        ``record`` for retries, if within the writes' shares or the budget for more
        (``last_seq``: the last write whose record this is, released with it)."""
        size = 0
        for item in items:
            size += len(item)
        if size > RETRY_ITEMS_BYTES_MAX * writes:
            if self._kept_past_share_bytes + size > RETRY_ITEMS_BUDGET_BYTES:
                return  # (retried with the key's state)
            self._kept_past_share_bytes += size
            self._kept_past_share.append((last_seq, size))
        record.keep(key, items)

    def _record(self, seq: int) -> _Write | None:
        """Write ``seq``'s record, made now if only its key was kept (None: not held)."""
        write = self._writes.get(seq)
        if isinstance(write, bytes):
            write = self._writes[seq] = _Write((write,))
        return write

    def remember(self, seq: int, items: list[bytes]) -> None:
        """Keep the PUSH items of write ``seq``'s delta for its retries, if small (the one
        rumour of a drain carries every write coalesced into the record)."""
        write = self._record(seq)
        if write is not None:
            self._keep(write, write.keys[0], items, 1, seq)

    def share(self, drained: Sequence[tuple[Sequence[int], bytes, list[bytes]]]) -> list[list[int]]:
        """``(sequence numbers, key, PUSH items)`` of the writes of one drain, pushed together
        to the same peers: the writes with only their key kept share one record (a write with
        a record of its own, asked about before the drain, keeps it). Returns, for each key,
        the records' sequence numbers its items are pushed with (one per record, so an ACK
        acks each record once; a key carried by two records goes twice, which takes a WAIT
        on a write to it before the drain).

        One record per drain instead of one per write: a loaded origin in a 3-node cluster
        spent ~10% of its time making, sending, acking and covering a record per write (and
        per write and peer: ``origin_fanout`` is 32). A WAIT for one of them waits until its
        peers acked the whole drain, which they ack in the same ACKs. Only keys pushed to the
        same peers may share: a peer counts as holding a record once it acked every push of
        it it was sent."""
        writes = self._writes
        shared = _Write(())
        shared_seq = 0
        last_seq = max(max(seqs) for seqs, _, _ in drained) if drained else 0
        keys: list[bytes] = []
        carrying: list[list[int]] = []
        for seqs, key, items in drained:
            if len(seqs) == 1 and isinstance(held := writes.get(seqs[0]), bytes):
                writes[seqs[0]] = shared  # (the commonest: one write to the key, not asked)
                shared_seq = shared_seq or seqs[0]
                keys.append(key)
                self._keep(shared, key, items, 1, last_seq)
                carrying.append([shared_seq])
                continue
            records: dict[int, tuple[int, _Write]] = {}
            for seq in seqs:
                held = writes.get(seq)
                if isinstance(held, bytes):
                    writes[seq] = held = shared
                    shared_seq = shared_seq or seq
                if held is not None:  # (else forgotten already, in a drain of thousands)
                    records.setdefault(id(held), (shared_seq if held is shared else seq, held))
            for _, record in records.values():
                if record is shared:
                    keys.append(key)
                self._keep(record, key, items, len(seqs), last_seq)
            # (all forgotten: pushed all the same, with an ack nobody counts)
            carrying.append([seq for seq, _ in records.values()] or [seqs[-1]])
        shared.keys = tuple(keys)
        return carrying

    def _retry_items(self, key: bytes, writes: Sequence[_Write]) -> list[bytes] | None:
        """The items of ``key`` of every write in ``writes``, or None when some record kept
        none (then the key's current state is sent: it holds them all)."""
        items: list[bytes] = []
        seen: set[int] = set()
        for write in writes:
            kept = write.kept_items(key)
            if kept is None:
                return None
            if id(write) not in seen:  # (coalesced writes share a record)
                seen.add(id(write))
                items.extend(kept)
        return items

    def _items_or_state(self, key: bytes, kept: list[bytes] | None) -> list[bytes] | None:
        """What a retry of ``key``'s writes sends: their ``kept`` items, else the key's
        current state (it holds them); None when the key is gone (nothing of it to hold)."""
        if kept is not None:
            return kept
        entry = self._keyspace.entry(key)
        return None if entry is None else self._outbox.push_items(key, entry, True)

    def acks(self, seq: int) -> int:
        """How many peers acknowledged holding local write ``seq`` (0 if unknown or forgotten;
        a write nothing asked about yet has no record, and none is made to say 0)."""
        write = self._writes.get(seq)
        return write.acks if isinstance(write, _Write) else 0

    def request_acks(self, seq: int, count: int) -> int:
        """Make sure ``count`` peers hold write ``seq``; the acks held now."""
        write = self._record(seq)
        if write is None:
            return 0
        write.wanted = max(write.wanted, count)
        self._ask_acks(seq, write)
        return write.acks

    def push_asking(
        self, items: list[bytes], peers: Sequence[Address], *, relay: bool | int, seq: int
    ) -> None:
        """PUSH ``items`` to each of ``peers``, asking each to ACK (for write ``seq``)."""
        if not items:
            return
        for peer in peers:
            self.push_asking_many(peer, [(item, seq) for item in items], relay=relay)

    def push_asking_many(
        self,
        peer: Address,
        items: list[tuple[bytes, int]],
        *,
        relay: bool | int,
        also: dict[int, list[int]] | None = None,
    ) -> None:
        """PUSH ``items`` (each with the client write it carries) to ``peer`` in as few
        datagrams as fit, each asking for one ACK that acknowledges every write it carries.

        The writes of one drain leave in one datagram per peer instead of one per key and
        peer: that datagram (and its ACK) was most of a write's cost in a cluster.
        The room left for items is the budget less the prefix with the largest ack id this
        call may use: a datagram filled to the budget without it went over a TCP stream.
        ``also``: more writes an item's write stands for (a key's retried writes, all held in
        the state pushed once), acknowledged with it.
        """
        outbox = self._outbox
        encoded = [item for item, _ in items]
        prefix_max = len(msg.push_prefix(relay, self._ack_seq + len(items)))
        for start, stop in outbox.fit(encoded, outbox.payload_budget - prefix_max - 3):
            # One seq per record (coalesced writes share one), with the record.
            carried: dict[int, tuple[int, _Write | None]] = {}
            last = 0
            for _, first in items[start:stop]:
                if first == last:
                    continue  # (a drain's items carry one record's number in a row)
                last = first
                for seq in (first, *also.get(first, ())) if also else (first,):
                    write = self._record(seq)
                    held = -seq if write is None else id(write)
                    if held not in carried:
                        carried[held] = (seq, write)
            seqs = tuple(seq for seq, _ in carried.values())
            self._ack_seq += 1
            ack_id = self._ack_seq
            self._ack_ids.put(ack_id, (seqs, peer, outbox.now))
            for _, write in carried.values():
                if write is not None:
                    write.sent(peer)
            payload = msg.push_prefix(relay, ack_id) + msg.join_items(b"", encoded[start:stop])
            outbox.send(MessageType.PUSH, payload, [peer])

    def cover(self, seq: int, retries: int) -> None:
        """Write ``seq`` goes to every peer (its pushes take the next ack ids): push it again
        to non-ackers, ``retries`` times."""
        now = self._outbox.now
        self._due(seq, (retries, now + self.cover_wait_ms(), self._ack_seq, now))

    def _due(self, seq: int, cover: tuple[int, int, int, int]) -> None:
        self._covering.put(seq, cover)
        due = self._cover_due
        heapq.heappush(due, (cover[1], seq))
        if len(due) > 2 * self._covering.max_items + 64:  # (mostly dropped or replaced ones)
            due[:] = [(held[1], held_seq) for held_seq, held in self._covering.items()]
            heapq.heapify(due)
        self._cover_retry_ms = min(self._cover_retry_ms, cover[1])

    def _draining(self, peer: Address, before_id: int, wait_ms: int) -> bool:
        """Whether ``peer`` is still working through pushes sent before ack id ``before_id``
        (it acknowledged one within ``wait_ms`` and none sent later): a push it has not
        acknowledged waits in its backlog, not lost, and a retry would only lengthen the
        backlog. A peer that acknowledged a later push lost the earlier one (acks return in
        the order it reads): retried at once, as is one silent for a whole wait.

        Measured (3 nodes on 2 cores, pipelined writes over many keys): receivers answered
        200-900 ms late and 89% of writes were retried, as whole keys, which fed the backlog.
        """
        heard = self._heard.get(peer)
        return heard is not None and heard[1] <= before_id and self._outbox.now - heard[0] < wait_ms

    def cover_wait_ms(self) -> int:
        """How long a cover retry waits: ``cover_retry_ms``, or the acks' measured round trip
        and four deviations (TCP's retransmission timeout) when that is longer. Under load
        acks come back late, and a retry sooner than an ack can return only re-sends what
        the peer is about to acknowledge (profiled: 11% of a loaded origin's time)."""
        floor = self._outbox.config.cover_retry_ms
        if self._ack_rtt_ms is None:
            return floor
        return max(floor, round(self._ack_rtt_ms + 4 * self._ack_rtt_var_ms))

    def _measured(self, rtt_ms: int) -> None:
        rtt = float(max(0, rtt_ms))
        if self._ack_rtt_ms is None:
            self._ack_rtt_ms, self._ack_rtt_var_ms = rtt, rtt / 2
        else:
            self._ack_rtt_var_ms += (abs(self._ack_rtt_ms - rtt) - self._ack_rtt_var_ms) / 4
            self._ack_rtt_ms += (rtt - self._ack_rtt_ms) / 8

    def on_ack(self, payload: bytes, source: Address) -> None:
        for ack_id in msg.decode_ack(payload):
            found = self._ack_ids.get(ack_id)
            if found is None or found[1] != source:
                continue
            del self._ack_ids[ack_id]
            seqs, peer, sent_ms = found
            self._measured(self._outbox.now - sent_ms)
            heard = self._heard.get(peer)
            self._heard.put(peer, (self._outbox.now, max(ack_id, heard[1] if heard else 0)))
            for seq in seqs:
                write = self._record(seq)
                if write is not None and write.ack(peer):
                    self._outbox.emit(WriteAcked(seq, peer, write.acks))

    def handle_timer(self, now_ms: int) -> None:
        if now_ms >= self._ack_retry_ms:
            self._retry_acks()
        if now_ms >= self._cover_retry_ms:
            self._retry_cover()

    def _ask_acks(self, seq: int, write: _Write) -> None:
        need = write.wanted - write.acks
        if need <= 0:
            return
        items: list[bytes] = []
        for key in write.keys:
            items.extend(self._items_or_state(key, write.kept_items(key)) or ())
        if not items:
            return
        peers = self._peers
        targets = [p for p in write.waiting() if p in peers][:need]
        if len(targets) < need:
            skip = set(targets)
            candidates = [p for p in peers if p not in skip and not write.has_acked(p)]
            fresh = need - len(targets)
            targets.extend(self._rng.sample(candidates, min(fresh, len(candidates))))
        for peer in targets:
            write.resend(peer)
        self.push_asking(items, targets, relay=False, seq=seq)
        retry_ms = self._outbox.now + self._outbox.config.ack_retry_ms
        self._ack_retry_ms = min(self._ack_retry_ms, retry_ms)

    def _retry_cover(self) -> None:
        """Push the writes their origin sent to every peer again, to peers that have not
        acknowledged them yet (their current state: it contains the write), all of a round's
        retries to one peer in one PUSH (as many as fit): under load most writes are retried
        at once, and one datagram each fed the overload that delayed their acks."""
        outbox = self._outbox
        covering: list[tuple[int, tuple[int, int, int, int]]] = []
        due = self._cover_due
        while due and due[0][0] <= outbox.now:
            due_ms, seq = heapq.heappop(due)
            cover = self._covering.get(seq)
            if cover is not None and cover[1] == due_ms:  # (else replaced or dropped since)
                covering.append((seq, cover))
                del self._covering[seq]
        self._cover_retry_ms = due[0][0] if due else NEVER
        wait_ms = self.cover_wait_ms()
        retried: list[tuple[int, int, _Write, list[Address]]] = []
        by_key: dict[bytes, list[_Write]] = {}
        for seq, (retries, _due_ms, before_id, sent_ms) in covering:
            write = self._record(seq)
            if write is None:
                continue
            targets = [p for p in write.waiting() if p in self._peers]
            patient = outbox.now - sent_ms < _PATIENCE_WAITS * wait_ms
            if patient and any(self._draining(p, before_id, wait_ms) for p in targets):
                # (one peer still reading its backlog keeps the whole write for later)
                self._due(seq, (retries, outbox.now + wait_ms, before_id, sent_ms))
                continue
            if targets:
                retried.append((seq, retries, write, targets))
                for key in write.keys:
                    by_key.setdefault(key, []).append(write)
        # One key's retried writes share one push per peer, encoded once (a hot key's writes
        # are retried together: encoding a 1.2 MB Bloom filter once per write was most of a
        # loaded origin's time), every write acknowledged by its ACK.
        items_of: dict[bytes, list[bytes]] = {}
        for key, writes in by_key.items():
            items = self._items_or_state(key, self._retry_items(key, writes))
            if items is not None:
                items_of[key] = items
        # peer -> key -> the write its items carry (in order: a seeded run replays alike);
        # the other writes holding the key ride along (``also``).
        sending: dict[Address, dict[bytes, int]] = {}
        also: dict[int, list[int]] = {}
        for seq, _retries, write, targets in retried:
            for peer in targets:
                keyed = sending.setdefault(peer, {})
                for key in write.keys:
                    if key in items_of:
                        first = keyed.setdefault(key, seq)
                        if first != seq:
                            also.setdefault(first, []).append(seq)
        tokens = sum(len(items_of[key]) for keyed in sending.values() for key in keyed)
        if not outbox.bucket.take(outbox.now, tokens):
            return  # overloaded: digests and anti-entropy will cover them
        for seq, retries, write, targets in retried:
            for peer in targets:
                write.resend(peer)
            if retries > 1:
                self.cover(seq, retries - 1)
        for peer, keyed in sending.items():
            pairs = [(item, first) for key, first in keyed.items() for item in items_of[key]]
            self.push_asking_many(peer, pairs, relay=0, also=also)

    def _retry_acks(self) -> None:
        self._ack_retry_ms = NEVER
        asked: set[int] = set()
        for seq, write in list(reversed(self._writes.items())):
            # Coalesced writes share one record: ask once, under the latest sequence number.
            if isinstance(write, bytes):
                continue  # (never asked about: nothing wanted)
            if write.wanted > write.acks and id(write) not in asked:
                asked.add(id(write))
                self._ask_acks(seq, write)
