"""Redis's HyperLogLog arithmetic written the way Redis's C loops it: the tests' reference."""

from __future__ import annotations


def redis_pat_len(h: int, p: int) -> tuple[int, int]:
    """hllPatLen bit by bit: (register index, rank) of the 64-bit hash ``h`` at precision ``p``."""
    index = h & ((1 << p) - 1)
    h >>= p
    h |= 1 << (64 - p)
    bit = 1
    count = 1
    while (h & bit) == 0:
        count += 1
        bit <<= 1
    return index, count
