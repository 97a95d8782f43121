"""StartupValidator: every problem collected, one actionable line each."""

from __future__ import annotations

import asyncio
import os

import pytest
from structlog.testing import capture_logs

from buttress.backends import open_backend, require_sql
from buttress.errors import ValidationError
from buttress.lifecycle import (
    EnvVar,
    StartupError,
    StartupValidator,
    render_startup_text,
)
from buttress.schema import Column, Schema, Table


class FakeBackend:
    kind = "memory"

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.closed = False

    async def ping(self) -> float:
        if not self.up:
            raise ConnectionRefusedError("connection refused")
        return 0.001

    async def close(self) -> None:
        self.closed = True


async def test_collects_every_problem_without_failing_fast() -> None:
    async def queue_ok() -> None:
        return None

    def cache_warm() -> str:
        return "cache: not warmed; run `app warm-cache` first"

    validator = StartupValidator(
        backend=FakeBackend(up=False),
        required_env=["DATABASE_URL", EnvVar("PORT", "int"), EnvVar("DEBUG", "bool")],
        required_tables=["users"],
        checks=[queue_ok, ("cache", cache_warm)],
        environ={"PORT": "eighty", "DEBUG": "true"},
    )
    report = await validator.run()
    assert not report.success
    assert report.errors == (
        "environment variable DATABASE_URL is not set; set it before starting "
        "(expected: a non-empty value)",
        "environment variable PORT is not valid (expected: an integer, e.g. 8080); "
        "fix its value (not shown here)",
        "backend: cannot reach the backend (ConnectionRefusedError: connection refused); "
        "check that the server is running and that the DSN's host, port, database and "
        "credentials are right",
        "cache: not warmed; run `app warm-cache` first",
    )
    assert report.checks["env:DEBUG"].status == "passed"
    assert report.checks["tables"].status == "skipped"
    assert report.checks["queue_ok"].status == "passed"
    assert report.checks["cache"].status == "failed"
    assert report.to_dict()["success"] is False


async def test_unreachable_dsn_is_one_error_not_an_exception() -> None:
    validator = StartupValidator(
        dsn="postgresql://app:s3cret@127.0.0.1:1/app",
        required_tables=["users"],
        check_timeout=5,
    )
    report = await validator.run()
    assert len(report.errors) == 1
    assert report.errors[0].startswith("backend: cannot reach postgresql://app:***@127.0.0.1:1/app")
    assert "s3cret" not in report.errors[0]
    assert report.checks["tables"].status == "skipped"
    assert "s3cret" not in repr(validator)


async def test_invalid_dsn_is_one_error() -> None:
    report = await StartupValidator(dsn="nosuch://x").run()
    assert len(report.errors) == 1
    assert report.errors[0].startswith("dsn nosuch://")


async def test_sqlite_tables_present_and_missing(tmp_path: os.PathLike[str]) -> None:
    dsn = f"sqlite:///{tmp_path}/app.db"
    async with open_backend(dsn) as backend:
        await require_sql(backend, "test").execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    report = await StartupValidator(dsn=dsn, required_tables=["users", "orders"]).run()
    assert report.checks["backend"].status == "passed"
    assert report.errors == (
        "table 'orders' is missing; run your migrations (e.g. `buttress migrate`) before starting",
    )


@pytest.mark.postgres
async def test_postgres_tables(postgres_dsn: str) -> None:
    async with open_backend(postgres_dsn) as backend:
        await require_sql(backend, "test").execute("CREATE TABLE users (id INT PRIMARY KEY)")
    report = await StartupValidator(dsn=postgres_dsn, required_tables=["users", "orders"]).run()
    assert report.checks["backend"].status == "passed"
    assert [line.split(" is missing")[0] for line in report.errors] == ["table 'orders'"]


async def test_tables_on_a_backend_without_sql() -> None:
    report = await StartupValidator(backend=FakeBackend(), required_tables=["t"]).run()
    assert report.errors == (
        "tables: cannot list tables on a memory backend; use a SQLite or PostgreSQL DSN",
    )


async def test_tables_without_any_backend() -> None:
    report = await StartupValidator(required_tables=["t"]).run()
    assert report.errors == ("tables: cannot be checked without a database; pass dsn= or backend=",)


async def test_schema_check_uses_schema_validator(tmp_path: os.PathLike[str]) -> None:
    schema = Schema([Table("users", [Column("id", "integer", nullable=False)])])
    dsn = f"sqlite:///{tmp_path}/s.db"
    report = await StartupValidator(dsn=dsn, schema=schema).run()
    assert report.checks["schema"].status == "failed"
    assert len(report.errors) == 1
    assert "users" in report.errors[0]
    assert report.errors[0].endswith("see `buttress schema plan` for the fix")
    async with open_backend(dsn) as backend:
        await require_sql(backend, "test").execute("CREATE TABLE users (id INTEGER NOT NULL)")
    assert (await StartupValidator(dsn=dsn, schema=schema).run()).success


async def test_custom_check_outcomes_and_timeouts() -> None:
    async def hangs() -> None:
        await asyncio.sleep(10)

    def raises() -> None:
        raise RuntimeError("token=abc123 rejected")

    validator = StartupValidator(
        checks=[
            ("ok", lambda: True),
            ("false", lambda: False),
            ("lines", lambda: ["a: broken", "b: broken"]),
            ("hangs", hangs),
            ("raises", raises),
            ("weird", lambda: 42),  # type: ignore[list-item, return-value]  # deliberately wrong
        ],
        check_timeout=0.05,
    )
    report = await validator.run()
    assert report.checks["ok"].status == "passed"
    assert report.errors == (
        "false: check failed",
        "a: broken",
        "b: broken",
        "hangs: did not finish within 0.05 s; check that what it depends on is reachable",
        "raises: RuntimeError: token=*** rejected",
        "weird: returned int; expected None, bool, str or lines",
    )


class FakeConfig:
    def __init__(self, keys: set[str]) -> None:
        self.keys = keys

    async def get_entry(self, key: str) -> object | None:
        return object() if key in self.keys else None


async def test_required_config_keys() -> None:
    report = await StartupValidator(
        config=FakeConfig({"app_name"}), required_config=["app_name", "support_email"]
    ).run()
    assert report.errors == (
        "config key 'support_email' is missing; "
        "set it with `buttress config set support_email ...`",
    )
    with pytest.raises(ValidationError, match="config"):
        StartupValidator(required_config=["x"])


async def test_enforce_production_aborts_development_warns() -> None:
    bad = {"required_env": ["MISSING_VAR"], "environ": {}}
    with pytest.raises(StartupError) as info:
        await StartupValidator(**bad).enforce()  # type: ignore[arg-type]
    assert info.value.report.errors[0].startswith("environment variable MISSING_VAR")
    assert "1 problems" in str(info.value)
    with capture_logs() as logs:
        report = await StartupValidator(mode="development", **bad).enforce()  # type: ignore[arg-type]
    assert not report.success
    assert any(e["event"] == "startup.problem" and e["log_level"] == "warning" for e in logs)
    assert (await StartupValidator().enforce()).success


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="dsn"):
        StartupValidator(dsn="memory://", backend=FakeBackend())
    with pytest.raises(ValidationError, match="required_env"):
        StartupValidator(required_env="PORT")
    with pytest.raises(ValidationError, match="mode"):
        StartupValidator(mode="staging")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="checks"):
        StartupValidator(checks=[42])  # type: ignore[list-item]


async def test_render_text() -> None:
    report = await StartupValidator(
        required_env=["NOPE"], environ={}, checks=[("fine", lambda: None)]
    ).run()
    text = render_startup_text(report)
    assert text.splitlines()[0] == "start-up checks: FAILED (production)"
    assert "[FAIL] env:NOPE" in text
    assert "[ok  ] fine" in text
    assert "\x1b[" in render_startup_text(report, color=True)


async def test_owned_backend_is_closed(tmp_path: os.PathLike[str]) -> None:
    given = FakeBackend()
    await StartupValidator(backend=given).run()
    assert given.closed is False  # not ours to close


class FakeMigrator:
    pending: tuple[str, ...] = ("0002_add_email", "0003_index")

    def __init__(self, backend: object, directory: object) -> None:
        self.directory = directory

    async def validate(self) -> list[str]:
        return ["0001_init: checksum differs from the applied one"]

    async def status(self) -> object:
        return type("State", (), {"pending": FakeMigrator.pending})()


async def test_migrations_checked_through_the_migrator(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import buttress.migrations

    monkeypatch.setattr(buttress.migrations, "Migrator", FakeMigrator)
    report = await StartupValidator(backend=FakeBackend(), migrations_dir=tmp_path).run()
    assert report.checks["migrations"].errors == (
        "migrations: 0001_init: checksum differs from the applied one; "
        "fix the migration files or database",
        "migrations: 2 not applied (0002_add_email, 0003_index); "
        "run `buttress migrate` before starting",
    )
    missing = await StartupValidator(backend=FakeBackend(), migrations_dir=f"{tmp_path}/nope").run()
    assert missing.errors == (
        f"migrations: directory {tmp_path}/nope does not exist; fix migrations_dir=",
    )


async def test_memory_dsn_passes() -> None:
    report = await StartupValidator(dsn="memory://").run()
    assert report.success
    assert report.checks["backend"].status == "passed"
