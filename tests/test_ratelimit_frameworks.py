"""The rate-limit middleware inside FastAPI, Litestar and Django, through each
framework's own test client (Starlette and Flask are in test_ratelimit_middleware):
headers on admitted responses, the 429 envelope, exempt paths, request bodies,
and (ASGI) the lifespan reaching the app. Under mypy --strict this module also
checks that the middleware's types fit Litestar's (DefineMiddleware, wrapping a
Litestar app, Litestar's TestClient)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from fastapi import FastAPI, HTTPException
from litestar import Litestar, get, post
from litestar.middleware import DefineMiddleware
from litestar.params import JSONBody
from litestar.testing import TestClient as LitestarClient
from pydantic import BaseModel
from werkzeug.test import Client as WSGIClient

from buttress.adapters.asgi_ratelimit import ASGIRateLimitMiddleware
from buttress.adapters.wsgi_ratelimit import WSGIRateLimitMiddleware
from buttress.ratelimit import RateLimiter
from test_ratelimit_middleware import assert_refusal, limiter

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2; the httpx-based client still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient as FastAPIClient


def lower(headers: Any) -> dict[str, str]:
    """A response's headers as a plain dict with lower-case names."""
    return {str(k).lower(): str(v) for k, v in headers.items()}


# --- FastAPI --------------------------------------------------------------------------


class Item(BaseModel):
    name: str
    quantity: int


def fastapi_app(rl: RateLimiter | None = None, **options: Any) -> FastAPI:
    """A FastAPI app limited by ``rl``, or, without one, by a limiter its lifespan
    makes ready (``app.state.events`` records start-up, factory and shutdown)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.events.append("startup")
        app.state.limiter = limiter()
        yield
        app.state.events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.state.events = []

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404, detail="no such thing")

    def from_lifespan() -> RateLimiter:
        app.state.events.append("factory")
        built: RateLimiter = app.state.limiter  # absent until the lifespan has run
        return built

    app.add_middleware(ASGIRateLimitMiddleware, limiter=rl or from_lifespan, **options)
    return app


def test_fastapi_limits_and_answers_429() -> None:
    client = FastAPIClient(fastapi_app(limiter(per=60.0), key=lambda scope: "one"))
    first = client.get("/")
    assert first.status_code == 200
    assert first.json() == {"hello": "world"}
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert first.headers["RateLimit-Policy"] == '"default";q=2;w=60'
    assert first.headers["RateLimit"] == '"default";r=1;t=30'
    assert "retry-after" not in first.headers
    assert client.get("/").status_code == 200
    refused = client.get("/")
    assert_refusal(refused.status_code, lower(refused.headers), refused.json())


def test_fastapi_request_body_reaches_the_app() -> None:
    client = FastAPIClient(fastapi_app(limiter(limit=3)))
    created = client.post("/items", json={"name": "bolt", "quantity": 4})
    assert created.status_code == 200
    assert created.json() == {"name": "bolt", "quantity": 4}
    assert created.headers["x-ratelimit-remaining"] == "2"
    # FastAPI's validation error (422) is still a counted, annotated response.
    invalid = client.post("/items", json={"name": "bolt"})
    assert invalid.status_code == 422
    assert invalid.headers["x-ratelimit-remaining"] == "1"


def test_fastapi_exception_responses_carry_the_headers() -> None:
    client = FastAPIClient(fastapi_app(limiter()))
    missing = client.get("/missing")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no such thing"}
    assert missing.headers["x-ratelimit-remaining"] == "1"


def test_fastapi_exempt_paths() -> None:
    client = FastAPIClient(fastapi_app(limiter(limit=1), exempt=["/health", "/docs*"]))
    for _ in range(3):
        health = client.get("/health")
        assert health.status_code == 200
        assert "x-ratelimit-limit" not in health.headers
        assert client.get("/docs").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429


def test_fastapi_lifespan_runs_through_the_middleware() -> None:
    rl = limiter(limit=1)
    app = fastapi_app(rl)
    with FastAPIClient(app) as client:
        assert app.state.events == ["startup"]
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 429
    assert app.state.events == ["startup", "shutdown"]


def test_fastapi_limiter_factory_is_built_after_startup() -> None:
    app = fastapi_app(key=lambda scope: "one")
    with FastAPIClient(app) as client:
        # The factory read what the lifespan made, before any request.
        assert app.state.events == ["startup", "factory"]
        assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    assert app.state.events == ["startup", "factory", "shutdown"]


# --- Litestar -------------------------------------------------------------------------


@get("/", sync_to_thread=False)
def litestar_index() -> dict[str, str]:
    return {"hello": "world"}


@get("/health", sync_to_thread=False)
def litestar_health() -> str:
    return "ok"


@post("/echo", sync_to_thread=False)
def litestar_echo(data: JSONBody[dict[str, int]]) -> dict[str, int]:
    return data


LITESTAR_ROUTES = [litestar_index, litestar_health, litestar_echo]


def litestar_app(rl: RateLimiter, events: list[str], **options: Any) -> Litestar:
    """Litestar's own way: ``middleware=[DefineMiddleware(...)]`` (Litestar builds
    it around each route handler)."""
    return Litestar(
        route_handlers=LITESTAR_ROUTES,
        middleware=[DefineMiddleware(ASGIRateLimitMiddleware, limiter=rl, **options)],
        on_startup=[lambda: events.append("startup")],
        on_shutdown=[lambda: events.append("shutdown")],
    )


def test_litestar_limits_and_answers_429() -> None:
    with LitestarClient(app=litestar_app(limiter(per=60.0), [])) as client:
        first = client.get("/")
        assert first.status_code == 200
        assert first.json() == {"hello": "world"}
        assert first.headers["X-RateLimit-Remaining"] == "1"
        assert first.headers["RateLimit"] == '"default";r=1;t=30'
        assert client.get("/").status_code == 200
        refused = client.get("/")
        assert_refusal(refused.status_code, lower(refused.headers), refused.json())


def test_litestar_routes_share_one_limiter_and_bodies_pass() -> None:
    # One middleware instance per route handler, all drawing from the one limiter.
    with LitestarClient(app=litestar_app(limiter(limit=3), [])) as client:
        echoed = client.post("/echo", json={"a": 1})
        assert echoed.status_code == 201
        assert echoed.json() == {"a": 1}
        assert echoed.headers["x-ratelimit-remaining"] == "2"
        assert client.get("/").headers["x-ratelimit-remaining"] == "1"
        assert client.post("/echo", json={"b": 2}).status_code == 201
        assert client.post("/echo", json={"c": 3}).status_code == 429


def test_litestar_exempt_paths() -> None:
    with LitestarClient(app=litestar_app(limiter(limit=1), [], exempt=["/health"])) as client:
        for _ in range(3):
            health = client.get("/health")
            assert health.status_code == 200
            assert "x-ratelimit-limit" not in health.headers
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 429


def test_litestar_startup_and_shutdown_hooks_run() -> None:
    events: list[str] = []
    with LitestarClient(app=litestar_app(limiter(), events)) as client:
        assert events == ["startup"]
        assert client.get("/").status_code == 200
    assert events == ["startup", "shutdown"]


def test_litestar_whole_app_wrapped_with_a_limiter_factory() -> None:
    """Wrapped around the whole app, the middleware sees the lifespan (the factory
    runs after Litestar's start-up hooks) and every path, unknown ones too."""
    events: list[str] = []
    made: list[RateLimiter] = []

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        made.append(limiter())
        events.append("startup")
        yield
        events.append("shutdown")

    def factory() -> RateLimiter:
        events.append("factory")
        return made[-1]  # an IndexError before the start-up

    app = ASGIRateLimitMiddleware(
        Litestar(route_handlers=LITESTAR_ROUTES, lifespan=[lifespan]), limiter=factory
    )
    with LitestarClient(app=app) as client:
        assert events == ["startup", "factory"]
        assert app.limiter is made[0]
        assert client.get("/nowhere").status_code == 404
        assert client.get("/").headers["x-ratelimit-remaining"] == "0"
        refused = client.get("/")
        assert_refusal(refused.status_code, lower(refused.headers), refused.json())
    assert events == ["startup", "factory", "shutdown"]
    assert app.limiter is None  # dropped at shutdown


# --- Django ---------------------------------------------------------------------------


def django_index(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"hello": "world", "method": request.method})


def django_health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def django_echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


def django_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([b"a", b"b", b"c"]))


# This module is the URLconf of the Django project the tests configure.
urlpatterns = [
    path("", django_index),
    path("health", django_health),
    path("echo", django_echo),
    path("stream", django_stream),
]


def django_app(rl: RateLimiter, **options: Any) -> WSGIClient:
    """Django's WSGI application wrapped by the middleware, behind werkzeug's
    WSGI client (Django's own test Client calls the handler, not the WSGI app)."""
    if not settings.configured:  # once per process: Django has one settings object
        settings.configure(
            DEBUG=False,
            SECRET_KEY="buttress-tests-only",
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["localhost"],
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            USE_TZ=True,
        )
    return WSGIClient(WSGIRateLimitMiddleware(get_wsgi_application(), rl, **options))


def test_django_limits_and_answers_429() -> None:
    client = django_app(limiter(per=60.0))
    first = client.get("/")
    assert first.status_code == 200
    assert first.get_json() == {"hello": "world", "method": "GET"}
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert first.headers["RateLimit"] == '"default";r=1;t=30'
    assert client.get("/").status_code == 200
    refused = client.get("/")
    assert_refusal(refused.status_code, lower(refused.headers), refused.get_json())


def test_django_keys_by_remote_addr() -> None:
    rl = limiter(limit=1)
    client = django_app(rl)
    assert client.get("/", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200
    assert client.get("/", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 429
    assert client.get("/", environ_base={"REMOTE_ADDR": "192.0.2.2"}).status_code == 200
    assert not rl.peek("192.0.2.1").allowed


def test_django_exempt_paths() -> None:
    client = django_app(limiter(limit=1), exempt=["/health"])
    for _ in range(3):
        health = client.get("/health")
        assert health.status_code == 200
        assert health.get_data() == b"ok"
        assert "X-RateLimit-Limit" not in health.headers
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429


def test_django_request_and_streamed_bodies_pass() -> None:
    client = django_app(limiter(limit=3))
    echoed = client.post("/echo", data=b"payload", content_type="application/octet-stream")
    assert echoed.status_code == 200
    assert echoed.get_data() == b"payload"
    assert echoed.headers["X-RateLimit-Remaining"] == "2"
    streamed = client.get("/stream")
    assert streamed.status_code == 200
    assert streamed.get_data() == b"abc"
    assert streamed.headers["X-RateLimit-Remaining"] == "1"


def test_django_unknown_paths_are_limited_too() -> None:
    client = django_app(limiter(limit=1))
    assert client.get("/nowhere").status_code == 404
    assert client.get("/").status_code == 429
