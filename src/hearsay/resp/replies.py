"""Reply values and their RESP2 / RESP3 encodings.

Why: command handlers should say *what* they answer (a number, a map, an error), not how a
given protocol version spells it. A handler returns a plain Python value or one of the small
wrappers below; the driver turns it into bytes for the connection's protocol::

    data = encode(reply, ctx.protocol)          # or ReplyEncoder(3).encode(reply)

=========================  =====================  ==========================================
value                      RESP2                  RESP3
=========================  =====================  ==========================================
``None``                   ``$-1`` (null bulk)    ``_``
``NULL_ARRAY``             ``*-1`` (null array)   ``_``
``True`` / ``False``       ``:1`` / ``:0``        ``#t`` / ``#f``
``int``                    ``:n``                 ``:n`` (outside int64: ``(n``)
``float``                  bulk string            ``,`` double (``inf``, ``-inf``, ``nan``)
``bytes`` / ``str``        ``$len`` bulk          ``$len`` bulk (``str`` as UTF-8)
``SimpleString``           ``+text``              ``+text``
``ErrorReply``             ``-text``              ``-text``
``list`` / ``tuple``       ``*n`` array           ``*n`` array
``dict`` / ``Map``         flat ``*2n`` array     ``%n`` map
``set`` / ``Set``          ``*n`` array           ``~n`` set
``Verbatim``               bulk string            ``=len\\r\\ntxt:...``
``RawReply``               the bytes, as given    the bytes, as given
=========================  =====================  ==========================================

Text that is not bulk (simple strings, errors) cannot hold CR or LF: like Redis, they are
replaced by spaces. Error texts are encoded with ``surrogateescape`` so client bytes quoted by
:mod:`hearsay.resp.messages` go back byte for byte. Nesting deeper than :data:`MAX_DEPTH` is a
handler bug and raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Final, TypeAlias, cast

MAX_DEPTH: Final = 64
_INT_ONLY: Final = frozenset({int})


class SimpleString(str):
    """A status reply: ``+OK``. Must be one line."""

    __slots__ = ()


class ErrorReply(str):
    """An error reply: the whole text after ``-``, code first (``ERR syntax error``)."""

    __slots__ = ()


class Verbatim:
    """RESP3 verbatim string (``=``); a plain bulk string under RESP2. Redis uses it for INFO."""

    __slots__ = ("format", "text")

    def __init__(self, text: str | bytes, format: str = "txt") -> None:
        if len(format) != 3:
            raise ValueError("a verbatim format is exactly three characters")
        self.text = text.encode() if isinstance(text, str) else text
        self.format = format

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Verbatim) and other.text == self.text and other.format == self.format
        )

    def __hash__(self) -> int:
        return hash((self.text, self.format))

    def __repr__(self) -> str:
        return f"Verbatim({self.text!r}, {self.format!r})"


class Map:
    """A RESP3 map (``%``) from pairs, kept in order; a flat array under RESP2.

    Use it instead of a ``dict`` when keys are unhashable or repeated, or order matters.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: Mapping[Reply, Reply] | Iterable[tuple[Reply, Reply]] = ()) -> None:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        self.pairs: list[tuple[Reply, Reply]] = list(items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Map) and other.pairs == self.pairs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Map({self.pairs!r})"


class Set:
    """A RESP3 set (``~``) of members, kept in order; a plain array under RESP2."""

    __slots__ = ("members",)

    def __init__(self, members: Iterable[Reply] = ()) -> None:
        self.members: list[Reply] = list(members)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Set) and other.members == self.members

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Set({self.members!r})"


class RawReply(bytes):
    """Bytes that are already a complete RESP reply; sent unchanged under both protocols."""

    __slots__ = ()


class _NullArray:
    """The null array: ``*-1`` under RESP2 (e.g. a timed-out blocking pop), ``_`` under RESP3."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_ARRAY"


NULL_ARRAY: Final = _NullArray()
OK: Final = SimpleString("OK")
PONG: Final = SimpleString("PONG")

Reply: TypeAlias = (
    bool
    | int
    | float
    | str
    | bytes
    | bytearray
    | memoryview
    | Verbatim
    | Map
    | Set
    | _NullArray
    | Sequence["Reply"]
    | Mapping[Any, "Reply"]  # keys are replies too; Any because Mapping keys are invariant
    | AbstractSet["Reply"]
    | None
)

_CRLF: Final = b"\r\n"
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_SMALL_INTS: Final = {i: b":%d\r\n" % i for i in range(-1, 1024)}
_FLAT_ARRAY_ITEMS_MAX: Final = 16
"""Arrays up to this long are tried as integers and nils (a reply per item of one call)."""
_CONSTANT_REPLIES: Final = {"OK": b"+OK\r\n", "PONG": b"+PONG\r\n", "QUEUED": b"+QUEUED\r\n"}


def _line(text: str) -> bytes:
    """One protocol line of text: CR and LF become spaces, client bytes round-trip."""
    data = text.encode("utf-8", "surrogateescape")
    if b"\r" in data or b"\n" in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return data


def format_double(value: float) -> bytes:
    """A double as Redis 7.2 prints it: shortest round-trip digits, integers without ``.0``."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if math.isnan(value):
        return b"nan"
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    return text.encode()


class ReplyEncoder:
    """Encodes reply values for one protocol version (2 or 3)."""

    __slots__ = ("_false", "_null", "_null_array", "_true", "_writers", "protocol")

    def __init__(self, protocol: int) -> None:
        if protocol not in (2, 3):
            raise ValueError(f"unsupported RESP protocol version {protocol}")
        self.protocol = protocol
        resp3 = protocol == 3
        self._null = b"_\r\n" if resp3 else b"$-1\r\n"
        self._null_array = b"_\r\n" if resp3 else b"*-1\r\n"
        self._true = b"#t\r\n" if resp3 else b":1\r\n"
        self._false = b"#f\r\n" if resp3 else b":0\r\n"
        # Exact type -> writer: one dict lookup per value; subclasses take the slow path.
        self._writers: dict[type, Callable[[bytearray, Any, int], None]] = {
            bytes: _write_bulk,
            bytearray: _write_bulk,
            memoryview: _write_bulk,
            int: self._write_int,
            str: _write_str,
            SimpleString: _write_simple,
            ErrorReply: _write_error,
            bool: self._write_bool,
            type(None): self._write_null,
            list: self._write_array,
            tuple: self._write_array,
            dict: self._write_dict,
            Map: self._write_map,
            set: self._write_set,
            frozenset: self._write_set,
            Set: self._write_set_reply,
            float: self._write_double,
            Verbatim: self._write_verbatim,
            RawReply: _write_raw,
            _NullArray: self._write_null_array,
        }

    def encode(self, reply: Reply) -> bytes:
        """The bytes of one reply. The commonest replies are precomputed constants."""
        if type(reply) is int:
            small = _SMALL_INTS.get(reply)
            if small is not None:
                return small
            if _INT64_MIN <= reply <= _INT64_MAX:  # (a counter's value)
                return b":%d\r\n" % reply
        elif isinstance(reply, SimpleString):
            constant = _CONSTANT_REPLIES.get(reply)
            if constant is not None:
                return constant
        elif type(reply) is bytes:
            return b"$%d\r\n%b\r\n" % (len(reply), reply)
        elif reply is None:
            return self._null
        elif type(reply) is list and len(reply) <= _FLAT_ARRAY_ITEMS_MAX:
            flat = self._flat_array(reply)  # (a CMS.INCRBY's counts, a TOPK.ADD's nils)
            if flat is not None:
                return flat
        out = bytearray()
        self.write(out, reply)
        return bytes(out)

    def _flat_array(self, reply: list[Reply]) -> bytes | None:
        """An array of int64 integers, bulk strings and nils, as :meth:`write` encodes it;
        None for any other array (the general writer's)."""
        parts = [b"*%d\r\n" % len(reply)]
        for item in reply:
            if item is None:
                parts.append(self._null)
            elif type(item) is int and _INT64_MIN <= item <= _INT64_MAX:
                parts.append(_SMALL_INTS.get(item) or b":%d\r\n" % item)
            elif type(item) is bytes:  # (a TOPK.ADD's expelled item)
                parts.append(b"$%d\r\n%b\r\n" % (len(item), item))
            else:
                return None
        return b"".join(parts)

    def encode_many(self, replies: Sequence[Reply]) -> bytes:
        """The replies to a pipeline, concatenated in order."""
        if _INT_ONLY.issuperset(map(type, replies)):  # e.g. a run of PFADDs: 0s and 1s
            ints = cast("Sequence[int]", replies)
            try:
                return b"".join(map(_SMALL_INTS.__getitem__, ints))
            except KeyError:  # (a run of INCRs: the counter's values)
                if ints and min(ints) >= _INT64_MIN and max(ints) <= _INT64_MAX:
                    return b"".join([b":%d\r\n" % reply for reply in ints])
        return b"".join(map(self.encode, replies))

    def write(self, out: bytearray, reply: Reply, depth: int = 0) -> None:
        """Append the encoding of ``reply`` to ``out``."""
        if depth > MAX_DEPTH:
            raise ValueError(f"reply nested deeper than {MAX_DEPTH} levels")
        writer = self._writers.get(type(reply))
        if writer is None:
            self._write_other(out, reply, depth)
        else:
            writer(out, reply, depth)

    def _write_int(self, out: bytearray, reply: int, depth: int) -> None:
        small = _SMALL_INTS.get(reply)
        if small is not None:
            out += small
        elif _INT64_MIN <= reply <= _INT64_MAX:
            out += b":%d\r\n" % reply
        elif self.protocol == 3:
            out += b"(%d\r\n" % reply  # big number
        else:
            text = b"%d" % reply
            out += b"$%d\r\n%b\r\n" % (len(text), text)

    def _write_bool(self, out: bytearray, reply: bool, depth: int) -> None:
        out += self._true if reply else self._false

    def _write_null(self, out: bytearray, reply: None, depth: int) -> None:
        out += self._null

    def _write_null_array(self, out: bytearray, reply: _NullArray, depth: int) -> None:
        out += self._null_array

    def _write_array(self, out: bytearray, reply: Sequence[Reply], depth: int) -> None:
        out += b"*%d\r\n" % len(reply)
        for item in reply:
            self.write(out, item, depth + 1)

    def _write_pairs(
        self, out: bytearray, pairs: Sequence[tuple[Reply, Reply]], depth: int
    ) -> None:
        if self.protocol == 3:
            out += b"%%%d\r\n" % len(pairs)
        else:
            out += b"*%d\r\n" % (2 * len(pairs))
        for key, value in pairs:
            self.write(out, key, depth + 1)
            self.write(out, value, depth + 1)

    def _write_dict(self, out: bytearray, reply: Mapping[Reply, Reply], depth: int) -> None:
        self._write_pairs(out, list(reply.items()), depth)

    def _write_map(self, out: bytearray, reply: Map, depth: int) -> None:
        self._write_pairs(out, reply.pairs, depth)

    def _write_members(self, out: bytearray, members: Sequence[Reply], depth: int) -> None:
        out += (b"~%d\r\n" if self.protocol == 3 else b"*%d\r\n") % len(members)
        for item in members:
            self.write(out, item, depth + 1)

    def _write_set(self, out: bytearray, reply: AbstractSet[Reply], depth: int) -> None:
        self._write_members(out, list(reply), depth)

    def _write_set_reply(self, out: bytearray, reply: Set, depth: int) -> None:
        self._write_members(out, reply.members, depth)

    def _write_double(self, out: bytearray, reply: float, depth: int) -> None:
        text = format_double(reply)
        if self.protocol == 3:
            out += b",%b\r\n" % text
        else:
            out += b"$%d\r\n%b\r\n" % (len(text), text)

    def _write_verbatim(self, out: bytearray, reply: Verbatim, depth: int) -> None:
        if self.protocol == 3:
            body = reply.format.encode() + b":" + reply.text
            out += b"=%d\r\n%b\r\n" % (len(body), body)
        else:
            out += b"$%d\r\n%b\r\n" % (len(reply.text), reply.text)

    def _write_other(self, out: bytearray, reply: object, depth: int) -> None:
        """Values whose exact type has no writer: subclasses and other containers."""
        # Order matters: bool before int, the str wrappers before str, bytes before Sequence.
        value: Reply
        if isinstance(reply, bool):
            value = bool(reply)
        elif isinstance(reply, int):
            value = int(reply)
        elif isinstance(reply, float):
            value = float(reply)
        elif isinstance(reply, SimpleString):
            value = SimpleString(str(reply))
        elif isinstance(reply, ErrorReply):
            value = ErrorReply(str(reply))
        elif isinstance(reply, RawReply):
            value = RawReply(bytes(reply))
        elif isinstance(reply, str):
            value = str(reply)
        elif isinstance(reply, bytes | bytearray | memoryview):
            value = bytes(reply)
        elif isinstance(reply, Mapping):
            value = Map(reply)
        elif isinstance(reply, AbstractSet):
            value = Set(reply)
        elif isinstance(reply, Sequence):
            value = list(reply)
        else:
            raise TypeError(f"cannot encode {type(reply).__name__} as a RESP reply")
        self.write(out, value, depth)


def _write_bulk(out: bytearray, reply: bytes | bytearray | memoryview, depth: int) -> None:
    out += b"$%d\r\n" % len(reply) if type(reply) is not memoryview else b"$%d\r\n" % reply.nbytes
    out += reply
    out += _CRLF


def _write_str(out: bytearray, reply: str, depth: int) -> None:
    data = reply.encode("utf-8", "surrogateescape")
    out += b"$%d\r\n%b\r\n" % (len(data), data)


def _write_simple(out: bytearray, reply: SimpleString, depth: int) -> None:
    out += b"+%b\r\n" % _line(reply)


def _write_error(out: bytearray, reply: ErrorReply, depth: int) -> None:
    out += b"-%b\r\n" % _line(reply)


def _write_raw(out: bytearray, reply: RawReply, depth: int) -> None:
    out += reply


RESP2: Final = ReplyEncoder(2)
RESP3: Final = ReplyEncoder(3)
_ENCODERS: Final = {2: RESP2, 3: RESP3}


def encoder_for(protocol: int) -> ReplyEncoder:
    """The shared encoder of a protocol version (2 or 3)."""
    try:
        return _ENCODERS[protocol]
    except KeyError:
        raise ValueError(f"unsupported RESP protocol version {protocol}") from None


def encode(reply: Reply, protocol: int = 2) -> bytes:
    """The bytes of ``reply`` under RESP ``protocol`` (2 or 3)."""
    return encoder_for(protocol).encode(reply)
