"""Column default expressions a declaration may carry into DDL.

Defaults are SQL text, so only a small, safe grammar is accepted: numeric and
string literals, TRUE/FALSE/NULL, the CURRENT_* keywords and a few argument-free
functions, optionally cast with ``::type``. Anything else is refused.

String literals are read as the SQL standard reads them ('' is a quote, a
backslash is itself). PostgreSQL with ``standard_conforming_strings = off``
reads a backslash as an escape instead, so there a literal holding one is
ambiguous and ``render_default(..., standard_strings=False)`` refuses it.
"""

from __future__ import annotations

import re

from buttress._exceptions import ValidationError
from buttress.schema.types import parse_type

__all__ = ["check_default", "is_constant_default", "render_default"]

_LITERAL = r"(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|'(?:[^'\x00]|'')*'|true|false|null)"
_KEYWORD = r"(?:current_timestamp|current_date|current_time|localtimestamp|localtime)"
_FUNCTION = r"(?:now|gen_random_uuid|uuid_generate_v4|clock_timestamp|statement_timestamp)\(\)"
_CAST = r"(?:::(?P<cast>[A-Za-z_][A-Za-z0-9_ ()\[\],]*))?"
_DEFAULT_RE = re.compile(
    rf"^(?P<expr>{_LITERAL}|{_KEYWORD}|{_FUNCTION}){_CAST}$",
    re.IGNORECASE | re.DOTALL,
)
_CONSTANT_RE = re.compile(rf"^{_LITERAL}$", re.IGNORECASE | re.DOTALL)


def check_default(expression: str, *, field: str = "default") -> str:
    """Return ``expression`` stripped, or refuse it with a ``ValidationError``."""
    if not isinstance(expression, str):
        raise ValidationError(field, f"must be a string, not {type(expression).__name__}")
    text = expression.strip()
    match = _DEFAULT_RE.match(text)
    if match is None:
        raise ValidationError(
            field,
            "must be a literal, TRUE/FALSE/NULL, CURRENT_TIMESTAMP-like keyword or an "
            "argument-free function such as now(), optionally cast with ::type",
        )
    if match["cast"] is not None:
        parse_type(match["cast"], field=field)
    return text


def is_constant_default(expression: str) -> bool:
    """True for plain literals: the only defaults SQLite's ADD COLUMN accepts."""
    return _CONSTANT_RE.match(expression.strip()) is not None


def render_default(
    expression: str, *, standard_strings: bool = True, field: str = "default"
) -> str:
    """The DEFAULT clause's expression; non-literals are parenthesised, as SQLite requires.

    ``standard_strings``: whether the session reads '...' as the SQL standard does
    (PostgreSQL's ``standard_conforming_strings``; always true on SQLite).
    """
    text = check_default(expression, field=field)
    # Only a string literal can hold a backslash: the rest of the grammar has none.
    if not standard_strings and "\\" in text:
        raise ValidationError(
            field,
            "holds a backslash, which this database reads as an escape "
            "(standard_conforming_strings is off) where the declaration means a "
            "backslash; refused as ambiguous: turn standard_conforming_strings on "
            "or leave the backslash out",
        )
    if is_constant_default(text) or re.fullmatch(_KEYWORD, text, re.IGNORECASE):
        return text
    return f"({text})"
