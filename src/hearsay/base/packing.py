"""msgpack packing without msgpack.packb's fixed cost.

Why: ``msgpack.packb`` builds a Packer per call and a Packer allocates its buffer, 256 KiB by
default, up front: a gossip item or a stored entry of a few dozen bytes paid for that
allocation every time (profiled: 13-17% of a cluster node's time under writes to many keys;
1.1 us against 0.57 us a call in isolation, more on a busy heap). A Packer made with a small
buffer grows it as needed, so large entries pack as before, and none is kept between calls (a
shared one would keep its largest buffer, and is not thread-safe).
"""

from __future__ import annotations

from typing import Final

import msgpack

__all__ = ["packb"]

_FIRST_BUFFER_BYTES: Final = 512
"""A Packer's first buffer: most messages and entries fit; bigger ones grow it."""


def packb(obj: object) -> bytes:
    """``msgpack.packb(obj, use_bin_type=True)``, the same bytes."""
    # (the stubs miss buf_size; the C Packer takes it and the pure-Python one accepts it)
    packer = msgpack.Packer(use_bin_type=True, buf_size=_FIRST_BUFFER_BYTES)  # type: ignore[call-arg]
    packed: bytes = packer.pack(obj)
    return packed
