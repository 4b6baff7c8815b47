"""The member hashes Bloom filters and count-min sketches share: xxh3-64 and splitmix64.

Why a module: both families hash a batch of members once and derive further hashes from it;
keeping that in one place keeps their hashing (and so the ``hash_v`` of a Bloom schema) one
definition. HyperLogLog hashes as Redis does instead (:mod:`hearsay.sketch.murmur`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import xxhash

from hearsay.sketch import _splitmix

__all__ = ["member_hash", "member_hashes", "mix64", "mix64_int", "mix64_int_reference"]

_SPLITMIX_GAMMA: Final = np.uint64(0x9E3779B97F4A7C15)
_SPLITMIX_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_SPLITMIX_M2: Final = np.uint64(0x94D049BB133111EB)
_MASK64: Final = (1 << 64) - 1


def member_hashes(members: Sequence[bytes]) -> npt.NDArray[np.uint64]:
    """xxh3-64 (seed 0) of every member, in one pass over the batch."""
    if not members:
        return np.zeros(0, dtype=np.uint64)
    digests = b"".join(map(xxhash.xxh3_64_digest, members))
    # xxhash's digest is the hash's canonical big-endian form.
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def member_hash(member: bytes) -> int:
    """xxh3-64 (seed 0) of one member as a Python int: :func:`member_hashes` of one."""
    return xxhash.xxh3_64_intdigest(member)


def mix64_int(h: int, step: int = 1) -> int:
    """:func:`mix64` of one hash as a Python int (a single member's few words cost less than
    the arrays would), in C: :func:`mix64_int_reference` in Python ints cost ~0.4 us a call,
    once or twice in every BF.ADD and CF.ADD."""
    return _splitmix.mix(h, step)


def mix64_int_reference(h: int, step: int = 1) -> int:
    """:func:`mix64_int` in plain Python ints: the definition the C is held to (a Bloom
    filter's positions and a cuckoo filter's buckets must not move between versions)."""
    z = (h + 0x9E3779B97F4A7C15 * step) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mix64(
    h: npt.NDArray[np.uint64], step: int | npt.NDArray[np.uint64] = 1
) -> npt.NDArray[np.uint64]:
    """Output ``step`` (1, 2, ...; an array broadcasts against ``h``) of the splitmix64
    stream seeded with each ``h``.

    Gives well-mixed words that look independent of ``h`` and of each other: the second hash
    of Bloom's double hashing, one hash per count-min row.
    """
    with np.errstate(over="ignore"):
        z = h + _SPLITMIX_GAMMA * np.asarray(step, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * _SPLITMIX_M1
        z = (z ^ (z >> np.uint64(27))) * _SPLITMIX_M2
        mixed: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
        return mixed
