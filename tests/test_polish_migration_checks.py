"""Health and start-up checks against the real ``Migrator`` and ``ConfigStore`` on SQLite.

``migrations_applied`` (health) and ``StartupValidator(migrations_dir=...)``
were written against a stand-in; these drive them with real files, a real
tracking table and real checksum drift.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from buttress import connect
from buttress.backends import SqlBackend
from buttress.config import ConfigStore, Setting
from buttress.errors import ValidationError
from buttress.health import HealthRegistry, Status
from buttress.health.builtin import migrations_applied
from buttress.lifecycle import StartupValidator
from buttress.migrations import Migrator

FIRST = "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
SECOND = "CREATE TABLE gadgets (id INTEGER PRIMARY KEY);\n"


@pytest.fixture
async def backend(sqlite_dsn: str) -> AsyncIterator[SqlBackend]:
    async with connect(sqlite_dsn) as backend:
        assert isinstance(backend, SqlBackend)
        yield backend


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_widgets.sql").write_text(FIRST)
    return directory


async def _health(backend: SqlBackend, directory: Path) -> tuple[Status, str | None, object]:
    registry = HealthRegistry()
    registry.register("migrations", migrations_applied(backend, directory))
    report = await registry.run()
    component = report.components["migrations"]
    return component.status, component.message, component.observed_value


async def _startup(backend: SqlBackend, directory: Path) -> tuple[bool, tuple[str, ...]]:
    report = await StartupValidator(backend=backend, migrations_dir=directory).run()
    return report.success, report.errors


async def test_pending_migration_degrades_health_and_fails_startup(
    backend: SqlBackend, migrations: Path
) -> None:
    status, message, pending = await _health(backend, migrations)
    assert status is Status.DEGRADED
    assert message is not None
    assert "1 pending" in message
    assert "0001_widgets" in message
    assert pending == 1

    success, errors = await _startup(backend, migrations)
    assert not success
    assert errors == (
        "migrations: 1 not applied (0001_widgets); run `buttress migrate` before starting",
    )


async def test_after_migrate_both_are_healthy(backend: SqlBackend, migrations: Path) -> None:
    await Migrator(backend, migrations).migrate()
    status, message, pending = await _health(backend, migrations)
    assert (status, message, pending) == (Status.HEALTHY, None, 0)
    assert await _startup(backend, migrations) == (True, ())

    (migrations / "0002_gadgets.sql").write_text(SECOND)  # the code moved ahead again
    status, message, _ = await _health(backend, migrations)
    assert status is Status.DEGRADED
    assert "0002_gadgets" in (message or "")


async def test_checksum_drift_is_unhealthy_and_fails_startup(
    backend: SqlBackend, migrations: Path
) -> None:
    await Migrator(backend, migrations).migrate()
    (migrations / "0001_widgets.sql").write_text(FIRST + "-- edited after it ran\n")

    status, message, _ = await _health(backend, migrations)
    assert status is Status.UNHEALTHY
    assert "0001_widgets.sql: changed after it was applied" in (message or "")

    success, errors = await _startup(backend, migrations)
    assert not success
    assert len(errors) == 1
    assert errors[0].startswith("migrations: 0001_widgets.sql: changed after it was applied")
    assert errors[0].endswith("; fix the migration files or database")


async def test_missing_file_of_an_applied_migration_is_unhealthy(
    backend: SqlBackend, migrations: Path
) -> None:
    await Migrator(backend, migrations).migrate()
    (migrations / "0001_widgets.sql").unlink()
    status, message, _ = await _health(backend, migrations)
    assert status is Status.UNHEALTHY
    assert "file is missing" in (message or "")
    success, errors = await _startup(backend, migrations)
    assert not success
    assert ["file is missing" in line for line in errors] == [True]


async def test_buttress_own_migrations_do_not_count_as_the_apps(
    backend: SqlBackend, migrations: Path
) -> None:
    # connect() applied buttress's packaged migrations (namespace "buttress") to this
    # database; the checks look at the app's namespace only.
    await Migrator(backend, migrations).migrate()
    assert (await _health(backend, migrations))[0] is Status.HEALTHY


# -- required config, declared as Settings -------------------------------------------------

MAX_UPLOAD_MB = Setting[int]("max_upload_mb", default=50)
SUPPORT_EMAIL = Setting[str]("support_email")
WORKERS = Setting[int]("workers")


async def test_required_settings_missing_from_a_sqlite_store_are_reported(
    backend: SqlBackend,
) -> None:
    config = ConfigStore(backend)
    await config.set("workers", 4)
    report = await StartupValidator(
        config=config, required_config=[MAX_UPLOAD_MB, SUPPORT_EMAIL, WORKERS, "region"]
    ).run()
    assert not report.success
    assert report.errors == (
        "config key 'support_email' is missing; "
        "set it with `buttress config set support_email ...`",
        "config key 'region' is missing; set it with `buttress config set region ...`",
    )

    await config.set("support_email", "ops@example.com")
    await config.set("region", "eu")
    report = await StartupValidator(
        config=config, required_config=[MAX_UPLOAD_MB, SUPPORT_EMAIL, WORKERS, "region"]
    ).run()
    assert (report.success, report.errors) == (True, ())


async def test_a_setting_stored_with_the_wrong_type_is_reported(backend: SqlBackend) -> None:
    config = ConfigStore(backend)
    await config.set("workers", "four", sensitive=True)
    await config.set("max_upload_mb", True)  # a bool is never an int
    report = await StartupValidator(config=config, required_config=[WORKERS, MAX_UPLOAD_MB]).run()
    assert not report.success
    assert len(report.errors) == 2
    assert "'workers'" in report.errors[0]
    assert "expected int" in report.errors[0]
    assert "four" not in " ".join(report.errors)  # a sensitive value never appears
    assert "'max_upload_mb'" in report.errors[1]


async def test_migrator_warnings_are_startup_warnings_not_errors(
    backend: SqlBackend, migrations: Path
) -> None:
    await Migrator(backend, migrations).migrate()
    await backend.execute("CREATE TABLE alembic_version (version_num TEXT)")
    report = await StartupValidator(backend=backend, migrations_dir=migrations).run()
    assert (report.success, report.errors) == (True, ())
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("migrations: legacy migration table 'alembic_version'")


async def test_a_badly_named_file_is_unhealthy_and_fails_startup(
    backend: SqlBackend, migrations: Path
) -> None:
    (migrations / "2_oops.sql").write_text(SECOND)
    status, message, _ = await _health(backend, migrations)
    assert status is Status.UNHEALTHY
    assert "2_oops.sql" in (message or "")
    success, errors = await _startup(backend, migrations)
    assert not success
    assert any(line.startswith("migrations: 2_oops.sql") for line in errors), errors


def test_required_config_items_must_be_keys_or_settings(backend: SqlBackend) -> None:
    config = ConfigStore(backend)
    with pytest.raises(ValidationError, match="required_config"):
        StartupValidator(config=config, required_config=[42])  # type: ignore[list-item]  # the check under test
    with pytest.raises(ValidationError, match="required_config"):
        StartupValidator(config=config, required_config="support_email")
