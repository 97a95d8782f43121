"""What an error is: category, severity, context, and ``ContextualError``.

User-facing messages are fixed sentences per category, never exception text.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from buttress._exceptions import ButtressError, ValidationError


class ErrorCategory(enum.StrEnum):
    """What kind of thing went wrong, independent of the library that raised it."""

    DATABASE = "database"
    VALIDATION = "validation"
    AUTHENTICATION = "authentication"
    NETWORK = "network"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    BUSINESS_LOGIC = "business_logic"
    SYSTEM = "system"


class Severity(enum.StrEnum):
    """How urgently a human should look at it (LOW < MEDIUM < HIGH < CRITICAL)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for LOW up to 3 for CRITICAL, for comparisons and thresholds."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Final = {
    Severity.LOW: 0,
    Severity.MEDIUM: 1,
    Severity.HIGH: 2,
    Severity.CRITICAL: 3,
}


def _freeze_attributes(value: Mapping[str, object] | None) -> Mapping[str, object]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValidationError("attributes", "must be a mapping of str to values")
    for key in value:
        if not isinstance(key, str):
            raise ValidationError("attributes", "keys must be strings")
    return MappingProxyType(dict(value))


def _redacted_repr(attributes: Mapping[str, object]) -> str:
    # Attributes are free-form: mask them in reprs exactly as in logs.
    from buttress.log import redact

    return repr(redact(None, "repr", dict(attributes)))


def _check_name(field_name: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and field_name == "operation":
            return
        if not isinstance(value, str) or not value:
            raise ValidationError(field_name, "must be a non-empty string")

    return check


@attrs.frozen
class ErrorContext:
    """Where an error happened: ``component`` (e.g. "billing"), ``operation`` and free attributes.

    ``attributes`` is copied into a read-only mapping; it is logged (through
    redaction) but never shown to end users.
    """

    component: str = attrs.field(validator=_check_name("component"))
    operation: str | None = attrs.field(default=None, validator=_check_name("operation"))
    # Compared, but left out of the hash: attribute values need not be hashable.
    attributes: Mapping[str, object] = attrs.field(
        factory=dict, converter=_freeze_attributes, hash=False, repr=_redacted_repr
    )

    def __reduce__(self) -> tuple[type[ErrorContext], tuple[object, ...]]:
        # The read-only mapping proxy cannot be pickled; its contents can.
        return (ErrorContext, (self.component, self.operation, dict(self.attributes)))


@attrs.frozen
class Classification:
    """What ``classify`` decided about an exception."""

    category: ErrorCategory
    severity: Severity
    retryable: bool


# (when retrying may help, when it will not) per category; fixed text only.
_USER_MESSAGES: Final[Mapping[ErrorCategory, tuple[str, str]]] = {
    ErrorCategory.DATABASE: (
        "The database is temporarily unavailable. Please try again shortly.",
        "The request could not be completed because of a database error.",
    ),
    ErrorCategory.VALIDATION: (
        "The request contains invalid data.",
        "The request contains invalid data.",
    ),
    ErrorCategory.AUTHENTICATION: (
        "Authentication is temporarily unavailable. Please try again.",
        "Authentication failed or access is not allowed.",
    ),
    ErrorCategory.NETWORK: (
        "A service we depend on is temporarily unreachable. Please try again shortly.",
        "A service we depend on could not be reached.",
    ),
    ErrorCategory.TIMEOUT: (
        "The operation took too long. Please try again.",
        "The operation took too long.",
    ),
    ErrorCategory.RATE_LIMIT: (
        "Too many requests. Please wait and try again.",
        "Too many requests.",
    ),
    ErrorCategory.BUSINESS_LOGIC: (
        "The request cannot be completed right now. Please try again.",
        "The request cannot be completed in the current state.",
    ),
    ErrorCategory.SYSTEM: (
        "An internal error occurred. Please try again.",
        "An internal error occurred.",
    ),
}


def user_message_for(category: ErrorCategory, *, retryable: bool) -> str:
    """The fixed end-user message for a category: never derived from the exception text."""
    transient, permanent = _USER_MESSAGES[ErrorCategory(category)]
    return transient if retryable else permanent


class ContextualError(ButtressError):
    """An exception classified and placed in context; the original is ``__cause__``.

    ``str()`` names the category, component, operation and the original
    exception's *type* only: driver messages can carry SQL text, values and
    DSNs, so they stay on ``__cause__`` for developers and never reach
    ``str``, ``user_message`` or the log.
    """

    def __init__(
        self,
        *,
        category: ErrorCategory,
        severity: Severity,
        retryable: bool,
        context: ErrorContext,
        user_message: str | None = None,
        error_type: str = "",
        error_code: str | None = None,
    ) -> None:
        self.category = ErrorCategory(category)
        self.severity = Severity(severity)
        self.retryable = bool(retryable)
        self.context = context
        self.user_message = (
            user_message
            if user_message is not None
            else user_message_for(self.category, retryable=self.retryable)
        )
        self.error_type = error_type
        self.error_code = error_code
        where = context.component + (f".{context.operation}" if context.operation else "")
        cause = f" ({error_type})" if error_type else ""
        super().__init__(f"{self.category.value} error in {where}{cause}")

    @property
    def classification(self) -> Classification:
        return Classification(self.category, self.severity, self.retryable)

    def __repr__(self) -> str:
        return (
            f"ContextualError(category={self.category.value!r}, severity={self.severity.value!r}, "
            f"retryable={self.retryable!r}, component={self.context.component!r}, "
            f"operation={self.context.operation!r}, error_type={self.error_type!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_contextual_error,
            (
                self.category,
                self.severity,
                self.retryable,
                self.context,
                self.user_message,
                self.error_type,
                self.error_code,
            ),
        )


def _rebuild_contextual_error(
    category: ErrorCategory,
    severity: Severity,
    retryable: bool,
    context: ErrorContext,
    user_message: str,
    error_type: str,
    error_code: str | None,
) -> ContextualError:
    return ContextualError(
        category=category,
        severity=severity,
        retryable=retryable,
        context=context,
        user_message=user_message,
        error_type=error_type,
        error_code=error_code,
    )


