"""Inputs the fuzzers found that today's code still fails on, each tied to its issue finding.

Why: a crasher must not be lost while its fix is pending, and the day the fix lands its test
must say so. Each file under tests/fuzz/known_crashers/<target>/ is replayed through its target
as ``xfail(strict=True)``: it XPASSes (failing the run) once fixed, and then moves to
tests/fuzz/corpus/<target>/, replayed by test_corpus.py forever.

Files named ``timeout-*`` are stalls: replaying them here would hold the suite for minutes
(there is no honest way to assert "fast" in a test), so they are kept for ``make fuzz`` and by
hand (``python -c 'from tests.fuzz.targets import TARGETS; TARGETS["dispatch"](open(F,
"rb").read())'``) and listed in FINDINGS for the record.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

KNOWN = Path(__file__).parent / "known_crashers"

FINDINGS: dict[str, str] = {}
"""None pending: the two the dispatch fuzzer found (issue 11 finding 13, CMS.INITBYPROB with a
probability below float32's range; finding 9, CONFIG GET with 49 stars backtracking in the glob
matcher) are fixed and replayed from tests/fuzz/corpus/dispatch/."""


def _cases() -> list[pytest.ParameterSet]:
    cases = []
    for path in sorted(KNOWN.glob("*/*")):
        name = f"{path.parent.name}/{path.name}"
        if path.name.startswith("timeout-"):
            continue
        cases.append(
            pytest.param(
                path,
                id=name,
                marks=pytest.mark.xfail(strict=True, reason=FINDINGS.get(name, "no finding")),
            )
        )
    return cases


def test_every_known_crasher_names_its_finding() -> None:
    names = {f"{path.parent.name}/{path.name}" for path in KNOWN.glob("*/*") if path.is_file()}
    assert names == set(FINDINGS)


@pytest.mark.parametrize("path", _cases())
def test_known_crasher_still_fails(path: Path) -> None:
    TARGETS[path.parent.name](path.read_bytes())
