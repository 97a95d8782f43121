"""The flag values: ``Flag``, ``FlagContext``, ``FlagEvaluation``, ``Resolution``, ``Reason``.

Everything here is a frozen attrs value validated at construction, so a bad
flag is refused before it can reach a store or a snapshot. Targeting values
(conditions, rules, splits) live in ``_targeting``. No I/O, no clock.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar

import attrs

from buttress._checks import validate_key
from buttress._exceptions import ButtressError, ValidationError
from buttress._topic import Topic
from buttress.flags._targeting import (
    BUCKETS,
    JSONValue,
    Rule,
    Split,
    check_variant_name,
    check_variant_value,
    copy_json,
    reading_stored,
    split_bounds,
    to_items,
    to_split,
    tolerating,
)

__all__ = [
    "BUCKETS",
    "FLAG_EVALUATED",
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "Flag",
    "FlagAction",
    "FlagChange",
    "FlagContext",
    "FlagEvaluation",
    "FlagNotFoundError",
    "JSONObject",
    "MetadataValue",
    "Outcome",
    "Reason",
    "Resolution",
]

T = TypeVar("T")


MAX_NAME: Final = 200
"""The longest ``Flag.name`` and metadata name, in characters: as long as a key (and
as a deployment's version)."""
MAX_DESCRIPTION: Final = 2_000
"""The longest ``Flag.description`` and metadata text value, in characters."""


def _check_key(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    validate_key(attribute.name, value)


def _check_name(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(attribute.name, "must be a non-empty str")


def _too_long(field: str, text: str, limit: int) -> tuple[str, str] | None:
    if len(text) <= limit:
        return None
    return field, f"must be at most {limit:,} characters, not {len(text):,}"


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


_BOOLEAN_VARIANTS: Mapping[str, JSONValue] = MappingProxyType({"on": True, "off": False})
"""The variants of a flag that declares none: what ``users``, ``roles`` and
``percentage`` serve (``"on"``), and what a missed rollout serves (``"off"``)."""

MetadataValue: TypeAlias = "bool | int | float | str"
JSONObject: TypeAlias = "dict[str, JSONValue] | list[JSONValue]"
"""What ``FeatureFlags.get_object`` reads: a JSON object or array."""


def _to_variants(value: Mapping[str, JSONValue] | None) -> Mapping[str, JSONValue]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValidationError("variants", "must map variant names to JSON values")
    variants: dict[str, JSONValue] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise ValidationError("variants", "names must be non-empty str")
        check_variant_value(f"variants[{name!r}]", item)
        # A private copy: the caller's dicts and lists cannot change a frozen flag.
        variants[name] = copy_json(item)
    return MappingProxyType(variants)


def _to_metadata(value: Mapping[str, MetadataValue] | None) -> Mapping[str, MetadataValue]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValidationError("metadata", "must map names to str, number or bool values")
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise ValidationError("metadata", "names must be non-empty str")
        if not isinstance(item, str | bool | int | float) or (
            isinstance(item, float) and not math.isfinite(item)
        ):
            raise ValidationError(f"metadata[{name!r}]", "must be a str, finite number or bool")
    return MappingProxyType(dict(value))


def _to_rules(value: Iterable[Rule | Mapping[str, Any]]) -> tuple[Rule, ...]:
    return to_items("rules", Rule, value)


Outcome: TypeAlias = "tuple[bool, Reason, int | None, str | None]"
"""What the core decides: ``(on, reason, bucket, variant)``."""


@attrs.frozen(slots=True)
class Flag:
    """A feature flag. See ``buttress.flags.evaluate`` for how it decides.

    ``enabled`` is the global switch: a disabled flag is off for everyone.
    ``percentage`` 0 means "no rollout rule" (the switch decides); above 0 only
    the users whose bucket falls under it are on.

    Without ``variants`` a flag is boolean: it serves ``"on"`` (True) or ``"off"``
    (False). With ``variants`` (names to JSON values) it serves one of them:
    the first matching rule's, else one picked by ``split``, else
    ``default_variant`` (None: nothing, so typed reads give the caller's default).
    ``users``, ``roles`` and ``percentage`` are the boolean shorthand; a flag with
    variants targets with ``rules``.
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
    rules: tuple[Rule, ...] = attrs.field(default=(), kw_only=True, converter=_to_rules)
    variants: Mapping[str, JSONValue] = attrs.field(
        default=None, kw_only=True, converter=_to_variants, hash=False
    )
    default_variant: str | None = attrs.field(
        default=None, kw_only=True, validator=check_variant_name
    )
    split: Split = attrs.field(default=(), kw_only=True, converter=to_split)
    metadata: Mapping[str, MetadataValue] = attrs.field(
        default=None, kw_only=True, converter=_to_metadata, hash=False
    )
    # Derived once here so evaluation does no arithmetic on the hot path.
    threshold: int = attrs.field(init=False, repr=False, eq=False)
    plain: bool = attrs.field(init=False, repr=False, eq=False)
    """Nothing to evaluate and it serves a value that counts as on: ``is_enabled``'s fast path."""
    static: bool = attrs.field(init=False, repr=False, eq=False)
    """Nothing to evaluate: every context gets the default variant, at any time."""
    scheduled: bool = attrs.field(init=False, repr=False, eq=False)
    served: Mapping[str, JSONValue] = attrs.field(init=False, repr=False, eq=False)
    """The variants it can serve: ``variants``, or ``{"on": True, "off": False}``."""
    on_variants: frozenset[str] = attrs.field(init=False, repr=False, eq=False)
    """Variants that count as on for ``is_enabled``: every one whose value is not False."""
    split_bounds: tuple[int, ...] = attrs.field(init=False, repr=False, eq=False)
    fallthrough: Outcome = attrs.field(init=False, repr=False, eq=False)
    """What it decides when nothing targets the context: the default variant."""
    problems: tuple[tuple[str, str], ...] = attrs.field(init=False, repr=False, eq=False)
    """``(field, rule)`` for what today's rules refuse in a flag read from storage
    (``from_dict(..., stored=True)``): a ``matches`` pattern that could backtrack
    catastrophically (that condition never matches), a name, description or
    metadata text over its length limit.
    Empty for every flag built otherwise, which raises instead. Such a flag loads
    and is served; writing it back is refused until it is fixed."""

    def __attrs_post_init__(self) -> None:
        problems = self._problems()
        if problems and not tolerating():
            raise ValidationError(*problems[0])
        object.__setattr__(self, "problems", problems)
        if (
            self.enable_at is not None
            and self.disable_at is not None
            and self.disable_at <= self.enable_at
        ):
            raise ValidationError("disable_at", "must be after enable_at")
        served = self.variants or _BOOLEAN_VARIANTS
        self._check_variants(served)
        set_ = object.__setattr__
        # Buckets below the threshold are on: bucket b is on when b/100 < percentage.
        # Decimal of the shortest repr is the number the user wrote, so float noise
        # cannot shift it (1.1 * 100 is 110.00000000000001 as a float).
        scaled = Decimal(repr(self.percentage)) * (BUCKETS // 100)
        set_(self, "threshold", math.ceil(scaled))
        scheduled = self.enable_at is not None or self.disable_at is not None
        set_(self, "scheduled", scheduled)
        static = (
            not scheduled
            and not self.users
            and not self.roles
            and self.percentage == 0
            and not self.rules
            and not self.split
        )
        default = self.default_variant
        if default is None and not self.variants:
            default = "on"
        on_variants = frozenset(name for name, value in served.items() if value is not False)
        set_(self, "static", static)
        set_(self, "plain", static and default in on_variants)
        set_(self, "served", served)
        set_(self, "on_variants", on_variants)
        set_(self, "split_bounds", split_bounds(self.split))
        set_(self, "fallthrough", (default in on_variants, Reason.DEFAULT, None, default))

    def _problems(self) -> tuple[tuple[str, str], ...]:
        """What a flag may not hold but a stored one can (see ``problems``)."""
        found = [
            _too_long("name", self.name, MAX_NAME),
            None
            if not isinstance(self.description, str)
            else _too_long("description", self.description, MAX_DESCRIPTION),
        ]
        for name, value in self.metadata.items():
            if len(name) > MAX_NAME:
                found.append(("metadata", f"names must be at most {MAX_NAME} characters"))
            elif isinstance(value, str):
                found.append(_too_long(f"metadata[{name!r}]", value, MAX_DESCRIPTION))
        for index, rule in enumerate(self.rules):
            for position, condition in enumerate(rule.when):
                if condition.refused is not None:
                    found.append(
                        (
                            f"rules[{index}].when[{position}].value",
                            f"{condition.refused} (condition on {condition.attribute!r})",
                        )
                    )
        return tuple(problem for problem in found if problem is not None)

    def _check_variants(self, served: Mapping[str, JSONValue]) -> None:
        if self.variants:
            for field in ("users", "roles"):
                if getattr(self, field):
                    raise ValidationError(
                        field,
                        "targets a flag without variants only; a flag with variants targets "
                        "with a rule, e.g. Rule([Condition('user_id', 'in', [...])], variant=...)",
                    )
            if self.percentage:
                raise ValidationError(
                    "percentage",
                    "is the rollout of a flag without variants; a flag with variants uses split",
                )
        if self.percentage and self.split:
            raise ValidationError("split", "a flag has a percentage or a split, not both")
        known = ", ".join(sorted(served))

        def check(field: str, name: str | None) -> None:
            if name is not None and name not in served:
                raise ValidationError(field, f"names no variant of this flag (it has {known})")

        check("default_variant", self.default_variant)
        for name, _weight in self.split:
            check("split", name)
        for index, rule in enumerate(self.rules):
            if self.variants and rule.variant is None and not rule.split:
                raise ValidationError(
                    f"rules[{index}].variant", "is required on a flag with variants (or a split)"
                )
            check(f"rules[{index}].variant", rule.variant)
            for name, _weight in rule.split:
                check(f"rules[{index}].split", name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601, users and roles sorted).

        Targeting keys (``rules``, ``variants``, ``default_variant``, ``split``,
        ``metadata``) appear only when set, so a flag that uses none of them
        reads exactly as it did before they existed.
        """
        data: dict[str, Any] = {
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
        if self.rules:
            data["rules"] = [rule.to_dict() for rule in self.rules]
        if self.variants:
            data["variants"] = {name: copy_json(v) for name, v in self.variants.items()}
        if self.default_variant is not None:
            data["default_variant"] = self.default_variant
        if self.split:
            # Pairs, not an object: the order is the order of the buckets, and a
            # JSON object's order does not survive sort_keys or JSONB.
            data["split"] = [[name, weight] for name, weight in self.split]
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, stored: bool = False) -> Flag:
        """Rebuild a flag from ``to_dict`` output; raises ``ValidationError`` on bad data.

        Keys it does not know are refused, so a typo in a hand-written file
        (``"varaints"``) is an error rather than a silently plain flag.
        ``stored=True`` reads what a store holds, which an earlier release may
        have written under looser rules: what today's rules refuse is noted in
        ``problems`` rather than raised (see there).
        """
        reading = reading_stored() if stored else contextlib.nullcontext()
        with reading:
            return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> Flag:
        if not isinstance(data, Mapping):
            raise ValidationError("flag", f"must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise ValidationError(unknown[0], "is not a Flag field")
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
                rules=data.get("rules", ()),
                variants=data.get("variants"),
                default_variant=data.get("default_variant"),
                split=data.get("split"),
                metadata=data.get("metadata"),
            )
        except KeyError as exc:
            raise ValidationError(str(exc.args[0]), "is required") from None


_FIELDS = frozenset(a.name for a in attrs.fields(Flag) if a.init)


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
    RULE_MATCH = "RULE_MATCH"
    """A targeting rule matched (its variant, or its split's pick for the user)."""
    PERCENTAGE = "PERCENTAGE"
    SPLIT = "SPLIT"
    """The flag's ``split`` picked the variant by the user's bucket."""
    DEFAULT = "DEFAULT"
    UNKNOWN_FLAG = "UNKNOWN_FLAG"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    """A typed read (``get_string``...) found a value of another type: the default."""
    ERROR = "ERROR"


@attrs.frozen(slots=True)
class FlagEvaluation:
    """The outcome of evaluating one flag: ``enabled`` and the ``reason`` that decided it.

    ``bucket`` is the user's bucket in [0, 10000) when a percentage or split was
    consulted for a user, else None. ``variant`` names what the flag serves
    (``"on"``/``"off"`` for a flag without variants) and ``value`` is that
    variant's value; both are None when it serves nothing (off, unknown, or no
    default variant). ``value`` is shared with the snapshot: do not change it
    (``FeatureFlags.get_object`` hands out copies).
    """

    key: str
    enabled: bool
    reason: Reason
    bucket: int | None = None
    variant: str | None = None
    value: JSONValue = attrs.field(default=None, hash=False)


@attrs.frozen(slots=True)
class Resolution(Generic[T]):
    """A typed read of a flag (``FeatureFlags.resolve``): the value, or the caller's default.

    ``value`` is the served variant's value when it has the type asked for;
    otherwise the default, with ``reason`` saying why (``DISABLED``,
    ``SCHEDULED_OFF``, ``UNKNOWN_FLAG``, ``TYPE_MISMATCH``, ``ERROR``, or
    ``DEFAULT`` with ``variant`` None when the flag has no default variant) and
    ``error`` a message for the last three.
    """

    key: str
    value: T
    reason: Reason
    variant: str | None = None
    bucket: int | None = None
    error: str | None = None

    @property
    def defaulted(self) -> bool:
        """True when ``value`` is the caller's default rather than the flag's."""
        return self.variant is None or self.error is not None


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
