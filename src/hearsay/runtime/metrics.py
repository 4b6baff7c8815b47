"""/metrics with prometheus_client, read from the counters the node keeps anyway.

The request path pays nothing for metrics beyond what it already counted: no prometheus_client
object is touched per request (their ``inc``/``observe`` take a lock). :class:`NodeCollector`
reads the node's own counters (INFO's sources, :class:`~hearsay.runtime.command_stats.
CommandStats`, the sampler's figures) when Prometheus scrapes, into a registry of this node
only (several nodes may run in one process: tests do). Every family has HELP; the table of
families is in docs/operations.md.

:class:`NodeMetrics` also runs the sampler (every 0.1 s: the replication-lag probe; every 2 s:
a dashboard sample and a step of the key census), and holds the housekeeping flush's timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hearsay.base.durations import BUCKET_BOUNDS_S, BUCKETS, Durations
from hearsay.persist.group_commit import GroupCommit
from hearsay.runtime.clock import unix_ms
from hearsay.runtime.command_stats import CALLS, ERRORS, FIRST_BUCKET, SUM_NS
from hearsay.runtime.history import SAMPLE_INTERVAL_S, History, KeyCensus, LagProbe, Sample

if TYPE_CHECKING:
    from hearsay.runtime.server import Node

PROBE_INTERVAL_S: Final = 0.1
MEMBER_STATES: Final = ("alive", "suspect", "failed", "left")


def _buckets(counts: list[int], sum_ns: int) -> tuple[list[tuple[str, float]], float]:
    """Cumulative ``(le, count)`` pairs and the sum in seconds, from per-bucket counts."""
    pairs: list[tuple[str, float]] = []
    running = 0
    for index, count in enumerate(counts):
        running += count
        bound = BUCKET_BOUNDS_S[index] if index < BUCKETS - 1 else float("inf")
        pairs.append((repr(bound) if bound != float("inf") else "+Inf", float(running)))
    return pairs, sum_ns / 1e9


class NodeCollector(Collector):
    """Every hearsay family, built from the node's counters at scrape time."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        node = self._metrics.node
        yield from self._node_families(node)
        yield from self._command_families(node)
        yield from self._membership_families(node)
        yield from self._gossip_families(node)
        yield from self._storage_families(node)
        yield from self._key_families()

    def _node_families(self, node: Node) -> Iterator[Metric]:
        stats = node.replica.stats
        yield GaugeMetricFamily(
            "hearsay_uptime_seconds", "Seconds since the node started.", value=node.uptime_s()
        )
        yield GaugeMetricFamily(
            "hearsay_connected_clients",
            "Open RESP client connections.",
            value=len(node.resp.connections),
        )
        yield GaugeMetricFamily(
            "hearsay_memory_used_bytes",
            "Anonymous resident memory of the process (INFO memory's used_memory).",
            value=node.used_memory_bytes(),
        )
        yield CounterMetricFamily(
            "hearsay_local_writes", "Writes made by this node's clients.", value=stats.local_writes
        )
        yield CounterMetricFamily(
            "hearsay_replicated_changes",
            "Keys changed by what peers sent.",
            value=stats.replicated_changes,
        )
        yield CounterMetricFamily(
            "hearsay_expired_keys", "Keys removed by their expiry.", value=stats.expired_keys
        )
        yield CounterMetricFamily(
            "hearsay_tombstones_purged",
            "Delete markers purged after the grace period.",
            value=stats.tombstones_purged,
        )
        yield CounterMetricFamily(
            "hearsay_flushed_keys",
            "Entries below the flush floor (FLUSHALL) dropped by its sweep.",
            value=stats.flushed_keys,
        )

    def _command_families(self, node: Node) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "hearsay_commands_processed",
            "Commands received from clients (INFO's total_commands_processed).",
            value=node.resp.commands_processed(),
        )
        calls = CounterMetricFamily(
            "hearsay_command_calls", "Calls per command.", labels=["command"]
        )
        errors = CounterMetricFamily(
            "hearsay_command_errors",
            "Error replies per command (unknown names: command 'unknown').",
            labels=["command"],
        )
        durations = HistogramMetricFamily(
            "hearsay_command_duration_seconds",
            "Time the node spent on a command, by command group (hyperloglog, bf, cms, "
            "string, ...): dispatch, execution and encoding its reply; network and queueing "
            "excluded. A pipelined run of one command to one key is timed once; each call "
            "counts its mean.",
            labels=["family"],
        )
        by_group: dict[str, list[int]] = {}
        for name, group, row in node.resp.command_stats.rows():
            calls.add_metric([name], row[CALLS])
            errors.add_metric([name], row[ERRORS])
            total = by_group.setdefault(group, [0] * len(row))
            for index, value in enumerate(row):
                total[index] += value
        for group, row in sorted(by_group.items()):
            buckets, sum_s = _buckets(row[FIRST_BUCKET:], row[SUM_NS])
            durations.add_metric([group], buckets, sum_s)
        yield calls
        yield errors
        yield durations

    def _membership_families(self, node: Node) -> Iterator[Metric]:
        members = GaugeMetricFamily(
            "hearsay_members",
            "Cluster members by state, as this node sees them (itself included).",
            labels=["state"],
        )
        counts = dict.fromkeys(MEMBER_STATES, 0)
        if node.replica.membership is not None:
            for row in node.members():
                counts[row.state] = counts.get(row.state, 0) + 1
        for state, count in counts.items():
            members.add_metric([state], count)
        yield members

    def _gossip_families(self, node: Node) -> Iterator[Metric]:
        gossip = node.replica.node
        datagrams = CounterMetricFamily(
            "hearsay_gossip_datagrams",
            "Gossip datagrams (UDP) received and sent.",
            labels=["direction"],
        )
        sizes = CounterMetricFamily(
            "hearsay_gossip_bytes",
            "Gossip bytes received and sent (datagrams and streams).",
            labels=["direction"],
        )
        messages = CounterMetricFamily(
            "hearsay_gossip_messages",
            "Gossip messages by type, received and sent.",
            labels=["direction", "type"],
        )
        dropped = CounterMetricFamily(
            "hearsay_gossip_dropped", "Gossip input dropped, by reason.", labels=["reason"]
        )
        rounds = CounterMetricFamily(
            "hearsay_anti_entropy_rounds", "Anti-entropy rounds this node started."
        )
        in_sync = CounterMetricFamily(
            "hearsay_anti_entropy_in_sync", "Anti-entropy rounds answered 'in sync' here."
        )
        repaired = CounterMetricFamily(
            "hearsay_anti_entropy_keys_repaired",
            "Keys anti-entropy found different from a peer's and sent or asked for.",
        )
        if gossip is not None:
            stats = gossip.stats
            datagrams.add_metric(["received"], stats.datagrams_in)
            datagrams.add_metric(["sent"], stats.datagrams_out)
            sizes.add_metric(["received"], stats.bytes_in)
            sizes.add_metric(["sent"], stats.bytes_out)
            for direction, by_type in (
                ("received", stats.received_by_type),
                ("sent", stats.sent_by_type),
            ):
                for kind, count in sorted(by_type.items()):
                    messages.add_metric([direction, kind], count)
            for reason, count in sorted(stats.dropped.items()):
                dropped.add_metric([reason], count)
            rounds.add_metric([], stats.ae_rounds)
            in_sync.add_metric([], stats.ae_in_sync)
            repaired.add_metric([], stats.ae_keys_repaired)
        yield datagrams
        yield sizes
        yield messages
        yield dropped
        yield rounds
        yield in_sync
        yield repaired
        yield CounterMetricFamily(
            "hearsay_gossip_send_errors",
            "Gossip sends the operating system refused.",
            value=node.gossip.send_errors,
        )
        yield GaugeMetricFamily(
            "hearsay_gossip_socket_receive_buffer_bytes",
            "The gossip socket's receive buffer the kernel granted.",
            value=node.gossip.receive_buffer_bytes,
        )
        drops = node.gossip.socket_drops()
        if drops is not None:
            yield CounterMetricFamily(
                "hearsay_gossip_socket_drops",
                "Gossip datagrams the kernel dropped at this node's socket (its receive buffer "
                "was full: the node read too late; see net.core.rmem_max).",
                value=drops,
            )
        probe = self._metrics.lag
        yield GaugeMetricFamily(
            "hearsay_replication_lag_seconds",
            "Time until every alive peer acknowledged holding a local write (one probe at a "
            "time on the latest write; an unanswered probe counts its age). 0 until measured.",
            value=probe.lag_s(time.monotonic()),
        )
        yield CounterMetricFamily(
            "hearsay_replication_lag_probes",
            "Replication-lag probes completed.",
            value=probe.measured,
        )

    def _storage_families(self, node: Node) -> Iterator[Metric]:
        replica = node.replica
        failure = replica.storage_failure
        yield GaugeMetricFamily(
            "hearsay_storage_read_only",
            "1 while the data directory cannot take writes (writes refused), else 0.",
            value=int(failure is not None),
        )
        yield GaugeMetricFamily(
            "hearsay_quarantined_entries",
            "Stored entries found corrupt at start and set aside.",
            value=replica.stats.corrupt_entries_skipped,
        )
        yield GaugeMetricFamily(
            "hearsay_storage_pending_writes",
            "Writes not yet durable: staged but not synced, plus those held in memory while "
            "the disk refuses them.",
            value=replica.unsynced_writes + (0 if failure is None else failure.held_keys),
        )
        flush = self._metrics.flush_durations
        buckets, sum_s = _buckets(flush.counts, flush.sum_ns)
        yield HistogramMetricFamily(
            "hearsay_storage_flush_duration_seconds",
            "Time the periodic flush (changed keys staged for the writer thread) held the "
            "event loop.",
            buckets=buckets,
            sum_value=sum_s,
        )
        writer = replica.storage
        commits = writer.stats() if isinstance(writer, GroupCommit) else None
        commit_buckets, commit_sum_s = _buckets(
            list(commits.commit_duration_counts) if commits else [0] * BUCKETS,
            commits.commit_duration_sum_ns if commits else 0,
        )
        yield HistogramMetricFamily(
            "hearsay_storage_commit_duration_seconds",
            "Time the writer thread took per batch of writes, off the event loop: the SQLite "
            "transaction, with the sync and the delta fold it ran in the same turn.",
            buckets=commit_buckets,
            sum_value=commit_sum_s,
        )
        yield CounterMetricFamily(
            "hearsay_storage_commits",
            "SQLite transactions committed by the writer thread.",
            value=commits.commits if commits else 0,
        )
        yield CounterMetricFamily(
            "hearsay_storage_rows_committed",
            "Rows those transactions wrote.",
            value=commits.rows_committed if commits else 0,
        )

    def _key_families(self) -> Iterator[Metric]:
        node = self._metrics.node
        yield GaugeMetricFamily("hearsay_keys", "Live keys.", value=len(node.replica.keyspace))
        keys = GaugeMetricFamily(
            "hearsay_keys_by_type",
            "Live keys per type, as of the last key census pass.",
            labels=["type"],
        )
        sizes = GaugeMetricFamily(
            "hearsay_key_bytes",
            "Memory of keys per type (MEMORY USAGE's estimate), as of the last key census pass.",
            labels=["type"],
        )
        for kind, (count, size) in sorted(self._metrics.census.totals.items()):
            keys.add_metric([kind], count)
            sizes.add_metric([kind], size)
        yield keys
        yield sizes


class NodeMetrics:
    """The node's metrics registry, its dashboard history and the sampler that feeds both."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.history = History()
        self.census = KeyCensus(node.replica)
        self.lag = LagProbe(node.replica)
        self.flush_durations = Durations()
        self._alive = 1  # alive members (itself included) at the last sample
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(self))
        ProcessCollector(registry=self.registry)

    def exposition(self) -> bytes:
        """The Prometheus text format of every family."""
        return generate_latest(self.registry)

    def status(self) -> dict[str, Any]:
        """What /status adds for the dashboard: the latest rates and the lag."""
        latest = self.history.latest()
        return {
            "writes_per_s": latest.writes_per_s if latest else 0.0,
            "reads_per_s": latest.reads_per_s if latest else 0.0,
            "replication_lag_s": round(self.lag.lag_s(time.monotonic()), 3),
        }

    def sample(self, now_s: float) -> None:
        """Take one dashboard sample and one census step."""
        node = self.node
        gossip = node.replica.node
        kinds = node.resp.command_stats.calls_by_kind()
        counts = {
            "writes": kinds["write"],
            "reads": kinds["read"],
            "datagrams_in": gossip.stats.datagrams_in if gossip else 0,
            "datagrams_out": gossip.stats.datagrams_out if gossip else 0,
        }
        rates = self.history.rates(counts, now_s)
        self._alive = self._alive_members()
        self.census.step()
        self.history.add(
            Sample(
                unix_ms=unix_ms(),
                writes_per_s=round(rates["writes"], 2),
                reads_per_s=round(rates["reads"], 2),
                keys=len(node.replica.keyspace),
                replication_lag_s=round(self.lag.lag_s(now_s), 3),
                members_alive=self._alive,
                datagrams_in_per_s=round(rates["datagrams_in"], 2),
                datagrams_out_per_s=round(rates["datagrams_out"], 2),
            )
        )

    def _alive_members(self) -> int:
        """Alive members, itself included (a walk of the member table: once a sample)."""
        if self.node.replica.membership is None:
            return 1
        return sum(row.state == "alive" for row in self.node.members())

    async def run(self, stopping: asyncio.Event) -> None:
        """Sample until ``stopping`` is set."""
        next_sample_s = time.monotonic()
        while not stopping.is_set():
            now_s = time.monotonic()
            if self.lag.step(max(0, self._alive - 1), now_s, unix_ms()):
                self.node.gossip.pump_soon()
            if now_s >= next_sample_s:
                next_sample_s = now_s + SAMPLE_INTERVAL_S
                self.sample(now_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), PROBE_INTERVAL_S)
