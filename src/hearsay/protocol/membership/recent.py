"""Members whose state moved here lately: what an ACK offers a peer beyond what it asked for.

Why this module exists: a SYN from a cluster of more members than fit one datagram carries a
random sample of its sender's digest, so the receiver cannot tell which members the sender
lacks. It used to fill the ACK's spare room with the whole states of random members; once the
views were full the sender held nearly all of them and dropped them (at 1,000 simulated nodes,
while the syncs were still frequent after the bootstrap, most of an ACK's bytes). What a peer
may lack is what changed lately: a member that joined, restarted or changed its tags reaches
one node first and spreads from there, and the nodes that learned it offer it on in turn (the
recent-updates dissemination of scuttlebutt and SWIM). Old news spreads by the SYNs' own
samples and by push-pull.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

RECENT_MAX: Final = 4096
"""Changes remembered at most (the oldest are forgotten first): a cluster forming sends a
node a change per member, and the ACK samples them; memory stays bounded."""


class RecentChanges:
    """``(when, member)`` of each change, oldest first, kept for ``window_ms``."""

    __slots__ = ("_changes", "_head", "_window_ms")

    def __init__(self, window_ms: int) -> None:
        self._window_ms = window_ms
        self._changes: list[tuple[int, str]] = []
        self._head = 0
        """Index of the oldest change still kept (the list is compacted now and then)."""

    def __len__(self) -> int:
        return len(self._changes) - self._head

    def note(self, node_id: str, now_ms: int) -> None:
        """``node_id``'s state changed here at ``now_ms``."""
        self._changes.append((now_ms, node_id))
        if len(self) > RECENT_MAX:
            self._head += 1
            self._compact()

    def sample(self, k: int, now_ms: int, random: Callable[[], float]) -> list[str]:
        """Up to ``k`` distinct members changed within the window, picked at random (all of
        them, newest first, when there are few): O(k) once the expired are dropped.
        ``random`` gives floats in [0, 1) (the caller's seeded generator)."""
        self._expire(now_ms)
        changes, head = self._changes, self._head
        n = len(changes) - head
        picked: dict[str, None] = {}
        if n <= 2 * k:
            for i in range(len(changes) - 1, head - 1, -1):
                picked[changes[i][1]] = None
                if len(picked) >= k:
                    break
            return list(picked)
        for _ in range(2 * k):
            if len(picked) >= k:
                break
            picked[changes[head + min(n - 1, int(random() * n))][1]] = None
        return list(picked)

    def _expire(self, now_ms: int) -> None:
        oldest = now_ms - self._window_ms
        changes, head = self._changes, self._head
        while head < len(changes) and changes[head][0] < oldest:
            head += 1
        self._head = head
        self._compact()

    def _compact(self) -> None:
        if self._head and self._head * 2 >= len(self._changes):
            del self._changes[: self._head]
            self._head = 0
