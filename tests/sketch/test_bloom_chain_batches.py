"""A BF.MADD bigger than one chain_madd call answers (CHAIN_MADD_ITEMS_MAX, or
CHAIN_MADD_BITS_ITEMS_MAX once the filter is a bitset) is answered in several calls: the
answers and the filter must be exactly those of adding item by item."""

from __future__ import annotations

import random

import pytest

from hearsay.lattice.vector import MaxVector
from hearsay.sketch import bloom
from hearsay.sketch.bloom import (
    CHAIN_MADD_BITS_ITEMS_MAX,
    CHAIN_MADD_ITEMS_MAX,
    NONSCALING,
    BloomFilter,
)


def _items(count: int) -> list[bytes]:
    rng = random.Random(13)
    return [b"item:" + rng.randbytes(8) for _ in range(count)]


def _added_one_by_one(bf: BloomFilter, items: list[bytes]) -> tuple[list[bool | None], MaxVector]:
    """The reference: each item added alone (again once when it starts a sub-filter)."""
    single = MaxVector()
    answers: list[bool | None] = []
    for item in items:
        adds = bf.chain_madd(single, [item])
        single.merge_pairs(*adds.pairs)
        if adds.more:
            adds = bf.chain_madd(single, [item])
            single.merge_pairs(*adds.pairs)
        answers.append(adds.added[0])
    return answers, single


@pytest.mark.parametrize("in_c", [True, False], ids=["c-passes", "python-passes"])
def test_a_batch_past_the_call_limit_is_answered_as_items_one_by_one(
    in_c: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a call's limit of items: in C (``_bloombits.add_pass``, the filter's bits read in
    place) and in Python (a vector whose bits C does not read: one with an overlay)."""
    if not in_c:
        monkeypatch.setattr(bloom, "_c_source", lambda vec: None)
    limit = CHAIN_MADD_BITS_ITEMS_MAX if in_c else CHAIN_MADD_ITEMS_MAX
    bf = BloomFilter.chain(0.01, limit + limit // 4, 2)  # (grows a sub-filter in the batch)
    items = _items(2 * limit + 500)
    items += items[:700]  # (repeats: answered False)
    batch = MaxVector()
    answers: list[bool | None] = []
    calls = at_limit = 0
    while len(answers) < len(items):  # as engine.families.bloom.add runs it (bounded: each
        adds = bf.chain_madd(batch, items[len(answers) :])  # call answers an item at least)
        assert 0 < len(adds.added) <= limit
        at_limit += len(adds.added) == limit
        batch.merge_pairs(*adds.pairs)
        answers += adds.added
        calls += 1
    assert calls >= 3 and at_limit
    assert bf.filters(batch) >= 2
    one_by_one, single = _added_one_by_one(bf, items)
    assert answers == one_by_one
    assert batch == single


@pytest.mark.parametrize(
    ("capacity", "expansion", "pool_size"),
    [(50, 2, 400), (50, NONSCALING, 400), (3, 1, 60), (600, 2, 3_000), (1_000_000, 2, 400)],
    ids=["growing", "nonscaling-full", "tiny-links", "sampled-fill-checks", "sparse-read"],
)
@pytest.mark.parametrize("most", [4, 40], ids=["few", "pipelined-runs"])
def test_small_batches_answer_item_by_item_through_the_engine_loop(
    capacity: int, expansion: int, pool_size: int, most: int
) -> None:
    """A BF.MADD of a few items (2 to 4; or up to 40, a pipelined run of BF.ADDs) is answered
    in one pass (a few items: more passes end at fill checks), the
    bits of the items before each counting as set, and a pass that adds nothing writes
    nothing: answers and filter as adding one by one, while the chain grows sub-filters
    (repeats included), while a NONSCALING one fills and refuses, and for a big filter
    whose items are read in one look-up of its sparse pairs rather than bit by bit."""
    from hearsay.engine.families.bloom import chain_add

    bf = BloomFilter.chain(0.01, capacity, expansion)
    rng = random.Random(5)
    pool = _items(pool_size)
    batch = MaxVector()
    writes = 0

    def write(pairs: tuple[object, object]) -> None:
        nonlocal writes
        writes += 1
        batch.merge_pairs(*pairs)  # type: ignore[arg-type]

    def reread() -> MaxVector:
        return batch

    answers: list[bool | None] = []
    items: list[bytes] = []
    for _ in range(300):
        few = [rng.choice(pool) for _ in range(rng.randint(2, most))]
        items += few
        answers += chain_add(bf, batch, few, write, reread).added
    one_by_one, single = _added_one_by_one(bf, items)
    assert answers == one_by_one
    assert batch == single
    if expansion == NONSCALING:
        assert None in answers  # (filled, then refused new items)
    elif capacity < len(pool):
        assert bf.filters(batch) >= 2  # (grew sub-filters along the way)
    else:
        assert not batch.is_dense and bf.filters(batch) == 1
    assert writes < len(items)
    if capacity > 3 and most == 4:  # (most calls in one write: a pass ends at a fill check)
        assert writes <= 330
