"""The pure core of config: the JSON check and codec, and typed reads.

The check runs before anything is written and its messages name the path and
the kind of the bad value, never the value itself (it may be a secret).
``coerce`` checks a stored JSON value against a Python type; ``Setting[T]``
declares a typed key once for mypy-checked reads.
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any, Generic, TypeVar, cast

import attrs

from buttress._checks import validate_key
from buttress._exceptions import ValidationError
from buttress.config._values import ConfigTypeError, JSONValue

__all__ = [
    "MISSING",
    "Declaration",
    "Setting",
    "check_json",
    "coerce",
    "dumps",
    "loads",
    "string_leaves",
    "type_name",
]


_MAX_DEPTH = 64


def check_json(value: object, field: str = "value") -> None:
    """Raise ``ValidationError`` unless ``value`` is exactly representable as JSON.

    Refused: tuples and sets (they would come back as lists, or not at all),
    NaN and infinities, non-str dict keys, strings that are not valid Unicode,
    any other object, and nesting deeper than 64 levels.
    """
    _check(value, field, 0)


def _check(value: object, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValidationError(path, f"nests deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(path, "must be a finite number (NaN and infinity are not JSON)")
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(path, "must be valid Unicode (lone surrogate)") from None
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(path, f"has a {type(key).__name__} key; JSON keys are str")
            _check(key, f"{path} key", depth + 1)
            _check(item, f"{path}[{key!r}]", depth + 1)
        return
    raise ValidationError(path, f"{type(value).__name__} is not JSON")


def dumps(value: JSONValue) -> str:
    """Canonical JSON text (sorted keys, no NaN) for storage."""
    return json.dumps(value, sort_keys=True, allow_nan=False, separators=(",", ":"))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> JSONValue:
    """Parse stored JSON text; raises ``ValueError`` (never echoing the text) if it is not JSON."""
    try:
        value: JSONValue = json.loads(text, parse_constant=_refuse_constant)
    except (TypeError, ValueError, RecursionError):
        raise ValueError("stored value is not valid JSON") from None
    return value


def string_leaves(value: JSONValue) -> list[str]:
    """Every str and number inside ``value`` as text (what a secret could leak as)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float):
        return [repr(value)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in string_leaves(item)]
    return [leaf for item in value.values() for leaf in string_leaves(item)]


T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Marks a ``Setting`` without a default (reading it unset raises ``ConfigMissingError``)."""


def type_name(tp: object) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def coerce(key: str, value: object, tp: object, path: str = "") -> Any:
    """Return ``value`` as ``tp`` or raise ``ConfigTypeError`` naming ``key`` and the path."""
    where = f" at {path}" if path else ""

    def fail() -> ConfigTypeError:
        return ConfigTypeError(key, f"expected {type_name(tp)}{where}, found {_kind(value)}")

    if tp is Any or tp is object:
        return value
    if tp is None or tp is type(None):
        if value is None:
            return None
        raise fail()
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        for option in args:
            try:
                return coerce(key, value, option, path)
            except ConfigTypeError:
                continue
        raise fail()
    if origin is typing.Literal:
        if any(value == arg and type(value) is type(arg) for arg in args):
            return value
        raise fail()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if tp is list or origin is list:
        if not isinstance(value, list):
            raise fail()
        item_type = args[0] if args else Any
        return [coerce(key, item, item_type, f"{path}[{i}]") for i, item in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise fail()
        item_type = args[1] if len(args) == 2 else Any
        return {k: coerce(key, item, item_type, f"{path}.{k}") for k, item in value.items()}
    if isinstance(tp, type) and attrs.has(tp):
        return _build_attrs(key, value, tp, path, fail)
    raise ConfigTypeError(key, f"cannot read config as {type_name(tp)} (unsupported type)")


def _build_attrs(
    key: str, value: object, cls: type[Any], path: str, fail: typing.Callable[[], ConfigTypeError]
) -> Any:
    if not isinstance(value, dict):
        raise fail()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attrs.fields(cls) if f.init}
    unknown = set(value) - {f.alias for f in fields.values()}
    if unknown:
        raise ConfigTypeError(key, f"unknown field {sorted(unknown)[0]!r} for {cls.__name__}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if field.alias in value:
            sub = f"{path}.{field.alias}" if path else field.alias
            kwargs[field.alias] = coerce(key, value[field.alias], hints.get(name, Any), sub)
        elif field.default is attrs.NOTHING:
            raise ConfigTypeError(key, f"missing field {field.alias!r} for {cls.__name__}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigTypeError(
            key, f"{cls.__name__} refused the value ({type(exc).__name__})"
        ) from None


def to_json(value: object) -> JSONValue:
    """Turn an attrs instance (or JSON) into JSON for storage."""
    if attrs.has(type(value)):
        value = attrs.asdict(cast(attrs.AttrsInstance, value), recurse=True)
    check_json(value)
    return cast(JSONValue, value)


class Declaration(Generic[T]):
    """What ``Setting`` and ``EnvSetting`` share: a default, a declared type (from the
    subscript, ``Setting[int]``, or ``type=``), a description, and whether the value is
    a secret (its default is then masked in ``repr``)."""

    __slots__ = ("__orig_class__", "_type", "default", "description", "sensitive")
    _untyped: typing.ClassVar[object] = Any
    """The type when neither subscripted nor given."""

    def __init__(
        self, default: T, type: type[T] | None, description: str | None, sensitive: bool
    ) -> None:
        self.default = default
        self.description = description
        self.sensitive = sensitive
        self._type: object = type

    @property
    def type(self) -> object:
        """The declared type (when neither subscripted nor given: ``Any`` for a
        ``Setting``, ``str`` for an ``EnvSetting``)."""
        if self._type is None:
            args = typing.get_args(getattr(self, "__orig_class__", None))
            self._type = args[0] if args else self._untyped
        return self._type

    def _shown(self, kind: str, name: str) -> str:
        if self.default is MISSING:
            default = "MISSING"
        else:
            default = "'***'" if self.sensitive else repr(self.default)
        return f"{kind}[{type_name(self.type)}]({name!r}, default={default})"


class Setting(Declaration[T]):
    """A typed declaration of one config key, read with ``await config.read(setting)``.

    >>> MAX_UPLOAD_MB = Setting[int]("max_upload_mb", default=50)

    The type comes from the subscript (``Setting[int]``) or ``type=``; the
    default is checked against it the first time the setting is read.
    """

    __slots__ = ("key",)

    def __init__(
        self,
        key: str,
        *,
        default: T = MISSING,
        type: type[T] | None = None,
        description: str | None = None,
        sensitive: bool = False,
    ) -> None:
        self.key = validate_key("key", key)
        super().__init__(default, type, description, sensitive)

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def __repr__(self) -> str:
        return self._shown("Setting", self.key)


def check_default(setting: Setting[T]) -> None:
    """Raise ``ConfigTypeError`` if the declared default does not fit the declared type."""
    if not setting.required:
        coerce(setting.key, setting.default, setting.type, "default")
