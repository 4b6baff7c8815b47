"""Key commands: DEL, EXISTS, TYPE, SCAN, KEYS, the EXPIRE family, TTL, PERSIST, DBSIZE, MEMORY,
OBJECT, DUMP and RESTORE.

Replies follow Redis 7: integer counts, ``-2``/``-1`` for TTL of a missing/persistent key, and
SCAN's ``[cursor, [keys...]]``. Deletes and expiry are lattice operations (a new epoch), so
they replicate and converge like any write.
"""

from __future__ import annotations

from typing import Final

from hearsay.base.errors import DecodeError
from hearsay.engine import dump as dumps
from hearsay.engine.replica import SCAN_COUNT_DEFAULT, Replica
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry
from hearsay.resp.parser import parse_integer
from hearsay.resp.replies import OK, Reply, SimpleString
from hearsay.sketch.schemas import KIND_COUNTER

_EXPIRE_UNITS_MS: Final = {b"EXPIRE": 1000, b"PEXPIRE": 1, b"EXPIREAT": 1000, b"PEXPIREAT": 1}
_EXPIRE_OPTIONS: Final = frozenset({b"NX", b"XX", b"GT", b"LT"})
_ABSOLUTE: Final = frozenset({b"EXPIREAT", b"PEXPIREAT"})
_INT64_MAX: Final = (1 << 63) - 1
_OBJECT_HELP: Final = (
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation of the value at <key>, in Redis's names:",
    "    'int' for a counter, 'raw' for every sketch (Redis says 'raw' for an HLL string).",
    "FREQ <key>",
    "    Not tracked: hearsay has no LFU eviction policy.",
    "IDLETIME <key>",
    "    Not tracked: hearsay keeps no access times.",
    "REFCOUNT <key>",
    "    Return 1: every value has one reference.",
    "HELP",
    "    Print this help.",
)
_DUMP_ERRORS: Final = {
    dumps.PayloadError: messages.DUMP_PAYLOAD_WRONG,
    DecodeError: messages.DUMP_BAD_DATA,
    dumps.BusyKeyError: messages.BUSYKEY,
}


def db_of(ctx: ClientContext) -> Replica:
    """The engine's replica behind a connection."""
    assert isinstance(ctx.db, Replica), "the runtime passes the engine's Replica as ctx.db"
    return ctx.db


def integer_arg(data: bytes, error: str = messages.NOT_AN_INTEGER) -> int:
    value = parse_integer(data)
    if value is None:
        raise CommandError(error)
    return value


def install_key_commands(registry: CommandRegistry) -> None:
    """Register the key commands on ``registry``."""

    @registry.command("DEL", arity=-2, flags=("write",), first_key=1, last_key=-1, step=1,
                      group="keyspace", summary="Deletes one or more keys.")  # fmt: skip
    def delete(ctx: ClientContext, args: list[bytes]) -> Reply:
        return db_of(ctx).delete(args[1:], ctx.now_ms)

    @registry.command("UNLINK", arity=-2, flags=("write", "fast"), first_key=1, last_key=-1,
                      step=1, group="keyspace", summary="Deletes one or more keys.")  # fmt: skip
    def unlink(ctx: ClientContext, args: list[bytes]) -> Reply:
        return db_of(ctx).delete(args[1:], ctx.now_ms)

    @registry.command("EXISTS", arity=-2, flags=("readonly", "fast"), first_key=1, last_key=-1,
                      step=1, group="keyspace", summary="Counts the keys that exist.")  # fmt: skip
    def exists(ctx: ClientContext, args: list[bytes]) -> Reply:
        return db_of(ctx).exists(args[1:], ctx.now_ms)

    @registry.command("TOUCH", arity=-2, flags=("readonly", "fast"), first_key=1, last_key=-1,
                      step=1, group="keyspace", since="3.2.1",
                      summary="Counts the keys that exist (hearsay keeps no access times to "
                      "update).")  # fmt: skip
    def touch(ctx: ClientContext, args: list[bytes]) -> Reply:
        return db_of(ctx).exists(args[1:], ctx.now_ms)

    @registry.command("TYPE", arity=2, flags=("readonly", "fast"), first_key=1, last_key=1,
                      step=1, group="keyspace", summary="The type of a key.")  # fmt: skip
    def type_(ctx: ClientContext, args: list[bytes]) -> Reply:
        return SimpleString(db_of(ctx).type_of(args[1], ctx.now_ms))

    @registry.command("USAGE", parent="MEMORY", arity=-3, flags=("readonly",), first_key=2,
                      last_key=2, step=1, group="server",
                      summary="Bytes a key and its value occupy in memory.")  # fmt: skip
    def memory_usage(ctx: ClientContext, args: list[bytes]) -> Reply:
        # SAMPLES only tunes Redis's sampling of large collections; the figure here is exact.
        if len(args) not in (3, 5) or (len(args) == 5 and args[3].upper() != b"SAMPLES"):
            raise CommandError(messages.SYNTAX_ERROR)
        if len(args) == 5 and integer_arg(args[4]) < 0:
            raise CommandError(messages.SYNTAX_ERROR)
        return db_of(ctx).memory_usage(args[2], ctx.now_ms)

    @registry.command("DBSIZE", arity=1, flags=("readonly", "fast"), group="server",
                      summary="The number of keys.")  # fmt: skip
    def dbsize(ctx: ClientContext, args: list[bytes]) -> Reply:
        return len(db_of(ctx).keyspace)

    @registry.command("KEYS", arity=2, flags=("readonly",), group="keyspace",
                      summary="Every key matching a glob pattern.")  # fmt: skip
    def keys(ctx: ClientContext, args: list[bytes]) -> Reply:
        return list(db_of(ctx).keys(args[1], ctx.now_ms))

    @registry.command("SCAN", arity=-2, flags=("readonly",), group="keyspace",
                      summary="Iterates over the keys.")  # fmt: skip
    def scan(ctx: ClientContext, args: list[bytes]) -> Reply:
        cursor = parse_integer(args[1])
        if cursor is None or cursor < 0:
            raise CommandError(messages.INVALID_CURSOR)
        match: bytes | None = None
        count = SCAN_COUNT_DEFAULT
        type_filter: str | None = None
        i = 2
        while i < len(args):
            option = args[i].upper()
            if i + 1 >= len(args):
                raise CommandError(messages.SYNTAX_ERROR)
            if option == b"MATCH":
                match = args[i + 1]
            elif option == b"COUNT":
                count = integer_arg(args[i + 1])
                if count < 1:
                    raise CommandError(messages.SYNTAX_ERROR)
            elif option == b"TYPE":
                type_filter = args[i + 1].decode("latin-1").lower()
            else:
                raise CommandError(messages.SYNTAX_ERROR)
            i += 2
        next_cursor, found = db_of(ctx).scan(cursor, ctx.now_ms, match, count, type_filter)
        return [str(next_cursor).encode(), list(found)]

    def expire_generic(ctx: ClientContext, args: list[bytes]) -> Reply:
        command = args[0].upper()
        amount = integer_arg(args[2])
        option = None
        if len(args) > 3:  # (at most one option, as Redis 7's EXPIRE)
            option = args[3].upper()
            if len(args) > 4 or option not in _EXPIRE_OPTIONS:
                raise CommandError(messages.SYNTAX_ERROR)
        unit = _EXPIRE_UNITS_MS[command]
        if abs(amount) > _INT64_MAX // unit:
            raise CommandError(messages.invalid_expire_time(command.decode().lower()))
        deadline = amount * unit if command in _ABSOLUTE else ctx.now_ms + amount * unit
        if deadline > _INT64_MAX or (command not in _ABSOLUTE and amount * unit > _INT64_MAX):
            raise CommandError(messages.invalid_expire_time(command.decode().lower()))
        database = db_of(ctx)
        entry = database.get(args[1], ctx.now_ms)
        if entry is None:
            return 0
        current = entry.deadline_ms
        if (
            (option == b"NX" and current)
            or (option == b"XX" and not current)
            or (option == b"GT" and (not current or deadline <= current))
            or (option == b"LT" and current and deadline >= current)
        ):
            return 0
        return int(database.expire_at(args[1], max(deadline, 1), ctx.now_ms))

    # One handler, four names. Their run handler runs the calls one by one: what batches is
    # a pipeline of them over many keys (CommandRegistry.calls_at), checked and answered once.
    for name in ("EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"):
        registry.command(name, arity=-3, flags=("write", "fast"), first_key=1, last_key=1,
                         step=1, group="keyspace", run=registry.dispatch_each,
                         summary="Sets a key's time to live.")(expire_generic)  # fmt: skip

    @registry.command("PERSIST", arity=2, flags=("write", "fast"), first_key=1, last_key=1,
                      step=1, group="keyspace", summary="Removes a key's expiry.")  # fmt: skip
    def persist(ctx: ClientContext, args: list[bytes]) -> Reply:
        return int(db_of(ctx).expire_at(args[1], 0, ctx.now_ms))

    @registry.command("TTL", arity=2, flags=("readonly", "fast"), first_key=1, last_key=1,
                      step=1, group="keyspace", summary="Seconds left to live.")  # fmt: skip
    def ttl(ctx: ClientContext, args: list[bytes]) -> Reply:
        left = db_of(ctx).ttl_ms(args[1], ctx.now_ms)
        return left if left < 0 else (left + 500) // 1000

    @registry.command("PTTL", arity=2, flags=("readonly", "fast"), first_key=1, last_key=1,
                      step=1, group="keyspace", summary="Milliseconds left to live.")  # fmt: skip
    def pttl(ctx: ClientContext, args: list[bytes]) -> Reply:
        return db_of(ctx).ttl_ms(args[1], ctx.now_ms)

    registry.container("OBJECT", group="keyspace", since="2.2.3",
                       summary="A container for object introspection commands.")  # fmt: skip

    @registry.command("ENCODING", parent="OBJECT", arity=3, flags=("readonly",), first_key=2,
                      last_key=2, step=1, group="keyspace", since="2.2.3",
                      summary="The internal encoding of a key's value, in Redis's names: int "
                      "for a counter, raw for a sketch.")  # fmt: skip
    def object_encoding(ctx: ClientContext, args: list[bytes]) -> Reply:
        entry = db_of(ctx).get(args[2], ctx.now_ms)
        if entry is None or entry.schema is None:
            return None
        return b"int" if entry.schema.kind == KIND_COUNTER else b"raw"

    @registry.command("REFCOUNT", parent="OBJECT", arity=3, flags=("readonly",), first_key=2,
                      last_key=2, step=1, group="keyspace", since="2.2.3",
                      summary="The reference count of a key's value: always 1.")  # fmt: skip
    def object_refcount(ctx: ClientContext, args: list[bytes]) -> Reply:
        return None if db_of(ctx).get(args[2], ctx.now_ms) is None else 1

    @registry.command("FREQ", parent="OBJECT", arity=3, flags=("readonly",), first_key=2,
                      last_key=2, step=1, group="keyspace", since="4.0.0",
                      summary="Refused as Redis does without an LFU policy.")  # fmt: skip
    def object_freq(ctx: ClientContext, args: list[bytes]) -> Reply:
        if db_of(ctx).get(args[2], ctx.now_ms) is None:
            return None
        raise CommandError(messages.OBJECT_FREQ_NOT_TRACKED)

    @registry.command("IDLETIME", parent="OBJECT", arity=3, flags=("readonly",), first_key=2,
                      last_key=2, step=1, group="keyspace", since="2.2.3",
                      summary="Refused: hearsay keeps no access times.")  # fmt: skip
    def object_idletime(ctx: ClientContext, args: list[bytes]) -> Reply:
        if db_of(ctx).get(args[2], ctx.now_ms) is None:
            return None
        raise CommandError(messages.OBJECT_IDLETIME_NOT_TRACKED)

    @registry.command("HELP", parent="OBJECT", arity=2, flags=("loading", "stale"),
                      group="keyspace", since="6.2.0",
                      summary="Shows helpful text about the different subcommands.")  # fmt: skip
    def object_help(ctx: ClientContext, args: list[bytes]) -> Reply:
        return [SimpleString(line) for line in _OBJECT_HELP]

    @registry.command("DUMP", arity=2, flags=("readonly",), first_key=1, last_key=1, step=1,
                      group="keyspace", since="2.6.0",
                      summary="A key's value as hearsay's payload (versioned, checksummed; "
                      "not Redis's RDB format): RESTORE reads it on any hearsay node.")  # fmt: skip
    def dump(ctx: ClientContext, args: list[bytes]) -> Reply:
        return dumps.dump(db_of(ctx), args[1], ctx.now_ms)

    @registry.command("RESTORE", arity=-4, flags=("write", "denyoom"), first_key=1,
                      last_key=1, step=1, group="keyspace", since="2.6.0", errors=_DUMP_ERRORS,
                      summary="Creates a key from a DUMP payload; refuses a corrupt or "
                      "unknown-version one.")  # fmt: skip
    def restore(ctx: ClientContext, args: list[bytes]) -> Reply:
        ttl = integer_arg(args[2])
        replace = absolute = False
        i = 4
        while i < len(args):  # bounded: i grows every pass
            option = args[i].upper()
            if option == b"REPLACE":
                replace = True
            elif option == b"ABSTTL":
                absolute = True
            elif option in (b"IDLETIME", b"FREQ") and i + 1 < len(args):
                # Accepted as Redis does, then ignored: hearsay keeps no access times.
                value = integer_arg(args[i + 1])
                if option == b"IDLETIME" and value < 0:
                    raise CommandError(messages.RESTORE_INVALID_IDLETIME)
                if option == b"FREQ" and not 0 <= value <= 255:
                    raise CommandError(messages.RESTORE_INVALID_FREQ)
                i += 1
            else:
                raise CommandError(messages.SYNTAX_ERROR)
            i += 1
        if ttl < 0:
            raise CommandError(messages.RESTORE_INVALID_TTL)
        deadline = ttl if absolute or not ttl else ctx.now_ms + ttl
        if deadline > _INT64_MAX:
            raise CommandError(messages.RESTORE_INVALID_TTL)
        dumps.restore(db_of(ctx), args[1], args[3], deadline, replace=replace, now_ms=ctx.now_ms)
        return OK

    def flush(ctx: ClientContext, args: list[bytes]) -> Reply:
        """FLUSHALL/FLUSHDB [ASYNC|SYNC]: raise the replicated flush floor (one small write;
        every key reads as gone at once, the sweep reclaims memory and disk in the
        background: SYNC and ASYNC alike, see docs/commands.md)."""
        if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC")):
            raise CommandError(messages.SYNTAX_ERROR)
        db_of(ctx).flush_all(ctx.now_ms)
        return OK

    for name in ("FLUSHALL", "FLUSHDB"):  # one database: the same command
        registry.command(name, arity=-1, flags=("write",), group="server", since="1.0.0",
                         summary="Deletes every key on every node, keys still on their way "
                         "included (a replicated floor; see docs/commands.md).")(flush)  # fmt: skip
