"""Counter commands: INCR, DECR, INCRBY, DECRBY (PN counters that converge across nodes)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

from hearsay.base.errors import HearsayError
from hearsay.engine.families import counter
from hearsay.engine.families.counter import HllNotIntegerError
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandRegistry, ErrorReplies, RunHandler
from hearsay.resp.key_commands import db_of, integer_arg
from hearsay.resp.parser import parse_integer
from hearsay.resp.replies import Reply

__all__ = ["install_counter_commands"]


def _run_handler(
    registry: CommandRegistry, amount_of: Callable[[list[bytes]], int | None]
) -> RunHandler:
    """A pipelined run of one of the commands on one key as one write (see
    :func:`counter.incrby_run`). ``amount_of`` gives a call's signed amount, None when its
    argument is not an integer. From the first call the batch cannot take (a bad argument, an
    overflow), the calls run one by one through ``registry``: their replies, errors included,
    are exactly those of the calls one after another."""

    def run(ctx: ClientContext, calls: list[list[bytes]]) -> list[Reply]:
        amounts: list[int] = []
        for args in calls:  # bounded by the run's length
            amount = amount_of(args)
            if amount is None:
                break
            amounts.append(amount)
        replies: list[Reply] = []
        if amounts:
            # An error here wrote nothing (the key's type): each call then gets its own.
            with suppress(HearsayError):
                replies.extend(counter.incrby_run(db_of(ctx), calls[0][1], amounts, ctx.now_ms))
        return replies + registry.dispatch_each(ctx, calls[len(replies) :])

    return run


def _negated(data: bytes) -> int | None:
    value = parse_integer(data)
    return None if value is None else -value


def install_counter_commands(registry: CommandRegistry) -> None:
    """Register INCR, DECR, INCRBY and DECRBY on ``registry``."""
    group = "string"
    flags = ("write", "denyoom", "fast")
    an_hll: ErrorReplies = {HllNotIntegerError: messages.NOT_AN_INTEGER}

    @registry.command("INCR", arity=2, flags=flags, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=an_hll,
                      run=_run_handler(registry, lambda args: 1),
                      summary="Increments a counter by one (a PN counter that converges across "
                      "nodes).")  # fmt: skip
    def incr(ctx: ClientContext, args: list[bytes]) -> Reply:
        return counter.incrby(db_of(ctx), args[1], 1, ctx.now_ms)

    @registry.command("DECR", arity=2, flags=flags, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=an_hll,
                      run=_run_handler(registry, lambda args: -1),
                      summary="Decrements a counter by one.")  # fmt: skip
    def decr(ctx: ClientContext, args: list[bytes]) -> Reply:
        return counter.incrby(db_of(ctx), args[1], -1, ctx.now_ms)

    @registry.command("INCRBY", arity=3, flags=flags, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=an_hll,
                      run=_run_handler(registry, lambda args: parse_integer(args[2])),
                      summary="Increments a counter by a signed 64-bit amount.")  # fmt: skip
    def incrby(ctx: ClientContext, args: list[bytes]) -> Reply:
        return counter.incrby(db_of(ctx), args[1], integer_arg(args[2]), ctx.now_ms)

    # DECRBY -9223372036854775808 negates out of range: the run stops there and the call
    # alone gets Redis's "decrement would overflow".
    @registry.command("DECRBY", arity=3, flags=flags, first_key=1, last_key=1, step=1,
                      group=group, since="1.0.0", errors=an_hll,
                      run=_run_handler(registry, lambda args: _negated(args[2])),
                      summary="Decrements a counter by a signed 64-bit amount.")  # fmt: skip
    def decrby(ctx: ClientContext, args: list[bytes]) -> Reply:
        return counter.decrby(db_of(ctx), args[1], integer_arg(args[2]), ctx.now_ms)
