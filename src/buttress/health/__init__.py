"""Health checks: statuses, their aggregation, the registry and its renderings.

``HealthRegistry`` runs registered checks concurrently with timeouts and
returns a ``HealthReport``; ``buttress.health.builtin`` has ready-made checks.
"""

from buttress.health.builtin import register_standard
from buttress.health.registry import (
    READINESS_COMPONENT,
    CheckResult,
    HealthCheck,
    HealthRegistry,
    RunMetrics,
    RunRecorder,
)
from buttress.health.report import (
    HEALTH_CHECKED,
    ComponentStatus,
    HealthChecked,
    HealthReport,
    render_text,
)
from buttress.health.status import Status, aggregate, effective_status

__all__ = [
    "HEALTH_CHECKED",
    "READINESS_COMPONENT",
    "CheckResult",
    "ComponentStatus",
    "HealthCheck",
    "HealthChecked",
    "HealthRegistry",
    "HealthReport",
    "RunMetrics",
    "RunRecorder",
    "Status",
    "aggregate",
    "effective_status",
    "register_standard",
    "render_text",
]
