"""Input checks for ``DeploymentLog``: every argument is refused here, before any write.

Messages name the field and the rule, never echo free text (a changelog or a
reason may carry anything).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from buttress.config._values import validate_environment
from buttress.errors import ValidationError

__all__ = [
    "check_environment",
    "check_id",
    "check_limit",
    "check_optional_text",
    "check_sha",
    "check_text",
    "check_time",
    "check_version",
]

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
