"""The sketch data commands through the command table, against an in-memory database.

Every request goes through ``CommandRegistry.dispatch`` (arity, errors, replies) of the table a
node builds (``build_registry``), so these tests see what a client sees, minus the socket.
Expected numbers come from the sketch views computed independently (batch hashing, the
views' own sizing), never from constants copied from a run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.codec import encode_entry
from hearsay.resp import messages
from hearsay.resp.parser import parse_double
from hearsay.resp.replies import ErrorReply, Map, Reply, encode
from hearsay.sketch import hll_math, hyll_format
from hearsay.sketch.hll_view import HyperLogLog
from tests.support.bloom_reference import ReferenceBloom, redisbloom_info_size
from tests.support.command_client import NOW_MS, REGISTRY, Client
from tests.support.gossip_pair import ReplicaPair


@pytest.fixture
def c() -> Client:
    return Client()


def _registers(client: Client, key: bytes, p: int = 14) -> np.ndarray:
    entry = client.db.get(key, NOW_MS)
    assert entry is not None
    return HyperLogLog(p).registers(entry.vector)


def _members(rng: random.Random, n: int) -> list[bytes]:
    return [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]


# -- HyperLogLog ----------------------------------------------------------------------------------


def test_pfadd_registers_equal_the_batch_hash_for_every_batch_size(c: Client) -> None:
    rng = random.Random(5)
    members: list[bytes] = []
    for size in (1, 2, 3, 4, 5, 17, 300):  # both the one-by-one and the numpy hashing paths
        batch = _members(rng, size)
        members += batch
        c.ok("PFADD", "k", *batch)
    expected = hll_math.registers_from_pairs(*hll_math.members_index_rank(members))
    assert np.array_equal(_registers(c, b"k"), expected)
    assert c("PFCOUNT", "k") == hll_math.count(expected)


def test_pfadd_replies_whether_the_key_changed(c: Client) -> None:
    assert c("PFADD", "k") == 1  # creates the key
    assert c("EXISTS", "k") == 1
    assert c("PFADD", "k") == 0
    assert c("PFADD", "k", "a", "b") == 1
    assert c("PFADD", "k", "a") == 0
    assert c("PFADD", "k", "b", "a") == 0
    assert c("TYPE", "k") == "string"


def test_pfadd_of_counted_members_writes_nothing(c: Client) -> None:
    members = [b"m%d" % i for i in range(200)]
    assert c("PFADD", "k", *members) == 1
    writes = c.db.stats.local_writes
    assert [c("PFADD", "k", m) for m in members] == [0] * len(members)
    assert c("PFADD", "k", *members[:3]) == 0
    assert c.db.stats.local_writes == writes  # answered from a read: no delta, no gossip


def test_pfadd_after_expiry_starts_a_new_hll(c: Client) -> None:
    assert c("PFADD", "k", "a", "b") == 1
    assert c("PEXPIRE", "k", 10) == 1
    c.ctx.now_ms += 10
    assert c("PFADD", "k", "a") == 1  # the key expired: "a" is new to the new HLL
    assert c("PFCOUNT", "k") == 1
    assert c("PTTL", "k") == -1


def test_pfadd_to_another_precision_reads_registers_of_that_precision(c: Client) -> None:
    c.ok("HEARSAY.PFRESERVE", "k", 10)
    assert c("PFADD", "k", "a") == 1
    assert c("PFADD", "k", "a") == 0
    assert np.count_nonzero(_registers(c, b"k", 10)) == 1


_START_STATES = ("absent", "hll", "expired", "precision 10", "counter")


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_START_STATES),
    st.lists(st.lists(st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f"]), max_size=6),
             min_size=2, max_size=20),
)  # fmt: skip
def test_a_run_of_pfadds_replies_as_the_calls_in_turn(start: str, calls: list[list[bytes]]) -> None:
    twins = [Client(), Client()]
    for twin in twins:
        if start in ("hll", "expired"):
            twin.ok("PFADD", "k", "a", "x")
        if start == "expired":
            twin.ok("PEXPIRE", "k", 5)
            twin.ctx.now_ms += 5
        if start == "precision 10":
            twin.ok("HEARSAY.PFRESERVE", "k", 10)
            twin.ok("PFADD", "k", "b")
        if start == "counter":
            twin.ok("INCR", "k")
    run = [[b"PFADD", b"k", *members] for members in calls]
    assert REGISTRY.run_at([[b"PING"], *run, [b"PFADD", b"other"]], 1) == len(run)
    batched, alone = twins
    assert REGISTRY.dispatch_run(batched.ctx, run) == [REGISTRY.dispatch(alone.ctx, a) for a in run]
    assert batched("PFCOUNT", "k") == alone("PFCOUNT", "k")
    assert batched("GET", "k") == alone("GET", "k")


@pytest.mark.parametrize("shape", ["distinct", "repeats", "sparse", "uneven"])
def test_a_run_of_one_member_pfadds_replies_as_the_calls_in_turn(shape: str) -> None:
    rng = random.Random(3)
    twins = [Client(), Client()]
    for twin in twins:
        if shape != "sparse":  # many members: a dense register array
            twin.ok("PFADD", "k", *[b"seed%d" % i for i in range(5000)])
    for _ in range(30):
        if shape == "repeats":
            members = [b"r%d" % rng.randrange(4) for _ in range(16)]
        else:
            members = [b"m%d" % rng.randrange(10**9) for _ in range(16)]
        run = [[b"PFADD", b"k", member] for member in members]
        if shape == "uneven":  # as many members as calls, but not one each
            run[3].append(b"extra%d" % rng.randrange(10**9))
            run[5] = run[5][:2]
        batched, alone = twins
        expected = [REGISTRY.dispatch(alone.ctx, a) for a in run]
        assert REGISTRY.dispatch_run(batched.ctx, run) == expected
    assert twins[0]("GET", "k") == twins[1]("GET", "k")


def test_a_run_of_pfadds_without_members_replies_zeros_to_a_key_that_exists(c: Client) -> None:
    c.ok("PFADD", "k", "a")
    assert REGISTRY.dispatch_run(c.ctx, [[b"PFADD", b"k"], [b"PFADD", b"k"]]) == [0, 0]
    assert REGISTRY.dispatch_run(c.ctx, [[b"PFADD", b"new"], [b"PFADD", b"new"]]) == [1, 0]


@pytest.mark.parametrize("start", ["absent", "sparse", "dense"])
def test_a_large_run_of_pfadds_replies_as_the_calls_in_turn(start: str) -> None:
    """Large runs with repeated registers (answered in arrays): same replies, same registers."""
    rng = random.Random(11)
    seen: set[Reply] = set()
    twins = [Client(), Client()]
    for twin in twins:
        if start == "sparse":
            twin.ok("PFADD", "k", *[b"seed%d" % i for i in range(20)])
        if start == "dense":
            twin.ok("PFADD", "k", *[b"seed%d" % i for i in range(20_000)])
    for _ in range(8):
        pool = rng.choice([50, 5_000, 10**9])  # many repeats within the run, or almost none
        run = [
            [b"PFADD", b"k", *[b"m%d" % rng.randrange(pool) for _ in range(rng.randrange(300))]]
            for _ in range(rng.randrange(2, 25))
        ]
        run[rng.randrange(len(run))] = [b"PFADD", b"k"]  # a call with no members
        batched, alone = twins
        expected = [REGISTRY.dispatch(alone.ctx, call) for call in run]
        assert REGISTRY.dispatch_run(batched.ctx, run) == expected
        assert twins[0]("GET", "k") == twins[1]("GET", "k")
        seen.update(expected)
    assert seen == {0, 1}


def test_pfcount_of_many_keys_is_the_union_and_changes_nothing(c: Client) -> None:
    rng = random.Random(7)
    a, b = _members(rng, 500), _members(rng, 700)
    c.ok("PFADD", "a", *a)
    c.ok("PFADD", "b", *b)
    before = (_registers(c, b"a").copy(), _registers(c, b"b").copy())
    union = hll_math.count(hll_math.registers_from_pairs(*hll_math.members_index_rank(a + b)))
    assert c("PFCOUNT", "a", "b", "missing") == union
    assert c("PFCOUNT", "missing") == 0
    assert np.array_equal(_registers(c, b"a"), before[0])
    assert np.array_equal(_registers(c, b"b"), before[1])


def test_pfmerge_creates_and_raises_the_destination(c: Client) -> None:
    rng = random.Random(9)
    a, b, d = _members(rng, 200), _members(rng, 300), _members(rng, 100)
    c.ok("PFADD", "a", *a)
    c.ok("PFADD", "b", *b)
    assert c("PFMERGE", "new", "a", "b", "nothing") == "OK"
    assert c("PFCOUNT", "new") == c("PFCOUNT", "a", "b")
    c.ok("PFADD", "d", *d)
    assert c("PFMERGE", "d", "a") == "OK"  # the destination keeps its own registers
    assert c("PFCOUNT", "d") == c("PFCOUNT", "a", "d")
    assert c("PFMERGE", "empty") == "OK"
    assert c("PFCOUNT", "empty") == 0 and c("EXISTS", "empty") == 1


def test_get_and_set_speak_redis_hll_bytes(c: Client) -> None:
    rng = random.Random(11)
    members = _members(rng, 3000)
    c.ok("PFADD", "k", *members)
    data = c("GET", "k")
    assert isinstance(data, bytes) and data.startswith(b"HYLL")
    assert np.array_equal(hyll_format.import_redis(data), _registers(c, b"k"))
    assert c("SET", "copy", data) == "OK"
    assert c("PFCOUNT", "copy") == c("PFCOUNT", "k")
    # SET on an existing HLL merges (the lattice never lowers a register).
    c.ok("PFADD", "other", "x", "y", "z")
    assert c("SET", "other", data) == "OK"
    assert c("PFCOUNT", "other") == c("PFCOUNT", "k", "other")
    assert c("PFCOUNT", "other") >= c("PFCOUNT", "k")


def test_set_refuses_what_is_not_an_hll(c: Client) -> None:
    assert c("SET", "k", "hello") == messages.SET_ONLY_HLL
    assert c("EXISTS", "k") == 0
    bad = c("SET", "k", b"HYLL\x00truncated")
    assert isinstance(bad, ErrorReply) and bad.startswith("ERR SET value is not a valid Redis")
    c.ok("PFADD", "h", "a")
    good = c("GET", "h")
    assert c("SET", "h", good, "EX", "10") == messages.SET_NO_OPTIONS
    c.ok("INCR", "n")
    assert c("SET", "n", good) == messages.WRONGTYPE
    c.ok("BF.ADD", "b", "x")
    assert c("SET", "b", good) == messages.WRONGTYPE


def test_pfreserve_makes_an_hll_of_another_precision(c: Client) -> None:
    rng = random.Random(13)
    members = _members(rng, 400)
    assert c("HEARSAY.PFRESERVE", "p", 10) == "OK"
    assert c("HEARSAY.PFRESERVE", "p", 10) == "OK"  # idempotent
    assert c("HEARSAY.PFRESERVE", "p", 12) == messages.HLL_PRECISION_EXISTS.format(10)
    assert c("PFADD", "p", *members) == 1
    expected = hll_math.registers_from_pairs(*hll_math.members_index_rank(members, 10), 10)
    assert np.array_equal(_registers(c, b"p", 10), expected)
    assert c("PFCOUNT", "p") == hll_math.count(expected)
    more = _members(rng, 300)
    c.ok("PFADD", "q", *more)  # precision 14
    # Counted together at the lower precision: folding 14 -> 10 is exact.
    both = hll_math.registers_from_pairs(*hll_math.members_index_rank(members + more, 10), 10)
    assert c("PFCOUNT", "p", "q") == hll_math.count(both)
    assert c("PFMERGE", "q", "p") == messages.hll_cannot_unfold(14, 10)
    assert c("PFMERGE", "fresh", "p") == "OK"
    assert c("PFCOUNT", "fresh") == c("PFCOUNT", "p")
    assert c("PFMERGE", "p", "q") == "OK"  # q folded into p's precision
    assert np.array_equal(_registers(c, b"p", 10), both)
    assert c("GET", "p") == messages.HLL_GET_PRECISION.format(10)
    assert c("SET", "p", c("GET", "q")) == messages.HLL_SET_PRECISION.format(10)
    for bad in ("3", "19", "x", "-1", ""):
        assert c("HEARSAY.PFRESERVE", "z", bad) == messages.HLL_PRECISION_RANGE
    c.ok("INCR", "n")
    assert c("HEARSAY.PFRESERVE", "n", 10) == messages.HLL_INVALID


def test_hll_commands_on_other_types_answer_like_redis(c: Client) -> None:
    c.ok("INCR", "n")
    for args in (("PFADD", "n", "a"), ("PFCOUNT", "n"), ("PFMERGE", "n"), ("PFMERGE", "d", "n")):
        assert c(*args) == messages.HLL_INVALID, args
    c.ok("CMS.INITBYDIM", "m", 10, 2)
    assert c("PFADD", "m", "a") == messages.WRONGTYPE
    assert c("PFCOUNT", "m") == messages.WRONGTYPE
    assert c("PFADD") == messages.wrong_number_of_args("pfadd")


# -- counters -------------------------------------------------------------------------------------


def test_counter_commands(c: Client) -> None:
    assert c("GET", "n") is None
    assert c("INCR", "n") == 1
    assert c("INCRBY", "n", 41) == 42
    assert c("DECR", "n") == 41
    assert c("DECRBY", "n", 50) == -9
    assert c("GET", "n") == b"-9"
    assert c("INCRBY", "z", 0) == 0 and c("EXISTS", "z") == 1 and c("GET", "z") == b"0"
    assert c("TYPE", "n") == "string"


def test_counter_errors_are_redis_texts(c: Client) -> None:
    assert c("INCRBY", "n", "1.5") == messages.NOT_AN_INTEGER
    assert c("INCRBY", "n", "99999999999999999999") == messages.NOT_AN_INTEGER
    assert c("DECRBY", "n", "x") == messages.NOT_AN_INTEGER
    assert c("INCRBY", "n", 2**63 - 1) == 2**63 - 1
    assert c("INCR", "n") == messages.OVERFLOW
    assert c("GET", "n") == str(2**63 - 1).encode()
    assert c("DECRBY", "m", -(2**63)) == "ERR decrement would overflow"
    c.ok("PFADD", "h", "a")
    assert c("INCR", "h") == messages.NOT_AN_INTEGER
    c.ok("BF.ADD", "b", "a")
    assert c("INCR", "b") == messages.WRONGTYPE
    assert c("GET", "b") == messages.WRONGTYPE
    assert c("INCR") == messages.wrong_number_of_args("incr")


def test_concurrent_increments_on_two_nodes_sum() -> None:
    pair = ReplicaPair("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")  # real gossip, in memory
    a, b = Client(db=pair.a), Client(db=pair.b)
    a.ok("INCRBY", "n", 5)
    b.ok("INCRBY", "n", 7)
    b.ok("DECR", "n")
    a.ok("CMS.INITBYDIM", "m", 50, 4)
    a.ok("CMS.INCRBY", "m", "x", 3)
    pair.settle()
    for key in (b"n", b"m"):  # re-delivering a whole entry is harmless
        for source, target in ((pair.a, pair.b), (pair.b, pair.a)):
            entry = source.keyspace.entry(key)
            assert entry is not None
            target.merge_remote(key, entry.copy())
    b.ok("CMS.INCRBY", "m", "x", 4)
    pair.settle()
    assert a("GET", "n") == b("GET", "n") == b"11"
    assert a("CMS.QUERY", "m", "x") == b("CMS.QUERY", "m", "x") == [7]


def test_every_write_goes_through_the_funnel() -> None:
    """Every write command's change reaches the peer by gossip, and changes only its key."""
    pair = ReplicaPair("0123456789abcdef", "fedcba9876543210")
    c, peer = Client(db=pair.a), pair.b
    c.ok("PFADD", "h", "a")
    hll_bytes = c("GET", "h")
    assert isinstance(hll_bytes, bytes)
    writes: list[tuple[bytes | str | int, ...]] = [
        ("PFADD", "h", "b"),
        ("HEARSAY.PFRESERVE", "p", 8),
        ("PFMERGE", "h2", "h"),
        ("SET", "h3", hll_bytes),
        ("INCR", "n"),
        ("BF.RESERVE", "b", "0.01", 10),
        ("BF.ADD", "b", "x"),
        ("BF.MERGE", "b2", "b"),
        ("CMS.INITBYDIM", "m", 10, 2),
        ("CMS.INCRBY", "m", "x", 1),
        ("CMS.INITBYDIM", "m2", 10, 2),
        ("CMS.MERGE", "m2", 1, "m"),
        ("VMAX", "v", 3, 4),
    ]
    for args in writes:
        pair.settle()
        before = {k: encode_entry(entry) for k, entry in peer.keyspace.items()}
        c.ok(*args)
        pair.settle()
        key = str(args[1]).encode()
        assert peer.keyspace.entry(key) == c.db.keyspace.entry(key), args
        after = {k: encode_entry(entry) for k, entry in peer.keyspace.items()}
        assert {k for k in after if before.get(k) != after[k]} == {key}, args


# -- Bloom filters --------------------------------------------------------------------------------


def test_bf_add_creates_a_filter_with_redisbloom_defaults(c: Client) -> None:
    assert c("BF.ADD", "b", "x") == 1
    assert c("BF.ADD", "b", "x") == 0
    # RedisBloom's default is a scaling chain whose first filter is built at half the error
    # rate: 0.005 -> 1102 bits -> 18 words, + 96 bytes of structs.
    size = redisbloom_info_size(0.01 * 0.5, 100)
    assert size == 240
    info = c("BF.INFO", "b")
    assert isinstance(info, Map)
    fields = {str(k): v for k, v in info.pairs}
    assert fields == {
        "Capacity": 100,
        "Size": size,
        "Number of filters": 1,
        "Number of items inserted": 1,
        "Expansion rate": 2,
    }
    assert c("BF.INFO", "b", "capacity") == [100]
    assert c("BF.INFO", "b", "SIZE") == [size]
    assert c("BF.INFO", "b", "filters") == [1]
    assert c("BF.INFO", "b", "items") == [1]
    assert c("BF.INFO", "b", "expansion") == [2]
    assert c("BF.INFO", "b", "nope") == messages.BF_INFO_INVALID_VALUE
    assert c("BF.INFO", "b", "items", "x") == messages.wrong_number_of_args("bf.info")
    assert c("TYPE", "b") == "MBbloom--"


def test_bf_info_size_matches_redisbloom_scaling_and_not(c: Client) -> None:
    """RedisBloom's default filter is a scaling chain whose first filter is built at half the
    error rate (0.005), so it reports Size 240 for ``BF.RESERVE k 0.01 100``; with
    ``NONSCALING`` the rate asked for is the rate built (0.01) and the Size is 216."""
    assert c("BF.RESERVE", "k", "0.01", 100) == "OK"
    assert c("BF.RESERVE", "kn", "0.01", 100, "NONSCALING") == "OK"
    assert c("BF.RESERVE", "ke", "0.01", 100, "EXPANSION", 4) == "OK"
    assert c("BF.INFO", "k", "SIZE") == [redisbloom_info_size(0.01 * 0.5, 100)] == [240]
    assert c("BF.INFO", "ke", "SIZE") == [240]
    assert c("BF.INFO", "kn", "SIZE") == [redisbloom_info_size(0.01, 100)] == [216]
    assert c("BF.INFO", "k", "EXPANSION") == [2]
    assert c("BF.INFO", "ke", "EXPANSION") == [4]
    assert c("BF.INFO", "kn", "EXPANSION") == [None]


def test_bf_madd_mexists_and_card(c: Client) -> None:
    rng = random.Random(17)
    items = [b"item:%d" % i for i in range(300)]
    rng.shuffle(items)
    assert c("BF.RESERVE", "b", "0.001", 1000, "NONSCALING") == "OK"
    replies = c("BF.MADD", "b", *items[:200], items[0])
    reference = ReferenceBloom(0.001, 1000)  # independent: sequential adds, plain integers
    assert replies == [reference.add(item) for item in [*items[:200], items[0]]]
    assert isinstance(replies, list) and replies[-1] == 0 and sum(replies) >= 195
    # The items never added answer as the reference's bits say (its false positives too).
    assert c("BF.MEXISTS", "b", *items[200:]) == [reference.exists(i) for i in items[200:]]
    assert c("BF.MEXISTS", "b", *items[:200]) == [1] * 200  # never a false negative
    assert c("BF.EXISTS", "b", items[0]) == 1
    assert c("BF.EXISTS", "missing", "x") == 0
    assert c("BF.MEXISTS", "missing", "x", "y") == [0, 0]
    card = c("BF.CARD", "b")
    assert isinstance(card, int) and abs(card - 200) <= 10
    assert c("BF.CARD", "missing") == 0


def test_bf_reserve_errors_in_redisbloom_order(c: Client) -> None:
    assert c("BF.RESERVE", "b", "x", 10) == messages.BF_BAD_ERROR_RATE
    assert c("BF.RESERVE", "b", "nan", 10) == messages.BF_BAD_ERROR_RATE
    assert c("BF.RESERVE", "b", "1", 10) == messages.BF_ERROR_RATE_RANGE
    assert c("BF.RESERVE", "b", "0", 10) == messages.BF_ERROR_RATE_RANGE
    assert c("BF.RESERVE", "b", "0.1", "ten") == messages.BF_BAD_CAPACITY
    assert c("BF.RESERVE", "b", "0.1", 0) == messages.BF_CAPACITY_RANGE
    assert c("BF.RESERVE", "b", "0.1", 10, "EXPANSION") == messages.BF_NO_EXPANSION
    assert c("BF.RESERVE", "b", "0.1", 10, "NONSCALING", "EXPANSION", 2) == (
        messages.BF_NONSCALING_CANNOT_EXPAND
    )
    assert c("BF.RESERVE", "b", "0.1", 10, "EXPANSION", "x") == messages.BF_BAD_EXPANSION
    assert c("BF.RESERVE", "b", "0.1", 10, "EXPANSION", 0) == messages.BF_EXPANSION_RANGE
    assert c("BF.RESERVE", "b", "0.1", 10, "EXPANSION", -1) == messages.BF_EXPANSION_RANGE
    assert c("BF.RESERVE", "b", "0.1", 10, "EXPANSION", 2, "NONSCALING") == (
        messages.BF_NONSCALING_CANNOT_EXPAND
    )
    assert c("BF.RESERVE", "b", "0.1", 10, "BOGUS") == messages.SYNTAX_ERROR
    assert c("BF.RESERVE", "b", "0.1", 10, 1, 2, 3, 4) == messages.wrong_number_of_args(
        "bf.reserve"
    )
    too_big = c("BF.RESERVE", "b", "0.000001", 10**12)
    assert isinstance(too_big, ErrorReply) and too_big.startswith("ERR could not create filter")
    assert c("EXISTS", "b") == 0
    assert c("BF.RESERVE", "b", "0.1", 10) == "OK"
    assert c("BF.RESERVE", "b", "0.1", 10) == messages.BF_ITEM_EXISTS
    c.ok("INCR", "n")
    assert c("BF.RESERVE", "n", "0.1", 10) == messages.WRONGTYPE
    assert c("BF.ADD", "n", "x") == messages.WRONGTYPE
    assert c("BF.EXISTS", "n", "x") == messages.WRONGTYPE


def test_bf_insert_options(c: Client) -> None:
    assert c("BF.INSERT", "b", "CAPACITY", 500, "ERROR", "0.001", "ITEMS", "a", "b", "a") == [
        1,
        1,
        0,
    ]
    assert c("BF.INFO", "b", "capacity") == [500]
    assert c("BF.INFO", "b", "size") == [redisbloom_info_size(0.001 * 0.5, 500)]
    assert c("BF.INFO", "b", "expansion") == [2]
    assert c("BF.INSERT", "b", "NONSCALING", "ITEMS", "c") == [1]
    assert c("BF.INSERT", "none", "NOCREATE", "ITEMS", "a") == messages.BF_NOT_FOUND
    assert c("EXISTS", "none") == 0
    assert c("BF.INSERT", "x", "ITEMS") == messages.wrong_number_of_args("bf.insert")
    assert c("BF.INSERT", "x", "CAPACITY") == messages.wrong_number_of_args("bf.insert")
    assert c("BF.INSERT", "x", "NOCREATE", "a") == messages.BF_INSERT_UNKNOWN_ARGUMENT
    assert c("BF.INSERT", "x", "CAPACITY", "z", "ITEMS", "a") == messages.BF_INSERT_BAD_CAPACITY
    assert c("BF.INSERT", "x", "ERROR", "z", "ITEMS", "a") == messages.BF_INSERT_BAD_ERROR_RATE
    assert c("BF.INSERT", "x", "EXPANSION", "z", "ITEMS", "a") == messages.BF_INSERT_BAD_EXPANSION
    assert c("BF.INSERT", "x", "ERROR", "2", "ITEMS", "a") == messages.BF_INSERT_BAD_ARGUMENT
    assert c("BF.INSERT", "x", "CAPACITY", "0", "ITEMS", "a") == messages.BF_INSERT_BAD_ARGUMENT
    assert c("BF.INSERT", "x", "EXPANSION", "0", "ITEMS", "a") == messages.BF_INSERT_BAD_ARGUMENT
    assert c("BF.INSERT", "x", "ERROR", "z", "BOGUS", "ITEMS", "a") == (
        messages.BF_INSERT_BAD_ERROR_RATE  # each value checked where it stands
    )
    assert c("EXISTS", "x") == 0
    assert c("BF.INSERT", "x", "EXPANSION", "3", "ITEMS", "a") == [1]
    assert c("BF.INFO", "x", "expansion") == [3]
    assert c("BF.INSERT", "xn", "NONSCALING", "EXPANSION", "3", "ITEMS", "a") == [1]
    assert c("BF.INFO", "xn", "expansion") == [None]
    assert c("BF.INFO", "never-made") == messages.BF_NOT_FOUND


def test_bf_merge_is_the_union_of_equal_shapes(c: Client) -> None:
    a = [b"a%d" % i for i in range(50)]
    b = [b"b%d" % i for i in range(50)]
    c.ok("BF.RESERVE", "x", "0.01", 200)
    c.ok("BF.RESERVE", "y", "0.01", 200)
    c.ok("BF.MADD", "x", *a)
    c.ok("BF.MADD", "y", *b)
    assert c("BF.MERGE", "z", "x", "y", "missing") == "OK"
    assert c("BF.MEXISTS", "z", *a, *b) == [1] * 100
    assert c("BF.INFO", "z", "capacity") == [200]
    assert c("BF.MERGE", "x", "y") == "OK"
    assert c("BF.MEXISTS", "x", *b) == [1] * 50
    c.ok("BF.RESERVE", "small", "0.1", 10)
    merged = c("BF.MERGE", "x", "small")
    assert isinstance(merged, ErrorReply) and "different shapes" in merged
    assert c("BF.MERGE", "q", "nothing") == messages.BF_NOT_FOUND
    c.ok("INCR", "n")
    assert c("BF.MERGE", "x", "n") == messages.WRONGTYPE


# -- count-min sketches ---------------------------------------------------------------------------


def test_cms_init_and_info(c: Client) -> None:
    assert c("CMS.INITBYDIM", "m", 40, 5) == "OK"
    assert c("CMS.INFO", "m") == Map([("width", 40), ("depth", 5), ("count", 0)])
    assert c("CMS.INITBYPROB", "p", "0.001", "0.01") == "OK"
    # RedisBloom: width = ceil(2 / error), depth = ceil(log10(prob) / log10(0.5)).
    assert (math.ceil(2 / 0.001), math.ceil(math.log10(0.01) / math.log10(0.5))) == (2000, 7)
    assert c("CMS.INFO", "p") == Map([("width", 2000), ("depth", 7), ("count", 0)])
    assert c("TYPE", "m") == "CMSk-TYPE"
    assert c("CMS.INITBYDIM", "m", 40, 5) == messages.CMS_KEY_EXISTS
    assert c("CMS.INITBYDIM", "m", "x", "y") == messages.CMS_KEY_EXISTS  # checked first
    assert c("CMS.INITBYDIM", "n", 0, 5) == messages.CMS_INVALID_WIDTH
    assert c("CMS.INITBYDIM", "n", 5, "x") == messages.CMS_INVALID_DEPTH
    assert c("CMS.INITBYDIM", "n", 2**32, 2) == messages.CMS_INVALID_INIT
    assert c("CMS.INITBYPROB", "n", "1", "0.1") == messages.CMS_INVALID_OVERESTIMATION
    assert c("CMS.INITBYPROB", "n", "0.1", "0") == messages.CMS_INVALID_PROB
    assert c("CMS.INITBYPROB", "n", "1e-12", "0.1") == messages.CMS_INVALID_INIT
    assert c("CMS.INFO", "n") == messages.CMS_KEY_MISSING
    assert c("EXISTS", "n") == 0


def test_cms_incrby_and_query(c: Client) -> None:
    rng = random.Random(19)
    c.ok("CMS.INITBYDIM", "m", 200, 5)
    truth: dict[bytes, int] = {}
    for _ in range(50):
        pairs: list[bytes | int] = []
        for _ in range(rng.randrange(1, 5)):
            item, amount = b"i%d" % rng.randrange(100), rng.randrange(0, 20)
            pairs += [item, amount]
        replies = c("CMS.INCRBY", "m", *pairs)
        assert isinstance(replies, list) and len(replies) == len(pairs) // 2
        for i in range(0, len(pairs), 2):
            item, amount = pairs[i], pairs[i + 1]
            assert isinstance(item, bytes) and isinstance(amount, int)
            truth[item] = truth.get(item, 0) + amount
    items = sorted(truth)
    estimates = c("CMS.QUERY", "m", *items)
    assert isinstance(estimates, list)
    assert all(e >= truth[i] for e, i in zip(estimates, items, strict=True))
    info = c("CMS.INFO", "m")
    assert isinstance(info, Map) and dict(info.pairs)["count"] == sum(truth.values())


def test_cms_errors_in_redisbloom_order(c: Client) -> None:
    assert c("CMS.INCRBY", "m", "a", "x") == messages.CMS_KEY_MISSING  # key before numbers
    assert c("CMS.QUERY", "m", "a") == messages.CMS_KEY_MISSING
    c.ok("CMS.INITBYDIM", "m", 10, 2)
    assert c("CMS.INCRBY", "m", "a", "x") == messages.CMS_CANNOT_PARSE_NUMBER
    assert c("CMS.INCRBY", "m", "a", "-1") == messages.CMS_NEGATIVE_NUMBER
    assert c("CMS.INCRBY", "m", "a", 1, "b") == messages.wrong_number_of_args("cms.incrby")
    assert c("CMS.INCRBY", "m", "a", 2**63 - 1) == [2**63 - 1]
    assert c("CMS.INCRBY", "m", "a", 1) == messages.CMS_INCRBY_OVERFLOW
    c.ok("INCR", "n")
    assert c("CMS.INCRBY", "n", "a", 1) == messages.WRONGTYPE
    assert c("CMS.QUERY", "n", "a") == messages.WRONGTYPE
    assert c("CMS.INITBYDIM", "n", 10, 2) == messages.CMS_KEY_EXISTS


def test_cms_merge_with_weights(c: Client) -> None:
    for key in ("a", "b", "d"):
        c.ok("CMS.INITBYDIM", key, 100, 4)
    c.ok("CMS.INCRBY", "a", "x", 3, "y", 1)
    c.ok("CMS.INCRBY", "b", "x", 2)
    assert c("CMS.MERGE", "d", 2, "a", "b") == "OK"
    assert c("CMS.QUERY", "d", "x", "y") == [5, 1]
    assert c("CMS.MERGE", "d", 2, "a", "b", "WEIGHTS", 2, 3) == "OK"
    assert c("CMS.QUERY", "d", "x", "y") == [12, 2]
    c.ok("CMS.INITBYDIM", "other", 50, 4)
    assert c("CMS.MERGE", "nope", 1, "a") == messages.CMS_KEY_MISSING
    assert c("CMS.MERGE", "d", "x", "a") == messages.CMS_INVALID_NUMKEYS
    assert c("CMS.MERGE", "d", 0, "a") == messages.CMS_NUMKEYS_POSITIVE
    assert c("CMS.MERGE", "d", 2, "a") == messages.CMS_WRONG_NUMBER_OF_KEYS
    assert c("CMS.MERGE", "d", 2, "a", "b", "WEIGHTS", 1) == (
        messages.CMS_WRONG_NUMBER_OF_KEYS_WEIGHTS
    )
    assert c("CMS.MERGE", "d", 1, "a", "WEIGHTS", "w") == messages.CMS_INVALID_WEIGHT
    assert c("CMS.MERGE", "d", 1, "missing") == messages.CMS_KEY_MISSING
    assert c("CMS.MERGE", "d", 1, "other") == messages.CMS_WIDTH_DEPTH_NOT_EQUAL
    assert c("CMS.MERGE", "d", 1, "a", "WEIGHTS", -1) == messages.CMS_MERGE_OVERFLOW
    assert c("CMS.MERGE", "d", 1) == messages.wrong_number_of_args("cms.merge")


def test_cms_merge_of_large_sketches(c: Client) -> None:
    for key in ("big-a", "big-dest"):
        c.ok("CMS.INITBYDIM", key, 1_500_000, 3)  # 4.5 M cells
    c.ok("CMS.INCRBY", "big-a", "x", 3)
    assert c("CMS.MERGE", "big-dest", 1, "big-a", "WEIGHTS", 2) == "OK"
    assert c("CMS.QUERY", "big-dest", "x", "y") == [6, 0]


def test_info_replies_are_maps_under_resp3_and_flat_arrays_under_resp2(c: Client) -> None:
    c.ok("CMS.INITBYDIM", "m", 10, 2)
    c.ok("BF.ADD", "b", "x")
    for command in (("CMS.INFO", "m"), ("BF.INFO", "b")):
        reply = c(*command)
        assert encode(reply, 2).startswith(b"*6\r\n+width" if command[0] == "CMS.INFO" else b"*10")
        assert encode(reply, 3).startswith(b"%3\r\n" if command[0] == "CMS.INFO" else b"%5\r\n")


# -- vignette vectors -----------------------------------------------------------------------------


def test_vmax_and_vget(c: Client) -> None:
    assert c("VGET", "v") == []
    assert c("VMAX", "v", 5, 10, 1, 3, 5, 7) == 2
    assert c("VGET", "v") == [1, 3, 5, 10]
    assert c("VMAX", "v", 5, 9, 1, 4, 2**32 - 1, 2**63 - 1) == 2
    assert c("VGET", "v") == [1, 4, 5, 10, 2**32 - 1, 2**63 - 1]
    assert c("TYPE", "v") == "vector"
    assert c("VMAX", "v", 1) == messages.wrong_number_of_args("vmax")
    assert c("VMAX", "v", 1, 2, 3) == messages.wrong_number_of_args("vmax")
    assert c("VMAX", "v", 2**32, 1) == messages.VECTOR_INDEX
    assert c("VMAX", "v", -1, 1) == messages.VECTOR_INDEX
    assert c("VMAX", "v", 1, -1) == messages.VECTOR_VALUE
    assert c("VMAX", "v", 1, "x") == messages.VECTOR_VALUE
    c.ok("INCR", "n")
    assert c("VMAX", "n", 1, 1) == messages.WRONGTYPE
    assert c("VGET", "n") == messages.WRONGTYPE


def test_parse_double_accepts_what_strtod_accepts_in_full() -> None:
    for text, value in ((b"0.01", 0.01), (b"1e-3", 1e-3), (b".5", 0.5), (b"-2", -2.0)):
        assert parse_double(text) == value
    assert parse_double(b"inf") == float("inf")
    for bad in (b"", b" 1", b"1 ", b"nan", b"1_0", b"0x10", b"1e", b"abc", b"--1"):
        assert parse_double(bad) is None, bad


# -- no client input escapes as an exception -----------------------------------------------------

COMMANDS: Sequence[str] = (
    "PFADD",
    "PFCOUNT",
    "PFMERGE",
    "HEARSAY.PFRESERVE",
    "GET",
    "SET",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "VMAX",
    "VGET",
    "BF.RESERVE",
    "BF.ADD",
    "BF.MADD",
    "BF.INSERT",
    "BF.EXISTS",
    "BF.MEXISTS",
    "BF.INFO",
    "BF.CARD",
    "BF.MERGE",
    "CMS.INITBYDIM",
    "CMS.INITBYPROB",
    "CMS.INCRBY",
    "CMS.QUERY",
    "CMS.INFO",
    "CMS.MERGE",
)
KEYS = [b"hll", b"hll10", b"ctr", b"bf", b"cms", b"vec", b"none"]
WORDS = [
    b"ITEMS", b"CAPACITY", b"ERROR", b"EXPANSION", b"NOCREATE", b"NONSCALING", b"WEIGHTS",
    b"capacity", b"size", b"items", b"HYLL", b"EX",
]  # fmt: skip
NUMBERS = [
    b"0", b"1", b"-1", b"2", b"4", b"10", b"18", b"0.5", b"0.01", b"1e-9", b"inf", b"-inf",
    b"nan", b"4294967295", b"4294967296", b"9223372036854775807", b"-9223372036854775808",
    b"99999999999999999999", b"1e308", b"",
]  # fmt: skip

_arg = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(WORDS),
    st.sampled_from(NUMBERS),
    st.binary(max_size=24),
    st.integers(-(2**64), 2**64).map(lambda n: str(n).encode()),
)


def _snapshot(client: Client) -> tuple[object, ...]:
    """The encoded entries of the fuzzed keys and the number of keys."""
    entries = []
    for key in KEYS:
        entry = client.db.get(key, NOW_MS)
        entries.append(None if entry is None else encode_entry(entry))
    return (client("DBSIZE"), *entries)


def _populated() -> Client:
    client = Client()
    client.ok("PFADD", "hll", "a", "b")
    client.ok("HEARSAY.PFRESERVE", "hll10", 10)
    client.ok("INCRBY", "ctr", 5)
    client.ok("BF.ADD", "bf", "a")
    client.ok("CMS.INITBYDIM", "cms", 20, 3)
    client.ok("CMS.INCRBY", "cms", "a", 2)
    client.ok("VMAX", "vec", 1, 2)
    return client


@settings(max_examples=1500)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(COMMANDS), st.lists(_arg, max_size=8)), min_size=1, max_size=6
    ),
    hll_bytes=st.booleans(),
)
def test_fuzzed_arguments_always_get_a_reply(
    calls: list[tuple[str, list[bytes]]], hll_bytes: bool
) -> None:
    client = _populated()
    good_hll = client("GET", "hll")
    assert isinstance(good_hll, bytes)
    for name, args in calls:
        sent = args
        if hll_bytes and name == "SET" and len(args) >= 2:
            cut = len(args[1]) % len(good_hll)
            sent = [args[0], good_hll[:cut] if cut > 16 else good_hll, *args[2:]]
        before = _snapshot(client)
        reply = client(name, *sent)  # must not raise
        encode(reply, 2)
        encode(reply, 3)
        if isinstance(reply, ErrorReply):
            # A refused command is refused whole: it changed nothing.
            assert _snapshot(client) == before, (name, sent, reply)
    for key in KEYS:  # the keyspace is still readable
        assert isinstance(client("TYPE", key), str)


def test_strlen_is_the_length_of_what_get_returns(c: Client) -> None:
    assert c("STRLEN", "missing") == 0
    c.ok("INCRBY", "n", -12345)
    assert c("STRLEN", "n") == len(b"-12345")
    c.ok("PFADD", "h", "a", "b")
    hll_bytes = c.ok("GET", "h")
    assert isinstance(hll_bytes, bytes)
    assert c("STRLEN", "h") == len(hll_bytes)
    c.ok("BF.ADD", "bf", "x")
    reply = c("STRLEN", "bf")
    assert isinstance(reply, ErrorReply) and reply.startswith("WRONGTYPE")


def test_memory_usage_follows_what_a_key_holds(c: Client) -> None:
    assert c("MEMORY", "USAGE", "missing") is None
    c.ok("PFADD", "h", "a")
    small = c.ok("MEMORY", "USAGE", "h")
    assert isinstance(small, int) and small > len(b"h")
    c.ok("PFADD", "h", *[b"m%d" % i for i in range(20_000)])  # dense: six bits a register
    dense = c.ok("MEMORY", "USAGE", "h")
    assert isinstance(dense, int) and 16_384 > dense > 12_288 > small
    assert c("MEMORY", "USAGE", "h", "SAMPLES", 5) == dense
    c.ok("INCR", "n")  # additive: a slice per origin
    counter = c.ok("MEMORY", "USAGE", "n")
    assert isinstance(counter, int) and counter > 0
    c.ok("DEL", "h")
    assert c("MEMORY", "USAGE", "h") is None  # a tombstone is not a key
    for bad in (("MEMORY", "USAGE", "n", "SAMPLES"), ("MEMORY", "USAGE", "n", "X", 1),
                ("MEMORY", "USAGE", "n", "SAMPLES", -1)):  # fmt: skip
        assert isinstance(c(*bad), ErrorReply), bad
