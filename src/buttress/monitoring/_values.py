"""Monitoring values: recorded health runs, samples of a metric, anomalies and alert levels.

Frozen and validated at construction; nothing here detects, stores or reads a clock.
"""

from __future__ import annotations

import enum
import math
from datetime import datetime

import attrs

from buttress._exceptions import ValidationError
from buttress.health.status import Status

__all__ = [
    "LATENCY_PREFIX",
    "AlertLevel",
    "Anomaly",
    "ComponentRecord",
    "HealthRecord",
    "Sample",
    "check_finite",
    "check_metric_name_attr",
]


class AlertLevel(enum.IntEnum):
    """Overall verdict; the value is the exit code ``buttress doctor`` uses."""

    HEALTHY = 0
    WARNING = 1
    CRITICAL = 2


def _aware(_instance: object, attribute: attrs.Attribute[datetime], value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(attribute.name, "must be a timezone-aware datetime")


def check_finite(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(attribute.name, "must be a finite number")


@attrs.frozen
class Sample:
    """One recorded value of a metric at a moment."""

    at: datetime = attrs.field(validator=_aware)
    value: float = attrs.field(validator=check_finite)


def check_metric_name_attr(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(attribute.name, "must be a non-empty string")


@attrs.frozen
class Anomaly:
    """What a rule found: which metric, how bad, and a sentence for humans."""

    metric: str
    rule: str
    level: AlertLevel
    message: str
    observed: float
    baseline: float | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: the level as its lower-case name (``warning``)."""
        return {**attrs.asdict(self), "level": self.level.name.lower()}


LATENCY_PREFIX = "latency:"
"""``series("latency:db")`` is component ``db``'s latency in ms; free-form names may not use it."""


@attrs.frozen(slots=True)
class ComponentRecord:
    """One component's outcome as recorded: its status and latency."""

    status: Status
    latency_ms: float

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status.value, "latency_ms": self.latency_ms}


@attrs.frozen(slots=True)
class HealthRecord:
    """One recorded health run: status, components and free-form metrics at a moment."""

    id: int
    recorded_at: datetime
    status: Status
    version: str | None
    components: dict[str, ComponentRecord]
    metrics: dict[str, float]

    def value(self, metric: str) -> float | None:
        """The value ``series(metric)`` reads from this run, or None when absent."""
        if metric.startswith(LATENCY_PREFIX):
            component = self.components.get(metric[len(LATENCY_PREFIX) :])
            return None if component is None else component.latency_ms
        return self.metrics.get(metric)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: the time as ISO 8601 text, statuses as their words."""
        return {
            "id": self.id,
            "recorded_at": self.recorded_at.isoformat(),
            "status": self.status.value,
            "version": self.version,
            "components": {name: c.to_dict() for name, c in self.components.items()},
            "metrics": dict(self.metrics),
        }
