"""The peers data gossip is sent to: live, confirmed members, or a static list.

Why this module exists: every part of the gossip core picks random peers, and a seed must
reproduce a run exactly, so the set is a list whose order depends only on the call sequence
(adds append, removes swap the last one in) and picking is one ``random.Random.sample``.
With membership, the membership link (:mod:`hearsay.protocol.gossip.membership_link`) adds and
removes members as their events arrive; without it (the simulator's static mode, tests) the
driver does through ``GossipNode.add_peer`` / ``remove_peer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hearsay.protocol.membership import Address

if TYPE_CHECKING:
    import random

__all__ = ["Peers"]


class Peers:
    """An ordered set of peer addresses (never our own) with uniform random picks."""

    def __init__(self, own: Address, rng: random.Random) -> None:
        self._own = own
        self._rng = rng
        self._addresses: list[Address] = []
        self._position: dict[Address, int] = {}

    def __len__(self) -> int:
        return len(self._addresses)

    def __contains__(self, peer: object) -> bool:
        return peer in self._position

    def __iter__(self) -> Iterator[Address]:
        return iter(self._addresses)

    def add(self, peer: Address) -> None:
        """Add ``peer`` (ignored for ourselves and for peers already held)."""
        peer = (peer[0], int(peer[1]))
        if peer == self._own or peer in self._position:
            return
        self._position[peer] = len(self._addresses)
        self._addresses.append(peer)

    def remove(self, peer: Address) -> None:
        pos = self._position.pop(peer, None)
        if pos is None:
            return
        last = self._addresses.pop()
        if pos < len(self._addresses):
            self._addresses[pos] = last
            self._position[last] = pos

    def pick(self, count: int, exclude: Address | None = None) -> list[Address]:
        """Up to ``count`` distinct peers chosen uniformly at random, never ``exclude``."""
        peers = self._addresses
        extra = 1 if exclude is not None and exclude in self._position else 0
        take = min(len(peers), count + extra)
        if take <= 0:
            return []
        chosen = self._rng.sample(peers, take)
        if extra:
            chosen = [p for p in chosen if p != exclude]
        return chosen[:count]
