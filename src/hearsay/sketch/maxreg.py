"""Max registers and raw vectors: the two views that are the lattice itself.

A **max register** is one non-negative integer that only grows: setting it is a max, so
concurrent sets converge to the largest. It is slot 0 of a one-slot vector.

A **raw vector** is a vignette key: any ``uint32 index -> int64 value`` map, written by
element-wise max at chosen indices and read back whole. The view only validates and shapes
the pairs; the lattice does the rest.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import VALUE_MAX, MaxVector, normalize_pairs
from hearsay.sketch.schemas import KIND_MAXREG, KIND_VECTOR, expect_schema
from hearsay.sketch.schemas import maxreg as maxreg_schema
from hearsay.sketch.schemas import vector as vector_schema
from hearsay.sketch.slots import Pairs, values_at

__all__ = ["MaxRegister", "RawVector"]


class MaxRegister:
    """A stateless view of a max register (slot 0)."""

    __slots__ = ("_schema",)

    def __init__(self) -> None:
        self._schema = maxreg_schema()

    @classmethod
    def from_schema(cls, schema: Schema) -> MaxRegister:
        view = cls()
        if schema.kind != KIND_MAXREG:
            raise SketchParameterError(f"not a max register schema: {schema}")
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    def set(self, value: int) -> Pairs:
        """The pairs that raise the register to at least ``value`` (0 is a no-op)."""
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise BoundsError(f"a max register holds an integer, got {value!r}")
        number = int(value)
        if not 0 <= number <= VALUE_MAX:
            raise BoundsError("a max register holds 0..2**63-1")
        if number == 0:
            return np.zeros(0, np.uint32), np.zeros(0, np.uint64)
        return np.array([0], np.uint32), np.array([number], np.uint64)

    def get(self, vec: MaxVector) -> int:
        return vec.get(0)

    def merge(self, target: MaxVector, source: MaxVector) -> MaxVector:
        return target.merge(source)

    def is_empty(self, vec: MaxVector) -> bool:
        return vec.is_empty()


class RawVector:
    """A stateless view of a raw vignette vector."""

    __slots__ = ("_schema",)

    def __init__(self) -> None:
        self._schema = vector_schema()

    @classmethod
    def from_schema(cls, schema: Schema) -> RawVector:
        view = cls()
        if schema.kind != KIND_VECTOR:
            raise SketchParameterError(f"not a raw vector schema: {schema}")
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    def set_max(self, indices: npt.ArrayLike, values: npt.ArrayLike) -> Pairs:
        """Validated pairs that raise each index to at least its value (BoundsError if bad)."""
        idx, val = normalize_pairs(indices, values)
        return idx, val

    def get(self, vec: MaxVector) -> list[tuple[int, int]]:
        """The whole vector: non-zero ``(index, value)`` pairs sorted by index."""
        return vec.items()

    def get_at(self, vec: MaxVector, indices: npt.ArrayLike) -> list[int]:
        """The values at ``indices`` (absent = 0)."""
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= 1 << 32)):
            raise BoundsError("vector indices must be integers in 0..2**32-1")
        return [int(v) for v in values_at(vec, idx.astype(np.int64)).reshape(-1).tolist()]

    def merge(self, target: MaxVector, source: MaxVector) -> MaxVector:
        return target.merge(source)

    def is_empty(self, vec: MaxVector) -> bool:
        return vec.is_empty()
