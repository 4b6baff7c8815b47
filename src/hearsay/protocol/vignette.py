"""vignette's raw msgpack messages, understood exactly, so old vignette peers can talk to us.

Why this module exists: vignette (avibryant's Ruby original and aconbere's Clojure port) sends
bare msgpack maps over UDP, with no envelope::

    {"key": str, "vector": {int: int}, "full": bool}     the Clojure port
    {"key": str, "vector": {int: int}, "ttl": int}       the Ruby original (hop count, 50)

Each crashes on the other's dialect; we accept both (and neither field), and send both
``full`` and ``ttl`` so either kind of peer understands us. We never send with ``ttl <= 0``
and decrement it when forwarding.

Keys, as vignette treats them:

- ``n:<host>:<port>`` is a presence key: ``{0: timestamp}``. The Ruby original sent minutes,
  the Clojure port milliseconds; :func:`presence_unix_ms` tells them apart by magnitude (a
  minute count stays below ``10**10`` until the year 20989; milliseconds passed ``10**12`` in
  2001). We always send milliseconds.
- a key containing ``*`` is an aggregate query: the element-wise max of every stored key the
  pattern matches, answered under the pattern key itself;
- otherwise a key containing ``%`` is a search: every stored key the pattern matches is
  answered as its own message;
- patterns are anchored (the whole key must match); ``%`` (and ``*``) match any run of
  characters, everything else matches itself. Neither kind of key is ever stored.
- an empty vector is a read of that key: answer with the whole vector, change nothing.

Raw vignette vectors are stored under the schema kind ``"vector"`` (:data:`VECTOR_SCHEMA`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgpack

from hearsay.base.errors import DecodeError
from hearsay.base.glob import Glob, compile_wildcards
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import INDEX_LIMIT, VALUE_MAX, MaxVector

VECTOR_SCHEMA: Final = Schema("vector").intern()
TTL_DEFAULT: Final = 50
TTL_MAX: Final = 1 << 16
KEY_CHARS_MAX: Final = 1024
PAIRS_MAX: Final = 1 << 16
PRESENCE_PREFIX: Final = "n:"
PRESENCE_SEARCH: Final = "n:%"
MINUTES_BELOW: Final = 10**10
"""A presence timestamp below this is in minutes, otherwise in milliseconds."""


class VignetteDecodeError(DecodeError):
    """A raw vignette message is malformed."""


@dataclass(frozen=True, slots=True)
class VignetteMessage:
    """One raw vignette message. ``full`` / ``ttl`` are None when the sender left them out."""

    key: str
    vector: MaxVector
    full: bool | None = None
    ttl: int | None = None

    @property
    def is_read(self) -> bool:
        return self.vector.is_empty()

    @property
    def is_aggregate(self) -> bool:
        return "*" in self.key

    @property
    def is_search(self) -> bool:
        return "%" in self.key and "*" not in self.key

    @property
    def hops_left(self) -> int:
        return TTL_DEFAULT if self.ttl is None else self.ttl


def decode(data: bytes) -> VignetteMessage:
    """Decode and check one raw vignette datagram; raises VignetteDecodeError."""
    size = len(data)
    try:
        wire = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=False,
            max_bin_len=size,
            max_str_len=size,
            max_array_len=0,
            max_map_len=min(PAIRS_MAX, max(16, size)),
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise VignetteDecodeError(f"malformed vignette message: {error}") from error
    if type(wire) is not dict:
        raise VignetteDecodeError("a vignette message is a map")
    key: Any = wire.get("key")
    if type(key) is bytes:
        try:
            key = key.decode()
        except UnicodeDecodeError as error:
            raise VignetteDecodeError("key is not UTF-8") from error
    if type(key) is not str or not 0 < len(key) <= KEY_CHARS_MAX:
        raise VignetteDecodeError(f"key must be a string of 1..{KEY_CHARS_MAX} characters")
    raw_vector: Any = wire.get("vector", {})
    if raw_vector is None:
        raw_vector = {}
    if type(raw_vector) is not dict:
        raise VignetteDecodeError("vector must be a map of int to int")
    indices: list[int] = []
    values: list[int] = []
    for index, value in raw_vector.items():
        if type(index) is not int or not 0 <= index < INDEX_LIMIT:
            raise VignetteDecodeError("vector index must be an integer in 0..2**32-1")
        if type(value) is not int or not 0 <= value <= VALUE_MAX:
            raise VignetteDecodeError("vector value must be an integer in 0..2**63-1")
        indices.append(index)
        values.append(value)
    full = wire.get("full")
    if full is not None and type(full) is not bool:
        raise VignetteDecodeError("full must be a boolean")
    ttl = wire.get("ttl")
    if ttl is not None and (type(ttl) is not int or not -TTL_MAX <= ttl <= TTL_MAX):
        raise VignetteDecodeError("ttl must be a small integer")
    vector = MaxVector.from_pairs(indices, values) if indices else MaxVector()
    return VignetteMessage(key, vector, full, ttl)


def encode(key: str, vector: MaxVector, *, full: bool, ttl: int = TTL_DEFAULT) -> bytes:
    """A raw vignette datagram carrying both dialects' fields. ``ttl`` must be > 0."""
    if ttl <= 0:
        raise ValueError("never send a vignette message with ttl <= 0")
    pairs = dict(vector.items())
    return msgpack.packb({"key": key, "vector": pairs, "full": full, "ttl": ttl})


def encode_chunks(
    key: str, vector: MaxVector, *, full: bool, ttl: int, budget_bytes: int
) -> list[bytes]:
    """Raw datagrams of at most ``budget_bytes`` that together carry ``vector``.

    Each chunk is a valid vignette update on its own (any subset of a vector is a delta).
    A msgpack map pair takes at most 5 + 9 bytes.
    """
    whole = encode(key, vector, full=full, ttl=ttl)
    if len(whole) <= budget_bytes:
        return [whole]
    overhead = len(encode(key, MaxVector(), full=full, ttl=ttl)) + 4
    pairs_max = max(1, (budget_bytes - overhead) // 14)
    return [encode(key, piece, full=full, ttl=ttl) for piece in vector.split(pairs_max)]


def encode_read(key: str, ttl: int = TTL_DEFAULT) -> bytes:
    """A read (or, for ``%`` / ``*`` keys, a query): an empty vector."""
    return encode(key, MaxVector(), full=False, ttl=ttl)


def compile_pattern(key: str) -> Glob:
    """The matcher of a ``%`` / ``*`` key: wildcards match any run of characters.

    Not a regex with ``.*`` per wildcard: that backtracks over every placement of the
    wildcards, and one 30-byte ``%a%a%a...%b`` search datagram froze a node for 36 s.
    :func:`~hearsay.base.glob.compile_wildcards` places each literal part once, in
    O(pattern x key). Matching the UTF-8 bytes is matching the characters, since a literal
    part found in UTF-8 text always starts on a character boundary.
    """
    return compile_wildcards(key.encode(), b"%*")


def matches(pattern: Glob, key: str) -> bool:
    return pattern.match(key.encode())


# -- presence ----------------------------------------------------------------------------------


def presence_key(host: str, port: int) -> str:
    return f"{PRESENCE_PREFIX}{host}:{port}"


def parse_presence_key(key: str) -> tuple[str, int] | None:
    """``(host, port)`` of an ``n:<host>:<port>`` key, or None if it is not one."""
    if not key.startswith(PRESENCE_PREFIX) or "%" in key or "*" in key:
        return None
    host, sep, port = key[len(PRESENCE_PREFIX) :].rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def presence_unix_ms(value: int) -> int:
    """A presence timestamp in unix milliseconds, whether it was sent in minutes or ms."""
    return value * 60_000 if value < MINUTES_BELOW else value


def presence_vector(now_unix_ms: int) -> MaxVector:
    return MaxVector.from_pairs([0], [now_unix_ms])
