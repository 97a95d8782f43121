"""Column type names: parsing, normalisation and per-dialect rendering.

Equivalent spellings (``int4``/``integer``, ``varchar(n)``/``character varying(n)``,
``timestamptz``/``timestamp with time zone``…) normalise to one canonical
PostgreSQL-style name, so they never report drift. Declared types are parsed
strictly (they end up in DDL); live types never raise.
"""

from __future__ import annotations

import functools
import re

import attrs

from buttress._exceptions import ValidationError

__all__ = ["SqlType", "normalise_live_type", "normalise_type", "parse_type", "render_type"]

_TYPE_RE = re.compile(
    r"""^\s*
    (?P<base>[A-Za-z_][A-Za-z0-9_]*(?:\s+[A-Za-z_][A-Za-z0-9_]*)*?)
    \s*(?:\(\s*(?P<p>\d{1,9})\s*(?:,\s*(?P<s>-?\d{1,9})\s*)?\))?
    \s*(?P<tz>(?:with|without)\s+time\s+zone)?
    \s*(?P<array>(?:\[\s*\d*\s*\]\s*)*)
    $""",
    re.IGNORECASE | re.VERBOSE,
)

_ALIASES = {
    "int": "integer",
    "int4": "integer",
    "integer": "integer",
    "serial": "integer",
    "serial4": "integer",
    "mediumint": "integer",
    "int8": "bigint",
    "bigint": "bigint",
    "bigserial": "bigint",
    "serial8": "bigint",
    "int2": "smallint",
    "smallint": "smallint",
    "smallserial": "smallint",
    "serial2": "smallint",
    "tinyint": "smallint",
    "bool": "boolean",
    "boolean": "boolean",
    "varchar": "character varying",
    "character varying": "character varying",
    "char varying": "character varying",
    "char": "character",
    "character": "character",
    "bpchar": "character",
    "float8": "double precision",
    "double": "double precision",
    "double precision": "double precision",
    "float": "double precision",
    "float4": "real",
    "real": "real",
    "decimal": "numeric",
    "numeric": "numeric",
    "timestamptz": "timestamp with time zone",
    "timetz": "time with time zone",
    "varbit": "bit varying",
    "blob": "bytea",
}
# Multi-word names must be known ones: free word sequences would let a "type"
# smuggle constraints ("integer references users") into DDL.
_MULTI_WORD = frozenset({"double precision", "character varying", "char varying", "bit varying"})
_SERIALS = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})
_ZONED = frozenset({"timestamp", "time"})


@attrs.frozen
class SqlType:
    """A parsed type name: canonical base, numeric modifiers, array depth."""

    base: str
    modifiers: tuple[int, ...] = ()
    array_depth: int = 0
    serial: bool = False

    def canonical(self) -> str:
        mods = f"({','.join(str(m) for m in self.modifiers)})" if self.modifiers else ""
        head, _, tail = self.base.partition(" ")
        text = f"{head}{mods} {tail}" if head in _ZONED and tail else f"{self.base}{mods}"
        return text + "[]" * self.array_depth


def parse_type(text: str, *, field: str = "type") -> SqlType:
    """Parse a declared type name; anything but words, numeric modifiers, a time
    zone clause and ``[]`` suffixes is refused, since the text goes into DDL."""
    if not isinstance(text, str):
        raise ValidationError(field, f"must be a string, not {type(text).__name__}")
    match = _TYPE_RE.match(text)
    if match is None:
        raise ValidationError(
            field,
            "must be a type name: words, optional numeric modifiers like (10,2), "
            "optional 'with time zone' and optional []",
        )
    base = " ".join(match["base"].lower().split())
    if " " in base and base not in _MULTI_WORD:
        raise ValidationError(field, f"unknown multi-word type name {base!r}")
    serial = base in _SERIALS
    base = _ALIASES.get(base, base)
    modifiers = tuple(int(m) for m in (match["p"], match["s"]) if m is not None)
    tz = match["tz"]
    if base in _ZONED:
        base = f"{base} {' '.join(tz.lower().split()) if tz else 'without time zone'}"
    elif tz:
        raise ValidationError(field, f"only timestamp and time take a time zone clause, not {base}")
    if base in {"character", "bit"} and not modifiers:
        modifiers = (1,)  # PostgreSQL reads a bare char/bit as length 1.
    if base == "double precision" and modifiers:
        # float(p): p <= 24 is real in PostgreSQL, more is double precision.
        base = "real" if modifiers[0] <= 24 else "double precision"
        modifiers = ()
    depth = match["array"].count("[")
    return SqlType(base=base, modifiers=modifiers, array_depth=depth, serial=serial)


@functools.lru_cache(maxsize=1024)
def normalise_type(text: str) -> str:
    """The canonical spelling of a declared type name (raises ``ValidationError``)."""
    return parse_type(text).canonical()


@functools.lru_cache(maxsize=1024)
def normalise_live_type(text: str) -> str:
    """The canonical spelling of a type read from a live database; never raises.

    A name buttress cannot parse (a schema-qualified enum, PostGIS's
    ``geometry(Point,4326)``) is compared by its lower-cased, space-collapsed text.
    """
    try:
        return parse_type(text).canonical()
    except ValidationError:
        return " ".join(text.lower().split())


def render_type(text: str, dialect: str) -> str:
    """The type as it should appear in a CREATE/ALTER statement for ``dialect``.

    PostgreSQL gets the declared spelling (so ``serial`` still creates its
    sequence); SQLite gets the canonical name, except ``bytea`` which becomes
    ``BLOB`` so the column gets blob affinity.
    """
    parsed = parse_type(text)
    if dialect == "postgresql":
        return " ".join(text.split())
    if parsed.base == "bytea" and not parsed.array_depth:
        return "BLOB"
    if parsed.serial:
        return "INTEGER"
    return parsed.canonical()
