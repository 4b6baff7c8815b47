"""The Redis-protocol listener: an asyncio Protocol around the sans-IO parser and replica.

One :class:`RespConnection` per client. Each ``data_received`` parses every complete command
in the chunk, runs them in order through :meth:`Replica.execute` and sends all the replies in
one write: pipelined clients get one syscall per chunk, not per command, and those writes are
made once per event-loop iteration, after every ready client was served (see
:class:`_Outbox`). A run of calls of one command on one key (a pipeline of PFADDs to one
HyperLogLog) is run as one call of the command's run handler when it has one; so are the single
commands of that kind that many clients sent in the same event-loop iteration (see
:class:`_Coalescer`).

With ``--fsync always`` a write may only be acknowledged once it is durable, so the chunk's
dirty keys are flushed at once and, when the flush returns an unfinished ticket, the replies
are held (and reading paused) until it completes. Tickets complete in staging order, so
waiting for the newest one covers every earlier write. If the ticket fails (the disk failed
under the writes), every command of the chunk is answered with a MISCONF error instead, one
reply per command, and the connection stays open. Under the other policies the node's
housekeeping timer flushes instead.

Limits (issue 11: no single client may exhaust the node's memory or its file descriptors):

* back-pressure: once a client's unsent replies pass :data:`OUTPUT_HIGH_WATER_BYTES` the
  connection stops running its commands and stops reading, and goes on when the client has
  read (asyncio's ``pause_writing``/``resume_writing``), so a client that pipelines big reads
  and never reads them holds about that much, not every reply;
* ``client-output-buffer-limit`` (a hard limit in bytes, Redis's ``normal`` class): a client
  whose pending replies pass it anyway (one reply larger than the limit) is disconnected;
* ``maxclients``: more clients get Redis's ``-ERR max number of clients reached``;
* the partial commands buffered by every client together are capped: over the cap the
  client holding the most is evicted (Redis's client eviction);
* failed AUTHs from one address are throttled: its next AUTH or HELLO waits (asynchronously:
  the connection's commands are held, the event loop goes on) 10 ms, then twice as long
  after each further failure, up to 2 s.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import resource
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Final, cast

from hearsay.engine.interfaces import AckWait
from hearsay.engine.replica import Replica
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandRegistry, ServerSettings
from hearsay.resp.observer import MONITOR_BACKLOG_BYTES_MAX
from hearsay.resp.parser import (
    DEFAULT_MAX_BULK_LEN,
    DEFAULT_MAX_QUERY_BYTES,
    RequestParser,
)
from hearsay.resp.replies import ErrorReply, Reply, encode, encoder_for
from hearsay.runtime.addresses import format_address
from hearsay.runtime.clock import unix_ms
from hearsay.runtime.command_stats import CommandStats
from hearsay.runtime.gossip import GossipDriver

log = logging.getLogger(__name__)

_client_ids: Final = itertools.count(1)

OUTPUT_HIGH_WATER_BYTES: Final = 1024 * 1024
"""Unsent replies above which a connection stops running commands and reading (back-pressure);
it goes on once the transport drained to a quarter of this (asyncio's low-water mark)."""

RUN_CALLS_MAX: Final = 64
"""Calls of a pipelined run answered in one go (the rest form the next run): the replies of a
run are encoded before back-pressure is looked at again, so a run of 4,000 GETs of a 12 KiB
HLL would buffer 49 MB at once; 64 keep that under 1 MiB and still batch a pipeline."""

MAX_CLIENTS_REPLY: Final = b"-ERR max number of clients reached\r\n"

AUTH_DELAY_MS_FIRST: Final = 10
AUTH_DELAY_MS_MAX: Final = 2000
AUTH_FAILURES_FORGOTTEN_AFTER_MS: Final = 60_000
AUTH_ADDRESSES_TRACKED_MAX: Final = 4096
"""Failed AUTHs are remembered per client IP address, for this many addresses at most (the
oldest is forgotten first), so the table cannot grow without bound."""

OUTPUT_PEAK_WINDOW_S: Final = 8
"""INFO's recent output maximum covers this many seconds (Redis keeps 8 one-second slots)."""

_AUTH_COMMANDS: Final = frozenset({b"AUTH", b"HELLO"})


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What one client, and all clients together, may hold (0 = no limit where noted)."""

    maxclients: int = 10_000
    output_buffer_bytes_max: int = 256 * 1024 * 1024
    """Redis's ``client-output-buffer-limit normal`` hard limit (Redis: unlimited). hearsay
    answers with replies of at most a key's size; 256 MiB, Redis's default for replicas, is far
    beyond any one reply and keeps a stuck client from taking the node's memory. 0 = none."""
    proto_max_bulk_len: int = DEFAULT_MAX_BULK_LEN
    query_buffer_bytes_max: int = DEFAULT_MAX_QUERY_BYTES
    """Redis's ``client-query-buffer-limit``: one client's unfinished command."""
    input_buffers_bytes_max: int = DEFAULT_MAX_QUERY_BYTES
    """Every client's unfinished commands together; over it the biggest holder is evicted."""


RESERVED_FDS: Final = 128
"""File descriptors kept for everything but clients: the listeners, SQLite's database, WAL and
lock files, gossip's TCP streams and HTTP requests (Redis keeps 32 and has fewer of those)."""


def fit_maxclients(wanted: int) -> int:
    """``wanted``, or fewer when the file-descriptor limit cannot hold that many clients.

    As Redis's ``adjustOpenFilesLimit``: first try to raise the soft limit (up to the hard
    one), then lower maxclients to what it allows, so that a client beyond the limit is told
    "max number of clients reached" instead of hanging in an accept that fails with EMFILE.
    """
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return wanted
    needed = wanted + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (OSError, ValueError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    fitted = max(1, soft - RESERVED_FDS)
    log.warning(
        "maxclients lowered from %d to %d: the open-files limit is %d (raise it with ulimit -n)",
        wanted,
        fitted,
        soft,
    )
    return fitted


class _AuthThrottle:
    """Per client IP: when its next AUTH may be checked, after how many recent failures."""

    __slots__ = ("_table", "failures")

    def __init__(self) -> None:
        self._table: OrderedDict[str, tuple[int, int]] = OrderedDict()  # ip -> (count, until)
        self.failures = 0  # INFO stats acl_access_denied_auth

    @property
    def active(self) -> bool:
        """Whether any address failed lately (else AUTH needs no look-up)."""
        return bool(self._table)

    def not_before_ms(self, ip: str) -> int:
        entry = self._table.get(ip)
        return 0 if entry is None else entry[1]

    def failed(self, ip: str, now_ms: int) -> None:
        self.failures += 1
        count, until = self._table.pop(ip, (0, 0))
        if now_ms - until > AUTH_FAILURES_FORGOTTEN_AFTER_MS:
            count = 0
        delay_ms = min(AUTH_DELAY_MS_MAX, AUTH_DELAY_MS_FIRST << min(count, 16))
        self._table[ip] = (count + 1, max(until, now_ms) + delay_ms)
        while len(self._table) > AUTH_ADDRESSES_TRACKED_MAX:  # bounded by one insertion
            self._table.popitem(last=False)


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
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        connections, self._connections = self._connections, []
        for connection in connections:
            connection.send_unsent()


class _Coalescer:
    """Single commands that arrived together from different clients, run as runs.

    A client that waits for each reply (redis-benchmark ``-P 1``, most application clients)
    sends one command at a time; a loaded node reads dozens of them in one event-loop
    iteration. Those of one command with a run handler on one key (many clients writing one
    hot key) are answered by one call of the run handler, as a pipelined run of them would
    be: each client gets the reply it would have got from the same commands one after another
    in arrival order (any order of commands that arrived together is a valid one; each client
    has at most one command here, so its own order is kept). Python's cost per command (~5-25
    us for a sketch's write) is paid once per run; the reads and writes of the sockets stay
    one each per client. Commands of different keys, or alone, run as they would have.

    Only plain cases come here (:meth:`RespConnection._may_coalesce`): no transaction, no
    reply waiting for durability or acks, no monitor watching, an authenticated client. The
    run is flushed in the same loop iteration (``call_soon``, before the outbox writes the
    replies), or at once when its client sends more before that.
    """

    __slots__ = ("_entries", "_scheduled", "_server", "coalesced_commands")

    def __init__(self, server: RespServer) -> None:
        self._server = server
        self._entries: list[tuple[RespConnection, list[bytes]]] = []
        self._scheduled = False
        self.coalesced_commands = 0
        """Commands answered inside a run of several clients' commands (INFO stats)."""

    def add(self, connection: RespConnection, args: list[bytes]) -> None:
        self._entries.append((connection, args))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Run every waiting command, in order of first arrival: runs of one command on one
        key together, and the calls of one command on keys no other call shares as one batch
        (``CommandRegistry.calls_at``'s, of several clients); then write the replies."""
        self._scheduled = False
        entries, self._entries = self._entries, []
        if not entries:
            return
        groups: dict[tuple[bytes, bytes, int, int], list[tuple[RespConnection, list[bytes]]]]
        groups = {}
        for entry in entries:  # bounded: one entry per client
            args = entry[1]
            ctx = entry[0].ctx
            group = (args[0], args[1], ctx.protocol, ctx.db_index)
            members = groups.get(group)
            if members is None:
                groups[group] = [entry]
            else:
                members.append(entry)
        # A key's run stays one unit; the calls alone on their key join their command's batch
        # (many clients over many keys: most calls are alone on their key).
        units: dict[tuple[bytes, bytes | None, int, int], list[tuple[RespConnection, list[bytes]]]]
        units = {}
        for (name, key, protocol, db_index), members in groups.items():
            if len(members) > 1:
                units[(name, key, protocol, db_index)] = members
            else:  # (None: no key's run)
                units.setdefault((name, None, protocol, db_index), []).append(members[0])
        now_ms = unix_ms()  # (they arrived together)
        for members in units.values():
            if len(members) == 1:
                try:
                    self._run_one(members[0][0], members[0][1], now_ms)
                except Exception as exc:  # a bug: the client still gets a reply
                    self._answer_failed(members, exc)
                continue
            for start in range(0, len(members), RUN_CALLS_MAX):
                chunk = members[start : start + RUN_CALLS_MAX]
                try:
                    self._run(chunk, now_ms)
                except Exception as exc:  # a bug: every client still gets a reply, none hangs
                    self._answer_failed(chunk, exc)
        self._server.commands_ran()
        self._server.outbox.flush()

    def _answer_failed(
        self, chunk: list[tuple[RespConnection, list[bytes]]], exc: Exception
    ) -> None:
        """The internal error for every client of ``chunk`` not answered yet."""
        registry = self._server.registry
        spelled = chunk[0][1][0].decode("latin-1")
        spec = registry.get(spelled)
        error = registry.internal_error(spec.full_name if spec else spelled.lower(), exc)
        for connection, _ in chunk:
            if connection.coalesced:
                connection.coalesced = False
                connection.queue_reply(encode(error, connection.ctx.protocol))

    def _run_one(self, connection: RespConnection, args: list[bytes], now_ms: int) -> None:
        """:meth:`_run` of one call alone, without the run's lists (the common case under many
        clients writing many keys: ~0.6 us less a call)."""
        server = self._server
        replica = server.replica
        ctx = connection.ctx
        seq_before = replica.last_write_seq
        started_ns = time.perf_counter_ns()
        reply = replica.execute(ctx, args, now_ms)  # (a run handler's command never waits)
        elapsed_ns = time.perf_counter_ns() - started_ns
        connection.coalesced = False
        seq_after = replica.last_write_seq
        if seq_after != seq_before:
            ctx.last_write_seq = seq_after
        failed = type(reply) is ErrorReply
        try:
            encoded = encode(cast("Reply", reply), ctx.protocol)
        except Exception as exc:  # a handler's bug: still a reply
            encoded = encode(server.registry.internal_error(ctx.last_command, exc), ctx.protocol)
        connection.queue_reply(encoded)
        server.command_stats.record(args[0], elapsed_ns, failed)
        observer = server.registry.observer
        if observer is not None and elapsed_ns > observer.threshold_ns:
            observer.ran(ctx, [args], elapsed_ns, time.time_ns() // 1000)

    def _run(self, chunk: list[tuple[RespConnection, list[bytes]]], now_ms: int) -> None:
        """One run of clients' calls to one key, or one batch of their calls over changing
        keys (run with the first client's context, as one client's pipeline would be), each
        client answered in its own protocol. Only the work a reply needs here: nothing waits
        (no gate, no durability), and the gossip is pumped and the replies written once for
        the whole flush."""
        server = self._server
        registry = server.registry
        replica = server.replica
        first = chunk[0][0].ctx
        run = [args for _, args in chunk]
        seq_before = replica.last_write_seq
        started_ns = time.perf_counter_ns()
        if len(run) > 1:
            replies = replica.execute_run(first, run, now_ms)
        else:  # (a command with a run handler never waits: no AckWait comes back)
            replies = [replica.execute(first, run[0], now_ms)]
        elapsed_ns = time.perf_counter_ns() - started_ns
        wrote = replica.last_write_seq != seq_before
        errors = 0
        for (connection, _), reply in zip(chunk, replies, strict=True):
            connection.coalesced = False
            ctx = connection.ctx
            ctx.last_command = first.last_command
            ctx.now_ms = first.now_ms
            if wrote:  # (WAIT waits for the run's last write: it holds every client's)
                ctx.last_write_seq = replica.last_write_seq
            errors += type(reply) is ErrorReply
            try:
                encoded = encode(cast("Reply", reply), ctx.protocol)
            except Exception as exc:  # a handler's bug: still a reply, in order
                encoded = encode(registry.internal_error(first.last_command, exc), ctx.protocol)
            connection.queue_reply(encoded)
        if len(run) > 1:
            self.coalesced_commands += len(run)
        server.command_stats.record_run(run[0][0], elapsed_ns, errors, len(run))
        observer = registry.observer
        if observer is not None and elapsed_ns > observer.threshold_ns:
            observer.ran(first, run, elapsed_ns, time.time_ns() // 1000)


class RespConnection(asyncio.Protocol):
    """One client connection speaking RESP2/RESP3.

    Replies leave in request order. Most are bytes written at once; a reply that must wait
    (a write under ``--fsync always`` until it is durable, or WAIT until peers hold this
    client's writes) becomes a gate in the output queue, and everything behind it waits
    too (reading is paused meanwhile, which is the client's back-pressure).
    """

    def __init__(self, server: RespServer) -> None:
        replica = server.replica
        self._server = server
        self._replica = replica
        self._outbox = server.outbox
        self._unsent: list[bytes] = []
        self._unsent_bytes = 0
        self._durable = replica.acknowledges_durable  # the fsync policy is the node's, fixed
        self._registry = server.registry
        self.ctx = ClientContext(
            client_id=next(_client_ids), settings=server.settings, db=replica, created_ms=unix_ms()
        )
        self.ctx.monitor_send = self.monitor_send
        limits = server.limits
        self._output_bytes_max = limits.output_buffer_bytes_max or float("inf")
        self._parser = RequestParser(
            authenticated=bool(self.ctx.authenticated),
            max_bulk_len=limits.proto_max_bulk_len,
            max_query_bytes=limits.query_buffer_bytes_max,
        )
        self._transport: asyncio.Transport | None = None
        self._queue: deque[bytes | _Gate] = deque()
        self._queued_bytes = 0
        self._held: list[list[bytes]] = []  # parsed commands waiting to run (back-pressure)
        self._held_bytes = 0
        self._paused = False  # waiting for a gate (durability, WAIT)
        self._write_paused = False  # the transport's buffer is above its high-water mark
        self._hold_timer: asyncio.TimerHandle | None = None  # a throttled AUTH waits
        self._resume_scheduled = False
        self._reading = True
        self._closing = False
        self._eof = False  # the client half-closed: close once its commands are answered
        self._ip = ""  # the client's address without its port (AUTH throttling)
        self.rejected = False  # over maxclients: answered with an error, never served
        self.input_bytes = 0  # what this client holds of unfinished commands (global cap)
        self.commands_processed = 0  # INFO stats (summed by the server)
        self.output_peak_bytes = 0  # the most replies it held unsent (INFO clients)
        self.coalesced = False  # its one command waits in the server's coalescer

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self.ctx.addr = _tcp_address(transport.get_extra_info("peername"))
        self.ctx.laddr = _tcp_address(transport.get_extra_info("sockname"))
        peer = transport.get_extra_info("peername")
        self._ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._server.admit(self):
            self.rejected = True
            self._closing = True
            self._transport.write(MAX_CLIENTS_REPLY)
            self._transport.close()
            return
        self._transport.set_write_buffer_limits(high=OUTPUT_HIGH_WATER_BYTES)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._unsent.clear()
        self._held.clear()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        for item in self._queue:
            if isinstance(item, _Gate) and not item.durable:
                item.future.cancel()
        self._queue.clear()
        self._set_input_bytes(0)
        self._server.closed(self)

    def eof_received(self) -> bool:
        """The client sent all it will (a half-close, as ``nc`` or a piped script does):
        answer what it sent, then close. True keeps the transport open for those replies."""
        self._eof = True
        if self._held:
            return True  # _run closes after the last of them
        self._closing = True
        # (closed after them; else asyncio closes)
        return bool(self._queue or self._unsent or self.coalesced)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        self._schedule_resume()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        parser = self._parser
        commands = parser.parse(data)
        if self.coalesced:  # its earlier command still waits to run with others': first
            self._server.coalescer.flush()
        if self._held:  # reading was paused while commands wait; keep their order
            self._hold(commands, 0)
            commands = []
        self._set_input_bytes(parser.buffered_bytes + self._held_bytes)
        if self._closing:  # evicted: over the cap on every client's input
            return
        if self._may_coalesce(commands):
            self.coalesced = True
            self.commands_processed += 1  # (counted now: it may close before it runs)
            self._server.coalescer.add(self, commands[0])
            return
        self._run(commands)
        if self._held:  # what it holds now counts as its input too
            self._set_input_bytes(parser.buffered_bytes + self._held_bytes)

    def _may_coalesce(self, commands: list[list[bytes]]) -> bool:
        """Whether this chunk's one command may wait to run with other clients' (see
        :class:`_Coalescer`): nothing else of this client is pending, its reply will wait
        for nothing, and nobody monitors the commands one by one."""
        if len(commands) != 1 or self._held or self._queue or self._durable or self._eof:
            return False
        ctx = self.ctx
        if ctx.transaction is not None or not ctx.authenticated or self._parser.error:
            return False
        observer = self._registry.observer
        if observer is not None and observer.monitors:
            return False
        transport = self._transport
        if (
            transport is None
            or self._unsent_bytes + self._queued_bytes + (transport.get_write_buffer_size())
            > OUTPUT_HIGH_WATER_BYTES
        ):
            return False
        return self._registry.may_run(commands[0])

    def queue_reply(self, data: bytes) -> None:
        """A reply that waits for nothing, sent with the outbox's next write (dropped when the
        client is gone)."""
        if self._transport is None:
            return
        self._append_unsent(data)
        pending = self._unsent_bytes + self._queued_bytes
        if pending > self.output_peak_bytes:
            self.output_peak_bytes = pending
            self._server.note_output(pending)
        if pending > self._output_bytes_max:
            self._server.output_limit_reached(self, pending)

    def _run(self, commands: list[list[bytes]]) -> None:
        """Run ``commands`` in order until done or until one must wait (held for later)."""
        parser = self._parser
        self.commands_processed += len(commands)
        replica, ctx = self._replica, self.ctx
        registry = self._registry
        throttle = self._server.auth_throttle
        now_ms = unix_ms()  # one clock read per chunk: its commands arrived together
        batch: list[bytes | _Gate] = []
        out: list[bytes] = []
        transport = self._transport
        pending = self._unsent_bytes + self._queued_bytes
        if transport is not None:
            pending += transport.get_write_buffer_size()
        at, count = 0, len(commands)
        # One clock read per command: a command's time runs from the previous one's end, so
        # it covers its dispatch, execution and reply encoding (a run's calls share one).
        # The same time serves the slow log and the monitors (one cheap check per command).
        stats = self._server.command_stats
        observer = registry.observer
        clock_ns = time.perf_counter_ns
        started_ns = clock_ns()
        while at < count:  # bounded: at grows by one command or one run per pass
            if pending > OUTPUT_HIGH_WATER_BYTES:  # back-pressure: the rest waits for reads
                self.commands_processed -= count - at
                self._hold(commands, at)
                break
            args = commands[at]
            if throttle.active and args[0].upper() in _AUTH_COMMANDS:
                throttled_until_ms = throttle.not_before_ms(self._ip)
                if throttled_until_ms > now_ms:
                    self.commands_processed -= count - at
                    self._hold(commands, at, (throttled_until_ms - now_ms) / 1000)
                    break
            # A run answers many calls at once (one command to one key, or one command over
            # changing keys): never between MULTI and EXEC (they queue), and at most
            # RUN_CALLS_MAX calls, so back-pressure is checked between runs too.
            run = (
                registry.run_at(commands, at) or registry.calls_at(commands, at)
                if count - at > 1 and ctx.transaction is None
                else 0
            )
            if run:
                run = min(run, RUN_CALLS_MAX)
                run_replies = replica.execute_run(ctx, commands[at : at + run], now_ms)
                try:
                    encoded = encoder_for(ctx.protocol).encode_many(
                        cast("list[Reply]", run_replies)
                    )
                except Exception as exc:  # a handler's bug: answer every call of the run
                    error = registry.internal_error(ctx.last_command, exc)
                    encoded = encode(error, ctx.protocol) * run
                out.append(encoded)
                pending += len(encoded)
                at += run
                ended_ns = clock_ns()
                elapsed_ns = ended_ns - started_ns
                errors = sum(type(reply) is ErrorReply for reply in run_replies)
                stats.record_run(args[0], elapsed_ns, errors, run)
                if observer is not None and (
                    elapsed_ns > observer.threshold_ns or observer.monitors
                ):
                    observer.ran(ctx, commands[at - run : at], elapsed_ns, time.time_ns() // 1000)
                started_ns = ended_ns
            else:
                reply = replica.execute(ctx, args, now_ms)
                at += 1
                if type(reply) is AckWait:
                    batch.append(b"".join(out))
                    out = []
                    batch.append(_Gate(self._server.wait_for(reply), durable=False))
                else:
                    if isinstance(reply, ErrorReply) and reply.startswith("WRONGPASS"):
                        throttle.failed(self._ip, now_ms)
                    try:
                        encoded = encoder_for(ctx.protocol).encode(cast("Reply", reply))
                    except Exception as exc:  # a handler's bug: still a reply, in order
                        error = registry.internal_error(ctx.last_command, exc)
                        encoded = encode(error, ctx.protocol)
                    out.append(encoded)
                    pending += len(encoded)
                ended_ns = clock_ns()
                elapsed_ns = ended_ns - started_ns
                stats.record(args[0], elapsed_ns, type(reply) is ErrorReply)
                if observer is not None and (
                    elapsed_ns > observer.threshold_ns or observer.monitors
                ):
                    observer.ran(ctx, [args], elapsed_ns, time.time_ns() // 1000)
                started_ns = ended_ns
            if pending > self._output_bytes_max:
                self._server.output_limit_reached(self, pending)
                self._server.commands_ran()  # the writes made stand: gossip them
                return
            if ctx.close_after_reply:
                self._closing = True
                break
        if pending > self.output_peak_bytes:
            self.output_peak_bytes = pending
            self._server.note_output(pending)
        if self._eof and not self._held:  # the last of a half-closed client's commands
            self._closing = True
        reply_count = at
        if parser.error is not None and not self._closing and not self._held:
            out.append(encode(ErrorReply(parser.error.message), ctx.protocol))
            reply_count += 1
            if parser.error.message == messages.PROTOCOL_QUERY_BUFFER_LIMIT:
                self._server.query_buffer_limit_disconnections += 1
            self._closing = True
        if ctx.authenticated and not parser.authenticated:  # AUTH or HELLO ... AUTH succeeded
            parser.authenticated = True
        self._server.commands_ran()
        ticket = replica.flush() if self._durable else None
        if ticket is not None and (not ticket.done() or ticket.exception() is not None):
            # The replies of this batch acknowledge its writes: they wait until durable.
            gate = _Gate(asyncio.wrap_future(ticket), True, reply_count, len(batch) + 1)
            self._queue.append(gate)
        elif not batch and not self._queue and self._transport is not None:
            # The common case: nothing waits, so the replies leave in one write.
            replies = b"".join(out)
            if replies or self._closing:
                self._append_unsent(replies)
            return
        batch.append(b"".join(out))
        for item in batch:
            if isinstance(item, bytes):
                self._queued_bytes += len(item)
        self._queue.extend(batch)
        self._drain()

    # -- holding commands (back-pressure, AUTH throttling) ---------------------------------------

    def _hold(self, commands: list[list[bytes]], at: int, delay_s: float | None = None) -> None:
        """Keep ``commands[at:]`` to run later and stop reading meanwhile."""
        rest = commands[at:] if at else commands
        self._held.extend(rest)
        self._held_bytes += sum(len(arg) for args in rest for arg in args)
        if delay_s is not None and self._hold_timer is None:
            loop = asyncio.get_running_loop()
            self._hold_timer = loop.call_later(delay_s, self._throttle_done)
        self._update_reading()

    def _throttle_done(self) -> None:
        self._hold_timer = None
        self._schedule_resume()

    def _schedule_resume(self) -> None:
        """Run the held commands in a later loop iteration (other clients go first)."""
        if self._held and not self._resume_scheduled and self._transport is not None:
            self._resume_scheduled = True
            asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        self._resume_scheduled = False
        if (
            self._closing
            or self._transport is None
            or self._paused
            or self._write_paused
            or self._hold_timer is not None
            or self._unsent
        ):
            return  # whatever blocks it will schedule the resumption again
        commands, self._held, self._held_bytes = self._held, [], 0
        self._run(commands)
        self._set_input_bytes(self._parser.buffered_bytes + self._held_bytes)
        self._update_reading()

    def _update_reading(self) -> None:
        """Read only while nothing waits: no gate, no held command, room to write."""
        transport = self._transport
        if transport is None or self._closing:
            return
        want = not (self._paused or self._write_paused or self._held)
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _set_input_bytes(self, count: int) -> None:
        delta = count - self.input_bytes
        if delta:
            self.input_bytes = count
            self._server.input_changed(self, delta)

    def refresh_buffer_sizes(self) -> None:
        """Copy what this client holds now into its context (CLIENT LIST qbuf and omem)."""
        transport = self._transport
        pending = self._unsent_bytes + self._queued_bytes
        if transport is not None and not transport.is_closing():
            pending += transport.get_write_buffer_size()
        self.ctx.output_buffer_bytes = pending
        self.ctx.query_buffer_bytes = self.input_bytes

    def evict(self) -> None:
        """Drop this client now, discarding what it sent and what it was owed."""
        self._closing = True
        self._held.clear()
        self._held_bytes = 0
        self._parser = RequestParser()  # frees the partial command at once
        self._set_input_bytes(0)
        if self._transport is not None:
            self._transport.abort()

    @property
    def blocked(self) -> bool:
        """Waiting for a deferred reply (WAIT, or a write under ``--fsync always``)."""
        return self._paused

    # -- replies ---------------------------------------------------------------------------------

    def monitor_send(self, line: bytes) -> bool:
        """MONITOR: queue ``line`` behind this client's replies; False (and the connection is
        dropped) once it leaves MONITOR_BACKLOG_BYTES_MAX unread: never grows memory."""
        transport = self._transport
        if transport is None or self._closing:
            return False
        if transport.get_write_buffer_size() + self._unsent_bytes > MONITOR_BACKLOG_BYTES_MAX:
            self._closing = True
            transport.abort()
            return False
        self._append_unsent(line)
        return True

    def _append_unsent(self, data: bytes) -> None:
        """``data`` after the replies the outbox will write for this client (the first of an
        iteration puts the client in the outbox)."""
        if not self._unsent:
            self._outbox.add(self)
        self._unsent.append(data)
        self._unsent_bytes += len(data)

    def send_unsent(self) -> None:
        """Write the replies held for the outbox (closing after them when asked to)."""
        transport = self._transport
        if transport is None or not self._unsent:
            return
        data = b"".join(self._unsent)
        self._unsent.clear()
        self._unsent_bytes = 0
        if data:
            transport.write(data)
        if self._closing and not self._queue:
            transport.close()
        else:
            self._schedule_resume()

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
                self._queued_bytes -= len(head)
                queue.popleft()
                continue
            if not head.future.done():
                head.future.add_done_callback(self._drain)
                if not self._paused:
                    self._paused = True
                    self._update_reading()
                return
            queue.popleft()
            if not self._release(head):
                return
        if self._closing:
            transport.close()
        elif self._paused:
            self._paused = False
            self._update_reading()
            self._schedule_resume()

    def _release(self, gate: _Gate) -> bool:
        """Write what a finished gate yields; False when the connection had to be closed."""
        transport = self._transport
        assert transport is not None
        if gate.future.cancelled():
            return True
        error = gate.future.exception()
        if gate.durable:
            if error is None:
                return True
            # Not durable: every command of the chunk gets the error instead of its reply
            # (one reply per command, so the client's pipeline stays in step).
            for _ in range(gate.covers):
                covered = self._queue.popleft()
                if isinstance(covered, _Gate):
                    covered.future.cancel()
                else:
                    self._queued_bytes -= len(covered)
            refusal = encode(ErrorReply(messages.not_durable(str(error))), self.ctx.protocol)
            transport.write(refusal * gate.replies)
            return True
        if error is not None:
            text = f"ERR {error}".replace("\r", " ").replace("\n", " ")
            transport.write(encode(ErrorReply(text), self.ctx.protocol))
        else:
            transport.write(encode(gate.future.result(), self.ctx.protocol))
        return True

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
        self,
        replica: Replica,
        registry: CommandRegistry,
        settings: ServerSettings,
        limits: ClientLimits | None = None,
        gossip: GossipDriver | None = None,
    ) -> None:
        self.replica = replica
        self.registry = registry
        self.gossip = gossip
        self.settings = settings
        self.limits = limits or ClientLimits()
        self.connections: set[RespConnection] = set()
        self.total_connections = 0
        self.rejected_connections = 0  # INFO stats, Redis's name
        self.output_limit_disconnections = 0  # client_output_buffer_limit_disconnections
        self.query_buffer_limit_disconnections = 0  # client_query_buffer_limit_disconnections
        self.evicted_clients = 0  # over the cap on every client's input together
        self.auth_throttle = _AuthThrottle()
        self.command_stats = CommandStats(registry)  # per command, for /metrics
        self.outbox = _Outbox()
        self.coalescer = _Coalescer(self)
        self._commands_of_closed = 0
        self._input_bytes = 0
        self._input_holders: set[RespConnection] = set()
        self._output_peaks: dict[int, int] = {}  # unix second -> most replies one client held
        self._server: asyncio.Server | None = None

    def commands_ran(self) -> None:
        """After a batch of commands: send the gossip their writes and WAITs queued."""
        if self.gossip is not None:
            self.gossip.pump_soon()

    def wait_for(self, wait: AckWait) -> asyncio.Future[int]:
        """WAIT's reply, once peers acked (the gossip driver wakes it) or at its deadline."""
        assert self.gossip is not None, "only a gossiping node registers WAIT"
        return self.gossip.wait_for(wait)

    def _factory(self) -> RespConnection:
        return RespConnection(self)

    def admit(self, connection: RespConnection) -> bool:
        """Count a new client in, or False when there are already ``maxclients``."""
        if len(self.connections) >= self.limits.maxclients:
            self.rejected_connections += 1
            return False
        self.connections.add(connection)
        self.total_connections += 1
        return True

    def closed(self, connection: RespConnection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self._commands_of_closed += connection.commands_processed

    def input_changed(self, connection: RespConnection, delta_bytes: int) -> None:
        """Track every client's unfinished input; evict the biggest holders over the cap."""
        self._input_bytes += delta_bytes
        if connection.input_bytes > 0:
            self._input_holders.add(connection)
        else:
            self._input_holders.discard(connection)
        cap = self.limits.input_buffers_bytes_max
        while cap and self._input_bytes > cap and self._input_holders:  # bounded: one per pass
            biggest = max(self._input_holders, key=lambda holder: holder.input_bytes)
            self._input_holders.discard(biggest)
            self.evicted_clients += 1
            log.warning(
                "client %s evicted: clients hold %d bytes of unfinished commands (cap %d), "
                "it held %d",
                biggest.ctx.addr,
                self._input_bytes,
                cap,
                biggest.input_bytes,
            )
            biggest.evict()  # reports its input as 0 through this method

    def output_limit_reached(self, connection: RespConnection, pending_bytes: int) -> None:
        """Redis: "Client ... scheduled to be closed ASAP for overcoming of output buffer
        limits"; hearsay drops it at once, discarding the replies."""
        self.output_limit_disconnections += 1
        self.note_output(pending_bytes)
        log.warning(
            "client %s closed for overcoming the output buffer limit: %d bytes pending (limit %d)",
            connection.ctx.addr,
            pending_bytes,
            self.limits.output_buffer_bytes_max,
        )
        connection.evict()

    def note_output(self, pending_bytes: int) -> None:
        """Remember the most replies one client held, per second (INFO's recent maximum)."""
        second = unix_ms() // 1000
        peaks = self._output_peaks
        if pending_bytes > peaks.get(second, 0):
            peaks[second] = pending_bytes
        if len(peaks) > OUTPUT_PEAK_WINDOW_S:
            for old in [when for when in peaks if when <= second - OUTPUT_PEAK_WINDOW_S]:
                del peaks[old]

    def recent_max_output_bytes(self) -> int:
        """Redis's ``client_recent_max_output_buffer``: the most one client held lately."""
        since = unix_ms() // 1000 - OUTPUT_PEAK_WINDOW_S
        return max((peak for when, peak in self._output_peaks.items() if when > since), default=0)

    def recent_max_input_bytes(self) -> int:
        """Redis's ``client_recent_max_input_buffer`` (the largest now held)."""
        return max((holder.input_bytes for holder in self._input_holders), default=0)

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
        self.coalescer.flush()  # (commands already read run and are answered before the close)
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
