"""The gossip core's parts on their own: presence merges, the bounded table, big entries."""

from __future__ import annotations

import random

from hearsay.protocol.events import KeyChanged, NodeEvent
from hearsay.protocol.node import GossipNode, NodeConfig

NOW = 1_700_000_000_000
ME = ("127.0.0.1", 7000)
OLD = ("127.0.0.1", 6000)


def _events(node: GossipNode) -> list[NodeEvent]:
    found: list[NodeEvent] = []
    while (event := node.next_event()) is not None:
        found.append(event)
    return found


def test_own_presence_is_reported_as_a_key_change() -> None:
    """The presence key merged into the keyspace comes out as KeyChanged, like every merge,
    so the engine marks it dirty and persists it."""
    node = GossipNode(ME, rng=random.Random(1), config=NodeConfig(), now_ms=NOW)
    node.join([], NOW, vignette_seeds=[OLD])
    changed = [e for e in _events(node) if isinstance(e, KeyChanged)]
    assert [(e.key, e.source) for e in changed] == [(b"n:127.0.0.1:7000", ME)]
    assert changed[0].delta.vector.items() == [(0, NOW)]
    # the next presence round raises the stamp: reported again, with what grew
    later = NOW + NodeConfig().presence_interval_ms
    node.receive_datagram(b"", OLD, later - 1)  # keep the vignette seed fresh (a drop)
    node.handle_timer(later)
    again = [e for e in _events(node) if isinstance(e, KeyChanged)]
    assert [e.key for e in again] == [b"n:127.0.0.1:7000"]
    assert again[0].delta.vector.items() == [(0, later)]
