"""The middleware's hot path gives the same answers as the general path.

``Decision.raw_headers`` (encoded once per limit and window) must equal
``Decision.headers`` encoded field by field; the quick ``_whole_seconds`` must
equal ``ceil(round(seconds, 3))``; the client-address cache must answer as a
fresh resolver does; and the ASGI middleware adds its fields whatever shape of
header list the app sends.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from buttress import connect
from buttress.adapters._asgi_types import Message
from buttress.adapters._ratelimit_http import _KEY_CACHE, ClientAddress
from buttress.adapters.asgi_ratelimit import ASGIRateLimitMiddleware
from buttress.ratelimit import Decision, Rate, RateLimiter
from buttress.ratelimit._values import _whole_seconds
from buttress.testing import FakeClock


def encoded(decision: Decision, **options: Any) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in decision.headers(**options).items()]


# Durations near whole seconds and near the millisecond that rounds either way.
near_whole = st.builds(
    lambda whole, fraction: whole + fraction,
    st.integers(0, 10**9),
    st.sampled_from([0.0, 1e-9, 0.0004999, 0.0005, 0.0005000001, 0.001, 0.0010001, 0.999]),
)
durations = st.one_of(
    st.floats(min_value=0, max_value=2e9, allow_nan=False),
    near_whole,
    st.integers(0, 10**6),
)


@given(durations)
@example(1.000001)
@example(0.0005)
@example(2.0005)
@example(999_999_999.9996)
def test_whole_seconds_is_ceil_of_the_millisecond_rounding(seconds: float) -> None:
    assert _whole_seconds(seconds) == math.ceil(round(seconds, 3))


def test_whole_seconds_fails_alike_on_nan_and_infinity() -> None:
    with pytest.raises(ValueError, match="NaN"):
        _whole_seconds(math.nan)
    with pytest.raises(OverflowError, match="infinity"):
        _whole_seconds(math.inf)


decisions = st.builds(
    Decision,
    st.booleans(),
    st.integers(1, 10**12),
    st.integers(0, 10**12),
    durations,
    durations,
)
windows = st.one_of(st.none(), st.floats(0.001, 1e7), st.integers(1, 10**6))
policies = st.sampled_from(["default", "api", "per-user é"])


@given(decisions, windows, policies)
def test_raw_headers_are_the_headers_encoded(
    decision: Decision, window: float | None, policy: str
) -> None:
    assert decision.raw_headers(window=window, policy=policy) == encoded(
        decision, window=window, policy=policy
    )
    # Twice: the second answer comes from the encoded-once parts.
    assert decision.raw_headers(window=window, policy=policy) == encoded(
        decision, window=window, policy=policy
    )


def test_raw_headers_of_a_decision_not_made_of_ints_match_too() -> None:
    odd = Decision(True, True, 2.5, 1.2, 0.0)  # type: ignore[arg-type]  # bad on purpose
    assert odd.raw_headers(window=60) == encoded(odd, window=60)


def test_raw_headers_keep_a_window_apart_from_another() -> None:
    decision = Decision(True, 10, 9, 6.0, 0.0)
    assert (b"ratelimit-policy", b'"default";q=10;w=60') in decision.raw_headers(window=60)
    assert (b"ratelimit-policy", b'"default";q=10;w=1') in decision.raw_headers(window=0.5)
    assert (b"ratelimit-policy", b'"default";q=10') in decision.raw_headers()


addresses = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["", "unknown", "not-an-ip", " 10.0.0.1 ", "::ffff:192.0.2.7"]),
)


@given(st.lists(st.tuples(addresses, st.one_of(st.none(), addresses)), max_size=20))
def test_the_address_cache_answers_as_a_fresh_resolver(
    calls: list[tuple[str, str | None]],
) -> None:
    for trusted in ((), ("10.0.0.0/8", "unix"), ("::/0", "0.0.0.0/0")):
        cached = ClientAddress(trusted)
        for peer, forwarded in calls + calls:
            assert cached(peer, forwarded) == ClientAddress(trusted)(peer, forwarded)


def test_the_address_cache_stays_bounded() -> None:
    resolve = ClientAddress()
    for i in range(_KEY_CACHE + 10):
        assert resolve(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", None).startswith("10.")
    assert len(resolve._keys) <= _KEY_CACHE


def test_forwarded_for_is_read_only_with_a_trusted_proxy() -> None:
    assert not ClientAddress().reads_forwarded
    assert ClientAddress(["10.0.0.0/8"]).reads_forwarded
    assert ClientAddress(["unix"]).reads_forwarded


async def _exchange(app: Any, headers: object) -> list[Message]:
    """One request through the middleware to an app that answers with ``headers``
    in its start message (or none when ``headers`` is ``...``)."""

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        start: dict[str, Any] = {"type": "http.response.start", "status": 200}
        if headers is not ...:
            start["headers"] = headers
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request"}

    scope = {"type": "http", "path": "/", "headers": [], "client": ("192.0.2.1", 5000)}
    await app(inner)(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"text/plain")],
        ((b"content-type", b"text/plain"),),
        iter([(b"content-type", b"text/plain")]),
        ...,
        None,
    ],
    ids=["list", "tuple", "iterator", "absent", "none"],
)
async def test_admitted_responses_get_the_fields_whatever_the_header_list(
    headers: object,
) -> None:
    limiter = RateLimiter(Rate(5, 60))

    def app(inner: Any) -> ASGIRateLimitMiddleware:
        return ASGIRateLimitMiddleware(inner, limiter)

    start, body = await _exchange(app, headers)
    expected = Decision(True, 5, 4, 12.0, 0.0).raw_headers(window=60.0)
    own = [] if headers in (..., None) else [(b"content-type", b"text/plain")]
    assert start["headers"] == [*own, *expected]
    assert body == {"type": "http.response.body", "body": b"ok"}


async def test_in_process_limiters_decide_alike_through_hit_and_ahit() -> None:
    clock = FakeClock()
    memory = RateLimiter(Rate(3, 60), clock=clock)
    assert memory.in_process
    twin = RateLimiter(Rate(3, 60), prefix="twin", clock=clock)
    for _ in range(4):
        assert memory.hit("k") == await twin.ahit("k")


async def test_a_shared_store_limiter_is_not_in_process(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        assert not RateLimiter(Rate(3, 60), backend=backend).in_process
