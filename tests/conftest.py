"""Shared test settings.

Hypothesis runs derandomized (the same examples every run, so CI is reproducible and a failure
reproduces) without per-example deadlines (this machine is shared and noisy; speed lives in
bench/, never in tests). Set HYPOTHESIS_PROFILE=explore for a randomized, longer search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.redis_reference import RedisUnavailableError, reference_redis

settings.register_profile(
    "default",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore", deadline=None, max_examples=2000, print_blob=True, derandomize=False
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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
