"""The admin CLI (``hearsay members | info | join | leave | keys``) against real nodes.

Every command runs as its own process (``python -m hearsay.cli ...``), as an operator would
run it, against ``hearsay serve`` processes on loopback; the expected values come from the
node itself through redis-py (HEARSAY.MEMBERS, INFO) or from what the test wrote.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.admin_run import hearsay, ok
from tests.support.nodes import Cluster, NodeProcess, poll_until

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-admin"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path_factory.mktemp("admin"))
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture(scope="module")
def node(cluster: Cluster) -> NodeProcess:
    return cluster.start("a", "--node-name", "alpha")


@pytest.fixture(scope="module")
def locked(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> NodeProcess:
    """A node that wants a password (and so a keyring)."""
    keyring = tmp_path_factory.mktemp("keys") / "keyring"
    keyring.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return cluster.start("locked", "--requirepass", PASSWORD, "--keyring", str(keyring))


def port(node: NodeProcess) -> str:
    return str(node.resp_port)


def test_members_prints_a_labelled_table(node: NodeProcess) -> None:
    lines = ok("members", "-h", "127.0.0.1", "-p", port(node)).splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "STATE", "PHI", "GENERATION"]
    assert lines[1].split() == ["alpha", node.gossip, "alive", "0.000", "1"]
    assert len(lines) == 2
    # Columns line up: every row starts its ADDRESS where the header does.
    assert lines[1].index(node.gossip) == lines[0].index("ADDRESS")


def test_members_json_labels_every_field_of_the_reply(node: NodeProcess) -> None:
    records = json.loads(ok("members", "--json", "-p", port(node)))
    rows = node.client().execute_command("HEARSAY.MEMBERS")
    assert records == [
        {
            "name": row[0].decode(),
            "address": row[1].decode(),
            "state": row[2].decode(),
            "phi": float(row[3]),
            "generation": int(row[4]),
        }
        for row in rows
    ]
    assert records[0]["name"] == "alpha" and records[0]["state"] == "alive"


def test_info_section_as_json_and_as_a_table(node: NodeProcess) -> None:
    sections = json.loads(ok("info", "server", "--json", "-p", port(node)))
    assert list(sections) == ["server"]
    server = sections["server"]
    assert server["tcp_port"] == node.resp_port
    assert server["process_id"] == node.process.pid
    assert server["node_name"] == "alpha"
    assert server["redis_mode"] == "standalone"
    table = ok("info", "gossip", "-p", port(node)).splitlines()
    assert table[0] == "# gossip"
    assert table[1].split() == ["FIELD", "VALUE"]
    assert ["address", node.gossip] in [line.split() for line in table]


def test_info_without_a_section_has_every_section(node: NodeProcess) -> None:
    sections = json.loads(ok("info", "--json", "-p", port(node)))
    assert {"server", "clients", "stats", "persistence", "gossip"} <= set(sections)
    assert sections["gossip"]["members"] == 1


def test_info_of_an_unknown_section_is_an_error(node: NodeProcess) -> None:
    done = hearsay("info", "nosuch", "-p", port(node))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"hearsay: {node.resp} has no INFO section 'nosuch'\n"


def test_keys_lists_every_key_with_its_type_by_scan(node: NodeProcess) -> None:
    client = node.client()
    pipe = client.pipeline(transaction=False)
    names = [f"page:{i:05}" for i in range(2500)]  # more than one SCAN batch (1000)
    for name in names:
        pipe.pfadd(name, "visitor")
    pipe.execute()
    client.execute_command("BF.ADD", "seen", "url-1")
    client.incr("requests")
    records = json.loads(ok("keys", "page:*", "--json", "-p", port(node)))
    assert sorted(r["key"] for r in records) == names
    assert {r["type"] for r in records} == {"string"}
    table = ok("keys", "-p", port(node)).splitlines()
    assert table[0].split() == ["TYPE", "KEY"]
    rows = {tuple(line.split()) for line in table[1:]}
    assert ("MBbloom--", "seen") in rows and ("string", "requests") in rows
    assert len(table) - 1 == client.dbsize()
    assert json.loads(ok("keys", "nothing-matches-*", "--json", "-p", port(node))) == []


def test_join_then_leave(cluster: Cluster) -> None:
    """Two nodes of their own (the shared one must stay alone for the other tests)."""
    seed = cluster.start("b", "--node-name", "beta")
    other = cluster.start("c", "--node-name", "gamma")
    assert ok("join", seed.gossip, "-p", port(other)) == "OK\n"

    def state_of_gamma() -> str | None:
        records = json.loads(ok("members", "--json", "-p", port(seed)))
        return next((r["state"] for r in records if r["name"] == "gamma"), None)

    poll_until(lambda: state_of_gamma() == "alive", timeout_s=20, what="gamma joining")
    assert json.loads(ok("leave", "--json", "-p", port(other))) == {"ok": True, "reply": "OK"}
    poll_until(lambda: state_of_gamma() == "left", timeout_s=20, what="gamma leaving")


def test_connection_flags_come_from_the_environment(node: NodeProcess) -> None:
    env = {"HEARSAY_HOST": "127.0.0.1", "HEARSAY_PORT": port(node)}
    assert json.loads(ok("members", "--json", env=env))[0]["name"] == "alpha"
    # A flag wins over the environment.
    env_elsewhere = {"HEARSAY_PORT": str(_closed_port())}
    assert json.loads(ok("members", "--json", "-p", port(node), env=env_elsewhere))


def test_a_password_from_the_flag_or_the_environment(locked: NodeProcess) -> None:
    for env in ({"HEARSAY_PASSWORD": PASSWORD}, {"REDISCLI_AUTH": PASSWORD}):
        assert json.loads(ok("members", "--json", "-p", port(locked), env=env))
    assert json.loads(ok("members", "--json", "-p", port(locked), "-a", PASSWORD))
    # -a wins over a wrong password in the environment.
    wrong = {"HEARSAY_PASSWORD": "wrong"}
    assert json.loads(ok("members", "--json", "-p", port(locked), "-a", PASSWORD, env=wrong))


def test_no_password_or_a_wrong_one_is_one_line_and_status_4(locked: NodeProcess) -> None:
    done = hearsay("members", "-p", port(locked))
    assert done.returncode == 4
    assert done.stderr == (
        f"hearsay: {locked.resp} needs a password: give -a/--password, HEARSAY_PASSWORD or "
        "REDISCLI_AUTH\n"
    )
    done = hearsay("members", "-p", port(locked), env={"HEARSAY_PASSWORD": "wrong"})
    assert done.returncode == 4
    assert done.stderr.startswith(f"hearsay: {locked.resp} refused the password")
    assert done.stderr.count("\n") == 1 and PASSWORD not in done.stderr
    assert done.stdout == ""


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed, by this test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free: int = sock.getsockname()[1]
    return free


def test_connection_refused_is_one_line_and_status_3() -> None:
    free = _closed_port()
    done = hearsay("members", "-p", str(free))
    assert done.returncode == 3
    assert done.stderr.startswith(f"hearsay: cannot reach 127.0.0.1:{free}: ")
    assert "Connection refused" in done.stderr and done.stderr.count("\n") == 1


def test_a_dropped_connection_is_reported_after_one_attempt() -> None:
    """No silent retries (redis-py's default makes four attempts over ~5 s): a node that
    hangs up is reported at once, and an import's pipeline is never sent twice."""
    accepted = 0
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.05)
        free = str(listener.getsockname()[1])
        with subprocess.Popen(
            [sys.executable, "-m", "hearsay.cli", "members", "-p", free],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            deadline = time.monotonic() + 30
            while child.poll() is None and time.monotonic() < deadline:
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                accepted += 1
                connection.close()  # hang up before any reply
            child.wait(timeout=5)
            stderr = child.stderr.read() if child.stderr else ""
    assert child.returncode == 3, stderr
    assert accepted == 1
    assert (
        stderr.startswith(f"hearsay: cannot reach 127.0.0.1:{free}: ") and stderr.count("\n") == 1
    )


@pytest.mark.redis
def test_an_unknown_command_is_one_line_and_status_1(redis_server: int) -> None:
    """A redis-server is not a hearsay node: it does not know HEARSAY.MEMBERS."""
    done = hearsay("members", "-p", str(redis_server))
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"hearsay: 127.0.0.1:{redis_server} answered: unknown command 'HEARSAY.MEMBERS'"
    )
    assert done.stderr.count("\n") == 1


def test_usage_errors_are_status_2(tmp_path: Path) -> None:
    assert hearsay("members", "-p", "not-a-port").returncode == 2
    done = hearsay("members", env={"HEARSAY_PORT": "seventy"})
    assert done.returncode == 2
    assert done.stderr == "hearsay: HEARSAY_PORT is not a port number: 'seventy'\n"
    assert hearsay("join").returncode == 2  # HOST:PORT missing
