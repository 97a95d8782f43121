"""``buttress.doctor``: the sections as library functions, ``collect`` and ``render_text``,
and ``buttress doctor`` through the installed entry point.

The doctor only looks (tests/test_cli_looks_never_write.py proves it writes
nothing); here: what each section reports, and that one section's failure never
hides the next (issue #15 item 7).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buttress import connect
from buttress.backends import MissingTableError, require_sql
from buttress.doctor import (
    SECTIONS,
    DoctorContext,
    DoctorReport,
    Finding,
    Level,
    Section,
    check_backend,
    check_environment,
    check_security,
    collect,
    explain,
    render_text,
)
from buttress.errors import ValidationError
from buttress.health import HealthReport, Status
from buttress.monitoring import HealthHistory
from buttress.monitoring.errors import ErrorStats
from cli_support import aset_up, buttress, login_role, set_up


def by_section(report: DoctorReport) -> dict[str, list[Finding]]:
    sections: dict[str, list[Finding]] = {}
    for finding in report.findings:
        sections.setdefault(finding.section, []).append(finding)
    return sections


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


def test_the_sections_in_report_order() -> None:
    assert [s.name for s in SECTIONS] == [
        "environment",
        "backend",
        "migrations",
        "schema",
        "health",
        "monitoring",
        "errors",
        "security",
    ]


async def test_collect_on_memory_is_ok() -> None:
    report = await collect("memory://")
    assert report.level is Level.OK
    assert report.dsn == "memory://"
    assert set(by_section(report)) == {"environment", "backend", "health"}


async def test_collect_needs_a_dsn_or_a_backend() -> None:
    with pytest.raises(ValidationError, match="dsn"):
        await collect()


async def test_a_migrated_sqlite_file_reports_every_section_ok(sqlite_dsn: str) -> None:
    report = await collect(await aset_up(sqlite_dsn))
    sections = by_section(report)
    assert list(sections) == [
        "environment",
        "backend",
        "migrations",
        "health",
        "monitoring",
        "errors",
        "security",
    ]
    assert report.level is Level.OK, render_text(report)
    assert [(f.name, f.detail) for f in sections["security"]] == [
        ("audit", "not applicable on SQLite (no roles)")
    ]


async def test_an_application_serves_the_report_over_its_own_backend(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        report = await collect(backend=backend)
        assert report.level is Level.OK
        assert await backend.ping() >= 0  # collect did not close what it was given
    assert report.dsn == backend.dsn


async def test_an_unmigrated_database_is_a_warning_naming_buttress_migrate(
    tmp_path: Path,
) -> None:
    path = tmp_path / "empty.db"
    async with connect(f"sqlite:///{path}", migrate=False):
        pass  # an existing file with none of buttress's tables
    report = await collect(f"sqlite:///{path}")
    assert report.level is Level.WARNING, render_text(report)
    sections = by_section(report)
    [pending] = sections["migrations"]
    assert pending.level is Level.WARNING
    assert "pending" in pending.detail
    assert "`buttress migrate`" in pending.detail
    for name in ("monitoring", "errors"):
        [finding] = sections[name]
        assert (finding.name, finding.level) == ("not set up", Level.WARNING)
        assert "`buttress migrate`" in finding.detail


async def test_a_missing_sqlite_file_is_the_backend_finding_and_is_not_created(
    tmp_path: Path,
) -> None:
    report = await collect(f"sqlite:///{tmp_path / 'typo_of_app.db'}")
    assert report.level is Level.CRITICAL
    [connect_finding] = by_section(report)["backend"]
    assert "typo_of_app.db does not exist" in connect_finding.detail
    assert os.listdir(tmp_path) == []


async def test_one_failing_section_never_hides_the_next() -> None:
    async def broken(ctx: DoctorContext) -> list[Finding]:
        raise MissingTableError("HealthHistory", ["buttress_health_history"])

    async def crashing(ctx: DoctorContext) -> list[Finding]:
        raise RuntimeError("boom")

    sections = [
        Section("first", broken),
        Section("second", crashing),
        check_environment,
        check_backend,
    ]
    report = await collect("memory://", sections=sections)
    found = by_section(report)
    assert [(f.name, f.level) for f in found["first"]] == [("not set up", Level.WARNING)]
    assert [(f.name, f.level, f.detail) for f in found["second"]] == [
        ("error", Level.CRITICAL, "RuntimeError: boom")
    ]
    assert "environment" in found
    assert "backend" in found


async def test_a_section_called_alone_reports_its_failure_instead_of_raising() -> None:
    async def crashing(ctx: DoctorContext) -> list[Finding]:
        raise ValidationError("rules", "cannot read rules.toml")

    found = await Section("monitoring", crashing)(DoctorContext("memory://"))
    assert [(f.section, f.level, f.detail) for f in found] == [
        ("monitoring", Level.CRITICAL, "rules: cannot read rules.toml")
    ]


def test_explain_names_the_missing_grant() -> None:
    class InsufficientPrivilegeError(Exception):
        sqlstate = "42501"

    denied = InsufficientPrivilegeError("permission denied for table buttress_config")
    dsn = "postgresql://app_ro:s3cret@db/app"
    assert explain(denied, dsn=dsn) == (
        "permission denied for table buttress_config: missing grant, run "
        "GRANT SELECT ON TABLE buttress_config TO app_ro"
    )
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE" in explain(denied, writes=True)
    schema = InsufficientPrivilegeError("permission denied for schema public")
    assert explain(schema, dsn=dsn).endswith("GRANT USAGE ON SCHEMA public TO app_ro")
    wrapped = ValueError("wrapped")
    wrapped.__cause__ = denied
    assert "GRANT SELECT ON TABLE buttress_config" in explain(wrapped)
    assert "s3cret" not in explain(ValueError(f"failed at {dsn}\nline two"))
    assert "\n" not in explain(ValueError("one\ntwo"))


async def test_the_security_section(sqlite_dsn: str, postgres_dsn: str, tmp_path: Path) -> None:
    async with connect(sqlite_dsn) as db:
        found = await check_security(DoctorContext(sqlite_dsn, backend=db))
        assert [(f.name, f.level) for f in found] == [("audit", Level.OK)]
    path = tmp_path / "schema.toml"
    path.write_text('[audit]\nallow_superuser = true\nrow_level_security = ["orders"]\n')
    async with connect(postgres_dsn, migrate=False) as db:
        await require_sql(db, "tests").execute("CREATE TABLE orders (id integer)")
        found = await check_security(DoctorContext(postgres_dsn, backend=db))
        assert [(f.name, f.level) for f in found] == [("superuser_connection", Level.CRITICAL)]
        ctx = DoctorContext(postgres_dsn, schema_path=str(path), backend=db)
        found = await check_security(ctx)
        assert [(f.name, f.level, f.detail[:19]) for f in found] == [
            ("rls_disabled", Level.CRITICAL, "table public.orders")
        ]


# -- buttress doctor, through the installed entry point ------------------------------


def test_doctor_on_a_migrated_default_sqlite_file(tmp_path: Path) -> None:
    assert buttress("migrate", cwd=tmp_path).returncode == 0
    done = buttress("doctor", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sqlite:///buttress.db" in done.stdout
    assert "status: ok" in done.stdout
    assert "\x1b[" not in done.stdout  # not a terminal: no colour codes
    assert done.stderr == ""


def test_doctor_json_uses_the_env_dsn(tmp_path: Path) -> None:
    done = buttress("doctor", "--json", cwd=tmp_path, env={"BUTTRESS_DSN": "memory://"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "ok"
    assert report["dsn"] == "memory://"
    assert {f["section"] for f in report["findings"]} >= {"backend", "environment"}


def test_an_unreachable_backend_is_critical_and_hides_the_password(tmp_path: Path) -> None:
    # Port 1 on loopback refuses connections at once.
    done = buttress(
        "doctor", "--json", "--dsn", "postgresql://app:hunter2secret@127.0.0.1:1/db", cwd=tmp_path
    )
    assert done.returncode == 2
    assert "hunter2secret" not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "critical"
    critical = {f["section"] for f in report["findings"] if f["level"] == "critical"}
    assert critical == {"backend"}  # the sections that need it say nothing of their own


def test_a_bad_scheme_is_critical(tmp_path: Path) -> None:
    done = buttress("doctor", "--dsn", "mysql://x", cwd=tmp_path)
    assert done.returncode == 2
    assert "mysql" in done.stdout


def test_pending_app_migrations_are_a_warning(sqlite_dsn: str, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_create_users.sql").write_text("CREATE TABLE users (id INTEGER);\n")
    dsn = set_up(sqlite_dsn)
    done = buttress("doctor", "--dsn", dsn, "--migrations-dir", str(migrations), cwd=tmp_path)
    assert done.returncode == 1
    assert "0001_create_users" in done.stdout
    assert "status: warning" in done.stdout


def test_schema_drift_is_critical(sqlite_dsn: str, tmp_path: Path) -> None:
    schema = tmp_path / "schema.toml"
    schema.write_text('[tables.orders]\ncolumns = [{ name = "id", type = "integer" }]\n')
    dsn = set_up(sqlite_dsn)
    done = buttress("doctor", "--json", "--dsn", dsn, "--schema", str(schema), cwd=tmp_path)
    assert done.returncode == 2
    drift = [f for f in json.loads(done.stdout)["findings"] if f["section"] == "schema"]
    assert any("orders" in f["detail"] for f in drift)


def test_anomaly_rules_run_over_recorded_history(sqlite_dsn: str, tmp_path: Path) -> None:
    start = datetime.now(UTC) - timedelta(hours=5)

    async def seed() -> None:
        async with connect(sqlite_dsn) as backend:
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
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nkind = "drop"\nmetric = "signups"\nwarning = 0.5\n')
    done = buttress("doctor", "--json", "--dsn", sqlite_dsn, "--rules", str(rules), cwd=tmp_path)
    monitoring = [f for f in json.loads(done.stdout)["findings"] if f["section"] == "monitoring"]
    assert done.returncode == 1
    assert monitoring[0]["detail"] == "5 health run(s) recorded"
    assert any(f["name"] == "drop" and f["level"] == "warning" for f in monitoring)


def test_captured_errors_and_a_high_rate(sqlite_dsn: str, tmp_path: Path) -> None:
    async def seed() -> None:
        async with connect(sqlite_dsn) as backend:
            stats = ErrorStats(backend)
            stats.record("database", "high", "billing", count=25)
            await stats.flush()

    asyncio.run(seed())
    done = buttress("doctor", "--json", "--dsn", sqlite_dsn, cwd=tmp_path)
    errors = [f for f in json.loads(done.stdout)["findings"] if f["section"] == "errors"]
    assert done.returncode == 1
    assert errors[0]["detail"].startswith("25 captured")
    assert (errors[1]["name"], errors[1]["level"]) == ("rate", "warning")


@pytest.mark.postgres
def test_a_missing_grant_is_its_sections_finding_and_hides_no_other(
    postgres_dsn: str, tmp_path: Path
) -> None:
    """Issue #15 item 7: a role that may connect but read none of buttress's tables."""
    set_up(postgres_dsn)
    with login_role(postgres_dsn) as role_dsn:
        role = role_dsn.split("://", 1)[1].split(":", 1)[0]
        done = buttress("doctor", "--json", "--dsn", role_dsn, cwd=tmp_path)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stdout + done.stderr
    sections: dict[str, list[dict[str, str]]] = {}
    for finding in json.loads(done.stdout)["findings"]:
        sections.setdefault(finding["section"], []).append(finding)
    assert [f["level"] for f in sections["backend"]] == ["ok", "ok"]
    for name, table in (
        ("migrations", "schema_migrations"),
        ("monitoring", "buttress_health_history"),
        ("errors", "buttress_error_events"),
    ):
        [finding] = sections[name]
        assert finding["level"] == "critical"
        assert f"permission denied for table {table}" in finding["detail"]
        assert f"GRANT SELECT ON TABLE {table} TO {role}" in finding["detail"]
    assert sections["health"]
    assert sections["security"]  # the audit still ran after three sections failed
