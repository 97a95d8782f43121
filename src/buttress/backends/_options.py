"""Checking ``connect(**options)`` before anything is opened.

Each backend declares the options it knows; anything else, or a value of the
wrong kind, is a ``ValidationError`` naming the option and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from buttress._checks import check_seconds
from buttress._exceptions import ValidationError

__all__ = [
    "check_known",
    "opt_bool",
    "opt_int",
    "opt_seconds",
    "opt_str_map",
]


def check_known(kind: str, options: Mapping[str, object], known: frozenset[str]) -> None:
    for name in sorted(options):
        if name not in known:
            raise ValidationError(
                name,
                f"unknown option for the {kind} backend; known options: {', '.join(sorted(known))}",
            )


def opt_int(options: Mapping[str, object], name: str, default: int, *, minimum: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(name, f"must be an int >= {minimum}")
    return value


def opt_seconds(
    options: Mapping[str, object], name: str, default: float | None, *, allow_none: bool = False
) -> float | None:
    return check_seconds(name, options.get(name, default), optional=allow_none)


def opt_bool(options: Mapping[str, object], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise ValidationError(name, "must be True or False")
    return value


def opt_str_map(options: Mapping[str, object], name: str) -> dict[str, str]:
    value = options.get(name, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(name, "must be a mapping of str to str")
    return dict(value)
