"""Network addresses as users write them: ``host:port``, and ``[v6addr]:port`` for IPv6."""

from __future__ import annotations

from hearsay.base.errors import HearsayError
from hearsay.protocol.membership import Address


def parse_address(text: str) -> Address:
    """``host:port`` or ``[v6addr]:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise HearsayError(f"expected HOST:PORT or [ADDR]:PORT, got {text!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise HearsayError(f"unbalanced brackets in {text!r}")
        host = host[1:-1]
    number = int(port)
    if not 0 < number < 65536:
        raise HearsayError(f"port out of range in {text!r}")
    return host, number


def format_address(host: str, port: int) -> str:
    """The inverse of :func:`parse_address` (brackets around IPv6 hosts)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
