"""The gossip socket's kernel side: the buffers asked for, and the datagrams the kernel dropped.

Why a module: a node busy with clients reads its gossip socket late, and what overflows the
socket's receive buffer is dropped by the kernel before the node sees it: Linux's default,
about 208 KiB, held a fraction of a second of a loaded peer's pushes (3 nodes on 2 cores under
pipelined writes lost a quarter of their datagrams, each loss a retry of a whole key that
deepened the backlog). So the socket asks for more, and the drops are shown (INFO gossip
``socket_drops``, metric ``hearsay_gossip_socket_drops``), not left to guess.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path
from typing import Final

__all__ = ["SOCKET_BUFFER_BYTES", "kernel_drops", "size_buffers"]

log = logging.getLogger("hearsay.runtime.gossip")

SOCKET_BUFFER_BYTES: Final = 4 << 20
"""The receive and send buffers asked of the kernel (memberlist asks 2 MB). Linux caps the
request at ``net.core.rmem_max`` / ``wmem_max`` (docs/operations.md, socket buffers)."""

_UDP_TABLES: Final = (Path("/proc/net/udp"), Path("/proc/net/udp6"))
_INODE_FIELD: Final = 9
_DROPS_FIELD: Final = 12


def size_buffers(sock: socket.socket) -> int:
    """Ask for ``SOCKET_BUFFER_BYTES`` of receive and send buffer; log once (at info) each
    the kernel grants less of, with the setting that limits it. The receive buffer granted."""
    received = 0
    for option, limit in ((socket.SO_RCVBUF, "rmem_max"), (socket.SO_SNDBUF, "wmem_max")):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        # (Linux reports twice what it grants: the doubling is its bookkeeping allowance)
        granted = sock.getsockopt(socket.SOL_SOCKET, option) // 2
        if option == socket.SO_RCVBUF:
            received = granted
        if granted < SOCKET_BUFFER_BYTES:
            log.info(
                "gossip socket buffer is %d KiB of the %d KiB asked: raise net.core.%s",
                granted >> 10,
                SOCKET_BUFFER_BYTES >> 10,
                limit,
            )
    return received


def kernel_drops(inode: int) -> int | None:
    """The drops the kernel counts for the UDP socket with ``inode`` (Linux's /proc/net/udp
    and udp6 tables, ``drops`` column); None when no table lists it."""
    wanted = str(inode)
    for table in _UDP_TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:  # bounded by the sockets of this network namespace
            fields = line.split()
            if len(fields) > _DROPS_FIELD and fields[_INODE_FIELD] == wanted:
                return int(fields[_DROPS_FIELD])
    return None
