"""Memory of windowed keys against plain ones (issue 17: at most ``SLICES + 1`` times the plain
key).

In process, through the real command table and replica: for each family (HLL, Bloom filter,
count-min sketch, Top-K) it builds ``--keys`` plain keys holding ``--items`` items each, and as many
windowed keys (``WINDOW 10 SLICES 10``) written on virtual time for longer than a window, so
that every live slice holds ``--items`` items (the most a window holds at that rate), swept as
the runtime sweeps (every 50 ms of virtual time). Each figure is what tracemalloc saw the
keys take, per key (the replica, its command table and the items themselves are built before
measuring). Rounds alternate plain and windowed; the median ratio is judged.

    python bench/window_memory.py [--keys 20] [--items 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.verdict import Verdicts, add_arguments, spread
from tests.support.command_client import NOW_MS, REGISTRY

from hearsay.engine.replica import Replica
from hearsay.persist.identity import NodeIdentity
from hearsay.resp.commands import ClientContext

WINDOW_S = 10
SLICES = 10
SLICE_MS = WINDOW_S * 1000 // SLICES
SWEEP_MS = 50

FAMILIES = {
    "HLL": (("HEARSAY.PFRESERVE", "{key}", "14"), ("PFADD", "{key}", "{item}")),
    "Bloom": (("BF.RESERVE", "{key}", "0.01", "10000"), ("BF.ADD", "{key}", "{item}")),
    "CMS": (("CMS.INITBYDIM", "{key}", "2000", "5"), ("CMS.INCRBY", "{key}", "{item}", "1")),
    "TopK": (("TOPK.RESERVE", "{key}", "50"), ("TOPK.ADD", "{key}", "{item}")),
}


def _args(template: tuple[str, ...], key: str, item: str = "") -> list[bytes]:
    return [part.format(key=key, item=item).encode() for part in template]


def measure(family: str, windowed: bool, keys: int, items: int) -> float:
    """Bytes per key tracemalloc saw ``keys`` keys of ``family`` take."""
    create, write = FAMILIES[family]
    if windowed:
        create = (*create, "WINDOW", str(WINDOW_S), "SLICES", str(SLICES))
    db = Replica(NodeIdentity("0123456789abcdef", 1))
    ctx = ClientContext(client_id=1, db=db, now_ms=NOW_MS)
    names = [f"{family}:{k}" for k in range(keys)]
    calls = [
        [_args(write, name, f"item-{step}-{i}") for i in range(items)]
        for step in range(SLICES + 2 if windowed else 1)
        for name in names
    ]  # built before measuring: only the keys are counted
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for name in names:
        REGISTRY.dispatch(ctx, _args(create, name))
    steps = SLICES + 2 if windowed else 1
    for step in range(steps):  # one slice's worth of items per slice, sweeping as the runtime
        ctx.now_ms = NOW_MS + step * SLICE_MS
        for k in range(keys):
            for args in calls[step * keys + k]:
                REGISTRY.dispatch(ctx, args)
        for sweep in range(0, SLICE_MS, SWEEP_MS):
            db.expire_due(ctx.now_ms + sweep)
    del calls
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    for name in names:  # every windowed key holds at most SLICES + 1 slices
        entry = db.get(name.encode(), ctx.now_ms)
        assert entry is not None
        assert sum(1 for _ in entry.slices()) <= (SLICES + 1 if windowed else 1)
    return (after - before) / keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--items", type=int, default=2000, help="items per slice (and plain key)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", choices=sorted(FAMILIES))
    add_arguments(parser)
    args = parser.parse_args()
    verdicts = Verdicts.from_args(args)
    for family in args.only or FAMILIES:
        ratios: list[float] = []
        plain_bytes: list[float] = []
        windowed_bytes: list[float] = []
        for _ in range(args.rounds):
            plain = measure(family, False, args.keys, args.items)
            windowed = measure(family, True, args.keys, args.items)
            plain_bytes.append(plain)
            windowed_bytes.append(windowed)
            ratios.append(windowed / plain)
        print(f"{family}: plain key {spread(plain_bytes)} bytes")
        print(f"{family}: windowed key ({SLICES} slices) {spread(windowed_bytes)} bytes")
        verdicts.check(
            f"{family}: windowed / plain key memory",
            statistics.median(ratios),
            "<=",
            SLICES + 1,
            "x",
            note=spread(ratios),
        )
    return verdicts.finish("window_memory.py")


if __name__ == "__main__":
    sys.exit(main())
