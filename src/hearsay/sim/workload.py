"""The clients: when commands run, on which node, and which commands.

Why this module exists: the workload is drawn from its own random stream, so changing a fault
or the network never changes which commands a seed sends. It sends real commands of every
family through a node's command table: PFADD (HLL), BF.ADD (Bloom), CMS.INCRBY (count-min,
after a CMS.INITBYDIM that fails harmlessly once the key exists), INCRBY/DECRBY (counters),
VMAX (vectors), and now and then DEL and EXPIRE of any key; a fifth of the clients first add
values to a t-digest (TDIGEST.ADD after a TDIGEST.CREATE that fails harmlessly once the key
exists), a fifth add an item to a cuckoo filter or delete one (CF.ADDNX / CF.DEL after a
CF.RESERVE that fails harmlessly once the key exists), a fifth add items to a Top-K
(TOPK.INCRBY after a TOPK.RESERVE that fails harmlessly once the key exists), and (unless
``--no-windowed``) a fifth write to a windowed HLL, Bloom filter, count-min sketch or Top-K
(after its creation with WINDOW, which answers OK or fails harmlessly once the key exists);
and (unless ``--no-flushall``) now and then a client runs FLUSHALL, so the replicated flush floor
meets concurrent writes, partitions and crashes (the checkers count a write below a node's floor
as held there: FLUSHALL superseded it); and (unless ``--no-lifecycle``) now and then a client
deletes or expires a t-digest, cuckoo, Top-K or windowed key (the next client writing it makes
it anew), and a third of the clients add items beyond the read ones to one Bloom filter, so
it grows sub-filters while nodes write it concurrently.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Final

from hearsay.sim.config import SimConfig

FAMILIES: Final = ("hll", "bloom", "cms", "counter", "vector")
DELETE_SHARE: Final = 0.06
EXPIRE_SHARE: Final = 0.06
EXPIRE_S_MAX: Final = 4
"""EXPIRE deadlines fall within the run, so expiry sweeps happen under faults."""
MAY_FAIL: Final = frozenset(
    {b"CMS.INITBYDIM", b"TDIGEST.CREATE", b"CF.RESERVE", b"TOPK.RESERVE", b"BF.RESERVE"}
)
"""Commands whose error replies are expected (the key exists already); any other error
reply to the workload's commands is a bug."""
ITEMS: Final = 64
TDIGEST_SHARE: Final = 0.2
"""Clients that also add to a t-digest first. Drawn from a stream of their own (seeded from
the run's seed), so the other families' commands of a seed stay what they were."""
"""Members and items are drawn from a small set, so repeats (no-op writes) happen too."""
CF_SHARE: Final = 0.2
"""Clients that also write to a cuckoo filter first (a stream of its own, as the t-digest's)."""
TOPK_SHARE: Final = 0.2
"""Clients that also add to a Top-K first (a stream of its own, as the t-digest's)."""
WINDOWED_SHARE: Final = 0.1
"""Clients that also write to a windowed key first (a stream of its own; a tenth, so the
default run costs about what it did without them): created with its
write, on the same node, so no node makes a plain key of its name. The window is short (2 s in
4 slices of 500 ms), so slices die and are dropped many times a run, under faults and clock
skew; the checkers hold the nodes to the window rule (``sim/window_check.py``)."""
FLUSHALL_SHARE: Final = 0.008
"""Clients that run FLUSHALL (after their other commands; a stream of its own): about one
run in two of the default 100 clients has one, so most writes still reach the reads the
checkers compare."""
LIFECYCLE_SHARE: Final = 0.05
"""Clients that first DEL or EXPIRE a key of the newer families (a stream of its own)."""
BLOOM_FILL_SHARE: Final = 0.3
BLOOM_FILL_ITEMS: Final = 10
"""Clients that first add this many further items (of 10,000) to the first Bloom key, which
a BF.ADD made with RedisBloom's defaults (capacity 100, expansion 2): a run of 100 clients
adds about 300, so it grows two or three sub-filters."""
WINDOW_ARGS: Final = (b"WINDOW", b"2", b"SLICES", b"4")
WINDOWED_CREATE: Final = {
    b"whll": [b"HEARSAY.PFRESERVE", b"{}", *WINDOW_ARGS],
    b"wbloom": [b"BF.RESERVE", b"{}", b"0.01", b"100", *WINDOW_ARGS],
    b"wcms": [b"CMS.INITBYDIM", b"{}", b"64", b"4", *WINDOW_ARGS],
    b"wtopk": [b"TOPK.RESERVE", b"{}", b"3", b"8", b"4", b"0.9", *WINDOW_ARGS],
}


class Workload:
    """Commands at random times to random live nodes, over ``config.keys`` keys."""

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.keys = [
            (FAMILIES[k % len(FAMILIES)], f"{FAMILIES[k % len(FAMILIES)]}:{k}".encode())
            for k in range(config.keys)
        ]
        self.tdigest_keys = [b"tdigest:%d" % k for k in range(max(1, config.keys // 5))]
        self.tdigest_rng = random.Random(config.seed * 1_000_003 + 16)
        self.cf_keys = [b"cf:%d" % k for k in range(max(1, config.keys // 5))]
        self.cf_rng = random.Random(config.seed * 1_000_003 + 17)
        self.topk_keys = [b"topk:%d" % k for k in range(max(1, config.keys // 5))]
        self.topk_rng = random.Random(config.seed * 1_000_003 + 18)
        self.windowed_keys = [
            b"%s:%d" % (family, k)
            for k in range(max(1, config.keys // 5))
            for family in WINDOWED_CREATE
        ]
        self.windowed_rng = random.Random(config.seed * 1_000_003 + 19)
        self.flushall_rng = random.Random(config.seed * 1_000_003 + 20)
        self.lifecycle_rng = random.Random(config.seed * 1_000_003 + 21)
        self.lifecycle_keys = [*self.tdigest_keys, *self.cf_keys, *self.topk_keys]
        if config.windowed:
            self.lifecycle_keys += self.windowed_keys
        self.fill_key = next((key for family, key in self.keys if family == "bloom"), None)

    def schedule(self, push: Callable[[int, str, Any, Any], None]) -> None:
        duration_ms = int(self.config.duration_s * 1000)
        for _ in range(self.config.writes):
            at = self.rng.randint(min(500, duration_ms // 4), max(1, duration_ms - 1))
            push(at, "write", None, None)

    def pick_node(self, live: list[int]) -> int:
        return self.rng.choice(live)

    def next_commands(self) -> list[list[bytes]]:
        """One client's commands, run in order on one node (the last one is the write)."""
        commands = self._family_commands()
        if self.config.flushall and self.flushall_rng.random() < FLUSHALL_SHARE:
            commands = [*commands, [b"FLUSHALL"]]
        if self.config.lifecycle:
            commands = [*self._lifecycle_commands(), *commands]
        windowed = self.windowed_rng
        if self.config.windowed and windowed.random() < WINDOWED_SHARE:
            key = self.windowed_keys[windowed.randrange(len(self.windowed_keys))]
            family = key.partition(b":")[0]
            create = [key if arg == b"{}" else arg for arg in WINDOWED_CREATE[family]]
            item = b"item-%d" % windowed.randrange(ITEMS)
            windowed_write = {
                b"whll": [b"PFADD", key, item],
                b"wbloom": [b"BF.ADD", key, item],
                b"wcms": [b"CMS.INCRBY", key, item, b"%d" % windowed.randint(1, 9)],
                b"wtopk": [b"TOPK.INCRBY", key, item, b"%d" % windowed.randint(1, 9)],
            }[family]
            commands = [create, windowed_write, *commands]
        cf = self.cf_rng
        if cf.random() < CF_SHARE:
            key = self.cf_keys[cf.randrange(len(self.cf_keys))]
            item = b"item-%d" % cf.randrange(ITEMS)
            write = b"CF.DEL" if cf.random() < 0.3 else b"CF.ADDNX"
            commands = [[b"CF.RESERVE", key, b"128"], [write, key, item], *commands]
        top = self.topk_rng
        if top.random() < TOPK_SHARE:
            key = self.topk_keys[top.randrange(len(self.topk_keys))]
            pairs: list[bytes] = []
            for _ in range(top.randint(1, 3)):  # skewed: low items are heavy
                pairs += [
                    b"item-%d" % (int(top.paretovariate(1.0) - 1) % ITEMS),
                    b"%d" % top.randint(1, 9),
                ]
            reserve = [b"TOPK.RESERVE", key, b"3", b"8", b"4", b"0.9"]
            commands = [reserve, [b"TOPK.INCRBY", key, *pairs], *commands]
        extra = self.tdigest_rng
        if extra.random() < TDIGEST_SHARE:
            key = self.tdigest_keys[extra.randrange(len(self.tdigest_keys))]
            values = [b"%d" % extra.randrange(1000) for _ in range(extra.randint(1, 4))]
            create = [b"TDIGEST.CREATE", key, b"COMPRESSION", b"1"]  # rewritten every 5 values
            return [create, [b"TDIGEST.ADD", key, *values], *commands]
        return commands

    def _lifecycle_commands(self) -> list[list[bytes]]:
        """A DEL or EXPIRE of a newer family's key, or a Bloom filter's further items (or
        nothing): drawn from their own stream."""
        life = self.lifecycle_rng
        roll = life.random()
        if roll < LIFECYCLE_SHARE:
            key = self.lifecycle_keys[life.randrange(len(self.lifecycle_keys))]
            if life.random() < 0.5:
                return [[b"DEL", key]]
            return [[b"EXPIRE", key, b"%d" % life.randint(1, EXPIRE_S_MAX)]]
        if roll < LIFECYCLE_SHARE + BLOOM_FILL_SHARE and self.fill_key is not None:
            items = [b"fill-%d" % life.randrange(10_000) for _ in range(BLOOM_FILL_ITEMS)]
            return [[b"BF.MADD", self.fill_key, *items]]
        return []

    def _family_commands(self) -> list[list[bytes]]:
        rng = self.rng
        family, key = self.keys[rng.randrange(len(self.keys))]
        roll = rng.random()
        if roll < DELETE_SHARE:
            return [[b"DEL", key]]
        if roll < DELETE_SHARE + EXPIRE_SHARE:
            return [[b"EXPIRE", key, b"%d" % rng.randint(1, EXPIRE_S_MAX)]]
        item = b"item-%d" % rng.randrange(ITEMS)
        if family == "hll":
            members = [b"m-%d" % rng.randrange(1 << 20) for _ in range(rng.randint(1, 4))]
            return [[b"PFADD", key, *members]]
        if family == "bloom":
            return [[b"BF.ADD", key, item]]
        if family == "cms":
            amount = b"%d" % rng.randint(1, 9)
            return [[b"CMS.INITBYDIM", key, b"64", b"4"], [b"CMS.INCRBY", key, item, amount]]
        if family == "counter":
            step = rng.randint(-5, 20) or 1
            if step < 0:
                return [[b"DECRBY", key, b"%d" % -step]]
            return [[b"INCRBY", key, b"%d" % step]]
        pairs: list[bytes] = []
        for _ in range(rng.randint(1, 3)):
            pairs += [b"%d" % rng.randrange(1 << 20), b"%d" % rng.randint(1, 1000)]
        return [[b"VMAX", key, *pairs]]

    @staticmethod
    def reads(key: bytes) -> list[list[bytes]]:
        """The read commands whose answers the checkers compare for ``key``: its type and
        time to live, and its family's own reads over every item the workload may add."""
        items = [b"item-%d" % k for k in range(ITEMS)]
        family = key.partition(b":")[0]
        read = {
            b"hll": [b"PFCOUNT", key],
            b"bloom": [b"BF.MEXISTS", key, *items],
            b"cms": [b"CMS.QUERY", key, *items],
            b"counter": [b"GET", key],
            b"vector": [b"VGET", key],
            b"tdigest": [b"TDIGEST.QUANTILE", key, b"0", b"0.5", b"1"],
            b"cf": [b"CF.MEXISTS", key, *items],
            b"topk": [b"TOPK.LIST", key, b"WITHCOUNT"],
            b"whll": [b"PFCOUNT", key],
            b"wbloom": [b"BF.MEXISTS", key, *items],
            b"wcms": [b"CMS.QUERY", key, *items],
            b"wtopk": [b"TOPK.LIST", key, b"WITHCOUNT"],
        }[family]
        return [[b"TYPE", key], [b"PTTL", key], read]
