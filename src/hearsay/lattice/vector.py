"""Sparse max-vectors: the one value type hearsay replicates.

A :class:`MaxVector` maps ``uint32 index -> non-negative int`` (absent means 0) and only ever
changes by element-wise max, so merging is commutative, associative and idempotent. ``merge``
returns the *delta*: exactly the pairs that grew. Any subset of a vector is itself a valid
delta, which is what lets a large vector travel in independent chunks.

Memory matters more than anything else here (a node holds millions of keys), so a vector is
never a Python dict. It has two representations and switches on its own:

- **sparse**: one ``bytes`` object: a width byte ``w`` (1, 2, 4 or 8), then ``n`` little-endian
  uint32 indices (sorted, unique), then ``n`` values of ``w`` bytes each. Ten HLL registers take
  1 + 40 + 10 = 51 bytes of payload. From 8 KB of packed pairs on, a few pairs written go to
  an overlay (``_pending``), folded in once it has grown: a write no longer copies the bytes.
- **dense**: one numpy array indexed directly, of the narrowest unsigned dtype that holds the
  largest value. A full 16,384-register HLL takes 16 KiB.
- **bits**: a dense vector whose values are all 0 or 1 (a Bloom filter) as one bit per slot
  (a uint8 array, bit ``i % 8`` of byte ``i // 8``): a 9.59 Mbit filter takes 1.2 MB, not 9.6.
  A value above 1 widens it to the one-byte array (once; it never goes back).
- **six-bit**: a dense one-byte vector whose values are all at most 63 (an HLL's registers)
  as six bits per slot, as Redis packs its dense registers: a 16,384-register HLL takes
  12,288 bytes, not 16,384. Reads and single writes work on the packed form in C
  (:mod:`hearsay.lattice._sixbit`); a bulk merge unpacks, merges and packs again; a value
  above 63 leaves it a one-byte array (it never goes back).

A sparse vector becomes dense once the dense array (with numpy's larger object header) would
be no larger than the packed pairs; a dense one goes back to sparse only when an index far
beyond its end arrives.
"""

from __future__ import annotations

import bisect
import struct
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, TypeVar, cast

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import BoundsError
from hearsay.lattice import _sixbit, _sparse

INDEX_LIMIT: Final = 1 << 32
"""Indices are uint32: ``0 <= index < INDEX_LIMIT``."""
VALUE_MAX: Final = (1 << 63) - 1
"""Values are non-negative int64."""
DENSE_SLOTS_MAX: Final = 1 << 24
"""A vector of values wider than a bit whose largest index is at or above this stays sparse (no
128 MiB surprises). A vector of ones held as bits may reach every index: bits are chosen only
when no larger than the packed pairs, and a Bloom chain past 2**24 bits (a 2M-capacity
filter, a 1M one's second sub-filter) held as pairs took 5 bytes per set bit, ~20x its bits."""

IndexArray = npt.NDArray[np.uint32]
ValueArray = npt.NDArray[np.unsignedinteger]

VALUE_DTYPES: Final[dict[int, np.dtype[np.unsignedinteger]]] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<u8"),
}
INDEX_DTYPE: Final[np.dtype[np.uint32]] = np.dtype("<u4")
_EMPTY: Final = b"\x01"
_STRUCT_CODES: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}
_WIDTH_BYTES: Final = {width: bytes((width,)) for width in _STRUCT_CODES}
_FEW_PAIRS: Final = 8
_FEW_JOINED: Final = 64
"""Pairs (in all, duplicates counted) up to which :meth:`MaxVector.join_packed` keeps its join
sparse, as a delta is; past it the join takes the form :meth:`MaxVector.from_pairs` would."""
_FEW_BITS: Final = 64
"""Python-int pairs set one by one into a bitset, up to this many (about 0.3 us each; the
vectorised path costs about 15 us whatever the count): a single BF.ADD sets up to one bit per
hash of its sub-filter, and a scaling chain's later sub-filters hash 10 to 20 times."""
_FEW_LOOKUPS: Final = 64
"""Reads of packed pairs up to which a dense one-byte-slot vector is read slot by slot, and a
Python-int batch of them is taken as a handful."""
_C_LOOKUPS: Final = 256
_PAIRS_PER_C_LOOKUP: Final = 128
"""Reads of packed pairs are binary searches in C (``_sparse.values``, ~25 ns each) up to
:data:`_C_LOOKUPS` of them or one per this many pairs held: numpy's search costs ~7 us
whatever the count and first copies the misaligned indices (~0.2 ns a pair). A vector holding
an overlay is read this way up to one read per :data:`_PENDING_READ_SHARE` pairs, since the
alternative is folding it (150-500 us for a 4k-200k-pair vector)."""
_PENDING_READ_SHARE: Final = 8
_DENSE_ROUND: Final = 1024
"""Up to this many pairs into a dense vector take the pure-Python path."""
_BITS_FAVOUR: Final = 4
"""Ones (a Bloom filter) are held as bits once the bitset takes at most this many times their
packed pairs' bytes, not only once it is smaller: a big sparse filter's write (a search of
the pairs, an overlay insert, a fold now and then) cost ~3x a bit set's, and a fresh
1M-capacity filter stayed sparse for its first ~34,000 adds (~33 us each in process against
~10 once bits); from a quarter of that on it is bits. Redis holds the whole bitset from
BF.RESERVE on, so this never takes more than Redis would."""
_DENSE_OVERHEAD_BYTES: Final = 80
"""A numpy array's header costs about this much more than a bytes object's."""
_PENDING_FROM_BYTES: Final = 8192
"""A sparse vector whose packed pairs reach this size may take a write's pairs into an overlay
(``_pending``) instead of copying all its bytes, and does once they pass
:data:`_COPY_BYTES_FIXED` and 8 KB a pair of the write (:data:`_COPY_BYTES_PER_PAIR`): a write
costs what it changes, not the key's size (a 1M-capacity Bloom filter filling up holds ~700 KB
of packed pairs). An entry's shared slice held as bytes leaves that path from this size on."""
_PENDING_FOLD_MIN: Final = 256
_PENDING_FOLD_MAX: Final = 4096
_PENDING_FOLD_SHARE: Final = 32
"""The overlay is folded into the packed pairs (one bulk merge) once it holds more than
``count // 32`` pairs, within 256..4096: a fold's copy spread over at least 256 writes, and
the overlay's dict (~100 bytes a pair) a small share of the packed bytes it sits on."""
_COPY_BYTES_PER_PAIR: Final = 8192
"""A write's pairs go into a large sparse vector's bytes (copied in C, once per 64 pairs)
rather than its overlay while the bytes are at most this many a pair (or under
:data:`_COPY_BYTES_FIXED`): the overlay costs ~0.6 us a pair, a copy ~25 ns a KB. Measured, runs
of 112 pairs: 7,000 pairs held (34 KB) 10 vs 41 us a run, 140,000 (695 KB) 35 vs 82 us; one
CMS.INCRBY's 7 cells into a 20000x7 sketch of 1,000 items (34 KB) went the overlay's way."""
_COPY_BYTES_FIXED: Final = 96 * 1024
"""A write's pairs go into a sparse vector's bytes (copied in C) rather than its overlay while
the bytes are under this, whatever the pairs (or :data:`_COPY_BYTES_PER_PAIR` a pair): taking
even one pair, the overlay's path costs ~7 us more than a copy of 100 KB. Measured in one
process over 50-100 keys (out of cache, as under writes to many keys), one CF.ADD each: 25 KB
slices 26 vs 18 us a command, 100 KB 25 vs 18, 300 KB 26 vs 23; TDIGEST.ADD over 1,000 keys of
~25 KB, 24-29 vs 13-18 us. A real node, 1,000 t-digests filled to 27-41 KB each by 1.5M adds
(-P 16: 31k -> 46k a second), then TDIGEST.ADD at -P 1: 15.5-17.6k -> 22.3-26.6k a second, and
27 KB a key instead of 41 (the overlay's dict holds ~100 bytes a pair). Kept under the mmap
threshold a node fixes (128 KiB, ``runtime/allocator.py``), so each copy comes from the heap."""
_PENDING_PAIR_BYTES: Final = 12
"""What :meth:`MaxVector.nbytes` counts for a pair in the overlay (4 + the widest value): an
upper bound, so the key cap is never passed by a vector that shrinks when folded."""


def width_for(value_max: int) -> int:
    """The narrowest value width in bytes (1, 2, 4 or 8) that holds ``value_max``."""
    if value_max < 1 << 8:
        return 1
    if value_max < 1 << 16:
        return 2
    if value_max < 1 << 32:
        return 4
    return 8


def _pack(width: int, indices: npt.NDArray[np.integer], values: npt.NDArray[np.integer]) -> bytes:
    packed_indices: bytes = indices.astype(INDEX_DTYPE, copy=False).tobytes()
    packed_values: bytes = values.astype(VALUE_DTYPES[width], copy=False).tobytes()
    return bytes((width,)) + packed_indices + packed_values


def normalize_pairs(
    indices: npt.ArrayLike, values: npt.ArrayLike
) -> tuple[IndexArray, npt.NDArray[np.unsignedinteger]]:
    """Validate pairs and reduce them to sorted unique indices with their largest value.

    Zero values are dropped (absent means 0). Raises :class:`BoundsError` for an index outside
    uint32 or a value outside ``0..VALUE_MAX``.
    """
    idx = np.asarray(indices)
    val = np.asarray(values)
    if idx.ndim != 1 or val.ndim != 1 or idx.shape != val.shape:
        raise BoundsError("indices and values must be one-dimensional and of equal length")
    if idx.size == 0:
        return np.empty(0, INDEX_DTYPE), np.empty(0, np.uint64)
    if object in (idx.dtype, val.dtype):
        # Python ints too large for int64: check them one by one, then convert.
        if any(not 0 <= int(i) < INDEX_LIMIT for i in idx.tolist()):
            raise BoundsError("vector index outside 0..2**32-1")
        if any(not 0 <= int(v) <= VALUE_MAX for v in val.tolist()):
            raise BoundsError("vector value outside 0..2**63-1")
        idx = np.array(idx.tolist(), dtype=np.uint64)
        val = np.array(val.tolist(), dtype=np.uint64)
    if idx.dtype.kind not in "iu" or val.dtype.kind not in "iu":
        raise BoundsError("vector indices and values must be integers")
    if idx.dtype.kind == "i" and int(idx.min()) < 0:
        raise BoundsError("vector index outside 0..2**32-1")
    if int(idx.max()) >= INDEX_LIMIT:
        raise BoundsError("vector index outside 0..2**32-1")
    if val.dtype.kind == "i" and int(val.min()) < 0:
        raise BoundsError("vector value outside 0..2**63-1")
    if int(val.max()) > VALUE_MAX:
        raise BoundsError("vector value outside 0..2**63-1")
    idx = idx.astype(INDEX_DTYPE, copy=False)
    if val.dtype.kind != "u":
        val = val.astype(np.uint64)
    if int(val.min()) == 0:  # (min() allocates nothing; a mask only when zeros exist)
        keep = val != 0
        idx, val = idx[keep], val[keep]
    if idx.size > 1 and not bool(np.all(idx[1:] > idx[:-1])):
        if val.dtype.itemsize <= 4:
            # One sort of (index << 32 | value) keys: several times faster than lexsort.
            keys = (idx.astype(np.uint64) << np.uint64(32)) | val.astype(np.uint64)
            keys.sort()
            idx = (keys >> np.uint64(32)).astype(INDEX_DTYPE)
            val = (keys & np.uint64(0xFFFFFFFF)).astype(val.dtype)
        else:
            order = np.lexsort((val, idx))
            idx, val = idx[order], val[order]
        last = np.ones(idx.size, dtype=bool)
        last[:-1] = idx[1:] != idx[:-1]
        idx, val = idx[last], val[last]
    return idx, val


def _fits_dense_unchecked(
    dense: npt.NDArray[np.unsignedinteger], indices: npt.ArrayLike, values: npt.ArrayLike
) -> bool:
    """Whether pairs can go straight into ``dense``: unsigned arrays, in range, every value
    fitting its dtype (a count-min run's counts come as uint64 into a narrower array: their
    maximum, not their dtype, decides; the general path cost a dense count-min key ~40%)."""
    if not (isinstance(indices, np.ndarray) and isinstance(values, np.ndarray)):
        return False
    if indices.dtype.kind != "u" or values.dtype.kind != "u" or indices.ndim != 1:
        return False
    if indices.shape != values.shape or indices.size == 0:
        return False
    if values.dtype.itemsize > dense.dtype.itemsize and int(values.max()) >> (
        8 * dense.dtype.itemsize
    ):
        return False
    return int(indices.max()) < dense.size


def _copy_bytes_max(pairs: int) -> int:
    """The packed bytes up to which a write of ``pairs`` pairs copies them rather than going
    to the overlay (the one rule of :meth:`MaxVector._copies` and the run path's)."""
    return max(_COPY_BYTES_FIXED, _COPY_BYTES_PER_PAIR * pairs)


def _ascending_runs(parts: list[bytes]) -> MaxVector:
    """The vector of packed pairs given in ascending runs (each part's indices all above the
    part's before: chunks of one sorted run), concatenated: no join's sort or maxima (a
    pipelined count-min run into a big six-bit sketch spent ~40% of its write there)."""
    if len(parts) <= 1:
        return MaxVector.of_packed(parts[0]) if parts else MaxVector()
    width = parts[0][0]
    if any(part[0] != width for part in parts):
        return MaxVector.join_packed(parts)
    indices: list[bytes] = []
    values: list[bytes] = []
    for part in parts:
        count = (len(part) - 1) // (4 + width)
        indices.append(part[1 : 1 + 4 * count])
        values.append(part[1 + 4 * count :])
    return MaxVector.of_packed(bytes((width,)) + b"".join(indices) + b"".join(values))


def _few_wanted(indices: list[int], values: list[int]) -> dict[int, int]:
    """Validate a few Python-int pairs and reduce them by max (zeros dropped)."""
    if len(indices) != len(values):
        raise BoundsError("indices and values must be of equal length")
    wanted: dict[int, int] = {}
    for index, value in zip(indices, values, strict=True):
        if type(index) is not int or not 0 <= index < INDEX_LIMIT:
            raise BoundsError("vector index outside 0..2**32-1")
        if type(value) is not int or not 0 <= value <= VALUE_MAX:
            raise BoundsError("vector value outside 0..2**63-1")
        if value > wanted.get(index, 0):
            wanted[index] = value
    return wanted


def _pack_few(pairs: dict[int, int]) -> bytes:
    """The packed form of a few validated pairs (zeros dropped; none: the empty form), with
    struct: no numpy for a write's handful."""
    if len(pairs) == 1:  # one register raised (the commonest write): no sort, no struct
        ((index, value),) = pairs.items()
        if not value:
            return _EMPTY
        width = width_for(value)
        return _WIDTH_BYTES[width] + index.to_bytes(4, "little") + value.to_bytes(width, "little")
    if 0 in pairs.values():
        pairs = {index: value for index, value in pairs.items() if value}
    if not pairs:
        return _EMPTY
    indices = sorted(pairs)
    values = [pairs[index] for index in indices]
    width = width_for(max(values))
    count = len(indices)
    return (
        _WIDTH_BYTES[width]
        + struct.pack(f"<{count}I", *indices)
        + struct.pack(f"<{count}{_STRUCT_CODES[width]}", *values)
    )


def _int_lists(indices: npt.ArrayLike, values: npt.ArrayLike) -> tuple[list[int], list[int]] | None:
    """Pairs given as Python lists, or as one-dimensional unsigned arrays (made lists), for
    the paths that merge them as Python ints; None for any other form (the general path)."""
    if isinstance(indices, np.ndarray) and isinstance(values, np.ndarray):
        if indices.dtype.kind != "u" or values.dtype.kind != "u" or indices.ndim != 1:
            return None
        return indices.tolist(), values.tolist()
    if isinstance(indices, list) and isinstance(values, list):
        return indices, values
    return None


def _small_unsigned(indices: npt.ArrayLike, values: npt.ArrayLike) -> bool:
    """A few pairs as unsigned arrays (indices uint32): the packed-bytes path takes them
    (``_few_wanted`` still checks each value, so uint64 ones above 2**63-1 are refused)."""
    return (
        isinstance(indices, np.ndarray)
        and isinstance(values, np.ndarray)
        and indices.dtype == INDEX_DTYPE
        and values.dtype.kind == "u"
        and indices.ndim == 1
        and indices.shape == values.shape
        and indices.size <= _FEW_PAIRS
        and sys.byteorder == "little"  # packed indices are read back with a native cast
    )


def _dense_slots(top_index: int, *, bits: bool = False) -> int:
    """Slots of a dense array holding ``top_index``: rounded up to a multiple of 1,024 (a
    2**p register array is allocated once, not again for its last few registers), capped."""
    cap = INDEX_LIMIT if bits else DENSE_SLOTS_MAX
    return min(-(-(top_index + 1) // _DENSE_ROUND) * _DENSE_ROUND, cap)


_INDEX_AT: Final = struct.Struct("<I")
"""One packed index, read in place (the last one: a sparse vector's top index)."""


def _dense_is_smaller(top_index: int, pairs: int, width: int, *, bits: bool = False) -> bool:
    """Whether slots ``0..top_index`` as an array take no more memory than ``pairs`` packed;
    ``bits``: as bits, no more than :data:`_BITS_FAVOUR` times the pairs' bytes."""
    if top_index >= (INDEX_LIMIT if bits else DENSE_SLOTS_MAX):
        return False
    if bits:
        return (top_index + 8) // 8 + _DENSE_OVERHEAD_BYTES <= _BITS_FAVOUR * pairs * (4 + width)
    return (top_index + 1) * width + _DENSE_OVERHEAD_BYTES <= pairs * (4 + width)


_BITS: Final = b"\x00"
"""``_packed`` of a vector held as bits: a width byte no packed form has, so the two dense
forms are told apart without another slot (``_packed`` means nothing while a vector is dense)."""
_BIT_CHUNK_BYTES: Final = 8192
"""Bits are turned into indices this many bytes at a time (64 KiB of temporaries, not a byte
per slot of the whole filter)."""
_SIX: Final = b"\x06"
"""``_packed`` of a vector held as six-bit slots (a width byte no packed form has, as _BITS)."""
_SIX_MAX: Final = 63
_SLOTS_PER_SIX_GROUP: Final = 4
"""Four six-bit slots fill three bytes."""
_FEW_DENSE_PAIRS: Final = 64
"""Up to this many pairs (``_sparse.merge_few_dense``'s bound) go into a dense vector as
Python ints, merged in place in C."""
_SIX_RUN_SHARE: Final = 128
"""Six-bit slots are read or raised one C call per slot (not all unpacked to bytes, and packed
again after a merge) for up to one slot in this many (measured: a call ~64 ns, unpacking
~0.4 ns a slot and packing as much again)."""
_DENSE_FORMS: Final = {_BITS: 0, _SIX: 6}
"""``_sparse.merge_few_dense``'s form of a dense vector by its ``_packed`` marker (others: the
array's bytes per slot)."""
_LITTLE_ENDIAN: Final = sys.byteorder == "little"
"""Whether a dense array's slots are read and written in C as the packed form's bytes are
(little-endian); elsewhere numpy does it."""


def _six_packed(array: npt.NDArray[np.unsignedinteger]) -> npt.NDArray[np.uint8] | None:
    """``array`` as six-bit slots, or None when it cannot be (not one byte per slot, a slot
    count not a multiple of 4, or a value above 63)."""
    if array.dtype != np.uint8 or array.size % _SLOTS_PER_SIX_GROUP:
        return None
    packed = np.empty(array.size // _SLOTS_PER_SIX_GROUP * 3, dtype=np.uint8)
    return packed if _sixbit.pack(array, packed) else None


def _six_unpacked(packed: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Six-bit slots as a new one-byte array."""
    values = np.empty(packed.size // 3 * _SLOTS_PER_SIX_GROUP, dtype=np.uint8)
    _sixbit.unpack(packed, values)
    return values


def _bit_masks(indices: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """Per index, its bit within its byte."""
    return np.left_shift(np.uint8(1), (indices & 7).astype(np.uint8))


def _bits_at(
    bits: npt.NDArray[np.uint8], indices: npt.NDArray[np.integer]
) -> npt.NDArray[np.integer]:
    """The 0/1 values at ``indices`` (each inside the array)."""
    held: npt.NDArray[np.integer] = (bits.take(indices >> 3) >> (indices & 7)) & 1
    return held


def _set_bits(bits: npt.NDArray[np.uint8], indices: npt.NDArray[np.integer]) -> None:
    """Set the bits at ``indices`` (each inside the array; repeats allowed), in C."""
    _sparse.set_bits(bits, np.ascontiguousarray(indices, dtype=np.uint32))


def _bit_indices(bits: npt.NDArray[np.uint8], count: int) -> IndexArray:
    """The sorted indices of the ``count`` set bits, unpacked a chunk at a time."""
    out = np.empty(count, dtype=INDEX_DTYPE)
    at = 0
    for first in range(0, bits.size, _BIT_CHUNK_BYTES):
        chunk = bits[first : first + _BIT_CHUNK_BYTES]
        if not chunk.any():
            continue
        found = np.flatnonzero(np.unpackbits(chunk, bitorder="little"))
        out[at : at + found.size] = found + 8 * first
        at += found.size
    return out


_STRIP_BYTES_MAX: Final = 16_384
"""Bitsets up to this many bytes find their first and last set byte by stripping zero bytes
off a copy (~5 us for a 1k-capacity filter's 1.2 KB, where numpy's compare and two argmax
calls cost ~15 us); larger ones by numpy, which is faster there."""


def _popcount(bits: npt.NDArray[np.uint8]) -> int:
    return int(np.bitwise_count(bits).sum(dtype=np.int64))


def _dense_array(
    indices: npt.NDArray[np.integer], values: npt.NDArray[np.integer], width: int, bits: bool
) -> npt.NDArray[np.unsignedinteger]:
    """The dense array (``bits``: the bitset) holding sorted, non-zero pairs."""
    slots = _dense_slots(int(indices[-1]), bits=bits)
    if bits:
        bitset = np.zeros(slots // 8, dtype=np.uint8)
        _set_bits(bitset, indices)
        return bitset
    dense = np.zeros(slots, dtype=VALUE_DTYPES[width])
    dense[indices] = values
    return dense


def _all_bits(width: int, values: npt.NDArray[np.integer]) -> bool:
    """Whether non-zero values of this width are all 1 (so they can be held as bits)."""
    return width == 1 and bool(values.size) and int(values.max()) <= 1


_Derived = TypeVar("_Derived")


class _Memo(weakref.ref):  # type: ignore[type-arg]  # (a weakref to a dense array)
    """What a read derived from one dense array, and a weak reference to that array: one
    object per remembered value (a ref, a tuple and a callback cost three times as much)."""

    __slots__ = ("key", "tag", "value")

    key: int
    tag: object
    value: object


_MEMOS: Final[dict[int, _Memo]] = {}
"""What a read derived from a dense array (an HLL's cardinality), by the array's id: Redis
keeps its HLL's cardinality in the key's header; here the header would cost every vector,
small ones included, a slot, so only dense arrays (kilobytes each) have one, on the side. The
entry goes when the array grows in place (:func:`_forget`) or is freed (its weakref)."""


def _forget(dense: npt.NDArray[np.unsignedinteger]) -> None:
    """``dense`` is about to change in place: what was derived from it no longer holds."""
    if _MEMOS:
        _MEMOS.pop(id(dense), None)


def _drop_memo(memo: _Memo) -> None:
    """The array behind ``memo`` was freed: drop the memo (if it is still that array's)."""
    if _MEMOS.get(memo.key) is memo:
        del _MEMOS[memo.key]


def _nonzero_pairs(indices: IndexArray, values: npt.NDArray[np.unsignedinteger]) -> MaxVector:
    keep = values != 0
    return MaxVector._from_sorted(indices.compress(keep), values.compress(keep))


class _Overlay(dict[int, int]):
    """A large sparse vector's pairs written since its bytes were packed, how many of them
    are new indices, the largest value and the indices in order (so its length, width and
    a window of it need no fold)."""

    __slots__ = ("added", "order", "top")

    def __init__(self) -> None:
        super().__init__()
        self.added = 0
        self.order: list[int] = []  # the indices, sorted (at most a few thousand)
        self.top = 0  # the largest value


class MaxVector:
    """A sparse ``uint32 -> int`` vector that only grows by element-wise max."""

    __slots__ = ("_dense", "_packed", "_pending")

    NO_PAIRS: Final = _EMPTY
    """The packed pairs of an empty vector (one shared object: ``is`` tells emptiness)."""

    _packed: bytes
    _dense: npt.NDArray[np.unsignedinteger] | None
    _pending: _Overlay | None
    """A large sparse vector's pairs written since its packed pairs were built (each above what
    the packed pairs hold there); None otherwise. Readers that look at ``_packed`` call
    :meth:`_settle` first, except the few-pair paths, which look here before the bytes."""

    def __init__(self) -> None:
        self._packed = _EMPTY
        self._dense = None
        self._pending = None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_pairs(cls, indices: npt.ArrayLike, values: npt.ArrayLike) -> MaxVector:
        """A vector holding the given pairs (duplicates reduced by max, zeros dropped)."""
        return cls._from_sorted(*normalize_pairs(indices, values))

    @classmethod
    def from_items(cls, items: Iterable[tuple[int, int]]) -> MaxVector:
        """A vector from ``(index, value)`` pairs, e.g. a vignette message's map items.

        A few pairs of Python ints in range are packed with struct (no numpy arrays of
        objects: ~4x faster for the few pairs gossip joins per key and drain)."""
        pairs = list(items)
        if len(pairs) <= _FEW_PAIRS and all(
            type(i) is int and type(v) is int and 0 <= i < INDEX_LIMIT and 0 <= v <= VALUE_MAX
            for i, v in pairs
        ):
            few: dict[int, int] = {}
            for index, value in pairs:
                if value > few.get(index, 0):
                    few[index] = value
            vector = cls._from_few(few)
            vector._maybe_densify()  # (as from_pairs would hold them: ones on few slots)
            return vector
        return cls.from_pairs(
            np.array([i for i, _ in pairs], dtype=object),
            np.array([v for _, v in pairs], dtype=object),
        )

    @classmethod
    def _from_sorted(cls, indices: IndexArray, values: npt.NDArray[np.integer]) -> MaxVector:
        """Build from already validated, sorted, unique, non-zero pairs (no checks).

        Picks the representation up front, so building a dense vector never allocates the
        (five times larger) packed form first.
        """
        vector = cls()
        if indices.size:
            # (one-byte values need no scan: the narrowest width is theirs)
            width = 1 if values.dtype.itemsize == 1 else width_for(int(values.max()))
            top = int(indices[-1])
            bits = _dense_is_smaller(top, indices.size, width, bits=True) and _all_bits(
                width, values
            )
            if bits or _dense_is_smaller(top, indices.size, width):
                vector._hold(_dense_array(indices, values, width, bits), bits=bits)
                vector._compact()
            else:
                vector._packed = _pack(width, indices, values)
        return vector

    @classmethod
    def from_dense(
        cls, values: npt.NDArray[np.integer], offset: int = 0, *, owned: bool = False
    ) -> MaxVector:
        """A vector whose slot ``offset + i`` holds ``values[i]`` (zeros are absent).

        A run that is dense enough becomes the dense array by one copy (a decoded 28 MiB
        entry is not first spread into index/value pairs and gathered back); the result is
        the vector :meth:`from_pairs` would build from the run's non-zero pairs. ``owned``:
        the caller hands ``values`` over (a fresh, writable array nobody else holds), so it
        may become the vector's array without a copy.
        """
        vals = np.asarray(values)
        if (
            vals.ndim == 1
            and vals.dtype.kind == "u"
            and vals.size
            and offset >= 0
            and offset + vals.size <= INDEX_LIMIT
        ):
            nonzero = int(np.count_nonzero(vals))
            if not nonzero:
                return cls()
            top = offset + vals.size - 1 - int(np.argmax(vals[::-1] != 0))
            value_max = int(vals.max())
            width = 1 if vals.dtype.itemsize == 1 else width_for(value_max)
            if value_max == 1 and _dense_is_smaller(top, nonzero, 1, bits=True):
                return cls._bits_from_run(vals[: top + 1 - offset], offset, top)
            if value_max <= VALUE_MAX and _dense_is_smaller(top, nonzero, width):
                vector = cls()
                slots = _dense_slots(top)
                if (
                    owned
                    and not offset
                    and vals.size == slots
                    and vals.dtype == VALUE_DTYPES[width]
                ):
                    vector._dense = vals  # already the array this vector would hold: adopt
                    vector._compact()
                    return vector
                dense = np.zeros(slots, dtype=VALUE_DTYPES[width])
                end = min(vals.size, top + 1 - offset)
                dense[offset : top + 1] = vals[:end]
                vector._dense = dense
                vector._compact()
                return vector
        nonzero_at = np.flatnonzero(vals)
        return cls.from_pairs(nonzero_at.astype(np.uint64) + offset, vals[nonzero_at])

    @classmethod
    def _bits_from_run(
        cls, run: npt.NDArray[np.unsignedinteger], offset: int, top: int
    ) -> MaxVector:
        """A bits vector whose slot ``offset + i`` is ``run[i]`` (0 or 1)."""
        bitset = np.zeros(_dense_slots(top, bits=True) // 8, dtype=np.uint8)
        pad = offset % 8
        if pad:
            run = np.concatenate((np.zeros(pad, dtype=run.dtype), run))
        packed = np.packbits(run, bitorder="little")
        first = (offset - pad) // 8
        bitset[first : first + packed.size] = packed
        vector = cls()
        vector._hold(bitset, bits=True)
        return vector

    @classmethod
    def from_bits(cls, bitset: bytes, start: int) -> MaxVector:
        """A vector whose slot ``start + i`` holds bit ``i % 8`` of byte ``i // 8`` of
        ``bitset`` (``start`` a multiple of 8): the codec's bit runs, read without a byte per
        slot in between."""
        raw = np.frombuffer(bitset, dtype=np.uint8)
        return cls._from_bit_array(raw, start, _popcount(raw))

    @classmethod
    def _from_bit_array(cls, raw: npt.NDArray[np.uint8], start: int, count: int) -> MaxVector:
        """:meth:`from_bits` of an array holding ``count`` set bits."""
        if not count:
            return cls()
        last = raw.size - 1 - int(np.argmax(raw[::-1] != 0))
        top = start + 8 * last + int(raw[last]).bit_length() - 1
        if not _dense_is_smaller(top, count, 1, bits=True):
            indices = _bit_indices(raw, count) + np.uint32(start)
            return cls._from_sorted(indices, np.ones(count, dtype=np.uint8))
        held = np.zeros(_dense_slots(top, bits=True) // 8, dtype=np.uint8)
        end = min(raw.size, held.size - start // 8)
        held[start // 8 : start // 8 + end] = raw[:end]
        vector = cls()
        vector._hold(held, bits=True)
        return vector

    def _hold(self, array: npt.NDArray[np.unsignedinteger], *, bits: bool = False) -> None:
        """Become dense: ``array`` as one value per slot, or (``bits``) as a bitset."""
        self._dense = array
        self._packed = _BITS if bits else _EMPTY

    def _compact(self) -> None:
        """A one-byte dense array whose values all fit six bits becomes six-bit slots."""
        dense = self._dense
        if dense is not None and self._packed is _EMPTY:
            packed = _six_packed(dense)
            if packed is not None:
                self._dense, self._packed = packed, _SIX

    @property
    def _is_bits(self) -> bool:
        return self._packed is _BITS

    def _slot_values(self) -> npt.NDArray[np.unsignedinteger]:
        """A dense vector (not bits) as one value per slot: the array itself, or six-bit
        slots unpacked into a new one."""
        dense = self._dense
        assert dense is not None and self._packed is not _BITS
        return _six_unpacked(dense) if self._packed is _SIX else dense

    def six_histogram(self) -> list[int] | None:
        """For a vector held as six-bit slots: how many of its :attr:`dense_slots` hold each
        value 0..63 (all an HLL's estimate reads, taken from the packed form); else None."""
        dense = self._dense
        if dense is None or self._packed is not _SIX:
            return None
        return _sixbit.histogram(dense)

    def _widen(self) -> npt.NDArray[np.unsignedinteger] | None:
        """A bits vector about to hold a value above 1 becomes a one-byte array (returned), or
        packed pairs (None) when a byte per slot would pass :data:`DENSE_SLOTS_MAX` or be
        larger than the pairs."""
        bits = self._dense
        assert bits is not None and self._is_bits
        count = _popcount(bits)
        top = 8 * bits.size - 1
        if 8 * bits.size > DENSE_SLOTS_MAX or not _dense_is_smaller(top, count, 1):
            indices = _bit_indices(bits, count)
            self._dense, self._packed = None, _pack(1, indices, np.ones(count, dtype=np.uint8))
            return None
        wide = np.unpackbits(bits, bitorder="little")
        self._hold(wide)
        return wide

    @property
    def dense_slots(self) -> int:
        """How many slots the dense array (or bitset) has; 0 for a sparse vector."""
        dense = self._dense
        if dense is None:
            return 0
        if self._packed is _SIX:
            return dense.size // 3 * _SLOTS_PER_SIX_GROUP
        return dense.size * 8 if self._is_bits else dense.size

    @classmethod
    def of_packed(cls, packed: bytes) -> MaxVector:
        """The sparse vector whose packed pairs are ``packed`` (as :meth:`packed_pairs` gave
        them: trusted, never copied; bytes are immutable, so sharing them is safe)."""
        vector = cls.__new__(cls)
        vector._packed, vector._dense, vector._pending = packed, None, None
        return vector

    @classmethod
    def of_checked_packed(cls, packed: bytes) -> MaxVector:
        """:meth:`of_packed` of pairs checked to be in the packed form (a peer's delta), held
        dense when that is smaller (many pairs on few slots), as any other vector would be."""
        vector = cls.of_packed(packed)
        vector._maybe_densify()
        return vector

    def packed_pairs(self) -> bytes | None:
        """A sparse vector's packed pairs (the one object that holds it), None when dense: an
        entry keeps these bytes instead of the vector (48 bytes less per small key)."""
        self._settle()  # (first: a fold may turn it dense)
        return self._packed if self._dense is None else None

    def sparse_view(self) -> tuple[bytes, dict[int, int] | None] | None:
        """A sparse vector's packed pairs and the overlay of pairs written since (each above
        what the bytes hold; do not change it), None when dense: for readers that search the
        bytes in C and must not fold the overlay at every write (a cuckoo filter's buckets)."""
        if self._dense is not None:
            return None
        return self._packed, self._pending

    @property
    def holds_pending(self) -> bool:
        """Whether writes sit in the overlay: the vector, not its bytes, is the current state."""
        return self._pending is not None

    def _settle(self) -> None:
        """Fold the overlay into the packed pairs (one bulk merge; it may turn dense)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        order = pending.order  # (kept sorted, as is its top value: nothing to sort or scan)
        indices = np.array(order, dtype=INDEX_DTYPE)
        values = np.array([pending[i] for i in order], dtype=VALUE_DTYPES[width_for(pending.top)])
        self.merge_tracking(indices, values)

    def copy(self) -> MaxVector:
        self._settle()
        other = MaxVector()
        other._packed = self._packed
        other._dense = None if self._dense is None else self._dense.copy()
        return other

    # -- reading --------------------------------------------------------------------------------

    @property
    def is_dense(self) -> bool:
        return self._dense is not None

    def memo(self, tag: object, compute: Callable[[MaxVector], _Derived]) -> _Derived:
        """``compute(self)``, remembered until a value of this vector rises.

        ``tag`` (compared by identity) names what ``compute`` derives, so two readers never
        take each other's values. Only a dense vector remembers (see ``_MEMOS``); a sparse
        one is small enough to derive from again.
        """
        dense = self._dense
        if dense is None:
            return compute(self)
        key = id(dense)
        held = _MEMOS.get(key)
        if held is not None and held.tag is tag and held() is dense:
            return cast("_Derived", held.value)
        value = compute(self)
        memo = _Memo(dense, _drop_memo)
        memo.key, memo.tag, memo.value = key, tag, value
        _MEMOS[key] = memo
        return value

    @property
    def width(self) -> int:
        """Bytes per stored value (1, 2, 4 or 8)."""
        if self._dense is not None:
            return int(self._dense.dtype.itemsize)
        pending = self._pending
        if pending is not None:
            return max(self._packed[0], width_for(pending.top))
        return self._packed[0]

    def _packed_arrays(self) -> tuple[IndexArray, npt.NDArray[np.unsignedinteger]]:
        """The packed pairs as arrays over the bytes, the overlay left out."""
        width = self._packed[0]
        n = (len(self._packed) - 1) // (4 + width)
        indices = np.frombuffer(self._packed, INDEX_DTYPE, n, 1)
        values = np.frombuffer(self._packed, VALUE_DTYPES[width], n, 1 + 4 * n)
        return indices, values

    def pairs(self) -> tuple[IndexArray, npt.NDArray[np.unsignedinteger]]:
        """The non-zero pairs as read-only arrays, sorted by index (the canonical form)."""
        self._settle()  # (first: a fold may turn it dense)
        if self._dense is None:
            return self._packed_arrays()
        if self._is_bits:
            count = _popcount(self._dense)
            return _bit_indices(self._dense, count), np.ones(count, dtype=np.uint8)
        dense = self._slot_values()
        nonzero = np.flatnonzero(dense).astype(INDEX_DTYPE)
        return nonzero, dense[nonzero]

    def _packed_lists(self, most: int) -> tuple[list[int], list[int]] | None:
        """The packed pairs (the overlay left out) as two lists of Python ints, read with
        struct, when there are at most ``most``; None when more."""
        packed = self._packed
        width = packed[0]
        count = (len(packed) - 1) // (4 + width)
        if count > most:
            return None
        unpacked = struct.unpack_from(f"<{count}I{count}{_STRUCT_CODES[width]}", packed, 1)
        return list(unpacked[:count]), list(unpacked[count:])

    def items(self) -> list[tuple[int, int]]:
        """The non-zero pairs as Python ints, sorted by index.

        Packed pairs are read with struct: a delta of a few pairs (one client write, hashed
        for the content digest) costs no numpy array at all.
        """
        self._settle()  # (first: a fold may turn it dense)
        if self._dense is None:
            lists = self._packed_lists(_FEW_PAIRS)
            if lists is not None:
                return list(zip(*lists, strict=True))
        indices, values = self.pairs()
        return list(zip(indices.tolist(), values.tolist(), strict=True))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.items())

    def __len__(self) -> int:
        """How many indices hold a non-zero value."""
        if self._dense is None:
            pending = self._pending
            added = 0 if pending is None else pending.added
            return (len(self._packed) - 1) // (4 + self._packed[0]) + added
        if self._is_bits:
            return _popcount(self._dense)
        if self._packed is _SIX:
            return self.dense_slots - _sixbit.histogram(self._dense)[0]
        return int(np.count_nonzero(self._dense))

    def bit_array(self) -> npt.NDArray[np.uint8] | None:
        """A vector in its bits form: its bitset (bit p is bit ``p & 7`` of byte ``p >> 3``;
        bits past its end are 0), to read only (a write goes through a merge, which keeps the
        memos right); None in any other form. A Bloom filter's reads of one item in C."""
        dense = self._dense
        return dense if self._packed is _BITS else None

    def is_empty(self) -> bool:
        """No non-zero value. O(1): a dense array is only ever built holding a non-zero value
        and values only rise (a count-min read asks this of every slice before summing)."""
        return self._dense is None and len(self._packed) == 1 and self._pending is None

    def __bool__(self) -> bool:
        """Whether any value is non-zero, in O(1) (:meth:`is_empty`). Without it, truth fell
        back to ``__len__``, which counts a dense vector's non-zero slots: ``slices.get(o) or
        MaxVector()`` cost a six-bit HLL's whole histogram, ~7 us a windowed PFADD."""
        return not self.is_empty()

    def get(self, index: int) -> int:
        """The value at ``index`` (absent: 0). One binary search over the packed bytes in C and
        no numpy array: PFADD asks it for each member to skip writes that change nothing."""
        dense = self._dense
        if dense is not None:
            if self._packed is _BITS:
                return (
                    int(dense[index >> 3]) >> (index & 7) & 1 if 0 <= index < 8 * dense.size else 0
                )
            if self._packed is _SIX:
                return _sixbit.get(dense, index) if 0 <= index < self.dense_slots else 0
            return int(dense[index]) if 0 <= index < dense.size else 0
        if not 0 <= index < INDEX_LIMIT:
            return 0
        pending = self._pending
        if pending is not None:
            held = pending.get(index)
            if held is not None:
                return held
        return _sparse.values(self._packed, [index])[0]

    def values_of(self, indices: list[int]) -> list[int]:
        """The values at a few slot ``indices`` (each in ``0..2**32-1``; absent: 0) as Python
        ints, without numpy: packed pairs searched in C (the overlay's writes on top), six-bit
        slots read in C one each. One item's reads (a BF.ADD's bits, a count-min item's
        cells, a Top-K writer's slots): numpy's set-up alone cost ~10 us a read."""
        dense = self._dense
        if dense is None:
            values = _sparse.values(self._packed, indices)
            pending = self._pending
            if pending is not None:  # (each overlay value is above what the bytes hold)
                values = [pending.get(i, value) for i, value in zip(indices, values, strict=True)]
            return values
        if _LITTLE_ENDIAN and len(indices) <= _C_LOOKUPS:  # (one C call: no numpy scalars)
            return _sparse.values_dense(
                dense, _DENSE_FORMS.get(self._packed, dense.dtype.itemsize), indices
            )
        if self._packed is _SIX:
            slots, get = self.dense_slots, _sixbit.get
            return [get(dense, index) if index < slots else 0 for index in indices]
        found: list[int] = self.values_at(np.array(indices, dtype=np.int64)).tolist()
        return found

    def values_at(self, indices: npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
        """The values at ``indices`` (any shape; absent = 0) without copying the vector."""
        idx = np.asarray(indices)
        flat = idx.reshape(-1)
        out = np.zeros(flat.size, dtype=np.uint64)
        dense = self._dense
        if dense is not None:
            if self._packed is _SIX:
                if flat.dtype.kind in "iu" and (
                    flat.size <= _FEW_LOOKUPS or flat.size * _SIX_RUN_SHARE <= self.dense_slots
                ):
                    # A pipelined run's registers: one C call, nothing unpacked (absent
                    # past the slots; an index past int64 wraps negative: absent too).
                    _sixbit.get_many(dense, np.ascontiguousarray(flat, dtype=np.int64), out)
                    return out.reshape(idx.shape)
                dense = _six_unpacked(dense)
            bits = self._packed is _BITS
            slots = 8 * dense.size if bits else dense.size
            if bits and flat.size <= _FEW_PAIRS and flat.dtype.kind in "iu":
                # A Bloom filter's k bits: Python ints over a byte view beat five ufunc calls.
                few: list[int] = flat.tolist()
                with memoryview(cast("bytes", dense)) as view:
                    held = [view[i >> 3] >> (i & 7) & 1 if 0 <= i < slots else 0 for i in few]
                return np.array(held, dtype=np.uint64).reshape(idx.shape)
            if (
                flat.size
                and flat.dtype.kind in "iu"
                and (flat.dtype.kind == "u" or int(flat.min()) >= 0)
                and int(flat.max()) < slots  # (every index inside: one take, no mask)
            ):
                if bits:
                    return _bits_at(dense, flat).astype(np.uint64).reshape(idx.shape)
                return dense.take(flat).astype(np.uint64).reshape(idx.shape)
            inside = (flat >= 0) & (flat < slots)
            wanted = flat[inside]
            out[inside] = _bits_at(dense, wanted) if bits else dense[wanted]
            return out.reshape(idx.shape)
        packed = self._packed
        count = (len(packed) - 1) // (4 + packed[0])
        reads = flat.size
        if flat.dtype.kind in "iu" and (
            reads <= _C_LOOKUPS
            or count >= _PAIRS_PER_C_LOOKUP * reads
            or (self._pending is not None and count >= _PENDING_READ_SHARE * reads)
        ):  # (the overlay, if any, is read there too: a pipelined run's reads never fold it)
            in_range = flat.dtype.kind == "u" or not flat.size or int(flat.min()) >= 0
            return self._few_sparse_values(flat.tolist(), out, in_range).reshape(idx.shape)
        if self._pending is not None:  # (many look-ups: fold once, then read as it stands)
            self._settle()
            return self.values_at(indices)
        have_idx, have_val = self._packed_arrays()
        if have_idx.size:
            pos = np.searchsorted(have_idx, flat)
            clipped = np.minimum(pos, have_idx.size - 1)
            hit = have_idx[clipped] == flat
            out[hit] = have_val[clipped[hit]]
        return out.reshape(idx.shape)

    def _packed_position(self, index: int) -> int:
        """Where ``index`` (0..2**32) is or would go among the packed indices."""
        return self._packed_positions([index])[0]

    def _packed_positions(self, wanted: list[int]) -> list[int]:
        """:meth:`_packed_position` of each of ``wanted`` (0..2**32 each).

        A bisect over the bytes, not numpy's searchsorted: the packed indices sit one byte
        off alignment, and on such an array numpy first copies the whole vector (3 ms for a
        1M-capacity filter's 1.4 million pairs, to find 7 bits)."""
        packed = self._packed
        count = (len(packed) - 1) // (4 + packed[0])
        if sys.byteorder == "little":
            with memoryview(packed) as view, view[1 : 1 + 4 * count].cast("I") as positions:
                return [bisect.bisect_left(positions, index) for index in wanted]
        indices, _ = self._packed_arrays()
        return [
            int(np.searchsorted(indices, index)) if index < INDEX_LIMIT else count
            for index in wanted
        ]

    def _few_sparse_values(
        self, wanted: list[int], out: npt.NDArray[np.uint64], in_range: bool = False
    ) -> npt.NDArray[np.uint64]:
        """``out[i]`` = the value at ``wanted[i]`` (left alone where absent), for look-ups
        few against the pairs held (a Bloom filter's bits, a count-min's cells, a pipelined
        run's): a binary search of the bytes each, in C, never a copy of the vector.
        ``in_range``: every index is known to be a uint64 (C reads one past the slots as 0)."""
        inside = (
            range(len(wanted))
            if in_range
            else [i for i, index in enumerate(wanted) if 0 <= index < INDEX_LIMIT]
        )
        if len(inside) == len(wanted):
            out[:] = _sparse.values(self._packed, wanted)
        elif inside:
            out[inside] = _sparse.values(self._packed, [wanted[i] for i in inside])
        pending = self._pending
        if pending is not None:
            for slot, index in enumerate(wanted):
                held = pending.get(index)
                if held is not None:
                    out[slot] = held
        return out

    def dense_run(self) -> tuple[int, npt.NDArray[np.unsignedinteger], int] | None:
        """For a dense vector: ``(start, values, nonzero)``, the slots from its first to its
        last non-zero value as a read-only view (no copy) and how many are non-zero; None
        for a sparse or empty one. The codec writes a big dense vector from this directly."""
        dense = self._dense
        if dense is None:
            return None
        if self._is_bits:  # (a copy, one byte per slot: the codec writes bits by bit_run)
            dense = np.unpackbits(dense, bitorder="little")
        elif self._packed is _SIX:  # (a copy too: the wire and the disk keep a byte per slot)
            dense = _six_unpacked(dense)
        nonzero = int(np.count_nonzero(dense))
        if not nonzero:
            return None
        first = int(np.argmax(dense != 0))
        last = dense.size - 1 - int(np.argmax(dense[::-1] != 0))
        run = dense[first : last + 1]
        run.flags.writeable = False
        return first, run, nonzero

    def bit_run(self) -> tuple[int, npt.NDArray[np.uint8], int] | None:
        """For a vector held as bits: ``(start, bytes, count)``, its bytes from the first to
        the last holding a set bit as a read-only view (``start`` = 8 x the first byte's
        number) and how many bits are set; None for any other vector."""
        bits = self._dense
        if bits is None or not self._is_bits:
            return None
        if bits.size <= _STRIP_BYTES_MAX:  # (a small filter, staged at every flush it changed)
            held_bytes = bits.tobytes()
            from_first = held_bytes.lstrip(b"\0")
            first = len(held_bytes) - len(from_first) if from_first else 0  # (none set: all)
            last = first + len(from_first.rstrip(b"\0")) - 1 if from_first else bits.size - 1
        else:
            held = bits != 0
            first = int(np.argmax(held))
            last = bits.size - 1 - int(np.argmax(held[::-1]))
        run = bits[first : last + 1]
        run.flags.writeable = False
        return 8 * first, run, _sparse.count_bits(run, 0, 8 * run.size)  # (numpy's: ~4x)

    def bits_above(self, other: MaxVector) -> MaxVector | None:
        """For two vectors held as bits: the bits set here and not in ``other`` (the pairs
        above it), found in one pass over the bytes instead of listing every set bit of both
        (a 1M-capacity Bloom filter answering a peer's exchange); None when either vector is
        held otherwise."""
        mine, theirs = self._dense, other._dense
        if mine is None or theirs is None or not self._is_bits or not other._is_bits:
            return None
        above = mine.copy()
        shared = min(above.size, theirs.size)
        above[:shared] &= ~theirs[:shared]
        return MaxVector._from_bit_array(above, 0, _popcount(above))

    def top_index(self) -> int:
        """The highest index holding a value (-1 for none): O(1) for a sparse vector."""
        if self._dense is None:
            packed = self._packed
            count = (len(packed) - 1) // (4 + packed[0])
            top = int.from_bytes(packed[4 * count - 3 : 4 * count + 1], "little") if count else -1
            pending = self._pending
            return top if pending is None or not pending.order else max(top, pending.order[-1])
        indices, _ = self.pairs()
        return int(indices[-1]) if indices.size else -1

    def count_in(self, low: int, high: int) -> int:
        """How many indices ``low <= i < high`` hold a non-zero value, without listing them
        (a filled 1M-capacity Bloom filter's ~5 M set bits are counted, not enumerated)."""
        low, high = max(low, 0), min(high, INDEX_LIMIT)
        if low >= high:
            return 0
        self._settle()  # (first: a fold may turn it dense)
        if self._dense is None:
            indices, _ = self._packed_arrays()
            first, end = np.searchsorted(indices, [low, high]).tolist()
            return int(end - first)
        high = min(high, self.dense_slots)
        if low >= high:
            return 0
        if not self._is_bits:
            return int(np.count_nonzero(self._dense[low:high]))
        # Counted in place in C: a Bloom filter's fill check (every third BF.ADD to a
        # 1k-capacity filter) took ~2 us as an int's popcount of the range's bytes.
        return _sparse.count_bits(self._dense, low, high)

    def window(self, low: int, high: int) -> MaxVector:
        """The pairs at indices ``low <= i < high`` (reading only that range of the vector)."""
        if self._dense is not None and self._is_bits:
            low, high = max(low, 0), min(high, self.dense_slots)
            if low >= high:
                return MaxVector()
            part = self._dense[low // 8 : -(-high // 8)]
            found = _bit_indices(part, _popcount(part)) + np.uint32(low - low % 8)
            found = found[(found >= low) & (found < high)]
            return MaxVector._from_sorted(found, np.ones(found.size, dtype=np.uint8))
        if self._dense is not None:
            low = max(low, 0)
            dense = self._slot_values()
            part = dense[low : max(min(high, dense.size), low)]
            nonzero = np.flatnonzero(part)
            return MaxVector._from_sorted((nonzero + low).astype(INDEX_DTYPE), part[nonzero])
        indices, values = self._packed_arrays()
        first, end = (
            self._packed_position(min(max(bound, 0), INDEX_LIMIT)) for bound in (low, high)
        )
        held = MaxVector._from_sorted(indices[first:end], values[first:end])
        pending = self._pending
        if pending is not None:  # the overlay's indices in the window, found by bisection
            order = pending.order
            written = order[bisect.bisect_left(order, low) : bisect.bisect_left(order, high)]
            if written:
                held.merge_pairs(written, [pending[i] for i in written])
        return held

    def window_items(self, low: int, high: int) -> list[tuple[int, int]]:
        """:meth:`window`'s pairs as Python ints, in no particular order: a sparse vector's
        searched in C, the overlay's written on top without a fold (a cuckoo filter reads a
        bucket of a big slice at each CF.ADD: a window vector cost ~5 us)."""
        if self._dense is not None:
            return self.window(low, high).items()
        low, high = min(max(low, 0), INDEX_LIMIT), min(max(high, 0), INDEX_LIMIT)
        found = _sparse.window(self._packed, low, high)
        pending = self._pending
        if pending is None:
            return found
        order = pending.order
        written = order[bisect.bisect_left(order, low) : bisect.bisect_left(order, high)]
        if not written:
            return found
        held = dict(found)
        held.update((index, pending[index]) for index in written)
        return list(held.items())

    def to_dense(self, size: int) -> npt.NDArray[np.unsignedinteger]:
        """Slots ``0..size-1`` as a new array (indices at or beyond ``size`` are ignored)."""
        self._settle()  # (first: a fold may turn it dense)
        if self._dense is not None:
            out = np.zeros(size, dtype=self._dense.dtype)
            if self._is_bits:
                held = np.unpackbits(self._dense[: -(-size // 8)], bitorder="little")
                n = min(size, held.size)
                out[:n] = held[:n]
                return out
            dense = self._slot_values()
            n = min(size, dense.size)
            out[:n] = dense[:n]
            return out
        indices, values = self._packed_arrays()
        out = np.zeros(size, dtype=values.dtype)
        keep = indices < size
        out[indices[keep]] = values[keep]
        return out

    def nbytes(self) -> int:
        """Payload bytes held (not counting the Python object headers)."""
        if self._dense is None:  # (sparse first: asked of every slice at every write)
            pending = self._pending
            if pending is None:
                return len(self._packed)
            return len(self._packed) + _PENDING_PAIR_BYTES * len(pending)
        if self._packed is _SIX:  # (a byte per slot, as the codec writes it: the key cap's measure)
            return self.dense_slots
        return int(self._dense.nbytes)  # (the empty packed form is one shared object)

    def memory_bytes(self) -> int:
        """Bytes this vector's objects occupy, headers included (MEMORY USAGE's estimate)."""
        held = self._dense if self._dense is not None else self._packed
        pending = self._pending
        overlay = 0 if pending is None else sys.getsizeof(pending) + 32 * len(pending)
        return sys.getsizeof(self) + sys.getsizeof(held) + overlay

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MaxVector):
            return NotImplemented
        a_idx, a_val = self.pairs()
        b_idx, b_val = other.pairs()
        return bool(np.array_equal(a_idx, b_idx) and np.array_equal(a_val, b_val))

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        shown = self.items()[:8]
        more = "" if len(self) <= 8 else f", ... ({len(self)} pairs)"
        return f"MaxVector({dict(shown)}{more})"

    # -- growing --------------------------------------------------------------------------------

    def merge(self, other: MaxVector) -> MaxVector:
        """Element-wise max with ``other``; returns the delta (the pairs that grew)."""
        return self.merge_vector_tracking(other)[0]

    def merge_vector_tracking(self, other: MaxVector) -> tuple[MaxVector, MaxVector]:
        """Merge another vector; returns ``(delta, previous)`` (see :meth:`merge_tracking`).

        A small ``other`` (one client write) takes the pure-Python few-pairs paths.
        """
        if self._packed is _SIX:
            incoming = other._dense
            if incoming is None:
                return self._merge_vector_tracking(other)  # (pairs: the paths below keep six bits)
            mine = self._dense
            assert mine is not None
            if other._packed is _SIX and not _sixbit.rises(mine, incoming):
                return MaxVector(), MaxVector()  # (nothing rises: no array unpacked)
        return self._keeping_form(self._merge_vector_tracking, other)

    def _keeping_form(
        self, merge: Callable[..., tuple[MaxVector, MaxVector]], *args: object
    ) -> tuple[MaxVector, MaxVector]:
        """``merge(*args)`` (a general merge path, which knows one byte per slot) on a vector
        held as six-bit slots (unpacked for it, packed again after) or a sparse one (which
        may become dense: then packed if it can be). Other forms run it as they are."""
        six = self._packed is _SIX
        if not six and self._dense is not None:
            return merge(*args)
        packed = self._dense
        unpacked = None
        if six:
            assert packed is not None
            unpacked = _six_unpacked(packed)
            self._hold(unpacked)
        try:
            result = merge(*args)
        except BaseException:
            if six and self._dense is unpacked:
                self._dense, self._packed = packed, _SIX
            raise
        if six and self._dense is unpacked and result[0].is_empty():
            self._dense, self._packed = packed, _SIX  # nothing rose: the packed form stands
            return result
        if six:
            assert packed is not None
            _forget(packed)
        if self._packed is _EMPTY:
            self._compact()
        return result

    def _merge_vector_tracking(self, other: MaxVector) -> tuple[MaxVector, MaxVector]:
        if self._dense is not None and other._dense is not None:
            merged = self._merge_dense_vector(other)
            if merged is not None:
                return merged
        if other._dense is None and other._pending is None:
            if self._dense is None:
                lists = other._packed_lists(_FEW_LOOKUPS)
                if lists is not None:  # (a delta of a few writes into packed pairs: one C pass)
                    return self._merge_pairs_tracking(*lists)
            else:
                lists = other._packed_lists(_FEW_DENSE_PAIRS)
                if lists is not None:  # (a peer's delta of a few writes: in place, in C)
                    return self.merge_pairs_tracking(*lists)
        indices, values = other.pairs()
        if indices.size <= _FEW_PAIRS:
            return self.merge_pairs_tracking(indices, values)
        return self.merge_tracking(indices, values)

    def _merge_dense_vector(self, other: MaxVector) -> tuple[MaxVector, MaxVector] | None:
        """Dense into dense: one aligned compare and max over the arrays, not a gather of
        every incoming pair (a whole dense entry from a peer). None: the general path (the
        incoming array reaches so far out that this vector should go sparse)."""
        incoming = other._dense
        assert incoming is not None
        if other._packed is _SIX:
            incoming = _six_unpacked(incoming)
        if self._is_bits:
            if other._is_bits:
                return self._merge_bits_vector(incoming)
            if int(incoming.max()) <= 1:
                return self._merge_bits_vector(np.packbits(incoming, bitorder="little"))
            if self._widen() is None:
                return None  # (now packed pairs: the general path)
        elif other._is_bits:
            incoming = np.unpackbits(incoming, bitorder="little")
        dense = self._dense
        assert dense is not None
        if incoming.size > dense.size:
            if not self._dense_fits(incoming.size - 1, int(np.count_nonzero(incoming))):
                return None
            grown = np.zeros(incoming.size, dtype=dense.dtype)
            grown[: dense.size] = dense
            dense = self._dense = grown
        if incoming.dtype.itemsize > dense.dtype.itemsize:
            width = width_for(int(incoming.max()))
            if width > dense.dtype.itemsize:
                dense = self._dense = dense.astype(VALUE_DTYPES[width])
        mine = dense[: incoming.size]
        grew = np.greater(incoming, mine)
        grown_count = int(np.count_nonzero(grew))
        if not grown_count:
            return MaxVector(), MaxVector()
        _forget(dense)
        if _dense_is_smaller(incoming.size - 1, grown_count, incoming.dtype.itemsize):
            # Most of it grew (a first copy of a whole entry): the delta and the previous
            # values as arrays of their own, with no index arrays in between.
            delta = MaxVector.from_dense(
                np.where(grew, incoming, 0).astype(incoming.dtype, copy=False), owned=True
            )
            previous = MaxVector.from_dense(
                np.where(grew, mine, 0).astype(mine.dtype, copy=False), owned=True
            )
        else:
            delta_idx = np.flatnonzero(grew).astype(INDEX_DTYPE)
            delta = MaxVector._from_sorted(delta_idx, incoming.take(delta_idx))
            previous = _nonzero_pairs(delta_idx, mine.take(delta_idx))
        np.maximum(mine, incoming, out=mine)
        return delta, previous

    def merge_pairs(self, indices: npt.ArrayLike, values: npt.ArrayLike) -> MaxVector:
        """Element-wise max with arbitrary pairs (validated, duplicates allowed); returns delta.

        This is the sketches' bulk path: hash a batch, compute ``(index, value)`` arrays, merge.
        """
        return self.merge_pairs_tracking(indices, values)[0]

    def _merge_bits_vector(
        self, incoming: npt.NDArray[np.uint8]
    ) -> tuple[MaxVector, MaxVector] | None:
        """Bits into bits: one OR (None: the general path, as for :meth:`_merge_dense_vector`)."""
        bits = self._dense
        assert bits is not None
        if incoming.size > bits.size:
            if not self._dense_fits(8 * incoming.size - 1, _popcount(incoming)):
                return None
            grown = np.zeros(incoming.size, dtype=np.uint8)
            grown[: bits.size] = bits
            bits = grown
            self._hold(bits, bits=True)
        mine = bits[: incoming.size]
        grew = incoming & ~mine
        count = _popcount(grew)
        if not count:
            return MaxVector(), MaxVector()
        _forget(bits)
        np.bitwise_or(mine, incoming, out=mine)
        # (a bit rises from 0 to 1 only: the previous values of the delta are all absent)
        return MaxVector._from_bit_array(grew, 0, count), MaxVector()

    def _merge_pairs_into_bits(
        self, indices: npt.ArrayLike, values: npt.ArrayLike
    ) -> tuple[MaxVector, MaxVector] | None:
        """Pairs as arrays into bits: gathered, compared and set without sorting unless a bit
        rose. None: not for this path (a value above 1 widens the vector first)."""
        if not (
            isinstance(indices, np.ndarray)
            and isinstance(values, np.ndarray)
            and indices.dtype.kind == "u"
            and values.dtype.kind == "u"
            and indices.ndim == 1
            and indices.shape == values.shape
            and indices.size
        ):
            return None
        if int(values.max()) > 1:
            self._widen()
            return None
        if int(indices.max()) >= self.dense_slots:
            return None
        return self._set_unsorted_bits(cast("IndexArray", indices), cast("ValueArray", values))

    def _set_unsorted_bits(
        self, indices: IndexArray, values: ValueArray
    ) -> tuple[MaxVector, MaxVector]:
        """Valid pairs with values 0 or 1, every index inside the bitset, in any order."""
        bits = self._dense
        assert bits is not None
        masks = _bit_masks(indices)
        unset = (bits.take(indices >> 3) & masks) == 0
        (grown,) = (unset & (values != 0)).nonzero()
        if not grown.size:
            return MaxVector(), MaxVector()
        grown_idx = indices.take(grown)
        ordered = np.sort(grown_idx)
        first = np.empty(ordered.size, dtype=bool)
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        delta_idx = ordered.compress(first)
        _forget(bits)
        _set_bits(bits, grown_idx)
        return MaxVector._from_sorted(
            delta_idx, np.ones(delta_idx.size, dtype=np.uint8)
        ), MaxVector()

    @classmethod
    def grow_packed(
        cls, packed: bytes, indices: list[int], values: list[int]
    ) -> tuple[bytes | MaxVector, bytes | None, bytes | None] | None:
        """A few pairs merged by element-wise max into packed sparse pairs held as bytes (an
        entry's sparse shared slice: a PFADD, BF.ADD or CMS.INCRBY of a small key), with no
        vector built around them: ``(what to hold, the delta's packed pairs, the previous
        values' packed pairs)``. What to hold is the new bytes, or the vector they became
        when a dense form is smaller; the delta is None when nothing rose (then the bytes are
        ``packed`` itself), the previous values None when none were held. None: not for this
        path (big pairs, many of them, an overlay's size): :meth:`merge_pairs_tracking`."""
        if len(packed) >= _PENDING_FROM_BYTES:
            return None
        merged = _sparse.merge_few(packed, indices, values)
        if merged is None:
            return None
        after, delta, previous = merged
        if after is None or delta is None:
            return packed, None, None
        vector = cls.of_packed(after)
        vector._maybe_densify()
        if vector._dense is None:
            return after, delta, previous
        vector._compact()  # (turned dense: six bits if it can, as merge_pairs_tracking does)
        return vector, delta, previous

    def merge_pairs_tracking(
        self, indices: npt.ArrayLike, values: npt.ArrayLike
    ) -> tuple[MaxVector, MaxVector]:
        """:meth:`merge_pairs` that also returns the previous values (see merge_tracking).

        A handful of pairs as Python lists (one client write) never touches numpy: merged in C
        into a small sparse vector's bytes (an INCR, a count-min cell of a small key) or in
        place into a dense one's bits, six-bit slots or array (a BF.ADD, a PFADD, a count-min
        item of a big key).
        """
        packed = self._packed
        if (  # a few pairs as unsigned arrays (a BF.MADD's bits): as Python ints, for C
            isinstance(indices, np.ndarray)
            and isinstance(values, np.ndarray)
            and indices.ndim == 1
            and indices.shape == values.shape
            and indices.size <= _FEW_DENSE_PAIRS
            and indices.dtype.kind == "u"
            and values.dtype.kind == "u"
        ):
            indices, values = indices.tolist(), values.tolist()
        if isinstance(indices, list) and isinstance(values, list):
            raised = self.grow_few_packed(indices, values)
            if raised is not None:
                delta, previous = raised
                if delta is None:
                    return MaxVector(), MaxVector()
                before = MaxVector() if previous is None else MaxVector.of_packed(previous)
                return MaxVector.of_packed(delta), before
        if packed is _SIX:
            few = self._merge_few_into_six(indices, values)
            if few is None:
                few = self._merge_run_into_six(indices, values)
            if few is not None:
                return few
        return self._keeping_form(self._merge_pairs_tracking, indices, values)

    def grow_few_packed(
        self, indices: list[int], values: list[int]
    ) -> tuple[bytes | None, bytes | None] | None:
        """A few pairs merged in C into a sparse vector's bytes or in place into a dense one
        (bits, six-bit slots or array), reporting what rose as packed pairs: ``(the delta,
        the previous values)``, each None when empty (no delta: nothing rose). None: not for
        this path (an overlay, a big sparse vector, a slot beyond the array, a value too wide
        for its form): :meth:`merge_pairs_tracking`. A client write's path, with no vector
        built for what rose: the keyspace hashes the bytes as they are."""
        packed = self._packed
        dense = self._dense
        if dense is None:
            if not self._copies(len(indices)):
                if len(indices) > _FEW_PAIRS or len(indices) > self._overlay_takes():
                    return None
                # The overlay's path, as the general one takes it, with no vectors built.
                grown, before = self._raise_pending(_few_wanted(indices, values))
                return _pack_few(grown) if grown else None, _pack_few(before) if before else None
            merged = _sparse.merge_few(packed, indices, values)  # (None: not for C)
            if merged is None:
                return None
            after, delta, previous = merged
            if after is None or delta is None:
                return None, None
            self._packed = after
            if len(after) != len(packed):  # (same length: the same pairs, width and top
                self._maybe_densify()  # index, so the same answer as when they were made)
                if self._packed is _EMPTY:  # (turned dense: six bits if it can)
                    self._compact()
            return delta, previous
        if not _LITTLE_ENDIAN:
            return None
        form = _DENSE_FORMS.get(packed, dense.dtype.itemsize)
        raised = _sparse.merge_few_dense(dense, form, indices, values)
        if raised is None:  # (beyond the array or too wide for its form)
            return None
        if raised[0] is not None:
            _forget(dense)
        return raised

    def _merge_run_into_six(
        self, indices: npt.ArrayLike, values: npt.ArrayLike
    ) -> tuple[MaxVector, MaxVector] | None:
        """More pairs than one C call takes (a pipelined run of CMS.INCRBY into a big sketch
        whose cells still fit six bits) set in place, 64 distinct slots per C call: the
        general path unpacks every slot and packs them again (a 20000x7 sketch: 140,000 slots
        for a run's ~100). None: not for this path (many pairs against the slots, a value
        above 63, an index beyond them, not little-endian)."""
        dense = self._dense
        assert dense is not None
        size = (
            indices.size
            if isinstance(indices, np.ndarray)
            else len(indices)
            if isinstance(indices, list)
            else 0
        )  # (before any list is made: a big array is not for this path)
        if sys.byteorder != "little" or not size or size * _SIX_RUN_SHARE > self.dense_slots:
            return None
        as_lists = _int_lists(indices, values)
        if as_lists is None:
            return None
        slots = self.dense_slots
        wanted = _few_wanted(*as_lists)  # (distinct slots: chunks never overlap)
        if not wanted:
            return MaxVector(), MaxVector()
        if max(wanted) >= slots or max(wanted.values()) > _SIX_MAX:
            return None  # (checked for all first: a chunk refused after others ran would
            # leave their rises out of the delta)
        order = sorted(wanted)
        deltas: list[bytes] = []
        previous: list[bytes] = []
        for start in range(0, len(order), _FEW_DENSE_PAIRS):  # bounded by the run's pairs
            chunk = order[start : start + _FEW_DENSE_PAIRS]
            raised = _sparse.merge_few_dense(dense, 6, chunk, [wanted[i] for i in chunk])
            assert raised is not None  # (every index and value was checked above)
            delta, before = raised
            if delta is not None:
                deltas.append(delta)
            if before is not None:
                previous.append(before)
        if not deltas:
            return MaxVector(), MaxVector()
        _forget(dense)
        return _ascending_runs(deltas), _ascending_runs(previous)

    def _merge_few_into_six(
        self, indices: npt.ArrayLike, values: npt.ArrayLike
    ) -> tuple[MaxVector, MaxVector] | None:
        """A handful of pairs (one PFADD) set in the six-bit slots in place, one C call per
        register. None: not for this path (many pairs, a value above 63, an index beyond)."""
        as_lists = _int_lists(indices, values)
        if as_lists is None or len(as_lists[0]) > _FEW_PAIRS:
            return None
        wanted = _few_wanted(*as_lists)
        if not wanted:
            return MaxVector(), MaxVector()
        packed = self._dense
        assert packed is not None
        if max(wanted) >= self.dense_slots or max(wanted.values()) > _SIX_MAX:
            return None
        grown: dict[int, int] = {}
        before: dict[int, int] = {}
        for index, value in wanted.items():
            current = _sixbit.get(packed, index)
            if value > current:
                if not grown:
                    _forget(packed)
                _sixbit.raise_to(packed, index, value)
                before[index] = current
                grown[index] = value
        if not grown:
            return MaxVector(), MaxVector()
        return MaxVector._from_few(grown), MaxVector._from_few(before)

    def _merge_pairs_tracking(
        self, indices: npt.ArrayLike, values: npt.ArrayLike
    ) -> tuple[MaxVector, MaxVector]:
        if isinstance(indices, list) and isinstance(values, list) and len(indices) <= _FEW_PAIRS:
            few = self._merge_few(_few_wanted(indices, values))
            if few is not None:
                return few
        if isinstance(indices, list) and isinstance(values, list) and self._dense is None:
            if not self._copies(len(indices)) and len(indices) <= self._overlay_takes():
                return self._merge_few_pending(_few_wanted(indices, values))
            self._settle()  # (a fold may turn it dense: then the paths below)
            merged = (
                None
                if self._dense is not None
                else _sparse.merge_few(self._packed, indices, values)
            )
            if merged is not None:
                return self._took_packed(*merged)
        dense = self._dense
        if dense is not None and self._packed is _BITS:
            if isinstance(indices, list) and isinstance(values, list):
                if len(indices) <= _FEW_BITS:  # (one BF.ADD into a chain of tight sub-filters)
                    few = self._merge_few(_few_wanted(indices, values))
                    if few is not None:
                        return few
            elif isinstance(indices, np.ndarray) and len(indices) <= _FEW_PAIRS:  # (BF.ADD)
                few = self._merge_few(_few_wanted(indices.tolist(), np.asarray(values).tolist()))
                if few is not None:
                    return few
            else:
                bits = self._merge_pairs_into_bits(indices, values)
                if bits is not None:
                    return bits
            dense = self._dense
        if (
            dense is not None
            and self._packed is not _BITS
            and _fits_dense_unchecked(dense, indices, values)
        ):
            if len(indices) <= _FEW_PAIRS:  # type: ignore[arg-type]  # an ndarray here
                wanted = _few_wanted(np.asarray(indices).tolist(), np.asarray(values).tolist())
                return self._merge_few_into_dense(wanted)
            return self._merge_unsorted_into_dense(
                cast("IndexArray", indices), cast("ValueArray", values)
            )
        if dense is None and _small_unsigned(indices, values):
            wanted = _few_wanted(
                cast("IndexArray", indices).tolist(), cast("ValueArray", values).tolist()
            )
            few = self._merge_few_into_sparse(wanted)
            if few is not None:
                return few
        idx, val = normalize_pairs(indices, values)
        if self._dense is None and self._takes_pending() and idx.size <= self._overlay_takes():
            # (a pipelined run's pairs into a large sparse vector: copied in C while the bytes
            # are few per pair, else its overlay, not a copy)
            if len(self._packed) <= _copy_bytes_max(idx.size):
                run = self._merge_run_into_packed(idx.tolist(), val.tolist())
                if run is not None:
                    return run
            return self._merge_few_pending(dict(zip(idx.tolist(), val.tolist(), strict=True)))
        return self.merge_tracking(idx, val)

    def _merge_run_into_packed(
        self, indices: list[int], values: list[int]
    ) -> tuple[MaxVector, MaxVector] | None:
        """Sorted, unique, validated pairs (a pipelined run's) into the packed pairs, 64 at a
        time in C, each a copy of the bytes: cheaper than the overlay's Python per pair while
        the bytes are at most :func:`_copy_bytes_max`. None (nothing changed): not for this
        path."""
        self._settle()
        packed = self._packed
        if self._dense is not None:
            return None  # (the overlay's fold turned it dense)
        deltas: list[bytes] = []
        previous: list[bytes] = []
        for start in range(0, len(indices), _FEW_DENSE_PAIRS):  # bounded by the run's pairs
            end = start + _FEW_DENSE_PAIRS
            merged = _sparse.merge_few(packed, indices[start:end], values[start:end])
            if merged is None:
                return None  # (nothing held yet: the bytes are only replaced below)
            after, delta, before = merged
            if after is not None and delta is not None:
                packed = after
                deltas.append(delta)
            if before is not None:
                previous.append(before)
        if not deltas:
            return MaxVector(), MaxVector()
        self._packed = packed
        self._maybe_densify()
        return _ascending_runs(deltas), _ascending_runs(previous)

    def _took_packed(
        self, after: bytes | None, delta: bytes | None, previous: bytes | None
    ) -> tuple[MaxVector, MaxVector]:
        """Hold what ``_sparse.merge_few`` made (``after`` None: nothing rose)."""
        if after is None or delta is None:
            return MaxVector(), MaxVector()
        self._packed = after
        self._maybe_densify()
        before = MaxVector() if previous is None else MaxVector.of_packed(previous)
        return MaxVector.of_packed(delta), before

    def _merge_few(self, wanted: dict[int, int]) -> tuple[MaxVector, MaxVector] | None:
        """Validated few pairs into either representation; None: take the general path."""
        dense = self._dense
        if dense is None:
            return self._merge_few_into_sparse(wanted) if sys.byteorder == "little" else None
        if not wanted:
            return MaxVector(), MaxVector()
        if self._packed is _BITS:
            if max(wanted) >= 8 * dense.size:
                return None
            if max(wanted.values()) <= 1:
                return self._merge_few_into_bits(wanted)
            widened = self._widen()
            if widened is None:
                return None  # (now packed pairs: the general path)
            dense = widened
        if max(wanted) >= dense.size or max(wanted.values()) >= 1 << (8 * dense.dtype.itemsize):
            return None
        return self._merge_few_into_dense(wanted)

    def _merge_few_into_bits(self, wanted: dict[int, int]) -> tuple[MaxVector, MaxVector]:
        """A handful of ones (a single BF.ADD's bits), every index inside the bitset."""
        bits = self._dense
        assert bits is not None
        grown: dict[int, int] = {}
        for index in wanted:
            at, mask = index >> 3, 1 << (index & 7)
            held = int(bits[at])
            if not held & mask:
                if not grown:
                    _forget(bits)
                bits[at] = held | mask
                grown[index] = 1
        if not grown:
            return MaxVector(), MaxVector()
        return MaxVector._from_few(grown), MaxVector()

    def _merge_few_into_sparse(self, wanted: dict[int, int]) -> tuple[MaxVector, MaxVector] | None:
        """A handful of pairs into packed pairs: one register by byte slicing, more in C
        (``_sparse.merge_few``: one pass over the bytes, a big sparse vector copied once per
        write). A large sparse vector (past :meth:`_copies`) takes them in its overlay
        instead. None: the general path's (what the C merge leaves to it)."""
        if not self._copies(len(wanted)):
            return self._merge_few_pending(wanted)
        merged = _sparse.merge_few(self._packed, list(wanted), list(wanted.values()))
        return None if merged is None else self._took_packed(*merged)

    def _takes_pending(self) -> bool:
        """Whether a few pairs may go to the overlay (a large sparse vector, or one holding an
        overlay already) rather than the bytes."""
        return self._pending is not None or len(self._packed) >= _PENDING_FROM_BYTES

    def _copies(self, pairs: int) -> bool:
        """Whether a write of ``pairs`` pairs into this sparse vector copies its bytes (in C)
        rather than going to the overlay: no overlay held, and the bytes few for the pairs."""
        if self._pending is not None:
            return False
        size = len(self._packed)  # (below the fixed share, the commonest case: no more asked)
        return size < _COPY_BYTES_FIXED or size < _copy_bytes_max(pairs)

    def _overlay_takes(self) -> int:
        """The most pairs one write puts in the overlay of this (large, sparse) vector: what
        makes it fold (:meth:`_merge_few_pending`), so a write never costs more than a fold
        (a pipelined run of 16 BF.ADDs to a filling 1M-capacity filter is ~130 bits; as one
        bulk merge each run copied the whole ~1 MB of packed pairs)."""
        count = (len(self._packed) - 1) // (4 + self._packed[0])
        return min(max(count // _PENDING_FOLD_SHARE, _PENDING_FOLD_MIN), _PENDING_FOLD_MAX)

    def _merge_few_pending(self, wanted: dict[int, int]) -> tuple[MaxVector, MaxVector]:
        """Validated pairs (at most :meth:`_overlay_takes`) into the overlay of a large sparse
        vector: one C search of the bytes for all of them, a dict update and a bisect per pair,
        no copy of the bytes; folded once the overlay has grown (any width)."""
        grown, before = self._raise_pending(wanted)
        if not grown:
            return MaxVector(), MaxVector()
        return MaxVector._from_few(grown), MaxVector._from_few(before)

    def _raise_pending(self, wanted: dict[int, int]) -> tuple[dict[int, int], dict[int, int]]:
        """:meth:`_merge_few_pending`'s pairs that rose and their previous values (non-zero
        ones), as dicts."""
        pending = self._pending
        if pending is None:
            pending = self._pending = _Overlay()
        grown: dict[int, int] = {}
        before: dict[int, int] = {}
        indices = list(wanted)
        stored = _sparse.values(self._packed, indices)
        for index, packed_value in zip(indices, stored, strict=True):
            value = wanted[index]
            current = pending.get(index, packed_value)  # (an overlay value is above the bytes')
            if value > current:
                grown[index] = value
                pending.top = max(pending.top, value)
                if index not in pending:
                    bisect.insort(pending.order, index)
                pending[index] = value
                if current:
                    before[index] = current
                else:
                    pending.added += 1
        if not pending:
            self._pending = None
        elif grown and len(pending) > self._overlay_takes():
            self._settle()
        return grown, before

    def _merge_few_into_dense(self, wanted: dict[int, int]) -> tuple[MaxVector, MaxVector]:
        """A handful of pairs (a single PFADD): Python ints beat numpy's per-call overhead."""
        dense = self._dense
        assert dense is not None
        grown: dict[int, int] = {}
        before: dict[int, int] = {}
        for index, value in wanted.items():
            current = int(dense[index])
            if value > current:
                if not grown:
                    _forget(dense)
                before[index] = current
                dense[index] = value
                grown[index] = value
        if not grown:
            return MaxVector(), MaxVector()
        return MaxVector._from_few(grown), MaxVector._from_few(before)

    @classmethod
    def join_packed(cls, packed: Sequence[bytes]) -> MaxVector:
        """The join of sparse vectors given by their packed pairs (:meth:`packed_pairs`).

        A flush joins a dirty key's deltas, one per client write since the last flush (a
        thousand or more for a hot key; a few for each of a thousand keys written a few times
        a flush), and a fold its stored delta rows: joined in C, one sort of every pair (the
        Python ints and struct it replaced cost ~40 us a key for five BF.ADDs' deltas into a
        windowed filter, a third of a node's CPU under BF.ADD over 1,000 such keys). A few
        pairs in all stay sparse, as a delta is; more are held dense when that is smaller,
        as :meth:`from_pairs` holds them.
        """
        joined, given = _sparse.join_packed(packed if type(packed) is list else list(packed))
        vector = cls.of_packed(_EMPTY if len(joined) == 1 else joined)
        if given > _FEW_JOINED:
            vector._maybe_densify()
            if vector._packed is _EMPTY:  # (turned dense: six bits if it can)
                vector._compact()
        return vector

    @classmethod
    def of_maxima(cls, pairs: dict[int, int]) -> MaxVector:
        """A delta's vector from pairs read out of valid vectors (indices and values in
        range; zeros dropped): packed with struct, no numpy. Sparse whatever the spread (a
        delta need not take the smaller form; merging it keeps the target's)."""
        return cls._from_few(pairs)

    @classmethod
    def _from_few(cls, pairs: dict[int, int]) -> MaxVector:
        """A sparse vector from a few validated pairs (zeros dropped), packed with struct."""
        vector = cls()
        vector._packed = _pack_few(pairs)
        return vector

    def _merge_unsorted_into_dense(
        self, indices: IndexArray, values: ValueArray
    ) -> tuple[MaxVector, MaxVector]:
        """The bulk path of sketches into a dense vector: no sorting unless something grew.

        ``indices`` may repeat and come in any order; they are all inside the array and the
        values fit its dtype (checked by the caller), so nothing needs validating.
        """
        dense = self._dense
        assert dense is not None
        # (take() and compress() skip the fancy-indexing machinery: about half the time.)
        (grown,) = np.greater(values, dense.take(indices)).nonzero()
        if not grown.size:
            return MaxVector(), MaxVector()
        grown_idx = indices.take(grown)
        # The grown indices, sorted and unique: a plain sort and a neighbour compare cost a
        # fraction of np.unique's overhead for the few hundred a batch grows at most.
        ordered = np.sort(grown_idx)
        first = np.empty(ordered.size, dtype=bool)
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        delta_idx = ordered.compress(first)
        previous = _nonzero_pairs(delta_idx, dense.take(delta_idx))
        _forget(dense)
        np.maximum.at(dense, grown_idx, values.take(grown).astype(dense.dtype, copy=False))
        return MaxVector._from_sorted(delta_idx, dense.take(delta_idx)), previous

    def merge_tracking(
        self, indices: IndexArray, values: npt.NDArray[np.unsignedinteger]
    ) -> tuple[MaxVector, MaxVector]:
        """Merge sorted, unique, non-zero pairs; returns ``(delta, previous)``.

        ``previous`` holds the old values of exactly the pairs in ``delta`` (zeros omitted):
        what an incremental content hash needs to update itself in O(delta).
        """
        return self._keeping_form(self._merge_tracking, indices, values)

    def _merge_tracking(
        self, indices: IndexArray, values: npt.NDArray[np.unsignedinteger]
    ) -> tuple[MaxVector, MaxVector]:
        self._settle()
        if indices.size == 0:
            return MaxVector(), MaxVector()
        if self._is_bits and int(values.max()) > 1:
            self._widen()
        if self._dense is not None and self._dense_fits(int(indices[-1]), indices.size):
            return self._merge_into_dense(indices, values)
        if self._dense is not None:  # an index too far out for the dense array: go sparse
            dense_idx, dense_val = self.pairs()
            self._packed = _pack(self.width, dense_idx, dense_val)
            self._dense = None
        if len(self._packed) == 1:  # empty: adopt the pairs as they are
            adopted = MaxVector._from_sorted(indices, values)
            self._packed, self._dense = adopted._packed, adopted._dense
            return adopted.copy(), MaxVector()
        mine_idx, mine_val = self._packed_arrays()
        pos = np.searchsorted(mine_idx, indices)
        clipped = np.minimum(pos, mine_idx.size - 1)
        present = mine_idx[clipped] == indices
        current = np.where(present, mine_val[clipped], 0)
        grew = values > current
        if not grew.any():
            return MaxVector(), MaxVector()
        delta_idx, delta_val = indices[grew], values[grew]
        previous = _nonzero_pairs(delta_idx, current[grew])
        width = max(self._packed[0], width_for(int(delta_val.max())))
        new_val = mine_val.astype(VALUE_DTYPES[width])
        update = grew & present
        new_val[pos[update]] = values[update]
        insert = grew & ~present
        new_idx: npt.NDArray[np.integer] = mine_idx
        if insert.any():
            new_idx = np.insert(mine_idx, pos[insert], indices[insert])
            new_val = np.insert(new_val, pos[insert], values[insert].astype(VALUE_DTYPES[width]))
        self._set_sorted(width, new_idx, new_val)
        return MaxVector._from_sorted(delta_idx, delta_val), previous

    def _set_sorted(
        self, width: int, indices: npt.NDArray[np.integer], values: npt.NDArray[np.integer]
    ) -> None:
        """Hold these sorted pairs, going dense at once when that is smaller (so a vector
        crossing the threshold never builds its large packed form just to drop it)."""
        top = int(indices[-1])
        bits = _dense_is_smaller(top, indices.size, width, bits=True) and _all_bits(width, values)
        if bits or _dense_is_smaller(top, indices.size, width):
            self._hold(_dense_array(indices, values, width, bits), bits=bits)
        else:
            self._packed = _pack(width, indices, values)

    def _dense_fits(self, top_index: int, incoming: int) -> bool:
        """Whether the dense array may grow to hold ``top_index`` and stay dense enough."""
        dense = self._dense
        assert dense is not None
        if top_index < self.dense_slots:
            return True
        pairs_max = len(self) + incoming
        return _dense_is_smaller(top_index, pairs_max, dense.dtype.itemsize, bits=self._is_bits)

    def _merge_into_dense(
        self, indices: IndexArray, values: npt.NDArray[np.unsignedinteger]
    ) -> tuple[MaxVector, MaxVector]:
        dense = self._dense
        assert dense is not None
        needed = int(indices[-1]) + 1
        if self._is_bits:  # (values are 0 or 1 here: merge_tracking widened it otherwise)
            if needed > 8 * dense.size:
                grown_bits = np.zeros(_dense_slots(needed - 1, bits=True) // 8, dtype=np.uint8)
                grown_bits[: dense.size] = dense
                self._hold(grown_bits, bits=True)
            return self._set_unsorted_bits(indices, values)
        if needed > dense.size:
            grown = np.zeros(_dense_slots(needed - 1), dtype=dense.dtype)
            grown[: dense.size] = dense
            dense = grown
        current = dense[indices]
        grew = values > current
        if not grew.any():
            self._dense = dense
            return MaxVector(), MaxVector()
        delta_idx, delta_val = indices[grew], values[grew]
        previous = _nonzero_pairs(delta_idx, current[grew])
        width = width_for(int(delta_val.max()))
        if width > dense.dtype.itemsize:
            dense = dense.astype(VALUE_DTYPES[width])
        _forget(dense)
        dense[delta_idx] = delta_val
        self._dense = dense
        return MaxVector._from_sorted(delta_idx, delta_val), previous

    def _maybe_densify(self) -> None:
        packed = self._packed
        pair_bytes = len(packed) - 1
        if _BITS_FAVOUR * pair_bytes < 1 + _DENSE_OVERHEAD_BYTES:
            return  # (a dense form takes the overhead and a byte: too big even as bits)
        width = packed[0]
        n = pair_bytes // (4 + width)
        if n == 0:
            return
        (top,) = _INDEX_AT.unpack_from(packed, 1 + 4 * (n - 1))
        if not _dense_is_smaller(top, n, width, bits=True):
            return  # (not even bits, favoured as they are, would do: the commonest case)
        if _dense_is_smaller(top, n, width):
            bits = width == 1 and packed.count(1, 1 + 4 * n) == n
        elif width == 1 and packed[-1] == 1 and packed[1 + 4 * n] == 1:
            # Only bits are small enough: the values must all be 1 (one C count over their
            # bytes, after the first and last: a big sparse HLL's write skips it 3 times in 4,
            # and after a search for a 2, memchr-fast: a count-min's cells counted twice).
            bits = packed.find(2, 1 + 4 * n) < 0 and packed.count(1, 1 + 4 * n) == n
            if not bits:
                return
        else:
            return
        indices, values = self._packed_arrays()
        self._hold(_dense_array(indices, values, width, bits), bits=bits)

    # -- splitting ------------------------------------------------------------------------------

    def split(self, pairs_max: int) -> list[MaxVector]:
        """Chunks of at most ``pairs_max`` pairs each; every chunk is a valid delta on its own."""
        if pairs_max < 1:
            raise BoundsError("a chunk must hold at least one pair")
        indices, values = self.pairs()
        return [
            MaxVector._from_sorted(
                indices[start : start + pairs_max], values[start : start + pairs_max]
            )
            for start in range(0, indices.size, pairs_max)
        ]
