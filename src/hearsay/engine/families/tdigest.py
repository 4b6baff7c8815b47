"""t-digests on the database: TDIGEST.CREATE, RESET, ADD, MERGE and the reads (RedisBloom's
rm_tdigest.c).

Each node writes only its own versioned slice (:mod:`hearsay.sketch.tdigest`); a read
compresses every slice into one digest, so every node that holds the same slices answers the
same. Departures from RedisBloom that the lattice forces:

- TDIGEST.RESET empties the key everywhere the way DEL does (a new epoch, same compression,
  same expiry): an ADD another node made concurrently, before it saw the reset, is dropped
  with it, as it would be by a DEL.
- TDIGEST.MERGE into an existing destination of the same compression, without OVERRIDE,
  folds the sources into this node's own slice: the destination's other slices stay, so
  concurrent writers to it keep their values. With OVERRIDE, or a COMPRESSION that differs
  from the destination's, the destination is replaced as by RESET (a new epoch).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

import numpy as np

from hearsay.engine.families.common import (
    KeyExistsError,
    KeyMissingError,
    required_view_and_slices,
    schema_of,
    view_and_slices,
    write_pairs,
)
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.schemas import KIND_TDIGEST
from hearsay.sketch.tdigest import Digest, TDigest, TDigestInfo
from hearsay.sketch.views import view_as

__all__ = [
    "add",
    "check",
    "check_absent",
    "check_kind",
    "create",
    "digest",
    "info",
    "merge",
    "reset",
]


def _entry(db: Replica, key: bytes, now_ms: int) -> tuple[TDigest, dict[str, MaxVector]] | None:
    return view_and_slices(db, key, KIND_TDIGEST, TDigest, now_ms)


def _required(db: Replica, key: bytes, now_ms: int) -> tuple[TDigest, dict[str, MaxVector]]:
    return required_view_and_slices(
        db, key, KIND_TDIGEST, TDigest, now_ms, missing="T-Digest: key does not exist"
    )


def check(db: Replica, key: bytes, now_ms: int) -> TDigest:
    """The key's view; KeyMissingError / WrongTypeError first, as RedisBloom checks the key
    before it parses the values."""
    return _required(db, key, now_ms)[0]


def check_absent(db: Replica, key: bytes, now_ms: int) -> None:
    """KeyExistsError / WrongTypeError when ``key`` exists (checked before the arguments)."""
    if _entry(db, key, now_ms) is not None:
        raise KeyExistsError("T-Digest: key already exists")


def check_kind(db: Replica, key: bytes, now_ms: int) -> None:
    """WrongTypeError when ``key`` holds another kind (TDIGEST.MERGE's destination)."""
    _entry(db, key, now_ms)


def create(db: Replica, key: bytes, compression: int, now_ms: int) -> None:
    """TDIGEST.CREATE: KeyExistsError when the key exists (WrongTypeError for another kind)."""
    check_absent(db, key, now_ms)
    view = TDigest(compression)  # SketchParameterError past the largest compression
    db.write_own(key, view.schema, MaxVector(), now_ms)


def _replace(db: Replica, key: bytes, view: TDigest, content: Digest, now_ms: int) -> None:
    """``key`` emptied everywhere (a new epoch, as DEL), keeping its expiry, then holding
    ``content`` in this node's slice."""
    before = db.get(key, now_ms)
    deadline_ms = before.deadline_ms if before is not None else 0
    db.delete([key], now_ms)
    db.write_own(key, view.schema, MaxVector(), now_ms)
    if len(content):
        write_pairs(db, key, view.schema, view.replace({}, db.origin, content), now_ms)
    if deadline_ms:
        db.expire_at(key, deadline_ms, now_ms)


def reset(db: Replica, key: bytes, now_ms: int) -> None:
    """TDIGEST.RESET: the key emptied on every node (see the module notes)."""
    view = check(db, key, now_ms)
    _replace(db, key, view, Digest.empty(), now_ms)


def add(db: Replica, key: bytes, calls: Sequence[Sequence[float]], now_ms: int) -> None:
    """TDIGEST.ADD of finite values (the RESP layer checks them), one or more calls in turn.

    Reads only this node's own slice: the write's cost does not grow with the peers."""
    entry = db.get_typed(key, KIND_TDIGEST, now_ms)
    if entry is None:
        raise KeyMissingError("T-Digest: key does not exist")
    view = view_as(schema_of(entry), TDigest)
    own = {db.origin: entry.slice(db.origin)}
    write_pairs(db, key, view.schema, view.add(own, db.origin, calls), now_ms)


def digest(db: Replica, key: bytes, now_ms: int) -> Digest:
    """The key's digest: every node's slice compressed into one, remembered until the key
    changes (a read otherwise sorts and compresses every centroid each time)."""
    entry = db.get_typed(key, KIND_TDIGEST, now_ms)
    if entry is None:
        raise KeyMissingError("T-Digest: key does not exist")
    token = _content_token(entry)
    held = _DIGESTS.get(id(entry))
    if held is not None and held[0] is entry and held[1] == token:
        _DIGESTS.move_to_end(id(entry))
        return held[2]
    merged = view_as(schema_of(entry), TDigest).digest(entry.slice_dict())
    _DIGESTS[id(entry)] = (entry, token, merged)
    if len(_DIGESTS) > DIGESTS_REMEMBERED:
        _DIGESTS.popitem(last=False)
    return merged


DIGESTS_REMEMBERED: Final = 64
"""Merged digests remembered (the most recently read keys' of every replica in the process)."""
_DIGESTS: Final[OrderedDict[int, tuple[Entry, object, Digest]]] = OrderedDict()
"""By the id of the entry they were read from, which each holds (so no other entry takes its
id while it is remembered), with the entry's content token at the time."""


def _content_token(entry: Entry) -> object:
    """What changes whenever the entry's content does: within one epoch and schema a slice
    only grows (values rise, pairs appear), so the exact sum of its values grows too."""
    sums = []
    for origin, vec in entry.slices():
        _, values = vec.pairs()
        wide = values.astype(np.uint64)
        high = int((wide >> np.uint64(32)).sum(dtype=np.uint64))
        low = int((wide & np.uint64(0xFFFFFFFF)).sum(dtype=np.uint64))
        sums.append((origin, (high << 32) + low))
    return entry.epoch, entry.schema, tuple(sums)


def info(db: Replica, key: bytes, now_ms: int) -> TDigestInfo:
    """TDIGEST.INFO."""
    view, slices = _required(db, key, now_ms)
    return view.info(slices)


def merge(
    db: Replica,
    dest: bytes,
    sources: Sequence[bytes],
    *,
    compression: int | None,
    override: bool,
    now_ms: int,
) -> None:
    """TDIGEST.MERGE: ``dest`` holds the union of ``sources`` (and of itself unless
    ``override``). ``compression`` None: the destination's, or the largest source's when the
    destination is new or overridden (RedisBloom's rule)."""
    found = _entry(db, dest, now_ms)
    inputs = [_required(db, source, now_ms) for source in sources]
    if compression is None:
        if found is not None and not override:
            compression = found[0].compression
        else:
            compression = max(view.compression for view, _ in inputs)
    view = TDigest(compression)
    parts = [other.digest(slices) for other, slices in inputs]
    if found is not None and not override and found[0].schema == view.schema:
        dest_slices = found[1]
        own = dest_slices.get(db.origin)
        own_digest = view.digest({db.origin: own}) if own is not None else Digest.empty()
        content = view.combine([own_digest, *parts], Digest.empty().means)
        write_pairs(db, dest, view.schema, view.replace(dest_slices, db.origin, content), now_ms)
        return
    if found is not None and not override:
        parts.insert(0, found[0].digest(found[1]))
    content = view.combine(parts, Digest.empty().means)
    if found is None:
        db.write_own(dest, view.schema, MaxVector(), now_ms)
        if len(content):
            write_pairs(db, dest, view.schema, view.replace({}, db.origin, content), now_ms)
        return
    _replace(db, dest, view, content, now_ms)
