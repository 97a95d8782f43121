"""``SharedCircuitBreaker``: a circuit shared by a fleet, cached here, with an outage policy.

The store (Redis or PostgreSQL) owns the truth and decides every transition
atomically. Each instance keeps the last snapshot it saw and re-reads it at
least every ``sync_interval`` while it is being called, so when one instance
opens the circuit every other rejects within that interval. Round trips per
call: none for a success while the known streak is 0 (plus one read per
interval), one for a failure (record and decide together), one to ask for a
half-open probe and one to report it. When the store cannot be reached the
``on_store_error`` policy decides, logged once per outage (``local`` falls
back to this process's own ``BreakerMachine``). Shared breakers are async only.
``CircuitBreaker(..., backend=...)`` builds one when the backend shares circuits.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import attrs

from buttress._context import AsyncContext
from buttress._exceptions import SchemaMissingError, ValidationError
from buttress._guard import routed
from buttress._safe import error_text
from buttress._seam import resolve_store
from buttress.breaker._core import open_wait
from buttress.breaker._service import CircuitBreaker, SharingOptions
from buttress.breaker._store import BREAKER_STORES, Op, Snapshot, StepParams
from buttress.breaker._values import (
    BreakerState,
    BreakerStats,
    CircuitOpenError,
    Event,
    Outcome,
    Permit,
    Transition,
)
from buttress.policies import SyncCallNotSupportedError
from buttress.switches import CIRCUIT_BREAKER as _SWITCH

__all__ = ["SharedCircuitBreaker", "SharedPermit"]

P = ParamSpec("P")
R = TypeVar("R")

_C, _O, _H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
_OBSERVED: dict[tuple[BreakerState, BreakerState], Event] = {
    (_C, _O): Event.TRIP,
    (_O, _H): Event.RECOVERY_ELAPSED,
    (_C, _H): Event.RECOVERY_ELAPSED,
    (_H, _C): Event.PROBE_SUCCEEDED,
    (_H, _O): Event.PROBE_FAILED,
    (_O, _C): Event.RESET,
}
_WHAT = "a shared CircuitBreaker"


@attrs.frozen(slots=True)
class SharedPermit:
    """The right to run one call: shared (epoch, probe id) or, during an outage, local."""

    epoch: int
    probe: str = ""
    local: Permit | None = None
    untracked: bool = False


_UNTRACKED = SharedPermit(-1, untracked=True)


# AsyncContext first: ``async with`` goes through _begin_block/_end_block (a store
# round trip each) instead of CircuitBreaker's in-process __aenter__/__aexit__.
class SharedCircuitBreaker(AsyncContext, CircuitBreaker):
    """A ``CircuitBreaker`` whose circuit lives in a shared store (Redis, PostgreSQL).

    Built by ``CircuitBreaker(name, backend=...)``; the public surface is the
    same, async only (sync calls raise ``SyncCallNotSupportedError`` naming the
    async method). Only the consecutive-failure trigger can be shared.
    """

    __slots__ = (
        "_background",
        "_closed_permit",
        "_params",
        "_retry_store_at",
        "_store",
        "available",
        "epoch",
        "failures",
        "fetched_at",
        "forced",
        "on_store_error",
        "open_until",
        "opened_at",
        "shared_state",
        "store_timeout",
        "sync_interval",
    )

    def _attach(self, backend: object | None, sharing: SharingOptions) -> None:
        store = resolve_store(backend, BREAKER_STORES)
        if store is None:
            raise ValidationError("backend", "must be a backend or store that shares circuits")
        config = self.config
        if config.failure_threshold is None or config.uses_window:
            raise ValidationError(
                "failure_rate_threshold",
                "a shared breaker supports the consecutive-failure trigger only",
            )
        self._store = store
        self._params = StepParams(
            failure_threshold=config.failure_threshold,
            recovery_timeout=config.recovery_timeout,
            half_open_max_calls=config.half_open_max_calls,
            probe_timeout=config.probe_timeout,
        )
        self.sync_interval = sharing.sync_interval
        self.store_timeout = sharing.store_timeout
        self.on_store_error = sharing.on_store_error
        self.available = True
        self._retry_store_at = -math.inf
        self._background: set[asyncio.Task[object]] = set()
        self.fetched_at = -math.inf
        self.shared_state = _C
        self.epoch = 0
        self.failures = 0
        self.forced = False
        self.open_until = -math.inf
        self.opened_at: float | None = None
        self._closed_permit = SharedPermit(0)

    def __repr__(self) -> str:
        return (
            f"SharedCircuitBreaker({self.name!r}, state={self.state.value}, store={self._store!r})"
        )

    # -- reading the state ------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The state as this instance knows it (no I/O)."""
        return self._state_at(self._now())

    def _state_at(self, now: float) -> BreakerState:
        if not self.available:
            if self.on_store_error == "open":
                return _C
            if self.on_store_error == "closed":
                return _O
            if not (self.shared_state is _O and now < self.open_until):
                return self._machine.state_at(now)
        if self.shared_state is _O and now >= self.open_until:
            return _H
        return self.shared_state

    def stats(self) -> BreakerStats:
        now = self._now()
        with self._lock:
            m = self._machine
            window_calls, window_failures = m.window_totals(now)
            streak, opened_at, probes = m.consecutive_failures, m.opened_at, len(m.probes)
        if self.available:
            streak, opened_at, probes = self.failures, self.opened_at, 0
        return self._stats(
            now,
            self._state_at(now),
            streak,
            opened_at,
            probes,
            window_calls,
            window_failures,
            store_available=self.available,
        )

    # -- operator controls ------------------------------------------------

    def reset(self) -> None:
        raise SyncCallNotSupportedError(_WHAT, "areset")

    def force_open(self) -> None:
        raise SyncCallNotSupportedError(_WHAT, "aforce_open")

    async def areset(self) -> None:
        """Close the circuit fleet-wide."""
        await self.step("reset")

    async def aforce_open(self) -> None:
        """Open the circuit fleet-wide, until ``areset()``."""
        await self.step("force_open")

    # -- calling ----------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise SyncCallNotSupportedError(_WHAT, "acall")

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the shared circuit."""
        admitted = await self._admit_shared()
        if isinstance(admitted, CircuitOpenError):
            raise admitted
        start = self._now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._finish_shared(admitted, self._classify(exc), start, exc)
            raise
        await self._finish_shared(admitted, self._result_outcome(result), start, None)
        return result

    def _decorate(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        # Not CircuitBreaker's inlined in-process path: every call goes through acall
        # (and a sync function's calls through call, which refuses).
        return routed(fn, self.call, self.acall)

    def __enter__(self) -> CircuitBreaker:
        raise SyncCallNotSupportedError(_WHAT, "__aenter__ (async with)")

    def __exit__(self, *exc_info: object) -> None:
        raise SyncCallNotSupportedError(_WHAT, "__aexit__ (async with)")

    async def _begin_block(self) -> None:
        admitted = await self._admit_shared()
        if isinstance(admitted, CircuitOpenError):
            raise admitted
        self._push_frame(admitted, self._now())

    async def _end_block(self, exc: BaseException | None) -> None:
        frame = self._pop_frame()
        if frame is None or not isinstance(frame.permit, SharedPermit):
            raise RuntimeError("CircuitBreaker.__aexit__ without a matching __aenter__")
        assert frame.start is not None
        outcome = Outcome.SUCCESS if exc is None else self._classify(exc)
        await self._finish_shared(frame.permit, outcome, frame.start, exc)

    # -- the store --------------------------------------------------------

    def _refresh_modes(self) -> None:
        super()._refresh_modes()
        self._simple = False

    async def step(self, op: Op, epoch: int = 0, probe: str = "") -> Snapshot | None:
        """One round trip to the store; None when it cannot be reached (policy applies)."""
        now = self._now()
        if not self.available and now < self._retry_store_at:
            return None
        try:
            async with asyncio.timeout(self.store_timeout):
                snapshot = await self._store.step(self.name, op, epoch, probe, self._params)
        except SchemaMissingError:
            raise  # a deployment mistake, not an outage: no policy can make it work
        except Exception as exc:  # noqa: BLE001  (any store failure means the outage policy applies)
            self._store_failed(now, exc)
            return None
        if not self.available:
            self.available = True
            self._log.info("breaker.store_recovered")
        self._apply(snapshot)
        return snapshot

    async def _admit_shared(self) -> SharedPermit | CircuitOpenError:
        if _SWITCH.bypass():
            return _UNTRACKED  # breakers switched off: no refusal, no store round trip
        now = self._now()
        if now - self.fetched_at >= self.sync_interval:
            await self.step("read")
            now = self._now()
        if not self.available:
            return self._admit_degraded(now)
        if self.shared_state is _C:
            return self._closed_permit
        if self.shared_state is _O and now < self.open_until:
            return self._refuse(open_wait(self.open_until, self.config.recovery_timeout, now))
        snapshot = await self.step("admit")
        if snapshot is None:
            return self._admit_degraded(self._now())
        if snapshot.decision == "rejected":
            return self._refuse(snapshot.retry_after)
        if snapshot.decision == "probe":
            return SharedPermit(snapshot.epoch, snapshot.granted)
        return self._closed_permit

    async def _finish_shared(
        self,
        permit: SharedPermit,
        outcome: Outcome,
        start: float,
        error: BaseException | None,
    ) -> None:
        machine = self._machine
        now = self._now()
        duration = now - start
        outcome = machine.classify_duration(outcome, duration)
        if permit.local is not None:
            with self._lock:
                transition = machine.record(permit.local, outcome, now)
            if transition is not None:
                self._announce(transition)
        else:
            with self._lock:
                if outcome is Outcome.SUCCESS:
                    machine.success_count += 1
                elif outcome is Outcome.FAILURE:
                    machine.failure_count += 1
                    machine.last_failure_at = now
            if not permit.untracked:
                await self._report(permit, outcome, now)
        self._emit_outcome(outcome, duration, error)

    async def _report(self, permit: SharedPermit, outcome: Outcome, now: float) -> None:
        if outcome is Outcome.IGNORED:
            if permit.probe:
                # Cancelled: release the probe without delaying the cancellation.
                task = asyncio.ensure_future(self.step("ignored", permit.epoch, permit.probe))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return
        if outcome is Outcome.SUCCESS and not permit.probe and self.failures == 0:
            return  # nothing to reset: the last known streak is already 0
        op: Op = "success" if outcome is Outcome.SUCCESS else "failure"
        snapshot = await self.step(op, permit.epoch, permit.probe)
        if snapshot is None and self.on_store_error == "local":
            machine = self._machine
            with self._lock:
                transition = machine.record(Permit(machine.epoch), outcome, now)
            if transition is not None:
                self._announce(transition)

    def _admit_degraded(self, now: float) -> SharedPermit | CircuitOpenError:
        if self.on_store_error == "open":
            return _UNTRACKED
        if self.on_store_error == "closed":
            return self._refuse(max(0.0, self._retry_store_at - now))
        if self.shared_state is _O and now < self.open_until:
            return self._refuse(open_wait(self.open_until, self.config.recovery_timeout, now))
        admitted = self._admit()
        if admitted is None:
            return _UNTRACKED
        if isinstance(admitted, CircuitOpenError):
            return admitted
        return SharedPermit(-1, local=admitted)

    def _refuse(self, retry_after: float) -> CircuitOpenError:
        self._machine.rejected_count += 1
        return self._refusal(retry_after)

    def _store_failed(self, now: float, exc: Exception) -> None:
        self._retry_store_at = now + self.sync_interval
        if not self.available:
            return
        self.available = False
        # The error's own text says why (a refused connection, a script error), redacted.
        detail = error_text(exc)
        self._log.warning(
            "breaker.store_unreachable",
            policy=self.on_store_error,
            error=type(exc).__name__,
            retry_in=self.sync_interval,
            **({"message": detail} if detail else {}),
        )
        if self.on_store_error == "local":
            # Start the outage from a clean local circuit; the last known OPEN still holds.
            with self._lock:
                self._machine.reset(now)

    def _apply(self, snapshot: Snapshot) -> None:
        now = self._now()
        old = self._state_at(now)
        self.fetched_at = now
        self.failures = snapshot.failures
        self.forced = snapshot.forced
        if snapshot.epoch != self.epoch:
            self.epoch = snapshot.epoch
            self._closed_permit = SharedPermit(snapshot.epoch)
        if snapshot.state is _C:
            self.opened_at = None
        else:
            self.opened_at = now - snapshot.opened_ago
        if snapshot.state is _O:
            self.open_until = math.inf if snapshot.forced else now + snapshot.open_remaining
        self.shared_state = snapshot.state
        new = self._state_at(now)
        if new is not old:
            event = _OBSERVED.get((old, new), Event.FORCE_OPEN if new is _O else Event.RESET)
            self._announce(Transition(old, new, event, now))


CircuitBreaker._shared_strategy = SharedCircuitBreaker
