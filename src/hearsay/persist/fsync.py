"""The fsync policy: how long an acknowledged write may live only in memory.

One enum shared by the CLI flag (``--fsync always|everysec|no``), the group-commit writer and
the store, so the three spellings of "how durable" cannot drift apart. The names follow Redis's
``appendfsync`` because operators already know what they mean.
"""

from __future__ import annotations

import enum

from hearsay.base.errors import HearsayError


class FsyncPolicyError(HearsayError, ValueError):
    """A ``--fsync`` value that names no policy (a ``ValueError``, so argparse reports it)."""


class FsyncPolicy(enum.Enum):
    """When a write is acknowledged, and when SQLite is asked to fsync.

    - ``ALWAYS``: acknowledged only after its commit is on disk (``synchronous=FULL``: the WAL
      is fsynced at every COMMIT). Concurrent writers share one commit.
    - ``EVERYSEC`` (default): acknowledged at once; committed in the background as soon as the
      writer thread is free (``synchronous=NORMAL``: no fsync per commit) and the WAL is
      fsynced by a checkpoint at least once per second. A killed process loses only what was
      still staged in memory (milliseconds); a power cut loses at most about the last second.
    - ``NO``: acknowledged at once, committed in the background, never fsynced by us
      (``synchronous=OFF``): the kernel writes the pages back when it likes.
    """

    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        """Parse a CLI or config value (case-insensitive, surrounding blanks ignored)."""
        wanted = text.strip().lower()
        for policy in cls:
            if policy.value == wanted:
                return policy
        choices = ", ".join(p.value for p in cls)
        raise FsyncPolicyError(f"unknown fsync policy {text!r}: choose one of {choices}")

    @property
    def sqlite_synchronous(self) -> str:
        """The ``PRAGMA synchronous`` level this policy runs SQLite at."""
        return _SYNCHRONOUS[self]

    def __str__(self) -> str:
        # argparse prints choices and defaults with str(); show the flag spelling.
        return self.value


DEFAULT_FSYNC_POLICY = FsyncPolicy.EVERYSEC

_SYNCHRONOUS = {
    FsyncPolicy.ALWAYS: "FULL",
    FsyncPolicy.EVERYSEC: "NORMAL",
    FsyncPolicy.NO: "OFF",
}
