"""The ``buttress migrate`` command handlers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import structlog

from buttress.cli import build_parser


def _call(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    # Keep structlog's default stdout printer out of the JSON under test (the
    # real CLI routes logs to stderr).
    with structlog.testing.capture_logs():
        code: int = args.handler(args)
    return code


def test_migrate_cli_flow(
    sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_t.sql").write_text("CREATE TABLE t (id integer);\n-- down\nDROP TABLE t;")
    (directory / "0002_u.sql").write_text("CREATE TABLE u (id integer);\n-- down\nDROP TABLE u;")
    base = ("--dsn", sqlite_dsn, "--dir", str(directory))
    path = Path(sqlite_dsn.removeprefix("sqlite:///"))
    assert _call("migrate", "status", *base) == 2  # status only looks: no file, no database
    assert "does not exist" in capsys.readouterr().err
    assert _call("migrate", *base, "--dry-run") == 2
    assert not path.exists()
    sqlite3.connect(path).close()  # a database buttress has never touched
    assert _call("migrate", "status", *base) == 1  # pending
    capsys.readouterr()
    assert _call("migrate", *base, "--dry-run", "--json") == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["applied"] == ["0001_t", "0002_u"]
    assert planned["dry_run"] is True
    assert planned["buttress_applied"][0] == "0001_init"  # buttress's own tables come first
    assert _call("migrate", *base) == 0
    assert "applied 2 migration(s)" in capsys.readouterr().out
    assert _call("migrate", "status", *base, "--json") == 0
    assert json.loads(capsys.readouterr().out)["pending"] == []
    assert _call("migrate", "rollback", "1", *base) == 0
    assert "0002_u" in capsys.readouterr().out
    (directory / "0001_t.sql").write_text("CREATE TABLE t (id bigint);")
    assert _call("migrate", *base, "--validate-only") == 2
    assert "changed after it was applied" in capsys.readouterr().out
    assert _call("migrate", *base, "--json") == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "MigrationValidationError"
    assert _call("migrate", "rollback", *base) == 2


def test_baseline_cli(sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_t.sql").write_text("CREATE TABLE t (id integer);")
    sqlite3.connect(sqlite_dsn.removeprefix("sqlite:///")).close()  # an existing database
    assert _call("migrate", "baseline", "--dsn", sqlite_dsn, "--dir", str(directory), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"baselined": ["0001_t"]}


def test_migrate_without_a_directory_sets_up_only_buttress_tables(
    sqlite_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUTTRESS_MIGRATIONS_DIR", raising=False)
    assert _call("migrate", "--dsn", sqlite_dsn, "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert "0001_init" in first["buttress_applied"]
    assert first["applied"] == []
    assert _call("migrate", "--dsn", sqlite_dsn, "--json") == 0
    assert json.loads(capsys.readouterr().out)["buttress_applied"] == []  # idempotent


def test_validate_names_every_copy_from_stdin_block(
    sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    blocks = "".join(
        f"\nCOPY public.t (a, b) FROM stdin;\n{i}\tx\n{i + 1}\ty\n\\.\n" for i in range(5)
    )
    (directory / "0001_data.sql").write_text("CREATE TABLE t (a integer, b text);\n" + blocks)
    sqlite3.connect(sqlite_dsn.removeprefix("sqlite:///")).close()
    base = ("--dsn", sqlite_dsn, "--dir", str(directory))
    assert _call("migrate", *base, "--validate-only") == 2
    out = capsys.readouterr().out
    for line in (3, 8, 13, 18, 23):
        assert f"0001_data.sql:{line}: COPY ... FROM stdin needs psql's copy protocol" in out
    assert out.count("COPY ... FROM stdin needs") == 5
