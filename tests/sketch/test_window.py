"""The window arithmetic of windowed sketches (``sketch/window.py``): a write at ``t`` counts
from ``t`` until at least ``t + W`` and stops by ``ceil(t + W + W / SLICES)``; slice names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.schemas import bloom, cms, hll, topk
from hearsay.sketch.views import type_name, view_for
from hearsay.sketch.window import Window, WindowedView, slice_number, windowed

windows = st.builds(Window, st.integers(1_000, 10**9), st.integers(1, 64))


@given(windows, st.integers(0, 2**45))
def test_a_write_counts_for_the_window_and_stops_by_one_slice_later(
    window: Window, t_ms: int
) -> None:
    number = window.slice_at(t_ms)
    dies = window.dies_at_ms(number)
    assert dies > t_ms + window.window_ms - 1  # live at every ms in [t, t + W]
    assert window.oldest_live(t_ms + window.window_ms) <= number
    assert dies <= -(-(t_ms * window.slices + window.window_ms * (window.slices + 1))
                     // window.slices)  # fmt: skip
    assert window.oldest_live(dies) > number  # dead from its death on
    assert window.oldest_live(dies - 1) <= number  # and not a ms before


def test_windowed_schemas_carry_the_window_and_keep_their_plain_type() -> None:
    for plain in (hll(12), bloom(1000, 7, 100, 0.01), cms(100, 3), topk(5, 8, 7, 0.9)):
        schema = windowed(plain, 6_000, 6)
        view = view_for(schema)
        assert isinstance(view, WindowedView)
        assert view.plain_schema == plain
        assert view.window == Window(6_000, 6)
        assert schema.params[-2:] == (6_000, 6)
        assert type_name(schema) == type_name(plain)
        assert view.additive_inside == plain.additive  # count-min and Top-K: per origin


def test_bounds_are_checked() -> None:
    with pytest.raises(SketchParameterError):
        Window(999, 10)
    with pytest.raises(SketchParameterError):
        Window(6_000, 65)
    with pytest.raises(SketchParameterError):
        Window(6_000, 0)


def test_slice_names_and_which_are_live() -> None:
    plain = cms(10, 2)
    view = WindowedView(plain, Window(10_000, 10))
    assert view.slice_name(25_500, "node") == "25/node"
    assert slice_number("25/node") == 25
    for junk in ("", "x", "-1", "1e3", "٣", "9" * 21):
        assert slice_number(junk) is None
    vector = MaxVector.from_pairs([1], [1])
    slices = [("14/a", vector), ("15/a", vector), ("25/b", vector), ("junk", vector)]
    assert list(view.live(slices, 25_500)) == ["15/a", "25/b"]
    dead, next_ms = view.dead([name for name, _ in slices], 25_500)
    assert dead == ["14/a", "junk"]
    assert next_ms == view.window.dies_at_ms(15) == 26_000
