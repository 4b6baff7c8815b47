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

import numpy as np
import numpy.typing as npt
import xxhash

from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector

_M1: Final = 0xFF51AFD7ED558CCD
_M2: Final = 0xC4CEB9FE1A85EC53
_GOLDEN: Final = 0x9E3779B97F4A7C15
_MASK: Final = (1 << 64) - 1
# 0-d arrays rather than numpy scalars: a ufunc takes them with less per-call overhead.
_M1_U64: Final = np.array(_M1, dtype=np.uint64)
_M2_U64: Final = np.array(_M2, dtype=np.uint64)
_GOLDEN_U64: Final = np.array(_GOLDEN, dtype=np.uint64)
_SHIFT: Final = np.array(33, dtype=np.uint64)
_SMALL: Final = 16
"""Below this many pairs, plain Python ints beat numpy's per-call overhead."""


def _fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finaliser: a strong bijective mix."""
    x ^= x >> 33
    x = (x * _M1) & _MASK
    x ^= x >> 33
    x = (x * _M2) & _MASK
    return x ^ (x >> 33)


def _fmix64_inplace(x: npt.NDArray[np.uint64]) -> None:
    """:func:`_fmix64` of every element, overwriting ``x`` (one scratch array, no others)."""
    shifted = x >> _SHIFT
    x ^= shifted
    x *= _M1_U64
    np.right_shift(x, _SHIFT, shifted)  # (out given positionally: no keyword parsing)
    x ^= shifted
    x *= _M2_U64
    np.right_shift(x, _SHIFT, shifted)  # (out given positionally: no keyword parsing)
    x ^= shifted


def key_seed(key: bytes) -> int:
    """A per-key seed so that equal pairs under different keys never cancel out."""
    return xxhash.xxh3_64_intdigest(key)


def header_hash(seed: int, entry: Entry) -> int:
    """The hash of ``(key, epoch, schema, expiry)``."""
    schema = entry.schema
    described = (
        b"-"
        if schema is None
        else repr((schema.kind, schema.params, schema.size, schema.additive)).encode()
    )
    packed = struct.pack("<QqqQ", seed, entry.epoch, entry.expiry[0], entry.expiry[1])
    return xxhash.xxh3_64_intdigest(packed + described)


def pairs_hash(seed: int, origin: str, *vectors: MaxVector) -> int:
    """XOR of one hash per non-zero pair of the ``vectors`` written by ``origin``.

    Several vectors at once cost one numpy pass instead of one each: a grown key's hash
    changes by ``pairs_hash(seed, origin, previous, delta)``.
    """
    base = seed ^ (xxhash.xxh3_64_intdigest(origin.encode()) if origin else 0)
    if all(not vector.is_dense and len(vector) < _SMALL for vector in vectors):
        # A client write's delta and previous values (a few packed pairs each): Python ints
        # read straight from the packed bytes, no array built.
        acc = 0
        for vector in vectors:
            for index, value in vector.items():
                acc ^= _fmix64(base ^ _fmix64((index * _GOLDEN) & _MASK ^ value))
        return acc
    parts = [vector.pairs() for vector in vectors if not vector.is_empty()]
    if not parts:
        return 0
    total = sum(indices.size for indices, _ in parts)
    if total < _SMALL:
        acc = 0
        for indices, values in parts:
            for index, value in zip(indices.tolist(), values.tolist(), strict=True):
                acc ^= _fmix64(base ^ _fmix64((index * _GOLDEN) & _MASK ^ value))
        return acc
    # All parts mixed in one array, in place: fmix64(base ^ fmix64(index * golden ^ value)).
    mixed = np.empty(total, dtype=np.uint64)
    start = 0
    for indices, values in parts:
        chunk = mixed[start : start + indices.size]
        np.multiply(indices, _GOLDEN_U64, out=chunk)
        chunk ^= values
        start += indices.size
    _fmix64_inplace(mixed)
    mixed ^= np.uint64(base)
    _fmix64_inplace(mixed)
    return int(np.bitwise_xor.reduce(mixed))


def entry_hash(key: bytes, entry: Entry, seed: int | None = None) -> int:
    """The content hash of one key's entry (equal content gives an equal hash anywhere)."""
    seed = key_seed(key) if seed is None else seed
    acc = header_hash(seed, entry)
    for origin, vector in entry.slices():
        acc ^= pairs_hash(seed, origin, vector)
    return acc
