"""Regression tests for issue 11's gossip findings against real ``hearsay serve`` processes.

- 5: ``--requirepass`` was bypassed through the gossip port (no keyring: an EXCHANGE read any
  key); such a node, or one gossiping beyond loopback without a keyring, now refuses to start
  unless ``--insecure-gossip`` says the operator chose it.
- 8: rmbd ``PEER`` made the node gossip to any address; now only with ``--rmbd-peer``.
- 14: a host name as a peer address (``--join localhost:PORT``, ``HEARSAY.JOIN``) raised in
  ``sendto`` and killed the gossip timer; names now resolve at the edge, and a failing send
  is counted, never fatal.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from hearsay.protocol import messages as msg
from hearsay.protocol.envelope import EnvelopeCodec, MessageType
from hearsay.protocol.membership import MessageKind
from tests.support.nodes import Cluster, NodeProcess, poll_until, split_address

pytestmark = pytest.mark.integration

PEER = struct.Struct("!B140pH")
RUN_TIMEOUT_S = 30.0


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    nodes = Cluster(tmp_path)
    yield nodes  # type: ignore[misc]
    nodes.close()


def _serve_refused(tmp_path: Path, *extra: str) -> str:
    """Run ``hearsay serve`` expecting it to refuse to start; returns what it printed."""
    args = [
        sys.executable, "-m", "hearsay.cli", "serve", "--port", "0", "--gossip-port", "0",
        "--http-port", "0", "--data-dir", str(tmp_path / "refused"), *extra,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    assert done.returncode == 2, done
    assert b"hearsay ready" not in done.stdout
    return done.stderr.decode()


def _keyring(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return path


def members(node: NodeProcess) -> set[str]:
    reply = node.client().execute_command("HEARSAY.MEMBERS")
    return {row[0].decode() for row in reply}


def test_requirepass_without_a_keyring_is_refused(tmp_path: Path) -> None:
    said = _serve_refused(tmp_path, "--host", "127.0.0.1", "--requirepass", "s3cret")
    assert "--keyring" in said and "--insecure-gossip" in said


def test_gossip_beyond_loopback_without_a_keyring_is_refused(tmp_path: Path) -> None:
    # A documentation address (RFC 5737): refused before anything binds (the code before the
    # fix failed later, at bind, with exit code 1).
    said = _serve_refused(tmp_path, "--host", "192.0.2.1")
    assert "192.0.2.1" in said and "--keyring" in said


def test_the_gossip_port_of_a_password_node_serves_strangers_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = cluster.start("a", "--requirepass", "s3cret", "--keyring", str(_keyring(tmp_path)))
    node.client(password="s3cret").pfadd("secret", "alice")
    forged = EnvelopeCodec("hearsay").seal(
        MessageType.EXCHANGE, msg.join_items(b"", [msg.exchange_item(b"secret", None)])
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.sendto(forged, split_address(node.gossip))
        poll_until(
            lambda: node.client(password="s3cret").info("gossip").get("dropped", 0) >= 1,
            10,
            what="the forged EXCHANGE counted as dropped",
        )
        stranger.setblocking(False)
        with pytest.raises(BlockingIOError):
            stranger.recv(65536)  # nothing was answered (the drop is counted after any reply)


def test_insecure_gossip_is_an_explicit_choice(cluster: Cluster) -> None:
    node = cluster.start("a", "--requirepass", "s3cret", "--insecure-gossip")
    assert node.client(password="s3cret").ping() is True


def test_rmbd_peer_is_off_unless_enabled(cluster: Cluster) -> None:
    node = cluster.start("a", "--rmbd-port", "0")
    other = cluster.start("b")
    address = split_address(node.client().info("server")["rmbd_address"])
    host, port = split_address(other.gossip)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(PEER.pack(3, host.encode(), port), address)
    poll_until(
        lambda: node.client().info("server").get("rmbd_peers_refused") == 1,
        10,
        what="the PEER datagram refused",
    )
    assert other.name not in members(node)
    enabled = cluster.start("c", "--rmbd-port", "0", "--rmbd-peer")
    address = split_address(enabled.client().info("server")["rmbd_address"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(PEER.pack(3, host.encode(), port), address)
    poll_until(lambda: other.name in members(enabled), 15, what="--rmbd-peer joins")


def test_join_by_host_name(cluster: Cluster) -> None:
    first = cluster.start("a")
    port = split_address(first.gossip)[1]
    second = cluster.start("b", "--join", f"localhost:{port}")
    poll_until(lambda: second.name in members(first), 15, what="joined via localhost")
    second.client().pfadd("by-name", "x")
    poll_until(lambda: first.client().pfcount("by-name") == 1, 10, what="replicated")


def test_unresolvable_and_unsendable_peers_never_stop_gossip(cluster: Cluster) -> None:
    lone = cluster.start("a")
    other = cluster.start("b")
    client = lone.client()
    assert client.execute_command("HEARSAY.JOIN", "nosuchhost.invalid:1") == b"OK"
    # An IPv6 address on an IPv4 socket: every send to it fails (uvloop raises ValueError).
    assert client.execute_command("HEARSAY.JOIN", "[::1]:9") == b"OK"
    poll_until(lambda: client.info("gossip")["send_errors"] >= 3, 15, what="failed sends")
    poll_until(lambda: client.info("gossip")["resolve_failures"] >= 1, 15, what="no resolve")
    # The timer still runs: the lone node itself contacts a new seed and is heard.
    assert client.execute_command("HEARSAY.JOIN", other.gossip) == b"OK"
    poll_until(lambda: lone.name in members(other), 15, what="the lone node gossips")
    lone.stop(signal.SIGTERM)
    assert lone.process.stdout is not None
    output = lone.process.stdout.read().decode(errors="replace")
    assert "Traceback" not in output
    assert output.count("does not resolve") == 1  # warned once, not every tick
    assert output.count("gossip send failed") <= 2  # rate-limited (one per 10 s)


def test_vignette_still_reaches_a_loopback_node(cluster: Cluster) -> None:
    node = cluster.start("a")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(
            msgpack.packb({"key": "vig", "vector": {0: 5}, "full": True}),
            split_address(node.gossip),
        )
    poll_until(lambda: node.client().exists("vig") == 1, 10, what="vignette write")


def _member_row(node: NodeProcess, name: str) -> tuple[str, int] | None:
    """(state, generation) of ``name`` in ``node``'s HEARSAY.MEMBERS, or None."""
    for row in node.client().execute_command("HEARSAY.MEMBERS"):
        if row[0].decode() == name:
            return row[2].decode(), int(row[4])
    return None


def _forge_left(victim: NodeProcess, receiver: NodeProcess, generation: int) -> None:
    """One plaintext ACK2 telling ``receiver`` that ``victim`` left, in ``generation``."""
    host, port = split_address(victim.gossip)
    entries = [
        ["\x00addr", [host, port], 1, None],
        ["\x00status", "left", 2, None],
        ["\x00hb", 1, 3, None],
    ]
    forged = EnvelopeCodec("hearsay").seal(
        MessageType.MEMBERSHIP,
        msg.packb([MessageKind.ACK2, "forger", [[victim.name, generation, 0, 3, entries]]]),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
        forger.sendto(forged, split_address(receiver.gossip))


def test_a_forged_membership_claim_cannot_mark_a_live_node_left(cluster: Cluster) -> None:
    """Finding 6 against real nodes: generation 2**63-1 and status left, one datagram."""
    first = cluster.start("a")
    second = cluster.start("b", "--join", first.gossip)
    poll_until(lambda: _member_row(second, first.name) is not None, 15, what="joined")
    _forge_left(first, second, 2**63 - 1)
    poll_until(
        lambda: second.client().info("gossip").get("refused_generations", 0) >= 1,
        10,
        what="the forged generation refused",
    )
    row = _member_row(second, first.name)
    assert row is not None and row[0] == "alive" and row[1] < 2**63 - 1


def _vector(node: NodeProcess, key: str) -> list[int]:
    return [int(x) for x in node.client().execute_command("VGET", key)]


def test_streams_carry_big_messages_between_keyring_nodes(cluster: Cluster, tmp_path: Path) -> None:
    """The stream framing (hello first) works end to end: two lone nodes write one big
    vector each; after the join, anti-entropy exchanges the whole entries over TCP."""
    keyring = str(_keyring(tmp_path))
    first = cluster.start("a", "--keyring", keyring)
    second = cluster.start("b", "--keyring", keyring)
    for node, offset in ((first, 0), (second, 1)):
        pairs = [str(x) for i in range(3000) for x in (2 * i + offset, i + 1)]
        node.client().execute_command("VMAX", "big", *pairs)
    assert second.client().execute_command("HEARSAY.JOIN", first.gossip) == b"OK"
    poll_until(
        lambda: (
            len(_vector(first, "big")) == 12_000 and _vector(first, "big") == _vector(second, "big")
        ),
        30,
        what="the big vectors merged",
    )
    streams = sum(node.client().info("gossip")["streams_in"] for node in (first, second))
    assert streams >= 1


def _stream_refused(node: NodeProcess, payload: bytes) -> bytes:
    """Send ``payload`` on a new gossip TCP connection; returns what came back before EOF."""
    with socket.create_connection(split_address(node.gossip), timeout=10) as conn:
        conn.sendall(payload)
        return conn.recv(1024)  # b"" once the node closed it (a 10 s socket timeout bounds it)


def test_a_stream_is_authenticated_before_its_body_is_read(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = cluster.start("a", "--keyring", str(_keyring(tmp_path)))
    # A stranger (no key) announces 60 MB and sends a plaintext hello: closed unread.
    hello = EnvelopeCodec("hearsay").seal(MessageType.STREAM_HELLO, msg.packb([7946, 60 << 20]))
    header = struct.pack("!HIH", 7946, 60 << 20, len(hello))
    assert _stream_refused(node, header + hello) == b""
    # An over-long hello is refused before it is read.
    assert _stream_refused(node, struct.pack("!HIH", 7946, 100, 60_000)) == b""
    gossip = node.client().info("gossip")
    assert gossip["streams_refused"] == 2
    assert gossip["dropped_unauthenticated"] == 1


def test_concurrent_gossip_streams_are_capped(cluster: Cluster) -> None:
    node = cluster.start("a")
    idle = []
    try:
        for _ in range(16):  # STREAM_CONNECTIONS_MAX connections that send nothing yet
            conn = socket.create_connection(split_address(node.gossip), timeout=10)
            idle.append(conn)
        with socket.create_connection(split_address(node.gossip), timeout=10) as extra:
            poll_until(
                lambda: node.client().info("gossip")["streams_refused"] == 1,
                10,
                what="the 17th connection refused",
            )
            assert extra.recv(1024) == b""  # closed unread
    finally:
        for conn in idle:
            conn.close()


def test_an_advertised_host_name_is_resolved_before_peers_hear_it(cluster: Cluster) -> None:
    node = cluster.start("a", "--advertise", "localhost:7999")
    rows = node.client().execute_command("HEARSAY.MEMBERS")
    assert [row[1].decode() for row in rows if row[0].decode() == node.name] == ["127.0.0.1:7999"]


def test_a_recorded_authenticated_datagram_is_not_accepted_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Finding 7 against real nodes: record what a keyring node sends, replay it twice."""
    keyring = str(_keyring(tmp_path))
    target = cluster.start("a", "--keyring", keyring)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as recorder:
        recorder.bind(("127.0.0.1", 0))
        recorder.settimeout(10)
        seed = f"127.0.0.1:{recorder.getsockname()[1]}"
        cluster.start("b", "--keyring", keyring, "--join", seed)
        recorded, _ = recorder.recvfrom(65536)  # b's first membership sync, sealed
        for _ in range(2):
            recorder.sendto(recorded, split_address(target.gossip))
        poll_until(
            lambda: target.client().info("gossip").get("dropped_replayed", 0) == 1,
            10,
            what="the second copy dropped as replayed",
        )


def test_a_forged_plausible_claim_is_refuted_by_the_live_node(cluster: Cluster) -> None:
    """A claim within the plausible window is taken in, then refuted by the node it names."""
    first = cluster.start("a")
    second = cluster.start("b", "--join", first.gossip)
    poll_until(lambda: _member_row(second, first.name) is not None, 15, what="joined")
    forged_generation = int(time.time() * 1000) + 60_000
    _forge_left(first, second, forged_generation)
    poll_until(
        lambda: _member_row(second, first.name) == ("alive", forged_generation + 1),
        15,
        what="the victim refutes the claim with a higher generation",
    )
    assert first.client().info("gossip")["refutations"] >= 1
    # SWIM's counters are in INFO too: both nodes probe each other.
    poll_until(
        lambda: all(n.client().info("gossip")["probes_sent"] >= 1 for n in (first, second)),
        15,
        what="each node probed the other",
    )
    assert second.client().info("gossip")["local_health"] >= 0


def test_a_rumour_larger_than_the_pacing_burst_leaves_and_the_node_goes_idle(
    cluster: Cluster,
) -> None:
    """Finding 11 against real nodes: 150,000 pairs are ~700 datagrams per peer, two peers
    make more than the burst of 1,000 tokens; before, such a rumour waited (and was
    re-encoded every round) for ever."""
    first = cluster.start("a")
    others = [cluster.start(name, "--join", first.gossip) for name in ("b", "c")]
    names = {node.name for node in (first, *others)}
    poll_until(lambda: set(members(first)) == names, 15, what="three members")
    pairs = [str(x) for i in range(150_000) for x in (i * 5, i + 1)]
    client = first.client(socket_timeout=60)
    client.execute_command("VMAX", "wide2", *pairs)
    poll_until(lambda: client.info("gossip")["rumours_waiting"] == 0, 60, what="the rumour sent")
    for node in others:
        poll_until(
            lambda node=node: len(_vector(node, "wide2")) == 300_000,
            60,
            what="the wide vector everywhere",
        )
