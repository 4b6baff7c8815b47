"""MurmurHash64A exactly as Redis's HyperLogLog uses it, scalar and vectorised.

Redis hashes every PFADD member with MurmurHash2's 64-bit variant (``MurmurHash64A``), made
endian-neutral (8-byte blocks are read little-endian) and seeded with ``0xadc83b19``. Matching
Redis's PFCOUNT bit for bit starts with matching this hash, and no PyPI package provides it
(``mmh3`` is MurmurHash3, a different function), so it lives here.

Two implementations that must agree bit for bit:

- :func:`murmurhash64a` is the plain reference, in Python integers, one member at a time.
- :func:`murmurhash64a_batch` is the speed path: all members are concatenated into one buffer
  and the chaining ``h = (h ^ k) * m``, inherently serial per member, runs as one vectorised
  step per block position across all members. Members of one length (typical of ids and
  keys) read their blocks and tails as strided views of the buffer. Members of mixed but
  similar lengths read a grid of words (block ``j`` of every member, mixed, masked or zero,
  with a per-cell multiplier so that no step needs a mask). Lengths far apart (a few huge
  members among small ones) take rounds over the members still having blocks, sorted by
  length, and the few longest ones finish in a scalar loop rather than one numpy round per
  block.

numpy's uint64 arithmetic wraps modulo 2**64, which is exactly the C semantics needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["REDIS_HLL_SEED", "murmurhash64a", "murmurhash64a_batch"]

REDIS_HLL_SEED = 0xADC83B19
"""The seed Redis's ``hllPatLen`` passes to MurmurHash64A."""

_M = 0xC6A4A7935BD1E995
_R = 47
_MASK64 = (1 << 64) - 1

# 0-d arrays rather than numpy scalars: a ufunc takes them with less per-call overhead.
_M_U64 = np.array(_M, dtype=np.uint64)
_R_U64 = np.array(_R, dtype=np.uint64)
_WORD_MASKS = np.array([(1 << (8 * b)) - 1 for b in range(9)], dtype=np.uint64)
"""Per byte count 0..8: the mask keeping that many low bytes of a little-endian word."""
_WORD_MULTIPLIERS = np.array([1] + [_M] * 8, dtype=np.uint64)
"""Per byte count: the chaining step's multiplier (no bytes leave the state alone)."""
_PADDING = bytes(8)

# When at most this many members still have blocks left and more than _SCALAR_MIN_ROUNDS
# block positions remain, the remaining chaining is finished in plain Python: cheaper than
# one numpy round (a few microseconds of overhead) per block of a few very long members.
_SCALAR_MAX_MEMBERS = 4
_SCALAR_MIN_ROUNDS = 32


def _check_seed(seed: int) -> int:
    if not 0 <= seed <= 0xFFFFFFFF:
        # Redis passes the seed as a C `unsigned int`.
        raise ValueError(f"seed must fit in 32 bits, got {seed}")
    return seed


def murmurhash64a(data: bytes, seed: int = REDIS_HLL_SEED) -> int:
    """Hash ``data`` with MurmurHash64A (Redis's endian-neutral variant); returns a uint64."""
    _check_seed(seed)
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


def _unaligned_words(buffer: bytes) -> npt.NDArray[np.uint64]:
    """A view whose element ``i`` is the little-endian uint64 at byte offset ``i``.

    ``buffer`` must carry at least 7 padding bytes at its end so that every offset of
    interest can be read as a whole word.
    """
    count = len(buffer) - 7
    return np.ndarray(shape=(count,), dtype="<u8", buffer=buffer, offset=0, strides=(1,))


def murmurhash64a_batch(
    members: Sequence[bytes], seed: int = REDIS_HLL_SEED
) -> npt.NDArray[np.uint64]:
    """Hash every member; element ``i`` equals ``murmurhash64a(members[i], seed)``."""
    _check_seed(seed)
    n = len(members)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    lengths = list(map(len, members))
    joined = b"".join(members)
    length = lengths[0]
    # Every buffer gets zero padding after the data so that every word read below starts
    # inside the buffer and ends before its end.
    if length >> 3 <= _SCALAR_MIN_ROUNDS and lengths.count(length) == n:
        h = _hash_equal_lengths(joined + _PADDING, n, length, seed)
    else:
        try:
            # Members shorter than 256 bytes (the usual case): bytes() is the quickest way
            # from a list of small ints to an array.
            sizes = np.frombuffer(bytes(lengths), dtype=np.uint8).astype(np.int64)
        except ValueError:
            sizes = np.fromiter(lengths, dtype=np.int64, count=n)
        columns = (int(sizes.max()) + 7) >> 3
        if columns <= _SCALAR_MIN_ROUNDS and columns * n <= 2 * (len(joined) // 8 + n):
            h = _hash_grid(joined + bytes(8 * columns), sizes, columns, seed)
        else:
            h = _hash_any_lengths(joined + _PADDING, sizes, seed)
    h ^= h >> _R_U64
    h *= _M_U64
    h ^= h >> _R_U64
    return h


def _hash_equal_lengths(buffer: bytes, n: int, length: int, seed: int) -> npt.NDArray[np.uint64]:
    """The chained state (before the final mix) of ``n`` members of ``length`` bytes each.

    Member ``i`` starts at byte ``i * length``, so its blocks and its tail are strided views of
    the buffer: no offsets to compute, no gathers, and no member ever needs masking.
    """
    nblocks = length >> 3
    tail = length & 7
    h0 = np.uint64(seed ^ ((length * _M) & _MASK64))
    h: npt.NDArray[np.uint64] | None = None
    if nblocks:
        blocks = np.ndarray((n, nblocks), dtype="<u8", buffer=buffer, strides=(length, 8))
        k = blocks * _M_U64
        k ^= k >> _R_U64
        k *= _M_U64
        h = k[:, 0] ^ h0
        h *= _M_U64
        for j in range(1, nblocks):
            h ^= k[:, j]
            h *= _M_U64
    if tail:
        tails = np.ndarray((n,), dtype="<u8", buffer=buffer, offset=8 * nblocks, strides=(length,))
        tail_words = tails & _WORD_MASKS[tail]
        if h is None:
            tail_words ^= h0
            h = tail_words
        else:
            h ^= tail_words
        h *= _M_U64
    if h is None:  # every member is empty
        h = np.full(n, h0, dtype=np.uint64)
    return h


def _hash_grid(
    buffer: bytes, lengths: npt.NDArray[np.int64], columns: int, seed: int
) -> npt.NDArray[np.uint64]:
    """The chained state (before the final mix) of members of at most ``8 * columns`` bytes.

    Word ``j`` of member ``i`` (the 8 bytes at ``start[i] + 8 * j``) goes in cell ``(j, i)``
    of a grid: mixed if it is a whole block, masked to its bytes if it is the tail, zero past
    the member's end. Each cell also gets its multiplier (1 past the end), so one unmasked
    step per column, ``h = (h ^ cell) * multiplier``, chains every member at once.
    """
    n = lengths.size
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    column_bytes = np.arange(0, 8 * columns, 8, dtype=np.int64)[:, np.newaxis]
    remaining = lengths - column_bytes
    np.minimum(remaining, 8, out=remaining)  # (two ufuncs cost less than np.clip's wrapper)
    np.maximum(remaining, 0, out=remaining)
    cells = _unaligned_words(buffer).take(starts + column_bytes)
    cells &= _WORD_MASKS.take(remaining)
    mixed = cells * _M_U64
    mixed ^= mixed >> _R_U64
    mixed *= _M_U64
    np.copyto(cells, mixed, where=remaining == 8)
    multipliers = _WORD_MULTIPLIERS.take(remaining)

    h = lengths.astype(np.uint64)
    h *= _M_U64
    h ^= np.uint64(seed)
    for j in range(columns):
        h ^= cells[j]
        h *= multipliers[j]
    return h


def _hash_any_lengths(
    buffer: bytes, lengths: npt.NDArray[np.int64], seed: int
) -> npt.NDArray[np.uint64]:
    """The chained state (before the final mix) of members of the given lengths."""
    n = lengths.size
    words = _unaligned_words(buffer)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    nblocks = lengths >> 3
    tail_lengths = lengths & 7

    h = lengths.astype(np.uint64)
    h *= _M_U64
    h ^= np.uint64(seed)

    max_blocks = int(nblocks.max())
    if max_blocks:
        # Mix every 8-byte block of every member in one pass. Block b of member i starts
        # at byte starts[i] + 8 * b; blocks are laid out member after member.
        total_blocks = int(nblocks.sum())
        first_block = np.zeros(n, dtype=np.int64)
        np.cumsum(nblocks[:-1], out=first_block[1:])
        offsets = np.repeat(starts - 8 * first_block, nblocks)
        offsets += np.arange(0, 8 * total_blocks, 8, dtype=np.int64)
        k = words.take(offsets)
        k *= _M_U64
        k ^= k >> _R_U64
        k *= _M_U64
        h = _chain_blocks(h, k, nblocks, first_block, max_blocks)

    # Tails: the XOR of data[i] << 8*i over the tail is the little-endian value of the tail
    # bytes, i.e. the padded word at the tail's offset masked to its length. An empty tail
    # masks to 0 and multiplies by 1: h is unchanged, as in the scalar code.
    starts += 8 * nblocks
    tail_words = words.take(starts)
    tail_words &= _WORD_MASKS[tail_lengths]
    h ^= tail_words
    h *= _WORD_MULTIPLIERS[tail_lengths]
    return h


def _chain_blocks(
    h: npt.NDArray[np.uint64],
    k: npt.NDArray[np.uint64],
    nblocks: npt.NDArray[np.int64],
    first_block: npt.NDArray[np.int64],
    max_blocks: int,
) -> npt.NDArray[np.uint64]:
    """Apply ``h = (h ^ k_j) * m`` for every block ``j`` of every member, in block order."""
    # Members in decreasing block count, so at round j the members still chaining are a
    # prefix.
    order = np.argsort(-nblocks, kind="stable")
    sorted_blocks = nblocks[order]
    sorted_first = first_block[order]
    hs = h[order]
    # active[j] = number of members with more than j blocks.
    active_counts = np.searchsorted(-sorted_blocks, -np.arange(max_blocks), side="left")
    j = 0
    while j < max_blocks:
        active = int(active_counts[j])
        if active <= _SCALAR_MAX_MEMBERS and max_blocks - j > _SCALAR_MIN_ROUNDS:
            break
        hs[:active] = (hs[:active] ^ k[sorted_first[:active] + j]) * _M_U64
        j += 1
    if j < max_blocks:
        # A few much longer members remain: finish their chains in Python integers.
        for i in range(int(active_counts[j])):
            value = int(hs[i])
            first = int(sorted_first[i])
            for kv in k[first + j : first + int(sorted_blocks[i])].tolist():
                value = ((value ^ kv) * _M) & _MASK64
            hs[i] = value
    out = np.empty_like(h)
    out[order] = hs
    return out
