"""buttress.db: fingerprints, the read-only guess, statistics, retries and faults on PostgreSQL.

Faults are real: backends terminated with ``pg_terminate_backend`` from another
connection, conflicting SERIALIZABLE transactions, a deadlock, ``pg_sleep``
past the statement timeout, a lock held past ``lock_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from buttress import connect
from buttress.backends import PostgresBackend
from buttress.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from buttress.db import (
    ConnectionLostError,
    Database,
    Transaction,
    counts_as_failure,
    database_check,
    fingerprint,
    is_read_only,
    is_transient,
    normalize,
)
from buttress.db._stats import DatabaseStats, QueryRecorder, percentile
from buttress.errors import ErrorCategory, ValidationError
from buttress.health import HealthRegistry
from buttress.health.status import Status
from buttress.policies import retry
from buttress.testing import FakeClock


def fast_retry(attempts: int = 3) -> Any:
    return retry(
        attempts=attempts,
        base_delay=0.001,
        max_delay=0.005,
        retry_on=is_transient,
        rng=random.Random(7),
    )


# -- SQL text -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", True),
        ("  -- leading comment\n select * from t where a = 'x;y'", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("VALUES (1), (2)", True),
        ("SHOW statement_timeout", True),
        ("EXPLAIN SELECT 1", True),
        ("SELECT 1;", True),
        ("INSERT INTO t VALUES (1)", False),
        ("UPDATE t SET a = 1", False),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", False),
        ("SELECT * INTO backup FROM t", False),
        ("SELECT * FROM t FOR UPDATE", False),
        ("SELECT nextval('seq')", False),
        ("EXPLAIN ANALYZE DELETE FROM t", False),
        ("SELECT 1; DELETE FROM t", False),
        ("", False),
        ("/* only a comment */", False),
        ("CALL proc()", False),
    ],
)
def test_is_read_only_examples(sql: str, expected: bool) -> None:
    assert is_read_only(sql) is expected


def test_literals_hidden_in_strings_and_comments_do_not_fool_the_guess() -> None:
    assert is_read_only("SELECT 'DELETE FROM t' AS text -- UPDATE t")
    assert is_read_only('SELECT "insert" FROM t')  # a quoted name is a name, not a keyword
    assert is_read_only("SELECT $$ UPDATE $$, $q$ ; DELETE $q$")


def test_normalize_replaces_literals_and_keeps_shape() -> None:
    sql = (
        "SELECT * FROM \"Users\" /* c /* nested */ */ WHERE name = 'o''brien' "
        "AND id IN (1, 2, 3) AND score > 4.5e3 AND note = E'a\\'b' AND b = $$x$$ -- tail"
    )
    assert normalize(sql) == (
        'select * from "Users" where name = ? and id in (?) and score > ? and note = ? and b = ?'
    )
    assert normalize("SELECT $1::int") == "select $1::int"


@settings(max_examples=60)
@given(
    first=st.one_of(st.integers(), st.text(max_size=20)),
    second=st.one_of(st.integers(), st.text(max_size=20)),
)
def test_fingerprint_is_the_same_whatever_the_literal(first: object, second: object) -> None:
    def literal(value: object) -> str:
        if isinstance(value, int):
            return str(abs(value))
        return "'" + str(value).replace("'", "''") + "'"

    one = fingerprint(f"SELECT * FROM t WHERE a = {literal(first)} AND b = $1")
    two = fingerprint(f"select *   from t where a = {literal(second)} and b = $1")
    assert one == two
    assert len(one.digest) == 16
    if isinstance(first, str) and len(first) > 3:
        assert first not in one.text


_WRITES = ["INSERT", "update", "Delete", "MERGE", "truncate", "DROP", "nextval", "INTO"]


@settings(max_examples=60)
@given(
    word=st.sampled_from(_WRITES),
    before=st.lists(st.sampled_from(["a", "b", "1", ",", "(", ")", "x.y"]), max_size=5),
    after=st.lists(st.sampled_from(["a", "b", "1", ",", "(", ")", "x.y"]), max_size=5),
)
def test_a_write_word_anywhere_makes_a_statement_not_read_only(
    word: str, before: list[str], after: list[str]
) -> None:
    sql = " ".join(["SELECT", *before, word, *after])
    assert is_read_only(sql) is False


@settings(max_examples=200)
@given(sql=st.text(max_size=80))
def test_reading_any_text_never_fails(sql: str) -> None:
    shape = fingerprint(sql)
    assert "\n" not in shape.text
    assert isinstance(is_read_only(sql), bool)
    assert fingerprint(sql) == shape


@settings(max_examples=100)
@given(value=st.text(max_size=30))
def test_a_quoted_value_never_reaches_the_fingerprint(value: str) -> None:
    quoted = value.replace("'", "''")
    dollar = value.replace("$", "")
    assert fingerprint(f"SELECT * FROM t WHERE note = '{quoted}'").text == (
        "select * from t where note = ?"
    )
    assert fingerprint(f"UPDATE t SET note = $${dollar}$$ WHERE id = 1").text == (
        "update t set note = ? where id = ?"
    )


def test_importing_buttress_db_does_not_import_the_driver() -> None:
    code = "import sys, buttress.db; assert 'asyncpg' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sql_must_be_text() -> None:
    with pytest.raises(ValidationError, match="sql"):
        is_read_only(cast(str, b"SELECT 1"))


# -- statistics core --------------------------------------------------------------


@settings(max_examples=60)
@given(
    samples=st.lists(
        st.tuples(st.floats(min_value=0, max_value=10), st.booleans()), min_size=1, max_size=50
    ),
    window=st.integers(min_value=1, max_value=16),
)
def test_recorder_keeps_a_bounded_window(samples: list[tuple[float, bool]], window: int) -> None:
    recorder = QueryRecorder(window)
    for seconds, failed in samples:
        if failed:
            recorder.record_failure(seconds, ErrorCategory.DATABASE)
        else:
            recorder.record(seconds)
    stats = recorder.snapshot({})
    recent = samples[-window:]
    assert stats.queries == len(samples)
    assert stats.failures == sum(failed for _, failed in samples)
    assert stats.window == len(recent)
    assert stats.error_rate == pytest.approx(sum(f for _, f in recent) / len(recent))
    latencies = [seconds * 1000 for seconds, _ in recent]
    assert min(latencies) - 1e-9 <= stats.p95_latency_ms <= max(latencies) + 1e-9
    assert stats.avg_latency_ms == pytest.approx(sum(s for s, _ in samples) * 1000 / len(samples))
    assert stats.errors.get("database", 0) == stats.failures


def test_stats_to_dict_is_every_field_in_plain_values() -> None:
    recorder = QueryRecorder(4)
    recorder.record(0.5)
    recorder.record_failure(0.25, ErrorCategory.DATABASE)
    assert recorder.snapshot({"read": "closed"}).to_dict() == {
        "queries": 2,
        "failures": 1,
        "retries": 0,
        "slow_queries": 0,
        "avg_latency_ms": 375.0,
        "p95_latency_ms": 500.0,
        "max_latency_ms": 500.0,
        "error_rate": 0.5,
        "window": 2,
        "errors": {"database": 1},
        "breakers": {"read": "closed"},
    }
    plain = recorder.snapshot({}).to_dict()
    assert type(plain["errors"]) is dict  # not the read-only view: json.dumps takes it
    assert list(plain) == [field.name for field in attrs.fields(DatabaseStats)]


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.95) == 0.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0


# -- the client without a server (a fake pool) -----------------------------------


class FakePool:
    """Enough of an asyncpg pool for the retry decisions: scripted failures, then a value.

    It is its own connection; ``closes`` lists, per failure, whether the
    connection reads as closed afterwards.
    """

    def __init__(self, *failures: BaseException, closes: bool = False) -> None:
        self.failures = list(failures)
        self.closes = closes
        self.closed = False
        self.calls: list[tuple[str, float | None]] = []

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakePool]:
        self.closed = False  # the pool hands out a working connection
        yield self

    def is_closed(self) -> bool:
        return self.closed

    async def fetchval(self, sql: str, *args: object, timeout: float | None = None) -> object:  # noqa: ASYNC109  (asyncpg's signature)
        self.calls.append((sql, timeout))
        if self.failures:
            self.closed = self.closes
            raise self.failures.pop(0)
        return 42

    execute = fetchval


def fake_db(pool: FakePool, **options: Any) -> Database:
    return Database(cast("asyncpg.Pool[asyncpg.Record]", pool), **options)


async def test_a_read_is_retried_on_a_transient_error_and_counted_once() -> None:
    pool = FakePool(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    db = fake_db(pool, retry=fast_retry(), statement_timeout=2.5)
    assert await db.fetchval("SELECT 42") == 42
    assert pool.calls == [("SELECT 42", 2.5), ("SELECT 42", 2.5)]
    stats = db.stats()
    assert (stats.queries, stats.retries, stats.failures) == (1, 1, 0)


async def test_a_write_is_not_retried_unless_marked_idempotent() -> None:
    pool = FakePool(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    db = fake_db(pool, retry=fast_retry())
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError) as caught:
        await db.execute("INSERT INTO t VALUES (1)")
    assert any("idempotent=True" in note for note in caught.value.__notes__)
    assert len(pool.calls) == 1

    pool = FakePool(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    db = fake_db(pool, retry=fast_retry())
    await db.execute("UPDATE t SET a = 1 WHERE id = 2", idempotent=True)
    assert len(pool.calls) == 2


async def test_a_read_marked_not_idempotent_is_not_retried() -> None:
    pool = FakePool(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    db = fake_db(pool, retry=fast_retry())
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
        await db.fetchval("SELECT my_function_that_writes()", idempotent=False)
    assert len(pool.calls) == 1


async def test_errors_that_are_not_transient_are_never_retried() -> None:
    for error in (
        asyncpg.exceptions.UniqueViolationError("dup"),
        asyncpg.exceptions.PostgresSyntaxError("syntax"),
        TimeoutError(),
    ):
        pool = FakePool(error)
        db = fake_db(pool, retry=fast_retry())
        with pytest.raises(type(error)):
            await db.fetchval("SELECT 1")
        assert len(pool.calls) == 1
        assert db.stats().retries == 0


async def test_retries_stop_after_the_policy_s_attempts() -> None:
    errors = [asyncpg.exceptions.SerializationError("conflict") for _ in range(5)]
    pool = FakePool(*errors)
    db = fake_db(pool, retry=fast_retry(attempts=3))
    with pytest.raises(asyncpg.exceptions.SerializationError) as caught:
        await db.fetchval("SELECT 1")
    assert len(pool.calls) == 3
    assert any("gave up after 3 attempt(s)" in note for note in caught.value.__notes__)
    stats = db.stats()
    assert (stats.queries, stats.retries, stats.failures) == (1, 2, 1)
    assert stats.errors == {"database": 1}


async def test_retry_waits_on_the_policy_clock() -> None:
    clock = FakeClock()
    policy = retry(attempts=2, base_delay=5.0, max_delay=5.0, jitter=False, clock=clock)
    pool = FakePool(asyncpg.exceptions.DeadlockDetectedError("deadlock"))
    db = fake_db(pool, retry=policy)
    before = clock.monotonic()
    assert await db.fetchval("SELECT 1") == 42
    assert clock.monotonic() - before == pytest.approx(5.0)


async def test_a_driver_error_on_a_closed_connection_is_a_lost_connection() -> None:
    state_error = asyncpg.exceptions.InternalClientError("cannot switch to state 11")
    pool = FakePool(state_error, closes=True)
    db = fake_db(pool, retry=fast_retry())
    assert await db.fetchval("SELECT 1") == 42
    assert db.stats().retries == 1

    pool = FakePool(state_error, closes=True)
    db = fake_db(pool, retry=fast_retry())
    with pytest.raises(ConnectionLostError) as caught:
        await db.execute("DELETE FROM t")
    assert caught.value.__cause__ is state_error
    assert db.stats().errors == {"network": 1}

    # The same driver error on a connection that is still open is not reinterpreted.
    pool = FakePool(state_error, closes=False)
    db = fake_db(pool, retry=fast_retry())
    with pytest.raises(asyncpg.exceptions.InternalClientError):
        await db.fetchval("SELECT 1")


async def test_retry_none_disables_retries() -> None:
    pool = FakePool(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    db = fake_db(pool, retry=None)
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
        await db.fetchval("SELECT 1")
    assert len(pool.calls) == 1


def test_bad_options_are_refused_with_the_field_named() -> None:
    pool = FakePool()
    for options, field in [
        ({"statement_timeout": 0}, "statement_timeout"),
        ({"statement_timeout": float("nan")}, "statement_timeout"),
        ({"slow_query_threshold": -1}, "slow_query_threshold"),
        ({"window": 0}, "window"),
        ({"breakers": {"reads": CircuitBreaker("x", registry=None)}}, "breakers"),
        ({"breakers": {"read": object()}}, "breakers"),
        ({"retry": 3}, "retry"),
        ({"name": ""}, "name"),
    ]:
        with pytest.raises(ValidationError, match=field):
            fake_db(pool, **cast(dict[str, Any], options))
    with pytest.raises(ValidationError, match="pool"):
        Database(cast("asyncpg.Pool[asyncpg.Record]", object()))


async def test_a_backend_of_another_kind_is_refused_by_name() -> None:
    async with connect("memory://") as backend:
        with pytest.raises(ValidationError, match="got a memory backend"):
            Database(backend)


async def test_a_bad_per_call_timeout_is_refused_before_anything_runs() -> None:
    pool = FakePool()
    db = fake_db(pool)
    with pytest.raises(ValidationError, match="timeout"):
        await db.fetchval("SELECT 1", timeout=-1)
    assert pool.calls == []


async def test_health_check_follows_error_rate_and_breakers() -> None:
    read = CircuitBreaker("db-read-health", failure_threshold=3, registry=None)
    pool = FakePool()
    db = fake_db(pool, retry=None, breakers={"read": read})
    check = database_check(db, degraded_error_rate=0.2, unhealthy_error_rate=0.6)
    for _ in range(9):
        await db.fetchval("SELECT 1")
    healthy = check()
    assert healthy.status is Status.HEALTHY
    assert healthy.observed_value == 0.0
    pool.failures = [asyncpg.exceptions.PostgresSyntaxError("x")] * 3
    for _ in range(3):
        with pytest.raises(asyncpg.exceptions.PostgresSyntaxError):
            await db.fetchval("SELECT broken")
    # 3 of 12 failed; without a failure predicate even syntax errors open the breaker.
    degraded = check()
    assert degraded.status is Status.UNHEALTHY  # the only breaker is open
    assert "read" in (degraded.message or "")
    read.reset()
    assert check().status is Status.DEGRADED
    registry = HealthRegistry()
    registry.register("database", check)
    report = await registry.run()
    assert report.components["database"].status is Status.DEGRADED
    assert report.components["database"].observed_value == 0.25
    with pytest.raises(ValidationError, match="degraded_error_rate"):
        database_check(db, degraded_error_rate=0.9, unhealthy_error_rate=0.5)


# -- real PostgreSQL --------------------------------------------------------------


@pytest.fixture
async def pools(postgres_dsn: str) -> AsyncIterator[tuple[asyncpg.Pool[Any], asyncpg.Connection]]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=3)
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(
        "CREATE TABLE items (id int PRIMARY KEY, kind int NOT NULL, note text);"
        "INSERT INTO items VALUES (1, 1, 'a'), (2, 2, 'b')"
    )
    try:
        yield pool, admin
    finally:
        await admin.close()
        pool.terminate()


async def terminate_when_running(admin: asyncpg.Connection, marker: str) -> int:
    """Wait until a statement containing ``marker`` runs, then kill its backend; its pid."""
    for _ in range(500):
        pid = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' "
            "AND pid <> pg_backend_pid() AND position($1 in query) > 0",
            marker,
        )
        if pid is not None:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            return int(pid)
        await asyncio.sleep(0.01)
    raise AssertionError("the statement never started")


async def test_terminated_backend_during_a_read_is_retried_on_a_new_connection(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, admin = pools
    db = Database(pool, retry=fast_retry())
    task = asyncio.create_task(db.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.3)"))
    victim = await terminate_when_running(admin, "pg_sleep(0.3)")
    survivor = await task
    assert survivor != victim
    stats = db.stats()
    assert (stats.queries, stats.retries, stats.failures) == (1, 1, 0)


async def test_terminated_backend_during_an_insert_is_not_retried(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, admin = pools
    db = Database(pool, retry=fast_retry())
    task = asyncio.create_task(
        db.execute("INSERT INTO items (id, kind) SELECT 10, 3 FROM pg_sleep(0.3)")
    )
    await terminate_when_running(admin, "pg_sleep(0.3)")
    with pytest.raises(asyncpg.PostgresError) as caught:
        await task
    assert is_transient(caught.value)
    assert any("idempotent=True" in note for note in caught.value.__notes__)
    assert await admin.fetchval("SELECT count(*) FROM items WHERE id = 10") == 0
    stats = db.stats()
    assert (stats.queries, stats.retries, stats.failures) == (1, 0, 1)
    assert stats.errors == {"network": 1}
    # The pool recovers: the next call gets a fresh connection.
    assert await db.fetchval("SELECT 1") == 1


async def _serialization_conflict(db: Database) -> list[int]:
    """Two SERIALIZABLE transactions that each read what the other writes (write skew)."""
    both_read = asyncio.Barrier(2)
    attempts = [0, 0]

    def body(index: int, reads: int, writes: int) -> Any:
        async def run(tx: Transaction) -> None:
            attempts[index] += 1
            await tx.fetchval("SELECT count(*) FROM items WHERE kind = $1", reads)
            if attempts[index] == 1:
                await both_read.wait()
            await tx.execute("INSERT INTO items (id, kind) VALUES ($1, $2)", 100 + index, writes)

        return run

    await asyncio.gather(
        db.run_transaction(body(0, 1, 2), isolation="serializable"),
        db.run_transaction(body(1, 2, 1), isolation="serializable"),
    )
    return attempts


async def test_serialization_failure_reruns_the_transaction(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, admin = pools
    db = Database(pool, retry=fast_retry())
    attempts = await _serialization_conflict(db)
    assert sorted(attempts) == [1, 2]
    assert db.stats().retries == 1
    assert await admin.fetchval("SELECT count(*) FROM items WHERE id >= 100") == 2


async def test_serialization_failure_without_retry_surfaces(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, _ = pools
    db = Database(pool, retry=None)
    with pytest.raises(asyncpg.exceptions.SerializationError):
        await _serialization_conflict(db)
    assert db.stats().errors == {"database": 1}


async def test_deadlock_victim_is_rerun(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, _ = pools
    db = Database(pool, retry=fast_retry())
    both_locked = asyncio.Barrier(2)
    attempts = [0, 0]

    def body(index: int, first: int, second: int) -> Any:
        async def run(tx: Transaction) -> None:
            attempts[index] += 1
            await tx.execute("SET LOCAL deadlock_timeout = '20ms'")
            await tx.execute("UPDATE items SET note = 'x' WHERE id = $1", first)
            if attempts[index] == 1:
                await both_locked.wait()
            await tx.execute("UPDATE items SET note = 'y' WHERE id = $1", second)

        return run

    await asyncio.gather(
        db.run_transaction(body(0, 1, 2), isolation="read_committed"),
        db.run_transaction(body(1, 2, 1), isolation="read_committed"),
    )
    assert sorted(attempts) == [1, 2]
    stats = db.stats()
    assert stats.retries == 1
    assert stats.errors == {"database": 1}


async def test_statement_timeout_cancels_on_the_server_and_is_not_retried(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, admin = pools
    db = Database(pool, retry=fast_retry(), statement_timeout=0.1)
    with pytest.raises(TimeoutError):
        await db.fetchval("SELECT pg_sleep(30)")
    stats = db.stats()
    assert (stats.queries, stats.retries, stats.failures) == (1, 0, 1)
    assert stats.errors == {"timeout": 1}
    running = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        "AND query LIKE 'SELECT pg_sleep(30)%'"
    )
    assert running == 0
    # A per-call timeout overrides the default.
    assert await db.fetchval("SELECT 1 FROM pg_sleep(0.15)", timeout=5) == 1


async def test_lock_timeout_is_retried_by_run_transaction_then_reported(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, admin = pools
    db = Database(pool, retry=fast_retry(attempts=3))
    holder = admin.transaction()
    await holder.start()
    await admin.execute("SELECT * FROM items WHERE id = 1 FOR UPDATE")
    try:

        async def update(tx: Transaction) -> str:
            return await tx.execute("UPDATE items SET note = 'z' WHERE id = 1")

        with pytest.raises(asyncpg.exceptions.LockNotAvailableError) as caught:
            await db.run_transaction(update, isolation="read_committed", lock_timeout=0.05)
        assert any("gave up after 3 attempt(s)" in note for note in caught.value.__notes__)
        assert db.stats().retries == 2
        # In a plain transaction() block nothing is retried.
        with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
            async with db.transaction(lock_timeout=0.05) as tx:
                await tx.execute("UPDATE items SET note = 'z' WHERE id = 1")
        assert db.stats().retries == 2
    finally:
        await holder.rollback()
    assert await db.run_transaction(update, lock_timeout=0.5) == "UPDATE 1"


async def test_backends_ended_while_idle_do_not_fail_a_read(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, admin = pools
    db = Database(pool, retry=fast_retry())
    before = await db.fetchval("SELECT pg_backend_pid()")
    ended = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid() AND datname = current_database()"
    )
    assert ended >= 1
    # Whether the pool notices first or the driver trips over the dead session,
    # the read comes back from a new backend.
    after = await db.fetchval("SELECT pg_backend_pid()")
    assert after != before
    assert db.stats().failures == 0


async def test_stats_match_what_ran(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, _ = pools
    db = Database(pool, retry=None, window=4)
    assert [tuple(row) for row in await db.fetch("SELECT id FROM items ORDER BY id")] == [
        (1,),
        (2,),
    ]
    row = await db.fetchrow("SELECT note FROM items WHERE id = $1", 2)
    assert row is not None
    assert row["note"] == "b"
    assert await db.fetchval("SELECT id, note FROM items WHERE id = 1", column=1) == "a"
    assert await db.execute("UPDATE items SET note = $1 WHERE id = $2", "c", 1) == "UPDATE 1"
    await db.executemany("INSERT INTO items (id, kind) VALUES ($1, $2)", [(3, 1), (4, 1)])
    with pytest.raises(asyncpg.exceptions.UndefinedTableError):
        await db.fetchval("SELECT * FROM missing")
    async with db.transaction() as tx:
        assert await tx.fetchval("SELECT count(*) FROM items") == 4
        await tx.execute("DELETE FROM items WHERE id = 4")
    stats = db.stats()
    # 6 calls, 2 statements in the transaction and its COMMIT.
    assert stats.queries == 9
    assert stats.failures == 1
    assert stats.errors == {"database": 1}
    assert stats.window == 4
    assert stats.error_rate == 0.25  # the failure (6th) is one of the last 4
    assert 0 < stats.avg_latency_ms <= stats.max_latency_ms
    assert stats.p95_latency_ms <= stats.max_latency_ms
    assert stats.to_dict()["queries"] == 9
    db.reset_stats()
    assert db.stats().queries == 0


async def test_transaction_rolls_back_on_error(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, admin = pools
    db = Database(pool)

    async def delete_then_fail() -> None:
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM items")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await delete_then_fail()
    assert await admin.fetchval("SELECT count(*) FROM items") == 2


async def test_slow_query_log_has_the_fingerprint_never_the_values(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, _ = pools
    db = Database(pool, slow_query_threshold=0.05)
    sql = "SELECT $1::text || 'literal-secret' FROM pg_sleep(0.06)"
    with capture_logs() as logs:
        await db.fetchval(sql, "parameter-secret")
        await db.fetchval("SELECT 1")  # fast: not logged
    slow = [entry for entry in logs if entry["event"] == "db.slow_query"]
    assert len(slow) == 1
    entry = slow[0]
    assert entry["fingerprint"] == fingerprint(sql).digest
    assert entry["statement"] == "select $1::text || ? from pg_sleep(?)"
    assert entry["duration_ms"] >= 50
    assert "secret" not in repr(logs)
    assert db.stats().slow_queries == 1


async def test_failed_query_log_names_the_category_not_the_values(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, _ = pools
    db = Database(pool)
    with capture_logs() as logs, pytest.raises(asyncpg.exceptions.UniqueViolationError):
        await db.execute("INSERT INTO items (id, kind, note) VALUES (1, 1, 'hidden-value')")
    failed = [entry for entry in logs if entry["event"] == "db.query_failed"]
    assert len(failed) == 1
    assert failed[0]["category"] == "validation"
    assert "hidden-value" not in repr(logs)


async def test_breakers_per_operation_kind(
    pools: tuple[asyncpg.Pool[Any], asyncpg.Connection],
) -> None:
    pool, _ = pools
    read = CircuitBreaker(
        "db-test-read", failure_threshold=2, failure_on_exception=counts_as_failure, registry=None
    )
    db = Database(pool, retry=None, breakers={"read": read})
    # The caller's mistakes do not open the breaker...
    for _ in range(3):
        with pytest.raises(asyncpg.exceptions.PostgresSyntaxError):
            await db.fetchval("SELEC 1")
    assert read.state is BreakerState.CLOSED
    # ...timeouts do.
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await db.fetchval("SELECT pg_sleep(5)", timeout=0.05)
    assert db.stats().breakers == {"read": "open"}
    with pytest.raises(CircuitOpenError):
        await db.fetchval("SELECT 1")
    # Writes have no breaker here and still run.
    assert await db.execute("UPDATE items SET note = 'w' WHERE id = 1") == "UPDATE 1"
    check = database_check(db)
    assert check().status is Status.UNHEALTHY


async def test_wraps_a_buttress_backend(postgres_dsn: str) -> None:
    async with await connect(postgres_dsn, migrate=False) as backend:
        db = Database(backend)
        assert isinstance(backend, PostgresBackend)
        assert db.pool is backend.pool
        assert await db.fetchval("SELECT 40 + $1::int", 2) == 42
        assert repr(db) == "Database('db', statement_timeout=30.0)"
