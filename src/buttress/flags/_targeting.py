"""Targeting values: ``Condition`` (one comparison), ``Rule`` (conditions -> a variant or a
split), ``Operator``, weighted splits and semantic versions.

Everything is validated and prepared when built (regular expressions compiled
and checked for catastrophic backtracking by ``_regex``, versions parsed,
weights turned into bucket boundaries), so evaluation in ``_core`` only
compares. Flags read from storage are built under ``reading_stored``, where a
pattern refused today is kept, marked, and never run. No I/O, no clock, no
evaluation here.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, Final, Protocol, Self, TypeAlias, TypeGuard, TypeVar

import attrs

from buttress._exceptions import ValidationError
from buttress.flags._regex import MAX_PATTERN, TOO_LONG, refusal

__all__ = [
    "BUCKETS",
    "Condition",
    "ConditionTest",
    "JSONValue",
    "Operator",
    "RefusedPattern",
    "Rule",
    "Scalar",
    "Split",
    "check_variant_name",
    "check_variant_value",
    "copy_json",
    "reading_stored",
    "semver_key",
    "split_bounds",
    "to_items",
    "to_split",
    "tolerating",
]

BUCKETS = 10_000
"""Buckets per flag: a percentage is honoured to 0.01 of a point."""

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
Scalar: TypeAlias = "str | int | float | bool"
"""What a condition compares with: JSON's scalars (never null)."""
Split: TypeAlias = "tuple[tuple[str, float], ...]"
"""``(variant, weight)`` pairs in order; weights are percentages adding up to 100."""


class Operator(enum.StrEnum):
    """How a ``Condition`` compares the context's attribute with its value."""

    EQUALS = "equals"
    IN = "in"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    SEMVER_EQ = "semver_eq"
    SEMVER_LT = "semver_lt"
    SEMVER_LTE = "semver_lte"
    SEMVER_GT = "semver_gt"
    SEMVER_GTE = "semver_gte"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    CONTAINS = "contains"
    MATCHES = "matches"


_NUMERIC: Final = frozenset({Operator.LT, Operator.LTE, Operator.GT, Operator.GTE})
_SEMVER: Final = frozenset(
    {
        Operator.SEMVER_EQ,
        Operator.SEMVER_LT,
        Operator.SEMVER_LTE,
        Operator.SEMVER_GT,
        Operator.SEMVER_GTE,
    }
)
_TEXT: Final = frozenset({Operator.STARTS_WITH, Operator.ENDS_WITH, Operator.CONTAINS})

# semver.org's grammar: MAJOR.MINOR.PATCH, numbers without leading zeros,
# optional -pre.release identifiers and +build metadata (ignored for order).
_SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)

ConditionTest: TypeAlias = "Callable[[str | None, str | None, Mapping[str, object]], bool]"
"""``(user_id, role, attributes) -> matched``: a condition prepared for evaluation."""

SemverKey: TypeAlias = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


@functools.lru_cache(maxsize=4096)
def semver_key(text: str) -> SemverKey | None:
    """A tuple ordering versions by semver precedence, or None if ``text`` is not one.

    Releases sort after their pre-releases (``1.0.0-rc.1 < 1.0.0``); pre-release
    identifiers compare numerically when numeric, numbers before words, and a
    shorter list of equal identifiers first. Build metadata is ignored.
    Memoised: contexts repeat the same few versions.
    """
    match = _SEMVER_RE.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        return int(major), int(minor), int(patch), 1, ()
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")
    )
    return int(major), int(minor), int(patch), 0, identifiers


_STORED: ContextVar[bool] = ContextVar("buttress_flags_reading_stored", default=False)


@contextlib.contextmanager
def reading_stored() -> Iterator[None]:
    """Build flags read from storage: what today's rules refuse but an earlier release
    stored (a regular expression that could backtrack catastrophically, text over a
    length limit) is kept and noted on the flag (``Flag.problems``) instead of
    raising, so loading never drops a flag; writing it back is refused until it is
    fixed."""
    token = _STORED.set(True)
    try:
        yield
    finally:
        _STORED.reset(token)


def tolerating() -> bool:
    """Whether values are being read from storage (see ``reading_stored``)."""
    return _STORED.get()


@attrs.frozen(slots=True)
class RefusedPattern:
    """The operand of a stored ``matches`` condition whose pattern is refused today:
    evaluation treats the condition as not applying (it never matches, negated or not)."""

    rule: str


def _pattern(text: str) -> re.Pattern[str] | RefusedPattern:
    """``text`` compiled, or why it is refused (``_regex``); ``ValidationError`` if invalid."""
    if len(text) > MAX_PATTERN:
        return RefusedPattern(TOO_LONG)  # not even compiled: compiling costs with length
    try:
        compiled = re.compile(text)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValidationError("value", f"is not a valid regular expression ({exc})") from None
    rule = refusal(text)
    return compiled if rule is None else RefusedPattern(rule)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalar(field: str, value: object) -> Scalar:
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, "must be a finite number")
        return value
    raise ValidationError(field, f"must be a str, number or bool, got {type(value).__name__}")


@attrs.frozen(slots=True)
class InSet:
    """The prepared operand of ``in``: bools apart, since ``True == 1`` in Python."""

    values: frozenset[str | int | float]
    bools: frozenset[bool]


def _operand(operator: Operator, value: object) -> tuple[object, object]:
    """``(value as stored, operand as compared)``; ``ValidationError`` naming ``value``."""
    if operator is Operator.IN:
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise ValidationError("value", "in needs a list of str, number or bool values")
        items = tuple(_check_scalar("value", item) for item in value)
        if not items:
            raise ValidationError("value", "in needs at least one value")
        bools = frozenset(item for item in items if isinstance(item, bool))
        others = frozenset(item for item in items if not isinstance(item, bool))
        return items, InSet(others, bools)
    if operator is Operator.EQUALS:
        scalar = _check_scalar("value", value)
        return scalar, scalar
    if operator in _NUMERIC:
        if not _is_number(value) or not math.isfinite(value):
            raise ValidationError("value", f"{operator} needs a finite number")
        return value, value
    if operator in _SEMVER:
        key = semver_key(value) if isinstance(value, str) else None
        if key is None:
            raise ValidationError(
                "value",
                f"{operator} needs a semantic version like 1.2.3 or 2.0.0-rc.1 "
                "(MAJOR.MINOR.PATCH, see semver.org)",
            )
        return value, key
    if not isinstance(value, str):
        raise ValidationError("value", f"{operator} needs a str, got {type(value).__name__}")
    if operator is Operator.MATCHES:
        pattern = _pattern(value)
        if isinstance(pattern, RefusedPattern) and not tolerating():
            raise ValidationError("value", pattern.rule)
        return value, pattern
    return value, value


def _to_operator(value: Operator | str) -> Operator:
    if isinstance(value, Operator):
        return value
    try:
        return Operator(value)
    except ValueError:
        known = ", ".join(op.value for op in Operator)
        raise ValidationError("operator", f"must be one of {known}, got {value!r}"[:300]) from None


def _as_given(value: Scalar | Iterable[Scalar]) -> Scalar | tuple[Scalar, ...]:
    """Typing only: ``__attrs_post_init__`` checks the value against the operator."""
    return value  # type: ignore[return-value]  # checked with the operator, after init


def _check_attribute(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(attribute.name, "must be a non-empty str naming a context attribute")


@attrs.frozen(slots=True)
class Condition:
    """``attribute operator value``, optionally negated, e.g. ``Condition("plan", "in",
    ["pro", "team"])``.

    ``attribute`` names a ``FlagContext.attributes`` key; ``"user_id"`` and
    ``"role"`` name the context's own fields. A missing (or None) attribute never
    matches, negated or not; ``equals`` and ``in`` compare any value, the other
    operators apply only to a value of their kind (a number, a str, a semantic
    version), and a value of another kind does not match either, negated or not.
    """

    attribute: str = attrs.field(validator=_check_attribute)
    operator: Operator = attrs.field(converter=_to_operator)
    value: Scalar | tuple[Scalar, ...] = attrs.field(converter=_as_given)
    negate: bool = attrs.field(
        default=False, kw_only=True, validator=attrs.validators.instance_of(bool)
    )
    operand: object = attrs.field(init=False, repr=False, eq=False)
    """What evaluation compares with: compiled pattern, version key, value set."""
    refused: str | None = attrs.field(init=False, default=None, repr=False, eq=False)
    """Why a stored ``matches`` pattern is refused today (it then never matches), or None;
    only a condition read from storage (``reading_stored``) can have one."""
    compiled: ConditionTest | None = attrs.field(init=False, default=None, repr=False, eq=False)
    """The evaluation core's prepared test, filled in by ``_core`` at first use."""

    def __attrs_post_init__(self) -> None:
        try:
            stored, operand = _operand(self.operator, self.value)
        except ValidationError as exc:
            where = f"{exc.rule} (condition on {self.attribute!r})"
            raise ValidationError(exc.field, where) from None
        object.__setattr__(self, "value", stored)
        object.__setattr__(self, "operand", operand)
        if isinstance(operand, RefusedPattern):
            object.__setattr__(self, "refused", operand.rule)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "attribute": self.attribute,
            "operator": self.operator.value,
            "value": list(self.value) if isinstance(self.value, tuple) else self.value,
        }
        if self.negate:
            data["negate"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        _require_mapping("condition", data)
        _refuse_unknown(data, {"attribute", "operator", "value", "negate"})
        try:
            return cls(
                data["attribute"], data["operator"], data["value"], negate=data.get("negate", False)
            )
        except KeyError as exc:
            raise ValidationError(str(exc.args[0]), "is required") from None


def _require_mapping(what: str, data: object) -> None:
    if not isinstance(data, Mapping):
        raise ValidationError(what, f"must be an object, got {type(data).__name__}")


def _refuse_unknown(data: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(
            unknown[0], f"is not a known field (known: {', '.join(sorted(known))})"
        )


def _check_weight(field: str, weight: object) -> Decimal:
    if not _is_number(weight):
        raise ValidationError(field, f"must be a number, got {type(weight).__name__}")
    if not math.isfinite(weight) or not 0 <= weight <= 100:
        raise ValidationError(field, "must be a percentage between 0 and 100")
    return Decimal(repr(weight))


def to_split(value: object) -> Split:
    """``(variant, weight)`` pairs from a mapping or pairs, checked; ``()`` for none.

    Weights are percentages that must add up to 100; their order is the order
    of the buckets they take (see ``split_bounds``).
    """
    if value is None:
        return ()
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError("split", "must map variant names to percentages")
    else:
        pairs = []
        for pair in value:
            if isinstance(pair, str | bytes) or not isinstance(pair, Iterable):
                raise ValidationError("split", "must be (variant, percentage) pairs")
            items = tuple(pair)
            if len(items) != 2:
                raise ValidationError("split", "must be (variant, percentage) pairs")
            pairs.append((items[0], items[1]))
    if not pairs:
        return ()
    names = [name for name, _ in pairs]
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValidationError("split", "variant names must be non-empty str")
    if len(set(names)) != len(names):
        raise ValidationError("split", "names a variant twice")
    total = sum((_check_weight(f"split[{name!r}]", w) for name, w in pairs), Decimal(0))
    if abs(total - 100) > Decimal("1e-9"):
        raise ValidationError("split", f"percentages must add up to 100, not {total}")
    return tuple((str(name), float(weight)) for name, weight in pairs)


def split_bounds(split: Split) -> tuple[int, ...]:
    """Each variant's exclusive upper bucket, cumulative in order (the last is 10000).

    Variant ``i`` takes buckets ``[bounds[i-1], bounds[i])``: the same rounding as
    a percentage rollout (a bucket is in when ``b/100 < cumulative percentage``),
    so ``[("on", p), ("off", 100 - p)]`` splits exactly like ``percentage=p``.
    """
    bounds: list[int] = []
    cumulative = Decimal(0)
    for _name, weight in split:
        cumulative += Decimal(repr(weight))
        bounds.append(min(BUCKETS, math.ceil(cumulative * (BUCKETS // 100))))
    if bounds:
        bounds[-1] = BUCKETS
    return tuple(bounds)


class _FromDict(Protocol):
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...


Item = TypeVar("Item", bound=_FromDict)


def to_items(field: str, kind: type[Item], value: object) -> tuple[Item, ...]:
    """``value``, a list of ``kind`` or of the mappings ``kind.from_dict`` reads, as a tuple;
    a bad item's error names ``field[index]``."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(field, f"must be a list of {kind.__name__}")
    items = []
    for index, item in enumerate(value):
        if isinstance(item, kind):
            items.append(item)
            continue
        with prefixed(f"{field}[{index}]"):
            items.append(kind.from_dict(item))
    return tuple(items)


def _to_conditions(value: Iterable[Condition | Mapping[str, Any]]) -> tuple[Condition, ...]:
    return to_items("when", Condition, value)


def check_variant_name(
    _inst: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    """attrs validator: ``value`` names a variant (a non-empty str), or is None."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError(attribute.name, "must be a non-empty str naming a variant, or None")


@attrs.frozen(slots=True)
class Rule:
    """When every condition in ``when`` matches (all of them; none: everyone), serve
    ``variant``, or a variant picked from ``split`` by the user's bucket.

    On a flag without variants, a rule with neither serves ``"on"``.
    """

    when: tuple[Condition, ...] = attrs.field(converter=_to_conditions)
    variant: str | None = attrs.field(default=None, kw_only=True, validator=check_variant_name)
    split: Split = attrs.field(default=(), kw_only=True, converter=to_split)
    bounds: tuple[int, ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.variant is not None and self.split:
            raise ValidationError("split", "a rule serves a variant or a split, not both")
        object.__setattr__(self, "bounds", split_bounds(self.split))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"when": [condition.to_dict() for condition in self.when]}
        if self.variant is not None:
            data["variant"] = self.variant
        if self.split:
            data["split"] = [[name, weight] for name, weight in self.split]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        _require_mapping("rule", data)
        _refuse_unknown(data, {"when", "variant", "split"})
        return cls(data.get("when", ()), variant=data.get("variant"), split=data.get("split"))


class prefixed:
    """Re-raise a ``ValidationError`` with ``prefix`` in front of its field."""

    __slots__ = ("_prefix",)

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, ValidationError):
            raise ValidationError(f"{self._prefix}.{exc.field}", exc.rule) from None


def check_variant_value(field: str, value: object, depth: int = 0) -> None:
    """Raise ``ValidationError`` unless ``value`` is JSON; at the top level not null."""
    if depth == 0 and value is None:
        raise ValidationError(field, "must be a JSON value other than null")
    if depth > 64:
        raise ValidationError(field, "nests deeper than 64 levels")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, "must be a finite number (NaN is not JSON)")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_variant_value(f"{field}[{index}]", item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(field, f"has a {type(key).__name__} key; JSON keys are str")
            check_variant_value(f"{field}[{key!r}]", item, depth + 1)
        return
    raise ValidationError(field, f"{type(value).__name__} is not JSON")


def copy_json(value: JSONValue) -> JSONValue:
    """A copy of a JSON value whose lists and dicts the caller may change freely."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [copy_json(item) for item in value]
    return value
