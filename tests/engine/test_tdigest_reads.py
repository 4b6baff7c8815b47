"""A t-digest's merged digest is remembered between reads until the key changes: whatever
mix of local adds, peers' deltas (whole or in pieces), RESET, DEL and expiry comes between
two reads, the remembered answer is the one computed afresh from the key's slices."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.engine.families import tdigest
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector
from hearsay.persist.identity import NodeIdentity
from hearsay.sketch.tdigest import Digest, TDigest

NOW_MS = 1_700_000_000_000
KEY = b"t"

values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from((0, 1)), values),
        st.tuples(st.just("sync"), st.sampled_from((0, 1)), st.integers(1, 4)),
        st.tuples(st.sampled_from(("reset", "del", "expire", "read")), st.sampled_from((0, 1))),
    ),
    max_size=40,
)


def _fresh(db: Replica, now_ms: int) -> Digest | None:
    entry = db.get(KEY, now_ms)
    if entry is None or entry.schema is None:
        return None
    return TDigest.from_schema(entry.schema).digest(dict(entry.slices()))


def _same(a: Digest, b: Digest) -> bool:
    return (
        np.array_equal(a.means, b.means)
        and np.array_equal(a.weights, b.weights)
        and (a.minimum, a.maximum) == (b.minimum, b.maximum)
    )


def _sync(source: Replica, target: Replica, pieces: int, now_ms: int) -> None:
    """``source``'s entry delivered to ``target`` in ``pieces`` parts (each slice cut by index)."""
    entry = source.get(KEY, now_ms)
    if entry is None:
        return
    for part in range(pieces):
        slices = {}
        for origin, vec in entry.slices():
            indices, vals = vec.pairs()
            keep = (indices.astype(np.int64) % pieces) == part
            if keep.any():
                slices[origin] = MaxVector.from_pairs(indices[keep], vals[keep])
        target.merge_remote(KEY, Entry(entry.epoch, entry.schema, entry.expiry, slices))


@settings(max_examples=60, deadline=None)
@given(steps)
def test_remembered_digests_are_the_fresh_ones(history: list[tuple[object, ...]]) -> None:
    nodes = [Replica(NodeIdentity("a" * 16, 1)), Replica(NodeIdentity("b" * 16, 1))]
    now_ms = NOW_MS
    for db in nodes:
        tdigest.create(db, KEY, 20, now_ms)  # compression 20: buffers compress often
    for step in history:
        now_ms += 1
        kind, node = step[0], nodes[int(step[1])]  # type: ignore[call-overload]
        if node.get(KEY, now_ms) is None:
            tdigest.create(node, KEY, 20, now_ms)
        if kind == "add":
            tdigest.add(node, KEY, [list(step[2])], now_ms)  # type: ignore[call-overload]
        elif kind == "sync":
            _sync(node, nodes[1 - int(step[1])], int(step[2]), now_ms)  # type: ignore[call-overload]
        elif kind == "reset":
            tdigest.reset(node, KEY, now_ms)
        elif kind == "del":
            node.delete([KEY], now_ms)
        elif kind == "expire":
            node.expire_at(KEY, now_ms + 1, now_ms)
        for db in nodes:  # every step is followed by a read on both nodes
            fresh = _fresh(db, now_ms)
            if fresh is not None:
                assert _same(tdigest.digest(db, KEY, now_ms), fresh)
