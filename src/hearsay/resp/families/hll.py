"""HyperLogLog commands: PFADD, PFCOUNT, PFMERGE and hearsay's HEARSAY.PFRESERVE."""

from __future__ import annotations

from hearsay.engine.families import hll
from hearsay.engine.families.common import KeyExistsError
from hearsay.engine.families.hll import NotAnHllError, PrecisionMismatchError
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry, ErrorReplies
from hearsay.resp.families.window import create_windowed, split_window
from hearsay.resp.key_commands import db_of
from hearsay.resp.parser import parse_integer
from hearsay.resp.replies import OK, Reply
from hearsay.sketch.hll_math import PRECISION_MAX, PRECISION_MIN, REDIS_PRECISION
from hearsay.sketch.hll_view import HyperLogLog

__all__ = ["install_hll_commands"]


def install_hll_commands(registry: CommandRegistry) -> None:
    """Register the PF* commands on ``registry``."""
    group = "hyperloglog"
    not_an_hll: ErrorReplies = {NotAnHllError: messages.HLL_INVALID}

    def pfadd_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        return list(hll.pfadd_run(db_of(ctx), run[0][1], [args[2:] for args in run], ctx.now_ms))

    @registry.command("PFADD", arity=-2, flags=("write", "denyoom", "fast"), first_key=1,
                      last_key=1, step=1, group=group, since="2.8.9", errors=not_an_hll,
                      run=pfadd_run, summary="Adds members to a HyperLogLog key; creates the "
                      "key when absent.")  # fmt: skip
    def pfadd(ctx: ClientContext, args: list[bytes]) -> Reply:
        return hll.pfadd(db_of(ctx), args[1], args[2:], ctx.now_ms)

    @registry.command("PFCOUNT", arity=-2, flags=("readonly",), first_key=1, last_key=-1,
                      step=1, group=group, since="2.8.9", errors=not_an_hll,
                      run=registry.repeated_reads,
                      summary="Estimated number of distinct members of the union of "
                      "HyperLogLog keys.")  # fmt: skip
    def pfcount(ctx: ClientContext, args: list[bytes]) -> Reply:
        return hll.pfcount(db_of(ctx), args[1:], ctx.now_ms)

    @registry.command("PFMERGE", arity=-2, flags=("write", "denyoom"), first_key=1,
                      last_key=-1, step=1, group=group, since="2.8.9",
                      errors={**not_an_hll, PrecisionMismatchError: lambda error:
                              messages.hll_cannot_unfold(error.have, error.want)},
                      summary="Raises the destination HyperLogLog to the union of itself and "
                      "the sources (all of one precision).")  # fmt: skip
    def pfmerge(ctx: ClientContext, args: list[bytes]) -> Reply:
        hll.pfmerge(db_of(ctx), args[1], args[2:], ctx.now_ms)
        return OK

    @registry.command("HEARSAY.PFRESERVE", arity=-3, flags=("write", "denyoom"), first_key=1,
                      last_key=1, step=1, group=group,
                      errors={**not_an_hll, PrecisionMismatchError: lambda error:
                              messages.HLL_PRECISION_EXISTS.format(error.have),
                              KeyExistsError: messages.WINDOW_KEY_EXISTS},
                      summary="hearsay: creates an empty HyperLogLog of precision 4..18 (error "
                      "1.04/sqrt(2**p)); PFADD and PFCOUNT then use that precision.")  # fmt: skip
    def pfreserve(ctx: ClientContext, args: list[bytes]) -> Reply:
        args, window = split_window(args, 2)  # HEARSAY.PFRESERVE key [p] WINDOW s [SLICES n]
        if len(args) != 3 and (window is None or len(args) != 2):
            raise CommandError(messages.wrong_number_of_args("hearsay.pfreserve"))
        precision = parse_integer(args[2]) if len(args) == 3 else REDIS_PRECISION
        if precision is None or not PRECISION_MIN <= precision <= PRECISION_MAX:
            raise CommandError(messages.HLL_PRECISION_RANGE)
        if window is not None:
            create_windowed(ctx, args[1], HyperLogLog(precision).schema, window)
            return OK
        hll.pfreserve(db_of(ctx), args[1], precision, ctx.now_ms)
        return OK
