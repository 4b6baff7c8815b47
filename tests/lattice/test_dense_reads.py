"""A few slots of a dense vector read in one C call give what numpy's read gives.

``MaxVector.values_of`` reads a dense vector's slots with ``_sparse.values_dense`` (a
t-digest's header, a count-min item's cells, a Bloom filter's bits): for every held form
(bits, six-bit slots, arrays of 1, 2, 4 and 8 bytes a slot) it must give the values
``values_at`` reads through numpy, and 0 past the slots.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice import _sparse
from hearsay.lattice import vector as vector_module
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.hll_view import HyperLogLog

HLL = HyperLogLog()

_FORMS = ("bits", "six", 1, 2, 4, 8)
_SIX_BY_SEED: dict[int, MaxVector] = {}


def _vector(form: str | int, seed: int) -> MaxVector:
    """A dense vector held in ``form`` (asserted), its values drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    if form == "six":  # (a dense HLL's registers: a few to choose from, each built once)
        seed %= 3
        if seed not in _SIX_BY_SEED:
            vector = MaxVector()
            for batch in range(17):
                members = [b"s%d-%d" % (seed, i) for i in range(batch * 1000, batch * 1000 + 1000)]
                vector.merge_pairs(*HLL.add(members))
            _SIX_BY_SEED[seed] = vector
        vector = _SIX_BY_SEED[seed]
        assert _held_form(vector) == 6
        return vector
    if form == "bits":
        values = (rng.random(4096) < 0.5).astype(np.uint8)
    else:
        dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[int(form)]
        top = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: (1 << 62) - 1}[int(form)]
        values = rng.integers(1, top, size=2048, dtype=dtype, endpoint=True)
        values[0] = top  # (the widest value the form holds)
    vector = MaxVector.from_dense(values, owned=True)
    assert _held_form(vector) == (0 if form == "bits" else form)
    return vector


def _held_form(vector: MaxVector) -> int:
    """The form ``values_dense`` is given for ``vector`` (0 bits, 6 six-bit slots, else bytes
    a slot)."""
    dense = vector._dense
    assert dense is not None
    return vector_module._DENSE_FORMS.get(vector._packed, dense.dtype.itemsize)


@pytest.mark.parametrize("form", _FORMS)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), picks=st.lists(st.integers(0, 2**32 - 1), max_size=40))
def test_values_of_a_dense_vector_are_numpys(form: str | int, seed: int, picks: list[int]) -> None:
    vector = _vector(form, seed)
    # Mostly slots inside the array, some just past it, some anywhere.
    inside = [pick % 20_000 for pick in picks[::2]]
    indices = inside + picks[1::2]
    expected = vector.values_at(np.array(indices, dtype=np.int64)).tolist()
    assert vector.values_of(indices) == expected
    assert [vector.get(index) for index in indices] == expected


def test_values_dense_refuses_what_is_not_a_dense_read() -> None:
    array = np.arange(8, dtype=np.uint16)
    assert _sparse.values_dense(array, 2, [1, 7, 8, 2**32]) == [1, 7, 0, 0]
    with pytest.raises(ValueError, match="no dense form"):
        _sparse.values_dense(array, 3, [1])
    with pytest.raises(TypeError):
        _sparse.values_dense(array, 2, (1, 2))  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        _sparse.values_dense(array, 2, [-1])
    with pytest.raises(TypeError):
        _sparse.values_dense(object(), 2, [1])
