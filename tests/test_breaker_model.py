"""A hypothesis state machine drives CircuitBreaker next to a small reference model.

The model is written from the documented rules, independently of ``_state.py``:
successes, failures, excluded errors, slow calls, clock advances, reset and
force_open, in consecutive-failure, count-window and time-window modes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from buttress.breaker import BreakerState, CircuitBreaker, CircuitOpenError, MemoryBreakerStore
from buttress.breaker._core import BreakerMachine
from buttress.breaker._values import Admitted, BreakerConfig, Outcome, Permit
from buttress.testing import FakeClock

pytestmark = pytest.mark.filterwarnings("ignore")


class Boom(Exception):
    pass


class Excluded(Exception):
    pass


@dataclass
class Options:
    failure_threshold: int | None
    recovery_timeout: float
    failure_rate_threshold: float | None = None
    window_size: int | None = None
    window_duration: float | None = None
    minimum_calls: int | None = None
    slow_call_threshold: float | None = None


@st.composite
def options(draw: st.DrawFn) -> Options:
    rate = draw(st.sampled_from([None, 0.5, 0.75, 1.0]))
    threshold = draw(st.integers(1, 4)) if rate is None else draw(st.none() | st.integers(1, 4))
    opts = Options(
        failure_threshold=threshold,
        recovery_timeout=draw(st.sampled_from([1.0, 5.0])),
        failure_rate_threshold=rate,
        slow_call_threshold=draw(st.sampled_from([None, 2.0])),
    )
    if rate is not None:
        if draw(st.booleans()):
            opts.window_size = draw(st.integers(1, 6))
            opts.minimum_calls = draw(st.integers(1, opts.window_size))
        else:
            opts.window_duration = draw(st.sampled_from([5.0, 10.0]))
            opts.minimum_calls = draw(st.integers(1, 4))
    return opts


@dataclass
class Model:
    """The breaker's rules, restated as plainly as possible."""

    opts: Options
    state: str = "closed"
    forced: bool = False
    opened_at: float = 0.0
    streak: int = 0
    outcomes: list[tuple[float, bool]] = field(default_factory=list)
    successes: int = 0
    failures: int = 0
    rejected: int = 0

    def state_at(self, now: float) -> str:
        if (
            self.state == "open"
            and not self.forced
            and now >= self.opened_at + self.opts.recovery_timeout
        ):
            return "half_open"
        return self.state

    def in_window(self, now: float) -> list[bool]:
        if self.opts.window_duration is not None:
            width = self.opts.window_duration / 10
            oldest = math.floor(now / width) - 10
            return [failed for t, failed in self.outcomes if math.floor(t / width) > oldest]
        size = self.opts.window_size or 100
        return [failed for _, failed in self.outcomes[-size:]]

    def open(self, now: float) -> None:
        self.state, self.opened_at = "open", now

    def close(self) -> None:
        self.state, self.streak, self.outcomes, self.forced = "closed", 0, [], False

    def admit(self, now: float) -> bool:
        self.state = self.state_at(now)
        if self.state == "open":
            self.rejected += 1
            return False
        return True

    def finish(self, failed: bool, now: float) -> None:
        self.failures += failed
        self.successes += not failed
        if self.state == "half_open":
            if failed:
                self.open(now)
            else:
                self.close()
            return
        self.streak = self.streak + 1 if failed else 0
        self.outcomes.append((now, failed))
        window = self.in_window(now)
        minimum = self.opts.minimum_calls or min(10, self.opts.window_size or 100)
        threshold, rate = self.opts.failure_threshold, self.opts.failure_rate_threshold
        if failed and (
            (threshold is not None and self.streak >= threshold)
            or (rate is not None and len(window) >= minimum and sum(window) >= rate * len(window))
        ):
            self.open(now)


class BreakerComparison(RuleBasedStateMachine):
    clock: FakeClock
    breaker: CircuitBreaker
    model: Model

    @initialize(opts=options())
    def build(self, opts: Options) -> None:
        self.clock = FakeClock()
        opts = self.adapt(opts)
        self.model = Model(opts)
        self.breaker = CircuitBreaker(
            "model",
            clock=self.clock,
            registry=None,
            exclude=(Excluded,),
            failure_threshold=opts.failure_threshold,
            recovery_timeout=opts.recovery_timeout,
            failure_rate_threshold=opts.failure_rate_threshold,
            window_size=opts.window_size,
            window_duration=opts.window_duration,
            minimum_calls=opts.minimum_calls,
            slow_call_threshold=opts.slow_call_threshold,
            **self.extra_options(),
        )

    def adapt(self, opts: Options) -> Options:
        return opts

    def extra_options(self) -> dict[str, Any]:
        return {}

    def run(self, dependency: Callable[[], str]) -> None:
        self.breaker.call(dependency)

    def do_reset(self) -> None:
        self.breaker.reset()

    def do_force_open(self) -> None:
        self.breaker.force_open()

    # Dyadic steps keep the arithmetic exact, so durations equal their nominal value.
    @rule(seconds=st.sampled_from([0.0, 0.25, 1.0, 2.5, 5.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(
        kind=st.sampled_from(["success", "failure", "excluded"]),
        duration=st.sampled_from([0.0, 0.5, 2.0, 3.0]),
    )
    def call(self, kind: str, duration: float) -> None:
        def dependency() -> str:
            self.clock.advance(duration)
            if kind == "failure":
                raise Boom
            if kind == "excluded":
                raise Excluded
            return "ok"

        admitted = self.model.admit(self.clock.monotonic())
        try:
            self.run(dependency)
        except CircuitOpenError:
            assert not admitted
            return
        except (Boom, Excluded):
            pass
        assert admitted
        slow = self.model.opts.slow_call_threshold
        failed = kind == "failure" or (slow is not None and duration >= slow)
        self.model.finish(failed, self.clock.monotonic())

    @rule()
    def reset(self) -> None:
        self.do_reset()
        self.model.close()

    @rule()
    def force_open(self) -> None:
        self.do_force_open()
        self.model.open(self.clock.monotonic())
        self.model.forced = True

    @invariant()
    def agrees_with_model(self) -> None:
        now = self.clock.monotonic()
        assert self.breaker.state.value == self.model.state_at(now)
        stats = self.breaker.stats()
        assert stats.success_count == self.model.successes
        assert stats.failure_count == self.model.failures
        assert stats.rejected_count == self.model.rejected
        if self.model.state == "closed":
            assert stats.consecutive_failures == self.model.streak
            if self.model.opts.failure_rate_threshold is not None:
                window = self.model.in_window(now)
                assert (stats.window_calls, stats.window_failures) == (len(window), sum(window))


BreakerComparison.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None
)
test_breaker_matches_reference_model = BreakerComparison.TestCase


class SharedBreakerComparison(BreakerComparison):
    """The same rules through a shared circuit (MemoryBreakerStore on the same FakeClock)."""

    loop: asyncio.AbstractEventLoop

    def adapt(self, opts: Options) -> Options:
        # Shared circuits use the consecutive-failure trigger only.
        return Options(
            failure_threshold=opts.failure_threshold or 2,
            recovery_timeout=opts.recovery_timeout,
            slow_call_threshold=opts.slow_call_threshold,
        )

    def extra_options(self) -> dict[str, Any]:
        self.loop = asyncio.new_event_loop()
        return {"backend": MemoryBreakerStore(clock=self.clock), "sync_interval": 1e-9}

    def run(self, dependency: Callable[[], str]) -> None:
        async def call() -> str:
            return dependency()

        self.loop.run_until_complete(self.breaker.acall(call))

    def do_reset(self) -> None:
        self.loop.run_until_complete(self.breaker.areset())

    def do_force_open(self) -> None:
        self.loop.run_until_complete(self.breaker.aforce_open())

    @invariant()
    def goes_through_the_store(self) -> None:
        assert self.breaker.stats().shared

    def teardown(self) -> None:
        self.loop.close()


SharedBreakerComparison.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
test_shared_breaker_matches_reference_model = SharedBreakerComparison.TestCase


@given(
    max_calls=st.integers(1, 5),
    attempts=st.lists(st.sampled_from(["admit", "finish_ok", "finish_bad", "tick"]), max_size=40),
)
@settings(max_examples=200, deadline=None)
def test_core_never_has_more_live_probes_than_allowed(max_calls: int, attempts: list[str]) -> None:
    config = BreakerConfig(
        failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=max_calls, probe_timeout=3.0
    )
    machine = BreakerMachine(config)
    now = 0.0
    machine.record(Permit(0), Outcome.FAILURE, now)
    now = 1.0
    held: list[Permit] = []
    for step in attempts:
        if step == "admit":
            decision = machine.admit(now)
            if isinstance(decision, Admitted):
                held.append(decision.permit)
        elif step == "tick":
            now += 1.0
        elif held:
            outcome = Outcome.SUCCESS if step == "finish_ok" else Outcome.FAILURE
            machine.record(held.pop(0), outcome, now)
        live = [p for p, expires in machine.probes.items() if expires > now]
        assert len(live) <= max_calls
        if machine.state is not BreakerState.HALF_OPEN:
            assert not machine.probes
