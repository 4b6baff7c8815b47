"""Every error hearsay raises on purpose derives from :class:`HearsayError`.

Typed errors let each interface pick its own wording (RESP error strings live with the RESP
layer), while the lower layers only say *what* went wrong.
"""


class HearsayError(Exception):
    """Base class of hearsay's own errors."""


class DecodeError(HearsayError, ValueError):
    """Bytes from a peer, a client or the disk do not decode to a valid value."""


class BoundsError(HearsayError, ValueError):
    """An index, value or size is outside what the data model allows."""


class WrongTypeError(HearsayError):
    """A write names a key that holds a different kind of value (Redis's WRONGTYPE)."""


class SketchParameterError(HearsayError, ValueError):
    """Sketch parameters (precision, error rate, capacity, width, depth...) are invalid."""


class StorageError(HearsayError):
    """The durable store cannot be opened, read or written."""


class TooLargeError(HearsayError):
    """A write would make a key larger than the node allows (``--max-key-bytes``).

    Not a :class:`BoundsError`: the command handlers turn those into their own overflow
    wordings, while this one must reach the client as itself (nothing was written).
    """
