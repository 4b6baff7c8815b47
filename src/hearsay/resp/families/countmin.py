"""Count-min sketch commands as RedisBloom's rm_cms.c answers them: CMS.INITBYDIM,
CMS.INITBYPROB, CMS.INCRBY, CMS.QUERY, CMS.INFO, CMS.MERGE."""

from __future__ import annotations

from hearsay.base.errors import BoundsError, SketchParameterError
from hearsay.engine.families import countmin
from hearsay.engine.families.common import KeyExistsError, KeyMissingError, ShapeMismatchError
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry, ErrorReplies
from hearsay.resp.families.window import cms_increments, create_windowed, split_window
from hearsay.resp.key_commands import db_of
from hearsay.resp.parser import parse_double, parse_integer
from hearsay.resp.replies import OK, Map, Reply, SimpleString
from hearsay.sketch.countmin import CountMinSketch, dims_from_prob
from hearsay.sketch.window import Window

__all__ = ["install_countmin_commands"]


def _increments(run: list[list[bytes]]) -> tuple[list[bytes], list[int]] | None:
    """The items and increments of a run of CMS.INCRBY calls, in order; None when a call
    would be refused (an item without an amount, an amount that is not a non-negative
    integer)."""
    items: list[bytes] = []
    increments: list[int] = []
    for args in run:
        if len(args) % 2:
            return None
        for i in range(2, len(args), 2):
            amount = parse_integer(args[i + 1])
            if amount is None or amount < 0:
                return None
            items.append(args[i])
            increments.append(amount)
    return items, increments


def _per_call(run: list[list[bytes]], values: list[int], per_item: int) -> list[Reply]:
    """``values`` (one per item of the run, in order) cut back into one reply per call;
    a call's items are its arguments after the key, ``per_item`` arguments each."""
    out: list[Reply] = []
    at = 0
    for args in run:
        end = at + (len(args) - 2) // per_item
        out.append(values[at:end])
        at = end
    return out


def _window_clause(args: list[bytes], name: str) -> tuple[list[bytes], Window | None]:
    """CMS.INITBY*'s arguments without a trailing WINDOW clause, and its window."""
    args, window = split_window(args, 4)
    if len(args) != 4:
        raise CommandError(messages.wrong_number_of_args(name))
    return args, window


def _init(ctx: ClientContext, key: bytes, width: int, depth: int, window: Window | None) -> Reply:
    """Create the sketch (windowed with a WINDOW clause)."""
    if window is None:
        countmin.init(db_of(ctx), key, width, depth, ctx.now_ms)
    else:
        create_windowed(ctx, key, CountMinSketch(width, depth).schema, window)
    return OK


def install_countmin_commands(registry: CommandRegistry) -> None:
    """Register the CMS.* commands on ``registry``."""
    group = "cms"
    writes, reads = ("write", "denyoom"), ("readonly", "fast")
    creates: ErrorReplies = {
        KeyExistsError: messages.CMS_KEY_EXISTS,
        SketchParameterError: messages.CMS_INVALID_INIT,
    }
    missing: ErrorReplies = {KeyMissingError: messages.CMS_KEY_MISSING}

    # Pipelined runs to one sketch (CommandRegistry.run_at): one hash batch, one read and one
    # write for the whole run. CountMinSketch.incrby applies the increments in order, so each
    # call gets the estimates it would get in turn. A run that any call would see refused
    # (an odd arity, a bad number, an overflow: incrby raises before writing) goes call by call, so
    # every reply and the state are exactly those of the calls in turn.
    def cms_incrby_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        parsed = _increments(run)
        if parsed is None:
            return registry.dispatch_each(ctx, run)
        items, increments = parsed
        try:
            estimates = countmin.incrby(db_of(ctx), run[0][1], items, increments, ctx.now_ms)
        except BoundsError:
            return registry.dispatch_each(ctx, run)
        return _per_call(run, estimates, 2)

    def cms_query_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        items = [item for args in run for item in args[2:]]
        return _per_call(run, countmin.query(db_of(ctx), run[0][1], items, ctx.now_ms), 1)

    @registry.command("CMS.INITBYDIM", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=creates,
                      summary="Creates a count-min sketch of width x depth counters.")  # fmt: skip
    def cms_initbydim(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        args, window = _window_clause(args, "cms.initbydim")
        countmin.check_absent(database, args[1], ctx.now_ms)
        width = parse_integer(args[2])
        if width is None or width < 1:
            raise CommandError(messages.CMS_INVALID_WIDTH)
        depth = parse_integer(args[3])
        if depth is None or depth < 1:
            raise CommandError(messages.CMS_INVALID_DEPTH)
        return _init(ctx, args[1], width, depth, window)

    @registry.command("CMS.INITBYPROB", arity=-4, flags=writes, first_key=1, last_key=1,
                      step=1, group=group, since="2.0.0", errors=creates,
                      summary="Creates a count-min sketch for an error rate and a "
                      "probability.")  # fmt: skip
    def cms_initbyprob(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        args, window = _window_clause(args, "cms.initbyprob")
        countmin.check_absent(database, args[1], ctx.now_ms)
        error = parse_double(args[2])
        if error is None or not 0 < error < 1:
            raise CommandError(messages.CMS_INVALID_OVERESTIMATION)
        probability = parse_double(args[3])
        if probability is None or not 0 < probability < 1:
            raise CommandError(messages.CMS_INVALID_PROB)
        return _init(ctx, args[1], *dims_from_prob(error, probability), window)

    @registry.command("CMS.INCRBY", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0",
                      errors={**missing, BoundsError: messages.CMS_INCRBY_OVERFLOW},
                      run=cms_incrby_run,
                      summary="Increments items' counts; replies their new estimates.")  # fmt: skip
    def cms_incrby(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) % 2:
            raise CommandError(messages.wrong_number_of_args("cms.incrby"))
        database = db_of(ctx)
        sketch = countmin.check_incrby(database, args[1], ctx.now_ms)
        items, increments = cms_increments(args)
        return countmin.incrby(database, args[1], items, increments, ctx.now_ms, sketch=sketch)

    @registry.command("CMS.QUERY", arity=-3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=missing, run=cms_query_run,
                      summary="Items' estimated counts.")  # fmt: skip
    def cms_query(ctx: ClientContext, args: list[bytes]) -> Reply:
        return list(countmin.query(db_of(ctx), args[1], args[2:], ctx.now_ms))

    @registry.command("CMS.INFO", arity=2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=missing,
                      summary="A count-min sketch's width, depth and total count.")  # fmt: skip
    def cms_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        info = countmin.info(db_of(ctx), args[1], ctx.now_ms)
        return Map(
            [
                (SimpleString("width"), info.width),
                (SimpleString("depth"), info.depth),
                (SimpleString("count"), info.count),
            ]
        )

    @registry.command("CMS.MERGE", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0",
                      errors={**missing, ShapeMismatchError: messages.CMS_WIDTH_DEPTH_NOT_EQUAL,
                              BoundsError: messages.CMS_MERGE_OVERFLOW},
                      summary="Weighted sum of sketches into the destination. Departure from "
                      "RedisBloom: the destination is raised to the sum, never lowered (the "
                      "lattice only grows).")  # fmt: skip
    def cms_merge(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        now_ms = ctx.now_ms
        dest = countmin.dest(database, args[1], now_ms)
        count = parse_integer(args[2])
        if count is None:
            raise CommandError(messages.CMS_INVALID_NUMKEYS)
        rest = args[3:]
        if count <= 0:
            raise CommandError(messages.CMS_NUMKEYS_POSITIVE)
        upper = [arg.upper() for arg in rest]
        at = upper.index(b"WEIGHTS") if b"WEIGHTS" in upper else -1
        if at < 0:
            if count != len(rest):
                raise CommandError(messages.CMS_WRONG_NUMBER_OF_KEYS)
        elif at != count or len(rest) != 1 + 2 * count:
            raise CommandError(messages.CMS_WRONG_NUMBER_OF_KEYS_WEIGHTS)
        weights: list[int] = []
        for i in range(count):
            if at >= 0:
                weight = parse_integer(rest[count + 1 + i])
                if weight is None:
                    raise CommandError(messages.CMS_INVALID_WEIGHT)
                weights.append(weight)
            countmin.source(database, rest[i], dest, now_ms)
        countmin.merge(database, args[1], rest[:count], weights or None, now_ms)
        return OK
