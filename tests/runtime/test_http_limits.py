"""The HTTP listener's connection cap (``--max-http-connections``): connections over it are
answered 503 at once and counted; once slots free, requests are served again."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import NodeProcess, poll_until, split_address, start_node

pytestmark = pytest.mark.integration

CAP = 3


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    started = start_node(tmp_path / "a", "--max-http-connections", str(CAP))
    yield started
    started.stop()


def _connect(node: NodeProcess) -> socket.socket:
    return socket.create_connection(split_address(node.http), timeout=10)


def _get(node: NodeProcess, path: bytes = b"/health") -> bytes:
    with _connect(node) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        for _ in range(1000):  # bounded: the server closes after one response
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _refused_while_full(node: NodeProcess) -> bytes | None:
    """Fill every slot with connections that send nothing, then GET: the reply if refused."""
    idle = [_connect(node) for _ in range(CAP)]
    try:
        reply = _get(node)
    finally:
        for sock in idle:
            sock.close()
    return reply if reply.startswith(b"HTTP/1.1 503") else None


def test_connections_over_the_cap_get_503_and_the_rest_are_served(node: NodeProcess) -> None:
    assert _get(node).startswith(b"HTTP/1.1 200 OK")
    refused = poll_until(
        lambda: _refused_while_full(node), 30.0, what="a connection over the cap refused"
    )
    assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert refused.endswith(b"\r\n\r\ntoo many HTTP connections\n")
    assert node.client().info("stats")["http_rejected_connections"] >= 1
    # Slots free as connections close (or time out after 5 s): served again.
    poll_until(lambda: _get(node).startswith(b"HTTP/1.1 200 OK"), 30.0, what="slots freed")
    assert b"hearsay_" in _get(node, b"/metrics")


def test_the_cap_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="max_http_connections"):
        start_node(tmp_path / "b", "--max-http-connections", "0")
