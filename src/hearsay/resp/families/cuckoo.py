"""Cuckoo filter commands as RedisBloom's rm_cuckoo.c answers them: CF.RESERVE, CF.ADD,
CF.ADDNX, CF.INSERT, CF.INSERTNX, CF.EXISTS, CF.MEXISTS, CF.DEL, CF.COUNT, CF.INFO,
CF.SCANDUMP, CF.LOADCHUNK.

The error texts are RedisBloom's (here rather than in :mod:`hearsay.resp.messages`: they are
this family's alone). Departures: see :mod:`hearsay.sketch.cuckoo` (relocation's victims
and its moves per call) and :mod:`hearsay.engine.families.cuckoo`;
one CF.INSERT, CF.INSERTNX or CF.MEXISTS carries at most :data:`ITEMS_PER_CALL_MAX` items (so no
request holds the node for long).
"""

from __future__ import annotations

from typing import Final

from hearsay.base.errors import SketchParameterError
from hearsay.engine.families import cuckoo
from hearsay.engine.families.common import KeyExistsError, KeyMissingError, ShapeMismatchError
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry, ErrorReplies
from hearsay.resp.key_commands import db_of
from hearsay.resp.parser import parse_integer
from hearsay.resp.replies import OK, ErrorReply, Map, Reply, SimpleString
from hearsay.sketch.cuckoo import ChunkError

__all__ = ["ITEMS_PER_CALL_MAX", "install_cuckoo_commands"]

ITEMS_PER_CALL_MAX: Final = 10_000
"""Items one CF.INSERT, CF.INSERTNX or CF.MEXISTS may carry (RedisBloom has no bound): an
item of a filter that filled may visit each of its 64 places in 32 sub-filters, up to ~20
microseconds in Python, so this keeps a call to a fraction of a second (a client sends more in
more calls)."""

NOT_FOUND: Final = "ERR not found"
ITEM_EXISTS: Final = "ERR item exists"
FILTER_FULL: Final = "ERR Filter is full"
BAD_CAPACITY: Final = "ERR Bad capacity"
CAPACITY_TOO_SMALL: Final = "ERR Capacity must be at least (BucketSize * 2)"
CAPACITY_TOO_LARGE: Final = "ERR CF: capacity too large (a sub-filter must fit 2**32 slots)"
BAD_ITERATOR: Final = "ERR Invalid iterator"
CHUNK_REFUSED: Final = "ERR Couldn't load chunk: "
CHUNK_MISMATCH: Final = "ERR Couldn't load chunk: the key holds a filter of other parameters"
TOO_MANY_ITEMS: Final = f"ERR CF: too many items for one call (at most {ITEMS_PER_CALL_MAX})"

# RESERVE's options: name, smallest, largest.
_OPTIONS: Final = {
    b"BUCKETSIZE": (1, 255),
    b"MAXITERATIONS": (1, 65_535),
    b"EXPANSION": (0, 32_768),
}


def _option(name: bytes, arg: bytes) -> int:
    low, high = _OPTIONS[name]
    value = parse_integer(arg)
    label = name.decode()
    if value is None:
        raise CommandError(f"ERR Couldn't parse {label}")
    if not low <= value <= high:
        raise CommandError(
            f"ERR {label}: value must be an integer between {low} and {high}, inclusive."
        )
    return value


def _capacity(arg: bytes) -> int:
    value = parse_integer(arg)
    if value is None or value <= 0:
        raise CommandError(BAD_CAPACITY)
    return value


def install_cuckoo_commands(registry: CommandRegistry) -> None:
    """Register the CF.* commands on ``registry``."""
    group = "cf"
    writes, reads = ("write", "denyoom"), ("readonly", "fast")
    missing: ErrorReplies = {KeyMissingError: NOT_FOUND}

    @registry.command("CF.RESERVE", arity=-3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0",
                      errors={KeyExistsError: ITEM_EXISTS,
                              SketchParameterError: CAPACITY_TOO_LARGE},
                      summary="Creates a cuckoo filter (MAXITERATIONS is accepted and reported, "
                      "not used: hearsay never kicks between buckets).")  # fmt: skip
    def cf_reserve(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) % 2 == 0:
            raise CommandError(messages.wrong_number_of_args("cf.reserve"))
        capacity = _capacity(args[2])
        chosen = {b"BUCKETSIZE": 2, b"MAXITERATIONS": 20, b"EXPANSION": 1}
        for at in range(3, len(args), 2):
            name = args[at].upper()
            if name not in _OPTIONS:
                raise CommandError(messages.SYNTAX_ERROR)
            chosen[name] = _option(name, args[at + 1])
        if capacity < 2 * chosen[b"BUCKETSIZE"]:
            raise CommandError(CAPACITY_TOO_SMALL)
        params = (capacity, chosen[b"BUCKETSIZE"], chosen[b"MAXITERATIONS"], chosen[b"EXPANSION"])
        cuckoo.reserve(db_of(ctx), args[1], params, ctx.now_ms)
        return OK

    # Pipelined runs to one filter (CommandRegistry.run_at): the engine places the items in
    # turn, each seeing the ones before, and writes once; a FULL item gets its own error.
    def add_run(ctx: ClientContext, run: list[list[bytes]], only_new: bool) -> list[Reply]:
        replies = cuckoo.add(db_of(ctx), run[0][1], [args[2] for args in run], ctx.now_ms,
                             only_new=only_new, capacity=cuckoo.CAPACITY_DEFAULT)  # fmt: skip
        return [ErrorReply(FILTER_FULL) if r == cuckoo.FULL else r for r in replies]

    def cf_add_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        return add_run(ctx, run, only_new=False)

    def cf_addnx_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        return add_run(ctx, run, only_new=True)

    @registry.command("CF.ADD", arity=3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=missing, run=cf_add_run,
                      summary="Adds an item (another copy if present); creates the "
                      "filter.")  # fmt: skip
    def cf_add(ctx: ClientContext, args: list[bytes]) -> Reply:
        return add_run(ctx, [args], only_new=False)[0]

    @registry.command("CF.ADDNX", arity=3, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=missing, run=cf_addnx_run,
                      summary="Adds an item unless present; creates the filter.")  # fmt: skip
    def cf_addnx(ctx: ClientContext, args: list[bytes]) -> Reply:
        return add_run(ctx, [args], only_new=True)[0]

    def insert(ctx: ClientContext, args: list[bytes], only_new: bool) -> Reply:
        name = args[0].decode(errors="replace").lower()
        capacity: int | None = cuckoo.CAPACITY_DEFAULT
        at = 2
        while at < len(args):
            word = args[at].upper()
            if word == b"CAPACITY" and at + 1 < len(args):
                capacity = _capacity(args[at + 1])
                at += 2
            elif word == b"NOCREATE":
                capacity = None
                at += 1
            elif word == b"ITEMS":
                break
            else:
                raise CommandError(messages.SYNTAX_ERROR)
        items = args[at + 1 :]
        if at >= len(args) or not items:
            raise CommandError(messages.wrong_number_of_args(name))
        if capacity is not None and capacity < 4:
            raise CommandError(CAPACITY_TOO_SMALL)
        if len(items) > ITEMS_PER_CALL_MAX:
            raise CommandError(TOO_MANY_ITEMS)
        return list(cuckoo.add(db_of(ctx), args[1], items, ctx.now_ms, only_new=only_new,
                               capacity=capacity))  # fmt: skip

    @registry.command("CF.INSERT", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0",
                      errors={**missing, SketchParameterError: CAPACITY_TOO_LARGE},
                      summary="Adds items (1 added, -1 full), creating the filter unless "
                      "NOCREATE (at most 10000 a call).")  # fmt: skip
    def cf_insert(ctx: ClientContext, args: list[bytes]) -> Reply:
        return insert(ctx, args, only_new=False)

    @registry.command("CF.INSERTNX", arity=-4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0",
                      errors={**missing, SketchParameterError: CAPACITY_TOO_LARGE},
                      summary="Adds items not present (1 added, 0 present, -1 full; at most "
                      "10000 a call).")  # fmt: skip
    def cf_insertnx(ctx: ClientContext, args: list[bytes]) -> Reply:
        return insert(ctx, args, only_new=True)

    def cf_exists_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        items = [args[2] for args in run]
        return [int(v) for v in cuckoo.exists(db_of(ctx), run[0][1], items, ctx.now_ms)]

    @registry.command("CF.EXISTS", arity=3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", run=cf_exists_run,
                      summary="1 if the item may be in the filter, 0 if it is not.")  # fmt: skip
    def cf_exists(ctx: ClientContext, args: list[bytes]) -> Reply:
        return cf_exists_run(ctx, [args])[0]

    def cf_mexists_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        if len(run) > 1 and any(len(args) - 2 > ITEMS_PER_CALL_MAX for args in run):
            return [reply for args in run for reply in cf_mexists_run(ctx, [args])]
        if len(run[0]) - 2 > ITEMS_PER_CALL_MAX:
            return [ErrorReply(TOO_MANY_ITEMS)]
        items = [item for args in run for item in args[2:]]
        found = [int(v) for v in cuckoo.exists(db_of(ctx), run[0][1], items, ctx.now_ms)]
        replies: list[Reply] = []
        at = 0
        for args in run:
            replies.append(found[at : at + len(args) - 2])
            at += len(args) - 2
        return replies

    @registry.command("CF.MEXISTS", arity=-3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", run=cf_mexists_run,
                      summary="CF.EXISTS of each item (at most 10000 a call).")  # fmt: skip
    def cf_mexists(ctx: ClientContext, args: list[bytes]) -> Reply:
        return cf_mexists_run(ctx, [args])[0]

    def cf_del_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        items = [args[2] for args in run]
        return [int(v) for v in cuckoo.delete(db_of(ctx), run[0][1], items, ctx.now_ms)]

    @registry.command("CF.DEL", arity=3, flags=("write",), first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=missing, run=cf_del_run,
                      summary="Removes one copy of an item, whichever node added it.")  # fmt: skip
    def cf_del(ctx: ClientContext, args: list[bytes]) -> Reply:
        return cf_del_run(ctx, [args])[0]

    @registry.command("CF.COUNT", arity=3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0",
                      summary="Copies of the item's fingerprint in its buckets.")  # fmt: skip
    def cf_count(ctx: ClientContext, args: list[bytes]) -> Reply:
        return cuckoo.count(db_of(ctx), args[1], args[2], ctx.now_ms)

    @registry.command("CF.INFO", arity=2, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=missing,
                      summary="A cuckoo filter's parameters and counts.")  # fmt: skip
    def cf_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        info = cuckoo.info(db_of(ctx), args[1], ctx.now_ms)
        fields: list[tuple[str, int]] = [
            ("Size", info.size),
            ("Number of buckets", info.buckets),
            ("Number of filters", info.filters),
            ("Number of items inserted", info.inserted),
            ("Number of items deleted", info.deleted),
            ("Bucket size", info.bucket_size),
            ("Expansion rate", info.expansion),
            ("Max iterations", info.max_iterations),
        ]
        return Map([(SimpleString(name), value) for name, value in fields])

    @registry.command("CF.SCANDUMP", arity=3, flags=reads, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=missing,
                      summary="Dumps the filter in self-contained chunks: iterate from 0 "
                      "until the cursor is 0.")  # fmt: skip
    def cf_scandump(ctx: ClientContext, args: list[bytes]) -> Reply:
        cursor = parse_integer(args[2])
        if cursor is None or cursor < 0:
            raise CommandError(BAD_ITERATOR)
        following, chunk = cuckoo.scan_dump(db_of(ctx), args[1], cursor, ctx.now_ms)
        return [following, chunk]

    @registry.command("CF.LOADCHUNK", arity=4, flags=writes, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0",
                      errors={ShapeMismatchError: CHUNK_MISMATCH},
                      summary="Loads a CF.SCANDUMP chunk (raises the filter to the chunk's "
                      "items; a damaged chunk is refused).")  # fmt: skip
    def cf_loadchunk(ctx: ClientContext, args: list[bytes]) -> Reply:
        cursor = parse_integer(args[2])
        if cursor is None or cursor < 0:
            raise CommandError(BAD_ITERATOR)
        try:
            cuckoo.load_chunk(db_of(ctx), args[1], args[3], ctx.now_ms)
        except ChunkError as exc:
            raise CommandError(CHUNK_REFUSED + str(exc)) from exc
        return OK
