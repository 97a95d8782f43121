"""CircuitBreaker's public contract, driven by a FakeClock (no test sleeps)."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta

import pytest

from buttress.breaker import (
    BreakerRegistry,
    BreakerState,
    BreakerStats,
    CallEvent,
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    CircuitBreaker,
    CircuitOpenError,
    StateChange,
    breakers,
)
from buttress.errors import ButtressError, ValidationError
from buttress.result import Err, Ok
from buttress.testing import FakeClock


class Boom(Exception):
    pass


class CallerMistake(Exception):
    pass


def ok() -> str:
    return "ok"


def boom() -> str:
    raise Boom("down")


def make(clock: FakeClock, **options: object) -> CircuitBreaker:
    options.setdefault("registry", None)
    return CircuitBreaker("dep", clock=clock, **options)  # type: ignore[arg-type]  # options are typed by the signature under test


def fail_times(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            breaker.call(boom)


def state_of(breaker: CircuitBreaker) -> BreakerState:
    # A call, not an attribute: mypy would otherwise narrow the property between asserts.
    return breaker.state


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_defaults_match_the_contract(clock: FakeClock) -> None:
    breaker = make(clock)
    assert breaker.name == "dep"
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.config.failure_threshold == 5
    assert breaker.config.recovery_timeout == 30.0
    assert breaker.config.half_open_max_calls == 1
    assert breaker.config.exclude == ()
    assert repr(breaker) == "CircuitBreaker('dep', state=closed)"


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=3)
    fail_times(breaker, 2)
    assert breaker.call(ok) == "ok"  # a success breaks the streak
    fail_times(breaker, 2)
    assert state_of(breaker) is BreakerState.CLOSED
    fail_times(breaker, 1)
    assert state_of(breaker) is BreakerState.OPEN


def test_open_rejects_without_calling(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=10)
    fail_times(breaker, 1)
    clock.advance(4)
    calls: list[int] = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(calls.append, 1)
    assert calls == []
    assert isinstance(info.value, ButtressError)
    assert info.value.breaker_name == "dep"
    assert info.value.retry_after == pytest.approx(6.0)
    assert "dep" in str(info.value)
    assert "6.000s" in str(info.value)
    assert breaker.stats().rejected_count == 1


def test_reads_half_open_as_soon_as_recovery_timeout_passed(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=10)
    fail_times(breaker, 1)
    clock.advance(9.999)
    assert state_of(breaker) is BreakerState.OPEN
    clock.advance(0.001)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.stats().state is BreakerState.HALF_OPEN


def test_probe_success_closes(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, recovery_timeout=10)
    fail_times(breaker, 2)
    clock.advance(10)
    assert breaker.call(ok) == "ok"
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.stats().consecutive_failures == 0
    fail_times(breaker, 1)
    assert state_of(breaker) is BreakerState.CLOSED  # the streak started again from zero


def test_probe_failure_reopens_for_a_full_timeout(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=10)
    fail_times(breaker, 1)
    clock.advance(15)
    fail_times(breaker, 1)
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == pytest.approx(10.0)


def test_half_open_admits_only_max_calls_probes(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=1, half_open_max_calls=2)
    fail_times(breaker, 1)
    clock.advance(1)
    inner: list[BaseException] = []
    with breaker, breaker:
        try:
            with breaker:
                pass
        except CircuitOpenError as exc:
            inner.append(exc)
        assert breaker.stats().probes_in_flight == 2
    assert len(inner) == 1
    assert state_of(breaker) is BreakerState.CLOSED


def test_excluded_exceptions_count_as_success(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, exclude=(CallerMistake,))

    def mistake() -> None:
        raise CallerMistake

    fail_times(breaker, 1)
    with pytest.raises(CallerMistake):
        breaker.call(mistake)
    fail_times(breaker, 1)
    assert state_of(breaker) is BreakerState.CLOSED
    stats = breaker.stats()
    assert (stats.failure_count, stats.success_count) == (2, 1)


def test_exclude_accepts_a_single_type(clock: FakeClock) -> None:
    breaker = make(clock, exclude=KeyError)
    assert breaker.config.exclude == (KeyError,)


def test_failure_on_exception_predicate(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, failure_on_exception=lambda exc: "fatal" in str(exc))

    def mild() -> None:
        raise Boom("mild")

    with pytest.raises(Boom):
        breaker.call(mild)
    assert state_of(breaker) is BreakerState.CLOSED
    with pytest.raises(Boom):
        breaker.call(lambda: (_ for _ in ()).throw(Boom("fatal")))
    assert state_of(breaker) is BreakerState.OPEN


def test_failure_on_result_counts_bad_values(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, failure_on_result=lambda status: status >= 500)
    assert breaker.call(lambda: 503) == 503  # returned unchanged, but counted as a failure
    assert breaker.call(lambda: 200) == 200
    assert breaker.call(lambda: 500) == 500
    assert breaker.call(lambda: 502) == 502
    assert state_of(breaker) is BreakerState.OPEN


def test_broken_result_predicate_counts_as_failure(clock: FakeClock) -> None:
    def broken(value: object) -> bool:
        raise RuntimeError("bug")

    breaker = make(clock, failure_threshold=1, failure_on_result=broken)
    assert breaker.call(ok) == "ok"
    assert state_of(breaker) is BreakerState.OPEN


def test_slow_calls_count_as_failures(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, slow_call_threshold=1.0)

    def slow() -> str:
        clock.advance(1.5)
        return "late"

    assert breaker.call(slow) == "late"
    assert breaker.call(slow) == "late"
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.stats().failure_count == 2


def test_failure_rate_over_count_window(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=None,
        failure_rate_threshold=0.5,
        window_size=4,
        minimum_calls=4,
    )
    fail_times(breaker, 3)
    assert state_of(breaker) is BreakerState.CLOSED  # below minimum_calls
    breaker.call(ok)
    assert state_of(breaker) is BreakerState.CLOSED  # the last outcome was a success
    fail_times(breaker, 1)  # window: F F S F -> 75 %
    assert state_of(breaker) is BreakerState.OPEN
    stats = breaker.stats()  # while open, the window shows what tripped it
    assert (stats.window_calls, stats.window_failures) == (4, 3)
    clock.advance(30)
    breaker.call(ok)
    assert breaker.stats().window_calls == 0  # closing starts a fresh window


def test_count_window_forgets_old_outcomes(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=None, failure_rate_threshold=0.5, window_size=4, minimum_calls=4
    )
    fail_times(breaker, 1)
    for _ in range(4):
        breaker.call(ok)
    fail_times(breaker, 1)  # window: S S S F -> 25 %
    assert state_of(breaker) is BreakerState.CLOSED
    assert (breaker.stats().window_calls, breaker.stats().window_failures) == (4, 1)


def test_failure_rate_over_time_window(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=None,
        failure_rate_threshold=0.5,
        window_duration=10.0,
        minimum_calls=3,
    )
    fail_times(breaker, 2)
    clock.advance(10.0)  # both failures leave the window
    breaker.call(ok)
    fail_times(breaker, 1)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.stats().window_calls == 2
    fail_times(breaker, 1)
    assert state_of(breaker) is BreakerState.OPEN


def test_consecutive_and_rate_triggers_combine(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, failure_rate_threshold=0.9, window_size=10)
    fail_times(breaker, 2)
    assert state_of(breaker) is BreakerState.OPEN


async def test_acall_and_async_decorator(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)

    @breaker
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    @breaker
    async def broken() -> None:
        raise Boom

    assert fetch.__name__ == "fetch"
    assert await fetch(21) == 42
    assert await breaker.acall(fetch.__wrapped__, 1) == 2  # type: ignore[attr-defined]  # set by functools.wraps
    for _ in range(2):
        with pytest.raises(Boom):
            await broken()
    with pytest.raises(CircuitOpenError):
        await fetch(1)


def test_sync_decorator_preserves_metadata_and_counts(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)

    @breaker
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        return a + b

    assert add(1, b=2) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert breaker.stats().success_count == 1
    fail_times(breaker, 1)
    with pytest.raises(CircuitOpenError):
        add(1)


def test_decorator_refuses_non_callables(clock: FakeClock) -> None:
    with pytest.raises(ValidationError) as info:
        make(clock)(42)  # type: ignore[call-overload]  # the point of the test
    assert info.value.field == "fn"


def test_with_block_counts_outcomes(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)
    with breaker:
        pass
    for _ in range(2):
        with pytest.raises(Boom), breaker:
            raise Boom
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("the block must not run")
    stats = breaker.stats()
    assert (stats.success_count, stats.failure_count, stats.rejected_count) == (1, 2, 1)


async def test_async_with_block_counts_outcomes(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    async with breaker:
        await asyncio.sleep(0)
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("the block must not run")


async def test_with_blocks_in_concurrent_tasks_do_not_mix(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    gate = asyncio.Event()

    async def good() -> None:
        async with breaker:
            await gate.wait()

    async def bad() -> None:
        async with breaker:
            await gate.wait()
            raise Boom

    tasks = [asyncio.create_task(good()), asyncio.create_task(bad())]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], Boom)
    assert breaker.stats().success_count == 1
    assert breaker.stats().failure_count == 1


def test_exit_without_enter_is_an_error(clock: FakeClock) -> None:
    with pytest.raises(RuntimeError):
        make(clock).__exit__(None, None, None)


def test_execute_never_raises(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    assert breaker.execute(ok) == Ok("ok")
    result = breaker.execute(boom)
    assert isinstance(result, Err)
    assert isinstance(result.error, Boom)
    refused = breaker.execute(ok)
    assert isinstance(refused, Err)
    assert isinstance(refused.error, CircuitOpenError)


async def test_aexecute_never_raises(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)

    async def aok() -> int:
        return 1

    async def aboom() -> int:
        raise Boom

    assert await breaker.aexecute(aok) == Ok(1)
    failed = await breaker.aexecute(aboom)
    assert isinstance(failed, Err)
    assert isinstance(failed.error, Boom)
    refused = await breaker.aexecute(aok)
    assert isinstance(refused, Err)
    assert isinstance(refused.error, CircuitOpenError)
    assert refused.error.retry_after == pytest.approx(30.0)


def test_stats_snapshot(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, recovery_timeout=10)
    start = clock.now()
    breaker.call(ok)
    clock.advance(1)
    fail_times(breaker, 1)
    clock.advance(1)
    fail_times(breaker, 1)
    clock.advance(2)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    stats = breaker.stats()
    assert stats == BreakerStats(
        name="dep",
        state=BreakerState.OPEN,
        failure_count=2,
        success_count=1,
        consecutive_failures=2,
        rejected_count=1,
        last_failure_at=start + timedelta(seconds=2),
        opened_at=start + timedelta(seconds=2),
    )


def test_stats_of_a_fresh_breaker(clock: FakeClock) -> None:
    stats = make(clock).stats()
    assert stats.state is BreakerState.CLOSED
    assert (stats.failure_count, stats.success_count, stats.rejected_count) == (0, 0, 0)
    assert stats.last_failure_at is None
    assert stats.opened_at is None


def test_on_state_change_reports_every_transition(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)
    changes: list[StateChange] = []

    @breaker.on_state_change
    def record(change: StateChange) -> None:
        changes.append(change)

    def broken_listener(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    breaker.on_state_change(broken_listener)
    fail_times(breaker, 1)
    clock.advance(5)
    breaker.call(ok)
    moves = [(c.old, c.new, c.reason) for c in changes]
    assert moves == [
        (BreakerState.CLOSED, BreakerState.OPEN, "trip"),
        (BreakerState.OPEN, BreakerState.HALF_OPEN, "recovery_elapsed"),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED, "probe_succeeded"),
    ]
    assert all(c.breaker == "dep" for c in changes)
    assert changes[0].at == clock.now() - timedelta(seconds=5)
    breaker.remove_listener(record)
    breaker.force_open()
    assert len(changes) == 3


def test_call_listeners_get_outcomes_with_durations(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    events: list[CallEvent] = []
    breaker.on_call(events.append)

    def slow_ok() -> str:
        clock.advance(0.25)
        return "ok"

    breaker.call(slow_ok)
    fail_times(breaker, 1)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    assert events[0] == CallSucceeded("dep", 0.25)
    assert isinstance(events[1], CallFailed)
    assert isinstance(events[1].error, Boom)
    assert events[2] == CallRejected("dep", 30.0)
    breaker.remove_listener(events.append)
    breaker.remove_listener(events.append)  # unknown: a no-op


def test_listener_registration_validates(clock: FakeClock) -> None:
    breaker = make(clock)
    with pytest.raises(ValidationError):
        breaker.on_call(None)  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(ValidationError):
        breaker.on_state_change("x")  # type: ignore[arg-type]  # the point of the test


def test_reset_closes_and_keeps_counters(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    fail_times(breaker, 1)
    breaker.reset()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.call(ok) == "ok"
    stats = breaker.stats()
    assert (stats.failure_count, stats.success_count, stats.consecutive_failures) == (1, 1, 0)


def test_force_open_holds_until_reset(clock: FakeClock) -> None:
    breaker = make(clock, recovery_timeout=10)
    breaker.force_open()
    clock.advance(1000)
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == 10
    breaker.reset()
    assert breaker.call(ok) == "ok"


def test_stale_outcome_from_before_opening_is_ignored(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)

    def slow_success() -> str:
        # While this call runs, another caller trips the breaker and time passes.
        fail_times(breaker, 1)
        clock.advance(5)
        return "late"

    assert breaker.call(slow_success) == "late"
    assert state_of(breaker) is BreakerState.HALF_OPEN  # the late success did not close it


def test_probe_permit_expires(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=1, probe_timeout=5)
    fail_times(breaker, 1)
    clock.advance(1)
    breaker.__enter__()  # a probe that never reports back
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == pytest.approx(1.0)  # capped by recovery_timeout
    clock.advance(5)
    assert breaker.call(ok) == "ok"
    assert state_of(breaker) is BreakerState.CLOSED


def test_interrupt_releases_the_probe(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=1)
    fail_times(breaker, 1)
    clock.advance(1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.stats().probes_in_flight == 0
    assert breaker.call(ok) == "ok"


async def test_cancelled_probe_releases_its_permit(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=1)
    fail_times(breaker, 1)
    clock.advance(1)
    events: list[CallEvent] = []
    breaker.on_call(events.append)
    task = asyncio.create_task(breaker.acall(asyncio.sleep, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance(events[-1], CallIgnored)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    await breaker.acall(asyncio.sleep, 0)
    assert state_of(breaker) is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": 1.5}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"recovery_timeout": 0}, "recovery_timeout"),
        ({"recovery_timeout": float("inf")}, "recovery_timeout"),
        ({"recovery_timeout": "5"}, "recovery_timeout"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"probe_timeout": -1}, "probe_timeout"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 0.5, "window_size": 0}, "window_size"),
        ({"failure_rate_threshold": 0.5, "window_duration": 0}, "window_duration"),
        ({"failure_rate_threshold": 0.5, "minimum_calls": 0}, "minimum_calls"),
        (
            {"failure_rate_threshold": 0.5, "window_size": 5, "window_duration": 5.0},
            "window_duration",
        ),
        ({"failure_rate_threshold": 0.5, "window_size": 5, "minimum_calls": 6}, "minimum_calls"),
        ({"window_size": 5}, "window_size"),
        ({"failure_threshold": None}, "failure_threshold"),
        ({"slow_call_threshold": 0}, "slow_call_threshold"),
        ({"exclude": (ValueError, 3)}, "exclude"),
        ({"exclude": "ValueError"}, "exclude"),
        ({"failure_on_result": 3}, "failure_on_result"),
        ({"failure_on_exception": "x"}, "failure_on_exception"),
        ({"clock": object()}, "clock"),
        ({"registry": {}}, "registry"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], field: str) -> None:
    options.setdefault("clock", FakeClock())
    options.setdefault("registry", None)
    with pytest.raises(ValidationError) as info:
        CircuitBreaker("dep", **options)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("name", ["", "  ", 3])
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(ValidationError) as info:
        CircuitBreaker(name, registry=None)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == "name"


def test_default_registry_finds_breakers_by_name(clock: FakeClock) -> None:
    breaker = CircuitBreaker("registry-demo", clock=clock)
    assert breakers.get("registry-demo") is breaker
    assert "registry-demo" in breakers
    assert "registry-demo" in breakers.names()
    assert breakers.stats()["registry-demo"].state is BreakerState.CLOSED
    breakers.unregister("registry-demo")
    assert "registry-demo" not in breakers


def test_registry_is_weak_and_newest_wins(clock: FakeClock) -> None:
    registry = BreakerRegistry()
    first = CircuitBreaker("a", clock=clock, registry=registry)
    second = CircuitBreaker("a", clock=clock, registry=registry)
    CircuitBreaker("b", clock=clock, registry=registry)
    gc.collect()
    assert registry.get("a") is second
    assert registry.names() == ["a"]
    assert list(registry) == [second]
    assert len(registry) == 1
    del first
    with pytest.raises(ValidationError) as info:
        registry.get("b")
    assert info.value.field == "name"
    registry.clear()
    assert len(registry) == 0


def test_memory_backend_keeps_state_local(clock: FakeClock) -> None:
    from buttress.backends import MemoryBackend

    breaker = make(clock, backend=MemoryBackend())
    assert breaker.call(ok) == "ok"


def test_importing_breakers_and_policies_loads_no_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys, buttress.breaker, buttress.policies; "
        "print(sorted(m for m in ('redis', 'asyncpg') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
