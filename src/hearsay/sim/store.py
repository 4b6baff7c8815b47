"""A simulated store: what a node's disk holds, and what a crash takes away.

Why this module exists: a crash of a real node loses exactly what its fsync policy allows,
and the simulator must model that to check it. It implements the engine's
:class:`~hearsay.engine.interfaces.Storage` protocol, so the replica stages into it exactly
as into the real group committer: ``always`` gives a ticket that completes at the next
:meth:`SimStore.sync`, so a crash loses no acknowledged write; ``everysec`` gives a done
ticket and the driver syncs every second, so a crash (a power cut: the worst case) loses at
most what was staged since the last sync, which peers then refill. Entries come back through
the real entry codec, so what a restarted node loads is what a real node would decode.

The planted bug (``drop_every``, a test hook) makes the store claim a sync it did not make
for every n-th key staged, so the checkers can be shown to catch lost acknowledged writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Final

from hearsay.engine.interfaces import StorageFailure
from hearsay.lattice.codec import decode_entry
from hearsay.lattice.entry import Entry
from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import Ticket

EVERYSEC_SYNC_INTERVAL_MS: Final = 1_000
"""``everysec``: staged writes reach the disk at least this often (the loss window)."""


def _done() -> Ticket:
    ticket: Ticket = Future()
    ticket.set_running_or_notify_cancel()
    ticket.set_result(None)
    return ticket


class SimStore:
    """One node's disk: synced blobs, and blobs staged since the last sync."""

    def __init__(self, policy: FsyncPolicy, drop_every: int = 0) -> None:
        self._policy = policy
        self.synced: dict[bytes, bytes | None] = {}
        """key -> encoded entry (None: the key was removed) as on disk after a sync."""
        self.unsynced: dict[bytes, bytes | None] = {}
        """Staged since the last sync: what a crash loses."""
        self.tickets: list[Ticket] = []
        """``always``: what the next sync completes."""
        self.staged_keys: list[bytes] = []
        """Keys staged since the driver last looked (the changes the checkers observe)."""
        self.drop_every = drop_every
        self.keys_synced = 0
        """Key writes synced so far (the planted bug counts them)."""

    # -- the engine's Storage protocol -------------------------------------------------------------

    @property
    def policy(self) -> FsyncPolicy:
        return self._policy

    @property
    def failure(self) -> StorageFailure | None:
        return None

    @property
    def unsynced_writes(self) -> int:
        return len(self.unsynced)

    def stage(self, key: bytes, blob: bytes | None) -> Ticket:
        self.unsynced[key] = blob
        self.staged_keys.append(key)
        if self._policy is not FsyncPolicy.ALWAYS:
            return _done()
        ticket: Ticket = Future()
        ticket.set_running_or_notify_cancel()
        self.tickets.append(ticket)
        return ticket

    def close(self, *, final_meta: Mapping[str, bytes | None] | None = None) -> None:
        self.sync()

    # -- what the simulator does to the disk -------------------------------------------------------

    def take_staged_keys(self) -> list[bytes]:
        keys, self.staged_keys = self.staged_keys, []
        return keys

    def sync(self) -> None:
        """Everything staged so far reaches the disk; ``always`` tickets complete."""
        for key, blob in self.unsynced.items():
            self.keys_synced += 1
            if self.drop_every and self.keys_synced % self.drop_every == 0:
                continue  # the planted bug: claimed synced, never written
            self.synced[key] = blob
        self.unsynced.clear()
        tickets, self.tickets = self.tickets, []
        for ticket in tickets:
            ticket.set_result(None)

    def crash(self) -> None:
        """Power cut: what was not synced is gone (its tickets never complete)."""
        self.unsynced.clear()
        self.tickets.clear()
        self.staged_keys.clear()

    def wipe(self) -> None:
        """The disk itself is lost."""
        self.crash()
        self.synced.clear()

    def load(self) -> dict[bytes, Entry]:
        """What a restarting node reads back (decoded by the real codec)."""
        return {key: decode_entry(blob) for key, blob in self.synced.items() if blob is not None}
