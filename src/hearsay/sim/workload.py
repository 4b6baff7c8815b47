"""The clients: when writes happen, to which node and key, and what they write.

Why this module exists: the workload is drawn from its own random stream, so changing a fault
or the network never changes which writes a seed makes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sim.config import SimConfig
from hearsay.sketch import schemas
from hearsay.sketch.counter import PNCounter
from hearsay.sketch.hyperloglog import HyperLogLog


class Workload:
    """Writes at random times to random live nodes, over ``config.keys`` keys of three kinds."""

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        kinds = [schemas.hll(), schemas.vector(), schemas.counter()]
        self.keys: list[tuple[bytes, Schema]] = [
            (f"{kinds[k % 3].kind}:{k}".encode(), kinds[k % 3]) for k in range(config.keys)
        ]

    def schedule(self, push: Callable[[int, str, Any, Any], None]) -> None:
        duration_ms = int(self.config.duration_s * 1000)
        for _ in range(self.config.writes):
            at = self.rng.randint(min(500, duration_ms // 4), max(1, duration_ms - 1))
            push(at, "write", None, None)

    def pick_node(self, live: list[int]) -> int:
        return self.rng.choice(live)

    def next_write(
        self, entry_of: Callable[[bytes], Entry | None], origin: str
    ) -> tuple[bytes, Schema, dict[str, MaxVector]]:
        """The next write: key, schema and the slices to merge (``origin`` names the
        writer's own slice of an additive key)."""
        rng = self.rng
        key, schema = self.keys[rng.randrange(len(self.keys))]
        if schema.kind == "hll":
            members = [rng.randbytes(8) for _ in range(rng.randint(1, 4))]
            idx, val = HyperLogLog().add(members)
            return key, schema, {"": MaxVector.from_pairs(idx, val)}
        if schema.kind == "counter":
            entry = entry_of(key)
            current = {} if entry is None else dict(entry.slices())
            pairs, _ = PNCounter().incrby(current, origin, rng.randint(-5, 20) or 1)
            return key, schema, {origin: MaxVector.from_pairs(*pairs)}
        count = rng.randint(1, 3)
        idx_list = [rng.randrange(1 << 20) for _ in range(count)]
        return key, schema, {"": MaxVector.from_pairs(idx_list, [rng.randint(1, 1000)] * count)}
