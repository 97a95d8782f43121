"""Where a shared circuit lives: the store protocol, its values and the in-process store.

A store runs one step of the shared state machine (load, apply one operation,
save, answer a ``Snapshot``) atomically, in one round trip, on its own clock;
it keeps no state of its own beyond that. The Redis and PostgreSQL stores live
in ``_redis.py`` and ``_sql.py``; ``buttress.backends.STORES`` says which serves
which backend. On a memory backend a breaker keeps its circuit in process.
"""

from __future__ import annotations

import threading
from typing import Literal, Protocol, runtime_checkable

import attrs

from buttress._seam import Seam
from buttress.breaker._core import BreakerMachine
from buttress.breaker._values import BreakerConfig, BreakerState, Outcome, Permit, Rejected
from buttress.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "BREAKER_STORES",
    "MemoryBreakerStore",
    "Op",
    "SharedStore",
    "Snapshot",
    "StepParams",
    "in_process",
]

Op = Literal["read", "admit", "success", "failure", "ignored", "reset", "force_open"]


@attrs.frozen(slots=True)
class StepParams:
    """The breaker's settings the store needs to decide (sent with every step)."""

    failure_threshold: int
    recovery_timeout: float
    half_open_max_calls: int
    probe_timeout: float


@attrs.frozen(slots=True)
class Snapshot:
    """The shared circuit after one step, as the store saw it on its own clock.

    ``state`` already reads HALF_OPEN once the recovery timeout has passed.
    ``open_remaining`` is how long it stays open (0 unless OPEN; ignored when
    ``forced``). ``decision`` answers an ``admit``: "allowed", "probe" (with
    ``granted`` the probe id) or "rejected" (with ``retry_after``).
    """

    state: BreakerState
    epoch: int
    failures: int
    open_remaining: float
    forced: bool
    decision: str = ""
    granted: str = ""
    retry_after: float = 0.0
    opened_ago: float = 0.0


@runtime_checkable
class SharedStore(Protocol):
    """Runs one step of the shared state machine, atomically, in one round trip."""

    async def step(
        self, name: str, op: Op, epoch: int, probe: str, params: StepParams
    ) -> Snapshot: ...


BREAKER_STORES: Seam[SharedStore | None] = Seam("breaker", "a shared CircuitBreaker", SharedStore)
"""Where a breaker given a backend finds its shared circuit (``buttress.backends.STORES``)."""


def in_process(backend: object) -> None:
    """On a memory backend there is no fleet to share with: the circuit stays local."""
    return


class MemoryBreakerStore:
    """The shared step in this process, on ``BreakerMachine``: for tests and examples.

    Several breakers given the same ``MemoryBreakerStore`` behave like a fleet
    sharing one Redis, on the store's ``clock``.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._machines: dict[str, BreakerMachine] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryBreakerStore()"

    async def step(self, name: str, op: Op, epoch: int, probe: str, params: StepParams) -> Snapshot:
        now = self._clock.monotonic()
        with self._lock:
            machine = self._machines.get(name)
            if machine is None:
                machine = self._machines[name] = BreakerMachine(
                    BreakerConfig(
                        failure_threshold=params.failure_threshold,
                        recovery_timeout=params.recovery_timeout,
                        half_open_max_calls=params.half_open_max_calls,
                        probe_timeout=params.probe_timeout,
                    )
                )
            decision = granted = ""
            retry_after = 0.0
            if op == "admit":
                answer = machine.admit(now)
                if isinstance(answer, Rejected):
                    decision, retry_after = "rejected", answer.retry_after
                elif answer.permit.probe is not None:
                    decision, granted = "probe", str(answer.permit.probe)
                else:
                    decision = "allowed"
            elif op in ("success", "failure", "ignored"):
                permit = Permit(epoch, int(probe) if probe else None)
                machine.record(permit, Outcome(op), now)
            elif op == "reset":
                machine.reset(now)
            elif op == "force_open":
                machine.force_open(now)
            state = machine.state_at(now)
            open_remaining = 0.0
            if state is BreakerState.OPEN and not machine.forced:
                open_remaining = machine.open_until - now
            opened_at = machine.opened_at
            return Snapshot(
                state=state,
                epoch=machine.epoch,
                failures=machine.consecutive_failures,
                open_remaining=open_remaining,
                forced=machine.forced,
                decision=decision,
                granted=granted,
                retry_after=retry_after,
                opened_ago=0.0 if opened_at is None else now - opened_at,
            )
