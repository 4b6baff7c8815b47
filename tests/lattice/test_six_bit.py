"""Vectors held as six-bit slots (dense HLL registers) against the one-byte-per-slot form.

The same operations run twice: once as the code runs (dense one-byte vectors whose values fit
six bits are packed) and once with packing switched off (every dense vector keeps one byte per
slot, the form before six-bit slots existed). Every reply, delta, previous-value report,
PFCOUNT, encoding (DUMP and wire bytes) and content hash must be the same; the C code is also
held to a numpy statement of Redis's register layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.lattice import _sixbit
from hearsay.lattice import vector as vector_module
from hearsay.lattice.codec import decode_entry, encode_entry
from hearsay.lattice.digest import entry_hash
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.sketch.hll_view import HyperLogLog

HLL = HyperLogLog()
SMALL_HLL = HyperLogLog(10)
RAW = Schema("vector").intern()


@contextmanager
def one_byte_slots() -> Iterator[None]:
    """Nothing is packed into six bits while inside (the form before six-bit slots)."""
    saved = vector_module._six_packed
    vector_module._six_packed = lambda array: None
    try:
        yield
    finally:
        vector_module._six_packed = saved


def packed_reference(values: np.ndarray) -> np.ndarray:
    """Redis's dense layout in numpy: slot i at bits 6i..6i+5, LSB first."""
    bits = np.unpackbits(values[:, None], axis=1, bitorder="little")[:, :6].reshape(-1)
    return np.packbits(bits, bitorder="little")


@given(st.lists(st.integers(0, 63), min_size=0, max_size=64).map(lambda v: v[: len(v) // 4 * 4]))
def test_c_layout_is_redis_dense_layout(values: list[int]) -> None:
    slots = np.array(values, dtype=np.uint8)
    packed = np.empty(slots.size // 4 * 3, dtype=np.uint8)
    assert _sixbit.pack(slots, packed)
    assert packed.tobytes() == packed_reference(slots).tobytes()
    back = np.empty_like(slots)
    _sixbit.unpack(packed, back)
    assert back.tolist() == values
    assert [_sixbit.get(packed, i) for i in range(slots.size)] == values
    assert _sixbit.histogram(packed) == np.bincount(slots, minlength=64).tolist()


@given(
    st.lists(st.integers(0, 63), min_size=4, max_size=64).map(lambda v: v[: len(v) // 4 * 4]),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40),
)
def test_c_reads_many_slots_as_one_by_one(values: list[int], indices: list[int]) -> None:
    """``get_many`` (a pipelined run's look-ups in one call) reads what ``get`` reads, and 0
    past the slots either way (as a vector reads an absent index)."""
    slots = np.array(values, dtype=np.uint8)
    packed = np.empty(slots.size // 4 * 3, dtype=np.uint8)
    assert _sixbit.pack(slots, packed)
    probes = [*indices, *range(-2, slots.size + 2)]
    out = np.full(len(probes), 99, dtype=np.uint64)
    _sixbit.get_many(packed, np.array(probes, dtype=np.int64), out)
    expected = [_sixbit.get(packed, i) if 0 <= i < slots.size else 0 for i in probes]
    assert out.tolist() == expected
    unaligned = np.zeros(8 * len(probes) + 1, dtype=np.uint8)[1:]  # (memcpy: any alignment)
    unaligned[:] = np.frombuffer(np.array(probes, dtype=np.int64).tobytes(), dtype=np.uint8)
    _sixbit.get_many(packed, unaligned, out)
    assert out.tolist() == expected
    with pytest.raises(ValueError, match="int64"):
        _sixbit.get_many(packed, np.zeros(3, dtype=np.int64), np.zeros(2, dtype=np.uint64))


def test_c_refuses_what_does_not_fit() -> None:
    slots = np.zeros(8, dtype=np.uint8)
    slots[5] = 64
    assert not _sixbit.pack(slots, np.empty(6, dtype=np.uint8))
    with pytest.raises(ValueError, match="multiple of 4"):
        _sixbit.pack(np.zeros(6, dtype=np.uint8), np.empty(4, dtype=np.uint8))
    with pytest.raises(IndexError):
        _sixbit.get(np.zeros(3, dtype=np.uint8), 4)
    with pytest.raises(ValueError, match=r"0\.\.63"):
        _sixbit.raise_to(np.zeros(3, dtype=np.uint8), 0, 64)
    packed = np.zeros(3, dtype=np.uint8)
    assert _sixbit.raise_to(packed, 2, 9) == 0
    assert _sixbit.raise_to(packed, 2, 4) == 9  # (never lowers)
    assert [_sixbit.get(packed, i) for i in range(4)] == [0, 0, 9, 0]


# One step: PFADD of members (a few: the in-place path; many: the bulk path), a merge of
# raw pairs (values up to 70: above 63 the vector leaves six bits), or a merge of a dense
# vector (a peer's whole entry, PFMERGE).
_MEMBERS = st.lists(st.binary(max_size=6), min_size=1, max_size=300)
_STEP = st.one_of(
    st.tuples(st.just("pfadd"), _MEMBERS),
    st.tuples(
        st.just("pairs"),
        st.lists(st.tuples(st.integers(0, 16_383), st.integers(0, 70)), max_size=10),
    ),
    st.tuples(st.just("dense"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("far"), st.integers(16_384, 2**32 - 1)),
)


def _dense_source(seed: int, slots: int = 16_384) -> MaxVector:
    rng = np.random.default_rng(seed)
    registers = rng.integers(0, 20, size=slots, dtype=np.uint8)
    return MaxVector.from_dense(registers, owned=True)


def _run(steps: list[tuple[str, Any]], view: HyperLogLog) -> list[Any]:
    """Everything observable of a vector and an entry around it after each step."""
    vector = MaxVector()
    seen: list[Any] = []
    for kind, arg in steps:
        if kind == "pfadd":
            indices, ranks = view.add(arg)
            if len(arg) <= 8:
                delta, before = vector.merge_pairs_tracking(indices.tolist(), ranks.tolist())
            else:
                delta, before = vector.merge_pairs_tracking(indices, ranks)
        elif kind == "pairs":
            indices_list = [i % view.registers_count for i, _ in arg]
            delta, before = vector.merge_pairs_tracking(indices_list, [v for _, v in arg])
        elif kind == "dense":
            delta, before = vector.merge_vector_tracking(_dense_source(arg, view.registers_count))
        else:
            delta, before = vector.merge_vector_tracking(MaxVector.from_pairs([arg], [1]))
        entry = Entry(0, RAW, slices={"": vector})  # (RAW: a far index fits its size)
        seen.append(
            (
                delta.items(),
                before.items(),
                vector.items(),
                len(vector),
                vector.get(5),
                vector.values_at(np.array([0, 5, 16_383, 70_000])).tolist(),
                vector.window(100, 9_000).items(),
                view.count(vector),
                view.count(vector),  # (again: the remembered count)
                vector.nbytes(),
                vector.dense_slots,
                encode_entry(entry),
                entry_hash(b"k", entry),
                decode_entry(encode_entry(entry)) == entry,
            )
        )
    return seen


@settings(max_examples=40, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=12), st.sampled_from([HLL, SMALL_HLL]))
def test_six_bit_slots_give_what_one_byte_slots_give(
    steps: list[tuple[str, Any]], view: HyperLogLog
) -> None:
    packed = _run(steps, view)
    with one_byte_slots():
        plain = _run(steps, view)
    assert packed == plain


def test_a_dense_hll_is_held_in_six_bits() -> None:
    vector = MaxVector()
    for batch in range(20):
        vector.merge_pairs(*HLL.add([b"m%d" % i for i in range(batch * 1000, batch * 1000 + 1000)]))
    assert vector.is_dense
    assert vector.six_histogram() is not None
    assert vector.memory_bytes() < 12_288 + 200  # (16,384 registers in 12,288 bytes)
    assert vector.nbytes() == 16_384  # (the key cap still counts a byte per register)
    # A single PFADD raises a register in place, and the remembered count follows it.
    count = HLL.count(vector)
    delta = vector.merge_pairs(*HLL.add([b"one more member"]))
    assert vector.six_histogram() is not None
    if not delta.is_empty():
        ((index, rank),) = delta.items()
        assert vector.get(index) == rank
    registers = HLL.registers(vector)
    assert HLL.count(vector) == HLL.count(MaxVector.from_dense(registers.copy(), owned=False))
    assert count <= HLL.count(vector)


def test_a_value_above_63_leaves_six_bits_for_good() -> None:
    vector = _dense_source(1)
    assert vector.six_histogram() is not None
    vector.merge_pairs([7], [64])
    assert vector.six_histogram() is None
    assert vector.get(7) == 64
    vector.merge_pairs([8], [3])
    assert vector.six_histogram() is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 63), min_size=0, max_size=96).map(lambda v: v[: len(v) // 4 * 4]),
    st.lists(st.integers(0, 63), min_size=0, max_size=96).map(lambda v: v[: len(v) // 4 * 4]),
)
def test_rises_counts_the_slots_a_merge_would_raise(mine: list[int], incoming: list[int]) -> None:
    """``_sixbit.rises`` (PFMERGE's check that a merge changes nothing, without unpacking)
    against numpy: slots of ``incoming`` above ``mine``'s, and non-zero ones past its end."""

    def packed(values: list[int]) -> np.ndarray:
        out = np.zeros(len(values) // 4 * 3, dtype=np.uint8)
        assert _sixbit.pack(np.array(values, dtype=np.uint8), out)
        return out

    held = np.zeros(max(len(mine), len(incoming)), dtype=np.int64)
    held[: len(mine)] = mine
    expected = int(np.count_nonzero(np.array(incoming, dtype=np.int64) > held[: len(incoming)]))
    assert _sixbit.rises(packed(mine), packed(incoming)) == expected


def test_a_pipelined_run_into_many_six_bit_slots_is_set_in_place() -> None:
    """A run of ~100 pairs into a big vector held as six-bit slots (a 20000x7 count-min's
    cells) is set in place, 64 slots per C call, instead of unpacking every slot and packing
    them again; a value above 63 in a run still leaves six bits; reads of many slots read
    them one by one; deltas and previous values are exactly those of the one-byte form."""
    rng = np.random.default_rng(5)
    slots = 140_000
    start = rng.integers(0, 20, slots).astype(np.uint8)
    vector = MaxVector.from_dense(start.copy(), owned=False)
    with one_byte_slots():
        plain = MaxVector.from_dense(start.copy(), owned=False)
    assert vector.six_histogram() is not None and plain.six_histogram() is None
    held = vector._dense  # (the six-bit buffer: set in place, it stays the same object)
    for step in range(40):
        size = int(rng.integers(65, 1000))
        indices = rng.integers(0, slots, size)
        top = 64 if step == 39 else 40
        values = rng.integers(1, top + 1, size)
        as_lists = step % 2 == 0
        args = (indices.tolist(), values.tolist()) if as_lists else (
            indices.astype(np.uint32), values.astype(np.uint8))  # fmt: skip
        delta, previous = vector.merge_pairs_tracking(*args)
        with one_byte_slots():
            plain_delta, plain_previous = plain.merge_pairs_tracking(*args)
        assert delta == plain_delta and previous == plain_previous
        for held_pairs in (delta, previous):  # (joined chunk by chunk: still ascending)
            assert bool(np.all(np.diff(held_pairs.pairs()[0].astype(np.int64)) > 0))
        if step < 39:
            assert vector.six_histogram() is not None
            assert vector._dense is held
        probe = rng.integers(0, slots, 500)
        assert vector.values_at(probe).tolist() == plain.values_at(probe).tolist()
    assert vector.six_histogram() is None  # (the last run held a 64)
    assert vector == plain
