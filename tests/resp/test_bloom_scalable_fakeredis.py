"""Scalable Bloom filter commands (EXPANSION, NONSCALING) against fakeredis, through redis-py.

fakeredis is an independent implementation of RedisBloom's commands (see
test_sketch_shapes_fakeredis.py for why it is the reference here). The same script goes to a
real ``hearsay serve`` and to a ``FakeRedis``: replies must be equal where the answer is
determined, of the same shape for BF.INFO (fakeredis reports Size as items added) and
BF.SCANDUMP (each side dumps its own format), and both
must refuse where fakeredis refuses. Where fakeredis departs from RedisBloom's source
(rebloom.c, sb.c) the script checks RedisBloom's answer instead, named in ``REDISBLOOM``:
``EXPANSION 0`` (fakeredis accepts it), a full NONSCALING filter under BF.MADD (fakeredis
refuses the whole call; RedisBloom answers each item up to the refused one, which is the error)
and ``BF.INSERT ... NONSCALING EXPANSION n`` (RedisBloom accepts it: NONSCALING wins).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from tests.support.nodes import NodeProcess, start_node

pytestmark = pytest.mark.integration

FIELDS = ("Capacity", "Number of filters", "Number of items inserted", "Expansion rate")

SCRIPT: list[tuple[tuple[str | int, ...], str]] = [
    (("BF.RESERVE", "s", "0.01", 100, "EXPANSION", 4), "value"),
    (("BF.ADD", "s", "a"), "value"),
    (("BF.ADD", "s", "a"), "value"),
    (("BF.MADD", "s", "b", "c", "b"), "value"),
    (("BF.EXISTS", "s", "a"), "value"),
    (("BF.MEXISTS", "s", "a", "zz"), "value"),
    (("BF.CARD", "s"), "value"),
    (("BF.INFO", "s"), "fields"),
    (("BF.RESERVE", "n", "0.01", 10, "NONSCALING"), "value"),
    (("BF.MADD", "n", "x", "y"), "value"),
    (("BF.INFO", "n"), "fields"),
    (("BF.RESERVE", "d", "0.001", 1000), "value"),
    (("BF.INFO", "d"), "fields"),
    (("BF.INSERT", "i", "EXPANSION", 3, "ITEMS", "a", "b"), "value"),
    (("BF.INFO", "i"), "fields"),
    (("BF.INSERT", "j", "CAPACITY", 50, "ERROR", "0.05", "NONSCALING", "ITEMS", "a"), "value"),
    (("BF.INFO", "j"), "fields"),
    (("BF.ADD", "auto", "a"), "value"),
    (("BF.INFO", "auto"), "fields"),
    (("BF.RESERVE", "s", "0.01", 100), "error"),
    (("BF.RESERVE", "e", "0.01", 10, "EXPANSION"), "error"),
    (("BF.RESERVE", "e", "0.01", 10, "NONSCALING", "EXPANSION", 2), "value"),  # same text
    (("BF.RESERVE", "e", "0.01", 10, "EXPANSION", "x"), "error"),
    (("BF.INSERT", "e", "NOCREATE", "EXPANSION", 2, "ITEMS", "a"), "error"),
    (("BF.EXISTS", "e", "a"), "value"),
    (("TYPE", "s"), "value"),
    (("BF.SCANDUMP", "s", 0), "shape"),  # [next cursor, data]: each side's own format
    (("BF.SCANDUMP", "none", 0), "error"),
]

REDISBLOOM: list[tuple[tuple[str | int, ...], object]] = [
    (("BF.RESERVE", "z", "0.01", 10, "EXPANSION", 0), "expansion should be greater or equal to 1"),
    (("BF.INSERT", "z", "EXPANSION", 0, "ITEMS", "a"), "Bad argument received"),
    (("BF.INSERT", "z", "NONSCALING", "EXPANSION", 3, "ITEMS", "a"), [1]),
    (("BF.INFO", "z", "EXPANSION"), [None]),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("bloom-scalable-node"))
    yield started
    started.stop(signal.SIGKILL)


def _run(client: redis.Redis, args: tuple[str | int, ...]) -> object:
    try:
        return client.execute_command(*args)
    except redis.ResponseError as exc:
        return exc


def test_scalable_bloom_replies_match_fakeredis(node: NodeProcess) -> None:
    reference = fakeredis.FakeRedis()
    ours = node.client()
    try:
        for args, compare in SCRIPT:
            expected, got = _run(reference, args), _run(ours, args)
            if compare == "error":
                assert isinstance(expected, redis.ResponseError), args
                assert isinstance(got, redis.ResponseError), (args, got)
            elif compare == "shape":
                assert [type(part) for part in got] == [type(part) for part in expected], args
            elif compare == "fields":
                assert isinstance(got, dict) and isinstance(expected, dict), args
                assert got.keys() == expected.keys(), args
                for field in FIELDS:
                    assert got[field.encode()] == expected[field.encode()], (args, field)
            elif isinstance(expected, redis.ResponseError):
                assert isinstance(got, redis.ResponseError) and str(got) == str(expected), args
            else:
                assert got == expected, args
    finally:
        ours.close()
        reference.close()


def test_where_fakeredis_departs_hearsay_answers_as_redisbloom(node: NodeProcess) -> None:
    ours = node.client()
    try:
        for args, wanted in REDISBLOOM:
            got = _run(ours, args)
            if isinstance(wanted, str):
                assert isinstance(got, redis.ResponseError) and str(got) == wanted, (args, got)
            else:
                assert got == wanted, (args, got)
        # A full NONSCALING filter: BF.MADD answers each item up to the refused one, which is
        # RedisBloom's error (redis-py hands it back in the list); BF.ADD raises it.
        assert ours.execute_command("BF.RESERVE", "full", "0.01", 10, "NONSCALING") == b"OK"
        reply = ours.execute_command("BF.MADD", "full", *[f"m{i}" for i in range(30)])
        assert isinstance(reply, list) and isinstance(reply[-1], redis.ResponseError)
        assert str(reply[-1]) == "non scaling filter is full"
        assert reply[:-1] == [1] * (len(reply) - 1) and 8 <= len(reply) - 1 <= 12
        with pytest.raises(redis.ResponseError, match=r"^non scaling filter is full$"):
            ours.execute_command("BF.ADD", "full", "another")
        reference = fakeredis.FakeRedis()
        reference.execute_command("BF.RESERVE", "full", "0.01", 10, "NONSCALING")
        with pytest.raises(redis.ResponseError):  # fakeredis refuses the whole call
            reference.execute_command("BF.MADD", "full", *[f"m{i}" for i in range(30)])
    finally:
        ours.close()
