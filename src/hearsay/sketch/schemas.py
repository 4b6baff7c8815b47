"""The sketch kinds, their lattice :class:`Schema`, and the shared vocabulary of every view.

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
cms       ``(width, depth)``                                  ``w * d``   yes       CMSk-TYPE
counter   ``()``                                              2           yes       string
maxreg    ``()``                                              1           no        maxreg
vector    ``()``                                              ``2**32``   no        vector
========  ==================================================  ==========  ========  =========

``error_bits`` is the IEEE-754 bit pattern of the Bloom filter's error rate (a positive double
below 1, so it fits a non-negative int64 exactly); ``hash_v`` names the hashing scheme so that
filters hashed differently are never merged by accident.

It also holds the helpers every view shares: :data:`Pairs`, :data:`Slices`,
:func:`values_at` (read many slots of a vector without densifying it) and :func:`summed_at`
(the per-slot sum over the origin slices of an additive sketch).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import xxhash

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import INDEX_LIMIT, VALUE_MAX, MaxVector
from hearsay.sketch.hll_math import check_precision

__all__ = [
    "BLOOM_HASH_VERSION",
    "CMS_DEPTH_MAX",
    "KIND_BLOOM",
    "KIND_CMS",
    "KIND_COUNTER",
    "KIND_HLL",
    "KIND_MAXREG",
    "KIND_VECTOR",
    "Pairs",
    "Slices",
    "bloom",
    "cms",
    "counter",
    "error_from_bits",
    "error_to_bits",
    "expect_schema",
    "hll",
    "maxreg",
    "member_hashes",
    "merge_slices",
    "mix64",
    "summed_at",
    "values_at",
    "vector",
]

KIND_HLL: Final = "hll"
KIND_BLOOM: Final = "bloom"
KIND_CMS: Final = "cms"
KIND_COUNTER: Final = "counter"
KIND_MAXREG: Final = "maxreg"
KIND_VECTOR: Final = "vector"

CMS_DEPTH_MAX: Final = 64
"""Rows of a count-min sketch at most. Every CMS.INCRBY / CMS.QUERY item costs one hash and
one cell per row, so the depth is what a single item costs; 64 rows already make the
probability of a bad estimate ``2**-64`` (CMS.INITBYPROB probability ~5.4e-20). Depth 2**20
made one CMS.QUERY take 15.5 s, depth 2**32 tried to allocate 32 GiB."""

BLOOM_HASH_VERSION: Final = 1
"""xxh3-64 of the member (seed 0), double hashing ``(a + i*b) mod 2**64 mod bits``."""

Pairs = tuple[npt.NDArray[np.uint32], npt.NDArray[np.unsignedinteger]]
"""A delta: sorted or unsorted ``(indices, values)``; duplicates are reduced by max on merge."""
Slices = Mapping[str, MaxVector]
"""An additive entry's vectors by origin (``dict(entry.slices())``)."""

_SMALL_LOOKUP: Final = 64
"""Below this many slots, reading them one by one beats any array set-up."""


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


# -- reading many slots -----------------------------------------------------------------------


def values_at(vec: MaxVector, indices: npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
    """The values at ``indices`` (any shape, absent = 0), without densifying a sparse vector."""
    idx = np.asarray(indices)
    if idx.size <= _SMALL_LOOKUP:
        flat = idx.reshape(-1)
        out = np.fromiter((vec.get(int(i)) for i in flat.tolist()), np.uint64, flat.size)
        return out.reshape(idx.shape)
    return vec.values_at(idx)


def summed_at(slices: Slices, indices: npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
    """Per slot, the sum over every origin's slice, saturating at ``2**64 - 1``.

    Honest writers keep every sum within int64 (the additive sketches check their totals
    before writing); saturation only keeps a misbehaving peer's values from wrapping around.
    """
    idx = np.asarray(indices)
    total = np.zeros(idx.shape, dtype=np.uint64)
    for _, vec in sorted(slices.items()):
        part = values_at(vec, idx)
        with np.errstate(over="ignore"):
            grown = total + part
        wrapped = grown < total
        if wrapped.any():
            grown[wrapped] = np.iinfo(np.uint64).max
        total = grown
    return total


# -- hashing shared by Bloom and count-min ------------------------------------------------------

_SPLITMIX_GAMMA: Final = np.uint64(0x9E3779B97F4A7C15)
_SPLITMIX_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_SPLITMIX_M2: Final = np.uint64(0x94D049BB133111EB)


def member_hashes(members: Sequence[bytes]) -> npt.NDArray[np.uint64]:
    """xxh3-64 (seed 0) of every member, in one pass over the batch."""
    if not members:
        return np.zeros(0, dtype=np.uint64)
    digests = b"".join(map(xxhash.xxh3_64_digest, members))
    # xxhash's digest is the hash's canonical big-endian form.
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def mix64(h: npt.NDArray[np.uint64], step: int = 1) -> npt.NDArray[np.uint64]:
    """Output ``step`` (1, 2, ...) of the splitmix64 stream seeded with each ``h``.

    Gives well-mixed words that look independent of ``h`` and of each other: the second hash
    of Bloom's double hashing, one hash per count-min row.
    """
    with np.errstate(over="ignore"):
        z = h + _SPLITMIX_GAMMA * np.uint64(step)
        z = (z ^ (z >> np.uint64(30))) * _SPLITMIX_M1
        z = (z ^ (z >> np.uint64(27))) * _SPLITMIX_M2
        mixed: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
        return mixed


# -- additive entries -------------------------------------------------------------------------


def merge_slices(target: dict[str, MaxVector], source: Slices) -> dict[str, MaxVector]:
    """The lattice merge of an additive sketch: per origin, element-wise max; returns the delta."""
    delta: dict[str, MaxVector] = {}
    for origin, vec in sorted(source.items()):
        mine = target.get(origin)
        if mine is None:
            mine = target[origin] = MaxVector()
        grew = mine.merge(vec)
        if not grew.is_empty():
            delta[origin] = grew
    return delta
