"""Calls, errors and latency buckets per command, kept cheaply on the request path.

Why not prometheus_client's Counter/Histogram: every ``inc``/``observe`` takes a lock and
walks the bucket bounds, on every command. Here one call costs a dict lookup, two list
increments and an ``int.bit_length`` (power-of-two buckets need no search, and a row has a slot
for every power of two a duration can reach, so none is capped per call); the metrics
collector reads the rows at scrape time (:mod:`hearsay.runtime.metrics`).

Rows are keyed by the command name as the client spelled it (a ``bytes`` object hashes once and
caches its hash), resolved to the registry's name the first time; a name the registry does not
know goes to one ``unknown`` row, and at most :data:`SPELLINGS_MAX` spellings get rows of their
own (a client sending ``pFaDd``, ``PfAdD``... cannot grow the table without bound).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from hearsay.base.durations import BUCKETS
from hearsay.resp.commands import CommandRegistry

CALLS, ERRORS, SUM_NS, FIRST_BUCKET = 0, 1, 2, 3
"""Indexes into a row as :meth:`CommandStats.rows` gives it: calls, error replies, total time
in ns, then the :data:`BUCKETS` buckets."""
_SLOTS: Final = 55
"""A recording row's duration slots: ``(ns >> 10).bit_length()`` of any 64-bit duration."""
_ERRORS, _SUM_NS = _SLOTS, _SLOTS + 1
"""A recording row's other slots (its calls are the sum of its duration slots)."""
SPELLINGS_MAX: Final = 1024
UNKNOWN: Final = "unknown"
"""The row of names the registry does not know (and of spellings past the cap)."""


class CommandStats:
    """Per-command recording rows, resolved to the registry's names; the runtime's RESP server
    records, the metrics collector and the dashboard's sampler read."""

    def __init__(self, registry: CommandRegistry) -> None:
        self._registry = registry
        self._by_spelling: dict[bytes, list[int]] = {}
        self._by_name: dict[str, list[int]] = {}
        self._groups: dict[str, str] = {}
        self._kinds: dict[str, str] = {}  # "write", "read" or "other" (the command's flags)

    def record(self, name: bytes, elapsed_ns: int, failed: bool) -> None:
        """One call of ``name`` took ``elapsed_ns``; ``failed``: it answered an error."""
        row = self._by_spelling.get(name)
        if row is None:
            row = self._row_for(name)
        row[(elapsed_ns >> 10).bit_length()] += 1
        row[_SUM_NS] += elapsed_ns
        if failed:
            row[_ERRORS] += 1

    def record_run(self, name: bytes, elapsed_ns: int, errors: int, calls: int) -> None:
        """``calls`` calls of ``name`` answered at once (a pipelined run) took ``elapsed_ns``
        together, ``errors`` of them errors: each counts at their mean time."""
        row = self._by_spelling.get(name)
        if row is None:
            row = self._row_for(name)
        row[(elapsed_ns // calls >> 10).bit_length()] += calls
        row[_SUM_NS] += elapsed_ns
        row[_ERRORS] += errors

    def _row_for(self, spelling: bytes) -> list[int]:
        spec = self._registry.get(spelling.decode("latin-1"))
        name = UNKNOWN if spec is None else spec.full_name
        row = self._by_name.get(name)
        if row is None:
            row = self._by_name[name] = [0] * (_SLOTS + 2)
            self._groups[name] = "unknown" if spec is None else spec.group
            self._kinds[name] = (
                "other"
                if spec is None
                else "write"
                if spec.writes
                else "read"
                if "readonly" in spec.flags
                else "other"
            )
        if len(self._by_spelling) < SPELLINGS_MAX:
            self._by_spelling[spelling] = row
        return row

    def rows(self) -> Iterator[tuple[str, str, list[int]]]:
        """``(command, group, [calls, errors, sum_ns, bucket0 .. bucket21])`` for every
        command called so far (durations past the last bound fold into +Inf's bucket)."""
        for name, row in list(self._by_name.items()):
            slots = row[:_SLOTS]
            buckets = [*slots[: BUCKETS - 1], sum(slots[BUCKETS - 1 :])]
            yield name, self._groups[name], [sum(slots), row[_ERRORS], row[_SUM_NS], *buckets]

    def calls_by_kind(self) -> dict[str, int]:
        """Calls so far of write commands, read-only commands and the others (the dashboard's
        rates are differences of these)."""
        totals = {"write": 0, "read": 0, "other": 0}
        for name, row in list(self._by_name.items()):
            totals[self._kinds[name]] += sum(row[:_SLOTS])
        return totals
