"""Windowed keys in the simulator (on by default): written through real command tables by nodes
whose clocks are apart (each names its slices by its own clock), with a 2 s window whose slices
die many times a run, they converge, no node drops a slice before its time or keeps one past
it, and every node answers PFCOUNT, BF.MEXISTS, CMS.QUERY and TOPK.LIST over the window as
the reference join of every write does (``sim/window_check.py``). The checkers can fail: a
sweep that drops slices early, or never, is caught."""

from __future__ import annotations

import math

import pytest

import hearsay.engine.window_sweep
import hearsay.sketch.window
from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector
from hearsay.sim.config import SimConfig, SkewSpec
from hearsay.sim.window_check import WindowRule
from hearsay.sim.world import run
from hearsay.sketch.schemas import hll
from hearsay.sketch.window import WINDOWED_KINDS, Window, windowed

pytestmark = pytest.mark.sim


def _config() -> SimConfig:
    """No FLUSHALL: one would take away the windowed keys whose reads and slices these tests
    compare (the window rule's and the planted sweeps' evidence)."""
    return SimConfig(
        nodes=6,
        seed=5,
        loss=0.02,
        skew=SkewSpec(400, 2000),
        duration_s=5,
        writes=160,
        flushall=False,
    )


def test_windowed_keys_converge_under_clock_skew() -> None:
    config = _config()
    result, sim = run(config, wall_limit_s=math.inf)
    assert result["converged"], f"{result.get('problems')}\n{config.command()}"
    assert result["reply_errors"] == 0, result["problems"]
    windowed_keys = {
        key
        for key, entry in sim.writes.reference.items()
        if entry.schema is not None and entry.schema.kind in WINDOWED_KINDS
    }
    kinds = {
        entry.schema.kind
        for key, entry in sim.writes.reference.items()
        if key in windowed_keys and entry.schema is not None and not entry.is_empty()
    }
    assert kinds == WINDOWED_KINDS, config.command()  # every family written, and compared
    assert sum(node.windows.slices_dropped for node in sim.all_nodes) >= 50  # slices died
    assert "windowed" not in config.command()  # the default


def test_the_checkers_catch_a_sweep_that_drops_early_or_never(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live_from = hearsay.sketch.window.Window.oldest_live
    monkeypatch.setattr(  # a planted bug: every slice dies two slices early
        hearsay.sketch.window.Window, "oldest_live", lambda w, now: live_from(w, now) + 2
    )
    result, _ = run(_config(), wall_limit_s=math.inf)
    assert any(p.startswith("monotone:") for p in result["problems"]), result["problems"]
    monkeypatch.undo()
    monkeypatch.setattr(  # a planted bug: no dead slice is ever dropped
        hearsay.engine.window_sweep.SliceSweeper, "sweep", lambda *_, **__: []
    )
    result, _ = run(_config(), wall_limit_s=math.inf)
    assert any(p.startswith("window:") for p in result["problems"]), result["problems"]


def test_the_window_rule_on_entries() -> None:
    """A slice dying at ``d`` may be missing from a node from ``d - ahead`` on, and need not
    reach a node from ``d + behind`` on."""
    base = 1_000_000
    rule = WindowRule(base, lambda _: 100, lambda _: 300)
    window = Window(2_000, 4)  # slices of 500 ms; slice n dies at (n + 5) * 500
    entry = Entry(0, windowed(hll(12), 2_000, 4), slices={"2000": MaxVector.from_pairs([1], [3])})
    dies_ms = window.dies_at_ms(2000) - base  # true ms of its death
    assert rule.settled(entry, dies_ms - 101) is entry  # not droppable yet anywhere
    assert rule.settled(entry, dies_ms - 100).is_empty()  # a clock 100 ms ahead dropped it
    assert not rule.ended(entry, dies_ms + 299)
    assert rule.ended(entry, dies_ms + 300)  # dead on the slowest clock too
    assert not rule.ended(Entry(0, entry.schema), dies_ms + 10_000)  # a creation never ends
