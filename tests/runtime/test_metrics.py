"""/metrics of real nodes, parsed with prometheus_client's own parser (issue 15 item 3)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.support.nodes import Cluster, poll_until
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.integration

# Issue 15's list: name -> type. Counters are named without "_total" (the parser's family name).
FAMILIES = {
    "hearsay_commands_processed": "counter",
    "hearsay_command_calls": "counter",
    "hearsay_command_errors": "counter",
    "hearsay_command_duration_seconds": "histogram",
    "hearsay_members": "gauge",
    "hearsay_gossip_datagrams": "counter",
    "hearsay_gossip_bytes": "counter",
    "hearsay_gossip_messages": "counter",
    "hearsay_gossip_dropped": "counter",
    "hearsay_anti_entropy_rounds": "counter",
    "hearsay_anti_entropy_in_sync": "counter",
    "hearsay_anti_entropy_keys_repaired": "counter",
    "hearsay_replication_lag_seconds": "gauge",
    "hearsay_replication_lag_probes": "counter",
    "hearsay_storage_flush_duration_seconds": "histogram",
    "hearsay_storage_commit_duration_seconds": "histogram",
    "hearsay_storage_pending_writes": "gauge",
    "hearsay_storage_commits": "counter",
    "hearsay_storage_read_only": "gauge",
    "hearsay_keys": "gauge",
    "hearsay_keys_by_type": "gauge",
    "hearsay_key_bytes": "gauge",
    "hearsay_memory_used_bytes": "gauge",
    "hearsay_connected_clients": "gauge",
    "hearsay_uptime_seconds": "gauge",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
}
KEYS = 20
RUN = 10  # a pipelined run of PFADDs to one key: answered at once, counted call by call
LAG_SEEN_S = 0.5


def _check_histogram(families: dict[str, object], name: str) -> None:
    """Every series of histogram ``name``: bounds rising, counts cumulative, +Inf == count."""
    family = families[name]
    series: dict[tuple[tuple[str, str], ...], dict[str, list[tuple[float, float]] | float]] = {}
    for sample in family.samples:  # type: ignore[attr-defined]
        labels = dict(sample.labels)
        le = labels.pop("le", None)
        entry = series.setdefault(tuple(sorted(labels.items())), {"buckets": []})
        if sample.name.endswith("_bucket"):
            assert le is not None
            entry["buckets"].append((float(le), sample.value))  # type: ignore[union-attr]
        elif sample.name.endswith("_count"):
            entry["count"] = sample.value
        elif sample.name.endswith("_sum"):
            entry["sum"] = sample.value
    assert series, name
    for labels, entry in series.items():
        buckets = entry["buckets"]
        assert isinstance(buckets, list) and buckets, (name, labels)
        bounds = [bound for bound, _ in buckets]
        counts = [count for _, count in buckets]
        assert bounds == sorted(bounds) and bounds[-1] == float("inf"), (name, labels)
        assert counts == sorted(counts), f"{name}{labels}: buckets not cumulative: {counts}"
        assert counts[-1] == entry["count"], (name, labels)
        assert isinstance(entry["sum"], float) and entry["sum"] >= 0


def test_every_family_with_help_and_counters_that_move(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        a = cluster.start("a")
        b = cluster.start("b", "--join", a.gossip)
        client = a.client()
        poll_until(lambda: value(scrape(a), "hearsay_members", state="alive") == 2, 20)
        before = scrape(a)
        for name, kind in FAMILIES.items():
            assert name in before, f"missing family {name}"
            assert before[name].type == kind, (name, before[name].type)
        for name, family in before.items():
            assert family.documentation.strip(), f"{name} has no HELP"
        operations = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
        undocumented = [
            name
            for name, family in before.items()
            if name.startswith("hearsay_")
            and f"`{name}{'_total' if family.type == 'counter' else ''}`" not in operations
        ]
        assert undocumented == [], "families missing from docs/operations.md's table"

        def calls(families: dict[str, object], command: str) -> float:
            found = [
                s.value
                for s in families["hearsay_command_calls"].samples  # type: ignore[attr-defined]
                if s.labels == {"command": command}
            ]
            return found[0] if found else 0.0

        pfadd_before = calls(before, "pfadd")
        for i in range(KEYS):
            client.pfadd(f"hll:{i}", "a", "b")
        with client.pipeline(transaction=False) as pipe:
            for i in range(RUN):
                pipe.pfadd("hll:run", f"x{i}")
            pipe.execute()
        assert client.pfcount("hll:0") == 2
        with pytest.raises(redis.ResponseError):
            client.execute_command("NO-SUCH-COMMAND")
        with pytest.raises(redis.ResponseError):
            client.execute_command("PFADD")  # wrong arity: an error of pfadd

        after = scrape(a)
        assert calls(after, "pfadd") - pfadd_before == KEYS + RUN + 1
        assert value(after, "hearsay_command_errors_total", command="pfadd") >= 1
        assert value(after, "hearsay_command_errors_total", command="unknown") >= 1
        assert value(after, "hearsay_command_calls_total", command="pfcount") >= 1
        commands = value(after, "hearsay_commands_processed_total")
        assert commands - value(before, "hearsay_commands_processed_total") >= KEYS + RUN + 3
        hll = value(after, "hearsay_command_duration_seconds_count", family="hyperloglog")
        assert hll >= KEYS + RUN + 2
        _check_histogram(after, "hearsay_command_duration_seconds")
        _check_histogram(after, "hearsay_storage_flush_duration_seconds")
        _check_histogram(after, "hearsay_storage_commit_duration_seconds")
        poll_until(lambda: value(scrape(a), "hearsay_storage_commits_total") > 0, 20)
        durable = scrape(a)  # one scrape: both come from one snapshot of the writer's counters
        assert value(durable, "hearsay_storage_commit_duration_seconds_count") == value(
            durable, "hearsay_storage_commits_total"
        )
        assert value(after, "hearsay_keys") == KEYS + 1
        assert value(after, "hearsay_local_writes_total") >= KEYS + 1
        sent = value(after, "hearsay_gossip_datagrams_total", direction="sent")
        assert sent > value(before, "hearsay_gossip_datagrams_total", direction="sent")
        assert value(after, "hearsay_gossip_bytes_total", direction="received") > 0
        assert value(after, "process_cpu_seconds_total") > 0

        # Gathered over time: the key census, the lag probe, anti-entropy, the peer's copy.
        poll_until(lambda: value(scrape(a), "hearsay_keys_by_type", 0, type="hll") == KEYS + 1, 20)
        assert value(scrape(a), "hearsay_key_bytes", type="hll") > 0
        poll_until(lambda: value(scrape(a), "hearsay_replication_lag_probes_total") >= 1, 20)
        assert value(scrape(a), "hearsay_replication_lag_seconds") >= 0
        poll_until(lambda: value(scrape(b), "hearsay_keys") == KEYS + 1, 20)
        poll_until(lambda: value(scrape(a), "hearsay_anti_entropy_rounds_total") >= 1, 20)
        assert value(scrape(b), "hearsay_replicated_changes_total") >= KEYS + 1
    finally:
        cluster.close()


def test_history_and_status_feed_the_dashboard(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        a = cluster.start("a")
        b = cluster.start("b", "--join", a.gossip)
        client = a.client()
        for i in range(KEYS):
            client.pfadd(f"k{i}", "v")

        def get(node: object, path: str) -> dict[str, object]:
            url = f"http://{node.http}{path}"  # type: ignore[attr-defined]
            with urllib.request.urlopen(url, timeout=5) as reply:
                assert reply.headers["Access-Control-Allow-Origin"] == "*"
                loaded: dict[str, object] = json.loads(reply.read())
                return loaded

        def samples() -> list[list[float]]:
            history = get(a, "/history")
            assert history["fields"][:2] == ["unix_ms", "writes_per_s"]  # type: ignore[index]
            return history["samples"]  # type: ignore[return-value]

        poll_until(lambda: any(row[1] > 0 for row in samples()), 20)  # writes/s seen
        poll_until(lambda: samples()[-1][3] == KEYS, 20)  # keys
        status = get(a, "/status")
        assert {"writes_per_s", "reads_per_s", "replication_lag_s"} <= status.keys()

        # Each member's HTTP address is published through membership: a links to b's.
        def http_of_b() -> str:
            rows = get(a, "/status")["members"]
            return next(m["http"] for m in rows if m["name"] == b.name)  # type: ignore[union-attr,index]

        poll_until(lambda: http_of_b() == b.http, 20)
    finally:
        cluster.close()


def test_replication_lag_grows_while_a_peer_is_stopped(tmp_path: Path) -> None:
    """The probe's figure is the age of an unanswered write: a peer frozen by SIGSTOP shows
    as a lag that grows; once it runs again, fresh writes are held at once again."""
    cluster = Cluster(tmp_path)
    try:
        a = cluster.start("a")
        b = cluster.start("b", "--join", a.gossip)
        client = a.client()
        poll_until(lambda: value(scrape(a), "hearsay_members", state="alive") == 2, 20)
        client.pfadd("before", "x")
        poll_until(lambda: value(scrape(a), "hearsay_replication_lag_probes_total") >= 1, 20)
        os.kill(b.process.pid, signal.SIGSTOP)
        try:
            client.pfadd("during", "x")
            poll_until(
                lambda: value(scrape(a), "hearsay_replication_lag_seconds") >= LAG_SEEN_S, 20
            )
        finally:
            os.kill(b.process.pid, signal.SIGCONT)
        poll_until(lambda: value(scrape(a), "hearsay_members", state="alive") == 2, 30)

        def fresh_write_held_quickly() -> bool:
            client.pfadd("after", str(time.monotonic()))
            return value(scrape(a), "hearsay_replication_lag_seconds") < LAG_SEEN_S

        poll_until(fresh_write_held_quickly, 30, 0.3)
    finally:
        cluster.close()
