"""The sketch commands of a real ``hearsay serve`` process, through redis-py and redis-cli.

What a user runs: redis-py's plain commands and its ``r.bf()`` / ``r.cms()`` helpers (which
parse BF.INFO and CMS.INFO replies), RESP3 through ``protocol=3``, redis-cli as a subprocess,
and moving an HLL from a real redis-server into hearsay (and back) with GET and SET.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.bloom_reference import redisbloom_info_size
from tests.support.nodes import NodeProcess, split_address, start_node

pytestmark = pytest.mark.integration
CLI_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("sketch-node"))
    yield started
    started.stop(signal.SIGKILL)


@pytest.fixture
def r(node: NodeProcess) -> Iterator[redis.Redis]:
    client = node.client()
    yield client
    client.close()


def _cli(node: NodeProcess, *args: str) -> str:
    """redis-cli with stdout not a terminal: raw replies, one line each."""
    exe = shutil.which("redis-cli")
    assert exe is not None, "redis-cli is missing (Debian: redis-tools; make test installs it)"
    host, port = split_address(node.resp)
    done = subprocess.run(
        [exe, "-h", host, "-p", str(port), *args],
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
        check=True,
    )
    return done.stdout.decode()


def test_hll_commands(r: redis.Redis) -> None:
    assert r.pfadd("it:h", "a", "b", "c") == 1
    assert r.pfadd("it:h", "a") == 0
    assert r.pfcount("it:h") == 3
    assert r.pfadd("it:h2", *[f"m{i}" for i in range(1000)]) == 1
    union = r.pfcount("it:h", "it:h2")
    assert r.pfmerge("it:dest", "it:h", "it:h2") is True
    assert r.pfcount("it:dest") == union
    assert r.type("it:h") == b"string"
    data = r.get("it:h2")
    assert isinstance(data, bytes) and data.startswith(b"HYLL")
    assert r.set("it:copy", data) is True
    assert r.pfcount("it:copy") == r.pfcount("it:h2")
    with pytest.raises(redis.ResponseError, match="stores no plain strings"):
        r.set("it:plain", "value")
    assert r.execute_command("HEARSAY.PFRESERVE", "it:p8", 8) == b"OK"
    assert r.pfadd("it:p8", *[f"m{i}" for i in range(1000)]) == 1
    assert 0 < r.pfcount("it:p8") < 2000
    # Mixed precisions count together at the lower one (it:h2's registers folded to 8).
    assert r.pfcount("it:p8", "it:h2") == r.pfcount("it:p8")  # the same 1,000 members
    with pytest.raises(redis.ResponseError, match="cannot raise a HyperLogLog's precision"):
        r.pfmerge("it:h", "it:p8")


def test_counters(r: redis.Redis) -> None:
    assert r.incr("it:n") == 1
    assert r.incrby("it:n", 9) == 10
    assert r.decr("it:n") == 9
    assert r.decrby("it:n", 4) == 5
    assert r.get("it:n") == b"5"
    assert r.get("it:missing") is None
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incrby("it:n", "x")
    r.incrby("it:big", 2**63 - 1)
    with pytest.raises(redis.ResponseError, match="increment or decrement would overflow"):
        r.incr("it:big")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.pfadd("it:n", "a")


def test_bloom_through_the_bf_helper(r: redis.Redis) -> None:
    bf = r.bf()
    assert bf.create("it:bf", 0.001, 1000, noScale=True) is True
    assert bf.add("it:bf", "x") == 1
    assert bf.add("it:bf", "x") == 0
    assert bf.madd("it:bf", "y", "z", "x") == [1, 1, 0]
    assert bf.exists("it:bf", "y") == 1
    assert bf.mexists("it:bf", "x", "y", "z") == [1, 1, 1]
    info = bf.info("it:bf")
    assert info.capacity == 1000
    assert info.size == redisbloom_info_size(0.001, 1000)
    assert info.filterNum == 1
    assert info.insertedNum == 3
    assert info.expansionRate is None
    assert bf.card("it:bf") == 3
    assert bf.insert("it:bf2", ["a", "b"], capacity=50, error=0.01) == [1, 1]
    assert bf.info("it:bf2").capacity == 50
    with pytest.raises(redis.ResponseError, match="not found"):
        bf.insert("it:bf3", ["a"], noCreate=True)
    assert bf.create("it:bf4", 0.01, 100, expansion=4) is True
    assert bf.info("it:bf4").expansionRate == 4
    with pytest.raises(redis.ResponseError, match="cannot expand"):
        bf.create("it:bf5", 0.01, 100, expansion=4, noScale=True)
    assert bf.add("it:bfdefault", "a") == 1
    assert bf.info("it:bfdefault").capacity == 100
    assert r.execute_command("BF.MERGE", "it:bfu", "it:bf", "it:bf") == b"OK"
    assert bf.mexists("it:bfu", "x", "y", "z") == [1, 1, 1]
    assert r.type("it:bf") == b"MBbloom--"


def test_count_min_through_the_cms_helper(r: redis.Redis) -> None:
    cms = r.cms()
    assert cms.initbydim("it:cms", 100, 5) is True
    assert cms.incrby("it:cms", ["a", "b", "a"], [3, 4, 1]) == [3, 4, 4]
    assert cms.query("it:cms", "a", "b", "c") == [4, 4, 0]
    info = cms.info("it:cms")
    assert (info.width, info.depth, info.count) == (100, 5, 8)
    assert cms.initbyprob("it:cms2", 0.01, 0.01) is True
    # RedisBloom: width = ceil(2 / error) = 200, depth = ceil(log10(prob) / log10(0.5)) = 7.
    assert (cms.info("it:cms2").width, cms.info("it:cms2").depth) == (200, 7)
    assert cms.initbydim("it:cms3", 100, 5) is True
    assert cms.merge("it:cms3", 1, ["it:cms"], [3]) is True
    assert cms.query("it:cms3", "a") == [12]
    with pytest.raises(redis.ResponseError, match="key does not exist"):
        cms.query("it:nocms", "a")
    with pytest.raises(redis.ResponseError, match="width/depth is not equal"):
        cms.merge("it:cms3", 1, ["it:cms2"])
    assert r.type("it:cms") == b"CMSk-TYPE"


def test_resp3_info_maps(node: NodeProcess) -> None:
    client = node.client(protocol=3)
    try:
        # Under RESP3 redis-py hands back the map itself: check it is a map with the fields.
        client.bf().add("it3:bf", "x")
        bf_info = client.bf().info("it3:bf")
        assert isinstance(bf_info, dict)
        assert bf_info[b"Capacity"] == 100 and bf_info[b"Expansion rate"] == 2
        client.cms().initbydim("it3:cms", 10, 2)
        cms_info = client.cms().info("it3:cms")
        assert isinstance(cms_info, dict)
        assert (cms_info[b"width"], cms_info[b"depth"], cms_info[b"count"]) == (10, 2, 0)
    finally:
        client.close()


def test_vectors(r: redis.Redis) -> None:
    assert r.execute_command("VMAX", "it:v", 3, 30, 1, 10) == 2
    assert r.execute_command("VMAX", "it:v", 3, 20, 2, 5) == 1
    assert r.execute_command("VGET", "it:v") == [1, 10, 2, 5, 3, 30]
    assert r.execute_command("VGET", "it:nothing") == []
    assert r.type("it:v") == b"vector"


def test_redis_cli(node: NodeProcess) -> None:
    assert _cli(node, "PFADD", "cli:h", "a", "b", "c").strip() == "1"
    assert _cli(node, "PFCOUNT", "cli:h").strip() == "3"
    _cli(node, "BF.ADD", "cli:bf", "x")
    lines = _cli(node, "BF.INFO", "cli:bf").splitlines()
    assert lines[:2] == ["Capacity", "100"]
    assert "Number of items inserted" in lines


def test_redis_cli_bigkeys_and_memkeys_size_every_key(tmp_path: Path) -> None:
    """``--bigkeys`` asks STRLEN of string keys, ``--memkeys`` MEMORY USAGE of every key.

    A node of its own: an HLL of another precision has no Redis string form, so its STRLEN is
    an error (as its GET is), which redis-cli reports.
    """
    node = start_node(tmp_path / "node")
    try:
        _cli(node, "PFADD", "scan:h", *[f"m{i}" for i in range(3000)])
        _cli(node, "INCRBY", "scan:n", "12345")
        _cli(node, "BF.ADD", "scan:bf", "x")
        _cli_sizes_every_key(node)
    finally:
        node.stop()


def _cli_sizes_every_key(node: NodeProcess) -> None:
    exe = shutil.which("redis-cli")
    assert exe is not None  # _cli failed otherwise
    host, port = split_address(node.resp)
    for mode in ("--bigkeys", "--memkeys"):
        done = subprocess.run(
            [exe, "-h", host, "-p", str(port), mode],
            capture_output=True,
            timeout=CLI_TIMEOUT_S,
            check=True,
        )
        out, err = done.stdout.decode(), done.stderr.decode()
        assert "failed" not in out + err, out + err
        assert "Biggest string found" in out, out


@pytest.mark.redis
def test_hll_moves_between_redis_and_hearsay(
    r: redis.Redis,
    redis_server: int,
) -> None:
    real = redis.Redis(host="127.0.0.1", port=redis_server, socket_timeout=30)
    try:
        members = [f"user:{i}" for i in range(5000)]
        real.delete("mig:h")
        real.pfadd("mig:h", *members)
        assert r.set("mig:h", real.get("mig:h")) is True
        assert r.pfcount("mig:h") == real.pfcount("mig:h")
        r.pfadd("mig:h2", *members[:300], "only-in-hearsay")
        real.set("mig:h2", r.get("mig:h2"))
        assert real.pfcount("mig:h2") == r.pfcount("mig:h2")
    finally:
        real.close()


def _pipeline_replies(client: redis.Redis, calls: list[tuple[str, ...]]) -> list[object]:
    pipe = client.pipeline(transaction=False)
    for name, *args in calls:
        getattr(pipe, name)(*args)
    return [repr(x) if isinstance(x, Exception) else x for x in pipe.execute(False)]


@pytest.mark.redis
def test_pipelines_reply_as_redis_does(r: redis.Redis, redis_server: int) -> None:
    """Runs of PFADDs to one key are executed as one batch: every reply must still be the
    one the call gets in turn, as redis-server gives it (same hash, same registers)."""
    real = redis.Redis(host="127.0.0.1", port=redis_server, socket_timeout=30)
    rng = random.Random(11)
    pool = [f"m{i}" for i in range(400)]
    keys = ["pipe:a", "pipe:b"]
    try:
        for client in (real, r):
            client.delete(*keys, "pipe:n")
        for _ in range(40):
            calls: list[tuple[str, ...]] = []
            for _ in range(rng.randrange(1, 80)):
                roll = rng.random()
                if roll < 0.75:
                    key = keys[0] if rng.random() < 0.85 else keys[1]
                    calls.append(("pfadd", key, *rng.sample(pool, rng.randrange(0, 4))))
                elif roll < 0.85:
                    calls.append(("pfcount", rng.choice(keys)))
                elif roll < 0.9:
                    calls.append(("incr", "pipe:n"))
                elif roll < 0.95:
                    calls.append(("pfadd", "pipe:n", rng.choice(pool)))
                else:
                    calls.append(("delete", rng.choice(keys)))
            assert _pipeline_replies(r, calls) == _pipeline_replies(real, calls), calls
        assert r.pfcount(*keys) == real.pfcount(*keys)
    finally:
        real.close()
