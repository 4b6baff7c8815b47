"""``parse_doubles`` (many values at once, as TDIGEST.ADD reads them) accepts exactly the
argument lists whose every argument ``parse_double`` accepts, with the same values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hearsay.resp.parser import parse_double, parse_doubles

_WORDS = st.one_of(
    st.floats(allow_nan=False).map(lambda v: repr(v).encode()),
    st.integers(-(10**30), 10**30).map(lambda v: str(v).encode()),
    st.sampled_from([b"inf", b"-inf", b"+Infinity", b"nan", b"1e", b".5", b"5.", b"", b" 1",
                     b"1_0", b"0x10", b"1e999", b"-0", b"1\n2", b"x" * 300, b"1" * 257]),
    st.binary(max_size=8),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=8))
def test_parse_doubles_is_parse_double_of_each(args: list[bytes]) -> None:
    each = [parse_double(arg) for arg in args]
    expected = None if not args or None in each else each
    assert parse_doubles(args) == expected
