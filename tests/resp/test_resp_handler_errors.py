"""Issue 11, finding 13: a handler's error is an error reply; the connection and the replies to
earlier pipelined commands survive.

Before the fix, an exception a handler did not expect escaped ``data_received``: the transport
was closed and the replies to the commands pipelined before it (whose writes were applied)
were never sent.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from hearsay.engine.replica import Replica
from hearsay.resp.commands import (
    ClientContext,
    CommandRegistry,
    ServerSettings,
    install_connection_commands,
)
from hearsay.resp.replies import ErrorReply, Reply
from hearsay.runtime.resp_server import RespServer
from tests.support.nodes import NodeProcess, start_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("handler-errors") / "node")
    yield started
    started.stop(signal.SIGKILL)


def _pipelined(client: redis.Redis, *command: object) -> list[object]:
    """INCR, ``command``, INCR in one pipeline: every reply, errors as values."""
    pipe = client.pipeline(transaction=False)
    pipe.incr("before")
    pipe.execute_command(*command)
    pipe.incr("after")
    return list(pipe.execute(raise_on_error=False))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("command", "error"),
    [
        (("CMS.INITBYPROB", "c", "0.01", "1e-50"), "CMS: invalid init arguments"),
        (("HEARSAY.SETSTATE", "k" * 257, "v"), "state key must be 1..256 characters"),
        (("HEARSAY.SETSTATE", "\0k", "v"), "state key must not start with a NUL byte"),
        (("HEARSAY.SETSTATE", "k", "v" * 513), "state value longer than 512 bytes"),
        (("HEARSAY.SETSTATE", "k", "v" * 500), "state key not set"),  # too large packed
    ],
)
def test_bad_input_gets_an_error_and_the_pipeline_survives(
    node: NodeProcess, command: tuple[str, ...], error: str
) -> None:
    client = node.client()
    before = int(client.get("before") or 0)
    after = int(client.get("after") or 0)
    replies = _pipelined(client, *command)
    assert replies[0] == before + 1
    assert isinstance(replies[1], redis.ResponseError) and error in str(replies[1])
    assert replies[2] == after + 1
    assert client.ping() is True  # the same connection, still open
    assert client.info("stats")["internal_errors"] == 0  # each was a proper error


@pytest.mark.integration
def test_the_state_key_beyond_the_cap_is_refused_with_an_error(tmp_path: Path) -> None:
    started = start_node(tmp_path / "node")
    try:
        client = started.client()
        pipe = client.pipeline(transaction=False)
        for number in range(1024):  # the node keeps a few state keys of its own too
            pipe.execute_command("HEARSAY.SETSTATE", f"key{number}", "v")
        replies = pipe.execute(raise_on_error=False)
        accepted = replies.count(b"OK")
        assert 1000 <= accepted < 1024 and replies[:accepted] == [b"OK"] * accepted
        assert all("at most 1024 state keys" in str(reply) for reply in replies[accepted:])
        replies = _pipelined(client, "HEARSAY.SETSTATE", "one-too-many", "v")
        assert replies[0] == 1 and replies[2] == 1
        assert isinstance(replies[1], redis.ResponseError)
        assert "at most 1024 state keys" in str(replies[1])
        assert client.execute_command("HEARSAY.SETSTATE", "key7", "changed") == b"OK"
        assert client.execute_command("HEARSAY.GETSTATE", "key7") == b"changed"
    finally:
        started.stop(signal.SIGKILL)


def test_an_unexpected_handler_exception_is_an_internal_error_reply() -> None:
    """Any bug in any handler: Redis-style error text naming the command, counted."""
    registry = CommandRegistry()

    def broken(ctx: ClientContext, args: list[bytes]) -> Reply:
        raise KeyError("no\r\nsuch thing")

    registry.add("BROKEN", broken, arity=1)
    ctx = ClientContext(client_id=1)
    for count in (1, 2):
        reply = registry.dispatch(ctx, [b"BROKEN"])
        assert isinstance(reply, ErrorReply)
        assert reply == "ERR internal error in broken: KeyError: 'no\\r\\nsuch thing'"
        assert registry.internal_errors == count


def test_an_unexpected_run_handler_exception_answers_every_call() -> None:
    registry = CommandRegistry()

    def broken_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        raise ZeroDivisionError("boom")

    registry.add("RUN", lambda ctx, args: 1, arity=-2, first_key=1, last_key=1, step=1,
                 run_handler=broken_run)  # fmt: skip
    replies = registry.dispatch_run(ClientContext(client_id=1), [[b"RUN", b"k"]] * 3)
    assert replies == [ErrorReply("ERR internal error in run: ZeroDivisionError: boom")] * 3


EXPECTED_AROUND_UNENCODABLE = (
    b"+PONG\r\n-ERR internal error in unencodable: TypeError: cannot encode "
    b"object as a RESP reply\r\n+PONG\r\n"
)


def test_a_reply_that_cannot_be_encoded_is_an_internal_error_reply(tmp_path: Path) -> None:
    """The listener itself (a real socket, a real database): a handler returning something RESP
    cannot encode gets an error reply in its place; the replies around it still come."""

    def unencodable(ctx: ClientContext, args: list[bytes]) -> Reply:
        return object()  # type: ignore[return-value]

    async def exchange() -> bytes:
        registry = CommandRegistry()
        install_connection_commands(registry)
        registry.add("UNENCODABLE", unencodable, arity=1)
        database = Replica.open(tmp_path / "data", commands=registry)
        server = RespServer(database, registry, ServerSettings())
        try:
            host, port = await server.start("127.0.0.1", 0)
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"PING\r\nUNENCODABLE\r\nPING\r\n")
            expected_bytes = len(EXPECTED_AROUND_UNENCODABLE)
            received = await asyncio.wait_for(reader.readexactly(expected_bytes), 20)
            writer.close()
            return received
        finally:
            await server.stop()
            database.close()

    assert asyncio.run(exchange()) == EXPECTED_AROUND_UNENCODABLE


def test_a_bug_under_coalesced_commands_answers_every_client(tmp_path: Path) -> None:
    """Clients' single commands wait in the listener's coalescer and run together: a bug met
    while running them (here the database's run and call raise) still answers every client
    with an internal error, so none waits for a reply that never comes."""

    def hot(ctx: ClientContext, args: list[bytes]) -> Reply:
        return 1

    def hot_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        return [1] * len(run)

    def raising(*args: object) -> object:
        raise ZeroDivisionError("boom")

    async def exchange(clients: int, same_key: bool) -> list[bytes]:
        registry = CommandRegistry()
        install_connection_commands(registry)
        registry.add("HOT", hot, arity=2, first_key=1, last_key=1, step=1, run_handler=hot_run)
        database = Replica.open(tmp_path / "data", commands=registry)
        database.execute_run = raising  # type: ignore[method-assign]
        database.execute = raising  # type: ignore[method-assign]
        server = RespServer(database, registry, ServerSettings())
        try:
            host, port = await server.start("127.0.0.1", 0)
            pairs = [await asyncio.open_connection(host, port) for _ in range(clients)]
            for n, (_, writer) in enumerate(pairs):  # (one key: runs; a key each: alone)
                writer.write(b"HOT key\r\n" if same_key else b"HOT key%d\r\n" % n)
            replies = [await asyncio.wait_for(reader.readline(), 20) for reader, _ in pairs]
            for _, writer in pairs:
                writer.close()
            return replies
        finally:
            await server.stop()
            database.close()

    for same_key in (True, False):
        replies = asyncio.run(exchange(20, same_key))
        assert replies == [b"-ERR internal error in hot: ZeroDivisionError: boom\r\n"] * 20
