"""What ``hearsay serve`` says when its settings are wrong (issue 15): one line that names
the setting, the choices or the line at fault, never a traceback."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hearsay.runtime.keyring import KeyringError, load_keyring

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 30.0


def serve_refused(tmp_path: Path, *extra: str, status: int) -> str:
    """Runs ``hearsay serve`` expecting it to refuse to start with ``status``; its stderr."""
    args = [
        sys.executable, "-m", "hearsay.cli", "serve", "--port", "0", "--gossip-port", "0",
        "--http-port", "0", "--data-dir", str(tmp_path / "data"), *extra,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    assert done.returncode == status, done
    assert "hearsay ready" not in done.stdout
    assert "Traceback" not in done.stderr
    return done.stderr


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_an_unknown_fsync_policy_names_the_choices(tmp_path: Path) -> None:
    said = serve_refused(tmp_path, "--fsync", "sometimes", status=2)
    assert said.splitlines()[-1] == (
        "hearsay serve: error: argument --fsync: unknown fsync policy 'sometimes': "
        "choose one of always, everysec, no"
    )


def test_an_unknown_fsync_policy_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "hearsay.toml"
    config.write_text('fsync = "sometimes"\n')
    said = serve_refused(tmp_path, "--config", str(config), status=2)
    assert said == "hearsay: unknown fsync policy 'sometimes': choose one of always, everysec, no\n"


def test_an_unknown_log_format(tmp_path: Path) -> None:
    config = tmp_path / "hearsay.toml"
    config.write_text('log-format = "xml"\n')
    said = serve_refused(tmp_path, "--config", str(config), status=2)
    assert said == "hearsay: log_format must be one of text, json\n"


def test_a_binary_keyring_is_a_clear_error(tmp_path: Path) -> None:
    keyring = tmp_path / "keyring"
    keyring.write_bytes(os.urandom(32) + b"\xff\xfe")  # a raw key instead of its base64
    said = serve_refused(tmp_path, "--keyring", str(keyring), status=1)
    assert said == (
        f"hearsay: cannot start: keyring {keyring} is not text: it should hold base64 keys, "
        "one a line (hearsay keygen makes one)\n"
    )


def test_a_keyring_of_one_bad_line_names_line_1(tmp_path: Path) -> None:
    keyring = tmp_path / "keyring"
    keyring.write_text("not a key!\n")
    said = serve_refused(tmp_path, "--keyring", str(keyring), status=1)
    assert said == f"hearsay: cannot start: keyring {keyring} line 1 is not base64\n"


def test_keyring_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    keyring = tmp_path / "keyring"
    keyring.write_text(f"\n{_key()}\n\n  {_key()}  \n{_key()[:-1]}\n")
    with pytest.raises(KeyringError, match=r"line 5 is not base64$"):
        load_keyring(str(keyring))
    short = base64.b64encode(b"k" * 10).decode()
    keyring.write_text(f"{_key()}\n{short}\n")
    with pytest.raises(KeyringError, match=r"line 2 is a 10-byte key: an AES key is 16/24/32"):
        load_keyring(str(keyring))
    keyring.write_text("\n\n")
    with pytest.raises(KeyringError, match="holds no key"):
        load_keyring(str(keyring))
    first, second = _key(), _key()
    keyring.write_text(f"\n{first}\n\n  {second}  \n")
    loaded = load_keyring(str(keyring))
    assert loaded.keys == [base64.b64decode(first), base64.b64decode(second)]


def test_a_keyring_error_never_quotes_the_line(tmp_path: Path) -> None:
    keyring = tmp_path / "keyring"
    secret = _key()
    keyring.write_text(f"{secret}!\n")
    with pytest.raises(KeyringError) as raised:
        load_keyring(str(keyring))
    assert secret not in str(raised.value)


def test_a_gossip_port_in_use_names_the_listener_and_the_reason(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        said = serve_refused(tmp_path, "--host", "127.0.0.1", "--gossip-port", str(port), status=1)
    assert said == (
        f"hearsay: cannot start: the gossip port {port} on 127.0.0.1 (UDP, --gossip-port) is in "
        "use by another process: stop it or choose another port\n"
    )


def test_a_resp_port_in_use_names_the_listener(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said = serve_refused(tmp_path, "--host", "127.0.0.1", "--port", str(port), status=1)
    assert said.startswith(
        f"hearsay: cannot start: the RESP port {port} on 127.0.0.1 (TCP, --port)"
    )


def test_two_listeners_on_one_port_are_refused(tmp_path: Path) -> None:
    said = serve_refused(tmp_path, "--port", "7000", "--http-port", "7000", status=2)
    assert said == "hearsay: port and http_port are both 7000: each needs its own\n"
