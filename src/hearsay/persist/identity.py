"""The node's identity, kept in its data directory.

Additive sketches partition their vectors by origin, and gossip tells a restarted node apart
from its stale past, so a node needs (1) an id that never changes for the life of its data
directory and (2) a generation that grows on every start. Both live in the store's ``meta``
table; the new generation is committed with ``synchronous=FULL`` before ``load_or_create``
returns, i.e. before the node can announce itself, so a crash can never make a generation be
used twice.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from hearsay.base.errors import StorageError
from hearsay.persist.store import SqliteStore

NODE_ID_META = "node_id"
GENERATION_META = "generation"
NODE_NAME_META = "node_name"
NODE_ID_HEX_CHARS = 16
NODE_NAME_BYTES_MAX = 255

_NODE_ID_RE = re.compile(rf"[0-9a-f]{{{NODE_ID_HEX_CHARS}}}")
_GENERATION_RE = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this node is: ``node_id`` (stable), ``generation`` (one more per start), a name."""

    node_id: str
    generation: int
    node_name: str | None = None

    @classmethod
    def load_or_create(
        cls, where: SqliteStore | str | os.PathLike[str], *, node_name: str | None = None
    ) -> NodeIdentity:
        """Start a new generation of the node kept in ``where`` (a store or a data directory).

        The first call creates a random node id and generation 1; each later call keeps the id
        and adds one to the generation, durably. ``node_name`` (``--node-name``) replaces the
        stored name when given; otherwise the stored one (if any) is kept.
        """
        if node_name is not None:
            validate_node_name(node_name)
        if isinstance(where, SqliteStore):
            return cls._start(where, node_name)
        with SqliteStore(where) as store:
            return cls._start(store, node_name)

    @classmethod
    def read(cls, store: SqliteStore) -> NodeIdentity | None:
        """The identity of the last start, without starting a new generation (None if none)."""
        node_id = _read_node_id(store)
        generation = _read_generation(store)
        if node_id is None and generation == 0:
            return None
        if node_id is None:
            raise StorageError(f"{store.path} is damaged: a generation but no node id")
        return cls(node_id, generation, _read_node_name(store))

    @classmethod
    def restore(
        cls, store: SqliteStore, node_id: str, generation: int, node_name: str | None
    ) -> None:
        """Put back the identity of a node whose database was lost (from its sidecar).

        The stored generation is one more than the one remembered, so the next start (which
        adds one again) can never repeat a generation the node may have used after the
        sidecar was written. Raises :class:`StorageError` for an id that is not one.
        """
        if not _NODE_ID_RE.fullmatch(node_id):
            raise StorageError(f"cannot restore the node id {node_id!r}: not a node id")
        if not 0 <= generation < 10**18:
            raise StorageError(f"cannot restore generation {generation}")
        updates: dict[str, bytes | None] = {
            NODE_ID_META: node_id.encode("ascii"),
            GENERATION_META: str(generation + 1).encode("ascii"),
        }
        if node_name is not None:
            updates[NODE_NAME_META] = node_name.encode("utf-8")
        store.write_batch({}, updates, durable=True)

    @classmethod
    def _start(cls, store: SqliteStore, node_name: str | None) -> NodeIdentity:
        node_id = _read_node_id(store)
        generation = _read_generation(store) + 1
        updates: dict[str, bytes | None] = {GENERATION_META: str(generation).encode("ascii")}
        if node_id is None:
            if generation != 1:
                raise StorageError(f"{store.path} is damaged: a generation but no node id")
            node_id = secrets.token_hex(NODE_ID_HEX_CHARS // 2)
            updates[NODE_ID_META] = node_id.encode("ascii")
        if node_name is not None:
            updates[NODE_NAME_META] = node_name.encode("utf-8")
        else:
            node_name = _read_node_name(store)
        store.write_batch({}, updates, durable=True)
        return cls(node_id, generation, node_name)


def validate_node_name(node_name: str) -> None:
    """A node name is 1..255 bytes of UTF-8 with no control characters or blanks at the ends."""
    encoded = node_name.encode("utf-8", errors="replace")
    if not node_name or len(encoded) > NODE_NAME_BYTES_MAX:
        raise ValueError(f"node name must be 1 to {NODE_NAME_BYTES_MAX} bytes of UTF-8")
    if node_name != node_name.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in node_name):
        raise ValueError(f"node name {node_name!r} has control characters or surrounding blanks")


def _read_node_id(store: SqliteStore) -> str | None:
    raw = store.meta_get(NODE_ID_META)
    if raw is None:
        return None
    text = raw.decode("ascii", errors="replace")
    if not _NODE_ID_RE.fullmatch(text):
        raise StorageError(f"{store.path} is damaged: bad node id {raw!r}")
    return text


def _read_generation(store: SqliteStore) -> int:
    raw = store.meta_get(GENERATION_META)
    if raw is None:
        return 0
    text = raw.decode("ascii", errors="replace")
    if not _GENERATION_RE.fullmatch(text):
        raise StorageError(f"{store.path} is damaged: bad generation {raw!r}")
    return int(text)


def _read_node_name(store: SqliteStore) -> str | None:
    raw = store.meta_get(NODE_NAME_META)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(f"{store.path} is damaged: node name is not UTF-8") from None
