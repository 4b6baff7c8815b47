"""vignette's raw msgpack messages: both dialects, reads, searches, aggregates, presence."""

from __future__ import annotations

import random

import msgpack
import pytest

from hearsay.lattice.vector import MaxVector
from hearsay.protocol import vignette
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.protocol.vignette import VignetteDecodeError

NOW = 1_700_000_000_000
ME = ("127.0.0.1", 7000)
OLD = ("127.0.0.1", 6000)


def _raw(obj: object) -> bytes:
    return msgpack.packb(obj)


def _node(seed: int = 1) -> GossipNode:
    return GossipNode(ME, rng=random.Random(seed), config=NodeConfig(), now_ms=NOW)


def _replies(node: GossipNode) -> list[tuple[dict[str, object], tuple[str, int]]]:
    return [
        (msgpack.unpackb(data, strict_map_key=False), dest)
        for data, dest in node.datagrams_to_send()
        if data[:1] != b"\xc1"
    ]


def test_both_dialects_decode() -> None:
    clojure = vignette.decode(_raw({"key": "foo", "vector": {0: 8, 3: 7}, "full": True}))
    assert clojure.key == "foo" and clojure.full is True and clojure.ttl is None
    assert clojure.vector.items() == [(0, 8), (3, 7)]
    ruby = vignette.decode(_raw({"key": b"foo", "vector": {1: 2}, "ttl": 49}))
    assert ruby.full is None and ruby.ttl == 49 and ruby.hops_left == 49
    bare = vignette.decode(_raw({"key": "foo", "vector": {}}))
    assert bare.is_read and bare.hops_left == vignette.TTL_DEFAULT


@pytest.mark.parametrize(
    "bad",
    [
        b"\xc1",
        _raw([1, 2]),
        _raw({"vector": {0: 1}}),
        _raw({"key": "", "vector": {}}),
        _raw({"key": "k", "vector": {-1: 1}}),
        _raw({"key": "k", "vector": {0: -1}}),
        _raw({"key": "k", "vector": {2**32: 1}}),
        _raw({"key": "k", "vector": {0: 1.5}}),
        _raw({"key": "k", "vector": [1]}),
        _raw({"key": "k", "vector": {}, "full": 1}),
        _raw({"key": "k", "vector": {}, "ttl": "x"}),
        _raw({"key": b"\xff", "vector": {}}),
    ],
)
def test_malformed_messages_raise_typed_error(bad: bytes) -> None:
    with pytest.raises(VignetteDecodeError):
        vignette.decode(bad)


def test_encode_sends_both_dialects_and_never_ttl_zero() -> None:
    wire = msgpack.unpackb(
        vignette.encode("k", MaxVector.from_pairs([1], [2]), full=True, ttl=3),
        strict_map_key=False,
    )
    assert wire == {"key": "k", "vector": {1: 2}, "full": True, "ttl": 3}
    with pytest.raises(ValueError):
        vignette.encode("k", MaxVector(), full=True, ttl=0)


def test_chunks_fit_the_budget_and_merge_back() -> None:
    big = MaxVector.from_pairs(list(range(0, 4000, 3)), [7] * 1334)
    chunks = vignette.encode_chunks("big", big, full=True, ttl=5, budget_bytes=1400)
    assert len(chunks) > 1 and all(len(c) <= 1400 for c in chunks)
    merged = MaxVector()
    for chunk in chunks:
        merged.merge(vignette.decode(chunk).vector)
    assert merged == big


def test_patterns_are_anchored() -> None:
    pattern = vignette.compile_pattern("n:%")
    assert vignette.matches(pattern, "n:127.0.0.1:6000")
    assert not vignette.matches(pattern, "xn:1")
    dotted = vignette.compile_pattern("a.%.c")
    assert vignette.matches(dotted, "a.bb.c")
    assert not vignette.matches(dotted, "aXbb.c")
    assert vignette.matches(vignette.compile_pattern("hits:*"), "hits:2024")


def test_presence_minutes_and_milliseconds() -> None:
    assert vignette.presence_unix_ms(28_333_333) == 28_333_333 * 60_000
    assert vignette.presence_unix_ms(NOW) == NOW
    assert vignette.parse_presence_key("n:127.0.0.1:6000") == ("127.0.0.1", 6000)
    assert vignette.parse_presence_key("n:[::1]:6000") == ("::1", 6000)
    assert vignette.parse_presence_key("n:%") is None
    assert vignette.parse_presence_key("x:1:2") is None


# -- a node speaking to old vignette peers ---------------------------------------------------


def test_store_then_reply_with_what_we_hold_more() -> None:
    node = _node()
    node.receive_datagram(
        _raw({"key": "foo", "vector": {0: 5, 1: 10, 5: 3}, "full": True}), OLD, NOW
    )
    entry = node.keyspace.entry(b"foo")
    assert entry is not None and entry.schema is vignette.VECTOR_SCHEMA
    assert _replies(node) == []  # full message for an unknown key: nothing to pull
    # the seed's example: {0: 3, 1: 11} -> stored {0: 5, 1: 11, 5: 3}; reply {0: 5}
    node.receive_datagram(_raw({"key": "foo", "vector": {0: 3, 1: 11}, "ttl": 50}), OLD, NOW)
    assert node.keyspace.entry(b"foo").vector.items() == [(0, 5), (1, 11), (5, 3)]  # type: ignore[union-attr]
    replies = _replies(node)
    assert [(r["key"], r["vector"], dest) for r, dest in replies] == [("foo", {0: 5}, OLD)]
    assert replies[0][0]["ttl"] == 50


def test_empty_vector_is_a_read() -> None:
    node = _node()
    node.receive_datagram(_raw({"key": "foo", "vector": {2: 9}, "full": True}), OLD, NOW)
    node.datagrams_to_send()
    node.receive_datagram(_raw({"key": "foo", "vector": {}}), OLD, NOW)
    replies = _replies(node)
    assert [(r["key"], r["vector"]) for r, _ in replies] == [("foo", {2: 9})]
    assert node.keyspace.entry(b"foo").vector.items() == [(2, 9)]  # type: ignore[union-attr]
    node.receive_datagram(_raw({"key": "missing", "vector": {}}), OLD, NOW)
    assert _replies(node) == [] and node.keyspace.entry(b"missing") is None


def test_unknown_key_from_partial_message_is_stored_and_pulled() -> None:
    node = _node()
    node.add_peer(("127.0.0.1", 7001))
    node.receive_datagram(_raw({"key": "bar", "vector": {4: 1}, "ttl": 10}), OLD, NOW)
    assert node.keyspace.entry(b"bar") is not None
    sent = node.datagrams_to_send()
    reads = [msgpack.unpackb(d, strict_map_key=False) for d, dest in sent if dest == OLD]
    assert {k: reads[0][k] for k in ("key", "vector")} == {"key": "bar", "vector": {}}
    assert any(dest == ("127.0.0.1", 7001) and d[:1] == b"\xc1" for d, dest in sent)
    assert node.stats.pulls == 1


def test_search_and_aggregate_are_answered_never_stored() -> None:
    node = _node()
    for key, vec in (("hits:a", {0: 1, 1: 5}), ("hits:b", {0: 4}), ("miss", {0: 9})):
        node.receive_datagram(_raw({"key": key, "vector": vec, "full": True}), OLD, NOW)
    node.datagrams_to_send()
    node.receive_datagram(_raw({"key": "hits:%", "vector": {}}), OLD, NOW)
    found = {r["key"]: r["vector"] for r, _ in _replies(node)}
    assert found == {"hits:a": {0: 1, 1: 5}, "hits:b": {0: 4}}
    node.receive_datagram(_raw({"key": "hits:*", "vector": {}}), OLD, NOW)
    assert [(r["key"], r["vector"]) for r, _ in _replies(node)] == [("hits:*", {0: 4, 1: 5})]
    node.receive_datagram(_raw({"key": "hits:*", "vector": {0: 2, 1: 9}}), OLD, NOW)
    assert [(r["key"], r["vector"]) for r, _ in _replies(node)] == [("hits:*", {0: 4})]
    assert node.keyspace.entry(b"hits:%") is None and node.keyspace.entry(b"hits:*") is None


def test_forwarding_decrements_ttl_and_stops_at_one() -> None:
    node = _node()
    other = ("127.0.0.1", 6001)
    node.receive_datagram(_raw({"key": "x", "vector": {}}), other, NOW)  # other becomes known
    node.receive_datagram(_raw({"key": "k", "vector": {0: 1}, "ttl": 7, "full": True}), OLD, NOW)
    forwarded = [msgpack.unpackb(d, strict_map_key=False) for d, dest in node.datagrams_to_send()]
    assert [m["ttl"] for m in forwarded if m.get("key") == "k"] == [6]
    node.receive_datagram(_raw({"key": "k", "vector": {0: 2}, "ttl": 1}), OLD, NOW)
    sent = node.datagrams_to_send()
    assert node.keyspace.entry(b"k").vector.items() == [(0, 2)]  # type: ignore[union-attr]
    assert not any(dest == other for _, dest in sent)  # ttl 1 - 1 = 0: not forwarded


def test_presence_is_learned_in_minutes_or_ms_and_expires() -> None:
    node = _node()
    minutes = NOW // 60_000
    node.receive_datagram(
        _raw({"key": "n:127.0.0.1:6005", "vector": {0: minutes}, "full": True}), OLD, NOW
    )
    entry = node.keyspace.entry(b"n:127.0.0.1:6005")
    assert entry is not None and entry.vector.get(0) == minutes * 60_000
    assert ("127.0.0.1", 6005) in node._vignette.peers
    node.join([], NOW, vignette_seeds=[OLD])
    sent = [msgpack.unpackb(d, strict_map_key=False) for d, dest in node.datagrams_to_send()]
    assert {"key": "n:127.0.0.1:7000", "vector": {0: NOW}, "full": True, "ttl": 50} in sent
    assert any(m["key"] == "n:%" and m["vector"] == {} for m in sent)
    # silent neighbours are dropped after the presence timeout
    later = NOW + NodeConfig().presence_timeout_ms + 10_000
    node.handle_timer(later)
    assert node._vignette._fresh_peers() == []


def test_vignette_write_to_a_sketch_key_is_refused() -> None:
    from hearsay.lattice.entry import Entry, Schema

    node = _node()
    hll = Schema("hll", (14,), 1 << 14).intern()
    node.keyspace.merge(b"visits", Entry(0, hll, slices={"": MaxVector.from_pairs([1], [3])}))
    node.receive_datagram(_raw({"key": "visits", "vector": {0: 1}, "full": True}), OLD, NOW)
    assert node.stats.dropped.get("wrong-type") == 1
    assert node.keyspace.entry(b"visits").schema is hll  # type: ignore[union-attr]


def test_garbage_raw_datagrams_are_counted() -> None:
    node = _node()
    node.receive_datagram(b"\x81\xa3key", OLD, NOW)
    node.receive_datagram(b"hello", OLD, NOW)
    assert node.stats.dropped == {"malformed-vignette": 1, "malformed": 1}


def test_search_pattern_is_linear_in_the_key() -> None:
    """Finding 9: a 30-byte ``%a%a...%b`` search froze a node for 36 s (the regex translation
    backtracked over every placement of the wildcards). The matcher places each literal part
    once: the count of segments searched is bounded by the parts, not their placements."""
    pattern = vignette.compile_pattern("%a" * 14 + "%b")
    assert not vignette.matches(pattern, "a" * 40)
    assert vignette.matches(pattern, "a" * 14 + "b")
    assert len(pattern.segments) == 16  # one per literal part (and the empty head): no regex
    assert all(segment.regex is None for segment in pattern.segments)
