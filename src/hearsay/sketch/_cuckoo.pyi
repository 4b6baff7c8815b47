"""Types of the C extension ``_cuckoo.c`` (a cuckoo filter's bucket reads over packed sparse
slices); :mod:`hearsay.sketch.cuckoo` documents the layout and holds the Python reference."""

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

def window(packed: bytes, low: int, high: int, /) -> list[tuple[int, int]]:
    """The ``(index, value)`` pairs of packed sparse pairs with ``low <= index < high``."""
