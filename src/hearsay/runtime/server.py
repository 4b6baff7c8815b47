"""``hearsay serve``: one node, its listeners, its timers, and a clean shutdown.

Start-up order: open the data directory (new generation, every key loaded), bind every
listener, then print exactly one line ``hearsay ready resp=... gossip=... http=... node=...``
and flush it, so scripts can wait for it and read the ports (port 0 picks a free one).
SIGTERM/SIGINT: stop accepting clients, flush storage, close, exit 0.

Joining: the ``--join`` seeds, and the peers remembered in the data directory's peer snapshot
(:mod:`.peer_snapshot`, unless ``--no-rejoin`` or the node left on purpose with HEARSAY.LEAVE),
are joined by the :class:`~hearsay.runtime.joiner.Joiner` (names resolved at each attempt,
retried with backoff). SIGTERM is a stop, not a leave of the cluster: a restart rejoins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
from typing import Any, Final

from hearsay import __version__
from hearsay.base.errors import BoundsError, HearsayError, StorageError
from hearsay.base.gc_policy import tune_gc
from hearsay.engine.replica import Replica
from hearsay.persist.group_commit import GroupCommit
from hearsay.protocol.events import DatagramDropped
from hearsay.protocol.membership import Address, Membership, MemberState
from hearsay.resp.cluster_commands import MemberRow
from hearsay.resp.commands import ClientContext, CommandRegistry, ServerSettings
from hearsay.resp.observer import RequestObserver
from hearsay.resp.server_commands import build_registry
from hearsay.runtime.addresses import format_address, parse_address
from hearsay.runtime.allocator import fix_mmap_threshold, release_free_memory
from hearsay.runtime.clock import unix_ms
from hearsay.runtime.config import REQUIREPASS_ENV, ServeConfig, resolve_requirepass
from hearsay.runtime.gossip import GossipDriver
from hearsay.runtime.http_server import HttpServer
from hearsay.runtime.joiner import Joiner, resolve_for
from hearsay.runtime.keyring import KeyringMismatches, load_keyring
from hearsay.runtime.metrics import NodeMetrics
from hearsay.runtime.peer_snapshot import (
    SNAPSHOT_INTERVAL_S,
    Snapshot,
    next_peers,
    read_snapshot,
    write_snapshot,
)
from hearsay.runtime.resp_server import ClientLimits, RespServer, fit_maxclients
from hearsay.runtime.rmbd import RmbdProtocol, start_rmbd

INFO_MEMBERS_LISTED: Final = 32
"""Members INFO's gossip section lists one by one (counts by state cover the rest)."""
log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S: Final = 0.0005
"""How long the event loop's thread may keep the GIL once another thread asks for it (Python's
default: 5 ms). The store's writer thread needs it back after each SQLite call (BEGIN, the
batch's upsert, COMMIT); behind a busy loop it waited up to 5 ms each time, fell 0.25 s behind
under writes to many keys, and back-pressure then blocked the loop (2-7% of its time under INCR
over 1,000 keys at -P 16 in three runs; under 1% with this interval)."""
HOUSEKEEPING_INTERVAL_S: Final = 0.05
"""How often expired keys are swept (and the flush below considered)."""
FLUSH_INTERVAL_S: Final = 0.2
"""How often changed keys are staged for the store's writer when replies do not wait for the
disk (``--fsync everysec`` or ``no``; ``always`` stages after each batch of commands). A key
written many times in between is encoded and committed once: under PFADD over 1,000 keys at
-P 1 (~30k writes a second), staging every 50 ms committed ~12,600 rows a second, every 200 ms
~5,000; in alternating runs a lone node went from 27.8-31.7k to 36.1-38.8k writes a second
(about what it does with no commits at all), node 0 of a 3-node cluster from 10.4-11.4k to
11.3-12.5k. A killed process loses at most this much more than the writes staged and not
committed yet (bounded to 0.25 s by back-pressure): still within everysec's second. (It
needed a recovery that fits a small disk: see ``GroupCommit._recover``.)"""
FLUSH_DIRTY_KEYS_MAX: Final = 4096
"""Staged sooner once this many keys are changed: staging encodes every changed key on the
event loop (~5 us a small one), so one flush holds it ~20 ms at most, whatever the write rate
over how many keys (writes to random keys of a large keyspace gain nothing from waiting)."""
IDLE_CHECK_INTERVAL_S: Final = 1.0
"""How often clients are checked against ``--client-idle-timeout-s`` (Redis: about 1 s too)."""
FLOOR_SWEEP_BACKOFF_S: Final = 0.005
"""How long the flush floor's sweep waits, at a time, for the store's writer to commit."""
FLOOR_SWEEP_LAG_MAX_S: Final = 0.1
"""The flush floor's sweep pauses while the oldest uncommitted write is older than this (well
below the 0.25 s past which staging blocks the event loop)."""
SIDECAR_INTERVAL_S: Final = 60.0
"""How often the data directory's sidecar (who the node is, how many entries) is rewritten."""


def _memory_section() -> dict[str, int | str]:
    """INFO memory with Redis's field names, from the kernel's view of this process.

    Python has no allocator total like Redis's ``used_memory``, so that field is the
    anonymous resident memory (heap and anonymous maps: what the process allocated, without
    its code); ``used_memory_peak`` is the peak resident set. Tools such as
    ``redis-cli --stat`` read these fields.
    """
    status: dict[str, int] = {}
    try:
        with open("/proc/self/status") as lines:
            for line in lines:
                name, _, value = line.partition(":")
                if name in ("RssAnon", "VmRSS", "VmHWM"):
                    status[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    # One read of one file: the three figures are of the same moment, so used <= rss <= peak.
    rss = status.get("VmRSS", 0)  # 0 where there is no /proc (not Linux)
    used = min(status.get("RssAnon", rss), rss)
    peak = max(status.get("VmHWM", rss), rss)
    return {
        "used_memory": used,
        "used_memory_human": _human_bytes(used),
        "used_memory_rss": rss,
        "used_memory_rss_human": _human_bytes(rss),
        "used_memory_peak": peak,
        "used_memory_peak_human": _human_bytes(peak),
        "mem_allocator": "libc",
    }


def _human_bytes(count: int) -> str:
    """Redis's ``bytesToHuman``: 1023B, 1.50K, 12.25M, 3.00G."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if count >= size:
            return f"{count / size:.2f}{unit}"
    return f"{count}B"


class Node:
    """One running hearsay node: its replica and every listener around it."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        observer = RequestObserver(config.slowlog_slower_than_us, config.slowlog_max_len)
        self.registry: CommandRegistry = build_registry(self, self, observer)
        self.replica = Replica.open(
            config.data_dir,
            config.fsync,
            config.node_name,
            unix_ms(),
            config.max_key_bytes,
            commands=self.registry,
        )
        self.name = config.node_name or self.replica.identity.node_id
        self.started_monotonic = time.monotonic()
        password = resolve_requirepass(config, os.environ)
        if config.requirepass:
            log.warning(
                "--requirepass shows the password to every local user (ps): prefer "
                "--requirepass-file or the %s environment variable",
                REQUIREPASS_ENV,
            )
        settings = ServerSettings(
            requirepass=password.encode("utf-8", "surrogateescape") if password else None
        )
        limits = ClientLimits(
            maxclients=fit_maxclients(config.maxclients),
            output_buffer_bytes_max=config.client_output_buffer_limit,
            proto_max_bulk_len=config.proto_max_bulk_len,
            query_buffer_bytes_max=config.client_query_buffer_limit,
            input_buffers_bytes_max=config.client_query_buffer_total_limit,
        )
        self.gossip = GossipDriver(self.replica, self.name, config.preset, config.cluster)
        self.resp = RespServer(self.replica, self.registry, settings, limits, self.gossip)
        self.node_metrics = NodeMetrics(self)
        history = self.node_metrics.history.as_json
        self.http = HttpServer(
            self.status,
            self.node_metrics.exposition,
            self.health,
            history,
            max_connections=config.max_http_connections,
        )
        self.addresses: dict[str, str] = {}
        self._gossip_family = socket.AF_INET
        self.joiner = Joiner(
            self._resolve, self.gossip.join, self._has_live_member, random.Random(os.urandom(16))
        )
        self.keyring_mismatches = KeyringMismatches(config.keyring is not None)
        self.gossip.on_dropped = self._on_dropped
        self.snapshot = read_snapshot(config.data_dir)
        """The peer snapshot as last read or written."""
        self._left_before = self.snapshot.left
        """The last run left its cluster on purpose, and no member was live since."""
        self._left_on_command = False
        """This run left its cluster on purpose (HEARSAY.LEAVE)."""
        self.snapshot_writes = 0
        self._stopping = asyncio.Event()
        self._rmbd: RmbdProtocol | None = None
        self._rmbd_transport: asyncio.DatagramTransport | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._floor_sweeper: asyncio.Task[None] | None = None
        self.idle_clients_closed = 0
        """Clients closed by ``--client-idle-timeout-s`` (INFO stats)."""

    async def start(self) -> None:
        config = self.config
        host = config.host
        keyring = load_keyring(config.keyring) if config.keyring else None
        advertise = parse_address(config.advertise) if config.advertise else None
        seeds = [parse_address(seed) for seed in config.join]
        gossip_host, gossip_port = await self.gossip.start(
            host, config.gossip_port, advertise, keyring
        )
        self._gossip_family = socket.AF_INET6 if ":" in gossip_host else socket.AF_INET
        resp_host, resp_port = await self.resp.start(host, config.port)
        http_host, http_port = await self.http.start(host, config.http_port)
        self.addresses = {
            "resp": format_address(resp_host, resp_port),
            "gossip": format_address(gossip_host, gossip_port),
            "http": format_address(http_host, http_port),
        }
        if config.rmbd_port is not None:
            self._rmbd = RmbdProtocol(
                self.replica,
                config.rmbd_width,
                config.rmbd_depth,
                self._join_from_rmbd,
                self._flush,
                peer_enabled=config.rmbd_peer,
            )
            self._rmbd_transport, rmbd_address = await start_rmbd(
                host, config.rmbd_port, self._rmbd
            )
            self.addresses["rmbd"] = format_address(*rmbd_address)
        self._membership().publish_http_port(http_port)  # other dashboards link to this one
        for seed in seeds:
            self.joiner.join([seed], format_address(*seed))
        self._rejoin()
        self._housekeeping = asyncio.create_task(self._housekeep())
        self._sampler = asyncio.create_task(self.node_metrics.run(self._stopping))

    def _rejoin(self) -> None:
        """Join the peers of the snapshot, unless told not to or the node left on purpose."""
        peers = self.snapshot.peers
        if not peers or not self.config.rejoin:
            return
        if self.snapshot.left:
            log.info(
                "not rejoining the %d remembered peers: this node left its cluster "
                "(HEARSAY.LEAVE); HEARSAY.JOIN or --join joins again",
                len(peers),
            )
            return
        log.info("rejoining through %d remembered peers", len(peers))
        self.joiner.join(peers, f"remembered peers ({len(peers)})")

    async def _resolve(self, host: str, port: int) -> list[Address]:
        return await resolve_for(self._gossip_family, host, port)

    def _has_live_member(self) -> bool:
        membership = self.replica.membership
        return membership is not None and len(membership.live.confirmed) > 0

    def _on_dropped(self, event: DatagramDropped) -> None:
        self.keyring_mismatches.note(event.source, event.reason, time.monotonic())

    def _snapshot_due(self) -> Snapshot | None:
        """The peer snapshot to write now, or None when the file holds it already."""
        membership = self.replica.membership
        if membership is None:
            return None
        live = membership.live.confirmed
        if len(live) > 0:
            self._left_before = False
        left = self._left_on_command or self._left_before
        wanted = Snapshot(next_peers(self.snapshot.peers, live, live), left)
        return None if wanted == self.snapshot else wanted

    def _write_snapshot(self, snapshot: Snapshot) -> None:
        """Write ``snapshot`` (in a thread from the event loop: it fsyncs a small file)."""
        if write_snapshot(self.config.data_dir, snapshot):
            self.snapshot = snapshot
            self.snapshot_writes += 1

    def ready_line(self) -> str:
        a = self.addresses
        return (
            f"hearsay ready resp={a['resp']} gossip={a['gossip']} http={a['http']} node={self.name}"
        )

    async def _housekeep(self) -> None:
        next_sidecar_s = time.monotonic() + SIDECAR_INTERVAL_S
        next_snapshot_s = time.monotonic()
        next_idle_check_s = time.monotonic()
        next_flush_s = time.monotonic()
        while not self._stopping.is_set():
            now = unix_ms()
            if self.config.client_idle_timeout_s and time.monotonic() >= next_idle_check_s:
                next_idle_check_s = time.monotonic() + IDLE_CHECK_INTERVAL_S
                self._close_idle_clients(now, self.config.client_idle_timeout_s * 1000)
            self.replica.expire_due(now)
            self.replica.purge_tombstones(now, self.config.tombstone_grace_s * 1000)
            self.replica.retire_step(now, self.config.retire_grace_s * 1000)
            if self.replica.sweep_pending and (
                self._floor_sweeper is None or self._floor_sweeper.done()
            ):
                self._floor_sweeper = asyncio.create_task(self._sweep_floor())
            if time.monotonic() >= next_flush_s or self.replica.dirty_keys >= FLUSH_DIRTY_KEYS_MAX:
                next_flush_s = time.monotonic() + FLUSH_INTERVAL_S
                flush_started_ns = time.perf_counter_ns()
                self.replica.flush()
                self.node_metrics.flush_durations.record(time.perf_counter_ns() - flush_started_ns)
            if time.monotonic() >= next_sidecar_s:
                next_sidecar_s = time.monotonic() + SIDECAR_INTERVAL_S
                if self.replica.storage_failure is None:  # a failing disk may stall fsync
                    # Off the event loop: it fsyncs a small file.
                    await asyncio.to_thread(self.replica.write_sidecar, now)
            if time.monotonic() >= next_snapshot_s:
                next_snapshot_s = time.monotonic() + SNAPSHOT_INTERVAL_S
                if (snapshot := self._snapshot_due()) is not None:
                    await asyncio.to_thread(self._write_snapshot, snapshot)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), HOUSEKEEPING_INTERVAL_S)

    def _close_idle_clients(self, now_ms: int, timeout_ms: int) -> None:
        """Redis's ``timeout``: close the clients whose last command is older than
        ``timeout_ms`` (or that sent none since they connected), except those waiting for a
        reply (WAIT, a write under ``--fsync always``) and monitors."""
        observer = self.registry.observer
        monitors = observer.monitors if observer is not None else {}
        for connection in list(self.resp.connections):
            ctx = connection.ctx
            idle_ms = now_ms - max(ctx.now_ms, ctx.created_ms)
            if idle_ms > timeout_ms and not connection.blocked and ctx.client_id not in monitors:
                connection.close()
                self.idle_clients_closed += 1

    async def _sweep_floor(self) -> None:
        """After FLUSHALL here or on a peer: drop the entries below the flush floor, one
        bounded chunk per event-loop turn (and stage their deletes), so no request waits long
        behind it. Chunks go on while the store's writer keeps up (it commits the deletes of
        many chunks at once: ~10 us a row in big batches, ~70 us in batches of 1,024, whose
        random keys touch a B-tree page each), and wait while it lags."""
        replica = self.replica
        while replica.sweep_pending and not self._stopping.is_set():
            if replica.storage_lag_s > FLOOR_SWEEP_LAG_MAX_S:  # let the writer catch up
                await asyncio.sleep(FLOOR_SWEEP_BACKOFF_S)
                continue
            replica.sweep_floor()
            replica.flush()
            await asyncio.sleep(0)

    def _flush(self) -> None:
        """After an rmbd write: stage it, and send its gossip."""
        self.replica.flush()
        self.gossip.pump_soon()

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Graceful: stop clients, announce the leave, flush storage, close."""
        self._stopping.set()
        if self._housekeeping is not None:
            await self._housekeeping
        if self._floor_sweeper is not None:
            await self._floor_sweeper  # (stops at its next turn; a restart sweeps the rest)
        if self._sampler is not None:
            await self._sampler
        await self.resp.stop()
        if self._rmbd_transport is not None:
            self._rmbd_transport.close()
        await self.joiner.stop()
        if (snapshot := self._snapshot_due()) is not None:
            self._write_snapshot(snapshot)  # the peers of the last second too
        await self.gossip.leave()
        await self.gossip.stop()
        await self.http.stop()
        self.replica.close(unix_ms())

    # -- ClusterControl (the cluster commands) -------------------------------------------------

    def _membership(self) -> Membership:
        membership = self.replica.membership
        assert membership is not None, "the node gossips once started"
        return membership

    def members(self) -> list[MemberRow]:
        return [
            MemberRow(
                name=row.node_id,
                address=format_address(*row.address),
                state=row.state.reported,
                phi=row.phi,
                generation=row.generation,
            )
            for row in self._membership().members()
        ]

    def join(self, address: str) -> None:
        seed = parse_address(address)  # (a malformed address raises: the client's error)
        self.joiner.join([seed], format_address(*seed))  # resolved and retried in the background

    def _join_from_rmbd(self, address: str) -> None:
        """rmbd's PEER (``host:port``, an IPv6 host without brackets): a datagram's word, so
        an address that is not one is ignored (logged at debug), never raised."""
        host, _, port = address.rpartition(":")
        try:
            self.join(format_address(host, int(port)) if port.isdigit() else address)
        except HearsayError as error:
            log.debug("rmbd PEER ignored: %s", error)

    def leave(self) -> None:
        if self.replica.node is not None:
            self.replica.leave(unix_ms())
            self.gossip.pump()
            self._left_on_command = True  # the next start does not rejoin (housekeeping writes it)

    def force_leave(self, node: str) -> bool:
        membership = self._membership()
        row = membership.member(node)
        if row is None:
            return False
        if row.is_self:
            raise HearsayError("this node cannot force itself out: use HEARSAY.LEAVE")
        if row.state is MemberState.LEFT:
            return True
        if row.state is not MemberState.FAILED:
            raise HearsayError(
                f"{node} is {row.state.reported}, not failed: only a failed member can be forced "
                "out (stop it, or run HEARSAY.LEAVE on it)"
            )
        membership.force_leave(node, unix_ms())
        self.gossip.pump()
        return True

    def set_state(self, key: str, value: bytes, expiry_unix_ms: int | None, now_ms: int) -> None:
        try:
            self._membership().set_tag(key, value, expiry_unix_ms, now_ms=now_ms)
        except ValueError as error:  # the gossip core's own limits (count, packed size)
            raise BoundsError(f"state key not set: {error}") from None
        self.gossip.pump()

    def peer_value(self, node: str, key: str) -> bytes | None:
        value = self._membership().peer_value(node, key)
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    def peer_keys(self, node: str) -> list[str] | None:
        membership = self._membership()
        if membership.member(node) is None:
            return None
        return membership.peer_keys(node)

    def node_name(self) -> str:
        return self.name

    # -- introspection (INFO, /status, /metrics) ------------------------------------------------

    def client_contexts(self) -> list[ClientContext]:
        """Every open client connection's context (CLIENT LIST), with its buffer sizes."""
        for connection in self.resp.connections:
            connection.refresh_buffer_sizes()
        return [connection.ctx for connection in self.resp.connections]

    def release_free_memory(self) -> None:
        """MEMORY PURGE: the allocator's free pages back to the system."""
        release_free_memory()

    def close_clients(self, client_ids: set[int]) -> None:
        """Close these connections (CLIENT KILL)."""
        for connection in list(self.resp.connections):
            if connection.ctx.client_id in client_ids:
                connection.close()

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def used_memory_bytes(self) -> int:
        return int(_memory_section()["used_memory"])

    def _http_address(self, name: str, gossip_address: str) -> str:
        """A member's HTTP address (its dashboard): its gossip host and the port it announced
        (``""`` until that arrives)."""
        if name == self.name:
            return self.addresses.get("http", "")
        port = self._membership().http_port(name)
        return "" if port is None else format_address(parse_address(gossip_address)[0], port)

    def health(self) -> tuple[bool, str]:
        """``/health``: 503 while writes are refused (storage read-only), else 200."""
        failure = self.replica.storage_failure
        if failure is not None:
            return False, f"read-only: cannot write the data directory ({failure.cause})"
        if self.replica.data_loss is not None:
            return True, f"degraded: {self.replica.data_loss}"
        return True, "ok"

    def storage_status(self) -> dict[str, Any]:
        """The storage state for /status and INFO: ``ok`` or ``read-only`` with the cause."""
        failure = self.replica.storage_failure
        return {
            "state": "ok" if failure is None else "read-only",
            "cause": "" if failure is None else failure.cause,
            "read_only_for_s": (
                0.0 if failure is None else round(time.monotonic() - failure.since_s, 3)
            ),
            "held_writes": 0 if failure is None else failure.held_keys,
            "quarantined_entries": self.replica.stats.corrupt_entries_skipped,
            "data_loss_at_start": self.replica.data_loss or "",
        }

    def status(self) -> dict[str, Any]:
        identity = self.replica.identity
        return {
            "storage": self.storage_status(),
            "node": self.name,
            "node_id": identity.node_id,
            "generation": identity.generation,
            "version": __version__,
            "uptime_s": self.uptime_s(),
            "keys": len(self.replica.keyspace),
            "clients": len(self.resp.connections),
            "addresses": self.addresses,
            **self.node_metrics.status(),
            "members": [
                {
                    "name": row.name,
                    "address": row.address,
                    "state": row.state,
                    "phi": round(row.phi, 3),
                    "generation": row.generation,
                    "http": self._http_address(row.name, row.address),
                }
                for row in (self.members() if self.replica.membership is not None else [])
            ],
        }

    def info_sections(self) -> dict[str, dict[str, Any]]:
        """INFO's sections (Redis's field names where Redis has the same field)."""
        identity = self.replica.identity
        stats = self.replica.stats
        keyspace = self.replica.keyspace
        resp_address = self.addresses.get("resp", "")
        resp = self.resp
        uptime = self.uptime_s()
        return {
            "server": {
                "redis_version": "7.0.0",
                "hearsay_version": __version__,
                "redis_mode": "standalone",
                "os": sys.platform,
                "process_id": os.getpid(),
                "run_id": identity.node_id,
                "node_name": self.name,
                "generation": identity.generation,
                "tcp_port": resp_address.rsplit(":", 1)[-1],
                "uptime_in_seconds": int(uptime),
                "uptime_in_days": int(uptime // 86400),
                "gossip_address": self.addresses.get("gossip", ""),
                "http_address": self.addresses.get("http", ""),
                "rmbd_address": self.addresses.get("rmbd", ""),
                "rmbd_peers_refused": 0 if self._rmbd is None else self._rmbd.peers_refused,
            },
            "clients": {
                "connected_clients": len(self.resp.connections),
                "maxclients": resp.limits.maxclients,
                "client_recent_max_input_buffer": resp.recent_max_input_bytes(),
                "client_recent_max_output_buffer": resp.recent_max_output_bytes(),
                "blocked_clients": resp.blocked_clients(),
            },
            "memory": _memory_section(),
            "stats": {
                "total_connections_received": self.resp.total_connections,
                "total_commands_processed": self.resp.commands_processed(),
                "coalesced_commands": resp.coalescer.coalesced_commands,
                "rejected_connections": resp.rejected_connections,
                "http_rejected_connections": self.http.rejected_connections,
                "idle_clients_closed": self.idle_clients_closed,
                "evicted_clients": resp.evicted_clients,
                "client_query_buffer_limit_disconnections": resp.query_buffer_limit_disconnections,
                "client_output_buffer_limit_disconnections": resp.output_limit_disconnections,
                "acl_access_denied_auth": resp.auth_throttle.failures,
                "local_writes": stats.local_writes,
                "replicated_changes": stats.replicated_changes,
                "expired_keys": stats.expired_keys,
                "tombstones_purged": stats.tombstones_purged,
                "flushed_keys": stats.flushed_keys,
                "flush_floor_ms": self.replica.keyspace.floor_ms,
                "window_slices_dropped": self.replica.windows.slices_dropped,  # windowed keys
                "schema_conflicts": stats.schema_conflicts,
                "retired_origin_dropped": self.replica.keyspace.retired_origin_dropped,
                "retired_folds": self.replica.retirer.folds,
                "departed_nodes": len(self.replica.keyspace.departures),
                "corrupt_entries_skipped": stats.corrupt_entries_skipped,
                "internal_errors": self.registry.internal_errors,
                "writes_refused_too_large": self.replica.keyspace.refused_too_large,
            },
            "persistence": self._persistence_info(),
            "keyspace": (
                {"db0": f"keys={len(keyspace)},expires={keyspace.expiring_count},avg_ttl=0"}
                if len(keyspace)
                else {}
            ),
            "gossip": self._gossip_info(),
        }

    def _persistence_info(self) -> dict[str, Any]:
        """INFO persistence; ``storage_status``/``storage_error`` say whether writes are
        refused (Redis's ``aof_last_write_status`` is ``err`` then, as there)."""
        stats = self.replica.stats
        storage = self.storage_status()
        failed = storage["state"] != "ok"
        writer = self.replica.storage
        commits = writer.stats() if isinstance(writer, GroupCommit) else None
        return {
            "fsync": str(self.config.fsync),
            "loaded_entries": stats.loaded_entries,
            "flushes": stats.flushes,
            "aof_last_write_status": "err" if failed else "ok",
            "storage_status": storage["state"],
            "storage_error": storage["cause"],
            "storage_read_only_for_s": storage["read_only_for_s"],
            "storage_held_writes": storage["held_writes"],
            "quarantined_entries": storage["quarantined_entries"],
            "storage_data_loss_at_start": storage["data_loss_at_start"],
            "storage_failures": commits.failures if commits else 0,
            "storage_recoveries": commits.recoveries if commits else 0,
            "storage_unsynced_writes": self.replica.unsynced_writes,
            "storage_delta_rows": commits.delta_rows if commits else 0,
            "storage_pending_delta_rows": commits.pending_delta_rows if commits else 0,
            "storage_folds": commits.folds if commits else 0,
        }

    def _gossip_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"cluster": self.config.cluster, "preset": self.config.preset}
        info["address"] = self.addresses.get("gossip", "")
        if self.replica.membership is not None:
            membership = self.replica.membership
            info["refused_members"] = membership.refused_members
            info["refused_generations"] = membership.refused_generations
            info["refutations"] = membership.refutations
            info["probes_sent"] = membership.probes_sent
            info["probes_failed"] = membership.probes_failed
            info["suspicions_refuted"] = membership.suspicions_refuted
            info["local_health"] = membership.local_health
            rows = self.members()
            info["members"] = len(rows)
            for state in ("alive", "suspect", "failed", "left"):
                info[f"members_{state}"] = sum(row.state == state for row in rows)
            # At most INFO_MEMBERS_LISTED rows (those not alive first): INFO stays small at
            # 10,000 members; HEARSAY.MEMBERS and /members list them all.
            listed = sorted(rows, key=lambda row: row.state == "alive")[:INFO_MEMBERS_LISTED]
            for number, row in enumerate(listed):
                info[f"member{number}"] = (
                    f"name={row.name},address={row.address},state={row.state},"
                    f"phi={row.phi:.3f},generation={row.generation}"
                )
        node = self.replica.node
        if node is not None:
            stats = node.stats
            info["datagrams_in"] = stats.datagrams_in
            info["datagrams_out"] = stats.datagrams_out
            info["bytes_in"] = stats.bytes_in
            info["bytes_out"] = stats.bytes_out
            info["dropped"] = sum(stats.dropped.values())
            for reason, count in sorted(stats.dropped.items()):
                info[f"dropped_{reason.replace('-', '_')}"] = count
            info["anti_entropy_rounds"] = stats.ae_rounds
            info["streams_in"] = stats.streams_in
            info["rumours_paced"] = stats.paced
            info["rumours_waiting"] = node.rumours_waiting()
            info["streams_out"] = stats.streams_out
        info["send_errors"] = self.gossip.send_errors
        info["socket_receive_buffer_bytes"] = self.gossip.receive_buffer_bytes
        drops = self.gossip.socket_drops()
        if drops is not None:
            info["socket_drops"] = drops
        info["resolve_failures"] = self.joiner.resolve_failures
        info["join_attempts"] = self.joiner.attempts
        info["join_failures"] = self.joiner.failures
        info["joins_in_progress"] = self.joiner.joining()
        info["keyring_mismatches"] = self.keyring_mismatches.count
        info["peer_snapshot_peers"] = len(self.snapshot.peers)
        info["peer_snapshot_writes"] = self.snapshot_writes
        info["streams_refused"] = self.gossip.streams_refused
        return info

    def config_values(self) -> dict[str, str]:
        c = self.config
        return {
            "bind": c.host,
            "port": str(self.addresses.get("resp", "").rsplit(":", 1)[-1]),
            "dir": c.data_dir,
            "appendfsync": str(c.fsync),
            "databases": "1",
            "requirepass": "",  # never echo the password
            "maxclients": str(self.resp.limits.maxclients),
            "timeout": str(c.client_idle_timeout_s),
            "client-output-buffer-limit": (
                f"normal {c.client_output_buffer_limit} 0 0 replica 0 0 0 pubsub 0 0 0"
            ),
            "proto-max-bulk-len": str(c.proto_max_bulk_len),
            "client-query-buffer-limit": str(c.client_query_buffer_limit),
            "client-query-buffer-total-limit": str(c.client_query_buffer_total_limit),
            "cluster-name": c.cluster,
            "preset": c.preset,
            "save": "",
            "appendonly": "yes",
        }


async def serve(config: ServeConfig) -> int:
    """Run one node until SIGTERM/SIGINT; returns the process exit code."""
    node = Node(config)
    try:
        await node.start()
    except (OSError, HearsayError) as error:
        await node.gossip.stop()
        await node.resp.stop()
        await node.http.stop()
        node.replica.close()
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        print(f"hearsay: cannot start: {reason}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, node.request_stop)
    print(node.ready_line(), flush=True)
    await node.wait_stopped()
    log.info("stopping: flushing storage")
    try:
        await node.stop()
    except StorageError as error:
        # The data directory still cannot be written: say what was not saved, and fail.
        log.critical("stopped WITHOUT saving everything: %s", error)
        print(f"hearsay: stopped without saving everything: {error}", file=sys.stderr)
        return 1
    return 0


def run(config: ServeConfig) -> int:
    """Run :func:`serve` on uvloop when it is installed (about 5x faster UDP), else asyncio."""
    tune_gc()  # (see base/gc_policy.py)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    fix_mmap_threshold()  # (big buffers given back when freed: see runtime/allocator.py)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(config))
    return uvloop.run(serve(config))
