"""Config values: ``ConfigEntry`` (one stored setting), ``ConfigChange`` (its history), the
JSON value type, environments, and the config errors.

Entries and changes mask the value of a sensitive entry in ``repr``/``str``; the
service decides which copies carry the real value (``get_entry``) and which the
mask (``list``, ``history``). Error messages name the key and the rule, never a
value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal, TypeAlias

import attrs

from buttress._exceptions import ButtressError, ValidationError
from buttress.log import MASK

__all__ = [
    "ALL",
    "KNOWN_ENVIRONMENTS",
    "ChangeRecord",
    "ConfigAction",
    "ConfigChange",
    "ConfigConflictError",
    "ConfigEntry",
    "ConfigMissingError",
    "ConfigTypeError",
    "JSONValue",
    "validate_environment",
]


JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

ALL = "all"
KNOWN_ENVIRONMENTS = ("all", "development", "staging", "production")
"""The usual names; any lower-case name matching ``[a-z][a-z0-9_-]*`` is accepted."""

_ENVIRONMENT_RE = re.compile(r"[a-z][a-z0-9_\-]{0,63}")

ConfigAction = Literal["create", "update", "delete", "revert"]


def validate_environment(field: str, environment: object) -> str:
    """Return ``environment`` if usable, else raise ``ValidationError`` naming ``field``."""
    if not isinstance(environment, str) or _ENVIRONMENT_RE.fullmatch(environment) is None:
        raise ValidationError(
            field, "must be a lower-case name like 'all', 'staging' or 'production'"
        )
    return environment


def _shown(value: JSONValue, sensitive: bool) -> str:
    return repr(MASK) if sensitive else repr(value)


@attrs.frozen(slots=True, repr=False)
class ConfigEntry:
    """One setting as stored for one environment (``version`` counts its changes)."""

    key: str
    value: JSONValue
    environment: str
    sensitive: bool
    description: str | None
    updated_at: datetime
    updated_by: str | None
    version: int = 1

    def __repr__(self) -> str:
        return (
            f"ConfigEntry(key={self.key!r}, value={_shown(self.value, self.sensitive)}, "
            f"environment={self.environment!r}, sensitive={self.sensitive}, "
            f"description={self.description!r}, updated_at={self.updated_at!r}, "
            f"updated_by={self.updated_by!r}, version={self.version})"
        )

    def redacted(self) -> ConfigEntry:
        """This entry with its value replaced by the mask if it is sensitive."""
        return attrs.evolve(self, value=MASK) if self.sensitive else self


@attrs.frozen(slots=True, repr=False)
class ChangeRecord:
    """What every record of a change says: which entry, its version, what was done,
    when, by whom and why (``ConfigChange``, and the stores' own record)."""

    key: str
    environment: str
    version: int
    action: ConfigAction
    changed_at: datetime
    changed_by: str | None
    reason: str | None


@attrs.frozen(slots=True, repr=False)
class ConfigChange(ChangeRecord):
    """One change to a setting: who, when, why, and the values before and after.

    ``old_value``/``new_value`` are None when there was no value (create,
    delete); they are the mask for sensitive settings when read via ``history``.
    """

    old_value: JSONValue
    new_value: JSONValue
    sensitive: bool

    def __repr__(self) -> str:
        return (
            f"ConfigChange(key={self.key!r}, environment={self.environment!r}, "
            f"version={self.version}, action={self.action!r}, changed_at={self.changed_at!r}, "
            f"changed_by={self.changed_by!r}, reason={self.reason!r}, "
            f"old_value={_shown(self.old_value, self.sensitive)}, "
            f"new_value={_shown(self.new_value, self.sensitive)}, sensitive={self.sensitive})"
        )

    def redacted(self) -> ConfigChange:
        if not self.sensitive:
            return self
        old = None if self.old_value is None else MASK
        new = None if self.new_value is None else MASK
        return attrs.evolve(self, old_value=old, new_value=new)


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
