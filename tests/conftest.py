"""Shared test settings.

Hypothesis runs derandomized (the same examples every run, so CI is reproducible and a failure
reproduces) without per-example deadlines (this machine is shared and noisy; speed lives in
bench/, never in tests). Set HYPOTHESIS_PROFILE=explore for a randomized, longer search.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support.redis_reference import RedisUnavailableError, reference_redis

settings.register_profile(
    "default",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore",
    deadline=None,
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "2000")),
    print_blob=True,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


@pytest.hookimpl(tryfirst=True)  # before Hypothesis's plugin reads --hypothesis-seed
def pytest_configure(config: pytest.Config) -> None:
    """The explore profile searches from a fresh seed each run (HYPOTHESIS_SEED=N or
    ``--hypothesis-seed=N`` repeats one); the seed is printed in the header so a failure
    reproduces."""
    if PROFILE != "explore" or config.getoption("hypothesis_seed", None) is not None:
        return
    seed = os.environ.get("HYPOTHESIS_SEED") or str(random.SystemRandom().randrange(2**32))
    config.option.hypothesis_seed = seed


def _profile_line(config: pytest.Config) -> str:
    if PROFILE != "explore":
        return f"hypothesis profile {PROFILE}"
    seed = config.getoption("hypothesis_seed", None)
    return (
        f"hypothesis profile explore, seed {seed} "
        f"(rerun: HYPOTHESIS_PROFILE=explore HYPOTHESIS_SEED={seed})"
    )


def pytest_report_header(config: pytest.Config) -> str:
    return _profile_line(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Also at the end (shown under -q too), where a failure's reader looks."""
    terminalreporter.write_line(_profile_line(terminalreporter.config))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[int]:
    """The port of a private redis-server (the reference). Missing redis-server fails the tests
    that need it (never a skip: a skipped reference would let the suite pass checking nothing);
    ``make test`` installs it."""
    try:
        with reference_redis() as port:
            yield port
    except RedisUnavailableError as error:
        pytest.fail(f"{error}: the differential tests need it (`make test` installs it)")
