"""The count-min sketch view: RedisBloom's CMS.* over per-origin max-vectors.

A sketch of ``depth`` rows of ``width`` counters is the slots ``row * width + column``. Max
over one shared vector would lose concurrent increments (rmbd's flaw), so the schema is
*additive*: each node keeps its own slice, holding its **running totals** per cell, and only
ever raises its own slice. A read sums the slices cell by cell, then takes the minimum over
the rows. Two nodes incrementing the same item concurrently are both counted; a delta
delivered twice changes nothing (max of a total with itself).

**Sizing** is RedisBloom's: ``CMS.INITBYDIM width depth``, or ``CMS.INITBYPROB error
probability`` with ``width = ceil(2 / error)`` (in doubles) and
``depth = ceil(log10f(probability) / log10f(0.5))`` (RedisBloom computes the depth in single
precision; :func:`dims_from_prob` does the same). The guarantee that goes with it: every
estimate is at least the true count, and exceeds it by more than ``error * N`` (``N`` the
total of all increments) with probability at most ``probability`` (Markov's inequality per
row, rows independent: ``(1/2) ** depth``).

**Hashing** is hearsay's own (RedisBloom's cells are never exchanged): one xxh3-64 of the item,
then row ``r`` uses output ``r + 1`` of the splitmix64 stream seeded with it, modulo width.

**Bounds**: like RedisBloom, increments are non-negative and the total count stays at most
``2**63 - 1`` (an increment past it is refused with BoundsError, nothing written), so every cell
sum fits int64.

**CMS.MERGE** in RedisBloom *overwrites* the destination with the weighted sum of the sources.
A lattice cannot lower a cell, so here the destination is *raised* to that sum: the writing
node increments its own slice, cell by cell, by ``max(0, target - current)``. When the
destination is empty, or is itself one of the sources with weight >= 1 (``MERGE a 2 a b``),
and all weights are non-negative, the result is exactly RedisBloom's; otherwise cells already
above the target keep their value (documented divergence). A merge is a write like any
other: two nodes running the same MERGE concurrently both raise their own slices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import VALUE_MAX, MaxVector
from hearsay.sketch import _splitmix
from hearsay.sketch.hashing import member_hash, member_hashes, mix64
from hearsay.sketch.schemas import CMS_DEPTH_MAX, KIND_CMS, expect_schema
from hearsay.sketch.schemas import cms as cms_schema
from hearsay.sketch.slots import (
    FewPairs,
    Pairs,
    Slices,
    merge_slices,
    summed_and_own_at,
    summed_at,
    values_at,
)

__all__ = ["CmsInfo", "CountMinSketch", "dims_from_prob"]

INCRBY_FEW_MAX: Final = 64
"""Items a CMS.INCRBY (or a pipelined run of them to one key) counts in Python ints: its
array path's dozen ufunc calls cost ~100 us whatever the size, a run of 16 items 13 us an
item on a lone node at -P 16."""

INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1
_MERGE_CHUNK_CELLS: Final = 1 << 20


def dims_from_prob(error: float, probability: float) -> tuple[int, int]:
    """RedisBloom's ``CMS_DimFromProb``: ``(width, depth)`` for CMS.INITBYPROB.

    Raises SketchParameterError unless both arguments are in (0, 1), as RedisBloom does
    ("invalid overestimation value" / "invalid prob value").
    """
    err = _unit_interval(error, "CMS overestimation value")
    prob = _unit_interval(probability, "CMS probability")
    width = math.ceil(2.0 / err)
    # log10f on float arguments, float division: emulate single precision step by step.
    prob32 = float(np.float32(prob))
    if prob32 < 2.0**-CMS_DEPTH_MAX:  # (also a probability that is 0 in single precision)
        raise SketchParameterError(
            f"CMS probability {prob} needs more than {CMS_DEPTH_MAX} rows (at least 2**-64)"
        )
    num = np.float32(math.log10(prob32))
    den = np.float32(math.log10(float(np.float32(0.5))))
    depth = math.ceil(float(num / den))
    return width, max(depth, 1)


def _unit_interval(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise SketchParameterError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not 0.0 < number < 1.0:
        raise SketchParameterError(f"{what} must be in (0, 1), got {number}")
    return number


def _row_total(vec: MaxVector, width: int) -> int:
    """Exact sum of the first row of one slice (a slice's row sums are its total count).

    Reads only row 0 (a dense slice's other ``depth - 1`` rows are never scanned)."""
    _, row = vec.window(0, width).pairs()
    if row.size == 0:
        return 0
    if float(row.sum(dtype=np.float64)) < 2.0**62:
        return int(row.sum(dtype=np.uint64))
    return sum(int(v) for v in row.tolist())


@dataclass(frozen=True, slots=True)
class CmsInfo:
    """CMS.INFO's fields."""

    width: int
    depth: int
    count: int


class CountMinSketch:
    """A stateless count-min view of ``depth`` rows of ``width`` counters."""

    __slots__ = ("_depth", "_schema", "_width")

    def __init__(self, width: int, depth: int) -> None:
        self._schema = cms_schema(width, depth)
        self._width = int(width)
        self._depth = int(depth)

    # -- construction and sizing --------------------------------------------------------------

    @classmethod
    def by_dim(cls, width: int, depth: int) -> CountMinSketch:
        """CMS.INITBYDIM."""
        return cls(width, depth)

    @classmethod
    def by_prob(cls, error: float, probability: float) -> CountMinSketch:
        """CMS.INITBYPROB: overestimate at most ``error * N`` except with ``probability``."""
        return cls(*dims_from_prob(error, probability))

    @classmethod
    def from_schema(cls, schema: Schema) -> CountMinSketch:
        if schema.kind != KIND_CMS or len(schema.params) != 2:
            raise SketchParameterError(f"not a count-min schema: {schema}")
        view = cls(schema.params[0], schema.params[1])
        expect_schema(schema, view.schema)
        return view

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return self._depth

    def error_bound(self) -> tuple[float, float]:
        """``(eps, delta)``: an estimate exceeds the truth by more than ``eps * N`` with
        probability at most ``delta``; ``eps = 2 / width``, ``delta = 0.5 ** depth``."""
        return 2.0 / self._width, 0.5**self._depth

    def size_bytes(self) -> int:
        """Bytes of one origin's full slice at 8 bytes a counter."""
        return 8 * self._width * self._depth

    # -- hashing ------------------------------------------------------------------------------

    def cells(self, items: Sequence[bytes]) -> npt.NDArray[np.int64]:
        """The ``(len(items), depth)`` slots each item counts in (row ``r`` in column ``r``)."""
        if len(items) == 1:  # one item (CMS.INCRBY k item n): its few words in Python ints
            return np.array([self.item_cells(items[0])], dtype=np.int64)
        h = member_hashes(items)
        rows = np.arange(self._depth, dtype=np.uint64)
        # Row r's column is output r + 1 of each item's stream: every row in one array pass.
        columns = mix64(h[:, None], rows[None, :] + np.uint64(1)) % np.uint64(self._width)
        return columns.astype(np.int64) + (rows * np.uint64(self._width)).astype(np.int64)

    def item_cells(self, item: bytes) -> list[int]:
        """The ``depth`` slots one item counts in, as Python ints (row ``r``'s is ``r``-th):
        ``mix64_int(h, r + 1) % width + r * width``, in C."""
        return _splitmix.cells(member_hash(item), self._width, self._depth)

    # -- writing ------------------------------------------------------------------------------

    def incrby(
        self,
        slices: Slices,
        origin: str,
        items: Sequence[bytes],
        increments: Sequence[int],
        *,
        few_max: int = INCRBY_FEW_MAX,
    ) -> tuple[Pairs | FewPairs, list[int]]:
        """CMS.INCRBY by ``origin``: the pairs for its own slice, and each item's new estimate.

        Pairs are applied in order, as RedisBloom does: an item named twice reports its count
        after each increment. Raises BoundsError for a negative increment or when the total
        count would pass ``2**63 - 1`` (nothing is written then). Up to ``few_max`` items are
        counted in Python ints (pairs as lists), more with arrays (tests compare the two).
        """
        n = len(items)
        if len(increments) != n:
            raise SketchParameterError("CMS.INCRBY needs one increment per item")
        amounts = [int(v) for v in increments]
        if any(v < 0 for v in amounts):
            raise BoundsError("CMS: Number cannot be negative")
        added = sum(amounts)
        if any(v > INT64_MAX for v in amounts) or (
            self._count_bound(slices) + added > INT64_MAX and self.count(slices) + added > INT64_MAX
        ):
            raise BoundsError("CMS: INCRBY overflow")
        if n == 0:
            return (np.zeros(0, np.uint32), np.zeros(0, np.uint64)), []
        if n <= few_max:
            return self._incrby_few(slices, origin, items, amounts)
        cells = self.cells(items)
        flat = cells.reshape(-1)
        inc = np.repeat(np.array(amounts, dtype=np.uint64), self._depth)
        # Running increments per cell, in batch order (a stable sort keeps the order).
        order = np.argsort(flat, kind="stable")
        sorted_cells = flat[order]
        sorted_inc = inc[order]
        csum = np.cumsum(sorted_inc, dtype=np.uint64)
        # (np.r_ costs microseconds a call in index tricks: plain ufuncs and concatenations)
        first = np.empty(sorted_cells.size, dtype=bool)
        first[0] = True
        np.not_equal(sorted_cells[1:], sorted_cells[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        bounds = np.append(starts, sorted_cells.size)
        group = np.repeat(np.arange(starts.size), np.diff(bounds))
        before_group = csum[starts] - sorted_inc[starts]
        running = np.empty_like(inc)
        running[order] = csum - before_group[group]
        # New estimates: the summed totals plus this batch so far, min over rows.
        totals, own_at = summed_and_own_at(slices, flat, origin)
        with np.errstate(over="ignore"):  # only a misbehaving peer's saturated sums can wrap
            estimates = (totals + running).reshape(n, self._depth).min(axis=1)
        # New own totals per distinct cell: what it held plus everything this batch adds.
        ends = bounds[1:] - 1
        unique_cells = sorted_cells[starts]
        new_own = own_at[order][starts] + (csum[ends] - before_group)
        if new_own.size and int(new_own.max()) > VALUE_MAX:
            raise BoundsError("CMS: INCRBY overflow")
        keep = new_own != 0
        pairs: Pairs = (unique_cells[keep].astype(np.uint32), new_own[keep])
        return pairs, [min(int(e), INT64_MAX) for e in estimates.tolist()]

    def incrby_item(
        self, slices: Slices, origin: str, item: bytes, amount: int
    ) -> tuple[tuple[list[int], list[int]], int]:
        """:meth:`incrby` of one item in Python ints (one CMS.INCRBY of one item, the common
        call): the same pairs as lists, which the lattice merges without numpy, and the
        estimate. A handful of cells cost less as ints than as the arrays' ufunc calls."""
        amount = int(amount)
        if amount < 0:
            raise BoundsError("CMS: Number cannot be negative")
        if amount > INT64_MAX or (
            self._count_bound(slices) + amount > INT64_MAX
            and self.count(slices) + amount > INT64_MAX
        ):
            raise BoundsError("CMS: INCRBY overflow")
        cells = self.item_cells(item)
        # uint64 arithmetic as the array path: saturated sums, then the increment wraps.
        totals, held = _summed_cells(slices, cells, origin)
        if max(totals) + amount <= _UINT64_MAX:  # (nothing wraps: the common case)
            estimate = min(totals) + amount
        else:
            estimate = min((total + amount) & _UINT64_MAX for total in totals)
        if max(held) + amount > VALUE_MAX:
            raise BoundsError("CMS: INCRBY overflow")
        new_own = [value + amount for value in held]
        if not amount and not all(new_own):  # (an increment of 0 to cells never counted)
            kept = [(cell, value) for cell, value in zip(cells, new_own, strict=True) if value]
            cells, new_own = [cell for cell, _ in kept], [value for _, value in kept]
        return (cells, new_own), min(estimate, INT64_MAX)

    def _incrby_few(
        self, slices: Slices, origin: str, items: Sequence[bytes], amounts: list[int]
    ) -> tuple[FewPairs, list[int]]:
        """:meth:`incrby` of a few items (checked already) in Python ints: each item's cells,
        one read of every distinct cell, then the running increments per cell in batch order
        (the array path's stable sort and cumulative sums, as a dict)."""
        item_cells = [self.item_cells(item) for item in items]
        distinct = sorted({cell for cells in item_cells for cell in cells})
        totals, held = _summed_cells(slices, distinct, origin)
        total_at = dict(zip(distinct, totals, strict=True))
        running: dict[int, int] = {}
        estimates: list[int] = []
        for cells, amount in zip(item_cells, amounts, strict=True):
            estimate = _UINT64_MAX
            for cell in cells:
                ran = running[cell] = running.get(cell, 0) + amount
                value = (total_at[cell] + ran) & _UINT64_MAX  # (wraps as the arrays do)
                estimate = min(estimate, value)
            estimates.append(min(estimate, INT64_MAX))
        new_own = [own + running[cell] for cell, own in zip(distinct, held, strict=True)]
        if max(new_own) > VALUE_MAX:
            raise BoundsError("CMS: INCRBY overflow")
        kept = [(cell, value) for cell, value in zip(distinct, new_own, strict=True) if value]
        return ([cell for cell, _ in kept], [value for _, value in kept]), estimates

    def merge_weighted(
        self,
        dest: Slices,
        origin: str,
        sources: Sequence[tuple[Schema, Slices]],
        weights: Sequence[int] | None = None,
    ) -> Pairs:
        """CMS.MERGE into ``dest`` by ``origin``: pairs raising its slice to the weighted sum.

        See the module notes for how this differs from RedisBloom's overwrite. Raises
        SketchParameterError when a source has another width/depth or the weights do not
        match the sources, BoundsError ("CMS: MERGE overflow") when a weighted cell or the
        weighted total count is negative or above ``2**63 - 1``.
        """
        if not sources:
            raise SketchParameterError("CMS: Number of keys must be positive")
        ws = [1] * len(sources) if weights is None else [int(w) for w in weights]
        if len(ws) != len(sources):
            raise SketchParameterError("CMS: wrong number of keys/weights")
        weighted_count = 0
        for (schema, slices), weight in zip(sources, ws, strict=True):
            if schema != self._schema:
                raise SketchParameterError("CMS: width/depth is not equal")
            weighted_count += self.count(slices) * weight
        if not 0 <= weighted_count <= INT64_MAX:
            raise BoundsError("CMS: MERGE overflow")
        own = dest.get(origin) or MaxVector()
        candidates = _nonzero_cells(slices for (_, slices), w in zip(sources, ws, strict=True) if w)
        cells_out: list[npt.NDArray[np.int64]] = []
        values_out: list[npt.NDArray[np.uint64]] = []
        # Only cells some source holds can have a non-zero weighted sum: the work is the
        # sources' pairs (bounded by --max-key-bytes per key), not width * depth cells. In
        # chunks, so that the temporaries stay bounded.
        for start in range(0, candidates.size, _MERGE_CHUNK_CELLS):
            slots = candidates[start : start + _MERGE_CHUNK_CELLS]
            parts = [summed_at(slices, slots) for _, slices in sources]
            target = _weighted_sum(parts, ws).astype(np.uint64)
            current = summed_at(dest, slots)
            grow = target > current
            cells = slots[grow]
            new_own = values_at(own, cells) + (target[grow] - current[grow])
            if new_own.size and int(new_own.max()) > VALUE_MAX:
                raise BoundsError("CMS: MERGE overflow")
            cells_out.append(cells)
            values_out.append(new_own)
        if not cells_out:
            return np.empty(0, np.uint32), np.empty(0, np.uint64)
        return np.concatenate(cells_out).astype(np.uint32), np.concatenate(values_out)

    def merge(self, target: dict[str, MaxVector], source: Slices) -> dict[str, MaxVector]:
        """The lattice merge of two replicas' states (per origin max); returns the delta."""
        return merge_slices(target, source)

    # -- reading ------------------------------------------------------------------------------

    def query(self, slices: Slices, items: Sequence[bytes]) -> list[int]:
        """CMS.QUERY: each item's estimate (never below its true count)."""
        if not items:
            return []
        if len(items) == 1:  # one item: a few look-ups in Python ints, no arrays
            return [min(*_summed_cells(slices, self.item_cells(items[0]))[0], INT64_MAX)]
        cells = self.cells(items)
        estimates = summed_at(slices, cells).min(axis=1)
        return [min(int(e), INT64_MAX) for e in estimates.tolist()]

    def _count_bound(self, slices: Slices) -> int:
        """An upper bound of :meth:`count` from the slices' value widths alone: a row holds
        ``width`` cells below ``2**(8 * bytes)``. While it leaves room, the exact count (a
        scan of row 0 of every slice) is never needed to refuse an overflow. Taken at the widest
        slice's width for every slice: a bound still, without a generator at every write."""
        widest = 0
        for vec in slices.values():
            widest = max(widest, vec.width)
        return len(slices) * self._width * ((1 << (8 * widest)) - 1)

    def count(self, slices: Slices) -> int:
        """The total of all increments (CMS.INFO's count): the sum of row 0 over origins."""
        return sum(_row_total(vec, self._width) for _, vec in sorted(slices.items()))

    def info(self, slices: Slices) -> CmsInfo:
        """CMS.INFO: width, depth and total count."""
        return CmsInfo(self._width, self._depth, self.count(slices))

    def is_empty(self, slices: Slices) -> bool:
        return all(vec.is_empty() for vec in slices.values())


def _summed_cells(
    slices: Slices, cells: list[int], origin: str = ""
) -> tuple[list[int], list[int]]:
    """:func:`summed_at` of a few ``cells`` in Python ints: per cell, the sum over every
    origin's slice, saturating at ``2**64 - 1`` (reads the slices in place, no copies); and
    what ``origin``'s own slice holds there (zeros when it has none), read in the same pass."""
    if len(slices) == 1:  # (a lone node's key, or one written on one node only)
        ((name, vec),) = slices.items()
        held = vec.values_of(cells)  # (a slice's value is at most 2**64 - 1: no saturation)
        return held, held if name == origin else [0] * len(cells)
    if not slices:  # (a key no origin wrote yet)
        zeros = [0] * len(cells)
        return zeros, zeros
    own = None
    rows = []
    for name, vec in slices.items():
        held = vec.values_of(cells)
        rows.append(held)
        if name == origin:
            own = held
    # (sums in any order, column by column in C: a list per slice cost ~1.5 us a slice, a
    # windowed key's ten live slices most of its CMS.INCRBY; saturated once, at the end)
    totals = list(map(sum, zip(*rows, strict=True)))
    if own is None:
        own = [0] * len(cells)
    if max(totals) > _UINT64_MAX:
        totals = [min(total, _UINT64_MAX) for total in totals]
    return totals, own


def _nonzero_cells(sources: Iterable[Slices]) -> npt.NDArray[np.int64]:
    """The sorted cells where any slice of any of ``sources`` is non-zero."""
    found = [vec.pairs()[0] for slices in sources for _, vec in sorted(slices.items())]
    if not found:
        return np.empty(0, np.int64)
    return np.unique(np.concatenate(found)).astype(np.int64)


def _weighted_sum(
    parts: Sequence[npt.NDArray[np.uint64]], weights: Sequence[int]
) -> npt.NDArray[np.int64]:
    """``sum(part * weight)`` per cell, exactly; BoundsError unless every cell is in
    ``0..2**63-1``. int64 arithmetic with overflow detection; on an overflow along the way
    (huge weights, or sums that go out of range and come back) the exact Python-int path."""
    total = np.zeros(parts[0].shape if parts else 0, dtype=np.int64)
    for part, weight in zip(parts, weights, strict=True):
        if weight == 0 or not part.size:
            continue
        if int(part.max()) > INT64_MAX // abs(weight):
            return _weighted_sum_exact(parts, weights)
        product = part.astype(np.int64) * np.int64(weight)
        with np.errstate(over="ignore"):
            grown = total + product
        if bool((((total ^ grown) & (product ^ grown)) < 0).any()):
            return _weighted_sum_exact(parts, weights)
        total = grown
    if total.size and int(total.min()) < 0:
        raise BoundsError("CMS: MERGE overflow")
    return total


def _weighted_sum_exact(
    parts: Sequence[npt.NDArray[np.uint64]], weights: Sequence[int]
) -> npt.NDArray[np.int64]:
    total = np.zeros(parts[0].shape, dtype=object)
    for part, weight in zip(parts, weights, strict=True):
        total = total + part.astype(object) * weight
    if any(not 0 <= int(v) <= INT64_MAX for v in total.tolist()):
        raise BoundsError("CMS: MERGE overflow")
    return total.astype(np.int64)
