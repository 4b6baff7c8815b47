"""Counter commands: INCR, DECR, INCRBY, DECRBY (PN counters that converge across nodes)."""

from __future__ import annotations

from hearsay.engine.families import counter
from hearsay.engine.families.counter import HllNotIntegerError
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandRegistry, ErrorReplies
from hearsay.resp.key_commands import db_of, integer_arg
from hearsay.resp.replies import Reply

__all__ = ["install_counter_commands"]


def install_counter_commands(registry: CommandRegistry) -> None:
    """Register INCR, DECR, INCRBY and DECRBY on ``registry``."""
    group = "string"
    flags = ("write", "denyoom", "fast")
    an_hll: ErrorReplies = {HllNotIntegerError: messages.NOT_AN_INTEGER}

    @registry.command("INCR", arity=2, flags=flags, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=an_hll,
                      summary="Increments a counter by one (a PN counter that converges across "
                      "nodes).")  # fmt: skip
    def incr(ctx: ClientContext, args: list[bytes]) -> Reply:
        return counter.incrby(db_of(ctx), args[1], 1, ctx.now_ms)

    @registry.command("DECR", arity=2, flags=flags, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=an_hll,
                      summary="Decrements a counter by one.")  # fmt: skip
    def decr(ctx: ClientContext, args: list[bytes]) -> Reply:
        return counter.incrby(db_of(ctx), args[1], -1, ctx.now_ms)

    @registry.command("INCRBY", arity=3, flags=flags, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=an_hll,
                      summary="Increments a counter by a signed 64-bit amount.")  # fmt: skip
    def incrby(ctx: ClientContext, args: list[bytes]) -> Reply:
        return counter.incrby(db_of(ctx), args[1], integer_arg(args[2]), ctx.now_ms)

    @registry.command("DECRBY", arity=3, flags=flags, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=an_hll,
                      summary="Decrements a counter by a signed 64-bit amount.")  # fmt: skip
    def decrby(ctx: ClientContext, args: list[bytes]) -> Reply:
        return counter.decrby(db_of(ctx), args[1], integer_arg(args[2]), ctx.now_ms)
