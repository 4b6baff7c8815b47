"""The gossip driver: UDP and TCP sockets, a timer, and the sans-IO replica between them.

The replica (and its gossip node) decides everything; this module only moves bytes and time.
After every input (a datagram, a stream, a timer, a client's commands) :meth:`GossipDriver.pump`
sends what the replica queued, handles the events that need I/O (stream requests, WAIT
wake-ups, member events for the log) and re-arms the single timer for
``replica.get_timer()``.

Peer addresses given by name (``--join localhost:7946``, HEARSAY.JOIN, rmbd PEER) are
resolved here, at the edge, with the event loop's resolver (never blocking the loop), and
retried with a growing delay; the core only ever sees IP addresses. A datagram that cannot be
sent (an unreachable or wrong-family address) is counted and logged at most once per
``SEND_ERROR_LOG_INTERVAL_S``; it never stops the rest of the batch or the timer.

Streams (large anti-entropy messages) go over TCP to the peer's gossip port. A stream is one
frame: the sender's gossip port (2 bytes, so the receiver knows where to answer by UDP), the
body's length (4 bytes), the hello's length (2 bytes), a small sealed ``STREAM_HELLO``
repeating port and length, then the body (one sealed envelope). The receiver reads and
authenticates the hello (keyring and replay guard) before it buffers the body, so a stranger
cannot make it hold up to ``stream_bytes_max`` per connection; at most
``STREAM_CONNECTIONS_MAX`` streams are read at once, others are closed unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, cast

from hearsay.base.errors import HearsayError
from hearsay.engine.interfaces import AckWait
from hearsay.engine.replica import Replica
from hearsay.protocol.envelope import Keyring
from hearsay.protocol.events import DatagramDropped, StreamRequest, WriteAcked
from hearsay.protocol.membership import (
    Address,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    Membership,
)
from hearsay.protocol.node import STREAM_HELLO_BYTES_MAX, NodeConfig
from hearsay.protocol.presets import preset_by_name
from hearsay.runtime.clock import unix_ms
from hearsay.runtime.udp_socket import kernel_drops, size_buffers

log = logging.getLogger(__name__)

STREAM_HEADER: Final = struct.Struct("!HIH")
STREAM_CONNECTIONS_MAX: Final = 16
STREAM_CONNECT_TIMEOUT_S: Final = 3.0
STREAM_READ_TIMEOUT_S: Final = 10.0
BIND_ATTEMPTS: Final = 20
LEAVE_LINGER_S: Final = 0.5
"""After announcing a graceful leave, keep gossiping this long so the news spreads."""
SEND_ERROR_LOG_INTERVAL_S: Final = 10.0


class GossipDriver(asyncio.DatagramProtocol):
    """Runs one :class:`Replica`'s gossip on real sockets."""

    def __init__(self, replica: Replica, name: str, preset: str, cluster: str) -> None:
        self.replica = replica
        self.name = name
        self.preset = preset_by_name(preset)
        self.cluster = cluster
        self.keyring: Keyring | None = None
        self._started = False
        self.address: Address = ("127.0.0.1", 0)
        self._transport: asyncio.DatagramTransport | None = None
        self._stream_server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at_ms: int | None = None
        self._pump_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._ack_waiters: list[tuple[AckWait, asyncio.Future[int]]] = []
        self.send_errors = 0
        """Datagrams the socket refused (unreachable, wrong address family...)."""
        self.streams_refused = 0
        """Incoming gossip streams closed unread (too many at once, or a bad header)."""
        self.receive_buffer_bytes = 0
        """The gossip socket's receive buffer the kernel granted (0 before binding)."""
        self._socket_inode: int | None = None
        self._send_error_logged_at = -SEND_ERROR_LOG_INTERVAL_S
        self._streams_open = 0
        self.on_dropped: Callable[[DatagramDropped], None] | None = None
        """Told of every refused datagram (the node counts keyring mismatches)."""

    # -- start and stop --------------------------------------------------------------------------

    async def start(
        self, host: str, port: int, advertise: Address | None, keyring: Keyring | None
    ) -> Address:
        """Bind UDP (and TCP for streams) on the same port; returns the bound address."""
        bound = await self._bind(host, port)
        if advertise is not None and not _is_ip(advertise[0]):
            resolved = await self._resolve(*advertise)
            if resolved is None:
                raise HearsayError(f"--advertise {advertise[0]} does not resolve")
            advertise = resolved  # peers are given an address they can send to
        self.address = advertise if advertise is not None else bound
        self.keyring = keyring
        now = unix_ms()
        rng = random.Random(os.urandom(16))
        identity = self.replica.identity
        membership = Membership(
            self.name, identity.generation, self.address, self.preset, rng, now_ms=now
        )
        self.replica.attach_gossip(
            self.address,
            config=NodeConfig.from_preset(self.preset),
            cluster=self.cluster,
            keyring=keyring,
            membership=membership,
            rng=rng,
            nonce_source=os.urandom,
            now_ms=now,
        )
        self._started = True
        self.pump()
        return bound

    async def _bind(self, host: str, port: int) -> Address:
        """UDP and TCP on one port number. With port 0 the kernel picks the UDP port, and that
        number may be taken for TCP by someone else: then try again with a new pick."""
        loop = asyncio.get_running_loop()
        for _ in range(BIND_ATTEMPTS if port == 0 else 1):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self, local_addr=(host, port)
            )
            sockname = transport.get_extra_info("sockname")
            bound_port = int(sockname[1])
            sock = transport.get_extra_info("socket")
            if sock is not None:
                self.receive_buffer_bytes = size_buffers(sock)
                self._socket_inode = os.fstat(sock.fileno()).st_ino
            try:
                self._stream_server = await asyncio.start_server(self._on_stream, host, bound_port)
            except OSError:
                transport.close()
                if port != 0:
                    raise
                continue
            self._transport = transport
            return str(sockname[0]), bound_port
        raise HearsayError(f"no port free for both UDP and TCP on {host} after retries")

    def socket_drops(self) -> int | None:
        """Datagrams the kernel dropped at the gossip socket (its receive buffer was full);
        None where the system does not say (not Linux, or not bound)."""
        return None if self._socket_inode is None else kernel_drops(self._socket_inode)

    def join(self, seeds: list[Address]) -> None:
        """Contact ``seeds`` (IP addresses: runtime/joiner.py resolves names first)."""
        assert self._started
        if seeds:
            self.replica.join(seeds, unix_ms())
            self.pump()

    async def _resolve(self, host: str, port: int) -> Address | None:
        """The first address of ``host`` in our socket's family, or None (``--advertise``)."""
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        if self._transport is not None:
            sock = self._transport.get_extra_info("socket")
            if sock is not None:
                family = sock.family
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=family, type=socket.SOCK_DGRAM
            )
        except (OSError, ValueError):  # (UnicodeError and "embedded null" are ValueErrors)
            return None
        for _family, _type, _proto, _name, sockaddr in infos:
            return str(sockaddr[0]), int(sockaddr[1])
        return None

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def leave(self) -> None:
        """Announce a graceful leave and keep gossiping briefly so peers hear it."""
        if not self._started:
            return
        self.replica.leave(unix_ms())
        self.pump()
        await asyncio.sleep(LEAVE_LINGER_S)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._transport.close()
        if self._stream_server is not None:
            self._stream_server.close()
            await self._stream_server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for _, future in self._ack_waiters:
            if not future.done():
                future.cancel()
        self._started = False

    # -- inputs ----------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if not self._started:
            return
        source = (str(addr[0]), int(cast(int, addr[1])))
        self.replica.receive_datagram(data, source, unix_ms())
        # Pump once the loop has read what else is waiting: the PUSHes of one pass are then
        # acknowledged in one ACK per sender (each was an ACK datagram, sent and received).
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def error_received(self, exc: Exception, peer: object = None) -> None:
        """Count a failed send; log at most one line per ``SEND_ERROR_LOG_INTERVAL_S``."""
        self.send_errors += 1
        now = time.monotonic()
        if now - self._send_error_logged_at >= SEND_ERROR_LOG_INTERVAL_S:
            self._send_error_logged_at = now
            log.warning(
                "gossip send failed%s: %s (%d so far; next report in %.0f s at most)",
                f" to {peer}" if peer is not None else "",
                exc,
                self.send_errors,
                SEND_ERROR_LOG_INTERVAL_S,
            )

    def pump_soon(self) -> None:
        """After clients' commands: pump once the event loop is done with the current batch,
        if the replica queued anything (a lone node's writes queue nothing)."""
        if not self._pump_scheduled and self._started and self.replica.has_output():
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at_ms = None
        if self._started:
            self.replica.handle_timer(unix_ms())
            self.pump()

    async def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self._streams_open >= STREAM_CONNECTIONS_MAX or not self._started:
            self.streams_refused += 1
            writer.close()
            return
        self._streams_open += 1
        try:
            header = await asyncio.wait_for(
                reader.readexactly(STREAM_HEADER.size), STREAM_READ_TIMEOUT_S
            )
            port, length, hello_length = STREAM_HEADER.unpack(header)
            if port == 0 or not 0 < hello_length <= STREAM_HELLO_BYTES_MAX:
                self.streams_refused += 1
                return
            hello = await asyncio.wait_for(reader.readexactly(hello_length), STREAM_READ_TIMEOUT_S)
            source = (str(peer[0]), port)
            if self.replica.open_stream_hello(hello, source, unix_ms()) != (port, length):
                self.streams_refused += 1
                self.pump()  # (the drop's event)
                return
            data = await asyncio.wait_for(reader.readexactly(length), STREAM_READ_TIMEOUT_S)
            for _ in self.replica.receive_stream_steps(data, source, unix_ms()):
                self.pump()
                await asyncio.sleep(0)  # let clients and datagrams in between the steps
            self.pump()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            return
        finally:
            self._streams_open -= 1
            writer.close()

    # -- outputs ---------------------------------------------------------------------------------

    def pump(self) -> None:
        """Send what the replica queued, handle its events, and re-arm its timer."""
        self._pump_scheduled = False
        replica, transport = self.replica, self._transport
        if not self._started or transport is None:
            return
        for data, peer in replica.datagrams_to_send():
            try:
                transport.sendto(data, peer)
            except (OSError, ValueError) as error:  # uvloop raises ValueError for bad addresses
                self.error_received(error, peer)
        while (event := replica.next_event()) is not None:
            self._handle_event(event)
        self._arm_timer(replica.get_timer())

    def _handle_event(self, event: object) -> None:
        if isinstance(event, StreamRequest):
            self._spawn(self._send_stream(event))
        elif isinstance(event, WriteAcked):
            self._wake_ack_waiters()
        elif isinstance(event, DatagramDropped):
            log.debug("dropped a datagram from %s: %s", event.source, event.reason)
            if self.on_dropped is not None:
                self.on_dropped(event)
        elif isinstance(event, MemberJoined | MemberFailed | MemberLeft):
            log.info("member event: %s", event)

    async def _send_stream(self, request: StreamRequest) -> None:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(*request.peer), STREAM_CONNECT_TIMEOUT_S
            )
            header = STREAM_HEADER.pack(self.address[1], len(request.data), len(request.hello))
            writer.write(header + request.hello + request.data)
            await asyncio.wait_for(writer.drain(), STREAM_READ_TIMEOUT_S)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            if self._started:
                self.replica.stream_failed(request.stream_id)

    def _arm_timer(self, when_ms: int | None) -> None:
        if when_ms is None:
            return
        if self._timer is not None and self._timer_at_ms is not None:
            if self._timer_at_ms <= when_ms:
                return
            self._timer.cancel()
        delay_s = max(0.0, (when_ms - unix_ms()) / 1000)
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._on_timer)
        self._timer_at_ms = when_ms

    # -- WAIT ------------------------------------------------------------------------------------

    def wait_for(self, wait: AckWait) -> asyncio.Future[int]:
        """A future for WAIT's reply: the ack count once ``wait.peers`` hold the write, or
        however many do at the deadline."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._ack_waiters = [waiter for waiter in self._ack_waiters if not waiter[1].done()]
        self._ack_waiters.append((wait, future))
        if wait.deadline_ms is not None:
            delay_s = max(0.0, (wait.deadline_ms - unix_ms()) / 1000)
            timer = loop.call_later(delay_s, self._wait_timed_out, wait, future)
            future.add_done_callback(lambda _: timer.cancel())
        self.pump_soon()  # the requests for acks it queued
        return future

    def _wait_timed_out(self, wait: AckWait, future: asyncio.Future[int]) -> None:
        if not future.done():
            future.set_result(self.replica.acks(wait.seq))

    def _wake_ack_waiters(self) -> None:
        if not self._ack_waiters:
            return  # (the common case: an ack of every write a peer took, and nobody in WAIT)
        still: list[tuple[AckWait, asyncio.Future[int]]] = []
        for wait, future in self._ack_waiters:
            if future.done():
                continue
            held = self.replica.acks(wait.seq)
            if held >= wait.peers:
                future.set_result(held)
            else:
                still.append((wait, future))
        self._ack_waiters = still


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
