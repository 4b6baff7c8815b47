"""Error replies of a real ``hearsay serve`` checked against a real redis-server, same run.

Every case sends the same bytes over a raw socket to both servers (setup commands first, on
the same connection, with keys of its own) and compares the first reply line of the probe:
the expectation is what redis-server answers, never a constant of hearsay's. Cases cover the
commands Redis has (HLL, the INCR family, GET/SET, keys and expiry, connection commands) and
protocol errors. Where hearsay knowingly answers differently, the case says so and pins both
answers (see ``DIVERGENCES``); a divergence that appears or disappears fails the test.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator

import hiredis
import pytest

from tests.support.nodes import NodeProcess, split_address, start_node

pytestmark = [pytest.mark.redis, pytest.mark.integration]

READ_TIMEOUT_S = 10.0
LINE_BYTES_MAX = 4096


def command(*args: str | bytes) -> bytes:
    """One RESP array of bulk strings."""
    parts = [a if isinstance(a, bytes) else a.encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def exchange(port: int, setup: list[bytes], probe: bytes) -> bytes:
    """Send ``setup`` (one reply line each, read and dropped), then ``probe``; returns the
    first line of the probe's reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S) as sock:
        buffer = b""

        def line() -> bytes:
            nonlocal buffer
            while b"\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk or len(buffer) > LINE_BYTES_MAX:
                    return buffer  # closed (or no line end): what arrived
                buffer += chunk
            first, buffer = buffer.split(b"\r\n", 1)
            return first

        for request in setup:
            sock.sendall(request)
            reply = line()
            assert not reply.startswith(b"-"), (request, reply)
        sock.sendall(probe)
        return line()


# (case id, setup commands, probe bytes). Keys are unique per case: both servers live for the
# whole module and nothing is flushed.
CASES: list[tuple[str, list[bytes], bytes]] = [
    ("unknown-command", [], command("NOSUCHCOMMAND", "a")),
    ("pfadd-no-args", [], command("PFADD")),
    ("pfcount-no-args", [], command("PFCOUNT")),
    ("pfmerge-no-args", [], command("PFMERGE")),
    ("pfadd-on-counter", [command("INCRBY", "c1", "5")], command("PFADD", "c1", "a")),
    ("pfcount-on-counter", [command("INCRBY", "c2", "5")], command("PFCOUNT", "c2")),
    ("pfmerge-from-counter", [command("INCRBY", "c3", "5")], command("PFMERGE", "d3", "c3")),
    ("incr-no-args", [], command("INCR")),
    ("incrby-float", [], command("INCRBY", "n1", "1.5")),
    ("incrby-huge", [], command("INCRBY", "n2", "99999999999999999999")),
    ("decrby-word", [], command("DECRBY", "n3", "x")),
    ("incrby-extra-arg", [], command("INCRBY", "n4", "1", "2")),
    (
        "incr-overflow",
        [command("INCRBY", "n5", "9223372036854775807")],
        command("INCR", "n5"),
    ),
    ("decrby-min", [], command("DECRBY", "n6", "-9223372036854775808")),
    ("incrby-to-min", [], command("INCRBY", "n7", "-9223372036854775808")),
    ("incr-on-hll", [command("PFADD", "h1", "a")], command("INCR", "h1")),
    ("get-no-args", [], command("GET")),
    ("get-extra-arg", [], command("GET", "a", "b")),
    ("del-no-args", [], command("DEL")),
    ("exists-no-args", [], command("EXISTS")),
    ("touch-no-args", [], command("TOUCH")),
    ("time-extra-arg", [], command("TIME", "now")),
    ("expire-word", [command("PFADD", "h2", "a")], command("EXPIRE", "h2", "soon")),
    ("expire-no-seconds", [], command("EXPIRE", "h3")),
    ("pexpire-word", [command("PFADD", "h4", "a")], command("PEXPIRE", "h4", "1.5")),
    ("ttl-no-args", [], command("TTL")),
    ("persist-no-args", [], command("PERSIST")),
    ("type-no-args", [], command("TYPE")),
    ("select-word", [], command("SELECT", "x")),
    ("select-huge", [], command("SELECT", "4294967296")),
    ("echo-no-args", [], command("ECHO")),
    ("ping-two-args", [], command("PING", "a", "b")),
    ("hello-word", [], command("HELLO", "x")),
    ("hello-4", [], command("HELLO", "4")),
    ("client-setname-space", [], command("CLIENT", "SETNAME", "a b")),
    ("client-no-subcommand", [], command("CLIENT")),
    ("client-bad-subcommand", [], command("CLIENT", "NOPE")),
    ("config-no-subcommand", [], command("CONFIG")),
    ("config-bad-subcommand", [], command("CONFIG", "NOPE")),
    ("memory-no-subcommand", [], command("MEMORY")),
    ("memory-bad-subcommand", [], command("MEMORY", "NOPE")),
    ("memory-purge-extra-arg", [], command("MEMORY", "PURGE", "x")),
    ("object-no-subcommand", [], command("OBJECT")),
    ("object-bad-subcommand", [], command("OBJECT", "NOPE")),
    ("slowlog-no-subcommand", [], command("SLOWLOG")),
    ("slowlog-bad-subcommand", [], command("SLOWLOG", "NOPE")),
    ("module-no-subcommand", [], command("MODULE")),
    ("module-bad-subcommand", [], command("MODULE", "NOPE")),
    ("command-bad-subcommand", [], command("COMMAND", "NOPE")),
    ("auth-not-configured", [], command("AUTH", "x")),
    ("dbsize-extra-arg", [], command("DBSIZE", "x")),
    ("wait-word", [], command("WAIT", "x", "0")),
    ("wait-negative-timeout", [], command("WAIT", "0", "-1")),
    ("multi-nested", [command("MULTI")], command("MULTI")),
    ("exec-without-multi", [], command("EXEC")),
    ("discard-without-multi", [], command("DISCARD")),
    ("watch-inside-multi", [command("MULTI")], command("WATCH", "tx:w")),
    ("protocol-multibulk-length", [], b"*abc\r\n"),
    ("protocol-bulk-length", [], b"*1\r\n$-1\r\n"),
    ("protocol-bulk-too-long", [], b"*1\r\n$600000000\r\n"),
    ("protocol-unbalanced-quotes", [], b'PING "a\r\n'),
    ("protocol-quote-then-text", [], b'ECHO "a"b\r\n'),
    ("protocol-huge-inline", [], b"x" * 70000),
]

#: Case id -> (redis-server's answer, the start of hearsay's) where hearsay knowingly differs;
#: each is listed in docs/commands.md ("Where hearsay answers differently").
DIVERGENCES: dict[str, tuple[bytes, bytes]] = {
    # A counter is a PN counter: its decrements are a separate total that cannot exceed
    # 2**63-1, so -2**63 itself, a valid Redis integer, cannot be reached by decrements.
    "incrby-to-min": (b":-9223372036854775808", b"-ERR counter slice of origin '"),
    # Redis checks SELECT's index against the int range with its own message.
    "select-huge": (
        b"-ERR value is out of range, value must between -2147483648 and 2147483647",
        b"-ERR value is not an integer or out of range",
    ),
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("errors-node"))
    yield started
    started.stop(signal.SIGKILL)


@pytest.mark.parametrize(("case", "setup", "probe"), CASES, ids=[c[0] for c in CASES])
def test_error_reply_matches_redis_server(
    node: NodeProcess, redis_server: int, case: str, setup: list[bytes], probe: bytes
) -> None:
    expected = exchange(redis_server, setup, probe)
    got = exchange(split_address(node.resp)[1], setup, probe)
    if case in DIVERGENCES:
        redis_reply, hearsay_start = DIVERGENCES[case]
        assert expected == redis_reply
        assert got.startswith(hearsay_start), got
        assert got != expected
    else:
        assert expected.startswith(b"-"), f"redis-server answered no error: {expected!r}"
        assert got == expected


def test_every_divergence_has_a_case() -> None:
    assert set(DIVERGENCES) <= {case for case, _, _ in CASES}


def _script(port: int, requests: list[bytes]) -> list[object]:
    """Send ``requests`` on one connection, one at a time; every reply (errors as text)."""
    replies: list[object] = []
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S) as sock:
        reader = hiredis.Reader()
        for request in requests:
            sock.sendall(request)
            reply = reader.gets()
            while reply is False:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed after {request!r}"
                reader.feed(chunk)
                reply = reader.gets()
            if isinstance(reply, list):
                reply = [str(r) if isinstance(r, hiredis.ReplyError) else r for r in reply]
            replies.append(str(reply) if isinstance(reply, hiredis.ReplyError) else reply)
    return replies


TRANSACTIONS = {
    "exec": [command("MULTI"), command("INCR", "tx:a"), command("INCRBY", "tx:a", "4"),
             command("PFADD", "tx:h", "x", "y"), command("GET", "tx:a"), command("EXEC"),
             command("GET", "tx:a")],
    "wrongtype-inside-runs-the-rest": [
        command("PFADD", "tx:t", "x"), command("MULTI"), command("INCR", "tx:t"),
        command("INCR", "tx:u"), command("EXEC"), command("GET", "tx:u")],
    "execabort-applies-nothing": [
        command("MULTI"), command("INCR", "tx:b"), command("NOSUCHCOMMAND"),
        command("INCR", "tx:b", "extra"), command("EXEC"), command("EXISTS", "tx:b")],
    "discard-applies-nothing": [
        command("MULTI"), command("INCR", "tx:c"), command("DISCARD"), command("EXISTS", "tx:c")],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TRANSACTIONS))
def test_a_transaction_answers_as_redis_server(
    node: NodeProcess, redis_server: int, case: str
) -> None:
    """MULTI/EXEC/DISCARD: every reply, queued and executed, the same as redis-server's
    (an unknown command's text names its arguments the same way in both)."""
    expected = _script(redis_server, TRANSACTIONS[case])
    assert _script(split_address(node.resp)[1], TRANSACTIONS[case]) == expected


def test_a_redis_py_transaction_runs_whole(node: NodeProcess) -> None:
    """redis-py's default pipeline is a transaction: it must work, not half-apply (a MULTI
    refused while the commands after it ran made a retrying client apply them twice)."""
    client = node.client()
    try:
        pipe = client.pipeline(transaction=True)
        pipe.incr("tx:n")
        pipe.pfadd("tx:p", "a")
        pipe.incrby("tx:n", 2)
        assert pipe.execute() == [1, 1, 3]
        assert client.get("tx:n") == b"3"
    finally:
        client.close()


def test_wait_and_watch_are_refused_around_transactions(node: NodeProcess) -> None:
    """Divergences, pinned: WAIT inside MULTI is refused (and aborts the EXEC: a transaction
    cannot hold its reply for peers), and WATCH is refused (no optimistic locking)."""
    replies = _script(
        split_address(node.resp)[1],
        [command("MULTI"), command("WAIT", "1", "0"), command("EXEC"), command("WATCH", "k")],
    )
    assert replies == [
        b"OK",
        "ERR Command not allowed inside a transaction",
        "EXECABORT Transaction discarded because of previous errors.",
        "ERR command 'WATCH' is not supported by hearsay",
    ]


def test_time_is_the_nodes_clock_and_touch_counts_like_exists(
    node: NodeProcess, redis_server: int
) -> None:
    """TIME answers what redis-py's ``time()`` parses, from the node's clock (compared with
    this process's clock around the call, the same host); TOUCH counts as Redis's does."""
    import time

    import redis

    client = node.client()
    reference = redis.Redis(port=redis_server)
    try:
        before_us = time.time_ns() // 1_000
        seconds, micros = client.time()
        after_us = time.time_ns() // 1_000
        assert 0 <= micros < 1_000_000 and micros % 1000 == 0  # (milliseconds, as microseconds)
        assert before_us - 1_000 <= seconds * 1_000_000 + micros <= after_us
        for server in (client, reference):
            server.pfadd("touch:a", "x")
        assert client.touch("touch:a", "touch:a", "touch:none") == reference.touch(
            "touch:a", "touch:a", "touch:none"
        )
    finally:
        client.close()
        reference.close()
