"""Pipelines of one command over changing keys (``CommandRegistry.calls_at``: checked, timed and
answered once for the batch, each call run by its handler) reply and leave every key exactly as
the same calls dispatched one after another; batches end where a run to one key begins, and at
any other command or arity."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice.codec import encode_entry
from hearsay.resp.replies import ErrorReply
from tests.support.command_client import NOW_MS, REGISTRY, Client

_KEYS = (b"fresh", b"counter", b"hll", b"bloom", b"cms", b"topk", b"expired", b"huge")
_CALLS = {
    b"INCR": st.just([]),
    b"DECR": st.just([]),
    b"INCRBY": st.sampled_from([[b"1"], [b"-7"], [b"x"], [b"9223372036854775807"]]),
    b"DECRBY": st.sampled_from([[b"2"], [b"-9223372036854775808"], [b"1.5"]]),
    b"GET": st.just([]),
    b"PFADD": st.lists(st.sampled_from([b"a", b"b", b"c"]), max_size=3),
    b"PFCOUNT": st.just([]),
    b"BF.ADD": st.sampled_from([[b"a"], [b"b"]]),
    b"BF.EXISTS": st.sampled_from([[b"a"], [b"z"]]),
    b"CMS.INCRBY": st.sampled_from([[b"a", b"2"], [b"b", b"x"]]),
    b"TOPK.ADD": st.sampled_from([[b"a"], [b"a", b"b"]]),
    b"VGET": st.just([]),
    b"EXPIRE": st.sampled_from([[b"100"], [b"100", b"NX"], [b"-1"], [b"x"], [b"5", b"GT"]]),
    b"PEXPIREAT": st.sampled_from([[str(NOW_MS + 50).encode()], [b"1", b"XX"]]),
}


def _twins() -> list[Client]:
    twins = [Client(), Client()]
    for twin in twins:
        twin.ok("INCRBY", "counter", 41)
        twin.ok("PFADD", "hll", "a")
        twin.ok("BF.ADD", "bloom", "a")
        twin.ok("CMS.INITBYDIM", "cms", 10, 2)
        twin.ok("TOPK.RESERVE", "topk", 3)
        twin.ok("INCR", "expired")
        twin.ok("PEXPIRE", "expired", 1)
        twin.ok("INCRBY", "huge", (1 << 63) - 1)
    return twins


def _states(client: Client) -> dict[bytes, tuple[bytes | None, int]]:
    states: dict[bytes, tuple[bytes | None, int]] = {}
    for key in _KEYS:
        entry = client.db.get(key, client.ctx.now_ms)
        states[key] = (
            None if entry is None else encode_entry(entry),
            client.db.ttl_ms(key, client.ctx.now_ms),
        )
    return states


def _answered_as_a_connection_does(client: Client, pipeline: list[list[bytes]]) -> list[object]:
    """The pipeline cut as RespConnection cuts it: runs to one key, batches over changing keys
    (both through ``dispatch_run``), and single calls; every cut is checked to be one."""
    replies: list[object] = []
    at = 0
    while at < len(pipeline):  # bounded: at grows by one call or one run per pass
        run = REGISTRY.run_at(pipeline, at)
        batch = REGISTRY.calls_at(pipeline, at)
        assert not (run and batch), "a run and a batch never start at one call"
        size = run or batch
        if size:
            calls = pipeline[at : at + size]
            keys = [args[1] for args in calls]
            if run:
                assert len(set(keys)) == 1
            else:
                assert all(a != b for a, b in itertools.pairwise(keys))
            replies.extend(REGISTRY.dispatch_run(client.ctx, calls))
            at += size
        else:
            replies.append(REGISTRY.dispatch(client.ctx, pipeline[at]))
            at += 1
    return replies


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(_CALLS)).flatmap(
        lambda name: st.lists(
            st.tuples(st.sampled_from(_KEYS), _CALLS[name]).map(
                lambda call: [name, call[0], *call[1]]
            ),
            min_size=2,
            max_size=24,
        )
    ),
    st.integers(min_value=0, max_value=3),
)
def test_a_pipeline_over_changing_keys_replies_as_its_calls_in_turn(
    pipeline: list[list[bytes]], later_ms: int
) -> None:
    batched, alone = _twins()
    for twin in (batched, alone):
        twin.ctx.now_ms += later_ms  # (at 1 ms on, "expired" is gone)
    expected = [REGISTRY.dispatch(alone.ctx, args) for args in pipeline]
    assert _answered_as_a_connection_does(batched, pipeline) == expected
    assert _states(batched) == _states(alone)


def test_a_batch_takes_calls_over_changing_keys_and_ends_where_a_run_begins() -> None:
    incr = [[b"INCR", key] for key in (b"a", b"b", b"c", b"d")]
    assert REGISTRY.calls_at(incr, 0) == 4
    assert REGISTRY.calls_at(incr, 2) == 2
    assert REGISTRY.calls_at(incr, 3) == 0  # one call is no batch
    # a, b, c, c: the batch is a, b; c, c is run_at's run
    repeated = [*incr[:3], [b"INCR", b"c"]]
    assert REGISTRY.calls_at(repeated, 0) == 2
    assert REGISTRY.run_at(repeated, 2) == 2
    assert REGISTRY.calls_at([[b"INCR", b"a"], [b"INCR", b"a"]], 0) == 0
    # another command, another spelling, another arity or a command without a run handler
    assert REGISTRY.calls_at([*incr[:2], [b"DECR", b"c"]], 0) == 2
    assert REGISTRY.calls_at([*incr[:2], [b"incr", b"c"]], 0) == 2
    assert REGISTRY.calls_at([*incr[:2], [b"INCR", b"c", b"d"]], 0) == 2
    assert REGISTRY.calls_at([[b"INCR"], *incr], 0) == 0
    assert REGISTRY.calls_at([[b"SET", b"a", b"1"], [b"SET", b"b", b"1"]], 0) == 0
    assert REGISTRY.calls_at([[b"PFADD", b"a"], [b"PFADD", b"b", b"x", b"y"]], 0) == 2
    assert REGISTRY.calls_at([[b"EXPIRE", b"a", b"1"], [b"EXPIRE", b"b", b"1", b"NX"]], 0) == 2


def test_a_batch_refused_by_the_disk_or_auth_answers_every_call() -> None:
    client = Client()
    client.ctx.authenticated = False
    batch = [[b"INCR", b"a"], [b"INCR", b"b"]]
    replies = REGISTRY.dispatch_run(client.ctx, batch)
    assert replies == [REGISTRY.dispatch(client.ctx, args) for args in batch]
    assert all(isinstance(reply, ErrorReply) and reply.startswith("NOAUTH") for reply in replies)
    assert client.db.get(b"a", NOW_MS) is None
