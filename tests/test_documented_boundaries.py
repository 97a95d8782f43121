"""Every boundary the docs state, as a fixed example on each side of it.

Property tests sample around a boundary but rarely land on it (a rollout bucket
equal to the threshold is one user in ten thousand), so a `<` changed to `<=`
survives them. Each test here sits exactly on a documented edge:

- docs/flags.md: "on iff the user's bucket < percentage";
- docs/breaker.md: the circuit opens when the failed fraction of the window
  *reaches* `failure_rate_threshold`, once `minimum_calls` outcomes were seen;
  `failure_threshold` consecutive failures open it; a call *at least*
  `slow_call_threshold` slow is a failure;
- docs/ratelimit.md: `hit_all` returns the refusal with the longest
  `retry_after` (on every backend); `Retry-After` is whole seconds, at least 1;
- docs/policies.md: a refusal's `retry_after` is waited when it *fits in*
  `max_delay` and the deadline; a wait that would *overrun* the deadline is not
  taken; backoff is capped at `max_delay`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from buttress import connect
from buttress.backends import Backend
from buttress.breaker import BreakerState, CircuitBreaker
from buttress.flags import Flag, FlagContext, Reason, bucket, evaluate
from buttress.policies import retry
from buttress.ratelimit import Decision, Rate, RateLimiter, RateLimitExceeded, ahit_all
from buttress.testing import FakeClock

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)

# -- flags: on iff bucket < percentage -----------------------------------------------------------

ROLLOUT_KEY = "boundary-rollout"


def user_in_bucket(key: str, wanted: int) -> str:
    """A user id whose bucket for ``key`` is exactly ``wanted`` (found by search)."""
    raw_bucket: Callable[[str, str], int] = bucket.__wrapped__  # skip the memo: ~10^4 misses
    for i in range(1_000_000):
        user = f"user-{i}"
        if raw_bucket(key, user) == wanted:
            assert bucket(key, user) == wanted  # the public, memoised function agrees
            return user
    raise AssertionError(f"no user id in bucket {wanted} among the first million")


@pytest.mark.parametrize("edge", [1, 2227, 5000, 9999])
def test_a_user_whose_bucket_equals_the_threshold_is_off(edge: int) -> None:
    user = FlagContext(user_in_bucket(ROLLOUT_KEY, edge))
    at_edge = Flag(ROLLOUT_KEY, "F", enabled=True, percentage=edge / 100)
    assert at_edge.threshold == edge  # percentage p admits buckets b with b / 100 < p
    result = evaluate(at_edge, user, NOW)
    assert (result.enabled, result.reason, result.bucket) == (False, Reason.PERCENTAGE, edge)
    # One resolution step (0.01 of a point) higher, the same user is on.
    above = Flag(ROLLOUT_KEY, "F", enabled=True, percentage=(edge + 1) / 100)
    result = evaluate(above, user, NOW)
    assert (result.enabled, result.reason, result.bucket) == (True, Reason.PERCENTAGE, edge)
    # And the bucket just below the edge is on at the edge itself.
    below = FlagContext(user_in_bucket(ROLLOUT_KEY, edge - 1))
    assert evaluate(at_edge, below, NOW).enabled


# -- breaker: the failure rate reaches the threshold ----------------------------------------------


def breaker(clock: FakeClock, **options: object) -> CircuitBreaker:
    return CircuitBreaker("edge", clock=clock, registry=None, **options)  # type: ignore[arg-type]  # options typed by the signature


def state_of(breaker: CircuitBreaker) -> BreakerState:
    # A call, not the property: mypy would narrow the property between asserts.
    return breaker.state


def outcome(breaker: CircuitBreaker, failed: bool) -> None:
    def call() -> str:
        if failed:
            raise ConnectionError("down")
        return "ok"

    if failed:
        with pytest.raises(ConnectionError):
            breaker.call(call)
    else:
        breaker.call(call)


@pytest.mark.parametrize(
    ("rate", "window", "failures"),
    [
        (0.5, 4, 2),  # 2 of 4 is 50 %
        (0.28, 25, 7),  # 7 of 25 is 28 %, though 0.28 * 25 is 7.000000000000001 in floats
        (0.55, 100, 55),  # 55.00000000000001 likewise
        (1.0, 3, 3),
    ],
)
def test_a_failure_rate_exactly_at_the_threshold_opens(
    rate: float, window: int, failures: int
) -> None:
    clock = FakeClock()
    edge = breaker(
        clock,
        failure_threshold=None,
        failure_rate_threshold=rate,
        window_size=window,
        minimum_calls=window,
    )
    for _ in range(window - failures):
        outcome(edge, failed=False)
    for _ in range(failures - 1):
        outcome(edge, failed=True)
    assert state_of(edge) is BreakerState.CLOSED  # one failure short of the rate
    outcome(edge, failed=True)  # the window now holds exactly `rate` failures
    assert state_of(edge) is BreakerState.OPEN
    assert (edge.stats().window_calls, edge.stats().window_failures) == (window, failures)


def test_the_rate_counts_only_from_exactly_minimum_calls() -> None:
    clock = FakeClock()
    edge = breaker(
        clock,
        failure_threshold=None,
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=4,
    )
    for _ in range(3):
        outcome(edge, failed=True)
    assert state_of(edge) is BreakerState.CLOSED  # 100 % of 3 calls, below minimum_calls
    outcome(edge, failed=True)  # the fourth outcome: minimum_calls reached
    assert state_of(edge) is BreakerState.OPEN


def test_exactly_failure_threshold_consecutive_failures_open() -> None:
    edge = breaker(FakeClock(), failure_threshold=3)
    outcome(edge, failed=True)
    outcome(edge, failed=True)
    assert state_of(edge) is BreakerState.CLOSED
    outcome(edge, failed=True)
    assert state_of(edge) is BreakerState.OPEN


def test_a_call_exactly_slow_call_threshold_long_is_a_failure() -> None:
    clock = FakeClock()
    edge = breaker(clock, failure_threshold=1, slow_call_threshold=2.0)

    def takes(seconds: float) -> Callable[[], str]:
        def call() -> str:
            clock.advance(seconds)
            return "late"

        return call

    assert edge.call(takes(1.5)) == "late"
    assert state_of(edge) is BreakerState.CLOSED
    assert edge.call(takes(2.0)) == "late"  # its result is still returned
    assert state_of(edge) is BreakerState.OPEN


# -- rate limits: hit_all's binding refusal, Retry-After ----------------------------------------


@pytest.fixture
async def backend(any_dsn: str) -> AsyncIterator[Backend]:
    async with connect(any_dsn) as opened:
        yield opened


@pytest.mark.parametrize("longest_first", [True, False])
async def test_hit_all_returns_the_refusal_with_the_longest_wait(
    backend: Backend, longest_first: bool
) -> None:
    short = RateLimiter(Rate(1, 10), backend=backend, prefix="short")
    long = RateLimiter(Rate(1, 1000), backend=backend, prefix="long")
    pairs = [(long, "k"), (short, "k")] if longest_first else [(short, "k"), (long, "k")]
    assert (await ahit_all(pairs)).allowed
    refused = await ahit_all(pairs)  # both refuse: one for ~10 s, the other for ~1000 s
    assert not refused.allowed
    assert 990 < refused.retry_after <= 1000, refused
    waits = sorted([(await short.apeek("k")).retry_after, (await long.apeek("k")).retry_after])
    assert waits[0] <= 10 < 990 < waits[1]  # both really refuse, with different waits


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        (0.0004, "1"),  # rounds to 0 whole seconds: the floor is 1
        (0.2, "1"),
        (1.0, "1"),
        (1.0004, "1"),  # GCRA's microsecond rounding must not read as 2
        (1.001, "2"),
        (30.0, "30"),
    ],
)
def test_retry_after_is_whole_seconds_and_at_least_one(retry_after: float, header: str) -> None:
    refused = Decision(False, 10, 0, retry_after, retry_after)
    assert refused.headers()["Retry-After"] == header
    assert "Retry-After" not in Decision(True, 10, 1, 0.0004, 0.0).headers()


# -- retry: the cap and the deadline -------------------------------------------------------------


class Refusing:
    """Refused once with ``retry_after``, then succeeds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls == 1:
            decision = Decision(False, 1, 0, self.retry_after, self.retry_after)
            raise RateLimitExceeded(decision)
        return "ok"


def test_a_retry_after_equal_to_max_delay_is_waited() -> None:
    waits: list[float] = []
    policy = retry(honor_retry_after=True, max_delay=5.0, clock=FakeClock(), sleep=waits.append)
    assert policy.call(Refusing(5.0)) == "ok"
    assert waits == [5.0]
    with pytest.raises(RateLimitExceeded) as info:
        policy.call(Refusing(5.000001))  # just past the cap: refused
    assert any("(refused)" in note for note in info.value.__notes__)
    assert waits == [5.0]


def test_a_retry_after_that_ends_exactly_at_the_deadline_is_waited() -> None:
    waits: list[float] = []
    policy = retry(
        honor_retry_after=True, deadline=2.0, clock=FakeClock(), sleep=waits.append
    )
    assert policy.call(Refusing(2.0)) == "ok"
    assert waits == [2.0]


def test_a_backoff_that_ends_exactly_at_the_deadline_is_taken() -> None:
    clock = FakeClock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    def down() -> str:
        raise ConnectionError("down")

    policy = retry(
        attempts=10, base_delay=1.0, jitter=False, deadline=3.0, clock=clock, sleep=sleep
    )
    with pytest.raises(ConnectionError) as info:
        policy.call(down)
    assert waits == [1.0, 2.0]  # 1 + 2 ends at the 3.0 s deadline; the next 4 s would overrun
    assert any("(deadline)" in note for note in info.value.__notes__)


def test_backoff_reaches_max_delay_and_stays_there() -> None:
    waits: list[float] = []

    def down() -> str:
        raise ConnectionError("down")

    policy = retry(
        attempts=5,
        base_delay=0.5,
        multiplier=2.0,
        max_delay=2.0,
        jitter=False,
        clock=FakeClock(),
        sleep=waits.append,
    )
    with pytest.raises(ConnectionError):
        policy.call(down)
    assert waits == [0.5, 1.0, 2.0, 2.0]  # attempts counts the first call: 5 calls, 4 waits
