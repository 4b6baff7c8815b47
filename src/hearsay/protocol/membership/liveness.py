"""Liveness: what this node believes about each member, and every way that belief may change.

Why this module exists: a member's state moves on five kinds of news (a fresh heartbeat, its
own announcement that it is leaving or left, the failure detector's suspicion or conviction).
Spread over handlers, those moves were easy to get subtly wrong; here every legal move is one
row of :data:`TRANSITIONS` (as h11's ``_state.py`` does for HTTP), a pair that is not in the
table is refused with :class:`LivenessError`, and the names this state is reported by
(``HEARSAY.MEMBERS``, INFO, the gossip node's usable peers) are derived from the state alone.

The phi accrual detector (:mod:`.failure_detector`) is the part of liveness that listens to
heartbeats; :func:`verdict` turns its phi and the silence into SUSPECTED / CONVICTED.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

from hearsay.protocol.membership.failure_detector import PhiAccrualDetector
from hearsay.protocol.presets import GossipPreset


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
    """A fresh heartbeat of the member arrived (whoever relayed it)."""
    SAID_LEAVING = "said leaving"
    """The member's own status became ``leaving``."""
    SAID_LEFT = "said left"
    """The member's own status became ``left``."""
    SUSPECTED = "suspected"
    """phi or the silence crossed the suspect threshold."""
    CONVICTED = "convicted"
    """phi or the silence crossed the failure threshold."""


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


def new_detector(preset: GossipPreset) -> PhiAccrualDetector:
    return PhiAccrualDetector(
        window_size=preset.phi_window_size,
        min_std_dev_ms=preset.phi_min_std_dev_ms,
        acceptable_pause_ms=preset.phi_acceptable_pause_ms,
        first_heartbeat_estimate_ms=preset.phi_first_heartbeat_estimate_ms,
        max_interval_ms=preset.phi_max_interval_ms,
    )


@dataclass(slots=True)
class PeerLiveness:
    """One peer's liveness: its detector, the state we believe, since when."""

    detector: PhiAccrualDetector
    state: MemberState
    since_ms: int

    def hear(self, news: News, now_ms: int) -> bool:
        """Apply ``news``; whether the state changed."""
        new = next_state(self.state, news)
        if new is self.state:
            return False
        self.state = new
        self.since_ms = now_ms
        return True


def verdict(liveness: PeerLiveness, preset: GossipPreset, now_ms: int) -> tuple[News | None, float]:
    """The detector's news about a live peer as of ``now_ms`` (None: nothing new), and phi.

    Convicted when phi reaches ``phi_threshold`` or the silence ``dead_timeout_ms``; suspected
    (once) when phi reaches ``phi_suspect`` or the silence ``suspect_timeout_ms``.
    """
    phi = liveness.detector.phi(now_ms)
    last = liveness.detector.last_heartbeat_ms
    silence_ms = 0 if last is None else now_ms - last
    if phi >= preset.phi_threshold or silence_ms >= preset.dead_timeout_ms:
        return News.CONVICTED, phi
    if liveness.state is not MemberState.SUSPECT and (
        phi >= preset.phi_suspect or silence_ms >= preset.suspect_timeout_ms
    ):
        return News.SUSPECTED, phi
    return None, phi
