"""The one live-peer set: membership keeps the live, confirmed member addresses itself, in step
with its own events, and the gossip node picks from it without keeping a copy."""

from __future__ import annotations

import random

import msgpack
import pytest

from hearsay.protocol.membership import (
    AddressSet,
    LiveSet,
    MemberAlive,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    Membership,
    MemberState,
)
from hearsay.protocol.node import GossipNode
from hearsay.protocol.presets import LOCAL

NOW = 1_700_000_000_000
ME = ("127.0.0.1", 7400)
P = ("127.0.0.1", 7401)
Q = ("127.0.0.1", 7402)


def test_address_set_order_depends_only_on_the_call_sequence() -> None:
    peers = AddressSet(ME)
    for address in [P, Q, ("127.0.0.1", 7403), ME, P]:  # self and duplicates ignored
        peers.add(address)
    assert peers.addresses == [P, Q, ("127.0.0.1", 7403)]
    peers.remove(P)  # the last one is swapped in
    assert peers.addresses == [("127.0.0.1", 7403), Q]
    peers.remove(P)  # absent: nothing happens
    assert len(peers) == 2 and Q in peers and P not in peers


def test_a_member_heard_directly_is_confirmed_and_a_failed_one_leaves_the_set() -> None:
    live = LiveSet(ME)
    live.on_event(MemberJoined("p", 1, P, False), P, NOW)  # its own message brought the news
    assert list(live.confirmed) == [P] and not live.probes
    live.on_event(MemberFailed("p", 1, 9.0), None, NOW)
    assert list(live.confirmed) == []
    live.on_event(MemberAlive("p", 1), None, NOW)  # heard directly before: confirmed again
    assert list(live.confirmed) == [P]
    assert list(live.reconnected) == [P]  # back from failed: repair with it


def test_a_member_learned_from_others_is_probed_then_confirmed_when_it_answers() -> None:
    live = LiveSet(ME)
    live.on_event(MemberJoined("q", 1, Q, False), P, NOW)  # P told us about Q
    assert list(live.confirmed) == [] and list(live.probes) == [Q]
    live.heard_from(P)  # someone else: no change
    assert list(live.confirmed) == []
    live.heard_from(Q)
    assert list(live.confirmed) == [Q]


def test_an_unconfirmed_member_is_used_after_confirm_ms_only_if_still_live() -> None:
    live = LiveSet(ME)
    live.on_event(MemberJoined("q", 1, Q, False), None, NOW)
    live.on_event(MemberJoined("p", 1, P, False), None, NOW)
    live.confirm_overdue(NOW + 999, 1000, lambda node: True)
    assert list(live.confirmed) == []
    live.confirm_overdue(NOW + 1000, 1000, lambda node: node == "q")
    assert list(live.confirmed) == [Q]
    assert not live.has_unconfirmed()  # p was dropped, not confirmed


def test_a_reaped_member_must_be_confirmed_again() -> None:
    live = LiveSet(ME)
    live.on_event(MemberJoined("p", 1, P, False), P, NOW)
    live.on_event(MemberLeft("p", 1), None, NOW)
    live.on_event(MemberReaped("p", 1), None, NOW)
    live.on_event(MemberJoined("p", 2, P, True), None, NOW)  # a new generation, via others
    assert list(live.confirmed) == [] and list(live.probes) == [P]


def _node(i: int) -> GossipNode:
    address = ("127.0.0.1", 7410 + i)
    membership = Membership(f"n{i}", 1, address, LOCAL, random.Random(i), now_ms=NOW)
    return GossipNode(address, rng=random.Random(i), membership=membership, now_ms=NOW)


def test_the_node_picks_from_membership_s_set_and_keeps_no_copy() -> None:
    nodes = [_node(i) for i in range(3)]
    by_address = {n.address: n for n in nodes}
    for node in nodes[1:]:
        node.join([nodes[0].address], NOW)
    now = NOW
    for _ in range(40):  # bounded: 2 s of virtual time
        now += 50
        for node in nodes:
            node.handle_timer(now)
        for _ in range(20):  # deliver until quiet (bounded)
            moved = False
            for node in nodes:
                for data, to in node.datagrams_to_send():
                    by_address[to].receive_datagram(data, node.address, now)
                    moved = True
            if not moved:
                break
    for node in nodes:
        membership = node.membership
        assert membership is not None
        others = sorted(n.address for n in nodes if n is not node)
        assert sorted(node.peers) == others
        assert node.peers == list(membership.live.confirmed)
        assert [m.state for m in membership.live_peers()] == [MemberState.ALIVE] * 2


def test_static_peers_are_refused_with_membership() -> None:
    node = _node(0)
    with pytest.raises(ValueError):
        node.add_peer(P)
    membership = Membership("x", 1, ME, LOCAL, random.Random(1), now_ms=NOW)
    with pytest.raises(ValueError):
        GossipNode(ME, rng=random.Random(1), membership=membership, peers=[P], now_ms=NOW)


def test_a_membership_message_names_its_sender_as_confirmed() -> None:
    a = Membership("a", 1, P, LOCAL, random.Random(1), now_ms=NOW)
    b = Membership("b", 1, Q, LOCAL, random.Random(2), now_ms=NOW)
    wire = msgpack.unpackb(msgpack.packb(a.make_syn()))
    ack = b.handle(wire, NOW)
    assert ack is not None
    a.handle(msgpack.unpackb(msgpack.packb(ack)), NOW, source=Q)
    assert list(a.live.confirmed) == [Q] and not a.live.probes
