"""What watches the commands a node runs: the slow log (SLOWLOG) and the monitors (MONITOR).

Why one object: the runtime's request loop makes one cheap check per command
(:meth:`RequestObserver.wants`: "was it slower than the threshold, or is anyone monitoring?")
and calls :meth:`RequestObserver.ran` only then, so a node nobody monitors pays two clock
reads and a comparison per command. It is sans-IO: a monitor is a ``send(bytes) -> bool``
the runtime hands in for a connection (False: the monitor is too slow and was dropped).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from hearsay.resp.commands import ClientContext

__all__ = [
    "MONITOR_BACKLOG_BYTES_MAX",
    "MonitorSend",
    "RequestObserver",
    "SlowEntry",
    "monitor_line",
]

SLOWLOG_SLOWER_THAN_US_DEFAULT: Final = 10_000
"""Redis's default ``slowlog-slower-than``: 10 ms."""
SLOWLOG_MAX_LEN_DEFAULT: Final = 128
"""Redis's default ``slowlog-max-len``."""
SLOWLOG_ARGS_MAX: Final = 32
"""As Redis: an entry keeps at most this many arguments, the last saying how many more."""
SLOWLOG_ARG_BYTES_MAX: Final = 128
"""As Redis: an argument is cut to this many bytes, saying how many more there were."""
_REDACTED: Final = b"(redacted)"

MONITOR_BACKLOG_BYTES_MAX: Final = 4 * 1024 * 1024
"""A monitor that leaves this much unread is disconnected (the driver's check): a slow monitor
is dropped, never buffered without bound."""

MonitorSend = Callable[[bytes], bool]
"""Sends one MONITOR line to a monitoring connection; False when it was dropped."""


@dataclass(frozen=True, slots=True)
class SlowEntry:
    """One SLOWLOG GET row."""

    entry_id: int
    unix_s: int
    duration_us: int
    args: list[bytes]
    addr: str
    name: bytes


def _redacted(args: list[bytes]) -> list[bytes]:
    """AUTH's arguments and HELLO's AUTH user and password never leave the node (as Redis 7)."""
    name = args[0].upper()
    if name == b"AUTH":
        return [args[0]] + [_REDACTED] * (len(args) - 1)
    if name == b"HELLO":
        out = list(args)
        for at, arg in enumerate(args[:-2]):
            if arg.upper() == b"AUTH":
                out[at + 1] = out[at + 2] = _REDACTED
        return out
    return args


def _slow_args(args: list[bytes]) -> list[bytes]:
    """Redis's slowlog argument trimming: 32 arguments, 128 bytes each."""
    kept = args if len(args) <= SLOWLOG_ARGS_MAX else args[: SLOWLOG_ARGS_MAX - 1]
    cut = SLOWLOG_ARG_BYTES_MAX
    out = [
        arg if len(arg) <= cut else arg[:cut] + b"... (%d more bytes)" % (len(arg) - cut)
        for arg in kept
    ]
    if len(args) > SLOWLOG_ARGS_MAX:
        out.append(b"... (%d more arguments)" % (len(args) - SLOWLOG_ARGS_MAX + 1))
    return out


def _quoted(arg: bytes) -> bytes:
    """Redis's ``sdscatrepr``: a double-quoted string, escapes for quotes, backslashes and
    control bytes, ``\\xHH`` for anything not printable."""
    out = bytearray(b'"')
    for byte in arg:
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif byte == 0x0A:
            out += b"\\n"
        elif byte == 0x0D:
            out += b"\\r"
        elif byte == 0x09:
            out += b"\\t"
        elif byte == 0x07:
            out += b"\\a"
        elif byte == 0x08:
            out += b"\\b"
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    out += b'"'
    return bytes(out)


def monitor_line(ctx: ClientContext, args: list[bytes], unix_us: int) -> bytes:
    """One MONITOR line, as Redis sends it: ``+<s.us> [<db> <addr>] "cmd" "arg"...``."""
    seconds, micros = divmod(unix_us, 1_000_000)
    quoted = b" ".join(_quoted(arg) for arg in _redacted(args))
    return b"+%d.%06d [%d %s] %s\r\n" % (seconds, micros, ctx.db_index, ctx.addr.encode(), quoted)


class RequestObserver:
    """The slow log and the monitors of one node."""

    def __init__(
        self,
        slower_than_us: int = SLOWLOG_SLOWER_THAN_US_DEFAULT,
        max_len: int = SLOWLOG_MAX_LEN_DEFAULT,
    ) -> None:
        self.slower_than_us = slower_than_us
        """Commands taking longer are logged (Redis: 0 logs every command, negative none)."""
        self.threshold_ns = (1 << 62) if slower_than_us < 0 else slower_than_us * 1000
        """A command taking more than this many ns is reported to :meth:`ran` (what the
        dispatcher checks; never when the slow log is off)."""
        self.max_len = max_len
        self.entries: deque[SlowEntry] = deque(maxlen=max(1, max_len))
        self._next_id = 0
        self.monitors: dict[int, MonitorSend] = {}
        """client id -> how to send it MONITOR lines."""
        self.monitors_dropped = 0
        """Monitors disconnected for reading too slowly (their buffer was full)."""

    def ran(
        self, ctx: ClientContext, calls: list[list[bytes]], duration_ns: int, now_us: int
    ) -> None:
        """``calls`` ran for ``ctx`` (several: a pipelined run, timed as a whole, logged as its
        first call): log it if slow, and show each call to every monitor."""
        duration_us = duration_ns // 1000
        if self.slower_than_us >= 0 and duration_us >= self.slower_than_us and self.max_len > 0:
            self._next_id += 1
            self.entries.appendleft(
                SlowEntry(
                    self._next_id - 1,
                    now_us // 1_000_000,
                    duration_us,
                    _slow_args(_redacted(calls[0])),
                    ctx.addr,
                    ctx.name or b"",
                )
            )
        if self.monitors:
            self._feed(ctx, calls, now_us)

    def _feed(self, ctx: ClientContext, calls: list[list[bytes]], now_us: int) -> None:
        lines = b"".join(monitor_line(ctx, args, now_us) for args in calls)
        for client_id, send in list(self.monitors.items()):
            if client_id == ctx.client_id:
                continue  # a monitor's own commands (its MONITOR) are not echoed back to it
            if not send(lines):
                del self.monitors[client_id]
                self.monitors_dropped += 1

    def start_monitor(self, client_id: int, send: MonitorSend) -> None:
        self.monitors[client_id] = send

    def stop_monitor(self, client_id: int) -> None:
        self.monitors.pop(client_id, None)

    def reset(self) -> None:
        """SLOWLOG RESET."""
        self.entries.clear()
