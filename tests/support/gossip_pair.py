"""Two replicas gossiping with each other in memory, on virtual time (no sockets).

The sans-IO :class:`~hearsay.engine.replica.Replica` is driven as the runtime drives it:
datagrams out of one go into the other, timers fire at their deadlines.
"""

from __future__ import annotations

import itertools
import random
from typing import Final

from hearsay.engine.interfaces import CommandTable
from hearsay.engine.replica import Replica
from hearsay.persist.identity import NodeIdentity
from hearsay.protocol.membership import Address, Membership
from hearsay.protocol.node import NodeConfig
from hearsay.protocol.presets import preset_by_name

START_MS: Final = 1_700_000_000_000
STEP_MS: Final = 50
STEPS_MAX: Final = 400


class ReplicaPair:
    """Replicas ``a`` and ``b`` joined by gossip; :meth:`settle` delivers until quiet.

    Each is a new replica with the given node id, or the given replica (e.g. one opened on a
    data directory) once its gossip node is attached here.
    """

    def __init__(
        self, a: str | Replica, b: str | Replica, commands: CommandTable[object] | None = None
    ) -> None:
        self.now_ms = START_MS
        self.a = self._replica(a, ("127.0.0.1", 1), commands)
        self.b = self._replica(b, ("127.0.0.1", 2), commands)
        self._by_address: dict[Address, Replica] = {
            ("127.0.0.1", 1): self.a,
            ("127.0.0.1", 2): self.b,
        }
        self.a.join([("127.0.0.1", 2)], self.now_ms)
        for _ in range(STEPS_MAX):  # bounded: joined in a few steps
            self.step()
            assert self.a.node is not None and self.b.node is not None
            if self.a.node.peers and self.b.node.peers:
                self.settle()
                return
        raise AssertionError("the two replicas never joined")

    def _replica(
        self, given: str | Replica, address: Address, commands: CommandTable[object] | None
    ) -> Replica:
        if isinstance(given, Replica):
            replica = given
        else:
            replica = Replica(NodeIdentity(given, 1), commands=commands)
        node_id = replica.identity.node_id
        rng = random.Random(address[1])
        preset = preset_by_name("lan")
        nonces = itertools.count()
        replica.attach_gossip(
            address,
            config=NodeConfig.from_preset(preset),
            cluster="test",
            keyring=None,
            membership=Membership(node_id, 1, address, preset, rng, now_ms=self.now_ms),
            rng=rng,
            nonce_source=lambda size: next(nonces).to_bytes(size, "big"),
            now_ms=self.now_ms,
        )
        return replica

    def deliver(self, events: list[object] | None = None) -> int:
        """Hand every queued datagram to its addressee; how many moved. The replicas' events
        are drained (into ``events`` when given)."""
        moved = 0
        for source, replica in self._by_address.items():
            for data, target in replica.datagrams_to_send():
                self._by_address[target].receive_datagram(data, source, self.now_ms)
                moved += 1
            while (event := replica.next_event()) is not None:  # bounded by the queue
                if events is not None:
                    events.append(event)
        return moved

    def step(self) -> None:
        """Advance virtual time by one step, fire due timers, deliver."""
        self.now_ms += STEP_MS
        for replica in self._by_address.values():
            due = replica.get_timer()
            if due is not None and due <= self.now_ms:
                replica.handle_timer(self.now_ms)
        self.deliver()

    def settle(self) -> None:
        """Deliver until no datagram is in flight and no client write waits for its drain
        (bounded): a replica that drained less than ``drain_interval_ms`` ago pushes its
        writes when its timer fires, so virtual time moves on to that timer, as the runtime's
        would."""
        for _ in range(STEPS_MAX):
            if self.deliver():
                continue
            waiting = [r for r in self._by_address.values() if r.has_output()]
            if not waiting:
                return
            due = min(t for r in waiting if (t := r.get_timer()) is not None)
            self.now_ms = max(self.now_ms, due)
            for replica in waiting:
                replica.handle_timer(self.now_ms)
        raise AssertionError("the replicas never went quiet")
