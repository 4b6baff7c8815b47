"""Small types every part of the gossip core uses: the bounded table, content hashes, ``NEVER``.

Why this module exists: the parts (:mod:`hearsay.protocol.gossip`) must not import each other,
yet several keep a table of retries or recent keys that must never grow without bound, and two
(the tail and anti-entropy) compare content hashes. These live here, once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, TypeVar

from hearsay.lattice.entry import Entry

__all__ = ["NEVER", "SETTLING_BYTES_MIN", "BoundedTable", "is_settling", "is_whole"]

NEVER: Final = 1 << 62
"""A part's deadline when it has nothing scheduled (later than any real ``now_ms``)."""

K = TypeVar("K")
V = TypeVar("V")


class BoundedTable(OrderedDict[K, V]):
    """An insertion-ordered table of at most ``max_items`` entries.

    :meth:`put` makes a key the newest and drops the oldest beyond the bound; tables that must
    refuse newcomers instead ask :meth:`has_room_for` first. Every retry table of the gossip
    core (writes waiting for acks, cover retries, ack ids, anti-entropy rounds, lately changed
    keys, content hashes, vignette peers) is one of these, so none can grow without bound.
    """

    def __init__(self, max_items: int) -> None:
        super().__init__()
        self.max_items = max_items

    def put(self, key: K, value: V) -> None:
        """Insert or replace ``key`` as the newest entry; drop the oldest beyond the bound."""
        if key in self:  # (moved, not removed and inserted again: a hot key at every write)
            self.move_to_end(key)
            self[key] = value
            return
        self[key] = value
        while len(self) > self.max_items:
            self.popitem(last=False)

    def add_new(self, key: K, value: V) -> None:
        """:meth:`put` of a key the table cannot hold yet (a new sequence number): no look-up
        of an old entry, one write a client command pays for."""
        self[key] = value
        if len(self) > self.max_items:
            self.popitem(last=False)

    def has_room_for(self, key: K) -> bool:
        """Whether ``key`` is held already or one more entry fits."""
        return key in self or len(self) < self.max_items


_WHOLE_FORM_RATIO: Final = 64
"""The most bytes one set of pairs can take in one form over another (a pair packed is 5 to 12
bytes, a slot of a bitset 1/8), with margin: a held entry this much larger than a delta holds
more pairs than the delta carries."""
_WHOLE_FORM_SLACK_BYTES: Final = 4096


def is_whole(delta: Entry, held: Entry) -> bool:
    """True when ``delta`` carries everything ``held`` holds (a full state).

    A delta far smaller than what is held is not whole, found without counting the held
    pairs (a popcount of a 1M-capacity Bloom filter's bits at every write pushed). Saying "not
    whole" of a whole delta would only cost a receiver that lacks the key a pull."""
    if (
        delta.epoch != held.epoch
        or (delta.schema is not held.schema and delta.schema != held.schema)  # (interned)
        or delta.expiry != held.expiry
    ):
        return False
    held_pairs = held.sparse_pair_count()  # (a small key's: no sizes to compare first)
    if held_pairs is not None:
        return delta.pair_count() == held_pairs
    if held.payload_bytes() > _WHOLE_FORM_RATIO * delta.payload_bytes() + _WHOLE_FORM_SLACK_BYTES:
        return False
    return delta.pair_count() == held.pair_count()


SETTLING_BYTES_MIN: Final = 1024
"""A key bigger than this (more than fits a datagram beside others: its EXCHANGE goes alone,
mostly over a stream) is not exchanged for a differing hash while it is still changing here
(:func:`is_settling`); a smaller one is (its exchange costs less than the delay)."""


def is_settling(
    changed: BoundedTable[bytes, int], key: bytes, mine: Entry, now_ms: int, round_ms: int
) -> bool:
    """Whether a peer's differing hash for ``key`` (a digest's, or anti-entropy's) is best left
    alone for now: a key over :data:`SETTLING_BYTES_MIN` that changed here (``changed``: the
    tail's lately changed keys, and when) within the last round. Writes are still arriving
    (their pushes, retries and acks carry them), so the hashes differ by what is in flight,
    and an EXCHANGE would carry the whole key at every digest and every anti-entropy round
    while the writes go on: TOPK.ADDs to 1,000 keys (2.2 KB each) through one node of three
    sent an EXCHANGE for ~2.5% of the writes, each over a TCP stream, a fifth of the
    receivers' time. Once it settles, the sender's digests (offered for ``recent_rounds``
    after its last change) and the next anti-entropy round compare it again."""
    changed_ms = changed.get(key)
    return (
        changed_ms is not None
        and now_ms - changed_ms < round_ms
        and mine.payload_bytes() > SETTLING_BYTES_MIN
    )
