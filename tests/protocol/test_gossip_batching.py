"""One drain's pushes share datagrams: the batched path gives the state and acks one push per
write gives (property), in fewer datagrams."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import EnvelopeCodec, MessageType
from hearsay.protocol.membership import Address
from hearsay.protocol.node import GossipNode, NodeConfig
from tests.support.gossip_delivery import NOW, deliver

VEC = Schema("vector").intern()
A, B, C = (("127.0.0.1", 7100 + i) for i in range(3))

_writes = st.lists(
    st.tuples(
        st.sampled_from([b"a", b"b", b"c", b"d", b"e"]),
        st.dictionaries(st.integers(0, 300), st.integers(1, 1 << 40), min_size=1, max_size=4),
        st.booleans(),  # drain after this write
    ),
    min_size=1,
    max_size=40,
)


def _nodes(**config: object) -> dict[Address, GossipNode]:
    cfg = NodeConfig(**config)  # type: ignore[arg-type]
    out = {}
    for n, addr in enumerate((A, B, C)):
        node = GossipNode(addr, rng=random.Random(n), config=cfg, now_ms=NOW)
        for other in (A, B, C):
            node.add_peer(other)
        out[addr] = node
    return out


def _run(
    writes: list[tuple[bytes, dict[int, int], bool]], batched: bool, **config: object
) -> tuple[dict[Address, GossipNode], list[int], int]:
    """Writes to A; drained after every write (one push each) or where ``writes`` says."""
    nodes = _nodes(**config)
    seqs, moved = [], 0
    for i, (key, pairs, drain) in enumerate(writes):
        result = nodes[A].keyspace.write(key, VEC, {"": MaxVector.from_items(pairs.items())}, NOW)
        if result.delta is not None:
            seqs.append(nodes[A].local_delta(key, result.delta, NOW))
        if not batched or drain or i == len(writes) - 1:
            moved += deliver(nodes)
    return nodes, seqs, moved


@settings(max_examples=60, deadline=None)
@given(_writes)
def test_batched_pushes_give_the_state_and_acks_of_one_push_per_write(
    writes: list[tuple[bytes, dict[int, int], bool]],
) -> None:
    alone, alone_seqs, alone_moved = _run(writes, batched=False)
    batched, batched_seqs, batched_moved = _run(writes, batched=True)
    held = alone[A].keyspace
    for nodes in (alone, batched):
        for node in nodes.values():
            for key, _, _ in writes:
                assert node.keyspace.entry(key) == held.entry(key)
    assert [alone[A].acks(s) for s in alone_seqs] == [2] * len(alone_seqs)
    assert [batched[A].acks(s) for s in batched_seqs] == [2] * len(batched_seqs)
    assert batched_moved <= alone_moved


def test_a_drain_of_many_keys_is_one_push_per_peer_and_one_ack_acks_them_all() -> None:
    nodes = _nodes()
    seqs = []
    for i in range(20):  # (34 such items fill a datagram)
        key = b"k%d" % i
        result = nodes[A].keyspace.write(key, VEC, {"": MaxVector.from_items([(i, 1)])}, NOW)
        assert result.delta is not None
        seqs.append(nodes[A].local_delta(key, result.delta, NOW))
    pushes = nodes[A].datagrams_to_send()
    codec = EnvelopeCodec("hearsay")
    assert sorted(peer for _, peer in pushes) == [B, C]
    for data, peer in pushes:
        kind, payload = codec.open(data)
        assert kind == MessageType.PUSH
        assert len(msg.decode_push(payload)[2]) == 20
        nodes[peer].receive_datagram(data, A, NOW)
    acks = [
        (data, peer)
        for peer in (B, C)
        for data, to in nodes[peer].datagrams_to_send()
        if to == A  # (each also relays to the other, covered_relay_fanout)
    ]
    assert [codec.open(data)[0] for data, _ in acks] == [MessageType.ACK] * 2
    for data, peer in acks:
        nodes[A].receive_datagram(data, peer, NOW)
    assert [nodes[A].acks(s) for s in seqs] == [2] * 20


def _write_and_drain(nodes: dict[Address, GossipNode], keys: list[bytes]) -> list[bytes]:
    """Write ``keys`` to A (one pair each), drain A once and deliver: A's PUSHes of the drain."""
    for i, key in enumerate(keys):
        result = nodes[A].keyspace.write(key, VEC, {"": MaxVector.from_items([(i, 1)])}, NOW)
        assert result.delta is not None
        nodes[A].local_delta(key, result.delta, NOW)
    sent = nodes[A].datagrams_to_send()
    for data, peer in sent:
        nodes[peer].receive_datagram(data, A, NOW)
    deliver(nodes)
    return [data for data, _ in sent]


def test_a_drain_that_fills_datagrams_sends_each_as_a_datagram_not_a_stream() -> None:
    """Items are fitted with the PUSH's prefix counted: a datagram filled to the budget
    without it was a few bytes too large (more as ack ids grow) and went over a TCP stream;
    under a load of writes to many keys, most of them. Key lengths vary so that some fill
    ends near the budget."""
    limit = NodeConfig().udp_payload_bytes_max
    nodes = _nodes()
    for i in range(300):  # ack ids past 255: three bytes each on the wire
        _write_and_drain(nodes, [b"warm-%d" % i])
    for key_length in range(8, 40):
        keys = [b"%0*d" % (key_length, i) for i in range(120)]
        sent = _write_and_drain(nodes, keys)
        assert len(sent) >= 2 * 2 and max(len(data) for data in sent) <= limit
        assert nodes[A].stats.streams_out == 0
        for node in nodes.values():
            assert node.keyspace.entry(keys[-1]) == nodes[A].keyspace.entry(keys[-1])


def test_a_full_batch_is_cut_into_datagrams_each_paced_as_one() -> None:
    """Pacing counts datagrams: a burst of 2 tokens lets exactly the keys that fit in two
    datagrams per peer leave now (one peer), the rest wait for the round."""
    nodes = _nodes(pacing_rate_per_s=1.0, pacing_burst=2, origin_fanout=1, fanout=1)
    big = {j: 1 for j in range(40)}
    for i in range(200):
        key = b"key-%03d" % i
        result = nodes[A].keyspace.write(key, VEC, {"": MaxVector.from_items(big.items())}, NOW)
        assert result.delta is not None
        nodes[A].local_delta(key, result.delta, NOW)
    pushes = nodes[A].datagrams_to_send()
    assert len(pushes) == 2
    assert nodes[A].rumours_waiting() > 0
