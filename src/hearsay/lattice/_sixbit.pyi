"""Types of the C extension ``_sixbit.c`` (six-bit slots); :mod:`hearsay.lattice.vector`
documents the form. At run time any contiguous buffer of bytes will do."""

from typing import Any

import numpy as np
import numpy.typing as npt

_Bytes = npt.NDArray[np.unsignedinteger]

def pack(values: _Bytes, packed: _Bytes, /) -> bool:
    """Pack one-byte slots (a multiple of 4) into ``packed``; False if a value is above 63."""

def unpack(packed: _Bytes, values: _Bytes, /) -> None:
    """Each slot of ``packed`` into one byte of ``values``."""

def get(packed: _Bytes, index: int, /) -> int:
    """The value of slot ``index``."""

def get_many(packed: _Bytes, indices: npt.NDArray[Any], out: npt.NDArray[np.uint64], /) -> None:
    """The values of the slots at ``indices`` into ``out`` (0 for an index outside them)."""

def raise_to(packed: _Bytes, index: int, value: int, /) -> int:
    """Slot ``index`` becomes max(its value, ``value``); returns its previous value."""

def histogram(packed: _Bytes, /) -> list[int]:
    """How many slots hold each value 0..63."""

def rises(packed: _Bytes, incoming: _Bytes, /) -> int:
    """How many slots of ``incoming`` are above the same slots of ``packed`` (past its end:
    the non-zero ones)."""
