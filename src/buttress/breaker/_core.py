"""The circuit breaker's state machine: transitions, counters, permits and windows.

Everything that decides whether a call may run, and whether the circuit moves,
lives here as arithmetic over monotonic timestamps handed in by the caller.
This module never reads a clock, takes a lock, logs, or does I/O: the wrappers
in ``_service`` serialise access and report what it decides.

Theory of operation: every admitted call holds a ``Permit`` stamped with the
machine's ``epoch``, which changes on every transition. An outcome is applied
to the state only when its permit belongs to the current epoch (and, in
half-open, is still a live probe); older outcomes only feed the statistics, so
a slow call admitted while closed can never close a circuit that has since
opened. Probe permits expire after ``probe_timeout``, so a probe that never
reports back cannot wedge the circuit in half-open. Sliding windows of call
outcomes feed the failure-rate trigger.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, Protocol

from buttress.breaker._values import (
    Admitted,
    BreakerConfig,
    BreakerState,
    Event,
    Outcome,
    Permit,
    Rejected,
    Transition,
)

__all__ = [
    "BUCKETS",
    "TRANSITIONS",
    "BreakerMachine",
    "CountWindow",
    "OutcomeWindow",
    "TimeWindow",
    "open_wait",
]


BUCKETS = 10
"""A time window of D seconds is kept as 10 buckets of D/10 seconds each."""


class OutcomeWindow(Protocol):
    def add(self, failed: bool, now: float) -> None: ...
    def totals(self, now: float) -> tuple[int, int]:
        """``(calls, failures)`` currently inside the window."""
        ...

    def clear(self) -> None: ...


class CountWindow:
    """The last ``size`` outcomes, as a ring of 0/1 bytes plus running sums."""

    __slots__ = ("_calls", "_failures", "_next", "_ring", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = bytearray(size)
        self._next = 0
        self._calls = 0
        self._failures = 0

    def add(self, failed: bool, now: float) -> None:
        slot = self._next
        if self._calls == self.size:
            self._failures -= self._ring[slot]
        else:
            self._calls += 1
        self._ring[slot] = 1 if failed else 0
        self._failures += 1 if failed else 0
        self._next = (slot + 1) % self.size

    def totals(self, now: float) -> tuple[int, int]:
        return self._calls, self._failures

    def clear(self) -> None:
        self._ring = bytearray(self.size)
        self._next = 0
        self._calls = 0
        self._failures = 0


def bucket_of(now: float, width: float) -> int:
    """The bucket index a timestamp falls in (shared with the reference model)."""
    return math.floor(now / width)


class TimeWindow:
    """Outcomes whose bucket is one of the last ``BUCKETS`` buckets of ``duration/BUCKETS`` s.

    An outcome therefore stays counted for between ``duration * 0.9`` and
    ``duration`` seconds, depending on where in its bucket it landed.
    """

    __slots__ = ("_bucket_ids", "_calls", "_failures", "duration", "width")

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.width = duration / BUCKETS
        self._bucket_ids = [-1 << 62] * BUCKETS
        self._calls = [0] * BUCKETS
        self._failures = [0] * BUCKETS

    def add(self, failed: bool, now: float) -> None:
        bucket = bucket_of(now, self.width)
        slot = bucket % BUCKETS
        if self._bucket_ids[slot] != bucket:
            self._bucket_ids[slot] = bucket
            self._calls[slot] = 0
            self._failures[slot] = 0
        self._calls[slot] += 1
        if failed:
            self._failures[slot] += 1

    def totals(self, now: float) -> tuple[int, int]:
        oldest = bucket_of(now, self.width) - BUCKETS
        calls = failures = 0
        for slot in range(BUCKETS):
            if self._bucket_ids[slot] > oldest:
                calls += self._calls[slot]
                failures += self._failures[slot]
        return calls, failures

    def clear(self) -> None:
        self._bucket_ids = [-1 << 62] * BUCKETS
        self._calls = [0] * BUCKETS
        self._failures = [0] * BUCKETS


# Members bound once: an enum attribute lookup costs a few hundred ns on 3.11,
# and record() runs on every call a listener or window watches.
_C, _O, _H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
_FOREVER: Final = math.inf  # open_until while forced open
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


def open_wait(open_until: float, recovery_timeout: float, now: float) -> float:
    """How long a call refused by an open circuit should wait: until the circuit
    may let a probe through, and never longer than the recovery timeout (which
    is the whole answer while forced open, when ``open_until`` is ``+inf``)."""
    wait = open_until - now
    return wait if wait < recovery_timeout else recovery_timeout


class BreakerMachine:
    """One circuit's state. Not thread-safe: callers serialise every method call.

    The attributes ``closed_permit`` (the shared permit while closed, else
    ``None``), ``consecutive_failures``, ``open_until`` and the counters may be
    read without serialising, which is what keeps the closed path cheap.
    ``open_until`` is the rejection decision made ahead of time: a call before
    it is refused outright (``open_rejection``); it is ``-inf`` unless the
    circuit is open and ``+inf`` while it is forced open.
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
        "recovery_timeout",
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
        self.open_until = -math.inf
        self.recovery_timeout = config.recovery_timeout
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
        if self.state is _O and now >= self.open_until:
            return _H
        return self.state

    def open_rejection(self, clock: Callable[[], float]) -> float:
        """Refuse a call because the circuit is open: return its ``retry_after``
        (and count the rejection), or ``-1.0`` when the open state does not refuse
        it (closed, half-open, or the recovery timeout has passed: then ``admit``
        decides, at the time ``clock`` says).

        The one rule for the open hot path. ``clock`` is read only when the answer
        depends on the time: while forced open (``open_until`` is ``+inf``) every
        call is refused and told to wait the recovery timeout. Lock-free: it reads
        ``open_until`` once, and a lost update of ``rejected_count`` only
        undercounts a statistic.
        """
        open_until = self.open_until
        if open_until == _FOREVER:
            self.rejected_count += 1
            return self.recovery_timeout
        now = clock()
        if now >= open_until:
            return -1.0
        self.rejected_count += 1
        # open_wait inlined: this is the refusal's hot path (a call less per refusal).
        wait = open_until - now
        timeout = self.recovery_timeout
        return wait if wait < timeout else timeout

    def admit(self, now: float) -> Admitted | Rejected:
        """Decide whether a call arriving at ``now`` may run."""
        transition = None
        if self.state is _C:
            assert self.closed_permit is not None
            return Admitted(self.closed_permit, None)
        if self.state is _O:
            if now < self.open_until:
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
            return max(0.0, open_wait(self.open_until, self.recovery_timeout, now))
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
            self.open_until = _FOREVER if self.forced else now + self.config.recovery_timeout
            self.state = new
        elif new is _H:
            self.closed_permit = None
            self.open_until = -math.inf  # nothing is refused outright any more
            self.state = new
        else:
            self.consecutive_failures = 0
            if self.window is not None:
                self.window.clear()
            self.opened_at = None
            self.open_until = -math.inf
            self.state = new
            self.forced = False
            # Published last: a non-None permit means "closed, come straight in".
            self.closed_permit = Permit(self.epoch)
        if old is new:
            return None
        return Transition(old, new, event, now)
