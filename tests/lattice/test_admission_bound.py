"""The keyspace admits a small write to a key far below its cap without finding the pairs'
maxima: proven safe by holding the bound it uses above every growth bound the careful path
computes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hearsay.lattice.keyspace import (
    _GROWTH_FIXED,
    _GROWTH_PER_BYTE,
    _GROWTH_PER_PAIR,
    _growth_bound,
)
from hearsay.lattice.vector import MaxVector
from tests.support.lattice_strategies import vectors


@given(
    vectors(),
    st.integers(1, 10_000),
    st.sampled_from([1, 2, 4, 8]),
    st.integers(0, 2**32 - 1),
)
def test_the_quick_bound_covers_every_growth(
    vector: MaxVector, pairs: int, width: int, top_index: int
) -> None:
    quick = _GROWTH_PER_BYTE * vector.nbytes() + _GROWTH_PER_PAIR * pairs + _GROWTH_FIXED
    assert _growth_bound(vector, pairs, width, top_index) <= quick
