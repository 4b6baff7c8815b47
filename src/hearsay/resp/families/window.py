"""Windowed keys over RESP: the ``WINDOW seconds [SLICES n]`` clause, and the PF*, BF.* and
CMS.* commands on keys it created (``engine/families/window.py`` says what they do).

Why a module of its own rather than lines in each family's handlers: a plain key's commands
stay exactly as they were. Each wrapped command runs its plain handler first; a plain handler
meets a windowed key only as a wrong type (its kind differs), and only then is the key looked
at again and the windowed handler run. The commands clients pipeline most (PFADD, BF.ADD /
MADD / EXISTS / MEXISTS, CMS.INCRBY / QUERY) look the key up first instead (raising and
catching the wrong type cost a windowed write more than the look-up), and only on a node that
ever held a windowed key of their family (a set membership test otherwise). The creation
commands (HEARSAY.PFRESERVE, BF.RESERVE, CMS.INITBYDIM / INITBYPROB) take the clause with
:func:`split_window`.
"""

from __future__ import annotations

from collections.abc import Callable

from hearsay.base.errors import BoundsError, WrongTypeError
from hearsay.engine.families import window as windows
from hearsay.engine.interfaces import WaitForAcks
from hearsay.lattice.entry import Schema
from hearsay.resp import messages
from hearsay.resp.commands import (
    ClientContext,
    CommandError,
    CommandRegistry,
    Handler,
    RunHandler,
)
from hearsay.resp.families.bloom_replies import answers, full_message, per_call
from hearsay.resp.key_commands import db_of
from hearsay.resp.parser import parse_integer
from hearsay.resp.replies import OK, Map, Reply, SimpleString
from hearsay.sketch.schemas import KIND_BLOOM, KIND_CMS, KIND_HLL
from hearsay.sketch.window import (
    SLICES_DEFAULT,
    SLICES_MAX,
    WINDOW_MS_MAX,
    WINDOW_MS_MIN,
    Window,
    WindowedView,
)

__all__ = [
    "WindowedRun",
    "cms_increments",
    "create_windowed",
    "install_window_commands",
    "split_window",
    "window_fields",
    "wrap_windowed",
]

WindowedHandler = Callable[[ClientContext, list[bytes]], Reply]
WindowedRun = Callable[[ClientContext, list[list[bytes]]], list[Reply]]


def split_window(args: list[bytes], at: int) -> tuple[list[bytes], Window | None]:
    """``args`` without a trailing ``WINDOW seconds [SLICES n]`` clause found at or after
    position ``at``, and the window it asks for (None without one)."""
    start = next((i for i in range(at, len(args)) if args[i].upper() == b"WINDOW"), -1)
    if start < 0:
        return args, None
    clause = args[start:]
    if len(clause) not in (2, 4) or (len(clause) == 4 and clause[2].upper() != b"SLICES"):
        raise CommandError(messages.WINDOW_SYNTAX)
    seconds = parse_integer(clause[1])
    if seconds is None or not WINDOW_MS_MIN <= seconds * 1000 <= WINDOW_MS_MAX:
        raise CommandError(messages.WINDOW_RANGE)
    slices = SLICES_DEFAULT if len(clause) == 2 else parse_integer(clause[3])
    if slices is None or not 1 <= slices <= SLICES_MAX:
        raise CommandError(messages.WINDOW_SLICES_RANGE)
    return args[:start], Window(seconds * 1000, slices)


def create_windowed(ctx: ClientContext, key: bytes, plain_schema: Schema, window: Window) -> bool:
    """Create windowed ``key`` of ``plain_schema``: False when it exists with exactly that
    window, KeyExistsError when it holds anything else."""
    schema = WindowedView(plain_schema, window).schema
    return windows.create(db_of(ctx), key, schema, ctx.now_ms)


def _per_call(run: list[list[bytes]], flags: list[bool] | list[int], per: int) -> list[Reply]:
    """One value per item of the run, cut back into one reply per call."""
    out: list[Reply] = []
    at = 0
    for args in run:
        end = at + (len(args) - 2) // per
        out.append([int(flag) for flag in flags[at:end]])
        at = end
    return out


def _increments(args: list[bytes]) -> tuple[list[bytes], list[int]]:
    """CMS.INCRBY's items and amounts, refused as the plain command refuses them."""
    if len(args) % 2:
        raise CommandError(messages.wrong_number_of_args("cms.incrby"))
    return cms_increments(args)


def cms_increments(args: list[bytes]) -> tuple[list[bytes], list[int]]:
    """The ``item increment`` pairs of CMS.INCRBY (plain and windowed), arity checked before."""
    items: list[bytes] = []
    amounts: list[int] = []
    for i in range(2, len(args), 2):
        amount = parse_integer(args[i + 1])
        if amount is None:
            raise CommandError(messages.CMS_CANNOT_PARSE_NUMBER)
        if amount < 0:
            raise CommandError(messages.CMS_NEGATIVE_NUMBER)
        items.append(args[i])
        amounts.append(amount)
    return items, amounts


def window_fields(view: WindowedView) -> list[tuple[str, Reply]]:
    return [("Window", view.window.window_ms // 1000), ("Slices", view.window.slices)]


def wrap_windowed(
    registry: CommandRegistry,
    name: str,
    kind: str,
    windowed: WindowedHandler,
    run: WindowedRun | None = None,
    *,
    every_key: bool = False,
    look_first: bool = False,
) -> None:
    """Let command ``name`` (registered before) serve windowed keys of ``kind``'s family with
    ``windowed`` (and its pipelined runs with ``run``).

    ``look_first``: the plain handler does much before it meets the type (PFADD hashes and
    builds its delta), so the key's type is looked at first."""
    spec = registry.get(name)
    assert spec is not None and spec.handler is not None, f"register {name} first"
    plain: Handler = spec.handler
    first_kind = windows.windowed_kind(kind)

    def windowed_first(ctx: ClientContext, key: bytes) -> bool:
        """Whether ``key`` is a windowed key of the family, on a node that ever held one (a
        set membership test otherwise): one look-up, no plain handler's work."""
        db = db_of(ctx)
        if first_kind not in db.windows.kinds_seen:
            return False
        entry = db.get(key, ctx.now_ms)
        return entry is not None and entry.schema is not None and entry.schema.kind == first_kind

    def handler(ctx: ClientContext, args: list[bytes]) -> Reply:
        if look_first and windowed_first(ctx, args[1]):
            return windowed(ctx, args)
        try:
            return plain(ctx, args)  # type: ignore[return-value]
        except WrongTypeError:
            keys = args[1:] if every_key else args[1:2]
            if not windows.is_windowed(db_of(ctx), keys, kind, ctx.now_ms):
                raise
            return windowed(ctx, args)

    spec.handler = handler
    plain_run: RunHandler | None = spec.run_handler
    if run is None or plain_run is None:
        return

    def run_handler(ctx: ClientContext, calls: list[list[bytes]]) -> list[Reply]:
        if look_first and windowed_first(ctx, calls[0][1]):
            return run(ctx, calls)
        try:
            return plain_run(ctx, calls)
        except WrongTypeError:
            if not windows.is_windowed(db_of(ctx), calls[0][1:2], kind, ctx.now_ms):
                raise
            return run(ctx, calls)

    spec.run_handler = run_handler


def install_window_commands(registry: CommandRegistry) -> None:
    """Let the PF*, BF.* and CMS.* commands (registered before) serve windowed keys."""

    # -- HyperLogLog -----------------------------------------------------------------------

    def pfadd(ctx: ClientContext, args: list[bytes]) -> Reply:
        return windows.pfadd(db_of(ctx), args[1], args[2:], ctx.now_ms)

    def pfadd_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        calls = [args[2:] for args in run]
        return list(windows.pfadd_run(db_of(ctx), run[0][1], calls, ctx.now_ms))

    def pfcount(ctx: ClientContext, args: list[bytes]) -> Reply:
        return windows.pfcount(db_of(ctx), args[1:], ctx.now_ms)

    def pfmerge(ctx: ClientContext, args: list[bytes]) -> Reply:
        windows.pfmerge(db_of(ctx), args[1], args[2:], ctx.now_ms)
        return OK

    def get(ctx: ClientContext, args: list[bytes]) -> Reply:
        return windows.hll_bytes(db_of(ctx), args[1], ctx.now_ms)

    wrap_windowed(registry, "PFADD", KIND_HLL, pfadd, pfadd_run, look_first=True)
    wrap_windowed(registry, "GET", KIND_HLL, get)
    wrap_windowed(registry, "PFCOUNT", KIND_HLL, pfcount, every_key=True)
    wrap_windowed(registry, "PFMERGE", KIND_HLL, pfmerge, every_key=True)

    # -- Bloom filters ---------------------------------------------------------------------

    def bf_add(ctx: ClientContext, args: list[bytes]) -> Reply:
        adds = windows.bf_add(db_of(ctx), args[1], args[2:3], ctx.now_ms)
        if adds.added[0] is None:
            raise CommandError(full_message(adds))
        return int(adds.added[0])

    def bf_madd(ctx: ClientContext, args: list[bytes]) -> Reply:
        adds = windows.bf_add(db_of(ctx), args[1], args[2:], ctx.now_ms)
        return answers(adds, adds.added)

    def bf_adds_run(single: bool) -> Callable[[ClientContext, list[list[bytes]]], list[Reply]]:
        def run_adds(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
            items = [item for args in run for item in args[2:]]
            return per_call(run, windows.bf_add(db_of(ctx), run[0][1], items, ctx.now_ms), single)

        return run_adds

    def bf_insert(ctx: ClientContext, args: list[bytes]) -> Reply:
        # The plain handler checked the options before it met the windowed key: the first
        # ITEMS is the one (an option's value never parses as "ITEMS").
        items_at = 1 + next(i for i in range(2, len(args)) if args[i].upper() == b"ITEMS")
        adds = windows.bf_add(db_of(ctx), args[1], args[items_at:], ctx.now_ms)
        return answers(adds, adds.added)

    def bf_exists(ctx: ClientContext, args: list[bytes]) -> Reply:
        return int(windows.bf_exists(db_of(ctx), args[1], args[2:3], ctx.now_ms)[0])

    def bf_mexists(ctx: ClientContext, args: list[bytes]) -> Reply:
        found = windows.bf_exists(db_of(ctx), args[1], args[2:], ctx.now_ms)
        return [int(flag) for flag in found]

    def bf_exists_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        items = [item for args in run for item in args[2:]]
        return [int(flag) for flag in windows.bf_exists(db_of(ctx), run[0][1], items, ctx.now_ms)]

    def bf_mexists_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        items = [item for args in run for item in args[2:]]
        return _per_call(run, windows.bf_exists(db_of(ctx), run[0][1], items, ctx.now_ms), 1)

    def bf_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 3:
            raise CommandError(messages.wrong_number_of_args("bf.info"))
        info, view = windows.bf_info(db_of(ctx), args[1], ctx.now_ms)
        fields: list[tuple[str, Reply]] = [
            ("Capacity", info.capacity),
            ("Size", info.size_bytes),
            ("Number of filters", info.filters),
            ("Number of items inserted", info.items),
            ("Expansion rate", info.expansion),
            *window_fields(view),
        ]
        if len(args) == 3:
            wanted = {b"CAPACITY": 0, b"SIZE": 1, b"FILTERS": 2, b"ITEMS": 3, b"EXPANSION": 4}
            at = {**wanted, b"WINDOW": 5, b"SLICES": 6}.get(args[2].upper())
            if at is None:
                raise CommandError(messages.BF_INFO_INVALID_VALUE)
            return [fields[at][1]]
        return Map((SimpleString(name), value) for name, value in fields)

    def bf_card(ctx: ClientContext, args: list[bytes]) -> Reply:
        return windows.bf_card(db_of(ctx), args[1], ctx.now_ms)

    def no_merge(name: str) -> WindowedHandler:
        def refuse(ctx: ClientContext, args: list[bytes]) -> Reply:
            raise CommandError(messages.WINDOW_NO_MERGE.format(name))

        return refuse

    wrap_windowed(registry, "BF.ADD", KIND_BLOOM, bf_add, bf_adds_run(True), look_first=True)
    wrap_windowed(registry, "BF.MADD", KIND_BLOOM, bf_madd, bf_adds_run(False), look_first=True)
    wrap_windowed(registry, "BF.INSERT", KIND_BLOOM, bf_insert)
    wrap_windowed(registry, "BF.EXISTS", KIND_BLOOM, bf_exists, bf_exists_run, look_first=True)
    wrap_windowed(registry, "BF.MEXISTS", KIND_BLOOM, bf_mexists, bf_mexists_run, look_first=True)
    wrap_windowed(registry, "BF.INFO", KIND_BLOOM, bf_info)
    wrap_windowed(registry, "BF.CARD", KIND_BLOOM, bf_card)
    wrap_windowed(registry, "BF.MERGE", KIND_BLOOM, no_merge("BF.MERGE"), every_key=True)

    # -- count-min -------------------------------------------------------------------------

    def cms_incrby(ctx: ClientContext, args: list[bytes]) -> Reply:
        items, amounts = _increments(args)
        return list(windows.cms_incrby(db_of(ctx), args[1], items, amounts, ctx.now_ms))

    def cms_incrby_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        # As the plain run: one batch when no call would be refused, else call by call.
        try:
            parsed = [_increments(args) for args in run]
        except CommandError:
            parsed = []
        if parsed:
            items = [item for call_items, _ in parsed for item in call_items]
            amounts = [amount for _, call_amounts in parsed for amount in call_amounts]
            try:
                estimates = windows.cms_incrby(db_of(ctx), run[0][1], items, amounts, ctx.now_ms)
            except BoundsError:
                pass
            else:
                return _per_call(run, estimates, 2)
        replies: list[Reply] = []
        for args in run:
            reply = registry.dispatch(ctx, args)
            assert not isinstance(reply, WaitForAcks), "a CMS command never waits"
            replies.append(reply)
        return replies

    def cms_query(ctx: ClientContext, args: list[bytes]) -> Reply:
        return list(windows.cms_query(db_of(ctx), args[1], args[2:], ctx.now_ms))

    def cms_query_run(ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        items = [item for args in run for item in args[2:]]
        return _per_call(run, windows.cms_query(db_of(ctx), run[0][1], items, ctx.now_ms), 1)

    def cms_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        info, view = windows.cms_info(db_of(ctx), args[1], ctx.now_ms)
        fields: list[tuple[str, Reply]] = [
            ("width", info.width),
            ("depth", info.depth),
            ("count", info.count),
        ]
        fields += [(name.lower(), value) for name, value in window_fields(view)]
        return Map((SimpleString(name), value) for name, value in fields)

    wrap_windowed(registry, "CMS.INCRBY", KIND_CMS, cms_incrby, cms_incrby_run, look_first=True)
    wrap_windowed(registry, "CMS.QUERY", KIND_CMS, cms_query, cms_query_run, look_first=True)
    wrap_windowed(registry, "CMS.INFO", KIND_CMS, cms_info)
    wrap_windowed(registry, "CMS.MERGE", KIND_CMS, no_merge("CMS.MERGE"), every_key=True)
