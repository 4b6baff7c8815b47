"""Rumours: client writes pushed wide, what grew forwarded, replies and pulls on receipt.

Why this module exists: rumours are how most writes reach every replica within a round trip.

- A client write is pushed when the driver drains the node (writes to one key since the last
  drain leave as one rumour) to ``origin_fanout`` random peers, asking them to ACK (acks:
  :mod:`.acks`); when the origin reached every peer it knows, the PUSH says so (its relay field
  is ``covered_relay_fanout``, 0 by default: nobody forwards it) and peers that have not acked
  get it again (cover retries).
- A receiver merges each item; what *grew* is forwarded to ``fanout`` peers (never self or the
  sender), so a rumour dies out by itself once everyone has it. If the receiver holds more at
  indices the sender mentioned, it replies with them; if the key was unknown and the message
  did not carry the sender's full state, it pulls the key (an EXCHANGE with its own state) from
  ``pull_fanout`` peers: the sender and random others.
- Pacing: when the token bucket is empty, deltas wait per key (merging into each other) and
  leave on the next gossip rounds.
- Messages that came over a stream are merged in steps of at most ``STREAM_STEP_ITEMS`` keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol

from hearsay.base.errors import DecodeError, HearsayError
from hearsay.lattice.entry import Entry, MergeResult
from hearsay.lattice.join import join_deltas
from hearsay.lattice.keyspace import Keyspace
from hearsay.protocol import messages as msg
from hearsay.protocol.diff import exceeding
from hearsay.protocol.envelope import MessageType
from hearsay.protocol.gossip.outbox import Outbox
from hearsay.protocol.gossip.peers import Peers
from hearsay.protocol.gossip.shared import is_whole
from hearsay.protocol.membership import Address

__all__ = ["STREAM_STEP_ITEMS", "STREAM_STEP_PAIRS", "Rumours"]

STREAM_STEP_ITEMS: Final = 1_024
"""Keys of one stream merged between two returns to the driver's event loop."""
STREAM_STEP_PAIRS: Final = 1 << 16
"""Pairs of one stream decoded and merged between two returns to the driver's event loop
(~15 ms for a piece of a dense vector; a whole 28.6 MiB one took ~1.1 s in one step)."""


class PushAsking(Protocol):
    """A PUSH to ``peer`` of ``items``, each with the client write it carries, asking ``peer``
    to ACK them."""

    def __call__(
        self, peer: Address, items: list[tuple[bytes, int]], *, relay: bool | int
    ) -> None: ...


@dataclass(slots=True)
class _Push:
    """A push held back until the end of a drain or of a received message (see ``_batched``)."""

    items: list[bytes]
    peers: Sequence[Address]
    relay: bool | int
    ack_write: int


@dataclass(slots=True)
class _Local:
    """Client writes to one key waiting for the next drain (see ``flush_local``)."""

    deltas: list[Entry]
    seqs: list[int]


_PENDING_DELTAS_MAX: Final = 64
"""Deltas a paced rumour keeps before joining them into one (see ``_Pending``)."""


@dataclass(slots=True)
class _Pending:
    """A rumour waiting for pacing tokens: its key's deltas since, joined when it leaves (or
    when ``_PENDING_DELTAS_MAX`` wait). Merging each into the last was half a loaded origin's
    drain when TOPK.ADDs to 1,000 keys ran past the pacing rate (a tracked merge per write);
    the deltas are never changed here, so none is copied."""

    deltas: list[Entry]
    full: bool
    exclude: Address | None

    def joined(self) -> Entry:
        """The rumour's delta (its deltas joined, kept joined)."""
        deltas = self.deltas
        if len(deltas) > 1:
            deltas[:] = [join_deltas(deltas)]
        return deltas[0]


class Rumours:
    """Client writes waiting for the drain, paced rumours, and the PUSH / EXCHANGE handlers."""

    def __init__(
        self,
        outbox: Outbox,
        peers: Peers,
        *,
        mark_recent: Callable[[bytes], None],
        got: Callable[[bytes], None],
        arm_round: Callable[[], None],
        push_asking: PushAsking,
        cover: Callable[[int, int], None],
        remember: Callable[[int, list[bytes]], None],
        share: Callable[[Sequence[tuple[Sequence[int], bytes, list[bytes]]]], list[list[int]]],
        forward_to_vignette: Callable[[bytes, Entry, bool, Address], None],
        vignette_listening: Callable[[], bool],
    ) -> None:
        self._outbox = outbox
        self._peers = peers
        self._keyspace: Keyspace = outbox.keyspace
        self._mark_recent = mark_recent
        self._got = got
        """The tail stops pulling a key a reply brought."""
        self._arm_round = arm_round
        self._push_asking = push_asking
        self._cover = cover
        self._remember = remember
        """Acks keeps a client write's own items for its retries (see ``Acks.remember``)."""
        self._share = share
        """Acks gives a drain's writes one record (see ``Acks.share``)."""
        self._forward_to_vignette = forward_to_vignette
        self._vignette_listening = vignette_listening
        self.local: dict[bytes, _Local] = {}
        """Client writes since the last drain, per key."""
        self.pending: dict[bytes, _Pending] = {}
        """Rumours waiting for pacing tokens, per key."""
        self._held: list[_Push] | None = None
        self._held_bytes: dict[Address, int] = {}
        """Bytes held for each peer in the current batch (pacing counts the datagrams)."""
        """While a drain or a received message is handled: its pushes, sent together at its
        end (None: pushes leave at once)."""

    # -- client writes ------------------------------------------------------------------------

    def queue_local(self, key: bytes, delta: Entry, seq: int) -> None:
        """A client write; another write to the same key before the drain joins it (one push
        carries both)."""
        queued = self.local.get(key)
        if queued is None:
            self.local[key] = _Local([delta], [seq])
        else:
            queued.deltas.append(delta)
            queued.seqs.append(seq)

    def flush_local(self) -> None:
        """Push the client writes queued since the last drain: one rumour per key, all to the
        same peers (``origin_fanout`` random ones), one datagram per peer for all of them (as
        many as fit) and one ack record for all (see :meth:`_push_drain`)."""
        local, self.local = self.local, {}
        if not self._peers:
            return
        keyspace = self._keyspace
        push_items = self._outbox.push_items
        drained: list[tuple[list[int], bytes, list[bytes]]] = []
        deltas: list[tuple[Entry, bool]] = []
        with self._batched():
            for key, queued in local.items():
                delta = join_deltas(queued.deltas)
                held = keyspace.entry(key)
                full = held is not None and is_whole(delta, held)
                one = (queued.seqs, key, push_items(key, delta, full))
                if key in self.pending:
                    self._rumour_alone(one, (delta, full))  # (joins the paced one)
                else:
                    drained.append(one)
                    deltas.append((delta, full))
            if drained:
                self._push_drain(drained, deltas)

    def _push_drain(
        self, drained: list[tuple[list[int], bytes, list[bytes]]], deltas: list[tuple[Entry, bool]]
    ) -> None:
        """Push a drain's rumours (``(writes, key, items)``, keys without a paced rumour) to
        the same random peers, one ack record and one cover retry for all: per-key picks,
        pacing, records and retries were ~15% of a loaded origin's time in a 3-node cluster,
        and at 32 peers a drain of 20 keys picked per key left in up to 640 datagrams instead
        of 32. Without the pacing tokens for all (a drain never goes into the bucket's debt: a
        key can), each key takes the single rumour's path (narrower, or paced)."""
        cfg = self._outbox.config
        items = [item for _, _, key_items in drained for item in key_items]
        for width in (cfg.origin_fanout, cfg.fanout):
            peers = self._peers.pick(width, None)
            if self._take(items, peers, debt=False):
                break
        else:
            for one, delta in zip(drained, deltas, strict=True):
                self._rumour_alone(one, delta)
            return
        covered = len(peers) == len(self._peers)
        relay: bool | int = cfg.covered_relay_fanout if covered else True
        by_record: dict[int, list[bytes]] = {}
        for (_, _, key_items), seqs in zip(drained, self._share(drained), strict=True):
            for seq in seqs:
                by_record.setdefault(seq, []).extend(key_items)
        for seq, record_items in by_record.items():
            self._push(record_items, peers, relay=relay, ack_write=seq)
            if covered and cfg.cover_retries:
                self._cover(seq, cfg.cover_retries)

    def _rumour_alone(
        self, one: tuple[list[int], bytes, list[bytes]], delta: tuple[Entry, bool]
    ) -> None:
        """One key's writes as a rumour of their own: its own peers, its own ack record."""
        for seq in self._share([one])[0]:
            self.rumour(one[1], delta[0], delta[1], None, ack_write=seq)

    @contextmanager
    def _batched(self) -> Iterator[None]:
        """Hold the pushes made inside, then send them with one PUSH per peer and relay mode
        (split only where a datagram is full) instead of one per key and peer: per datagram
        costs (sealing, sending, the receiver's opening and its ACK) were most of what a
        write cost in a cluster. Every key still goes to the peers its own rumour picked."""
        if self._held is not None:
            yield  # already batching (a nested call)
            return
        held = self._held = []
        try:
            yield
        finally:
            self._held = None
            self._held_bytes = {}
            self._send_held(held)

    def _datagrams(self, size: int, peers: Sequence[Address]) -> int:
        """The pacing tokens pushing items of ``size`` bytes in all to ``peers`` costs in a
        batch: the datagrams the items open (about: the batch packs items in order, so an
        item opens one when the previous one is full)."""
        budget = self._outbox.payload_budget
        held = self._held_bytes
        opened = 0
        for peer in peers:
            used = held.get(peer, 0)
            opened += -(-(used + size) // budget) - (-(-used // budget))
        return opened

    def _take(self, items: list[bytes], peers: Sequence[Address], *, debt: bool = True) -> bool:
        """Take the pacing tokens pushing ``items`` to ``peers`` costs (one a datagram: alone,
        one per item and peer; in a batch, see :meth:`_datagrams`) and, in a batch, count the
        items as held for them; False (nothing taken or counted) when the bucket has too few."""
        outbox = self._outbox
        if self._held is None:
            return outbox.bucket.take(outbox.now, len(items) * len(peers), debt=debt)
        size = 0
        for item in items:
            size += len(item)
        if not outbox.bucket.take(outbox.now, self._datagrams(size, peers), debt=debt):
            return False
        held = self._held_bytes
        for peer in peers:
            held[peer] = held.get(peer, 0) + size
        return True

    def _send_held(self, held: list[_Push]) -> None:
        asking: dict[tuple[Address, bool, int], list[tuple[bytes, int]]] = {}
        plain: dict[tuple[Address, bool, int], list[bytes]] = {}
        for push in held:
            # True and 1 differ on the wire: the key keeps bool and int apart.
            mode = (isinstance(push.relay, bool), int(push.relay))
            if push.ack_write:
                pairs = [(item, push.ack_write) for item in push.items]
                for peer in push.peers:
                    asking.setdefault((peer, *mode), []).extend(pairs)
            else:
                for peer in push.peers:
                    plain.setdefault((peer, *mode), []).extend(push.items)
        for (peer, is_bool, relay), pairs in asking.items():
            self._push_asking(peer, pairs, relay=bool(relay) if is_bool else relay)
        for (peer, is_bool, relay), items in plain.items():
            self._outbox.send_push(items, [peer], relay=bool(relay) if is_bool else relay)

    # -- spreading ----------------------------------------------------------------------------

    def rumour(
        self,
        key: bytes,
        delta: Entry,
        full: bool,
        exclude: Address | None,
        *,
        ack_write: int = 0,
        fanout: int = 0,
    ) -> None:
        """Push ``delta`` to random peers now (``origin_fanout`` of them for a client's write
        when pacing allows, else ``fanout``), or queue it if pacing says wait."""
        outbox = self._outbox
        cfg = outbox.config
        fanout = fanout or cfg.fanout
        items = outbox.push_items(key, delta, full)
        if ack_write and self._peers:
            self._remember(ack_write, items)
        if key not in self.pending:
            # A client's write (it asks for acks) starts wide; relays use `fanout`.
            for width in (cfg.origin_fanout, fanout) if ack_write else (fanout,):
                peers = self._peers.pick(width, exclude)
                if not peers:
                    return
                if self._take(items, peers):
                    covered = exclude is None and len(peers) == len(self._peers)
                    relay: bool | int = cfg.covered_relay_fanout if covered else True
                    self._push(items, peers, relay=relay, ack_write=ack_write)
                    if covered and ack_write and cfg.cover_retries:
                        self._cover(ack_write, cfg.cover_retries)
                    return
        elif not self._peers:
            return
        outbox.stats.paced += 1
        pending = self.pending.get(key)
        if pending is None:
            self.pending[key] = _Pending([delta], full, exclude)
        else:
            pending.deltas.append(delta)
            if len(pending.deltas) > _PENDING_DELTAS_MAX:
                pending.joined()
            pending.full = pending.full and full
        self._arm_round()

    def _push(
        self, items: list[bytes], peers: Sequence[Address], *, relay: bool | int, ack_write: int
    ) -> None:
        if self._held is not None:
            self._held.append(_Push(items, peers, relay, ack_write))
        elif ack_write:
            for peer in peers:
                self._push_asking(peer, [(item, ack_write) for item in items], relay=relay)
        else:
            self._outbox.send_push(items, peers, relay=relay)

    def flush_pending(self) -> None:
        """Send the paced rumours the bucket has tokens for (oldest first), batched."""
        outbox = self._outbox
        with self._batched():
            for key in list(self.pending):
                pending = self.pending[key]
                items = outbox.push_items(key, pending.joined(), pending.full)
                peers = self._peers.pick(outbox.config.fanout, pending.exclude)
                if peers and not self._take(items, peers):
                    return
                del self.pending[key]
                self._push(items, peers, relay=True, ack_write=0)

    def pull(self, key: bytes, source: Address | None) -> None:
        """Ask the sender and random others for the full state of ``key``."""
        outbox = self._outbox
        outbox.stats.pulls += 1
        pull_fanout = outbox.config.pull_fanout
        targets = [] if source is None else [source]
        for peer in self._peers.pick(pull_fanout, source):
            if len(targets) >= pull_fanout:
                break
            targets.append(peer)
        if targets:
            item = msg.exchange_item(key, self._keyspace.entry(key))
            outbox.send(MessageType.EXCHANGE, msg.join_items(b"", [item]), targets)

    # -- receiving ----------------------------------------------------------------------------

    def on_push_message(self, payload: bytes, source: Address) -> None:
        fast = msg.push_few(payload)
        if fast is not None:
            relay, ack_id, items = fast
            self.on_push(items, source, relay)
        else:
            relay, ack_id, raw = msg.push_parts(payload)
            self.on_push([msg.decode_push_item_fast(item) for item in raw], source, relay)
        if ack_id:
            self._outbox.ack(source, ack_id)

    def on_exchange_message(self, payload: bytes, source: Address) -> None:
        self.on_exchange(msg.decode_exchange(payload), source)

    def on_push(
        self,
        items: Sequence[tuple[bytes, Entry | msg.FewPairsItem, bool]],
        source: Address,
        relay: bool | int,
        piece: msg.ItemPiece | None = None,
    ) -> None:
        """Merge a PUSH; forward what grew (unless it is a reply), answer with what we hold
        beyond it, pull keys we lack. ``piece``: the one item is a piece of a big one.
        What grew is forwarded in one PUSH per peer (see ``_batched``)."""
        with self._batched():
            self._on_push(items, source, relay, piece)

    def _on_push(
        self,
        items: Sequence[tuple[bytes, Entry | msg.FewPairsItem, bool]],
        source: Address,
        relay: bool | int,
        piece: msg.ItemPiece | None,
    ) -> None:
        outbox = self._outbox
        cfg = outbox.config
        keyspace = self._keyspace
        fanout = cfg.fanout if relay is True else min(int(relay), cfg.fanout)
        replies: list[bytes] = []
        for key, item, full in items:
            short = None
            delta: Entry | None
            if type(item) is tuple:  # (a few-pairs item)
                short = outbox.merge_few(key, item[0], source)
                delta = None if short is not None else msg.few_item_entry(item)
            else:
                assert type(item) is Entry
                delta = item
            if short is not None:  # (merged at the key's own epoch and schema: a known key)
                known, result = True, short
            else:
                assert delta is not None
                before = keyspace.entry(key)
                known = before is not None and not (before.is_tombstone() and before.epoch == 0)
                result = outbox.merge(key, delta, source)
            grown = result.delta
            if grown is not None:
                self._mark_recent(key)
            if relay is False:
                self._got(key)
                continue
            held = keyspace.entry(key)
            # (whether it is whole only matters to whom it goes on to: a covered write's
            # receivers forward nothing, and most nodes know no vignette neighbour)
            listening = held is not None and self._vignette_listening()
            if grown is not None and (fanout or listening):
                whole = (not known and full) or (held is not None and is_whole(grown, held))
                if fanout:
                    self.rumour(key, grown, whole, source, fanout=fanout)
                if listening:
                    self._forward_to_vignette(key, grown, whole, source)
            if known:
                if short is not None:
                    assert type(item) is tuple
                    if _took_all_pairs(short, len(item[0][4]), held):
                        continue
                    delta = msg.few_item_entry(item)
                assert delta is not None
                if not _took_all(result, delta, held):
                    more = _reply(held, delta, piece, mentioned_only=True)
                    if more is not None:
                        replies.extend(outbox.push_items(key, more, False))
            elif not full:
                self.pull(key, source)
        if replies:
            outbox.send_push(replies, [source], relay=False)

    def on_exchange(
        self,
        items: list[tuple[bytes, Entry | None]],
        source: Address,
        piece: msg.ItemPiece | None = None,
    ) -> None:
        """Merge an EXCHANGE; answer with what we hold beyond it (``piece``: see on_push)."""
        outbox = self._outbox
        replies: list[bytes] = []
        for key, theirs in items:
            if theirs is not None and outbox.merge(key, theirs, source).changed:
                self._mark_recent(key)
            more = _reply(self._keyspace.entry(key), theirs, piece, mentioned_only=False)
            if more is not None:
                replies.extend(outbox.push_items(key, more, theirs is None))
        if replies:
            outbox.send_push(replies, [source], relay=False)

    def receive_stream(self, kind: int, payload: bytes, source: Address) -> Iterator[None]:
        """Merge a PUSH or EXCHANGE that came over a stream, yielding between steps.

        A step decodes and merges at most ``STREAM_STEP_ITEMS`` keys and ``STREAM_STEP_PAIRS``
        pairs: a big entry (a dense vector near the key cap holds millions of pairs, ~1 s to
        decode and merge whole) is cut into index ranges before decoding, and each range is
        decoded, merged and answered as a step of its own (a partial max-merge is a valid
        state). A malformed item stops the rest, as a whole malformed message did: everything
        merged before it is a delta that holds on its own.
        """
        outbox = self._outbox
        try:
            if kind == MessageType.PUSH:
                relay, ack_id, raw = msg.push_parts(payload)
            else:
                relay, ack_id, raw = False, 0, msg.exchange_parts(payload)
            for n, (batch, piece) in enumerate(_stream_steps(raw)):
                if n:
                    yield
                if kind == MessageType.PUSH:
                    items = [msg.decode_push_item(i) for i in batch]
                    self.on_push(items, source, relay, piece)
                else:
                    self.on_exchange([msg.decode_exchange_item(i) for i in batch], source, piece)
        except DecodeError:
            outbox.drop(source, "malformed")
            return
        except (HearsayError, ValueError, OverflowError):
            outbox.drop(source, "invalid")
            return
        if ack_id:
            outbox.ack(source, ack_id)


def _stream_steps(raw: list[Any]) -> Iterator[tuple[list[Any], msg.ItemPiece | None]]:
    """The items of a stream message in steps: whole small items together (at most
    ``STREAM_STEP_ITEMS`` and ``STREAM_STEP_PAIRS`` pairs), a big item's pieces one by one."""
    batch: list[Any] = []
    pairs = 0
    for item in raw:
        pieces = msg.cut_item(item, STREAM_STEP_PAIRS)
        count = 0 if pieces is not None else msg.item_pairs(item)
        if batch and (
            pieces is not None
            or len(batch) >= STREAM_STEP_ITEMS
            or pairs + count > STREAM_STEP_PAIRS
        ):
            yield batch, None
            batch, pairs = [], 0
        if pieces is None:
            batch.append(item)
            pairs += count
            continue
        for piece in pieces:
            yield [piece.item], piece
    if batch:
        yield batch, None


def _took_all(result: MergeResult, delta: Entry, held: Entry | None) -> bool:
    """Whether merging ``delta`` raised every pair it carries, at its own epoch and schema and
    expiry: then we hold exactly its values at the indices it mentioned and nothing to reply
    (what :func:`_reply` would find, without searching: the common case of a fresh write)."""
    return (
        held is not None
        and held.epoch == delta.epoch
        and held.schema == delta.schema
        and held.expiry == delta.expiry
        and _took_all_pairs(result, delta.pair_count(), held)
    )


def _took_all_pairs(result: MergeResult, count: int, held: Entry | None) -> bool:
    """:func:`_took_all` of a delta of ``count`` pairs merged at the key's own epoch, schema
    and expiry (:meth:`Outbox.merge_few` checked them): whether every pair rose."""
    grown = result.delta
    return (
        grown is not None
        and held is not None
        and not result.replaced
        and not result.conflict
        and grown.pair_count() == count
    )


def _reply(
    held: Entry | None, theirs: Entry | None, piece: msg.ItemPiece | None, mentioned_only: bool
) -> Entry | None:
    """What we hold beyond ``theirs`` (:func:`exceeding`), for the part ``piece`` answers for.

    A piece answers for its origin's index range, reading only that range of ours; the
    header-only last piece for our other origins and a newer expiry (and for all we hold when
    our entry outranks theirs). Together the pieces of an item answer what the whole item
    would have, each in time proportional to the piece.
    """
    if held is None or theirs is None or piece is None:
        return exceeding(held, theirs, mentioned_only=mentioned_only)
    same_rank = not held.outranks(theirs) and not theirs.outranks(held)
    if piece.origin is None:
        if same_rank:
            others = {o: v for o, v in held.slices() if o not in piece.cut_origins}
            held = Entry(held.epoch, held.schema, held.expiry, others)
        return exceeding(held, theirs, mentioned_only=mentioned_only)
    if not same_rank:
        return None
    window = held.slice(piece.origin).window(piece.low, piece.high)
    mine = Entry(held.epoch, held.schema, held.expiry, {piece.origin: window})
    more = exceeding(mine, theirs, mentioned_only=mentioned_only)
    return None if more is None or more.is_empty() else more
