"""``serve --log-format text|json`` and ``--log-level``: one line a record, no secrets."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hearsay.runtime.log_format import JsonFormatter, TextFormatter, one_line
from tests.support.nodes import start_node

PASSWORD = "pa55-in-no-log"


def _record(message: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("hearsay.test", logging.WARNING, __file__, 1, message, (), info)


def test_a_record_is_one_line_whatever_its_message_holds() -> None:
    forged = "bad key 'a\nWARNING hearsay: forged\r\x1b[2J'"
    text = TextFormatter("%(levelname)s %(name)s: %(message)s").format(_record(forged))
    assert text == "WARNING hearsay.test: bad key 'a\\nWARNING hearsay: forged\\r\\x1b[2J'"
    line = JsonFormatter().format(_record(forged, exc=True))
    assert "\n" not in line
    fields = json.loads(line)
    assert fields["level"] == "WARNING" and fields["logger"] == "hearsay.test"
    assert fields["message"] == forged
    assert fields["exception"].startswith("Traceback") and "ValueError: boom" in fields["exception"]
    assert fields["time"].endswith("+00:00")
    assert one_line("plain") == "plain"


@pytest.mark.integration
def test_json_logs_hold_no_secret(tmp_path: Path) -> None:
    """A node at debug level with a password and a keyring, a wrong and a right AUTH, a write
    and a stop: every line it wrote to stderr is a JSON record, and none holds a secret."""
    secret_key = os.urandom(32)
    keyring = tmp_path / "keyring"
    keyring.write_text(base64.b64encode(secret_key).decode() + "\n")
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    node = start_node(
        tmp_path / "data",
        "--log-format", "json", "--log-level", "debug", "--keyring", str(keyring),
        "--requirepass-file", str(password_file),
    )  # fmt: skip
    try:
        with pytest.raises(redis.AuthenticationError):  # one attempt: each retry is throttled
            node.client(password="wrong", retry=Retry(NoBackoff(), 0)).ping()
        client = node.client(password=PASSWORD)
        client.pfadd("visitors", "alice")
        client.execute_command("HEARSAY.JOIN", "name.invalid:1")
        client.close()
    finally:
        assert node.stop(signal.SIGTERM) == 0
    assert node.process.stdout is not None
    output = b"\n".join([*node.output, node.process.stdout.read()])
    lines = [line for line in output.decode().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if not line.startswith("hearsay ready ")]
    assert records, "the node logged nothing at debug level"
    assert any(r["message"] == "stopping: flushing storage" for r in records)
    assert {"time", "level", "logger", "message"} <= set(records[0])
    for secret in (PASSWORD, base64.b64encode(secret_key).decode(), secret_key.hex()):
        assert secret not in output.decode(errors="replace")
    assert secret_key not in output


@pytest.mark.integration
def test_text_logs_at_warning_say_nothing_of_a_clean_start_and_stop(tmp_path: Path) -> None:
    node = start_node(tmp_path / "data", "--log-level", "warning", "--log-format", "text")
    assert node.stop(signal.SIGTERM) == 0
    assert node.process.stdout is not None
    rest = node.process.stdout.read().decode()
    assert [line for line in rest.splitlines() if line.strip()] == []
