"""The sketch data commands over RESP: PF*, BF.*, CMS.*, INCR family, GET/SET of HLLs, VMAX/VGET.

Why a module of its own: argument parsing and reply shapes are where clients see hearsay, and
they must be Redis's (PF*, counters, GET/SET) and RedisBloom's (BF.*, CMS.*) to the byte,
including the order in which arguments are checked and which error text each mistake gets
(every text lives in :mod:`hearsay.resp.messages`). What the commands *do* lives in
:mod:`hearsay.engine.sketch_ops`; a handler here only parses, calls one operation, and maps the
operation's typed errors to texts. Handlers are total: every client input gets a reply.

hearsay-specific commands: ``HEARSAY.PFRESERVE key precision`` (an HLL of precision 4..18),
``BF.MERGE dest src [src ...]`` (union of equal-shaped filters), ``VMAX``/``VGET`` (vignette
vectors). Departures from Redis forced by the lattice are listed in each command's summary
(``COMMAND DOCS``) and in :mod:`hearsay.engine.sketch_ops`.
"""

from __future__ import annotations

import math
import re
from typing import Final

from hearsay.base.errors import BoundsError, DecodeError, SketchParameterError
from hearsay.engine import sketch_ops as ops
from hearsay.resp import messages
from hearsay.resp.commands import (
    ClientContext,
    CommandError,
    CommandRegistry,
    Handler,
    RunHandler,
)
from hearsay.resp.key_commands import db_of, integer_arg
from hearsay.resp.parser import parse_integer
from hearsay.resp.replies import OK, Map, Reply, SimpleString
from hearsay.sketch.countmin import dims_from_prob
from hearsay.sketch.hll_math import PRECISION_MAX, PRECISION_MIN

__all__ = ["install_sketch_commands", "parse_double"]

_INDEX_MAX: Final = (1 << 32) - 1
_VALUE_MAX: Final = (1 << 63) - 1
_DOUBLE: Final = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?)", re.IGNORECASE
)


def parse_double(data: bytes) -> float | None:
    """A double as Redis's ``string2ld``/``strtod`` with nothing left over; NaN refused."""
    if not 0 < len(data) <= 256 or _DOUBLE.fullmatch(data) is None:
        return None
    try:
        value = float(data)
    except ValueError:  # pragma: no cover - the pattern only admits what float() reads
        return None
    return None if math.isnan(value) else value


# -- HyperLogLog --------------------------------------------------------------------------------


def pfadd(ctx: ClientContext, args: list[bytes]) -> Reply:
    try:
        return ops.pfadd(db_of(ctx), args[1], args[2:], ctx.now_ms)
    except ops.NotAnHllError:
        raise CommandError(messages.HLL_INVALID) from None


def pfadd_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
    try:
        return list(ops.pfadd_run(db_of(ctx), run[0][1], [args[2:] for args in run], ctx.now_ms))
    except ops.NotAnHllError:
        raise CommandError(messages.HLL_INVALID) from None


def pfcount(ctx: ClientContext, args: list[bytes]) -> Reply:
    try:
        return ops.pfcount(db_of(ctx), args[1:], ctx.now_ms)
    except ops.NotAnHllError:
        raise CommandError(messages.HLL_INVALID) from None


def pfmerge(ctx: ClientContext, args: list[bytes]) -> Reply:
    try:
        ops.pfmerge(db_of(ctx), args[1], args[2:], ctx.now_ms)
    except ops.NotAnHllError:
        raise CommandError(messages.HLL_INVALID) from None
    except ops.PrecisionMismatchError as error:
        raise CommandError(messages.hll_cannot_unfold(error.have, error.want)) from None
    return OK


def pfreserve(ctx: ClientContext, args: list[bytes]) -> Reply:
    precision = parse_integer(args[2])
    if precision is None or not PRECISION_MIN <= precision <= PRECISION_MAX:
        raise CommandError(messages.HLL_PRECISION_RANGE)
    try:
        ops.pfreserve(db_of(ctx), args[1], precision, ctx.now_ms)
    except ops.NotAnHllError:
        raise CommandError(messages.HLL_INVALID) from None
    except ops.PrecisionMismatchError as error:
        raise CommandError(messages.HLL_PRECISION_EXISTS.format(error.have)) from None
    return OK


def get(ctx: ClientContext, args: list[bytes]) -> Reply:
    try:
        return ops.get_value(db_of(ctx), args[1], ctx.now_ms)
    except ops.PrecisionMismatchError as error:
        raise CommandError(messages.HLL_GET_PRECISION.format(error.have)) from None


def strlen(ctx: ClientContext, args: list[bytes]) -> Reply:
    """The length of what GET returns (0 for a missing key), as Redis's string keys answer."""
    value = get(ctx, args)
    return len(value) if isinstance(value, bytes) else 0


def set_(ctx: ClientContext, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise CommandError(messages.SET_NO_OPTIONS)
    value = args[2]
    if not value.startswith(b"HYLL"):
        raise CommandError(messages.SET_ONLY_HLL)
    try:
        ops.set_hll_bytes(db_of(ctx), args[1], value, ctx.now_ms)
    except ops.NotAnHllError:
        raise CommandError(messages.WRONGTYPE) from None
    except ops.PrecisionMismatchError as error:
        raise CommandError(messages.HLL_SET_PRECISION.format(error.have)) from None
    except DecodeError as error:
        raise CommandError(messages.SET_INVALID_HLL.format(error)) from None
    return OK


# -- counters -----------------------------------------------------------------------------------


def _incrby(ctx: ClientContext, key: bytes, amount: int) -> Reply:
    try:
        return ops.counter_incrby(db_of(ctx), key, amount, ctx.now_ms)
    except ops.HllNotIntegerError:
        raise CommandError(messages.NOT_AN_INTEGER) from None


def incr(ctx: ClientContext, args: list[bytes]) -> Reply:
    return _incrby(ctx, args[1], 1)


def decr(ctx: ClientContext, args: list[bytes]) -> Reply:
    return _incrby(ctx, args[1], -1)


def incrby(ctx: ClientContext, args: list[bytes]) -> Reply:
    return _incrby(ctx, args[1], integer_arg(args[2]))


def decrby(ctx: ClientContext, args: list[bytes]) -> Reply:
    amount = integer_arg(args[2])
    try:
        return ops.counter_decrby(db_of(ctx), args[1], amount, ctx.now_ms)
    except ops.HllNotIntegerError:
        raise CommandError(messages.NOT_AN_INTEGER) from None


# -- vignette vectors ---------------------------------------------------------------------------


def vmax(ctx: ClientContext, args: list[bytes]) -> Reply:
    if len(args) % 2:
        raise CommandError(messages.wrong_number_of_args("vmax"))
    indices: list[int] = []
    values: list[int] = []
    for i in range(2, len(args), 2):
        index = parse_integer(args[i])
        if index is None or not 0 <= index <= _INDEX_MAX:
            raise CommandError(messages.VECTOR_INDEX)
        value = parse_integer(args[i + 1])
        if value is None or not 0 <= value <= _VALUE_MAX:
            raise CommandError(messages.VECTOR_VALUE)
        indices.append(index)
        values.append(value)
    return ops.vmax(db_of(ctx), args[1], indices, values, ctx.now_ms)


def vget(ctx: ClientContext, args: list[bytes]) -> Reply:
    return [number for pair in ops.vget(db_of(ctx), args[1], ctx.now_ms) for number in pair]


# -- Bloom filters (RedisBloom's rebloom.c) -----------------------------------------------------


def bf_reserve(ctx: ClientContext, args: list[bytes]) -> Reply:
    if len(args) > 7:
        raise CommandError(messages.wrong_number_of_args("bf.reserve"))
    error_rate = parse_double(args[2])
    if error_rate is None:
        raise CommandError(messages.BF_BAD_ERROR_RATE)
    if not 0 < error_rate < 1:
        raise CommandError(messages.BF_ERROR_RATE_RANGE)
    capacity = parse_integer(args[3])
    if capacity is None:
        raise CommandError(messages.BF_BAD_CAPACITY)
    if capacity <= 0:
        raise CommandError(messages.BF_CAPACITY_RANGE)
    options = [arg.upper() for arg in args[4:]]
    nonscaling = b"NONSCALING" in options
    if b"EXPANSION" in options:
        at = options.index(b"EXPANSION")
        if at + 1 == len(options):
            raise CommandError(messages.BF_NO_EXPANSION)
        if nonscaling:
            raise CommandError(messages.BF_NONSCALING_CANNOT_EXPAND)
        if parse_integer(args[4 + at + 1]) is None:
            raise CommandError(messages.BF_BAD_EXPANSION)
        raise CommandError(messages.BF_NEVER_SCALES)
    if any(option != b"NONSCALING" for option in options):
        raise CommandError(messages.SYNTAX_ERROR)
    try:
        ops.bf_reserve(db_of(ctx), args[1], error_rate, capacity, ctx.now_ms)
    except ops.KeyExistsError:
        raise CommandError(messages.BF_ITEM_EXISTS) from None
    except SketchParameterError as error:
        raise CommandError(messages.bf_could_not_create(str(error))) from None
    return OK


def _bf_add(
    ctx: ClientContext, key: bytes, items: list[bytes], create: ops.BloomCreate | None
) -> list[bool]:
    try:
        return ops.bf_add(db_of(ctx), key, items, ctx.now_ms, create)
    except ops.KeyMissingError:
        raise CommandError(messages.BF_NOT_FOUND) from None
    except SketchParameterError as error:
        raise CommandError(messages.bf_could_not_create(str(error))) from None


def bf_add(ctx: ClientContext, args: list[bytes]) -> Reply:
    return int(_bf_add(ctx, args[1], args[2:3], ops.BloomCreate())[0])


def bf_madd(ctx: ClientContext, args: list[bytes]) -> Reply:
    return [int(added) for added in _bf_add(ctx, args[1], args[2:], ops.BloomCreate())]


def bf_insert(ctx: ClientContext, args: list[bytes]) -> Reply:
    error_rate = ops.BF_DEFAULT_ERROR_RATE
    capacity = ops.BF_DEFAULT_CAPACITY
    autocreate = True
    expansion = False
    items_at = -1
    wrong_arity = CommandError(messages.wrong_number_of_args("bf.insert"))
    pos = 2
    while pos < len(args) and items_at < 0:  # bounded: pos grows on every pass
        option = args[pos].upper()
        if option == b"ITEMS":
            pos += 1
            items_at = pos
        elif option in (b"ERROR", b"CAPACITY", b"EXPANSION"):
            pos += 1
            if pos == len(args):
                raise wrong_arity
            if option == b"ERROR":
                rate = parse_double(args[pos])
                if rate is None:
                    raise CommandError(messages.BF_INSERT_BAD_ERROR_RATE)
                error_rate = rate
            elif option == b"CAPACITY":
                cap = parse_integer(args[pos])
                if cap is None:
                    raise CommandError(messages.BF_INSERT_BAD_CAPACITY)
                capacity = cap
            else:
                if parse_integer(args[pos]) is None:
                    raise CommandError(messages.BF_INSERT_BAD_EXPANSION)
                expansion = True
            pos += 1
        elif option == b"NOCREATE":
            autocreate = False
            pos += 1
        elif option == b"NONSCALING":
            pos += 1
        else:
            raise CommandError(messages.BF_INSERT_UNKNOWN_ARGUMENT)
    if items_at < 0 or items_at == len(args):
        raise wrong_arity
    if not 0 < error_rate < 1 or capacity < 1:
        raise CommandError(messages.BF_INSERT_BAD_ARGUMENT)
    if expansion:
        raise CommandError(messages.BF_NEVER_SCALES)
    create = ops.BloomCreate(error_rate, capacity) if autocreate else None
    return [int(added) for added in _bf_add(ctx, args[1], args[items_at:], create)]


def bf_exists(ctx: ClientContext, args: list[bytes]) -> Reply:
    return int(ops.bf_exists(db_of(ctx), args[1], args[2:3], ctx.now_ms)[0])


def bf_mexists(ctx: ClientContext, args: list[bytes]) -> Reply:
    return [int(found) for found in ops.bf_exists(db_of(ctx), args[1], args[2:], ctx.now_ms)]


_BF_INFO_FIELDS: Final = {
    b"CAPACITY": "Capacity",
    b"SIZE": "Size",
    b"FILTERS": "Number of filters",
    b"ITEMS": "Number of items inserted",
    b"EXPANSION": "Expansion rate",
}


def bf_info(ctx: ClientContext, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise CommandError(messages.wrong_number_of_args("bf.info"))
    try:
        info = ops.bf_info(db_of(ctx), args[1], ctx.now_ms)
    except ops.KeyMissingError:
        raise CommandError(messages.BF_NOT_FOUND) from None
    values: dict[str, Reply] = {
        "Capacity": info.capacity,
        "Size": info.size_bytes,
        "Number of filters": info.filters,
        "Number of items inserted": info.items,
        "Expansion rate": info.expansion,
    }
    if len(args) == 3:
        name = _BF_INFO_FIELDS.get(args[2].upper())
        if name is None:
            raise CommandError(messages.BF_INFO_INVALID_VALUE)
        return [values[name]]
    return Map((SimpleString(name), value) for name, value in values.items())


def bf_card(ctx: ClientContext, args: list[bytes]) -> Reply:
    return ops.bf_card(db_of(ctx), args[1], ctx.now_ms)


def bf_merge(ctx: ClientContext, args: list[bytes]) -> Reply:
    try:
        ops.bf_merge(db_of(ctx), args[1], args[2:], ctx.now_ms)
    except ops.KeyMissingError:
        raise CommandError(messages.BF_NOT_FOUND) from None
    except ops.ShapeMismatchError as error:
        raise CommandError(f"ERR {error}") from None
    return OK


# -- count-min sketches (RedisBloom's rm_cms.c) -------------------------------------------------


def _cms_create(ctx: ClientContext, key: bytes, width: int, depth: int) -> Reply:
    try:
        ops.cms_init(db_of(ctx), key, width, depth, ctx.now_ms)
    except ops.KeyExistsError:
        raise CommandError(messages.CMS_KEY_EXISTS) from None
    except SketchParameterError:
        raise CommandError(messages.CMS_INVALID_INIT) from None
    return OK


def _cms_not_existing(ctx: ClientContext, key: bytes) -> None:
    try:
        ops.cms_exists_check(db_of(ctx), key, ctx.now_ms)
    except ops.KeyExistsError:
        raise CommandError(messages.CMS_KEY_EXISTS) from None


def cms_initbydim(ctx: ClientContext, args: list[bytes]) -> Reply:
    _cms_not_existing(ctx, args[1])
    width = parse_integer(args[2])
    if width is None or width < 1:
        raise CommandError(messages.CMS_INVALID_WIDTH)
    depth = parse_integer(args[3])
    if depth is None or depth < 1:
        raise CommandError(messages.CMS_INVALID_DEPTH)
    return _cms_create(ctx, args[1], width, depth)


def cms_initbyprob(ctx: ClientContext, args: list[bytes]) -> Reply:
    _cms_not_existing(ctx, args[1])
    error = parse_double(args[2])
    if error is None or not 0 < error < 1:
        raise CommandError(messages.CMS_INVALID_OVERESTIMATION)
    probability = parse_double(args[3])
    if probability is None or not 0 < probability < 1:
        raise CommandError(messages.CMS_INVALID_PROB)
    try:
        width, depth = dims_from_prob(error, probability)
    except SketchParameterError:
        raise CommandError(messages.CMS_INVALID_INIT) from None
    return _cms_create(ctx, args[1], width, depth)


def _cms_missing(error: ops.KeyMissingError) -> CommandError:
    return CommandError(messages.CMS_KEY_MISSING)


def cms_incrby(ctx: ClientContext, args: list[bytes]) -> Reply:
    if len(args) % 2:
        raise CommandError(messages.wrong_number_of_args("cms.incrby"))
    database = db_of(ctx)
    try:
        ops.cms_check_incrby(database, args[1], ctx.now_ms)
    except ops.KeyMissingError as error:
        raise _cms_missing(error) from None
    items: list[bytes] = []
    increments: list[int] = []
    for i in range(2, len(args), 2):
        amount = parse_integer(args[i + 1])
        if amount is None:
            raise CommandError(messages.CMS_CANNOT_PARSE_NUMBER)
        if amount < 0:
            raise CommandError(messages.CMS_NEGATIVE_NUMBER)
        items.append(args[i])
        increments.append(amount)
    try:
        return list(ops.cms_incrby(database, args[1], items, increments, ctx.now_ms))
    except BoundsError:
        raise CommandError(messages.CMS_INCRBY_OVERFLOW) from None


def cms_query(ctx: ClientContext, args: list[bytes]) -> Reply:
    try:
        return list(ops.cms_query(db_of(ctx), args[1], args[2:], ctx.now_ms))
    except ops.KeyMissingError as error:
        raise _cms_missing(error) from None


def cms_info(ctx: ClientContext, args: list[bytes]) -> Reply:
    try:
        info = ops.cms_info(db_of(ctx), args[1], ctx.now_ms)
    except ops.KeyMissingError as error:
        raise _cms_missing(error) from None
    return Map(
        [
            (SimpleString("width"), info.width),
            (SimpleString("depth"), info.depth),
            (SimpleString("count"), info.count),
        ]
    )


def cms_merge(ctx: ClientContext, args: list[bytes]) -> Reply:
    database = db_of(ctx)
    now_ms = ctx.now_ms
    try:
        dest = ops.cms_dest(database, args[1], now_ms)
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
            ops.cms_source(database, rest[i], dest, now_ms)
        ops.cms_merge(database, args[1], rest[:count], weights or None, now_ms)
    except ops.KeyMissingError as error:
        raise _cms_missing(error) from None
    except ops.ShapeMismatchError:
        raise CommandError(messages.CMS_WIDTH_DEPTH_NOT_EQUAL) from None
    except BoundsError:
        raise CommandError(messages.CMS_MERGE_OVERFLOW) from None
    return OK


# -- the table ----------------------------------------------------------------------------------


def install_sketch_commands(registry: CommandRegistry) -> None:
    """Register the sketch data commands on ``registry``."""
    w, wd, ro = ("write", "denyoom", "fast"), ("write", "denyoom"), ("readonly", "fast")
    one, every = (1, 1, 1), (1, -1, 1)

    def add(
        name: str,
        handler: Handler,
        *,
        arity: int,
        flags: tuple[str, ...],
        group: str,
        keys: tuple[int, int, int],
        summary: str,
        since: str = "0.1.0",
        run_handler: RunHandler | None = None,
    ) -> None:
        first, last, step = keys
        registry.add(
            name,
            handler,
            arity=arity,
            flags=flags,
            first_key=first,
            last_key=last,
            step=step,
            group=group,
            summary=summary,
            since=since,
            run_handler=run_handler,
        )

    hll = "hyperloglog"
    add(
        "PFADD",
        pfadd,
        arity=-2,
        flags=w,
        group=hll,
        since="2.8.9",
        keys=one,
        summary="Adds members to a HyperLogLog key; creates the key when absent.",
        run_handler=pfadd_run,
    )
    add(
        "PFCOUNT",
        pfcount,
        arity=-2,
        flags=("readonly",),
        group=hll,
        since="2.8.9",
        keys=every,
        summary="Estimated number of distinct members of the union of HyperLogLog keys.",
    )
    add(
        "PFMERGE",
        pfmerge,
        arity=-2,
        flags=wd,
        group=hll,
        since="2.8.9",
        keys=every,
        summary="Raises the destination HyperLogLog to the union of itself and the sources "
        "(all of one precision).",
    )
    add(
        "HEARSAY.PFRESERVE",
        pfreserve,
        arity=3,
        flags=wd,
        group=hll,
        keys=one,
        summary="hearsay: creates an empty HyperLogLog of precision 4..18 (error "
        "1.04/sqrt(2**p)); PFADD and PFCOUNT then use that precision.",
    )
    string = "string"
    add(
        "GET",
        get,
        arity=2,
        flags=ro,
        group=string,
        since="1.0.0",
        keys=one,
        summary="A counter's value, or the Redis HLL bytes of a HyperLogLog (precision 14).",
    )
    add(
        "STRLEN",
        strlen,
        arity=2,
        flags=ro,
        group=string,
        since="2.2.0",
        keys=one,
        summary="The length of GET's value: a counter's digits or an HLL's Redis bytes.",
    )
    add(
        "SET",
        set_,
        arity=-3,
        flags=wd,
        group=string,
        since="1.0.0",
        keys=one,
        summary="hearsay: SET key <Redis HLL bytes> imports a HyperLogLog. Departure from "
        "Redis: on an existing HLL the registers are merged (union), never replaced, as "
        "the lattice only grows (DEL first to replace). Plain strings are not stored.",
    )
    add(
        "INCR",
        incr,
        arity=2,
        flags=w,
        group=string,
        since="1.0.0",
        keys=one,
        summary="Increments a counter by one (a PN counter that converges across nodes).",
    )
    add(
        "DECR",
        decr,
        arity=2,
        flags=w,
        group=string,
        since="1.0.0",
        keys=one,
        summary="Decrements a counter by one.",
    )
    add(
        "INCRBY",
        incrby,
        arity=3,
        flags=w,
        group=string,
        since="1.0.0",
        keys=one,
        summary="Increments a counter by a signed 64-bit amount.",
    )
    add(
        "DECRBY",
        decrby,
        arity=3,
        flags=w,
        group=string,
        since="1.0.0",
        keys=one,
        summary="Decrements a counter by a signed 64-bit amount.",
    )
    vec = "vector"
    add(
        "VMAX",
        vmax,
        arity=-4,
        flags=w,
        group=vec,
        keys=one,
        summary="hearsay: raises a vignette vector's indices to at least the given values; "
        "replies how many grew.",
    )
    add(
        "VGET",
        vget,
        arity=2,
        flags=ro,
        group=vec,
        keys=one,
        summary="hearsay: a vignette vector as a flat array index, value, ... by index.",
    )
    bf = "bf"
    add(
        "BF.RESERVE",
        bf_reserve,
        arity=-4,
        flags=wd,
        group=bf,
        since="1.0.0",
        keys=one,
        summary="Creates a Bloom filter. hearsay's filters never scale: NONSCALING is "
        "implied and EXPANSION is refused.",
    )
    add(
        "BF.ADD",
        bf_add,
        arity=3,
        flags=wd,
        group=bf,
        since="1.0.0",
        keys=one,
        summary="Adds an item (creates the filter with error 0.01, capacity 100). Never "
        "refused as full: past capacity the false-positive rate grows.",
    )
    add(
        "BF.MADD",
        bf_madd,
        arity=-3,
        flags=wd,
        group=bf,
        since="1.0.0",
        keys=one,
        summary="Adds items to a Bloom filter (created with the defaults when absent).",
    )
    add(
        "BF.INSERT",
        bf_insert,
        arity=-4,
        flags=wd,
        group=bf,
        since="1.0.0",
        keys=one,
        summary="Adds items, creating the filter with CAPACITY/ERROR unless NOCREATE.",
    )
    add(
        "BF.EXISTS",
        bf_exists,
        arity=3,
        flags=ro,
        group=bf,
        since="1.0.0",
        keys=one,
        summary="Whether an item may have been added to a Bloom filter.",
    )
    add(
        "BF.MEXISTS",
        bf_mexists,
        arity=-3,
        flags=ro,
        group=bf,
        since="1.0.0",
        keys=one,
        summary="Whether each item may have been added to a Bloom filter.",
    )
    add(
        "BF.INFO",
        bf_info,
        arity=-2,
        flags=ro,
        group=bf,
        since="1.0.0",
        keys=one,
        summary="A Bloom filter's capacity, size, filters, items (estimated from the set "
        "bits) and expansion (always nil: non-scaling).",
    )
    add(
        "BF.CARD",
        bf_card,
        arity=2,
        flags=ro,
        group=bf,
        since="2.4.4",
        keys=one,
        summary="Estimated number of items added to a Bloom filter (0 when absent).",
    )
    add(
        "BF.MERGE",
        bf_merge,
        arity=-3,
        flags=wd,
        group=bf,
        keys=every,
        summary="hearsay: union of Bloom filters of equal shape into the destination.",
    )
    cms = "cms"
    add(
        "CMS.INITBYDIM",
        cms_initbydim,
        arity=4,
        flags=wd,
        group=cms,
        since="2.0.0",
        keys=one,
        summary="Creates a count-min sketch of width x depth counters.",
    )
    add(
        "CMS.INITBYPROB",
        cms_initbyprob,
        arity=4,
        flags=wd,
        group=cms,
        since="2.0.0",
        keys=one,
        summary="Creates a count-min sketch for an error rate and a probability.",
    )
    add(
        "CMS.INCRBY",
        cms_incrby,
        arity=-4,
        flags=wd,
        group=cms,
        since="2.0.0",
        keys=one,
        summary="Increments items' counts; replies their new estimates.",
    )
    add(
        "CMS.QUERY",
        cms_query,
        arity=-3,
        flags=ro,
        group=cms,
        since="2.0.0",
        keys=one,
        summary="Items' estimated counts.",
    )
    add(
        "CMS.INFO",
        cms_info,
        arity=2,
        flags=ro,
        group=cms,
        since="2.0.0",
        keys=one,
        summary="A count-min sketch's width, depth and total count.",
    )
    add(
        "CMS.MERGE",
        cms_merge,
        arity=-4,
        flags=wd,
        group=cms,
        since="2.0.0",
        keys=one,
        summary="Weighted sum of sketches into the destination. Departure from RedisBloom: "
        "the destination is raised to the sum, never lowered (the lattice only grows).",
    )
