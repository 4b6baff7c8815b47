"""A PUSH of replicated writes read in C (``messages.push_few``) answers what the Python
decoder answers, or leaves the payload to it.

``push_few`` reads a PUSH whose every item is a few pairs of one slice straight from its bytes.
It may decline anything (None: the Python decoder then takes or refuses the payload), but what
it reads must be exactly what ``push_parts`` and ``decode_push_item_fast`` give: the same relay
(a bool stays a bool), ack id, keys, flags, few pairs, and the same entry behind each item.
Payloads come from the real encoder, then have bytes changed, cut, added or inserted.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import DecodeError
from hearsay.lattice import _sparse
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from tests.support.lattice_strategies import COUNTER, HLL, entries

CMS = Schema("cms", (100, 3), 300, True).intern()


@st.composite
def _few_entries(draw: st.DrawFn) -> Entry:
    """A replicated write's delta: a few pairs of one slice (now and then a bigger or another
    shape the C reader leaves to Python)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(entries())
    schema = draw(st.sampled_from([HLL, COUNTER, CMS]))
    origin = (
        draw(st.sampled_from(["0123456789abcdef", "a", "é-node", "~5"])) if schema.additive else ""
    )
    pairs = draw(
        st.dictionaries(
            st.integers(0, min(schema.size, 1 << 20) - 1),
            st.integers(1, (1 << 63) - 1) | st.integers(1, 300),
            min_size=1,
            max_size=draw(st.sampled_from([8, 8, 70])),
        )
    )
    expiry = draw(st.sampled_from([(0, 0), (5, 100), (1 << 40, 1 << 62)]))
    epoch = draw(st.sampled_from([0, 7, 1 << 40, (1 << 63) - 1]))
    return Entry(epoch, schema, expiry, {origin: MaxVector.from_items(pairs.items())})


_relays = st.sampled_from([True, False, 0, 1, 3, 255])
_acks = st.sampled_from([0, 1, 200, 1 << 20, (1 << 64) - 1])


@st.composite
def _pushes(draw: st.DrawFn) -> bytes:
    items = [
        msg.push_item(draw(st.binary(max_size=40)), draw(_few_entries()), draw(st.booleans()))
        for _ in range(draw(st.integers(0, 6)))
    ]
    return msg.join_items(msg.push_prefix(draw(_relays), draw(_acks)), items)


def _python_read(payload: bytes) -> tuple[Any, ...] | None:
    """What the Python decoder gives (None: it refuses the payload)."""
    try:
        relay, ack, raw = msg.push_parts(payload)
        return relay, ack, [msg.decode_push_item_fast(item) for item in raw]
    except DecodeError:
        return None


def _c_read(payload: bytes) -> Any:
    """``push_few`` once the schemas it meets are learned (one new schema per call)."""
    for _ in range(5):
        got = msg.push_few(payload)
        if got is not None:
            return got
    return None


def _same(c_read: Any, python_read: tuple[Any, ...] | None) -> None:
    assert python_read is not None, "C read a payload the Python decoder refuses"
    relay, ack, items = c_read
    want_relay, want_ack, want_items = python_read
    assert (relay, ack) == (want_relay, want_ack)
    assert type(relay) is type(want_relay)
    assert len(items) == len(want_items)
    for (key, item, full), (want_key, want_item, want_full) in zip(items, want_items, strict=True):
        assert (key, full) == (want_key, want_full)
        assert type(full) is bool
        assert type(item) is tuple, "C read an item Python reads whole"
        assert type(want_item) is tuple, "C read an item Python does not read as few pairs"
        few, wire = item
        assert few == want_item[0]
        assert type(few[1]) is Schema and few[1] is want_item[0][1]  # (interned)
        assert type(few[3]) is str and type(few[4]) is list and type(few[5]) is list
        assert type(wire) is bytes
        assert msg.few_item_entry(item) == msg.few_item_entry(want_item)


@given(_pushes())
def test_a_push_of_few_pairs_reads_as_the_python_decoder_reads_it(payload: bytes) -> None:
    got = _c_read(payload)
    want = _python_read(payload)
    if got is None:  # (declined: some item is not a few pairs or has a non-ASCII origin)
        assert want is None or any(
            type(item) is not tuple or not item[0][3].isascii() for _, item, _ in want[2]
        )
        return
    _same(got, want)


@st.composite
def _damaged(draw: st.DrawFn) -> bytes:
    payload = bytearray(draw(_pushes()))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(payload)))
        how = draw(st.sampled_from(["change", "cut", "add", "insert", "drop"]))
        byte = draw(st.integers(0, 255))
        if how == "change" and where < len(payload):
            payload[where] = byte
        elif how == "cut":
            del payload[where:]
        elif how == "add":
            payload.append(byte)
        elif how == "insert":
            payload.insert(where, byte)
        elif where < len(payload):
            del payload[where]
    return bytes(payload)


@given(_damaged())
@settings(max_examples=400)
def test_a_damaged_push_is_declined_or_read_as_the_python_decoder_reads_it(payload: bytes) -> None:
    got = _c_read(payload)
    if got is not None:
        _same(got, _python_read(payload))


def _push_of(wire_entry: list[Any], relay: object = True, ack: object = 3) -> bytes:
    return msgpack.packb([relay, ack, [[b"k", wire_entry, True]]], use_bin_type=True)


def _counter_wire(**forged: object) -> list[Any]:
    fields: dict[str, Any] = {
        "version": 1,
        "epoch": 5,
        "schema": ["counter", [], 1 << 32, True],
        "expiry": [0, 0],
        "origin": "n1",
        "width": 1,
        "indices": (7).to_bytes(4, "little"),
        "values": b"\x03",
    }
    fields.update(forged)
    one_slice = [fields["origin"], fields["width"], fields["indices"], fields["values"]]
    return [fields["version"], fields["epoch"], fields["schema"], fields["expiry"], [one_slice]]


def test_a_counter_write_is_read_in_c_after_its_schema_is_learned() -> None:
    payload = _push_of(_counter_wire(schema=["counter", [], 1 << 32, True]))
    first = msg.push_few(payload)
    assert first is None or first[2][0][1][0][1] is COUNTER  # (None: the schema was new)
    relay, ack, [(key, (few, wire), full)] = msg.push_few(payload) or pytest.fail("not read in C")
    assert (relay, ack, key, full) == (True, 3, b"k", True)
    assert few == (5, COUNTER, (0, 0), "n1", [7], [3])
    assert msg.few_item_entry((few, wire)) == Entry(
        5, COUNTER, (0, 0), {"n1": MaxVector.from_items([(7, 3)])}
    )


@pytest.mark.parametrize(
    ("relay", "ack", "forged"),
    [
        (True, 3, {"schema": ["counter", [], 1 << 32, 1]}),  # (additive not a bool)
        (True, 3, {"schema": ["nosuchkind", [], 5, False]}),  # (refused by Schema)
        (True, 3, {"schema": [b"counter", [], 1 << 32, True]}),  # (kind not a str)
        (True, 3, {"schema": ["counter", [], (1 << 32) + 1, True]}),
        (True, 3, {"schema": ["counter", [1.5], 1 << 32, True]}),
        (True, 3, {"origin": b"n1"}),  # (origin bin, not str)
        (True, 3, {"version": 2}),
        (True, 3, {"epoch": -1}),
        (True, 3, {"epoch": 1 << 63}),
        (True, 3, {"expiry": [1 << 63, 0]}),
        (True, 3, {"expiry": [0, 1 << 63]}),
        (True, 3, {"expiry": [0, -1]}),
        (-1, 3, {}),
        (256, 3, {}),
        (True, -3, {}),
        (True, 1.0, {}),
    ],
)
def test_what_python_refuses_is_never_read_in_c(
    relay: object, ack: object, forged: dict[str, object]
) -> None:
    payload = _push_of(_counter_wire(**forged), relay, ack)
    assert _python_read(payload) is None
    for _ in range(3):  # (a refused schema is never learned: declined every time)
        assert msg.push_few(payload) is None


def test_an_item_python_reads_whole_is_left_to_it() -> None:
    """A retired origin, a non-ASCII origin, a shared slice of an additive key: each read by
    the Python decoder (whole, or refused), never by C."""
    for forged in ({"origin": "~5"}, {"origin": "nœud"}, {"origin": ""}):
        payload = _push_of(_counter_wire(**forged))
        assert _c_read(payload) is None
    trailing = _push_of(_counter_wire()) + b"\x00"
    assert _c_read(trailing) is None
    assert _python_read(trailing) is None


def test_the_item_count_and_key_length_bounds_hold_in_c() -> None:
    """Past ``ITEMS_MAX`` items or ``KEY_BYTES_MAX`` bytes of a key, Python refuses the PUSH:
    C declines it (its bounds are arguments, so a small one stands in for the count)."""
    item = [b"k", _counter_wire(), True]
    three = msgpack.packb([True, 3, [item, item, item]], use_bin_type=True)
    assert _c_read(three) is not None
    table = msg._schemas_by_bytes  # (learned above)
    assert _sparse.push_few(three, table, msg.KEY_BYTES_MAX, 2) is None
    assert _sparse.push_few(three, table, msg.KEY_BYTES_MAX, 3) is not None
    long_key = [b"k" * (msg.KEY_BYTES_MAX + 1), _counter_wire(), True]
    payload = msgpack.packb([True, 3, [long_key]], use_bin_type=True)
    assert _python_read(payload) is None
    assert _c_read(payload) is None
