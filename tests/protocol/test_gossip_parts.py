"""The gossip core's parts on their own: presence merges, the bounded table, big entries."""

from __future__ import annotations

import random

import msgpack
import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol import vignette
from hearsay.protocol.diff import exceeding
from hearsay.protocol.envelope import EnvelopeCodec, MessageType
from hearsay.protocol.events import KeyChanged, NodeEvent
from hearsay.protocol.gossip.rumours import STREAM_STEP_PAIRS
from hearsay.protocol.gossip.shared import BoundedTable
from hearsay.protocol.node import GossipNode, NodeConfig

NOW = 1_700_000_000_000
ME = ("127.0.0.1", 7000)
OLD = ("127.0.0.1", 6000)


def _events(node: GossipNode) -> list[NodeEvent]:
    found: list[NodeEvent] = []
    while (event := node.next_event()) is not None:
        found.append(event)
    return found


def test_own_presence_is_reported_as_a_key_change() -> None:
    """The presence key merged into the keyspace comes out as KeyChanged, like every merge,
    so the engine marks it dirty and persists it."""
    node = GossipNode(ME, rng=random.Random(1), config=NodeConfig(), now_ms=NOW)
    node.join([], NOW, vignette_seeds=[OLD])
    changed = [e for e in _events(node) if isinstance(e, KeyChanged)]
    assert [(e.key, e.source) for e in changed] == [(b"n:127.0.0.1:7000", ME)]
    assert changed[0].delta.vector.items() == [(0, NOW)]
    # the next presence round raises the stamp: reported again, with what grew
    later = NOW + NodeConfig().presence_interval_ms
    node.receive_datagram(b"", OLD, later - 1)  # keep the vignette seed fresh (a drop)
    node.handle_timer(later)
    again = [e for e in _events(node) if isinstance(e, KeyChanged)]
    assert [e.key for e in again] == [b"n:127.0.0.1:7000"]
    assert again[0].delta.vector.items() == [(0, later)]


# -- issue 11: a big entry never holds the driver's loop for one long step ----------------------

PIECE = STREAM_STEP_PAIRS
B = ("127.0.0.1", 7001)


def _dense_entry(count: int, seed: int, start: int = 0) -> Entry:
    values = np.random.default_rng(seed).integers(1, 1 << 40, size=count, dtype=np.uint64)
    indices = np.arange(start, start + count, dtype=np.uint32)
    return Entry(5, vignette.VECTOR_SCHEMA, slices={"": MaxVector.from_pairs(indices, values)})


def _stream(kind: MessageType, items: list[bytes]) -> bytes:
    prefix = msg.push_prefix(False, 0) if kind == MessageType.PUSH else b""
    return EnvelopeCodec("hearsay").seal(kind, msg.join_items(prefix, items))


def _merged_per_step(node: GossipNode, data: bytes) -> list[int]:
    """Pairs merged in each step of a stream (what the KeyChanged events of the step carry)."""
    per_step: list[int] = []
    for _ in node.receive_stream_steps(data, B, NOW):
        per_step.append(
            sum(e.delta.pair_count() for e in _events(node) if isinstance(e, KeyChanged))
        )
    per_step.append(sum(e.delta.pair_count() for e in _events(node) if isinstance(e, KeyChanged)))
    return per_step


def _replied(node: GossipNode) -> Entry:
    """Everything the node pushed back to B, joined."""
    codec = EnvelopeCodec("hearsay")
    joined = Entry()
    for data, peer in node.datagrams_to_send():
        kind, payload = codec.open(data, len(data))
        assert peer == B and kind == MessageType.PUSH
        for _, delta, _ in msg.decode_push(payload)[2]:
            joined.merge(delta)
    return joined


def test_a_big_pushed_entry_is_merged_in_pieces() -> None:
    whole = _dense_entry(3 * PIECE + 500, seed=1)
    node = GossipNode(ME, rng=random.Random(1), now_ms=NOW)
    per_step = _merged_per_step(
        node, _stream(MessageType.PUSH, [msg.push_item(b"big", whole, True)])
    )
    assert max(per_step) <= PIECE and len(per_step) >= 4
    assert sum(per_step) == whole.pair_count()
    assert node.keyspace.entry(b"big") == whole
    assert node.stats.dropped == {}


def test_a_big_exchanged_entry_is_merged_and_answered_in_pieces() -> None:
    theirs = _dense_entry(3 * PIECE + 500, seed=2, start=10)
    # ours: higher at some of their indices, and pairs before, between and after theirs
    higher = theirs.vector.window(100, 200).copy()
    mine_vector = MaxVector.from_pairs(*higher.pairs()).merge(
        MaxVector.from_items([(3, 9), (PIECE + 77, 1 << 50), (4 * PIECE, 7), (1 << 30, 2)])
    )
    raised = MaxVector.from_pairs(higher.pairs()[0], higher.pairs()[1].astype(np.uint64) + 1)
    mine = Entry(5, vignette.VECTOR_SCHEMA, (1, 2), {"": mine_vector.merge(raised)})
    node = GossipNode(ME, rng=random.Random(1), peers=[B], now_ms=NOW)
    node.keyspace.merge(b"big", mine)
    joined = mine.copy()
    joined.merge(theirs)
    expected = exceeding(joined, theirs)
    per_step = _merged_per_step(
        node, _stream(MessageType.EXCHANGE, [msg.exchange_item(b"big", theirs)])
    )
    assert max(per_step) <= PIECE and len(per_step) >= 4
    assert node.keyspace.entry(b"big") == joined
    assert expected is not None
    reply = _replied(node)
    assert reply.vector == expected.vector and reply.expiry == expected.expiry == (1, 2)


def test_a_big_item_is_cut_into_pieces_covering_every_index() -> None:
    whole = _dense_entry(2 * PIECE + 3, seed=3, start=40)
    item = msgpack.unpackb(msg.push_item(b"k", whole, True))
    pieces = msg.cut_item(item, PIECE)
    assert pieces is not None
    ranges = [(p.low, p.high) for p in pieces if p.origin is not None]
    assert ranges == [(0, 40 + PIECE), (40 + PIECE, 40 + 2 * PIECE), (40 + 2 * PIECE, 1 << 32)]
    joined = Entry()
    for piece in pieces:
        key, delta, full = msg.decode_push_item(piece.item)
        assert key == b"k" and full and delta.pair_count() <= PIECE
        joined.merge(delta)
    assert joined == whole
    assert msg.cut_item(msgpack.unpackb(msg.push_item(b"k", whole, True)), 3 * PIECE) is None
    # indices not rising (not canonical): decoded whole, as before
    backwards = [b"k", [1, 5, item[1][2], [0, 0], [["", 1, b"\x05\0\0\0\x01\0\0\0", b"\x01\x01"]]]]
    assert msg.cut_item(backwards, 1) is None


def test_a_vector_window_reads_one_index_range() -> None:
    dense = MaxVector.from_pairs(np.arange(1, 1000), np.arange(1, 1000))
    sparse = MaxVector.from_items([(5, 1), (100_000, 2), (3_000_000_000, 7)])
    assert dense.is_dense and not sparse.is_dense
    for vector in (dense, sparse):
        for low, high in [(0, 4), (997, 1 << 32), (5_000, 6_000), (100_000, 100_001), (6, 7)]:
            expected = [(i, v) for i, v in vector.items() if low <= i < high]
            assert vector.window(low, high).items() == expected


def test_the_bounded_table_drops_the_oldest_and_refreshes_on_put() -> None:
    table: BoundedTable[str, int] = BoundedTable(3)
    for n, key in enumerate("abcd"):
        table.put(key, n)
    assert list(table.items()) == [("b", 1), ("c", 2), ("d", 3)]  # "a", the oldest, dropped
    table.put("b", 9)  # refreshed: now the newest
    table.put("e", 4)
    assert list(table.items()) == [("d", 3), ("b", 9), ("e", 4)]
    assert table.has_room_for("d") and not table.has_room_for("z")
    del table["d"]
    assert table.has_room_for("z")


@settings(max_examples=150, deadline=None)
@example(mine={}, ones=list(range(0, 40_000, 3)), theirs={3: 1, 4: 1, 39_999: 2})
@given(
    mine=st.dictionaries(st.integers(0, 40_000), st.integers(1, 300), max_size=300),
    ones=st.lists(st.integers(0, 40_000), max_size=6_000),
    theirs=st.dictionaries(st.integers(0, 40_000), st.integers(1, 300), max_size=60),
)
def test_a_reply_to_the_indices_they_mention_equals_the_dict_model(
    mine: dict[int, int], ones: list[int], theirs: dict[int, int]
) -> None:
    """What we hold beyond a PUSH, at the indices it mentions, read at those indices only
    (a big bit vector is never listed whole): the pairs the dict model finds, in every form
    our vector may take (sparse, bytes, bits)."""
    held = dict.fromkeys(ones, 1) if ones else mine  # many ones: a bit vector
    ours = MaxVector.from_items(held.items())
    assert len(held) < 10_000 or ours.bit_array() is not None
    other = MaxVector.from_items(theirs.items())
    mine_entry = Entry(slices={"a": ours})
    theirs_entry = Entry(slices={"a": other})
    expected = {i: held[i] for i, v in theirs.items() if held.get(i, 0) > v}
    got = exceeding(mine_entry, theirs_entry, mentioned_only=True)
    found = {} if got is None else dict(got.slice("a").items())
    assert found == expected


@settings(max_examples=60, deadline=None)
@example(mine=list(range(0, 40_000, 2)), theirs=list(range(0, 30_000, 3)), mentioned_only=False)
@example(mine=list(range(0, 20_000, 2)), theirs=list(range(0, 40_000, 3)), mentioned_only=False)
@example(mine=list(range(0, 40_000, 2)), theirs=list(range(0, 30_000, 3)), mentioned_only=True)
@given(
    mine=st.lists(st.integers(0, 40_000), max_size=8_000),
    theirs=st.lists(st.integers(0, 40_000), max_size=8_000),
    mentioned_only=st.booleans(),
)
def test_what_one_bit_vector_holds_beyond_another_equals_the_dict_model(
    mine: list[int], theirs: list[int], mentioned_only: bool
) -> None:
    """Two Bloom filters' bits (held as bitsets when many) compared byte by byte: the same
    pairs as the dict model, in every pair of forms (sparse or bits on either side)."""
    ours = MaxVector.from_items((i, 1) for i in mine)
    other = MaxVector.from_items((i, 1) for i in theirs)
    held, their_set = set(mine), set(theirs)
    expected = {} if mentioned_only else {i: 1 for i in held - their_set}
    got = exceeding(
        Entry(slices={"a": ours}), Entry(slices={"a": other}), mentioned_only=mentioned_only
    )
    found = {} if got is None else dict(got.slice("a").items())
    assert found == expected
    if ours.bit_array() is not None and other.bit_array() is not None:
        assert ours.bits_above(other) is not None


@settings(max_examples=80, deadline=None)
@example(ones=list(range(0, 60_000)), drop=1)
@example(ones=list(range(0, 60_000, 7)), drop=0)
@given(
    ones=st.lists(st.integers(0, 60_000), max_size=6_000),
    drop=st.integers(0, 3),
)
def test_a_delta_is_whole_exactly_when_it_carries_every_pair(ones: list[int], drop: int) -> None:
    """``is_whole`` (whether a push may be taken as the key's full state) says yes for the
    same pairs in any form (a dense bitset held, a packed copy pushed) and no when pairs
    are missing, however much smaller the delta (its size shortcut never says no to a whole
    delta)."""
    from hearsay.protocol.gossip.shared import is_whole

    held_vector = MaxVector.from_items((i, 1) for i in ones)
    held = Entry(slices={"a": held_vector})
    pairs = sorted(set(ones))
    from hearsay.lattice import vector as vector_module

    as_packed = MaxVector()  # the same pairs packed, whatever form the held ones took
    if pairs:
        as_packed._packed = vector_module._pack(
            1, np.array(pairs, dtype=np.uint32), np.ones(len(pairs), dtype=np.uint8)
        )
    assert as_packed.packed_pairs() is not None and len(as_packed) == len(pairs)
    assert is_whole(Entry(slices={"a": as_packed}), held)
    assert is_whole(held, Entry(slices={"a": as_packed}))  # (a bitset pushed, pairs held)
    assert is_whole(held.copy(), held)
    kept = pairs[drop:]
    partial = Entry(slices={"a": MaxVector.from_items((i, 1) for i in kept)})
    assert is_whole(partial, held) == (len(kept) == len(pairs))
