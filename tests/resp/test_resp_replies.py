"""RESP2/RESP3 reply encodings: hand-checked bytes, and hiredis decoding what we encode."""

from __future__ import annotations

import math

import hiredis
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hearsay.resp.replies import (
    MAX_DEPTH,
    NULL_ARRAY,
    OK,
    ErrorReply,
    Map,
    RawReply,
    Reply,
    ReplyEncoder,
    Set,
    SimpleString,
    Verbatim,
    encode,
)

CASES: list[tuple[Reply, bytes, bytes]] = [
    (OK, b"+OK\r\n", b"+OK\r\n"),
    (SimpleString("QUEUED"), b"+QUEUED\r\n", b"+QUEUED\r\n"),
    (SimpleString("a\r\nb"), b"+a  b\r\n", b"+a  b\r\n"),
    (ErrorReply("ERR syntax error"), b"-ERR syntax error\r\n", b"-ERR syntax error\r\n"),
    (0, b":0\r\n", b":0\r\n"),
    (1, b":1\r\n", b":1\r\n"),
    (-(2**63), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n"),
    (2**64, b"$20\r\n18446744073709551616\r\n", b"(18446744073709551616\r\n"),
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
    ("é", b"$2\r\n\xc3\xa9\r\n", b"$2\r\n\xc3\xa9\r\n"),
    (None, b"$-1\r\n", b"_\r\n"),
    (NULL_ARRAY, b"*-1\r\n", b"_\r\n"),
    (True, b":1\r\n", b"#t\r\n"),
    (False, b":0\r\n", b"#f\r\n"),
    (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
    (3.0, b"$1\r\n3\r\n", b",3\r\n"),
    (math.inf, b"$3\r\ninf\r\n", b",inf\r\n"),
    (-math.inf, b"$4\r\n-inf\r\n", b",-inf\r\n"),
    (math.nan, b"$3\r\nnan\r\n", b",nan\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    (
        [1, [b"x", None]],
        b"*2\r\n:1\r\n*2\r\n$1\r\nx\r\n$-1\r\n",
        b"*2\r\n:1\r\n*2\r\n$1\r\nx\r\n_\r\n",
    ),
    ({b"k": 1}, b"*2\r\n$1\r\nk\r\n:1\r\n", b"%1\r\n$1\r\nk\r\n:1\r\n"),
    (Map([(b"k", [1])]), b"*2\r\n$1\r\nk\r\n*1\r\n:1\r\n", b"%1\r\n$1\r\nk\r\n*1\r\n:1\r\n"),
    (Set([b"a", b"a"]), b"*2\r\n$1\r\na\r\n$1\r\na\r\n", b"~2\r\n$1\r\na\r\n$1\r\na\r\n"),
    ({b"a"}, b"*1\r\n$1\r\na\r\n", b"~1\r\n$1\r\na\r\n"),
    (Verbatim("hi\n"), b"$3\r\nhi\n\r\n", b"=7\r\ntxt:hi\n\r\n"),
    (RawReply(b":7\r\n"), b":7\r\n", b":7\r\n"),
    (memoryview(b"mv"), b"$2\r\nmv\r\n", b"$2\r\nmv\r\n"),
    (bytearray(b"ba"), b"$2\r\nba\r\n", b"$2\r\nba\r\n"),
    ((1, 2), b"*2\r\n:1\r\n:2\r\n", b"*2\r\n:1\r\n:2\r\n"),
]


@pytest.mark.parametrize(("reply", "resp2", "resp3"), CASES)
def test_encodings_match_the_spec(reply: Reply, resp2: bytes, resp3: bytes) -> None:
    assert encode(reply, 2) == resp2
    assert encode(reply, 3) == resp3
    assert ReplyEncoder(3).encode_many([reply, reply]) == resp3 * 2


def test_error_text_round_trips_client_bytes() -> None:
    text = b"ERR unknown command '\xff'".decode("utf-8", "surrogateescape")
    assert encode(ErrorReply(text), 2) == b"-ERR unknown command '\xff'\r\n"


def test_subclasses_are_encoded_like_their_base() -> None:
    class Flag(int):
        pass

    class Name(bytes):
        pass

    assert encode([Flag(5), Name(b"n")], 3) == b"*2\r\n:5\r\n$1\r\nn\r\n"


def test_bad_values_and_depth_are_rejected() -> None:
    with pytest.raises(TypeError):
        encode(object(), 2)  # type: ignore[arg-type]
    deep: Reply = []
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(ValueError, match="nested"):
        encode(deep, 2)
    with pytest.raises(ValueError):
        ReplyEncoder(4)
    with pytest.raises(ValueError):
        Verbatim("x", "text")


def decode(data: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(data)
    value = reader.gets()
    assert reader.gets() is False  # exactly one reply, nothing left over
    return value


leaves = st.one_of(
    st.none(),
    st.binary(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
)
trees = st.recursive(leaves, lambda inner: st.lists(inner, max_size=5), max_leaves=30)


def expected_resp2(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if math.isinf(value):
            return b"inf" if value > 0 else b"-inf"  # RESP2 has no double: Redis sends "inf"
        return repr(value).removesuffix(".0").encode()
    if isinstance(value, list):
        return [expected_resp2(v) for v in value]
    return value


@example([math.inf, [-math.inf]])  # nested infinities: found by the explore profile
@given(trees)
def test_hiredis_decodes_resp2(value: Reply) -> None:
    decoded = decode(encode(value, 2))
    assert decoded == expected_resp2(value)


@given(trees)
def test_hiredis_decodes_resp3(value: Reply) -> None:
    assert decode(encode(value, 3)) == value


@given(st.dictionaries(st.binary(max_size=8), st.integers(-(2**63), 2**63 - 1), max_size=6))
def test_maps_decode_in_both_protocols(value: dict[bytes, int]) -> None:
    assert decode(encode(value, 3)) == value
    flat = decode(encode(value, 2))
    assert isinstance(flat, list)
    assert dict(zip(flat[::2], flat[1::2], strict=True)) == value


@pytest.mark.parametrize("protocol", [2, 3])
def test_encode_many_equals_one_by_one(protocol: int) -> None:
    encoder = ReplyEncoder(protocol)
    for replies in ([0, 1, 1, 0], [0, 5000, -7], [1, True, False], [1, ErrorReply("ERR x")], []):
        assert encoder.encode_many(replies) == b"".join(encoder.encode(r) for r in replies)


@pytest.mark.parametrize("protocol", [2, 3])
@given(
    st.lists(
        st.one_of(st.integers(-2, 2000), st.integers(-(2**63), 2**63 - 1), st.integers()),
        max_size=20,
    )
)
def test_int_replies_encode_as_the_general_writer_writes_them(
    protocol: int, replies: list[int]
) -> None:
    """The shortcuts for integers (a run of INCRs' values, one counter's value) give the
    general writer's bytes, big numbers past int64 included (a bulk string in RESP2)."""
    encoder = ReplyEncoder(protocol)
    general = bytearray()
    for reply in replies:
        encoder.write(general, reply)
    assert encoder.encode_many(replies) == bytes(general)
    assert b"".join(encoder.encode(reply) for reply in replies) == bytes(general)


@pytest.mark.parametrize("protocol", [2, 3])
@given(
    st.lists(
        st.one_of(
            st.none(), st.integers(-2, 2000), st.integers(), st.booleans(), st.binary(max_size=3)
        ),
        max_size=20,
    )
)
def test_flat_arrays_encode_as_the_general_writer_writes_them(
    protocol: int, reply: list[Reply]
) -> None:
    """The shortcut for short arrays of integers, bulk strings and nils (a CMS.INCRBY's
    counts, a TOPK.ADD's nils and expelled items) gives the general writer's bytes, and steps
    aside for anything else."""
    encoder = ReplyEncoder(protocol)
    general = bytearray()
    encoder.write(general, reply)
    assert encoder.encode(reply) == bytes(general)
