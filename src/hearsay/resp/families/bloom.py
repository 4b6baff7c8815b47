"""Bloom filter commands as RedisBloom's rebloom.c answers them: BF.RESERVE, BF.ADD, BF.MADD,
BF.INSERT, BF.EXISTS, BF.MEXISTS, BF.INFO, BF.CARD, and hearsay's BF.MERGE."""

from __future__ import annotations

from typing import Final

from hearsay.base.errors import DecodeError, SketchParameterError
from hearsay.engine import dump as dumps
from hearsay.engine.families import bloom
from hearsay.engine.families.bloom import BloomCreate
from hearsay.engine.families.common import KeyExistsError, KeyMissingError
from hearsay.resp import messages
from hearsay.resp.commands import (
    ClientContext,
    CommandError,
    CommandRegistry,
    ErrorReplies,
    RunHandler,
)
from hearsay.resp.families.window import create_windowed, split_window
from hearsay.resp.key_commands import db_of, integer_arg
from hearsay.resp.parser import parse_double, parse_integer
from hearsay.resp.replies import OK, Map, Reply, SimpleString
from hearsay.sketch.bloom import BloomFilter
from hearsay.sketch.schemas import KIND_BLOOM

__all__ = ["install_bloom_commands"]

_INFO_FIELDS: Final = {
    b"CAPACITY": "Capacity",
    b"SIZE": "Size",
    b"FILTERS": "Number of filters",
    b"ITEMS": "Number of items inserted",
    b"EXPANSION": "Expansion rate",
}


def _could_not_create(error: SketchParameterError) -> str:
    return messages.bf_could_not_create(str(error))


def _insert_options(args: list[bytes]) -> tuple[BloomCreate | None, int]:
    """BF.INSERT's options, checked in RedisBloom's order: how to create a missing filter
    (None: NOCREATE) and where the items start."""
    error_rate = bloom.DEFAULT_ERROR_RATE
    capacity = bloom.DEFAULT_CAPACITY
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
    return (BloomCreate(error_rate, capacity) if autocreate else None), items_at


def _items_of(run: list[list[bytes]]) -> list[bytes]:
    """Every call's items (its arguments after the key), in order."""
    return [item for args in run for item in args[2:]]


def _per_call(run: list[list[bytes]], flags: list[bool]) -> list[Reply]:
    """``flags`` (one per item of the run, in order) cut back into one reply per call."""
    out: list[Reply] = []
    at = 0
    for args in run:
        end = at + len(args) - 2
        out.append([int(flag) for flag in flags[at:end]])
        at = end
    return out


def install_bloom_commands(registry: CommandRegistry) -> None:
    """Register the BF.* commands on ``registry``."""
    group = "bf"
    writes, reads = ("write", "denyoom"), ("readonly", "fast")
    adds: ErrorReplies = {
        KeyMissingError: messages.BF_NOT_FOUND,
        SketchParameterError: _could_not_create,
    }
    not_found: ErrorReplies = {KeyMissingError: messages.BF_NOT_FOUND}

    # Pipelined runs to one filter (CommandRegistry.run_at): one hash batch, one read and one
    # write for the whole run. BloomFilter.madd answers as the calls in turn would (an item is
    # new only if no earlier item of the run set all its bits), and no call changes the key's
    # type, so a type error is every call's (run_at only groups calls of the right arity).
    def adds_run(single: bool) -> RunHandler:
        def run_adds(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
            items = _items_of(run)
            added = bloom.add(db_of(ctx), run[0][1], items, ctx.now_ms, BloomCreate())
            if single:
                return [int(new) for new in added]
            return _per_call(run, added)

        return run_adds

    def exists_run(single: bool) -> RunHandler:
        def run_exists(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
            found = bloom.exists(db_of(ctx), run[0][1], _items_of(run), ctx.now_ms)
            if single:
                return [int(flag) for flag in found]
            return _per_call(run, found)

        return run_exists

    @registry.command("BF.RESERVE", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0",
                      errors={KeyExistsError: messages.BF_ITEM_EXISTS,
                              SketchParameterError: _could_not_create},
                      summary="Creates a Bloom filter. hearsay's filters never scale: "
                      "NONSCALING is implied and EXPANSION is refused.")  # fmt: skip
    def bf_reserve(ctx: ClientContext, args: list[bytes]) -> Reply:
        args, window = split_window(args, 4)  # ... WINDOW seconds [SLICES n]
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
        if window is not None:
            if db_of(ctx).get(args[1], ctx.now_ms) is not None:
                raise KeyExistsError("item exists")
            plain = BloomFilter.reserve(error_rate, capacity).schema
            create_windowed(ctx, args[1], plain, window)
            return OK
        bloom.reserve(db_of(ctx), args[1], error_rate, capacity, ctx.now_ms)
        return OK

    @registry.command("BF.ADD", arity=3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=adds, run=adds_run(single=True),
                      summary="Adds an item (creates the filter with error 0.01, capacity "
                      "100). Never refused as full: past capacity the false-positive rate "
                      "grows.")  # fmt: skip
    def bf_add(ctx: ClientContext, args: list[bytes]) -> Reply:
        return int(bloom.add(db_of(ctx), args[1], args[2:3], ctx.now_ms, BloomCreate())[0])

    @registry.command("BF.MADD", arity=-3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=adds, run=adds_run(single=False),
                      summary="Adds items to a Bloom filter (created with the defaults when "
                      "absent).")  # fmt: skip
    def bf_madd(ctx: ClientContext, args: list[bytes]) -> Reply:
        added = bloom.add(db_of(ctx), args[1], args[2:], ctx.now_ms, BloomCreate())
        return [int(new) for new in added]

    @registry.command("BF.INSERT", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=adds,
                      summary="Adds items, creating the filter with CAPACITY/ERROR unless "
                      "NOCREATE.")  # fmt: skip
    def bf_insert(ctx: ClientContext, args: list[bytes]) -> Reply:
        create, items_at = _insert_options(args)
        added = bloom.add(db_of(ctx), args[1], args[items_at:], ctx.now_ms, create)
        return [int(new) for new in added]

    @registry.command("BF.EXISTS", arity=3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", run=exists_run(single=True),
                      summary="Whether an item may have been added to a Bloom filter.")  # fmt: skip
    def bf_exists(ctx: ClientContext, args: list[bytes]) -> Reply:
        return int(bloom.exists(db_of(ctx), args[1], args[2:3], ctx.now_ms)[0])

    @registry.command("BF.MEXISTS", arity=-3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", run=exists_run(single=False),
                      summary="Whether each item may have been added to a Bloom "
                      "filter.")  # fmt: skip
    def bf_mexists(ctx: ClientContext, args: list[bytes]) -> Reply:
        return [int(found) for found in bloom.exists(db_of(ctx), args[1], args[2:], ctx.now_ms)]

    @registry.command("BF.INFO", arity=-2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=not_found,
                      summary="A Bloom filter's capacity, size, filters, items (estimated from "
                      "the set bits) and expansion (always nil: non-scaling).")  # fmt: skip
    def bf_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 3:
            raise CommandError(messages.wrong_number_of_args("bf.info"))
        info = bloom.info(db_of(ctx), args[1], ctx.now_ms)
        values: dict[str, Reply] = {
            "Capacity": info.capacity,
            "Size": info.size_bytes,
            "Number of filters": info.filters,
            "Number of items inserted": info.items,
            "Expansion rate": info.expansion,
        }
        if len(args) == 3:
            name = _INFO_FIELDS.get(args[2].upper())
            if name is None:
                raise CommandError(messages.BF_INFO_INVALID_VALUE)
            return [values[name]]
        return Map((SimpleString(name), value) for name, value in values.items())

    @registry.command("BF.CARD", arity=2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="2.4.4",
                      summary="Estimated number of items added to a Bloom filter (0 when "
                      "absent).")  # fmt: skip
    def bf_card(ctx: ClientContext, args: list[bytes]) -> Reply:
        return bloom.card(db_of(ctx), args[1], ctx.now_ms)

    @registry.command("BF.MERGE", arity=-3, flags=writes, first_key=1, last_key=-1, step=1,
                      group=group, errors=not_found,
                      summary="hearsay: union of Bloom filters of equal shape into the "
                      "destination.")  # fmt: skip
    def bf_merge(ctx: ClientContext, args: list[bytes]) -> Reply:
        bloom.merge(db_of(ctx), args[1], args[2:], ctx.now_ms)  # shapes differ: ERR <why>
        return OK

    # BF.SCANDUMP / BF.LOADCHUNK go through the entry codec (hearsay.engine.dump), not the
    # filter's representation: each chunk is a self-contained payload of part of the entry.
    @registry.command("BF.SCANDUMP", arity=3, flags=("readonly",), first_key=1, last_key=1,
                      step=1, group=group, since="1.0.0",
                      summary="The next chunk of a Bloom filter's dump: [next cursor, data], "
                      "cursor 0 and empty data after the last (hearsay's payload "
                      "format).")  # fmt: skip
    def bf_scandump(ctx: ClientContext, args: list[bytes]) -> Reply:
        cursor = integer_arg(args[2])
        entry = db_of(ctx).get_typed(args[1], KIND_BLOOM, ctx.now_ms)
        if entry is None:
            raise CommandError(messages.BF_NOT_FOUND)
        next_cursor, chunk = dumps.scan_dump(entry, cursor)
        return [next_cursor, chunk]

    @registry.command("BF.LOADCHUNK", arity=4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0",
                      errors={dumps.PayloadError: messages.BF_LOADCHUNK_BAD_DATA.format,
                              DecodeError: messages.BF_LOADCHUNK_BAD_DATA.format},
                      summary="Merges a chunk of BF.SCANDUMP into a Bloom filter (the first "
                      "chunk creates it; chunks merge in any order).")  # fmt: skip
    def bf_loadchunk(ctx: ClientContext, args: list[bytes]) -> Reply:
        integer_arg(args[2])  # the cursor is checked; every chunk merges on its own
        dumps.load_chunk(db_of(ctx), args[1], args[3], KIND_BLOOM, ctx.now_ms)
        return OK
