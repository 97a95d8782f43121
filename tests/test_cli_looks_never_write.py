"""Looking never writes: every command that only looks, through the installed entry point.

DESIGN.md principle 3: ``doctor``, every ``list``/``get``/``history``/``latest``/
``metrics``/``eval``, ``migrate status``/``validate`` (and ``--dry-run``),
``schema check``/``plan`` (and ``fix --dry-run``), ``integrity check`` (and
``cleanup --dry-run``), ``audit``, ``errors`` and ``monitor`` never create a
file, a table or a lock. (a) On a missing SQLite file each says so in one line,
exits 2, and the directory is byte for byte as it was. (b) On an empty
PostgreSQL database the catalog is unchanged afterwards; the doctor names
``buttress migrate`` (and exits 1 as an ordinary role), the commands that read
buttress's tables exit 2 naming the missing tables and ``buttress migrate``.
Commands that write never migrate either. ``buttress migrate`` is what creates,
and nothing else.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from buttress.backends import SqlBackend, open_backend
from cli_support import buttress, login_role

SCHEMA = "{inputs}/schema.toml"
SCHEMA_TOML = """
[tables.users]
columns = [{ name = "id", type = "integer", nullable = false }, { name = "email", type = "text" }]

[[integrity.unique]]
table = "users"
columns = ["email"]
"""

LOOKING: list[tuple[str, ...]] = [
    ("doctor",),
    ("config", "list"),
    ("config", "get", "max_upload_mb"),
    ("config", "history", "max_upload_mb"),
    ("config", "maintenance"),
    ("config", "maintenance", "status"),
    ("flags", "list"),
    ("flags", "get", "checkout"),
    ("flags", "eval", "checkout", "--user", "u-1"),
    ("flags", "history", "checkout"),
    ("deploy", "history"),
    ("deploy", "latest", "--env", "production"),
    ("deploy", "metrics", "--env", "production"),
    ("migrate", "status"),
    ("migrate", "validate"),
    ("migrate", "--dry-run"),
    ("migrate", "--validate-only"),
    ("schema", "check", "--schema", SCHEMA),
    ("schema", "plan", "--schema", SCHEMA),
    ("schema", "fix", "--dry-run", "--schema", SCHEMA),
    ("integrity", "check", "--schema", SCHEMA),
    ("integrity", "cleanup", "--dry-run", "--schema", SCHEMA),
    ("audit",),
    ("errors",),
    ("monitor",),
    ("monitor", "--rule", "drop:signups"),
]
"""Every command that only looks, with the arguments it needs."""

READS_BUTTRESS_TABLES = {"config", "flags", "deploy", "errors", "monitor"}
"""Commands whose subject is buttress's own tables: missing, they are the error."""

WRITING: list[tuple[str, ...]] = [
    ("config", "set", "max_upload_mb", "50"),
    ("config", "delete", "max_upload_mb"),
    ("config", "revert", "max_upload_mb", "1"),
    ("config", "maintenance", "on"),
    ("flags", "set", "checkout", "--enabled"),
    ("flags", "delete", "checkout"),
    ("flags", "revert", "checkout", "1"),
    ("deploy", "record", "1.0", "--env", "production"),
    ("deploy", "rollback", "1", "--to", "0.9", "--reason", "bad"),
    ("deploy", "fail", "1"),
    ("integrity", "cleanup", "--schema", SCHEMA),
    ("integrity", "undo", "run-1", "--schema", SCHEMA),
    ("schema", "fix", "--schema", SCHEMA),
]
"""Every command that writes, but is not ``migrate``: none of them migrates."""


def _ids(commands: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(c).replace(SCHEMA, "FILE") for c in commands]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A directory of input files, away from the database's."""
    directory = tmp_path / "inputs"
    directory.mkdir()
    (directory / "schema.toml").write_text(SCHEMA_TOML)
    return directory


def _argv(command: tuple[str, ...], inputs: Path) -> list[str]:
    return [part.replace("{inputs}", str(inputs)) for part in command]


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


# -- (a) a missing SQLite file ------------------------------------------------------------


def test_every_looking_command_is_listed_once() -> None:
    assert len(LOOKING) == len(set(LOOKING)) == 26


@pytest.mark.parametrize("command", LOOKING, ids=_ids(LOOKING))
def test_on_a_missing_sqlite_file_it_says_so_and_creates_nothing(
    tmp_path: Path, inputs: Path, command: tuple[str, ...]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("the directory as the operator left it\n")
    missing = work / "typo_of_app.db"
    before = _files(work)
    argv = _argv(command, inputs)

    done = buttress(*argv, "--dsn", f"sqlite:///{missing}", cwd=work)
    as_json = buttress(*argv, "--json", "--dsn", f"sqlite:///{missing}", cwd=work)
    with_default = buttress(*argv, cwd=work)  # the default DSN, ./buttress.db, is missing too

    assert _files(work) == before, "a looking command changed the directory"
    assert done.returncode == 2, done.stdout + done.stderr
    said = [line for line in (done.stdout + done.stderr).splitlines() if "does not exist" in line]
    assert len(said) == 1
    assert str(missing) in said[0]
    if command != ("doctor",):  # the doctor reports every section; the others, one line
        assert done.stdout == ""
        assert done.stderr.splitlines() == said
        error = json.loads(as_json.stdout)["error"]
        assert str(missing) in error["message"]
        assert "does not exist" in error["message"]
    assert as_json.returncode == 2
    assert with_default.returncode == 2
    assert str(work / "buttress.db") in with_default.stdout + with_default.stderr


@pytest.mark.parametrize("command", WRITING, ids=_ids(WRITING))
def test_a_writing_command_on_a_missing_sqlite_file_creates_nothing(
    tmp_path: Path, inputs: Path, command: tuple[str, ...]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    done = buttress(*_argv(command, inputs), "--dsn", f"sqlite:///{work / 'app.db'}", cwd=work)
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert "`buttress migrate`" in done.stderr
    assert _files(work) == {}


def test_migrate_then_doctor_leave_only_the_database(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    dsn = f"sqlite:///{work / 'app.db'}"
    migrated = buttress("migrate", "--dsn", dsn, cwd=work)
    assert migrated.returncode == 0, migrated.stderr
    doctor = buttress("doctor", "--dsn", dsn, cwd=work)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "status: ok" in doctor.stdout
    left = {p.name for p in work.iterdir()}
    assert "app.db" in left
    assert left <= {"app.db", "app.db-wal", "app.db-shm"}, left
    assert not list(work.rglob("*.lock"))


# -- (b) an empty PostgreSQL database -------------------------------------------------------

CATALOG = """
SELECT 'relation ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text AS item
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
UNION ALL
SELECT 'function ' || n.nspname || '.' || p.proname
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'schema ' || nspname FROM pg_catalog.pg_namespace
 WHERE nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'
UNION ALL
SELECT 'type ' || n.nspname || '.' || t.typname
  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""


def _catalog(dsn: str) -> set[str]:
    async def read() -> set[str]:
        async with open_backend(dsn) as backend:
            assert isinstance(backend, SqlBackend)
            return {str(row["item"]) for row in await backend.fetch(CATALOG)}

    return asyncio.run(read())


@pytest.mark.postgres
@pytest.mark.parametrize("command", LOOKING, ids=_ids(LOOKING))
def test_on_an_empty_postgresql_database_the_catalog_is_unchanged(
    postgres_dsn: str, tmp_path: Path, inputs: Path, command: tuple[str, ...]
) -> None:
    before = _catalog(postgres_dsn)
    assert not any("schema_migrations" in item for item in before)
    done = buttress(*_argv(command, inputs), "--dsn", postgres_dsn, cwd=tmp_path)
    after = _catalog(postgres_dsn)
    assert after == before, sorted(after ^ before)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    if command == ("doctor",):
        assert "pending" in done.stdout
        assert "`buttress migrate`" in done.stdout
    elif command[0] in READS_BUTTRESS_TABLES:
        assert done.returncode == 2, output
        assert "missing" in done.stderr
        assert "`buttress migrate`" in done.stderr


@pytest.mark.postgres
def test_the_doctor_on_an_empty_postgresql_database_warns_and_names_buttress_migrate(
    postgres_dsn: str, tmp_path: Path
) -> None:
    # As an ordinary role: the superuser of the fixture is a critical finding of its own.
    before = _catalog(postgres_dsn)
    with login_role(postgres_dsn) as role_dsn:
        done = buttress("doctor", "--dsn", role_dsn, cwd=tmp_path)
    assert _catalog(postgres_dsn) == before
    assert done.returncode == 1, done.stdout + done.stderr
    assert "status: warning" in done.stdout
    assert " pending: 0001_init" in done.stdout
    assert "`buttress migrate`" in done.stdout


@pytest.mark.postgres
@pytest.mark.parametrize("command", WRITING, ids=_ids(WRITING))
def test_a_writing_command_on_an_empty_postgresql_database_never_migrates(
    postgres_dsn: str, tmp_path: Path, inputs: Path, command: tuple[str, ...]
) -> None:
    before = _catalog(postgres_dsn)
    done = buttress(*_argv(command, inputs), "--dsn", postgres_dsn, cwd=tmp_path)
    assert _catalog(postgres_dsn) == before
    assert done.returncode == 2, done.stdout + done.stderr
    assert "`buttress migrate`" in done.stderr


@pytest.mark.postgres
def test_migrate_is_what_creates(postgres_dsn: str, tmp_path: Path) -> None:
    before = _catalog(postgres_dsn)
    assert buttress("migrate", "--dsn", postgres_dsn, cwd=tmp_path).returncode == 0
    created = _catalog(postgres_dsn) - before
    assert "relation public.schema_migrations r" in created
    assert "relation public.buttress_config r" in created
    doctor = buttress("doctor", "--dsn", postgres_dsn, "--json", cwd=tmp_path)
    migrations = [f for f in json.loads(doctor.stdout)["findings"] if f["section"] == "migrations"]
    assert [f["level"] for f in migrations] == ["ok"]
