"""BF.MADD's pass over a chain's bits in C (``_bloombits.add_pass``; a bitset, or a sparse
vector's packed pairs), against its Python statement (``BloomFilter._chain_add_few``), and
BF.MEXISTS' reads (``holds_many``) against the one-item read: the same answers, pass ends and
pairs on the same filter."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hearsay.lattice.vector import MaxVector
from hearsay.sketch import _bloombits
from hearsay.sketch.bloom import (
    CHAIN_MADD_BITS_ITEMS_MAX,
    FILTERS_MAX,
    NONSCALING,
    BloomFilter,
    ChainAdds,
    _c_source,
)
from hearsay.sketch.hashing import member_hash, member_hashes, mix64_int

SCENARIOS = [  # (capacity, expansion, pool of distinct items, batches, batch size at most)
    (1000, 2, 6000, 40, 600),  # a chain growing sub-filters within batches
    (300, NONSCALING, 1500, 30, 200),  # a NONSCALING chain filling up, then refusing
    (3, 1, 600, 60, 40),  # 64 tiny links: the chain's end refuses
    (20_000, 2, 60_000, 12, 9000),  # fill checks one in 78 items, with the items before
    (20_000_000, 2, 3000, 4, 800),  # a sub-filter past the C's bitmap of positions (2**27 bits)
]


def _pairs(adds: ChainAdds) -> tuple[list[int], list[int]]:
    indices, values = adds.pairs
    return [int(i) for i in indices], [int(v) for v in values]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "scenario",
    SCENARIOS,
    ids=["growing", "nonscaling-full", "chain-end", "sampled-fill-checks", "wide-sub-filter"],
)
def test_the_c_pass_answers_as_the_python_one(
    seed: int, scenario: tuple[int, int, int, int, int]
) -> None:
    capacity, expansion, pool_size, batches, most = scenario
    rng = random.Random(seed)
    bf = BloomFilter.chain(0.01, capacity, expansion)
    pool = [b"item:%d:" % seed + rng.randbytes(6) for _ in range(pool_size)]
    vec = MaxVector()
    compared = {False: 0, True: 0}  # (passes read in C, by sparse)
    refused = ended_early = 0
    passes = 0
    for _ in range(batches):
        batch = [rng.choice(pool) for _ in range(rng.randint(2, most))]  # (repeats too)
        answered = 0
        while answered < len(batch):  # every pass, as the engine's loop runs them (bounded:
            rest = batch[answered:]  # each pass answers an item at least)
            source = _c_source(vec)
            reference = bf._chain_add_few(vec, rest)
            if source is not None:
                ours = bf._chain_add_c(vec, source, rest)
                assert ours.added == reference.added
                assert ours.more == reference.more
                assert _pairs(ours) == _pairs(reference)
                compared[source[1]] += 1
                refused += reference.added.count(None)
                ended_early += reference.more and reference.pairs[0][0] >= FILTERS_MAX
            vec.merge_pairs(*reference.pairs)
            assert reference.added
            answered += len(reference.added)
            passes += 1
    assert sum(compared.values()) == passes, "every pass is read in C (no overlay here)"
    if capacity == 20_000_000:
        assert bf._links[0].bits > 2**27 and compared[True], "sparse, positions in the table"
    else:
        assert compared[True] and compared[False], "the filter is read sparse, then as a bitset"
    if expansion == NONSCALING or capacity == 3:
        assert refused, "the scenario must reach a full chain"
    if capacity == 20_000:
        assert ended_early, "passes must end before a fill check counting the items before"


def test_a_pass_answers_more_items_at_once_in_c() -> None:
    """Past the Python pass's 1,000 items the C pass goes on (up to its own bound): one
    BF.MADD of many items into a big filter takes few passes."""
    bf = BloomFilter.chain(0.01, 1_000_000, 2)
    vec = MaxVector()
    vec.merge_pairs(*bf.chain_madd(vec, [b"seed:%d" % i for i in range(200_000)][:1000]).pairs)
    while vec.bit_array() is None:  # (fill until it is held as bits)
        more = [b"fill:%d:%d" % (len(vec), i) for i in range(1000)]
        vec.merge_pairs(*bf.chain_madd(vec, more).pairs)
    items = [b"many:%d" % i for i in range(3 * CHAIN_MADD_BITS_ITEMS_MAX)]
    adds = bf.chain_madd(vec, items)
    assert 1000 < len(adds.added) <= CHAIN_MADD_BITS_ITEMS_MAX
    assert adds.more


@pytest.mark.parametrize("seed", range(3))
def test_holds_many_is_holds_of_each_item(seed: int) -> None:
    rng = random.Random(seed)
    bf = BloomFilter.chain(0.01, 500, 2)
    vec = MaxVector()
    added = [b"in:%d" % i for i in range(4000)]
    done = 0
    while done < len(added):
        adds = bf.chain_madd(vec, added[done:])
        vec.merge_pairs(*adds.pairs)
        done += len(adds.added)
    bits = vec.bit_array()
    assert bits is not None
    geometry = bf._geometry
    subs = bf.filters(vec)
    assert subs >= 4
    asked = [rng.choice(added) if rng.random() < 0.5 else b"out:%d" % i for i in range(3000)]
    flags = _bloombits.holds_many(bits, False, member_hashes(asked), geometry, subs)
    one_by_one = [
        _bloombits.holds(bits, member_hash(item), mix64_int(member_hash(item)) | 1, geometry, subs)
        for item in asked
    ]
    assert [bool(flag) for flag in flags] == one_by_one
    assert all(flags[i] for i, item in enumerate(asked) if item in set(added))
    assert not all(one_by_one)  # (items never added: mostly not held)
    assert bf.mexists(vec, asked).tolist() == one_by_one
    # The same bits as packed sparse pairs (a width byte, the indices, the values): the same
    # answers.
    indices, values = vec.pairs()
    packed = b"\x01" + indices.astype("<u4").tobytes() + values.astype(np.uint8).tobytes()
    sparse_flags = _bloombits.holds_many(packed, True, member_hashes(asked), geometry, subs)
    assert sparse_flags == flags


def test_the_c_reads_refuse_what_they_cannot_read() -> None:
    bits = np.zeros(8, dtype=np.uint8)
    hashes = np.zeros(2, dtype=np.uint64)
    with pytest.raises(ValueError, match="24 bytes"):
        _bloombits.holds_many(bits, False, hashes, b"\x00" * 23, 0)
    with pytest.raises(ValueError, match="8 bytes an item"):
        _bloombits.holds_many(bits, False, b"\x00" * 7, b"", 0)
    with pytest.raises(ValueError, match="not packed sparse pairs"):
        _bloombits.holds_many(b"\x03\x00", True, hashes, b"", 0)
    with pytest.raises(TypeError, match="must be bytes"):
        _bloombits.holds_many(bits, True, hashes, b"", 0)
    geometry = BloomFilter.chain(0.01, 100, 2)._geometry
    with pytest.raises(ValueError, match="within the geometry"):
        _bloombits.add_pass(bits, False, hashes, geometry, 0, 1, False, 1, 1.0, False)
    with pytest.raises(ValueError, match="within the geometry"):
        _bloombits.holds_many(bits, False, hashes, geometry, 65)


def test_a_chain_whose_last_sub_filters_have_many_hashes_fills_to_its_end() -> None:
    """An EXPANSION 1 chain of capacity 3 has 64 sub-filters, each later one a hash more (its
    error halves): the 58th has 65. Its bits were read in C with room for 64 hashes, so a
    BF.ADD into it raised ValueError; now the chain fills to its end and refuses."""
    bf = BloomFilter.chain(0.01, 3, 1)
    assert max(link.hashes for link in bf._links) > 64
    vec = MaxVector()
    answers: list[bool | None] = []
    for i in range(600):  # bounded: 64 sub-filters of ~3 items each, then refusals
        for _ in range(2):  # (again once when the item starts a sub-filter)
            adds = bf.chain_madd(vec, [b"one:%d" % i])
            vec.merge_pairs(*adds.pairs)
            if not adds.more:
                break
        answers.append(adds.added[0])
    assert vec.bit_array() is not None
    assert bf.filters(vec) == len(bf._links)
    assert None in answers[-50:]
