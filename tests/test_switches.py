"""ENABLE_CIRCUIT_BREAKER / ENABLE_RATE_LIMIT: read at call time, every breaker a
pass-through and every limiter allow-all while off, on every store; reported by
doctor and in the metrics."""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import Backend
from buttress.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from buttress.ratelimit import Rate, RateLimiter, RateLimitExceeded, ahit_all, hit_all
from buttress.switches import CIRCUIT_BREAKER, RATE_LIMIT, SWITCHES, Switch
from buttress.testing import FakeClock
from cli_support import buttress

OFF_WORDS = ["false", "0", "no", "off", " OFF ", "False"]
ON_WORDS = ["", "true", "1", "yes", "on", " TRUE"]


@pytest.fixture
def breakers_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_CIRCUIT_BREAKER", "false")


class Boom(Exception):
    pass


def opened(**options: object) -> CircuitBreaker:
    breaker = CircuitBreaker("payments", registry=None, **options)  # type: ignore[arg-type]
    breaker.force_open()
    return breaker


# -- the switch itself --------------------------------------------------------


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0")))
def test_a_switch_is_off_exactly_for_the_off_words(value: str) -> None:
    switch = Switch("probe", "BUTTRESS_TEST_SWITCH_PROBE")
    os.environ["BUTTRESS_TEST_SWITCH_PROBE"] = value
    try:
        word = value.strip().lower()
        assert switch.off() is (word in {"false", "0", "no", "off"})
        state = switch.state()
        assert state.enabled is not switch.off()
        assert state.valid is (word in {"false", "0", "no", "off", "", "true", "1", "yes", "on"})
        assert state.value == value
    finally:
        del os.environ["BUTTRESS_TEST_SWITCH_PROBE"]
    assert switch.off() is False
    assert switch.state().value is None


@pytest.mark.parametrize("word", OFF_WORDS)
def test_off_words_switch_off_at_call_time(monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    assert CIRCUIT_BREAKER.enabled()
    monkeypatch.setenv("ENABLE_CIRCUIT_BREAKER", word)
    assert CIRCUIT_BREAKER.off()
    monkeypatch.delenv("ENABLE_CIRCUIT_BREAKER")
    assert CIRCUIT_BREAKER.enabled()


@pytest.mark.parametrize("word", [*ON_WORDS, "flase", "disabled"])
def test_other_values_leave_the_protection_on(monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    monkeypatch.setenv("ENABLE_RATE_LIMIT", word)
    assert RATE_LIMIT.enabled()
    assert not RATE_LIMIT.bypass()


# -- circuit breakers ----------------------------------------------------------


def test_an_open_breaker_refuses_until_switched_off_then_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    breaker = opened()
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "ran")
    before = CIRCUIT_BREAKER.bypassed
    monkeypatch.setenv("ENABLE_CIRCUIT_BREAKER", "off")
    assert breaker.call(lambda: "ran") == "ran"
    with pytest.raises(Boom):  # the call's own errors still reach the caller
        breaker.call(lambda: (_ for _ in ()).throw(Boom()))
    assert CIRCUIT_BREAKER.bypassed == before + 2
    assert breaker.state is BreakerState.OPEN  # nothing recorded: the state is kept
    assert breaker.stats().rejected_count == 1
    monkeypatch.setenv("ENABLE_CIRCUIT_BREAKER", "on")
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "ran")


@pytest.mark.usefixtures("breakers_off")
async def test_every_calling_form_passes_through() -> None:
    plain = opened()
    watched = opened(slow_call_threshold=5.0)  # the non-simple path through _admit
    watched.on_call(lambda event: None)
    for breaker in (plain, watched):

        @breaker
        def sync_fn() -> str:
            return "sync"

        @breaker
        async def async_fn() -> str:
            return "async"

        async def coroutine() -> str:
            return "acall"

        assert sync_fn() == "sync"
        assert await async_fn() == "async"
        assert await breaker.acall(coroutine) == "acall"
        with breaker:
            pass
        async with breaker:
            pass
        with pytest.raises(Boom), breaker:
            raise Boom
        assert breaker.state is BreakerState.OPEN
        assert breaker.stats().failure_count == 0


async def test_half_open_probe_limit_refusals_pass_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "probe", registry=None, failure_threshold=1, recovery_timeout=10, clock=clock
    )
    with pytest.raises(Boom):
        breaker.call(lambda: (_ for _ in ()).throw(Boom()))
    clock.advance(11)
    with breaker:  # takes the one half-open probe and holds it
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: "second")
        monkeypatch.setenv("ENABLE_CIRCUIT_BREAKER", "0")
        assert breaker.call(lambda: "second") == "second"
    assert breaker.state is BreakerState.CLOSED  # the probe's success still counts


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def shared_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        dsn = "memory://"
    else:
        dsn = request.getfixturevalue(f"{request.param}_dsn")
    async with connect(dsn) as backend:
        yield backend


async def test_a_shared_breaker_passes_through_without_its_store(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    breaker = CircuitBreaker("shared", backend=shared_backend, registry=None)
    await breaker.aforce_open()

    async def ok() -> str:
        return "ok"

    with pytest.raises(CircuitOpenError):
        await breaker.acall(ok)
    monkeypatch.setenv("ENABLE_CIRCUIT_BREAKER", "false")
    await shared_backend.close()  # a pass-through needs no store round trip
    assert await breaker.acall(ok) == "ok"
    async with breaker:
        pass


# -- rate limiters ---------------------------------------------------------------


def test_a_memory_limiter_allows_everything_while_off(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = RateLimiter(Rate(1, 60), clock=FakeClock())
    other = RateLimiter(Rate(1, 60), clock=FakeClock())
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    before = RATE_LIMIT.bypassed
    monkeypatch.setenv("ENABLE_RATE_LIMIT", "no")
    decision = limiter.hit("k")
    assert (decision.allowed, decision.remaining, decision.retry_after) == (True, 1, 0.0)
    assert limiter.hit("k", cost=1).allowed
    assert limiter.hit("long-" * 100).allowed  # the checked path
    assert limiter.peek("k").allowed
    assert hit_all([(limiter, "k"), (other, "k")]).allowed

    @limiter.limit(key=lambda: "k")
    def guarded() -> str:
        return "ran"

    assert guarded() == "ran"
    assert RATE_LIMIT.bypassed > before
    monkeypatch.delenv("ENABLE_RATE_LIMIT")
    assert not limiter.hit("k").allowed  # what was refused consumed nothing
    with pytest.raises(RateLimitExceeded):
        guarded()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def store_dsn(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_dsn"))


async def test_a_shared_limiter_allows_everything_without_its_store(
    store_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = await connect(store_dsn)
    limiter = RateLimiter(Rate(1, 60), backend=backend, on_backend_error="deny")
    assert (await limiter.ahit("k")).allowed
    assert not (await limiter.ahit("k")).allowed
    monkeypatch.setenv("ENABLE_RATE_LIMIT", "off")
    await backend.close()  # allow-all touches no store: nothing fails, nothing is denied
    assert (await limiter.ahit("k")).allowed
    assert (await limiter.apeek("k")).allowed
    assert (await ahit_all([(limiter, "k")])).allowed
    monkeypatch.delenv("ENABLE_RATE_LIMIT")
    assert not (await limiter.ahit("k")).allowed  # closed store: the deny policy again


def test_the_middleware_serves_every_request_while_off(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from buttress.adapters.asgi_ratelimit import ASGIRateLimitMiddleware

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    limiter = RateLimiter(Rate(1, 60), clock=FakeClock())
    app = Starlette(
        routes=[Route("/", hello)],
        middleware=[Middleware(ASGIRateLimitMiddleware, limiter=limiter, key=lambda s: "one")],
    )
    client = TestClient(app)
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429
    monkeypatch.setenv("ENABLE_RATE_LIMIT", "false")
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 200]


# -- reports ---------------------------------------------------------------------


def test_metrics_show_each_switch_and_its_bypasses(monkeypatch: pytest.MonkeyPatch) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    from buttress.adapters.prometheus import PrometheusMetrics

    registry = prometheus_client.CollectorRegistry()
    PrometheusMetrics(registry).install()

    def value(name: str, switch: str) -> float | None:
        found: float | None = registry.get_sample_value(name, {"switch": switch})
        return found

    assert value("buttress_switch_enabled", "circuit_breaker") == 1.0
    assert value("buttress_switch_enabled", "rate_limit") == 1.0
    monkeypatch.setenv("ENABLE_CIRCUIT_BREAKER", "false")
    before = value("buttress_switch_bypassed_total", "circuit_breaker")
    assert before is not None
    opened().call(lambda: None)
    assert value("buttress_switch_enabled", "circuit_breaker") == 0.0
    assert value("buttress_switch_bypassed_total", "circuit_breaker") == before + 1


@pytest.mark.parametrize(
    ("env", "code", "line"),
    [
        ({}, 0, "[  ok] ENABLE_RATE_LIMIT unset: on"),
        ({"ENABLE_RATE_LIMIT": "off"}, 1, "[warn] ENABLE_RATE_LIMIT 'off': SWITCHED OFF"),
        (
            {"ENABLE_CIRCUIT_BREAKER": "flase"},
            2,
            "[FAIL] ENABLE_CIRCUIT_BREAKER 'flase' is not one of",
        ),
    ],
)
def test_doctor_reports_the_switches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], code: int, line: str
) -> None:
    for switch in SWITCHES:
        monkeypatch.delenv(switch.variable, raising=False)
    result = buttress("doctor", "--dsn", "memory://", cwd=tmp_path, env=env)
    assert line in result.stdout, result.stdout + result.stderr
    assert result.returncode >= code
    if code == 2:
        assert result.returncode == 2
