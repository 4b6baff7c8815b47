"""Server commands (INFO, CONFIG GET, CLIENT LIST/KILL) and the node's whole command table.

INFO, CONFIG and CLIENT LIST/KILL need to know about the running node (uptime, clients...), which
lives above this layer, so the node hands in a :class:`ServerInfo` that answers for it.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from hearsay.base.glob import glob_match
from hearsay.resp import messages
from hearsay.resp.cluster_commands import ClusterControl, install_cluster_commands
from hearsay.resp.commands import (
    ClientContext,
    CommandError,
    CommandRegistry,
    client_info_line,
    install_connection_commands,
)
from hearsay.resp.families import install_family_commands
from hearsay.resp.info_fields import OpsRate, complete_sections
from hearsay.resp.key_commands import install_key_commands, integer_arg
from hearsay.resp.observer import RequestObserver
from hearsay.resp.replies import OK, Map, Reply, SimpleString, Verbatim
from hearsay.resp.retire_commands import install_retire_commands

INFO_DEFAULT_SECTIONS = (
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "cluster",
    "keyspace",
    "gossip",
)
"""Redis's order of INFO's sections, then hearsay's own."""
_SECTION_TITLES: Final = {"cpu": "CPU"}


class ServerInfo(Protocol):
    """What the running node tells INFO and CONFIG GET."""

    def info_sections(self) -> dict[str, dict[str, Any]]:
        """Section name -> ordered fields, for INFO."""
        ...

    def config_values(self) -> dict[str, str]:
        """Setting name -> value, for CONFIG GET (read only)."""
        ...

    def client_contexts(self) -> list[ClientContext]:
        """Every open client connection's context, for CLIENT LIST and CLIENT KILL."""
        ...

    def close_clients(self, client_ids: set[int]) -> None:
        """Close these connections (CLIENT KILL); what they were sent already still leaves."""
        ...

    def release_free_memory(self) -> None:
        """Give the allocator's free pages back to the system (MEMORY PURGE)."""
        ...


def render_info(sections: dict[str, dict[str, Any]], wanted: list[str]) -> str:
    """Redis's INFO text: ``# Section`` headers, ``field:value`` lines, CRLF endings."""
    names = [name for name in INFO_DEFAULT_SECTIONS if name in sections]
    names += [name for name in sections if name not in names]
    if wanted and not {"all", "everything", "default"} & set(wanted):
        names = [name for name in names if name in wanted]
    blocks = []
    for name in names:
        lines = [f"# {_SECTION_TITLES.get(name, name.capitalize())}"]
        lines += [f"{field}:{value}" for field, value in sections[name].items()]
        blocks.append("\r\n".join(lines))
    return "\r\n\r\n".join(blocks) + "\r\n"


_CLIENT_TYPES = frozenset({b"normal", b"master", b"replica", b"pubsub"})


def _of_type(contexts: list[ClientContext], kind: bytes) -> list[ClientContext]:
    """CLIENT LIST/KILL's TYPE filter: every client is ``normal`` (no replication, no pub/sub)."""
    if kind.lower() not in _CLIENT_TYPES:
        raise CommandError(messages.UNKNOWN_CLIENT_TYPE.format(kind.decode("latin-1")))
    return contexts if kind.lower() == b"normal" else []


def install_server_commands(registry: CommandRegistry, server: ServerInfo) -> None:
    """Register INFO, TIME, CLIENT LIST/KILL, CONFIG (GET only; settings are fixed at
    start-up), MEMORY PURGE (MEMORY USAGE is a key command) and MODULE LIST."""
    ops_rate = OpsRate()
    registry.container("MEMORY", group="server", summary="Memory use of keys.")

    @registry.command("PURGE", parent="MEMORY", arity=2, group="server",
                      summary="Gives the allocator's free pages back to the system.")  # fmt: skip
    def memory_purge(ctx: ClientContext, args: list[bytes]) -> Reply:
        server.release_free_memory()
        return OK

    @registry.command("INFO", arity=-1, flags=("loading", "stale"), group="server",
                      summary="Information and statistics about the node.")  # fmt: skip
    def info(ctx: ClientContext, args: list[bytes]) -> Reply:
        wanted = [arg.decode("latin-1").lower() for arg in args[1:]]
        sections = server.info_sections()
        total = int(sections.get("stats", {}).get("total_commands_processed", 0))
        sections = complete_sections(sections, ctx.now_ms, ops_rate.rate(ctx.now_ms, total))
        observer = registry.observer
        if observer is not None:
            sections["clients"]["monitor_clients"] = len(observer.monitors)
            sections["stats"]["monitors_dropped"] = observer.monitors_dropped
            sections["stats"]["slowlog_len"] = len(observer.entries)
        text = render_info(sections, wanted)
        return Verbatim(text) if ctx.protocol == 3 else text.encode()

    @registry.command("TIME", arity=1, flags=("loading", "stale", "fast"), group="server",
                      since="2.6.0", summary="The node's clock: unix seconds and microseconds "
                      "(hearsay's clock counts milliseconds).")  # fmt: skip
    def time_(ctx: ClientContext, args: list[bytes]) -> Reply:
        seconds, milliseconds = divmod(ctx.now_ms, 1000)
        return [b"%d" % seconds, b"%d" % (milliseconds * 1000)]

    @registry.command("LIST", parent="CLIENT", arity=-2, flags=("admin", "noscript", "loading",
                      "stale"), group="connection",
                      summary="Lists the open client connections.")  # fmt: skip
    def client_list(ctx: ClientContext, args: list[bytes]) -> Reply:
        contexts = sorted(server.client_contexts(), key=lambda each: each.client_id)
        options = [arg.upper() for arg in args[2:3]]
        if options == [b"TYPE"] and len(args) == 4:
            contexts = _of_type(contexts, args[3])
        elif options == [b"ID"] and len(args) > 3:
            wanted = {integer_arg(arg, messages.INVALID_CLIENT_ID) for arg in args[3:]}
            contexts = [each for each in contexts if each.client_id in wanted]
        elif options:
            raise CommandError(messages.SYNTAX_ERROR)
        text = "".join(client_info_line(each, ctx.now_ms) + "\n" for each in contexts)
        return Verbatim(text.encode("utf-8", "surrogateescape"))

    @registry.command("KILL", parent="CLIENT", arity=-3, flags=("admin", "noscript", "loading",
                      "stale"), group="connection",
                      summary="Closes client connections.")  # fmt: skip
    def client_kill(ctx: ClientContext, args: list[bytes]) -> Reply:
        contexts = server.client_contexts()
        if len(args) == 3:  # the old form: CLIENT KILL addr:port, the caller included
            chosen = [each for each in contexts if each.addr.encode() == args[2]]
            if not chosen:
                raise CommandError(messages.NO_SUCH_CLIENT)
            _kill(ctx, chosen)
            return OK
        if len(args) % 2:
            raise CommandError(messages.SYNTAX_ERROR)
        skip_me = True
        for name, value in zip(args[2::2], args[3::2], strict=True):
            option = name.upper()
            if option == b"ID":
                wanted = integer_arg(value, messages.INVALID_CLIENT_ID)
                contexts = [each for each in contexts if each.client_id == wanted]
            elif option in (b"ADDR", b"LADDR"):
                field = "addr" if option == b"ADDR" else "laddr"
                contexts = [each for each in contexts if getattr(each, field).encode() == value]
            elif option == b"USER":
                contexts = [each for each in contexts if each.user.encode() == value]
            elif option == b"TYPE":
                contexts = _of_type(contexts, value)
            elif option == b"SKIPME" and value.lower() in (b"yes", b"no"):
                skip_me = value.lower() == b"yes"
            else:
                raise CommandError(messages.SYNTAX_ERROR)
        if skip_me:
            contexts = [each for each in contexts if each.client_id != ctx.client_id]
        _kill(ctx, contexts)
        return len(contexts)

    def _kill(ctx: ClientContext, chosen: list[ClientContext]) -> None:
        # The caller itself closes after this reply, as QUIT does.
        ctx.close_after_reply = ctx.close_after_reply or any(each is ctx for each in chosen)
        server.close_clients({each.client_id for each in chosen if each is not ctx})

    registry.container("CONFIG", group="server", summary="Reads settings.")

    @registry.command("GET", parent="CONFIG", arity=-3, flags=("admin", "loading", "stale"),
                      group="server", summary="Reads settings matching glob patterns.")  # fmt: skip
    def config_get(ctx: ClientContext, args: list[bytes]) -> Reply:
        values = server.config_values()
        found: dict[Reply, Reply] = {}
        for pattern in args[2:]:
            for name, value in values.items():
                if glob_match(pattern.lower(), name.encode()):
                    found[name.encode()] = value.encode()
        if ctx.protocol == 3:
            return Map(found)
        return [item for pair in found.items() for item in pair]

    @registry.command("SET", parent="CONFIG", arity=-4, flags=("admin",), group="server",
                      summary="Refused: settings are fixed at start-up.")  # fmt: skip
    def config_set(ctx: ClientContext, args: list[bytes]) -> Reply:
        raise CommandError(messages.CONFIG_READ_ONLY)


_SLOWLOG_HELP: Final = (
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Print this help.",
)


def install_observer_commands(registry: CommandRegistry, observer: RequestObserver) -> None:
    """SLOWLOG and MONITOR over ``observer``, which the dispatcher shows every command."""
    registry.observer = observer
    registry.container("SLOWLOG", group="server", since="2.2.12",
                       summary="A container for slow log commands.")  # fmt: skip

    @registry.command("GET", parent="SLOWLOG", arity=-2, flags=("admin", "loading", "stale"),
                      group="server", since="2.2.12",
                      summary="The slow log's newest entries (--slowlog-slower-than-us, "
                      "--slowlog-max-len).")  # fmt: skip
    def slowlog_get(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) > 3:
            raise CommandError(messages.wrong_number_of_args("slowlog|get"))
        count = 10
        if len(args) == 3:
            count = integer_arg(args[2], messages.SLOWLOG_COUNT)
            if count < -1:
                raise CommandError(messages.SLOWLOG_COUNT)
        entries = list(observer.entries)
        if count >= 0:
            entries = entries[:count]
        return [
            [e.entry_id, e.unix_s, e.duration_us, list(e.args), e.addr.encode(), e.name]
            for e in entries
        ]

    @registry.command("LEN", parent="SLOWLOG", arity=2, flags=("admin", "loading", "stale"),
                      group="server", since="2.2.12",
                      summary="The number of entries in the slow log.")  # fmt: skip
    def slowlog_len(ctx: ClientContext, args: list[bytes]) -> Reply:
        return len(observer.entries)

    @registry.command("RESET", parent="SLOWLOG", arity=2, flags=("admin", "loading", "stale"),
                      group="server", since="2.2.12",
                      summary="Clears the slow log.")  # fmt: skip
    def slowlog_reset(ctx: ClientContext, args: list[bytes]) -> Reply:
        observer.reset()
        return OK

    @registry.command("HELP", parent="SLOWLOG", arity=2, flags=("loading", "stale"),
                      group="server", since="6.2.0",
                      summary="Shows helpful text about the different subcommands.")  # fmt: skip
    def slowlog_help(ctx: ClientContext, args: list[bytes]) -> Reply:
        return [SimpleString(line) for line in _SLOWLOG_HELP]

    @registry.command("MONITOR", arity=1, flags=("admin", "noscript", "loading", "stale"),
                      group="server", since="1.0.0",
                      summary="Streams every command the node runs (AUTH arguments "
                      "redacted); a monitor that reads too slowly is disconnected.")  # fmt: skip
    def monitor(ctx: ClientContext, args: list[bytes]) -> Reply:
        if ctx.monitor_send is None:
            raise CommandError(messages.MONITOR_UNAVAILABLE)
        observer.start_monitor(ctx.client_id, ctx.monitor_send)
        return OK


def install_module_commands(registry: CommandRegistry) -> None:
    """MODULE LIST: the probabilistic family, built in, as Redis 8 lists it (clients that
    look for ``bf`` before using BF.*/CMS.* find it); loading modules is not supported."""
    registry.container("MODULE", group="server", since="4.0.0",
                       summary="A container for module commands.")  # fmt: skip

    @registry.command("LIST", parent="MODULE", arity=2, flags=("admin", "noscript"),
                      group="server", since="4.0.0",
                      summary="The built-in probabilistic family (bf), as Redis 8 lists "
                      "it.")  # fmt: skip
    def module_list(ctx: ClientContext, args: list[bytes]) -> Reply:
        return [Map([("name", b"bf"), ("ver", 80000), ("path", b""), ("args", [])])]


def build_registry(
    server: ServerInfo,
    cluster: ClusterControl | None = None,
    observer: RequestObserver | None = None,
) -> CommandRegistry:
    """The whole command table of one node (cluster commands when it gossips; ``observer``:
    the slow log's settings, Redis's defaults when None)."""
    registry = CommandRegistry()
    install_connection_commands(registry)
    install_server_commands(registry, server)
    install_module_commands(registry)
    install_observer_commands(registry, observer or RequestObserver())
    install_key_commands(registry)
    install_family_commands(registry)
    install_retire_commands(registry)
    if cluster is not None:
        install_cluster_commands(registry, cluster)
    return registry
