"""Types of the C extension ``_packed.c`` (reads over a sketch's packed sparse slices);
:mod:`hearsay.lattice.vector` documents the packed form, :mod:`hearsay.sketch.cuckoo` and
:mod:`hearsay.sketch.topk` hold the Python reference of each read."""

def first_room(
    sources: list[bytes],
    occupied: dict[int, int] | None,
    h: int,
    alt: int,
    geometry: bytes,
    readable: int,
    subs: int,
    size: int,
    /,
) -> tuple[int, int, int] | None:
    """The first of an item's places, as ``_Batch.add`` walks them, whose bucket holds fewer
    than ``size`` live copies: ``(sub-filter, global bucket, live copies)``; None when none
    has room. Buckets read from ``sources`` are remembered in ``occupied`` (None: a batch of one
    item, which has nothing to remember)."""
