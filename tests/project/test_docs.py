"""The user documentation stays in step with the code: every command the server registers is
documented in docs/commands.md, and every `hearsay serve` flag in the README."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

from hearsay.cli import main
from hearsay.resp.cluster_commands import ClusterControl
from hearsay.resp.server_commands import build_registry
from tests.support.command_client import NoServer

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_is_documented() -> None:
    registry = build_registry(NoServer(), cast(ClusterControl, object()))
    names = {spec.name for spec in registry.specs() if "|" not in spec.name}
    assert len(names) > 50
    text = (ROOT / "docs" / "commands.md").read_text()
    documented = {word.upper() for word in re.findall(r"`([A-Za-z._]+)[` ]", text)}
    assert sorted(names - documented) == []


def test_every_serve_flag_is_in_the_readme(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    flags = set(re.findall(r"(--[a-z][a-z-]+)", capsys.readouterr().out)) - {"--help"}
    readme = (ROOT / "README.md").read_text()
    assert sorted(flag for flag in flags if flag not in readme) == []
