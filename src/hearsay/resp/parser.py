"""A sans-IO parser for Redis requests: bytes in, argument lists out, no sockets, no clock.

Why sans-IO: the asyncio server, the tests and the benchmarks drive the same object the same
way (the idea of h11's ``Connection``), and every byte boundary can be tested without a socket.

Usage by a driver (the runtime layer)::

    parser = RequestParser(max_bulk_len=settings.proto_max_bulk_len)
    ...
    for args in parser.parse(data):        # feed, then every complete command (list[bytes])
        reply = dispatch(ctx, args)        # hearsay.resp.commands
        ...
    if parser.error is not None:           # found after the commands returned before it
        send(encode(ErrorReply(parser.error.message), ctx.protocol))
        close()                            # the stream cannot be resynchronised

``feed()`` then iterating (or ``next_command()``, one at a time, ``None`` = need data) is the
same, raising :class:`ProtocolError` when the iteration reaches the error.

Fast path: the whole multibulk commands in the canonical form (plain decimal counts and
lengths within the limits given to the constructor, CRLF after every payload) that a chunk
starts with are read in one pass in C (``hearsay.resp._reqparse``), and the Python path, which
alone decides errors and limits, reads what follows them (a command cut short by the read, an
inline one, anything else, every error included). A one-command chunk costs ~0.3 us there
against ~2.7 us through the Python checks and the ``hiredis.Reader`` (a reply parser) it
replaced. A canonical command a read ends inside is kept (up to :data:`_TAIL_BYTES_MAX`) and
read again in C with the next chunk, so a long pipeline stays on this path.

What is accepted is what Redis 7 accepts (``networking.c``):

* multibulk ``*<n>\\r\\n`` then ``n`` times ``$<len>\\r\\n<len bytes>\\r\\n``; ``n <= 0`` is an
  empty request and is skipped. Numbers follow Redis's ``string2ll``: no sign ``+``, no
  leading zeros, no spaces. Like Redis, the two bytes after a bulk payload are skipped, not
  checked.
* inline: one line ending in ``\\n`` (a ``\\r`` before it is dropped), split like Redis's
  ``sdssplitargs``: blanks separate arguments, ``"..."`` understands ``\\n \\r \\t \\b \\a
  \\xHH`` and ``\\<any>``, ``'...'`` understands ``\\'``, a closing quote must be followed by
  a blank or the end of the line. A NUL byte ends the line's content (C string semantics).
  Empty lines are skipped.

Limits are checked on the header, before a payload is buffered or an argument list grows:
bulk length (``max_bulk_len``, Redis's ``proto-max-bulk-len``, 512 MiB), argument count
(``max_multibulk_len``), header and inline line length (``max_inline_len``, 64 KiB, Redis's
``PROTO_INLINE_MAX_SIZE``), the bytes held for one unfinished command (``max_query_bytes``,
Redis's ``client-query-buffer-limit``, 1 GiB), and while ``authenticated`` is false Redis's
caps for unauthenticated clients (10 arguments, 16 KiB per argument). A line is measured
the same way whatever the chunking, so a byte stream parses (or fails) identically however
it is split. Every error is a :class:`ProtocolError` whose ``message`` is Redis's reply
text; once one is raised the parser stays failed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Final, NoReturn

from hearsay.base.errors import DecodeError
from hearsay.resp import _reqparse, messages

DEFAULT_MAX_BULK_LEN: Final = 512 * 1024 * 1024
DEFAULT_MAX_MULTIBULK_LEN: Final = 1024 * 1024
DEFAULT_MAX_INLINE_LEN: Final = 64 * 1024
DEFAULT_MAX_QUERY_BYTES: Final = 1024 * 1024 * 1024
UNAUTHENTICATED_MAX_MULTIBULK_LEN: Final = 10
UNAUTHENTICATED_MAX_BULK_LEN: Final = 16 * 1024

# Canonical spellings of small numbers: one dict lookup instead of validating then converting.
_SMALL_NUMBERS: Final = {b"%d" % i: i for i in range(4096)}
_LLONG_MIN: Final = -(2**63)
_LLONG_MAX: Final = 2**63 - 1
_STAR: Final = 42  # b"*"
_DOLLAR: Final = 36  # b"$"
_ZERO: Final = 48  # b"0"

_FAST_LINE_MIN: Final = 64
"""The fast path runs only under a header-line limit at least this long (every default is): the
C reader does not measure lines, and a canonical header is at most ~22 bytes."""
_C_ARGUMENTS_MIN: Final = 16
"""Arguments left in a command from which its whole canonical ones are read in C
(``_reqparse.arguments``): a command bigger than one read; fewer stay on the Python loop."""
_TAIL_BYTES_MAX: Final = 64 * 1024
"""The most bytes of a command cut short by a read that :meth:`RequestParser.parse` keeps to
read again with the next chunk (copied once a chunk); a longer one (a big argument arriving
over many reads) goes to the Python path, which reads a payload once however it arrives."""


class ProtocolError(DecodeError):
    """The client broke the protocol; reply ``message`` (Redis's text), then close."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_integer(data: bytes) -> int | None:
    """Redis's ``string2ll``: a signed 64-bit decimal, strictly written, else ``None``.

    No ``+``, no leading zeros (``0`` itself is fine, ``-0`` is not), no blanks, at most 20
    characters. Command handlers use it for every integer argument so that they accept
    exactly what Redis accepts.
    """
    if not 0 < len(data) < 21:
        return None
    negative = data[0] == 45  # b"-"
    digits = data[1:] if negative else data
    if not digits.isdigit() or (digits[0] == _ZERO and (negative or len(digits) > 1)):
        return None
    value = int(digits)
    if negative:
        value = -value
    if value < _LLONG_MIN or value > _LLONG_MAX:
        return None
    return value


_DOUBLE_NUMBER: Final = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?)", re.IGNORECASE
)


def parse_double(data: bytes) -> float | None:
    """A double as Redis's ``string2ld``/``strtod`` with nothing left over; NaN refused."""
    if not 0 < len(data) <= 256 or _DOUBLE_NUMBER.fullmatch(data) is None:
        return None
    try:
        value = float(data)
    except ValueError:  # pragma: no cover - the pattern only admits what float() reads
        return None
    return None if math.isnan(value) else value


def parse_doubles(args: list[bytes]) -> list[float] | None:
    """:func:`parse_double` of every argument, or None when one of them is not a double: the
    same pattern, matched by ``map`` (a request of many values pays no Python call each)."""
    if len(args) == 1:  # (the commonest: one value, no maps)
        arg = args[0]
        if 0 < len(arg) <= 256 and (arg.isdigit() or _DOUBLE_NUMBER.fullmatch(arg)):
            return [float(arg)]  # (plain digits, the commonest value, need no pattern)
        return None
    if not args or max(map(len, args)) > 256 or min(map(len, args)) == 0:
        return None
    if not all(map(_DOUBLE_NUMBER.fullmatch, args)):
        return None
    return list(map(float, args))  # the pattern admits neither NaN nor what float() refuses


def split_inline(line: bytes) -> list[bytes] | None:
    """Split one inline request like Redis's ``sdssplitargs``; ``None`` = unbalanced quotes."""
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    if b'"' not in line and b"'" not in line and b"\v" not in line and b"\f" not in line:
        return line.split()
    return _split_quoted(line)


_BLANKS: Final = frozenset(b" \t\n\r\v\f")  # C isspace()
_TOKEN_ENDS: Final = frozenset(b" \t\n\r")  # what ends an unquoted token in sdssplitargs
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_UNQUOTED, _DOUBLE, _SINGLE = 0, 1, 2


def _split_quoted(line: bytes) -> list[bytes] | None:
    """The slow, byte-by-byte path of :func:`split_inline`, for lines with quotes in them."""
    args: list[bytes] = []
    end = len(line)
    i = 0
    while i < end:  # bounded: i grows by at least one per pass of either loop
        if line[i] in _BLANKS:
            i += 1
            continue
        token = bytearray()
        mode = _UNQUOTED
        while True:
            if i >= end:
                if mode != _UNQUOTED:
                    return None  # unterminated quotes
                break
            c = line[i]
            if mode == _DOUBLE:
                if (
                    c == 92  # backslash
                    and i + 3 < end
                    and line[i + 1] == 120  # x
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    token.append(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                if c == 92 and i + 1 < end:
                    nxt = line[i + 1]
                    token.append(_ESCAPES.get(nxt, nxt))
                    i += 2
                    continue
                if c == 34:  # closing "
                    if i + 1 < end and line[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                token.append(c)
            elif mode == _SINGLE:
                if c == 92 and i + 1 < end and line[i + 1] == 39:
                    token.append(39)
                    i += 2
                    continue
                if c == 39:  # closing '
                    if i + 1 < end and line[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                token.append(c)
            elif c in _TOKEN_ENDS:
                i += 1
                break
            elif c == 34:
                mode = _DOUBLE
            elif c == 39:
                mode = _SINGLE
            else:
                token.append(c)
            i += 1
        args.append(bytes(token))
    return args


class RequestParser:
    """Incremental RESP request parser; see the module docstring for the contract."""

    __slots__ = (
        "_args",
        "_args_bytes",
        "_args_counted",
        "_args_left",
        "_bulk_len",
        "_chunks",
        "_chunks_len",
        "_data",
        "_error",
        "_fast_lines",
        "_fast_max_len",
        "_need",
        "_pos",
        "_ready",
        "_tail",
        "_tail_max",
        "authenticated",
        "max_bulk_len",
        "max_inline_len",
        "max_multibulk_len",
        "max_query_bytes",
    )

    def __init__(
        self,
        *,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        max_multibulk_len: int = DEFAULT_MAX_MULTIBULK_LEN,
        max_inline_len: int = DEFAULT_MAX_INLINE_LEN,
        max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
        authenticated: bool = True,
    ) -> None:
        if min(max_bulk_len, max_multibulk_len, max_inline_len, max_query_bytes) < 1:
            raise ValueError("parser limits must be positive")
        self.max_bulk_len = max_bulk_len
        self.max_multibulk_len = max_multibulk_len
        self.max_inline_len = max_inline_len
        self.max_query_bytes = max_query_bytes
        # While False, Redis's stricter caps for clients that still must AUTH apply. The driver
        # sets it from the connection's authenticated flag after each command.
        self.authenticated = authenticated
        self._data = b""  # bytes being parsed; everything before _pos is consumed
        self._pos = 0
        self._chunks: list[bytes] = []  # fed since _data was built, joined lazily
        self._chunks_len = 0
        self._need = 1  # unconsumed bytes needed before parsing can progress
        self._args: list[bytes] = []  # arguments of the unfinished multibulk command
        self._args_bytes = 0  # bytes in _args (counted when parsing stops mid-command)
        self._args_counted = 0  # how many of _args are in _args_bytes
        self._args_left = 0  # arguments still to read; 0 = between commands
        self._bulk_len = -1  # length of the next argument; -1 = header not read yet
        self._error: ProtocolError | None = None
        self._ready: list[list[bytes]] = []  # parsed, not yet handed out (reversed)
        self._fast_max_len = min(max_bulk_len, max_multibulk_len, max_query_bytes)
        # (the C reader does not measure header lines: every canonical one is far below this)
        self._fast_lines = max_inline_len >= _FAST_LINE_MIN
        self._tail = b""  # a canonical command the last chunk ended inside (see parse)
        self._tail_max = min(_TAIL_BYTES_MAX, max_query_bytes)

    # -- input ------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the client. Never raises; errors surface on parsing."""
        if self._tail:  # (bytes parse held back come first)
            tail, self._tail = self._tail, b""
            self.feed(tail)
        if self._error is not None or not data:
            return
        chunk = data if type(data) is bytes else bytes(data)
        self._chunks.append(chunk)
        self._chunks_len += len(chunk)
        held = len(self._data) - self._pos + self._chunks_len + self._args_bytes
        if held > self.max_query_bytes:
            self._error = ProtocolError(messages.PROTOCOL_QUERY_BUFFER_LIMIT)
            self._release()

    def parse(self, data: bytes) -> list[list[bytes]]:
        """:meth:`feed` then :meth:`read_commands`, never raising: check :attr:`error` after.

        The driver's entry point, one call per received chunk (see the fast path above).
        """
        if self._tail:
            data = self._tail + data  # (at most _TAIL_BYTES_MAX copied again)
            self._tail = b""
        if (
            self.authenticated
            and self._fast_lines
            and not self._data
            and not self._chunks
            and not self._args_left
            and not self._ready
            and self._error is None
            and len(data) <= self._fast_max_len
        ):
            commands, read, cut = _reqparse.commands(
                data, self.max_multibulk_len, self.max_bulk_len
            )
            if read == len(data):
                return commands
            if cut and len(data) - read <= self._tail_max:  # read again with the next chunk
                self._tail = data[read:]
                return commands
            if commands:  # the rest as the Python path would hold it after these: it reads
                self.feed(data[read:])  # from here on
                try:
                    return commands + self.read_commands()
                except ProtocolError:
                    return commands
        self.feed(data)
        try:
            return self.read_commands()
        except ProtocolError:
            return []

    @property
    def error(self) -> ProtocolError | None:
        """The protocol error found, if any: the driver replies with it and closes."""
        return self._error

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet returned as part of a complete command."""
        return len(self._data) - self._pos + self._chunks_len + self._args_bytes + len(self._tail)

    @property
    def failed(self) -> bool:
        """True once a protocol error was found: the driver must close the connection."""
        return self._error is not None

    # -- output -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[list[bytes]]:
        """Every complete command now buffered, in order; raises :class:`ProtocolError`.

        Commands that precede a protocol error are yielded first; the error is raised when
        the iteration reaches it.
        """
        while True:  # bounded: every non-empty batch consumes buffered bytes
            batch = self.read_commands()
            if not batch:
                return
            yield from batch

    def next_command(self) -> list[bytes] | None:
        """The next complete command, or ``None`` when more bytes are needed."""
        if not self._ready:
            self._ready = self.read_commands()
            if not self._ready:
                return None
            self._ready.reverse()
        return self._ready.pop()

    def read_commands(self) -> list[list[bytes]]:
        """All complete commands now buffered (possibly none), consumed from the buffer.

        Raises :class:`ProtocolError` only when there is no command left to return first:
        an error found after some commands is raised by the next call.
        """
        if self._tail:  # (bytes parse held back: the Python path reads them now)
            self.feed(b"")
        if self._ready:
            ready = self._ready
            ready.reverse()  # next_command keeps its queue reversed
            self._ready = []
            return ready
        out: list[list[bytes]] = []
        try:
            self._parse(out)
        except ProtocolError:
            if not out:
                raise
        return out

    def _parse(self, out: list[list[bytes]]) -> None:
        """Append complete commands to ``out`` until more data is needed; the hot loop."""
        if self._error is not None:
            raise self._error
        data = self._data
        pos = self._pos
        if len(data) - pos + self._chunks_len < self._need:
            return
        if self._chunks:
            data = self._join()
            pos = 0
        end = len(data)
        line_max = self.max_inline_len
        bulk_max = self.max_bulk_len
        small = _SMALL_NUMBERS
        authenticated = self.authenticated
        fast_lines = self._fast_lines  # (C measures no line: only under long line limits)
        args = self._args
        left = self._args_left
        bulk = self._bulk_len
        while True:  # bounded: each pass consumes at least one byte or returns
            if left == 0:
                if pos >= end:
                    self._suspend([], 0, -1)
                    self._wait(data, pos, 1)
                    return
                if data[pos] != _STAR:
                    nl = data.find(b"\n", pos, pos + line_max + 1)
                    if nl < 0:
                        if end - pos > line_max:
                            self._fail(messages.PROTOCOL_TOO_BIG_INLINE)
                        self._suspend([], 0, -1)
                        self._wait(data, pos, end - pos + 1)
                        return
                    line = data[pos : nl - 1 if nl > pos and data[nl - 1] == 13 else nl]
                    pos = nl + 1
                    inline = split_inline(line)
                    if inline is None:
                        self._fail(messages.PROTOCOL_UNBALANCED_QUOTES)
                    if inline:
                        out.append(inline)
                    continue
                nl = data.find(b"\r\n", pos, pos + line_max + 2)
                if nl < 0:
                    if end - pos >= line_max + 2:
                        self._fail(messages.PROTOCOL_TOO_BIG_MULTIBULK_COUNT)
                    self._suspend([], 0, -1)
                    self._wait(data, pos, end - pos + 1)
                    return
                text = data[pos + 1 : nl]
                count = small.get(text)
                if count is None:
                    count = parse_integer(text)
                    if count is None:
                        self._fail(messages.PROTOCOL_INVALID_MULTIBULK_LENGTH)
                if count > self.max_multibulk_len:
                    self._fail(messages.PROTOCOL_INVALID_MULTIBULK_LENGTH)
                if count > UNAUTHENTICATED_MAX_MULTIBULK_LEN and not authenticated:
                    self._fail(messages.PROTOCOL_UNAUTHENTICATED_MULTIBULK_LENGTH)
                pos = nl + 2
                if count <= 0:
                    continue
                left = count
                args = []
            if bulk < 0 and left >= _C_ARGUMENTS_MIN and authenticated and fast_lines:
                more, pos = _reqparse.arguments(data, pos, left, bulk_max)
                if more:  # (what C stopped at, if anything, is read below as before)
                    args += more
                    left -= len(more)
                    if left == 0:
                        out.append(args)
                        continue
            if bulk < 0:
                nl = data.find(b"\r\n", pos, pos + line_max + 2)
                if nl < 0:
                    self._suspend(args, left, -1)
                    if end - pos >= line_max + 2:
                        self._fail(messages.PROTOCOL_TOO_BIG_BULK_COUNT)
                    self._wait(data, pos, end - pos + 1)
                    return
                if data[pos] != _DOLLAR:
                    self._fail(messages.expected_dollar(data[pos]))
                text = data[pos + 1 : nl]
                size = small.get(text)
                if size is None:
                    size = parse_integer(text)
                    if size is None or size < 0:
                        self._fail(messages.PROTOCOL_INVALID_BULK_LENGTH)
                if size > bulk_max:
                    self._fail(messages.PROTOCOL_INVALID_BULK_LENGTH)
                if size > UNAUTHENTICATED_MAX_BULK_LEN and not authenticated:
                    self._fail(messages.PROTOCOL_UNAUTHENTICATED_BULK_LENGTH)
                pos = nl + 2
                bulk = size
            stop = pos + bulk
            if stop + 2 > end:
                self._suspend(args, left, bulk)
                self._wait(data, pos, bulk + 2)
                return
            args.append(data[pos:stop])
            pos = stop + 2
            bulk = -1
            left -= 1
            if left == 0:
                out.append(args)

    # -- internals --------------------------------------------------------------------------

    def _join(self) -> bytes:
        """Fold the fed chunks into ``_data``, dropping what is consumed (one copy at most)."""
        chunks = self._chunks
        if self._pos >= len(self._data) and len(chunks) == 1:
            data = chunks[0]
        else:
            data = b"".join([memoryview(self._data)[self._pos :], *chunks])
        self._chunks = []
        self._chunks_len = 0
        self._data = data
        self._pos = 0
        return data

    def _suspend(self, args: list[bytes], left: int, bulk: int) -> None:
        """Keep the unfinished multibulk command for the next feed."""
        if args is not self._args or not args:
            self._args_bytes = 0
            self._args_counted = 0
        if len(args) > self._args_counted:
            self._args_bytes += sum(map(len, args[self._args_counted :]))
            self._args_counted = len(args)
        self._args = args
        self._args_left = left
        self._bulk_len = bulk

    def _wait(self, data: bytes, pos: int, need: int) -> None:
        """Remember where parsing stopped and how many unconsumed bytes must be held first."""
        if pos >= len(data):
            self._data = b""
            self._pos = 0
        else:
            self._pos = pos
        self._need = need

    def _fail(self, message: str) -> NoReturn:
        self._error = ProtocolError(message)
        self._release()
        raise self._error

    def _release(self) -> None:
        """Drop every buffered byte: after a protocol error nothing more is parsed."""
        self._tail = b""
        self._data = b""
        self._pos = 0
        self._chunks = []
        self._chunks_len = 0
        self._args = []
