"""Scalable Bloom filters through the node's command table: growth past capacity seen in
BF.INFO, RedisBloom's "non scaling filter is full" in BF.ADD / BF.MADD / BF.INSERT and in
pipelined runs, a run answering as its calls in turn, keys made before chains still plain,
and DUMP/RESTORE and BF.SCANDUMP/LOADCHUNK of a scaled filter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.vector import MaxVector
from hearsay.resp import messages
from hearsay.resp.replies import ErrorReply, Map
from hearsay.sketch.bloom import BloomFilter
from tests.support.bloom_reference import redisbloom_info_size
from tests.support.command_client import REGISTRY, Client


def _info(client: Client, key: str) -> dict[str, object]:
    info = client("BF.INFO", key)
    assert isinstance(info, Map)
    return {str(name): value for name, value in info.pairs}


def test_a_scaling_filter_grows_past_capacity_as_redisbloom() -> None:
    c = Client()
    assert c("BF.RESERVE", "b", "0.01", 100, "EXPANSION", 2) == "OK"
    items = [f"item-{i}" for i in range(1_000)]
    added = c("BF.MADD", "b", *items)
    assert isinstance(added, list) and len(added) == 1_000
    assert sum(added) >= 980  # 0 only for a false positive (the chain's rate is below 1%)
    assert c("BF.MEXISTS", "b", *items) == [1] * 1_000
    info = _info(c, "b")
    # 100 + 200 + 400 + 800: four sub-filters hold 1,000 items (RedisBloom's answer too).
    assert info["Number of filters"] == 4
    assert info["Capacity"] == 1_500
    assert info["Expansion rate"] == 2
    assert info["Size"] == 32 + 4 * 64 + sum(
        redisbloom_info_size(0.01 * 0.5 ** (i + 1), 100 * 2**i) - 96 for i in range(4)
    )
    items_inserted = info["Number of items inserted"]
    assert isinstance(items_inserted, int) and abs(items_inserted - 1_000) <= 50
    assert c("BF.CARD", "b") == items_inserted
    assert c("BF.INFO", "b", "FILTERS") == [4]
    assert c("BF.INFO", "b", "CAPACITY") == [1_500]


def test_nonscaling_full_answers_redisbloom_error() -> None:
    c = Client()
    assert c("BF.RESERVE", "n", "0.01", 50, "NONSCALING") == "OK"
    reply = c("BF.MADD", "n", *[f"m{i}" for i in range(80)])
    assert isinstance(reply, list)
    # RedisBloom: one answer per item up to the refused one, which is the error; then stop.
    assert reply[-1] == ErrorReply(messages.BF_FULL) == "ERR non scaling filter is full"
    assert all(answer == 1 for answer in reply[:-1])
    assert 45 <= len(reply) - 1 <= 55
    assert c("BF.ADD", "n", "new") == messages.BF_FULL
    assert c("BF.ADD", "n", "m0") == 0  # an item it holds still answers
    assert c("BF.INSERT", "n", "ITEMS", "m1", "new2") == [0, ErrorReply(messages.BF_FULL)]
    assert c("BF.EXISTS", "n", "m0") == 1
    assert c("BF.INFO", "n", "FILTERS") == [1]
    assert c("BF.INFO", "n", "EXPANSION") == [None]


def test_a_run_with_a_refusal_answers_each_call_as_alone() -> None:
    twins = [Client(), Client()]
    for twin in twins:
        twin.ok("BF.RESERVE", "n", "0.01", 20, "NONSCALING")
    run = [[b"BF.ADD", b"n", b"r%d" % (i % 30)] for i in range(60)]
    batched, alone = twins
    replies = REGISTRY.dispatch_run(batched.ctx, run)
    assert replies == [REGISTRY.dispatch(alone.ctx, call) for call in run]
    assert ErrorReply(messages.BF_FULL) in replies
    assert batched.db.keyspace.entry(b"n") == alone.db.keyspace.entry(b"n")


_CALLS = st.lists(
    st.tuples(st.sampled_from([b"BF.ADD", b"BF.MADD"]), st.lists(st.integers(0, 400), min_size=1,
              max_size=12)),
    min_size=2,
    max_size=60,
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    create=st.sampled_from([["10", "EXPANSION", "1"], ["15"], ["25", "NONSCALING"], None]),
    calls=_CALLS,
    single=st.booleans(),
)
def test_a_run_replies_and_writes_as_the_calls_in_turn(
    create: list[str] | None, calls: list[tuple[bytes, list[int]]], single: bool
) -> None:
    """The pipelined fast path (CommandRegistry.run_at) against each call alone: same
    replies, same bits, whether the filter grows, fills up or is created by the run."""
    name = b"BF.ADD" if single else b"BF.MADD"
    run = [[name, b"k", *[b"i%d" % i for i in (items[:1] if single else items)]]
           for _, items in calls]  # fmt: skip
    assert REGISTRY.run_at(run, 0) == len(run)
    twins = [Client(), Client()]
    for twin in twins:
        if create is not None:
            twin.ok("BF.RESERVE", "k", "0.05", *create)
    batched, alone = twins
    assert REGISTRY.dispatch_run(batched.ctx, run) == [REGISTRY.dispatch(alone.ctx, a) for a in run]
    assert batched.db.keyspace.entry(b"k") == alone.db.keyspace.entry(b"k")


def test_keys_made_before_chains_stay_plain_and_never_refuse() -> None:
    c = Client()
    plain = BloomFilter.reserve(0.01, 20)  # what BF.RESERVE wrote before chains existed
    c.db.write_own(b"old", plain.schema, MaxVector(), 0)
    replies = c("BF.MADD", "old", *[f"o{i}" for i in range(200)])
    assert isinstance(replies, list) and ErrorReply(messages.BF_FULL) not in replies
    info = _info(c, "old")
    assert (info["Capacity"], info["Number of filters"], info["Expansion rate"]) == (20, 1, None)
    assert info["Size"] == redisbloom_info_size(0.01, 20)
    assert c("BF.MEXISTS", "old", *[f"o{i}" for i in range(200)]) == [1] * 200


def test_dump_restore_and_scandump_of_a_scaled_filter() -> None:
    source = Client()
    source.ok("BF.RESERVE", "b", "0.001", "1000", "EXPANSION", "3")
    items = [f"x{i}" for i in range(20_000)]
    for start in range(0, len(items), 2_000):
        source.ok("BF.MADD", "b", *items[start : start + 2_000])
    filters = source("BF.INFO", "b", "FILTERS")
    assert filters == [4]  # 1k + 3k + 9k + 27k
    payload = source("DUMP", "b")
    restored = Client("fedcba9876543210")
    assert restored("RESTORE", "b", "0", payload) == "OK"
    loaded = Client("0000000000000042")
    cursor, chunks = 0, 0
    while True:  # bounded: a few chunks
        step = source("BF.SCANDUMP", "b", cursor)
        assert isinstance(step, list)
        cursor, data = step
        if cursor == 0:
            break
        assert loaded("BF.LOADCHUNK", "b", cursor, data) == "OK"
        chunks += 1
        assert chunks < 100
    for target in (restored, loaded):
        assert target.db.keyspace.entry(b"b").vector == source.db.keyspace.entry(b"b").vector
        assert target("BF.INFO", "b") == source("BF.INFO", "b")
        assert target("BF.MEXISTS", "b", *items[::97]) == [1] * len(items[::97])
        assert target("TYPE", "b") == "MBbloom--"


def test_bf_merge_unites_chains_of_the_same_parameters() -> None:
    a, b = Client(), Client("fedcba9876543210")
    for client, prefix in ((a, "a"), (b, "b")):
        client.ok("BF.RESERVE", "f", "0.01", "100", "EXPANSION", "2")
        client.ok("BF.MADD", "f", *[f"{prefix}{i}" for i in range(500)])  # grown on each
    payload = b("DUMP", "f")
    assert a("RESTORE", "g", "0", payload) == "OK"
    assert a("BF.MERGE", "u", "f", "g") == "OK"
    everything = [f"{prefix}{i}" for prefix in "ab" for i in range(500)]
    assert a("BF.MEXISTS", "u", *everything) == [1] * 1_000
    filters = a("BF.INFO", "u", "FILTERS")
    assert isinstance(filters, list) and filters[0] >= 3
    a.ok("BF.RESERVE", "other", "0.01", "100", "EXPANSION", "4")
    merged = a("BF.MERGE", "u", "other")
    assert isinstance(merged, ErrorReply) and "different shapes" in merged
    a.ok("BF.RESERVE", "plain-sized", "0.01", "100", "NONSCALING")
    assert isinstance(a("BF.MERGE", "u", "plain-sized"), ErrorReply)
