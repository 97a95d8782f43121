"""The config errors. Messages name the key and the rule, never a value."""

from __future__ import annotations

from buttress.errors import ButtressError, ValidationError

__all__ = ["ConfigConflictError", "ConfigMissingError", "ConfigTypeError"]


class ConfigConflictError(ButtressError):
    """``expected_version`` did not match: someone else changed the key first."""

    def __init__(self, key: str, environment: str, expected: int, actual: int) -> None:
        self.key = key
        self.environment = environment
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"config {key!r} ({environment}): expected version {expected}, found {actual}; "
            "re-read and retry"
        )


class ConfigTypeError(ValidationError, TypeError):
    """A stored value does not match the type the reader asked for."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(key, rule, message=f"config {key!r}: {rule}")


class ConfigMissingError(ButtressError, LookupError):
    """A ``Setting`` without a default has no stored value."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"config {key!r} is not set and has no default")
