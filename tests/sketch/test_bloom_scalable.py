"""Scalable Bloom filters (chains): RedisBloom's sub-filter sizes, no false negatives and the
whole filter's false-positive rate after growing 8x past capacity, a batch answering exactly as
its items one after another, and the merge laws: any delivery order or duplication of the
deltas of concurrent writers gives the same reads."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.bloom import FILTERS_MAX, NONSCALING, BloomFilter
from hearsay.sketch.views import admit_schema, view_for
from tests.support.bloom_reference import redisbloom_bits_and_hashes


def _members(seed: int, count: int, prefix: bytes) -> list[bytes]:
    rng = random.Random(seed)
    return [prefix + rng.randbytes(10) for _ in range(count)]


def _add_each(bf: BloomFilter, vec: MaxVector, items: list[bytes]) -> list[bool | None]:
    """BF.ADD of each item in turn (None: refused as full); ``vec`` takes every write."""
    answers: list[bool | None] = []
    for item in items:
        adds = bf.chain_madd(vec, [item])
        vec.merge_pairs(*adds.pairs)
        if adds.more:  # needs a second pass after the merge, as the engine does
            adds = bf.chain_madd(vec, [item])
            vec.merge_pairs(*adds.pairs)
        answers.append(adds.added[0])
    return answers


def _add_batch(bf: BloomFilter, vec: MaxVector, items: list[bytes]) -> list[bool | None]:
    """BF.MADD of all items, as the engine runs it (passes until every item is answered)."""
    answers: list[bool | None] = []
    while len(answers) < len(items):  # bounded: a pass answers one or starts a sub-filter
        adds = bf.chain_madd(vec, items[len(answers) :])
        vec.merge_pairs(*adds.pairs)
        answers += adds.added
    return answers


# -- sizing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "capacity", "expansion"), [(0.01, 100, 2), (0.001, 1000, 4)])
def test_sub_filters_are_redisbloom_links(error: float, capacity: int, expansion: int) -> None:
    """Link i: capacity * expansion**i at error * 0.5**(i+1) (RedisBloom's SBChain_AddLink
    with ERROR_TIGHTENING_RATIO 0.5), sized by bloom_init; laid out one after another."""
    bf = BloomFilter.chain(error, capacity, expansion)
    base = FILTERS_MAX
    for i, link in enumerate(bf._links):
        bits, hashes = redisbloom_bits_and_hashes(error * 0.5 ** (i + 1), capacity * expansion**i)
        assert (link.base, link.bits, link.hashes) == (base, bits, hashes)
        assert link.capacity == capacity * expansion**i
        base += bits
    assert bf.schema.size == base <= 2**32
    assert 1 < len(bf._links) <= FILTERS_MAX


def test_nonscaling_chain_is_one_filter_at_the_error_asked() -> None:
    bf = BloomFilter.chain(0.01, 100, NONSCALING)
    assert len(bf._links) == 1
    assert (bf.bits, bf.hashes) == redisbloom_bits_and_hashes(0.01, 100)
    info = bf.info(MaxVector())
    assert (info.capacity, info.size_bytes, info.filters, info.expansion) == (100, 216, 1, None)


def test_schema_round_trips_and_plain_schemas_keep_their_meaning() -> None:
    chain = BloomFilter.chain(0.01, 1000, 3)
    again = view_for(chain.schema)
    assert isinstance(again, BloomFilter) and again.schema is chain.schema
    assert again.expansion == 3
    plain = BloomFilter.reserve(0.01, 1000)
    assert len(plain.schema.params) == 5 and plain.schema.size == plain.bits
    assert view_for(plain.schema).expansion is None  # type: ignore[union-attr]
    with pytest.raises(SketchParameterError):
        chain.check_mergeable(plain)
    # A chain is admitted by its first sub-filter: it grows under the key's byte cap.
    admit_schema(chain.schema, 1 << 20)


# -- accuracy -------------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(
    capacity=st.integers(50, 400),
    expansion=st.sampled_from([1, 2, 4]),
    error=st.sampled_from([0.01, 0.05]),
    seed=st.integers(0, 2**32),
)
def test_grown_8x_no_false_negative_and_error_near_asked(
    capacity: int, expansion: int, error: float, seed: int
) -> None:
    bf = BloomFilter.chain(error, capacity, expansion)
    vec = MaxVector()
    items = _members(seed, 8 * capacity, b"in")
    _add_batch(bf, vec, items)
    assert bf.mexists(vec, items).all()  # never a false negative
    info = bf.info(vec)
    assert info.filters > 1
    assert info.capacity >= 8 * capacity * 0.9  # grew to hold them
    probes = _members(seed + 1, 20_000, b"out")
    rate = float(bf.mexists(vec, probes).mean())
    # Sub-filter i is built for error * 0.5**(i+1): the chain's bound is the sum, < error.
    # 20,000 probes: 4 standard deviations of the count at the bound, plus the estimate's slack.
    sigma = (error * (1 - error) / len(probes)) ** 0.5
    assert rate <= error * 1.1 + 4 * sigma, (rate, info)
    assert abs(info.items - len(items)) <= 0.1 * len(items), info


@pytest.mark.parametrize(
    ("capacity", "expansion", "error", "seed"),
    [(2680, 1, 0.01, 2703050138), (2295, 1, 0.05, 2206632489), (946, 2, 0.05, 3979315673)],
)
def test_larger_chains_hold_their_asked_error(
    capacity: int, expansion: int, error: float, seed: int
) -> None:
    """Chains whose sub-filters were counted full too late (one fill count in capacity / 32
    items, over 4,096 sampled bits) answered 1.38-1.47x their asked error; an error goes as the
    fill to the power ``hashes``, so a sub-filter must stop within about a percent of its
    capacity. 100,000 probes: the rate's own noise is ~3% of the error at 0.01."""
    bf = BloomFilter.chain(error, capacity, expansion)
    vec = MaxVector()
    _add_batch(bf, vec, _members(seed, 8 * capacity, b"in"))
    rate = float(bf.mexists(vec, _members(seed + 1, 100_000, b"out")).mean())
    assert rate <= error * 1.1, (rate, bf.info(vec))


def test_nonscaling_refuses_new_items_once_full_and_keeps_answering_old_ones() -> None:
    bf = BloomFilter.chain(0.01, 200, NONSCALING)
    vec = MaxVector()
    items = _members(5, 400, b"n")
    answers = _add_batch(bf, vec, items)
    assert answers[-1] is None
    accepted = answers.count(True)
    assert answers == [True] * accepted + answers[accepted:]  # refused from one item on
    assert set(answers[accepted:]) <= {None, False}
    assert 0.9 * 200 <= accepted <= 1.1 * 200, accepted
    # Full is in the bits (marker 1): every later new item is refused, old ones answer 0.
    assert _add_each(bf, vec, [b"late-1", b"late-2"]) == [None, None]
    assert _add_each(bf, vec, items[:3]) == [False, False, False]
    assert bf.mexists(vec, items[:accepted]).all()


# -- a batch is its items one after another ---------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(20, 300),
    expansion=st.sampled_from([NONSCALING, 1, 2]),
    before=st.integers(0, 600),
    batch=st.lists(st.integers(0, 1500), min_size=1, max_size=400),
    seed=st.integers(0, 1000),
)
def test_batch_answers_and_bits_equal_sequential_adds(
    capacity: int, expansion: int, before: int, batch: list[int], seed: int
) -> None:
    bf = BloomFilter.chain(0.02, capacity, expansion)
    pool = _members(seed, 1501, b"p")
    start = MaxVector()
    _add_batch(bf, start, pool[:before])
    items = [pool[i] for i in batch]  # repeats and items already held included
    one_by_one, together = start.copy(), start.copy()
    sequential = _add_each(bf, one_by_one, items)
    batched = _add_batch(bf, together, items)
    assert batched == sequential
    assert one_by_one == together


@settings(max_examples=10, deadline=None)
@given(
    expansion=st.sampled_from([NONSCALING, 1, 2, 4]),
    held=st.integers(2_000, 6_000),
    batch=st.lists(st.integers(0, 9_000), min_size=1, max_size=300),
    seed=st.integers(0, 1000),
)
def test_single_adds_into_a_bitset_read_in_c_equal_the_batch(
    expansion: int, held: int, batch: list[int], seed: int
) -> None:
    """A big chain is a bitset, which one item's add and read take in C (_bloombits): every
    answer, bit and read equals the batch path's (numpy), repeats and held items included."""
    bf = BloomFilter.chain(0.01, 500, expansion)
    pool = _members(seed, 9_001, b"c")
    start = MaxVector()
    _add_batch(bf, start, pool[:held])
    assert start.bit_array() is not None, "a chain this full is held as bits"
    items = [pool[i] for i in batch]
    one_by_one, together = start.copy(), start.copy()
    sequential = _add_each(bf, one_by_one, items)
    assert _add_batch(bf, together, items) == sequential
    assert one_by_one == together
    probes = items + _members(seed + 1, 50, b"absent")
    each = [bool(bf.mexists(one_by_one, [item])[0]) for item in probes]
    assert each == bf.mexists(one_by_one, probes).tolist()
    kept = [held for held, answer in zip(each, sequential, strict=False) if answer is not None]
    assert all(kept), "no false negative (a full NONSCALING filter refuses: None)"


# -- merge laws -----------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    writers=st.integers(2, 4),
    per_writer=st.integers(50, 400),
    order=st.randoms(use_true_random=False),
    duplicates=st.integers(0, 20),
)
def test_any_delivery_of_concurrent_deltas_gives_the_same_reads(
    writers: int, per_writer: int, order: random.Random, duplicates: int
) -> None:
    """Writers add to their own copies (each starting sub-filters on its own: they share
    them), exchanging nothing; every delta delivered in any order, some twice, gives every
    receiver the same bits, so the same EXISTS, INFO and CARD, and no false negative."""
    bf = BloomFilter.chain(0.01, 60, 2)
    deltas: list[MaxVector] = []
    written: list[bytes] = []
    for w in range(writers):
        own = MaxVector()
        items = _members(w, per_writer, b"w%d-" % w)
        for item in items:
            adds = bf.chain_madd(own, [item])
            deltas.append(own.merge_pairs(*adds.pairs))
            if adds.more:
                adds = bf.chain_madd(own, [item])
                deltas.append(own.merge_pairs(*adds.pairs))
        written += items
    replicas = []
    for _ in range(3):
        delivery = deltas + [order.choice(deltas) for _ in range(duplicates)]
        order.shuffle(delivery)
        vec = MaxVector()
        for delta in delivery:
            vec.merge(delta)
        replicas.append(vec)
    probes = written + _members(99, 500, b"probe")
    reads = [
        (bf.mexists(vec, probes).tolist(), bf.info(vec), bf.card(vec), bf.filters(vec))
        for vec in replicas
    ]
    assert reads[0] == reads[1] == reads[2]
    assert all(reads[0][0][: len(written)])
    assert replicas[0] == replicas[1] == replicas[2]


def test_bits_that_arrive_before_their_sub_filters_marker_are_read() -> None:
    """Node C holds every bit of the items added into sub-filter 1 but not yet the delta
    that started it (marker 1): reads check one sub-filter past the markers, so C finds
    the items all the same."""
    bf = BloomFilter.chain(0.01, 50, 2)
    vec = MaxVector()
    items = _members(1, 100, b"a")
    _add_batch(bf, vec, items)  # past 50: sub-filter 1 started
    assert bf.filters(vec) == 2
    indices, values = vec.pairs()
    keep = indices != 1
    without_marker = MaxVector.from_pairs(indices[keep], values[keep])
    assert bf.filters(without_marker) == 1
    assert bf.mexists(without_marker, items).all()
    assert all(bf.exists(without_marker, item) for item in items)


@pytest.mark.parametrize("seed", range(3))
def test_a_filter_holds_its_capacity_before_it_starts_the_next(seed: int) -> None:
    """As RedisBloom: capacity items fit the first filter; the next starts soon after. With
    a sampled fill count aimed early, a 1M-capacity filter filled with 1M items had started a
    second sub-filter (and held 28.7 MB of pairs for it) in some runs."""
    capacity = 200_000
    bf = BloomFilter.chain(0.01, capacity, 2)
    vec = MaxVector()
    _add_batch(bf, vec, _members(seed, capacity, b"in"))
    assert bf.filters(vec) == 1
    _add_batch(bf, vec, _members(seed, capacity // 20, b"more"))  # 5% past capacity
    assert bf.filters(vec) == 2
