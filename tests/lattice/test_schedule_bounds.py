"""The keyspace's deadline and tombstone heaps stay bounded by the keys they can act on, however
often a key is re-expired or deleted and written again, and lose none of their valid items
(``Keyspace._track_deadline`` rebuilds a heap once stale items outnumber the valid ones)."""

from __future__ import annotations

import random

from hearsay.lattice.keyspace import SCHEDULE_SLACK, Keyspace
from hearsay.lattice.vector import MaxVector
from tests.support.lattice_strategies import RAW

CHANGES = 20_000


def _write(keyspace: Keyspace, key: bytes, now_ms: int) -> None:
    assert keyspace.write(key, RAW, {"": MaxVector.from_items([(0, 1)])}, now_ms).changed


def test_a_key_re_expired_again_and_again_keeps_one_deadline_item_and_expires_at_the_last() -> None:
    keyspace = Keyspace(4)
    _write(keyspace, b"k", 1)
    for step in range(CHANGES):  # EXPIRE k 100000 in a loop: a later deadline each call
        assert keyspace.set_expiry(b"k", 100_000_000 + step, now_ms=10 + step).changed
        assert keyspace.scheduled[0] <= 2 + SCHEDULE_SLACK + 1
    last = 100_000_000 + CHANGES - 1
    assert keyspace.expire_due(now_ms=last - 1) == []  # no stale deadline expires it early
    assert [key for key, _ in keyspace.expire_due(now_ms=last)] == [b"k"]


def test_many_keys_re_expired_expire_exactly_when_their_last_deadline_says() -> None:
    rng = random.Random(7)
    keyspace = Keyspace(64)
    keys = [b"k%d" % i for i in range(3_000)]
    deadlines: dict[bytes, int] = {}
    for key in keys:
        _write(keyspace, key, 1)
    for step in range(CHANGES):  # several deadlines per key, later or earlier
        key = rng.choice(keys)
        deadline = rng.randrange(1_000_000, 2_000_000)
        if keyspace.set_expiry(key, deadline, now_ms=10 + step).changed:
            deadlines[key] = deadline
        assert keyspace.scheduled[0] <= 2 * len(keys) + SCHEDULE_SLACK + 1
    expired: list[bytes] = []
    for now_ms in range(1_000_000, 2_000_001, 50_000):
        due = sorted(key for key, deadline in deadlines.items() if deadline <= now_ms)
        expired += (key for key, _ in keyspace.expire_due(now_ms, limit=len(keys)))
        assert sorted(expired) == due


def test_a_key_deleted_and_written_again_and_again_keeps_its_tombstone_items_bounded() -> None:
    keyspace = Keyspace(4)
    now_ms = 1
    for _ in range(CHANGES // 2):
        _write(keyspace, b"k", now_ms)
        assert keyspace.delete(b"k", now_ms + 1).changed
        now_ms += 2
        assert keyspace.scheduled[1] <= 2 + SCHEDULE_SLACK + 1
    assert keyspace.purge_tombstones(now_ms - 2) == []  # its tombstone is the latest's
    assert keyspace.purge_tombstones(now_ms) == [b"k"]
