"""A single member's Python-int hashing (BF.ADD, BF.EXISTS, CMS.INCRBY of one item) gives
exactly the positions, cells, answers and pairs of the array path for a batch."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.vector import VALUE_MAX, MaxVector
from hearsay.sketch.bloom import BloomFilter
from hearsay.sketch.countmin import CountMinSketch

_MEMBERS = st.binary(max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    _MEMBERS,
    st.floats(min_value=1e-6, max_value=0.9),
    st.integers(min_value=1, max_value=2_000_000),
)
def test_one_members_bloom_positions_are_the_batch_ones(
    member: bytes, error: float, capacity: int
) -> None:
    view = BloomFilter.reserve(error, capacity)
    assert view.member_positions(member) == view.positions([member])[0].tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(_MEMBERS, min_size=1, max_size=30), _MEMBERS, st.integers(1, 3))
def test_one_members_madd_and_mexists_match_the_batch(
    earlier: list[bytes], member: bytes, capacity: int
) -> None:
    view = BloomFilter.reserve(0.2, capacity)  # few bits: members share them
    vec = MaxVector()
    vec.merge_pairs(*view.madd(vec, earlier)[0])
    (pairs, added) = view.madd(vec, [member])
    (batch_pairs, batch_added) = view.madd(vec, [member, member])  # the array path
    assert np.array_equal(pairs[0], batch_pairs[0]) and pairs[0].dtype == batch_pairs[0].dtype
    assert np.array_equal(pairs[1], batch_pairs[1]) and pairs[1].dtype == batch_pairs[1].dtype
    assert added.tolist() == batch_added[:1].tolist()
    assert view.mexists(vec, [member]).tolist() == view.mexists(vec, [member, member])[:1].tolist()


@settings(max_examples=150, deadline=None)
@given(
    _MEMBERS,
    st.integers(min_value=1, max_value=5000),
    st.integers(min_value=1, max_value=8),
    st.lists(st.tuples(_MEMBERS, st.integers(0, 1 << 40)), max_size=10),
    st.integers(min_value=0, max_value=1 << 40),
)
def test_one_items_cms_cells_and_incrby_match_the_batch(
    item: bytes, width: int, depth: int, earlier: list[tuple[bytes, int]], amount: int
) -> None:
    view = CountMinSketch(width, depth)
    assert view.cells([item]).tolist() == view.cells([item, item])[:1].tolist()
    own, other = MaxVector(), MaxVector()
    if earlier:
        own.merge_pairs(*view.incrby({}, "a", [i for i, _ in earlier], [n for _, n in earlier])[0])
        theirs = [i for i, _ in earlier[:3]]
        other.merge_pairs(*view.incrby({}, "b", theirs, [1] * len(theirs))[0])
    slices = {"a": own, "b": other}
    pairs, estimates = view.incrby(slices, "a", [item], [amount], few_max=0)
    # The batch path with a second item of increment 0: the same cells and totals for the first.
    batch_pairs, batch_estimates = view.incrby(slices, "a", [item, item], [amount, 0], few_max=0)
    assert estimates == batch_estimates[:1]
    assert pairs[0].tolist() == batch_pairs[0].tolist() and pairs[0].dtype == batch_pairs[0].dtype
    assert pairs[1].tolist() == batch_pairs[1].tolist() and pairs[1].dtype == batch_pairs[1].dtype


@settings(max_examples=150, deadline=None)
@given(
    _MEMBERS,
    st.builds(CountMinSketch, st.integers(1, 5000), st.integers(1, 12)),
    st.lists(st.tuples(_MEMBERS, st.integers(0, 1 << 40)), max_size=10),
    st.sampled_from([0, 1, 7, 1 << 40, (1 << 62) + 5, (1 << 63) - 1]),
    st.tuples(st.booleans(), st.sampled_from(["a", "b", "ab", "abc", "abcd", "acd"])),
)
def test_one_items_incrby_and_query_in_python_ints_match_the_arrays(
    item: bytes,
    view: CountMinSketch,
    earlier: list[tuple[bytes, int]],
    amount: int,
    peers: tuple[bool, str],
) -> None:
    """CountMinSketch.incrby_item (CMS.INCRBY of one item, Python ints) gives the pairs, the
    estimate and the refusals of incrby's arrays; query of one item the batch's estimate
    (also with a peer's saturating sums and totals near 2**63, with one slice only, the
    writer's or a peer's, and with two more slices at the top value in the item's cells past
    row 0, whose sums saturate and then wrap with the increment as uint64 does)."""
    huge, held = peers
    own, other = MaxVector(), MaxVector()
    if earlier:
        own.merge_pairs(*view.incrby({}, "a", [i for i, _ in earlier], [n for _, n in earlier])[0])
    theirs = [i for i, _ in earlier[:3]] + [item]
    amounts = [1] * (len(theirs) - 1) + [(1 << 62) if huge else 1]
    other.merge_pairs(*view.incrby({}, "b", theirs, amounts)[0])
    top = MaxVector()
    cells = view.cells([item]).reshape(-1)[1:]  # (not row 0: the total count stays small)
    top.merge_pairs(cells.astype(np.uint32), np.full(cells.size, VALUE_MAX, np.uint64))
    named = (("a", own), ("b", other), ("c", top), ("d", top.copy()))
    slices = {name: vec for name, vec in named if name in held}
    try:
        expected = view.incrby(slices, "a", [item], [amount], few_max=0)
    except Exception as error:  # the same refusal, whatever it is
        try:
            view.incrby_item(slices, "a", item, amount)
        except Exception as same:
            assert (type(same), str(same)) == (type(error), str(error))
        else:
            raise AssertionError(f"incrby_item accepted what incrby refused: {error}") from None
        return
    (indices, values), estimate = view.incrby_item(slices, "a", item, amount)
    assert [estimate] == expected[1]
    assert indices == expected[0][0].tolist() and values == expected[0][1].tolist()
    assert view.query(slices, [item]) == view.query(slices, [item, item])[:1]


@settings(max_examples=200, deadline=None)
@given(
    st.builds(CountMinSketch, st.integers(1, 300), st.integers(1, 8)),
    st.lists(st.tuples(_MEMBERS, st.integers(0, 1 << 40)), max_size=10),
    st.lists(
        st.tuples(
            st.sampled_from([b"x", b"y", b"z", b"", b"long item" * 5]),
            st.sampled_from([0, 1, 7, 1 << 40, (1 << 62) + 5, (1 << 63) - 1]),
        ),
        min_size=2,
        max_size=20,
    ),
    st.sampled_from(["a", "b", "ab", "abc", "bc", "acd", "cd"]),
)
def test_a_few_items_in_python_ints_count_as_the_arrays(
    view: CountMinSketch,
    earlier: list[tuple[bytes, int]],
    batch: list[tuple[bytes, int]],
    held: str,
) -> None:
    """CMS.INCRBY of a few items (or a pipelined run of them, items repeated) in Python ints
    gives the arrays' pairs, estimates and refusals: running increments per cell in batch
    order, zero cells left out, a peer's saturated sums wrapping with the increment as uint64,
    totals past 2**63 refused."""
    own, other = MaxVector(), MaxVector()
    if earlier:
        own.merge_pairs(*view.incrby({}, "a", [i for i, _ in earlier], [n for _, n in earlier])[0])
        theirs = [i for i, _ in earlier[:3]]
        other.merge_pairs(*view.incrby({}, "b", theirs, [1] * len(theirs))[0])
    top = MaxVector()
    cells = view.cells([b"x", b"y"])[:, 1:].reshape(-1)  # (not row 0: the count stays small)
    top.merge_pairs(cells.astype(np.uint32), np.full(cells.size, VALUE_MAX, np.uint64))
    named = (("a", own), ("b", other), ("c", top), ("d", top.copy()))
    slices = {name: vec for name, vec in named if name in held}
    items, amounts = [i for i, _ in batch], [n for _, n in batch]
    try:
        expected = view.incrby(slices, "a", items, amounts, few_max=0)
    except Exception as error:
        try:
            view.incrby(slices, "a", items, amounts)
        except Exception as same:
            assert (type(same), str(same)) == (type(error), str(error))
        else:
            raise AssertionError(
                f"the few path accepted what the arrays refused: {error}"
            ) from None
        return
    (indices, values), estimates = view.incrby(slices, "a", items, amounts)
    assert isinstance(indices, list)
    assert estimates == expected[1]
    assert indices == expected[0][0].tolist() and values == expected[0][1].tolist()
