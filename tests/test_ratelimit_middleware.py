"""ASGI and WSGI rate-limit middleware through the real frameworks' test clients
(Starlette's TestClient and Flask's test client)."""

from __future__ import annotations

import re
import warnings
from collections.abc import MutableMapping, Sequence
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from buttress.adapters._ratelimit_http import ClientAddress
from buttress.adapters.asgi_ratelimit import ASGIRateLimitMiddleware, Scope
from buttress.adapters.wsgi_ratelimit import WSGIRateLimitMiddleware
from buttress.errors import BackendUnavailableError, ValidationError
from buttress.ratelimit import Decision, Rate, RateLimiter
from buttress.ratelimit._store import Check, Now
from buttress.testing import FakeClock

starlette = pytest.importorskip("starlette")
flask = pytest.importorskip("flask")

from flask import Flask  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2; the httpx-based client still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient


def limiter(limit: int = 2, per: float = 60.0) -> RateLimiter:
    return RateLimiter(Rate(limit, per), clock=FakeClock())


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def starlette_app(rl: RateLimiter, **options: Any) -> TestClient:
    app = Starlette(
        routes=[Route("/", hello), Route("/health", hello), Route("/static/x", hello)],
        middleware=[Middleware(ASGIRateLimitMiddleware, limiter=rl, **options)],
    )
    return TestClient(app)


def flask_app(rl: RateLimiter, **options: Any) -> Flask:
    app = Flask("ratelimit-test")

    @app.route("/")
    def index() -> str:
        return "hello"

    @app.route("/health")
    def health() -> str:
        return "ok"

    app.wsgi_app = WSGIRateLimitMiddleware(app.wsgi_app, rl, **options)  # type: ignore[method-assign]  # Flask's documented middleware hook
    return app


def assert_refusal(status: int, headers: dict[str, str], body: object) -> None:
    assert status == 429
    # GCRA at 2 per 60 s: one unit comes back every 30 s.
    assert headers["retry-after"] == "30"
    assert headers["ratelimit-policy"] == '"default";q=2;w=60'
    assert headers["ratelimit"] == '"default";r=0;t=60'
    assert headers["x-ratelimit-limit"] == "2"
    assert headers["x-ratelimit-remaining"] == "0"
    assert headers["content-type"] == "application/json"
    # The standard envelope of buttress.responses.rate_limited, meta included.
    assert isinstance(body, dict)
    meta = body.pop("meta")
    assert body == {
        "success": False,
        "error": {
            "code": "RATE_LIMITED",
            "message": "Too many requests; retry after 30 s.",
            "retry_after": 30,
        },
    }
    assert set(meta) == {"request_id", "timestamp"}
    assert re.fullmatch(r"[0-9a-f]{32}", meta["request_id"])
    assert datetime.fromisoformat(meta["timestamp"].replace("Z", "+00:00")).tzinfo is not None


def test_asgi_limits_and_answers_429() -> None:
    client = starlette_app(limiter(per=60.0), key=lambda scope: "one")
    first = client.get("/")
    assert first.status_code == 200
    assert first.text == "hello"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert first.headers["ratelimit"] == '"default";r=1;t=30'
    assert client.get("/").status_code == 200
    refused = client.get("/")
    assert_refusal(
        refused.status_code, {k.lower(): v for k, v in refused.headers.items()}, refused.json()
    )


def test_wsgi_limits_and_answers_429() -> None:
    client = flask_app(limiter(per=60.0)).test_client()
    first = client.get("/")
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert client.get("/").status_code == 200
    refused = client.get("/")
    assert_refusal(
        refused.status_code, {k.lower(): v for k, v in refused.headers.items()}, refused.json
    )


def test_asgi_exempt_paths_and_prefixes() -> None:
    client = starlette_app(limiter(limit=1), exempt=["/health", "/static/*"])
    for _ in range(3):
        assert client.get("/health").status_code == 200
        assert client.get("/static/x").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429


def test_wsgi_exempt_paths() -> None:
    client = flask_app(limiter(limit=1), exempt=["/health"]).test_client()
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429


def test_asgi_cost_function() -> None:
    def cost(scope: Scope) -> int:
        return 2 if scope.get("method") == "POST" else 1

    client = starlette_app(limiter(limit=3), cost=cost)
    assert client.get("/").status_code == 200
    assert client.post("/").status_code in (405, 200)  # the route refuses POST, after limiting
    assert client.get("/").status_code == 429


def test_asgi_keys_by_client_address_by_default() -> None:
    rl = limiter(limit=1)
    client = starlette_app(rl)
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429
    # Starlette's TestClient reports the peer as "testclient".
    assert not rl.peek("testclient").allowed
    # X-Forwarded-For is ignored without trusted proxies.
    assert client.get("/", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 429


def test_wsgi_trusted_proxy_uses_forwarded_for() -> None:
    rl = limiter(limit=1)
    client = flask_app(rl, trusted_proxies=["127.0.0.1"]).test_client()
    env = {"REMOTE_ADDR": "127.0.0.1"}
    forwarded = {"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}
    assert client.get("/", headers=forwarded, environ_base=env).status_code == 200
    assert client.get("/", headers=forwarded, environ_base=env).status_code == 429
    other = {"X-Forwarded-For": "203.0.113.6"}
    assert client.get("/", headers=other, environ_base=env).status_code == 200
    assert not rl.peek("203.0.113.5").allowed


def test_client_address_resolution() -> None:
    resolve = ClientAddress(["10.0.0.0/8", "127.0.0.1"])
    assert resolve("127.0.0.1", "1.2.3.4, 10.1.1.1") == "1.2.3.4"
    assert resolve("127.0.0.1", "spoofed, 5.6.7.8") == "5.6.7.8"
    assert resolve("9.9.9.9", "1.2.3.4") == "9.9.9.9"  # untrusted peer
    assert resolve("10.0.0.1", "10.0.0.2") == "10.0.0.2"  # all trusted: left-most
    assert resolve(None, None) == "unknown"
    assert ClientAddress()("127.0.0.1", "1.2.3.4") == "127.0.0.1"
    with pytest.raises(ValidationError, match="trusted_proxies"):
        ClientAddress(["not-an-ip"])
    with pytest.raises(ValidationError, match="trusted_proxies"):
        ClientAddress("10.0.0.0/8")


def test_forwarded_entries_with_a_port_or_no_address_never_make_new_buckets() -> None:
    # Some proxies append "ip:port"; keyed as it stood, every source port would
    # get a bucket of its own and the limit would do nothing.
    resolve = ClientAddress(["127.0.0.1", "10.0.0.0/8"])
    assert resolve("127.0.0.1", "203.0.113.5:40001") == "203.0.113.5"
    assert resolve("127.0.0.1", "203.0.113.5:40002, 10.0.0.7:443") == "203.0.113.5"
    assert resolve("127.0.0.1", "[2001:db8:5::1]:4711") == "2001:db8:5::/64"
    assert resolve("127.0.0.1", "[2001:db8:5::1]") == "2001:db8:5::/64"
    for junk in (
        "junk1",
        "unknown",
        "_hidden",
        "1.2.3.4:5:6",
        "1.2.3.4:http",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "[2001:db8::1]:",
    ):
        assert resolve("127.0.0.1", f"198.51.100.1, {junk}") == "unknown", junk
    assert resolve("127.0.0.1", " , ") == "127.0.0.1"  # no entry at all: the peer


@given(
    ip=st.ip_addresses(v=4).map(str),
    port=st.integers(0, 65535),
    proxies=st.lists(st.sampled_from(["10.0.0.1", "10.2.3.4:8080", "[10.9.9.9]"]), max_size=3),
)
def test_a_port_on_a_forwarded_entry_never_changes_the_key(
    ip: str, port: int, proxies: list[str]
) -> None:
    resolve = ClientAddress(["127.0.0.1", "10.0.0.0/8"])
    chain = ", ".join(proxies)
    bare = resolve("127.0.0.1", ", ".join([ip, *proxies]))
    assert resolve("127.0.0.1", ", ".join([f"{ip}:{port}", *proxies])) == bare
    if not ip.startswith("10."):
        assert bare == ip, chain


def test_ipv6_clients_share_a_bucket_per_network() -> None:
    resolve = ClientAddress()
    assert resolve("2001:db8:1:2::1", None) == "2001:db8:1:2::/64"
    assert resolve("2001:db8:1:2:ffff::9", None) == "2001:db8:1:2::/64"  # same /64: same key
    assert resolve("2001:db8:1:3::1", None) == "2001:db8:1:3::/64"
    assert resolve("::ffff:192.0.2.7", None) == "192.0.2.7"  # IPv4-mapped is IPv4
    assert ClientAddress(ipv6_prefix=48)("2001:db8:1:2::1", None) == "2001:db8:1::/48"
    assert ClientAddress(ipv6_prefix=128)("2001:db8::1", None) == "2001:db8::1/128"
    for bad in (0, 129, True, "64"):
        with pytest.raises(ValidationError, match="ipv6_prefix"):
            ClientAddress(ipv6_prefix=bad)  # type: ignore[arg-type]  # bad on purpose


def test_a_trusted_proxy_on_a_unix_socket_names_the_client() -> None:
    behind_socket = ClientAddress(["unix"])
    assert behind_socket(None, "198.51.100.4") == "198.51.100.4"
    assert behind_socket("", "spoofed, 198.51.100.4") == "198.51.100.4"
    assert behind_socket(None, None) == "unknown"
    # Without "unix" a socket peer stays anonymous: its header is not believed.
    assert ClientAddress()(None, "198.51.100.4") == "unknown"


def test_asgi_behind_a_unix_socket_limits_each_client_apart() -> None:
    rl = RateLimiter(Rate(1, 60))
    client = starlette_app(rl, trusted_proxies=["unix"])
    # Starlette's test client sets scope["client"]; a Unix-socket server sends None.
    app = client.app
    scopes: list[MutableMapping[str, Any]] = []

    async def unix_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope, client=None)
            scopes.append(scope)
        await app(scope, receive, send)

    from starlette.testclient import TestClient as Client

    socket_client = Client(unix_app)
    first = {"X-Forwarded-For": "198.51.100.4"}
    second = {"X-Forwarded-For": "198.51.100.5"}
    assert socket_client.get("/", headers=first).status_code == 200
    assert socket_client.get("/", headers=first).status_code == 429
    assert socket_client.get("/", headers=second).status_code == 200  # not throttled by 1st
    assert [s["client"] for s in scopes] == [None, None, None]


def test_bad_options_are_refused() -> None:
    async def app(scope: Scope, receive: object, send: object) -> None:
        return None

    with pytest.raises(ValidationError, match="on_backend_error"):
        ASGIRateLimitMiddleware(app, limiter(), on_backend_error="ignore")  # type: ignore[arg-type]  # deliberately bad input
    with pytest.raises(ValidationError, match="exempt"):
        ASGIRateLimitMiddleware(app, limiter(), exempt=["health"])
    with pytest.raises(ValidationError, match="limiter"):
        ASGIRateLimitMiddleware(app, object())  # type: ignore[arg-type]  # deliberately bad input


class _DownStore:
    kind = "redis"

    def decide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        raise BackendUnavailableError("down")

    async def adecide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        raise BackendUnavailableError("down")

    def reset(self, keys: Sequence[str]) -> None:
        raise BackendUnavailableError("down")

    async def areset(self, keys: Sequence[str]) -> None:
        raise BackendUnavailableError("down")


@pytest.fixture
def down_limiter() -> RateLimiter:
    return RateLimiter(Rate(5, 60), backend=_DownStore())


def test_asgi_backend_down_allows_by_default(down_limiter: RateLimiter) -> None:
    client = starlette_app(down_limiter)
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200


def test_asgi_backend_down_can_deny(down_limiter: RateLimiter) -> None:
    client = starlette_app(down_limiter, on_backend_error="deny")
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "RATE_LIMITED"


def _cost_from_query(request: Any) -> int:
    # A cost taken from the request, as a batch endpoint would: hostile input.
    query = str(request.get("QUERY_STRING") or request.get("query_string", b"").decode())
    return int(query.removeprefix("n="))


@pytest.mark.parametrize("policy", ["allow", "deny"])
@pytest.mark.parametrize("n", ["3", "1000", "0", "-5", "abc"])
def test_a_cost_that_cannot_be_charged_is_refused_whatever_the_policy(
    n: str, policy: str
) -> None:
    # The trial's bypass: with the budget spent, a larger (or zero, negative,
    # unparsable) cost used to reach on_backend_error="allow" and pass.
    for app in ("asgi", "wsgi"):
        rl = limiter(limit=2)
        options = {"cost": _cost_from_query, "on_backend_error": policy}
        if app == "asgi":
            client = starlette_app(rl, **options)
            assert client.get("/?n=2").status_code == 200
            answer = client.get(f"/?n={n}")
            status, body = answer.status_code, answer.json()
        else:
            test_client = flask_app(rl, **options).test_client()
            assert test_client.get("/?n=2").status_code == 200
            response = test_client.get(f"/?n={n}")
            status, body = response.status_code, response.get_json()
        if n == "3":  # outside 1..limit
            assert (status, body["error"]["code"]) == (400, "BAD_REQUEST")
            assert body["error"]["message"] == (
                "This request cannot be rate limited: its cost must be from 1 to the limit (2)."
            )
        elif n == "abc":  # the cost function raised
            assert (status, body["error"]["code"]) == (400, "BAD_REQUEST")
            assert "cost could not be computed" in body["error"]["message"]
            assert "abc" not in body["error"]["message"]  # never the request's value
        else:
            assert (status, body["error"]["code"]) == (400, "BAD_REQUEST"), app
        # Nothing was charged for the refused request, and the budget stays spent.
        assert not rl.peek("testclient" if app == "asgi" else "127.0.0.1").allowed


@pytest.mark.parametrize("policy", ["allow", "deny"])
def test_key_functions_that_fail_refuse_the_request_whatever_the_policy(policy: str) -> None:
    def broken(request: object) -> str:
        raise RuntimeError("bug in key function, token=s3cret")

    def not_a_string(request: object) -> str:
        return None  # type: ignore[return-value]  # what a careless key function returns

    for key in (broken, not_a_string):
        for status, body in _both(key=key, on_backend_error=policy):
            assert status == 400
            assert body["error"]["code"] == "BAD_REQUEST"
            message = body["error"]["message"]
            assert message.startswith("This request cannot be rate limited: its key")
            assert "s3cret" not in str(body)
            assert "RuntimeError" not in str(body)


def _both(**options: Any) -> list[tuple[int, dict[str, Any]]]:
    asgi = starlette_app(limiter(), **options).get("/")
    wsgi = flask_app(limiter(), **options).test_client().get("/")
    return [(asgi.status_code, asgi.json()), (wsgi.status_code, wsgi.get_json())]


def test_a_refused_request_input_is_logged_by_field_and_rule() -> None:
    def broken(request: object) -> str:
        raise KeyError("s3cret-api-key")

    with capture_logs() as logs:
        _both(key=broken)
    bad = [entry for entry in logs if entry["event"] == "ratelimit.bad_request"]
    assert len(bad) == 2  # one per request (ASGI, WSGI), like refusals
    assert {(e["field"], e["rule"], e["error"]) for e in bad} == {
        ("key", "could not be computed", "KeyError")
    }
    assert "s3cret" not in repr(logs)
    with capture_logs() as logs:
        _both(key=broken, log_refusals=False)
    assert not [entry for entry in logs if entry["event"] == "ratelimit.bad_request"]


def test_wsgi_async_only_backend_follows_policy(down_limiter: RateLimiter) -> None:
    client = flask_app(down_limiter).test_client()
    assert client.get("/").status_code == 200


def test_asgi_passes_non_http_scopes_through() -> None:
    rl = limiter(limit=1)
    app = Starlette(
        routes=[Route("/", hello)],
        middleware=[Middleware(ASGIRateLimitMiddleware, limiter=rl)],
    )
    with TestClient(app) as client:  # runs the lifespan scope through the middleware
        assert client.get("/").status_code == 200
