"""Content hashes of entries that update in O(delta), for anti-entropy.

Anti-entropy compares what two nodes hold without sending it. Its cost must follow the size of
the difference, not of the keyspace, so the keyspace keeps one 64-bit hash per bucket of keys
and updates it as entries change, without rehashing whole entries on every write.

The trick is linearity: an entry's hash is the XOR of a hash of its header
``(key, epoch, schema, expiry)`` and one hash per non-zero pair ``(key, origin, index,
value)``. When a pair grows from ``old`` to ``new`` the hash changes by
``pair(old) ^ pair(new)``, which the merge reports (see ``MergeResult.previous``). Absent
pairs (value 0) contribute nothing, so the hash depends only on the content, never on the
representation (sparse or dense, value width, chunking). A bucket's hash is the XOR of its
keys' hashes.
"""

from __future__ import annotations

import struct
from typing import Final

import xxhash

from hearsay.lattice._digest import xor_bits, xor_packed, xor_pairs
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector

_M1: Final = 0xFF51AFD7ED558CCD
_M2: Final = 0xC4CEB9FE1A85EC53
_GOLDEN: Final = 0x9E3779B97F4A7C15
_MASK: Final = (1 << 64) - 1
ORIGIN_HASHES_MAX: Final = 4096
"""Origins whose hash is remembered (node ids: a cluster has a few; the table is cleared when
full, so a stream of made-up origins cannot grow it)."""
_origin_hashes: dict[str, int] = {}


def _fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finaliser: a strong bijective mix."""
    x ^= x >> 33
    x = (x * _M1) & _MASK
    x ^= x >> 33
    x = (x * _M2) & _MASK
    return x ^ (x >> 33)


def pair_hash_reference(base: int, index: int, value: int) -> int:
    """One pair's hash under ``base`` in plain Python: the definition :mod:`._digest` (C) is
    held to bit for bit (anti-entropy compares these hashes across nodes and versions)."""
    return _fmix64(base ^ _fmix64((index * _GOLDEN) & _MASK ^ value))


def key_seed(key: bytes) -> int:
    """A per-key seed so that equal pairs under different keys never cancel out."""
    return xxhash.xxh3_64_intdigest(key)


def header_hash(seed: int, entry: Entry) -> int:
    """The hash of ``(key, epoch, schema, expiry)``."""
    schema = entry.schema
    if schema is None:
        described = b"-"
    else:
        held = _described.get(id(schema))
        if held is not None and held[0] is schema:
            described = held[1]
        else:
            described = repr((schema.kind, schema.params, schema.size, schema.additive)).encode()
            if len(_described) >= SCHEMAS_DESCRIBED_MAX:
                _described.clear()
            _described[id(schema)] = (schema, described)
    packed = struct.pack("<QqqQ", seed, entry.epoch, entry.expiry[0], entry.expiry[1])
    return xxhash.xxh3_64_intdigest(packed + described)


SCHEMAS_DESCRIBED_MAX: Final = 1024
"""Schemas whose described bytes are remembered (a node's keys share a few interned schemas;
the table is cleared when full, so a stream of new parameters cannot grow it)."""
_described: dict[int, tuple[Schema, bytes]] = {}
"""By the id of the schema, which each holds (so no other schema takes its id meanwhile): the
``repr`` of its fields, which cost more than the rest of a header's hash."""


def origin_base(seed: int, origin: str) -> int:
    """The base a key's ``origin`` slice hashes its pairs under."""
    if not origin:
        return seed
    hashed = _origin_hashes.get(origin)
    if hashed is None:
        if len(_origin_hashes) >= ORIGIN_HASHES_MAX:
            _origin_hashes.clear()
        hashed = _origin_hashes[origin] = xxhash.xxh3_64_intdigest(origin.encode())
    return seed ^ hashed


def pairs_hash(seed: int, origin: str, *vectors: MaxVector) -> int:
    """XOR of one hash per non-zero pair of the ``vectors`` written by ``origin``.

    Each pair's hash is :func:`pair_hash_reference`, computed in C (:mod:`._digest`): a few
    packed pairs straight from their items, anything bigger from its arrays. A grown key's
    hash changes by ``pairs_hash(seed, origin, previous, delta)``.
    """
    base = origin_base(seed, origin)
    acc = 0
    for vector in vectors:
        packed = vector.packed_pairs()
        if packed is not None:  # sparse: straight from its bytes
            acc ^= xor_packed(base, packed)
            continue
        bit_run = vector.bit_run()
        if bit_run is not None:  # bits (a Bloom filter): straight from them, no pairs built
            acc ^= xor_bits(base, bit_run[1], bit_run[0])
            continue
        indices, values = vector.pairs()
        acc ^= xor_pairs(base, indices, values)
    return acc


def packed_change(seed: int, origin: str, grown: bytes, previous: bytes | None) -> int:
    """How a key's content hash changes when ``origin``'s slice grew at the indices of
    ``grown`` from their ``previous`` values (a client write's few pairs, as
    ``Entry.grow_few`` reports them): :func:`pairs_hash` of both, straight from the bytes."""
    base = origin_base(seed, origin)
    change = xor_packed(base, grown)
    return change if previous is None else change ^ xor_packed(base, previous)


def entry_hash(key: bytes, entry: Entry, seed: int | None = None) -> int:
    """The content hash of one key's entry (equal content gives an equal hash anywhere)."""
    seed = key_seed(key) if seed is None else seed
    acc = header_hash(seed, entry)
    for origin, vector in entry.slices():
        acc ^= pairs_hash(seed, origin, vector)
    return acc
