"""The rumour's tail: recent keys offered in DIGESTs, and pulls of what a digest showed missing.

Why this module exists: pure push misses about ``e**-fanout`` of the nodes. So every key that
changed here stays *recent* for ``recent_rounds`` gossip rounds; each round the node sends one
DIGEST ``(key, content hash)`` of its recent keys to ``digest_fanout`` random peers, which
answer with an EXCHANGE for the keys whose hash differs (their own state, or nothing) and get
back exactly what they lack. A node that learned from a digest that it lacks a key pulls it
again from random peers for ``pull_retries`` rounds until a reply brings it. Cost: one datagram
per node per round while something is recent, shared by every key changed in that window;
nothing when idle.

The tail owns the gossip round's deadline (paced rumours leave on the same round), the recent
keys, the keys wanted, and the lately changed keys anti-entropy pushes eagerly.
"""

from __future__ import annotations

from hearsay.lattice.keyspace import Keyspace
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import MessageType
from hearsay.protocol.gossip.outbox import Outbox
from hearsay.protocol.gossip.peers import Peers
from hearsay.protocol.gossip.shared import NEVER, BoundedTable, is_settling
from hearsay.protocol.membership import Address

__all__ = ["Tail"]


class Tail:
    """Recent keys, wanted keys, lately changed keys and the gossip round's deadline."""

    def __init__(self, outbox: Outbox, peers: Peers) -> None:
        self._outbox = outbox
        self._peers = peers
        self._keyspace: Keyspace = outbox.keyspace
        self.recent: dict[bytes, int] = {}
        """Keys offered in digests -> rounds left (beyond ``recent_rounds``: still waiting)."""
        self.wanted: dict[bytes, int] = {}
        """Keys a DIGEST showed we lack, with pull retries left (cleared by any reply)."""
        self.changed: BoundedTable[bytes, int] = BoundedTable(outbox.config.changed_keys_max)
        """Keys that changed here lately (oldest first) -> when; offered eagerly to a peer whose
        anti-entropy digest differs: it most likely lacks exactly these."""
        self.round_ms = NEVER
        """When the next gossip round runs (NEVER while nothing is recent, wanted or paced)."""

    def arm_round(self) -> None:
        if self.round_ms >= NEVER:
            self.round_ms = self._outbox.now + self._outbox.config.gossip_interval_ms

    def note_changed(self, key: bytes) -> None:
        """Remember ``key`` as lately changed here (bounded; for anti-entropy's eager push)."""
        self.changed.put(key, self._outbox.now)

    def mark_recent(self, key: bytes) -> None:
        """Lately changed, and offered in digests for the next rounds while there are peers
        to offer it to (without any, the table would only grow: nothing drains it)."""
        outbox = self._outbox
        self.changed.put(key, outbox.now)  # (note_changed, inline: every client write)
        cfg = outbox.config
        if cfg.recent_rounds <= 0 or not self._peers.addresses:
            return
        self.recent[key] = cfg.recent_rounds + cfg.digest_delay_rounds
        if self.round_ms >= NEVER:  # (arm_round, inline: every write, here or replicated)
            self.round_ms = outbox.now + cfg.gossip_interval_ms

    def got(self, key: bytes) -> None:
        """A reply brought ``key``: stop pulling it."""
        self.wanted.pop(key, None)

    def round(self, rumours_waiting: bool) -> None:
        """Offer the recent keys' digest to a random peer and pull wanted keys again; run
        again a round later while anything (``rumours_waiting`` too) is left."""
        outbox = self._outbox
        cfg = outbox.config
        if not self._peers:
            # Every peer is gone: nobody to offer the recent keys to. A peer that comes back
            # is repaired by anti-entropy at once, so they are dropped, not kept unbounded.
            self.recent.clear()
        elif self.recent:
            self._offer_digest()
        if self.wanted:
            self._retry_pulls()
        busy = bool(self.recent or rumours_waiting or self.wanted)
        self.round_ms = outbox.now + cfg.gossip_interval_ms if busy else NEVER

    def _offer_digest(self) -> None:
        outbox = self._outbox
        cfg = outbox.config
        limit = cfg.recent_rounds
        recent = self.recent
        ready: list[bytes] = []
        for key, left in list(recent.items()):
            if left > limit:
                recent[key] = left - 1  # the push phase is still running: wait
            else:
                ready.append(key)
        items: list[bytes] = []
        used = 0
        room = outbox.payload_budget - 8
        offered: list[bytes] = []
        for key in ready:
            entry = self._keyspace.entry(key)
            if entry is None:
                offered.append(key)
                continue
            item = msg.hash_item(key, self._keyspace.key_hash(key))
            if used + len(item) > room:
                break
            items.append(item)
            used += len(item)
            offered.append(key)
        peers = self._peers.pick(cfg.digest_fanout)
        if items and peers and outbox.bucket.take(outbox.now, len(peers)):
            outbox.send(MessageType.DIGEST, msg.join_items(b"", items), peers)
        if peers:
            for key in offered:
                left = recent.pop(key) - 1
                if left > 0:
                    recent[key] = left

    def _retry_pulls(self) -> None:
        """Keys a digest showed we lack and no reply brought yet: ask another random peer."""
        items: list[bytes] = []
        for key in list(self.wanted):
            left = self.wanted.pop(key) - 1
            if left > 0:
                self.wanted[key] = left
            items.append(msg.exchange_item(key, self._keyspace.entry(key)))
        peers = self._peers.pick(1)
        if items and peers:
            self._outbox.stats.pulls += 1
            for payload in self._outbox.pack(b"", items):
                self._outbox.send(MessageType.EXCHANGE, payload, peers)

    def on_digest(self, payload: bytes, source: Address) -> None:
        """A peer's recent keys: ask for those whose hash differs from ours (or we lack)."""
        outbox = self._outbox
        wanted: list[bytes] = []
        retries = outbox.config.pull_retries
        for key, content_hash in msg.decode_digest(payload):
            mine = self._keyspace.entry(key)
            if mine is None:
                wanted.append(msg.exchange_item(key, None))
            elif self._keyspace.key_hash(key) != content_hash and not is_settling(
                self.changed, key, mine, outbox.now, outbox.config.gossip_interval_ms
            ):
                wanted.append(msg.exchange_item(key, mine))
            else:
                continue
            if retries > 0:
                self.wanted[key] = retries
        if self.wanted:
            self.arm_round()
        for payload_out in self._outbox.pack(b"", wanted):
            self._outbox.send(MessageType.EXCHANGE, payload_out, [source])
