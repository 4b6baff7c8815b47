"""The node fixes glibc's mmap threshold (runtime/allocator.py): big buffers are given back;
MEMORY PURGE gives the heap's free pages back.

Each measurement runs in a fresh interpreter, as the node calls the fix at its start: in a
process whose heap is already fragmented (this test process), big buffers are served from
free chunks of the heap whatever the threshold, so its effect cannot be seen there.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

_ANON_KIB = """
def anon_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
"""
"""The probes' reading of their own anonymous resident memory."""

_PROBE = (
    """
import ctypes, sys
from hearsay.runtime.allocator import fix_mmap_threshold
"""
    + _ANON_KIB
    + """
if sys.argv[1] == "fixed" and not fix_mmap_threshold():
    sys.exit("fix_mmap_threshold() returned False")
ctypes.CDLL("libc.so.6").malloc_trim(0)
before = anon_kib()
big = bytearray(2 * 1024 * 1024)  # freed: glibc's dynamic threshold rises to 2 MiB
del big
made = [bytearray(512 * 1024) for _ in range(40)]
live = made[1::2]  # every other one freed: holes between live buffers
del made
print(anon_kib() - before)
"""
)


def _probe(source: str, *args: str) -> str:
    """What ``source`` prints, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", source, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _grown_kib(mode: str) -> int:
    return int(_probe(_PROBE, mode))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_freed_big_buffers_leave_no_resident_holes() -> None:
    """20 live buffers of 512 KiB: 10 MiB resident with the threshold fixed, 20 MiB without
    (the freed ones between them stay on the heap, resident)."""
    live_kib = 20 * 512
    fixed = _grown_kib("fixed")
    assert live_kib <= fixed < live_kib + 2048, fixed
    assert _grown_kib("default") >= live_kib + 5 * 1024  # (the probe sees the difference)


_RELEASE_PROBE = (
    """
import ctypes
from hearsay.runtime.allocator import release_free_memory
"""
    + _ANON_KIB
    + """
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
blocks = [libc.malloc(64 * 1024) for _ in range(256)]  # 16 MiB of the heap, under the threshold
for block in blocks:
    ctypes.memset(block, 1, 64 * 1024)
for block in blocks[:-1]:  # the last one, at the heap's top, keeps glibc from trimming it
    libc.free(block)
before = anon_kib()
released = release_free_memory()
print(int(released), before - anon_kib())
libc.free(blocks[-1])
"""
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim only")
def test_release_gives_freed_heap_pages_back() -> None:
    """MEMORY PURGE's call: 16 MiB freed below a live block stay resident until it runs."""
    released, dropped_kib = (int(field) for field in _probe(_RELEASE_PROBE).split())
    assert released == 1
    assert dropped_kib >= 12 * 1024, dropped_kib
