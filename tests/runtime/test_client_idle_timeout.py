"""``--client-idle-timeout-s`` (Redis's ``timeout``): a client that sends no command for longer
is closed; a monitor is not (as in Redis), and CONFIG GET timeout reports the setting."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import NodeProcess, poll_until, split_address, start_node

pytestmark = pytest.mark.integration


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    started = start_node(tmp_path / "a", "--client-idle-timeout-s", "1")
    yield started
    started.stop()


def _raw(node: NodeProcess, request: bytes) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(split_address(node.resp), timeout=30)
    sock.sendall(request)
    return sock, sock.recv(65536)


def _client_ids(node: NodeProcess) -> set[int]:
    client = node.client()
    try:
        listing = client.execute_command("CLIENT", "LIST")
        text = listing.decode() if isinstance(listing, bytes) else str(listing)
        return {int(field[3:]) for field in text.split() if field.startswith("id=")}
    finally:
        client.close()


def _gone(node: NodeProcess, client_id: int) -> set[int] | None:
    ids = _client_ids(node)
    return None if client_id in ids else ids


def test_an_idle_client_is_closed_and_a_monitor_is_not(node: NodeProcess) -> None:
    idle, reply = _raw(node, b"CLIENT ID\r\n")
    idle_id = int(reply[1:].strip())
    monitor, reply = _raw(node, b"CLIENT ID\r\nMONITOR\r\n")
    for _ in range(10):  # bounded: both replies arrive in a read or two
        if reply.count(b"\r\n") >= 2:
            break
        reply += monitor.recv(65536)
    monitor_id = int(reply.split(b"\r\n")[0][1:])
    assert reply.split(b"\r\n")[1] == b"+OK"
    try:
        assert {idle_id, monitor_id} <= _client_ids(node)
        # Closed after about a second of silence: the socket reads end of file.
        assert idle.recv(65536) == b""
        poll_until(lambda: _gone(node, idle_id), 30.0, what="the idle client gone")
        # Another idle client closed too: at least one more check ran while the monitor had
        # been silent for longer than the timeout.
        later, reply = _raw(node, b"CLIENT ID\r\n")
        assert later.recv(65536) == b""
        ids = poll_until(lambda: _gone(node, int(reply[1:].strip())), 30.0, what="gone")
        later.close()
        assert monitor_id in ids
        client = node.client()
        assert client.config_get("timeout") == {"timeout": "1"}
        assert client.info("stats")["idle_clients_closed"] >= 2
        # The monitor is still served: it sees the next command.
        client.incr("seen-by-the-monitor")
        seen = b""
        for _ in range(100):  # bounded: the line arrives after the earlier commands' lines
            seen += monitor.recv(65536)
            if b"seen-by-the-monitor" in seen:
                break
        assert b"seen-by-the-monitor" in seen
    finally:
        idle.close()
        monitor.close()
