"""Windowed keys through the command table, on virtual time (``ctx.now_ms``): what each family
counts over the window, the WINDOW clause's errors, pipelined runs equal to the calls in turn,
the sweep, and replicas with skewed clocks converging."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.codec import encode_entry
from hearsay.resp.replies import ErrorReply
from tests.support.command_client import NOW_MS, REGISTRY, Client

W_S = 6
W_MS = W_S * 1000


def _at(client: Client, ms: int) -> Client:
    client.ctx.now_ms = NOW_MS + ms
    return client


def test_a_windowed_hll_counts_only_the_members_of_the_window() -> None:
    c = Client()
    assert c.ok("HEARSAY.PFRESERVE", "h", "WINDOW", W_S) == "OK"
    assert c.ok("TYPE", "h") == "string"
    assert c.ok("PFADD", "h", *(f"old{i}" for i in range(200))) == 1
    _at(c, 3_000)
    for i in range(100):
        c.ok("PFADD", "h", f"new{i}")
    assert abs(c.ok("PFCOUNT", "h") - 300) <= 9  # type: ignore[operator]
    _at(c, W_MS + 600)  # the old members' slice died (W/SLICES = 600 ms after t + W)
    assert abs(c.ok("PFCOUNT", "h") - 100) <= 3  # type: ignore[operator]
    assert c.ok("PFCOUNT", "h", "absent") == c.ok("PFCOUNT", "h")
    c.ok("SET", "copy", c.ok("GET", "h"))  # GET: Redis's bytes of the window's union
    assert c.ok("PFCOUNT", "copy") == c.ok("PFCOUNT", "h")
    assert c.ok("MGET", "h") == [None]  # as MGET of a key GET refuses
    _at(c, 3_000 + W_MS + 600)
    assert c.ok("PFCOUNT", "h") == 0
    assert c.ok("EXISTS", "h") == 1  # the key stays, empty, as a reserved one does


def test_pfcount_and_pfmerge_mix_windowed_and_plain_keys() -> None:
    c = Client()
    c.ok("HEARSAY.PFRESERVE", "w", 12, "WINDOW", W_S, "SLICES", 3)
    c.ok("PFADD", "w", *(f"a{i}" for i in range(50)))
    c.ok("PFADD", "plain", *(f"b{i}" for i in range(50)))
    both = c.ok("PFCOUNT", "w", "plain")
    assert abs(both - 100) <= 3  # type: ignore[operator]
    c.ok("PFMERGE", "copy", "w", "plain")  # into a new plain key: precision 12 (the lowest)
    assert c.ok("PFCOUNT", "copy") == both
    c.ok("HEARSAY.PFRESERVE", "w2", 12, "WINDOW", W_S, "SLICES", 3)
    _at(c, 2_500)
    c.ok("PFMERGE", "w2", "w")  # same window: slice by slice, so it ages as "w" does
    assert c.ok("PFCOUNT", "w2") == c.ok("PFCOUNT", "w")
    _at(c, W_MS + 2_000)
    assert c.ok("PFCOUNT", "w2") == c.ok("PFCOUNT", "w") == 0
    assert c.ok("PFCOUNT", "copy") == both  # a plain key keeps what it was given
    c.ok("PFMERGE", "w2", "plain")  # a plain source counts from now on
    assert c.ok("PFCOUNT", "w2") == c.ok("PFCOUNT", "plain")


def test_a_windowed_bloom_filter_forgets_and_reports_its_window() -> None:
    c = Client()
    assert c.ok("BF.RESERVE", "b", "0.01", 1000, "WINDOW", W_S, "SLICES", 6) == "OK"
    assert c("BF.RESERVE", "b", "0.01", 1000, "WINDOW", W_S) == ErrorReply("ERR item exists")
    assert c.ok("BF.ADD", "b", "x") == 1
    assert c.ok("BF.ADD", "b", "x") == 0
    _at(c, 2_000)
    assert c.ok("BF.ADD", "b", "x") == 1  # new in the current slice: it renews "x"
    assert c.ok("BF.MADD", "b", "x", "y", "y") == [0, 1, 0]
    assert c.ok("BF.INSERT", "b", "ITEMS", "z") == [1]
    assert c.ok("BF.MEXISTS", "b", "x", "y", "z", "w") == [1, 1, 1, 0]
    info = dict(c.ok("BF.INFO", "b").pairs)  # type: ignore[union-attr]
    assert info["Window"] == W_S and info["Slices"] == 6 and info["Capacity"] == 1000
    assert c.ok("BF.INFO", "b", "WINDOW") == [W_S]
    _at(c, W_MS + 1_000)  # the first add died; the re-add at 2 s keeps "x"
    assert c.ok("BF.MEXISTS", "b", "x", "y") == [1, 1]
    _at(c, 2_000 + W_MS + 1_000)
    assert c.ok("BF.MEXISTS", "b", "x", "y", "z") == [0, 0, 0]
    assert c.ok("BF.CARD", "b") == 0
    assert c("BF.MERGE", "b2", "b") == ErrorReply("ERR windowed keys cannot be merged by BF.MERGE")


def test_a_windowed_count_min_sketch_forgets_old_increments() -> None:
    c = Client()
    assert c.ok("CMS.INITBYPROB", "c", "0.01", "0.01", "WINDOW", W_S) == "OK"
    assert c.ok("CMS.INCRBY", "c", "a", 5, "b", 1) == [5, 1]
    _at(c, 4_000)
    assert c.ok("CMS.INCRBY", "c", "a", 2) == [7]
    info = dict(c.ok("CMS.INFO", "c").pairs)  # type: ignore[union-attr]
    assert info["count"] == 8 and info["window"] == W_S and info["slices"] == 10
    _at(c, W_MS + 600)
    assert c.ok("CMS.QUERY", "c", "a", "b") == [2, 0]
    _at(c, 4_000 + W_MS + 600)
    assert c.ok("CMS.QUERY", "c", "a", "b") == [0, 0]
    assert c("CMS.INCRBY", "c", "a", -1) == ErrorReply("CMS: Number cannot be negative")


def test_a_windowed_top_k_lists_the_heavy_items_of_the_window() -> None:
    c = Client()
    assert c.ok("TOPK.RESERVE", "t", 2, "WINDOW", W_S) == "OK"
    assert c.ok("TYPE", "t") == "TopK-TYPE"
    info = dict(c.ok("TOPK.INFO", "t").pairs)  # type: ignore[union-attr]
    assert info == {"k": 2, "width": 8, "depth": 7, "decay": 0.9, "window": W_S, "slices": 10}
    assert c.ok("TOPK.INCRBY", "t", "old", 50, "other", 3) == [None, None]
    _at(c, 3_000)
    assert c.ok("TOPK.ADD", "t", "new", "new", "old") == [None, None, None]
    assert c.ok("TOPK.LIST", "t", "WITHCOUNT") == [b"old", 51, b"other", 3]
    assert c.ok("TOPK.ADD", "t", "new") == [None]  # this slice's list: new and old only
    assert c.ok("TOPK.QUERY", "t", "old", "new", "other") == [1, 1, 0]
    assert c.ok("TOPK.COUNT", "t", "old", "new") == [51, 3]
    _at(c, W_MS + 600)  # the first slice died: only what was added at 3 s counts
    assert c.ok("TOPK.LIST", "t", "WITHCOUNT") == [b"new", 3, b"old", 1]
    assert c.ok("TOPK.COUNT", "t", "old", "other") == [1, 0]
    _at(c, 3_000 + W_MS + 600)
    assert c.ok("TOPK.LIST", "t") == []
    assert c.ok("EXISTS", "t") == 1  # the key stays, empty, as a reserved one does
    c.ok("RESTORE", "copy", 0, c.ok("DUMP", "t"))
    assert c.ok("TOPK.INFO", "copy") == c.ok("TOPK.INFO", "t")
    assert c.ok("MEMORY", "USAGE", "t") > 0  # type: ignore[operator]
    assert c.ok("TOPK.RESERVE", "s", 1, 8, 7, "0.5", "WINDOW", W_S, "SLICES", 3) == "OK"
    assert dict(c.ok("TOPK.INFO", "s").pairs)["slices"] == 3  # type: ignore[union-attr]
    assert c("TOPK.RESERVE", "s", 1, "WINDOW", W_S) == ErrorReply("TopK: key already exists")
    assert c("TOPK.INCRBY", "t", "a", 1, "b") == ErrorReply(
        "ERR wrong number of arguments for 'topk.incrby' command"
    )
    assert c("TOPK.LIST", "t", "x") == ErrorReply("ERR WITHCOUNT keyword expected")
    assert c("PFADD", "t", "x").startswith("WRONGTYPE")  # type: ignore[union-attr]


def test_window_clause_errors() -> None:
    c = Client()
    bad = {
        ("CMS.INITBYDIM", "k", 10, 2, "WINDOW", 0): "ERR WINDOW must be an integer",
        ("CMS.INITBYDIM", "k", 10, 2, "WINDOW", "x"): "ERR WINDOW must be an integer",
        ("CMS.INITBYDIM", "k", 10, 2, "WINDOW", 6, "SLICES", 65): "ERR SLICES must be",
        ("CMS.INITBYDIM", "k", 10, 2, "WINDOW", 6, "SLICES"): "ERR syntax error",
        ("CMS.INITBYDIM", "k", 10, 2, "WINDOW", 6, "X", 2): "ERR syntax error",
        ("CMS.INITBYDIM", "k", 10, 2, 3): "ERR wrong number of arguments",
        ("HEARSAY.PFRESERVE", "k", 3, "WINDOW", 6): "ERR HLL precision",
        ("HEARSAY.PFRESERVE", "k", 14, 1): "ERR wrong number of arguments",
        ("BF.RESERVE", "k", "0.01", 100, "WINDOW", 6, "SLICES", 0): "ERR SLICES must be",
        ("BF.RESERVE", "k", "0.01", 100, "EXPANSION", 0, "WINDOW", 6): "ERR expansion should",
        ("TOPK.RESERVE", "k", 2, "WINDOW", 6, "SLICES", 0): "ERR SLICES must be",
        ("TOPK.RESERVE", "k", 2, "WINDOW"): "ERR syntax error",
        ("TOPK.RESERVE", "k", 2, 8, 7, "0.9", "X", 6): "ERR wrong number of arguments",
        ("TOPK.RESERVE", "k", 0, "WINDOW", 6): "TopK: invalid k",
    }
    for args, start in bad.items():
        reply = c(*args)
        assert isinstance(reply, ErrorReply) and reply.startswith(start), (args, reply)
    assert c.ok("EXISTS", "k") == 0
    c.ok("HEARSAY.PFRESERVE", "k", "WINDOW", W_S)
    assert c.ok("HEARSAY.PFRESERVE", "k", "WINDOW", W_S) == "OK"  # the same: nothing to do
    assert c("HEARSAY.PFRESERVE", "k", "WINDOW", 7) == ErrorReply(
        "ERR key exists with another type or window"
    )
    assert c("INCR", "k").startswith("WRONGTYPE")  # type: ignore[union-attr]
    c.ok("BF.RESERVE", "b", "0.01", 100, "NONSCALING", "WINDOW", W_S)  # each slice is fixed
    assert c.ok("BF.ADD", "b", "x") == 1 and c.ok("BF.EXISTS", "b", "x") == 1


def test_dump_restore_and_memory_know_windowed_keys() -> None:
    c = Client()
    c.ok("CMS.INITBYDIM", "c", 100, 4, "WINDOW", W_S)
    c.ok("CMS.INCRBY", "c", "a", 3)
    payload = c.ok("DUMP", "c")
    c.ok("RESTORE", "d", 0, payload)
    assert c.ok("CMS.QUERY", "d", "a") == [3]
    assert dict(c.ok("CMS.INFO", "d").pairs)["window"] == W_S  # type: ignore[union-attr]
    assert c.ok("MEMORY", "USAGE", "c") > 0  # type: ignore[operator]
    assert c.ok("TYPE", "c") == "CMSk-TYPE"


def test_the_sweep_drops_dead_slices_and_memory_stays_within_slices_plus_one() -> None:
    c = Client()
    c.ok("HEARSAY.PFRESERVE", "h", "WINDOW", 2, "SLICES", 4)
    for step in range(40):  # a write every 250 ms for 10 s, sweeping as the runtime does
        _at(c, step * 250)
        c.ok("PFADD", "h", f"m{step}")
        c.db.expire_due(c.ctx.now_ms)
        entry = c.db.get(b"h", c.ctx.now_ms)
        assert entry is not None and len(list(entry.slices())) <= 4 + 1
    assert c.db.windows.slices_dropped >= 40 * 250 // 500 - 5 - 1


def _state(client: Client) -> bytes | None:
    entry = client.db.get(b"k", client.ctx.now_ms)
    return None if entry is None else encode_entry(entry)


_CREATE = {
    "PFADD": ("HEARSAY.PFRESERVE", "k", "WINDOW", W_S),
    "BF.ADD": ("BF.RESERVE", "k", "0.1", 5, "WINDOW", W_S),
    "BF.MADD": ("BF.RESERVE", "k", "0.1", 5, "WINDOW", W_S),
    "BF.EXISTS": ("BF.RESERVE", "k", "0.1", 5, "WINDOW", W_S),
    "CMS.INCRBY": ("CMS.INITBYDIM", "k", 20, 3, "WINDOW", W_S),
    "CMS.QUERY": ("CMS.INITBYDIM", "k", 20, 3, "WINDOW", W_S),
    "TOPK.ADD": ("TOPK.RESERVE", "k", 2, 4, 3, "0.9", "WINDOW", W_S),
    "TOPK.INCRBY": ("TOPK.RESERVE", "k", 2, 4, 3, "0.9", "WINDOW", W_S),
}


@settings(max_examples=60, deadline=None)
@given(
    command=st.sampled_from(sorted(_CREATE)),
    earlier=st.lists(st.sampled_from([b"a", b"b", b"c", b"d"]), max_size=4),
    run=st.lists(
        st.lists(st.sampled_from([b"a", b"b", b"c", b"d", b"e"]), min_size=1, max_size=3),
        min_size=2,
        max_size=6,
    ),
)
def test_pipelined_runs_on_windowed_keys_equal_the_calls_in_turn(
    command: str, earlier: list[bytes], run: list[list[bytes]]
) -> None:
    twins = [Client(), Client()]
    for twin in twins:
        twin.ok(*_CREATE[command])
        _at(twin, 0)
        for item in earlier:  # something in an older slice
            if command == "PFADD":
                twin.ok("PFADD", "k", item)
            elif command.startswith("BF"):
                twin.ok("BF.ADD", "k", item)
            elif command.startswith("TOPK"):
                twin.ok("TOPK.ADD", "k", item)
            else:
                twin.ok("CMS.INCRBY", "k", item, 1)
        _at(twin, 2_500)
    name = command.encode()
    if command in ("BF.ADD", "BF.EXISTS"):
        calls = [[name, b"k", items[0]] for items in run]
    elif command in ("CMS.INCRBY", "TOPK.INCRBY"):
        calls = [[name, b"k", *(part for item in items for part in (item, b"2"))] for items in run]
    else:
        calls = [[name, b"k", *items] for items in run]
    assert REGISTRY.run_at(calls, 0) == len(calls)
    batched, alone = twins
    expected = [REGISTRY.dispatch(alone.ctx, args) for args in calls]
    assert REGISTRY.dispatch_run(batched.ctx, calls) == expected
    assert _state(batched) == _state(alone)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), skew_ms=st.integers(-400, 400))
def test_replicas_with_skewed_clocks_converge(seed: int, skew_ms: int) -> None:
    """Two replicas exchange their windowed keys in any order, including late copies of
    slices the other already dropped; each sweeps on its own clock. Once both clocks are past
    every write's death, they hold the same entries (equal bucket hashes); at any instant both
    answer the same from the moment every write reached both."""
    rng = random.Random(seed)
    nodes = [Client("aaaaaaaaaaaaaaaa"), Client("bbbbbbbbbbbbbbbb")]
    offsets = [0, skew_ms]
    for node in nodes:
        node.ok("HEARSAY.PFRESERVE", "h", "WINDOW", 2, "SLICES", 4)
        node.ok("BF.RESERVE", "b", "0.01", 100, "WINDOW", 2, "SLICES", 4)
        node.ok("CMS.INITBYDIM", "c", 50, 3, "WINDOW", 2, "SLICES", 4)
        node.ok("TOPK.RESERVE", "t", 3, 8, 3, "0.9", "WINDOW", 2, "SLICES", 4)
    keys = [b"h", b"b", b"c", b"t"]
    for step in range(60):
        true_ms = step * 100
        for node, offset in zip(nodes, offsets, strict=True):
            _at(node, true_ms + offset)
        writer = rng.randrange(2)
        item = f"i{rng.randrange(20)}"
        nodes[writer].ok(*rng.choice([("PFADD", "h"), ("BF.ADD", "b")]), item)
        nodes[writer].ok("CMS.INCRBY", "c", item, rng.randrange(1, 4))
        nodes[writer].ok("TOPK.INCRBY", "t", item, rng.randrange(1, 4))
        if rng.random() < 0.3:  # an exchange, possibly of slices the receiver dropped
            source, target = nodes[writer], nodes[1 - writer]
            for key in keys:
                entry = source.db.keyspace.entry(key)
                assert entry is not None
                target.db.merge_remote(key, entry.copy())
        for node in nodes:
            node.db.expire_due(node.ctx.now_ms)
    for source, target in (nodes, nodes[::-1]):  # every write reaches both
        for key in keys:
            entry = source.db.keyspace.entry(key)
            assert entry is not None
            target.db.merge_remote(key, entry.copy())
    for node, offset in zip(nodes, offsets, strict=True):
        _at(node, 5_900 + offset)
    reads = [("PFCOUNT", "h"), ("BF.MEXISTS", "b", *(f"i{i}" for i in range(20))),
             ("CMS.QUERY", "c", *(f"i{i}" for i in range(20))), ("TOPK.LIST", "t", "WITHCOUNT"),
             ("TOPK.COUNT", "t", *(f"i{i}" for i in range(20)))]  # fmt: skip
    if skew_ms == 0:
        assert [nodes[0].ok(*r) for r in reads] == [nodes[1].ok(*r) for r in reads]
    for node, offset in zip(nodes, offsets, strict=True):
        _at(node, 12_000 + offset)  # both clocks past every write's death
        node.db.expire_due(node.ctx.now_ms)
    hashes = [node.db.keyspace.bucket_hashes().tolist() for node in nodes]
    assert hashes[0] == hashes[1]
    assert [nodes[0].ok(*r) for r in reads] == [nodes[1].ok(*r) for r in reads]


def test_a_windowed_bloom_slice_holds_its_error_past_its_capacity() -> None:
    """A slice given 20x its capacity grows sub-filters as BF.RESERVE's filter does, so its
    error stays near the asked one (a fixed-size slice answered "present" to everything once
    ~3.5x its capacity had gone in); NONSCALING refuses past the capacity until the next slice."""
    c = Client()
    c.ok("BF.RESERVE", "b", "0.01", 100, "WINDOW", W_S)
    added = c.ok("BF.MADD", "b", *(f"in{i}" for i in range(2000)))
    assert added.count(1) >= 1960  # (an item a fuller filter already "holds": <= 1% each)  # type: ignore[union-attr]
    assert c.ok("BF.MEXISTS", "b", *(f"in{i}" for i in range(2000))) == [1] * 2000
    false_positives = sum(c.ok("BF.MEXISTS", "b", *(f"out{i}" for i in range(4000))))  # type: ignore[arg-type]
    assert false_positives <= 0.02 * 4000, false_positives
    assert dict(c.ok("BF.INFO", "b").pairs)["Number of filters"] > 1  # type: ignore[union-attr]
    c.ok("BF.RESERVE", "fixed", "0.01", 100, "NONSCALING", "WINDOW", W_S)
    replies = [c("BF.ADD", "fixed", f"x{i}") for i in range(300)]
    refused = [r for r in replies if isinstance(r, ErrorReply)]
    assert refused and refused[0] == ErrorReply("ERR non scaling filter is full")
    assert 90 <= replies.index(refused[0]) <= 110
    assert c.ok("BF.MADD", "fixed", "x0", "new") == [
        0,
        ErrorReply("ERR non scaling filter is full"),
    ]
    _at(c, W_MS // 10 + 1)  # the next slice (W/SLICES later): room again
    assert c.ok("BF.ADD", "fixed", "new") == 1
    c.ok("BF.RESERVE", "grows", "0.01", 100, "EXPANSION", 4, "WINDOW", W_S)
    assert c.ok("BF.INFO", "grows", "EXPANSION") == [4]
