"""The peers data gossip is sent to, and the seeded picks among them.

Why this module exists: every part of the gossip core picks random peers, and a seed must
reproduce a run exactly, so picking is one ``random.Random.sample`` (the node's generator) over
a list whose order depends only on the call sequence. The list is not held here: with
membership it is membership's live-peer set (:class:`~hearsay.protocol.membership.live_set.
LiveSet`, kept in step with its transitions); without it (the simulator's static mode, tests)
it is a static :class:`AddressSet` that the node owns and the driver fills through
``GossipNode.add_peer`` / ``remove_peer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hearsay.protocol.membership import Address, AddressSet

if TYPE_CHECKING:
    import random

__all__ = ["Peers"]


class Peers:
    """Uniform random picks over a set of peer addresses that someone else keeps."""

    def __init__(self, addresses: AddressSet, rng: random.Random) -> None:
        self._set = addresses
        self._rng = rng
        self.addresses = addresses.addresses
        """The peers as a list (the set's own, changed in place by it: read it, never change
        it): a write's path tests it for peers without two Python ``__len__`` calls."""

    def __len__(self) -> int:
        return len(self._set)

    def __contains__(self, peer: object) -> bool:
        return peer in self._set

    def __iter__(self) -> Iterator[Address]:
        return iter(self._set)

    def pick(self, count: int, exclude: Address | None = None) -> list[Address]:
        """Up to ``count`` distinct peers chosen uniformly at random, never ``exclude``."""
        peers = self._set.addresses
        extra = 1 if exclude is not None and exclude in self._set else 0
        take = min(len(peers), count + extra)
        if take <= 0:
            return []
        if not extra and take == len(peers):
            # Every peer (a client write in a small cluster): the order is no choice, so no
            # sample (one per key per drain, the most of a pick's cost).
            return list(peers)
        chosen = self._rng.sample(peers, take)
        if extra:
            chosen = [p for p in chosen if p != exclude]
        return chosen[:count]
