"""Column defaults are SQL text: under either string setting a declared default
is one literal (or keyword, or function) and never a way to run a statement.

With ``standard_conforming_strings = off`` PostgreSQL reads a backslash inside
'...' as an escape, so ``'\\'');CREATE TABLE pwned(x int);--'`` (one harmless
string under the SQL standard) closes after ``\\'`` and runs the rest. These
tests hold the fix to that on a real server, and check the validator against
a small reference lexer written from PostgreSQL's scanner rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import SqlBackend, require_sql
from buttress.errors import ValidationError
from buttress.schema import Column, Schema, Table
from buttress.schema.defaults import check_default, render_default
from buttress.schema.validator import SchemaFixError, SchemaValidator

HOSTILE = "'\\'');CREATE TABLE pwned(x int);--'"
STANDARD_MEANING = "\\');CREATE TABLE pwned(x int);--"


def _declared(default: str) -> Schema:
    columns = [Column("id", "integer"), Column("c", "text", default=default)]
    return Schema([Table("t", columns, primary_key=["id"])])


async def _exists(db: SqlBackend, table: str) -> bool:
    return bool(await db.fetchval("SELECT to_regclass($1) IS NOT NULL", table))


@pytest.fixture
async def backslash_escapes(
    postgres_dsn: str, request: pytest.FixtureRequest
) -> AsyncIterator[SqlBackend]:
    """A PostgreSQL backend whose sessions read backslashes in '...' as escapes,
    set for the session (``server_settings``) or for the database."""
    if request.param == "database":
        async with connect(postgres_dsn, migrate=False) as raw:
            admin = require_sql(raw, "tests")
            database = await admin.fetchval("SELECT current_database()")
            await admin.execute(
                f'ALTER DATABASE "{database}" SET standard_conforming_strings = off'
            )
        backend = await connect(postgres_dsn, migrate=False)
    else:
        backend = await connect(
            postgres_dsn,
            migrate=False,
            server_settings={"standard_conforming_strings": "off"},
        )
    db = require_sql(backend, "tests")
    try:
        assert await db.fetchval("SHOW standard_conforming_strings") == "off"
        yield db
    finally:
        await db.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backslash_escapes", ["session", "database"], indirect=True)
async def test_a_hostile_default_is_refused_where_backslashes_escape(
    backslash_escapes: SqlBackend,
) -> None:
    db = backslash_escapes
    validator = SchemaValidator(db, _declared(HOSTILE))
    for attempt in (validator.fix, validator.plan, lambda: validator.fix(dry_run=True)):
        with pytest.raises(ValidationError) as info:
            await attempt()
        assert info.value.field == "Column('c').default"
        assert "standard_conforming_strings" in str(info.value)
    assert not await _exists(db, "pwned")
    assert not await _exists(db, "t")
    # Without a backslash a literal means the same under both settings.
    assert await SchemaValidator(db, _declared("'it''s'")).fix()
    await db.execute("INSERT INTO t (id) VALUES (1)")
    assert await db.fetchval("SELECT c FROM t") == "it's"


@pytest.mark.postgres
async def test_the_same_default_is_one_harmless_string_under_standard_strings(
    postgres_dsn: str,
) -> None:
    async with connect(postgres_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        assert await db.fetchval("SHOW standard_conforming_strings") == "on"
        assert await SchemaValidator(db, _declared(HOSTILE)).fix()
        await db.execute("INSERT INTO t (id) VALUES (1)")
        assert await db.fetchval("SELECT c FROM t") == STANDARD_MEANING
        assert not await _exists(db, "pwned")


async def test_fix_sends_each_statement_alone(
    sql_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a plan that somehow held two statements in one (a planner bug) runs
    none of the second: the plan goes to the server one statement per message."""
    import buttress.schema.validator as validator_module

    def two_in_one(*args: object, **kwargs: object) -> list[str]:
        return ["CREATE TABLE t (id integer); CREATE TABLE pwned (x integer)"]

    monkeypatch.setattr(validator_module, "plan_statements", two_in_one)
    async with connect(sql_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        with pytest.raises(SchemaFixError):
            await SchemaValidator(db, _declared("'x'")).fix()
        tables = await db.fetch(
            "SELECT name FROM sqlite_master WHERE name IN ('t', 'pwned')"
            if db.dialect == "sqlite"
            else "SELECT relname AS name FROM pg_class WHERE relname IN ('t', 'pwned')"
        )
        assert tables == []


# -- the validator against a reference lexer -----------------------------------------------


def _lex_literal(text: str, start: int, *, backslash_escapes: bool) -> tuple[str, int] | None:
    """The value of the '...' literal at ``start`` and the index after it, as
    PostgreSQL's scanner reads it (``backslash_escapes``: E'...' or
    standard_conforming_strings off), or None when it never closes."""
    value: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            if text.startswith("''", i):
                value.append("'")
                i += 2
                continue
            return "".join(value), i + 1
        if ch == "\\" and backslash_escapes:
            if i + 1 >= len(text):
                return None
            value.append(text[i + 1])  # enough here: which character ends the literal
            i += 2
            continue
        value.append(ch)
        i += 1
    return None


def _top_level(text: str, *, standard_strings: bool) -> tuple[str, list[str]] | None:
    """The text outside string literals, and the literals' values; None when a
    literal does not close."""
    outside: list[str] = []
    values: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "'":
            escapes = not standard_strings or (i > 0 and text[i - 1] in "eE")
            lexed = _lex_literal(text, i, backslash_escapes=escapes)
            if lexed is None:
                return None
            value, i = lexed
            values.append(value)
            outside.append("'")
            continue
        outside.append(text[i])
        i += 1
    return "".join(outside), values


_ALPHABET = st.sampled_from(list("'\\;-/*()xE e:0a\n"))
_NEAR_LITERALS = st.builds(
    lambda body, cast: f"'{body}'{cast}",
    st.text(_ALPHABET, max_size=24),
    st.sampled_from(["", "::text", "::jsonb", "; x", "'", "\\'"]),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_NEAR_LITERALS, st.text(_ALPHABET, max_size=30), st.text(max_size=30)))
@example(HOSTILE)
@example("'\\'';--'")
@example("'a\\'")
def test_property_an_accepted_default_is_one_literal_under_both_settings(text: str) -> None:
    try:
        expression = check_default(text)
    except ValidationError:
        return
    rendered = {True: render_default(expression, standard_strings=True)}
    if "\\" in expression:
        with pytest.raises(ValidationError, match="standard_conforming_strings"):
            render_default(expression, standard_strings=False)
    else:
        rendered[False] = render_default(expression, standard_strings=False)
    for standard, sql in rendered.items():
        lexed = _top_level(sql, standard_strings=standard)
        assert lexed is not None, f"{sql!r} leaves a literal open (standard={standard})"
        outside, values = lexed
        assert len(values) <= 1
        for forbidden in (";", "--", "/*", "'" * 2):
            assert forbidden not in outside, f"{sql!r}: {forbidden!r} outside the literal"
    if len(rendered) == 2:  # accepted under both: it must mean the same
        assert _top_level(rendered[True], standard_strings=True) == _top_level(
            rendered[False], standard_strings=False
        )


@pytest.mark.postgres
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=st.text(st.sampled_from(list("'\\;-x\n")), max_size=12))
async def test_property_the_server_reads_an_accepted_literal_as_declared(
    postgres_dsn: str, value: str
) -> None:
    literal = "'" + value.replace("'", "''") + "'"
    expression = check_default(literal)
    async with connect(postgres_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        for setting in ("on", "off"):
            async with db.transaction() as tx:
                await tx.execute(f"SET LOCAL standard_conforming_strings = {setting}")
                try:
                    sql = render_default(expression, standard_strings=setting == "on")
                except ValidationError:
                    assert setting == "off"
                    assert "\\" in value
                    continue
                # fetch: one statement per message, so a broken-out literal fails loudly
                assert await tx.fetchval(f"SELECT {sql}::text") == value
