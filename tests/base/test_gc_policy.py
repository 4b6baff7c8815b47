"""The collector's thresholds a node runs under: set while the simulator runs (and only then:
the caller's come back, also after an error), as the server sets them for its life."""

from __future__ import annotations

import gc

import pytest

from hearsay.base.gc_policy import GC_THRESHOLDS, tuned_gc
from hearsay.sim.config import SimConfig
from hearsay.sim.world import Simulation


def test_thresholds_hold_inside_and_the_callers_come_back_after_an_error() -> None:
    before = gc.get_threshold()
    assert before != GC_THRESHOLDS, "the test runs under other thresholds"
    with pytest.raises(RuntimeError), tuned_gc():
        assert gc.get_threshold() == GC_THRESHOLDS
        raise RuntimeError("a failing block")
    assert gc.get_threshold() == before


def test_a_simulation_runs_its_nodes_under_the_nodes_thresholds() -> None:
    seen: list[tuple[int, int, int]] = []
    sim = Simulation(SimConfig(nodes=3, seed=1, duration_s=1, heal_s=1, writes=2))
    step = sim._step

    def watching(*args: object, **kwargs: object) -> None:
        seen.append(gc.get_threshold())
        step(*args, **kwargs)  # type: ignore[arg-type]

    sim._step = watching  # type: ignore[method-assign]
    before = gc.get_threshold()
    sim.run()
    assert seen and all(thresholds == GC_THRESHOLDS for thresholds in seen)
    assert gc.get_threshold() == before
