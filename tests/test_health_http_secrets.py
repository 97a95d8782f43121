"""GET /health over real HTTP never publishes a secret (issue #18 item 1).

The ASGI endpoint is served by uvicorn and the WSGI one by ``wsgiref`` on a
real socket; requests go through ``http.client``, which follows no redirect.
The checks fail the way real ones do: an exception whose text names the
internal host and port, a sensitive config value and ``db_password=...``, or a
status message a check author built from a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from buttress.adapters.health_asgi import HealthASGIApp
from buttress.adapters.health_wsgi import HealthWSGIApp
from buttress.config import ConfigStore
from buttress.health import ComponentStatus, HealthRegistry
from buttress.log import clear_secrets

CONFIG_SECRET = "Zq9-config-api-key-4711"
INTERNAL = "db.internal.example:5432"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.Zq9payload.sig"
NEVER_SHOWN = (CONFIG_SECRET, "hunter2", INTERNAL, TOKEN)


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


def leaky_registry(*, expose_details: bool = False) -> HealthRegistry:
    """Checks that fail with secrets in their text, the config value read from a store."""
    config = ConfigStore()

    async def seed() -> None:
        await config.set("payments_api_key", CONFIG_SECRET, sensitive=True)

    asyncio.run(seed())
    registry = HealthRegistry(version="1.0.0", expose_details=expose_details)

    async def database() -> None:
        key = await config.get("payments_api_key")
        raise ConnectionError(
            f"could not connect to {INTERNAL} as app (db_password=hunter2, "
            f"{{'password': 'hunter2', 'api_key': '{key}'}}); "
            f"Authorization: Bearer {TOKEN}"
        )

    async def payments() -> ComponentStatus:
        key = await config.get("payments_api_key")
        return ComponentStatus.unhealthy(f"provider refused key {key}")

    registry.register("db", database)
    registry.register("payments", payments)
    registry.register("process", lambda: True, groups=("live",))
    return registry


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@contextlib.contextmanager
def served_asgi(app: object) -> Iterator[int]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def served_wsgi(app: HealthWSGIApp) -> Iterator[int]:
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def assert_clean(body: str) -> None:
    for secret in NEVER_SHOWN:
        assert secret not in body, secret


def test_asgi_health_over_http_publishes_no_secret() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route

    health = HealthASGIApp(leaky_registry())
    app = Starlette(routes=[Route("/health", health), Mount("/health", health)])
    with served_asgi(app) as port:
        status, body = get(port, "/health")
        assert status == 503
        assert '"raised ConnectionError"' in body
        assert "not healthy: db, payments" in body
        assert_clean(body)
        status, body = get(port, "/health/ready")
        assert status == 503
        assert_clean(body)
        assert get(port, "/health/live")[0] == 200


def test_wsgi_health_over_http_publishes_no_secret() -> None:
    app = HealthWSGIApp(leaky_registry())
    try:
        with served_wsgi(app) as port:
            status, body = get(port, "/health")
            assert status == 503
            assert '"raised ConnectionError"' in body
            assert_clean(body)
            assert get(port, "/health/live")[0] == 200
    finally:
        app.close()


def test_opted_in_details_still_go_through_the_redactor() -> None:
    health = HealthASGIApp(leaky_registry(expose_details=True))
    with served_asgi(health) as port:
        status, body = get(port, "/health")
    assert status == 503
    assert "ConnectionError: could not connect to" in body  # the detail asked for
    assert "db_password=***" in body
    assert "Bearer ***" in body
    for secret in (CONFIG_SECRET, "hunter2", TOKEN):
        assert secret not in body, secret
