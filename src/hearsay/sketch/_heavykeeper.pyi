"""Types of the C extension ``_heavykeeper.c`` (a TOPK.ADD / INCRBY on the writer's own slice:
HeavyKeeper's rows and the top-k list); :mod:`hearsay.sketch.topk` documents the slots, the
tests' reference is ``tests/support/topk_reference.py``."""

from collections.abc import Callable

def add(
    read: bytes | Callable[[list[int]], list[int]],
    items: list[bytes],
    hashes: list[int],
    increments: list[int],
    k: int,
    width: int,
    depth: int,
    powers: bytes,
    decay: float,
    call_ends: list[int],
    /,
) -> tuple[tuple[list[int], list[int]], list[bytes | None]]:
    """The calls (items ``call_ends[i-1]:call_ends[i]``, each with its xxh3-64 hash and
    increment) in turn on the slice ``read`` holds (its packed sparse pairs, or ``read(slots)``:
    their values, absent 0): the pairs written, in order, and per item the item expelled from
    the list or None. ValueError for bytes that are not packed pairs."""

def rows(
    cache: dict[int, int],
    indices: list[int],
    values: list[int],
    slots: list[int],
    fp: int,
    increment: int,
    seed: int,
    decays_left: int,
    powers: bytes,
    decay: float,
    /,
) -> tuple[int, int]:
    """The rows :func:`add` runs, for one item alone: its increment through the buckets whose
    first slots are ``slots`` (every slot in ``cache``): its best count over the rows it holds
    and the decays left. Raised slots go into ``cache`` and are appended to ``indices`` /
    ``values``."""
