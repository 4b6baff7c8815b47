"""Runs the ``hearsay`` admin tools as an operator would: a process of their own, with a
clean environment (no connection variables unless the test gives them)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

RUN_TIMEOUT_S = 30.0
CONNECTION_VARIABLES = ("HEARSAY_HOST", "HEARSAY_PORT", "HEARSAY_PASSWORD", "REDISCLI_AUTH")


def hearsay(
    *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``hearsay ARGS`` with none of the connection variables set unless ``env`` sets
    them; stdout and stderr are pipes (not a terminal), ``stdin`` its standard input."""
    environ = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hearsay.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def ok(*args: str, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
    """Runs ``hearsay ARGS`` expecting success; its stdout."""
    done = hearsay(*args, env=env, stdin=stdin)
    assert done.returncode == 0, done
    return done.stdout
