"""Single commands of many clients that arrive together run as one run (``_Coalescer``).

Each client answers exactly as if the commands had run one after another in some order:
distinct INCR values, its own protocol's encoding, its own error, a reply before a half-close.
To make the commands arrive together, the node is stopped (SIGSTOP) while every client
sends, then continued: its first poll finds every socket readable. Real node, raw sockets.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import hiredis
import pytest

from tests.support.nodes import Cluster, NodeProcess, poll_until, start_node
from tests.support.raw_resp import command, read_raw
from tests.support.together import clients, coalesced, send_together, stop

CLIENTS = 40


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    process = start_node(tmp_path / "n0")
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.integration
def test_incrs_of_many_clients_run_as_one_run_and_each_gets_its_own_value(
    node: NodeProcess,
) -> None:
    before = coalesced(node)
    with clients(node, CLIENTS) as socks:
        send_together(node, socks, [command("INCR", "hits")] * CLIENTS)
        values = [read_raw(sock, 1)[0][0] for sock in socks]
    assert sorted(values) == list(range(1, CLIENTS + 1))  # as one after another
    assert coalesced(node) - before == CLIENTS
    with node.client() as client:
        assert client.get("hits") == str(CLIENTS).encode()


@pytest.mark.integration
def test_each_client_of_a_run_gets_its_reply_in_its_own_protocol(node: NodeProcess) -> None:
    with node.client() as client:
        client.execute_command("TOPK.RESERVE", "top", 50)
    before = coalesced(node)
    half = CLIENTS // 2
    with clients(node, CLIENTS, resp3=half) as socks:
        adds = [command("TOPK.ADD", "top", f"item-{i}") for i in range(CLIENTS)]
        send_together(node, socks, adds)
        raws = [read_raw(sock, 1)[1] for sock in socks]
    # Every item enters a top-50 list of 40 without expelling one: an array of one nil.
    assert raws[:half] == [b"*1\r\n_\r\n"] * half  # RESP3's null
    assert raws[half:] == [b"*1\r\n$-1\r\n"] * (CLIENTS - half)  # RESP2's
    assert coalesced(node) - before == CLIENTS
    with node.client() as client:
        listed = client.execute_command("TOPK.LIST", "top")
    assert sorted(listed) == sorted(f"item-{i}".encode() for i in range(CLIENTS))


@pytest.mark.integration
def test_a_bad_call_in_a_run_gets_its_own_error_and_the_others_their_replies(
    node: NodeProcess,
) -> None:
    requests = [command("INCRBY", "counter", "2") for _ in range(CLIENTS)]
    requests[7] = command("INCRBY", "counter", "two")
    with clients(node, CLIENTS) as socks:
        send_together(node, socks, requests)
        replies = [read_raw(sock, 1)[0][0] for sock in socks]
    bad = replies.pop(7)
    assert isinstance(bad, hiredis.ReplyError) and "not an integer" in str(bad)
    assert sorted(replies) == list(range(2, 2 * CLIENTS, 2))  # type: ignore[type-var]
    with node.client() as client:
        client.execute_command("CMS.INITBYDIM", "sketch", 100, 3)
    with clients(node, CLIENTS) as socks:
        send_together(node, socks, [command("PFADD", "sketch", f"m{i}") for i in range(CLIENTS)])
        errors = [read_raw(sock, 1)[0][0] for sock in socks]
    assert all(isinstance(e, hiredis.ReplyError) and "WRONGTYPE" in str(e) for e in errors)


@pytest.mark.integration
def test_clients_over_many_keys_run_as_one_batch_each_answered_as_alone(
    node: NodeProcess,
) -> None:
    """INCRs of many clients, each on its own key (one already counts, one holds an HLL;
    a few clients share a key), half of the clients on RESP3: the calls alone on their key
    run as one batch, the shared key as a run, and each client gets its own reply."""
    with node.client() as client:
        client.incrby("spread:5", 41)
        client.pfadd("spread:9", "a")
    keys = [f"spread:{i}" for i in range(CLIENTS)]
    keys[30:34] = ["spread:shared"] * 4
    before = coalesced(node)
    half = CLIENTS // 2
    with clients(node, CLIENTS, resp3=half) as socks:
        send_together(node, socks, [command("INCR", key) for key in keys])
        raws = [read_raw(sock, 1)[1] for sock in socks]
    expected = [b":1\r\n"] * CLIENTS
    expected[5] = b":42\r\n"
    expected[9] = b"-ERR value is not an integer or out of range\r\n"  # (an HLL: as Redis)
    assert raws[:30] + raws[34:] == expected[:30] + expected[34:]
    assert sorted(raws[30:34]) == [b":1\r\n", b":2\r\n", b":3\r\n", b":4\r\n"]
    assert coalesced(node) - before == CLIENTS
    with node.client() as client:
        assert client.get("spread:0") == b"1" and client.get("spread:shared") == b"4"


@pytest.mark.integration
def test_a_client_that_half_closed_gets_its_reply_from_a_run(node: NodeProcess) -> None:
    with clients(node, CLIENTS) as socks:
        stop(node)
        try:
            for sock in socks:
                sock.sendall(command("PFADD", "visitors", f"v{sock.fileno()}"))
            socks[0].shutdown(socket.SHUT_WR)
        finally:
            os.kill(node.process.pid, signal.SIGCONT)
        first, _ = read_raw(socks[0], 1)
        assert first == [1]
        assert socks[0].recv(1 << 10) == b""  # then closed
        assert [read_raw(sock, 1)[0][0] for sock in socks[1:]] == [1] * (CLIENTS - 1)
    with node.client() as client:
        assert client.pfcount("visitors") == CLIENTS


@pytest.mark.integration
def test_writes_that_must_be_durable_are_never_coalesced(tmp_path: Path) -> None:
    node = start_node(tmp_path / "n0", "--fsync", "always")
    try:
        with clients(node, CLIENTS) as socks:
            send_together(node, socks, [command("INCR", "hits")] * CLIENTS)
            values = [read_raw(sock, 1)[0][0] for sock in socks]
        assert sorted(values) == list(range(1, CLIENTS + 1))
        assert coalesced(node) == 0
    finally:
        node.stop()


@pytest.mark.integration
def test_wait_after_a_coalesced_write_waits_for_that_clients_write(tmp_path: Path) -> None:
    """Every client of a run that wrote has the run's write as its latest (WAIT waits for
    it), not only the client whose context ran the run."""
    cluster = Cluster(tmp_path)
    try:
        first = cluster.start("a")
        second = cluster.start("b", "--join", first.gossip)
        for node in (first, second):
            poll_until(
                lambda node=node: len(node.client().execute_command("HEARSAY.MEMBERS")) == 2,
                what="membership",
            )
        count = 10
        with clients(first, count) as socks:
            send_together(first, socks, [command("INCR", "hits")] * count)
            assert sorted(read_raw(sock, 1)[0][0] for sock in socks) == list(range(1, 11))
            for sock in socks:
                sock.sendall(command("WAIT", "1", "10000"))
            assert [read_raw(sock, 1)[0][0] for sock in socks] == [1] * count
        assert coalesced(first) == count
    finally:
        cluster.close()


@pytest.mark.integration
def test_while_a_client_monitors_every_command_runs_and_shows_on_its_own(
    node: NodeProcess,
) -> None:
    before = coalesced(node)
    with clients(node, CLIENTS + 1) as socks:
        monitor, writers = socks[0], socks[1:]
        monitor.sendall(command("MONITOR"))
        assert read_raw(monitor, 1)[0] == [b"OK"]
        send_together(node, writers, [command("INCR", "watched")] * CLIENTS)
        assert sorted(read_raw(sock, 1)[0][0] for sock in writers) == list(range(1, CLIENTS + 1))
        lines, _ = read_raw(monitor, CLIENTS)
    assert all(b'"INCR" "watched"' in line for line in lines)  # type: ignore[operator]
    assert coalesced(node) == before
