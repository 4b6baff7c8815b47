"""A header's hash is the same whether its schema's description was remembered or not.

``header_hash`` remembers each schema's described bytes by the schema's identity (bounded,
cleared when full): every hash must be the one the definition gives, for schemas seen before,
new ones, ones past the bound, and a schema whose id an earlier, dropped one had.
"""

from __future__ import annotations

import struct

import xxhash

from hearsay.lattice import digest
from hearsay.lattice.digest import SCHEMAS_DESCRIBED_MAX, header_hash
from hearsay.lattice.entry import Entry, Schema


def _definition(seed: int, entry: Entry) -> int:
    schema = entry.schema
    described = (
        b"-"
        if schema is None
        else repr((schema.kind, schema.params, schema.size, schema.additive)).encode()
    )
    packed = struct.pack("<QqqQ", seed, entry.epoch, entry.expiry[0], entry.expiry[1])
    return xxhash.xxh3_64_intdigest(packed + described)


def test_header_hashes_are_the_definitions_whatever_was_remembered() -> None:
    entries = [Entry(7, None), Entry(3, Schema("counter", (), 64, True).intern(), (5, 9))]
    for round_no in range(2):  # the second round reads what the first remembered
        for n in range(SCHEMAS_DESCRIBED_MAX + 10):  # (past the bound: the table is cleared)
            schema = Schema("cms", (n, 3), 3 * n + 3, True).intern()
            entry = Entry(n, schema, (n, n + round_no))
            assert header_hash(n, entry) == _definition(n, entry)
        for entry in entries:
            assert header_hash(11, entry) == _definition(11, entry)
    assert len(digest._described) <= SCHEMAS_DESCRIBED_MAX


def test_a_schema_with_a_dropped_schemas_id_is_described_as_itself() -> None:
    first = Schema("topk", (10, 8, 7), 4096, True)  # (not interned: dropped below)
    first_id = id(first)
    assert header_hash(1, Entry(1, first)) == _definition(1, Entry(1, first))
    # Whatever object takes the id later, its own fields are hashed, never the remembered ones.
    digest._described[first_id] = (first, b"stale")
    other = Schema("tdigest", (100,), 9000, True)
    digest._described[id(other)] = (first, b"stale")
    assert header_hash(2, Entry(2, other)) == _definition(2, Entry(2, other))
