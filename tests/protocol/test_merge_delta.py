"""A peer's delta of a few pairs at the key's own header merges as raw pairs (the way a local
write does): the keyspace must end exactly as ``Keyspace.merge`` leaves it, with the same
delta reported, whatever the deltas."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hearsay.lattice.entry import Entry, MergeResult, Schema
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.vector import MaxVector
from hearsay.protocol.gossip.outbox import merge_delta
from hearsay.sketch.schemas import hll
from hearsay.sketch.window import WINDOWED_KINDS, Window, WindowedView
from tests.support.lattice_strategies import HLL, RAW, entries, indices, values

few_pairs = st.dictionaries(indices, values, min_size=0, max_size=10)


@st.composite
def _deltas_for(draw: st.DrawFn, held: Entry) -> Entry:
    """Mostly a few pairs under ``held``'s own header (a replicated write), else anything."""
    if held.schema is None or not draw(st.integers(0, 3)):
        return draw(entries())
    size = held.schema.size
    origins = ["a", "b", "c"] if held.schema.additive else [""]
    slices = {
        origin: MaxVector.from_items((i % size, v) for i, v in draw(few_pairs).items())
        for origin in draw(st.lists(st.sampled_from(origins), min_size=1, max_size=2, unique=True))
    }
    epoch, expiry, schema = held.epoch, held.expiry, held.schema
    if not data_near(draw):  # a near miss: another epoch, expiry or schema, few pairs still
        epoch = draw(st.integers(max(0, epoch - 1), epoch + 1))
        expiry = draw(st.sampled_from([expiry, (5, 100), (7, 0), (0, 0)]))
        if not schema.additive:
            schema = draw(st.sampled_from([HLL, RAW]))
            slices = {"": MaxVector.from_items((i % HLL.size, v) for i, v in slices[""].items())}
    return Entry(epoch, schema, expiry, slices)


def data_near(draw: st.DrawFn) -> int:
    return draw(st.integers(0, 2))


@given(st.data())
def test_merge_delta_is_keyspace_merge(data: st.DataObject) -> None:
    held = data.draw(entries())
    fast, general = Keyspace(), Keyspace()
    fast.merge(b"k", held.copy())
    general.merge(b"k", held.copy())
    for _ in range(data.draw(st.integers(1, 6))):
        current = general.entry(b"k")
        assert current is not None
        delta = data.draw(_deltas_for(current))
        got = merge_delta(fast, b"k", delta.copy())
        want = general.merge(b"k", delta.copy())
        assert got.delta == want.delta
        assert got.changed == want.changed
        assert got.conflict == want.conflict
        assert fast.entry(b"k") == general.entry(b"k")
        assert list(fast.bucket_hashes()) == list(general.bucket_hashes())
        assert fast.key_hash(b"k") == general.key_hash(b"k")


def test_a_windowed_delta_takes_the_fast_path_and_still_tells_the_sweep() -> None:
    """A peer's write to a windowed key (a few pairs in one time slice) merges as raw pairs
    too, and the sweep hook hears of it exactly as ``Keyspace.merge`` tells it."""
    schema = WindowedView(hll(), Window(6_000, 3)).schema
    heard: dict[str, list[tuple[bytes, Schema, list[str]]]] = {"fast": [], "general": []}
    fast, general = _CountingMerges(), Keyspace()
    for name, keyspace in (("fast", fast), ("general", general)):
        keyspace.sliced_kinds = WINDOWED_KINDS
        keyspace.watch_sliced = lambda key, schema, names, name=name: heard[name].append(
            (key, schema, names)
        )
        keyspace.merge(b"w", Entry(0, schema, (0, 0), {"7": MaxVector.from_items([(3, 2)])}))
    for slice_name, pairs in (("7", [(3, 5), (9, 1)]), ("8", [(4, 2)]), ("8", [(4, 1)])):
        delta = Entry(0, schema, (0, 0), {slice_name: MaxVector.from_items(pairs)})
        got = merge_delta(fast, b"w", delta.copy())
        want = general.merge(b"w", delta.copy())
        assert got.delta == want.delta
        assert fast.entry(b"w") == general.entry(b"w")
        assert fast.key_hash(b"w") == general.key_hash(b"w")
    assert heard["fast"] == heard["general"]
    assert len(heard["fast"]) == 4  # the first entry and each of the three deltas
    assert fast.merges == 1  # the first entry only: every delta went in as raw pairs


class _CountingMerges(Keyspace):
    """A keyspace that counts its whole-entry merges (the path the deltas should avoid)."""

    merges = 0

    def merge(self, key: bytes, delta: Entry) -> MergeResult:
        self.merges += 1
        return super().merge(key, delta)


def test_a_windowed_few_pairs_item_merges_without_an_entry_and_tells_the_sweep() -> None:
    """A receiver reads a peer's windowed write as its few pairs: it merges so (no entry
    decoded around them) and the sweep hears of the slice, as a whole-entry merge tells it."""
    schema = WindowedView(hll(), Window(6_000, 3)).schema
    heard: list[tuple[bytes, Schema, list[str]]] = []
    few, general = Keyspace(), Keyspace()
    for keyspace in (few, general):
        keyspace.sliced_kinds = WINDOWED_KINDS
        keyspace.merge(b"w", Entry(0, schema, (0, 0), {"7": MaxVector.from_items([(3, 2)])}))
    few.watch_sliced = lambda key, schema, names: heard.append((key, schema, names))
    got = few.merge_few(b"w", (0, schema, (0, 0), "8", [4, 9], [2, 1]))
    assert got is not None and got.delta is not None
    want = general.merge(
        b"w", Entry(0, schema, (0, 0), {"8": MaxVector.from_items([(4, 2), (9, 1)])})
    )
    assert got.delta == want.delta
    assert few.entry(b"w") == general.entry(b"w")
    assert few.key_hash(b"w") == general.key_hash(b"w")
    assert heard == [(b"w", schema, ["8"])]
