"""Pipelined runs of one CF command to one key (``CommandRegistry.run_at``, answered by the
command's run handler in one batch) reply and leave the key exactly as the same calls
dispatched one after another; a big CF.INSERT is placed in one batch and gives the state
the same items added one call at a time give."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.codec import encode_entry
from hearsay.resp.families.cuckoo import ITEMS_PER_CALL_MAX
from tests.support.command_client import NOW_MS, REGISTRY, Client

_ITEMS = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f", b"g"])
_STARTS = ("absent", "small", "tiny", "fixed", "counter", "expired")


def _state(client: Client, key: bytes = b"k") -> bytes | None:
    entry = client.db.get(key, NOW_MS)
    return None if entry is None else encode_entry(entry)


def _twins(start: str) -> list[Client]:
    twins = [Client(), Client()]
    for twin in twins:
        if start == "small":
            twin.ok("CF.RESERVE", "k", 8, "EXPANSION", 2)
            twin.ok("CF.INSERT", "k", "ITEMS", "a", "b", "a", "x")
            twin.ok("CF.DEL", "k", "b")
        if start == "tiny":  # two buckets of one slot: items share them, sub-filters appear
            twin.ok("CF.RESERVE", "k", 2, "BUCKETSIZE", 1)
            twin.ok("CF.ADD", "k", "c")
        if start == "fixed":  # fills: FULL replies
            twin.ok("CF.RESERVE", "k", 4, "BUCKETSIZE", 1, "EXPANSION", 0)
        if start == "counter":
            twin.ok("INCR", "k")
        if start == "expired":
            twin.ok("CF.ADD", "k", "a")
            twin.ok("PEXPIRE", "k", 5)
            twin.ctx.now_ms += 5
    return twins


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_STARTS),
    st.sampled_from([b"CF.ADD", b"CF.ADDNX", b"CF.EXISTS", b"CF.DEL"]),
    st.lists(_ITEMS, min_size=2, max_size=20),
)
def test_a_run_of_one_cf_command_replies_as_the_calls_in_turn(
    start: str, command: bytes, items: list[bytes]
) -> None:
    run = [[command, b"k", item] for item in items]
    assert REGISTRY.run_at([[b"PING"], *run, [command, b"other"]], 1) == len(run)
    batched, alone = _twins(start)
    expected = [REGISTRY.dispatch(alone.ctx, args) for args in run]
    assert REGISTRY.dispatch_run(batched.ctx, run) == expected
    assert _state(batched) == _state(alone)


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(_STARTS),
    st.lists(st.lists(_ITEMS, min_size=1, max_size=5), min_size=2, max_size=8),
)
def test_a_run_of_cf_mexists_replies_as_the_calls_in_turn(
    start: str, calls: list[list[bytes]]
) -> None:
    run = [[b"CF.MEXISTS", b"k", *items] for items in calls]
    batched, alone = _twins(start)
    expected = [REGISTRY.dispatch(alone.ctx, args) for args in run]
    assert REGISTRY.dispatch_run(batched.ctx, run) == expected


def _insert_matches_calls_one_at_a_time(n: int) -> None:
    """CF.INSERT of ``n`` items (repeats included, so some fingerprints pile up) into a
    filter that grows, in calls of as many items as one may carry, against the same items
    added by ``n`` CF.ADD calls."""
    items = [f"item-{i % (n // 2)}".encode() for i in range(n)]
    batched, alone = Client(), Client()
    for twin in (batched, alone):
        twin.ok("CF.RESERVE", "k", n // 4, "EXPANSION", 2)
    calls = [items[at : at + ITEMS_PER_CALL_MAX] for at in range(0, n, ITEMS_PER_CALL_MAX)]
    replies = [r for call in calls for r in batched.ok("CF.INSERT", "k", "ITEMS", *call)]
    assert replies == [alone("CF.ADD", "k", item) for item in items]
    assert _state(batched) == _state(alone)
    assert [r for call in calls for r in batched.ok("CF.MEXISTS", "k", *call)] == [1] * n


def test_a_big_cf_insert_gives_the_state_of_its_items_added_one_at_a_time() -> None:
    _insert_matches_calls_one_at_a_time(20_000)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the 200,000 calls one at a time are the slow half
def test_a_200k_item_cf_insert_gives_the_state_of_its_items_added_one_at_a_time() -> None:
    _insert_matches_calls_one_at_a_time(200_000)
