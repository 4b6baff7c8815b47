"""The link between membership and data gossip: live members become peers once confirmed.

Why this module exists: an optional :class:`~hearsay.protocol.membership.Membership` supplies
the live members and failure detection; its messages travel in the same envelope and its
events come out of ``GossipNode.next_event``. This part drives it (ticks, syncs, replies),
passes its events on, and keeps the data plane's peers in step with them:

- a member learned from others is gossiped to once it answers us directly (a probe is sent at
  once), or after ``member_confirm_ms`` still alive (behind NAT its datagrams may come from
  another address): without a keyring anyone can announce thousands of invented members, and
  every rumour sent to one of them is lost;
- a member seen failed or left that comes back is repaired by anti-entropy at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import MessageType
from hearsay.protocol.gossip.outbox import Outbox
from hearsay.protocol.gossip.peers import Peers
from hearsay.protocol.gossip.shared import NEVER
from hearsay.protocol.membership import (
    Address,
    MemberAlive,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    Membership,
    MembershipEvent,
)

__all__ = ["MembershipLink"]


class MembershipLink:
    """Membership's driver inside the node, and the confirmation of members as peers."""

    def __init__(
        self,
        membership: Membership | None,
        outbox: Outbox,
        peers: Peers,
        repair: Callable[[list[Address]], None],
    ) -> None:
        self.membership = membership
        self._outbox = outbox
        self._peers = peers
        self._repair = repair
        """Starts anti-entropy with peers that came back."""
        self._member_addr: dict[str, Address] = {}
        self._failed_members: dict[str, bool] = {}
        """Members seen failed or left: their return triggers an immediate repair."""
        self._confirmed: set[Address] = set()
        """Member addresses heard from directly (or joined explicitly): gossip goes to them."""
        self._unconfirmed: dict[Address, tuple[str, int]] = {}
        """Members learned from others, not heard directly yet: address -> (node, promote at)."""
        self.current_source: Address | None = None
        """The sender of the datagram being handled (it answers on the address it claims)."""
        now = outbox.now
        self._tick_ms = now if membership is not None else NEVER
        self._sync_ms = now if membership is not None else NEVER

    @property
    def deadline_ms(self) -> int:
        return min(self._tick_ms, self._sync_ms)

    def handle_timer(self, now_ms: int) -> None:
        membership = self.membership
        if membership is None:
            return
        if now_ms >= self._tick_ms:
            membership.tick(now_ms)
            self._tick_ms = now_ms + self._outbox.config.membership_tick_ms
            self._drain()
            if self._unconfirmed:
                self._promote_unconfirmed()
        if now_ms >= self._sync_ms:
            self.sync()
            self._sync_ms = now_ms + membership.preset.membership_sync_interval_ms

    def join(self, seeds: Sequence[Address]) -> None:
        """Seeds go to membership (a sync starts at once), or without it to the peers."""
        membership = self.membership
        for seed in seeds:
            if membership is not None:
                membership.add_seed(seed)
                self._confirmed.add((seed[0], int(seed[1])))
            else:
                self._peers.add(seed)
        if membership is not None:
            self._sync_ms = self._outbox.now

    def leave(self) -> None:
        """Announce a graceful leave."""
        if self.membership is not None:
            self.membership.leave(self._outbox.now)
            self.sync()

    def heard_from(self, source: Address) -> None:
        """``source`` sent us an authentic message: it answers on the address it claims."""
        if source in self._unconfirmed:
            self._confirm(source)

    def _budget(self) -> int:
        return self._outbox.payload_budget - 8

    def sync(self) -> None:
        membership = self.membership
        assert membership is not None
        targets = membership.sync_targets()
        if targets:
            syn = membership.make_syn(self._budget())
            self._outbox.send(MessageType.MEMBERSHIP, msg.packb(syn), targets)
        self._drain()

    def on_message(self, payload: bytes, source: Address) -> None:
        if self.membership is None:
            self._outbox.drop(source, "no-membership")
            return
        reply = self.membership.handle(msg.unpack(payload), self._outbox.now, self._budget())
        if reply is not None:
            self._outbox.send(MessageType.MEMBERSHIP, msg.packb(reply), [source])
        self._drain()

    def _drain(self) -> None:
        """Pass membership events on, keeping the live-peer list in step with them.

        The list is updated per event (O(1) each) rather than rebuilt from
        ``Membership.live_peers()``, which sorts every member.
        """
        membership = self.membership
        assert membership is not None
        reconnected: list[Address] = []
        while True:
            event: MembershipEvent | None = membership.next_event()
            if event is None:
                break
            if isinstance(event, MemberJoined):
                old = self._member_addr.get(event.node_id)
                if old is not None and old != event.address:
                    self._peers.remove(old)
                    self._unconfirmed.pop(old, None)
                self._member_addr[event.node_id] = event.address
                self._add_member_peer(event.node_id, event.address)
                if event.restarted or self._failed_members.pop(event.node_id, False):
                    reconnected.append(event.address)
            elif isinstance(event, MemberAlive):
                address = self._member_addr.get(event.node_id)
                if address is not None:
                    self._add_member_peer(event.node_id, address)
                    if self._failed_members.pop(event.node_id, False):
                        reconnected.append(address)
            elif isinstance(event, MemberFailed | MemberLeft):
                self._failed_members[event.node_id] = True
                address = self._member_addr.get(event.node_id)
                if address is not None:
                    self._peers.remove(address)
                    self._unconfirmed.pop(address, None)
            elif isinstance(event, MemberReaped):
                self._failed_members.pop(event.node_id, None)
                address = self._member_addr.pop(event.node_id, None)
                if address is not None:
                    self._peers.remove(address)
                    self._unconfirmed.pop(address, None)
                    self._confirmed.discard(address)
            self._outbox.emit(event)
        if reconnected:
            self._repair(reconnected[: self._outbox.config.reconnect_repairs_max])

    def _add_member_peer(self, node_id: str, address: Address) -> None:
        """Gossip to a live member once it is confirmed; otherwise probe it directly."""
        if address in self._confirmed or address == self.current_source:
            self._confirm(address)
            return
        if address in self._unconfirmed or self.membership is None:
            return
        promote_ms = self._outbox.now + self._outbox.config.member_confirm_ms
        self._unconfirmed[address] = (node_id, promote_ms)
        syn = self.membership.make_syn(self._budget())
        self._outbox.send(MessageType.MEMBERSHIP, msg.packb(syn), [address])

    def _confirm(self, address: Address) -> None:
        self._unconfirmed.pop(address, None)
        self._confirmed.add(address)
        self._peers.add(address)

    def _promote_unconfirmed(self) -> None:
        """Members still alive ``member_confirm_ms`` after we learned of them are used anyway
        (behind NAT their datagrams may come from another address than they announce)."""
        membership = self.membership
        if membership is None:
            return
        now = self._outbox.now
        for address, (node_id, promote_ms) in list(self._unconfirmed.items()):
            if now < promote_ms:
                continue
            member = membership.member(node_id)
            if member is not None and member.state.is_live:
                self._confirm(address)
            else:
                del self._unconfirmed[address]
