"""``ErrorStats``: the collector of captured errors, in memory and optionally persisted.

It keeps a bounded sliding window of per-bucket counts in memory (fed by
``buttress.errors.capture`` once installed, and optionally by logged errors)
and, on a SQL backend, hands per-minute counts to the error-event store, which
``check_system_health()`` and ``buttress errors`` read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from buttress._checks import check_count
from buttress._context import Running, cancel_and_wait
from buttress._exceptions import ValidationError
from buttress._seam import resolve_store
from buttress.backends import Backend
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import (
    ContextualError,
    ErrorCategory,
    Severity,
    add_capture_listener,
    remove_capture_listener,
)
from buttress.log import get_logger
from buttress.monitoring._core import alert_level
from buttress.monitoring._values import AlertLevel, Anomaly
from buttress.monitoring.errors._core import bump, summarize
from buttress.monitoring.errors._store import ERROR_EVENT_STORES, ErrorEventStore
from buttress.monitoring.errors._values import (
    ERROR_COUNTED,
    MAX_COMPONENT,
    PERSIST_SECONDS,
    CountKey,
    ErrorCount,
    ErrorCounted,
    ErrorRateRule,
    ErrorSummary,
    matches,
)

__all__ = [
    "ErrorStats",
    "check_rules",
]

_PRUNE_INTERVAL = 3600.0


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


def check_rules(rules: Iterable[ErrorRateRule], field: str = "rules") -> list[ErrorRateRule]:
    """``rules`` as a list, or ``ValidationError`` naming the first that is no ``ErrorRateRule``."""
    checked = list(rules)
    for index, rule in enumerate(checked):
        if not isinstance(rule, ErrorRateRule):
            raise ValidationError(f"{field}[{index}]", "must be an ErrorRateRule")
    return checked


_LOG_LEVEL_SEVERITY = {"error": Severity.HIGH, "exception": Severity.HIGH,
                       "critical": Severity.CRITICAL, "fatal": Severity.CRITICAL}  # fmt: skip


class ErrorStats(Running):
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
        self.max_keys = check_count("max_keys", max_keys, at_least=1)
        self.max_pending = check_count("max_pending", max_pending, at_least=1)
        self.flush_interval = _positive_number("flush_interval", flush_interval, "seconds")
        self.retention = timedelta(days=_positive_number("retention_days", retention_days, "days"))
        self._store = resolve_store(backend, ERROR_EVENT_STORES) if backend is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[CountKey, int]] = {}
        self._pending: dict[tuple[int, CountKey], int] = {}
        self.dropped = 0
        """Counts lost because the persistence buffer was full (a database down for long)."""
        self._keep = math.ceil(self.window.total_seconds() / self.bucket_seconds) + 1
        self._task: asyncio.Task[None] | None = None
        self._pruned_at: float | None = None
        self._log = get_logger("monitoring")

    @property
    def persistent(self) -> bool:
        """Whether counts are also written to ``buttress_error_events``."""
        return self._store is not None

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
        self._add(key, check_count("count", count, at_least=1))

    def observe(self, error: ContextualError) -> None:
        """Count one captured error (the listener ``install`` adds to ``capture``)."""
        # Already validated by ContextualError: the hot path skips the checks.
        component = error.context.component[:MAX_COMPONENT]
        self._add((error.category.value, error.severity.value, component), 1)

    def _add(self, key: CountKey, count: int) -> None:
        at = self._clock.now().timestamp()
        index = math.floor(at / self.bucket_seconds)
        with self._lock:
            bucket = self._buckets.get(index)
            if bucket is None:
                bucket = self._buckets[index] = {}
                self._expire(index)
            key = bump(bucket, key, count, self.max_keys)
            if self._store is not None:
                self._queue(math.floor(at / PERSIST_SECONDS), key, count)
        # Outside the lock: a listener may read these statistics.
        if ERROR_COUNTED.listeners:
            ERROR_COUNTED.publish(ErrorCounted(*key, count))

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

    def _queue(self, minute: int, key: CountKey, count: int) -> None:
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
            and matches(c, wanted_category, wanted_severity, component)
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
        found = self._anomalies(rules)
        if found:
            self._log.info("error_rate_anomalies", count=len(found))
        return found

    def alert_level(self, rules: Iterable[ErrorRateRule]) -> AlertLevel:
        """The worst level the rules find now (HEALTHY when none); logs nothing,
        so a metrics scrape can ask as often as it likes."""
        return alert_level(self._anomalies(rules))

    def _anomalies(self, rules: Iterable[ErrorRateRule]) -> list[Anomaly]:
        checked = check_rules(rules)
        counts = self.counts()
        now = self._clock.now()
        return [a for a in (rule.check(counts, now) for rule in checked) if a is not None]

    async def flush(self) -> int:
        """Write the buffered per-minute counts; return how many rows were upserted.

        On failure the counts go back into the buffer (nothing is lost while
        it has room) and the backend's error is raised.
        """
        store = self._store
        if store is None:
            return 0
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            await self._maybe_prune(store)
            return 0
        counts = [
            (datetime.fromtimestamp(minute * PERSIST_SECONDS, UTC), *key, count)
            for (minute, key), count in sorted(pending.items())
        ]
        try:
            await store.add(counts)
        except Exception:
            with self._lock:
                for (minute, key), count in pending.items():
                    self._queue(minute, key, count)
            raise
        await self._maybe_prune(store)
        return len(counts)

    async def _maybe_prune(self, store: ErrorEventStore) -> None:
        now = self._clock.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < _PRUNE_INTERVAL:
            return
        self._pruned_at = now
        try:
            await store.prune(self._clock.now() - self.retention)
        except Exception as exc:  # noqa: BLE001 - the counts are written; the next prune retries
            self._log.warning("error_events_prune_failed", error=type(exc).__name__)

    async def start(self) -> None:
        """Install the capture listener; with a SQL backend, flush every ``flush_interval`` s."""
        self.install()
        if self._store is not None and self._task is None:
            self._task = asyncio.create_task(self._flush_forever())

    async def stop(self) -> None:
        """Uninstall, stop flushing, and flush what is buffered (failures are logged)."""
        self.uninstall()
        task, self._task = self._task, None
        await cancel_and_wait(task)
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
