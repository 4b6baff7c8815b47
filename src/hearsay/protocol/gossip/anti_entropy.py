"""Anti-entropy: repair whatever the rumours missed, with one random peer at a time.

Why this module exists: rumours and their tail are probabilistic; anti-entropy, every
``anti_entropy_interval_ms``, repairs any difference whatever the loss pattern. Group hashes of
the keyspace's buckets (AE_GROUPS, ~0.5 KB) -> the bucket hashes of differing groups
(AE_BUCKETS; an empty one means "in sync") -> the per-key hashes of differing buckets (AE_KEYS)
-> EXCHANGE / PUSH of the differing keys only. Its cost follows the difference, not the
keyspace. A responder that sees a difference also pushes its lately changed keys of those
groups at once (the peer most likely lacks exactly these: two hops instead of four). While
replicas differ, or a round got no answer, the next round starts after
``anti_entropy_retry_ms``; a peer seen failed that comes back is repaired at once. Messages
that do not fit a datagram leave as stream requests (:mod:`.outbox`).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from hearsay.lattice.keyspace import Keyspace
from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import MessageType
from hearsay.protocol.gossip.outbox import Outbox
from hearsay.protocol.gossip.peers import Peers
from hearsay.protocol.gossip.shared import BoundedTable, is_settling
from hearsay.protocol.membership import Address

__all__ = ["AntiEntropy"]

_ROUNDS_KEPT: Final = 32


class AntiEntropy:
    """Anti-entropy rounds: our open rounds, their peers, and when the next one starts."""

    def __init__(
        self,
        outbox: Outbox,
        peers: Peers,
        changed: BoundedTable[bytes, int],
        first_round_ms: int,
    ) -> None:
        self._outbox = outbox
        self._peers = peers
        self._changed = changed
        """The tail's lately changed keys (read only here: pushed eagerly)."""
        self._keyspace: Keyspace = outbox.keyspace
        self._round = 0
        self._round_peers: BoundedTable[int, Address] = BoundedTable(_ROUNDS_KEPT)
        """Our latest rounds -> the peer each was started with (answers must come from it)."""
        self._started_ms = outbox.now
        self.round_ms = first_round_ms
        """When the next round starts."""
        self.stopped = False
        """After a graceful leave no round is started (answering peers' rounds goes on)."""

    def handle_timer(self, now_ms: int) -> None:
        if now_ms < self.round_ms:
            return
        # Provisionally soon: a lost message or a difference means "try again shortly";
        # the responder's "in sync" answer pushes the next round a full period away.
        cfg = self._outbox.config
        self._started_ms = now_ms
        self.round_ms = now_ms + cfg.anti_entropy_interval_ms
        if not self.stopped and self.start():
            self.round_ms = now_ms + cfg.anti_entropy_retry_ms

    def repair(self, peers: list[Address]) -> None:
        """Peers came back (healed partition, restart, new node): repair with them now rather
        than waiting for the next period."""
        if not self.stopped:
            for peer in peers:
                self.start(peer)

    def start(self, peer: Address | None = None) -> bool:
        """Start a round with ``peer`` (a random one if None); False if there is nobody."""
        peers = self._peers.pick(1) if peer is None else [peer]
        if not peers:
            return False
        self._round += 1
        self._outbox.stats.ae_rounds += 1
        self._round_peers.put(self._round, peers[0])
        grouped, _ = self._group_hashes()
        payload = msg.packb([self._round, self._keyspace.bucket_count, grouped.tobytes()])
        self._outbox.send(MessageType.AE_GROUPS, payload, peers)
        return True

    def _group_hashes(self) -> tuple[np.ndarray[Any, np.dtype[np.uint64]], int]:
        hashes = self._keyspace.bucket_hashes()
        groups = min(self._outbox.config.ae_groups, hashes.size)
        grouped = np.bitwise_xor.reduce(hashes.reshape(groups, hashes.size // groups), axis=1)
        return grouped.astype("<u8"), groups

    def _soon(self) -> None:
        """Differences exist: repair again soon (with a random peer), not a period later."""
        if not self.stopped:
            soon = self._outbox.now + self._outbox.config.anti_entropy_retry_ms
            self.round_ms = min(self.round_ms, soon)

    def on_groups(self, payload: bytes, source: Address) -> None:
        outbox = self._outbox
        grouped, groups = self._group_hashes()
        round_id, buckets, theirs = msg.decode_ae_groups(payload, groups)
        if buckets != self._keyspace.bucket_count or len(theirs) != 8 * groups:
            outbox.drop(source, "ae-shape")
            return
        differ = np.flatnonzero(np.frombuffer(theirs, "<u8") != grouped)
        if differ.size == 0:
            outbox.stats.ae_in_sync += 1
            outbox.send(MessageType.AE_BUCKETS, msg.packb([round_id, []]), [source])
            return
        self._soon()
        self._eager_repair(differ.tolist(), groups, source)
        hashes = self._keyspace.bucket_hashes().astype("<u8")
        per = hashes.size // groups
        blocks = [
            msg.packb([int(g), hashes[int(g) * per : (int(g) + 1) * per].tobytes()]) for g in differ
        ]
        prefix = b"\x92" + msg.packb(round_id)
        for payload_out in outbox.pack(prefix, blocks):
            outbox.send(MessageType.AE_BUCKETS, payload_out, [source])

    def _eager_repair(self, differ: list[int], groups: int, source: Address) -> None:
        """Push our lately changed keys of the differing groups at once (one datagram).

        A peer behind us usually lacks the last few writes; sending them now repairs it in two
        hops instead of four (GROUPS -> BUCKETS -> KEYS -> PUSH), which is what closes the
        tail under heavy loss. The full exchange still follows for anything else.
        """
        cfg = self._outbox.config
        changed = self._changed
        if not changed or cfg.ae_eager_bytes <= 0:
            return
        per = self._keyspace.bucket_count // groups
        wanted = set(differ)
        horizon = self._outbox.now - cfg.changed_keys_ms
        items: list[bytes] = []
        used = 0
        for key in reversed(changed):
            if changed[key] < horizon:
                break
            if self._keyspace.bucket_of(key) // per not in wanted:
                continue
            entry = self._keyspace.entry(key)
            if entry is None:
                continue
            item = msg.push_item(key, entry, True)
            if used + len(item) > cfg.ae_eager_bytes:
                break
            items.append(item)
            used += len(item)
        self._outbox.send_push(items, [source], relay=False)

    def on_buckets(self, payload: bytes, source: Address) -> None:
        outbox = self._outbox
        _, groups = self._group_hashes()
        per = self._keyspace.bucket_count // groups
        round_id, items = msg.decode_ae_buckets(payload, groups, per)
        if self._round_peers.get(round_id) != source:
            outbox.drop(source, "ae-unexpected")
            return
        if not items:  # in sync: the next round can wait a full period
            if round_id == self._round:
                period_end = self._started_ms + outbox.config.anti_entropy_interval_ms
                self.round_ms = max(self.round_ms, period_end)
            return
        self._soon()
        hashes = self._keyspace.bucket_hashes().astype("<u8")
        differing: list[int] = []
        for group, theirs in items:
            mine = hashes[group * per : (group + 1) * per]
            for offset in np.flatnonzero(np.frombuffer(theirs, "<u8") != mine).tolist():
                differing.append(group * per + offset)
        blocks = [
            msg.packb(
                [
                    bucket,
                    [
                        [key, self._keyspace.key_hash(key)]
                        for key, _ in self._keyspace.bucket_items(bucket)
                    ],
                ]
            )
            for bucket in differing
        ]
        prefix = b"\x92" + msg.packb(round_id)
        for payload_out in outbox.pack(prefix, blocks):
            outbox.send(MessageType.AE_KEYS, payload_out, [source])

    def on_keys(self, payload: bytes, source: Address) -> None:
        outbox = self._outbox
        _, blocks = msg.decode_ae_keys(payload, self._keyspace.bucket_count)
        pushes: list[bytes] = []
        exchanges: list[bytes] = []
        round_ms = outbox.config.gossip_interval_ms
        for bucket, items in blocks:
            theirs = dict(items)
            for key, entry in self._keyspace.bucket_items(bucket):
                their_hash = theirs.pop(key, None)
                if their_hash is None:
                    pushes.extend(outbox.push_items(key, entry, True))
                    outbox.stats.ae_keys_repaired += 1
                elif their_hash != self._keyspace.key_hash(key):
                    if is_settling(self._changed, key, entry, outbox.now, round_ms):
                        continue  # (in flight: compared again once it settles)
                    exchanges.append(msg.exchange_item(key, entry))
                    outbox.stats.ae_keys_repaired += 1
            for key in theirs:
                if self._keyspace.bucket_of(key) == bucket:
                    exchanges.append(msg.exchange_item(key, None))
                    outbox.stats.ae_keys_repaired += 1
        outbox.send_push(pushes, [source], relay=False)
        for payload_out in outbox.pack(b"", exchanges):
            outbox.send(MessageType.EXCHANGE, payload_out, [source])
