"""The PN counter view: Redis's INCR / INCRBY / DECR / DECRBY / GET over per-origin slices.

Each origin (node) owns one slice of two slots: slot 0 is the running total of its increments
``P``, slot 1 of its decrements ``N``; both only grow, so max-merge never loses a concurrent
write and re-delivery changes nothing. The value is ``sum(P) - sum(N)`` over all origins.

**Redis's bounds**: the value is a signed 64-bit integer. An INCRBY/DECRBY whose *result*
would leave ``-2**63 .. 2**63 - 1`` raises :class:`BoundsError` ("increment or decrement would
overflow", Redis's words) and writes nothing; ``DECRBY -9223372036854775808`` is refused as
"decrement would overflow", as Redis does (the negation does not fit).

**The lattice's bounds**: each origin's ``P`` and ``N`` must each stay at most ``2**63 - 1``.
They only grow, so a node whose increments (or decrements) *in total* reach that bound, even
when they cancel out in the value (say ``INCRBY 2**62`` and ``DECRBY 2**62`` twice over),
cannot write in that direction any more: the write is refused with a BoundsError that says so,
and nothing is written. Reaching it takes 9.2e18 units through one node; the way out is to
write through another origin (another node), or DEL the key (a new epoch starts at zero).
One consequence: Redis's floor ``-2**63`` needs decrements totalling ``2**63``, one more than a
single origin can hold, so from a fresh key one node alone reaches ``-2**63 + 1`` at most.

Concurrent increments on different nodes can each be valid and still sum beyond int64 (two
nodes each INCRBY 2**62 + 2**62 from 0 at once). :meth:`PNCounter.get` returns the exact sum
anyway (a Python int, possibly outside int64; the RESP layer decides how to reply), and a
later write is checked against that value, so it is refused unless it brings it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import VALUE_MAX, MaxVector
from hearsay.sketch.schemas import KIND_COUNTER, expect_schema
from hearsay.sketch.schemas import counter as counter_schema
from hearsay.sketch.slots import FewPairs, Slices, merge_slices

__all__ = ["INT64_MAX", "INT64_MIN", "PNCounter"]

INT64_MAX: Final = (1 << 63) - 1
INT64_MIN: Final = -(1 << 63)
SLOT_INCREMENTS: Final = 0
SLOT_DECREMENTS: Final = 1
_BOTH_SLOTS: Final = [SLOT_INCREMENTS, SLOT_DECREMENTS]
"""The two slots an origin's slice holds, in order: read in one C call (never changed)."""


class PNCounter:
    """A stateless PN-counter view with Redis's integer semantics."""

    __slots__ = ("_schema",)

    def __init__(self) -> None:
        self._schema = counter_schema()

    @classmethod
    def from_schema(cls, schema: Schema) -> PNCounter:
        view = cls()
        if schema.kind != KIND_COUNTER:
            raise SketchParameterError(f"not a counter schema: {schema}")
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    def error_bound(self) -> float:
        """Counters are exact: 0."""
        return 0.0

    # -- reading ------------------------------------------------------------------------------

    @staticmethod
    def totals(vec: MaxVector) -> tuple[int, int]:
        """One origin's ``(P, N)``: one read of its packed pairs in C, no numpy."""
        p, n = vec.values_of(_BOTH_SLOTS)
        return p, n

    def get(self, slices: Slices) -> int:
        """GET: ``sum(P) - sum(N)`` over every origin (exact; see the module notes)."""
        return self._value_and_own(slices, "")[0]  # (no origin is named "")

    @staticmethod
    def _value_and_own(slices: Slices, origin: str) -> tuple[int, int, int]:
        """:meth:`get` and ``origin``'s own :meth:`totals` in one pass over the slices (an
        INCR reads both)."""
        value = own_p = own_n = 0
        for name, vec in slices.items():
            p, n = vec.values_of(_BOTH_SLOTS)
            value += p - n
            if name == origin:
                own_p, own_n = p, n
        return value, own_p, own_n

    def is_empty(self, slices: Slices) -> bool:
        return all(vec.is_empty() for vec in slices.values())

    # -- writing ------------------------------------------------------------------------------

    def incrby(self, slices: Slices, origin: str, amount: int) -> tuple[FewPairs, int]:
        """INCRBY by ``origin``: the pairs for its own slice, and the new value.

        A zero amount returns no pairs (the value is unchanged). Raises BoundsError when the
        result leaves int64 or the origin's running total would pass ``2**63 - 1``.
        """
        if isinstance(amount, bool) or not isinstance(amount, int | np.integer):
            raise SketchParameterError(f"increment must be an integer, got {amount!r}")
        delta = int(amount)
        if not INT64_MIN <= delta <= INT64_MAX:
            raise BoundsError("value is not an integer or out of range")
        current, p, n = self._value_and_own(slices, origin)
        result = current + delta
        if not INT64_MIN <= result <= INT64_MAX:
            raise BoundsError("increment or decrement would overflow")
        if delta == 0:
            return ([], []), result
        slot, total = (SLOT_INCREMENTS, p + delta) if delta > 0 else (SLOT_DECREMENTS, n - delta)
        if total > VALUE_MAX:
            which = "increments" if delta > 0 else "decrements"
            raise BoundsError(
                f"counter slice of origin {origin!r} exhausted: its {which} would total "
                f"{total}, above 2**63-1; write through another node or DEL the key"
            )
        return ([slot], [total]), result

    def incrby_run(
        self, slices: Slices, origin: str, amounts: Sequence[int]
    ) -> tuple[FewPairs, list[int]]:
        """:meth:`incrby` of each of ``amounts`` in turn by ``origin``, as one write.

        Returns the pairs of the whole run and the value after each call, for the calls before
        the first that :meth:`incrby` would refuse: that call and those after it are not
        counted, so the caller runs them one by one for their replies. The pairs are exactly
        the state the calls one after another would leave (each slot only grows).
        """
        value, p_before, n_before = self._value_and_own(slices, origin)
        p, n = p_before, n_before
        values: list[int] = []
        for amount in amounts:  # bounded by the run's length
            result = value + amount
            if not (INT64_MIN <= amount <= INT64_MAX and INT64_MIN <= result <= INT64_MAX):
                break
            if amount > 0:
                if p + amount > VALUE_MAX:
                    break
                p += amount
            elif amount < 0:
                if n - amount > VALUE_MAX:
                    break
                n -= amount
            value = result
            values.append(value)
        indices: list[int] = []
        totals: list[int] = []
        if p != p_before:
            indices.append(SLOT_INCREMENTS)
            totals.append(p)
        if n != n_before:
            indices.append(SLOT_DECREMENTS)
            totals.append(n)
        return (indices, totals), values

    def decrby(self, slices: Slices, origin: str, amount: int) -> tuple[FewPairs, int]:
        """DECRBY: INCRBY of ``-amount``; ``-2**63`` is refused as Redis refuses it."""
        if isinstance(amount, bool) or not isinstance(amount, int | np.integer):
            raise SketchParameterError(f"decrement must be an integer, got {amount!r}")
        if int(amount) == INT64_MIN:
            raise BoundsError("decrement would overflow")
        return self.incrby(slices, origin, -int(amount))

    def incr(self, slices: Slices, origin: str) -> tuple[FewPairs, int]:
        """INCR."""
        return self.incrby(slices, origin, 1)

    def decr(self, slices: Slices, origin: str) -> tuple[FewPairs, int]:
        """DECR."""
        return self.incrby(slices, origin, -1)

    def merge(self, target: dict[str, MaxVector], source: Slices) -> dict[str, MaxVector]:
        """The lattice merge of two replicas' states (per origin max); returns the delta."""
        return merge_slices(target, source)
