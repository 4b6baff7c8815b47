"""The C allocator's settings for a long-running node (glibc only; elsewhere nothing).

Why: glibc's ``malloc`` serves a request of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at
first) with its own ``mmap``, returned to the system when freed; but each such free raises the
threshold to the freed size (up to 32 MiB), so from then on the big buffers a node makes and
drops all the time (an entry encoded for the disk or the wire, a Bloom filter's packed pairs
folded, a batch's arrays) come from the heap, whose freed holes stay resident. Filling one
1M-capacity Bloom filter (1.2 MB of bits) grew a node's anonymous memory by 20 MB, 11 of them
such holes. A fixed threshold keeps every buffer of 128 KiB or more in its own mapping, given
back on free, at the cost of an ``mmap``/``munmap`` pair per big buffer (a few per flush).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
from typing import Final

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD: Final = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES: Final = 128 * 1024


def _libc() -> ctypes.CDLL | None:
    """glibc, or None on another C library or when it cannot be loaded."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_free_memory() -> bool:
    """glibc's ``malloc_trim(0)``: give the free pages of every heap back to the system
    (MEMORY PURGE, as Redis asks jemalloc to purge); whether any was given back. It holds
    each arena's lock while it walks it (measured: 3-8 ms with ~100 MB resident, ~20 ms on a
    fragmented 2 GB heap). False, and nothing done, on another C library."""
    libc = _libc()
    trim = None if libc is None else getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` (which also stops its dynamic adjustment); whether it
    was set. False, and nothing changed, on another C library or when the call fails."""
    libc = _libc()
    mallopt = None if libc is None else getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, threshold_bytes) != 1:
        log.warning("could not set malloc's mmap threshold; big buffers may stay resident")
        return False
    return True
