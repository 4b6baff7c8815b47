"""The link between membership and data gossip: membership's driver inside the node.

Why this module exists: an optional :class:`~hearsay.protocol.membership.Membership` supplies
the live members and failure detection; its messages travel in the same envelope and its
events come out of ``GossipNode.next_event``. This part drives it (ticks, syncs, replies),
passes its events on, and does what its live-peer set asks of the data plane:

- SWIM's probes and liveness notices (``Membership.take_outgoing``) are sent as they come; its
  tick runs at its own next deadline (``Membership.next_deadline_ms``) or the node's tick;
- a member learned from others is probed (a PING sent to the address it announces; at most
  :data:`CONFIRM_PINGS_PER_S` a second, so a view filling by syncs is no flood: members a
  push-pull answer vouches for meanwhile need no ping): membership uses it as a peer once it
  answers, or after ``member_confirm_ms`` still alive;
- a member seen failed or left that comes back is repaired by anti-entropy at once.

The live-peer set itself is membership's (``Membership.live``): the node picks from it and
keeps no copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import MessageType
from hearsay.protocol.gossip.outbox import Outbox
from hearsay.protocol.gossip.shared import NEVER
from hearsay.protocol.membership import Address, Membership, MembershipEvent

__all__ = ["MembershipLink"]

CONFIRM_PINGS_PER_S: Final = 20
"""Pings confirming members learned from others, per second at most (and at once)."""


class MembershipLink:
    """Membership's driver inside the node: ticks, syncs, replies, probes and repairs."""

    def __init__(
        self,
        membership: Membership | None,
        outbox: Outbox,
        repair: Callable[[list[Address]], None],
    ) -> None:
        self.membership = membership
        self._outbox = outbox
        self._repair = repair
        """Starts anti-entropy with peers that came back."""
        self.current_source: Address | None = None
        """The sender of the datagram being handled (it answers on the address it claims)."""
        now = outbox.now
        self._confirm_tokens = float(CONFIRM_PINGS_PER_S)
        self._confirm_refill_ms = now
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
            self._tick_ms = min(
                now_ms + self._outbox.config.membership_tick_ms, membership.next_deadline_ms
            )
            self._drain()
            membership.confirm_overdue(self._outbox.now, self._outbox.config.member_confirm_ms)
        if now_ms >= self._sync_ms:
            self.sync()
            self._sync_ms = now_ms + membership.sync_interval_ms

    def join(self, seeds: Sequence[Address]) -> None:
        """Seeds go to membership (a sync starts at once)."""
        membership = self.membership
        assert membership is not None
        for seed in seeds:
            membership.add_seed(seed)
        self._sync_ms = self._outbox.now

    def leave(self) -> None:
        """Announce a graceful leave."""
        if self.membership is not None:
            self.membership.leave(self._outbox.now)
            self.sync()

    def heard_from(self, source: Address) -> None:
        """``source`` sent us an authentic message: it answers on the address it claims."""
        if self.membership is not None:
            self.membership.heard_from(source)

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
        membership = self.membership
        if membership is None:
            self._outbox.drop(source, "no-membership")
            return
        reply = membership.handle(
            msg.unpack(payload), self._outbox.now, self._budget(), source=self.current_source
        )
        if reply is not None:
            self._outbox.send(MessageType.MEMBERSHIP, msg.packb(reply), [source])
        self._tick_ms = min(self._tick_ms, membership.next_deadline_ms)
        self._drain()

    def _drain(self) -> None:
        """Send membership's probes and notices, pass its events on, probe the members its
        live set asks about, and repair with the members that came back."""
        membership = self.membership
        assert membership is not None
        for address, message in membership.take_outgoing():
            self._outbox.send(MessageType.MEMBERSHIP, msg.packb(message), [address])
        while True:
            event: MembershipEvent | None = membership.next_event()
            if event is None:
                break
            self._outbox.emit(event)
        live = membership.live
        if live.probes:
            now = self._outbox.now
            self._confirm_tokens = min(
                float(CONFIRM_PINGS_PER_S),
                self._confirm_tokens
                + max(0, now - self._confirm_refill_ms) * CONFIRM_PINGS_PER_S / 1000,
            )
            self._confirm_refill_ms = now
        while live.probes and self._confirm_tokens >= 1:
            address = live.probes.popleft()
            ping = membership.confirmation_ping(address)
            if ping is not None:
                self._confirm_tokens -= 1
                self._outbox.send(MessageType.MEMBERSHIP, msg.packb(ping), [address])
        if live.reconnected:
            reconnected = list(live.reconnected)
            live.reconnected.clear()
            self._repair(reconnected[: self._outbox.config.reconnect_repairs_max])
