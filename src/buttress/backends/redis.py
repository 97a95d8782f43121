"""The Redis backend: a ``redis.asyncio.Redis`` client, pinged (with retries) on connect.

Only ``RateLimiter`` and ``CircuitBreaker`` keep shared state here; other
components refuse it. redis-py is imported only when a Redis DSN is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from buttress._exceptions import BackendUnavailableError, MissingDependencyError
from buttress.backends._base import Backend
from buttress.backends._dsn import DSN
from buttress.backends._options import check_known, opt_bool, opt_int, opt_seconds
from buttress.backends._retry import Attempts, connect_with_retry, unavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from buttress.backends._resp import BlockingClient, PipelinedClient

__all__ = ["RedisBackend"]

_OPTIONS = frozenset(
    {
        "max_connections",
        "socket_timeout",
        "connect_timeout",
        "connect_attempts",
        "connect_deadline",
        "decode_responses",
        "health_check_interval",
        "pool_timeout",
    }
)


def _driver() -> Any:
    try:
        import redis.asyncio
        import redis.exceptions
    except ImportError:
        raise MissingDependencyError("redis", "redis") from None
    return redis


class RedisBackend(Backend):
    """Redis through redis-py's asyncio client (``client``).

    Options: ``max_connections`` (50), ``socket_timeout`` (seconds, 5),
    ``connect_timeout`` (per attempt, 5), ``connect_attempts`` (3),
    ``connect_deadline`` (10), ``decode_responses`` (False),
    ``health_check_interval`` (seconds, 30), ``pool_timeout`` (seconds a call
    waits for a free connection when all ``max_connections`` are busy; default
    ``socket_timeout``, else ``connect_timeout``).
    """

    kind = "redis"

    def __init__(self, dsn: DSN, client: Redis) -> None:
        super().__init__(dsn.redacted)
        self.client = client
        self._pipelined: PipelinedClient | None = None
        self._blocking: BlockingClient | None = None
        self._fast_checked = False

    def pipelined(self) -> PipelinedClient | None:
        """buttress's own pipelined connection to this server (one per event loop,
        shared by every caller), used for per-request commands such as rate-limit
        decisions; None when the connection needs TLS or another redis-py-only
        feature, and callers then use ``client``."""
        self._make_fast_clients()
        return self._pipelined

    def blocking(self) -> BlockingClient | None:
        """A pool of blocking sockets to this server for sync callers (WSGI,
        threads); None in the same cases as ``pipelined()``."""
        self._make_fast_clients()
        return self._blocking

    def _make_fast_clients(self) -> None:
        if self._fast_checked:
            return
        from buttress.backends._resp import BlockingClient, PipelinedClient, endpoint_from_pool

        self._fast_checked = True
        endpoint = endpoint_from_pool(self.client.connection_pool)
        if endpoint is not None:
            self._pipelined = PipelinedClient(endpoint)
            self._blocking = BlockingClient(endpoint)

    @classmethod
    async def open(cls, dsn: DSN, options: dict[str, object]) -> RedisBackend:
        check_known("redis", options, _OPTIONS)
        max_connections = opt_int(options, "max_connections", 50, minimum=1)
        socket_timeout = opt_seconds(options, "socket_timeout", 5.0, allow_none=True)
        connect_timeout = opt_seconds(options, "connect_timeout", 5.0)
        connect_deadline = opt_seconds(options, "connect_deadline", 10.0)
        attempts = opt_int(options, "connect_attempts", 3, minimum=1)
        decode_responses = opt_bool(options, "decode_responses", False)
        health_check_interval = opt_int(options, "health_check_interval", 30, minimum=0)
        pool_timeout = opt_seconds(options, "pool_timeout", socket_timeout or connect_timeout)
        assert connect_deadline is not None

        driver = _driver()
        errors = driver.exceptions
        failure: BackendUnavailableError | None = None
        try:
            # A blocking pool: past max_connections a call waits for a free
            # connection (up to pool_timeout) instead of failing at once with
            # MaxConnectionsError, which made a healthy Redis look unreachable
            # under a burst of concurrent calls.
            pool = driver.asyncio.BlockingConnectionPool.from_url(
                dsn.secret_url,
                max_connections=max_connections,
                timeout=pool_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                decode_responses=decode_responses,
                health_check_interval=health_check_interval,
            )
            client = driver.asyncio.Redis.from_pool(pool)
        except ValueError as exc:
            failure = unavailable(dsn, exc)
        if failure is not None:
            raise failure

        def should_retry(exc: BaseException) -> bool:
            # redis-py's AuthenticationError is a ConnectionError: retrying cannot fix it.
            if isinstance(exc, errors.AuthenticationError | errors.ResponseError):
                return False
            return isinstance(
                exc, OSError | TimeoutError | errors.ConnectionError | errors.TimeoutError
            )

        async def ping_once() -> None:
            await client.ping()

        counter = Attempts()
        try:
            await connect_with_retry(
                ping_once,
                should_retry=should_retry,
                attempts=attempts,
                deadline=connect_deadline,
                counter=counter,
            )
        except (OSError, TimeoutError, errors.RedisError) as exc:
            failure = unavailable(dsn, exc, counter.count)
        if failure is not None:
            await client.aclose()
            raise failure
        return cls(dsn, client)

    async def _ping(self) -> None:
        await self.client.ping()

    async def _close(self) -> None:
        if self._pipelined is not None:
            await self._pipelined.aclose()
        if self._blocking is not None:
            self._blocking.close()
        try:
            await self.client.aclose()
        except RuntimeError as exc:
            # A sync app opens the backend with asyncio.run() and closes it with
            # another: redis-py's pooled connections belong to the first, closed
            # loop and cannot be closed on it. Their sockets go with the pool.
            if "closed" not in str(exc):
                raise
