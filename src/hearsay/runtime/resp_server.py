"""The Redis-protocol listener: an asyncio Protocol around the sans-IO parser and registry.

One :class:`RespConnection` per client. Each ``data_received`` parses every complete command
in the chunk, dispatches them in order and sends all the replies in one write: pipelined
clients get one syscall per chunk, not per command, and those writes are made once per
event-loop iteration, after every ready client was served (see :class:`_Outbox`). A run of
calls of one command on one key (a pipeline of PFADDs to one HyperLogLog) is dispatched as
one call of the command's run handler when it has one.

With ``--fsync always`` a write may only be acknowledged once it is durable, so the chunk's
dirty keys are flushed at once and, when the flush returns an unfinished ticket, the replies
are held (and reading paused) until it completes. Tickets complete in staging order, so
waiting for the newest one covers every earlier write. If the ticket fails (the disk failed
under the writes), every command of the chunk is answered with a MISCONF error instead, one
reply per command, and the connection stays open. Under the other policies the node's
housekeeping timer flushes instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast

from hearsay.engine.database import Database
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandRegistry, Deferred, ServerSettings
from hearsay.resp.parser import RequestParser
from hearsay.resp.replies import ErrorReply, encode, encoder_for
from hearsay.runtime.addresses import format_address
from hearsay.runtime.clock import unix_ms

log = logging.getLogger(__name__)

_client_ids: Final = itertools.count(1)


class _Gate:
    """An output segment that waits: a durability ticket, or a deferred reply (WAIT).

    A durability gate also knows what it acknowledges: ``replies`` commands, whose replies
    are the ``covers`` queue items behind it (replaced by errors if the ticket fails).
    """

    __slots__ = ("covers", "durable", "future", "replies")

    def __init__(
        self, future: asyncio.Future[Any], durable: bool, replies: int = 0, covers: int = 0
    ) -> None:
        self.future = future
        self.durable = durable
        self.replies = replies
        self.covers = covers


class _Outbox:
    """Replies written once per event-loop iteration, after every ready client was served.

    Like Redis's ``beforeSleep``: a write on loopback wakes the client at once, and a client
    woken in the middle of a batch of ready connections competes with the server for the CPU;
    writing them all after the batch keeps the batch on the CPU. (``call_soon`` runs before
    the loop polls again, so no reply waits for new input.)
    """

    __slots__ = ("_connections", "_scheduled")

    def __init__(self) -> None:
        self._connections: list[RespConnection] = []
        self._scheduled = False

    def add(self, connection: RespConnection) -> None:
        self._connections.append(connection)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        connections, self._connections = self._connections, []
        for connection in connections:
            connection.send_unsent()


class RespConnection(asyncio.Protocol):
    """One client connection speaking RESP2/RESP3.

    Replies leave in request order. Most are bytes written at once; a reply that must wait
    (a write under ``--fsync always`` until it is durable, or WAIT until peers hold this
    client's writes) becomes a gate in the output queue, and everything behind it waits
    too (reading is paused meanwhile, which is the client's back-pressure).
    """

    def __init__(
        self,
        database: Database,
        registry: CommandRegistry,
        settings: ServerSettings,
        on_close: Callable[[RespConnection], None],
        outbox: _Outbox,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._unsent: list[bytes] = []
        self._durable = database.acknowledges_durable  # the fsync policy is the node's, fixed
        self._registry = registry
        self._on_close = on_close
        self.ctx = ClientContext(
            client_id=next(_client_ids), settings=settings, db=database, created_ms=unix_ms()
        )
        self._parser = RequestParser(authenticated=bool(self.ctx.authenticated))
        self._transport: asyncio.Transport | None = None
        self._queue: deque[bytes | _Gate] = deque()
        self._paused = False
        self._closing = False
        self.commands_processed = 0  # INFO stats (summed by the server)

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self.ctx.addr = _tcp_address(transport.get_extra_info("peername"))
        self.ctx.laddr = _tcp_address(transport.get_extra_info("sockname"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._unsent.clear()
        for item in self._queue:
            if isinstance(item, _Gate) and not item.durable:
                item.future.cancel()
        self._queue.clear()
        self._on_close(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        parser = self._parser
        commands = parser.parse(data)
        self.commands_processed += len(commands)
        database, ctx = self._database, self.ctx
        registry = self._registry
        ctx.now_ms = unix_ms()  # one clock read per chunk: its commands arrived together
        batch: list[bytes | _Gate] = []
        out: list[bytes] = []
        at, count = 0, len(commands)
        while at < count:  # bounded: at grows by one command or one run per pass
            seq_before = database.last_write_seq
            run = registry.run_at(commands, at) if count - at > 1 else 0
            if run:
                run_replies = registry.dispatch_run(ctx, commands[at : at + run])
                out.append(encoder_for(ctx.protocol).encode_many(run_replies))
                at += run
                if database.last_write_seq != seq_before:
                    ctx.last_write_seq = database.last_write_seq
                continue
            reply = registry.dispatch(ctx, commands[at])
            at += 1
            if database.last_write_seq != seq_before:
                ctx.last_write_seq = database.last_write_seq
            if isinstance(reply, Deferred):
                batch.append(b"".join(out))
                out = []
                batch.append(_Gate(asyncio.ensure_future(reply.reply), durable=False))
            else:
                out.append(encode(reply, ctx.protocol))
            if ctx.close_after_reply:
                self._closing = True
                break
        reply_count = at
        if parser.error is not None and not self._closing:
            out.append(encode(ErrorReply(parser.error.message), ctx.protocol))
            reply_count += 1
            self._closing = True
        if ctx.authenticated and not parser.authenticated:  # AUTH or HELLO ... AUTH succeeded
            parser.authenticated = True
        ticket = database.flush() if self._durable else None
        if ticket is not None and (not ticket.done() or ticket.exception() is not None):
            # The replies of this batch acknowledge its writes: they wait until durable.
            gate = _Gate(asyncio.wrap_future(ticket), True, reply_count, len(batch) + 1)
            self._queue.append(gate)
        elif not batch and not self._queue and self._transport is not None:
            # The common case: nothing waits, so the replies leave in one write.
            replies = b"".join(out)
            if replies or self._closing:
                if not self._unsent:
                    self._outbox.add(self)
                self._unsent.append(replies)
            return
        batch.append(b"".join(out))
        self._queue.extend(batch)
        self._drain()

    @property
    def blocked(self) -> bool:
        """Waiting for a deferred reply (WAIT, or a write under ``--fsync always``)."""
        return self._paused

    # -- replies ---------------------------------------------------------------------------------

    def send_unsent(self) -> None:
        """Write the replies held for the outbox (closing after them when asked to)."""
        transport = self._transport
        if transport is None or not self._unsent:
            return
        data = b"".join(self._unsent)
        self._unsent.clear()
        if data:
            transport.write(data)
        if self._closing and not self._queue:
            transport.close()

    def _drain(self, _: object = None) -> None:
        self.send_unsent()  # what the outbox holds goes first
        transport = self._transport
        if transport is None:
            return
        queue = self._queue
        while queue:
            head = queue[0]
            if isinstance(head, bytes):
                if head:
                    transport.write(head)
                queue.popleft()
                continue
            if not head.future.done():
                head.future.add_done_callback(self._drain)
                if not self._paused:
                    transport.pause_reading()
                    self._paused = True
                return
            queue.popleft()
            self._release(head)
        if self._closing:
            transport.close()
        elif self._paused:
            transport.resume_reading()
            self._paused = False

    def _release(self, gate: _Gate) -> None:
        """Write what a finished gate yields."""
        transport = self._transport
        assert transport is not None
        if gate.future.cancelled():
            return
        error = gate.future.exception()
        if gate.durable:
            if error is None:
                return
            # Not durable: every command of the chunk gets the error instead of its reply
            # (one reply per command, so the client's pipeline stays in step).
            for _ in range(gate.covers):
                covered = self._queue.popleft()
                if isinstance(covered, _Gate):
                    covered.future.cancel()
            refusal = encode(ErrorReply(messages.not_durable(str(error))), self.ctx.protocol)
            transport.write(refusal * gate.replies)
            return
        if error is not None:
            text = f"ERR {error}".replace("\r", " ").replace("\n", " ")
            transport.write(encode(ErrorReply(text), self.ctx.protocol))
        else:
            transport.write(encode(gate.future.result(), self.ctx.protocol))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _tcp_address(address: object) -> str:
    """A socket's (host, port, ...) tuple as ``host:port``; empty for anything else."""
    if isinstance(address, tuple) and len(address) >= 2:
        return format_address(str(address[0]), int(address[1]))
    return ""


class RespServer:
    """Owns the listening socket and the live connections (for INFO clients and shutdown)."""

    def __init__(
        self, database: Database, registry: CommandRegistry, settings: ServerSettings
    ) -> None:
        self._database = database
        self._registry = registry
        self._settings = settings
        self.connections: set[RespConnection] = set()
        self.total_connections = 0
        self._commands_of_closed = 0
        self._server: asyncio.Server | None = None
        self._outbox = _Outbox()

    def _factory(self) -> RespConnection:
        connection = RespConnection(
            self._database, self._registry, self._settings, self._closed, self._outbox
        )
        self.connections.add(connection)
        self.total_connections += 1
        return connection

    def _closed(self, connection: RespConnection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self._commands_of_closed += connection.commands_processed

    def commands_processed(self) -> int:
        """Commands received since start, over every connection (INFO stats)."""
        live = sum(connection.commands_processed for connection in self.connections)
        return self._commands_of_closed + live

    def blocked_clients(self) -> int:
        """Connections waiting for a deferred reply (INFO clients)."""
        return sum(connection.blocked for connection in self.connections)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._factory, host, port, reuse_address=True)
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
