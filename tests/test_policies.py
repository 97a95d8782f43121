"""timeout, bulkhead, fallback and their composition (with circuit breakers) in pipelines."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from buttress.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from buttress.errors import ButtressError, ValidationError
from buttress.policies import (
    BulkheadFullError,
    Pipeline,
    Policy,
    PolicyTimeoutError,
    SyncCallNotSupportedError,
    bulkhead,
    fallback,
    retry,
    timeout,
)
from buttress.result import Err, Ok
from buttress.testing import FakeClock


async def forever() -> str:
    await asyncio.Event().wait()
    return "never"


async def quick(value: str = "fast") -> str:
    await asyncio.sleep(0)
    return value


async def test_timeout_passes_fast_calls_through() -> None:
    assert await timeout(1.0).acall(quick, "x") == "x"


async def test_timeout_cancels_slow_calls() -> None:
    cancelled = False

    async def slow() -> str:
        nonlocal cancelled
        try:
            return await forever()
        except asyncio.CancelledError:
            cancelled = True
            raise

    with pytest.raises(PolicyTimeoutError) as info:
        await timeout(0.01).acall(slow)
    assert cancelled
    assert info.value.seconds == 0.01
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, ButtressError)
    assert "0.01s" in str(info.value)


async def test_timeout_lets_the_calls_own_timeout_error_through() -> None:
    async def own() -> None:
        raise TimeoutError("from the driver")

    with pytest.raises(TimeoutError, match="from the driver") as info:
        await timeout(5).acall(own)
    assert not isinstance(info.value, PolicyTimeoutError)


async def test_timeout_decorates_and_executes() -> None:
    @timeout(0.01)
    async def stuck() -> str:
        return await forever()

    with pytest.raises(PolicyTimeoutError):
        await stuck()
    result = await timeout(0.01).aexecute(forever)
    assert isinstance(result, Err)
    assert isinstance(result.error, PolicyTimeoutError)
    assert await timeout(1).aexecute(quick) == Ok("fast")


def test_timeout_refuses_sync_calls_naming_acall() -> None:
    with pytest.raises(SyncCallNotSupportedError, match="acall"):
        timeout(1).call(lambda: 1)
    assert timeout(1).execute(lambda: 1).is_err()

    @timeout(1)
    def sync() -> int:
        return 1

    with pytest.raises(TypeError):
        sync()


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), True, "1"])
def test_timeout_validates(seconds: object) -> None:
    with pytest.raises(ValidationError) as info:
        timeout(seconds)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == "seconds"


async def test_bulkhead_runs_queues_and_rejects_async() -> None:
    limit = bulkhead(2, max_queue=1)
    gate = asyncio.Event()
    started: list[int] = []

    async def work(i: int) -> int:
        started.append(i)
        await gate.wait()
        return i

    tasks = [asyncio.create_task(limit.acall(work, i)) for i in range(4)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert started == [0, 1]
    assert (limit.active, limit.queued) == (2, 1)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:3] == [0, 1, 2]
    assert isinstance(results[3], BulkheadFullError)
    assert (limit.active, limit.queued) == (0, 0)


async def test_bulkhead_queue_timeout_and_cancellation() -> None:
    limit = bulkhead(1, max_queue=2, queue_timeout=0.01)
    hold = asyncio.Event()
    holder = asyncio.create_task(limit.acall(hold.wait))
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFullError) as info:
        await limit.acall(quick)
    assert info.value.max_concurrent == 1
    assert limit.queued == 0
    waiting = asyncio.create_task(bulkhead_wait(limit))
    await asyncio.sleep(0)
    assert limit.queued == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limit.queued == 0
    hold.set()
    await holder
    assert limit.active == 0


async def bulkhead_wait(limit: Policy) -> str:
    return await limit.acall(quick)


def test_bulkhead_limits_threads() -> None:
    limit = bulkhead(2, max_queue=1, name="pool")
    release = threading.Event()
    entered = threading.Semaphore(0)
    results: list[object] = []
    lock = threading.Lock()

    def work() -> str:
        entered.release()
        release.wait(10)
        return "done"

    def worker() -> None:
        try:
            outcome: object = limit.call(work)
        except BulkheadFullError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert entered.acquire(timeout=10)
    assert entered.acquire(timeout=10)
    queued = threading.Thread(target=worker)
    queued.start()
    deadline = time.monotonic() + 10
    while limit.queued == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(BulkheadFullError) as info:
        limit.call(work)
    assert "pool" in str(info.value)
    release.set()
    for thread in [*threads, queued]:
        thread.join(10)
    assert results == ["done", "done", "done"]
    assert (limit.active, limit.queued) == (0, 0)


def test_bulkhead_sync_queue_timeout() -> None:
    limit = bulkhead(1, max_queue=1, queue_timeout=0.01)
    release = threading.Event()
    holder = threading.Thread(target=limit.call, args=(release.wait, 10))
    holder.start()
    deadline = time.monotonic() + 10
    while limit.active == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(BulkheadFullError):
        limit.call(lambda: None)
    assert limit.queued == 0
    release.set()
    holder.join(10)
    assert limit.call(lambda: "free") == "free"


def test_bulkhead_without_queue_rejects_at_once_and_releases_on_error() -> None:
    limit = bulkhead(1)

    def boom() -> None:
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        limit.call(boom)
    assert limit.active == 0

    def nested() -> object:
        return limit.execute(lambda: "inner")

    refused = limit.call(nested)
    assert isinstance(refused, Err)
    assert isinstance(refused.error, BulkheadFullError)
    assert repr(limit) == "bulkhead(1, max_queue=0)"


@pytest.mark.parametrize(
    ("args", "options", "field"),
    [
        ((0,), {}, "max_concurrent"),
        ((1.5,), {}, "max_concurrent"),
        ((1,), {"max_queue": -1}, "max_queue"),
        ((1,), {"queue_timeout": 0}, "queue_timeout"),
        ((1,), {"name": ""}, "name"),
    ],
)
def test_bulkhead_validates(
    args: tuple[object, ...], options: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        bulkhead(*args, **options)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == field


def test_fallback_value_and_factory() -> None:
    def boom() -> str:
        raise KeyError("missing")

    assert fallback("default").call(boom) == "default"
    assert fallback(factory=lambda exc: f"from {type(exc).__name__}").call(boom) == "from KeyError"
    assert fallback("default").call(lambda: "real") == "real"

    @fallback([], on=KeyError)
    def items() -> list[str]:
        raise KeyError

    assert items() == []


def test_fallback_only_catches_what_it_is_told() -> None:
    def boom() -> str:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        fallback("x", on=KeyError).call(boom)
    with pytest.raises(ValueError, match="no"):
        fallback("x", on=(KeyError, IndexError)).call(boom)
    assert fallback("x", on=lambda exc: "no" in str(exc)).call(boom) == "x"


async def test_fallback_async_factory_and_refusals() -> None:
    breaker = CircuitBreaker("fb", registry=None, clock=FakeClock())
    breaker.force_open()

    async def cached(exc: Exception) -> str:
        return f"cached ({type(exc).__name__})"

    policy = fallback(factory=cached, on=CircuitOpenError) >> breaker
    assert await policy.acall(quick) == "cached (CircuitOpenError)"
    assert await fallback("v").acall(quick) == "fast"


async def test_fallback_value_is_returned_as_given_even_when_awaitable() -> None:
    # Only a factory's awaitable is awaited; a value is the caller's answer as it is.
    async def boom() -> object:
        raise KeyError

    marker = asyncio.sleep(0, "inner")
    try:
        assert await fallback(marker).acall(boom) is marker
    finally:
        marker.close()


def test_fallback_sync_refuses_async_factory() -> None:
    async def cached(exc: Exception) -> str:
        return "x"

    def boom() -> str:
        raise KeyError

    with pytest.raises(ValidationError) as info:
        fallback(factory=cached).call(boom)
    assert info.value.field == "factory"


def test_fallback_validates() -> None:
    with pytest.raises(ValidationError):
        fallback()
    with pytest.raises(ValidationError):
        fallback(1, factory=lambda exc: 2)
    with pytest.raises(ValidationError) as info:
        fallback(1, on=3)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == "on"
    with pytest.raises(ValidationError):
        fallback(1, on=(KeyError, "x"))  # type: ignore[arg-type]  # bad on purpose
    with pytest.raises(ValidationError) as info:
        fallback(factory=3)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == "factory"


def test_pipeline_runs_outermost_first() -> None:
    order: list[str] = []

    class Tag(Policy):
        def __init__(self, name: str) -> None:
            self.name = name

        def call(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]  # test double
            order.append(self.name)
            return fn(*args, **kwargs)

    pipeline = Tag("a") >> Tag("b") >> Tag("c")
    assert isinstance(pipeline, Pipeline)
    assert len(pipeline.guards) == 3
    assert pipeline.call(lambda: "done") == "done"
    assert order == ["a", "b", "c"]


def test_retry_outside_breaker_stops_when_the_circuit_opens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("dep", clock=clock, registry=None, failure_threshold=2)
    calls = 0

    def down() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    policy = retry(attempts=5, clock=clock, jitter=False) >> breaker
    with pytest.raises(CircuitOpenError):
        policy.call(down)
    assert calls == 2  # the third attempt met an open circuit, and refusals are not retried
    assert breaker.state is BreakerState.OPEN


async def test_full_async_pipeline() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("api", clock=clock, registry=None, failure_threshold=3)
    attempts = 0

    async def sometimes_stuck() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return await forever()
        return "answer"

    policy = fallback("fallback") >> retry(attempts=3, clock=clock) >> breaker >> timeout(0.01)
    assert "retry(attempts=3" in repr(policy)
    assert await policy.acall(sometimes_stuck) == "answer"
    assert attempts == 2
    stats = breaker.stats()
    assert (stats.failure_count, stats.success_count) == (1, 1)

    @policy
    async def always_stuck() -> str:
        return await forever()

    assert await always_stuck() == "fallback"
    assert breaker.state is BreakerState.OPEN
    assert await policy.aexecute(quick) == Ok("fallback")


def test_breaker_starts_a_pipeline_and_pipelines_flatten() -> None:
    breaker = CircuitBreaker("left", registry=None, clock=FakeClock())
    inner = fallback(1) >> fallback(2)
    pipeline = breaker >> inner
    assert len(pipeline.guards) == 3
    assert len(Pipeline([inner, pipeline]).guards) == 5


def test_pipeline_validates() -> None:
    with pytest.raises(ValidationError):
        Pipeline([])
    with pytest.raises(ValidationError) as info:
        Pipeline([object()])  # type: ignore[list-item]  # bad on purpose
    assert info.value.field == "guards"


def test_decorating_a_non_callable_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        fallback(1)(3)  # type: ignore[call-overload]  # bad on purpose
    assert info.value.field == "fn"


def test_base_policy_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Policy().call(lambda: 1)
