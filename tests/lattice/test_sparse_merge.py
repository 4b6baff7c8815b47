"""A few dozen pairs of Python ints into a sparse vector (``_sparse.merge_few``, C: a Top-K
write) give exactly what the general (numpy) merge gives: the vector (pairs and held form),
the delta and the previous values; and what the general path refuses is refused alike. The
C reads of a few values (``_sparse.values``: Top-K's reads of its own slice, ``MaxVector.get``)
give what ``MaxVector.values_at`` gives, on packed pairs of every value width. A receiver's
read of a replicated write's pairs (``_sparse.checked_pairs``) takes exactly the pairs already
in packed form."""

from __future__ import annotations

import itertools
import random
import struct

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError
from hearsay.lattice import _sparse
from hearsay.lattice.vector import VALUE_MAX, MaxVector

_VALUES = st.one_of(
    st.integers(0, 3),
    st.integers(0, 255),
    st.integers(256, 1 << 16),
    st.integers(1 << 16, 1 << 33),
    st.integers(VALUE_MAX - 3, VALUE_MAX),
)
_INDICES = st.one_of(st.integers(0, 3000), st.integers(0, (1 << 32) - 1))


def _form(vec: MaxVector) -> tuple[bool, bytes | None, list[tuple[int, int]]]:
    return vec.is_dense, vec.packed_pairs(), vec.items()


@st.composite
def _cases(draw: st.DrawFn) -> tuple[dict[int, int], list[int], list[int]]:
    held = draw(st.dictionaries(_INDICES, _VALUES.filter(bool), max_size=300))
    keys = sorted(held)
    count = draw(st.integers(0, 70))
    indices = [
        keys[draw(st.integers(0, len(keys) - 1))] if keys and draw(st.booleans()) else
        draw(_INDICES)
        for _ in range(count)
    ]  # fmt: skip
    values = [draw(_VALUES) for _ in range(count)]
    return held, indices, values


@settings(max_examples=400, deadline=None)
@given(case=_cases())
def test_a_few_dozen_pairs_merge_as_the_general_path(
    case: tuple[dict[int, int], list[int], list[int]],
) -> None:
    held, indices, values = case
    by_lists = MaxVector.from_items(held.items())
    by_arrays = by_lists.copy()
    by_unsigned = by_lists.copy()  # (a few unsigned arrays, as a BF.MADD writes: the C path)
    if by_lists.is_dense:  # (the C path is for sparse vectors only)
        return
    delta, previous = by_lists.merge_pairs_tracking(indices, values)
    general = by_arrays.merge_pairs_tracking(
        np.array(indices, dtype=np.int64), np.array(values, dtype=np.int64)
    )
    assert _form(by_lists) == _form(by_arrays)
    assert delta.items() == general[0].items()
    assert previous.items() == general[1].items()
    unsigned = by_unsigned.merge_pairs_tracking(
        np.array(indices, dtype=np.uint32), np.array(values, dtype=np.uint64)
    )
    assert _form(by_unsigned) == _form(by_arrays)
    assert [vec.items() for vec in unsigned] == [vec.items() for vec in general]


@pytest.mark.parametrize(
    ("indices", "values"),
    [
        (list(range(20)), [1] * 19 + [-1]),
        (list(range(20)), [1] * 19 + [VALUE_MAX + 1]),
        ([*range(19), 1 << 32], [1] * 20),
        ([*range(19), -1], [1] * 20),
        (list(range(20)), [1] * 19),
    ],
)
def test_what_the_general_path_refuses_is_refused(indices: list[int], values: list[int]) -> None:
    vec = MaxVector.from_items((i, 1) for i in range(0, 4000, 7))
    before = vec.items()
    with pytest.raises(BoundsError):
        vec.merge_pairs_tracking(indices, values)
    assert vec.items() == before


@settings(max_examples=300, deadline=None)
@given(case=_cases())
def test_a_peers_delta_of_a_few_dozen_pairs_merges_as_the_general_path(
    case: tuple[dict[int, int], list[int], list[int]],
) -> None:
    """A received delta (a vector of packed pairs: a few writes to one key) merged into a
    sparse vector takes the C pass; the numpy merge of the same pairs gives the same."""
    held, indices, values = case
    wanted: dict[int, int] = {}
    for index, value in zip(indices, values, strict=True):
        if value:
            wanted[index] = max(value, wanted.get(index, 0))
    delta_vector = MaxVector.from_items(wanted.items())
    if delta_vector.is_dense:
        return
    by_vector = MaxVector.from_items(held.items())
    by_arrays = by_vector.copy()
    grown, previous = by_vector.merge_vector_tracking(delta_vector)
    pairs = delta_vector.pairs()
    general = by_arrays.merge_tracking(pairs[0], pairs[1]) if wanted else (MaxVector(),) * 2
    assert _form(by_vector) == _form(by_arrays)
    assert grown.items() == general[0].items()
    assert previous.items() == general[1].items()


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.dictionaries(st.integers(0, (1 << 32) - 1), _VALUES.filter(bool), max_size=200),
    wanted=st.lists(st.integers(0, (1 << 32) - 1), max_size=40),
    held=st.lists(st.integers(0, 199), max_size=40),
)
def test_values_give_what_values_at_gives(
    pairs: dict[int, int], wanted: list[int], held: list[int]
) -> None:
    vec = MaxVector.from_items(pairs.items())
    packed = vec.packed_pairs()
    if packed is None:  # a dense vector is read in Python
        return
    keys = sorted(pairs)
    indices = wanted + [keys[i % len(keys)] for i in held] if keys else wanted
    expected = vec.values_at(np.array(indices, dtype=np.int64)).tolist() if indices else []
    assert _sparse.values(packed, indices) == expected
    assert [vec.get(index) for index in indices] == expected


@st.composite
def _dense_cases(draw: st.DrawFn) -> tuple[dict[int, int], list[int], list[int]]:
    """A dense vector in any form (bits, six-bit slots, an array of 1, 2, 4 or 8 bytes a
    slot) and a few pairs for it, some beyond its array or too wide for its form."""
    slots = draw(st.integers(64, 2000))
    top = draw(st.sampled_from([1, 63, 255, (1 << 16) - 1, 1 << 33, VALUE_MAX]))
    step = draw(st.sampled_from([1, 2]))
    # The held values from one drawn seed (1, the top or any between): a draw per slot, up
    # to 2,000 an example, cost more than the merges under test.
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    held = {index: rng.choice((1, top, rng.randint(1, top))) for index in range(0, slots, step)}
    count = draw(st.integers(0, 70))
    indices = [draw(st.integers(0, slots + 40)) for _ in range(count)]
    values = [draw(st.sampled_from([0, 1, 2, 63, 64, 255, 256, 1 << 20, top])) for _ in indices]
    return held, indices, values


@settings(max_examples=400, deadline=None)
@given(case=_dense_cases())
def test_a_few_dozen_pairs_merge_into_a_dense_vector_as_the_general_path(
    case: tuple[dict[int, int], list[int], list[int]],
) -> None:
    """``_sparse.merge_few_dense`` (in place, C: a BF.ADD's bits, a PFADD's six-bit register,
    a count-min item's cells) against the numpy merge: the same values, delta, previous values
    and form (its size in bytes)."""
    held, indices, values = case
    by_lists = MaxVector.from_items(held.items())
    assume(by_lists.is_dense)
    by_arrays = by_lists.copy()
    by_unsigned = by_lists.copy()
    delta, previous = by_lists.merge_pairs_tracking(indices, values)
    general = by_arrays.merge_pairs_tracking(
        np.array(indices, dtype=np.int64), np.array(values, dtype=np.int64)
    )
    assert by_lists.items() == by_arrays.items()
    assert by_lists.nbytes() == by_arrays.nbytes()
    assert delta.items() == general[0].items()
    assert previous.items() == general[1].items()
    unsigned = by_unsigned.merge_pairs_tracking(
        np.array(indices, dtype=np.uint32), np.array(values, dtype=np.uint64)
    )
    assert by_unsigned.items() == by_arrays.items()
    assert by_unsigned.nbytes() == by_arrays.nbytes()
    assert [vec.items() for vec in unsigned] == [vec.items() for vec in general]


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.dictionaries(st.integers(0, 5000), _VALUES.filter(bool), max_size=200),
    written=st.lists(st.tuples(st.integers(0, 6000), _VALUES.filter(bool)), max_size=12),
    big=st.booleans(),
    low=st.integers(0, 6000),
    span=st.integers(0, 1200),
)
def test_window_items_give_the_pairs_the_vector_holds(
    pairs: dict[int, int], written: list[tuple[int, int]], big: bool, low: int, span: int
) -> None:
    """``_sparse.window`` and :meth:`MaxVector.window_items` (a cuckoo filter's bucket reads)
    give :meth:`MaxVector.window`'s pairs, also over a big vector's overlay of later writes."""
    if big:  # (packed pairs past 8 KiB take later few-pair writes in an overlay)
        pairs = {**{10_000 + 3 * i: 1 + i % 200 for i in range(2000)}, **pairs}
    vec = MaxVector.from_items(pairs.items())
    packed = vec.packed_pairs()
    if packed is not None:
        assert _sparse.window(packed, low, low + span) == vec.window(low, low + span).items()
    for index, value in written:
        vec.merge_pairs_tracking([index], [value])
    expected = vec.copy().window(low, low + span).items()
    assert sorted(vec.window_items(low, low + span)) == expected


@settings(max_examples=300, deadline=None)
@given(case=_dense_cases())
def test_a_peers_delta_of_a_few_dozen_pairs_merges_into_a_dense_vector_as_the_general_path(
    case: tuple[dict[int, int], list[int], list[int]],
) -> None:
    """A received delta of a few packed pairs merged into a dense vector (a Bloom filter's
    bits, an HLL's six-bit registers) goes in place in C: the numpy merge gives the same."""
    held, indices, values = case
    wanted: dict[int, int] = {}
    for index, value in zip(indices, values, strict=True):
        if value:
            wanted[index] = max(value, wanted.get(index, 0))
    delta_vector = MaxVector.from_items(wanted.items())
    by_vector = MaxVector.from_items(held.items())
    assume(by_vector.is_dense and not delta_vector.is_dense)
    by_arrays = by_vector.copy()
    grown, previous = by_vector.merge_vector_tracking(delta_vector)
    pairs = delta_vector.pairs()
    general = by_arrays.merge_tracking(pairs[0], pairs[1]) if wanted else (MaxVector(),) * 2
    assert by_vector.items() == by_arrays.items()
    assert by_vector.nbytes() == by_arrays.nbytes()
    assert grown.items() == general[0].items()
    assert previous.items() == general[1].items()


def _checked_pairs_reference(
    width: int, indices: bytes, values: bytes, size: int
) -> tuple[list[int], list[int]] | None:
    """What ``_sparse.checked_pairs`` must give, spelled out with struct."""
    codes = {1: "B", 2: "H", 4: "I", 8: "Q"}
    if width not in codes or not values or len(values) % width:
        return None
    count = len(values) // width
    if count > 64 or len(indices) != 4 * count:
        return None
    at = list(struct.unpack(f"<{count}I", indices))
    held = list(struct.unpack(f"<{count}{codes[width]}", values))
    narrowest = next(w for w in (1, 2, 4, 8) if max(held) < 1 << (8 * w))
    if (
        at[-1] >= size
        or not all(held)
        or max(held) > VALUE_MAX
        or narrowest != width
        or any(a >= b for a, b in itertools.pairwise(at))
    ):
        return None
    return at, held


_FLAWS = (
    None, None, None, "unsorted", "duplicate", "zero", "above 2**63-1", "wider", "narrower",
    "odd width", "short indices", "short values", "past the size", "too many",
)  # fmt: skip


@st.composite
def _wire_slices(draw: st.DrawFn) -> tuple[int, bytes, bytes, int]:
    """A slice's pairs as a peer may send them: in packed form, or with one flaw."""
    flaw = draw(st.sampled_from(_FLAWS))
    count = draw(st.integers(65, 70) if flaw == "too many" else st.integers(1, 64))
    at = sorted(draw(st.sets(_INDICES, min_size=count, max_size=count)))
    narrowest = draw(st.sampled_from([1, 2, 4, 8]))  # (every width alike)
    top = min(VALUE_MAX, (1 << (8 * narrowest)) - 1)
    held = [draw(st.integers(1, top)) for _ in at]
    lowest = {1: 1, 2: 1 << 8, 4: 1 << 16, 8: 1 << 32}[narrowest]
    held[draw(st.integers(0, count - 1))] = draw(st.integers(lowest, top))
    if flaw == "unsorted" and count > 1:
        at[0], at[-1] = at[-1], at[0]
    elif flaw == "duplicate" and count > 1:
        at[1] = at[0]
    elif flaw == "zero":
        held[draw(st.integers(0, count - 1))] = 0
    elif flaw == "above 2**63-1":
        held[draw(st.integers(0, count - 1))] = draw(st.integers(VALUE_MAX + 1, (1 << 64) - 1))
    width = next(w for w in (1, 2, 4, 8) if max(held) < 1 << (8 * w))
    if flaw == "wider" and width < 8:
        width *= 2
    elif flaw == "narrower" and width > 1:
        width //= 2  # (its values cut short: a different read, refused or not)
    code = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
    values = b"".join(struct.pack(f"<{code}", v & ((1 << (8 * width)) - 1)) for v in held)
    if flaw == "odd width":
        width = draw(st.sampled_from([0, 3, 5, 16, -1]))
    indices = struct.pack(f"<{count}I", *at)
    if flaw == "short indices":
        indices = indices[: -draw(st.integers(1, 4))]
    elif flaw == "short values":
        values = values[: -draw(st.integers(1, len(values)))]
    size = max(at) + draw(st.integers(1, 1 << 20))
    if flaw == "past the size":
        size = max(at)
    return width, indices, values, size


@settings(max_examples=600, deadline=None)
@given(case=_wire_slices())
def test_checked_pairs_takes_exactly_the_packed_form(case: tuple[int, bytes, bytes, int]) -> None:
    """A receiver's C read of a replicated write's pairs takes exactly the pairs already in
    packed form (rising indices below the size, non-zero values of the narrowest width, at
    most 64, lengths that agree) and nothing else."""
    assert _sparse.checked_pairs(*case) == _checked_pairs_reference(*case)
