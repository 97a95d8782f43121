"""Error-statistics values: per-bucket counts, summaries and the error-rate rule.

Frozen and validated at construction. ``ErrorRateRule.check`` is pure: counts
and a ``now`` in, an anomaly (or None) out. Messages name the field and rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from buttress._exceptions import ValidationError
from buttress._topic import Topic
from buttress.monitoring._core import human_period
from buttress.monitoring._values import AlertLevel, Anomaly

__all__ = [
    "ERROR_COUNTED",
    "MAX_COMPONENT",
    "OTHER_COMPONENT",
    "PERSIST_SECONDS",
    "TABLE",
    "CountKey",
    "ErrorCount",
    "ErrorCounted",
    "ErrorRateRule",
    "ErrorSummary",
    "_check_rate",
    "_optional_name",
    "_optional_rate",
    "_positive_rate",
    "_positive_window",
    "check_aware",
    "matches",
    "ranked",
]


TABLE = "buttress_error_events"


OTHER_COMPONENT = "(other)"
"""Where a bucket counts components beyond ``max_keys`` distinct keys."""


MAX_COMPONENT = 200


PERSIST_SECONDS = 60
"""Persisted counts are per minute (aligned to the minute since the Unix epoch)."""


CountKey = tuple[str, str, str]


@attrs.frozen(slots=True)
class ErrorCounted:
    """``ErrorStats`` counted ``count`` errors of this kind (``component`` as counted,
    ``(other)`` past the key limit)."""

    category: str
    severity: str
    component: str
    count: int = 1


ERROR_COUNTED: Topic[ErrorCounted] = Topic("errors.counted")
"""Every count an ``ErrorStats`` takes (captured, logged or recorded errors)."""


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


def matches(
    count: ErrorCount, category: str | None, severity: str | None, component: str | None
) -> bool:
    return (
        (category is None or count.category == category)
        and (severity is None or count.severity == severity)
        and (component is None or count.component == component)
    )


def ranked(totals: Mapping[str, int]) -> dict[str, int]:
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


def check_aware(field: str, value: object) -> None:
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

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: the thresholds, the window in seconds and the filters."""
        return {
            "metric": self.metric,
            "per_minute": self.per_minute,
            "critical": self.critical,
            "window_seconds": self.window.total_seconds(),
            "category": self.category,
            "severity": self.severity,
            "component": self.component,
        }

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
        check_aware("now", now)
        since = now - self.window
        total = sum(
            c.count
            for c in counts
            if c.overlaps(since, now) and matches(c, self.category, self.severity, self.component)
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
