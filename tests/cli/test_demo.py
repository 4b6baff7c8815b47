"""``hearsay demo`` end to end: three real nodes, a kill, a restart, the answers, clean-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hearsay.admin.demo import NODES, PAGES

pytestmark = pytest.mark.integration

DEMO_TIMEOUT_S = 120.0


def _alive(pid: int) -> bool:
    """Whether ``pid`` is still a running process (a zombie counts as stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_demo_runs_end_to_end_and_cleans_up() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hearsay.cli", "demo"],
        capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done
    out = done.stdout
    pids = [int(pid) for pid in re.findall(r"pid (\d+)\)", out)]
    assert len(pids) == NODES + 2  # three starts, the kill, the restart
    assert "killed node3 (SIGKILL" in out and "node3 caught up after" in out
    # Every page's row: the three nodes answer the same, and the count-min counts every hit.
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("/")}
    assert set(rows) == set(PAGES)
    for row in rows.values():
        _, _, pfcounts, error, hits, cms = row
        assert len(set(pfcounts.split("/"))) == 1, row
        assert cms == "/".join([hits] * NODES), row
        assert abs(float(error.rstrip("%"))) < 5.0, row
    members = [line.split() for line in out.splitlines() if line.startswith("node")]
    assert [(m[0], m[2]) for m in members] == [(f"node{n}", "alive") for n in (1, 2, 3)]
    assert members[2][4] == "2"  # the restarted node runs its second generation
    directory = re.search(r"removed (\S+);", out)
    assert directory is not None and not os.path.exists(directory[1])
    assert not any(_alive(pid) for pid in pids)
    assert done.stderr == ""
