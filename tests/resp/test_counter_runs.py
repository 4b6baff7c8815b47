"""Pipelined runs of INCR/DECR/INCRBY/DECRBY on one key, batched by the command table's run
handler, against the same calls dispatched one by one: same replies, same stored state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.sketch.counter import INT64_MAX, INT64_MIN
from tests.support.command_client import NOW_MS, REGISTRY, Client

_START_STATES = ("absent", "counter", "near max", "near min", "exhausted", "expired", "hll")
_AMOUNTS = [b"0", b"1", b"-1", b"4", b"5", b"-4", b"-5", b"-30", b"x", b"1.5", b"",
            b"99999999999999999999", str(INT64_MAX).encode(), str(INT64_MIN).encode(),
            str(2**62).encode(), str(-(2**62)).encode()]  # fmt: skip


def _start(client: Client, start: str) -> None:
    if start == "counter":
        client.ok("INCRBY", "k", 41)
    if start == "near max":
        client.ok("INCRBY", "k", INT64_MAX - 3)
    if start == "near min":
        client.ok("DECRBY", "k", INT64_MAX - 3)
    if start == "exhausted":  # this origin's increments close to 2**63 - 1, the value near 0
        client.ok("INCRBY", "k", 2**62)
        client.ok("DECRBY", "k", 2**62)
        client.ok("INCRBY", "k", 2**62 - 5)
        client.ok("DECRBY", "k", 2**62 - 5)
    if start == "expired":
        client.ok("INCRBY", "k", 5)
        client.ok("PEXPIRE", "k", 5)
        client.ctx.now_ms += 5
    if start == "hll":
        client.ok("PFADD", "k", "a")


_CALLS = st.one_of(
    st.tuples(st.sampled_from([b"INCR", b"DECR"])).map(list),
    st.tuples(st.sampled_from([b"INCRBY", b"DECRBY"]), st.sampled_from(_AMOUNTS)).map(list),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_START_STATES), _CALLS, st.integers(2, 20), st.data())
def test_a_run_of_counter_calls_replies_and_stores_as_the_calls_in_turn(
    start: str, shape: list[bytes], length: int, data: st.DataObject
) -> None:
    twins = [Client(), Client()]
    for twin in twins:
        _start(twin, start)
    name = shape[0]
    if len(shape) == 1:
        run = [[name, b"k"] for _ in range(length)]
    else:
        amounts = data.draw(st.lists(st.sampled_from(_AMOUNTS), min_size=length, max_size=length))
        run = [[name, b"k", amount] for amount in amounts]
    assert REGISTRY.run_at([[b"PING"], *run, [name, b"other", *shape[1:]]], 1) == len(run)
    batched, alone = twins
    expected = [REGISTRY.dispatch(alone.ctx, call) for call in run]
    assert REGISTRY.dispatch_run(batched.ctx, run) == expected
    assert batched("GET", "k") == alone("GET", "k")
    assert batched.db.get(b"k", batched.ctx.now_ms) == alone.db.get(b"k", alone.ctx.now_ms)


def test_a_run_stops_at_a_call_of_another_arity() -> None:
    """A call the command's arity refuses is never part of a run (it gets its arity error)."""
    run = [[b"INCR", b"k"], [b"INCR", b"k"], [b"INCR", b"k", b"extra"], [b"INCR", b"k"]]
    assert REGISTRY.run_at(run, 0) == 2
    assert REGISTRY.run_at(run, 2) == 0
    assert REGISTRY.run_at([[b"INCRBY", b"k"], [b"INCRBY", b"k"]], 0) == 0


def test_a_run_with_an_overflow_in_the_middle_replies_the_error_there_only() -> None:
    client = Client()
    client.ok("INCRBY", "k", INT64_MAX - 1)
    replies = REGISTRY.dispatch_run(client.ctx, [[b"INCR", b"k"]] * 3)
    assert replies[0] == INT64_MAX
    assert [str(reply) for reply in replies[1:]] == [
        "ERR increment or decrement would overflow"
    ] * 2
    assert client("GET", "k") == str(INT64_MAX).encode()
    assert client.ctx.now_ms == NOW_MS
