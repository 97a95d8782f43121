"""The ``buttress`` command line as a whole, through the installed entry point.

Options before or after the command, usage errors that never echo a password,
failures as one line (or a JSON error object) and never a traceback, logs kept
out of the output, and the small promises of issue #15 (CLI part) and #18
item 6. Each command's own behaviour is tested in tests/test_<command>_cli.py;
that looking never writes, in tests/test_cli_looks_never_write.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from buttress import __version__
from buttress.cli import DEFAULT_DSN, build_parser, default_dsn, main
from cli_support import buttress, login_role, set_up

PASSWORD = "Pa55-w0rd-never-echoed"
PG_DSN = f"postgresql://app:{PASSWORD}@127.0.0.1:1/app"
TRACEBACK = "Traceback (most recent call last)"
# A structured log line: an ISO timestamp, or a "[warning ]"-style level column.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT|\[\s*(debug|info|warning|error|critical)\s*\]", re.M)


pytestmark = pytest.mark.usefixtures("cli_logging")


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"buttress {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "doctor" in capsys.readouterr().err


def test_the_package_re_exports_the_entry_point_and_the_default_dsn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BUTTRESS_DSN", raising=False)
    assert default_dsn() == DEFAULT_DSN == "sqlite:///buttress.db"
    monkeypatch.setenv("BUTTRESS_DSN", "memory://")
    assert default_dsn() == "memory://"
    assert build_parser().prog == "buttress"


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buttress", "doctor", "--dsn", "memory://"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "status: ok" in done.stdout


# -- issue #15 item 6: --dsn and --json before or after the command -------------------


def test_dsn_and_json_go_before_or_after_the_command(sqlite_dsn: str, tmp_path: Path) -> None:
    set_up(sqlite_dsn)
    for argv in (
        ["--dsn", sqlite_dsn, "doctor", "--json"],
        ["--json", "--dsn", sqlite_dsn, "doctor"],
        ["doctor", "--dsn", sqlite_dsn, "--json"],
    ):
        done = buttress(*argv, cwd=tmp_path)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        assert json.loads(done.stdout)["dsn"] == sqlite_dsn
    for argv in (
        ["--dsn", sqlite_dsn, "--json", "config", "list"],
        ["config", "--dsn", sqlite_dsn, "list", "--json"],
        ["--json", "flags", "list", "--dsn", sqlite_dsn],
        ["--dsn", sqlite_dsn, "deploy", "--json", "history"],
    ):
        done = buttress(*argv, cwd=tmp_path)
        assert done.returncode == 0, (argv, done.stderr)
        assert json.loads(done.stdout) == []


def test_a_dsn_before_the_command_is_used_and_its_password_never_printed(
    tmp_path: Path,
) -> None:
    done = buttress("--dsn", PG_DSN, "doctor", cwd=tmp_path)
    assert done.returncode == 2  # port 1 refuses: the backend finding is critical
    assert "invalid choice" not in done.stderr
    assert "postgresql://app:***@127.0.0.1:1/app" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr


# -- issue #18 item 6: argparse's messages pass through the redactor --------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["doctor", "--dns", PG_DSN], "unrecognized arguments: --dns postgresql://app:***@"),
        ([PG_DSN, "doctor"], "invalid choice: 'postgresql://app:***@127.0.0.1:1/app'"),
        (["config", "list", f"redis://:{PASSWORD}@cache:6379/0"], "unrecognized arguments"),
        (["migrate", "status", "--dsn", PG_DSN, "--dry-rum"], "unrecognized arguments: --dry-rum"),
        (["flags", PG_DSN], "invalid choice"),
    ],
)
def test_usage_errors_never_echo_a_password(tmp_path: Path, argv: list[str], message: str) -> None:
    done = buttress(*argv, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert TRACEBACK not in done.stderr
    as_json = buttress(*argv, "--json", cwd=tmp_path)
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)["error"]
    assert message in error["message"]
    assert error["type"] == "UsageError"
    assert PASSWORD not in as_json.stdout + as_json.stderr


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["config", "history", "k", "--limit", "abc"],
            "buttress config history: argument --limit: invalid int value: 'abc'"
            " (see: buttress config history --help)",
        ),
        (["config"], "buttress config: the following arguments are required: ACTION"),
        (["nosuch"], "buttress: argument COMMAND: invalid choice: 'nosuch'"),
    ],
)
def test_a_usage_error_is_one_line(tmp_path: Path, argv: list[str], line: str) -> None:
    done = buttress(*argv, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    [only] = done.stderr.splitlines()
    assert only.startswith(line)
    as_json = buttress(*argv, "--json", cwd=tmp_path)
    assert as_json.returncode == 2
    assert as_json.stderr == ""  # the JSON object on stdout says it all
    assert json.loads(as_json.stdout)["error"]["type"] == "UsageError"


def test_a_usage_error_names_its_command_under_json(tmp_path: Path) -> None:
    done = buttress("--json", "doctor", "--dns", PG_DSN, cwd=tmp_path)
    assert json.loads(done.stdout)["error"]["command"] == "doctor"
    done = buttress("config", "get", "--json", cwd=tmp_path)  # KEY missing
    assert json.loads(done.stdout)["error"]["command"] == "config get"


# -- issue #15 item 5: a failure is one line (or a JSON error object), exit 2 ----------

FAILING = [
    ("config list", []),
    ("config get", ["k"]),
    ("config set", ["k", "1"]),
    ("config maintenance", ["on"]),
    ("flags list", []),
    ("flags set", ["f", "--enabled"]),
    ("flags eval", ["f"]),
    ("deploy history", []),
    ("deploy record", ["1.0", "--env", "production"]),
    ("deploy metrics", ["--env", "production"]),
    ("migrate", []),
    ("migrate status", []),
    ("audit", []),
    ("errors", []),
    ("monitor", []),
]


def _one_line_failure(done: subprocess.CompletedProcess[str], command: str, words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert TRACEBACK not in done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"buttress {command}: ")
    assert words in line


def _json_failure(done: subprocess.CompletedProcess[str], command: str, words: str) -> None:
    assert done.returncode == 2
    assert TRACEBACK not in done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["command"] == command
    assert words in error["message"]


@pytest.mark.parametrize(("command", "argv"), FAILING, ids=[c for c, _ in FAILING])
def test_a_file_that_is_not_a_database_is_one_line(
    tmp_path: Path, command: str, argv: list[str]
) -> None:
    garbage = tmp_path / "not_a_database.db"
    garbage.write_bytes(b"this is not an SQLite database, " * 64)
    dsn = f"sqlite:///{garbage}"
    _one_line_failure(buttress(*command.split(), *argv, "--dsn", dsn, cwd=tmp_path),
                      command, "not a database")  # fmt: skip
    _json_failure(buttress(*command.split(), *argv, "--dsn", dsn, "--json", cwd=tmp_path),
                  command, "not a database")  # fmt: skip


DAMAGED = {
    "config list": "buttress_config",
    "flags list": "buttress_flags",
    "deploy history": "buttress_deployments",
    "monitor": "buttress_health_history",
    "errors": "buttress_error_events",
}


@pytest.mark.parametrize(("command", "table"), DAMAGED.items(), ids=list(DAMAGED))
def test_a_driver_error_is_one_line_never_a_traceback(
    sqlite_dsn: str, tmp_path: Path, command: str, table: str
) -> None:
    import sqlite3

    set_up(sqlite_dsn)
    with sqlite3.connect(sqlite_dsn.removeprefix("sqlite:///")) as db:  # a table of another shape
        db.executescript(f"DROP TABLE {table}; CREATE TABLE {table} (unrelated TEXT);")
    db.close()
    done = buttress(*command.split(), "--dsn", sqlite_dsn, cwd=tmp_path)
    _one_line_failure(done, command, "SQLite error: no such column")
    as_json = buttress(*command.split(), "--dsn", sqlite_dsn, "--json", cwd=tmp_path)
    _json_failure(as_json, command, "SQLite error: no such column")


@pytest.mark.postgres
def test_a_missing_grant_is_named_in_one_line(postgres_dsn: str, tmp_path: Path) -> None:
    set_up(postgres_dsn)
    with login_role(postgres_dsn) as role_dsn:
        role = role_dsn.split("://", 1)[1].split(":", 1)[0]
        looked = buttress("config", "list", "--dsn", role_dsn, cwd=tmp_path)
        written = buttress("deploy", "history", "--dsn", role_dsn, "--json", cwd=tmp_path)
        setting = buttress("config", "set", "k", "1", "--dsn", role_dsn, cwd=tmp_path)
    assert looked.returncode == 2
    assert TRACEBACK not in looked.stderr
    [line] = looked.stderr.splitlines()
    assert "permission denied for table buttress_config" in line
    assert f"GRANT SELECT ON TABLE buttress_config TO {role}" in line
    # A writing command first reads whether buttress is set up: that read needs a read grant.
    assert setting.returncode == 2
    [line] = setting.stderr.splitlines()
    assert line.startswith("buttress config set: permission denied for table schema_migrations")
    assert f"GRANT SELECT ON TABLE schema_migrations TO {role}" in line
    assert written.returncode == 2
    error = json.loads(written.stdout)["error"]
    assert error["command"] == "deploy history"
    assert "permission denied for table buttress_deployments" in error["message"]
    assert f"GRANT SELECT ON TABLE buttress_deployments TO {role}" in error["message"]


# -- issue #15 item 8: output and logs, and small promises ------------------------------


def test_a_commands_warning_prints_once_and_no_log_line_mixes_in(
    sqlite_dsn: str, tmp_path: Path
) -> None:
    set_up(sqlite_dsn)
    assert buttress("flags", "set", "search", "--enabled", "--dsn", sqlite_dsn,
                    cwd=tmp_path).returncode == 0  # fmt: skip
    done = buttress("flags", "set", "search", "--percentage", "10", "--dsn", sqlite_dsn,
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("updated search")
    assert done.stderr.splitlines() == [
        "warning: search: percentage 10 narrows this flag from everyone to 10% of users "
        "(plus listed users and roles)"
    ]
    assert not LOG_LINE.search(done.stdout + done.stderr)
    widened = buttress("flags", "set", "search", "--percentage", "0", "--json",
                       "--dsn", sqlite_dsn, cwd=tmp_path)  # fmt: skip
    assert "now on for everyone" in json.loads(widened.stdout)["warning"]
    assert len(widened.stderr.splitlines()) == 1
    assert not LOG_LINE.search(widened.stderr)


def test_migrate_prints_its_report_and_no_log_lines(sqlite_dsn: str, tmp_path: Path) -> None:
    done = buttress("migrate", "--dsn", sqlite_dsn, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("buttress: applied")
    assert done.stderr == ""
    verbose = buttress(
        "migrate", "--dsn", sqlite_dsn, cwd=tmp_path, env={"BUTTRESS_LOG_LEVEL": "DEBUG"}
    )
    assert verbose.returncode == 0
    assert not LOG_LINE.search(verbose.stdout + verbose.stderr)


def test_config_maintenance_without_a_state_shows_it(sqlite_dsn: str, tmp_path: Path) -> None:
    set_up(sqlite_dsn)
    done = buttress("config", "maintenance", "--dsn", sqlite_dsn, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "maintenance mode is off for all\n"
    assert buttress("config", "maintenance", "on", "--env", "production", "--dsn", sqlite_dsn,
                    cwd=tmp_path).returncode == 0  # fmt: skip
    shown = buttress("config", "maintenance", "--environment", "production", "--json",
                     "--dsn", sqlite_dsn, cwd=tmp_path)  # fmt: skip
    assert json.loads(shown.stdout) == {"environment": "production", "maintenance_mode": True}


def test_env_and_environment_are_one_option(sqlite_dsn: str, tmp_path: Path) -> None:
    set_up(sqlite_dsn)
    recorded = buttress("deploy", "record", "1.0", "--environment", "production", "--json",
                        "--dsn", sqlite_dsn, cwd=tmp_path)  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    assert json.loads(recorded.stdout)["environment"] == "production"
    latest = buttress("deploy", "latest", "--env", "production", "--json", "--dsn", sqlite_dsn,
                      cwd=tmp_path)  # fmt: skip
    assert json.loads(latest.stdout)["version"] == "1.0"
    assert buttress("config", "set", "limit", "5", "--env", "staging", "--dsn", sqlite_dsn,
                    cwd=tmp_path).returncode == 0  # fmt: skip
    got = buttress("config", "get", "limit", "--environment", "staging", "--json",
                   "--dsn", sqlite_dsn, cwd=tmp_path)  # fmt: skip
    assert json.loads(got.stdout)["environment"] == "staging"


def test_audit_on_sqlite_says_it_does_not_apply(sqlite_dsn: str, tmp_path: Path) -> None:
    set_up(sqlite_dsn)
    done = buttress("audit", "--dsn", sqlite_dsn, cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == "security audit: not applicable on SQLite (no roles)\n"
    as_json = json.loads(buttress("audit", "--json", "--dsn", sqlite_dsn, cwd=tmp_path).stdout)
    assert as_json["applicable"] is False
    assert as_json["message"] == "not applicable on SQLite (no roles)"
