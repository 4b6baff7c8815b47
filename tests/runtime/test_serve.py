"""One real node process on loopback: the ready line, key commands, restarts, bad input."""

from __future__ import annotations

import re
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.nodes import NodeProcess, poll_until, split_address, start_node

pytestmark = pytest.mark.integration


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    started = start_node(tmp_path / "node")
    yield started
    started.stop(signal.SIGKILL)


def test_ready_line_names_every_listener(node: NodeProcess) -> None:
    for address in (node.resp, node.http):
        host, port = split_address(address)
        assert host == "127.0.0.1" and port > 0
    assert node.name
    assert node.client().ping() is True


def test_connection_and_key_commands_answer_like_redis(node: NodeProcess) -> None:
    client = node.client()
    assert client.echo(b"hi") == b"hi"
    assert client.dbsize() == 0
    assert client.exists("missing") == 0
    assert client.delete("missing") == 0
    assert client.type("missing") == b"none"
    assert client.ttl("missing") == -2
    assert client.scan(0) == (0, [])
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.execute_command("NOSUCHCOMMAND")
    with pytest.raises(redis.ResponseError, match="not supported"):
        client.execute_command("EVAL", "return 1", "0")
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert "redis_version" in client.info("server")
    client.pfadd("h1", "a")
    client.pfadd("h2", "b")
    client.expire("h1", 100)
    assert client.info("keyspace")["db0"] == {"keys": 2, "expires": 1, "avg_ttl": 0}


def test_info_has_the_fields_redis_tools_read(node: NodeProcess) -> None:
    """``redis-cli --stat`` and exporters read these: memory, commands, blocked clients."""
    client = node.client()
    before = client.info("stats")["total_commands_processed"]
    for _ in range(10):
        client.ping()
    assert client.info("stats")["total_commands_processed"] == before + 11  # and this INFO
    memory = client.info("memory")
    assert 0 < memory["used_memory"] <= memory["used_memory_rss"] <= memory["used_memory_peak"]
    for field in ("used_memory_human", "used_memory_rss_human", "used_memory_peak_human"):
        assert re.fullmatch(r"\d+\.\d\d[KMG]|\d+B", str(memory[field])), memory[field]
    assert client.info("clients")["blocked_clients"] == 0

    waiter = node.client(retry=Retry(NoBackoff(), 0))  # killed below: must not reconnect
    waiter.pfadd("w", "a")  # a write that no peer (there are none) will acknowledge
    # With no peers, a WAIT with a timeout replies 0 once the timeout passes.
    assert waiter.execute_command("WAIT", 1, 50) == 0
    waiter_id = waiter.client_id()
    replies: list[object] = []

    def wait_for_a_peer() -> None:
        try:
            replies.append(waiter.execute_command("WAIT", 1, 0))  # 0: wait for ever
        except redis.ConnectionError as error:
            replies.append(error)

    thread = threading.Thread(target=wait_for_a_peer)
    thread.start()
    try:
        # No window to hit: the WAIT blocks until its connection is killed.
        poll_until(
            lambda: client.info("clients")["blocked_clients"] == 1, 30, what="a blocked WAIT"
        )
    finally:
        client.execute_command("CLIENT", "KILL", "ID", waiter_id)
        thread.join(30)
    assert not thread.is_alive()
    assert len(replies) == 1 and isinstance(replies[0], redis.ConnectionError), replies
    poll_until(lambda: client.info("clients")["blocked_clients"] == 0, 30, what="unblocked")

    polls = 0

    def connected_clients() -> int:
        nonlocal polls
        polls += 1
        return int(client.info("clients")["connected_clients"])

    counted = client.info("stats")["total_commands_processed"]
    waiter.close()
    poll_until(lambda: connected_clients() == 1, 5, what="the waiter's connection closed")
    # A closed connection's commands stay counted: only this test's INFOs were added.
    assert client.info("stats")["total_commands_processed"] == counted + polls + 1


def test_client_list_shows_every_connection(node: NodeProcess) -> None:
    first, second = node.client(), node.client()
    first.client_setname("first")
    second.ping()
    listed = {entry["name"]: entry for entry in first.client_list()}
    assert set(listed) >= {"first", ""} and len(listed["first"]["addr"]) > 0
    ids = sorted(int(entry["id"]) for entry in first.client_list())
    assert sorted(int(entry["id"]) for entry in first.client_list(_type="normal")) == ids
    assert first.client_list(_type="pubsub") == []
    second_id = second.client_id()
    only = first.client_list(client_id=[second_id])
    assert [int(entry["id"]) for entry in only] == [second_id]
    with pytest.raises(redis.ResponseError, match="Unknown client type"):
        first.execute_command("CLIENT", "LIST", "TYPE", "nosuch")
    with pytest.raises(redis.ResponseError, match="Invalid client ID"):
        first.execute_command("CLIENT", "LIST", "ID", "x")
    second.close()
    poll_until(lambda: len(first.client_list()) == 1, 5, what="the closed connection unlisted")


def test_client_kill_closes_the_chosen_connections(node: NodeProcess) -> None:
    admin, victim, other = node.client(), node.client(), node.client()
    victim_id, other_id, admin_id = victim.client_id(), other.client_id(), admin.client_id()

    def listed() -> set[int]:
        return {int(entry["id"]) for entry in admin.client_list()}

    assert admin.execute_command("CLIENT", "KILL", "ID", victim_id) == 1
    poll_until(lambda: victim_id not in listed(), 5, what="the killed connection gone")
    assert admin.execute_command("CLIENT", "KILL", "ID", victim_id) == 0
    assert admin.execute_command("CLIENT", "KILL", "ID", admin_id) == 0  # SKIPME yes
    address = next(e["addr"] for e in admin.client_list() if int(e["id"]) == other_id)
    assert admin.execute_command("CLIENT", "KILL", address) in (True, b"OK")  # the old form
    poll_until(lambda: other_id not in listed(), 5, what="the connection killed by address")
    with pytest.raises(redis.ResponseError, match="No such client"):
        admin.execute_command("CLIENT", "KILL", "127.0.0.1:1")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        admin.execute_command("CLIENT", "KILL", "ID", admin_id, "SKIPME")
    with pytest.raises(redis.ResponseError, match="Unknown client type"):
        admin.execute_command("CLIENT", "KILL", "TYPE", "nosuch")
    assert admin.ping() is True

    host, port = split_address(node.resp)
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"CLIENT ID\r\n")
        own_id = int(raw.recv(64).strip(b":\r\n"))
        raw.sendall(b"CLIENT KILL ID %d SKIPME no\r\n" % own_id)
        received = b""
        for _ in range(100):  # the server closes after its reply
            chunk = raw.recv(64)
            if not chunk:
                break
            received += chunk
        assert received == b":1\r\n"


def test_sigterm_exits_zero(node: NodeProcess) -> None:
    assert node.stop(signal.SIGTERM) == 0


def test_malformed_resp_gets_an_error_and_the_node_keeps_serving(node: NodeProcess) -> None:
    host, port = split_address(node.resp)
    for garbage in (
        b"*abc\r\n",
        b"*1\r\n$-5\r\n",
        b'SET "unbalanced\r\n',
        b"*1\r\n$999999999999\r\n",
    ):
        with socket.create_connection((host, port), timeout=5) as raw:
            raw.sendall(garbage)
            reply = raw.recv(4096)
            assert reply.startswith(b"-ERR Protocol error"), reply
    assert node.client().ping() is True


def _read_until_closed(raw: socket.socket) -> bytes:
    data = b""
    while chunk := raw.recv(4096):  # bounded: the server closes, and recv has a timeout
        data += chunk
    return data


def test_replies_keep_their_order_and_quit_closes_after_them(node: NodeProcess) -> None:
    """Replies are written once per loop iteration; they must still leave in request order,
    across chunks, around a WAIT (a deferred reply) and before QUIT closes."""
    host, port = split_address(node.resp)
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(b"PING\r\n*3\r\n$5\r\nPFADD\r\n$2\r\no1\r\n$1\r\na\r\n")
        raw.sendall(b"*3\r\n$5\r\nPFADD\r\n$2\r\no1\r\n$1\r\na\r\nWAIT 0 0\r\nECHO x\r\n")
        raw.sendall(b"PFCOUNT o1\r\nQUIT\r\nPING\r\n")
        assert _read_until_closed(raw) == b"+PONG\r\n:1\r\n:0\r\n:0\r\n$1\r\nx\r\n:1\r\n+OK\r\n"


def test_restart_keeps_the_node_id_and_raises_the_generation(tmp_path: Path) -> None:
    first = start_node(tmp_path / "n")
    first_info = first.client().info("server")
    assert first.stop(signal.SIGTERM) == 0
    second = start_node(tmp_path / "n")
    try:
        second_info = second.client().info("server")
        assert second.name == first.name
        assert second_info["generation"] == first_info["generation"] + 1
    finally:
        second.stop(signal.SIGKILL)


def test_deleted_keys_are_forgotten_after_the_grace_period(tmp_path: Path) -> None:
    first = start_node(tmp_path / "n", "--tombstone-grace-s", "1")
    try:
        client = first.client()
        client.pfadd("gone", "a")
        client.pfadd("kept", "b")
        assert client.delete("gone") == 1
        poll_until(
            lambda: client.info("stats")["tombstones_purged"] == 1, 10, what="tombstone purged"
        )
        assert first.stop(signal.SIGTERM) == 0
    finally:
        first.stop(signal.SIGKILL)
    second = start_node(tmp_path / "n")
    try:
        client = second.client()
        assert client.keys("*") == [b"kept"] and client.pfcount("kept") == 1
        assert client.info("persistence")["loaded_entries"] == 1  # the tombstone left the disk
    finally:
        second.stop(signal.SIGKILL)
