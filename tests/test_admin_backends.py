"""The admin endpoints over real SQLite and PostgreSQL stores, in FastAPI and Flask:
what other instances wrote is what the sections report, secrets stay masked."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import flask
import pytest
from fastapi import FastAPI
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from buttress import connect
from buttress.adapters.admin import AdminEndpoints
from buttress.adapters.admin_asgi import AdminASGIApp
from buttress.adapters.admin_wsgi import AdminWSGIApp
from buttress.backends import Backend, SqlBackend
from buttress.config import ConfigStore
from buttress.errors import ErrorCategory, Severity
from buttress.flags import FeatureFlags, Flag
from buttress.health import ComponentStatus, HealthReport, Status
from buttress.migrations import Migrator, builtin_migrator
from buttress.monitoring import DropRule, HealthHistory
from buttress.monitoring.errors import ErrorStats

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

T = TypeVar("T")
TOKEN = "0123456789abcdef-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "whsec_0123456789abcdef"

Get = Callable[[str], tuple[int, dict[str, Any], str]]


class Stack:
    """One application's components on one backend, and writers standing in for
    other instances of the application."""

    def __init__(self, backend: Backend, migrations: Path) -> None:
        assert isinstance(backend, SqlBackend)
        self.backend = backend
        self.stats = ErrorStats(backend)
        self.history = HealthHistory(backend)
        self.flags = FeatureFlags(backend, refresh_interval=None)
        self.config = ConfigStore(backend)
        self.app_migrator = Migrator(backend, str(migrations), namespace="app")
        self.migrators = [builtin_migrator(backend), self.app_migrator]

    @classmethod
    async def open(cls, dsn: str, migrations: Path) -> Stack:
        return cls(await connect(dsn), migrations)

    async def seed(self) -> None:
        other_flags = FeatureFlags(self.backend, refresh_interval=None)
        other_config = ConfigStore(self.backend)
        try:
            await other_flags.upsert(
                Flag("checkout-v2", "Checkout v2", enabled=True, percentage=25)
            )
            await other_config.set("webhook_secret", SECRET, sensitive=True, updated_by="ops")
            await other_config.set("max_items", 20, environment="production")
            await other_config.set_maintenance_mode(True, updated_by="ops")
        finally:
            await other_flags.stop()
            await other_config.stop()
        now = datetime.now(UTC)
        for hours_ago, signups in ((3, 40), (2, 42), (1, 41), (0, 4)):
            report = HealthReport.from_components(
                {"db": ComponentStatus(Status.HEALTHY, latency_ms=1.5)},
                version="2.0",
                timestamp=now - timedelta(hours=hours_ago, seconds=1),
            )
            await HealthHistory(self.backend).record(report, {"signups": signups})
        self.stats.record(ErrorCategory.DATABASE, Severity.CRITICAL, "orders", count=2)

    async def close(self) -> None:
        await self.flags.stop()
        await self.config.stop()
        await self.stats.stop()
        await self.backend.close()

    def endpoints(self) -> AdminEndpoints:
        return endpoints_for(lambda: self)


def endpoints_for(stack: Callable[[], Stack]) -> AdminEndpoints:
    return AdminEndpoints(
        token=TOKEN,
        errors=lambda: stack().stats,
        migrations=lambda: stack().migrators,
        history=lambda: stack().history,
        rules=[DropRule("signups", warning=0.5, critical=0.8)],
        flags=lambda: stack().flags,
        config=lambda: stack().config,
    )


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_widgets.sql").write_text("CREATE TABLE widgets (id INTEGER PRIMARY KEY);\n")
    return directory


def check_sections(get: Get, dialect: str) -> None:
    status, index, _ = get("/admin")
    assert status == 200
    assert index["data"]["sections"] == ["errors", "migrations", "health", "flags", "config"]

    status, errors, _ = get("/admin/errors")
    assert status == 200
    assert errors["data"]["summary"]["by_severity"] == {"critical": 2}
    assert errors["data"]["persistent"] is True

    status, migrations, _ = get("/admin/migrations")
    assert status == 200
    by_namespace = {n["namespace"]: n for n in migrations["data"]["namespaces"]}
    assert by_namespace["buttress"]["pending"] == []  # connect() applied them
    assert by_namespace["app"]["pending"] == ["0001_widgets"]
    assert migrations["data"]["pending"] == 1
    assert migrations["data"]["ok"] is True

    status, health, _ = get("/admin/health")
    assert status == 200
    assert health["data"]["runs"] == 4
    assert health["data"]["recent"][0]["metrics"] == {"signups": 4.0}
    assert health["data"]["level"] == "critical"  # 4 against a median of 41
    assert health["data"]["anomalies"][0]["baseline"] == 41.0

    status, flags, _ = get("/admin/flags")
    assert status == 200
    assert [(f["key"], f["percentage"]) for f in flags["data"]["flags"]] == [("checkout-v2", 25.0)]

    status, config, text = get("/admin/config")
    assert status == 200
    entries = {(e["key"], e["environment"]): e for e in config["data"]["entries"]}
    secret = entries[("webhook_secret", "all")]
    assert secret["value"] == "***"
    assert secret["sensitive"] is True
    assert secret["updated_by"] == "ops"
    assert entries[("max_items", "production")]["value"] == 20
    assert config["data"]["maintenance_mode"] is True
    assert SECRET not in text, dialect


def test_fastapi_sections_read_from_the_store(sql_dsn: str, migrations: Path) -> None:
    app = FastAPI()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stack = await Stack.open(sql_dsn, migrations)
        app.state.stack = stack
        try:
            await stack.seed()
            yield
        finally:
            await stack.close()

    app.router.lifespan_context = lifespan
    app.mount("/admin", AdminASGIApp(endpoints_for(lambda: app.state.stack)))
    with TestClient(app) as client:

        def get(path: str) -> tuple[int, dict[str, Any], str]:
            response = client.get(path, headers=AUTH)
            return response.status_code, response.json(), response.text

        check_sections(get, sql_dsn.split(":")[0])
        # Applied meanwhile by a deployment: the next request sees it.
        assert client.portal is not None  # set while the client runs
        client.portal.call(app.state.stack.app_migrator.migrate)
        _, after, _ = get("/admin/migrations")
        assert after["data"]["pending"] == 0
        wrong = client.get("/admin/config", headers={"Authorization": "Bearer " + TOKEN[:-2]})
        assert wrong.status_code == 401
        assert SECRET not in wrong.text


class Portal:
    """The event loop a Flask application keeps its async components on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def portal() -> Iterator[Portal]:
    running = Portal()
    try:
        yield running
    finally:
        running.close()


def test_flask_sections_read_from_the_store(sql_dsn: str, migrations: Path, portal: Portal) -> None:
    stack = portal.call(Stack.open(sql_dsn, migrations))
    try:
        portal.call(stack.seed())
        app = flask.Flask("admin-backends")
        admin = AdminWSGIApp(stack.endpoints(), loop=portal.loop)
        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/admin": admin})  # type: ignore[method-assign]
        client = app.test_client()

        def get(path: str) -> tuple[int, dict[str, Any], str]:
            response = client.get(path, headers=AUTH)
            return response.status_code, response.get_json(), response.text

        check_sections(get, sql_dsn.split(":")[0])
        assert client.get("/admin/config").status_code == 401
        admin.close()  # a given loop is left running
        assert get("/admin/flags")[0] == 200
    finally:
        portal.call(stack.close())
