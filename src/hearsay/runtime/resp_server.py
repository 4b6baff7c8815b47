"""The Redis-protocol listener: an asyncio Protocol around the sans-IO parser and registry.

One :class:`RespConnection` per client. Each ``data_received`` parses every complete command
in the chunk, dispatches them in order, then flushes the database's dirty keys once and sends
all the replies in one write: pipelined clients get one syscall per chunk, not per command.

With ``--fsync always`` a write may only be acknowledged once it is durable, so when the flush
returns an unfinished ticket the replies are held (and reading paused) until it completes.
Tickets complete in staging order, so waiting for the newest one covers every earlier write.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Final, cast

from hearsay.engine.database import Database
from hearsay.persist.group_commit import Ticket
from hearsay.resp.commands import ClientContext, CommandRegistry, ServerSettings
from hearsay.resp.parser import ProtocolError, RequestParser
from hearsay.resp.replies import ErrorReply, encode
from hearsay.runtime.clock import unix_ms

log = logging.getLogger(__name__)

_client_ids: Final = itertools.count(1)


class RespConnection(asyncio.Protocol):
    """One client connection speaking RESP2/RESP3."""

    def __init__(
        self,
        database: Database,
        registry: CommandRegistry,
        settings: ServerSettings,
        on_close: Callable[[RespConnection], None],
    ) -> None:
        self._database = database
        self._registry = registry
        self._on_close = on_close
        self.ctx = ClientContext(
            client_id=next(_client_ids), settings=settings, db=database, created_ms=unix_ms()
        )
        self._parser = RequestParser(authenticated=bool(self.ctx.authenticated))
        self._transport: asyncio.Transport | None = None
        self._held = bytearray()
        self._awaiting: Ticket | None = None
        self._closing = False

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.ctx.addr = _format_address(peer)
        self.ctx.laddr = _format_address(local)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._on_close(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._parser.feed(data)
        out = bytearray()
        ctx = self.ctx
        try:
            for args in self._parser:
                ctx.now_ms = unix_ms()
                out += encode(self._registry.dispatch(ctx, args), ctx.protocol)
                self._parser.authenticated = bool(ctx.authenticated)
                if ctx.close_after_reply:
                    self._closing = True
                    break
        except ProtocolError as error:
            out += encode(ErrorReply(error.message), ctx.protocol)
            self._closing = True
        ticket = self._database.flush()
        self._send(bytes(out), ticket)

    # -- replies ---------------------------------------------------------------------------------

    def _send(self, out: bytes, ticket: Ticket | None) -> None:
        transport = self._transport
        if transport is None:
            return
        if ticket is not None and not ticket.done():
            self._awaiting = ticket
            self._held += out
            transport.pause_reading()
            loop = asyncio.get_running_loop()
            ticket.add_done_callback(
                lambda done: loop.call_soon_threadsafe(self._ticket_done, done)
            )
            return
        if self._awaiting is not None:  # an earlier write is still on its way to disk
            self._held += out
            return
        if out:
            transport.write(out)
        if self._closing:
            transport.close()

    def _ticket_done(self, ticket: Ticket) -> None:
        if ticket is not self._awaiting or self._transport is None:
            return  # a newer ticket supersedes it
        transport = self._transport
        error = ticket.exception()
        if error is not None:
            # The write is not durable: say so instead of acknowledging it.
            log.error("storage failed, closing client %s: %s", self.ctx.addr, error)
            message = f"ERR write not durable: {error}".replace("\r", " ").replace("\n", " ")
            transport.write(encode(ErrorReply(message), self.ctx.protocol))
            transport.close()
            return
        self._awaiting = None
        held, self._held = bytes(self._held), bytearray()
        if held:
            transport.write(held)
        if self._closing:
            transport.close()
        else:
            transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _format_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
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
        self._server: asyncio.Server | None = None

    def _factory(self) -> RespConnection:
        connection = RespConnection(
            self._database, self._registry, self._settings, self.connections.discard
        )
        self.connections.add(connection)
        self.total_connections += 1
        return connection

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
