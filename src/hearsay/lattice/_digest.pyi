"""Types of the C extension ``_digest.c``; :mod:`hearsay.lattice.digest` documents it."""

import numpy as np
import numpy.typing as npt

def xor_pairs(
    base: int, indices: npt.NDArray[np.unsignedinteger], values: npt.NDArray[np.unsignedinteger], /
) -> int:
    """XOR of each pair's hash under ``base`` (1-D unsigned arrays of one length)."""

def xor_packed(base: int, packed: bytes, /) -> int:
    """XOR of each pair's hash under ``base`` over a sparse vector's packed pairs."""

def xor_bits(base: int, bits: object, start: int, /) -> int:
    """XOR of each set bit's pair hash (value 1) under ``base``, bit ``i`` of the buffer
    numbered ``start + i``."""
