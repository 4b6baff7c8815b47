"""SWIM's parts and state machine: the broadcast queue, Lifeguard's timeouts, suspicion,
refutation by incarnation, indirect probes, the wire format of probes and notices."""

from __future__ import annotations

import random

import msgpack
import pytest

from hearsay.protocol.membership import Membership, MembershipDecodeError, MemberState
from hearsay.protocol.membership.swim import (
    BROADCASTS_MAX,
    BroadcastQueue,
    LocalHealth,
    retransmit_limit,
    suspicion_timeout_ms,
)
from hearsay.protocol.membership.wire import (
    MessageKind,
    Notice,
    Notices,
    Ping,
    PingAck,
    PingReq,
    Verdict,
    decode,
    notice_bytes,
)
from hearsay.protocol.presets import LAN, LOCAL

NOW = 1_700_000_000_000


def _notice(node: str, inc: int = 0, verdict: Verdict = Verdict.SUSPECT) -> Notice:
    return Notice(node, 1, inc, verdict, "origin")


def _wire(message: object) -> object:
    return msgpack.unpackb(msgpack.packb(message))


# -- the broadcast queue ------------------------------------------------------------------------


def test_each_notice_is_sent_at_most_the_retransmit_limit() -> None:
    q = BroadcastQueue()
    q.push(_notice("a"))
    sent = 0
    for _ in range(20):
        sent += len(q.take(1000, limit=3))
    assert sent == 3 and len(q) == 0


def test_least_sent_first_and_budget_respected() -> None:
    q = BroadcastQueue()
    q.push(_notice("a"))
    assert q.take(1000, limit=5) == [_notice("a")]
    q.push(_notice("b"))
    size = notice_bytes(_notice("b"))
    assert q.take(size, limit=5) == [_notice("b")]  # b was never sent: it goes first
    assert q.take(size - 1, limit=5) == []  # nothing fits
    assert len(q.take(2 * size, limit=5)) == 2


def test_newer_notice_replaces_older_and_resets_its_count() -> None:
    q = BroadcastQueue()
    q.push(_notice("a", 1))
    q.take(1000, limit=2)
    q.push(_notice("a", 2, Verdict.ALIVE))
    assert len(q) == 1 and q.pending("a") == _notice("a", 2, Verdict.ALIVE)
    assert len(q.take(1000, limit=2)) == 1 and len(q.take(1000, limit=2)) == 1
    assert len(q) == 0


def test_queue_is_bounded() -> None:
    q = BroadcastQueue()
    for i in range(BROADCASTS_MAX + 50):
        q.push(_notice(f"n{i}"))
    assert len(q) == BROADCASTS_MAX


def test_retransmit_limit_grows_with_log_n() -> None:
    assert retransmit_limit(4, 9) == 4
    assert retransmit_limit(4, 99) == 8
    assert retransmit_limit(4, 999) == 12
    assert retransmit_limit(4, 9_999) == 16


# -- Lifeguard ------------------------------------------------------------------------------------


def test_suspicion_timeout_shrinks_with_confirmations_to_its_minimum() -> None:
    def timeout(confirmations: int, members: int = 1000) -> int:
        return suspicion_timeout_ms(
            members=members,
            probe_interval_ms=500,
            suspicion_mult=2,
            suspicion_max_mult=4,
            confirmations=confirmations,
            expected_confirmations=3,
        )

    assert timeout(0) == 12_000  # 4 x the minimum
    assert timeout(0) > timeout(1) > timeout(2) > timeout(3) == 3_000
    assert timeout(10) == 3_000
    assert timeout(3, 10_000) == 4_000  # log10(N)
    assert timeout(3, 10) == 2_000  # never below log10(100)


def test_local_health_stretches_and_recovers() -> None:
    h = LocalHealth(max_score=2)
    assert h.scale(500) == 500
    for _ in range(5):
        h.worse()
    assert h.score == 2 and h.scale(500) == 1500
    h.better()
    assert h.scale(500) == 1000


# -- the wire -------------------------------------------------------------------------------------


def test_probe_messages_round_trip_and_bad_ones_are_refused() -> None:
    n = (_notice("a"),)
    messages = [
        Ping(MessageKind.PING, "s", 7, "t", n),
        PingAck(MessageKind.PING_ACK, "s", 7, n),
        PingReq(MessageKind.PING_REQ, "s", 7, "t", ("10.0.0.1", 7000), n),
        Notices(MessageKind.NOTICES, "s", n),
    ]
    for m in messages:
        assert decode(_wire(m)) == m
    for bad in (
        [4, "s", -1, "t", []],
        [5, "s", 1, [["a", 1, 0, 3, "o"]]],
        [6, "s", 1, "t", ["h"], []],
        [7, "s", [["a", 1, 0, 1]]],
        [7, "s", "x"],
    ):
        with pytest.raises(MembershipDecodeError):
            decode(bad)


# -- the state machine ----------------------------------------------------------------------------


def _pair() -> tuple[Membership, Membership]:
    a = Membership("a", 1, ("127.0.0.1", 7001), LOCAL, random.Random(1), now_ms=NOW)
    b = Membership("b", 1, ("127.0.0.1", 7002), LOCAL, random.Random(2), now_ms=NOW)
    for _ in range(2):
        ack = b.handle(_wire(a.make_syn()), NOW)
        ack2 = a.handle(_wire(ack), NOW)
        if ack2 is not None:
            b.handle(_wire(ack2), NOW)
    a.events(), b.events()
    return a, b


def _notices(sender: str, *notices: Notice) -> object:
    return _wire(Notices(MessageKind.NOTICES, sender, notices))


def test_a_suspected_member_refutes_with_a_higher_incarnation() -> None:
    a, b = _pair()
    assert a.incarnation == 0
    a.handle(_notices("b", Notice("a", 1, 0, Verdict.SUSPECT, "b")), NOW)
    assert a.incarnation == 1 and a.suspicions_refuted == 1
    # the refutation is queued and reaches b, which held a suspect
    b.handle(_notices("c", Notice("a", 1, 0, Verdict.SUSPECT, "c")), NOW)
    assert b.member("a").state is MemberState.SUSPECT  # type: ignore[union-attr]
    a.tick(NOW + 1)
    sent = [m for _addr, m in a.take_outgoing() if isinstance(m, Notices)]
    assert sent and any(n.verdict is Verdict.ALIVE and n.incarnation == 1 for n in sent[0].notices)
    b.handle(_wire(sent[0]), NOW + 2)
    assert b.member("a").state is MemberState.ALIVE  # type: ignore[union-attr]
    # an old suspicion (a lower incarnation) changes nothing any more
    b.handle(_notices("c", Notice("a", 1, 0, Verdict.SUSPECT, "c")), NOW + 3)
    assert b.member("a").state is MemberState.ALIVE  # type: ignore[union-attr]


def test_a_suspicion_that_is_not_refuted_ends_in_conviction_and_a_dead_notice() -> None:
    _a, b = _pair()
    b.handle(_notices("c", Notice("a", 1, 0, Verdict.SUSPECT, "c")), NOW)
    now = NOW
    row = b.member("a")
    for _ in range(400):  # a never answers: 100 ms steps, 40 s at most
        now += 100
        b.tick(now)
        row = b.member("a")
        if row is None or row.state is not MemberState.SUSPECT:
            break
    assert row is not None and row.state is MemberState.FAILED and row.phi == 8.0
    # not before the shortest timeout, and the verdict is passed on
    assert now - NOW >= LOCAL.suspicion_mult * 2 * LOCAL.probe_interval_ms
    pending = b._broadcasts.pending("a")  # no live peer to send it to yet: it waits
    assert pending == Notice("a", 1, 0, Verdict.DEAD, "b")


def test_a_dead_notice_convicts_and_the_member_revives_by_refuting() -> None:
    a, b = _pair()
    b.handle(_notices("c", Notice("a", 1, 0, Verdict.DEAD, "c")), NOW)
    assert b.member("a").state is MemberState.FAILED  # type: ignore[union-attr]
    # a speaks to b: b tells it, a refutes, and its alive notice revives it at b
    b.handle(_wire(Ping(MessageKind.PING, "a", 1, "b", ())), NOW + 1)
    told = [m for _addr, m in b.take_outgoing() if isinstance(m, Notices)]
    assert told and told[0].notices[0].verdict is Verdict.DEAD
    a.handle(_wire(told[0]), NOW + 2)
    assert a.incarnation == 1
    b.handle(_notices("a", Notice("a", 1, 1, Verdict.ALIVE, "a")), NOW + 3)
    assert b.member("a").state is MemberState.ALIVE  # type: ignore[union-attr]


def test_a_failed_or_left_member_shows_a_fixed_level_not_a_growing_phi() -> None:
    _a, b = _pair()
    b.handle(_notices("c", Notice("a", 1, 0, Verdict.DEAD, "c")), NOW)
    levels = set()
    for step_ms in (1_000, 2_000, 3_000):
        b.tick(NOW + step_ms)
        row = b.member("a")
        assert row is not None
        levels.add(row.phi)
    assert levels == {8.0}


def test_indirect_probe_through_a_helper() -> None:
    """a cannot reach c directly: after the direct timeout it asks b, b pings c and relays
    c's ack, and a suspects nobody."""
    ids = ["a", "b", "c"]
    ms = {
        i: Membership(i, 1, ("127.0.0.1", 7100 + k), LAN, random.Random(k), now_ms=NOW)
        for k, i in enumerate(ids)
    }
    addr = {m.address: i for i, m in ms.items()}
    for _ in range(3):
        for x in ids:
            for y in ids:
                if x != y:
                    ack = ms[y].handle(_wire(ms[x].make_syn()), NOW)
                    ack2 = ms[x].handle(_wire(ack), NOW)
                    if ack2 is not None:
                        ms[y].handle(_wire(ack2), NOW)
    cut = {("a", "c"), ("c", "a")}
    now = NOW
    relayed = 0
    for _ in range(400):  # 20 s of 50 ms steps
        now += 50
        for i in ids:
            ms[i].tick(now)
        for _ in range(50):  # deliver until quiet (bounded)
            moved = False
            for i in ids:
                for target, message in ms[i].take_outgoing():
                    j = addr[target]
                    if (i, j) in cut:
                        continue
                    moved = True
                    relayed += isinstance(message, PingReq)
                    reply = ms[j].handle(_wire(message), now, source=ms[i].address)
                    if reply is not None and (j, i) not in cut:
                        ms[i].handle(_wire(reply), now, source=ms[j].address)
            if not moved:
                break
    assert relayed > 0
    assert ms["a"].member("c").state is MemberState.ALIVE  # type: ignore[union-attr]
    assert ms["a"].probes_failed == 0
