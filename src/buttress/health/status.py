"""Health statuses and the pure rule that combines them.

``aggregate`` is the whole aggregation rule: the worst status wins and an empty
set is healthy. ``effective_status`` is the one place where a check's
``critical`` flag changes what its status counts for.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["Status", "aggregate", "effective_status"]


class Status(enum.Enum):
    """How well a component (or the whole service) is doing, best first."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def severity(self) -> int:
        """0 for healthy, 1 for degraded, 2 for unhealthy (higher is worse)."""
        return _SEVERITY[self]

    @property
    def ietf(self) -> str:
        """The IETF health-check draft's word: ``pass``, ``warn`` or ``fail``."""
        return _IETF[self]


_SEVERITY = {Status.HEALTHY: 0, Status.DEGRADED: 1, Status.UNHEALTHY: 2}
_IETF = {Status.HEALTHY: "pass", Status.DEGRADED: "warn", Status.UNHEALTHY: "fail"}


def aggregate(statuses: Iterable[Status]) -> Status:
    """Any unhealthy → unhealthy, else any degraded → degraded, else healthy.

    The empty set is healthy: a service with nothing to check is up.
    """
    worst = Status.HEALTHY
    for status in statuses:
        if status is Status.UNHEALTHY:
            return status
        if status is Status.DEGRADED:
            worst = status
    return worst


def effective_status(status: Status, *, critical: bool) -> Status:
    """What a component's status counts for in the aggregate.

    A non-critical component can at worst degrade the service: its unhealthy
    is capped at degraded before ``aggregate`` sees it.
    """
    if not critical and status is Status.UNHEALTHY:
        return Status.DEGRADED
    return status
