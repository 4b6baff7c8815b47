"""Count-min sketches on the database: CMS.INITBYDIM / INITBYPROB, CMS.INCRBY, CMS.QUERY,
CMS.INFO and CMS.MERGE (RedisBloom's rm_cms.c; the rmbd datagrams use them too).

Departure from RedisBloom that the lattice forces: CMS.MERGE raises the destination to the
weighted sum rather than overwriting it (see :mod:`hearsay.sketch.countmin`).
"""

from __future__ import annotations

from collections.abc import Sequence

from hearsay.engine.families.common import (
    KeyExistsError,
    ShapeMismatchError,
    required_view_and_slices,
    view_and_slices,
    write_pairs,
)
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.countmin import CmsInfo, CountMinSketch
from hearsay.sketch.schemas import KIND_CMS

__all__ = [
    "check_absent",
    "check_incrby",
    "dest",
    "incrby",
    "info",
    "init",
    "merge",
    "query",
    "source",
]


def _entry(
    db: Replica, key: bytes, now_ms: int
) -> tuple[CountMinSketch, dict[str, MaxVector]] | None:
    return view_and_slices(db, key, KIND_CMS, CountMinSketch, now_ms)


def _required(db: Replica, key: bytes, now_ms: int) -> tuple[CountMinSketch, dict[str, MaxVector]]:
    return required_view_and_slices(
        db, key, KIND_CMS, CountMinSketch, now_ms, missing="CMS: key does not exist"
    )


def init(db: Replica, key: bytes, width: int, depth: int, now_ms: int) -> None:
    """CMS.INITBYDIM / CMS.INITBYPROB (after sizing): KeyExistsError when the key exists."""
    if db.get(key, now_ms) is not None:
        raise KeyExistsError("CMS: key already exists")
    view = CountMinSketch(width, depth)  # SketchParameterError when too large
    db.write_own(key, view.schema, MaxVector(), now_ms)


def check_absent(db: Replica, key: bytes, now_ms: int) -> None:
    """KeyExistsError when ``key`` exists (RedisBloom checks before parsing the sizes)."""
    if db.get(key, now_ms) is not None:
        raise KeyExistsError("CMS: key already exists")


Sketch = tuple[CountMinSketch, dict[str, MaxVector]]
"""A key's view and its slices by origin, as read (see :func:`check_incrby`)."""


def check_incrby(db: Replica, key: bytes, now_ms: int) -> Sketch:
    """KeyMissingError / WrongTypeError before CMS.INCRBY's numbers are parsed (RedisBloom);
    the sketch read, which :func:`incrby` then takes instead of reading it again."""
    return _required(db, key, now_ms)


def incrby(
    db: Replica,
    key: bytes,
    items: Sequence[bytes],
    increments: Sequence[int],
    now_ms: int,
    *,
    sketch: Sketch | None = None,
) -> list[int]:
    """CMS.INCRBY: each item's estimate after its increment (BoundsError on overflow).

    ``sketch``: what :func:`check_incrby` read of ``key`` just before (nothing ran since)."""
    view, slices = _required(db, key, now_ms) if sketch is None else sketch
    if len(items) == 1:  # one item: Python ints, no arrays (the common call)
        few, estimate = view.incrby_item(slices, db.origin, items[0], increments[0])
        write_pairs(db, key, view.schema, few, now_ms)
        return [estimate]
    pairs, estimates = view.incrby(slices, db.origin, items, increments)
    write_pairs(db, key, view.schema, pairs, now_ms)
    return estimates


def query(db: Replica, key: bytes, items: Sequence[bytes], now_ms: int) -> list[int]:
    """CMS.QUERY: each item's estimate."""
    view, slices = _required(db, key, now_ms)
    return view.query(slices, items)


def info(db: Replica, key: bytes, now_ms: int) -> CmsInfo:
    """CMS.INFO: width, depth, total count."""
    view, slices = _required(db, key, now_ms)
    return view.info(slices)


def dest(db: Replica, key: bytes, now_ms: int) -> CountMinSketch:
    """CMS.MERGE's destination view (KeyMissingError / WrongTypeError first, as RedisBloom)."""
    return _required(db, key, now_ms)[0]


def source(db: Replica, key: bytes, dest: CountMinSketch, now_ms: int) -> None:
    """Check one CMS.MERGE source: it exists, holds a sketch, and has ``dest``'s dimensions."""
    view, _ = _required(db, key, now_ms)
    if view.schema != dest.schema:
        raise ShapeMismatchError("CMS: width/depth is not equal")


def merge(
    db: Replica,
    dest: bytes,
    sources: Sequence[bytes],
    weights: Sequence[int] | None,
    now_ms: int,
) -> None:
    """CMS.MERGE: raise ``dest`` to the weighted sum of ``sources`` (BoundsError on overflow)."""
    view, dest_slices = _required(db, dest, now_ms)
    inputs: list[tuple[Schema, dict[str, MaxVector]]] = []
    for source in sources:
        other, slices = _required(db, source, now_ms)
        if other.schema != view.schema:
            raise ShapeMismatchError("CMS: width/depth is not equal")
        inputs.append((other.schema, slices))
    pairs = view.merge_weighted(dest_slices, db.origin, inputs, weights)
    write_pairs(db, dest, view.schema, pairs, now_ms)
