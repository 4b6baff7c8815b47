"""Windowed Top-K over RESP: TOPK.ADD, INCRBY, QUERY, COUNT, LIST and INFO on a key that
``TOPK.RESERVE ... WINDOW s [SLICES n]`` created (``engine/families/window.py`` says what they
do).

Why a module of its own: the windowed handlers check their arguments as the plain ones
(``resp/families/topk.py``) and so import its checks, while that module imports the WINDOW
clause from ``resp/families/window.py``; here neither import goes in a circle. Each command is
wrapped as the other windowed families' (:func:`~hearsay.resp.families.window.wrap_windowed`):
the plain handler runs first and meets a windowed key only as a wrong type, except for the
writes clients pipeline (TOPK.ADD, INCRBY), which look at the key first. A pipelined run of
them on a windowed key is one read and one write, as on a plain key (the calls parsed by the
plain run's :func:`~hearsay.resp.families.topk.run_calls`).
"""

from __future__ import annotations

from hearsay.engine.families import window as windows
from hearsay.engine.interfaces import WaitForAcks
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry
from hearsay.resp.families.topk import (  # the plain commands' checks, kept in one place
    INVALID_INCREMENT,
    WITHCOUNT_EXPECTED,
    _few_short_items,
    _increment,
    _items,
    run_calls,
)
from hearsay.resp.families.window import WindowedRun, window_fields, wrap_windowed
from hearsay.resp.key_commands import db_of
from hearsay.resp.replies import ErrorReply, Map, Reply, SimpleString
from hearsay.sketch.schemas import KIND_TOPK

__all__ = ["install_window_topk_commands"]


def install_window_topk_commands(registry: CommandRegistry) -> None:
    """Let the TOPK.* commands (registered before) serve windowed Top-K keys."""

    def one_by_one(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        replies: list[Reply] = []
        for args in run:
            reply = registry.dispatch(ctx, args)
            assert not isinstance(reply, WaitForAcks), "a TOPK command never waits"
            replies.append(reply)
        return replies

    def depth(ctx: ClientContext, key: bytes) -> int:
        return windows.topk_depth(db_of(ctx), key, ctx.now_ms)

    def runs(step: int) -> WindowedRun:
        def run_calls_at_once(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
            calls = run_calls(run, step, depth(ctx, run[0][1]))
            if not calls:
                return one_by_one(ctx, run)
            return [
                list(added) for added in windows.topk_add(db_of(ctx), run[0][1], calls, ctx.now_ms)
            ]

        return run_calls_at_once

    def add(ctx: ClientContext, args: list[bytes]) -> Reply:
        items = args[2:] if _few_short_items(args, 1) else _items(args, 1, depth(ctx, args[1]))
        added = windows.topk_add(db_of(ctx), args[1], [[(i, 1) for i in items]], ctx.now_ms)
        return list(added[0])

    def incrby(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) % 2:
            raise CommandError(messages.wrong_number_of_args("topk.incrby"))
        items = _items(args, 2, depth(ctx, args[1]))
        calls: list[tuple[bytes, int]] = []
        refused = False
        for item, arg in zip(items, args[3::2], strict=True):
            amount = _increment(arg)
            if amount is None:  # RedisBloom applies the items before it
                refused = True
                break
            calls.append((item, amount))
        out: list[Reply] = []
        if calls:
            out = list(windows.topk_add(db_of(ctx), args[1], [calls], ctx.now_ms)[0])
        if refused:
            out.append(ErrorReply(INVALID_INCREMENT))
        return out

    def query(ctx: ClientContext, args: list[bytes]) -> Reply:
        topk, live = windows.topk_live(db_of(ctx), args[1], ctx.now_ms)
        return [int(hit) for hit in topk.query(live, args[2:])]

    def count(ctx: ClientContext, args: list[bytes]) -> Reply:
        topk, live = windows.topk_live(db_of(ctx), args[1], ctx.now_ms)
        return list(topk.count(live, args[2:]))

    def listed(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 3:
            raise CommandError(messages.wrong_number_of_args("topk.list"))
        with_count = len(args) == 3
        if with_count and not b"WITHCOUNT".startswith(args[2].upper()):  # rm_topk.c's test
            raise CommandError(WITHCOUNT_EXPECTED)
        topk, live = windows.topk_live(db_of(ctx), args[1], ctx.now_ms)
        ranked = topk.top(live)
        if not with_count:
            return [item for item, _ in ranked]
        out: list[Reply] = []
        for item, n in ranked:
            out += (item, n)
        return out

    def info(ctx: ClientContext, args: list[bytes]) -> Reply:
        shape, view = windows.topk_info(db_of(ctx), args[1], ctx.now_ms)
        fields: list[tuple[str, Reply]] = [
            ("k", shape.k),
            ("width", shape.width),
            ("depth", shape.depth),
            ("decay", shape.decay),
        ]
        fields += [(name.lower(), value) for name, value in window_fields(view)]
        return Map((SimpleString(name), value) for name, value in fields)

    wrap_windowed(registry, "TOPK.ADD", KIND_TOPK, add, runs(1), look_first=True)
    wrap_windowed(registry, "TOPK.INCRBY", KIND_TOPK, incrby, runs(2), look_first=True)
    wrap_windowed(registry, "TOPK.QUERY", KIND_TOPK, query)
    wrap_windowed(registry, "TOPK.COUNT", KIND_TOPK, count)
    wrap_windowed(registry, "TOPK.LIST", KIND_TOPK, listed)
    wrap_windowed(registry, "TOPK.INFO", KIND_TOPK, info)
