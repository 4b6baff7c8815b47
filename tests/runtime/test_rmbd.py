"""rmbd's client datagrams against a real node (``--rmbd-port``)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from tests.support.nodes import Cluster, poll_until, split_address

pytestmark = pytest.mark.integration

REQUEST = struct.Struct("!B140p")
PEER = struct.Struct("!B140pH")
COUNT_REPLY = struct.Struct("!140pL")


def count(sock: socket.socket, address: tuple[str, int], key: bytes) -> int:
    sock.sendto(REQUEST.pack(1, key), address)
    data, _ = sock.recvfrom(4096)
    echoed, value = COUNT_REPLY.unpack(data)
    assert echoed == key
    return int(value)


def test_rmbd_add_count_and_peer(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start(
            "a", "--rmbd-port", "0", "--rmbd-width", "50", "--rmbd-depth", "4", "--rmbd-peer"
        )
        other = cluster.start("b")
        address = split_address(node.client().info("server")["rmbd_address"])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            assert count(sock, address, b"abc") == 0
            for _ in range(3):
                sock.sendto(REQUEST.pack(0, b"abc"), address)
            sock.sendto(REQUEST.pack(0, b"xyz"), address)
            for garbage in (b"", b"\x00", b"\x07" + b"x" * 140, b"\x02" + b"\x00" * 402):
                sock.sendto(garbage, address)
            poll_until(lambda: count(sock, address, b"abc") == 3, 10, what="adds counted")
            assert count(sock, address, b"xyz") == 1
            # The same sketch answers over RESP.
            assert node.client().cms().query("rmbd", "abc") == [3]
            host, port = split_address(other.gossip)
            sock.sendto(PEER.pack(3, host.encode(), port), address)
            joined = other.client()
            poll_until(
                lambda: joined.exists("rmbd") and joined.cms().query("rmbd", "abc") == [3],
                15,
                what="peer joined",
            )
    finally:
        cluster.close()
