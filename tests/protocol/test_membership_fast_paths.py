"""Membership's fast paths give exactly what the general paths give.

- :func:`~hearsay.protocol.membership.wire.decode` checks the usual digest items, delta headers
  and owner fields inline: the same values, or the same refusal, as the general checks (which
  a message built of tuples takes).
- :meth:`Membership.handle` drops the deltas of an ACK or ACK2 that we hold already before
  decoding them: the same reply, events and members as :meth:`Membership.on_ack` /
  :meth:`~Membership.on_ack2`, which decode every delta.
"""

from __future__ import annotations

import random
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.protocol.membership import Address, Membership, MembershipDecodeError
from hearsay.protocol.membership.wire import (
    KEY_ADDRESS,
    KEY_HEARTBEAT,
    KEY_STATUS,
    MessageKind,
    decode,
)
from hearsay.protocol.presets import LAN

T0_MS = 1_700_000_000_000
BUDGET = 1_400

_uints = st.one_of(
    st.integers(0, 300),
    st.sampled_from([-1, 2**63 - 1, 2**63, 2**64]),
    st.just(True),
    st.just("7"),
    st.none(),
)
_node_ids = st.one_of(
    st.sampled_from(["a", "b", "c", "0123456789abcdef"]),
    st.just(""),
    st.just("x" * 257),
    st.just(3),
)
_keys = st.sampled_from([KEY_ADDRESS, KEY_STATUS, KEY_HEARTBEAT, "role", "", b"\x00hb", 5])
_values = st.one_of(
    st.lists(st.one_of(st.text(max_size=3), st.integers(-1, 70_000)), max_size=3),
    st.sampled_from(["alive", "leaving", "left", "gone", "", "h" * 256]),
    _uints,
    st.binary(max_size=4),
)
_entries = st.one_of(st.lists(st.one_of(_keys, _values, _uints), min_size=4, max_size=4), _uints)
_entries = (
    st.builds(lambda k, v, ver, exp: [k, v, ver, exp], _keys, _values, _uints, _uints) | _entries
)
_deltas = st.one_of(
    st.builds(
        lambda n, g, f, t, es: [n, g, f, t, es],
        _node_ids,
        _uints,
        _uints,
        _uints,
        st.one_of(st.lists(_entries, max_size=4), _uints),
    ),
    st.lists(_uints, max_size=6),
)
_digest = st.lists(
    st.one_of(st.builds(lambda n, g, v: [n, g, v], _node_ids, _uints, _uints), _uints), max_size=4
)
_messages = st.one_of(
    st.builds(lambda s, c, d: [1, s, c, d], _node_ids, st.booleans(), _digest),
    st.builds(lambda s, r, d: [2, s, r, d], _node_ids, _digest, st.lists(_deltas, max_size=3)),
    st.builds(lambda s, d: [3, s, d], _node_ids, st.lists(_deltas, max_size=3)),
    st.builds(
        lambda s, r, d: [8, s, r, d], _node_ids, st.booleans(), st.lists(_deltas, max_size=3)
    ),
)


def _tuples(value: Any) -> Any:
    """The same message built of tuples (as in memory): every check takes its general path."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _decoded(raw: object) -> object:
    try:
        return decode(raw)
    except MembershipDecodeError as e:
        return ("refused", str(e))


@settings(max_examples=400, deadline=None)
@given(_messages)
def test_the_inline_checks_decode_or_refuse_as_the_general_checks(raw: list[Any]) -> None:
    assert _decoded(raw) == _decoded(_tuples(raw))


def _address(i: int) -> Address:
    return (f"10.0.0.{i}", 7000)


def _member(i: int) -> Membership:
    return Membership(
        f"{i:016x}", 1, _address(i), LAN, random.Random(i), now_ms=T0_MS, budget_bytes=BUDGET
    )


def _wire(message: object) -> object:
    return msgpack.unpackb(msgpack.packb(message))


def _cluster(size: int, rounds: int, rng: random.Random) -> list[Membership]:
    """``size`` members that synced ``rounds`` random pairs (partial views, some changes)."""
    nodes = [_member(i) for i in range(size)]
    for node in nodes[1:]:
        node.add_seed(nodes[0].address)
    now = T0_MS
    for _ in range(rounds):
        now += 50
        a, b = rng.sample(nodes, 2)
        if rng.random() < 0.2:
            a.set_tag("role", rng.choice(["x", "y", "z"]), now_ms=now)
        ack = b.handle(_wire(a.make_syn(BUDGET)), now, BUDGET, source=a.address)
        assert ack is not None
        ack2 = a.handle(_wire(ack), now, BUDGET, source=b.address)
        if ack2 is not None:
            b.handle(_wire(ack2), now, BUDGET, source=a.address)
    return nodes


def _view(m: Membership) -> object:
    return (
        sorted((i.node_id, i.generation, i.state, i.address, i.heartbeat) for i in m.members()),
        sorted(m.live_addresses()),
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 8), st.integers(0, 40))
def test_dropping_held_deltas_of_an_ack_changes_nothing(seed: int, size: int, rounds: int) -> None:
    rng = random.Random(seed)
    before = _cluster(size, rounds, rng)
    twin = _cluster(size, rounds, random.Random(seed))  # the same cluster, built again
    a, b = rng.sample(range(size), 2)
    now = T0_MS + 60_000
    ack = _wire(before[b].handle(_wire(before[a].make_syn(BUDGET)), now, BUDGET))
    assert _wire(twin[b].handle(_wire(twin[a].make_syn(BUDGET)), now, BUDGET)) == ack
    assert isinstance(ack, list) and ack[0] == MessageKind.ACK
    fast = before[a].handle(ack, now, BUDGET)
    general = twin[a].on_ack(ack, now, BUDGET)
    assert _wire(fast) == _wire(general)
    assert before[a].events() == twin[a].events()
    assert _view(before[a]) == _view(twin[a])
    if fast is not None:
        ack2 = _wire(fast)
        before[b].handle(ack2, now)
        twin[b].on_ack2(ack2, now)
        assert before[b].events() == twin[b].events()
        assert _view(before[b]) == _view(twin[b])
