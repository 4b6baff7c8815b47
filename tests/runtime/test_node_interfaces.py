"""A real node's other interfaces: config files, HTTP, vignette datagrams, per-node state,
keygen, and address parsing."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import msgpack
import pytest

from hearsay.base.errors import HearsayError
from hearsay.runtime.addresses import parse_address
from tests.support.nodes import Cluster, poll_until, split_address
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.integration


def test_parse_address_takes_ipv4_names_and_bracketed_ipv6() -> None:
    assert parse_address("127.0.0.1:7946") == ("127.0.0.1", 7946)
    assert parse_address("node-1.local:80") == ("node-1.local", 80)
    assert parse_address("[::1]:7946") == ("::1", 7946)
    for bad in ("7946", "host:", "host:0", "[::1:7946", "host:99999", ":7946"):
        with pytest.raises(HearsayError):
            parse_address(bad)


def test_keygen_prints_a_256_bit_base64_key() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hearsay.cli", "keygen"], capture_output=True, text=True, check=True
    )
    assert len(base64.b64decode(out.stdout.strip(), validate=True)) == 32


def test_config_file_sets_settings_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('fsync = "always"\ncluster = "from-file"\nnode-name = "filed"\n')
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start("n", "--config", str(config), "--node-name", "flagged")
        client = node.client()
        assert node.name == "flagged"  # the flag wins over the file
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.info("gossip")["cluster"] == "from-file"
    finally:
        cluster.close()
    bad = tmp_path / "bad.toml"
    bad.write_text("no-such-setting = 1\n")
    out = subprocess.run(
        [sys.executable, "-m", "hearsay.cli", "serve", "--config", str(bad)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "unknown setting" in out.stderr


def test_http_health_status_and_metrics(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start("n")
        client = node.client()
        client.pfadd("k", "a")
        base = f"http://{node.http}"
        with urllib.request.urlopen(f"{base}/health", timeout=5) as reply:
            assert reply.read() == b"ok\n"
        with urllib.request.urlopen(f"{base}/status", timeout=5) as reply:
            status = json.loads(reply.read())
        assert status["node"] == node.name and status["keys"] == 1
        assert [m["name"] for m in status["members"]] == [node.name]

        def metric(name: str) -> float:
            return value(scrape(node), name)

        assert metric("hearsay_keys") == 1
        assert metric("hearsay_memory_used_bytes") > 0
        commands = metric("hearsay_commands_processed_total")
        client.ping()
        assert metric("hearsay_commands_processed_total") == commands + 1
        with urllib.request.urlopen(f"{base}/", timeout=5) as reply:
            assert b"<html" in reply.read()
    finally:
        cluster.close()


def test_a_vignette_script_stores_and_reads_vectors(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start("n")
        address = split_address(node.gossip)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            # The Clojure dialect ("full") and the Ruby one ("ttl") both store.
            sock.sendto(
                msgpack.packb({"key": "foo", "vector": {0: 5, 1: 10}, "full": True}), address
            )
            sock.sendto(msgpack.packb({"key": "foo", "vector": {1: 11, 5: 3}, "ttl": 50}), address)
            client = node.client()
            poll_until(lambda: client.execute_command("VGET", "foo") == [0, 5, 1, 11, 5, 3], 5)
            # An empty vector is a read: the reply holds the whole vector, nothing changes.
            sock.sendto(msgpack.packb({"key": "foo", "vector": {}, "full": False}), address)
            reply = msgpack.unpackb(sock.recvfrom(65536)[0], strict_map_key=False)
            assert reply["key"] == "foo" and reply["vector"] == {0: 5, 1: 11, 5: 3}
    finally:
        cluster.close()


def test_per_node_state_is_readable_from_any_node(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        first = cluster.start("a")
        second = cluster.start("b", "--join", first.gossip)
        a, b = first.client(), second.client()
        assert a.execute_command("HEARSAY.SETSTATE", "role", "primary") == b"OK"
        a.execute_command("HEARSAY.SETSTATE", "lease", "x", "PXAT", 1)  # already expired
        assert a.execute_command("HEARSAY.GETSTATE", "role") == b"primary"
        poll_until(
            lambda: b.execute_command("HEARSAY.PEERVALUE", first.name, "role") == b"primary",
            10,
            what="state gossiped",
        )
        assert b.execute_command("HEARSAY.PEERKEYS", first.name) == [b"role"]
        assert b.execute_command("HEARSAY.PEERVALUE", first.name, "lease") is None
        with pytest.raises(Exception, match="no such node"):
            b.execute_command("HEARSAY.PEERKEYS", "nobody")
    finally:
        cluster.close()


def test_ipv6_nodes_join_by_bracketed_address(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        first = cluster.start("a", "--host", "::1")
        assert first.gossip.startswith("[::1]:")
        second = cluster.start("b", "--host", "::1", "--join", first.gossip)
        first.client().pfadd("v6", "x")
        poll_until(lambda: second.client().pfcount("v6") == 1, 10, what="replicated over ::1")
    finally:
        cluster.close()
