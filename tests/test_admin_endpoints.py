"""The admin endpoints: the token (refused unless set, compared in constant time), the
sections, failures as fixed 503s, through FastAPI's and Flask's real test clients."""

from __future__ import annotations

import ast
import asyncio
import hmac
import inspect
import textwrap
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from buttress.adapters import _admin_auth
from buttress.adapters._admin_auth import BearerToken
from buttress.adapters.admin import SECTIONS, AdminEndpoints
from buttress.adapters.admin_asgi import AdminASGIApp
from buttress.adapters.admin_wsgi import AdminWSGIApp
from buttress.config import ConfigStore
from buttress.errors import ErrorCategory, Severity, ValidationError
from buttress.flags import FeatureFlags, Flag
from buttress.health import ComponentStatus, HealthReport, Status
from buttress.log import redact_text
from buttress.monitoring import DropRule, HealthHistory
from buttress.monitoring.errors import ErrorRateRule, ErrorStats
from buttress.testing import FakeClock

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2; the httpx-based client still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TOKEN = "adm1n-T0ken_for.tests~0123456789"
OTHER_SAME_LENGTH = TOKEN[:-1] + "X"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


WRONG_CREDENTIALS: dict[str, dict[str, str]] = {
    "missing": {},
    "wrong, same length": bearer(OTHER_SAME_LENGTH),
    "wrong, shorter": bearer(TOKEN[:8]),
    "wrong, longer": bearer(TOKEN + TOKEN),
    "a prefix of the token": bearer(TOKEN[:-1]),
    "empty bearer": {"Authorization": "Bearer "},
    "basic scheme": {"Authorization": f"Basic {TOKEN}"},
    "token without scheme": {"Authorization": TOKEN},
}


class Components:
    """In-memory components with a little of everything in them."""

    def __init__(self) -> None:
        self.clock = FakeClock(start=START)
        self.stats = ErrorStats(clock=self.clock)
        self.history = HealthHistory(clock=self.clock)
        self.flags = FeatureFlags(refresh_interval=None, clock=self.clock)
        self.config = ConfigStore(clock=self.clock)

    async def seed(self) -> None:
        self.stats.record(ErrorCategory.DATABASE, Severity.HIGH, "billing", count=12)
        self.stats.record(ErrorCategory.NETWORK, Severity.LOW, "search")
        for hour, signups in enumerate([100, 104, 98, 20]):
            at = START - timedelta(hours=3 - hour)
            report = HealthReport.from_components(
                {"db": ComponentStatus(Status.HEALTHY, latency_ms=2.0)}, version="1.2", timestamp=at
            )
            await self.history.record(report, {"signups": signups})
        await self.flags.upsert(Flag("beta", "Beta", enabled=True, users={"alice"}))
        await self.config.set("page_size", 50, description="rows per page")
        await self.config.set("payment_key", "sk_live_abcdefgh12345678", sensitive=True)
        await self.config.set("reports_dsn", "postgresql://app:pa55word@db/reports")

    def endpoints(self, **options: Any) -> AdminEndpoints:
        sections: dict[str, Any] = {
            "errors": self.stats,
            "error_rules": [ErrorRateRule(5, critical=50)],
            "history": self.history,
            "rules": [DropRule("signups", warning=0.5)],
            "flags": self.flags,
            "config": self.config,
        }
        sections.update(options)
        return AdminEndpoints(token=TOKEN, **sections)


@pytest.fixture
def components() -> Components:
    return Components()


def fastapi_app(endpoints: AdminEndpoints, components: Components) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await components.seed()
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"hello": "world"}

    app.mount("/admin", AdminASGIApp(endpoints))
    return app


@pytest.fixture
def client(components: Components) -> Iterator[TestClient]:
    with TestClient(fastapi_app(components.endpoints(), components)) as running:
        yield running


def flask_app(endpoints: AdminEndpoints) -> tuple[flask.Flask, AdminWSGIApp]:
    app = flask.Flask("admin-test")

    def home() -> str:
        return "home"

    app.add_url_rule("/", view_func=home)
    admin = AdminWSGIApp(endpoints)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/admin": admin})  # type: ignore[method-assign]
    return app, admin


@pytest.fixture
def flask_client(components: Components) -> Iterator[flask.testing.FlaskClient]:
    app, admin = flask_app(components.endpoints())
    try:
        asyncio.run(components.seed())
        yield app.test_client()
    finally:
        admin.close()


def without_meta(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "meta"}


# -- no token, no endpoints --------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, ""])
def test_without_a_token_the_endpoints_refuse_to_exist(
    components: Components, token: str | None
) -> None:
    with pytest.raises(ValidationError, match="never serve without a bearer token") as caught:
        AdminEndpoints(token=token, flags=components.flags)
    assert caught.value.field == "token"
    with pytest.raises(ValidationError) as omitted:
        AdminEndpoints(flags=components.flags)
    assert omitted.value.field == "token"


@pytest.mark.parametrize(
    "token",
    ["short-secret-1", "has a space in it, sixteen+", "tab\tseparated-token-value", "é" * 20],
)
def test_weak_tokens_are_refused_without_echoing_them(components: Components, token: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AdminEndpoints(token=token, flags=components.flags)
    assert caught.value.field == "token"
    assert "at least 16 visible ASCII characters" in str(caught.value)
    assert token not in str(caught.value)


def test_a_token_that_is_not_text_is_refused(components: Components) -> None:
    with pytest.raises(ValidationError, match="token: must be a string, not bytes"):
        AdminEndpoints(token=TOKEN.encode(), flags=components.flags)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "sections"),
        ({"flags": "flags"}, "flags"),
        ({"config": 3}, "config"),
        ({"errors": object()}, "errors"),
        ({"migrations": []}, "migrations"),
        ({"migrations": ["not a migrator"]}, "migrations"),
        ({"migrations": 7}, "migrations"),
        ({"history": HealthHistory(), "rules": ["drop:signups"]}, "rules[0]"),
        ({"errors": ErrorStats(), "error_rules": [DropRule("x")]}, "error_rules[0]"),
        ({"flags": FeatureFlags(refresh_interval=None), "path": "admin"}, "path"),
        ({"flags": FeatureFlags(refresh_interval=None), "path": "/admin/"}, "path"),
        ({"flags": FeatureFlags(refresh_interval=None), "section_timeout": 0}, "section_timeout"),
        ({"flags": FeatureFlags(refresh_interval=None), "history_limit": 0}, "history_limit"),
    ],
)
def test_bad_options_are_refused_naming_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AdminEndpoints(token=TOKEN, **options)
    assert caught.value.field == field


def test_the_token_never_shows_and_is_masked_in_logs(components: Components) -> None:
    endpoints = components.endpoints()
    app = AdminASGIApp(endpoints)
    for shown in (repr(endpoints), repr(app), repr(BearerToken(TOKEN)), str(vars(app))):
        assert TOKEN not in shown
    assert "sections=('errors', 'health', 'flags', 'config')" in repr(endpoints)
    assert TOKEN not in redact_text(f"Authorization: {TOKEN}")


def test_the_frameworks_refuse_anything_but_endpoints() -> None:
    with pytest.raises(ValidationError, match="endpoints"):
        AdminASGIApp(TOKEN)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="endpoints"):
        AdminWSGIApp(TOKEN)  # type: ignore[arg-type]


# -- the comparison ----------------------------------------------------------------------------


@given(st.binary(max_size=80))
def test_only_the_exact_token_matches(guess: bytes) -> None:
    token = BearerToken(TOKEN)
    for scheme in (b"Bearer ", b"bearer ", b"BEARER  "):
        assert token.check(scheme + guess).matched == (guess.strip() == TOKEN.encode())
    if not guess.strip().lower().startswith(b"bearer"):
        assert not token.check(guess).matched
    assert token.check(b"  Bearer " + TOKEN.encode() + b"  ").matched
    assert not token.check(None).presented


def test_every_request_compares_two_sha256_digests_with_compare_digest(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The structural half of "constant time": whatever the request sends (nothing,
    a shorter or longer guess, another scheme), exactly one ``hmac.compare_digest``
    of two 32-byte digests decides. A timing measurement would be flaky in CI."""
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(_admin_auth, "compare_digest", spy)
    with TestClient(fastapi_app(components.endpoints(), components)) as client:
        for name, headers in {**WRONG_CREDENTIALS, "right": bearer(TOKEN)}.items():
            compared.clear()
            status = client.get("/admin/flags", headers=headers).status_code
            assert status == (200 if name == "right" else 401), name
            assert compared == [(32, 32)], name
        # It is the comparison that decides: refuse it, and the right token is refused.
        monkeypatch.setattr(_admin_auth, "compare_digest", lambda a, b: False)
        assert client.get("/admin/flags", headers=bearer(TOKEN)).status_code == 401


def test_the_token_is_only_ever_read_by_compare_digest() -> None:
    """No ``==`` (which stops at the first differing byte) anywhere near the secret:
    in ``BearerToken.check`` the stored digest is only an argument of compare_digest."""
    source = textwrap.dedent(inspect.getsource(BearerToken.check))
    tree = ast.parse(source)
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "_digest"]
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "compare_digest"
    ]
    assert len(uses) == 1
    assert len(calls) == 1
    assert uses[0] in calls[0].args
    for compare in (n for n in ast.walk(tree) if isinstance(n, ast.Compare)):
        names = {n.id for n in ast.walk(compare) if isinstance(n, ast.Name)}
        assert not names & {"given", "matched"}, ast.unparse(compare)


# -- FastAPI -----------------------------------------------------------------------------------


def test_fastapi_serves_every_section_in_the_envelope(client: TestClient) -> None:
    index = client.get("/admin", headers=bearer(TOKEN))
    assert index.status_code == 200
    assert index.headers["content-type"] == "application/json"
    assert index.headers["cache-control"] == "no-store"
    assert index.json()["success"] is True
    assert index.json()["data"] == {"sections": ["errors", "health", "flags", "config"]}
    assert set(index.json()["meta"]) == {"request_id", "timestamp"}

    errors = client.get("/admin/errors", headers=bearer(TOKEN)).json()
    assert errors["meta"]["section"] == "errors"
    data = errors["data"]
    assert data["summary"]["total"] == 13
    assert data["summary"]["by_category"] == {"database": 12, "network": 1}
    assert data["summary"]["by_severity"] == {"high": 12, "low": 1}
    assert data["last_minute"] == 13
    assert data["level"] == "warning"  # 13 a minute: above 5, below 50
    assert [a["rule"] for a in data["anomalies"]] == ["error_rate"]
    assert data["rules"][0]["per_minute"] == 5

    health = client.get("/admin/health/", headers=bearer(TOKEN)).json()["data"]
    assert health["runs"] == 4
    assert [run["metrics"]["signups"] for run in health["recent"]] == [20, 98, 104, 100]
    assert health["level"] == "warning"
    assert health["anomalies"][0]["metric"] == "signups"
    assert health["rules"] == [
        {"kind": "drop", "metric": "signups", "warning": 0.5, "critical": None,
         "window_seconds": 86400.0, "min_samples": 3}
    ]  # fmt: skip

    flags = client.get("/admin/flags", headers=bearer(TOKEN)).json()["data"]
    assert flags["count"] == 1
    assert flags["flags"][0]["key"] == "beta"
    assert flags["flags"][0]["users"] == ["alice"]

    config = client.get("/admin/config", headers=bearer(TOKEN))
    entries = {e["key"]: e for e in config.json()["data"]["entries"]}
    assert entries["page_size"]["value"] == 50
    assert entries["page_size"]["masked"] is False
    assert entries["payment_key"]["value"] == "***"
    assert entries["payment_key"]["masked"] is True
    assert entries["reports_dsn"]["value"] == "postgresql://app:***@db/reports"
    assert "sk_live_abcdefgh12345678" not in config.text
    assert "pa55word" not in config.text
    assert config.json()["data"]["maintenance_mode"] is False

    assert client.get("/").json() == {"hello": "world"}  # the rest of the app


@pytest.mark.parametrize("name", sorted(WRONG_CREDENTIALS))
def test_fastapi_wrong_or_missing_token_is_401_and_tells_nothing(
    client: TestClient, name: str
) -> None:
    headers = WRONG_CREDENTIALS[name]
    refused = client.get("/admin/config", headers=headers)
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="buttress-admin"')
    presented = name.startswith(("wrong", "a prefix"))
    assert ('error="invalid_token"' in challenge) == presented
    assert without_meta(refused.json()) == {
        "success": False,
        "error": {"code": "UNAUTHORIZED", "message": "A valid bearer token is required."},
    }
    # Unknown sections, other methods and the index answer the same: nothing is revealed.
    for method, path in (("GET", "/admin/nope"), ("DELETE", "/admin/config"), ("GET", "/admin")):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert without_meta(response.json()) == without_meta(refused.json())


def test_fastapi_only_get_and_head(client: TestClient) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        refused = client.request(method, "/admin/flags", headers=bearer(TOKEN))
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"
        assert refused.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    head = client.head("/admin/flags", headers=bearer(TOKEN))
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0


def test_sections_not_given_are_404(client: TestClient) -> None:
    for path in ("/admin/migrations", "/admin/nothing", "/admin/flags/beta"):
        missing = client.get(path, headers=bearer(TOKEN))
        assert missing.status_code == 404
        assert missing.json()["error"] == {
            "code": "NOT_FOUND", "message": "admin section not found"
        }  # fmt: skip


def test_a_failing_section_is_a_fixed_503_and_the_others_still_answer(
    components: Components, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> ConfigStore:
        raise RuntimeError("connect to postgresql://app:hunter22@db failed: SELECT secret")

    class Exploding(FeatureFlags):
        async def list(self) -> list[Flag]:
            raise ConnectionResetError("password=hunter22")

    endpoints = components.endpoints(config=broken, flags=Exploding(refresh_interval=None))
    with TestClient(fastapi_app(endpoints, components)) as client:
        for section in ("config", "flags"):
            failed = client.get(f"/admin/{section}", headers=bearer(TOKEN))
            assert failed.status_code == 503
            assert without_meta(failed.json()) == {
                "success": False,
                "error": {
                    "code": "SERVICE_UNAVAILABLE",
                    "message": f"The {section} section is unavailable.",
                },
            }
            for leak in ("hunter22", "SELECT", "RuntimeError", "Connection"):
                assert leak not in failed.text
        assert client.get("/admin/errors", headers=bearer(TOKEN)).status_code == 200
    assert "hunter22" not in caplog.text


def test_a_section_that_overruns_its_timeout_is_503(components: Components) -> None:
    class Slow(FeatureFlags):
        async def list(self) -> list[Flag]:
            await asyncio.sleep(5)
            return []

    endpoints = components.endpoints(flags=Slow(refresh_interval=None), section_timeout=0.05)
    with TestClient(fastapi_app(endpoints, components)) as client:
        slow = client.get("/admin/flags", headers=bearer(TOKEN))
        assert slow.status_code == 503
        assert slow.json()["error"]["message"] == "The flags section is unavailable."


def test_components_can_come_from_the_lifespan(components: Components) -> None:
    """Functions given for components are called per request: the app's lifespan
    builds them (a backend it opens), and until then the section answers 503."""
    app = FastAPI()
    endpoints = AdminEndpoints(token=TOKEN, flags=lambda: app.state.flags)
    app.mount("/admin", AdminASGIApp(endpoints))
    before = TestClient(app).get("/admin/flags", headers=bearer(TOKEN))
    assert before.status_code == 503  # no lifespan ran: app.state.flags is missing

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.flags = FeatureFlags(refresh_interval=None)
        await app.state.flags.upsert(Flag("late", "Late"))
        yield

    app.router.lifespan_context = lifespan
    with TestClient(app) as client:
        listed = client.get("/admin/flags", headers=bearer(TOKEN)).json()["data"]["flags"]
        assert [flag["key"] for flag in listed] == ["late"]
        app.state.flags = "not flags"
        assert client.get("/admin/flags", headers=bearer(TOKEN)).status_code == 503


def test_standalone_asgi_app_and_wrapping(components: Components) -> None:
    endpoints = components.endpoints(path="/ops")
    with TestClient(AdminASGIApp(endpoints)) as alone:
        assert alone.get("/ops/flags", headers=bearer(TOKEN)).status_code == 200
        assert alone.get("/elsewhere", headers=bearer(TOKEN)).status_code == 404
        assert alone.get("/admin/flags", headers=bearer(TOKEN)).status_code == 404

    inner = FastAPI()

    @inner.get("/hello")
    async def hello() -> str:
        return "hi"

    with TestClient(AdminASGIApp(endpoints, app=inner)) as wrapped:
        assert wrapped.get("/hello").json() == "hi"
        assert wrapped.get("/ops", headers=bearer(TOKEN)).json()["data"]["sections"]
        assert wrapped.get("/ops/config").status_code == 401


# -- Flask -------------------------------------------------------------------------------------


def test_flask_serves_the_sections_mounted(flask_client: flask.testing.FlaskClient) -> None:
    assert flask_client.get("/").text == "home"
    index = flask_client.get("/admin", headers=bearer(TOKEN))
    assert index.status_code == 200
    assert index.get_json()["data"]["sections"] == ["errors", "health", "flags", "config"]
    errors = flask_client.get("/admin/errors", headers=bearer(TOKEN)).get_json()["data"]
    assert errors["summary"]["total"] == 13
    health = flask_client.get("/admin/health", headers=bearer(TOKEN)).get_json()["data"]
    assert health["anomalies"][0]["rule"] == "drop"
    flags = flask_client.get("/admin/flags", headers=bearer(TOKEN)).get_json()["data"]
    assert [f["key"] for f in flags["flags"]] == ["beta"]
    config = flask_client.get("/admin/config", headers=bearer(TOKEN))
    assert {e["key"]: e["value"] for e in config.get_json()["data"]["entries"]}[
        "payment_key"
    ] == "***"
    assert "sk_live_abcdefgh12345678" not in config.text
    head = flask_client.head("/admin/config", headers=bearer(TOKEN))
    assert head.status_code == 200
    assert head.data == b""


@pytest.mark.parametrize("name", sorted(WRONG_CREDENTIALS))
def test_flask_wrong_or_missing_token_is_401(
    flask_client: flask.testing.FlaskClient, name: str
) -> None:
    refused = flask_client.get("/admin/config", headers=WRONG_CREDENTIALS[name])
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="buttress-admin"')
    assert refused.get_json()["error"]["code"] == "UNAUTHORIZED"
    assert flask_client.get("/admin/nope", headers=WRONG_CREDENTIALS[name]).status_code == 401


def test_flask_methods_and_missing_sections(flask_client: flask.testing.FlaskClient) -> None:
    refused = flask_client.post("/admin/flags", headers=bearer(TOKEN))
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "GET, HEAD"
    assert flask_client.get("/admin/migrations", headers=bearer(TOKEN)).status_code == 404


def test_flask_wrapping_style_and_a_failing_section(components: Components) -> None:
    def broken() -> FeatureFlags:
        raise OSError("secret=hunter22")

    app = flask.Flask("wrapped")
    app.add_url_rule("/", view_func=lambda: "home")
    admin = AdminWSGIApp(components.endpoints(flags=broken), app=app.wsgi_app)
    app.wsgi_app = admin  # type: ignore[method-assign]
    try:
        client = app.test_client()
        assert client.get("/").text == "home"
        failed = client.get("/admin/flags", headers=bearer(TOKEN))
        assert failed.status_code == 503
        assert "hunter22" not in failed.text
        assert client.get("/admin/config", headers=bearer(TOKEN)).status_code == 200
    finally:
        admin.close()


def test_wsgi_on_a_loop_that_is_gone_answers_503(components: Components) -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    app = flask.Flask("gone")
    admin = AdminWSGIApp(components.endpoints(), loop=loop)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/admin": admin})  # type: ignore[method-assign]
    failed = app.test_client().get("/admin/flags", headers=bearer(TOKEN))
    assert failed.status_code == 503
    assert failed.get_json()["error"]["message"] == "The flags section is unavailable."
    with pytest.raises(ValidationError, match="loop"):
        AdminWSGIApp(components.endpoints(), loop="loop")  # type: ignore[arg-type]


def test_sections_are_the_documented_ones() -> None:
    assert SECTIONS == ("errors", "migrations", "health", "flags", "config")
