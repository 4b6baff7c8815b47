"""Types of the C extension ``_sparse.c`` (a few pairs merged into packed sparse pairs);
:mod:`hearsay.lattice.vector` documents the packed form and holds the Python reference."""

from typing import Any

def merge_few(
    packed: bytes, indices: list[int], values: list[int], /
) -> tuple[bytes | None, bytes | None, bytes | None] | None:
    """``(packed after, delta, previous)`` of merging the pairs by element-wise max, each as
    packed pairs (None: nothing rose / no previous value); None for input it leaves to the
    general path (more than 64 pairs, not exact ints, out of range, unequal lengths)."""

def values(packed: bytes, indices: list[int], /) -> list[int]:
    """The value at each of ``indices`` (absent: 0) in packed sparse pairs."""

def merge_few_dense(
    dense: object, form: int, indices: list[int], values: list[int], /
) -> tuple[bytes | None, bytes | None] | None:
    """A few pairs merged in place into a dense vector's writable buffer by element-wise max:
    ``(delta, previous)`` as packed pairs (None: none rose / no previous value); None for input
    it leaves to the general path (more than 64 pairs, not exact ints, an index beyond the
    array, a value too wide for it). ``form``: 0 bits, 6 six-bit slots, 1/2/4/8 bytes a slot."""

def values_dense(dense: object, form: int, indices: list[int], /) -> list[int]:
    """The value at each index of a dense vector's buffer (0 past its slots). ``form`` as
    :func:`merge_few_dense`'s."""

def window(packed: bytes, low: int, high: int, /) -> list[tuple[int, int]]:
    """The ``(index, value)`` pairs of packed sparse pairs with ``low <= index < high``."""

def checked_pairs(
    width: int, indices: bytes, values: bytes, size: int, /
) -> tuple[list[int], list[int]] | None:
    """A wire slice's few pairs (at most 64) as two lists of ints when they already are in
    packed form: indices rising and below ``size``, values non-zero, at most 2**63-1, ``width``
    the narrowest for their largest. None for anything else."""

def push_item(
    key: bytes, head: bytes, slices: list[tuple[str, bytes]], full: bool, /
) -> bytes | None:
    """The msgpack bytes of the PUSH item ``[key, [*head, [[origin, width, indices, values],
    ...]], full]`` (``head``: the entry's packed format, epoch, schema and expiry, without an
    array header; each slice's packed pairs cut as ``messages.entry_wire`` cuts them). None
    when a slice holds no pair or more than 64."""

def entry_bytes(head: bytes, slices: list[tuple[str, bytes]], /) -> bytes | None:
    """``codec.encode_entry`` of an entry whose slices are all sparse: msgpack's bytes of
    ``[*head, [slice, ...]]`` with each slice's packed pairs in the canonical form
    ``codec._packed_to_wire`` picks (a bit run, a dense run or the pairs cut in two). None when
    a slice is empty or malformed."""

def push_few(
    payload: bytes,
    schemas: dict[bytes, Any],
    key_bytes_max: int,
    items_max: int,
    /,
) -> (
    tuple[bool | int, int, list[tuple[bytes, tuple[tuple[object, ...], bytes], bool]]]
    | bytes
    | None
):
    """A PUSH ``[relay, ack_seq, [item, ...]]`` whose every item is a replicated write of a
    few pairs of one slice, read from its bytes: ``(relay, ack_seq, [(key, ((epoch, schema,
    (stamp, deadline), origin, indices, values), entry bytes), full), ...])``, the schema taken
    from ``schemas`` (its msgpack bytes -> ``(schema, size, additive)``). The bytes of a schema
    ``schemas`` lacks; None for any other payload (malformed ones included)."""

def count_bits(bits: object, low: int, high: int, /) -> int:
    """How many bits ``low <= i < high`` of a bitset buffer are set (bit ``i`` in byte
    ``i // 8``, bit ``i % 8``; none past the buffer)."""

def join_packed(parts: list[bytes], /) -> tuple[bytes, int]:
    """The join (element-wise max) of packed sparse pairs: ``(the joined pairs, packed at the
    narrowest width; how many pairs the parts held in all, duplicates counted)``."""

def bit_indices(bits: object, start: int, /) -> bytes:
    """The set bits of a bitset buffer as little-endian uint32 indices numbered from
    ``start``, ascending (ValueError past 32-bit indices)."""

def set_bits(bits: object, indices: object, /) -> None:
    """Set bit ``i`` of a writable bitset buffer for every ``i`` of a uint32 buffer (IndexError
    for one past the buffer, before any bit is set)."""
