"""retry(): backoff, jitter, limits, classification, refusals and the retry budget."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.breaker import CircuitBreaker, CircuitOpenError
from buttress.errors import ButtressError, ValidationError
from buttress.policies import Retry, RetryBudget, retry
from buttress.policies._retry import backoff_cap, refusal_retry_after
from buttress.result import Err, Ok
from buttress.testing import FakeClock


class Flaky:
    """Fails with ``error`` the first ``failures`` times, then returns ``"ok"``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("reset by peer")
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


class SlowDown(ButtressError):
    """Shaped like RateLimitExceeded: a buttress refusal with ``retry_after``."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__("slow down")


def recorder(clock: FakeClock) -> tuple[list[float], Retry]:
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        clock.advance(seconds)

    return delays, retry(attempts=4, base_delay=0.1, jitter=False, clock=clock, sleep=sleep)


def test_first_success_runs_once_without_sleeping() -> None:
    clock = FakeClock()
    delays, policy = recorder(clock)
    flaky = Flaky(0)
    assert policy.call(flaky) == "ok"
    assert flaky.calls == 1
    assert delays == []


def test_retryable_errors_are_retried_with_exponential_backoff() -> None:
    clock = FakeClock()
    delays, policy = recorder(clock)
    flaky = Flaky(3)
    assert policy.call(flaky) == "ok"
    assert flaky.calls == 4
    assert delays == pytest.approx([0.1, 0.2, 0.4])


def test_gives_up_after_attempts_with_a_note() -> None:
    clock = FakeClock()
    delays, policy = recorder(clock)
    flaky = Flaky(10)
    with pytest.raises(ConnectionError) as info:
        policy.call(flaky)
    assert flaky.calls == 4
    assert len(delays) == 3
    assert any("gave up after 4 attempt(s)" in note for note in info.value.__notes__)
    assert any("(attempts)" in note for note in info.value.__notes__)


def test_non_retryable_errors_propagate_at_once() -> None:
    clock = FakeClock()
    delays, policy = recorder(clock)
    flaky = Flaky(1, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input") as info:
        policy.call(flaky)
    assert flaky.calls == 1
    assert delays == []
    assert not getattr(info.value, "__notes__", [])


def test_retry_on_overrides_classification() -> None:
    clock = FakeClock()
    flaky = Flaky(2, KeyError("x"))
    assert retry(retry_on=KeyError, clock=clock).call(flaky) == "ok"
    flaky = Flaky(2, KeyError("x"))
    assert retry(retry_on=(KeyError, IndexError), clock=clock).call(flaky) == "ok"
    flaky = Flaky(2, KeyError("x"))
    assert retry(retry_on=lambda exc: isinstance(exc, LookupError), clock=clock).call(flaky) == "ok"
    flaky = Flaky(2, ConnectionError())
    with pytest.raises(ConnectionError):
        retry(retry_on=KeyError, clock=clock).call(flaky)


def test_circuit_open_is_never_retried() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("retry-open", clock=clock, registry=None, failure_threshold=1)
    breaker.force_open()
    delays, policy = recorder(clock)
    with pytest.raises(CircuitOpenError):
        policy.call(breaker.call, Flaky(0))
    assert delays == []


def test_retry_after_is_waited_only_when_asked_and_it_fits() -> None:
    clock = FakeClock()
    delays: list[float] = []
    flaky = Flaky(1, SlowDown(2.0))
    with pytest.raises(SlowDown):
        retry(clock=clock, sleep=delays.append).call(flaky)
    assert delays == []
    flaky = Flaky(1, SlowDown(2.0))
    polite = retry(clock=clock, sleep=delays.append, honor_retry_after=True, max_delay=5)
    assert polite.call(flaky) == "ok"
    assert delays == [2.0]
    flaky = Flaky(1, SlowDown(60.0))
    with pytest.raises(SlowDown) as info:
        polite.call(flaky)
    assert any("(refused)" in note for note in info.value.__notes__)


def test_refusal_is_recognised_by_shape() -> None:
    assert refusal_retry_after(SlowDown(1.5)) == 1.5
    assert refusal_retry_after(CircuitOpenError("b", 3.0)) == 3.0
    assert refusal_retry_after(ConnectionError()) is None
    plain = ButtressError("no retry_after")
    assert refusal_retry_after(plain) is None


def test_deadline_stops_retrying_before_overrunning() -> None:
    clock = FakeClock()
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        clock.advance(seconds)

    policy = retry(
        attempts=10, base_delay=1.0, jitter=False, deadline=3.5, clock=clock, sleep=sleep
    )
    with pytest.raises(ConnectionError) as info:
        policy.call(Flaky(10))
    assert delays == [1.0, 2.0]  # the next wait (4.0) would overrun 3.5 s
    assert any("(deadline)" in note for note in info.value.__notes__)


def test_full_jitter_stays_within_the_cap() -> None:
    clock = FakeClock()
    delays: list[float] = []
    policy = retry(
        attempts=6,
        base_delay=0.5,
        max_delay=2.0,
        clock=clock,
        sleep=delays.append,
        rng=random.Random(7),
    )
    with pytest.raises(ConnectionError):
        policy.call(Flaky(10))
    caps = [0.5, 1.0, 2.0, 2.0, 2.0]
    assert len(delays) == 5
    assert all(0 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == 5  # drawn, not fixed


@given(
    attempt=st.integers(1, 2000),
    base=st.floats(0.001, 5),
    multiplier=st.floats(1, 10),
    max_delay=st.floats(5, 600),
)
def test_backoff_cap_grows_and_is_bounded(
    attempt: int, base: float, multiplier: float, max_delay: float
) -> None:
    cap = backoff_cap(attempt, base, multiplier, max_delay)
    assert 0 <= cap <= max_delay
    assert backoff_cap(attempt + 1, base, multiplier, max_delay) >= cap
    assert backoff_cap(1, base, multiplier, max_delay) == min(base, max_delay)


def test_fake_clock_is_advanced_instead_of_sleeping() -> None:
    clock = FakeClock()
    policy = retry(attempts=3, base_delay=1.0, jitter=False, clock=clock)
    assert policy.call(Flaky(2)) == "ok"
    assert clock.monotonic() == pytest.approx(3.0)


async def test_async_retry_uses_clock_sleep() -> None:
    clock = FakeClock()
    calls = 0

    @retry(attempts=3, base_delay=1.0, jitter=False, clock=clock)
    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TimeoutError
        return "done"

    assert await fetch() == "done"
    assert calls == 3
    assert clock.monotonic() == pytest.approx(3.0)


async def test_async_retry_gives_up_and_execute_returns_err() -> None:
    clock = FakeClock()
    policy = retry(attempts=2, clock=clock)

    async def down() -> str:
        raise ConnectionError("down")

    async def up() -> str:
        return "up"

    result = await policy.aexecute(down)
    assert isinstance(result, Err)
    assert isinstance(result.error, ConnectionError)
    assert await policy.aexecute(up) == Ok("up")
    with pytest.raises(ConnectionError):
        await policy.acall(down)


def test_sync_decorator_and_execute() -> None:
    clock = FakeClock()
    flaky = Flaky(1)

    @retry(clock=clock)
    def fetch() -> str:
        return flaky()

    assert fetch() == "ok"
    assert fetch.__name__ == "fetch"
    assert retry(clock=clock).execute(Flaky(5)).is_err()


def test_budget_caps_retries_to_a_fraction_of_calls() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.25, min_retries_per_second=0, window=10, clock=clock)
    policy = retry(attempts=2, clock=clock, budget=budget, jitter=False)
    for _ in range(4):
        policy.call(Flaky(0))
    # A retry is allowed while retries + 1 <= 0.25 * calls seen so far.
    outcomes = []
    for _ in range(4):
        flaky = Flaky(5)
        with pytest.raises(ConnectionError) as info:
            policy.call(flaky)
        outcomes.append((flaky.calls, any("(budget)" in n for n in info.value.__notes__)))
    assert budget.calls == 8
    assert outcomes == [(2, False), (1, True), (1, True), (2, False)]


def test_budget_floor_allows_retries_when_quiet_and_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.0, min_retries_per_second=0.2, window=10, clock=clock)
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    clock.advance(10)  # the previous window still weighs fully at its end
    assert budget.try_spend() is False
    clock.advance(10)  # two windows later it is forgotten
    assert budget.try_spend() is True


def test_budget_validation() -> None:
    with pytest.raises(ValidationError) as info:
        RetryBudget(-1)
    assert info.value.field == "ratio"
    with pytest.raises(ValidationError) as info:
        RetryBudget(0.1, window=0)
    assert info.value.field == "window"
    with pytest.raises(ValidationError) as info:
        RetryBudget(0.1, min_retries_per_second=float("nan"))
    assert info.value.field == "min_retries_per_second"
    assert "ratio=0.1" in repr(RetryBudget(0.1))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"base_delay": -1}, "base_delay"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"base_delay": 5, "max_delay": 1}, "base_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"deadline": -1}, "deadline"),
        ({"retry_on": 3}, "retry_on"),
        ({"retry_on": (KeyError, 3)}, "retry_on"),
        ({"budget": 0.2}, "budget"),
        ({"clock": object()}, "clock"),
        ({"sleep": 3}, "sleep"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        retry(**options)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == field
    assert field in str(info.value)


def test_repr_names_the_limits() -> None:
    assert repr(retry(attempts=5, deadline=2)) == (
        "retry(attempts=5, base_delay=0.1, max_delay=10.0, deadline=2.0)"
    )


def test_rate_limit_refusals_are_not_retried() -> None:
    from buttress.ratelimit import Decision, RateLimitExceeded

    refusal = RateLimitExceeded(Decision(False, 10, 0, 5.0, 2.5))
    flaky = Flaky(1, refusal)
    delays: list[float] = []
    with pytest.raises(RateLimitExceeded):
        retry(clock=FakeClock(), sleep=delays.append).call(flaky)
    assert flaky.calls == 1
    assert delays == []
    assert refusal_retry_after(refusal) == 2.5
