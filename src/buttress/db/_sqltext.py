"""Reading SQL text without running it: fingerprints and the read-only guess.

A single-pass scanner splits a statement into words, quoted names, literals
and placeholders. ``fingerprint`` replaces every literal with ``?`` and hashes
the result, so a log line names the statement's shape and never a value;
``is_read_only`` says whether repeating the statement is safe, erring towards no.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

import attrs

from buttress._exceptions import ValidationError

__all__ = ["Fingerprint", "fingerprint", "is_read_only", "normalize"]

# One alternative per token kind; the order matters (comments before operators,
# E'' strings before words, dollar quotes before placeholders).
_TOKEN: Final = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*)
    | (?P<estring>[eE]'(?:[^'\\]|\\.|'')*'?)
    | (?P<string>(?:[bBxXnN]|[uU]&)?'(?:[^']|'')*'?)
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$)
    | (?P<param>\$\d+)
    | (?P<qident>(?:[uU]&)?"(?:[^"]|"")*"?)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<word>[A-Za-z_\x80-\U0010ffff][A-Za-z_0-9$\x80-\U0010ffff]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# "IN (1, 2, 3)" and "IN (1)" are one shape: a parenthesised list of literals folds to "(?)".
_LITERAL_LIST: Final = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")

# First words of statements that only read. WITH is judged by its body below.
_READ_HEADS: Final = frozenset({"select", "values", "show", "table", "explain", "with"})
# Words that make a statement (or a CTE inside it) change something. Functions
# that write (nextval, setval, advisory locks, set_config) count as writes too.
_WRITE_WORDS: Final = frozenset(
    {
        "insert",
        "update",
        "delete",
        "merge",
        "copy",
        "create",
        "alter",
        "drop",
        "truncate",
        "grant",
        "revoke",
        "call",
        "do",
        "into",
        "lock",
        "analyze",
        "analyse",
        "vacuum",
        "refresh",
        "notify",
        "listen",
        "nextval",
        "setval",
        "set_config",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
        "pg_try_advisory_lock",
        "pg_try_advisory_xact_lock",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "lo_import",
        "lo_unlink",
        "dblink_exec",
    }
)


@attrs.frozen(slots=True)
class Fingerprint:
    """A statement's shape: ``text`` with literals replaced by ``?`` and its short ``digest``."""

    text: str
    digest: str


def _tokens(sql: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; comments are dropped, an unterminated one ends the text."""
    out: list[tuple[str, str]] = []
    pos = 0
    end = len(sql)
    while pos < end:
        match = _TOKEN.match(sql, pos)
        assert match is not None  # "other" matches any single character
        kind = match.lastgroup
        assert kind is not None
        if kind == "tag":  # the inner group of "dollar" is never the last one
            kind = "dollar"
        if kind == "block_comment":
            pos = _skip_block_comment(sql, match.end())
            out.append(("space", " "))
            continue
        if kind == "dollar":
            closing = sql.find(match.group(0), match.end())
            pos = end if closing < 0 else closing + len(match.group(0))
            out.append(("literal", "?"))
            continue
        pos = match.end()
        if kind in {"estring", "string", "number"}:
            out.append(("literal", "?"))
        elif kind == "line_comment":
            out.append(("space", " "))
        else:
            out.append((kind, match.group(0)))
    return out


def _skip_block_comment(sql: str, pos: int) -> int:
    # PostgreSQL block comments nest.
    depth = 1
    end = len(sql)
    while pos < end and depth:
        if sql.startswith("/*", pos):
            depth += 1
            pos += 2
        elif sql.startswith("*/", pos):
            depth -= 1
            pos += 2
        else:
            pos += 1
    return pos


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize(sql: str) -> str:
    """``sql`` without comments, literals as ``?`` (a list of them as one), words lowercased.

    Quoted identifiers keep their case; placeholders (``$1``) stay, since
    they are part of the shape, not values.
    """
    if not isinstance(sql, str):
        raise ValidationError("sql", "must be a str")
    parts: list[str] = []
    for kind, text in _tokens(sql):
        if kind == "space":
            if parts and parts[-1] != " ":
                parts.append(" ")
        elif kind == "word":
            parts.append(text.lower())
        else:
            parts.append(text)
    joined = "".join(parts).strip()
    # A quoted identifier may hold control characters; escaped, a fingerprint
    # stays one log line whatever the SQL.
    joined = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", joined)
    return _LITERAL_LIST.sub("(?)", joined)


def fingerprint(sql: str) -> Fingerprint:
    """The normalised text of ``sql`` and a 16-hex-digit digest of it (blake2b)."""
    text = normalize(sql)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
    return Fingerprint(text, digest)


def is_read_only(sql: str) -> bool:
    """True only when ``sql`` is one statement that looks like it changes nothing.

    It must start with SELECT, VALUES, SHOW, TABLE, EXPLAIN (without ANALYZE)
    or WITH, and no word of it may be a write keyword or a known writing
    function (``nextval``, ``SELECT ... INTO``; ``FOR UPDATE`` counts as a write).
    A user function that writes cannot be seen from here: callers of such
    functions pass ``idempotent=False``.
    """
    if not isinstance(sql, str):
        raise ValidationError("sql", "must be a str")
    words: list[str] = []
    statements = 0
    seen_content = False
    for kind, text in _tokens(sql):
        if kind == "space":
            continue
        if kind == "other" and text == ";":
            if seen_content:
                statements += 1
            seen_content = False
            continue
        if not seen_content:
            seen_content = True
            if statements:
                return False  # a second statement: never guess about scripts
        if kind == "word":
            words.append(text.lower())
    if seen_content:
        statements += 1
    if statements != 1 or not words or words[0] not in _READ_HEADS:
        return False
    return not any(word in _WRITE_WORDS for word in words)
