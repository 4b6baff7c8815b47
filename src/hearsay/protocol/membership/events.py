"""What membership tells its driver: members joined, changed state or were forgotten; tags.

Why this module exists: these events are the whole interface between membership and whoever
acts on it (the gossip node keeps its peers in step with them, the runtime logs them, the
simulator checks them), so they live apart from how membership reaches them. Names and fields
are a contract: tests, logs and the simulator's reports use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from hearsay.protocol.membership.liveness import MemberState, NodeStatus
from hearsay.protocol.membership.wire import Address, TagValue


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A node became known (``restarted``: it replaced an older generation we knew)."""

    node_id: str
    generation: int
    address: Address
    restarted: bool


@dataclass(frozen=True, slots=True)
class MemberAlive:
    """A suspect or failed node sent a fresh heartbeat."""

    node_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class MemberSuspect:
    node_id: str
    generation: int
    phi: float


@dataclass(frozen=True, slots=True)
class MemberFailed:
    node_id: str
    generation: int
    phi: float


@dataclass(frozen=True, slots=True)
class MemberLeaving:
    """The node announced it is leaving (still running, draining)."""

    node_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """The node announced a graceful leave."""

    node_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class MemberReaped:
    """A failed or left node was forgotten."""

    node_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class TagUpdated:
    node_id: str
    key: str
    value: TagValue
    version: int
    expiry_unix_ms: int | None


@dataclass(frozen=True, slots=True)
class TagExpired:
    node_id: str
    key: str
    version: int


MembershipEvent: TypeAlias = (
    MemberJoined
    | MemberAlive
    | MemberSuspect
    | MemberFailed
    | MemberLeaving
    | MemberLeft
    | MemberReaped
    | TagUpdated
    | TagExpired
)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One row of :meth:`Membership.members <hearsay.protocol.membership.Membership.members>`."""

    node_id: str
    address: Address
    state: MemberState
    status: NodeStatus
    phi: float
    generation: int
    heartbeat: int
    is_self: bool
