"""A simulated store: what a node's disk holds, and what a crash takes away.

Why this module exists: a crash of a real node loses exactly what its fsync policy allows,
and the simulator must model that to check it: ``always`` acknowledges a write only after the
batch holding it is synced, so a crash loses no acknowledged write; ``everysec`` acknowledges
at once and syncs every second, so a crash (a power cut: the worst case) loses at most what
was written since the last sync, which peers then refill. Entries go through the real entry
codec, so what comes back after a restart is what a real node would decode.

The planted bug (``drop_every``, a test hook) makes the store claim a sync it did not make
for every n-th key written, so the checkers can be shown to catch lost acknowledged writes.
"""

from __future__ import annotations

from typing import Final

from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import Entry
from hearsay.persist.fsync import FsyncPolicy

EVERYSEC_SYNC_INTERVAL_MS: Final = 1_000
"""``everysec``: unsynced writes reach the disk at least this often (the loss window)."""


class SimStore:
    """One node's disk: synced blobs, and blobs written since the last sync."""

    def __init__(self, policy: FsyncPolicy, drop_every: int = 0) -> None:
        self.policy = policy
        self.synced: dict[bytes, bytes | None] = {}
        """key -> encoded entry (None: the key was removed) as on disk after a sync."""
        self.unsynced: dict[bytes, bytes | None] = {}
        """Written since the last sync: what a crash loses."""
        self.drop_every = drop_every
        self.keys_synced = 0
        """Key writes synced so far (the planted bug counts them)."""

    def write(self, entries: dict[bytes, Entry | None]) -> None:
        """Commit a batch (the last entry per key wins); durable only after :meth:`sync`."""
        for key, entry in entries.items():
            self.unsynced[key] = None if entry is None else encode_entry(entry)

    def sync(self) -> None:
        """Everything written so far reaches the disk."""
        for key, blob in self.unsynced.items():
            self.keys_synced += 1
            if self.drop_every and self.keys_synced % self.drop_every == 0:
                continue  # the planted bug: claimed synced, never written
            self.synced[key] = blob
        self.unsynced.clear()

    def crash(self) -> None:
        """Power cut: what was not synced is gone."""
        self.unsynced.clear()

    def wipe(self) -> None:
        """The disk itself is lost."""
        self.synced.clear()
        self.unsynced.clear()

    def load(self) -> dict[bytes, Entry]:
        """What a restarting node reads back (decoded by the real codec)."""
        return {key: decode_entry(blob) for key, blob in self.synced.items() if blob is not None}
