"""Tests of the cuckoo filter view: no false negatives, the false-positive rate at 30% load,
the merge laws of its per-origin slices (any order, duplicates, grouping: the same reads),
deletes that reach copies another origin added, sub-filters, and SCANDUMP chunks."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.cuckoo import MOVES_SLOT, ChunkError, CuckooFilter, FilterFullError
from hearsay.sketch.slots import FewPairs
from hearsay.sketch.views import type_name, view_for

Slices = dict[str, MaxVector]


def _apply(slices: Slices, origin: str, pairs: FewPairs) -> None:
    slices.setdefault(origin, MaxVector()).merge_pairs(*pairs)


def _add(view: CuckooFilter, slices: Slices, origin: str, item: bytes) -> FewPairs:
    pairs = view.add(slices, origin, item)
    _apply(slices, origin, pairs)
    return pairs


def test_no_false_negatives_and_false_positives_at_30_percent_load() -> None:
    """8-bit fingerprints, bucket size 2: about 2 * 2 * 0.3 / 255 = 0.5% expected. 30% load:
    items for 30% of the first sub-filter's 8192 buckets * 2 slots, all in it (an item whose
    two buckets are both full relocates a copy: no second sub-filter at this load)."""
    view = CuckooFilter(10_000)
    slices: Slices = {}
    members = [f"member-{i}".encode() for i in range(int(0.3 * 8192 * 2))]
    for item in members:
        _add(view, slices, "a", item)
    assert view.info(slices).buckets == 8192
    assert view.filters(slices) == 1
    assert all(view.exists(slices, members))
    strangers = [f"stranger-{i}".encode() for i in range(20_000)]
    rate = sum(view.exists(slices, strangers)) / len(strangers)
    print(f"false-positive rate at 30% load: {rate:.4f}, sub-filters {view.filters(slices)}")
    assert rate <= 0.03, rate


def test_schema_round_trip_and_type() -> None:
    view = CuckooFilter(1000, 4, 50, 2)
    assert view_for(view.schema) is not None
    assert CuckooFilter.from_schema(view.schema).schema == view.schema
    assert type_name(view.schema) == "MBbloomCF"
    with pytest.raises(SketchParameterError):
        CuckooFilter(3, 2)  # capacity below 2 * bucket size
    with pytest.raises(SketchParameterError):
        CuckooFilter(100, 256)
    with pytest.raises(SketchParameterError):
        CuckooFilter(1 << 40)


def test_delete_on_one_origin_removes_a_copy_added_on_another() -> None:
    view = CuckooFilter(1000)
    slices: Slices = {}
    _add(view, slices, "a", b"x")
    pairs = view.delete(slices, "b", b"x")
    assert pairs is not None
    _apply(slices, "b", pairs)
    assert view.exists(slices, [b"x"]) == [False]
    assert view.delete(slices, "b", b"x") is None
    assert view.info(slices).deleted == 1


def test_relocation_moves_are_not_reported_as_deletes() -> None:
    """CF.INFO's deletes are CF.DEL's, as RedisBloom's: a filled filter relocates copies (each
    move a delete in one bucket and an add in the other, and counted at MOVES_SLOT), yet
    reports none deleted until CF.DEL, then exactly those, from any origin. (A chaos run
    found 1 deleted where no CF.DEL was ever sent.)"""
    view = CuckooFilter(64, 2, 500, 1)  # 32 buckets of 2: relocations long before full
    slices: Slices = {}
    items = [b"item-%d" % i for i in range(56)]
    for i, item in enumerate(items):
        _add(view, slices, "ab"[i % 2], item)
    moves = sum(vec.get(MOVES_SLOT) for vec in slices.values())
    assert moves > 0, "the items never relocated: the test tests nothing"
    assert view.filters(slices) == 1
    assert all(view.exists(slices, items))
    info = view.info(slices)
    assert (info.inserted, info.deleted) == (len(items), 0)
    for item in items[:5]:
        pairs = view.delete(slices, "c", item)
        assert pairs is not None
        _apply(slices, "c", pairs)
    info = view.info(slices)
    assert (info.inserted, info.deleted) == (len(items) - 5, 5)
    assert all(view.exists(slices, items[5:]))


def test_concurrent_over_delete_does_not_swallow_a_later_add() -> None:
    view = CuckooFilter(1000)
    slices: Slices = {}
    _add(view, slices, "a", b"x")
    first, second = view.delete(slices, "b", b"x"), view.delete(slices, "c", b"x")
    assert first is not None and second is not None
    _apply(slices, "b", first)
    _apply(slices, "c", second)  # both removed the one copy: net -1
    assert view.count(slices, b"x") == 0
    _add(view, slices, "a", b"x")
    assert view.exists(slices, [b"x"]) == [True]
    assert view.count(slices, b"x") == 1


def test_concurrent_adds_to_one_bucket_are_both_kept() -> None:
    view = CuckooFilter(4, 2)  # two buckets: every item lands in one of them
    a: Slices = {}
    b: Slices = {}
    _add(view, a, "a", b"left")
    _add(view, b, "b", b"right")
    for origin, vec in b.items():
        a.setdefault(origin, MaxVector()).merge(vec)
    assert view.exists(a, [b"left", b"right"]) == [True, True]


def test_a_full_filter_grows_or_reports_full() -> None:
    fixed = CuckooFilter(4, 1, 20, 0)
    slices: Slices = {}
    added = 0
    with pytest.raises(FilterFullError):
        for i in range(10):
            _add(fixed, slices, "a", f"i{i}".encode())
            added += 1
    assert 1 <= added <= 4
    growing = CuckooFilter(4, 1, 20, 2)
    slices = {}
    items = [f"i{i}".encode() for i in range(200)]
    for item in items:
        _add(growing, slices, "a", item)
    info = growing.info(slices)
    assert info.filters > 1 and info.inserted == 200
    assert all(growing.exists(slices, items))


def test_the_sub_filters_stop_at_32() -> None:
    view = CuckooFilter(2, 1, 1, 1)  # two buckets a sub-filter, one slot each
    slices: Slices = {}
    with pytest.raises(FilterFullError):
        for i in range(200):
            _add(view, slices, "a", f"i{i}".encode())
    assert view.filters(slices) == 32


def test_scandump_chunks_round_trip_and_damage_is_refused() -> None:
    view = CuckooFilter(100_000, 2, 20, 1)
    slices: Slices = {}
    items = [f"i{i}".encode() for i in range(10_000)]
    for item in items[:5_000]:
        _add(view, slices, "a", item)
    for item in items[:100]:
        pairs = view.delete(slices, "b", item)
        assert pairs is not None
        _apply(slices, "b", pairs)
    chunks = []
    start = 0
    while True:
        chunk, n = view.dump_chunk(slices, start)
        if n == 0:
            break
        chunks.append(chunk)
        start += n
    assert len(chunks) > 1
    loaded: Slices = {}
    for chunk in reversed(chunks):  # self-contained: any order
        other, entries = CuckooFilter.parse_chunk(chunk)
        assert other.schema == view.schema
        _apply(loaded, "z", other.load(loaded, "z", entries))
        _apply(loaded, "z", other.load(loaded, "z", entries))  # twice: no change
    assert view.exists(loaded, items) == view.exists(slices, items)
    assert view.info(loaded).inserted == view.info(slices).inserted == 4_900
    rng = random.Random(16)
    for _ in range(200):
        damaged = bytearray(chunks[0])
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        with pytest.raises(ChunkError):
            CuckooFilter.parse_chunk(bytes(damaged))
    for cut in (0, 5, 20, len(chunks[0]) - 1):
        with pytest.raises(ChunkError):
            CuckooFilter.parse_chunk(chunks[0][:cut])


# -- the merge laws ---------------------------------------------------------------------------

ORIGINS = ("a", "b", "c")
ITEMS = [f"item-{i}".encode() for i in range(12)]

ops = st.lists(
    st.tuples(
        st.sampled_from(("add", "del", "sync")), st.sampled_from(ORIGINS), st.sampled_from(ITEMS)
    ),
    max_size=40,
)


def _history(view: CuckooFilter, steps: list[tuple[str, str, bytes]]) -> list[tuple[str, FewPairs]]:
    """The deltas three origins write, each from its own view (synced now and then)."""
    local: dict[str, Slices] = {origin: {} for origin in ORIGINS}
    deltas: list[tuple[str, FewPairs]] = []
    for kind, origin, item in steps:
        if kind == "sync":
            for target in local.values():
                for source in local.values():
                    view.merge(target, source)
            continue
        mine = local[origin]
        if kind == "add":
            try:
                pairs = view.add(mine, origin, item)
            except FilterFullError:
                continue
        else:
            found = view.delete(mine, origin, item)
            if found is None:
                continue
            pairs = found
        _apply(mine, origin, pairs)
        deltas.append((origin, pairs))
    return deltas


def _reads(view: CuckooFilter, slices: Slices) -> tuple[object, ...]:
    return (
        view.exists(slices, ITEMS),
        [view.count(slices, item) for item in ITEMS],
        view.info(slices),
        view.dump_chunk(slices, 0),
    )


@settings(max_examples=60, deadline=None)
@given(steps=ops, data=st.data())
def test_any_delivery_order_duplicates_and_grouping_read_the_same(
    steps: list[tuple[str, str, bytes]], data: st.DataObject
) -> None:
    view = CuckooFilter(8, 2, 20, 1)  # small: buckets fill, sub-filters appear
    deltas = _history(view, steps)
    reference: Slices = {}
    for origin, pairs in deltas:
        _apply(reference, origin, pairs)
    order = data.draw(st.permutations(range(len(deltas))))
    extra = data.draw(st.lists(st.sampled_from(range(len(deltas))), max_size=5)) if deltas else []
    delivered = [deltas[i] for i in [*order, *extra]]
    cut = data.draw(st.integers(0, len(delivered)))
    first: Slices = {}
    second: Slices = {}
    for origin, pairs in delivered[:cut]:
        _apply(first, origin, pairs)
    for origin, pairs in delivered[cut:]:
        _apply(second, origin, pairs)
    replica: Slices = {}
    view.merge(replica, second)  # the groups merged as wholes, in either order
    view.merge(replica, first)
    assert _reads(view, replica) == _reads(view, reference)
    # Every item an origin's last word left present stays present when all is merged
    # unless some origin deleted a copy of it: no write is lost.
    for origin, pairs in deltas:
        # (a relocation's pairs come as arrays: get takes Python ints)
        assert all(v <= reference[origin].get(int(i)) for i, v in zip(*pairs, strict=True))
