"""A private redis-server on loopback: the reference for differential tests and benchmarks.

Started on a free 127.0.0.1 port with persistence off, in a temporary directory, and stopped
by its PID. Used by tests (through the ``redis_server`` fixture in conftest) and by bench/.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

START_DEADLINE_S = 15.0
STOP_DEADLINE_S = 10.0
START_ATTEMPTS = 3


class RedisUnavailableError(RuntimeError):
    """redis-server is not installed, or did not start."""


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_S)


def _answers_ping(process: subprocess.Popen[bytes], port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    deadline = time.monotonic() + START_DEADLINE_S
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                time.sleep(0.02)
        return False
    finally:
        client.close()


@contextmanager
def reference_redis() -> Iterator[int]:
    """Yields the port of a fresh redis-server; raises RedisUnavailableError otherwise."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RedisUnavailableError("redis-server is not installed (Debian: redis-server)")
    with tempfile.TemporaryDirectory(prefix="hearsay-redis-") as workdir:
        for _ in range(START_ATTEMPTS):  # the port may be taken between probing and binding
            port = _free_loopback_port()
            process = subprocess.Popen(
                [executable, "--save", "", "--appendonly", "no", "--port", str(port),
                 "--bind", "127.0.0.1", "--dir", workdir],
                cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                if _answers_ping(process, port):
                    yield port
                    return
            finally:
                _stop(process)
    raise RedisUnavailableError("redis-server did not answer PING")
