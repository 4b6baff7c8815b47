"""Joining as operators do, with real nodes: host names, the peer snapshot that lets a
restarted node find its cluster without ``--join``, an unresolvable name that keeps the node
and its log quiet, a keyring mismatch logged once and counted, and HEARSAY.FORCELEAVE."""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.nodes import Cluster, NodeProcess, poll_until, split_address

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, preset="local")
    try:
        yield nodes
    finally:
        nodes.close()


def members(node: NodeProcess) -> dict[str, tuple[str, int]]:
    """name -> (state, generation) as HEARSAY.MEMBERS reports them."""
    rows = node.client().execute_command("HEARSAY.MEMBERS")
    return {row[0].decode(): (row[2].decode(), int(row[4])) for row in rows}


def gossip_info(node: NodeProcess) -> dict[str, object]:
    info: dict[str, object] = node.client().info("gossip")
    return info


def read_output(node: NodeProcess) -> str:
    """What the node printed since its ready line, as far as it is in the pipe now (read
    without waiting: the node keeps running)."""
    stdout = node.process.stdout
    assert stdout is not None
    chunks: list[bytes] = []
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while selector.select(timeout=0):
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def joined(a: NodeProcess, b: NodeProcess, generation_above: int = -1) -> bool:
    """Each sees the other alive (``b`` with a generation above ``generation_above``)."""
    seen_b = members(a).get(b.name)
    seen_a = members(b).get(a.name)
    return (
        seen_b is not None
        and seen_b[0] == "alive"
        and seen_b[1] > generation_above
        and seen_a is not None
        and seen_a[0] == "alive"
    )


def remembered(node: NodeProcess) -> bool:
    return int(str(gossip_info(node)["peer_snapshot_peers"])) >= 1


def test_a_host_name_joins_and_a_restart_rejoins_without_join(cluster: Cluster) -> None:
    """``--join localhost:PORT`` joins; the peer is remembered in the data directory, so the
    node restarted without ``--join`` after SIGTERM, and again after SIGKILL, finds it."""
    first = cluster.start("a")
    port = split_address(first.gossip)[1]
    second = cluster.start("b", "--join", f"localhost:{port}")
    poll_until(lambda: joined(first, second), DEADLINE_S, what="joined by host name")
    poll_until(lambda: remembered(second), DEADLINE_S, what="the peer snapshot")
    snapshot = json.loads((second.data_dir / "peers.json").read_text())
    assert snapshot == {"peers": [first.gossip], "left": False}
    for how in (signal.SIGTERM, signal.SIGKILL):
        generation = members(first)[second.name][1]
        assert second.stop(how) == (0 if how == signal.SIGTERM else -signal.SIGKILL)
        second = cluster.start("b")  # no --join
        poll_until(
            lambda: joined(first, second, generation),  # noqa: B023 (polled here, at once)
            DEADLINE_S,
            what=f"rejoined after {how.name} without --join",
        )
        assert "rejoining through 1 remembered peers" in b"\n".join(second.output).decode()


def test_a_node_that_left_does_not_rejoin_and_no_rejoin_is_obeyed(cluster: Cluster) -> None:
    """HEARSAY.LEAVE is an operator's decision: the snapshot says so, and the next start does
    not contact the remembered peers; ``--no-rejoin`` skips them whatever the snapshot."""
    first = cluster.start("a")
    second = cluster.start("b", "--join", first.gossip)
    poll_until(lambda: joined(first, second), DEADLINE_S, what="joined")
    poll_until(lambda: remembered(second), DEADLINE_S, what="the peer snapshot")
    assert second.stop(signal.SIGKILL) == -signal.SIGKILL
    quiet = cluster.start("b", "--no-rejoin")
    assert gossip_info(quiet)["join_attempts"] == 0
    assert "rejoining" not in b"\n".join(quiet.output).decode()
    assert quiet.client().execute_command("HEARSAY.LEAVE") == b"OK"
    path = quiet.data_dir / "peers.json"
    poll_until(lambda: json.loads(path.read_text())["left"], DEADLINE_S, what="left is saved")
    assert quiet.stop(signal.SIGTERM) == 0
    again = cluster.start("b")
    assert gossip_info(again)["join_attempts"] == 0
    assert "not rejoining the 1 remembered peers" in b"\n".join(again.output).decode()
    assert list(members(again)) == [again.name]


def test_an_unresolvable_name_answers_at_once_and_keeps_the_log_quiet(
    cluster: Cluster,
) -> None:
    node = cluster.start("a")
    client = node.client()
    for malformed in ("no-port", "[::1:5", "bad host:1", "::1:7946", "host:0", "[127.0.0.1]:1"):
        with pytest.raises(redis.ResponseError):
            client.execute_command("HEARSAY.JOIN", malformed)
    assert client.execute_command("HEARSAY.JOIN", "nosuchhost.invalid:1") == b"OK"
    poll_until(  # (an attempt is counted when it starts, its failure once the resolver said)
        lambda: int(str(gossip_info(node)["resolve_failures"])) >= 3,
        DEADLINE_S,
        what="three failed attempts",
    )
    info = gossip_info(node)
    assert int(str(info["join_attempts"])) >= 3
    assert int(str(info["join_failures"])) >= 3
    assert info["joins_in_progress"] == 1
    assert client.ping()
    output = read_output(node)
    assert "Traceback" not in output
    # One line for the first failure; the same reason again is not repeated (for a minute).
    assert output.count("join nosuchhost.invalid:1 failed: does not resolve") == 1, output
    assert output.count("\n") <= 2, output


def test_a_keyring_mismatch_is_logged_once_and_counted(cluster: Cluster, tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for path in (ours, theirs):
        path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    first = cluster.start("a", "--keyring", str(ours))
    stranger = cluster.start("x", "--keyring", str(theirs), "--join", first.gossip)
    poll_until(
        lambda: int(str(gossip_info(first)["keyring_mismatches"])) >= 5,
        DEADLINE_S,
        what="mismatches counted",
    )
    output = read_output(first)
    assert output.count("keyring mismatch") == 1, output
    assert f"keyring mismatch with peer {stranger.gossip}: no key of our keyring" in output
    assert stranger.name not in members(first)


def test_force_leave_marks_a_failed_member_left_everywhere(cluster: Cluster) -> None:
    first = cluster.start("a")
    nodes = [first, *(cluster.start(name, "--join", first.gossip) for name in ("b", "c"))]
    names = {node.name for node in nodes}
    for node in nodes:
        poll_until(lambda node=node: set(members(node)) == names, DEADLINE_S, what="membership")
    victim = nodes[2]
    client = first.client()
    with pytest.raises(redis.ResponseError, match="no such node"):
        client.execute_command("HEARSAY.FORCELEAVE", "nobody")
    with pytest.raises(redis.ResponseError, match="only a failed member"):
        client.execute_command("HEARSAY.FORCELEAVE", nodes[1].name)
    with pytest.raises(redis.ResponseError, match=r"use HEARSAY\.LEAVE"):
        client.execute_command("HEARSAY.FORCELEAVE", first.name)
    victim.kill()
    poll_until(lambda: members(first)[victim.name][0] == "failed", DEADLINE_S, what="seen failed")
    port = str(first.resp_port)
    done = subprocess.run(
        [sys.executable, "-m", "hearsay.cli", "force-leave", "-p", port, victim.name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr
    for node in nodes[:2]:
        poll_until(
            lambda node=node: members(node)[victim.name][0] == "left",
            DEADLINE_S,
            what="left on every node",
        )
    assert client.execute_command("HEARSAY.FORCELEAVE", victim.name) == b"OK"  # again: no-op
