"""Structure-aware fuzzing of every decoder with Hypothesis: round trips and garbage.

Each test feeds a target of :mod:`tests.fuzz.targets` (the same checks the coverage-guided
fuzzer and the corpus replay run): valid encodings made from Hypothesis-drawn values, the same
encodings with bytes flipped, cut or spliced, and plain random bytes. A failure prints the
falsifying input; add it to tests/fuzz/corpus/<target>/ once fixed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol import vignette
from hearsay.protocol.envelope import MessageType
from hearsay.resp.parser import RequestParser
from hearsay.runtime.rmbd import PEER_REQUEST, REQUEST
from tests.fuzz import targets
from tests.support.lattice_strategies import RAW, entries

pytestmark = pytest.mark.fuzz


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with a few bytes flipped, cut, duplicated or inserted."""
    data = bytearray(draw(valid))
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 4))):
        op = rng.randrange(4)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[at:]
        elif op == 2:
            data[at:at] = data[at : at + rng.randrange(1, 9)]
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))
    return bytes(data)


def fuzzed(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(valid, mutated(valid), st.binary(max_size=300))


# ----- RESP --------------------------------------------------------------------------------------

commands = st.lists(st.lists(st.binary(max_size=20), min_size=1, max_size=5), max_size=4)


@given(commands)
def test_resp_round_trip(sent: list[list[bytes]]) -> None:
    data = b"".join(targets.encode_command(command) for command in sent)
    parser = RequestParser()
    assert parser.parse(data) + list(parser) == sent
    targets.resp(data)


@given(fuzzed(commands.map(lambda cs: b"".join(map(targets.encode_command, cs)))))
def test_resp_garbage(data: bytes) -> None:
    targets.resp(data)


inline = st.lists(st.sampled_from([b"SET", b"a b", b'"q\\x41"', b"'s'", b" ", b"\t", b"\r\n"]))


@given(fuzzed(inline.map(b"".join)))
def test_resp_inline_garbage(data: bytes) -> None:
    targets.resp(data)


# ----- envelope and messages ---------------------------------------------------------------------

payloads = st.binary(max_size=200)
kinds = st.sampled_from(list(MessageType))


@given(kinds, payloads)
def test_envelope_round_trip(kind: MessageType, payload: bytes) -> None:
    for codec in (targets.PLAIN, targets.SEALED):
        assert codec.open(codec.seal(kind, payload)) == (kind, payload)


@given(fuzzed(st.builds(targets.SEALED.seal, kinds, payloads)))
def test_envelope_garbage_sealed(data: bytes) -> None:
    targets.envelope(data)


@given(fuzzed(st.builds(targets.PLAIN.seal, kinds, payloads)))
def test_envelope_garbage_plain(data: bytes) -> None:
    targets.envelope(data)


keys = st.binary(max_size=12)


@given(keys, entries(), st.booleans(), st.integers(0, 2**64 - 1))
def test_push_round_trip(key: bytes, entry: Entry, full: bool, ack: int) -> None:
    payload = msg.join_items(msg.push_prefix(True, ack), [msg.push_item(key, entry, full)])
    relay, ack_seq, items = msg.decode_push(payload)
    assert (relay, ack_seq, items) == (True, ack, [(key, entry, full)])


@given(st.lists(st.tuples(keys, st.one_of(st.none(), entries())), max_size=4))
def test_exchange_round_trip(items: list[tuple[bytes, Entry | None]]) -> None:
    payload = msg.join_items(b"", [msg.exchange_item(k, e) for k, e in items])
    assert msg.decode_exchange(payload) == items


push_payloads = st.builds(
    lambda key, entry: msg.join_items(msg.push_prefix(True, 1), [msg.push_item(key, entry, True)]),
    keys,
    entries(),
)
exchange_payloads = st.builds(
    lambda key, entry: msg.join_items(b"", [msg.exchange_item(key, entry)]), keys, entries()
)
other_payloads = st.one_of(
    st.lists(st.integers(0, 2**64 - 1), max_size=5).map(msg.packb),
    st.lists(st.tuples(keys, st.integers(0, 2**64 - 1)), max_size=5).map(
        lambda items: msg.join_items(b"", [msg.hash_item(k, h) for k, h in items])
    ),
    st.builds(
        lambda r, b, h: msg.packb([r, b, h]), st.integers(0, 9), st.integers(0, 99), payloads
    ),
    st.integers(0, 70_000).map(lambda ms: msg.packb([ms])),
)


@given(fuzzed(st.one_of(push_payloads, exchange_payloads, other_payloads)))
def test_message_decoders_garbage(payload: bytes) -> None:
    targets.messages(payload)


@given(fuzzed(st.one_of(push_payloads, other_payloads)), kinds)
def test_gossip_node_garbage(payload: bytes, kind: MessageType) -> None:
    targets.gossip_node(bytes((kind - 1,)) + payload)


# Structure-aware: decode a real message, replace one value anywhere in it by another msgpack
# value (huge, negative, wrong type, nested), encode again. Reaches the checks behind the
# msgpack layer that random bytes rarely get past.

CORPUS = Path(__file__).parent / "corpus"
leaf_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1, -1]),
    st.text(max_size=8),
    st.sampled_from(["syn", "ack", "ack2", "alive", "left", "addr", "status", "hb"]),
    st.binary(max_size=8),
)
msgpack_values = st.recursive(
    leaf_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [path]
    if isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_paths(item, (*path, i)))
    elif isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*path, key)))
    return out


def _replace(value: Any, path: tuple[object, ...], new: object) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[head] = _replace(value[head], tuple(rest), new)  # type: ignore[index]
    return copy


@st.composite
def structurally_mutated(draw: st.DrawFn, target: str) -> bytes:
    seeds = sorted((CORPUS / target).glob("*"))
    value = msgpack.unpackb(draw(st.sampled_from(seeds)).read_bytes(), strict_map_key=False)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        value = _replace(value, path, draw(msgpack_values))
    return bytes(msgpack.packb(value))


@given(st.one_of(structurally_mutated("membership"), st.binary(max_size=300)))
def test_membership_garbage(payload: bytes) -> None:
    targets.membership(payload)


@given(structurally_mutated("messages"))
def test_message_decoders_structured(payload: bytes) -> None:
    targets.messages(payload)


@given(structurally_mutated("entry"))
def test_entry_structured(data: bytes) -> None:
    targets.entry(data)


# ----- entries -----------------------------------------------------------------------------------


@given(entries())
def test_entry_round_trip(entry: Entry) -> None:
    assert decode_entry(encode_entry(entry)) == entry


@given(fuzzed(entries().map(encode_entry)))
def test_entry_garbage(data: bytes) -> None:
    targets.entry(data)


bit_entries = st.builds(
    lambda ones, offset: Entry(
        0, RAW, slices={"": MaxVector.from_items((offset + i, 1) for i in ones)}
    ),
    st.sets(st.integers(0, 4000), min_size=1, max_size=1500),
    st.sampled_from([0, 5, 4096, 2**32 - 4001]),
)


@given(fuzzed(bit_entries.map(encode_entry)))
def test_bit_run_entry_garbage(data: bytes) -> None:
    """Entries whose slices travel as bit runs (values all 1), mutated."""
    targets.entry(data)


# ----- vignette ----------------------------------------------------------------------------------

vignette_keys = st.text(min_size=1, max_size=20)
small_vectors = st.dictionaries(st.integers(0, 2**32 - 1), st.integers(1, 2**63 - 1), max_size=8)


@given(vignette_keys, small_vectors, st.booleans(), st.integers(1, 1 << 16))
def test_vignette_round_trip(key: str, pairs: dict[int, int], full: bool, ttl: int) -> None:
    vector = MaxVector.from_items(pairs.items())
    decoded = vignette.decode(vignette.encode(key, vector, full=full, ttl=ttl))
    assert (decoded.key, decoded.vector, decoded.full, decoded.ttl) == (key, vector, full, ttl)


@given(
    fuzzed(
        st.builds(
            lambda k, p: vignette.encode(k, MaxVector.from_items(p.items()), full=True),
            vignette_keys,
            small_vectors,
        )
    )
)
def test_vignette_garbage(data: bytes) -> None:
    targets.vignette_message(data)


# ----- rmbd and HTTP ----------------------------------------------------------------------------

rmbd_datagrams = st.one_of(
    st.builds(REQUEST.pack, st.sampled_from([0, 1, 2, 4]), st.binary(max_size=140)),
    st.builds(PEER_REQUEST.pack, st.just(3), st.binary(max_size=140), st.integers(0, 65535)),
)


@given(fuzzed(rmbd_datagrams))
def test_rmbd_garbage(data: bytes) -> None:
    targets.rmbd(data)


http_heads = st.builds(
    lambda method, path, version: b"%s %s %s\r\nHost: x\r\n\r\n" % (method, path, version),
    st.sampled_from([b"GET", b"HEAD", b"POST", b""]),
    st.sampled_from([b"/", b"/health", b"/status", b"/metrics?x", b"/nope", b""]),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b""]),
)


@given(fuzzed(http_heads))
def test_http_garbage(data: bytes) -> None:
    targets.http(data)
