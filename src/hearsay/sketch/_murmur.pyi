"""Types of the C extension ``_murmur.c``; :mod:`hearsay.sketch.murmur` documents it."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

def hash64a(data: Buffer, seed: int, /) -> int:
    """MurmurHash64A of ``data`` (Redis's endian-neutral variant) as a uint64."""

def index_rank(
    members: Sequence[Buffer],
    p: int,
    seed: int,
    indices: npt.NDArray[np.uint32],
    ranks: npt.NDArray[np.uint8],
    /,
) -> None:
    """Write each member's register index and rank into ``indices`` and ``ranks``.

    At run time any writable contiguous buffer of ``len(members)`` items of format ``"I"``
    and ``"B"`` will do.
    """
