"""The one view registry: from a key's :class:`Schema` to the view that reads and writes it.

Why a module of its own: it is the only place in the sketch package that knows every family,
so the families themselves import only :mod:`hearsay.sketch.schemas` (the kinds and the
helpers they share) and the package has no import circle (``lint-imports`` checks it). A
schema read from a peer or from disk is only bounds-checked by the codec; :func:`view_for`
is where it is understood, :func:`type_name` is what Redis's ``TYPE`` replies for it, and
:func:`admit_schema` is the keyspace's check when a key is created or replaced.

Views hold no state (a sketch's state is its vectors), so one view per schema serves every key
of that schema: :func:`view_for` keeps them, at most :data:`VIEWS_CACHED_MAX` (schemas come
from peers too, so the cache is bounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

from hearsay.base.errors import SketchParameterError, TooLargeError
from hearsay.lattice.entry import Schema
from hearsay.sketch.bloom import BloomFilter
from hearsay.sketch.counter import PNCounter
from hearsay.sketch.countmin import CountMinSketch
from hearsay.sketch.cuckoo import CuckooFilter
from hearsay.sketch.hll_view import HyperLogLog
from hearsay.sketch.maxreg import MaxRegister, RawVector
from hearsay.sketch.schemas import (
    KIND_BLOOM,
    KIND_CMS,
    KIND_COUNTER,
    KIND_CUCKOO,
    KIND_HLL,
    KIND_MAXREG,
    KIND_TDIGEST,
    KIND_TOPK,
    KIND_VECTOR,
)
from hearsay.sketch.tdigest import TDigest
from hearsay.sketch.topk import TopK
from hearsay.sketch.window import KIND_WBLOOM, KIND_WCMS, KIND_WHLL, KIND_WTOPK, WindowedView

__all__ = ["VIEWS_CACHED_MAX", "SketchView", "admit_schema", "type_name", "view_as", "view_for"]

SketchView = (
    HyperLogLog
    | BloomFilter
    | CountMinSketch
    | PNCounter
    | MaxRegister
    | RawVector
    | TDigest
    | CuckooFilter
    | TopK
    | WindowedView
)
"""Any family's view."""

View = TypeVar(
    "View",
    HyperLogLog,
    BloomFilter,
    CountMinSketch,
    PNCounter,
    MaxRegister,
    RawVector,
    TDigest,
    CuckooFilter,
    TopK,
    WindowedView,
)


@dataclass(frozen=True, slots=True)
class _Family:
    view_class: type[SketchView]
    type_name: str  # what Redis's TYPE replies
    cells_capped: bool  # as many cells as its parameters say: max-key-bytes bounds them


_FAMILIES: Final[dict[str, _Family]] = {
    # Redis keeps an HLL in a plain string (GET returns the HYLL bytes)
    KIND_HLL: _Family(HyperLogLog, "string", cells_capped=False),
    KIND_BLOOM: _Family(BloomFilter, "MBbloom--", cells_capped=True),  # RedisBloom's type name
    KIND_CMS: _Family(CountMinSketch, "CMSk-TYPE", cells_capped=True),
    KIND_COUNTER: _Family(PNCounter, "string", cells_capped=False),  # INCR works on strings
    KIND_MAXREG: _Family(MaxRegister, "maxreg", cells_capped=False),
    KIND_VECTOR: _Family(RawVector, "vector", cells_capped=False),
    KIND_TDIGEST: _Family(TDigest, "TDIS-TYPE", cells_capped=False),  # RedisBloom's type name
    KIND_CUCKOO: _Family(CuckooFilter, "MBbloomCF", cells_capped=False),  # sparse counts
    KIND_TOPK: _Family(TopK, "TopK-TYPE", cells_capped=False),  # sparse; RedisBloom's name
    # windowed keys (sketch/window.py) answer TYPE as their plain family does
    KIND_WHLL: _Family(WindowedView, "string", cells_capped=False),
    KIND_WBLOOM: _Family(WindowedView, "MBbloom--", cells_capped=False),
    KIND_WCMS: _Family(WindowedView, "CMSk-TYPE", cells_capped=False),
    KIND_WTOPK: _Family(WindowedView, "TopK-TYPE", cells_capped=False),
}

VIEWS_CACHED_MAX: Final = 4_096
"""Views kept for reuse; past this many schemas the cache starts over (views are cheap to
make again, and a peer inventing shapes must not grow it without bound)."""

_VIEWS: dict[Schema, SketchView] = {}


def view_for(schema: Schema) -> SketchView:
    """The view that reads and writes vectors of ``schema``.

    Raises SketchParameterError for an unknown kind or parameters that do not fit the kind.
    """
    view = _VIEWS.get(schema)
    if view is None:
        family = _FAMILIES.get(schema.kind)
        if family is None:
            raise SketchParameterError(f"unknown sketch kind {schema.kind!r}")
        view = family.view_class.from_schema(schema)
        if len(_VIEWS) >= VIEWS_CACHED_MAX:
            _VIEWS.clear()
        _VIEWS[schema] = view
    return view


def view_as(schema: Schema, view_class: type[View]) -> View:
    """:func:`view_for`, checked to be a ``view_class`` (SketchParameterError otherwise)."""
    view = view_for(schema)
    if not isinstance(view, view_class):
        raise SketchParameterError(f"{schema} is not a {view_class.__name__}")
    return view


def admit_schema(schema: Schema, key_bytes_max: int) -> None:
    """Refuse a schema no key of this node may hold (the keyspace's ``admit_schema`` check,
    run when a key is created or replaced, by a client, a peer or the disk alike).

    A known kind must have parameters its view accepts (SketchParameterError otherwise), and
    a Bloom filter or count-min sketch no more slots than ``key_bytes_max`` bytes hold at one
    byte a slot (TooLargeError): filled, it could never be written, stored or replicated.
    HLLs are bounded by their precision (at most 2**18 registers), counters and max registers
    are a few slots, and raw vectors are sparse (only the byte cap bounds them). An unknown
    kind (a newer peer's) is left to the byte cap: no command reads it.
    """
    family = _FAMILIES.get(schema.kind)
    if family is None:
        return
    view = view_for(schema)
    if isinstance(view, WindowedView):  # SLICES + 1 live slices, each a plain key's size
        admit_schema(view.plain_schema, key_bytes_max // (view.window.slices + 1))
        return
    # A scalable Bloom filter reserves only its first sub-filter; the byte cap bounds growth.
    cells = view.reserved_cells if isinstance(view, BloomFilter) else schema.size
    if family.cells_capped and cells > key_bytes_max:
        what = "Bloom filter" if schema.kind == KIND_BLOOM else "count-min sketch"
        raise TooLargeError(
            f"a {what} of {cells} cells is larger than max-key-bytes allows "
            f"({key_bytes_max} cells at one byte a cell)"
        )


def type_name(schema: Schema) -> str:
    """What Redis's TYPE replies for a key of this schema."""
    family = _FAMILIES.get(schema.kind)
    if family is None:
        raise SketchParameterError(f"unknown sketch kind {schema.kind!r}")
    return family.type_name
