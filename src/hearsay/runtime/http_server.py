"""A small HTTP/1.1 listener for operators: ``/health``, ``/status`` (JSON), ``/metrics``,
``/history`` (JSON: the dashboard's chart samples) and the dashboard at ``/`` (``/dashboard``).

Deliberately tiny (GET only, one request per connection, bounded header size, a request
line within 5 s, at most ``--max-http-connections`` at once: one more is answered 503 and
closed without being read): it serves probes, Prometheus scrapes and a status page, nothing
else, so it needs no framework.
``/status`` and ``/history`` may be read by another node's dashboard (another origin: the
ports differ), so they allow any origin; they are as public as ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Callable
from importlib import resources
from typing import Any, Final

HEADER_BYTES_MAX: Final = 16 * 1024
_JSON: Final = "application/json"
READ_TIMEOUT_S: Final = 5.0
MAX_CONNECTIONS_DEFAULT: Final = 64
"""Open HTTP connections at once (``--max-http-connections``): enough for scrapers, probes
and a few dashboards; each holds at most a 16 KiB head for at most 5 s."""
_TOO_MANY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n"
    b"Connection: close\r\nRetry-After: 1\r\n\r\ntoo many HTTP connections\n"
)

StatusSource = Callable[[], dict[str, Any]]
MetricsSource = Callable[[], str | bytes]
HealthSource = Callable[[], tuple[bool, str]]
"""``(serving, text)``: not serving (storage read-only) answers 503 with ``text``; a serving
node answers 200 with ``text``, ``ok`` unless there is something an operator must see."""

HistorySource = Callable[[], dict[str, Any]]


@functools.cache
def dashboard_page() -> bytes:
    """The dashboard (one file, inline CSS, JS and SVG: no external assets), read once."""
    return resources.files("hearsay.runtime").joinpath("dashboard.html").read_bytes()


class HttpServer:
    """Serves status and metrics from callables the node provides."""

    def __init__(
        self,
        status: StatusSource,
        metrics: MetricsSource,
        health: HealthSource | None = None,
        history: HistorySource | None = None,
        max_connections: int = MAX_CONNECTIONS_DEFAULT,
    ) -> None:
        self._status = status
        self._metrics = metrics
        self._health = health
        self._history = history
        self._server: asyncio.Server | None = None
        self.max_connections = max_connections
        self.open_connections = 0
        self.rejected_connections = 0
        """Connections answered 503 because ``max_connections`` were open (INFO stats)."""

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.max_connections:
            self.rejected_connections += 1
            writer.write(_TOO_MANY)
            writer.close()
            return
        self.open_connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.open_connections -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        except ConnectionError:
            writer.close()
            return
        status, content_type, body = self._route(head[:HEADER_BYTES_MAX])
        shared = "Access-Control-Allow-Origin: *\r\n" if content_type == _JSON else ""
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{shared}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            "Cache-Control: no-store\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def _route(self, head: bytes) -> tuple[str, str, bytes]:
        request_line = head.split(b"\r\n", 1)[0].split(b" ")
        if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
            return "400 Bad Request", "text/plain", b"bad request\n"
        method, target = request_line[0], request_line[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if target == b"/health":
            serving, text = self._health() if self._health is not None else (True, "ok")
            status = "200 OK" if serving else "503 Service Unavailable"
            return status, "text/plain", text.encode() + b"\n"
        if target == b"/status":
            body = json.dumps(self._status(), sort_keys=True).encode() + b"\n"
            return "200 OK", _JSON, body
        if target == b"/history" and self._history is not None:
            return "200 OK", _JSON, json.dumps(self._history()).encode() + b"\n"
        if target == b"/metrics":
            exposition = self._metrics()
            if isinstance(exposition, str):
                exposition = exposition.encode()
            return "200 OK", "text/plain; version=0.0.4; charset=utf-8", exposition
        if target in (b"/", b"/dashboard"):
            return "200 OK", "text/html; charset=utf-8", dashboard_page()
        return "404 Not Found", "text/plain", b"not found\n"
