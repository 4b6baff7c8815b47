"""Types of the C extension ``_heavykeeper.c`` (HeavyKeeper's rows for one item of a
TOPK.ADD / INCRBY); :mod:`hearsay.sketch.topk` documents the slots, the tests' reference is
``tests/support/topk_reference.py``."""

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
    """The item's increment through the buckets whose first slots are ``slots`` (every slot
    in ``cache``): its best count over the rows it holds and the decays left. Raised slots
    go into ``cache`` and are appended to ``indices`` / ``values``."""
