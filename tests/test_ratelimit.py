"""RateLimiter in memory: validation, each algorithm's behaviour, peek/reset,
the decorator, hit_all, eviction, headers, threads and the outage policy."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest

from buttress.backends import MemoryBackend
from buttress.errors import BackendUnavailableError, ButtressError, ValidationError
from buttress.ratelimit import (
    Decision,
    Lease,
    Rate,
    RateLimiter,
    RateLimitExceeded,
    ahit_all,
    hit_all,
)
from buttress.ratelimit import _service as limiter_module
from buttress.ratelimit._store import MIN_SWEEP, Check, Now
from buttress.testing import FakeClock

ALGORITHMS = ["gcra", "sliding_window", "fixed_window"]


def make(
    limit: int = 3, per: float = 1.0, algorithm: str = "gcra"
) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(Rate(limit, per), algorithm=algorithm, clock=clock), clock


@pytest.mark.parametrize(
    ("limit", "per", "field"),
    [
        (0, 1.0, "limit"),
        (-1, 1.0, "limit"),
        (1.5, 1.0, "limit"),
        (True, 1.0, "limit"),
        (1, 0, "per_seconds"),
        (1, -1.0, "per_seconds"),
        (1, math.nan, "per_seconds"),
        (1, math.inf, "per_seconds"),
        (1, "1", "per_seconds"),
        (1, 1e-12, "per_seconds"),
    ],
)
def test_rate_refuses_bad_values(limit: object, per: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Rate(limit, per)  # type: ignore[arg-type]  # deliberately bad input
    assert info.value.field == field
    assert field in str(info.value)
    assert info.value.rule


def test_rate_exposes_period_in_nanoseconds() -> None:
    assert Rate(10, 0.5).per_ns == 500_000_000
    assert str(Rate(10, 60)) == "10/60s"


@pytest.mark.parametrize(
    ("value", "args", "field", "rule"),
    [
        (Rate, (1, "1"), "per_seconds", "must be a number of seconds"),
        (Lease, (1, "1"), "lease.seconds", "must be a number of seconds or None"),
        (Rate, (1, math.inf), "per_seconds", "must be finite and > 0"),
        (Lease, (1, 0), "lease.seconds", "must be finite and > 0"),
        (Rate, (1, 1e-12), "per_seconds", "must be at least one nanosecond"),
        (Lease, (1, 1e-12), "lease.seconds", "must be at least one nanosecond"),
        (Rate, (0, 1), "limit", "must be an integer >= 1"),
        (Lease, (True, None), "lease.units", "must be an integer >= 1"),
    ],
)
def test_rate_and_lease_share_their_rules(
    value: Callable[..., object], args: tuple[object, ...], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as info:
        value(*args)
    assert (info.value.field, info.value.rule) == (field, rule)
    assert Lease(1).seconds is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"algorithm": "leaky"}, "algorithm"),
        ({"prefix": ""}, "prefix"),
        ({"on_backend_error": "ignore"}, "on_backend_error"),
        ({"fallback": object()}, "fallback"),
    ],
)
def test_limiter_refuses_bad_options(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RateLimiter(Rate(1, 1), **kwargs)  # type: ignore[arg-type]  # deliberately bad input
    assert info.value.field == field


def test_limiter_refuses_a_non_rate() -> None:
    with pytest.raises(ValidationError, match="rate"):
        RateLimiter((1, 1))  # type: ignore[arg-type]  # deliberately bad input


@pytest.mark.parametrize("cost", [0, -1, 4, 1.0, True])
def test_hit_refuses_bad_costs(cost: object) -> None:
    limiter, _ = make(limit=3)
    with pytest.raises(ValidationError) as info:
        limiter.hit("k", cost)  # type: ignore[arg-type]  # deliberately bad input
    assert info.value.field == "cost"


def test_cost_above_limit_is_refused_naming_the_limit() -> None:
    limiter, _ = make(limit=3)
    with pytest.raises(ValidationError, match=r"limit \(3\)"):
        limiter.hit("k", 4)


def test_key_must_be_a_string() -> None:
    limiter, _ = make()
    with pytest.raises(ValidationError, match="key"):
        limiter.hit(42)  # type: ignore[arg-type]  # deliberately bad input


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_burst_up_to_limit_then_refused(algorithm: str) -> None:
    limiter, _ = make(limit=3, algorithm=algorithm)
    decisions = [limiter.hit("alice") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.limit == 3 for d in decisions)
    assert decisions[0].retry_after == 0.0
    assert decisions[3].retry_after > 0
    # Other keys are independent.
    assert limiter.hit("bob").allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_waiting_retry_after_lets_the_request_pass(algorithm: str) -> None:
    limiter, clock = make(limit=3, algorithm=algorithm)
    for _ in range(3):
        limiter.hit("k")
    refused = limiter.hit("k")
    assert not refused.allowed
    clock.advance(refused.retry_after)
    assert limiter.hit("k").allowed


def test_gcra_refills_one_unit_per_interval() -> None:
    limiter, clock = make(limit=4, per=2.0)
    for _ in range(4):
        assert limiter.hit("k").allowed
    refused = limiter.hit("k")
    assert refused.retry_after == pytest.approx(0.5)
    assert refused.reset_after == pytest.approx(2.0)
    clock.advance(0.5)
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed


def test_fixed_window_is_aligned_to_the_epoch() -> None:
    # 2024-01-01T00:00:59.5Z: half a second before a minute boundary.
    clock = FakeClock(datetime(2024, 1, 1, 0, 0, 59, 500000, tzinfo=UTC))
    limiter = RateLimiter(Rate(2, 60), algorithm="fixed_window", clock=clock)
    assert limiter.hit("k").allowed
    assert limiter.hit("k").allowed
    refused = limiter.hit("k")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    fresh = limiter.hit("k")
    assert fresh.allowed
    assert fresh.remaining == 1
    assert fresh.reset_after == pytest.approx(60.0)


def test_sliding_window_has_no_boundary_burst() -> None:
    limiter, clock = make(limit=2, per=10.0, algorithm="sliding_window")
    clock.advance(9.0)
    assert limiter.hit("k").allowed
    assert limiter.hit("k").allowed
    clock.advance(2.0)  # a fixed window would have reset here
    refused = limiter.hit("k")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(8.0)
    clock.advance(8.0)
    assert limiter.hit("k").allowed


def test_sliding_window_retry_after_accounts_for_cost() -> None:
    limiter, clock = make(limit=3, per=10.0, algorithm="sliding_window")
    limiter.hit("k")
    clock.advance(1.0)
    limiter.hit("k")
    clock.advance(1.0)
    limiter.hit("k")
    # Two units are needed: the two oldest must leave the window.
    refused = limiter.hit("k", 2)
    assert refused.retry_after == pytest.approx(9.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_peek_consumes_nothing(algorithm: str) -> None:
    limiter, _ = make(limit=3, algorithm=algorithm)
    limiter.hit("k")
    before = limiter.peek("k", 0)
    assert before.remaining == 2
    would = limiter.peek("k", 2)
    assert would.allowed
    assert would.remaining == 0
    assert limiter.peek("k", 0) == before
    assert limiter.hit("k", 2).allowed
    assert not limiter.peek("k").allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_reset_forgets_a_key(algorithm: str) -> None:
    limiter, _ = make(limit=1, algorithm=algorithm)
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    limiter.reset("k")
    assert limiter.hit("k").allowed


async def test_async_twins_share_state_with_sync() -> None:
    limiter, _ = make(limit=2)
    assert (await limiter.ahit("k")).allowed
    assert limiter.hit("k").allowed
    assert not (await limiter.apeek("k")).allowed
    await limiter.areset("k")
    assert (await limiter.apeek("k", 0)).remaining == 2


def test_headers_when_allowed() -> None:
    decision = Decision(True, 10, 7, 4.2, 0.0)
    assert decision.headers(window=60) == {
        "RateLimit-Policy": '"default";q=10;w=60',
        "RateLimit": '"default";r=7;t=5',
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Reset": "5",
    }


def test_headers_when_refused_carry_retry_after() -> None:
    headers = Decision(False, 10, 0, 30.0, 0.2).headers(policy="api")
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit-Policy"] == '"api";q=10'
    assert headers["RateLimit"] == '"api";r=0;t=30'


def test_gcra_reset_reads_as_whole_period_in_headers() -> None:
    limiter, _ = make(limit=3, per=1.0)
    for _ in range(3):
        last = limiter.hit("k")
    assert last.headers()["X-RateLimit-Reset"] == "1"


def test_decorator_on_sync_function() -> None:
    limiter, _ = make(limit=2)
    calls: list[str] = []

    @limiter.limit(key=lambda user: user)
    def handle(user: str) -> str:
        calls.append(user)
        return user.upper()

    assert handle("ann") == "ANN"
    assert handle("ann") == "ANN"
    with pytest.raises(RateLimitExceeded) as info:
        handle("ann")
    assert isinstance(info.value, ButtressError)
    assert info.value.decision.allowed is False
    assert info.value.retry_after == info.value.decision.retry_after > 0
    assert handle("bob") == "BOB"
    assert calls == ["ann", "ann", "bob"]


async def test_decorator_on_async_function_with_cost() -> None:
    limiter, _ = make(limit=5)

    @limiter.limit(key="upstream", cost=lambda n: n)
    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n

    assert await fetch(3) == 3
    with pytest.raises(RateLimitExceeded):
        await fetch(3)
    assert await fetch(2) == 2


def test_decorator_validates_fixed_cost() -> None:
    limiter, _ = make(limit=2)
    with pytest.raises(ValidationError, match="cost"):
        limiter.limit(cost=3)


def test_hit_all_is_all_or_nothing() -> None:
    clock = FakeClock()
    per_user = RateLimiter(Rate(5, 60), clock=clock, prefix="user")
    global_ = RateLimiter(Rate(2, 60), clock=clock, prefix="global")
    assert hit_all([(per_user, "ann"), (global_, "all")]).allowed
    assert hit_all([(per_user, "bob"), (global_, "all")]).allowed
    refused = hit_all([(per_user, "cid"), (global_, "all")])
    assert not refused.allowed
    assert refused.limit == 2  # the binding limit is the global one
    # The refused request consumed nothing from the per-user limit.
    assert per_user.peek("cid", 0).remaining == 5


def test_hit_all_returns_the_tightest_admission() -> None:
    clock = FakeClock()
    loose = RateLimiter(Rate(10, 1), clock=clock, prefix="loose")
    tight = RateLimiter(Rate(3, 1), clock=clock, prefix="tight")
    decision = hit_all([(loose, "k"), (tight, "k")])
    assert decision.allowed
    assert (decision.limit, decision.remaining) == (3, 2)


def test_hit_all_sees_a_repeated_key_twice() -> None:
    limiter, _ = make(limit=3)
    assert hit_all([(limiter, "k"), (limiter, "k")], cost=1).allowed
    assert not hit_all([(limiter, "k"), (limiter, "k")], cost=1).allowed
    assert limiter.peek("k", 0).remaining == 1


async def test_ahit_all_in_memory() -> None:
    limiter, _ = make(limit=1)
    assert (await ahit_all([(limiter, "a"), (limiter, "b")])).allowed
    assert not (await ahit_all([(limiter, "a"), (limiter, "c")])).allowed
    assert limiter.peek("c", 0).remaining == 1


def test_hit_all_validates_its_pairs() -> None:
    limiter, _ = make(limit=2)
    with pytest.raises(ValidationError, match="limits"):
        hit_all([])
    with pytest.raises(ValidationError, match="cost"):
        hit_all([(limiter, "k")], cost=3)


def test_limiters_on_one_memory_backend_share_state() -> None:
    backend = MemoryBackend()
    clock = FakeClock()
    a = RateLimiter(Rate(2, 1), backend=backend, clock=clock)
    b = RateLimiter(Rate(2, 1), backend=backend, clock=clock)
    other = RateLimiter(Rate(2, 1), clock=clock)
    assert a.hit("k").allowed
    assert b.hit("k").allowed
    assert not a.hit("k").allowed
    assert other.hit("k").allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_quiet_keys_are_evicted(algorithm: str) -> None:
    # The million-key case scaled down: 20_000 keys go quiet, then new keys
    # arrive; the table is rebuilt instead of growing to 40_000.
    limiter, clock = make(limit=5, per=1.0, algorithm=algorithm)
    table = limiter._table
    assert table is not None
    for i in range(20_000):
        limiter.hit(f"old-{i}")
    assert len(table.data) > 10_000
    clock.advance(2.0)
    for i in range(20_000):
        limiter.hit(f"new-{i}")
    assert len(table.data) <= 20_000
    assert not any(key.startswith("old-") for key in table.data)
    clock.advance(2.0)
    limiter.hit("last", 1)
    assert len(table.data) <= 20_001
    assert table.sweep_at >= MIN_SWEEP


def test_eviction_keeps_live_keys() -> None:
    limiter, _ = make(limit=1, per=60.0)
    for i in range(3 * MIN_SWEEP):
        limiter.hit(f"k{i}")
    assert all(not limiter.hit(f"k{i}").allowed for i in range(3 * MIN_SWEEP))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_threads_never_over_admit(algorithm: str) -> None:
    limiter = RateLimiter(Rate(100, 3600), algorithm=algorithm)
    admitted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = sum(limiter.hit("shared").allowed for _ in range(200))
        with lock:
            admitted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 100


def test_repr_names_rate_and_algorithm() -> None:
    limiter, _ = make(limit=3, per=60.0, algorithm="fixed_window")
    assert repr(limiter) == "RateLimiter(3/60s, algorithm='fixed_window', backend=memory)"
    assert limiter.rate == Rate(3, 60.0)
    assert limiter.algorithm == "fixed_window"


class _FailingStore:
    kind = "redis"

    def __init__(self) -> None:
        self.fail = True

    def decide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        raise BackendUnavailableError("down")

    async def adecide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        if self.fail:
            raise BackendUnavailableError("down")
        return [Decision(True, c[2], c[2] - c[4], 0.0, 0.0) for c in checks]

    def reset(self, keys: Sequence[str]) -> None:
        raise BackendUnavailableError("down")

    async def areset(self, keys: Sequence[str]) -> None:
        raise BackendUnavailableError("down")


@pytest.fixture
def failing_store() -> _FailingStore:
    return _FailingStore()


async def test_outage_policy_raise_by_default(failing_store: _FailingStore) -> None:
    limiter = RateLimiter(Rate(2, 1), backend=failing_store)
    with pytest.raises(BackendUnavailableError):
        await limiter.ahit("k")


async def test_outage_policy_allow_and_deny(failing_store: _FailingStore) -> None:
    allow = RateLimiter(Rate(2, 1), backend=failing_store, on_backend_error="allow")
    deny = RateLimiter(Rate(2, 1), backend=failing_store, on_backend_error="deny")
    assert (await allow.ahit("k")).allowed
    refused = await deny.ahit("k")
    assert not refused.allowed
    assert refused.retry_after == limiter_module.OUTAGE_RETRY_AFTER


async def test_outage_uses_the_fallback_limiter_and_logs_once(
    failing_store: _FailingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    class Recorder:
        def warning(self, event: str, **kw: object) -> None:
            events.append(event)

        def info(self, event: str, **kw: object) -> None:
            events.append(event)

    monkeypatch.setattr(limiter_module, "_logger", Recorder())
    fallback = RateLimiter(Rate(1, 60))
    limiter = RateLimiter(Rate(100, 1), backend=failing_store, fallback=fallback)
    assert (await limiter.ahit("k")).allowed
    assert not (await limiter.ahit("k")).allowed
    assert events == ["ratelimit.backend_unavailable"]
    failing_store.fail = False
    assert (await limiter.ahit("k")).allowed
    assert events == ["ratelimit.backend_unavailable", "ratelimit.backend_recovered"]


async def test_limiters_share_a_connected_memory_backend() -> None:
    from buttress import connect

    async with connect("memory://") as backend:
        clock = FakeClock()
        a = RateLimiter(Rate(1, 60), backend=backend, clock=clock)
        b = RateLimiter(Rate(1, 60), backend=backend, clock=clock)
        assert a.hit("k").allowed
        assert not b.hit("k").allowed


def test_burst_makes_a_token_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(2, 1.0), burst=5, clock=clock)
    assert (limiter.capacity, limiter.window) == (5, 2.5)
    decisions = [limiter.hit("k") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[0].limit == 5
    assert decisions[5].retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    clock.advance(10.0)
    assert limiter.peek("k", 0).remaining == 5


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"burst": 0}, "integer >= 1"),
        ({"burst": 2.5}, "integer >= 1"),
        ({"burst": 3, "algorithm": "fixed_window"}, "gcra"),
    ],
)
def test_burst_is_validated(kwargs: dict[str, object], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule) as info:
        RateLimiter(Rate(2, 1.0), **kwargs)  # type: ignore[arg-type]  # deliberately bad input
    assert info.value.field == "burst"


def test_capacity_and_window_without_burst() -> None:
    limiter, _ = make(limit=7, per=30.0, algorithm="sliding_window")
    assert (limiter.capacity, limiter.window) == (7, 30.0)
