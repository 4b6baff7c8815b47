"""An independent Bloom filter reference for the BF.* tests, written from the documents, not
from hearsay's code: RedisBloom's sizing (its docs and ``bloom_init``) and the double hashing
docs/commands.md and hearsay.sketch.bloom's docstring describe (xxh3-64 of the item as ``a``,
splitmix64's first output for ``a``, forced odd, as ``b``, positions ``(a + i*b) mod 2**64 mod
bits``). Plain Python integers and a set of bits: slow, obvious, and sharing no code with the
numpy implementation it checks.
"""

from __future__ import annotations

import math

import xxhash

MASK64 = (1 << 64) - 1
LN2 = 0.693147180559945  # RedisBloom's constants (bloom.c)
LN2_SQUARED = 0.480453013918201
SBCHAIN_BYTES = 32  # sizeof(SBChain) on 64-bit, counted once by RedisBloom's BF.INFO Size
SBLINK_BYTES = 64  # sizeof(SBLink), counted per sub-filter


def redisbloom_bits_and_hashes(error_rate: float, capacity: int) -> tuple[int, int]:
    """bits = trunc(capacity * bpe) rounded up to 64-bit words; k = ceil(ln2 * bpe)."""
    bpe = -math.log(error_rate) / LN2_SQUARED
    bits = max(1, int(capacity * bpe))
    bits = -(-bits // 64) * 64
    return bits, math.ceil(LN2 * bpe)


def redisbloom_info_size(error_rate: float, capacity: int) -> int:
    """BF.INFO's Size of a one-filter chain: the structs plus the bit array in bytes."""
    bits, _ = redisbloom_bits_and_hashes(error_rate, capacity)
    return SBCHAIN_BYTES + SBLINK_BYTES + bits // 8


def splitmix64_first(seed: int) -> int:
    z = (seed + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class ReferenceBloom:
    def __init__(self, error_rate: float, capacity: int) -> None:
        self.bits, self.hashes = redisbloom_bits_and_hashes(error_rate, capacity)
        self.set: set[int] = set()

    def positions(self, item: bytes) -> list[int]:
        a = xxhash.xxh3_64_intdigest(item)
        b = splitmix64_first(a) | 1
        return [((a + i * b) & MASK64) % self.bits for i in range(self.hashes)]

    def add(self, item: bytes) -> int:
        """RedisBloom's BF.ADD answer: 1 if a bit was unset (the item is new)."""
        new = [p for p in self.positions(item) if p not in self.set]
        self.set.update(new)
        return int(bool(new))

    def exists(self, item: bytes) -> int:
        return int(all(p in self.set for p in self.positions(item)))
