"""``hearsay monitor`` against a real node: it streams MONITOR's lines (or JSON) and Ctrl-C
(SIGINT) ends it cleanly, status 0 and nothing on stderr."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.interrupt import with_default_sigint
from tests.support.nodes import NodeProcess, start_node

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0
LINES_MAX = 200


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = start_node(tmp_path_factory.mktemp("monitor-cli"))
    yield started
    started.stop(signal.SIGKILL)


def _monitor(node: NodeProcess, *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        with_default_sigint(
            [sys.executable, "-m", "hearsay.cli", "monitor", "-p", str(node.resp_port), *flags]
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _line_with(process: subprocess.Popen[bytes], needle: bytes, node: NodeProcess) -> bytes:
    """Write to the node (from a thread, every 20 ms, a bounded number of times: the monitor
    may not be subscribed yet) until the monitor prints a line naming ``needle``."""
    assert process.stdout is not None
    done = threading.Event()

    def write() -> None:
        client = node.client()
        for _ in range(LINES_MAX):
            if done.wait(0.02):
                break
            client.incrby(needle.decode(), 1)
        client.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    deadline = time.monotonic() + DEADLINE_S
    buffered = b""
    try:
        while time.monotonic() < deadline:  # bounded: every wait is at most the time left
            ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
            chunk = os.read(process.stdout.fileno(), 65536) if ready else b""
            assert chunk or not ready, "the monitor ended"
            buffered += chunk
            for line in buffered.split(b"\n"):
                if needle in line:
                    return line + b"\n"
        raise AssertionError(f"no line with {needle!r} in {DEADLINE_S} s: {buffered[-500:]!r}")
    finally:
        done.set()
        writer.join(DEADLINE_S)


def _interrupt(process: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=DEADLINE_S)
    finally:
        if process.poll() is None:  # it ignored Ctrl-C: stop it, by its PID, and fail
            process.kill()
            process.wait(DEADLINE_S)
    return process.returncode, stderr


def test_monitor_streams_redis_lines_and_ctrl_c_ends_cleanly(node: NodeProcess) -> None:
    process = _monitor(node)
    try:
        line = _line_with(process, b"mon:cli", node)
        assert b" [0 127.0.0.1:" in line
        assert line.rstrip().endswith(b'"INCRBY" "mon:cli" "1"')
    finally:
        status, stderr = _interrupt(process)
    assert (status, stderr) == (0, b"")


def test_monitor_json_lines(node: NodeProcess) -> None:
    process = _monitor(node, "--json")
    try:
        event = json.loads(_line_with(process, b"mon:json", node))
        assert event["command"] == "INCRBY mon:json 1"
        assert event["db"] == 0 and event["client_address"] == "127.0.0.1"
    finally:
        status, stderr = _interrupt(process)
    assert (status, stderr) == (0, b"")


def test_monitor_of_an_absent_node_is_one_line_and_status_3() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hearsay.cli", "monitor", "-p", "1"],
        capture_output=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr.count(b"\n") == 1 and result.stderr.startswith(b"hearsay: cannot reach")
