"""The sans-IO RESP request parser: round trips under any chunking, Redis's errors, limits."""

from __future__ import annotations

import itertools
import random
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearsay.resp import _reqparse, messages
from hearsay.resp import parser as parser_module
from hearsay.resp.parser import ProtocolError, RequestParser, parse_integer, split_inline

pytestmark = pytest.mark.property


def multibulk(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def quoted_inline(args: list[bytes]) -> bytes:
    """An inline request with every argument in double quotes, every byte as \\xHH."""
    return b" ".join(b'"' + b"".join(b"\\x%02x" % c for c in a) + b'"' for a in args) + b"\r\n"


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def parse_chunks(chunks: list[bytes], **limits: int) -> tuple[list[list[bytes]], str | None]:
    """Every command parsed, and the protocol error message if one came."""
    parser = RequestParser(**limits)  # type: ignore[arg-type]
    commands: list[list[bytes]] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            commands.extend(parser)
    except ProtocolError as exc:
        return commands, exc.message
    return commands, None


def parse_chunks_driver(chunks: list[bytes], **limits: int) -> tuple[list[list[bytes]], str | None]:
    """The same through :meth:`RequestParser.parse`, the driver's call (with the fast path)."""
    parser = RequestParser(**limits)  # type: ignore[arg-type]
    commands: list[list[bytes]] = []
    for chunk in chunks:
        commands.extend(parser.parse(chunk))
        if parser.error is not None:
            return commands, parser.error.message
    return commands, None


def parse_all(data: bytes, **limits: int) -> tuple[list[list[bytes]], str | None]:
    result = parse_chunks([data], **limits)
    assert parse_chunks_driver([data], **limits) == result
    return result


def first_error(data: bytes, **limits: int) -> str | None:
    return parse_all(data, **limits)[1]


args_st = st.lists(st.binary(max_size=40), min_size=1, max_size=6)
commands_st = st.lists(args_st, min_size=1, max_size=12)
cuts_st = st.lists(st.integers(min_value=0, max_value=10_000), max_size=20)


@given(commands_st, cuts_st)
def test_multibulk_round_trip_under_any_split(commands: list[list[bytes]], cuts: list[int]) -> None:
    data = b"".join(multibulk(c) for c in commands)
    assert parse_chunks(split_at(data, cuts)) == (commands, None)
    assert parse_chunks_driver(split_at(data, cuts)) == (commands, None)


@given(commands_st, cuts_st)
def test_quoted_inline_round_trip_under_any_split(
    commands: list[list[bytes]], cuts: list[int]
) -> None:
    data = b"".join(quoted_inline(c) for c in commands)
    assert parse_chunks(split_at(data, cuts)) == (commands, None)


plain_word = st.binary(min_size=1, max_size=12).filter(
    lambda b: not any(c in b for c in b" \t\r\n\v\f\"'\0*")
)


@given(st.lists(st.lists(plain_word, min_size=1, max_size=5), min_size=1, max_size=8), cuts_st)
def test_mixed_inline_and_multibulk(commands: list[list[bytes]], cuts: list[int]) -> None:
    parts = []
    for i, command in enumerate(commands):
        parts.append(b" ".join(command) + b"\n" if i % 2 else multibulk(command))
    data = b"".join(parts)
    assert parse_chunks(split_at(data, cuts)) == (commands, None)


def test_one_byte_at_a_time() -> None:
    commands = [[b"SET", b"k", b"a\r\nb"], [b"PFADD", b"h", b"x" * 300], [b"PING"]]
    data = b"".join(multibulk(c) for c in commands) + b"ECHO 'it\\'s'\r\n" + b'ECHO "a b"\n'
    chunks = [data[i : i + 1] for i in range(len(data))]
    assert parse_chunks(chunks) == ([*commands, [b"ECHO", b"it's"], [b"ECHO", b"a b"]], None)


garbage_st = st.lists(
    st.one_of(
        st.binary(max_size=20),
        st.sampled_from([b"*", b"$", b"\r\n", b"\n", b"*1\r\n", b"$3\r\n", b'"', b"'", b"\\x"]),
        st.integers(min_value=-3, max_value=70).map(lambda n: b"%d" % n),
    ),
    max_size=30,
).map(b"".join)


@given(garbage_st, cuts_st)
def test_garbage_gives_commands_or_a_protocol_error_the_same_under_any_split(
    data: bytes, cuts: list[int]
) -> None:
    small = {"max_inline_len": 16, "max_bulk_len": 40, "max_multibulk_len": 20}
    whole = parse_all(data, **small)  # raises nothing but ProtocolError, caught inside
    assert parse_chunks(split_at(data, cuts), **small) == whole
    for command in whole[0]:
        assert command and all(type(arg) is bytes for arg in command)


resp3_garbage_st = st.lists(
    st.one_of(
        args_st.map(multibulk),
        st.binary(max_size=8),
        st.sampled_from(
            [
                b"*1\r\n", b"*2\r\n", b"*0\r\n", b"*-1\r\n", b"$1\r\na\r\n", b"$2\r\nab\r\n",
                b"$-1\r\n", b"+AB\r\n", b"+A\r\n", b"=7\r\ntxt:abc\r\n", b":5\r\n", b"_\r\n",
                b",1.5\r\n", b"#t\r\n", b"(12\r\n", b"-ERR x\r\n", b"!3\r\nerr\r\n",
                b"%1\r\n", b"~1\r\n", b">1\r\n", b"|1\r\n", b"XY", b"\r\n", b"$12345\r\n",
                b"*10000\r\n", b"$01\r\n",
            ]
        ),
    ),
    max_size=16,
).map(b"".join)  # fmt: skip


@given(resp3_garbage_st, cuts_st)
def test_fast_path_agrees_with_the_python_path(data: bytes, cuts: list[int]) -> None:
    """hiredis reads RESP3 replies; whatever it accepts must parse as Redis's grammar says."""
    for chunks in ([data], split_at(data, cuts)):
        assert parse_chunks_driver(chunks) == parse_chunks(chunks)


def test_fast_path_refuses_what_only_a_reply_parser_accepts() -> None:
    cases = [
        b"*2\r\n+AB\r\n$2\r\nCD\r\n",  # a simple string argument
        b"*2\r\n$1\r\naXY*1\r\n$1\r\nb\r\n",  # a nested array behind a skipped terminator
        b"*1\r\n:5\r\n",
        b"*1\r\n=7\r\ntxt:abc\r\n",
        # a nested array (4 bytes longer than a bulk of its length) and a 10-byte simple
        # string (4 bytes shorter than its bulk): canonical length, refused for the array
        b"*2\r\n*1\r\n$1\r\nb\r\n+0123456789\r\n",
        # four simple strings (3 bytes short each) and three verbatims (4 bytes long each)
        b"*7\r\n" + b"+a\r\n" * 4 + b"=5\r\ntxt:b\r\n" * 3,
        b"*2\r\n*1\r\n$1\r\nb\r\n+0123456789\r\n",
    ]
    for data in cases:
        commands, error = parse_chunks_driver([data])
        assert (commands, error) == parse_chunks([data])
        assert error is not None and error.startswith("ERR Protocol error: expected '$'")
    # a map, a set or a push after a command: hiredis returns a dict, a set or a list where
    # Redis reads an inline command
    for tail in (b"%1\r\n$1\r\nk\r\n$1\r\nv\r\n", b"~1\r\n$1\r\nk\r\n", b">1\r\n$1\r\nk\r\n"):
        data = multibulk([b"PING"]) + tail
        assert parse_chunks_driver([data]) == parse_chunks([data])
        assert parse_chunks([data])[0][1] == [tail.split(b"\r\n")[0]]


def test_fast_path_takes_whole_canonical_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = [[b"PFADD", b"bench:hll", b"%012d" % i] for i in range(16)]
    data = b"".join(multibulk(c) for c in pipeline)
    parser = RequestParser()

    def python_path(self: RequestParser) -> list[list[bytes]]:
        raise AssertionError("the Python path was taken")

    monkeypatch.setattr(RequestParser, "read_commands", python_path)
    assert parser.parse(data) == pipeline
    assert parser.parse(data + multibulk([b"PING"])) == [*pipeline, [b"PING"]]
    monkeypatch.undo()
    half = len(data) // 2  # a command cut in two: its start is kept and read again in C
    assert parser.parse(data[:half]) + parser.parse(data[half:]) == pipeline
    assert parser.parse(data[:half]) + parser.parse(data[half:-3]) + parser.parse(data[-3:]) == (
        pipeline
    )
    assert parser.buffered_bytes == 0
    first = parser.parse(data[:half])
    assert parser.buffered_bytes == half - sum(len(multibulk(c)) for c in first)


@given(
    commands_st,
    st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(b"*$\r\n-+:0159a")), max_size=3),
    st.integers(min_value=0, max_value=8),
    st.sampled_from([(1_000, 40), (3, 5), (1, 1)]),
)
def test_c_reader_reads_a_prefix_as_the_python_path_does(
    commands: list[list[bytes]],
    edits: list[tuple[int, int]],
    cut: int,
    limits: tuple[int, int],
) -> None:
    """``_reqparse.commands`` on canonical pipelines with a few bytes changed (a count, a length
    or a CRLF broken; leading zeros; a type byte), cut short, over tight limits: the commands it
    reads are exactly those the Python path reads from the bytes it says they take, with no
    error, and the driver's ``parse`` (C, then Python for the rest) reads what the Python path
    reads from the whole."""
    data = bytearray(b"".join(multibulk(c) for c in commands))
    for at, byte in edits:
        data[at % len(data)] = byte
    whole = bytes(data[: len(data) - cut] if cut < len(data) else data)
    count_max, bulk_max = limits
    small = {"max_multibulk_len": count_max, "max_bulk_len": bulk_max}
    fast, read, short = _reqparse.commands(whole, count_max, bulk_max)
    assert 0 <= read <= len(whole)
    assert parse_chunks([whole[:read]], **small) == (fast, None)
    for chunks in ([whole], [whole[: -cut or None], whole[-cut or len(whole) :]]):
        assert parse_chunks_driver(chunks, **small) == parse_chunks(chunks, **small)
    within = all(len(c) <= count_max and max(map(len, c)) <= bulk_max for c in commands)
    if not edits and within:
        if not cut:  # (a canonical pipeline: all in C)
            assert (fast, read, short) == (commands, len(whole), False)
        elif read < len(whole):  # (cut inside a command: kept to read again)
            assert short


def test_c_reader_stops_at_what_is_not_canonical_or_whole() -> None:
    one = multibulk([b"INCR", b"c"])
    assert _reqparse.commands(one + b"*0\r\n" + one, 10, 10) == ([[b"INCR", b"c"]] * 2, 46, False)
    for end in range(1, len(one)):  # cut anywhere: a canonical command the bytes end inside
        assert _reqparse.commands(one + one[:end], 10, 10) == ([[b"INCR", b"c"]], len(one), True)
    for tail in (
        one[:-1],  # cut inside the last CRLF
        b"*02\r\n$4\r\nINCR\r\n$1\r\nc\r\n",  # leading zero in the count
        b"*2\r\n$04\r\nINCR\r\n$1\r\nc\r\n",  # and in a length
        b"*2\r\n$4\r\nINCRXY$1\r\nc\r\n",  # no CRLF after a payload (Redis skips two bytes)
        b"*-1\r\n",
        b"*1\r\n:1\r\n",
        b"PING\r\n",
        b"*999\r\n$1\r\na\r\n",  # a count the bytes cannot hold: no list allocated
        b"*99999\r\n$1\r\na\r\n",  # a count over the limit
        b"*9\r\n$1\r\na\r\n:",  # a count the bytes cannot hold, then not an argument
    ):
        fast = _reqparse.commands(one + tail, 1_000, 1_000)
        assert fast[:2] == ([[b"INCR", b"c"]], len(one)), tail
        assert fast[2] is (tail in (one[:-1], b"*999\r\n$1\r\na\r\n")), tail
    assert _reqparse.commands(b"", 1, 1) == ([], 0, False)
    assert _reqparse.commands(bytearray(one), 10, 10) == ([], 0, False)  # (Python copies it)
    assert _reqparse.commands(one, 1, 10) == ([], 0, False)  # two arguments over a limit of one
    assert _reqparse.commands(one, 10, 3) == ([], 0, False)  # "INCR" over a limit of three
    tracemalloc.start()
    try:  # a count of a million in 14 bytes: left before a list of a million is made
        assert _reqparse.commands(b"*1000000\r\n$0\r\n", 1 << 20, 10) == ([], 0, True)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 100_000


def _commands_and_error(chunks: list[bytes]) -> tuple[list[list[bytes]], str | None]:
    """Everything a parser makes of ``chunks`` fed in turn: its commands, then its error."""
    parser = RequestParser(max_inline_len=32)
    commands: list[list[bytes]] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            commands.extend(parser)
    except ProtocolError as exc:
        return commands, exc.message
    return commands, None


@given(st.binary(max_size=300), st.randoms(use_true_random=False))
def test_random_bytes_parse_the_same_however_they_are_split(
    data: bytes, rnd: random.Random
) -> None:
    """Not only "nothing else is raised": cutting the bytes anywhere changes nothing, every
    command parsed is a non-empty list of bytes, and an error is Redis's protocol error."""
    whole = _commands_and_error([data])
    cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, 8))) if len(data) > 1 else []
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert _commands_and_error(pieces) == whole
    commands, error = whole
    for command in commands:
        assert command and all(type(arg) is bytes for arg in command)
    assert error is None or error.startswith("ERR Protocol error: ")


# Replies checked by hand against redis-server 7.0.15 with the same bytes.
REDIS_ERRORS = [
    (b"*abc\r\n", messages.PROTOCOL_INVALID_MULTIBULK_LENGTH),
    (b"*2147483648\r\n", messages.PROTOCOL_INVALID_MULTIBULK_LENGTH),
    (b"*01\r\n", messages.PROTOCOL_INVALID_MULTIBULK_LENGTH),
    (b"*-0\r\n", messages.PROTOCOL_INVALID_MULTIBULK_LENGTH),
    (b"*+1\r\n", messages.PROTOCOL_INVALID_MULTIBULK_LENGTH),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "ERR Protocol error: expected '$', got 'f'"),
    (b"*1\r\n$-1\r\n", messages.PROTOCOL_INVALID_BULK_LENGTH),
    (b"*1\r\n$600000000\r\n", messages.PROTOCOL_INVALID_BULK_LENGTH),
    (b"*1\r\n$01\r\n", messages.PROTOCOL_INVALID_BULK_LENGTH),
    (b'PING "a\r\n', messages.PROTOCOL_UNBALANCED_QUOTES),
    (b'ECHO "a"b\r\n', messages.PROTOCOL_UNBALANCED_QUOTES),
    (b"ECHO 'a'b\r\n", messages.PROTOCOL_UNBALANCED_QUOTES),
    (b"*1\r\n" + b"x" * 70000, messages.PROTOCOL_TOO_BIG_BULK_COUNT),
    (b"x" * 70000, messages.PROTOCOL_TOO_BIG_INLINE),
    (b"*" + b"1" * 70000, messages.PROTOCOL_TOO_BIG_MULTIBULK_COUNT),
    (b"*1\r\n$" + b"1" * 70000, messages.PROTOCOL_TOO_BIG_BULK_COUNT),
]


@pytest.mark.parametrize(("data", "expected"), REDIS_ERRORS)
def test_protocol_errors_use_redis_wording(data: bytes, expected: str) -> None:
    assert first_error(data) == expected


REDIS_ACCEPTS = [
    (b"*-5\r\nPING\r\n", [[b"PING"]]),
    (b"*0\r\n\r\n\r\nPING\r\n", [[b"PING"]]),
    (b"ECHO 'a\\'b'\r\n", [[b"ECHO", b"a'b"]]),
    (b'ECHO "\\x41\\n\\t\\q"\r\n', [[b"ECHO", b"A\n\tq"]]),
    (b"ECHO a\x0bb\r\n", [[b"ECHO", b"a\x0bb"]]),
    (b'  ECHO\t\x0b a"b c"\r\n', [[b"ECHO", b"ab c"]]),
    (b"*1\r\n$4\r\nPINGXY*1\r\n$4\r\nPING\r\n", [[b"PING"], [b"PING"]]),  # CRLF skipped
    (b"ECHO \x00b\r\n", [[b"ECHO"]]),  # C string: NUL ends the line
    (b"GET k\n", [[b"GET", b"k"]]),
]


@pytest.mark.parametrize(("data", "expected"), REDIS_ACCEPTS)
def test_accepts_what_redis_accepts(data: bytes, expected: list[list[bytes]]) -> None:
    assert parse_all(data) == (expected, None)


def test_expected_dollar_quotes_the_raw_byte() -> None:
    assert first_error(b"*1\r\n\xff\r\n") == "ERR Protocol error: expected '$', got '\udcff'"
    assert messages.expected_dollar(0xFF).encode("utf-8", "surrogateescape").endswith(b"'\xff'")


def test_huge_bulk_length_is_refused_without_allocating() -> None:
    parser = RequestParser()
    tracemalloc.start()
    try:
        parser.feed(b"*1\r\n$999999999999\r\n")
        with pytest.raises(ProtocolError) as info:
            parser.next_command()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.message == messages.PROTOCOL_INVALID_BULK_LENGTH
    assert peak < 64 * 1024


def test_bulk_length_limit_is_configurable_and_inclusive() -> None:
    assert parse_all(multibulk([b"x" * 10]), max_bulk_len=10) == ([[b"x" * 10]], None)
    assert first_error(b"*1\r\n$11\r\n", max_bulk_len=10) == messages.PROTOCOL_INVALID_BULK_LENGTH


def test_argument_count_limit_is_checked_on_the_header() -> None:
    assert first_error(b"*6\r\n", max_multibulk_len=5) == messages.PROTOCOL_INVALID_MULTIBULK_LENGTH
    assert parse_all(multibulk([b"a"] * 5), max_multibulk_len=5)[0] == [[b"a"] * 5]


def test_line_limits_do_not_depend_on_chunking() -> None:
    exactly = b"a" * 16 + b"\r\n"  # 16 bytes of content + CR = 17 bytes before LF
    assert first_error(b"a" * 17, max_inline_len=16) == messages.PROTOCOL_TOO_BIG_INLINE
    assert parse_all(b"a" * 15 + b"\r\n", max_inline_len=16) == ([[b"a" * 15]], None)
    assert first_error(exactly, max_inline_len=16) == messages.PROTOCOL_TOO_BIG_INLINE
    header = b"*1\r\n$" + b"0" * 20 + b"\r\n"
    for size in (1, 3, len(header)):
        chunks = [header[i : i + size] for i in range(0, len(header), size)]
        assert parse_chunks(chunks, max_inline_len=16)[1] == messages.PROTOCOL_TOO_BIG_BULK_COUNT


def test_unauthenticated_limits() -> None:
    parser = RequestParser(authenticated=False)
    parser.feed(b"*11\r\n")
    with pytest.raises(ProtocolError, match="unauthenticated multibulk length"):
        parser.next_command()
    parser = RequestParser(authenticated=False)
    parser.feed(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n")
    with pytest.raises(ProtocolError, match="unauthenticated bulk length"):
        parser.next_command()
    parser = RequestParser(authenticated=False)
    parser.feed(multibulk([b"AUTH", b"p" * 16384]))
    assert parser.next_command() == [b"AUTH", b"p" * 16384]


def test_query_buffer_limit() -> None:
    parser = RequestParser(max_query_bytes=100)
    parser.feed(b"*2\r\n$60\r\n" + b"a" * 62 + b"$60\r\n" + b"b" * 20)
    assert parser.next_command() is None
    assert parser.buffered_bytes == 60 + 20
    parser.feed(b"b" * 20)
    assert not parser.failed
    parser.feed(b"b" * 1)
    assert parser.failed
    with pytest.raises(ProtocolError) as info:
        parser.next_command()
    assert info.value.message == messages.PROTOCOL_QUERY_BUFFER_LIMIT


def test_commands_before_an_error_come_first_and_the_parser_stays_failed() -> None:
    parser = RequestParser()
    parser.feed(multibulk([b"PING"]) + b"PING\r\n*x\r\n" + multibulk([b"PING"]))
    assert parser.next_command() == [b"PING"]
    assert parser.next_command() == [b"PING"]
    for _ in range(2):
        with pytest.raises(ProtocolError):
            parser.next_command()
    parser.feed(multibulk([b"PING"]))
    with pytest.raises(ProtocolError):
        list(parser)


def test_waiting_for_a_large_bulk_does_not_reparse() -> None:
    parser = RequestParser()
    parser.feed(b"*1\r\n$100000\r\n")
    assert parser.next_command() is None
    for _ in range(99):
        parser.feed(b"z" * 1000)
        assert parser.next_command() is None
    parser.feed(b"z" * 1000 + b"\r\n")
    assert parser.next_command() == [b"z" * 100000]
    assert parser.buffered_bytes == 0


def test_parse_integer_is_redis_string2ll() -> None:
    good = {b"0": 0, b"-1": -1, b"42": 42, b"9223372036854775807": 2**63 - 1}
    good[b"-9223372036854775808"] = -(2**63)
    for text, value in good.items():
        assert parse_integer(text) == value
    bad = [b"", b"-", b"-0", b"01", b"+1", b" 1", b"1 ", b"1_0", b"9223372036854775808", b"1e3"]
    bad += [b"\xd9\xa1", b"0x1", b"1" * 21]
    for text in bad:
        assert parse_integer(text) is None, text


def test_split_inline_unterminated_and_trailing_backslash() -> None:
    assert split_inline(b'a "b') is None
    assert split_inline(b'a "b\\') is None
    assert split_inline(b"a 'b") is None
    assert split_inline(b"a ''") == [b"a", b""]
    assert split_inline(b'"\\x4g"') == [b"x4g"]


@given(
    args=st.lists(st.binary(max_size=12), min_size=16, max_size=120),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
    limits=st.sampled_from([(10**6, 10**6), (200, 6), (20, 3)]),
)
def test_a_command_bigger_than_a_read_parses_as_in_python(
    args: list[bytes],
    edits: list[tuple[int, int]],
    cuts: list[int],
    limits: tuple[int, int],
) -> None:
    """The arguments of a command of 16 or more read in C (``_reqparse.arguments``) under any
    chunking, with a few bytes changed (a length or CRLF broken, leading zeros), over tight
    limits: the same commands and the same error as the Python loop alone."""
    data = bytearray(multibulk(args) + multibulk([b"PING"]))
    for at, byte in edits:
        data[at % len(data)] = byte
    chunks = split_at(bytes(data), cuts)
    count_max, bulk_max = limits
    small = {"max_multibulk_len": count_max, "max_bulk_len": bulk_max}
    with_c = parse_chunks(chunks, **small)
    in_c = parser_module._C_ARGUMENTS_MIN
    parser_module._C_ARGUMENTS_MIN = 10**9  # type: ignore[misc]  # (the Python loop alone)
    try:
        assert with_c == parse_chunks(chunks, **small)
    finally:
        parser_module._C_ARGUMENTS_MIN = in_c  # type: ignore[misc]
    if not edits and len(args) <= count_max and max(map(len, args)) <= bulk_max:
        assert with_c == ([args, [b"PING"]], None)


def test_c_arguments_stop_at_what_is_not_whole_or_canonical() -> None:
    body = b"$1\r\na\r\n$0\r\n\r\n$4\r\nb\r\nc\r\n"  # (a payload holding CRLF)
    assert _reqparse.arguments(b"xx" + body, 2, 3, 10) == ([b"a", b"", b"b\r\nc"], 2 + len(body))
    assert _reqparse.arguments(body, 0, 2, 10) == ([b"a", b""], 13)
    for bad in (b"$01\r\na\r\n", b"$1\r\naXY", b"$1\r\na\r", b"$11\r\na", b":1\r\n", b"$2\r\na"):
        assert _reqparse.arguments(b"$1\r\na\r\n" + bad, 0, 5, 10) == ([b"a"], 7)
    assert _reqparse.arguments(b"$5\r\nabcde\r\n", 0, 1, 4) == ([], 0)  # (over bulk_max)
    with pytest.raises(ValueError, match="pos outside"):
        _reqparse.arguments(body, len(body) + 1, 1, 10)
