"""Gossip nodes driven by hand: datagrams passed between them explicitly, no network."""

from __future__ import annotations

from collections.abc import Callable

from hearsay.protocol.membership import Address
from hearsay.protocol.node import GossipNode

NOW = 1_700_000_000_000


def deliver(
    nodes: dict[Address, GossipNode],
    now: int = NOW,
    *,
    drop: Callable[[bytes, Address, Address], bool] = lambda d, s, t: False,
    rounds: int = 50,
) -> int:
    """Pass datagrams around until nobody has anything to send; returns how many moved."""
    moved = 0
    for _ in range(rounds):
        batch = [(src, d, dest) for src, n in nodes.items() for d, dest in n.datagrams_to_send()]
        if not batch:
            return moved
        for src, data, dest in batch:
            if dest in nodes and not drop(data, src, dest):
                nodes[dest].receive_datagram(data, src, now)
                moved += 1
    raise AssertionError("datagrams kept flowing")
