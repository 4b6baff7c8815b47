"""``base.packing.packb`` gives msgpack.packb's bytes, for small values and for values far
larger than its first buffer (which it grows), and raises as msgpack does."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.packing import packb

_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 64) - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=600),
)
_VALUES = st.recursive(_LEAVES, lambda inner: st.lists(inner, max_size=8), max_leaves=40)


@given(value=_VALUES)
def test_the_same_bytes_as_msgpack(value: object) -> None:
    assert packb(value) == msgpack.packb(value, use_bin_type=True)


def test_a_value_far_larger_than_the_first_buffer() -> None:
    big = [b"k" * 100_000, list(range(50_000)), "x" * 300_000]
    assert packb(big) == msgpack.packb(big, use_bin_type=True)


def test_what_msgpack_cannot_pack_raises_and_the_next_call_is_clean() -> None:
    with pytest.raises(TypeError):
        packb([1, object()])
    assert packb([1, 2]) == msgpack.packb([1, 2], use_bin_type=True)
