"""The command table and the connection commands: arity, wording, auth gating, HELLO, COMMAND."""

from __future__ import annotations

import hiredis
import pytest

from hearsay.base.errors import SketchParameterError, WrongTypeError
from hearsay.resp import messages
from hearsay.resp.commands import (
    REGISTRY,
    ClientContext,
    CommandError,
    CommandRegistry,
    ServerSettings,
    client_info_line,
    dispatch,
    install_connection_commands,
)
from hearsay.resp.replies import OK, ErrorReply, Map, Reply, Verbatim, encode

PASSWORD = b"s3cret"


def ctx(password: bytes | None = None, client_id: int = 7) -> ClientContext:
    return ClientContext(client_id=client_id, settings=ServerSettings(requirepass=password))


def run(context: ClientContext, *words: str | bytes) -> Reply:
    args = [w.encode() if isinstance(w, str) else w for w in words]
    return dispatch(context, args)


def decoded(reply: Reply, protocol: int) -> object:
    reader = hiredis.Reader()
    reader.feed(encode(reply, protocol))
    return reader.gets()


def test_ping_echo_select_quit() -> None:
    c = ctx()
    assert encode(run(c, "PING"), 2) == b"+PONG\r\n"
    assert run(c, "ping", "hi") == b"hi"
    assert run(c, "ECHO", b"\x00\xff") == b"\x00\xff"
    assert run(c, "SELECT", "0") is OK
    assert run(c, "SELECT", "1") == messages.DB_INDEX_OUT_OF_RANGE
    assert run(c, "SELECT", "-1") == messages.DB_INDEX_OUT_OF_RANGE
    assert run(c, "SELECT", "x") == messages.NOT_AN_INTEGER
    assert run(c, "SELECT", "4294967296") == messages.NOT_AN_INTEGER
    assert not c.close_after_reply
    assert run(c, "QUIT") is OK
    assert c.close_after_reply


@pytest.mark.parametrize(
    ("words", "name"),
    [
        (("ECHO",), "echo"),
        (("ECHO", "a", "b"), "echo"),
        (("PING", "a", "b"), "ping"),
        (("SELECT",), "select"),
        (("AUTH",), "auth"),
        (("CLIENT",), "client"),
        (("client", "setname"), "client|setname"),
        (("CLIENT", "ID", "x"), "client|id"),
        (("COMMAND", "COUNT", "x"), "command|count"),
    ],
)
def test_arity_errors_use_the_full_lower_case_name(words: tuple[str, ...], name: str) -> None:
    reply = run(ctx(), *words)
    assert reply == f"ERR wrong number of arguments for '{name}' command"
    assert isinstance(reply, ErrorReply)


def test_unknown_command_and_subcommand_wording() -> None:
    c = ctx()
    assert (
        run(c, "foo", "a", "b") == "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
    )
    assert run(c, "FOO") == "ERR unknown command 'FOO', with args beginning with: "
    long_reply = run(c, "foo", "x" * 200, "y")
    assert long_reply == "ERR unknown command 'foo', with args beginning with: '" + "x" * 128 + "' "
    assert run(c, "CLIENT", "foo") == "ERR unknown subcommand 'foo'. Try CLIENT HELP."
    assert run(c, "command", "bar") == "ERR unknown subcommand 'bar'. Try COMMAND HELP."
    raw = encode(run(c, b"\xff"), 2)
    assert raw == b"-ERR unknown command '\xff', with args beginning with: \r\n"


def test_unsupported_commands_say_so() -> None:
    for name in ("unwatch", "EVAL", "subscribe", "CLUSTER"):
        reply = run(ctx(), name)
        assert reply == messages.not_supported(name)
        assert reply.startswith(f"ERR command '{name.upper()}' is not supported by hearsay")
    assert run(ctx(), "unwatch") == "ERR command 'UNWATCH' is not supported by hearsay"
    assert run(ctx(), "RENAME", "a", "b") == (
        "ERR command 'RENAME' is not supported by hearsay; "
        "DUMP the key, RESTORE it under the new name, DEL the old one"
    )
    assert run(ctx(), "client", "pause", "10") == (
        "ERR command 'CLIENT|PAUSE' is not supported by hearsay"
    )


def test_requirepass_gates_everything_but_auth_hello_quit() -> None:
    c = ctx(PASSWORD)
    assert c.authenticated is False
    assert run(c, "PING") == messages.NOAUTH
    assert run(c, "CLIENT", "ID") == messages.NOAUTH
    assert run(c, "COMMAND") == messages.NOAUTH
    # Redis checks existence and arity before authentication.
    assert str(run(c, "FOO")).startswith("ERR unknown command 'FOO'")
    assert run(c, "ECHO") == messages.wrong_number_of_args("echo")
    assert run(c, "HELLO", "3") == messages.NOAUTH_HELLO
    assert c.protocol == 2
    assert run(c, "AUTH", "wrong") == messages.WRONGPASS
    assert run(c, "AUTH", "bob", PASSWORD) == messages.WRONGPASS
    assert run(c, "AUTH", "a", "b", "c") == messages.SYNTAX_ERROR
    assert c.authenticated is False
    assert run(c, "AUTH", PASSWORD) is OK
    assert c.authenticated is True
    assert encode(run(c, "PING"), 2) == b"+PONG\r\n"
    other = ctx(PASSWORD)
    assert run(other, "AUTH", "default", PASSWORD) is OK
    quitter = ctx(PASSWORD)
    assert run(quitter, "QUIT") is OK
    assert quitter.close_after_reply


def test_auth_without_requirepass() -> None:
    c = ctx()
    assert run(c, "AUTH", "x") == messages.AUTH_NOT_CONFIGURED
    assert run(c, "AUTH", "default", "anything") is OK
    assert run(c, "AUTH", "bob", "anything") == messages.WRONGPASS


def test_hello_resp2_bytes_and_resp3_map() -> None:
    c = ctx(client_id=42)
    settings = c.settings
    resp2 = encode(run(c, "HELLO"), c.protocol)
    fields = [
        (b"server", settings.server_name.encode()),
        (b"version", settings.version.encode()),
        (b"proto", 2),
        (b"id", 42),
        (b"mode", b"standalone"),
        (b"role", b"master"),
        (b"modules", []),
    ]
    expected = b"*14\r\n"
    for key, value in fields:
        expected += encode(key, 2) + encode(value, 2)  # type: ignore[arg-type]
    assert resp2 == expected
    reply = run(c, "HELLO", "3")
    assert c.protocol == 3
    as_dict = decoded(reply, c.protocol)
    assert as_dict == {key: (3 if key == b"proto" else value) for key, value in fields}
    assert encode(reply, 3).startswith(b"%7\r\n")
    assert run(c, "HELLO", "2") is not None
    assert c.protocol == 2


def test_hello_errors_and_options() -> None:
    c = ctx(PASSWORD)
    assert run(c, "HELLO", "4") == messages.NOPROTO
    assert run(c, "HELLO", "1") == messages.NOPROTO
    assert run(c, "HELLO", "x") == messages.HELLO_PROTOCOL_NOT_INTEGER
    assert run(c, "HELLO", "3", "FOO") == "ERR Syntax error in HELLO option 'FOO'"
    assert run(c, "HELLO", "3", "AUTH", "default") == "ERR Syntax error in HELLO option 'AUTH'"
    assert run(c, "HELLO", "3", "AUTH", "default", "nope") == messages.WRONGPASS
    assert run(c, "HELLO", "3", "SETNAME", "a b") == messages.CLIENT_NAME_INVALID
    assert c.protocol == 2
    assert c.authenticated is False
    reply = run(c, "HELLO", "3", "AUTH", "default", PASSWORD, "SETNAME", "worker")
    assert isinstance(reply, Map)
    assert c.authenticated is True
    assert c.protocol == 3
    assert c.name == b"worker"


def test_client_subcommands() -> None:
    c = ctx(client_id=99)
    assert run(c, "CLIENT", "GETNAME") is None
    assert run(c, "CLIENT", "SETNAME", "a b") == messages.CLIENT_NAME_INVALID
    assert run(c, "CLIENT", "SETNAME", "me") is OK
    assert run(c, "client", "getname") == b"me"
    assert run(c, "CLIENT", "ID") == 99
    assert run(c, "CLIENT", "SETINFO", "LIB-NAME", "redis-py") is OK
    assert run(c, "CLIENT", "SETINFO", "lib-ver", "1 2") == messages.CLIENT_SETINFO_INVALID.format(
        "lib-ver"
    )
    assert run(c, "CLIENT", "SETINFO", "foo", "x") == "ERR Unrecognized option 'foo'"
    info = run(c, "CLIENT", "INFO")
    assert isinstance(info, Verbatim)
    line = info.text.decode()
    assert line.endswith("\n")
    pairs = dict(field.split("=", 1) for field in line.split())
    assert pairs["id"] == "99"
    assert pairs["name"] == "me"
    assert pairs["cmd"] == "client|info"
    assert pairs["lib-name"] == "redis-py"
    assert pairs["resp"] == "2"
    assert run(c, "CLIENT", "SETNAME", "") is OK
    assert run(c, "CLIENT", "GETNAME") is None


def test_command_introspection_shapes() -> None:
    c = ctx()
    assert run(c, "COMMAND", "COUNT") == len(REGISTRY)
    everything = decoded(run(c, "COMMAND"), 2)
    assert isinstance(everything, list)
    assert len(everything) == len(REGISTRY)
    ping = decoded(run(c, "COMMAND", "INFO", "ping", "nosuch"), 2)
    assert ping == [[b"ping", -1, [b"fast", b"sentinel"], 0, 0, 0, [b"@fast", b"@connection"],
                     [], [], []], None]  # fmt: skip
    sub = decoded(run(c, "COMMAND", "INFO", "client|setname"), 3)
    assert isinstance(sub, list)
    assert sub[0][:2] == [b"client|setname", 3]
    client = decoded(run(c, "COMMAND", "INFO", "CLIENT"), 2)
    assert isinstance(client, list)
    assert {entry[0] for entry in client[0][9]} >= {b"client|id", b"client|setname"}
    names = decoded(run(c, "COMMAND", "LIST"), 2)
    assert isinstance(names, list)
    assert set(names) >= {b"ping", b"hello", b"client", b"command"}
    docs = decoded(run(c, "COMMAND", "DOCS", "ping", "nosuch"), 3)
    assert isinstance(docs, dict)
    assert list(docs) == [b"ping"]
    assert docs[b"ping"][b"group"] == b"connection"
    assert set(docs[b"ping"]) == {b"summary", b"since", b"group"}


def test_registry_for_data_commands() -> None:
    registry = CommandRegistry()
    install_connection_commands(registry)
    seen: list[list[bytes]] = []

    @registry.command("PFADD", arity=-2, flags=("write", "denyoom", "fast"), first_key=1,
                      last_key=1, step=1, group="hyperloglog")  # fmt: skip
    def pfadd(context: ClientContext, args: list[bytes]) -> Reply:
        seen.append(args)
        if args[1] == b"wrong":
            raise WrongTypeError("not an HLL")
        if args[1] == b"bad":
            raise SketchParameterError("bad precision")
        if args[1] == b"err":
            raise CommandError(messages.SYNTAX_ERROR)
        return 1

    registry.add("UNWATCH", lambda context, args: OK, arity=1)
    c = ctx()
    assert registry.dispatch(c, [b"pfadd"]) == messages.wrong_number_of_args("pfadd")
    assert seen == []
    assert registry.dispatch(c, [b"PFADD", b"k", b"a"]) == 1
    assert seen == [[b"PFADD", b"k", b"a"]]
    assert registry.dispatch(c, [b"PFADD", b"wrong"]) == messages.WRONGTYPE
    assert registry.dispatch(c, [b"PFADD", b"bad"]) == "ERR bad precision"
    assert registry.dispatch(c, [b"PFADD", b"err"]) == messages.SYNTAX_ERROR
    assert registry.dispatch(c, [b"UNWATCH"]) is OK  # a registered command beats the list
    info = decoded(registry.dispatch(c, [b"COMMAND", b"INFO", b"pfadd"]), 3)
    assert isinstance(info, list)
    name, arity, flags, first, last, step, categories, _tips, specs, _subs = info[0]
    assert (name, arity, first, last, step) == (b"pfadd", -2, 1, 1, 1)
    assert set(flags) == {b"write", b"denyoom", b"fast"}
    assert b"@hyperloglog" in categories
    assert specs[0][b"begin_search"] == {b"type": b"index", b"spec": {b"index": 1}}
    assert specs[0][b"find_keys"][b"spec"] == {b"lastkey": 0, b"keystep": 1, b"limit": 0}
    assert registry.dispatch(c, [b"COMMAND", b"COUNT"]) == len(REGISTRY) + 2
    with pytest.raises(ValueError, match="already registered"):
        registry.add("pfadd", pfadd, arity=-2)
    with pytest.raises(ValueError, match="unknown command flags"):
        registry.add("X", pfadd, arity=1, flags=("writ",))
    with pytest.raises(ValueError, match="arity"):
        registry.add("Y", pfadd, arity=0)
    with pytest.raises(ValueError, match="container"):
        registry.add("Z", pfadd, arity=2, parent="NOPE")


def test_a_listed_client_line_says_how_old_and_how_idle_the_connection_is() -> None:
    listed = ClientContext(client_id=7, created_ms=1_000, now_ms=31_000)  # last active at 31 s
    fields = dict(part.split("=", 1) for part in client_info_line(listed, 45_500).split())
    assert (fields["age"], fields["idle"]) == ("44", "14")
    own = dict(part.split("=", 1) for part in client_info_line(listed).split())
    assert (own["age"], own["idle"]) == ("30", "0")  # CLIENT INFO: the asking connection itself
