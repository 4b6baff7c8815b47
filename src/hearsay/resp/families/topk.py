"""Top-K commands as RedisBloom's rm_topk.c answers them: TOPK.RESERVE, ADD, INCRBY, QUERY,
COUNT, LIST [WITHCOUNT], INFO.

The error texts are RedisBloom's (here rather than in :mod:`hearsay.resp.messages`: they are
this family's alone). Departures: see :mod:`hearsay.engine.families.topk` (the merged list);
items are bulk strings (RedisBloom replies simple strings, which cannot carry CR or LF); an
item is at most :data:`~hearsay.sketch.topk.ITEM_BYTES_MAX` bytes and one call adds at most
:data:`ROWS_PER_CALL_MAX` / depth items (so no request holds the node for long); depth is at most
:data:`~hearsay.sketch.schemas.TOPK_DEPTH_MAX` and k at most
:data:`~hearsay.sketch.schemas.TOPK_K_MAX`.
"""

from __future__ import annotations

from typing import Final

from hearsay.base.errors import SketchParameterError
from hearsay.engine.families import topk
from hearsay.engine.families.common import KeyExistsError, KeyMissingError
from hearsay.engine.interfaces import WaitForAcks
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry, ErrorReplies
from hearsay.resp.families.window import create_windowed, split_window
from hearsay.resp.key_commands import db_of
from hearsay.resp.parser import parse_double, parse_integer
from hearsay.resp.replies import OK, ErrorReply, Map, Reply, SimpleString
from hearsay.sketch.schemas import TOPK_DEPTH_MAX, TOPK_K_MAX
from hearsay.sketch.topk import INCREMENT_MAX, ITEM_BYTES_MAX, TopK

__all__ = ["ROWS_PER_CALL_MAX", "install_topk_commands", "run_calls"]

ROWS_PER_CALL_MAX: Final = 32_768
"""Items times depth one TOPK.ADD / INCRBY call may carry (4,681 items at the default depth
7): each item costs a few microseconds of HeavyKeeper work in Python per row, so this keeps
a call to a fraction of a second."""

KEY_EXISTS: Final = "TopK: key already exists"
KEY_MISSING: Final = "TopK: key does not exist"
INVALID_K: Final = "TopK: invalid k"
INVALID_WIDTH: Final = "TopK: invalid width"
INVALID_DEPTH: Final = "TopK: invalid depth"
INVALID_DECAY: Final = "TopK: invalid decay value. must be '<= 1' & '> 0'"
TOO_LARGE: Final = (
    f"TopK: too large (k at most {TOPK_K_MAX}, depth at most {TOPK_DEPTH_MAX}, "
    "3 * width * depth at most 2**31)"
)
# rm_topk.c's text spans two source lines joined by a backslash: the spaces are part of it.
INVALID_INCREMENT: Final = (
    "TopK: increment must be an integer greater or equal to 0"
    + " " * 28
    + "and smaller or equal to 100,000"
)
WITHCOUNT_EXPECTED: Final = "ERR WITHCOUNT keyword expected"
ITEM_TOO_LONG: Final = f"TopK: an item is at most {ITEM_BYTES_MAX} bytes"
TOO_MANY_ITEMS: Final = (
    f"TopK: too many items for one call (items x depth at most {ROWS_PER_CALL_MAX})"
)


def _few_short_items(args: list[bytes], step: int) -> bool:
    """Whether a call's items pass the checks at any depth (so the key need not be read for
    its depth first: a missing key is then refused by the add itself, still first)."""
    if len(args) == 3:  # (one item, the commonest call)
        return len(args[2]) <= ITEM_BYTES_MAX
    items = args[2::step]
    return len(items) * TOPK_DEPTH_MAX <= ROWS_PER_CALL_MAX and all(
        len(item) <= ITEM_BYTES_MAX for item in items
    )


def _items(args: list[bytes], step: int, depth: int) -> list[bytes]:
    """The items of one call (every ``step``-th argument after the key), checked."""
    items = args[2::step]
    if len(items) * depth > ROWS_PER_CALL_MAX:
        raise CommandError(TOO_MANY_ITEMS)
    if any(len(item) > ITEM_BYTES_MAX for item in items):
        raise CommandError(ITEM_TOO_LONG)
    return items


RESERVE_OPTIONS: Final[frozenset[bytes]] = frozenset({b"WINDOW"})
"""TOPK.RESERVE's keywords after ``k`` or the shape (``WINDOW s [SLICES n]``: issue 17)."""


def _reserve_arguments(args: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """TOPK.RESERVE's shape (``k``, or ``k width depth decay``) and the keyword options after
    it (only ``WINDOW s [SLICES n]``; anything else is refused as Redis refuses extra
    arguments)."""
    rest = args[2:]
    size = 1 if len(rest) < 4 or rest[1].upper() in RESERVE_OPTIONS else 4
    return rest[:size], rest[size:]


def _increment(arg: bytes) -> int | None:
    value = parse_integer(arg)
    if value is None or not 0 <= value <= INCREMENT_MAX:
        return None
    return value


def _expelled(replies: list[bytes | None]) -> list[Reply]:
    return list(replies)


def run_calls(run: list[list[bytes]], step: int, depth: int) -> list[list[tuple[bytes, int]]]:
    """The ``(item, increment)`` calls of a pipelined run of TOPK.ADD (step 1) or INCRBY
    (step 2) on a key of ``depth`` rows; empty when any call would be refused (then the run
    goes call by call, for each call's own reply). Plain and windowed runs share it."""
    calls: list[list[tuple[bytes, int]]] = []
    for args in run:
        if (len(args) - 2) % step or (len(args) - 2) // step * depth > ROWS_PER_CALL_MAX:
            return []
        items = args[2::step]
        if any(len(item) > ITEM_BYTES_MAX for item in items):
            return []
        if step == 1:
            calls.append([(item, 1) for item in items])
            continue
        increments = [_increment(arg) for arg in args[3::2]]
        if any(value is None for value in increments):
            return []
        calls.append([(item, int(n or 0)) for item, n in zip(items, increments, strict=True)])
    return calls


def install_topk_commands(registry: CommandRegistry) -> None:
    """Register the TOPK.* commands on ``registry``."""
    group = "topk"
    writes, reads = ("write", "denyoom"), ("readonly", "fast")
    missing: ErrorReplies = {KeyMissingError: KEY_MISSING}

    def _one(ctx: ClientContext, args: list[bytes]) -> Reply:
        reply = registry.dispatch(ctx, args)
        assert not isinstance(reply, WaitForAcks), "a TOPK command never waits"
        return reply

    def _run(ctx: ClientContext, run: list[list[bytes]], step: int) -> list[Reply]:
        """A pipelined run of TOPK.ADD (step 1) or INCRBY (step 2) on one key: one read and
        one write for the run; the replies and pairs are exactly those of the calls in turn.
        A run that any call would see refused goes call by call."""
        depth = topk.check(db_of(ctx), run[0][1], ctx.now_ms).depth
        calls = run_calls(run, step, depth)
        if not calls:
            return [_one(ctx, args) for args in run]
        replies = topk.add(db_of(ctx), run[0][1], calls, ctx.now_ms)
        return [_expelled(reply) for reply in replies]

    @registry.command("TOPK.RESERVE", arity=-3, flags=writes, first_key=1, last_key=1,
                      step=1, group=group, since="2.0.0",
                      errors={KeyExistsError: KEY_EXISTS, SketchParameterError: TOO_LARGE},
                      summary="Creates a Top-K of k items (width 8, depth 7, decay 0.9 unless "
                      "given; depth at most 64).")  # fmt: skip
    def topk_reserve(ctx: ClientContext, args: list[bytes]) -> Reply:
        shape, options = _reserve_arguments(args)
        options, window = split_window(options, 0)
        if len(shape) not in (1, 4) or options:
            raise CommandError(messages.wrong_number_of_args("topk.reserve"))
        database = db_of(ctx)
        if database.get(args[1], ctx.now_ms) is not None:
            raise CommandError(KEY_EXISTS)
        k = parse_integer(args[2])
        if k is None or k < 1:
            raise CommandError(INVALID_K)
        width, depth, decay = 8, 7, 0.9
        if len(shape) == 4:
            parsed_width = parse_integer(shape[1])
            if parsed_width is None or not 1 <= parsed_width <= 0xFFFFFFFF:
                raise CommandError(INVALID_WIDTH)
            parsed_depth = parse_integer(shape[2])
            if parsed_depth is None or not 1 <= parsed_depth <= 0xFFFFFFFF:
                raise CommandError(INVALID_DEPTH)
            parsed_decay = parse_double(shape[3])
            if parsed_decay is None or not 0.0 < parsed_decay <= 1.0:
                raise CommandError(INVALID_DECAY)
            width, depth, decay = parsed_width, parsed_depth, parsed_decay
        if window is not None:
            create_windowed(ctx, args[1], TopK(k, width, depth, decay).schema, window)
            return OK
        topk.reserve(database, args[1], (k, width, depth, decay), ctx.now_ms)
        return OK

    @registry.command("TOPK.ADD", arity=-3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=missing,
                      run=lambda ctx, run: _run(ctx, run, 1),
                      summary="Adds items; replies per item the item expelled from this "
                      "node's list, or nil (items x depth at most 32768 a call).")  # fmt: skip
    def topk_add(ctx: ClientContext, args: list[bytes]) -> Reply:
        database = db_of(ctx)
        if _few_short_items(args, 1):
            items = args[2:]
        else:
            items = _items(args, 1, topk.check(database, args[1], ctx.now_ms).depth)
        return _expelled(topk.add(database, args[1], [[(i, 1) for i in items]], ctx.now_ms)[0])

    @registry.command("TOPK.INCRBY", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=missing,
                      run=lambda ctx, run: _run(ctx, run, 2),
                      summary="Increments items' counts by 0..100000; replies as TOPK.ADD "
                      "(items x depth at most 32768 a call).")  # fmt: skip
    def topk_incrby(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) % 2:
            raise CommandError(messages.wrong_number_of_args("topk.incrby"))
        database = db_of(ctx)
        items = _items(args, 2, topk.check(database, args[1], ctx.now_ms).depth)
        calls: list[tuple[bytes, int]] = []
        refused = False
        for item, arg in zip(items, args[3::2], strict=True):
            increment = _increment(arg)
            if increment is None:  # RedisBloom applies the items before it
                refused = True
                break
            calls.append((item, increment))
        out: list[Reply] = []
        if calls:
            out = _expelled(topk.add(database, args[1], [calls], ctx.now_ms)[0])
        if refused:
            out.append(ErrorReply(INVALID_INCREMENT))
        return out

    @registry.command("TOPK.QUERY", arity=-3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=missing,
                      summary="Whether each item is in the merged list (1 or 0).")  # fmt: skip
    def topk_query(ctx: ClientContext, args: list[bytes]) -> Reply:
        found = topk.query(db_of(ctx), args[1], args[2:], ctx.now_ms)
        return [int(hit) for hit in found]

    @registry.command("TOPK.COUNT", arity=-3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=missing,
                      summary="Each item's count summed over every node (its listed count "
                      "there, else its HeavyKeeper estimate): as TOPK.LIST WITHCOUNT shows "
                      "it. Deprecated in Redis.")  # fmt: skip
    def topk_count(ctx: ClientContext, args: list[bytes]) -> Reply:
        return list(topk.count(db_of(ctx), args[1], args[2:], ctx.now_ms))

    @registry.command("TOPK.LIST", arity=-2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=missing,
                      summary="The merged list, largest count first: the top k of every "
                      "node's listed items, counts summed over nodes (an item heavy overall "
                      "but in no node's list is missed).")  # fmt: skip
    def topk_list(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 3:
            raise CommandError(messages.wrong_number_of_args("topk.list"))
        with_count = len(args) == 3
        if with_count and not b"WITHCOUNT".startswith(args[2].upper()):  # rm_topk.c's test
            raise CommandError(WITHCOUNT_EXPECTED)
        ranked = topk.listed(db_of(ctx), args[1], ctx.now_ms)
        if not with_count:
            return [item for item, _ in ranked]
        out: list[Reply] = []
        for item, count in ranked:
            out += (item, count)
        return out

    @registry.command("TOPK.INFO", arity=2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.0.0", errors=missing,
                      summary="k, width, depth and decay.")  # fmt: skip
    def topk_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        info = topk.info(db_of(ctx), args[1], ctx.now_ms)
        return Map(
            [
                (SimpleString("k"), info.k),
                (SimpleString("width"), info.width),
                (SimpleString("depth"), info.depth),
                (SimpleString("decay"), info.decay),
            ]
        )
