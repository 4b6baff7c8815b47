"""The live-peer set: the addresses of live members confirmed as reachable, kept in step.

Why this module exists: data gossip picks random peers for every rumour, so it needs the live
members as a list it can sample in O(1), not :meth:`Membership.live_addresses` (which sorts
every member). Membership owns that list and updates it on its own transitions, one event at a
time; the data plane reads it and never keeps a copy. A member learned from others joins the
set once it is confirmed:

- it answered us directly (:meth:`LiveSet.heard_from`, or its own message brought the news):
  that is liveness evidence too, and it is probed at once to get it;
- or it stayed alive ``confirm_ms`` after we learned of it (behind NAT its datagrams may come
  from another address than it announces): without a keyring anyone can announce thousands of
  invented members, and every rumour sent to one of them is lost.

The order of :class:`AddressSet` depends only on the call sequence (adds append, removes swap
the last one in), so a seeded pick over it reproduces a run exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

from hearsay.protocol.membership.events import (
    MemberAlive,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MembershipEvent,
)
from hearsay.protocol.membership.wire import Address

__all__ = ["AddressSet", "LiveSet"]

_QUEUED_MAX: Final = 10_000
"""Probes and reconnections waiting for the driver (it takes them after every call; the bound
only matters for a Membership driven without a gossip node)."""


class AddressSet:
    """An ordered set of peer addresses (never ``own``) with O(1) add and remove.

    ``addresses`` is the list to sample from; it is read, never changed, outside this class,
    and never replaced inside it (holders keep a reference: see ``Peers.addresses``).
    """

    def __init__(self, own: Address) -> None:
        self._own = own
        self.addresses: list[Address] = []
        self._position: dict[Address, int] = {}

    def __len__(self) -> int:
        return len(self.addresses)

    def __contains__(self, peer: object) -> bool:
        return peer in self._position

    def __iter__(self) -> Iterator[Address]:
        return iter(self.addresses)

    def add(self, peer: Address) -> None:
        """Add ``peer`` (ignored for ourselves and for peers already held)."""
        if type(peer[1]) is not int:
            peer = (peer[0], int(peer[1]))
        if peer == self._own or peer in self._position:
            return
        self._position[peer] = len(self.addresses)
        self.addresses.append(peer)

    def remove(self, peer: Address) -> None:
        pos = self._position.pop(peer, None)
        if pos is None:
            return
        last = self.addresses.pop()
        if pos < len(self.addresses):
            self.addresses[pos] = last
            self._position[last] = pos


class LiveSet:
    """Live, confirmed member addresses, and the members waiting to be confirmed."""

    def __init__(self, own: Address) -> None:
        self.confirmed = AddressSet(own)
        """The live-peer set data gossip picks from."""
        self._member_addr: dict[str, Address] = {}
        self._failed_members: set[str] = set()
        """Members seen failed or left: their return asks for an immediate repair."""
        self._heard: set[Address] = set()
        """Member addresses heard from directly (or seeds): confirmed whenever live."""
        self._unconfirmed: dict[Address, tuple[str, int]] = {}
        """Live members not heard directly yet: address -> (node, learned at ms)."""
        self.probes: deque[Address] = deque(maxlen=_QUEUED_MAX)
        """Unconfirmed members to probe directly (the driver sends each a SYN)."""
        self.reconnected: deque[Address] = deque(maxlen=_QUEUED_MAX)
        """Members back from failed or left, or restarted (the driver repairs with them)."""

    def add_seed(self, address: Address) -> None:
        """Seeds were given explicitly: they count as heard from."""
        self._heard.add(address)

    def heard_from(self, source: Address) -> None:
        """``source`` sent us an authentic message: it answers on the address it claims."""
        if source in self._unconfirmed:
            self._confirm(source)

    def on_event(
        self,
        event: MembershipEvent,
        source: Address | None,
        now_ms: int,
        *,
        vouched: bool = False,
    ) -> None:
        """Keep the set in step with one membership transition (``source``: the sender of the
        message that brought it, if any; ``vouched``: that message answered a push-pull we
        asked for, so a live member it brings is used at once, not probed first)."""
        if isinstance(event, MemberJoined):
            old = self._member_addr.get(event.node_id)
            if old is not None and old != event.address:
                self._drop(old)
            self._member_addr[event.node_id] = event.address
            self._live(event.node_id, event.address, source, now_ms, vouched)
            if event.restarted or _pop(self._failed_members, event.node_id):
                self.reconnected.append(event.address)
        elif isinstance(event, MemberAlive):
            address = self._member_addr.get(event.node_id)
            if address is not None:
                self._live(event.node_id, address, source, now_ms, vouched)
                if _pop(self._failed_members, event.node_id):
                    self.reconnected.append(address)
        elif isinstance(event, MemberFailed | MemberLeft):
            self._failed_members.add(event.node_id)
            address = self._member_addr.get(event.node_id)
            if address is not None:
                self._drop(address)
        elif isinstance(event, MemberReaped):
            self._failed_members.discard(event.node_id)
            address = self._member_addr.pop(event.node_id, None)
            if address is not None:
                self._drop(address)
                self._heard.discard(address)

    def confirm_overdue(self, now_ms: int, confirm_ms: int, is_live: Callable[[str], bool]) -> None:
        """Members still alive ``confirm_ms`` after we learned of them are used anyway (they
        wait in the order they were learned: the scan stops at the first not due)."""
        for address, (node_id, learned_ms) in list(self._unconfirmed.items()):
            if now_ms < learned_ms + confirm_ms:
                break
            if is_live(node_id):
                self._confirm(address)
            else:
                del self._unconfirmed[address]

    def failed_count(self) -> int:
        """Members seen failed or left (not reaped yet)."""
        return len(self._failed_members)

    def random_failed(self, fraction: float) -> Address | None:
        """The address of the failed member at ``fraction`` (in [0, 1)) of them by id."""
        ids = sorted(self._failed_members)
        if not ids:
            return None
        return self._member_addr.get(ids[min(len(ids) - 1, int(fraction * len(ids)))])

    def unconfirmed_id(self, address: Address) -> str | None:
        """The member waiting to be confirmed at ``address``, if any."""
        waiting = self._unconfirmed.get(address)
        return None if waiting is None else waiting[0]

    def has_unconfirmed(self) -> bool:
        return bool(self._unconfirmed)

    def _live(
        self, node_id: str, address: Address, source: Address | None, now_ms: int, vouched: bool
    ) -> None:
        """A member is live: use it if confirmed (or vouched for), otherwise probe it."""
        if vouched or address in self._heard or address == source:
            self._confirm(address)
            return
        if address in self._unconfirmed:
            return
        self._unconfirmed[address] = (node_id, now_ms)
        self.probes.append(address)

    def _confirm(self, address: Address) -> None:
        self._unconfirmed.pop(address, None)
        self._heard.add(address)
        self.confirmed.add(address)

    def _drop(self, address: Address) -> None:
        self.confirmed.remove(address)
        self._unconfirmed.pop(address, None)


def _pop(members: set[str], node_id: str) -> bool:
    """Remove ``node_id``; whether it was there."""
    if node_id in members:
        members.discard(node_id)
        return True
    return False
