"""Liveness: what this node believes about each member, and every way that belief may change.

Why this module exists: a member's state moves on five kinds of news (a higher incarnation, its
own announcement that it is leaving or left, the failure detector's suspicion or conviction).
Spread over handlers, those moves were easy to get subtly wrong; here every legal move is one
row of :data:`TRANSITIONS` (as h11's ``_state.py`` does for HTTP), a pair that is not in the
table is refused with :class:`LivenessError`, and the names this state is reported by
(``HEARSAY.MEMBERS``, INFO, the gossip node's usable peers) are derived from the state alone.

The failure detector is SWIM's (:mod:`.swim`, driven by the facade): probes that go
unanswered bring SUSPECTED, a suspicion that times out CONVICTED, and a member refutes one by
raising its incarnation (its heartbeat counter), which is HEARTBEAT news.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

from hearsay.protocol.membership.swim import Suspicion


class NodeStatus(StrEnum):
    """What a node says about itself."""

    ALIVE = "alive"
    LEAVING = "leaving"
    LEFT = "left"

    @property
    def news(self) -> News | None:
        """The liveness news of a node announcing this status (none for alive)."""
        return _STATUS_NEWS[self]


class MemberState(StrEnum):
    """What this node believes about a member."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    FAILED = "failed"
    LEAVING = "leaving"
    LEFT = "left"

    @property
    def is_live(self) -> bool:
        """Still worth gossiping with: alive, suspect (not convicted yet) or leaving
        (draining, still serving)."""
        return self in _LIVE_STATES

    @property
    def reported(self) -> str:
        """The state clients see (``HEARSAY.MEMBERS``, ``/members``): a leaving node still
        serves, so it is reported alive."""
        return MemberState.ALIVE.value if self is MemberState.LEAVING else self.value


_LIVE_STATES: Final = frozenset({MemberState.ALIVE, MemberState.SUSPECT, MemberState.LEAVING})


class News(Enum):
    """What can change a member's state."""

    HEARTBEAT = "heartbeat"
    """A higher incarnation of the member arrived (its refutation, whoever relayed it)."""
    SAID_LEAVING = "said leaving"
    """The member's own status became ``leaving``."""
    SAID_LEFT = "said left"
    """The member's own status became ``left``."""
    SUSPECTED = "suspected"
    """A probe went unanswered (here or at another node that told us)."""
    CONVICTED = "convicted"
    """A suspicion timed out (here or at another node that told us)."""


_STATUS_NEWS: Final = {
    NodeStatus.ALIVE: None,
    NodeStatus.LEAVING: News.SAID_LEAVING,
    NodeStatus.LEFT: News.SAID_LEFT,
}

_ALIVE, _SUSPECT, _FAILED = MemberState.ALIVE, MemberState.SUSPECT, MemberState.FAILED
_LEAVING, _LEFT = MemberState.LEAVING, MemberState.LEFT
_HB, _LEAVE, _GONE = News.HEARTBEAT, News.SAID_LEAVING, News.SAID_LEFT
_SUSPECTED, _CONVICTED = News.SUSPECTED, News.CONVICTED

TRANSITIONS: Final[dict[tuple[MemberState, News], MemberState]] = {
    # A live member: the detector may suspect or convict it; its own news moves it on.
    (_ALIVE, _HB): _ALIVE,
    (_ALIVE, _LEAVE): _LEAVING,
    (_ALIVE, _GONE): _LEFT,
    (_ALIVE, _SUSPECTED): _SUSPECT,
    (_ALIVE, _CONVICTED): _FAILED,
    # Suspect: a heartbeat clears it (its status is then applied again, from alive); leaving
    # waits for that heartbeat, left does not.
    (_SUSPECT, _HB): _ALIVE,
    (_SUSPECT, _LEAVE): _SUSPECT,
    (_SUSPECT, _GONE): _LEFT,
    (_SUSPECT, _SUSPECTED): _SUSPECT,
    (_SUSPECT, _CONVICTED): _FAILED,
    # Failed: not judged any more; back on a heartbeat, or left.
    (_FAILED, _HB): _ALIVE,
    (_FAILED, _LEAVE): _FAILED,
    (_FAILED, _GONE): _LEFT,
    # Leaving: still serving, so still judged.
    (_LEAVING, _HB): _LEAVING,
    (_LEAVING, _LEAVE): _LEAVING,
    (_LEAVING, _GONE): _LEFT,
    (_LEAVING, _SUSPECTED): _SUSPECT,
    (_LEAVING, _CONVICTED): _FAILED,
    # Left is final for this generation (a new generation is a new member).
    (_LEFT, _HB): _LEFT,
    (_LEFT, _LEAVE): _LEFT,
    (_LEFT, _GONE): _LEFT,
}
"""Every legal ``(state, news) -> new state``. Missing pairs (a failed or left member judged
by the detector) are bugs of the caller: :func:`next_state` refuses them."""


class LivenessError(RuntimeError):
    """A state transition that :data:`TRANSITIONS` does not allow (a bug, never peer input)."""


def next_state(state: MemberState, news: News) -> MemberState:
    try:
        return TRANSITIONS[state, news]
    except KeyError:
        raise LivenessError(f"{news.value} is not allowed in state {state.value}") from None


SUSPICION_LEVEL_MAX: Final = 8.0
"""What ``HEARSAY.MEMBERS``' phi column shows for a failed member (and a suspect one as its
suspicion times out): the old phi accrual threshold, so dashboards keep their scale."""


@dataclass(slots=True)
class PeerLiveness:
    """One peer's liveness: the state we believe, since when, its incarnation, and our
    suspicion while it is suspect."""

    state: MemberState
    since_ms: int
    incarnation: int = 0
    suspicion: Suspicion | None = None

    def hear(self, news: News, now_ms: int) -> bool:
        """Apply ``news``; whether the state changed."""
        new = next_state(self.state, news)
        if new is not MemberState.SUSPECT:
            self.suspicion = None
        if new is self.state:
            return False
        self.state = new
        self.since_ms = now_ms
        return True

    def level(self, now_ms: int) -> float:
        """The phi column: 0 while alive, leaving or left; for a suspect member how far its
        suspicion has run towards conviction (0 to 8); 8 once failed (a fixed value: a
        failed member's level does not keep growing)."""
        if self.state is MemberState.FAILED:
            return SUSPICION_LEVEL_MAX
        s = self.suspicion
        if self.state is not MemberState.SUSPECT or s is None:
            return 0.0
        span = max(1, s.deadline_ms - s.started_ms)
        return min(SUSPICION_LEVEL_MAX, SUSPICION_LEVEL_MAX * (now_ms - s.started_ms) / span)
