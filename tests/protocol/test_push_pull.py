"""Push-pull (whole member tables on joining and now and then): the answer we asked for fills a
view at once and its members are used without a ping each; a table nobody asked for is not
trusted that way; every chunk fits a datagram; the schedule after a join."""

from __future__ import annotations

import itertools
import random

import msgpack
import pytest

from hearsay.protocol.membership import (
    NEW_MEMBERS_BURST,
    Address,
    Membership,
    MembershipDecodeError,
    MessageKind,
)
from hearsay.protocol.membership.push_pull import AFTER_JOIN_MS, JOIN_RETRY_MS, SEED_ROUNDS
from hearsay.protocol.membership.wire import Ping, PushPull, decode
from hearsay.protocol.presets import LAN

T0_MS = 1_700_000_000_000
BUDGET = 1_200


def _address(i: int) -> Address:
    return (f"10.0.{i >> 8}.{i & 255}", 7000)


def _member(i: int) -> Membership:
    return Membership(
        f"{i:016x}", 1, _address(i), LAN, random.Random(i), now_ms=T0_MS, budget_bytes=BUDGET
    )


def _deliver(to: Membership, message: object, source: Address, now: int) -> None:
    """As a datagram would: packed, size-checked, unpacked, from ``source``."""
    packed = msgpack.packb(message)
    assert len(packed) <= BUDGET
    reply = to.handle(msgpack.unpackb(packed), now, BUDGET, source=source)
    assert reply is None


def _seed_with(count: int) -> tuple[Membership, list[Membership]]:
    """A seed that took in ``count`` members, each joining through it."""
    seed = _member(0)
    others = [_member(i) for i in range(1, count + 1)]
    for node in others:
        node.add_seed(seed.address)
        node.tick(T0_MS)
        for address, message in node.take_outgoing():
            assert address == seed.address
            _deliver(seed, message, node.address, T0_MS)
        seed.take_outgoing()  # (its answers: not needed here)
    return seed, others


def test_a_joiner_learns_the_whole_table_from_its_seed_and_uses_it_at_once() -> None:
    seed, _others = _seed_with(3 * NEW_MEMBERS_BURST)  # more than the admission burst
    assert len(seed.members()) == 3 * NEW_MEMBERS_BURST + 1  # each spoke for itself
    joiner = _member(5000)
    joiner.add_seed(seed.address)
    joiner.tick(T0_MS)
    requests = joiner.take_outgoing()
    assert requests and all(isinstance(m, PushPull) and m.reply_wanted for _, m in requests)
    for _, message in requests:
        _deliver(seed, message, joiner.address, T0_MS)
    answers = seed.take_outgoing()
    assert len(answers) > 10  # chunks
    assert all(a == joiner.address and not m.reply_wanted for a, m in answers)  # type: ignore[union-attr]
    for _, message in answers:
        _deliver(joiner, message, seed.address, T0_MS + 1)
    assert {m.node_id for m in joiner.members()} == {m.node_id for m in seed.members()}
    assert joiner.refused_members == 0  # an answer we asked for is not rate-limited
    # Used at once: every member is in the live-peer set and none is pinged to confirm it.
    assert len(joiner.live.confirmed) == len(seed.members()) - 1
    assert not joiner.live.probes
    assert not any(isinstance(m, Ping) for _, m in joiner.take_outgoing())


def test_a_table_nobody_asked_for_is_rate_limited_and_confirmed_member_by_member() -> None:
    seed, _others = _seed_with(3 * NEW_MEMBERS_BURST)
    stranger = _member(6000)
    seed._send_table(stranger.address, reply_wanted=False)  # unasked
    for _, message in seed.take_outgoing():
        _deliver(stranger, message, seed.address, T0_MS)
    known = len(stranger.members()) - 1
    assert known <= NEW_MEMBERS_BURST + 1  # the burst, and the sender speaking for itself
    assert stranger.refused_members == 3 * NEW_MEMBERS_BURST + 1 - known
    assert len(stranger.live.probes) == known - 1  # each pinged before it is used


def test_after_the_join_the_next_push_pulls_go_to_seeds_then_to_members() -> None:
    seed, others = _seed_with(5)
    node = _member(50)
    node.add_seed(seed.address)
    asked_at: list[int] = []
    now = T0_MS
    while now < T0_MS + 60_000 and len(asked_at) < SEED_ROUNDS + 1:  # bounded in virtual time
        node.tick(now)
        for address, message in node.take_outgoing():
            if isinstance(message, PushPull):
                assert address == seed.address  # the join and the rounds after it: a seed
                asked_at.append(now)
                _deliver(seed, message, node.address, now)
        for address, message in seed.take_outgoing():
            if isinstance(message, PushPull) and address == node.address:
                _deliver(node, message, seed.address, now)
        now += 50
    assert len(asked_at) == SEED_ROUNDS + 1
    gaps = [b - a for a, b in itertools.pairwise(asked_at)]
    assert all(AFTER_JOIN_MS <= gap <= 2 * AFTER_JOIN_MS + 50 for gap in gaps)
    # then the periodic one, one (unscaled: 7 members) interval after the last answer
    assert node.next_deadline_ms <= asked_at[-1] + LAN.push_pull_interval_ms
    assert LAN.push_pull_interval_for(len(node.members())) == LAN.push_pull_interval_ms
    assert len(node.members()) == len(others) + 2


def test_an_unanswered_join_asks_again() -> None:
    node, seeds = _member(1), [_address(100), _address(101)]
    for s in seeds:
        node.add_seed(s)
    node.tick(T0_MS)
    first = {a for a, m in node.take_outgoing() if isinstance(m, PushPull)}
    assert len(first) == 1 and first <= set(seeds)
    node.tick(T0_MS + JOIN_RETRY_MS - 1)
    assert not [m for _, m in node.take_outgoing() if isinstance(m, PushPull)]
    node.tick(T0_MS + JOIN_RETRY_MS)
    assert [m for _, m in node.take_outgoing() if isinstance(m, PushPull)]


def test_push_pull_interval_scales_as_memberlist() -> None:
    assert LAN.push_pull_interval_for(32) == 30_000
    assert LAN.push_pull_interval_for(33) == 60_000
    assert LAN.push_pull_interval_for(1_000) == 6 * 30_000
    assert LAN.push_pull_interval_for(10_000) == 10 * 30_000


@pytest.mark.parametrize(
    "raw",
    [
        [MessageKind.PUSH_PULL, "a", 1, []],  # reply_wanted not a bool
        [MessageKind.PUSH_PULL, "a", True],  # too short
        [MessageKind.PUSH_PULL, "a", True, [["b", 1, 2, 1, []]]],  # to < from
    ],
)
def test_malformed_push_pull_is_refused(raw: object) -> None:
    with pytest.raises(MembershipDecodeError):
        decode(raw)


def test_deltas_we_hold_are_skipped_and_the_rest_still_checked() -> None:
    seed, others = _seed_with(20)
    node = others[0]
    seed._send_table(node.address, reply_wanted=False)
    chunks = [msgpack.unpackb(msgpack.packb(m)) for _, m in seed.take_outgoing()]
    for raw in chunks:
        node.handle(raw, T0_MS, BUDGET, source=seed.address)
    before = [(m.node_id, m.generation, m.heartbeat) for m in node.members()]
    for raw in chunks:  # again: every delta is held already, nothing changes
        node.handle(raw, T0_MS + 1, BUDGET, source=seed.address)
    assert [(m.node_id, m.generation, m.heartbeat) for m in node.members()] == before
    bad_entry = [["\x00addr", ["10.9.9.9", 99999], 1, None]]  # a port out of range
    held = chunks[0][3][0]
    forged = [MessageKind.PUSH_PULL, "x", False, [held, ["new-node", 1, 0, 1, bad_entry]]]
    with pytest.raises(MembershipDecodeError):
        node.handle(forged, T0_MS + 2, BUDGET, source=seed.address)
    assert [(m.node_id, m.generation, m.heartbeat) for m in node.members()] == before


def test_an_answer_confirms_members_held_already_but_not_yet_confirmed() -> None:
    seed, _others = _seed_with(40)
    node = _member(7000)
    seed._send_table(node.address, reply_wanted=False)  # unasked: members wait to be confirmed
    for _, message in seed.take_outgoing():
        _deliver(node, message, seed.address, T0_MS)
    assert len(node.live.confirmed) == 1  # only the seed, which spoke for itself
    node.add_seed(seed.address)
    node.tick(T0_MS + 1)
    for _, message in node.take_outgoing():
        if isinstance(message, PushPull):
            _deliver(seed, message, node.address, T0_MS + 1)
    for _, message in seed.take_outgoing():
        _deliver(node, message, seed.address, T0_MS + 2)  # the answer: every delta held already
    assert len(node.live.confirmed) == len(seed.members()) - 1
