"""The t-digest view: RedisBloom's TDIGEST.* over per-origin, versioned slices.

A t-digest's centroids move as values arrive, so no slot of it only grows: it cannot be a
plain max-vector. Here each node keeps **its own digest in its own slice** (the schema is
additive), and every value in that slice carries the slice's *version* in its high bits::

    slot value = version << 32 | payload (32 bits)

A node that rewrites its digest does so under version ``v + 1``: the element-wise max keeps,
at every index, the newest version's value, and a reader uses only the indices that carry the
slice's newest version (the header's). So the per-origin max-merge is "last writer wins per
origin": commutative, associative, idempotent, and a slice only ever changes by its one
writer. Within one version no slot is written twice with different payloads, so a slice
delivered in any pieces, in any order, any number of times, reads the same once complete (an
incomplete newer version reads as what of it has arrived).

Layout of one slice (``c`` the compression; doubles and weights as two 32-bit halves):

=================================  ==============================================================
slots                              what
=================================  ==============================================================
0                                  header: ``version << 32 | centroid count``
1                                  ``version << 32 | buffered values`` (grows within a version)
2, 3 / 4, 5                        the compressed part's min / max (IEEE-754 bits, hi / lo)
``8 + 4 i`` .. ``+ 3``             centroid ``i``: mean (hi, lo), weight (hi, lo; an integer)
``buffer_base + 2 j``, ``+ 1``     buffered value ``j`` (IEEE-754 bits, hi / lo)
=================================  ==============================================================

**Writing costs what changed**: TDIGEST.ADD appends its values to the slice's buffer (two
slots a value, plus slot 1) under the current version. When the buffer would overflow
(``5 c`` values), the node compresses digest and buffer into a new digest and publishes it
as version ``v + 1`` (about ``4 c`` slots once per ``5 c`` values); the old buffer's slots
keep version ``v`` and read as empty.

**Reading** gathers every origin's centroids and buffered values (origins in id order), sorts
them by ``(mean, weight)`` and compresses them with the key's compression: the same multiset
gives the same digest on every node. Quantiles, CDF, ranks and trimmed means then follow
RedisBloom's ``tdigest.c`` (Dunning's MergingDigest) on that digest.

**Retired slices** (a departed node's slice, folded, see :mod:`hearsay.engine.retire`): the
slices of departed origins become one slice ``~t`` in the same layout, version 1, no buffer,
whose centroids are **cells** of a fixed grid over the doubles (each cell a run of values
sharing their sign, exponent and top mantissa bits: ``2**-9`` of a value's magnitude wide at
level 0, twice that per level), each at its cell's middle with the summed weight of every
centroid and buffered value in it, plus the exact min and max, and the level in slot 6. A
cell's middle falls in the cell, and summing integer weights per cell is exact, so a fold of a
fold equals the fold of the raw slices (associative: nodes folding at different times write
the same ``~t``). The level is the finest at which the cells fit the slice's slots (``(size -
8) / 4``, 860 at compression 100): coarsening commutes with summing, and more data never needs
a finer level, so that choice is associative too. Reads are unchanged but for the departed
data's values, each moved to its cell's middle (within ``2**-10`` of it at level 0; a
lognormal's 11 octaves fit 860 cells at level 3, within 0.8%).

**Compression** uses the arcsine scale ``k(q) = c / pi * asin(2 q - 1)``: a centroid spans at
most one unit of ``k``, so there are at most about ``c`` centroids, singletons at the tails.
Centroids are bucketed by the ``k`` of their centre (vectorised, deterministic).
"""

from __future__ import annotations

import bisect
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.retired import retired_time
from hearsay.lattice.vector import MaxVector
from hearsay.sketch import _tdigest
from hearsay.sketch.schemas import KIND_TDIGEST, expect_schema
from hearsay.sketch.schemas import tdigest as tdigest_schema
from hearsay.sketch.slots import Pairs, Slices

__all__ = ["Digest", "Reads", "TDigest", "TDigestInfo", "buffer_values", "centroids_max"]

VERSION_MAX: Final = (1 << 31) - 1
STORED_PAIR_BYTES: Final = 12
"""TDIGEST.INFO's memory usage counts the stored pairs at a packed pair's 12 bytes (a uint32
index and a value): a figure of the content, so every node holding it reports the same (the
in-memory representation, dense or sparse, differs between nodes)."""
_LOW32: Final = np.uint64(0xFFFFFFFF)
_HEADER: Final = 0
_BUFFERED: Final = 1
_HEADER_AND_COUNT: Final = [_HEADER, _BUFFERED]
"""Both read at each TDIGEST.ADD, in one C call (never changed)."""
_MIN: Final = 2
_MAX: Final = 4
_LEVEL: Final = 6
"""A retired slice's grid level (version-tagged; a live slice leaves slots 6 and 7 unused)."""
_CENTROIDS: Final = 8
CELL_MANTISSA_BITS: Final = 9
"""Mantissa bits a retired slice's cells keep at level 0 (each level keeps one fewer)."""
LEVEL_MAX: Final = 63 - (52 - CELL_MANTISSA_BITS)
"""The coarsest level: one cell per sign."""
_SIGN: Final = np.uint64(1 << 63)


_DOUBLE: Final = struct.Struct("<d")
_DOUBLE_BITS: Final = struct.Struct("<Q")


def centroids_max(compression: int) -> int:
    """Slots reserved for centroids: RedisBloom's capacity ``6 c + 10`` (a digest holds fewer)."""
    return 6 * compression + 10


def buffer_values(compression: int) -> int:
    """Values a slice buffers before its digest is compressed again."""
    return 5 * compression


@dataclass(frozen=True, slots=True)
class Digest:
    """A compressed digest: centroids sorted by mean, integer weights, exact min and max."""

    means: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    minimum: float
    maximum: float

    @classmethod
    def empty(cls) -> Digest:
        none = np.empty(0, np.float64)
        return cls(none, none, math.inf, -math.inf)

    @property
    def total(self) -> float:
        return float(self.weights.sum()) if self.weights.size else 0.0

    def __len__(self) -> int:
        return int(self.means.size)


@dataclass(frozen=True, slots=True)
class TDigestInfo:
    """TDIGEST.INFO's fields (merged: compressed centroids; unmerged: buffered values)."""

    compression: int
    capacity: int
    merged_nodes: int
    unmerged_nodes: int
    merged_weight: int
    unmerged_weight: int
    total_compressions: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class _Slice:
    """One origin's slice, decoded: its version, digest and buffered values."""

    version: int
    digest: Digest
    buffered: npt.NDArray[np.float64]


_EMPTY_SLICE: Final = _Slice(0, Digest.empty(), np.empty(0, np.float64))


def _split(bits: npt.NDArray[np.uint64], version: int) -> npt.NDArray[np.uint64]:
    """``(hi, lo)`` slot values of 64-bit payloads, tagged with ``version``, interleaved."""
    tag = np.uint64(version) << np.uint64(32)
    out = np.empty(bits.size * 2, np.uint64)
    out[0::2] = (bits >> np.uint64(32)) | tag
    out[1::2] = (bits & _LOW32) | tag
    return out


def _joined(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The 64-bit payloads of interleaved ``(hi, lo)`` slot values."""
    return ((values[0::2] & _LOW32) << np.uint64(32)) | (values[1::2] & _LOW32)


def _version_of(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    return values >> np.uint64(32)


def _doubles(bits: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    return bits.astype(np.uint64).view(np.float64)


def _bits(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)


def _order_keys(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
    """Unsigned keys in the doubles' order (negative values' bits flipped, others' sign set)."""
    bits = _bits(values)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _from_keys(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    return np.where(keys & _SIGN, keys & ~_SIGN, ~keys).astype(np.uint64).view(np.float64)


def _cell_shift(level: int) -> np.uint64:
    return np.uint64(52 - CELL_MANTISSA_BITS + level)


def cells_of(values: npt.NDArray[np.float64], level: int) -> npt.NDArray[np.uint64]:
    """Each value's cell at ``level``: its order key without the low mantissa bits."""
    return _order_keys(values) >> _cell_shift(level)


def cell_middles(cells: npt.NDArray[np.uint64], level: int) -> npt.NDArray[np.float64]:
    """A value inside each cell (its middle; the zero at its edge when it holds one, the finite
    end when the other is past the largest double): so ``cells_of`` gives the cells back."""
    shift = _cell_shift(level)
    low_keys = cells << shift
    low = _from_keys(low_keys)
    high = _from_keys(low_keys | ((np.uint64(1) << shift) - np.uint64(1)))
    with np.errstate(invalid="ignore", over="ignore"):
        middle = low / 2 + high / 2
    middle = np.where(np.isfinite(middle), middle, np.where(np.isfinite(low), low, high))
    middle = np.where(low == 0, low, middle)  # (+0.0: the first positive cell's edge)
    return np.where(high == 0, high, middle)  # (-0.0: the last negative cell's edge)


def compress(
    means: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    compression: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Centroids merged greedily in order of mean, each within its weight bound.

    The bound on a centroid of total weight ``N`` (``q`` the fraction of weight on its nearer
    side) is ``max(1, N * min(0.5 / c, 10 / c * q))``: a centroid holds at most ``0.5 / c``
    of the data in the middle and ever fewer values towards the tails, where the first and
    last few values stay single (the tails are what quantiles like 0.999 read). That is about
    ``2 c + 20 c / 10 * ln(N)`` centroids; past :func:`centroids_max`, the bound doubles until
    they fit. Sorting by ``(mean, weight)`` first makes the result a function of the multiset
    of centroids alone.
    """
    if means.size == 0:
        return means, weights
    order = np.lexsort((weights, means))
    means, weights = means[order], weights[order]
    means = np.ascontiguousarray(means, np.float64)
    weights = np.ascontiguousarray(weights, np.float64)
    total = math.fsum(weights.tolist())
    out_means, out_weights = np.empty_like(means), np.empty_like(weights)
    scale = 1.0
    while True:  # (bounded: each pass doubles the bound, and one centroid always fits)
        count = _tdigest.merge_greedy(
            means,
            weights,
            0.5 * scale / compression,
            10.0 * scale / compression,
            total,
            out_means,
            out_weights,
        )
        if count <= centroids_max(compression):
            break
        scale *= 2.0
    # A weighted mean of sorted values stays within its group: keep the order exact.
    return np.maximum.accumulate(out_means[:count]), out_weights[:count].copy()


class TDigest:
    """A stateless t-digest view of one compression (slots as in the module notes)."""

    __slots__ = ("_buffer_base", "_buffer_max", "_centroids_max", "_compression", "_schema")

    def __init__(self, compression: int) -> None:
        self._schema = tdigest_schema(compression)
        self._compression = int(compression)
        self._centroids_max = centroids_max(self._compression)
        self._buffer_base = _CENTROIDS + 4 * self._centroids_max
        self._buffer_max = buffer_values(self._compression)

    @classmethod
    def from_schema(cls, schema: Schema) -> TDigest:
        if schema.kind != KIND_TDIGEST or len(schema.params) != 1:
            raise SketchParameterError(f"not a t-digest schema: {schema}")
        view = cls(schema.params[0])
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def compression(self) -> int:
        return self._compression

    # -- one slice ----------------------------------------------------------------------------

    def _decode(self, vec: MaxVector, centroids_max: int | None = None) -> _Slice:
        """The newest version of one slice: only indices carrying it are read (at most
        ``centroids_max`` centroids: a retired slice's cells may use the buffer's slots)."""
        head = vec.values_at(np.array([_HEADER, _BUFFERED, _MIN, _MIN + 1, _MAX, _MAX + 1]))
        version = int(head[0] >> np.uint64(32))
        if version == 0:
            return _Slice(0, Digest.empty(), np.empty(0, np.float64))
        count = min(int(head[0] & _LOW32), centroids_max or self._centroids_max)
        tags = _version_of(head)
        digest = Digest.empty()
        if count:
            slots = _CENTROIDS + np.arange(4 * count)
            raw = vec.values_at(slots).reshape(count, 4)
            current = (_version_of(raw) == np.uint64(version)).all(axis=1)
            raw = raw[current].reshape(-1)
            means = _doubles(_joined(raw[_pairs_of(raw, 0)]))
            weights = _joined(raw[_pairs_of(raw, 2)]).astype(np.float64)
            good = np.isfinite(means) & (weights > 0)
            minimum = _doubles(_joined(head[2:4]))[0] if (tags[2:4] == version).all() else math.inf
            maximum = _doubles(_joined(head[4:6]))[0] if (tags[4:6] == version).all() else -math.inf
            means, weights = means[good], weights[good]
            if means.size:
                minimum = min(float(minimum), float(means.min()))
                maximum = max(float(maximum), float(means.max()))
                order = np.lexsort((weights, means))
                digest = Digest(means[order], weights[order], minimum, maximum)
        buffered = min(int(head[1] & _LOW32), self._buffer_max) if tags[1] == version else 0
        values = np.empty(0, np.float64)
        if buffered:
            raw = vec.values_at(self._buffer_base + np.arange(2 * buffered)).reshape(-1, 2)
            current = (_version_of(raw) == np.uint64(version)).all(axis=1)
            values = _doubles(_joined(raw[current].reshape(-1)))
            values = values[np.isfinite(values)]
        return _Slice(version, digest, values)

    def _publish(self, version: int, digest: Digest) -> Pairs:
        """The pairs of a whole new version of a slice holding ``digest`` and no buffer."""
        if version > VERSION_MAX:
            raise BoundsError("T-Digest: overflow detected")
        n = len(digest)
        tag = version << 32
        head_idx = [_HEADER, _BUFFERED]
        head_val = [tag | n, tag]
        extremes = np.array([digest.minimum, digest.maximum], np.float64)
        cells = np.empty((n, 2), np.uint64)
        cells[:, 0] = _bits(digest.means)
        cells[:, 1] = digest.weights.astype(np.uint64)
        indices = np.concatenate(
            [
                np.array(head_idx, np.uint32),
                np.arange(_MIN, _MAX + 2, dtype=np.uint32),
                np.arange(_CENTROIDS, _CENTROIDS + 4 * n, dtype=np.uint32),
            ]
        )
        values = np.concatenate(
            [
                np.array(head_val, np.uint64),
                _split(_bits(extremes), version),
                _split(cells.reshape(-1), version),
            ]
        )
        return indices, values

    def _compressed(self, part: _Slice, extra: npt.NDArray[np.float64]) -> Digest:
        """``part``'s digest, buffer and ``extra`` values compressed into one digest."""
        values = np.concatenate([part.buffered, extra])
        means = np.concatenate([part.digest.means, values])
        weights = np.concatenate([part.digest.weights, np.ones(values.size, np.float64)])
        merged_means, merged_weights = compress(means, weights, self._compression)
        minimum = min([part.digest.minimum, *([float(values.min())] if values.size else [])])
        maximum = max([part.digest.maximum, *([float(values.max())] if values.size else [])])
        return Digest(merged_means, merged_weights, minimum, maximum)

    # -- writing ------------------------------------------------------------------------------

    def add(
        self, slices: Slices, origin: str, calls: Sequence[Sequence[float]]
    ) -> tuple[list[int], list[int]]:
        """TDIGEST.ADD by ``origin``, one call after another: the pairs for its own slice.

        Values must be finite (the RESP layer refuses others). A call whose values fit the
        slice's buffer appends them (two slots a value, plus the count in slot 1: no numpy);
        one that would overflow it compresses digest, buffer and its values into a new
        version. A run of calls gives exactly the pairs of the calls in turn, so its state is
        theirs (the max keeps each index's newest version).
        """
        own = slices.get(origin)
        head, count = (0, 0) if own is None else own.values_of(_HEADER_AND_COUNT)
        version = head >> 32
        buffered = count & 0xFFFFFFFF if count >> 32 == version else 0
        indices: list[int] = []
        values: list[int] = []
        pending: list[float] = []  # appended by this run, not yet in ``own``
        state: _Slice | None = None
        if not version:  # a new slice: version 1 holds no centroids yet, only the buffer
            version = 1
            indices.append(_HEADER)
            values.append(1 << 32)
        for call in calls:
            if buffered + len(call) <= self._buffer_max:
                tag = version << 32
                at = self._buffer_base + 2 * buffered
                for value in call:
                    bits = _DOUBLE_BITS.unpack(_DOUBLE.pack(value))[0]
                    indices += (at, at + 1)
                    values += (tag | bits >> 32, tag | bits & 0xFFFFFFFF)
                    at += 2
                buffered += len(call)
                indices.append(_BUFFERED)
                values.append(tag | buffered)
                pending.extend(call)
                continue
            if state is None:
                state = self._decode(own) if own is not None else _EMPTY_SLICE
            extra = np.asarray(pending + list(call), dtype=np.float64)
            digest = self._compressed(state, extra)
            version += 1
            state = _Slice(version, digest, extra[:0])
            buffered = 0
            pending = []
            new_indices, new_values = self._publish(version, digest)
            indices += new_indices.tolist()
            values += new_values.tolist()
        return indices, values

    def replace(self, slices: Slices, origin: str, digest: Digest) -> Pairs:
        """``origin``'s slice rewritten to hold ``digest`` (its other values dropped)."""
        own = slices.get(origin)
        version = self._decode(own).version if own is not None else 0
        means, weights = compress(digest.means, digest.weights, self._compression)
        return self._publish(version + 1, Digest(means, weights, digest.minimum, digest.maximum))

    # -- reading ------------------------------------------------------------------------------

    def _parts(self, slices: Slices) -> list[_Slice]:
        """Every slice decoded, origins in id order (a retired one's cells as centroids)."""
        return [
            self._decode(vec, self._cells_max if retired_time(origin) is not None else None)
            for origin, vec in sorted(slices.items())
        ]

    @property
    def _cells_max(self) -> int:
        """The cells a retired slice holds at most: every slot past the header."""
        return (self._schema.size - _CENTROIDS) // 4

    def retired(self, departed: Sequence[MaxVector], older: MaxVector | None) -> MaxVector:
        """The retired slice of ``departed`` origins' slices and an ``older`` retired one
        (which holds departed origins folded before): every centroid and buffered value in a
        cell of the finest level that fits, as the module notes say. A function of the
        multiset of values and weights only, so folding it again with more gives what folding
        everything at once does."""
        parts = [self._decode(vec) for vec in departed]
        level = 0
        if older is not None:
            parts.append(self._decode(older, self._cells_max))
            tagged = int(older.values_at(np.array([_LEVEL]))[0])
            level = min(tagged & 0xFFFFFFFF, LEVEL_MAX) if tagged >> 32 == 1 else 0
        means = np.concatenate([p.digest.means for p in parts] + [p.buffered for p in parts])
        if not means.size:
            return MaxVector()
        weights = np.concatenate(
            [p.digest.weights for p in parts] + [np.ones(p.buffered.size) for p in parts]
        )
        # Bounded: at the coarsest level there are two cells (the signs), and every slice
        # has room for 18 at least.
        for level in range(level, LEVEL_MAX + 1):  # noqa: B020 - from the older slice's on
            cells, where = np.unique(cells_of(means, level), return_inverse=True)
            if cells.size <= self._cells_max:
                break
        summed = np.zeros(cells.size, np.float64)
        np.add.at(summed, where, weights)
        minimum = min(float(means.min()), *(p.digest.minimum for p in parts))
        maximum = max(float(means.max()), *(p.digest.maximum for p in parts))
        # The lowest cell holds the minimum and the highest the maximum: their middles clipped
        # to the extremes stay in their cells (and a read never finds a mean past them).
        middles = np.clip(cell_middles(cells, level), minimum, maximum)
        indices, values = self._publish(1, Digest(middles, summed, minimum, maximum))
        return MaxVector.from_pairs(
            np.append(indices, np.uint32(_LEVEL)), np.append(values, np.uint64(1 << 32 | level))
        )

    def digest(self, slices: Slices) -> Digest:
        """Every origin's centroids and buffered values, compressed into one digest."""
        parts = self._parts(slices)
        buffered = [p.buffered for p in parts]
        values = np.concatenate(buffered) if buffered else np.empty(0, np.float64)
        return self.combine([p.digest for p in parts], values)

    def combine(self, digests: Sequence[Digest], values: npt.NDArray[np.float64]) -> Digest:
        """Digests and single values compressed into one digest of this compression."""
        values = np.asarray(values, dtype=np.float64)
        means = np.concatenate([d.means for d in digests] + [values])
        weights = np.concatenate([d.weights for d in digests] + [np.ones(values.size)])
        if means.size == 0:
            return Digest.empty()
        merged_means, merged_weights = compress(means, weights, self._compression)
        minimum = min(float(means.min()), *(d.minimum for d in digests))
        maximum = max(float(means.max()), *(d.maximum for d in digests))
        return Digest(merged_means, merged_weights, minimum, maximum)

    def info(self, slices: Slices) -> TDigestInfo:
        """TDIGEST.INFO over every origin's slice (the compressions are the versions' sum)."""
        parts = self._parts(slices)
        merged = sum(len(p.digest) for p in parts)
        unmerged = sum(int(p.buffered.size) for p in parts)
        return TDigestInfo(
            compression=self._compression,
            capacity=self._centroids_max,
            merged_nodes=merged,
            unmerged_nodes=unmerged,
            merged_weight=int(sum(p.digest.total for p in parts)),
            unmerged_weight=unmerged,
            total_compressions=sum(max(p.version - 1, 0) for p in parts),
            memory_bytes=STORED_PAIR_BYTES * sum(len(vec) for vec in slices.values()),
        )


def _pairs_of(raw: npt.NDArray[np.uint64], first: int) -> npt.NDArray[np.intp]:
    """The flat positions of fields ``first`` and ``first + 1`` of each 4-slot centroid."""
    rows = np.arange(raw.size // 4) * 4 + first
    out = np.empty(rows.size * 2, np.intp)
    out[0::2] = rows
    out[1::2] = rows + 1
    return out


# -- queries on a digest (RedisBloom's tdigest.c, after Dunning's MergingDigest) ----------------


@dataclass(frozen=True, slots=True)
class Reads:
    """A digest's centroids as Python floats with their running sums, made once for the
    many reads of one call (TDIGEST.QUANTILE, CDF, RANK, BYRANK of ``n`` points): each read
    then searches the sums (O(log centroids)) instead of converting the arrays and walking the
    centroids (a TDIGEST.QUANTILE of 200,000 quantiles of a digest of 1,000 values took 4.5 s,
    22 us a quantile). Every read gives the very floats the walk gave: the sums are the walk's
    own additions, in its order (``tests/support/tdigest_reference.py`` keeps the walk)."""

    means: list[float]
    weights: list[float]
    total: float
    minimum: float
    maximum: float
    midpoints: list[float]
    """``weights[0] / 2``, then each next one plus ``(weights[i] + weights[i + 1]) / 2``: the
    weight below each centroid's middle, as the quantile walk adds it."""
    before: list[float]
    """The weight of the centroids before each one, as the CDF walk adds it."""

    @classmethod
    def of(cls, d: Digest) -> Reads:
        means: list[float] = d.means.tolist()
        weights: list[float] = d.weights.tolist()
        midpoints: list[float] = []
        before: list[float] = []
        if weights:
            so_far = weights[0] / 2
            midpoints.append(so_far)
            for i in range(len(weights) - 1):
                so_far += (weights[i] + weights[i + 1]) / 2
                midpoints.append(so_far)
            acc = 0.0
            for weight in weights:
                before.append(acc)
                acc += weight
        return cls(means, weights, d.total, d.minimum, d.maximum, midpoints, before)

    def quantile(self, q: float) -> float:
        """The estimated value at quantile ``q`` in [0, 1]; NaN when empty."""
        means, weights = self.means, self.weights
        n = len(means)
        if n == 0:
            return math.nan
        if n == 1:
            return means[0]
        total = self.total
        index = q * total
        if index < 1:
            return self.minimum
        if weights[0] > 1 and index < weights[0] / 2:
            return self.minimum + (index - 1) / (weights[0] / 2 - 1) * (means[0] - self.minimum)
        if index > total - 1:
            return self.maximum
        if weights[-1] > 1 and total - index <= weights[-1] / 2:
            if weights[-1] == 2:  # (then only index == total - 1 comes here: the last unit,
                return self.maximum  # whose interpolation would divide zero by zero)
            return self.maximum - (total - index - 1) / (weights[-1] / 2 - 1) * (
                self.maximum - means[-1]
            )
        return self._quantile_inside(index)

    def _quantile_inside(self, index: float) -> float:
        """:meth:`quantile` at ``index`` (a weight) between the outer centroids' halves."""
        means, weights, midpoints = self.means, self.weights, self.midpoints
        n = len(means)
        at = bisect.bisect_right(midpoints, index, 1, n)  # (the walk's first i whose next
        if at < n:  # middle lies past ``index``: i = at - 1)
            i = at - 1
            so_far, next_so_far = midpoints[i], midpoints[at]
            left_unit = 0.0
            if weights[i] == 1:
                if index - so_far < 0.5:
                    return means[i]
                left_unit = 0.5
            right_unit = 0.0
            if weights[i + 1] == 1:
                if next_so_far - index <= 0.5:
                    return means[i + 1]
                right_unit = 0.5
            z1 = index - so_far - left_unit
            z2 = next_so_far - index - right_unit
            return _weighted_average(means[i], z2, means[i + 1], z1)
        z1 = index - self.total - weights[-1] / 2
        z2 = weights[-1] / 2 - z1
        return _weighted_average(means[-1], z1, self.maximum, z2)

    def cdf(self, x: float) -> float:
        """The estimated fraction of values below ``x`` plus half of those equal to it."""
        means, weights = self.means, self.weights
        n = len(means)
        if n == 0:
            return math.nan
        total = self.total
        lo, hi = self.minimum, self.maximum
        if x < lo:
            return 0.0
        if x > hi:
            return 1.0
        if n == 1:
            width = hi - lo
            if width == 0:
                return 0.5
            return (x - lo) / width
        if x < means[0]:
            if means[0] - lo > 0:
                if x == lo:
                    return 0.5 / total
                return (1 + (x - lo) / (means[0] - lo) * (weights[0] / 2 - 1)) / total
            return 0.0
        if x > means[-1]:
            if hi - means[-1] > 0:
                if x == hi:
                    return 1 - 0.5 / total
                dq = (1 + (hi - x) / (hi - means[-1]) * (weights[-1] / 2 - 1)) / total
                return 1 - dq
            return 1.0
        return self._cdf_inside(x)

    def _cdf_inside(self, x: float) -> float:
        """:meth:`cdf` at ``x`` between the outer centroids' means (both included)."""
        means, weights, total = self.means, self.weights, self.total
        n = len(means)
        i = bisect.bisect_left(means, x)  # (the walk's first centroid at or past ``x``)
        if i < n - 1 and means[i] == x:
            so_far = self.before[i]
            dw = 0.0
            while i < n and means[i] == x:  # bounded by the centroids
                dw += weights[i]
                i += 1
            return (so_far + dw / 2) / total
        if means[i] == x:  # (the last centroid: the walk ends before it)
            return 1 - 0.5 / total
        i -= 1  # (means[i] < x < means[i + 1]: x >= means[0] here, so i >= 0)
        so_far = self.before[i]
        left_excluded = right_excluded = 0.0
        if weights[i] == 1:
            if weights[i + 1] == 1:
                return (so_far + 1) / total
            left_excluded = 0.5
        elif weights[i + 1] == 1:
            right_excluded = 0.5
        dw = (weights[i] + weights[i + 1]) / 2
        base = so_far + weights[i] / 2 + left_excluded
        step = (dw - left_excluded - right_excluded) * (x - means[i])
        return (base + step / (means[i + 1] - means[i])) / total

    def rank(self, x: float, reverse: bool) -> int:
        """TDIGEST.RANK / REVRANK of one value (RedisBloom's rounding)."""
        size = self.total
        if size == 0:
            return -2
        if x < self.minimum:
            return int(size) if reverse else -1
        if x > self.maximum:
            return -1 if reverse else int(size)
        absolute = self.cdf(x) * size
        if reverse:
            return int(round_half_away(size - round_half_away(absolute)))
        return int(_half_round_down(absolute))

    def by_rank(self, wanted: int, reverse: bool) -> float:
        """TDIGEST.BYRANK / BYREVRANK of one non-negative rank."""
        size = self.total
        if size == 0:
            return math.nan
        if wanted == 0:
            return self.maximum if reverse else self.minimum
        if wanted >= size:
            return -math.inf if reverse else math.inf
        at = (size - wanted - 1) if reverse else wanted
        return self.quantile(at / size)


def _weighted_average(x1: float, w1: float, x2: float, w2: float) -> float:
    """The weighted average of two values, kept between them (rounding cannot escape)."""
    if x1 > x2:
        x1, w1, x2, w2 = x2, w2, x1, w1
    if w1 + w2 == 0:
        return x1
    value = (x1 * w1 + x2 * w2) / (w1 + w2)
    return max(x1, min(value, x2))


def trimmed_mean(d: Digest, low: float, high: float) -> float:
    """The mean of the values between quantiles ``low`` and ``high`` (``low < high``)."""
    if len(d) == 0:
        return math.nan
    total = d.total
    left, right = low * total, high * total
    so_far = 0.0
    weighted = 0.0
    count = 0.0
    for mean, weight in zip(d.means.tolist(), d.weights.tolist(), strict=True):
        start, end = so_far, so_far + weight
        so_far = end
        part = min(end, right) - max(start, left)
        if part > 0:
            weighted += mean * part
            count += part
    if count == 0:
        return math.nan
    return weighted / count


def round_half_away(value: float) -> float:
    """C's ``round``: halves away from zero."""
    return math.copysign(math.floor(abs(value) + 0.5), value)


def _half_round_down(value: float) -> float:
    """RedisBloom's ``_halfRoundDown``: a fraction of at most one half rounds towards zero."""
    frac, whole = math.modf(value)
    if abs(frac) <= 0.5:
        return whole
    return whole + 1.0 if whole >= 0 else whole - 1.0
