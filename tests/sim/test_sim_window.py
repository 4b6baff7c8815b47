"""Windowed keys in the simulator: written through real command tables by nodes whose clocks
are apart (each names its slices by its own clock), they converge, and every node answers
PFCOUNT, BF.MEXISTS and CMS.QUERY over the window as the reference join of every write does."""

from __future__ import annotations

import math

import pytest

from hearsay.sim.config import SimConfig, SkewSpec
from hearsay.sim.world import run
from hearsay.sketch.window import WINDOWED_KINDS

pytestmark = pytest.mark.sim


def test_windowed_keys_converge_under_clock_skew() -> None:
    config = SimConfig(
        nodes=6,
        seed=5,
        loss=0.02,
        skew=SkewSpec(400, 2000),
        duration_s=5,
        writes=80,
        windowed=True,
    )
    result, sim = run(config, wall_limit_s=math.inf)
    assert result["converged"], f"{result.get('problems')}\n{config.command()}"
    assert result["reply_errors"] == 0, result["problems"]
    windowed = {
        key
        for key, entry in sim.writes.reference.items()
        if entry.schema is not None and entry.schema.kind in WINDOWED_KINDS
    }
    kinds = {
        entry.schema.kind
        for key, entry in sim.writes.reference.items()
        if key in windowed and entry.schema is not None and not entry.is_empty()
    }
    assert kinds == WINDOWED_KINDS, config.command()  # every family written, and compared
    assert "--windowed" in config.command()
