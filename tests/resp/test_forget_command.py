"""HEARSAY.FORGET and what folding changes for each folded family, through the command table
over in-memory replicas: the summed families' replies are the same before and after a departed
node's slices are folded, a t-digest's move by less than its cells' width, and CF.DEL on a
live node still removes an item only the departed node added."""

from __future__ import annotations

import math

from hearsay.lattice.retired import retired_time
from hearsay.resp.replies import ErrorReply
from tests.support.command_client import NOW_MS, Client

GONE = "aaaaaaaaaaaaaaaa"
LIVE = "bbbbbbbbbbbbbbbb"
GRACE_MS = 1_000


def _pair() -> tuple[Client, Client]:
    return Client(LIVE), Client(GONE)


def _ship(source: Client, target: Client, key: bytes) -> None:
    entry = source.db.keyspace.entry(key)
    assert entry is not None
    target.db.merge_remote(key, entry.copy())


def _origins(client: Client, key: bytes) -> list[str]:
    entry = client.db.keyspace.entry(key)
    assert entry is not None
    return [origin for origin, _ in entry.slices()]


def _observations(client: Client) -> object:
    info = client.ok("TDIGEST.INFO", "td")
    return dict((str(name), value) for name, value in info.pairs)["Observations"]


def test_forget_refusals() -> None:
    live = Client(LIVE)
    for args, text in [
        (("HEARSAY.FORGET",), "wrong number of arguments"),
        (("HEARSAY.FORGET", GONE, "AT"), "syntax error"),
        (("HEARSAY.FORGET", GONE, "WHEN", 5), "syntax error"),
        (("HEARSAY.FORGET", "node-b"), "node id must be"),
        (("HEARSAY.FORGET", GONE.upper()), "node id must be"),
        (("HEARSAY.FORGET", LIVE), "cannot forget itself"),
        (("HEARSAY.FORGET", GONE, "AT", NOW_MS + 1), "not in the future"),
        (("HEARSAY.FORGET", GONE, "AT", 0), "not in the future"),
        (("HEARSAY.FORGET", GONE, "AT", "soon"), "not an integer"),
    ]:
        reply = live(*args)
        assert isinstance(reply, ErrorReply) and text in str(reply), (args, reply)
    assert live.db.keyspace.departures.time_of(GONE) is None


def test_forget_twice_keeps_the_first_time() -> None:
    live = Client(LIVE)
    assert live.ok("HEARSAY.FORGET", GONE, "AT", NOW_MS - 5_000) == 1
    assert live.ok("HEARSAY.FORGET", GONE) == 0
    assert live.db.keyspace.departures.time_of(GONE) == NOW_MS - 5_000
    assert live.ok("DBSIZE") == 0 and live.ok("KEYS", "*") == []


def test_folding_keeps_every_summed_familys_replies() -> None:
    live, gone = _pair()
    gone.ok("CMS.INITBYDIM", "hits", 50, 3)
    gone.ok("CMS.INCRBY", "hits", "x", 7, "y", 2)
    gone.ok("INCRBY", "n", 40)
    gone.ok("DECRBY", "n", 3)
    gone.ok("CF.RESERVE", "cf", 100)
    for item in ("a", "b", "a"):
        gone.ok("CF.ADD", "cf", item)
    gone.ok("CF.DEL", "cf", "b")
    for key in (b"hits", b"n", b"cf"):
        _ship(gone, live, key)
    live.ok("CMS.INCRBY", "hits", "x", 1)
    live.ok("INCRBY", "n", 5)
    live.ok("CF.ADD", "cf", "c")
    reads = [
        ("CMS.QUERY", "hits", "x", "y", "z"),
        ("CMS.INFO", "hits"),
        ("GET", "n"),
        ("CF.MEXISTS", "cf", "a", "b", "c", "d"),
        ("CF.COUNT", "cf", "a"),
        ("CF.INFO", "cf"),
    ]
    before = [live.ok(*read) for read in reads]
    assert live.ok("HEARSAY.FORGET", GONE, "AT", NOW_MS - 2 * GRACE_MS) == 1
    assert live.db.retire_step(NOW_MS, GRACE_MS) == 3
    for key in (b"hits", b"n", b"cf"):
        origins = _origins(live, key)
        assert origins == [LIVE, f"~{NOW_MS - 2 * GRACE_MS}"], origins
        assert all(retired_time(o) is None or o.startswith("~") for o in origins)
    assert [live.ok(*read) for read in reads] == before
    # A live node's CF.DEL removes a copy only the departed node added, and it stays removed.
    assert live.ok("CF.DEL", "cf", "a") == 1  # (the departed node added two copies)
    assert live.ok("CF.EXISTS", "cf", "a") == 1
    assert live.ok("CF.DEL", "cf", "a") == 1
    assert live.ok("CF.EXISTS", "cf", "a") == 0
    assert live.db.retire_step(NOW_MS + 10 * GRACE_MS, GRACE_MS) == 0  # (a pass per change)
    assert live.ok("CF.EXISTS", "cf", "a") == 0
    # The departed node's late write is refused and counted; the reads do not move.
    gone.ok("CMS.INCRBY", "hits", "x", 100)
    _ship(gone, live, b"hits")
    assert live.db.keyspace.retired_origin_dropped == 1
    assert live.ok("CMS.QUERY", "hits", "x") == before[0][:1]


def test_a_tdigest_folds_into_cells_and_a_topk_into_one_list() -> None:
    """A t-digest's departed slice becomes the retired slice of cells: the count and the
    extremes stay exact, quantiles move by less than the cells' width, and the departed
    node's late values are refused. A Top-K's becomes a retired list: the same merged list,
    and the departed node's late adds refused."""
    live, gone = _pair()
    for client in (live, gone):
        client.ok("TDIGEST.CREATE", "td")
    spread = [math.exp((i * 7919 % 1000) / 100 - 5) for i in range(700)]  # (e**-5 .. e**5)
    gone.ok("TDIGEST.ADD", "td", *spread)  # (compressed once: 700 values, a buffer of 500)
    live.ok("TDIGEST.ADD", "td", *range(1, 301))
    gone.ok("TOPK.RESERVE", "tk", 3)
    gone.ok("TOPK.ADD", "tk", "a", "b", "a")
    for key in (b"td", b"tk"):
        _ship(gone, live, key)
    live.ok("TOPK.ADD", "tk", "c")
    listed = live.ok("TOPK.LIST", "tk", "WITHCOUNT")
    assert listed == [b"a", 2, b"b", 1, b"c", 1]
    quantiles = ("TDIGEST.QUANTILE", "td", 0.01, 0.5, 0.9, 0.99)
    before = [float(q) for q in live.ok(*quantiles)]
    exact = [live.ok("TDIGEST.MIN", "td"), live.ok("TDIGEST.MAX", "td")]
    count = _observations(live)
    assert count == 1000
    live.ok("HEARSAY.FORGET", GONE, "AT", NOW_MS - 2 * GRACE_MS)
    assert live.db.retire_step(NOW_MS, GRACE_MS) == 2
    assert _origins(live, b"td") == [LIVE, f"~{NOW_MS - 2 * GRACE_MS}"]
    assert _origins(live, b"tk") == [LIVE, f"~{NOW_MS - 2 * GRACE_MS}"]
    assert live.ok("TOPK.LIST", "tk", "WITHCOUNT") == listed
    gone.ok("TOPK.ADD", "tk", "z", "z", "z")  # the departed node's late adds: refused
    _ship(gone, live, b"tk")
    assert live.ok("TOPK.LIST", "tk", "WITHCOUNT") == listed
    after = [float(q) for q in live.ok(*quantiles)]
    assert all(abs(a / b - 1) <= 0.01 for a, b in zip(after, before, strict=True)), after
    assert [live.ok("TDIGEST.MIN", "td"), live.ok("TDIGEST.MAX", "td")] == exact
    assert _observations(live) == count
    gone.ok("TDIGEST.ADD", "td", 10**9)  # the departed node's late write: refused, counted
    _ship(gone, live, b"td")
    assert live.db.keyspace.retired_origin_dropped == 2
    assert live.ok("TDIGEST.MAX", "td") == exact[1]
