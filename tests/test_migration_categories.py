"""Migration category tags: ``-- category: security`` parsed, shown by status,
usable as a filter from Python and from ``buttress migrate status --category``."""

from __future__ import annotations

import importlib.resources
import json
import sqlite3
from pathlib import Path

import pytest
import structlog

from buttress import connect
from buttress.cli import build_parser
from buttress.errors import ValidationError
from buttress.migrations import Migrator
from buttress.migrations.files import load_directory, parse_migration

BUILTIN = Path(str(importlib.resources.files("buttress.migrations") / "builtin"))


def test_the_tag_is_parsed_lower_cased() -> None:
    outcome = parse_migration("0001_a.sql", "-- Category:  Security\nSELECT 1;")
    assert outcome.errors == ()
    assert outcome.migration is not None
    assert outcome.migration.category == "security"
    plain = parse_migration("0002_b.sql", "SELECT 1;").migration
    assert plain is not None
    assert plain.category is None


def test_the_tag_counts_only_in_the_up_part_and_once() -> None:
    down_only = parse_migration("0001_a.sql", "SELECT 1;\n-- down\n-- category: fixes\nSELECT 2;")
    assert down_only.migration is not None
    assert down_only.migration.category is None
    same_twice = parse_migration("0001_a.sql", "-- category: core\n-- category: CORE\nSELECT 1;")
    assert same_twice.errors == ()
    two = parse_migration("0001_a.sql", "-- category: core\n-- category: fixes\nSELECT 1;")
    assert two.errors == ("0001_a.sql:2: a second category 'fixes'",)
    for bad in ("", "two words", "sécurité", "x" * 40):
        errors = parse_migration("0001_a.sql", f"-- category: {bad}\nSELECT 1;").errors
        assert len(errors) == 1, bad
        assert "bad category" in errors[0], bad


def test_the_tag_is_part_of_the_checksum() -> None:
    tagged = parse_migration("0001_a.sql", "-- category: core\nSELECT 1;").migration
    plain = parse_migration("0001_a.sql", "SELECT 1;").migration
    assert tagged is not None
    assert plain is not None
    assert tagged.checksum != plain.checksum


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_packaged_integrity_backup_migration(dialect: str) -> None:
    migrations, problems = load_directory(BUILTIN / dialect)
    assert problems == []
    backup = next(m for m in migrations if m.id == "0009_integrity_backup")
    assert backup.category == "core"
    assert backup.depends == ("0001_init",)
    assert backup.down == "DROP TABLE buttress_integrity_backup;"
    assert "CREATE TABLE IF NOT EXISTS buttress_integrity_backup (" in backup.up


def _write(directory: Path) -> None:
    directory.mkdir()
    (directory / "0001_init.sql").write_text("-- category: core\nCREATE TABLE t (id integer);")
    (directory / "0002_rls.sql").write_text("-- category: security\nCREATE TABLE s (id integer);")
    (directory / "0003_ix.sql").write_text("-- category: performance\nCREATE INDEX t_ix ON t (id);")
    (directory / "0004_misc.sql").write_text("CREATE TABLE m (id integer);")


async def test_status_shows_and_filters_by_category(sql_dsn: str, tmp_path: Path) -> None:
    _write(tmp_path / "m")
    async with connect(sql_dsn) as db:
        migrator = Migrator(db, tmp_path / "m")
        await migrator.migrate()
        everything = await migrator.status()
        assert [(e.id, e.category) for e in everything.entries] == [
            ("0001_init", "core"),
            ("0002_rls", "security"),
            ("0003_ix", "performance"),
            ("0004_misc", None),
        ]
        assert "0002_rls" in everything.render_text()
        assert "[security]" in everything.render_text()
        security = await migrator.status(category=" Security ")
        assert security.category == "security"
        assert [e.id for e in security.entries] == ["0002_rls"]
        assert security.to_dict()["category"] == "security"
        assert security.to_dict()["migrations"][0]["category"] == "security"  # type: ignore[index]  # a list of dicts
        assert "(category security): 1 applied, 0 pending" in security.render_text()
        assert (await migrator.status(category="fixes")).entries == ()
        with pytest.raises(ValidationError, match="category"):
            await migrator.status(category=" ")


def _call(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    with structlog.testing.capture_logs():
        code: int = args.handler(args)
    return code


def test_cli_status_category_filter(
    sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "m")
    base = ("--dsn", sqlite_dsn, "--dir", str(tmp_path / "m"))
    sqlite3.connect(sqlite_dsn.removeprefix("sqlite:///")).close()  # an existing database
    assert _call("migrate", "status", *base, "--category", "security", "--json") == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["pending"] == ["0002_rls"]
    assert payload["category"] == "security"
    assert _call("migrate", *base) == 0
    capsys.readouterr()
    assert _call("migrate", "status", *base, "--category", "performance") == 0
    out = capsys.readouterr().out
    assert "0003_ix" in out
    assert "0002_rls" not in out
    assert "[performance]" in out
