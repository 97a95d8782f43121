"""The ASGI rate-limit middleware with a limiter factory: built after the app's
lifespan start-up (through Starlette's real TestClient, on SQLite and Redis) or
by the first request, once; the error policy until it exists; lifespan messages
passed through unchanged."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from structlog.testing import capture_logs

from buttress import connect
from buttress.adapters.asgi_ratelimit import (
    ASGIApp,
    ASGIRateLimitMiddleware,
    LimiterFactory,
    Message,
    Receive,
    Scope,
    Send,
)
from buttress.errors import ValidationError
from buttress.ratelimit import Rate, RateLimiter
from buttress.testing import FakeClock

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2; the httpx-based client still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def shared_app(dsn: str, rate: Rate, built: list[str]) -> Starlette:
    """A Starlette app whose lifespan opens ``dsn``; its limiter is built from
    that backend by a factory, which records each call in ``built``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        backend = await connect(dsn)
        app.state.backend = backend
        try:
            yield
        finally:
            await backend.close()

    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)

    def limiter() -> RateLimiter:
        built.append(app.state.backend.kind)  # fails before the lifespan has run
        return RateLimiter(rate, backend=app.state.backend, prefix="lazy-test")

    app.add_middleware(ASGIRateLimitMiddleware, limiter=limiter, key=lambda scope: "everyone")
    return app


@pytest.fixture(params=["sqlite", "redis"])
def shared_dsn(request: pytest.FixtureRequest) -> str:
    dsn: str = request.getfixturevalue(f"{request.param}_dsn")
    return dsn


def test_two_instances_share_one_budget_through_a_lazy_limiter(shared_dsn: str) -> None:
    built: list[str] = []
    first = shared_app(shared_dsn, Rate(3, 60), built)
    second = shared_app(shared_dsn, Rate(3, 60), built)
    with TestClient(first) as one, TestClient(second) as two:
        kind = shared_dsn.split(":")[0]
        assert built == [kind, kind]  # built at start-up, before any request
        answers = [client.get("/") for client in (one, two) * 3]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
        assert answers[2].headers["x-ratelimit-remaining"] == "0"
        refused = answers[3]
        assert refused.headers["x-ratelimit-limit"] == "3"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert len(built) == 2


def test_a_restart_builds_a_new_limiter_on_the_new_backend(sqlite_dsn: str) -> None:
    built: list[str] = []
    app = shared_app(sqlite_dsn, Rate(3, 60), built)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
    # The first run's backend is closed now; the second run must not use it.
    with TestClient(app) as client:
        assert built == ["sqlite", "sqlite"]
        statuses = [client.get("/").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]  # the budget lives in the database


# --- the middleware driven as a bare ASGI app --------------------------------


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def request(app: ASGIRateLimitMiddleware) -> tuple[int, dict[str, str], bytes]:
    """One GET / from 10.0.0.1: status, headers and body."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "client": ("10.0.0.1", 5),
    }
    await app(scope, receive, send)
    start = sent[0]
    raw = start["headers"]
    assert isinstance(raw, list)
    headers = {k.decode(): v.decode() for k, v in raw}
    chunks = [message.get("body") for message in sent[1:]]
    body = b"".join(chunk for chunk in chunks if isinstance(chunk, bytes))
    status = start["status"]
    assert isinstance(status, int)
    return status, headers, body


def memory_limiter(limit: int) -> RateLimiter:
    return RateLimiter(Rate(limit, 60), clock=FakeClock())


async def test_concurrent_first_requests_build_the_limiter_once() -> None:
    calls = 0
    gate = asyncio.Event()

    async def factory() -> RateLimiter:
        nonlocal calls
        calls += 1
        await gate.wait()  # every request arrives while the build is under way
        return memory_limiter(5)

    app = ASGIRateLimitMiddleware(ok_app, limiter=factory)
    assert app.limiter is None
    pending = [asyncio.create_task(request(app)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    statuses = [status for status, _, _ in await asyncio.gather(*pending)]
    assert calls == 1
    assert statuses.count(200) == 5
    assert statuses.count(429) == 15
    assert isinstance(app.limiter, RateLimiter)


async def test_a_cancelled_request_does_not_cancel_the_build() -> None:
    calls = 0
    gate = asyncio.Event()

    async def factory() -> RateLimiter:
        nonlocal calls
        calls += 1
        await gate.wait()
        return memory_limiter(1)

    app = ASGIRateLimitMiddleware(ok_app, limiter=factory)
    first = asyncio.create_task(request(app))
    await asyncio.sleep(0)
    first.cancel()  # e.g. the client went away
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(request(app))
    await asyncio.sleep(0)
    gate.set()
    assert (await second)[0] == 200
    assert calls == 1


async def test_a_failing_factory_allows_then_is_retried_by_the_next_request() -> None:
    attempts = 0

    def factory() -> RateLimiter:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise ConnectionError("store unreachable: redis://:hunter2@db")
        return memory_limiter(1)

    app = ASGIRateLimitMiddleware(ok_app, limiter=factory)
    with capture_logs() as logs:
        assert (await request(app))[0] == 200  # allowed: the default policy
        assert (await request(app))[0] == 200
        assert app.limiter is None
        assert (await request(app))[0] == 200  # built now, and counted
        assert (await request(app))[0] == 429
    assert attempts == 3
    events = [entry["event"] for entry in logs]
    assert events.count("ratelimit.middleware_error") == 1  # once per outage
    assert "ratelimit.middleware_recovered" in events
    assert "ratelimit.limiter_ready" in events
    assert "hunter2" not in repr(logs)


def unreachable() -> RateLimiter:
    raise OSError("store unreachable")


def not_a_limiter() -> RateLimiter:
    return "not a limiter"  # type: ignore[return-value]  # deliberately wrong


@pytest.mark.parametrize("factory", [unreachable, not_a_limiter])
async def test_deny_refuses_until_a_limiter_exists(factory: LimiterFactory) -> None:
    app = ASGIRateLimitMiddleware(ok_app, limiter=factory, on_backend_error="deny")
    status, headers, body = await request(app)
    assert status == 429
    assert headers["retry-after"] == "1"
    assert json.loads(body)["error"]["code"] == "RATE_LIMITED"
    assert json.loads(body)["error"]["retry_after"] == 1
    # No limit exists yet, so none is reported.
    assert "x-ratelimit-limit" not in headers
    assert "ratelimit-policy" not in headers


def lifespan_app(events: list[str], *, fail: bool = False) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        message = await receive()
        assert message["type"] == "lifespan.startup"
        events.append("app started")
        if fail:
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        events.append("app stopped")
        await send({"type": "lifespan.shutdown.complete"})

    return app


async def run_lifespan(app: ASGIRateLimitMiddleware, events: list[str]) -> list[Message]:
    """Start and stop ``app`` as a server would; the messages it sent."""
    inbox: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        events.append(f"server got {message['type']}")
        sent.append(message)

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await app(scope, receive, send)
    return sent


async def test_lifespan_builds_after_the_apps_startup_and_passes_messages_through() -> None:
    events: list[str] = []

    def factory() -> RateLimiter:
        events.append("limiter built")
        return memory_limiter(1)

    app = ASGIRateLimitMiddleware(lifespan_app(events), limiter=factory)
    sent = await run_lifespan(app, events)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert events == [
        "app started",
        "limiter built",
        "server got lifespan.startup.complete",
        "app stopped",
        "server got lifespan.shutdown.complete",
    ]
    assert app.limiter is None  # dropped at shutdown: its backend may be closed


async def test_a_failed_startup_passes_through_and_builds_nothing() -> None:
    events: list[str] = []
    factory_calls = 0

    def factory() -> RateLimiter:
        nonlocal factory_calls
        factory_calls += 1
        return memory_limiter(1)

    app = ASGIRateLimitMiddleware(lifespan_app(events, fail=True), limiter=factory)
    sent = await run_lifespan(app, events)
    assert sent == [{"type": "lifespan.startup.failed", "message": "no database"}]
    assert factory_calls == 0


async def test_a_factory_failing_at_startup_does_not_stop_the_app() -> None:
    events: list[str] = []

    def factory() -> RateLimiter:
        raise ConnectionError("down")

    app = ASGIRateLimitMiddleware(lifespan_app(events), limiter=factory)
    with capture_logs() as logs:
        sent = await run_lifespan(app, events)
    assert sent[0] == {"type": "lifespan.startup.complete"}
    unavailable = [e for e in logs if e["event"] == "ratelimit.limiter_unavailable"]
    assert len(unavailable) == 1
    assert unavailable[0]["error"] == "ConnectionError"
    assert unavailable[0]["log_level"] == "error"


def test_bad_limiter_is_refused() -> None:
    factory: LimiterFactory = lambda: memory_limiter(1)  # noqa: E731 - the alias, checked by mypy
    assert ASGIRateLimitMiddleware(ok_app, limiter=factory).limiter is None
    with pytest.raises(ValidationError, match="limiter"):
        ASGIRateLimitMiddleware(ok_app, limiter=42)  # type: ignore[arg-type]  # deliberately bad input
