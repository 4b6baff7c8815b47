"""A count-min item's cells in C (``_splitmix.cells``) are the Python reference's: row ``r``'s
cell is ``r * width + mix64_int(h, r + 1) % width`` (every node must count an item in the same
cells, and a sketch written before must read the same)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.sketch import _splitmix
from hearsay.sketch.hashing import member_hash, mix64_int, mix64_int_reference


def _reference(h: int, width: int, depth: int) -> list[int]:
    return [mix64_int_reference(h, row + 1) % width + row * width for row in range(depth)]


@given(
    h=st.one_of(st.integers(0, 2**64 - 1), st.integers(-(2**70), 2**70)),
    step=st.one_of(st.integers(0, 70), st.integers(-(2**70), 2**70)),
)
def test_one_output_in_c_is_the_references(h: int, step: int) -> None:
    """``mix64_int`` (in C: a Bloom item's second hash, a cuckoo partner offset) is the
    Python reference for any ints, both taken modulo 2**64 as the reference masks them."""
    assert mix64_int(h, step) == mix64_int_reference(h, step)
    assert mix64_int(h) == mix64_int_reference(h)


@given(
    h=st.integers(0, 2**64 - 1),
    width=st.one_of(st.integers(1, 5000), st.integers(1, 2**40)),
    depth=st.integers(0, 64),
)
def test_cells_in_c_are_the_references(h: int, width: int, depth: int) -> None:
    assert _splitmix.cells(h, width, depth) == _reference(h, width, depth)


def test_cells_of_known_members() -> None:
    for member in (b"", b"a", b"e:000000012345", bytes(range(256))):
        h = member_hash(member)
        assert _splitmix.cells(h, 2000, 5) == _reference(h, 2000, 5)


def test_cells_refuses_what_has_no_cells() -> None:
    with pytest.raises(ValueError):
        _splitmix.cells(1, 0, 5)
    with pytest.raises(ValueError):
        _splitmix.cells(1, 10, 65)
    with pytest.raises(ValueError):
        _splitmix.cells(1, 2**63, 3)
    with pytest.raises(OverflowError):
        _splitmix.cells(-1, 10, 3)
    with pytest.raises(OverflowError):
        _splitmix.cells(2**64, 10, 3)
