"""Error statistics: captured errors counted by category, severity and component.

``ErrorStats`` (``_service``) counts in memory and optionally persists per-minute
counts (``_store``, ``_sql``); ``summarize`` and ``ErrorRateRule`` (``_core``,
``_values``) are pure: counts and a ``now`` in, a summary or an anomaly out.
Each count is published on ``ERROR_COUNTED`` when someone listens (the metrics
adapters do).
"""

from buttress.monitoring.errors._core import summarize
from buttress.monitoring.errors._service import ErrorStats
from buttress.monitoring.errors._sql import read_error_counts
from buttress.monitoring.errors._values import (
    ERROR_COUNTED,
    OTHER_COMPONENT,
    TABLE,
    ErrorCount,
    ErrorCounted,
    ErrorRateRule,
    ErrorSummary,
)

__all__ = [
    "ERROR_COUNTED",
    "OTHER_COMPONENT",
    "TABLE",
    "ErrorCount",
    "ErrorCounted",
    "ErrorRateRule",
    "ErrorStats",
    "ErrorSummary",
    "read_error_counts",
    "summarize",
]
