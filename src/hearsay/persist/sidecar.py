"""A small file beside the database that remembers the node had data: ``hearsay.state``.

A database file truncated to 0 bytes or deleted opens as a new, empty database (SQLite cannot
tell "new" from "lost"), and the node would start empty under a new id with no sign of
trouble. This file says, outside the database, who the node was and how many entries it held,
so that start-up can tell the two apart and say so loudly (see
:meth:`hearsay.engine.replica.Replica.open`). It is rewritten (atomically: a temporary
file, fsync, rename) at every start, periodically and at every clean shutdown. It is advisory:
a missing or unreadable sidecar is never an error, it only disables the check.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hearsay.persist.atomic_file import replace_file

SIDECAR_FILE_NAME: Final = "hearsay.state"
SIDECAR_BYTES_MAX: Final = 4096

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sidecar:
    """What the node was at its last start, periodic write or clean shutdown."""

    node_id: str
    generation: int
    entries: int  # stored entries (tombstones included) when written
    written_at_ms: int
    node_name: str | None = None


def read_sidecar(data_dir: str | os.PathLike[str]) -> Sidecar | None:
    """The sidecar in ``data_dir``, or None when there is none or it cannot be read."""
    path = Path(data_dir) / SIDECAR_FILE_NAME
    try:
        with path.open("rb") as handle:
            raw = handle.read(SIDECAR_BYTES_MAX + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("cannot read %s: %s", path, error.strerror)
        return None
    try:
        if len(raw) > SIDECAR_BYTES_MAX:
            raise ValueError("too long")
        fields = json.loads(raw)
        name = fields.get("node_name")
        sidecar = Sidecar(
            node_id=str(fields["node_id"]),
            generation=int(fields["generation"]),
            entries=int(fields["entries"]),
            written_at_ms=int(fields["written_at_ms"]),
            node_name=None if name is None else str(name),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        log.warning("ignoring an unreadable %s: %s", path, error)
        return None
    if sidecar.generation < 0 or sidecar.entries < 0:
        log.warning("ignoring %s: negative counts", path)
        return None
    return sidecar


def write_sidecar(data_dir: str | os.PathLike[str], sidecar: Sidecar) -> bool:
    """Replace the sidecar atomically; False (logged at debug) when the disk refuses."""
    path = Path(data_dir) / SIDECAR_FILE_NAME
    body = json.dumps(
        {
            "node_id": sidecar.node_id,
            "generation": sidecar.generation,
            "entries": sidecar.entries,
            "written_at_ms": sidecar.written_at_ms,
            "node_name": sidecar.node_name,
        },
        sort_keys=True,
    ).encode()
    try:
        replace_file(path, body + b"\n")
    except OSError as error:
        log.debug("cannot write %s: %s", path, error.strerror)
        return False
    return True
