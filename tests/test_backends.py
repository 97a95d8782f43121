"""Backends on real stores: lifecycle, the shared SQL interface, failures, secrets."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import buttress.migrations
from buttress import connect
from buttress.backends import (
    Backend,
    MemoryBackend,
    PostgresBackend,
    RedisBackend,
    SqlBackend,
    SqliteBackend,
    open_backend,
    require_sql,
)
from buttress.errors import (
    BackendError,
    BackendUnavailableError,
    InvalidDSNError,
    MissingDependencyError,
    UnsupportedBackendError,
    ValidationError,
)
from servers import PostgresServer, RedisServer, free_port

FAST_FAIL = {"connect_attempts": 2, "connect_deadline": 1.0, "connect_timeout": 2.0}


def ph(backend: SqlBackend, n: int) -> str:
    """The n-th placeholder in the backend's dialect."""
    return f"${n}" if backend.dialect == "postgresql" else "?"


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Text of ``exc`` and of everything chained to it (cause and context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield from (str(arg) for arg in current.args)
        current = current.__cause__ or current.__context__


@pytest.fixture
async def sql(sql_dsn: str) -> AsyncIterator[SqlBackend]:
    async with connect(sql_dsn) as backend:
        yield require_sql(backend, "tests")


# --- connect() and lifecycle --------------------------------------------------------------


async def test_memory_backend_lifecycle() -> None:
    backend = await connect("memory://")
    assert isinstance(backend, MemoryBackend)
    assert backend.kind == "memory"
    assert backend.dsn == "memory://"
    latency = await backend.ping()
    assert isinstance(latency, float)
    assert latency >= 0
    await backend.close()
    await backend.close()
    assert backend.closed
    assert "closed" in repr(backend)


async def test_connect_is_awaitable_and_a_context_manager(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        assert isinstance(backend, SqliteBackend)
        assert not backend.closed
    assert backend.closed


async def test_connecting_repr_is_redacted() -> None:
    pending = connect("postgresql://app:hunter2@db/app")
    assert "hunter2" not in repr(pending)
    assert "app:***@db" in repr(pending)


async def test_connect_object_can_only_be_opened_once() -> None:
    pending = connect("memory://")
    backend = await pending
    with pytest.raises(BackendError, match="already awaited"):
        await pending
    await backend.close()


async def test_bad_dsn_is_refused_before_anything_opens() -> None:
    with pytest.raises(InvalidDSNError, match="'mongodb'"):
        await connect("mongodb://u:pw@host/db")


@pytest.mark.parametrize(
    "dsn",
    ["memory://", "sqlite://", "postgresql://u:pw@127.0.0.1:1/db", "redis://127.0.0.1:1/0"],
)
async def test_unknown_option_names_the_option(dsn: str) -> None:
    with pytest.raises(ValidationError, match="unknown option") as info:
        await connect(dsn, pool_szie=3)
    assert info.value.field == "pool_szie"


@pytest.mark.parametrize(
    ("dsn", "option", "value"),
    [
        ("sqlite://", "busy_timeout", -1),
        ("sqlite://", "max_size", 0),
        ("sqlite://", "migrate", "yes"),
        ("postgresql://127.0.0.1:1/db", "max_size", True),
        ("postgresql://127.0.0.1:1/db", "statement_timeout", float("nan")),
        ("postgresql://127.0.0.1:1/db", "server_settings", {"a": 1}),
        ("postgresql://127.0.0.1:1/db", "application_name", 3),
        ("redis://127.0.0.1:1/0", "decode_responses", "no"),
        ("redis://127.0.0.1:1/0", "connect_attempts", 0),
    ],
)
async def test_bad_option_values_name_the_option(dsn: str, option: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        await open_backend(dsn, **{option: value})
    assert info.value.field == option


async def test_min_size_above_max_size_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_size") as info:
        await connect("postgresql://127.0.0.1:1/db", min_size=5, max_size=2)
    assert info.value.field == "min_size"


async def test_migrate_hook_runs_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, sqlite_dsn: str
) -> None:
    calls: list[str] = []

    async def record(backend: Backend) -> None:
        calls.append(backend.kind)

    monkeypatch.setattr(buttress.migrations, "apply_builtin", record)
    async with connect(sqlite_dsn, migrate=False):
        pass
    assert calls == []
    async with connect(sqlite_dsn):
        pass
    assert calls == ["sqlite"]


def test_require_sql_refuses_non_sql_backends() -> None:
    with pytest.raises(UnsupportedBackendError, match="ConfigStore needs a SQL backend"):
        require_sql(MemoryBackend(), "ConfigStore")


# --- missing drivers and lightness --------------------------------------------------------


async def test_missing_asyncpg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(MissingDependencyError) as info:
        await connect("postgresql://u:pw@127.0.0.1:1/db")
    assert (info.value.package, info.value.extra) == ("asyncpg", "postgres")
    assert "buttress[postgres]" in str(info.value)


async def test_missing_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("redis", "redis.asyncio", "redis.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError) as info:
        await connect("redis://127.0.0.1:1/0")
    assert (info.value.package, info.value.extra) == ("redis", "redis")
    assert "buttress[redis]" in str(info.value)


def test_importing_buttress_does_not_import_drivers() -> None:
    code = textwrap.dedent(
        """
        import sys
        import buttress, buttress.backends
        loaded = [m for m in ("asyncpg", "redis", "tenacity") if m in sys.modules]
        print(",".join(loaded))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


# --- the shared SQL interface (SQLite and PostgreSQL) -----------------------------------


async def test_dialect_and_kind(sql: SqlBackend) -> None:
    assert sql.dialect in {"sqlite", "postgresql"}
    assert sql.kind == sql.dialect
    assert isinstance(await sql.ping(), float)


async def test_execute_and_fetch(sql: SqlBackend) -> None:
    await sql.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    changed = await sql.execute(
        f"INSERT INTO items (id, name) VALUES ({ph(sql, 1)}, {ph(sql, 2)})", 1, "one"
    )
    assert changed == 1
    await sql.executemany(
        f"INSERT INTO items (id, name) VALUES ({ph(sql, 1)}, {ph(sql, 2)})",
        [(2, "two"), (3, "three")],
    )
    rows = await sql.fetch("SELECT id, name FROM items ORDER BY id")
    assert [dict(row) for row in rows] == [
        {"id": 1, "name": "one"},
        {"id": 2, "name": "two"},
        {"id": 3, "name": "three"},
    ]
    row = await sql.fetchrow(f"SELECT name FROM items WHERE id = {ph(sql, 1)}", 2)
    assert row is not None
    assert row["name"] == "two"
    assert await sql.fetchrow(f"SELECT name FROM items WHERE id = {ph(sql, 1)}", 99) is None
    assert await sql.fetchval("SELECT count(*) FROM items") == 3
    assert await sql.fetchval(f"SELECT name FROM items WHERE id = {ph(sql, 1)}", 99) is None
    assert await sql.execute(f"UPDATE items SET name = {ph(sql, 1)}", "x") == 3
    assert await sql.execute(f"DELETE FROM items WHERE id > {ph(sql, 1)}", 1) == 2


async def test_transaction_commits(sql: SqlBackend) -> None:
    await sql.execute("CREATE TABLE t (v INTEGER)")
    async with sql.transaction() as tx:
        assert tx.dialect == sql.dialect
        await tx.execute(f"INSERT INTO t VALUES ({ph(sql, 1)})", 1)
        assert await tx.fetchval("SELECT count(*) FROM t") == 1
    assert await sql.fetchval("SELECT count(*) FROM t") == 1


async def test_transaction_rolls_back_on_exception(sql: SqlBackend) -> None:
    await sql.execute("CREATE TABLE t (v INTEGER)")

    class Boom(Exception):
        pass

    async def insert_then_fail() -> None:
        async with sql.transaction() as tx:
            await tx.execute(f"INSERT INTO t VALUES ({ph(sql, 1)})", 1)
            await tx.execute_script("INSERT INTO t VALUES (2); INSERT INTO t VALUES (3);")
            raise Boom

    with pytest.raises(Boom):
        await insert_then_fail()
    assert await sql.fetchval("SELECT count(*) FROM t") == 0
    # The connection went back to the pool clean: a new transaction works.
    async with sql.transaction() as tx:
        await tx.execute(f"INSERT INTO t VALUES ({ph(sql, 1)})", 4)
    assert await sql.fetchval("SELECT count(*) FROM t") == 1


async def test_failed_statement_rolls_back_the_whole_transaction(sql: SqlBackend) -> None:
    await sql.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")

    async def insert_twice() -> None:
        async with sql.transaction() as tx:
            await tx.execute(f"INSERT INTO t VALUES ({ph(sql, 1)})", 1)
            await tx.execute(f"INSERT INTO t VALUES ({ph(sql, 1)})", 1)

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await insert_twice()
    assert await sql.fetchval("SELECT count(*) FROM t") == 0


async def test_execute_script_runs_every_statement(sql: SqlBackend) -> None:
    await sql.execute_script(
        """
        CREATE TABLE a (v INTEGER);
        CREATE TABLE b (v INTEGER);
        INSERT INTO a VALUES (1);
        INSERT INTO b VALUES (2);
        """
    )
    assert await sql.fetchval("SELECT v FROM a") == 1
    assert await sql.fetchval("SELECT v FROM b") == 2


async def test_execute_script_is_atomic(sql: SqlBackend) -> None:
    await sql.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await sql.execute_script("INSERT INTO t VALUES (1); INSERT INTO t VALUES (1);")
    assert await sql.fetchval("SELECT count(*) FROM t") == 0


async def test_connection_is_pinned(sql: SqlBackend) -> None:
    # A temporary table is visible only on the connection that created it.
    async with sql.connection() as conn:
        await conn.execute("CREATE TEMPORARY TABLE scratch (v INTEGER)")
        await conn.execute(f"INSERT INTO scratch VALUES ({ph(sql, 1)})", 7)
        assert await conn.fetchval("SELECT v FROM scratch") == 7
        rows = await conn.fetch("SELECT v FROM scratch")
        assert rows == [{"v": 7}]
        assert await conn.fetchrow("SELECT v FROM scratch") == {"v": 7}


async def test_concurrent_transactions_do_not_lose_updates(sql: SqlBackend) -> None:
    await sql.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    await sql.execute("INSERT INTO counter VALUES (1, 0)")

    async def bump() -> None:
        async with sql.transaction() as tx:
            await tx.execute("UPDATE counter SET n = n + 1 WHERE id = 1")

    await asyncio.gather(*(bump() for _ in range(20)))
    assert await sql.fetchval("SELECT n FROM counter WHERE id = 1") == 20


async def test_closed_backend_refuses_work(sql_dsn: str) -> None:
    backend = require_sql(await connect(sql_dsn), "tests")
    await backend.close()
    with pytest.raises(Exception, match=r"(?i)closed"):
        await backend.fetchval("SELECT 1")


# --- SQLite specifics -------------------------------------------------------------------


async def test_sqlite_file_settings(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn, busy_timeout=2.5) as backend:
        assert isinstance(backend, SqliteBackend)
        assert backend.path.endswith("buttress.db")
        assert await backend.fetchval("PRAGMA journal_mode") == "wal"
        assert await backend.fetchval("PRAGMA busy_timeout") == 2500
        assert await backend.fetchval("PRAGMA foreign_keys") == 1
        sync = backend.connect_sync()
        try:
            assert sync.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert sync.execute("PRAGMA busy_timeout").fetchone() == (2500,)
            assert sync.execute("PRAGMA foreign_keys").fetchone() == (1,)
            assert sync.in_transaction is False
        finally:
            sync.close()


async def test_sqlite_sync_and_async_see_each_other(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        assert isinstance(backend, SqliteBackend)
        await backend.execute("CREATE TABLE t (v INTEGER)")
        sync = backend.connect_sync()
        try:
            sync.execute("BEGIN IMMEDIATE")
            sync.execute("INSERT INTO t VALUES (1)")
            sync.execute("COMMIT")
        finally:
            sync.close()
        assert await backend.fetchval("SELECT count(*) FROM t") == 1


async def test_sqlite_foreign_keys_are_enforced(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        assert isinstance(backend, SqliteBackend)
        await backend.execute_script(
            "CREATE TABLE p (id INTEGER PRIMARY KEY);"
            "CREATE TABLE c (p_id INTEGER REFERENCES p (id));"
        )
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await backend.execute("INSERT INTO c VALUES (1)")


async def test_sqlite_script_keeps_triggers_whole(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        assert isinstance(backend, SqliteBackend)
        await backend.execute_script(
            """
            CREATE TABLE t (v INTEGER);
            CREATE TABLE log (v INTEGER);
            CREATE TRIGGER t_log AFTER INSERT ON t BEGIN
                INSERT INTO log VALUES (new.v);
                INSERT INTO log VALUES (new.v * 10);
            END;
            INSERT INTO t VALUES (2);
            """
        )
        assert await backend.fetch("SELECT v FROM log ORDER BY v") == [{"v": 2}, {"v": 20}]


async def test_sqlite_relative_path_resolves_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with connect("sqlite:///sub.db") as backend:
        assert isinstance(backend, SqliteBackend)
        assert backend.path == str(tmp_path / "sub.db")
    assert (tmp_path / "sub.db").exists()


@pytest.mark.parametrize("dsn", ["sqlite://", "sqlite:///:memory:"])
async def test_sqlite_in_memory(dsn: str) -> None:
    async with connect(dsn) as backend:
        assert isinstance(backend, SqliteBackend)
        assert backend.path == ":memory:"
        await backend.execute("CREATE TABLE t (v INTEGER)")
        async with backend.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1)")
        assert await backend.fetchval("SELECT count(*) FROM t") == 1
        with pytest.raises(UnsupportedBackendError, match="in-memory"):
            backend.connect_sync()


async def test_sqlite_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path}/missing-dir/app.db"
    with pytest.raises(BackendUnavailableError, match="missing-dir"):
        await connect(dsn)


async def test_sqlite_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not a database file at all, just text" * 100)
    with pytest.raises(BackendUnavailableError, match="not a database"):
        await connect(f"sqlite:///{bogus}")


_ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.mark.parametrize("let_it_start", [False, True])
async def test_sqlite_cancelled_statement_frees_its_connection(
    sqlite_dsn: str, let_it_start: bool
) -> None:
    async with connect(sqlite_dsn, max_size=1) as backend:
        sql = require_sql(backend, "tests")
        task = asyncio.create_task(sql.fetchval(_ENDLESS))
        await asyncio.sleep(0.05 if let_it_start else 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(10):
            assert await sql.fetchval("SELECT 1") == 1


_WORKER = """
import asyncio, sys
from buttress import connect

async def main(dsn: str, rounds: int) -> None:
    async with connect(dsn, busy_timeout=30) as backend:
        for _ in range(rounds):
            async with backend.transaction() as tx:
                n = await tx.fetchval("SELECT n FROM counter WHERE id = 1")
                await tx.execute("UPDATE counter SET n = ? WHERE id = 1", n + 1)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_sqlite_is_safe_across_processes(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        await require_sql(backend, "tests").execute_script(
            "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
            "INSERT INTO counter VALUES (1, 0);"
        )
        workers = [
            await asyncio.create_subprocess_exec(sys.executable, "-c", _WORKER, sqlite_dsn, "25")
            for _ in range(2)
        ]
        codes = [await worker.wait() for worker in workers]
        assert codes == [0, 0]
        # Read-modify-write under BEGIN IMMEDIATE: no increment is lost.
        assert await require_sql(backend, "tests").fetchval("SELECT n FROM counter") == 50


# --- PostgreSQL specifics ---------------------------------------------------------------


async def test_postgres_pool_and_settings(postgres_dsn: str) -> None:
    async with connect(
        postgres_dsn,
        min_size=1,
        max_size=3,
        statement_timeout=1.5,
        application_name="buttress-tests",
        server_settings={"search_path": "public"},
    ) as backend:
        assert isinstance(backend, PostgresBackend)
        assert backend.kind == "postgresql"
        assert backend.pool.get_max_size() == 3
        assert await backend.fetchval("SHOW statement_timeout") == "1500ms"
        assert await backend.fetchval("SHOW application_name") == "buttress-tests"


async def test_postgres_statement_timeout_cancels_slow_statements(postgres_dsn: str) -> None:
    async with connect(postgres_dsn, statement_timeout=0.05) as backend:
        assert isinstance(backend, PostgresBackend)
        with pytest.raises(Exception, match="statement timeout"):
            await backend.execute("SELECT pg_sleep(5)")


async def test_postgres_repr_masks_the_real_password(
    postgres_dsn: str, postgres_server: PostgresServer
) -> None:
    password: str = postgres_server.password
    async with connect(postgres_dsn) as backend:
        for shown in (repr(backend), str(backend), backend.dsn):
            assert password not in shown
            assert ":***@" in shown


async def test_postgres_wrong_password_is_unavailable_without_secrets(
    postgres_dsn: str, postgres_server: PostgresServer
) -> None:
    password: str = postgres_server.password
    wrong = "Wr0ng-" + password[::-1]
    dsn = postgres_dsn.replace(password, quote(wrong, safe=""))
    with pytest.raises(BackendUnavailableError, match="authentication failed") as info:
        await connect(dsn)
    for text in exception_texts(info.value):
        assert wrong not in text
        assert password not in text


async def test_postgres_missing_database_is_not_retried(postgres_dsn: str) -> None:
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(BackendUnavailableError, match="no_such_database"):
        await connect(dsn, connect_attempts=10, connect_deadline=60)


async def test_postgres_scheme_alias(postgres_dsn: str) -> None:
    alias = postgres_dsn.replace("postgresql://", "postgres://", 1)
    async with connect(alias) as backend:
        assert isinstance(backend, PostgresBackend)
        assert backend.dsn.startswith("postgres://postgres:***@")
        assert await backend.fetchval("SELECT current_database()") == alias.rsplit("/", 1)[1]


# --- Redis specifics --------------------------------------------------------------------


async def test_redis_lifecycle(redis_dsn: str, redis_server: RedisServer) -> None:
    password: str = redis_server.password
    backend = await connect(redis_dsn)
    assert isinstance(backend, RedisBackend)
    assert backend.kind == "redis"
    assert await backend.client.dbsize() == 0
    await backend.client.set("k", "v")
    assert await backend.client.get("k") == b"v"
    assert isinstance(await backend.ping(), float)
    assert password not in repr(backend)
    assert password not in backend.dsn
    await backend.close()
    await backend.close()
    assert backend.closed


async def test_redis_decode_responses(redis_dsn: str) -> None:
    async with connect(redis_dsn, decode_responses=True) as backend:
        assert isinstance(backend, RedisBackend)
        await backend.client.set("k", "v")
        assert await backend.client.get("k") == "v"


async def test_redis_wrong_password_is_unavailable_without_secrets(
    redis_dsn: str, redis_server: RedisServer
) -> None:
    password: str = redis_server.password
    wrong = "Wr0ng-" + password[::-1]
    with pytest.raises(BackendUnavailableError, match=r"127\.0\.0\.1") as info:
        await connect(redis_dsn.replace(password, quote(wrong, safe="")))
    for text in exception_texts(info.value):
        assert wrong not in text
        assert password not in text


# --- unreachable servers ----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
async def test_unreachable_server_fails_fast_without_password(scheme: str) -> None:
    port = free_port()  # nothing listens here
    password = "Sup3r-Secret/pw@x"
    path = "/app" if scheme == "postgresql" else "/0"
    dsn = f"{scheme}://app:{quote(password, safe='')}@127.0.0.1:{port}{path}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BackendUnavailableError) as info:
        await open_backend(dsn, **FAST_FAIL)
    # Bounded by connect_deadline plus one attempt; generous for a loaded machine.
    assert loop.time() - started < 10
    assert f"127.0.0.1:{port}" in str(info.value)
    assert isinstance(info.value, ConnectionError)
    for text in exception_texts(info.value):
        assert password not in text
        assert quote(password, safe="") not in text


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(["postgresql", "redis"]),
    password=st.text(min_size=6, max_size=30).filter(lambda s: s.strip() != ""),
)
def test_unreachable_server_never_shows_any_password(scheme: str, password: str) -> None:
    port = free_port()
    path = "/app" if scheme == "postgresql" else "/0"
    dsn = f"{scheme}://app:{quote(password, safe='')}@127.0.0.1:{port}{path}"

    async def attempt() -> BaseException:
        try:
            await connect(dsn, connect_attempts=1)
        except BaseException as exc:  # noqa: BLE001  # the exception is what is under test
            return exc
        raise AssertionError("connected to a closed port")

    error = asyncio.run(attempt())
    assert isinstance(error, BackendUnavailableError | InvalidDSNError)
    public_part = dsn.replace(quote(password, safe=""), "")
    for text in exception_texts(error):
        if password not in public_part:
            assert password not in text
        assert quote(password, safe="") not in text


def test_placeholders_skip_literals_quoted_identifiers_and_comments() -> None:
    from buttress.backends import POSTGRESQL, SQLITE

    sql = "SELECT \"col?\", 'lit?' FROM t WHERE a = ? /* b? */ AND c = ? -- d?"
    assert POSTGRESQL.placeholders(sql) == (
        "SELECT \"col?\", 'lit?' FROM t WHERE a = $1 /* b? */ AND c = $2 -- d?"
    )
    assert SQLITE.placeholders(sql) == sql
    assert POSTGRESQL.placeholders("SELECT 'it''s?', ?") == "SELECT 'it''s?', $1"


async def test_create_false_is_accepted_by_every_backend(any_dsn: str) -> None:
    async with open_backend(any_dsn):  # a SQLite file must exist for create=False
        pass
    async with open_backend(any_dsn, create=False) as backend:
        assert await backend.ping() >= 0


async def test_looking_at_a_sqlite_file_never_changes_its_journal_mode(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "plain.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER)")
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    async with open_backend(f"sqlite:///{path}", create=False) as backend:
        assert await backend.ping() >= 0
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


async def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds config (secrets among it), history and integrity backups: 0600, whatever
    the umask; a file the user made keeps its mode."""
    fresh = tmp_path / "fresh.db"
    async with connect(f"sqlite:///{fresh}"):
        pass
    assert fresh.stat().st_mode & 0o777 == 0o600
    mine = tmp_path / "mine.db"
    mine.touch(mode=0o640)
    mine.chmod(0o640)
    async with connect(f"sqlite:///{mine}"):
        pass
    assert mine.stat().st_mode & 0o777 == 0o640
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".lock")]  # no lock file beside it
