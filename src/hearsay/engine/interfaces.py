"""What a :class:`~hearsay.engine.replica.Replica` is handed, and what it hands back.

The replica sits below the command layer (:mod:`hearsay.resp`) and above storage
(:mod:`hearsay.persist`); it names both through these small protocols so that the asyncio
runtime and the simulator can give it the real command table and either the real group
committer or a simulated store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import Ticket


class StorageFailure(Protocol):
    """Why a store cannot write right now (``persist.group_commit.StorageFailure``)."""

    @property
    def cause(self) -> str: ...

    @property
    def since_s(self) -> float: ...

    @property
    def held_keys(self) -> int: ...


class Storage(Protocol):
    """The durable copy of a replica's keyspace: ``persist.group_commit.GroupCommit``, or the
    simulator's store (whose crash loses exactly what its fsync policy allows).

    ``stage`` takes a key's whole encoded entry (None: the key is gone) and returns a ticket;
    tickets complete in staging order. While ``failure`` is set nothing is staged: the replica
    keeps the keys dirty and refuses client writes (MISCONF).
    """

    @property
    def policy(self) -> FsyncPolicy: ...

    @property
    def failure(self) -> StorageFailure | None: ...

    @property
    def unsynced_writes(self) -> int: ...

    def stage(self, key: bytes, blob: bytes | None) -> Ticket: ...

    def close(self, *, final_meta: Mapping[str, bytes | None] | None = None) -> None: ...


class Session(Protocol):
    """One client's state as the replica sees it (``resp.commands.ClientContext``)."""

    now_ms: int
    """The time the session's command runs at, set by :meth:`Replica.execute`."""
    last_write_seq: int
    """The gossip sequence number of the session's latest write: what its WAIT waits for."""


SessionT_contra = TypeVar("SessionT_contra", contravariant=True)


class CommandTable(Protocol[SessionT_contra]):
    """Runs client commands against the replica: ``resp.commands.CommandRegistry``.

    Replies are opaque here (the command layer encodes them); a WAIT answers
    :class:`WaitForAcks`, which the replica turns into an :class:`AckWait` or a count.
    """

    def dispatch(self, session: SessionT_contra, args: list[bytes]) -> object: ...

    def dispatch_run(
        self, session: SessionT_contra, run: list[list[bytes]]
    ) -> Sequence[object]: ...


@dataclass(frozen=True, slots=True)
class WaitForAcks:
    """WAIT's answer to the replica: wait until ``peers`` hold the session's latest write, at
    most ``timeout_ms`` (0: no limit)."""

    peers: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class AckWait:
    """A reply that waits for peers: the driver answers with :meth:`Replica.acks` of ``seq``
    once it reaches ``peers`` (woken by ``WriteAcked`` events) or at ``deadline_ms`` (None:
    no deadline), whichever comes first."""

    seq: int
    peers: int
    deadline_ms: int | None
