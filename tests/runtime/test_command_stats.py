"""The request path's cheap counting (hearsay.runtime.command_stats) against the obvious way."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st

from hearsay.base.durations import BUCKET_BOUNDS_S, BUCKETS, Durations, bucket_of
from hearsay.resp.server_commands import build_registry
from hearsay.runtime.command_stats import (
    CALLS,
    ERRORS,
    FIRST_BUCKET,
    SPELLINGS_MAX,
    SUM_NS,
    CommandStats,
)
from tests.support.command_client import NoServer

BOUNDS_NS = [round(bound * 1e9) for bound in BUCKET_BOUNDS_S]


def bisected(elapsed_ns: int) -> int:
    """The general way: the first bucket whose upper bound is above the duration."""
    return bisect.bisect_right(BOUNDS_NS, elapsed_ns)


@given(st.integers(min_value=0, max_value=10**12))
def test_the_bit_length_bucket_is_the_bisected_one(elapsed_ns: int) -> None:
    assert bucket_of(elapsed_ns) == bisected(elapsed_ns)
    durations = Durations()
    durations.record(elapsed_ns)
    assert durations.counts[bisected(elapsed_ns)] == 1 and durations.sum_ns == elapsed_ns


calls_strategy = st.lists(
    st.tuples(
        st.sampled_from([b"PFADD", b"pfadd", b"PfAdd", b"GET", b"NOPE", b"CLIENT"]),
        st.integers(min_value=0, max_value=2**63 - 1),
        st.integers(min_value=1, max_value=16),
        st.booleans(),
    ),
    max_size=50,
)


@given(calls_strategy)
def test_rows_equal_a_plain_tally(calls: list[tuple[bytes, int, int, bool]]) -> None:
    registry = build_registry(NoServer())
    stats = CommandStats(registry)
    expected: dict[str, list[int]] = {}
    for name, elapsed_ns, count, failed in calls:
        if count == 1:
            stats.record(name, elapsed_ns, failed)
        else:
            stats.record_run(name, elapsed_ns, count if failed else 0, count)
        spec = registry.get(name.decode())
        row = expected.setdefault(
            "unknown" if spec is None else spec.full_name, [0] * (FIRST_BUCKET + BUCKETS)
        )
        row[CALLS] += count
        row[ERRORS] += count if failed else 0
        row[SUM_NS] += elapsed_ns
        row[FIRST_BUCKET + bisected(elapsed_ns // count)] += count  # +Inf folds the slow
    assert {name: row for name, _, row in stats.rows()} == expected


def test_spellings_are_bounded() -> None:
    stats = CommandStats(build_registry(NoServer()))
    for i in range(SPELLINGS_MAX + 100):
        stats.record(f"no-such-{i}".encode(), 1, True)
    assert [name for name, _, _ in stats.rows()] == ["unknown"]
    assert len(stats._by_spelling) == SPELLINGS_MAX
    assert next(row for _, _, row in stats.rows())[CALLS] == SPELLINGS_MAX + 100
