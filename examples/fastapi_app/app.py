"""A small FastAPI service wired with every buttress module.

``GET /quote/{sku}`` prices an item through a flaky inventory service behind a
retry policy and a circuit breaker; the rest shows rate limiting, health
endpoints, feature flags, a secret kept in ``ConfigStore``, the deployment
record, start-up validation and graceful shutdown. Run: ``uvicorn fastapi_app.app:app``.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from starlette.routing import Route

from buttress import connect, responses
from buttress.adapters.asgi_ratelimit import ASGIRateLimitMiddleware
from buttress.adapters.health_asgi import HealthASGIApp
from buttress.backends import Backend
from buttress.breaker import CircuitBreaker, CircuitOpenError
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import ConfigStore, Setting
from buttress.deploy import DeploymentLog
from buttress.flags import FeatureFlags, Flag, FlagContext
from buttress.health import HealthRegistry
from buttress.health.builtin import backend_ping, breaker_states
from buttress.lifecycle import EnvVar, GracefulShutdown, ShutdownReport, StartupValidator
from buttress.log import configure_logging, get_logger
from buttress.policies import Pipeline, retry
from buttress.ratelimit import Rate, RateLimiter

__all__ = ["Inventory", "Services", "Settings", "create_app"]

INVENTORY_API_KEY = Setting[str]("inventory_api_key", sensitive=True)
DISCOUNT_FLAG = "bulk-discount"

_log = get_logger("example.fastapi")


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


class Inventory:
    """Stands in for a remote inventory API; tests make it fail with ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.expected_key: str | None = None

    async def price(self, sku: str, api_key: str) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionError("inventory service unreachable")
        if self.expected_key is not None and api_key != self.expected_key:
            raise PermissionError("inventory refused the API key")
        return 100 + sum(map(ord, sku)) % 50


@attrs.define
class Services:
    """Everything built at start-up; request handlers reach it via ``app.state``."""

    settings: Settings
    backend: Backend
    config: ConfigStore
    flags: FeatureFlags
    deployments: DeploymentLog
    breaker: CircuitBreaker
    policy: Pipeline
    inventory: Inventory
    api_key: str = attrs.field(repr=False)
    shutdown: GracefulShutdown


async def _start(
    settings: Settings,
    environ: Mapping[str, str],
    health: HealthRegistry,
    inventory: Inventory,
    clock: Clock,
) -> Services:
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
            required_tables=[
                "buttress_config",
                "buttress_flags",
                "buttress_deployments",
                "buttress_rate_limits",
            ],
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

        breaker = CircuitBreaker(
            "inventory", failure_threshold=3, recovery_timeout=30.0, clock=clock
        )
        # Retry outside the breaker: each attempt counts, and an open circuit stops retrying.
        policy = (
            retry(
                attempts=2, base_delay=settings.retry_delay, retry_on=ConnectionError, clock=clock
            )
            >> breaker
        )
        health.register("database", backend_ping(backend))
        health.register("inventory", breaker_states([breaker]), critical=False)

        shutdown = GracefulShutdown(
            timeout=10.0, health=health, deregistration_delay=settings.drain_seconds, clock=clock
        )
        shutdown.add_hook(backend.close, name="database")  # registered first, runs last
        shutdown.add_hook(flags.stop, name="flags")
        api_key = await config.read(INVENTORY_API_KEY)
        undo.pop_all()  # started: from now on the graceful shutdown closes them
    return Services(
        settings=settings,
        backend=backend,
        config=config,
        flags=flags,
        deployments=deployments,
        breaker=breaker,
        policy=policy,
        inventory=inventory,
        api_key=api_key,
        shutdown=shutdown,
    )


def create_app(
    environ: Mapping[str, str] | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    inventory: Inventory | None = None,
) -> FastAPI:
    """Build the service from ``environ`` (default ``os.environ``).

    The lifespan connects, validates (``StartupError`` lists every problem),
    records the deployment and, on the way out, runs the graceful shutdown.
    """
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    health = HealthRegistry(version=settings.version, default_timeout=3.0, clock=clock)
    outbound = inventory if inventory is not None else Inventory()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await _start(settings, env, health, outbound, clock)
        app.state.services = services
        yield
        report = await services.shutdown.run("lifespan shutdown")
        app.state.shutdown_report = report

    app = FastAPI(title="buttress example", version=settings.version, lifespan=lifespan)
    app.state.health = health

    def shared_limiter() -> RateLimiter:
        # Called by the middleware once the lifespan has opened the database, so
        # every worker and instance on this DSN draws from one budget per client.
        services: Services = app.state.services
        rate = Rate(settings.rate_limit, settings.rate_period)
        return RateLimiter(rate, backend=services.backend, clock=clock, prefix="example")

    app.add_middleware(
        ASGIRateLimitMiddleware, limiter=shared_limiter, exempt=["/health", "/health/*"]
    )
    # A mount alone answers GET /health with a 307 to /health/ (probes do not
    # follow it): a route for the exact path, then the mount for /health/live...
    health_app = HealthASGIApp(health)
    app.router.routes.append(Route("/health", health_app))
    app.mount("/health", health_app)

    @app.get("/quote/{sku}")
    async def quote(
        sku: str, request: Request, x_user_id: str | None = Header(default=None)
    ) -> JSONResponse:
        services: Services = request.app.state.services
        if await services.config.is_maintenance_mode():
            return _unavailable("down for maintenance", retry_after=60)
        try:
            price = await services.policy.acall(services.inventory.price, sku, services.api_key)
        except CircuitOpenError as exc:
            return _unavailable("inventory is unavailable; try again later", exc.retry_after)
        except ConnectionError:
            body = responses.error("UPSTREAM_FAILED", "the inventory service did not answer")
            return JSONResponse(body, status_code=502)
        discounted = services.flags.is_enabled(DISCOUNT_FLAG, FlagContext(user_id=x_user_id))
        if discounted:
            price = math.floor(price * 0.9)
        _log.info("example.quote", sku=sku, price=price, discounted=discounted)
        return JSONResponse(
            responses.success({"sku": sku, "price": price, "discounted": discounted})
        )

    @app.put("/admin/flags/{key}")
    async def set_flag(key: str, enabled: bool, request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        if await services.flags.get(key) is None:
            return JSONResponse(responses.not_found(f"flag {key!r}"), status_code=404)
        flag = await services.flags.update(key, enabled=enabled, updated_by="admin-api")
        return JSONResponse(responses.success({"key": flag.key, "enabled": flag.enabled}))

    @app.get("/admin/config")
    async def list_config(request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        entries = await services.config.list(environment=services.settings.environment)
        # list() masks sensitive values, so the secret shows as "***".
        listing = [
            {"key": e.key, "value": e.value, "environment": e.environment, "sensitive": e.sensitive}
            for e in entries
        ]
        return JSONResponse(responses.success(listing))

    @app.get("/admin/deployment")
    async def current_deployment(request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        latest = await services.deployments.latest(services.settings.environment)
        if latest is None:
            return JSONResponse(responses.not_found("deployment"), status_code=404)
        return JSONResponse(
            responses.success(
                {"id": latest.id, "version": latest.version, "environment": latest.environment}
            )
        )

    return app


def _unavailable(message: str, retry_after: float) -> JSONResponse:
    seconds = max(1, math.ceil(retry_after))
    return JSONResponse(
        responses.unavailable(message, retry_after=seconds),
        status_code=503,
        headers={"Retry-After": str(seconds)},
    )


def shutdown_report(app: FastAPI) -> ShutdownReport | None:
    """The report of the last graceful shutdown, once the app has stopped."""
    report: ShutdownReport | None = getattr(app.state, "shutdown_report", None)
    return report


def _served_app() -> FastAPI:
    """The app ``uvicorn fastapi_app.app:app`` serves, configured from the environment."""
    configure_logging(json=os.environ.get("LOG_JSON") == "1")
    return create_app()


app = _served_app()
