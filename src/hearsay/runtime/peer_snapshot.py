"""The peers a node knew, kept in its data directory (as Serf's snapshot) to rejoin after a restart.

Why this module exists: a node restarted without ``--join`` (after SIGTERM, SIGKILL or a
reboot) must find its cluster again. The file ``peers.json`` holds up to ``PEERS_KEPT_MAX``
gossip addresses of live members, and whether this node left the cluster on purpose
(``HEARSAY.LEAVE``). It is small and replaced atomically (temporary file, fsync, rename, fsync
of the directory), at most once per ``SNAPSHOT_INTERVAL_S`` and only when its content changed:
peers still live stay in it, so a big cluster's churn rarely rewrites it. When no member is
live, the last list is kept (those peers may come back; a restarted node tries them).

The file is advisory: one that is missing, unreadable or damaged is logged and ignored.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hearsay.base.errors import HearsayError
from hearsay.persist.atomic_file import replace_file
from hearsay.protocol.membership import Address
from hearsay.runtime.addresses import format_address, parse_address

log = logging.getLogger(__name__)

SNAPSHOT_FILE_NAME: Final = "peers.json"
SNAPSHOT_INTERVAL_S: Final = 1.0
"""How often the live members are compared with the file (and the file rewritten if changed)."""
PEERS_KEPT_MAX: Final = 32
"""Addresses remembered: enough to find a cluster again, few enough to write in one block."""
SNAPSHOT_BYTES_MAX: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the file holds."""

    peers: tuple[Address, ...] = ()
    left: bool = False
    """This node left the cluster on purpose (HEARSAY.LEAVE): a restart does not rejoin."""


def snapshot_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / SNAPSHOT_FILE_NAME


def read_snapshot(data_dir: str | os.PathLike[str]) -> Snapshot:
    """The last snapshot written, or an empty one (a damaged file is logged and ignored)."""
    path = snapshot_path(data_dir)
    try:
        with path.open("rb") as handle:
            raw = handle.read(SNAPSHOT_BYTES_MAX + 1)
    except FileNotFoundError:
        return Snapshot()
    except OSError as error:
        log.warning("peer snapshot %s unreadable (%s): ignored", path, error.strerror)
        return Snapshot()
    try:
        if len(raw) > SNAPSHOT_BYTES_MAX:
            raise ValueError("too large")
        body = json.loads(raw)
        peers = tuple(parse_address(text) for text in body["peers"][:PEERS_KEPT_MAX])
        left = body["left"]
        if not isinstance(left, bool):
            raise ValueError("left is not true or false")
    except (ValueError, KeyError, TypeError, HearsayError) as error:
        log.warning("peer snapshot %s damaged (%s): ignored", path, error)
        return Snapshot()
    return Snapshot(peers, left)


def write_snapshot(data_dir: str | os.PathLike[str], snapshot: Snapshot) -> bool:
    """Replace the file atomically; False (logged) when the disk refuses."""
    path = snapshot_path(data_dir)
    body = json.dumps(
        {"peers": [format_address(*peer) for peer in snapshot.peers], "left": snapshot.left}
    ).encode()
    try:
        replace_file(path, body + b"\n")
    except OSError as error:
        log.warning("cannot write the peer snapshot %s: %s", path, error.strerror)
        return False
    return True


def next_peers(
    kept: Iterable[Address], live: Collection[Address], live_order: Iterable[Address]
) -> tuple[Address, ...]:
    """The peers to remember: those kept before that are still ``live``, then other live ones
    (in ``live_order``) up to ``PEERS_KEPT_MAX``. With no live member, ``kept`` unchanged."""
    kept = tuple(kept)
    if not live:
        return kept
    out = [peer for peer in kept if peer in live][:PEERS_KEPT_MAX]
    if len(out) < PEERS_KEPT_MAX:
        held = set(out)
        for peer in live_order:
            if peer not in held:
                out.append(peer)
                held.add(peer)
                if len(out) >= PEERS_KEPT_MAX:
                    break
    return tuple(out)
