"""Types of the C extension ``_bloombits.c`` (one item's reads of a Bloom filter held as a
bitset); :class:`hearsay.sketch.bloom.BloomFilter` holds the Python reference of each read."""

import numpy as np
import numpy.typing as npt

def holds(bits: npt.NDArray[np.uint8], a: int, b: int, geometry: bytes, count: int, /) -> bool:
    """Whether one of the first ``count`` sub-filters of ``geometry`` (24 bytes each: base,
    bits, hashes as little-endian uint64) has every bit of the item hashed ``a``, ``b`` set."""

def unset(
    bits: npt.NDArray[np.uint8], a: int, b: int, base: int, size: int, hashes: int, /
) -> list[int]:
    """The item's positions in one sub-filter whose bits are unset: sorted, each once."""

def ones(bits: npt.NDArray[np.uint8], start: int, limit: int, /) -> int:
    """How many bits from ``start`` on are set in a row, ``limit`` at most."""
