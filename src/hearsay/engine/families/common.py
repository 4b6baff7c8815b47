"""What the family modules share: the errors for keys that must (not) exist or shapes that must
match, and the one write of a delta's pairs.

Why a module: Bloom filters and count-min sketches raise the same three errors, and each
RESP command maps them to its own family's text.
"""

from __future__ import annotations

from hearsay.base.errors import HearsayError, SketchParameterError
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry, MergeResult, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.slots import FewPairs, Pairs
from hearsay.sketch.views import View, view_as

__all__ = [
    "FewPairs",
    "KeyExistsError",
    "KeyMissingError",
    "ShapeMismatchError",
    "required_view_and_slices",
    "schema_of",
    "view_and_slices",
    "write_pairs",
]


class KeyMissingError(HearsayError):
    """The command needs an existing key of its kind (RedisBloom's "not found")."""


class KeyExistsError(HearsayError):
    """The command creates a key that already exists."""


class ShapeMismatchError(SketchParameterError):
    """Bloom filters or count-min sketches of different shapes cannot be merged."""


"""A few pairs as Python ints: the lattice merges them without numpy."""


def write_pairs(
    db: Replica, key: bytes, schema: Schema, pairs: Pairs | FewPairs, now_ms: int
) -> MergeResult:
    """The bulk write of a sketch's pairs into this node's slice (the one write funnel)."""
    return db.write_pairs_own(key, schema, pairs[0], pairs[1], now_ms)


def schema_of(entry: Entry) -> Schema:
    """The schema of an entry :meth:`Replica.get_typed` returned (live entries only)."""
    schema = entry.schema
    assert schema is not None, "Replica.get_typed returns live entries only"
    return schema


def view_and_slices(
    db: Replica, key: bytes, kind: str, view_class: type[View], now_ms: int
) -> tuple[View, dict[str, MaxVector]] | None:
    """A per-origin key's view and its vectors by origin; None when the key is absent
    (WrongTypeError when it holds another type)."""
    entry = db.get_typed(key, kind, now_ms)
    if entry is None:
        return None
    return view_as(schema_of(entry), view_class), entry.slice_dict()


def required_view_and_slices(
    db: Replica, key: bytes, kind: str, view_class: type[View], now_ms: int, *, missing: str
) -> tuple[View, dict[str, MaxVector]]:
    """:func:`view_and_slices` of a key that must exist (KeyMissingError(``missing``))."""
    found = view_and_slices(db, key, kind, view_class, now_ms)
    if found is None:
        raise KeyMissingError(missing)
    return found
