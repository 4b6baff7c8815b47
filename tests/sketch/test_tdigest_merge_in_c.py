"""A t-digest's greedy merge in C (``_tdigest.merge_greedy``, what ``compress`` runs) gives the
Python reference's centroids double for double: the same bounds, the same order of
operations, no fused multiply-add. Nodes compress their slices on their own, so a digest must
not depend on which code compressed it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hearsay.sketch import _tdigest
from hearsay.sketch.tdigest import centroids_max, compress
from tests.support.tdigest_reference import merge_greedy


def _c_merge(
    means: list[float], weights: list[float], middle: float, tail: float
) -> tuple[list[float], list[float]]:
    m, w = np.array(means, np.float64), np.array(weights, np.float64)
    out_m, out_w = np.empty_like(m), np.empty_like(w)
    count = _tdigest.merge_greedy(m, w, middle, tail, math.fsum(weights), out_m, out_w)
    return out_m[:count].tolist(), out_w[:count].tolist()


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_weights = st.one_of(  # (a slice's weights are whole; the merge takes any positive ones)
    st.integers(1, 1000).map(float), st.floats(min_value=1e-3, max_value=1e3)
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.tuples(_finite, _weights), min_size=1, max_size=400),
    compression=st.sampled_from([1, 5, 100, 1000]),
    scale=st.sampled_from([1.0, 2.0, 64.0]),
)
@example(values=[(0.0, 0.5), (1.0, 0.5)], compression=1000, scale=1.0)  # grown == 1: merged
def test_c_merge_is_the_reference(
    values: list[tuple[float, float]], compression: int, scale: float
) -> None:
    values.sort()
    means = [mean for mean, _ in values]
    weights = [weight for _, weight in values]
    middle, tail = 0.5 * scale / compression, 10.0 * scale / compression
    got_means, got_weights = _c_merge(means, weights, middle, tail)
    want_means, want_weights = merge_greedy(means, weights, middle, tail)
    assert got_weights == want_weights
    # Bit for bit (``==`` alone would take -0.0 for 0.0).
    assert np.array(got_means).view(np.uint64).tolist() == (
        np.array(want_means).view(np.uint64).tolist()
    )


def test_compress_of_many_lognormal_values_is_the_reference() -> None:
    rng = np.random.default_rng(7)
    means = np.sort(rng.lognormal(0.0, 2.0, 5000))
    weights = rng.integers(1, 5, means.size).astype(np.float64)
    got_means, got_weights = compress(means, weights, 100)
    scale = 1.0
    while True:
        want_means, want_weights = merge_greedy(
            means.tolist(), weights.tolist(), 0.5 * scale / 100, 10.0 * scale / 100
        )
        if len(want_means) <= centroids_max(100):
            break
        scale *= 2.0
    assert got_weights.tolist() == want_weights
    assert got_means.tolist() == np.maximum.accumulate(np.array(want_means)).tolist()
    assert 100 < got_means.size <= centroids_max(100)


def test_merge_greedy_refuses_what_is_not_float64() -> None:
    m = np.arange(4, dtype=np.float64)
    with pytest.raises(TypeError, match="float64"):
        _tdigest.merge_greedy(m, m.astype(np.int64), 0.1, 0.1, 4.0, m.copy(), m.copy())
    with pytest.raises(ValueError, match="shorter"):
        _tdigest.merge_greedy(m, m, 0.1, 0.1, 4.0, m[:2].copy(), m.copy())
    with pytest.raises(TypeError):
        _tdigest.merge_greedy(m, m, 0.1, 0.1, 4.0, m.copy())  # type: ignore[call-arg]
    read_only = m.copy()
    read_only.flags.writeable = False
    with pytest.raises((TypeError, ValueError, BufferError)):
        _tdigest.merge_greedy(m, m, 0.1, 0.1, 4.0, read_only, m.copy())
    assert _tdigest.merge_greedy(m[:0], m[:0], 0.1, 0.1, 0.0, m.copy(), m.copy()) == 0
