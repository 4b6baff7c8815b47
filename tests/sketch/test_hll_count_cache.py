"""PFCOUNT's remembered cardinality: after any sequence of merges, by every path a register
can rise (a few pairs, arrays, another vector, sparse or dense, growing or widening), the
remembered count is exactly the estimator's count of the registers as they are now.

The reference is :func:`hearsay.sketch.hll_math.count` over the dense register array, the
path every count took before counts were remembered."""

from __future__ import annotations

import gc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.vector import MaxVector
from hearsay.sketch import hll_math
from hearsay.sketch.hll_view import HyperLogLog

_P = 8
_M = 1 << _P

_pair = st.tuples(st.integers(0, _M - 1), st.integers(1, 70))
_pairs = st.lists(_pair, max_size=40)
_step = st.one_of(
    st.tuples(st.just("few"), st.lists(_pair, max_size=8)),
    st.tuples(st.just("arrays"), _pairs),
    st.tuples(st.just("vector"), _pairs),
    st.tuples(st.just("fill"), st.integers(1, 63)),  # a whole dense array at once
    st.tuples(st.just("wide"), st.integers(256, 70_000)),  # a value that widens the dtype
)


def _reference(view: HyperLogLog, vec: MaxVector) -> int:
    return hll_math.count(view.registers(vec))


def _apply(vec: MaxVector, kind: str, arg: object) -> None:
    if kind == "few":
        pairs = list(arg)  # type: ignore[call-overload]
        vec.merge_pairs([i for i, _ in pairs], [v for _, v in pairs])
    elif kind == "arrays":
        pairs = list(arg)  # type: ignore[call-overload]
        vec.merge_pairs(
            np.array([i for i, _ in pairs], dtype=np.uint32),
            np.array([v for _, v in pairs], dtype=np.uint8),
        )
    elif kind == "vector":
        pairs = list(arg)  # type: ignore[call-overload]
        vec.merge(MaxVector.from_pairs([i for i, _ in pairs], [v for _, v in pairs]))
    elif kind == "fill":
        vec.merge(MaxVector.from_dense(np.full(_M, int(arg), dtype=np.uint8)))  # type: ignore[call-overload]
    else:
        vec.merge_pairs([_M - 1], [int(arg)])  # type: ignore[call-overload]


@settings(max_examples=150)
@given(st.lists(_step, max_size=12), st.lists(st.booleans(), min_size=12, max_size=12))
def test_remembered_count_follows_every_merge(
    steps: list[tuple[str, object]], count_between: list[bool]
) -> None:
    view = HyperLogLog(_P)
    vec = MaxVector()
    for (kind, arg), count_now in zip(steps, count_between, strict=False):
        if count_now:
            assert view.count(vec) == _reference(view, vec)
        _apply(vec, kind, arg)
        assert view.count(vec) == _reference(view, vec)
        assert view.count(vec) == _reference(view, vec)  # the remembered one


def test_a_copy_and_a_freed_array_keep_nothing_stale() -> None:
    view = HyperLogLog(_P)
    vec = MaxVector.from_dense(np.full(_M, 3, dtype=np.uint8))
    first = view.count(vec)
    twin = vec.copy()
    twin.merge_pairs([0], [40])
    assert view.count(twin) == _reference(view, twin) != first
    assert view.count(vec) == first
    del vec, twin
    gc.collect()
    fresh = MaxVector.from_dense(np.full(_M, 5, dtype=np.uint8))  # may reuse a freed id
    assert view.count(fresh) == _reference(view, fresh)


def test_readers_with_other_tags_do_not_share() -> None:
    vec = MaxVector.from_dense(np.full(_M, 2, dtype=np.uint8))
    assert HyperLogLog(_P).count(vec) == _reference(HyperLogLog(_P), vec)
    assert vec.memo("other", len) == _M


@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 300)), max_size=200))
def test_count_of_pairs_equals_count_of_registers(pairs: list[tuple[int, int]]) -> None:
    vec = MaxVector.from_pairs([i for i, _ in pairs], [v for _, v in pairs])
    indices, values = vec.pairs()
    for p in (4, 14, 18):
        registers = HyperLogLog(p).registers(vec)
        assert hll_math.count_pairs(indices, values, p) == hll_math.count(registers)
