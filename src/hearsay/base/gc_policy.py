"""The cyclic garbage collector's thresholds for a process that runs nodes.

Why this module exists: a node allocates small objects by the million (entries, vectors,
member states, messages) and makes no reference cycles, so CPython's default thresholds
(700, 10, 10) ran the collector every few hundred commands, and its full collections walked
the whole heap again and again while a table of members filled. The server sets these for its
whole life; the simulator, which runs a thousand nodes in one process, sets them while it runs
(at 1,000 nodes the default cost ~15% of a run's first simulated seconds), so a simulated node
collects as a real one does.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

GC_THRESHOLDS: Final = (50_000, 20, 20)
"""Generation 0 after 50,000 net allocations (not 700); the older generations as before, in
proportion."""


def tune_gc() -> None:
    """Set :data:`GC_THRESHOLDS` for the rest of the process (``hearsay serve``)."""
    gc.set_threshold(*GC_THRESHOLDS)


@contextmanager
def tuned_gc() -> Iterator[None]:
    """:data:`GC_THRESHOLDS` while the block runs, the caller's thresholds after it."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
