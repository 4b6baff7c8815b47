"""Issue 11, findings 12 (client side) and 15: what one client, or all of them, may hold.

Real nodes, raw sockets and redis-py. Every wait polls with a deadline; nothing is timed.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import hiredis
import pytest
import redis

from hearsay.runtime.config import ConfigError, ServeConfig, resolve_requirepass
from hearsay.runtime.resp_server import (
    AUTH_ADDRESSES_TRACKED_MAX,
    AUTH_DELAY_MS_MAX,
    RESERVED_FDS,
    _AuthThrottle,
)
from tests.support.nodes import NodeProcess, poll_until, split_address, start_node
from tests.support.raw_resp import command, read_replies

MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"


def connect(node: NodeProcess) -> socket.socket:
    sock = socket.create_connection(split_address(node.resp), timeout=20)
    return sock


def read_until_closed(sock: socket.socket, bytes_max: int = 1 << 26) -> bytes:
    """Everything the node sends until it closes the connection (a reset counts as closed)."""
    received = b""
    while len(received) <= bytes_max:  # bounded by the byte count and the socket timeout
        try:
            data = sock.recv(1 << 20)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data
    raise AssertionError("the node kept sending")


def dense_hll(client: redis.Redis, key: str) -> bytes:
    """A dense HyperLogLog (12 KiB): a key whose GET reply is big."""
    for start in range(0, 6000, 1000):
        client.pfadd(key, *[f"member-{n}" for n in range(start, start + 1000)])
    value = client.get(key)
    assert value is not None and len(value) > 12_000
    return value


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    started = start_node(tmp_path / "node")
    yield started
    started.stop(signal.SIGKILL)


@pytest.mark.integration
def test_replies_nobody_reads_are_held_back_not_buffered(node: NodeProcess) -> None:
    """Finding 12: 4,000 pipelined GETs of a 12 KiB value (49 MB of replies), never read.

    Before: every reply was encoded and buffered at once (the node's peak memory grew by twice
    the replies). Now the node runs commands only while less than 1 MiB of replies is pending:
    the rest waits (held, reading paused) until the client reads, and nothing is lost.
    """
    client = node.client()
    value = dense_hll(client, "big")
    gets = 4000
    peak_before = client.info("memory")["used_memory_peak"]
    sock = connect(node)
    try:
        sock.sendall(command("GET", "big") * gets)
        poll_until(
            lambda: client.info("clients")["client_recent_max_input_buffer"] > 0,
            timeout_s=30,
            what="the node to hold the commands of the client that does not read",
        )
        assert client.ping() is True  # everyone else is served meanwhile
        holding = [row for row in client.client_list() if int(row["qbuf"]) > 0]
        assert len(holding) == 1 and holding[0]["cmd"] == "get"  # CLIENT LIST names it
        peak_held = client.info("memory")["used_memory_peak"]
        assert peak_held - peak_before < (gets * len(value)) // 2
        replies = read_replies(sock, gets)
        assert replies == [value] * gets
    finally:
        sock.close()
    stats = client.info("stats")
    assert stats["client_output_buffer_limit_disconnections"] == 0
    assert client.info("memory")["used_memory_peak"] - peak_before < (gets * len(value)) // 2
    poll_until(lambda: client.info("clients")["client_recent_max_input_buffer"] == 0)


@pytest.mark.integration
@pytest.mark.parametrize("gets", [1, 400])
def test_a_client_that_half_closes_gets_every_reply_then_eof(node: NodeProcess, gets: int) -> None:
    """Like ``nc`` or a piped script: send everything, shut down writing, read. Commands held
    back for the client's reading must still run after its EOF (they were lost at first)."""
    value = dense_hll(node.client(), "big")
    sock = connect(node)
    try:
        sock.sendall(command("GET", "big") * gets)
        sock.shutdown(socket.SHUT_WR)
        assert read_replies(sock, gets) == [value] * gets
        assert read_until_closed(sock) == b""
    finally:
        sock.close()


@pytest.mark.integration
def test_a_reply_beyond_the_output_limit_drops_only_that_client(tmp_path: Path) -> None:
    started = start_node(tmp_path / "node", "--client-output-buffer-limit", "8192")
    try:
        client = started.client()
        for start in range(0, 6000, 1000):  # a dense HLL: its GET is 12 KiB
            client.pfadd("big", *[f"member-{n}" for n in range(start, start + 1000)])
        sock = connect(started)
        try:
            sock.sendall(command("PING") + command("GET", "big") + command("PING"))
            received = read_until_closed(sock)
        finally:
            sock.close()
        assert received in (b"", b"+PONG\r\n")  # dropped, as Redis drops such a client
        stats = client.info("stats")
        assert stats["client_output_buffer_limit_disconnections"] == 1
        assert client.info("clients")["client_recent_max_output_buffer"] > 8192
        assert client.pfcount("big") > 5000  # small replies still pass
        assert client.config_get("client-output-buffer-limit") == {
            "client-output-buffer-limit": "normal 8192 0 0 replica 0 0 0 pubsub 0 0 0"
        }
    finally:
        started.stop(signal.SIGKILL)


@pytest.mark.integration
def test_maxclients_answers_like_redis(tmp_path: Path) -> None:
    """Finding 15: one client more than --maxclients gets Redis's error, then EOF."""
    started = start_node(tmp_path / "node", "--maxclients", "3")
    sockets = [connect(started) for _ in range(3)]
    try:
        for sock in sockets:
            sock.sendall(command("PING"))
            assert read_replies(sock, 1) == [b"PONG"]
        extra = connect(started)
        try:
            assert read_until_closed(extra) == MAX_CLIENTS_REPLY
        finally:
            extra.close()
        sockets[0].sendall(command("INFO", "stats"))
        stats = read_replies(sockets[0], 1)[0]
        assert isinstance(stats, bytes) and b"rejected_connections:1\r\n" in stats
        sockets.pop().close()
        replacement = connect(started)
        sockets.append(replacement)
        replacement.sendall(command("CONFIG", "GET", "maxclients"))
        assert read_replies(replacement, 1) == [[b"maxclients", b"3"]]
    finally:
        for sock in sockets:
            sock.close()
        started.stop(signal.SIGKILL)


@pytest.mark.integration
def test_maxclients_fits_the_open_files_limit(tmp_path: Path) -> None:
    """Finding 15: at the file-descriptor limit new clients hung silently (accept failed)."""
    started = start_node(tmp_path / "node", open_files_max=256)
    fitted = 256 - RESERVED_FDS
    sockets: list[socket.socket] = []
    try:
        client = started.client()
        assert client.info("clients")["maxclients"] == fitted
        sockets = [connect(started) for _ in range(fitted - 1)]  # redis-py holds one
        for sock in sockets:
            sock.sendall(command("PING"))
        for sock in sockets:
            assert read_replies(sock, 1) == [b"PONG"]
        extra = connect(started)
        try:
            assert read_until_closed(extra) == MAX_CLIENTS_REPLY
        finally:
            extra.close()
        assert client.ping() is True
    finally:
        for sock in sockets:
            sock.close()
        started.stop(signal.SIGKILL)


@pytest.mark.integration
def test_unfinished_commands_of_all_clients_are_capped(tmp_path: Path) -> None:
    """Finding 12: partial bulk arguments could hold 1 GiB per connection, with no global cap.
    Over the total, the client holding the most is dropped; the others go on."""
    started = start_node(
        tmp_path / "node",
        "--client-query-buffer-total-limit", "1000000",
        "--proto-max-bulk-len", "900000",
    )  # fmt: skip
    big, small = connect(started), connect(started)
    try:
        client = started.client()
        big.sendall(b"*2\r\n$4\r\nECHO\r\n$800000\r\n" + b"x" * 600_000)
        poll_until(lambda: client.info("clients")["client_recent_max_input_buffer"] >= 600_000)
        small.sendall(b"*2\r\n$4\r\nECHO\r\n$800000\r\n" + b"y" * 500_000)
        assert read_until_closed(big) == b""
        assert client.info("stats")["evicted_clients"] == 1
        small.sendall(b"y" * 300_000 + b"\r\n")
        assert read_replies(small, 1) == [b"y" * 800_000]
        small.sendall(b"*2\r\n$4\r\nECHO\r\n$900001\r\n")
        assert read_until_closed(small) == b"-ERR Protocol error: invalid bulk length\r\n"
    finally:
        big.close()
        small.close()
        started.stop(signal.SIGKILL)


def test_the_auth_throttle_grows_caps_forgets_and_stays_bounded() -> None:
    throttle = _AuthThrottle()
    assert not throttle.active and throttle.not_before_ms("10.0.0.1") == 0
    now = 1_000_000
    waits = []
    for _ in range(12):
        throttle.failed("10.0.0.1", now)
        waits.append(throttle.not_before_ms("10.0.0.1") - now)
        now = throttle.not_before_ms("10.0.0.1")  # the next attempt comes when allowed
    assert waits[:8] == [10, 20, 40, 80, 160, 320, 640, 1280]
    assert waits[8:] == [AUTH_DELAY_MS_MAX] * 4
    assert throttle.not_before_ms("10.0.0.2") == 0  # per address
    later = now + 61_000  # a minute without failures: forgotten
    throttle.failed("10.0.0.1", later)
    assert throttle.not_before_ms("10.0.0.1") == later + 10
    for number in range(AUTH_ADDRESSES_TRACKED_MAX + 10):
        throttle.failed(f"192.0.2.{number}", later)
    assert len(throttle._table) == AUTH_ADDRESSES_TRACKED_MAX
    assert throttle.failures == 12 + 1 + AUTH_ADDRESSES_TRACKED_MAX + 10


def _keyring(tmp_path: Path) -> tuple[str, str]:
    """``--keyring FILE`` with a fresh key: a client password needs one (docs/security.md)."""
    path = tmp_path / "keyring"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return "--keyring", str(path)


@pytest.mark.integration
def test_failed_auths_are_throttled_without_stalling_the_node(tmp_path: Path) -> None:
    """Finding 15: AUTH was not throttled. Now a guesser's AUTHs wait (held, asynchronously)
    while an authenticated client is served; every reply still comes, in order."""
    (tmp_path / "password").write_text("s3cret\n")
    started = start_node(
        tmp_path / "node", "--requirepass-file", str(tmp_path / "password"), *_keyring(tmp_path)
    )
    try:
        client = started.client(password="s3cret")
        assert client.ping() is True  # connected and authenticated before the guessing
        guesser = connect(started)
        wrong = 9  # waits of 10 .. 1280 ms, then 2 s: seconds in all, so the hold is seen
        guesser.sendall(command("AUTH", "nope") * wrong + command("AUTH", "s3cret"))
        poll_until(
            lambda: client.info("clients")["client_recent_max_input_buffer"] > 0,
            timeout_s=10,
            what="the guesser's AUTHs to be held",
        )
        assert client.ping() is True
        replies = read_replies(guesser, wrong + 1)
        assert all(
            isinstance(reply, hiredis.ReplyError) and str(reply).startswith("WRONGPASS")
            for reply in replies[:wrong]
        )
        assert replies[wrong] == b"OK"
        guesser.close()
        assert client.info("stats")["acl_access_denied_auth"] == wrong
    finally:
        started.stop(signal.SIGKILL)


@pytest.mark.integration
def test_the_password_comes_from_a_file_or_the_environment_not_the_command_line(
    tmp_path: Path,
) -> None:
    """Finding 15: --requirepass showed in ps."""
    env = {**os.environ, "HEARSAY_REQUIREPASS": "from-env"}
    with pytest.raises(AssertionError, match="without --keyring"):  # gossip would bypass it
        start_node(tmp_path / "bare", env=env)
    keyring = _keyring(tmp_path)
    started = start_node(tmp_path / "node", *keyring, env=env)
    try:
        cmdline = Path(f"/proc/{started.process.pid}/cmdline").read_bytes()
        assert b"from-env" not in cmdline
        with pytest.raises(redis.AuthenticationError):
            started.client().ping()
        assert started.client(password="from-env").ping() is True
    finally:
        started.stop(signal.SIGKILL)
    (tmp_path / "password").write_text("from-file\n")
    with pytest.raises(AssertionError, match="given more than once"):
        start_node(
            tmp_path / "other", "--requirepass-file", str(tmp_path / "password"), *keyring, env=env
        )
    flagged = start_node(tmp_path / "third", "--requirepass", "visible", *keyring)
    try:
        assert any(b"--requirepass shows the password" in line for line in flagged.output)
    finally:
        flagged.stop(signal.SIGKILL)


def test_the_password_has_exactly_one_source(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"pa ss\r\nignored second line\n")
    from_file = ServeConfig(requirepass_file=str(secret))
    assert resolve_requirepass(from_file, {}) == "pa ss"
    assert resolve_requirepass(ServeConfig(), {"HEARSAY_REQUIREPASS": "env"}) == "env"
    assert resolve_requirepass(ServeConfig(requirepass="flag"), {}) == "flag"
    assert resolve_requirepass(ServeConfig(), {}) is None
    with pytest.raises(ConfigError, match="more than once"):
        resolve_requirepass(ServeConfig(requirepass="flag"), {"HEARSAY_REQUIREPASS": "env"})
    with pytest.raises(ConfigError, match="more than once"):
        resolve_requirepass(from_file, {"HEARSAY_REQUIREPASS": "env"})
    with pytest.raises(ConfigError, match="not both"):
        ServeConfig().merged({"requirepass": "flag", "requirepass_file": str(secret)})
    secret.write_bytes(b"\n")
    with pytest.raises(ConfigError, match="holds no password"):
        resolve_requirepass(from_file, {})
    secret.write_bytes(b"x" * 5000)
    with pytest.raises(ConfigError, match="longer than"):
        resolve_requirepass(from_file, {})
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_requirepass(ServeConfig(requirepass_file=str(tmp_path / "missing")), {})
