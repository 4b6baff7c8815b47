"""``Membership.force_leave`` (HEARSAY.FORCELEAVE's core), sans-IO: a failed member is marked
left at once where it is forced out, and every node that syncs with that one hears it left."""

from __future__ import annotations

import random

import msgpack
import pytest

from hearsay.protocol.membership import MemberLeft, Membership, MemberState
from hearsay.protocol.presets import LOCAL

T0_MS = 1_700_000_000_000
STEP_MS = 100
DETECTION_BOUND_MS = 60_000
"""Far beyond the LOCAL preset's probe period plus its longest suspicion: a bound, not a wait."""


def _deliver(up: list[Membership], now_ms: int) -> None:
    """SWIM's own messages (probes, acks, notices) among the running nodes, until quiet
    (bounded); a message to a node that is not running is lost."""
    by_address = {a.address: a for a in up}
    for _ in range(50):
        moved = False
        for a in up:
            for target, message in a.take_outgoing():
                b = by_address.get(target)
                if b is None:
                    continue
                moved = True
                reply = b.handle(msgpack.unpackb(msgpack.packb(message)), now_ms, source=a.address)
                if reply is not None:
                    a.handle(msgpack.unpackb(msgpack.packb(reply)), now_ms, source=b.address)
        if not moved:
            return


def _exchange(a: Membership, b: Membership, now_ms: int) -> None:
    """One SYN / ACK / ACK2 round from ``a`` to ``b``, through msgpack as on the wire."""
    ack = b.handle(msgpack.unpackb(msgpack.packb(a.make_syn())), now_ms)
    assert ack is not None
    ack2 = a.handle(msgpack.unpackb(msgpack.packb(ack)), now_ms)
    if ack2 is not None:
        b.handle(msgpack.unpackb(msgpack.packb(ack2)), now_ms)


def _state(of: Membership, node_id: str) -> MemberState | None:
    row = of.member(node_id)
    return None if row is None else row.state


def test_a_forced_out_member_is_left_here_at_once_and_then_everywhere() -> None:
    nodes = [
        Membership(f"node-{i}", 1, ("127.0.0.1", 9000 + i), LOCAL, random.Random(i), now_ms=T0_MS)
        for i in range(3)
    ]
    up = list(nodes)
    now = T0_MS

    def step() -> None:
        nonlocal now
        now += STEP_MS
        for a in up:
            a.tick(now)
        _deliver(up, now)
        for a in up:
            for b in up:
                if a is not b:
                    _exchange(a, b, now)

    for _ in range(50):
        step()
    assert all(_state(a, b.node_id) is MemberState.ALIVE for a in nodes for b in nodes)
    first, second, victim = nodes
    with pytest.raises(ValueError, match="not a failed member"):
        first.force_leave(second.node_id, now)  # alive: it would keep announcing itself
    with pytest.raises(ValueError, match="not a failed member"):
        first.force_leave("nobody", now)
    up.remove(victim)
    for _ in range(DETECTION_BOUND_MS // STEP_MS):
        step()
        if _state(first, victim.node_id) is MemberState.FAILED:
            break
    assert _state(first, victim.node_id) is MemberState.FAILED
    first.events()
    first.force_leave(victim.node_id, now)
    assert _state(first, victim.node_id) is MemberState.LEFT
    assert MemberLeft(victim.node_id, 1) in first.events()
    assert victim.node_id not in {row.node_id for row in first.live_peers()}
    for _ in range(3):
        step()
    assert _state(second, victim.node_id) is MemberState.LEFT
    for _ in range(LOCAL.dead_node_reap_ms // STEP_MS + 10):
        now += STEP_MS
        for a in up:
            a.tick(now)
        _deliver(up, now)
    assert _state(first, victim.node_id) is None  # reaped like any member that left
    assert _state(second, victim.node_id) is None
