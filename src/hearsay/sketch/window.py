"""Windowed sketches: an HLL, Bloom filter, count-min sketch or Top-K that counts only the last
``W`` ms.

Why slices named by absolute time: every replica must agree, without talking, which part of
a key a write at time ``t`` went to and when it stops counting. A windowed key is an additive
entry (one named slice per time slice) whose schema carries the window: the plain family's
parameters followed by ``(window_ms, slices)``. Time is cut into slices of ``W / SLICES`` ms
numbered from the epoch, ``n = floor(t * SLICES / W)`` (exact integer arithmetic, no rounded
slice length). A write at ``t`` goes to slice ``n``'s vector, named ``"<n>"`` for the
max-merged families (HLL, Bloom: every node raises the same slice) and ``"<n>/<origin>"`` for
the per-origin ones (count-min, Top-K: each node raises its own, reads sum them).

**Live slices** at ``now``: ``n >= floor(now * SLICES / W) - SLICES``, i.e. the current slice
and the ``SLICES`` before it. A write at ``t`` therefore counts from ``t`` until at least
``t + W`` and stops by ``ceil(t + W + W / SLICES)`` (:meth:`Window.dies_at_ms` of its slice).
Reads combine the live slices (HLL: register-wise max; Bloom: an item is present when one
live slice holds all its bits; count-min: the sum; Top-K: each live slice is one more
origin's list, merged as Top-K merges origins), whatever else is stored, so a dead slice
that is still stored (not swept yet, or a late copy from a peer) never changes an answer.
Dead slices are dropped by every replica on its own (``engine/window_sweep.py``).

Nothing here reads a clock: ``now_ms`` is an argument. The family views are not imported
(families never import each other): a windowed view knows its plain family's *schema*, and
the engine asks the registry for that schema's view.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.schemas import KIND_BLOOM, KIND_CMS, KIND_HLL, KIND_TOPK

__all__ = [
    "KIND_WBLOOM",
    "KIND_WCMS",
    "KIND_WHLL",
    "KIND_WTOPK",
    "SLICES_DEFAULT",
    "SLICES_MAX",
    "WINDOWED_KINDS",
    "WINDOW_MS_MAX",
    "WINDOW_MS_MIN",
    "Window",
    "WindowedView",
    "slice_number",
    "windowed",
]

WINDOW_MS_MIN: Final = 1_000
"""The shortest window: 1 s (shorter windows would be mostly clock skew between nodes)."""
WINDOW_MS_MAX: Final = 366 * 86_400_000
"""The longest window: a (leap) year."""
SLICES_DEFAULT: Final = 10
"""A write stops counting at most ``W / 10`` after ``t + W``; memory at most 11 plain keys."""
SLICES_MAX: Final = 64
"""Slices per window at most: a read combines up to ``SLICES + 1`` vectors, and a full key
holds ``SLICES + 1`` times the plain key's memory."""
SLICE_NAMES_REMEMBERED: Final = 4096
"""Slice names whose numbers :func:`slice_number` remembers (least recently used out: a peer
sending names of its own cannot grow it)."""

KIND_WHLL: Final = "whll"
KIND_WBLOOM: Final = "wbloom"
KIND_WCMS: Final = "wcms"
KIND_WTOPK: Final = "wtopk"
_KIND_OF: Final = {
    KIND_HLL: KIND_WHLL,
    KIND_BLOOM: KIND_WBLOOM,
    KIND_CMS: KIND_WCMS,
    KIND_TOPK: KIND_WTOPK,
}
_PLAIN_OF: Final = {windowed_kind: plain for plain, windowed_kind in _KIND_OF.items()}
_PER_ORIGIN: Final = frozenset({KIND_CMS, KIND_TOPK})
"""Plain families whose schema is additive (one slice per origin)."""
WINDOWED_KINDS: Final = frozenset(_PLAIN_OF)
"""The schema kinds of windowed keys (their slices die)."""


@dataclass(frozen=True, slots=True)
class Window:
    """A window of ``window_ms`` cut into ``slices`` slices of ``window_ms / slices`` ms."""

    window_ms: int
    slices: int

    def __post_init__(self) -> None:
        if not WINDOW_MS_MIN <= self.window_ms <= WINDOW_MS_MAX:
            raise SketchParameterError(
                f"WINDOW must be {WINDOW_MS_MIN // 1000}..{WINDOW_MS_MAX // 1000} seconds"
            )
        if not 1 <= self.slices <= SLICES_MAX:
            raise SketchParameterError(f"SLICES must be 1..{SLICES_MAX}")

    def slice_at(self, now_ms: int) -> int:
        """The number of the slice a write at ``now_ms`` goes to."""
        return now_ms * self.slices // self.window_ms

    def oldest_live(self, now_ms: int) -> int:
        """The lowest slice number that still counts at ``now_ms``."""
        return self.slice_at(now_ms) - self.slices

    def dies_at_ms(self, number: int) -> int:
        """The first millisecond at which slice ``number`` no longer counts."""
        return -(-(number + self.slices + 1) * self.window_ms // self.slices)


@functools.lru_cache(maxsize=SLICE_NAMES_REMEMBERED)
def slice_number(name: str) -> int | None:
    """The slice number a slice name starts with; None for a name no node writes (a
    misbehaving peer's), which reads ignore and the sweep drops. Remembered: every read and
    write of a windowed key reads the numbers of its live slices (~0.5 us a name parsed)."""
    head = name.partition("/")[0]
    if not head or len(head) > 20 or not head.isdigit() or not head.isascii():
        return None
    return int(head)


class WindowedView:
    """The view of a windowed schema: its plain family's schema and its :class:`Window`."""

    __slots__ = ("_schema", "additive_inside", "plain_schema", "window")

    def __init__(self, plain_schema: Schema, window: Window) -> None:
        kind = _KIND_OF.get(plain_schema.kind)
        if kind is None:
            raise SketchParameterError(f"{plain_schema.kind} keys cannot be windowed")
        self.plain_schema = plain_schema
        self.window = window
        self.additive_inside = plain_schema.additive
        """Slices are per time slice *and* origin (count-min, Top-K); otherwise per time
        slice."""
        params = (*plain_schema.params, window.window_ms, window.slices)
        self._schema = Schema(kind, params, plain_schema.size, additive=True).intern()

    @classmethod
    def from_schema(cls, schema: Schema) -> WindowedView:
        plain_kind = _PLAIN_OF.get(schema.kind)
        if plain_kind is None or len(schema.params) < 3 or not schema.additive:
            raise SketchParameterError(f"not a windowed schema: {schema}")
        *params, window_ms, slices = schema.params
        plain_additive = plain_kind in _PER_ORIGIN
        plain = Schema(plain_kind, tuple(params), schema.size, additive=plain_additive).intern()
        return cls(plain, Window(window_ms, slices))

    @property
    def schema(self) -> Schema:
        return self._schema

    def slice_name(self, now_ms: int, origin: str) -> str:
        """The slice a write by ``origin`` at ``now_ms`` raises."""
        number = self.window.slice_at(now_ms)
        return f"{number}/{origin}" if self.additive_inside else str(number)

    def live(self, slices: Iterable[tuple[str, MaxVector]], now_ms: int) -> dict[str, MaxVector]:
        """The slices that count at ``now_ms``, by name (their vectors, not copies)."""
        oldest = self.window.oldest_live(now_ms)
        out: dict[str, MaxVector] = {}
        for name, vector in slices:
            number = slice_number(name)
            if number is not None and number >= oldest:
                out[name] = vector
        return out

    def dead(self, names: Iterable[str], now_ms: int) -> tuple[list[str], int]:
        """The names among ``names`` that no longer count at ``now_ms``, and when the first
        of the others dies (0: none left)."""
        oldest = self.window.oldest_live(now_ms)
        dead: list[str] = []
        first_alive = -1
        for name in names:
            number = slice_number(name)
            if number is None or number < oldest:
                dead.append(name)
            elif first_alive < 0 or number < first_alive:
                first_alive = number
        return dead, 0 if first_alive < 0 else self.window.dies_at_ms(first_alive)

    def first_death_ms(self, names: Iterable[str]) -> int:
        """When the first of ``names`` dies (0 for a name no node writes: at once; -1: no
        names)."""
        first = -1
        for name in names:
            number = slice_number(name)
            if number is None:
                return 0
            if first < 0 or number < first:
                first = number
        return -1 if first < 0 else self.window.dies_at_ms(first)


def windowed(plain_schema: Schema, window_ms: int, slices: int = SLICES_DEFAULT) -> Schema:
    """The schema of a windowed key of ``plain_schema`` (HLL, Bloom filter, count-min or
    Top-K)."""
    return WindowedView(plain_schema, Window(window_ms, slices)).schema
