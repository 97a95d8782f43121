# ruff: noqa: ASYNC109  (``timeout=`` mirrors asyncpg's per-call timeout and is handed to it)
"""``Database``: an asyncpg pool with timeouts, safe retries, breakers and statistics.

The first attempt of every call is the bare driver call plus two clock reads
and a few counter updates; SQL is only read (fingerprint, read-only guess) when
a breaker must be chosen, a call fails, or a query is slow. Retry decisions
come from the ``Retry`` policy (``buttress.policies``) and ``errors.classify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast

import attrs

from buttress._exceptions import ValidationError
from buttress.breaker import CircuitBreaker
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.db._faults import (
    NOT_RETRIED_NOTE,
    connection_lost,
    is_transient,
    rolled_back,
)
from buttress.db._options import check_breakers, check_timeout, lock_timeout_ms
from buttress.db._sqltext import Fingerprint, fingerprint, is_read_only
from buttress.db._stats import DatabaseStats, OperationKind, QueryRecorder
from buttress.db._transaction import Transaction
from buttress.errors import classify
from buttress.log import get_logger
from buttress.policies import Retry, retry

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    from buttress.backends import Backend

__all__ = ["Database", "Isolation"]

R = TypeVar("R")
Isolation = Literal["read_committed", "repeatable_read", "serializable"]
_Op = Callable[..., Awaitable[Any]]

_STATEMENT_CACHE_SIZE: Final = 512
_log = get_logger("db")


@attrs.frozen(slots=True)
class _Statement:
    read_only: bool
    fingerprint: Fingerprint


def _default_retry(clock: Clock) -> Retry:
    return retry(attempts=3, base_delay=0.05, max_delay=1.0, retry_on=is_transient, clock=clock)


_DEFAULT: Final[Any] = object()


class Database:
    """A PostgreSQL client over an asyncpg pool that survives the usual failures and counts.

    >>> db = Database(backend)            # or Database(asyncpg_pool)
    >>> await db.fetchval("SELECT count(*) FROM users WHERE active = $1", True)

    Every call runs with ``statement_timeout`` seconds (asyncpg's ``timeout=``:
    on expiry the driver cancels the statement on the server and raises
    ``TimeoutError``). A call that fails with a transient error (``is_transient``)
    is run again by ``retry`` only when it is idempotent: ``idempotent=None``
    (the default) means "if the SQL looks read-only". ``breakers`` maps
    ``"read"``, ``"write"`` and ``"bulk"`` (``executemany``) to circuit breakers.
    A ``Database`` belongs to one event loop, like its pool.
    """

    __slots__ = (
        "__weakref__",  # the metrics adapters hold a Database weakly
        "_breakers",
        "_log",
        "_now",
        "_pool",
        "_recorder",
        "_retry",
        "_slow",
        "_statements",
        "_timeout",
        "name",
    )

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record] | Backend,
        *,
        name: str = "db",
        statement_timeout: float | None = 30.0,
        slow_query_threshold: float = 1.0,
        retry: Retry | None = _DEFAULT,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        window: int = 1024,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError("name", "must be a non-empty string")
        kind = getattr(pool, "kind", None)
        if kind is not None and kind != "postgresql":
            # A buttress backend of another kind: say which, not just "wrong type".
            raise ValidationError("pool", f"must be a PostgreSQL backend, got a {kind} backend")
        resolved = pool.pool if kind == "postgresql" else pool  # type: ignore[union-attr]  # kind says it is a PostgresBackend
        if not callable(getattr(resolved, "acquire", None)):
            raise ValidationError("pool", "must be an asyncpg pool or a PostgreSQL backend")
        self._pool: asyncpg.Pool[asyncpg.Record] = cast("asyncpg.Pool[asyncpg.Record]", resolved)
        self.name = name
        self._timeout = check_timeout("statement_timeout", statement_timeout, optional=True)
        slow = check_timeout("slow_query_threshold", slow_query_threshold, optional=False)
        assert slow is not None
        self._slow = slow
        if retry is _DEFAULT:
            retry = _default_retry(clock)
        elif retry is not None and not isinstance(retry, Retry):
            raise ValidationError(
                "retry", "must be a Retry policy (buttress.policies.retry) or None"
            )
        self._retry = retry
        self._breakers = check_breakers(breakers)
        self._recorder = QueryRecorder(window)
        self._statements: dict[str, _Statement] = {}
        # Latency is the database's real elapsed time, not the injected clock's:
        # a fake clock does not make PostgreSQL any faster or slower.
        self._now = time.perf_counter
        self._log = _log.bind(database=name)

    def __repr__(self) -> str:
        return f"Database({self.name!r}, statement_timeout={self._timeout})"

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The wrapped asyncpg pool (for what this class does not cover)."""
        return self._pool

    # -- statements ---------------------------------------------------------

    async def fetch(
        self,
        sql: str,
        *args: object,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> list[asyncpg.Record]:
        """All rows of ``sql``."""
        result: list[asyncpg.Record] = await self._run(
            "fetch", sql, args, timeout, idempotent, False
        )
        return result

    async def fetchrow(
        self,
        sql: str,
        *args: object,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> asyncpg.Record | None:
        """The first row of ``sql``, or None."""
        result: asyncpg.Record | None = await self._run(
            "fetchrow", sql, args, timeout, idempotent, False
        )
        return result

    async def fetchval(
        self,
        sql: str,
        *args: object,
        column: int = 0,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """One value of the first row of ``sql`` (column ``column``), or None."""
        return await self._run("fetchval", sql, args, timeout, idempotent, False, column)

    async def execute(
        self,
        sql: str,
        *args: object,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> str:
        """Run ``sql``; returns the command tag (``"INSERT 0 1"``)."""
        result: str = await self._run("execute", sql, args, timeout, idempotent, False)
        return result

    async def executemany(
        self,
        sql: str,
        args: Iterable[Sequence[object]],
        *,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> None:
        """Run ``sql`` once per argument tuple (one round trip, one implicit transaction).

        Never retried unless ``idempotent=True``; goes through the ``"bulk"`` breaker.
        """
        rows = list(args)
        await self._run("executemany", sql, (rows,), timeout, idempotent, True)

    # -- transactions -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(
        self,
        *,
        isolation: Isolation | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        lock_timeout: float | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Transaction]:
        """One transaction on one pooled connection; commits on success, rolls back on error.

        Statements inside run with the statement timeout and are counted, but
        are never retried (a failed statement aborts the transaction: use
        ``run_transaction`` to retry the whole block). ``lock_timeout`` (seconds)
        is set with ``SET LOCAL``; COMMIT counts as a query in ``stats()``.
        """
        seconds = (
            self._timeout if timeout is None else check_timeout("timeout", timeout, optional=False)
        )
        lock_ms = lock_timeout_ms(lock_timeout)
        breaker = self._breakers.get(OperationKind.READ if readonly else OperationKind.WRITE)
        async with contextlib.AsyncExitStack() as stack:
            if breaker is not None:
                await stack.enter_async_context(breaker)
            conn = await stack.enter_async_context(self._pool.acquire(timeout=seconds))
            tx = conn.transaction(isolation=isolation, readonly=readonly, deferrable=deferrable)
            await tx.start()
            try:
                if lock_ms is not None:
                    await conn.execute(f"SET LOCAL lock_timeout = {lock_ms}")
                yield Transaction(self.name, conn, functools.partial(self._timed, conn), seconds)
            except BaseException:
                if not conn.is_closed():
                    # The body's error is the one worth seeing; a rollback on a
                    # broken connection fails too and the pool discards it.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(tx.rollback(), seconds)
                raise
            await self._timed(None, _commit(tx), "COMMIT", (), seconds)

    async def run_transaction(
        self,
        body: Callable[[Transaction], Awaitable[R]],
        *,
        isolation: Isolation = "serializable",
        readonly: bool = False,
        deferrable: bool = False,
        lock_timeout: float | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> R:
        """Run ``await body(tx)`` in a transaction, running it again on a transient failure.

        After a serialization failure, a deadlock or a lock timeout PostgreSQL
        has rolled everything back, so the block is retried whatever it does.
        After a lost connection the COMMIT may or may not have happened: the
        block is retried only with ``idempotent=True``. ``body`` must not have
        effects outside the transaction that cannot be repeated.
        """

        async def attempt() -> R:
            async with self.transaction(
                isolation=isolation,
                readonly=readonly,
                deferrable=deferrable,
                lock_timeout=lock_timeout,
                timeout=timeout,
            ) as tx:
                return await body(tx)

        try:
            return await attempt()
        except Exception as exc:  # noqa: BLE001  (the retry decision below looks at it)
            error = exc
        if self._retry is None:
            raise error
        return await self._retried(
            self._retry, error, attempt, lambda error: idempotent or rolled_back(error)
        )

    # -- statistics -----------------------------------------------------------

    def stats(self) -> DatabaseStats:
        """Queries, latency (average, p95 over the recent window, max), failures, breakers."""
        return self._recorder.snapshot(self.breaker_states())

    def breaker_states(self) -> dict[str, str]:
        """Operation kind -> state of its breaker (``"closed"``, ``"open"``, ``"half_open"``)."""
        return {kind.value: breaker.state.value for kind, breaker in self._breakers.items()}

    def error_rate(self) -> float:
        """Failed fraction of the recent window of queries."""
        return self._recorder.error_rate()

    def reset_stats(self) -> None:
        """Start counting from zero (breakers are left alone)."""
        self._recorder = QueryRecorder(self._recorder.window)

    # -- internals ----------------------------------------------------------

    def _statement(self, sql: str) -> _Statement:
        found = self._statements.get(sql)
        if found is None:
            if not isinstance(sql, str):
                raise ValidationError("sql", "must be a str")
            found = _Statement(is_read_only(sql), fingerprint(sql))
            if len(self._statements) >= _STATEMENT_CACHE_SIZE:
                self._statements.clear()  # bounded; rebuilt from the statements still in use
            self._statements[sql] = found
        return found

    async def _run(
        self,
        method: str,
        sql: str,
        args: tuple[object, ...],
        timeout: float | None,
        idempotent: bool | None,
        bulk: bool,
        column: int = 0,
    ) -> Any:
        seconds = (
            self._timeout if timeout is None else check_timeout("timeout", timeout, optional=False)
        )
        breaker = None
        if self._breakers:
            if bulk:
                kind = OperationKind.BULK
            else:
                kind = OperationKind.READ if self._statement(sql).read_only else OperationKind.WRITE
            breaker = self._breakers.get(kind)
        start = self._now()
        try:
            if breaker is None:
                result = await self._on_pool(method, sql, args, seconds, column)
            else:
                result = await breaker.acall(self._on_pool, method, sql, args, seconds, column)
        except Exception as exc:  # noqa: BLE001  (_recover re-raises what it cannot retry)
            result = await self._recover(
                exc, method, sql, args, seconds, column, idempotent, breaker, start
            )
        elapsed = self._now() - start
        self._recorder.record(elapsed)
        if elapsed > self._slow:
            self._slow_query(sql, elapsed)
        return result

    async def _recover(
        self,
        error: Exception,
        method: str,
        sql: str,
        args: tuple[object, ...],
        seconds: float | None,
        column: int,
        idempotent: bool | None,
        breaker: CircuitBreaker | None,
        start: float,
    ) -> Any:
        """The slow path after a failed first attempt: retry if safe and worth it, else raise."""
        policy = self._retry
        safe = self._statement(sql).read_only if idempotent is None else idempotent
        if policy is None or not safe:
            if policy is not None and is_transient(error):
                error.add_note(NOT_RETRIED_NOTE)
            self._failed(error, sql, start)
            raise error

        async def attempt() -> Any:
            if breaker is None:
                return await self._on_pool(method, sql, args, seconds, column)
            return await breaker.acall(self._on_pool, method, sql, args, seconds, column)

        try:
            return await self._retried(policy, error, attempt, lambda error: True)
        except Exception as final:
            self._failed(final, sql, start)
            raise

    async def _retried(
        self,
        policy: Retry,
        error: Exception,
        attempt: Callable[[], Awaitable[R]],
        may_retry: Callable[[Exception], bool],
    ) -> R:
        """``attempt()`` again after ``error``, as long as ``policy`` and ``may_retry`` allow.

        Raises the last error when it gives up; one that was transient but not
        safe to retry carries a note saying so.
        """
        if policy.budget is not None:
            policy.budget.calls += 1
        attempts = 1
        started = policy.clock.monotonic()
        while True:
            if not may_retry(error):
                if is_transient(error):
                    error.add_note(NOT_RETRIED_NOTE)
                raise error
            delay = policy._next_delay(error, attempts, started)
            if delay is None:
                raise error
            self._recorder.retries += 1
            await policy.clock.sleep(delay)
            attempts += 1
            try:
                return await attempt()
            except Exception as exc:  # noqa: BLE001  (the retry decision above looks at it)
                error = exc

    async def _on_pool(
        self,
        method: str,
        sql: str,
        args: tuple[object, ...],
        seconds: float | None,
        column: int,
    ) -> Any:
        """One statement on a connection from the pool (what ``pool.<method>`` does)."""
        async with self._pool.acquire() as conn:
            try:
                if column:
                    return await conn.fetchval(sql, *args, column=column, timeout=seconds)
                return await getattr(conn, method)(sql, *args, timeout=seconds)
            except Exception as exc:
                lost = connection_lost(conn, exc)
                if lost is None:
                    raise
                raise lost from exc

    async def _timed(
        self,
        conn: PoolConnectionProxy[asyncpg.Record] | None,
        op: _Op,
        sql: str,
        args: tuple[object, ...],
        seconds: float | None,
    ) -> Any:
        """One statement inside a transaction: timed and counted, never retried."""
        start = self._now()
        try:
            result = await op(sql, *args, timeout=seconds)
        except Exception as exc:
            lost = None if conn is None else connection_lost(conn, exc)
            self._failed(exc if lost is None else lost, sql, start)
            if lost is None:
                raise
            raise lost from exc
        elapsed = self._now() - start
        self._recorder.record(elapsed)
        if elapsed > self._slow:
            self._slow_query(sql, elapsed)
        return result

    def _failed(self, error: BaseException, sql: str, start: float) -> None:
        elapsed = self._now() - start
        found = classify(error)
        self._recorder.record_failure(elapsed, found.category)
        shape = self._statement(sql).fingerprint
        self._log.warning(
            "db.query_failed",
            fingerprint=shape.digest,
            statement=shape.text,
            category=found.category.value,
            error=type(error).__name__,
            duration_ms=round(elapsed * 1000.0, 3),
        )

    def _slow_query(self, sql: str, elapsed: float) -> None:
        self._recorder.slow_queries += 1
        shape = self._statement(sql).fingerprint
        self._log.warning(
            "db.slow_query",
            fingerprint=shape.digest,
            statement=shape.text,
            duration_ms=round(elapsed * 1000.0, 3),
            threshold_ms=round(self._slow * 1000.0, 3),
        )


def _commit(tx: Any) -> _Op:
    async def run(_sql: str, *, timeout: float | None) -> None:
        # COMMIT has no statement timeout of its own in asyncpg; the wait is bounded here.
        await asyncio.wait_for(tx.commit(), timeout)

    return run
