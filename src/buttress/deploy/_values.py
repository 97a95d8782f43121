"""Deployment values: ``Deployment``, the errors, and the checks every argument passes.

Nothing here decides how a deployment may change (that is ``_core``) or where it
is kept; every argument is refused here, before any write, with a message
naming the field and the rule.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

import attrs

from buttress._exceptions import ValidationError
from buttress.config import validate_environment

__all__ = [
    "APP_VERSION_DESCRIPTION",
    "APP_VERSION_KEY",
    "STATUSES",
    "DeliveryMetrics",
    "Deployment",
    "DeploymentNotFoundError",
    "DeploymentStateError",
    "DeploymentStatus",
    "RollbackOf",
    "check_environment",
    "check_id",
    "check_limit",
    "check_optional_text",
    "check_sha",
    "check_text",
    "check_time",
    "check_version",
]


class DeploymentNotFoundError(ValidationError, LookupError):
    """No deployment has this id."""

    def __init__(self, deployment_id: int) -> None:
        self.deployment_id = deployment_id
        super().__init__(
            "deployment_id",
            "must name a recorded deployment",
            message=f"deployment_id: no deployment with id {deployment_id}",
        )


class DeploymentStateError(ValidationError):
    """The deployment exists but its status does not allow this change."""

    def __init__(self, deployment_id: int, status: str, rule: str) -> None:
        self.deployment_id = deployment_id
        self.status = status
        super().__init__(
            "deployment_id",
            rule,
            message=f"deployment_id: deployment {deployment_id} is {status}; {rule}",
        )


DeploymentStatus = Literal["success", "failed", "rolled_back"]
STATUSES: tuple[DeploymentStatus, ...] = ("success", "failed", "rolled_back")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@attrs.frozen(slots=True, kw_only=True)
class Deployment:
    """One deployment of ``version`` to ``environment``.

    ``deployed_at`` is when it was recorded; ``finished_at`` when the change
    went live (the same unless given), which is the time the delivery metrics
    use. A rollback is itself a deployment (``is_rollback``, ``rollback_of``);
    the deployment it undid has status ``"rolled_back"`` with ``rollback_to``,
    ``rollback_at`` and ``rollback_reason``. ``failed_at`` is when a failure
    was detected; ``restored_at``/``restored_by`` say when and by which later
    deployment the environment stopped running it. ``previous_sha`` is the
    commit the environment ran before, so the commits a deployment shipped are
    ``previous_sha..commit_sha``.
    """

    id: int
    version: str
    environment: str
    deployed_at: datetime
    deployed_by: str | None = None
    changelog: str | None = None
    migration_notes: str | None = None
    status: DeploymentStatus = "success"
    rollback_to: str | None = None
    rollback_at: datetime | None = None
    rollback_reason: str | None = None
    commit_sha: str | None = None
    committed_at: datetime | None = None
    previous_sha: str | None = None
    started_at: datetime | None = None
    finished_at: datetime = attrs.field()
    is_rollback: bool = False
    rollback_of: int | None = None
    failed_at: datetime | None = None
    restored_at: datetime | None = None
    restored_by: int | None = None

    @finished_at.default
    def _finished_when_deployed(self) -> datetime:
        return self.deployed_at

    @property
    def is_failure(self) -> bool:
        """True when this change failed in production (marked failed or rolled back)."""
        return self.status != "success"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: timestamps as ISO 8601 text."""
        return {
            "id": self.id,
            "version": self.version,
            "environment": self.environment,
            "deployed_at": _iso(self.deployed_at),
            "deployed_by": self.deployed_by,
            "changelog": self.changelog,
            "migration_notes": self.migration_notes,
            "status": self.status,
            "rollback_to": self.rollback_to,
            "rollback_at": _iso(self.rollback_at),
            "rollback_reason": self.rollback_reason,
            "commit_sha": self.commit_sha,
            "committed_at": _iso(self.committed_at),
            "previous_sha": self.previous_sha,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "is_rollback": self.is_rollback,
            "rollback_of": self.rollback_of,
            "failed_at": _iso(self.failed_at),
            "restored_at": _iso(self.restored_at),
            "restored_by": self.restored_by,
        }


_MAX_VERSION = 200
_MAX_LIMIT = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHA = re.compile(r"[0-9a-fA-F]{4,64}")


def check_version(field: str, version: object) -> str:
    if not isinstance(version, str):
        raise ValidationError(field, f"must be a str, got {type(version).__name__}")
    if not version.strip():
        raise ValidationError(field, "must not be empty")
    if version != version.strip() or _CONTROL.search(version) or len(version) > _MAX_VERSION:
        raise ValidationError(
            field,
            f"must be 1-{_MAX_VERSION} characters without surrounding spaces or control characters",
        )
    return version


def check_environment(environment: object, field: str = "environment") -> str:
    if isinstance(environment, str) and not environment.strip():
        raise ValidationError(field, "must not be empty")
    return validate_environment(field, environment)


def check_text(field: str, value: object) -> str:
    """A required free-text argument (a reason): a non-empty str."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(field, "must not be empty")
    return value


def check_optional_text(field: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(field, f"must be a str or None, got {type(value).__name__}")
    return value


def check_sha(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or _SHA.fullmatch(value) is None:
        raise ValidationError(field, "must be a hexadecimal commit id of 4-64 characters")
    return value.lower()


def check_time(field: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, "must be timezone-aware")
    # Every backend hands times back in UTC; so does memory.
    return value.astimezone(UTC)


def check_id(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(field, "must be a positive int")
    return value


def check_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_LIMIT:
        raise ValidationError("limit", f"must be an int from 1 to {_MAX_LIMIT}")
    return value


APP_VERSION_KEY = "app_version"
"""The config key ``record`` keeps equal to the environment's running version."""


APP_VERSION_DESCRIPTION = "the version running in this environment (set by DeploymentLog)"


@attrs.frozen(slots=True)
class RollbackOf:
    """``record`` also marks deployment ``deployment_id`` rolled back, for ``reason``."""

    deployment_id: int
    reason: str


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
