"""MONITOR and SLOWLOG on a real node, with redis-py and redis-cli; SLOWLOG's reply shapes
against a real redis-server."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest
import redis

from hearsay.resp.observer import MONITOR_BACKLOG_BYTES_MAX
from tests.support.interrupt import with_default_sigint
from tests.support.nodes import NodeProcess, split_address, start_node
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(
        tmp_path_factory.mktemp("monitor-node"),
        "--slowlog-slower-than-us",
        "0",
        "--slowlog-max-len",
        "5",
        "--requirepass",
        "sekrit",
        "--insecure-gossip",  # loopback only, one node: no keyring needed for this test
    )
    yield started
    started.stop(signal.SIGKILL)


def _client(node: NodeProcess) -> redis.Redis:
    return node.client(password="sekrit", protocol=2)


def test_monitor_streams_every_command_with_auth_redacted(node: NodeProcess) -> None:
    watcher = _client(node)
    other = _client(node)
    with watcher.monitor() as monitor:
        other.pfadd("mon:h", "a", 'b"\n')
        other.execute_command("AUTH", "sekrit")
        other.incrby("mon:n", 3)
        seen: list[str] = []
        while not seen or seen[-1] != "INCRBY mon:n 3":  # bounded by the socket timeout
            event = monitor.next_command()
            seen.append(event["command"])
            assert len(seen) < 50, seen
            if event["command"].startswith("PFADD"):
                assert event["client_address"] == "127.0.0.1"
                assert event["db"] == 0
    assert 'PFADD mon:h a b"\\n' in seen  # redis-py keeps Redis's escapes
    assert "AUTH (redacted)" in seen
    assert all("sekrit" not in line for line in seen)
    # The monitor's connection was released; the node serves on.
    assert other.ping()


def test_monitor_shows_each_call_of_a_pipelined_run_once(node: NodeProcess) -> None:
    """A pipelined run whose second call falls back to the one-call path (not an integer) is
    shown call by call, each once."""
    watcher = _client(node)
    other = _client(node)
    with watcher.monitor() as monitor:
        pipe = other.pipeline(transaction=False)
        pipe.incrby("mon:run", 1)
        pipe.execute_command("INCRBY", "mon:run", "x")
        pipe.incrby("mon:run", 2)
        pipe.ping()
        pipe.execute(raise_on_error=False)
        seen: list[str] = []
        while not seen or seen[-1] != "PING":  # bounded by the socket timeout
            seen.append(monitor.next_command()["command"])
            assert len(seen) < 50, seen
    runs = [line for line in seen if line.startswith("INCRBY mon:run")]
    assert runs == ["INCRBY mon:run 1", "INCRBY mon:run x", "INCRBY mon:run 2"], seen


def test_a_pipeline_over_many_keys_is_answered_shown_and_counted_call_by_call(
    node: NodeProcess,
) -> None:
    """INCRs over changing keys run as one batch (``CommandRegistry.calls_at``): each call
    still gets its own reply (a wrong type among them its error), is shown to a monitor once,
    in order, and is counted (calls and errors) in /metrics."""
    watcher = _client(node)
    other = _client(node)
    other.pfadd("mon:batch:hll", "a")
    keys = ["mon:batch:1", "mon:batch:2", "mon:batch:hll", "mon:batch:3", "mon:batch:1"]
    before = scrape(node)
    with watcher.monitor() as monitor:
        pipe = other.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("INCR", key)  # (redis-py's incr sends INCRBY)
        pipe.ping()
        replies = pipe.execute(raise_on_error=False)
        seen: list[str] = []
        while not seen or seen[-1] != "PING":  # bounded by the socket timeout
            seen.append(monitor.next_command()["command"])
            assert len(seen) < 50, seen
    assert replies[:2] == [1, 1] and replies[3:] == [1, 2, True], replies
    assert isinstance(replies[2], redis.ResponseError)
    assert [line for line in seen if line.startswith("INCR ")] == [f"INCR {k}" for k in keys]
    after = scrape(node)
    for sample, grew in (
        ("hearsay_command_calls_total", len(keys)),
        ("hearsay_command_errors_total", 1),
    ):
        was = value(before, sample, missing=0.0, command="incr")
        assert value(after, sample, command="incr") == was + grew


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is installed by make")
def test_redis_cli_monitor_format(node: NodeProcess) -> None:
    host, port = split_address(node.resp)
    cli = subprocess.Popen(
        with_default_sigint(
            ["redis-cli", "-h", host, "-p", str(port), "--no-auth-warning", "-a", "sekrit",
             "monitor"]
        ),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline().strip() == b"OK"
        client = _client(node)
        client.incr("cli:n")
        line = b""
        while b"cli:n" not in line:  # bounded: the client's AUTH/HELLO lines come first
            line = cli.stdout.readline()
            assert line, "redis-cli ended"
        # Redis's format: +<unix s>.<us> [<db> <addr>] "cmd" "arg"...
        stamp, rest = line.split(b" ", 1)
        assert stamp.replace(b".", b"").isdigit() and len(stamp.split(b".")[1]) == 6
        assert rest.startswith(b"[0 127.0.0.1:")
        assert rest.endswith(b'] "INCRBY" "cli:n" "1"\n')
    finally:
        cli.send_signal(signal.SIGINT)
        try:
            cli.wait(timeout=DEADLINE_S)
        finally:
            if cli.poll() is None:  # stopped by its PID whatever happened
                cli.kill()
                cli.wait(DEADLINE_S)


def test_a_monitor_that_does_not_read_is_dropped(node: NodeProcess) -> None:
    host, port = split_address(node.resp)
    with socket.create_connection((host, port), timeout=DEADLINE_S) as lazy:
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.sendall(b"AUTH sekrit\r\nMONITOR\r\n")
        client = _client(node)
        payload = "x" * 60_000
        sent = 0
        dropped = False
        # Each command's MONITOR line is ~60 kB: the lazy monitor never reads, so the node
        # must drop it after at most a few multiples of its backlog limit.
        while sent * 60_000 < 20 * MONITOR_BACKLOG_BYTES_MAX:
            client.pfadd("lazy:h", payload)
            sent += 1
            if sent % 20 == 0:
                monitors = client.info("stats").get("monitors_dropped", 0)
                if monitors:
                    dropped = True
                    break
        assert dropped, "the lazy monitor was never dropped"
    assert client.ping()


def test_slowlog_get_len_reset_and_redaction(node: NodeProcess) -> None:
    client = _client(node)
    client.slowlog_reset()
    client.incrby("slow:n", 1)
    client.execute_command("AUTH", "sekrit")
    client.pfadd("slow:h", "y" * 300, *[f"m{i}" for i in range(41)])  # 44 arguments
    entries = client.slowlog_get(10)
    assert 1 <= len(entries) <= 5  # --slowlog-max-len 5
    newest = entries[0]["command"]
    # As Redis: 31 arguments, each cut to 128 bytes, then how many more there were.
    assert newest.startswith(b"PFADD slow:h " + b"y" * 128 + b"... (172 more bytes) m0 m1")
    assert newest.endswith(b" m27 ... (13 more arguments)")
    assert isinstance(entries[0]["duration"], int)
    assert isinstance(entries[0]["start_time"], int)
    assert any(entry["command"] == b"AUTH (redacted)" for entry in entries)
    assert client.slowlog_len() == len(client.slowlog_get(-1))
    ids = [entry["id"] for entry in client.slowlog_get(-1)]
    assert ids == sorted(ids, reverse=True)
    assert client.slowlog_reset()
    assert client.slowlog_len() <= 1  # only SLOWLOG RESET itself, or nothing
    with pytest.raises(redis.ResponseError, match="count should be greater than or equal"):
        client.execute_command("SLOWLOG", "GET", "-2")


def test_slowlog_shapes_match_redis(node: NodeProcess, redis_server: int) -> None:
    reference = redis.Redis(host="127.0.0.1", port=redis_server)
    reference.config_set("slowlog-log-slower-than", 0)
    ours = _client(node)
    shapes = []
    for client in (reference, ours):
        client.set_response_callback("SLOWLOG GET", lambda reply, **options: reply)
        client.slowlog_reset()
        client.execute_command("CLIENT", "SETNAME", "shape")
        client.incr("shape:n")
        entry = next(e for e in client.execute_command("SLOWLOG", "GET", "-1")
                     if e[3][0].lower() == b"incrby")  # fmt: skip
        shapes.append([type(field).__name__ for field in entry])
        assert entry[3] == [b"INCRBY", b"shape:n", b"1"]
        assert entry[5] == b"shape"
        help_lines = client.execute_command("SLOWLOG", "HELP")
        assert help_lines[0].startswith(b"SLOWLOG <subcommand>") or help_lines[0].startswith(
            "SLOWLOG <subcommand>"
        )
        assert _error(client, "SLOWLOG", "GET", "x") == _error(reference, "SLOWLOG", "GET", "x")
    assert shapes[0] == shapes[1]
    reference.close()


def _error(client: redis.Redis, *args: str) -> str:
    try:
        client.execute_command(*args)
    except redis.ResponseError as error:
        return str(error)
    raise AssertionError(f"{args} answered no error")


def test_monitor_is_not_available_without_a_connection() -> None:
    from hearsay.resp import messages
    from tests.support.command_client import Client

    assert Client()("MONITOR") == messages.MONITOR_UNAVAILABLE
