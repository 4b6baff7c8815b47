"""``hearsay import-redis``: copy the HyperLogLogs of a running Redis into a node.

A Redis HLL is a string that starts with ``HYLL``; hearsay's SET takes those bytes as they are
(a union with what the key already holds, so copying twice changes nothing). Keys are found by
SCAN (never KEYS, which would stall the source), fetched and written in pipelined batches; a
key's remaining time to live is copied with it. Strings that are not HLLs are skipped and
counted, as are keys that vanished between SCAN and GET.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Final

from hearsay.admin.connection import TIMEOUT_S, AdminError, Exit, Target, talking_to

SCAN_COUNT: Final = 500
HLL_MAGIC: Final = b"HYLL"


@dataclass(slots=True)
class CopyReport:
    scanned: int = 0
    copied: int = 0
    skipped_not_hll: int = 0

    def summary(self, source: str) -> str:
        return (
            f"copied {self.copied:,} HLL keys from {source} ({self.scanned:,} string keys "
            f"scanned, {self.skipped_not_hll:,} not HLLs skipped)"
        )

    def as_json(self) -> str:
        return json.dumps(asdict(self))


def source_target(url: str) -> Target:
    """The source Redis named by ``redis://[:password@]host:port`` (for the messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise AdminError(f"the source must be redis://HOST:PORT, not {url!r}", Exit.USAGE)
    try:
        port = parts.port or 6379
    except ValueError:
        raise AdminError(f"the source's port is not a number: {url!r}", Exit.USAGE) from None
    return Target(parts.hostname, port, parts.password)


def copy_hlls(source_url: str, target: Target, match: str | None) -> CopyReport:
    import redis

    source = source_target(source_url)
    report = CopyReport()
    reader = redis.Redis.from_url(
        source_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
    )
    writer = target.client()
    with reader, writer:
        cursor: int | None = None
        while cursor != 0:  # SCAN returns 0 once it has visited every key
            with talking_to(source):
                cursor, batch = reader.scan(
                    cursor or 0, match=match, count=SCAN_COUNT, _type="string"
                )
                if not batch:
                    continue
                fetch = reader.pipeline(transaction=False)
                for key in batch:
                    fetch.get(key)
                    fetch.pttl(key)
                fetched = fetch.execute()
            store = writer.pipeline(transaction=False)
            for key, value, ttl_ms in zip(batch, fetched[::2], fetched[1::2], strict=True):
                report.scanned += 1
                if not isinstance(value, bytes) or not value.startswith(HLL_MAGIC):
                    report.skipped_not_hll += value is not None
                    continue
                store.set(key, value)
                if ttl_ms > 0:
                    store.pexpire(key, ttl_ms)
                report.copied += 1
            with talking_to(target):
                store.execute(raise_on_error=True)
    return report
