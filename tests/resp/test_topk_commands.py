"""TOPK.* against fakeredis (the reference for reply shapes and error texts: this machine's
redis-server has no RedisBloom) and through redis-py's ``topk()`` helpers, on a real node.

The script's Top-Ks are wide and hold a few items of distinct counts, so no two items share a
bucket and every count is exact in fakeredis and hearsay alike; where fakeredis's generic
argument parsing answers for RedisBloom, rm_topk.c's own text is pinned instead.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from hearsay.resp.replies import ErrorReply, Map
from tests.support.command_client import Client
from tests.support.nodes import NodeProcess, start_node

pytestmark = pytest.mark.integration

SCRIPT: list[tuple[str | int | float, ...]] = [
    ("TOPK.RESERVE", "t", 2, 2000, 7, 0.9),
    ("TOPK.RESERVE", "d", 5),
    ("TOPK.INFO", "d"),
    ("TOPK.LIST", "t"),
    ("TOPK.INCRBY", "t", "a", 3, "b", 2),
    ("TOPK.ADD", "t", "c"),
    ("TOPK.INCRBY", "t", "c", 5),
    ("TOPK.ADD", "t", "a", "a"),
    ("TOPK.LIST", "t"),
    ("TOPK.LIST", "t", "WITHCOUNT"),
    ("TOPK.QUERY", "t", "a", "b", "c", "nope"),
    ("TOPK.COUNT", "t", "a", "c", "nope"),
    ("TOPK.INCRBY", "t", "z", 0),
    ("TYPE", "t"),
]

REFUSALS: list[tuple[str | int | float, ...]] = [
    ("TOPK.RESERVE", "rt", 3),
    ("TOPK.ADD", "missing", "a"),
    ("TOPK.INCRBY", "missing", "a", 1),
    ("TOPK.QUERY", "missing", "a"),
    ("TOPK.COUNT", "missing", "a"),
    ("TOPK.LIST", "missing"),
    ("TOPK.INFO", "missing"),
    ("TOPK.RESERVE", "bad", 0),
    ("TOPK.RESERVE", "bad", "x"),
    ("TOPK.RESERVE", "bad", 3, 0, 7, 0.9),
    ("TOPK.RESERVE", "bad", 3, "x", 7, 0.9),
    ("TOPK.RESERVE", "bad", 3, 8, 0, 0.9),
    ("TOPK.RESERVE", "bad", 3, 8, 7, 1.5),
    ("TOPK.RESERVE", "bad", 3, 8, 7, 0),
    ("TOPK.RESERVE", "bad", 3, 8),
    ("TOPK.LIST", "rt", "NOPE"),
    ("TOPK.INCRBY", "rt", "a"),
]

# Where fakeredis's generic parser answers for RedisBloom: rm_topk.c's own texts.
OWN_REFUSALS: dict[tuple[str | int | float, ...], str] = {
    ("TOPK.RESERVE", "bad", 0): "TopK: invalid k",
    ("TOPK.RESERVE", "bad", "x"): "TopK: invalid k",
    ("TOPK.RESERVE", "bad", 3, 0, 7, 0.9): "TopK: invalid width",
    ("TOPK.RESERVE", "bad", 3, "x", 7, 0.9): "TopK: invalid width",
    ("TOPK.RESERVE", "bad", 3, 8, 0, 0.9): "TopK: invalid depth",
    ("TOPK.RESERVE", "bad", 3, 8, 7, 1.5): "TopK: invalid decay value. must be '<= 1' & '> 0'",
    ("TOPK.RESERVE", "bad", 3, 8, 7, 0): "TopK: invalid decay value. must be '<= 1' & '> 0'",
    ("TOPK.RESERVE", "bad", 3, 8): "wrong number of arguments for 'topk.reserve' command",
    ("TOPK.LIST", "rt", "NOPE"): "WITHCOUNT keyword expected",
    ("TOPK.INCRBY", "rt", "a"): "wrong number of arguments for 'topk.incrby' command",
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("topk-node"))
    yield started
    started.stop(signal.SIGKILL)


def normal(reply: object) -> object:
    """A reply with fakeredis's and redis-py's spellings of the same value made equal."""
    if isinstance(reply, list):
        return [normal(part) for part in reply]
    if isinstance(reply, dict):
        return {normal(name): normal(value) for name, value in reply.items()}
    if isinstance(reply, str):
        return reply.encode()
    if isinstance(reply, float):
        return repr(reply).encode()
    return reply


def test_topk_replies_match_fakeredis(node: NodeProcess) -> None:
    reference = fakeredis.FakeRedis()
    ours = node.client()
    try:
        for args in SCRIPT:
            expected = reference.execute_command(*args)
            got = ours.execute_command(*args)
            if args[0] == "TOPK.INFO" and isinstance(got, list):  # a flat list in RESP2
                got = dict(zip(got[0::2], got[1::2], strict=True))
            assert normal(got) == normal(expected), (args, got, expected)
    finally:
        ours.close()
        reference.close()


def test_topk_refusals_match_fakeredis(node: NodeProcess) -> None:
    reference = fakeredis.FakeRedis()
    ours = node.client()
    try:
        for client in (reference, ours):
            client.execute_command("TOPK.RESERVE", "rt", 3)
        for args in REFUSALS:
            with pytest.raises(redis.ResponseError) as got:
                ours.execute_command(*args)
            wanted = OWN_REFUSALS.get(args)
            if wanted is None:
                with pytest.raises(redis.ResponseError) as expected:
                    reference.execute_command(*args)
                wanted = str(expected.value)
            assert str(got.value) == wanted, args
        for client in (reference, ours):
            client.incr("s")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            ours.execute_command("TOPK.ADD", "s", "a")
    finally:
        ours.close()
        reference.close()


def _text(values: list[object]) -> list[object]:
    """Items as text: redis-py decodes them under RESP2 and hands RESP3's bytes over as they
    are (no RESP3 callbacks for these commands, against Redis 8 alike)."""
    return [v.decode() if isinstance(v, bytes) else v for v in values]


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_topk_helpers_work_unchanged(node: NodeProcess, protocol: int) -> None:
    client = node.client(protocol=protocol)  # (keys per protocol: the node is shared)
    key = f"helpers{protocol}"
    try:
        tk = client.topk()
        assert tk.reserve(key, 3, 1000, 5, 0.9)
        assert tk.add(key, "x", "y") == [None, None]
        assert tk.incrby(key, ["x", "z"], [5, 2]) == [None, None]
        assert tk.query(key, "x", "w") == [1, 0]
        with pytest.warns(DeprecationWarning):  # redis-py marks TOPK.COUNT deprecated
            assert tk.count(key, "x", "y", "z") == [6, 1, 2]
        assert _text(tk.list(key)) == ["x", "z", "y"]
        assert _text(tk.list(key, withcount=True)) == ["x", 6, "z", 2, "y", 1]
        assert _text(tk.add(key, "w", "w")) == ["y", None]  # the list's minimum leaves
        info = tk.info(key)
        if isinstance(info, dict):  # RESP3: redis-py hands the reply's map over as it is
            fields = {bytes(name).decode(): value for name, value in info.items()}
            shape = (fields["k"], fields["width"], fields["depth"], float(fields["decay"]))
        else:
            shape = (info.k, info.width, info.depth, float(info.decay))
        assert shape == (3, 1000, 5, 0.9)
    finally:
        client.close()


def test_increments_bounds_and_the_refusal_inside_the_reply() -> None:
    """RedisBloom adds the items before a bad increment and ends the reply with its error."""
    client = Client()
    client.ok("TOPK.RESERVE", "t", 2, 500, 4, 0.9)
    reply = client("TOPK.INCRBY", "t", "a", 4, "b", 100_001, "c", 1)
    assert isinstance(reply, list) and reply[0] is None
    assert str(reply[1]).startswith("TopK: increment must be an integer greater or equal to 0")
    assert client.ok("TOPK.LIST", "t", "WITHCOUNT") == [b"a", 4]
    assert client.ok("TOPK.INCRBY", "t", "a", 100_000) == [None]
    assert client.ok("TOPK.COUNT", "t", "a") == [100_004]
    too_long = b"x" * 65_525
    assert client("TOPK.ADD", "t", too_long) == ErrorReply("TopK: an item is at most 65524 bytes")
    assert client("TOPK.ADD", "t", *[b"i%d" % i for i in range(8_193)]) == ErrorReply(
        "TopK: too many items for one call (items x depth at most 32768)"
    )  # depth 4: at most 8192 items
    assert client.ok("TOPK.COUNT", "t", too_long) == [0]  # nothing of a refused call stays
    # The key is checked before the items (as RedisBloom), whichever way a call is checked.
    for items in ([b"a"], [too_long], [b"i%d" % i for i in range(9_000)]):
        assert client("TOPK.ADD", "nope", *items) == ErrorReply("TopK: key does not exist")
        client.ok("INCR", "str")
        assert str(client("TOPK.ADD", "str", *items)).startswith("WRONGTYPE")
    assert client("TOPK.RESERVE", "big", 3, 8, 65, 0.9) == ErrorReply(
        "TopK: too large (k at most 10000, depth at most 64, 3 * width * depth at most 2**31)"
    )
    item = b"\r\n\x00" + b"y" * 100  # binary-safe: CR and LF stay
    assert client.ok("TOPK.INCRBY", "t", item, 9) == [None]  # a free position
    assert item in client.ok("TOPK.LIST", "t")


def test_dump_and_restore_keep_every_slice_and_read_the_same() -> None:
    source = Client()
    source.ok("TOPK.RESERVE", "k", 3, 100, 3, 0.8)
    source.ok("TOPK.INCRBY", "k", "a", 7, "b", 5, "c", 2, "d", 1)
    payload = source.ok("DUMP", "k")
    assert isinstance(payload, bytes)
    target = Client("fedcba9876543210")  # another node, another origin
    assert target("RESTORE", "k", "0", payload) == "OK"
    for args in (("TOPK.LIST", "k", "WITHCOUNT"), ("TOPK.COUNT", "k", "a", "d"), ("TYPE", "k")):
        assert target(*args) == source(*args)
    info = target.ok("TOPK.INFO", "k")
    assert isinstance(info, Map)
    assert [value for _, value in info.pairs] == [3, 100, 3, 0.8]
    target.ok("TOPK.ADD", "k", "e")  # the restoring node writes its own slice beside
    assert target.ok("TOPK.COUNT", "k", "a", "e") == [7, 1]
