"""Reading SQL text without executing it: tokens, statements, destructiveness.

A small lexer that knows quotes, quoted identifiers, comments, dollar quoting
and trigger/function bodies, so a file is split into the statements the
database would see, and a DROP inside a string literal is not a DROP.

Strings follow PostgreSQL with ``standard_conforming_strings`` on (its default
since 9.1; SQLite's rule too): in ``'...'``, ``U&'...'``, ``X'...'``, ``B'...'`` and
``N'...'`` only ``''`` escapes a quote, a backslash is an ordinary character;
in an escape string ``E'...'`` a backslash also escapes the character after it
(``\\'``, ``\\\\``, ``\\n``, ...).

After a ``COPY ... FROM stdin`` statement, the lines up to one holding only
``\\.`` are its data, as psql reads them: one ``data`` token, never SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs

__all__ = [
    "Token",
    "destructive_reason",
    "located_statements",
    "split_statements",
    "tokenize",
]

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
  | (?P<string>
        [Ee]'(?:[^'\\]|\\.|'')*\\?(?:'|\Z)   # E'...': \x escapes any x, '' too
      | (?:[Uu]&|[XxBbNn])?'(?:[^']|'')*(?:'|\Z)  # standard_conforming_strings: only ''
    )
  | (?P<ident>(?:[Uu]&)?"(?:[^"]|"")*(?:"|\Z)|`[^`]*(?:`|\Z)|\[[^\]]*(?:\]|\Z))
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<semicolon>;)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@attrs.frozen
class Token:
    """``kind`` is space, comment, string, ident, word, semicolon, other, or
    data (the rows after ``COPY ... FROM stdin``, through the ``\\.`` line)."""

    kind: str
    text: str


# The line that ends COPY data: only "\." (psql's end-of-data marker).
_COPY_DATA_END_RE = re.compile(r"^\\\.[ \t\r]*$", re.MULTILINE)


def _block_comment_end(sql: str, start: int) -> int:
    depth, pos = 0, start
    while pos < len(sql):
        if sql.startswith("/*", pos):
            depth, pos = depth + 1, pos + 2
        elif sql.startswith("*/", pos):
            depth, pos = depth - 1, pos + 2
            if depth == 0:
                return pos
        else:
            pos += 1
    return len(sql)


def tokenize(sql: str) -> Iterator[Token]:
    """Tokens of ``sql``; unterminated quotes and comments run to the end.

    The data of a ``COPY ... FROM stdin`` statement starts on the line after
    its semicolon and ends with a line holding only ``\\.`` (or at the end of
    the text); it is one ``data`` token.
    """
    pos = 0
    first_word, previous_word = "", ""
    from_stdin = False  # the current statement is COPY ... FROM stdin
    data_follows = False  # it ended: its data starts after the next line break
    while pos < len(sql):
        match = _TOKEN_RE.match(sql, pos)
        assert match is not None  # the ``other`` branch matches any character
        kind = match.lastgroup or "other"
        end = match.end()
        if kind == "space" and data_follows and "\n" in match.group():
            start = sql.index("\n", pos) + 1
            yield Token("space", sql[pos:start])
            close = _COPY_DATA_END_RE.search(sql, start)
            pos = len(sql) if close is None else close.end()
            data_follows = False
            if pos > start:
                yield Token("data", sql[start:pos])
            continue
        if kind == "block_comment":
            end = _block_comment_end(sql, pos)
            kind = "comment"
        elif kind == "line_comment":
            kind = "comment"
        elif kind == "dollar":
            closing = sql.find(match.group(), end)
            end = len(sql) if closing < 0 else closing + len(match.group())
            kind = "string"
        elif kind == "word":
            if not first_word:
                first_word = previous_word = match.group().upper()
            elif first_word == "COPY":  # other statements: no upper-casing every word
                word = match.group().upper()
                from_stdin = from_stdin or (previous_word, word) == ("FROM", "STDIN")
                previous_word = word
        elif kind == "semicolon":
            data_follows = from_stdin
            first_word, previous_word, from_stdin = "", "", False
        yield Token(kind, sql[pos:end])
        pos = end


_BODY_OWNERS = frozenset({"TRIGGER", "FUNCTION", "PROCEDURE"})


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql`` in order, without the separating semicolons.

    ``BEGIN … END`` blocks (SQLite triggers, PostgreSQL ``BEGIN ATOMIC``) and
    ``CASE … END`` inside them stay in their statement. COPY data is no
    statement.
    """
    return [statement for _, statement in located_statements(sql)]


def located_statements(sql: str) -> list[tuple[int, str]]:
    """``split_statements(sql)``, each with the 1-based line of ``sql`` on which
    its first word stands (comments before it do not count)."""
    statements: list[tuple[int, str]] = []
    current: list[str] = []
    words: list[str] = []
    depth, line, first_line = 0, 1, 1
    for token in tokenize(sql):
        if token.kind == "semicolon" and depth == 0:
            if words:
                statements.append((first_line, "".join(current).strip()))
            current, words = [], []
        elif token.kind != "data":
            current.append(token.text)
            if token.kind == "word":
                word = token.text.upper()
                if not words:
                    first_line = line
                words.append(word)
                if words[0] == "CREATE" and _BODY_OWNERS.intersection(words[:6]):
                    if word in {"BEGIN", "CASE"}:
                        depth += 1
                    elif word == "END" and depth > 0:
                        depth -= 1
        line += token.text.count("\n")
    if words:
        statements.append((first_line, "".join(current).strip()))
    return statements


def _words(statement: str) -> list[str]:
    return [t.text.upper() for t in tokenize(statement) if t.kind == "word"]


def destructive_reason(statement: str) -> str | None:
    """Why ``statement`` destroys data (DROP, TRUNCATE, DELETE without WHERE,
    ALTER … DROP), or None. Words inside strings, comments and quoted
    identifiers do not count; ``DROP DEFAULT``/``DROP NOT NULL`` lose nothing."""
    words = _words(statement)
    for position, word in enumerate(words):
        following = words[position + 1 : position + 3]
        if word == "DROP":
            if following[:1] == ["DEFAULT"] or following == ["NOT", "NULL"]:
                continue
            if words[0] == "ALTER":
                return "ALTER … DROP removes a column or constraint"
            return "DROP removes an object and its data"
        if word == "TRUNCATE":
            return "TRUNCATE removes every row"
        if word == "DELETE" and following[:1] == ["FROM"] and "WHERE" not in words[position:]:
            return "DELETE without WHERE removes every row"
    return None
