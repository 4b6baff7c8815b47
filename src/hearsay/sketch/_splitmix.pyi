"""Types of the C extension ``_splitmix.c`` (a count-min item's cells from its hash);
:mod:`hearsay.sketch.hashing` holds the Python reference (``mix64_int``)."""

def cells(h: int, width: int, depth: int, /) -> list[int]:
    """The ``depth`` cells of an item hashed ``h``: row ``r``'s is
    ``r * width + mix64_int(h, r + 1) % width``. ValueError unless ``width`` is positive and
    ``depth`` in 0..64."""
