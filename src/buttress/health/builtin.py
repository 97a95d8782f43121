"""Ready-made checks for things the process can see for itself.

Each factory returns a check to pass to ``HealthRegistry.register``: a backend
ping, PostgreSQL pool saturation, free disk space, circuit-breaker states,
schema validity and applied migrations. They duck-type their subjects or look
them up at run time, so this module imports no driver.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, runtime_checkable

from buttress._exceptions import ValidationError
from buttress.health._lazy import MIGRATOR, SCHEMA_VALIDATOR, find
from buttress.health.registry import HealthRegistry
from buttress.health.report import ComponentStatus
from buttress.health.status import Status, aggregate

__all__ = [
    "BreakerLike",
    "Pingable",
    "backend_ping",
    "breaker_states",
    "disk_free",
    "migrations_applied",
    "pool_saturation",
    "register_standard",
    "schema_valid",
]


@runtime_checkable
class Pingable(Protocol):
    """Anything with ``async ping()`` (every ``buttress`` backend)."""

    def ping(self) -> Awaitable[object]: ...


class BreakerLike(Protocol):
    """A circuit breaker as far as health cares: a name and a state."""

    @property
    def name(self) -> str: ...


def _ratio(field: str, value: float) -> float:
    if isinstance(value, bool) or not 0 <= value <= 1:
        raise ValidationError(field, "must be a fraction between 0 and 1")
    return float(value)


def backend_ping(
    backend: Pingable, *, degraded_after: float | None = None
) -> Callable[[], Awaitable[ComponentStatus]]:
    """Check that ``backend`` answers ``ping()``.

    ``ping()`` returning a number is read as its latency in seconds; above
    ``degraded_after`` seconds the backend counts as degraded (slow, but up).
    """
    if degraded_after is not None and not degraded_after > 0:
        raise ValidationError("degraded_after", "must be > 0 seconds")
    kind = getattr(backend, "kind", None)
    label = kind if isinstance(kind, str) else type(backend).__name__

    async def ping_check() -> ComponentStatus:
        measured = await backend.ping()
        if (
            degraded_after is not None
            and isinstance(measured, int | float)
            and not isinstance(measured, bool)
            and measured > degraded_after
        ):
            return ComponentStatus(
                Status.DEGRADED,
                f"{label} answered in {measured:.3f} s (slower than {degraded_after:g} s)",
                component_type="datastore",
            )
        return ComponentStatus(Status.HEALTHY, component_type="datastore")

    return ping_check


def pool_saturation(
    backend: object, *, degraded_at: float = 0.8, unhealthy_at: float = 1.0
) -> Callable[[], ComponentStatus]:
    """Check how much of a connection pool is in use (asyncpg-style pool).

    Reads ``backend.pool`` (or ``backend`` itself) through ``get_size()``,
    ``get_idle_size()`` and ``get_max_size()``; in use / max at or above
    ``degraded_at`` is degraded, at or above ``unhealthy_at`` unhealthy.
    """
    degraded_at = _ratio("degraded_at", degraded_at)
    unhealthy_at = _ratio("unhealthy_at", unhealthy_at)
    if degraded_at > unhealthy_at:
        raise ValidationError("degraded_at", "must not be above unhealthy_at")
    pool = getattr(backend, "pool", backend)
    for method in ("get_size", "get_idle_size", "get_max_size"):
        if not callable(getattr(pool, method, None)):
            raise ValidationError("backend", f"has no connection pool with {method}()")

    def saturation_check() -> ComponentStatus:
        size = int(pool.get_size())  # type: ignore[attr-defined]  # checked above
        idle = int(pool.get_idle_size())  # type: ignore[attr-defined]  # checked above
        maximum = int(pool.get_max_size())  # type: ignore[attr-defined]  # checked above
        in_use = max(0, size - idle)
        used = in_use / maximum if maximum > 0 else 1.0
        status = Status.HEALTHY
        if used >= unhealthy_at:
            status = Status.UNHEALTHY
        elif used >= degraded_at:
            status = Status.DEGRADED
        message = None if status is Status.HEALTHY else f"{in_use} of {maximum} connections in use"
        return ComponentStatus(
            status,
            message,
            component_type="datastore",
            measurement="utilization",
            observed_value=round(used * 100, 1),
            observed_unit="percent",
        )

    return saturation_check


def disk_free(
    path: str = ".",
    *,
    min_free_bytes: int | None = None,
    min_free_ratio: float = 0.05,
    degraded_ratio: float = 0.10,
) -> Callable[[], ComponentStatus]:
    """Check the free space on the file system holding ``path``.

    Below ``min_free_ratio`` of the disk (or ``min_free_bytes``) is unhealthy,
    below ``degraded_ratio`` degraded. A sync check: the registry runs it in a
    thread, so a hung network mount times out instead of blocking.
    """
    min_free_ratio = _ratio("min_free_ratio", min_free_ratio)
    degraded_ratio = _ratio("degraded_ratio", degraded_ratio)
    if min_free_ratio > degraded_ratio:
        raise ValidationError("min_free_ratio", "must not be above degraded_ratio")
    if min_free_bytes is not None and (isinstance(min_free_bytes, bool) or min_free_bytes < 0):
        raise ValidationError("min_free_bytes", "must be an int >= 0")

    def disk_check() -> ComponentStatus:
        usage = shutil.disk_usage(path)
        ratio = usage.free / usage.total if usage.total else 0.0
        status = Status.HEALTHY
        if ratio < min_free_ratio or (min_free_bytes is not None and usage.free < min_free_bytes):
            status = Status.UNHEALTHY
        elif ratio < degraded_ratio:
            status = Status.DEGRADED
        message = (
            None
            if status is Status.HEALTHY
            else f"{usage.free / 2**30:.2f} GiB free ({ratio:.1%}) on the disk holding {path}"
        )
        return ComponentStatus(
            status,
            message,
            component_type="system",
            measurement="diskFree",
            observed_value=usage.free,
            observed_unit="bytes",
        )

    return disk_check


def _state_name(breaker: object) -> str:
    state = getattr(breaker, "state", None)
    if state is None:
        stats = getattr(breaker, "stats", None)
        if callable(stats):
            state = getattr(stats(), "state", None)
    value = getattr(state, "value", state)
    return str(value).lower().replace("-", "_") if value is not None else "unknown"


def breaker_states(
    breakers: Iterable[object] | Callable[[], Iterable[object]],
) -> Callable[[], ComponentStatus]:
    """Check circuit breakers: any open (or half-open, probing) → degraded.

    ``breakers`` is a collection, or a callable returning one (read at each run,
    so breakers created later are included). A breaker is anything with
    ``.name`` and ``.state`` (or ``stats().state``); states are compared by
    name (``closed``/``open``/``half_open``).
    """
    if not callable(breakers):
        fixed = list(breakers)

        def source() -> Iterable[object]:
            return fixed

    else:
        source = breakers

    def breakers_check() -> ComponentStatus:
        statuses: list[Status] = []
        troubled: list[str] = []
        for breaker in source():
            state = _state_name(breaker)
            name = str(getattr(breaker, "name", type(breaker).__name__))
            if state == "closed":
                statuses.append(Status.HEALTHY)
            else:
                statuses.append(Status.DEGRADED)
                troubled.append(f"{name} {state}")
        status = aggregate(statuses)
        message = None if not troubled else "breakers not closed: " + ", ".join(sorted(troubled))
        return ComponentStatus(
            status,
            message,
            component_type="component",
            measurement="openBreakers",
            observed_value=len(troubled),
        )

    return breakers_check


def _summary(items: list[str], limit: int = 3) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _describe(finding: object) -> str:
    where = ".".join(
        str(part)
        for part in (getattr(finding, "table", None), getattr(finding, "column", None))
        if part
    )
    message = str(getattr(finding, "message", finding))
    return f"{where}: {message}" if where else message


def _datastore_status(
    errors: list[str], warning: str | None, *, measurement: str, observed_value: int
) -> ComponentStatus:
    """Unhealthy with ``errors``, else degraded with ``warning``, else healthy."""
    if errors:
        status, message = Status.UNHEALTHY, _summary(errors)
    elif warning is not None:
        status, message = Status.DEGRADED, warning
    else:
        status, message = Status.HEALTHY, None
    return ComponentStatus(
        status,
        message,
        component_type="datastore",
        measurement=measurement,
        observed_value=observed_value,
    )


def schema_valid(backend: object, schema: object) -> Callable[[], Awaitable[ComponentStatus]]:
    """Check the live database against a declared schema (``SchemaValidator``).

    Errors (missing required tables or columns, type mismatches) are unhealthy;
    warnings alone degrade.
    """

    async def schema_check() -> ComponentStatus:
        validator_cls = find("SchemaValidator", SCHEMA_VALIDATOR)
        if validator_cls is None:
            return ComponentStatus(Status.UNHEALTHY, "buttress.schema is not installed")
        report = await validator_cls(backend, schema).validate()
        errors = [_describe(f) for f in getattr(report, "errors", ())]
        warnings = [_describe(f) for f in getattr(report, "warnings", ())]
        return _datastore_status(
            errors,
            _summary(warnings) if warnings else None,
            measurement="schemaErrors",
            observed_value=len(errors),
        )

    return schema_check


def migrations_applied(
    backend: object, directory: object
) -> Callable[[], Awaitable[ComponentStatus]]:
    """Check that every migration in ``directory`` is applied, checksums matching.

    Validation errors (checksum drift, missing files) are unhealthy; pending
    migrations degrade (the code is ahead of the database).
    """

    async def migrations_check() -> ComponentStatus:
        factory = find("Migrator", MIGRATOR)
        if factory is None:
            return ComponentStatus(Status.UNHEALTHY, "buttress.migrations is not installed")
        migrator = factory(backend, directory)
        problems: list[str] = []
        validate = getattr(migrator, "validate", None)
        if callable(validate):
            found = await validate()
            found = getattr(found, "errors", found)
            if isinstance(found, Iterable) and not isinstance(found, str | bytes):
                problems = [_describe(p) for p in found]
        pending: list[str] = []
        status_fn = getattr(migrator, "status", None)
        if callable(status_fn):
            state = await status_fn()
            waiting = getattr(state, "pending", ())
            if isinstance(waiting, Iterable) and not isinstance(waiting, str | bytes):
                pending = [str(getattr(m, "name", None) or m) for m in waiting]
        return _datastore_status(
            problems,
            f"{len(pending)} pending: {_summary(pending)}" if pending else None,
            measurement="pendingMigrations",
            observed_value=len(pending),
        )

    return migrations_check


def register_standard(
    registry: HealthRegistry,
    backend: object | None = None,
    *,
    disk_path: str | None = ".",
    breakers: Iterable[object] | Callable[[], Iterable[object]] | None = None,
) -> list[str]:
    """Register the usual checks and return their names.

    ``backend`` (ping; plus pool saturation when it has an asyncpg-style pool),
    ``disk`` for ``disk_path`` (skip with ``None``) and ``breakers`` (non-critical:
    an open breaker means the service degrades on purpose).
    """
    names: list[str] = []
    if backend is not None:
        if not callable(getattr(backend, "ping", None)):
            raise ValidationError("backend", "must have an async ping() method")
        registry.register("backend", backend_ping(backend))  # type: ignore[arg-type]  # checked above
        names.append("backend")
        pool = getattr(backend, "pool", None)
        if pool is not None and callable(getattr(pool, "get_max_size", None)):
            registry.register("backend_pool", pool_saturation(backend), critical=False)
            names.append("backend_pool")
    if disk_path is not None:
        registry.register("disk", disk_free(disk_path))
        names.append("disk")
    if breakers is not None:
        registry.register("breakers", breaker_states(breakers), critical=False)
        names.append("breakers")
    return names
