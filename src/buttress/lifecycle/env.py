"""Typed environment variables for start-up validation, as pure functions.

``EnvVar`` declares a variable and its kind (str, int, float, bool, url);
``check_env`` returns the actionable error line for one variable, or ``None``.
Messages name the variable and the expected kind, never the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal
from urllib.parse import urlsplit

import attrs

from buttress._exceptions import ValidationError

__all__ = ["EnvKind", "EnvVar", "check_env", "parse_bool"]

EnvKind = Literal["str", "int", "float", "bool", "url"]
_KINDS: tuple[EnvKind, ...] = ("str", "int", "float", "bool", "url")
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})
_EXAMPLES: dict[EnvKind, str] = {
    "str": "a non-empty value",
    "int": "an integer, e.g. 8080",
    "float": "a number, e.g. 2.5",
    "bool": "a boolean: true/false, 1/0, yes/no, on/off",
    "url": "a URL with a scheme, e.g. https://host:port/path",
}


def _valid_kind(instance: object, attribute: attrs.Attribute[EnvKind], value: str) -> None:
    if value not in _KINDS:
        raise ValidationError("kind", f"must be one of {', '.join(_KINDS)}")


def _valid_name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value or "=" in value:
        raise ValidationError("name", "must be a non-empty environment variable name")


def _as_choices(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValidationError("choices", "must be a list of allowed values, not one string")
    return tuple(value)


@attrs.frozen(slots=True)
class EnvVar:
    """A required environment variable and the kind of value it must hold.

    ``choices`` restricts the value to a fixed set (compared case-sensitively).
    """

    name: str = attrs.field(validator=_valid_name)
    kind: EnvKind = attrs.field(default="str", validator=_valid_kind)
    choices: tuple[str, ...] = attrs.field(default=(), converter=_as_choices)


def parse_bool(text: str) -> bool | None:
    """``True``/``False`` for the usual spellings, ``None`` for anything else."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def _is_url(text: str) -> bool:
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


def _fits(kind: EnvKind, text: str) -> bool:
    if kind == "str":
        return bool(text.strip())
    if kind == "int":
        try:
            int(text.strip())
        except ValueError:
            return False
        return True
    if kind == "float":
        try:
            float(text.strip())
        except ValueError:
            return False
        return True
    if kind == "bool":
        return parse_bool(text) is not None
    return _is_url(text)


def check_env(spec: EnvVar | str, environ: Mapping[str, str]) -> str | None:
    """The error line for ``spec`` against ``environ``, or ``None`` when it is fine."""
    var = EnvVar(spec) if isinstance(spec, str) else spec
    expected = "one of " + ", ".join(var.choices) if var.choices else _EXAMPLES[var.kind]
    value = environ.get(var.name)
    if value is None or not value.strip():
        state = "is not set" if value is None else "is empty"
        return (
            f"environment variable {var.name} {state}; "
            f"set it before starting (expected: {expected})"
        )
    if not _fits(var.kind, value) or (var.choices and value.strip() not in var.choices):
        return (
            f"environment variable {var.name} is not valid (expected: {expected}); "
            "fix its value (not shown here)"
        )
    return None
