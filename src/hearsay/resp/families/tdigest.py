"""t-digest commands as RedisBloom's rm_tdigest.c answers them: TDIGEST.CREATE, RESET, ADD,
MERGE, MIN, MAX, QUANTILE, CDF, TRIMMED_MEAN, RANK, REVRANK, BYRANK, BYREVRANK, INFO.

The error texts are RedisBloom's (they live here rather than in :mod:`hearsay.resp.messages`
because they are this family's alone). Departures: see :mod:`hearsay.engine.families.tdigest`;
COMPRESSION is at most :data:`~hearsay.sketch.schemas.TDIGEST_COMPRESSION_MAX`; one TDIGEST.ADD
carries at most :data:`VALUES_PER_CALL_MAX` values (so no request holds the node for long).
"""

from __future__ import annotations

import math
from typing import Final

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.engine.families import tdigest
from hearsay.engine.families.common import KeyExistsError, KeyMissingError
from hearsay.engine.interfaces import WaitForAcks
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry, ErrorReplies
from hearsay.resp.key_commands import db_of
from hearsay.resp.parser import parse_double, parse_doubles, parse_integer
from hearsay.resp.replies import OK, Map, Reply, SimpleString
from hearsay.sketch import tdigest as td
from hearsay.sketch.schemas import TDIGEST_COMPRESSION_MAX

__all__ = ["VALUES_PER_CALL_MAX", "install_tdigest_commands"]

VALUES_PER_CALL_MAX: Final = 100_000
"""Values one TDIGEST.ADD may carry (RedisBloom has no bound): a call that overflows the
slice's buffer compresses every value it brings in one pass, a microsecond or two each in
Python, so this keeps a call to a fraction of a second (a client sends more in more calls)."""

KEY_EXISTS: Final = "ERR T-Digest: key already exists"
KEY_MISSING: Final = "ERR T-Digest: key does not exist"
WRONG_KEYWORD: Final = "ERR T-Digest: wrong keyword"
PARSING_COMPRESSION: Final = "ERR T-Digest: error parsing compression parameter"
COMPRESSION_POSITIVE: Final = "ERR T-Digest: compression parameter needs to be a positive integer"
COMPRESSION_TOO_LARGE: Final = (
    f"ERR T-Digest: compression parameter needs to be at most {TDIGEST_COMPRESSION_MAX}"
)
PARSING_VAL: Final = "ERR T-Digest: error parsing val parameter"
VAL_FINITE: Final = "ERR T-Digest: val parameter needs to be a finite number"
OVERFLOW: Final = "ERR T-Digest: overflow detected"
PARSING_NUMKEYS: Final = "ERR T-Digest: error parsing numkeys"
NUMKEYS_POSITIVE: Final = "ERR T-Digest: numkeys needs to be a positive integer"
PARSING_VALUE: Final = "ERR T-Digest: error parsing value"
PARSING_RANK: Final = "ERR T-Digest: error parsing rank"
RANK_NEGATIVE: Final = "ERR T-Digest: rank needs to be non negative"
PARSING_QUANTILE: Final = "ERR T-Digest: error parsing quantile"
QUANTILE_RANGE: Final = "ERR T-Digest: quantile should be in [0,1]"
PARSING_CDF: Final = "ERR T-Digest: error parsing cdf"
PARSING_LOW_CUT: Final = "ERR T-Digest: error parsing low_cut_percentile"
PARSING_HIGH_CUT: Final = "ERR T-Digest: error parsing high_cut_percentile"
CUT_RANGE: Final = "ERR T-Digest: low_cut_percentile and high_cut_percentile should be in [0,1]"
CUT_ORDER: Final = "ERR T-Digest: low_cut_percentile should be lower than high_cut_percentile"
TOO_MANY_VALUES: Final = (
    f"ERR T-Digest: too many values for one call (at most {VALUES_PER_CALL_MAX})"
)


def _compression(arg: bytes) -> int:
    value = parse_integer(arg)
    if value is None:
        raise CommandError(PARSING_COMPRESSION)
    if value <= 0:
        raise CommandError(COMPRESSION_POSITIVE)
    if value > TDIGEST_COMPRESSION_MAX:
        raise CommandError(COMPRESSION_TOO_LARGE)
    return value


def _values(args: list[bytes]) -> list[float] | str:
    """TDIGEST.ADD's values, or the error text of the first bad one."""
    parsed = parse_doubles(args)
    if parsed is not None and not any(map(math.isinf, parsed)):
        return parsed
    out: list[float] = []
    for arg in args:
        value = parse_double(arg)
        if value is None:
            return PARSING_VAL
        if math.isinf(value):
            return VAL_FINITE
        out.append(value)
    return out


def _doubles(args: list[bytes], error: str) -> list[float]:
    """Every argument as a double, else ``error``: :func:`parse_doubles` (matched by ``map``,
    no Python call per value: a TDIGEST.QUANTILE of a million quantiles spent ~0.6 s on a
    loop of :func:`parse_double`)."""
    out = parse_doubles(args)
    if out is None:
        raise CommandError(error)
    return out


def install_tdigest_commands(registry: CommandRegistry) -> None:
    """Register the TDIGEST.* commands on ``registry``."""
    group = "tdigest"
    writes, reads = ("write", "denyoom"), ("readonly", "fast")
    missing: ErrorReplies = {KeyMissingError: KEY_MISSING, BoundsError: OVERFLOW}
    creates: ErrorReplies = {
        KeyExistsError: KEY_EXISTS,
        SketchParameterError: COMPRESSION_TOO_LARGE,
    }

    def tdigest_add_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        """A pipelined run of TDIGEST.ADD on one key: one read and one write for the run
        (the slice's pairs are exactly those of the calls in turn)."""
        calls: list[list[float]] = []
        for args in run:
            if len(args) - 2 > VALUES_PER_CALL_MAX:
                return [_one(ctx, args) for args in run]
            parsed = _values(args[2:])
            if isinstance(parsed, str):
                return [_one(ctx, args) for args in run]
            calls.append(parsed)
        tdigest.add(db_of(ctx), run[0][1], calls, ctx.now_ms)
        return [OK] * len(run)

    def _one(ctx: ClientContext, args: list[bytes]) -> Reply:
        reply = registry.dispatch(ctx, args)
        assert not isinstance(reply, WaitForAcks), "a TDIGEST command never waits"
        return reply

    @registry.command("TDIGEST.CREATE", arity=-2, flags=writes, first_key=1, last_key=1,
                      step=1, group=group, since="2.4.0",
                      errors=creates,
                      summary="Creates an empty t-digest (COMPRESSION at most 10000).")  # fmt: skip
    def tdigest_create(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) not in (2, 4):
            raise CommandError(messages.wrong_number_of_args("tdigest.create"))
        database = db_of(ctx)
        compression = 100
        if len(args) == 4:
            tdigest.check_absent(database, args[1], ctx.now_ms)
            if args[2].upper() != b"COMPRESSION":
                raise CommandError(WRONG_KEYWORD)
            compression = _compression(args[3])
        tdigest.create(database, args[1], compression, ctx.now_ms)
        return OK

    @registry.command("TDIGEST.RESET", arity=2, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="2.4.0", errors=missing,
                      summary="Empties a t-digest on every node, as DEL does (a new epoch; "
                      "concurrent adds elsewhere are dropped with it).")  # fmt: skip
    def tdigest_reset(ctx: ClientContext, args: list[bytes]) -> Reply:
        tdigest.reset(db_of(ctx), args[1], ctx.now_ms)
        return OK

    @registry.command("TDIGEST.ADD", arity=-3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="2.4.0", errors=missing, run=tdigest_add_run,
                      summary="Adds values to a t-digest (this node's own slice; at most "
                      "100000 a call).")  # fmt: skip
    def tdigest_add(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        if len(args) - 2 > VALUES_PER_CALL_MAX:
            tdigest.check(database, args[1], ctx.now_ms)  # the key first, as for a bad value
            raise CommandError(TOO_MANY_VALUES)
        parsed = _values(args[2:])
        if isinstance(parsed, str):
            tdigest.check(database, args[1], ctx.now_ms)  # RedisBloom checks the key first
            raise CommandError(parsed)
        tdigest.add(database, args[1], [parsed], ctx.now_ms)
        return OK

    @registry.command("TDIGEST.MERGE", arity=-4, flags=writes, first_key=1, last_key=1,
                      step=1, group=group, since="2.4.0", errors=missing,
                      summary="Merges t-digests into a destination (with OVERRIDE or another "
                      "COMPRESSION, the destination is replaced as by RESET).")  # fmt: skip
    def tdigest_merge(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        tdigest.check_kind(database, args[1], ctx.now_ms)
        numkeys = parse_integer(args[2])
        if numkeys is None:
            raise CommandError(PARSING_NUMKEYS)
        if numkeys <= 0:
            raise CommandError(NUMKEYS_POSITIVE)
        if numkeys > len(args) - 3:
            raise CommandError(messages.wrong_number_of_args("tdigest.merge"))
        rest = [arg.upper() for arg in args[3 + numkeys :]]
        compression: int | None = None
        override = b"OVERRIDE" in rest
        if rest:
            if b"COMPRESSION" in rest:
                at = rest.index(b"COMPRESSION")
                if at + 1 >= len(rest):
                    raise CommandError(messages.wrong_number_of_args("tdigest.merge"))
                compression = _compression(args[3 + numkeys + at + 1])
            elif not override:
                raise CommandError(WRONG_KEYWORD)
        sources = args[3 : 3 + numkeys]
        tdigest.merge(
            database,
            args[1],
            sources,
            compression=compression,
            override=override,
            now_ms=ctx.now_ms,
        )
        return OK

    @registry.command("TDIGEST.MIN", arity=2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.4.0", errors=missing,
                      summary="The smallest value added (nan when empty).")  # fmt: skip
    def tdigest_min(ctx: ClientContext, args: list[bytes]) -> Reply:
        digest = tdigest.digest(db_of(ctx), args[1], ctx.now_ms)
        return digest.minimum if len(digest) else math.nan

    @registry.command("TDIGEST.MAX", arity=2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.4.0", errors=missing,
                      summary="The largest value added (nan when empty).")  # fmt: skip
    def tdigest_max(ctx: ClientContext, args: list[bytes]) -> Reply:
        digest = tdigest.digest(db_of(ctx), args[1], ctx.now_ms)
        return digest.maximum if len(digest) else math.nan

    @registry.command("TDIGEST.QUANTILE", arity=-3, flags=reads, first_key=1, last_key=1,
                      step=1, group=group, since="2.4.0", errors=missing,
                      summary="Estimated values at quantiles.")  # fmt: skip
    def tdigest_quantile(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        tdigest.check(database, args[1], ctx.now_ms)
        quantiles = _doubles(args[2:], PARSING_QUANTILE)
        if any(not 0.0 <= q <= 1.0 for q in quantiles):
            raise CommandError(QUANTILE_RANGE)
        reads = td.Reads.of(tdigest.digest(database, args[1], ctx.now_ms))
        return [reads.quantile(q) for q in quantiles]

    @registry.command("TDIGEST.CDF", arity=-3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.4.0", errors=missing,
                      summary="Estimated fractions of values below each value (plus half of "
                      "those equal).")  # fmt: skip
    def tdigest_cdf(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        tdigest.check(database, args[1], ctx.now_ms)
        points = _doubles(args[2:], PARSING_CDF)
        reads = td.Reads.of(tdigest.digest(database, args[1], ctx.now_ms))
        return [reads.cdf(x) for x in points]

    @registry.command("TDIGEST.TRIMMED_MEAN", arity=4, flags=reads, first_key=1, last_key=1,
                      step=1, group=group, since="2.4.0", errors=missing,
                      summary="The mean of the values between two quantiles.")  # fmt: skip
    def tdigest_trimmed_mean(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        tdigest.check(database, args[1], ctx.now_ms)
        low = parse_double(args[2])
        if low is None:
            raise CommandError(PARSING_LOW_CUT)
        high = parse_double(args[3])
        if high is None:
            raise CommandError(PARSING_HIGH_CUT)
        if not (0.0 <= low <= 1.0 and 0.0 <= high <= 1.0):
            raise CommandError(CUT_RANGE)
        if low >= high:
            raise CommandError(CUT_ORDER)
        return td.trimmed_mean(tdigest.digest(database, args[1], ctx.now_ms), low, high)

    def _ranks(ctx: ClientContext, args: list[bytes], reverse: bool) -> Reply:
        database = db_of(ctx)
        tdigest.check(database, args[1], ctx.now_ms)
        points = _doubles(args[2:], PARSING_VALUE)
        reads = td.Reads.of(tdigest.digest(database, args[1], ctx.now_ms))
        return [reads.rank(x, reverse) for x in points]

    def _by_ranks(ctx: ClientContext, args: list[bytes], reverse: bool) -> Reply:
        database = db_of(ctx)
        tdigest.check(database, args[1], ctx.now_ms)
        wanted: list[int] = []
        for arg in args[2:]:
            value = parse_integer(arg)
            if value is None:
                raise CommandError(PARSING_RANK)
            if value < 0:
                raise CommandError(RANK_NEGATIVE)
            wanted.append(value)
        reads = td.Reads.of(tdigest.digest(database, args[1], ctx.now_ms))
        return [reads.by_rank(r, reverse) for r in wanted]

    @registry.command("TDIGEST.RANK", arity=-3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.4.0", errors=missing,
                      summary="Estimated ranks of values (-1 below the min).")  # fmt: skip
    def tdigest_rank(ctx: ClientContext, args: list[bytes]) -> Reply:
        return _ranks(ctx, args, reverse=False)

    @registry.command("TDIGEST.REVRANK", arity=-3, flags=reads, first_key=1, last_key=1,
                      step=1, group=group, since="2.4.0", errors=missing,
                      summary="Estimated reverse ranks of values.")  # fmt: skip
    def tdigest_revrank(ctx: ClientContext, args: list[bytes]) -> Reply:
        return _ranks(ctx, args, reverse=True)

    @registry.command("TDIGEST.BYRANK", arity=-3, flags=reads, first_key=1, last_key=1,
                      step=1, group=group, since="2.4.0", errors=missing,
                      summary="Estimated values at ranks (inf past the end).")  # fmt: skip
    def tdigest_byrank(ctx: ClientContext, args: list[bytes]) -> Reply:
        return _by_ranks(ctx, args, reverse=False)

    @registry.command("TDIGEST.BYREVRANK", arity=-3, flags=reads, first_key=1, last_key=1,
                      step=1, group=group, since="2.4.0", errors=missing,
                      summary="Estimated values at reverse ranks (-inf past the end).")  # fmt: skip
    def tdigest_byrevrank(ctx: ClientContext, args: list[bytes]) -> Reply:
        return _by_ranks(ctx, args, reverse=True)

    @registry.command("TDIGEST.INFO", arity=2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.4.0", errors=missing,
                      summary="Compression, capacity, merged and unmerged nodes and weights "
                      "summed over every node's slice.")  # fmt: skip
    def tdigest_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        info = tdigest.info(db_of(ctx), args[1], ctx.now_ms)
        return Map(
            [
                (SimpleString("Compression"), info.compression),
                (SimpleString("Capacity"), info.capacity),
                (SimpleString("Merged nodes"), info.merged_nodes),
                (SimpleString("Unmerged nodes"), info.unmerged_nodes),
                (SimpleString("Merged weight"), info.merged_weight),
                (SimpleString("Unmerged weight"), info.unmerged_weight),
                (SimpleString("Observations"), info.merged_weight + info.unmerged_weight),
                (SimpleString("Total compressions"), info.total_compressions),
                (SimpleString("Memory usage"), info.memory_bytes),
            ]
        )
