"""The gossip socket asks the kernel for large buffers (a loaded node overflowed Linux's
default and lost a quarter of its datagrams), and says so once when it is granted less."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from hearsay.runtime.gossip import SOCKET_BUFFER_BYTES, _size_buffers


def _limit(name: str) -> int:
    return int(Path(f"/proc/sys/net/core/{name}").read_text())


@pytest.mark.skipif(not Path("/proc/sys/net/core/rmem_max").exists(), reason="Linux only")
def test_the_gossip_socket_gets_the_buffers_the_kernel_allows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        with caplog.at_level(logging.INFO, logger="hearsay.runtime.gossip"):
            _size_buffers(sock)
        for option, limit in ((socket.SO_RCVBUF, "rmem_max"), (socket.SO_SNDBUF, "wmem_max")):
            granted = sock.getsockopt(socket.SOL_SOCKET, option) // 2
            expected = min(SOCKET_BUFFER_BYTES, max(_limit(limit), before))
            assert granted >= expected
            told = [r.getMessage() for r in caplog.records if limit in r.getMessage()]
            assert len(told) == (1 if granted < SOCKET_BUFFER_BYTES else 0)
