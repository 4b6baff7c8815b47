"""The gossip socket asks the kernel for large buffers (a loaded node overflowed Linux's
default and lost a quarter of its datagrams), says so once when it is granted less, and shows
what the kernel dropped at it (INFO gossip ``socket_drops``, ``hearsay_gossip_socket_drops``)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from hearsay.runtime.udp_socket import SOCKET_BUFFER_BYTES, kernel_drops, size_buffers
from tests.support.nodes import Cluster, poll_until, split_address

LINUX = Path("/proc/sys/net/core/rmem_max").exists()
FLOOD_DATAGRAMS = 8_000
"""Datagrams sent at a stopped node: 8,000 of 1,200 bytes take ~18 MiB of kernel buffer
(each is charged about 2.3 KiB), beyond any receive buffer the node can be granted."""


def _limit(name: str) -> int:
    return int(Path(f"/proc/sys/net/core/{name}").read_text())


@pytest.mark.skipif(not LINUX, reason="Linux only")
def test_the_gossip_socket_gets_the_buffers_the_kernel_allows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        with caplog.at_level(logging.INFO, logger="hearsay.runtime.gossip"):
            received = size_buffers(sock)
        for option, limit in ((socket.SO_RCVBUF, "rmem_max"), (socket.SO_SNDBUF, "wmem_max")):
            granted = sock.getsockopt(socket.SOL_SOCKET, option) // 2
            assert granted >= min(SOCKET_BUFFER_BYTES, max(_limit(limit), before))
            told = [r.getMessage() for r in caplog.records if limit in r.getMessage()]
            assert len(told) == (1 if granted < SOCKET_BUFFER_BYTES else 0)
        assert received == sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        assert kernel_drops(os.fstat(sock.fileno()).st_ino) == 0


@pytest.mark.integration
@pytest.mark.skipif(not LINUX, reason="Linux only")
def test_what_the_kernel_drops_at_a_stalled_node_is_shown(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start("n0")
        with node.client() as client:
            gossip = client.info("gossip")
        assert gossip["socket_drops"] == 0
        assert gossip["socket_receive_buffer_bytes"] >= min(SOCKET_BUFFER_BYTES, _limit("rmem_max"))
        host, port = split_address(node.gossip)
        os.kill(node.process.pid, signal.SIGSTOP)  # the node reads nothing while stopped
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
                for _ in range(FLOOD_DATAGRAMS):
                    flood.sendto(b"\x00" * 1200, (host, port))
        finally:
            os.kill(node.process.pid, signal.SIGCONT)
        with node.client() as client:
            drops = poll_until(
                lambda: client.info("gossip")["socket_drops"], what="kernel drops in INFO"
            )
        assert drops > 0
        url = f"http://{node.http}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        lines = [ln for ln in text.splitlines() if ln.startswith("hearsay_gossip_socket_drops")]
        assert lines and float(lines[0].split()[-1]) >= drops
    finally:
        cluster.close()
