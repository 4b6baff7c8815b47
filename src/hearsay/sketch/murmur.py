"""MurmurHash64A exactly as Redis's HyperLogLog uses it: a C extension and its reference.

Redis hashes every PFADD member with MurmurHash2's 64-bit variant (``MurmurHash64A``), made
endian-neutral (8-byte blocks are read little-endian) and seeded with ``0xadc83b19``. Matching
Redis's PFCOUNT bit for bit starts with matching this hash, and no maintained package provides
it (``mmh3`` is MurmurHash3, a different function), so it lives here, twice:

- :func:`murmurhash64a` is the plain reference, in Python integers, one member at a time. It is
  what the tests hold the C code to; nothing on a hot path calls it.
- :func:`hash64a` and :func:`index_rank` are the C extension (``_murmur.c``): one member's
  hash, and a batch's Redis ``hllPatLen`` (register index and rank) written into numpy arrays
  the caller allocates. A numpy-vectorised hash used to be the batch path, but its fixed cost
  of a few ufunc calls per batch (tens of microseconds) dominated the batches of a few members
  that pipelined PFADDs make; the C loop costs well under a microsecond per short member.
"""

from __future__ import annotations

from hearsay.sketch._murmur import hash64a, index_rank

__all__ = ["REDIS_HLL_SEED", "hash64a", "index_rank", "murmurhash64a"]

REDIS_HLL_SEED = 0xADC83B19
"""The seed Redis's ``hllPatLen`` passes to MurmurHash64A."""

_M = 0xC6A4A7935BD1E995
_R = 47
_MASK64 = (1 << 64) - 1


def murmurhash64a(data: bytes, seed: int = REDIS_HLL_SEED) -> int:
    """Hash ``data`` with MurmurHash64A (Redis's endian-neutral variant); returns a uint64."""
    if not 0 <= seed <= 0xFFFFFFFF:
        # Redis passes the seed as a C `unsigned int`.
        raise ValueError(f"seed must fit in 32 bits, got {seed}")
    length = len(data)
    h = (seed ^ ((length * _M) & _MASK64)) & _MASK64
    nblocks = length >> 3
    for i in range(nblocks):
        k = int.from_bytes(data[8 * i : 8 * i + 8], "little")
        k = (k * _M) & _MASK64
        k ^= k >> _R
        k = (k * _M) & _MASK64
        h ^= k
        h = (h * _M) & _MASK64
    tail = data[8 * nblocks :]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK64
    h ^= h >> _R
    h = (h * _M) & _MASK64
    h ^= h >> _R
    return h
