"""The canonical, versioned binary encoding of entries and deltas (msgpack).

An entry travels as a msgpack array::

    [1, epoch, schema, [expiry_set_at_ms, expiry_deadline_ms], slices]

    schema = nil | [kind: str, params: [int...], size: int, additive: bool]
    slices = [[origin: str, width: 1|2|4|8, indices: bin (uint32 LE), values: bin], ...]  sparse
           | [[origin: str, width: 1|2|4|8, start: int, values: bin], ...]             dense run
           | [[origin: str, 0, start: int, bits: bin], ...]                             bit run

An origin is ``""`` (the shared slice), a node's id, or ``~t``: a retired slice (decimal
``t``, see :mod:`hearsay.lattice.retired`; any other name starting with ``~`` is refused).
A delta is just an entry holding some of the pairs, so the same decoder reads both. Values of
width ``w`` are little-endian unsigned; in a dense run, slot ``start + i`` holds value ``i``
and zeros are absent. A bit run (width 0) is a slice whose values are all 1 (a Bloom filter):
slot ``start + i`` holds bit ``i % 8`` of byte ``i // 8``; ``start`` is a multiple of 8 and
the first and last bytes are not zero. The encoder picks whichever form is smallest (a bit run
only for values that are all 1, ties to the older forms), from the pairs alone, so equal
entries encode to equal bytes whatever form their vectors have in memory.

Decoding never trusts the input: every size is checked against the bytes actually present and
against the schema's bounds *before* anything is allocated, and anything malformed raises
:class:`~hearsay.base.errors.DecodeError` (never a KeyError, struct.error or MemoryError).
"""

from __future__ import annotations

import struct
from typing import Any, Final

import msgpack
import numpy as np
import numpy.typing as npt

from hearsay.base.errors import BoundsError, DecodeError
from hearsay.base.packing import packb
from hearsay.lattice import _sparse
from hearsay.lattice.entry import SHARED_ORIGIN, Entry, Expiry, FewPairsDelta, Schema
from hearsay.lattice.retired import RETIRED_MARK, retired_time
from hearsay.lattice.vector import INDEX_DTYPE, VALUE_DTYPES, VALUE_MAX, MaxVector

FORMAT_VERSION: Final = 1
ENTRY_BYTES_MAX: Final = 64 * 1024 * 1024
SLICES_MAX: Final = 4096
ORIGIN_CHARS_MAX: Final = 64
INT64_MAX: Final = (1 << 63) - 1
_PACKED_RUN_PAIRS_MAX: Final = 32
"""Up to this many packed pairs are made into a run in Python (beyond, numpy costs less)."""

WireEntry = list[Any]

FEW_PAIRS_MAX: Final = 64
"""Sparse slices of at most this many pairs are read without numpy (:func:`_few_pairs`):
a replicated write's delta is a pair or a few dozen (a TOPK.ADD raises ~20 slots), and
numpy's fixed costs were most of what decoding one took (~60 us of a ~3 us unpack)."""
_STRUCT_CODES: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _bit_run_bytes(first: int, last: int) -> int:
    """Bytes of a bit run holding slots ``first..last``."""
    return last // 8 - first // 8 + 1


def _slice_to_wire(origin: str, vector: MaxVector) -> list[Any]:
    packed = vector.packed_pairs()
    if packed is not None and len(packed) > 1:
        return _packed_to_wire(origin, packed)
    width = vector.width
    bit_run = vector.bit_run()
    if bit_run is not None:  # values all 1, held as bits: its bytes as they lie in memory
        start, run, count = bit_run
        if run.size < count * (4 + width):  # (the choice below: a bit run is the smallest)
            return [origin, 0, start, run.tobytes()]
        # Else its pairs: no run of a byte a slot is smaller than the bit run, so the dense
        # run's unpacking (a windowed filter's young slices, at each flush) would be for
        # nothing; the indices are read off the bits in C, every value a one-byte 1.
        return [origin, width, _sparse.bit_indices(run, start), b"\x01" * count]
    dense_run = vector.dense_run()
    if dense_run is not None:  # a dense vector: its run as it lies in memory, no pairs built
        start, slots, count = dense_run
        last = start + slots.size - 1  # (the same choices as below)
        if width == 1 and _bit_run_bytes(start, last) < count * 5 and int(slots.max()) == 1:
            pad = start % 8
            run = np.concatenate((np.zeros(pad, dtype=np.uint8), slots)) if pad else slots
            return [origin, 0, start - pad, np.packbits(run, bitorder="little").tobytes()]
        if slots.size * width < count * (4 + width):
            return [origin, width, start, slots.tobytes()]
    return _pairs_to_wire(origin, width, *vector.pairs())


def _pairs_to_wire(
    origin: str,
    width: int,
    indices: npt.NDArray[np.uint32],
    values: npt.NDArray[np.unsignedinteger],
) -> list[Any]:
    """The smallest form of sorted, unique, non-zero pairs (the reference every other path
    of this module must agree with byte for byte)."""
    first, last = int(indices[0]), int(indices[-1])
    if width == 1 and _bit_run_bytes(first, last) < indices.size * 5 and int(values.max()) == 1:
        start = first - first % 8
        bits = np.zeros(_bit_run_bytes(first, last), dtype=np.uint8)
        np.bitwise_or.at(
            bits, (indices - start) >> 3, np.left_shift(1, indices & 7).astype(np.uint8)
        )
        return [origin, 0, start, bits.tobytes()]
    span = last - first + 1
    if span * width < indices.size * (4 + width):
        start = int(indices[0])
        run = np.zeros(span, dtype=VALUE_DTYPES[width])
        run[indices - start] = values
        return [origin, width, start, run.tobytes()]
    return [
        origin,
        width,
        indices.astype(INDEX_DTYPE, copy=False).tobytes(),
        values.astype(VALUE_DTYPES[width], copy=False).tobytes(),
    ]


def _packed_to_wire(origin: str, packed: bytes) -> list[Any]:
    """:func:`_pairs_to_wire` of a sparse vector's packed pairs, read from the bytes.

    Most slices staged at a flush are a few pairs (a counter, a small HLL, a young Bloom
    filter); numpy's per-call overhead made encoding such a slice cost more than the write
    that changed it. The sparse form is the packed bytes cut in two; the runs are built in
    Python for a few pairs, by the numpy reference for more.
    """
    width = packed[0]
    count = (len(packed) - 1) // (4 + width)
    values_at = 1 + 4 * count
    first = int.from_bytes(packed[1:5], "little")
    last = int.from_bytes(packed[values_at - 4 : values_at], "little")
    bit_run = (
        width == 1
        and _bit_run_bytes(first, last) < count * 5
        and packed.count(1, values_at) == count  # (values are non-zero: all 1)
    )
    dense_run = not bit_run and (last - first + 1) * width < count * (4 + width)
    if not (bit_run or dense_run):
        return [origin, width, packed[1:values_at], packed[values_at:]]
    if count > _PACKED_RUN_PAIRS_MAX:
        return _pairs_to_wire(origin, width, *MaxVector.of_packed(packed).pairs())
    indices = struct.unpack_from(f"<{count}I", packed, 1)
    if bit_run:
        start = first - first % 8
        bits = bytearray(_bit_run_bytes(first, last))
        for index in indices:
            bits[(index - start) >> 3] |= 1 << (index & 7)
        return [origin, 0, start, bytes(bits)]
    run = bytearray((last - first + 1) * width)
    for number, index in enumerate(indices):
        at = (index - first) * width
        source = values_at + number * width
        run[at : at + width] = packed[source : source + width]
    return [origin, width, first, bytes(run)]


def entry_to_wire(entry: Entry) -> WireEntry:
    """The msgpack-ready form of an entry, for embedding in larger messages."""
    slices = [_slice_to_wire(origin, vector) for origin, vector in entry.slices()]
    return wire_around(entry, slices)


def wire_around(entry: Entry, slices: list[Any]) -> WireEntry:
    """:func:`entry_to_wire`'s form of ``entry``'s epoch, schema and expiry around ``slices``
    (already in wire form: gossip sends a few pairs in its own form, see messages.py)."""
    schema = entry.schema
    wire_schema = (
        None if schema is None else [schema.kind, list(schema.params), schema.size, schema.additive]
    )
    return [FORMAT_VERSION, entry.epoch, wire_schema, list(entry.expiry), slices]


def encode_entry(entry: Entry) -> bytes:
    """The canonical bytes of an entry (equal entries encode to equal bytes).

    An entry of sparse slices (most keys: counters, small HLLs, young filters, sketches'
    slices) is written in C around its cached head fields (``_sparse.entry_bytes``, the same
    bytes): every node encodes each changed key at every storage flush, and packing the nested
    lists cost ~5 us a small key, against ~1 us.
    """
    slices = entry.packed_slices()
    if slices:
        encoded = _sparse.entry_bytes(wire_head(entry), slices)
        if encoded is not None:
            return encoded
    return packb(entry_to_wire(entry))


_WIRE_HEADS_MAX: Final = 1024
_wire_heads: dict[tuple[int, int, Expiry], tuple[Schema | None, bytes]] = {}
"""``(id of the schema, epoch, expiry)`` -> (the schema, the packed fields an entry's wire form
holds before its slices): few distinct ones carry most writes. Emptied when full; an entry
checks the schema is the one cached (an id may be reused once its schema is gone)."""


def wire_head(entry: Entry) -> bytes:
    """The packed format, epoch, schema and expiry of ``entry``'s wire form, without the
    array's header (:func:`wire_around`'s first four fields): what the C encoders write the
    slices after (here and in gossip's PUSH items)."""
    schema = entry.schema
    cache_key = (id(schema), entry.epoch, entry.expiry)
    held = _wire_heads.get(cache_key)
    if held is not None and held[0] is schema:
        return held[1]
    head = packb(wire_around(entry, [])[:4])[1:]  # (a fixarray of four: one header byte)
    if len(_wire_heads) >= _WIRE_HEADS_MAX:
        _wire_heads.clear()
    _wire_heads[cache_key] = (schema, head)
    return head


def _int(value: object, low: int, high: int, what: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise DecodeError(f"{what} must be an integer in {low}..{high}")
    return value


_SCHEMAS_SEEN_MAX: Final = 4096
_schemas_seen: dict[tuple[object, ...], Schema] = {}
"""Schemas decoded so far, by their wire fields: every replicated delta carries its key's
schema, and checking and interning one again cost ~2 us of a ~9 us decode. Emptied when full
(a peer sending ever new schemas gains nothing but the check)."""


def schema_from_wire(wire: object) -> Schema | None:
    """A decoded schema field checked and interned (None: a tombstone's); DecodeError when
    malformed."""
    if wire is None:
        return None
    if not isinstance(wire, list) or len(wire) != 4:
        raise DecodeError("schema must be nil or [kind, params, size, additive]")
    kind, params, size, additive = wire
    if type(params) is list:
        try:
            seen = _schemas_seen.get((kind, size, additive, *params))
        except TypeError:  # (an unhashable field: refused below)
            seen = None
        # Equal fields of the exact types a checked schema has: the same schema (1.0 or True
        # equal 1 and hash alike, so the types are checked, not only the look-up).
        if (
            seen is not None
            and type(kind) is str
            and type(size) is int
            and type(additive) is bool
            and (not params or all(type(p) is int for p in params))  # (a counter has none)
        ):
            return seen
    if not isinstance(kind, str) or not isinstance(params, list) or type(additive) is not bool:
        raise DecodeError("schema fields have the wrong types")
    if len(params) > 8:
        raise DecodeError("a schema has at most 8 parameters")
    checked = tuple(_int(p, -INT64_MAX - 1, INT64_MAX, "schema parameter") for p in params)
    try:
        schema = Schema(kind, checked, _int(size, 1, 1 << 32, "schema size"), additive).intern()
    except BoundsError as error:
        raise DecodeError(f"invalid schema: {error}") from error
    if len(_schemas_seen) >= _SCHEMAS_SEEN_MAX:
        _schemas_seen.clear()
    _schemas_seen[(kind, size, additive, *checked)] = schema
    return schema


def _slice_from_wire(wire: object, size: int) -> tuple[str, MaxVector]:
    if not isinstance(wire, list) or len(wire) != 4:
        raise DecodeError("a slice must be [origin, width, indices-or-start, values]")
    origin, width, where, raw_values = wire
    if not isinstance(origin, str) or len(origin) > ORIGIN_CHARS_MAX:
        raise DecodeError(f"slice origin must be a string of at most {ORIGIN_CHARS_MAX} chars")
    if width == 0 and type(width) is int:
        return origin, _bit_run_from_wire(where, raw_values, size)
    if width not in (1, 2, 4, 8) or type(width) is not int:
        raise DecodeError("slice value width must be 1, 2, 4 or 8")
    if not isinstance(raw_values, bytes) or len(raw_values) % width:
        raise DecodeError("slice values must be bytes, a whole number of values long")
    count = len(raw_values) // width
    if isinstance(where, bytes) and count <= FEW_PAIRS_MAX and len(where) == 4 * count:
        few = _few_pairs(width, where, raw_values, size)
        if few is not None:
            return origin, few
    values = np.frombuffer(raw_values, VALUE_DTYPES[width])
    if width == 8 and count and int(values.max()) > VALUE_MAX:
        raise DecodeError("slice value above 2**63-1")
    if isinstance(where, bytes):
        if len(where) != 4 * count:
            raise DecodeError("slice has a different number of indices and values")
        if count > size:
            raise DecodeError("slice holds more pairs than its schema has slots")
        indices = np.frombuffer(where, INDEX_DTYPE)
        if count and int(indices.max()) >= size:
            raise DecodeError(f"slice index outside the schema's {size} slots")
        return origin, MaxVector.from_pairs(indices, values)
    start = _int(where, 0, size - 1, "dense run start")
    if start + count > size:
        raise DecodeError(f"dense run past the schema's {size} slots")
    return origin, MaxVector.from_dense(values, start)


def _few_pairs(width: int, indices: bytes, values: bytes, size: int) -> MaxVector | None:
    """The vector of a few sparse pairs already in its packed form (indices rising, values
    non-zero and of the narrowest width, all in bounds): its bytes as they came. None: let
    the general path normalize or refuse them."""
    if _sparse.checked_pairs(width, indices, values, size) is None:
        return None
    return MaxVector.of_checked_packed(bytes((width,)) + indices + values)


def few_pairs_from_wire(wire: object) -> FewPairsDelta | None:
    """A replicated write's usual shape, read without building an entry: one sparse slice of
    at most :data:`FEW_PAIRS_MAX` pairs in their packed form (a TOPK.ADD's delta raises 6-19
    slots; the lattice merges up to 64 pairs given as ints in C), a live schema, not a
    retired slice.

    None for any other shape, malformed ones included: :func:`entry_from_wire` then reads it
    (or refuses it). What this gives is exactly what that entry would hold, so a receiver
    that merges these pairs into a key holding the same epoch, schema and expiry changes it as
    merging the entry would, without the entry, its vector and the slice walk (~40% of what
    a peer spent on a replicated write).
    """
    if type(wire) is not list or len(wire) != 5:
        return None
    version, epoch, wire_schema, expiry, slices = wire
    if (
        version != FORMAT_VERSION
        or type(version) is not int
        or type(epoch) is not int
        or not 0 <= epoch <= INT64_MAX
        or type(expiry) is not list
        or len(expiry) != 2
        or type(slices) is not list
        or len(slices) != 1
    ):
        return None
    stamp, deadline = expiry
    if (
        type(stamp) is not int
        or type(deadline) is not int
        or not 0 <= stamp <= INT64_MAX
        or not 0 <= deadline <= INT64_MAX
    ):
        return None
    wire_slice = slices[0]
    if type(wire_slice) is not list or len(wire_slice) != 4:
        return None
    origin, width, where, raw_values = wire_slice
    if (
        type(origin) is not str
        or len(origin) > ORIGIN_CHARS_MAX
        or origin.startswith(RETIRED_MARK)
        or type(width) is not int
        or width not in _STRUCT_CODES
        or type(where) is not bytes
        or type(raw_values) is not bytes
        or len(raw_values) % width
    ):
        return None
    count = len(raw_values) // width
    if count > FEW_PAIRS_MAX or len(where) != 4 * count:
        return None
    try:
        schema = schema_from_wire(wire_schema)
    except DecodeError:
        return None
    if schema is None or schema.additive == (origin == SHARED_ORIGIN):
        return None
    pairs = _sparse.checked_pairs(width, where, raw_values, schema.size)
    if pairs is None:
        return None
    return epoch, schema, (stamp, deadline), origin, pairs[0], pairs[1]


def _bit_run_from_wire(start: object, bits: object, size: int) -> MaxVector:
    if not isinstance(bits, bytes) or not bits or not bits[0] or not bits[-1]:
        raise DecodeError("a bit run must be bytes whose first and last bytes are not zero")
    first = _int(start, 0, size - 1, "bit run start")
    if first % 8:
        raise DecodeError("a bit run must start at a multiple of 8")
    top = first + 8 * (len(bits) - 1) + bits[-1].bit_length() - 1
    if top >= size:
        raise DecodeError(f"bit run past the schema's {size} slots")
    return MaxVector.from_bits(bits, first)


def entry_from_wire(wire: object) -> Entry:
    """Validate and rebuild an entry from its msgpack-decoded form."""
    if not isinstance(wire, list) or len(wire) != 5:
        raise DecodeError("an entry must be a 5-element array")
    version, epoch, wire_schema, expiry, slices = wire
    if version != FORMAT_VERSION or type(version) is not int:
        raise DecodeError(f"unknown entry format version {version!r}")
    epoch = _int(epoch, 0, INT64_MAX, "epoch")
    schema = schema_from_wire(wire_schema)
    if not isinstance(expiry, list) or len(expiry) != 2:
        raise DecodeError("expiry must be [set_at_ms, deadline_ms]")
    checked_expiry: Expiry = (
        _int(expiry[0], 0, INT64_MAX, "expiry stamp"),
        _int(expiry[1], 0, INT64_MAX, "expiry deadline"),
    )
    if not isinstance(slices, list) or len(slices) > SLICES_MAX:
        raise DecodeError(f"slices must be an array of at most {SLICES_MAX}")
    if schema is None and slices:
        raise DecodeError("an entry without a schema cannot hold data")
    size = schema.size if schema is not None else 1
    decoded: dict[str, MaxVector] = {}
    for wire_slice in slices:
        origin, vector = _slice_from_wire(wire_slice, size)
        assert schema is not None
        if schema.additive == (origin == SHARED_ORIGIN):
            raise DecodeError("slice origin does not fit the schema (additive: named origins)")
        if origin.startswith(RETIRED_MARK) and retired_time(origin) is None:
            raise DecodeError("a retired slice's origin must be ~ and a time in ms")
        if origin in decoded:
            decoded[origin].merge(vector)
        else:
            decoded[origin] = vector
    return Entry(epoch, schema, checked_expiry, decoded)


def decode_entry(data: bytes, bytes_max: int = ENTRY_BYTES_MAX) -> Entry:
    """Decode an entry or delta; raises DecodeError on anything malformed."""
    if len(data) > bytes_max:
        raise DecodeError(f"encoded entry of {len(data)} bytes exceeds {bytes_max}")
    try:
        wire = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=len(data),
            max_str_len=len(data),
            max_array_len=max(16, len(data)),
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise DecodeError(f"malformed entry: {error}") from error
    return entry_from_wire(wire)


def split_entry(entry: Entry, budget_bytes: int) -> list[Entry]:
    """Cut an entry into deltas that each encode to at most ``budget_bytes``.

    Every chunk carries the epoch, schema and expiry, so each merges on its own in any order;
    together they merge to the whole entry.
    """
    header = len(encode_entry(Entry(entry.epoch, entry.schema, entry.expiry)))
    chunks: list[Entry] = []
    for origin, vector in entry.slices():
        per_pair = 4 + vector.width
        overhead = header + len(origin.encode()) + 24
        pairs_max = (budget_bytes - overhead) // per_pair
        if pairs_max < 1:
            raise BoundsError(f"a budget of {budget_bytes} bytes cannot hold one pair")
        for piece in vector.split(pairs_max):
            chunks.append(Entry(entry.epoch, entry.schema, entry.expiry, {origin: piece}))
    return chunks or [Entry(entry.epoch, entry.schema, entry.expiry)]
