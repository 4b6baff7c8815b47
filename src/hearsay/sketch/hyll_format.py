"""Redis's own string form of a HyperLogLog (``HYLL``), to exchange HLLs with Redis.

A Redis HLL is a plain string: ``GET`` on a PFADD key returns it and ``SET`` of a valid one
makes a key PFCOUNT accepts. Supporting the format lets hearsay import sketches built by Redis
and hand its own back (``GET`` / ``SET``, DUMP-free migration, differential tests).

Layout (Redis ``src/hyperloglog.c``), always ``p = 14``, 16384 registers:

- 16-byte header: ``b"HYLL"``, one encoding byte (0 dense, 1 sparse), 3 reserved bytes, and
  the cached cardinality as a little-endian uint64 whose top bit (bit 7 of byte 15) set means
  "stale, recompute".
- dense: 16384 6-bit registers packed LSB first, 12288 bytes (4 registers in 3 bytes).
- sparse: a run-length code of opcodes; ``00xxxxxx`` ZERO (1..64 zero registers),
  ``01xxxxxx yyyyyyyy`` XZERO (1..16384 zero registers, 14-bit length), ``1vvvvvxx`` VAL
  (value 1..32 repeated 1..4 times). The runs must cover exactly 16384 registers.

:func:`export_redis` writes the sparse form when Redis itself would still hold the value
sparse (every register <= 32 and the whole string within ``hll-sparse-max-bytes``, default
3000), else dense, and marks the cached cardinality stale so Redis recomputes it.
:func:`import_redis` accepts both forms and raises :class:`DecodeError` for anything else.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hearsay.base.errors import BoundsError, DecodeError, SketchParameterError

__all__ = [
    "DENSE_SIZE",
    "ENCODING_DENSE",
    "ENCODING_SPARSE",
    "HEADER_SIZE",
    "MAGIC",
    "REGISTERS",
    "SPARSE_MAX_BYTES",
    "export_redis",
    "import_redis",
]

MAGIC = b"HYLL"
ENCODING_DENSE = 0
ENCODING_SPARSE = 1
HEADER_SIZE = 16
REGISTERS = 1 << 14
_BITS = 6
DENSE_SIZE = HEADER_SIZE + (REGISTERS * _BITS + 7) // 8
SPARSE_MAX_BYTES = 3000
"""Redis's default ``hll-sparse-max-bytes``: above this a sparse HLL is promoted to dense."""

_DENSE_VALUE_MAX = (1 << _BITS) - 1
_SPARSE_VAL_MAX_VALUE = 32
_SPARSE_VAL_MAX_LEN = 4
_SPARSE_ZERO_MAX_LEN = 64
_SPARSE_XZERO_MAX_LEN = 16384
# Every opcode covers at least one register and takes at most 2 bytes, so no valid sparse
# string is longer than this.
_SPARSE_SIZE_MAX = HEADER_SIZE + 2 * REGISTERS

_STALE_CARDINALITY = bytes(7) + b"\x80"


def _header(encoding: int) -> bytes:
    return MAGIC + bytes((encoding, 0, 0, 0)) + _STALE_CARDINALITY


def _check_registers(registers: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    regs = np.asarray(registers)
    if regs.ndim != 1 or regs.shape[0] != REGISTERS:
        raise SketchParameterError(
            f"Redis HLLs have exactly {REGISTERS} registers (p=14), got shape {regs.shape}"
        )
    if regs.dtype != np.uint8:
        raise BoundsError(f"registers must be a uint8 array, got dtype {regs.dtype}")
    if int(regs.max()) > _DENSE_VALUE_MAX:
        raise BoundsError(f"register value above {_DENSE_VALUE_MAX} cannot be stored in 6 bits")
    return regs


def _pack_dense(regs: npt.NDArray[np.uint8]) -> bytes:
    r = regs.reshape(-1, 4).astype(np.uint16)
    out = np.empty((r.shape[0], 3), dtype=np.uint16)
    out[:, 0] = r[:, 0] | (r[:, 1] << 6)
    out[:, 1] = (r[:, 1] >> 2) | (r[:, 2] << 4)
    out[:, 2] = (r[:, 2] >> 4) | (r[:, 3] << 2)
    return (out & 0xFF).astype(np.uint8).tobytes()


def _unpack_dense(body: bytes) -> npt.NDArray[np.uint8]:
    b = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3).astype(np.uint16)
    regs = np.empty((b.shape[0], 4), dtype=np.uint16)
    regs[:, 0] = b[:, 0]
    regs[:, 1] = (b[:, 0] >> 6) | (b[:, 1] << 2)
    regs[:, 2] = (b[:, 1] >> 4) | (b[:, 2] << 4)
    regs[:, 3] = b[:, 2] >> 2
    return (regs & _DENSE_VALUE_MAX).astype(np.uint8).reshape(-1)


def _runs(regs: npt.NDArray[np.uint8]) -> tuple[list[int], list[int]]:
    """Values and lengths of the maximal runs of equal registers."""
    change = np.flatnonzero(regs[1:] != regs[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [regs.shape[0]])))
    return regs[starts].tolist(), lengths.tolist()


def _sparse_body_size(values: list[int], lengths: list[int]) -> int:
    size = 0
    for value, length in zip(values, lengths, strict=True):
        if value == 0:
            size += 1 if length <= _SPARSE_ZERO_MAX_LEN else 2
        else:
            size += -(-length // _SPARSE_VAL_MAX_LEN)
    return size


def _encode_sparse(values: list[int], lengths: list[int]) -> bytes:
    out = bytearray()
    for value, length in zip(values, lengths, strict=True):
        if value == 0:
            # A run never exceeds 16384 registers, so one XZERO always suffices.
            if length <= _SPARSE_ZERO_MAX_LEN:
                out.append(length - 1)
            else:
                n = length - 1
                out.append(0x40 | (n >> 8))
                out.append(n & 0xFF)
        else:
            left = length
            while left > 0:
                chunk = min(left, _SPARSE_VAL_MAX_LEN)
                out.append(0x80 | ((value - 1) << 2) | (chunk - 1))
                left -= chunk
    return bytes(out)


def export_redis(registers: npt.NDArray[np.uint8]) -> bytes:
    """Redis's ``HYLL`` string for 16384 registers, sparse when Redis would keep it sparse.

    The cached cardinality is marked stale: Redis recomputes it on the first PFCOUNT.
    """
    regs = _check_registers(registers)
    if int(regs.max()) <= _SPARSE_VAL_MAX_VALUE:
        values, lengths = _runs(regs)
        if HEADER_SIZE + _sparse_body_size(values, lengths) <= SPARSE_MAX_BYTES:
            return _header(ENCODING_SPARSE) + _encode_sparse(values, lengths)
    return _header(ENCODING_DENSE) + _pack_dense(regs)


def _decode_sparse(body: bytes) -> npt.NDArray[np.uint8]:
    regs = np.zeros(REGISTERS, dtype=np.uint8)
    idx = 0
    pos = 0
    end = len(body)
    # Each iteration consumes at least one byte, so the loop is bounded by len(body).
    while pos < end:
        op = body[pos]
        if op & 0x80:  # VAL 1vvvvvxx
            value = ((op >> 2) & 0x1F) + 1
            run = (op & 0x03) + 1
            if idx + run > REGISTERS:
                raise DecodeError(
                    f"corrupt sparse HLL: VAL opcode at byte {HEADER_SIZE + pos} runs past "
                    f"register {REGISTERS}"
                )
            regs[idx : idx + run] = value
            pos += 1
        elif op & 0x40:  # XZERO 01xxxxxx yyyyyyyy
            if pos + 1 >= end:
                raise DecodeError(
                    f"truncated sparse HLL: XZERO opcode at byte {HEADER_SIZE + pos} lacks "
                    "its second byte"
                )
            run = (((op & 0x3F) << 8) | body[pos + 1]) + 1
            pos += 2
        else:  # ZERO 00xxxxxx
            run = (op & 0x3F) + 1
            pos += 1
        idx += run
        if idx > REGISTERS:
            raise DecodeError(f"corrupt sparse HLL: opcodes cover more than {REGISTERS} registers")
    if idx != REGISTERS:
        raise DecodeError(
            f"truncated sparse HLL: opcodes cover {idx} registers, expected {REGISTERS}"
        )
    return regs


def import_redis(data: bytes) -> npt.NDArray[np.uint8]:
    """The 16384 registers of a Redis ``HYLL`` string (dense or sparse).

    Raises :class:`DecodeError` for anything Redis would not accept as a valid HLL (wrong
    magic or encoding, wrong dense length, sparse opcodes not covering exactly 16384
    registers, truncation, oversize). The cached cardinality is ignored.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"a Redis HLL is a byte string, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) < HEADER_SIZE:
        raise DecodeError(
            f"not a Redis HLL: {len(raw)} bytes is shorter than the {HEADER_SIZE}-byte header"
        )
    if raw[:4] != MAGIC:
        raise DecodeError(f"not a Redis HLL: magic is {raw[:4]!r}, expected {MAGIC!r}")
    encoding = raw[4]
    body = raw[HEADER_SIZE:]
    if encoding == ENCODING_DENSE:
        if len(raw) != DENSE_SIZE:
            raise DecodeError(
                f"corrupt dense Redis HLL: {len(raw)} bytes, expected exactly {DENSE_SIZE}"
            )
        return _unpack_dense(body)
    if encoding == ENCODING_SPARSE:
        if len(raw) > _SPARSE_SIZE_MAX:
            raise DecodeError(
                f"corrupt sparse Redis HLL: {len(raw)} bytes is more than any valid sparse "
                f"encoding ({_SPARSE_SIZE_MAX})"
            )
        return _decode_sparse(body)
    raise DecodeError(f"not a Redis HLL: unknown encoding byte {encoding}")
