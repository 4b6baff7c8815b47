"""PUSH and EXCHANGE items carry a few packed pairs as they lie in memory.

``messages.entry_wire`` skips the canonical encoder's choice of form for slices of a few
sparse pairs (a replicated write). Whatever it picks must decode, through the strict PUSH
decoder, to exactly the entry the canonical encoding decodes to.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hearsay.base.errors import DecodeError
from hearsay.lattice.codec import (
    FEW_PAIRS_MAX,
    entry_from_wire,
    entry_to_wire,
    few_pairs_from_wire,
)
from hearsay.lattice.entry import Entry, Expiry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from tests.support.lattice_strategies import COUNTER, HLL, entries, indices, values

few_pairs = st.dictionaries(indices, values, min_size=1, max_size=FEW_PAIRS_MAX + 1)


@st.composite
def _deltas(draw: st.DrawFn) -> Entry:
    """Mostly a few pairs (a write's delta), sometimes anything an entry can be."""
    if draw(st.booleans()):
        return draw(entries())
    pairs = draw(few_pairs)
    return Entry(
        draw(st.integers(0, 3)),
        HLL,
        (0, 0),
        {"": MaxVector.from_items((i % HLL.size, v) for i, v in pairs.items())},
    )


@given(_deltas(), st.booleans(), st.sampled_from([True, False, 0, 3]))
def test_a_push_item_decodes_to_the_entry_the_canonical_form_decodes_to(
    delta: Entry, full: bool, relay: bool | int
) -> None:
    payload = msg.join_items(msg.push_prefix(relay, 5), [msg.push_item(b"k", delta, full)])
    got_relay, ack, items = msg.decode_push(payload)
    assert (got_relay, ack) == (relay, 5)
    assert type(got_relay) is type(relay)
    ((key, decoded, got_full),) = items
    assert (key, got_full) == (b"k", full)
    assert decoded == entry_from_wire(entry_to_wire(delta)) == delta
    exchanged = msg.decode_exchange(msg.join_items(b"", [msg.exchange_item(b"k", delta)]))
    assert exchanged == [(b"k", delta)]


def test_a_few_sparse_pairs_go_as_their_packed_bytes() -> None:
    delta = Entry(0, HLL, (0, 0), {"": MaxVector.from_items([(12768, 2)])})
    assert msg.entry_wire(delta)[4] == [["", 1, (12768).to_bytes(4, "little"), b"\x02"]]
    many = Entry(0, HLL, (0, 0), {"": MaxVector.from_items((i, 1) for i in range(40))})
    assert msg.entry_wire(many) == entry_to_wire(many)  # (a bit run: the canonical choice)


def _few_delta(
    epoch: int, schema: Schema, expiry: Expiry, origin: str, pairs: dict[int, int]
) -> Entry:
    return Entry(epoch, schema, expiry, {origin: MaxVector.from_items(pairs.items())})


_FORGERIES: list[tuple[str, object]] = [
    ("version", 2),
    ("version", True),
    ("epoch", -1),
    ("epoch", 1.0),
    ("epoch", True),
    ("epoch", 1 << 63),
    ("expiry", [0]),
    ("expiry", [0, -1]),
    ("expiry", [0, 1.5]),
    ("expiry", [0.0, 0]),
    ("expiry", [True, 0]),
    ("expiry", (0, 0)),
    ("schema", ["hll", [14], 16384.0, False]),
    ("schema", ["hll", [14], 16384, 0]),
    ("schema", ["hll", [True], 16384, False]),
    ("schema", None),
    ("schema", ["counter", [], 1 << 32, True]),  # (additive: the shared origin is refused)
    ("origin", "~x"),
    ("origin", "~123"),
    ("origin", "o" * 65),
    ("origin", b""),
    ("width", 3),
    ("width", True),
    ("width", 2),
    ("width", 0),
    ("indices", "reversed"),
    ("indices", "duplicated"),
    ("indices", "past the size"),
    ("indices", "short"),
    ("values", "a zero"),
    ("values", "short"),
    ("slices", "two"),
    ("slices", "none"),
]


def _forge(wire: list[Any], what: str, how: object) -> list[Any]:
    """A copy of an entry's wire form (one sparse slice) with one field forged."""
    forged = [*wire[:4], [list(wire[4][0])]]
    version, epoch, schema, expiry, slices = range(5)
    the_slice = forged[slices][0]
    indices = list(struct.unpack(f"<{len(the_slice[2]) // 4}I", the_slice[2]))
    if what in ("version", "epoch", "schema", "expiry"):
        forged[{"version": version, "epoch": epoch, "schema": schema, "expiry": expiry}[what]] = how
    elif what in ("origin", "width"):
        the_slice[0 if what == "origin" else 1] = how
    elif what == "indices":
        if how == "reversed":
            indices.reverse()
        elif how == "duplicated":
            indices = [indices[0], *indices[:-1]]
        elif how == "past the size":
            indices[-1] = 16384
        the_slice[2] = struct.pack(f"<{len(indices)}I", *indices)[: -1 if how == "short" else None]
    elif what == "values":
        raw = the_slice[3]
        the_slice[3] = b"\x00" + raw[1:] if how == "a zero" else raw[:-1]
    elif how == "two":
        forged[slices] = [the_slice, list(the_slice)]
    else:
        forged[slices] = []
    return forged


_few_pair_maps = st.dictionaries(
    st.integers(0, HLL.size - 1), st.integers(1, 60), min_size=1, max_size=9
) | st.dictionaries(st.integers(0, HLL.size - 1), st.integers(1, 60), min_size=50, max_size=70)
"""A write's few pairs, or about as many as the short read takes (64) and a few more."""


@given(_few_pair_maps, st.integers(0, 3), st.sampled_from([(0, 0), (5, 100)]))
def test_a_few_pairs_read_holds_what_the_entry_decoder_holds(
    pairs: dict[int, int], epoch: int, expiry: Expiry
) -> None:
    """The receiver's short read of a replicated write gives exactly the entry the strict
    decoder gives."""
    _check_few_pairs_read(msg.entry_wire(_few_delta(epoch, HLL, expiry, "", pairs)), forged=False)


@pytest.mark.parametrize("forgery", _FORGERIES, ids=[f"{w}={h!r}"[:40] for w, h in _FORGERIES])
@settings(max_examples=15)
@given(_few_pair_maps)
def test_a_few_pairs_read_refuses_what_the_entry_decoder_refuses(
    forgery: tuple[str, object], pairs: dict[int, int]
) -> None:
    """Each field forged: nothing where the strict decoder refuses the wire, else its entry."""
    wire = msg.entry_wire(_few_delta(1, HLL, (0, 0), "", pairs))
    assume(type(wire[4][0][2]) is bytes)  # (the sparse form: a run of ones goes as a bit run)
    wire = _forge(wire, *forgery)
    _check_few_pairs_read(wire, forged=True)


def _check_few_pairs_read(wire: list[Any], *, forged: bool) -> None:
    few = few_pairs_from_wire(wire)
    try:
        decoded = entry_from_wire(wire)
    except DecodeError:
        assert few is None
        return
    if few is None:  # (forged, too many pairs, or not the sparse form: dense is smaller)
        sparse = type(wire[4][0][2]) is bytes if len(wire[4]) == 1 else False
        assert forged or len(decoded.vector) > FEW_PAIRS_MAX or not sparse
        return
    got_epoch, schema, got_expiry, origin, indices, values = few
    assert type(indices) is list and type(values) is list  # (the lattice's C path takes lists)
    pairs = dict(zip(indices, values, strict=True))
    assert _few_delta(got_epoch, schema, got_expiry, origin, pairs) == decoded


def test_a_few_pairs_read_takes_a_named_origin_of_an_additive_key() -> None:
    delta = _few_delta(2, COUNTER, (0, 0), "node-a", {7: 3})
    few = few_pairs_from_wire(msg.entry_wire(delta))
    assert few == (2, COUNTER, (0, 0), "node-a", [7], [3])
    retired = _few_delta(2, COUNTER, (0, 0), "~5", {7: 3})
    assert few_pairs_from_wire(msg.entry_wire(retired)) is None


@st.composite
def _few_pair_entries(draw: st.DrawFn) -> Entry:
    """Entries of few-pair slices with every msgpack header width the C encoder writes: origins
    of up to 300 characters (fixstr, str8, str16), up to 20 slices (fixarray, array16), overlays
    of pairs written after the bytes, and now and then a slice too big for the few-pairs form."""
    additive = draw(st.booleans())
    count = draw(st.integers(0, 20)) if additive else 1
    origins = draw(
        st.lists(
            st.text(min_size=1, max_size=300).filter(lambda o: o != ""),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    slices: dict[str, MaxVector] = {}
    for origin in origins if additive else [""]:
        pairs = draw(st.dictionaries(indices, values, max_size=FEW_PAIRS_MAX + 2))
        vector = MaxVector.from_items(pairs.items())
        more = draw(st.dictionaries(indices, values, max_size=3))
        if more:
            vector.merge(MaxVector.from_items(more.items()))
        slices[origin] = vector
    schema = COUNTER if additive else HLL
    if not additive:
        slices = {"": MaxVector.from_items((i % HLL.size, v) for i, v in slices[""].items())}
    epoch = draw(st.integers(0, 1 << 40))
    expiry = draw(st.sampled_from([(0, 0), (5, 100), (1 << 40, 1 << 41)]))
    return Entry(epoch, schema, expiry, slices)


@given(
    st.one_of(_few_pair_entries(), entries()),
    st.binary(min_size=1, max_size=300),
    st.booleans(),
)
@settings(max_examples=300)
def test_a_push_item_is_the_packed_wire_form(entry: Entry, key: bytes, full: bool) -> None:
    """The C encoder writes exactly what msgpack writes of ``[key, entry_wire(entry), full]``
    (the same bytes, so every receiver's decoder and the tests above hold for it)."""
    assert msg.push_item(key, entry, full) == msg.packb([key, msg.entry_wire(entry), full])


@given(st.one_of(_few_pair_entries(), entries()))
def test_packed_slices_are_the_sparse_slices_in_origin_order(entry: Entry) -> None:
    slices = [(origin, vector.packed_pairs()) for origin, vector in entry.slices()]
    expected = None if any(packed is None for _, packed in slices) else slices
    assert entry.packed_slices() == expected
    counted = entry.sparse_pair_count()
    assert counted is None or counted == entry.pair_count()
    assert (counted is None) == any(vector.is_dense for _, vector in entry.slices())


def test_the_cached_wire_head_follows_the_schema_epoch_and_expiry() -> None:
    for epoch, schema, expiry in [(0, HLL, (0, 0)), (1, HLL, (0, 0)), (1, COUNTER, (0, 0))]:
        origin = "o" if schema.additive else ""
        for expiry_now in (expiry, (3, 9)):
            delta = _few_delta(epoch, schema, expiry_now, origin, {7: 3})
            for _ in range(2):  # (the second from the cache)
                item = msg.push_item(b"k", delta, True)
                assert item == msg.packb([b"k", msg.entry_wire(delta), True])
