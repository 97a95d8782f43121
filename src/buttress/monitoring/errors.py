"""Error statistics: captured errors counted by category, severity and component.

``ErrorStats`` keeps a bounded sliding window of per-bucket counts in memory
(fed by ``buttress.errors.capture`` once installed, and optionally by logged
errors) and can persist per-minute counts to ``buttress_error_events``, which
``check_system_health()`` and ``buttress errors`` read. ``summarize`` and
``ErrorRateRule`` are pure: counts and a ``now`` in, a summary or an anomaly out.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import attrs

from buttress.backends import Backend, SqlBackend, from_db_time
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import (
    ContextualError,
    ErrorCategory,
    Severity,
    UnsupportedBackendError,
    ValidationError,
)
from buttress.errors._capture import add_capture_listener, remove_capture_listener
from buttress.log import get_logger
from buttress.monitoring.anomaly import AlertLevel, Anomaly, human_period

__all__ = [
    "OTHER_COMPONENT",
    "TABLE",
    "ErrorCount",
    "ErrorRateRule",
    "ErrorStats",
    "ErrorSummary",
    "read_error_counts",
    "summarize",
]

TABLE = "buttress_error_events"
# Until the shared table list names it, say which migration creates the table.

OTHER_COMPONENT = "(other)"
"""Where a bucket counts components beyond ``max_keys`` distinct keys."""
MAX_COMPONENT = 200
PERSIST_SECONDS = 60
"""Persisted counts are per minute (aligned to the minute since the Unix epoch)."""
_PRUNE_INTERVAL = 3600.0

_Key = tuple[str, str, str]


@attrs.frozen(slots=True)
class ErrorCount:
    """``count`` errors of one kind in the bucket ``[at, at + seconds)``."""

    at: datetime
    seconds: float
    category: str
    severity: str
    component: str
    count: int

    def overlaps(self, since: datetime, until: datetime) -> bool:
        """Whether the bucket shares any moment with ``[since, until]``."""
        return self.at <= until and self.at + timedelta(seconds=self.seconds) > since

    def to_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "seconds": self.seconds,
            "category": self.category,
            "severity": self.severity,
            "component": self.component,
            "count": self.count,
        }


def _matches(
    count: ErrorCount, category: str | None, severity: str | None, component: str | None
) -> bool:
    return (
        (category is None or count.category == category)
        and (severity is None or count.severity == severity)
        and (component is None or count.component == component)
    )


def _ranked(totals: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


@attrs.frozen(slots=True)
class ErrorSummary:
    """Totals over a window: overall and by category, severity and component (largest first)."""

    since: datetime
    until: datetime
    total: int
    by_category: dict[str, int]
    by_severity: dict[str, int]
    by_component: dict[str, int]

    @property
    def per_minute(self) -> float:
        minutes = (self.until - self.since).total_seconds() / 60
        return self.total / minutes if minutes > 0 else float(self.total)

    def to_dict(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "total": self.total,
            "per_minute": round(self.per_minute, 3),
            "by_category": dict(self.by_category),
            "by_severity": dict(self.by_severity),
            "by_component": dict(self.by_component),
        }


def summarize(counts: Iterable[ErrorCount], since: datetime, until: datetime) -> ErrorSummary:
    """Totals of the buckets overlapping ``[since, until]``.

    A bucket is counted whole when it overlaps the window, so the totals are
    exact to one bucket width (an upper bound, never an undercount).
    """
    _aware("since", since)
    _aware("until", until)
    if until < since:
        raise ValidationError("until", "must not be before since")
    total = 0
    by_category: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    by_component: dict[str, int] = {}
    for count in counts:
        if not count.overlaps(since, until):
            continue
        total += count.count
        by_category[count.category] = by_category.get(count.category, 0) + count.count
        by_severity[count.severity] = by_severity.get(count.severity, 0) + count.count
        by_component[count.component] = by_component.get(count.component, 0) + count.count
    return ErrorSummary(
        since, until, total, _ranked(by_category), _ranked(by_severity), _ranked(by_component)
    )


def _aware(field: str, value: object) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(field, "must be a timezone-aware datetime")


def _check_rate(field: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(field, "must be a finite number of errors per minute > 0")


def _positive_rate(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    _check_rate(attribute.name, value)


def _optional_rate(
    _instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None:
        _check_rate(attribute.name, value)


def _positive_window(
    _instance: object, attribute: attrs.Attribute[timedelta], value: timedelta
) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ValidationError(attribute.name, "must be a positive timedelta")


def _optional_name(
    _instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError(attribute.name, "must be a non-empty string or None")


@attrs.frozen
class ErrorRateRule:
    """More than ``per_minute`` errors a minute over the trailing ``window`` is an anomaly.

    ``ErrorRateRule(10)`` warns when more than 10 errors were counted in the
    last minute; ``critical`` (optional, larger) escalates. ``category``,
    ``severity`` and ``component`` narrow what is counted. The result is an
    ``Anomaly`` like the health rules', so ``alert_level`` combines them.
    """

    per_minute: float = attrs.field(default=10.0, validator=_positive_rate)
    critical: float | None = attrs.field(default=None, validator=_optional_rate)
    window: timedelta = attrs.field(default=timedelta(minutes=1), validator=_positive_window)
    category: str | None = attrs.field(default=None, validator=_optional_name)
    severity: str | None = attrs.field(default=None, validator=_optional_name)
    component: str | None = attrs.field(default=None, validator=_optional_name)

    def __attrs_post_init__(self) -> None:
        if self.critical is not None and self.critical < self.per_minute:
            raise ValidationError("critical", "must be >= per_minute")

    @property
    def metric(self) -> str:
        """``errors_per_minute``, with the filters appended (``[category=database]``)."""
        filters = [
            f"{name}={value}"
            for name, value in (
                ("category", self.category),
                ("severity", self.severity),
                ("component", self.component),
            )
            if value is not None
        ]
        return "errors_per_minute" + (f"[{','.join(filters)}]" if filters else "")

    def rate(self, counts: Iterable[ErrorCount], now: datetime) -> float:
        """Errors per minute over the window ending at ``now`` (buckets counted whole)."""
        _aware("now", now)
        since = now - self.window
        total = sum(
            c.count
            for c in counts
            if c.overlaps(since, now) and _matches(c, self.category, self.severity, self.component)
        )
        return total / (self.window.total_seconds() / 60)

    def check(self, counts: Sequence[ErrorCount], now: datetime) -> Anomaly | None:
        rate = self.rate(counts, now)
        if self.critical is not None and rate > self.critical:
            level = AlertLevel.CRITICAL
        elif rate > self.per_minute:
            level = AlertLevel.WARNING
        else:
            return None
        limit = self.critical if level is AlertLevel.CRITICAL else self.per_minute
        return Anomaly(
            self.metric,
            "error_rate",
            level,
            f"{rate:g} errors a minute over the last {human_period(self.window)} "
            f"(more than {limit:g})",
            rate,
            limit,
        )


def _bucket_seconds(value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= PERSIST_SECONDS
        or PERSIST_SECONDS % value != 0
    ):
        raise ValidationError("bucket_seconds", "must be > 0, <= 60 and divide 60 evenly")
    return float(value)


def _window(value: timedelta) -> timedelta:
    if not isinstance(value, timedelta) or not timedelta(0) < value <= timedelta(days=7):
        raise ValidationError("window", "must be a positive timedelta of at most 7 days")
    return value


def _positive_number(field: str, value: float, unit: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(field, f"must be a finite number of {unit} > 0")
    return float(value)


def _positive_int(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(field, "must be an int >= 1")
    return value


def _name(field: str, value: object) -> str:
    if isinstance(value, str) and value:
        return value[:MAX_COMPONENT]
    raise ValidationError(field, "must be a non-empty string")


# StrEnum members hash and compare like their values, so one lookup serves both.
_CATEGORIES: Mapping[str, str] = {member.value: member.value for member in ErrorCategory}
_SEVERITIES: Mapping[str, str] = {member.value: member.value for member in Severity}


def _enum_value(field: str, values: Mapping[str, str], value: object) -> str:
    found = values.get(value) if isinstance(value, str) else None
    if found is None:
        raise ValidationError(field, f"must be one of {', '.join(values)}")
    return found


def _sql_backend(backend: Backend | None) -> SqlBackend | None:
    if backend is None or getattr(backend, "kind", None) == "memory":
        return None
    if isinstance(backend, SqlBackend):
        return backend
    raise UnsupportedBackendError(
        f"ErrorStats persists to a sqlite or postgresql backend, not {backend.kind!r}"
    )


async def read_error_counts(
    backend: SqlBackend, since: datetime, until: datetime | None = None
) -> list[ErrorCount]:
    """The persisted per-minute counts overlapping ``[since, until]``, oldest first.

    Raises ``MissingTableError`` when migration ``0008_system_health`` has not run.
    """
    _aware("since", since)
    if until is not None:
        _aware("until", until)
    dialect = backend.dialect
    sql = f"SELECT bucket, category, severity, component, count FROM {TABLE} WHERE bucket > ?"
    args: list[object] = [dialect.to_db_time(since - timedelta(seconds=PERSIST_SECONDS))]
    if until is not None:
        sql += " AND bucket <= ?"
        args.append(dialect.to_db_time(until))
    sql += " ORDER BY bucket, category, severity, component"
    try:
        rows = await backend.fetch(dialect.placeholders(sql), *args)
    except Exception as exc:
        missing = await dialect.explain_missing(backend, exc, "ErrorStats", [TABLE])
        if missing is not None:
            raise missing from exc
        raise
    return [
        ErrorCount(
            from_db_time(row["bucket"]),
            PERSIST_SECONDS,
            str(row["category"]),
            str(row["severity"]),
            str(row["component"]),
            int(row["count"]),
        )
        for row in rows
    ]


_UPSERT = (
    f"INSERT INTO {TABLE} (bucket, category, severity, component, count) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (bucket, category, severity, component) "
    f"DO UPDATE SET count = {TABLE}.count + excluded.count"
)

_LOG_LEVEL_SEVERITY = {"error": Severity.HIGH, "exception": Severity.HIGH,
                       "critical": Severity.CRITICAL, "fatal": Severity.CRITICAL}  # fmt: skip


class ErrorStats:
    """Counts of errors by (category, severity, component) over a sliding window.

    In memory, counts live in buckets of ``bucket_seconds`` covering ``window``
    (older buckets are dropped), each with at most ``max_keys`` distinct keys
    (further components count as ``(other)``), so memory is bounded whatever
    the error rate. With a SQL ``backend``, per-minute counts also wait in a
    bounded buffer (``max_pending`` entries) until ``flush`` writes them to
    ``buttress_error_events``; ``start``/``async with`` flush every
    ``flush_interval`` seconds. ``record`` is sync, thread-safe and does no I/O.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        window: timedelta = timedelta(hours=1),
        bucket_seconds: float = 5.0,
        max_keys: int = 1000,
        max_pending: int = 10_000,
        flush_interval: float = 10.0,
        retention_days: float = 7.0,
    ) -> None:
        self.window = _window(window)
        self.bucket_seconds = _bucket_seconds(bucket_seconds)
        self.max_keys = _positive_int("max_keys", max_keys)
        self.max_pending = _positive_int("max_pending", max_pending)
        self.flush_interval = _positive_number("flush_interval", flush_interval, "seconds")
        self.retention = timedelta(days=_positive_number("retention_days", retention_days, "days"))
        self._backend = _sql_backend(backend)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[_Key, int]] = {}
        self._pending: dict[tuple[int, _Key], int] = {}
        self.dropped = 0
        """Counts lost because the persistence buffer was full (a database down for long)."""
        self._keep = math.ceil(self.window.total_seconds() / self.bucket_seconds) + 1
        self._task: asyncio.Task[None] | None = None
        self._pruned_at: float | None = None
        self._log = get_logger("monitoring")

    @property
    def persistent(self) -> bool:
        """Whether counts are also written to ``buttress_error_events``."""
        return self._backend is not None

    def record(
        self,
        category: ErrorCategory | str,
        severity: Severity | str,
        component: str,
        count: int = 1,
    ) -> None:
        """Count ``count`` errors of this kind now."""
        key = (
            _enum_value("category", _CATEGORIES, category),
            _enum_value("severity", _SEVERITIES, severity),
            _name("component", component),
        )
        self._add(key, _positive_int("count", count))

    def observe(self, error: ContextualError) -> None:
        """Count one captured error (the listener ``install`` adds to ``capture``)."""
        # Already validated by ContextualError: the hot path skips the checks.
        component = error.context.component[:MAX_COMPONENT]
        self._add((error.category.value, error.severity.value, component), 1)

    def _add(self, key: _Key, count: int) -> None:
        at = self._clock.now().timestamp()
        index = math.floor(at / self.bucket_seconds)
        with self._lock:
            bucket = self._buckets.get(index)
            if bucket is None:
                bucket = self._buckets[index] = {}
                self._expire(index)
            key = _bump(bucket, key, count, self.max_keys)
            if self._backend is not None:
                self._queue(math.floor(at / PERSIST_SECONDS), key, count)

    def install(self) -> Self:
        """Count every error ``buttress.errors.capture`` (and ``with_error_handling``) captures."""
        add_capture_listener(self.observe)
        return self

    def uninstall(self) -> None:
        remove_capture_listener(self.observe)

    def log_processor(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """A structlog processor counting every event logged at error level or above.

        Events from ``capture`` (``error_captured``) are skipped: ``install``
        counts those with their real classification. Others count as category
        ``system``, severity ``high`` (``critical`` for critical), under the
        event's ``component`` (default ``log``).
        """
        severity = _LOG_LEVEL_SEVERITY.get(method_name)
        if severity is not None and event_dict.get("event") != "error_captured":
            component = event_dict.get("component")
            with contextlib.suppress(Exception):
                self.record(
                    ErrorCategory.SYSTEM,
                    severity,
                    component if isinstance(component, str) and component else "log",
                )
        return event_dict

    def _expire(self, newest: int) -> None:
        oldest = newest - self._keep
        for index in [i for i in self._buckets if i <= oldest]:
            del self._buckets[index]

    def _queue(self, minute: int, key: _Key, count: int) -> None:
        slot = (minute, key)
        if slot not in self._pending and len(self._pending) >= self.max_pending:
            self.dropped += count
            return
        self._pending[slot] = self._pending.get(slot, 0) + count

    def counts(self) -> list[ErrorCount]:
        """Every in-memory bucket's counts, oldest first."""
        now = self._clock.now()
        with self._lock:
            self._expire(math.floor(now.timestamp() / self.bucket_seconds))
            snapshot = [(index, dict(bucket)) for index, bucket in sorted(self._buckets.items())]
        return [
            ErrorCount(
                datetime.fromtimestamp(index * self.bucket_seconds, UTC),
                self.bucket_seconds,
                *key,
                count,
            )
            for index, bucket in snapshot
            for key, count in sorted(bucket.items())
        ]

    def summary(self, window: timedelta | None = None) -> ErrorSummary:
        """Totals over the trailing ``window`` (default: the whole window kept)."""
        span = self.window if window is None else _window(window)
        now = self._clock.now()
        return summarize(self.counts(), now - span, now)

    def count(
        self,
        window: timedelta = timedelta(minutes=1),
        *,
        category: ErrorCategory | str | None = None,
        severity: Severity | str | None = None,
        component: str | None = None,
    ) -> int:
        """Errors in the trailing ``window`` matching the filters (buckets counted whole)."""
        span = _window(window)
        now = self._clock.now()
        wanted_category = (
            None if category is None else _enum_value("category", _CATEGORIES, category)
        )
        wanted_severity = (
            None if severity is None else _enum_value("severity", _SEVERITIES, severity)
        )
        return sum(
            c.count
            for c in self.counts()
            if c.overlaps(now - span, now)
            and _matches(c, wanted_category, wanted_severity, component)
        )

    def metrics(self) -> dict[str, float]:
        """``errors_last_minute``, ``errors_last_hour`` (capped by the window kept) for history."""
        counts = self.counts()
        now = self._clock.now()
        hour = min(self.window, timedelta(hours=1))
        return {
            "errors_last_minute": float(summarize(counts, now - timedelta(minutes=1), now).total),
            "errors_last_hour": float(summarize(counts, now - hour, now).total),
        }

    def check(self, rules: Iterable[ErrorRateRule]) -> list[Anomaly]:
        """Anomalies the rules find in the in-memory counts now, in the order of ``rules``."""
        checked = list(rules)
        for index, rule in enumerate(checked):
            if not isinstance(rule, ErrorRateRule):
                raise ValidationError(f"rules[{index}]", "must be an ErrorRateRule")
        counts = self.counts()
        now = self._clock.now()
        found = [a for a in (rule.check(counts, now) for rule in checked) if a is not None]
        if found:
            self._log.info("error_rate_anomalies", count=len(found))
        return found

    async def flush(self) -> int:
        """Write the buffered per-minute counts; return how many rows were upserted.

        On failure the counts go back into the buffer (nothing is lost while
        it has room) and the backend's error is raised.
        """
        backend = self._backend
        if backend is None:
            return 0
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            await self._maybe_prune(backend)
            return 0
        dialect = backend.dialect
        rows = [
            (dialect.to_db_time(datetime.fromtimestamp(minute * PERSIST_SECONDS, UTC)), *key, count)
            for (minute, key), count in sorted(pending.items())
        ]
        try:
            await backend.executemany(dialect.placeholders(_UPSERT), rows)
        except Exception as exc:
            with self._lock:
                for (minute, key), count in pending.items():
                    self._queue(minute, key, count)
            missing = await dialect.explain_missing(backend, exc, "ErrorStats", [TABLE])
            if missing is not None:
                raise missing from exc
            raise
        await self._maybe_prune(backend)
        return len(rows)

    async def _maybe_prune(self, backend: SqlBackend) -> None:
        now = self._clock.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < _PRUNE_INTERVAL:
            return
        self._pruned_at = now
        cutoff = backend.dialect.to_db_time(self._clock.now() - self.retention)
        try:
            await backend.execute(
                backend.dialect.placeholders(f"DELETE FROM {TABLE} WHERE bucket < ?"), cutoff
            )
        except Exception as exc:  # noqa: BLE001 - the counts are written; the next prune retries
            self._log.warning("error_events_prune_failed", error=type(exc).__name__)

    async def start(self) -> None:
        """Install the capture listener; with a SQL backend, flush every ``flush_interval`` s."""
        self.install()
        if self._backend is not None and self._task is None:
            self._task = asyncio.create_task(self._flush_forever())

    async def stop(self) -> None:
        """Uninstall, stop flushing, and flush what is buffered (failures are logged)."""
        self.uninstall()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - stopping must not fail on a lost database
            self._log.warning("error_events_flush_failed", error=type(exc).__name__)

    async def _flush_forever(self) -> None:
        while True:
            await self._clock.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the buffer keeps the counts; retry later
                self._log.warning(
                    "error_events_flush_failed", error=type(exc).__name__, dropped=self.dropped
                )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _bump(bucket: dict[_Key, int], key: _Key, count: int, max_keys: int) -> _Key:
    if key not in bucket and len(bucket) >= max_keys:
        key = (key[0], key[1], OTHER_COMPONENT)
    bucket[key] = bucket.get(key, 0) + count
    return key
