"""The member table: every node's versioned state as known here, who was reaped, who may join.

Why this module exists: one owner for the membership state itself. Each node owns a small
versioned map (its address, status, heartbeat counter and user tags, every change a new
version); the table holds ours, each peer's as far as we have it (with its liveness), and the
``(node, generation)`` pairs reaped recently so stale gossip cannot bring them back. It merges
deltas into a node's map (never past a gap: the caller checks), hides tags whose expiry passed
and later drops their tombstones. It also bounds the table: at most ``MEMBERS_MAX`` peers,
``TAGS_PER_MEMBER_MAX`` keys each, and unknown nodes taken in at ``NEW_MEMBERS_BURST`` at once
then ``NEW_MEMBERS_PER_S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from hearsay.protocol.membership.events import TagExpired
from hearsay.protocol.membership.liveness import NodeStatus, PeerLiveness
from hearsay.protocol.membership.wire import (
    KEY_ADDRESS,
    KEY_HEARTBEAT,
    KEY_STATUS,
    RESERVED_KEY_PREFIX,
    Address,
    Delta,
    DigestItem,
    entry_bytes,
)

MEMBERS_MAX: Final = 10_000
"""Nodes one membership tracks: beyond it, unknown nodes are ignored (a peer cannot make us
grow without bound by inventing members)."""
NEW_MEMBERS_BURST: Final = 128
NEW_MEMBERS_PER_S: Final = 32
"""Unknown nodes taken in at once, then per second (see the package docstring), from syncs;
the answer to a push-pull we asked for is not limited (views fill by tables, and every member
learned from a sync is pinged before it is used)."""
TAGS_PER_MEMBER_MAX: Final = 1_024
"""State entries kept per node: beyond it, new keys of that node are ignored."""


@dataclass(slots=True)
class TagEntry:
    """One versioned key of a node's state."""

    value: Any
    version: int
    expiry_unix_ms: int | None
    hidden: bool = False
    """Expired (or received already expired): a tombstone until garbage-collected."""
    packed_bytes: int = 0
    """Its packed size as a delta entry, once computed (0: not yet)."""

    def wire_bytes(self, key: str) -> int:
        if not self.packed_bytes:
            self.packed_bytes = entry_bytes(key, self.value, self.version, self.expiry_unix_ms)
        return self.packed_bytes

    def visible_at(self, now_ms: int) -> bool:
        return not self.hidden and (self.expiry_unix_ms is None or self.expiry_unix_ms > now_ms)


Change: TypeAlias = tuple[str, TagEntry, TagEntry | None]
"""A key that took a newer entry: ``(key, new entry, old entry or None)``."""


_STATUS_OF: Final[dict[str, NodeStatus]] = {status.value: status for status in NodeStatus}
"""A status entry's value -> its status (what ``NodeStatus(value)`` gives, without the call)."""


class NodeState:
    """The versioned state one node owns, as known locally."""

    __slots__ = ("entries", "generation", "max_version", "node_id")

    def __init__(self, node_id: str, generation: int) -> None:
        self.node_id = node_id
        self.generation = generation
        self.entries: dict[str, TagEntry] = {}
        self.max_version = 0

    def entries_after(self, version: int) -> list[tuple[str, TagEntry]]:
        items = [(k, e) for k, e in self.entries.items() if e.version > version]
        items.sort(key=lambda item: item[1].version)
        return items

    @property
    def address(self) -> Address | None:
        e = self.entries.get(KEY_ADDRESS)
        return None if e is None else e.value

    @property
    def status(self) -> NodeStatus:
        e = self.entries.get(KEY_STATUS)
        if e is None:
            return NodeStatus.ALIVE
        value = e.value
        status = _STATUS_OF.get(value) if type(value) is str else None  # (an Enum call costs
        return NodeStatus(value) if status is None else status  # a dozen dict look-ups)

    @property
    def heartbeat(self) -> int:
        e = self.entries.get(KEY_HEARTBEAT)
        return 0 if e is None else int(e.value)


@dataclass(slots=True)
class MemberRecord:
    """A peer: its state, its liveness, and whether it was announced (its address known)."""

    state: NodeState
    liveness: PeerLiveness
    created_ms: int
    announced: bool = False
    restarted: bool = False


@dataclass(frozen=True, slots=True)
class _Reaped:
    generation: int
    until_ms: int


class MemberTable:
    """Our own state, the peers', the recently reaped, and the admission of unknown nodes."""

    def __init__(self, own: NodeState, now_ms: int, tag_tombstone_ms: int) -> None:
        self.own = own
        self.peers: dict[str, MemberRecord] = {}
        """Every peer by id: changed only through :meth:`add_peer`, :meth:`drop_peer` and
        :meth:`reap`, which keep :attr:`ids` in step."""
        self.ids: list[str] = []
        """The peers' ids in an order that depends only on the calls (random picks in O(1))."""
        self._position: dict[str, int] = {}
        self._reaped: dict[str, _Reaped] = {}
        self._new_member_tokens = float(NEW_MEMBERS_BURST)
        self._new_member_refill_ms = now_ms
        self._tag_tombstone_ms = tag_tombstone_ms
        self._next_expiry_scan_ms: int | None = None

    def state_for(self, node_id: str) -> NodeState | None:
        """Any node's state we hold (self included; announced or not)."""
        if node_id == self.own.node_id:
            return self.own
        peer = self.peers.get(node_id)
        return None if peer is None else peer.state

    def announced_state(self, node_id: str) -> NodeState | None:
        """The state of a node we report (self, or a peer whose address we know)."""
        if node_id == self.own.node_id:
            return self.own
        peer = self.peers.get(node_id)
        return None if peer is None or not peer.announced else peer.state

    def add_peer(self, record: MemberRecord) -> None:
        """Hold ``record`` (replacing any record of the same node)."""
        node_id = record.state.node_id
        if node_id not in self._position:
            self._position[node_id] = len(self.ids)
            self.ids.append(node_id)
        self.peers[node_id] = record

    def drop_peer(self, node_id: str) -> MemberRecord:
        pos = self._position.pop(node_id)
        last = self.ids.pop()
        if pos < len(self.ids):
            self.ids[pos] = last
            self._position[last] = pos
        return self.peers.pop(node_id)

    def digest(self) -> list[DigestItem]:
        """Where every node's state stands here: self first, then peers by id."""
        own = self.own
        out = [DigestItem(own.node_id, own.generation, own.max_version)]
        for node_id in sorted(self.peers):
            s = self.peers[node_id].state
            out.append(DigestItem(node_id, s.generation, s.max_version))
        return out

    # ----- versioned entries ---------------------------------------------------------------

    def set_own(self, key: str, value: Any, expiry_unix_ms: int | None) -> TagEntry:
        """Change one of our own keys: a new version of our state."""
        own = self.own
        entry = TagEntry(value, own.max_version + 1, expiry_unix_ms)
        own.entries[key] = entry
        own.max_version = entry.version
        if expiry_unix_ms is not None:
            self._note_expiry(expiry_unix_ms)
        return entry

    def merge(self, state: NodeState, delta: Delta, now_ms: int) -> tuple[list[Change], int]:
        """Take the entries of ``delta`` that are newer than ``state``'s and move its watermark
        to the delta's end; the keys that changed, and how many new keys were refused because
        the node holds ``TAGS_PER_MEMBER_MAX`` already. The caller checked there is no gap."""
        changed: list[Change] = []
        refused = 0
        for key, value, version, expiry in delta.entries:
            if version <= state.max_version:
                continue
            old = state.entries.get(key)
            if old is not None and old.version >= version:
                continue
            if old is None and len(state.entries) >= TAGS_PER_MEMBER_MAX:
                refused += 1
                continue
            entry = TagEntry(value, version, expiry)
            if expiry is not None:
                if expiry <= now_ms:
                    entry.hidden = True
                self._note_expiry(expiry)
            state.entries[key] = entry
            changed.append((key, entry, old))
        state.max_version = delta.to_version
        return changed, refused

    def _note_expiry(self, expiry_unix_ms: int) -> None:
        nxt = self._next_expiry_scan_ms
        if nxt is None or expiry_unix_ms < nxt:
            self._next_expiry_scan_ms = expiry_unix_ms

    def expire(self, now_ms: int) -> list[TagExpired]:
        """When one is due: hide tags whose expiry passed (a TagExpired for each user tag of
        an announced peer), drop tombstones older than ``tag_tombstone_ms``, plan the next."""
        if self._next_expiry_scan_ms is None or now_ms < self._next_expiry_scan_ms:
            return []
        expired: list[TagExpired] = []
        nxt: int | None = None
        keep_ms = self._tag_tombstone_ms
        peers = self.peers
        states = [(self.own, False)] + [(peers[n].state, peers[n].announced) for n in sorted(peers)]
        for state, announced in states:
            for key in sorted(state.entries):
                entry = state.entries[key]
                expiry = entry.expiry_unix_ms
                if expiry is None:
                    continue
                if not entry.hidden and expiry <= now_ms:
                    entry.hidden = True
                    if announced and not key.startswith(RESERVED_KEY_PREFIX):
                        expired.append(TagExpired(state.node_id, key, entry.version))
                if entry.hidden:
                    if expiry + keep_ms <= now_ms:
                        del state.entries[key]
                        continue
                    due = expiry + keep_ms
                else:
                    due = expiry
                nxt = due if nxt is None else min(nxt, due)
        self._next_expiry_scan_ms = nxt
        return expired

    # ----- reaped nodes ---------------------------------------------------------------------

    def is_reaped(self, node_id: str, generation: int) -> bool:
        """Whether ``(node_id, generation)`` was reaped lately (its gossip is stale)."""
        reaped = self._reaped.get(node_id)
        return reaped is not None and generation <= reaped.generation

    def reap(self, node_id: str, until_ms: int) -> MemberRecord:
        """Forget a peer, remembering its generation until ``until_ms``."""
        peer = self.drop_peer(node_id)
        self._reaped[node_id] = _Reaped(peer.state.generation, until_ms)
        return peer

    def unreap(self, node_id: str) -> None:
        """The node is back (a newer generation, or it spoke to us itself)."""
        self._reaped.pop(node_id, None)

    def forget_reaped(self, now_ms: int) -> None:
        for node_id in [n for n, r in self._reaped.items() if r.until_ms <= now_ms]:
            del self._reaped[node_id]

    # ----- admission ------------------------------------------------------------------------

    def admit_new_member(self, now_ms: int, *, rate_limited: bool = True) -> bool:
        """Whether an unknown node may be taken in now (spends one admission token; a member
        brought by the answer to a push-pull we asked for is not rate-limited)."""
        if len(self.peers) >= MEMBERS_MAX:
            return False
        if not rate_limited:
            return True
        elapsed_ms = now_ms - self._new_member_refill_ms
        if elapsed_ms > 0:
            self._new_member_tokens = min(
                float(NEW_MEMBERS_BURST),
                self._new_member_tokens + elapsed_ms * NEW_MEMBERS_PER_S / 1000,
            )
            self._new_member_refill_ms = now_ms
        if self._new_member_tokens < 1:
            return False
        self._new_member_tokens -= 1
        return True
