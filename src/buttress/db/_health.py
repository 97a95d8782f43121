"""A health check over a ``Database``'s own statistics: no query, no I/O.

It reads the recent error rate and the breakers' states, so it can run as
often as a load balancer likes; ``HealthRegistry.register(name, check)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from buttress._exceptions import ValidationError
from buttress.db._client import Database
from buttress.health.report import ComponentStatus

__all__ = ["database_check"]


def _check_rate(field: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        raise ValidationError(field, "must be a fraction between 0 and 1")
    return float(value)


def database_check(
    db: Database,
    *,
    degraded_error_rate: float = 0.05,
    unhealthy_error_rate: float = 0.5,
) -> Callable[[], ComponentStatus]:
    """A check: unhealthy above ``unhealthy_error_rate`` or with every breaker open,
    degraded above ``degraded_error_rate`` or with any breaker not closed.

    The error rate is over the database's recent window of queries; the
    observed value is that rate, published as ``errorRate``.
    """
    if not isinstance(db, Database):
        raise ValidationError("db", "must be a buttress.db.Database")
    degraded = _check_rate("degraded_error_rate", degraded_error_rate)
    unhealthy = _check_rate("unhealthy_error_rate", unhealthy_error_rate)
    if degraded > unhealthy:
        raise ValidationError("degraded_error_rate", "must be <= unhealthy_error_rate")

    def check() -> ComponentStatus:
        rate = db.error_rate()
        states = db.breaker_states()
        opened = sorted(kind for kind, state in states.items() if state != "closed")
        parts = [f"error rate {rate:.1%}"]
        if opened:
            parts.append("breakers not closed: " + ", ".join(opened))
        message = "; ".join(parts)
        if rate > unhealthy or (states and len(opened) == len(states)):
            make = ComponentStatus.unhealthy
        elif rate > degraded or opened:
            make = ComponentStatus.degraded
        else:
            make = ComponentStatus.healthy
        status = make(message)
        return ComponentStatus(
            status.status,
            message,
            component_type="datastore",
            measurement="errorRate",
            observed_value=rate,
            observed_unit="ratio",
        )

    return check
