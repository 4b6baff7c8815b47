"""Hypothesis strategies for lattice values, shared by the lattice tests."""

from __future__ import annotations

from hypothesis import strategies as st

from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import VALUE_MAX, MaxVector

# Small index ranges make vectors overlap (and go dense); a few huge indices test the bounds.
indices = st.one_of(
    st.integers(0, 40), st.integers(0, 3000), st.sampled_from([2**32 - 1, 2**24, 2**24 - 1])
)
values = st.one_of(st.integers(1, 40), st.integers(1, VALUE_MAX), st.just(VALUE_MAX))

pair_maps = st.dictionaries(indices, values, max_size=60)
# Many pairs in a short range: exercises the dense representation.
dense_maps = st.dictionaries(st.integers(0, 300), st.integers(1, 60), min_size=100, max_size=300)


@st.composite
def vectors(draw: st.DrawFn) -> MaxVector:
    pairs = draw(st.one_of(pair_maps, pair_maps, dense_maps))
    return MaxVector.from_items(pairs.items())


RAW = Schema("vector").intern()
HLL = Schema("hll", (14,), 16384).intern()
COUNTER = Schema("counter", (), 2**32, True).intern()
SCHEMAS = [None, RAW, HLL, COUNTER]


@st.composite
def entries(draw: st.DrawFn, schemas: list[Schema | None] | None = None) -> Entry:
    """Entries over a few epochs and schemas, so that merges meet every case of the order."""
    schema = draw(st.sampled_from(schemas or SCHEMAS))
    epoch = draw(st.integers(0, 3))
    expiry = draw(st.sampled_from([(0, 0), (5, 100), (5, 200), (7, 0), (9, 50)]))
    if schema is None:
        return Entry(epoch, None, expiry)
    slices: dict[str, MaxVector] = {}
    if schema.additive:
        for origin in draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True)):
            slices[origin] = draw(vectors())
    else:
        slices[""] = draw(vectors())
    if schema.size < 2**32:
        slices = {
            origin: MaxVector.from_items((i % schema.size, v) for i, v in vector.items())
            for origin, vector in slices.items()
        }
    return Entry(epoch, schema, expiry, slices)
