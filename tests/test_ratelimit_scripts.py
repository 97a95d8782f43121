"""The Redis Lua script and the PostgreSQL function decide exactly like the pure
algorithms they mirror (differential hypothesis test at caller-given times)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress.backends import Backend, connect
from buttress.ratelimit import Decision, Rate, RateLimiter
from buttress.ratelimit._algorithms import ALGORITHMS

START_US = 1_700_000_000_123_457
_names = itertools.count()


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, int, int, list[tuple[int, int, bool]]]:
    algorithm = draw(st.sampled_from(sorted(ALGORITHMS)))
    limit = draw(st.integers(1, 6))
    # A period that divides by the limit, so the script's microsecond interval
    # equals the core's nanosecond one.
    period_us = limit * draw(st.sampled_from([1, 7, 1000, 250_000, 1_000_000]))
    steps = draw(
        st.lists(
            st.tuples(
                st.one_of(st.just(0), st.integers(0, 2 * period_us // limit + 1)),
                st.integers(0, limit),
                st.booleans(),
            ),
            min_size=1,
            max_size=25,
        )
    )
    return algorithm, limit, period_us, steps


def reference(
    algorithm: str, limit: int, period_us: int, steps: list[tuple[int, int, bool]]
) -> list[Decision]:
    step = ALGORITHMS[algorithm].step
    state: Any = None
    now_us = START_US
    out = []
    for advance, cost, consume in steps:
        now_us += advance
        decision, new_state = step(state, now_us * 1000, limit, period_us * 1000, cost)
        if consume and decision.allowed:
            state = new_state
        out.append(decision)
    return out


async def replay(
    backend: Backend, algorithm: str, limit: int, period_us: int, steps: list[tuple[int, int, bool]]
) -> list[Decision]:
    limiter = RateLimiter(
        Rate(limit, period_us / 1e6), algorithm=algorithm, backend=backend, prefix="diff"
    )
    store: Any = limiter._store
    key = f"k{next(_names)}"
    now_us = START_US
    out = []
    for advance, cost, consume in steps:
        now_us += advance
        store.fixed_now_us = now_us
        if consume and cost > 0:
            out.append(await limiter.ahit(key, cost))
        else:
            out.append(await limiter.apeek(key, cost))
    return out


def normalise(steps: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
    # hit() needs cost >= 1: a consuming step of cost 0 is a peek.
    return [(a, c, consume and c > 0) for a, c, consume in steps]


@pytest.fixture
async def redis_backend(redis_dsn: str) -> AsyncIterator[Backend]:
    async with connect(redis_dsn) as backend:
        yield backend


@pytest.fixture
async def postgres_backend(postgres_dsn: str) -> AsyncIterator[Backend]:
    async with connect(postgres_dsn) as backend:
        yield backend


_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.redis
@_settings
@given(scenarios())
async def test_redis_script_matches_the_pure_algorithms(
    redis_backend: Backend, scenario: tuple[str, int, int, list[tuple[int, int, bool]]]
) -> None:
    algorithm, limit, period_us, steps = scenario
    steps = normalise(steps)
    assert await replay(redis_backend, algorithm, limit, period_us, steps) == reference(
        algorithm, limit, period_us, steps
    )


@pytest.mark.postgres
@_settings
@given(scenarios())
async def test_postgres_function_matches_the_pure_algorithms(
    postgres_backend: Backend, scenario: tuple[str, int, int, list[tuple[int, int, bool]]]
) -> None:
    algorithm, limit, period_us, steps = scenario
    steps = normalise(steps)
    assert await replay(postgres_backend, algorithm, limit, period_us, steps) == reference(
        algorithm, limit, period_us, steps
    )
