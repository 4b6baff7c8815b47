"""The node's identity, kept in its data directory.

Additive sketches partition their vectors by origin, and gossip tells a restarted node apart
from its stale past, so a node needs (1) an id that never changes for the life of its data
directory and (2) a generation that grows on every start. Both live in the store's ``meta``
table; the new generation is committed with ``synchronous=FULL`` before ``load_or_create``
returns, i.e. before the node can announce itself, so a crash can never make a generation be
used twice.

(3) The *write origin*: the slice name this node's additive writes (INCRBY, CMS.INCRBY) go
to. A counter's increment is computed from the node's own slice as this node holds it; if that
copy is older than what the peers hold of the same slice (an ``everysec`` crash lost the last
writes, or an ``always`` write was gossiped before its commit and the process died, or the
database was lost or quarantined), a new increment would compute a total the peers already
exceed, and the max-merge would swallow an acknowledged write. So a node keeps its write origin
only across a *clean* stop (every staged write saved, then a ``clean_stop`` marker committed
last); after any other stop it writes to a fresh origin, ``<node id>.<generation>``, and the old
slice is left to be refilled by the peers. A fresh slice costs memory only for keys written
after a crash.
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
WRITE_ORIGIN_META = "write_origin"
CLEAN_STOP_META = "clean_stop"
"""Present only between a clean stop and the next start: every staged write was saved."""
NODE_ID_HEX_CHARS = 16
NODE_NAME_BYTES_MAX = 255

_NODE_ID_RE = re.compile(rf"[0-9a-f]{{{NODE_ID_HEX_CHARS}}}")
_GENERATION_RE = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this node is: ``node_id`` (stable), ``generation`` (one more per start), a name,
    and the origin its additive writes go to (see the module docstring; "" = the node id)."""

    node_id: str
    generation: int
    node_name: str | None = None
    write_origin: str = ""

    @property
    def origin(self) -> str:
        """The slice name of this node's additive writes."""
        return self.write_origin or self.node_id

    @staticmethod
    def clean_stop_meta() -> dict[str, bytes | None]:
        """The marker to commit last at a clean stop (after every write was saved)."""
        return {CLEAN_STOP_META: b"1"}

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
        write_origin = _read_write_origin(store, node_id) or ""
        return cls(node_id, generation, _read_node_name(store), write_origin)

    @classmethod
    def restore(
        cls, store: SqliteStore, node_id: str, generation: int, node_name: str | None
    ) -> None:
        """Put back the identity of a node whose database was lost or is an old copy (from its
        sidecar).

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
            CLEAN_STOP_META: None,  # its own slices may be behind the peers': a fresh origin
        }
        if node_name is not None:
            updates[NODE_NAME_META] = node_name.encode("utf-8")
        store.write_batch({}, updates, durable=True)

    def with_fresh_origin(self, store: SqliteStore) -> NodeIdentity:
        """This identity writing to ``<node id>.<generation>`` from now on (durably).

        For a start that found part of the node's own data damaged: its own slices of those
        keys are gone here but may live on at the peers (see the module docstring).
        """
        origin = f"{self.node_id}.{self.generation}"
        if origin == self.write_origin:
            return self
        store.write_batch({}, {WRITE_ORIGIN_META: origin.encode("ascii")}, durable=True)
        return NodeIdentity(self.node_id, self.generation, self.node_name, origin)

    @classmethod
    def _start(cls, store: SqliteStore, node_name: str | None) -> NodeIdentity:
        node_id = _read_node_id(store)
        generation = _read_generation(store) + 1
        updates: dict[str, bytes | None] = {
            GENERATION_META: str(generation).encode("ascii"),
            CLEAN_STOP_META: None,  # from now on, only a clean stop may say so
        }
        if node_id is None:
            if generation != 1:
                raise StorageError(f"{store.path} is damaged: a generation but no node id")
            node_id = secrets.token_hex(NODE_ID_HEX_CHARS // 2)
            updates[NODE_ID_META] = node_id.encode("ascii")
        write_origin = _read_write_origin(store, node_id)
        if generation == 1:
            write_origin = node_id  # a new node: nothing of it can be anywhere yet
        elif write_origin is None or store.meta_get(CLEAN_STOP_META) is None:
            write_origin = f"{node_id}.{generation}"  # after a crash or a loss: a fresh slice
        updates[WRITE_ORIGIN_META] = write_origin.encode("ascii")
        if node_name is not None:
            updates[NODE_NAME_META] = node_name.encode("utf-8")
        else:
            node_name = _read_node_name(store)
        store.write_batch({}, updates, durable=True)
        return cls(node_id, generation, node_name, write_origin)


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


def _read_write_origin(store: SqliteStore, node_id: str) -> str | None:
    raw = store.meta_get(WRITE_ORIGIN_META)
    if raw is None:
        return None
    text = raw.decode("ascii", errors="replace")
    head, dot, generation = text.partition(".")
    if head != node_id or (dot and not _GENERATION_RE.fullmatch(generation)):
        raise StorageError(f"{store.path} is damaged: bad write origin {raw!r}")
    return text


def _read_node_name(store: SqliteStore) -> str | None:
    raw = store.meta_get(NODE_NAME_META)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(f"{store.path} is damaged: node name is not UTF-8") from None
