"""The command decorator's ``errors=`` declarations: which reply an engine error gets.

Every family command maps its engine's typed errors to texts by declaration instead of
``try``/``except`` in the handler; these tests pin the rules of that mapping (the replies of the
real commands are pinned against redis-server and fakeredis elsewhere).
"""

from __future__ import annotations

import pytest

from hearsay.base.errors import (
    BoundsError,
    DecodeError,
    HearsayError,
    SketchParameterError,
    WrongTypeError,
)
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry, ErrorReplies
from hearsay.resp.replies import ErrorReply, Reply


class _FinerWrongTypeError(WrongTypeError):
    pass


class _MismatchError(SketchParameterError):
    def __init__(self, have: int) -> None:
        super().__init__(f"have {have}")
        self.have = have


_RAISED: dict[bytes, HearsayError] = {
    b"finer": _FinerWrongTypeError("finer"),
    b"wrongtype": WrongTypeError("plain"),
    b"mismatch": _MismatchError(10),
    b"parameter": SketchParameterError("too big"),
    b"bounds": BoundsError("out of range"),
    b"decode": DecodeError("garbled"),
}


def _registry() -> CommandRegistry:
    registry = CommandRegistry()

    def raising(ctx: ClientContext, args: list[bytes]) -> Reply:
        if args[1] == b"client":
            raise CommandError(messages.SYNTAX_ERROR)
        raise _RAISED[args[1]]

    def raising_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        raise _RAISED[run[0][1]]

    declared: ErrorReplies = {
        _FinerWrongTypeError: "ERR finer",
        SketchParameterError: "ERR param",
        _MismatchError: lambda error: f"ERR mismatch {error.have}",
    }
    registry.command("DECLARED", arity=2, first_key=1, last_key=1, step=1, errors=declared)(raising)
    registry.command("PLAIN", arity=2, first_key=1, last_key=1, step=1)(raising)
    registry.command("RUNS", arity=-2, first_key=1, last_key=1, step=1,
                     errors={BoundsError: "ERR bounds"}, run=raising_run)(raising)  # fmt: skip
    return registry


@pytest.mark.parametrize(
    ("raised", "declared", "plain"),
    [
        (b"finer", "ERR finer", messages.WRONGTYPE),  # the declared subclass
        (b"wrongtype", messages.WRONGTYPE, messages.WRONGTYPE),  # the default for the base
        (b"mismatch", "ERR mismatch 10", "ERR have 10"),  # a function of the exception
        (b"parameter", "ERR param", "ERR too big"),
        (b"bounds", "ERR out of range", "ERR out of range"),  # undeclared: ERR <text>
        (b"decode", "ERR garbled", "ERR garbled"),
        (b"client", messages.SYNTAX_ERROR, messages.SYNTAX_ERROR),  # CommandError: its text
    ],
)
def test_the_nearest_declared_class_answers_else_the_defaults(
    raised: bytes, declared: str, plain: str
) -> None:
    registry = _registry()
    ctx = ClientContext(client_id=1)
    assert registry.dispatch(ctx, [b"DECLARED", raised]) == ErrorReply(declared)
    assert registry.dispatch(ctx, [b"PLAIN", raised]) == ErrorReply(plain)
    assert registry.internal_errors == 0


def test_a_run_handler_answers_every_call_with_the_declared_text() -> None:
    registry = _registry()
    ctx = ClientContext(client_id=1)
    run = [[b"RUNS", b"bounds"]] * 3
    assert registry.run_at(run, 0) == 3
    assert registry.dispatch_run(ctx, run) == [ErrorReply("ERR bounds")] * 3
    assert registry.dispatch_run(ctx, [[b"RUNS", b"finer"]] * 2) == [messages.WRONGTYPE] * 2


def test_only_engine_errors_can_be_declared() -> None:
    registry = CommandRegistry()

    def handler(ctx: ClientContext, args: list[bytes]) -> Reply:
        return 1

    for wrong in (CommandError, ValueError, KeyError):
        with pytest.raises(ValueError, match="errors="):
            registry.command("X", arity=1, errors={wrong: "ERR no"})(handler)  # type: ignore[dict-item]
    assert "X" not in registry
