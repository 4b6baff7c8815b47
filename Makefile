# Everything sets itself up: a fresh machine needs only Python 3.11+, pip and gcc.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
ARGS ?=

.PHONY: serve test lint typecheck layers pytest ci-long bench bench-short bench-full bench-check clean fuzz fuzz-short chaos chaos-short chaos-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `pip install -e .` compiles the C extension in place: a changed source must rebuild it.
.make-stamp-install: pyproject.toml src/hearsay/sketch/_murmur.c src/hearsay/sketch/_packed.c src/hearsay/sketch/_heavykeeper.c src/hearsay/sketch/_bloombits.c src/hearsay/sketch/_tdigest.c src/hearsay/sketch/_splitmix.c src/hearsay/lattice/_digest.c src/hearsay/lattice/_sixbit.c src/hearsay/lattice/_sparse.c src/hearsay/resp/_reqparse.c src/hearsay/lattice/_sixbit_slots.h src/hearsay/lattice/_packed_pairs.h | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

.make-stamp-test: pyproject.toml .make-stamp-install
	$(BIN)/pip install --quiet -e '.[test,plot]'
	@# redis-server is the reference of the differential tests (a hard requirement: they fail
	@# without it, never skip); redis-cli is driven by tests too; redis-benchmark by bench/.
	@if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; \
	  else \
	    echo "error: redis-server and redis-cli are required by the tests; install them as root" >&2; \
	    echo "       (Debian: apt-get install redis-server redis-tools) or put them on PATH" >&2; \
	    exit 1; \
	  fi; \
	fi
	@# mkfs.ext4 and e2fsck: the read-only file system test (tests/runtime/test_storage_faults.py).
	@if ! command -v mkfs.ext4 >/dev/null 2>&1 && [ "$$(id -u)" = "0" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs >/dev/null; \
	fi
	@# chromium and its chromedriver: the dashboard's browser test (a hard requirement too).
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "error: chromium and chromedriver are required by the tests; install them as root" >&2; \
	    echo "       (Debian: apt-get install chromium chromium-driver) or put them on PATH" >&2; \
	    exit 1; \
	  fi; \
	fi
	@command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || \
	  { echo "error: redis-server/redis-cli still missing after installing" >&2; exit 1; }
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { echo "error: chromium/chromedriver still missing after installing" >&2; exit 1; }
	touch $@

serve: .make-stamp-install
	@$(BIN)/hearsay serve --host $(HOST) --data-dir ./data $(ARGS)

lint: .make-stamp-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: .make-stamp-test
	$(BIN)/mypy --strict src bench

layers: .make-stamp-test
	$(BIN)/lint-imports

# The default suite on PYTEST_WORKERS processes (pytest-xdist): about half its serial time on
# 2 cores (the suite waits on real nodes, sockets and disks as much as it computes). Every test
# is independent of the others: nodes take kernel-chosen ports, data lives in per-test tmp
# directories. PYTEST_WORKERS=0 runs it serially in one process.
PYTEST_WORKERS ?= 2
pytest: .make-stamp-test
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

test: lint typecheck layers pytest

# The long suites CI runs after `make test` (not part of it: make test stays under 10 minutes):
# the simulator's 20-seed fault sweep (partitions, wiped disks, stalls, clogs, duplication;
# about 3 minutes on a shared 2-core machine) and a randomised Hypothesis run whose seed is
# printed (HYPOTHESIS_SEED=N repeats it; CI_HYPOTHESIS_EXAMPLES sizes it).
CI_HYPOTHESIS_EXAMPLES ?= 300
ci-long: .make-stamp-test
	$(BIN)/pytest -q -m slow
	HYPOTHESIS_PROFILE=explore HYPOTHESIS_MAX_EXAMPLES=$(CI_HYPOTHESIS_EXAMPLES) $(BIN)/pytest -q -m hypothesis

# Benchmarks (never part of `make test`): each judges its targets; a miss exits non-zero after
# every benchmark has run. bench-check runs each in a tiny mode to check the harness itself.
bench: bench-short

bench-short: .make-stamp-test
	$(BIN)/python bench/run_all.py --mode short

bench-full: .make-stamp-test
	$(BIN)/python bench/run_all.py --mode full

bench-check: .make-stamp-test
	$(BIN)/pytest -q -m bench tests/project/test_bench_harness.py

# Coverage-guided fuzzing (tests/fuzz/), FUZZ_SECONDS per target, then the Hypothesis fuzz tests
# with the randomized, longer profile. Crashers land in fuzz-crashes/. Both run every decoder
# and the command dispatch; `fuzz-short` (CI) for 10 s per target.
FUZZ_SECONDS ?= 60
.make-stamp-fuzz: .make-stamp-test
	$(BIN)/pip install --quiet -e '.[test,fuzz]'
	touch $@

fuzz: .make-stamp-fuzz
	$(BIN)/python -m tests.fuzz.run all --seconds $(FUZZ_SECONDS) --keep-going
	HYPOTHESIS_PROFILE=explore $(BIN)/pytest -q -m fuzz tests/fuzz

fuzz-short: .make-stamp-fuzz
	$(BIN)/python -m tests.fuzz.run all --seconds 10
	$(BIN)/pytest -q tests/fuzz

# The chaos suite (tests/chaos/): real nodes in network namespaces under faults. Needs root;
# installs what it uses when missing. CHAOS_SEED=n replays a schedule; CHAOS_ROUNDS sets the
# long run's length. chaos-short is the few-minute subset for CI.
CHAOS_TOOLS := ip nft nsenter losetup mkfs.ext4 e2fsck
chaos-deps:
	@if [ "$$(id -u)" != "0" ]; then echo "note: not root: the chaos suite will skip"; \
	elif ! (for t in $(CHAOS_TOOLS); do command -v $$t >/dev/null || exit 1; done); then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    iproute2 nftables util-linux mount e2fsprogs >/dev/null; \
	fi

chaos: .make-stamp-test chaos-deps
	$(BIN)/pytest -q -s -m chaos tests/chaos

chaos-short: .make-stamp-test chaos-deps
	$(BIN)/pytest -q -m chaos -k "not long" tests/chaos

clean:
	rm -rf $(VENV) .make-stamp-* .mypy_cache .ruff_cache .pytest_cache fuzz-crashes
