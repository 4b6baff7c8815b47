"""Reply shapes of the Bloom and count-min commands checked against fakeredis.

This machine's redis-server has no RedisBloom module, so for BF.* and CMS.* the reference is
fakeredis (an independent Python implementation of RedisBloom's commands over pyprobables):
the same script of commands goes to a real ``hearsay serve`` and to a ``FakeRedis``, both
through redis-py, and the replies must be equal where the answer is determined (counts below
capacity, no false positives possible at these sizes) and of the same shape (reply types,
BF.INFO's and CMS.INFO's field names) where implementations may differ (BF.INFO's Size and
Expansion rate: see docs/commands.md). Where fakeredis itself departs from RedisBloom the
script avoids or only shape-checks the case: a scaling filter (its Expansion rate), BF.INFO
of a single field (a map there, an array in RedisBloom and hearsay), CMS.INITBYPROB's depth
(fakeredis gives 1 for probability 0.01; RedisBloom's ceil(log10(p) / log10(0.5)) is 7), and a
BF.RESERVE error rate of 1 (fakeredis raises a Python exception instead of replying).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from tests.support.nodes import NodeProcess, start_node

pytestmark = pytest.mark.integration

# (command, args, compare): "value" = equal replies, "shape" = equal types and field names.
SCRIPT: list[tuple[tuple[str | int, ...], str]] = [
    (("BF.RESERVE", "bf", "0.001", 1000, "NONSCALING"), "value"),
    (("BF.ADD", "bf", "a"), "value"),
    (("BF.ADD", "bf", "a"), "value"),
    (("BF.MADD", "bf", "b", "c", "b"), "value"),
    (("BF.EXISTS", "bf", "a"), "value"),
    (("BF.EXISTS", "bf", "never-added"), "value"),
    (("BF.MEXISTS", "bf", "a", "b", "zz"), "value"),
    (("BF.EXISTS", "no-such-bf", "a"), "value"),
    (("BF.MEXISTS", "no-such-bf", "a", "b"), "value"),
    (("BF.CARD", "bf"), "value"),
    (("BF.CARD", "no-such-bf"), "value"),
    (("BF.INSERT", "bf2", "CAPACITY", 500, "ERROR", "0.01", "ITEMS", "x", "y", "x"), "value"),
    (("BF.INFO", "bf"), "shape"),
    (("CMS.INITBYDIM", "cms", 2000, 5), "value"),
    (("CMS.INCRBY", "cms", "a", 3, "b", 4), "value"),
    (("CMS.INCRBY", "cms", "a", 1), "value"),
    (("CMS.QUERY", "cms", "a", "b", "c"), "value"),
    (("CMS.INFO", "cms"), "value"),
    (("CMS.INITBYPROB", "cms2", "0.001", "0.01"), "value"),
    (("CMS.INFO", "cms2"), "shape"),  # fakeredis sizes depth its own way (1, not 7)
    (("CMS.INITBYDIM", "cms3", 2000, 5), "value"),
    (("CMS.MERGE", "cms3", 1, "cms", "WEIGHTS", 3), "value"),
    (("CMS.QUERY", "cms3", "a", "b"), "value"),
    (("TYPE", "bf"), "value"),
    (("TYPE", "cms"), "value"),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("shapes-node"))
    yield started
    started.stop(signal.SIGKILL)


def shape(reply: object) -> object:
    """The reply's type structure, keeping dict keys (field names) and list lengths."""
    if isinstance(reply, dict):
        return {key: shape(value) for key, value in reply.items()}
    if isinstance(reply, list):
        return [shape(value) for value in reply]
    return type(reply).__name__


def test_bloom_and_cms_replies_match_fakeredis(node: NodeProcess) -> None:
    reference = fakeredis.FakeRedis()
    ours = node.client()
    try:
        for args, compare in SCRIPT:
            expected = reference.execute_command(*args)
            got = ours.execute_command(*args)
            if compare == "value":
                assert got == expected, args
            else:
                assert shape(got) == shape(expected), (args, got, expected)
    finally:
        ours.close()
        reference.close()


def test_bloom_and_cms_errors_are_errors_in_both(node: NodeProcess) -> None:
    """Where fakeredis refuses, hearsay refuses too (texts differ between the two)."""
    reference = fakeredis.FakeRedis()
    ours = node.client()
    refusals = [
        ("BF.RESERVE", "e-bf", "x", 10),
        ("BF.INSERT", "e-none", "NOCREATE", "ITEMS", "a"),
        ("CMS.QUERY", "e-none", "a"),
        ("CMS.INITBYDIM", "e-cms", 10, 2),
        ("CMS.INITBYDIM", "e-cms", 10, 2),
        ("CMS.INCRBY", "e-cms", "a", "x"),
    ]
    try:
        for args in refusals[:-3]:
            for client in (reference, ours):
                with pytest.raises(redis.ResponseError):
                    client.execute_command(*args)
        for client in (reference, ours):
            assert client.execute_command(*refusals[-3]) in (b"OK", True)
            for args in refusals[-2:]:
                with pytest.raises(redis.ResponseError):
                    client.execute_command(*args)
    finally:
        ours.close()
        reference.close()
