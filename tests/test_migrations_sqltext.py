"""The migration lexer against PostgreSQL's quoting rules (escape strings,
Unicode-escape strings and identifiers), and directives, ``-- down`` and COPY
data in migration files read through it."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from buttress.migrations.files import normalise_text, parse_migration
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


# -- directives and '-- down' count only at top level ----------------------------------------

HOWTO_FUNCTION = (
    "CREATE FUNCTION howto() RETURNS text LANGUAGE sql AS $$ SELECT 'Write migrations like this:\n"
    "-- buttress: no-transaction\n"
    "CREATE INDEX CONCURRENTLY ix ON t (a);' $$;"
)

PLPGSQL_WITH_DOWN_COMMENT = """CREATE FUNCTION one() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
-- down
  RETURN 1;
END
$$;"""


def test_a_directive_inside_a_string_in_a_function_body_does_not_count() -> None:
    text = f"{HOWTO_FUNCTION}\nCREATE TABLE t (a int);\n"
    outcome = parse_migration("0001_howto.sql", text)
    assert outcome.errors == ()
    migration = outcome.migration
    assert migration is not None
    assert not migration.no_transaction
    assert split_statements(migration.up) == [HOWTO_FUNCTION[:-1], "CREATE TABLE t (a int)"]


def test_a_down_line_inside_a_function_body_does_not_cut_the_up_part() -> None:
    outcome = parse_migration("0001_one.sql", PLPGSQL_WITH_DOWN_COMMENT + "\n")
    assert outcome.errors == ()
    migration = outcome.migration
    assert migration is not None
    assert migration.up == PLPGSQL_WITH_DOWN_COMMENT
    assert migration.down is None
    assert split_statements(migration.up) == [PLPGSQL_WITH_DOWN_COMMENT[:-1]]
    with_down = PLPGSQL_WITH_DOWN_COMMENT + "\n-- down\nDROP FUNCTION one();\n"
    migration = parse_migration("0001_one.sql", with_down).migration
    assert migration is not None
    assert (migration.up, migration.down) == (PLPGSQL_WITH_DOWN_COMMENT, "DROP FUNCTION one();")


DIRECTIVE_LINES = (
    "\n-- depends: 0009_other\n-- category: security\n"
    "-- buttress: allow-destructive, no-transaction\n-- buttress: bogus\n-- down\n"
)


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        ("SELECT '", "'"),
        ("SELECT E'\\'", "'"),
        ("SELECT U&'", "'"),
        ("SELECT $$", "$$"),
        ("SELECT $tag$ $$", "$$ $tag$"),
        ('SELECT 1 AS "', '"'),
        ("SELECT 1 /* ", " */"),
        ("SELECT 1 /* /* nested */", " */"),
    ],
)
def test_directive_lines_inside_quotes_bodies_and_comments_do_not_count(
    opening: str, closing: str
) -> None:
    text = f"{opening}{DIRECTIVE_LINES}{closing};\nSELECT 2;\n"
    outcome = parse_migration("0002_x.sql", text)
    assert outcome.errors == ()
    migration = outcome.migration
    assert migration is not None
    assert migration.depends == ()
    assert migration.category is None
    assert not migration.no_transaction
    assert not migration.allow_destructive
    assert migration.down is None
    assert migration.up == normalise_text(text).strip()


def test_directive_lines_after_closed_quotes_and_comments_still_count() -> None:
    text = (
        "-- it's a comment: its quote opens nothing\n"
        "SELECT 'a\n-- not a directive\n', E'\\'', $$ $$, \"x\n\" /* ' */;\n"
        "  -- depends: 0001\n"
        "-- category: fixes\n"
        "-- buttress: no-transaction\n"
        "SELECT 2;\n"
        "-- down\n"
        "SELECT 3;\n"
    )
    outcome = parse_migration("0002_x.sql", text)
    assert outcome.errors == ()
    migration = outcome.migration
    assert migration is not None
    assert (migration.depends, migration.category) == (("0001",), "fixes")
    assert migration.no_transaction
    assert migration.down == "SELECT 3;"


_BODY_LINES = st.one_of(
    st.sampled_from(
        [
            "-- down",
            "  -- DOWN",
            "-- buttress: no-transaction",
            "-- buttress: allow-destructive",
            "-- buttress: nonsense",
            "-- depends: 0007_x",
            "-- depends: not a reference",
            "-- category: security",
            "-- category: Not One Word",
            "'",
            '"',
            "/*",
            "*/",
            "$$",
            "E'\\'",
            "$x$",
        ]
    ),
    st.text(max_size=30),
)
BASE_UP = "-- depends: 0001\nCREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$"


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_BODY_LINES, max_size=8))
def test_text_inside_a_dollar_quoted_body_never_changes_directives_or_down(
    lines: list[str],
) -> None:
    body = "\n".join(lines)
    assume("$body$" not in body)
    text = f"{BASE_UP}\n{body}\n$body$;\nCREATE TABLE t (a int);\n-- down\nDROP TABLE t;\n"
    outcome = parse_migration("0002_f.sql", text)
    assert outcome.errors == ()
    migration = outcome.migration
    assert migration is not None
    assert migration.depends == ("0001",)
    assert migration.category is None
    assert not migration.no_transaction
    assert not migration.allow_destructive
    assert migration.down == "DROP TABLE t;"
    # The whole body is in the up part, as the file has it (normalised).
    up = normalise_text(text).rpartition("\n-- down\n")[0]
    assert migration.up == up.strip()
    assert len(split_statements(migration.up)) == 2


# -- COPY ... FROM stdin data ------------------------------------------------------------------


def _pg_dump_blocks(count: int, *, hostile: bool = True) -> str:
    """A pg_dump-style data file: ``count`` COPY blocks of tab-separated rows,
    hostile ones holding quotes, semicolons, comment and directive look-alikes."""
    parts = ["SET statement_timeout = 0;\n", "CREATE TABLE public.t (a integer, b text);\n"]
    for block in range(count):
        rows = f"{block}\tx\n{block + 100}\ty\n"
        if hostile:
            rows = f"{block}\tO'Brien; DROP TABLE t\n{block + 100}\t-- down\n"
            rows += f"{block + 200}\t$$ /* E'\\\\'\n"
        parts.append(
            f"\n--\n-- Data for Name: t; Type: TABLE DATA (block {block})\n--\n\n"
            f"COPY public.t (a, b) FROM stdin;\n{rows}\\.\n"
        )
    return "".join(parts)


@pytest.mark.parametrize("hostile", [False, True])
def test_every_copy_from_stdin_block_is_named_with_its_line(hostile: bool) -> None:
    text = _pg_dump_blocks(5, hostile=hostile)
    outcome = parse_migration("0001_data.sql", text)
    copy_lines = [
        number for number, line in enumerate(text.split("\n"), start=1) if line.startswith("COPY ")
    ]
    assert len(copy_lines) == 5
    named = [e.split(":")[1] for e in outcome.errors if "COPY ... FROM stdin" in e]
    assert named == [str(number) for number in copy_lines]
    assert len(outcome.errors) == 5  # the data is not read as SQL: nothing else to report


def test_copy_data_is_not_sql() -> None:
    text = _pg_dump_blocks(2) + "-- down\nDROP TABLE public.t;\n"
    migration = parse_migration("0001_data.sql", text).migration
    assert migration is not None
    assert migration.down == "DROP TABLE public.t;"
    statements = split_statements(migration.up)
    assert [s.split("\n")[-1] for s in statements] == [
        "SET statement_timeout = 0",
        "CREATE TABLE public.t (a integer, b text)",
        "COPY public.t (a, b) FROM stdin",
        "COPY public.t (a, b) FROM stdin",
    ]
    data = [t.text for t in tokenize(text) if t.kind == "data"]
    assert data[0] == "0\tO'Brien; DROP TABLE t\n100\t-- down\n200\t$$ /* E'\\\\'\n\\."


def test_copy_data_starts_on_the_next_line_and_may_run_to_the_end() -> None:
    sql = (
        "COPY t FROM STDIN; -- rows follow\n1\n2;\n\\.\n"
        "COPY u (a) FROM stdin WITH (FORMAT csv);\n3,'"
    )
    assert split_statements(sql) == [
        "COPY t FROM STDIN",
        "-- rows follow\n\nCOPY u (a) FROM stdin WITH (FORMAT csv)",
    ]
    assert [t.text for t in tokenize(sql) if t.kind == "data"] == ["1\n2;\n\\.", "3,'"]
    # Only COPY ... FROM stdin has data after it.
    sql = "COPY t TO STDOUT;\nSELECT 'from stdin';\nCOPY t FROM '/tmp/x';\nSELECT 1;"
    assert len(split_statements(sql)) == 4
    assert all(t.kind != "data" for t in tokenize(sql))
