"""Bloom filter commands as RedisBloom's rebloom.c answers them: BF.RESERVE, BF.ADD, BF.MADD,
BF.INSERT, BF.EXISTS, BF.MEXISTS, BF.INFO, BF.CARD, and hearsay's BF.MERGE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from hearsay.base.errors import DecodeError, SketchParameterError
from hearsay.engine import dump as dumps
from hearsay.engine.families import bloom
from hearsay.engine.families.bloom import BloomAdds, BloomCreate
from hearsay.engine.families.common import KeyExistsError, KeyMissingError
from hearsay.resp import messages
from hearsay.resp.commands import (
    ClientContext,
    CommandError,
    CommandRegistry,
    ErrorReplies,
    RunHandler,
)
from hearsay.resp.families.bloom_replies import answers, full_message, per_call
from hearsay.resp.families.window import create_windowed, split_window
from hearsay.resp.key_commands import db_of, integer_arg
from hearsay.resp.parser import parse_double, parse_integer
from hearsay.resp.replies import OK, Map, Reply, SimpleString
from hearsay.sketch.bloom import NONSCALING
from hearsay.sketch.schemas import KIND_BLOOM

__all__ = ["install_bloom_commands"]

_DEFAULT_CREATE: Final = BloomCreate()
"""How BF.ADD, BF.MADD and a run of them create a missing filter (frozen: one instance serves
every call instead of one built per command)."""

_INFO_FIELDS: Final = {
    b"CAPACITY": "Capacity",
    b"SIZE": "Size",
    b"FILTERS": "Number of filters",
    b"ITEMS": "Number of items inserted",
    b"EXPANSION": "Expansion rate",
}


def _could_not_create(error: SketchParameterError) -> str:
    return messages.bf_could_not_create(str(error))


@dataclass(frozen=True, slots=True)
class _Option:
    """One option of BF.RESERVE or BF.INSERT: whether it takes a value, and the reply when
    that value is missing (None: the command's wrong-arity error)."""

    takes_value: bool
    missing: str | None = None
    parse: Callable[[bytes], object] | None = None  # None: keep the value's bytes
    bad: str = ""  # the reply when ``parse`` gives None


_RESERVE_OPTIONS: Final = {
    b"NONSCALING": _Option(takes_value=False),
    b"EXPANSION": _Option(takes_value=True, missing=messages.BF_NO_EXPANSION),
}
"""BF.RESERVE's options after ``key error_rate capacity`` (a new option is one line here)."""

_INSERT_OPTIONS: Final = {
    b"CAPACITY": _Option(True, parse=parse_integer, bad=messages.BF_INSERT_BAD_CAPACITY),
    b"ERROR": _Option(True, parse=parse_double, bad=messages.BF_INSERT_BAD_ERROR_RATE),
    b"EXPANSION": _Option(True, parse=parse_integer, bad=messages.BF_INSERT_BAD_EXPANSION),
    b"NOCREATE": _Option(takes_value=False),
    b"NONSCALING": _Option(takes_value=False),
}
"""BF.INSERT's options before ``ITEMS`` (each value checked where it stands, as RedisBloom)."""


def _options(
    args: list[bytes], table: dict[bytes, _Option], unknown: str, arity: CommandError
) -> tuple[dict[bytes, object], int]:
    """The options at the start of ``args`` (name -> value, ``b""`` for a flag) and where
    they end: at the end of ``args`` or at ``ITEMS`` when ``ITEMS`` is not in the table."""
    found: dict[bytes, object] = {}
    pos = 0
    while pos < len(args):  # bounded: pos grows on every pass
        name = args[pos].upper()
        option = table.get(name)
        if option is None:
            if name == b"ITEMS" and b"ITEMS" not in table:
                return found, pos
            raise CommandError(unknown)
        if not option.takes_value:
            found[name] = b""
            pos += 1
            continue
        if pos + 1 == len(args):
            raise arity if option.missing is None else CommandError(option.missing)
        value: object = args[pos + 1]
        if option.parse is not None:
            value = option.parse(args[pos + 1])
            if value is None:
                raise CommandError(option.bad)
        found[name] = value
        pos += 2
    return found, pos


def _reserve_options(args: list[bytes]) -> BloomCreate:
    """BF.RESERVE's arguments, checked in RedisBloom's order."""
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
    arity = CommandError(messages.wrong_number_of_args("bf.reserve"))
    options, _ = _options(args[4:], _RESERVE_OPTIONS, messages.SYNTAX_ERROR, arity)
    expansion = bloom.DEFAULT_EXPANSION
    if b"EXPANSION" in options:
        if b"NONSCALING" in options:
            raise CommandError(messages.BF_NONSCALING_CANNOT_EXPAND)
        raw = options[b"EXPANSION"]
        parsed = parse_integer(raw) if isinstance(raw, bytes) else None
        if parsed is None:
            raise CommandError(messages.BF_BAD_EXPANSION)
        if parsed < 1:
            raise CommandError(messages.BF_EXPANSION_RANGE)
        expansion = parsed
    if b"NONSCALING" in options:
        expansion = NONSCALING
    return BloomCreate(error_rate, capacity, expansion)


def _insert_options(args: list[bytes]) -> tuple[BloomCreate | None, int]:
    """BF.INSERT's options, checked in RedisBloom's order: how to create a missing filter
    (None: NOCREATE) and where the items start."""
    arity = CommandError(messages.wrong_number_of_args("bf.insert"))
    options, at = _options(args[2:], _INSERT_OPTIONS, messages.BF_INSERT_UNKNOWN_ARGUMENT, arity)
    items_at = 2 + at + 1
    if 2 + at == len(args) or items_at == len(args):
        raise arity
    error_rate = cast(float, options.get(b"ERROR", bloom.DEFAULT_ERROR_RATE))
    capacity = cast(int, options.get(b"CAPACITY", bloom.DEFAULT_CAPACITY))
    expansion = cast(int, options.get(b"EXPANSION", bloom.DEFAULT_EXPANSION))
    if not 0 < error_rate < 1 or capacity < 1 or expansion < 1:
        raise CommandError(messages.BF_INSERT_BAD_ARGUMENT)
    if b"NONSCALING" in options:  # RedisBloom's BF.INSERT lets it override EXPANSION
        expansion = NONSCALING
    if b"NOCREATE" in options:
        return None, items_at
    return BloomCreate(error_rate, capacity, expansion), items_at


def _items_of(run: list[list[bytes]]) -> list[bytes]:
    """Every call's items (its arguments after the key), in order."""
    return [item for args in run for item in args[2:]]


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
    # A refused item (full) ends its call's reply with the error; see _per_call for the rest.
    def adds_run(single: bool) -> RunHandler:
        def run_adds(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
            adds = bloom.add(db_of(ctx), run[0][1], _items_of(run), ctx.now_ms, _DEFAULT_CREATE)
            return per_call(run, adds, single)

        return run_adds

    def exists_run(single: bool) -> RunHandler:
        def run_exists(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
            found = bloom.exists(db_of(ctx), run[0][1], _items_of(run), ctx.now_ms)
            return per_call(run, BloomAdds(list(found)), single)

        return run_exists

    @registry.command("BF.RESERVE", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0",
                      errors={KeyExistsError: messages.BF_ITEM_EXISTS,
                              SketchParameterError: _could_not_create},
                      summary="Creates a scalable Bloom filter (expansion 2 unless EXPANSION "
                      "or NONSCALING say otherwise).")  # fmt: skip
    def bf_reserve(ctx: ClientContext, args: list[bytes]) -> Reply:
        args, window = split_window(args, 4)  # ... WINDOW seconds [SLICES n]
        create = _reserve_options(args)
        if window is not None:  # each slice a filter as BF.RESERVE makes it (scaling or not)
            if db_of(ctx).get(args[1], ctx.now_ms) is not None:
                raise KeyExistsError("item exists")
            create_windowed(ctx, args[1], create.view().schema, window)
            return OK
        bloom.reserve(db_of(ctx), args[1], create, ctx.now_ms)
        return OK

    @registry.command("BF.ADD", arity=3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=adds, run=adds_run(single=True),
                      summary="Adds an item (creates a scalable filter with error 0.01, "
                      "capacity 100, expansion 2 when absent).")  # fmt: skip
    def bf_add(ctx: ClientContext, args: list[bytes]) -> Reply:
        adds = bloom.add(db_of(ctx), args[1], args[2:3], ctx.now_ms, _DEFAULT_CREATE)
        if adds.added[0] is None:
            raise CommandError(full_message(adds))
        return int(adds.added[0])

    @registry.command("BF.MADD", arity=-3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=adds, run=adds_run(single=False),
                      summary="Adds items to a Bloom filter (created with the defaults when "
                      "absent).")  # fmt: skip
    def bf_madd(ctx: ClientContext, args: list[bytes]) -> Reply:
        adds = bloom.add(db_of(ctx), args[1], args[2:], ctx.now_ms, _DEFAULT_CREATE)
        return answers(adds, adds.added)

    @registry.command("BF.INSERT", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=adds,
                      summary="Adds items, creating the filter with CAPACITY/ERROR/EXPANSION/"
                      "NONSCALING unless NOCREATE.")  # fmt: skip
    def bf_insert(ctx: ClientContext, args: list[bytes]) -> Reply:
        create, items_at = _insert_options(args)
        adds = bloom.add(db_of(ctx), args[1], args[items_at:], ctx.now_ms, create)
        return answers(adds, adds.added)

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
