"""DUMP / RESTORE and BF.SCANDUMP / BF.LOADCHUNK: a key's value as a portable payload.

Why one module: backing up or moving a key is the same for every family, so it goes through
the entry codec (:mod:`hearsay.lattice.codec`), never a family's own representation; a family
added later dumps and restores without a line here.

The payload (hearsay's own format, not Redis's RDB serialization)::

    b"HSDP" | version (1 byte) | encode_entry(value) | CRC-32 of everything before (4 bytes LE)

``value`` is the key's schema and slices, without its epoch (a restored key takes the epoch
of the key it lands in) and without its expiry (RESTORE's ttl sets that, as in Redis).
Additive schemas keep their per-node slices, so a restored counter sums to the same value.
"""

from __future__ import annotations

import zlib
from typing import Final

from hearsay.base.errors import DecodeError, HearsayError, SketchParameterError
from hearsay.engine.replica import Replica
from hearsay.lattice.codec import decode_entry, encode_entry, split_entry
from hearsay.lattice.entry import Entry
from hearsay.sketch.views import view_for

__all__ = [
    "PAYLOAD_VERSION",
    "BusyKeyError",
    "PayloadError",
    "decode_payload",
    "dump",
    "encode_payload",
    "load_chunk",
    "restore",
    "scan_dump",
]

MAGIC: Final = b"HSDP"
PAYLOAD_VERSION: Final = 1
_CRC_BYTES: Final = 4
SCANDUMP_CHUNK_BYTES: Final = 1 << 20
"""BF.SCANDUMP's chunk size: each chunk is a self-contained payload of part of the entry."""


class PayloadError(HearsayError):
    """The payload is not one of ours: wrong magic, unknown version or a bad checksum."""


class BusyKeyError(HearsayError):
    """RESTORE without REPLACE onto a key that exists."""


def encode_payload(entry: Entry) -> bytes:
    """``entry``'s schema and slices as a versioned, checksummed payload."""
    value = Entry(0, entry.schema, slices=dict(entry.slices()))
    body = MAGIC + bytes([PAYLOAD_VERSION]) + encode_entry(value)
    return body + zlib.crc32(body).to_bytes(_CRC_BYTES, "little")


def decode_payload(payload: bytes) -> Entry:
    """The entry a payload holds. PayloadError when it is not ours (magic, version, CRC);
    DecodeError when it checks but does not decode to a valid entry of a family this node
    has (a newer node's family, or parameters no view accepts)."""
    head = len(MAGIC) + 1
    if len(payload) < head + _CRC_BYTES or not payload.startswith(MAGIC):
        raise PayloadError("not a hearsay DUMP payload")
    body, crc = payload[:-_CRC_BYTES], payload[-_CRC_BYTES:]
    if payload[len(MAGIC)] != PAYLOAD_VERSION:
        raise PayloadError(f"unknown DUMP payload version {payload[len(MAGIC)]}")
    if zlib.crc32(body).to_bytes(_CRC_BYTES, "little") != crc:
        raise PayloadError("DUMP payload checksum mismatch")
    entry = decode_entry(body[head:])
    if entry.schema is None or entry.epoch or entry.expiry[1]:
        raise DecodeError("a DUMP payload holds a schema, no epoch and no expiry")
    try:
        view_for(entry.schema)  # a family this node has, with parameters it accepts
    except SketchParameterError as error:
        raise DecodeError(str(error)) from error
    return entry


def dump(db: Replica, key: bytes, now_ms: int) -> bytes | None:
    """DUMP: the payload of ``key``'s value, None when the key does not exist."""
    entry = db.get(key, now_ms)
    return None if entry is None else encode_payload(entry)


def restore(
    db: Replica, key: bytes, payload: bytes, deadline_ms: int, *, replace: bool, now_ms: int
) -> None:
    """RESTORE: ``key`` holds the payload's value (deadline 0: no expiry).

    The payload is checked whole before anything changes. With ``replace`` an existing key is
    deleted first (a new epoch, so nothing of the old value survives anywhere); without it an
    existing key is a :class:`BusyKeyError` (before the payload is looked at, as in Redis).
    A deadline already past leaves the key deleted,
    as Redis does.
    """
    exists = db.get(key, now_ms) is not None
    if exists and not replace:  # checked before the payload, as Redis does
        raise BusyKeyError("Target key name already exists.")
    entry = decode_payload(payload)
    schema = entry.schema
    assert schema is not None, "decode_payload checks it"
    if exists:
        db.delete([key], now_ms)
    if deadline_ms and deadline_ms <= now_ms:
        return
    db.write(key, schema.intern(), dict(entry.slices()), now_ms)
    if deadline_ms:
        db.expire_at(key, deadline_ms, now_ms)


def scan_dump(entry: Entry, cursor: int) -> tuple[int, bytes]:
    """BF.SCANDUMP's step: the chunk after ``cursor`` (0 first) and the next cursor, or
    ``(0, b"")`` past the last chunk. Each chunk is a whole payload of part of the entry, so
    :func:`load_chunk` merges each on its own, in any order."""
    chunks = split_entry(Entry(0, entry.schema, slices=dict(entry.slices())), SCANDUMP_CHUNK_BYTES)
    if not 0 <= cursor < len(chunks):
        return 0, b""
    return cursor + 1, encode_payload(chunks[cursor])


def load_chunk(db: Replica, key: bytes, payload: bytes, kind: str, now_ms: int) -> None:
    """BF.LOADCHUNK: merge one chunk of :func:`scan_dump` into ``key`` (created by the first
    chunk). DecodeError for a chunk of another kind than ``kind``; WrongTypeError when the
    key holds another type."""
    entry = decode_payload(payload)
    schema = entry.schema
    assert schema is not None, "decode_payload checks it"
    if schema.kind != kind:
        raise DecodeError(f"the chunk holds a {schema.kind}, not a {kind}")
    db.write(key, schema.intern(), dict(entry.slices()), now_ms)
