"""Redis compatibility of a real ``hearsay serve`` against a real redis-server, same run, with
redis-py: every Redis command is implemented or refused clearly, INFO has Redis's fields,
and MGET, OBJECT ENCODING and RESTORE's errors answer as Redis does."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis

from hearsay.resp import messages
from tests.support.nodes import NodeProcess, start_node

pytestmark = [pytest.mark.redis, pytest.mark.integration]

# INFO sections whose every Redis 7 field a client, exporter or test harness may read.
PAYLOAD, TRUNCATED = "<the key's DUMP>", "<the key's DUMP less its last byte>"
INFO_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("compat-node"))
    yield started
    started.stop(signal.SIGKILL)


@pytest.fixture
def hearsay_client(node: NodeProcess) -> Iterator[redis.Redis]:
    client = node.client()
    yield client
    client.close()


@pytest.fixture
def redis_client(redis_server: int) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=redis_server, socket_timeout=10)
    yield client
    client.close()


def _info_fields(client: redis.Redis, section: str) -> list[str]:
    text = client.execute_command("INFO", section)
    if isinstance(text, bytes):
        text = text.decode()
    if isinstance(text, dict):  # redis-py parsed it
        return list(text)
    return [line.split(":", 1)[0] for line in text.splitlines() if ":" in line]


def _error(call: object) -> str:
    assert isinstance(call, redis.ResponseError)
    return str(call)


def _reply_or_error(client: redis.Redis, *args: object) -> object:
    try:
        return client.execute_command(*args)
    except redis.ResponseError as error:
        return error


def test_every_redis_command_is_implemented_or_refused_naming_hearsay(
    hearsay_client: redis.Redis, redis_client: redis.Redis
) -> None:
    for client in (hearsay_client, redis_client):  # the raw replies, not redis-py's parse
        client.set_response_callback("COMMAND", lambda reply, **options: reply)
    names = sorted(name.decode() for name in redis_client.execute_command("COMMAND", "LIST"))
    assert len(names) > 200
    # Containers' subcommands come in COMMAND INFO's tenth field, as "container|sub".
    for info in redis_client.execute_command("COMMAND", "INFO", *names):
        names += [sub[0].decode() for sub in info[9]] if info and len(info) > 9 else []
    refused, implemented = [], []
    for name in sorted(set(names)):
        container, _, sub = name.partition("|")
        registered = hearsay_client.execute_command("COMMAND", "INFO", container)[0]
        if registered is not None and (
            not sub or sub.encode() in [each[0].split(b"|")[1] for each in registered[9]]
        ):
            implemented.append(name)
            continue
        # Not registered: sending it is harmless, and it must say so naming hearsay.
        reply = _reply_or_error(hearsay_client, *name.split("|"))
        assert isinstance(reply, redis.ResponseError), (name, reply)
        refused_name = name if registered is not None else container  # the whole container
        assert str(reply) == messages.not_supported(refused_name)[4:], name
        refused.append(name)
    assert len(implemented) > 50 and len(refused) > 100
    unknown = _reply_or_error(hearsay_client, "NOSUCHCOMMAND")
    assert str(unknown).startswith("unknown command 'NOSUCHCOMMAND'")


def test_info_has_every_field_redis_reports(
    hearsay_client: redis.Redis, redis_client: redis.Redis
) -> None:
    for section in INFO_SECTIONS:
        expected = set(_info_fields(redis_client, section))
        got = set(_info_fields(hearsay_client, section))
        assert expected, section
        assert sorted(expected - got) == [], section
    info = hearsay_client.info("everything")
    assert info["redis_mode"] == "standalone"
    assert info["role"] == "master"
    assert info["connected_slaves"] == 0
    assert info["cluster_enabled"] == 0
    assert info["aof_enabled"] == 0
    assert info["loading"] == 0
    assert info["arch_bits"] == 64
    assert info["hearsay_version"]  # hearsay's own fields stay
    assert "gossip_address" in info
    assert int(info["redis_version"].split(".")[0]) >= 7
    raw = hearsay_client.execute_command("INFO", "cpu")
    assert "used_cpu_user_main_thread" in raw
    assert [module[b"name"] for module in hearsay_client.module_list()] == [b"bf"]


def test_mget_and_object_encoding_answer_as_redis(
    hearsay_client: redis.Redis, redis_client: redis.Redis
) -> None:
    for client in (hearsay_client, redis_client):
        client.pfadd("cmp:h", "a", "b", "c")
        client.incrby("cmp:n", 12)
    redis_client.sadd("cmp:other", "x")  # a type Redis's GET refuses: MGET says nil
    hearsay_client.execute_command("BF.ADD", "cmp:other", "x")
    keys = ["cmp:n", "cmp:h", "cmp:missing", "cmp:other", "cmp:n"]
    assert hearsay_client.mget(keys) == redis_client.mget(keys)
    for key in ("cmp:h", "cmp:n", "cmp:missing"):
        assert hearsay_client.object("ENCODING", key) == redis_client.object("ENCODING", key)


def test_restore_errors_answer_as_redis(
    hearsay_client: redis.Redis, redis_client: redis.Redis
) -> None:
    payloads = {}
    for name, client in (("hearsay", hearsay_client), ("redis", redis_client)):
        client.incrby("rst:n", 3)
        payloads[name] = client.dump("rst:n")
    cases: list[tuple[object, ...]] = [
        ("RESTORE", "rst:n", "0", PAYLOAD),  # BUSYKEY
        ("RESTORE", "rst:n", "0", "garbage"),  # BUSYKEY before the payload check
        ("RESTORE", "rst:new", "0", "garbage"),
        ("RESTORE", "rst:new", "-5", PAYLOAD),
        ("RESTORE", "rst:new", "x", PAYLOAD),
        ("RESTORE", "rst:new", "0", PAYLOAD, "BOGUS"),
        ("RESTORE", "rst:new", "0", PAYLOAD, "FREQ", "300"),
        ("RESTORE", "rst:new", "0", PAYLOAD, "IDLETIME", "-1"),
        ("RESTORE", "rst:new", "0", TRUNCATED),
    ]
    for case in cases:
        replies = []
        for name, client in (("hearsay", hearsay_client), ("redis", redis_client)):
            payload = payloads[name]
            stand_ins = {PAYLOAD: payload, TRUNCATED: payload[:-1]}
            args = [stand_ins.get(arg, arg) for arg in case]
            replies.append(_error(_reply_or_error(client, *args)))
        assert replies[0] == replies[1], case
    for client in (hearsay_client, redis_client):
        assert client.exists("rst:new") == 0
    # What works the same: RESTORE with REPLACE and a TTL.
    for name, client in (("hearsay", hearsay_client), ("redis", redis_client)):
        assert client.restore("rst:n", 10_000, payloads[name], replace=True)
        assert client.get("rst:n") == b"3"
        assert 0 < client.pttl("rst:n") <= 10_000


def test_redis_py_bloom_scandump_loadchunk_round_trip(hearsay_client: redis.Redis) -> None:
    bf = hearsay_client.bf()
    bf.create("sd:src", 0.001, 50_000)
    bf.madd("sd:src", *[f"item{i}" for i in range(5_000)])
    chunks = []
    cursor = 0
    while True:  # redis-py's documented loop, bounded by the few chunks
        cursor, data = bf.scandump("sd:src", cursor)
        if cursor == 0:
            break
        chunks.append((cursor, data))
        assert len(chunks) < 100
    for cursor, data in chunks:
        bf.loadchunk("sd:dst", cursor, data)
    assert bf.mexists("sd:dst", "item0", "item4999") == [1, 1]
    assert bf.info("sd:dst").capacity == bf.info("sd:src").capacity
    assert hearsay_client.dump("sd:dst") == hearsay_client.dump("sd:src")
