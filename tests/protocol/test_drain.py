"""A drain of client writes: the same peers for all its keys, one ack record and one cover
retry for all, and at most one drain per ``drain_interval_ms``."""

from __future__ import annotations

import random

from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import EnvelopeCodec, MessageType
from hearsay.protocol.gossip.outbox import ACK_IDS_PER_DATAGRAM
from hearsay.protocol.membership import Address
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.protocol.presets import preset_by_name
from tests.support.gossip_delivery import NOW, deliver

VEC = Schema("vector").intern()
CODEC = EnvelopeCodec("hearsay")


def _addresses(count: int) -> list[Address]:
    return [("127.0.0.1", 7200 + i) for i in range(count)]


def _nodes(addresses: list[Address], **config: object) -> dict[Address, GossipNode]:
    cfg = NodeConfig(**config)  # type: ignore[arg-type]
    out = {}
    for n, addr in enumerate(addresses):
        node = GossipNode(addr, rng=random.Random(n), config=cfg, now_ms=NOW)
        for other in addresses:
            node.add_peer(other)
        out[addr] = node
    return out


def _write(node: GossipNode, key: bytes, pairs: dict[int, int], now: int = NOW) -> int:
    result = node.keyspace.write(key, VEC, {"": MaxVector.from_items(pairs.items())}, now)
    assert result.delta is not None
    return node.local_delta(key, result.delta, now)


def _pushed_keys(datagrams: list[tuple[bytes, Address]]) -> dict[Address, list[bytes]]:
    """The keys each peer was pushed, by peer."""
    out: dict[Address, list[bytes]] = {}
    for data, peer in datagrams:
        kind, payload = CODEC.open(data)
        assert kind == MessageType.PUSH
        out.setdefault(peer, []).extend(key for key, _, _ in msg.decode_push(payload)[2])
    return out


def test_a_drain_goes_to_the_same_origin_fanout_peers_for_every_key() -> None:
    """With more peers than ``origin_fanout``, a drain of 20 keys leaves in one datagram to
    each of ``origin_fanout`` peers carrying all 20 (picked per key it took up to 20 times
    as many datagrams, one key each), and every write is acked by all of them."""
    addresses = _addresses(41)
    nodes = _nodes(addresses, origin_fanout=8)
    origin = nodes[addresses[0]]
    keys = [b"k%d" % i for i in range(20)]
    seqs = [_write(origin, key, {i: 1}) for i, key in enumerate(keys)]
    pushes = origin.datagrams_to_send()
    by_peer = _pushed_keys(pushes)
    assert len(pushes) == len(by_peer) == 8
    assert all(pushed == keys for pushed in by_peer.values())
    for data, peer in pushes:
        nodes[peer].receive_datagram(data, addresses[0], NOW)
    deliver(nodes)
    assert [origin.acks(seq) for seq in seqs] == [8] * 20
    held = [origin.keyspace.entry(key) for key in keys]
    for gossip_round in range(1, 31):  # the rumour's relays, then digests reach the rest
        if all([n.keyspace.entry(key) for key in keys] == held for n in nodes.values()):
            break
        now = NOW + 200 * gossip_round
        for node in nodes.values():
            node.handle_timer(now)
        deliver(nodes, now)
    for node in nodes.values():
        assert [node.keyspace.entry(key) for key in keys] == held


def test_a_drain_a_peer_missed_is_retried_whole_and_one_ack_acks_every_write() -> None:
    """One record and one cover retry for a drain: the peer that lost the drain's push gets
    every key of it again, in one push, and its one ACK counts for every write."""
    a, b, c = _addresses(3)
    nodes = _nodes([a, b, c], cover_retry_ms=50, cover_retries=1)
    keys = [b"k%d" % i for i in range(10)]
    seqs = [_write(nodes[a], key, {i: 3}) for i, key in enumerate(keys)]
    lost_to_c = lambda data, src, dest: src == a and dest == c  # noqa: E731
    deliver(nodes, drop=lost_to_c)
    assert [nodes[a].acks(seq) for seq in seqs] == [1] * 10
    assert all(nodes[c].keyspace.entry(key) is None for key in keys)
    nodes[a].handle_timer(NOW + 50)
    retry = nodes[a].datagrams_to_send()
    assert len(retry) == 1 and _pushed_keys(retry) == {c: keys}
    for data, peer in retry:
        nodes[peer].receive_datagram(data, a, NOW + 50)
    deliver(nodes, NOW + 50)
    assert [nodes[a].acks(seq) for seq in seqs] == [2] * 10
    for key in keys:
        assert nodes[c].keyspace.entry(key) == nodes[a].keyspace.entry(key)


def test_a_write_asked_about_before_its_drain_keeps_its_own_record() -> None:
    """A write WAIT asked about before the drain has a record of its own (already pushed to
    the peers asked); the drain's other writes share one, and each is acked."""
    a, b, c = _addresses(3)
    nodes = _nodes([a, b, c])
    first = _write(nodes[a], b"asked", {1: 1})
    assert nodes[a].request_acks(first, 2, NOW) == 0
    others = [_write(nodes[a], b"k%d" % i, {i: 1}) for i in range(5)]
    deliver(nodes)
    assert nodes[a].acks(first) == 2
    assert [nodes[a].acks(seq) for seq in others] == [2] * 5


def test_drains_are_at_least_drain_interval_apart() -> None:
    """Writes arriving within ``drain_interval_ms`` of a drain wait for the timer and leave
    together; the first write after a quiet spell leaves at once."""
    a, b = _addresses(2)
    nodes = _nodes([a, b], drain_interval_ms=2)
    _write(nodes[a], b"x", {1: 1})
    assert _pushed_keys(nodes[a].datagrams_to_send()) == {b: [b"x"]}
    _write(nodes[a], b"y", {1: 1})
    _write(nodes[a], b"z", {1: 1}, NOW + 1)
    assert nodes[a].datagrams_to_send() == []
    assert nodes[a].has_output() and nodes[a].get_timer() == NOW + 2
    nodes[a].handle_timer(NOW + 2)
    assert _pushed_keys(nodes[a].datagrams_to_send()) == {b: [b"y", b"z"]}
    _write(nodes[a], b"w", {1: 1}, NOW + 50)
    assert _pushed_keys(nodes[a].datagrams_to_send()) == {b: [b"w"]}


def test_real_nodes_drain_at_most_every_two_milliseconds() -> None:
    """The presets' setting (hand-driven nodes default to 0: every drain pushes)."""
    for name in ("lan", "wan", "local"):
        assert NodeConfig.from_preset(preset_by_name(name)).drain_interval_ms == 2
    assert NodeConfig().drain_interval_ms == 0


def test_writes_to_one_key_in_a_drain_are_acked_whatever_was_asked_about_them() -> None:
    """Two writes to one key before a drain share its push. WAIT may ask about the first
    before the second is made, about both, or about neither: every one is acked by every
    peer, and a peer that lost the drain's push gets it again by the cover retry."""
    a, b, c = _addresses(3)
    for asked in ((), (0,), (1,), (0, 1)):
        nodes = _nodes([a, b, c], cover_retry_ms=50, cover_retries=1)
        seqs = []
        for i in range(2):
            seqs.append(_write(nodes[a], b"k", {i: 1}))
            if i in asked:
                nodes[a].request_acks(seqs[-1], 2, NOW)
        seqs.append(_write(nodes[a], b"other", {1: 1}))
        lost_to_c = lambda data, src, dest: src == a and dest == c  # noqa: E731
        deliver(nodes, drop=lost_to_c)
        nodes[a].handle_timer(NOW + 50)
        deliver(nodes, NOW + 50)
        assert [nodes[a].acks(seq) for seq in seqs] == [2, 2, 2], asked
        for key in (b"k", b"other"):
            assert nodes[c].keyspace.entry(key) == nodes[a].keyspace.entry(key)


def test_pushes_read_before_the_next_send_are_acked_in_one_ack_per_peer() -> None:
    """A receiver owes the ACKs of the PUSHes it read since it last sent and sends them as one
    ACK per peer (a loaded node reads several in one pass: each was an ACK datagram of its
    own); the writer counts every write acked. Over ``ACK_IDS_PER_DATAGRAM`` ids, more ACKs."""
    addresses = _addresses(2)
    nodes = _nodes(addresses)
    origin, peer = nodes[addresses[0]], nodes[addresses[1]]
    pushes: list[tuple[bytes, Address]] = []
    seqs: list[int] = []
    for i in range(ACK_IDS_PER_DATAGRAM + 5):  # one drain, one PUSH datagram, each
        seqs.append(_write(origin, b"k%d" % i, {i: 1}))
        pushes += origin.datagrams_to_send()
    assert len(pushes) == ACK_IDS_PER_DATAGRAM + 5
    for data, _ in pushes:
        peer.receive_datagram(data, addresses[0], NOW)
    acks = peer.datagrams_to_send()
    kinds = [CODEC.open(data)[0] for data, _ in acks]
    assert kinds == [MessageType.ACK, MessageType.ACK]
    assert [len(msg.decode_ack(CODEC.open(data)[1])) for data, _ in acks] == [
        ACK_IDS_PER_DATAGRAM,
        5,
    ]
    assert [origin.acks(seq) for seq in seqs] == [0] * len(seqs)
    for data, _ in acks:
        origin.receive_datagram(data, addresses[1], NOW)
    assert [origin.acks(seq) for seq in seqs] == [1] * len(seqs)
    assert peer.datagrams_to_send() == []  # (nothing owed twice)
