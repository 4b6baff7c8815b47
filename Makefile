# Everything sets itself up: a fresh machine needs only Python 3.11+, pip and gcc.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
ARGS ?=

.PHONY: serve test lint typecheck layers pytest bench bench-short bench-full bench-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `pip install -e .` compiles the C extension in place: a changed source must rebuild it.
.make-stamp-install: pyproject.toml src/hearsay/sketch/_murmur.c | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

.make-stamp-test: pyproject.toml .make-stamp-install
	$(BIN)/pip install --quiet -e '.[test,plot]'
	@# redis-server is the reference for the HLL differential tests; redis-benchmark for bench/.
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; \
	  else echo "note: redis-server missing and not root: the redis differential tests will skip"; fi; \
	fi
	@# mkfs.ext4 and e2fsck: the read-only file system test (tests/test_storage_faults.py).
	@if ! command -v mkfs.ext4 >/dev/null 2>&1 && [ "$$(id -u)" = "0" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs >/dev/null; \
	fi
	touch $@

serve: .make-stamp-install
	@$(BIN)/hearsay serve --host $(HOST) --data-dir ./data $(ARGS)

lint: .make-stamp-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: .make-stamp-test
	$(BIN)/mypy --strict src

layers: .make-stamp-test
	$(BIN)/lint-imports

pytest: .make-stamp-test
	$(BIN)/pytest -q

test: lint typecheck layers pytest

# Benchmarks (never part of `make test`): each judges its targets; a miss exits non-zero after
# every benchmark has run. bench-check runs each in a tiny mode to check the harness itself.
bench: bench-short

bench-short: .make-stamp-test
	$(BIN)/python bench/run_all.py --mode short

bench-full: .make-stamp-test
	$(BIN)/python bench/run_all.py --mode full

bench-check: .make-stamp-test
	$(BIN)/pytest -q -m bench tests/test_bench_harness.py

clean:
	rm -rf $(VENV) .make-stamp-* .mypy_cache .ruff_cache .pytest_cache
