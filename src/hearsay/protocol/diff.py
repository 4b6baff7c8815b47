"""What one replica holds beyond another: the answer to every pull, read and repair.

Why this module exists: the lattice merges and reports what *grew*; gossip also needs the
converse, "which of my pairs are above yours", to reply to a sender with what it is missing.
Merge order makes this well defined: when my entry outranks yours (higher epoch or schema)
everything I hold is news to you; when yours outranks mine I have nothing for you; at equal
rank it is the pairs where my value is strictly greater, plus my expiry if it is newer.
"""

from __future__ import annotations

import numpy as np

from hearsay.lattice.entry import Entry
from hearsay.lattice.vector import MaxVector


def _above(mine: MaxVector, theirs: MaxVector, mentioned_only: bool) -> MaxVector:
    """Pairs of ``mine`` strictly above ``theirs`` (only at indices ``theirs`` holds, if asked).

    Only at the indices theirs holds, ours are read there (in time proportional to theirs):
    the answer to every PUSH that was not taken whole, where listing all of ours cost a scan
    of the whole key (a 1M-capacity Bloom filter's 1.2 MB of bits, at every relayed write)."""
    fast = mine.bits_above(theirs)  # (both bitsets: no pair lists)
    if fast is not None:
        return MaxVector() if mentioned_only else fast  # (no bit is above a set bit)
    if mentioned_only:
        t_idx, t_val = theirs.pairs()
        if t_idx.size == 0 or mine.is_empty():
            return MaxVector()
        ours_at = mine.values_at(t_idx)
        more = ours_at > t_val
        if not more.any():
            return MaxVector()
        return MaxVector.from_pairs(t_idx[more], ours_at[more])
    m_idx, m_val = mine.pairs()
    t_idx, t_val = theirs.pairs()
    if m_idx.size == 0:
        return MaxVector()
    if t_idx.size == 0:
        return mine.copy()
    pos = np.searchsorted(t_idx, m_idx)
    clipped = np.minimum(pos, t_idx.size - 1)
    present = t_idx[clipped] == m_idx
    theirs_at = np.where(present, t_val[clipped], 0)
    more = m_val > theirs_at
    if not more.any():
        return MaxVector()
    return MaxVector.from_pairs(m_idx[more], m_val[more])


def exceeding(
    mine: Entry | None, theirs: Entry | None, *, mentioned_only: bool = False
) -> Entry | None:
    """The delta that would bring ``theirs`` up to ``mine`` (None when there is nothing).

    With ``mentioned_only`` only indices present in ``theirs`` are considered (vignette's
    "reply with the indices it mentioned where we hold more"); a higher epoch or schema still
    answers with the whole entry, since the sender's data is obsolete.
    """
    if mine is None:
        return None
    if theirs is None:
        return None if mine.is_tombstone() and mine.epoch == 0 else mine.copy()
    if mine.outranks(theirs):
        return mine.copy()
    if theirs.outranks(mine):
        return None
    grown: dict[str, MaxVector] = {}
    for origin, vector in mine.slices():
        above = _above(vector, theirs.slice(origin), mentioned_only)
        if not above.is_empty():
            grown[origin] = above
    if not grown and not mine.expiry > theirs.expiry:
        return None
    return Entry(mine.epoch, mine.schema, mine.expiry, grown)
