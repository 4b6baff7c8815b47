"""EXPIRE's own path (``Keyspace.set_expiry`` changes the live entry's expiry in place) leaves the
keyspace as merging its delta does: a replica that merges every delta holds the same entries,
both keep bucket hashes equal to a recomputation and the same count of expiring keys, and both
expire the same keys at the same times."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.entry import MergeResult
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector
from tests.support.lattice_strategies import COUNTER, HLL, RAW

KEYS = (b"a", b"b", b"c")
SCHEMAS = {b"a": RAW, b"b": HLL, b"c": COUNTER}

_OPS = st.lists(
    st.tuples(
        st.sampled_from(["write", "expire", "persist", "delete", "tick"]),
        st.sampled_from(KEYS),
        st.integers(min_value=0, max_value=400),
    ),
    max_size=40,
)


def _apply(keyspace: Keyspace, op: str, key: bytes, amount: int, now_ms: int) -> MergeResult:
    if op == "write":
        origin = "n1" if SCHEMAS[key].additive else ""
        vector = MaxVector.from_items([(amount % 7, amount + 1)])
        return keyspace.write(key, SCHEMAS[key], {origin: vector}, now_ms)
    if op == "expire":  # a deadline before now (deletes), now, or later
        return keyspace.set_expiry(key, max(1, now_ms - 50 + amount), now_ms)
    if op == "persist":
        return keyspace.set_expiry(key, 0, now_ms)
    return keyspace.delete(key, now_ms)


def _recomputed(keyspace: Keyspace) -> list[int]:
    fresh = Keyspace(4)
    for key, entry in keyspace.items():
        fresh.merge(key, entry)
    return fresh.bucket_hashes().tolist()


@settings(max_examples=150, deadline=None)
@given(_OPS)
def test_an_expiry_set_in_place_is_what_merging_its_delta_makes(
    ops: list[tuple[str, bytes, int]],
) -> None:
    local, replica = Keyspace(4), Keyspace(4)
    now_ms = 1_000
    for op, key, amount in ops:
        if op == "tick":
            now_ms += amount
            for keyspace in (local, replica):
                keyspace.expire_due(now_ms)
            continue
        result = _apply(local, op, key, amount, now_ms)
        if result.delta is not None:
            replica.merge(key, result.delta)
        assert dict(local.items()) == dict(replica.items())
        assert local.bucket_hashes().tolist() == replica.bucket_hashes().tolist()
        assert local.bucket_hashes().tolist() == _recomputed(local)
        assert local.expiring_count == replica.expiring_count
    later = now_ms + 10_000
    assert sorted(k for k, _ in local.expire_due(later)) == sorted(
        k for k, _ in replica.expire_due(later)
    )
    assert dict(local.items()) == dict(replica.items())
