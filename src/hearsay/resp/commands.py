"""The command table, the dispatcher, and the connection commands (PING, AUTH, HELLO ...).

Why: one table answers ``COMMAND``/``COMMAND INFO``/``COMMAND DOCS`` and drives arity and
authentication checks, so a handler only ever sees well-shaped calls. It is sans-IO: the
driver (runtime layer) owns sockets; this module maps ``list[bytes]`` to a reply value.

Driver loop, per connection::

    ctx = ClientContext(client_id=next_id(), settings=settings, db=engine)
    parser = RequestParser(authenticated=ctx.authenticated)
    ...
    for args in parser:                      # see hearsay.resp.parser
        ctx.now_ms = clock_ms()
        reply = registry.dispatch(ctx, args) # never raises for client mistakes
        out += encode(reply, ctx.protocol)   # read ctx.protocol *after* dispatch (HELLO 3)
        parser.authenticated = ctx.authenticated
        if ctx.close_after_reply:            # QUIT
            break

Registering a command: every command module declares its commands with the one decorator,
:meth:`CommandRegistry.command`, inside its ``install_*_commands(registry)``::

    @registry.command("PFMERGE", arity=-2, flags=("write", "denyoom"), first_key=1,
                      last_key=-1, step=1, group="hyperloglog", since="2.8.9", summary="...",
                      errors={NotAnHllError: messages.HLL_INVALID,
                              PrecisionMismatchError: lambda e: messages.hll_cannot_unfold(
                                  e.have, e.want)})
    def pfmerge(ctx: ClientContext, args: list[bytes]) -> Reply: ...

``args`` is the whole request, ``args[0]`` the command name as the client spelled it. The
declaration is everything ``COMMAND INFO``/``DOCS`` report (arity, flags, key positions as
first/last/step, group, since, summary) plus ``errors``: which reply an engine error gets
(a text, or a function of the exception). A handler reports a client mistake by raising
:class:`CommandError` with a text from :mod:`hearsay.resp.messages`; any other
``hearsay.base.errors`` type is answered by the most specific entry of ``errors`` for its
class, else ``WRONGTYPE`` for a :class:`WrongTypeError` and ``ERR <text>`` for the rest. The
mapping is merged once at registration, and consulted only when a handler raises, so it
costs the hot path nothing. ``ctx.db`` is whatever the engine passes; this module only needs
the :class:`Database` protocol (can it write now?).

Order of checks, as in Redis 7's ``processCommand``: unknown command (or unknown
subcommand), then arity, then authentication (``NOAUTH``), then ``MISCONF`` for a write while
the storage cannot write, then the handler.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from hearsay import __version__
from hearsay.base.errors import HearsayError, WrongTypeError
from hearsay.engine.interfaces import WaitForAcks
from hearsay.resp import messages
from hearsay.resp.parser import parse_integer
from hearsay.resp.replies import (
    OK,
    PONG,
    ErrorReply,
    Map,
    Reply,
    Set,
    SimpleString,
    Verbatim,
)

if TYPE_CHECKING:
    from hearsay.resp.observer import MonitorSend, RequestObserver

log = logging.getLogger(__name__)

INTERNAL_ERROR_REASON_CHARS_MAX: Final = 200
"""An internal error's reply names the exception and this much of its text, on one line."""

LOGGED_INTERNAL_ERRORS_MAX: Final = 1_024
"""How many distinct (command, exception type) pairs get a logged traceback; later ones of a
pair are counted only, so a client repeating a failing command cannot flood the log."""


class StorageFailure(Protocol):
    """Why the database cannot write: ``cause`` names it for the MISCONF reply."""

    @property
    def cause(self) -> str: ...


class Database(Protocol):
    """What dispatch needs from the database: whether its storage can write right now.

    The runtime passes the engine's ``Replica`` as ``ClientContext.db``; data command handlers
    narrow it to that type.
    """

    @property
    def storage_failure(self) -> StorageFailure | None: ...


class CommandError(HearsayError):
    """Raised by a handler to answer with an error reply; ``message`` includes the code."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What the connection commands need to know about the server (read-only)."""

    requirepass: bytes | None = None  # AUTH password of the ``default`` user; None = no AUTH
    server_name: str = "hearsay"  # HELLO's ``server``
    version: str = __version__  # HELLO's ``version``
    mode: str = "standalone"
    role: str = "master"
    databases: int = 1  # SELECT accepts 0 .. databases-1


@dataclass(slots=True)
class ClientContext:
    """Per-connection state, shared by the driver and the handlers."""

    client_id: int
    settings: ServerSettings = field(default_factory=ServerSettings)
    db: Database | None = None
    protocol: int = 2  # RESP version of this connection's replies
    authenticated: bool | None = None  # None: decided from settings.requirepass
    name: bytes | None = None  # CLIENT SETNAME
    lib_name: bytes = b""  # CLIENT SETINFO LIB-NAME
    lib_version: bytes = b""  # CLIENT SETINFO LIB-VER
    db_index: int = 0
    user: str = "default"
    addr: str = ""  # peer "host:port", set by the driver
    laddr: str = ""  # local "host:port", set by the driver
    fd: int = -1
    created_ms: int = 0  # set by the driver (its clock), for CLIENT INFO age
    now_ms: int = 0  # the command's time, set by the engine's Replica.execute
    last_command: str = ""  # full name of the command being run (client|info)
    close_after_reply: bool = False  # QUIT: send the reply, then close
    last_write_seq: int = 0  # the gossip sequence number of this client's latest write (WAIT),
    # kept by the engine's Replica.execute
    query_buffer_bytes: int = 0  # unfinished or waiting input (CLIENT LIST qbuf), by the driver
    output_buffer_bytes: int = 0  # unsent replies (CLIENT LIST omem), by the driver
    transaction: list[list[bytes]] | None = None  # MULTI .. EXEC: the queued commands
    transaction_failed: bool = False  # a command was refused while queuing: EXEC aborts
    monitor_send: MonitorSend | None = None  # how MONITOR streams to it (the driver's)

    def __post_init__(self) -> None:
        if self.authenticated is None:
            self.authenticated = self.settings.requirepass is None


Handler = Callable[[ClientContext, list[bytes]], "Reply | WaitForAcks"]
ErrorReplies = Mapping[type[HearsayError], "str | Callable[[Any], str]"]
"""A command's declared replies to engine errors: the error class (its subclasses too) -> the
reply text, or a function of the exception that makes it (e.g. to name a precision)."""
RunHandler = Callable[[ClientContext, list[list[bytes]]], list[Reply]]
"""Runs a run of calls of one command on one key at once (see :meth:`CommandRegistry.run_at`).

It must reply exactly what the calls would one after another; a client error it raises must
be one that every call of the run would get (the key's type, which none of them changes)."""

# The flags Redis 7 reports in COMMAND INFO (server.h); a typo in a registration is an error.
KNOWN_FLAGS: Final = frozenset(
    {
        "write",
        "readonly",
        "denyoom",
        "module",
        "admin",
        "pubsub",
        "noscript",
        "blocking",
        "loading",
        "stale",
        "skip_monitor",
        "skip_slowlog",
        "asking",
        "fast",
        "no_auth",
        "may_replicate",
        "sentinel",
        "only_sentinel",
        "no_mandatory_keys",
        "no_multi",
        "movablekeys",
        "allow_busy",
    }
)


def _error_text(error: BaseException) -> str:
    return f"ERR {error}"


_DEFAULT_ERROR_TEXTS: Final[dict[type[BaseException], Callable[[Any], str]]] = {
    WrongTypeError: lambda error: messages.WRONGTYPE,
    HearsayError: _error_text,
}
"""What every command answers for an engine error it does not declare."""


def _error_texts(errors: ErrorReplies) -> dict[type[BaseException], Callable[[Any], str]]:
    """The defaults with ``errors`` over them, every text made a function of the error."""
    texts = dict(_DEFAULT_ERROR_TEXTS)
    for cls, text in errors.items():
        if cls is CommandError or not issubclass(cls, HearsayError):
            raise ValueError(f"errors= maps engine errors (HearsayError types), not {cls}")
        texts[cls] = text if callable(text) else _fixed_text(text)
    return texts


def _fixed_text(text: str) -> Callable[[Any], str]:
    return lambda error: text


@dataclass(slots=True)
class CommandSpec:
    """One row of the command table (a command or a ``container|subcommand``)."""

    name: str  # upper case: "PING", "CLIENT|SETNAME"
    handler: Handler | None  # None for a container that only has subcommands
    arity: int  # Redis convention: n = exactly n, -n = at least n, counting the name
    flags: frozenset[str]
    first_key: int
    last_key: int
    step: int
    acl_categories: tuple[str, ...]
    group: str
    summary: str
    since: str
    subcommands: dict[bytes, CommandSpec] = field(default_factory=dict)
    run_handler: RunHandler | None = None
    error_texts: dict[type[BaseException], Callable[[Any], str]] = field(
        default_factory=lambda: dict(_DEFAULT_ERROR_TEXTS)
    )
    """Engine error class -> its reply text: the declared ``errors`` over the defaults."""
    full_name: str = field(init=False)
    """The lower-case name Redis shows: ``ping``, ``client|setname``."""
    no_auth: bool = field(init=False)
    """Allowed before AUTH (the ``no_auth`` flag), looked up once rather than per call."""
    writes: bool = field(init=False)
    """The ``write`` flag: refused while the node's storage cannot write (MISCONF)."""

    def __post_init__(self) -> None:
        self.full_name = self.name.lower()
        self.no_auth = "no_auth" in self.flags
        self.writes = "write" in self.flags

    def error_reply(self, error: HearsayError) -> ErrorReply:
        """The reply to an engine error a handler raised: the entry for its nearest class."""
        texts = self.error_texts
        for cls in type(error).__mro__:  # ends at HearsayError, which is always present
            text = texts.get(cls)
            if text is not None:
                return ErrorReply(text(error))
        raise AssertionError("HearsayError has a default reply")  # pragma: no cover

    def info(self) -> list[Reply]:
        """This command's COMMAND INFO entry, in Redis 7's ten-field shape."""
        return [
            self.full_name,
            self.arity,
            Set(SimpleString(flag) for flag in sorted(self.flags)),
            self.first_key,
            self.last_key,
            self.step,
            Set(SimpleString(category) for category in self.acl_categories),
            Set(),  # tips
            Set(self._key_specs()),
            Set(sub.info() for sub in self.subcommands.values()),
        ]

    def docs(self) -> Map:
        """This command's COMMAND DOCS entry (summary, since, group, subcommands)."""
        pairs: list[tuple[Reply, Reply]] = [
            ("summary", self.summary),
            ("since", self.since),
            ("group", self.group),
        ]
        if self.subcommands:
            subs = Map((sub.full_name, sub.docs()) for sub in self.subcommands.values())
            pairs.append(("subcommands", subs))
        return Map(pairs)

    def _key_specs(self) -> list[Reply]:
        if self.first_key <= 0:
            return []
        access = ("RW", "update") if "write" in self.flags else ("RO", "access")
        last = self.last_key if self.last_key < 0 else self.last_key - self.first_key
        return [
            Map(
                [
                    ("flags", Set(SimpleString(flag) for flag in access)),
                    ("begin_search", Map([("type", "index"), ("spec", {"index": self.first_key})])),
                    (
                        "find_keys",
                        Map(
                            [
                                ("type", "range"),
                                ("spec", {"lastkey": last, "keystep": self.step, "limit": 0}),
                            ]
                        ),
                    ),
                ]
            )
        ]


def _acl_categories(flags: frozenset[str], group: str, extra: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    if "write" in flags:
        out.append("@write")
    if "readonly" in flags:
        out.append("@read")
    out.append("@fast" if "fast" in flags else "@slow")
    if "admin" in flags:
        out += ["@admin", "@dangerous"]
    out.append("@" + group)
    for category in extra:
        if category not in out:
            out.append(category)
    return tuple(out)


class CommandRegistry:
    """Upper-case command name -> :class:`CommandSpec`, plus :meth:`dispatch`."""

    def __init__(self) -> None:
        self._commands: dict[bytes, CommandSpec] = {}
        self.internal_errors = 0  # handler bugs answered with an error reply (INFO stats)
        self._logged_errors: set[tuple[str, type[BaseException]]] = set()
        self.observer: RequestObserver | None = None
        """The slow log and the monitors (resp.observer): the driver shows it every command it
        runs for a client, with the time it already measures (a run as one entry)."""

    # -- registration -----------------------------------------------------------------------

    def command(
        self,
        name: str,
        *,
        arity: int,
        flags: Iterable[str] = (),
        first_key: int = 0,
        last_key: int = 0,
        step: int = 0,
        group: str = "generic",
        summary: str = "",
        since: str = "0.1.0",
        acl_categories: Iterable[str] = (),
        parent: str | None = None,
        errors: ErrorReplies | None = None,
        run: RunHandler | None = None,
    ) -> Callable[[Handler], Handler]:
        """The command decorator: register ``handler`` as ``name`` (or as a subcommand of
        ``parent``), declaring what COMMAND INFO/DOCS report, the replies to engine
        ``errors``, and ``run``, a :data:`RunHandler` for pipelined calls on one key."""

        def register(handler: Handler) -> Handler:
            self.add(
                name,
                handler,
                arity=arity,
                flags=flags,
                first_key=first_key,
                last_key=last_key,
                step=step,
                group=group,
                summary=summary,
                since=since,
                acl_categories=acl_categories,
                parent=parent,
                errors=errors,
                run_handler=run,
            )
            return handler

        return register

    def container(
        self,
        name: str,
        *,
        summary: str,
        group: str = "generic",
        since: str = "0.1.0",
        flags: Iterable[str] = (),
    ) -> CommandSpec:
        """Register a container: a command that only has subcommands (CLIENT, CONFIG...),
        each declared with :meth:`command`'s ``parent=``; the dispatcher picks the
        subcommand by the second argument and answers an unknown one, or none, as Redis."""
        return self.add(name, None, arity=-2, flags=flags, group=group, since=since,
                        summary=summary)  # fmt: skip

    def add(
        self,
        name: str,
        handler: Handler | None,
        *,
        arity: int,
        flags: Iterable[str] = (),
        first_key: int = 0,
        last_key: int = 0,
        step: int = 0,
        group: str = "generic",
        summary: str = "",
        since: str = "0.1.0",
        acl_categories: Iterable[str] = (),
        parent: str | None = None,
        run_handler: RunHandler | None = None,
        errors: ErrorReplies | None = None,
    ) -> CommandSpec:
        """Register a command; ``handler=None`` makes a container for subcommands.

        What :meth:`command` declares; ``run_handler`` (a keyed command's) runs pipelined
        calls on one key in one go.
        """
        flag_set = frozenset(flags)
        unknown = flag_set - KNOWN_FLAGS
        if unknown:
            raise ValueError(f"unknown command flags {sorted(unknown)} for {name}")
        if arity == 0 or (parent is not None and arity > 0 and arity < 2):
            raise ValueError(f"bad arity {arity} for {name}")
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"bad command name {name!r}")
        if (first_key, last_key, step) != (0, 0, 0) and (first_key <= 0 or step <= 0):
            raise ValueError(f"bad key positions for {name}")
        upper = name.upper()
        full = upper if parent is None else f"{parent.upper()}|{upper}"
        spec = CommandSpec(
            name=full,
            handler=handler,
            arity=arity,
            flags=flag_set,
            first_key=first_key,
            last_key=last_key,
            step=step,
            acl_categories=_acl_categories(flag_set, group, acl_categories),
            group=group,
            summary=summary,
            since=since,
            run_handler=run_handler,
            error_texts=_error_texts(errors or {}),
        )
        if run_handler is not None and (parent is not None or first_key != 1 or -2 < arity < 2):
            raise ValueError(f"a run handler needs a top-level command of one key: {name}")
        table = self._commands
        if parent is not None:
            container = self._commands.get(parent.upper().encode())
            if container is None:
                raise ValueError(f"register the container {parent} before {name}")
            table = container.subcommands
        key = upper.encode()
        if key in table:
            raise ValueError(f"command {full} is already registered")
        table[key] = spec
        return spec

    # -- lookup -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._commands)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.upper().encode() in self._commands

    def specs(self) -> list[CommandSpec]:
        """Every top-level command, in registration order."""
        return list(self._commands.values())

    def get(self, name: str) -> CommandSpec | None:
        """A command by name, or a subcommand by ``container|sub`` (any case)."""
        container, _, sub = name.upper().partition("|")
        spec = self._commands.get(container.encode())
        if spec is not None and sub:
            return spec.subcommands.get(sub.encode())
        return spec

    # -- dispatch ---------------------------------------------------------------------------

    def run_at(self, commands: list[list[bytes]], start: int) -> int:
        """How many calls from ``start`` on form a run for one :data:`RunHandler` call.

        A run is two or more consecutive calls of a command that has a run handler, spelled
        the same, on the same key, each with the command's arity (a pipeline of PFADDs to one
        HyperLogLog); 0 when there is none at ``start``.
        """
        if len(commands) - start < 2:
            return 0
        first, second = commands[start], commands[start + 1]
        # (most pipelines change key or command at each call: no look-up for them)
        if len(first) < 2 or len(second) < 2 or second[1] != first[1] or second[0] != first[0]:
            return 0
        if not self.may_run(first):
            return 0
        arity = self._commands[first[0]].arity
        name, key = first[0], first[1]
        end = start + 1
        stop = len(commands)
        while end < stop:  # bounded by the pipeline's length
            other = commands[end]
            if len(other) < 2 or other[1] != key or other[0] != name:
                break
            if not _fits_arity(arity, len(other)):
                break
            end += 1
        return end - start if end - start > 1 else 0

    def calls_at(self, commands: list[list[bytes]], start: int) -> int:
        """How many calls from ``start`` on form a batch of one command over changing keys.

        A batch is two or more consecutive calls of a command that has a run handler, spelled
        the same, each with the command's arity, each on another key than the call before it
        (a pipeline of INCRs over many counters); 0 when there is none at ``start``. It ends
        before two calls on one key, where :meth:`run_at` finds a run. Its calls run one by one
        as :meth:`dispatch` runs them, but checked, timed and answered once for the batch.
        """
        if len(commands) - start < 2:
            return 0
        first = commands[start]
        if len(first) < 2 or not self.may_run(first):
            return 0
        name = first[0]
        arity = self._commands[name].arity
        previous_key = first[1]
        end = start + 1
        stop = len(commands)
        while end < stop:  # bounded by the pipeline's length
            other = commands[end]
            if len(other) < 2 or other[0] != name or not _fits_arity(arity, len(other)):
                break
            if other[1] == previous_key:  # a run starts at the call before: run_at's
                end -= 1
                break
            previous_key = other[1]
            end += 1
        return end - start if end - start > 1 else 0

    def may_run(self, args: list[bytes]) -> bool:
        """Whether ``args`` may start a run: a call, with its command's arity, of a command
        that has a run handler (spelled as the run's other calls must spell it)."""
        if len(args) < 2:
            return False
        spec = self._commands.get(args[0])
        if spec is None or spec.run_handler is None:
            return False
        arity = spec.arity
        return _fits_arity(arity, len(args))

    def dispatch_run(self, ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        """The replies of a run found by :meth:`run_at` or a batch found by :meth:`calls_at`,
        as :meth:`dispatch` gives them."""
        spec = self._commands[run[0][0]]
        handler = spec.run_handler
        assert handler is not None, "run_at and calls_at only find commands with a run handler"
        if not ctx.authenticated and not spec.no_auth:
            return [ErrorReply(messages.NOAUTH)] * len(run)
        refusal = _storage_refusal(ctx, spec)
        if refusal is not None:
            return [refusal] * len(run)
        ctx.last_command = spec.full_name
        if len(run) > 1 and run[1][1] != run[0][1]:  # (a run's calls share their key)
            return self._dispatch_calls(ctx, spec, run)
        try:
            return handler(ctx, run)
        except CommandError as exc:
            return [ErrorReply(exc.message)] * len(run)
        except HearsayError as exc:
            return [spec.error_reply(exc)] * len(run)
        except Exception as exc:  # a bug: the client still gets a reply, the node lives on
            return [self.internal_error(spec.full_name, exc)] * len(run)

    def _dispatch_calls(
        self, ctx: ClientContext, spec: CommandSpec, calls: list[list[bytes]]
    ) -> list[Reply]:
        """A batch of :meth:`calls_at`: each call's handler in turn, as :meth:`_run` runs it
        once the checks every call of the batch shares (name, arity, auth, the disk) passed."""
        handler = spec.handler
        assert handler is not None, "a command with a run handler has a handler"
        replies: list[Reply] = []
        for args in calls:  # bounded by the batch's length
            reply = self._call(ctx, spec, handler, args)
            assert not isinstance(reply, WaitForAcks), "a command with a run handler never waits"
            replies.append(reply)
        return replies

    def dispatch_each(self, ctx: ClientContext, calls: list[list[bytes]]) -> list[Reply]:
        """The replies of ``calls`` dispatched one after another: what a run handler answers
        for the calls its batch cannot take (a bad argument, an overflow). None may wait."""
        replies: list[Reply] = []
        for args in calls:  # bounded by the run's length
            reply = self.dispatch(ctx, args)
            assert not isinstance(reply, WaitForAcks), "a command of a run never waits"
            replies.append(reply)
        return replies

    def repeated_reads(self, ctx: ClientContext, run: list[list[bytes]]) -> list[Reply]:
        """The :data:`RunHandler` of a read-only command (GET, PFCOUNT): a call that repeats
        the call before it gets that call's reply again without running. Nothing runs between
        the calls of a run and they share one time, so the reply could not differ: a pipeline
        of one read to one key (a dashboard polling a counter) costs one read."""
        replies: list[Reply] = []
        previous: list[bytes] | None = None
        reply: Reply = None
        for args in run:  # bounded by the run's length
            if args != previous:
                answer = self.dispatch(ctx, args)
                assert not isinstance(answer, WaitForAcks), "a read never waits"
                reply, previous = answer, args
            replies.append(reply)
        return replies

    def dispatch(self, ctx: ClientContext, args: list[bytes]) -> Reply | WaitForAcks:
        """Run one request (or, between MULTI and EXEC, queue it) and return its reply value;
        it never raises."""
        if ctx.transaction is not None:
            return self._queue(ctx, args)
        return self._run(ctx, args)

    def _queue(self, ctx: ClientContext, args: list[bytes]) -> Reply | WaitForAcks:
        """Between MULTI and EXEC, as Redis: a command that could not run (unknown, wrong
        arity, not allowed) is refused now and makes EXEC abort; the others reply QUEUED."""
        assert ctx.transaction is not None
        spec = self._resolve(args)
        if isinstance(spec, ErrorReply):
            ctx.transaction_failed = True
            return spec
        if spec.name in _TRANSACTION_CONTROL:
            return self._run(ctx, args)
        refusal = _arity_or_auth_refusal(ctx, spec, args)
        if refusal is not None:
            ctx.transaction_failed = True
            return refusal
        if spec.name in _NOT_IN_TRANSACTION or "blocking" in spec.flags:
            ctx.transaction_failed = True
            return ErrorReply(messages.NOT_IN_TRANSACTION)
        ctx.transaction.append(args)
        return SimpleString("QUEUED")

    def execute_transaction(self, ctx: ClientContext, queued: list[list[bytes]]) -> Reply:
        """EXEC: every queued command at once (one event-loop step, so no other client's
        command runs in between), or none if the data directory cannot take writes now."""
        if ctx.db is not None and ctx.db.storage_failure is not None:
            for args in queued:
                spec = self._resolve(args)
                if not isinstance(spec, ErrorReply) and spec.writes:
                    return ErrorReply(
                        "EXECABORT Transaction discarded because of: "
                        + messages.misconf(ctx.db.storage_failure.cause)
                    )
        replies: list[Reply] = []
        for args in queued:
            reply = self._run(ctx, args)
            if isinstance(reply, WaitForAcks):  # never queued (WAIT is refused), but be sure
                reply = ErrorReply(messages.NOT_IN_TRANSACTION)
            replies.append(reply)
        return replies

    def _resolve(self, args: list[bytes]) -> CommandSpec | ErrorReply:
        """The spec of ``args`` (subcommand included), or the error for an unknown name."""
        if not args:  # the parser never yields this; answer like Redis would for ""
            return ErrorReply(messages.unknown_command(b"", []))
        spec = self._commands.get(args[0])  # clients mostly send names in upper case
        if spec is None:
            spec = self._commands.get(args[0].upper())
            if spec is None:
                name = args[0].upper().decode("latin-1")
                if name in messages.UNSUPPORTED_COMMANDS:
                    return ErrorReply(messages.not_supported(name))
                return ErrorReply(messages.unknown_command(args[0], args[1:]))
        if spec.subcommands and len(args) >= 2:
            sub = spec.subcommands.get(args[1].upper())
            if sub is None:
                full = f"{spec.name}|{args[1].upper().decode('latin-1')}"
                if full in messages.UNSUPPORTED_COMMANDS:
                    return ErrorReply(messages.not_supported(full))
                return ErrorReply(messages.unknown_subcommand(args[1], spec.name))
            spec = sub
        return spec

    def _run(self, ctx: ClientContext, args: list[bytes]) -> Reply | WaitForAcks:
        """Run one request now.

        Client mistakes (:class:`CommandError`, ``hearsay.base.errors`` types) become their
        error replies (the command's declared ``errors``). Any other exception is a bug in a
        handler: it becomes ``ERR internal error in <command>: <reason>`` and its traceback
        is logged once, because raising would drop the connection and with it the replies to
        earlier pipelined commands whose writes were already applied.
        """
        spec = self._resolve(args)
        if isinstance(spec, ErrorReply):
            return spec
        refusal = _arity_or_auth_refusal(ctx, spec, args)
        if refusal is not None:
            return refusal
        handler = spec.handler
        if handler is None:  # a container called without a subcommand
            return ErrorReply(messages.wrong_number_of_args(spec.full_name))
        refusal = _storage_refusal(ctx, spec)
        if refusal is not None:
            return refusal
        ctx.last_command = spec.full_name
        return self._call(ctx, spec, handler, args)

    def _call(
        self, ctx: ClientContext, spec: CommandSpec, handler: Handler, args: list[bytes]
    ) -> Reply | WaitForAcks:
        """``handler`` of ``spec`` on ``args``, its exceptions turned into their replies (see
        :meth:`_run`)."""
        try:
            return handler(ctx, args)
        except CommandError as exc:
            return ErrorReply(exc.message)
        except HearsayError as exc:
            return spec.error_reply(exc)
        except Exception as exc:  # a bug: the client still gets a reply, the node lives on
            return self.internal_error(spec.full_name, exc)

    def internal_error(self, name: str, exc: Exception) -> ErrorReply:
        """The reply to a bug met while answering ``name`` (a handler's unexpected exception,
        or a reply that cannot be encoded); logs its traceback once per kind."""
        self.internal_errors += 1
        signature = (name, type(exc))
        logged = self._logged_errors
        if signature not in logged and len(logged) < LOGGED_INTERNAL_ERRORS_MAX:
            logged.add(signature)
            log.error("internal error in %s (logged once)", name, exc_info=exc)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        return ErrorReply(
            f"ERR internal error in {name}: {reason[:INTERNAL_ERROR_REASON_CHARS_MAX]}"
        )


_TRANSACTION_CONTROL: Final = frozenset({"MULTI", "EXEC", "DISCARD", "QUIT", "WATCH"})
"""Commands that act on the transaction itself: run at once, never queued."""
_NOT_IN_TRANSACTION: Final = frozenset({"WAIT"})
"""Commands that would wait for something else: refused inside MULTI (Redis denies blocking
there; a WAIT queued in a transaction could never hold the transaction's reply)."""


def _fits_arity(arity: int, argc: int) -> bool:
    """Whether ``argc`` arguments (the name included) fit a command's ``arity``: exactly that
    many when positive, at least ``-arity`` when negative (Redis's convention)."""
    return argc == arity if arity > 0 else argc >= -arity


def _arity_or_auth_refusal(
    ctx: ClientContext, spec: CommandSpec, args: list[bytes]
) -> ErrorReply | None:
    """The wrong-arity or NOAUTH error for ``args``, checked in Redis's order, or None."""
    if not _fits_arity(spec.arity, len(args)):
        return ErrorReply(messages.wrong_number_of_args(spec.full_name))
    if not ctx.authenticated and not spec.no_auth:
        return ErrorReply(messages.NOAUTH)
    return None


def _storage_refusal(ctx: ClientContext, spec: CommandSpec) -> ErrorReply | None:
    """MISCONF for a write while the data directory cannot be written, before it is applied:
    a write the node cannot keep is never acknowledged."""
    if not spec.writes or ctx.db is None:
        return None
    failure = ctx.db.storage_failure
    return None if failure is None else ErrorReply(messages.misconf(failure.cause))


# --- the connection commands -------------------------------------------------------------------


def _check_password(settings: ServerSettings, user: bytes, password: bytes) -> bool:
    """The ``default`` user is the only user; with no requirepass any password is accepted."""
    if user != b"default":
        return False
    if settings.requirepass is None:
        return True
    return hmac.compare_digest(password, settings.requirepass)


def _valid_name(name: bytes) -> bool:
    """Redis's rule for client names and library info: printable ASCII, no spaces."""
    return all(33 <= c <= 126 for c in name)


def client_info_line(ctx: ClientContext, now_ms: int | None = None) -> str:
    """One line of CLIENT INFO / CLIENT LIST, with the fields hearsay knows.

    ``now_ms`` is the asking connection's clock (CLIENT LIST); a connection's own ``now_ms``
    is when its last commands arrived, so the difference is how long it has been idle.
    """
    now = ctx.now_ms if now_ms is None else max(now_ms, ctx.now_ms)
    fields = [
        ("id", str(ctx.client_id)),
        ("addr", ctx.addr),
        ("laddr", ctx.laddr),
        ("fd", str(ctx.fd)),
        ("name", messages.client_text(ctx.name or b"")),
        ("age", str(max(0, now - ctx.created_ms) // 1000)),
        ("idle", str((now - ctx.now_ms) // 1000)),
        ("flags", "N"),
        ("db", str(ctx.db_index)),
        ("sub", "0"),
        ("psub", "0"),
        ("ssub", "0"),
        ("multi", "-1"),
        ("watch", "0"),
        ("qbuf", str(ctx.query_buffer_bytes)),
        ("omem", str(ctx.output_buffer_bytes)),
        ("cmd", ctx.last_command or "NULL"),
        ("user", ctx.user),
        ("redir", "-1"),
        ("resp", str(ctx.protocol)),
        ("lib-name", messages.client_text(ctx.lib_name)),
        ("lib-ver", messages.client_text(ctx.lib_version)),
    ]
    return " ".join(f"{key}={value}" for key, value in fields)


def install_connection_commands(registry: CommandRegistry) -> None:
    """Register PING, ECHO, QUIT, AUTH, HELLO, SELECT, CLIENT ..., MULTI/EXEC ... and COMMAND.

    The COMMAND handlers describe ``registry`` itself, whatever else is registered in it.
    """

    @registry.command("PING", arity=-1, flags=("fast", "sentinel"), group="connection",
                      since="1.0.0",
                      summary="Returns the server's liveliness response.")  # fmt: skip
    def ping(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 2:
            raise CommandError(messages.wrong_number_of_args("ping"))
        return PONG if len(args) == 1 else args[1]

    @registry.command("ECHO", arity=2, flags=("fast",), group="connection",
                      since="1.0.0", summary="Returns the given string.")  # fmt: skip
    def echo(ctx: ClientContext, args: list[bytes]) -> Reply:
        return args[1]

    @registry.command("QUIT", arity=-1,
                      flags=("allow_busy", "noscript", "loading", "stale", "fast", "no_auth"),
                      group="connection", since="1.0.0",
                      summary="Closes the connection.")  # fmt: skip
    def quit_(ctx: ClientContext, args: list[bytes]) -> Reply:
        ctx.close_after_reply = True
        return OK

    @registry.command("AUTH", arity=-2,
                      flags=("noscript", "loading", "stale", "fast", "no_auth", "sentinel",
                             "allow_busy"),
                      group="connection", since="1.0.0",
                      summary="Authenticates the connection.")  # fmt: skip
    def auth(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 3:
            raise CommandError(messages.SYNTAX_ERROR)
        if len(args) == 2 and ctx.settings.requirepass is None:
            raise CommandError(messages.AUTH_NOT_CONFIGURED)
        user, password = (b"default", args[1]) if len(args) == 2 else (args[1], args[2])
        if not _check_password(ctx.settings, user, password):
            raise CommandError(messages.WRONGPASS)
        ctx.authenticated = True
        ctx.user = user.decode("latin-1")
        return OK

    @registry.command("HELLO", arity=-1,
                      flags=("noscript", "loading", "stale", "fast", "no_auth", "sentinel",
                             "allow_busy"),
                      group="connection", since="6.0.0",
                      summary="Handshakes with the server.")  # fmt: skip
    def hello(ctx: ClientContext, args: list[bytes]) -> Reply:
        protocol = 0
        next_arg = 1
        if len(args) >= 2:
            version = parse_integer(args[1])
            if version is None:
                raise CommandError(messages.HELLO_PROTOCOL_NOT_INTEGER)
            if version not in (2, 3):
                raise CommandError(messages.NOPROTO)
            protocol = version
            next_arg = 2
        credentials: tuple[bytes, bytes] | None = None
        name: bytes | None = None
        j = next_arg
        while j < len(args):  # bounded: j grows by at least one per pass
            option = args[j].upper()
            more = len(args) - 1 - j
            if option == b"AUTH" and more >= 2:
                credentials = (args[j + 1], args[j + 2])
                j += 3
            elif option == b"SETNAME" and more >= 1:
                name = args[j + 1]
                if not _valid_name(name):
                    raise CommandError(messages.CLIENT_NAME_INVALID)
                j += 2
            else:
                raise CommandError(messages.HELLO_SYNTAX.format(messages.client_text(args[j])))
        if credentials is not None:
            if not _check_password(ctx.settings, *credentials):
                raise CommandError(messages.WRONGPASS)
            ctx.authenticated = True
            ctx.user = credentials[0].decode("latin-1")
        if not ctx.authenticated:
            raise CommandError(messages.NOAUTH_HELLO)
        if name is not None:
            ctx.name = name or None
        if protocol:
            ctx.protocol = protocol
        settings = ctx.settings
        return Map(
            [
                ("server", settings.server_name),
                ("version", settings.version),
                ("proto", ctx.protocol),
                ("id", ctx.client_id),
                ("mode", settings.mode),
                ("role", settings.role),
                ("modules", []),
            ]
        )

    @registry.command("SELECT", arity=2, flags=("loading", "stale", "fast"),
                      group="connection", since="1.0.0",
                      summary="Changes the selected database.")  # fmt: skip
    def select(ctx: ClientContext, args: list[bytes]) -> Reply:
        index = parse_integer(args[1])
        if index is None or not -(2**31) <= index < 2**31:
            raise CommandError(messages.NOT_AN_INTEGER)
        if not 0 <= index < ctx.settings.databases:
            raise CommandError(messages.DB_INDEX_OUT_OF_RANGE)
        ctx.db_index = index
        return OK

    registry.container("CLIENT", flags=("sentinel",), group="connection", since="2.4.0",
                       summary="A container for client connection commands.")  # fmt: skip

    @registry.command("SETNAME", arity=3, flags=("noscript", "loading", "stale"),
                      group="connection", since="2.6.9", parent="CLIENT",
                      summary="Sets the connection name.")  # fmt: skip
    def client_setname(ctx: ClientContext, args: list[bytes]) -> Reply:
        if not _valid_name(args[2]):
            raise CommandError(messages.CLIENT_NAME_INVALID)
        ctx.name = args[2] or None
        return OK

    @registry.command("GETNAME", arity=2, flags=("noscript", "loading", "stale"),
                      group="connection", since="2.6.9", parent="CLIENT",
                      summary="Returns the name of the connection.")  # fmt: skip
    def client_getname(ctx: ClientContext, args: list[bytes]) -> Reply:
        return ctx.name

    @registry.command("ID", arity=2, flags=("noscript", "loading", "stale"),
                      group="connection", since="5.0.0", parent="CLIENT",
                      summary="Returns the unique client ID of the connection.")  # fmt: skip
    def client_id(ctx: ClientContext, args: list[bytes]) -> Reply:
        return ctx.client_id

    @registry.command("INFO", arity=2, flags=("noscript", "loading", "stale"),
                      group="connection", since="6.2.0", parent="CLIENT",
                      summary="Returns information about the connection.")  # fmt: skip
    def client_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        return Verbatim(client_info_line(ctx).encode("utf-8", "surrogateescape") + b"\n")

    @registry.command("SETINFO", arity=4, flags=("noscript", "loading", "stale"),
                      group="connection", since="7.2.0", parent="CLIENT",
                      summary="Sets information specific to the connection.")  # fmt: skip
    def client_setinfo(ctx: ClientContext, args: list[bytes]) -> Reply:
        attribute = args[2].lower()
        if attribute not in (b"lib-name", b"lib-ver"):
            raise CommandError(
                messages.CLIENT_SETINFO_UNRECOGNIZED.format(messages.client_text(args[2]))
            )
        if not _valid_name(args[3]):
            raise CommandError(messages.CLIENT_SETINFO_INVALID.format(attribute.decode()))
        if attribute == b"lib-name":
            ctx.lib_name = args[3]
        else:
            ctx.lib_version = args[3]
        return OK

    @registry.command("MULTI", arity=1,
                      flags=("noscript", "loading", "stale", "fast", "allow_busy"),
                      group="transactions", since="1.2.0",
                      summary="Starts a transaction.")  # fmt: skip
    def multi(ctx: ClientContext, args: list[bytes]) -> Reply:
        if ctx.transaction is not None:
            raise CommandError(messages.MULTI_NESTED)
        ctx.transaction, ctx.transaction_failed = [], False
        return OK

    @registry.command("EXEC", arity=1,
                      flags=("noscript", "loading", "stale", "skip_slowlog"),
                      group="transactions", since="1.2.0",
                      summary="Executes all commands in a transaction.")  # fmt: skip
    def exec_(ctx: ClientContext, args: list[bytes]) -> Reply:
        queued, failed = ctx.transaction, ctx.transaction_failed
        if queued is None:
            raise CommandError(messages.EXEC_WITHOUT_MULTI)
        ctx.transaction, ctx.transaction_failed = None, False
        if failed:
            return ErrorReply(messages.EXECABORT)
        return registry.execute_transaction(ctx, queued)

    @registry.command("DISCARD", arity=1,
                      flags=("noscript", "loading", "stale", "fast", "allow_busy"),
                      group="transactions", since="2.0.0",
                      summary="Discards a transaction.")  # fmt: skip
    def discard(ctx: ClientContext, args: list[bytes]) -> Reply:
        if ctx.transaction is None:
            raise CommandError(messages.DISCARD_WITHOUT_MULTI)
        ctx.transaction, ctx.transaction_failed = None, False
        return OK

    @registry.command("WATCH", arity=-2,
                      flags=("noscript", "loading", "stale", "fast", "allow_busy"),
                      first_key=1, last_key=-1, step=1, group="transactions",
                      since="2.2.0",
                      summary="Refused: hearsay has no optimistic locking "
                      "(see docs/commands.md).")  # fmt: skip
    def watch(ctx: ClientContext, args: list[bytes]) -> Reply:
        if ctx.transaction is not None:
            raise CommandError(messages.WATCH_INSIDE_MULTI)
        raise CommandError(messages.not_supported("WATCH"))

    @registry.command("COMMAND", arity=-1, flags=("loading", "stale"), group="server",
                      since="2.8.13",
                      summary="Returns detailed information about all commands.")  # fmt: skip
    def command_bare(ctx: ClientContext, args: list[bytes]) -> Reply:
        return [spec.info() for spec in registry.specs()]

    @registry.command("COUNT", arity=2, flags=("loading", "stale"), group="server",
                      since="2.8.13", parent="COMMAND",
                      summary="Returns a count of commands.")  # fmt: skip
    def command_count(ctx: ClientContext, args: list[bytes]) -> Reply:
        return len(registry)

    @registry.command("LIST", arity=-2, flags=("loading", "stale"), group="server",
                      since="7.0.0", parent="COMMAND",
                      summary="Returns a list of command names.")  # fmt: skip
    def command_list(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 2:
            raise CommandError(messages.SYNTAX_ERROR)  # FILTERBY is not offered
        return [spec.full_name for spec in registry.specs()]

    @registry.command("INFO", arity=-2, flags=("loading", "stale"), group="server",
                      since="2.8.13", parent="COMMAND",
                      summary="Returns information about one, multiple or all "
                      "commands.")  # fmt: skip
    def command_info(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) == 2:
            return [spec.info() for spec in registry.specs()]
        out: list[Reply] = []
        for name in args[2:]:
            spec = registry.get(name.decode("latin-1"))
            out.append(None if spec is None else spec.info())
        return out

    @registry.command("DOCS", arity=-2, flags=("loading", "stale"), group="server",
                      since="7.0.0", parent="COMMAND",
                      summary="Returns documentary information about one, multiple or "
                      "all commands.")  # fmt: skip
    def command_docs(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) == 2:
            return Map((spec.full_name, spec.docs()) for spec in registry.specs())
        pairs: list[tuple[Reply, Reply]] = []
        for name in args[2:]:
            spec = registry.get(name.decode("latin-1"))
            if spec is not None:
                pairs.append((spec.full_name, spec.docs()))
        return Map(pairs)


REGISTRY: Final = CommandRegistry()
install_connection_commands(REGISTRY)


def dispatch(ctx: ClientContext, args: list[bytes]) -> Reply | WaitForAcks:
    """Run one request against the shared :data:`REGISTRY`."""
    return REGISTRY.dispatch(ctx, args)
