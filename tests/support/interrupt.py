"""Children that a test stops with Ctrl-C (SIGINT), as a terminal would.

A suite started in the background by a non-interactive shell (``cmd &``, ``nohup``: as a CI
runner may start it) inherits SIGINT *ignored*, and so does every child it starts: Python then
installs no KeyboardInterrupt handler and redis-cli never sees the signal, so a test of Ctrl-C
would hang there and pass on a terminal. The wrapper gives the child SIGINT's default
disposition (kept across exec) and execs the command, so the test means the same everywhere.
"""

from __future__ import annotations

import sys

_RESTORE_AND_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def with_default_sigint(command: list[str]) -> list[str]:
    """``command`` run with SIGINT at its default disposition, whatever the suite inherited."""
    return [sys.executable, "-c", _RESTORE_AND_EXEC, *command]
