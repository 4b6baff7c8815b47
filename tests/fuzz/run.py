"""Coverage-guided fuzzing of one decoder target with atheris (``make fuzz``).

Usage::

    python -m tests.fuzz.run TARGET [--seconds 60] [--crashes DIR]
    python -m tests.fuzz.run all --seconds 10      # every target in turn

Why: Hypothesis explores the structure we describe; atheris (libFuzzer) follows the code's
branches and finds inputs nobody thought to describe. Both drive the same targets
(:mod:`tests.fuzz.targets`), starting from the kept corpus (tests/fuzz/corpus/<target>/).
New interesting inputs go to a scratch directory, not the repo; a crasher is written to
``--crashes`` (default ``fuzz-crashes/<target>/``): fix the decoder, then copy the file into
tests/fuzz/corpus/<target>/ so ``make test`` replays it forever.

Each target runs in its own child process (libFuzzer exits the process when it stops), so one
crashing target does not hide the others. The exit code is non-zero when any target crashed.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
DICTS = Path(__file__).parent / "dicts"
RSS_LIMIT_MB = 2048
"""libFuzzer's memory limit: a decoder that allocates more than this for one input fails."""
ADDRESS_SPACE_BYTES_MAX = 8 << 30


def _collecting(check: Callable[[bytes], None], crashes: Path) -> Callable[[bytes], None]:
    """``check``, recording each distinct failure (exception type and where it was raised)
    once under ``crashes`` instead of stopping: one run finds more than one bug. Stalls and
    memory blow-ups still stop the run (libFuzzer's -timeout and -rss_limit_mb)."""
    seen: set[tuple[str, str, int]] = set()

    def run(data: bytes) -> None:
        try:
            check(data)
        except Exception as error:
            frame = traceback.extract_tb(error.__traceback__)[-1]
            signature = (type(error).__name__, frame.filename, frame.lineno or 0)
            if signature not in seen:
                seen.add(signature)
                name = f"crash-{signature[0]}-{Path(signature[1]).stem}-{signature[2]}"
                (crashes / name).write_bytes(data)
                print(f"== new failure {name}: {error!r}"[:300], flush=True)

    return run


def _fuzz_one(target: str, seconds: int, crashes: Path, keep_going: bool, scratch: Path) -> int:
    """Run atheris on ``target`` in this process (never returns when libFuzzer stops); the
    inputs it finds go to ``scratch``, which the parent made and removes."""
    import atheris

    # A decoder or handler that tries a huge allocation fails fast with MemoryError (reported
    # as a crash) instead of making the shared machine swap.
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES_MAX, ADDRESS_SPACE_BYTES_MAX))
    with atheris.instrument_imports():
        from tests.fuzz.targets import TARGETS
    check = TARGETS[target]
    crashes.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        str(scratch),
        str(CORPUS / target),
        f"-max_total_time={seconds}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        "-timeout=10",
        "-max_len=4096",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
    ]
    dictionary = DICTS / f"{target}.dict"
    if dictionary.exists():
        argv.append(f"-dict={dictionary}")
    atheris.Setup(argv, _collecting(check, crashes) if keep_going else check)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "target",
        help="a target name from tests/fuzz/targets.py, 'decoders' (every decoder) or 'all' "
        "(the decoders and the command dispatch)",
    )
    parser.add_argument("--keep-going", action="store_true", help="collect every crasher")
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # (its scratch dir)
    args = parser.parse_args(argv)
    if args.child:
        crashes = args.crashes / args.target
        return _fuzz_one(args.target, args.seconds, crashes, args.keep_going, args.child)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: `make fuzz` installs it (.venv/bin/pip install atheris)")
        return 2
    from tests.fuzz.targets import TARGETS

    if args.target == "all":
        names = sorted(TARGETS)
    elif args.target == "decoders":
        names = sorted(set(TARGETS) - {"dispatch"})
    else:
        names = [args.target]
    failed = []
    for name in names:
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}; one of {', '.join(sorted(TARGETS))}")
        print(f"== fuzzing {name} for {args.seconds} s", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"hearsay-fuzz-{name}-") as scratch:
            command = [sys.executable, "-m", "tests.fuzz.run", name, "--child", scratch]
            command += ["--seconds", str(args.seconds), "--crashes", str(args.crashes)]
            command += ["--keep-going"] if args.keep_going else []
            code = subprocess.run(command, check=False, timeout=args.seconds * 3 + 120).returncode
        if code != 0:
            failed.append(name)
            print(f"== {name}: crashed (exit {code}); see {args.crashes / name}/", flush=True)
    print(f"fuzz: {len(names) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
