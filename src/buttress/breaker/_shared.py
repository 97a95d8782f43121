"""A circuit shared by a fleet: a local cache of the store's state, and outage policy.

The store (Redis or PostgreSQL) owns the truth and decides every transition
atomically. Each instance keeps the last snapshot it saw and re-reads it at
least every ``sync_interval`` while it is being called, so when one instance
opens the circuit every other rejects within that interval. Round trips per
call: none for a success while the known streak is 0 (plus one read per
interval), one for a failure (record and decide together), one to ask for a
half-open probe and one to report it. When the store cannot be reached the
``on_store_error`` policy decides, logged once per outage.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Literal

import attrs

from buttress._checks import check_seconds
from buttress.backends import resolve_store
from buttress.breaker._errors import CircuitOpenError
from buttress.breaker._state import BreakerState, Event, Outcome, Permit, Transition
from buttress.breaker._store import BREAKER_STORES, Op, SharedStore, Snapshot, StepParams
from buttress.errors import SchemaMissingError, ValidationError

if TYPE_CHECKING:
    from buttress.breaker._breaker import CircuitBreaker

__all__ = ["STORE_ERROR_POLICIES", "SharedCircuit", "SharedPermit", "StoreErrorPolicy", "attach"]

StoreErrorPolicy = Literal["local", "open", "closed"]
STORE_ERROR_POLICIES: tuple[StoreErrorPolicy, ...] = ("local", "open", "closed")

_C, _O, _H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
_OBSERVED: dict[tuple[BreakerState, BreakerState], Event] = {
    (_C, _O): Event.TRIP,
    (_O, _H): Event.RECOVERY_ELAPSED,
    (_C, _H): Event.RECOVERY_ELAPSED,
    (_H, _C): Event.PROBE_SUCCEEDED,
    (_H, _O): Event.PROBE_FAILED,
    (_O, _C): Event.RESET,
}


@attrs.frozen(slots=True)
class SharedPermit:
    """The right to run one call: shared (epoch, probe id) or, during an outage, local."""

    epoch: int
    probe: str = ""
    local: Permit | None = None
    untracked: bool = False


_UNTRACKED = SharedPermit(-1, untracked=True)


def _positive_seconds(field: str, value: object) -> float:
    return check_seconds(field, value)


def attach(
    breaker: CircuitBreaker,
    backend: object,
    *,
    sync_interval: float,
    on_store_error: str,
    store_timeout: float,
) -> SharedCircuit | None:
    """Build the shared circuit for ``backend``, or None when state stays in-process."""
    interval = _positive_seconds("sync_interval", sync_interval)
    timeout = _positive_seconds("store_timeout", store_timeout)
    if on_store_error not in STORE_ERROR_POLICIES:
        raise ValidationError("on_store_error", "must be one of 'local', 'open', 'closed'")
    store = resolve_store(backend, BREAKER_STORES) if backend is not None else None
    if store is None:
        return None
    config = breaker.config
    if config.failure_threshold is None or config.uses_window:
        raise ValidationError(
            "failure_rate_threshold",
            "a shared breaker supports the consecutive-failure trigger only",
        )
    params = StepParams(
        failure_threshold=config.failure_threshold,
        recovery_timeout=config.recovery_timeout,
        half_open_max_calls=config.half_open_max_calls,
        probe_timeout=config.probe_timeout,
    )
    policy: StoreErrorPolicy = on_store_error
    return SharedCircuit(breaker, store, params, interval, policy, timeout)


class SharedCircuit:
    """The client side of a shared circuit, owned by one ``CircuitBreaker``."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        store: SharedStore,
        params: StepParams,
        sync_interval: float,
        on_store_error: StoreErrorPolicy,
        store_timeout: float,
    ) -> None:
        self._breaker = breaker
        self._store = store
        self._params = params
        self._now = breaker._now
        self.sync_interval = sync_interval
        self.on_store_error: StoreErrorPolicy = on_store_error
        self.store_timeout = store_timeout
        self.available = True
        self._retry_store_at = -math.inf
        self._background: set[asyncio.Task[object]] = set()
        self.fetched_at = -math.inf
        self.state = BreakerState.CLOSED
        self.epoch = 0
        self.failures = 0
        self.forced = False
        self.open_until = -math.inf
        self.opened_at: float | None = None
        self._closed_permit = SharedPermit(0)

    def __repr__(self) -> str:
        return f"SharedCircuit(store={self._store!r}, sync_interval={self.sync_interval})"

    def state_at(self, now: float) -> BreakerState:
        """The state as this instance knows it (no I/O)."""
        if not self.available:
            if self.on_store_error == "open":
                return _C
            if self.on_store_error == "closed":
                return _O
            if not (self.state is _O and now < self.open_until):
                return self._breaker._machine.state_at(now)
        if self.state is _O and not self.forced and now >= self.open_until:
            return _H
        return self.state

    async def step(self, op: Op, epoch: int = 0, probe: str = "") -> Snapshot | None:
        """One round trip to the store; None when it cannot be reached (policy applies)."""
        now = self._now()
        if not self.available and now < self._retry_store_at:
            return None
        try:
            async with asyncio.timeout(self.store_timeout):
                snapshot = await self._store.step(
                    self._breaker.name, op, epoch, probe, self._params
                )
        except SchemaMissingError:
            raise  # a deployment mistake, not an outage: no policy can make it work
        except Exception as exc:  # noqa: BLE001  (any store failure means the outage policy applies)
            self._store_failed(now, exc)
            return None
        if not self.available:
            self.available = True
            self._breaker._log.info("breaker.store_recovered")
        self._apply(snapshot)
        return snapshot

    async def admit(self) -> SharedPermit | CircuitOpenError:
        now = self._now()
        if now - self.fetched_at >= self.sync_interval:
            await self.step("read")
            now = self._now()
        if not self.available:
            return self._admit_degraded(now)
        if self.state is _C:
            return self._closed_permit
        if self.state is _O and now < self.open_until:
            return self._refuse(self._open_retry_after(now))
        snapshot = await self.step("admit")
        if snapshot is None:
            return self._admit_degraded(self._now())
        if snapshot.decision == "rejected":
            return self._refuse(snapshot.retry_after)
        if snapshot.decision == "probe":
            return SharedPermit(snapshot.epoch, snapshot.granted)
        return self._closed_permit

    async def finish(
        self,
        permit: SharedPermit,
        outcome: Outcome,
        start: float,
        error: BaseException | None,
    ) -> None:
        breaker = self._breaker
        machine = breaker._machine
        now = self._now()
        duration = now - start
        outcome = machine.classify_duration(outcome, duration)
        if permit.local is not None:
            with breaker._lock:
                transition = machine.record(permit.local, outcome, now)
            if transition is not None:
                breaker._announce(transition)
        else:
            with breaker._lock:
                if outcome is Outcome.SUCCESS:
                    machine.success_count += 1
                elif outcome is Outcome.FAILURE:
                    machine.failure_count += 1
                    machine.last_failure_at = now
            if not permit.untracked:
                await self._report(permit, outcome, now)
        breaker._emit_outcome(outcome, duration, error)

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
            machine = self._breaker._machine
            with self._breaker._lock:
                transition = machine.record(Permit(machine.epoch), outcome, now)
            if transition is not None:
                self._breaker._announce(transition)

    def _admit_degraded(self, now: float) -> SharedPermit | CircuitOpenError:
        if self.on_store_error == "open":
            return _UNTRACKED
        if self.on_store_error == "closed":
            return self._refuse(max(0.0, self._retry_store_at - now))
        if self.state is _O and now < self.open_until:
            return self._refuse(self._open_retry_after(now))
        admitted = self._breaker._admit()
        if isinstance(admitted, CircuitOpenError):
            return admitted
        return SharedPermit(-1, local=admitted)

    def _open_retry_after(self, now: float) -> float:
        return self._params.recovery_timeout if self.forced else self.open_until - now

    def _refuse(self, retry_after: float) -> CircuitOpenError:
        self._breaker._machine.rejected_count += 1
        return self._breaker._refusal(retry_after)

    def _store_failed(self, now: float, exc: Exception) -> None:
        self._retry_store_at = now + self.sync_interval
        if not self.available:
            return
        self.available = False
        self._breaker._log.warning(
            "breaker.store_unreachable",
            policy=self.on_store_error,
            error=type(exc).__name__,
            retry_in=self.sync_interval,
        )
        if self.on_store_error == "local":
            # Start the outage from a clean local circuit; the last known OPEN still holds.
            with self._breaker._lock:
                self._breaker._machine.reset(now)

    def _apply(self, snapshot: Snapshot) -> None:
        now = self._now()
        old = self.state_at(now)
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
        self.state = snapshot.state
        new = self.state_at(now)
        if new is not old:
            event = _OBSERVED.get((old, new), Event.FORCE_OPEN if new is _O else Event.RESET)
            self._breaker._announce(Transition(old, new, event, now))
