"""Types of the C extension ``_bloombits.c`` (reads and adds of a Bloom filter held as a
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

def holds_many(
    bits: npt.NDArray[np.uint8] | bytes,
    sparse: bool,
    hashes: npt.NDArray[np.uint64],
    geometry: bytes,
    count: int,
    /,
) -> bytes:
    """:func:`holds` of every item hashed ``hashes`` (each item's ``a``; ``b`` is its
    splitmix64 finalisation, forced odd): one byte an item, 1 when held. ``sparse``: ``bits``
    are a sparse vector's packed pairs, else a bitset."""

def add_pass(
    bits: npt.NDArray[np.uint8] | bytes,
    sparse: bool,
    hashes: npt.NDArray[np.uint64],
    geometry: bytes,
    subs: int,
    reach: int,
    full: bool,
    check_period: int,
    fill_bound: float,
    nonscaling: bool,
    /,
) -> tuple[bytes, list[bool | None]]:
    """``BloomFilter._chain_add_few`` over a chain's bits (a bitset, or packed pairs when
    ``sparse``): the positions to set
    (sorted little-endian uint32) and, per item answered, whether it was new (None: refused)."""
