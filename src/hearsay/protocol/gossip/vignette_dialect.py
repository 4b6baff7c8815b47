"""The vignette dialect: raw msgpack peers answered in kind, presence, searches and aggregates.

Why this module exists: vignette peers (Clojure's ``full`` dialect, Ruby's ``ttl`` hop count)
speak raw msgpack maps on the gossip port (:mod:`hearsay.protocol.vignette` is the wire). They
are answered in kind and kept as neighbours while their presence is fresh; ``%`` searches and
``*`` aggregates scan every key, so they are rate limited. Their writes replicate to hearsay
peers like any other (the rumour and pull callables the router passes in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from hearsay.base.errors import DecodeError
from hearsay.lattice.entry import NO_EXPIRY, SHARED_ORIGIN, Entry
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import vignette
from hearsay.protocol.diff import exceeding
from hearsay.protocol.gossip.outbox import Outbox
from hearsay.protocol.gossip.shared import NEVER, BoundedTable, is_whole
from hearsay.protocol.membership import Address
from hearsay.protocol.pacing import TokenBucket

if TYPE_CHECKING:
    import random

__all__ = ["VignetteDialect"]

Rumour = Callable[[bytes, Entry, bool, Address | None], None]
"""Spread a grown entry to hearsay peers: (key, delta, whole, exclude)."""


class VignetteDialect:
    """vignette neighbours, their presence, and our answers to their datagrams."""

    def __init__(
        self,
        outbox: Outbox,
        rng: random.Random,
        *,
        mark_recent: Callable[[bytes], None],
        rumour: Rumour,
        pull: Callable[[bytes, Address | None], None],
    ) -> None:
        self._outbox = outbox
        self._rng = rng
        self._keyspace: Keyspace = outbox.keyspace
        self._mark_recent = mark_recent
        self._rumour = rumour
        self._pull = pull
        cfg = outbox.config
        self.peers: BoundedTable[Address, int] = BoundedTable(cfg.vignette_peers_max)
        """vignette neighbours -> when last seen (unix ms); full: newcomers are refused."""
        self._search_bucket = TokenBucket(
            cfg.vignette_searches_per_s, float(cfg.vignette_search_burst)
        )
        self._presence = False
        """Whether we announce our presence (once joined with vignette seeds)."""
        self.presence_ms = NEVER
        """When our presence is next sent to a sample of neighbours."""

    def join(self, seeds: list[Address]) -> None:
        """Send our presence (full) and an ``n:%`` search to ``seeds``, to learn the
        neighbours they know; from now on our presence is announced periodically."""
        outbox = self._outbox
        self._presence = True
        own = self._own_presence()
        for seed in seeds:
            if seed == outbox.address:
                continue
            self._note_peer(seed, outbox.now)
            outbox.send_raw(own, seed)
            outbox.send_raw(vignette.encode_read(vignette.PRESENCE_SEARCH), seed)
        self.presence_ms = outbox.now + outbox.config.presence_interval_ms

    def handle_timer(self, now_ms: int) -> None:
        if now_ms < self.presence_ms:
            return
        cfg = self._outbox.config
        self.presence_ms = now_ms + cfg.presence_interval_ms
        neighbours = self._fresh_peers()
        if not self._presence or not neighbours:
            return
        own = self._own_presence()
        for peer in self._rng.sample(neighbours, min(cfg.presence_sample, len(neighbours))):
            self._outbox.send_raw(own, peer)

    def _own_presence(self) -> bytes:
        """Our presence datagram; the presence key is merged here first and, like every merge
        into the keyspace, reported as a ``KeyChanged`` (so the engine persists it)."""
        outbox = self._outbox
        host, port = outbox.address
        key = vignette.presence_key(host, port)
        vector = vignette.presence_vector(outbox.now)
        raw_key = key.encode()
        outbox.merge(raw_key, _raw_entry(self._keyspace.entry(raw_key), vector), outbox.address)
        return vignette.encode(key, vector, full=True, ttl=outbox.config.vignette_ttl)

    def _note_peer(self, peer: Address, seen_ms: int) -> None:
        """Remember a vignette peer as seen at ``seen_ms`` (a bounded table)."""
        peers = self.peers
        if not peers.has_room_for(peer):
            dropped = self._outbox.stats.dropped
            dropped["vignette-peers-full"] = dropped.get("vignette-peers-full", 0) + 1
            return
        peers[peer] = max(peers.get(peer, 0), seen_ms)

    def _fresh_peers(self) -> list[Address]:
        now = self._outbox.now
        timeout = self._outbox.config.presence_timeout_ms
        dropped = self._outbox.stats.dropped
        for peer in [p for p, t in self.peers.items() if now - t > timeout]:
            del self.peers[peer]
            dropped["vignette-silent"] = dropped.get("vignette-silent", 0) + 1
        return list(self.peers)

    def _send(self, key: str, vector: MaxVector, peer: Address, *, full: bool, ttl: int) -> None:
        budget = self._outbox.config.udp_payload_bytes_max
        for datagram in vignette.encode_chunks(
            key, vector, full=full, ttl=ttl, budget_bytes=budget
        ):
            self._outbox.send_raw(datagram, peer)

    def forward(
        self, key: bytes, grown: Entry, full: bool, ttl: int, source: Address | None
    ) -> None:
        """Pass what grew in a vector key on to ``fanout`` fresh neighbours (hop count ``ttl``)."""
        if ttl <= 0 or grown.schema is not vignette.VECTOR_SCHEMA:
            return
        try:
            text = key.decode()
        except UnicodeDecodeError:
            return
        neighbours = [p for p in self._fresh_peers() if p != source]
        chosen = self._rng.sample(neighbours, min(self._outbox.config.fanout, len(neighbours)))
        for peer in chosen:
            self._send(text, grown.vector, peer, full=full, ttl=ttl)

    def forward_from_peer(self, key: bytes, grown: Entry, full: bool, source: Address) -> None:
        """What a hearsay peer's PUSH grew goes to vignette neighbours too (if we have any)."""
        if self.peers:
            self.forward(key, grown, full, vignette.TTL_DEFAULT, source)

    def on_datagram(self, data: bytes, source: Address) -> None:
        outbox = self._outbox
        outbox.stats.vignette_in += 1
        try:
            message = vignette.decode(data)
        except DecodeError:
            outbox.drop(source, "malformed-vignette")
            return
        self._note_peer(source, outbox.now)
        ttl = max(1, message.hops_left)
        if (message.is_aggregate or message.is_search) and not self._search_bucket.take(outbox.now):
            outbox.drop(source, "rate-limited")
            return
        if message.is_aggregate:
            self._aggregate(message, source, ttl)
        elif message.is_search:
            self._search(message, source, ttl)
        elif message.is_read:
            entry = self._keyspace.get(message.key.encode(), outbox.now)
            if entry is not None and not entry.additive and not entry.vector.is_empty():
                self._send(message.key, entry.vector, source, full=True, ttl=ttl)
        else:
            self._store(message, source)

    def _store(self, message: vignette.VignetteMessage, source: Address) -> None:
        outbox = self._outbox
        key = message.key.encode()
        vector = message.vector
        presence = vignette.parse_presence_key(message.key)
        if presence is not None:
            stamp = vignette.presence_unix_ms(vector.get(0))
            vector = MaxVector.from_pairs([0], [stamp])
            if presence != outbox.address:
                self._note_peer(presence, min(stamp, outbox.now))
        before = self._keyspace.entry(key)
        if before is not None and before.schema not in (None, vignette.VECTOR_SCHEMA):
            outbox.drop(source, "wrong-type")
            return
        known = before is not None and before.schema is not None
        delta = _raw_entry(before, vector)
        result = outbox.merge(key, delta, source)
        full = bool(message.full)
        grown = result.delta
        held = self._keyspace.entry(key)
        if grown is not None and held is not None:
            whole = (not known and full) or is_whole(grown, held)
            self.forward(key, grown, whole, message.hops_left - 1, source)
            if presence is None:
                self._mark_recent(key)
                self._rumour(key, grown, whole, None)
        if known and held is not None:
            more = exceeding(held, delta, mentioned_only=True)
            if more is not None and not more.is_empty():
                self._send(
                    message.key, more.vector, source, full=False, ttl=max(1, message.hops_left)
                )
        elif not known and not full:
            outbox.send_raw(vignette.encode_read(message.key, outbox.config.vignette_ttl), source)
            if presence is None:
                self._pull(key, None)  # and from hearsay peers (counts the pull)
            else:
                outbox.stats.pulls += 1

    def _matching(self, pattern_key: str) -> list[tuple[str, Entry]]:
        pattern = vignette.compile_pattern(pattern_key)
        now = self._outbox.now
        found: list[tuple[str, Entry]] = []
        for key, entry in self._keyspace.items():
            if entry.schema is None or entry.additive:
                continue
            try:
                text = key.decode()
            except UnicodeDecodeError:
                continue
            if vignette.matches(pattern, text) and self._keyspace.get(key, now) is not None:
                found.append((text, entry))
                if len(found) >= self._outbox.config.search_results_max:
                    break
        return found

    def _search(self, message: vignette.VignetteMessage, source: Address, ttl: int) -> None:
        for text, entry in self._matching(message.key):
            if message.is_read:
                self._send(text, entry.vector, source, full=True, ttl=ttl)
                continue
            query = _raw_entry(entry, message.vector)
            more = exceeding(entry, query, mentioned_only=True)
            if more is not None and not more.is_empty():
                self._send(text, more.vector, source, full=False, ttl=ttl)

    def _aggregate(self, message: vignette.VignetteMessage, source: Address, ttl: int) -> None:
        total = MaxVector()
        for _, entry in self._matching(message.key):
            total.merge(entry.vector)
        if not message.is_read:
            mentioned = message.vector
            m_idx, m_val = mentioned.pairs()
            vals = np.array([total.get(int(i)) for i in m_idx.tolist()], dtype=np.uint64)
            keep = vals > m_val
            total = MaxVector.from_pairs(m_idx[keep], vals[keep])
        if not total.is_empty():
            self._send(message.key, total, source, full=message.is_read, ttl=ttl)


def _raw_entry(held: Entry | None, vector: MaxVector) -> Entry:
    """A vignette delta: the raw vector under the ``vector`` schema, at the key's epoch."""
    epoch = 0 if held is None else held.epoch
    return Entry(epoch, vignette.VECTOR_SCHEMA, NO_EXPIRY, {SHARED_ORIGIN: vector})
