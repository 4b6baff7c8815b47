"""Replay the kept fuzz corpus (seeds and every crasher ever found) through each target.

Fast enough for ``make test``: a crasher once fixed stays fixed, and a target whose corpus
directory went missing fails here instead of fuzzing nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

CORPUS = Path(__file__).parent / "corpus"


def _cases() -> list[tuple[str, Path]]:
    return [
        (target, path)
        for target in sorted(TARGETS)
        for path in sorted((CORPUS / target).glob("*"))
        if path.is_file()
    ]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_has_a_corpus(target: str) -> None:
    assert any((CORPUS / target).glob("*")), f"tests/fuzz/corpus/{target}/ is empty"


@pytest.mark.parametrize(("target", "path"), _cases(), ids=lambda v: getattr(v, "name", v))
def test_corpus_file_keeps_the_contract(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())
