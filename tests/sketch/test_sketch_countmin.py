"""Tests of the count-min view: the error guarantee over many seeds, concurrent origins under any
delivery order and re-delivery, RedisBloom's INITBYPROB sizing, INCRBY/QUERY/INFO/MERGE."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import NO_EXPIRY, Entry
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.countmin import INT64_MAX, CountMinSketch, _weighted_sum, dims_from_prob
from hearsay.sketch.views import type_name, view_for


def _apply(slices: dict[str, MaxVector], origin: str, pairs: tuple[np.ndarray, np.ndarray]) -> None:
    slices.setdefault(origin, MaxVector()).merge_pairs(*pairs)


# -- sizing -------------------------------------------------------------------------------------


def _libm_log10f() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    fn = ctypes.CDLL(name).log10f
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


PROBABILITIES = [0.5, 0.25, 0.125, 0.1, 0.05, 0.01, 0.001, 1e-6, 0.3, 0.9, 0.999] + [
    0.5**k for k in range(1, 30)
]


@pytest.mark.parametrize("prob", PROBABILITIES)
def test_initbyprob_depth_matches_single_precision_libm(prob: float) -> None:
    log10f = _libm_log10f()
    if log10f is None:
        pytest.skip("no C math library to compare with")
    reference = math.ceil(np.float32(log10f(prob)) / np.float32(log10f(0.5)))
    assert dims_from_prob(0.01, prob)[1] == reference


@pytest.mark.parametrize("error", [0.1, 0.01, 0.001, 0.003, 0.3, 0.7, 1e-5])
def test_initbyprob_width_is_ceil_of_two_over_error(error: float) -> None:
    width, _ = dims_from_prob(error, 0.01)
    assert width == math.ceil(2 / error)
    sketch = CountMinSketch.by_prob(error, 0.01)
    assert (sketch.width, sketch.depth) == dims_from_prob(error, 0.01)
    eps, delta = sketch.error_bound()
    assert eps <= error
    assert delta <= 0.01


@pytest.mark.parametrize(("error", "prob"), [(0, 0.1), (1, 0.1), (0.1, 0), (0.1, 1), (-1, 0.5)])
def test_initbyprob_rejects_out_of_range(error: float, prob: float) -> None:
    with pytest.raises(SketchParameterError):
        CountMinSketch.by_prob(error, prob)


def test_initbydim_rejects_bad_dimensions() -> None:
    for width, depth in ((0, 5), (5, 0), (1 << 31, 3)):
        with pytest.raises(SketchParameterError):
            CountMinSketch.by_dim(width, depth)


# -- the guarantee --------------------------------------------------------------------------------


def test_estimates_never_below_truth_and_within_eps_n_with_probability() -> None:
    sketch = CountMinSketch.by_prob(0.01, 0.05)
    eps, delta = sketch.error_bound()
    failures = 0
    queries = 0
    for seed in range(40):
        rng = random.Random(seed)
        items = [b"item-%d-%d" % (seed, i) for i in range(600)]
        weights = [1.0 / (i + 1) for i in range(len(items))]  # Zipf-like skew
        stream = rng.choices(items, weights, k=3000)
        truth = Counter(stream)
        slices: dict[str, MaxVector] = {}
        for start in range(0, len(stream), 500):
            chunk = stream[start : start + 500]
            amounts = [rng.randint(1, 3) for _ in chunk]
            for item, amount in zip(chunk, amounts, strict=True):
                truth[item] += amount - 1
            pairs, _ = sketch.incrby(slices, f"node{start % 3}", chunk, amounts)
            _apply(slices, f"node{start % 3}", pairs)
        total = sum(truth.values())
        assert sketch.count(slices) == total, f"seed {seed}"
        estimates = sketch.query(slices, items)
        for item, estimate in zip(items, estimates, strict=True):
            assert estimate >= truth[item], f"seed {seed}: {item!r} below truth"
            failures += estimate - truth[item] > eps * total
            queries += 1
    assert failures / queries <= delta


# -- concurrency ---------------------------------------------------------------------------------


@given(st.permutations(range(6)), st.lists(st.integers(0, 5), max_size=6))
def test_concurrent_origins_sum_in_any_order_and_under_redelivery(
    order: list[int], repeats: list[int]
) -> None:
    sketch = CountMinSketch.by_dim(50, 4)
    # Three origins each make two increments of the same item from their own local state.
    deltas: list[tuple[str, MaxVector]] = []
    expected = 0
    for n, origin in enumerate(("a", "b", "c")):
        local: dict[str, MaxVector] = {}
        for step in range(2):
            amount = 10 * (n + 1) + step
            pairs, _ = sketch.incrby(local, origin, [b"hot"], [amount])
            _apply(local, origin, pairs)
            deltas.append((origin, MaxVector.from_pairs(*pairs)))
            expected += amount
    replica: dict[str, MaxVector] = {}
    for i in list(order) + repeats:
        origin, vec = deltas[i]
        sketch.merge(replica, {origin: vec})
    assert sketch.query(replica, [b"hot"]) == [expected]
    assert sketch.count(replica) == expected


def test_incrby_reports_running_estimates_within_a_batch() -> None:
    sketch = CountMinSketch.by_dim(1000, 5)
    slices: dict[str, MaxVector] = {}
    pairs, estimates = sketch.incrby(slices, "n", [b"x", b"y", b"x", b"x"], [1, 5, 2, 0])
    assert estimates == [1, 5, 3, 3]
    _apply(slices, "n", pairs)
    assert sketch.query(slices, [b"x", b"y", b"z"]) == [3, 5, 0]
    assert sketch.info(slices).count == 8
    assert (sketch.info(slices).width, sketch.info(slices).depth) == (1000, 5)


def test_negative_increment_and_overflow_are_refused() -> None:
    sketch = CountMinSketch.by_dim(10, 2)
    slices: dict[str, MaxVector] = {}
    with pytest.raises(BoundsError):
        sketch.incrby(slices, "n", [b"x"], [-1])
    pairs, _ = sketch.incrby(slices, "n", [b"x"], [INT64_MAX - 5])
    _apply(slices, "n", pairs)
    with pytest.raises(BoundsError):
        sketch.incrby(slices, "m", [b"y"], [6])
    pairs, estimates = sketch.incrby(slices, "m", [b"y"], [5])
    _apply(slices, "m", pairs)
    assert sketch.count(slices) == INT64_MAX
    assert estimates[0] >= 5


# -- CMS.MERGE -------------------------------------------------------------------------------------


def _sketch_with(
    sketch: CountMinSketch, origin: str, counts: dict[bytes, int]
) -> dict[str, MaxVector]:
    slices: dict[str, MaxVector] = {}
    pairs, _ = sketch.incrby(slices, origin, list(counts), list(counts.values()))
    _apply(slices, origin, pairs)
    return slices


def test_merge_into_empty_destination_is_the_weighted_sum() -> None:
    sketch = CountMinSketch.by_dim(500, 4)
    a = _sketch_with(sketch, "n1", {b"x": 3, b"y": 1})
    b = _sketch_with(sketch, "n2", {b"x": 2, b"z": 7})
    dest: dict[str, MaxVector] = {}
    pairs = sketch.merge_weighted(dest, "n3", [(sketch.schema, a), (sketch.schema, b)], [2, 3])
    _apply(dest, "n3", pairs)
    assert sketch.query(dest, [b"x", b"y", b"z"]) == [2 * 3 + 3 * 2, 2, 21]
    assert sketch.count(dest) == 2 * 4 + 3 * 9


def test_merge_into_a_source_adds_the_others() -> None:
    sketch = CountMinSketch.by_dim(500, 4)
    a = _sketch_with(sketch, "n1", {b"x": 3})
    b = _sketch_with(sketch, "n2", {b"x": 4, b"y": 1})
    pairs = sketch.merge_weighted(a, "n1", [(sketch.schema, a), (sketch.schema, b)])
    _apply(a, "n1", pairs)
    assert sketch.query(a, [b"x", b"y"]) == [7, 1]
    # Re-delivering the merge's delta changes nothing.
    _apply(a, "n1", pairs)
    assert sketch.query(a, [b"x", b"y"]) == [7, 1]


def test_merge_shape_mismatch_and_overflow() -> None:
    sketch = CountMinSketch.by_dim(500, 4)
    other = CountMinSketch.by_dim(400, 4)
    a = _sketch_with(sketch, "n1", {b"x": 3})
    with pytest.raises(SketchParameterError):
        sketch.merge_weighted({}, "n", [(other.schema, a)])
    with pytest.raises(SketchParameterError):
        sketch.merge_weighted({}, "n", [(sketch.schema, a)], [1, 2])
    with pytest.raises(BoundsError):
        sketch.merge_weighted({}, "n", [(sketch.schema, a)], [-1])


# -- schema and serialisation ---------------------------------------------------------------------


def test_codec_round_trip_then_merge() -> None:
    sketch = CountMinSketch.by_dim(64, 3)
    a = _sketch_with(sketch, "node-a", {b"k": 5, b"j": 1})
    b = _sketch_with(sketch, "node-b", {b"k": 2})
    remote = Entry(0, sketch.schema, NO_EXPIRY, b)
    decoded = decode_entry(encode_entry(remote))
    assert decoded == remote
    local = Entry(0, sketch.schema, NO_EXPIRY, a)
    local.merge(decoded)
    local.merge(decoded)
    merged = dict(local.slices())
    assert sketch.query(merged, [b"k", b"j"]) == [7, 1]
    assert isinstance(view_for(sketch.schema), CountMinSketch)
    assert type_name(sketch.schema) == "CMSk-TYPE"
    assert sketch.schema.additive


@pytest.mark.parametrize("seed", range(6))
def test_weighted_sum_is_exact_including_near_int64_limits(seed: int) -> None:
    rng = np.random.default_rng(seed)
    big = seed % 2 == 1  # odd seeds: values and weights near the int64 limit (exact path)
    high = INT64_MAX if big else 1_000
    parts = [rng.integers(0, high, size=64, dtype=np.uint64) for _ in range(3)]
    weights = [int(w) for w in rng.integers(-3, 4, size=3)]
    if big:
        weights = [1, -1, 1]
    expected = [sum(int(p[i]) * w for p, w in zip(parts, weights, strict=True)) for i in range(64)]
    if all(0 <= e <= INT64_MAX for e in expected):
        assert _weighted_sum(parts, weights).tolist() == expected
    else:
        with pytest.raises(BoundsError):
            _weighted_sum(parts, weights)


def test_sums_that_overflow_along_the_way_but_end_in_range_are_exact() -> None:
    top = np.array([INT64_MAX, 5], dtype=np.uint64)
    # INT64_MAX + INT64_MAX overflows int64 before the third part brings it back.
    result = _weighted_sum([top, top, top], [1, 1, -1])
    assert result.tolist() == [INT64_MAX, 5]
    with pytest.raises(BoundsError):
        _weighted_sum([top, top], [1, 1])


def test_merge_of_a_sketch_larger_than_one_chunk() -> None:
    sketch = CountMinSketch.by_dim(700_000, 3)  # 2.1 M cells: three chunks
    a = _sketch_with(sketch, "n1", {b"x": 3, b"y": 1})
    b = _sketch_with(sketch, "n2", {b"x": 2, b"z": 7})
    dest: dict[str, MaxVector] = {}
    pairs = sketch.merge_weighted(dest, "n3", [(sketch.schema, a), (sketch.schema, b)], [2, 1])
    _apply(dest, "n3", pairs)
    assert sketch.query(dest, [b"x", b"y", b"z"]) == [8, 2, 7]
