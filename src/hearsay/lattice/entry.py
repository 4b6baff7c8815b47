"""Entries: what a key holds, and the one merge rule every replica applies.

An entry is ``(epoch, schema, expiry, slices)``, ordered so that merging is a join:

1. **Epoch** first. DEL and expiry move a key to a higher epoch with nothing in it; a higher
   epoch wins whole, so a late delta from an older epoch can never resurrect deleted data.
2. **Schema** next, at equal epochs. ``None`` (nothing written yet in this epoch) is below
   every schema. Two *different* schemas at the same epoch can only arise when two nodes
   create the same key concurrently with different types; replicas must still agree, so the
   schema that sorts higher wins whole and the merge reports a conflict (never silently).
   A client write that names the wrong type is refused before it gets here
   (:class:`~hearsay.base.errors.WrongTypeError`, Redis's WRONGTYPE).
3. **Expiry**: ``(set_at_ms, deadline_ms)`` pairs join by lexicographic max, so the most
   recent EXPIRE/PERSIST wins everywhere (ties: the later deadline). ``deadline_ms == 0``
   means "no expiry".
4. **Slices** merge by element-wise max. Ordinary schemas have one slice (origin ``""``).
   Additive schemas (counters, count-min) keep one slice per origin node, because max over a
   single shared vector would lose concurrent increments: each node raises only its own slice
   and reads sum the slices. Re-delivery stays harmless.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy.typing as npt

from hearsay.base.errors import BoundsError
from hearsay.lattice.vector import INDEX_LIMIT, MaxVector

SHARED_ORIGIN: Final = ""
"""The one slice of a non-additive schema."""


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Schema:
    """What a vector means; the lattice only needs its bounds and whether it is additive.

    ``kind`` and ``params`` are interpreted by :mod:`hearsay.sketch`; ``size`` bounds every
    index (checked on decode, before anything is allocated); ``additive`` selects per-origin
    slices. Schemas are interned: equal schemas are the same object, shared by every key.
    The intern table holds its schemas weakly, so it is bounded by the schemas some key (or
    some module constant) still uses: peers sending ever new parameters cannot grow it.
    """

    kind: str
    params: tuple[int, ...] = ()
    size: int = INDEX_LIMIT
    additive: bool = False
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.kind or len(self.kind) > 32:
            raise BoundsError("schema kind must be 1..32 characters")
        if not 1 <= self.size <= INDEX_LIMIT:
            raise BoundsError("schema size must be 1..2**32")
        if len(self.params) > 8:
            raise BoundsError("a schema has at most 8 parameters")
        # Hashed once: a command looks its view up by schema (a tuple of four fields hashed
        # at every look-up was ~0.1 us of each).
        object.__setattr__(self, "_hash", hash((self.kind, self.params, self.size, self.additive)))

    def __eq__(self, other: object) -> bool:
        """Field by field, as the dataclass's own, after an identity test: schemas are
        interned, so the schemas a write or a replicated delta compares are nearly always one
        object (the generated comparison built two tuples of four fields: ~0.19 against ~0.02
        us, at several comparisons a write)."""
        if self is other:
            return True
        if type(other) is not Schema:
            return NotImplemented
        return (self.kind, self.params, self.size, self.additive) == (
            other.kind,
            other.params,
            other.size,
            other.additive,
        )

    def __hash__(self) -> int:
        return self._hash  # (the dataclass's value, computed once)

    def intern(self) -> Schema:
        """The shared instance equal to this schema."""
        key = (self.kind, self.params, self.size, self.additive)
        return _INTERNED.setdefault(key, self)

    def sort_key(self) -> tuple[str, tuple[int, ...], int, bool]:
        return (self.kind, self.params, self.size, self.additive)


_INTERNED: weakref.WeakValueDictionary[tuple[str, tuple[int, ...], int, bool], Schema] = (
    weakref.WeakValueDictionary()
)

Expiry = tuple[int, int]
"""``(set_at_ms, deadline_unix_ms)``; joins by lexicographic max; deadline 0 = persistent."""
NO_EXPIRY: Final[Expiry] = (0, 0)


_NO_PAIRS: Final = MaxVector.NO_PAIRS
"""The packed pairs of an empty vector (one shared object)."""


class Entry:
    """The state of one key. Mutable in place by :meth:`merge`; everything else reads.

    The body is the one shared slice (a non-additive schema) or a dict of slices by origin.
    A sparse shared slice is kept as its packed pairs, not as a :class:`MaxVector` (whose
    object costs 48 bytes, a sixth of a small HLL key): readers get a vector around the same
    bytes, made on demand; a dense one is kept as the vector itself.
    """

    __slots__ = ("_body", "epoch", "expiry", "schema")

    epoch: int
    schema: Schema | None
    expiry: Expiry
    _body: bytes | MaxVector | dict[str, MaxVector]

    def __init__(
        self,
        epoch: int = 0,
        schema: Schema | None = None,
        expiry: Expiry = NO_EXPIRY,
        slices: dict[str, MaxVector] | None = None,
    ) -> None:
        if epoch < 0:
            raise BoundsError("epoch must be non-negative")
        self.epoch = epoch
        self.schema = schema
        self.expiry = expiry if expiry != NO_EXPIRY else NO_EXPIRY
        self._body = _NO_PAIRS
        if slices:
            for origin, vector in slices.items():
                target = self._slice_for(origin)
                if target.is_empty():  # adopt a copy rather than merging into nothing
                    self._set_slice(origin, vector.copy())
                else:
                    target.merge(vector)
                    self._set_slice(origin, target)

    # -- reading --------------------------------------------------------------------------------

    @property
    def additive(self) -> bool:
        return self.schema is not None and self.schema.additive

    @property
    def deadline_ms(self) -> int:
        """Absolute expiry deadline in unix ms, 0 when the key does not expire."""
        return self.expiry[1]

    def slices(self) -> Iterator[tuple[str, MaxVector]]:
        """``(origin, vector)`` pairs, sorted by origin; empty slices are skipped."""
        body = self._body
        if isinstance(body, bytes):
            if body is not _NO_PAIRS:
                yield SHARED_ORIGIN, MaxVector.of_packed(body)
            return
        if isinstance(body, MaxVector):
            if not body.is_empty():
                yield SHARED_ORIGIN, body
            return
        for origin in sorted(body):
            vector = body[origin]
            if not vector.is_empty():
                yield origin, vector

    def packed_slices(self) -> list[tuple[str, bytes]] | None:
        """Its non-empty slices as ``(origin, packed pairs)`` in origin order (as
        :meth:`slices`), None when one is dense: what gossip sends of a replicated write, read
        from the body as held (no generator, no vector around a bytes body)."""
        body = self._body
        if isinstance(body, bytes):
            return [] if body is _NO_PAIRS else [(SHARED_ORIGIN, body)]
        if isinstance(body, MaxVector):
            held: Iterable[tuple[str, MaxVector]] = ((SHARED_ORIGIN, body),)
        else:
            held = body.items() if len(body) == 1 else sorted(body.items())
        out: list[tuple[str, bytes]] = []
        for origin, vector in held:
            packed = vector.packed_pairs()
            if packed is None:
                return None
            if len(packed) > 1:  # (an empty vector's packed form is its width byte alone)
                out.append((origin, packed))
        return out

    def slice_dict(self) -> dict[str, MaxVector]:
        """``dict(self.slices())`` (a new dict, by origin, empty slices left out) without the
        generator: a sketch command reads its key's slices so at every call."""
        body = self._body
        if type(body) is not dict:
            return dict(self.slices())
        if len(body) == 1:
            ((origin, vector),) = body.items()
            return {} if vector.is_empty() else {origin: vector}
        return {origin: body[origin] for origin in sorted(body) if not body[origin].is_empty()}

    def slice_table(self) -> Mapping[str, MaxVector]:
        """The slices by origin, in no particular order, empty ones possibly among them: an
        additive entry's own table (not a copy: read it, never change it), else the shared
        slice. For readers that sum over origins (a counter's value at each INCR), which
        would pay :meth:`slices`' sort and generator at every write."""
        body = self._body
        if type(body) is dict:
            return body
        return dict(self.slices())

    def memory_bytes(self) -> int:
        """Bytes this entry's objects occupy, its vectors' included (MEMORY USAGE's estimate)."""
        body = self._body
        if isinstance(body, bytes):
            return sys.getsizeof(self) + sys.getsizeof(body)
        if isinstance(body, MaxVector):
            return sys.getsizeof(self) + body.memory_bytes()
        slices = sum(sys.getsizeof(name) + vector.memory_bytes() for name, vector in body.items())
        return sys.getsizeof(self) + sys.getsizeof(body) + slices

    def payload_bytes(self) -> int:
        """Bytes of its vectors' payload (packed pairs or dense arrays), in O(slices).

        What the per-key cap (:class:`~hearsay.lattice.limits.KeyLimits`) measures: within a
        few dozen bytes per slice of the encoded entry on disk and on the wire.
        """
        body = self._body
        if isinstance(body, bytes):
            return len(body)
        if isinstance(body, MaxVector):
            return body.nbytes()
        total = 0
        for vector in body.values():  # (a loop, not sum() of a generator: asked at each write)
            total += vector.nbytes()
        return total

    @property
    def vector(self) -> MaxVector:
        """The single vector of a non-additive entry (read-only by convention; a sparse one is
        a vector around the entry's bytes: it does not follow later merges, so read it again)."""
        body = self._body
        if type(body) is MaxVector:
            return body
        if isinstance(body, bytes):
            return MaxVector.of_packed(body)
        raise TypeError("an additive entry has one vector per origin: use slices()")

    def shared_packed(self) -> bytes | None:
        """The shared slice's packed pairs when the entry holds it as bytes (a small
        non-additive key, or a delta of one), else None."""
        body = self._body
        return body if type(body) is bytes else None

    def slice(self, origin: str) -> MaxVector:
        """The vector written by ``origin`` (empty when it wrote nothing)."""
        body = self._body
        if isinstance(body, MaxVector):
            return body if origin == SHARED_ORIGIN else MaxVector()
        if isinstance(body, bytes):
            return MaxVector.of_packed(body) if origin == SHARED_ORIGIN else MaxVector()
        vector = body.get(origin)  # (not ``or``: truth tests whether the vector is empty)
        return MaxVector() if vector is None else vector

    def is_empty(self) -> bool:
        """No pairs in any slice (a tombstone or a freshly created key)."""
        return next(self.slices(), None) is None

    def is_tombstone(self) -> bool:
        """Deleted (or never written) in this epoch: no schema and no data."""
        return self.schema is None and self.is_empty()

    def pair_count(self) -> int:
        """How many non-zero pairs all its slices hold (asked for every key a drain pushes:
        read from the body as it is held, with no generator or sort)."""
        body = self._body
        if type(body) is bytes:  # (packed pairs: a width byte, then 4 + width bytes a pair)
            return (len(body) - 1) // (4 + body[0])
        if type(body) is MaxVector:
            return len(body)
        total = 0
        for vector in body.values():  # type: ignore[union-attr]  # (the per-origin dict)
            total += len(vector)
        return total

    def sparse_pair_count(self) -> int | None:
        """:meth:`pair_count` when no slice is dense (then it is O(slices)), else None:
        counting a dense slice's pairs scans it (a 1M-capacity Bloom filter's bits)."""
        body = self._body
        if type(body) is bytes:
            return (len(body) - 1) // (4 + body[0])
        if type(body) is MaxVector:
            return None if body.is_dense else len(body)
        total = 0
        for vector in body.values():  # type: ignore[union-attr]  # (the per-origin dict)
            if vector.is_dense:
                return None
            total += len(vector)
        return total

    def copy(self) -> Entry:
        """An independent copy (vectors copied, never re-merged)."""
        twin = Entry(self.epoch, self.schema, self.expiry)
        if isinstance(self._body, bytes):
            twin._body = self._body  # (immutable: shared)
        elif isinstance(self._body, MaxVector):
            twin._body = self._body.copy()
        else:
            twin._body = {origin: vector.copy() for origin, vector in self._body.items()}
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (
            self.epoch == other.epoch
            and self.schema == other.schema
            and self.expiry == other.expiry
            and list(self.slices()) == list(other.slices())
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        body = dict(self.slices())
        return f"Entry(epoch={self.epoch}, schema={self.schema}, expiry={self.expiry}, {body})"

    # -- merging --------------------------------------------------------------------------------

    def _slice_for(self, origin: str) -> MaxVector:
        """The vector to grow for ``origin``, creating it (and the per-origin map) on demand.

        A shared slice held as bytes comes as a new vector around them: whoever grows it
        hands it back to :meth:`_set_slice`."""
        if self.schema is not None and self.schema.additive == (origin == SHARED_ORIGIN):
            raise BoundsError(
                "additive schemas take one slice per named origin; others one shared slice"
            )
        body = self._body
        if type(body) is MaxVector and origin == SHARED_ORIGIN:
            return body
        if isinstance(body, bytes):
            body = self._body = MaxVector.of_packed(body)
        if isinstance(body, MaxVector):
            if origin == SHARED_ORIGIN:
                return body
            mapping = {SHARED_ORIGIN: body} if not body.is_empty() else {}
            self._body = body = mapping
        vector = body.get(origin)
        if vector is None:
            vector = body[origin] = MaxVector()
        return vector

    def grow_few(
        self, origin: str, indices: list[int], values: list[int]
    ) -> tuple[Entry | None, bytes, bytes | None] | None:
        """A few pairs (one client write) merged in C into ``origin``'s slice at this entry's
        epoch and schema: ``(the delta, its packed pairs, the previous values' packed
        pairs)``, the delta None when nothing rose. No vector is built for what rose: the
        keyspace hashes the bytes as they are. None: not for this path (a slice not held yet,
        an overlay, a big sparse slice, a wide value): :meth:`grow_slice`.

        The slice is the shared one held as bytes (a small key's PFADD, BF.ADD) or as a
        vector (a dense HLL's), or one origin's of an additive entry (an INCR, a count-min
        item, a cuckoo fingerprint), as the schema says.
        """
        body = self._body
        schema = self.schema
        if schema is None:
            return None
        if isinstance(body, dict):  # (an additive key: one origin's slice)
            if not origin or not schema.additive:
                return None  # (the wrong kind of slice for the schema: grow_slice refuses it)
            vector = body.get(origin)
            if vector is None:
                return None
        elif origin or schema.additive:
            return None  # (the wrong kind of slice for the schema: grow_slice refuses it)
        elif isinstance(body, bytes):  # (a small key: merged into the bytes, no vector built)
            grown = MaxVector.grow_packed(body, indices, values)
            if grown is None:
                return None
            held, delta, previous = grown
            if delta is None:
                return None, b"", None
            self._body = held
            return Entry._around(self.epoch, schema, self.expiry, delta), delta, previous
        else:
            vector = body
        raised = vector.grow_few_packed(indices, values)
        if raised is None:
            return None
        delta, previous = raised
        if delta is None:
            return None, b"", None
        grew = {origin: MaxVector.of_packed(delta)} if origin else delta
        return Entry._around(self.epoch, schema, self.expiry, grew), delta, previous

    def grow_slice(self, origin: str, indices: npt.ArrayLike, values: npt.ArrayLike) -> MergeResult:
        """Merge raw pairs into ``origin``'s slice at this entry's epoch and schema.

        The sketches' bulk path: no intermediate vector, no sorting when the slice is dense
        (:meth:`grow_few` takes a client write's few pairs first).
        """
        vector = self._slice_for(origin)
        grew, before = vector.merge_pairs_tracking(indices, values)
        self._set_slice(origin, vector)
        if grew.is_empty():
            return MergeResult(None)
        epoch, schema, expiry = self.epoch, self.schema, self.expiry
        shared = origin == SHARED_ORIGIN
        return MergeResult(
            Entry._around(epoch, schema, expiry, grew if shared else {origin: grew}),
            previous=Entry._around(epoch, schema, expiry, before if shared else {origin: before}),
        )

    @classmethod
    def holding(
        cls, epoch: int, schema: Schema | None, expiry: Expiry, slices: dict[str, MaxVector]
    ) -> Entry:
        """An entry of ``slices`` made for it alone, held as they are: the constructor copies
        what it is given (a drain's join of two INCRs spent ~1 us copying its own result)."""
        kept = {origin: vector for origin, vector in slices.items() if not vector.is_empty()}
        shared = SHARED_ORIGIN in kept
        if kept and (schema is None or schema.additive == shared or (shared and len(kept) > 1)):
            return cls(epoch, schema, expiry, kept)  # (the constructor's checks and errors)
        entry = cls._around(epoch, schema, expiry, kept if kept and not shared else _NO_PAIRS)
        if shared:
            entry._set_slice(SHARED_ORIGIN, kept[SHARED_ORIGIN])
        return entry

    @classmethod
    def _around(
        cls,
        epoch: int,
        schema: Schema | None,
        expiry: Expiry,
        body: bytes | MaxVector | dict[str, MaxVector],
    ) -> Entry:
        """An entry holding ``body`` as it is (a shared slice's packed pairs, its vector or the
        slices by origin): no checks, no empty vector built to be dropped.

        For the deltas a merge builds from fields that are valid already (one per write).
        """
        entry = cls.__new__(cls)
        entry.epoch, entry.schema, entry.expiry, entry._body = epoch, schema, expiry, body
        return entry

    def _set_slice(self, origin: str, vector: MaxVector) -> None:
        """Hold ``vector`` as ``origin``'s slice (the shared one as its bytes while sparse)."""
        body = self._body
        if type(body) is dict:
            body[origin] = vector
        elif vector.is_dense or vector.holds_pending:
            self._body = vector
        else:
            self._body = vector.packed_pairs() or vector

    def drop_slices(self, origins: Iterable[str]) -> list[tuple[str, MaxVector]]:
        """Remove the named slices of an additive entry (a windowed key's dead time slices,
        which every replica drops on its own: not a merge, see ``sketch/window.py``); returns
        those it held, so the keyspace's hash changes by theirs alone."""
        body = self._body
        dropped: list[tuple[str, MaxVector]] = []
        if isinstance(body, dict):
            for origin in origins:
                vector = body.pop(origin, None)
                if vector is not None:
                    dropped.append((origin, vector))
        return dropped

    def outranks(self, other: Entry) -> bool:
        """True when this entry's (epoch, schema) is strictly above ``other``'s."""
        if self.epoch != other.epoch:
            return self.epoch > other.epoch
        if self.schema == other.schema:
            return False
        if other.schema is None:
            return True
        if self.schema is None:
            return False
        return self.schema.sort_key() > other.schema.sort_key()

    def merge(self, delta: Entry) -> MergeResult:
        """Join ``delta`` into this entry in place; returns what changed (for forwarding)."""
        if delta.outranks(self):
            conflict = (
                delta.epoch == self.epoch and self.schema is not None and delta.schema is not None
            )
            replaced = not self.is_tombstone() or self.epoch != delta.epoch
            self.epoch, self.schema, self.expiry = delta.epoch, delta.schema, delta.expiry
            self._body = _NO_PAIRS
            for origin, vector in delta.slices():
                target = self._slice_for(origin)
                target.merge(vector)
                self._set_slice(origin, target)
            return MergeResult(self.copy(), replaced=replaced, conflict=conflict)
        if self.outranks(delta):
            conflict = delta.epoch == self.epoch and delta.schema is not None
            return MergeResult(None, conflict=conflict)
        grown: dict[str, MaxVector] = {}
        previous: dict[str, MaxVector] = {}
        for origin, vector in delta.slices():
            target = self._slice_for(origin)
            grew, before = target.merge_vector_tracking(vector)
            self._set_slice(origin, target)
            if not grew.is_empty():
                grown[origin] = grew
                previous[origin] = before
        old_expiry = self.expiry
        if delta.expiry > old_expiry:
            self.expiry = delta.expiry
        if not grown and self.expiry == old_expiry:
            return MergeResult(None)
        return MergeResult(
            Entry(self.epoch, self.schema, self.expiry, grown),
            previous=Entry(self.epoch, self.schema, old_expiry, previous),
        )


FewPairsDelta = tuple[int, Schema, Expiry, str, list[int], list[int]]
"""``(epoch, schema, expiry, origin, indices, values)``: a replicated write read as one slice's
few pairs (see :func:`hearsay.lattice.codec.few_pairs_from_wire`)."""


@dataclass(slots=True)
class MergeResult:
    """What a merge changed (read-only by convention).

    Not a frozen dataclass: one is built at every write, and a frozen one's constructor sets
    each field through ``object.__setattr__`` (about 3x the cost, ~0.3 us a write).

    ``delta`` is None when nothing changed; otherwise it is an entry holding exactly what grew
    (or the whole new state when a higher epoch or schema replaced the old one), ready to be
    forwarded. ``previous`` (for an in-place growth) holds the old values of exactly the
    grown pairs and the old expiry, so a content hash can update in O(delta); it is None when
    the whole entry was replaced. ``replaced`` says old data was dropped (DEL, expiry or a
    conflict); ``conflict`` says two different schemas met at one epoch and the higher won.
    """

    delta: Entry | None
    previous: Entry | None = None
    replaced: bool = False
    conflict: bool = False

    @property
    def changed(self) -> bool:
        return self.delta is not None
