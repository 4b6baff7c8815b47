"""The data operations of each sketch family on one node's database, one module per family.

Why: the RESP layer parses arguments and shapes replies (:mod:`hearsay.resp.families`); this
is where a command's *meaning* meets the keyspace. Every operation reads with
:meth:`Replica.get_typed` and writes with :meth:`Replica.write_pairs_own` (pairs) or
:meth:`Replica.write_own` (whole vectors, e.g. a union, or an empty one that creates a key),
so every change is persisted and pushed to gossip through the database's one write funnel,
and the lattice rule holds: a write only ever raises values, so replicas converge whatever
the order of delivery.

Each function takes the database, the keys, already parsed arguments and ``now_ms``, and
raises typed errors that each command declares how to answer (its ``errors=`` mapping):
:class:`~hearsay.base.errors.WrongTypeError` and the families' finer ones,
:mod:`hearsay.engine.families.common`'s for keys that must (not) exist or shapes that must
match, and ``BoundsError`` / ``SketchParameterError`` / ``DecodeError`` from the sketch views.
Departures from Redis that the lattice forces are listed in each family's module (and in each
command's RESP summary).
"""
