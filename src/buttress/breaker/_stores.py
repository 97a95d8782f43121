"""Where a shared circuit lives: one atomic step per round trip on Redis or PostgreSQL.

A store only loads, decides (with the scripts in ``_shared_scripts.py``) and
answers a ``Snapshot``; it keeps no state of its own. Drivers are imported
lazily, so ``import buttress`` never loads redis or asyncpg.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import attrs

from buttress.breaker._config import BreakerConfig
from buttress.breaker._shared_scripts import REDIS_SCRIPT
from buttress.breaker._state import BreakerMachine, BreakerState, Outcome, Permit, Rejected
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import SchemaMissingError, UnsupportedBackendError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from buttress.backends import PostgresBackend

__all__ = [
    "BREAKER_MIGRATION",
    "BreakerSchemaMissingError",
    "MemoryBreakerStore",
    "Op",
    "PostgresBreakerStore",
    "RedisBreakerStore",
    "SharedStore",
    "Snapshot",
    "StepParams",
    "store_for",
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


def _state(value: str) -> BreakerState:
    return BreakerState(value)


class RedisBreakerStore:
    """A shared circuit in two Redis keys, moved by one Lua script call per step."""

    _SHA = hashlib.sha1(REDIS_SCRIPT.encode()).hexdigest()

    def __init__(self, client: Redis, *, prefix: str = "buttress:breaker:", ttl: int = 86_400):
        self._client = client
        self._prefix = prefix
        self._ttl = ttl

    def __repr__(self) -> str:
        return f"RedisBreakerStore(prefix={self._prefix!r})"

    async def step(self, name: str, op: Op, epoch: int, probe: str, params: StepParams) -> Snapshot:
        from redis.exceptions import NoScriptError

        # The braces are a hash tag: both keys land on one Redis Cluster slot.
        base = f"{self._prefix}{{{name}}}"
        keys = (base, f"{base}:probes")
        ttl = max(self._ttl, int(params.recovery_timeout * 2) + 1)
        args = (
            op,
            epoch,
            probe,
            params.failure_threshold,
            repr(params.recovery_timeout),
            params.half_open_max_calls,
            repr(params.probe_timeout),
            ttl,
        )
        try:
            raw = await self._client.evalsha(self._SHA, len(keys), *keys, *args)
        except NoScriptError:
            raw = await self._client.eval(REDIS_SCRIPT, len(keys), *keys, *args)
        return _redis_snapshot(raw)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _redis_snapshot(raw: Sequence[object]) -> Snapshot:
    fields = [_text(item) for item in raw]
    return Snapshot(
        state=_state(fields[0]),
        epoch=int(fields[1]),
        failures=int(fields[2]),
        open_remaining=float(fields[3]),
        forced=fields[4] == "1",
        decision=fields[5],
        granted=fields[6],
        retry_after=float(fields[7]),
        opened_ago=float(fields[8]),
    )


BREAKER_MIGRATION = "0007_breaker_state"
_TABLE = "buttress_breaker_state"
_FUNCTION = (
    "buttress_breaker_step(text, text, bigint, text, integer, "
    "double precision, integer, double precision)"
)
_STEP = "SELECT * FROM buttress_breaker_step($1, $2, $3, $4, $5, $6, $7, $8)"
# undefined_function, undefined_table, undefined_object (the %ROWTYPE of a dropped table).
_UNDEFINED = frozenset({"42883", "42P01", "42704"})
# to_regclass/to_regprocedure resolve through search_path, as the unqualified step does.
_MISSING_QUERY = (
    f"SELECT to_regclass('{_TABLE}') IS NULL AS no_table, "
    f"to_regprocedure('{_FUNCTION}') IS NULL AS no_function"
)


class BreakerSchemaMissingError(SchemaMissingError):
    """The shared breaker's table or function is missing on PostgreSQL: buttress's
    own migrations have not run on this database (opened with ``migrate=False``).

    ``objects`` names what is missing; ``migration`` is the packaged migration
    that creates it.
    """

    def __init__(self, objects: Sequence[str]) -> None:
        self.objects = tuple(objects)
        self.migration = BREAKER_MIGRATION
        many = len(self.objects) > 1
        super().__init__(
            f"shared circuit breaker on PostgreSQL: {' and '.join(self.objects)} "
            f"{'are' if many else 'is'} missing (created by buttress's migration "
            f"{BREAKER_MIGRATION}, namespace 'buttress'); run `buttress migrate` or "
            "connect with migrate=True (the default), or call "
            "`await buttress.migrations.apply_builtin(backend)`"
        )


class PostgresBreakerStore:
    """A shared circuit in one row, moved by one function call (one statement) per step.

    The table and function come from buttress's packaged migration
    ``0007_breaker_state``; a database without them (opened with
    ``migrate=False`` and never migrated) raises ``BreakerSchemaMissingError``.
    """

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    def __repr__(self) -> str:
        return "PostgresBreakerStore()"

    async def _missing(self) -> list[str]:
        row = await self._backend.fetchrow(_MISSING_QUERY)
        assert row is not None  # a SELECT without FROM returns one row
        missing = []
        if row["no_table"]:
            missing.append(f"table {_TABLE}")
        if row["no_function"]:
            missing.append(f"function {_FUNCTION}")
        return missing

    async def step(self, name: str, op: Op, epoch: int, probe: str, params: StepParams) -> Snapshot:
        args = (
            name,
            op,
            epoch,
            probe,
            params.failure_threshold,
            params.recovery_timeout,
            params.half_open_max_calls,
            params.probe_timeout,
        )
        try:
            row = await self._backend.fetchrow(_STEP, *args)
        except Exception as exc:
            # Checked only on failure, so a migrated database pays nothing per step.
            if getattr(exc, "sqlstate", None) in _UNDEFINED:
                missing = await self._missing()
                if missing:
                    raise BreakerSchemaMissingError(missing) from exc
            raise
        assert row is not None  # the function always returns one row
        return Snapshot(
            state=_state(row["out_state"]),
            epoch=int(row["out_epoch"]),
            failures=int(row["out_failures"]),
            open_remaining=float(row["out_open_remaining"]),
            forced=bool(row["out_forced"]),
            decision=row["out_decision"],
            granted=row["out_granted"],
            retry_after=float(row["out_retry_after"]),
            opened_ago=float(row["out_opened_ago"]),
        )


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


def store_for(backend: object) -> SharedStore | None:
    """The store for a ``Backend`` (None for memory: the state stays in-process)."""
    if isinstance(backend, SharedStore):
        return backend
    kind = getattr(backend, "kind", None)
    if kind == "memory":
        return None
    if kind == "redis":
        client = backend.client  # type: ignore[attr-defined]  # RedisBackend, checked by kind
        return RedisBreakerStore(client)
    if kind == "postgresql":
        return PostgresBreakerStore(backend)  # type: ignore[arg-type]  # PostgresBackend, checked by kind
    raise UnsupportedBackendError(
        f"CircuitBreaker shares state on redis:// or postgresql:// backends, got {kind!r}"
    )
