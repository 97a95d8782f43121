"""Ready-made checks for things the process can see for itself.

Each factory returns a check to pass to ``HealthRegistry.register``: a backend
ping, PostgreSQL pool saturation, disk and memory usage, reachability of a TCP
service (a cache, a queue, anything with a port) or of any client's ping,
circuit-breaker states, schema validity and applied migrations. They duck-type
their subjects or look them up at run time, so this module imports no driver.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import socket
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from buttress._exceptions import ValidationError
from buttress.health._lazy import MIGRATOR, SCHEMA_VALIDATOR, find
from buttress.health.registry import HealthRegistry
from buttress.health.report import ComponentStatus
from buttress.health.status import Status, aggregate

__all__ = [
    "DEFAULT_PORTS",
    "BreakerLike",
    "Pingable",
    "backend_ping",
    "breaker_states",
    "disk_free",
    "disk_usage",
    "memory_usage",
    "migrations_applied",
    "pool_saturation",
    "reachable",
    "register_standard",
    "schema_valid",
    "tcp_reachable",
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


def _thresholds(degraded_at: float, unhealthy_at: float) -> tuple[float, float]:
    degraded_at = _ratio("degraded_at", degraded_at)
    unhealthy_at = _ratio("unhealthy_at", unhealthy_at)
    if degraded_at > unhealthy_at:
        raise ValidationError("degraded_at", "must not be above unhealthy_at")
    return degraded_at, unhealthy_at


def _usage_status(
    used: float,
    degraded_at: float,
    unhealthy_at: float,
    problem: str,
    *,
    component_type: str,
    measurement: str,
) -> ComponentStatus:
    """``used`` (a fraction) against the thresholds, reported in percent; the
    message is ``problem`` unless healthy."""
    if used >= unhealthy_at:
        status = Status.UNHEALTHY
    elif used >= degraded_at:
        status = Status.DEGRADED
    else:
        status = Status.HEALTHY
    return ComponentStatus(
        status,
        None if status is Status.HEALTHY else problem,
        component_type=component_type,
        measurement=measurement,
        observed_value=round(used * 100, 1),
        observed_unit="percent",
    )


def _response_time_status(
    done: str, elapsed: float, degraded_after: float | None, *, component_type: str
) -> ComponentStatus:
    """Healthy, or degraded when ``elapsed`` is over ``degraded_after``; in ms."""
    slow = degraded_after is not None and elapsed > degraded_after
    return ComponentStatus(
        Status.DEGRADED if slow else Status.HEALTHY,
        f"{done} in {elapsed:.3f} s (slower than {degraded_after:g} s)" if slow else None,
        component_type=component_type,
        measurement="responseTime",
        observed_value=round(elapsed * 1000, 3),
        observed_unit="ms",
    )


def pool_saturation(
    backend: object, *, degraded_at: float = 0.8, unhealthy_at: float = 1.0
) -> Callable[[], ComponentStatus]:
    """Check how much of a connection pool is in use (asyncpg-style pool).

    Reads ``backend.pool`` (or ``backend`` itself) through ``get_size()``,
    ``get_idle_size()`` and ``get_max_size()``; in use / max at or above
    ``degraded_at`` is degraded, at or above ``unhealthy_at`` unhealthy.
    """
    degraded_at, unhealthy_at = _thresholds(degraded_at, unhealthy_at)
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
        return _usage_status(
            used,
            degraded_at,
            unhealthy_at,
            f"{in_use} of {maximum} connections in use",
            component_type="datastore",
            measurement="utilization",
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


def disk_usage(
    path: str = ".", *, degraded_at: float = 0.85, unhealthy_at: float = 0.95
) -> Callable[[], ComponentStatus]:
    """Check how full the file system holding ``path`` is.

    Used space at or above ``degraded_at`` of the disk is degraded (85 % by
    default), at or above ``unhealthy_at`` unhealthy (95 %); measurement
    ``diskUsage`` in percent. A sync check: the registry runs it in a thread,
    so a hung network mount times out instead of blocking.
    """
    degraded_at, unhealthy_at = _thresholds(degraded_at, unhealthy_at)

    def disk_usage_check() -> ComponentStatus:
        usage = shutil.disk_usage(path)
        used = usage.used / usage.total if usage.total else 1.0
        return _usage_status(
            used,
            degraded_at,
            unhealthy_at,
            f"disk {used:.1%} full",
            component_type="system",
            measurement="diskUsage",
        )

    return disk_usage_check


_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge page-rounded number


def _number(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


def _stat_field(text: str | None, field: str) -> int:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == field and value.strip().isdigit():
            return int(value)
    return 0


def memory_fraction(read: Callable[[str], str | None]) -> tuple[float, str] | None:
    """The fraction of memory in use and where it was measured, from the files
    ``read(path)`` returns (``None`` for a missing file); ``None`` when no
    source is readable.

    A container's limit comes first (cgroup v2, then v1), counted as its working
    set (usage minus inactive file cache, as the kubelet counts it); without a
    limit, the machine's ``MemAvailable`` from ``/proc/meminfo``.
    """
    limit = _number(read("/sys/fs/cgroup/memory.max"))
    if limit:
        current = _number(read("/sys/fs/cgroup/memory.current"))
        if current is not None:
            inactive = _stat_field(read("/sys/fs/cgroup/memory.stat"), "inactive_file")
            return max(0, current - inactive) / limit, "container"
    limit = _number(read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
    if limit and limit < _UNLIMITED:
        current = _number(read("/sys/fs/cgroup/memory/memory.usage_in_bytes"))
        if current is not None:
            inactive = _stat_field(read("/sys/fs/cgroup/memory/memory.stat"), "total_inactive_file")
            return max(0, current - inactive) / limit, "container"
    fields: dict[str, int] = {}
    for line in (read("/proc/meminfo") or "").splitlines():
        name, _, rest = line.partition(":")
        number = rest.split()[0] if rest.split() else ""
        if number.isdigit():
            fields[name.strip()] = int(number)
    total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    if total and available is not None:
        return max(0.0, 1.0 - available / total), "machine"
    return None


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def memory_usage(
    *, degraded_at: float = 0.80, unhealthy_at: float = 0.95
) -> Callable[[], ComponentStatus]:
    """Check how much memory is in use: the container's limit when there is one
    (cgroup v2 or v1), else the machine's (``/proc/meminfo``).

    At or above ``degraded_at`` (80 % by default) degraded, at or above
    ``unhealthy_at`` (95 %) unhealthy; measurement ``memoryUsage`` in percent.
    Where none of those files exist (not Linux) the check is degraded with a
    message saying so, never a false healthy.
    """
    degraded_at, unhealthy_at = _thresholds(degraded_at, unhealthy_at)

    def memory_check() -> ComponentStatus:
        measured = memory_fraction(_read_text)
        if measured is None:
            return ComponentStatus(
                Status.DEGRADED,
                "memory usage cannot be read on this platform",
                component_type="system",
            )
        used, where = measured
        return _usage_status(
            used,
            degraded_at,
            unhealthy_at,
            f"{where} memory {used:.1%} in use",
            component_type="system",
            measurement="memoryUsage",
        )

    return memory_check


DEFAULT_PORTS: Mapping[str, int] = {
    "redis": 6379,
    "rediss": 6379,
    "amqp": 5672,
    "amqps": 5671,
    "kafka": 9092,
    "nats": 4222,
    "memcached": 11211,
    "postgresql": 5432,
    "postgres": 5432,
    "mysql": 3306,
    "mongodb": 27017,
    "http": 80,
    "https": 443,
}
"""The port ``tcp_reachable`` assumes for a URL of each scheme that names none."""


def _host_and_port(target: str, port: int | None) -> tuple[str, int]:
    if not isinstance(target, str) or not target.strip():
        raise ValidationError("target", "must be host:port, a host with port=, or a URL")
    if "://" in target:
        try:
            parts = urlsplit(target)
            host, given = parts.hostname, parts.port
        except ValueError:
            raise ValidationError("target", "must be a URL with a valid host and port") from None
        if not host:
            raise ValidationError("target", "must be a URL with a host")
        chosen = port or given or DEFAULT_PORTS.get(parts.scheme.lower())
        if chosen is None:
            raise ValidationError("port", f"is required for a {parts.scheme}:// URL")
        return host, _checked_port(chosen)
    host, colon, given_text = target.rpartition(":")
    plain_host = host.count(":") == 0 or host[:1] == "["  # not an unbracketed IPv6 address
    if colon and given_text.isdigit() and plain_host:
        if port is not None:
            raise ValidationError("port", "is given twice: in target and as port=")
        return host.strip("[]"), _checked_port(int(given_text))
    if port is None:
        raise ValidationError("port", "is required when target is a bare host")
    return target.strip("[]"), _checked_port(port)


def _checked_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValidationError("port", "must be an int from 1 to 65535")
    return port


def _failure(exc: BaseException, timeout: float) -> str:
    """A fixed reason for a failed connection: never the host, port or address."""
    if isinstance(exc, TimeoutError):
        return f"no connection within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "name does not resolve"
    if isinstance(exc, ssl_module.SSLError):
        return "TLS handshake failed"
    return f"unreachable ({type(exc).__name__})"


def tcp_reachable(
    target: str,
    port: int | None = None,
    *,
    timeout: float = 2.0,
    degraded_after: float | None = None,
    tls: ssl_module.SSLContext | bool = False,
) -> Callable[[], Awaitable[ComponentStatus]]:
    """Check that a TCP service accepts a connection (a cache, a queue, any port).

    ``target`` is ``"host:port"``, ``"[v6addr]:port"``, a bare host with
    ``port=``, or a URL (``redis://cache:6379/0``, ``amqp://mq``: a missing
    port is the scheme's usual one, ``DEFAULT_PORTS``); credentials in a URL
    are ignored and never shown. The connection is opened (and, with ``tls``,
    handshaken) within ``timeout`` seconds and closed at once; slower than
    ``degraded_after`` seconds is degraded. Messages name the failure (refused,
    timed out, unresolvable), never the host or port.
    """
    host, chosen = _host_and_port(target, port)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValidationError("timeout", "must be > 0 seconds")
    if degraded_after is not None and not degraded_after > 0:
        raise ValidationError("degraded_after", "must be > 0 seconds")
    context: ssl_module.SSLContext | None
    if tls is True:
        context = ssl_module.create_default_context()
    elif isinstance(tls, ssl_module.SSLContext):
        context = tls
    else:
        context = None

    async def tcp_check() -> ComponentStatus:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(
                    host, chosen, ssl=context, server_hostname=host if context else None
                )
        except (OSError, TimeoutError) as exc:
            reason = _failure(exc, timeout)
            return ComponentStatus(Status.UNHEALTHY, reason, component_type="system")
        elapsed = time.perf_counter() - started
        writer.close()
        try:
            async with asyncio.timeout(timeout):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass  # the connection was made; how it closes is not the service's health
        return _response_time_status("connected", elapsed, degraded_after, component_type="system")

    return tcp_check


def reachable(
    probe: Callable[[], object],
    *,
    degraded_after: float | None = None,
    component_type: str = "component",
) -> Callable[[], Awaitable[ComponentStatus]]:
    """Check any client through its own liveness call: ``reachable(redis.ping)``,
    ``reachable(channel.is_open)``, ``reachable(lambda: producer.bootstrap_connected())``.

    ``probe()`` (awaited when it returns an awaitable) answering anything but
    ``False`` or ``None`` is healthy; ``False``/``None`` unhealthy; raising or
    overrunning the registry's timeout unhealthy as for any check. Slower than
    ``degraded_after`` seconds is degraded.
    """
    if not callable(probe):
        raise ValidationError("probe", "must be a callable (a client's ping, for example)")
    if degraded_after is not None and not degraded_after > 0:
        raise ValidationError("degraded_after", "must be > 0 seconds")

    async def reachable_check() -> ComponentStatus:
        started = time.perf_counter()
        answer = probe()
        if inspect.isawaitable(answer):
            answer = await answer
        elapsed = time.perf_counter() - started
        if answer is None or answer is False:
            return ComponentStatus(
                Status.UNHEALTHY, "the probe answered no", component_type=component_type
            )
        return _response_time_status(
            "answered", elapsed, degraded_after, component_type=component_type
        )

    return reachable_check


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
