from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from buttress import __version__
from buttress.cli import main
from buttress.cli.doctor import DoctorReport, Finding, Level, render_text

pytestmark = pytest.mark.usefixtures("cli_logging")


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"buttress {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "doctor" in capsys.readouterr().err


def test_doctor_on_default_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUTTRESS_DSN", raising=False)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "sqlite:///buttress.db" in out
    assert "status: ok" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert (tmp_path / "buttress.db").exists()


def test_doctor_json_uses_env_dsn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BUTTRESS_DSN", "memory://")
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok"
    assert report["dsn"] == "memory://"
    assert {f["section"] for f in report["findings"]} >= {"backend", "environment"}


def test_doctor_unreachable_backend_is_critical_and_hides_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Port 1 on loopback refuses connections at once.
    code = main(["doctor", "--json", "--dsn", "postgresql://app:hunter2secret@127.0.0.1:1/db"])
    out = capsys.readouterr().out
    assert code == 2
    assert "hunter2secret" not in out
    report = json.loads(out)
    assert report["status"] == "critical"


def test_doctor_bad_scheme_is_critical(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--dsn", "mysql://x"]) == 2
    assert "mysql" in capsys.readouterr().out


def test_render_text_colours_only_when_asked() -> None:
    report = DoctorReport(
        dsn="memory://",
        findings=(
            Finding("backend", "ping", Level.OK, "1 ms"),
            Finding("schema", "drift", Level.WARNING, "optional table missing"),
        ),
    )
    assert report.exit_code == 1
    plain = render_text(report)
    assert "status: warning" in plain
    assert "\x1b[" not in plain
    assert "\x1b[33m" in render_text(report, colour=True)


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


def test_doctor_sets_up_a_fresh_sqlite_file_and_reports_each_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert main(["doctor", "--json", "--dsn", dsn]) == 0
    report = json.loads(capsys.readouterr().out)
    sections = {f["section"] for f in report["findings"]}
    assert sections >= {"environment", "backend", "migrations", "health"}
    migrations = [f for f in report["findings"] if f["section"] == "migrations"]
    assert [f["level"] for f in migrations] == ["ok"]


def test_doctor_reports_pending_app_migrations_as_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_create_users.sql").write_text("CREATE TABLE users (id INTEGER);\n")
    dsn = f"sqlite:///{tmp_path / 'app.db'}"
    code = main(["doctor", "--dsn", dsn, "--migrations-dir", str(migrations)])
    out = capsys.readouterr().out
    assert code == 1
    assert "0001_create_users" in out
    assert "status: warning" in out


def test_doctor_reports_schema_drift_as_critical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = tmp_path / "schema.toml"
    schema.write_text('[tables.orders]\ncolumns = [{ name = "id", type = "integer" }]\n')
    dsn = f"sqlite:///{tmp_path / 'app.db'}"
    code = main(["doctor", "--json", "--dsn", dsn, "--schema", str(schema)])
    report = json.loads(capsys.readouterr().out)
    assert code == 2
    drift = [f for f in report["findings"] if f["section"] == "schema"]
    assert drift
    assert any("orders" in f["detail"] for f in drift)


def test_doctor_without_backend_reports_only_why(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json", "--dsn", "postgresql://u:pw-secret-1@127.0.0.1:1/db"])
    report = json.loads(capsys.readouterr().out)
    assert code == 2
    assert {f["section"] for f in report["findings"] if f["level"] == "critical"} == {"backend"}


def test_doctor_runs_anomaly_rules_over_recorded_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from buttress import connect
    from buttress.health import HealthReport, Status
    from buttress.monitoring import HealthHistory

    dsn = f"sqlite:///{tmp_path / 'app.db'}"
    start = datetime.now(UTC) - timedelta(hours=5)

    async def seed() -> None:
        async with connect(dsn) as backend:
            history = HealthHistory(backend)
            for hour, signups in enumerate([100, 110, 90, 100, 10]):
                report = HealthReport(
                    status=Status.HEALTHY,
                    components={},
                    version="1",
                    timestamp=start + timedelta(hours=hour),
                )
                await history.record(report, metrics={"signups": signups})

    asyncio.run(seed())
    capsys.readouterr()  # the seeding's own log lines
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nkind = "drop"\nmetric = "signups"\nwarning = 0.5\n')
    code = main(["doctor", "--json", "--dsn", dsn, "--rules", str(rules)])
    report = json.loads(capsys.readouterr().out)
    monitoring = [f for f in report["findings"] if f["section"] == "monitoring"]
    assert code == 1
    assert monitoring[0]["detail"] == "5 health run(s) recorded"
    assert any(f["name"] == "drop" and f["level"] == "warning" for f in monitoring)


def test_doctor_shows_captured_errors_and_flags_a_high_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from buttress import connect
    from buttress.monitoring.errors import ErrorStats

    dsn = f"sqlite:///{tmp_path / 'app.db'}"

    async def seed() -> None:
        async with connect(dsn) as backend:
            stats = ErrorStats(backend)
            stats.record("database", "high", "billing", count=25)
            await stats.flush()

    asyncio.run(seed())
    capsys.readouterr()
    code = main(["doctor", "--json", "--dsn", dsn])
    findings = json.loads(capsys.readouterr().out)["findings"]
    errors = [f for f in findings if f["section"] == "errors"]
    assert code == 1
    assert errors[0]["detail"].startswith("25 captured")
    assert errors[1]["name"] == "rate"
    assert errors[1]["level"] == "warning"
