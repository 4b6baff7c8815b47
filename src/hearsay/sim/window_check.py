"""The window rule, as the simulator's checkers hold windowed keys to it.

Why a module: a windowed key (``sketch/window.py``) legitimately loses what was written to it,
so the checkers' rules "a node never loses what it held" and "every node ends up holding every
write" must not count a dead slice as lost. What they check instead, with ``W`` the window,
``S`` its slices and ``B`` the documented clock skew bound (``ahead`` and ``behind`` true
time, from the run's ``--skew`` and ``--clock-step``s):

- a write at true time ``t`` stays visible: no node drops its slice before the slice's death
  on that node's clock (``t + W`` on the writer's clock), at least ``t + W - ahead - behind``
  in true time (the monotone and durability checkers forgive only slices that die by
  ``now + ahead``);
- it reaches every node while its slice is live somewhere (the write tracker stops asking for
  it once its slice died on every clock, ``death <= now - behind``);
- it is gone by ``t + W + W/S + B``: after convergence no node still stores a slice dead on
  every clock (beyond one sweep interval), and every read answers as the reference join of
  every write does at an instant at most ``ahead`` past now (nodes whose clocks run ahead
  dropped the slices that die in between, identically once converged).

Nothing here steers the run: these are pure functions of entries, times and the bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import Keyspace
from hearsay.sketch.views import view_as
from hearsay.sketch.window import WINDOWED_KINDS, WindowedView, slice_number

__all__ = ["WindowRule", "matching"]


def _view(entry: Entry) -> WindowedView | None:
    schema = entry.schema
    if schema is None or schema.kind not in WINDOWED_KINDS:
        return None
    try:
        return view_as(schema, WindowedView)
    except SketchParameterError:
        return None


def _deaths_ms(view: WindowedView, names: Iterable[str]) -> list[int]:
    """Each named slice's death (0 for a name no node writes: dead at once)."""
    out: list[int] = []
    for name in names:
        number = slice_number(name)
        out.append(0 if number is None else view.window.dies_at_ms(number))
    return out


@dataclass(frozen=True, slots=True)
class WindowRule:
    """The window rule at true time ``sim_ms`` (``base_unix_ms`` is true time 0 in Unix ms)."""

    base_unix_ms: int
    ahead_ms: Callable[[int], int]
    """How far ahead of true time a node's clock may be at ``sim_ms``."""
    behind_ms: Callable[[int], int]
    """How far behind true time a node's clock may be at ``sim_ms``."""

    def _droppable_by(self, sim_ms: int) -> int:
        """Slices dying at or before this (Unix ms) may be dropped by some node now."""
        return self.base_unix_ms + sim_ms + self.ahead_ms(sim_ms)

    def settled(self, entry: Entry, sim_ms: int) -> Entry:
        """``entry`` without the slices some node may legitimately have dropped by ``sim_ms``
        (``entry`` itself when it is not windowed or nothing of it may be dropped)."""
        view = _view(entry)
        if view is None:
            return entry
        names = [name for name, _ in entry.slices()]
        by_ms = self._droppable_by(sim_ms)
        dead = [n for n, at in zip(names, _deaths_ms(view, names), strict=True) if at <= by_ms]
        if not dead:
            return entry
        kept = entry.copy()
        kept.drop_slices(dead)
        return kept

    def ended(self, delta: Entry, sim_ms: int) -> bool:
        """Whether a windowed write's slices have all died on every clock by ``sim_ms``: no
        node need hold it any more (a creation, without slices, never ends)."""
        view = _view(delta)
        if view is None:
            return False
        deaths = _deaths_ms(view, (name for name, _ in delta.slices()))
        everywhere_ms = self.base_unix_ms + sim_ms - self.behind_ms(sim_ms)
        return bool(deaths) and max(deaths) <= everywhere_ms

    def instants_ms(self, keyspace: Keyspace, sim_ms: int) -> list[int]:
        """The true times (sim ms) at which the reference is read beside ``sim_ms``: each
        death of a stored windowed slice within ``(now, now + ahead]``."""
        now_unix = self.base_unix_ms + sim_ms
        by_ms = self._droppable_by(sim_ms)
        out: set[int] = set()
        for _, entry in keyspace.items():
            view = _view(entry)
            if view is None:
                continue
            names = [name for name, _ in entry.slices()]
            out.update(at for at in _deaths_ms(view, names) if now_unix < at <= by_ms)
        return sorted(at - self.base_unix_ms for at in out)

    def kept_dead(self, node: int, keyspace: Keyspace, sim_ms: int, sweep_ms: int) -> list[str]:
        """Windowed slices ``node`` still stores though they died on every clock more than
        one sweep interval (``sweep_ms``) ago."""
        everywhere_ms = self.base_unix_ms + sim_ms - self.behind_ms(sim_ms) - sweep_ms
        problems: list[str] = []
        for key, entry in keyspace.items():
            view = _view(entry)
            if view is None:
                continue
            names = [name for name, _ in entry.slices()]
            dead = [n for n, at in zip(names, _deaths_ms(view, names), strict=True)
                    if at <= everywhere_ms]  # fmt: skip
            if dead:
                problems.append(f"window: node {node} key {key!r} still holds dead {dead[:3]}")
        return problems


def matching(
    answers: dict[bytes, list[object]], candidates: list[dict[bytes, list[object]]]
) -> dict[bytes, list[object]]:
    """Per key, the first of the reference's ``candidates`` (its answers at the instants
    :meth:`WindowRule.instants_ms` names, now first) equal to the cluster's ``answers``; the
    answer now where none is."""
    first = candidates[0]
    out: dict[bytes, list[object]] = {}
    for key, expected in first.items():
        got = answers.get(key)
        out[key] = next((c[key] for c in candidates if c.get(key) == got), expected)
    return out
