"""What an operation means when it fails (``with_error_handling(category=, severity=,
user_message=)``), the API-error and user-action log helpers, each rate-limit refusal
logged by the middleware, and the health report in the standard envelope."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from buttress import (
    ComponentStatus,
    ErrorCategory,
    HealthReport,
    Severity,
    capture,
    get_logger,
    log_api_error,
    log_user_action,
    with_error_handling,
)
from buttress.adapters.asgi_ratelimit import ASGIRateLimitMiddleware
from buttress.adapters.wsgi_ratelimit import WSGIRateLimitMiddleware
from buttress.errors import ContextualError, ValidationError
from buttress.ratelimit import Rate, RateLimiter
from buttress.testing import FakeClock

# -- with_error_handling(category=, severity=, user_message=) --------------------------


class CouponExpired(Exception):
    pass


def test_declared_meaning_replaces_the_classification() -> None:
    @with_error_handling(
        component="checkout",
        category="business_logic",
        severity="low",
        user_message="That coupon has expired.",
    )
    def redeem(code: str) -> int:
        raise CouponExpired(f"coupon {code} expired at row 42 password=hunter2")

    with structlog.testing.capture_logs() as logs:
        result = redeem("SPRING")
    error = result.unwrap_err()
    assert isinstance(error, ContextualError)
    assert error.category is ErrorCategory.BUSINESS_LOGIC
    assert error.severity is Severity.LOW
    assert error.user_message == "That coupon has expired."
    assert isinstance(error.__cause__, CouponExpired)
    [event] = [e for e in logs if e["event"] == "error_captured"]
    assert event["log_level"] == "info"  # LOW logs at INFO
    assert event["category"] == "business_logic"
    assert "hunter2" not in repr(logs)


async def test_declared_meaning_on_async_functions_and_acall() -> None:
    handler = with_error_handling(category=ErrorCategory.DATABASE, severity=Severity.CRITICAL)

    @handler
    async def load() -> int:
        raise ConnectionResetError("peer reset")

    with structlog.testing.capture_logs() as logs:
        error = (await load()).unwrap_err()
    assert (error.category, error.severity) == (ErrorCategory.DATABASE, Severity.CRITICAL)
    # the category's fixed text, as retryable (a reset connection is), stays the default
    assert error.retryable is True
    assert error.user_message.startswith("The database is temporarily unavailable")
    assert [e["log_level"] for e in logs] == ["critical"]

    async def ok() -> int:
        return 7

    assert (await handler.acall(ok)).unwrap() == 7


def test_without_declarations_the_classification_stands() -> None:
    error = with_error_handling().call(int, "x").unwrap_err()
    assert error.category is ErrorCategory.VALIDATION  # ValueError


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"category": "nonsense"}, "category"),
        ({"severity": "urgent"}, "severity"),
        ({"user_message": ""}, "user_message"),
        ({"user_message": 3}, "user_message"),
    ],
)
def test_bad_declarations_are_refused_up_front(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        with_error_handling(**options)
    assert refused.value.field == field
    with pytest.raises(ValidationError):
        capture(RuntimeError("x"), **options)


def test_capture_takes_the_same_declarations() -> None:
    with structlog.testing.capture_logs():
        error = capture(KeyError("k"), category="business_logic", severity="high").unwrap_err()
    assert (error.category, error.severity) == (ErrorCategory.BUSINESS_LOGIC, Severity.HIGH)


# -- log_api_error / log_user_action ---------------------------------------------------


def test_api_error_logs_the_request_not_the_message() -> None:
    leaky = RuntimeError("INSERT INTO users VALUES ('alice', 'hunter2') -- postgresql://a:pw@h/d")
    bound = get_logger("api", request_id="r-1")
    with structlog.testing.capture_logs() as logs:
        log_api_error(
            leaky,
            method="post",
            path="/v1/users?api_key=zqsecret&x=1",
            status=500,
            user_id="u-7",
            logger=bound,
            password="hunter2",
        )
    [event] = logs
    assert event["event"] == "api_error"
    assert event["log_level"] == "error"
    assert event["method"] == "POST"
    assert event["path"] == "/v1/users"
    assert event["status"] == 500
    assert event["request_id"] == "r-1"
    assert event["user_id"] == "u-7"
    assert event["error_type"] == "RuntimeError"
    assert event["password"] == "***"
    text = repr(logs)
    for secret in ("hunter2", "zqsecret", "INSERT", "pw@h"):
        assert secret not in text


def test_api_error_with_a_contextual_error_carries_its_classification() -> None:
    with structlog.testing.capture_logs():
        error = capture(TimeoutError("slow"), component="billing").unwrap_err()
    with structlog.testing.capture_logs() as logs:
        log_api_error(error, method="GET", path="/invoices", status=504)
    [event] = logs
    assert event["log_level"] == "error"
    assert event["category"] == "timeout"
    assert event["severity"] == error.severity.value
    assert event["retryable"] is True
    with structlog.testing.capture_logs() as logs:
        log_api_error(KeyError("k"), method="GET", path="/x", status=404)
    assert [e["log_level"] for e in logs] == ["warning"]
    assert logs[0]["error_type"] == "KeyError"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"status": 99}, "status"),
        ({"status": True}, "status"),
        ({"method": ""}, "method"),
        ({"path": " "}, "path"),
    ],
)
def test_api_error_refuses_bad_input(options: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"method": "GET", "path": "/", "status": 500, **options}
    with pytest.raises(ValidationError) as refused:
        log_api_error(RuntimeError(), **arguments)
    assert refused.value.field == field


def test_user_action_levels_and_redaction() -> None:
    with structlog.testing.capture_logs() as logs:
        log_user_action("invoice.refund", user_id="u-1", target="inv-9", amount=12)
        log_user_action("login", user_id="u-2", outcome="denied", token="zqtoken")
    assert [(e["event"], e["log_level"], e["outcome"]) for e in logs] == [
        ("user_action", "info", "success"),
        ("user_action", "warning", "denied"),
    ]
    assert logs[0]["action"] == "invoice.refund"
    assert logs[0]["target"] == "inv-9"
    assert logs[0]["component"] == "audit"
    assert "zqtoken" not in repr(logs)
    with pytest.raises(ValidationError, match="user_id"):
        log_user_action("x", user_id="")


# -- every refusal of the rate-limit middleware is logged ---------------------------------


def _starlette(rl: RateLimiter, **options: Any) -> Any:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(
        routes=[Route("/", hello)],
        middleware=[Middleware(ASGIRateLimitMiddleware, limiter=rl, **options)],
    )
    return TestClient(app)


def _refusals(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "ratelimit.refused"]


def test_asgi_logs_each_refusal_with_the_client_address() -> None:
    client = _starlette(RateLimiter(Rate(1, 60), clock=FakeClock(), name="api"))
    with structlog.testing.capture_logs() as logs:
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 429
        assert client.get("/").status_code == 429
    refused = _refusals(logs)
    assert len(refused) == 2
    assert refused[0]["client"] == "testclient"
    assert refused[0]["limiter"] == "api"
    assert refused[0]["log_level"] == "info"
    assert (refused[0]["limit"], refused[0]["retry_after"], refused[0]["cost"]) == (1, 60, 1)


def test_a_key_from_the_request_is_logged_as_a_fingerprint() -> None:
    api_key = "zq-live-0123456789abcdef"

    def by_api_key(scope: Any) -> str:
        return api_key

    client = _starlette(RateLimiter(Rate(1, 60), clock=FakeClock()), key=by_api_key)
    with structlog.testing.capture_logs() as logs:
        client.get("/")
        client.get("/")
    [refused] = _refusals(logs)
    expected = "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]
    assert refused["client"] == expected
    assert api_key not in repr(logs)


def test_wsgi_logs_refusals_and_can_be_quiet() -> None:
    flask = pytest.importorskip("flask")

    def make(**options: Any) -> Any:
        app = flask.Flask("refusals")
        app.add_url_rule("/", "index", lambda: "hello")
        rl = RateLimiter(Rate(1, 60), clock=FakeClock())
        app.wsgi_app = WSGIRateLimitMiddleware(app.wsgi_app, rl, **options)
        return app.test_client()

    loud = make()
    with structlog.testing.capture_logs() as logs:
        loud.get("/")
        assert loud.get("/").status_code == 429
    assert [e["client"] for e in _refusals(logs)] == ["127.0.0.1"]

    quiet = make(log_refusals=False)
    with structlog.testing.capture_logs() as logs:
        quiet.get("/")
        assert quiet.get("/").status_code == 429
    assert _refusals(logs) == []
    with pytest.raises(ValidationError, match="log_refusals"):
        make(log_refusals="yes")


# -- the health report in the standard envelope -------------------------------------


def test_health_report_to_envelope() -> None:
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    report = HealthReport.from_components(
        {
            "db": ComponentStatus.unhealthy("password=hunter2 at 10.0.0.5:5432"),
            "cache": ComponentStatus.healthy(),
        },
        version="1.4.2",
        timestamp=at,
    )
    clock = FakeClock(at)
    envelope = report.to_envelope(request_id="req-1", clock=clock)
    assert envelope == {
        "success": True,
        "data": {
            "overall": "unhealthy",
            "version": "1.4.2",
            "timestamp": at.isoformat(),
            "services": [
                {
                    "name": "db",
                    "status": "unhealthy",
                    "critical": True,
                    "latency_ms": 0.0,
                    "type": None,
                },
                {
                    "name": "cache",
                    "status": "healthy",
                    "critical": True,
                    "latency_ms": 0.0,
                    "type": None,
                },
            ],
        },
        "meta": {"request_id": "req-1", "timestamp": "2026-12-07T12:00:00Z"},
    }
    assert report.http_status == 503
    assert "hunter2" not in repr(envelope)
