"""The benchmarks' harness: every benchmark judges its targets and exits by the verdict.

The figures of a benchmark run here mean nothing (tiny sizes, a shared machine); what is
checked is that each script runs to the end against its real baselines (redis-server, real
nodes), prints its targets, and exits 0 when every target is met and 1 when one is missed.
``--target-scale`` makes the verdict certain either way: 0 turns every bound into one any
figure meets, 1e9 into one no figure meets. The Verdicts tests run in the default suite; the
runs of the scripts are marked ``bench`` (``make bench-check``).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from bench.run_all import MODES
from bench.verdict import EXIT_MET, EXIT_MISSED, Verdicts

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_TIMEOUT_S = 600


def test_a_figure_is_judged_against_its_bound(capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = Verdicts()
    assert verdicts.check("ratio", 0.6, ">=", 0.5, "x")
    assert not verdicts.check("ratio", 0.4, ">=", 0.5, "x")
    assert verdicts.check("latency", 90, "<=", 100, " ms")
    assert not verdicts.check("latency", 101, "<=", 100, " ms")
    assert verdicts.missed == ["ratio", "latency"]
    out = capsys.readouterr().out
    assert out.count("MISSED") == 2
    assert out.count("met ") == 2


def test_a_target_not_measured_is_missed() -> None:
    verdicts = Verdicts()
    assert not verdicts.check("never measured", None, "<=", 100)
    assert not verdicts.check("nan", math.nan, ">=", 0)
    assert verdicts.finish("x") == EXIT_MISSED


def test_the_exit_status_follows_the_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    met = Verdicts()
    met.check("a", 1, ">=", 1)
    assert met.finish("bench") == EXIT_MET
    assert "bench: all 1 targets met" in capsys.readouterr().out
    missed = Verdicts()
    missed.check("a", 1, ">=", 1)
    missed.check("b", 2, "<=", 1)
    assert missed.finish("bench") == EXIT_MISSED
    assert "bench: MISSED 1 of 2 targets" in capsys.readouterr().out
    assert Verdicts().finish("bench") == EXIT_MISSED  # judging nothing proves nothing


def test_the_scale_makes_bounds_easier_or_harder() -> None:
    easy, hard = Verdicts(scale=0), Verdicts(scale=1e9)
    assert easy.check("ratio", 0.0, ">=", 0.5)
    assert easy.check("latency", 1e12, "<=", 100)
    assert not hard.check("ratio", 1e6, ">=", 0.5)
    assert not hard.check("latency", 0.001, "<=", 100)
    with pytest.raises(ValueError, match="unknown comparison"):
        Verdicts().check("x", 1, "<", 2)


def test_every_benchmark_is_in_every_mode() -> None:
    """A benchmark left out of bench/run_all.py would run in no make target and no check."""
    scripts = {path.name for path in (ROOT / "bench").glob("*.py")} - {"verdict.py", "run_all.py"}
    for mode, benchmarks in MODES.items():
        assert set(benchmarks) == scripts, mode


def run_script(script: str, scale: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *MODES["tiny"][script],
         "--target-scale", scale],
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, cwd=ROOT, check=False,
    )  # fmt: skip


@pytest.mark.bench
@pytest.mark.parametrize("script", sorted(MODES["tiny"]))
def test_every_benchmark_exits_by_its_verdict(script: str) -> None:
    easy = run_script(script, "0")
    assert easy.returncode == EXIT_MET, easy.stdout + easy.stderr
    assert f"{script}: all " in easy.stdout
    assert "  met " in easy.stdout and "MISSED" not in easy.stdout
    hard = run_script(script, "1e9")
    assert hard.returncode == EXIT_MISSED, hard.stdout + hard.stderr
    assert f"{script}: MISSED " in hard.stdout
    assert "  MISSED " in hard.stdout


@pytest.mark.bench
def test_run_all_runs_every_benchmark_and_sums_up() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--mode", "tiny",
         "--only", "resp_parse.py", "--only", "persist.py", "--target-scale", "1e9"],
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == EXIT_MISSED, done.stdout + done.stderr
    summary = done.stdout.split("===== summary (tiny mode)")[1]
    assert "resp_parse.py      MISSED targets" in summary
    assert "persist.py         MISSED targets" in summary
    assert "  - resp_parse.py: GET key: parse() / hiredis.Reader" in summary
    assert "  - persist.py: always: asyncio x 8 / raw sqlite" in summary


@pytest.mark.bench
@pytest.mark.parametrize("mode", ["short", "full"])
def test_the_short_and_full_modes_pass_flags_each_benchmark_takes(mode: str) -> None:
    """``make bench`` must not die on a misspelt flag after minutes of other benchmarks:
    argparse converts every value given before ``--help`` and the help lists every flag."""
    for script, args in MODES[mode].items():
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / script), *args, "--help"],
            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, cwd=ROOT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{script}: {done.stderr}"
        for flag in (arg for arg in args if arg.startswith("--")):
            assert flag in done.stdout, f"{script} takes no {flag}"
    assert set(MODES[mode]) == set(MODES["tiny"])


@pytest.mark.bench
def test_the_cluster_agreement_check_sees_a_key_on_one_node_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """commands.py's after-the-load check must be able to fail: two nodes that never joined,
    a key of each family written on one of them only."""
    from bench import commands

    from tests.support.nodes import Cluster

    monkeypatch.setattr(commands, "AGREE_DEADLINE_S", 0.5)
    cluster = Cluster(tmp_path)
    try:
        one, other = cluster.start("one"), cluster.start("other")
        with one.client() as client:
            client.pfadd("hll", "x")
            client.incr("counter")
            client.execute_command("BF.ADD", "bloom", "x")
            client.execute_command("CMS.INITBYDIM", "cms", 10, 2)
            client.execute_command("VMAX", "vector", 1, 2)
        keys = ["hll", "counter", "bloom", "cms", "vector", "never-written"]
        differ, _ = commands.disagreeing_keys([one, other], keys)
        assert differ == 5
        with other.client() as client:
            client.pfadd("hll", "x")
        differ, _ = commands.disagreeing_keys([one, other], ["hll", "never-written"])
        assert differ == 0
        # (a DEL row's keys end absent everywhere: agreement, not refused writes)
        assert commands.disagreeing_keys([one, other], ["never-written"])[0] == 1
        differ, _ = commands.disagreeing_keys([one, other], ["never-written"], absent_agrees=True)
        assert differ == 0
    finally:
        cluster.close()


def test_run_all_tells_a_judged_miss_from_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 1 is a miss only with the benchmark's own MISSED summary; a traceback is also
    exit 1 and must count as a benchmark that failed to run."""
    from bench import run_all

    scripts = {
        "met.py": "print('met.py: all 1 targets met')",
        "missed.py": "import sys; print('missed.py: MISSED 1 of 1 targets:'); sys.exit(1)",
        "crash.py": "raise RuntimeError('no redis-server')",
        "lies.py": "print('lies.py: all 1 targets met'); raise SystemExit(1)",
    }
    for name, body in scripts.items():
        (tmp_path / name).write_text(body + "\n")
    monkeypatch.setattr(run_all, "BENCH_DIR", tmp_path)
    outcomes = {name: run_all.run_one(name, [], timeout_s=60) for name in scripts}
    assert outcomes == {
        "met.py": "met",
        "missed.py": "missed",
        "crash.py": "broken",
        "lies.py": "broken",
    }
