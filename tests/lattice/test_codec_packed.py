"""The codec's byte path for packed pairs against its numpy reference.

A sparse slice is encoded straight from its packed bytes (the sparse form cut from them, the
runs built in Python for a few pairs); the form chosen and every byte must be what the numpy
reference (``_pairs_to_wire``, from the vector's pairs) gives, for every mix of widths, spans,
all-one values and pair counts on both sides of the Python/numpy cut.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.packing import packb
from hearsay.lattice import _sparse
from hearsay.lattice.codec import (
    _PACKED_RUN_PAIRS_MAX,
    _pairs_to_wire,
    _slice_to_wire,
    decode_entry,
    encode_entry,
    entry_to_wire,
    wire_head,
)
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from tests.support.lattice_strategies import entries

RAW = Schema("vector").intern()
COUNTER_OF = Schema("counter", (), 2**32, True).intern()

_VALUE = st.one_of(
    st.just(1), st.just(1), st.integers(1, 255), st.integers(256, 2**16), st.integers(1, 2**63 - 1)
)
_INDEX = st.one_of(
    st.integers(0, 64),  # tight: dense runs and bit runs
    st.integers(0, 4000),
    st.integers(0, 2**32 - 1),  # far apart: the sparse form
)


@st.composite
def packed_vectors(draw: st.DrawFn) -> MaxVector:
    """A sparse vector (dense ones are another path) of 1 to ~2x the Python cut's pairs."""
    base = draw(st.integers(0, 2**32 - 200_000))
    ones = draw(st.booleans())
    pairs = draw(
        st.dictionaries(
            _INDEX.map(lambda i: (base + i) % 2**32),
            st.just(1) if ones else _VALUE,
            min_size=1,
            max_size=2 * _PACKED_RUN_PAIRS_MAX + 2,
        )
    )
    vector = MaxVector.from_pairs(list(pairs), list(pairs.values()))
    assert vector.packed_pairs() is not None or vector.is_dense
    return vector


@st.composite
def vectors_at_a_cut(draw: st.DrawFn) -> MaxVector:
    """Pairs whose span sits at one of the form choices' ties (run vs pairs, bits vs pairs)."""
    count = draw(st.integers(2, 2 * _PACKED_RUN_PAIRS_MAX))
    width = draw(st.sampled_from([1, 2, 4, 8]))
    bits = width == 1 and draw(st.booleans())
    span = 40 * count - 4 + draw(st.integers(-6, 6)) if bits else -(-count * (4 + width) // width)
    span = max(count, span + draw(st.integers(-2, 2)))
    first = draw(st.integers(0, 2**20))
    inner = (
        draw(st.sets(st.integers(1, span - 2), min_size=count - 2, max_size=count - 2))
        if span > 2
        else set()
    )
    indices = sorted({first, first + span - 1} | {first + i for i in inner})
    top = 1 if bits else (1 << (8 * width)) - 1
    low = 1 if bits else max(1, 1 << (8 * width - 8))
    values = [draw(st.integers(low, min(top, 2**63 - 1))) for _ in indices]
    return MaxVector.from_pairs(indices, values)


@given(st.one_of(packed_vectors(), vectors_at_a_cut()), st.sampled_from(["", "a1b2c3d4e5f6"]))
def test_packed_pairs_encode_as_the_numpy_reference(vector: MaxVector, origin: str) -> None:
    expected = _pairs_to_wire(origin, vector.width, *vector.pairs())
    assert _slice_to_wire(origin, vector) == expected


@given(packed_vectors())
def test_packed_pairs_round_trip(vector: MaxVector) -> None:
    entry = Entry(3, RAW, slices={"": vector})
    assert decode_entry(encode_entry(entry)) == entry


def test_each_form_is_reached() -> None:
    """The three forms, each from a few packed pairs (the commonest flush)."""
    sparse = MaxVector.from_pairs([5, 2**31], [7, 9])
    dense = MaxVector.from_pairs([10, 11], [300, 2])
    bits = MaxVector.from_pairs([16, 17, 19], [1, 1, 1])
    indices = (5).to_bytes(4, "little") + (2**31).to_bytes(4, "little")
    assert _slice_to_wire("", sparse) == ["", 1, indices, b"\x07\x09"]
    assert _slice_to_wire("", dense) == ["", 2, 10, (300).to_bytes(2, "little") + b"\x02\x00"]
    assert _slice_to_wire("", bits) == ["", 0, 16, bytes([0b1011])]


_ORIGINS = st.sampled_from(["a", "a1b2c3d4e5f6a7b8", "o" * 31, "p" * 32, "q" * 300, "é"])


@st.composite
def sliced_entries(draw: st.DrawFn) -> Entry:
    """Additive entries of up to 20 sparse slices (every form, origins of every str header)."""
    origins = draw(st.lists(_ORIGINS, min_size=1, max_size=20, unique=True))
    vectors = [draw(st.one_of(packed_vectors(), vectors_at_a_cut())) for _ in origins]
    expiry = draw(st.sampled_from([(0, 0), (5, 1 << 40)]))
    slices = dict(zip(origins, vectors, strict=True))
    return Entry(draw(st.integers(0, 2**40)), COUNTER_OF, expiry, slices)


@given(
    st.one_of(
        sliced_entries(), entries(), packed_vectors().map(lambda v: Entry(1, RAW, slices={"": v}))
    )
)
def test_the_c_encoder_writes_the_canonical_bytes(entry: Entry) -> None:
    """``encode_entry`` (in C for sparse slices) is msgpack's bytes of ``entry_to_wire``, the
    Python reference, byte for byte; whatever it cannot take it leaves to that reference."""
    assert encode_entry(entry) == packb(entry_to_wire(entry))
    slices = entry.packed_slices()
    if slices:  # (every sparse slice is one it takes)
        assert _sparse.entry_bytes(wire_head(entry), slices) == packb(entry_to_wire(entry))


def test_the_c_encoder_writes_every_integer_width_of_a_run_start() -> None:
    """A run's start at each edge of msgpack's integer forms (fixint, uint8/16/32)."""
    for start in (0, 127, 128, 255, 256, 65535, 65536, 2**32 - 9, 2**32 - 4):
        for pairs in ({start: 300, start + 1: 2}, {start: 1, start + 1: 1, start + 3: 1}):
            entry = Entry(1, RAW, slices={"": MaxVector.from_items(pairs.items())})
            assert encode_entry(entry) == packb(entry_to_wire(entry)), start


def test_the_c_encoder_leaves_empty_or_malformed_slices() -> None:
    head = wire_head(Entry(1, RAW, slices={"": MaxVector.from_pairs([1], [2])}))
    for packed in (b"", b"\x01", b"\x03" + bytes(7), b"\x01" + bytes(4), b"\x01" + bytes(6)):
        assert _sparse.entry_bytes(head, [("", packed)]) is None, packed
    descending = b"\x01" + (9).to_bytes(4, "little") + (2).to_bytes(4, "little") + b"\x01\x01"
    assert _sparse.entry_bytes(head, [("", descending)]) is None
