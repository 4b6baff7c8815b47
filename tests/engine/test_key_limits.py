"""The per-key byte cap and the sketch shape caps (issue 11: finding 10, "What to build" 3).

A write or a peer's delta that would take a key past ``--max-key-bytes`` is refused whole
(nothing changes, the refusal is counted); sketches whose shape alone makes one call
unbounded (count-min depth, cells beyond the cap) are refused when created, by a client or by
a peer. Work is counted (cells visited), never timed.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import TooLargeError
from hearsay.engine.replica import Replica
from hearsay.lattice.codec import encode_entry
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.limits import KEY_BYTES_MAX_LIMIT, KeyLimits
from hearsay.lattice.vector import MaxVector
from hearsay.persist.identity import NodeIdentity
from hearsay.protocol.node import GossipNode
from hearsay.resp import messages
from hearsay.resp.replies import OK, ErrorReply
from hearsay.runtime.config import ConfigError, ServeConfig
from hearsay.sketch import countmin, schemas
from hearsay.sketch.schemas import CMS_DEPTH_MAX
from hearsay.sketch.views import admit_schema
from tests.support.command_client import NOW_MS, Client
from tests.support.gossip_delivery import deliver
from tests.support.nodes import start_node

CAP = 4096
VEC = schemas.vector()


@pytest.fixture
def c() -> Client:
    return Client()


def _capped_client(cap: int = CAP) -> Client:
    client = Client()
    client.db.limit_keys(cap)
    return client


def _snapshot(db: Replica, key: bytes) -> bytes | None:
    entry = db.keyspace.entry(key)
    return None if entry is None else encode_entry(entry)


# -- count-min shapes (finding 10) -------------------------------------------------------------


def test_cms_initbyprob_with_a_tiny_probability_is_an_error_reply(c: Client) -> None:
    """``CMS.INITBYPROB c 0.01 1e-50`` raised an uncaught ValueError (log10 of the single
    precision 0) that dropped the connection; it is RedisBloom's invalid-init reply now."""
    assert c("CMS.INITBYPROB", "c", "0.01", "1e-50") == messages.CMS_INVALID_INIT
    assert c("CMS.INITBYPROB", "c", "0.01", "1e-30") == messages.CMS_INVALID_INIT  # 100 rows
    assert c("EXISTS", "c") == 0
    assert c.ok("CMS.INITBYPROB", "c", "0.01", str(2.0**-CMS_DEPTH_MAX)) is OK


@pytest.mark.parametrize("depth", [CMS_DEPTH_MAX + 1, 2**20, 2**32])
def test_cms_depth_is_capped(c: Client, depth: int) -> None:
    """Each CMS.QUERY item costs one cell per row: depth 2**20 made one QUERY take 15.5 s and
    depth 2**32 tried a 32 GiB allocation. Such sketches cannot be created."""
    assert c("CMS.INITBYDIM", "c", 1, depth) == messages.CMS_INVALID_INIT
    assert c("EXISTS", "c") == 0


def test_cms_cells_beyond_the_key_cap_are_refused() -> None:
    """65536 x 65536 cells (the 306 s CMS.MERGE) is refused with an error naming the cap;
    a sketch exactly at the cap is accepted."""
    c = _capped_client()
    reply = c("CMS.INITBYDIM", "c", 65536, 64)
    assert isinstance(reply, ErrorReply) and "max-key-bytes" in str(reply)
    assert c("EXISTS", "c") == 0
    assert c.ok("CMS.INITBYDIM", "c", CAP // 4, 4) is OK
    big = Client()  # the default cap: 2**25 cells
    assert isinstance(big("CMS.INITBYDIM", "c", 2**20, 64), ErrorReply)
    assert big.ok("CMS.INITBYDIM", "c", 2**19, 64) is OK


def test_bloom_filters_beyond_the_cap_are_refused() -> None:
    """A filter of more bits than the cap holds at one byte a bit cannot be reserved (nor
    auto-created by BF.INSERT); RedisBloom's own limits keep their wording."""
    c = _capped_client()
    reply = c("BF.RESERVE", "b", "0.01", "10000")  # 95,851 bits
    assert isinstance(reply, ErrorReply) and "max-key-bytes" in str(reply), reply
    reply = c("BF.INSERT", "b", "CAPACITY", "10000", "ITEMS", "x")
    assert isinstance(reply, ErrorReply) and "max-key-bytes" in str(reply), reply
    assert c("EXISTS", "b") == 0
    assert c.ok("BF.RESERVE", "b", "0.01", "100") is OK  # 960 bits
    assert c("BF.ADD", "b", "x") == 1


def test_cms_merge_visits_only_the_cells_sources_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """CMS.MERGE of a 2**19 x 64 sketch into itself visited all 2**25 cells (the 65536 x
    65536 one: 306 s); now only the cells its sources hold. Counted, not timed."""
    visited: list[int] = []
    real = countmin.summed_at

    def counting(slices: object, indices: np.ndarray) -> np.ndarray:
        visited.append(int(np.asarray(indices).size))
        return real(slices, indices)  # type: ignore[arg-type]

    monkeypatch.setattr(countmin, "summed_at", counting)
    c = Client()
    c.ok("CMS.INITBYDIM", "c", 2**19, 64)
    c.ok("CMS.INCRBY", "c", "a", 3, "b", 5)
    c.ok("CMS.INITBYDIM", "d", 2**19, 64)
    visited.clear()
    assert c.ok("CMS.MERGE", "d", 2, "c", "c", "WEIGHTS", 1, 2) is OK
    assert sum(visited) <= 3 * 2 * 64  # two sources and the destination, 2 items x 64 rows
    assert c("CMS.QUERY", "d", "a", "b") == [9, 15]
    assert c.ok("CMS.MERGE", "c", 1, "c") is OK  # into itself: changes nothing
    assert c("CMS.QUERY", "c", "a", "b") == [3, 5]


def test_a_peer_cannot_create_an_out_of_bounds_sketch() -> None:
    """A replicated delta creating a 65536 x 65536 sketch, or a 2**20-row one, is refused and
    counted; a key sent in datagram-sized chunks stops at the chunk that would pass the cap
    (each chunk is a delta of its own); the other keys are merged."""
    sender = GossipNode(("127.0.0.1", 7100), rng=random.Random(1), now_ms=NOW_MS)
    capped = Keyspace(limits=KeyLimits(CAP, admit_schema))
    receiver = GossipNode(("127.0.0.1", 7101), rng=random.Random(2), keyspace=capped, now_ms=NOW_MS)
    sender.add_peer(receiver.address)
    receiver.add_peer(sender.address)
    huge_cms = Schema("cms", (65536, 65536), 65536 * 65536, additive=True).intern()
    writes = {
        b"huge-cms": Entry(0, huge_cms),
        b"deep-cms": Entry(0, Schema("cms", (1, 2**20), 2**20, additive=True).intern()),
        b"big-vector": Entry(
            0, VEC, slices={"": MaxVector.from_pairs(range(0, 100_000, 50), [9] * 2000)}
        ),
        b"small": Entry(0, VEC, slices={"": MaxVector.from_pairs([1], [2])}),
    }
    for key, entry in writes.items():
        sender.keyspace.merge(key, entry)
        sender.local_delta(key, entry, NOW_MS)
    deliver({sender.address: sender, receiver.address: receiver}, NOW_MS)
    assert capped.entry(b"small") is not None
    for key in (b"huge-cms", b"deep-cms"):
        assert capped.entry(key) is None, key
    partial = capped.entry(b"big-vector")
    assert partial is None or 0 < partial.payload_bytes() <= CAP
    assert receiver.stats.dropped.get("too-large", 0) >= 3
    assert capped.refused_too_large >= 2  # the huge CMS and the vector's last chunk(s)


# -- the per-key byte cap -----------------------------------------------------------------------


def test_a_write_past_the_cap_is_refused_whole_and_changes_nothing() -> None:
    c = _capped_client()
    c.ok("VMAX", "v", 1, 1)
    before = _snapshot(c.db, b"v")
    args: list[int] = []
    for i in range(1000):  # 1000 packed pairs of 5+ bytes: past 4096
        args += [7 * i + 3, 200]
    reply = c("VMAX", "v", *args)
    assert isinstance(reply, ErrorReply) and "max-key-bytes" in str(reply), reply
    assert _snapshot(c.db, b"v") == before
    assert c.db.keyspace.refused_too_large == 1
    assert c("VMAX", "v", 2, 1) == 1  # a write within the cap still works


def test_pfadd_past_the_cap_is_refused() -> None:
    """The sketches' bulk path (raw pairs into a slice) is capped too: an HLL of p=14 whose
    registers no longer fit 4 KiB stops growing, with an error, at the write that would pass."""
    c = _capped_client()
    refused = 0
    for batch in range(40):
        before = _snapshot(c.db, b"h")
        reply = c("PFADD", "h", *[f"m{batch}-{i}" for i in range(100)])
        if isinstance(reply, ErrorReply):
            assert "max-key-bytes" in str(reply)
            assert _snapshot(c.db, b"h") == before
            refused += 1
        entry = c.db.keyspace.entry(b"h")
        assert entry is not None and entry.payload_bytes() <= CAP
    assert refused > 0


def test_a_replicated_delta_past_the_cap_is_refused() -> None:
    db = Replica(NodeIdentity("0123456789abcdef", 1), key_bytes_max=CAP)
    db.merge_remote(b"v", Entry(0, VEC, slices={"": MaxVector.from_pairs([1], [1])}))
    before = _snapshot(db, b"v")
    big = Entry(0, VEC, slices={"": MaxVector.from_pairs(range(2, 100_002, 50), [3] * 2000)})
    with pytest.raises(TooLargeError):
        db.merge_remote(b"v", big)
    assert _snapshot(db, b"v") == before
    with pytest.raises(TooLargeError):
        db.merge_remote(b"new", big)
    assert db.keyspace.entry(b"new") is None


_pairs = st.lists(
    st.tuples(
        st.integers(0, 6000),
        st.sampled_from([1, 200, 300, 70_000, 2**33]),
    ),
    min_size=1,
    max_size=400,
)


@pytest.mark.property
@settings(max_examples=150, deadline=None)
@given(
    writes=st.lists(st.tuples(st.booleans(), st.integers(0, 3), _pairs), min_size=1, max_size=12),
    cap=st.sampled_from([1024, 2048, 5000]),
)
def test_no_key_ever_passes_the_cap(
    writes: list[tuple[bool, int, list[tuple[int, int]]]], cap: int
) -> None:
    """Whatever mix of writes (sparse and dense vectors, values widening from 1 to 8 bytes,
    the Entry merge path at equal or higher epochs, the raw-pairs path): every accepted write
    leaves the key within the cap, and every refused one leaves it exactly as it was."""
    keyspace = Keyspace(limits=KeyLimits(cap, admit_schema))
    for raw, epoch, pairs in writes:
        indices = [i for i, _ in pairs]
        values = [v for _, v in pairs]
        before = keyspace.entry(b"k")
        snapshot = None if before is None else encode_entry(before)
        try:
            if raw:
                keyspace.write_pairs(
                    b"k", VEC, "", np.array(indices, np.uint32), np.array(values, np.uint64),
                    now_ms=NOW_MS,
                )  # fmt: skip
            else:
                vector = MaxVector.from_pairs(indices, values)
                keyspace.merge(b"k", Entry(epoch, VEC, slices={"": vector}))
        except TooLargeError:
            after = keyspace.entry(b"k")
            assert (None if after is None else encode_entry(after)) == snapshot
            continue
        entry = keyspace.entry(b"k")
        assert entry is not None and entry.payload_bytes() <= cap


def test_the_cap_is_a_setting() -> None:
    assert ServeConfig().max_key_bytes == KEY_BYTES_MAX_LIMIT
    assert ServeConfig().merged({"max-key-bytes": 4096}).max_key_bytes == 4096
    for bad in (0, 1023, KEY_BYTES_MAX_LIMIT + 1):
        with pytest.raises(ConfigError):
            ServeConfig().merged({"max-key-bytes": bad})


@pytest.mark.integration
def test_a_real_node_refuses_past_its_cap_and_keeps_serving(tmp_path: Path) -> None:
    """``hearsay serve --max-key-bytes 4096`` over redis-py: pipelined replies before and
    after the refused write arrive, the key is as before, INFO counts the refusal; the
    1e-50 CMS.INITBYPROB is an error reply on a connection that stays up."""
    node = start_node(tmp_path / "n", "--max-key-bytes", "4096")
    try:
        client = node.client()
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("VMAX", "v", 1, 5)
        pipe.execute_command("VMAX", "v", *[n for i in range(1000) for n in (50 * i + 3, 9)])
        pipe.execute_command("VGET", "v")
        pipe.execute_command("CMS.INITBYPROB", "c", "0.01", "1e-50")
        pipe.execute_command("CMS.INITBYDIM", "c", 65536, 65536)
        pipe.execute_command("PING")
        first, refused, vget, prob, dims, pong = pipe.execute(raise_on_error=False)
        assert first == 1
        assert isinstance(refused, redis.ResponseError) and "max-key-bytes" in str(refused)
        assert vget == [1, 5]
        assert isinstance(prob, redis.ResponseError) and str(prob) == messages.CMS_INVALID_INIT
        assert isinstance(dims, redis.ResponseError)
        assert pong is True
        assert client.info("stats")["writes_refused_too_large"] >= 1
        assert client.exists("c") == 0
        client.close()
    finally:
        assert node.stop() == 0
