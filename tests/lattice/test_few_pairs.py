"""The few-pairs fast paths give exactly what the general (numpy) paths give.

Gossip moves a pair or a few per write: ``codec`` reads a sparse slice of at most
``FEW_PAIRS_MAX`` pairs with struct, and ``MaxVector.from_items`` packs a few Python ints
without numpy. Both must build the very vector (pairs and held form) the general path builds,
and refuse what it refuses.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError, DecodeError
from hearsay.lattice import _sparse
from hearsay.lattice.codec import FEW_PAIRS_MAX, entry_from_wire
from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import INDEX_DTYPE, VALUE_DTYPES, VALUE_MAX, MaxVector
from tests.support.lattice_strategies import HLL, RAW

_WIDTHS = (1, 2, 4, 8)
_CAPS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: (1 << 64) - 1}


def _general(indices: list[int], values: list[int], width: int) -> MaxVector:
    """What the numpy path builds from the same arrays."""
    return MaxVector.from_pairs(
        np.array(indices, dtype=INDEX_DTYPE), np.array(values, dtype=VALUE_DTYPES[width])
    )


@st.composite
def _wire_slices(draw: st.DrawFn) -> tuple[int, list[int], list[int], int]:
    """Sparse wire slices of a few pairs: mostly well formed, sometimes unsorted, duplicated,
    zero, too wide a width, above VALUE_MAX or past the schema's slots."""
    width = draw(st.sampled_from(_WIDTHS))
    size = draw(st.sampled_from([16384, 1 << 32, 300]))
    count = draw(st.integers(0, FEW_PAIRS_MAX + 2))
    top = min(size, 2**32) - 1
    index = st.one_of(st.integers(0, min(top, 400)), st.integers(0, top))
    indices = draw(st.lists(index, min_size=count, max_size=count))
    if count and not draw(st.integers(0, 9)):  # now and then one index past the slots
        indices[draw(st.integers(0, count - 1))] = min(size, 2**32 - 1)
    if draw(st.integers(0, 2)):  # mostly the packed form's order
        indices = sorted(set(indices))
    value = draw(
        st.sampled_from([st.integers(1, 3), st.integers(0, 3), st.integers(0, _CAPS[width])])
    )
    values = draw(st.lists(value, min_size=len(indices), max_size=len(indices)))
    return width, indices, values, size


@settings(max_examples=500)  # (cheap: a few ms for all)
@given(_wire_slices())
@example((1, [5, 9], [0, 3], 16384))  # a zero value
@example((1, [9, 5], [1, 3], 16384))  # unsorted
@example((1, [5, 5], [1, 3], 16384))  # a duplicate
@example((2, [5, 9], [1, 3], 16384))  # wider than its values need
@example((1, [5, 16384], [1, 3], 16384))  # past the slots
@example((8, [5], [VALUE_MAX + 1], 16384))  # above VALUE_MAX
@example((1, list(range(60)), [2] * 60, 16384))  # many pairs on few slots: held dense
@example((1, list(range(60)), [1] * 60, 16384))  # ... and as bits
@example((1, [0, 1, 2, 3, 4], [1] * 5, 16384))  # five ones on few slots: bits (favoured)
def test_a_few_sparse_pairs_decode_as_the_general_path_does(
    case: tuple[int, list[int], list[int], int],
) -> None:
    width, indices, values, size = case
    schema = HLL if size == 16384 else RAW
    if size == 300:
        schema = type(HLL)("vector", (), 300, False).intern()
    wire_slice = [
        "",
        width,
        np.array(indices, dtype=INDEX_DTYPE).tobytes(),
        np.array(values, dtype=VALUE_DTYPES[width]).tobytes(),
    ]
    wire = [
        1,
        0,
        [schema.kind, list(schema.params), schema.size, schema.additive],
        [0, 0],
        [wire_slice],
    ]
    refused = (indices and max(indices) >= schema.size) or (
        width == 8 and values and max(values) > VALUE_MAX
    )
    if refused:
        with pytest.raises(DecodeError):
            entry_from_wire(wire)
        return
    decoded = entry_from_wire(wire)
    expected = _general(indices, values, width)
    assert decoded == Entry(0, schema, (0, 0), {"": expected})
    got = decoded.slice("")
    assert got.packed_pairs() == expected.packed_pairs()
    assert got.is_dense == expected.is_dense


@given(
    st.lists(
        st.tuples(
            st.one_of(st.integers(0, 50), st.integers(0, 2**32 - 1), st.integers(-2, 2**32 + 1)),
            st.one_of(st.integers(0, 5), st.integers(0, VALUE_MAX), st.integers(-1, VALUE_MAX + 1)),
        ),
        max_size=10,
    )
)
@example([(i, 1) for i in range(5)])  # ones on few slots: bits, as from_pairs holds them
def test_from_items_of_a_few_pairs_is_from_pairs(pairs: list[tuple[int, int]]) -> None:
    try:
        expected = MaxVector.from_pairs(
            np.array([i for i, _ in pairs], dtype=object),
            np.array([v for _, v in pairs], dtype=object),
        )
    except BoundsError:
        with pytest.raises(BoundsError):
            MaxVector.from_items(pairs)
        return
    got = MaxVector.from_items(pairs)
    assert got == expected
    assert got.packed_pairs() == expected.packed_pairs()
    assert got.is_dense == expected.is_dense


_JOIN_VALUES = st.one_of(
    st.integers(1, 0xFF), st.integers(1, 0xFFFF), st.integers(1, 1 << 40), st.just(VALUE_MAX)
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.integers(0, 3000), _JOIN_VALUES, min_size=0, max_size=40),
        min_size=1,
        max_size=30,
    )
)
@example([{j + 20 * k: 1 for k in range(10)} for j in range(20)])  # sparse parts, dense join
@example([{j + 40 * k: 5 for k in range(60)} for j in range(40)])  # (six-bit slots)
@example([{j + 20 * k: 300 for k in range(10)} for j in range(20)])  # (two bytes a slot)
def test_joining_packed_deltas_equals_merging_them(parts: list[dict[int, int]]) -> None:
    """A flush joins a hot key's deltas from their packed bytes (Python ints for a few pairs
    in all, arrays past that, widths mixed): the very vector merging them one by one builds."""
    vectors = [MaxVector.from_items(part.items()) for part in parts]
    packed = [vector.packed_pairs() for vector in vectors]
    if any(pairs is None for pairs in packed):  # a dense delta is joined as arrays instead
        return
    merged = MaxVector()
    for vector in vectors:
        merged.merge(vector)
    kept = [pairs for pairs in packed if pairs is not None]
    joined = MaxVector.join_packed(kept)
    assert joined == merged
    assert joined.items() == merged.items()
    # Held as the Python join held it: a few pairs in all sparse (as a delta is), more in the
    # form from_pairs picks (dense when smaller), at the narrowest width.
    given = sum(len(part) for part in parts)
    if given <= 64:
        assert not joined.is_dense
        assert joined.packed_pairs() == MaxVector.of_maxima(dict(merged.items())).packed_pairs()
    else:
        held = MaxVector.from_pairs(*map(list, zip(*merged.items(), strict=True)))
        assert joined.is_dense == held.is_dense
        assert joined.packed_pairs() == held.packed_pairs()
        assert joined.nbytes() == held.nbytes()  # (the same dense form: bits, six-bit, bytes)
        assert (joined.six_histogram() is None) == (held.six_histogram() is None)


@pytest.mark.parametrize(
    "part",
    [b"", b"\x03\x00\x00\x00\x00\x01", b"\x01\x00\x00\x00", b"\x02\x00\x00\x00\x00\x01"],
    ids=["empty", "bad-width", "short-pair", "cut-value"],
)
def test_joining_anything_but_packed_pairs_is_refused(part: bytes) -> None:
    """The C join reads widths and counts from the bytes: anything else is an error, never a
    read past them."""
    with pytest.raises(ValueError, match="not packed sparse pairs"):
        _sparse.join_packed([MaxVector.of_maxima({3: 1}).packed_pairs() or b"", part])
    with pytest.raises(TypeError):
        _sparse.join_packed([bytearray(b"\x01")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _sparse.join_packed((b"\x01",))  # type: ignore[arg-type]
