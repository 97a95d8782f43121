"""JSON values: the type, the check that refuses anything else, and the codec.

The check runs before anything is written and its messages name the path and
the kind of the bad value, never the value itself (it may be a secret).
"""

from __future__ import annotations

import json
import math
from typing import TypeAlias

from buttress.errors import ValidationError

__all__ = ["JSONValue", "check_json", "dumps", "loads", "string_leaves"]

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

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
