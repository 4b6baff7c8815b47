"""``hearsay import``: items from a file (one a line, or one column of it) into one sketch.

The file is read as a stream of bytes, ``BATCH_ITEMS`` items make one command (PFADD,
BF.MADD or CMS.INCRBY) and ``PIPELINE_COMMANDS`` commands make one round trip, so memory
stays bounded by one round trip's items whatever the file's size, and the node sees few,
large writes. A line that holds no item (blank, too short for ``--column``, longer than
``LINE_BYTES_MAX``) is counted and skipped, never fatal; an error from the node (WRONGTYPE, a
refused write) stops the import, since every later batch would meet it too.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Final, TextIO

from hearsay.admin.connection import AdminError, Exit, Target, send, talking_to
from hearsay.admin.progress import Progress
from hearsay.admin.table import text

if TYPE_CHECKING:
    import redis

BATCH_ITEMS: Final = 1000
PIPELINE_COMMANDS: Final = 8
LINE_BYTES_MAX: Final = 64 * 1024
"""A longer line is a bad line (read past in chunks, never held whole)."""
BAD_LINES_LISTED: Final = 10
"""The first bad lines' numbers are kept for the summary; the rest are only counted."""
KINDS: Final = ("hll", "bloom", "cms")
TYPE_REPLIES: Final = {"hll": b"string", "bloom": b"MBbloom--", "cms": b"CMSk-TYPE"}
CMS_PROBABILITY: Final = 0.01
"""The chance that a count-min estimate exceeds its error bound (CMS.INITBYPROB's second
argument) for a sketch the import creates."""


@dataclass(slots=True)
class ImportReport:
    """What an import did; printed as the summary (and as JSON with ``--json``)."""

    key: str
    type: str
    lines: int = 0
    items: int = 0
    bad_lines: int = 0
    first_bad_lines: list[int] = field(default_factory=list)
    seconds: float = 0.0
    estimate: int = 0
    """After the import: PFCOUNT (hll), BF.CARD (bloom) or the total count (cms)."""

    def summary(self) -> str:
        rate = self.lines / self.seconds if self.seconds > 0 else 0.0
        what = {"hll": "distinct", "bloom": "items (estimated)", "cms": "counted"}[self.type]
        text = (
            f"imported {self.items:,} items from {self.lines:,} lines into {self.key} "
            f"({self.type}) in {self.seconds:.1f} s ({rate:,.0f} lines/s); "
            f"{self.key} now holds {self.estimate:,} {what}"
        )
        if self.bad_lines:
            listed = ", ".join(str(n) for n in self.first_bad_lines)
            more = ", ..." if self.bad_lines > len(self.first_bad_lines) else ""
            lines = "line" if self.bad_lines == 1 else "lines"
            text += f"\n{self.bad_lines:,} bad {lines} skipped ({lines} {listed}{more})"
        return text


def read_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Each line without its end (``\\n`` or ``\\r\\n``); None for a line longer than
    ``LINE_BYTES_MAX``, whose rest is read past without being kept."""
    while True:
        line = handle.readline(LINE_BYTES_MAX + 1)
        if not line:
            return
        if len(line) > LINE_BYTES_MAX and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = handle.readline(LINE_BYTES_MAX)
            yield None
            continue
        yield line.removesuffix(b"\n").removesuffix(b"\r")


def item_of(line: bytes | None, column: int | None, separator: bytes) -> bytes | None:
    """The item a line holds: the whole line, or its ``column``-th field (1-based, fields
    split on ``separator``, no quoting); None if there is none."""
    if line is None:
        return None
    if column is not None:
        fields = line.split(separator, column)
        if len(fields) < column:
            return None
        line = fields[column - 1]
    return line if line.strip() else None


class _Sender:
    """Batches items into commands and commands into pipelined round trips."""

    def __init__(self, client: redis.Redis, key: str, kind: str) -> None:
        self._client = client
        self._key = key
        self._kind = kind
        self._batch: list[bytes] = []
        self._pipe = client.pipeline(transaction=False)
        self._queued = 0

    def add(self, item: bytes) -> None:
        self._batch.append(item)
        if len(self._batch) >= BATCH_ITEMS:
            self._queue_batch()

    def _queue_batch(self) -> None:
        if not self._batch:
            return
        if self._kind == "hll":
            send(self._pipe, "PFADD", self._key, *self._batch)
        elif self._kind == "bloom":
            send(self._pipe, "BF.MADD", self._key, *self._batch)
        else:
            pairs = [part for item, n in Counter(self._batch).items() for part in (item, n)]
            send(self._pipe, "CMS.INCRBY", self._key, *pairs)
        self._batch = []
        self._queued += 1
        if self._queued >= PIPELINE_COMMANDS:
            self.flush()

    def flush(self) -> None:
        """Sends what is batched and waits for the replies (raises the first error)."""
        self._queue_batch()
        if self._queued:
            self._pipe.execute(raise_on_error=True)
            self._queued = 0


def _prepare(client: redis.Redis, key: str, kind: str, capacity: int, error_rate: float) -> None:
    """Creates a Bloom filter or count-min sketch the import needs (an HLL creates itself);
    refuses a key that holds another type before anything is written."""
    existing = client.type(key)
    if existing == b"none":
        if kind == "bloom":
            send(client, "BF.RESERVE", key, error_rate, capacity, "NONSCALING")
        elif kind == "cms":
            send(client, "CMS.INITBYPROB", key, error_rate, CMS_PROBABILITY)
        return
    if existing != TYPE_REPLIES[kind]:
        raise AdminError(f"{key} holds a {text(existing)}, not a {kind}", Exit.REFUSED)


def _estimate(client: redis.Redis, key: str, kind: str) -> int:
    if kind == "hll":
        return int(send(client, "PFCOUNT", key))
    if kind == "bloom":
        return int(send(client, "BF.CARD", key))
    reply = send(client, "CMS.INFO", key)  # redis-py makes {width, depth, count} of it
    if not isinstance(reply, dict):
        reply = dict(zip(reply[::2], reply[1::2], strict=True))
    return int(reply[b"count"])


def import_file(
    target: Target,
    path: str,
    key: str,
    kind: str,
    *,
    column: int | None = None,
    separator: bytes = b",",
    capacity: int = 100_000,
    error_rate: float = 0.01,
    progress_stream: TextIO | None = None,
    stdin: BinaryIO | None = None,
) -> ImportReport:
    """Imports ``path`` (``-``: ``stdin``) into ``key``; progress goes to ``progress_stream``."""
    if kind not in KINDS:
        raise AdminError(f"type must be one of {', '.join(KINDS)}", Exit.USAGE)
    if column is not None and column < 1:
        raise AdminError("--column counts from 1", Exit.USAGE)
    report = ImportReport(key, kind)
    started_s = time.monotonic()
    try:
        handle = stdin if path == "-" and stdin is not None else open(path, "rb")  # noqa: SIM115
    except OSError as error:
        raise AdminError(f"cannot read {path}: {error.strerror}", Exit.USAGE) from None
    with handle:
        total = None if path == "-" else os.fstat(handle.fileno()).st_size
        progress = None
        if progress_stream is not None:
            is_tty = progress_stream.isatty()
            progress = Progress(progress_stream, total, time.monotonic, is_tty)
        client = target.client()
        with talking_to(target), client:
            _prepare(client, key, kind, capacity, error_rate)
            sender = _Sender(client, key, kind)
            for line in read_lines(handle):
                report.lines += 1
                item = item_of(line, column, separator)
                if item is None:
                    report.bad_lines += 1
                    if len(report.first_bad_lines) < BAD_LINES_LISTED:
                        report.first_bad_lines.append(report.lines)
                    continue
                sender.add(item)
                report.items += 1
                if progress is not None and report.items % BATCH_ITEMS == 0:
                    progress.update(handle.tell() if total else 0, report.lines)
            sender.flush()
            if progress is not None:
                progress.update(total or 0, report.lines, force=True)
                progress.close()
            report.estimate = _estimate(client, key, kind)
    report.seconds = time.monotonic() - started_s
    return report
