"""The migration lexer against PostgreSQL's quoting rules: escape strings,
Unicode-escape strings and identifiers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.migrations.files import parse_migration
from buttress.migrations.sqltext import split_statements, tokenize

# -- E'...' escape strings ------------------------------------------------------------------


def test_escape_string_with_backslash_quote_is_one_statement() -> None:
    insert = "INSERT INTO t (id, note) VALUES (1, E'escaped \\' quote; here')"
    assert split_statements(f"{insert};\nSELECT 1;") == [insert, "SELECT 1"]


def test_escape_string_tokens() -> None:
    assert [t.text for t in tokenize("E'a\\'b' e'c\\\\' x")] == [
        "E'a\\'b'",
        " ",
        "e'c\\\\'",
        " ",
        "x",
    ]
    # '' still doubles a quote inside an escape string; any \x is an escape.
    assert [t.kind for t in tokenize("E'it''s \\; \\n'")] == ["string"]


def test_a_plain_string_has_no_backslash_escapes() -> None:
    # standard_conforming_strings (PostgreSQL's default since 9.1): '\' is a
    # complete string holding one backslash.
    assert split_statements("SELECT 'a\\';\nSELECT 'b';") == ["SELECT 'a\\'", "SELECT 'b'"]
    assert split_statements("SELECT note'\\';") == ["SELECT note'\\'"]


def test_escape_string_backslash_at_the_end_of_the_text_runs_to_the_end() -> None:
    assert [t.text for t in tokenize("SELECT E'abc\\")][-1] == "E'abc\\"


def test_e_ending_a_word_is_not_an_escape_prefix() -> None:
    # ``type'...'`` is a word then a plain string: the backslash escapes nothing.
    tokens = [t.text for t in tokenize("SELECT type'\\';SELECT 1")]
    assert tokens[:4] == ["SELECT", " ", "type", "'\\'"]
    assert split_statements("SELECT type'\\';SELECT 1") == ["SELECT type'\\'", "SELECT 1"]


def test_unicode_escape_strings_and_identifiers_keep_their_prefix() -> None:
    tokens = list(tokenize("SELECT U&'d\\0061t\\+000061' AS U&\"d\\0061t\" FROM u&'x'"))
    assert [(t.kind, t.text) for t in tokens if t.kind in {"string", "ident"}] == [
        ("string", "U&'d\\0061t\\+000061'"),
        ("ident", 'U&"d\\0061t"'),
        ("string", "u&'x'"),
    ]
    # U& strings follow the plain quoting rules: a backslash does not escape a quote.
    assert split_statements("SELECT U&'\\';SELECT 2") == ["SELECT U&'\\'", "SELECT 2"]


def test_parse_migration_keeps_an_escape_string_statement_whole() -> None:
    text = (
        "CREATE TABLE t (id int, note text);\n"
        "INSERT INTO t (id, note) VALUES (1, E'escaped \\' quote; here');\n"
    )
    migration = parse_migration("0001_notes.sql", text).migration
    assert migration is not None
    assert split_statements(migration.up) == [
        "CREATE TABLE t (id int, note text)",
        "INSERT INTO t (id, note) VALUES (1, E'escaped \\' quote; here')",
    ]


_CONTENT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("';\\\n\t $\"-/*()abE")),
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    ),
    max_size=40,
)


@st.composite
def escape_string(draw: st.DrawFn) -> str:
    """``E'...'`` holding arbitrary text, each quote and backslash escaped one of
    the ways PostgreSQL accepts, other characters sometimes backslash-escaped."""
    out = []
    for char in draw(_CONTENT):
        if char == "'":
            out.append(draw(st.sampled_from(["\\'", "''"])))
        elif char == "\\":
            out.append("\\\\")
        elif char not in "01234567xuU" and draw(st.booleans()):
            out.append("\\" + char)
        else:
            out.append(char)
    prefix = draw(st.sampled_from(["E", "e"]))
    return f"{prefix}'{''.join(out)}'"


@st.composite
def statement(draw: st.DrawFn) -> str:
    values = draw(st.lists(escape_string(), min_size=1, max_size=3))
    plain = draw(st.text(alphabet="ab\\; ", max_size=5))  # no quote: nothing to double
    return f"INSERT INTO t (note, other) VALUES ({', '.join(values)}, '{plain}')"


@settings(max_examples=300, deadline=None)
@given(statements=st.lists(statement(), min_size=1, max_size=5))
def test_escape_strings_never_split_or_change_a_statement(statements: list[str]) -> None:
    assert split_statements(";\n".join(statements)) == statements
    assert split_statements(";\n".join(statements) + ";") == statements
