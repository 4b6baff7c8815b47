"""Shortcuts of the rumours part, each proven equal to the general path: a PUSH receiver skips
looking for what to answer when the merge took every pair the delta carried, and a burst of
writes to one key is joined without arrays when it holds few pairs."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from hearsay.lattice.entry import Entry
from hearsay.lattice.join import join_deltas
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector
from hearsay.protocol.envelope import EnvelopeCodec, MessageType
from hearsay.protocol.gossip.rumours import _reply, _took_all
from hearsay.protocol.node import GossipNode, NodeConfig
from tests.support.gossip_delivery import NOW
from tests.support.lattice_strategies import COUNTER, RAW, entries

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
