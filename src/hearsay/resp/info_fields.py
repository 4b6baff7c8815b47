"""INFO's Redis fields that the node does not report itself, so clients, exporters and test
harnesses that read Redis's INFO find every field they look for.

Why a module: the node (runtime) reports what it knows (uptime, clients, memory, its stats);
this fills in the rest of Redis 7's sections once, for every node and the simulator, with
honest values: what the process can tell (CPU, system memory, architecture), what hearsay's
design fixes (no replication offsets, no fork, no AOF rewrite, no Lua: zeros), and, for
figures hearsay does not track, Redis's value for "none" (documented in docs/commands.md).
A field the node reports always wins.
"""

from __future__ import annotations

import os
import resource
import sys
from collections import deque
from typing import Any, Final

__all__ = ["OpsRate", "complete_sections"]

_OPS_WINDOW_MS: Final = 5_000
"""instantaneous_ops_per_sec is the rate over (at most) the last INFO calls of this long."""
_OPS_SAMPLES_MAX: Final = 64
_LRU_CLOCK_MAX: Final = (1 << 24) - 1


class OpsRate:
    """Commands per second between INFO calls: Redis samples on its timer; hearsay samples
    when INFO is asked, which is when a monitoring tool (``redis-cli --stat``) polls."""

    def __init__(self) -> None:
        self._samples: deque[tuple[int, int]] = deque(maxlen=_OPS_SAMPLES_MAX)

    def rate(self, now_ms: int, total_commands: int) -> int:
        """The rate since the oldest sample within the window (0 on the first call)."""
        samples = self._samples
        while samples and now_ms - samples[0][0] > _OPS_WINDOW_MS:
            samples.popleft()
        rate = 0
        if samples and now_ms > samples[0][0]:
            then_ms, then_total = samples[0]
            rate = max(0, total_commands - then_total) * 1000 // (now_ms - then_ms)
        samples.append((now_ms, total_commands))
        return rate


def _human(count: int) -> str:
    """Redis's ``bytesToHuman``: 1023B, 1.50K, 12.25M, 3.00G."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if count >= size:
            return f"{count / size:.2f}{unit}"
    return f"{count}B"


def _system_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: unknown, as Redis says 0
        return 0


def _cpu() -> dict[str, str]:
    thread = getattr(resource, "RUSAGE_THREAD", None)  # Linux: the event loop's own thread
    main = resource.getrusage(thread) if thread is not None else None
    me = resource.getrusage(resource.RUSAGE_SELF)  # after the thread's: never below it
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    main = main or me
    return {
        "used_cpu_sys": f"{me.ru_stime:.6f}",
        "used_cpu_user": f"{me.ru_utime:.6f}",
        "used_cpu_sys_children": f"{children.ru_stime:.6f}",
        "used_cpu_user_children": f"{children.ru_utime:.6f}",
        "used_cpu_sys_main_thread": f"{main.ru_stime:.6f}",
        "used_cpu_user_main_thread": f"{main.ru_utime:.6f}",
    }


def _defaults(sections: dict[str, dict[str, Any]], now_ms: int) -> dict[str, dict[str, Any]]:
    """Every Redis 7 field of the sections clients read, from what the node reported."""
    server = sections.get("server", {})
    stats = sections.get("stats", {})
    memory = sections.get("memory", {})
    persistence = sections.get("persistence", {})
    run_id = str(server.get("run_id", ""))
    replid = (run_id.encode().hex() + "0" * 40)[:40]
    used = int(memory.get("used_memory", 0))
    rss = int(memory.get("used_memory_rss", 0))
    total_memory = _system_memory_bytes()
    unsynced = int(persistence.get("storage_unsynced_writes", 0))
    storage_ok = persistence.get("aof_last_write_status", "ok") == "ok"
    started_s = now_ms // 1000 - int(server.get("uptime_in_seconds", 0))
    return {
        "server": {
            "redis_git_sha1": "00000000",
            "redis_git_dirty": 0,
            "redis_build_id": "0",
            "arch_bits": 64 if sys.maxsize > 2**32 else 32,
            "monotonic_clock": "POSIX clock_gettime",
            "multiplexing_api": "epoll" if sys.platform == "linux" else "select",
            "atomicvar_api": "c11-builtin",
            "gcc_version": "0.0.0",
            "process_supervised": "no",
            "server_time_usec": now_ms * 1000,
            "hz": 10,
            "configured_hz": 10,
            "lru_clock": (now_ms // 1000) & _LRU_CLOCK_MAX,
            "executable": os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "",
            "config_file": "",
            "io_threads_active": 0,
        },
        "clients": {
            "cluster_connections": 0,
            "tracking_clients": 0,
            "clients_in_timeout_table": 0,
        },
        "memory": {
            "used_memory_peak_perc": (
                f"{100 * used / int(memory['used_memory_peak']):.2f}%"
                if memory.get("used_memory_peak")
                else "0.00%"
            ),
            # No allocator statistics apart from the kernel's: the whole of used_memory counts
            # as the dataset, the allocator's figures are the process's own.
            "used_memory_overhead": 0,
            "used_memory_startup": 0,
            "used_memory_dataset": used,
            "used_memory_dataset_perc": "100.00%" if used else "0.00%",
            "allocator_allocated": used,
            "allocator_active": used,
            "allocator_resident": rss,
            "allocator_frag_ratio": "1.00",
            "allocator_frag_bytes": 0,
            "allocator_rss_ratio": f"{rss / used:.2f}" if used else "0.00",
            "allocator_rss_bytes": rss - used,
            "rss_overhead_ratio": "1.00",
            "rss_overhead_bytes": 0,
            "total_system_memory": total_memory,
            "total_system_memory_human": _human(total_memory),
            "used_memory_lua": 0,
            "used_memory_lua_human": "0B",
            "used_memory_scripts": 0,
            "used_memory_scripts_human": "0B",
            "number_of_cached_scripts": 0,
            "number_of_functions": 0,
            "number_of_libraries": 0,
            "used_memory_vm_eval": 0,
            "used_memory_vm_functions": 0,
            "used_memory_vm_total": 0,
            "used_memory_vm_total_human": "0B",
            "used_memory_scripts_eval": 0,
            "used_memory_functions": 0,
            "maxmemory": 0,
            "maxmemory_human": "0B",
            "maxmemory_policy": "noeviction",
            "mem_fragmentation_ratio": f"{rss / used:.2f}" if used else "0.00",
            "mem_fragmentation_bytes": rss - used,
            "mem_not_counted_for_evict": 0,
            "mem_replication_backlog": 0,
            "mem_total_replication_buffers": 0,
            "mem_clients_normal": 0,
            "mem_cluster_links": 0,
            "mem_clients_slaves": 0,
            "mem_aof_buffer": 0,
            "mem_allocator": "libc",
            "active_defrag_running": 0,
            "lazyfree_pending_objects": 0,
            "lazyfreed_objects": 0,
        },
        "persistence": {
            "loading": 0,
            "async_loading": 0,
            "current_cow_peak": 0,
            "current_cow_size": 0,
            "current_cow_size_age": 0,
            "current_fork_perc": "0.00",
            "current_save_keys_processed": 0,
            "current_save_keys_total": 0,
            "rdb_changes_since_last_save": unsynced,
            "rdb_bgsave_in_progress": 0,
            "rdb_last_save_time": now_ms // 1000 if unsynced == 0 else started_s,
            "rdb_last_bgsave_status": "ok" if storage_ok else "err",
            "rdb_last_bgsave_time_sec": -1,
            "rdb_current_bgsave_time_sec": -1,
            "rdb_saves": int(persistence.get("flushes", 0)),
            "rdb_last_cow_size": 0,
            "rdb_last_load_keys_expired": 0,
            "rdb_last_load_keys_loaded": int(persistence.get("loaded_entries", 0)),
            "aof_enabled": 0,
            "aof_rewrite_in_progress": 0,
            "aof_rewrite_scheduled": 0,
            "aof_last_rewrite_time_sec": -1,
            "aof_current_rewrite_time_sec": -1,
            "aof_last_bgrewrite_status": "ok",
            "aof_rewrites": 0,
            "aof_rewrites_consecutive_failures": 0,
            "aof_last_write_status": "ok" if storage_ok else "err",
            "aof_last_cow_size": 0,
            "module_fork_in_progress": 0,
            "module_fork_last_cow_size": 0,
        },
        "stats": {
            "instantaneous_ops_per_sec": 0,
            "total_net_input_bytes": 0,
            "total_net_output_bytes": 0,
            "instantaneous_input_kbps": "0.00",
            "instantaneous_output_kbps": "0.00",
            "total_net_repl_input_bytes": 0,
            "total_net_repl_output_bytes": 0,
            "instantaneous_input_repl_kbps": "0.00",
            "instantaneous_output_repl_kbps": "0.00",
            "sync_full": 0,
            "sync_partial_ok": 0,
            "sync_partial_err": 0,
            "expired_keys": 0,
            "expired_stale_perc": "0.00",
            "expired_time_cap_reached_count": 0,
            "evicted_keys": 0,
            "expire_cycle_cpu_milliseconds": 0,
            "evicted_clients": 0,
            "total_eviction_exceeded_time": 0,
            "current_eviction_exceeded_time": 0,
            "keyspace_hits": 0,
            "keyspace_misses": 0,
            "pubsub_channels": 0,
            "pubsub_patterns": 0,
            "pubsubshard_channels": 0,
            "latest_fork_usec": 0,
            "total_forks": 0,
            "migrate_cached_sockets": 0,
            "slave_expires_tracked_keys": 0,
            "active_defrag_hits": 0,
            "active_defrag_misses": 0,
            "active_defrag_key_hits": 0,
            "active_defrag_key_misses": 0,
            "total_active_defrag_time": 0,
            "current_active_defrag_time": 0,
            "tracking_total_keys": 0,
            "tracking_total_items": 0,
            "tracking_total_prefixes": 0,
            "unexpected_error_replies": int(stats.get("internal_errors", 0)),
            "total_error_replies": 0,
            "dump_payload_sanitizations": 0,
            "total_reads_processed": 0,
            "total_writes_processed": 0,
            "io_threaded_reads_processed": 0,
            "io_threaded_writes_processed": 0,
            "reply_buffer_shrinks": 0,
            "reply_buffer_expands": 0,
        },
        "replication": {
            "role": "master",
            "connected_slaves": 0,
            "master_failover_state": "no-failover",
            "master_replid": replid,
            "master_replid2": "0" * 40,
            "master_repl_offset": 0,
            "second_repl_offset": -1,
            "repl_backlog_active": 0,
            "repl_backlog_size": 0,
            "repl_backlog_first_byte_offset": 0,
            "repl_backlog_histlen": 0,
        },
        "cpu": _cpu(),
        "modules": {"module": "name=bf,ver=80000,api=1,filters=0,usedby=[],using=[],options=[]"},
        "cluster": {"cluster_enabled": 0},
    }


def complete_sections(
    sections: dict[str, dict[str, Any]], now_ms: int, ops_per_sec: int
) -> dict[str, dict[str, Any]]:
    """``sections`` with every Redis field it lacks added after the node's own (which win),
    and the sections it lacks added in Redis's order."""
    out: dict[str, dict[str, Any]] = {}
    defaults = _defaults(sections, now_ms)
    defaults["stats"]["instantaneous_ops_per_sec"] = ops_per_sec
    for name in dict.fromkeys([*sections, *defaults]):
        fields = dict(sections.get(name, {}))
        for field, value in defaults.get(name, {}).items():
            fields.setdefault(field, value)
        out[name] = fields
    return out
