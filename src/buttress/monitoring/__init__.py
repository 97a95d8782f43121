"""Monitoring over recorded metric series: anomaly rules, alert levels and health history.

The pure detectors (drop, spike, flat at zero: ``_core``) read a series of
timestamped samples (``_values``) and never touch storage or the clock;
``HealthHistory`` (``_service``) records health runs and metrics in a store
(``_store``, ``_sql``) and runs the rules over what it recorded. Error
statistics live in ``buttress.monitoring.errors``; PostgreSQL's own metrics in
``buttress.monitoring.postgres``. ``parse_rule``/``load_rules`` (``_rules``) read
rules as an operator writes them (``drop:signups:50%``, ``[[rule]]`` TOML files).
"""

from buttress.monitoring._core import DropRule, FlatRule, Rule, SpikeRule, alert_level, detect
from buttress.monitoring._rules import load_rules, parse_duration, parse_rule, rule_to_dict
from buttress.monitoring._service import (
    LATENCY_PREFIX,
    ComponentRecord,
    HealthHistory,
    HealthRecord,
)
from buttress.monitoring._values import AlertLevel, Anomaly, Sample

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
    "load_rules",
    "parse_duration",
    "parse_rule",
    "rule_to_dict",
]
