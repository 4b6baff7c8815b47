"""Vignette vector commands: VMAX and VGET (hearsay's own)."""

from __future__ import annotations

from typing import Final

from hearsay.engine.families import vector
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry
from hearsay.resp.key_commands import db_of
from hearsay.resp.parser import parse_integer
from hearsay.resp.replies import Reply

__all__ = ["install_vector_commands"]

_INDEX_MAX: Final = (1 << 32) - 1
_VALUE_MAX: Final = (1 << 63) - 1


def install_vector_commands(registry: CommandRegistry) -> None:
    """Register VMAX and VGET on ``registry``."""
    group = "vector"

    @registry.command("VMAX", arity=-4, flags=("write", "denyoom", "fast"), first_key=1,
                      last_key=1, step=1, group=group,
                      summary="hearsay: raises a vignette vector's indices to at least the "
                      "given values; replies how many grew.")  # fmt: skip
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
        return vector.vmax(db_of(ctx), args[1], indices, values, ctx.now_ms)

    @registry.command("VGET", arity=2, flags=("readonly", "fast"), first_key=1, last_key=1,
                      step=1, group=group, run=registry.repeated_reads,
                      summary="hearsay: a vignette vector as a flat array index, value, ... by "
                      "index.")  # fmt: skip
    def vget(ctx: ClientContext, args: list[bytes]) -> Reply:
        return [number for pair in vector.vget(db_of(ctx), args[1], ctx.now_ms) for number in pair]
