"""The four delivery (DORA) metrics as one pure function over deployments and a period.

``delivery_metrics`` reads only the values it is given: no clock, no store,
and the order of its input never matters. ``docs/deploy.md`` defines each
metric and works one example through by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import attrs

from buttress.deploy._model import Deployment
from buttress.errors import ValidationError

__all__ = ["DeliveryMetrics", "delivery_metrics", "median_duration"]

_DAY = timedelta(days=1)


@attrs.frozen(slots=True, kw_only=True)
class DeliveryMetrics:
    """Delivery metrics of the deployments that went live in ``[since, until)``.

    ``deployments`` counts them (rollbacks included); ``deployment_frequency``
    is that count per day of the period; ``change_failure_rate`` the fraction
    (0-1) of them that failed or were rolled back (0.0 when there were none);
    ``lead_time`` the median commit-to-live time of those that carry a commit
    time; ``time_to_restore`` the median time from a failed deployment going
    live to the deployment that replaced it. Unknown durations are None.
    """

    environment: str | None
    since: datetime
    until: datetime
    deployments: int
    failures: int
    deployment_frequency: float
    change_failure_rate: float
    lead_time: timedelta | None
    time_to_restore: timedelta | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: times as ISO 8601 text, durations as seconds."""

        def seconds(value: timedelta | None) -> float | None:
            return None if value is None else value.total_seconds()

        return {
            "environment": self.environment,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "deployments": self.deployments,
            "failures": self.failures,
            "deployment_frequency": self.deployment_frequency,
            "change_failure_rate": self.change_failure_rate,
            "lead_time_seconds": seconds(self.lead_time),
            "time_to_restore_seconds": seconds(self.time_to_restore),
        }


def median_duration(durations: Sequence[timedelta]) -> timedelta | None:
    """The median (mean of the middle two for an even count), or None when empty."""
    if not durations:
        return None
    ordered = sorted(durations)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _aware(field: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(field, "must be a timezone-aware datetime")
    return value


def check_period(since: object, until: object) -> tuple[datetime, datetime]:
    start, end = _aware("since", since), _aware("until", until)
    if end <= start:
        raise ValidationError("until", "must be later than since")
    return start, end


def delivery_metrics(
    deployments: Iterable[Deployment],
    *,
    since: datetime,
    until: datetime,
    environment: str | None = None,
) -> DeliveryMetrics:
    """Compute the metrics of ``deployments`` that went live (``finished_at``) in the period.

    With ``environment`` only that environment's deployments count.
    """
    since, until = check_period(since, until)
    counted = [
        d
        for d in deployments
        if since <= d.finished_at < until and (environment is None or d.environment == environment)
    ]
    failures = [d for d in counted if d.is_failure]
    lead_times = [
        d.finished_at - d.committed_at
        for d in counted
        if not d.is_rollback and d.committed_at is not None
    ]
    restore_times = [
        max(timedelta(0), d.restored_at - d.finished_at)
        for d in failures
        if d.restored_at is not None
    ]
    return DeliveryMetrics(
        environment=environment,
        since=since,
        until=until,
        deployments=len(counted),
        failures=len(failures),
        deployment_frequency=len(counted) / ((until - since) / _DAY),
        change_failure_rate=len(failures) / len(counted) if counted else 0.0,
        lead_time=median_duration(lead_times),
        time_to_restore=median_duration(restore_times),
    )
