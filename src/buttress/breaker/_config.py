"""The circuit breaker's settings, validated once at the boundary.

``BreakerConfig`` is a frozen value: every option is checked here, with a
``ValidationError`` naming the option and the rule, so the state machine can
trust its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from buttress.errors import ValidationError

__all__ = ["BreakerConfig"]


Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]


def _count(*, optional: bool = False) -> Validator:
    """An integer >= 1 (or None when optional)."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(
                attribute.name, f"must be an integer >= 1, got {type(value).__name__}"
            )

    return check


def _seconds(*, optional: bool = False) -> Validator:
    """A finite number of seconds > 0 (or None when optional)."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValidationError(attribute.name, "must be a finite number of seconds > 0")

    return check


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValidationError(attribute.name, "must be a fraction in (0, 1]")


def _check_exclude(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple):
        raise ValidationError("exclude", "must be a tuple of exception types")
    for item in value:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ValidationError(
                "exclude", f"must contain exception types, got {type(item).__name__}"
            )


def _check_callable(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not callable(value):
        raise ValidationError(attribute.name, "must be a callable or None")


def _as_exclude(value: object) -> object:
    # Accept a single type or any iterable for convenience; validation follows.
    if isinstance(value, type):
        return (value,)
    if isinstance(value, list | set | frozenset):
        return tuple(value)
    return value


@attrs.frozen(kw_only=True)
class BreakerConfig:
    """Every option of a ``CircuitBreaker`` (see ``docs/breaker.md``).

    The circuit opens when ``failure_threshold`` consecutive calls fail, or
    when ``failure_rate_threshold`` is set and, over the sliding window (the
    last ``window_size`` calls, or the last ``window_duration`` seconds), at
    least ``minimum_calls`` calls were seen and the failed fraction reaches the
    threshold. Either trigger may be switched off with ``None``, not both.
    """

    failure_threshold: int | None = attrs.field(default=5, validator=_count(optional=True))
    recovery_timeout: float = attrs.field(default=30.0, validator=_seconds())
    half_open_max_calls: int = attrs.field(default=1, validator=_count())
    probe_timeout: float = attrs.field(default=60.0, validator=_seconds())
    failure_rate_threshold: float | None = attrs.field(default=None, validator=_fraction)
    window_size: int | None = attrs.field(default=None, validator=_count(optional=True))
    window_duration: float | None = attrs.field(default=None, validator=_seconds(optional=True))
    minimum_calls: int | None = attrs.field(default=None, validator=_count(optional=True))
    slow_call_threshold: float | None = attrs.field(default=None, validator=_seconds(optional=True))
    exclude: tuple[type[BaseException], ...] = attrs.field(
        default=(), converter=_as_exclude, validator=_check_exclude
    )
    failure_on_exception: Callable[[BaseException], bool] | None = attrs.field(
        default=None, validator=_check_callable
    )
    failure_on_result: Callable[[object], bool] | None = attrs.field(
        default=None, validator=_check_callable
    )

    def __attrs_post_init__(self) -> None:
        if self.failure_threshold is None and self.failure_rate_threshold is None:
            raise ValidationError(
                "failure_threshold",
                "may be None only when failure_rate_threshold is set",
            )
        if self.window_size is not None and self.window_duration is not None:
            raise ValidationError(
                "window_duration", "cannot be combined with window_size (choose one window)"
            )
        if self.failure_rate_threshold is None:
            for name in ("window_size", "window_duration", "minimum_calls"):
                if getattr(self, name) is not None:
                    raise ValidationError(name, "needs failure_rate_threshold to be set")
        if (
            self.window_size is not None
            and self.minimum_calls is not None
            and self.minimum_calls > self.window_size
        ):
            raise ValidationError("minimum_calls", "must be <= window_size")

    @property
    def uses_window(self) -> bool:
        return self.failure_rate_threshold is not None

    @property
    def effective_window_size(self) -> int | None:
        """The count window's length; 100 calls when the rate has no window given."""
        if self.failure_rate_threshold is None or self.window_duration is not None:
            return None
        return self.window_size if self.window_size is not None else 100

    @property
    def effective_minimum_calls(self) -> int:
        if self.minimum_calls is not None:
            return self.minimum_calls
        size = self.effective_window_size
        return min(10, size) if size is not None else 10
