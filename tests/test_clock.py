from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.testing import FakeClock


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SYSTEM_CLOCK, Clock)
    assert isinstance(FakeClock(), Clock)


def test_system_clock_is_aware_utc_and_monotonic() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    first = clock.monotonic()
    assert clock.monotonic() >= first


async def test_system_clock_sleep_zero_returns() -> None:
    await SystemClock().sleep(0)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=20))
def test_fake_clock_advances_both_clocks_together(steps: list[float]) -> None:
    clock = FakeClock()
    start_wall = clock.now()
    for step in steps:
        clock.advance(step)
    assert clock.monotonic() == pytest.approx(math.fsum(steps))
    elapsed = (clock.now() - start_wall).total_seconds()
    assert elapsed == pytest.approx(clock.monotonic(), abs=1e-5)


async def test_fake_clock_sleep_advances_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    real_sleep = asyncio.sleep
    slept: list[float] = []

    async def recorded(delay: float) -> None:
        slept.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    await clock.sleep(3600)
    assert clock.monotonic() == 3600
    assert slept == [0]  # one yield to the loop, no real wait


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_fake_clock_refuses_bad_steps(bad: float) -> None:
    with pytest.raises(ValueError, match="seconds must be finite"):
        FakeClock().advance(bad)


def test_fake_clock_start_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(start=datetime(2024, 1, 1))
    start = datetime(2030, 5, 1, 12, tzinfo=UTC)
    clock = FakeClock(start=start)
    assert clock.now() == start
    assert clock.time() == start.timestamp()
    assert "2030-05-01" in repr(clock)
