"""The HyperLogLog view: PFADD / PFCOUNT / PFMERGE over a max-vector of registers.

Register ``i`` of the sketch is slot ``i`` of the key's vector; a register keeps the largest
rank it has seen, which is exactly the lattice's element-wise max, so replicas merging deltas
in any order (and any number of times) hold the same registers. The math is the Redis-exact
:mod:`hearsay.sketch.hll_math` (MurmurHash64A with Redis's seed, ``hllPatLen``'s rank, Ertl's
estimator), so at ``p = 14`` :meth:`HyperLogLog.count` is Redis's PFCOUNT for the same
members; :mod:`hearsay.sketch.hyll_format` converts to and from Redis's own ``HYLL`` strings.

Registers above 63 cannot come from hashing; if a misbehaving peer sends one it is read as 63
(saturated) rather than failing every later PFCOUNT of the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sketch import hll_math, hyll_format
from hearsay.sketch.schemas import KIND_HLL, expect_schema
from hearsay.sketch.schemas import hll as hll_schema
from hearsay.sketch.slots import Pairs

__all__ = ["HyperLogLog"]

_REGISTER_MAX: Final = 63


class HyperLogLog:
    """A stateless HyperLogLog view of precision ``p`` (Redis's is 14)."""

    __slots__ = ("_p", "_schema")

    def __init__(self, p: int = hll_math.REDIS_PRECISION) -> None:
        self._p = hll_math.check_precision(p)
        self._schema = hll_schema(self._p)

    # -- construction and sizing --------------------------------------------------------------

    @classmethod
    def from_schema(cls, schema: Schema) -> HyperLogLog:
        if schema.kind != KIND_HLL or len(schema.params) != 1:
            raise SketchParameterError(f"not a HyperLogLog schema: {schema}")
        view = cls(schema.params[0])
        expect_schema(schema, view.schema)
        return view

    @classmethod
    def for_error(cls, rel_error: float) -> HyperLogLog:
        """The smallest sketch whose standard error is at most ``rel_error``."""
        return cls(hll_math.precision_for_error(rel_error))

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def precision(self) -> int:
        return self._p

    @property
    def registers_count(self) -> int:
        return 1 << self._p

    def error_bound(self) -> float:
        """Standard relative error of :meth:`count`: ``1.04 / sqrt(2**p)``."""
        return hll_math.error_bound(self._p)

    def size_bytes(self) -> int:
        """Bytes of a full (dense) vector of this sketch: one byte per register."""
        return 1 << self._p

    # -- writing ------------------------------------------------------------------------------

    def add(self, members: Sequence[bytes]) -> Pairs:
        """PFADD: the ``(register index, rank)`` pairs of ``members`` (hashed in one batch).

        Merge them into the key's vector; the key changed (PFADD replies 1) exactly when the
        merge's delta is non-empty.
        """
        return hll_math.members_index_rank(members, self._p)

    def merge(self, target: MaxVector, source: MaxVector) -> MaxVector:
        """PFMERGE of one source into ``target`` in place; returns the delta (what grew)."""
        return target.merge(source)

    # -- reading ------------------------------------------------------------------------------

    def registers(self, vec: MaxVector) -> npt.NDArray[np.uint8]:
        """The ``2**p`` registers as a dense uint8 array (values above 63 read as 63)."""
        dense = vec.to_dense(1 << self._p)
        if dense.dtype != np.uint8:
            dense = np.minimum(dense, _REGISTER_MAX).astype(np.uint8)
        elif dense.size and int(dense.max()) > _REGISTER_MAX:
            dense = np.minimum(dense, np.uint8(_REGISTER_MAX))
        return dense

    def count(self, vec: MaxVector) -> int:
        """PFCOUNT of one key: remembered by the vector until a register rises (Redis caches
        it in the key's header), so counting an unchanged key again computes nothing."""
        return vec.memo(self._schema, self._count_now)

    def _count_now(self, vec: MaxVector) -> int:
        histogram = vec.six_histogram()  # (six-bit registers: counted where they lie)
        registers = 1 << self._p
        if histogram is not None and vec.dense_slots <= registers:
            histogram[0] += registers - vec.dense_slots  # (slots past the array hold 0)
            return hll_math.count_histogram(histogram, self._p)
        if vec.is_dense:
            return hll_math.count(self.registers(vec))
        return hll_math.count_pairs(*vec.pairs(), self._p)

    def count_union(self, vectors: Iterable[MaxVector]) -> int:
        """PFCOUNT of several keys: the estimate of their union (no key is changed)."""
        union = np.zeros(1 << self._p, dtype=np.uint8)
        for vec in vectors:
            np.maximum(union, self.registers(vec), out=union)
        return hll_math.count(union)

    def is_empty(self, vec: MaxVector) -> bool:
        return vec.is_empty()

    # -- Redis's HYLL strings -----------------------------------------------------------------

    def _require_redis_precision(self) -> None:
        if self._p != hll_math.REDIS_PRECISION:
            raise SketchParameterError(
                f"Redis HLL strings have precision {hll_math.REDIS_PRECISION}, "
                f"this sketch {self._p}"
            )

    def to_redis(self, vec: MaxVector) -> bytes:
        """The ``HYLL`` string Redis's GET would return for these registers (p = 14 only)."""
        self._require_redis_precision()
        return hyll_format.export_redis(self.registers(vec))

    def from_redis(self, data: bytes) -> Pairs:
        """The pairs of a Redis ``HYLL`` string (p = 14 only); DecodeError if it is not one."""
        self._require_redis_precision()
        registers = hyll_format.import_redis(data)
        indices = np.flatnonzero(registers).astype(np.uint32)
        return indices, registers[indices]
