"""ASGI and WSGI health endpoints, through real framework test clients."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from buttress.adapters._health_routes import ALL, resolve
from buttress.adapters.health_asgi import HealthASGIApp
from buttress.adapters.health_wsgi import HealthWSGIApp, StartResponse, WSGIEnvironment
from buttress.errors import ValidationError
from buttress.health import ComponentStatus, HealthRegistry
from test_health_registry import GatedCheck

starlette = pytest.importorskip("starlette")

from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse, Response  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402

with warnings.catch_warnings():
    # starlette nudges towards another HTTP client; httpx is what it runs on today.
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient


def make_registry() -> HealthRegistry:
    registry = HealthRegistry(version="3.1.0")

    async def process() -> bool:
        return True

    async def database() -> ComponentStatus:
        return ComponentStatus.healthy()

    registry.register("process", process, groups=("live",))
    registry.register("db", database)
    return registry


def test_resolve_paths() -> None:
    registry = make_registry()
    assert resolve(registry, "/health", "/health") is ALL
    assert resolve(registry, "/health", "/health/") is ALL
    assert resolve(registry, "/health", "/health/live") == "live"
    assert resolve(registry, "/health", "/health/ready/") == "ready"
    assert resolve(registry, "/health", "/health/nope") is None
    assert resolve(registry, "/health", "/healthz") is None
    assert resolve(registry, "/health", "/other") is None
    assert resolve(registry, "/health", "/ready", root_path="/health") == "ready"
    assert resolve(registry, "/health", "/health", root_path="/health") is ALL
    assert resolve(registry, "/health", "/api/health/live", root_path="/api/health") == "live"
    registry.register("search", lambda: True, groups=("search",))
    assert resolve(registry, "/health", "/health/search") == "search"


def test_starlette_app_wrapped() -> None:
    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("home")

    registry = make_registry()
    inner = Starlette(routes=[Route("/", home)])
    with TestClient(HealthASGIApp(registry, app=inner)) as client:
        assert client.get("/").text == "home"
        response = client.get("/health")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/health+json"
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["status"] == "pass"
        assert body["version"] == "3.1.0"
        assert set(body["checks"]) == {"process:responseTime", "db:responseTime"}
        assert set(client.get("/health/live").json()["checks"]) == {"process:responseTime"}
        assert set(client.get("/health/ready").json()["checks"]) == {"db:responseTime"}
        registry.set_ready(False, reason="draining")
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "fail"
        assert ready.json()["checks"]["readiness:responseTime"][0]["output"] == "draining"
        assert client.get("/health/live").status_code == 200
        assert client.head("/health/live").content == b""
        assert client.post("/health").status_code == 405


def test_litestar_app_wrapped_and_mounted() -> None:
    from litestar import Litestar, asgi, get
    from litestar.testing import TestClient as LitestarClient

    @get("/")
    async def home() -> str:
        return "home"

    started: list[str] = []
    registry = make_registry()
    wrapped = HealthASGIApp(
        registry, app=Litestar(route_handlers=[home], on_startup=[lambda: started.append("up")])
    )
    with LitestarClient(app=wrapped) as client:
        assert started == ["up"]  # the lifespan reached Litestar through HealthASGIApp
        assert client.get("/").text == "home"
        assert client.get("/health").json()["status"] == "pass"
        assert set(client.get("/health/live").json()["checks"]) == {"process:responseTime"}

    # Mounted as a raw ASGI route inside Litestar (root_path is the mount path).
    mounted = asgi("/health", is_mount=True, copy_scope=True)(HealthASGIApp(registry))
    with LitestarClient(app=Litestar(route_handlers=[home, mounted])) as mounted_client:
        assert mounted_client.get("/health").json()["status"] == "pass"
        assert set(mounted_client.get("/health/live").json()["checks"]) == {"process:responseTime"}
        assert mounted_client.get("/health/nope").status_code == 404


def test_starlette_mount_alone_redirects_the_exact_path() -> None:
    # Why the docs pair the Mount with a Route: a Mount only matches "/health/...".
    registry = make_registry()
    app = Starlette(routes=[Mount("/health", app=HealthASGIApp(registry))])
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/health").status_code == 307
        assert client.get("/health/live").status_code == 200


async def _metrics(request: object) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _exact_paths_answer(client: TestClient) -> None:
    """What docs/health.md and docs/metrics.md promise, with no redirect followed."""
    for path in ("/health", "/health/", "/health/live", "/health/ready"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/health+json", path
    assert client.get("/health").json()["status"] == "pass"
    assert set(client.get("/health/live").json()["checks"]) == {"process:responseTime"}
    assert client.head("/health").status_code == 200
    assert client.post("/health").status_code == 405
    assert client.get("/healthz").status_code == 404
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")


def test_starlette_route_and_mount_answer_the_exact_path() -> None:
    health = HealthASGIApp(make_registry())
    app = Starlette(
        routes=[Route("/health", health), Mount("/health", health), Route("/metrics", _metrics)]
    )
    with TestClient(app, follow_redirects=False) as client:
        _exact_paths_answer(client)


def test_fastapi_route_and_mount_answer_the_exact_path() -> None:
    from fastapi import FastAPI

    health = HealthASGIApp(make_registry())
    app = FastAPI()
    app.router.routes.append(Route("/health", health))
    app.mount("/health", health)
    app.add_route("/metrics", _metrics, include_in_schema=False)
    with TestClient(app, follow_redirects=False) as client:
        _exact_paths_answer(client)


def test_standalone_asgi_app_answers_404_and_lifespan() -> None:
    registry = make_registry()

    async def broken() -> None:
        raise RuntimeError("down")

    registry.register("queue", broken)
    with TestClient(HealthASGIApp(registry)) as client:
        assert client.get("/elsewhere").status_code == 404
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["output"] == "not healthy: queue"


def test_asgi_probe_serves_snapshot_at_once_with_refresher() -> None:
    registry = HealthRegistry()
    check = GatedCheck()
    registry.register("gated", check, timeout=30)
    app = Starlette(
        routes=[Mount("/health", app=HealthASGIApp(registry))],
        lifespan=_lifespan(registry),
    )
    with TestClient(app) as client:
        try:
            check.wait_until_blocked()  # the first refresh finished; the next is stuck
            response = client.get("/health")
            assert check.finished == 1, "the probe waited for the stuck check"
            assert response.status_code == 200
            assert response.json()["status"] == "pass"
        finally:
            check.gate.set()


def _lifespan(
    registry: HealthRegistry,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        registry.start_refresher(interval=0.02)
        yield
        await registry.stop_refresher()

    return lifespan


def test_bad_path_is_refused() -> None:
    with pytest.raises(ValidationError, match="path"):
        HealthASGIApp(make_registry(), path="health")
    with pytest.raises(ValidationError, match="path"):
        HealthWSGIApp(make_registry(), path="/health/")


def _call(
    app: HealthWSGIApp, path: str, method: str = "GET", script_name: str = ""
) -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, object] = {}

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> object:
        captured["status"] = status
        captured["headers"] = dict(headers)
        return lambda data: None

    environ: WSGIEnvironment = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": script_name,
        "wsgi.input": io.BytesIO(b""),
    }
    body = b"".join(app(environ, start_response))  # type: ignore[arg-type]  # plain function
    return str(captured["status"]), captured["headers"], body  # type: ignore[return-value]


def test_plain_wsgi_call() -> None:
    registry = make_registry()
    app = HealthWSGIApp(registry)
    try:
        status, headers, body = _call(app, "/health")
        assert status == "200 OK"
        assert headers["content-type"] == "application/health+json"
        assert json.loads(body)["status"] == "pass"
        assert _call(app, "/health/live")[0] == "200 OK"
        assert _call(app, "/ready", script_name="/health")[0] == "200 OK"
        assert _call(app, "/nothing")[0] == "404 Not Found"
        assert _call(app, "/health", method="DELETE")[0] == "405 Method Not Allowed"
        assert _call(app, "/health", method="HEAD")[2] == b""
        registry.set_ready(False)
        status, _, body = _call(app, "/health/ready")
        assert status == "503 Service Unavailable"
        assert json.loads(body)["status"] == "fail"
        assert app.report("live").status.value == "healthy"
    finally:
        app.close()


def test_flask_test_client() -> None:
    flask = pytest.importorskip("flask")
    inner = flask.Flask("inner")

    def home() -> str:
        return "home"

    inner.add_url_rule("/", view_func=home)

    registry = make_registry()
    app = HealthWSGIApp(registry, app=inner.wsgi_app)
    inner.wsgi_app = app  # the usual WSGI middleware pattern
    try:
        client = inner.test_client()
        assert client.get("/").text == "home"
        response = client.get("/health/ready")
        assert response.status_code == 200
        assert response.mimetype == "application/health+json"
        assert response.get_json()["status"] == "pass"
        registry.set_ready(False)
        assert client.get("/health/ready").status_code == 503
        assert client.get("/health/live").status_code == 200
    finally:
        app.close()


def test_wsgi_refresher_and_concurrent_requests_share_runs() -> None:
    registry = HealthRegistry()
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)

    registry.register("c", counted)
    app = HealthWSGIApp(registry)
    try:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: _call(app, "/health")[0], range(4)))
        assert statuses == ["200 OK"] * 4
        assert calls < 4  # requests in flight together shared executions
    finally:
        app.close()

    gated_registry = HealthRegistry()
    check = GatedCheck()
    gated_registry.register("gated", check, timeout=30)
    refreshed = HealthWSGIApp(gated_registry, refresh_interval=0.01)
    try:
        check.wait_until_blocked()  # the first refresh finished; the next is stuck
        assert _call(refreshed, "/health")[0] == "200 OK"
        assert check.finished == 1, "the probe waited for the stuck check"
    finally:
        check.gate.set()
        refreshed.close()


def test_wsgi_request_timeout_answers_503() -> None:
    registry = HealthRegistry()

    async def slow() -> None:
        await asyncio.sleep(0.2)

    registry.register("slow", slow, timeout=1)
    app = HealthWSGIApp(registry, request_timeout=0.05)
    try:
        status, _, body = _call(app, "/health")
        assert status == "503 Service Unavailable"
        assert json.loads(body)["output"] == "health report timed out"
    finally:
        time.sleep(0.2)
        app.close()


def _unused(_: Iterable[bytes], __: StartResponse) -> None:
    """Keeps the public WSGI aliases imported for type checking."""
