"""Keys from requests cannot switch a limiter off: long, NUL or surrogate keys on every backend.

A key over a store's limits used to fail in the store; the failure became a
``BackendError`` and ``on_backend_error="allow"`` let the request through.
Keys are now normalised before any store sees them, alike on every backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import Backend
from buttress.ratelimit import Rate, RateLimiter
from buttress.ratelimit._core import MAX_KEY_LENGTH, storage_key

HOSTILE = {
    "long": "k" * 3000,
    "nul": "user\x00admin",
    "surrogate": "user\udc80",
    "control": "a\tb\nc",
    "looks-hashed": "~h:" + "0" * 32,
    "non-ascii": "ключ-" + "ü" * 10,
}


@pytest.fixture
async def backend(any_dsn: str) -> AsyncIterator[Backend]:
    async with connect(any_dsn) as b:
        yield b


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_a_hostile_key_is_limited_like_any_other(backend: Backend, name: str) -> None:
    key = HOSTILE[name]
    limiter = RateLimiter(Rate(1, 60), backend=backend, on_backend_error="allow")
    first = await limiter.ahit(key)
    second = await limiter.ahit(key)
    assert (first.allowed, second.allowed) == (True, False)
    assert not (await limiter.apeek(key)).allowed
    await limiter.areset(key)
    assert (await limiter.ahit(key)).allowed
    # A neighbouring key is untouched by the hostile one's state.
    assert (await limiter.ahit(key + "x")).allowed


@pytest.mark.parametrize("any_dsn", ["memory", "sqlite", "redis"], indirect=True)
def test_a_hostile_key_is_limited_from_sync_code_too(backend: Backend) -> None:
    limiter = RateLimiter(Rate(1, 60), backend=backend, on_backend_error="allow")
    for key in HOSTILE.values():
        assert [limiter.hit(key).allowed, limiter.hit(key).allowed] == [True, False]


def test_the_wsgi_middleware_refuses_a_long_header_key_on_sqlite(tmp_path: object) -> None:
    import asyncio

    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from buttress.adapters.wsgi_ratelimit import WSGIRateLimitMiddleware

    async def open_backend() -> Backend:
        return await connect(f"sqlite:///{tmp_path}/limits.db")

    backend = asyncio.run(open_backend())
    try:
        limiter = RateLimiter(Rate(1, 60), backend=backend)

        middleware = WSGIRateLimitMiddleware(
            Response("ok"),  # a werkzeug Response is a WSGI application
            limiter,
            key=lambda environ: str(environ.get("HTTP_X_API_KEY", "")),
            on_backend_error="allow",
        )
        client = Client(middleware)
        headers = {"X-Api-Key": "A" * 4000 + "\x00"}
        codes = [client.get("/", headers=headers).status_code for _ in range(3)]
        assert codes == [200, 429, 429]
    finally:
        asyncio.run(backend.close())


@given(st.text(max_size=400))
def test_storage_keys_are_bounded_printable_and_distinct(key: str) -> None:
    stored = storage_key(key)
    assert len(stored) <= MAX_KEY_LENGTH
    assert stored.isprintable()
    stored.encode("utf-8")  # never a lone surrogate
    # Kept verbatim, or digested: and a digest never equals a verbatim key.
    assert stored == key or stored.startswith("~h:")
    if stored.startswith("~h:"):
        assert stored != key


@given(st.text(max_size=300), st.text(max_size=300))
def test_different_keys_never_share_a_storage_key(one: str, two: str) -> None:
    if one != two:
        assert storage_key(one) != storage_key(two)


def test_a_flood_of_new_keys_cannot_grow_memory_or_free_an_exhausted_key() -> None:
    from buttress.testing import FakeClock

    clock = FakeClock()
    limiter = RateLimiter(Rate(2, 60), clock=clock, max_keys=1000)
    assert [limiter.hit("victim").allowed for _ in range(3)] == [True, True, False]
    for i in range(5000):
        assert limiter.hit(f"flood-{i}").allowed
    table = limiter._table
    assert table is not None
    assert len(table.data) <= 1000
    assert table.evicted >= 4000
    # The exhausted key is the furthest from replenishment: it is kept, still limited.
    assert not limiter.hit("victim").allowed


def test_max_keys_is_validated() -> None:
    from buttress.errors import ValidationError

    with pytest.raises(ValidationError, match="max_keys"):
        RateLimiter(Rate(1, 1), max_keys=0)
