"""Hypothesis properties of the pure rate-limit algorithms and of hit_all.

For any sequence of (advance clock, hit with cost): admitted cost never exceeds
the algorithm's definition of the limit, and ``remaining``/``retry_after``/
``reset_after`` agree with what the next decisions actually do.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.ratelimit import Rate, RateLimiter, hit_all
from buttress.ratelimit._core import ALGORITHMS
from buttress.testing import FakeClock

START = 1_700_000_000 * 10**9 + 123_456_789  # an epoch time in ns, off any boundary

limits = st.integers(min_value=1, max_value=12)
periods = st.sampled_from([1, 7, 1000, 999_999, 10**9, 3 * 10**9 + 1, 60 * 10**9])
algorithms = st.sampled_from(sorted(ALGORITHMS))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, int, int, list[tuple[int, int]]]:
    algorithm = draw(algorithms)
    limit = draw(limits)
    period = draw(periods)
    steps = draw(
        st.lists(
            st.tuples(
                st.one_of(
                    st.just(0),
                    st.integers(0, period // limit + 1),
                    st.integers(0, 2 * period),
                ),
                st.integers(1, limit),
            ),
            max_size=60,
        )
    )
    return algorithm, limit, period, steps


def run(
    algorithm: str, limit: int, period: int, steps: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Apply the steps; returns the admitted (time, cost) and checks consistency."""
    step = ALGORITHMS[algorithm].step
    state: Any = None
    now = START
    admitted = []
    for advance, cost in steps:
        now += advance
        decision, new_state = step(state, now, limit, period, cost)
        assert decision.limit == limit
        assert 0 <= decision.remaining <= limit
        assert decision.reset_after >= 0
        if decision.allowed:
            assert decision.retry_after == 0
            admitted.append((now, cost))
            state = new_state
        else:
            assert new_state == state
            assert decision.retry_after > 0
        check_remaining(step, state, now, limit, period, decision.remaining)
        check_retry_after(step, state, now, limit, period, cost, decision)
        check_reset_after(step, state, now, limit, period, decision.reset_after)
    return admitted


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def check_remaining(
    step: Any, state: Any, now: int, limit: int, period: int, remaining: int
) -> None:
    """``remaining == k`` means exactly k more unit hits pass right now."""
    for _ in range(remaining):
        decision, state = step(state, now, limit, period, 1)
        assert decision.allowed
    assert not step(state, now, limit, period, 1)[0].allowed


def check_retry_after(
    step: Any, state: Any, now: int, limit: int, period: int, cost: int, decision: Any
) -> None:
    """A refused request passes after ``retry_after``, and not a microsecond earlier
    than the exact instant (durations are rounded up to microseconds)."""
    if decision.allowed:
        return
    wait = ns(decision.retry_after)
    assert step(state, now + wait, limit, period, cost)[0].allowed
    if wait > 1000:
        assert not step(state, now + wait - 1000, limit, period, cost)[0].allowed


def check_reset_after(
    step: Any, state: Any, now: int, limit: int, period: int, reset_after: float
) -> None:
    """After ``reset_after`` the key is fully replenished."""
    assert step(state, now + ns(reset_after), limit, period, 0)[0].remaining == limit


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_admitted_cost_never_exceeds_the_definition(
    scenario: tuple[str, int, int, list[tuple[int, int]]],
) -> None:
    algorithm, limit, period, steps = scenario
    admitted = run(algorithm, limit, period, steps)
    if algorithm == "gcra":
        # Over any span t (from one admission to a later one, inclusive):
        # at most limit + floor(t * limit / period).
        for i, (start, _) in enumerate(admitted):
            total = 0
            for t, cost in admitted[i:]:
                total += cost
                assert total <= limit + (t - start) * limit // period
    elif algorithm == "sliding_window":
        # Any window [s, s + period) holds at most limit units.
        for i, (start, _) in enumerate(admitted):
            inside = sum(c for t, c in admitted[i:] if t < start + period)
            assert inside <= limit
    else:
        windows: dict[int, int] = {}
        for t, cost in admitted:
            windows[t // period] = windows.get(t // period, 0) + cost
        assert all(total <= limit for total in windows.values())


@settings(max_examples=200, deadline=None)
@given(algorithms, limits, periods)
def test_a_fresh_key_admits_a_full_burst(algorithm: str, limit: int, period: int) -> None:
    step = ALGORITHMS[algorithm].step
    state: Any = None
    for expected_remaining in range(limit - 1, -1, -1):
        decision, state = step(state, START, limit, period, 1)
        assert decision.allowed
        assert decision.remaining == expected_remaining


@settings(max_examples=200, deadline=None)
@given(algorithms, limits, periods, st.integers(0, 3), st.integers(1, 10**12))
def test_expired_state_decides_like_no_state(
    algorithm: str, limit: int, period: int, hits: int, later: int
) -> None:
    """Eviction is invisible: from ``expires_at`` on, the state acts as absent."""
    spec = ALGORITHMS[algorithm]
    state: Any = None
    for _ in range(min(hits, limit)):
        state = spec.step(state, START, limit, period, 1)[1]
    now = START + later
    if state is not None and spec.expires_at(state, period) <= now:
        for cost in range(limit + 1):
            assert (
                spec.step(state, now, limit, period, cost)[0]
                == spec.step(None, now, limit, period, cost)[0]
            )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(limits, st.sampled_from(["a", "b"])), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 3), st.floats(0, 2)), max_size=15),
)
def test_hit_all_is_all_or_nothing(
    shapes: list[tuple[int, str]], attempts: list[tuple[int, float]]
) -> None:
    clock = FakeClock()
    limiters = [
        RateLimiter(Rate(limit, 1.0), clock=clock, prefix=f"p{i}")
        for i, (limit, _) in enumerate(shapes)
    ]
    pairs = [(lim, key) for lim, (_, key) in zip(limiters, shapes, strict=True)]
    smallest = min(limit for limit, _ in shapes)
    for cost_seed, advance in attempts:
        clock.advance(advance)
        cost = 1 + cost_seed % smallest
        before = [lim.peek(key, 0).remaining for lim, key in pairs]
        individually = [lim.peek(key, cost).allowed for lim, key in pairs]
        decision = hit_all(pairs, cost=cost)
        after = [lim.peek(key, 0).remaining for lim, key in pairs]
        assert decision.allowed == all(individually)
        if decision.allowed:
            assert all(a < b for a, b in zip(after, before, strict=True))
        else:
            assert after == before
            assert decision.retry_after > 0


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 10),
    st.integers(1, 20),
    st.sampled_from([0.5, 1.0, 3.0]),
    st.lists(st.tuples(st.integers(0, 400_000), st.integers(1, 3)), max_size=40),
)
def test_token_bucket_admits_at_most_burst_plus_refill(
    limit: int, burst: int, per: float, steps: list[tuple[int, int]]
) -> None:
    """With ``burst``, over any span t at most burst + floor(t * limit / per)."""
    clock = FakeClock()
    limiter = RateLimiter(Rate(limit, per), burst=burst, clock=clock)
    admitted: list[tuple[int, int]] = []
    now_us = 0
    for advance_us, cost in steps:
        clock.advance(advance_us / 1e6)
        now_us += advance_us
        if cost <= burst and limiter.hit("k", cost).allowed:
            admitted.append((now_us, cost))
    for i, (start, _) in enumerate(admitted):
        total = 0
        for t, cost in admitted[i:]:
            total += cost
            assert total <= burst + (t - start) * limit // round(per * 1e6)
