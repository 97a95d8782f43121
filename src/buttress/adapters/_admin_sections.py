"""What each admin section reports: read-only JSON data from one component.

Each function reads one component through its public API and returns a
JSON-ready dict; none writes, and none knows about HTTP. Config values are
masked for sensitive entries and redacted like log events for the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from buttress.config import ConfigEntry, ConfigStore
from buttress.flags import FeatureFlags
from buttress.log import MASK, redact, redact_text
from buttress.migrations import Migrator
from buttress.monitoring import HealthHistory, Rule, alert_level, rule_to_dict
from buttress.monitoring.errors import ErrorRateRule, ErrorStats

__all__ = [
    "config_entries",
    "error_statistics",
    "feature_flags",
    "health_history",
    "migration_status",
]


async def error_statistics(stats: ErrorStats, rules: Sequence[ErrorRateRule]) -> dict[str, object]:
    """Totals over the window kept, by category, severity and component; the alert level."""
    anomalies = stats.check(rules)
    recent = stats.metrics()
    return {
        "level": alert_level(anomalies).name.lower(),
        "window_seconds": stats.window.total_seconds(),
        "summary": stats.summary().to_dict(),
        "last_minute": int(recent["errors_last_minute"]),
        "last_hour": int(recent["errors_last_hour"]),
        "rules": [rule.to_dict() for rule in rules],
        "anomalies": [anomaly.to_dict() for anomaly in anomalies],
        "persistent": stats.persistent,
        "dropped": stats.dropped,
    }


async def migration_status(migrators: Sequence[Migrator]) -> dict[str, object]:
    """Each namespace's migrations and their state, with the validation findings."""
    statuses = [await migrator.status() for migrator in migrators]
    return {
        "ok": all(status.report.ok for status in statuses),
        "pending": sum(len(status.pending) for status in statuses),
        "namespaces": [status.to_dict() for status in statuses],
    }


async def health_history(
    history: HealthHistory, rules: Sequence[Rule], limit: int
) -> dict[str, object]:
    """The newest recorded runs and what the anomaly rules find in the history."""
    anomalies = await history.check(rules)
    return {
        "level": alert_level(anomalies).name.lower(),
        "runs": await history.count(),
        "recent": [record.to_dict() for record in await history.recent(limit)],
        "rules": [rule_to_dict(rule) for rule in rules],
        "anomalies": [anomaly.to_dict() for anomaly in anomalies],
    }


async def feature_flags(flags: FeatureFlags) -> dict[str, object]:
    """Every stored flag, as its store holds it."""
    listed = await flags.list()
    return {"count": len(listed), "flags": [flag.to_dict() for flag in listed]}


async def config_entries(config: ConfigStore) -> dict[str, object]:
    """Every entry, never the value of a sensitive one; maintenance mode."""
    entries = [_entry(entry) for entry in await config.list()]
    return {
        "maintenance_mode": await config.is_maintenance_mode(),
        "count": len(entries),
        "entries": entries,
    }


def _entry(entry: ConfigEntry) -> dict[str, object]:
    value: object
    if entry.sensitive:
        # Masked here too, whatever the store handed back: the listing is the
        # last place a secret could leave through.
        value, masked = MASK, True
    else:
        # A value that is not marked sensitive can still hold one (a DSN with its
        # password, a nested "api_key"): the log redactor's rules apply.
        shown = redact(None, "admin", {entry.key: entry.value})[entry.key]
        value, masked = shown, shown != entry.value
    description = None if entry.description is None else redact_text(entry.description)
    return {
        "key": entry.key,
        "value": value,
        "masked": masked,
        "environment": entry.environment,
        "sensitive": entry.sensitive,
        "description": description,
        "updated_at": entry.updated_at.isoformat(),
        "updated_by": entry.updated_by,
        "version": entry.version,
    }
