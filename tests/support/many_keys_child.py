"""Child process of tests/runtime/test_crash_many_keys.py: write to many keys until killed.

Usage: ``python many_keys_child.py DATA_DIR START``. Opens a real :class:`Replica` under
``--fsync always`` (the real command table, group committer and folds) holding ``KEYS``
dense 2000x5 count-min sketches (10 KB each: mid-size keys, staged as delta rows) and as many
counters (small keys, staged whole); creates and fills them when absent, prints ``ready``,
then for ``i = START, START + 1, ...``: CMS.INCRBY ``cms-{i % KEYS}`` by 1 and INCR
``ctr-{i % KEYS}``, a flush, and once its ticket completed, ``a <i>``. Folds come sooner
than on a node so that kills land around them. Bounded by ``MAX_WRITES`` and ``MAX_SECONDS``
(a safety net, never a requirement on speed).
"""

from __future__ import annotations

import os
import sys
import time
from typing import cast

from hearsay.engine.replica import Replica
from hearsay.persist import group_commit
from hearsay.persist.fsync import FsyncPolicy
from hearsay.resp.cluster_commands import ClusterControl
from hearsay.resp.commands import ClientContext
from hearsay.resp.server_commands import build_registry
from tests.support.command_client import NoServer

KEYS = 20
PREFILL_ITEMS = 2_500  # a 2000x5 sketch dense: 10 KB, between the delta thresholds
MAX_SECONDS = 240.0
MAX_WRITES = 100_000
FOLD_BYTES_RATIO = 1 / 32
"""Folds after a few writes per key, not dozens (what a fold does is unchanged)."""


def main() -> None:
    data_dir, start = sys.argv[1], int(sys.argv[2])
    out = sys.stdout.fileno()
    group_commit.FOLD_BYTES_RATIO = FOLD_BYTES_RATIO  # type: ignore[misc]
    registry = build_registry(NoServer(), cast(ClusterControl, object()))
    replica = Replica.open(data_dir, FsyncPolicy.ALWAYS, now_ms=1, commands=registry)
    session = ClientContext(client_id=1, db=replica)
    now_ms = int(time.time() * 1000)
    fill = [part for i in range(PREFILL_ITEMS) for part in (b"fill-%d" % i, b"1")]
    for k in range(KEYS):
        if replica.get(b"cms-%d" % k, now_ms) is None:
            replica.execute(session, [b"CMS.INITBYDIM", b"cms-%d" % k, b"2000", b"5"], now_ms)
            replica.execute(session, [b"CMS.INCRBY", b"cms-%d" % k, *fill], now_ms)
    ticket = replica.flush()
    if ticket is not None:
        ticket.result(timeout=60)
    os.write(out, b"ready\n")
    deadline = time.monotonic() + MAX_SECONDS
    for i in range(start, start + MAX_WRITES):
        if time.monotonic() > deadline:
            break
        now_ms = int(time.time() * 1000)
        k = i % KEYS
        replica.execute(session, [b"CMS.INCRBY", b"cms-%d" % k, b"item-%d" % i, b"1"], now_ms)
        replica.execute(session, [b"INCR", b"ctr-%d" % k], now_ms)
        ticket = replica.flush()
        assert ticket is not None
        ticket.result(timeout=60)
        os.write(out, b"a %d\n" % i)
    os.write(out, b"done\n")
    replica.close()


if __name__ == "__main__":
    main()
