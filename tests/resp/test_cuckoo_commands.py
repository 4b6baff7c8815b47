"""CF.* against fakeredis (the reference for reply shapes and error texts: this machine's
redis-server has no RedisBloom) and through redis-py's ``cf()`` helpers, on a real node.

The script stays far below any filter's fill, where fakeredis's answers are exact; CF.INFO's
numbers depend on the layout (hearsay never kicks between buckets), so only its fields and
their types are compared.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from hearsay.resp.families.cuckoo import ITEMS_PER_CALL_MAX
from hearsay.resp.replies import ErrorReply, Map
from tests.support.command_client import REGISTRY, Client
from tests.support.nodes import NodeProcess, start_node

pytestmark = pytest.mark.integration

SCRIPT: list[tuple[str | int, ...]] = [
    ("CF.RESERVE", "c", 1000),
    ("CF.RESERVE", "c2", 1000, "BUCKETSIZE", 4, "MAXITERATIONS", 50, "EXPANSION", 2),
    ("CF.EXISTS", "c", "a"),
    ("CF.ADD", "c", "a"),
    ("CF.ADD", "c", "a"),
    ("CF.ADDNX", "c", "a"),
    ("CF.ADDNX", "c", "b"),
    ("CF.COUNT", "c", "a"),
    ("CF.COUNT", "c", "z"),
    ("CF.EXISTS", "c", "a"),
    ("CF.MEXISTS", "c", "a", "b", "z"),
    ("CF.DEL", "c", "a"),
    ("CF.COUNT", "c", "a"),
    ("CF.DEL", "c", "a"),
    ("CF.DEL", "c", "a"),
    ("CF.EXISTS", "c", "a"),
    ("CF.INSERT", "i", "ITEMS", "x", "y", "x"),
    ("CF.INSERT", "i2", "CAPACITY", 500, "ITEMS", "x"),
    ("CF.INSERTNX", "i", "ITEMS", "x", "q"),
    ("CF.INSERT", "i", "NOCREATE", "ITEMS", "r"),
    ("CF.MEXISTS", "i", "x", "y", "q", "r", "s"),
    ("CF.ADD", "new", "v"),
    ("CF.EXISTS", "missing", "v"),
    ("CF.COUNT", "missing", "v"),
    ("TYPE", "c"),
]

REFUSALS: list[tuple[str | int, ...]] = [
    ("CF.RESERVE", "rc", 1000),
    ("CF.DEL", "missing", "a"),
    ("CF.INSERT", "missing", "NOCREATE", "ITEMS", "a"),
    ("CF.INSERTNX", "missing", "NOCREATE", "ITEMS", "a"),
    ("CF.SCANDUMP", "missing", 0),
]

# Where fakeredis's generic parsing answers for RedisBloom: rm_cuckoo.c's own texts.
OWN_REFUSALS: dict[tuple[str | int, ...], str] = {
    ("CF.RESERVE", "bad", "x"): "Bad capacity",
    ("CF.RESERVE", "bad", 3): "Capacity must be at least (BucketSize * 2)",
    ("CF.RESERVE", "bad", 100, "BUCKETSIZE", 0): (
        "BUCKETSIZE: value must be an integer between 1 and 255, inclusive."
    ),
    ("CF.RESERVE", "bad", 100, "MAXITERATIONS", "x"): "Couldn't parse MAXITERATIONS",
    ("CF.RESERVE", "bad", 100, "EXPANSION", 40_000): (
        "EXPANSION: value must be an integer between 0 and 32768, inclusive."
    ),
    ("CF.RESERVE", "bad", 100, "BUCKETSIZE"): "wrong number of arguments for 'cf.reserve' command",
    ("CF.INFO", "missing"): "not found",
    ("CF.LOADCHUNK", "bad", 1, "garbage"): "Couldn't load chunk: not a CF.SCANDUMP chunk",
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("cuckoo-node"))
    yield started
    started.stop(signal.SIGKILL)


def test_cf_replies_match_fakeredis(node: NodeProcess) -> None:
    reference = fakeredis.FakeRedis()
    ours = node.client()
    try:
        for args in SCRIPT:
            expected = reference.execute_command(*args)
            got = ours.execute_command(*args)
            assert got == expected, (args, got, expected)
        for key in ("c", "c2", "i"):
            mine, theirs = vars(ours.cf().info(key)), vars(reference.cf().info(key))
            assert mine.keys() == theirs.keys()
            assert all(isinstance(v, int) for v in mine.values()), mine
    finally:
        ours.close()
        reference.close()


def test_cf_refusals_match_fakeredis(node: NodeProcess) -> None:
    reference = fakeredis.FakeRedis()
    ours = node.client()
    try:
        for client in (reference, ours):
            client.execute_command("CF.RESERVE", "rc", 1000)
        for args in REFUSALS:
            with pytest.raises(redis.ResponseError) as expected:
                reference.execute_command(*args)
            with pytest.raises(redis.ResponseError) as got:
                ours.execute_command(*args)
            assert str(got.value) == str(expected.value), args
        for args, text in OWN_REFUSALS.items():
            with pytest.raises(redis.ResponseError) as got:
                ours.execute_command(*args)
            assert str(got.value) == text, args
        for client in (reference, ours):
            client.incr("rs")
            with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
                client.execute_command("CF.ADD", "rs", 1)
    finally:
        ours.close()
        reference.close()


def test_redis_py_cf_helpers_and_scandump_round_trip(node: NodeProcess) -> None:
    client = node.client()
    try:
        cf = client.cf()
        assert cf.create("helpers", 20_000, bucket_size=2, max_iterations=20, expansion=1)
        items = [f"item-{i}" for i in range(6_000)]
        assert cf.insert("helpers", items[:3_000]) == [1] * 3_000
        assert cf.insertnx("helpers", items[2_990:3_010]) == [0] * 10 + [1] * 10
        assert cf.add("helpers", "solo") == 1
        assert cf.addnx("helpers", "solo") == 0
        assert cf.exists("helpers", "solo") == 1
        assert cf.mexists("helpers", "solo", "item-0") == [1, 1]
        assert cf.count("helpers", "solo") >= 1
        assert cf.delete("helpers", "solo") == 1
        assert cf.exists("helpers", "solo") == 0
        info = cf.info("helpers")
        assert info.insertedNum == 3_010 and info.deletedNum == 1
        assert info.bucketSize == 2 and info.expansionRate == 1 and info.maxIteration == 20
        cursor, chunks = 0, []
        while True:
            cursor, data = cf.scandump("helpers", cursor)
            if cursor == 0:
                break
            chunks.append((cursor, data))
        assert len(chunks) >= 1
        for at, data in chunks:
            assert cf.loadchunk("copy", at, data)
        assert client.execute_command("CF.MEXISTS", "copy", *items[:3_010]) == [1] * 3_010
        assert cf.info("copy").insertedNum == 3_010
        damaged = chunks[0][1][:-1] + bytes([chunks[0][1][-1] ^ 1])
        with pytest.raises(redis.ResponseError, match="Couldn't load chunk"):
            cf.loadchunk("copy2", 1, damaged)
        assert client.exists("copy2") == 0
        resp3 = node.client(protocol=3)  # RESP3: the same replies (INFO as redis-py's dict)
        try:
            assert resp3.cf().exists("helpers", "item-0") == 1
            assert resp3.cf().mexists("helpers", "solo", "item-1") == [0, 1]
            info3 = {bytes(k).decode(): v for k, v in resp3.cf().info("helpers").items()}
            assert info3["Number of items inserted"] == 3_010
            assert info3["Max iterations"] == 20
        finally:
            resp3.close()
    finally:
        client.close()


def test_filter_full_and_growth_in_process() -> None:
    client = Client()
    client.ok("CF.RESERVE", "fixed", 4, "BUCKETSIZE", 1, "EXPANSION", 0)
    replies = [client("CF.ADD", "fixed", f"i{i}") for i in range(20)]
    assert ErrorReply("ERR Filter is full") in replies
    assert client.ok("CF.INSERT", "fixed", "ITEMS", *[f"j{i}" for i in range(20)]).count(-1) > 0  # type: ignore[union-attr]
    client.ok("CF.RESERVE", "grows", 4, "BUCKETSIZE", 1, "EXPANSION", 2)
    assert [client("CF.ADD", "grows", f"i{i}") for i in range(100)] == [1] * 100
    info = client.ok("CF.INFO", "grows")
    assert isinstance(info, Map)
    fields = {str(name): value for name, value in info.pairs}
    assert fields["Number of filters"] > 1  # type: ignore[operator]
    assert fields["Number of items inserted"] == 100


def test_a_call_of_more_items_than_one_may_carry_is_refused_and_changes_nothing() -> None:
    """CF.INSERT / INSERTNX / MEXISTS carry at most ITEMS_PER_CALL_MAX items (so no request
    holds the node for long): one more is refused with a clear error, before any is added;
    exactly that many are taken, in one pipelined run too."""
    client = Client()
    client.ok("CF.RESERVE", "k", 4 * ITEMS_PER_CALL_MAX)
    items = [f"i{i}" for i in range(ITEMS_PER_CALL_MAX + 1)]
    refusal = ErrorReply(f"ERR CF: too many items for one call (at most {ITEMS_PER_CALL_MAX})")
    for command in ("CF.INSERT", "CF.INSERTNX"):
        assert client(command, "k", "ITEMS", *items) == refusal
    assert client("CF.MEXISTS", "k", *items) == refusal
    assert client("CF.INSERT", "new", "ITEMS", *items) == refusal
    assert client("EXISTS", "new") == 0
    info = client.ok("CF.INFO", "k")
    assert isinstance(info, Map)
    assert dict((str(n), v) for n, v in info.pairs)["Number of items inserted"] == 0
    assert client.ok("CF.INSERT", "k", "ITEMS", *items[:-1]) == [1] * ITEMS_PER_CALL_MAX
    assert client.ok("CF.MEXISTS", "k", *items[:-1]) == [1] * ITEMS_PER_CALL_MAX
    run = [[b"CF.MEXISTS", b"k", *(i.encode() for i in items)], [b"CF.MEXISTS", b"k", b"i0"]]
    assert REGISTRY.dispatch_run(client.ctx, run) == [refusal, [1]]
