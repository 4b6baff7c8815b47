"""PUSH and EXCHANGE items carry a few packed pairs as they lie in memory.

``messages.entry_wire`` skips the canonical encoder's choice of form for slices of a few
sparse pairs (a replicated write). Whatever it picks must decode, through the strict PUSH
decoder, to exactly the entry the canonical encoding decodes to.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hearsay.lattice.codec import FEW_PAIRS_MAX, entry_from_wire, entry_to_wire
from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from tests.support.lattice_strategies import HLL, entries, indices, values

few_pairs = st.dictionaries(indices, values, min_size=1, max_size=FEW_PAIRS_MAX + 1)


@st.composite
def _deltas(draw: st.DrawFn) -> Entry:
    """Mostly a few pairs (a write's delta), sometimes anything an entry can be."""
    if draw(st.booleans()):
        return draw(entries())
    pairs = draw(few_pairs)
    return Entry(
        draw(st.integers(0, 3)),
        HLL,
        (0, 0),
        {"": MaxVector.from_items((i % HLL.size, v) for i, v in pairs.items())},
    )


@given(_deltas(), st.booleans(), st.sampled_from([True, False, 0, 3]))
def test_a_push_item_decodes_to_the_entry_the_canonical_form_decodes_to(
    delta: Entry, full: bool, relay: bool | int
) -> None:
    payload = msg.join_items(msg.push_prefix(relay, 5), [msg.push_item(b"k", delta, full)])
    got_relay, ack, items = msg.decode_push(payload)
    assert (got_relay, ack) == (relay, 5)
    assert type(got_relay) is type(relay)
    ((key, decoded, got_full),) = items
    assert (key, got_full) == (b"k", full)
    assert decoded == entry_from_wire(entry_to_wire(delta)) == delta
    exchanged = msg.decode_exchange(msg.join_items(b"", [msg.exchange_item(b"k", delta)]))
    assert exchanged == [(b"k", delta)]


def test_a_few_sparse_pairs_go_as_their_packed_bytes() -> None:
    delta = Entry(0, HLL, (0, 0), {"": MaxVector.from_items([(12768, 2)])})
    assert msg.entry_wire(delta)[4] == [["", 1, (12768).to_bytes(4, "little"), b"\x02"]]
    many = Entry(0, HLL, (0, 0), {"": MaxVector.from_items((i, 1) for i in range(40))})
    assert msg.entry_wire(many) == entry_to_wire(many)  # (a bit run: the canonical choice)
