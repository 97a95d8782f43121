"""Monitoring over recorded metric series: anomaly rules, alert levels and health history.

``anomaly`` holds the pure detectors (drop, spike, flat at zero); they read a
series of timestamped samples and never touch storage or the clock.
``history`` records health runs and metrics in a backend and runs the rules
over what it recorded. ``parse_rule``/``load_rules`` read rules as an operator
writes them (``drop:signups:50%``, ``[[rule]]`` TOML files); ``errors`` keeps
per-minute error counts and judges their rate.
"""

from buttress.monitoring._rules import load_rules, parse_duration, parse_rule, rule_to_dict
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
from buttress.monitoring.errors import (
    ErrorRateRule,
    ErrorStats,
    ErrorSummary,
    read_error_counts,
    summarize,
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
    "ErrorRateRule",
    "ErrorStats",
    "ErrorSummary",
    "FlatRule",
    "HealthHistory",
    "HealthRecord",
    "Rule",
    "Sample",
    "SpikeRule",
    "alert_level",
    "detect",
    "load_rules",
    "parse_duration",
    "parse_rule",
    "read_error_counts",
    "rule_to_dict",
    "summarize",
]
