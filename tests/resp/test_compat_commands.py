"""MGET, OBJECT, DUMP/RESTORE and BF.SCANDUMP/LOADCHUNK through the node's command table.

The replies Redis also gives are checked against a real redis-server in
``test_compat_redis.py``; here: every family round-trips, corrupt payloads are refused and
change nothing, and the unsupported-command texts.
"""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.engine.dump import MAGIC, PAYLOAD_VERSION, encode_payload
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.resp import messages
from hearsay.resp.replies import OK, ErrorReply
from hearsay.resp.server_commands import build_registry
from tests.support.command_client import NOW_MS, Client, NoServer

# One key of every family, made by its own commands.
FAMILIES: dict[str, list[tuple[str, ...]]] = {
    "hll": [("PFADD", "k", "a", "b", "c")],
    "hll12": [("HEARSAY.PFRESERVE", "k", "12"), ("PFADD", "k", "x")],
    "counter": [("INCRBY", "k", "41"), ("DECR", "k")],
    "bloom": [("BF.RESERVE", "k", "0.01", "1000"), ("BF.MADD", "k", "x", "y")],
    "cms": [("CMS.INITBYDIM", "k", "50", "4"), ("CMS.INCRBY", "k", "x", "7")],
    "vector": [("VMAX", "k", "3", "9", "1000", "2")],
    "topk": [("TOPK.RESERVE", "k", "3"), ("TOPK.ADD", "k", "x", "y", "x", "z", "w")],
    "tdigest": [("TDIGEST.CREATE", "k"), ("TDIGEST.ADD", "k", "1.5", "2.5", "100", "-3")],
    "cuckoo": [("CF.RESERVE", "k", "100"), ("CF.ADD", "k", "x"), ("CF.ADD", "k", "y"),
               ("CF.DEL", "k", "y")],
    "bloom windowed": [("BF.RESERVE", "k", "0.01", "100", "WINDOW", "60"), ("BF.ADD", "k", "x")],
    "hll windowed": [("HEARSAY.PFRESERVE", "k", "14", "WINDOW", "60"), ("PFADD", "k", "x")],
}  # fmt: skip


def _filled(family: str, node_id: str = "0123456789abcdef") -> Client:
    client = Client(node_id)
    for call in FAMILIES[family]:
        client.ok(*call)
    return client


def _entry_state(client: Client, key: bytes) -> tuple[object, ...]:
    entry = client.db.get(key, NOW_MS)
    assert entry is not None
    return (entry.schema, sorted((o, v.items()) for o, v in entry.slices()))


def test_mget_answers_nil_for_missing_and_non_string_keys() -> None:
    client = Client()
    client.ok("PFADD", "h", "a")
    client.ok("INCRBY", "n", "5")
    client.ok("BF.ADD", "b", "x")
    client.ok("HEARSAY.PFRESERVE", "h12", "12")
    assert client("MGET", "n", "nokey", "b", "h12", "n") == [b"5", None, None, None, b"5"]
    assert client("MGET", "h") == [client("GET", "h")]
    assert client("MGET") == messages.wrong_number_of_args("mget")


def test_object_subcommands() -> None:
    client = Client()
    client.ok("PFADD", "h", "a")
    client.ok("INCR", "n")
    assert client("OBJECT", "ENCODING", "h") == b"raw"
    assert client("OBJECT", "encoding", "n") == b"int"
    assert client("OBJECT", "ENCODING", "nokey") is None
    assert client("OBJECT", "REFCOUNT", "h") == 1
    assert client("OBJECT", "REFCOUNT", "nokey") is None
    assert client("OBJECT", "FREQ", "h") == messages.OBJECT_FREQ_NOT_TRACKED
    assert client("OBJECT", "IDLETIME", "h") == messages.OBJECT_IDLETIME_NOT_TRACKED
    assert client("OBJECT", "IDLETIME", "nokey") is None
    help_lines = client("OBJECT", "HELP")
    assert isinstance(help_lines, list) and "ENCODING <key>" in help_lines
    assert client("OBJECT", "NOPE", "h") == "ERR unknown subcommand 'NOPE'. Try OBJECT HELP."


def test_dump_restore_round_trips_every_family() -> None:
    for family in FAMILIES:
        source = _filled(family)
        payload = source("DUMP", "k")
        assert isinstance(payload, bytes) and payload.startswith(MAGIC), family
        # Another node (another origin) restores it: the same schema and slices, same reads.
        target = Client("fedcba9876543210")
        assert target("RESTORE", "k", "0", payload) == "OK"
        assert _entry_state(target, b"k") == _entry_state(source, b"k"), family
        assert target("TYPE", "k") == source("TYPE", "k")
        assert target("PTTL", "k") == -1
    assert Client()("DUMP", "nokey") is None


def test_restore_ttl_replace_busykey_and_absttl() -> None:
    client = _filled("counter")
    payload = client("DUMP", "k")
    assert client("RESTORE", "k", "0", payload) == messages.BUSYKEY
    assert client("RESTORE", "k", "0", b"garbage") == messages.BUSYKEY  # key checked first
    client.ok("INCRBY", "k", "100")
    assert client("RESTORE", "k", "5000", payload, "REPLACE") == "OK"
    assert client("GET", "k") == b"40"  # replaced, not merged: the +100 is gone
    assert client("PTTL", "k") == 5000
    assert client("RESTORE", "a", str(NOW_MS + 7000), payload, "ABSTTL") == "OK"
    assert client("PTTL", "a") == 7000
    assert client("RESTORE", "b", str(NOW_MS - 1), payload, "ABSTTL") == "OK"
    assert client("EXISTS", "b") == 0  # a deadline already past: nothing stays, as Redis
    assert client("RESTORE", "c", "0", payload, "IDLETIME", "5", "FREQ", "3") == "OK"
    assert client("RESTORE", "d", "-1", payload) == messages.RESTORE_INVALID_TTL
    assert client("RESTORE", "d", "x", payload) == messages.NOT_AN_INTEGER
    assert client("RESTORE", "d", "0", payload, "BOGUS") == messages.SYNTAX_ERROR
    assert client("RESTORE", "d", "0", payload, "FREQ", "256") == messages.RESTORE_INVALID_FREQ
    assert client("RESTORE", "d", "0", payload, "IDLETIME", "-1") == (
        messages.RESTORE_INVALID_IDLETIME
    )
    assert client("EXISTS", "d") == 0


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_restore_refuses_corrupt_and_unknown_version_payloads() -> None:
    client = _filled("hll")
    payload = client("DUMP", "k")
    assert isinstance(payload, bytes)
    body = payload[:-4]
    bad = [
        b"",
        b"HSDP",
        payload[:-1],
        payload[:-4] + bytes(4),
        b"XXXX" + payload[4:],
        _with_crc(MAGIC + bytes([PAYLOAD_VERSION + 1]) + body[5:]),
    ]
    for each in bad:
        assert client("RESTORE", "new", "0", each) == messages.DUMP_PAYLOAD_WRONG, each
    # A right checksum over a body that is not an entry: Redis's "Bad data format".
    assert client("RESTORE", "new", "0", _with_crc(body[:5] + b"\xc1")) == messages.DUMP_BAD_DATA
    assert client("EXISTS", "new") == 0


def test_restore_refuses_a_checked_payload_of_an_unknown_family_or_shape() -> None:
    client = Client()
    shapes = [(Schema("nosuch"), ""), (Schema("hll", (30,), 5), "")]
    for schema, origin in shapes:
        entry = Entry(0, schema, slices={origin: MaxVector.from_pairs([1], [5])})
        assert client("RESTORE", "k", "0", encode_payload(entry)) == messages.DUMP_BAD_DATA
        assert client("EXISTS", "k") == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_no_single_byte_change_is_restored(position: int, flip: int) -> None:
    """A payload with any byte changed is refused whole (the CRC), and changes nothing."""
    client = _filled("bloom")
    payload = client("DUMP", "k")
    assert isinstance(payload, bytes)
    damaged = bytearray(payload)
    damaged[position % len(damaged)] ^= flip or 1
    reply = client("RESTORE", "new", "0", bytes(damaged))
    assert isinstance(reply, ErrorReply)
    assert client("EXISTS", "new") == 0


def test_bf_scandump_loadchunk_round_trip() -> None:
    source = Client()
    source.ok("BF.RESERVE", "b", "0.0001", "200000")  # bigger than one chunk
    for start in range(0, 30_000, 1_000):
        source.ok("BF.MADD", "b", *[f"x{i}" for i in range(start, start + 1_000)])
    target = Client("fedcba9876543210")
    cursor, chunks = 0, 0
    while True:  # bounded: the dump has a few chunks
        step = source("BF.SCANDUMP", "b", cursor)
        assert isinstance(step, list)
        cursor, data = step
        if cursor == 0:
            assert data == b""
            break
        assert target("BF.LOADCHUNK", "b", cursor, data) == "OK"
        chunks += 1
        assert chunks < 100
    assert chunks > 1
    assert _entry_state(target, b"b") == _entry_state(source, b"b")
    assert target("BF.EXISTS", "b", "x29999") == 1


def test_bf_scandump_loadchunk_errors() -> None:
    client = _filled("hll")
    assert client("BF.SCANDUMP", "nokey", "0") == messages.BF_NOT_FOUND
    assert client("BF.SCANDUMP", "k", "0") == messages.WRONGTYPE
    assert client("BF.SCANDUMP", "k", "x") == messages.NOT_AN_INTEGER
    hll_payload = client("DUMP", "k")
    assert isinstance(hll_payload, bytes)
    reply = client("BF.LOADCHUNK", "b", "1", hll_payload)
    assert isinstance(reply, ErrorReply) and reply.startswith("ERR received bad data")
    reply = client("BF.LOADCHUNK", "b", "1", b"junk")
    assert isinstance(reply, ErrorReply) and reply.startswith("ERR received bad data")
    assert client("EXISTS", "b") == 0


def test_unsupported_commands_name_hearsay_and_the_alternative() -> None:
    client = Client()
    assert client("SADD", "s", "a") == messages.not_supported("SADD")
    assert "PFADD" in messages.not_supported("SADD")
    assert client("save") == messages.not_supported("SAVE")
    assert client("CONFIG", "REWRITE") == (
        "ERR command 'CONFIG|REWRITE' is not supported by hearsay"
    )
    assert client("NOSUCH").startswith("ERR unknown command 'NOSUCH'")  # type: ignore[union-attr]


def test_memory_purge_asks_the_server_to_release_free_memory() -> None:
    """MEMORY PURGE (Redis asks jemalloc to purge; a node calls glibc's malloc_trim)."""
    server = NoServer()
    registry = build_registry(server)
    ctx = Client().ctx
    assert registry.dispatch(ctx, [b"MEMORY", b"PURGE"]) == OK
    assert registry.dispatch(ctx, [b"memory", b"purge"]) == OK
    assert server.releases == 2
    assert isinstance(registry.dispatch(ctx, [b"MEMORY", b"PURGE", b"now"]), ErrorReply)
    assert server.releases == 2
