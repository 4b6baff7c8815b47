"""Bytes per key in a hearsay keyspace, measured as process RSS growth (not a test).

Two shapes, as in the foundation issue:
- 100,000 small keys with 10 HLL-style registers each (sparse HLLs);
- 100 dense keys with 16,384 registers each (dense HLLs).

Each shape is measured in a fresh child process so the two never share freed memory. Redis's
figures were measured on this machine with the same shapes (RSS growth per key): 174 bytes per
small HLL key and 14.4 KB per dense one. Targets: within 2x for small keys, 1.2x for dense.

    python bench/memory.py [--small N] [--dense N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

REDIS_SMALL_BYTES = 174
REDIS_DENSE_BYTES = 14.4 * 1024
TARGET_SMALL_RATIO = 2.0
TARGET_DENSE_RATIO = 1.2


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def _trim_heap() -> None:
    """glibc's malloc_trim(0): return free heap pages to the OS (no-op elsewhere)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def measure(shape: str, keys: int) -> float:
    """Runs in the child: build the keyspace, return RSS growth per key in bytes."""
    import gc

    import numpy as np

    from hearsay.lattice.entry import Entry, Schema
    from hearsay.lattice.keyspace import Keyspace
    from hearsay.lattice.vector import MaxVector

    schema = Schema("hll", (14,), 16384).intern()
    rng = np.random.default_rng(7)
    keyspace = Keyspace()
    # Build the inputs first so that only the keyspace's growth is measured.
    if shape == "small":
        registers = rng.integers(0, 16384, size=(keys, 10), dtype=np.uint32)
        ranks = rng.integers(1, 12, size=(keys, 10), dtype=np.uint8)
    else:
        registers = np.broadcast_to(np.arange(16384, dtype=np.uint32), (keys, 16384))
        ranks = rng.integers(1, 20, size=(keys, 16384), dtype=np.uint8)
    names = [b"hll:%08d" % i for i in range(keys)]
    gc.collect()
    # Give the heap's free memory back first (e.g. numpy's temporaries from generating the
    # inputs): otherwise the keyspace reuses it and its growth looks smaller than it is.
    _trim_heap()
    before = _rss_bytes()
    for i, name in enumerate(names):
        vector = MaxVector.from_pairs(registers[i], ranks[i])
        keyspace.merge(name, Entry(0, schema, slices={"": vector}))
    gc.collect()
    after = _rss_bytes()
    assert len(keyspace) == keys
    # The key names were allocated before the baseline; count them, as Redis's figure does.
    name_bytes = sum(sys.getsizeof(name) for name in names)
    return (after - before + name_bytes) / keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000, help="small keys (default 100000)")
    parser.add_argument("--dense", type=int, default=100, help="dense keys (default 100)")
    parser.add_argument("--child", choices=["small", "dense"], help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.keys)))
        return
    results = {}
    for shape, keys in (("small", args.small), ("dense", args.dense)):
        out = subprocess.run(
            [sys.executable, __file__, "--child", shape, "--keys", str(keys)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        results[shape] = float(out.stdout.strip())
    small_ratio = results["small"] / REDIS_SMALL_BYTES
    dense_ratio = results["dense"] / REDIS_DENSE_BYTES
    print(f"{'shape':<28}{'hearsay B/key':>14}{'redis B/key':>13}{'ratio':>8}{'target':>8}")
    print(
        f"{f'{args.small} keys x 10 registers':<28}{results['small']:>14.0f}"
        f"{REDIS_SMALL_BYTES:>13.0f}{small_ratio:>8.2f}{TARGET_SMALL_RATIO:>7.1f}x"
    )
    print(
        f"{f'{args.dense} keys x 16384 registers':<28}{results['dense']:>14.0f}"
        f"{REDIS_DENSE_BYTES:>13.0f}{dense_ratio:>8.2f}{TARGET_DENSE_RATIO:>7.1f}x"
    )
    met = small_ratio <= TARGET_SMALL_RATIO and dense_ratio <= TARGET_DENSE_RATIO
    print("targets met" if met else "targets NOT met")


if __name__ == "__main__":
    main()
