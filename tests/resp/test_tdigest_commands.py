"""TDIGEST.* against fakeredis (the reference for reply shapes and error texts: this machine's
redis-server has no RedisBloom) and through redis-py's ``tdigest()`` helpers, on a real node.

The script's digests are small (every value its own centroid), so where fakeredis answers
exactly, so must hearsay; QUANTILE between values interpolates in RedisBloom and hearsay but
not in fakeredis, so the script asks only where the two agree by definition.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from hearsay.resp.families.tdigest import VALUES_PER_CALL_MAX
from hearsay.resp.replies import OK, ErrorReply, Map
from tests.support.command_client import REGISTRY, Client
from tests.support.nodes import NodeProcess, start_node

pytestmark = pytest.mark.integration

SCRIPT: list[tuple[str | int | float, ...]] = [
    ("TDIGEST.CREATE", "t"),
    ("TDIGEST.CREATE", "t2", "COMPRESSION", 50),
    ("TDIGEST.MIN", "t"),
    ("TDIGEST.MAX", "t"),
    ("TDIGEST.QUANTILE", "t", 0.5),
    ("TDIGEST.RANK", "t", 1),
    ("TDIGEST.REVRANK", "t", 1),
    ("TDIGEST.ADD", "t", 1, 2, 3, 4, 5),
    ("TDIGEST.ADD", "t2", 10, 20),
    ("TDIGEST.MIN", "t"),
    ("TDIGEST.MAX", "t"),
    ("TDIGEST.QUANTILE", "t", 0, 0.5, 1),
    ("TDIGEST.CDF", "t", 0, 3, 6),
    ("TDIGEST.RANK", "t", 0, 3, 6),
    ("TDIGEST.REVRANK", "t", 0, 3, 6),
    ("TDIGEST.BYRANK", "t", 0, 2, 5),
    ("TDIGEST.BYREVRANK", "t", 0, 2, 5),
    ("TDIGEST.MERGE", "m", 2, "t", "t2"),
    ("TDIGEST.MIN", "m"),
    ("TDIGEST.MAX", "m"),
    ("TDIGEST.BYRANK", "m", 0, 5, 6, 7),
    ("TDIGEST.MERGE", "m", 1, "t", "OVERRIDE"),
    ("TDIGEST.MAX", "m"),
    ("TDIGEST.RESET", "t"),
    ("TDIGEST.MIN", "t"),
    ("TDIGEST.ADD", "t", 7),
    ("TDIGEST.MAX", "t"),
    ("TYPE", "t"),
]

REFUSALS: list[tuple[str | int | float, ...]] = [
    ("TDIGEST.CREATE", "rt"),
    ("TDIGEST.ADD", "missing", 1),
    ("TDIGEST.ADD", "rt", "x"),
    ("TDIGEST.QUANTILE", "rt", 2),
    ("TDIGEST.QUANTILE", "missing", 0.5),
    ("TDIGEST.BYRANK", "rt", -1),
    ("TDIGEST.BYREVRANK", "rt", -1),
    ("TDIGEST.RESET", "missing"),
    ("TDIGEST.MERGE", "rm", 1, "missing"),
    ("TDIGEST.MIN", "missing"),
]


# Where fakeredis's generic parser answers for RedisBloom: rm_tdigest.c's own text.
RANGE_TEXTS: dict[tuple[str | int | float, ...], str] = {
    ("TDIGEST.ADD", "rt", "x"): "T-Digest: error parsing val parameter",
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("tdigest-node"))
    yield started
    started.stop(signal.SIGKILL)


def same(got: object, expected: object) -> bool:
    """Equal replies, NaN equal to NaN (redis-py parses some doubles, not others)."""
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(map(same, got, expected))
    if isinstance(got, bytes | float | int) and isinstance(expected, bytes | float | int):
        try:
            a, b = float(got), float(expected)
        except ValueError:
            return got == expected
        return (math.isnan(a) and math.isnan(b)) or a == b
    return got == expected


def test_tdigest_replies_match_fakeredis(node: NodeProcess) -> None:
    reference = fakeredis.FakeRedis()
    ours = node.client()
    try:
        for args in SCRIPT:
            expected = reference.execute_command(*args)
            got = ours.execute_command(*args)
            assert same(got, expected), (args, got, expected)
        assert set(ours.execute_command("TDIGEST.INFO", "t2")) >= set(
            reference.execute_command("TDIGEST.INFO", "t2")
        )
    finally:
        ours.close()
        reference.close()


def test_tdigest_refusals_match_fakeredis(node: NodeProcess) -> None:
    reference = fakeredis.FakeRedis()
    ours = node.client()
    try:
        for client in (reference, ours):
            client.execute_command("TDIGEST.CREATE", "rt")
            client.execute_command("TDIGEST.ADD", "rt", 1)
        for args in REFUSALS:
            with pytest.raises(redis.ResponseError) as expected:
                reference.execute_command(*args)
            with pytest.raises(redis.ResponseError) as got:
                ours.execute_command(*args)
            wanted = RANGE_TEXTS.get(args, str(expected.value))
            assert str(got.value) == wanted, args
        for client in (reference, ours):
            client.incr("s")
            with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
                client.execute_command("TDIGEST.ADD", "s", 1)
    finally:
        ours.close()
        reference.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_tdigest_helpers_work_unchanged(node: NodeProcess, protocol: int) -> None:
    client = node.client(protocol=protocol)  # (keys per protocol: the node is shared)
    try:
        td = client.tdigest()
        assert td.create(f"helpers{protocol}", compression=200)
        assert td.add(f"helpers{protocol}", [float(v) for v in range(1, 101)])
        assert td.min(f"helpers{protocol}") == 1.0
        assert td.max(f"helpers{protocol}") == 100.0
        assert td.quantile(f"helpers{protocol}", 0.0, 1.0) == [1.0, 100.0]
        assert td.rank(f"helpers{protocol}", 0.5, 1000) == [-1, 100]
        assert td.revrank(f"helpers{protocol}", 0.5, 1000, 100) == [100, -1, 0]
        assert td.byrank(f"helpers{protocol}", 0, 1000) == [1.0, math.inf]
        assert td.byrevrank(f"helpers{protocol}", 0, 99, 1000) == [100.0, 1.0, -math.inf]
        (below_half,) = td.cdf(f"helpers{protocol}", 50.0)
        assert abs(below_half - 0.495) < 0.01
        assert td.cdf(f"helpers{protocol}", 0.0, 1000.0) == [0.0, 1.0]
        assert abs(td.trimmed_mean(f"helpers{protocol}", 0.1, 0.9) - 50.5) < 1.0
        assert td.merge(
            f"helpers{protocol}b", 1, f"helpers{protocol}", compression=100, override=True
        )
        info = td.info(f"helpers{protocol}b")
        if isinstance(info, dict):  # RESP3: redis-py hands the reply's map over as it is
            fields = {bytes(name).decode(): value for name, value in info.items()}
            compression = fields["Compression"]
            weight = fields["Merged weight"] + fields["Unmerged weight"]
        else:
            compression, weight = info.compression, info.merged_weight + info.unmerged_weight
        assert (compression, weight) == (100, 100)
        assert td.reset(f"helpers{protocol}")
        assert math.isnan(td.min(f"helpers{protocol}"))
    finally:
        client.close()


def test_merge_keeps_adds_unless_overridden_and_reset_keeps_the_expiry() -> None:
    """In process (one node): MERGE into an existing digest adds to it, OVERRIDE and another
    COMPRESSION replace it, RESET empties it and keeps its time to live."""
    client = Client()

    def observations(key: str) -> int:
        info = client.ok("TDIGEST.INFO", key)
        assert isinstance(info, Map)
        fields = {str(name): value for name, value in info.pairs}
        return int(str(fields["Merged weight"])) + int(str(fields["Unmerged weight"]))

    client.ok("TDIGEST.CREATE", "a")
    client.ok("TDIGEST.ADD", "a", *range(10))
    client.ok("TDIGEST.CREATE", "b", "COMPRESSION", 20)
    client.ok("TDIGEST.ADD", "b", *range(100, 105))
    client.ok("TDIGEST.MERGE", "m", 2, "a", "b")
    assert observations("m") == 15
    assert client.ok("TDIGEST.MAX", "m") == 104.0
    client.ok("TDIGEST.MERGE", "m", 1, "b")
    assert observations("m") == 20
    client.ok("TDIGEST.MERGE", "m", 1, "m")  # itself, as RedisBloom: counted twice
    assert observations("m") == 40
    client.ok("TDIGEST.MERGE", "m", 1, "a", "OVERRIDE")
    assert observations("m") == 10
    assert client.ok("TDIGEST.MAX", "m") == 9.0
    client.ok("TDIGEST.MERGE", "m", 1, "b", "COMPRESSION", 50)
    assert observations("m") == 15
    assert client.ok("TDIGEST.INFO", "m").pairs[0][1] == 50  # type: ignore[union-attr]
    client.ok("PEXPIRE", "m", 100_000)
    client.ok("TDIGEST.RESET", "m")
    assert observations("m") == 0
    assert 0 < int(str(client.ok("PTTL", "m"))) <= 100_000
    assert client("TDIGEST.MERGE", "m", 1, "nope") == ErrorReply("ERR T-Digest: key does not exist")
    assert client("TDIGEST.MERGE", "m", 0, "a") == ErrorReply(
        "ERR T-Digest: numkeys needs to be a positive integer"
    )
    assert client("TDIGEST.MERGE", "m", 1, "a", "JUNK") == ErrorReply("ERR T-Digest: wrong keyword")


def test_an_add_of_more_values_than_one_call_may_carry_is_refused_and_changes_nothing() -> None:
    """TDIGEST.ADD carries at most VALUES_PER_CALL_MAX values (so no request holds the node
    for long): one more is refused with a clear error (a missing key's error first), alone
    or in a pipelined run; exactly that many are taken."""
    client = Client()
    values = [i % 97 for i in range(VALUES_PER_CALL_MAX + 1)]
    refusal = ErrorReply(
        f"ERR T-Digest: too many values for one call (at most {VALUES_PER_CALL_MAX})"
    )
    assert client("TDIGEST.ADD", "t", *values) == ErrorReply("ERR T-Digest: key does not exist")
    client.ok("TDIGEST.CREATE", "t")
    assert client("TDIGEST.ADD", "t", *values) == refusal
    run = [[b"TDIGEST.ADD", b"t", *(str(v).encode() for v in values)], [b"TDIGEST.ADD", b"t", b"5"]]
    assert REGISTRY.dispatch_run(client.ctx, run) == [refusal, OK]
    info = client.ok("TDIGEST.INFO", "t")
    assert isinstance(info, Map)
    fields = {str(name): value for name, value in info.pairs}
    assert int(str(fields["Merged weight"])) + int(str(fields["Unmerged weight"])) == 1
    client.ok("TDIGEST.ADD", "t", *values[:-1])
    assert client.ok("TDIGEST.MAX", "t") == 96.0
