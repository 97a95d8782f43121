"""Checking ``Database``'s options: timeouts in seconds and breakers per operation kind."""

from __future__ import annotations

from collections.abc import Mapping

from buttress._checks import check_seconds
from buttress._exceptions import ValidationError
from buttress.breaker import CircuitBreaker
from buttress.db._stats import OperationKind

__all__ = ["check_breakers", "check_timeout", "lock_timeout_ms"]


def check_timeout(field: str, value: object, *, optional: bool) -> float | None:
    return check_seconds(field, value, optional=optional)


def lock_timeout_ms(value: float | None) -> int | None:
    seconds = check_timeout("lock_timeout", value, optional=True)
    if seconds is None:
        return None
    return max(1, round(seconds * 1000))


def check_breakers(
    breakers: Mapping[str, CircuitBreaker] | None,
) -> dict[OperationKind, CircuitBreaker]:
    if breakers is None:
        return {}
    if not isinstance(breakers, Mapping):
        raise ValidationError("breakers", "must be a mapping of 'read'/'write'/'bulk' to breakers")
    checked: dict[OperationKind, CircuitBreaker] = {}
    for key, breaker in breakers.items():
        try:
            kind = OperationKind(key)
        except ValueError:
            raise ValidationError("breakers", "keys must be 'read', 'write' or 'bulk'") from None
        if not isinstance(breaker, CircuitBreaker):
            raise ValidationError("breakers", "values must be CircuitBreaker instances")
        checked[kind] = breaker
    return checked
