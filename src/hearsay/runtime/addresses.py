"""Network addresses as users write them: ``host:port``, and ``[v6addr]:port`` for IPv6.

A host is an IP literal or a DNS name (letters, digits, ``-`` and ``_`` in dot-separated
labels of at most 63 characters, 253 in all): anything else is refused here, at once, with a
clear error, rather than handed to the resolver to fail later in the background.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from hearsay.base.errors import HearsayError
from hearsay.protocol.membership import Address

_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
HOST_NAME_CHARS_MAX: Final = 253


def parse_address(text: str) -> Address:
    """``host:port`` or ``[v6addr]:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise HearsayError(f"expected HOST:PORT or [ADDR]:PORT, got {text!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise HearsayError(f"unbalanced brackets in {text!r}")
        host = host[1:-1]
        if not is_ip(host) or ":" not in host:
            raise HearsayError(f"not an IPv6 address in brackets: {text!r}")
    elif ":" in host:
        raise HearsayError(f"an IPv6 address needs brackets, as in [::1]:7946: got {text!r}")
    elif not is_ip(host) and not _is_host_name(host):
        raise HearsayError(f"not an IP address or host name: {text!r}")
    number = int(port)
    if not 0 < number < 65536:
        raise HearsayError(f"port out of range in {text!r}")
    return host, number


def _is_host_name(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host  # a fully qualified name's root dot
    return 0 < len(name) <= HOST_NAME_CHARS_MAX and all(
        _LABEL.fullmatch(label) for label in name.split(".")
    )


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 literal (no brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def format_address(host: str, port: int) -> str:
    """The inverse of :func:`parse_address` (brackets around IPv6 hosts)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
