"""HeavyKeeper's rows in C (``_heavykeeper.rows``, every TOPK.ADD / INCRBY) against their
Python statement (``tests/support/topk_reference.py``): from any buckets (empty, the item's,
another item's with any count, generations torn or used up), any increment, decay and decays
left, the same best count, the same slots written in the same order, the same decays left."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.sketch import _heavykeeper
from hearsay.sketch.topk import COUNT_MAX, DECAYS_PER_ROW_MAX, GENERATION_MAX, INCREMENT_MAX
from tests.support.topk_reference import Rows

_GENERATIONS = st.one_of(st.integers(0, 3), st.integers(GENERATION_MAX - 1, GENERATION_MAX))
_PAYLOADS = st.one_of(st.integers(0, 5), st.integers(0, 400), st.integers(COUNT_MAX - 3, COUNT_MAX))
_FPS = (7, 9)


@st.composite
def _bucket(draw: st.DrawFn) -> tuple[int, int, int]:
    generation = draw(_GENERATIONS)
    fp = draw(st.sampled_from((0, *_FPS)))
    up_generation = draw(st.one_of(st.just(generation), _GENERATIONS))
    down_generation = draw(st.one_of(st.just(generation), _GENERATIONS))
    return (
        generation << 32 | fp,
        up_generation << 32 | draw(_PAYLOADS),
        down_generation << 32 | draw(_PAYLOADS),
    )


@settings(max_examples=500, deadline=None)
@given(
    buckets=st.lists(_bucket(), min_size=1, max_size=8),
    fp=st.sampled_from(_FPS),
    increment=st.one_of(st.integers(1, 3), st.integers(1, INCREMENT_MAX)),
    seed=st.integers(0, (1 << 64) - 1),
    decay=st.sampled_from((0.9, 0.5, 0.999, 1.0, 0.0, 0.1)),
    decays_left=st.one_of(st.integers(0, 3), st.integers(0, 4 * DECAYS_PER_ROW_MAX)),
)
def test_the_rows_in_c_run_as_the_rows_in_python(
    *,
    buckets: list[tuple[int, int, int]],
    fp: int,
    increment: int,
    seed: int,
    decay: float,
    decays_left: int,
) -> None:
    slots = [8 + 3 * i for i in range(len(buckets))]
    cache = {
        slot + j: value for slot, b in zip(slots, buckets, strict=True) for j, value in enumerate(b)
    }
    reference = Rows(dict(cache), decay, decays_left)
    expected = reference.add(slots, fp, increment, seed)
    indices: list[int] = []
    values: list[int] = []
    powers = struct.pack("=256d", *(decay**c for c in range(256)))
    best, left = _heavykeeper.rows(
        cache, indices, values, slots, fp, increment, seed, decays_left, powers, decay
    )
    assert (best, left) == (expected, reference.decays_left)
    assert (indices, values) == (reference.indices, reference.values)
    assert cache == reference.cache
