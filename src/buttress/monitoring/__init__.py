"""Monitoring over recorded metric series: anomaly rules, alert levels and health history.

``anomaly`` holds the pure detectors (drop, spike, flat at zero); they read a
series of timestamped samples and never touch storage or the clock.
``history`` records health runs and metrics in a backend and runs the rules
over what it recorded.
"""

from buttress.monitoring.anomaly import (
    AlertLevel,
    Anomaly,
    DropRule,
    FlatRule,
    Rule,
    Sample,
    SpikeRule,
    alert_level,
    detect,
)
from buttress.monitoring.history import (
    LATENCY_PREFIX,
    ComponentRecord,
    HealthHistory,
    HealthRecord,
)

__all__ = [
    "LATENCY_PREFIX",
    "AlertLevel",
    "Anomaly",
    "ComponentRecord",
    "DropRule",
    "FlatRule",
    "HealthHistory",
    "HealthRecord",
    "Rule",
    "Sample",
    "SpikeRule",
    "alert_level",
    "detect",
]
