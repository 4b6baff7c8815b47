"""Regression tests for issue 11's gossip findings, on the sans-IO core (virtual time).

Each test here failed on the code before its fix: replayed authenticated datagrams were
merged however old they were (finding 7); a rumour larger than the pacing burst was
re-encoded every round and never sent (finding 11); a forged membership claim with a huge
generation marked a live node left for good, thousands of forged members were all taken in,
and BACKOFF was obeyed from anyone (finding 6).
"""

from __future__ import annotations

import random

import pytest

from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol import vignette
from hearsay.protocol.envelope import (
    REPLAY_WINDOW_MS,
    EnvelopeCodec,
    EnvelopeError,
    Keyring,
    MessageType,
    ReplayGuard,
)
from hearsay.protocol.membership import (
    NEW_MEMBERS_BURST,
    NEW_MEMBERS_PER_S,
    Membership,
    MemberState,
    MessageKind,
)
from hearsay.protocol.node import STREAM_STEP_ITEMS, GossipNode, NodeConfig
from hearsay.protocol.presets import LOCAL

NOW = 1_700_000_000_000
DAY_MS = 86_400_000
VEC = Schema("vector").intern()
A, B, C = (("127.0.0.1", 7100 + i) for i in range(3))
KEY = bytes(range(32))


def _write(node: GossipNode, key: bytes, pairs: dict[int, int], now: int = NOW) -> int:
    result = node.keyspace.write(key, VEC, {"": MaxVector.from_items(pairs.items())}, now)
    assert result.delta is not None
    return node.local_delta(key, result.delta, now)


# -- finding 7: replay protection ---------------------------------------------------------------


def _secure(address: tuple[str, int], seed: int, now: int = NOW) -> GossipNode:
    return GossipNode(
        address, rng=random.Random(seed), keyring=Keyring(KEY), peers=[A, B], now_ms=now
    )


def test_a_recorded_push_replayed_after_the_grace_does_not_bring_a_key_back() -> None:
    sender = _secure(A, 1)
    _write(sender, b"deleted-later", {1: 5})
    recorded = sender.datagrams_to_send()
    assert recorded
    # A day later (the tombstone grace), a node that no longer holds the key is sent the
    # recording: it must not take the key back.
    later = NOW + DAY_MS
    receiver = _secure(B, 2, now=later)
    for data, _ in recorded:
        receiver.receive_datagram(data, A, later)
    assert receiver.keyspace.entry(b"deleted-later") is None
    assert receiver.stats.dropped.get("stale") == len(recorded)


def test_a_datagram_replayed_at_once_is_merged_only_once() -> None:
    sender, receiver = _secure(A, 1), _secure(B, 2)
    _write(sender, b"k", {1: 1})
    recorded = sender.datagrams_to_send()
    for data, _ in recorded:
        receiver.receive_datagram(data, A, NOW + 1)
    assert receiver.keyspace.entry(b"k") is not None
    for data, _ in recorded:
        receiver.receive_datagram(data, A, NOW + 2)
    assert receiver.stats.dropped == {"replayed": len(recorded)}


def test_a_datagram_sent_to_another_node_and_replayed_here_is_refused() -> None:
    """One sender numbers all its datagrams in one series, so each receiver sees only some of
    its sequences: a window of unseen sequences took a datagram recorded on its way to C and
    replayed to B (the chaos suite's resurrection). Sequences must rise strictly per sender."""
    sender, to_b = (
        EnvelopeCodec("hearsay", Keyring(KEY), nonce_source=random.Random(seed).randbytes)
        for seed in (1, 2)
    )
    first = sender.seal(MessageType.PUSH, b"x", NOW)
    to_c = sender.seal(MessageType.PUSH, b"y", NOW)  # recorded on its way to C
    third = sender.seal(MessageType.PUSH, b"z", NOW)
    for data in (first, third):
        to_b.open(data, now_ms=NOW + 1)
    with pytest.raises(EnvelopeError) as caught:
        to_b.open(to_c, now_ms=NOW + 2)
    assert caught.value.reason == "replayed"
    with pytest.raises(EnvelopeError) as caught:  # and a node's own datagram sent back to it
        sender.open(third, now_ms=NOW + 2)
    assert caught.value.reason == "replayed"


def test_replay_guard_window_reordering_and_eviction() -> None:
    guard = ReplayGuard(NOW, seq_window=8, senders_max=2)
    guard.check(b"a" * 8, 5, NOW, NOW)
    guard.check(b"a" * 8, 3, NOW, NOW)  # reordered: fine once
    for seq in (3, 5):
        with pytest.raises(EnvelopeError) as caught:
            guard.check(b"a" * 8, seq, NOW, NOW)
        assert caught.value.reason == "replayed"
    guard.check(b"a" * 8, 20, NOW, NOW)
    with pytest.raises(EnvelopeError) as caught:
        guard.check(b"a" * 8, 12, NOW, NOW)  # fell out of the 8-sequence window
    assert caught.value.reason == "replayed"
    with pytest.raises(EnvelopeError) as caught:
        guard.check(b"b" * 8, 1, NOW - REPLAY_WINDOW_MS - 1, NOW)
    assert caught.value.reason == "stale"
    with pytest.raises(EnvelopeError) as caught:
        guard.check(b"b" * 8, 1, NOW + REPLAY_WINDOW_MS + 1, NOW)
    assert caught.value.reason == "stale"
    # Fill the table: "a" is evicted, and its old packets cannot come back as a stranger's.
    guard.check(b"b" * 8, 1, NOW, NOW)
    guard.check(b"c" * 8, 1, NOW + 1, NOW + 1)
    with pytest.raises(EnvelopeError) as caught:
        guard.check(b"a" * 8, 5, NOW, NOW + 2)
    assert caught.value.reason == "stale"
    guard.check(b"d" * 8, 1, NOW + 3, NOW + 3)  # a new sender after the eviction is fine
    guard.check(b"d" * 8, 2**64 - 1, NOW + 3, NOW + 3)  # a huge jump costs nothing
    with pytest.raises(EnvelopeError):
        guard.check(b"d" * 8, 2**64 - 1, NOW + 3, NOW + 3)


def test_every_sealed_packet_gets_a_new_sequence() -> None:
    codec = EnvelopeCodec("hearsay", Keyring(KEY), nonce_source=random.Random(3).randbytes)
    opener = EnvelopeCodec("hearsay", Keyring(KEY), nonce_source=random.Random(4).randbytes)
    first = codec.seal(MessageType.ACK, msg.packb([1]), NOW)
    second = codec.seal(MessageType.ACK, msg.packb([1]), NOW)
    assert opener.open(first, now_ms=NOW) == opener.open(second, now_ms=NOW)
    with pytest.raises(EnvelopeError):
        opener.open(second, now_ms=NOW)


# -- finding 11: a rumour larger than the pacing burst ------------------------------------------


def test_a_rumour_larger_than_the_burst_is_sent_not_requeued_forever() -> None:
    config = NodeConfig(pacing_burst=20)
    nodes = {
        addr: GossipNode(addr, rng=random.Random(i), peers=[A, B, C], now_ms=NOW, config=config)
        for i, addr in enumerate((B, C), 1)
    }
    a = GossipNode(A, rng=random.Random(7), peers=[B, C], now_ms=NOW, config=config)
    big = {i * 7: i + 1 for i in range(40_000)}  # far more datagrams than 20 tokens
    _write(a, b"big", big)
    _write(a, b"big2", big)  # the first left the bucket in debt: this one must wait
    keys = (b"big", b"big2")
    now = NOW
    sent_push = 0
    for _ in range(200):  # bounded: 200 timer steps
        for data, peer in a.datagrams_to_send():
            nodes[peer].receive_datagram(data, A, now)
            sent_push += 1
        for peer in (B, C):
            nodes[peer].datagrams_to_send()  # replies are not needed here
        if all(nodes[p].keyspace.entry(k) == a.keyspace.entry(k) for p in (B, C) for k in keys):
            break
        timer = a.get_timer()
        assert timer is not None, "the rumour was dropped with nothing scheduled"
        now = max(now + 1, timer)
        a.handle_timer(now)
    for peer in (B, C):
        for key in keys:
            assert nodes[peer].keyspace.entry(key) == a.keyspace.entry(key)
    assert a.stats.paced >= 1  # the second did wait for tokens, and then went out


# -- finding 6: membership from strangers -------------------------------------------------------


def _membership(node_id: str, port: int, generation: int = NOW) -> Membership:
    return Membership(
        node_id, generation, ("127.0.0.1", port), LOCAL, random.Random(port), now_ms=NOW
    )


def _forged_left(node_id: str, generation: int, port: int) -> list[object]:
    """An ACK2 claiming ``node_id`` left, in a generation of the forger's choosing."""
    entries = [
        ["\x00addr", ["127.0.0.1", port], 1, None],
        ["\x00status", "left", 2, None],
        ["\x00hb", 1, 3, None],
    ]
    return [MessageKind.ACK2, "forger", [[node_id, generation, 0, 3, entries]]]


def _sync(a: Membership, b: Membership, now: int) -> None:
    ack = b.on_syn(a.make_syn(), now)
    ack2 = a.on_ack(ack, now)
    if ack2 is not None:
        b.on_ack2(ack2, now)


def _state_of(m: Membership, node_id: str) -> MemberState | None:
    row = m.member(node_id)
    return None if row is None else row.state


def test_a_forged_huge_generation_cannot_mark_a_live_node_left() -> None:
    live, other = _membership("live", 7201), _membership("other", 7202)
    for _ in range(3):
        _sync(live, other, NOW)
    assert _state_of(other, "live") is MemberState.ALIVE
    other.on_ack2(_forged_left("live", 2**63 - 1, 7201), NOW)
    assert _state_of(other, "live") is MemberState.ALIVE
    assert other.refused_generations == 1


def test_a_forged_plausible_generation_is_refuted_by_the_node_itself() -> None:
    live, other = _membership("live", 7201), _membership("other", 7202)
    for _ in range(3):
        _sync(live, other, NOW)
    forged_generation = NOW + 60_000  # a minute ahead: within the plausible window
    other.on_ack2(_forged_left("live", forged_generation, 7201), NOW)
    assert _state_of(other, "live") is MemberState.LEFT
    now = NOW
    for _ in range(10):  # bounded: a few syncs carry the refutation
        now += 100
        live.tick(now)
        other.tick(now)
        _sync(live, other, now)
        _sync(other, live, now)
        if _state_of(other, "live") is MemberState.ALIVE:
            break
    assert _state_of(other, "live") is MemberState.ALIVE
    assert live.generation == forged_generation + 1 and live.refutations == 1
    row = other.member("live")
    assert row is not None and row.generation == forged_generation + 1


def test_a_flood_of_invented_members_is_admitted_only_at_a_bounded_rate() -> None:
    b = _membership("b", 7202)
    fake = [
        [f"fake-{i}", 1, 0, 1, [["\x00addr", ["127.0.0.1", 9000 + i % 1000], 1, None]]]
        for i in range(4000)
    ]
    b.on_ack2([MessageKind.ACK2, "forger", fake], NOW)
    assert len(b.members()) == 1 + NEW_MEMBERS_BURST
    assert b.refused_members == 4000 - NEW_MEMBERS_BURST
    # A second later, NEW_MEMBERS_PER_S more are taken in (a real cluster keeps converging).
    b.on_ack2([MessageKind.ACK2, "forger", fake], NOW + 1000)
    assert len(b.members()) == 1 + NEW_MEMBERS_BURST + NEW_MEMBERS_PER_S


def test_backoff_is_obeyed_only_from_live_peers() -> None:
    node = GossipNode(A, rng=random.Random(1), peers=[B], now_ms=NOW)
    backoff = EnvelopeCodec("hearsay").seal(MessageType.BACKOFF, msg.packb([1000]))
    node.receive_datagram(backoff, C, NOW)  # C is nobody we know
    assert node.stats.backoffs_received == 0
    assert node.stats.dropped == {"not-a-peer": 1}
    node.receive_datagram(backoff, B, NOW)
    assert node.stats.backoffs_received == 1


# -- findings 11/12: a stream of many keys is merged in bounded steps ---------------------------


def test_a_big_stream_is_merged_in_bounded_steps() -> None:
    items = [
        msg.push_item(
            b"key-%d" % k, Entry(0, VEC, slices={"": MaxVector.from_items([(k, 1)])}), True
        )
        for k in range(5000)
    ]
    data = EnvelopeCodec("hearsay").seal(
        MessageType.PUSH, msg.join_items(msg.push_prefix(False, 0), items)
    )
    node = GossipNode(A, rng=random.Random(1), peers=[B], now_ms=NOW)
    merged_per_step = []
    before = 0
    for _ in node.receive_stream_steps(data, B, NOW):
        merged_per_step.append(node.keyspace.stored_count - before)
        before = node.keyspace.stored_count
    merged_per_step.append(node.keyspace.stored_count - before)
    assert merged_per_step == [STREAM_STEP_ITEMS] * 4 + [5000 - 4 * STREAM_STEP_ITEMS]
    assert node.stats.dropped == {}


def test_a_malformed_item_stops_the_rest_of_a_stream() -> None:
    good = [
        msg.push_item(
            b"key-%d" % k, Entry(0, VEC, slices={"": MaxVector.from_items([(k, 1)])}), True
        )
        for k in range(STREAM_STEP_ITEMS + 5)
    ]
    bad = msg.packb([b"bad", [1, 0], True])
    data = EnvelopeCodec("hearsay").seal(
        MessageType.PUSH, msg.join_items(msg.push_prefix(False, 0), [*good, bad])
    )
    node = GossipNode(A, rng=random.Random(1), peers=[B], now_ms=NOW)
    node.receive_stream(data, B, NOW)
    assert node.keyspace.stored_count == STREAM_STEP_ITEMS  # the first step's keys merged
    assert node.stats.dropped == {"malformed": 1}


# -- finding 6: invented members are not gossiped to --------------------------------------------


def _cluster(*addresses: tuple[str, int]) -> dict[tuple[str, int], GossipNode]:
    nodes = {}
    for i, addr in enumerate(addresses):
        rng = random.Random(i)
        member = Membership(f"n{i}", 1, addr, LOCAL, rng, now_ms=NOW)
        nodes[addr] = GossipNode(
            addr, rng=rng, membership=member, config=NodeConfig.from_preset(LOCAL), now_ms=NOW
        )
    return nodes


def _run(
    nodes: dict[tuple[str, int], GossipNode],
    now: int,
    steps: int,
    cut: frozenset[tuple[tuple[str, int], tuple[str, int]]] = frozenset(),
) -> int:
    """Advance ``steps`` x 50 ms, delivering every datagram except over the ``cut`` links."""
    for _ in range(steps):
        now += 50
        for node in nodes.values():
            if (t := node.get_timer()) is not None and t <= now:
                node.handle_timer(now)
        for _ in range(20):  # bounded: deliver until quiet
            batch = [(s, d, t) for s, n in nodes.items() for d, t in n.datagrams_to_send()]
            if not batch:
                break
            for src, data, dest in batch:
                if dest in nodes and (src, dest) not in cut:
                    nodes[dest].receive_datagram(data, src, now)
    return now


def test_invented_members_are_not_gossiped_to_and_real_ones_are() -> None:
    nodes = _cluster(A, B, C)
    nodes[B].join([A], NOW)
    nodes[C].join([A], NOW)
    now = _run(nodes, NOW, 20)
    # B learned C from A (a third party), probed it, and C answered: a peer.
    assert sorted(nodes[B].peers) == [A, C]
    fake = [
        [f"fake-{i}", 1, 0, 1, [["\x00addr", ["127.0.0.1", 9000 + i], 1, None]]] for i in range(300)
    ]
    forged = EnvelopeCodec("hearsay").seal(
        MessageType.MEMBERSHIP, msg.packb([MessageKind.ACK2, "forger", fake])
    )
    nodes[B].receive_datagram(forged, ("127.0.0.1", 9999), now)
    admitted = min(300, NEW_MEMBERS_BURST)  # (the rest wait for the admission rate)
    assert len(nodes[B].membership.members()) == 3 + admitted  # type: ignore[union-attr]
    assert sorted(nodes[B].peers) == [A, C]  # none of the invented ones
    # A write on B still goes straight to both real peers.
    _write(nodes[B], b"k", {1: 1}, now)
    sent_to = {peer for _, peer in nodes[B].datagrams_to_send()}
    assert {A, C} <= sent_to


def test_a_member_that_cannot_answer_directly_is_used_once_it_stays_alive() -> None:
    """Behind NAT a member's datagrams may come from another address than it announces:
    it never confirms by answering, so it is promoted after ``member_confirm_ms`` alive."""
    nodes = _cluster(A, B, C)
    cut = frozenset({(B, C), (C, B)})  # B and C never hear each other directly
    nodes[B].join([A], NOW)
    nodes[C].join([A], NOW)
    now = _run(nodes, NOW, 20, cut)
    assert nodes[B].peers == [A]  # C is known (through A) but not confirmed
    assert C in [m.address for m in nodes[B].membership.members()]  # type: ignore[union-attr]
    confirm_ms = nodes[B].config.member_confirm_ms
    now = _run(nodes, now, confirm_ms // 50 + 10, cut)
    assert sorted(nodes[B].peers) == [A, C]


# -- vignette from strangers: searches scan every key, and every source became a peer ------------


def test_vignette_searches_are_rate_limited() -> None:
    node = GossipNode(A, rng=random.Random(1), now_ms=NOW)
    search = vignette.encode_read("k:%")
    burst = node.config.vignette_search_burst
    for _ in range(burst + 10):
        node.receive_datagram(search, B, NOW)
    assert node.stats.dropped == {"rate-limited": 10}
    node.receive_datagram(search, B, NOW + 1000)  # the bucket refills
    assert node.stats.dropped == {"rate-limited": 10}


def test_vignette_peers_are_bounded() -> None:
    node = GossipNode(A, rng=random.Random(1), now_ms=NOW)
    read = vignette.encode_read("some-key")
    cap = node.config.vignette_peers_max
    for port in range(cap + 50):
        node.receive_datagram(read, ("127.0.0.1", 20_000 + port), NOW)
    assert len(node._vignette.peers) == cap
    assert node.stats.dropped["vignette-peers-full"] == 50
