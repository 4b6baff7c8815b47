"""Pipelined runs of one Bloom or count-min command to one key (``CommandRegistry.run_at``,
answered by the command's run handler in one batch) reply and leave the key exactly as the
same calls dispatched one after another."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.codec import encode_entry
from tests.support.command_client import NOW_MS, REGISTRY, Client

_ITEMS = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f", b"g"])
_BLOOM_STARTS = ("absent", "small", "big", "counter", "expired")
_CMS_STARTS = ("absent", "small", "big", "counter", "near overflow")


def _state(client: Client) -> bytes | None:
    entry = client.db.get(b"k", NOW_MS)
    return None if entry is None else encode_entry(entry)


def _assert_run_as_calls_in_turn(twins: list[Client], run: list[list[bytes]]) -> None:
    assert REGISTRY.run_at([[b"PING"], *run, [run[0][0], b"other"]], 1) == len(run)
    batched, alone = twins
    expected = [REGISTRY.dispatch(alone.ctx, args) for args in run]
    assert REGISTRY.dispatch_run(batched.ctx, run) == expected
    assert _state(batched) == _state(alone)


def _bloom_twins(start: str) -> list[Client]:
    twins = [Client(), Client()]
    for twin in twins:
        if start == "small":
            twin.ok("BF.RESERVE", "k", "0.1", "3")  # few bits: items share them
            twin.ok("BF.ADD", "k", "a")
        if start == "big":
            twin.ok("BF.RESERVE", "k", "0.01", "100000")
            twin.ok("BF.MADD", "k", "b", "x", "y")
        if start == "counter":
            twin.ok("INCR", "k")
        if start == "expired":
            twin.ok("BF.ADD", "k", "a")
            twin.ok("PEXPIRE", "k", 5)
            twin.ctx.now_ms += 5
    return twins


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_BLOOM_STARTS),
    st.sampled_from([b"BF.ADD", b"BF.EXISTS"]),
    st.lists(_ITEMS, min_size=2, max_size=20),
)
def test_a_run_of_bf_add_or_exists_replies_as_the_calls_in_turn(
    start: str, command: bytes, items: list[bytes]
) -> None:
    _assert_run_as_calls_in_turn(_bloom_twins(start), [[command, b"k", item] for item in items])


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_BLOOM_STARTS),
    st.sampled_from([b"BF.MADD", b"BF.MEXISTS"]),
    st.lists(st.lists(_ITEMS, min_size=1, max_size=5), min_size=2, max_size=12),
)
def test_a_run_of_bf_madd_or_mexists_replies_as_the_calls_in_turn(
    start: str, command: bytes, calls: list[list[bytes]]
) -> None:
    run = [[command, b"k", *items] for items in calls]
    _assert_run_as_calls_in_turn(_bloom_twins(start), run)


def test_a_bf_add_of_the_wrong_arity_ends_the_run() -> None:
    pipeline = [[b"BF.ADD", b"k", b"a"], [b"BF.ADD", b"k", b"b"], [b"BF.ADD", b"k", b"c", b"d"]]
    assert REGISTRY.run_at(pipeline, 0) == 2
    assert REGISTRY.run_at([[b"BF.ADD", b"k"], [b"BF.ADD", b"k", b"a"]], 0) == 0


def _cms_twins(start: str) -> list[Client]:
    twins = [Client(), Client()]
    for twin in twins:
        if start == "small":
            twin.ok("CMS.INITBYDIM", "k", 3, 2)  # few cells: items share them
            twin.ok("CMS.INCRBY", "k", "a", 2)
        if start == "big":
            twin.ok("CMS.INITBYDIM", "k", 2000, 5)
            twin.ok("CMS.INCRBY", "k", "b", 1, "x", 4)
        if start == "counter":
            twin.ok("INCR", "k")
        if start == "near overflow":  # a run passing 2**63 - 1 in total: refused from there on
            twin.ok("CMS.INITBYDIM", "k", 10, 2)
            twin.ok("CMS.INCRBY", "k", "a", (1 << 63) - 12)
    return twins


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(_CMS_STARTS),
    st.lists(
        st.lists(st.tuples(_ITEMS, st.integers(min_value=0, max_value=5)), min_size=1, max_size=4),
        min_size=2,
        max_size=12,
    ),
    st.sampled_from([None, b"odd", b"-1", b"x", b"9223372036854775808"]),
    st.integers(min_value=0),
)
def test_a_run_of_cms_incrby_replies_as_the_calls_in_turn(
    start: str, calls: list[list[tuple[bytes, int]]], flaw: bytes | None, where: int
) -> None:
    run = [[b"CMS.INCRBY", b"k"] + [part for pair in pairs for part in (pair[0], b"%d" % pair[1])]
           for pairs in calls]  # fmt: skip
    flawed = run[where % len(run)]
    if flaw == b"odd":  # an item without its amount: that call's arity error
        flawed.append(b"lonely")
    elif flaw is not None:  # an amount RedisBloom refuses
        flawed[-1] = flaw
    _assert_run_as_calls_in_turn(_cms_twins(start), run)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(_CMS_STARTS),
    st.lists(st.lists(_ITEMS, min_size=1, max_size=4), min_size=2, max_size=12),
)
def test_a_run_of_cms_query_replies_as_the_calls_in_turn(
    start: str, calls: list[list[bytes]]
) -> None:
    _assert_run_as_calls_in_turn(_cms_twins(start), [[b"CMS.QUERY", b"k", *c] for c in calls])
