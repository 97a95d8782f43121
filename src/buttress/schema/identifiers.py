"""Identifier validation and quoting for generated SQL.

Every table, column, index and constraint name that buttress puts into SQL goes
through ``quote_identifier``: it is checked here first, then always quoted, so
a hostile name can only ever become a (strangely named) identifier, never code.
"""

from __future__ import annotations

import unicodedata

from buttress._exceptions import ValidationError

__all__ = ["MAX_IDENTIFIER_BYTES", "check_identifier", "quote_identifier"]

# PostgreSQL silently truncates longer names (NAMEDATALEN - 1), which would turn
# a declared name into a different live one and report drift forever.
MAX_IDENTIFIER_BYTES = 63


def check_identifier(name: object, *, field: str = "name") -> str:
    """Return ``name`` if it can be represented safely as a quoted identifier.

    Refused: non-strings, empty names, names longer than 63 UTF-8 bytes, and
    names containing control or unassigned characters (NUL cannot be stored at
    all; the others would make logs and error messages lie about the name).
    """
    if not isinstance(name, str):
        raise ValidationError(field, f"must be a string, not {type(name).__name__}")
    if not name:
        raise ValidationError(field, "must not be empty")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValidationError(field, f"must be at most {MAX_IDENTIFIER_BYTES} bytes (UTF-8) long")
    for char in name:
        if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}:
            raise ValidationError(field, "must not contain control or invisible characters")
    if name != name.strip():
        raise ValidationError(field, "must not start or end with whitespace")
    return name


def quote_identifier(name: str, *, field: str = "name") -> str:
    """``name`` as a double-quoted SQL identifier (standard SQL, SQLite and PostgreSQL)."""
    check_identifier(name, field=field)
    return '"' + name.replace('"', '""') + '"'
