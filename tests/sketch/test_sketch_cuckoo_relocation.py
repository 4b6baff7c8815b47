"""Relocation in the cuckoo filter (RedisBloom's eviction, MAXITERATIONS moves at most): a
filter fills to the fill its bucket size allows before it reports full or grows, and a move,
a delete in one bucket and an add in the other by the writer, never changes an item's
copies, so it composes with whatever other nodes write meanwhile (a CF.DEL of the moved copy,
another node's move of it)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.vector import MaxVector
from hearsay.sketch import cuckoo
from hearsay.sketch.cuckoo import (
    ADDED,
    FINGERPRINTS,
    FULL,
    MOVES_SLOT,
    CuckooFilter,
)
from hearsay.sketch.slots import FewPairs, Pairs

Slices = dict[str, MaxVector]


def _merge(*states: Slices) -> Slices:
    merged: Slices = {}
    for state in states:
        for origin, vec in state.items():
            merged.setdefault(origin, MaxVector()).merge(vec)
    return merged


def _copy(slices: Slices) -> Slices:
    return {origin: vec.copy() for origin, vec in slices.items()}


def _as_ints(pairs: Pairs | FewPairs) -> tuple[list[int], list[int]]:
    return [int(i) for i in pairs[0]], [int(v) for v in pairs[1]]


def _fill_until_full(view: CuckooFilter, batch: int) -> tuple[int, Slices, list[bytes]]:
    """Distinct items added ``batch`` at a time (one write each) until a call meets its first
    FULL: how many went in before it, the slices, and every item added (the FULL call's
    later items too: a batch goes on after a FULL)."""
    slices: Slices = {"a": MaxVector()}
    added: list[bytes] = []
    for start in range(0, 1_000_000, batch):  # bounded: far past any capacity used here
        items = [f"item-{start + i}".encode() for i in range(batch)]
        replies, pairs = view.add_items(slices, "a", items, only_new=False)
        slices["a"].merge_pairs(*pairs)
        before = len(added)
        added += [item for item, reply in zip(items, replies, strict=True) if reply == ADDED]
        if FULL in replies:
            return before + replies.index(FULL), slices, added
    raise AssertionError("never full")


@pytest.mark.parametrize(
    ("bucket_size", "max_iterations", "fill_min"),
    [(1, 20, 0.25), (2, 20, 0.62), (4, 20, 0.80), (2, 500, 0.84), (4, 500, 0.93)],
)
def test_a_filter_fills_as_far_as_its_bucket_size_allows(
    bucket_size: int, max_iterations: int, fill_min: float
) -> None:
    """EXPANSION 0, 8,192 slots: the first "Filter is full" comes at the fill cuckoo hashing
    reaches with that bucket size and those moves (measured: 31%, 75%, 86%, 88%, 97%; 10%,
    15%, 34%, 15% and 34% without relocation)."""
    view = CuckooFilter(8192, bucket_size, max_iterations, 0)
    slots = view.info({}).buckets * bucket_size
    assert slots == 8192
    full_at, slices, items = _fill_until_full(view, batch=256)
    print(f"bucket size {bucket_size}, {max_iterations} moves: full at {full_at / slots:.1%}")
    assert full_at / slots >= fill_min
    assert view.filters(slices) == 1
    assert all(view.exists(slices, items))  # every item it took is still found
    assert view.info(slices).inserted == len(items)


def test_one_at_a_time_and_in_batches_fill_alike() -> None:
    """CF.ADD after CF.ADD (the single-item path, then the batch when no place has room) and
    CF.INSERT of 256 items at a time, past the point where the filter is full: the same
    replies and the same slices."""
    view = CuckooFilter(2048, 2, 100, 0)
    items = [f"item-{i}".encode() for i in range(2600)]
    one: Slices = {"a": MaxVector()}
    one_replies: list[int] = []
    for item in items:
        replies, pairs = view.add_items(one, "a", [item], only_new=False)
        one["a"].merge_pairs(*pairs)
        one_replies += replies
    many: Slices = {"a": MaxVector()}
    many_replies: list[int] = []
    for at in range(0, len(items), 256):
        replies, pairs = view.add_items(many, "a", items[at : at + 256], only_new=False)
        many["a"].merge_pairs(*pairs)
        many_replies += replies
    assert FULL in one_replies and one_replies.count(ADDED) > 0.6 * 2048
    assert one_replies == many_replies
    assert one["a"].items() == many["a"].items()


def test_a_full_filter_grows_only_after_relocation_fails() -> None:
    """With expansion the same items fill the first sub-filter as far before a second one
    appears, and every item stays found as sub-filters are added."""
    growing = CuckooFilter(1024, 4, 500, 1)
    fixed = CuckooFilter(1024, 4, 500, 0)
    full_at, _, _ = _fill_until_full(fixed, batch=64)
    slices: Slices = {"a": MaxVector()}
    items = [f"item-{i}".encode() for i in range(3 * 1024)]
    for at in range(0, len(items), 64):
        replies, pairs = growing.add_items(slices, "a", items[at : at + 64], only_new=False)
        assert replies == [ADDED] * len(replies)
        slices["a"].merge_pairs(*pairs)
        if at + 64 <= full_at:
            assert growing.filters(slices) == 1
    assert growing.filters(slices) > 1
    assert all(growing.exists(slices, items))
    assert growing.info(slices).inserted == len(items)


def _class_of(view: CuckooFilter, pair: int) -> tuple[int, int, int]:
    """A fingerprint pair's item class: (sub-filter, the lower of its two buckets, fp)."""
    sub = max(s for s, base in enumerate(view._bases) if base <= pair)
    bucket, fp = divmod(pair, FINGERPRINTS)
    partner = view._partner(sub, bucket, fp)
    return sub, min(bucket, partner), fp


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from([(16, 1), (16, 2), (32, 4), (8, 2)]),
    fill=st.integers(0, 40),
    extra=st.lists(st.integers(0, 10_000), min_size=1, max_size=8),
)
def test_a_relocation_changes_no_copies_but_the_added_items(
    shape: tuple[int, int], fill: int, extra: list[int]
) -> None:
    """Any batch of adds, relocations included: the writer's raised counts, summed per item
    class (adds minus deletes), are exactly one copy per added item (plus the deficit of an
    over-deleted class): every move takes a copy out of one bucket of a class and puts it in
    the other. Counts are per writer and only grow, so this holds merged with anything
    other nodes wrote meanwhile."""
    capacity, bucket_size = shape
    view = CuckooFilter(capacity, bucket_size, 50, 0)
    start: Slices = {"a": MaxVector()}
    for i in range(fill):
        _, pairs = view.add_items(start, "a", [f"fill-{i}".encode()], only_new=False)
        start["a"].merge_pairs(*pairs)
    items = [f"extra-{n}".encode() for n in extra]
    replies, pairs = view.add_items(start, "a", items, only_new=False)
    own = start["a"]
    change: Counter[tuple[int, int, int]] = Counter()
    moves_counted = moves_made = 0
    for slot, value in zip(*_as_ints(pairs), strict=True):
        raised = value - own.get(slot)
        assert raised > 0
        if slot == MOVES_SLOT:
            moves_counted = raised
            continue
        moves_made += raised if slot & 1 else 0  # (an add batch deletes only by moving)
        change[_class_of(view, slot >> 1)] += -raised if slot & 1 else raised
    assert moves_counted == moves_made  # (CF.INFO tells CF.DEL's deletes by it)
    expected: Counter[tuple[int, int, int]] = Counter()
    for item, reply in zip(items, replies, strict=True):
        if reply == ADDED:
            (h,), (fp,), (alt,) = view._hashes([item])
            placed = [c for c in change if c[2] == fp and c[1] in _buckets_of(view, c[0], h, alt)]
            assert placed, "an added item's class gained a copy"
            expected[placed[0]] += 1
    assert +change == +expected
    assert not -change  # no class lost a copy


def _buckets_of(view: CuckooFilter, sub: int, h: int, alt: int) -> set[int]:
    mask, start = view._geometry[sub]
    return {start + (h & mask), start + ((h & mask) ^ (alt & mask))}


def _full_filter() -> tuple[CuckooFilter, Slices, bytes, list[bytes]]:
    """A one-slot-a-bucket filter on origin ``a`` filled until its first FULL, and the first
    of further items whose add relocates copies (and succeeds)."""
    view = CuckooFilter(64, 1, 50, 0)
    _, slices, items = _fill_until_full(view, batch=1)
    for n in range(1000):  # bounded: one in a few relocates successfully
        newcomer = f"newcomer-{n}".encode()
        replies, pairs = view.add_items(slices, "a", [newcomer], only_new=False)
        if replies == [ADDED] and _deleted_fps(view, pairs):
            return view, slices, newcomer, items
    raise AssertionError("no newcomer relocated")


def test_a_move_racing_a_delete_of_the_moved_copy_keeps_the_delete() -> None:
    """Node a relocates copies to add an item while node b, from the state before, deletes
    each item a's chain moved: merged, every deleted item is gone, every other item and the
    newcomer are found, and the copies add up (a per-bucket count would bring a moved and
    deleted copy back in its new bucket)."""
    view, before, newcomer, items = _full_filter()
    a = _copy(before)
    replies, pairs = view.add_items(a, "a", [newcomer], only_new=False)
    assert replies == [ADDED]
    a["a"].merge_pairs(*pairs)
    moved = {  # items whose fingerprint the chain deleted somewhere
        item for item in items if view._hashes([item])[1][0] in _deleted_fps(view, pairs)
    }
    assert moved, "the add relocated copies"
    b = _copy(before)
    for item in sorted(moved):
        removed, deleted = view.delete_items(b, "b", [item])
        assert removed == [True]
        b.setdefault("b", MaxVector()).merge_pairs(*deleted)
    merged = _merge(a, b)
    for item in moved:
        assert view.count(merged, item) == view.count(before, item) - 1
    kept = [item for item in items if item not in moved]
    assert all(view.exists(merged, [*kept, newcomer]))
    assert view.info(merged).inserted == len(items) + 1 - len(moved)


def test_two_nodes_moving_the_same_copies_keep_one_copy_each() -> None:
    """Nodes a and b both add an item that relocates the same copies (the same full state,
    different newcomers sharing the first bucket): merged, every old item is still found
    exactly as many times as before, and one CF.DEL of it removes it."""
    view, before, newcomer, items = _full_filter()
    a = _copy(before)
    _, pairs_a = view.add_items(a, "a", [newcomer], only_new=False)
    a["a"].merge_pairs(*pairs_a)
    b = _copy(before)
    _, pairs_b = view.add_items(b, "b", [newcomer], only_new=False)
    b.setdefault("b", MaxVector()).merge_pairs(*pairs_b)
    merged = _merge(a, b)
    for item in items:
        assert view.count(merged, item) == view.count(before, item)
    assert view.count(merged, newcomer) == 2  # added on both nodes
    moved = sorted(i for i in items if view._hashes([i])[1][0] in _deleted_fps(view, pairs_a))
    assert moved
    for item in moved:
        removed, deleted = view.delete_items(merged, "c", [item])
        assert removed == [True]
        merged.setdefault("c", MaxVector()).merge_pairs(*deleted)
        assert view.count(merged, item) == view.count(before, item) - 1


def _deleted_fps(view: CuckooFilter, pairs: Pairs | FewPairs) -> set[int]:
    return {(slot >> 1) % FINGERPRINTS for slot in _as_ints(pairs)[0] if slot & 1}


def test_one_call_moves_at_most_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call stops relocating once it has moved RELOCATION_MOVES_MAX copies in all (a
    CF.INSERT into a full filter with MAXITERATIONS 65535 would otherwise try every move of
    every item): an add that needs more moves than are left skips relocation (here: FULL)."""
    view, slices, newcomer, _ = _full_filter()
    replies, pairs = view.add_items(slices, "a", [newcomer], only_new=False)
    moves = len(_deleted_fps(view, pairs))
    assert replies == [ADDED] and moves >= 1
    monkeypatch.setattr(cuckoo, "RELOCATION_MOVES_MAX", moves - 1)
    replies, pairs = view.add_items(slices, "a", [newcomer], only_new=False)
    assert replies == [FULL]
    assert not _as_ints(pairs)[0]
    monkeypatch.setattr(cuckoo, "RELOCATION_MOVES_MAX", moves + 10)
    assert view.add_items(slices, "a", [newcomer], only_new=False)[0] == [ADDED]
