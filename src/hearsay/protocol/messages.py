"""Payloads of hearsay's own gossip messages: building them to a byte budget, checking them.

Why this module exists: the node must pack as many items as fit one datagram without
re-encoding anything, and must never trust a peer's payload. Items are encoded once with
msgpack and concatenated under a hand-written array header, so the byte count of a message is
known exactly while it is being filled. Decoding unpacks with every msgpack limit set to the
payload's own length, then checks every field's type and range before building anything;
anything wrong raises :class:`PayloadError` (a :class:`~hearsay.base.errors.DecodeError`).

Payloads (msgpack arrays; ``key`` is bin; ``entry`` is
:func:`hearsay.lattice.codec.entry_to_wire`)::

    PUSH        [relay: bool | uint, ack_seq: uint (0 = none), [[key, entry, full: bool], ...]]
    EXCHANGE    [[key, entry | nil], ...]
    ACK         [seq, ...]
    DIGEST      [[key, content_hash: uint64], ...]
    AE_GROUPS   [round: uint, bucket_count: uint, group_hashes: bin (uint64 LE each)]
    AE_BUCKETS  [round: uint, [[group: uint, bucket_hashes: bin], ...]]
    AE_KEYS     [round: uint, [[bucket: uint, [[key, content_hash], ...]], ...]]
    BACKOFF     [pause_ms: uint]

AE_BUCKETS and AE_KEYS are arrays of independent blocks (a group, a bucket), so a long one is
cut into several datagrams; only a single block larger than a datagram needs a stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

import msgpack
import numpy as np

from hearsay.base.errors import DecodeError
from hearsay.base.packing import packb as packb  # noqa: PLC0414  (re-exported: msg.packb)
from hearsay.lattice import _sparse
from hearsay.lattice.codec import (
    FEW_PAIRS_MAX,
    entry_from_wire,
    entry_to_wire,
    few_pairs_from_wire,
    schema_from_wire,
    wire_around,
    wire_head,
)
from hearsay.lattice.entry import Entry, FewPairsDelta, Schema
from hearsay.lattice.keyspace import KEY_BYTES_MAX

UINT64_MAX: Final = (1 << 64) - 1
ITEMS_MAX: Final = 1 << 16
"""Most items one message may carry (a stream message included)."""


class PayloadError(DecodeError):
    """A gossip payload is malformed."""


def array_header(count: int) -> bytes:
    """msgpack's header of an array of ``count`` items."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


def push_item(key: bytes, entry: Entry, full: bool) -> bytes:
    """``packb([key, entry_wire(entry), full])``; a replicated write's few pairs are written
    by ``_sparse.push_item`` around its fields' cached bytes (building the nested lists to
    pack them was ~1.5 us of every key a drain pushes)."""
    slices = entry.packed_slices()
    if slices is not None:
        item = _sparse.push_item(key, wire_head(entry), slices, full)
        if item is not None:
            return item
    return packb([key, entry_to_wire(entry), full])


def entry_wire(entry: Entry) -> list[Any]:
    """:func:`~hearsay.lattice.codec.entry_to_wire`, except that slices of a few packed pairs
    travel as those bytes, split (the sparse form), when every slice is such.

    A replicated write is a pair or a few; picking the canonical smallest form cost numpy
    calls worth ~25 us an item where this costs none, and a peer decodes the sparse form of a
    few pairs without numpy too (``FEW_PAIRS_MAX``). Gossip needs no canonical bytes: any
    valid form decodes to the same entry (the stored form stays canonical).
    """
    slices: list[list[Any]] = []
    for origin, vector in entry.slices():
        packed = vector.packed_pairs()
        if packed is None:
            return entry_to_wire(entry)
        width = packed[0]
        count = (len(packed) - 1) // (4 + width)
        if not 0 < count <= FEW_PAIRS_MAX:
            return entry_to_wire(entry)
        slices.append([origin, width, packed[1 : 1 + 4 * count], packed[1 + 4 * count :]])
    return wire_around(entry, slices)


RELAY_FANOUT_MAX = 255


def push_prefix(relay: bool | int, ack_seq: int) -> bytes:
    """Everything of a PUSH payload before the item array's header.

    ``relay`` says what the receiver does with what grew: ``False``, nothing (a reply);
    ``True``, forward it to its own ``fanout`` peers (a rumour); an integer ``n``, a rumour
    forwarded to at most ``n`` peers (``0`` when the sender already pushed it to every peer it
    knows). ``True`` and ``1`` are distinct on the wire (msgpack bool vs int).
    """
    return b"\x93" + packb(relay) + packb(ack_seq)


def exchange_item(key: bytes, entry: Entry | None) -> bytes:
    return packb([key, None if entry is None else entry_wire(entry)])


def hash_item(key: bytes, content_hash: int) -> bytes:
    return packb([key, content_hash])


def join_items(prefix: bytes, items: list[bytes], suffix: bytes = b"") -> bytes:
    return prefix + array_header(len(items)) + b"".join(items) + suffix


def unpack(payload: bytes) -> Any:
    """msgpack-decode a payload with every size limit bounded by the payload itself."""
    size = len(payload)
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            use_list=True,
            strict_map_key=False,
            max_bin_len=size,
            max_str_len=size,
            max_array_len=max(16, size),
            max_map_len=max(16, size),
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise PayloadError(f"malformed payload: {error}") from error


def _list(value: object, what: str, max_len: int = ITEMS_MAX) -> list[Any]:
    if type(value) is not list or len(value) > max_len:
        raise PayloadError(f"{what} must be an array of at most {max_len} items")
    return value


def _uint(value: object, what: str, high: int = UINT64_MAX) -> int:
    if type(value) is not int or not 0 <= value <= high:
        raise PayloadError(f"{what} must be an integer in 0..{high}")
    return value


def _key(value: object) -> bytes:
    if type(value) is not bytes or len(value) > KEY_BYTES_MAX:
        raise PayloadError(f"a key must be bin of at most {KEY_BYTES_MAX} bytes")
    return value


def _bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise PayloadError(f"{what} must be a bool")
    return value


def push_parts(payload: bytes) -> tuple[bool | int, int, list[Any]]:
    """``(relay, ack_seq, raw items)``: the items are decoded one by one with
    :func:`decode_push_item`, so a big message can be handled in steps."""
    wire = _list(unpack(payload), "PUSH", 3)
    if len(wire) != 3:
        raise PayloadError("PUSH must be [relay, ack_seq, items]")
    relay = wire[0] if type(wire[0]) is bool else _uint(wire[0], "relay", RELAY_FANOUT_MAX)
    return relay, _uint(wire[1], "ack_seq"), _list(wire[2], "PUSH items")


def decode_push_item(item: object) -> tuple[bytes, Entry, bool]:
    fields = _list(item, "PUSH item", 3)
    if len(fields) != 3:
        raise PayloadError("PUSH item must be [key, entry, full]")
    return _key(fields[0]), entry_from_wire(fields[1]), _bool(fields[2], "full")


FEW_PAIRS_MERGED: Final = 8
"""A decoded replicated delta of at most this many pairs of one slice merges as raw pairs (see
:func:`hearsay.protocol.gossip.outbox.merge_delta`: beyond, its vector's pairs are arrays)."""


FewPairsItem = tuple[FewPairsDelta, "list[Any] | bytes"]
"""A PUSH item's entry read as a replicated write's few pairs (see
:func:`~hearsay.lattice.codec.few_pairs_from_wire`), with the entry as it came: msgpack's
decoded list, or its bytes when :func:`push_few` read the payload. :func:`few_item_entry`
decodes it whole only when the receiver needs it (the key holds another epoch, or we hold
more than it carried). A plain tuple: one is made per item received, in C or in Python."""


def few_item_entry(item: FewPairsItem) -> Entry:
    """The whole entry of a few-pairs item (what :func:`decode_push_item` gives)."""
    wire = item[1]
    return entry_from_wire(unpack(wire) if type(wire) is bytes else wire)


def decode_push_item_fast(item: object) -> tuple[bytes, Entry | FewPairsItem, bool]:
    """:func:`decode_push_item`, giving a replicated write's usual entry as its few pairs."""
    if type(item) is list and len(item) == 3:
        key, wire, full = item
        if type(key) is bytes and len(key) <= KEY_BYTES_MAX and type(full) is bool:
            few = few_pairs_from_wire(wire)
            if few is not None:
                return key, (few, wire), full
    return decode_push_item(item)


_SCHEMAS_BY_BYTES_MAX: Final = 4096
_schemas_by_bytes: dict[bytes, tuple[Schema, int, bool]] = {}
"""Schemas :func:`push_few` met, by their msgpack bytes, each checked once here: ``(schema,
its size, additive)``. Emptied when full (a peer sending ever new schemas gains nothing but
the check)."""


def push_few(
    payload: bytes,
) -> tuple[bool | int, int, list[tuple[bytes, FewPairsItem, bool]]] | None:
    """A PUSH whose every item is a replicated write's few pairs (the usual one), read in C
    without msgpack's objects: :func:`push_parts` and :func:`decode_push_item_fast` of each
    item, in one call (those cost ~14% of a receiver's work on a replicated write). None for
    any other payload, malformed ones included: decode it with those."""
    got = _sparse.push_few(payload, _schemas_by_bytes, KEY_BYTES_MAX, ITEMS_MAX)
    if type(got) is bytes:  # (a schema not seen yet: checked now, read in C from the next)
        _learn_schema(got)
        return None
    return got  # type: ignore[return-value]  # (None or the tuple: see _sparse.pyi)


def _learn_schema(raw: bytes) -> None:
    try:
        schema = schema_from_wire(unpack(raw))
    except DecodeError:  # (PayloadError included: the Python decode refuses it again)
        return
    if schema is None:
        return
    if len(_schemas_by_bytes) >= _SCHEMAS_BY_BYTES_MAX:
        _schemas_by_bytes.clear()
    _schemas_by_bytes[raw] = (schema, schema.size, schema.additive)


def decode_push(payload: bytes) -> tuple[bool | int, int, list[tuple[bytes, Entry, bool]]]:
    relay, ack_seq, raw = push_parts(payload)
    return relay, ack_seq, [decode_push_item(item) for item in raw]


def exchange_parts(payload: bytes) -> list[Any]:
    """The raw items of an EXCHANGE (see :func:`decode_exchange_item`)."""
    return _list(unpack(payload), "EXCHANGE")


def decode_exchange_item(item: object) -> tuple[bytes, Entry | None]:
    fields = _list(item, "EXCHANGE item", 2)
    if len(fields) != 2:
        raise PayloadError("EXCHANGE item must be [key, entry | nil]")
    return _key(fields[0]), None if fields[1] is None else entry_from_wire(fields[1])


def decode_exchange(payload: bytes) -> list[tuple[bytes, Entry | None]]:
    return [decode_exchange_item(item) for item in exchange_parts(payload)]


@dataclass(frozen=True, slots=True)
class ItemPiece:
    """One piece of a big PUSH or EXCHANGE item (see :func:`cut_item`).

    ``item`` is an undecoded item of the same kind carrying at most the pairs asked for. A
    piece with an ``origin`` carries that origin's pairs at indices ``low <= i < high`` (the
    pieces of one origin cover every index); the last piece (``origin`` None) carries only the
    entry's header and stands for every origin ``cut_origins`` does not name.
    """

    item: list[Any]
    origin: str | None
    low: int
    high: int
    cut_origins: frozenset[str]


_INDEX_END: Final = 1 << 32


def _wire_slices(item: object) -> list[list[Any]] | None:
    """The wire slices of an undecoded PUSH / EXCHANGE item, if it is shaped like one."""
    if not isinstance(item, list) or len(item) not in (2, 3):
        return None
    wire = item[1]
    if not isinstance(wire, list) or len(wire) != 5 or not isinstance(wire[4], list):
        return None
    slices = wire[4]
    for piece in slices:
        if not (
            isinstance(piece, list)
            and len(piece) == 4
            and isinstance(piece[0], str)
            and type(piece[1]) is int
            and piece[1] in (1, 2, 4, 8)
            and isinstance(piece[3], bytes)
            and len(piece[3]) % piece[1] == 0
            and (type(piece[2]) is int or isinstance(piece[2], bytes))
        ):
            return None
    return slices


def item_pairs(item: object) -> int:
    """How many pairs an undecoded PUSH / EXCHANGE item carries (0 if it is not shaped like
    one: its decoder then says what is wrong)."""
    slices = _wire_slices(item)
    return 0 if slices is None else sum(len(values) // width for _, width, _, values in slices)


def cut_item(item: object, pairs_max: int) -> list[ItemPiece] | None:
    """A PUSH / EXCHANGE item of more than ``pairs_max`` pairs cut into pieces of at most
    ``pairs_max`` pairs, before decoding, so that each piece is decoded, merged and answered
    as a step of its own (a piece is a valid delta: any subset of a vector is).

    None when the item is small, not shaped like an item (the decoder says why), or not in
    canonical order (one slice per origin, rising indices): it is then decoded whole.
    """
    slices = _wire_slices(item)
    if slices is None or item_pairs(item) <= pairs_max:
        return None
    assert isinstance(item, list)
    origins = frozenset(origin for origin, _, _, _ in slices)
    if len(origins) != len(slices):
        return None
    key, wire, rest = item[0], item[1], item[2:]
    header = wire[:4]
    pieces: list[ItemPiece] = []
    for origin, width, where, values in slices:
        count = len(values) // width
        if isinstance(where, bytes) and len(where) != 4 * count:
            return None
        if isinstance(where, bytes):
            indices = np.frombuffer(where, "<u4")
            if not (indices[1:] > indices[:-1]).all():
                return None  # indices not rising: not canonical, decoded whole
        starts = list(range(0, count, pairs_max)) or [0]
        lows = [0] + [
            int(indices[start]) if isinstance(where, bytes) else where + start
            for start in starts[1:]
        ]
        for n, start in enumerate(starts):
            end = start + pairs_max
            part = where[4 * start : 4 * end] if isinstance(where, bytes) else where + start
            wire_slice = [origin, width, part, values[width * start : width * end]]
            high = lows[n + 1] if n + 1 < len(lows) else _INDEX_END
            piece = [key, [*header, [wire_slice]], *rest]
            pieces.append(ItemPiece(piece, origin, lows[n], high, origins))
    pieces.append(ItemPiece([key, [*header, []], *rest], None, 0, _INDEX_END, origins))
    return pieces


def decode_ack(payload: bytes) -> list[int]:
    return [_uint(seq, "ack seq") for seq in _list(unpack(payload), "ACK", 1024)]


def decode_hash_items(wire: object, what: str) -> list[tuple[bytes, int]]:
    items: list[tuple[bytes, int]] = []
    for item in _list(wire, what):
        fields = _list(item, f"{what} item", 2)
        if len(fields) != 2:
            raise PayloadError(f"{what} item must be [key, hash]")
        items.append((_key(fields[0]), _uint(fields[1], "content hash")))
    return items


def decode_digest(payload: bytes) -> list[tuple[bytes, int]]:
    return decode_hash_items(unpack(payload), "DIGEST")


def decode_ae_groups(payload: bytes, groups_max: int) -> tuple[int, int, bytes]:
    wire = _list(unpack(payload), "AE_GROUPS", 3)
    if len(wire) != 3:
        raise PayloadError("AE_GROUPS must be [round, bucket_count, hashes]")
    round_id = _uint(wire[0], "round")
    buckets = _uint(wire[1], "bucket count", 1 << 24)
    hashes = wire[2]
    if type(hashes) is not bytes or len(hashes) % 8 or len(hashes) // 8 > groups_max:
        raise PayloadError("group hashes must be whole uint64s, not too many")
    return round_id, buckets, hashes


def decode_ae_buckets(
    payload: bytes, groups: int, per_group: int
) -> tuple[int, list[tuple[int, bytes]]]:
    wire = _list(unpack(payload), "AE_BUCKETS", 2)
    if len(wire) != 2:
        raise PayloadError("AE_BUCKETS must be [round, groups]")
    out: list[tuple[int, bytes]] = []
    for item in _list(wire[1], "AE_BUCKETS groups", groups):
        fields = _list(item, "AE_BUCKETS group", 2)
        if len(fields) != 2:
            raise PayloadError("AE_BUCKETS group must be [group, hashes]")
        group = _uint(fields[0], "group", groups - 1)
        hashes = fields[1]
        if type(hashes) is not bytes or len(hashes) != 8 * per_group:
            raise PayloadError("a group's bucket hashes have the wrong size")
        out.append((group, hashes))
    return _uint(wire[0], "round"), out


def decode_ae_keys(
    payload: bytes, buckets: int
) -> tuple[int, list[tuple[int, list[tuple[bytes, int]]]]]:
    wire = _list(unpack(payload), "AE_KEYS", 2)
    if len(wire) != 2:
        raise PayloadError("AE_KEYS must be [round, blocks]")
    blocks: list[tuple[int, list[tuple[bytes, int]]]] = []
    for block in _list(wire[1], "AE_KEYS blocks", buckets):
        fields = _list(block, "AE_KEYS block", 2)
        if len(fields) != 2:
            raise PayloadError("AE_KEYS block must be [bucket, items]")
        blocks.append(
            (_uint(fields[0], "bucket", buckets - 1), decode_hash_items(fields[1], "AE_KEYS"))
        )
    return _uint(wire[0], "round"), blocks


def decode_stream_hello(payload: bytes) -> tuple[int, int]:
    """``(sender port, body bytes)``."""
    wire = _list(unpack(payload), "stream hello", 2)
    if len(wire) != 2:
        raise PayloadError("stream hello must be [port, bytes]")
    return _uint(wire[0], "port", 65535), _uint(wire[1], "bytes", 2**32 - 1)


def decode_backoff(payload: bytes) -> int:
    wire = _list(unpack(payload), "BACKOFF", 1)
    if len(wire) != 1:
        raise PayloadError("BACKOFF must be [pause_ms]")
    return _uint(wire[0], "pause_ms", 60_000)
