"""Typed environment variables for start-up validation, as pure functions.

``EnvVar`` declares a variable and its kind (str, int, float, bool, url);
``check_env`` returns the actionable error line for one variable, or ``None``.
Messages name the variable and the expected kind, never the value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from typing import Literal, cast
from urllib.parse import urlsplit

import attrs

from buttress._checks import parse_bool
from buttress._exceptions import ValidationError

__all__ = [
    "EnvKind",
    "EnvVar",
    "check_env",
    "load_required_env",
    "parse_bool",
    "parse_env_spec",
]

EnvKind = Literal["str", "int", "float", "bool", "url"]
_KINDS: tuple[EnvKind, ...] = ("str", "int", "float", "bool", "url")
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


def parse_env_spec(spec: str) -> EnvVar:
    """``NAME`` or ``NAME:KIND`` (as ``--require-env`` takes it) as an ``EnvVar``."""
    name, sep, kind = spec.partition(":")
    if not sep:
        return EnvVar(name.strip())
    if kind.strip() not in _KINDS:
        raise ValidationError(
            "require-env", f"{name.strip()}: kind must be one of {', '.join(_KINDS)}"
        )
    return EnvVar(name.strip(), cast(EnvKind, kind.strip()))


def _env_item(item: object, index: int) -> EnvVar:
    where = f"startup.require_env[{index}]"
    if isinstance(item, str):
        try:
            return parse_env_spec(item)
        except ValidationError as exc:
            raise ValidationError(where, exc.rule) from None
    if isinstance(item, dict):
        unknown = set(item) - {"name", "kind", "choices"}
        if unknown:
            raise ValidationError(
                where, f"unknown field {sorted(unknown)[0]!r} (name, kind, choices)"
            )
        try:
            return EnvVar(item.get("name", ""), item.get("kind", "str"), item.get("choices", ()))
        except ValidationError as exc:
            raise ValidationError(f"{where}.{exc.field}", exc.rule) from None
    raise ValidationError(
        where, "must be a name, 'NAME:KIND' or {name=..., kind=..., choices=[...]}"
    )


def load_required_env(path: str | os.PathLike[str]) -> tuple[EnvVar, ...]:
    """The variables a start-up file requires.

    The file is TOML with a ``[startup]`` table (or, in ``pyproject.toml``,
    ``[tool.buttress.startup]``) whose ``require_env`` lists ``"NAME"``,
    ``"NAME:KIND"`` or ``{name = ..., kind = ..., choices = [...]}``. A file
    that cannot be used raises ``ValidationError`` naming the field and rule.
    """
    shown = os.fspath(path)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ValidationError("startup", f"file {shown} does not exist") from None
    except OSError as exc:
        raise ValidationError("startup", f"file {shown} cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError("startup", f"file {shown} is not valid TOML ({exc})") from None
    section = document.get("startup")
    if section is None:
        section = document.get("tool", {}).get("buttress", {}).get("startup")
    if section is None:
        raise ValidationError(
            "startup", f"file {shown} has no [startup] (or [tool.buttress.startup]) table"
        )
    if not isinstance(section, dict):
        raise ValidationError("startup", "must be a table")
    unknown = set(section) - {"require_env"}
    if unknown:
        raise ValidationError(f"startup.{sorted(unknown)[0]}", "unknown field (known: require_env)")
    items = section.get("require_env", [])
    if not isinstance(items, list):
        raise ValidationError("startup.require_env", "must be a list")
    return tuple(_env_item(item, index) for index, item in enumerate(items))
