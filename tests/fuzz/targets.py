"""One fuzz target per decoder: bytes in, the decoder's contract checked, nothing else.

Why this module exists: the property tests (Hypothesis), the corpus replay in ``make test`` and
the coverage-guided runs (atheris, ``make fuzz``) must drive *the same* checks, so a crasher
found by one is replayed by the others. A target returns normally when the decoder kept its
contract (a valid value, or its documented error) and raises ``AssertionError`` (or lets an
unexpected exception through) when it did not.

The contracts checked here:

- every decoder either returns a value or raises its documented ``DecodeError`` subclass;
- what it returns is bounded by the input (no decoder makes more than the bytes it was given);
- a decoded value re-encodes and decodes to the same value (the codecs are canonical enough
  that a peer's reading of our re-encoding equals ours);
- the RESP parser reads the same commands whether the bytes come in one chunk (hiredis's fast
  path) or in pieces (the Python path), and never raises;
- the gossip node, fed any datagram, never raises (bad input is dropped and counted).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Final

from hearsay.base.errors import DecodeError
from hearsay.engine.interfaces import WaitForAcks
from hearsay.engine.replica import Replica
from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.persist.identity import NodeIdentity
from hearsay.protocol import messages as msg
from hearsay.protocol import vignette
from hearsay.protocol.envelope import (
    DROP_REASONS,
    EnvelopeCodec,
    EnvelopeError,
    Keyring,
    MessageType,
)
from hearsay.protocol.membership import Membership, MembershipDecodeError
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.protocol.presets import LOCAL
from hearsay.resp.commands import ClientContext
from hearsay.resp.parser import RequestParser
from hearsay.resp.replies import encode
from hearsay.resp.server_commands import build_registry
from hearsay.runtime.http_server import HttpServer
from hearsay.runtime.rmbd import RmbdProtocol

FIXED_KEY: Final = bytes(range(32))
"""The keyring of the encrypted codec under fuzz (a test key, never a real one)."""
NOW_MS: Final = 1_700_000_000_000
SELF: Final = ("127.0.0.1", 7000)
PEER: Final = ("127.0.0.1", 7001)


def _fixed_nonce(size: int) -> bytes:
    return bytes(size)


# ----- RESP -------------------------------------------------------------------------------------


def _parse_whole(data: bytes) -> tuple[list[list[bytes]], bool]:
    parser = RequestParser()
    commands = parser.parse(data)
    return commands + _drain(parser, len(data)), parser.failed


def _drain(parser: RequestParser, size: int) -> list[list[bytes]]:
    """What is still buffered; bounded, as every non-empty batch consumes bytes."""
    out: list[list[bytes]] = []
    for _ in range(size + 2):
        try:
            batch = parser.read_commands()
        except DecodeError:
            return out
        if not batch:
            return out
        out.extend(batch)
    raise AssertionError("the parser kept returning commands without consuming bytes")


def _parse_pieces(data: bytes, cuts: list[int]) -> tuple[list[list[bytes]], bool]:
    parser = RequestParser()
    commands: list[list[bytes]] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        commands.extend(parser.parse(data[start:cut]))
        start = cut
    return commands + _drain(parser, len(data)), parser.failed


def resp(data: bytes) -> None:
    """The parser never raises; one chunk and a byte-wise feed read the same commands."""
    whole, whole_failed = _parse_whole(data)
    assert sum(len(arg) for command in whole for arg in command) <= len(data)
    assert all(command for command in whole), "an empty command was handed out"
    cuts = list(range(1, len(data))) if len(data) <= 64 else [len(data) // 3, len(data) // 2]
    pieces, pieces_failed = _parse_pieces(data, cuts)
    assert (whole, whole_failed) == (pieces, pieces_failed), (whole, pieces)


def encode_command(command: list[bytes]) -> bytes:
    """A RESP multibulk request, as redis-py writes it."""
    out = [b"*%d\r\n" % len(command)]
    for arg in command:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


# ----- the gossip envelope ----------------------------------------------------------------------

PLAIN: Final = EnvelopeCodec("hearsay")
SEALED: Final = EnvelopeCodec("hearsay", Keyring(FIXED_KEY), nonce_source=_fixed_nonce)


def envelope(data: bytes) -> None:
    """``open`` returns a known type and a payload shorter than the datagram, or raises
    EnvelopeError with one of the documented drop reasons."""
    for codec in (PLAIN, SEALED):
        try:
            kind, payload = codec.open(data)
        except EnvelopeError as error:
            assert error.reason in DROP_REASONS, error.reason
            continue
        assert kind in set(MessageType)
        assert len(payload) < len(data)
        if codec is PLAIN:
            assert codec.seal(MessageType(kind), payload) == data


# ----- gossip message payloads ------------------------------------------------------------------

PAYLOAD_DECODERS: Final[dict[str, Callable[[bytes], object]]] = {
    "push": msg.decode_push,
    "exchange": msg.decode_exchange,
    "ack": msg.decode_ack,
    "digest": msg.decode_digest,
    "ae_groups": lambda p: msg.decode_ae_groups(p, 1024),
    "ae_buckets": lambda p: msg.decode_ae_buckets(p, 64, 16),
    "ae_keys": lambda p: msg.decode_ae_keys(p, 1024),
    "backoff": msg.decode_backoff,
}


def messages(data: bytes) -> None:
    """Every message decoder returns a value or raises a DecodeError (PayloadError); the C
    reader of a PUSH (``push_few``) declines it or reads what the Python decoder reads."""
    for decode in PAYLOAD_DECODERS.values():
        with contextlib.suppress(DecodeError):
            decode(data)
    fast = msg.push_few(data) or msg.push_few(data)  # (the second after learning a schema)
    if fast is None:
        return
    relay, ack, raw = msg.push_parts(data)  # (C read it: Python must take it too)
    assert (relay, ack) == fast[:2] and type(relay) is type(fast[0])
    assert len(raw) == len(fast[2])
    for wire, (key, item, full) in zip(raw, fast[2], strict=True):
        want_key, want, want_full = msg.decode_push_item_fast(wire)
        assert (want_key, want_full) == (key, full)
        assert type(want) is tuple and want[0] == item[0]
        assert msg.few_item_entry(want) == msg.few_item_entry(item)


def membership(data: bytes) -> None:
    """A membership table fed any payload answers or raises MembershipDecodeError."""
    table = Membership("fuzz-self", 1, SELF, rng=random.Random(0), now_ms=NOW_MS)
    try:
        wire = msg.unpack(data)
    except DecodeError:
        return
    with contextlib.suppress(MembershipDecodeError):
        table.handle(wire, NOW_MS)


def gossip_node(data: bytes) -> None:
    """A whole gossip node fed any datagram drops or handles it and never raises.

    The first byte picks the message type and the rest is its payload, sealed in a valid
    plaintext envelope, so the fuzzer reaches every message handler; the raw bytes are fed
    too (vignette messages and damaged envelopes).
    """
    rng = random.Random(0)
    table = Membership("fuzz-self", 1, SELF, LOCAL, rng, now_ms=NOW_MS)
    config = NodeConfig.from_preset(LOCAL)
    node = GossipNode(SELF, rng=rng, membership=table, config=config, now_ms=NOW_MS)
    node.join([PEER], NOW_MS)
    node.receive_datagram(data, PEER, NOW_MS)
    if data:
        kind = MessageType(1 + data[0] % len(MessageType))
        node.receive_datagram(PLAIN.seal(kind, data[1:]), PEER, NOW_MS + 1)
    node.handle_timer(NOW_MS + 2)
    node.datagrams_to_send()


# ----- entries (storage and gossip) -------------------------------------------------------------


def entry(data: bytes) -> None:
    """decode_entry gives an entry that re-encodes to something decoding to the same entry."""
    try:
        decoded = decode_entry(data)
    except DecodeError:
        return
    again = decode_entry(encode_entry(decoded))
    assert again == decoded, (again, decoded)
    # No amplification beyond the densest form: a bit run (width 0) holds 8 slots per byte.
    assert sum(len(vector) for _, vector in decoded.slices()) <= 8 * len(data)


# ----- vignette --------------------------------------------------------------------------------


def vignette_message(data: bytes) -> None:
    """vignette.decode gives a message that round-trips, or raises VignetteDecodeError."""
    try:
        message = vignette.decode(data)
    except vignette.VignetteDecodeError:
        return
    assert len(message.vector) <= len(data)
    if message.hops_left > 0:
        again = vignette.decode(
            vignette.encode(
                message.key, message.vector, full=bool(message.full), ttl=message.hops_left
            )
        )
        assert again.key == message.key
        assert again.vector == message.vector


# ----- rmbd ------------------------------------------------------------------------------------


class _RecordingTransport:
    """Stands for the UDP socket's sendto: keeps what the handler would send."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, object]] = []

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append((data, addr))


def rmbd(data: bytes) -> None:
    """An rmbd datagram is served, joined or ignored; the handler never raises."""
    database = Replica(NodeIdentity("fuzz-rmbd", 1))
    joined: list[str] = []
    protocol = RmbdProtocol(database, 64, 4, joined.append, lambda: None)
    transport = _RecordingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.datagram_received(data, PEER)
    assert len(joined) <= 1 and all(len(peer) <= 150 for peer in joined)
    assert len(transport.sent) <= 1


# ----- HTTP ------------------------------------------------------------------------------------

HTTP_STATUSES: Final = {
    "200 OK",
    "400 Bad Request",
    "404 Not Found",
    "405 Method Not Allowed",
}


def http(data: bytes) -> None:
    """Any request head routes to one of the known statuses; routing never raises."""
    server = HttpServer(lambda: {"status": "ok"}, lambda: "up 1\n")
    status, content_type, body = server._route(data)
    assert status in HTTP_STATUSES, status
    assert content_type and body


# ----- RESP command dispatch (not a decoder: the handlers behind the parser) --------------------


class _OneClientServer:
    """What INFO, CONFIG GET and CLIENT LIST/KILL ask of the server: one connected client."""

    def __init__(self) -> None:
        self.clients: list[ClientContext] = []
        self.closed: set[int] = set()

    def info_sections(self) -> dict[str, dict[str, object]]:
        return {"server": {"hearsay_version": "fuzz"}}

    def config_values(self) -> dict[str, str]:
        return {"maxmemory": "0"}

    def client_contexts(self) -> list[ClientContext]:
        return self.clients

    def close_clients(self, client_ids: set[int]) -> None:
        self.closed |= client_ids


SERVER: Final = _OneClientServer()
REGISTRY: Final = build_registry(SERVER)
COMMAND_NAMES: Final = sorted(spec.name.encode() for spec in REGISTRY.specs())
ARGS_MAX: Final = 12


def command_from_bytes(data: bytes) -> list[bytes]:
    """A command from fuzz bytes: the first byte picks a command, the rest (split on spaces)
    are its arguments, so mutations mostly stay valid commands with odd arguments."""
    if not data:
        return [b"PING"]
    return [COMMAND_NAMES[data[0] % len(COMMAND_NAMES)], *data[1:].split(b" ")[:ARGS_MAX]]


def dispatch(data: bytes) -> None:
    """Any command, run against a fresh database, gives a reply (an error reply for a client's
    mistake), which encodes; a handler never lets an exception out (issue 11 item 4).

    Run by ``make fuzz`` under libFuzzer's memory and time limits, and in ``make test`` only on
    the kept corpus: a sketch command with huge parameters may allocate or compute for long
    (issue 11 finding 10) until the size caps land.
    """
    database = Replica(NodeIdentity("fuzz-dispatch", 1))
    ctx = ClientContext(client_id=1, db=database, now_ms=NOW_MS)
    SERVER.clients[:] = [ctx]
    for command in (command_from_bytes(data), [b"PING"]):
        reply = REGISTRY.dispatch(ctx, command)
        if not isinstance(reply, WaitForAcks):
            assert encode(reply, 2)


TARGETS: Final[dict[str, Callable[[bytes], None]]] = {
    "resp": resp,
    "envelope": envelope,
    "messages": messages,
    "membership": membership,
    "gossip_node": gossip_node,
    "entry": entry,
    "vignette": vignette_message,
    "rmbd": rmbd,
    "http": http,
    "dispatch": dispatch,
}
"""Every target by the name of its corpus directory (tests/fuzz/corpus/<name>/)."""
