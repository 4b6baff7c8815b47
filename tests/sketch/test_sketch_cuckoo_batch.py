"""The cuckoo filter's batched writes (``add_items`` / ``delete_items``: one read of the
buckets, items placed in turn, one write) reply and leave exactly the slices that the same
items written one at a time give (``tests/support/cuckoo_reference.py``), whichever way the
buckets are read (window look-ups or one vectorised pass) and an item's places walked (in C
or in Python), from any merged state of several
origins (over-deletes included); and its vectorised reads answer as the reference."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hearsay.lattice.vector import MaxVector
from hearsay.sketch.cuckoo import CuckooFilter
from tests.support.cuckoo_reference import ItemPairs, ScalarCuckoo, Slices

ORIGINS = ("a", "b", "c")
ITEMS = [f"item-{i}".encode() for i in range(8)]
# (capacity, bucket size, expansion): tiny filters, so buckets fill and sub-filters appear.
SHAPES = [(8, 2, 1), (4, 1, 0), (16, 4, 2), (4, 1, 1), (64, 2, 1)]

steps = st.lists(
    st.tuples(
        st.sampled_from(("add", "addnx", "del", "sync")),
        st.sampled_from(ORIGINS),
        st.sampled_from(ITEMS),
    ),
    max_size=40,
)


def _apply(slices: Slices, origin: str, pairs: ItemPairs | tuple[object, object]) -> None:
    slices.setdefault(origin, MaxVector()).merge_pairs(*pairs)  # type: ignore[arg-type]


def _history(ref: ScalarCuckoo, history: list[tuple[str, str, bytes]]) -> Slices:
    """What three origins wrote, each from its own view (synced now and then: concurrent
    deletes of one copy over-delete), all merged."""
    local: dict[str, Slices] = {origin: {} for origin in ORIGINS}
    for kind, origin, item in history:
        mine = local[origin]
        if kind == "sync":
            for target in local.values():
                for source in local.values():
                    for name, vec in source.items():
                        target.setdefault(name, MaxVector()).merge(vec)
            continue
        if kind == "del":
            _, pairs = ref.delete(mine, origin, item)
        else:
            _, pairs = ref.add(mine, origin, item, only_new=kind == "addnx")
        _apply(mine, origin, pairs)
    merged: Slices = {}
    for slices in local.values():
        for name, vec in slices.items():
            merged.setdefault(name, MaxVector()).merge(vec)
    return merged


def _copy(slices: Slices) -> Slices:
    return {origin: vec.copy() for origin, vec in slices.items()}


def _content(slices: Slices) -> dict[str, list[tuple[int, int]]]:
    return {origin: vec.items() for origin, vec in slices.items() if not vec.is_empty()}


@settings(max_examples=150, deadline=None)
@example(  # two origins delete the one copy concurrently (net -1), then ADDNX twice
    shape=(8, 2, 1),
    history=[("add", "a", ITEMS[0]), ("sync", "a", ITEMS[0]), ("del", "b", ITEMS[0]),
             ("del", "c", ITEMS[0])],
    kind="addnx",
    origin="a",
    batch=[ITEMS[0], ITEMS[0], ITEMS[1]],
    windows=False,
    c_walk=True,
)  # fmt: skip
@given(
    shape=st.sampled_from(SHAPES),
    history=steps,
    kind=st.sampled_from(("add", "addnx", "del")),
    origin=st.sampled_from(ORIGINS),
    batch=st.lists(st.sampled_from(ITEMS), min_size=1, max_size=30),
    windows=st.sampled_from((True, False, None)),
    c_walk=st.booleans(),
)
def test_a_batch_replies_and_writes_as_its_items_one_at_a_time(
    *,
    shape: tuple[int, int, int],
    history: list[tuple[str, str, bytes]],
    kind: str,
    origin: str,
    batch: list[bytes],
    windows: bool | None,
    c_walk: bool,
) -> None:
    capacity, bucket_size, expansion = shape
    view = CuckooFilter(capacity, bucket_size, 20, expansion)
    ref = ScalarCuckoo(capacity, bucket_size, expansion)
    start = _history(ref, history)
    expected_slices = _copy(start)
    expected: list[object] = []
    for item in batch:
        if kind == "del":
            removed, pairs = ref.delete(expected_slices, origin, item)
            expected.append(removed)
        else:
            reply, pairs = ref.add(expected_slices, origin, item, only_new=kind == "addnx")
            expected.append(reply)
        _apply(expected_slices, origin, pairs)
    slices = _copy(start)
    if kind == "del":
        replies, written = view.delete_items(slices, origin, batch, by_windows=windows)
    else:
        replies, written = view.add_items(
            slices, origin, batch, only_new=kind == "addnx", by_windows=windows, c_walk=c_walk
        )
    assert _content(slices) == _content(start)  # the view only reads
    _apply(slices, origin, written)
    assert replies == expected
    assert _content(slices) == _content(expected_slices)


@settings(max_examples=100, deadline=None)
@given(shape=st.sampled_from(SHAPES), history=steps)
def test_vectorised_reads_answer_as_the_reference(
    shape: tuple[int, int, int], history: list[tuple[str, str, bytes]]
) -> None:
    capacity, bucket_size, expansion = shape
    view = CuckooFilter(capacity, bucket_size, 20, expansion)
    ref = ScalarCuckoo(capacity, bucket_size, expansion)
    slices = _history(ref, history)
    assert view.filters(slices) == ref.filters(slices)
    expected = [ref.exists(slices, item) for item in ITEMS]
    assert view.exists(slices, ITEMS) == expected  # vectorised
    assert [view.exists(slices, [item])[0] for item in ITEMS] == expected  # by look-ups
    assert [view.count(slices, item) for item in ITEMS] == [ref.count(slices, i) for i in ITEMS]


@settings(max_examples=200, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    history=steps,
    only_new=st.booleans(),
    origin=st.sampled_from((*ORIGINS, "d")),
    batch=st.lists(st.sampled_from(ITEMS), min_size=2, max_size=30),
)
def test_a_run_placed_in_c_replies_and_writes_as_the_batch(
    *,
    shape: tuple[int, int, int],
    history: list[tuple[str, str, bytes]],
    only_new: bool,
    origin: str,
    batch: list[bytes],
) -> None:
    """A run of CF.ADD / ADDNX placed item by item in C (each seeing the run's counts so
    far) replies and writes what the batch read in Python does, also when an item finds no
    room (the batch then places the whole run) and when the writer (``d``) holds no slice."""
    capacity, bucket_size, expansion = shape
    view = CuckooFilter(capacity, bucket_size, 20, expansion)
    slices = _history(ScalarCuckoo(capacity, bucket_size, expansion), history)
    by_c = view.add_items(slices, origin, batch, only_new=only_new)
    by_python = view.add_items(
        slices, origin, batch, only_new=only_new, by_windows=True, c_walk=False
    )
    assert by_c[0] == by_python[0]
    assert [list(map(int, part)) for part in by_c[1]] == [
        list(map(int, part)) for part in by_python[1]
    ]
