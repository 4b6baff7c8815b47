"""A BF.MADD bigger than one chain_madd call answers (CHAIN_MADD_ITEMS_MAX) is answered in
several calls: the answers and the filter must be exactly those of adding item by item."""

from __future__ import annotations

import random

from hearsay.lattice.vector import MaxVector
from hearsay.sketch.bloom import CHAIN_MADD_ITEMS_MAX, BloomFilter


def _items(count: int) -> list[bytes]:
    rng = random.Random(13)
    return [b"item:" + rng.randbytes(8) for _ in range(count)]


def test_a_batch_past_the_call_limit_is_answered_as_items_one_by_one() -> None:
    bf = BloomFilter.chain(0.01, 1000, 2)  # (grows sub-filters inside the batch)
    items = _items(2 * CHAIN_MADD_ITEMS_MAX + 500)
    items += items[:700]  # (repeats: answered False)
    batch, single = MaxVector(), MaxVector()
    answers: list[bool | None] = []
    calls = 0
    while len(answers) < len(items):  # as engine.families.bloom.add runs it
        adds = bf.chain_madd(batch, items[len(answers) :])
        assert len(adds.added) <= CHAIN_MADD_ITEMS_MAX
        batch.merge_pairs(*adds.pairs)
        answers += adds.added
        calls += 1
    assert calls >= len(items) // CHAIN_MADD_ITEMS_MAX
    one_by_one: list[bool | None] = []
    for item in items:
        adds = bf.chain_madd(single, [item])
        single.merge_pairs(*adds.pairs)
        if adds.more:
            adds = bf.chain_madd(single, [item])
            single.merge_pairs(*adds.pairs)
        one_by_one.append(adds.added[0])
    assert answers == one_by_one
    assert batch == single
