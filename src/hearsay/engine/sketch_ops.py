"""The data operations of sketches on one node's database: PF*, BF.*, CMS.*, counters, vectors.

Why this module: the RESP layer parses arguments and shapes replies; this is where a command's
*meaning* meets the keyspace. Every operation reads with :meth:`Database.get_typed` and writes
with :meth:`Database.write_pairs_own` (pairs) or :meth:`Database.write_own` (whole vectors,
e.g. a union, or an empty one that creates a key), so every change is persisted and
pushed to gossip through the database's one write funnel, and the lattice rule holds: a write
only ever raises values, so replicas converge whatever the order of delivery.

Each function takes the database, the keys, already parsed arguments and ``now_ms``, and raises
typed errors the RESP layer turns into Redis's (or RedisBloom's) texts:

- :class:`~hearsay.base.errors.WrongTypeError` (and the two finer subclasses below, for the
  cases where Redis words WRONGTYPE differently because an HLL and a counter are both Redis
  strings);
- :class:`KeyMissingError` / :class:`KeyExistsError` for commands that need the key absent or
  present (BF.RESERVE, CMS.*);
- :class:`PrecisionMismatchError` when HyperLogLogs of different precisions meet;
- :class:`ShapeMismatchError` when Bloom filters or count-min sketches of different shapes meet;
- :class:`~hearsay.base.errors.BoundsError` / ``SketchParameterError`` /
  ``DecodeError`` from the sketch views.

Departures from Redis that the lattice forces (each command's RESP summary says so too):

- ``SET key <HYLL bytes>`` on an existing HyperLogLog *merges* (register-wise max) instead of
  replacing: a replica cannot lower a register, so a replace would not converge. DEL then SET
  gives Redis's replace (the DEL starts a new epoch).
- Bloom filters never scale (no EXPANSION) and are never refused as "full": the number of items
  is estimated from the set bits (two replicas cannot count adds exactly), so a refusal would be
  a guess that differs between nodes. Past capacity the false-positive rate grows instead.
- CMS.MERGE raises the destination to the weighted sum rather than overwriting it (see
  :mod:`hearsay.sketch.countmin`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import HearsayError, SketchParameterError, WrongTypeError
from hearsay.engine.replica import Replica as Database
from hearsay.lattice.entry import Entry, MergeResult, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sketch import hll
from hearsay.sketch.bloom import BloomFilter, BloomInfo
from hearsay.sketch.counter import PNCounter
from hearsay.sketch.countmin import CmsInfo, CountMinSketch
from hearsay.sketch.hll import REDIS_PRECISION
from hearsay.sketch.hyperloglog import HyperLogLog
from hearsay.sketch.maxreg import RawVector
from hearsay.sketch.murmur import REDIS_HLL_SEED, hash64a
from hearsay.sketch.schemas import (
    KIND_BLOOM,
    KIND_CMS,
    KIND_COUNTER,
    KIND_HLL,
    KIND_MAXREG,
    KIND_VECTOR,
    Pairs,
)

__all__ = [
    "BF_DEFAULT_CAPACITY",
    "BF_DEFAULT_ERROR_RATE",
    "HllNotIntegerError",
    "KeyExistsError",
    "KeyMissingError",
    "NotAnHllError",
    "PrecisionMismatchError",
    "ShapeMismatchError",
    "bf_add",
    "bf_card",
    "bf_exists",
    "bf_info",
    "bf_merge",
    "bf_reserve",
    "cms_incrby",
    "cms_info",
    "cms_init",
    "cms_merge",
    "cms_query",
    "counter_decrby",
    "counter_incrby",
    "get_value",
    "pfadd",
    "pfadd_run",
    "pfcount",
    "pfmerge",
    "pfreserve",
    "set_hll_bytes",
    "vget",
    "vmax",
]

BF_DEFAULT_ERROR_RATE: Final = 0.01
"""RedisBloom's default error rate for a filter created by BF.ADD / BF.INSERT."""
BF_DEFAULT_CAPACITY: Final = 100
"""RedisBloom's default capacity for a filter created by BF.ADD / BF.INSERT."""


# -- errors -------------------------------------------------------------------------------------


class KeyMissingError(HearsayError):
    """The command needs an existing key of its kind (RedisBloom's "not found")."""


class KeyExistsError(HearsayError):
    """The command creates a key that already exists."""


class NotAnHllError(WrongTypeError):
    """An HLL command on a counter: Redis says "Key is not a valid HyperLogLog string value"."""


class HllNotIntegerError(WrongTypeError):
    """INCR and friends on an HLL: Redis says "value is not an integer or out of range"."""


class PrecisionMismatchError(SketchParameterError):
    """A key holds an HLL of another precision, or PFMERGE would have to raise precision."""

    def __init__(self, have: int, want: int) -> None:
        super().__init__(f"HyperLogLog precisions differ: {have} and {want}")
        self.have = have
        self.want = want


class ShapeMismatchError(SketchParameterError):
    """Bloom filters or count-min sketches of different shapes cannot be merged."""


# -- views, cached by schema (schemas are interned, views are stateless) -------------------------

_HLL_VIEWS: dict[int, HyperLogLog] = {}
_REDIS_HLL: Final = HyperLogLog(REDIS_PRECISION)
_HLL_VIEWS[REDIS_PRECISION] = _REDIS_HLL
_REDIS_SCHEMA: Final = _REDIS_HLL.schema
_BLOOM_VIEWS: dict[Schema, BloomFilter] = {}
_CMS_VIEWS: dict[Schema, CountMinSketch] = {}
_COUNTER: Final = PNCounter()
_VECTOR: Final = RawVector()
_SCALAR_HASH_MAX: Final = 4
"""Up to this many PFADD members become pairs of Python ints (one C hash each), which the
lattice merges without numpy, rather than arrays from one batch."""


def hll_view(precision: int) -> HyperLogLog:
    view = _HLL_VIEWS.get(precision)
    if view is None:
        view = _HLL_VIEWS[precision] = HyperLogLog(precision)
    return view


def _hll_of(schema: Schema) -> HyperLogLog:
    return (
        hll_view(schema.params[0]) if len(schema.params) == 1 else HyperLogLog.from_schema(schema)
    )


def _bloom_of(schema: Schema) -> BloomFilter:
    view = _BLOOM_VIEWS.get(schema)
    if view is None:
        view = _BLOOM_VIEWS[schema] = BloomFilter.from_schema(schema)
    return view


def _cms_of(schema: Schema) -> CountMinSketch:
    view = _CMS_VIEWS.get(schema)
    if view is None:
        view = _CMS_VIEWS[schema] = CountMinSketch.from_schema(schema)
    return view


def _write_pairs(
    db: Database, key: bytes, schema: Schema, pairs: Pairs | FewPairs, now_ms: int
) -> MergeResult:
    """The bulk write of a sketch's pairs into this node's slice (the one write funnel)."""
    return db.write_pairs_own(key, schema, pairs[0], pairs[1], now_ms)


_ONE: Final = frozenset({1})
FewPairs = tuple[list[int], list[int]]
"""A few pairs as Python ints: the lattice merges them without numpy."""


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


def _schema_of(entry: Entry) -> Schema:
    schema = entry.schema
    assert schema is not None, "Database.get_typed returns live entries only"
    return schema


# -- HyperLogLog --------------------------------------------------------------------------------


def _hll_entry(db: Database, key: bytes, now_ms: int) -> Entry | None:
    """The live HLL entry of ``key`` (None when absent); NotAnHllError on a counter."""
    try:
        return db.get_typed(key, KIND_HLL, now_ms)
    except WrongTypeError:
        entry = db.get(key, now_ms)
        if entry is not None and entry.schema is not None and entry.schema.kind == KIND_COUNTER:
            raise NotAnHllError("key holds a counter, not a HyperLogLog") from None
        raise


def pfadd(db: Database, key: bytes, members: Sequence[bytes], now_ms: int) -> int:
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
        result = _write_pairs(db, key, _REDIS_SCHEMA, pairs, now_ms)
    except WrongTypeError:
        entry = _hll_entry(db, key, now_ms)
        if entry is None:  # pragma: no cover - the write refused a key that is not there
            raise
        view = _hll_of(_schema_of(entry))
        result = _write_pairs(db, key, view.schema, _hll_pairs(view, members), now_ms)
    return 0 if result.delta is None else 1


def pfadd_run(db: Database, key: bytes, calls: Sequence[Sequence[bytes]], now_ms: int) -> list[int]:
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
    db: Database,
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


def pfreserve(db: Database, key: bytes, precision: int, now_ms: int) -> bool:
    """HEARSAY.PFRESERVE: create an empty HLL of ``precision``; False when it already exists.

    PrecisionMismatchError when the key holds an HLL of another precision.
    """
    view = hll_view(precision)  # SketchParameterError outside 4..18
    entry = _hll_entry(db, key, now_ms)
    if entry is not None:
        have = _hll_of(_schema_of(entry)).precision
        if have != precision:
            raise PrecisionMismatchError(have, precision)
        return False
    db.write_own(key, view.schema, MaxVector(), now_ms)
    return True


def _hll_entries(
    db: Database, keys: Sequence[bytes], now_ms: int
) -> list[tuple[HyperLogLog, MaxVector]]:
    """The view and vector of each existing key among ``keys``."""
    found: list[tuple[HyperLogLog, MaxVector]] = []
    for key in keys:
        entry = _hll_entry(db, key, now_ms)
        if entry is not None:
            found.append((_hll_of(_schema_of(entry)), entry.vector))
    return found


def _union_registers(hlls: list[tuple[HyperLogLog, MaxVector]], p: int) -> npt.NDArray[np.uint8]:
    """The union of ``hlls`` as dense registers of precision ``p`` (higher ones folded down)."""
    union = np.zeros(1 << p, dtype=np.uint8)
    for view, vector in hlls:
        np.maximum(union, hll.fold(view.registers(vector), p), out=union)
    return union


def pfcount(db: Database, keys: Sequence[bytes], now_ms: int) -> int:
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
    return hll.count(_union_registers(hlls, min(view.precision for view, _ in hlls)))


def pfmerge(db: Database, dest: bytes, sources: Sequence[bytes], now_ms: int) -> None:
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
        union = MaxVector()
        for _, vector in [*target, *hlls]:
            union.merge(vector)
    else:
        union = MaxVector.from_dense(_union_registers([*target, *hlls], view.precision))
    db.write_own(dest, view.schema, union, now_ms)


def set_hll_bytes(db: Database, key: bytes, data: bytes, now_ms: int) -> None:
    """SET key <HYLL bytes>: create the HLL, or merge the registers into an existing one.

    DecodeError when ``data`` is not a valid Redis HLL; PrecisionMismatchError when the key
    holds an HLL of a precision other than 14. See the module notes for why SET merges.
    """
    entry = _hll_entry(db, key, now_ms)
    if entry is not None:
        have = _hll_of(_schema_of(entry)).precision
        if have != REDIS_PRECISION:
            raise PrecisionMismatchError(have, REDIS_PRECISION)
    pairs = _REDIS_HLL.from_redis(data)
    _write_pairs(db, key, _REDIS_SCHEMA, pairs, now_ms)


def get_value(db: Database, key: bytes, now_ms: int) -> bytes | None:
    """GET: a counter's value as decimal text, an HLL's Redis bytes, None when absent.

    WrongTypeError for other kinds; PrecisionMismatchError for an HLL whose precision is not
    Redis's 14 (Redis's format cannot hold it).
    """
    entry = db.get(key, now_ms)
    if entry is None or entry.schema is None:
        return None
    kind = entry.schema.kind
    if kind == KIND_COUNTER:
        return str(_COUNTER.get(dict(entry.slices()))).encode()
    if kind == KIND_HLL:
        view = _hll_of(entry.schema)
        if view.precision != REDIS_PRECISION:
            raise PrecisionMismatchError(view.precision, REDIS_PRECISION)
        return view.to_redis(entry.vector)
    raise WrongTypeError(f"GET of a {kind} key")


# -- counters -----------------------------------------------------------------------------------


def _counter_slices(db: Database, key: bytes, now_ms: int) -> dict[str, MaxVector]:
    try:
        entry = db.get_typed(key, KIND_COUNTER, now_ms)
    except WrongTypeError:
        other = db.get(key, now_ms)
        if other is not None and other.schema is not None and other.schema.kind == KIND_HLL:
            raise HllNotIntegerError("key holds a HyperLogLog") from None
        raise
    return {} if entry is None else dict(entry.slices())


def counter_incrby(db: Database, key: bytes, amount: int, now_ms: int) -> int:
    """INCRBY (INCR, DECR: amount +-1): the new value; BoundsError on overflow."""
    slices = _counter_slices(db, key, now_ms)
    pairs, value = _COUNTER.incrby(slices, db.origin, amount)
    _write_pairs(db, key, _COUNTER.schema, pairs, now_ms)
    return value


def counter_decrby(db: Database, key: bytes, amount: int, now_ms: int) -> int:
    """DECRBY: the new value; ``-2**63`` is refused as Redis refuses it."""
    slices = _counter_slices(db, key, now_ms)
    pairs, value = _COUNTER.decrby(slices, db.origin, amount)
    _write_pairs(db, key, _COUNTER.schema, pairs, now_ms)
    return value


# -- Bloom filters ------------------------------------------------------------------------------


def _bloom_entry(db: Database, key: bytes, now_ms: int) -> tuple[BloomFilter, MaxVector] | None:
    entry = db.get_typed(key, KIND_BLOOM, now_ms)
    if entry is None:
        return None
    return _bloom_of(_schema_of(entry)), entry.vector


def bf_reserve(db: Database, key: bytes, error_rate: float, capacity: int, now_ms: int) -> None:
    """BF.RESERVE (always non-scaling): KeyExistsError when the key exists."""
    if _bloom_entry(db, key, now_ms) is not None:
        raise KeyExistsError("item exists")
    view = BloomFilter.reserve(error_rate, capacity)  # SketchParameterError when too large
    db.write_own(key, view.schema, MaxVector(), now_ms)


@dataclass(frozen=True, slots=True)
class BloomCreate:
    """How BF.ADD / BF.MADD / BF.INSERT create a missing filter (None: they must not)."""

    error_rate: float = BF_DEFAULT_ERROR_RATE
    capacity: int = BF_DEFAULT_CAPACITY


def bf_add(
    db: Database,
    key: bytes,
    items: Sequence[bytes],
    now_ms: int,
    create: BloomCreate | None = BloomCreate(),
) -> list[bool]:
    """BF.ADD / BF.MADD / BF.INSERT: per item, whether it was new.

    A missing key is created as ``create`` says, or KeyMissingError when ``create`` is None.
    """
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        if create is None:
            raise KeyMissingError("not found")
        view, vector = BloomFilter.reserve(create.error_rate, create.capacity), MaxVector()
    else:
        view, vector = found
    pairs, added = view.madd(vector, items)
    _write_pairs(db, key, view.schema, pairs, now_ms)
    return [bool(flag) for flag in added.tolist()]


def bf_exists(db: Database, key: bytes, items: Sequence[bytes], now_ms: int) -> list[bool]:
    """BF.EXISTS / BF.MEXISTS: per item, whether it may have been added (False when absent)."""
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        return [False] * len(items)
    view, vector = found
    return [bool(flag) for flag in view.mexists(vector, items).tolist()]


def bf_info(db: Database, key: bytes, now_ms: int) -> BloomInfo:
    """BF.INFO: KeyMissingError when absent."""
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        raise KeyMissingError("not found")
    view, vector = found
    return view.info(vector)


def bf_card(db: Database, key: bytes, now_ms: int) -> int:
    """BF.CARD: the estimated number of items (0 when absent)."""
    found = _bloom_entry(db, key, now_ms)
    if found is None:
        return 0
    view, vector = found
    return view.card(vector)


def bf_merge(db: Database, dest: bytes, sources: Sequence[bytes], now_ms: int) -> None:
    """BF.MERGE (hearsay's): union of equal-shaped filters into ``dest``.

    Missing sources are skipped; a missing ``dest`` takes the first existing source's shape;
    KeyMissingError when neither exists; ShapeMismatchError when shapes differ.
    """
    target = _bloom_entry(db, dest, now_ms)
    view = None if target is None else target[0]
    union = MaxVector()
    for source in sources:
        found = _bloom_entry(db, source, now_ms)
        if found is None:
            continue
        other, vector = found
        if view is None:
            view = other
        elif other.shape() != view.shape():
            raise ShapeMismatchError(
                f"Bloom filters of different shapes cannot be merged: {view.bits} bits / "
                f"{view.hashes} hashes vs {other.bits} bits / {other.hashes} hashes"
            )
        union.merge(vector)
    if view is None:
        raise KeyMissingError("not found")
    db.write_own(dest, view.schema, union, now_ms)


# -- count-min sketches -------------------------------------------------------------------------


def _cms_entry(
    db: Database, key: bytes, now_ms: int
) -> tuple[CountMinSketch, dict[str, MaxVector]] | None:
    entry = db.get_typed(key, KIND_CMS, now_ms)
    if entry is None:
        return None
    return _cms_of(_schema_of(entry)), dict(entry.slices())


def _cms_required(
    db: Database, key: bytes, now_ms: int
) -> tuple[CountMinSketch, dict[str, MaxVector]]:
    found = _cms_entry(db, key, now_ms)
    if found is None:
        raise KeyMissingError("CMS: key does not exist")
    return found


def cms_init(db: Database, key: bytes, width: int, depth: int, now_ms: int) -> None:
    """CMS.INITBYDIM / CMS.INITBYPROB (after sizing): KeyExistsError when the key exists."""
    if db.get(key, now_ms) is not None:
        raise KeyExistsError("CMS: key already exists")
    view = CountMinSketch(width, depth)  # SketchParameterError when too large
    db.write_own(key, view.schema, MaxVector(), now_ms)


def cms_exists_check(db: Database, key: bytes, now_ms: int) -> None:
    """KeyExistsError when ``key`` exists (RedisBloom checks before parsing the sizes)."""
    if db.get(key, now_ms) is not None:
        raise KeyExistsError("CMS: key already exists")


def cms_check_incrby(db: Database, key: bytes, now_ms: int) -> None:
    """KeyMissingError / WrongTypeError before CMS.INCRBY's numbers are parsed (RedisBloom)."""
    _cms_required(db, key, now_ms)


def cms_incrby(
    db: Database, key: bytes, items: Sequence[bytes], increments: Sequence[int], now_ms: int
) -> list[int]:
    """CMS.INCRBY: each item's estimate after its increment (BoundsError on overflow)."""
    view, slices = _cms_required(db, key, now_ms)
    pairs, estimates = view.incrby(slices, db.origin, items, increments)
    _write_pairs(db, key, view.schema, pairs, now_ms)
    return estimates


def cms_query(db: Database, key: bytes, items: Sequence[bytes], now_ms: int) -> list[int]:
    """CMS.QUERY: each item's estimate."""
    view, slices = _cms_required(db, key, now_ms)
    return view.query(slices, items)


def cms_info(db: Database, key: bytes, now_ms: int) -> CmsInfo:
    """CMS.INFO: width, depth, total count."""
    view, slices = _cms_required(db, key, now_ms)
    return view.info(slices)


def cms_dest(db: Database, key: bytes, now_ms: int) -> CountMinSketch:
    """CMS.MERGE's destination view (KeyMissingError / WrongTypeError first, as RedisBloom)."""
    return _cms_required(db, key, now_ms)[0]


def cms_source(db: Database, key: bytes, dest: CountMinSketch, now_ms: int) -> None:
    """Check one CMS.MERGE source: it exists, holds a sketch, and has ``dest``'s dimensions."""
    view, _ = _cms_required(db, key, now_ms)
    if view.schema != dest.schema:
        raise ShapeMismatchError("CMS: width/depth is not equal")


def cms_merge(
    db: Database,
    dest: bytes,
    sources: Sequence[bytes],
    weights: Sequence[int] | None,
    now_ms: int,
) -> None:
    """CMS.MERGE: raise ``dest`` to the weighted sum of ``sources`` (BoundsError on overflow)."""
    view, dest_slices = _cms_required(db, dest, now_ms)
    inputs: list[tuple[Schema, dict[str, MaxVector]]] = []
    for source in sources:
        other, slices = _cms_required(db, source, now_ms)
        if other.schema != view.schema:
            raise ShapeMismatchError("CMS: width/depth is not equal")
        inputs.append((other.schema, slices))
    pairs = view.merge_weighted(dest_slices, db.origin, inputs, weights)
    _write_pairs(db, dest, view.schema, pairs, now_ms)


# -- raw vectors (vignette keys) ----------------------------------------------------------------


def vmax(
    db: Database, key: bytes, indices: Sequence[int], values: Sequence[int], now_ms: int
) -> int:
    """VMAX: raise each index to at least its value; how many indices grew."""
    db.get_typed(key, KIND_VECTOR, now_ms)  # WrongTypeError before anything is validated
    idx = np.array(indices, dtype=np.uint64)
    val = np.array(values, dtype=np.uint64)
    pairs = _VECTOR.set_max(idx, val)  # BoundsError for a value outside 0..2**63-1
    result = _write_pairs(db, key, _VECTOR.schema, pairs, now_ms)
    if result.delta is None:
        return 0
    return sum(len(vector) for _, vector in result.delta.slices())


def vget(db: Database, key: bytes, now_ms: int) -> list[tuple[int, int]]:
    """VGET: the non-zero ``(index, value)`` pairs by index (empty when absent).

    Max registers are vectors too (slot 0), so VGET reads them as well.
    """
    entry = db.get(key, now_ms)
    if entry is None or entry.schema is None:
        return []
    if entry.schema.kind not in (KIND_VECTOR, KIND_MAXREG):
        raise WrongTypeError(f"VGET of a {entry.schema.kind} key")
    return entry.vector.items()
