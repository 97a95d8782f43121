"""``HealthHistory``: recorded health runs and metrics, retention, and anomaly checks over them.

This file owns the boundary: input checked before a store is touched, times
from the injected clock, retention, and choosing the store. Stored values and
the in-process store live in ``_store``, SQL storage in ``_sql``; the anomaly
rules are the pure ones in ``anomaly``, fed exactly the part of each series
they can look at.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from buttress._exceptions import ValidationError
from buttress._seam import resolve_store
from buttress.backends import Backend
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.health.report import HealthReport
from buttress.log import get_logger
from buttress.monitoring._core import DropRule, FlatRule, Rule, SpikeRule, detect
from buttress.monitoring._store import HISTORY_STORES, HistoryStore, MemoryHistoryStore
from buttress.monitoring._values import (
    LATENCY_PREFIX,
    Anomaly,
    ComponentRecord,
    HealthRecord,
    Sample,
)

__all__ = [
    "LATENCY_PREFIX",
    "ComponentRecord",
    "HealthHistory",
    "HealthRecord",
    "HistoryStore",
    "MemoryHistoryStore",
    "check_metric_name",
    "check_metrics",
]

MAX_METRIC_NAME = 200
MAX_RETENTION_DAYS = 36_525  # a century: far enough, and clear of datetime's range
PRUNE_EVERY = 100
"""``record`` prunes on its first call and then once every this many calls (or hour)."""
PRUNE_INTERVAL = 3600.0

# until is exclusive; timestamps have microsecond resolution in every store, so
# "at or before now" is "before now + 1 µs".
_TICK = timedelta(microseconds=1)


def _retention_days(value: float | None) -> timedelta | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_RETENTION_DAYS
    ):
        raise ValidationError(
            "retention_days", f"must be a number of days > 0 and <= {MAX_RETENTION_DAYS}, or None"
        )
    return timedelta(days=value)


def _retention_rows(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("retention_rows", "must be an int >= 1, or None")
    return value


def check_metric_name(field: str, name: object, *, allow_latency: bool) -> str:
    """``name`` if it can name a series, else a ``ValidationError`` on ``field``."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(field, "metric names must be non-empty strings")
    if len(name) > MAX_METRIC_NAME:
        raise ValidationError(field, f"metric names are at most {MAX_METRIC_NAME} characters")
    if name.startswith(LATENCY_PREFIX):
        if not allow_latency:
            raise ValidationError(
                field, f"the {LATENCY_PREFIX!r} prefix is reserved for component latencies"
            )
        if len(name) == len(LATENCY_PREFIX):
            raise ValidationError(field, f"{LATENCY_PREFIX!r} must be followed by a component")
    return name


def check_metrics(
    field: str, metrics: Mapping[str, float] | None, *, taken: Mapping[str, float] | None = None
) -> dict[str, float]:
    """``metrics`` (None: none) as floats, once every name is a metric name without
    the latency prefix, none of ``taken``'s, and every value a finite number."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ValidationError(field, f"must be a mapping, not {type(metrics).__name__}")
    checked: dict[str, float] = {}
    for name, value in metrics.items():
        check_metric_name(field, name, allow_latency=False)
        where = f"{field}[{name!r}]"
        if taken is not None and name in taken:
            raise ValidationError(where, "collides with a metric the collector reports")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(where, f"must be a number, not {type(value).__name__}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ValidationError(where, "must be a finite number")
        checked[name] = number
    return checked


def _aware(field: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(field, "must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _optional_time(field: str, value: datetime | None) -> datetime | None:
    return None if value is None else _aware(field, value)


def _check_rules(rules: Iterable[Rule]) -> list[Rule]:
    checked = list(rules)
    for index, rule in enumerate(checked):
        if not isinstance(rule, DropRule | SpikeRule | FlatRule):
            raise ValidationError(
                f"rules[{index}]", f"must be a DropRule, SpikeRule or FlatRule, not "
                f"{type(rule).__name__}"
            )  # fmt: skip
        check_metric_name(f"rules[{index}].metric", rule.metric, allow_latency=True)
    return checked


def _lookback(rule: Rule, latest: Sample, now: datetime) -> datetime:
    """The oldest moment ``rule`` can look at, given the newest sample and ``now``."""
    if isinstance(rule, FlatRule):
        return now - rule.period
    return latest.at - rule.window


class HealthHistory:
    """Health runs and metrics over time, with retention and anomaly checks.

    ``record`` stores one row per run; ``series`` reads one metric back (a
    free-form metric name, or ``latency:<component>``); ``check`` runs anomaly
    rules over what was recorded. Runs older than ``retention_days`` and all
    but the newest ``retention_rows`` are pruned (``None`` turns a limit off).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        retention_days: float | None = 30,
        retention_rows: int | None = 100_000,
    ) -> None:
        self.retention = _retention_days(retention_days)
        self.retention_rows = _retention_rows(retention_rows)
        self._store = resolve_store(backend, HISTORY_STORES)
        self._clock = clock
        self._since_prune = 0
        self._pruned_at: float | None = None
        self._log = get_logger("monitoring")

    async def record(
        self, report: HealthReport, metrics: Mapping[str, float] | None = None
    ) -> None:
        """Store ``report`` (status, each component's status and latency) and ``metrics``.

        The run is recorded at ``report.timestamp``. Metric names are non-empty
        strings not starting with ``latency:``; values finite numbers. Bad input
        raises ``ValidationError`` before anything is written.
        """
        if not isinstance(report, HealthReport):
            raise ValidationError("report", f"must be a HealthReport, not {type(report).__name__}")
        record = HealthRecord(
            id=0,
            recorded_at=_aware("report.timestamp", report.timestamp),
            status=report.status,
            version=report.version,
            components={
                name: ComponentRecord(c.status, float(c.latency_ms))
                for name, c in report.components.items()
            },
            metrics=check_metrics("metrics", metrics),
        )
        await self._store.insert(record)
        self._log.debug(
            "health_recorded", status=record.status.value, components=len(record.components),
            metrics=len(record.metrics),
        )  # fmt: skip
        await self._maybe_prune()

    async def _maybe_prune(self) -> None:
        # Retention costs a delete or two: run it on the first record and then
        # now and again, so the table stays bounded without a separate job.
        self._since_prune += 1
        now = self._clock.monotonic()
        due = (
            self._pruned_at is None
            or self._since_prune >= PRUNE_EVERY
            or now - self._pruned_at >= PRUNE_INTERVAL
        )
        if not due:
            return
        self._since_prune = 0
        self._pruned_at = now
        try:
            await self.prune()
        except Exception as exc:  # noqa: BLE001 - the run is stored; the next prune retries
            self._log.warning("health_history_prune_failed", error=type(exc).__name__)

    async def prune(self) -> int:
        """Apply retention now; return how many runs were deleted."""
        older_than = None if self.retention is None else self._clock.now() - self.retention
        deleted = await self._store.prune(older_than, self.retention_rows)
        if deleted:
            self._log.info("health_history_pruned", deleted=deleted)
        return deleted

    async def series(
        self, metric: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Sample]:
        """``metric``'s samples with ``since <= at < until``, oldest first.

        ``metric`` is a free-form metric name or ``latency:<component>``; runs
        without it are skipped.
        """
        check_metric_name("metric", metric, allow_latency=True)
        start = _optional_time("since", since)
        end = _optional_time("until", until)
        if start is not None and end is not None and end < start:
            raise ValidationError("until", "must not be before since")
        return await self._store.series(metric, start, end)

    async def recent(self, limit: int = 50) -> list[HealthRecord]:
        """The newest ``limit`` recorded runs, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit", "must be an int >= 1")
        return await self._store.recent(limit)

    async def count(self) -> int:
        """How many runs are stored."""
        return await self._store.count()

    async def check(self, rules: Iterable[Rule], now: datetime | None = None) -> list[Anomaly]:
        """Anomalies ``rules`` find in the recorded series, in the order of ``rules``.

        The verdict is ``detect`` over every sample at or before ``now``
        (default the clock's now); only the part of each series a rule can look
        at is read.
        """
        checked = _check_rules(rules)
        at = _aware("now", now) if now is not None else self._clock.now()
        series = {}
        for metric in dict.fromkeys(rule.metric for rule in checked):
            series[metric] = await self._series_for(
                metric, [r for r in checked if r.metric == metric], at
            )
        found = []
        for rule in checked:
            found.extend(detect(series[rule.metric], [rule], at))
        if found:
            self._log.info(
                "anomalies_found", count=len(found), metrics=sorted({a.metric for a in found})
            )
        return found

    async def _series_for(self, metric: str, rules: Sequence[Rule], now: datetime) -> list[Sample]:
        until = now + _TICK
        latest = await self._store.last_before(metric, until)
        if latest is None:
            return []
        since = min(_lookback(rule, latest, now) for rule in rules)
        samples = await self._store.series(metric, since, until)
        # FlatRule fires only once the series covers its period: one sample at or
        # before the period's start is enough to tell, wherever it lies.
        uncovered = [
            rule
            for rule in rules
            if isinstance(rule, FlatRule) and (not samples or samples[0].at > now - rule.period)
        ]
        if uncovered:
            older = await self._store.last_before(metric, since)
            if older is not None:
                samples.insert(0, older)
        return samples
