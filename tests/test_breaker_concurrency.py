"""Half-open probe limits under asyncio and threads, and calls never serialised."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from buttress.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from buttress.testing import FakeClock


class Boom(Exception):
    pass


def half_open_breaker(max_calls: int) -> CircuitBreaker:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "probe",
        clock=clock,
        registry=None,
        failure_threshold=1,
        recovery_timeout=5,
        half_open_max_calls=max_calls,
    )

    def boom() -> None:
        raise Boom

    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(5)
    assert breaker.state is BreakerState.HALF_OPEN
    return breaker


@pytest.mark.parametrize("max_calls", [1, 3])
async def test_100_async_callers_in_half_open(max_calls: int) -> None:
    breaker = half_open_breaker(max_calls)
    gate = asyncio.Event()
    reached = 0

    async def dependency() -> str:
        nonlocal reached
        reached += 1
        await gate.wait()
        return "ok"

    tasks = [asyncio.create_task(breaker.acall(dependency)) for _ in range(100)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert reached == max_calls
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == max_calls
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 100 - max_calls
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("max_calls", [1, 4])
def test_16_threads_in_half_open(max_calls: int) -> None:
    breaker = half_open_breaker(max_calls)
    release = threading.Event()
    start = threading.Barrier(16)
    counter_lock = threading.Lock()
    reached = 0
    outcomes: list[str] = []

    def dependency() -> str:
        nonlocal reached
        with counter_lock:
            reached += 1
        release.wait(10)
        return "ok"

    def worker() -> None:
        start.wait(10)
        try:
            result = breaker.call(dependency)
        except CircuitOpenError:
            result = "rejected"
        with counter_lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    # Wait until every thread was either refused (and recorded) or is inside the
    # dependency; more than max_calls inside would still add up to 16.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with counter_lock:
            if len(outcomes) + reached == 16:
                break
        time.sleep(0.001)
    with counter_lock:
        assert reached == max_calls
        assert outcomes.count("rejected") == 16 - max_calls
    release.set()
    for thread in threads:
        thread.join(10)
    assert outcomes.count("ok") == max_calls
    assert breaker.state is BreakerState.CLOSED


def test_threads_run_the_protected_call_in_parallel() -> None:
    breaker = CircuitBreaker("parallel", registry=None, slow_call_threshold=10.0)
    # If the breaker held a lock around the call, this barrier could never fill.
    inside = threading.Barrier(4, timeout=5)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            breaker.call(inside.wait)
        except threading.BrokenBarrierError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []


def test_a_default_breaker_lets_four_threads_into_the_call_at_once() -> None:
    # The breaker without options (no timing, no listener: the leanest path). If it
    # serialised calls, the second thread could never reach the barrier and all four
    # would break it after the hang guard. (benchmarks/concurrency.py times it.)
    breaker = CircuitBreaker("sleepy", registry=None)
    inside = threading.Barrier(4, timeout=10)
    met: list[int] = []

    def meet() -> None:
        met.append(inside.wait())

    threads = [threading.Thread(target=breaker.call, args=(meet,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert sorted(met) == [0, 1, 2, 3], "calls were serialised: the barrier never filled"
    assert breaker.stats().success_count == 4


async def test_async_calls_run_concurrently() -> None:
    breaker = CircuitBreaker("async-parallel", registry=None)
    inside = asyncio.Barrier(10)

    async def meet() -> None:
        async with asyncio.timeout(5):
            await inside.wait()

    await asyncio.gather(*(breaker.acall(meet) for _ in range(10)))
    assert breaker.stats().success_count == 10


def test_counters_stay_exact_under_thread_contention() -> None:
    breaker = CircuitBreaker("contended", registry=None, failure_threshold=10_000)
    start = threading.Barrier(8)

    def boom() -> None:
        raise Boom

    def worker() -> None:
        start.wait(10)
        for i in range(500):
            if i % 5 == 0:
                with contextlib.suppress(Boom):
                    breaker.call(boom)
            else:
                breaker.call(int)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    stats = breaker.stats()
    assert stats.failure_count == 8 * 100
    assert stats.success_count == 8 * 400
    assert stats.state is BreakerState.CLOSED
