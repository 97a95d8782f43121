"""Health results as immutable values, and their renderings.

``ComponentStatus`` is one check's outcome, ``HealthReport`` one run's. This
module knows the output formats (the seed-compatible dict, the IETF
health-check draft, plain text for terminals) and nothing about running checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import attrs

from buttress._topic import Topic
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.health.status import Status, aggregate, effective_status
from buttress.responses import Envelope, success

__all__ = ["HEALTH_CHECKED", "ComponentStatus", "HealthChecked", "HealthReport", "render_text"]


def _non_negative_finite(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        from buttress._exceptions import ValidationError

        raise ValidationError(attribute.name, "must be a finite number >= 0")


@attrs.frozen(slots=True)
class ComponentStatus:
    """The outcome of one health check.

    A check may return one of these to say more than healthy/unhealthy: a
    message, a component type, or an observed measurement (``observed_value``
    in ``observed_unit``, published as ``name:measurement`` in health+json).
    The registry fills in ``latency_ms``, ``critical`` and ``checked_at``.
    """

    status: Status = attrs.field(validator=attrs.validators.instance_of(Status))
    message: str | None = None
    latency_ms: float = attrs.field(default=0.0, validator=_non_negative_finite)
    critical: bool = True
    checked_at: datetime | None = None
    component_type: str | None = None
    measurement: str | None = None
    observed_value: float | None = None
    observed_unit: str | None = None

    @classmethod
    def healthy(cls, message: str | None = None) -> ComponentStatus:
        return cls(Status.HEALTHY, message)

    @classmethod
    def degraded(cls, message: str | None = None) -> ComponentStatus:
        return cls(Status.DEGRADED, message)

    @classmethod
    def unhealthy(cls, message: str | None = None) -> ComponentStatus:
        return cls(Status.UNHEALTHY, message)

    @property
    def effective_status(self) -> Status:
        """This status as the aggregate counts it (non-critical caps at degraded)."""
        return effective_status(self.status, critical=self.critical)


@attrs.frozen(slots=True)
class HealthReport:
    """One run of a registry (or one group of it).

    ``status`` is ``aggregate`` over the components' effective statuses, so a
    non-critical component that fails leaves the report degraded, not unhealthy.
    """

    status: Status
    components: dict[str, ComponentStatus]
    version: str | None
    timestamp: datetime
    release_id: str | None = None
    group: str | None = None

    @classmethod
    def from_components(
        cls,
        components: Mapping[str, ComponentStatus],
        *,
        version: str | None,
        timestamp: datetime,
        release_id: str | None = None,
        group: str | None = None,
    ) -> HealthReport:
        """Build a report whose status follows from its components."""
        status = aggregate(c.effective_status for c in components.values())
        return cls(
            status=status,
            components=dict(components),
            version=version,
            timestamp=timestamp,
            release_id=release_id,
            group=group,
        )

    @property
    def http_status(self) -> int:
        """200 while the service can take traffic (healthy or degraded), else 503."""
        return 503 if self.status is Status.UNHEALTHY else 200

    def to_dict(self) -> dict[str, object]:
        """The seed-compatible shape: status, timestamp, version, components."""
        return {
            "status": self.status.value,
            "timestamp": self.timestamp.isoformat(),
            "version": self.version,
            "components": {
                name: {
                    "status": c.status.value,
                    "latencyMs": round(c.latency_ms, 3),
                    "message": c.message,
                }
                for name, c in self.components.items()
            },
        }

    def to_envelope(
        self, *, request_id: str | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> Envelope:
        """The standard response envelope around this report (the design's shape).

        ``{"success": true, "data": {"overall", "version", "timestamp",
        "services": [{"name", "status", "critical", "latency_ms", "type"}]},
        "meta": {...}}``. ``success`` says the health question was answered
        (an unhealthy service is still an answer: ``overall`` and
        ``http_status`` carry the verdict). Check messages are left out: this
        shape is for dashboards and clients outside, which need the verdict,
        not the reasons.
        """
        services = [
            {
                "name": name,
                "status": c.status.value,
                "critical": c.critical,
                "latency_ms": round(c.latency_ms, 3),
                "type": c.component_type,
            }
            for name, c in self.components.items()
        ]
        data = {
            "overall": self.status.value,
            "version": self.version,
            "timestamp": self.timestamp.isoformat(),
            "services": services,
        }
        return success(data, request_id=request_id, clock=clock)

    def to_health_json(self) -> dict[str, object]:
        """The IETF health-check draft (``application/health+json``).

        Each component publishes ``name:responseTime`` (its latency in ms) and,
        when it reports a measurement, ``name:<measurement>`` as well.
        """
        checks: dict[str, list[dict[str, object]]] = {}
        for name, c in self.components.items():
            base: dict[str, object] = {"status": c.status.ietf}
            if c.component_type is not None:
                base["componentType"] = c.component_type
            if c.checked_at is not None:
                base["time"] = c.checked_at.isoformat()
            if c.status is not Status.HEALTHY and c.message:
                base["output"] = c.message
            latency = dict(base, observedValue=round(c.latency_ms, 3), observedUnit="ms")
            checks[f"{name}:responseTime"] = [latency]
            if c.measurement is not None:
                measured = dict(base)
                if c.observed_value is not None:
                    measured["observedValue"] = c.observed_value
                if c.observed_unit is not None:
                    measured["observedUnit"] = c.observed_unit
                checks[f"{name}:{c.measurement}"] = [measured]
        body: dict[str, object] = {"status": self.status.ietf}
        if self.version is not None:
            body["version"] = self.version
        release = self.release_id if self.release_id is not None else self.version
        if release is not None:
            body["releaseId"] = release
        failing = sorted(
            name for name, c in self.components.items() if c.status is not Status.HEALTHY
        )
        if failing:
            body["output"] = "not healthy: " + ", ".join(failing)
        body["checks"] = checks
        return body


_COLOURS = {Status.HEALTHY: "\x1b[32m", Status.DEGRADED: "\x1b[33m", Status.UNHEALTHY: "\x1b[31m"}
_MARKS = {Status.HEALTHY: "ok  ", Status.DEGRADED: "WARN", Status.UNHEALTHY: "FAIL"}
_RESET = "\x1b[0m"


def render_text(report: HealthReport, color: bool = False) -> str:
    """A readable multi-line report for terminals (ANSI colour when ``color``)."""

    def paint(status: Status, text: str) -> str:
        return f"{_COLOURS[status]}{text}{_RESET}" if color else text

    header = f"health: {paint(report.status, report.status.value.upper())}"
    if report.version is not None:
        header += f"  version {report.version}"
    header += f"  at {report.timestamp.isoformat(timespec='seconds')}"
    lines = [header]
    width = max((len(name) for name in report.components), default=0)
    for name, c in report.components.items():
        flag = "" if c.critical else " (non-critical)"
        line = (
            f"  [{paint(c.status, _MARKS[c.status])}] {name.ljust(width)}  "
            f"{c.status.value:<9} {c.latency_ms:8.1f} ms{flag}"
        )
        if c.message:
            line += f"  {c.message}"
        lines.append(line)
    if not report.components:
        lines.append("  (no checks registered)")
    return "\n".join(lines) + "\n"


@attrs.frozen(slots=True)
class HealthChecked:
    """A health check of ``component`` finished with ``result``.

    ``previous`` is the status of the check's run before, or None on its first.
    """

    component: str
    result: ComponentStatus
    previous: Status | None = None


HEALTH_CHECKED: Topic[HealthChecked] = Topic("health.checked")
"""Every finished health check of a ``HealthRegistry`` (cached results are not re-sent)."""
