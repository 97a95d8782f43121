"""Typed reads: checking a JSON value against a Python type, and ``Setting[T]``.

``coerce`` accepts exactly what the type promises (a bool is never an int; an
int is accepted as a float and returned as one) and builds attrs classes from
objects. Errors name the key and the path inside the value, never the value.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Generic, TypeVar, cast

import attrs

from buttress._checks import validate_key
from buttress.config._errors import ConfigTypeError
from buttress.config._json import JSONValue, check_json

__all__ = ["MISSING", "Setting", "coerce", "type_name"]

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


class Setting(Generic[T]):
    """A typed declaration of one config key, read with ``await config.read(setting)``.

    >>> MAX_UPLOAD_MB = Setting[int]("max_upload_mb", default=50)

    The type comes from the subscript (``Setting[int]``) or ``type=``; the
    default is checked against it the first time the setting is read.
    """

    __slots__ = ("__orig_class__", "_type", "default", "description", "key", "sensitive")

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
        self.default = default
        self.description = description
        self.sensitive = sensitive
        self._type: object = type

    @property
    def type(self) -> object:
        """The declared type (``Any`` when neither subscripted nor given)."""
        if self._type is None:
            orig = getattr(self, "__orig_class__", None)
            args = typing.get_args(orig)
            self._type = args[0] if args else Any
        return self._type

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def __repr__(self) -> str:
        default = (
            "MISSING" if self.required else ("'***'" if self.sensitive else repr(self.default))
        )
        return f"Setting[{type_name(self.type)}]({self.key!r}, default={default})"


def check_default(setting: Setting[T]) -> None:
    """Raise ``ConfigTypeError`` if the declared default does not fit the declared type."""
    if not setting.required:
        coerce(setting.key, setting.default, setting.type, "default")
