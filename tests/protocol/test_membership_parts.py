"""Membership's parts on their own: the positional wire format, the liveness transition table,
the state names reported outside, the one live-peer set, and the refusal of old peers."""

from __future__ import annotations

import itertools
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import PROTOCOL_VERSION, EnvelopeCodec, MessageType
from hearsay.protocol.membership import (
    Ack,
    Ack2,
    MemberAlive,
    MemberLeaving,
    MemberLeft,
    Membership,
    MembershipDecodeError,
    MemberState,
    MemberSuspect,
    MessageKind,
    NodeStatus,
    Syn,
)
from hearsay.protocol.membership.liveness import (
    TRANSITIONS,
    LivenessError,
    News,
    next_state,
)
from hearsay.protocol.membership.recent import RECENT_MAX, RecentChanges
from hearsay.protocol.membership.wire import (
    WireEntry,
    decode,
    entry_bytes,
    tag_entry_bytes,
    value_bytes,
)
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.protocol.presets import LOCAL

NOW = 1_700_000_000_000


def _member(i: int) -> Membership:
    return Membership(f"n{i}", 1, ("127.0.0.1", 7300 + i), LOCAL, random.Random(i), now_ms=NOW)


def _wire(message: object) -> object:
    """What a peer receives: the message packed and unpacked by msgpack."""
    return msgpack.unpackb(msgpack.packb(message))


def _sync(a: Membership, b: Membership, now: int) -> None:
    ack = b.handle(_wire(a.make_syn()), now)
    assert ack is not None
    ack2 = a.handle(_wire(ack), now)
    if ack2 is not None:
        assert b.handle(_wire(ack2), now) is None


# -- wire ---------------------------------------------------------------------------------------


def test_messages_are_positional_arrays_that_decode_to_what_was_sent() -> None:
    a, b = _member(1), _member(2)
    a.set_tag("load", 7, now_ms=NOW)
    syn = a.make_syn()
    ack = b.on_syn(_wire(syn), NOW)
    ack2 = a.on_ack(_wire(ack), NOW)
    assert isinstance(syn, Syn) and isinstance(ack, Ack) and isinstance(ack2, Ack2)
    for message, kind in ((syn, 1), (ack, 2), (ack2, 3)):
        raw = _wire(message)
        assert isinstance(raw, list) and raw[0] == kind and raw[1] == message.sender
        assert decode(raw) == message  # nothing lost or reordered on the way
    assert ack2.deltas[0].node_id == "n1"
    assert ("load", 7) in {(e.key, e.value) for e in ack2.deltas[0].entries}


def test_a_message_of_the_wrong_kind_is_refused_by_its_handler() -> None:
    a, b = _member(1), _member(2)
    with pytest.raises(MembershipDecodeError):
        b.on_ack(_wire(a.make_syn()), NOW)
    with pytest.raises(MembershipDecodeError):
        b.on_ack2([MessageKind.ACK, "n1", [], []], NOW)


def test_an_old_peer_is_refused_cleanly_and_counted() -> None:
    """A version-2 peer (membership messages as maps) is dropped with reason ``version``
    before its payload is read; its map inside a current envelope is a malformed drop.
    Neither raises, and neither changes the member table."""
    node = GossipNode(
        ("127.0.0.1", 7300),
        rng=random.Random(0),
        membership=_member(0),
        config=NodeConfig.from_preset(LOCAL),
        now_ms=NOW,
    )
    old_syn = {"t": "syn", "from": "old", "complete": True, "digest": [["old", 1, 3]]}
    current = EnvelopeCodec("hearsay").seal(MessageType.MEMBERSHIP, msg.packb(old_syn))
    assert PROTOCOL_VERSION == 3 and current[3] == 3
    old = current[:3] + b"\x02" + current[4:]
    node.receive_datagram(old, ("127.0.0.1", 7399), NOW)
    node.receive_datagram(current, ("127.0.0.1", 7399), NOW)
    assert node.stats.dropped == {"version": 1, "malformed": 1}
    assert node.membership is not None
    assert [m.node_id for m in node.membership.members()] == ["n0"]


# -- liveness -----------------------------------------------------------------------------------


def test_every_state_and_news_pair_is_allowed_or_refused_explicitly() -> None:
    judged = {News.SUSPECTED, News.CONVICTED}
    for state, news in itertools.product(MemberState, News):
        if state in (MemberState.FAILED, MemberState.LEFT) and news in judged:
            assert (state, news) not in TRANSITIONS
            with pytest.raises(LivenessError):
                next_state(state, news)
        else:
            assert next_state(state, news) is TRANSITIONS[state, news]
    assert next_state(MemberState.LEFT, News.HEARTBEAT) is MemberState.LEFT  # left is final
    assert next_state(MemberState.FAILED, News.HEARTBEAT) is MemberState.ALIVE


def test_one_mapping_of_state_names() -> None:
    assert {s: s.reported for s in MemberState} == {
        MemberState.ALIVE: "alive",
        MemberState.SUSPECT: "suspect",
        MemberState.FAILED: "failed",
        MemberState.LEAVING: "alive",  # a draining node still serves
        MemberState.LEFT: "left",
    }
    assert {s for s in MemberState if s.is_live} == {
        MemberState.ALIVE,
        MemberState.SUSPECT,
        MemberState.LEAVING,
    }
    assert [s.news for s in NodeStatus] == [None, News.SAID_LEAVING, News.SAID_LEFT]


def _silence_until(m: Membership, node_id: str, state: MemberState, start_ms: int) -> int:
    """Tick ``m`` in 100 ms steps (no local pause) until ``node_id`` is in ``state``."""
    now = start_ms
    for _ in range(200):  # bounded: 20 s of virtual time
        now += 100
        m.tick(now)
        row = m.member(node_id)
        if row is not None and row.state is state:
            return now
    raise AssertionError(f"{node_id} never became {state}")


def test_a_suspect_that_said_it_is_leaving_comes_back_as_leaving() -> None:
    """Its leaving status arrives while it is suspect (nothing happens then); its next
    heartbeat clears the suspicion and the status is applied from alive, an event for each."""
    a, b = _member(1), _member(2)
    for _ in range(3):
        _sync(a, b, NOW)
    b.events()
    now = _silence_until(b, "n1", MemberState.SUSPECT, NOW)
    assert [type(e) for e in b.events()] == [MemberSuspect]
    row = b.member("n1")
    assert row is not None
    top, heartbeat = a.max_version, row.heartbeat
    status = ["n1", 1, top, top + 1, [["\x00status", "leaving", top + 1, None]]]
    b.on_ack2([MessageKind.ACK2, "n1", [status]], now)
    assert b.events() == [] and b.member("n1").state is MemberState.SUSPECT  # type: ignore[union-attr]
    beat = ["n1", 1, top + 1, top + 2, [["\x00hb", heartbeat + 1, top + 2, None]]]
    b.on_ack2([MessageKind.ACK2, "n1", [beat]], now)
    assert [type(e) for e in b.events()] == [MemberAlive, MemberLeaving]
    row = b.member("n1")
    assert row is not None and row.state is MemberState.LEAVING and row.state.reported == "alive"
    gone = ["n1", 1, top + 2, top + 3, [["\x00status", "left", top + 3, None]]]
    b.on_ack2([MessageKind.ACK2, "n1", [gone]], now)
    assert [type(e) for e in b.events()] == [MemberLeft]


# -- the one live-peer set ----------------------------------------------------------------------


def test_live_addresses_are_the_live_peers() -> None:
    a, b, c = _member(1), _member(2), _member(3)
    for _ in range(3):
        _sync(a, b, NOW)
        _sync(c, b, NOW)
    assert b.live_addresses() == [m.address for m in b.live_peers()] == [a.address, c.address]
    later = _silence_until(b, "n1", MemberState.FAILED, NOW)  # both silent: convicted
    _silence_until(b, "n3", MemberState.FAILED, later)
    assert b.live_addresses() == [] and b.live_peers() == []


_INT_EDGES = [
    edge + step
    for edge in (-(2**31), -32768, -128, -32, 0, 128, 256, 65536, 2**32)
    for step in (-1, 0)
] + [-(2**63), 2**64 - 1]
_STATE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from(_INT_EDGES)
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.binary(max_size=300),
    lambda inner: st.lists(inner, max_size=20) | st.tuples(inner, inner),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(
    key=st.text(min_size=1, max_size=70) | st.sampled_from(["k" * 31, "k" * 32, "é" * 16]),
    value=_STATE_VALUES,
    version=st.integers(1, 2**63 - 1),
    expiry=st.none() | st.integers(0, 2**63 - 1),
)
def test_an_entrys_computed_size_is_its_packed_size(
    key: str, value: object, version: int, expiry: int | None
) -> None:
    """Entries are sized without packing them (every entry of a peer's delta is sized): the
    computed size is exactly msgpack's, for every value a state entry may hold."""
    packed = msgpack.packb([key, value, version, expiry])
    assert entry_bytes(key, value, version, expiry) == len(packed)
    assert tag_entry_bytes(WireEntry(key, value, version, expiry)) == len(packed)


def test_a_value_no_state_holds_is_refused_by_the_sizer() -> None:
    with pytest.raises(TypeError):
        value_bytes({"a": 1})


# --------------------------------------------------------------------------------------------
# Recent changes: what an ACK offers beyond what a sampled digest asked for


def test_recent_changes_sample_distinct_members_within_the_window() -> None:
    recent = RecentChanges(window_ms=1_000)
    for i in range(10):
        recent.note(f"m{i}", 100 * i)  # m0 at 0 ms ... m9 at 900 ms
    recent.note("m3", 950)  # changed again: still one member
    assert recent.sample(100, 950, random.Random(1).random) == [
        "m3",
        "m9",
        "m8",
        "m7",
        "m6",
        "m5",
        "m4",
        "m2",
        "m1",
        "m0",
    ]  # few: all, newest first
    kept = recent.sample(100, 1_450, random.Random(1).random)
    assert set(kept) == {"m3", "m5", "m6", "m7", "m8", "m9"}  # older than the window: gone
    assert recent.sample(5, 5_000, random.Random(1).random) == []


def test_recent_changes_sample_at_random_when_many_and_stay_bounded() -> None:
    recent = RecentChanges(window_ms=10**9)
    for i in range(RECENT_MAX + 500):
        recent.note(f"m{i}", i)
    assert len(recent) == RECENT_MAX  # the oldest forgotten first
    picks = [recent.sample(20, RECENT_MAX + 500, random.Random(seed).random) for seed in range(3)]
    for picked in picks:
        assert len(picked) == len(set(picked)) == 20
        assert all(int(m[1:]) >= 500 for m in picked)
    assert picks[0] != picks[1]
