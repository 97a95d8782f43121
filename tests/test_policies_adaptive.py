"""adaptive_limit(): AIMD arithmetic (properties) and the policy around calls."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.policies import AimdLimit, BulkheadFullError, adaptive_limit
from buttress.testing import FakeClock


def core(initial: float = 10) -> AimdLimit:
    return AimdLimit(initial=initial, min_limit=2, max_limit=50, latency_threshold=1.0, backoff=0.5)


@given(samples=st.lists(st.tuples(st.floats(0, 3), st.booleans()), max_size=200))
def test_limit_stays_within_bounds(samples: list[tuple[float, bool]]) -> None:
    limit = core()
    for latency, overloaded in samples:
        before = limit.limit
        after = limit.on_sample(latency, overloaded)
        assert 2 <= after <= 50
        if overloaded or latency > 1.0:
            assert after <= before
        else:
            assert after >= before
        assert limit.permits == max(2, int(after))


def test_additive_increase_and_multiplicative_decrease() -> None:
    limit = core(10)
    for _ in range(10):
        limit.on_sample(0.1, False)
    assert 10.9 < limit.limit < 11.0  # about +1 per limit's worth of fast calls
    limit.on_sample(2.0, False)
    assert limit.limit == pytest.approx(5.479, abs=0.01)
    limit.on_sample(0.1, True)
    assert limit.limit == pytest.approx(2.740, abs=0.01)
    limit.on_sample(0.1, True)
    assert limit.limit == 2  # the floor


async def test_refuses_over_the_limit_and_adapts() -> None:
    clock = FakeClock()
    policy = adaptive_limit(latency_threshold=1.0, initial=2, min_limit=1, clock=clock)
    gate = asyncio.Event()

    async def work() -> str:
        await gate.wait()
        clock.advance(2.0)  # slow: the limit comes down
        return "done"

    tasks = [asyncio.create_task(policy.acall(work)) for _ in range(3)]
    await asyncio.sleep(0)
    assert policy.in_flight == 2
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:2] == ["done", "done"]
    assert isinstance(results[2], BulkheadFullError)
    assert policy.limit < 2
    assert policy.in_flight == 0


def test_sync_calls_and_timeouts_shrink_the_limit() -> None:
    clock = FakeClock()
    policy = adaptive_limit(latency_threshold=1.0, initial=8, clock=clock)
    assert policy.call(lambda: 1) == 1
    assert policy.limit > 8

    def timed_out() -> None:
        raise TimeoutError

    def broken() -> None:
        raise KeyError

    with pytest.raises(TimeoutError):
        policy.call(timed_out)
    assert policy.limit < 8
    before = policy.limit
    with pytest.raises(KeyError):
        policy.call(broken)
    assert policy.limit > before  # a fast error says nothing about overload
    assert "adaptive_limit(limit=" in repr(policy)


async def test_async_timeout_shrinks_the_limit() -> None:
    policy = adaptive_limit(latency_threshold=1.0, initial=4, clock=FakeClock())

    async def timed_out() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        await policy.acall(timed_out)
    assert policy.limit == pytest.approx(3.6)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"latency_threshold": 0}, "latency_threshold"),
        ({"latency_threshold": 1, "initial": 0}, "initial"),
        ({"latency_threshold": 1, "min_limit": 20}, "initial"),
        ({"latency_threshold": 1, "max_limit": 0}, "max_limit"),
        ({"latency_threshold": 1, "backoff": 1}, "backoff"),
        ({"latency_threshold": 1, "clock": object()}, "clock"),
    ],
)
def test_validation(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        adaptive_limit(**options)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == field
