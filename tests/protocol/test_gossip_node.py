"""The gossip node driven by hand: two or three nodes, datagrams passed explicitly."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hearsay.lattice.codec import encode_entry, entry_from_wire, entry_to_wire
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import EnvelopeCodec, Keyring, MessageType
from hearsay.protocol.events import DatagramDropped, KeyChanged, StreamRequest, WriteAcked
from hearsay.protocol.gossip import acks as acks_module
from hearsay.protocol.gossip.shared import SETTLING_BYTES_MIN
from hearsay.protocol.membership import Address, MemberFailed, Membership
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.protocol.presets import LOCAL
from tests.support.gossip_delivery import deliver

NOW = 1_700_000_000_000
VEC = Schema("vector").intern()
HLL = Schema("hll", (14,), 1 << 14).intern()
A, B, C, D = (("127.0.0.1", 7000 + i) for i in range(4))


def _entry(pairs: dict[int, int], schema: Schema = VEC, epoch: int = 0) -> Entry:
    return Entry(epoch, schema, slices={"": MaxVector.from_items(pairs.items())})


def _nodes(*addresses: Address, seed: int = 1, **config: object) -> dict[Address, GossipNode]:
    cfg = NodeConfig(**config)  # type: ignore[arg-type]
    out = {}
    for n, addr in enumerate(addresses):
        node = GossipNode(addr, rng=random.Random(seed * 100 + n), config=cfg, now_ms=NOW)
        for other in addresses:
            node.add_peer(other)
        out[addr] = node
    return out


def _kinds(datagrams: list[tuple[bytes, Address]]) -> list[str]:
    codec = EnvelopeCodec("hearsay")
    return [MessageType(codec.open(d)[0]).name for d, _ in datagrams]


def _write(node: GossipNode, key: bytes, pairs: dict[int, int], now: int = NOW) -> int:
    result = node.keyspace.write(key, VEC, {"": MaxVector.from_items(pairs.items())}, now)
    assert result.delta is not None
    return node.local_delta(key, result.delta, now)


def _events(node: GossipNode) -> list[object]:
    out = []
    while (event := node.next_event()) is not None:
        out.append(event)
    return out


def test_local_write_is_pushed_to_origin_fanout_peers_never_self() -> None:
    nodes = _nodes(A, B, C, D, fanout=2, origin_fanout=2)
    _write(nodes[A], b"k", {1: 5})
    sent = nodes[A].datagrams_to_send()
    assert len(sent) == 2 and len({dest for _, dest in sent}) == 2
    assert all(dest != A for _, dest in sent)
    assert _kinds(sent) == ["PUSH", "PUSH"]


def test_forward_only_growth_and_never_to_sender() -> None:
    nodes = _nodes(A, B, C, D, fanout=3)
    item = msg.push_item(b"k", _entry({1: 5}), True)
    payload = msg.join_items(msg.push_prefix(True, 0), [item])
    data = EnvelopeCodec("hearsay").seal(MessageType.PUSH, payload)
    nodes[B].receive_datagram(data, A, NOW)
    forwarded = nodes[B].datagrams_to_send()
    assert sorted(dest for _, dest in forwarded) == [C, D]  # not back to A, not to self
    events = _events(nodes[B])
    assert isinstance(events[0], KeyChanged) and events[0].delta.vector.items() == [(1, 5)]
    nodes[B].receive_datagram(data, C, NOW)  # the same rumour again: nothing grew
    assert nodes[B].datagrams_to_send() == []
    assert _events(nodes[B]) == []


def test_reply_with_what_we_hold_more_at_mentioned_indices() -> None:
    nodes = _nodes(A, B, fanout=1)
    nodes[B].keyspace.merge(b"k", _entry({0: 5, 7: 9}))
    _write(nodes[A], b"k", {0: 3, 1: 1})
    nodes[B].receive_datagram(nodes[A].datagrams_to_send()[0][0], A, NOW)
    sent = nodes[B].datagrams_to_send()
    replies = [(d, t) for (d, t), k in zip(sent, _kinds(sent), strict=True) if k == "PUSH"]
    assert [t for _, t in replies] == [A]
    pushes = [msg.decode_push(EnvelopeCodec("hearsay").open(d)[1]) for d, _ in replies]
    relay, _, items = pushes[0]
    assert relay is False
    assert [(k, e.vector.items()) for k, e, _ in items] == [(b"k", [(0, 5)])]  # not index 7


def test_exchange_without_state_is_a_read() -> None:
    nodes = _nodes(A, B)
    nodes[B].keyspace.merge(b"k", _entry({0: 5, 7: 9}))
    before = nodes[B].keyspace.bucket_hashes()
    payload = msg.join_items(b"", [msg.exchange_item(b"k", None)])
    nodes[B].receive_datagram(EnvelopeCodec("hearsay").seal(MessageType.EXCHANGE, payload), A, NOW)
    assert np.array_equal(before, nodes[B].keyspace.bucket_hashes())
    nodes[A].receive_datagram(nodes[B].datagrams_to_send()[0][0], B, NOW)
    assert nodes[A].keyspace.entry(b"k") == nodes[B].keyspace.entry(b"k")


def test_unknown_key_from_partial_message_is_stored_and_pulled() -> None:
    nodes = _nodes(A, B, C, fanout=1, pull_fanout=2)
    nodes[A].keyspace.merge(b"k", _entry({0: 1, 2: 2}))
    nodes[C].keyspace.merge(b"k", _entry({0: 1, 2: 2}))
    partial = msg.join_items(msg.push_prefix(True, 0), [msg.push_item(b"k", _entry({9: 1}), False)])
    nodes[B].receive_datagram(EnvelopeCodec("hearsay").seal(MessageType.PUSH, partial), A, NOW)
    sent = nodes[B].datagrams_to_send()
    pulls = [dest for (d, dest), kind in zip(sent, _kinds(sent), strict=True) if kind == "EXCHANGE"]
    assert sorted(pulls) == [A, C]  # the sender and a random other
    assert nodes[B].stats.pulls == 1
    for data, dest in sent:
        nodes[dest].receive_datagram(data, B, NOW)
    deliver(nodes)
    assert nodes[B].keyspace.entry(b"k").vector.items() == [(0, 1), (2, 2), (9, 1)]  # type: ignore[union-attr]


def test_big_entries_are_chunked_under_the_budget() -> None:
    nodes = _nodes(A, B, fanout=1, udp_payload_bytes_max=1400)
    registers = np.random.default_rng(3).integers(1, 50, 1 << 14)
    delta = (
        nodes[A]
        .keyspace.write(b"hll", HLL, {"": MaxVector.from_dense(registers.astype(np.uint8))}, NOW)
        .delta
    )
    assert delta is not None
    nodes[A].local_delta(b"hll", delta, NOW)
    sent = nodes[A].datagrams_to_send()
    assert len(sent) > 10 and all(len(d) <= 1400 for d, _ in sent)
    for data, _ in sent[::-1]:  # any order: every chunk merges on its own
        nodes[B].receive_datagram(data, A, NOW)
    assert nodes[B].keyspace.entry(b"hll") == nodes[A].keyspace.entry(b"hll")


def test_digest_repairs_a_lost_rumour() -> None:
    nodes = _nodes(A, B, C, fanout=1, recent_rounds=3)
    _write(nodes[A], b"k", {3: 3})
    deliver(nodes, drop=lambda d, s, t: True)  # the rumour is lost
    assert nodes[B].keyspace.entry(b"k") is None
    now = NOW
    for _ in range(10):
        now += 200
        for node in nodes.values():
            if (timer := node.get_timer()) is not None and timer <= now:
                node.handle_timer(now)
        deliver(nodes, now)
    assert nodes[B].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")
    assert nodes[C].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")


def test_anti_entropy_repairs_what_rumours_lost() -> None:
    nodes = _nodes(A, B, fanout=1, recent_rounds=0, anti_entropy_interval_ms=1000)
    for i in range(40):
        _write(nodes[A], b"key%d" % i, {i: i + 1})
    nodes[B].keyspace.merge(b"only-b", _entry({1: 1}))
    deliver(nodes, drop=lambda d, s, t: True)
    now = NOW
    kinds: list[str] = []
    for _ in range(4):
        now += 1000
        for node in nodes.values():
            node.handle_timer(now)
        for _ in range(10):
            batch = [(s, d, t) for s, n in nodes.items() for d, t in n.datagrams_to_send()]
            kinds += _kinds([(d, t) for _, d, t in batch])
            for src, data, dest in batch:
                nodes[dest].receive_datagram(data, src, now)
    assert {"AE_GROUPS", "AE_BUCKETS", "AE_KEYS"} <= set(kinds)
    assert np.array_equal(nodes[A].keyspace.bucket_hashes(), nodes[B].keyspace.bucket_hashes())
    assert nodes[A].keyspace.entry(b"only-b") == nodes[B].keyspace.entry(b"only-b")
    # in sync: one small message per round, and nothing more
    kinds.clear()
    now += 1000
    nodes[A].handle_timer(now)
    sent = nodes[A].datagrams_to_send()
    assert _kinds(sent) == ["AE_GROUPS"] and len(sent[0][0]) < 600
    in_sync = nodes[B].stats.ae_in_sync
    nodes[B].receive_datagram(sent[0][0], A, now)
    answer = nodes[B].datagrams_to_send()
    assert _kinds(answer) == ["AE_BUCKETS"] and len(answer[0][0]) < 40  # "in sync"
    assert nodes[B].stats.ae_in_sync == in_sync + 1
    nodes[A].receive_datagram(answer[0][0], B, now)
    assert nodes[A].datagrams_to_send() == []
    assert nodes[A].get_timer() == now + 1000  # a full period, not the quick retry


def test_large_anti_entropy_messages_become_stream_requests() -> None:
    nodes = _nodes(A, B, recent_rounds=0, anti_entropy_interval_ms=1000, ae_groups=1)
    for i in range(400):
        nodes[B].keyspace.merge(b"key-%05d" % i, _entry({1: i + 1}))
    nodes[A].handle_timer(NOW + 1000)
    nodes[B].receive_datagram(nodes[A].datagrams_to_send()[0][0], A, NOW + 1000)
    streams = [e for e in _events(nodes[B]) if isinstance(e, StreamRequest)]
    assert len(streams) == 1 and streams[0].peer == A and len(streams[0].data) > 1400
    nodes[A].receive_stream(streams[0].data, B, NOW + 1001)
    sent = nodes[A].datagrams_to_send()
    assert set(_kinds(sent)) == {"AE_KEYS"} and all(len(d) <= 1400 for d, _ in sent)
    for data, _ in sent:
        nodes[B].receive_datagram(data, A, NOW + 1002)
    deliver(nodes, NOW + 1003)
    assert np.array_equal(nodes[A].keyspace.bucket_hashes(), nodes[B].keyspace.bucket_hashes())
    assert nodes[A].keyspace.stored_count == 400


def test_garbage_and_foreign_cluster_are_dropped_and_counted() -> None:
    nodes = _nodes(A, B)
    b = nodes[B]
    b.receive_datagram(b"\xc1hs\x03\x00\x04prod\x01\x93", A, NOW)  # another cluster (v3)
    b.receive_datagram(EnvelopeCodec("hearsay").seal(MessageType.PUSH, b"\xff\xff"), A, NOW)
    b.receive_datagram(
        EnvelopeCodec("hearsay").seal(MessageType.PUSH, b"\x93\xc3\x00\x91\x93"), A, NOW
    )
    b.receive_datagram(b"\xc1hs\x07\x00\x07hearsay\x01", A, NOW)  # future version
    b.receive_datagram(b"", A, NOW)
    bad_entry = msg.packb(
        [
            True,
            0,
            [[b"k", [1, 0, ["vector", [], 10, False], [0, 0], [["", 1, 99, b"\x01\x01"]]], True]],
        ]
    )
    b.receive_datagram(EnvelopeCodec("hearsay").seal(MessageType.PUSH, bad_entry), A, NOW)
    assert b.stats.dropped == {"foreign-cluster": 1, "malformed": 4, "version": 1}
    reasons = [e.reason for e in _events(b) if isinstance(e, DatagramDropped)]
    assert len(reasons) == 6
    assert b.keyspace.stored_count == 0


def test_encrypted_cluster_and_key_rotation() -> None:
    k1, k2 = bytes(32), bytes(range(32))
    rings = {A: Keyring(k1), B: Keyring(k1)}
    nodes = {
        addr: GossipNode(addr, rng=random.Random(i), keyring=rings[addr], peers=[A, B], now_ms=NOW)
        for i, addr in enumerate((A, B))
    }
    _write(nodes[A], b"k", {1: 1})
    sent = nodes[A].datagrams_to_send()
    assert all(b"vector" not in d for d, _ in sent)
    for data, _ in sent:
        nodes[B].receive_datagram(data, A, NOW)
    assert nodes[B].keyspace.entry(b"k") is not None
    # rotate: install k2 everywhere, switch A, then remove k1 from B
    for ring in rings.values():
        ring.install(k2)
    rings[A].use(k2)
    _write(nodes[A], b"k", {2: 2})
    for data, _ in nodes[A].datagrams_to_send():
        nodes[B].receive_datagram(data, A, NOW)
    rings[B].use(k2)
    rings[B].remove(k1)
    rings[A].remove(k1)
    _write(nodes[A], b"k", {3: 3})
    for data, _ in nodes[A].datagrams_to_send():
        nodes[B].receive_datagram(data, A, NOW)
    assert nodes[B].keyspace.entry(b"k").vector.items() == [(1, 1), (2, 2), (3, 3)]  # type: ignore[union-attr]
    # a plaintext or wrongly keyed packet is refused
    intruder = GossipNode(C, rng=random.Random(9), keyring=Keyring(k1), peers=[B], now_ms=NOW)
    _write(intruder, b"evil", {1: 1})
    for data, _ in intruder.datagrams_to_send():
        nodes[B].receive_datagram(data, C, NOW)
    plain = GossipNode(D, rng=random.Random(8), peers=[B], now_ms=NOW)
    _write(plain, b"evil", {1: 1})
    for data, _ in plain.datagrams_to_send():
        nodes[B].receive_datagram(data, D, NOW)
    assert nodes[B].keyspace.entry(b"evil") is None
    assert nodes[B].stats.dropped == {"decrypt-failed": 1, "unauthenticated": 1}


def test_acks_count_peers_holding_a_write() -> None:
    nodes = _nodes(A, B, C, D, fanout=1, origin_fanout=1)
    seq = _write(nodes[A], b"k", {1: 1})
    deliver(nodes)
    assert nodes[A].acks(seq) == 1
    assert nodes[A].request_acks(seq, 3, NOW) == 1
    deliver(nodes)
    assert nodes[A].acks(seq) == 3
    acked = [e for e in _events(nodes[A]) if isinstance(e, WriteAcked)]
    assert [e.acks for e in acked] == [1, 2, 3]


def test_acks_are_retried_until_enough_peers_hold_the_write() -> None:
    nodes = _nodes(A, B, C, fanout=1, ack_retry_ms=500)
    seq = _write(nodes[A], b"k", {1: 1})
    nodes[A].request_acks(seq, 2, NOW)
    deliver(nodes, drop=lambda d, s, t: True)  # everything lost
    assert nodes[A].acks(seq) == 0
    now = NOW + 500
    nodes[A].handle_timer(now)
    deliver(nodes, now)
    assert nodes[A].acks(seq) == 2


def test_a_peer_counts_once_however_many_acks_it_sends() -> None:
    nodes = _nodes(A, B, cover_retries=0)
    seq = _write(nodes[A], b"k", {1: 1})
    acks = []
    for wait in (False, True):  # the rumour, then a WAIT asking B again before B's ack arrived
        assert not wait or nodes[A].request_acks(seq, 1, NOW) == 0
        for data, dest in nodes[A].datagrams_to_send():
            assert dest == B
            nodes[B].receive_datagram(data, A, NOW)
        acks.append(nodes[B].datagrams_to_send())
        assert _kinds(acks[-1]) == ["ACK"]
    for data, _ in acks[0] + acks[0] + acks[1]:  # the older ack counts at once; then repeats
        nodes[A].receive_datagram(data, B, NOW)
        assert nodes[A].acks(seq) == 1
    assert [(e.seq, e.peer, e.acks) for e in _events(nodes[A]) if isinstance(e, WriteAcked)] == [
        (seq, B, 1)
    ]
    assert nodes[A].request_acks(seq, 1, NOW) == 1 and nodes[A].datagrams_to_send() == []


def test_a_wait_on_a_lone_node_is_answered_by_a_peer_that_joins() -> None:
    lone = GossipNode(A, rng=random.Random(1), config=NodeConfig(ack_retry_ms=500), now_ms=NOW)
    seq = _write(lone, b"k", {1: 1})
    assert lone.request_acks(seq, 1, NOW) == 0 and lone.datagrams_to_send() == []
    assert lone.acks(seq) == 0
    nodes = {A: lone, **_nodes(B, seed=2)}
    lone.add_peer(B)
    nodes[B].add_peer(A)
    now = NOW + 500
    lone.handle_timer(now)
    deliver(nodes, now)
    assert lone.acks(seq) == 1
    assert nodes[B].keyspace.entry(b"k") == lone.keyspace.entry(b"k")


def test_pacing_coalesces_a_burst_of_writes() -> None:
    # The first pushes are delivered late (below), so their acks come late: cover retries
    # (tested on their own) are off here to count the paced rumours alone.
    nodes = _nodes(
        A, B, fanout=1, pacing_rate_per_s=10.0, pacing_burst=2, recent_rounds=0, cover_retries=0
    )
    first = []
    for i in range(50):  # the driver drains after every write: pacing has to hold them
        _write(nodes[A], b"hot", {i: 1})
        first += nodes[A].datagrams_to_send()
    assert len(first) == 2 and nodes[A].stats.paced == 48
    now = NOW
    for _ in range(5):
        now += 200
        nodes[A].handle_timer(now)
        for data, _ in nodes[A].datagrams_to_send():
            nodes[B].receive_datagram(data, A, now)
    assert nodes[B].keyspace.entry(b"hot") is not None
    for data, _ in first:
        nodes[B].receive_datagram(data, A, now)
    assert nodes[B].keyspace.entry(b"hot") == nodes[A].keyspace.entry(b"hot")
    assert nodes[A].stats.datagrams_out <= 4


def test_writes_before_a_drain_leave_as_one_push_and_share_their_acks() -> None:
    nodes = _nodes(A, B, C, fanout=2)
    seqs = [_write(nodes[A], b"hot", {i: 1}) for i in range(20)]
    pushes = nodes[A].datagrams_to_send()
    assert len(pushes) == 2  # one rumour to each of the two peers, carrying all 20 writes
    for data, peer in pushes:
        nodes[peer].receive_datagram(data, A, NOW)
    deliver(nodes)
    assert nodes[B].keyspace.entry(b"hot") == nodes[A].keyspace.entry(b"hot")
    assert [nodes[A].acks(seq) for seq in seqs] == [2] * 20


def test_backoff_halves_the_pacing_rate() -> None:
    nodes = _nodes(A, B)
    nodes[B].receive_datagram(
        EnvelopeCodec("hearsay").seal(MessageType.BACKOFF, msg.packb([1000])), A, NOW
    )
    assert nodes[B].stats.backoffs_received == 1
    assert nodes[B]._outbox.bucket.rate_per_s == NodeConfig().pacing_rate_per_s / 2


def test_membership_supplies_peers_and_failures() -> None:
    addrs = [A, B, C]
    nodes: dict[Address, GossipNode] = {}
    for i, addr in enumerate(addrs):
        rng = random.Random(i)
        member = Membership(f"n{i}", 1, addr, LOCAL, rng, now_ms=NOW)
        nodes[addr] = GossipNode(
            addr, rng=rng, membership=member, config=NodeConfig.from_preset(LOCAL), now_ms=NOW
        )
    for addr in addrs[1:]:
        nodes[addr].join([A], NOW)
    now = NOW
    for _ in range(40):
        now += 50
        for node in nodes.values():
            if (t := node.get_timer()) is not None and t <= now:
                node.handle_timer(now)
        deliver(nodes, now)
    assert sorted(nodes[A].peers) == [B, C]
    _write(nodes[A], b"k", {1: 1}, now)
    deliver(nodes, now)
    assert nodes[C].keyspace.entry(b"k") is not None
    del nodes[C]  # crash
    failed = []
    for _ in range(400):
        now += 50
        for node in nodes.values():
            if (t := node.get_timer()) is not None and t <= now:
                node.handle_timer(now)
        deliver(nodes, now)
        failed += [e for e in _events(nodes[A]) if isinstance(e, MemberFailed)]
        if failed:
            break
    assert [e.node_id for e in failed] == ["n2"]
    assert nodes[A].peers == [B]


def test_wire_entry_helper_is_canonical() -> None:
    """Equal entries have equal wire forms however they were built (pair order, duplicate
    pairs, merge order), and the wire form reads back as the same entry."""
    pairs = {1: 1, 7: 3, 500: 9, 2**20: 200}
    forward = Entry(0, VEC, slices={"": MaxVector.from_items(pairs.items())})
    backward = Entry(0, VEC, slices={"": MaxVector.from_items(reversed(pairs.items()))})
    doubled = Entry(0, VEC, slices={"": MaxVector.from_items([(7, 1), *pairs.items(), (1, 1)])})
    merged = _entry({500: 9, 2**20: 200})
    merged.merge(_entry({1: 1, 7: 3}))
    wire = entry_to_wire(forward)
    for same in (backward, doubled, merged):
        assert same == forward
        assert entry_to_wire(same) == wire
        assert encode_entry(same) == encode_entry(forward)
    assert entry_from_wire(wire) == forward
    assert entry_to_wire(entry_from_wire(wire)) == wire
    assert entry_to_wire(_entry({**pairs, 7: 4})) != wire


def test_a_key_a_digest_showed_missing_is_pulled_again_until_it_arrives() -> None:
    nodes = _nodes(A, B, C, fanout=1, pull_retries=3)
    for node in (nodes[A], nodes[C]):
        node.keyspace.merge(b"k", _entry({4: 4}))
    digest = msg.join_items(b"", [msg.hash_item(b"k", nodes[A].keyspace.key_hash(b"k"))])
    nodes[B].receive_datagram(EnvelopeCodec("hearsay").seal(MessageType.DIGEST, digest), A, NOW)
    assert _kinds(nodes[B].datagrams_to_send()) == ["EXCHANGE"]  # lost on the way
    now = NOW + nodes[B].config.gossip_interval_ms
    nodes[B].handle_timer(now)
    retry = nodes[B].datagrams_to_send()
    assert _kinds(retry) == ["EXCHANGE"] and retry[0][1] in (A, C)
    nodes[retry[0][1]].receive_datagram(retry[0][0], B, now)
    deliver(nodes, now)
    assert nodes[B].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")
    nodes[B].handle_timer(now + 1000)
    assert "EXCHANGE" not in _kinds(nodes[B].datagrams_to_send())  # the reply ended the pulls


_MID = {1000 * i: 1 for i in range(250)}  # 1.25 KB, spread out: stays packed pairs (a Top-K's size)
_BIG = {i: 1 for i in range(0, 1_200_000, 2)}  # 600,000 bits: 150 KB (a Bloom filter)


@pytest.mark.parametrize("kind", [MessageType.DIGEST, MessageType.AE_KEYS], ids=["digest", "ae"])
@pytest.mark.parametrize("pairs", [_MID, _BIG], ids=["mid", "big"])
def test_a_key_over_a_datagram_still_changing_here_is_not_exchanged_until_it_settles(
    kind: MessageType, pairs: dict[int, int]
) -> None:
    """A key too big to share a datagram (a Top-K, a Bloom filter) that changed here within
    the last round differs from a peer's by writes in flight: neither a digest nor an
    anti-entropy round sends an EXCHANGE carrying all of it while the writes go on (each went
    alone, mostly over a stream). Once it has been quiet for a round both answer again; a
    small key is answered at once."""
    nodes = _nodes(A, B, pull_retries=0)
    assert _entry(pairs).payload_bytes() > SETTLING_BYTES_MIN
    assert pairs is _BIG or _entry(pairs).payload_bytes() < 2 * SETTLING_BYTES_MIN
    for key, held in ((b"over", pairs), (b"small", {1: 1})):
        _write(nodes[B], key, held, NOW)
        nodes[A].keyspace.merge(key, _entry({**held, 3: 1}))
    nodes[B].datagrams_to_send()  # (B's own pushes: not needed here)
    codec = EnvelopeCodec("hearsay")

    def exchanged(key: bytes, now: int) -> list[bytes]:
        their_hash = nodes[A].keyspace.key_hash(key)
        if kind == MessageType.DIGEST:
            payload = msg.join_items(b"", [msg.hash_item(key, their_hash)])
        else:
            block = msg.packb([nodes[B].keyspace.bucket_of(key), [[key, their_hash]]])
            payload = msg.join_items(b"\x92" + msg.packb(1), [block])
        nodes[B].receive_datagram(codec.seal(kind, payload), A, now)
        sent = [data for data, _ in nodes[B].datagrams_to_send()]
        sent += [e.data for e in _events(nodes[B]) if isinstance(e, StreamRequest)]  # (big)
        opened = [codec.open(data, bytes_max=len(data)) for data in sent]
        return [
            key
            for sent_kind, body in opened
            if sent_kind == MessageType.EXCHANGE
            for key, _ in msg.decode_exchange(body)
        ]

    assert exchanged(b"small", NOW + 10) == [b"small"]
    assert exchanged(b"over", NOW + 10) == []
    settled = NOW + nodes[B].config.gossip_interval_ms
    assert exchanged(b"over", settled) == [b"over"]


def test_anti_entropy_pushes_lately_changed_keys_at_once() -> None:
    nodes = _nodes(A, B, recent_rounds=0)
    _write(nodes[A], b"fresh", {1: 1})
    nodes[A].datagrams_to_send()  # the rumour is lost
    nodes[B].handle_timer(nodes[B].get_timer() or NOW)
    groups = nodes[B].datagrams_to_send()
    assert _kinds(groups) == ["AE_GROUPS"]
    nodes[A].receive_datagram(groups[0][0], B, NOW + 1)
    answer = nodes[A].datagrams_to_send()
    assert _kinds(answer) == ["PUSH", "AE_BUCKETS"]
    nodes[B].receive_datagram(answer[0][0], A, NOW + 2)
    assert nodes[B].keyspace.entry(b"fresh") == nodes[A].keyspace.entry(b"fresh")


def test_an_overloaded_node_asks_senders_to_back_off() -> None:
    nodes = _nodes(A, B, overload_datagrams_per_s=2, recent_rounds=0)
    sent = []
    for i in range(4):  # four drains: four datagrams (one drain's writes share one)
        _write(nodes[A], b"k%d" % i, {1: 1})
        sent += nodes[A].datagrams_to_send()
    assert len(sent) == 4
    for data, _ in sent:
        nodes[B].receive_datagram(data, A, NOW)
    answer = nodes[B].datagrams_to_send()
    assert _kinds(answer).count("BACKOFF") == 1  # once per sender per second
    rate = nodes[A]._outbox.bucket.rate_per_s
    for data, _ in answer:
        nodes[A].receive_datagram(data, B, NOW)
    assert nodes[A]._outbox.bucket.rate_per_s == rate / 2


def test_leave_is_announced_and_peers_drop_the_node() -> None:
    addrs = [A, B]
    nodes: dict[Address, GossipNode] = {}
    for i, addr in enumerate(addrs):
        rng = random.Random(i)
        member = Membership(f"n{i}", 1, addr, LOCAL, rng, now_ms=NOW)
        nodes[addr] = GossipNode(
            addr, rng=rng, membership=member, config=NodeConfig.from_preset(LOCAL), now_ms=NOW
        )
    nodes[B].join([A], NOW)
    now = NOW
    for _ in range(20):
        now += 50
        for node in nodes.values():
            if (t := node.get_timer()) is not None and t <= now:
                node.handle_timer(now)
        deliver(nodes, now)
    assert nodes[A].peers == [B]
    nodes[B].leave(now)
    for _ in range(20):
        now += 50
        for node in nodes.values():
            if (t := node.get_timer()) is not None and t <= now:
                node.handle_timer(now)
        deliver(nodes, now)
    assert nodes[A].peers == []


def test_vignette_plaintext_is_refused_under_a_keyring() -> None:
    import msgpack

    node = GossipNode(A, rng=random.Random(3), keyring=Keyring(b"k" * 32), now_ms=NOW)
    raw = msgpack.packb({"key": "vig", "vector": {0: 5}, "full": True})
    node.receive_datagram(raw, B, NOW)
    assert node.keyspace.entry(b"vig") is None
    assert node.stats.dropped == {"unauthenticated": 1}
    assert node.datagrams_to_send() == []


def _push_relays(datagrams: list[tuple[bytes, Address]]) -> list[bool | int]:
    codec = EnvelopeCodec("hearsay")
    return [msg.decode_push(codec.open(d)[1])[0] for d, _ in datagrams]


def test_a_small_cluster_gets_a_write_in_one_hop_and_forwards_little() -> None:
    nodes = _nodes(A, B, C, D, fanout=3, origin_fanout=8, covered_relay_fanout=1)
    _write(nodes[A], b"k", {1: 5})
    sent = nodes[A].datagrams_to_send()
    assert sorted(dest for _, dest in sent) == [B, C, D]  # every peer, at once
    assert _push_relays(sent) == [1, 1, 1]  # "forward to one peer at most"
    for data, dest in sent:
        nodes[dest].receive_datagram(data, A, NOW)
    for node in (nodes[B], nodes[C], nodes[D]):
        out = node.datagrams_to_send()
        pushes = [dest for (_, dest), kind in zip(out, _kinds(out), strict=True) if kind == "PUSH"]
        assert len(pushes) == 1 and A not in pushes  # one forward, never back to the sender
        assert node.keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")


def test_by_default_a_covered_write_is_not_forwarded_and_nothing_bounces_back() -> None:
    """The origin reached every peer: receivers only ack, so a write costs one hop per peer
    (a forward made a sibling holding newer state reply to it, multiplying the work)."""
    nodes = _nodes(A, B, C, D)
    for value in (5, 6, 7):  # a stream of writes to one key, each drained on its own
        _write(nodes[A], b"k", {1: value})
        sent = nodes[A].datagrams_to_send()
        assert sorted(dest for _, dest in sent) == [B, C, D]
        assert _push_relays(sent) == [0, 0, 0]
        for data, dest in sent:
            nodes[dest].receive_datagram(data, A, NOW)
        for node in (nodes[B], nodes[C], nodes[D]):
            out = node.datagrams_to_send()
            assert _kinds(out) == ["ACK"] and [dest for _, dest in out] == [A]
            assert node.keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")


def test_a_large_cluster_starts_a_write_origin_fanout_wide() -> None:
    peers = [("127.0.0.1", 8000 + i) for i in range(10)]
    nodes = _nodes(A, *peers, fanout=2, origin_fanout=5)
    _write(nodes[A], b"k", {1: 5})
    sent = nodes[A].datagrams_to_send()
    assert len({dest for _, dest in sent}) == 5
    assert _push_relays(sent) == [True] * 5  # an ordinary rumour: receivers use their fanout


def test_receivers_cap_the_relay_fanout_a_sender_asks_for() -> None:
    nodes = _nodes(A, B, C, D, fanout=1)
    item = msg.push_item(b"k", _entry({1: 5}), True)
    payload = msg.join_items(msg.push_prefix(msg.RELAY_FANOUT_MAX, 0), [item])
    nodes[B].receive_datagram(EnvelopeCodec("hearsay").seal(MessageType.PUSH, payload), A, NOW)
    assert len(nodes[B].datagrams_to_send()) == 1  # its own fanout, not 255


def test_relay_field_is_checked() -> None:
    item = msg.push_item(b"k", _entry({1: 5}), True)
    for relay in (True, False, 0, 7, msg.RELAY_FANOUT_MAX):
        payload = msg.join_items(msg.push_prefix(relay, 0), [item])
        assert msg.decode_push(payload)[0] == relay
    for bad in (msg.RELAY_FANOUT_MAX + 1, -1, "x", 1.5):
        payload = b"\x93" + msg.packb(bad) + msg.packb(0) + msg.join_items(b"", [item])
        try:
            msg.decode_push(payload)
        except msg.PayloadError:
            continue
        raise AssertionError(f"relay {bad!r} was accepted")


def test_origin_pushes_again_to_peers_that_did_not_ack() -> None:
    nodes = _nodes(A, B, C, D, covered_relay_fanout=0, cover_retry_ms=50, cover_retries=2)
    seq = _write(nodes[A], b"k", {1: 5})
    lost_to_d = lambda data, src, dest: src == A and dest == D  # noqa: E731
    deliver(nodes, drop=lost_to_d)
    assert nodes[A].acks(seq) == 2 and nodes[D].keyspace.entry(b"k") is None
    assert nodes[A].get_timer() == NOW + 50
    nodes[A].handle_timer(NOW + 50)
    retry = nodes[A].datagrams_to_send()
    assert [dest for _, dest in retry] == [D] and _kinds(retry) == ["PUSH"]
    deliver(nodes, NOW + 50, drop=lost_to_d)  # lost again
    nodes[A].handle_timer(NOW + 100)
    retry = nodes[A].datagrams_to_send()
    assert [dest for _, dest in retry] == [D]
    for data, dest in retry:
        nodes[dest].receive_datagram(data, A, NOW + 100)
    deliver(nodes, NOW + 100)
    assert nodes[A].acks(seq) == 3
    assert nodes[D].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")
    nodes[A].handle_timer(NOW + 150)  # retries used up and everyone acked: nothing more
    assert [k for k in _kinds(nodes[A].datagrams_to_send()) if k == "PUSH"] == []


def _retried_items(nodes: dict[Address, GossipNode], now: int) -> list[tuple[bytes, Entry]]:
    """The items of the PUSH datagrams node A retries to B at ``now`` (delivered)."""
    nodes[A].handle_timer(now)
    retry = nodes[A].datagrams_to_send()
    assert {dest for _, dest in retry} == {B} and "PUSH" in _kinds(retry)
    found: list[tuple[bytes, Entry]] = []
    for (data, dest), kind in zip(retry, _kinds(retry), strict=True):
        if kind == "PUSH":
            _relay, _ack, items = msg.decode_push(EnvelopeCodec("hearsay").open(data)[1])
            found.extend((key, entry) for key, entry, _whole in items)
        nodes[dest].receive_datagram(data, A, now)
    return found


def test_a_keys_retried_writes_share_one_push_and_one_ack_acknowledges_them_all() -> None:
    """Writes to one key that a peer missed are retried in one push, each small write as its
    own delta, and that push's ACK acknowledges each."""
    nodes = _nodes(A, B, covered_relay_fanout=0, cover_retry_ms=50, cover_retries=1)
    seqs = []
    for i in range(1, 4):  # three drains: three records (one drain's writes share one)
        seqs.append(_write(nodes[A], b"k", {i: 5}, NOW + i))
        assert len(nodes[A].datagrams_to_send()) == 1  # each first push lost
    items = _retried_items(nodes, NOW + 60)
    assert [(key, dict(entry.vector.items())) for key, entry in items] == [
        (b"k", {1: 5}),
        (b"k", {2: 5}),
        (b"k", {3: 5}),
    ]
    deliver(nodes, NOW + 60)
    assert [nodes[A].acks(seq) for seq in seqs] == [1, 1, 1]
    assert nodes[B].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")


def test_a_small_write_to_a_big_key_is_retried_as_itself_a_big_one_as_the_keys_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retry of a few pairs written to a big key (a BF.ADD to a 1M-capacity filter) sends
    those pairs, not the key's state (a retry cost the key's size); a write too big for the
    budget of items kept past their writes' shares is retried as the key's state, once per
    key, which holds it."""
    monkeypatch.setattr(acks_module, "RETRY_ITEMS_BUDGET_BYTES", 1_000)
    nodes = _nodes(A, B, covered_relay_fanout=0, cover_retry_ms=50, cover_retries=1)
    big = {i: 1 for i in range(0, 200_000, 3)}
    _write(nodes[A], b"k", big)
    deliver(nodes)  # B holds the big key
    assert nodes[B].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")
    seq = _write(nodes[A], b"k", {7: 1, 200_001: 1}, NOW + 1)
    assert len(nodes[A].datagrams_to_send()) == 1  # its first push lost
    items = _retried_items(nodes, NOW + 60)
    assert [(key, dict(entry.vector.items())) for key, entry in items] == [
        (b"k", {7: 1, 200_001: 1})
    ]
    deliver(nodes, NOW + 60)
    assert nodes[A].acks(seq) == 1
    assert nodes[B].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")
    many = {i: 1 for i in range(1, 200_000, 3)}  # past the budget: the key's state is sent
    seq = _write(nodes[A], b"k", many, NOW + 100)
    assert nodes[A].datagrams_to_send()  # its first push lost
    state = nodes[A].keyspace.entry(b"k")
    assert state is not None
    items = _retried_items(nodes, NOW + 200)
    assert {key for key, _ in items} == {b"k"}
    assert sum(len(entry.vector) for _, entry in items) == len(state.vector) > len(many)
    deliver(nodes, NOW + 200)
    assert nodes[A].acks(seq) == 1
    assert nodes[B].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")


def test_items_past_their_writes_share_are_kept_within_a_budget_released_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write whose items pass one write's share (a pipelined run's joined BF.ADDs) is
    retried as those items while the budget for such items holds; past it, as the key's
    state; and the budget comes back once the writes holding it are no longer tracked."""
    medium = {200_001 + 997 * j: 1 for j in range(400)}  # ~2 KB of pairs: past 512 bytes
    size = len(msg.push_item(b"k", _entry(medium), False))
    assert size > 3 * acks_module.RETRY_ITEMS_BYTES_MAX
    monkeypatch.setattr(acks_module, "RETRY_ITEMS_BUDGET_BYTES", size + 100)
    nodes = _nodes(A, B, covered_relay_fanout=0, cover_retry_ms=50, cover_retries=1,
                   write_track_max=16)  # fmt: skip
    _write(nodes[A], b"k", {i: 1 for i in range(0, 200_000, 3)})
    deliver(nodes)  # B holds the big key
    now = NOW

    def retried_pairs(pairs: dict[int, int]) -> int:
        nonlocal now
        now += 100
        _write(nodes[A], b"k", pairs, now)
        assert nodes[A].datagrams_to_send()  # its first push lost
        items = _retried_items(nodes, now + 60)
        deliver(nodes, now + 60)
        assert nodes[B].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")
        return sum(len(entry.vector) for _, entry in items)

    assert retried_pairs(medium) == len(medium)  # kept: the budget holds it
    more = {200_002 + 997 * j: 1 for j in range(400)}
    held = nodes[A].keyspace.entry(b"k")
    assert held is not None
    before = len(held.vector)
    assert retried_pairs(more) == before + len(more)  # past the budget: the state
    for i in range(16):  # the writes holding the budget leave the tracked ones
        now += 100
        _write(nodes[A], b"small", {i: 1}, now)
        deliver(nodes, now)
    again = {200_003 + 997 * j: 1 for j in range(400)}
    assert retried_pairs(again) == len(again)  # kept again


def test_a_drain_of_many_small_writes_to_a_big_key_is_retried_as_their_pairs() -> None:
    """Dozens of small writes to one big key in one drain (50 clients' BF.ADDs to one
    filter) are joined past one write's share of kept items, but within their own shares:
    a retry sends their joined pairs, not the key's state (which went over a stream, 1.2 MB
    for a 1M-capacity filter, at every retry under load)."""
    nodes = _nodes(A, B, covered_relay_fanout=0, cover_retry_ms=50, cover_retries=1)
    _write(nodes[A], b"k", {i: 1 for i in range(0, 200_000, 3)})
    deliver(nodes)  # B holds the big key
    written: dict[int, int] = {}
    seqs = []
    for w in range(40):  # (one drain: no datagrams taken in between)
        pairs = {200_001 + 100 * w + j: 1 for j in range(4)}
        written.update(pairs)
        seqs.append(_write(nodes[A], b"k", pairs, NOW + 1))
    first = nodes[A].datagrams_to_send()  # the drain's push, lost
    pushed = [
        item
        for (data, _), kind in zip(first, _kinds(first), strict=True)
        if kind == "PUSH"
        for item in msg.decode_push(EnvelopeCodec("hearsay").open(data)[1])[2]
    ]
    assert [dict(entry.vector.items()) for _, entry, _ in pushed] == [written]
    size = len(msg.push_item(b"k", pushed[0][1], False))
    assert acks_module.RETRY_ITEMS_BYTES_MAX < size <= 40 * acks_module.RETRY_ITEMS_BYTES_MAX
    items = _retried_items(nodes, NOW + 60)
    assert [(key, dict(entry.vector.items())) for key, entry in items] == [(b"k", written)]
    deliver(nodes, NOW + 60)
    assert [nodes[A].acks(seq) for seq in seqs] == [1] * 40
    assert nodes[B].keyspace.entry(b"k") == nodes[A].keyspace.entry(b"k")


@pytest.mark.parametrize("drained_first", [True, False], ids=["push-lost", "before-drain"])
def test_an_ack_request_sends_the_writes_own_pairs(drained_first: bool) -> None:
    """WAIT (and the replication-lag probe) asking a peer to hold a small write to a big key
    sends that write's pairs, not the key's state: after its drain's push was lost, and
    when asked before its drain (the drain goes first: the write had no items kept yet, and
    a 1.2 MB Bloom filter went at every probe)."""
    nodes = _nodes(A, B, C, fanout=1, origin_fanout=1, cover_retries=0)
    _write(nodes[A], b"k", {i: 1 for i in range(0, 200_000, 3)})
    deliver(nodes)
    deliver(nodes, NOW + 1000)
    seq = _write(nodes[A], b"k", {5: 1}, NOW + 2000)
    if drained_first:
        nodes[A].datagrams_to_send()  # its first push lost
    nodes[A].request_acks(seq, 2, NOW + 2000)
    asked = nodes[A].datagrams_to_send()
    assert asked and _kinds(asked) == ["PUSH"] * len(asked)
    assert {dest for _, dest in asked} == {B, C}
    for data, _dest in asked:
        _relay, _ack, items = msg.decode_push(EnvelopeCodec("hearsay").open(data)[1])
        assert [(key, dict(entry.vector.items())) for key, entry, _ in items] == [(b"k", {5: 1})]
    for data, dest in asked:
        nodes[dest].receive_datagram(data, A, NOW + 2000)
    deliver(nodes, NOW + 2000)
    assert nodes[A].acks(seq) == 2
    assert nodes[B].keyspace.entry(b"k") == nodes[C].keyspace.entry(b"k")


def test_origin_stops_covering_after_its_retries() -> None:
    nodes = _nodes(A, B, C, cover_retry_ms=50, cover_retries=1)
    _write(nodes[A], b"k", {1: 5})
    assert len(nodes[A].datagrams_to_send()) == 2  # both lost
    nodes[A].handle_timer(NOW + 50)
    assert sorted(dest for _, dest in nodes[A].datagrams_to_send()) == [B, C]
    nodes[A].handle_timer(NOW + 100)
    assert [k for k in _kinds(nodes[A].datagrams_to_send()) if k == "PUSH"] == []


def test_cover_retries_wait_for_the_round_trip_acks_took() -> None:
    """Acks that took 200 ms: a retry 50 ms after the next write would only re-send what the
    peers are about to acknowledge, so the origin waits a measured round trip and more."""
    nodes = _nodes(A, B, C, cover_retry_ms=50, cover_retries=1)
    _write(nodes[A], b"k", {1: 5})
    deliver(nodes, NOW + 200)  # every datagram (the pushes, their acks) arrives at NOW + 200
    assert nodes[A].acks(1) == 2
    later = NOW + 200
    _write(nodes[A], b"k", {1: 6}, later)
    assert len([k for k in _kinds(nodes[A].datagrams_to_send()) if k == "PUSH"]) == 2  # lost
    nodes[A].handle_timer(later + 50)
    assert [k for k in _kinds(nodes[A].datagrams_to_send()) if k == "PUSH"] == []
    nodes[A].handle_timer(later + 600)  # the 200 ms round trip and four deviations passed
    retry = nodes[A].datagrams_to_send()
    pushed = [dest for (_, dest), kind in zip(retry, _kinds(retry), strict=True) if kind == "PUSH"]
    assert sorted(pushed) == [B, C]


def _retried_keys(node: GossipNode, now: int) -> list[bytes]:
    """The keys of the cover retries ``node`` sends at ``now`` (sent nowhere): PUSHes asking
    for an ack that nobody forwards."""
    node.handle_timer(now)
    keys: list[bytes] = []
    for data, _dest in node.datagrams_to_send():
        kind, payload = EnvelopeCodec("hearsay").open(data)
        if kind == MessageType.PUSH:
            relay, ack_id, items = msg.decode_push(payload)
            if relay == 0 and relay is not False and ack_id:
                keys.extend(key for key, _entry, _whole in items)
    return keys


def test_cover_retries_take_the_due_writes_only_and_never_a_forgotten_one() -> None:
    """Writes pushed at different times are retried each at its own time; a record the
    table dropped (more writes than ``write_track_max``) is never retried; what keeps the
    due times stays bounded however many writes pass."""
    nodes = _nodes(
        A, B, covered_relay_fanout=0, cover_retry_ms=50, cover_retries=1, write_track_max=8
    )
    for i in range(20):
        _write(nodes[A], b"k%02d" % i, {1: 5}, NOW + i)
        nodes[A].datagrams_to_send()  # lost
    assert _retried_keys(nodes[A], NOW + 49) == []
    assert sorted(_retried_keys(nodes[A], NOW + 64)) == [b"k12", b"k13", b"k14"]
    assert sorted(_retried_keys(nodes[A], NOW + 69)) == [b"k%02d" % i for i in range(15, 20)]
    assert _retried_keys(nodes[A], NOW + 1_000) == []
    for i in range(2_000):
        _write(nodes[A], b"w%d" % (i % 50), {1 + i // 50: 5}, NOW + 2_000 + i)
        assert nodes[A].datagrams_to_send()  # lost
    assert len(nodes[A]._acks._cover_due) <= 2 * 8 + 64
    last = [b"w%d" % (i % 50) for i in range(1_992, 2_000)]
    assert sorted(_retried_keys(nodes[A], NOW + 4_100)) == sorted(last)


def _pushes_to(node: GossipNode) -> list[Address]:
    sent = node.datagrams_to_send()
    return [dest for (_, dest), kind in zip(sent, _kinds(sent), strict=True) if kind == "PUSH"]


def test_a_peer_still_acking_older_pushes_is_not_sent_a_retry() -> None:
    """B works through a backlog: it acks the first write's push 40 ms late and has not read
    the second's yet. Retrying the second would only lengthen B's backlog (measured under
    load: most writes were retried, as whole keys), so the origin waits until B reads it."""
    nodes = _nodes(A, B, covered_relay_fanout=0, cover_retry_ms=50, cover_retries=1)
    _write(nodes[A], b"k1", {1: 5})
    first = nodes[A].datagrams_to_send()
    second_seq = _write(nodes[A], b"k2", {1: 5}, NOW + 1)
    second = nodes[A].datagrams_to_send()
    for data, dest in first:
        nodes[dest].receive_datagram(data, A, NOW + 40)
    deliver(nodes, NOW + 40)  # B's ack of the first push
    nodes[A].handle_timer(NOW + 51)  # the second write's retry was due
    assert _pushes_to(nodes[A]) == []
    for data, dest in second:
        nodes[dest].receive_datagram(data, A, NOW + 60)
    deliver(nodes, NOW + 60)
    assert nodes[A].acks(second_seq) == 1
    nodes[A].handle_timer(NOW + 1_000)
    assert _pushes_to(nodes[A]) == []


def test_a_push_a_peer_skipped_is_retried_as_soon_as_it_was_due() -> None:
    """B acked a push sent after the first write's: that write's push was lost, and the
    retry leaves when due even though B answers promptly."""
    nodes = _nodes(A, B, covered_relay_fanout=0, cover_retry_ms=50, cover_retries=1)
    first_seq = _write(nodes[A], b"k1", {1: 5})
    assert len(nodes[A].datagrams_to_send()) == 1  # lost
    _write(nodes[A], b"k2", {1: 5}, NOW + 1)
    deliver(nodes, NOW + 10)  # the second push and its ack
    nodes[A].handle_timer(NOW + 50)
    retry = nodes[A].datagrams_to_send()
    assert [dest for _, dest in retry] == [B] and _kinds(retry) == ["PUSH"]
    for data, dest in retry:
        nodes[dest].receive_datagram(data, A, NOW + 50)
    deliver(nodes, NOW + 50)
    assert nodes[A].acks(first_seq) == 1
    assert nodes[B].keyspace.entry(b"k1") == nodes[A].keyspace.entry(b"k1")


def _run_membership(nodes: dict[Address, GossipNode], now: int, steps: int) -> int:
    for _ in range(steps):
        now += 50
        for node in nodes.values():
            if (t := node.get_timer()) is not None and t <= now:
                node.handle_timer(now)
        deliver(nodes, now)
    return now


def test_a_lone_node_keeps_no_rumour_state_and_a_later_joiner_converges() -> None:
    cfg = NodeConfig.from_preset(LOCAL)
    nodes: dict[Address, GossipNode] = {}
    for i, addr in enumerate((A, B)):
        rng = random.Random(i)
        member = Membership(f"n{i}", 1, addr, LOCAL, rng, now_ms=NOW)
        nodes[addr] = GossipNode(addr, rng=rng, membership=member, config=cfg, now_ms=NOW)
    lone = nodes[A]
    writes = 3 * cfg.changed_keys_max  # more keys than any of the node's bounded tables hold
    seqs = [_write(lone, b"key%d" % i, {i % 100: i + 1}, NOW) for i in range(writes)]
    assert seqs == list(range(1, writes + 1))
    # Nothing to send, no rumour queued, no round armed, and no table growing per key.
    assert not lone.has_output() and lone.datagrams_to_send() == []
    assert lone._tail.recent == {} and lone._rumours.local == {}
    assert len(lone._tail.changed) <= cfg.changed_keys_max
    assert len(lone._acks._writes) <= cfg.write_track_max
    # B joins later: membership makes them peers, anti-entropy brings every key over.
    nodes[B].join([A], NOW)
    now = NOW
    for _ in range(400):  # bounded: 20 s of virtual time
        now = _run_membership(nodes, now, 1)
        if np.array_equal(lone.keyspace.bucket_hashes(), nodes[B].keyspace.bucket_hashes()):
            break
    assert lone.peers == [B]
    assert nodes[B].keyspace.stored_count == writes
    assert np.array_equal(lone.keyspace.bucket_hashes(), nodes[B].keyspace.bucket_hashes())
    # With a peer, a write is a rumour again and B gets it at once.
    _write(lone, b"after", {1: 1}, now)
    assert lone.has_output()
    deliver(nodes, now)
    assert nodes[B].keyspace.entry(b"after") == lone.keyspace.entry(b"after")


def test_recent_keys_are_dropped_once_every_peer_is_gone() -> None:
    nodes = _nodes(A, B, recent_rounds=5)
    for i in range(10):
        _write(nodes[A], b"k%d" % i, {1: 1})
    assert len(nodes[A]._tail.recent) == 10
    nodes[A].remove_peer(B)
    nodes[A].handle_timer(NOW + nodes[A].config.gossip_interval_ms)
    assert nodes[A]._tail.recent == {}
