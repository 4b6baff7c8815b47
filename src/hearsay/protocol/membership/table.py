"""The member table: every node's versioned state as known here, who was reaped, who may join.

Why this module exists: one owner for the membership state itself. Each node owns a small
versioned map (its address, status, heartbeat counter and user tags, every change a new
version); the table holds ours, each peer's as far as we have it (with its liveness), and the
``(node, generation)`` pairs reaped recently so stale gossip cannot bring them back. It also
bounds the table: at most ``MEMBERS_MAX`` peers, ``TAGS_PER_MEMBER_MAX`` keys each, and unknown
nodes taken in at ``NEW_MEMBERS_BURST`` at once then ``NEW_MEMBERS_PER_S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from hearsay.protocol.membership.liveness import NodeStatus, PeerLiveness
from hearsay.protocol.membership.wire import (
    KEY_ADDRESS,
    KEY_HEARTBEAT,
    KEY_STATUS,
    Address,
    DigestItem,
)

__all__ = [
    "MEMBERS_MAX",
    "NEW_MEMBERS_BURST",
    "NEW_MEMBERS_PER_S",
    "TAGS_PER_MEMBER_MAX",
    "MemberRecord",
    "MemberTable",
    "NodeState",
    "TagEntry",
]

MEMBERS_MAX: Final = 10_000
"""Nodes one membership tracks: beyond it, unknown nodes are ignored (a peer cannot make us
grow without bound by inventing members)."""
NEW_MEMBERS_BURST: Final = 512
NEW_MEMBERS_PER_S: Final = 64
"""Unknown nodes taken in at once, then per second (see the package docstring)."""
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
        return NodeStatus.ALIVE if e is None else NodeStatus(e.value)

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

    def __init__(self, own: NodeState, now_ms: int) -> None:
        self.own = own
        self.peers: dict[str, MemberRecord] = {}
        self._reaped: dict[str, _Reaped] = {}
        self._new_member_tokens = float(NEW_MEMBERS_BURST)
        self._new_member_refill_ms = now_ms

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

    def digest(self) -> list[DigestItem]:
        """Where every node's state stands here: self first, then peers by id."""
        own = self.own
        out = [DigestItem(own.node_id, own.generation, own.max_version)]
        for node_id in sorted(self.peers):
            s = self.peers[node_id].state
            out.append(DigestItem(node_id, s.generation, s.max_version))
        return out

    # ----- reaped nodes ---------------------------------------------------------------------

    def is_reaped(self, node_id: str, generation: int) -> bool:
        """Whether ``(node_id, generation)`` was reaped lately (its gossip is stale)."""
        reaped = self._reaped.get(node_id)
        return reaped is not None and generation <= reaped.generation

    def reap(self, node_id: str, until_ms: int) -> MemberRecord:
        """Forget a peer, remembering its generation until ``until_ms``."""
        peer = self.peers.pop(node_id)
        self._reaped[node_id] = _Reaped(peer.state.generation, until_ms)
        return peer

    def unreap(self, node_id: str) -> None:
        """The node is back (a newer generation, or it spoke to us itself)."""
        self._reaped.pop(node_id, None)

    def forget_reaped(self, now_ms: int) -> None:
        for node_id in [n for n, r in self._reaped.items() if r.until_ms <= now_ms]:
            del self._reaped[node_id]

    # ----- admission ------------------------------------------------------------------------

    def admit_new_member(self, now_ms: int) -> bool:
        """Whether an unknown node may be taken in now (spends one admission token)."""
        if len(self.peers) >= MEMBERS_MAX:
            return False
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
