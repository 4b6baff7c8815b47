"""Membership messages on the wire: typed, positional, and checked before anything is applied.

Why this module exists: a membership message comes from a peer that may be buggy or forged,
so every field's type, range and size is checked here, once, and the rest of membership only
ever sees typed, valid values. Messages are NamedTuples, so they pack as positional msgpack
arrays exactly as the data plane's payloads do (:mod:`hearsay.protocol.messages`)::

    SYN   [1, sender, complete: bool, [digest item, ...]]
    ACK   [2, sender, [digest item, ...], [delta, ...]]    (the digest items are requests)
    ACK2  [3, sender, [delta, ...]]
    PING      [4, sender, seq, target node, [notice, ...]]
    PING_ACK  [5, sender, seq, [notice, ...]]
    PING_REQ  [6, sender, seq, target node, target address, [notice, ...]]
    NOTICES   [7, sender, [notice, ...]]
    PUSH_PULL [8, sender, reply_wanted: bool, [delta, ...]]

    digest item  [node, generation, max_version]
    delta        [node, generation, from_version, to_version, [entry, ...]]
    entry        [key, value, version, expiry_unix_ms | nil]
    notice       [node, generation, incarnation, verdict (0 alive, 1 suspect, 2 dead), from]

SYN / ACK / ACK2 reconcile the nodes' versioned state (addresses, statuses, tags); PING,
PING_ACK and PING_REQ are SWIM's direct and indirect probes, and every one of them, like
NOTICES, carries liveness notices (see :mod:`.swim`). PUSH_PULL is one chunk of a whole member
table (every member's full state, as deltas from version 0): sent on joining and now and then
to one member (memberlist's push-pull); a chunk that wants a reply is answered with our table.

The format (protocol version 3) replaced msgpack maps keyed by name (``{"t": "syn", "from":
...}``, version 2); the envelope's version byte refuses an older peer as a counted ``version``
drop before its payload is looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from sys import intern
from typing import Any, Final, NamedTuple, TypeAlias

from hearsay.base.errors import DecodeError

Address: TypeAlias = tuple[str, int]
TagValue: TypeAlias = str | bytes | int | float | bool | None

# Limits (checked on every incoming message before anything is applied)
NODE_ID_CHARS_MAX: Final = 256
TAG_KEY_CHARS_MAX: Final = 256
HOST_CHARS_MAX: Final = 255
TAG_ENTRY_BYTES_MAX: Final = 512
"""Largest packed tag entry: small enough that any entry fits one datagram with room to spare,
so a truncated delta always makes progress and a watermark can never get stuck behind it."""
DIGEST_ENTRIES_MAX: Final = 4096
DELTAS_MAX: Final = 4096
DELTA_ENTRIES_MAX: Final = 4096
BUDGET_BYTES_MIN: Final = 2 * TAG_ENTRY_BYTES_MAX
INT_MAX: Final = 2**63 - 1
_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
_PORT_MAX: Final = 65535
LIST_GROWTH_BYTES: Final = 2
"""Growth of an array header from fixarray (1 byte) to array16 (3 bytes); every list we build
holds fewer than 65536 items."""

# Reserved keys of the owner-maintained fields; user tag keys may not start with NUL.
RESERVED_KEY_PREFIX: Final = "\x00"
KEY_ADDRESS: Final = "\x00addr"
KEY_STATUS: Final = "\x00status"
KEY_HTTP_PORT: Final = "\x00http"
"""The node's HTTP port (its dashboard), announced by the runtime."""
KEY_HEARTBEAT: Final = "\x00hb"
STATUS_VALUES: Final = frozenset({"alive", "leaving", "left"})
"""The values of :data:`KEY_STATUS` (``liveness.NodeStatus``)."""
_STATUSES: Final = {value: value for value in STATUS_VALUES}


class MembershipDecodeError(DecodeError):
    """A membership message from a peer is malformed (wrong type, size or field)."""


class MessageKind(IntEnum):
    """The first item of every membership message."""

    SYN = 1
    ACK = 2
    ACK2 = 3
    PING = 4
    PING_ACK = 5
    PING_REQ = 6
    NOTICES = 7
    PUSH_PULL = 8


class Verdict(IntEnum):
    """What a liveness notice says about a member (SWIM's alive / suspect / confirm)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2


class DigestItem(NamedTuple):
    """Where one node's state stands: ``(generation, max_version)``."""

    node_id: str
    generation: int
    max_version: int


class WireEntry(NamedTuple):
    """One versioned key of a node's state (a user tag or an owner-maintained field)."""

    key: str
    value: Any
    version: int
    expiry_unix_ms: int | None


class Delta(NamedTuple):
    """Every entry of one node with a version in ``(from_version, to_version]``, in order."""

    node_id: str
    generation: int
    from_version: int
    to_version: int
    entries: tuple[WireEntry, ...]


class Syn(NamedTuple):
    """A -> B: A's digest (a random subset, self first, unless ``complete``)."""

    kind: MessageKind
    sender: str
    complete: bool
    digest: tuple[DigestItem, ...]


class Ack(NamedTuple):
    """B -> A: deltas where B is ahead; B's digest items where B is behind (requests)."""

    kind: MessageKind
    sender: str
    requests: tuple[DigestItem, ...]
    deltas: tuple[Delta, ...]


class Ack2(NamedTuple):
    """A -> B: deltas answering B's requests."""

    kind: MessageKind
    sender: str
    deltas: tuple[Delta, ...]


class Notice(NamedTuple):
    """``origin`` says member ``node_id`` (of ``generation``, at ``incarnation``) is alive,
    suspect or dead."""

    node_id: str
    generation: int
    incarnation: int
    verdict: Verdict
    origin: str


class Ping(NamedTuple):
    """A direct probe: ``target`` is who the sender believes answers at that address."""

    kind: MessageKind
    sender: str
    seq: int
    target: str
    notices: tuple[Notice, ...]


class PingAck(NamedTuple):
    """The answer to a ping (or relayed by the node a PING_REQ asked)."""

    kind: MessageKind
    sender: str
    seq: int
    notices: tuple[Notice, ...]


class PingReq(NamedTuple):
    """Ask the receiver to ping ``target`` at ``address`` and relay its ack (seq ``seq``)."""

    kind: MessageKind
    sender: str
    seq: int
    target: str
    address: Address
    notices: tuple[Notice, ...]


class Notices(NamedTuple):
    """Liveness notices only (a gossip round of the broadcast queue)."""

    kind: MessageKind
    sender: str
    notices: tuple[Notice, ...]


class PushPull(NamedTuple):
    """One chunk of the sender's member table (full states); ``reply_wanted``: answer with
    ours (a join, or the periodic push-pull)."""

    kind: MessageKind
    sender: str
    reply_wanted: bool
    deltas: tuple[Delta, ...]


MembershipMessage: TypeAlias = Syn | Ack | Ack2 | Ping | PingAck | PingReq | Notices | PushPull
ProbeMessage: TypeAlias = Ping | PingAck | PingReq | Notices


def uint_bytes(value: int) -> int:
    """Bytes msgpack takes for a non-negative int."""
    if value < 128:
        return 1
    if value < 256:
        return 2
    if value < 65536:
        return 3
    return 5 if value < 2**32 else 9


def int_bytes(value: int) -> int:
    """Bytes msgpack takes for an int of 64 bits (signed or not)."""
    if value >= 0:
        return uint_bytes(value)
    if value >= -32:
        return 1
    return 2 if value >= -128 else 3 if value >= -32768 else 5 if value >= -(2**31) else 9


def str_bytes(text: str) -> int:
    """Bytes msgpack takes for a str."""
    n = len(text) if text.isascii() else len(text.encode())
    return n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)


def value_bytes(value: object) -> int:
    """Bytes msgpack takes for a state value: None, bool, int, float, str, bytes, or a tuple
    or list of them (an address). Computed, never packed: every entry a peer's delta brings
    is sized once (at 1,000 simulated nodes, packing to measure took ~5% of the run)."""
    if value is None or value is True or value is False:
        return 1
    if isinstance(value, int):
        return int_bytes(value)
    if isinstance(value, str):
        return str_bytes(value)
    if isinstance(value, bytes):
        n = len(value)
        return n + (2 if n < 256 else 3 if n < 65536 else 5)
    if isinstance(value, float):
        return 9
    if isinstance(value, tuple | list):
        n = len(value)
        return (1 if n < 16 else 3 if n < 65536 else 5) + sum(value_bytes(item) for item in value)
    raise TypeError(f"not a state value: {type(value).__name__}")


def entry_bytes(key: str, value: object, version: int, expiry_unix_ms: int | None) -> int:
    """Bytes msgpack takes for one entry ``[key, value, version, expiry]`` (exact)."""
    expiry = 1 if expiry_unix_ms is None else uint_bytes(expiry_unix_ms)
    return 1 + str_bytes(key) + value_bytes(value) + uint_bytes(version) + expiry


def tag_entry_bytes(entry: WireEntry) -> int:
    """Bytes msgpack takes for a tag entry (exact)."""
    return entry_bytes(entry.key, entry.value, entry.version, entry.expiry_unix_ms)


def digest_item_bytes(node_id: str, generation: int, max_version: int) -> int:
    """Packed size of one digest item."""
    return 1 + str_bytes(node_id) + uint_bytes(generation) + uint_bytes(max_version)


def notice_bytes(notice: Notice) -> int:
    """Packed size of one notice."""
    return (
        2
        + str_bytes(notice.node_id)
        + uint_bytes(notice.generation)
        + uint_bytes(notice.incarnation)
        + str_bytes(notice.origin)
    )


# ---------------------------------------------------------------------------------------------
# Checking incoming values


def _fail(what: str) -> MembershipDecodeError:
    return MembershipDecodeError(f"membership message: {what}")


def _fixed(value: object, length: int, what: str) -> Sequence[Any]:
    """``value`` as an array of exactly ``length`` items: a list from the wire, or a tuple (a
    typed message built in memory)."""
    if not isinstance(value, list | tuple) or len(value) != length:
        raise _fail(what)
    return value


def _check_uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= INT_MAX:
        raise _fail(f"{what} must be an int in [0, 2^63)")
    return value


def check_node_id(value: object, what: str = "node id") -> str:
    if type(value) is not str or not 0 < len(value) <= NODE_ID_CHARS_MAX:
        raise _fail(f"{what} must be a non-empty str of at most {NODE_ID_CHARS_MAX} chars")
    return value


def _check_array(value: object, what: str, max_len: int) -> Sequence[Any]:
    if not isinstance(value, list | tuple) or len(value) > max_len:
        raise _fail(f"{what} must be a list of at most {max_len} items")
    return value


def check_address(value: object) -> Address:
    host, port = _fixed(value, 2, "address must be [host, port]")
    if type(host) is not str or not 0 < len(host) <= HOST_CHARS_MAX:
        raise _fail("address host must be a non-empty str")
    if type(port) is not int or not 0 <= port <= _PORT_MAX:
        raise _fail("address port must be an int in [0, 65535]")
    return (host, port)


def check_tag_value(value: object) -> TagValue:
    t = type(value)
    if value is None or t is bool or t is float:
        return value  # type: ignore[return-value]
    if t is int:
        if not _INT_MIN <= value <= _UINT_MAX:  # type: ignore[operator]
            raise _fail("tag int out of range")
        return value  # type: ignore[return-value]
    if t is str or t is bytes:
        if len(value) > TAG_ENTRY_BYTES_MAX:  # type: ignore[arg-type]
            raise _fail("tag value too long")
        return value  # type: ignore[return-value]
    raise _fail("tag value must be None, bool, int, float, str or bytes")


def _check_entry(raw: object) -> WireEntry:
    if type(raw) is list and len(raw) == 4:  # the usual owner field, checked inline
        key, value, version, expiry = raw
        if (
            type(version) is int
            and 0 < version <= INT_MAX
            and (expiry is None or (type(expiry) is int and 0 <= expiry <= INT_MAX))
        ):
            # Keys, statuses and hosts are shared strings (one copy per process, not one per
            # member per message: a member table holds ~1,000 of each at 1,000 nodes).
            if key == KEY_HEARTBEAT:
                if type(value) is int and 0 <= value <= INT_MAX:
                    return WireEntry(KEY_HEARTBEAT, value, version, expiry)
            elif key == KEY_STATUS:
                if type(value) is str and value in STATUS_VALUES:
                    return WireEntry(KEY_STATUS, _STATUSES[value], version, expiry)
            elif key == KEY_ADDRESS and type(value) is list and len(value) == 2:
                host, port = value
                if (
                    type(host) is str
                    and 0 < len(host) <= HOST_CHARS_MAX
                    and type(port) is int
                    and 0 <= port <= _PORT_MAX
                ):
                    return WireEntry(KEY_ADDRESS, (intern(host), port), version, expiry)
    key, value, version, expiry = _fixed(raw, 4, "entry must be [key, value, version, expiry]")
    if type(key) is not str or not 0 < len(key) <= TAG_KEY_CHARS_MAX:
        raise _fail("entry key must be a non-empty str")
    version = _check_uint(version, "entry version")
    if version == 0:
        raise _fail("entry version must be >= 1")
    if expiry is not None:
        expiry = _check_uint(expiry, "entry expiry")
    if key == KEY_ADDRESS:
        value = check_address(value)
    elif key == KEY_STATUS:
        if type(value) is not str or value not in STATUS_VALUES:
            raise _fail("status must be alive, leaving or left")
    elif key == KEY_HEARTBEAT:
        value = _check_uint(value, "heartbeat")
    else:
        value = check_tag_value(value)
    entry = WireEntry(key, value, version, expiry)
    if not key.startswith(RESERVED_KEY_PREFIX) and tag_entry_bytes(entry) > TAG_ENTRY_BYTES_MAX:
        raise _fail("entry too large")
    return entry


def _check_delta(raw: object) -> Delta:
    items = _fixed(raw, 5, "delta must be [node, generation, from_version, to_version, entries]")
    node_id, generation, from_v, to_v, raw_entries = items
    if not (  # the usual header, checked inline
        type(node_id) is str
        and 0 < len(node_id) <= NODE_ID_CHARS_MAX
        and type(generation) is int
        and 0 <= generation <= INT_MAX
        and type(from_v) is int
        and type(to_v) is int
        and 0 <= from_v <= to_v <= INT_MAX
        and type(raw_entries) is list
        and len(raw_entries) <= DELTA_ENTRIES_MAX
    ):
        node_id = check_node_id(node_id)
        generation = _check_uint(generation, "generation")
        from_v = _check_uint(from_v, "from_version")
        to_v = _check_uint(to_v, "to_version")
        if to_v < from_v:
            raise _fail("to_version < from_version")
        raw_entries = _check_array(raw_entries, "delta entries", DELTA_ENTRIES_MAX)
    node_id = intern(node_id)  # kept by the member table: one copy per process
    entries = tuple(_check_entry(e) for e in raw_entries)
    last = from_v
    keys: set[str] = set()
    for entry in entries:
        if entry.version <= last or entry.version > to_v:
            raise _fail("delta entries must have increasing versions in (from, to]")
        if entry.key in keys:
            raise _fail("duplicate key in delta")
        keys.add(entry.key)
        last = entry.version
    return Delta(node_id, generation, from_v, to_v, entries)


def _check_deltas(raw: object) -> tuple[Delta, ...]:
    deltas = tuple(_check_delta(d) for d in _check_array(raw, "deltas", DELTAS_MAX))
    if sum(len(d.entries) for d in deltas) > DELTA_ENTRIES_MAX:
        raise _fail("too many entries")
    return deltas


def _check_digest(raw: object) -> tuple[DigestItem, ...]:
    out: list[DigestItem] = []
    seen: set[str] = set()
    for raw_item in _check_array(raw, "digest", DIGEST_ENTRIES_MAX):
        if type(raw_item) is list and len(raw_item) == 3:  # the usual item, checked inline
            node_id, generation, max_version = raw_item
            if (
                type(node_id) is str
                and 0 < len(node_id) <= NODE_ID_CHARS_MAX
                and node_id not in seen
                and type(generation) is int
                and 0 <= generation <= INT_MAX
                and type(max_version) is int
                and 0 <= max_version <= INT_MAX
            ):
                seen.add(node_id)
                out.append(DigestItem(node_id, generation, max_version))
                continue
        item = _fixed(raw_item, 3, "digest entry must be [node, generation, max_version]")
        node_id = check_node_id(item[0])
        if node_id in seen:
            raise _fail("duplicate node in digest")
        seen.add(node_id)
        out.append(
            DigestItem(node_id, _check_uint(item[1], "generation"), _check_uint(item[2], "v"))
        )
    return tuple(out)


NOTICES_MAX: Final = 1024


def _check_notices(raw: object) -> tuple[Notice, ...]:
    out: list[Notice] = []
    for raw_item in _check_array(raw, "notices", NOTICES_MAX):
        item = _fixed(raw_item, 5, "notice must be [node, generation, incarnation, verdict, from]")
        verdict = item[3]
        if type(verdict) is not int or verdict not in (0, 1, 2):
            raise _fail("notice verdict must be 0, 1 or 2")
        out.append(
            Notice(
                check_node_id(item[0]),
                _check_uint(item[1], "generation"),
                _check_uint(item[2], "incarnation"),
                Verdict(verdict),
                check_node_id(item[4], "notice origin"),
            )
        )
    return tuple(out)


_ARITY: Final = {
    MessageKind.SYN: 4,
    MessageKind.ACK: 4,
    MessageKind.ACK2: 3,
    MessageKind.PING: 5,
    MessageKind.PING_ACK: 4,
    MessageKind.PING_REQ: 6,
    MessageKind.NOTICES: 3,
    MessageKind.PUSH_PULL: 4,
}


def decode(raw: object) -> MembershipMessage:
    """A checked, typed message from a decoded msgpack value (or a message built in memory).

    Raises :class:`MembershipDecodeError` for anything else.
    """
    if not isinstance(raw, list | tuple) or not raw:
        raise _fail("message must be a non-empty array")
    kind_raw: object = raw[0]
    if type(kind_raw) is bool or not isinstance(kind_raw, int) or kind_raw not in _ARITY:
        raise _fail("unknown message type")
    kind = MessageKind(kind_raw)
    items = _fixed(raw, _ARITY[kind], f"a {kind.name} message has {_ARITY[kind]} items")
    sender = check_node_id(items[1], "sender id")
    if kind is MessageKind.SYN:
        complete: object = items[2]
        if type(complete) is not bool:
            raise _fail("complete must be a bool")
        return Syn(kind, sender, complete, _check_digest(items[3]))
    if kind is MessageKind.ACK:
        return Ack(kind, sender, _check_digest(items[2]), _check_deltas(items[3]))
    if kind is MessageKind.ACK2:
        return Ack2(kind, sender, _check_deltas(items[2]))
    if kind is MessageKind.PUSH_PULL:
        reply_wanted: object = items[2]
        if type(reply_wanted) is not bool:
            raise _fail("reply_wanted must be a bool")
        return PushPull(kind, sender, reply_wanted, _check_deltas(items[3]))
    if kind is MessageKind.NOTICES:
        return Notices(kind, sender, _check_notices(items[2]))
    seq = _check_uint(items[2], "seq")
    if kind is MessageKind.PING_ACK:
        return PingAck(kind, sender, seq, _check_notices(items[3]))
    target = check_node_id(items[3], "target id")
    if kind is MessageKind.PING:
        return Ping(kind, sender, seq, target, _check_notices(items[4]))
    return PingReq(kind, sender, seq, target, check_address(items[4]), _check_notices(items[5]))
