"""``buttress deploy ...``: the sub-commands against a SQLite file, text and ``--json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from buttress.cli import build_parser as parser
from cli_support import set_up

pytestmark = pytest.mark.usefixtures("cli_logging")


@pytest.fixture
def sqlite_dsn(sqlite_dsn: str) -> str:
    """A SQLite file ``buttress migrate`` has set up: the CLI never migrates on its own."""
    return set_up(sqlite_dsn)


def run(dsn: str, *argv: str) -> int:
    args = parser().parse_args(["deploy", *argv, "--dsn", dsn])
    code: int = args.handler(args)
    return code


def run_json(capsys: pytest.CaptureFixture[str], dsn: str, *argv: str) -> object:
    capsys.readouterr()
    assert run(dsn, *argv, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_record_history_latest(sqlite_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    committed = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert run(sqlite_dsn, "record", "1.0", "--env", "production", "--by", "ci",
               "--commit-sha", "abc1234", "--committed-at", committed) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("recorded #1")
    assert "production" in out
    assert "by ci" in out
    assert "abc1234" in out
    first = run_json(capsys, sqlite_dsn, "record", "1.1", "-e", "staging")
    assert isinstance(first, dict)
    assert (first["id"], first["version"], first["status"]) == (2, "1.1", "success")

    listed = run_json(capsys, sqlite_dsn, "history")
    assert isinstance(listed, list)
    assert [d["version"] for d in listed] == ["1.1", "1.0"]
    assert run(sqlite_dsn, "history", "--env", "production", "--limit", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert "1.0" in lines[0]

    latest = run_json(capsys, sqlite_dsn, "latest", "--env", "staging")
    assert isinstance(latest, dict)
    assert latest["version"] == "1.1"
    assert run(sqlite_dsn, "latest", "--env", "development") == 1
    assert "no deployment recorded for development" in capsys.readouterr().err
    assert run(sqlite_dsn, "latest", "--env", "development", "--json") == 1
    assert json.loads(capsys.readouterr().out) is None


def test_rollback_fail_and_metrics(sqlite_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(sqlite_dsn, "record", "1.0", "-e", "production")
    run(sqlite_dsn, "record", "1.1", "-e", "production")
    run(sqlite_dsn, "record", "1.2", "-e", "production")
    capsys.readouterr()
    failed = run_json(capsys, sqlite_dsn, "fail", "3")
    assert isinstance(failed, dict)
    assert failed["status"] == "failed"
    assert run(sqlite_dsn, "rollback", "2", "--to", "1.0", "--reason", "slow", "--by", "ann") == 0
    assert "rolled back #2" in capsys.readouterr().out
    latest = run_json(capsys, sqlite_dsn, "latest", "-e", "production")
    assert isinstance(latest, dict)
    assert (latest["version"], latest["is_rollback"], latest["rollback_of"]) == ("1.0", True, 2)

    report = run_json(capsys, sqlite_dsn, "metrics", "-e", "production", "--days", "1")
    assert isinstance(report, dict)
    assert report["deployments"] == 4
    assert report["failures"] == 2
    assert report["change_failure_rate"] == 0.5
    assert report["deployment_frequency"] == pytest.approx(4.0)
    assert report["lead_time_seconds"] is None
    assert run(sqlite_dsn, "metrics", "-e", "production") == 0
    text = capsys.readouterr().out
    assert "change failure rate:  50.0% (2 failed)" in text
    assert "lead time (median):   unknown" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["record", "", "-e", "production"], "version: must not be empty"),
        (["record", "1.0", "-e", "Prod"], "environment"),
        (["record", "1.0", "-e", "production", "--committed-at", "yesterday"], "committed_at"),
        (["record", "1.0", "-e", "production", "--committed-at", "2024-01-01T00:00"], "timezone"),
        (["rollback", "9", "--to", "1.0", "--reason", "x"], "no deployment with id 9"),
        (["fail", "9"], "no deployment with id 9"),
        (["history", "--limit", "0"], "limit"),
        (["metrics", "-e", "production", "--days", "1", "--since", "2024-01-01T00:00Z"],
         "--days"),
        (["metrics", "-e", "production", "--days", "0"], "--days"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_message(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(sqlite_dsn, *argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_an_unusable_backend_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("nosuch://x", "history") == 2
    assert "buttress deploy history:" in capsys.readouterr().err


def test_every_action_is_registered() -> None:
    root = parser()
    for action in ("record", "rollback", "fail", "history", "latest", "metrics"):
        with pytest.raises(SystemExit) as exit_info:
            root.parse_args(["deploy", action, "--help"])
        assert exit_info.value.code == 0
    with pytest.raises(SystemExit):
        root.parse_args(["deploy"])
