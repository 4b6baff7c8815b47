"""Pipelined runs of one read (GET, PFCOUNT) to one key, answered by
``CommandRegistry.repeated_reads`` (a call that repeats the one before it reuses its reply),
reply exactly as the same calls dispatched one after another."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.command_client import REGISTRY, Client

_STARTS = ("absent", "counter", "small hll", "dense hll", "expired", "bloom", "p12 hll")


def _client(start: str) -> Client:
    client = Client()
    if start == "counter":
        client.ok("INCRBY", "k", 41)
    if start == "small hll":
        client.ok("PFADD", "k", "a", "b", "c")
    if start == "dense hll":
        client.ok("PFADD", "k", *[f"m{i}" for i in range(5000)])
    if start == "expired":
        client.ok("INCR", "k")
        client.ok("PEXPIRE", "k", 5)
        client.ctx.now_ms += 5
    if start == "bloom":
        client.ok("BF.ADD", "k", "a")
    if start == "p12 hll":
        client.ok("HEARSAY.PFRESERVE", "k", 12)
        client.ok("PFADD", "k", "x")
    client.ok("PFADD", "other", "z")
    return client


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_STARTS),
    st.sampled_from([b"GET", b"PFCOUNT", b"get"]),
    st.lists(st.sampled_from([[], [b"other"], [b"k"], [b"missing"]]), min_size=2, max_size=20),
)
def test_a_run_of_one_read_replies_as_the_calls_in_turn(
    start: str, command: bytes, extras: list[list[bytes]]
) -> None:
    arity = 2 if command.upper() == b"GET" else 0
    run = [[command, b"k", *extra] for extra in extras if not arity or not extra]
    if len(run) < 2:
        run = [[command, b"k"], [command, b"k"]]
    batched, alone = _client(start), _client(start)
    spec = REGISTRY.get(command.decode())
    assert spec is not None and spec.run_handler is not None
    expected = [REGISTRY.dispatch(alone.ctx, args) for args in run]
    assert spec.run_handler(batched.ctx, run) == expected
    if command.isupper():  # (run_at groups only names spelled as registered)
        assert REGISTRY.run_at([[b"PING"], *run, [command, b"other"]], 1) == len(run)
        assert REGISTRY.dispatch_run(batched.ctx, run) == expected
