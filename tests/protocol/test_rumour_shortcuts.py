"""Shortcuts of the rumours part, each proven equal to the general path: a PUSH receiver skips
looking for what to answer when the merge took every pair the delta carried, and a burst of
writes to one key is joined without arrays when it holds few pairs."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.entry import Entry
from hearsay.lattice.join import join_deltas
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import EnvelopeCodec, MessageType
from hearsay.protocol.gossip.rumours import _reply, _took_all
from hearsay.protocol.node import GossipNode, NodeConfig
from tests.support.gossip_delivery import NOW
from tests.support.lattice_strategies import COUNTER, HLL, RAW, entries

KEY = b"k"


@given(st.lists(entries([RAW, COUNTER, None]), max_size=3), entries([RAW, COUNTER, None]))
def test_skipping_the_reply_never_loses_one(held_before: list[Entry], delta: Entry) -> None:
    keyspace = Keyspace(4)
    for entry in held_before:
        keyspace.merge(KEY, entry)
    result = keyspace.merge(KEY, delta)
    held = keyspace.entry(KEY)
    if _took_all(result, delta, held):
        assert _reply(held, delta, None, mentioned_only=True) is None


def test_a_fresh_write_is_taken_whole() -> None:
    keyspace = Keyspace(4)
    keyspace.merge(KEY, Entry(0, COUNTER, (0, 0), {"a": _vector({0: 3})}))
    delta = Entry(0, COUNTER, (0, 0), {"a": _vector({0: 5}), "b": _vector({1: 2})})
    result = keyspace.merge(KEY, delta)
    assert _took_all(result, delta, keyspace.entry(KEY))
    stale = Entry(0, COUNTER, (0, 0), {"a": _vector({0: 4})})
    result = keyspace.merge(KEY, stale)
    assert not _took_all(result, stale, keyspace.entry(KEY))
    assert _reply(keyspace.entry(KEY), stale, None, mentioned_only=True) is not None


def _vector(pairs: dict[int, int]) -> MaxVector:

    return MaxVector.from_items(pairs.items())


@given(st.lists(entries([COUNTER]), min_size=1, max_size=6), st.integers(0, 3))
def test_joined_writes_equal_their_merge(deltas: list[Entry], epoch: int) -> None:
    """A burst of writes to one key leaves as one rumour: their join (the one the storage
    flush uses: Python ints for a few pairs, arrays for more) is exactly what merging them one
    by one gives."""
    same = [Entry(epoch, COUNTER, delta.expiry, dict(delta.slices())) for delta in deltas]
    merged = same[0].copy()
    for delta in same[1:]:
        merged.merge(delta)
    assert join_deltas(same) == merged


def test_a_receiver_that_took_a_known_key_whole_neither_replies_nor_pulls() -> None:
    """The shortcut skips only the search for a reply: a key the receiver knew is never
    pulled (a regression sent an EXCHANGE for every such write)."""
    a, b = ("127.0.0.1", 7201), ("127.0.0.1", 7202)
    nodes = {
        addr: GossipNode(addr, rng=random.Random(n), config=NodeConfig(), now_ms=NOW)
        for n, addr in enumerate((a, b))
    }
    nodes[a].add_peer(b)
    nodes[b].add_peer(a)
    codec = EnvelopeCodec("hearsay")
    for value in (1, 2, 3):
        result = nodes[a].keyspace.write(KEY, RAW, {"": _vector({0: value, value: 1})}, NOW)
        assert result.delta is not None
        nodes[a].local_delta(KEY, result.delta, NOW)
        for data, peer in nodes[a].datagrams_to_send():
            nodes[peer].receive_datagram(data, a, NOW)
        answers = nodes[b].datagrams_to_send()
        assert [codec.open(data)[0] for data, _ in answers] == [MessageType.ACK]
    assert nodes[b].stats.pulls == 0
    assert nodes[b].keyspace.entry(KEY) == nodes[a].keyspace.entry(KEY)


@st.composite
def _few_pair_deltas(draw: st.DrawFn) -> Entry:
    """A replicated write's usual delta (one slice, a few pairs), at epochs, schemas and
    expiries the held entries also take, so that every case of the short read is met."""
    schema = draw(st.sampled_from([HLL, COUNTER]))
    origin = draw(st.sampled_from(["a", "b"])) if schema.additive else ""
    pairs = draw(
        st.dictionaries(st.integers(0, 60), st.integers(1, 40), min_size=1, max_size=9)
        | st.dictionaries(st.integers(0, 5000), st.integers(1, 40), min_size=50, max_size=70)
    )
    return Entry(
        draw(st.integers(0, 3)),
        schema,
        draw(st.sampled_from([(0, 0), (5, 100), (7, 0)])),
        {origin: _vector(pairs)},
    )


def _opened(node: GossipNode) -> list[tuple[int, object]]:
    """What ``node`` sends, opened and decoded: comparable between two nodes."""
    codec = EnvelopeCodec("hearsay")
    out: list[tuple[int, object]] = []
    for data, peer in node.datagrams_to_send():
        kind, payload = codec.open(data)
        decoded = msg.decode_push(payload) if kind == MessageType.PUSH else payload
        out.append((kind, (peer, decoded)))
    return out


@settings(max_examples=150)
@given(
    st.lists(entries([HLL, COUNTER, None]), max_size=3),
    _few_pair_deltas(),
    st.dictionaries(st.integers(0, 60), st.integers(1, 40), max_size=20),
    st.booleans(),
    st.sampled_from([True, False, 0, 2]),
)
def test_a_push_read_as_few_pairs_acts_as_the_decoded_push(
    held: list[Entry], delta: Entry, held_alike: dict[int, int], full: bool, relay: bool | int
) -> None:
    """A PUSH whose items are read as their few pairs (the short read that merges them as
    raw pairs) leaves the receiver in the same state, sending the same forwards, replies and
    pulls and reporting the same events, as the same PUSH decoded whole. ``held_alike``: pairs
    the receiver holds at the delta's own epoch, schema and expiry (the short read's case),
    some above the delta's."""
    ((origin, _),) = delta.slices()
    alike = Entry(delta.epoch, delta.schema, delta.expiry, {origin: _vector(held_alike)})
    a, c = ("127.0.0.1", 7301), ("127.0.0.1", 7303)
    short, whole = (
        GossipNode(("127.0.0.1", 7302), rng=random.Random(5), config=NodeConfig(), now_ms=NOW)
        for _ in range(2)
    )
    for node in (short, whole):
        node.add_peer(a)
        node.add_peer(c)
        for entry in (*held, alike):
            node.keyspace.merge(KEY, entry)
        node.datagrams_to_send()
        _drain_events(node)
    payload = msg.join_items(msg.push_prefix(relay, 0), [msg.push_item(KEY, delta, full)])
    short.receive_datagram(EnvelopeCodec("hearsay").seal(MessageType.PUSH, payload, NOW), a, NOW)
    whole._rumours.on_push(msg.decode_push(payload)[2], a, relay)
    assert short.keyspace.entry(KEY) == whole.keyspace.entry(KEY)
    assert _opened(short) == _opened(whole)
    assert _drain_events(short) == _drain_events(whole)


def _drain_events(node: GossipNode) -> list[object]:
    events = []
    while (event := node.next_event()) is not None:
        events.append(event)
    return events
