"""Schema files (TOML/JSON) and the ``buttress schema`` command handlers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from buttress.cli import build_parser
from buttress.errors import ValidationError
from buttress.schema import Column, Index, Schema, Table, load_schema, schema_from_dict
from cli_support import set_up

TOML = """
[tables.users]
primary_key = ["id"]
unique = [["email"]]
columns = [
  { name = "id", type = "bigint" },
  { name = "email", type = "varchar(200)", nullable = false },
]
indexes = [{ name = "users_email_ix", columns = ["email"] }]

[tables.audit]
required = false
primary_key = ["id"]
[tables.audit.columns]
id = "integer"
note = { type = "text", default = "''" }
"""


def test_toml_and_json_load_the_same_schema(tmp_path: Path) -> None:
    toml_file = tmp_path / "schema.toml"
    toml_file.write_text(TOML)
    loaded = load_schema(toml_file)
    users = loaded.table("users")
    assert users == Table(
        "users",
        [Column("id", "bigint"), Column("email", "varchar(200)", nullable=False)],
        primary_key=["id"],
        unique=[["email"]],
        indexes=[Index("users_email_ix", ["email"])],
    )
    audit = loaded.table("audit")
    assert audit is not None
    assert not audit.required
    assert audit.columns[1].default == "''"
    json_file = tmp_path / "schema.json"
    json_file.write_text(
        json.dumps(
            {
                "tables": {
                    "users": {
                        "primary_key": ["id"],
                        "unique": [["email"]],
                        "columns": {
                            "id": "bigint",
                            "email": {"type": "varchar(200)", "nullable": False},
                        },
                        "indexes": [{"name": "users_email_ix", "columns": ["email"]}],
                    }
                }
            }
        )
    )
    assert load_schema(json_file).table("users") == users


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"tables": {"t": {"colums": {}}}}, "tables.t"),
        ({"tables": {"t": {"columns": [{"type": "text"}]}}}, "tables.t.columns[0].name"),
        ({"tables": {"t": {"columns": {"a": {"nullable": False}}}}}, "tables.t.columns.a.type"),
        (
            {"tables": {"t": {"columns": {"a": {"type": "text", "nullable": "no"}}}}},
            "tables.t.columns.a.nullable",
        ),
        ({"tables": {"t": {"columns": {"a": "text"}, "required": "yes"}}}, "tables.t.required"),
        ({"tabels": {}}, "schema"),
    ],
)
def test_bad_schema_documents_name_the_path(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        schema_from_dict(data)
    assert info.value.field == field


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        load_schema(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[tables\n")
    with pytest.raises(ValidationError, match="not valid TOML"):
        load_schema(bad)


def _call(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    with structlog.testing.capture_logs():  # the real CLI logs to stderr
        code: int = args.handler(args)
    return code


def test_cli_check_plan_fix_exit_codes(
    sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema_file = tmp_path / "schema.toml"
    schema_file.write_text(TOML)
    base = ("--dsn", set_up(sqlite_dsn), "--schema", str(schema_file))
    assert _call("schema", "check", *base) == 2
    assert "missing_table" in capsys.readouterr().out
    assert _call("schema", "plan", *base, "--json") == 2
    planned = json.loads(capsys.readouterr().out)["statements"]
    assert planned[0].startswith('CREATE TABLE "users"')
    assert _call("schema", "fix", *base, "--dry-run") == 2
    capsys.readouterr()
    assert _call("schema", "fix", *base, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["statements"] == planned
    assert out["ok"] is True
    assert _call("schema", "check", *base) == 0
    assert "schema ok" in capsys.readouterr().out


def test_cli_reports_bad_schema_file_as_error(
    sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text('{"tables": {"t": {"columns": {"a": "int; DROP TABLE x"}}}}')
    base = ("--dsn", set_up(sqlite_dsn), "--schema", str(schema_file))
    assert _call("schema", "check", *base, "--json") == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "ValidationError"


def test_schema_values_round_trip_through_dict() -> None:
    schema = Schema([Table("t", [Column("a", "text")])])
    assert schema_from_dict({"tables": {"t": {"columns": {"a": "text"}}}}) == schema
