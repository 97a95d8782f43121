"""The circuit breaker's state machine: states, transitions, counters and permits.

Everything that decides whether a call may run, and whether the circuit moves,
lives here as arithmetic over monotonic timestamps handed in by the caller.
This module never reads a clock, takes a lock, logs, or does I/O: the wrappers
in ``_breaker.py`` serialise access and report what it decides.

Theory of operation: every admitted call holds a ``Permit`` stamped with the
machine's ``epoch``, which changes on every transition. An outcome is applied
to the state only when its permit belongs to the current epoch (and, in
half-open, is still a live probe); older outcomes only feed the statistics, so
a slow call admitted while closed can never close a circuit that has since
opened. Probe permits expire after ``probe_timeout``, so a probe that never
reports back cannot wedge the circuit in half-open.
"""

from __future__ import annotations

import enum
import math

import attrs

from buttress.breaker._config import BreakerConfig
from buttress.breaker._window import CountWindow, OutcomeWindow, TimeWindow

__all__ = [
    "TRANSITIONS",
    "Admitted",
    "BreakerMachine",
    "BreakerState",
    "Event",
    "Outcome",
    "Permit",
    "Rejected",
    "Transition",
]


class BreakerState(enum.Enum):
    """Where the circuit is: letting calls through, failing fast, or probing."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Event(enum.Enum):
    """What can move the circuit from one state to another."""

    TRIP = "trip"
    RECOVERY_ELAPSED = "recovery_elapsed"
    PROBE_SUCCEEDED = "probe_succeeded"
    PROBE_FAILED = "probe_failed"
    RESET = "reset"
    FORCE_OPEN = "force_open"


class Outcome(enum.Enum):
    """How one call ended, as far as the circuit is concerned."""

    SUCCESS = "success"
    FAILURE = "failure"
    # Cancelled or interrupted (not an Exception): says nothing about the dependency.
    IGNORED = "ignored"


# Members bound once: an enum attribute lookup costs a few hundred ns on 3.11,
# and record() runs on every call a listener or window watches.
_C, _O, _H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
_SUCCESS, _FAILURE, _IGNORED = Outcome.SUCCESS, Outcome.FAILURE, Outcome.IGNORED
_TRIP, _RECOVERY_ELAPSED = Event.TRIP, Event.RECOVERY_ELAPSED
_PROBE_SUCCEEDED, _PROBE_FAILED = Event.PROBE_SUCCEEDED, Event.PROBE_FAILED
_RESET, _FORCE_OPEN = Event.RESET, Event.FORCE_OPEN

TRANSITIONS: dict[tuple[BreakerState, Event], BreakerState] = {
    (_C, Event.TRIP): _O,
    (_O, Event.RECOVERY_ELAPSED): _H,
    (_H, Event.PROBE_SUCCEEDED): _C,
    (_H, Event.PROBE_FAILED): _O,
    **{(state, Event.RESET): _C for state in BreakerState},
    **{(state, Event.FORCE_OPEN): _O for state in BreakerState},
}
"""Every legal move; anything else is a bug in this module."""


@attrs.frozen(slots=True)
class Transition:
    """A state change the machine made, for listeners and logs."""

    old: BreakerState
    new: BreakerState
    event: Event
    at: float


@attrs.frozen(slots=True)
class Permit:
    """The right to run one call; ``probe`` numbers a half-open probe."""

    epoch: int
    probe: int | None = None


@attrs.frozen(slots=True)
class Admitted:
    permit: Permit
    transition: Transition | None


@attrs.frozen(slots=True)
class Rejected:
    retry_after: float
    transition: Transition | None


class BreakerMachine:
    """One circuit's state. Not thread-safe: callers serialise every method call.

    The attributes ``closed_permit`` (the shared permit while closed, else
    ``None``), ``consecutive_failures``, ``open_until`` and the counters may be
    read without serialising, which is what keeps the closed path cheap.
    """

    __slots__ = (
        "_next_probe",
        "closed_permit",
        "config",
        "consecutive_failures",
        "epoch",
        "failure_count",
        "forced",
        "last_failure_at",
        "open_until",
        "opened_at",
        "probes",
        "rejected_count",
        "state",
        "success_count",
        "window",
    )

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self.state = _C
        self.epoch = 0
        self.closed_permit: Permit | None = Permit(0)
        self.consecutive_failures = 0
        self.success_count = 0
        self.failure_count = 0
        self.rejected_count = 0
        self.last_failure_at: float | None = None
        self.opened_at: float | None = None
        self.open_until = math.inf
        self.forced = False
        self.probes: dict[int, float] = {}
        self._next_probe = 0
        self.window: OutcomeWindow | None = None
        size = config.effective_window_size
        if size is not None:
            self.window = CountWindow(size)
        elif config.window_duration is not None:
            self.window = TimeWindow(config.window_duration)

    def state_at(self, now: float) -> BreakerState:
        """The state a call arriving at ``now`` would see (no side effects)."""
        if self.state is _O and not self.forced and now >= self.open_until:
            return _H
        return self.state

    def admit(self, now: float) -> Admitted | Rejected:
        """Decide whether a call arriving at ``now`` may run."""
        transition = None
        if self.state is _C:
            assert self.closed_permit is not None
            return Admitted(self.closed_permit, None)
        if self.state is _O:
            if self.forced or now < self.open_until:
                self.rejected_count += 1
                return Rejected(self.retry_after(now), None)
            transition = self._move(_RECOVERY_ELAPSED, now)
        self._expire_probes(now)
        if len(self.probes) >= self.config.half_open_max_calls:
            self.rejected_count += 1
            return Rejected(self.retry_after(now), transition)
        probe = self._next_probe
        self._next_probe += 1
        self.probes[probe] = now + self.config.probe_timeout
        return Admitted(Permit(self.epoch, probe), transition)

    def retry_after(self, now: float) -> float:
        """Seconds a rejected caller should wait before trying again."""
        if self.state is _O:
            if self.forced:
                return self.config.recovery_timeout
            return max(0.0, self.open_until - now)
        if self.state is _H and self.probes:
            # A probe slot frees when a probe reports or, at the latest, expires.
            soonest = min(self.probes.values()) - now
            return max(0.0, min(soonest, self.config.recovery_timeout))
        return 0.0

    def classify_duration(self, outcome: Outcome, duration: float | None) -> Outcome:
        """A success slower than ``slow_call_threshold`` counts as a failure."""
        threshold = self.config.slow_call_threshold
        if (
            outcome is _SUCCESS
            and threshold is not None
            and duration is not None
            and duration >= threshold
        ):
            return _FAILURE
        return outcome

    def record(
        self, permit: Permit, outcome: Outcome, now: float, duration: float | None = None
    ) -> Transition | None:
        """Apply the outcome of the call that held ``permit``; maybe move the circuit."""
        if duration is not None:
            outcome = self.classify_duration(outcome, duration)
        if outcome is _SUCCESS:
            self.success_count += 1
        elif outcome is _FAILURE:
            self.failure_count += 1
            self.last_failure_at = now
        if permit.epoch != self.epoch:
            return None
        if permit.probe is not None:
            if self.probes.pop(permit.probe, None) is None:
                return None  # the permit expired; another probe owns the decision
            if outcome is _SUCCESS:
                return self._move(_PROBE_SUCCEEDED, now)
            if outcome is _FAILURE:
                return self._move(_PROBE_FAILED, now)
            return None
        if self.state is not _C or outcome is _IGNORED:
            return None
        failed = outcome is _FAILURE
        self.consecutive_failures = self.consecutive_failures + 1 if failed else 0
        if self.window is not None:
            self.window.add(failed, now)
        if failed and self._should_trip(now):
            return self._move(_TRIP, now)
        return None

    def window_totals(self, now: float) -> tuple[int, int]:
        return self.window.totals(now) if self.window is not None else (0, 0)

    def reset(self, now: float) -> Transition | None:
        """Close the circuit and forget the failure history (counters are kept)."""
        return self._move(_RESET, now)

    def force_open(self, now: float) -> Transition | None:
        """Open the circuit and hold it open until ``reset``."""
        return self._move(_FORCE_OPEN, now)

    def _should_trip(self, now: float) -> bool:
        threshold = self.config.failure_threshold
        if threshold is not None and self.consecutive_failures >= threshold:
            return True
        rate = self.config.failure_rate_threshold
        if rate is None or self.window is None:
            return False
        calls, failures = self.window.totals(now)
        # failures / calls, not rate * calls: 0.28 * 25 is 7.000000000000001, so 7 failures
        # of 25 would never reach 28 %; a correctly rounded quotient equals the written rate.
        return calls >= self.config.effective_minimum_calls and failures / calls >= rate

    def _expire_probes(self, now: float) -> None:
        if self.probes:
            for probe, expires_at in list(self.probes.items()):
                if expires_at <= now:
                    del self.probes[probe]

    def _move(self, event: Event, now: float) -> Transition | None:
        old = self.state
        new = TRANSITIONS[(old, event)]
        if (
            event is _RESET
            and old is _C
            and not self.consecutive_failures
            and (self.window is None or self.window.totals(now)[0] == 0)
        ):
            return None  # already pristine: nothing to announce
        self.epoch += 1
        self.probes.clear()
        # Lock-free readers look at closed_permit, then state, then forced and
        # open_until: each branch writes in the order that keeps those reads sane.
        if new is _O:
            self.closed_permit = None
            self.opened_at = now
            self.forced = event is _FORCE_OPEN
            self.open_until = math.inf if self.forced else now + self.config.recovery_timeout
            self.state = new
        elif new is _H:
            # open_until is left as it was: it only means something while OPEN.
            self.closed_permit = None
            self.state = new
        else:
            self.consecutive_failures = 0
            if self.window is not None:
                self.window.clear()
            self.opened_at = None
            self.state = new
            self.forced = False
            # Published last: a non-None permit means "closed, come straight in".
            self.closed_permit = Permit(self.epoch)
        if old is new:
            return None
        return Transition(old, new, event, now)
