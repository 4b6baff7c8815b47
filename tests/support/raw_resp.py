"""RESP over a raw socket, for tests that must control exactly what a client sends and when
(several clients' requests at once, a half-close, a pipeline in one write)."""

from __future__ import annotations

import socket

import hiredis


def command(*args: bytes | str) -> bytes:
    """One RESP multibulk request."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def read_raw(sock: socket.socket, count: int) -> tuple[list[object], bytes]:
    """Exactly ``count`` replies and the bytes they came in (the socket's timeout bounds every
    read)."""
    reader = hiredis.Reader()
    replies: list[object] = []
    raw = b""
    while len(replies) < count:  # bounded: each pass reads data or raises
        data = sock.recv(1 << 20)
        assert data, f"connection closed after {len(replies)} of {count} replies"
        raw += data
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    return replies, raw


def read_replies(sock: socket.socket, count: int) -> list[object]:
    """Exactly ``count`` replies."""
    return read_raw(sock, count)[0]
