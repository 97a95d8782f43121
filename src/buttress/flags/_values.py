"""The flag values: ``Flag``, ``FlagContext``, ``FlagEvaluation``, ``Reason``.

Everything here is a frozen attrs value validated at construction, so a bad
flag is refused before it can reach a store or a snapshot. No I/O, no clock.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

import attrs

from buttress._checks import validate_key
from buttress._exceptions import ButtressError, ValidationError
from buttress._topic import Topic

__all__ = [
    "FLAG_EVALUATED",
    "Flag",
    "FlagAction",
    "FlagChange",
    "FlagContext",
    "FlagEvaluation",
    "FlagNotFoundError",
    "Reason",
]

BUCKETS = 10_000
"""Buckets per flag: a percentage is honoured to 0.01 of a point."""


def _check_key(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    validate_key(attribute.name, value)


def _check_name(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(attribute.name, "must be a non-empty str")


def _to_names(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        # A bare string would silently become a set of characters.
        raise ValidationError("users/roles", "must be a collection of str, not a single str")
    names = frozenset(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValidationError("users/roles", "every entry must be a non-empty str")
    return names


def _check_percentage(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(attribute.name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise ValidationError(attribute.name, "must be between 0 and 100")


def _check_aware(
    _inst: object, attribute: attrs.Attribute[datetime | None], value: datetime | None
) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        raise ValidationError(attribute.name, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            attribute.name, "must be timezone-aware (naive datetimes are refused)"
        )


@attrs.frozen(slots=True)
class Flag:
    """A feature flag. See ``buttress.flags.evaluate`` for how it decides.

    ``enabled`` is the global switch: a disabled flag is off for everyone.
    ``percentage`` 0 means "no rollout rule" (the switch decides); above 0 only
    the users whose bucket falls under it are on.
    """

    key: str = attrs.field(validator=_check_key)
    name: str = attrs.field(validator=_check_name)
    description: str | None = attrs.field(default=None, kw_only=True)
    enabled: bool = attrs.field(
        default=False, kw_only=True, validator=attrs.validators.instance_of(bool)
    )
    users: frozenset[str] = attrs.field(default=frozenset(), kw_only=True, converter=_to_names)
    roles: frozenset[str] = attrs.field(default=frozenset(), kw_only=True, converter=_to_names)
    percentage: float = attrs.field(default=0.0, kw_only=True, validator=_check_percentage)
    enable_at: datetime | None = attrs.field(default=None, kw_only=True, validator=_check_aware)
    disable_at: datetime | None = attrs.field(default=None, kw_only=True, validator=_check_aware)
    # Derived once here so evaluation does no arithmetic on the hot path.
    threshold: int = attrs.field(init=False, repr=False, eq=False)
    plain: bool = attrs.field(init=False, repr=False, eq=False)
    scheduled: bool = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if (
            self.enable_at is not None
            and self.disable_at is not None
            and self.disable_at <= self.enable_at
        ):
            raise ValidationError("disable_at", "must be after enable_at")
        # Buckets below the threshold are on: bucket b is on when b/100 < percentage.
        # Decimal of the shortest repr is the number the user wrote, so float noise
        # cannot shift it (1.1 * 100 is 110.00000000000001 as a float).
        scaled = Decimal(repr(self.percentage)) * (BUCKETS // 100)
        object.__setattr__(self, "threshold", math.ceil(scaled))
        scheduled = self.enable_at is not None or self.disable_at is not None
        object.__setattr__(self, "scheduled", scheduled)
        plain = not scheduled and not self.users and not self.roles and self.percentage == 0
        object.__setattr__(self, "plain", plain)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601, users and roles sorted)."""
        return {
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "users": sorted(self.users),
            "roles": sorted(self.roles),
            "percentage": self.percentage,
            "enable_at": self.enable_at.isoformat() if self.enable_at else None,
            "disable_at": self.disable_at.isoformat() if self.disable_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flag:
        """Rebuild a flag from ``to_dict`` output; raises ``ValidationError`` on bad data."""
        try:
            return cls(
                data["key"],
                data["name"],
                description=data.get("description"),
                enabled=data.get("enabled", False),
                users=data.get("users", ()),
                roles=data.get("roles", ()),
                percentage=data.get("percentage", 0),
                enable_at=_parse_dt(data.get("enable_at")),
                disable_at=_parse_dt(data.get("disable_at")),
            )
        except KeyError as exc:
            raise ValidationError(str(exc.args[0]), "is required") from None


def _parse_dt(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError("datetime", "must be ISO 8601") from None
    raise ValidationError("datetime", f"must be ISO 8601 text, got {type(value).__name__}")


def _to_attributes(value: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(value))


def _check_optional_str(
    _inst: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(attribute.name, f"must be a str or None, got {type(value).__name__}")


@attrs.frozen(slots=True)
class FlagContext:
    """Who is asking: ``user_id`` (for targeting and buckets), ``role``, free ``attributes``."""

    user_id: str | None = attrs.field(default=None, validator=_check_optional_str)
    role: str | None = attrs.field(default=None, validator=_check_optional_str)
    attributes: Mapping[str, object] = attrs.field(factory=dict, converter=_to_attributes, eq=False)


class Reason(enum.Enum):
    """Which rule decided an evaluation."""

    DISABLED = "DISABLED"
    SCHEDULED_OFF = "SCHEDULED_OFF"
    USER_TARGET = "USER_TARGET"
    ROLE_TARGET = "ROLE_TARGET"
    PERCENTAGE = "PERCENTAGE"
    DEFAULT = "DEFAULT"
    UNKNOWN_FLAG = "UNKNOWN_FLAG"
    ERROR = "ERROR"


@attrs.frozen(slots=True)
class FlagEvaluation:
    """The outcome of evaluating one flag: ``enabled`` and the ``reason`` that decided it.

    ``bucket`` is the user's bucket in [0, 10000) when a percentage rule was
    consulted for a user, else None.
    """

    key: str
    enabled: bool
    reason: Reason
    bucket: int | None = None


FLAG_EVALUATED: Topic[FlagEvaluation] = Topic("flag.evaluated")
"""Every ``FeatureFlags.is_enabled``/``evaluate`` result, with its reason."""


FlagAction = Literal["create", "update", "delete"]


@attrs.frozen(slots=True)
class FlagChange:
    """One entry of a flag's audit history: who changed it, when, why, from what to what."""

    key: str
    version: int
    action: FlagAction
    changed_at: datetime
    changed_by: str | None
    reason: str | None
    old: Flag | None
    new: Flag | None


class FlagNotFoundError(ButtressError, KeyError):
    """``update`` named a flag that does not exist."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"flag {key!r} does not exist")

    def __str__(self) -> str:
        return str(self.args[0])
