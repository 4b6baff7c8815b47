"""Child process of tests/runtime/test_crash_large.py: write to big keys until killed.

Usage: ``python big_key_child.py DATA_DIR MODE``. Opens a real :class:`Replica` under
``--fsync always`` (the real command table, the real group committer and its folds) on a
1M-capacity Bloom filter ``bf`` and a 20000x7 count-min sketch ``cms`` (created, and filled
big enough to be flushed as deltas, when absent; folds due sooner than on a node), prints
``ready``, then forever: BF.ADD of item ``i`` and CMS.INCRBY of ``item`` by 1, a flush, and
once its ticket completed, ``a <i>`` (both writes of ``i`` acknowledged). The writer's folds
print ``f <n>`` when fold ``n`` starts.

``MODE``: ``run`` folds as the node would; ``hold`` blocks inside the first fold (after its
transaction read the rows, before it writes) until stdin closes, so the parent can SIGKILL the
child in the middle of a fold. Bounded: it stops by itself after ``MAX_WRITES`` writes or
``MAX_SECONDS`` (a safety net, never a requirement on speed).
"""

from __future__ import annotations

import os
import sys
import time
from typing import cast

from hearsay.engine.data_dir import fold_entry_blobs
from hearsay.engine.replica import Replica
from hearsay.persist import group_commit
from hearsay.persist.fsync import FsyncPolicy
from hearsay.persist.group_commit import GroupCommit
from hearsay.resp.cluster_commands import ClusterControl
from hearsay.resp.commands import ClientContext
from hearsay.resp.server_commands import build_registry
from tests.support.command_client import NoServer

MAX_SECONDS = 240.0
MAX_WRITES = 200_000
PREFILL_ITEMS = 3_000  # both keys over 64 KiB: flushed as deltas
FOLD_BYTES_RATIO = 1 / 32
"""Folds come 16 times sooner than on a node (after about 50 writes, not 800), so that kills
land during folds and the test stays short; what a fold does is unchanged."""


def item(i: int) -> bytes:
    return b"item-%d" % i


def main() -> None:
    data_dir, mode = sys.argv[1:3]
    out = sys.stdout.fileno()
    folds = 0

    def fold(base: bytes | None, deltas: list[bytes]) -> bytes:
        nonlocal folds
        folds += 1
        os.write(out, b"f %d\n" % folds)
        if mode == "hold":
            sys.stdin.buffer.read()  # until the parent closes it (it kills us first)
        return fold_entry_blobs(base, deltas)

    registry = build_registry(NoServer(), cast(ClusterControl, object()))
    replica = Replica.open(data_dir, FsyncPolicy.ALWAYS, now_ms=1, commands=registry)
    storage = replica.storage
    assert isinstance(storage, GroupCommit)
    storage._fold = fold  # the real fold, announced (and held in ``hold`` mode)
    group_commit.FOLD_BYTES_RATIO = FOLD_BYTES_RATIO  # type: ignore[misc]
    session = ClientContext(client_id=1, db=replica)
    now_ms = int(time.time() * 1000)
    if replica.get(b"bf", now_ms) is None:
        replica.execute(session, [b"BF.RESERVE", b"bf", b"0.01", b"1000000"], now_ms)
        fill = [b"fill-%d" % i for i in range(PREFILL_ITEMS)]
        replica.execute(session, [b"BF.MADD", b"bf", *fill], now_ms)
        replica.execute(session, [b"CMS.INITBYDIM", b"cms", b"20000", b"7"], now_ms)
        increments = [part for name in fill for part in (name, b"1")]
        replica.execute(session, [b"CMS.INCRBY", b"cms", *increments], now_ms)
        ticket = replica.flush()
        assert ticket is not None
        ticket.result(timeout=60)
    os.write(out, b"ready\n")
    deadline = time.monotonic() + MAX_SECONDS
    start = int(os.environ.get("BIG_KEY_CHILD_START", "0"))
    for i in range(start, start + MAX_WRITES):
        if time.monotonic() > deadline:
            break
        now_ms = int(time.time() * 1000)
        assert replica.execute(session, [b"BF.ADD", b"bf", item(i)], now_ms) in (0, 1)
        replica.execute(session, [b"CMS.INCRBY", b"cms", b"item", b"1"], now_ms)
        ticket = replica.flush()
        assert ticket is not None
        ticket.result(timeout=60)
        os.write(out, b"a %d\n" % i)
    os.write(out, b"done\n")
    replica.close()


if __name__ == "__main__":
    main()
