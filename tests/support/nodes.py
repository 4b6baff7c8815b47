"""Real ``hearsay serve`` processes for integration tests: start, read the ready line, stop.

Every node listens on 127.0.0.1 with ports picked by the kernel (port 0) and reports them in
its ``hearsay ready`` line. Every process started here is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import redis

READY = re.compile(
    rb"^hearsay ready resp=(?P<resp>\S+) gossip=(?P<gossip>\S+) http=(?P<http>\S+) "
    rb"node=(?P<node>\S+)$"
)
START_TIMEOUT_S = 20.0
STOP_DUMP_WAIT_S = 5.0
"""How long an aborted node may take to write its threads' tracebacks before it is killed."""
STOP_DUMP_BYTES_MAX = 20_000
T = TypeVar("T")


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class NodeProcess:
    """One running node and what its ready line said."""

    data_dir: Path
    args: list[str]
    process: subprocess.Popen[bytes]
    resp: str = ""
    gossip: str = ""
    http: str = ""
    name: str = ""
    output: list[bytes] = field(default_factory=list)

    @property
    def resp_port(self) -> int:
        return split_address(self.resp)[1]

    def client(self, **kwargs: object) -> redis.Redis:
        """A redis-py client of this node; keyword arguments (``socket_timeout`` included,
        10 s unless given) go to ``redis.Redis``."""
        host, port = split_address(self.resp)
        options: dict[str, object] = {"socket_timeout": 10, **kwargs}
        return redis.Redis(host=host, port=port, **options)  # type: ignore[arg-type]

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        """Send ``sig`` to the node's PID and wait for it; returns the exit code.

        A node that has not exited by then is aborted (SIGABRT: nodes run with ``-X
        faulthandler``, which writes every thread's traceback to its output), then killed;
        what it wrote since its ready line goes to this process's stderr (pytest shows it with
        the failure), and stays readable as ``output``: a hang at stop says where it hung."""
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGABRT)
            try:
                self.process.wait(timeout=STOP_DUMP_WAIT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
            code = self.process.wait(timeout=timeout_s)
            if self.process.stdout is not None:
                self.output.extend(self.process.stdout.read().split(b"\n"))
            tail = b"\n".join(self.output)[-STOP_DUMP_BYTES_MAX:].decode(errors="replace")
            sys.stderr.write(
                f"node {self.process.pid} did not stop within {timeout_s} s of signal {sig}; "
                f"its output since the ready line ({sum(map(len, self.output))} bytes), "
                f"last {STOP_DUMP_BYTES_MAX} bytes:\n{tail}\n"
            )
            return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


_WITH_OPEN_FILES_MAX = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


def start_node(
    data_dir: Path,
    *extra: str,
    preset: str = "local",
    env: dict[str, str] | None = None,
    open_files_max: int | None = None,
) -> NodeProcess:
    """Start ``hearsay serve`` on gossip preset ``preset`` and wait (bounded) for its ready
    line (``local`` is the quick one; ``lan`` is what a node runs by default).

    ``env`` replaces the child's environment; ``open_files_max`` sets its RLIMIT_NOFILE (soft
    and hard) before it starts, through a small Python that then execs the node (same PID)."""
    args = [
        sys.executable, "-X", "faulthandler", "-m", "hearsay.cli", "serve",
        "--host", "127.0.0.1", "--port", "0", "--gossip-port", "0", "--http-port", "0",
        "--data-dir", str(data_dir), "--preset", preset, *extra,
    ]  # fmt: skip
    if open_files_max is not None:
        args = [sys.executable, "-c", _WITH_OPEN_FILES_MAX, str(open_files_max), *args]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    node = NodeProcess(data_dir, args, process)
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT_S
    buffered = b""
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                node.output.append(line)
                match = READY.match(line.strip())
                if match:
                    node.resp = match["resp"].decode()
                    node.gossip = match["gossip"].decode()
                    node.http = match["http"].decode()
                    node.name = match["node"].decode()
                    return node
    finally:
        selector.close()
    node.stop(signal.SIGKILL)
    output = b"\n".join(node.output) + buffered
    raise AssertionError(f"node did not print its ready line: {output.decode(errors='replace')}")


def poll_until(
    check: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.02, what: str = ""
) -> T:
    """Call ``check`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check}")
        time.sleep(interval_s)
        last = check()
    return last


class Cluster:
    """Several nodes; stops all of them (by PID) when closed."""

    def __init__(self, root: Path, preset: str = "local") -> None:
        self.root = root
        self.preset = preset
        self.nodes: list[NodeProcess] = []

    def start(self, name: str, *extra: str) -> NodeProcess:
        node = start_node(self.root / name, *extra, preset=self.preset)
        self.nodes.append(node)
        return node

    def start_joined(self, *names: str) -> list[NodeProcess]:
        """The first name started alone, each other one joining it."""
        first = self.start(names[0])
        return [first, *(self.start(name, "--join", first.gossip) for name in names[1:])]

    def __iter__(self) -> Iterator[NodeProcess]:
        return iter(self.nodes)

    def close(self) -> None:
        for node in self.nodes:
            node.stop(signal.SIGKILL)
