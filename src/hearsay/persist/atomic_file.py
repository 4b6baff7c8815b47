"""Replacing a small file so that a crash leaves the old one or the new one, never a mix.

Why a module: the identity sidecar and the peer snapshot are both small files rewritten
whole; one way to do it (temporary file, fsync, rename, fsync of the directory so the rename
itself survives a crash) serves both.
"""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, body: bytes) -> None:
    """Make ``path`` hold ``body``, atomically and durably; raises OSError when the disk
    refuses (the old file, if any, is then left as it was)."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
