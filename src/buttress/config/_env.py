"""Typed settings read from environment variables, as pure functions.

``EnvSetting[T]`` is ``Setting[T]``'s twin for the process environment: one
declaration gives the variable's name, type, default and rule, and
``read()`` returns a ``T`` or raises ``EnvSettingError`` with one line that
names the variable and the rule. A value is never quoted back: a variable
that should not be secret often is.

Text becomes a value by the declared type: ``str`` as it is; ``int`` and
``float`` (finite) as written; ``bool`` from true/false, 1/0, yes/no, on/off;
``Literal[...]`` and ``Enum`` by spelling; ``Path``; lists, tuples and sets
from JSON (``[...]``) or comma-separated text; anything else (dicts, attrs
classes) from JSON, checked as ``Setting`` checks stored config.
"""

from __future__ import annotations

import enum
import json
import math
import pathlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from buttress._checks import parse_bool
from buttress._exceptions import ValidationError
from buttress.config._core import MISSING, Declaration, coerce, type_name
from buttress.config._values import ConfigTypeError

__all__ = ["EnvSetting", "EnvSettingError", "parse_env_text"]

T = TypeVar("T")

_SEQUENCES: tuple[object, ...] = (list, tuple, set, frozenset)


class EnvSettingError(ValidationError):
    """An environment variable is unset, empty or does not fit its declared rule.

    ``field`` is the variable's name; the message never contains its value.
    """

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(name, rule, message=f"environment variable {name} {rule}")


def _describe(tp: object) -> str:
    """The rule for ``tp`` in words, with an example where one helps."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is bool:
        return "a boolean: true/false, 1/0, yes/no, on/off"
    if tp is int:
        return "an integer, e.g. 8080"
    if tp is float:
        return "a finite number, e.g. 2.5"
    if tp is str or tp is Any:
        return "a non-empty value"
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        return "a path"
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in tp)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if tp in _SEQUENCES or origin in _SEQUENCES:
        return f"comma-separated values or a JSON list ({type_name(tp)})"
    return f"JSON for {type_name(tp)}"


def parse_env_text(name: str, text: str, tp: object) -> Any:
    """``text`` read as ``tp``, or ``EnvSettingError`` naming ``name`` and the rule."""

    def fail() -> EnvSettingError:
        return EnvSettingError(name, f"is not valid: expected {_describe(tp)} (value not shown)")

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object or tp is str:
        return text
    if origin is typing.Union or origin is types.UnionType:
        for option in args:
            if option is type(None):
                continue
            try:
                return parse_env_text(name, text, option)
            except EnvSettingError:
                continue
        raise fail()
    stripped = text.strip()
    if tp is bool:
        flag = parse_bool(stripped)
        if flag is None:
            raise fail()
        return flag
    if tp is int:
        try:
            return int(stripped, 10)
        except ValueError:
            raise fail() from None
    if tp is float:
        try:
            number = float(stripped)
        except ValueError:
            raise fail() from None
        if not math.isfinite(number):
            raise fail()
        return number
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        return tp(stripped)
    if origin is typing.Literal:
        for arg in args:
            if stripped == str(arg) and not isinstance(arg, bool):
                return arg
            if isinstance(arg, bool) and parse_bool(stripped) is arg:
                return arg
        raise fail()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if stripped in (str(member.value), member.name):
                return member
        raise fail()
    if tp in _SEQUENCES or origin in _SEQUENCES:
        return _parse_sequence(name, stripped, tp, fail)
    try:
        loaded = json.loads(stripped)
    except (ValueError, RecursionError):
        raise fail() from None
    try:
        return coerce(name, loaded, tp)
    except ConfigTypeError as exc:
        raise EnvSettingError(name, f"is not valid: {exc.rule} (value not shown)") from None


def _parse_sequence(name: str, text: str, tp: object, fail: Callable[[], EnvSettingError]) -> Any:
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if text.startswith("["):
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise fail() from None
        if not isinstance(raw, list):
            raise fail()
        texts = [item if isinstance(item, str) else json.dumps(item) for item in raw]
    else:
        texts = [part.strip() for part in text.split(",") if part.strip()]
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(texts) != len(args):
            raise fail()  # a fixed-length tuple: one item per declared type
        return tuple(parse_env_text(name, t, a) for t, a in zip(texts, args, strict=True))
    item_type: object = args[0] if args else str
    items = [parse_env_text(name, t, item_type) for t in texts]
    if origin is tuple:
        return tuple(items)
    if origin is set:
        return set(items)
    if origin is frozenset:
        return frozenset(items)
    return items


class EnvSetting(Declaration[T]):
    """A typed declaration of one environment variable.

    >>> PORT = EnvSetting[int]("PORT", default=8080)
    >>> PORT.read({"PORT": "9000"})
    9000

    Unset or blank, it reads as its default; without a default as ``None``
    when the type admits ``None``, else ``read()`` raises. ``check`` adds a
    rule of your own: it gets the parsed value and returns ``None`` when the
    value is fine, or the rule in words (``"must be at least 1"``).
    """

    __slots__ = ("check", "name")
    _untyped = str

    def __init__(
        self,
        name: str,
        *,
        default: T = MISSING,
        type: type[T] | None = None,
        description: str | None = None,
        sensitive: bool = False,
        check: Callable[[T], str | None] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip() or "=" in name or "\x00" in name:
            raise ValidationError("name", "must be a non-empty environment variable name")
        if check is not None and not callable(check):
            raise ValidationError("check", "must be callable: value -> None or the rule broken")
        self.name = name
        self.check = check
        super().__init__(default, type, description, sensitive)

    @property
    def required(self) -> bool:
        """True when an unset variable is an error (no default, ``None`` not allowed)."""
        return self.default is MISSING and not _admits_none(self.type)

    def read(self, environ: Mapping[str, str] | None = None) -> T:
        """The variable's value as ``T`` (from ``os.environ`` unless ``environ`` is given)."""
        if environ is None:
            import os

            environ = os.environ
        text = environ.get(self.name)
        if text is None or not text.strip():
            if self.default is not MISSING:
                return self.default
            if _admits_none(self.type):
                return None  # type: ignore[return-value]
            state = "is not set" if text is None else "is empty"
            raise EnvSettingError(
                self.name, f"{state}; set it before starting (expected: {_describe(self.type)})"
            )
        value: T = parse_env_text(self.name, text, self.type)
        if self.check is not None:
            broken = self.check(value)
            if broken is not None:
                raise EnvSettingError(self.name, f"is not valid: {broken} (value not shown)")
        return value

    def problem(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The one-line error ``read()`` would raise, or ``None`` when it would not."""
        try:
            self.read(environ)
        except EnvSettingError as exc:
            return str(exc)
        return None

    def __repr__(self) -> str:
        return self._shown("EnvSetting", self.name)


def _admits_none(tp: object) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(tp)
    return tp is None or tp is type(None)
