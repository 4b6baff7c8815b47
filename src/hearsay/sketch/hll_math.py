"""HyperLogLog math that gives the numbers Redis gives: register rule, estimator, sizing.

Redis's PFADD hashes a member with MurmurHash64A (seed ``0xadc83b19``), takes the low ``p``
bits as the register index and, as ``hllPatLen`` does, counts the run of zero bits above them
(with bit ``64 - p`` forced to 1 so the run ends) plus one: the *rank*. A register keeps the
largest rank it has seen, so union is element-wise max, which is the lattice's merge.
PFCOUNT (Redis >= 5) estimates the cardinality from the histogram of register values with
Otmar Ertl's improved estimator (``hllSigma`` / ``hllTau``), rounded with ``llroundl``.
:func:`count` reproduces that computation operation for operation in IEEE doubles, so for
``p = 14`` it returns exactly Redis's PFCOUNT; the same formulas generalise to any ``p`` in
4..18 with ``q = 64 - p``.

Everything here is a stateless function over numpy arrays. Registers are ``np.uint8`` arrays
of length ``2**p``; the lattice keeps them as a sparse max-vector and merges the
``(indices, ranks)`` pairs that :func:`index_rank` produces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.sketch import murmur
from hearsay.sketch.murmur import REDIS_HLL_SEED

__all__ = [
    "PRECISION_MAX",
    "PRECISION_MIN",
    "REDIS_PRECISION",
    "check_precision",
    "count",
    "count_histogram",
    "count_pairs",
    "error_bound",
    "histogram",
    "index_rank",
    "max_rank",
    "members_index_rank",
    "precision_for_error",
    "register_count",
    "registers_from_pairs",
]

PRECISION_MIN = 4
PRECISION_MAX = 18
REDIS_PRECISION = 14
"""Redis's fixed precision: 16384 registers of 6 bits."""

_ALPHA_INF = 0.721347520444481703680
"""0.5 / ln(2), the estimator's bias constant for m -> infinity (Redis's HLL_ALPHA_INF)."""

_REGISTER_VALUE_MAX = 63
"""Registers are 6-bit in Redis's encoding; no rank can exceed 64 - 4 + 1 = 61 anyway."""
_FEW_PAIRS = 64
"""Up to this many registers are counted with Python ints (:func:`count_pairs`)."""


def check_precision(p: int) -> int:
    """Return ``p`` if it is a supported precision, else raise SketchParameterError."""
    if isinstance(p, bool) or not isinstance(p, int | np.integer):
        raise SketchParameterError(f"HLL precision must be an integer, got {p!r}")
    if not PRECISION_MIN <= p <= PRECISION_MAX:
        raise SketchParameterError(
            f"HLL precision must be in {PRECISION_MIN}..{PRECISION_MAX}, got {p}"
        )
    return int(p)


def register_count(p: int) -> int:
    """Number of registers at precision ``p``: ``2**p``."""
    return 1 << check_precision(p)


def max_rank(p: int) -> int:
    """Largest rank a hash can produce at precision ``p``: ``64 - p + 1``."""
    return 64 - check_precision(p) + 1


def index_rank(
    hashes: npt.NDArray[np.uint64], p: int = REDIS_PRECISION
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
    """Register index and rank of each 64-bit hash, exactly as Redis's ``hllPatLen``.

    index = the low ``p`` bits; rank = 1 + number of trailing zeros of
    ``(hash >> p) | (1 << (64 - p))``, so ``1 <= rank <= 64 - p + 1``. PFADD's members take
    :func:`members_index_rank` (the same rule in C); this is its numpy statement.
    """
    p = check_precision(p)
    h = np.asarray(hashes)
    if h.dtype != np.uint64:
        raise SketchParameterError(f"hashes must be a uint64 array, got dtype {h.dtype}")
    indices = np.empty(h.size, dtype=np.uint32)
    np.bitwise_and(h, np.uint64((1 << p) - 1), out=indices, casting="unsafe")
    w = h >> np.uint64(p)
    w |= np.uint64(1 << (64 - p))
    # w ^ (w - 1) keeps the bits up to and including the lowest set one: its popcount is the
    # number of trailing zeros plus one, which is the rank.
    w ^= w - np.uint64(1)
    return indices, np.bitwise_count(w)


def members_index_rank(
    members: Sequence[bytes], p: int = REDIS_PRECISION, seed: int = REDIS_HLL_SEED
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
    """Hash ``members`` (bytes, as Redis receives them) and return their (indices, ranks).

    One C call (:func:`hearsay.sketch.murmur.index_rank`) fills both arrays.
    """
    p = check_precision(p)
    indices = np.empty(len(members), dtype=np.uint32)
    ranks = np.empty(len(members), dtype=np.uint8)
    murmur.index_rank(members, p, seed, indices, ranks)
    return indices, ranks


def registers_from_pairs(
    indices: npt.NDArray[np.uint32], ranks: npt.NDArray[np.uint8], p: int = REDIS_PRECISION
) -> npt.NDArray[np.uint8]:
    """Dense registers holding, per index, the max rank among the given pairs (else 0)."""
    m = register_count(p)
    idx = np.asarray(indices)
    rk = np.asarray(ranks)
    if idx.shape != rk.shape or idx.ndim != 1:
        raise BoundsError("indices and ranks must be 1-D arrays of the same length")
    if idx.size and (int(idx.max()) >= m or int(idx.min()) < 0):
        raise BoundsError(f"register index out of range for {m} registers")
    if rk.size and (int(rk.max()) > _REGISTER_VALUE_MAX or int(rk.min()) < 0):
        raise BoundsError(f"rank out of range 0..{_REGISTER_VALUE_MAX}")
    registers = np.zeros(m, dtype=np.uint8)
    np.maximum.at(registers, idx.astype(np.intp), rk.astype(np.uint8))
    return registers


def _sigma(x: float) -> float:
    """Ertl's sigma(x) for the share of zero registers (Redis's ``hllSigma``)."""
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    # The series converges (z stops changing) in well under 100 doubling steps for x < 1.
    for _ in range(2000):
        x *= x
        z_prev = z
        z += x * y
        y += y
        if z_prev == z:
            break
    return z


def _tau(x: float) -> float:
    """Ertl's tau(x) for the share of non-saturated registers (Redis's ``hllTau``)."""
    if x in (0.0, 1.0):
        return 0.0
    y = 1.0
    z = 1.0 - x
    for _ in range(2000):
        x = math.sqrt(x)
        z_prev = z
        y *= 0.5
        z -= math.pow(1.0 - x, 2) * y
        if z_prev == z:
            break
    return z / 3.0


def _llround(x: float) -> int:
    """C's ``llroundl`` for a finite non-negative double: nearest integer, halves up."""
    f = math.floor(x)
    # x - floor(x) is exact in doubles, so the comparison with one half is exact too.
    return f + 1 if x - f >= 0.5 else f


# Redis's estimate overflows when it reaches 2**63 (or is infinite because every register is
# saturated): llroundl then yields LLONG_MIN on x86-64, and PFCOUNT, which replies with a signed
# 64-bit integer, answers -2**63. Only reachable with hand-made registers, never by hashing.
_OVERFLOW_COUNT = -(1 << 63)
_LLONG_LIMIT = float(1 << 63)


def histogram(registers: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Register-value histogram (64 bins, like Redis's ``reghisto``)."""
    regs = np.asarray(registers)
    if regs.ndim != 1:
        raise BoundsError("registers must be a 1-D array")
    if regs.dtype != np.uint8:
        raise BoundsError(f"registers must be a uint8 array, got dtype {regs.dtype}")
    hist = np.bincount(regs, minlength=_REGISTER_VALUE_MAX + 1)
    if hist.size > _REGISTER_VALUE_MAX + 1:
        raise BoundsError(f"register value above {_REGISTER_VALUE_MAX}")
    return hist.astype(np.int64)


def count(registers: npt.NDArray[np.uint8]) -> int:
    """Cardinality estimate of ``registers`` (length ``2**p``), as Redis's ``hllCount``.

    The result is PFCOUNT's reply. Values above ``64 - p + 1`` cannot come from hashing;
    like Redis (whose histogram has 64 bins but whose estimator reads only bins 0..q+1) they
    are counted nowhere. Register sets so saturated that the estimate reaches 2**63 give
    ``-2**63``, which is what Redis replies for them (a signed overflow).
    """
    regs = np.asarray(registers)
    m_int = int(regs.shape[0]) if regs.ndim == 1 else -1
    if m_int < 1 or m_int & (m_int - 1):
        raise SketchParameterError("registers must be a 1-D array whose length is 2**p")
    return count_histogram(histogram(regs).tolist(), check_precision(m_int.bit_length() - 1))


def count_pairs(indices: npt.NDArray[np.integer], values: npt.NDArray[np.integer], p: int) -> int:
    """:func:`count` of the registers whose non-zero ones are these pairs (values above 63
    read as 63, indices at or beyond ``2**p`` ignored), without building the register array:
    a sparse HLL's few pairs are counted from their own histogram."""
    m = register_count(p)
    if indices.size <= _FEW_PAIRS:  # a small HLL: Python ints beat numpy's fixed costs
        hist = [0] * (_REGISTER_VALUE_MAX + 1)
        kept = 0
        for index, value in zip(indices.tolist(), values.tolist(), strict=True):
            if index < m:
                hist[min(value, _REGISTER_VALUE_MAX)] += 1
                kept += 1
        hist[0] = m - kept
        return count_histogram(hist, p)
    inside = indices < m
    kept_values = values if bool(inside.all()) else values[inside]
    bins = np.bincount(
        np.minimum(kept_values, _REGISTER_VALUE_MAX).astype(np.intp),
        minlength=_REGISTER_VALUE_MAX + 1,
    )
    bins[0] = m - kept_values.size  # (the pairs are non-zero and unique)
    return count_histogram(bins.tolist(), p)


def count_histogram(hist: Sequence[int], p: int) -> int:
    """The estimate from a register-value histogram (64 bins) of ``2**p`` registers."""
    q = 64 - p
    m = float(1 << p)
    z = m * _tau((m - hist[q + 1]) / m)
    for j in range(q, 0, -1):
        z += hist[j]
        z *= 0.5
    z += m * _sigma(hist[0] / m)
    if z == 0.0:
        return _OVERFLOW_COUNT
    estimate = _ALPHA_INF * m * m / z
    if estimate >= _LLONG_LIMIT:
        return _OVERFLOW_COUNT
    # Redis stores llroundl's result in a double before returning it as uint64.
    return int(float(_llround(estimate)))


def error_bound(p: int) -> float:
    """Standard relative error of the estimate at precision ``p``: ``1.04 / sqrt(2**p)``."""
    return 1.04 / math.sqrt(register_count(p))


def precision_for_error(rel_error: float) -> int:
    """Smallest precision whose :func:`error_bound` is at most ``rel_error``.

    Raises SketchParameterError when ``rel_error`` is not a positive finite number or is
    below what the largest supported precision achieves.
    """
    if isinstance(rel_error, bool) or not isinstance(rel_error, int | float | np.floating):
        raise SketchParameterError(f"relative error must be a number, got {rel_error!r}")
    err = float(rel_error)
    if not math.isfinite(err) or err <= 0.0:
        raise SketchParameterError(f"relative error must be positive and finite, got {err}")
    for p in range(PRECISION_MIN, PRECISION_MAX + 1):
        if error_bound(p) <= err:
            return p
    raise SketchParameterError(
        f"relative error {err} is below {error_bound(PRECISION_MAX):.6g}, "
        f"the bound at the largest precision {PRECISION_MAX}"
    )


def fold(registers: npt.NDArray[np.uint8], p: int) -> npt.NDArray[np.uint8]:
    """The registers of the same members at the lower precision ``p``, exactly.

    A register ``j`` of precision ``P > p`` holds hashes whose low ``P`` bits are ``j``. At
    precision ``p`` they land in register ``j mod 2**p``, and the bits ``j >> p`` are the first
    ones the rank counts: when they are not all zero the rank is fixed by them (trailing zeros
    + 1), whatever the register held; when they are, it is the old rank plus ``P - p``. So the
    result equals building the HLL at ``p`` from the same members (tested against that).
    """
    size = registers.size
    high_p = size.bit_length() - 1
    if size != 1 << high_p or not PRECISION_MIN <= high_p <= PRECISION_MAX:
        raise BoundsError(f"{size} registers is not an HLL of a supported precision")
    p = check_precision(p)
    if p > high_p:
        raise SketchParameterError(f"cannot unfold an HLL of precision {high_p} to {p}")
    if p == high_p:
        return registers
    shift = high_p - p
    # Row ``hi`` of the (2**shift, 2**p) view holds the registers whose top bits are ``hi``.
    rows = registers.reshape(1 << shift, 1 << p)
    hi = np.arange(1 << shift, dtype=np.uint64)
    hi_rank = np.bitwise_count(hi ^ (hi - np.uint64(1))).astype(np.uint8)  # ctz(hi) + 1
    ranks = np.where(rows > 0, hi_rank[:, None], np.uint8(0))
    ranks[0] = np.where(rows[0] > 0, rows[0] + np.uint8(shift), np.uint8(0))  # hi == 0
    folded: npt.NDArray[np.uint8] = ranks.max(axis=0).astype(np.uint8)
    return folded
