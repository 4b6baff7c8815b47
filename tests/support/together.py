"""Many clients' single commands made to arrive together at a real node, so that its first
poll reads them all and the node coalesces them (``_Coalescer``): the node is stopped
(SIGSTOP) while every client sends, then continued."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.nodes import NodeProcess, poll_until, split_address
from tests.support.raw_resp import command, read_raw


@contextmanager
def clients(node: NodeProcess, count: int, *, resp3: int = 0) -> Iterator[list[socket.socket]]:
    """``count`` connections the node has accepted and served (each answered a PING, so
    none is still waiting in the listen backlog), the first ``resp3`` of them switched to
    RESP3 (HELLO 3)."""
    socks = [socket.create_connection(split_address(node.resp), timeout=20) for _ in range(count)]
    try:
        for at, sock in enumerate(socks):
            sock.sendall(command("HELLO", "3") if at < resp3 else command("PING"))
            read_raw(sock, 1)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def coalesced(node: NodeProcess) -> int:
    with node.client() as client:
        return int(client.info("stats")["coalesced_commands"])


def stop(node: NodeProcess) -> None:
    """SIGSTOP, and wait (bounded) until the node is stopped: the signal is not delivered at
    once, and a node still running could read the first request alone."""
    pid = node.process.pid
    os.kill(pid, signal.SIGSTOP)
    poll_until(
        lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T",
        what="the node stopped",
    )


def send_together(node: NodeProcess, socks: list[socket.socket], requests: list[bytes]) -> None:
    """Every request sent while the node is stopped: it reads them all in one poll."""
    stop(node)
    try:
        for sock, request in zip(socks, requests, strict=True):
            sock.sendall(request)
    finally:
        os.kill(node.process.pid, signal.SIGCONT)
