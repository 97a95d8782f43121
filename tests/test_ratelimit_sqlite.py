"""SQLite specifics of RateLimiter: sync calls with an injected clock, sync
hit_all, persistence, row eviction and the table from migration 0006. Shared behaviour is in
test_ratelimit_backends.py."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest

from buttress import connect
from buttress.backends import MissingTableError, SqliteBackend
from buttress.errors import BackendError, UnsupportedBackendError
from buttress.migrations import apply_builtin
from buttress.ratelimit import Rate, RateLimiter, hit_all
from buttress.ratelimit import _sqlite as sqlite_store
from buttress.testing import FakeClock

ALGORITHMS = ["gcra", "sliding_window", "fixed_window"]


@pytest.fixture
async def backend(sqlite_dsn: str) -> AsyncIterator[SqliteBackend]:
    async with connect(sqlite_dsn) as b:
        assert isinstance(b, SqliteBackend)
        yield b


def rows(backend: SqliteBackend) -> int:
    with sqlite3.connect(backend.path) as conn:
        count: int = conn.execute("SELECT count(*) FROM buttress_rate_limits").fetchone()[0]
    return count


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_sync_hits_decide_like_memory(backend: SqliteBackend, algorithm: str) -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(3, 10), algorithm=algorithm, backend=backend, clock=clock)
    twin = RateLimiter(Rate(3, 10), algorithm=algorithm, clock=clock)
    decisions = [limiter.hit("k") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions == [twin.hit("k") for _ in range(4)]
    for advance, cost in [(decisions[3].retry_after, 1), (0.5, 2), (3.0, 1), (10.0, 3)]:
        clock.advance(advance)
        assert limiter.hit("k", cost) == twin.hit("k", cost)
        assert limiter.peek("k", 0) == twin.peek("k", 0)


async def test_state_survives_a_new_limiter(backend: SqliteBackend) -> None:
    first = RateLimiter(Rate(2, 3600), backend=backend)
    first.hit("k", 2)
    second = RateLimiter(Rate(2, 3600), backend=backend)
    assert not second.hit("k").allowed


async def test_expired_rows_are_swept(
    backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "SWEEP_EVERY", 10)
    clock = FakeClock()
    limiter = RateLimiter(Rate(1, 1), backend=backend, clock=clock)
    for i in range(9):
        limiter.hit(f"old-{i}")
    assert rows(backend) == 9
    clock.advance(5)
    limiter.hit("new")  # the tenth commit sweeps
    assert rows(backend) == 1


async def test_in_memory_sqlite_is_refused_clearly() -> None:
    async with connect("sqlite://") as b:
        limiter = RateLimiter(Rate(1, 1), backend=b, on_backend_error="allow")
        with pytest.raises(UnsupportedBackendError, match="SQLite file"):
            limiter.hit("k")


async def test_sync_hit_all_is_all_or_nothing(backend: SqliteBackend) -> None:
    user = RateLimiter(Rate(5, 60), backend=backend, prefix="u")
    global_ = RateLimiter(Rate(1, 60), algorithm="fixed_window", backend=backend, prefix="g")
    assert hit_all([(user, "ann"), (global_, "all")]).allowed
    refused = hit_all([(user, "bob"), (global_, "all")])
    assert not refused.allowed
    assert refused.limit == 1
    assert user.peek("bob", 0).remaining == 5


async def test_sync_path_uses_the_migrated_table(backend: SqliteBackend) -> None:
    # connect() (migrate=True) created the table; the limiter's own sync
    # connection sees it and creates nothing.
    assert await backend.fetchval(
        "SELECT count(*) FROM schema_migrations WHERE namespace = 'buttress' AND version = 6"
    )
    limiter = RateLimiter(Rate(2, 60), backend=backend)
    assert limiter.hit("k").remaining == 1
    assert rows(backend) == 1


async def test_without_migrations_the_error_names_the_table_and_fix(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn, migrate=False) as raw:
        assert isinstance(raw, SqliteBackend)
        limiter = RateLimiter(Rate(2, 60), backend=raw)
        with pytest.raises(MissingTableError) as caught:
            limiter.hit("k")  # the sync path, on its own sqlite3 connection
        error = caught.value
        assert isinstance(error, BackendError)
        assert (error.component, error.tables) == ("RateLimiter", ("buttress_rate_limits",))
        assert error.migrations == ("0006_rate_limits",)
        assert "run `buttress migrate` or connect with migrate=True" in str(error)
        with pytest.raises(MissingTableError, match="table buttress_rate_limits is missing"):
            await limiter.ahit("k")
        with pytest.raises(MissingTableError):
            limiter.reset("k")
        await apply_builtin(raw)
        assert limiter.hit("k").remaining == 1


async def test_a_missing_table_is_never_hidden_by_the_outage_policy(sqlite_dsn: str) -> None:
    # Allowing every request because nobody ran the migrations would switch
    # rate limiting off silently: the misuse surfaces whatever the policy.
    async with connect(sqlite_dsn, migrate=False) as raw:
        for policy in ("allow", "deny"):
            limiter = RateLimiter(Rate(5, 1.0), backend=raw, on_backend_error=policy)
            with pytest.raises(MissingTableError, match="buttress migrate"):
                await limiter.ahit("k")
            with pytest.raises(MissingTableError):
                limiter.hit("k")
