"""A small Flask service wired with every buttress module.

``GET /quote/<sku>`` prices an item through a flaky inventory service behind a
retry policy and a circuit breaker; the rest shows rate limiting (state shared
by every worker through the SQLite file), health endpoints, feature flags, a
secret kept in ``ConfigStore``, the deployment record, start-up validation and
graceful shutdown. Run: ``flask --app flask_app.app run``.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack
from typing import TypeVar

import attrs
from flask import Flask, Response, jsonify, request

from buttress import connect, responses
from buttress.adapters.health_wsgi import HealthWSGIApp
from buttress.adapters.wsgi_ratelimit import WSGIRateLimitMiddleware
from buttress.backends import Backend
from buttress.breaker import CircuitBreaker, CircuitOpenError
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import ConfigStore, Setting
from buttress.deploy import DeploymentLog
from buttress.flags import FeatureFlags, Flag, FlagContext
from buttress.health import HealthRegistry
from buttress.health.builtin import breaker_states
from buttress.lifecycle import EnvVar, GracefulShutdown, ShutdownReport, StartupValidator
from buttress.log import configure_logging, get_logger
from buttress.policies import Pipeline, retry
from buttress.ratelimit import Rate, RateLimiter

__all__ = ["AsyncPortal", "Inventory", "Services", "Settings", "create_app", "services_of"]

INVENTORY_API_KEY = Setting[str]("inventory_api_key", sensitive=True)
DISCOUNT_FLAG = "bulk-discount"
EXTENSION = "buttress_example"

T = TypeVar("T")
_log = get_logger("example.flask")


@attrs.frozen
class Settings:
    """What the service reads from its environment (``from_env``)."""

    dsn: str = "sqlite:///example.db"
    environment: str = "development"
    version: str = "0.1.0"
    # Only used to seed the ConfigStore on first start; never printed.
    inventory_api_key: str | None = attrs.field(default=None, repr=False)
    rate_limit: int = 60
    rate_period: float = 60.0
    retry_delay: float = 0.05
    drain_seconds: float = 0.0
    flags_refresh: float = 5.0  # 0: no polling (one process sees its own changes at once)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        default = cls()
        return cls(
            dsn=environ.get("BUTTRESS_DSN", default.dsn),
            environment=environ.get("APP_ENV", default.environment),
            version=environ.get("APP_VERSION", default.version),
            inventory_api_key=environ.get("INVENTORY_API_KEY") or None,
            rate_limit=int(environ.get("RATE_LIMIT", default.rate_limit)),
            rate_period=float(environ.get("RATE_PERIOD", default.rate_period)),
            retry_delay=float(environ.get("RETRY_DELAY", default.retry_delay)),
            drain_seconds=float(environ.get("SHUTDOWN_DRAIN_SECONDS", default.drain_seconds)),
            flags_refresh=float(environ.get("FLAGS_REFRESH_SECONDS", default.flags_refresh)),
        )


class AsyncPortal:
    """One event loop in a daemon thread that owns the async buttress objects.

    Flask views are sync; the backend, ``ConfigStore``, ``FeatureFlags`` and
    ``DeploymentLog`` are async and must stay on one loop, so every call goes here.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="example-portal", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[object, object, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


class Inventory:
    """Stands in for a remote inventory API; tests make it fail with ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.expected_key: str | None = None

    def price(self, sku: str, api_key: str) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionError("inventory service unreachable")
        if self.expected_key is not None and api_key != self.expected_key:
            raise PermissionError("inventory refused the API key")
        return 100 + sum(map(ord, sku)) % 50


@attrs.define
class Services:
    """Everything built at start-up; views reach it with ``services_of(app)``."""

    settings: Settings
    portal: AsyncPortal
    backend: Backend
    config: ConfigStore
    flags: FeatureFlags
    deployments: DeploymentLog
    health: HealthRegistry
    breaker: CircuitBreaker
    policy: Pipeline
    inventory: Inventory
    api_key: str = attrs.field(repr=False)
    shutdown: GracefulShutdown

    def close(self, reason: str = "requested") -> ShutdownReport:
        """Run the graceful shutdown (readiness off, then the hooks), then stop the portal."""
        try:
            return self.shutdown.run_sync(reason)
        finally:
            self.portal.close()


async def _open(
    settings: Settings, environ: Mapping[str, str], clock: Clock
) -> tuple[Backend, ConfigStore, FeatureFlags, DeploymentLog, str]:
    # Undo what was opened if a later step fails (e.g. the validator refuses to start).
    async with AsyncExitStack() as undo:
        backend = await connect(settings.dsn)  # applies buttress's own migrations
        undo.push_async_callback(backend.close)
        config = ConfigStore(backend, environment=settings.environment, clock=clock)
        if settings.inventory_api_key is not None:
            # Normally set once by an operator (`buttress config set ... --sensitive`).
            await config.set(
                INVENTORY_API_KEY.key,
                settings.inventory_api_key,
                sensitive=True,
                updated_by="example-startup",
                environment=settings.environment,
            )
        report = await StartupValidator(
            backend=backend,
            required_env=[EnvVar("BUTTRESS_DSN", "str"), EnvVar("APP_VERSION", "str")],
            required_tables=["buttress_config", "buttress_flags", "buttress_deployments"],
            config=config,
            required_config=[INVENTORY_API_KEY.key],
            environ=environ,
        ).enforce()
        _log.info("example.startup_validated", checks=len(report.checks))

        # Polling picks up changes made by other processes (other workers, the CLI).
        flags = FeatureFlags(backend, clock=clock, refresh_interval=settings.flags_refresh or None)
        await flags.start()
        undo.push_async_callback(flags.stop)
        if await flags.get(DISCOUNT_FLAG) is None:
            await flags.upsert(
                Flag(DISCOUNT_FLAG, "Bulk discount", description="10% off every quote"),
                updated_by="example-startup",
            )

        deployments = DeploymentLog(backend, clock=clock)
        # A restart of the same version is not a new deployment.
        if await deployments.current_version(settings.environment) != settings.version:
            await deployments.record(
                settings.version, settings.environment, deployed_by="example-startup"
            )
        api_key = await config.read(INVENTORY_API_KEY)
        undo.pop_all()  # started: from now on the graceful shutdown closes them
    return backend, config, flags, deployments, api_key


def create_app(
    environ: Mapping[str, str] | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    inventory: Inventory | None = None,
) -> Flask:
    """Start the service: connect, validate, record the deployment, wire the routes.

    ``environ`` defaults to ``os.environ``. Raises ``StartupError`` listing every
    problem when the service cannot run.
    """
    settings = Settings.from_env(os.environ if environ is None else environ)
    portal = AsyncPortal()
    try:
        backend, config, flags, deployments, api_key = portal.call(
            _open(settings, os.environ if environ is None else environ, clock)
        )
    except BaseException:
        portal.close()
        raise

    breaker = CircuitBreaker("inventory", failure_threshold=3, recovery_timeout=30.0, clock=clock)
    # Retry outside the breaker: each attempt counts, and an open circuit stops retrying.
    policy = (
        retry(attempts=2, base_delay=settings.retry_delay, retry_on=ConnectionError, clock=clock)
        >> breaker
    )

    health = HealthRegistry(version=settings.version, default_timeout=3.0, clock=clock)

    def database() -> None:
        portal.call(backend.ping(), timeout=10.0)  # the backend lives on the portal's loop

    health.register("database", database)
    health.register("inventory", breaker_states([breaker]), critical=False)

    app = Flask(__name__)
    # On the SQLite file, every worker process of this machine shares one budget per client.
    limiter = RateLimiter(
        Rate(settings.rate_limit, settings.rate_period), backend=backend, clock=clock
    )
    limited = WSGIRateLimitMiddleware(app.wsgi_app, limiter)
    # Health is outermost, so probes never spend (or wait for) the rate limit.
    health_app = HealthWSGIApp(health, app=limited)
    app.wsgi_app = health_app  # type: ignore[method-assign]  # documented Flask middleware hook

    shutdown = GracefulShutdown(
        timeout=10.0, health=health, deregistration_delay=settings.drain_seconds, clock=clock
    )
    # Sync hooks (run in threads) hand the async work to the portal's loop.
    shutdown.add_hook(lambda: portal.call(backend.close()), name="database")  # runs last
    shutdown.add_hook(lambda: portal.call(flags.stop()), name="flags")
    shutdown.add_hook(health_app.close, name="health")
    outbound = inventory if inventory is not None else Inventory()
    app.extensions[EXTENSION] = Services(
        settings=settings,
        portal=portal,
        backend=backend,
        config=config,
        flags=flags,
        deployments=deployments,
        health=health,
        breaker=breaker,
        policy=policy,
        inventory=outbound,
        api_key=api_key,
        shutdown=shutdown,
    )
    _routes(app)
    return app


def services_of(app: Flask) -> Services:
    services: Services = app.extensions[EXTENSION]
    return services


def _routes(app: Flask) -> None:
    @app.get("/quote/<sku>")
    def quote(sku: str) -> Response | tuple[Response, int]:
        services = services_of(app)
        if services.portal.call(services.config.is_maintenance_mode()):
            return _unavailable("down for maintenance", retry_after=60)
        try:
            price = services.policy.call(services.inventory.price, sku, services.api_key)
        except CircuitOpenError as exc:
            return _unavailable("inventory is unavailable; try again later", exc.retry_after)
        except ConnectionError:
            body = responses.error("UPSTREAM_FAILED", "the inventory service did not answer")
            return jsonify(body), 502
        context = FlagContext(user_id=request.headers.get("X-User-Id"))
        discounted = services.flags.is_enabled(DISCOUNT_FLAG, context)
        if discounted:
            price = math.floor(price * 0.9)
        _log.info("example.quote", sku=sku, price=price, discounted=discounted)
        return jsonify(responses.success({"sku": sku, "price": price, "discounted": discounted}))

    @app.put("/admin/flags/<key>")
    def set_flag(key: str) -> Response | tuple[Response, int]:
        services = services_of(app)
        enabled = request.args.get("enabled", "").lower() in ("1", "true", "yes", "on")
        if services.portal.call(services.flags.get(key)) is None:
            return jsonify(responses.not_found(f"flag {key!r}")), 404
        flag = services.portal.call(
            services.flags.update(key, enabled=enabled, updated_by="admin-api")
        )
        return jsonify(responses.success({"key": flag.key, "enabled": flag.enabled}))

    @app.get("/admin/config")
    def list_config() -> Response:
        services = services_of(app)
        entries = services.portal.call(
            services.config.list(environment=services.settings.environment)
        )
        # list() masks sensitive values, so the secret shows as "***".
        listing = [
            {"key": e.key, "value": e.value, "environment": e.environment, "sensitive": e.sensitive}
            for e in entries
        ]
        return jsonify(responses.success(listing))

    @app.get("/admin/deployment")
    def current_deployment() -> Response | tuple[Response, int]:
        services = services_of(app)
        latest = services.portal.call(services.deployments.latest(services.settings.environment))
        if latest is None:
            return jsonify(responses.not_found("deployment")), 404
        return jsonify(
            responses.success(
                {"id": latest.id, "version": latest.version, "environment": latest.environment}
            )
        )


def _unavailable(message: str, retry_after: float) -> tuple[Response, int]:
    seconds = max(1, math.ceil(retry_after))
    response = jsonify(responses.unavailable(message, retry_after=seconds))
    response.headers["Retry-After"] = str(seconds)
    return response, 503


def main() -> None:
    """``python -m flask_app.app``: Flask's development server with graceful shutdown."""
    configure_logging(json=os.environ.get("LOG_JSON") == "1")
    app = create_app()
    services = services_of(app)
    # SIGTERM/SIGINT: readiness off, drain, hooks in order, then exit 0.
    services.shutdown.install_signal_handlers()
    app.run(port=int(os.environ.get("PORT", "5000")))


if __name__ == "__main__":
    main()
