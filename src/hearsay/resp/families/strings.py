"""String commands over the families Redis calls strings: GET, MGET and STRLEN (a counter's
value or an HLL's Redis bytes) and SET of Redis's HLL bytes (the only value SET stores)."""

from __future__ import annotations

from hearsay.base.errors import DecodeError
from hearsay.engine.families import hll
from hearsay.engine.families.hll import PrecisionMismatchError
from hearsay.engine.families.strings import get_value, get_values
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry, ErrorReplies
from hearsay.resp.key_commands import db_of
from hearsay.resp.replies import OK, Reply

__all__ = ["install_string_commands"]


def install_string_commands(registry: CommandRegistry) -> None:
    """Register GET, MGET, STRLEN and SET on ``registry``."""
    group = "string"
    not_redis_precision: ErrorReplies = {
        PrecisionMismatchError: lambda error: messages.HLL_GET_PRECISION.format(error.have)
    }

    @registry.command("GET", arity=2, flags=("readonly", "fast"), first_key=1, last_key=1,
                      step=1, group=group, since="1.0.0", errors=not_redis_precision,
                      run=registry.repeated_reads,
                      summary="A counter's value, or the Redis HLL bytes of a HyperLogLog "
                      "(precision 14).")  # fmt: skip
    def get(ctx: ClientContext, args: list[bytes]) -> Reply:
        return get_value(db_of(ctx), args[1], ctx.now_ms)

    @registry.command("MGET", arity=-2, flags=("readonly", "fast"), first_key=1, last_key=-1,
                      step=1, group=group, since="1.0.0",
                      summary="GET of several keys; nil for a missing key and for one GET "
                      "refuses (as Redis's MGET of a non-string key).")  # fmt: skip
    def mget(ctx: ClientContext, args: list[bytes]) -> Reply:
        return list(get_values(db_of(ctx), args[1:], ctx.now_ms))

    @registry.command("STRLEN", arity=2, flags=("readonly", "fast"), first_key=1, last_key=1,
                      step=1, group=group, since="2.2.0", errors=not_redis_precision,
                      summary="The length of GET's value: a counter's digits or an HLL's "
                      "Redis bytes.")  # fmt: skip
    def strlen(ctx: ClientContext, args: list[bytes]) -> Reply:
        """The length of what GET returns (0 for a missing key), as Redis's strings answer."""
        value = get_value(db_of(ctx), args[1], ctx.now_ms)
        return len(value) if isinstance(value, bytes) else 0

    @registry.command("SET", arity=-3, flags=("write", "denyoom"), first_key=1, last_key=1,
                      step=1, group=group, since="1.0.0",
                      errors={PrecisionMismatchError: lambda error:
                              messages.HLL_SET_PRECISION.format(error.have),
                              DecodeError: messages.SET_INVALID_HLL.format},
                      summary="hearsay: SET key <Redis HLL bytes> imports a HyperLogLog. "
                      "Departure from Redis: on an existing HLL the registers are merged "
                      "(union), never replaced, as the lattice only grows (DEL first to "
                      "replace). Plain strings are not stored.")  # fmt: skip
    def set_(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 3:
            raise CommandError(messages.SET_NO_OPTIONS)
        value = args[2]
        if not value.startswith(b"HYLL"):
            raise CommandError(messages.SET_ONLY_HLL)
        hll.set_hll_bytes(db_of(ctx), args[1], value, ctx.now_ms)  # a counter: WRONGTYPE
        return OK
