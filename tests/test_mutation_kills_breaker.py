"""Fixed examples that kill the mutants of buttress.breaker._core that the model and
behaviour tests let live (scripts/mutation.py; docs/testing.md, "Mutation testing").

They drive ``BreakerMachine`` directly, with explicit timestamps, so each example
lands on one rule: the counters, the retry-after of a refused call, probe
numbering, stale permits and what a reset leaves behind.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from buttress.breaker._core import BreakerMachine, TimeWindow
from buttress.breaker._values import (
    Admitted,
    BreakerConfig,
    BreakerState,
    Outcome,
    Permit,
    Rejected,
)


def admitted(decision: Admitted | Rejected) -> Permit:
    assert isinstance(decision, Admitted), decision
    return decision.permit


def tripped(config: BreakerConfig, at: float = 0.0) -> BreakerMachine:
    """A machine opened by ``failure_threshold`` failures at ``at``."""
    machine = BreakerMachine(config)
    for _ in range(config.failure_threshold or 1):
        machine.record(admitted(machine.admit(at)), Outcome.FAILURE, at)
    assert machine.state is BreakerState.OPEN
    return machine


def test_a_call_refused_while_open_counts_once_and_waits_out_the_timeout() -> None:
    machine = tripped(BreakerConfig(failure_threshold=1, recovery_timeout=30.0))
    assert machine.admit(29.5) == Rejected(0.5, None)
    assert machine.rejected_count == 1
    assert machine.open_rejection(lambda: 29.75) == 0.25
    assert machine.rejected_count == 2
    # From the recovery timeout on, the open state refuses nothing by itself.
    assert machine.open_rejection(lambda: 30.0) == -1.0
    assert machine.rejected_count == 2


def test_forced_open_refuses_without_reading_the_clock() -> None:
    machine = BreakerMachine(BreakerConfig(recovery_timeout=30.0))
    machine.force_open(5.0)
    reads: list[int] = []

    def clock() -> float:
        reads.append(1)
        return 1e12

    assert machine.open_rejection(clock) == 30.0
    assert machine.rejected_count == 1
    assert reads == []  # the answer does not depend on the time


@given(
    opened_at=st.floats(-1e6, 1e6),
    timeout=st.floats(0.001, 1e5),
    offset=st.floats(-1e5, 2e5),
)
def test_open_rejection_is_the_open_states_rule(
    opened_at: float, timeout: float, offset: float
) -> None:
    machine = tripped(BreakerConfig(failure_threshold=1, recovery_timeout=timeout), opened_at)
    now = opened_at + offset
    refused = now < opened_at + timeout
    expected = min(opened_at + timeout - now, timeout) if refused else -1.0
    assert machine.open_rejection(lambda: now) == expected
    assert machine.rejected_count == (1 if refused else 0)


def test_a_call_refused_in_half_open_waits_for_the_soonest_probe_expiry() -> None:
    config = BreakerConfig(failure_threshold=1, recovery_timeout=30.0, probe_timeout=5.0)
    machine = tripped(config)
    probe = machine.admit(30.0)
    assert isinstance(probe, Admitted)
    assert probe.transition is not None
    assert machine.state is BreakerState.HALF_OPEN
    # The only probe slot is taken until 35.0: a call at 34.5 waits 0.5 s.
    assert machine.admit(34.5) == Rejected(0.5, None)
    assert machine.rejected_count == 1


def test_every_probe_gets_its_own_slot() -> None:
    config = BreakerConfig(failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=3)
    machine = tripped(config)
    probes = [admitted(machine.admit(1.0)) for _ in range(3)]
    assert len({p.probe for p in probes}) == 3
    assert isinstance(machine.admit(1.0), Rejected)


def test_an_expired_probe_reporting_late_decides_nothing() -> None:
    config = BreakerConfig(failure_threshold=1, recovery_timeout=30.0, probe_timeout=5.0)
    machine = tripped(config)
    late = admitted(machine.admit(30.0))
    fresh = admitted(machine.admit(36.0))  # the first probe expired at 35.0
    assert machine.record(late, Outcome.SUCCESS, 37.0) is None
    assert machine.state is BreakerState.HALF_OPEN
    assert machine.record(fresh, Outcome.SUCCESS, 37.0) is not None
    assert _state(machine) is BreakerState.CLOSED


def test_record_with_a_duration_classifies_a_slow_success_as_a_failure() -> None:
    machine = BreakerMachine(BreakerConfig(failure_threshold=1, slow_call_threshold=2.0))
    permit = admitted(machine.admit(0.0))
    transition = machine.record(permit, Outcome.SUCCESS, 3.0, duration=2.5)
    assert transition is not None
    assert (machine.success_count, machine.failure_count) == (0, 1)
    assert machine.state is BreakerState.OPEN


def test_an_ignored_outcome_keeps_the_failure_streak() -> None:
    # Cancellation "says nothing about the dependency" (docs/breaker.md): it
    # neither extends nor breaks the consecutive-failure streak.
    machine = BreakerMachine(BreakerConfig(failure_threshold=2))
    permit = admitted(machine.admit(0.0))
    machine.record(permit, Outcome.FAILURE, 0.0)
    machine.record(permit, Outcome.IGNORED, 0.0)
    assert machine.consecutive_failures == 1
    assert machine.record(permit, Outcome.FAILURE, 0.0) is not None
    assert machine.state is BreakerState.OPEN


def test_a_permit_from_an_earlier_closed_period_is_stale() -> None:
    # Every transition starts a new epoch: a slow call admitted two closed
    # periods ago must not count in the current one.
    config = BreakerConfig(failure_threshold=1, recovery_timeout=1.0)
    machine = tripped(config)
    machine.record(admitted(machine.admit(1.0)), Outcome.SUCCESS, 1.0)  # closed again
    old = admitted(machine.admit(1.0))
    machine.record(admitted(machine.admit(1.0)), Outcome.FAILURE, 1.0)  # open
    machine.record(admitted(machine.admit(2.0)), Outcome.SUCCESS, 2.0)  # closed again
    assert machine.state is BreakerState.CLOSED
    assert machine.record(old, Outcome.FAILURE, 2.0) is None
    assert machine.state is BreakerState.CLOSED
    assert machine.consecutive_failures == 0


def test_a_reset_leaves_nothing_refused_and_nothing_forced() -> None:
    machine = BreakerMachine(BreakerConfig())
    machine.force_open(0.0)
    assert machine.forced is True
    assert machine.open_until == math.inf
    assert machine.reset(1.0) is not None
    assert _forced(machine) is False
    assert machine.open_until == -math.inf
    assert machine.open_rejection(lambda: 1.0) == -1.0
    assert machine.rejected_count == 0


def test_a_time_window_is_ten_buckets_of_a_tenth_each() -> None:
    # docs/breaker.md: window_duration is "kept in 10 buckets of duration/10". An
    # outcome at 0.95 s of a 10 s window is in bucket [0, 1) and leaves the window
    # at 10 s (with 11 buckets of 10/11 s it would stay until 10.9 s).
    window = TimeWindow(10.0)
    window.add(True, 0.95)
    window.add(False, 0.95)
    assert window.totals(9.99) == (2, 1)
    assert window.totals(10.0) == (0, 0)


def test_a_fresh_machine_refuses_nothing_outright() -> None:
    # open_until is -inf unless the circuit is open, forced only after force_open:
    # the lock-free open path reads both before taking any lock.
    machine = BreakerMachine(BreakerConfig())
    assert machine.open_rejection(lambda: 0.0) == -1.0
    assert machine.open_rejection(lambda: -1e12) == -1.0
    assert machine.forced is False
    assert machine.rejected_count == 0
    assert machine.state_at(0.0) is BreakerState.CLOSED


def test_every_refused_admission_is_counted() -> None:
    machine = tripped(BreakerConfig(failure_threshold=1, recovery_timeout=30.0))
    for expected in (1, 2, 3):
        assert isinstance(machine.admit(10.0), Rejected)
        assert machine.rejected_count == expected
    # Half-open with its one probe slot taken: each refusal counts too.
    admitted(machine.admit(30.0))
    for expected in (4, 5):
        assert isinstance(machine.admit(31.0), Rejected)
        assert machine.rejected_count == expected


def test_a_reset_forgets_a_window_holding_only_successes() -> None:
    # One success in the window: the circuit is closed with no failure streak, yet
    # reset must still empty the window (docs/breaker.md: reset forgets the history).
    machine = BreakerMachine(
        BreakerConfig(failure_threshold=None, failure_rate_threshold=0.5, window_size=4)
    )
    machine.record(admitted(machine.admit(0.0)), Outcome.SUCCESS, 0.0)
    assert machine.window_totals(0.0) == (1, 0)
    assert machine.reset(1.0) is None  # closed to closed: nothing to announce
    assert machine.window_totals(1.0) == (0, 0)
    # A pristine machine's reset changes nothing, not even the closed permit.
    permit = machine.closed_permit
    assert machine.reset(2.0) is None
    assert machine.closed_permit is permit


def _state(machine: BreakerMachine) -> BreakerState:
    """Read again (mypy would keep the state narrowed by an earlier assert)."""
    return machine.state


def _forced(machine: BreakerMachine) -> bool:
    return machine.forced
