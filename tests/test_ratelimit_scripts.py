"""The Redis Lua script and the PostgreSQL function decide exactly like the pure
algorithms they mirror, for single checks and for hit_all batches (differential
hypothesis tests at caller-given times)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import Backend
from buttress.ratelimit import Decision, Rate, RateLimiter, ahit_all
from buttress.ratelimit._core import ALGORITHMS
from buttress.testing import FakeClock

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


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[tuple[str, int]], list[tuple[int, list[int], int]]]:
    """Two or three limiters (algorithm, limit) of period 1 s, and steps of
    (advance µs, which limiters take part, cost)."""
    shapes = draw(
        st.lists(
            st.tuples(st.sampled_from(sorted(ALGORITHMS)), st.sampled_from([1, 2, 4, 5])),
            min_size=2,
            max_size=3,
        )
    )
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 600_000),
                st.lists(st.integers(0, len(shapes) - 1), min_size=1, max_size=4),
                st.integers(1, 5),
            ),
            min_size=1,
            max_size=12,
        )
    )
    return shapes, steps


async def replay_batches(
    backend: Backend | None,
    shapes: list[tuple[str, int]],
    steps: list[tuple[int, list[int], int]],
) -> list[tuple[Decision, list[Decision]]]:
    clock = FakeClock(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=START_US))
    run = next(_names)
    limiters = [
        RateLimiter(Rate(limit, 1.0), algorithm=a, backend=backend, clock=clock, prefix=f"b{i}")
        for i, (a, limit) in enumerate(shapes)
    ]
    out = []
    now_us = START_US
    for advance, members, cost in steps:
        now_us += advance
        clock.advance(advance / 1e6)
        for limiter in limiters:
            store: Any = limiter._store
            if store is not None:
                store.fixed_now_us = now_us
        pairs = [(limiters[m], f"r{run}") for m in members]
        usable = min(cost, *(limiters[m].rate.limit for m in members))
        decision = await ahit_all(pairs, cost=usable)
        left = [await limiter.apeek(f"r{run}", 0) for limiter in limiters]
        out.append((decision, left))
    return out


@pytest.mark.redis
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches())
async def test_redis_hit_all_matches_memory(
    redis_backend: Backend,
    scenario: tuple[list[tuple[str, int]], list[tuple[int, list[int], int]]],
) -> None:
    shapes, steps = scenario
    assert await replay_batches(redis_backend, shapes, steps) == await replay_batches(
        None, shapes, steps
    )


@pytest.mark.postgres
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches())
async def test_postgres_hit_all_matches_memory(
    postgres_backend: Backend,
    scenario: tuple[list[tuple[str, int]], list[tuple[int, list[int], int]]],
) -> None:
    shapes, steps = scenario
    assert await replay_batches(postgres_backend, shapes, steps) == await replay_batches(
        None, shapes, steps
    )


# -- PostgreSQL: the single-key fast path (0010) and the batch function (0006) on one key --


@st.composite
def boundary_scenarios(draw: st.DrawFn) -> tuple[str, int, int, list[tuple[int, int, str]]]:
    """Steps at times on a grid of emission intervals (+-1 µs), so that hits land
    exactly on, just before and just after GCRA's theoretical arrival times,
    fixed-window boundaries and sliding-window expiries; now and then the clock
    steps back. Each step is a hit through the fast path ("one"), a hit through
    the batch function ("batch") or a peek."""
    algorithm = draw(st.sampled_from(sorted(ALGORITHMS)))
    limit = draw(st.integers(1, 5))
    interval_us = draw(st.sampled_from([1, 3, 1000, 250_000]))
    # Mostly small moves and unit costs, so that keys fill up to exactly their limit.
    ticks = draw(st.lists(st.sampled_from([-1, 0, 0, 0, 1, 1, 2, 3]), min_size=1, max_size=30))
    grid = 0
    steps = []
    for tick in ticks:
        grid = max(0, grid + tick)
        delta = draw(st.sampled_from([-1, 0, 0, 1]))
        cost = draw(st.one_of(st.just(1), st.integers(1, limit)))
        path = draw(st.sampled_from(["one", "one", "batch", "peek"]))
        steps.append((grid * interval_us + delta, cost, path))
    return algorithm, limit, limit * interval_us, steps


@pytest.mark.postgres
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(boundary_scenarios())
# Filled to exactly the limit, then a refusal, then the boundary: 1 µs early, on it.
@example(
    (
        "fixed_window",
        3,
        3000,
        [
            (0, 1, "one"),
            (1, 1, "one"),
            (999, 1, "one"),
            (999, 1, "one"),
            (2999, 1, "peek"),
            (2999, 1, "one"),
            (3000, 2, "one"),
            (3000, 1, "one"),
            (3001, 1, "one"),
        ],
    )
)
@example(
    (
        "gcra",
        2,
        2000,
        [
            (0, 1, "one"),
            (0, 1, "one"),
            (0, 1, "one"),
            (999, 1, "one"),
            (1000, 1, "one"),
            (1000, 1, "one"),
            (3000, 2, "batch"),
            (3000, 1, "one"),
            (4000, 1, "one"),
        ],
    )
)
@example(
    (
        "sliding_window",
        3,
        3000,
        [
            (0, 1, "one"),
            (1000, 2, "one"),
            (2999, 1, "one"),
            (3000, 1, "one"),
            (3999, 2, "one"),
            (4000, 2, "one"),
            (4000, 1, "peek"),
            (6000, 3, "batch"),
        ],
    )
)
async def test_postgres_fast_path_matches_the_pure_algorithms_at_boundaries(
    postgres_backend: Backend, scenario: tuple[str, int, int, list[tuple[int, int, str]]]
) -> None:
    algorithm, limit, period_us, steps = scenario
    limiter = RateLimiter(
        Rate(limit, period_us / 1e6), algorithm=algorithm, backend=postgres_backend, prefix="fast"
    )
    store: Any = limiter._store
    key = f"k{next(_names)}"
    # Windows start on the grid: fixed-window boundaries fall on grid points.
    origin_us = START_US - START_US % period_us + period_us
    step = ALGORITHMS[algorithm].step
    state: Any = None
    for offset, cost, path in steps:
        now_us = origin_us + offset
        store.fixed_now_us = now_us
        if path == "one":
            got = await limiter.ahit(key, cost)
        elif path == "batch":
            (got,) = await store.adecide_batch([limiter._check(key, cost)], True)
        else:
            got = await limiter.apeek(key, cost)
        expected, new_state = step(state, now_us * 1000, limit, period_us * 1000, cost)
        if path != "peek" and expected.allowed:
            state = new_state
        assert got == expected, (offset, cost, path)
