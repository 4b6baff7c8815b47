"""Retired slices: folds of departed origins commute with merges (lattice + the fold pass).

Replicas receive departed and live origins' count-min slices in pieces, fold at different
times, and exchange whole entries in any order; once everything is delivered everywhere
they hold equal entries (equal content hashes), reads equal the unfolded sum, and each key
holds at most one retired slice besides the live origins'.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.base.errors import BoundsError, DecodeError
from hearsay.engine.retire import Retirer
from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.entry import Entry, MergeResult
from hearsay.lattice.keyspace import Keyspace
from hearsay.lattice.retired import (
    Departures,
    departure_key,
    retired_origin,
    retired_time,
    summed_slice,
)
from hearsay.lattice.vector import VALUE_MAX, MaxVector
from hearsay.protocol.gossip.outbox import merge_delta
from hearsay.sketch import schemas
from hearsay.sketch.tdigest import TDigest

KEY = b"k"
SCHEMA = schemas.cms(8, 2)
ORIGINS = ["a1", "b2", "c3", "d4", "e5"]
DEPARTED = {"a1": 1_000, "b2": 2_000, "c3": 3_000}
"""Three departed nodes (their departure times); d4 and e5 stay."""


def _read(entry: Entry) -> dict[int, int]:
    """What a count-min read uses: the per-cell sum over the slices held."""
    summed = summed_slice(vector for _, vector in entry.slices())
    return dict(summed.items())


def _slices_strategy() -> st.SearchStrategy[dict[str, list[dict[int, int]]]]:
    """Per origin, the pieces (deltas) of its final slice: each piece a few cells' values,
    growing (a later piece raises cells), as increments would."""
    piece = st.dictionaries(st.integers(0, 15), st.integers(1, 50), min_size=1, max_size=4)
    return st.fixed_dictionaries({o: st.lists(piece, min_size=1, max_size=3) for o in ORIGINS})


def _deltas(pieces: dict[str, list[dict[int, int]]]) -> list[tuple[str, Entry]]:
    """Each origin's pieces as deltas, values made cumulative (a slice only grows)."""
    out: list[tuple[str, Entry]] = []
    for origin, chunks in pieces.items():
        running: dict[int, int] = {}
        for chunk in chunks:
            for index, value in chunk.items():
                running[index] = running.get(index, 0) + value
            vector = MaxVector.from_pairs(list(chunk), [running[index] for index in chunk])
            out.append((origin, Entry(0, SCHEMA, slices={origin: vector})))
    return out


def _final(deltas: list[tuple[str, Entry]]) -> Entry:
    whole = Entry(0, SCHEMA)
    for _, delta in deltas:
        whole.merge(delta)
    return whole


def _learn_departures(keyspace: Keyspace) -> None:
    for node, time_ms in DEPARTED.items():
        keyspace.merge(departure_key(node), Entry(time_ms))


def _sync(source: Keyspace, target: Keyspace) -> None:
    """Anti-entropy in one direction: ``source``'s whole entry into ``target``."""
    entry = source.entry(KEY)
    if entry is not None:
        target.merge(KEY, entry.copy())


@settings(max_examples=100, deadline=None)
@given(
    pieces=_slices_strategy(),
    order=st.randoms(use_true_random=False),
    fold_times=st.lists(st.sampled_from([1_000, 2_000, 3_000, 5_000]), min_size=3, max_size=3),
    departures_late=st.booleans(),
)
def test_folds_commute_with_merges(
    pieces: dict[str, list[dict[int, int]]],
    order: object,
    fold_times: list[int],
    departures_late: bool,
) -> None:
    import random

    assert isinstance(order, random.Random)
    deltas = _deltas(pieces)
    expected = _read(_final(deltas))
    replicas = [Keyspace(buckets=4) for _ in range(3)]
    retirers = [Retirer(replica) for replica in replicas]
    late = replicas[2] if departures_late else None
    for replica in replicas:
        if replica is not late:
            _learn_departures(replica)
    pending = [list(deltas) for _ in replicas]
    for queue in pending:
        order.shuffle(queue)
    # Deliver in random order, folding once a replica holds every departed slice (the
    # fold's precondition: departed slices are final), and syncing now and then.
    for step in range(len(deltas)):
        for number, replica in enumerate(replicas):
            _, delta = pending[number][step]
            replica.merge(KEY, delta)
        first, second = order.sample(range(3), 2)
        if order.random() < 0.3:
            _sync(replicas[first], replicas[second])
    # Folds (each replica at its own times, over a peer's fold or not) and syncs interleaved.
    for _ in range(6):
        number = order.randrange(3)
        if order.random() < 0.5:
            retirers[number].step(now_ms=order.choice(fold_times), grace_ms=0)
        else:
            first, second = order.sample(range(3), 2)
            _sync(replicas[first], replicas[second])
    for number, retirer in enumerate(retirers):
        retirer.step(now_ms=fold_times[number], grace_ms=0)
    for _ in range(2):
        for first in range(3):
            for second in range(3):
                if first != second:
                    _sync(replicas[first], replicas[second])
    if late is not None:
        _learn_departures(late)
        Retirer(late).step(now_ms=max(fold_times), grace_ms=0)  # drops what a fold covers
        for first in range(3):
            for second in range(3):
                if first != second:
                    _sync(replicas[first], replicas[second])
    entries = [replica.entry(KEY) for replica in replicas]
    assert entries[0] is not None
    assert entries[0] == entries[1] == entries[2]
    hashes = {replica.key_hash(KEY) for replica in replicas}
    assert len(hashes) == 1
    for replica in replicas:  # every bucket hash is what its entries' content hashes make
        assert list(replica.bucket_hashes()) == list(replicas[0].bucket_hashes())
        for bucket in range(replica.bucket_count):
            xor = 0
            for key, _ in replica.bucket_items(bucket):
                xor ^= replica.key_hash(key)
            assert replica.bucket_hash(bucket) == xor
    assert _read(entries[0]) == expected
    origins = [origin for origin, _ in entries[0].slices()]
    retired = [origin for origin in origins if retired_time(origin) is not None]
    assert len(retired) <= 1
    newest = max(fold_times)
    if newest >= 1_000:
        covered = {o for o, t in DEPARTED.items() if t <= newest}
        assert not covered & set(origins)
        assert retired == [retired_origin(max(t for t in DEPARTED.values() if t <= newest))]


@pytest.mark.parametrize("merge", [Keyspace.merge, merge_delta], ids=["merge", "gossip-fast-path"])
def test_late_slice_of_a_retired_origin_is_refused_and_counted(
    merge: Callable[[Keyspace, bytes, Entry], MergeResult],
) -> None:
    """Also through the gossip's few-pairs fast path (a peer's replicated write), which must
    not write a retired origin's pairs past the rule."""
    keyspace = Keyspace()
    _learn_departures(keyspace)
    keyspace.merge(KEY, Entry(0, SCHEMA, slices={"a1": MaxVector.from_pairs([1], [5])}))
    keyspace.merge(KEY, Entry(0, SCHEMA, slices={"d4": MaxVector.from_pairs([1], [7])}))
    Retirer(keyspace).step(now_ms=10_000, grace_ms=0)
    entry = keyspace.entry(KEY)
    assert entry is not None
    assert [o for o, _ in entry.slices()] == ["d4", "~3000"]
    result = merge(keyspace, KEY, Entry(0, SCHEMA, slices={"a1": MaxVector.from_pairs([2], [9])}))
    assert not result.changed
    assert keyspace.retired_origin_dropped == 1
    assert _read(entry) == {1: 12}


def test_fold_waits_for_the_grace() -> None:
    keyspace = Keyspace()
    _learn_departures(keyspace)
    keyspace.merge(KEY, Entry(0, SCHEMA, slices={"a1": MaxVector.from_pairs([1], [5])}))
    retirer = Retirer(keyspace)
    assert retirer.step(now_ms=1_999, grace_ms=1_000) == []
    assert [key for key, _ in retirer.step(now_ms=2_000, grace_ms=1_000)] == [KEY]
    entry = keyspace.entry(KEY)
    assert entry is not None and [o for o, _ in entry.slices()] == ["~1000"]


def test_fresh_origins_of_a_departed_node_fold_too() -> None:
    keyspace = Keyspace()
    _learn_departures(keyspace)
    keyspace.merge(KEY, Entry(0, SCHEMA, slices={"a1.7": MaxVector.from_pairs([3], [2])}))
    Retirer(keyspace).step(now_ms=10_000, grace_ms=0)
    entry = keyspace.entry(KEY)
    assert entry is not None and [o for o, _ in entry.slices()] == ["~3000"]


def test_departure_keys_are_reserved_kept_and_hidden() -> None:
    keyspace = Keyspace()
    _learn_departures(keyspace)
    assert keyspace.departures.time_of("a1") == 1_000
    assert len(keyspace) == 0  # tombstones: no live key
    assert keyspace.purge_tombstones(before_epoch=10**12) == []
    assert keyspace.merge(departure_key("z9"), Entry(5, SCHEMA)).changed is False
    with pytest.raises(BoundsError):
        keyspace.write(departure_key("z9"), SCHEMA, {"d4": MaxVector.from_pairs([1], [1])}, 0)
    later = keyspace.merge(departure_key("a1"), Entry(1_500))  # the max-merge keeps the later
    assert later.changed and keyspace.departures.time_of("a1") == 1_500


def test_summed_slice_saturates() -> None:
    big = MaxVector.from_pairs([0, 1], [VALUE_MAX, 3])
    summed = summed_slice([big, big, MaxVector.from_pairs([1], [4])])
    assert summed.items() == [(0, VALUE_MAX), (1, 10)]


def test_codec_takes_retired_names_and_refuses_malformed_ones() -> None:
    entry = Entry(0, SCHEMA, slices={"~1700000000000": MaxVector.from_pairs([1], [2])})
    assert decode_entry(encode_entry(entry)) == entry
    for bad in ("~", "~01", "~x", "~-1"):
        raw = encode_entry(Entry(0, SCHEMA, slices={bad: MaxVector.from_pairs([1], [2])}))
        with pytest.raises(DecodeError):
            decode_entry(raw)


def test_departures_fold_time_and_cover() -> None:
    departures = Departures()
    departures.learn("a1", 100)
    departures.learn("b2", 300)
    assert departures.fold_time(99) is None
    assert departures.fold_time(299) == 100
    assert departures.covers("a1", 100) and not departures.covers("b2", 299)
    assert not departures.covers("~100", 10**9)
    assert np.array_equal(
        summed_slice([MaxVector.from_pairs([2], [1])]).pairs()[0], np.array([2], dtype=np.uint32)
    )


def test_departures_and_folds_survive_a_restart(tmp_path: Path) -> None:
    from hearsay.engine.replica import Replica

    replica = Replica.open(tmp_path / "data")
    replica.merge_remote(KEY, Entry(0, SCHEMA, slices={"a1": MaxVector.from_pairs([1], [5])}))
    replica.write_own(KEY, SCHEMA, MaxVector.from_pairs([1], [2]), now_ms=10)
    assert replica.forget("a1", 1_000, now_ms=1_000)
    assert not replica.forget("a1", 500, now_ms=1_000)  # known: its time is kept
    assert replica.retire_step(now_ms=5_000, grace_ms=1_000) == 1
    replica.flush()
    before = replica.keyspace.entry(KEY)
    assert before is not None
    origins = [origin for origin, _ in before.slices()]
    assert origins == [replica.origin, "~1000"]
    replica.close()
    again = Replica.open(tmp_path / "data")
    try:
        assert again.keyspace.departures.time_of("a1") == 1_000
        assert again.keyspace.entry(KEY) == before
        assert again.keyspace.key_hash(KEY) == replica.keyspace.key_hash(KEY)
        late = Entry(0, SCHEMA, slices={"a1": MaxVector.from_pairs([1], [9])})
        assert not again.merge_remote(KEY, late).changed
        assert again.keyspace.retired_origin_dropped == 1
    finally:
        again.close()


def test_a_key_reached_after_a_complete_pass_is_folded_too() -> None:
    keyspace = Keyspace()
    _learn_departures(keyspace)
    retirer = Retirer(keyspace)
    assert retirer.step(now_ms=10_000, grace_ms=0) == []  # a complete pass: nothing to fold
    late = Entry(0, SCHEMA, slices={"b2": MaxVector.from_pairs([4], [3])})
    keyspace.merge(b"late", late)
    assert [key for key, _ in retirer.step(now_ms=10_000, grace_ms=0)] == [b"late"]
    entry = keyspace.entry(b"late")
    assert entry is not None and [o for o, _ in entry.slices()] == ["~3000"]
    assert retirer.step(now_ms=10_000, grace_ms=0) == []


def test_a_pass_resumes_where_its_last_step_stopped() -> None:
    keyspace = Keyspace(buckets=2)
    _learn_departures(keyspace)
    keys = [b"key%d" % number for number in range(100)]
    for key in keys:
        keyspace.merge(key, Entry(0, SCHEMA, slices={"a1": MaxVector.from_pairs([1], [1])}))
        keyspace.merge(key, Entry(0, SCHEMA, slices={"d4": MaxVector.from_pairs([2], [1])}))
    retirer = Retirer(keyspace)
    folded: list[bytes] = []
    for _ in range(20):  # bounded: 32 folds, 10 keys looked at a step
        folded += [key for key, _ in retirer.step(now_ms=10_000, grace_ms=0, limit=10)]
    assert sorted(folded) == sorted(keys)  # each once
    for key in keys:
        entry = keyspace.entry(key)
        assert entry is not None and [o for o, _ in entry.slices()] == ["d4", "~3000"]


def test_tdigest_folds_at_different_times_and_in_any_order_converge() -> None:
    """Three replicas fold a t-digest's departed slices at different times (one over its own
    earlier fold, one from the raw slices, one over a peer's fold) and exchange entries: equal
    entries and hashes, one retired slice, every value's weight and the exact extremes kept.
    Compression 5 leaves 52 cells, so the values' spread forces coarser levels."""
    view = TDigest(5)
    schema = view.schema
    rng = np.random.default_rng(3)
    values = {origin: rng.lognormal(0, 4, 60 + 25 * n) for n, origin in enumerate(ORIGINS)}
    slices: dict[str, MaxVector] = {}
    for origin, part in values.items():
        for chunk in np.array_split(part, 7):
            indices, slot_values = view.add(slices, origin, [chunk.tolist()])
            slices.setdefault(origin, MaxVector()).merge_pairs(indices, slot_values)
    replicas = [Keyspace(buckets=4) for _ in range(3)]
    for replica in replicas:
        _learn_departures(replica)
        for origin, vector in slices.items():
            replica.merge(KEY, Entry(0, schema, slices={origin: vector.copy()}))
    Retirer(replicas[0]).step(now_ms=1_000, grace_ms=0)
    Retirer(replicas[0]).step(now_ms=3_000, grace_ms=0)
    Retirer(replicas[1]).step(now_ms=3_000, grace_ms=0)
    Retirer(replicas[2]).step(now_ms=2_000, grace_ms=0)
    _sync(replicas[0], replicas[2])
    Retirer(replicas[2]).step(now_ms=3_000, grace_ms=0)
    for _ in range(2):
        for first in range(3):
            for second in range(3):
                if first != second:
                    _sync(replicas[first], replicas[second])
    entries = [replica.entry(KEY) for replica in replicas]
    assert entries[0] is not None and entries[0] == entries[1] == entries[2]
    assert len({replica.key_hash(KEY) for replica in replicas}) == 1
    assert [origin for origin, _ in entries[0].slices()] == ["d4", "e5", "~3000"]
    digest = view.digest(dict(entries[0].slices()))
    everything = np.concatenate(list(values.values()))
    assert digest.total == everything.size
    assert (digest.minimum, digest.maximum) == (everything.min(), everything.max())
    retired = entries[0].slice("~3000")
    assert view.retired([], retired) == retired
    assert int(retired.values_at(np.array([6]))[0]) & 0xFFFFFFFF > 0  # (a coarser level)
