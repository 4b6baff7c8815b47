"""The sketch kinds and their lattice :class:`Schema`: what each kind's parameters mean.

A key's value is an :class:`~hearsay.lattice.entry.Entry`: one max-vector (ordinary schemas,
origin ``""``) or one max-vector per origin node (additive schemas). A sketch never holds state
of its own. It is a *view*: writing computes ``(indices, values)`` pairs (a delta) that the
caller merges into the entry (``MaxVector.merge_pairs`` or ``Keyspace.write``), and reading
computes an answer from the vector(s). That is what lets replicas merge in any order.

This module says what each kind's schema holds (:mod:`hearsay.sketch.views` maps a schema read
from a peer or from disk back to its view and to the name Redis's ``TYPE`` replies). It
imports no view: every view imports it, so the package has no import circle.

========  ==================================================  ==========  ========  =========
kind      params                                              size        additive  TYPE
========  ==================================================  ==========  ========  =========
hll       ``(p,)``                                            ``2**p``    no        string
bloom     ``(bits, hashes, capacity, error_bits, hash_v)``    ``bits``    no        MBbloom--
bloom     ``(bits0, hashes0, capacity, error_bits, hash_v,    chain end   no        MBbloom--
          expansion)``: a scalable chain (sketch/bloom.py)
cms       ``(width, depth)``                                  ``w * d``   yes       CMSk-TYPE
counter   ``()``                                              2           yes       string
maxreg    ``()``                                              1           no        maxreg
vector    ``()``                                              ``2**32``   no        vector
tdigest   ``(compression,)``                                  ``48+34c``  yes       TDIS-TYPE
cuckoo    ``(capacity, bucket_size, max_iterations, expansion)``  ``2**32``   yes       MBbloomCF
topk      ``(k, width, depth, decay_bits)``                   ``2**32``   yes       TopK-TYPE
========  ==================================================  ==========  ========  =========

``error_bits`` is the IEEE-754 bit pattern of the Bloom filter's error rate (a positive double
below 1, so it fits a non-negative int64 exactly); ``hash_v`` names the hashing scheme so that
filters hashed differently are never merged by accident.

What the views share besides: :mod:`hearsay.sketch.slots` (a delta's pairs, reading and
merging slots) and :mod:`hearsay.sketch.hashing` (the member hashes of Bloom and count-min).
"""

from __future__ import annotations

import math
import struct
from typing import Final

import numpy as np

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import INDEX_LIMIT, VALUE_MAX
from hearsay.sketch.hll_math import check_precision

__all__ = [
    "BLOOM_HASH_VERSION",
    "CMS_DEPTH_MAX",
    "KIND_BLOOM",
    "KIND_CMS",
    "KIND_COUNTER",
    "KIND_CUCKOO",
    "KIND_HLL",
    "KIND_MAXREG",
    "KIND_TDIGEST",
    "KIND_TOPK",
    "KIND_VECTOR",
    "TDIGEST_COMPRESSION_MAX",
    "TOPK_DEPTH_MAX",
    "TOPK_K_MAX",
    "TOPK_LIST_BASE",
    "TOPK_POSITION_SLOTS",
    "bloom",
    "cms",
    "counter",
    "cuckoo",
    "error_from_bits",
    "error_to_bits",
    "expect_schema",
    "hll",
    "maxreg",
    "tdigest",
    "topk",
    "vector",
]

KIND_HLL: Final = "hll"
KIND_BLOOM: Final = "bloom"
KIND_CMS: Final = "cms"
KIND_COUNTER: Final = "counter"
KIND_MAXREG: Final = "maxreg"
KIND_TDIGEST: Final = "tdigest"
TDIGEST_COMPRESSION_MAX: Final = 10_000
"""The largest t-digest compression (RedisBloom has none): a slice then has 340,048 slots."""
KIND_VECTOR: Final = "vector"
KIND_CUCKOO: Final = "cuckoo"
KIND_TOPK: Final = "topk"

TOPK_LIST_BASE: Final = 1 << 31
"""A Top-K slice's list positions start here; its HeavyKeeper buckets (3 slots each) below."""
TOPK_POSITION_SLOTS: Final = 1 << 14
"""Slots of one Top-K list position: length, count, fingerprint, then the item four bytes a
slot (items of up to 65,524 bytes)."""
TOPK_K_MAX: Final = 10_000
"""The largest Top-K ``k``: a TOPK.ADD reads the writer's whole list (3 slots a position), so
``k`` bounds what one call costs (the slot space would hold 131,072 positions)."""
TOPK_DEPTH_MAX: Final = 64
"""Rows of a Top-K's HeavyKeeper at most: each item costs one bucket per row (as count-min)."""

CMS_DEPTH_MAX: Final = 64
"""Rows of a count-min sketch at most. Every CMS.INCRBY / CMS.QUERY item costs one hash and
one cell per row, so the depth is what a single item costs; 64 rows already make the
probability of a bad estimate ``2**-64`` (CMS.INITBYPROB probability ~5.4e-20). Depth 2**20
made one CMS.QUERY take 15.5 s, depth 2**32 tried to allocate 32 GiB."""

BLOOM_HASH_VERSION: Final = 1
"""xxh3-64 of the member (seed 0), double hashing ``(a + i*b) mod 2**64 mod bits``."""


# -- schema constructors ----------------------------------------------------------------------


def _positive_int(value: object, what: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise SketchParameterError(f"{what} must be an integer, got {value!r}")
    number = int(value)
    if not 1 <= number <= high:
        raise SketchParameterError(f"{what} must be in 1..{high}, got {number}")
    return number


def hll(p: int = 14) -> Schema:
    """HyperLogLog of precision ``p`` (4..18): ``2**p`` registers."""
    p = check_precision(p)
    return Schema(KIND_HLL, (p,), 1 << p).intern()


def error_to_bits(error_rate: float) -> int:
    """The IEEE-754 bit pattern of a rate in (0, 1), as a non-negative int64."""
    rate = float(error_rate)
    if not 0.0 < rate < 1.0:
        raise SketchParameterError(f"error rate must be in (0, 1), got {error_rate!r}")
    return int.from_bytes(struct.pack(">d", rate), "big")


def error_from_bits(bits: int) -> float:
    """The rate whose bit pattern :func:`error_to_bits` returned."""
    if not 0 <= bits < 1 << 63:
        raise SketchParameterError("error rate bit pattern out of range")
    rate: float = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    if not 0.0 < rate < 1.0 or math.isnan(rate):
        raise SketchParameterError(f"error rate must be in (0, 1), got {rate!r}")
    return rate


def bloom(bits: int, hashes: int, capacity: int, error_rate: float) -> Schema:
    """A fixed-size Bloom filter of ``bits`` bits and ``hashes`` hash functions.

    ``capacity`` and ``error_rate`` are what it was reserved for (BF.INFO reports them); the
    shape that must match for a union is ``(bits, hashes, hash version)``.
    """
    bits = _positive_int(bits, "Bloom filter bit count", INDEX_LIMIT)
    hashes = _positive_int(hashes, "Bloom filter hash count", 1075)
    capacity = _positive_int(capacity, "Bloom filter capacity", VALUE_MAX)
    params = (bits, hashes, capacity, error_to_bits(error_rate), BLOOM_HASH_VERSION)
    return Schema(KIND_BLOOM, params, bits).intern()


def cms(width: int, depth: int) -> Schema:
    """A count-min sketch of ``depth`` rows of ``width`` counters, one slice per origin."""
    width = _positive_int(width, "CMS width", INDEX_LIMIT)
    depth = _positive_int(depth, "CMS depth", CMS_DEPTH_MAX)
    if width * depth > INDEX_LIMIT:
        raise SketchParameterError(f"CMS width * depth must be at most 2**32, got {width * depth}")
    return Schema(KIND_CMS, (width, depth), width * depth, additive=True).intern()


def counter() -> Schema:
    """A PN counter: per origin, slot 0 holds its increments and slot 1 its decrements."""
    return Schema(KIND_COUNTER, (), 2, additive=True).intern()


def tdigest(compression: int) -> Schema:
    """A t-digest: one versioned slice per origin (layout in :mod:`hearsay.sketch.tdigest`):
    8 header slots, 4 per centroid (``6 c + 10`` of them), 2 per buffered value (``5 c``)."""
    c = _positive_int(compression, "t-digest compression", TDIGEST_COMPRESSION_MAX)
    size = 8 + 4 * (6 * c + 10) + 2 * 5 * c
    return Schema(KIND_TDIGEST, (c,), size, additive=True).intern()


def cuckoo(capacity: int, bucket_size: int, max_iterations: int, expansion: int) -> Schema:
    """A cuckoo filter: per origin, add and delete counts per ``(sub-filter, bucket,
    fingerprint)`` (layout in :mod:`hearsay.sketch.cuckoo`), sparse in a 2**32 slot space.

    Bounds are RedisBloom's: bucket size 1..255, max iterations 1..65535, expansion 0..32768,
    capacity at least ``2 * bucket_size``."""
    bucket_size = _positive_int(bucket_size, "CF bucket size", 255)
    max_iterations = _positive_int(max_iterations, "CF max iterations", 65_535)
    expansion = _positive_int(int(expansion) + 1, "CF expansion + 1", 32_769) - 1
    capacity = _positive_int(capacity, "CF capacity", VALUE_MAX)
    if capacity < 2 * bucket_size:
        raise SketchParameterError("Capacity must be at least (BucketSize * 2)")
    params = (capacity, bucket_size, max_iterations, expansion)
    return Schema(KIND_CUCKOO, params, INDEX_LIMIT, additive=True).intern()


def topk(k: int, width: int, depth: int, decay: float) -> Schema:
    """A Top-K: per origin, a HeavyKeeper of ``depth`` rows of ``width`` buckets and a list of
    ``k`` items (layout in :mod:`hearsay.sketch.topk`), sparse in a 2**32 slot space.

    ``decay`` in (0, 1] is kept as its IEEE-754 bits (little-endian, a non-negative int64)."""
    k = _positive_int(k, "Top-K k", TOPK_K_MAX)
    depth = _positive_int(depth, "Top-K depth", TOPK_DEPTH_MAX)
    width = _positive_int(width, "Top-K width", (TOPK_LIST_BASE - 8) // (3 * depth))
    rate = float(decay)
    if not 0.0 < rate <= 1.0:
        raise SketchParameterError(f"Top-K decay must be in (0, 1], got {decay!r}")
    bits = int.from_bytes(struct.pack("<d", rate), "little")
    return Schema(KIND_TOPK, (k, width, depth, bits), INDEX_LIMIT, additive=True).intern()


def maxreg() -> Schema:
    """A max register: one non-negative integer that only grows (slot 0)."""
    return Schema(KIND_MAXREG, (), 1).intern()


def vector() -> Schema:
    """A raw vignette vector: any uint32 index, any non-negative int64 value."""
    return Schema(KIND_VECTOR, (), INDEX_LIMIT).intern()


def expect_schema(schema: Schema, expected: Schema) -> None:
    """Raise SketchParameterError unless ``schema`` is exactly ``expected``."""
    if schema != expected:
        raise SketchParameterError(f"schema {schema} does not describe this sketch ({expected})")
