"""How large one key may grow: the per-key byte cap, enforced on every way into the keyspace.

A key is only ever merged into, so without a cap one client (or one peer) could grow a single
key until the node runs out of memory, and every later read, flush and anti-entropy round of
that key would pay for it. :class:`KeyLimits` is checked by
:class:`~hearsay.lattice.keyspace.Keyspace` on local writes, replicated deltas and loading
alike, *before* anything changes: a write that would pass the cap is refused whole.

A key's size is the payload of its vectors (:meth:`~hearsay.lattice.entry.Entry.payload_bytes`:
packed pairs, or the dense array), which is within a few dozen bytes per slice of its encoded
size on disk and on the wire. The default and the highest allowed cap is half of
:data:`~hearsay.lattice.codec.ENTRY_BYTES_MAX` (the largest encoded entry a node decodes from
disk or from a peer): a key the node accepted must always be loadable after a restart and
replicable to its peers, with room to spare for the framing of up to 4,096 slices.

``admit_schema`` lets the sketch layer (which the lattice must not import) refuse schemas
whose dimensions are out of bounds, e.g. a count-min sketch of 65536 x 65536 cells; it is
called once when a key is created or changes schema, not on every write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hearsay.base.errors import BoundsError
from hearsay.lattice.codec import ENTRY_BYTES_MAX
from hearsay.lattice.entry import Schema

KEY_BYTES_MAX_LIMIT: Final = ENTRY_BYTES_MAX // 2
"""32 MiB: the largest ``--max-key-bytes`` (and its default)."""
KEY_BYTES_MAX_FLOOR: Final = 1024
"""The smallest ``--max-key-bytes`` (a dense HLL of precision 10 is 1 KiB)."""

SchemaCheck = Callable[[Schema, int], None]
"""``check(schema, key_bytes_max)``: raise (SketchParameterError, TooLargeError) to refuse."""


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """The caps a keyspace enforces; ``admit_schema`` may be None (no sketch checks)."""

    key_bytes_max: int = KEY_BYTES_MAX_LIMIT
    admit_schema: SchemaCheck | None = None

    def __post_init__(self) -> None:
        if not KEY_BYTES_MAX_FLOOR <= self.key_bytes_max <= KEY_BYTES_MAX_LIMIT:
            raise BoundsError(
                f"max-key-bytes must be in {KEY_BYTES_MAX_FLOOR}..{KEY_BYTES_MAX_LIMIT}, "
                f"got {self.key_bytes_max}"
            )
