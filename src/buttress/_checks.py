"""Validation shared by every component: durations, counts, numbers, config and flag keys.

One rule and one message everywhere (``ValidationError(field, rule)``), so a
bad timeout reads the same whether it went to a backend, a breaker, a health
check, a retry or the shutdown sequence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Literal, cast, overload

from buttress._exceptions import ValidationError

__all__ = [
    "check_count",
    "check_names",
    "check_number",
    "check_seconds",
    "check_version",
    "parse_bool",
    "revert_reason",
    "unknown_version",
    "validate_key",
]

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})


def parse_bool(text: str) -> bool | None:
    """``True``/``False`` for the usual spellings (true/false, 1/0, yes/no, on/off,
    y/n, t/f, any case, surrounding blanks ignored), ``None`` for anything else."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,199}")


@overload
def check_seconds(
    field: str, value: object, *, optional: Literal[False] = False, allow_zero: bool = False
) -> float: ...
@overload
def check_seconds(
    field: str, value: object, *, optional: bool, allow_zero: bool = False
) -> float | None: ...
def check_seconds(
    field: str, value: object, *, optional: bool = False, allow_zero: bool = False
) -> float | None:
    """``value`` as a float: a finite number of seconds, > 0 (``>= 0`` with
    ``allow_zero``), or None when ``optional``; else ``ValidationError`` naming
    ``field``. bool is refused although Python counts it as an int."""
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        rule = "must be a finite number of seconds " + (">= 0" if allow_zero else "> 0")
        raise ValidationError(field, rule + (" or None" if optional else ""))
    return float(value)


def check_count(field: str, value: object, *, at_least: int) -> int:
    """``value`` if it is an int ``>= at_least`` (bool refused), else ``ValidationError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        raise ValidationError(field, f"must be an integer >= {at_least}")
    return value


def check_version(field: str, value: object) -> int:
    """``value`` if it is a history version (an int >= 1, bool refused), else an error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(field, "must be a positive int")
    return value


def revert_reason(reason: str | None, to_version: int) -> str:
    """What a revert records as its reason: the caller's, else ``revert to version N``."""
    return reason if reason is not None else f"revert to version {to_version}"


def unknown_version(key: str, to_version: int) -> ValidationError:
    """The error for a revert to a version the history does not have."""
    return ValidationError("to_version", f"no version {to_version} recorded for {key!r}")


def check_number(field: str, value: object, *, at_least: float) -> float:
    """``value`` as a float if it is a finite number ``>= at_least`` (bool refused)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < at_least
    ):
        raise ValidationError(field, f"must be a finite number >= {at_least:g}")
    return float(value)


def check_names(field: str, value: Iterable[object]) -> frozenset[str]:
    """The set of names in ``value``, each a non-empty str, else ``ValidationError``.

    A bare string is refused: it would silently become a set of characters.
    """
    if isinstance(value, str):
        raise ValidationError(field, "must be a collection of str, not a single str")
    names = frozenset(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValidationError(field, "every entry must be a non-empty str")
    return cast(frozenset[str], names)


def validate_key(field: str, key: object) -> str:
    """Return ``key`` if it is a usable flag or config key, else raise ``ValidationError``."""
    if not isinstance(key, str):
        raise ValidationError(field, f"must be a str, got {type(key).__name__}")
    if not key:
        raise ValidationError(field, "must not be empty")
    if _KEY_RE.fullmatch(key) is None:
        raise ValidationError(
            field,
            "must be 1-200 characters of letters, digits, '_', '.', ':' or '-', "
            "not starting with '.', ':' or '-'",
        )
    return key
