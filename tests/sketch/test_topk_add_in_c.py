"""A TOPK.ADD / INCRBY in C (``_heavykeeper.add``, every call) against its Python statement
(``tests/support/topk_reference.py``): from slices written by honest calls and then torn or
forged (positions half written, generations used up, item words of another generation,
lengths past the bound, a saturated tick count), any run of calls gives the same slots
written in the same order and the same items expelled."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.vector import MaxVector
from hearsay.sketch import _heavykeeper
from hearsay.sketch.hashing import member_hash
from hearsay.sketch.schemas import TOPK_LIST_BASE, TOPK_POSITION_SLOTS
from hearsay.sketch.topk import (
    COUNT_MAX,
    DECAYS_PER_CALL_MAX,
    GENERATION_MAX,
    INCREMENT_MAX,
    ITEM_BYTES_MAX,
    TopK,
)
from tests.support.topk_reference import reference_add

Call = list[tuple[bytes, int]]

_ITEMS = st.sampled_from([b"", b"a", b"b", b"abcd", b"abcde", b"x" * 13, b"\xff\x00\x01"])
_INCREMENTS = st.one_of(st.just(1), st.integers(0, 5), st.sampled_from([100, INCREMENT_MAX]))
_CALL = st.lists(st.tuples(_ITEMS, _INCREMENTS), max_size=6)
_SHAPES = st.tuples(
    st.sampled_from([1, 2, 3, 10]),
    st.sampled_from([1, 2, 3, 8]),
    st.sampled_from([1, 2, 3, 7]),
    st.sampled_from([0.9, 1.0, 0.5, 0.999]),
)
_GENERATIONS = st.one_of(st.integers(0, 4), st.integers(GENERATION_MAX - 1, GENERATION_MAX))
_PAYLOADS = st.one_of(
    st.integers(0, 20), st.integers(COUNT_MAX - 2, COUNT_MAX), st.just(ITEM_BYTES_MAX + 1)
)


@st.composite
def _forged(draw: st.DrawFn, k: int, width: int, depth: int) -> list[tuple[int, int]]:
    """Pairs no honest run of calls writes: any generation and payload in the list's headers
    and item words, in buckets, in the tick count (and, drawn apart, one origin's list
    holding an item twice)."""
    slots = st.one_of(
        st.builds(
            lambda at, j: TOPK_LIST_BASE + TOPK_POSITION_SLOTS * at + j,
            st.integers(0, k - 1),
            st.integers(0, 6),
        ),
        st.builds(lambda b, j: 8 + 3 * b + j, st.integers(0, width * depth - 1), st.integers(0, 2)),
    )
    pairs = draw(
        st.lists(
            st.tuples(slots, st.builds(lambda g, p: g << 32 | p, _GENERATIONS, _PAYLOADS)),
            max_size=8,
        )
    )
    if draw(st.booleans()):
        pairs.append((0, (1 << 63) - 1))
    return pairs


def _written(view: TopK, calls: list[Call]) -> MaxVector:
    """The slice origin ``n1`` holds after ``calls``, each written as a node writes it."""
    vec = MaxVector()
    for call in calls:
        (indices, values), _ = view.add({"n1": vec}, "n1", [call])
        vec.merge_pairs(indices, values)
    return vec


@st.composite
def _case(draw: st.DrawFn) -> tuple[tuple[int, int, int, float], list[Call], list[Call]]:
    shape = draw(_SHAPES)
    before = draw(st.lists(_CALL, max_size=12))
    run = draw(st.lists(_CALL, min_size=1, max_size=6))
    return shape, before, run


@settings(max_examples=400, deadline=None)
@given(case=_case(), data=st.data())
def test_the_add_in_c_writes_and_replies_as_the_add_in_python(
    case: tuple[tuple[int, int, int, float], list[Call], list[Call]], data: st.DataObject
) -> None:
    shape, before, run = case
    view = TopK(*shape)
    vec = _written(view, before)
    forged = data.draw(_forged(shape[0], shape[1], shape[2]))
    if shape[0] > 1 and data.draw(st.booleans()):  # one position's item copied to another
        source, target = data.draw(st.permutations(range(shape[0])))[:2]
        base, to = (TOPK_LIST_BASE + TOPK_POSITION_SLOTS * at for at in (source, target))
        forged += [(to + i, vec.get(base + i)) for i in range(3 + ITEM_BYTES_MAX // 4)[:8]]
    if forged:
        vec.merge_pairs([i for i, _ in forged], [v for _, v in forged])
    slices = {"n1": vec}
    assert view.add(slices, "n1", run) == reference_add(view, slices, "n1", run)


@settings(max_examples=200, deadline=None)
@given(case=_case())
def test_the_slice_read_from_its_packed_pairs_or_through_python_gives_one_answer(
    case: tuple[tuple[int, int, int, float], list[Call], list[Call]],
) -> None:
    """TopK.add hands the C its slice's packed pairs (searched there) unless an overlay sits on
    them; the same run through ``values_of`` (the overlay's way) writes and replies alike."""
    shape, before, run = case
    view = TopK(*shape)
    vec = _written(view, before)
    sparse = vec.sparse_view()
    assert sparse is not None and sparse[1] is None  # (small slices hold no overlay)
    items = [item for call in run for item, _ in call]
    ends = [sum(len(call) for call in run[: i + 1]) for i in range(len(run))]
    args = (
        items,
        [member_hash(item) for item in items],
        [increment for call in run for _, increment in call],
        shape[0],
        shape[1],
        shape[2],
        view._powers,
        shape[3],
        ends,
    )
    assert _heavykeeper.add(sparse[0], *args) == _heavykeeper.add(vec.values_of, *args)


def test_a_run_from_an_empty_slice_matches_and_sees_its_own_writes() -> None:
    view = TopK(3, 4, 3, 0.9)
    run = [[(b"a", 1), (b"b", 1)], [(b"a", 5)], [(b"c", 1), (b"d", 1), (b"a", 1)]]
    assert view.add({}, "n1", run) == reference_add(view, {}, "n1", run)
    (_, _), replies = view.add({}, "n1", run)
    assert [len(r) for r in replies] == [2, 1, 3]


def test_the_constants_the_c_repeats_are_the_python_ones() -> None:
    """_heavykeeper.c repeats these bounds (it has no import of topk.py): a run that depends
    on each gives the reference's answer only when they agree."""
    assert (COUNT_MAX, GENERATION_MAX, DECAYS_PER_CALL_MAX) == (2**32 - 1, 2**31 - 1, 65_536)
    assert (TOPK_LIST_BASE, TOPK_POSITION_SLOTS, ITEM_BYTES_MAX) == (2**31, 2**14, 65_524)


def test_bad_arguments_are_refused_not_crashed_on() -> None:
    powers = struct.pack("=256d", *(0.9**c for c in range(256)))
    zeros = _zeros
    with_args: list[Any] = [
        zeros,
        [b"x" * (ITEM_BYTES_MAX + 1)],
        [1],
        [1],
        2,
        2,
        2,
        powers,
        0.9,
        [1],
    ]
    bad: list[Any]
    for bad in (
        with_args,
        [zeros, [b"a"], [1], [1, 2], 2, 2, 2, powers, 0.9, [1]],
        [zeros, [b"a"], [1], [COUNT_MAX + 1], 2, 2, 2, powers, 0.9, [1]],
        [zeros, [b"a"], [1], [1], 0, 2, 2, powers, 0.9, [1]],
        [zeros, [b"a"], [1], [1], 2, 2, 65, powers, 0.9, [1]],
        [zeros, [b"a"], [1], [1], 2, 2, 2, b"short", 0.9, [1]],
        [b"", [b"a"], [1], [1], 2, 2, 2, powers, 0.9, [1]],  # (not packed pairs: no width)
        [b"\x03" + bytes(7), [b"a"], [1], [1], 2, 2, 2, powers, 0.9, [1]],  # (no such width)
        [b"\x01" + bytes(6), [b"a"], [1], [1], 2, 2, 2, powers, 0.9, [1]],  # (cut short)
        [7, [b"a"], [1], [1], 2, 2, 2, powers, 0.9, [1]],  # (neither bytes nor callable)
    ):
        try:
            _heavykeeper.add(*bad)
        except (ValueError, TypeError):
            continue
        raise AssertionError(f"accepted {bad[1:5]}")

    def short_read(indices: list[int]) -> list[int]:
        return [0] * (len(indices) - 1)

    try:
        _heavykeeper.add(short_read, [b"a"], [1], [1], 2, 2, 2, powers, 0.9, [1])
    except ValueError:
        pass
    else:
        raise AssertionError("a read of the wrong length was taken")


def _zeros(indices: list[int]) -> list[int]:
    return [0] * len(indices)
