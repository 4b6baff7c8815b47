"""HyperLogLog on the database: PFADD (and pipelined runs of it), PFCOUNT, PFMERGE,
HEARSAY.PFRESERVE and SET of Redis's HLL bytes.

Departure from Redis that the lattice forces: ``SET key <HYLL bytes>`` on an existing
HyperLogLog *merges* (register-wise max) instead of replacing: a replica cannot lower a
register, so a replace would not converge. DEL then SET gives Redis's replace (the DEL starts
a new epoch).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import SketchParameterError, WrongTypeError
from hearsay.engine.families.common import FewPairs, schema_of, write_pairs
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sketch import hll_math, schemas
from hearsay.sketch.hll_math import REDIS_PRECISION
from hearsay.sketch.hll_view import HyperLogLog
from hearsay.sketch.murmur import REDIS_HLL_SEED, hash64a
from hearsay.sketch.schemas import KIND_COUNTER, KIND_HLL
from hearsay.sketch.slots import Pairs
from hearsay.sketch.views import view_as

__all__ = [
    "NotAnHllError",
    "PrecisionMismatchError",
    "hll_of",
    "pfadd",
    "pfadd_run",
    "pfcount",
    "pfmerge",
    "pfreserve",
    "set_hll_bytes",
]


class NotAnHllError(WrongTypeError):
    """An HLL command on a counter: Redis says "Key is not a valid HyperLogLog string value"."""


class PrecisionMismatchError(SketchParameterError):
    """A key holds an HLL of another precision, or PFMERGE would have to raise precision."""

    def __init__(self, have: int, want: int) -> None:
        super().__init__(f"HyperLogLog precisions differ: {have} and {want}")
        self.have = have
        self.want = want


_REDIS_HLL: Final = HyperLogLog(REDIS_PRECISION)
_REDIS_SCHEMA: Final = _REDIS_HLL.schema
_SCALAR_HASH_MAX: Final = 4
"""Up to this many PFADD members become pairs of Python ints (one C hash each), which the
lattice merges without numpy, rather than arrays from one batch."""
_ONE: Final = frozenset({1})


def hll_of(schema: Schema) -> HyperLogLog:
    """The view of an HLL schema (Redis's precision without a registry look-up)."""
    return _REDIS_HLL if schema is _REDIS_SCHEMA else view_as(schema, HyperLogLog)


def _hll_pairs(view: HyperLogLog, members: Sequence[bytes]) -> Pairs | FewPairs:
    """PFADD's pairs; a few members are hashed one by one (arrays cost the lattice more)."""
    if len(members) > _SCALAR_HASH_MAX:
        return view.add(members)
    p = view.precision
    mask = (1 << p) - 1
    stop = 1 << (64 - p)
    indices: list[int] = []
    ranks: list[int] = []
    for member in members:
        h = hash64a(member, REDIS_HLL_SEED)
        w = (h >> p) | stop
        indices.append(h & mask)
        ranks.append((w & -w).bit_length())  # Redis's hllPatLen: trailing zeros + 1
    return indices, ranks


def _hll_entry(db: Replica, key: bytes, now_ms: int) -> Entry | None:
    """The live HLL entry of ``key`` (None when absent); NotAnHllError on a counter."""
    try:
        return db.get_typed(key, KIND_HLL, now_ms)
    except WrongTypeError:
        entry = db.get(key, now_ms)
        if entry is not None and entry.schema is not None and entry.schema.kind == KIND_COUNTER:
            raise NotAnHllError("key holds a counter, not a HyperLogLog") from None
        raise


def pfadd(db: Replica, key: bytes, members: Sequence[bytes], now_ms: int) -> int:
    """PFADD: 1 when a register changed or the key was created, else 0.

    The common case (a missing key or one of Redis's precision) is one hash batch and one
    write: the write itself refuses another schema, and only then is the key read. Before
    that, a few members whose registers are already as high (most PFADDs to a big HLL) are
    answered from a read, without building an empty delta.
    """
    pairs = _hll_pairs(_REDIS_HLL, members)
    indices, ranks = pairs
    if (
        isinstance(indices, list)
        and isinstance(ranks, list)
        and db.holds_pairs_own(key, _REDIS_SCHEMA, indices, ranks, now_ms)
    ):
        return 0
    try:
        result = write_pairs(db, key, _REDIS_SCHEMA, pairs, now_ms)
    except WrongTypeError:
        entry = _hll_entry(db, key, now_ms)
        if entry is None:  # pragma: no cover - the write refused a key that is not there
            raise
        view = hll_of(schema_of(entry))
        result = write_pairs(db, key, view.schema, _hll_pairs(view, members), now_ms)
    return 0 if result.delta is None else 1


def pfadd_run(db: Replica, key: bytes, calls: Sequence[Sequence[bytes]], now_ms: int) -> list[int]:
    """PFADD ``key`` once per member list in ``calls``: the replies, one write in all.

    A pipeline of PFADDs to one key costs one hash batch, one read of the registers they touch
    and one write (one delta for gossip) instead of one of each per call. Each reply is what
    the call would get in turn: 1 exactly when one of its members raises a register above what
    the key held after the calls before it (or when the call creates the key).
    """
    entry = db.get(key, now_ms)
    if entry is None or (entry.schema is not _REDIS_SCHEMA and entry.schema != _REDIS_SCHEMA):
        # A new key, another type or another precision: the first call decides, in turn.
        replies = [pfadd(db, key, calls[0], now_ms)]
        entry = db.get(key, now_ms)
        if entry is None or entry.schema != _REDIS_SCHEMA:
            return replies + [pfadd(db, key, members, now_ms) for members in calls[1:]]
        calls = calls[1:]
    else:
        replies = []
    members = [member for call in calls for member in call]
    indices, ranks = _REDIS_HLL.add(members)
    # Read before anything is written: one take from a dense vector, no call per register.
    held = entry.vector.values_at(indices)
    index_list = indices.tolist()
    if not _ONE.issuperset(map(len, calls)) or len(set(index_list)) != len(index_list):
        lengths = np.fromiter(map(len, calls), dtype=np.int64, count=len(calls))
        return replies + _run_in_arrays(
            db, key, lengths=lengths, indices=indices, ranks=ranks, held=held, now_ms=now_ms
        )
    # One member per call, no register twice (the common pipeline): each call raises its
    # register exactly when its rank beats what the key held before the run.
    rank_list = ranks.tolist()
    raised = list(map(operator.gt, rank_list, held.tolist()))
    replies += map(int, raised)
    grown = {
        index: rank for index, rank, up in zip(index_list, rank_list, raised, strict=True) if up
    }
    if len(grown) > _SCALAR_HASH_MAX:  # the lattice's bulk path takes unsigned arrays
        index_array = np.fromiter(grown, np.uint32, len(grown))
        rank_array = np.fromiter(grown.values(), np.uint8, len(grown))
        db.write_pairs_own(key, _REDIS_SCHEMA, index_array, rank_array, now_ms)
    elif grown:
        db.write_pairs_own(key, _REDIS_SCHEMA, list(grown), list(grown.values()), now_ms)
    return replies


_RANK_SPAN: Final = 128
"""Above every rank (at most 64 - 4 + 1): ``index * _RANK_SPAN + rank`` orders by register,
then by rank, so one running maximum over those keys never mixes two registers."""


def _run_in_arrays(
    db: Replica,
    key: bytes,
    *,
    lengths: npt.NDArray[np.int64],
    indices: npt.NDArray[np.uint32],
    ranks: npt.NDArray[np.uint8],
    held: npt.NDArray[np.uint64],
    now_ms: int,
) -> list[int]:
    """:func:`pfadd_run`'s replies and write for any run but one member per register.

    A call replies 1 when one of its members beats both what its register held before the
    run and every earlier member of the run that hashed to the same register (comparing
    with the state after the calls before it instead comes to the same: a call with any
    member above that state replies 1 either way). Grouping the members by register
    (stable, so run order holds within a register), a running maximum gives every member
    what came before it: no Python object per member, however large the run
    (a bulk load pipelines many large PFADDs to one key).
    """
    if not indices.size:
        return [0] * lengths.size  # PFADDs without members to a key that exists
    order = np.argsort(indices, kind="stable")
    by_register = indices[order].astype(np.int64)
    rank_sorted = ranks[order].astype(np.int64)
    running = np.maximum.accumulate(by_register * _RANK_SPAN + rank_sorted)
    # The best rank before each member in its register; for a register's first member this
    # is negative (the running key still belongs to a lower register), so what it held wins.
    earlier = np.empty_like(running)
    earlier[0] = 0
    earlier[1:] = running[:-1] - by_register[1:] * _RANK_SPAN
    held_sorted = held[order].astype(np.int64)
    raised = np.empty(by_register.size, dtype=np.int64)
    raised[order] = rank_sorted > np.maximum(earlier, held_sorted)
    raised_before = np.zeros(by_register.size + 1, dtype=np.int64)
    np.cumsum(raised, out=raised_before[1:])
    ends = np.cumsum(lengths)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1]
    replies: list[int] = (raised_before[ends] > raised_before[starts]).astype(np.int64).tolist()
    last_of_register = np.empty(by_register.size, dtype=bool)
    last_of_register[-1] = True
    np.not_equal(by_register[1:], by_register[:-1], out=last_of_register[:-1])
    final_rank = running[last_of_register] - by_register[last_of_register] * _RANK_SPAN
    up = final_rank > held_sorted[last_of_register]
    if up.any():
        db.write_pairs_own(
            key,
            _REDIS_SCHEMA,
            by_register[last_of_register][up].astype(np.uint32),
            final_rank[up].astype(np.uint8),
            now_ms,
        )
    return replies


def pfreserve(db: Replica, key: bytes, precision: int, now_ms: int) -> bool:
    """HEARSAY.PFRESERVE: create an empty HLL of ``precision``; False when it already exists.

    PrecisionMismatchError when the key holds an HLL of another precision.
    """
    view = view_as(schemas.hll(precision), HyperLogLog)  # SketchParameterError outside 4..18
    entry = _hll_entry(db, key, now_ms)
    if entry is not None:
        have = hll_of(schema_of(entry)).precision
        if have != precision:
            raise PrecisionMismatchError(have, precision)
        return False
    db.write_own(key, view.schema, MaxVector(), now_ms)
    return True


def _hll_entries(
    db: Replica, keys: Sequence[bytes], now_ms: int
) -> list[tuple[HyperLogLog, MaxVector]]:
    """The view and vector of each existing key among ``keys``."""
    found: list[tuple[HyperLogLog, MaxVector]] = []
    for key in keys:
        entry = _hll_entry(db, key, now_ms)
        if entry is not None:
            found.append((hll_of(schema_of(entry)), entry.vector))
    return found


def _union_registers(hlls: list[tuple[HyperLogLog, MaxVector]], p: int) -> npt.NDArray[np.uint8]:
    """The union of ``hlls`` as dense registers of precision ``p`` (higher ones folded down)."""
    union = np.zeros(1 << p, dtype=np.uint8)
    for view, vector in hlls:
        np.maximum(union, hll_math.fold(view.registers(vector), p), out=union)
    return union


def pfcount(db: Replica, keys: Sequence[bytes], now_ms: int) -> int:
    """PFCOUNT: one key's estimate, or the estimate of the union of several (none changed).

    Keys of different precisions are counted at the lowest one (folding is exact: the same
    registers as if every key had been built at that precision).
    """
    hlls = _hll_entries(db, keys, now_ms)
    if not hlls:
        return 0
    if len(hlls) == 1:
        view, vector = hlls[0]
        return view.count(vector)
    return hll_math.count(_union_registers(hlls, min(view.precision for view, _ in hlls)))


def pfmerge(db: Replica, dest: bytes, sources: Sequence[bytes], now_ms: int) -> None:
    """PFMERGE: raise ``dest``'s registers to the union of itself and ``sources``.

    ``dest`` is created when absent, at the sources' lowest precision (14 when none exists).
    Sources of a higher precision than ``dest`` are folded down to it; a lower one is a
    PrecisionMismatchError (registers cannot be unfolded).
    """
    target = _hll_entries(db, [dest], now_ms)
    hlls = _hll_entries(db, sources, now_ms)
    if target:
        view = target[0][0]
    elif hlls:
        view = min((view for view, _ in hlls), key=lambda v: v.precision)
    else:
        view = _REDIS_HLL
    for other, _ in hlls:
        if other.precision < view.precision:
            raise PrecisionMismatchError(view.precision, other.precision)
    if all(other.precision == view.precision for other, _ in hlls):
        if target:  # each source straight into dest's registers: no union built and copied
            for _, vector in hlls:
                db.write_own(dest, view.schema, vector, now_ms)
            return
        union = MaxVector()
        for _, vector in [*target, *hlls]:
            union.merge(vector)
    else:
        union = MaxVector.from_dense(_union_registers([*target, *hlls], view.precision))
    db.write_own(dest, view.schema, union, now_ms)


def set_hll_bytes(db: Replica, key: bytes, data: bytes, now_ms: int) -> None:
    """SET key <HYLL bytes>: create the HLL, or merge the registers into an existing one.

    DecodeError when ``data`` is not a valid Redis HLL; PrecisionMismatchError when the key
    holds an HLL of a precision other than 14. See the module notes for why SET merges.
    """
    entry = _hll_entry(db, key, now_ms)
    if entry is not None:
        have = hll_of(schema_of(entry)).precision
        if have != REDIS_PRECISION:
            raise PrecisionMismatchError(have, REDIS_PRECISION)
    pairs = _REDIS_HLL.from_redis(data)
    write_pairs(db, key, _REDIS_SCHEMA, pairs, now_ms)
