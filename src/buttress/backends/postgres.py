"""The PostgreSQL backend: an asyncpg pool with bounded connect retries.

Statements go to the driver as written (``$1`` placeholders). Rows come back as
plain dicts so both SQL dialects look the same to callers. asyncpg is imported
only when a PostgreSQL DSN is opened.

Through a transaction pooler (``?pgbouncer=true``, consumed here and never sent
to the server) each statement may run on another server session: no named
prepared statements (asyncpg's statement cache is off, so each statement is
parsed with its arguments in one message), no startup settings but
``application_name``, and no LISTEN (``pushes`` is False and callers poll)
unless ``listen_dsn=`` names a direct connection for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from buttress._exceptions import (
    BackendUnavailableError,
    InvalidDSNError,
    MissingDependencyError,
    ValidationError,
)
from buttress.backends._base import Row, SqlBackend, SqlConnection, Subscriber
from buttress.backends._dialect import POSTGRESQL, Dialect
from buttress.backends._dsn import DSN, parse_dsn
from buttress.backends._options import (
    check_known,
    opt_bool,
    opt_int,
    opt_seconds,
    opt_str_map,
)
from buttress.backends._retry import Attempts, connect_with_retry, unavailable
from buttress.log import get_logger

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["PostgresBackend"]

_log = get_logger("backend", backend="postgresql")

_OPTIONS = frozenset(
    {
        "create",
        "min_size",
        "max_size",
        "statement_timeout",
        "command_timeout",
        "connect_timeout",
        "connect_attempts",
        "connect_deadline",
        "application_name",
        "server_settings",
        "listen_dsn",
    }
)
_POOLER_PARAMETER = "pgbouncer"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_CLOSE_WAIT = 10.0
_RECONNECT_DELAY = 0.5
_LISTEN_CONNECT_TIMEOUT = 5.0
_LIVENESS_INTERVAL = 2.0
# Command tags whose trailing number is a count of changed rows.
_ROWCOUNT_TAGS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "COPY"})


def _rowcount(status: str) -> int:
    parts = status.split()
    if parts and parts[0] in _ROWCOUNT_TAGS and parts[-1].isdigit():
        return int(parts[-1])
    return 0


class _Statements:
    """``SqlConnection``'s statements on asyncpg's pool or on one of its connections.

    Both answer the same calls; ``_runner`` says which one this is.
    """

    __slots__ = ()

    @property
    def _runner(self) -> asyncpg.Pool[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]:
        raise NotImplementedError

    async def execute(self, sql: str, *args: object) -> int:
        return _rowcount(await self._runner.execute(sql, *args))

    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        await self._runner.executemany(sql, args)

    async def execute_script(self, sql: str) -> None:
        # Without arguments asyncpg uses the simple protocol: several statements are fine.
        await self._runner.execute(sql)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return [dict(record) for record in await self._runner.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        record = await self._runner.fetchrow(sql, *args)
        return None if record is None else dict(record)

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._runner.fetchval(sql, *args)


class _Session(_Statements):
    """SQL on one pinned asyncpg connection (implements ``SqlConnection``)."""

    __slots__ = ("_conn",)
    dialect: ClassVar[Dialect] = POSTGRESQL

    def __init__(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._conn = conn

    @property
    def _runner(self) -> PoolConnectionProxy[asyncpg.Record]:
        return self._conn

    def __repr__(self) -> str:
        return "<PostgresSession>"


def _driver() -> Any:
    try:
        import asyncpg
    except ImportError:
        raise MissingDependencyError("asyncpg", "postgres") from None
    return asyncpg


class PostgresBackend(_Statements, SqlBackend):
    """PostgreSQL through an asyncpg pool (``pool``); ``$1`` placeholders.

    Options: ``min_size`` (1), ``max_size`` (10), ``statement_timeout`` (seconds,
    server-side, default none), ``command_timeout`` (seconds, client-side),
    ``connect_timeout`` (per attempt, 5), ``connect_attempts`` (3),
    ``connect_deadline`` (total seconds of retrying, 10), ``application_name``
    ("buttress"), ``server_settings`` (extra session settings), ``listen_dsn``
    (a direct PostgreSQL DSN for LISTEN when the main one goes through a
    transaction pooler).

    TLS and multi-host DSNs use libpq's names, which asyncpg reads:
    ``sslmode`` (``verify-full`` checks the certificate and the host name),
    ``sslrootcert``, ``sslcert``, ``sslkey``, ``host1:port1,host2:port2`` with
    ``target_session_attrs=read-write``. ``?pgbouncer=true`` says a
    transaction pooler sits in between (``pooler`` is then True).
    """

    kind = "postgresql"
    schemes = ("postgresql", "postgres")
    dialect: ClassVar[Dialect] = POSTGRESQL

    def __init__(
        self,
        dsn: DSN,
        pool: asyncpg.Pool[asyncpg.Record],
        *,
        pooler: bool = False,
        listen_dsn: DSN | None = None,
    ) -> None:
        super().__init__(dsn.redacted)
        self.pool = pool
        self.pooler = pooler
        """True when a transaction pooler (PgBouncer, ``?pgbouncer=true``) sits
        between buttress and the server: no prepared statements, no session state
        across statements, no LISTEN through it."""
        self._listen_dsn = listen_dsn

    @classmethod
    async def open(cls, dsn: DSN, options: dict[str, object]) -> PostgresBackend:
        check_known("postgresql", options, _OPTIONS)
        # A server's databases are never created here: create= is accepted so
        # one call can open any DSN "without creating anything".
        opt_bool(options, "create", True)
        min_size = opt_int(options, "min_size", 1, minimum=0)
        max_size = opt_int(options, "max_size", 10, minimum=1)
        if min_size > max_size:
            raise ValidationError("min_size", f"must be <= max_size ({max_size})")
        statement_timeout = opt_seconds(options, "statement_timeout", None, allow_none=True)
        command_timeout = opt_seconds(options, "command_timeout", None, allow_none=True)
        connect_timeout = opt_seconds(options, "connect_timeout", 5.0)
        connect_deadline = opt_seconds(options, "connect_deadline", 10.0)
        attempts = opt_int(options, "connect_attempts", 3, minimum=1)
        settings = opt_str_map(options, "server_settings")
        application_name = options.get("application_name", "buttress")
        if not isinstance(application_name, str):
            raise ValidationError("application_name", "must be a str")
        pooler = _pooler(dsn)
        listen_dsn = _listen_dsn(options.get("listen_dsn"))
        if pooler and (statement_timeout is not None or settings):
            # PgBouncer refuses startup parameters it does not know, and would not
            # keep a session setting for the next transaction anyway.
            raise ValidationError(
                "statement_timeout" if statement_timeout is not None else "server_settings",
                "cannot be sent through a transaction pooler (pgbouncer=true); "
                "set it on the role instead (ALTER ROLE ... SET ...)",
            )
        settings.setdefault("application_name", application_name)
        if statement_timeout is not None:
            settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))
        assert connect_timeout is not None
        assert connect_deadline is not None

        driver = _driver()
        url = dsn.without_query(_POOLER_PARAMETER)
        # Through a pooler a named prepared statement may be looked for on another
        # server session: with the cache off asyncpg sends unnamed ones only.
        statement_cache = {"statement_cache_size": 0} if pooler else {}

        async def open_once() -> asyncpg.Pool[asyncpg.Record]:
            pool = driver.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                server_settings=settings,
                **statement_cache,
            )
            try:
                await pool
                if min_size == 0:
                    await pool.fetchval("SELECT 1")
            except BaseException:
                pool.terminate()
                raise
            return pool  # type: ignore[no-any-return]  # driver module is typed as Any

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, ssl.SSLCertVerificationError):
                return False  # a certificate the CA does not vouch for stays so
            return isinstance(
                exc,
                OSError
                | TimeoutError
                | driver.PostgresConnectionError
                | driver.CannotConnectNowError
                | driver.TooManyConnectionsError,
            )

        failure: BackendUnavailableError | None = None
        counter = Attempts()
        try:
            pool = await connect_with_retry(
                open_once,
                should_retry=should_retry,
                attempts=attempts,
                deadline=connect_deadline,
                counter=counter,
            )
        except (
            OSError,
            TimeoutError,
            ValueError,
            driver.PostgresError,
            driver.InterfaceError,
        ) as exc:
            failure = unavailable(dsn, exc, counter.count)
        if failure is not None:
            # Raised outside the except block: the driver's exception (whose text
            # may hold the DSN) must not travel along as __context__.
            raise failure
        return cls(dsn, pool, pooler=pooler, listen_dsn=listen_dsn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SqlConnection]:
        async with self.pool.acquire() as conn:
            yield _Session(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlConnection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _Session(conn)

    @property
    def _runner(self) -> asyncpg.Pool[asyncpg.Record]:
        return self.pool

    @property
    def pushes(self) -> bool:
        """False through a transaction pooler (LISTEN needs a session of its own)
        unless ``listen_dsn`` gives a direct connection for it."""
        return not self.pooler or self._listen_dsn is not None

    @asynccontextmanager
    async def _listening_connection(self) -> AsyncIterator[Any]:
        if self._listen_dsn is None:
            async with self.pool.acquire() as conn:
                yield conn
            return
        conn = await _driver().connect(
            self._listen_dsn.without_query(_POOLER_PARAMETER), timeout=_LISTEN_CONNECT_TIMEOUT
        )
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), _CLOSE_WAIT)

    async def listen(self, channel: str, subscriber: Subscriber) -> None:
        """Hold one pooled connection LISTENing on ``channel`` until cancelled or closed.

        Payloads are handled one at a time, in arrival order; an idle
        connection is probed every few seconds so a dead one is noticed.
        """
        if not self.pushes:
            return
        payloads: asyncio.Queue[str] = asyncio.Queue()

        def on_notify(_conn: object, _pid: int, _channel: str, payload: object) -> None:
            payloads.put_nowait(str(payload))

        while not self.closed:  # a closed backend will not come back
            try:
                async with self._listening_connection() as conn:
                    await conn.add_listener(channel, on_notify)
                    try:
                        subscriber.connected()
                        while True:
                            try:
                                payload = await asyncio.wait_for(
                                    payloads.get(), timeout=_LIVENESS_INTERVAL
                                )
                            except TimeoutError:
                                await conn.fetchval("SELECT 1")
                                continue
                            await subscriber.received(payload)
                    finally:
                        with contextlib.suppress(Exception):
                            await conn.remove_listener(channel, on_notify)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any driver failure means: reconnect
                subscriber.lost()
                _log.warning("listener_lost", channel=channel, error=type(exc).__name__)
                await asyncio.sleep(_RECONNECT_DELAY)

    async def _ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), _CLOSE_WAIT)
        except TimeoutError:
            self.pool.terminate()


def _pooler(dsn: DSN) -> bool:
    """Whether ``?pgbouncer=`` says a transaction pooler sits in between."""
    value = dsn.option(_POOLER_PARAMETER)
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise InvalidDSNError("the pgbouncer query parameter must be true or false")


def _listen_dsn(value: object) -> DSN | None:
    """The ``listen_dsn`` option: a direct ``postgresql://`` DSN, never a pooler's."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("listen_dsn", "must be a postgresql:// DSN string")
    parsed = parse_dsn(value)
    if parsed.kind != "postgresql":
        raise ValidationError("listen_dsn", "must be a postgresql:// DSN")
    if _pooler(parsed):
        raise ValidationError(
            "listen_dsn", "must reach the server directly: LISTEN does not work through a pooler"
        )
    return parsed
