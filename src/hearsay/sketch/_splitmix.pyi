"""Types of the C extension ``_splitmix.c`` (a count-min item's cells from its hash, one
splitmix64 output); :mod:`hearsay.sketch.hashing` holds the Python reference
(``mix64_int_reference``)."""

def cells(h: int, width: int, depth: int, /) -> list[int]:
    """The ``depth`` cells of an item hashed ``h``: row ``r``'s is
    ``r * width + mix64_int(h, r + 1) % width``. ValueError unless ``width`` is positive and
    ``depth`` in 0..64."""

def mix(h: int, step: int, /) -> int:
    """Output ``step`` of the splitmix64 stream seeded with ``h`` (both taken modulo 2**64):
    ``hashing.mix64_int_reference`` in C."""
