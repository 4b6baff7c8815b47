"""Whole RESP requests read in C (see ``_reqparse.c``); the Python reference is
:class:`hearsay.resp.parser.RequestParser`'s own loop."""

def commands(data: object, count_max: int, bulk_max: int, /) -> tuple[list[list[bytes]], int, bool]:
    """The whole canonical multibulk commands ``data`` starts with (each count at most
    ``count_max``, each length at most ``bulk_max``; an empty array is no command), the bytes
    they take, and whether the rest is a canonical command the bytes end inside; the Python
    parser reads the rest (all of it when ``data`` is not ``bytes``)."""

def arguments(data: bytes, pos: int, count: int, bulk_max: int, /) -> tuple[list[bytes], int]:
    """The whole canonical arguments (``$<len>\\r\\n<payload>\\r\\n``) at ``data[pos:]``,
    ``count`` at most, and where they end: up to the first one cut short or not canonical."""
