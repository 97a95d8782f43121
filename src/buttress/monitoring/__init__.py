"""Monitoring over recorded metric series: anomaly rules and alert levels.

``anomaly`` holds the pure detectors (drop, spike, flat at zero); they read a
series of timestamped samples and never touch storage or the clock.
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

__all__ = [
    "AlertLevel",
    "Anomaly",
    "DropRule",
    "FlatRule",
    "Rule",
    "Sample",
    "SpikeRule",
    "alert_level",
    "detect",
]
